//! Structured logs, level from `PORTCULLIS_LOG` (else `RUST_LOG`, else `info`).

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum LogFormat {
    /// One JSON object a line.
    Json,
    /// Readable text.
    Text,
}

impl LogFormat {
    /// JSON lines when stdout is not a terminal (a pod, a file, a pipe), text on one.
    pub fn for_stdout() -> LogFormat {
        if std::io::stdout().is_terminal() {
            LogFormat::Text
        } else {
            LogFormat::Json
        }
    }
}

/// Where log lines go.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum LogTarget {
    /// `serve`: logs are its output.
    Stdout,
    /// `demo`: stdout is for the lines a user pastes.
    Stderr,
}

/// Installs the log subscriber once; later calls do nothing.
pub fn init_logging(format: LogFormat, target: LogTarget) {
    let filter = EnvFilter::try_from_env("PORTCULLIS_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = match (format, target) {
        (LogFormat::Json, LogTarget::Stdout) => builder
            .with_writer(std::io::stdout)
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        (LogFormat::Json, LogTarget::Stderr) => builder
            .with_writer(std::io::stderr)
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        (LogFormat::Text, LogTarget::Stdout) => {
            builder.with_writer(std::io::stdout).compact().try_init()
        }
        (LogFormat::Text, LogTarget::Stderr) => {
            builder.with_writer(std::io::stderr).compact().try_init()
        }
    };
}
