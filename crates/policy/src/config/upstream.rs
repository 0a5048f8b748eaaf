//! Proxy mode's part of the config: `listen.proxy_tls`, `upstreams`, a rule's
//! `upstream` and `trusted_proxies`. The raw (serde) shapes live here too, so the
//! shared `raw` module only names them.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::{ConfigError, Ctx, parse_duration};

/// `listen.proxy_tls:` as written.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawProxyTls {
    /// Server certificate chain (PEM).
    pub cert: Option<String>,
    /// Server private key (PEM).
    pub key: Option<String>,
    /// CA certificates (PEM) client certificates are verified against.
    pub client_ca: Option<String>,
    /// `required` (default with `client_ca`) or `optional`.
    #[schemars(with = "Option<crate::schema::ClientAuthWord>")]
    pub client_auth: Option<String>,
    /// Certificate revocation lists (PEM or DER), re-read when they change.
    #[serde(default)]
    pub crl: Vec<String>,
    /// More certificates, chosen by the client's SNI.
    #[serde(default)]
    pub sni: Vec<RawSniCert>,
}

/// One entry of `listen.proxy_tls.sni:` as written.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSniCert {
    /// The server name (SNI) it is served for.
    pub server_name: String,
    /// Certificate chain (PEM).
    pub cert: String,
    /// Private key (PEM).
    pub key: String,
}

/// A certificate served for one SNI name.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct SniCert {
    /// The server name.
    pub server_name: String,
    /// Certificate chain (PEM file).
    pub cert: PathBuf,
    /// Private key (PEM file).
    pub key: PathBuf,
}

/// One entry of `upstreams:` as written.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    /// Unique name, used by rules.
    pub name: String,
    /// `http://` or `https://` base URLs (several: round robin).
    pub urls: Vec<String>,
    /// `auto` (default), `http1` or `h2c`.
    #[schemars(with = "Option<crate::schema::UpstreamProtocolWord>")]
    pub protocol: Option<String>,
    /// TLS to the upstream (`https://`).
    pub tls: Option<RawUpstreamTls>,
    /// Time to connect (default 5s).
    #[schemars(with = "Option<crate::schema::Duration>")]
    pub connect_timeout: Option<String>,
    /// Time to the response head (default 30s).
    #[schemars(with = "Option<crate::schema::Duration>")]
    pub timeout: Option<String>,
    /// A path prefix removed before the URL's base path is put in front.
    pub strip_prefix: Option<String>,
    /// Active health checks of each URL.
    pub health_check: Option<RawHealthCheck>,
    /// Other URLs tried when a connect fails (idempotent requests without a body; default 1).
    pub retries: Option<u32>,
    /// `round_robin` (default) or `least_requests`.
    #[schemars(with = "Option<crate::schema::BalanceWord>")]
    pub balance: Option<String>,
}

/// `upstreams[].health_check:` as written.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawHealthCheck {
    /// The path asked (`GET`, HTTP/1.1); a 2xx answer is healthy.
    pub path: String,
    /// Time between checks (default 10s).
    #[schemars(with = "Option<crate::schema::Duration>")]
    pub interval: Option<String>,
    /// Time one check may take (default 2s).
    #[schemars(with = "Option<crate::schema::Duration>")]
    pub timeout: Option<String>,
    /// Consecutive passes that mark a URL up again (default 2).
    pub healthy_threshold: Option<u32>,
    /// Consecutive failures that mark a URL down (default 3).
    pub unhealthy_threshold: Option<u32>,
}

/// `upstreams[].health_check`: each URL asked `GET path` every `interval`.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct HealthCheck {
    /// The path asked (canonical, may carry a query).
    pub path: String,
    /// Time between checks.
    pub interval: Duration,
    /// Time one check may take.
    pub timeout: Duration,
    /// Consecutive passes that mark a URL up again.
    pub healthy_threshold: u32,
    /// Consecutive failures that mark a URL down.
    pub unhealthy_threshold: u32,
}

