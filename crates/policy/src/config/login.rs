//! `providers[].login`, top-level `sessions` and rule `login:`: browser login
//! (OIDC relying party) and the sessions it opens. Raw structs mirror the YAML;
//! validation reads no file (the login crate reads `secret_file`, `key_file` and
//! `client_secret_file` when it starts).

use std::path::{Path, PathBuf};
use std::time::Duration;

use http::HeaderName;
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::{ConfigError, Ctx, header_name, parse_duration};

/// `providers[].login:` as written.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawLogin {
    /// The client id registered at the provider.
    pub client_id: String,
    /// The client secret (`${ENV}` expands).
    pub client_secret: Option<String>,
    /// A file holding the client secret.
    pub client_secret_file: Option<String>,
    /// Scopes asked for (default `[openid]`).
    pub scopes: Option<Vec<String>>,
    /// `client_secret_basic` (default) or `client_secret_post`.
    #[schemars(with = "Option<crate::schema::ClientAuthMethodWord>")]
    pub token_endpoint_auth: Option<Spanned<String>>,
}

/// `sessions:` as written.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSessions {
    /// Where browsers reach Portcullis.
    #[schemars(with = "String")]
    pub public_url: Spanned<String>,
    /// Cookie keys, one base64 line each, first = current.
    #[schemars(with = "String")]
    pub secret_file: Spanned<String>,
    /// The session cookie.
    #[serde(default)]
    pub cookie: RawCookie,
    /// Session lifetime (default 8h).
    #[schemars(with = "Option<crate::schema::Duration>")]
    pub ttl: Option<Spanned<String>>,
    /// `cookie` (default) or `redis://HOST:PORT/DB`.
    #[schemars(with = "Option<crate::schema::SessionStore>")]
    pub store: Option<Spanned<String>>,
    /// Hosts `rd` may name (default: public_url's host).
    #[schemars(with = "Option<Vec<String>>")]
    pub allowed_redirect_hosts: Option<Vec<Spanned<String>>>,
    /// The session token minted for upstreams.
    #[schemars(with = "Option<RawSessionToken>")]
    pub token: Option<Spanned<RawSessionToken>>,
}

/// `sessions.cookie:` as written.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCookie {
    /// Cookie name (default `portcullis_session`).
    pub name: Option<String>,
    /// `Secure` (default true).
    pub secure: Option<bool>,
    /// `Domain` (default: host-only).
    pub domain: Option<String>,
}

/// `sessions.token:` as written.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSessionToken {
    /// The signing key (PKCS#8 PEM).
    pub key_file: String,
    /// `iss` of the minted tokens.
    pub issuer: String,
    /// `aud` of the minted tokens.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// Lifetime (default 5m).
    #[schemars(with = "Option<crate::schema::Duration>")]
    pub ttl: Option<String>,
    /// Claims copied from the session (default `[sub]`).
    pub claims: Option<Vec<String>>,
    /// Header set upstream (default `authorization`, as `Bearer <token>`).
    pub header: Option<String>,
}

/// How the client authenticates at the token endpoint.
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
pub enum TokenEndpointAuth {
    /// HTTP Basic with the client id and secret (RFC 6749 §2.3.1).
    #[default]
    ClientSecretBasic,
    /// The client id and secret in the form body.
    ClientSecretPost,
}

impl TokenEndpointAuth {
    /// Reads the config word at `field` (absent: the default). One parser for every block
    /// that talks to a token endpoint (login, introspection), so they accept the same words.
    pub(super) fn from_config(
        cx: &Ctx<'_>,
        word: Option<Spanned<String>>,
        field: String,
    ) -> Result<Self, ConfigError> {
        let Some(word) = word else {
            return Ok(Self::default());
        };
        match word.value.as_str() {
            "client_secret_basic" => Ok(Self::ClientSecretBasic),
            "client_secret_post" => Ok(Self::ClientSecretPost),
            other => Err(cx.err(
                word.referenced.line(),
                field,
                format!("{other:?} is not client_secret_basic or client_secret_post"),
            )),
        }
    }
}

/// Where the client secret comes from.
#[derive(Clone, Eq, PartialEq)]
pub enum ClientSecret {
    /// Given in the config (after `${ENV}` expansion).
    Inline(String),
    /// Read from this file when login starts.
    File(PathBuf),
}

