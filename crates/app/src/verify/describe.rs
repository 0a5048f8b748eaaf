//! Why `verify` refused a token, in words a person can act on: times in RFC 3339
//! and relative to now, the token's `iss`/`aud` next to the expected ones, the kids
//! the keys have when the token's is not among them, and a hint when `Bearer ` was
//! pasted with the token. The token's values are read unverified, only to be shown
//! (JSON-quoted and cut short: they are attacker-controlled), never to decide.

use std::fmt::Write as _;
use std::time::Duration;

use portcullis_jose::{KeySet, TokenError, Validation};
use serde_json::Value;

/// Longest token value shown.
const SHOWN: usize = 200;

/// What the refusal is judged against.
#[derive(Clone, Copy, Debug)]
pub struct Expected<'a> {
    /// The checks that ran.
    pub validation: &'a Validation,
    /// The keys that were tried.
    pub keys: &'a KeySet,
    /// Now, seconds since the epoch.
    pub now: i64,
}

/// The first line is `REASON: what is wrong`; the lines after it (indented) give
/// the expected and actual values and hints.
pub fn describe_token_error(error: &TokenError, token: &str, expected: Expected<'_>) -> String {
    let Expected {
        validation,
        keys,
        now,
    } = expected;
    let reason = error.reason().as_str();
    let skew = validation.clock_skew_secs;
    let payload = Unverified::payload(token);
    let mut out = match error {
        TokenError::Expired { exp, .. } => format!(
            "{reason}: the token expired at {} ({})",
            rfc3339(*exp),
            relative(*exp, now)
        ),
        TokenError::NotYetValid { nbf, .. } => format!(
            "{reason}: the token is not valid before {} ({})",
            rfc3339(*nbf),
            relative(*nbf, now)
        ),
        TokenError::IssuedInFuture { iat, .. } => format!(
            "{reason}: the token was issued in the future: iat {} ({})",
            rfc3339(*iat),
            relative(*iat, now)
        ),
        TokenError::IssuerMismatch => format!(
            "{reason}: the token's iss is {}, expected {}",
            payload.shown("iss"),
            expected_issuer(validation)
        ),
        TokenError::AudienceMismatch => format!(
            "{reason}: the token's aud is {}, expected one of {}",
            payload.shown("aud"),
            list(&validation.audiences)
        ),
        TokenError::KeyNotFound { kid } => match kid {
            Some(kid) => format!("{reason}: no key has kid {}", quoted(kid)),
            None => format!("{reason}: the token names no kid and no key fits it"),
        },
        other => format!("{reason}: {other}"),
    };
    match error {
        TokenError::Expired { .. }
        | TokenError::NotYetValid { .. }
        | TokenError::IssuedInFuture { .. } => {
            let _ = write!(out, "\n  now {}, clock skew {skew}s", rfc3339(now as f64));
        }
        TokenError::KeyNotFound { .. } => {
            let _ = write!(out, "\n  known kids: {}", known_kids(keys));
        }
        _ => {}
    }
    if let Some(rest) = strip_scheme(token) {
        let _ = write!(
            out,
            "\n  hint: the token starts with {:?}; pass only what follows it ({}...)",
            &token[..token.len() - rest.len()],
            rest.chars().take(12).collect::<String>()
        );
    }
    out
}

/// `Some(rest)` when `token` starts with an `Authorization` scheme (`Bearer `, any case).
fn strip_scheme(token: &str) -> Option<&str> {
    let head = token.get(..7)?;
    if head.eq_ignore_ascii_case("bearer ") {
        Some(token[7..].trim_start())
    } else {
        None
    }
}

fn expected_issuer(v: &Validation) -> String {
    match (&v.issuer, &v.issuer_template) {
        (Some(iss), _) => quoted(iss),
        (None, Some(template)) => format!("the template {}", quoted(&template.to_string())),
        (None, None) => "(any)".to_owned(),
    }
}

fn known_kids(keys: &KeySet) -> String {
    if keys.is_empty() {
        return "(no keys loaded)".to_owned();
    }
    let kids: Vec<String> = keys
        .keys()
        .iter()
        .map(|k| {
            k.kid()
                .map_or_else(|| "(no kid)".to_owned(), |k| quoted(k.as_str()))
        })
        .collect();
    kids.join(", ")
}

