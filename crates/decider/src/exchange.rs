//! Token exchange (RFC 8693) for `inject` rules: the engine denies a request whose
//! inbound token has no exchanged token yet with the exchange to run; this runs it
//! (bounded in time; requests with the same token share one exchange) and decides
//! again. A failure keeps the deny (`token_unavailable`) and says why in its log line.

use std::sync::Arc;
use std::time::Duration;

use portcullis_policy::{AuthRequest, Clock, Decision, Engine};

/// Longest a request waits for its token exchange.
pub const EXCHANGE_WAIT: Duration = Duration::from_secs(6);

/// Runs the exchange `decision` asks for, if any, and decides again.
pub(crate) async fn run_pending(
    decision: &mut Decision,
    engine: &Engine,
    req: &AuthRequest<'_>,
    clock: &Arc<dyn Clock>,
) {
    let Decision::Deny(deny) = decision else {
        return;
    };
    let Some(pending) = deny.exchange.take() else {
        return;
    };
    let now = || clock.now();
    match tokio::time::timeout(EXCHANGE_WAIT, pending.run(now)).await {
        Ok(Ok(())) => *decision = engine.decide(req, clock.now()),
        Ok(Err(e)) => deny.detail = format!("token exchange failed: {e}"),
        Err(_) => {
            deny.detail = format!(
                "token exchange failed: no answer within {}s",
                EXCHANGE_WAIT.as_secs()
            );
        }
    }
}
