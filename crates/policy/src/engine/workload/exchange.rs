//! The decision of a `token_exchange` inject rule: the inbound bearer token is the
//! RFC 8693 `subject_token`; its exchanged token, once kept, replaces it.

use std::sync::Arc;

use http::HeaderName;
use portcullis_jose::b64;
use serde_json::Value;

use super::{clip, deny};
use crate::config::spiffe::InjectConfig;
use crate::decision::{Allow, Decision, DenyReason};
use crate::inject::{MAX_SUBJECT_TOKEN_BYTES, PendingExchange, TokenSlot, exchange_key};
use crate::request::AuthRequest;

/// Allow with the exchanged token of the request's bearer token when one is kept;
/// else deny, with the exchange to run when one can be (the decider runs it and
/// decides again). No bearer token: 401 `token_missing`.
pub(super) fn inject_exchanged(
    rule: &Arc<str>,
    config: &InjectConfig,
    slot: &Arc<TokenSlot>,
    req: &AuthRequest<'_>,
    mut remove_headers: Vec<HeaderName>,
    now: i64,
) -> Decision {
    let fail =
        |reason: DenyReason, why: String| Decision::Deny(deny(reason, Some(rule), None, why));
    let subject = match inbound_bearer(req) {
        Ok(t) => t,
        Err(Inbound::Missing) => {
            return fail(
                DenyReason::TokenMissing,
                "no inbound bearer token to exchange".to_owned(),
            );
        }
        Err(Inbound::Malformed(why)) => return fail(DenyReason::TokenMalformed, why.to_owned()),
    };
    let subject_exp = unverified_exp(subject);
    if let Some(exp) = subject_exp
        && exp <= now
    {
        return fail(
            DenyReason::TokenExpired,
            format!("the inbound token's exp {exp} has passed (now {now}); not exchanged"),
        );
    }
    let key = exchange_key(&config.audience, subject);
    if let Some(token) = slot.exchanged(&key, now) {
        remove_headers.retain(|h| *h != http::header::AUTHORIZATION);
        return Decision::Allow(Allow {
            rule: rule.clone(),
            identity: None,
            set_headers: vec![(http::header::AUTHORIZATION, token.authorization().clone())],
            remove_headers,
            cache_max_age: None,
            dry_run: None,
            claims_json: None,
            dynamic_metadata: false,
        });
    }
    let mut d = deny(
        DenyReason::TokenUnavailable,
        Some(rule),
        None,
        format!(
            "no exchanged token for audience {:?} yet",
            clip(&config.audience)
        ),
    );
    if slot.has_exchanger() {
        d.exchange = Some(Box::new(PendingExchange::new(
            slot.clone(),
            key,
            subject,
            subject_exp,
        )));
    }
    Decision::Deny(d)
}

/// The request's bearer token, when it has exactly one readable one.
pub(in crate::engine) fn inbound_bearer_token<'r>(req: &'r AuthRequest<'_>) -> Option<&'r str> {
    inbound_bearer(req).ok()
}

enum Inbound {
    Missing,
    Malformed(&'static str),
}

/// The request's one `Authorization: Bearer <b64token>` (RFC 6750 §2.1).
fn inbound_bearer<'r>(req: &'r AuthRequest<'_>) -> Result<&'r str, Inbound> {
    let mut values = req.headers.get_all(http::header::AUTHORIZATION).iter();
    let (value, None) = (values.next(), values.next()) else {
        return Err(Inbound::Malformed("several Authorization headers"));
    };
    let Some(value) = value else {
        return Err(Inbound::Missing);
    };
    let value = value
        .to_str()
        .map_err(|_| Inbound::Malformed("Authorization is not ASCII"))?;
    let token = match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token,
        _ => return Err(Inbound::Missing),
    };
    if token.is_empty() {
        return Err(Inbound::Missing);
    }
    if token.len() > MAX_SUBJECT_TOKEN_BYTES {
        return Err(Inbound::Malformed("the inbound token is too long"));
    }
    let body = token.trim_end_matches('=');
    if !body
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/'))
        || body.is_empty()
    {
        return Err(Inbound::Malformed("the inbound token is not a b64token"));
    }
    Ok(token)
}

/// The `exp` of an inbound JWT, unverified (the token endpoint judges the token;
/// this only keeps an exchanged token from outliving it). `None`: an opaque token,
/// or no readable `exp`.
fn unverified_exp(token: &str) -> Option<i64> {
    let mut parts = token.split('.');
    let (Some(_), Some(payload), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let bytes = b64::decode(payload.as_bytes())?;
    let claims = portcullis_jose::json::parse_object(&bytes).ok()?;
    claims
        .get("exp")
        .and_then(Value::as_f64)
        .filter(|e| e.is_finite() && e.abs() < 1e15)
        .map(|e| e as i64)
}

#[cfg(test)]
mod tests;
