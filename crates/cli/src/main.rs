//! `portcullis`: the authentication gateway and its token tools.
//!
//! This file only parses arguments, runs one command and maps the outcome to
//! the contract's exit codes: 0 success, 1 a negative answer, 2 bad usage or config.

use std::process::ExitCode;

use clap::Parser as _;

mod args;
mod cmd;
mod input;
mod time;

use args::{Args, Command};

// The decision path allocates a few small objects per request (claims, headers):
// mimalloc's thread-local free lists make those cheap under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A negative answer (an invalid token): exit 1, the reason on stderr.
#[derive(Debug)]
pub(crate) struct Negative(pub(crate) String);

impl std::fmt::Display for Negative {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Negative {}

fn main() -> ExitCode {
    let args = Args::parse();
    let result = match args.command {
        Command::Serve(a) => cmd::server::serve(a),
        Command::Demo(a) => cmd::server::demo(a),
        Command::Check(a) => cmd::server::check(a),
        Command::Keygen(a) => cmd::keygen::run(a),
        Command::Jwk(a) => cmd::jwk::run(a),
        Command::Mint(a) => cmd::mint::run(a),
        Command::Inspect(a) => cmd::inspect::run(a),
        Command::Verify(a) => cmd::verify::run(a),
        Command::Explain(a) => cmd::explain::run(a),
        Command::Import(a) => cmd::import::run(a),
        Command::Completions(a) => cmd::docs::completions(&a),
        Command::Man(a) => cmd::docs::man(&a),
        Command::Schema(a) => cmd::schema::run(&a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => match err.downcast_ref::<Negative>() {
            Some(negative) => {
                eprintln!("{negative}");
                ExitCode::from(1)
            }
            None => match err.downcast_ref::<portcullis_app::AppError>() {
                Some(app) => {
                    eprintln!("{app}");
                    ExitCode::from(app.exit_code())
                }
                None => {
                    // One line naming the problem, with its causes.
                    eprintln!("portcullis: {err:#}");
                    ExitCode::from(2)
                }
            },
        },
    }
}
