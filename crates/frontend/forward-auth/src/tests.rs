use http::Request;

use super::*;

fn req(uri: &str, headers: &[(&str, &str)]) -> Request<()> {
    let mut b = Request::builder().uri(uri).method("GET");
    for (n, v) in headers {
        b = b.header(*n, *v);
    }
    b.body(()).unwrap()
}

fn original(uri: &str, headers: &[(&str, &str)]) -> OriginalRequest<'static> {
    let req = req(uri, headers);
    let o = original_request(&req).unwrap();
    OriginalRequest {
        host: o.host.into_owned().into(),
        path: o.path.into_owned().into(),
        ..o
    }
}

/// What two headers disagreed about (`path`, `method`, `host`).
fn conflict(uri: &str, headers: &[(&str, &str)]) -> &'static str {
    match original_request(&req(uri, headers)) {
        Err(InvalidOriginal::Conflict(c)) => c.what,
        other => panic!("not a conflict: {other:?}"),
    }
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
        (o.method.as_str(), &*o.host, &*o.path),
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
        (o.method.as_str(), &*o.host, &*o.path),
        ("DELETE", "api.example.com", "/a/b")
    );
    let o = original(
        "/verify",
        &[
            ("host", "auth"),
            ("x-original-url", "https://shop.example.com/cart?id=3"),
        ],
    );
    assert_eq!((&*o.host, &*o.path), ("shop.example.com", "/cart?id=3"));
}

