//! Browser login for Portcullis: an OpenID Connect relying party (authorization
//! code flow with PKCE S256), sessions in encrypted cookies, the session token for
//! upstreams, sign-out and back-channel logout.
//!
//! [`Login`] answers the endpoints (`/oauth2/*`, `/.well-known/*`) for any frontend
//! that mounts it ([`Login::handle`]), and reads a request's session cookie
//! ([`Login::read_session`]) so the frontend can hand it to the pure decision as a
//! [`SessionCredential`]. Tokens are verified by `portcullis-jose`, with the
//! provider's keys and discovery metadata from its key slot.
#![warn(missing_docs)]

mod cookies;
mod ended;
mod endpoints;
mod mint;
mod oidc;
mod record;
mod redirect;
mod refresh;
mod renew;
mod seal;
mod state;
mod store;

use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue};
use portcullis_policy::config::{ClientSecret, SessionStore, SessionsConfig};
use portcullis_policy::{Config, Identity, SessionCredential, VerifiedSession};
use zeroize::Zeroizing;

pub use mint::{InvalidSigningKey, Minter};
pub use oidc::{ClientAuth, ExchangeError, Tokens, pkce_challenge, verify_id_token};
pub use redirect::{InvalidRedirect, check_redirect};
pub use seal::{InvalidSecret, Sealer, Unsealed};
pub use store::StoreError;

use ended::Ended;
use record::SessionRecord;

/// Purposes sealed values are bound to.
const SESSION: &str = "session";
/// A session id in a cookie (the Redis store).
const SESSION_ID: &str = "session-id";
const STATE: &str = "state";

/// Why login cannot start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoginError {
    /// A file cannot be read.
    #[error("{field}: {path}: {source}")]
    Read {
        /// The config field naming the file.
        field: String,
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// `sessions.secret_file` holds no usable key.
    #[error("sessions.secret_file: {path}: {source}")]
    Secret {
        /// The file.
        path: String,
        /// Why.
        source: InvalidSecret,
    },
    /// `sessions.token.key_file` cannot sign.
    #[error("sessions.token.key_file: {0}")]
    SigningKey(#[from] InvalidSigningKey),
    /// `sessions.store: redis://...` is not a usable Redis URL.
    #[error("sessions.store: {0}")]
    Store(String),
    /// The HTTP client cannot be set up.
    #[error("HTTP client: {0}")]
    Client(String),
}

impl LoginError {
    /// The config field the error is about.
    pub fn field(&self) -> &str {
        match self {
            LoginError::Read { field, .. } => field,
            LoginError::Secret { .. } => "sessions.secret_file",
            LoginError::SigningKey(_) => "sessions.token.key_file",
            LoginError::Store(_) => "sessions.store",
            LoginError::Client(_) => "sessions",
        }
    }
}

/// Browser login: its keys, its client secrets, what it remembers.
pub struct Login {
    sessions: SessionsConfig,
    sealer: Sealer,
    minter: Option<Minter>,
    secrets: Vec<(String, Zeroizing<String>)>,
    http: reqwest::Client,
    ended: Ended,
    store: Option<Arc<store::RedisStore>>,
    /// The `store` label of the session metrics.
    store_kind: portcullis_decider::SessionStoreKind,
    /// The sessions gauge's counting task, started with the first request.
    gauge: std::sync::Once,
    /// One lock per session being refreshed on this replica.
    refreshing: quick_cache::sync::Cache<String, Arc<tokio::sync::Mutex<()>>>,
    /// Cookie sessions refreshed on this replica, by id: served to a browser that
    /// still sends the cookie of before (`store: cookie`).
    /// (With the sealed cookie value that holds it.)
    renewed: quick_cache::sync::Cache<String, (SessionRecord, Option<String>)>,
    redirect_uri: String,
    /// The single state cookie of earlier builds (still cleared and stripped).
    state_cookie: String,
    /// `<cookie>_state_`: the prefix of the per-login state cookies.
    state_prefix: String,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("public_url", &self.sessions.public_url)
            .field("sealer", &self.sealer)
            .field("minter", &self.minter)
            .finish_non_exhaustive()
    }
}

