//! `portcullis verify --config`: the server's verification for one token.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use portcullis_decider::Metrics;
use portcullis_policy::Engine;
use serde_json::Value;

use crate::error::AppError;
use crate::runtime::{Sources, load_config};

mod describe;

pub use describe::{Expected, describe_token_error};

/// Verifies `token` as the named provider would (default: the providers whose issuer
/// the token claims first, then the others in config order; the first to accept it
/// wins, else the first refusal is reported); returns the claims as JSON.
///
/// # Errors
/// Bad config (exit 2) or an invalid token (exit 1, reason code first).
pub fn verify_with_config(
    path: &Path,
    provider: Option<&str>,
    token: &str,
) -> Result<Value, AppError> {
    let config = load_config(path)?;
    if let Some(name) = provider
        && !config.providers.iter().any(|p| p.name == name)
    {
        // A flag, not a line of the file: no `FILE:0:`.
        return Err(AppError::Usage(format!(
            "{}: --provider: no provider is named {name:?}",
            path.display()
        )));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| AppError::Runtime(e.to_string()))?;
    runtime.block_on(async move {
        let metrics = Arc::new(Metrics::new());
        let mut sources = Sources::new(metrics)?;
        let engine = sources.engine(config);
        // Remote sources fetch in the background: wait (bounded) for keys.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !engine.is_ready() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        verify_token(&engine, provider, token)
    })
}

fn verify_token(engine: &Engine, provider: Option<&str>, token: &str) -> Result<Value, AppError> {
    let now = portcullis_decider::now();
    let claimed = claimed_issuer(token);
    let mut candidates: Vec<_> = engine
        .providers()
        .iter()
        .filter(|p| provider.is_none_or(|n| p.name() == n))
        .collect();
    // Stable: providers whose issuer the token claims come first, so a refusal is
    // reported by the provider the token was meant for.
    candidates.sort_by_key(|p| p.config().issuer.as_deref() != claimed.as_deref());
    let mut first_error = None;
    for p in candidates {
        let keys = p.slot().load().unwrap_or_default();
        match portcullis_jose::verify_jwt(token, &keys, p.validation(), now) {
            // The checks a decision makes after the signature (the JWT-SVID rules of
            // a `spiffe` provider, `cnf`), with the reason code `/verify` gives.
            Ok(jwt) => match p.check_verified(&jwt.header, &jwt.claims) {
                Ok(()) => return Ok(Value::Object(jwt.claims.into_members())),
                Err((reason, why)) => {
                    first_error.get_or_insert_with(|| {
                        format!("{}: {why} (provider {})", reason.as_str(), p.name())
                    });
                }
            },
            Err(e) => {
                first_error.get_or_insert_with(|| {
                    let text = describe_token_error(
                        &e,
                        token,
                        Expected {
                            validation: p.validation(),
                            keys: &keys,
                            now,
                        },
                    );
                    // The provider goes at the end of the first line.
                    match text.split_once('\n') {
                        Some((first, rest)) => format!("{first} (provider {})\n{rest}", p.name()),
                        None => format!("{text} (provider {})", p.name()),
                    }
                });
            }
        }
    }
    Err(AppError::Invalid(
        first_error.unwrap_or_else(|| "key_not_found: no provider".to_owned()),
    ))
}

/// The `iss` a token claims, unverified (only to choose which provider to ask first).
fn claimed_issuer(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let json = portcullis_jose::b64::decode(payload.as_bytes())?;
    let value: Value = serde_json::from_slice(&json).ok()?;
    value.get("iss")?.as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use portcullis_jose::{Algorithm, SigningKey, b64};

    use super::*;

    const A: &[u8] = b"secret-of-provider-a-secret-of-provider-a";
    const B: &[u8] = b"secret-of-provider-b-secret-of-provider-b";

    fn engine() -> Engine {
        let text = format!(
            r#"
providers:
  - name: a
    issuer: https://a
    jwks: {{inline: {{"keys":[{{"kty":"oct","k":"{}","kid":"a"}}]}}}}
  - name: b
    issuer: https://b
    jwks: {{inline: {{"keys":[{{"kty":"oct","k":"{}","kid":"b"}}]}}}}
"#,
            b64::encode(A),
            b64::encode(B)
        );
        let config =
            portcullis_policy::config::parse(&text, "t.yaml", Path::new("."), &|_| None).unwrap();
        Engine::with_static_keys(config)
    }

    fn token(secret: &[u8], kid: &str, iss: &str) -> String {
        let exp = portcullis_decider::now() + 600;
        SigningKey::from_secret(secret, Algorithm::HS256)
            .unwrap()
            .encode(
                Some(kid),
                &Default::default(),
                format!(r#"{{"iss":"{iss}","exp":{exp}}}"#).as_bytes(),
            )
            .unwrap()
    }

    /// The provider whose issuer the token claims is asked first: its refusal is the
    /// one reported (here, a token claiming b but signed with a's key under b's kid).
    #[test]
    fn the_claimed_issuers_provider_answers_first() {
        let e = engine();
        assert!(verify_token(&e, None, &token(B, "b", "https://b")).is_ok());
        let Err(AppError::Invalid(why)) = verify_token(&e, None, &token(A, "b", "https://b"))
        else {
            panic!("accepted a forgery")
        };
        assert!(
            why.starts_with("signature_invalid") && why.ends_with("(provider b)"),
            "{why}"
        );
        let Err(AppError::Invalid(why)) = verify_token(&e, Some("a"), &token(B, "b", "https://b"))
        else {
            panic!("provider a accepted b's token")
        };
        assert_eq!(
            why,
            "key_not_found: no key has kid \"b\" (provider a)\n  known kids: \"a\""
        );
    }
}
