//! The config file: parsed in two stages, [`raw`] (serde, mirrors the YAML) then
//! validated into [`Config`], whose every error names the file, line and field.

mod admin;
mod deny;
pub mod dpop;
pub mod introspection;
pub mod lifecycle;
pub mod login;
pub mod raw;
pub mod spiffe;
pub mod telemetry;
mod upstream;
mod yaml_error;

pub use yaml_error::line_of;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;
use portcullis_jose::{
    Algorithm, AlgorithmSet, IssuerTemplate, KeyFormat, KeySet, Secrets, import_keys,
};
use serde_json::Value;
use serde_saphyr::Spanned;

use crate::canonical::EscapedSlashes;
use crate::condition::Condition;
use crate::matcher::{HostPattern, PathPattern};
use crate::template::{ClaimFormat, Template};
pub use introspection::{IntrospectionConfig, IntrospectionSecret};
pub use login::{
    ClientSecret, CookieConfig, LoginConfig, RedirectHost, SessionStore, SessionTokenConfig,
    SessionsConfig, StepUp, TokenEndpointAuth,
};
use raw::{RawConfig, RawJwks, RawLocation, RawProvider, RawRule};
use spiffe::{InjectConfig, SpiffeConfig};
pub use upstream::{
    Balance, Cidr, ClientAuth, HealthCheck, InvalidCidr, ProxySettings, ProxyTls, RawHealthCheck,
    RawProxyTls, RawSniCert, RawUpstream, RawUpstreamTls, SniCert, UpstreamConfig,
    UpstreamProtocol, UpstreamTls, UpstreamUrl,
};

/// A config problem: `FILE:LINE: field: what is wrong`.
#[derive(Clone, Debug, Eq, PartialEq, thiserror::Error)]
#[error("{file}:{line}: {field}: {problem}")]
pub struct ConfigError {
    /// The file (as given).
    pub file: String,
    /// 1-based line (0 when unknown).
    pub line: u64,
    /// The field, as a path (`providers[0].jwks`).
    pub field: String,
    /// What is wrong.
    pub problem: String,
}

/// Something in a config that is used with a part left out, as
/// `FILE:LINE: field: what was left out and why` (an inline JWKS key of an
/// unsupported type, curve or algorithm, or not for signatures).
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct ConfigWarning {
    /// The file (as given).
    pub file: String,
    /// 1-based line (0 when unknown).
    pub line: u64,
    /// The field, as a path (`providers[0].jwks.inline.keys[1]`).
    pub field: String,
    /// What was left out and why.
    pub problem: String,
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {}: {}",
            self.file, self.line, self.field, self.problem
        )
    }
}

/// A validated config.
#[derive(Debug)]
pub struct Config {
    /// Listener addresses.
    pub listen: Listen,
    /// Providers, in file order.
    pub providers: Vec<ProviderConfig>,
    /// Rules, in file order.
    pub rules: Vec<RuleConfig>,
    /// Limits.
    pub limits: Limits,
    /// How the original request is read.
    pub request: RequestReading,
    /// Proxy mode: upstreams and trusted proxies.
    pub proxy: ProxySettings,
    /// Browser sessions, when any provider logs browsers in.
    pub sessions: Option<SessionsConfig>,
    /// How `serve` starts, holds connections and stops.
    pub lifecycle: lifecycle::Lifecycle,
    /// DPoP: the shared replay store.
    pub dpop: dpop::DpopSettings,
    /// OpenTelemetry trace export (`None`: off, nothing exported).
    pub telemetry: Option<telemetry::TelemetryConfig>,
}

/// `request:`: how the canonical reader reads what a client controls.
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
pub struct RequestReading {
    /// `%2F` and `%5C` in paths.
    pub escaped_slashes: EscapedSlashes,
}

/// What a listener serves.
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
#[non_exhaustive]
pub enum ListenerKind {
    /// `/healthz`, `/readyz`, `/metrics` (`listen.admin`).
    Admin,
    /// Envoy ext_authz v3 over gRPC (`listen.grpc`).
    Grpc,
    /// Forward auth `/verify` (`listen.http`).
    Http,
    /// Proxy mode (`listen.proxy`).
    Proxy,
}

impl ListenerKind {
    /// Its key under `listen:`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ListenerKind::Admin => "admin",
            ListenerKind::Grpc => "grpc",
            ListenerKind::Http => "http",
            ListenerKind::Proxy => "proxy",
        }
    }
}

/// One listener: what it serves, where.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct Listener {
    /// What it serves.
    pub kind: ListenerKind,
    /// Where.
    pub addr: SocketAddr,
}

/// The listeners, in the order the file names them (`http`, `grpc`, `admin`). A new
/// kind of listener is one more entry, not one more field.
#[derive(Clone, Debug, Default, Eq, PartialEq)]
pub struct Listen {
    listeners: Vec<Listener>,
    proxy_tls: Option<ProxyTls>,
    /// `http_tls`, `grpc_tls`, `admin_tls`: TLS on the other listeners.
    tls: Vec<(ListenerKind, ProxyTls)>,
}

impl Listen {
    /// These listeners.
    pub fn new(listeners: Vec<Listener>) -> Listen {
        Listen {
            listeners,
            proxy_tls: None,
            tls: Vec::new(),
        }
    }

    /// TLS on the listener of `kind` (`listen.http_tls`, `grpc_tls`, `admin_tls`,
    /// `proxy_tls`), if it has some.
    pub fn tls(&self, kind: ListenerKind) -> Option<&ProxyTls> {
        if kind == ListenerKind::Proxy {
            return self.proxy_tls.as_ref();
        }
        self.tls.iter().find(|(k, _)| *k == kind).map(|(_, t)| t)
    }

