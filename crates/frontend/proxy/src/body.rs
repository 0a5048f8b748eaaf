//! The one body type the proxy answers with: an upstream's streamed body, or a
//! small fixed one (denies, errors).

use bytes::Bytes;
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;

/// A response body: streamed from the upstream (frames and trailers as they come)
/// or fixed.
pub type ProxyBody = UnsyncBoxBody<Bytes, hyper::Error>;

/// The upstream's body, streamed.
pub(crate) fn streamed(body: hyper::body::Incoming) -> ProxyBody {
    body.boxed_unsync()
}
