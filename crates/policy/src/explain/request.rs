//! The request an explanation is asked for: a method, a URL, headers and a token
//! (`portcullis explain` flags, or admin `POST /explain`'s JSON body).

use std::collections::BTreeMap;

use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use serde::Deserialize;

use crate::config::TokenLocation;
use crate::{AuthRequest, Engine, Introspected};

use super::Explanation;

/// The largest `POST /explain` body read.
pub const MAX_EXPLAIN_BODY: usize = 64 * 1024;

/// A request to explain. Its token, if any, is placed where each provider looks
/// first (unless the headers already fill that place), and never kept.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExplainRequest {
    /// The method (default `GET`).
    #[serde(default)]
    pub method: Option<String>,
    /// `https://host/path?query`, or a path (the host then comes from `Host`).
    pub url: String,
    /// Request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The token.
    #[serde(default)]
    pub token: Option<String>,
}

/// Why a request cannot be explained (a 400 from the admin API, exit 2 from the CLI).
#[derive(Clone, Debug, Eq, PartialEq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct InvalidExplainRequest {
    /// The member or flag at fault.
    pub field: &'static str,
    /// What is wrong.
    pub problem: String,
}

impl ExplainRequest {
    /// Reads `POST /explain`'s JSON body.
    ///
    /// # Errors
    /// Not a JSON object of `method`, `url`, `headers` (strings) and `token`; too large.
    pub fn from_json(body: &[u8]) -> Result<ExplainRequest, InvalidExplainRequest> {
        if body.len() > MAX_EXPLAIN_BODY {
            return Err(invalid("body", format!("over {MAX_EXPLAIN_BODY} bytes")));
        }
        serde_json::from_slice(body).map_err(|e| {
            // Position and kind only: serde's own message may quote a value (a token).
            let kind = match e.classify() {
                serde_json::error::Category::Data => {
                    "not an object of method, url, headers (strings) and token"
                }
                serde_json::error::Category::Eof => "JSON cut short",
                _ => "not JSON",
            };
            invalid(
                "body",
                format!("{kind} (line {} column {})", e.line(), e.column()),
            )
        })
    }

    /// Explains this request with `engine` at `now` (an opaque token is
    /// explained as not introspected: see [`PreparedExplain`] to introspect it).
    ///
    /// # Errors
    /// A method, URL or header that is not valid HTTP.
    pub fn explain(&self, engine: &Engine, now: i64) -> Result<Explanation, InvalidExplainRequest> {
        Ok(self.prepare(engine)?.explain(engine, now, None))
    }

    /// Reads the method, URL and headers and places the token, for `engine`'s
    /// providers.
    ///
    /// # Errors
    /// A method, URL or header that is not valid HTTP.
    pub fn prepare(&self, engine: &Engine) -> Result<PreparedExplain, InvalidExplainRequest> {
        let method_text = self.method.as_deref().unwrap_or("GET").to_ascii_uppercase();
        let method = Method::from_bytes(method_text.as_bytes())
            .map_err(|_| invalid("method", format!("{method_text:?} is not an HTTP method")))?;
        let mut headers = HeaderMap::new();
        for (name, value) in &self.headers {
            let n = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| invalid("headers", format!("{name:?} is not a header name")))?;
            let v = HeaderValue::from_str(value).map_err(|_| {
                invalid(
                    "headers",
                    format!("the value of {name} is not a header value"),
                )
            })?;
            headers.append(n, v);
        }
        let uri: Uri = self
            .url
            .parse()
            .map_err(|_| invalid("url", format!("{:?} is not a URL", self.url)))?;
        let host = match uri.authority() {
            Some(a) => a.as_str().rsplit('@').next().unwrap_or_default().to_owned(),
            None => headers
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or_default()
                .to_owned(),
        };
        if host.is_empty() {
            return Err(invalid(
                "url",
                "give a full URL (https://host/path) or a Host header",
            ));
        }
        let mut path = uri
            .path_and_query()
            .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned());
        if let Some(token) = self
            .token
            .as_deref()
            .map(without_scheme)
            .filter(|t| !t.is_empty())
        {
            place_token(engine, token, &mut headers, &mut path)?;
        }
        Ok(PreparedExplain {
            method,
            host,
            path,
            headers,
        })
    }
}

/// A request read and ready to explain, once or again with an introspection
/// answer.
#[derive(Debug)]
pub struct PreparedExplain {
    method: Method,
    host: String,
    path: String,
    headers: HeaderMap,
}

impl PreparedExplain {
    /// Explains the request with `engine` at `now`, with `introspected` as the
    /// answer about its opaque token when the caller asked the provider (for the
    /// [`Explanation::introspect`] of a first explanation).
    pub fn explain(
        &self,
        engine: &Engine,
        now: i64,
        introspected: Option<&Introspected>,
    ) -> Explanation {
        let mut req = AuthRequest::new(&self.method, &self.host, &self.path, &self.headers);
        req.introspected = introspected;
        engine.explain(&req, now)
    }
}

/// Puts `token` where each provider looks first, unless the request fills that place.
fn place_token(
    engine: &Engine,
    token: &str,
    headers: &mut HeaderMap,
    path: &mut String,
) -> Result<(), InvalidExplainRequest> {
    let bad = || invalid("token", "not a value a header can carry");
    let mut done: Vec<&TokenLocation> = Vec::new();
    for provider in engine.providers() {
        let Some(loc) = provider.config().locations.first() else {
            continue;
        };
        if done.contains(&loc) {
            continue;
        }
        done.push(loc);
        match loc {
            TokenLocation::Header { name, prefix } => {
                if !headers.contains_key(name) {
                    let v =
                        HeaderValue::from_str(&format!("{prefix}{token}")).map_err(|_| bad())?;
                    headers.insert(name.clone(), v);
                }
            }
            TokenLocation::Cookie(name) => {
                let cookie = format!("{name}={token}");
                let value = match headers
                    .get(http::header::COOKIE)
                    .and_then(|c| c.to_str().ok())
                {
                    Some(existing) => format!("{existing}; {cookie}"),
                    None => cookie,
                };
                let v = HeaderValue::from_str(&value).map_err(|_| bad())?;
                headers.insert(http::header::COOKIE, v);
            }
            TokenLocation::Query(name) => {
                let encoded: String = percent_encoding::utf8_percent_encode(
                    token,
                    percent_encoding::NON_ALPHANUMERIC,
                )
                .to_string();
                path.push(if path.contains('?') { '&' } else { '?' });
                path.push_str(&format!("{name}={encoded}"));
            }
        }
    }
    Ok(())
}

/// The token without a pasted `Bearer ` in front.
fn without_scheme(token: &str) -> &str {
    let t = token.trim();
    match t.get(..7) {
        Some(scheme) if scheme.eq_ignore_ascii_case("bearer ") => t[7..].trim_start(),
        _ => t,
    }
}

fn invalid(field: &'static str, problem: impl Into<String>) -> InvalidExplainRequest {
    InvalidExplainRequest {
        field,
        problem: problem.into(),
    }
}