    /// TLS on the proxy listener (`listen.proxy_tls`).
    pub fn proxy_tls(&self) -> Option<&ProxyTls> {
        self.proxy_tls.as_ref()
    }

    /// Every listener.
    pub fn listeners(&self) -> &[Listener] {
        &self.listeners
    }

    /// The address of the listener of `kind`, if there is one.
    pub fn addr(&self, kind: ListenerKind) -> Option<SocketAddr> {
        self.listeners
            .iter()
            .find(|l| l.kind == kind)
            .map(|l| l.addr)
    }

    /// Whether no listener is named.
    pub fn is_empty(&self) -> bool {
        self.listeners.is_empty()
    }
}

/// Limits and tuning.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct Limits {
    /// Entries of the verified-token cache (0: off).
    pub token_cache_entries: usize,
    /// Memory the verified-token cache may use, in bytes (estimated per entry).
    pub token_cache_bytes: u64,
    /// Longest token accepted.
    pub max_token_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            token_cache_entries: 100_000,
            token_cache_bytes: 64 * 1024 * 1024,
            max_token_bytes: portcullis_jose::DEFAULT_MAX_TOKEN_BYTES,
        }
    }
}

impl Config {
    /// What loading left out (keys of an inline JWKS that cannot be used): worth a
    /// `warning:` line, not a refusal.
    pub fn warnings(&self) -> impl Iterator<Item = &ConfigWarning> {
        self.providers.iter().flat_map(|p| p.jwks.warnings.iter())
    }
}

/// Where keys come from.
#[derive(Clone, Debug)]
pub enum JwksSource {
    /// Keys fixed in the config (inline JWKS or PEM), already imported.
    Static(KeySet),
    /// A JWKS file, re-read when it changes (path resolved against the config's folder).
    File(PathBuf),
    /// A JWKS URI.
    Uri(String),
    /// An OIDC issuer: discovery document, then its `jwks_uri`.
    Discovery(String),
    /// A SPIFFE trust domain's bundle (Workload API or bundle file).
    Spiffe(SpiffeConfig),
}

/// Fetch tuning for remote sources.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct FetchTuning {
    /// Normal refresh interval.
    pub refresh: Duration,
    /// Lower bound applied to `Cache-Control: max-age`.
    pub min_refresh: Duration,
    /// Upper bound applied to `Cache-Control: max-age`.
    pub max_refresh: Duration,
    /// Timeout of one fetch.
    pub timeout: Duration,
}

impl Default for FetchTuning {
    fn default() -> Self {
        FetchTuning {
            refresh: Duration::from_secs(300),
            min_refresh: Duration::from_secs(30),
            max_refresh: Duration::from_secs(86_400),
            timeout: Duration::from_secs(5),
        }
    }
}

/// The keys part of a provider.
#[derive(Clone, Debug)]
pub struct JwksSpec {
    /// The source.
    pub source: JwksSource,
    /// Fetch tuning.
    pub tuning: FetchTuning,
    /// Keys of an inline JWKS left out because they cannot be used here.
    pub warnings: Vec<ConfigWarning>,
}

/// Where a token is looked for.
#[derive(Clone, Debug, Eq, PartialEq)]
pub enum TokenLocation {
    /// A header, with a prefix (matched case-insensitively) that is removed.
    Header {
        /// The header.
        name: HeaderName,
        /// The prefix, e.g. `Bearer `.
        prefix: String,
    },
    /// A cookie.
    Cookie(String),
    /// A query parameter.
    Query(String),
}

/// A validated provider.
#[derive(Clone, Debug)]
pub struct ProviderConfig {
    /// Name.
    pub name: String,
    /// Required issuer, as written (for a template: the template's text).
    pub issuer: Option<String>,
    /// The issuer as a template binding claims (`.../{tid}/v2.0`) with its
    /// optional `tenants` allow-list; `None` for a plain issuer.
    pub issuer_template: Option<IssuerTemplate>,
    /// Accepted audiences (empty: not checked).
    pub audiences: Vec<String>,
    /// Keys.
    pub jwks: JwksSpec,
    /// Allowed algorithms (None: the keys').
    pub algorithms: Option<AlgorithmSet>,
    /// Token locations, in order.
    pub locations: Vec<TokenLocation>,
    /// Clock skew in seconds.
    pub clock_skew_secs: i64,
    /// Keep the token upstream.
    pub forward_token: bool,
    /// Identity headers from claims.
    pub claims_to_headers: Vec<(HeaderName, Template)>,
    /// `exp` required.
    pub require_exp: bool,
    /// Required `typ`.
    pub typ: Option<String>,
    /// The trust domain of a `spiffe` provider (its tokens are JWT-SVIDs).
    pub spiffe: Option<SpiffeConfig>,
    /// Browser login at this provider.
    pub login: Option<LoginConfig>,
    /// DPoP (RFC 9449), when the provider opts in.
    pub dpop: Option<crate::dpop::DpopMode>,
    /// The deny response for this provider's tokens (`None`: the default).
    pub deny: Option<std::sync::Arc<crate::deny_template::DenyTemplate>>,
    /// Opaque (non-JWT) access tokens are checked by introspection (RFC 7662).
    pub introspection: Option<IntrospectionConfig>,
}

/// What a rule asks of a request.
#[derive(Clone, Debug, Eq, PartialEq)]
pub enum Access {
    /// No token needed.
    Anonymous,
    /// A valid token that meets the rule's requirements.
    Authenticated,
    /// Always refused (403).
    Deny,
    /// No token: allowed anonymously (identity headers removed); a token: as
    /// [`Access::Authenticated`] (an invalid one is a 401, never anonymous).
    Optional,
}

