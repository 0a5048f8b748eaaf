use http::Request;

use super::*;

fn req(uri: &str, headers: &[(&str, &str)]) -> Request<()> {
    let mut b = Request::builder().uri(uri).method("GET");
    for (n, v) in headers {
        b = b.header(*n, *v);
    }
    b.body(()).unwrap()
}

fn original(uri: &str, headers: &[(&str, &str)]) -> OriginalRequest {
    original_request(&req(uri, headers)).unwrap()
}

#[test]
fn reads_traefik_and_caddy_headers() {
    let o = original(
        "/verify",
        &[
            ("host", "auth:8080"),
            ("x-forwarded-method", "POST"),
            ("x-forwarded-host", "api.example.com"),
            ("x-forwarded-uri", "/admin/x?y=1"),
        ],
    );
    assert_eq!(
        (o.method.as_str(), o.host.as_str(), o.path.as_str()),
        ("POST", "api.example.com", "/admin/x?y=1")
    );
}

#[test]
fn reads_nginx_headers() {
    let o = original(
        "/verify",
        &[
            ("host", "api.example.com"),
            ("x-original-method", "DELETE"),
            ("x-original-uri", "/a/b"),
        ],
    );
    assert_eq!(
        (o.method.as_str(), o.host.as_str(), o.path.as_str()),
        ("DELETE", "api.example.com", "/a/b")
    );
    let o = original(
        "/verify",
        &[
            ("host", "auth"),
            ("x-original-url", "https://shop.example.com/cart?id=3"),
        ],
    );
    assert_eq!(
        (o.host.as_str(), o.path.as_str()),
        ("shop.example.com", "/cart?id=3")
    );
}

#[test]
fn reads_envoy_http_mode_path() {
    let o = original("/verify/api/items?x=1", &[("host", "api.example.com")]);
    assert_eq!(
        (o.host.as_str(), o.path.as_str()),
        ("api.example.com", "/api/items?x=1")
    );
    assert!(o.extra_claims.is_empty());
    assert!(
        is_verify_path("/verify/x") && is_verify_path("/verify") && !is_verify_path("/verifyx")
    );
}

#[test]
fn reads_claim_requirements() {
    let o = original(
        "/verify?claims_group=developers&claims_group=admins&other=1",
        &[],
    );
    assert_eq!(
        o.extra_claims,
        vec![
            ("group".to_owned(), "developers".to_owned()),
            ("group".to_owned(), "admins".to_owned())
        ]
    );
    assert_eq!(o.path, "/");
}

#[test]
fn refuses_a_client_sent_family_that_contradicts_the_proxy() {
    // ingress-nginx sets X-Original-URL; a client adds X-Forwarded-Uri naming a public path.
    let conflict = original_request(&req(
        "/verify",
        &[
            ("x-original-url", "https://api.example.com/api/items"),
            ("x-forwarded-uri", "/public/forged"),
        ],
    ))
    .unwrap_err();
    assert_eq!(conflict.what, "path");
    // ... or X-Forwarded-Host naming an anonymous host.
    let conflict = original_request(&req(
        "/verify",
        &[
            ("x-original-url", "https://api.example.com/api/items"),
            ("x-forwarded-host", "anonymous.invalid"),
        ],
    ))
    .unwrap_err();
    assert_eq!(conflict.what, "host");
    // Plain NGINX: Host is the original host; a client's X-Forwarded-Host must agree.
    let conflict = original_request(&req(
        "/verify",
        &[
            ("host", "api.example.com"),
            ("x-original-uri", "/api"),
            ("x-forwarded-host", "anonymous.invalid"),
        ],
    ))
    .unwrap_err();
    assert_eq!(conflict.what, "host");
    // Traefik sets X-Forwarded-*; a client adds X-Original-URI.
    let conflict = original_request(&req(
        "/verify",
        &[
            ("x-forwarded-uri", "/api/items"),
            ("x-original-uri", "/public/x"),
        ],
    ))
    .unwrap_err();
    assert_eq!(conflict.what, "path");
    let conflict = original_request(&req(
        "/verify",
        &[("x-forwarded-method", "POST"), ("x-original-method", "GET")],
    ))
    .unwrap_err();
    assert_eq!(conflict.what, "method");
    // Envoy HTTP mode: the verify request itself is the original; client-sent
    // X-Forwarded-*/X-Original-* are ignored, whatever they say.
    let o = original(
        "/verify/api",
        &[
            ("host", "api.example.com"),
            ("x-forwarded-uri", "/public"),
            ("x-forwarded-host", "anonymous.invalid"),
            ("x-original-method", "GET"),
        ],
    );
    assert_eq!(
        (o.method.as_str(), o.host.as_str(), o.path.as_str()),
        ("GET", "api.example.com", "/api")
    );
}

#[test]
fn agreeing_families_are_fine() {
    let o = original(
        "/verify",
        &[
            ("x-forwarded-uri", "/a"),
            ("x-original-uri", "/a"),
            ("x-forwarded-method", "get"),
            ("x-original-method", "GET"),
        ],
    );
    assert_eq!(o.path, "/a");
}
