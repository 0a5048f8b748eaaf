//! The token endpoint side of `source: {token_exchange: ...}`: an OAuth 2.0 Token
//! Exchange request (RFC 8693 §2.1) for one inbound token, the client authenticated
//! with `client_secret_basic` as for client credentials, and its response read
//! strictly (§2.2.1). The inbound token is never logged; errors name only the
//! endpoint, its status and its `error` code. A token the endpoint refused is
//! answered from the negative cache (`refused.rs`) for `negative_ttl`; every
//! exchange's outcome is reported (`portcullis_token_exchange_total`).

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use portcullis_policy::config::spiffe::{TOKEN_TYPE_ACCESS_TOKEN, TOKEN_TYPE_JWT, TokenExchange};
use portcullis_policy::{Clock, ExchangeError, ExchangeFuture, Exchanged, Exchanger};
use serde_json::Value;

use super::refused::{REFUSED_ENTRIES, Refused, is_refusal};
use super::{MAX_RESPONSE_BYTES, form, jwt_exp};
use crate::publish::{ExchangeOutcome, NoReport, Report};

/// RFC 8693 §2.1.
const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// Longest wait for the token endpoint.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Exchanges inbound tokens at one token endpoint for one audience.
pub(crate) struct TokenEndpoint {
    config: TokenExchange,
    audience: String,
    http: reqwest::Client,
    clock: Arc<dyn Clock>,
    refused: Refused,
    rule: Arc<str>,
    report: Arc<dyn Report>,
}

/// Why one call to the token endpoint failed, and whether it refused the token.
struct Failure {
    why: String,
    /// The status and `error` code of a refusal (400, 401, 403).
    refusal: Option<(u16, String)>,
}

impl TokenEndpoint {
    /// A client for `config`'s endpoint, asking for `audience`.
    ///
    /// # Errors
    /// The HTTP client cannot be set up.
    pub(crate) fn try_new(
        config: &TokenExchange,
        audience: &str,
        clock: Arc<dyn Clock>,
    ) -> Result<TokenEndpoint, reqwest::Error> {
        Ok(TokenEndpoint {
            config: config.clone(),
            audience: audience.to_owned(),
            http: reqwest::Client::builder()
                .timeout(TIMEOUT)
                .redirect(reqwest::redirect::Policy::none())
                .build()?,
            clock,
            refused: Refused::new(REFUSED_ENTRIES, config.negative_ttl),
            rule: Arc::from(""),
            report: Arc::new(NoReport),
        })
    }

    /// Reports the outcomes of `rule`'s exchanges to `report`.
    pub(crate) fn reporting(mut self, rule: &str, report: Arc<dyn Report>) -> TokenEndpoint {
        self.rule = Arc::from(rule);
        self.report = report;
        self
    }

    /// One exchange: from the negative cache when the token was refused within
    /// `negative_ttl`, else at the token endpoint (a refusal is then remembered).
    async fn exchange_checked(&self, subject_token: &str) -> Result<Exchanged, ExchangeError> {
        let url = &self.config.token_url;
        let now = self.clock.now();
        if let Some(r) = self.refused.get(&self.audience, subject_token, now) {
            self.report
                .exchange(&self.rule, ExchangeOutcome::RefusedCached);
            return Err(ExchangeError {
                why: format!(
                    "{url}: refused {}s ago (HTTP status {}, error {}); not asked again for {}s (negative cache)",
                    now - r.at,
                    r.status,
                    r.code,
                    self.config.negative_ttl.as_secs()
                ),
            });
        }
        match self.exchange_once(subject_token).await {
            Ok(x) => {
                self.report.exchange(&self.rule, ExchangeOutcome::Exchanged);
                Ok(x)
            }
            Err(Failure { why, refusal }) => {
                let outcome = match refusal {
                    Some((status, code)) => {
                        self.refused.insert(
                            &self.audience,
                            subject_token,
                            status,
                            &code,
                            self.clock.now(),
                        );
                        ExchangeOutcome::Refused
                    }
                    None => ExchangeOutcome::Error,
                };
                self.report.exchange(&self.rule, outcome);
                Err(ExchangeError {
                    why: format!("{url}: {why}"),
                })
            }
        }
    }

