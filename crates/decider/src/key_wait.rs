//! The unknown-`kid` layer: a token whose `kid` the keys lack may carry a key just
//! rotated in, and the engine has asked its source for a fetch. The request waits
//! for the fetch in flight or about to start (every request that asks while it runs
//! waits on it, not only the one that started it), woken when the fetch ends
//! whatever it found (no polling); then the round decides again, which asks the
//! source again: a junk `kid` stops waiting once a fetch did not bring it. One bound,
//! [`REFETCH_WAIT`], for the whole wait.

use std::time::Duration;

use portcullis_policy::Decision;

use crate::step::{Round, Step, StepFuture};

/// The longest a request waits for key refetches because of its unknown `kid`
/// (well under proxies' ext_authz timeouts: the examples' Envoy waits 1 s).
pub const REFETCH_WAIT: Duration = Duration::from_millis(700);

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
            let deadline = tokio::time::Instant::now() + REFETCH_WAIT;
            loop {
                // Read before deciding: a fetch that ends in between ends the wait.
                let round_no = slot.round();
                round.decide_again();
                let waits = matches!(&round.decision, Decision::Deny(d) if d.refetch_started == Some(provider));
                if !waits
                    || tokio::time::timeout_at(deadline, slot.next_round(round_no))
                        .await
                        .is_err()
                {
                    break;
                }
            }
        })
    }
}
