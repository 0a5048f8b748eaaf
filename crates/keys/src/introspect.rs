//! OAuth 2.0 Token Introspection (RFC 7662): asking a provider about an opaque
//! access token, for the decider (the engine only reads the answer).
//!
//! Answers are cached under a SHA-256 of the provider, its client and the token
//! (never the token itself), for the provider's `cache_ttl` and never past the
//! token's `exp`; `active: false` for at most [`NEGATIVE_TTL`], a failure for one
//! second. Concurrent requests with the same token make one call (single flight).
//! Bodies are bounded, JSON is strict (duplicate members refused), every call has
//! the provider's timeout, and any unusable answer fails closed.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use portcullis_jose::Claims;
use portcullis_policy::config::{IntrospectionConfig, IntrospectionSecret, TokenEndpointAuth};
use portcullis_policy::{AnswerSource, Introspect, Introspected, IntrospectionOutcome, Provider};
use serde_json::Value;

/// The largest introspection response read.
pub const MAX_INTROSPECTION_BYTES: usize = 16 * 1024;
/// The longest an `active: false` answer is reused.
pub const NEGATIVE_TTL: Duration = Duration::from_secs(30);
/// How many answers are kept.
pub const CACHE_ENTRIES: usize = 4096;
/// The longest opaque token sent to a provider.
const MAX_TOKEN_BYTES: usize = 4096;

/// Characters sent as they are in a form value (RFC 3986 unreserved).
const FORM_KEEP: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Why an introspection client cannot be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IntrospectorError {
    /// The HTTP client could not be built.
    #[error("introspection HTTP client: {source}")]
    Client {
        /// The cause.
        source: reqwest::Error,
    },
}

/// Asks providers about opaque tokens, with a bounded cache of their answers.
pub struct Introspector {
    http: reqwest::Client,
    cache: quick_cache::sync::Cache<[u8; 32], Entry>,
}

#[derive(Clone)]
struct Entry {
    outcome: IntrospectionOutcome,
    /// Seconds since the epoch until which the answer is reused.
    until: i64,
}

impl Introspector {
    /// A client with an empty cache.
    ///
    /// # Errors
    /// The HTTP client cannot be built (no TLS roots).
    pub fn try_new() -> Result<Introspector, IntrospectorError> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("portcullis/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|source| IntrospectorError::Client { source })?;
        Ok(Introspector {
            http,
            cache: quick_cache::sync::Cache::new(CACHE_ENTRIES),
        })
    }

    /// Entries in the cache.
    pub fn cached(&self) -> usize {
        self.cache.len()
    }

    /// Introspects `token` at `provider` (see the module's docs).
    pub async fn introspect_at(&self, provider: &Provider, token: &str, now: i64) -> Introspected {
        self.introspect_with_source(provider, token, now).await.0
    }

    /// [`Introspector::introspect_at`], saying whether the answer was cached.
    pub async fn introspect_with_source(
        &self,
        provider: &Provider,
        token: &str,
        now: i64,
    ) -> (Introspected, AnswerSource) {
        let (outcome, source) = match provider.config().introspection.as_ref() {
            None => (
                IntrospectionOutcome::Unavailable {
                    detail: "the provider has no introspection".to_owned(),
                },
                AnswerSource::Unknown,
            ),
            Some(config) => self.cached_outcome(provider, config, token, now).await,
        };
        let introspected = Introspected {
            provider: Arc::from(provider.name()),
            token: Arc::from(token),
            outcome,
        };
        (introspected, source)
    }

    async fn cached_outcome(
        &self,
        provider: &Provider,
        config: &IntrospectionConfig,
        token: &str,
        now: i64,
    ) -> (IntrospectionOutcome, AnswerSource) {
        let key = cache_key(provider.name(), config, token);
        let asked = |outcome| (outcome, AnswerSource::Provider);
        if config.cache_ttl.is_zero() {
            return asked(self.ask_logged(provider, config, token, &key).await);
        }
        if let Some(hit) = self.cache.get(&key) {
            if hit.until > now {
                return (hit.outcome, AnswerSource::Cache);
            }
            self.cache.remove(&key);
        }
        match self.cache.get_value_or_guard_async(&key).await {
            // Another request asked while this one waited (single flight).
            Ok(hit) if hit.until > now => (hit.outcome, AnswerSource::Cache),
            // Filled by another request but stale already: ask, without caching.
            Ok(_) => asked(self.ask_logged(provider, config, token, &key).await),
            Err(guard) => {
                let outcome = self.ask_logged(provider, config, token, &key).await;
                let until = reuse_until(&outcome, config, now);
                if until > now {
                    let _ = guard.insert(Entry {
                        outcome: outcome.clone(),
                        until,
                    });
                }
                asked(outcome)
            }
        }
    }

