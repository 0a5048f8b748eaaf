//! The login endpoints: `/oauth2/start`, `/oauth2/callback`, `/oauth2/sign_out`,
//! `/oauth2/backchannel_logout`, `/.well-known/jwks.json`,
//! `/.well-known/openid-configuration`.

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION, SET_COOKIE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use percent_encoding::{NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use portcullis_decider::{Decider, LoginStep, SessionEnd};
use portcullis_jose::{Validation, verify_jwt};
use portcullis_policy::Provider;
use serde_json::{Map, Value};
use subtle::ConstantTimeEq;

use crate::oidc::{self, ClientAuth, ExchangeError};
use crate::record::{SessionRecord, StateRecord};
use crate::redirect::check_redirect;
use crate::{Login, SESSION_ID, STATE, cookies};

/// How long a login attempt may take, from `/oauth2/start` to the callback.
const STATE_TTL: i64 = 600;
/// The largest `max_age` `/oauth2/start` passes on (366 days, as rules allow).
const MAX_AGE_LIMIT: u64 = 366 * 24 * 3600;
/// The back-channel logout event (OIDC Back-Channel Logout 1.0 §2.4).
const BACKCHANNEL_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// Why a login endpoint refuses: a fixed reason code and its status.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub(crate) enum Failure {
    /// The ID token's `acr` is not one of the `acr_values` asked for (403).
    AcrNotSatisfied,
    /// The ID token's `auth_time` is missing or older than the `max_age` asked for (403).
    MaxAgeNotSatisfied,
    /// Back-channel logout token fails validation (400).
    LogoutTokenInvalid,
    /// Wrong method (405).
    MethodNotAllowed,
    /// No such endpoint here, or no session token configured (404).
    NotFound,
    /// The provider answered the login with an error (400).
    ProviderError,
    /// The provider cannot be reached or has no usable metadata (502).
    ProviderUnreachable,
    /// The session store cannot be reached (503).
    StoreUnavailable,
    /// `rd` is not allowed (400).
    RedirectNotAllowed,
    /// The request is malformed (400).
    RequestInvalid,
    /// `state` missing, forged, expired or replayed (400).
    StateInvalid,
}

impl Failure {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Failure::AcrNotSatisfied => "acr_not_satisfied",
            Failure::MaxAgeNotSatisfied => "max_age_not_satisfied",
            Failure::LogoutTokenInvalid => "logout_token_invalid",
            Failure::MethodNotAllowed => "method_not_allowed",
            Failure::NotFound => "not_found",
            Failure::ProviderError => "provider_error",
            Failure::ProviderUnreachable => "provider_unreachable",
            Failure::RedirectNotAllowed => "redirect_not_allowed",
            Failure::RequestInvalid => "request_invalid",
            Failure::StateInvalid => "state_invalid",
            Failure::StoreUnavailable => "store_unavailable",
        }
    }

    fn status(self) -> StatusCode {
        match self {
            Failure::AcrNotSatisfied | Failure::MaxAgeNotSatisfied => StatusCode::FORBIDDEN,
            Failure::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Failure::NotFound => StatusCode::NOT_FOUND,
            Failure::ProviderUnreachable => StatusCode::BAD_GATEWAY,
            Failure::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    fn error_code(self) -> &'static str {
        match self {
            Failure::ProviderUnreachable | Failure::StoreUnavailable => "temporarily_unavailable",
            Failure::NotFound => "not_found",
            Failure::AcrNotSatisfied | Failure::MaxAgeNotSatisfied => {
                "insufficient_user_authentication"
            }
            _ => "invalid_request",
        }
    }
}

/// A refusal: the reason, and a detail for logs only.
struct Refusal {
    failure: Failure,
    detail: String,
    /// The state cookie to clear with the refusal.
    clear_state: Option<String>,
}

