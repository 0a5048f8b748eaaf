//! Start and stop of `serve` (issue 18): a bounded wait for every provider's first
//! keys before listening (`startup.wait_for_keys`), the deny-log summaries once a
//! second, and the shutdown grace: on SIGTERM `/readyz` answers 503 first while
//! everything keeps serving for `shutdown_grace` (load balancers and Kubernetes
//! stop sending), HTTP/1 responses ask keep-alive clients to close, and only then
//! do the listeners drain.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use portcullis_decider::Decider;

/// Waits until every provider has keys, at most `limit`; logs who has none then.
pub(crate) async fn wait_for_keys(decider: &Decider, limit: Duration) {
    let engine = decider.engine();
    let deadline = tokio::time::Instant::now() + limit;
    tracing::info!(limit = ?limit, "waiting for every provider's first keys before listening");
    for provider in engine.providers() {
        let slot = provider.slot();
        while !slot.is_ready() {
            let seen = slot.generation();
            if tokio::time::timeout_at(deadline, slot.changed(seen))
                .await
                .is_err()
            {
                break;
            }
        }
    }
    let waiting: Vec<&str> = engine
        .providers()
        .iter()
        .filter(|p| !p.slot().is_ready())
        .map(|p| p.name())
        .collect();
    if waiting.is_empty() {
        tracing::info!("every provider has keys");
    } else {
        let waiting = waiting.join(",");
        tracing::warn!(providers = waiting, limit = ?limit, "serving without keys for some providers: their tokens are denied until keys arrive (/readyz answers 503 until then)");
    }
}

/// Logs the deny-log summaries once a second (a flood that stopped is summarised too).
pub(crate) async fn flush_deny_log(decider: Arc<Decider>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        decider.flush_deny_log();
    }
}

/// The grace after SIGTERM: readiness off, serving on, for `grace` (a second
/// signal ends it early).
pub(crate) async fn grace(
    decider: &Decider,
    draining: &AtomicBool,
    grace: Duration,
    second_signal: impl Future<Output = ()>,
) {
    decider.start_draining();
    draining.store(true, Ordering::Release);
    tracing::info!(grace = ?grace, "shutting down: /readyz answers 503; serving on for the grace period");
    tokio::select! {
        () = tokio::time::sleep(grace) => {}
        () = second_signal => tracing::info!("second signal: grace period cut short"),
    }
}
