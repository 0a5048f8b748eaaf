//! A JWKS (or PEM) file, re-read when it changes.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use crate::publish::{FetchOutcome, Publisher};

/// How often the file's metadata is checked.
const POLL: Duration = Duration::from_secs(1);

/// A key file, watched.
#[derive(Clone, Debug)]
pub(crate) struct FileSource {
    pub(crate) path: PathBuf,
}

impl FileSource {
    pub(crate) async fn feed(self, publisher: Publisher) {
        let FileSource { path } = self;
        let mut seen: Option<(SystemTime, u64)> = None;
        loop {
            let stamp = tokio::fs::metadata(&path)
                .await
                .ok()
                .map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()));
            if stamp.is_some() && stamp != seen {
                seen = stamp;
                load(&path, &publisher).await;
            } else if stamp.is_none() && seen.is_none() {
                tracing::warn!(provider = %publisher.providers(), path = %path.display(), "key file missing");
                seen = Some((SystemTime::UNIX_EPOCH, u64::MAX));
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

/// Reads and publishes the file once; on failure the last good keys stay.
pub(crate) async fn load(path: &std::path::Path, publisher: &Publisher) {
    let bytes = match tokio::fs::read(path).await {
        Ok(bytes) => bytes,
        Err(e) => {
            publisher.report(FetchOutcome::Error);
            tracing::warn!(provider = %publisher.providers(), path = %path.display(), error = %e, "key file unreadable");
            return;
        }
    };
    let origin = path.display().to_string();
    match crate::publish::parse_keys(
        &publisher.providers(),
        &origin,
        &bytes,
        portcullis_jose::Secrets::Allow,
    ) {
        Ok(keys) => {
            publisher.report(FetchOutcome::Success);
            publisher.publish(&keys);
        }
        Err(e) => {
            publisher.report(FetchOutcome::Invalid);
            tracing::warn!(provider = %publisher.providers(), path = %path.display(), error = %e, kept_last_good = publisher.is_ready(), "key file unusable");
        }
    }
}