/// Whether a rule's denies are answered (`mode:`).
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
pub enum RuleMode {
    /// Log and count the deny it would answer, and allow.
    DryRun,
    /// Answer its decisions (the default).
    #[default]
    Enforce,
}

/// A validated rule.
#[derive(Clone, Debug)]
pub struct RuleConfig {
    /// Name.
    pub name: String,
    /// Hosts (any of; empty: all).
    pub hosts: Vec<HostPattern>,
    /// Paths (any of; empty: all).
    pub paths: Vec<PathPattern>,
    /// Methods, upper case (empty: all).
    pub methods: Vec<http::Method>,
    /// What is required.
    pub access: Access,
    /// Indexes into [`Config::providers`] (any of).
    pub providers: Vec<usize>,
    /// Per claim (dotted path): accepted values.
    pub claims: Vec<(String, Vec<Value>)>,
    /// Required scopes.
    pub scopes: Vec<String>,
    /// Templated headers.
    pub headers: Vec<(HeaderName, Template)>,
    /// Whether an allow sends the identity as Envoy's dynamic metadata (ext_authz
    /// gRPC; `dynamic_metadata:`, default `true`).
    pub dynamic_metadata: bool,
    /// `enforce`, or `dry_run`: a deny is logged and counted, and the request allowed.
    pub mode: RuleMode,
    /// SPIFFE IDs allowed (empty: any).
    pub spiffe_ids: Vec<crate::spiffe::SpiffeIdPattern>,
    /// The SPIFFE IDs allowed for the client certificate (`peer_spiffe_ids`; empty: any).
    pub peer_spiffe_ids: Vec<crate::spiffe::SpiffeIdPattern>,
    /// Outbound token injection (the rule then needs no inbound token).
    pub inject: Option<InjectConfig>,
    /// Where the proxy listener sends what the rule allows.
    pub upstream: Option<Arc<UpstreamConfig>>,
    /// Index into [`Config::providers`] of the provider browsers log in at.
    pub login: Option<usize>,
    /// Step-up (`acr_values`, `amr`): the authentication the token or session must show.
    pub step_up: Option<StepUp>,
    /// `when:`, checked after the other requirements.
    pub when: Option<Condition>,
    /// The deny response of this rule (`None`: the provider's, else the default).
    pub deny: Option<std::sync::Arc<crate::deny_template::DenyTemplate>>,
}

struct Ctx<'a> {
    file: &'a str,
    env: &'a dyn Fn(&str) -> Option<String>,
}

impl Ctx<'_> {
    fn err(&self, line: u64, field: impl Into<String>, problem: impl fmt::Display) -> ConfigError {
        ConfigError {
            file: self.file.to_owned(),
            line,
            field: field.into(),
            problem: problem.to_string(),
        }
    }
}

/// Parses and validates a config. `file` names it in errors; `base_dir` resolves relative paths.
///
/// # Errors
/// The first problem found, as `FILE:LINE: field: problem`.
pub fn parse(
    text: &str,
    file: &str,
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let cx = Ctx { file, env };
    let text = substitute_env(text, env).map_err(|(line, name)| {
        cx.err(
            line,
            format!("${{{name}}}"),
            "environment variable is not set",
        )
    })?;
    let raw: RawConfig =
        serde_saphyr::from_str(&text).map_err(|e| yaml_error::reword(&cx, &text, &e))?;
    validate(&cx, raw, base_dir)
}

/// Replaces `${NAME}` with the variable's value; `$${` stays a literal `${`.
fn substitute_env(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, (u64, String)> {
    let mut out = String::with_capacity(text.len());
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let mut rest = line;
        while let Some(pos) = rest.find("${") {
            if rest[..pos].ends_with('$') {
                out.push_str(&rest[..pos - 1]);
                out.push_str("${");
                rest = &rest[pos + 2..];
                continue;
            }
            out.push_str(&rest[..pos]);
            let after = &rest[pos + 2..];
            let Some(end) = after.find('}') else {
                out.push_str(&rest[pos..]);
                rest = "";
                break;
            };
            let name = &after[..end];
            let value = env(name).ok_or_else(|| ((i + 1) as u64, name.to_owned()))?;
            out.push_str(&value);
            rest = &after[end + 1..];
        }
        out.push_str(rest);
    }
    Ok(out)
}

/// Parses a size: plain bytes, or with a `KiB`/`MiB`/`GiB` (or `KB`/`MB`/`GB`, same meaning) suffix.
fn parse_bytes(text: &str) -> Option<u64> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(factor)
}

/// Parses `90s`, `5m`, `1h`, `1h30m`, or plain seconds.
///
/// # Errors
/// Anything else.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if let Ok(secs) = t.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(t)
        .map_err(|_| format!("{text:?} is not a duration like 90s, 5m or 1h"))
}

