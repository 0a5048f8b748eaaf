//! Prometheus metrics (text format): decisions, latency, JWKS fetches, cache, reloads.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use portcullis_policy::{CacheStats, Decision, DenyReason};
use prometheus_client::collector::Collector;
use std::fmt::Write as _;

use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeLabelValue, EncodeMetric, LabelValueEncoder,
};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::Frontend;

mod decision_counters;
mod exchange;
mod health;
mod login;
mod sessions;

use decision_counters::DecisionCounters;
use exchange::ExchangeLabels;
mod telemetry;

use health::{Health, HealthCollector};
use login::LoginLabels;
pub use login::LoginStep;
use sessions::SessionMetrics;
pub use sessions::{SessionEnd, SessionStoreKind};
pub use telemetry::{SpanCounts, SpanDrop};

/// A shared label value: cloning it is an atomic increment, not an allocation.
#[derive(Clone, Debug, Default, Eq, Hash, PartialEq)]
struct Name(Option<Arc<str>>);

impl EncodeLabelValue for Name {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        encoder.write_str(self.0.as_deref().unwrap_or(""))
    }
}

#[derive(Clone, Debug, EncodeLabelSet, Eq, Hash, PartialEq)]
struct DecisionLabels {
    frontend: Frontend,
    result: &'static str,
    reason: &'static str,
    rule: Name,
    provider: Name,
}

#[derive(Clone, Debug, EncodeLabelSet, Eq, Hash, PartialEq)]
struct DryRunLabels {
    frontend: Frontend,
    reason: &'static str,
    rule: Name,
}

#[derive(Clone, Debug, EncodeLabelSet, Eq, Hash, PartialEq)]
struct FrontendLabel {
    frontend: Frontend,
}

#[derive(Clone, Debug, EncodeLabelSet, Eq, Hash, PartialEq)]
struct FetchLabels {
    provider: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, EncodeLabelSet, Eq, Hash, PartialEq)]
struct ProviderLabel {
    provider: String,
}

#[derive(Clone, Debug, EncodeLabelSet, Eq, Hash, PartialEq)]
struct OutcomeLabel {
    outcome: &'static str,
}

/// How a JWKS fetch ended.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum FetchOutcome {
    /// New keys published.
    Success,
    /// The fetch failed (network, status, timeout); the last good keys stay.
    Error,
    /// The document was unusable (not JSON, no usable key); the last good keys stay.
    Invalid,
}

/// How a config reload ended.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum ReloadOutcome {
    /// Swapped in.
    Applied,
    /// Refused; the old config keeps serving.
    Rejected,
}

/// Every metric Portcullis exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    decisions: Family<DecisionLabels, Counter>,
    /// The series of `decisions` already resolved, found without the family's lock.
    decision_counters: DecisionCounters,
    dry_runs: Family<DryRunLabels, Counter>,
    latency: Family<FrontendLabel, Histogram>,
    /// The latency series of the frontends every server runs, resolved once and
    /// indexed by [`Frontend::served_index`]: the family's lookup hashes the labels
    /// under a lock on every request.
    served_latency: [Histogram; 2],
    fetches: Family<FetchLabels, Counter>,
    keys: Family<ProviderLabel, Gauge>,
    reloads: Family<OutcomeLabel, Counter>,
    login: Family<LoginLabels, Counter>,
    exchanges: Family<ExchangeLabels, Counter>,
    sessions: SessionMetrics,
    cache: Arc<CacheStats>,
    health: Arc<Health>,
    spans: Arc<SpanCounts>,
}

#[derive(Debug)]
struct CacheCollector(Arc<CacheStats>);