/// How an upstream's URLs share the requests.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum Balance {
    /// In turn.
    RoundRobin,
    /// The less busy of two URLs chosen at random (power of two choices).
    LeastRequests,
}

/// `upstreams[].tls:` as written.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawUpstreamTls {
    /// CA certificates (PEM) the upstream's certificate is verified against.
    pub ca: Option<String>,
    /// Client certificate chain (PEM) for mTLS.
    pub cert: Option<String>,
    /// Client private key (PEM) for mTLS.
    pub key: Option<String>,
    /// The name sent in SNI and checked in the upstream's certificate.
    pub server_name: Option<String>,
}

/// Whether a client certificate is asked for or required.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum ClientAuth {
    /// A handshake without a client certificate fails.
    Required,
    /// A client certificate is verified when sent; none is fine.
    Optional,
}

/// `listen.proxy_tls`: TLS on the proxy listener.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct ProxyTls {
    /// Server certificate chain (PEM file).
    pub cert: PathBuf,
    /// Server private key (PEM file).
    pub key: PathBuf,
    /// CA of client certificates, when they are asked for.
    pub client_ca: Option<PathBuf>,
    /// Required or optional (only with `client_ca`).
    pub client_auth: ClientAuth,
    /// Revocation lists, re-read when they change.
    pub crls: Vec<PathBuf>,
    /// Certificates chosen by SNI (`cert`/`key` when none matches).
    pub sni: Vec<SniCert>,
}

/// How requests are sent to an upstream.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum UpstreamProtocol {
    /// h2c for gRPC requests to `http://`, else HTTP/1.1; ALPN for `https://`.
    Auto,
    /// HTTP/1.1 only.
    Http1,
    /// HTTP/2 with prior knowledge (cleartext).
    H2c,
}

/// `upstreams[].tls`: TLS (and mTLS) to an upstream.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct UpstreamTls {
    /// CA file (None: the upstream's certificate cannot be verified, so `https://`
    /// needs it).
    pub ca: Option<PathBuf>,
    /// Client certificate chain and key, for mTLS.
    pub client: Option<(PathBuf, PathBuf)>,
    /// SNI and the name checked (default: the URL's host).
    pub server_name: Option<String>,
}

/// One upstream URL, split.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct UpstreamUrl {
    /// `https://` rather than `http://`.
    pub https: bool,
    /// `host:port` (the port always given: 80/443 by default).
    pub authority: String,
    /// The host alone (for SNI).
    pub host: String,
    /// A path prefix requests are sent under (`""` or `/base`, no trailing `/`).
    pub base_path: String,
}

/// A validated upstream.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct UpstreamConfig {
    /// Name.
    pub name: String,
    /// URLs, round robin.
    pub urls: Vec<UpstreamUrl>,
    /// Protocol.
    pub protocol: UpstreamProtocol,
    /// TLS out.
    pub tls: Option<UpstreamTls>,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Timeout to the response head.
    pub timeout: Duration,
    /// Removed from the front of the path (whole segments) before sending.
    pub strip_prefix: Option<String>,
    /// Active health checks (None: every URL is taken as healthy).
    pub health_check: Option<HealthCheck>,
    /// Further URLs tried after a failed connect, for idempotent requests without a body.
    pub retries: u32,
    /// How URLs are chosen.
    pub balance: Balance,
}

impl UpstreamConfig {
    /// `path` (canonical, with its query) without [`UpstreamConfig::strip_prefix`]
    /// when it starts with it at a segment boundary (`/api` strips `/api` and
    /// `/api/x`, not `/apix`); what is left always starts with `/`.
    pub fn strip<'a>(&self, path: &'a str) -> std::borrow::Cow<'a, str> {
        let Some(prefix) = self.strip_prefix.as_deref() else {
            return path.into();
        };
        match path.strip_prefix(prefix) {
            Some("") => "/".into(),
            Some(rest) if rest.starts_with('?') => format!("/{rest}").into(),
            Some(rest) if rest.starts_with('/') => rest.into(),
            _ => path.into(),
        }
    }
}

/// One CIDR block of `trusted_proxies`.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

