//! Active health checks: one background task per URL of an upstream asks
//! `GET health_check.path` every `interval`; `unhealthy_threshold` failures in a
//! row (no answer within `timeout`, or not 2xx) mark the URL down, and
//! `healthy_threshold` passes in a row mark it up again. The tasks end when the
//! upstream's pool is dropped (a reload that changed it).

use std::sync::{Arc, Weak};

use bytes::Bytes;
use http::{Request, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use portcullis_policy::config::HealthCheck;
use tokio::time::MissedTickBehavior;

use crate::balance::Endpoints;
use crate::upstream::Connector;

/// The largest health answer body read (then the connection can be reused).
const BODY_LIMIT: usize = 64 * 1024;

/// Starts the checks of every endpoint (needs a Tokio runtime; none: no checks).
pub(crate) fn spawn(
    upstream: &str,
    endpoints: &Arc<Endpoints>,
    check: &HealthCheck,
    client: Client<Connector, Empty<Bytes>>,
) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::warn!(
            upstream,
            "no runtime to run health checks on; every URL is taken as healthy"
        );
        return;
    };
    for (index, endpoint) in endpoints.all().iter().enumerate() {
        let scheme = if endpoint.url.https { "https" } else { "http" };
        let url = format!(
            "{scheme}://{}{}{}",
            endpoint.url.authority, endpoint.url.base_path, check.path
        );
        let Ok(uri) = url.parse::<Uri>() else {
            tracing::warn!(
                upstream,
                url,
                "health check URL does not parse; not checked"
            );
            continue;
        };
        runtime.spawn(run(
            upstream.to_owned(),
            Arc::downgrade(endpoints),
            index,
            uri,
            check.clone(),
            client.clone(),
        ));
    }
}

async fn run(
    upstream: String,
    endpoints: Weak<Endpoints>,
    index: usize,
    uri: Uri,
    check: HealthCheck,
    client: Client<Connector, Empty<Bytes>>,
) {
    let mut ticks = tokio::time::interval(check.interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let (mut passes, mut failures) = (0u32, 0u32);
    loop {
        ticks.tick().await;
        if endpoints.strong_count() == 0 {
            return;
        }
        let outcome = probe(&client, &uri, &check).await;
        let Some(all) = endpoints.upgrade() else {
            return;
        };
        let Some(endpoint) = all.all().get(index) else {
            return;
        };
        match outcome {
            Ok(()) => {
                failures = 0;
                passes = passes.saturating_add(1);
                if !endpoint.is_healthy()
                    && passes >= check.healthy_threshold
                    && endpoint.set_healthy(true)
                {
                    tracing::info!(upstream, url = %uri, passes, "upstream URL healthy again");
                }
            }
            Err(why) => {
                passes = 0;
                failures = failures.saturating_add(1);
                if endpoint.is_healthy()
                    && failures >= check.unhealthy_threshold
                    && endpoint.set_healthy(false)
                {
                    tracing::warn!(upstream, url = %uri, failures, reason = why, "upstream URL unhealthy; skipped until it passes its checks");
                }
            }
        }
    }
}

/// One check: a 2xx within the timeout passes.
async fn probe(
    client: &Client<Connector, Empty<Bytes>>,
    uri: &Uri,
    check: &HealthCheck,
) -> Result<(), String> {
    let Ok(req) = Request::get(uri.clone())
        .header("user-agent", "portcullis-health-check")
        .body(Empty::new())
    else {
        return Err("the check request cannot be built".to_owned());
    };
    let answer = async {
        let resp = client
            .request(req)
            .await
            .map_err(|e| format!("no answer: {e}"))?;
        let status = resp.status();
        let _ = Limited::new(resp.into_body(), BODY_LIMIT).collect().await;
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("status {status}"))
        }
    };
    match tokio::time::timeout(check.timeout, answer).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {:?}", check.timeout)),
    }
}
