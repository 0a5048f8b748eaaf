//! The async side of deciding, shared by every frontend: the current [`Engine`]
//! (swapped whole on reload), then the layers that do the IO an answer asks for
//! (`step.rs`: introspection, the unknown-`kid` wait, token exchange, the DPoP
//! replay claim), then the outer layers every decision passes: the request ID,
//! metrics, and one log line per deny (rate-limited per reason).
#![warn(missing_docs)]

mod deny_log;
mod exchange;
mod explain;
mod frontend;
mod introspect;
mod key_wait;
mod metrics;
mod peer_cert;
mod replay;
mod request_id;
mod step;
mod trace;

use std::sync::Arc;
use std::time::{Duration, Instant};

use step::{Round, Step};

use arc_swap::ArcSwap;
use portcullis_policy::{
    AuthRequest, CacheStats, Clock, Decision, Engine, Introspect, SystemClock,
};

pub use deny_log::DENY_LINES_PER_SECOND;
pub use exchange::EXCHANGE_WAIT;
pub use frontend::Frontend;
pub use key_wait::REFETCH_WAIT;
pub use metrics::{
    FetchOutcome, LoginStep, Metrics, MetricsFormat, ReloadOutcome, SessionEnd, SessionStoreKind,
    SpanCounts, SpanDrop,
};
pub use replay::{REPLAY_WAIT, SharedReplay};
pub use request_id::{MAX_REQUEST_ID, request_id};
pub use trace::{DECISION_SPAN, TRACE_TARGET, TraceContext};

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
    /// Where DPoP proofs are claimed across replicas, when configured (swapped by a
    /// reload that changes `dpop.replay`).
    replay: Arc<arc_swap::ArcSwapOption<SharedReplay>>,
    /// The layers between the engine's first answer and the final one, in order
    /// (built from the fields above).
    steps: Vec<Box<dyn Step>>,
    /// Trace export: each decision gets a span (`None`: no span is made).
    trace: Option<Arc<dyn TraceContext>>,
}

/// The layers, in the order they run: introspection first (its answer is the
/// identity every later step works on), then the key wait, then the exchange of
/// the (now verified) inbound token, and last the replay claim of an allow.
fn steps(
    introspector: Option<&Arc<dyn Introspect>>,
    replay: &Arc<arc_swap::ArcSwapOption<SharedReplay>>,
) -> Vec<Box<dyn Step>> {
    let mut steps: Vec<Box<dyn Step>> = Vec::with_capacity(4);
    if let Some(introspector) = introspector {
        steps.push(Box::new(introspect::Introspection(introspector.clone())));
    }
    steps.push(Box::new(key_wait::KeyWait));
    steps.push(Box::new(exchange::Exchange));
    steps.push(Box::new(replay::ClaimProof(replay.clone())));
    steps
}

impl Decider {
    /// Starts with `engine`.
    pub fn new(engine: Engine, metrics: Arc<Metrics>) -> Decider {
        let cache_stats = metrics.cache_stats();
        let replay = Arc::default();
        Decider {
            engine: ArcSwap::from_pointee(engine.with_cache_stats(cache_stats.clone())),
            metrics,
            cache_stats,
            clock: Arc::new(SystemClock),
            deny_log: deny_log::DenyLog::new(),
            draining: std::sync::atomic::AtomicBool::new(false),
            introspector: None,
            steps: steps(None, &replay),
            replay,
            trace: None,
        }
    }

    /// Gives each decision a `portcullis.decision` span, a child of the request's
    /// `traceparent`, whose context allows carry onward.
    #[must_use]
    pub fn with_trace_context(mut self, trace: Arc<dyn TraceContext>) -> Decider {
        self.trace = Some(trace);
        self
    }

    /// Asks `introspector` about opaque tokens whose provider introspects them;
    /// without one, such tokens are denied (`introspection_unavailable`).
    #[must_use]
    pub fn with_introspector(mut self, introspector: Arc<dyn Introspect>) -> Decider {
        self.introspector = Some(introspector);
        self.steps = steps(self.introspector.as_ref(), &self.replay);
        self
    }

    /// Claims DPoP proofs in `store`, shared with the other replicas.
    #[must_use]
    pub fn with_replay(mut self, store: Option<SharedReplay>) -> Decider {
        self.replay.store(store.map(Arc::new));
        self.steps = steps(self.introspector.as_ref(), &self.replay);
        self
    }

    /// Claims DPoP proofs in `store` from now on (a reload that changed
    /// `dpop.replay`); `None` keeps proofs in this replica's memory only.
    pub fn set_replay(&self, store: Option<SharedReplay>) {
        self.replay.store(store.map(Arc::new));
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
        let Some(tc) = &self.trace else {
            return self.decide_untraced(req, frontend).await;
        };
        let span = trace::decision_span(&**tc, req, frontend);
        let mut decision = {
            use tracing::Instrument as _;
            self.decide_untraced(req, frontend)
                .instrument(span.clone())
                .await
        };
        trace::finish(&**tc, &span, &mut decision);
        decision
    }

    async fn decide_untraced(&self, req: &AuthRequest<'_>, frontend: Frontend) -> Decision {
        let started = Instant::now();
        let engine = self.engine.load_full();
        let mut round = Round::start(&engine, req, &*self.clock);
        round.run(&self.steps).await;
        let mut decision = round.decision;
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