fn validate(cx: &Ctx<'_>, raw: RawConfig, base_dir: &Path) -> Result<Config, ConfigError> {
    let RawConfig {
        listen,
        providers,
        rules,
        limits,
        request,
        upstreams,
        trusted_proxies,
        sessions,
        shutdown_grace,
        startup,
        connections,
        dpop,
        telemetry,
    } = raw;
    let telemetry = telemetry::validate_telemetry(cx, telemetry)?;
    let lifecycle = lifecycle::validate_lifecycle(cx, shutdown_grace, startup, connections)?;
    let addr =
        |v: Option<Spanned<String>>, field: &str| -> Result<Option<SocketAddr>, ConfigError> {
            v.map(|s| {
                s.value.parse::<SocketAddr>().map_err(|_| {
                    cx.err(
                        s.referenced.line(),
                        field,
                        format!("{:?} is not an address like 127.0.0.1:8080", s.value),
                    )
                })
            })
            .transpose()
        };
    let raw::RawListen {
        http,
        grpc,
        admin,
        proxy,
        proxy_tls,
        http_tls,
        grpc_tls,
        admin_tls,
        admin_allow_remote,
    } = listen;
    admin::check_admin_addr(cx, admin.as_ref(), admin_allow_remote.as_ref())?;
    let mut listeners = Vec::new();
    for (kind, raw) in [
        (ListenerKind::Http, http),
        (ListenerKind::Grpc, grpc),
        (ListenerKind::Admin, admin),
        (ListenerKind::Proxy, proxy),
    ] {
        if let Some(addr) = addr(raw, &format!("listen.{}", kind.as_str()))? {
            listeners.push(Listener { kind, addr });
        }
    }
    let mut listen = Listen::new(listeners);
    if let Some(tls) = proxy_tls {
        let line = tls.referenced.line();
        if listen.addr(ListenerKind::Proxy).is_none() {
            return Err(cx.err(line, "listen.proxy_tls", "needs listen.proxy"));
        }
        listen.proxy_tls = Some(upstream::validate_proxy_tls(cx, line, tls.value, base_dir)?);
    }
    for (kind, raw) in [
        (ListenerKind::Http, http_tls),
        (ListenerKind::Grpc, grpc_tls),
        (ListenerKind::Admin, admin_tls),
    ] {
        let Some(tls) = raw else { continue };
        let line = tls.referenced.line();
        let name = format!("listen.{}_tls", kind.as_str());
        if listen.addr(kind).is_none() {
            return Err(cx.err(line, name, format!("needs listen.{}", kind.as_str())));
        }
        let tls = upstream::validate_listener_tls(cx, line, tls.value, base_dir, &name)?;
        listen.tls.push((kind, tls));
    }
    let proxy = ProxySettings {
        trusted_proxies: upstream::validate_trusted_proxies(cx, trusted_proxies)?,
        upstreams: upstream::validate_upstreams(cx, upstreams, base_dir)?,
    };
    let mut limits_out = Limits::default();
    if let Some(l) = limits {
        let raw::RawLimits {
            token_cache_entries,
            token_cache_memory,
            max_token_bytes,
        } = l.value;
        if let Some(text) = token_cache_memory {
            limits_out.token_cache_bytes = parse_bytes(&text).ok_or_else(|| {
                cx.err(
                    l.referenced.line(),
                    "limits.token_cache_memory",
                    format!("{text:?} is not a size like 64MiB, 512KiB or 1000000"),
                )
            })?;
        }
        if let Some(n) = token_cache_entries {
            limits_out.token_cache_entries = n;
        }
        if let Some(n) = max_token_bytes {
            if !(256..=1 << 20).contains(&n) {
                return Err(cx.err(
                    l.referenced.line(),
                    "limits.max_token_bytes",
                    "must be between 256 and 1048576",
                ));
            }
            limits_out.max_token_bytes = n;
        }
    }
    let mut reading = RequestReading::default();
    if let Some(r) = request {
        let raw::RawRequest { escaped_slashes } = r.value;
        if let Some(action) = escaped_slashes {
            reading.escaped_slashes =
                EscapedSlashes::from_name(&action.value).ok_or_else(|| {
                    cx.err(
                        action.referenced.line(),
                        "request.escaped_slashes",
                        format!("{:?} is not one of reject, decode, keep", action.value),
                    )
                })?;
        }
    }
    let mut out_providers: Vec<ProviderConfig> = Vec::with_capacity(providers.len());
    for (i, p) in providers.into_iter().enumerate() {
        let line = p.referenced.line();
        let provider = validate_provider(cx, i, line, p.value, base_dir)?;
        if out_providers.iter().any(|o| o.name == provider.name) {
            return Err(cx.err(
                line,
                format!("providers[{i}].name"),
                format!("{:?} is used twice", provider.name),
            ));
        }
        out_providers.push(provider);
    }
    let mut out_rules: Vec<RuleConfig> = Vec::with_capacity(rules.len());
    for (i, r) in rules.into_iter().enumerate() {
        let line = r.referenced.line();
        let rule = validate_rule(
            cx,
            i,
            line,
            r.value,
            &out_providers,
            base_dir,
            &proxy.upstreams,
        )?;
        if out_rules.iter().any(|o| o.name == rule.name) {
            return Err(cx.err(
                line,
                format!("rules[{i}].name"),
                format!("{:?} is used twice", rule.name),
            ));
        }
        out_rules.push(rule);
    }
    let sessions = match sessions {
        None => None,
        Some(s) => Some(login::validate_sessions(
            cx,
            s.referenced.line(),
            s.value,
            base_dir,
        )?),
    };
    if sessions.is_none()
        && let Some((i, _)) = out_providers
            .iter()
            .enumerate()
            .find(|(_, p)| p.login.is_some())
    {
        return Err(cx.err(
            0,
            format!("providers[{i}].login"),
            "login needs a top-level sessions: block",
        ));
    }
    let dpop = dpop::validate_dpop(
        cx,
        dpop.as_ref().map_or(0, |d| d.referenced.line()),
        dpop.map(|d| d.value),
        sessions.as_ref(),
    )?;
    Ok(Config {
        listen,
        providers: out_providers,
        rules: out_rules,
        limits: limits_out,
        request: reading,
        proxy,
        sessions,
        lifecycle,
        dpop,
        telemetry,
    })
}

fn header_name(
    cx: &Ctx<'_>,
    line: u64,
    field: &str,
    name: &str,
) -> Result<HeaderName, ConfigError> {
    HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| cx.err(line, field, format!("{name:?} is not a valid header name")))
}

