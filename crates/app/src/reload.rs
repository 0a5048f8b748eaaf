//! Hot reload of the config file: on SIGHUP, and when the file changes.
//!
//! The file's folder is watched with `notify` (inotify, kqueue...), not the file:
//! an editor's save-by-rename and a Kubernetes ConfigMap update (a `..data` symlink
//! swapped in the folder) replace the file, and a watch on the old inode would see
//! neither. Events are debounced ([`SETTLE`]); then the file's stamp (modified
//! time, length, inode) is compared with the last one read, and the file is loaded
//! again when it differs. SIGHUP always reloads. Only when the folder cannot be
//! watched, or the watcher fails, is the stamp polled once a second instead.
//!
//! A reload is refused by exactly the rules of a start ([`refuse_unservable`]: no
//! listener, no rule, any config error): the old config keeps serving, a `warn!`
//! line says why and `portcullis_config_reloads_total{outcome="rejected"}` counts it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use notify::event::ModifyKind;
use notify::{EventKind, RecursiveMode, Watcher};
use portcullis_decider::{Decider, ReloadOutcome};
use portcullis_policy::config::Listen;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::Notify;

use crate::runtime::{Sources, load_config, log_warnings, refuse_unservable};

/// How often the stamp is polled when the folder cannot be watched.
const POLL: Duration = Duration::from_secs(1);

/// Events come in bursts (truncate, write, chmod, rename): wait this long after the
/// first one, so the burst is read once, with the file complete.
pub(crate) const SETTLE: Duration = Duration::from_millis(100);

/// What tells one version of the file from another: modified time, length, inode.
type Stamp = Option<(SystemTime, u64, u64)>;

/// Reloads on SIGHUP and when the file changes: a good config is swapped in
/// whole; a bad one is refused, logged and counted, and the old one keeps serving.
pub(crate) async fn watch_config(
    path: PathBuf,
    mut sources: Sources,
    decider: Arc<Decider>,
    listen: Listen,
    mut replay_url: Option<String>,
) {
    let mut hup = signal(SignalKind::hangup()).ok();
    let changed = Arc::new(Notify::new());
    let broken = Arc::new(AtomicBool::new(false));
    // Kept alive for as long as the task runs: dropping it stops the watch.
    let mut watcher = match watch(&path, changed.clone(), broken.clone()) {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, poll = ?POLL, "config file cannot be watched; polling it");
            None
        }
    };
    let mut seen = stamp(&path);
    loop {
        let by_signal = tokio::select! {
            () = next_change(watcher.is_some(), &changed) => false,
            Some(()) = async { match hup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => true,
        };
        if watcher.is_some() && broken.load(Ordering::Acquire) {
            tracing::warn!(path = %path.display(), poll = ?POLL, "config file watch failed; polling it");
            watcher = None;
        }
        let now = stamp(&path);
        if !by_signal && now == seen {
            continue;
        }
        seen = now;
        reload(
            &path,
            &mut sources,
            &decider,
            &listen,
            &mut replay_url,
            by_signal,
        );
    }
}

/// Loads `path` and swaps it in, or refuses it (counted and logged).
fn reload(
    path: &Path,
    sources: &mut Sources,
    decider: &Decider,
    listen: &Listen,
    replay_url: &mut Option<String>,
    by_signal: bool,
) {
    let loaded = load_config(path).and_then(|config| {
        refuse_unservable(path, &config)?;
        // A changed `dpop.replay` takes effect with the config: its store is opened
        // (the URL checked) before anything is swapped, so a bad URL refuses the
        // whole reload and the old store keeps serving.
        let replay = if config.dpop.replay == *replay_url {
            None
        } else {
            Some(crate::dpop_replay::shared_replay(&config).map_err(|e| {
                crate::AppError::Config(portcullis_policy::ConfigError {
                    file: path.display().to_string(),
                    line: 0,
                    field: "dpop.replay".to_owned(),
                    problem: e.to_string(),
                })
            })?)
        };
        Ok((config, replay))
    });
    match loaded {
        Ok((config, replay)) => {
            if let Some(store) = replay {
                tracing::info!(
                    replay_store = config.dpop.replay.is_some(),
                    "dpop.replay changed: DPoP proofs are claimed in the new store from now on"
                );
                decider.set_replay(store);
                replay_url.clone_from(&config.dpop.replay);
            }
            log_warnings(&config);
            if config.listen != *listen {
                tracing::warn!("listen addresses changed: they take effect on restart only");
            }
            decider.swap(sources.engine(config));
            decider.metrics().reload(ReloadOutcome::Applied);
            tracing::info!(path = %path.display(), by_signal, "config reloaded");
        }
        Err(e) => {
            decider.metrics().reload(ReloadOutcome::Rejected);
            tracing::warn!(path = %path.display(), by_signal, error = %e, "config reload refused; the previous config keeps serving");
        }
    }
}

/// Resolves after the next burst of folder events (or the next poll tick).
async fn next_change(watched: bool, changed: &Notify) {
    if watched {
        changed.notified().await;
        tokio::time::sleep(SETTLE).await;
    } else {
        tokio::time::sleep(POLL).await;
    }
}

/// Watches the folder of `path`, waking `changed` on every event about the file
/// (or one the watcher cannot name); a watcher error sets `broken`.
fn watch(
    path: &Path,
    changed: Arc<Notify>,
    broken: Arc<AtomicBool>,
) -> notify::Result<notify::RecommendedWatcher> {
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().map(ToOwned::to_owned);
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        match event {
            // Writes to other files in the folder (a log next to the config) are not
            // ours; anything else may be (a ConfigMap's `..data` swap names only
            // `..data`, an editor's rename its temporary file).
            Ok(e)
                if matches!(e.kind, EventKind::Modify(ModifyKind::Data(_)))
                    && !e.paths.is_empty()
                    && !e.paths.iter().any(|p| p.file_name() == name.as_deref()) => {}
            Ok(_) => changed.notify_one(),
            Err(_) => {
                broken.store(true, Ordering::Release);
                changed.notify_one();
            }
        }
    })?;
    watcher.watch(&folder, RecursiveMode::NonRecursive)?;
    Ok(watcher)
}

fn stamp(path: &Path) -> Stamp {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(path).ok().map(|m| {
        (
            m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            m.len(),
            m.ino(),
        )
    })
}