impl Login {
    /// Login for `config`, or `None` when it has no `sessions:`. Reads the cookie
    /// keys, the session token's key and the client secret files.
    ///
    /// # Errors
    /// [`LoginError`], naming the field.
    pub fn try_new(config: &Config) -> Result<Option<Arc<Login>>, LoginError> {
        let Some(sessions) = &config.sessions else {
            return Ok(None);
        };
        use portcullis_decider::SessionStoreKind;
        let (store, store_kind) = match &sessions.store {
            SessionStore::Redis(url) => (
                Some(Arc::new(
                    store::RedisStore::try_new(url)
                        .map_err(|e| LoginError::Store(e.to_string()))?,
                )),
                SessionStoreKind::Redis,
            ),
            SessionStore::RedisCluster(nodes) => (
                Some(Arc::new(
                    store::RedisStore::try_cluster(nodes)
                        .map_err(|e| LoginError::Store(e.to_string()))?,
                )),
                SessionStoreKind::RedisCluster,
            ),
            SessionStore::Cookie => (None, SessionStoreKind::Cookie),
        };
        let read = |field: &str, path: &std::path::Path| {
            std::fs::read_to_string(path).map_err(|source| LoginError::Read {
                field: field.to_owned(),
                path: path.display().to_string(),
                source,
            })
        };
        let text = Zeroizing::new(read("sessions.secret_file", &sessions.secret_file)?);
        let sealer = Sealer::try_from_lines(&text).map_err(|source| LoginError::Secret {
            path: sessions.secret_file.display().to_string(),
            source,
        })?;
        let minter = sessions
            .token
            .as_ref()
            .map(|t| Minter::try_new(t, &sessions.public_url))
            .transpose()?;
        let mut secrets = Vec::new();
        for (i, p) in config.providers.iter().enumerate() {
            let Some(login) = &p.login else { continue };
            let secret = match &login.client_secret {
                ClientSecret::Inline(s) => Zeroizing::new(s.clone()),
                ClientSecret::File(path) => Zeroizing::new(
                    read(&format!("providers[{i}].login.client_secret_file"), path)?
                        .trim()
                        .to_owned(),
                ),
            };
            secrets.push((p.name.clone(), secret));
        }
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(10))
            .user_agent(concat!("portcullis/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| LoginError::Client(e.to_string()))?;
        Ok(Some(Arc::new(Login {
            redirect_uri: format!("{}/oauth2/callback", sessions.public_url),
            state_cookie: format!("{}_state", sessions.cookie.name),
            state_prefix: format!("{}_state_", sessions.cookie.name),
            sessions: sessions.clone(),
            sealer,
            minter,
            secrets,
            http,
            ended: Ended::new(100_000),
            store,
            store_kind,
            gauge: std::sync::Once::new(),
            refreshing: quick_cache::sync::Cache::new(10_000),
            renewed: quick_cache::sync::Cache::new(4096),
        })))
    }

    /// Whether `path` is one of the login endpoints.
    pub fn is_login_path(path: &str) -> bool {
        matches!(
            path,
            "/oauth2/start"
                | "/oauth2/callback"
                | "/oauth2/sign_out"
                | "/oauth2/backchannel_logout"
                | "/.well-known/jwks.json"
                | "/.well-known/openid-configuration"
        )
    }

    /// The request's session, if it carries the session cookie: valid (decrypted,
    /// unexpired, not ended on this replica) or invalid, with why.
    /// A session whose provider access token has expired is refreshed first (see
    /// `refresh`); a renewed cookie session's new cookies are dropped here: use
    /// [`Login::read_session_renewing`] to send them to the browser.
    pub async fn read_session(
        &self,
        decider: &portcullis_decider::Decider,
        headers: &HeaderMap,
    ) -> Option<SessionCredential> {
        self.read_session_renewing(decider, headers).await.0
    }

    /// As [`Login::read_session`], with the `Set-Cookie` values of a cookie session
    /// renewed by a refresh (`store: cookie`; empty otherwise): the frontend adds them
    /// to its answer to the browser.
    pub async fn read_session_renewing(
        &self,
        decider: &portcullis_decider::Decider,
        headers: &HeaderMap,
    ) -> (Option<SessionCredential>, Vec<String>) {
        self.start_gauge(decider);
        let now = decider.now();
        let Some(value) = cookies::chunked(headers, &self.sessions.cookie.name) else {
            return (None, Vec::new());
        };
        // Boxed: opening a session may read the store and refresh at the provider,
        // a future of several KB. Inline, it sized every frontend's request future
        // (7,640 bytes for `/verify`, moved into a box on every request, with a
        // cookie or not); boxed, only a request with a cookie pays an allocation.
        Box::pin(self.open_and_renew(decider, &value, now)).await
    }

    /// The credential of a session cookie's `value`, and the cookies renewing it.
    async fn open_and_renew(
        &self,
        decider: &portcullis_decider::Decider,
        value: &str,
        now: i64,
    ) -> (Option<SessionCredential>, Vec<String>) {
        let opened = match self.open_session(value, now).await {
            Ok(record) if self.store.is_some() => self
                .refresh_if_due(decider, record, now)
                .await
                .map(|record| renew::Opened {
                    record,
                    set_cookies: Vec::new(),
                }),
            Ok(record) => self.renew_cookie_if_due(decider, record, now).await,
            Err(e) => Err(e),
        };
        let (credential, set_cookies) = match opened {
            Ok(renew::Opened {
                record,
                set_cookies,
            }) => match serde_json::to_vec(&record.claims) {
                Ok(claims_json) => (
                    SessionCredential::Valid(VerifiedSession {
                        provider: record.provider,
                        claims_json,
                        expires_at: record.exp,
                    }),
                    set_cookies,
                ),
                Err(e) => (
                    SessionCredential::Invalid {
                        detail: e.to_string(),
                    },
                    Vec::new(),
                ),
            },
            Err(detail) => (SessionCredential::Invalid { detail }, Vec::new()),
        };
        (Some(credential), set_cookies)
    }

    /// The session a cookie value stands for: sealed in it, or (Redis store) found
    /// by the id sealed in it.
    async fn open_session(&self, value: &str, now: i64) -> Result<SessionRecord, String> {
        let record: SessionRecord = match &self.store {
            None => {
                let plain = self
                    .sealer
                    .open(SESSION, value)
                    .map_err(|e| e.to_string())?;
                serde_json::from_slice(&plain).map_err(|e| format!("session record: {e}"))?
            }
            Some(store) => {
                let id = self
                    .sealer
                    .open(SESSION_ID, value)
                    .map_err(|e| e.to_string())?;
                let id = String::from_utf8(id).map_err(|_| "session id".to_owned())?;
                match store.get(&id).await {
                    Ok(Some(record)) if record.id == id => record,
                    Ok(_) => return Err("no such session in the store (ended)".to_owned()),
                    Err(e) => {
                        tracing::warn!(error = %e, "session store unreachable: no session");
                        return Err(format!("session store: {e}"));
                    }
                }
            }
        };
        if record.exp <= now {
            return Err("expired".to_owned());
        }
        if self.has_ended(&record, now) {
            return Err("ended".to_owned());
        }
        Ok(record)
    }

    fn has_ended(&self, record: &SessionRecord, now: i64) -> bool {
        let iss = record
            .claims
            .get("iss")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("");
        self.ended
            .has_ended(&format!("id:{}", record.id), record.iat, now)
            || record.sid().is_some_and(|sid| {
                self.ended
                    .has_ended(&format!("sid:{iss} {sid}"), record.iat, now)
            })
            || record.sub().is_some_and(|sub| {
                self.ended
                    .has_ended(&format!("sub:{iss} {sub}"), record.iat, now)
            })
    }

    /// The session token header for an allow by a session identity (none when no
    /// `sessions.token` is configured).
    pub fn session_token(
        &self,
        identity: &Identity,
        now: i64,
    ) -> Option<(HeaderName, HeaderValue)> {
        if !identity.is_session() {
            return None;
        }
        let minter = self.minter.as_ref()?;
        let claims = identity.claims().into_members();
        let exp = identity.expires_at.map_or(now, |e| e as i64);
        minter.mint(&claims, now, exp)
    }

    /// What every frontend adds to a decision it got with a session: the session
    /// token on an allow by a session (`sessions.token.header`, replacing any other
    /// value of that header).
    pub fn complete(&self, decision: &mut portcullis_policy::Decision, now: i64) {
        let portcullis_policy::Decision::Allow(allow) = decision else {
            return;
        };
        let Some(identity) = allow.identity.clone() else {
            self.remove_token_header(allow);
            return;
        };
        if !identity.is_session() {
            self.remove_token_header(allow);
            return;
        }
        // A session can end (sign-out, back-channel logout) before it expires: the
        // answer is not to be cached.
        allow.cache_max_age = None;
        if let Some((name, value)) = self.session_token(&identity, now) {
            allow.remove_headers.retain(|h| *h != name);
            allow.set_headers.retain(|(h, _)| *h != name);
            allow.set_headers.push((name, value));
        }
    }

    /// On an allow by a token, a client-sent copy of the session token header never
    /// reaches the upstream (`authorization` is the client's own verified token).
    fn remove_token_header(&self, allow: &mut portcullis_policy::Allow) {
        let Some(minter) = &self.minter else { return };
        let name = minter.header();
        if *name != http::header::AUTHORIZATION
            && !allow.remove_headers.contains(name)
            && !allow.set_headers.iter().any(|(h, _)| h == name)
        {
            allow.remove_headers.push(name.clone());
        }
    }

    /// Removes Portcullis's own cookies (the session cookie and its chunks, the
    /// login state cookie) from a request before it goes upstream: they are
    /// credentials for Portcullis, not for the app behind it.
    pub fn remove_own_cookies(&self, headers: &mut HeaderMap) {
        let name = self.sessions.cookie.name.as_str();
        cookies::remove(headers, |n| {
            n == name
                || self.is_state_cookie(n)
                || n.strip_prefix(name)
                    .and_then(|rest| rest.strip_prefix('_'))
                    .is_some_and(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()))
        });
    }