impl std::fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientSecret::Inline(_) => f.write_str("Inline(..)"),
            ClientSecret::File(p) => f.debug_tuple("File").field(p).finish(),
        }
    }
}

/// A validated `providers[].login`.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct LoginConfig {
    /// The client id.
    pub client_id: String,
    /// The client secret.
    pub client_secret: ClientSecret,
    /// Scopes asked for (always holds `openid`).
    pub scopes: Vec<String>,
    /// Token endpoint client authentication.
    pub token_endpoint_auth: TokenEndpointAuth,
}

/// Where sessions live.
#[derive(Clone, Debug, Eq, PartialEq)]
pub enum SessionStore {
    /// In the encrypted cookie itself.
    Cookie,
    /// Server-side in Redis (the cookie holds an opaque id): the URL.
    Redis(String),
    /// Server-side in a Redis Cluster (`redis+cluster://[user:pass@]h1:p1,h2:p2,...`):
    /// the seed nodes, each as `redis://[user:pass@]host:port`.
    RedisCluster(Vec<String>),
}

/// The seed nodes of `redis+cluster://[userinfo@]h1:p1,h2:p2,...` as `redis://` URLs.
fn cluster_nodes(url: &str) -> Result<Vec<String>, String> {
    let rest = url
        .strip_prefix("redis+cluster://")
        .ok_or("not a redis+cluster:// URL")?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let (userinfo, hosts) = match rest.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, rest),
    };
    let nodes: Vec<String> = hosts
        .split(',')
        .map(|node| {
            let ok = node.rsplit_once(':').is_some_and(|(h, p)| {
                !h.is_empty()
                    && h.bytes().all(|b| {
                        b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'[' | b']' | b':')
                    })
                    && p.parse::<u16>().is_ok_and(|p| p != 0)
            });
            if !ok {
                return Err(format!("{node:?} is not host:port"));
            }
            Ok(match userinfo {
                Some(u) => format!("redis://{u}@{node}"),
                None => format!("redis://{node}"),
            })
        })
        .collect::<Result<_, _>>()?;
    if nodes.len() > 64 {
        return Err("more than 64 seed nodes".to_owned());
    }
    Ok(nodes)
}

/// An `allowed_redirect_hosts` entry: a host (any port) or `host:port`, or
/// `*.suffix` (any subdomain, not the suffix itself).
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct RedirectHost {
    /// Lower-case host, or the suffix after `*.`.
    pub host: String,
    /// Whether this is `*.suffix`.
    pub wildcard: bool,
    /// The port, when one is named.
    pub port: Option<u16>,
}

impl RedirectHost {
    /// Parses one entry.
    ///
    /// # Errors
    /// An empty host, a bad port, or characters no host has.
    pub fn parse(text: &str) -> Result<RedirectHost, String> {
        let t = text.trim().to_ascii_lowercase();
        let (wildcard, rest) = match t.strip_prefix("*.") {
            Some(rest) => (true, rest.to_owned()),
            None => (false, t.clone()),
        };
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') || h.starts_with('[') => {
                let port = p
                    .parse::<u16>()
                    .map_err(|_| format!("{text:?}: {p:?} is not a port"))?;
                (h.to_owned(), Some(port))
            }
            _ => (rest, None),
        };
        let ok = !host.is_empty()
            && host.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'[' | b']' | b':')
            })
            && !host.starts_with('.')
            && !host.ends_with('.');
        if !ok {
            return Err(format!("{text:?} is not a host, host:port or *.domain"));
        }
        Ok(RedirectHost {
            host,
            wildcard,
            port,
        })
    }

    /// Whether a (lower-case) host and port are allowed by this entry.
    pub fn allows(&self, host: &str, port: u16) -> bool {
        let host_ok = if self.wildcard {
            host.len() > self.host.len() + 1
                && host.ends_with(&self.host)
                && host.as_bytes()[host.len() - self.host.len() - 1] == b'.'
        } else {
            host == self.host
        };
        host_ok && self.port.is_none_or(|p| p == port)
    }
}

/// The session cookie.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct CookieConfig {
    /// Name.
    pub name: String,
    /// `Secure`.
    pub secure: bool,
    /// `Domain`, when not host-only.
    pub domain: Option<String>,
}

