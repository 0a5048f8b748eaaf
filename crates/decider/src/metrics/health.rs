//! Gauges read at scrape time: per provider the age of its key set and how its last
//! fetch ended; the last config reload; the build. Written rarely (a fetch, a
//! reload), read on a scrape, never touched on the request path.

use std::collections::BTreeMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use portcullis_policy::Clock;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;

use super::FetchOutcome;

/// The outcomes a fetch can have, as label values: a fixed set, so a provider has
/// exactly three `portcullis_jwks_last_fetch` series.
const OUTCOMES: [(FetchOutcome, &str); 3] = [
    (FetchOutcome::Error, "error"),
    (FetchOutcome::Invalid, "invalid"),
    (FetchOutcome::Success, "success"),
];

/// What is known of one provider's keys.
#[derive(Clone, Copy, Debug, Default)]
struct ProviderHealth {
    /// When keys were last published (a successful fetch or read), seconds since the epoch.
    published_at: Option<i64>,
    /// How the last fetch ended (none for keys that are never fetched: inline, PEM).
    last_outcome: Option<FetchOutcome>,
}

/// The last config (re)load.
#[derive(Clone, Copy, Debug, Default)]
struct ReloadHealth {
    /// Whether the last load or reload was applied.
    successful: bool,
    /// When a config was last applied, seconds since the epoch.
    success_at: Option<i64>,
}

#[derive(Clone, Debug, EncodeLabelSet, Eq, Hash, PartialEq)]
struct ProviderLabel {
    provider: String,
}

#[derive(Clone, Debug, EncodeLabelSet, Eq, Hash, PartialEq)]
struct ProviderOutcome {
    provider: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, EncodeLabelSet, Eq, Hash, PartialEq)]
struct BuildLabels {
    version: &'static str,
    arch: &'static str,
    os: &'static str,
}

/// The state behind the scrape-time gauges.
#[derive(Debug)]
pub(crate) struct Health {
    clock: ArcSwap<Arc<dyn Clock>>,
    providers: ArcSwap<BTreeMap<String, ProviderHealth>>,
    reload: ArcSwap<ReloadHealth>,
}

impl Health {
    pub(crate) fn new(clock: Arc<dyn Clock>) -> Health {
        Health {
            clock: ArcSwap::from_pointee(clock),
            providers: ArcSwap::default(),
            reload: ArcSwap::default(),
        }
    }

    pub(crate) fn set_clock(&self, clock: Arc<dyn Clock>) {
        self.clock.store(Arc::new(clock));
    }

    fn now(&self) -> i64 {
        self.clock.load().now()
    }

    fn update(&self, provider: &str, f: impl Fn(&mut ProviderHealth)) {
        self.providers.rcu(|map| {
            let mut map = BTreeMap::clone(map);
            f(map.entry(provider.to_owned()).or_default());
            map
        });
    }

    /// `provider`'s keys were (re)published now.
    pub(crate) fn published(&self, provider: &str) {
        let now = self.now();
        self.update(provider, |p| p.published_at = Some(now));
    }

    /// A fetch of `provider`'s keys ended with `outcome`.
    pub(crate) fn fetched(&self, provider: &str, outcome: FetchOutcome) {
        let now = self.now();
        self.update(provider, |p| {
            p.last_outcome = Some(outcome);
            if outcome == FetchOutcome::Success {
                p.published_at = Some(now);
            }
        });
    }

    /// A config load or reload was applied (`true`) or refused (`false`).
    pub(crate) fn reloaded(&self, applied: bool) {
        let now = self.now();
        self.reload.rcu(|r| ReloadHealth {
            successful: applied,
            success_at: if applied { Some(now) } else { r.success_at },
        });
    }
}

/// Encodes [`Health`] on every scrape.
#[derive(Debug)]
pub(crate) struct HealthCollector(pub(crate) Arc<Health>);

impl Collector for HealthCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let health = &self.0;
        let now = health.now();
        let providers = health.providers.load();

        let build = ConstGauge::new(1_i64);
        let mut family = encoder.encode_descriptor(
            "portcullis_build_info",
            "The running build: always 1, its labels say which",
            None,
            build.metric_type(),
        )?;
        build.encode(family.encode_family(&BuildLabels {
            version: env!("CARGO_PKG_VERSION"),
            arch: std::env::consts::ARCH,
            os: std::env::consts::OS,
        })?)?;

        let mut family = encoder.encode_descriptor(
            "portcullis_jwks_age_seconds",
            "Seconds since each provider's keys were last fetched or read successfully",
            None,
            build.metric_type(),
        )?;
        for (name, p) in providers.iter() {
            if let Some(at) = p.published_at {
                let age = ConstGauge::new(now.saturating_sub(at).max(0));
                age.encode(family.encode_family(&ProviderLabel {
                    provider: name.clone(),
                })?)?;
            }
        }

        let mut family = encoder.encode_descriptor(
            "portcullis_jwks_last_success_timestamp_seconds",
            "When each provider's keys were last fetched or read successfully (Unix time)",
            None,
            build.metric_type(),
        )?;
        for (name, p) in providers.iter() {
            if let Some(at) = p.published_at {
                ConstGauge::new(at).encode(family.encode_family(&ProviderLabel {
                    provider: name.clone(),
                })?)?;
            }
        }

        let mut family = encoder.encode_descriptor(
            "portcullis_jwks_last_fetch",
            "How each provider's last key fetch ended: 1 for that outcome, 0 for the others",
            None,
            build.metric_type(),
        )?;
        for (name, p) in providers.iter() {
            let Some(last) = p.last_outcome else { continue };
            for (outcome, label) in OUTCOMES {
                ConstGauge::new(i64::from(outcome == last)).encode(family.encode_family(
                    &ProviderOutcome {
                        provider: name.clone(),
                        outcome: label,
                    },
                )?)?;
            }
        }

        let reload = health.reload.load();
        let successful = ConstGauge::new(i64::from(reload.successful));
        let family = encoder.encode_descriptor(
            "portcullis_config_last_reload_successful",
            "Whether the last config load or reload was applied (1) or refused (0)",
            None,
            successful.metric_type(),
        )?;
        successful.encode(family)?;
        let at = ConstGauge::new(reload.success_at.unwrap_or(0));
        let family = encoder.encode_descriptor(
            "portcullis_config_last_reload_success_timestamp_seconds",
            "When a config was last applied (Unix time; 0 before the first)",
            None,
            at.metric_type(),
        )?;
        at.encode(family)?;
        Ok(())
    }
}
