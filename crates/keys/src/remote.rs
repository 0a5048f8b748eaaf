//! JWKS URIs and OIDC discovery: fetch, refresh (honouring `Cache-Control`
//! within bounds), back off on failure, keep the last good set, refetch early
//! (rate-limited) when a token names an unknown `kid`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use portcullis_decider::{FetchOutcome, Metrics};
use portcullis_policy::KeySlot;
use portcullis_policy::config::FetchTuning;
use serde_json::Value;
use tokio::sync::Notify;

use crate::fetch::Fetcher;

/// What to fetch.
#[derive(Clone, Debug)]
pub(crate) enum Target {
    /// A JWKS URI.
    Jwks(String),
    /// An OIDC issuer URL.
    Discovery(String),
}

pub(crate) async fn run(
    provider: String,
    target: Target,
    tuning: FetchTuning,
    slot: Arc<KeySlot>,
    metrics: Arc<Metrics>,
    fetcher: Fetcher,
) {
    let wake = Arc::new(Notify::new());
    let epoch = Instant::now();
    // Milliseconds since `epoch` of the last kid-triggered refetch (0: never).
    let last_kid_refetch = Arc::new(AtomicU64::new(0));
    {
        let wake = wake.clone();
        let last = last_kid_refetch.clone();
        slot.set_refetch_hook(Box::new(move || {
            let now_ms = u64::try_from(epoch.elapsed().as_millis())
                .unwrap_or(u64::MAX)
                .max(1);
            let prev = last.load(Ordering::Acquire);
            let interval =
                u64::try_from(crate::UNKNOWN_KID_REFETCH_INTERVAL.as_millis()).unwrap_or(u64::MAX);
            if prev != 0 && now_ms.saturating_sub(prev) < interval {
                return false;
            }
            if last
                .compare_exchange(prev, now_ms, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                return false;
            }
            wake.notify_one();
            true
        }));
    }
    let mut jwks_uri = match &target {
        Target::Jwks(u) => Some(u.clone()),
        Target::Discovery(_) => None,
    };
    let mut backoff = Duration::from_millis(500);
    loop {
        let next = match cycle(
            &provider,
            &target,
            &mut jwks_uri,
            tuning,
            &slot,
            &metrics,
            &fetcher,
        )
        .await
        {
            Ok(max_age) => {
                backoff = Duration::from_millis(500);
                match max_age {
                    Some(age) => age.clamp(tuning.min_refresh, tuning.max_refresh),
                    None => tuning.refresh,
                }
            }
            Err(e) => {
                tracing::warn!(provider, error = %e, kept_last_good = slot.is_ready(), retry_in = ?backoff, "key fetch failed");
                let wait = backoff;
                backoff = (backoff * 2).min(tuning.refresh.min(Duration::from_secs(60)));
                wait
            }
        };
        tokio::select! {
            () = tokio::time::sleep(next) => {}
            () = wake.notified() => {}
        }
    }
}

async fn cycle(
    provider: &str,
    target: &Target,
    jwks_uri: &mut Option<String>,
    tuning: FetchTuning,
    slot: &KeySlot,
    metrics: &Metrics,
    fetcher: &Fetcher,
) -> Result<Option<Duration>, String> {
    if jwks_uri.is_none()
        && let Target::Discovery(issuer) = target
    {
        *jwks_uri = Some(discover(issuer, tuning, fetcher).await.inspect_err(|_| {
            metrics.jwks_fetch(provider, FetchOutcome::Error);
        })?);
    }
    let Some(uri) = jwks_uri.clone() else {
        return Err("no jwks_uri".to_owned());
    };
    let uri = uri.as_str();
    let fetched = match fetcher.get(uri, tuning.timeout).await {
        Ok(f) => f,
        Err(e) => {
            metrics.jwks_fetch(provider, FetchOutcome::Error);
            if matches!(target, Target::Discovery(_)) {
                // The jwks_uri may have moved: discover again next time.
                *jwks_uri = None;
            }
            return Err(format!("{uri}: {e}"));
        }
    };
    match crate::parse_keys(
        provider,
        uri,
        &fetched.body,
        portcullis_jose::Secrets::Refuse,
    ) {
        Ok(keys) => {
            metrics.jwks_fetch(provider, FetchOutcome::Success);
            crate::publish(provider, slot, metrics, keys);
            Ok(fetched.max_age)
        }
        Err(e) => {
            metrics.jwks_fetch(provider, FetchOutcome::Invalid);
            Err(format!("{uri}: {e}"))
        }
    }
}

/// Reads the discovery document; its `issuer` must equal the configured one (OIDC Discovery §4.3).
async fn discover(issuer: &str, tuning: FetchTuning, fetcher: &Fetcher) -> Result<String, String> {
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let doc = fetcher
        .get(&url, tuning.timeout)
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let value: Value = serde_json::from_slice(&doc.body).map_err(|e| format!("{url}: {e}"))?;
    let found = value
        .get("issuer")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if found != issuer {
        return Err(format!(
            "{url}: issuer {found:?} differs from the configured {issuer:?}"
        ));
    }
    value
        .get("jwks_uri")
        .and_then(Value::as_str)
        .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
        .map(str::to_owned)
        .ok_or_else(|| format!("{url}: no http(s) jwks_uri"))
}
