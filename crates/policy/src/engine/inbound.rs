//! `token_exchange.verify_with`: the inbound token of a token-exchange `inject`
//! rule is verified by a named provider before it may be sent to the token
//! endpoint. A token the provider refuses is denied here with the provider's reason
//! (and status), so a forged, expired or foreign token never reaches the token
//! endpoint; a token it accepts goes on to the exchange.

use super::{Engine, Rule, workload};
use crate::config::spiffe::{InjectConfig, InjectSource};
use crate::decision::Deny;
use crate::explain::{Step, Trace};
use crate::request::AuthRequest;

impl Engine {
    /// The deny of an inbound token that `verify_with` refuses; `None` when the rule
    /// has no `verify_with`, when the request has no readable bearer token (the
    /// exchange step refuses it with its own reason), or when the provider accepts
    /// the token (signature, issuer, audience, times, JWT-SVID rules, certificate
    /// binding: as any rule of that provider checks it).
    pub(super) fn refuse_before_exchange<T: Trace>(
        &self,
        rule: &Rule,
        config: &InjectConfig,
        req: &AuthRequest<'_>,
        now: i64,
        trace: &mut T,
    ) -> Option<Box<Deny>> {
        let InjectSource::TokenExchange(x) = &config.source else {
            return None;
        };
        let name = x.verify_with.as_deref()?;
        let subject = workload::inbound_bearer_token(req)?;
        // Validated at load: the provider exists. Were it gone, deny: fail closed.
        let Some(idx) = self.providers.iter().position(|p| &*p.name == name) else {
            return Some(super::boxed(
                crate::decision::DenyReason::KeyNotFound,
                Some(&rule.name),
                None,
                format!("verify_with names no provider {name:?}"),
            ));
        };
        let verified = match self.introspecting_provider(subject, &[idx]) {
            Some(idx) => self.introspected_identity(idx, subject, rule, req, now, trace),
            None => self.verify(subject, &[idx], rule, now, trace),
        };
        let refused = match verified {
            Ok((_, identity)) => {
                workload::check_identity(&identity, &[], req, &rule.name, trace).err()
            }
            Err(d) => Some(d),
        };
        trace.step(|| {
            Step::new(
                "verify_with",
                refused.is_none(),
                match &refused {
                    None => format!("provider {name:?} accepts the inbound token: exchanged"),
                    Some(d) => format!(
                        "provider {name:?} refuses the inbound token ({}): not sent to the token endpoint",
                        d.reason
                    ),
                },
            )
        });
        refused
    }
}
