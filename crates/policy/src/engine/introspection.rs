//! Opaque tokens: what the engine does with a bearer token that is not a compact
//! JWS when the rule's provider introspects such tokens (RFC 7662). The engine does
//! no IO: the first decision asks for the introspection ([`Deny::introspect`]); the
//! decider asks the provider and decides again with its answer in
//! [`AuthRequest::introspected`].

use std::sync::Arc;

use portcullis_jose::Claims;
use serde_json::Value;

use super::{Engine, Rule, boxed, hints_from_claims, render_headers};
use crate::config::ProviderConfig;
use crate::decision::{Deny, DenyReason, Identity};
use crate::explain::{self, AnswerCheck, Step, Trace};
use crate::introspected::{IntrospectionAsk, IntrospectionOutcome};
use crate::request::AuthRequest;

impl Engine {
    /// The provider that introspects `token`: the first candidate with
    /// `introspection:`, when the token is not a compact JWS (three segments).
    /// The candidates are looked at first: counting the dots of a 1 KB token cost
    /// every request about 4,500 instructions (a fifth of the cached path, by
    /// `bench/profile`), also where no provider introspects.
    pub(super) fn introspecting_provider(
        &self,
        token: &str,
        candidates: &[usize],
    ) -> Option<usize> {
        let idx = candidates
            .iter()
            .copied()
            .find(|&i| self.providers[i].config.introspection.is_some())?;
        (!is_compact_jws(token)).then_some(idx)
    }

    /// The identity of an opaque token from the provider's introspection answer;
    /// without an answer for this token, the deny that asks for one.
    pub(super) fn introspected_identity<T: Trace>(
        &self,
        idx: usize,
        token: &str,
        rule: &Rule,
        req: &AuthRequest<'_>,
        now: i64,
        trace: &mut T,
    ) -> Result<(usize, Arc<Identity>), Box<Deny>> {
        let provider = &self.providers[idx];
        let answer = req
            .introspected
            .filter(|a| *a.provider == *provider.name && *a.token == *token);
        let fail = |reason: DenyReason, detail: String| {
            boxed(reason, Some(&rule.name), Some(&provider.name), detail)
        };
        let Some(answer) = answer else {
            trace.step(|| {
                Step::new(
                    "introspection",
                    false,
                    format!(
                        "an opaque token for provider {:?}: not introspected here",
                        provider.name
                    ),
                )
            });
            let mut d = fail(
                DenyReason::IntrospectionUnavailable,
                "the token is opaque and was not introspected".to_owned(),
            );
            // Explain asks too (the caller holds the introspector): the ask is
            // read by whoever runs the IO, never by the engine.
            d.introspect = Some(Box::new(IntrospectionAsk {
                provider: idx,
                token: Arc::from(token),
            }));
            return Err(d);
        };
        let claims_json = match &answer.outcome {
            IntrospectionOutcome::Active { claims_json } => claims_json,
            IntrospectionOutcome::Inactive => {
                trace.step(|| explain::introspection_answer_step(provider, &answer.outcome));
                trace.step(explain::inactive_step);
                return Err(fail(
                    DenyReason::TokenInactive,
                    "introspection: the token is not active".to_owned(),
                ));
            }
            IntrospectionOutcome::Unavailable { detail } => {
                trace.step(|| explain::introspection_answer_step(provider, &answer.outcome));
                return Err(fail(
                    DenyReason::IntrospectionUnavailable,
                    format!("introspection: {detail}"),
                ));
            }
        };
        trace.step(|| explain::introspection_answer_step(provider, &answer.outcome));
        let claims = Claims::from_json(claims_json).map_err(|e| {
            trace.step(|| {
                Step::new(
                    "answer",
                    false,
                    format!("the response is no strict JSON object: {e}"),
                )
            });
            fail(
                DenyReason::TokenMalformed,
                format!("introspection response: {e}"),
            )
        })?;
        let checked = check_response(&provider.config, &claims, now);
        explain::answer_check_steps(
            trace,
            &provider.config,
            &claims,
            checked.as_ref().err().map(|e| e.0),
            now,
        );
        let exp = match checked {
            Ok(exp) => exp,
            Err((_, reason, why)) => {
                let mut d = fail(reason, format!("introspection: {why}"));
                d.token_hints = hints_from_claims(&claims);
                return Err(d);
            }
        };
        // An answer is not reused past the provider's cache_ttl (the decider's
        // cache): nor may the frontend's `Cache-Control` outlive it.
        let ttl = provider
            .config
            .introspection
            .as_ref()
            .map_or(0, |i| i.cache_ttl.as_secs());
        let until = (now as f64) + ttl as f64;
        let expires_at = Some(exp.map_or(until, |e| e.min(until)));
        let headers = render_headers(&provider.config.claims_to_headers, &claims);
        let kept = claims.retain(|c| self.kept_claims.iter().any(|k| k == c));
        Ok((
            idx,
            Arc::new(Identity::from_introspection(
                provider.name.clone(),
                claims_json,
                kept,
                expires_at,
                headers,
            )),
        ))
    }
}