impl Collector for CacheCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for (name, help, value) in [
            (
                "portcullis_token_cache_hits",
                "Decisions answered from the verified-token cache",
                &self.0.hits,
            ),
            (
                "portcullis_token_cache_misses",
                "Decisions that had to verify the token",
                &self.0.misses,
            ),
        ] {
            let counter = ConstCounter::new(value.load(Ordering::Relaxed));
            let metric = encoder.encode_descriptor(name, help, None, counter.metric_type())?;
            counter.encode(metric)?;
        }
        Ok(())
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A fresh registry with every series.
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let decisions = Family::<DecisionLabels, Counter>::default();
        registry.register(
            "portcullis_decisions",
            "Decisions by frontend, result, reason, rule and provider",
            decisions.clone(),
        );
        let dry_runs = Family::<DryRunLabels, Counter>::default();
        registry.register(
            "portcullis_dry_run_denies",
            "Requests a `mode: dry_run` rule would have denied (and allowed), by frontend, reason and rule",
            dry_runs.clone(),
        );
        let latency = Family::<FrontendLabel, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005,
                0.01, 0.025, 0.1, 1.0,
            ])
        });
        registry.register(
            "portcullis_decision_duration_seconds",
            "Time to decide, by frontend",
            latency.clone(),
        );
        let fetches = Family::<FetchLabels, Counter>::default();
        registry.register(
            "portcullis_jwks_fetches",
            "JWKS fetches by provider and outcome",
            fetches.clone(),
        );
        let keys = Family::<ProviderLabel, Gauge>::default();
        registry.register(
            "portcullis_provider_keys",
            "Usable keys per provider",
            keys.clone(),
        );
        let reloads = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "portcullis_config_reloads",
            "Config reloads by outcome",
            reloads.clone(),
        );
        // Both outcomes from the start, so a first refusal is a change from 0.
        for outcome in ["applied", "rejected"] {
            let _ = reloads.get_or_create(&OutcomeLabel { outcome });
        }
        let login = Family::<LoginLabels, Counter>::default();
        registry.register(
            "portcullis_login",
            "Login endpoint requests (and session refreshes) by step and outcome",
            login.clone(),
        );
        let exchanges = exchange::register(&mut registry);
        let sessions = SessionMetrics::register(&mut registry);
        let cache = Arc::new(CacheStats::default());
        registry.register_collector(Box::new(CacheCollector(cache.clone())));
        let health = Arc::new(Health::new(Arc::new(portcullis_policy::SystemClock)));
        registry.register_collector(Box::new(HealthCollector(health.clone())));
        let spans = Arc::new(SpanCounts::default());
        registry.register_collector(Box::new(telemetry::SpanCollector(spans.clone())));
        let served_latency = Frontend::SERVED
            .map(|frontend| latency.get_or_create(&FrontendLabel { frontend }).clone());
        Metrics {
            registry,
            decisions,
            decision_counters: DecisionCounters::default(),
            dry_runs,
            latency,
            served_latency,
            fetches,
            keys,
            reloads,
            login,
            exchanges,
            sessions,
            cache,
            health,
            spans,
        }
    }

    /// Reads time by `clock` (key-set ages, reload timestamps) instead of the system's.
    #[must_use]
    pub fn with_clock(self, clock: Arc<dyn portcullis_policy::Clock>) -> Metrics {
        self.health.set_clock(clock);
        self
    }

    /// The config a server starts with was loaded (a reload that was applied, for
    /// the reload gauges).
    pub fn config_loaded(&self) {
        self.health.reloaded(true);
    }

    /// The span export's counters (exported, dropped), shared with the exporter.
    pub fn span_counts(&self) -> Arc<SpanCounts> {
        self.spans.clone()
    }

    /// The cache counters shared with every engine.
    pub fn cache_stats(&self) -> Arc<CacheStats> {
        self.cache.clone()
    }

    /// Counts a decision.
    pub fn record(&self, decision: &Decision, frontend: Frontend, elapsed: Duration) {
        let (reason, rule, provider) = match decision {
            Decision::Allow(a) => (
                None,
                Some(&a.rule),
                a.identity.as_ref().map(|i| &i.provider),
            ),
            Decision::Deny(d) => (Some(d.reason), d.rule.as_ref(), d.provider.as_ref()),
        };
        let key = decision_counters::Key::new(frontend, reason, rule, provider);
        if !self.decision_counters.inc(&key) {
            // The first decision of these labels: the family makes the series.
            let labels = DecisionLabels {
                frontend,
                result: if reason.is_some() { "deny" } else { "allow" },
                reason: reason.map_or("", DenyReason::as_str),
                rule: Name(rule.cloned()),
                provider: Name(provider.cloned()),
            };
            let counter = self.decisions.get_or_create(&labels).clone();
            counter.inc();
            self.decision_counters.insert(key, &counter, rule, provider);
        }
        if let Decision::Allow(a) = decision
            && let Some(d) = a.dry_run.as_deref()
        {
            self.dry_runs
                .get_or_create(&DryRunLabels {
                    frontend,
                    reason: d.reason.as_str(),
                    rule: Name(d.rule.clone()),
                })
                .inc();
        }
        let seconds = elapsed.as_secs_f64();
        match frontend.served_index() {
            Some(i) => self.served_latency[i].observe(seconds),
            None => self
                .latency
                .get_or_create(&FrontendLabel { frontend })
                .observe(seconds),
        }
    }

    /// Counts a JWKS fetch.
    pub fn jwks_fetch(&self, provider: &str, outcome: FetchOutcome) {
        let fetch = outcome;
        let outcome = match outcome {
            FetchOutcome::Success => "success",
            FetchOutcome::Error => "error",
            FetchOutcome::Invalid => "invalid",
        };
        self.health.fetched(provider, fetch);
        self.fetches
            .get_or_create(&FetchLabels {
                provider: provider.to_owned(),
                outcome,
            })
            .inc();
    }

    /// Sets the number of usable keys of a provider.
    pub fn provider_keys(&self, provider: &str, count: usize) {
        self.health.published(provider);
        self.keys
            .get_or_create(&ProviderLabel {
                provider: provider.to_owned(),
            })
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// Counts a config reload.
    pub fn reload(&self, outcome: ReloadOutcome) {
        self.health.reloaded(outcome == ReloadOutcome::Applied);
        if outcome == ReloadOutcome::Applied {
            // The new config's rule and provider names are new allocations.
            self.decision_counters.clear();
        }
        let outcome = match outcome {
            ReloadOutcome::Applied => "applied",
            ReloadOutcome::Rejected => "rejected",
        };
        self.reloads.get_or_create(&OutcomeLabel { outcome }).inc();
    }

    /// Counts a login endpoint request (or a refresh) and how it ended (`ok` or a
    /// fixed reason code).
    pub fn login(&self, step: LoginStep, outcome: &'static str) {
        self.login
            .get_or_create(&LoginLabels {
                step: step.as_str(),
                outcome,
            })
            .inc();
    }

    /// Counts a session begun.
    pub fn session_created(&self, store: SessionStoreKind) {
        self.sessions.created(store);
    }

    /// Counts `count` sessions ended (before they expired) by `cause`.
    pub fn sessions_ended(&self, store: SessionStoreKind, cause: SessionEnd, count: u64) {
        self.sessions.ended(store, cause, count);
    }

    /// Sets the number of unexpired sessions in the store.
    pub fn sessions_active(&self, store: SessionStoreKind, count: i64) {
        self.sessions.active(store, count);
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    /// Every series in `format`.
    pub fn encode_as(&self, format: MetricsFormat) -> String {
        let open_metrics = self.encode();
        match format {
            MetricsFormat::OpenMetrics => open_metrics,
            MetricsFormat::PrometheusText => prometheus_text(&open_metrics),
        }
    }
}

/// The exposition formats a scrape may ask for.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum MetricsFormat {
    /// OpenMetrics 1.0.0, when the scrape's `Accept` names it.
    OpenMetrics,
    /// Prometheus text format 0.0.4, the default.
    PrometheusText,
}