#[test]
fn reads_envoy_http_mode_path() {
    let o = original("/verify/api/items?x=1", &[("host", "api.example.com")]);
    assert_eq!((&*o.host, &*o.path), ("api.example.com", "/api/items?x=1"));
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
    assert_eq!(
        conflict(
            "/verify",
            &[
                ("x-original-url", "https://api.example.com/api/items"),
                ("x-forwarded-uri", "/public/forged"),
            ],
        ),
        "path"
    );
    // ... or X-Forwarded-Host naming an anonymous host.
    assert_eq!(
        conflict(
            "/verify",
            &[
                ("x-original-url", "https://api.example.com/api/items"),
                ("x-forwarded-host", "anonymous.invalid"),
            ],
        ),
        "host"
    );
    // Plain NGINX: Host is the original host; a client's X-Forwarded-Host must agree.
    assert_eq!(
        conflict(
            "/verify",
            &[
                ("host", "api.example.com"),
                ("x-original-uri", "/api"),
                ("x-forwarded-host", "anonymous.invalid"),
            ],
        ),
        "host"
    );
    // Traefik sets X-Forwarded-*; a client adds X-Original-URI.
    assert_eq!(
        conflict(
            "/verify",
            &[
                ("x-forwarded-uri", "/api/items"),
                ("x-original-uri", "/public/x"),
            ],
        ),
        "path"
    );
    assert_eq!(
        conflict(
            "/verify",
            &[("x-forwarded-method", "POST"), ("x-original-method", "GET")],
        ),
        "method"
    );
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
        (o.method.as_str(), &*o.host, &*o.path),
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

fn invalid(uri: &str, headers: &[(&str, &str)]) -> InvalidOriginal {
    original_request(&req(uri, headers)).unwrap_err()
}

/// Issue 10, class 3: an original-request header that is present but cannot be
/// read is refused; before, it was taken as absent and the decision fell back to `/`.
#[test]
fn regression_issue10_unreadable_original_headers_are_refused() {
    let non_ascii = Request::builder()
        .uri("/verify")
        .header(
            "x-original-uri",
            http::HeaderValue::from_bytes(b"/admin/\xff").unwrap(),
        )
        .body(())
        .unwrap();
    assert_eq!(
        original_request(&non_ascii).unwrap_err(),
        InvalidOriginal::Unreadable {
            header: "X-Original-URI"
        }
    );
    // ingress-nginx builds X-Original-URL from $http_host: empty for HTTP/1.0 without Host.
    assert!(matches!(
        invalid("/verify", &[("x-original-url", "http:///admin/x")]),
        InvalidOriginal::Url(_)
    ));
    assert!(matches!(
        invalid("/verify", &[("x-original-url", "http://a:80:80/admin/x")]),
        InvalidOriginal::Url(_)
    ));
    assert!(matches!(
        invalid("/verify", &[("x-original-url", "/admin/x")]),
        InvalidOriginal::Url(_)
    ));
    assert_eq!(
        invalid(
            "/verify",
            &[("x-original-uri", "/a"), ("x-forwarded-host", "a:80:80")]
        ),
        InvalidOriginal::Host {
            header: "X-Forwarded-Host",
            error: portcullis_policy::canonical::InvalidHost::Port
        }
    );
    // A Host compared with nothing goes on as sent: the engine reads it, and refuses
    // `a:80:80` (engine::tests::regression_issue10_trailing_dot_host_matches_its_rule).
    assert_eq!(
        original("/verify", &[("x-original-uri", "/a"), ("host", "a:80:80")]).host,
        "a:80:80"
    );
    assert_eq!(
        invalid("/verify", &[("x-forwarded-uri", "")]),
        InvalidOriginal::Empty {
            header: "X-Forwarded-Uri"
        }
    );
    assert_eq!(
        invalid(
            "/verify",
            &[
                ("x-forwarded-uri", "/public"),
                ("x-forwarded-uri", "/admin")
            ]
        ),
        InvalidOriginal::Duplicate {
            header: "X-Forwarded-Uri"
        }
    );
    assert_eq!(
        invalid(
            "/verify",
            &[("x-original-uri", "/a"), ("host", "a"), ("host", "b")]
        ),
        InvalidOriginal::Duplicate { header: "Host" }
    );
    assert_eq!(
        invalid(
            "/verify",
            &[("x-forwarded-uri", "/a"), ("x-forwarded-method", "G T")]
        ),
        InvalidOriginal::Method {
            header: "X-Forwarded-Method"
        }
    );
}

/// The original-request headers are found in one pass over the header map (issue
/// 17): each of them sent twice, with other headers between the two and in any
/// case, is still refused by its own name; other repeated headers do not matter.
#[test]
fn each_original_request_header_sent_twice_is_refused_by_name() {
    for (name, label, first, second) in [
        ("Host", "Host", "a", "b"),
        ("X-Forwarded-Method", "X-Forwarded-Method", "GET", "POST"),
        ("x-forwarded-HOST", "X-Forwarded-Host", "a", "b"),
        ("X-Forwarded-Uri", "X-Forwarded-Uri", "/public", "/admin"),
        ("X-ORIGINAL-METHOD", "X-Original-Method", "GET", "POST"),
        ("X-Original-URI", "X-Original-URI", "/public", "/admin"),
        (
            "x-original-url",
            "X-Original-URL",
            "http://a/public",
            "http://a/admin",
        ),
    ] {
        // The NGINX family names the request, so every header above is read.
        let headers = [
            ("x-original-uri", "/public"),
            (name, first),
            ("accept", "*/*"),
            ("accept", "text/html"),
            (name, second),
        ];
        let headers: &[(&str, &str)] = if label == "X-Original-URI" {
            &headers[1..]
        } else {
            &headers
        };
        assert_eq!(
            invalid("/verify", headers),
            InvalidOriginal::Duplicate { header: label },
            "{name}"
        );
    }
    let o = original(
        "/verify",
        &[
            ("x-original-uri", "/a"),
            ("accept", "*/*"),
            ("accept", "text/html"),
            ("host", "a.example"),
        ],
    );
    assert_eq!((&*o.path, &*o.host), ("/a", "a.example"));
}

/// Issue 10, class 4: hosts are compared and decided on in their canonical form.
#[test]
fn regression_issue10_hosts_are_read_canonically() {
    let o = original(
        "/verify",
        &[
            ("x-forwarded-uri", "/a"),
            ("x-forwarded-host", "Ops.Test.:443"),
        ],
    );
    assert_eq!(o.host, "ops.test");
    // The same host spelled two ways is no conflict.
    let o = original(
        "/verify",
        &[
            ("x-original-url", "https://ops.test./a"),
            ("x-forwarded-host", "OPS.test"),
        ],
    );
    assert_eq!((&*o.host, o.via), ("ops.test", Via::Nginx));
}

#[test]
fn names_who_asked() {
    assert_eq!(
        original("/verify", &[("x-forwarded-uri", "/a")]).via,
        Via::Forwarded
    );
    assert_eq!(
        original("/verify", &[("x-original-uri", "/a")]).via,
        Via::Nginx
    );
    assert_eq!(original("/verify/a", &[]).via, Via::EnvoyHttp);
    assert_eq!(original("/verify", &[]).via, Via::Direct);
    assert!(nginx_may_be_asking(
        req("/verify", &[("x-original-method", "GET")]).headers()
    ));
    assert!(!nginx_may_be_asking(
        req("/verify", &[("x-forwarded-uri", "/a")]).headers()
    ));
}

#[test]
fn claim_requirements_are_percent_decoded() {
    let o = original("/verify?claims_team%20x=a+b%2Cc&claims_g=%ff", &[]);
    assert_eq!(
        o.extra_claims,
        vec![
            ("g".to_owned(), "\u{fffd}".to_owned()),
            ("team x".to_owned(), "a b,c".to_owned())
        ]
    );
}

/// A request refused for its reading answers 400 behind Traefik, Caddy and Envoy,
/// and 403 when NGINX may be asking (it turns a 400 into a 500).
#[test]
fn request_invalid_status_depends_on_the_proxy() {
    let deny = Decision::Deny(Deny::request_invalid("test".to_owned()));
    assert_eq!(
        render(&deny, false, false).status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(render(&deny, false, true).status(), StatusCode::FORBIDDEN);
}

/// A deny with a redirect (login) is a 302 with `Location`, except when NGINX may be
/// asking: `auth_request` passes only 401 and 403, and NGINX redirects itself.
#[test]
fn a_redirect_is_a_302_except_behind_nginx() {
    let mut deny = Deny::new(
        portcullis_policy::DenyReason::TokenMissing,
        "test".to_owned(),
    );
    deny.redirect = Some("https://auth.test/oauth2/start?rd=x".to_owned());
    let deny = Decision::Deny(deny);
    let r = render(&deny, false, false);
    assert_eq!(r.status(), StatusCode::FOUND);
    assert_eq!(
        r.headers().get(http::header::LOCATION).unwrap(),
        "https://auth.test/oauth2/start?rd=x"
    );
    let r = render(&deny, false, true);
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers().get(http::header::LOCATION).is_none());
}

#[test]
fn cache_control_is_private_max_age_or_no_store() {
    assert_eq!(cache_control(Some(0)), "private, max-age=0");
    assert_eq!(cache_control(Some(600)), "private, max-age=600");
    assert_eq!(
        cache_control(Some(u64::MAX)),
        "private, max-age=18446744073709551615"
    );
    assert_eq!(cache_control(None), "no-store");
}

/// Every request's future is moved into a box when it starts (the service's
/// `Future` is boxed), so its size is a cost per request. The login's session read,
/// which may reach the store and the provider, once sat inline and made it 7,640
/// bytes, login or not; it is boxed behind the cookie check now. The type is the
/// same with login or without, so measuring it without login bounds both.
#[test]
fn a_verify_request_s_future_stays_small() {
    use std::sync::Arc;
    use tower_service::Service as _;

    let text = "rules: [{name: any, match: {}, allow: anonymous}]";
    let config =
        portcullis_policy::config::parse(text, "t.yaml", std::path::Path::new("."), &|_| None)
            .unwrap();
    let decider = Decider::new(
        portcullis_policy::Engine::with_static_keys(config),
        Arc::new(portcullis_decider::Metrics::new()),
    );
    let mut service = NewForwardAuth::new(Arc::new(decider)).new_service(Default::default());
    let request = Request::get("/verify")
        .body(http_body_util::Empty::<Bytes>::new())
        .unwrap();
    let future = service.call(request);
    let size = std::mem::size_of_val(&*future);
    assert!(size <= 2_048, "the /verify future is {size} bytes");
}
