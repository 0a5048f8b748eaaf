//! The relying party's talk with the provider: the code exchange at the token
//! endpoint, the ID token checked by our JOSE core (OIDC Core §3.1.3.7), userinfo.

use aws_lc_rs::digest::{SHA256, SHA384, SHA512, digest};
use base64::Engine as _;
use portcullis_jose::{Claims, KeySet, Validation, verify_jwt};
use serde_json::{Map, Value};
use subtle::ConstantTimeEq;

/// Why a login fails at the provider's end.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExchangeError {
    /// The provider cannot be reached, or answers with a server error (502).
    #[error("provider unreachable at {url}: {detail}")]
    Unreachable {
        /// The endpoint.
        url: String,
        /// What happened.
        detail: String,
    },
    /// The provider refused the exchange (a used or forged code) (400).
    #[error("token endpoint refused the code: status {status}")]
    Refused {
        /// Its status.
        status: u16,
    },
    /// The answer is not what OIDC says (400).
    #[error("token response: {0}")]
    BadResponse(&'static str),
    /// The ID token fails (400).
    #[error("id token: {0}")]
    IdToken(String),
}

/// What the token endpoint gave.
#[derive(Debug)]
pub struct Tokens {
    /// The ID token (compact JWS).
    pub id_token: String,
    /// The access token, if any.
    pub access_token: Option<String>,
    /// The refresh token, if the provider issued one.
    pub refresh_token: Option<String>,
    /// The access token's lifetime in seconds (`expires_in`).
    pub expires_in: Option<i64>,
}

/// The client's credentials at the token endpoint.
pub struct ClientAuth<'a> {
    /// `client_id`.
    pub client_id: &'a str,
    /// `client_secret`.
    pub client_secret: &'a str,
    /// `client_secret_post` rather than `client_secret_basic`.
    pub post: bool,
}

