//! `CheckRequest` → what the engine needs: the original request's method, host,
//! path, headers and the rule Envoy's per-route config may select.

use std::collections::HashMap;

use envoy_types::pb::envoy::config::core::v3::HeaderMap as EnvoyHeaderMap;
use envoy_types::pb::envoy::service::auth::v3::attribute_context::Peer as Peer_;
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest};
use http::header::MaxSizeReached;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use percent_encoding::percent_decode_str;
use portcullis_policy::{AuthRequest, Peer};

/// The `context_extensions` key whose value names the rule to apply.
pub(crate) const RULE_EXTENSION: &str = "rule";

/// The original HTTP request of a `CheckRequest`, owned (moved out of the message).
#[derive(Debug)]
pub(crate) struct EnvoyRequest {
    /// HTTP method (`:method`), upper case.
    pub(crate) method: Method,
    /// The method as sent, until every header is read (`:method` may fill it).
    method_text: String,
    /// `Host` / `:authority`.
    pub(crate) host: String,
    /// Path with the query string, undecoded.
    pub(crate) path: String,
    /// The request headers (names lower-cased; pseudo-headers and invalid entries skipped).
    pub(crate) headers: HeaderMap,
    /// The rule named by `context_extensions["rule"]`, if any.
    pub(crate) rule: Option<String>,
    /// The downstream client: `source.address` and `source.certificate`.
    pub(crate) peer: Peer,
}

/// Why a `CheckRequest` cannot be decided.
#[derive(Debug, Eq, PartialEq, thiserror::Error)]
pub(crate) enum InvalidCheckRequest {
    /// A message Envoy always sends for HTTP requests is absent (a network-filter
    /// check or a hand-made request).
    #[error("the CheckRequest has no `{field}`")]
    Missing {
        /// The path of the missing field.
        field: &'static str,
    },
    /// The method is not an HTTP token.
    #[error("the CheckRequest's method is not an HTTP method")]
    Method,
    /// More headers than an `http::HeaderMap` holds: refused rather than truncated.
    #[error("the CheckRequest carries {count} headers, more than a header map holds")]
    TooManyHeaders {
        /// How many headers were sent.
        count: usize,
    },
}

// === impl EnvoyRequest ===

impl EnvoyRequest {
    /// The request as the engine sees it, borrowing from `self`.
    pub(crate) fn auth_request(&self) -> AuthRequest<'_> {
        let mut req = AuthRequest::new(&self.method, &self.host, &self.path, &self.headers);
        req.rule = self.rule.as_deref();
        req.peer = Some(&self.peer);
        // Every claim goes into the dynamic metadata.
        req.wants_claims = true;
        req
    }

    /// Adds one header; pseudo-headers fill method, host and path when Envoy left
    /// those fields empty. Names or values that are not valid HTTP are skipped.
    ///
    /// # Errors
    /// The header map is full.
    fn add_header(&mut self, name: String, value: Vec<u8>) -> Result<(), MaxSizeReached> {
        if let Some(pseudo) = name.strip_prefix(':') {
            let field = match pseudo {
                "method" => &mut self.method_text,
                "authority" => &mut self.host,
                "path" => &mut self.path,
                _ => return Ok(()),
            };
            if field.is_empty()
                && let Ok(value) = String::from_utf8(value)
            {
                *field = value;
            }
            return Ok(());
        }
        // `HeaderName` lower-cases; both conversions take the buffers without copying values.
        let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value))
        else {
            return Ok(());
        };
        self.headers.try_append(name, value).map(|_| ())
    }
}

impl TryFrom<CheckRequest> for EnvoyRequest {
    type Error = InvalidCheckRequest;

