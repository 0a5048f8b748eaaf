use std::collections::HashMap;

use envoy_types::pb::envoy::config::core::v3::{HeaderMap as EnvoyHeaderMap, HeaderValue};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest};

use super::*;

fn check(http: HttpRequest, extensions: &[(&str, &str)]) -> CheckRequest {
    CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(Request {
                time: None,
                http: Some(http),
            }),
            context_extensions: extensions
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ..Default::default()
        }),
    }
}

fn http_request(headers: &[(&str, &str)]) -> HttpRequest {
    HttpRequest {
        method: "POST".to_owned(),
        host: "api.example.com".to_owned(),
        path: "/api/orders?id=7".to_owned(),
        scheme: "https".to_owned(),
        headers: headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        ..Default::default()
    }
}

fn raw(key: &str, value: &str, raw_value: &[u8]) -> HeaderValue {
    HeaderValue {
        key: key.to_owned(),
        value: value.to_owned(),
        raw_value: raw_value.to_vec(),
    }
}

#[test]
fn maps_method_host_path_and_headers() {
    let req = EnvoyRequest::try_from(check(
        http_request(&[
            (":method", "POST"),
            (":path", "/api/orders?id=7"),
            ("authorization", "Bearer abc"),
            ("x-request-id", "r1"),
        ]),
        &[],
    ))
    .unwrap();
    assert_eq!(req.method, "POST");
    assert_eq!(req.host, "api.example.com");
    assert_eq!(req.path, "/api/orders?id=7");
    assert_eq!(req.rule, None);
    assert_eq!(req.headers.len(), 2, "pseudo-headers are not headers");
    assert_eq!(req.headers["authorization"], "Bearer abc");
    let auth = req.auth_request();
    assert_eq!(
        (auth.method.as_str(), auth.host, auth.path, auth.rule),
        ("POST", "api.example.com", "/api/orders?id=7", None)
    );
    assert_eq!(auth.query(), Some("id=7"));
    assert!(auth.extra_claims.is_empty());
}

#[test]
fn selects_rule_from_context_extensions() {
    let req = EnvoyRequest::try_from(check(
        http_request(&[]),
        &[("rule", "health"), ("other", "x")],
    ))
    .unwrap();
    assert_eq!(req.rule.as_deref(), Some("health"));
    assert_eq!(req.auth_request().rule, Some("health"));
}

#[test]
fn lower_cases_names_and_skips_invalid_headers() {
    let req = EnvoyRequest::try_from(check(
        http_request(&[
            ("X-User", "mallory"),
            ("bad name", "v"),
            ("x-bad-value", "a\r\nb"),
            ("x-ok", "fine"),
        ]),
        &[],
    ))
    .unwrap();
    assert_eq!(req.headers.len(), 2);
    assert_eq!(req.headers["x-user"], "mallory");
    assert_eq!(req.headers["x-ok"], "fine");
}

#[test]
fn reads_header_map_when_headers_is_empty() {
    let mut http = http_request(&[]);
    http.header_map = Some(EnvoyHeaderMap {
        headers: vec![
            raw("authorization", "", b"Bearer raw"),
            raw("cookie", "a=b", b""),
            raw("cookie", "", b"session=t"),
            raw(":authority", "", b"ignored.example.com"),
        ],
    });
    let req = EnvoyRequest::try_from(check(http, &[])).unwrap();
    assert_eq!(req.headers["authorization"], "Bearer raw");
    let cookies: Vec<_> = req.headers.get_all("cookie").iter().collect();
    assert_eq!(
        cookies,
        ["a=b", "session=t"],
        "repeated headers stay separate"
    );
    assert_eq!(req.host, "api.example.com", "the host field wins");
}

#[test]
fn prefers_headers_over_header_map() {
    let mut http = http_request(&[("x-from", "headers")]);
    http.header_map = Some(EnvoyHeaderMap {
        headers: vec![raw("x-from", "header_map", b"")],
    });
    let req = EnvoyRequest::try_from(check(http, &[])).unwrap();
    assert_eq!(req.headers.len(), 1);
    assert_eq!(req.headers["x-from"], "headers");
}

#[test]
fn falls_back_to_pseudo_headers_for_empty_fields() {
    let http = HttpRequest {
        header_map: Some(EnvoyHeaderMap {
            headers: vec![
                raw(":method", "", b"GET"),
                raw(":authority", "", b"h.example.com"),
                raw(":path", "", b"/healthz"),
                raw(":scheme", "", b"http"),
            ],
        }),
        ..Default::default()
    };
    let req = EnvoyRequest::try_from(check(http, &[])).unwrap();
    assert_eq!(
        (req.method.as_str(), req.host.as_str(), req.path.as_str()),
        ("GET", "h.example.com", "/healthz")
    );
    assert!(req.headers.is_empty());
}

#[test]
fn refuses_check_request_without_http_attributes() {
    let missing = |c: CheckRequest| EnvoyRequest::try_from(c).unwrap_err();
    assert_eq!(
        missing(CheckRequest { attributes: None }),
        InvalidCheckRequest::Missing {
            field: "attributes"
        }
    );
    assert_eq!(
        missing(CheckRequest {
            attributes: Some(AttributeContext::default())
        }),
        InvalidCheckRequest::Missing {
            field: "attributes.request"
        }
    );
    let mut c = check(HttpRequest::default(), &[]);
    if let Some(r) = c.attributes.as_mut().and_then(|a| a.request.as_mut()) {
        r.http = None;
    }
    assert_eq!(
        missing(c),
        InvalidCheckRequest::Missing {
            field: "attributes.request.http"
        }
    );
}

#[test]
fn refuses_more_headers_than_a_header_map_holds() {
    let headers: HashMap<String, String> = (0..40_000)
        .map(|i| (format!("x-h{i}"), "v".to_owned()))
        .collect();
    let http = HttpRequest {
        headers,
        ..http_request(&[])
    };
    assert_eq!(
        EnvoyRequest::try_from(check(http, &[])).unwrap_err(),
        InvalidCheckRequest::TooManyHeaders { count: 40_000 }
    );
}

/// The downstream peer reaches the request: its address, and its certificate
/// (Envoy URL-encodes the PEM).
#[test]
fn reads_the_peer() {
    use envoy_types::pb::envoy::config::core::v3::address::Address as A;
    use envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier;
    use envoy_types::pb::envoy::config::core::v3::{Address, SocketAddress};
    use envoy_types::pb::envoy::service::auth::v3::attribute_context::Peer as P;
    let mut http = http_request(&[]);
    http.method = "get".to_owned();
    let mut check = check(http, &[]);
    let attributes = check.attributes.as_mut().unwrap();
    attributes.source = Some(P {
        address: Some(Address {
            address: Some(A::SocketAddress(SocketAddress {
                address: "10.1.2.3".to_owned(),
                port_specifier: Some(PortSpecifier::PortValue(4321)),
                ..SocketAddress::default()
            })),
        }),
        certificate: "-----BEGIN%20CERTIFICATE-----%0AMIIB%0A-----END%20CERTIFICATE-----%0A"
            .to_owned(),
        ..P::default()
    });
    let req = EnvoyRequest::try_from(check).unwrap();
    assert_eq!(req.method, http::Method::GET, "upper-cased");
    assert_eq!(req.peer.address, Some("10.1.2.3:4321".parse().unwrap()));
    assert_eq!(
        req.peer.certificate.as_deref(),
        Some("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    );
    assert_eq!(req.auth_request().peer, Some(&req.peer));
}