    /// The form body of the request for `subject_token`.
    fn body(&self, subject_token: &str) -> String {
        let c = &self.config;
        let mut body = format!(
            "grant_type={}&subject_token={}&subject_token_type={}&requested_token_type={}&audience={}",
            form(GRANT_TYPE),
            form(subject_token),
            form(c.subject_token_type),
            form(TOKEN_TYPE_ACCESS_TOKEN),
            form(&self.audience),
        );
        if let Some(resource) = &c.resource {
            body.push_str("&resource=");
            body.push_str(&form(resource));
        }
        if !c.scopes.is_empty() {
            body.push_str("&scope=");
            body.push_str(&form(&c.scopes.join(" ")));
        }
        body
    }

    async fn exchange_once(&self, subject_token: &str) -> Result<Exchanged, Failure> {
        let url = &self.config.token_url;
        let fail = |why: String| Failure { why, refusal: None };
        // RFC 6749 §2.3.1: id and secret form-encoded, then Basic.
        let basic = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            form(&self.config.client_id),
            form(&self.config.client_secret)
        ));
        let mut response = self
            .http
            .post(url)
            .header("authorization", format!("Basic {basic}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(self.body(subject_token))
            .send()
            .await
            .map_err(|e| fail(format!("cannot be reached: {}", without_url(e))))?;
        let status = response.status().as_u16();
        let mut bytes = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| fail(format!("response unreadable: {}", without_url(e))))?
        {
            bytes.extend_from_slice(&chunk);
            if bytes.len() > MAX_RESPONSE_BYTES {
                return Err(fail("response too large".to_owned()));
            }
        }
        let json: Option<Value> = serde_json::from_slice(&bytes).ok();
        if status != 200 {
            // RFC 8693 §2.2.2 / RFC 6749 §5.2: `error` is a short ASCII code.
            let code = json
                .as_ref()
                .and_then(|v| v.get("error"))
                .and_then(Value::as_str)
                .map(clip_code)
                .unwrap_or_else(|| "none".to_owned());
            let why = format!("HTTP status {status}, error {code}");
            return Err(Failure {
                why,
                refusal: is_refusal(status).then_some((status, code)),
            });
        }
        let v = json.ok_or_else(|| fail("response is no JSON".to_owned()))?;
        read_response(&v, self.clock.now()).map_err(|why| fail(why.to_owned()))
    }
}

impl Exchanger for TokenEndpoint {
    fn exchange<'a>(&'a self, subject_token: &'a str) -> ExchangeFuture<'a> {
        ExchangeFuture(Box::pin(self.exchange_checked(subject_token)))
    }
}

/// A successful response (§2.2.1): `access_token`, `issued_token_type` an access
/// token or a JWT (we send it as a bearer token), `token_type` Bearer, and its
/// lifetime from `expires_in` or, failing that, the JWT's `exp`.
fn read_response(v: &Value, now: i64) -> Result<Exchanged, &'static str> {
    let token = v
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or("no access_token")?;
    match v.get("issued_token_type").and_then(Value::as_str) {
        Some(TOKEN_TYPE_ACCESS_TOKEN | TOKEN_TYPE_JWT) => {}
        Some(_) => return Err("issued_token_type is neither an access token nor a JWT"),
        None => return Err("no issued_token_type"),
    }
    match v.get("token_type").and_then(Value::as_str) {
        Some(t) if t.eq_ignore_ascii_case("bearer") => {}
        _ => return Err("token_type is not Bearer"),
    }
    let expires_at = match v.get("expires_in") {
        Some(e) => {
            let e = e
                .as_i64()
                .filter(|&e| e > 0)
                .ok_or("expires_in is not a positive integer")?;
            now.saturating_add(e)
        }
        None => jwt_exp(token).map_err(|_| "no expires_in and no exp")?,
    };
    Ok(Exchanged {
        token: token.to_owned(),
        expires_at,
    })
}

