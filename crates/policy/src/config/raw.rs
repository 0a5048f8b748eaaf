//! The config file as written: serde structs that mirror the YAML, no IO, no checks
//! beyond types and unknown fields (which are errors).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;
use serde_saphyr::Spanned;

/// The whole file.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Listener addresses.
    #[serde(default)]
    pub listen: RawListen,
    /// Token issuers we trust.
    #[serde(default)]
    #[schemars(with = "Vec<RawProvider>")]
    pub providers: Vec<Spanned<RawProvider>>,
    /// Access rules, first match wins.
    #[serde(default)]
    #[schemars(with = "Vec<RawRule>")]
    pub rules: Vec<Spanned<RawRule>>,
    /// Limits and tuning.
    #[serde(default)]
    #[schemars(with = "Option<RawLimits>")]
    pub limits: Option<Spanned<RawLimits>>,
    /// How the original request is read.
    #[serde(default)]
    #[schemars(with = "Option<RawRequest>")]
    pub request: Option<Spanned<RawRequest>>,
    /// Proxy mode's upstreams.
    #[serde(default)]
    #[schemars(with = "Vec<super::RawUpstream>")]
    pub upstreams: Vec<Spanned<super::RawUpstream>>,
    /// Peers whose forwarding headers the proxy listener keeps (CIDRs).
    #[serde(default)]
    #[schemars(with = "Option<Vec<String>>")]
    pub trusted_proxies: Option<Spanned<Vec<String>>>,
    /// Browser sessions (login).
    #[serde(default)]
    #[schemars(with = "Option<super::login::RawSessions>")]
    pub sessions: Option<Spanned<super::login::RawSessions>>,
    /// After SIGTERM, how long to keep serving with `/readyz` at 503 before draining.
    #[serde(default)]
    #[schemars(with = "Option<crate::schema::Duration>")]
    pub shutdown_grace: Option<Spanned<String>>,
    /// How `serve` starts.
    #[serde(default)]
    #[schemars(with = "Option<super::lifecycle::RawStartup>")]
    pub startup: Option<Spanned<super::lifecycle::RawStartup>>,
    /// Connection timeouts and cap.
    #[serde(default)]
    #[schemars(with = "Option<super::lifecycle::RawConnections>")]
    pub connections: Option<Spanned<super::lifecycle::RawConnections>>,
    /// DPoP: the shared replay store.
    #[serde(default)]
    #[schemars(with = "Option<super::dpop::RawDpopSettings>")]
    pub dpop: Option<Spanned<super::dpop::RawDpopSettings>>,
    /// OpenTelemetry trace export.
    #[serde(default)]
    #[schemars(with = "Option<super::telemetry::RawTelemetry>")]
    pub telemetry: Option<Spanned<super::telemetry::RawTelemetry>>,
}

/// `request:`.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRequest {
    /// `%2F` and `%5C` in paths: `reject` (default), `decode` or `keep`.
    #[schemars(with = "Option<crate::schema::EscapedSlashesWord>")]
    pub escaped_slashes: Option<Spanned<String>>,
}

/// `listen:`.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawListen {
    /// Forward-auth `/verify`.
    #[schemars(with = "Option<crate::schema::Address>")]
    pub http: Option<Spanned<String>>,
    /// Envoy ext_authz v3.
    #[schemars(with = "Option<crate::schema::Address>")]
    pub grpc: Option<Spanned<String>>,
    /// `/healthz`, `/readyz`, `/metrics`.
    #[schemars(with = "Option<crate::schema::Address>")]
    pub admin: Option<Spanned<String>>,
    /// Proxy mode.
    #[schemars(with = "Option<crate::schema::Address>")]
    pub proxy: Option<Spanned<String>>,
    /// TLS on the proxy listener.
    #[schemars(with = "Option<super::RawProxyTls>")]
    pub proxy_tls: Option<Spanned<super::RawProxyTls>>,
    /// TLS on the forward-auth listener (same keys as `proxy_tls`).
    #[schemars(with = "Option<super::RawProxyTls>")]
    pub http_tls: Option<Spanned<super::RawProxyTls>>,
    /// TLS on the ext_authz gRPC listener (same keys as `proxy_tls`).
    #[schemars(with = "Option<super::RawProxyTls>")]
    pub grpc_tls: Option<Spanned<super::RawProxyTls>>,
    /// TLS on the admin listener (same keys as `proxy_tls`).
    #[schemars(with = "Option<super::RawProxyTls>")]
    pub admin_tls: Option<Spanned<super::RawProxyTls>>,
    /// Lets `admin` listen on an address other than loopback (default false).
    #[schemars(with = "Option<bool>")]
    pub admin_allow_remote: Option<Spanned<bool>>,
}

/// `limits:`.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    /// Entries of the verified-token cache (0 turns it off).
    pub token_cache_entries: Option<usize>,
    /// Memory the verified-token cache may use (`64MiB`).
    #[schemars(with = "Option<crate::schema::Size>")]
    pub token_cache_memory: Option<String>,
    /// Longest token accepted, in bytes.
    pub max_token_bytes: Option<usize>,
}

