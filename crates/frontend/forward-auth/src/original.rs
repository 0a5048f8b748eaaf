//! Recovering the original request from what each proxy sends to `/verify`.

use http::{HeaderMap, Request};

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

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// Reads the original request:
/// - `/verify/<path>` (Envoy HTTP mode appends the original path to its `path_prefix`): that path, with the query;
/// - `X-Forwarded-Method`/`-Host`/`-Uri` (Traefik, Caddy);
/// - `X-Original-Method`, `X-Original-URI` or `X-Original-URL` (NGINX, ingress-nginx);
/// - else the verify request itself.
pub fn original_request<B>(req: &Request<B>) -> OriginalRequest {
    let headers = req.headers();
    let uri = req.uri();
    let verify_path = uri.path();
    let mut extra_claims = Vec::new();
    let envoy_path = verify_path
        .strip_prefix("/verify")
        .filter(|rest| rest.starts_with('/'));
    let original_url = header(headers, "x-original-url").and_then(|u| u.parse::<http::Uri>().ok());
    let path = if let Some(rest) = envoy_path {
        match uri.query() {
            Some(q) => format!("{rest}?{q}"),
            None => rest.to_owned(),
        }
    } else {
        if let Some(q) = uri.query() {
            for pair in q.split('&') {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                if let Some(claim) = name.strip_prefix("claims_").filter(|c| !c.is_empty()) {
                    extra_claims.push((decode(claim), decode(value)));
                }
            }
            extra_claims.sort_by(|a, b| a.0.cmp(&b.0));
        }
        header(headers, "x-forwarded-uri")
            .or_else(|| header(headers, "x-original-uri"))
            .map(str::to_owned)
            .or_else(|| {
                original_url
                    .as_ref()
                    .and_then(|u| u.path_and_query())
                    .map(|pq| pq.as_str().to_owned())
            })
            .unwrap_or_else(|| "/".to_owned())
    };
    let method = header(headers, "x-forwarded-method")
        .or_else(|| header(headers, "x-original-method"))
        .unwrap_or_else(|| req.method().as_str())
        .to_owned();
    let host = header(headers, "x-forwarded-host")
        .map(str::to_owned)
        .or_else(|| {
            original_url
                .as_ref()
                .and_then(|u| u.authority())
                .map(|a| a.as_str().to_owned())
        })
        .or_else(|| header(headers, "host").map(str::to_owned))
        .or_else(|| uri.authority().map(|a| a.as_str().to_owned()))
        .unwrap_or_default();
    OriginalRequest {
        method,
        host,
        path,
        extra_claims,
    }
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
