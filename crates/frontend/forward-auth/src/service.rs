//! The frontend as a `tower::Service`, built by [`NewForwardAuth`] from the decider:
//! a listener serves it without knowing what it does.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use portcullis_decider::Decider;
use portcullis_login::Login;
use portcullis_policy::Peer;

use crate::{handle, is_verify_path};

/// Builds the forward-auth service of a listener.
#[derive(Clone, Debug)]
pub struct NewForwardAuth {
    decider: Arc<Decider>,
    login: Option<Arc<Login>>,
}

impl NewForwardAuth {
    /// A builder deciding with `decider`.
    pub fn new(decider: Arc<Decider>) -> NewForwardAuth {
        NewForwardAuth {
            decider,
            login: None,
        }
    }

    /// Also answers the browser login endpoints, and reads session cookies.
    #[must_use]
    pub fn with_login(mut self, login: Option<Arc<Login>>) -> NewForwardAuth {
        self.login = login;
        self
    }

    /// The service of one connection from `peer` (cheap: it shares the decider).
    /// The peer is the connection's, so it is held here once rather than put in
    /// each request's extensions (an allocation per request).
    pub fn new_service(&self, peer: Peer) -> ForwardAuth {
        ForwardAuth {
            decider: self.decider.clone(),
            login: self.login.clone(),
            peer: Arc::new(peer),
        }
    }
}

/// Answers `/verify` and `/verify/<path>`; 404 anywhere else. Never fails: every
/// outcome is an HTTP answer.
#[derive(Clone, Debug)]
pub struct ForwardAuth {
    decider: Arc<Decider>,
    login: Option<Arc<Login>>,
    /// The connection's peer (hyper clones the service for each request: an `Arc`).
    peer: Arc<Peer>,
}

/// The largest body a login endpoint reads (a back-channel logout token).
const LOGIN_BODY_LIMIT: usize = 64 * 1024;

impl<B> tower_service::Service<Request<B>> for ForwardAuth
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let decider = self.decider.clone();
        let login = self.login.clone();
        if let Some(login) = login.clone()
            && Login::is_login_path(req.uri().path())
        {
            // Only the login endpoints read a body (a back-channel logout token).
            let (head, body) = req.into_parts();
            return Box::pin(async move {
                let body = match Limited::new(body, LOGIN_BODY_LIMIT).collect().await {
                    Ok(collected) => collected.to_bytes(),
                    Err(_) => return Ok(too_large()),
                };
                Ok(login
                    .handle(&decider, Request::from_parts(head, body))
                    .await)
            });
        }
        // The body is never read (a proxy asks with the head alone): drop it now, so
        // the future holds only the head.
        let (head, _body) = req.into_parts();
        let req = Request::from_parts(head, ());
        let peer = self.peer.clone();
        Box::pin(async move {
            if is_verify_path(req.uri().path()) {
                Ok(handle(&decider, login.as_deref(), Some(&peer), &req).await)
            } else {
                Ok(not_found())
            }
        })
    }
}

fn too_large() -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(
        br#"{"error":"invalid_request","reason":"request_invalid"}"#,
    )));
    *r.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
    r
}

fn not_found() -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(b"not found\n")));
    *r.status_mut() = StatusCode::NOT_FOUND;
    r
}
