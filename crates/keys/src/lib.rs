//! Key sources: the IO side of keys. Each source runs in the background and
//! publishes immutable key sets into its provider's [`KeySlot`]; requests never
//! wait on it (but for a short, rate-limited refetch on an unknown `kid`).
#![warn(missing_docs)]

mod fetch;
mod file;
mod remote;

use std::sync::Arc;

use portcullis_decider::Metrics;
use portcullis_jose::{KeyFormat, KeySet, Secrets};
use portcullis_policy::KeySlot;
use portcullis_policy::config::{JwksSource, JwksSpec};
use tokio::task::JoinHandle;

pub use fetch::{FetchError, Fetcher};

/// Least time between two refetches triggered by unknown `kid`s, per provider.
pub const UNKNOWN_KID_REFETCH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30);

/// A running source; dropping it stops the background task.
#[derive(Debug)]
pub struct SourceHandle {
    task: Option<JoinHandle<()>>,
}

impl Drop for SourceHandle {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Starts the source of `spec` for `provider`, publishing into `slot`.
/// Static sources publish at once and need no task.
pub fn start(
    provider: &str,
    spec: &JwksSpec,
    slot: Arc<KeySlot>,
    metrics: Arc<Metrics>,
    fetcher: Fetcher,
) -> SourceHandle {
    let provider = provider.to_owned();
    let task = match &spec.source {
        JwksSource::Static(keys) => {
            publish(&provider, &slot, &metrics, keys.clone());
            None
        }
        JwksSource::File(path) => Some(tokio::spawn(file::run(
            provider,
            path.clone(),
            slot,
            metrics,
        ))),
        JwksSource::Uri(uri) => Some(tokio::spawn(remote::run(
            provider,
            remote::Target::Jwks(uri.clone()),
            spec.tuning,
            slot,
            metrics,
            fetcher,
        ))),
        JwksSource::Discovery(issuer) => Some(tokio::spawn(remote::run(
            provider,
            remote::Target::Discovery(issuer.clone()),
            spec.tuning,
            slot,
            metrics,
            fetcher,
        ))),
    };
    SourceHandle { task }
}

fn publish(provider: &str, slot: &KeySlot, metrics: &Metrics, keys: KeySet) {
    let kids: Vec<&str> = keys
        .keys()
        .iter()
        .filter_map(|k| k.kid().map(|k| k.as_str()))
        .collect();
    tracing::info!(provider, keys = keys.len(), kids = ?kids, "key set published");
    metrics.provider_keys(provider, keys.len());
    slot.store(keys);
}

/// Parses a key document (JWKS/JWK JSON, or a PEM public key) through the one
/// import every source shares. Keys left out are logged (`key ignored`, with
/// their index, `kid` and why); a document with no usable key is an error, and
/// the caller keeps the last good set.
fn parse_keys(
    provider: &str,
    origin: &str,
    bytes: &[u8],
    secrets: Secrets,
) -> Result<KeySet, String> {
    let imported = portcullis_jose::import_keys(bytes, KeyFormat::Detect, secrets)
        .map_err(|e| e.to_string())?;
    for s in &imported.skipped {
        tracing::warn!(
            provider,
            origin,
            index = s.index,
            kid = s.kid.as_deref(),
            unsupported = s.reason.is_unsupported(),
            error = %s.reason,
            "key ignored"
        );
    }
    if imported.keys.is_empty() {
        return Err(match imported.skipped.first() {
            Some(s) => format!(
                "no usable key ({} ignored; key {}: {})",
                imported.skipped.len(),
                s.index,
                s.reason
            ),
            None => "no usable key".to_owned(),
        });
    }
    Ok(imported.keys)
}