fn validate_provider(
    cx: &Ctx<'_>,
    i: usize,
    line: u64,
    p: RawProvider,
    base_dir: &Path,
) -> Result<ProviderConfig, ConfigError> {
    let RawProvider {
        name,
        issuer,
        tenants,
        audiences,
        jwks,
        algorithms,
        from,
        clock_skew,
        forward_token,
        claims_to_headers,
        require_exp,
        typ,
        spiffe,
        login,
        dpop,
        deny,
        introspection,
    } = p;
    let f = |field: &str| format!("providers[{i}].{field}");
    if name.is_empty() {
        return Err(cx.err(line, f("name"), "must not be empty"));
    }
    let (jwks_line, jwks, spiffe) = match (jwks, spiffe) {
        (Some(jwks), None) => {
            let jwks_line = jwks.referenced.line();
            let jwks = validate_jwks(cx, jwks_line, &f("jwks"), jwks.value, base_dir)?;
            (jwks_line, jwks, None)
        }
        (None, Some(s)) => {
            let l = s.referenced.line();
            let config = spiffe::validate_spiffe(cx, l, &f("spiffe"), s.value, base_dir)?;
            // JWT-SVID §3: `exp` is required and no symmetric algorithm may sign.
            if require_exp == Some(false) {
                return Err(cx.err(l, f("require_exp"), "a JWT-SVID must have `exp`"));
            }
            if issuer.is_some() {
                return Err(cx.err(
                    l,
                    f("issuer"),
                    "a spiffe provider is chosen by trust domain, not by issuer",
                ));
            }
            let spec = JwksSpec {
                source: JwksSource::Spiffe(config.clone()),
                tuning: FetchTuning::default(),
                warnings: Vec::new(),
            };
            (l, spec, Some(config))
        }
        _ => return Err(cx.err(line, f("jwks"), "exactly one of jwks or spiffe")),
    };
    let (issuer, issuer_template) = issuer_template(cx, line, &f, issuer, tenants)?;
    let algorithms = match algorithms {
        None => None,
        Some(list) => {
            let mut set = AlgorithmSet::EMPTY;
            for a in list {
                // `EdDSA` and `Ed25519` (RFC 9864) name the same verification: either allows both.
                let alg = Algorithm::try_from_name(&a.value).map_err(|e| {
                    let problem = if e.is_registered() || e.name == "none" {
                        e.to_string()
                    } else {
                        format!("{e} (`none` is never allowed)")
                    };
                    cx.err(a.referenced.line(), f("algorithms"), problem)
                })?;
                set = set.with(alg);
            }
            if set.is_empty() {
                return Err(cx.err(line, f("algorithms"), "must name at least one algorithm"));
            }
            Some(set)
        }
    };
    let algorithms = match (&spiffe, algorithms) {
        (None, a) => a,
        (Some(_), a) => {
            let asymmetric = Algorithm::ALL
                .iter()
                .copied()
                .filter(|a| a.family() != portcullis_jose::Family::Hmac)
                .collect::<AlgorithmSet>();
            let set = a.unwrap_or(asymmetric);
            if set
                .iter()
                .any(|a| a.family() == portcullis_jose::Family::Hmac)
            {
                return Err(cx.err(
                    jwks_line,
                    f("algorithms"),
                    "JWT-SVIDs are signed with asymmetric algorithms only",
                ));
            }
            Some(set)
        }
    };
    if let (Some(allowed), JwksSource::Static(keys)) = (algorithms, &jwks.source)
        && keys.algorithms().intersect(allowed).is_empty()
    {
        return Err(cx.err(
            jwks_line,
            f("algorithms"),
            "no key of this provider can verify any of these algorithms",
        ));
    }
    let locations = match from {
        None => vec![TokenLocation::Header {
            name: http::header::AUTHORIZATION,
            prefix: "Bearer ".to_owned(),
        }],
        Some(list) if list.is_empty() => {
            return Err(cx.err(line, f("from"), "must name at least one location"));
        }
        Some(list) => list
            .into_iter()
            .enumerate()
            .map(|(j, l)| {
                validate_location(cx, l.referenced.line(), &f(&format!("from[{j}]")), l.value)
            })
            .collect::<Result<_, _>>()?,
    };
    let dpop = match dpop {
        None => None,
        Some(d) => Some(match d.value.as_str() {
            "allowed" => crate::dpop::DpopMode::Allowed,
            "required" => crate::dpop::DpopMode::Required,
            other => {
                return Err(cx.err(
                    d.referenced.line(),
                    f("dpop"),
                    format!("{other:?} is not allowed or required"),
                ));
            }
        }),
    };
    let mut locations = locations;
    let dpop_location = TokenLocation::Header {
        name: http::header::AUTHORIZATION,
        prefix: "DPoP ".to_owned(),
    };
    if dpop.is_some() && !locations.contains(&dpop_location) {
        locations.push(dpop_location);
    }
    let clock_skew_secs = match clock_skew {
        None => portcullis_jose::DEFAULT_CLOCK_SKEW_SECS,
        Some(s) => {
            let d = parse_duration(&s.value)
                .map_err(|e| cx.err(s.referenced.line(), f("clock_skew"), e))?;
            if d > Duration::from_secs(3600) {
                return Err(cx.err(s.referenced.line(), f("clock_skew"), "more than 1h"));
            }
            d.as_secs() as i64
        }
    };
    let claims_to_headers = claims_to_headers
        .into_iter()
        .enumerate()
        .map(|(j, c)| {
            let l = c.referenced.line();
            let field = f(&format!("claims_to_headers[{j}]"));
            let raw::RawClaimHeader {
                header,
                claim,
                format,
            } = c.value;
            let name = header_name(cx, l, &field, &header)?;
            if claim.is_empty() {
                return Err(cx.err(l, field, "claim must not be empty"));
            }
            let format = match format {
                None => ClaimFormat::Csv,
                Some(fm) => ClaimFormat::from_name(&fm.value).ok_or_else(|| {
                    cx.err(
                        fm.referenced.line(),
                        format!("{field}.format"),
                        format!(
                            "{:?} is not one of {}",
                            fm.value,
                            ClaimFormat::NAMES.join(", ")
                        ),
                    )
                })?,
            };
            Ok((name, Template::claim_as(&claim, format)))
        })
        .collect::<Result<_, _>>()?;
    let login = match login {
        None => None,
        Some(l) => {
            let ll = l.referenced.line();
            if !matches!(jwks.source, JwksSource::Discovery(_)) || issuer.is_none() {
                return Err(cx.err(
                    ll,
                    f("login"),
                    "login needs an issuer and jwks: {discovery: ...} (its endpoints come from discovery)",
                ));
            }
            Some(login::validate_login(
                cx,
                ll,
                &f("login"),
                l.value,
                base_dir,
            )?)
        }
    };
    let introspection = match introspection {
        None => None,
        Some(raw) if issuer_template.is_some() || spiffe.is_some() => {
            return Err(cx.err(
                raw.referenced.line(),
                f("introspection"),
                "introspection needs a plain issuer (no template, not a spiffe provider)",
            ));
        }
        Some(raw) => Some(introspection::validate_introspection(
            cx,
            raw.referenced.line(),
            &f("introspection"),
            raw.value,
            matches!(jwks.source, JwksSource::Discovery(_)),
            base_dir,
        )?),
    };
    Ok(ProviderConfig {
        introspection,
        login,
        name,
        issuer,
        issuer_template,
        audiences,
        jwks,
        algorithms,
        locations,
        clock_skew_secs,
        forward_token: forward_token.unwrap_or(true),
        claims_to_headers,
        require_exp: require_exp.unwrap_or(true),
        typ,
        spiffe,
        dpop,
        deny: deny::compile(cx, &f("deny"), deny)?,
    })
}

