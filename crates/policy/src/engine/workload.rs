//! The workload identity steps of a decision: outbound injection, the JWT-SVID
//! rules of `spiffe` providers, `spiffe_ids`, and certificate binding.

use std::sync::Arc;

use http::HeaderName;
use portcullis_jose::{Claims, Header};

use super::deny;
use crate::config::TokenLocation;
use crate::config::spiffe::InjectConfig;
use crate::config::spiffe::InjectSource;
use crate::decision::{Allow, Decision, Deny, DenyReason, Identity, Workload};
use crate::dpop::{DpopMode, InvalidProof, ProofTarget, ReplayCache, verify_proof};
use crate::explain::{Step, Trace};
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
    let dpop_jkt = match claims.get("cnf").and_then(|c| c.get("jkt")) {
        None => None,
        Some(serde_json::Value::String(s)) if !s.is_empty() && s.len() <= 128 => Some(s.clone()),
        Some(_) => {
            return Err((
                DenyReason::TokenMalformed,
                "`cnf.jkt` is not a thumbprint".to_owned(),
            ));
        }
    };
    Ok(Workload {
        spiffe_id,
        binding,
        dpop_jkt,
    })
}

/// The checks of a verified identity against the rule and the request: its SPIFFE
/// ID among the rule's `spiffe_ids`, its certificate binding met by the request's
/// client certificate.
pub(super) fn check_identity(
    identity: &Identity,
    spiffe_ids: &[SpiffeIdPattern],
    req: &AuthRequest<'_>,
    rule: &Arc<str>,
    trace: &mut impl Trace,
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
        trace.step(|| {
            Step::new(
                "certificate",
                why.is_none(),
                why.unwrap_or(
                    "the client certificate is the one the token is bound to (cnf x5t#S256)",
                ),
            )
        });
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
        trace.step(|| {
            let patterns: Vec<String> = spiffe_ids.iter().map(ToString::to_string).collect();
            Step::new(
                "spiffe_ids",
                ok,
                format!(
                    "wants one of [{}], token SPIFFE ID {}",
                    patterns.join(", "),
                    identity.spiffe_id().map_or_else(
                        || "(none)".to_owned(),
                        |id| format!("{:?}", clip(id.as_str()))
                    )
                ),
            )
        });
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

/// DPoP (RFC 9449): a DPoP-bound token (`cnf.jkt`) needs the `DPoP` scheme and a
/// valid, unused proof; a provider with `dpop: required` takes nothing else; the
/// `DPoP` scheme needs a DPoP-bound token.
#[expect(clippy::too_many_arguments, reason = "the parts of one request")]
pub(super) fn check_dpop(
    mode: Option<DpopMode>,
    skew: i64,
    identity: &Identity,
    location: Option<&TokenLocation>,
    access_token: Option<&str>,
    req: &AuthRequest<'_>,
    target: ProofTarget<'_>,
    replay: &ReplayCache,
    rule: &Arc<str>,
    now: i64,
) -> Result<(), Box<Deny>> {
    let dpop_scheme = matches!(location, Some(TokenLocation::Header { name, prefix })
        if *name == http::header::AUTHORIZATION && prefix.eq_ignore_ascii_case("DPoP "));
    let fail = |why: String| {
        Err(Box::new(deny(
            DenyReason::DpopInvalid,
            Some(rule),
            Some(&identity.provider),
            why,
        )))
    };
    let jkt = match (mode, dpop_scheme, identity.dpop_jkt()) {
        (None, _, None) | (Some(DpopMode::Allowed), false, None) => return Ok(()),
        (None, _, Some(_)) => {
            return fail("a DPoP-bound token, and the provider does not take DPoP".to_owned());
        }
        (Some(_), false, Some(_)) => {
            return fail("a DPoP-bound token sent as a bearer token".to_owned());
        }
        (Some(DpopMode::Required), false, None) => {
            return fail("the provider requires DPoP-bound tokens".to_owned());
        }
        (Some(_), true, None) => {
            return fail("the DPoP scheme with a token that is not DPoP-bound".to_owned());
        }
        (Some(_), true, Some(jkt)) => jkt,
    };
    let mut proofs = req.headers.get_all("dpop").iter();
    let (Some(proof), None) = (proofs.next(), proofs.next()) else {
        return fail(InvalidProof::Count.to_string());
    };
    let Ok(proof) = proof.to_str() else {
        return fail("the DPoP header is not ASCII".to_owned());
    };
    let window = crate::dpop::PROOF_WINDOW_SECS + skew;
    // `ath` is of the access token the request carries (cached identities keep none).
    let Some(access_token) = access_token.or(identity.token().map(|t| &**t)) else {
        return fail("no access token for the proof's ath".to_owned());
    };
    match verify_proof(proof, access_token, jkt, target, now, window) {
        Ok(p) if replay.first_use(&p, now) => Ok(()),
        Ok(_) => fail(InvalidProof::Replayed.to_string()),
        Err(e) => fail(e.to_string()),
    }
}

/// An `inject` rule's decision: allow with `Authorization: Bearer <token>` set when
/// the slot holds a fresh token and the request has no `Authorization` (or the rule
/// replaces it).
pub(super) fn inject(
    rule: &Arc<str>,
    config: &InjectConfig,
    slot: &Arc<TokenSlot>,
    req: &AuthRequest<'_>,
    mut remove_headers: Vec<HeaderName>,
    now: i64,
) -> Decision {
    if let InjectSource::TokenExchange(_) = config.source {
        return exchange::inject_exchanged(rule, config, slot, req, remove_headers, now);
    }
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
        claims_json: None,
        dynamic_metadata: false,
    })
}

fn clip(s: &str) -> String {
    s.chars()
        .take(256)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

mod exchange;

pub(super) use exchange::inbound_bearer_token;

#[cfg(test)]
mod tests;
