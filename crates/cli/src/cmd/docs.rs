//! `portcullis completions SHELL` and `portcullis man`: generated from the same
//! argument definitions the parser uses, so they cannot drift from it.

use std::io::Write as _;

use anyhow::{Context as _, Result};
use clap::CommandFactory as _;

use crate::args::{Args, CompletionsArgs, ManArgs};

pub(crate) fn completions(args: &CompletionsArgs) -> Result<()> {
    let mut command = Args::command();
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut command, "portcullis", &mut out);
    std::io::stdout()
        .write_all(&out)
        .context("writing the completion script")
}

/// The roff page of `portcullis`, or of one command (`portcullis-COMMAND(1)`).
pub(crate) fn man(args: &ManArgs) -> Result<()> {
    let mut command = Args::command();
    if let Some(name) = &args.command {
        let Some(sub) = command.find_subcommand(name).cloned() else {
            anyhow::bail!("no command is named {name:?}");
        };
        command = sub
            .display_name(format!("portcullis-{name}"))
            .bin_name(format!("portcullis {name}"));
    }
    let mut out = Vec::new();
    clap_mangen::Man::new(command)
        .render(&mut out)
        .context("rendering the manual page")?;
    std::io::stdout()
        .write_all(&out)
        .context("writing the manual page")
}
