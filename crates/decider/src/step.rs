//! The decider's layers. The pure engine answers at once; some answers ask for IO
//! first: introspect an opaque token, wait for a key refetch, exchange a token,
//! claim a DPoP proof. Each of those is one [`Step`], run in order on a [`Round`]:
//! a step looks at the decision so far (cheaply, without allocating, when it has
//! nothing to do), does its IO, and usually decides again with what it learned.
//!
//! Adding a layer is one module with one `Step` and one entry in
//! [`crate::Decider`]'s list; frontends and the engine do not change.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use portcullis_policy::{AuthRequest, Clock, Decision, Engine, Introspected};

/// What a step's IO returns: nothing, it works on the round.
pub(crate) type StepFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// One layer between the engine's first answer and the final decision.
pub(crate) trait Step: Send + Sync + fmt::Debug {
    /// Whether `decision` asks for this step. Called on every request: no IO, no
    /// allocation.
    fn wants(&self, decision: &Decision) -> bool;

    /// Runs the step on `round`; it may replace `round.decision`.
    fn run<'a>(&'a self, round: &'a mut Round<'_>) -> StepFuture<'a>;
}

/// One request on its way through the steps: the engine it started on (a reload
/// mid-way does not mix two configs), what the steps learned, the decision so far.
pub(crate) struct Round<'r> {
    pub(crate) engine: &'r Engine,
    req: &'r AuthRequest<'r>,
    /// The introspection answer a step got, kept for every later re-decision
    /// (an exchange or a key wait after an introspection must not lose it).
    introspected: Option<Introspected>,
    pub(crate) decision: Decision,
    clock: &'r dyn Clock,
}

impl<'r> Round<'r> {
    /// Decides `req` on `engine` for the first time.
    pub(crate) fn start(
        engine: &'r Engine,
        req: &'r AuthRequest<'r>,
        clock: &'r dyn Clock,
    ) -> Self {
        let decision = engine.decide(req, clock.now());
        Round {
            engine,
            req,
            introspected: None,
            decision,
            clock,
        }
    }

    /// Now, by the decider's clock.
    pub(crate) fn now(&self) -> i64 {
        self.clock.now()
    }

    /// The request's headers.
    pub(crate) fn headers(&self) -> &'r http::HeaderMap {
        self.req.headers
    }

    /// The decider's clock.
    pub(crate) fn clock(&self) -> &'r dyn Clock {
        self.clock
    }

    /// The request with everything the steps have learned so far.
    pub(crate) fn request(&self) -> AuthRequest<'_> {
        AuthRequest {
            introspected: self.introspected.as_ref().or(self.req.introspected),
            ..*self.req
        }
    }

    /// Keeps `answer` for this and every later decision of the round.
    pub(crate) fn learn_introspection(&mut self, answer: Introspected) {
        self.introspected = Some(answer);
    }

    /// Decides again with what the steps have learned.
    pub(crate) fn decide_again(&mut self) {
        let decision = self.engine.decide(&self.request(), self.clock.now());
        self.decision = decision;
    }

    /// Runs every step that the decision asks for, in order.
    pub(crate) async fn run(&mut self, steps: &[Box<dyn Step>]) {
        for step in steps {
            if step.wants(&self.decision) {
                step.run(self).await;
            }
        }
    }
}