/// One entry of `providers:`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawProvider {
    /// Unique name, used by rules.
    pub name: String,
    /// Required `iss`, or a template (`https://login.microsoftonline.com/{tid}/v2.0`)
    /// whose `{NAME}` binds to the token's claim `NAME`.
    #[schemars(with = "Option<String>")]
    pub issuer: Option<Spanned<String>>,
    /// Allow-list for the value an issuer template binds.
    #[schemars(with = "Option<Vec<String>>")]
    pub tenants: Option<Spanned<Vec<String>>>,
    /// The token's `aud` must hold at least one of these.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// Where the keys come from (not for `spiffe` providers).
    #[schemars(with = "Option<RawJwks>")]
    pub jwks: Option<Spanned<RawJwks>>,
    /// DPoP (RFC 9449): `allowed` or `required` (default: off).
    #[schemars(with = "Option<crate::schema::DpopWord>")]
    pub dpop: Option<Spanned<String>>,
    /// A SPIFFE trust domain whose JWT-SVIDs the provider accepts.
    #[schemars(with = "Option<super::spiffe::RawSpiffe>")]
    pub spiffe: Option<Spanned<super::spiffe::RawSpiffe>>,
    /// Allowed algorithms (default: the keys').
    #[schemars(with = "Option<Vec<crate::schema::AlgorithmWord>>")]
    pub algorithms: Option<Vec<Spanned<String>>>,
    /// Where the token is looked for.
    #[schemars(with = "Option<Vec<RawLocation>>")]
    pub from: Option<Vec<Spanned<RawLocation>>>,
    /// Clock tolerance.
    #[schemars(with = "Option<crate::schema::Duration>")]
    pub clock_skew: Option<Spanned<String>>,
    /// Keep the token on the upstream request.
    pub forward_token: Option<bool>,
    /// Identity headers from claims.
    #[serde(default)]
    #[schemars(with = "Vec<RawClaimHeader>")]
    pub claims_to_headers: Vec<Spanned<RawClaimHeader>>,
    /// `exp` required (default true). Turning it off accepts tokens that never expire.
    pub require_exp: Option<bool>,
    /// Required `typ` header (e.g. `at+jwt`).
    pub typ: Option<String>,
    /// Browser login at this provider.
    #[schemars(with = "Option<super::login::RawLogin>")]
    pub login: Option<Spanned<super::login::RawLogin>>,
    /// A custom deny response for this provider's tokens.
    #[schemars(with = "Option<RawDeny>")]
    pub deny: Option<Spanned<RawDeny>>,
    /// Opaque access tokens checked by introspection (RFC 7662).
    #[schemars(with = "Option<super::introspection::RawIntrospection>")]
    pub introspection: Option<Spanned<super::introspection::RawIntrospection>>,
}

/// `jwks:` — exactly one source, plus fetch tuning for `uri`/`discovery`.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawJwks {
    /// A JWKS object (or its JSON text).
    #[schemars(with = "Option<crate::schema::InlineJwks>")]
    pub inline: Option<Value>,
    /// A JWKS file, re-read when it changes.
    pub file: Option<String>,
    /// A JWKS URI.
    pub uri: Option<String>,
    /// An OIDC issuer URL (its discovery document names the `jwks_uri`).
    pub discovery: Option<String>,
    /// One PEM public key.
    pub pem: Option<String>,
    /// How often to refetch (`uri`/`discovery`; default 5m).
    #[schemars(with = "Option<crate::schema::Duration>")]
    pub refresh: Option<String>,
    /// Lower bound for a server's `Cache-Control: max-age` (default 30s).
    #[schemars(with = "Option<crate::schema::Duration>")]
    pub min_refresh: Option<String>,
    /// Upper bound for a server's `Cache-Control: max-age` (default 24h).
    #[schemars(with = "Option<crate::schema::Duration>")]
    pub max_refresh: Option<String>,
    /// Per-fetch timeout (default 5s).
    #[schemars(with = "Option<crate::schema::Duration>")]
    pub timeout: Option<String>,
}

/// One entry of `from:`.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawLocation {
    /// A request header.
    pub header: Option<String>,
    /// The header value's prefix (scheme compared case-insensitively).
    pub prefix: Option<String>,
    /// A cookie.
    pub cookie: Option<String>,
    /// A query parameter.
    pub query: Option<String>,
}

/// One entry of `claims_to_headers:`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawClaimHeader {
    /// The header to set.
    pub header: String,
    /// The claim (dotted path) to read.
    pub claim: String,
    /// `csv` (default), `json` or `first`.
    #[schemars(with = "Option<crate::schema::ClaimFormatWord>")]
    pub format: Option<Spanned<String>>,
}

