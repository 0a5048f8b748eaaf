use std::path::Path;
use std::sync::Arc;

use http::{HeaderMap, HeaderValue, Method};
use serde_json::{Value, json};

use crate::config;
use crate::decision::{Decision, Deny, DenyReason};
use crate::engine::Engine;
use crate::introspected::{Introspected, IntrospectionOutcome};
use crate::request::AuthRequest;

const NOW: i64 = 1_700_000_000;
const OPAQUE: &str = "1ZvgX1UfuD-6CGYt-7qXkNsSouAghh88nRTd1TBPw9Y";
const ISS: &str = "https://idp.example.com";

fn engine(extra: &str) -> Engine {
    let text = format!(
        r#"
providers:
  - name: corp
    issuer: {ISS}
    jwks: {{discovery: {ISS}}}
    introspection: {{client_id: portcullis, client_secret: s3cret, cache_ttl: 30s}}
    claims_to_headers:
      - {{header: x-client, claim: client_id}}
{extra}
rules:
  - name: orders
    match: {{path: "/orders/**"}}
    scopes: [orders:read]
    claims: {{client_id: [m2m]}}
    headers: {{x-scope: "{{{{ claims.scope }}}}"}}
  - name: api
    match: {{path: "/api/**"}}
"#
    );
    let config = config::parse(&text, "t.yaml", Path::new("."), &|_| None).unwrap();
    Engine::with_static_keys(config)
}

fn bearer(token: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    h
}

fn active(response: Value) -> Introspected {
    Introspected {
        provider: Arc::from("corp"),
        token: Arc::from(OPAQUE),
        outcome: IntrospectionOutcome::Active {
            claims_json: response.to_string().into_bytes().into(),
        },
    }
}

fn good() -> Value {
    json!({
        "active": true, "client_id": "m2m", "iss": ISS, "scope": "orders:read other",
        "exp": NOW + 600, "iat": NOW, "token_type": "Bearer"
    })
}

fn decide_with(e: &Engine, path: &str, answer: Option<&Introspected>) -> Decision {
    let headers = bearer(OPAQUE);
    let mut req = AuthRequest::new(&Method::GET, "api.example.com", path, &headers);
    req.introspected = answer;
    e.decide(&req, NOW)
}

fn deny(d: &Decision) -> &Deny {
    match d {
        Decision::Deny(d) => d,
        Decision::Allow(a) => panic!("allowed: {a:?}"),
    }
}

#[test]
fn denies_opaque_token_until_introspected_and_asks_for_it() {
    let e = engine("");
    let d = decide_with(&e, "/orders/1", None);
    let d = deny(&d);
    assert_eq!(d.reason, DenyReason::IntrospectionUnavailable);
    assert_eq!(d.status(), 503);
    let ask = d.introspect.as_ref().expect("asks for introspection");
    assert_eq!(ask.provider, 0);
    assert_eq!(&*ask.token, OPAQUE);
}

#[test]
fn allows_active_token_through_the_same_rule_checks() {
    let e = engine("");
    let answer = active(good());
    let d = decide_with(&e, "/orders/1", Some(&answer));
    let Decision::Allow(a) = d else {
        panic!("denied: {d:?}")
    };
    let get = |n: &str| {
        a.set_headers
            .iter()
            .find(|(h, _)| h == n)
            .map(|(_, v)| v.to_str().unwrap().to_owned())
    };
    assert_eq!(get("x-client").as_deref(), Some("m2m"));
    assert_eq!(get("x-scope").as_deref(), Some("orders:read other"));
    // Never cached by a frontend past the answer's cache_ttl (30s), nor past exp.
    assert_eq!(a.cache_max_age, Some(30));
    assert!(!a.identity.as_ref().unwrap().is_session());
}

#[test]
fn denies_active_token_missing_a_scope_or_claim() {
    let e = engine("");
    let mut r = good();
    r["scope"] = json!("other");
    let d = decide_with(&e, "/orders/1", Some(&active(r)));
    assert_eq!(deny(&d).reason, DenyReason::ScopeMissing);
    let mut r = good();
    r["client_id"] = json!("someone-else");
    let d = decide_with(&e, "/orders/1", Some(&active(r)));
    assert_eq!(deny(&d).reason, DenyReason::ClaimMismatch);
}

