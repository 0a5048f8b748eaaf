//! What the proxy listener does after the decision (proxy mode): where an allowed
//! request goes, and the answers that come from the upstream rather than from the
//! decision: 404 `no_upstream`, 502 `upstream_unavailable`, 504 `upstream_timeout`.
//! Said only when the config has `upstreams` (forward auth and ext_authz answer
//! the decision as it is).

use std::time::Duration;

use super::Step;
use crate::config::{Balance, ProxySettings, UpstreamConfig};
use crate::decision::{Decision, DenyReason};

/// The `proxy` step of an allowed request, when the config has upstreams.
pub(crate) fn proxy_step<'a>(
    proxy: &ProxySettings,
    decision: &Decision,
    upstream_of: impl FnOnce(&str) -> Option<&'a std::sync::Arc<UpstreamConfig>>,
) -> Option<Step> {
    if proxy.upstreams.is_empty() {
        return None;
    }
    let Decision::Allow(allow) = decision else {
        return None;
    };
    let Some(upstream) = upstream_of(&allow.rule) else {
        return Some(Step::new(
            "proxy",
            false,
            format!(
                "on the proxy listener: rule {:?} names no upstream, so it answers {} {} (forward auth and ext_authz allow)",
                &*allow.rule,
                DenyReason::NoUpstream.status().code(),
                DenyReason::NoUpstream,
            ),
        ));
    };
    let urls: Vec<String> = upstream
        .urls
        .iter()
        .map(|u| {
            format!(
                "{}://{}{}",
                if u.https { "https" } else { "http" },
                u.authority,
                u.base_path
            )
        })
        .collect();
    let balance = match upstream.balance {
        Balance::RoundRobin => "round robin",
        Balance::LeastRequests => "least requests",
    };
    let unavailable = DenyReason::UpstreamUnavailable;
    let timeout = DenyReason::UpstreamTimeout;
    let mut detail = format!(
        "on the proxy listener: forwarded to upstream {:?} [{}] ({balance}, connect timeout {}, timeout {}); a connect that fails or takes over {}: {} {unavailable}; no response head within {}: {} {timeout}",
        upstream.name,
        urls.join(", "),
        secs(upstream.connect_timeout),
        secs(upstream.timeout),
        secs(upstream.connect_timeout),
        unavailable.status().code(),
        secs(upstream.timeout),
        timeout.status().code(),
    );
    if upstream.health_check.is_some() {
        detail.push_str(&format!(
            "; URLs failing their health check are skipped, every URL down: {} {unavailable}",
            unavailable.status().code()
        ));
    }
    Some(Step::new("proxy", true, detail))
}

fn secs(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}
