//! The workload identity steps of a decision: outbound injection, the JWT-SVID
//! rules of `spiffe` providers, `spiffe_ids`, and certificate binding.

use std::sync::Arc;

use http::HeaderName;
use portcullis_jose::{Claims, Header};

use super::deny;
use crate::config::spiffe::InjectConfig;
use crate::decision::{Allow, Decision, Deny, DenyReason, Identity, Workload};
use crate::inject::TokenSlot;
use crate::request::AuthRequest;
use crate::spiffe::{
    CertificateBinding, InvalidSvid, SpiffeId, SpiffeIdPattern, check_svid,
    client_certificate_thumbprint,
};

/// What a provider's verified token says about the workload, or why it is invalid:
/// the JWT-SVID rules for a `spiffe` provider (`trust_domain`), a well-formed `cnf`
/// for every provider.
pub(super) fn workload_of(
    header: &Header,
    claims: &Claims,
    trust_domain: Option<&str>,
) -> Result<Workload, (DenyReason, String)> {
    let spiffe_id = match trust_domain {
        Some(td) => Some(check_svid(header, claims, td).map_err(|e| {
            let reason = match e {
                InvalidSvid::TrustDomain { .. } => DenyReason::IssuerMismatch,
                _ => DenyReason::TokenMalformed,
            };
            (reason, format!("not a JWT-SVID of this trust domain: {e}"))
        })?),
        // Any other token whose `sub` is a SPIFFE ID names a workload too.
        None => claims.subject().and_then(|s| SpiffeId::parse(s).ok()),
    };
    let binding = CertificateBinding::from_claims(claims)
        .map_err(|why| (DenyReason::TokenMalformed, why.to_owned()))?;
    Ok(Workload { spiffe_id, binding })
}

/// The checks of a verified identity against the rule and the request: its SPIFFE
/// ID among the rule's `spiffe_ids`, its certificate binding met by the request's
/// client certificate.
pub(super) fn check_identity(
    identity: &Identity,
    spiffe_ids: &[SpiffeIdPattern],
    req: &AuthRequest<'_>,
    rule: &Arc<str>,
) -> Result<(), Box<Deny>> {
    if let Some(binding) = identity.binding() {
        let presented = client_certificate_thumbprint(req.peer, req.headers);
        let why = match presented {
            Ok(Some(thumbprint)) if binding.is_met_by(&thumbprint) => None,
            Ok(Some(_)) => Some("the client certificate is not the one the token is bound to"),
            Ok(None) => {
                Some("the token is certificate-bound and no client certificate was presented")
            }
            Err(why) => Some(why),
        };
        if let Some(why) = why {
            return Err(Box::new(deny(
                DenyReason::CertificateMismatch,
                Some(rule),
                Some(&identity.provider),
                why.to_owned(),
            )));
        }
    }
    if !spiffe_ids.is_empty() {
        let ok = identity
            .spiffe_id()
            .is_some_and(|id| spiffe_ids.iter().any(|p| p.matches(id)));
        if !ok {
            return Err(Box::new(deny(
                DenyReason::SpiffeIdMismatch,
                Some(rule),
                Some(&identity.provider),
                match identity.spiffe_id() {
                    Some(id) => format!(
                        "SPIFFE ID {:?} is not allowed by the rule",
                        clip(id.as_str())
                    ),
                    None => "the token names no SPIFFE ID".to_owned(),
                },
            )));
        }
    }
    Ok(())
}

/// An `inject` rule's decision: allow with `Authorization: Bearer <token>` set when
/// the slot holds a fresh token and the request has no `Authorization` (or the rule
/// replaces it).
pub(super) fn inject(
    rule: &Arc<str>,
    config: &InjectConfig,
    slot: &TokenSlot,
    req: &AuthRequest<'_>,
    mut remove_headers: Vec<HeaderName>,
    now: i64,
) -> Decision {
    if !config.replace && req.headers.contains_key(http::header::AUTHORIZATION) {
        return Decision::Deny(deny(
            DenyReason::TokenPresent,
            Some(rule),
            None,
            "the outbound request already has Authorization".to_owned(),
        ));
    }
    let Some(token) = slot.fresh(now) else {
        return Decision::Deny(deny(
            DenyReason::TokenUnavailable,
            Some(rule),
            None,
            format!(
                "no fresh token for audience {:?} yet",
                clip(&config.audience)
            ),
        ));
    };
    remove_headers.retain(|h| *h != http::header::AUTHORIZATION);
    Decision::Allow(Allow {
        rule: rule.clone(),
        identity: None,
        set_headers: vec![(http::header::AUTHORIZATION, token.authorization().clone())],
        remove_headers,
        cache_max_age: None,
        dry_run: None,
    })
}

fn clip(s: &str) -> String {
    s.chars()
        .take(256)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests;