#[test]
fn denies_inactive_and_unavailable() {
    let e = engine("");
    let inactive = Introspected {
        outcome: IntrospectionOutcome::Inactive,
        ..active(good())
    };
    let d = decide_with(&e, "/api/x", Some(&inactive));
    assert_eq!(deny(&d).reason, DenyReason::TokenInactive);
    assert_eq!(deny(&d).status(), 401);
    assert!(deny(&d).introspect.is_none());
    let down = Introspected {
        outcome: IntrospectionOutcome::Unavailable {
            detail: "connection refused".to_owned(),
        },
        ..active(good())
    };
    let d = decide_with(&e, "/api/x", Some(&down));
    assert_eq!(deny(&d).reason, DenyReason::IntrospectionUnavailable);
    assert!(deny(&d).detail.contains("connection refused"));
    assert!(deny(&d).introspect.is_none(), "asked once only");
}

#[test]
fn denies_an_answer_about_another_token_or_provider() {
    let e = engine("");
    let other_token = Introspected {
        token: Arc::from("another-opaque-token"),
        ..active(good())
    };
    let d = decide_with(&e, "/api/x", Some(&other_token));
    assert_eq!(deny(&d).reason, DenyReason::IntrospectionUnavailable);
    assert!(deny(&d).introspect.is_some());
    let other_provider = Introspected {
        provider: Arc::from("other"),
        ..active(good())
    };
    let d = decide_with(&e, "/api/x", Some(&other_provider));
    assert!(deny(&d).introspect.is_some());
}

#[test]
fn denies_responses_that_fail_the_jwt_checks() {
    let e = engine("    audiences: [orders-api]");
    let cases: [(&str, Value, DenyReason); 9] = [
        ("no aud", json!({}), DenyReason::AudienceMismatch),
        (
            "wrong aud",
            json!({"aud": "billing"}),
            DenyReason::AudienceMismatch,
        ),
        (
            "active string",
            json!({"aud": "orders-api", "active": "true"}),
            DenyReason::TokenInactive,
        ),
        (
            "other iss",
            json!({"aud": "orders-api", "iss": "https://evil.example"}),
            DenyReason::IssuerMismatch,
        ),
        (
            "expired",
            json!({"aud": ["x", "orders-api"], "exp": NOW - 61}),
            DenyReason::TokenExpired,
        ),
        (
            "no exp",
            json!({"aud": "orders-api", "exp": null}),
            DenyReason::TokenMalformed,
        ),
        (
            "nbf ahead",
            json!({"aud": "orders-api", "nbf": NOW + 120}),
            DenyReason::TokenNotYetValid,
        ),
        (
            "refresh token",
            json!({"aud": "orders-api", "token_type": "refresh_token"}),
            DenyReason::TokenMalformed,
        ),
        (
            "bound",
            json!({"aud": "orders-api", "cnf": {"jkt": "abc"}}),
            DenyReason::TokenMalformed,
        ),
    ];
    for (name, patch, want) in cases {
        let mut r = good();
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                r.as_object_mut().unwrap().remove(k);
            } else {
                r[k] = v.clone();
            }
        }
        let d = decide_with(&e, "/api/x", Some(&active(r)));
        assert_eq!(deny(&d).reason, want, "{name}");
    }
    let mut r = good();
    r["aud"] = json!(["orders-api"]);
    let d = decide_with(&e, "/api/x", Some(&active(r)));
    assert!(matches!(d, Decision::Allow(_)), "{d:?}");
}

#[test]
fn denies_a_response_with_duplicate_members() {
    let e = engine("");
    let answer = Introspected {
        outcome: IntrospectionOutcome::Active {
            claims_json:
                br#"{"active":true,"exp":1700000600,"client_id":"m2m","client_id":"admin"}"#
                    .to_vec()
                    .into(),
        },
        ..active(good())
    };
    let d = decide_with(&e, "/api/x", Some(&answer));
    assert_eq!(deny(&d).reason, DenyReason::TokenMalformed);
}

#[test]
fn jwts_are_never_introspected() {
    let e = engine("");
    let headers = bearer("eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln");
    let req = AuthRequest::new(&Method::GET, "api.example.com", "/api/x", &headers);
    let d = e.decide(&req, NOW);
    assert!(deny(&d).introspect.is_none());
    assert_ne!(deny(&d).reason, DenyReason::IntrospectionUnavailable);
}

