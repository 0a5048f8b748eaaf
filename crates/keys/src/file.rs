//! A JWKS (or PEM) file, re-read when it changes.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use portcullis_decider::{FetchOutcome, Metrics};
use portcullis_policy::KeySlot;

/// How often the file's metadata is checked.
const POLL: Duration = Duration::from_secs(1);

pub(crate) async fn run(
    provider: String,
    path: PathBuf,
    slot: Arc<KeySlot>,
    metrics: Arc<Metrics>,
) {
    let mut seen: Option<(SystemTime, u64)> = None;
    loop {
        let stamp = tokio::fs::metadata(&path)
            .await
            .ok()
            .map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()));
        if stamp.is_some() && stamp != seen {
            seen = stamp;
            match tokio::fs::read(&path).await {
                Ok(bytes) => match crate::parse_keys(
                    &provider,
                    &path.display().to_string(),
                    &bytes,
                    portcullis_jose::Secrets::Allow,
                ) {
                    Ok(keys) => {
                        metrics.jwks_fetch(&provider, FetchOutcome::Success);
                        crate::publish(&provider, &slot, &metrics, keys);
                    }
                    Err(e) => {
                        metrics.jwks_fetch(&provider, FetchOutcome::Invalid);
                        tracing::warn!(provider, path = %path.display(), error = %e, kept_last_good = slot.is_ready(), "key file unusable");
                    }
                },
                Err(e) => {
                    metrics.jwks_fetch(&provider, FetchOutcome::Error);
                    tracing::warn!(provider, path = %path.display(), error = %e, "key file unreadable");
                }
            }
        } else if stamp.is_none() && seen.is_none() {
            tracing::warn!(provider, path = %path.display(), "key file missing");
            seen = Some((SystemTime::UNIX_EPOCH, u64::MAX));
        }
        tokio::time::sleep(POLL).await;
    }
}
