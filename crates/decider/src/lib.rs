//! The async side of deciding, shared by every frontend: the current [`Engine`]
//! (swapped whole on reload), metrics, one log line per deny (rate-limited per
//! reason), and a short wait
//! for keys when a token names a `kid` that a refetch may bring.
#![warn(missing_docs)]

mod deny_log;
mod exchange;
mod explain;
mod frontend;
mod metrics;
mod peer_cert;
mod replay;
mod request_id;

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use portcullis_policy::{
    AuthRequest, CacheStats, Clock, Decision, Engine, Introspect, SystemClock,
};

pub use deny_log::DENY_LINES_PER_SECOND;
pub use exchange::EXCHANGE_WAIT;
pub use frontend::Frontend;
pub use metrics::{FetchOutcome, Metrics, MetricsFormat, ReloadOutcome};
pub use replay::{REPLAY_WAIT, SharedReplay};
pub use request_id::{MAX_REQUEST_ID, request_id};

/// How long a request waits for a key refetch started because of its unknown `kid`.
pub const REFETCH_WAIT: Duration = Duration::from_secs(2);

/// The engine in force, and what every decision reports to.
#[derive(Debug)]
pub struct Decider {
    engine: ArcSwap<Engine>,
    metrics: Arc<Metrics>,
    cache_stats: Arc<CacheStats>,
    clock: Arc<dyn Clock>,
    deny_log: deny_log::DenyLog,
    /// Set on SIGTERM: `/readyz` answers 503 while the grace period runs.
    draining: std::sync::atomic::AtomicBool,
    /// Asks providers about opaque tokens (RFC 7662), when the app has one.
    introspector: Option<Arc<dyn Introspect>>,
    /// Where DPoP proofs are claimed across replicas, when configured.
    replay: Option<SharedReplay>,
}

impl Decider {
    /// Starts with `engine`.
    pub fn new(engine: Engine, metrics: Arc<Metrics>) -> Decider {
        let cache_stats = metrics.cache_stats();
        Decider {
            engine: ArcSwap::from_pointee(engine.with_cache_stats(cache_stats.clone())),
            metrics,
            cache_stats,
            clock: Arc::new(SystemClock),
            deny_log: deny_log::DenyLog::new(),
            draining: std::sync::atomic::AtomicBool::new(false),
            introspector: None,
            replay: None,
        }
    }

    /// Asks `introspector` about opaque tokens whose provider introspects them;
    /// without one, such tokens are denied (`introspection_unavailable`).
    #[must_use]
    pub fn with_introspector(mut self, introspector: Arc<dyn Introspect>) -> Decider {
        self.introspector = Some(introspector);
        self
    }

    /// Claims DPoP proofs in `store`, shared with the other replicas.
    #[must_use]
    pub fn with_replay(mut self, store: Option<SharedReplay>) -> Decider {
        self.replay = store;
        self
    }

    /// Decides by `clock` instead of the system's (tests of expiry and refresh).
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Decider {
        self.clock = clock;
        self
    }

    /// Now, by the decider's clock.
    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// Swaps in a new engine; requests in flight finish on the old one.
    pub fn swap(&self, engine: Engine) {
        self.engine
            .store(Arc::new(engine.with_cache_stats(self.cache_stats.clone())));
    }

    /// The engine in force.
    pub fn engine(&self) -> Arc<Engine> {
        self.engine.load_full()
    }

    /// The metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Decides, records and logs. `frontend` names the protocol.
    pub async fn decide(&self, req: &AuthRequest<'_>, frontend: Frontend) -> Decision {
        let started = Instant::now();
        let engine = self.engine.load_full();
        let mut decision = engine.decide(req, self.clock.now());
        // An opaque token: ask its provider (off the pure core), decide again with
        // the answer. Cached and single-flight in the introspector.
        let ask = match &decision {
            Decision::Deny(d) => d.introspect.clone(),
            // A dry-run rule asks too: what it would decide depends on the answer.
            Decision::Allow(a) => a.dry_run.as_ref().and_then(|d| d.introspect.clone()),
        };
        if let (Some(ask), Some(introspector)) = (ask, &self.introspector)
            && let Some(provider) = engine.providers().get(ask.provider)
        {
            let answer = introspector
                .introspect(provider, &ask.token, self.clock.now())
                .await;
            let again = AuthRequest {
                introspected: Some(&answer),
                ..*req
            };
            decision = engine.decide(&again, self.clock.now());
        }
        if let Decision::Deny(deny) = &decision
            && let Some(provider) = deny.refetch_started
        {
            // An unknown kid may be a key just rotated in: wait for the refetch in
            // flight (every request that asked while it runs waits on it, not only the
            // one that started it). Woken when the fetch ends, whatever it found (no
            // polling); bounded. Then decide again.
            if let Some(slot) = engine.providers().get(provider).map(|p| p.slot().clone()) {
                let round = slot.round();
                let kid = deny.token_hints.kid.as_deref();
                // The fetch may have ended between the engine's ask and `round`.
                let arrived = kid.is_some_and(|k| slot.load().is_some_and(|keys| keys.has_kid(k)));
                if !arrived {
                    let _ = tokio::time::timeout(REFETCH_WAIT, slot.next_round(round)).await;
                }
                decision = engine.decide(req, self.clock.now());
            }
        }
        exchange::run_pending(&mut decision, &engine, req, &self.clock).await;
        if let Some(store) = &self.replay {
            replay::claim_proof(&mut decision, &engine, req, store, self.clock.now()).await;
        }
        name_request(&mut decision, req);
        self.metrics.record(&decision, frontend, started.elapsed());
        self.log(&decision, req, frontend);
        decision
    }

