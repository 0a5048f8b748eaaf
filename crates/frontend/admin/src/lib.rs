//! The admin listener: `/healthz` (process up), `/readyz` (every provider has
//! usable keys), `/metrics` (Prometheus text format), `POST /explain` (a
//! decision step by step, for the live config), and the admin page at `/`
//! (`/state.json` its data).
#![warn(missing_docs)]

mod explain;
mod page;
mod state;

pub use page::CSP;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
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

impl<B> tower_service::Service<Request<B>> for Admin
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
        Box::pin(async move {
            if req.uri().path() == "/explain" {
                if req.method() != http::Method::POST {
                    let mut r = text(
                        StatusCode::METHOD_NOT_ALLOWED,
                        "POST a JSON object: {\"method\", \"url\", \"headers\", \"token\"}\n"
                            .to_owned(),
                        "text/plain",
                    );
                    r.headers_mut()
                        .insert(http::header::ALLOW, HeaderValue::from_static("POST"));
                    return Ok(r);
                }
                let r = explain::explain(&decider, req.into_body()).await;
                return Ok(page::secured_keep_status(r));
            }
            Ok(handle(&decider, &req))
        })
    }
}

/// Answers one admin request.
pub fn handle<B>(decider: &Decider, req: &Request<B>) -> Response<Full<Bytes>> {
    match req.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n".to_owned(), "text/plain"),
        // Shutting down: load balancers and Kubernetes stop sending first (issue 18).
        "/readyz" if decider.is_draining() => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: shutting down\n".to_owned(),
            "text/plain",
        ),
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
        "/state.json" => page::secured(
            json(
                StatusCode::OK,
                &state::state(&decider.engine(), decider.now()),
            ),
            "application/json",
        ),
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
        // The admin page's files, else nothing.
        path => page::asset(path).unwrap_or_else(not_found),
    }
}

fn not_found() -> Response<Full<Bytes>> {
    text(
        StatusCode::NOT_FOUND,
        "not found\n".to_owned(),
        "text/plain",
    )
}

fn json(status: StatusCode, value: &serde_json::Value) -> Response<Full<Bytes>> {
    text(status, format!("{value}\n"), "application/json")
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
