//! Fuzzing entry point: arbitrary bytes as a protobuf `CheckRequest`. Must never panic.

use envoy_types::pb::envoy::service::auth::v3::CheckRequest;
use prost::Message as _;

use crate::request::EnvoyRequest;
use crate::response::check_response;

/// Decodes `data` as a `CheckRequest`, maps it to the engine's request, decides it
/// with a fixed engine and builds the `CheckResponse`.
pub fn check_request(data: &[u8]) {
    let Ok(check) = CheckRequest::decode(data) else {
        return;
    };
    let Ok(req) = EnvoyRequest::try_from(check) else {
        return;
    };
    let engine = portcullis_policy::fuzz_logic::fixed_engine();
    let decision = engine.decide(&req.auth_request(), 1_700_000_000);
    let _ = check_response(&decision);
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
    use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest};
    use prost::Message as _;

    #[test]
    fn hostile_inputs_do_not_panic() {
        super::check_request(&[0xff; 64]);
        super::check_request(b"");
        let mut http = HttpRequest {
            method: "GET".into(),
            path: "/admin/../x".into(),
            host: "a.example.com".into(),
            ..HttpRequest::default()
        };
        http.headers
            .insert("authorization".into(), "Bearer a.b.c".into());
        http.headers.insert(":bad name".into(), "\u{0}".into());
        let check = CheckRequest {
            attributes: Some(AttributeContext {
                request: Some(Request {
                    http: Some(http),
                    ..Request::default()
                }),
                ..AttributeContext::default()
            }),
        };
        super::check_request(&check.encode_to_vec());
    }
}
