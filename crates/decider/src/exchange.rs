//! The token-exchange layer (RFC 8693) for `inject` rules: the engine denies a
//! request whose inbound token has no exchanged token yet with the exchange to run;
//! this runs it (bounded in time; requests with the same token share one exchange)
//! and decides again. A failure keeps the deny (`token_unavailable`) and says why in
//! its log line.

use std::time::Duration;

use portcullis_policy::Decision;

use crate::step::{Round, Step, StepFuture};

/// Longest a request waits for its token exchange.
pub const EXCHANGE_WAIT: Duration = Duration::from_secs(6);

/// Runs the exchange a decision asks for.
#[derive(Debug)]
pub(crate) struct Exchange;

impl Step for Exchange {
    fn wants(&self, decision: &Decision) -> bool {
        matches!(decision, Decision::Deny(d) if d.exchange.is_some())
    }

    fn run<'a>(&'a self, round: &'a mut Round<'_>) -> StepFuture<'a> {
        Box::pin(async move {
            let Decision::Deny(deny) = &mut round.decision else {
                return;
            };
            let Some(pending) = deny.exchange.take() else {
                return;
            };
            let clock = round.clock();
            let ran = tokio::time::timeout(EXCHANGE_WAIT, pending.run(|| clock.now())).await;
            let Decision::Deny(deny) = &mut round.decision else {
                return;
            };
            match ran {
                // Decided again with everything the round learned (an introspected
                // inbound token keeps its answer).
                Ok(Ok(())) => round.decide_again(),
                Ok(Err(e)) => deny.detail = format!("token exchange failed: {e}"),
                Err(_) => {
                    deny.detail = format!(
                        "token exchange failed: no answer within {}s",
                        EXCHANGE_WAIT.as_secs()
                    );
                }
            }
        })
    }
}