    async fn ask_logged(
        &self,
        provider: &Provider,
        config: &IntrospectionConfig,
        token: &str,
        key: &[u8; 32],
    ) -> IntrospectionOutcome {
        let outcome = self.ask(provider, config, token).await;
        let digest = hex_prefix(key);
        match &outcome {
            IntrospectionOutcome::Active { .. } => {
                tracing::debug!(provider = provider.name(), token = %digest, "introspection: active");
            }
            IntrospectionOutcome::Inactive => {
                tracing::info!(provider = provider.name(), token = %digest, "introspection: not active");
            }
            IntrospectionOutcome::Unavailable { detail } => tracing::warn!(
                provider = provider.name(),
                token = %digest,
                detail = detail.as_str(),
                "introspection failed (denied, fail closed)"
            ),
        }
        outcome
    }

    /// One call to the provider's endpoint.
    async fn ask(
        &self,
        provider: &Provider,
        config: &IntrospectionConfig,
        token: &str,
    ) -> IntrospectionOutcome {
        let unavailable = |detail: String| IntrospectionOutcome::Unavailable { detail };
        if token.len() > MAX_TOKEN_BYTES {
            return IntrospectionOutcome::Inactive;
        }
        let discovered;
        let endpoint = match &config.endpoint {
            Some(e) => e.as_str(),
            None => {
                discovered = provider.slot().metadata();
                match discovered
                    .as_deref()
                    .and_then(|m| m.introspection_endpoint())
                {
                    Some(e) => e,
                    None => {
                        return unavailable(
                            "no introspection endpoint: none configured and the provider's discovery names none (yet)"
                                .to_owned(),
                        );
                    }
                }
            }
        };
        let secret = match read_secret(&config.client_secret).await {
            Ok(s) => s,
            Err(why) => return unavailable(why),
        };
        let mut body = format!(
            "token={}&token_type_hint=access_token",
            utf8_percent_encode(token, FORM_KEEP)
        );
        let mut request = self
            .http
            .post(endpoint)
            .timeout(config.timeout)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json");
        match config.auth {
            // RFC 6749 §2.3.1: id and secret form-encoded, then Basic.
            TokenEndpointAuth::ClientSecretBasic => {
                let basic = base64::engine::general_purpose::STANDARD.encode(format!(
                    "{}:{}",
                    utf8_percent_encode(&config.client_id, FORM_KEEP),
                    utf8_percent_encode(&secret, FORM_KEEP)
                ));
                request = request.header("authorization", format!("Basic {basic}"));
            }
            TokenEndpointAuth::ClientSecretPost => {
                body.push_str("&client_id=");
                body.extend(utf8_percent_encode(&config.client_id, FORM_KEEP));
                body.push_str("&client_secret=");
                body.extend(utf8_percent_encode(&secret, FORM_KEEP));
            }
        }
        let mut response = match request.body(body).send().await {
            Ok(r) => r,
            Err(e) if e.is_timeout() => {
                return unavailable(format!("{endpoint}: no answer within {:?}", config.timeout));
            }
            Err(e) => return unavailable(format!("{endpoint}: {}", transport(&e))),
        };
        let status = response.status().as_u16();
        match status {
            200 => {}
            400 | 401 | 403 => {
                return unavailable(format!(
                    "{endpoint} refused Portcullis's client credentials (HTTP {status}): check introspection.client_id and its secret"
                ));
            }
            _ => return unavailable(format!("{endpoint} answered HTTP {status}")),
        }
        let is_json = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
        if !is_json {
            return unavailable(format!("{endpoint}: the answer is not application/json"));
        }
        let mut bytes = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if bytes.len() + chunk.len() > MAX_INTROSPECTION_BYTES {
                        return unavailable(format!(
                            "{endpoint}: the answer is larger than {MAX_INTROSPECTION_BYTES} bytes"
                        ));
                    }
                    bytes.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) if e.is_timeout() => {
                    return unavailable(format!(
                        "{endpoint}: no full answer within {:?}",
                        config.timeout
                    ));
                }
                Err(e) => return unavailable(format!("{endpoint}: {}", transport(&e))),
            }
        }
        read_answer(&bytes).unwrap_or_else(|why| unavailable(format!("{endpoint}: {why}")))
    }
}

impl std::fmt::Debug for Introspector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Introspector")
            .field("cached", &self.cache.len())
            .finish_non_exhaustive()
    }
}

// === impl Introspect ===

impl Introspect for Introspector {
    fn introspect<'a>(
        &'a self,
        provider: &'a Provider,
        token: &'a str,
        now: i64,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Introspected> + Send + 'a>> {
        Box::pin(self.introspect_at(provider, token, now))
    }

    fn introspect_sourced<'a>(
        &'a self,
        provider: &'a Provider,
        token: &'a str,
        now: i64,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = (Introspected, AnswerSource)> + Send + 'a>,
    > {
        Box::pin(self.introspect_with_source(provider, token, now))
    }
}

/// An RFC 7662 response: a strict JSON object (duplicate members refused) whose
/// `active` is a boolean.
fn read_answer(bytes: &[u8]) -> Result<IntrospectionOutcome, String> {
    let claims = Claims::from_json(bytes)
        .map_err(|e| format!("the answer is no strict JSON object: {e}"))?;
    match claims.get("active") {
        Some(Value::Bool(true)) => Ok(IntrospectionOutcome::Active {
            claims_json: Arc::from(bytes),
        }),
        Some(Value::Bool(false)) => Ok(IntrospectionOutcome::Inactive),
        _ => Err("the answer has no boolean active".to_owned()),
    }
}

