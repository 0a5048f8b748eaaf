//! Recovering the original request from what each proxy sends to `/verify`.
//!
//! Every proxy names the original request in its own headers, and passes the
//! client's other headers through: Traefik and Caddy overwrite `X-Forwarded-*` but
//! forward a client's `X-Original-*`; NGINX and ingress-nginx set `X-Original-*` but
//! forward a client's `X-Forwarded-*`. So a client can always add the other family.
//! We read every family and, when two of them disagree about the method, path or
//! host, refuse the request: deciding on the client's version would let it pick a
//! public path for a protected one.

use http::header::HOST;
use http::{HeaderMap, HeaderName, Request};

// Looked up on every request: names built once, not parsed from text each time.
const X_FORWARDED_METHOD: HeaderName = HeaderName::from_static("x-forwarded-method");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_URI: HeaderName = HeaderName::from_static("x-forwarded-uri");
const X_ORIGINAL_METHOD: HeaderName = HeaderName::from_static("x-original-method");
const X_ORIGINAL_URI: HeaderName = HeaderName::from_static("x-original-uri");
const X_ORIGINAL_URL: HeaderName = HeaderName::from_static("x-original-url");

/// The request the proxy asks about.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct OriginalRequest {
    /// Method.
    pub method: String,
    /// Host.
    pub host: String,
    /// Path with query.
    pub path: String,
    /// `claims_NAME=VALUE` requirements from the `/verify` query.
    pub extra_claims: Vec<(String, String)>,
}

/// Two headers name different original requests.
#[derive(Clone, Debug, Eq, PartialEq, thiserror::Error)]
#[error("conflicting {what}: {first} says {first_value:?}, {second} says {second_value:?}")]
pub struct Conflict {
    /// `method`, `path` or `host`.
    pub what: &'static str,
    /// The first source.
    pub first: &'static str,
    /// What it says (cut short).
    pub first_value: String,
    /// The second source.
    pub second: &'static str,
    /// What it says (cut short).
    pub second_value: String,
}

fn header<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// The one value all present sources agree on (`eq` decides equality).
fn agree<'a>(
    what: &'static str,
    sources: &[(&'static str, Option<&'a str>)],
    eq: fn(&str, &str) -> bool,
) -> Result<Option<&'a str>, Conflict> {
    let mut found: Option<(&'static str, &'a str)> = None;
    for &(name, value) in sources {
        let Some(value) = value else { continue };
        match found {
            None => found = Some((name, value)),
            Some((first, first_value)) if !eq(first_value, value) => {
                let cut = |s: &str| s.chars().take(128).collect::<String>();
                return Err(Conflict {
                    what,
                    first,
                    first_value: cut(first_value),
                    second: name,
                    second_value: cut(value),
                });
            }
            Some(_) => {}
        }
    }
    Ok(found.map(|(_, v)| v))
}

/// Reads the original request from:
/// - `/verify/<path>` (Envoy HTTP mode appends the original path to its `path_prefix`),
///   with the verify request's own method and Host, and nothing else;
/// - `X-Forwarded-Method`/`-Host`/`-Uri` (Traefik, Caddy);
/// - `X-Original-Method`, `X-Original-URI` or `X-Original-URL` (NGINX, ingress-nginx);
/// - else the verify request itself.
///
/// # Errors
/// Two sources disagree about the method, path or host.
pub fn original_request<B>(req: &Request<B>) -> Result<OriginalRequest, Conflict> {
    let headers = req.headers();
    let uri = req.uri();
    let mut extra_claims = Vec::new();
    let envoy_path = uri
        .path()
        .strip_prefix("/verify")
        .filter(|rest| rest.starts_with('/'))
        .map(|rest| match uri.query() {
            Some(q) => format!("{rest}?{q}"),
            None => rest.to_owned(),
        });
    if envoy_path.is_none()
        && let Some(q) = uri.query()
    {
        for pair in q.split('&') {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            if let Some(claim) = name.strip_prefix("claims_").filter(|c| !c.is_empty()) {
                extra_claims.push((decode(claim), decode(value)));
            }
        }
        extra_claims.sort_by(|a, b| a.0.cmp(&b.0));
    }
    if let Some(path) = envoy_path {
        // Envoy's HTTP mode sends the original method and Host itself, with the
        // original path after the prefix. Any X-Forwarded-*/X-Original-* here came
        // from the client (Envoy forwards only what `allowed_headers` lets through,
        // and Emissary lets X-Forwarded-Host through): never let them decide.
        let host = header(headers, &HOST)
            .or_else(|| uri.authority().map(|a| a.as_str()))
            .unwrap_or_default()
            .to_owned();
        return Ok(OriginalRequest {
            method: req.method().as_str().to_owned(),
            host,
            path,
            extra_claims,
        });
    }
    let original_url = header(headers, &X_ORIGINAL_URL).and_then(|u| u.parse::<http::Uri>().ok());
    let forwarded_uri = header(headers, &X_FORWARDED_URI);
    let original_uri = header(headers, &X_ORIGINAL_URI);
    let url_path = original_url
        .as_ref()
        .and_then(|u| u.path_and_query())
        .map(|pq| pq.as_str());
    // NGINX family: it names the request in X-Original-* and its Host is the original
    // host (examples/nginx sets `Host $host`; ingress-nginx puts the host in X-Original-URL).
    let nginx_family = envoy_path.is_none()
        && forwarded_uri.is_none()
        && (original_uri.is_some() || url_path.is_some());
    let path = agree(
        "path",
        &[
            ("X-Forwarded-Uri", forwarded_uri),
            ("X-Original-URI", original_uri),
            ("X-Original-URL", url_path),
        ],
        |a, b| a == b,
    )?
    .unwrap_or("/")
    .to_owned();
    let method = agree(
        "method",
        &[
            ("X-Forwarded-Method", header(headers, &X_FORWARDED_METHOD)),
            ("X-Original-Method", header(headers, &X_ORIGINAL_METHOD)),
        ],
        |a, b| a.eq_ignore_ascii_case(b),
    )?
    .unwrap_or(req.method().as_str())
    .to_owned();
    let host_header = header(headers, &HOST).or_else(|| uri.authority().map(|a| a.as_str()));
    let url_host = original_url
        .as_ref()
        .and_then(|u| u.authority())
        .map(|a| a.as_str());
    let host = agree(
        "host",
        &[
            ("X-Forwarded-Host", header(headers, &X_FORWARDED_HOST)),
            ("X-Original-URL", url_host),
            // With NGINX and no X-Original-URL, Host is the original host: a client's
            // X-Forwarded-Host must agree with it.
            (
                "Host",
                if nginx_family && url_host.is_none() {
                    host_header
                } else {
                    None
                },
            ),
        ],
        |a, b| a.eq_ignore_ascii_case(b),
    )?
    .or(host_header)
    .unwrap_or_default()
    .to_owned();
    Ok(OriginalRequest {
        method,
        host,
        path,
        extra_claims,
    })
}

fn decode(s: &str) -> String {
    let plus = s.replace('+', " ");
    let bytes = plus.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
