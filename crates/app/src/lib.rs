//! Wires Portcullis together: config loading and hot reload, key sources,
//! listeners with limits and graceful shutdown, and the embedded demo.
//! Everything with IO lives here or in the key sources; the decision itself
//! is the pure `portcullis_policy::Engine`.
#![warn(missing_docs)]

mod demo;
mod dpop_replay;
mod error;
mod explain;
mod lifecycle;
mod listener;
mod logging;
mod reload;
mod runtime;
mod serve;
mod telemetry;
mod tls;
mod verify;

pub use demo::{DemoOptions, demo_config, run_demo};
pub use error::AppError;
pub use explain::explain_with_config;
pub use logging::{LogFormat, LogTarget, init_logging};
pub use runtime::{check_config, load_config};
pub use serve::{ServeOptions, load_login, run_serve};
pub use telemetry::MAX_QUEUED_SPANS;
pub use verify::{Expected, describe_token_error, verify_with_config};
