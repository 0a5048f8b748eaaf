//! DPoP replay detection across replicas: after the engine allowed a request with a
//! DPoP-bound token (its proof verified, and new to this replica), the proof's
//! `jti` is claimed in the shared store. Claimed before (by any replica): 401
//! `dpop_invalid`. The store cannot answer: 401 `dpop_invalid` too, never an allow.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use http::HeaderMap;
use portcullis_policy::dpop::{PROOF_WINDOW_SECS, ReplayStore, replay_key};
use portcullis_policy::{Decision, Deny, DenyReason, Engine};

use crate::step::{Round, Step, StepFuture};

/// Longest a request waits for the replay store.
pub const REPLAY_WAIT: Duration = Duration::from_secs(2);

/// The shared replay store a decider claims proofs in.
#[derive(Clone)]
pub struct SharedReplay(pub Arc<dyn ReplayStore>);

/// The layer: claims the proof of every allowed DPoP-bound request in the store in
/// force (swapped by a reload that changes `dpop.replay`).
#[derive(Debug)]
pub(crate) struct ClaimProof(pub(crate) Arc<ArcSwapOption<SharedReplay>>);

impl Step for ClaimProof {
    fn wants(&self, decision: &Decision) -> bool {
        matches!(decision, Decision::Allow(a)
            if a.identity.as_ref().is_some_and(|i| i.dpop_jkt().is_some()))
            && self.0.load().is_some()
    }

    fn run<'a>(&'a self, round: &'a mut Round<'_>) -> StepFuture<'a> {
        Box::pin(async move {
            // The store in force when the claim starts; a reload mid-claim does not
            // split one proof across two stores.
            let Some(store) = self.0.load_full() else {
                return;
            };
            let now = round.now();
            let headers = round.headers();
            claim_proof(&mut round.decision, round.engine, headers, &store, now).await;
        })
    }
}

/// Claims the proof of an allowed DPoP request in `store`; a replay or a failure
/// turns the allow into a deny.
async fn claim_proof(
    decision: &mut Decision,
    engine: &Engine,
    headers: &HeaderMap,
    store: &SharedReplay,
    now: i64,
) {
    let Decision::Allow(allow) = decision else {
        return;
    };
    let Some(identity) = allow.identity.as_ref() else {
        return;
    };
    let Some(jkt) = identity.dpop_jkt() else {
        return;
    };
    let skew = engine
        .providers()
        .iter()
        .find(|p| p.name() == &*identity.provider)
        .map_or(0, |p| p.config().clock_skew_secs);
    // The engine allowed, so there is exactly one proof and it verified.
    let key = headers
        .get("dpop")
        .and_then(|v| v.to_str().ok())
        .and_then(|proof| replay_key(proof, jkt, PROOF_WINDOW_SECS + skew, now));
    let why = match key {
        None => Some("the DPoP proof has no jti to claim".to_owned()),
        Some((key, ttl)) => {
            match tokio::time::timeout(REPLAY_WAIT, store.0.first_use(&key, ttl).0).await {
                Ok(Ok(true)) => None,
                Ok(Ok(false)) => {
                    Some("the proof was used before (seen by the shared replay store)".to_owned())
                }
                Ok(Err(e)) => Some(format!(
                    "the DPoP replay store is unavailable ({e}): proofs are refused until it answers"
                )),
                Err(_) => Some(format!(
                    "the DPoP replay store did not answer within {}s: proofs are refused until it answers",
                    REPLAY_WAIT.as_secs()
                )),
            }
        }
    };
    if let Some(why) = why {
        let mut deny = Deny::new(DenyReason::DpopInvalid, why);
        deny.rule = Some(allow.rule.clone());
        deny.provider = Some(identity.provider.clone());
        *decision = Decision::Deny(deny);
    }
}

impl fmt::Debug for SharedReplay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SharedReplay")
    }
}
