//! A JWKS (or PEM) file, re-read when it changes.
//!
//! The file's folder is watched with `notify` (inotify, kqueue...), not the file:
//! an editor's save-by-rename and a Kubernetes ConfigMap update (a `..data` symlink
//! swapped in the folder) replace the file rather than write it, and a watch on the
//! old file would see neither. Any event in the folder makes us compare the file's
//! modification time and length with the last ones read, and read it again when
//! they differ. Only when the folder cannot be watched (it does not exist yet, the
//! inotify watch limit is reached, the platform has no watcher) or the watcher
//! fails later, do we poll the file's metadata once a second instead.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use notify::{RecursiveMode, Watcher};
use tokio::sync::Notify;

use crate::publish::{FetchOutcome, Publisher};

/// How often the file's metadata is checked when the folder cannot be watched.
const POLL: Duration = Duration::from_secs(1);

/// Events often come in bursts (write, chmod, rename): wait this long after the
/// first one, so the burst is read once, with the file complete.
const SETTLE: Duration = Duration::from_millis(50);

/// A key file, watched.
#[derive(Clone, Debug)]
pub(crate) struct FileSource {
    pub(crate) path: PathBuf,
}

impl FileSource {
    pub(crate) async fn feed(self, publisher: Publisher) {
        let FileSource { path } = self;
        // What tells the file apart from the version last read: modified time, length.
        let mut seen: Option<(SystemTime, u64)> = None;
        let changed = Arc::new(Notify::new());
        let broken = Arc::new(AtomicBool::new(false));
        // Kept alive for as long as the task runs: dropping it stops the watch.
        let watcher = watch(&path, changed.clone(), broken.clone());
        let mut watcher = match watcher {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(provider = %publisher.providers(), path = %path.display(), error = %e, poll = ?POLL, "key file cannot be watched; polling it");
                None
            }
        };
        loop {
            check(&path, &mut seen, &publisher).await;
            if watcher.is_some() && broken.load(Ordering::Acquire) {
                tracing::warn!(provider = %publisher.providers(), path = %path.display(), poll = ?POLL, "key file watch failed; polling it");
                watcher = None;
            }
            match watcher {
                Some(_) => {
                    changed.notified().await;
                    tokio::time::sleep(SETTLE).await;
                }
                None => tokio::time::sleep(POLL).await,
            }
        }
    }
}

/// Watches the folder of `path`, waking `changed` on every event; a watcher error
/// sets `broken` (and wakes too, so the caller falls back to polling).
fn watch(
    path: &Path,
    changed: Arc<Notify>,
    broken: Arc<AtomicBool>,
) -> notify::Result<notify::RecommendedWatcher> {
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_err() {
            broken.store(true, Ordering::Release);
        }
        changed.notify_one();
    })?;
    watcher.watch(folder, RecursiveMode::NonRecursive)?;
    Ok(watcher)
}

/// Reads the file again when its stamp differs from `seen`.
async fn check(path: &Path, seen: &mut Option<(SystemTime, u64)>, publisher: &Publisher) {
    let stamp = tokio::fs::metadata(path)
        .await
        .ok()
        .map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()));
    if stamp.is_some() && stamp != *seen {
        *seen = stamp;
        load(path, publisher).await;
    } else if stamp.is_none() && seen.is_none() {
        tracing::warn!(provider = %publisher.providers(), path = %path.display(), "key file missing");
        publisher.note_error(&format_args!("{}: missing", path.display()));
        *seen = Some((SystemTime::UNIX_EPOCH, u64::MAX));
    }
}

/// Reads and publishes the file once; on failure the last good keys stay.
async fn load(path: &Path, publisher: &Publisher) {
    let bytes = match tokio::fs::read(path).await {
        Ok(bytes) => bytes,
        Err(e) => {
            publisher.report(FetchOutcome::Error);
            tracing::warn!(provider = %publisher.providers(), path = %path.display(), error = %e, "key file unreadable");
            publisher.note_error(&format_args!("{}: {e}", path.display()));
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
            publisher.note_error(&format_args!("{}: {e}", path.display()));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU32;
    use std::time::Instant;

    use portcullis_policy::KeySlot;

    use super::*;
    use crate::publish::NoReport;

    const ED25519_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";

    fn jwks(kid: &str) -> String {
        format!(r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","x":"{ED25519_X}","kid":"{kid}"}}]}}"#)
    }

    /// A fresh folder under the system's temporary one, removed on drop.
    struct Folder(PathBuf);

    impl Folder {
        fn new() -> Folder {
            static N: AtomicU32 = AtomicU32::new(0);
            let dir = std::env::temp_dir().join(format!(
                "portcullis-keys-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::SeqCst)
            ));
            std::fs::create_dir_all(&dir).unwrap();
            Folder(dir)
        }
    }

    impl Drop for Folder {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    async fn until(what: &str, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !f() {
            assert!(Instant::now() < deadline, "timed out waiting for: {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The file is read again when it is rewritten and when it is replaced by a
    /// rename (as editors and ConfigMap updates do); a bad version keeps the last
    /// good keys; a file created after the start is picked up.
    #[tokio::test]
    async fn a_watched_file_is_read_again_when_it_changes() {
        let folder = Folder::new();
        let path = folder.0.join("keys.json");
        let slot = Arc::new(KeySlot::empty());
        let publisher = Publisher::single("corp", slot.clone(), Arc::new(NoReport));
        let _handle = crate::spawn(FileSource { path: path.clone() }, publisher);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!slot.is_ready());

        std::fs::write(&path, jwks("one")).unwrap();
        until("created file read", || slot.is_ready()).await;
        assert!(slot.load().unwrap().has_kid("one"));

        std::fs::write(&path, jwks("two-two")).unwrap();
        until("rewritten file read", || {
            slot.load().is_some_and(|k| k.has_kid("two-two"))
        })
        .await;

        let next = folder.0.join("keys.json.tmp");
        std::fs::write(&next, jwks("three-three-three")).unwrap();
        std::fs::rename(&next, &path).unwrap();
        until("renamed file read", || {
            slot.load().is_some_and(|k| k.has_kid("three-three-three"))
        })
        .await;

        let generation = slot.generation();
        std::fs::write(&path, "{not json").unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(slot.generation(), generation, "the last good keys stay");
        assert!(slot.load().unwrap().has_kid("three-three-three"));
    }

    /// The folder watch itself works here (the source above would pass by polling
    /// too, only slower): a write in the folder wakes the task, a missing folder is
    /// an error (and so a fallback to polling).
    #[tokio::test]
    async fn a_write_in_the_folder_wakes_the_watch() {
        let folder = Folder::new();
        let path = folder.0.join("keys.json");
        let changed = Arc::new(Notify::new());
        let broken = Arc::new(AtomicBool::new(false));
        let _watcher = watch(&path, changed.clone(), broken.clone()).unwrap();
        std::fs::write(&path, jwks("one")).unwrap();
        tokio::time::timeout(Duration::from_secs(5), changed.notified())
            .await
            .expect("woken by the write");
        assert!(!broken.load(Ordering::SeqCst));
        let gone = folder.0.join("missing").join("keys.json");
        assert!(watch(&gone, changed, broken).is_err());
    }
}
