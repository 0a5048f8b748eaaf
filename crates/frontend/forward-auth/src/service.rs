//! The frontend as a `tower::Service`, built by [`NewForwardAuth`] from the decider:
//! a listener serves it without knowing what it does.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use portcullis_decider::Decider;

use crate::{handle, is_verify_path};

/// Builds the forward-auth service of a listener.
#[derive(Clone, Debug)]
pub struct NewForwardAuth {
    decider: Arc<Decider>,
}

impl NewForwardAuth {
    /// A builder deciding with `decider`.
    pub fn new(decider: Arc<Decider>) -> NewForwardAuth {
        NewForwardAuth { decider }
    }

    /// A service for one listener (cheap: it shares the decider).
    pub fn new_service(&self) -> ForwardAuth {
        ForwardAuth {
            decider: self.decider.clone(),
        }
    }
}

/// Answers `/verify` and `/verify/<path>`; 404 anywhere else. Never fails: every
/// outcome is an HTTP answer.
#[derive(Clone, Debug)]
pub struct ForwardAuth {
    decider: Arc<Decider>,
}

impl<B> tower_service::Service<Request<B>> for ForwardAuth {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let decider = self.decider.clone();
        // The body is never read (a proxy asks with the head alone): drop it now, so
        // the future holds only the head.
        let (head, _body) = req.into_parts();
        let req = Request::from_parts(head, ());
        Box::pin(async move {
            if is_verify_path(req.uri().path()) {
                Ok(handle(&decider, &req).await)
            } else {
                Ok(not_found())
            }
        })
    }
}

fn not_found() -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(b"not found\n")));
    *r.status_mut() = StatusCode::NOT_FOUND;
    r
}
