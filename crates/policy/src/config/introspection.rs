//! `providers[].introspection`: opaque (non-JWT) access tokens checked by OAuth 2.0
//! Token Introspection (RFC 7662) at the provider. Validation reads no file and no
//! environment variable: the introspection client reads the secret when it asks.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::login::TokenEndpointAuth;
use super::{ConfigError, Ctx, parse_duration};

/// The default `cache_ttl`: how long an answer is reused (never past the token's `exp`).
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(60);
/// The default `timeout` of one introspection call.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest `cache_ttl` accepted.
const MAX_CACHE_TTL: Duration = Duration::from_secs(3600);

/// `providers[].introspection:` as written.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawIntrospection {
    /// The introspection endpoint (default: discovery's `introspection_endpoint`).
    #[schemars(with = "Option<String>")]
    pub endpoint: Option<Spanned<String>>,
    /// The client id Portcullis authenticates with.
    pub client_id: String,
    /// The client secret (`${ENV}` expands).
    pub client_secret: Option<String>,
    /// An environment variable holding the client secret.
    pub client_secret_env: Option<String>,
    /// A file holding the client secret.
    pub client_secret_file: Option<String>,
    /// `client_secret_basic` (default) or `client_secret_post`.
    #[schemars(with = "Option<crate::schema::ClientAuthMethodWord>")]
    pub auth: Option<Spanned<String>>,
    /// How long an answer is reused (default 60s; `0s`: never).
    #[schemars(with = "Option<crate::schema::Duration>")]
    pub cache_ttl: Option<Spanned<String>>,
    /// Timeout of one call (default 5s).
    #[schemars(with = "Option<crate::schema::Duration>")]
    pub timeout: Option<Spanned<String>>,
}

/// Where the introspection client's secret comes from.
#[derive(Clone, Eq, PartialEq)]
pub enum IntrospectionSecret {
    /// An environment variable, read at each call.
    Env(String),
    /// A file, read at each call (so it may be rotated in place).
    File(PathBuf),
    /// Given in the config (after `${ENV}` expansion).
    Inline(String),
}

impl std::fmt::Debug for IntrospectionSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IntrospectionSecret::Env(name) => f.debug_tuple("Env").field(name).finish(),
            IntrospectionSecret::File(p) => f.debug_tuple("File").field(p).finish(),
            IntrospectionSecret::Inline(_) => f.write_str("Inline(..)"),
        }
    }
}

/// A validated `providers[].introspection`.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct IntrospectionConfig {
    /// The endpoint; `None`: the provider's discovery names it.
    pub endpoint: Option<String>,
    /// The client id.
    pub client_id: String,
    /// The client secret.
    pub client_secret: IntrospectionSecret,
    /// How the client authenticates.
    pub auth: TokenEndpointAuth,
    /// How long an answer is reused (zero: never), never past the token's `exp`.
    pub cache_ttl: Duration,
    /// Timeout of one call.
    pub timeout: Duration,
}

pub(super) fn validate_introspection(
    cx: &Ctx<'_>,
    line: u64,
    field: &str,
    raw: RawIntrospection,
    has_discovery: bool,
    base_dir: &Path,
) -> Result<IntrospectionConfig, ConfigError> {
    let RawIntrospection {
        endpoint,
        client_id,
        client_secret,
        client_secret_env,
        client_secret_file,
        auth,
        cache_ttl,
        timeout,
    } = raw;
    let endpoint = match endpoint {
        Some(e) => {
            let url = e.value.trim();
            let ok = (url.starts_with("https://") || url.starts_with("http://"))
                && !url.bytes().any(|b| b <= b' ' || b >= 0x7f)
                && !url.contains('#');
            if !ok {
                return Err(cx.err(
                    e.referenced.line(),
                    format!("{field}.endpoint"),
                    format!("{url:?} is not an absolute http(s) URL"),
                ));
            }
            Some(url.to_owned())
        }
        None if has_discovery => None,
        None => {
            return Err(cx.err(
                line,
                format!("{field}.endpoint"),
                "needed unless the provider's jwks is {discovery: ...} (whose document names introspection_endpoint)",
            ));
        }
    };
    if client_id.is_empty() || client_id.bytes().any(|b| b < b' ' || b == 0x7f) {
        return Err(cx.err(
            line,
            format!("{field}.client_id"),
            "must be non-empty, without control characters",
        ));
    }
    let client_secret = match (client_secret, client_secret_env, client_secret_file) {
        (Some(s), None, None) if !s.is_empty() => IntrospectionSecret::Inline(s),
        (None, Some(e), None) if !e.is_empty() => IntrospectionSecret::Env(e),
        (None, None, Some(f)) if !f.is_empty() => IntrospectionSecret::File(base_dir.join(f)),
        _ => {
            return Err(cx.err(
                line,
                format!("{field}.client_secret"),
                "exactly one of client_secret, client_secret_env or client_secret_file",
            ));
        }
    };
    let auth = TokenEndpointAuth::from_config(cx, auth, format!("{field}.auth"))?;
    let duration = |d: Option<Spanned<String>>, name: &str, default: Duration| match d {
        None => Ok(default),
        Some(d) => parse_duration(&d.value)
            .map_err(|e| cx.err(d.referenced.line(), format!("{field}.{name}"), e)),
    };
    let cache_ttl = duration(cache_ttl, "cache_ttl", DEFAULT_CACHE_TTL)?;
    if cache_ttl > MAX_CACHE_TTL {
        return Err(cx.err(
            line,
            format!("{field}.cache_ttl"),
            "at most 1h (a revoked token stays accepted while its answer is cached)",
        ));
    }
    let timeout = duration(timeout, "timeout", DEFAULT_TIMEOUT)?;
    if timeout.is_zero() || timeout > Duration::from_secs(60) {
        return Err(cx.err(line, format!("{field}.timeout"), "between 1ms and 60s"));
    }
    Ok(IntrospectionConfig {
        endpoint,
        client_id,
        client_secret,
        auth,
        cache_ttl,
        timeout,
    })
}
