//! Token sources for `inject` rules: each keeps one rule's [`TokenSlot`] filled
//! with a fresh outbound token, in the background, renewing at half its lifetime so
//! that a request finds a fresh one without waiting. A failure keeps the current
//! token (while it lasts) and retries with backoff.
//!
//! - `workload_api`: a JWT-SVID for the audience from the Workload API
//!   (`FetchJWTSVID`, through the `spiffe` crate).
//! - `client_credentials`: an OAuth 2.0 token (RFC 6749 §4.4) from a token endpoint,
//!   the client authenticated with `client_secret_basic`, the audience sent as the
//!   RFC 8707 `resource`.
//! - `mint`: a JWT signed with our own key.
//! - `token_exchange`: no background token: the rule's slot gets an exchanger
//!   (`inject/exchange.rs`) that trades each inbound token on demand (RFC 8693).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use portcullis_jose::{SigningKey, b64};
use portcullis_policy::config::spiffe::{InjectConfig, InjectSource};
use portcullis_policy::{Clock, InjectedToken, TokenSlot};
use serde_json::{Value, json};

use crate::SourceHandle;
use crate::spiffe::Backoff;

mod exchange;
mod refused;

/// Longest token-endpoint response read.
pub(crate) const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// Least time between two renewals (a token endpoint answering tiny lifetimes).
const MIN_RENEW: Duration = Duration::from_secs(1);

/// Why a token could not be had.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InjectError {
    /// The Workload API failed.
    #[error("Workload API: {source}")]
    WorkloadApi {
        /// The cause.
        source: spiffe::WorkloadApiError,
    },
    /// The token endpoint could not be reached or read.
    #[error("{url}: {source}")]
    Transport {
        /// The endpoint.
        url: String,
        /// The cause.
        source: reqwest::Error,
    },
    /// The token endpoint answered something else than a token.
    #[error("{url}: HTTP status {status}")]
    Status {
        /// The endpoint.
        url: String,
        /// Its status.
        status: u16,
    },
    /// A response or token we cannot use.
    #[error("unusable token: {why}")]
    Invalid {
        /// Why.
        why: String,
    },
    /// The signing key of `mint`.
    #[error("{path}: {why}")]
    Key {
        /// The key file.
        path: String,
        /// Why.
        why: String,
    },
}

/// Starts the source that keeps `slot` filled for `config`, timing with `clock`.
pub fn start_inject(
    rule: &str,
    config: &InjectConfig,
    slot: Arc<TokenSlot>,
    clock: Arc<dyn Clock>,
) -> SourceHandle {
    start_inject_reporting(rule, config, slot, clock, Arc::new(crate::NoReport))
}

/// [`start_inject`], reporting what the source does to `report` (token exchanges
/// by outcome).
pub fn start_inject_reporting(
    rule: &str,
    config: &InjectConfig,
    slot: Arc<TokenSlot>,
    clock: Arc<dyn Clock>,
    report: Arc<dyn crate::Report>,
) -> SourceHandle {
    let source = match &config.source {
        InjectSource::TokenExchange(x) => {
            match exchange::TokenEndpoint::try_new(x, &config.audience, clock) {
                Ok(endpoint) => slot.set_exchanger(
                    Arc::new(endpoint.reporting(rule, report)),
                    portcullis_policy::EXCHANGE_CACHE_ENTRIES,
                ),
                Err(e) => {
                    tracing::error!(rule, error = %e, "inject: the token exchange client cannot be set up; the rule denies (token_unavailable)");
                }
            }
            return SourceHandle::done();
        }
        InjectSource::WorkloadApi { socket } => Kind::WorkloadApi {
            endpoint: socket.clone(),
        },
        InjectSource::ClientCredentials {
            token_url,
            client_id,
            client_secret,
            scopes,
        } => Kind::ClientCredentials {
            token_url: token_url.clone(),
            client_id: client_id.clone(),
            client_secret: client_secret.clone(),
            scopes: scopes.join(" "),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .ok(),
        },
        InjectSource::Mint {
            key_file,
            issuer,
            subject,
            ttl,
        } => match load_key(key_file) {
            Ok((key, kid)) => Kind::Mint {
                key: Arc::new(key),
                kid,
                issuer: issuer.clone(),
                subject: subject.clone(),
                ttl: *ttl,
            },
            Err(e) => {
                tracing::error!(rule, error = %e, "inject: signing key unusable; the rule denies (token_unavailable)");
                return SourceHandle::done();
            }
        },
    };
    let task = Task {
        rule: rule.to_owned(),
        audience: config.audience.clone(),
        kind: source,
        slot,
        clock,
    };
    SourceHandle {
        task: Some(tokio::spawn(task.run())),
    }
}

