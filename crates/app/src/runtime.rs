//! Loading the config, starting key sources (reused across reloads when their
//! spec is unchanged) and building engines.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use portcullis_decider::Metrics;
use portcullis_keys::{FetchOutcome, Fetcher, Publisher, Report, SourceHandle, SourceId};
use portcullis_policy::config::spiffe::InjectConfig;
use portcullis_policy::{Config, Engine, KeySlot, TokenSlot};

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

/// [`load_config`] and what `serve` refuses (a config with no listener); with
/// the problems `serve` starts with anyway, as warnings: a `jwks.file` that cannot
/// be read or holds no usable key (`serve` denies that provider's tokens until
/// the file is there and usable: a sidecar may write it later).
///
/// # Errors
/// As [`load_config`], and no listener, as `FILE:LINE: field: problem`.
pub fn check_config(
    path: &Path,
) -> Result<(Config, Vec<portcullis_policy::ConfigError>), AppError> {
    let config = load_config(path)?;
    refuse_unservable(path, &config)?;
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let file = path.display().to_string();
    let note = |field: String, problem: String| {
        // `file:` on its own line, else the `jwks:` it sits in (a flow mapping).
        let line = match portcullis_policy::config::line_of(&text, &field) {
            1 => portcullis_policy::config::line_of(&text, field.trim_end_matches(".file")),
            line => line,
        };
        portcullis_policy::ConfigError {
            file: file.clone(),
            line,
            field,
            problem,
        }
    };
    let mut warnings = Vec::new();
    for (i, p) in config.providers.iter().enumerate() {
        if let portcullis_policy::config::JwksSource::File(keys) = &p.jwks.source {
            let field = format!("providers[{i}].jwks.file");
            let shown = keys.display();
            let problem = match std::fs::read(keys) {
                Err(e) => Some(format!("cannot read {shown}: {e}")),
                Ok(bytes) => match portcullis_jose::import_keys(
                    &bytes,
                    portcullis_jose::KeyFormat::Detect,
                    portcullis_jose::Secrets::Allow,
                ) {
                    Err(e) => Some(format!("{shown}: {e}")),
                    Ok(imported) if imported.keys.is_empty() => {
                        Some(format!("{shown} holds no usable key"))
                    }
                    Ok(_) => None,
                },
            };
            if let Some(problem) = problem {
                warnings.push(note(
                    field,
                    format!("{problem}; serve denies this provider's tokens until it can read keys there"),
                ));
            }
        }
    }
    Ok((config, warnings))
}

/// What `serve` refuses at start and on every reload, and `check` with it: a
/// config with no listener or no rule (an empty file has neither; a truncated one
/// written by an editor must not turn every request into `no_rule`).
///
/// # Errors
/// The first of those, as `FILE:LINE: field: problem`.
pub(crate) fn refuse_unservable(path: &Path, config: &Config) -> Result<(), AppError> {
    refuse_no_listener(path, config)?;
    if !config.rules.is_empty() {
        return Ok(());
    }
    let text = std::fs::read_to_string(path).unwrap_or_default();
    Err(AppError::Config(portcullis_policy::ConfigError {
        file: path.display().to_string(),
        line: portcullis_policy::config::line_of(&text, "rules"),
        field: "rules".to_owned(),
        problem: "names no rule: every request would be denied (no_rule)".to_owned(),
    }))
}

/// `serve` needs at least one listener: the error names the file and line.
fn refuse_no_listener(path: &Path, config: &Config) -> Result<(), AppError> {
    if !config.listen.is_empty() {
        return Ok(());
    }
    let text = std::fs::read_to_string(path).unwrap_or_default();
    Err(AppError::Config(portcullis_policy::ConfigError {
        file: path.display().to_string(),
        line: portcullis_policy::config::line_of(&text, "listen"),
        field: "listen".to_owned(),
        problem: "names no listener (http, grpc, admin or proxy): serve would have nothing to run"
            .to_owned(),
    }))
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
    running: HashMap<SourceId, (Arc<KeySlot>, SourceHandle)>,
    /// The token sources of the current engine's `inject` rules: a reload keeps one
    /// whose rule name and config are unchanged (and so its token).
    injectors: Vec<Injector>,
    report: Arc<dyn Report>,
    fetcher: Fetcher,
}

/// One `inject` rule's running token source.
struct Injector {
    rule: String,
    config: InjectConfig,
    slot: Arc<TokenSlot>,
    _handle: SourceHandle,
}

/// Key sources report into the process's metrics.
struct KeyMetrics(Arc<Metrics>);

