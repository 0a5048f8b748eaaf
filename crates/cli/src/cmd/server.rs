//! `serve`, `demo`, `check`: thin over `portcullis-app`.

use anyhow::Result;
use portcullis_app::{DemoOptions, LogFormat, LogTarget, ServeOptions};

use crate::args::{CheckArgs, DemoArgs, LogFormatArg, ServeArgs};

pub(crate) fn serve(args: ServeArgs) -> Result<()> {
    let format = match args.log_format {
        Some(LogFormatArg::Json) => LogFormat::Json,
        Some(LogFormatArg::Text) => LogFormat::Text,
        None => LogFormat::for_stdout(),
    };
    portcullis_app::run_serve(&ServeOptions {
        config_path: args.config,
        workers: args.workers,
        log_format: format,
    })?;
    Ok(())
}

pub(crate) fn demo(args: DemoArgs) -> Result<()> {
    portcullis_app::init_logging(LogFormat::Text, LogTarget::Stderr);
    portcullis_app::run_demo(&DemoOptions { port: args.port })?;
    Ok(())
}

pub(crate) fn check(args: CheckArgs) -> Result<()> {
    let (config, key_files) = portcullis_app::check_config(&args.config)?;
    for warning in key_files {
        eprintln!("warning: {warning}");
    }
    portcullis_app::load_login(&config, &args.config)?;
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
