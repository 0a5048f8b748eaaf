//! What a frontend knows about the request it is asked to authorize.

use std::net::SocketAddr;

use http::{HeaderMap, Method};

/// The original request, as far as the deciding needs it. Borrowed from the frontend.
#[derive(Clone, Copy, Debug)]
pub struct AuthRequest<'a> {
    /// HTTP method (upper case: rules name methods in upper case).
    pub method: &'a Method,
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
    /// Who sent the original request, when the frontend knows (Envoy's
    /// `source`; the proxy listener's own peer).
    pub peer: Option<&'a Peer>,
    /// The browser session the frontend read from the request's cookie (decrypted
    /// or looked up off the pure core), if the request carried one.
    pub session: Option<&'a SessionCredential>,
    /// What the provider said about the request's opaque token (RFC 7662), when
    /// the decider asked it (see [`crate::Deny::introspect`]).
    pub introspected: Option<&'a crate::Introspected>,
    /// Whether the frontend passes every verified claim on (Envoy's dynamic
    /// metadata): an allow then carries the payload's JSON
    /// ([`crate::Allow::claims_json`]).
    pub wants_claims: bool,
}

/// A session cookie, as the frontend found it.
#[derive(Clone, Debug)]
pub enum SessionCredential {
    /// It decrypted (or was found in the store), is unexpired and not ended.
    Valid(VerifiedSession),
    /// It fails: tampered, expired, foreign or ended. `detail` is for logs.
    Invalid {
        /// Why, for logs only.
        detail: String,
    },
}

/// A session that holds: who logged in, at which provider, until when.
#[derive(Clone, Debug)]
pub struct VerifiedSession {
    /// The provider the browser logged in at.
    pub provider: String,
    /// The session's claims (from the ID token, completed from userinfo), as JSON.
    pub claims_json: Vec<u8>,
    /// When the session ends (seconds since the epoch).
    pub expires_at: i64,
}

/// The client of the original request, as the frontend saw it.
#[derive(Clone, Debug, Default, Eq, PartialEq)]
pub struct Peer {
    /// Its address.
    pub address: Option<SocketAddr>,
    /// Its TLS client certificate (PEM), when it presented one.
    pub certificate: Option<String>,
    /// The identity the proxy verified for it without the certificate itself
    /// (Envoy's `source.principal`: the URI SAN, else a DNS SAN or the subject).
    pub principal: Option<String>,
}

impl<'a> AuthRequest<'a> {
    /// A request with no rule override and no extra claims.
    pub fn new(method: &'a Method, host: &'a str, path: &'a str, headers: &'a HeaderMap) -> Self {
        AuthRequest {
            method,
            host,
            path,
            headers,
            rule: None,
            extra_claims: &[],
            removes_headers: true,
            peer: None,
            session: None,
            introspected: None,
            wants_claims: false,
        }
    }

    /// The query string, if any.
    pub fn query(&self) -> Option<&'a str> {
        let without_fragment = self.path.split('#').next().unwrap_or("");
        without_fragment.split_once('?').map(|(_, q)| q)
    }
}