#[test]
fn providers_without_introspection_keep_refusing_opaque_tokens() {
    let text = r#"
providers:
  - name: corp
    issuer: https://idp.example.com
    jwks: {discovery: https://idp.example.com}
rules:
  - name: api
    match: {}
"#;
    let config = config::parse(text, "t.yaml", Path::new("."), &|_| None).unwrap();
    let e = Engine::with_static_keys(config);
    let d = decide_with(&e, "/api/x", None);
    // Verified as a JWT, as before (here: no keys yet), never introspected.
    assert_eq!(deny(&d).status(), 401);
    assert_ne!(deny(&d).reason, DenyReason::IntrospectionUnavailable);
    assert!(deny(&d).introspect.is_none());
}

#[test]
fn config_refuses_bad_introspection_blocks() {
    let cases = [
        (
            "jwks: {uri: https://idp.example.com/jwks}\n    introspection: {client_id: c, client_secret: s}",
            "introspection.endpoint",
        ),
        (
            "jwks: {discovery: https://idp.example.com}\n    introspection: {client_id: c}",
            "introspection.client_secret",
        ),
        (
            "jwks: {discovery: https://idp.example.com}\n    introspection: {client_id: c, client_secret: s, client_secret_env: E}",
            "introspection.client_secret",
        ),
        (
            "jwks: {discovery: https://idp.example.com}\n    introspection: {endpoint: 'ftp://x', client_id: c, client_secret: s}",
            "introspection.endpoint",
        ),
        (
            "jwks: {discovery: https://idp.example.com}\n    introspection: {client_id: c, client_secret: s, auth: private_key_jwt}",
            "introspection.auth",
        ),
        (
            "jwks: {discovery: https://idp.example.com}\n    introspection: {client_id: c, client_secret: s, cache_ttl: 2h}",
            "introspection.cache_ttl",
        ),
        (
            "jwks: {discovery: https://idp.example.com}\n    introspection: {client_id: c, client_secret: s, extra: 1}",
            "extra",
        ),
    ];
    for (provider, field) in cases {
        let text = format!(
            "providers:\n  - name: corp\n    issuer: https://idp.example.com\n    {provider}\nrules:\n  - name: api\n    match: {{}}\n"
        );
        let err = config::parse(&text, "t.yaml", Path::new("."), &|_| None).unwrap_err();
        assert!(err.to_string().contains(field), "{provider}: {err}");
    }
    let ok = "providers:\n  - name: corp\n    issuer: https://idp.example.com\n    jwks: {uri: https://idp.example.com/jwks}\n    introspection: {endpoint: https://idp.example.com/introspect, client_id: c, client_secret_file: s.txt, auth: client_secret_post, timeout: 2s}\nrules:\n  - name: api\n    match: {}\n";
    config::parse(ok, "t.yaml", Path::new("."), &|_| None).unwrap();
}

#[test]
fn explains_introspection_steps() {
    let e = engine("");
    let headers = bearer(OPAQUE);
    let mut req = AuthRequest::new(&Method::GET, "api.example.com", "/api/x", &headers);
    let x = e.explain(&req, NOW);
    assert_eq!(x.reason, Some("introspection_unavailable"));
    assert!(x.steps.iter().any(|s| s.step == "introspection" && !s.ok));
    let inactive = Introspected {
        outcome: IntrospectionOutcome::Inactive,
        ..active(good())
    };
    req.introspected = Some(&inactive);
    let x = e.explain(&req, NOW);
    assert_eq!(x.reason, Some("token_inactive"));
    assert!(!x.to_json().to_string().contains(OPAQUE));
    // An explained request names the introspection its caller may run (the
    // engine runs none), and the explanation carries it, not in its JSON.
    req.introspected = None;
    let Decision::Deny(d) = e.decide_traced(&req, NOW, &mut crate::explain::Recorder::default())
    else {
        panic!("allowed")
    };
    let ask = d.introspect.as_deref().unwrap();
    assert_eq!((ask.provider, &*ask.token), (0, OPAQUE));
    let x = e.explain(&req, NOW);
    assert_eq!(x.introspect.as_ref(), Some(ask));
    assert!(!x.to_json().to_string().contains(OPAQUE));
    // With an active answer: each check of it, expected and actual.
    let answer = active(good());
    req.introspected = Some(&answer);
    let x = e.explain(&req, NOW);
    let names: Vec<&str> = x.steps.iter().map(|s| s.step).collect();
    for name in [
        "introspection",
        "active",
        "issuer",
        "audience",
        "exp",
        "nbf",
        "token_type",
        "cnf",
    ] {
        assert!(names.contains(&name), "{name}: {names:?}");
    }
    let issuer = x.steps.iter().find(|s| s.step == "issuer").unwrap();
    assert_eq!(
        issuer.detail,
        format!("expected {ISS:?}, answer iss {ISS:?}")
    );
    assert!(!x.to_json().to_string().contains("s3cret"));
}