    fn try_from(check: CheckRequest) -> Result<Self, Self::Error> {
        let CheckRequest { attributes } = check;
        let AttributeContext {
            // The downstream peer: its address and certificate (mTLS).
            source,
            destination: _,
            request,
            mut context_extensions,
            metadata_context: _,
            route_metadata_context: _,
            tls_session: _,
        } = attributes.ok_or(InvalidCheckRequest::Missing {
            field: "attributes",
        })?;
        let Request { time: _, http } = request.ok_or(InvalidCheckRequest::Missing {
            field: "attributes.request",
        })?;
        let HttpRequest {
            id: _,
            method,
            headers,
            header_map,
            path,
            host,
            // `AuthRequest` has no scheme: no rule matches on it (yet).
            scheme: _,
            // Always empty: the query is part of `path`, and there is no fragment.
            query: _,
            fragment: _,
            size: _,
            protocol: _,
            // Bodies are not forwarded to us unless `with_request_body` is set; unused.
            body: _,
            raw_body: _,
        } = http.ok_or(InvalidCheckRequest::Missing {
            field: "attributes.request.http",
        })?;
        let mut req = EnvoyRequest {
            method: Method::GET,
            method_text: method,
            host,
            path,
            headers: HeaderMap::new(),
            rule: context_extensions.remove(RULE_EXTENSION),
            peer: source.map(peer).unwrap_or_default(),
        };
        fill_headers(&mut req, headers, header_map)?;
        // Rules name methods in upper case; Envoy passes the client's spelling.
        req.method = Method::from_bytes(req.method_text.to_ascii_uppercase().as_bytes())
            .map_err(|_| InvalidCheckRequest::Method)?;
        Ok(req)
    }
}

/// The downstream peer of an `AttributeContext.source`: its socket address, and its
/// certificate (Envoy sends the PEM URL-encoded). A certificate that does not decode
/// to UTF-8 is left out (no rule reads it yet; certificate binding will refuse it).
fn peer(source: Peer_) -> Peer {
    let address = source
        .address
        .and_then(|a| a.address)
        .and_then(|a| match a {
            envoy_types::pb::envoy::config::core::v3::address::Address::SocketAddress(s) => {
                let ip: std::net::IpAddr = s.address.parse().ok()?;
                let port = match s.port_specifier? {
                    envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier::PortValue(p) => u16::try_from(p).ok()?,
                    _ => return None,
                };
                Some(std::net::SocketAddr::new(ip, port))
            }
            _ => None,
        });
    let certificate = (!source.certificate.is_empty())
        .then(|| {
            percent_decode_str(&source.certificate)
                .decode_utf8()
                .ok()
                .map(|c| c.into_owned())
        })
        .flatten();
    // Envoy fills `principal` from the client certificate it verified (the URI
    // SAN first); empty without mTLS.
    let principal = (!source.principal.is_empty()).then_some(source.principal);
    Peer {
        address,
        certificate,
        principal,
    }
}

/// Envoy sends either the merged `headers` map or, with `encode_raw_headers`, the
/// `header_map` list (where values may be in `raw_value`).
fn fill_headers(
    req: &mut EnvoyRequest,
    headers: HashMap<String, String>,
    header_map: Option<EnvoyHeaderMap>,
) -> Result<(), InvalidCheckRequest> {
    let count;
    let added = if headers.is_empty() {
        let Some(EnvoyHeaderMap { headers }) = header_map else {
            return Ok(());
        };
        count = headers.len();
        req.headers.try_reserve(count).and_then(|()| {
            headers.into_iter().try_for_each(|header| {
                let value = if header.raw_value.is_empty() {
                    header.value.into_bytes()
                } else {
                    header.raw_value
                };
                req.add_header(header.key, value)
            })
        })
    } else {
        count = headers.len();
        req.headers.try_reserve(count).and_then(|()| {
            headers
                .into_iter()
                .try_for_each(|(name, value)| req.add_header(name, value.into_bytes()))
        })
    };
    added.map_err(|MaxSizeReached { .. }| InvalidCheckRequest::TooManyHeaders { count })
}

#[cfg(test)]
mod tests;
