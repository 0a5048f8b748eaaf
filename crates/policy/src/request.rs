//! What a frontend knows about the request it is asked to authorize.

use http::HeaderMap;

/// The original request, as far as the deciding needs it. Borrowed from the frontend.
#[derive(Clone, Copy, Debug)]
pub struct AuthRequest<'a> {
    /// HTTP method.
    pub method: &'a str,
    /// Host (a port is ignored when matching).
    pub host: &'a str,
    /// Path, possibly with a query string (normalized before matching).
    pub path: &'a str,
    /// Request headers.
    pub headers: &'a HeaderMap,
    /// A rule selected by name (Envoy per-route `context_extensions`), bypassing matching.
    pub rule: Option<&'a str>,
    /// Extra per-call claim requirements (`claims_NAME=VALUE` on `/verify`): name, accepted value.
    pub extra_claims: &'a [(String, String)],
}

impl<'a> AuthRequest<'a> {
    /// A request with no rule override and no extra claims.
    pub fn new(method: &'a str, host: &'a str, path: &'a str, headers: &'a HeaderMap) -> Self {
        AuthRequest {
            method,
            host,
            path,
            headers,
            rule: None,
            extra_claims: &[],
        }
    }

    /// The query string, if any.
    pub fn query(&self) -> Option<&'a str> {
        let without_fragment = self.path.split('#').next().unwrap_or("");
        without_fragment.split_once('?').map(|(_, q)| q)
    }
}
