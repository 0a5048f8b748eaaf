//! The introspection layer (RFC 7662): the engine denies an opaque token whose
//! provider introspects with the question to ask; this asks it (off the pure core;
//! cached and single-flight in the introspector) and decides again with the answer.

use std::fmt;
use std::sync::Arc;

use portcullis_policy::{Decision, Introspect, IntrospectionAsk};

use crate::step::{Round, Step, StepFuture};

/// Asks the app's introspector.
pub(crate) struct Introspection(pub(crate) Arc<dyn Introspect>);

/// The question the decision asks, if any.
fn ask(decision: &Decision) -> Option<&IntrospectionAsk> {
    match decision {
        Decision::Deny(d) => d.introspect.as_deref(),
        // A dry-run rule asks too: what it would decide depends on the answer.
        Decision::Allow(a) => a.dry_run.as_ref().and_then(|d| d.introspect.as_deref()),
    }
}

impl Step for Introspection {
    fn wants(&self, decision: &Decision) -> bool {
        ask(decision).is_some()
    }

    fn run<'a>(&'a self, round: &'a mut Round<'_>) -> StepFuture<'a> {
        Box::pin(async move {
            let Some(ask) = ask(&round.decision).cloned() else {
                return;
            };
            let Some(provider) = round.engine.providers().get(ask.provider) else {
                return;
            };
            let answer = self.0.introspect(provider, &ask.token, round.now()).await;
            round.learn_introspection(answer);
            round.decide_again();
        })
    }
}

impl fmt::Debug for Introspection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Introspection")
    }
}