/// Why a CIDR does not parse.
#[derive(Clone, Debug, Eq, PartialEq, thiserror::Error)]
#[error("{text:?} is not a CIDR like 10.0.0.0/8 or ::1/128")]
pub struct InvalidCidr {
    /// What was written.
    pub text: String,
}

impl Cidr {
    /// Parses `ADDR/LEN` or a bare address (a single host).
    ///
    /// # Errors
    /// Anything else, host bits set after the prefix included.
    pub fn parse(text: &str) -> Result<Cidr, InvalidCidr> {
        let bad = || InvalidCidr {
            text: text.to_owned(),
        };
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => {
                let addr: IpAddr = a.parse().map_err(|_| bad())?;
                if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) || p.len() > 3 {
                    return Err(bad());
                }
                let prefix: u8 = p.parse().map_err(|_| bad())?;
                (addr, prefix)
            }
            None => {
                let addr: IpAddr = text.parse().map_err(|_| bad())?;
                (addr, if addr.is_ipv4() { 32 } else { 128 })
            }
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(bad());
        }
        let cidr = Cidr { addr, prefix };
        if !cidr.contains(addr) || cidr.network_bits(addr) != bits(addr) {
            return Err(bad());
        }
        Ok(cidr)
    }

    fn network_bits(&self, addr: IpAddr) -> u128 {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let shift = max - u32::from(self.prefix);
        if shift >= 128 {
            0
        } else {
            (bits(addr) >> shift) << shift
        }
    }

    /// Whether `ip` is in the block (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        if ip.is_ipv4() != self.addr.is_ipv4() {
            return false;
        }
        self.network_bits(ip) == self.network_bits(self.addr)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

fn bits(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// Proxy mode's settings that are read per request (and so follow reloads).
#[derive(Clone, Debug, Default)]
pub struct ProxySettings {
    /// Peers whose `X-Forwarded-*`/`Forwarded` are kept (and appended to).
    pub trusted_proxies: Vec<Cidr>,
    /// Every upstream, by name.
    pub upstreams: Vec<Arc<UpstreamConfig>>,
}

impl ProxySettings {
    /// Whether `ip` is a trusted proxy.
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|c| c.contains(ip))
    }
}

pub(super) fn validate_proxy_tls(
    cx: &Ctx<'_>,
    line: u64,
    raw: RawProxyTls,
    base_dir: &Path,
) -> Result<ProxyTls, ConfigError> {
    validate_listener_tls(cx, line, raw, base_dir, "listen.proxy_tls")
}

/// A listener's TLS (`listen.proxy_tls`, `http_tls`, `grpc_tls`, `admin_tls`:
/// `name`), one shape for all.
pub(super) fn validate_listener_tls(
    cx: &Ctx<'_>,
    line: u64,
    raw: RawProxyTls,
    base_dir: &Path,
    prefix: &str,
) -> Result<ProxyTls, ConfigError> {
    let RawProxyTls {
        cert,
        key,
        client_ca,
        client_auth,
        crl,
        sni,
    } = raw;
    let path = |v: Option<String>, field: &str| {
        v.filter(|s| !s.is_empty())
            .map(|s| base_dir.join(s))
            .ok_or_else(|| cx.err(line, format!("{prefix}.{field}"), "is required"))
    };
    let cert = path(cert, "cert")?;
    let key = path(key, "key")?;
    let client_ca = client_ca
        .filter(|s| !s.is_empty())
        .map(|s| base_dir.join(s));
    let client_auth = match client_auth.as_deref() {
        None | Some("required") => ClientAuth::Required,
        Some("optional") => ClientAuth::Optional,
        Some(other) => {
            return Err(cx.err(
                line,
                format!("{prefix}.client_auth"),
                format!("{other:?} is not required or optional"),
            ));
        }
    };
    if client_ca.is_none() && (client_auth_given(client_auth, &crl)) {
        return Err(cx.err(
            line,
            format!("{prefix}.client_ca"),
            "client_auth and crl need a client_ca",
        ));
    }
    let sni = sni
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            let name = s.server_name.trim().to_ascii_lowercase();
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
            {
                return Err(cx.err(
                    line,
                    format!("{prefix}.sni[{i}].server_name"),
                    format!("{:?} is not a DNS name", s.server_name),
                ));
            }
            Ok(SniCert {
                server_name: name,
                cert: base_dir.join(s.cert),
                key: base_dir.join(s.key),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ProxyTls {
        cert,
        key,
        client_ca,
        client_auth,
        crls: crl.into_iter().map(|c| base_dir.join(c)).collect(),
        sni,
    })
}

fn client_auth_given(auth: ClientAuth, crl: &[String]) -> bool {
    auth == ClientAuth::Optional || !crl.is_empty()
}

pub(super) fn validate_trusted_proxies(
    cx: &Ctx<'_>,
    raw: Option<Spanned<Vec<String>>>,
) -> Result<Vec<Cidr>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    let line = raw.referenced.line();
    raw.value
        .iter()
        .enumerate()
        .map(|(i, c)| {
            Cidr::parse(c.trim()).map_err(|e| cx.err(line, format!("trusted_proxies[{i}]"), e))
        })
        .collect()
}