impl Sources {
    pub(crate) fn new(metrics: Arc<Metrics>) -> Result<Sources, AppError> {
        Ok(Sources {
            running: HashMap::new(),
            injectors: Vec::new(),
            report: Arc::new(KeyMetrics(metrics)),
            fetcher: Fetcher::try_new().map_err(|e| AppError::Runtime(e.to_string()))?,
        })
    }

    /// Builds an engine for `config`, reusing running sources whose spec is unchanged
    /// and stopping those no longer used.
    pub(crate) fn engine(&mut self, config: Config) -> Engine {
        let mut next: HashMap<SourceId, (Arc<KeySlot>, SourceHandle)> = HashMap::new();
        let mut slots = Vec::with_capacity(config.providers.len());
        for provider in &config.providers {
            let identity = SourceId::of(&provider.jwks);
            let reused = identity
                .as_ref()
                .and_then(|id| next.remove(id).or_else(|| self.running.remove(id)));
            let (slot, handle) = match reused {
                Some(pair) => pair,
                None => {
                    let slot = Arc::new(KeySlot::empty());
                    // Same place, other tuning: the last good keys carry over (issue 18),
                    // so an outage of the key server during such a reload denies nothing.
                    if let Some(id) = identity.as_ref()
                        && let Some(old) = next
                            .iter()
                            .chain(self.running.iter())
                            .find(|(other, _)| id.is_same_place(other))
                            .map(|(_, (slot, _))| slot.clone())
                    {
                        carry_over(&old, &slot);
                    }
                    let publisher =
                        Publisher::single(&provider.name, slot.clone(), self.report.clone());
                    let handle =
                        portcullis_keys::start(&provider.jwks, publisher, self.fetcher.clone());
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
        let engine = Engine::new(config, slots);
        let wanted: Vec<(String, InjectConfig)> = engine
            .inject_slots()
            .map(|(rule, config, _)| (rule.to_owned(), config.clone()))
            .collect();
        let mut old = std::mem::take(&mut self.injectors);
        for (rule, config) in wanted {
            let injector = match old
                .iter()
                .position(|i| i.rule == rule && i.config == config)
            {
                Some(at) => old.swap_remove(at),
                None => {
                    let slot = Arc::new(TokenSlot::empty());
                    let handle = portcullis_keys::start_inject_reporting(
                        &rule,
                        &config,
                        slot.clone(),
                        Arc::new(portcullis_policy::SystemClock),
                        self.report.clone(),
                    );
                    Injector {
                        rule,
                        config,
                        slot,
                        _handle: handle,
                    }
                }
            };
            self.injectors.push(injector);
        }
        // Whatever is left in `old` stops here.
        drop(old);
        let injectors = &self.injectors;
        engine.with_inject_slots(|rule, _| {
            injectors
                .iter()
                .find(|i| i.rule == rule)
                .map(|i| i.slot.clone())
        })
    }
}

/// Starts `new` from what `old` holds: its keys, its discovery metadata, its status.
fn carry_over(old: &KeySlot, new: &KeySlot) {
    if let Some(keys) = old.load() {
        new.store(keys);
    }
    if let Some(metadata) = old.metadata() {
        new.store_metadata(portcullis_policy::ProviderMetadata::clone(&metadata));
    }
    let status = old.status();
    new.update_status(|s| *s = portcullis_policy::KeyStatus::clone(&status));
}

// === impl KeyMetrics ===

impl Report for KeyMetrics {
    fn fetch(&self, provider: &str, outcome: FetchOutcome) {
        let outcome = match outcome {
            FetchOutcome::Error => portcullis_decider::FetchOutcome::Error,
            FetchOutcome::Invalid => portcullis_decider::FetchOutcome::Invalid,
            FetchOutcome::Success => portcullis_decider::FetchOutcome::Success,
        };
        self.0.jwks_fetch(provider, outcome);
    }

    fn keys(&self, provider: &str, count: usize) {
        self.0.provider_keys(provider, count);
    }

    fn exchange(&self, rule: &str, outcome: portcullis_keys::ExchangeOutcome) {
        self.0.token_exchange(rule, outcome.as_str());
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn config(uri_refresh: &str) -> Config {
        let text = format!(
            r#"
providers:
  - name: remote
    jwks: {{uri: "http://127.0.0.1:9/jwks", refresh: {uri_refresh}}}
  - name: twin
    jwks: {{uri: "http://127.0.0.1:9/jwks", refresh: {uri_refresh}}}
  - name: discovered
    jwks: {{discovery: "http://127.0.0.1:9"}}
rules:
  - name: default
    match: {{}}
"#
        );
        portcullis_policy::config::parse(&text, "test.yaml", Path::new("."), &|_| None).unwrap()
    }

    fn slot(engine: &Engine, i: usize) -> Arc<KeySlot> {
        engine.providers()[i].slot().clone()
    }

    /// A reload keeps a source whose identity is unchanged (its slot, so its keys),
    /// starts one whose tuning changed, and stops those no longer named.
    #[tokio::test]
    async fn key_sources_are_reused_across_reloads_by_identity() {
        let mut sources = Sources::new(Arc::new(Metrics::new())).unwrap();
        let first = sources.engine(config("5m"));
        // One source for two providers with the same spec.
        assert!(Arc::ptr_eq(&slot(&first, 0), &slot(&first, 1)));
        assert!(!Arc::ptr_eq(&slot(&first, 0), &slot(&first, 2)));
        assert_eq!(sources.running.len(), 2);

        let same = sources.engine(config("5m"));
        assert!(Arc::ptr_eq(&slot(&first, 0), &slot(&same, 0)));
        assert!(Arc::ptr_eq(&slot(&first, 2), &slot(&same, 2)));
        assert!(sources.running.values().all(|(_, h)| h.is_running()));

        let slower = sources.engine(config("1h"));
        assert!(!Arc::ptr_eq(&slot(&first, 0), &slot(&slower, 0)));
        assert!(Arc::ptr_eq(&slot(&first, 2), &slot(&slower, 2)));
        assert_eq!(sources.running.len(), 2, "the 5m source stopped");

        let none = portcullis_policy::config::parse(
            "providers: []\nrules: [{name: d, match: {}, allow: anonymous}]\n",
            "test.yaml",
            Path::new("."),
            &|_| None,
        )
        .unwrap();
        sources.engine(none);
        assert!(sources.running.is_empty());
    }

    /// Issue 18: a reload that changed only a source's tuning threw its last good
    /// keys away (with the key server down, every token was refused and `/readyz`
    /// was 503 until it came back). The new source starts from the old keys.
    #[tokio::test]
    async fn a_tuning_only_reload_carries_the_last_good_keys_over() {
        let mut sources = Sources::new(Arc::new(Metrics::new())).unwrap();
        let first = sources.engine(config("5m"));
        let keys = portcullis_jose::import_keys(
            br#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"a"}]}"#,
            portcullis_jose::KeyFormat::Detect,
            portcullis_jose::Secrets::Refuse,
        )
        .unwrap()
        .keys;
        // As if fetched before the key server (127.0.0.1:9) went down.
        slot(&first, 0).store(keys);
        let slower = sources.engine(config("1h"));
        let carried = slot(&slower, 0);
        assert!(!Arc::ptr_eq(&slot(&first, 0), &carried), "a new source");
        assert!(carried.is_ready());
        assert!(carried.load().unwrap().has_kid("a"));
        assert!(
            !slot(&slower, 2).is_ready(),
            "another place carries nothing"
        );
    }

    fn inject_config(audience: &str) -> Config {
        let text = format!(
            "rules:\n  - name: egress\n    inject: {{audience: {audience}, socket: 'unix:///nonexistent/agent.sock'}}\n"
        );
        portcullis_policy::config::parse(&text, "test.yaml", Path::new("."), &|_| None).unwrap()
    }

    /// A reload keeps an inject rule's token source (and its token) when its rule and
    /// config are unchanged, and starts a new one when they changed.
    #[tokio::test]
    async fn inject_sources_are_reused_across_reloads() {
        let mut sources = Sources::new(Arc::new(Metrics::new())).unwrap();
        let slot_of = |e: &Engine| e.inject_slots().next().unwrap().2.clone();
        let first = sources.engine(inject_config("a"));
        first
            .inject_slots()
            .next()
            .unwrap()
            .2
            .store(portcullis_policy::InjectedToken::try_new("t", i64::MAX).unwrap());
        let same = sources.engine(inject_config("a"));
        assert!(Arc::ptr_eq(&slot_of(&first), &slot_of(&same)));
        assert!(
            slot_of(&same).fresh(0).is_some(),
            "the token survived the reload"
        );
        let other = sources.engine(inject_config("b"));
        assert!(!Arc::ptr_eq(&slot_of(&first), &slot_of(&other)));
        assert_eq!(sources.injectors.len(), 1);
    }
}
