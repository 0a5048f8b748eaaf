//! Recovering the original request from what each proxy sends to `/verify`.
//!
//! Every proxy names the original request in its own headers, and passes the
//! client's other headers through: Traefik and Caddy overwrite `X-Forwarded-*` but
//! forward a client's `X-Original-*`; NGINX and ingress-nginx set `X-Original-*` but
//! forward a client's `X-Forwarded-*`. So a client can always add the other family.
//! We read every family and, when two of them disagree about the method, path or
//! host, refuse the request: deciding on the client's version would let it pick a
//! public path for a protected one. A header that is present but cannot be read
//! (repeated, empty, not visible ASCII, an `X-Original-URL` that is no URL) is
//! refused too: treating it as absent would decide on a default.
//!
//! The path and host found here are read the canonical way by the engine
//! (`portcullis_policy::canonical`); hosts are compared in that form here.

use std::borrow::Cow;

use http::{HeaderMap, HeaderName, HeaderValue, Method, Request};
use percent_encoding::percent_decode_str;
use portcullis_policy::canonical::{
    InvalidHost, InvalidTarget, canonical_host, split_absolute_url,
};

// Looked up when a refusal is rendered: names built once, not parsed from text.
const X_ORIGINAL_METHOD: HeaderName = HeaderName::from_static("x-original-method");
const X_ORIGINAL_URI: HeaderName = HeaderName::from_static("x-original-uri");
const X_ORIGINAL_URL: HeaderName = HeaderName::from_static("x-original-url");

/// Which proxy family named the original request.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum Via {
    /// No original-request header: the verify request itself.
    Direct,
    /// Envoy's HTTP ext_authz mode (`/verify/<path>`).
    EnvoyHttp,
    /// `X-Forwarded-*` (Traefik, Caddy).
    Forwarded,
    /// `X-Original-*` (NGINX, ingress-nginx), whether or not `X-Forwarded-*` agree:
    /// NGINX turns any answer but 200, 401 and 403 into a 500.
    Nginx,
}

/// The request the proxy asks about, borrowed from the verify request where it can be.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct OriginalRequest<'a> {
    /// Method, upper case.
    pub method: Method,
    /// Host (canonical when it was compared with another source; as sent otherwise).
    pub host: Cow<'a, str>,
    /// Path with query, as sent.
    pub path: Cow<'a, str>,
    /// `claims_NAME=VALUE` requirements from the `/verify` query.
    pub extra_claims: Vec<(String, String)>,
    /// Who named it.
    pub via: Via,
}

/// Why the original request cannot be read one way only.
#[derive(Clone, Debug, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidOriginal {
    /// Two headers name different original requests.
    #[error(transparent)]
    Conflict(#[from] Conflict),
    /// A header that names the original request is sent more than once.
    #[error("{header} is sent more than once")]
    Duplicate {
        /// The header.
        header: &'static str,
    },
    /// A header that names the original request is present but empty.
    #[error("{header} is empty")]
    Empty {
        /// The header.
        header: &'static str,
    },
    /// A host that cannot be read.
    #[error("{header}: {error}")]
    Host {
        /// Where it came from.
        header: &'static str,
        /// Why.
        error: InvalidHost,
    },
    /// The method is not an HTTP token.
    #[error("{header} is not an HTTP method")]
    Method {
        /// The header.
        header: &'static str,
    },
    /// A header that names the original request is not visible ASCII.
    #[error("{header} is not visible ASCII")]
    Unreadable {
        /// The header.
        header: &'static str,
    },
    /// `X-Original-URL` is not an absolute `http(s)` URL.
    #[error("X-Original-URL: {0}")]
    Url(InvalidTarget),
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

/// A header that names the original request, as found in the verify request.
#[derive(Clone, Copy, Debug, Default)]
enum Found<'a> {
    #[default]
    Absent,
    Once(&'a HeaderValue),
    Repeated,
}

/// The headers that name the original request, found in one pass over the map:
/// seven hashed lookups cost more than walking the few headers a proxy sends
/// (`bench/profile --scenarios 1`).
#[derive(Debug, Default)]
struct Named<'a> {
    host: Found<'a>,
    x_forwarded_method: Found<'a>,
    x_forwarded_host: Found<'a>,
    x_forwarded_uri: Found<'a>,
    x_original_method: Found<'a>,
    x_original_uri: Found<'a>,
    x_original_url: Found<'a>,
}

