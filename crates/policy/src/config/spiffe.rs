//! The workload identity part of the config: `providers[].spiffe`, a rule's
//! `spiffe_ids` and `inject`. Raw (serde) and validated forms side by side.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::{Ctx, parse_duration};
use crate::config::ConfigError;
use crate::spiffe::{SpiffeIdPattern, check_trust_domain};

/// The variable naming the Workload API socket when the config does not.
pub const SPIFFE_ENDPOINT_SOCKET: &str = "SPIFFE_ENDPOINT_SOCKET";

/// `providers[].spiffe`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSpiffe {
    /// The trust domain whose JWT-SVIDs the provider accepts.
    pub trust_domain: String,
    /// Where its bundle comes from (default: the Workload API at `$SPIFFE_ENDPOINT_SOCKET`).
    pub bundle: Option<RawBundle>,
}

/// `spiffe.bundle`: exactly one of `workload_api` or `file`.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawBundle {
    /// The Workload API socket (`unix:///path`).
    pub workload_api: Option<String>,
    /// A SPIFFE bundle file (a JWKS with `spiffe_refresh_hint`...), re-read when it changes.
    pub file: Option<String>,
}

/// A rule's `inject:`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawInject {
    /// The audience the outbound token is for.
    pub audience: String,
    /// Where the token comes from (default `workload_api`).
    pub source: Option<RawInjectSource>,
    /// Replace an `Authorization` the request already has (default false: 403 `token_present`).
    pub replace: Option<bool>,
    /// The Workload API socket for `source: workload_api`, when no provider names one.
    pub socket: Option<String>,
}

/// `inject.source`: `workload_api`, or a table naming another source.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum RawInjectSource {
    /// `workload_api`.
    #[schemars(with = "crate::schema::InjectSourceWord")]
    Name(String),
    /// `{client_credentials: {...}}` or `{mint: {...}}`.
    Table(RawInjectTable),
}

/// The table form of `inject.source`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawInjectTable {
    /// OAuth 2.0 client credentials.
    pub client_credentials: Option<RawClientCredentials>,
    /// A token we sign.
    pub mint: Option<RawMint>,
    /// OAuth 2.0 Token Exchange (RFC 8693) of the inbound token.
    pub token_exchange: Option<Box<RawTokenExchange>>,
}

/// `source.token_exchange`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTokenExchange {
    /// The token endpoint.
    pub token_url: String,
    /// The client.
    pub client_id: String,
    /// Its secret (`${VAR}` to keep it out of the file).
    pub client_secret: String,
    /// Scopes asked for.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// What the inbound token is: `access_token` (default) or `jwt`.
    #[schemars(with = "Option<crate::schema::SubjectTokenTypeWord>")]
    pub subject_token_type: Option<String>,
    /// An RFC 8707 `resource` sent beside the `audience`.
    pub resource: Option<String>,
    /// A provider that must accept the inbound token before it is sent to the
    /// token endpoint (default: none, the token endpoint judges it).
    pub verify_with: Option<String>,
    /// How long an inbound token the token endpoint refused is not sent again
    /// (default 30s; 1s to 10m).
    pub negative_ttl: Option<String>,
}

/// `source.client_credentials`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawClientCredentials {
    /// The token endpoint.
    pub token_url: String,
    /// The client.
    pub client_id: String,
    /// Its secret (`${VAR}` to keep it out of the file).
    pub client_secret: String,
    /// Scopes asked for.
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// `source.mint`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawMint {
    /// The private key (PKCS#8 PEM).
    pub key_file: String,
    /// `iss`.
    pub issuer: String,
    /// `sub`.
    pub subject: String,
    /// Lifetime (default 5m).
    #[schemars(with = "Option<crate::schema::Duration>")]
    pub ttl: Option<String>,
}

/// A validated `providers[].spiffe`.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct SpiffeConfig {
    /// The trust domain.
    pub trust_domain: String,
    /// Where the bundle comes from.
    pub bundle: BundleSource,
}

/// Where a trust domain's bundle comes from.
#[derive(Clone, Debug, Eq, PartialEq)]
pub enum BundleSource {
    /// A SPIFFE bundle file.
    File(PathBuf),
    /// The Workload API at this endpoint (`unix:///path`).
    WorkloadApi(String),
}

/// A validated `inject:`.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct InjectConfig {
    /// The audience.
    pub audience: String,
    /// The token source.
    pub source: InjectSource,
    /// Replace a present `Authorization`.
    pub replace: bool,
}