enum Kind {
    ClientCredentials {
        token_url: String,
        client_id: String,
        client_secret: String,
        scopes: String,
        http: Option<reqwest::Client>,
    },
    Mint {
        key: Arc<SigningKey>,
        kid: Option<String>,
        issuer: String,
        subject: String,
        ttl: Duration,
    },
    WorkloadApi {
        endpoint: String,
    },
}

struct Task {
    rule: String,
    audience: String,
    kind: Kind,
    slot: Arc<TokenSlot>,
    clock: Arc<dyn Clock>,
}

impl Task {
    async fn run(self) {
        let mut backoff = Backoff::new();
        let mut client: Option<spiffe::WorkloadApiClient> = None;
        loop {
            let now = self.clock.now();
            match self.fetch(&mut client, now).await {
                Ok((token, expires_at)) => match InjectedToken::try_new(&token, expires_at) {
                    Ok(t) => {
                        backoff.reset();
                        self.slot.store(t);
                        let renew = Duration::from_secs(((expires_at - now).max(0) / 2) as u64);
                        tracing::info!(rule = %self.rule, audience = %self.audience, expires_at, renew_in = ?renew, "inject: token renewed");
                        tokio::time::sleep(renew.max(MIN_RENEW)).await;
                        continue;
                    }
                    Err(_) => {
                        tracing::warn!(rule = %self.rule, "inject: token is no header value");
                    }
                },
                Err(e) => {
                    client = None;
                    tracing::warn!(rule = %self.rule, audience = %self.audience, error = %e, "inject: no new token; keeping the current one while it lasts");
                }
            }
            tokio::time::sleep(backoff.step()).await;
        }
    }

    async fn fetch(
        &self,
        client: &mut Option<spiffe::WorkloadApiClient>,
        now: i64,
    ) -> Result<(String, i64), InjectError> {
        match &self.kind {
            Kind::WorkloadApi { endpoint } => {
                let c = match client {
                    Some(c) => c,
                    None => client.insert(
                        spiffe::WorkloadApiClient::connect_to(endpoint)
                            .await
                            .map_err(|source| InjectError::WorkloadApi { source })?,
                    ),
                };
                let token = c
                    .fetch_jwt_token([self.audience.as_str()], None)
                    .await
                    .map_err(|source| InjectError::WorkloadApi { source })?;
                let exp = jwt_exp(&token)?;
                Ok((token, exp))
            }
            Kind::ClientCredentials {
                token_url,
                client_id,
                client_secret,
                scopes,
                http,
            } => {
                let http = http.as_ref().ok_or_else(|| InjectError::Invalid {
                    why: "the HTTP client could not be set up".to_owned(),
                })?;
                client_credentials(
                    http,
                    token_url,
                    client_id,
                    client_secret,
                    scopes,
                    &self.audience,
                    now,
                )
                .await
            }
            Kind::Mint {
                key,
                kid,
                issuer,
                subject,
                ttl,
            } => {
                let exp = now + ttl.as_secs() as i64;
                let claims = json!({
                    "iss": issuer,
                    "sub": subject,
                    "aud": self.audience,
                    "iat": now,
                    "exp": exp,
                });
                let mut header = serde_json::Map::new();
                header.insert("typ".into(), Value::from("JWT"));
                let token = key
                    .encode(kid.as_deref(), &header, claims.to_string().as_bytes())
                    .map_err(|e| InjectError::Invalid { why: e.to_string() })?;
                Ok((token, exp))
            }
        }
    }
}

