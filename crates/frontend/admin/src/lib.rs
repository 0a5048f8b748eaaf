//! The admin listener: `/healthz` (process up), `/readyz` (every provider has
//! usable keys), `/metrics` (Prometheus text format).
#![warn(missing_docs)]

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use portcullis_decider::{Decider, MetricsFormat};

/// Builds the admin service of a listener.
#[derive(Clone, Debug)]
pub struct NewAdmin {
    decider: Arc<Decider>,
}

impl NewAdmin {
    /// A builder reporting on `decider`.
    pub fn new(decider: Arc<Decider>) -> NewAdmin {
        NewAdmin { decider }
    }

    /// A service for one listener.
    pub fn new_service(&self) -> Admin {
        Admin {
            decider: self.decider.clone(),
        }
    }
}

/// The admin endpoints as a `tower::Service`; answers at once, never fails.
#[derive(Clone, Debug)]
pub struct Admin {
    decider: Arc<Decider>,
}

impl<B> tower_service::Service<Request<B>> for Admin {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        ready(Ok(handle(&self.decider, &req)))
    }
}

/// Answers one admin request.
pub fn handle<B>(decider: &Decider, req: &Request<B>) -> Response<Full<Bytes>> {
    match req.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n".to_owned(), "text/plain"),
        "/readyz" => {
            let engine = decider.engine();
            let waiting: Vec<&str> = engine
                .providers()
                .iter()
                .filter(|p| !p.slot().is_ready())
                .map(|p| p.name())
                .collect();
            if waiting.is_empty() {
                text(StatusCode::OK, "ready\n".to_owned(), "text/plain")
            } else {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("not ready: no keys yet for {}\n", waiting.join(", ")),
                    "text/plain",
                )
            }
        }
        "/metrics" => {
            // 0.0.4 unless the scrape asks for OpenMetrics; each with its own type.
            let accept = req
                .headers()
                .get(http::header::ACCEPT)
                .and_then(|v| v.to_str().ok());
            let format = MetricsFormat::from_accept(accept);
            text(
                StatusCode::OK,
                decider.metrics().encode_as(format),
                format.content_type(),
            )
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "not found\n".to_owned(),
            "text/plain",
        ),
    }
}

fn text(status: StatusCode, body: String, content_type: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}
