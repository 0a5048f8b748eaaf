//! `portcullis explain --config`: one request explained step by step, with the
//! keys the server would have (remote sources fetched once) and opaque tokens
//! introspected at their provider.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use portcullis_decider::{Decider, Metrics};
use portcullis_policy::explain::{ExplainRequest, Explanation};

use crate::error::AppError;
use crate::runtime::{Sources, load_config};

/// How long remote key sources are waited for.
const KEY_WAIT: Duration = Duration::from_secs(10);

/// Explains `request` against the config at `path`, at the system clock's now.
///
/// # Errors
/// Bad config, or a request that is not valid HTTP (both exit 2).
pub fn explain_with_config(path: &Path, request: &ExplainRequest) -> Result<Explanation, AppError> {
    let config = load_config(path)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| AppError::Runtime(e.to_string()))?;
    runtime.block_on(async move {
        let metrics = Arc::new(Metrics::new());
        let mut sources = Sources::new(metrics.clone())?;
        let engine = sources.engine(config);
        // Remote sources fetch in the background: wait (bounded) for keys; a
        // provider still without keys is explained as such.
        let deadline = tokio::time::Instant::now() + KEY_WAIT;
        while !engine.is_ready() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Opaque tokens are introspected as the server would (same client, a
        // fresh cache), through the same explain path as admin `POST /explain`.
        let introspector = portcullis_keys::Introspector::try_new()
            .map_err(|e| AppError::Runtime(e.to_string()))?;
        let decider = Decider::new(engine, metrics).with_introspector(Arc::new(introspector));
        decider
            .explain(request)
            .await
            .map_err(|e| AppError::Usage(e.to_string()))
    })
}