impl<'a> Named<'a> {
    fn read(headers: &'a HeaderMap) -> Named<'a> {
        let mut named = Named::default();
        // Every value of every header: a repeated one is seen as it comes again.
        for (name, value) in headers {
            let slot = match name.as_str() {
                "host" => &mut named.host,
                "x-forwarded-method" => &mut named.x_forwarded_method,
                "x-forwarded-host" => &mut named.x_forwarded_host,
                "x-forwarded-uri" => &mut named.x_forwarded_uri,
                "x-original-method" => &mut named.x_original_method,
                "x-original-uri" => &mut named.x_original_uri,
                "x-original-url" => &mut named.x_original_url,
                _ => continue,
            };
            *slot = match slot {
                Found::Absent => Found::Once(value),
                Found::Once(_) | Found::Repeated => Found::Repeated,
            };
        }
        named
    }
}

/// The one value of a header that names the original request, or `None` when it
/// is absent.
fn header<'a>(found: Found<'a>, label: &'static str) -> Result<Option<&'a str>, InvalidOriginal> {
    let value = match found {
        Found::Absent => return Ok(None),
        Found::Repeated => return Err(InvalidOriginal::Duplicate { header: label }),
        Found::Once(value) => value,
    };
    let text = value
        .to_str()
        .map_err(|_| InvalidOriginal::Unreadable { header: label })?
        .trim();
    if text.is_empty() {
        return Err(InvalidOriginal::Empty { header: label });
    }
    Ok(Some(text))
}

/// Whether NGINX may be the one asking: it sets `X-Original-*`, and only 401 and
/// 403 pass through `auth_request`. Read before anything else so that a refusal
/// gets a status NGINX can pass on.
pub fn nginx_may_be_asking(headers: &HeaderMap) -> bool {
    [&X_ORIGINAL_URI, &X_ORIGINAL_URL, &X_ORIGINAL_METHOD]
        .iter()
        .any(|name| headers.contains_key(*name))
}

fn host_of<'a>(label: &'static str, raw: &'a str) -> Result<Cow<'a, str>, InvalidOriginal> {
    canonical_host(raw).map_err(|error| InvalidOriginal::Host {
        header: label,
        error,
    })
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
/// Two sources disagree about the method, path or host, or one of them is present
/// but cannot be read.
pub fn original_request<B>(req: &Request<B>) -> Result<OriginalRequest<'_>, InvalidOriginal> {
    let named = Named::read(req.headers());
    let uri = req.uri();
    let host_header = match header(named.host, "Host")? {
        Some(h) => Some(h),
        None => uri.authority().map(|a| a.as_str()),
    };
    if let Some(rest) = uri
        .path()
        .strip_prefix("/verify")
        .filter(|rest| rest.starts_with('/'))
    {
        // Envoy's HTTP mode sends the original method and Host itself, with the
        // original path after the prefix. Any X-Forwarded-*/X-Original-* here came
        // from the client (Envoy forwards only what `allowed_headers` lets through,
        // and Emissary lets X-Forwarded-Host through): never let them decide.
        let path = match uri.query() {
            Some(q) => Cow::Owned(format!("{rest}?{q}")),
            None => Cow::Borrowed(rest),
        };
        let host = Cow::Borrowed(host_header.unwrap_or_default());
        return Ok(OriginalRequest {
            method: req.method().clone(),
            host,
            path,
            extra_claims: Vec::new(),
            via: Via::EnvoyHttp,
        });
    }
    let extra_claims = uri.query().map(claim_requirements).unwrap_or_default();
    let original_url = header(named.x_original_url, "X-Original-URL")?
        .map(split_absolute_url)
        .transpose()
        .map_err(InvalidOriginal::Url)?;
    let forwarded_uri = header(named.x_forwarded_uri, "X-Forwarded-Uri")?;
    let original_uri = header(named.x_original_uri, "X-Original-URI")?;
    let forwarded_method = header(named.x_forwarded_method, "X-Forwarded-Method")?;
    let original_method = header(named.x_original_method, "X-Original-Method")?;
    let url_path = original_url.as_ref().map(|(_, target)| *target);
    let url_host = original_url.as_ref().map(|(host, _)| host.as_ref());
    // NGINX may be asking whenever an X-Original-* header is there (a client's copy
    // behind Traefik or Caddy only turns their 400s into 403s): it must get 401 or 403.
    let via = if original_uri.is_some() || url_path.is_some() || original_method.is_some() {
        Via::Nginx
    } else if forwarded_uri.is_some() {
        Via::Forwarded
    } else {
        Via::Direct
    };
    let path = agree(
        "path",
        &[
            ("X-Forwarded-Uri", forwarded_uri),
            ("X-Original-URI", original_uri),
            ("X-Original-URL", url_path),
        ],
        |a, b| a == b,
    )?
    .unwrap_or("/");
    for (label, method) in [
        ("X-Forwarded-Method", forwarded_method),
        ("X-Original-Method", original_method),
    ] {
        if let Some(m) = method
            && Method::from_bytes(m.as_bytes()).is_err()
        {
            return Err(InvalidOriginal::Method { header: label });
        }
    }
    let method = match agree(
        "method",
        &[
            ("X-Forwarded-Method", forwarded_method),
            ("X-Original-Method", original_method),
        ],
        |a, b| a.eq_ignore_ascii_case(b),
    )? {
        Some(m) => Method::from_bytes(m.to_ascii_uppercase().as_bytes()).map_err(|_| {
            InvalidOriginal::Method {
                header: "X-Forwarded-Method",
            }
        })?,
        None => req.method().clone(),
    };
    let forwarded_host = header(named.x_forwarded_host, "X-Forwarded-Host")?
        .map(|h| host_of("X-Forwarded-Host", h))
        .transpose()?;
    // With NGINX and no X-Original-URL, Host is the original host: a client's
    // X-Forwarded-Host must agree with it. Hosts are compared in canonical form; one
    // that is compared with nothing goes on as sent (the engine reads it canonically).
    let host_source = if via == Via::Nginx && forwarded_uri.is_none() && url_host.is_none() {
        host_header
    } else {
        None
    };
    let host_compared = match (host_source, &forwarded_host) {
        (Some(h), Some(_)) => Some(host_of("Host", h)?),
        _ => None,
    };
    agree(
        "host",
        &[
            ("X-Forwarded-Host", forwarded_host.as_deref()),
            ("X-Original-URL", url_host),
            ("Host", host_compared.as_deref().or(host_source)),
        ],
        |a, b| a == b,
    )?;
    // Every source present agrees: take the first, borrowed where it can be.
    let host = match (forwarded_host, original_url) {
        (Some(h), _) => h,
        (None, Some((h, _))) => h,
        (None, None) => Cow::Borrowed(host_header.unwrap_or_default()),
    };
    Ok(OriginalRequest {
        method,
        host,
        path: Cow::Borrowed(path),
        extra_claims,
        via,
    })
}

/// `claims_NAME=VALUE` pairs of the verify URL's query, decoded, sorted by name.
fn claim_requirements(query: &str) -> Vec<(String, String)> {
    let decode = |s: &str| -> String {
        let plus = s.replace('+', " ");
        percent_decode_str(&plus).decode_utf8_lossy().into_owned()
    };
    let mut claims: Vec<(String, String)> = query
        .split('&')
        .filter_map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let claim = name.strip_prefix("claims_").filter(|c| !c.is_empty())?;
            Some((decode(claim), decode(value)))
        })
        .collect();
    claims.sort_by(|a, b| a.0.cmp(&b.0));
    claims
}