/// A validated `sessions.token`.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct SessionTokenConfig {
    /// The signing key file.
    pub key_file: PathBuf,
    /// `iss`.
    pub issuer: String,
    /// `aud`.
    pub audiences: Vec<String>,
    /// Lifetime.
    pub ttl: Duration,
    /// Claims copied from the session.
    pub claims: Vec<String>,
    /// The upstream header.
    pub header: HeaderName,
}

/// A validated `sessions:`.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct SessionsConfig {
    /// Where browsers reach Portcullis, without a trailing `/`.
    pub public_url: String,
    /// The cookie key file.
    pub secret_file: PathBuf,
    /// The cookie.
    pub cookie: CookieConfig,
    /// Session lifetime.
    pub ttl: Duration,
    /// The store.
    pub store: SessionStore,
    /// Where `rd` may point.
    pub allowed_redirect_hosts: Vec<RedirectHost>,
    /// The minted session token.
    pub token: Option<SessionTokenConfig>,
}

/// A rule's step-up requirement (RFC 9470): the authentication a token or session
/// must show (`acr` one of `acr_values`, `amr` holding one of `amr`).
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct StepUp {
    /// Accepted `acr` values, in order of preference (empty: any); sent as
    /// `acr_values` on the authorization request of a login the rule starts.
    pub acr_values: Vec<String>,
    /// `amr` must hold at least one of these (empty: any).
    pub amr: Vec<String>,
    /// The login must be no older than this (`auth_time`); sent as `max_age` when
    /// the rule sends a browser to log in.
    pub max_age: Option<Duration>,
}

impl StepUp {
    /// The `acr_values` parameter: the values, space-separated.
    pub fn acr_values_param(&self) -> Option<String> {
        (!self.acr_values.is_empty()).then(|| self.acr_values.join(" "))
    }
}

/// The longest `max_age` a rule may ask for.
const MAX_MAX_AGE_SECS: u64 = 366 * 24 * 3600;

/// Whether `v` can be an `acr`/`amr` value here: printable ASCII without space,
/// quote or backslash (it goes into a space-separated parameter and a quoted
/// `WWW-Authenticate` parameter), at most 256 bytes.
pub fn is_acr_value(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 256
        && v.bytes()
            .all(|b| b > b' ' && b < 0x7f && b != b'"' && b != b'\\')
}

pub(super) fn validate_step_up(
    cx: &Ctx<'_>,
    line: u64,
    prefix: &str,
    acr_values: Option<Vec<Spanned<String>>>,
    amr: Option<Vec<Spanned<String>>>,
    max_age: Option<Spanned<String>>,
) -> Result<Option<StepUp>, ConfigError> {
    if acr_values.is_none() && amr.is_none() && max_age.is_none() {
        return Ok(None);
    }
    let max_age = max_age
        .map(|m| {
            let field = format!("{prefix}max_age");
            let d = parse_duration(&m.value).map_err(|e| cx.err(m.referenced.line(), &field, e))?;
            if d.as_secs() == 0 || d.as_secs() > MAX_MAX_AGE_SECS || d.subsec_nanos() != 0 {
                return Err(cx.err(
                    m.referenced.line(),
                    field,
                    "max_age is whole seconds, at least 1s and at most 366d",
                ));
            }
            Ok(d)
        })
        .transpose()?;
    let check = |name: &str, list: Option<Vec<Spanned<String>>>| {
        let list = list.unwrap_or_default();
        if list.len() > 16 {
            return Err(cx.err(line, format!("{prefix}{name}"), "at most 16 values"));
        }
        list.into_iter()
            .enumerate()
            .map(|(i, v)| {
                if is_acr_value(&v.value) {
                    Ok(v.value)
                } else {
                    Err(cx.err(
                        v.referenced.line(),
                        format!("{prefix}{name}[{i}]"),
                        format!("{:?} is not an {name} value (printable ASCII, no space, quote or backslash)", v.value),
                    ))
                }
            })
            .collect::<Result<Vec<_>, _>>()
    };
    let acr_values = check("acr_values", acr_values)?;
    let amr = check("amr", amr)?;
    if acr_values.is_empty() && amr.is_empty() && max_age.is_none() {
        return Err(cx.err(
            line,
            format!("{prefix}acr_values"),
            "acr_values or amr must name at least one value",
        ));
    }
    Ok(Some(StepUp {
        acr_values,
        amr,
        max_age,
    }))
}