    /// Marks the process as shutting down: readiness turns off, serving goes on.
    pub fn start_draining(&self) {
        self.draining
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// Whether the process is shutting down ([`Decider::start_draining`]).
    pub fn is_draining(&self) -> bool {
        self.draining.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Logs the summary lines of denies left out of the log (call once a second).
    pub fn flush_deny_log(&self) {
        self.deny_log.flush();
    }

    fn log(&self, decision: &Decision, req: &AuthRequest<'_>, frontend: Frontend) {
        let reason = match decision {
            Decision::Deny(d) => Some(d.reason),
            Decision::Allow(a) => a.dry_run.as_deref().map(|d| d.reason),
        };
        if reason.is_none_or(|r| self.deny_log.admit(r)) {
            log(decision, req, frontend);
        }
    }

    /// Records and logs a deny a frontend made before it could ask the engine
    /// (a request it cannot describe), so it is counted like every other decision.
    pub fn reject(
        &self,
        deny: portcullis_policy::Deny,
        req: &AuthRequest<'_>,
        frontend: Frontend,
    ) -> Decision {
        let mut decision = Decision::Deny(deny);
        name_request(&mut decision, req);
        self.metrics.record(&decision, frontend, Duration::ZERO);
        self.log(&decision, req, frontend);
        decision
    }
}

/// Seconds since the epoch, by the system clock (for callers without a decider).
pub fn now() -> i64 {
    SystemClock.now()
}

/// Gives a deny (or the deny a dry-run rule would answer) the request's ID.
fn name_request(decision: &mut Decision, req: &AuthRequest<'_>) {
    let deny = match decision {
        Decision::Deny(d) => d,
        Decision::Allow(a) => match a.dry_run.as_deref_mut() {
            Some(d) => d,
            None => return,
        },
    };
    if deny.request_id.is_none() {
        deny.request_id = Some(request_id(req.headers));
    }
}

fn log(decision: &Decision, req: &AuthRequest<'_>, frontend: Frontend) {
    match decision {
        // A dry-run rule that would have denied: logged like a deny, at info.
        Decision::Allow(a) if a.dry_run.is_some() => {
            if let Some(d) = a.dry_run.as_deref() {
                tracing::info!(
                    frontend = frontend.as_str(),
                    status = d.status(),
                    reason = d.reason.as_str(),
                    rule = d.rule.as_deref(),
                    provider = d.provider.as_deref(),
                    kid = d.token_hints.kid.as_deref(),
                    iss = d.token_hints.iss.as_deref(),
                    sub = d.token_hints.sub.as_deref(),
                    request_id = d.request_id.as_deref(),
                    method = req.method.as_str(),
                    host = clip(req.host),
                    path = clip(req.path),
                    detail = d.detail.as_str(),
                    "dry run: would deny (allowed)"
                );
            }
        }
        Decision::Allow(a) => tracing::debug!(
            frontend = frontend.as_str(),
            rule = &*a.rule,
            provider = a.identity.as_ref().map(|i| &*i.provider),
            method = req.method.as_str(),
            path = clip(req.path),
            "allow"
        ),
        // One line per deny: rule, provider, reason; never the token (at most kid, iss, sub).
        Decision::Deny(d) => tracing::info!(
            frontend = frontend.as_str(),
            status = d.status(),
            reason = d.reason.as_str(),
            rule = d.rule.as_deref(),
            provider = d.provider.as_deref(),
            kid = d.token_hints.kid.as_deref(),
            iss = d.token_hints.iss.as_deref(),
            sub = d.token_hints.sub.as_deref(),
            request_id = d.request_id.as_deref(),
            method = req.method.as_str(),
            peer = req
                .peer
                .and_then(|p| p.address)
                .map(tracing::field::display),
            client_cert = req
                .peer
                .and_then(|p| p.certificate.as_deref())
                .map(peer_cert::describe),
            host = clip(req.host),
            path = clip(req.path),
            detail = d.detail.as_str(),
            "deny"
        ),
    }
}

fn clip(s: &str) -> &str {
    match s.char_indices().nth(256) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests;
