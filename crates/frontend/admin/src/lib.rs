//! The admin listener: `/healthz` (process up), `/readyz` (every provider has
//! usable keys), `/metrics` (Prometheus text format).
#![warn(missing_docs)]

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use portcullis_decider::Decider;

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
        "/metrics" => text(
            StatusCode::OK,
            decider.metrics().encode(),
            "text/plain; version=0.0.4; charset=utf-8",
        ),
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
