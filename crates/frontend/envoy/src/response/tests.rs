use std::sync::Arc;

use envoy_types::pb::google::protobuf::Struct;
use envoy_types::pb::google::protobuf::value::Kind;
use http::{HeaderName, HeaderValue as HttpHeaderValue};
use portcullis_jose::Claims;
use portcullis_policy::DenyReason as Reason;
use portcullis_policy::Identity;
use prost::Message as _;

use super::*;

fn allow(
    identity: Option<Identity>,
    set: &[(&'static str, &[u8])],
    remove: &[&'static str],
) -> Allow {
    Allow {
        rule: Arc::from("api"),
        identity: identity.map(Arc::new),
        set_headers: set
            .iter()
            .map(|(n, v)| {
                (
                    HeaderName::from_static(n),
                    HttpHeaderValue::from_bytes(v).unwrap(),
                )
            })
            .collect(),
        remove_headers: remove.iter().map(|n| HeaderName::from_static(n)).collect(),
        cache_max_age: Some(60),
        dry_run: None,
        claims_json: None,
        dynamic_metadata: true,
    }
}

/// A deny for `reason`, whose status (derived from the reason) must be `status`.
fn deny(status: u16, reason: Reason) -> Deny {
    let d = Deny::new(reason, "for logs only".to_owned());
    assert_eq!(d.status(), status, "{reason}");
    d
}

fn alice() -> Identity {
    let payload = portcullis_jose::b64::encode(br#"{"iss":"https://idp","sub":"alice"}"#);
    Identity::new(
        Arc::from("corp"),
        Arc::from(format!("e30.{payload}.c2ln")),
        Claims::default(),
        None,
        Vec::new(),
    )
}

fn ok_part(r: &CheckResponse) -> &OkHttpResponse {
    match &r.http_response {
        Some(HttpResponse::OkResponse(ok)) => ok,
        other => panic!("not an OK response: {other:?}"),
    }
}

fn denied_part(r: &CheckResponse) -> &DeniedHttpResponse {
    match &r.http_response {
        Some(HttpResponse::DeniedResponse(denied)) => denied,
        other => panic!("not a denied response: {other:?}"),
    }
}

fn header_pairs(headers: &[HeaderValueOption]) -> Vec<(&str, &str)> {
    headers
        .iter()
        .map(|h| {
            let hv = h.header.as_ref().unwrap();
            (hv.key.as_str(), hv.value.as_str())
        })
        .collect()
}

#[test]
fn allows_with_overwritten_identity_headers_and_metadata() {
    let a = allow(
        Some(alice()),
        &[("x-user", b"alice"), ("x-tenant", b"acme")],
        &["x-groups"],
    );
    let answer = check_response(&Decision::Allow(a));
    let r = &answer.response;
    assert_eq!(r.status.as_ref().unwrap().code, RpcCode::Ok as i32);
    let ok = ok_part(r);
    assert_eq!(
        header_pairs(&ok.headers),
        [("x-user", "alice"), ("x-tenant", "acme")]
    );
    for h in &ok.headers {
        assert_eq!(
            h.append_action,
            i32::from(HeaderAppendAction::OverwriteIfExistsOrAdd)
        );
        #[expect(deprecated, reason = "checks the deprecated field stays unset")]
        let append = &h.append;
        assert!(append.as_ref().is_none_or(|b| !b.value));
        assert!(!h.keep_empty_value);
    }
    assert_eq!(ok.headers_to_remove, ["x-groups"]);
    assert_eq!(r.dynamic_metadata, None, "sent as bytes");
    let meta = Struct::decode(answer.metadata.as_deref().unwrap()).unwrap();
    assert_eq!(
        meta.fields["sub"].kind,
        Some(Kind::StringValue("alice".to_owned()))
    );
    assert_eq!(
        meta.fields["provider"].kind,
        Some(Kind::StringValue("corp".to_owned()))
    );
}

#[test]
fn a_rule_without_dynamic_metadata_answers_the_headers_only() {
    let mut a = allow(Some(alice()), &[("x-user", b"alice")], &["x-groups"]);
    a.dynamic_metadata = false;
    let answer = allowed(&a);
    assert_eq!(answer.metadata, None);
    assert_eq!(answer.response.dynamic_metadata, None);
    let ok = ok_part(&answer.response);
    assert_eq!(header_pairs(&ok.headers), [("x-user", "alice")]);
    assert_eq!(ok.headers_to_remove, ["x-groups"]);
}

#[test]
fn allows_anonymous_with_headers_to_remove_and_no_metadata() {
    let answer = allowed(&allow(None, &[], &["x-user", "x-tenant"]));
    assert_eq!(answer.metadata, None);
    let r = &answer.response;
    assert_eq!(r.status.as_ref().unwrap().code, 0);
    assert_eq!(r.dynamic_metadata, None);
    let ok = ok_part(r);
    assert!(ok.headers.is_empty());
    assert_eq!(ok.headers_to_remove, ["x-user", "x-tenant"]);
}

#[test]
fn allows_non_utf8_header_value_as_raw_value() {
    let r = allowed(&allow(None, &[("x-name", b"caf\xe9")], &[]));
    let h = ok_part(&r.response).headers[0].header.as_ref().unwrap();
    assert_eq!(
        (h.value.as_str(), h.raw_value.as_slice()),
        ("", &b"caf\xe9"[..])
    );
}

#[test]
fn denies_missing_token_with_unauthenticated_401() {
    let answer = check_response(&Decision::Deny(deny(401, Reason::TokenMissing)));
    assert_eq!(answer.metadata, None);
    let r = &answer.response;
    let status = r.status.as_ref().unwrap();
    assert_eq!(status.code, RpcCode::Unauthenticated as i32);
    assert_eq!(status.message, "token_missing");
    assert_eq!(r.dynamic_metadata, None);
    let d = denied_part(r);
    assert_eq!(
        d.status.as_ref().unwrap().code,
        i32::from(HttpStatusCode::Unauthorized)
    );
    assert_eq!(
        header_pairs(&d.headers),
        [
            ("www-authenticate", r#"Bearer realm="portcullis""#),
            ("content-type", "application/json"),
        ]
    );
    assert_eq!(
        d.body,
        r#"{"error":"unauthorized","reason":"token_missing"}"#
    );
    assert!(!d.body.contains("for logs only"));
}

#[test]
fn denies_invalid_token_with_invalid_token_challenge() {
    let r = denied(&deny(401, Reason::TokenExpired));
    let d = denied_part(&r);
    let challenge = header_pairs(&d.headers)[0].1;
    assert!(
        challenge.contains(r#"error="invalid_token""#),
        "{challenge}"
    );
    assert_eq!(
        d.body,
        r#"{"error":"invalid_token","reason":"token_expired"}"#
    );
}

#[test]
fn denies_claim_mismatch_with_permission_denied_403() {
    let r = denied(&deny(403, Reason::ClaimMismatch));
    assert_eq!(
        r.status.as_ref().unwrap().code,
        RpcCode::PermissionDenied as i32
    );
    let d = denied_part(&r);
    assert_eq!(d.status.as_ref().unwrap().code, 403);
    assert_eq!(
        header_pairs(&d.headers),
        [("content-type", "application/json")],
        "no challenge for a claim mismatch"
    );
    assert_eq!(
        d.body,
        r#"{"error":"access_denied","reason":"claim_mismatch"}"#
    );
}

#[test]
fn denies_missing_scope_with_insufficient_scope() {
    let r = denied(&deny(403, Reason::ScopeMissing));
    let d = denied_part(&r);
    assert_eq!(
        header_pairs(&d.headers)[0],
        ("www-authenticate", r#"Bearer error="insufficient_scope""#)
    );
}

/// Issue 10: a request that cannot be read one way only is a 400 where the protocol
/// allows it (Envoy does).
#[test]
fn denies_unreadable_check_request_with_400() {
    let r = denied(&Deny::request_invalid("no attributes".to_owned()));
    assert_eq!(
        r.status.as_ref().unwrap().code,
        RpcCode::InvalidArgument as i32
    );
    let d = denied_part(&r);
    assert_eq!(d.status.as_ref().unwrap().code, 400);
    assert_eq!(
        d.body,
        r#"{"error":"invalid_request","reason":"request_invalid"}"#
    );
}

/// A deny with a redirect (the login flow) is a 302 with `Location`; its gRPC code
/// stays the reason's.
#[test]
fn denies_with_a_redirect_as_302_and_location() {
    let mut d = deny(401, Reason::TokenMissing);
    d.redirect = Some("https://auth.test/oauth2/start?rd=https%3A%2F%2Fapp.test%2F".to_owned());
    let r = denied(&d);
    assert_eq!(
        r.status.as_ref().unwrap().code,
        RpcCode::Unauthenticated as i32
    );
    let part = denied_part(&r);
    assert_eq!(part.status.as_ref().unwrap().code, 302);
    assert!(header_pairs(&part.headers).contains(&(
        "location",
        "https://auth.test/oauth2/start?rd=https%3A%2F%2Fapp.test%2F"
    )));
}