fn load_key(path: &Path) -> Result<(SigningKey, Option<String>), InjectError> {
    let err = |why: String| InjectError::Key {
        path: path.display().to_string(),
        why,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let key = SigningKey::from_pem(&text, None).map_err(|e| err(e.to_string()))?;
    let kid = key.public_material().thumbprint();
    Ok((key, kid))
}

/// The `exp` of a compact JWT we were handed (not verified: it is ours to send).
pub(crate) fn jwt_exp(token: &str) -> Result<i64, InjectError> {
    let invalid = |why: &str| InjectError::Invalid {
        why: why.to_owned(),
    };
    let payload = token
        .split('.')
        .nth(1)
        .ok_or_else(|| invalid("not a JWT"))?;
    let bytes =
        b64::decode(payload.as_bytes()).ok_or_else(|| invalid("payload is no base64url"))?;
    let claims: Value =
        serde_json::from_slice(&bytes).map_err(|_| invalid("payload is no JSON"))?;
    claims
        .get("exp")
        .and_then(Value::as_f64)
        .filter(|e| e.is_finite())
        .map(|e| e as i64)
        .ok_or_else(|| invalid("no exp"))
}

async fn client_credentials(
    http: &reqwest::Client,
    token_url: &str,
    client_id: &str,
    client_secret: &str,
    scopes: &str,
    audience: &str,
    now: i64,
) -> Result<(String, i64), InjectError> {
    let transport = |source| InjectError::Transport {
        url: token_url.to_owned(),
        source,
    };
    let mut body = format!("grant_type=client_credentials&resource={}", form(audience));
    if !scopes.is_empty() {
        body.push_str("&scope=");
        body.push_str(&form(scopes));
    }
    // RFC 6749 §2.3.1: id and secret form-encoded, then Basic.
    let basic = base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{}",
        form(client_id),
        form(client_secret)
    ));
    let mut response = http
        .post(token_url)
        .header("authorization", format!("Basic {basic}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "application/json")
        .body(body)
        .send()
        .await
        .map_err(transport)?;
    let status = response.status().as_u16();
    if status != 200 {
        return Err(InjectError::Status {
            url: token_url.to_owned(),
            status,
        });
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(transport)? {
        bytes.extend_from_slice(&chunk);
        if bytes.len() > MAX_RESPONSE_BYTES {
            return Err(InjectError::Invalid {
                why: "token response too large".to_owned(),
            });
        }
    }
    let v: Value = serde_json::from_slice(&bytes).map_err(|_| InjectError::Invalid {
        why: "token response is no JSON".to_owned(),
    })?;
    let token = v
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| InjectError::Invalid {
            why: "no access_token".to_owned(),
        })?;
    if let Some(t) = v.get("token_type").and_then(Value::as_str)
        && !t.eq_ignore_ascii_case("bearer")
    {
        return Err(InjectError::Invalid {
            why: format!("token_type {t:?} is not Bearer"),
        });
    }
    let expires_in = v
        .get("expires_in")
        .and_then(Value::as_i64)
        .filter(|&e| e > 0)
        .or_else(|| jwt_exp(token).ok().map(|exp| exp - now))
        .ok_or_else(|| InjectError::Invalid {
            why: "no expires_in and no exp".to_owned(),
        })?;
    Ok((token.to_owned(), now + expires_in))
}

/// `application/x-www-form-urlencoded` for one value.
pub(crate) fn form(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(b as char);
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_encodes_reserved_bytes() {
        assert_eq!(form("a b:c/d%é"), "a+b%3Ac%2Fd%25%C3%A9");
        assert_eq!(form("spiffe://x/y"), "spiffe%3A%2F%2Fx%2Fy");
    }

    #[test]
    fn exp_of_a_jwt() {
        let t = format!("e30.{}.x", b64::encode(br#"{"exp":1700000060}"#));
        assert_eq!(jwt_exp(&t).unwrap(), 1_700_000_060);
        assert!(jwt_exp("e30.e30.x").is_err());
        assert!(jwt_exp("nope").is_err());
    }
}