fn refuse(failure: Failure, detail: impl Into<String>) -> Refusal {
    Refusal {
        failure,
        detail: detail.into(),
        clear_state: None,
    }
}

fn json_response(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn redirect(location: &str, cookies: &[String]) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::FOUND;
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(LOCATION, v);
    }
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    add_cookies(&mut r, cookies);
    r
}

fn add_cookies(r: &mut Response<Full<Bytes>>, cookies: &[String]) {
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(c) {
            r.headers_mut().append(SET_COOKIE, v);
        }
    }
}

/// The query's parameters, decoded; a repeated one is refused.
fn query(uri: &http::Uri) -> Result<Vec<(String, String)>, Refusal> {
    form(uri.query().unwrap_or(""))
}

fn form(text: &str) -> Result<Vec<(String, String)>, Refusal> {
    let mut out: Vec<(String, String)> = Vec::new();
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| {
            percent_decode_str(&s.replace('+', " "))
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| refuse(Failure::RequestInvalid, "parameter is not UTF-8"))
        };
        let (k, v) = (decode(k)?, decode(v)?);
        if out.iter().any(|(n, _)| *n == k) {
            return Err(refuse(
                Failure::RequestInvalid,
                format!("parameter {k:?} repeated"),
            ));
        }
        out.push((k, v));
    }
    Ok(out)
}

fn param<'q>(params: &'q [(String, String)], name: &str) -> Option<&'q str> {
    params
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

fn enc(s: &str) -> percent_encoding::PercentEncode<'_> {
    utf8_percent_encode(s, NON_ALPHANUMERIC)
}

impl Login {
    /// Answers one request to a login endpoint (see [`Login::is_login_path`]).
    pub async fn handle(&self, decider: &Decider, req: Request<Bytes>) -> Response<Full<Bytes>> {
        self.start_gauge(decider);
        let now = decider.now();
        let path = req.uri().path().to_owned();
        let result = match (path.as_str(), req.method()) {
            ("/oauth2/start", &Method::GET) => self.start(decider, &req, now),
            ("/oauth2/callback", &Method::GET) => self.callback(decider, &req, now).await,
            ("/oauth2/sign_out", &Method::GET | &Method::POST) => {
                self.sign_out(decider, &req, now).await
            }
            ("/oauth2/backchannel_logout", &Method::POST) => {
                self.backchannel_logout(decider, &req, now).await
            }
            ("/.well-known/jwks.json", &Method::GET | &Method::HEAD) => match &self.minter {
                Some(m) => Ok(json_response(StatusCode::OK, m.jwks().to_owned())),
                None => Err(refuse(Failure::NotFound, "no sessions.token")),
            },
            ("/.well-known/openid-configuration", &Method::GET | &Method::HEAD) => {
                match &self.minter {
                    Some(m) => Ok(json_response(StatusCode::OK, m.discovery().to_owned())),
                    None => Err(refuse(Failure::NotFound, "no sessions.token")),
                }
            }
            (p, _) if Login::is_login_path(p) => {
                Err(refuse(Failure::MethodNotAllowed, "method not allowed"))
            }
            _ => Err(refuse(Failure::NotFound, "not a login endpoint")),
        };
        let step = match path.as_str() {
            "/oauth2/start" => Some(LoginStep::Start),
            "/oauth2/callback" => Some(LoginStep::Callback),
            "/oauth2/sign_out" => Some(LoginStep::SignOut),
            "/oauth2/backchannel_logout" => Some(LoginStep::Backchannel),
            _ => None,
        };
        if let Some(step) = step {
            let outcome = match &result {
                Ok(_) => "ok",
                Err(refusal) => refusal.failure.as_str(),
            };
            decider.metrics().login(step, outcome);
        }
        match result {
            Ok(r) => r,
            Err(refusal) => {
                tracing::warn!(
                    endpoint = path.as_str(),
                    status = refusal.failure.status().as_u16(),
                    reason = refusal.failure.as_str(),
                    detail = refusal.detail.as_str(),
                    "login refused"
                );
                let mut r = json_response(
                    refusal.failure.status(),
                    format!(
                        r#"{{"error":"{}","reason":"{}"}}"#,
                        refusal.failure.error_code(),
                        refusal.failure.as_str()
                    ),
                );
                if let Some(name) = &refusal.clear_state {
                    let clear = cookies::set(&self.sessions.cookie, name, "", None);
                    add_cookies(&mut r, &[clear]);
                }
                r
            }
        }
    }

