use http::Request;

use super::*;

fn req(uri: &str, headers: &[(&str, &str)]) -> Request<()> {
    let mut b = Request::builder().uri(uri).method("GET");
    for (n, v) in headers {
        b = b.header(*n, *v);
    }
    b.body(()).unwrap()
}

#[test]
fn reads_traefik_and_caddy_headers() {
    let r = req(
        "/verify",
        &[
            ("host", "auth:8080"),
            ("x-forwarded-method", "POST"),
            ("x-forwarded-host", "api.example.com"),
            ("x-forwarded-uri", "/admin/x?y=1"),
        ],
    );
    let o = original_request(&r);
    assert_eq!(
        (o.method.as_str(), o.host.as_str(), o.path.as_str()),
        ("POST", "api.example.com", "/admin/x?y=1")
    );
}

#[test]
fn reads_nginx_headers() {
    let r = req(
        "/verify",
        &[
            ("host", "api.example.com"),
            ("x-original-method", "DELETE"),
            ("x-original-uri", "/a/b"),
        ],
    );
    let o = original_request(&r);
    assert_eq!(
        (o.method.as_str(), o.host.as_str(), o.path.as_str()),
        ("DELETE", "api.example.com", "/a/b")
    );
    let r = req(
        "/verify",
        &[
            ("host", "auth"),
            ("x-original-url", "https://shop.example.com/cart?id=3"),
        ],
    );
    let o = original_request(&r);
    assert_eq!(
        (o.host.as_str(), o.path.as_str()),
        ("shop.example.com", "/cart?id=3")
    );
}

#[test]
fn reads_envoy_http_mode_path() {
    let r = req("/verify/api/items?x=1", &[("host", "api.example.com")]);
    let o = original_request(&r);
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
    let r = req(
        "/verify?claims_group=developers&claims_group=admins&other=1",
        &[],
    );
    let o = original_request(&r);
    assert_eq!(
        o.extra_claims,
        vec![
            ("group".to_owned(), "developers".to_owned()),
            ("group".to_owned(), "admins".to_owned())
        ]
    );
    assert_eq!(o.path, "/");
}