/// An `error` code as logged: its allowed characters only (RFC 6749 §5.2), short.
fn clip_code(code: &str) -> String {
    code.chars()
        .filter(|c| matches!(c, ' '..='~') && *c != '"' && *c != '\\')
        .take(64)
        .collect()
}

/// A transport error with its causes, without its URL (the message names it once).
fn without_url(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use portcullis_jose::b64;
    use serde_json::json;

    use super::*;

    const NOW: i64 = 1_700_000_000;

    #[test]
    fn reads_a_token_exchange_response() {
        let v = json!({"access_token": "a.b.c", "issued_token_type": TOKEN_TYPE_ACCESS_TOKEN, "token_type": "Bearer", "expires_in": 60});
        let x = read_response(&v, NOW).unwrap();
        assert_eq!((x.token.as_str(), x.expires_at), ("a.b.c", NOW + 60));
        let jwt = format!("e30.{}.x", b64::encode(br#"{"exp":1700000300}"#));
        let v = json!({"access_token": jwt, "issued_token_type": TOKEN_TYPE_JWT, "token_type": "bearer"});
        assert_eq!(read_response(&v, NOW).unwrap().expires_at, NOW + 300);
    }

    #[test]
    fn refuses_a_response_that_breaks_rfc_8693() {
        let ok = json!({"access_token": "t", "issued_token_type": TOKEN_TYPE_ACCESS_TOKEN, "token_type": "Bearer", "expires_in": 60});
        let with = |k: &str, val: Value| {
            let mut v = ok.clone();
            v[k] = val;
            v
        };
        let without = |k: &str| {
            let mut v = ok.clone();
            v.as_object_mut().unwrap().remove(k);
            v
        };
        for (v, why) in [
            (without("access_token"), "no access_token"),
            (with("access_token", json!("")), "no access_token"),
            (without("issued_token_type"), "no issued_token_type"),
            (
                with(
                    "issued_token_type",
                    json!("urn:ietf:params:oauth:token-type:refresh_token"),
                ),
                "neither",
            ),
            (with("token_type", json!("N_A")), "Bearer"),
            (without("token_type"), "Bearer"),
            (with("expires_in", json!(0)), "positive"),
            (with("expires_in", json!("60")), "positive"),
            (without("expires_in"), "no expires_in"),
        ] {
            let err = read_response(&v, NOW).unwrap_err();
            assert!(err.contains(why), "{v}: {err}");
        }
    }

    #[test]
    fn sends_every_parameter_form_encoded() {
        let config = TokenExchange {
            token_url: "http://127.0.0.1:1/token".to_owned(),
            client_id: "egress".to_owned(),
            client_secret: "s".to_owned(),
            scopes: vec!["a".to_owned(), "b".to_owned()],
            subject_token_type: TOKEN_TYPE_JWT,
            resource: Some("https://r.example/x".to_owned()),
            verify_with: None,
            negative_ttl: portcullis_policy::config::spiffe::DEFAULT_NEGATIVE_TTL,
        };
        let e = TokenEndpoint::try_new(
            &config,
            "spiffe://example.org/backend",
            Arc::new(portcullis_policy::SystemClock),
        )
        .unwrap();
        assert_eq!(
            e.body("a+b/c="),
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange\
             &subject_token=a%2Bb%2Fc%3D\
             &subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Ajwt\
             &requested_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aaccess_token\
             &audience=spiffe%3A%2F%2Fexample.org%2Fbackend\
             &resource=https%3A%2F%2Fr.example%2Fx&scope=a+b"
        );
    }

    #[test]
    fn error_codes_are_clipped_to_their_characters() {
        assert_eq!(clip_code("invalid_grant"), "invalid_grant");
        assert_eq!(clip_code("a\"b\n\\c"), "abc");
        assert_eq!(clip_code(&"x".repeat(100)).len(), 64);
    }
}
