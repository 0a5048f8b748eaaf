//! `portcullis_token_exchange_total{rule, outcome}`: the token exchanges (RFC 8693)
//! of `inject` rules, by how they ended (bounded labels: the config's rule names,
//! a fixed set of outcomes: `exchanged`, `refused`, `refused_cached`, `error`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use super::Metrics;

/// The outcomes the counter knows; anything else is counted as `error`.
const OUTCOMES: [&str; 4] = ["error", "exchanged", "refused", "refused_cached"];

#[derive(Clone, Debug, EncodeLabelSet, Eq, Hash, PartialEq)]
pub(super) struct ExchangeLabels {
    rule: String,
    outcome: &'static str,
}

pub(super) fn register(registry: &mut Registry) -> Family<ExchangeLabels, Counter> {
    let exchanges = Family::<ExchangeLabels, Counter>::default();
    registry.register(
        "portcullis_token_exchange",
        "Token exchanges (RFC 8693) of inject rules by rule and outcome (refused_cached: answered from the negative cache, the token endpoint not asked)",
        exchanges.clone(),
    );
    exchanges
}

impl Metrics {
    /// Counts a token exchange of `rule` that ended with `outcome` (`exchanged`,
    /// `refused`, `refused_cached` or `error`).
    pub fn token_exchange(&self, rule: &str, outcome: &str) {
        let outcome = OUTCOMES
            .iter()
            .copied()
            .find(|o| *o == outcome)
            .unwrap_or("error");
        self.exchanges
            .get_or_create(&ExchangeLabels {
                rule: rule.to_owned(),
                outcome,
            })
            .inc();
    }
}