fn list(items: &[String]) -> String {
    let items: Vec<String> = items.iter().map(|i| quoted(i)).collect();
    format!("[{}]", items.join(", "))
}

/// A JSON string, cut to [`SHOWN`] characters.
fn quoted(text: &str) -> String {
    let cut: String = text.chars().take(SHOWN).collect();
    let more = if cut.len() < text.len() { "..." } else { "" };
    format!("{}{more}", Value::from(cut))
}

/// A time as RFC 3339 (UTC, whole seconds).
fn rfc3339(secs: f64) -> String {
    portcullis_policy::explain::human_time(secs.floor())
}

/// `in 5m` or `3h 2m ago`.
fn relative(secs: f64, now: i64) -> String {
    let delta = secs.floor() - now as f64;
    // Cut to a span humantime can print; the value is from the token.
    let span = humantime::format_duration(Duration::from_secs(delta.abs().min(1e12) as u64));
    if delta >= 0.0 {
        format!("in {span}")
    } else {
        format!("{span} ago")
    }
}

/// The token's payload as JSON, unverified, or nothing.
struct Unverified(Option<serde_json::Map<String, Value>>);

impl Unverified {
    fn payload(token: &str) -> Unverified {
        let token = strip_scheme(token).unwrap_or(token);
        let parsed = token
            .split('.')
            .nth(1)
            .and_then(|p| portcullis_jose::b64::decode(p.as_bytes()))
            .and_then(|json| serde_json::from_slice::<Value>(&json).ok());
        Unverified(match parsed {
            Some(Value::Object(map)) => Some(map),
            _ => None,
        })
    }

    /// The member `name` as compact JSON (cut short), or `(none)`.
    fn shown(&self, name: &str) -> String {
        match self.0.as_ref().and_then(|m| m.get(name)) {
            None => "(none)".to_owned(),
            Some(Value::String(s)) => quoted(s),
            Some(other) => {
                let text = other.to_string();
                let cut: String = text.chars().take(SHOWN).collect();
                if cut.len() < text.len() {
                    format!("{cut}...")
                } else {
                    cut
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use portcullis_jose::b64;

    use super::*;

    fn token(payload: &str) -> String {
        format!(
            "{}.{}.sig",
            b64::encode(br#"{"alg":"ES256","kid":"k1"}"#),
            b64::encode(payload.as_bytes())
        )
    }

    #[test]
    fn names_times_values_kids_and_the_bearer_hint() {
        let validation = Validation {
            issuer: Some("https://login.example.com".to_owned()),
            audiences: vec!["orders-api".to_owned()],
            ..Validation::default()
        };
        let keys = KeySet::default();
        let x = Expected {
            validation: &validation,
            keys: &keys,
            now: 1_700_000_000,
        };
        let t = token(r#"{"iss":"https://evil.example","aud":["a","b"]}"#);
        assert_eq!(
            describe_token_error(
                &TokenError::Expired {
                    exp: 1_699_996_340.0,
                    now: x.now
                },
                &t,
                x
            ),
            "token_expired: the token expired at 2023-11-14T21:12:20Z (1h 1m ago)\n  now 2023-11-14T22:13:20Z, clock skew 60s"
        );
        assert_eq!(
            describe_token_error(&TokenError::IssuerMismatch, &t, x),
            r#"issuer_mismatch: the token's iss is "https://evil.example", expected "https://login.example.com""#
        );
        assert_eq!(
            describe_token_error(&TokenError::AudienceMismatch, &t, x),
            r#"audience_mismatch: the token's aud is ["a","b"], expected one of ["orders-api"]"#
        );
        assert_eq!(
            describe_token_error(
                &TokenError::KeyNotFound {
                    kid: Some("k9".to_owned())
                },
                &t,
                x
            ),
            "key_not_found: no key has kid \"k9\"\n  known kids: (no keys loaded)"
        );
        let pasted = format!("Bearer {t}");
        let text = describe_token_error(&TokenError::SegmentCount, &pasted, x);
        assert!(
            text.ends_with(&format!(
                "\n  hint: the token starts with \"Bearer \"; pass only what follows it ({}...)",
                &t[..12]
            )),
            "{text}"
        );
        assert!(!text.contains("Some("), "{text}");
    }
}
