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
    init_with(format, target, None);
}

/// [`init_logging`], with the OpenTelemetry layer when traces are exported.
/// Spans meant for export never show in the log lines, exported or not.
pub(crate) fn init_with(
    format: LogFormat,
    target: LogTarget,
    telemetry: Option<&crate::telemetry::Telemetry>,
) {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::filter::FilterExt as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;

    let filter = EnvFilter::try_from_env("PORTCULLIS_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // The hint says this filter restricts no level (only a target): without one
    // the combined filter has no level hint, the global maximum becomes TRACE, and
    // every `debug!` on the hot path (the decider's allow line) is built and
    // dispatched per request only to be dropped by the per-layer filter (issue 11).
    let not_exported =
        tracing_subscriber::filter::filter_fn(|m| m.target() != portcullis_decider::TRACE_TARGET)
            .with_max_level_hint(tracing_subscriber::filter::LevelFilter::TRACE);
    type Boxed = Box<dyn tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync>;
    let fmt = tracing_subscriber::fmt::layer();
    let fmt: Boxed = match (format, target) {
        (LogFormat::Json, LogTarget::Stdout) => fmt
            .with_writer(std::io::stdout)
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .boxed(),
        (LogFormat::Json, LogTarget::Stderr) => fmt
            .with_writer(std::io::stderr)
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .boxed(),
        (LogFormat::Text, LogTarget::Stdout) => fmt.with_writer(std::io::stdout).compact().boxed(),
        (LogFormat::Text, LogTarget::Stderr) => fmt.with_writer(std::io::stderr).compact().boxed(),
    };
    let fmt = fmt.with_filter(not_exported.and(filter));
    let otel = telemetry.map(|t| t.layer());
    let _ = tracing_subscriber::registry()
        .with(fmt)
        .with(otel)
        .try_init();
}