pub(super) fn validate_upstreams(
    cx: &Ctx<'_>,
    raw: Vec<Spanned<RawUpstream>>,
    base_dir: &Path,
) -> Result<Vec<Arc<UpstreamConfig>>, ConfigError> {
    let mut out: Vec<Arc<UpstreamConfig>> = Vec::with_capacity(raw.len());
    for (i, u) in raw.into_iter().enumerate() {
        let line = u.referenced.line();
        let upstream = validate_upstream(cx, i, line, u.value, base_dir)?;
        if out.iter().any(|o| o.name == upstream.name) {
            return Err(cx.err(
                line,
                format!("upstreams[{i}].name"),
                format!("{:?} is used twice", upstream.name),
            ));
        }
        out.push(Arc::new(upstream));
    }
    Ok(out)
}

fn validate_upstream(
    cx: &Ctx<'_>,
    i: usize,
    line: u64,
    raw: RawUpstream,
    base_dir: &Path,
) -> Result<UpstreamConfig, ConfigError> {
    let RawUpstream {
        name,
        urls,
        protocol,
        tls,
        connect_timeout,
        timeout,
        strip_prefix,
        health_check,
        retries,
        balance,
    } = raw;
    let f = |field: &str| format!("upstreams[{i}].{field}");
    if name.is_empty() {
        return Err(cx.err(line, f("name"), "must not be empty"));
    }
    if urls.is_empty() {
        return Err(cx.err(line, f("urls"), "needs at least one URL"));
    }
    let urls = urls
        .iter()
        .map(|u| parse_url(u).map_err(|problem| cx.err(line, f("urls"), problem)))
        .collect::<Result<Vec<_>, _>>()?;
    let protocol = match protocol.as_deref() {
        None | Some("auto") => UpstreamProtocol::Auto,
        Some("http1") => UpstreamProtocol::Http1,
        Some("h2c") => UpstreamProtocol::H2c,
        Some(other) => {
            return Err(cx.err(
                line,
                f("protocol"),
                format!("{other:?} is not auto, http1 or h2c"),
            ));
        }
    };
    let any_https = urls.iter().any(|u| u.https);
    if protocol == UpstreamProtocol::H2c && any_https {
        return Err(cx.err(
            line,
            f("protocol"),
            "h2c is cleartext: use auto for https:// URLs",
        ));
    }
    let tls = match tls {
        None => None,
        Some(t) => {
            let RawUpstreamTls {
                ca,
                cert,
                key,
                server_name,
            } = t;
            let client = match (cert, key) {
                (Some(c), Some(k)) => Some((base_dir.join(c), base_dir.join(k))),
                (None, None) => None,
                _ => {
                    return Err(cx.err(line, f("tls"), "cert and key go together"));
                }
            };
            Some(UpstreamTls {
                ca: ca.map(|c| base_dir.join(c)),
                client,
                server_name: server_name.filter(|s| !s.is_empty()),
            })
        }
    };
    if tls.is_some() && !any_https {
        return Err(cx.err(line, f("tls"), "is for https:// URLs"));
    }
    if any_https && tls.as_ref().is_none_or(|t| t.ca.is_none()) {
        return Err(cx.err(
            line,
            f("tls.ca"),
            "https:// upstreams need the CA their certificate is verified against",
        ));
    }
    let duration = |v: Option<String>, field: &str, default: u64| match v {
        None => Ok(Duration::from_secs(default)),
        Some(t) => match parse_duration(&t) {
            Ok(d) if !d.is_zero() => Ok(d),
            Ok(_) => Err(cx.err(line, f(field), "must be more than zero")),
            Err(e) => Err(cx.err(line, f(field), e)),
        },
    };
    let strip_prefix = match strip_prefix {
        None => None,
        Some(p) => {
            let p = p.trim_end_matches('/').to_owned();
            let canonical =
                crate::canonical::canonical_path(&p, crate::canonical::EscapedSlashes::Reject);
            if !p.starts_with('/') || p.contains('?') || canonical.as_deref() != Ok(p.as_str()) {
                return Err(cx.err(
                    line,
                    f("strip_prefix"),
                    format!("{p:?} is not a canonical path like /api"),
                ));
            }
            Some(p)
        }
    };
    let balance = match balance.as_deref() {
        None | Some("round_robin") => Balance::RoundRobin,
        Some("least_requests") => Balance::LeastRequests,
        Some(other) => {
            return Err(cx.err(
                line,
                f("balance"),
                format!("{other:?} is not round_robin or least_requests"),
            ));
        }
    };
    let health_check = match health_check {
        None => None,
        Some(h) => {
            let path = h.path.trim().to_owned();
            let (p, _) = path.split_once('?').unwrap_or((&path, ""));
            let canonical =
                crate::canonical::canonical_path(p, crate::canonical::EscapedSlashes::Reject);
            if !p.starts_with('/') || canonical.as_deref() != Ok(p) {
                return Err(cx.err(
                    line,
                    f("health_check.path"),
                    format!("{path:?} is not a canonical path like /healthz"),
                ));
            }
            let threshold = |v: Option<u32>, field: &str, default: u32| match v {
                None => Ok(default),
                Some(0) => Err(cx.err(line, f(field), "must be at least 1")),
                Some(n) => Ok(n),
            };
            let check = HealthCheck {
                path,
                interval: duration(h.interval, "health_check.interval", 10)?,
                timeout: duration(h.timeout, "health_check.timeout", 2)?,
                healthy_threshold: threshold(
                    h.healthy_threshold,
                    "health_check.healthy_threshold",
                    2,
                )?,
                unhealthy_threshold: threshold(
                    h.unhealthy_threshold,
                    "health_check.unhealthy_threshold",
                    3,
                )?,
            };
            Some(check)
        }
    };
    Ok(UpstreamConfig {
        health_check,
        retries: retries.unwrap_or(1),
        balance,
        strip_prefix,
        name,
        urls,
        protocol,
        tls,
        connect_timeout: duration(connect_timeout, "connect_timeout", 5)?,
        timeout: duration(timeout, "timeout", 30)?,
    })
}

