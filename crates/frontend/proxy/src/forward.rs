//! The proxy as a `tower::Service`: read the request the canonical way, decide it
//! as `/verify` does, and forward what was decided on.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::{CONNECTION, CONTENT_TYPE, HOST, HeaderValue, SET_COOKIE, UPGRADE};
use http::{Method, Request, Response, StatusCode, Version};
use hyper::body::Incoming;
use portcullis_decider::{Decider, Frontend};
use portcullis_frontend_forward_auth::render;
use portcullis_login::Login;
use portcullis_policy::canonical::canonical_path;
use portcullis_policy::{AuthRequest, Decision, Deny, DenyReason, Peer};

use crate::body::{ProxyBody, streamed};
use crate::headers::{
    REQUEST_ID, Seen, drop_forwarding, request_id, set_forwarding, strip_hop_by_hop, strip_response,
};
use crate::upstream::{UpstreamError, Upstreams};

/// Builds the proxy service of each connection.
#[derive(Clone, Debug)]
pub struct NewProxy {
    decider: Arc<Decider>,
    upstreams: Arc<Upstreams>,
    login: Option<Arc<Login>>,
}

impl NewProxy {
    /// A builder deciding with `decider`.
    pub fn new(decider: Arc<Decider>) -> NewProxy {
        NewProxy {
            decider,
            upstreams: Arc::default(),
            login: None,
        }
    }

    /// Also answers the browser login endpoints (`/oauth2/*`, the session token's
    /// `/.well-known/*`) and reads session cookies, as the `http` listener does.
    pub fn with_login(mut self, login: Option<Arc<Login>>) -> NewProxy {
        self.login = login;
        self
    }

    /// Builds the pools of the upstreams in force, so their health checks run from
    /// the start rather than from each upstream's first request.
    pub fn warm(&self) {
        let engine = self.decider.engine();
        for upstream in &engine.proxy().upstreams {
            if let Err(e) = self.upstreams.pool(upstream) {
                tracing::warn!(upstream = %upstream.name, error = %e, "upstream TLS cannot be set up");
            }
        }
    }

    /// The service of one connection from `peer` (`tls`: it came over TLS).
    pub fn new_service(&self, peer: Peer, tls: bool) -> Proxy {
        Proxy {
            decider: self.decider.clone(),
            upstreams: self.upstreams.clone(),
            login: self.login.clone(),
            peer: Arc::new(peer),
            proto: if tls { "https" } else { "http" },
        }
    }
}

/// Decides each request of one connection and forwards the allowed ones. Never
/// fails: every outcome is an HTTP answer.
#[derive(Clone, Debug)]
pub struct Proxy {
    decider: Arc<Decider>,
    upstreams: Arc<Upstreams>,
    login: Option<Arc<Login>>,
    peer: Arc<Peer>,
    proto: &'static str,
}

impl tower_service::Service<Request<Incoming>> for Proxy {
    type Response = Response<ProxyBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Incoming>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { Ok(this.handle(req).await) })
    }
}

/// The host a request names: `:authority` (HTTP/2, or an absolute-form target)
/// or the one `Host` header; both present and different is ambiguous.
fn request_host<B>(req: &Request<B>) -> Result<String, &'static str> {
    let mut hosts = req.headers().get_all(HOST).iter();
    let header = match (hosts.next(), hosts.next()) {
        (Some(_), Some(_)) => return Err("more than one Host header"),
        (Some(h), None) => Some(h.to_str().map_err(|_| "Host is not visible ASCII")?),
        (None, _) => None,
    };
    let authority = req.uri().authority().map(|a| a.as_str());
    match (authority, header) {
        (Some(a), Some(h)) if !a.eq_ignore_ascii_case(h) => {
            Err("the request target's authority and Host differ")
        }
        (Some(a), _) => Ok(a.to_owned()),
        (None, Some(h)) if !h.is_empty() => Ok(h.to_owned()),
        _ => Err("no Host"),
    }
}