/// `issuer` and `tenants`: a plain issuer, or a template with its allow-list.
fn issuer_template(
    cx: &Ctx<'_>,
    line: u64,
    f: &dyn Fn(&str) -> String,
    issuer: Option<Spanned<String>>,
    tenants: Option<Spanned<Vec<String>>>,
) -> Result<(Option<String>, Option<IssuerTemplate>), ConfigError> {
    let Some(issuer) = issuer else {
        return match tenants {
            Some(t) => Err(cx.err(
                t.referenced.line(),
                f("tenants"),
                "needs an issuer template with a {NAME} placeholder",
            )),
            None => Ok((None, None)),
        };
    };
    let iss_line = issuer.referenced.line();
    if !IssuerTemplate::is_template(&issuer.value) {
        if let Some(t) = tenants {
            return Err(cx.err(
                t.referenced.line(),
                f("tenants"),
                "needs an issuer template with a {NAME} placeholder",
            ));
        }
        return Ok((Some(issuer.value), None));
    }
    let tenants = match tenants {
        None => None,
        Some(t) => {
            if t.value.is_empty() || t.value.iter().any(|v| v.is_empty() || v.contains('/')) {
                return Err(cx.err(
                    t.referenced.line(),
                    f("tenants"),
                    "must list at least one value, none empty or holding a '/'",
                ));
            }
            Some(t.value)
        }
    };
    let template = IssuerTemplate::try_new(&issuer.value, tenants)
        .map_err(|e| cx.err(iss_line.max(line), f("issuer"), e))?;
    Ok((Some(issuer.value), Some(template)))
}

fn validate_location(
    cx: &Ctx<'_>,
    line: u64,
    field: &str,
    l: RawLocation,
) -> Result<TokenLocation, ConfigError> {
    let RawLocation {
        header,
        prefix,
        cookie,
        query,
    } = l;
    match (header, cookie, query) {
        (Some(h), None, None) => Ok(TokenLocation::Header {
            name: header_name(cx, line, field, &h)?,
            prefix: prefix.unwrap_or_default(),
        }),
        (None, Some(c), None) if prefix.is_none() && !c.is_empty() => Ok(TokenLocation::Cookie(c)),
        (None, None, Some(q)) if prefix.is_none() && !q.is_empty() => Ok(TokenLocation::Query(q)),
        _ => Err(cx.err(
            line,
            field,
            "exactly one of header (with an optional prefix), cookie or query",
        )),
    }
}