/// One entry of `rules:`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    /// Unique name (also selectable from Envoy per-route config).
    pub name: String,
    /// What requests the rule is for.
    #[serde(rename = "match", default)]
    pub match_: RawMatch,
    /// `anonymous` (no token needed), `authenticated` (default), `optional` or `deny`.
    /// (Read as text and typed into [`RawAllow`] by the validation, so a wrong
    /// value is reported with its field and line.)
    #[schemars(
        description = "`anonymous` (no token needed), `authenticated` (default), `optional` or `deny`."
    )]
    #[schemars(with = "Option<crate::schema::AllowWord>")]
    pub allow: Option<Spanned<String>>,
    /// Any of these providers (default: all).
    #[schemars(with = "Option<Vec<String>>")]
    pub providers: Option<Vec<Spanned<String>>>,
    /// Per claim: one of the values; all claims must hold.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, crate::schema::ClaimValues>")]
    pub claims: BTreeMap<String, Value>,
    /// All of these scopes.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Templated headers added on allow.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, String>")]
    pub headers: BTreeMap<String, Spanned<String>>,
    /// Envoy ext_authz over gRPC: send the identity (`provider`, `iss`, `sub`,
    /// `claims`) as dynamic metadata on allow (default `true`). `false` spares Envoy
    /// reading it when nothing in Envoy uses it.
    pub dynamic_metadata: Option<bool>,
    /// `enforce` (default) or `dry_run` (log and count denies, allow).
    #[schemars(with = "Option<crate::schema::RuleModeWord>")]
    pub mode: Option<Spanned<String>>,
    /// The SPIFFE IDs (`sub` of a JWT-SVID) allowed; `*` is one path segment.
    #[schemars(with = "Option<Vec<String>>")]
    pub spiffe_ids: Option<Vec<Spanned<String>>>,
    /// The SPIFFE IDs allowed for the client certificate (its URI SAN); `*` is
    /// one path segment.
    #[schemars(with = "Option<Vec<String>>")]
    pub peer_spiffe_ids: Option<Vec<Spanned<String>>>,
    /// Outbound: set `Authorization: Bearer <token>` for an audience.
    #[schemars(with = "Option<super::spiffe::RawInject>")]
    pub inject: Option<Spanned<super::spiffe::RawInject>>,
    /// The upstream of the proxy listener (a name under `upstreams:`).
    #[schemars(with = "Option<String>")]
    pub upstream: Option<Spanned<String>>,
    /// Browsers without a credential are sent to log in at this provider.
    #[schemars(with = "Option<String>")]
    pub login: Option<Spanned<String>>,
    /// Step-up (RFC 9470): the `acr` values accepted, in order of preference; also
    /// sent as `acr_values` when the rule sends a browser to log in.
    #[schemars(with = "Option<Vec<String>>")]
    pub acr_values: Option<Vec<Spanned<String>>>,
    /// Step-up: the token's or session's `amr` must hold at least one of these.
    #[schemars(with = "Option<Vec<String>>")]
    pub amr: Option<Vec<Spanned<String>>>,
    /// Step-up: the login (`auth_time`) must be no older than this (`max_age`).
    #[schemars(with = "Option<crate::schema::Duration>")]
    pub max_age: Option<Spanned<String>>,
    /// A CEL condition over `claims`, `header`, `request` and `now`.
    #[schemars(with = "Option<String>")]
    pub when: Option<Spanned<String>>,
    /// A custom deny response for this rule.
    #[schemars(with = "Option<RawDeny>")]
    pub deny: Option<Spanned<RawDeny>>,
}

/// `allow:` of a rule.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum RawAllow {
    /// No token needed (identity headers removed).
    Anonymous,
    /// A valid token that meets the rule's requirements.
    Authenticated,
    /// Always refused.
    Deny,
    /// No token: anonymous; a token: it must be valid and meet the requirements.
    Optional,
}

impl RawAllow {
    /// Every value, as written.
    pub const NAMES: [&'static str; 4] = ["anonymous", "authenticated", "deny", "optional"];

    /// The value named `name`.
    pub fn from_name(name: &str) -> Option<RawAllow> {
        match name {
            "anonymous" => Some(RawAllow::Anonymous),
            "authenticated" => Some(RawAllow::Authenticated),
            "deny" => Some(RawAllow::Deny),
            "optional" => Some(RawAllow::Optional),
            _ => None,
        }
    }
}

/// `deny:` (on a rule or a provider): a custom deny response.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawDeny {
    /// The body template.
    pub body: Option<String>,
    /// Its `Content-Type` (default `application/json`).
    pub content_type: Option<String>,
    /// Header templates.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// `match:`.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawMatch {
    /// Exact host or `*.suffix` (a string or a list).
    #[schemars(with = "Option<crate::schema::OneOrMany>")]
    pub host: Option<Value>,
    /// Exact path, `/prefix/**`, `*` within a segment (a string or a list).
    #[schemars(with = "Option<crate::schema::OneOrMany>")]
    pub path: Option<Value>,
    /// Methods (default: all).
    #[schemars(with = "Option<Vec<crate::schema::Method>>")]
    pub methods: Option<Vec<String>>,
}