pub(super) fn validate_login(
    cx: &Ctx<'_>,
    line: u64,
    field: &str,
    raw: RawLogin,
    base_dir: &Path,
) -> Result<LoginConfig, ConfigError> {
    let RawLogin {
        client_id,
        client_secret,
        client_secret_file,
        scopes,
        token_endpoint_auth,
    } = raw;
    if client_id.is_empty() {
        return Err(cx.err(line, format!("{field}.client_id"), "must not be empty"));
    }
    let client_secret = match (client_secret, client_secret_file) {
        (Some(s), None) if !s.is_empty() => ClientSecret::Inline(s),
        (None, Some(f)) if !f.is_empty() => ClientSecret::File(base_dir.join(f)),
        _ => {
            return Err(cx.err(
                line,
                format!("{field}.client_secret"),
                "exactly one of client_secret or client_secret_file",
            ));
        }
    };
    let mut scopes = scopes.unwrap_or_else(|| vec!["openid".to_owned()]);
    if let Some(bad) = scopes.iter().find(|s| {
        s.is_empty()
            || s.bytes()
                .any(|b| b <= b' ' || b == b'"' || b == b'\\' || b >= 0x7f)
    }) {
        return Err(cx.err(
            line,
            format!("{field}.scopes"),
            format!("{bad:?} is not a scope (RFC 6749 §3.3)"),
        ));
    }
    if !scopes.iter().any(|s| s == "openid") {
        scopes.insert(0, "openid".to_owned());
    }
    let token_endpoint_auth = TokenEndpointAuth::from_config(
        cx,
        token_endpoint_auth,
        format!("{field}.token_endpoint_auth"),
    )?;
    Ok(LoginConfig {
        client_id,
        client_secret,
        scopes,
        token_endpoint_auth,
    })
}

