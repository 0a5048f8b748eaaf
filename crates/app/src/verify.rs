//! `portcullis verify --config`: the server's verification for one token.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use portcullis_decider::Metrics;
use portcullis_policy::Engine;
use serde_json::Value;

use crate::error::AppError;
use crate::runtime::{Sources, load_config};

/// Verifies `token` as the named provider (default: the one whose issuer the token
/// claims, else the only one) would; returns the claims as JSON.
///
/// # Errors
/// Bad config (exit 2) or an invalid token (exit 1, reason code first).
pub fn verify_with_config(
    path: &Path,
    provider: Option<&str>,
    token: &str,
) -> Result<Value, AppError> {
    let config = load_config(path)?;
    if let Some(name) = provider
        && !config.providers.iter().any(|p| p.name == name)
    {
        return Err(AppError::Config(portcullis_policy::ConfigError {
            file: path.display().to_string(),
            line: 0,
            field: "--provider".to_owned(),
            problem: format!("no provider is named {name:?}"),
        }));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| AppError::Runtime(e.to_string()))?;
    runtime.block_on(async move {
        let metrics = Arc::new(Metrics::new());
        let mut sources = Sources::new(metrics)?;
        let engine = sources.engine(config);
        // Remote sources fetch in the background: wait (bounded) for keys.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !engine.is_ready() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        verify_token(&engine, provider, token)
    })
}

fn verify_token(engine: &Engine, provider: Option<&str>, token: &str) -> Result<Value, AppError> {
    let now = portcullis_decider::now();
    let candidates: Vec<_> = engine
        .providers()
        .iter()
        .filter(|p| provider.is_none_or(|n| p.name() == n))
        .collect();
    let mut first_error = None;
    for p in candidates {
        let keys = p.slot().load().unwrap_or_default();
        match portcullis_jose::verify_jwt(token, &keys, p.validation(), now) {
            Ok(jwt) => return Ok(Value::Object(jwt.claims.into_members())),
            Err(e) => {
                first_error.get_or_insert(format!("{}: {} (provider {})", e.reason(), e, p.name()));
            }
        }
    }
    Err(AppError::Invalid(
        first_error.unwrap_or_else(|| "key_not_found: no provider".to_owned()),
    ))
}