impl MetricsFormat {
    /// OpenMetrics when `accept` names `application/openmetrics-text`, else 0.0.4.
    pub fn from_accept(accept: Option<&str>) -> MetricsFormat {
        match accept {
            Some(a)
                if a.to_ascii_lowercase()
                    .contains("application/openmetrics-text") =>
            {
                MetricsFormat::OpenMetrics
            }
            _ => MetricsFormat::PrometheusText,
        }
    }

    /// The `Content-Type` of a body in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            MetricsFormat::OpenMetrics => {
                "application/openmetrics-text; version=1.0.0; charset=utf-8"
            }
            MetricsFormat::PrometheusText => "text/plain; version=0.0.4; charset=utf-8",
        }
    }
}

/// OpenMetrics text rewritten as Prometheus text 0.0.4: no `# EOF` or `# UNIT` lines,
/// and a counter family is named by its `_total` samples (0.0.4 has no suffix rule).
fn prometheus_text(open_metrics: &str) -> String {
    let counters: Vec<&str> = open_metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(open_metrics.len());
    for line in open_metrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .iter()
            .find_map(|p| line.strip_prefix(p).map(|rest| (*p, rest)));
        match meta {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                out.push_str(prefix);
                out.push_str(name);
                if counters.contains(&name) && !name.ends_with("_total") {
                    out.push_str("_total");
                }
                out.push(' ');
                out.push_str(tail);
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use portcullis_policy::Deny;

    use super::*;

    fn count(text: &str, frontend: &str) -> Option<u64> {
        let prefix =
            format!("portcullis_decision_duration_seconds_count{{frontend=\"{frontend}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .map(|n| n.trim().parse().unwrap())
    }

    #[test]
    fn prometheus_text_names_counters_by_their_samples_and_has_no_eof() {
        let m = Metrics::new();
        m.record(
            &Decision::Deny(Deny::request_invalid("test".to_owned())),
            Frontend::ForwardAuth,
            Duration::from_micros(20),
        );
        let om = m.encode_as(MetricsFormat::OpenMetrics);
        assert!(om.ends_with("# EOF\n"), "{om}");
        let text = m.encode_as(MetricsFormat::PrometheusText);
        assert!(!text.contains("# EOF"), "{text}");
        assert!(
            text.contains("# TYPE portcullis_decisions_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains("# HELP portcullis_decisions_total "),
            "{text}"
        );
        assert!(
            text.contains("# TYPE portcullis_decision_duration_seconds histogram\n"),
            "{text}"
        );
        assert_eq!(
            MetricsFormat::from_accept(Some(
                "application/openmetrics-text;version=1.0.0,text/plain;q=0.5"
            )),
            MetricsFormat::OpenMetrics
        );
        assert_eq!(
            MetricsFormat::from_accept(Some("*/*")),
            MetricsFormat::PrometheusText
        );
        assert_eq!(
            MetricsFormat::from_accept(None),
            MetricsFormat::PrometheusText
        );
    }

    #[test]
    fn latency_is_counted_per_frontend_known_or_not() {
        let m = Metrics::new();
        let deny = Decision::Deny(Deny::request_invalid("test".to_owned()));
        let text = m.encode();
        assert_eq!(count(&text, "forward_auth"), Some(0), "{text}");
        assert_eq!(count(&text, "ext_authz_grpc"), Some(0));
        assert_eq!(count(&text, "demo_upstream"), None);
        m.record(&deny, Frontend::ForwardAuth, Duration::from_micros(20));
        m.record(&deny, Frontend::ForwardAuth, Duration::from_micros(20));
        m.record(&deny, Frontend::ExtAuthzGrpc, Duration::from_micros(20));
        m.record(&deny, Frontend::Demo, Duration::from_micros(20));
        let text = m.encode();
        assert_eq!(count(&text, "forward_auth"), Some(2), "{text}");
        assert_eq!(count(&text, "ext_authz_grpc"), Some(1));
        assert_eq!(count(&text, "demo_upstream"), Some(1));
        assert!(text.contains(r#"portcullis_decisions_total{frontend="forward_auth",result="deny",reason="request_invalid""#), "{text}");
    }

    /// The fast path (counters found by the names' addresses) and the family's
    /// path (by text) count into one series, across a reload, and per label.
    #[test]
    fn decisions_are_counted_in_one_series_by_text_whichever_path_finds_it() {
        let m = Metrics::new();
        let deny_with = |rule: &Arc<str>, provider: &Arc<str>| {
            let mut d = Deny::request_invalid("test".to_owned());
            d.rule = Some(rule.clone());
            d.provider = Some(provider.clone());
            Decision::Deny(d)
        };
        let (rule, provider): (Arc<str>, Arc<str>) = (Arc::from("api"), Arc::from("idp"));
        let series = r#"portcullis_decisions_total{frontend="forward_auth",result="deny",reason="request_invalid",rule="api",provider="idp"}"#;
        for _ in 0..3 {
            m.record(
                &deny_with(&rule, &provider),
                Frontend::ForwardAuth,
                Duration::ZERO,
            );
        }
        assert_eq!(line(&m.encode(), series), Some("3"));
        // A reload: the same names as new allocations, the same series.
        m.reload(ReloadOutcome::Applied);
        let (rule2, provider2): (Arc<str>, Arc<str>) = (Arc::from("api"), Arc::from("idp"));
        for _ in 0..2 {
            m.record(
                &deny_with(&rule2, &provider2),
                Frontend::ForwardAuth,
                Duration::ZERO,
            );
        }
        // The old names once more (a decision in flight across the reload).
        m.record(
            &deny_with(&rule, &provider),
            Frontend::ForwardAuth,
            Duration::ZERO,
        );
        let text = m.encode();
        assert_eq!(line(&text, series), Some("6"), "{text}");
        // Another frontend and another rule are other series.
        let other: Arc<str> = Arc::from("admin");
        m.record(
            &deny_with(&other, &provider),
            Frontend::ForwardAuth,
            Duration::ZERO,
        );
        m.record(
            &deny_with(&rule, &provider),
            Frontend::ExtAuthzGrpc,
            Duration::ZERO,
        );
        let text = m.encode();
        assert_eq!(line(&text, series), Some("6"), "{text}");
        assert_eq!(
            line(&text, &series.replace("rule=\"api\"", "rule=\"admin\"")),
            Some("1"),
            "{text}"
        );
        assert_eq!(
            line(&text, &series.replace("forward_auth", "ext_authz_grpc")),
            Some("1"),
            "{text}"
        );
    }

    fn line<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
        text.lines()
            .find_map(|l| l.strip_prefix(prefix)?.strip_prefix(' '))
    }

    #[test]
    fn key_ages_fetch_outcomes_reloads_and_build_are_read_at_scrape_time() {
        let clock = Arc::new(portcullis_policy::ManualClock::new(1_000));
        let m = Metrics::new().with_clock(clock.clone());
        let text = m.encode_as(MetricsFormat::PrometheusText);
        assert_eq!(
            line(&text, "portcullis_config_last_reload_successful"),
            Some("0")
        );
        assert_eq!(
            line(
                &text,
                r#"portcullis_config_reloads_total{outcome="rejected"}"#
            ),
            Some("0"),
            "{text}"
        );
        assert!(!text.contains("portcullis_jwks_age_seconds{"), "{text}");
        let build = format!(
            r#"portcullis_build_info{{version="{}",arch="{}",os="{}"}} 1"#,
            env!("CARGO_PKG_VERSION"),
            std::env::consts::ARCH,
            std::env::consts::OS
        );
        assert!(text.contains(&build), "{text}");

        m.config_loaded();
        m.provider_keys("corp", 2);
        m.jwks_fetch("corp", FetchOutcome::Success);
        clock.advance(30);
        m.jwks_fetch("corp", FetchOutcome::Error);
        m.reload(ReloadOutcome::Rejected);
        clock.advance(12);
        let text = m.encode_as(MetricsFormat::PrometheusText);
        assert_eq!(
            line(&text, r#"portcullis_jwks_age_seconds{provider="corp"}"#),
            Some("42"),
            "{text}"
        );
        assert_eq!(
            line(
                &text,
                r#"portcullis_jwks_last_success_timestamp_seconds{provider="corp"}"#
            ),
            Some("1000")
        );
        for (outcome, v) in [("error", "1"), ("invalid", "0"), ("success", "0")] {
            let series =
                format!(r#"portcullis_jwks_last_fetch{{provider="corp",outcome="{outcome}"}}"#);
            assert_eq!(line(&text, &series), Some(v), "{series}\n{text}");
        }
        assert_eq!(
            line(&text, r#"portcullis_provider_keys{provider="corp"}"#),
            Some("2")
        );
        assert_eq!(
            line(&text, "portcullis_config_last_reload_successful"),
            Some("0")
        );
        assert_eq!(
            line(
                &text,
                "portcullis_config_last_reload_success_timestamp_seconds"
            ),
            Some("1000")
        );
        m.reload(ReloadOutcome::Applied);
        let text = m.encode_as(MetricsFormat::PrometheusText);
        assert_eq!(
            line(
                &text,
                "portcullis_config_last_reload_success_timestamp_seconds"
            ),
            Some("1042")
        );
        assert_eq!(
            line(&text, "portcullis_config_last_reload_successful"),
            Some("1")
        );
    }
}
