//! The `peer_spiffe_ids` step of a decision: the client certificate's SPIFFE ID
//! (see [`crate::peer`]) must match one of the rule's patterns, else 403
//! `peer_spiffe_id_mismatch`. Checked right after the rule is chosen, before any
//! token, so it holds on anonymous and inject rules too.

use std::sync::Arc;

use super::deny;
use crate::config::ProxySettings;
use crate::decision::{Deny, DenyReason};
use crate::explain::{Step, Trace};
use crate::peer::check_peer_spiffe_ids;
use crate::request::AuthRequest;
use crate::spiffe::SpiffeIdPattern;

/// `Err` with the deny when the rule names `peer_spiffe_ids` and the request's
/// client certificate has none of them.
pub(super) fn check_peer(
    patterns: &[SpiffeIdPattern],
    req: &AuthRequest<'_>,
    proxies: &ProxySettings,
    rule: &Arc<str>,
    trace: &mut impl Trace,
) -> Result<(), Box<Deny>> {
    if patterns.is_empty() {
        return Ok(());
    }
    let checked = check_peer_spiffe_ids(patterns, req, |ip| proxies.is_trusted(ip));
    trace.step(|| {
        let wanted: Vec<String> = patterns.iter().map(ToString::to_string).collect();
        let detail = match &checked {
            Ok((id, source)) => format!(
                "wants one of [{}], peer SPIFFE ID {:?} (from the {})",
                wanted.join(", "),
                id.as_str(),
                source.as_str()
            ),
            Err(why) => format!("wants one of [{}]: {why}", wanted.join(", ")),
        };
        Step::new("peer_spiffe_ids", checked.is_ok(), detail)
    });
    match checked {
        Ok(_) => Ok(()),
        Err(why) => Err(Box::new(deny(
            DenyReason::PeerSpiffeIdMismatch,
            Some(rule),
            None,
            why,
        ))),
    }
}
