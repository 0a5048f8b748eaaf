//! Structured logs (JSON lines on stderr), level from `PORTCULLIS_LOG` (default `info`).

use tracing_subscriber::EnvFilter;

/// Installs the JSON log subscriber once; later calls do nothing.
pub fn init_logging(json: bool) {
    let filter =
        EnvFilter::try_from_env("PORTCULLIS_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init()
    } else {
        builder.compact().try_init()
    };
}
