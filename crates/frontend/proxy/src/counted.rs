//! The proxy's service as its connection sees it: each request is in flight (for
//! the connection's idle timeout, [`portcullis_conn`]) from its head until its
//! response body is done or dropped, and while shutting down HTTP/1 responses ask
//! the client to close.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use portcullis_conn::{ConnState, InFlight};

use crate::body::ProxyBody;
use crate::forward::Proxy;

/// [`Proxy`] with its connection's bookkeeping.
#[derive(Clone, Debug)]
pub(crate) struct Counted {
    inner: Proxy,
    state: Arc<ConnState>,
    draining: Arc<AtomicBool>,
}

impl Counted {
    pub(crate) fn new(inner: Proxy, state: Arc<ConnState>, draining: Arc<AtomicBool>) -> Counted {
        Counted {
            inner,
            state,
            draining,
        }
    }
}

/// A response body that holds its request in flight until it is done or dropped.
struct Guarded {
    inner: ProxyBody,
    _in_flight: InFlight,
}

// === impl Counted ===

impl tower_service::Service<Request<Incoming>> for Counted {
    type Response = Response<ProxyBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Incoming>) -> Self::Future {
        let http1 = req.version() < http::Version::HTTP_2;
        let in_flight = InFlight::start(&self.state);
        let answer = self.inner.call(req);
        let draining = self.draining.clone();
        Box::pin(async move {
            let mut response = answer.await?;
            if http1 && draining.load(Ordering::Acquire) {
                response.headers_mut().insert(
                    http::header::CONNECTION,
                    http::HeaderValue::from_static("close"),
                );
            }
            Ok(response.map(|inner| {
                Guarded {
                    inner,
                    _in_flight: in_flight,
                }
                .boxed_unsync()
            }))
        })
    }
}

// === impl Guarded ===

impl Body for Guarded {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