/// Whether the request asks to switch protocols (HTTP/1.1 `Connection: upgrade`
/// with `Upgrade`); `h2c` is never passed on (it is this hop's own business).
fn is_upgrade<B>(req: &Request<B>) -> bool {
    req.version() == Version::HTTP_11
        && req
            .headers()
            .get_all(CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
        && req
            .headers()
            .get(UPGRADE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| !v.trim().eq_ignore_ascii_case("h2c"))
}

fn is_grpc<B>(req: &Request<B>) -> bool {
    req.headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

impl Proxy {
    async fn handle(&self, mut req: Request<Incoming>) -> Response<ProxyBody> {
        let head = req.method() == Method::HEAD;
        let id = request_id(req.headers());
        // The decision's log and the upstream see the same id.
        req.headers_mut().insert(REQUEST_ID, id.clone());
        let engine = self.decider.engine();
        if let Some(login) = &self.login
            && Login::is_login_path(req.uri().path())
        {
            return self.login_endpoint(login, req, &id).await;
        }
        // The scheme of the original URL (login redirects) is the one this proxy
        // saw, unless a trusted proxy in front says otherwise.
        let trusted = self
            .peer
            .address
            .is_some_and(|a| engine.proxy().is_trusted(a.ip()));
        if !trusted {
            drop_forwarding(req.headers_mut());
        }
        if !trusted || !req.headers().contains_key("x-forwarded-proto") {
            req.headers_mut()
                .insert("x-forwarded-proto", HeaderValue::from_static(self.proto));
        }
        let (session, renewed) = match &self.login {
            Some(l) => l.read_session_renewing(&self.decider, req.headers()).await,
            None => (None, Vec::new()),
        };
        let target = req
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        // A reverse proxy, not a forward one: a tunnel to wherever the client names
        // is never opened, whatever the decision would say about `/`.
        let read = if req.method() == Method::CONNECT {
            Err("CONNECT is not served here (a reverse proxy, not a forward one)")
        } else {
            request_host(&req)
        };
        let read = read.and_then(|host| {
            canonical_path(&target, engine.reading().escaped_slashes)
                .map(|p| {
                    // The canonical path, and the query as sent (checked by the reader).
                    let mut forwarded = p.into_owned();
                    if let Some((_, query)) = target.split_once('?') {
                        forwarded.push('?');
                        forwarded.push_str(query);
                    }
                    (host, forwarded)
                })
                .map_err(|_| "the path cannot be read one way only")
        });
        let (host, path) = match read {
            Ok(r) => r,
            Err(why) => {
                let mut auth = AuthRequest::new(req.method(), "", req.uri().path(), req.headers());
                auth.peer = Some(&self.peer);
                let deny = self.decider.reject(
                    Deny::request_invalid(why.to_owned()),
                    &auth,
                    Frontend::Proxy,
                );
                return answer(&deny, head, &id);
            }
        };
        let mut auth = AuthRequest::new(req.method(), &host, &path, req.headers());
        auth.peer = Some(&self.peer);
        auth.session = session.as_ref();
        let mut decision = self.decider.decide(&auth, Frontend::Proxy).await;
        if let Some(login) = &self.login {
            login.complete(&mut decision, self.decider.now());
        }
        let allow = match decision {
            Decision::Allow(allow) => allow,
            deny @ Decision::Deny(_) => {
                let mut resp = answer(&deny, head, &id);
                if let (Some(login), Some(DenyReason::SessionInvalid)) =
                    (&self.login, deny.reason())
                {
                    for cookie in login.clear_session_cookies() {
                        if let Ok(v) = HeaderValue::from_str(&cookie) {
                            resp.headers_mut().append(SET_COOKIE, v);
                        }
                    }
                }
                return resp;
            }
        };
        let Some(upstream) = engine.rule_upstream(&allow.rule) else {
            tracing::warn!(rule = %allow.rule, request_id = ?id, reason = "no_upstream", "allowed, but the rule names no upstream");
            return fail(DenyReason::NoUpstream, "no upstream".to_owned(), head, &id);
        };
        let pool = match self.upstreams.pool(upstream) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(upstream = %upstream.name, error = %e, request_id = ?id, "upstream TLS cannot be set up");
                return fail(DenyReason::UpstreamUnavailable, e.to_string(), head, &id);
            }
        };
        let upgrade = is_upgrade(&req);
        let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
        let route = pool.route(is_grpc(&req), upgrade);
        let (mut parts, body) = req.into_parts();
        let headers = &mut parts.headers;
        strip_hop_by_hop(headers, upgrade);
        // Forwarding headers first, identity last: an identity header named like a
        // forwarding one (`x-forwarded-user`) is the decision's, never dropped here.
        set_forwarding(
            headers,
            &Seen {
                peer: self
                    .peer
                    .address
                    .unwrap_or_else(|| ([0, 0, 0, 0], 0).into()),
                trusted: self
                    .peer
                    .address
                    .is_some_and(|a| engine.proxy().is_trusted(a.ip())),
                proto: self.proto,
                host: &host,
            },
        );
        for name in &allow.remove_headers {
            headers.remove(name);
        }
        if let Some(login) = &self.login {
            login.remove_own_cookies(headers);
        }
        for (name, value) in &allow.set_headers {
            headers.insert(name.clone(), value.clone());
        }
        headers.insert(REQUEST_ID, id.clone());
        if let Ok(h) = HeaderValue::from_str(&host) {
            headers.insert(HOST, h);
        }
        // What was decided on is what is sent: the canonical target.
        parts.uri = match path.parse() {
            Ok(uri) => uri,
            Err(_) => {
                return fail(
                    DenyReason::RequestInvalid,
                    "canonical path is not a URI".to_owned(),
                    head,
                    &id,
                );
            }
        };
        let sent = pool.send(Request::from_parts(parts, body), route).await;
        let mut resp = match sent {
            Ok(r) => r,
            Err(e) => {
                let reason = match &e {
                    UpstreamError::Timeout { .. } => DenyReason::UpstreamTimeout,
                    // The client's own body broke off or was malformed (a bare-LF chunk):
                    // its fault, not the upstream's.
                    UpstreamError::Unavailable { source, .. } if client_body_failed(source) => {
                        DenyReason::RequestInvalid
                    }
                    UpstreamError::Unavailable { .. }
                    | UpstreamError::Uri { .. }
                    | UpstreamError::NoHealthy { .. } => DenyReason::UpstreamUnavailable,
                };
                tracing::warn!(upstream = pool.name(), rule = %allow.rule, request_id = ?id, reason = reason.as_str(), error = %e, "upstream failed");
                return fail(reason, e.to_string(), head, &id);
            }
        };
        let switching = resp.status() == StatusCode::SWITCHING_PROTOCOLS;
        strip_response(resp.headers_mut(), switching && upgrade);
        // A cookie session refreshed for this request: the browser gets its renewed cookie.
        for cookie in renewed {
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                resp.headers_mut().append(SET_COOKIE, v);
            }
        }
        if switching && let Some(client) = client_upgrade {
            let upstream_side = hyper::upgrade::on(&mut resp);
            crate::tunnel::spawn(
                client,
                upstream_side,
                id.to_str().unwrap_or_default().to_owned(),
            );
        }
        resp.headers_mut().entry(REQUEST_ID).or_insert(id);
        resp.map(streamed)
    }
}

