//! `POST /explain`: the live config's decision for a request, step by step.
//! The body (and the token in it) is read, used and dropped: never logged, never kept.

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Body;
use portcullis_decider::Decider;
use portcullis_policy::explain::{ExplainRequest, MAX_EXPLAIN_BODY};
use serde_json::json;

use crate::json;

/// Answers `POST /explain` with `body`.
pub(crate) async fn explain<B>(decider: &Decider, body: B) -> Response<Full<Bytes>>
where
    B: Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let bytes = match Limited::new(body, MAX_EXPLAIN_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return json(
                StatusCode::BAD_REQUEST,
                &json!({"error": "invalid_request", "detail": format!("the body cannot be read or is over {MAX_EXPLAIN_BODY} bytes")}),
            );
        }
    };
    let request = match ExplainRequest::from_json(&bytes) {
        Ok(r) => r,
        Err(e) => {
            return json(
                StatusCode::BAD_REQUEST,
                &json!({"error": "invalid_request", "detail": e.to_string()}),
            );
        }
    };
    // Through the decider: an opaque token is introspected with the live
    // introspector (and its cache), as `portcullis explain` does.
    match decider.explain(&request).await {
        Ok(explanation) => json(StatusCode::OK, &explanation.to_json()),
        Err(e) => json(
            StatusCode::BAD_REQUEST,
            &json!({"error": "invalid_request", "detail": e.to_string()}),
        ),
    }
}