/// Splits `http(s)://host[:port][/base]`; no user info, query or fragment.
fn parse_url(url: &str) -> Result<UpstreamUrl, String> {
    let bad = |why: &str| format!("{url:?} {why}");
    let (https, rest) = if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else {
        return Err(bad("is not an http:// or https:// URL"));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if authority.is_empty() || authority.contains(['@', '?', '#', ' ']) || path.contains(['?', '#'])
    {
        return Err(bad(
            "must be scheme://host[:port][/path] without user, query or fragment",
        ));
    }
    let uri: http::uri::Authority = authority
        .parse()
        .map_err(|_| bad("does not name a host and port"))?;
    let host = uri.host().trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(bad("does not name a host"));
    }
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let authority = if uri.host().starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    Ok(UpstreamUrl {
        https,
        authority,
        host: host.to_owned(),
        base_path: path.trim_end_matches('/').to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs() {
        let c = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(c.contains("10.1.2.3".parse().unwrap()));
        assert!(c.contains("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!c.contains("11.0.0.1".parse().unwrap()));
        assert!(!c.contains("::1".parse().unwrap()));
        let h = Cidr::parse("127.0.0.1").unwrap();
        assert!(h.contains("127.0.0.1".parse().unwrap()));
        assert!(!h.contains("127.0.0.2".parse().unwrap()));
        let all = Cidr::parse("0.0.0.0/0").unwrap();
        assert!(all.contains("1.2.3.4".parse().unwrap()));
        let v6 = Cidr::parse("fd00::/8").unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        for bad in [
            "10.0.0.1/8",
            "10.0.0.0/33",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "x/8",
            "",
            "::/129",
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
    }

    fn parse(text: &str) -> Result<crate::Config, ConfigError> {
        crate::config::parse(text, "t.yaml", Path::new("/cfg"), &|_| None)
    }

    #[test]
    fn upstream_config() {
        let c = parse(
            "listen: {proxy: 127.0.0.1:0, proxy_tls: {cert: s.pem, key: s.key, client_ca: ca.pem, client_auth: optional, crl: [r.crl], sni: [{server_name: A.test, cert: a.pem, key: a.key}]}}\n\
             trusted_proxies: [10.0.0.0/8]\n\
             upstreams:\n  - {name: app, urls: [http://127.0.0.1:9000], protocol: h2c, timeout: 2s}\n\
             rules:\n  - {name: r, match: {}, allow: anonymous, upstream: app}\n",
        )
        .unwrap();
        let tls = c.listen.proxy_tls().unwrap();
        assert_eq!(tls.client_auth, ClientAuth::Optional);
        assert_eq!(tls.crls, [PathBuf::from("/cfg/r.crl")]);
        assert_eq!(tls.sni[0].server_name, "a.test");
        assert_eq!(tls.sni[0].cert, PathBuf::from("/cfg/a.pem"));
        assert_eq!(c.rules[0].upstream.as_ref().unwrap().name, "app");
        assert_eq!(
            c.rules[0].upstream.as_ref().unwrap().timeout,
            Duration::from_secs(2)
        );
        assert!(c.proxy.is_trusted("10.2.3.4".parse().unwrap()));
        assert!(!c.proxy.is_trusted("127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn upstream_config_errors() {
        for (text, want) in [
            (
                "upstreams:\n  - {name: app, urls: [http://h:1]}\nrules:\n  - name: r\n    allow: anonymous\n    upstream: nope\n",
                "t.yaml:6: rules[0].upstream: no upstream is named \"nope\"",
            ),
            (
                "upstreams:\n  - {name: a, urls: [http://h:1]}\n  - {name: a, urls: [http://h:2]}\n",
                "t.yaml:3: upstreams[1].name",
            ),
            ("upstreams:\n  - {name: a, urls: []}\n", "upstreams[0].urls"),
            (
                "upstreams:\n  - {name: a, urls: [https://h]}\n",
                "upstreams[0].tls.ca",
            ),
            (
                "upstreams:\n  - {name: a, urls: [http://h], protocol: h3}\n",
                "upstreams[0].protocol",
            ),
            ("trusted_proxies: [10.0.0.1/8]\n", "trusted_proxies[0]"),
            (
                "listen: {proxy_tls: {cert: a, key: b}}\n",
                "listen.proxy_tls: needs listen.proxy",
            ),
            (
                "listen: {proxy: 127.0.0.1:0, proxy_tls: {cert: a, key: b, client_auth: optional}}\n",
                "listen.proxy_tls.client_ca",
            ),
            (
                "upstreams:\n  - {name: a, urls: [http://h], balance: random}\n",
                "upstreams[0].balance",
            ),
            (
                "upstreams:\n  - {name: a, urls: [http://h], health_check: {path: /a/../b}}\n",
                "upstreams[0].health_check.path",
            ),
            (
                "upstreams:\n  - {name: a, urls: [http://h], health_check: {path: /h, unhealthy_threshold: 0}}\n",
                "upstreams[0].health_check.unhealthy_threshold",
            ),
            (
                "upstreams:\n  - {name: a, urls: [http://h], health_check: {path: /h, interval: 0s}}\n",
                "upstreams[0].health_check.interval",
            ),
            (
                "upstreams:\n  - {name: a, urls: [http://h], health_check: {interval: 1s}}\n",
                "path",
            ),
            (
                "listen: {proxy: 127.0.0.1:0, proxy_tls: {cert: a, key: b, sni: [{server_name: 'a b', cert: c, key: d}]}}\n",
                "listen.proxy_tls.sni[0].server_name",
            ),
        ] {
            let e = parse(text)
                .err()
                .unwrap_or_else(|| panic!("accepted {text}"));
            assert!(e.to_string().contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn balancing_health_checks_and_retries() {
        let c = parse(
            "upstreams:\n  - {name: a, urls: [http://h]}\n  - {name: b, urls: [http://h, http://i], balance: least_requests, retries: 0, health_check: {path: /healthz?full=1, interval: 250ms, timeout: 1s, healthy_threshold: 1, unhealthy_threshold: 4}}\n",
        )
        .unwrap();
        let (a, b) = (&c.proxy.upstreams[0], &c.proxy.upstreams[1]);
        assert_eq!(
            (a.balance, a.retries, a.health_check.is_none()),
            (Balance::RoundRobin, 1, true)
        );
        assert_eq!((b.balance, b.retries), (Balance::LeastRequests, 0));
        assert_eq!(
            b.health_check,
            Some(HealthCheck {
                path: "/healthz?full=1".to_owned(),
                interval: Duration::from_millis(250),
                timeout: Duration::from_secs(1),
                healthy_threshold: 1,
                unhealthy_threshold: 4,
            })
        );
        let d = parse("upstreams:\n  - {name: a, urls: [http://h], health_check: {path: /h}}\n")
            .unwrap();
        let h = d.proxy.upstreams[0].health_check.clone().unwrap();
        assert_eq!(
            (
                h.interval,
                h.timeout,
                h.healthy_threshold,
                h.unhealthy_threshold
            ),
            (Duration::from_secs(10), Duration::from_secs(2), 2, 3)
        );
    }

    #[test]
    fn strip_prefix() {
        let c =
            parse("upstreams:\n  - {name: a, urls: [http://h/v2], strip_prefix: /api/}\n").unwrap();
        let u = &c.proxy.upstreams[0];
        for (path, want) in [
            ("/api/orders?x=1", "/orders?x=1"),
            ("/api", "/"),
            ("/api?q", "/?q"),
            ("/apix", "/apix"),
            ("/other/api", "/other/api"),
        ] {
            assert_eq!(u.strip(path), want, "{path}");
        }
        for bad in ["api", "/a/../b", "/a?b"] {
            let text =
                format!("upstreams:\n  - {{name: a, urls: [http://h], strip_prefix: {bad:?}}}\n");
            assert!(parse(&text).is_err(), "{bad}");
        }
    }

    #[test]
    fn urls() {
        let u = parse_url("http://127.0.0.1:9000").unwrap();
        assert_eq!(
            (u.https, u.authority.as_str(), u.base_path.as_str()),
            (false, "127.0.0.1:9000", "")
        );
        let u = parse_url("https://app.internal/base/").unwrap();
        assert_eq!(
            (
                u.https,
                u.authority.as_str(),
                u.host.as_str(),
                u.base_path.as_str()
            ),
            (true, "app.internal:443", "app.internal", "/base")
        );
        let u = parse_url("http://[::1]:8080").unwrap();
        assert_eq!(u.authority, "[::1]:8080");
        for bad in [
            "ftp://x",
            "http://",
            "http://u@h",
            "http://h/?q",
            "http://h#f",
            "h:80",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }
}