/// Where an injected token comes from.
#[derive(Clone, Eq, PartialEq)]
pub enum InjectSource {
    /// OAuth 2.0 client credentials at `token_url`.
    ClientCredentials {
        /// The token endpoint.
        token_url: String,
        /// The client.
        client_id: String,
        /// Its secret.
        client_secret: String,
        /// Scopes asked for.
        scopes: Vec<String>,
    },
    /// A token signed with our own key.
    Mint {
        /// The key file.
        key_file: PathBuf,
        /// `iss`.
        issuer: String,
        /// `sub`.
        subject: String,
        /// Lifetime.
        ttl: Duration,
    },
    /// OAuth 2.0 Token Exchange (RFC 8693) of the inbound bearer token at `token_url`.
    TokenExchange(TokenExchange),
    /// A JWT-SVID from the Workload API at this endpoint.
    WorkloadApi {
        /// The endpoint (`unix:///path`).
        socket: String,
    },
}

/// A validated `source.token_exchange`.
#[derive(Clone, Eq, PartialEq)]
pub struct TokenExchange {
    /// The token endpoint.
    pub token_url: String,
    /// The client (authenticated with `client_secret_basic`).
    pub client_id: String,
    /// Its secret.
    pub client_secret: String,
    /// Scopes asked for (space-joined in `scope`).
    pub scopes: Vec<String>,
    /// `subject_token_type`: the URN of what the inbound token is.
    pub subject_token_type: &'static str,
    /// An RFC 8707 `resource`, if configured.
    pub resource: Option<String>,
    /// The provider that must accept the inbound token first, if any.
    pub verify_with: Option<String>,
    /// How long a refused inbound token is answered from the negative cache.
    pub negative_ttl: Duration,
}

/// The default [`TokenExchange::negative_ttl`].
pub const DEFAULT_NEGATIVE_TTL: Duration = Duration::from_secs(30);

/// RFC 8693 §3: an OAuth 2.0 access token.
pub const TOKEN_TYPE_ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";
/// RFC 8693 §3: a JWT.
pub const TOKEN_TYPE_JWT: &str = "urn:ietf:params:oauth:token-type:jwt";

impl std::fmt::Debug for TokenExchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenExchange")
            .field("token_url", &self.token_url)
            .field("client_id", &self.client_id)
            .field("scopes", &self.scopes)
            .field("subject_token_type", &self.subject_token_type)
            .field("resource", &self.resource)
            .field("verify_with", &self.verify_with)
            .field("negative_ttl", &self.negative_ttl)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for InjectSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InjectSource::ClientCredentials {
                token_url,
                client_id,
                scopes,
                ..
            } => f
                .debug_struct("ClientCredentials")
                .field("token_url", token_url)
                .field("client_id", client_id)
                .field("scopes", scopes)
                .finish_non_exhaustive(),
            InjectSource::Mint {
                key_file,
                issuer,
                subject,
                ttl,
            } => f
                .debug_struct("Mint")
                .field("key_file", key_file)
                .field("issuer", issuer)
                .field("subject", subject)
                .field("ttl", ttl)
                .finish(),
            InjectSource::TokenExchange(x) => x.fmt(f),
            InjectSource::WorkloadApi { socket } => f
                .debug_struct("WorkloadApi")
                .field("socket", socket)
                .finish(),
        }
    }
}

/// Validates `providers[i].spiffe`.
pub(super) fn validate_spiffe(
    cx: &Ctx<'_>,
    line: u64,
    field: &str,
    raw: RawSpiffe,
    base_dir: &Path,
) -> Result<SpiffeConfig, ConfigError> {
    let RawSpiffe {
        trust_domain,
        bundle,
    } = raw;
    check_trust_domain(&trust_domain)
        .map_err(|e| cx.err(line, format!("{field}.trust_domain"), e))?;
    let RawBundle { workload_api, file } = bundle.unwrap_or_default();
    let bundle = match (workload_api, file) {
        (Some(_), Some(_)) => {
            return Err(cx.err(
                line,
                format!("{field}.bundle"),
                "exactly one of workload_api or file",
            ));
        }
        (None, Some(path)) => BundleSource::File(base_dir.join(path)),
        (Some(socket), None) => {
            BundleSource::WorkloadApi(check_socket(cx, line, &format!("{field}.bundle"), socket)?)
        }
        (None, None) => {
            BundleSource::WorkloadApi(default_socket(cx, line, &format!("{field}.bundle"))?)
        }
    };
    Ok(SpiffeConfig {
        trust_domain,
        bundle,
    })
}