/// Three base64url-looking segments: a compact JWS (verified as a JWT, never
/// introspected).
fn is_compact_jws(token: &str) -> bool {
    token.bytes().filter(|&b| b == b'.').count() == 2
}

/// The checks a JWT's claims pass, applied to an introspection response: `active`
/// exactly `true`, `iss` the provider's (when the response names one), `aud`
/// holding a configured audience (when audiences are configured), `exp` (required
/// unless the provider opts out) and `nbf` within the clock skew, `token_type`
/// Bearer when present, and no `cnf` (proof-of-possession is not checked for opaque
/// tokens: refused rather than accepted unbound). Returns `exp`, or the check that
/// failed with its reason.
fn check_response(
    config: &ProviderConfig,
    claims: &Claims,
    now: i64,
) -> Result<Option<f64>, (AnswerCheck, DenyReason, String)> {
    use AnswerCheck as C;
    let malformed = |check: AnswerCheck, why: String| (check, DenyReason::TokenMalformed, why);
    if claims.get("active") != Some(&Value::Bool(true)) {
        return Err((
            C::Active,
            DenyReason::TokenInactive,
            "active is not true".to_owned(),
        ));
    }
    if let Some(iss) = claims.get("iss") {
        let Some(iss) = iss.as_str() else {
            return Err(malformed(C::Issuer, "iss is not a string".to_owned()));
        };
        if let Some(expected) = &config.issuer
            && iss != expected
        {
            return Err((
                C::Issuer,
                DenyReason::IssuerMismatch,
                format!("iss {:?} is not the provider's", super::clip(iss)),
            ));
        }
    }
    if !config.audiences.is_empty() {
        let auds = claims
            .audiences()
            .map_err(|e| malformed(C::Audience, e.to_string()))?;
        if !auds.iter().any(|a| config.audiences.iter().any(|c| c == a)) {
            return Err((
                C::Audience,
                DenyReason::AudienceMismatch,
                if auds.is_empty() {
                    "the response has no aud".to_owned()
                } else {
                    "aud holds none of the provider's audiences".to_owned()
                },
            ));
        }
    }
    let skew = config.clock_skew_secs as f64;
    let now = now as f64;
    let exp = claims
        .expires_at()
        .map_err(|e| malformed(C::Exp, e.to_string()))?;
    match exp {
        None if config.require_exp => {
            return Err(malformed(C::Exp, "the response has no exp".to_owned()));
        }
        Some(exp) if exp + skew <= now => {
            return Err((
                C::Exp,
                DenyReason::TokenExpired,
                "exp is in the past".to_owned(),
            ));
        }
        _ => {}
    }
    if let Some(nbf) = claims
        .numeric_date("nbf")
        .map_err(|e| malformed(C::Nbf, e.to_string()))?
        && nbf - skew > now
    {
        return Err((
            C::Nbf,
            DenyReason::TokenNotYetValid,
            "nbf is in the future".to_owned(),
        ));
    }
    match claims.get("token_type") {
        None => {}
        Some(Value::String(t)) if t.eq_ignore_ascii_case("bearer") => {}
        Some(_) => {
            return Err(malformed(
                C::TokenType,
                "token_type is not Bearer (only bearer access tokens are accepted)".to_owned(),
            ));
        }
    }
    if claims.get("cnf").is_some() {
        return Err(malformed(
            C::Cnf,
            "the token is bound (cnf): not supported for opaque tokens".to_owned(),
        ));
    }
    Ok(exp)
}

#[cfg(test)]
mod tests;