pub(super) fn validate_sessions(
    cx: &Ctx<'_>,
    line: u64,
    raw: RawSessions,
    base_dir: &Path,
) -> Result<SessionsConfig, ConfigError> {
    let RawSessions {
        public_url,
        secret_file,
        cookie,
        ttl,
        store,
        allowed_redirect_hosts,
        token,
    } = raw;
    let url_line = public_url.referenced.line();
    let url = public_url.value.trim_end_matches('/').to_owned();
    let parsed = url.parse::<http::Uri>().ok().filter(|u| {
        matches!(u.scheme_str(), Some("http" | "https"))
            && u.host().is_some()
            && u.query().is_none()
            && !u.authority().is_some_and(|a| a.as_str().contains('@'))
    });
    let Some(parsed) = parsed else {
        return Err(cx.err(
            url_line,
            "sessions.public_url",
            format!("{:?} is not an http(s) URL", public_url.value),
        ));
    };
    if secret_file.value.is_empty() {
        return Err(cx.err(
            secret_file.referenced.line(),
            "sessions.secret_file",
            "must not be empty",
        ));
    }
    let RawCookie {
        name,
        secure,
        domain,
    } = cookie;
    let name = name.unwrap_or_else(|| "portcullis_session".to_owned());
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    {
        return Err(cx.err(
            line,
            "sessions.cookie.name",
            format!("{name:?} is not a cookie name (letters, digits, _ - .)"),
        ));
    }
    if let Some(d) = &domain
        && (d.is_empty()
            || !d
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.')))
    {
        return Err(cx.err(
            line,
            "sessions.cookie.domain",
            format!("{d:?} is not a domain"),
        ));
    }
    let ttl = match ttl {
        None => Duration::from_secs(8 * 3600),
        Some(t) => {
            let d = parse_duration(&t.value)
                .map_err(|e| cx.err(t.referenced.line(), "sessions.ttl", e))?;
            if d < Duration::from_secs(60) {
                return Err(cx.err(t.referenced.line(), "sessions.ttl", "less than 1m"));
            }
            d
        }
    };
    let store = match store {
        None => SessionStore::Cookie,
        Some(s) if s.value == "cookie" => SessionStore::Cookie,
        Some(s) if s.value.starts_with("redis://") || s.value.starts_with("rediss://") => {
            SessionStore::Redis(s.value)
        }
        Some(s) if s.value.starts_with("redis+cluster://") => SessionStore::RedisCluster(
            cluster_nodes(&s.value)
                .map_err(|e| cx.err(s.referenced.line(), "sessions.store", e))?,
        ),
        Some(s) => {
            return Err(cx.err(
                s.referenced.line(),
                "sessions.store",
                format!(
                    "{:?} is not cookie, a redis:// URL or a redis+cluster:// URL",
                    s.value
                ),
            ));
        }
    };
    let allowed_redirect_hosts = match allowed_redirect_hosts {
        None => {
            let host = parsed.host().unwrap_or_default().to_ascii_lowercase();
            vec![RedirectHost {
                host,
                wildcard: false,
                port: None,
            }]
        }
        Some(list) => list
            .into_iter()
            .enumerate()
            .map(|(i, h)| {
                RedirectHost::parse(&h.value).map_err(|e| {
                    cx.err(
                        h.referenced.line(),
                        format!("sessions.allowed_redirect_hosts[{i}]"),
                        e,
                    )
                })
            })
            .collect::<Result<_, _>>()?,
    };
    let token = match token {
        None => None,
        Some(t) => {
            let tl = t.referenced.line();
            let RawSessionToken {
                key_file,
                issuer,
                audiences,
                ttl,
                claims,
                header,
            } = t.value;
            if key_file.is_empty() || issuer.is_empty() {
                return Err(cx.err(
                    tl,
                    "sessions.token",
                    "key_file and issuer must not be empty",
                ));
            }
            let ttl = match ttl {
                None => Duration::from_secs(300),
                Some(t) => parse_duration(&t).map_err(|e| cx.err(tl, "sessions.token.ttl", e))?,
            };
            if ttl.is_zero() || ttl > Duration::from_secs(86_400) {
                return Err(cx.err(tl, "sessions.token.ttl", "must be between 1s and 24h"));
            }
            let header = header_name(
                cx,
                tl,
                "sessions.token.header",
                header.as_deref().unwrap_or("authorization"),
            )?;
            Some(SessionTokenConfig {
                key_file: base_dir.join(key_file),
                issuer,
                audiences,
                ttl,
                claims: claims.unwrap_or_else(|| vec!["sub".to_owned()]),
                header,
            })
        }
    };
    Ok(SessionsConfig {
        public_url: url,
        secret_file: base_dir.join(secret_file.value),
        cookie: CookieConfig {
            name,
            secure: secure.unwrap_or(true),
            domain,
        },
        ttl,
        store,
        allowed_redirect_hosts,
        token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_hosts_match_exactly() {
        let exact = RedirectHost::parse("app.example.com").unwrap();
        assert!(exact.allows("app.example.com", 443));
        assert!(!exact.allows("xapp.example.com", 443));
        let wild = RedirectHost::parse("*.example.com").unwrap();
        assert!(wild.allows("a.example.com", 80));
        assert!(!wild.allows("example.com", 80));
        assert!(!wild.allows("badexample.com", 80));
        let port = RedirectHost::parse("localhost:8080").unwrap();
        assert!(port.allows("localhost", 8080));
        assert!(!port.allows("localhost", 8081));
        assert!(RedirectHost::parse("a b").is_err());
        assert!(RedirectHost::parse("").is_err());
    }

    #[test]
    fn cluster_urls_name_their_seed_nodes() {
        assert_eq!(
            cluster_nodes("redis+cluster://127.0.0.1:7001,127.0.0.1:7002/").unwrap(),
            ["redis://127.0.0.1:7001", "redis://127.0.0.1:7002"]
        );
        assert_eq!(
            cluster_nodes("redis+cluster://u:p@a:1,b:2").unwrap(),
            ["redis://u:p@a:1", "redis://u:p@b:2"]
        );
        for bad in [
            "redis+cluster://",
            "redis+cluster://a",
            "redis+cluster://a:1,",
            "redis+cluster://a:0",
            "redis+cluster://a:1/2",
            "redis+cluster://a b:1",
        ] {
            assert!(cluster_nodes(bad).is_err(), "{bad}");
        }
    }
}
