//! `serve`, `demo`, `check`: thin over `portcullis-app`.

use anyhow::Result;
use portcullis_app::{DemoOptions, ServeOptions};

use crate::args::{CheckArgs, DemoArgs, ServeArgs};

pub(crate) fn serve(args: ServeArgs) -> Result<()> {
    portcullis_app::init_logging(true);
    portcullis_app::run_serve(&ServeOptions {
        config_path: args.config,
        workers: args.workers,
    })?;
    Ok(())
}

pub(crate) fn demo(args: DemoArgs) -> Result<()> {
    portcullis_app::init_logging(false);
    portcullis_app::run_demo(&DemoOptions { port: args.port })?;
    Ok(())
}

pub(crate) fn check(args: CheckArgs) -> Result<()> {
    let config = portcullis_app::load_config(&args.config)?;
    for warning in config.warnings() {
        eprintln!("warning: {warning}");
    }
    println!(
        "{}: ok ({} providers, {} rules)",
        args.config.display(),
        config.providers.len(),
        config.rules.len()
    );
    Ok(())
}