/// Validates a rule's `spiffe_ids`.
pub(super) fn validate_spiffe_ids(
    cx: &Ctx<'_>,
    field: &str,
    raw: Vec<Spanned<String>>,
) -> Result<Vec<SpiffeIdPattern>, ConfigError> {
    if raw.is_empty() {
        return Err(cx.err(0, field, "must name at least one SPIFFE ID"));
    }
    raw.into_iter()
        .map(|s| {
            SpiffeIdPattern::parse(&s.value).map_err(|e| {
                cx.err(
                    s.referenced.line(),
                    field,
                    format!("{:?} is not a SPIFFE ID: {e}", s.value),
                )
            })
        })
        .collect()
}

/// Validates a rule's `inject`. `provider_socket` is the first spiffe provider's
/// Workload API endpoint, if any.
pub(super) fn validate_inject(
    cx: &Ctx<'_>,
    line: u64,
    field: &str,
    raw: RawInject,
    provider_socket: Option<&str>,
    base_dir: &Path,
) -> Result<InjectConfig, ConfigError> {
    let RawInject {
        audience,
        source,
        replace,
        socket,
    } = raw;
    if audience.is_empty() {
        return Err(cx.err(line, format!("{field}.audience"), "must not be empty"));
    }
    let sfield = format!("{field}.source");
    let source = match source {
        None => RawInjectSource::Name("workload_api".to_owned()),
        Some(s) => s,
    };
    let source = match source {
        RawInjectSource::Name(name) if name == "workload_api" => {
            let socket = match (provider_socket, socket) {
                (Some(p), _) => p.to_owned(),
                (None, Some(s)) => check_socket(cx, line, &format!("{field}.socket"), s)?,
                (None, None) => default_socket(cx, line, &sfield)?,
            };
            InjectSource::WorkloadApi { socket }
        }
        RawInjectSource::Name(other) => {
            return Err(cx.err(
                line,
                sfield,
                format!(
                    "{other:?} is not workload_api, {{client_credentials: ...}} or {{mint: ...}}"
                ),
            ));
        }
        RawInjectSource::Table(RawInjectTable {
            client_credentials: Some(cc),
            mint: None,
            token_exchange: None,
        }) => {
            let RawClientCredentials {
                token_url,
                client_id,
                client_secret,
                scopes,
            } = cc;
            super::check_url(
                cx,
                line,
                &format!("{sfield}.client_credentials.token_url"),
                &token_url,
            )?;
            if client_id.is_empty() || client_secret.is_empty() {
                return Err(cx.err(
                    line,
                    format!("{sfield}.client_credentials"),
                    "client_id and client_secret must not be empty",
                ));
            }
            InjectSource::ClientCredentials {
                token_url,
                client_id,
                client_secret,
                scopes,
            }
        }
        RawInjectSource::Table(RawInjectTable {
            client_credentials: None,
            mint: Some(m),
            token_exchange: None,
        }) => {
            let RawMint {
                key_file,
                issuer,
                subject,
                ttl,
            } = m;
            let ttl = match ttl {
                None => Duration::from_secs(300),
                Some(t) => {
                    parse_duration(&t).map_err(|e| cx.err(line, format!("{sfield}.mint.ttl"), e))?
                }
            };
            if ttl < Duration::from_secs(10) || ttl > Duration::from_secs(86_400) {
                return Err(cx.err(
                    line,
                    format!("{sfield}.mint.ttl"),
                    "must be between 10s and 24h",
                ));
            }
            if issuer.is_empty() || subject.is_empty() {
                return Err(cx.err(
                    line,
                    format!("{sfield}.mint"),
                    "issuer and subject must not be empty",
                ));
            }
            InjectSource::Mint {
                key_file: base_dir.join(key_file),
                issuer,
                subject,
                ttl,
            }
        }
        RawInjectSource::Table(RawInjectTable {
            client_credentials: None,
            mint: None,
            token_exchange: Some(x),
        }) => InjectSource::TokenExchange(validate_exchange(
            cx,
            line,
            &format!("{sfield}.token_exchange"),
            *x,
        )?),
        RawInjectSource::Table(_) => {
            return Err(cx.err(
                line,
                sfield,
                "exactly one of workload_api, client_credentials, mint or token_exchange",
            ));
        }
    };
    Ok(InjectConfig {
        audience,
        source,
        replace: replace.unwrap_or(false),
    })
}

