//! HTTP forward auth: `/verify` for NGINX `auth_request`, ingress-nginx `auth-url`,
//! Traefik `forwardAuth`, Caddy `forward_auth`, and Envoy's HTTP ext_authz mode
//! (`/verify/<original path>`). This crate only translates HTTP to an
//! [`AuthRequest`] and a [`Decision`] back to HTTP.
#![warn(missing_docs)]

// Fuzzing entry points with fixed secrets: never in a release build.
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzz_logic;
mod original;
mod service;

use bytes::Bytes;
use http::header::{
    CACHE_CONTROL, CONTENT_TYPE, HeaderValue, LOCATION, SET_COOKIE, WWW_AUTHENTICATE,
};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use portcullis_decider::{Decider, Frontend};
use portcullis_login::Login;
use portcullis_policy::{AuthRequest, Decision, Deny, DenyReason, DenyStatus};

pub use original::{
    Conflict, InvalidOriginal, OriginalRequest, Via, nginx_may_be_asking, original_request,
};
pub use service::{ForwardAuth, NewForwardAuth};

/// The header Envoy's HTTP ext_authz reads to drop headers from the upstream request.
pub const HEADERS_TO_REMOVE: &str = "x-envoy-auth-headers-to-remove";

/// Whether a path is served by this frontend.
pub fn is_verify_path(path: &str) -> bool {
    path == "/verify" || path.starts_with("/verify/")
}

/// Answers one forward-auth request from `peer`, the connection it came on (its
/// address; over `http_tls`, the client certificate the listener verified). With
/// `login`, the request's session cookie is read (off the pure core) and handed to
/// the decision.
pub async fn handle<B>(
    decider: &Decider,
    login: Option<&Login>,
    peer: Option<&portcullis_policy::Peer>,
    req: &Request<B>,
) -> Response<Full<Bytes>> {
    let (session, renewed) = match login {
        Some(l) => l.read_session_renewing(decider, req.headers()).await,
        None => (None, Vec::new()),
    };
    let (mut decision, nginx) = match original_request(req) {
        Ok(original) => {
            let mut auth = AuthRequest::new(
                &original.method,
                &original.host,
                &original.path,
                req.headers(),
            );
            auth.extra_claims = &original.extra_claims;
            // Only Envoy removes the headers we name (`x-envoy-auth-headers-to-remove`).
            auth.removes_headers = original.via == Via::EnvoyHttp;
            auth.session = session.as_ref();
            auth.peer = peer;
            let decision = decider.decide(&auth, Frontend::ForwardAuth).await;
            (decision, original.via == Via::Nginx)
        }
        Err(invalid) => {
            let auth = AuthRequest::new(req.method(), "", req.uri().path(), req.headers());
            let deny = decider.reject(
                Deny::request_invalid(invalid.to_string()),
                &auth,
                Frontend::ForwardAuth,
            );
            (deny, nginx_may_be_asking(req.headers()))
        }
    };
    if let Some(login) = login {
        login.complete(&mut decision, decider.now());
    }
    let mut response = render(&decision, req.method() == Method::HEAD, nginx);
    // A cookie session refreshed now: its renewed cookie, for the proxy to pass on
    // (Traefik `addAuthCookiesToResponse`, NGINX `auth_request_set` + `add_header`).
    for cookie in renewed {
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(SET_COOKIE, v);
        }
    }
    if let (Some(login), Some(DenyReason::SessionInvalid)) = (login, decision.reason()) {
        for cookie in login.clear_session_cookies() {
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                response.headers_mut().append(SET_COOKIE, v);
            }
        }
    }
    response
}

/// Renders a decision: 200 with identity headers, or 302 (a login redirect), 400,
/// 401 or 403 with `WWW-Authenticate` and the JSON body. When NGINX may be asking
/// (`nginx`), only 401 and 403: NGINX turns any other status into a 500.
pub fn render(decision: &Decision, head: bool, nginx: bool) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    match decision {
        Decision::Allow(allow) => {
            *response.status_mut() = StatusCode::OK;
            let headers = response.headers_mut();
            for (name, value) in &allow.set_headers {
                headers.insert(name.clone(), value.clone());
            }
            if !allow.remove_headers.is_empty() {
                let names: Vec<&str> = allow.remove_headers.iter().map(|h| h.as_str()).collect();
                if let Ok(v) = HeaderValue::from_str(&names.join(",")) {
                    headers.insert(HEADERS_TO_REMOVE, v);
                }
            }
            headers.insert(CACHE_CONTROL, cache_control(allow.cache_max_age));
        }
        Decision::Deny(deny) => {
            *response.status_mut() = match (&deny.redirect, deny.reason.status()) {
                // auth_request passes only 401 and 403: NGINX redirects with
                // `error_page 401` itself (ingress-nginx `auth-signin`).
                (Some(_), DenyStatus::Unauthorized) if nginx => StatusCode::UNAUTHORIZED,
                (Some(_), _) if !nginx => StatusCode::FOUND,
                (_, DenyStatus::Unauthorized) => StatusCode::UNAUTHORIZED,
                (_, DenyStatus::BadRequest) if !nginx => StatusCode::BAD_REQUEST,
                // Proxy mode's own denies (never made for `/verify`).
                (_, DenyStatus::NotFound) if !nginx => StatusCode::NOT_FOUND,
                (_, DenyStatus::BadGateway) if !nginx => StatusCode::BAD_GATEWAY,
                (_, DenyStatus::GatewayTimeout) if !nginx => StatusCode::GATEWAY_TIMEOUT,
                // Introspection unavailable: fail closed (NGINX: 403).
                (_, DenyStatus::ServiceUnavailable) if !nginx => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::FORBIDDEN,
            };
            let headers = response.headers_mut();
            if !nginx
                && let Some(location) = deny
                    .redirect
                    .as_deref()
                    .and_then(|l| HeaderValue::from_str(l).ok())
            {
                headers.insert(LOCATION, location);
            }
            if let Some(v) = deny
                .www_authenticate()
                .and_then(|v| HeaderValue::from_str(&v).ok())
            {
                headers.insert(WWW_AUTHENTICATE, v);
            }
            // The rule's or provider's `deny:` template, else the default JSON body.
            let rendered = deny.response(response.status().as_u16());
            let headers = response.headers_mut();
            for (name, value) in rendered.headers {
                headers.insert(name, value);
            }
            headers.insert(CONTENT_TYPE, rendered.content_type);
            headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            if !head {
                *response.body_mut() = Full::new(Bytes::from(rendered.body));
            }
        }
    }
    response
}

/// `private, max-age=N` (no later than the token's `exp`), or `no-store`. Built without
/// the formatting machinery: it is on every allowed request.
fn cache_control(max_age: Option<u64>) -> HeaderValue {
    let Some(secs) = max_age else {
        return HeaderValue::from_static("no-store");
    };
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(secs);
    let mut value = Vec::with_capacity(17 + digits.len());
    value.extend_from_slice(b"private, max-age=");
    value.extend_from_slice(digits.as_bytes());
    // Visible ASCII by construction; the fallback is never taken.
    HeaderValue::from_maybe_shared(Bytes::from(value))
        .unwrap_or_else(|_| HeaderValue::from_static("no-store"))
}

#[cfg(test)]
mod tests;
