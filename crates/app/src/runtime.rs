//! Loading the config, starting key sources (reused across reloads when their
//! spec is unchanged) and building engines.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use portcullis_decider::Metrics;
use portcullis_keys::{Fetcher, SourceHandle};
use portcullis_policy::{Config, Engine, KeySlot};

use crate::error::AppError;

/// Reads and validates a config file.
///
/// # Errors
/// Unreadable file, or the first problem as `FILE:LINE: field: problem`.
pub fn load_config(path: &Path) -> Result<Config, AppError> {
    let text = std::fs::read_to_string(path).map_err(|source| AppError::ReadConfig {
        path: path.display().to_string(),
        source,
    })?;
    let base = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let env = |name: &str| std::env::var(name).ok();
    Ok(portcullis_policy::config::parse(
        &text,
        &path.display().to_string(),
        &base,
        &env,
    )?)
}

/// Logs what loading `config` left out (inline keys that cannot be used), one
/// `warning:` line each.
pub(crate) fn log_warnings(config: &Config) {
    for w in config.warnings() {
        tracing::warn!(
            file = %w.file,
            line = w.line,
            field = %w.field,
            problem = %w.problem,
            "warning: {w}"
        );
    }
}

/// The running key sources, by the identity of their spec.
pub(crate) struct Sources {
    running: HashMap<String, (Arc<KeySlot>, SourceHandle)>,
    metrics: Arc<Metrics>,
    fetcher: Fetcher,
}

impl Sources {
    pub(crate) fn new(metrics: Arc<Metrics>) -> Result<Sources, AppError> {
        Ok(Sources {
            running: HashMap::new(),
            metrics,
            fetcher: Fetcher::try_new().map_err(AppError::Runtime)?,
        })
    }

    /// Builds an engine for `config`, reusing running sources whose spec is unchanged
    /// and stopping those no longer used.
    pub(crate) fn engine(&mut self, config: Config) -> Engine {
        let mut next: HashMap<String, (Arc<KeySlot>, SourceHandle)> = HashMap::new();
        let mut slots = Vec::with_capacity(config.providers.len());
        for provider in &config.providers {
            let identity = provider.jwks.identity();
            let reused = identity
                .as_ref()
                .and_then(|id| next.remove(id).or_else(|| self.running.remove(id)));
            let (slot, handle) = match reused {
                Some(pair) => pair,
                None => {
                    let slot = Arc::new(KeySlot::empty());
                    let handle = portcullis_keys::start(
                        &provider.name,
                        &provider.jwks,
                        slot.clone(),
                        self.metrics.clone(),
                        self.fetcher.clone(),
                    );
                    (slot, handle)
                }
            };
            slots.push(slot.clone());
            if let Some(id) = identity {
                next.insert(id, (slot, handle));
            }
        }
        // Whatever was not reused stops here (dropping a handle aborts its task).
        self.running = next;
        Engine::new(config, slots)
    }
}