/// Validates `source.token_exchange`.
fn validate_exchange(
    cx: &Ctx<'_>,
    line: u64,
    field: &str,
    raw: RawTokenExchange,
) -> Result<TokenExchange, ConfigError> {
    let RawTokenExchange {
        token_url,
        client_id,
        client_secret,
        scopes,
        subject_token_type,
        resource,
        verify_with,
        negative_ttl,
    } = raw;
    super::check_url(cx, line, &format!("{field}.token_url"), &token_url)?;
    let negative_ttl = match negative_ttl {
        None => DEFAULT_NEGATIVE_TTL,
        Some(t) => {
            let ttl =
                parse_duration(&t).map_err(|e| cx.err(line, format!("{field}.negative_ttl"), e))?;
            if ttl < Duration::from_secs(1) || ttl > Duration::from_secs(600) {
                return Err(cx.err(
                    line,
                    format!("{field}.negative_ttl"),
                    "must be between 1s and 10m",
                ));
            }
            ttl
        }
    };
    if verify_with.as_deref() == Some("") {
        return Err(cx.err(line, format!("{field}.verify_with"), "must not be empty"));
    }
    if client_id.is_empty() || client_secret.is_empty() {
        return Err(cx.err(line, field, "client_id and client_secret must not be empty"));
    }
    let subject_token_type = match subject_token_type.as_deref() {
        None | Some("access_token") | Some(TOKEN_TYPE_ACCESS_TOKEN) => TOKEN_TYPE_ACCESS_TOKEN,
        Some("jwt") | Some(TOKEN_TYPE_JWT) => TOKEN_TYPE_JWT,
        Some(other) => {
            return Err(cx.err(
                line,
                format!("{field}.subject_token_type"),
                format!("{other:?} is not access_token or jwt"),
            ));
        }
    };
    // RFC 8707 §2: an absolute URI without a fragment.
    if let Some(r) = &resource
        && (!r.contains(':') || r.contains('#') || r.chars().any(char::is_whitespace))
    {
        return Err(cx.err(
            line,
            format!("{field}.resource"),
            format!("{r:?} is not an absolute URI without a fragment"),
        ));
    }
    Ok(TokenExchange {
        token_url,
        client_id,
        client_secret,
        scopes,
        subject_token_type,
        resource,
        verify_with,
        negative_ttl,
    })
}

/// A `token_exchange.verify_with` must name a provider of the config.
pub(super) fn check_verify_with(
    cx: &Ctx<'_>,
    line: u64,
    field: &str,
    inject: &InjectConfig,
    providers: &[super::ProviderConfig],
) -> Result<(), ConfigError> {
    if let InjectSource::TokenExchange(x) = &inject.source
        && let Some(name) = &x.verify_with
        && !providers.iter().any(|p| &p.name == name)
    {
        return Err(cx.err(
            line,
            format!("{field}.source.token_exchange.verify_with"),
            format!("no provider is named {name:?}"),
        ));
    }
    Ok(())
}

fn default_socket(cx: &Ctx<'_>, line: u64, field: &str) -> Result<String, ConfigError> {
    match (cx.env)(SPIFFE_ENDPOINT_SOCKET) {
        Some(s) => check_socket(cx, line, &format!("${SPIFFE_ENDPOINT_SOCKET}"), s),
        None => Err(cx.err(
            line,
            field,
            format!("names no Workload API socket and ${SPIFFE_ENDPOINT_SOCKET} is not set"),
        )),
    }
}

/// A Workload API endpoint: `unix:///absolute/path` or `tcp://IP:PORT`.
fn check_socket(cx: &Ctx<'_>, line: u64, field: &str, s: String) -> Result<String, ConfigError> {
    let ok = if let Some(path) = s.strip_prefix("unix://") {
        path.starts_with('/') && path.len() > 1
    } else if let Some(path) = s.strip_prefix("unix:") {
        path.starts_with('/') && path.len() > 1
    } else if let Some(addr) = s.strip_prefix("tcp://") {
        addr.parse::<std::net::SocketAddr>().is_ok()
    } else {
        false
    };
    if ok {
        Ok(s)
    } else {
        Err(cx.err(
            line,
            field,
            format!("{s:?} is not a Workload API endpoint like unix:///run/spire/agent.sock"),
        ))
    }
}

#[cfg(test)]
mod tests;