/// Until when an answer is reused: an active token for `cache_ttl` but never past
/// its `exp`; an inactive one for at most [`NEGATIVE_TTL`]; a failure for a second
/// (so a burst against a provider that is down makes one call, not one each).
fn reuse_until(outcome: &IntrospectionOutcome, config: &IntrospectionConfig, now: i64) -> i64 {
    let ttl = i64::try_from(config.cache_ttl.as_secs()).unwrap_or(i64::MAX);
    match outcome {
        IntrospectionOutcome::Active { claims_json } => {
            let exp = Claims::from_json(claims_json)
                .ok()
                .and_then(|c| c.expires_at().ok().flatten())
                .map(|e| e.floor() as i64);
            let until = now.saturating_add(ttl);
            exp.map_or(until, |e| e.min(until))
        }
        IntrospectionOutcome::Inactive => {
            let negative = i64::try_from(NEGATIVE_TTL.as_secs()).unwrap_or(0);
            now.saturating_add(ttl.min(negative))
        }
        IntrospectionOutcome::Unavailable { .. } => now.saturating_add(1),
    }
}

async fn read_secret(secret: &IntrospectionSecret) -> Result<zeroize::Zeroizing<String>, String> {
    match secret {
        IntrospectionSecret::Inline(s) => Ok(zeroize::Zeroizing::new(s.clone())),
        IntrospectionSecret::Env(name) => std::env::var(name)
            .map(|s| zeroize::Zeroizing::new(s.trim().to_owned()))
            .map_err(|_| format!("introspection.client_secret_env: {name} is not set")),
        IntrospectionSecret::File(path) => tokio::fs::read_to_string(path)
            .await
            .map(|s| zeroize::Zeroizing::new(s.trim().to_owned()))
            .map_err(|e| format!("introspection.client_secret_file {}: {e}", path.display())),
    }
}

/// SHA-256 of the provider, its client and endpoint, and the token: the cache
/// key, and (its first bytes) what logs name instead of the token.
fn cache_key(provider: &str, config: &IntrospectionConfig, token: &str) -> [u8; 32] {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for part in [
        provider,
        config.endpoint.as_deref().unwrap_or(""),
        config.client_id.as_str(),
        token,
    ] {
        ctx.update(&(part.len() as u64).to_be_bytes());
        ctx.update(part.as_bytes());
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(ctx.finish().as_ref());
    key
}

fn hex_prefix(key: &[u8; 32]) -> String {
    key[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// A transport error with its causes.
fn transport(e: &reqwest::Error) -> String {
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(ttl: u64) -> IntrospectionConfig {
        IntrospectionConfig {
            endpoint: Some("https://idp.example.com/introspect".to_owned()),
            client_id: "portcullis".to_owned(),
            client_secret: IntrospectionSecret::Inline("s".to_owned()),
            auth: TokenEndpointAuth::ClientSecretBasic,
            cache_ttl: Duration::from_secs(ttl),
            timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn answers_are_strict() {
        assert!(matches!(
            read_answer(br#"{"active":true,"exp":5}"#),
            Ok(IntrospectionOutcome::Active { .. })
        ));
        assert!(matches!(
            read_answer(br#"{"active":false}"#),
            Ok(IntrospectionOutcome::Inactive)
        ));
        for bad in [
            &br#"{"active":"true"}"#[..],
            br#"{"active":1}"#,
            br#"{}"#,
            br#"[true]"#,
            br#"{"active":false,"active":true}"#,
            br#"{"active":true} trailing"#,
            b"not json",
        ] {
            assert!(
                read_answer(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn active_answers_are_reused_no_longer_than_exp_or_ttl() {
        let active = |exp: i64| IntrospectionOutcome::Active {
            claims_json: Arc::from(format!(r#"{{"active":true,"exp":{exp}}}"#).as_bytes()),
        };
        assert_eq!(
            reuse_until(&active(1_000_600), &config(60), 1_000_000),
            1_000_060
        );
        assert_eq!(
            reuse_until(&active(1_000_010), &config(60), 1_000_000),
            1_000_010
        );
        assert_eq!(
            reuse_until(&IntrospectionOutcome::Inactive, &config(3600), 1_000_000),
            1_000_030
        );
        let down = IntrospectionOutcome::Unavailable {
            detail: String::new(),
        };
        assert_eq!(reuse_until(&down, &config(60), 1_000_000), 1_000_001);
    }

    #[test]
    fn cache_keys_separate_providers_clients_and_tokens() {
        let c = config(60);
        let mut other = c.clone();
        other.client_id = "other".to_owned();
        let k = cache_key("corp", &c, "tok");
        assert_ne!(k, cache_key("corp2", &c, "tok"));
        assert_ne!(k, cache_key("corp", &other, "tok"));
        assert_ne!(k, cache_key("corp", &c, "tok2"));
        // Length-prefixed: no two splits of the same bytes collide.
        assert_ne!(cache_key("ab", &c, "c"), cache_key("a", &c, "bc"));
        assert_eq!(hex_prefix(&k).len(), 16);
    }
}
