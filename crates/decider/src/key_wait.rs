//! The unknown-`kid` layer: a token whose `kid` the keys lack may carry a key just
//! rotated in, and the engine has started a refetch. Every request that asks while
//! that fetch runs waits on it (not only the one that started it), woken when the
//! fetch ends whatever it found (no polling), bounded by [`REFETCH_WAIT`]; then the
//! round decides again.

use std::time::Duration;

use portcullis_policy::Decision;

use crate::step::{Round, Step, StepFuture};

/// How long a request waits for a key refetch started because of its unknown `kid`.
pub const REFETCH_WAIT: Duration = Duration::from_secs(2);

/// Waits for the refetch a decision started.
#[derive(Debug)]
pub(crate) struct KeyWait;

impl Step for KeyWait {
    fn wants(&self, decision: &Decision) -> bool {
        matches!(decision, Decision::Deny(d) if d.refetch_started.is_some())
    }

    fn run<'a>(&'a self, round: &'a mut Round<'_>) -> StepFuture<'a> {
        Box::pin(async move {
            let Decision::Deny(deny) = &round.decision else {
                return;
            };
            let Some(provider) = deny.refetch_started else {
                return;
            };
            let Some(slot) = round
                .engine
                .providers()
                .get(provider)
                .map(|p| p.slot().clone())
            else {
                return;
            };
            let round_no = slot.round();
            // The fetch may have ended between the engine's ask and `round`.
            let arrived = deny
                .token_hints
                .kid
                .as_deref()
                .is_some_and(|k| slot.load().is_some_and(|keys| keys.has_kid(k)));
            if !arrived {
                let _ = tokio::time::timeout(REFETCH_WAIT, slot.next_round(round_no)).await;
            }
            round.decide_again();
        })
    }
}