/// Whether sending failed because the client's request body could not be read.
fn client_body_failed(e: &hyper_util::client::legacy::Error) -> bool {
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        if c.downcast_ref::<hyper::Error>()
            .is_some_and(|h| h.is_user() && !h.is_canceled())
        {
            return true;
        }
        cause = c.source();
    }
    false
}

/// The largest body a login endpoint reads (a back-channel logout token).
const LOGIN_BODY_LIMIT: usize = 64 * 1024;

impl Proxy {
    /// A login endpoint, answered here (never forwarded); only these read a body.
    async fn login_endpoint(
        &self,
        login: &Login,
        req: Request<Incoming>,
        id: &HeaderValue,
    ) -> Response<ProxyBody> {
        use http_body_util::BodyExt as _;
        let (head, body) = req.into_parts();
        let body = match http_body_util::Limited::new(body, LOGIN_BODY_LIMIT)
            .collect()
            .await
        {
            Ok(collected) => collected.to_bytes(),
            Err(_) => {
                return fail(
                    DenyReason::RequestInvalid,
                    "the body is too large".to_owned(),
                    false,
                    id,
                );
            }
        };
        let mut resp = login
            .handle(&self.decider, Request::from_parts(head, body))
            .await
            .map(|b| b.map_err(|never| match never {}).boxed_unsync());
        resp.headers_mut().insert(REQUEST_ID, id.clone());
        resp
    }
}

/// A decision's deny, rendered as `/verify` renders it.
fn answer(decision: &Decision, head: bool, id: &HeaderValue) -> Response<ProxyBody> {
    let mut resp = render(decision, head, false).map(|b| {
        use http_body_util::BodyExt as _;
        b.map_err(|never| match never {}).boxed_unsync()
    });
    resp.headers_mut().insert(REQUEST_ID, id.clone());
    resp
}

/// A deny of proxy mode's own (no upstream, upstream failures), with the JSON body.
fn fail(reason: DenyReason, detail: String, head: bool, id: &HeaderValue) -> Response<ProxyBody> {
    answer(&Decision::Deny(Deny::new(reason, detail)), head, id)
}