fn form_encode(pairs: &[(&str, &str)]) -> String {
    use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
    pairs
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                utf8_percent_encode(k, NON_ALPHANUMERIC),
                utf8_percent_encode(v, NON_ALPHANUMERIC)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// RFC 6749 §2.3.1: the id and secret are form-urlencoded before HTTP Basic.
fn basic(client_id: &str, secret: &str) -> String {
    use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
    let user = utf8_percent_encode(client_id, NON_ALPHANUMERIC).to_string();
    let pass = utf8_percent_encode(secret, NON_ALPHANUMERIC).to_string();
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

/// Posts `params` to the token endpoint with the client's authentication.
///
/// # Errors
/// [`ExchangeError`].
pub(crate) async fn token_request(
    http: &reqwest::Client,
    token_endpoint: &str,
    auth: &ClientAuth<'_>,
    params: &[(&str, &str)],
) -> Result<Map<String, Value>, ExchangeError> {
    let mut form: Vec<(&str, &str)> = params.to_vec();
    let mut request = http.post(token_endpoint);
    if auth.post {
        form.push(("client_id", auth.client_id));
        form.push(("client_secret", auth.client_secret));
    } else {
        request = request.header(
            http::header::AUTHORIZATION,
            basic(auth.client_id, auth.client_secret),
        );
    }
    let unreachable = |e: reqwest::Error| ExchangeError::Unreachable {
        url: token_endpoint.to_owned(),
        detail: e.to_string(),
    };
    let response = request
        .header(
            http::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .header(http::header::ACCEPT, "application/json")
        .body(form_encode(&form))
        .send()
        .await
        .map_err(unreachable)?;
    let status = response.status().as_u16();
    if status >= 500 {
        return Err(ExchangeError::Unreachable {
            url: token_endpoint.to_owned(),
            detail: format!("status {status}"),
        });
    }
    if status != 200 {
        return Err(ExchangeError::Refused { status });
    }
    let body = response.bytes().await.map_err(unreachable)?;
    if body.len() > 256 * 1024 {
        return Err(ExchangeError::BadResponse("too large"));
    }
    match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(ExchangeError::BadResponse("not a JSON object")),
    }
}

/// The code exchange (RFC 6749 §4.1.3 with the PKCE verifier, RFC 7636 §4.5).
///
/// # Errors
/// [`ExchangeError`].
pub(crate) async fn exchange_code(
    http: &reqwest::Client,
    token_endpoint: &str,
    auth: &ClientAuth<'_>,
    code: &str,
    redirect_uri: &str,
    verifier: &str,
) -> Result<Tokens, ExchangeError> {
    let m = token_request(
        http,
        token_endpoint,
        auth,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", verifier),
        ],
    )
    .await?;
    let token_type_ok = m
        .get("token_type")
        .and_then(Value::as_str)
        .is_none_or(|t| t.eq_ignore_ascii_case("bearer") || t.eq_ignore_ascii_case("dpop"));
    if !token_type_ok {
        return Err(ExchangeError::BadResponse("token_type is not Bearer"));
    }
    let id_token = m
        .get("id_token")
        .and_then(Value::as_str)
        .ok_or(ExchangeError::BadResponse("no id_token"))?
        .to_owned();
    Ok(Tokens {
        id_token,
        access_token: m
            .get("access_token")
            .and_then(Value::as_str)
            .map(str::to_owned),
        refresh_token: m
            .get("refresh_token")
            .and_then(Value::as_str)
            .map(str::to_owned),
        expires_in: m.get("expires_in").and_then(Value::as_i64),
    })
}

/// The PKCE S256 challenge of a verifier (RFC 7636 §4.2).
pub fn pkce_challenge(verifier: &str) -> String {
    portcullis_jose::b64::encode(digest(&SHA256, verifier.as_bytes()).as_ref())
}

/// Checks the ID token (OIDC Core §3.1.3.7): signature and `alg` by the provider's
/// keys, `iss`, `aud` holding the client id, `azp` (the client id, required when
/// `aud` holds others), `exp`, `iat`, the `nonce` of this login, and `at_hash` when
/// present. Returns its claims.
///
/// # Errors
/// [`ExchangeError::IdToken`] naming the check that failed.
pub fn verify_id_token(
    id_token: &str,
    keys: &KeySet,
    provider_validation: &Validation,
    client_id: &str,
    nonce: &str,
    access_token: Option<&str>,
    now: i64,
) -> Result<Claims, ExchangeError> {
    let validation = Validation {
        audiences: vec![client_id.to_owned()],
        require_exp: true,
        typ: None,
        ..provider_validation.clone()
    };
    let jwt = verify_jwt(id_token, keys, &validation, now)
        .map_err(|e| ExchangeError::IdToken(e.to_string()))?;
    let claims = jwt.claims;
    let bad = |what: &str| ExchangeError::IdToken(what.to_owned());
    if claims.get("iat").and_then(Value::as_f64).is_none() {
        return Err(bad("no iat"));
    }
    if claims.subject().is_none_or(str::is_empty) {
        return Err(bad("no sub"));
    }
    let auds = claims.audiences().map_err(|e| bad(&e.to_string()))?;
    match claims.get("azp") {
        Some(Value::String(azp)) if azp == client_id => {}
        Some(_) => return Err(bad("azp is not our client id")),
        None if auds.len() > 1 => return Err(bad("several audiences and no azp")),
        None => {}
    }
    let got = claims.get("nonce").and_then(Value::as_str).unwrap_or("");
    if !bool::from(got.as_bytes().ct_eq(nonce.as_bytes())) || nonce.is_empty() {
        return Err(bad("nonce differs from this login's"));
    }
    if let Some(at_hash) = claims.get("at_hash") {
        let (Some(at_hash), Some(access)) = (at_hash.as_str(), access_token) else {
            return Err(bad("at_hash without an access token"));
        };
        let alg = jwt.header.alg().name();
        let hashed = match &alg[alg.len().saturating_sub(3)..] {
            "256" => digest(&SHA256, access.as_bytes()),
            "384" => digest(&SHA384, access.as_bytes()),
            "512" | "DSA" | "519" => digest(&SHA512, access.as_bytes()),
            _ => return Err(bad("at_hash with an algorithm of unknown hash")),
        };
        let half = &hashed.as_ref()[..hashed.as_ref().len() / 2];
        let want = portcullis_jose::b64::encode(half);
        if !bool::from(want.as_bytes().ct_eq(at_hash.as_bytes())) {
            return Err(bad("at_hash does not match the access token"));
        }
    }
    Ok(claims)
}

/// Userinfo (OIDC Core §5.3): claims the ID token lacks; its `sub` must be the ID
/// token's, else it is not used. Errors only log: the ID token suffices.
pub(crate) async fn userinfo(
    http: &reqwest::Client,
    endpoint: &str,
    access_token: &str,
    sub: &str,
) -> Option<Map<String, Value>> {
    let response = http
        .get(endpoint)
        .bearer_auth(access_token)
        .header(http::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| tracing::warn!(error = %e, "userinfo unreachable"))
        .ok()?;
    if response.status() != 200 {
        tracing::warn!(status = response.status().as_u16(), "userinfo refused");
        return None;
    }
    let body = response.bytes().await.ok()?;
    match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(m)) if m.get("sub").and_then(Value::as_str) == Some(sub) => Some(m),
        _ => {
            tracing::warn!("userinfo is not a JSON object with the ID token's sub");
            None
        }
    }
}