    fn login_provider<'e>(
        engine: &'e portcullis_policy::Engine,
        name: Option<&str>,
    ) -> Option<&'e Provider> {
        engine
            .providers()
            .iter()
            .find(|p| p.config().login.is_some() && name.is_none_or(|n| n == p.name()))
    }

    fn start(
        &self,
        decider: &Decider,
        req: &Request<Bytes>,
        now: i64,
    ) -> Result<Response<Full<Bytes>>, Refusal> {
        let params = query(req.uri())?;
        let rd = match param(&params, "rd") {
            Some(rd) => check_redirect(
                rd,
                &self.sessions.public_url,
                &self.sessions.allowed_redirect_hosts,
            )
            .map_err(|e| refuse(Failure::RedirectNotAllowed, e.to_string()))?,
            None => format!("{}/", self.sessions.public_url),
        };
        let engine = decider.engine();
        let provider = Login::login_provider(&engine, param(&params, "provider"))
            .ok_or_else(|| refuse(Failure::RequestInvalid, "no such login provider"))?;
        let login = provider
            .config()
            .login
            .as_ref()
            .ok_or_else(|| refuse(Failure::RequestInvalid, "no such login provider"))?;
        let metadata = provider.slot().metadata().ok_or_else(|| {
            refuse(
                Failure::ProviderUnreachable,
                "the provider's discovery document has not been read",
            )
        })?;
        let endpoint = metadata
            .authorization_endpoint()
            .ok_or_else(|| refuse(Failure::ProviderUnreachable, "no authorization_endpoint"))?;
        let acr_values = match param(&params, "acr_values") {
            None => None,
            Some(v) => {
                let values: Vec<&str> = v.split(' ').collect();
                if values.len() > 16
                    || !values
                        .iter()
                        .all(|a| portcullis_policy::config::login::is_acr_value(a))
                {
                    return Err(refuse(
                        Failure::RequestInvalid,
                        "acr_values is not a list of acr values",
                    ));
                }
                Some(values.join(" "))
            }
        };
        let max_age = match param(&params, "max_age") {
            None => None,
            Some(v) => Some(
                v.parse::<u64>()
                    .ok()
                    .filter(|m| {
                        v.len() <= 10
                            && v.bytes().all(|b| b.is_ascii_digit())
                            && *m > 0
                            && *m <= MAX_AGE_LIMIT
                    })
                    .ok_or_else(|| {
                        refuse(
                            Failure::RequestInvalid,
                            "max_age is not a number of seconds",
                        )
                    })?,
            ),
        };
        let random = |n| {
            self.sealer
                .random(n)
                .map_err(|_| refuse(Failure::ProviderUnreachable, "no randomness"))
        };
        let record = StateRecord {
            acr_values,
            max_age,
            state: random(32)?,
            nonce: random(32)?,
            verifier: random(48)?,
            rd,
            provider: provider.name().to_owned(),
            exp: now + STATE_TTL,
        };
        let scope = login.scopes.join(" ");
        let sep = if endpoint.contains('?') { '&' } else { '?' };
        let location = format!(
            "{endpoint}{sep}response_type=code&client_id={}&redirect_uri={}&scope={}&state={}&nonce={}&code_challenge={}&code_challenge_method=S256",
            enc(&login.client_id),
            enc(&self.redirect_uri),
            enc(&scope),
            enc(&record.state),
            enc(&record.nonce),
            enc(&oidc::pkce_challenge(&record.verifier)),
        );
        let mut location = location;
        if let Some(acr) = &record.acr_values {
            location.push_str(&format!("&acr_values={}", enc(acr)));
        }
        if let Some(max_age) = record.max_age {
            location.push_str(&format!("&max_age={max_age}"));
        }
        let plain = serde_json::to_vec(&record)
            .map_err(|e| refuse(Failure::RequestInvalid, e.to_string()))?;
        let sealed = self
            .sealer
            .seal(STATE, &plain)
            .map_err(|e| refuse(Failure::RequestInvalid, e.to_string()))?;
        // Room for this login among the pending ones, then its own state cookie.
        let mut set = self.drop_stale_states(req.headers(), now);
        set.push(cookies::set(
            &self.sessions.cookie,
            &self.state_cookie_name(&record.state),
            &sealed,
            Some(STATE_TTL as u64),
        ));
        Ok(redirect(&location, &set))
    }

    async fn callback(
        &self,
        decider: &Decider,
        req: &Request<Bytes>,
        now: i64,
    ) -> Result<Response<Full<Bytes>>, Refusal> {
        let params = query(req.uri())?;
        // The login's own state cookie: named after the `state` it holds.
        let state_name = param(&params, "state").map(|s| self.state_cookie_name(s));
        let with_clear = |mut r: Refusal| {
            r.clear_state = state_name.clone();
            r
        };
        if let Some(error) = param(&params, "error") {
            return Err(with_clear(refuse(
                Failure::ProviderError,
                format!(
                    "provider error {:?}",
                    error.chars().take(64).collect::<String>()
                ),
            )));
        }
        let (Some(state), Some(code)) = (param(&params, "state"), param(&params, "code")) else {
            return Err(with_clear(refuse(
                Failure::StateInvalid,
                "no state or code",
            )));
        };
        let sealed = state_name
            .as_deref()
            .and_then(|name| cookies::cookie(req.headers(), name))
            .ok_or_else(|| refuse(Failure::StateInvalid, "no state cookie for this state"))?;
        let record: StateRecord = self
            .sealer
            .open(STATE, sealed)
            .ok()
            .and_then(|plain| serde_json::from_slice(&plain).ok())
            .ok_or_else(|| {
                with_clear(refuse(Failure::StateInvalid, "state cookie does not open"))
            })?;
        if !bool::from(record.state.as_bytes().ct_eq(state.as_bytes())) {
            return Err(with_clear(refuse(
                Failure::StateInvalid,
                "state differs from the cookie's",
            )));
        }
        if record.exp <= now {
            return Err(with_clear(refuse(Failure::StateInvalid, "state expired")));
        }
        if !self
            .ended
            .use_once(format!("state:{}", record.state), now, record.exp)
        {
            return Err(with_clear(refuse(Failure::StateInvalid, "state replayed")));
        }
        let engine = decider.engine();
        let provider = Login::login_provider(&engine, Some(&record.provider))
            .ok_or_else(|| with_clear(refuse(Failure::StateInvalid, "provider gone")))?;
        let login = provider
            .config()
            .login
            .as_ref()
            .ok_or_else(|| with_clear(refuse(Failure::StateInvalid, "provider gone")))?;
        let metadata = provider
            .slot()
            .metadata()
            .ok_or_else(|| refuse(Failure::ProviderUnreachable, "no discovery document"))?;
        let token_endpoint = metadata
            .token_endpoint()
            .ok_or_else(|| refuse(Failure::ProviderUnreachable, "no token_endpoint"))?;
        let secret = self.secret(provider.name()).unwrap_or_default();
        let auth = ClientAuth {
            client_id: &login.client_id,
            client_secret: secret,
            post: login.token_endpoint_auth
                == portcullis_policy::config::TokenEndpointAuth::ClientSecretPost,
        };
        let tokens = oidc::exchange_code(
            &self.http,
            token_endpoint,
            &auth,
            code,
            &self.redirect_uri,
            &record.verifier,
        )
        .await
        .map_err(|e| match e {
            ExchangeError::Unreachable { .. } => {
                refuse(Failure::ProviderUnreachable, e.to_string())
            }
            _ => with_clear(refuse(Failure::ProviderError, e.to_string())),
        })?;
        let snapshot = provider.slot().snapshot();
        let keys = snapshot
            .keys()
            .ok_or_else(|| refuse(Failure::ProviderUnreachable, "the provider has no keys yet"))?;
        let claims = oidc::verify_id_token(
            &tokens.id_token,
            keys,
            provider.validation(),
            &login.client_id,
            &record.nonce,
            tokens.access_token.as_deref(),
            now,
        )
        .map_err(|e| with_clear(refuse(Failure::ProviderError, e.to_string())))?;
        // Step-up: the authentication asked for must be the one the provider did
        // (OIDC Core §3.1.2.1: `acr_values` is a request, not a promise).
        if let Some(wanted) = &record.acr_values {
            let acr = claims.get("acr").and_then(Value::as_str).unwrap_or("");
            if !wanted.split(' ').any(|w| w == acr) {
                return Err(with_clear(refuse(
                    Failure::AcrNotSatisfied,
                    format!(
                        "id token acr {:?} is not one of {wanted:?}",
                        acr.chars().take(64).collect::<String>()
                    ),
                )));
            }
        }
        // `max_age` (OIDC Core §3.1.2.1): `auth_time` is then required, and the login
        // it names no older than asked.
        if let Some(max_age) = record.max_age {
            let skew = provider.config().clock_skew_secs;
            let max = i64::try_from(max_age).unwrap_or(i64::MAX);
            let at = claims
                .get("auth_time")
                .and_then(Value::as_f64)
                .filter(|t| t.is_finite())
                .map(|t| t.floor() as i64);
            let fresh = at.is_some_and(|at| {
                at <= now.saturating_add(skew) && now.saturating_sub(at) <= max.saturating_add(skew)
            });
            if !fresh {
                return Err(with_clear(refuse(
                    Failure::MaxAgeNotSatisfied,
                    format!("id token auth_time {at:?} is missing or older than max_age {max_age}"),
                )));
            }
        }
        let mut claims = claims.into_members();
        for gone in ["nonce", "at_hash", "c_hash"] {
            claims.remove(gone);
        }
        if let (Some(endpoint), Some(access)) =
            (metadata.userinfo_endpoint(), tokens.access_token.as_deref())
        {
            let sub = claims
                .get("sub")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            if let Some(info) = oidc::userinfo(&self.http, endpoint, access, &sub).await {
                for (k, v) in info {
                    // The ID token wins.
                    claims.entry(k).or_insert(v);
                }
            }
        }
        let session = SessionRecord {
            id: self
                .sealer
                .random(18)
                .map_err(|_| refuse(Failure::ProviderUnreachable, "no randomness"))?,
            provider: provider.name().to_owned(),
            iat: now,
            exp: now + self.sessions.ttl.as_secs() as i64,
            claims,
            id_token: Some(tokens.id_token),
            // Server-side in the store, or sealed in the cookie (`store: cookie`).
            refresh_token: tokens.refresh_token,
            access_exp: tokens.expires_in.map(|secs| now + secs),
        };
        let mut set = match &self.store {
            None => self.session_cookies(&session)?,
            Some(store) => {
                store
                    .put(&session, now)
                    .await
                    .map_err(|e| refuse(Failure::StoreUnavailable, e.to_string()))?;
                let sealed = self
                    .sealer
                    .seal(SESSION_ID, session.id.as_bytes())
                    .map_err(|_| refuse(Failure::StoreUnavailable, "session id not sealed"))?;
                cookies::set_chunked(
                    &self.sessions.cookie,
                    &self.sessions.cookie.name,
                    &sealed,
                    self.sessions.ttl.as_secs(),
                )
            }
        };
        if let Some(name) = &state_name {
            set.push(cookies::set(&self.sessions.cookie, name, "", None));
        }
        decider.metrics().session_created(self.store_kind);
        self.recount(decider);
        tracing::info!(
            provider = provider.name(),
            sub = session.sub().unwrap_or(""),
            "login"
        );
        Ok(redirect(&record.rd, &set))
    }

    /// The `Set-Cookie` values holding `session` (without its ID token, then
    /// without its refresh token, when the whole would not fit in the cookies).
    fn session_cookies(&self, session: &SessionRecord) -> Result<Vec<String>, Refusal> {
        let sealed = self
            .seal_session(session)
            .ok_or_else(|| refuse(Failure::ProviderError, "the session's claims are too large"))?;
        let max_age = self.sessions.ttl.as_secs();
        Ok(cookies::set_chunked(
            &self.sessions.cookie,
            &self.sessions.cookie.name,
            &sealed,
            max_age,
        ))
    }

    async fn sign_out(
        &self,
        decider: &Decider,
        req: &Request<Bytes>,
        now: i64,
    ) -> Result<Response<Full<Bytes>>, Refusal> {
        let params = query(req.uri())?;
        let rd = param(&params, "rd")
            .map(|rd| {
                check_redirect(
                    rd,
                    &self.sessions.public_url,
                    &self.sessions.allowed_redirect_hosts,
                )
                .map_err(|e| refuse(Failure::RedirectNotAllowed, e.to_string()))
            })
            .transpose()?;
        let session = match cookies::chunked(req.headers(), &self.sessions.cookie.name) {
            Some(v) => self.open_session(&v, now).await.ok(),
            None => None,
        };
        let clear = self.clear_session_cookies();
        let mut end_session = None;
        if let Some(s) = &session {
            // A copy of this cookie is no session on this replica any more.
            self.ended.end(format!("id:{}", s.id), now, s.exp);
            if let Some(store) = &self.store {
                store
                    .delete(&s.id)
                    .await
                    .map_err(|e| refuse(Failure::StoreUnavailable, e.to_string()))?;
            }
            self.renewed.remove(&s.id);
            decider
                .metrics()
                .sessions_ended(self.store_kind, SessionEnd::SignOut, 1);
            self.recount(decider);
            tracing::info!(
                provider = s.provider.as_str(),
                sub = s.sub().unwrap_or(""),
                "sign out"
            );
            let engine = decider.engine();
            if let (Some(provider), Some(id_token)) = (
                Login::login_provider(&engine, Some(&s.provider)),
                &s.id_token,
            ) && let Some(endpoint) = provider
                .slot()
                .metadata()
                .and_then(|m| m.end_session_endpoint().map(str::to_owned))
            {
                let client_id = provider
                    .config()
                    .login
                    .as_ref()
                    .map(|l| l.client_id.clone())
                    .unwrap_or_default();
                let sep = if endpoint.contains('?') { '&' } else { '?' };
                let mut url = format!(
                    "{endpoint}{sep}id_token_hint={}&client_id={}",
                    enc(id_token),
                    enc(&client_id)
                );
                if let Some(rd) = &rd {
                    url.push_str(&format!("&post_logout_redirect_uri={}", enc(rd)));
                }
                end_session = Some(url);
            }
        }
        Ok(match (end_session, rd) {
            (Some(url), _) => redirect(&url, &clear),
            (None, Some(rd)) => redirect(&rd, &clear),
            (None, None) => {
                let mut r = json_response(StatusCode::OK, r#"{"signed_out":true}"#.to_owned());
                add_cookies(&mut r, &clear);
                r
            }
        })
    }

    async fn backchannel_logout(
        &self,
        decider: &Decider,
        req: &Request<Bytes>,
        now: i64,
    ) -> Result<Response<Full<Bytes>>, Refusal> {
        let invalid = |why: &str| refuse(Failure::LogoutTokenInvalid, why);
        let body = std::str::from_utf8(req.body())
            .map_err(|_| refuse(Failure::RequestInvalid, "body is not UTF-8"))?;
        let params = form(body)?;
        let token = param(&params, "logout_token").ok_or_else(|| invalid("no logout_token"))?;
        let iss = peek_iss(token).ok_or_else(|| invalid("no iss"))?;
        let engine = decider.engine();
        let provider = engine
            .providers()
            .iter()
            .find(|p| p.config().login.is_some() && p.config().issuer.as_deref() == Some(&iss))
            .ok_or_else(|| invalid("no login provider has this issuer"))?;
        let client_id = provider
            .config()
            .login
            .as_ref()
            .map(|l| l.client_id.clone())
            .unwrap_or_default();
        let snapshot = provider.slot().snapshot();
        let keys = snapshot
            .keys()
            .ok_or_else(|| invalid("the provider has no keys"))?;
        let validation = Validation {
            audiences: vec![client_id],
            typ: Some("logout+jwt".to_owned()),
            ..provider.validation().clone()
        }
        .dangerous_allow_missing_exp();
        let jwt = verify_jwt(token, keys, &validation, now).map_err(|e| invalid(&e.to_string()))?;
        let claims = jwt.claims;
        let iat = claims
            .get("iat")
            .and_then(Value::as_f64)
            .ok_or_else(|| invalid("no iat"))?;
        let jti = claims
            .get("jti")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("no jti"))?;
        let event_ok = claims
            .get("events")
            .and_then(Value::as_object)
            .and_then(|e| e.get(BACKCHANNEL_EVENT))
            .is_some_and(Value::is_object);
        if !event_ok {
            return Err(invalid(
                "events does not hold the back-channel logout event",
            ));
        }
        if claims.get("nonce").is_some() {
            return Err(invalid("a logout token carries no nonce"));
        }
        let sid = claims.get("sid").and_then(Value::as_str);
        let sub = claims.subject();
        if sid.is_none() && sub.is_none() {
            return Err(invalid("neither sid nor sub"));
        }
        // Sessions last at most `ttl`: remembering the logout that long covers them all.
        let forget = now.max(iat as i64) + self.sessions.ttl.as_secs() as i64;
        if !self.ended.use_once(format!("jti:{iss} {jti}"), now, forget) {
            return Err(invalid("jti replayed"));
        }
        let index = match (sid, sub) {
            (Some(sid), _) => format!("sid:{iss} {sid}"),
            (None, Some(sub)) => format!("sub:{iss} {sub}"),
            (None, None) => return Err(invalid("neither sid nor sub")),
        };
        self.ended.end(index.clone(), now, forget);
        if let Some(store) = &self.store {
            let ended = store
                .end_all(&index)
                .await
                .map_err(|e| refuse(Failure::StoreUnavailable, e.to_string()))?;
            decider.metrics().sessions_ended(
                self.store_kind,
                SessionEnd::Backchannel,
                u64::try_from(ended).unwrap_or(0),
            );
            self.recount(decider);
            tracing::info!(
                sessions = ended,
                "back-channel logout ended stored sessions"
            );
        }
        tracing::info!(provider = provider.name(), sid, sub, "back-channel logout");
        Ok(json_response(StatusCode::OK, String::new()))
    }
}

/// The unverified `iss`, only to choose the provider that verifies.
fn peek_iss(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    if payload.len() > 16 * 1024 {
        return None;
    }
    let bytes = portcullis_jose::b64::decode(payload.as_bytes())?;
    match serde_json::from_slice::<Map<String, Value>>(&bytes)
        .ok()?
        .get("iss")?
    {
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}
