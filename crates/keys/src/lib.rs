//! Key sources: the IO side of keys. Each source runs in the background and
//! publishes immutable key sets into its provider's [`KeySlot`]; requests never
//! wait on it (but for a short, rate-limited refetch on an unknown `kid`).
#![warn(missing_docs)]

mod fetch;
mod file;
mod remote;

use std::sync::Arc;

use portcullis_decider::Metrics;
use portcullis_jose::KeySet;
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

/// Whether a key document may hold HMAC secrets.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
enum Secrets {
    /// A local file may (it is as private as the config).
    Allow,
    /// A document served over HTTP is public: an `oct` key there is no secret,
    /// and accepting it would let anyone mint HS tokens.
    Refuse,
}

/// Parses a key document: JWKS/JWK JSON, or a PEM public key. Rejected keys are logged.
fn parse_keys(
    provider: &str,
    origin: &str,
    bytes: &[u8],
    secrets: Secrets,
) -> Result<KeySet, String> {
    let trimmed = bytes.trim_ascii_start();
    if trimmed.starts_with(b"-----BEGIN") {
        let text = std::str::from_utf8(bytes).map_err(|_| "PEM is not UTF-8".to_owned())?;
        let material = portcullis_jose::public_key_from_pem(text).map_err(|e| e.to_string())?;
        let key = portcullis_jose::VerifyingKey::try_new(material, None, None)
            .map_err(|e| e.to_string())?;
        return Ok(KeySet::new(vec![key]));
    }
    let (set, rejected) = portcullis_jose::key_set_from_json(bytes).map_err(|e| e.to_string())?;
    for r in rejected {
        tracing::warn!(provider, origin, index = r.index, kid = r.kid.as_deref(), error = %r.error, "key ignored");
    }
    let set = if secrets == Secrets::Refuse
        && set
            .keys()
            .iter()
            .any(|k| k.material().family() == portcullis_jose::Family::Hmac)
    {
        tracing::warn!(
            provider,
            origin,
            "HMAC (oct) keys in a fetched JWKS ignored: a served key is not a secret"
        );
        KeySet::new(
            set.keys()
                .iter()
                .filter(|k| k.material().family() != portcullis_jose::Family::Hmac)
                .cloned()
                .collect(),
        )
    } else {
        set
    };
    if set.is_empty() {
        return Err("no usable key".to_owned());
    }
    Ok(set)
}