    /// `Set-Cookie` values that clear the session cookie (on a `session_invalid` deny).
    pub fn clear_session_cookies(&self) -> Vec<String> {
        cookies::clear_chunked(&self.sessions.cookie, &self.sessions.cookie.name)
    }

    /// Starts (once) the task that counts the store's unexpired sessions every
    /// 15 s for `portcullis_sessions_active`: off every request's path.
    fn start_gauge(&self, decider: &portcullis_decider::Decider) {
        let Some(store) = &self.store else { return };
        self.gauge.call_once(|| {
            let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                return;
            };
            let (store, metrics, kind) =
                (store.clone(), decider.metrics().clone(), self.store_kind);
            let clock = portcullis_policy::SystemClock;
            runtime.spawn(async move {
                loop {
                    match store
                        .count_active(portcullis_policy::Clock::now(&clock))
                        .await
                    {
                        Ok(n) => metrics.sessions_active(kind, n),
                        Err(e) => tracing::debug!(error = %e, "sessions not counted"),
                    }
                    tokio::time::sleep(std::time::Duration::from_secs(15)).await;
                }
            });
        });
    }

    /// Counts the store's sessions once more now, in the background (after this
    /// replica began or ended some), so the gauge follows at once here.
    pub(crate) fn recount(&self, decider: &portcullis_decider::Decider) {
        let (Some(store), Ok(runtime)) = (&self.store, tokio::runtime::Handle::try_current())
        else {
            return;
        };
        let (store, metrics, kind) = (store.clone(), decider.metrics().clone(), self.store_kind);
        runtime.spawn(async move {
            let now = portcullis_policy::Clock::now(&portcullis_policy::SystemClock);
            if let Ok(n) = store.count_active(now).await {
                metrics.sessions_active(kind, n);
            }
        });
    }

    fn secret(&self, provider: &str) -> Option<&str> {
        self.secrets
            .iter()
            .find(|(n, _)| n == provider)
            .map(|(_, s)| s.as_str())
    }
}