fn validate_jwks(
    cx: &Ctx<'_>,
    line: u64,
    field: &str,
    j: RawJwks,
    base_dir: &Path,
) -> Result<JwksSpec, ConfigError> {
    let RawJwks {
        inline,
        file,
        uri,
        discovery,
        pem,
        refresh,
        min_refresh,
        max_refresh,
        timeout,
    } = j;
    let count = [
        inline.is_some(),
        file.is_some(),
        uri.is_some(),
        discovery.is_some(),
        pem.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if count != 1 {
        return Err(cx.err(
            line,
            field,
            "exactly one of inline, file, uri, discovery or pem",
        ));
    }
    let mut tuning = FetchTuning::default();
    for (value, slot, name) in [
        (refresh, &mut tuning.refresh, "refresh"),
        (min_refresh, &mut tuning.min_refresh, "min_refresh"),
        (max_refresh, &mut tuning.max_refresh, "max_refresh"),
        (timeout, &mut tuning.timeout, "timeout"),
    ] {
        if let Some(v) = value {
            *slot = parse_duration(&v).map_err(|e| cx.err(line, format!("{field}.{name}"), e))?;
            if slot.is_zero() {
                return Err(cx.err(line, format!("{field}.{name}"), "must be more than 0"));
            }
        }
    }
    if tuning.min_refresh > tuning.max_refresh {
        return Err(cx.err(line, format!("{field}.min_refresh"), "is above max_refresh"));
    }
    let mut warnings = Vec::new();
    let source = if let Some(v) = inline {
        let text = match v {
            Value::String(s) => s,
            other => other.to_string(),
        };
        let field = format!("{field}.inline");
        let imported = import_keys(text.as_bytes(), KeyFormat::Json, Secrets::Allow)
            .map_err(|e| cx.err(line, &field, e))?;
        // RFC 7517 §5: a key of a type, curve or algorithm we do not implement, or not
        // for signatures, is ignored (with a warning). A weak or malformed key is the
        // operator's mistake in the config itself: refused, as before.
        for skipped in &imported.skipped {
            let key_field = format!("{field}.keys[{}]", skipped.index);
            if !skipped.reason.is_unsupported() {
                return Err(cx.err(line, key_field, &skipped.reason));
            }
            warnings.push(ConfigWarning {
                file: cx.file.to_owned(),
                line,
                field: key_field,
                problem: match &skipped.kid {
                    Some(kid) => format!("key (kid {kid:?}) ignored: {}", skipped.reason),
                    None => format!("key (no kid) ignored: {}", skipped.reason),
                },
            });
        }
        if imported.keys.is_empty() {
            return Err(match imported.skipped.first() {
                Some(first) => cx.err(
                    line,
                    &field,
                    format!(
                        "holds no usable key ({} ignored; keys[{}]: {})",
                        imported.skipped.len(),
                        first.index,
                        first.reason
                    ),
                ),
                None => cx.err(line, &field, "holds no key"),
            });
        }
        JwksSource::Static(imported.keys)
    } else if let Some(text) = pem {
        let imported = import_keys(text.as_bytes(), KeyFormat::Pem, Secrets::Allow)
            .map_err(|e| cx.err(line, format!("{field}.pem"), e))?;
        JwksSource::Static(imported.keys)
    } else if let Some(path) = file {
        JwksSource::File(base_dir.join(path))
    } else if let Some(u) = uri {
        check_url(cx, line, &format!("{field}.uri"), &u)?;
        JwksSource::Uri(u)
    } else if let Some(u) = discovery {
        check_url(cx, line, &format!("{field}.discovery"), &u)?;
        JwksSource::Discovery(u)
    } else {
        return Err(cx.err(
            line,
            field,
            "exactly one of inline, file, uri, discovery or pem",
        ));
    };
    Ok(JwksSpec {
        source,
        tuning,
        warnings,
    })
}

fn check_url(cx: &Ctx<'_>, line: u64, field: &str, url: &str) -> Result<(), ConfigError> {
    let ok = url
        .parse::<http::Uri>()
        .ok()
        .is_some_and(|u| matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some());
    if ok {
        Ok(())
    } else {
        Err(cx.err(line, field, format!("{url:?} is not an http(s) URL")))
    }
}

fn one_or_many(v: Value) -> Vec<Value> {
    match v {
        Value::Array(items) => items,
        Value::Null => Vec::new(),
        other => vec![other],
    }
}

fn validate_rule(
    cx: &Ctx<'_>,
    i: usize,
    line: u64,
    r: RawRule,
    providers: &[ProviderConfig],
    base_dir: &Path,
    upstreams: &[Arc<UpstreamConfig>],
) -> Result<RuleConfig, ConfigError> {
    let RawRule {
        name,
        match_,
        allow,
        providers: rule_providers,
        claims,
        scopes,
        headers,
        dynamic_metadata,
        mode,
        spiffe_ids,
        peer_spiffe_ids,
        inject,
        upstream,
        login,
        acr_values,
        amr,
        max_age,
        when,
        deny,
    } = r;
    let f = |field: &str| format!("rules[{i}].{field}");
    let spiffe_ids = match spiffe_ids {
        None => Vec::new(),
        Some(list) => spiffe::validate_spiffe_ids(cx, &f("spiffe_ids"), list)?,
    };
    let peer_spiffe_ids = match peer_spiffe_ids {
        None => Vec::new(),
        Some(list) => spiffe::validate_spiffe_ids(cx, &f("peer_spiffe_ids"), list)?,
    };
    let inject = match inject {
        None => None,
        Some(raw) => {
            let l = raw.referenced.line();
            if allow.is_some()
                || rule_providers.is_some()
                || !claims.is_empty()
                || !scopes.is_empty()
                || !spiffe_ids.is_empty()
                || !headers.is_empty()
                || dynamic_metadata.is_some()
            {
                return Err(cx.err(
                    l,
                    f("inject"),
                    "an inject rule needs no inbound token: no allow, providers, claims, scopes, spiffe_ids, headers or dynamic_metadata",
                ));
            }
            let provider_socket = providers.iter().find_map(|p| match &p.spiffe {
                Some(SpiffeConfig {
                    bundle: spiffe::BundleSource::WorkloadApi(s),
                    ..
                }) => Some(s.as_str()),
                _ => None,
            });
            let inject =
                spiffe::validate_inject(cx, l, &f("inject"), raw.value, provider_socket, base_dir)?;
            spiffe::check_verify_with(cx, l, &f("inject"), &inject, providers)?;
            Some(inject)
        }
    };
    if name.is_empty() {
        return Err(cx.err(line, f("name"), "must not be empty"));
    }
    let raw::RawMatch {
        host,
        path,
        methods,
    } = match_;
    let hosts = one_or_many(host.unwrap_or(Value::Null))
        .into_iter()
        .map(|h| match h {
            Value::String(s) => {
                HostPattern::parse(&s).map_err(|e| cx.err(line, f("match.host"), e))
            }
            _ => Err(cx.err(
                line,
                f("match.host"),
                "must be a string or a list of strings",
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let paths = one_or_many(path.unwrap_or(Value::Null))
        .into_iter()
        .map(|p| match p {
            Value::String(s) => {
                PathPattern::parse(&s).map_err(|e| cx.err(line, f("match.path"), e))
            }
            _ => Err(cx.err(
                line,
                f("match.path"),
                "must be a string or a list of strings",
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let methods = methods
        .unwrap_or_default()
        .into_iter()
        .map(|m| {
            let upper = m.to_ascii_uppercase();
            match http::Method::from_bytes(upper.as_bytes()) {
                Ok(method) if !m.is_empty() && m.bytes().all(|b| b.is_ascii_alphabetic()) => {
                    Ok(method)
                }
                _ => Err(cx.err(
                    line,
                    f("match.methods"),
                    format!("{m:?} is not an HTTP method"),
                )),
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    let inject_only = inject.is_some();
    let allow = allow
        .map(|a| {
            raw::RawAllow::from_name(&a.value).ok_or_else(|| {
                cx.err(
                    a.referenced.line(),
                    f("allow"),
                    format!(
                        "{:?} is not one of {}",
                        a.value,
                        raw::RawAllow::NAMES.join(", ")
                    ),
                )
            })
        })
        .transpose()?;
    let access = match allow {
        None if inject_only => Access::Anonymous,
        None | Some(raw::RawAllow::Authenticated) => Access::Authenticated,
        Some(raw::RawAllow::Anonymous) => Access::Anonymous,
        Some(raw::RawAllow::Deny) => Access::Deny,
        Some(raw::RawAllow::Optional) => Access::Optional,
    };
    let provider_idx = match rule_providers {
        None => (0..providers.len()).collect(),
        Some(list) => list
            .into_iter()
            .map(|p| {
                providers
                    .iter()
                    .position(|o| o.name == p.value)
                    .ok_or_else(|| {
                        cx.err(
                            p.referenced.line(),
                            f("providers"),
                            format!("no provider is named {:?}", p.value),
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()?,
    };
    if matches!(access, Access::Authenticated | Access::Optional) && provider_idx.is_empty() {
        return Err(cx.err(
            line,
            f("providers"),
            "the rule needs a token but no provider is configured",
        ));
    }
    let claims = claims
        .into_iter()
        .map(|(k, v)| {
            let values = one_or_many(v);
            if values.is_empty()
                || values
                    .iter()
                    .any(|v| v.is_object() || v.is_array() || v.is_null())
            {
                return Err(cx.err(
                    line,
                    f(&format!("claims.{k}")),
                    "must be a value or a list of values (strings, numbers, booleans)",
                ));
            }
            Ok((k, values))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let headers = headers
        .into_iter()
        .map(|(h, t)| {
            let l = t.referenced.line();
            let name = header_name(cx, l, &f(&format!("headers.{h}")), &h)?;
            let template =
                Template::parse(&t.value).map_err(|e| cx.err(l, f(&format!("headers.{h}")), e))?;
            Ok((name, template))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let upstream = upstream
        .map(|u| {
            upstreams
                .iter()
                .find(|o| o.name == u.value)
                .cloned()
                .ok_or_else(|| {
                    cx.err(
                        u.referenced.line(),
                        f("upstream"),
                        format!("no upstream is named {:?}", u.value),
                    )
                })
        })
        .transpose()?;
    let login = match login {
        None => None,
        Some(l) => {
            let idx = providers
                .iter()
                .position(|p| p.name == l.value)
                .ok_or_else(|| {
                    cx.err(
                        l.referenced.line(),
                        f("login"),
                        format!("no provider is named {:?}", l.value),
                    )
                })?;
            if providers[idx].login.is_none() {
                return Err(cx.err(
                    l.referenced.line(),
                    f("login"),
                    format!("provider {:?} has no login: block", l.value),
                ));
            }
            if access != Access::Authenticated || !provider_idx.contains(&idx) {
                return Err(cx.err(
                    l.referenced.line(),
                    f("login"),
                    "a login rule needs a token (not allow: anonymous/deny) and must accept that provider",
                ));
            }
            Some(idx)
        }
    };
    let step_up = login::validate_step_up(cx, line, &f(""), acr_values, amr, max_age)?;
    let when = when
        .map(|w| {
            Condition::compile(&w.value).map_err(|e| cx.err(w.referenced.line(), f("when"), e))
        })
        .transpose()?;
    Ok(RuleConfig {
        login,
        step_up,
        name,
        hosts,
        paths,
        methods,
        access,
        providers: provider_idx,
        claims,
        scopes,
        headers,
        dynamic_metadata: dynamic_metadata.unwrap_or(true),
        deny: deny::compile(cx, &f("deny"), deny)?,
        mode: match mode {
            None => RuleMode::Enforce,
            Some(m) => match m.value.as_str() {
                "enforce" => RuleMode::Enforce,
                "dry_run" => RuleMode::DryRun,
                other => {
                    return Err(cx.err(
                        m.referenced.line(),
                        f("mode"),
                        format!("{other:?} is not enforce or dry_run"),
                    ));
                }
            },
        },
        spiffe_ids,
        peer_spiffe_ids,
        inject,
        upstream,
        when,
    })
}

#[cfg(test)]
mod tests;
