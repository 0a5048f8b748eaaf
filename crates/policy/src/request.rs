//! What a frontend knows about the request it is asked to authorize.

use http::HeaderMap;

/// The original request, as far as the deciding needs it. Borrowed from the frontend.
#[derive(Clone, Copy, Debug)]
pub struct AuthRequest<'a> {
    /// HTTP method.
    pub method: &'a str,
    /// Host, as the client sent it (read the canonical way before matching).
    pub host: &'a str,
    /// Path, possibly with a query string, as the client sent it (read the
    /// canonical way before matching: see [`crate::canonical`]).
    pub path: &'a str,
    /// Request headers.
    pub headers: &'a HeaderMap,
    /// A rule selected by name (Envoy per-route `context_extensions`), bypassing matching.
    pub rule: Option<&'a str>,
    /// Extra per-call claim requirements (`claims_NAME=VALUE` on `/verify`): name, accepted value.
    pub extra_claims: &'a [(String, String)],
    /// Whether the proxy removes every header an allow names (Envoy), rather than
    /// only those it is configured to copy (NGINX, Traefik, Caddy). Where it does
    /// not, a client-sent spelling of an identity header (`x_user`) is refused.
    pub removes_headers: bool,
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
            removes_headers: true,
        }
    }

    /// The query string, if any.
    pub fn query(&self) -> Option<&'a str> {
        let without_fragment = self.path.split('#').next().unwrap_or("");
        without_fragment.split_once('?').map(|(_, q)| q)
    }
}
