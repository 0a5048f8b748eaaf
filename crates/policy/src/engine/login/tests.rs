use std::path::Path;

use http::{HeaderMap, HeaderValue, Method};
use serde_json::json;

use crate::config;
use crate::decision::{Decision, DenyReason};
use crate::engine::Engine;
use crate::request::{AuthRequest, SessionCredential, VerifiedSession};

const NOW: i64 = 1_700_000_000;

fn engine() -> Engine {
    let text = r#"
providers:
  - name: corp
    issuer: https://idp.example.com
    jwks: {discovery: https://idp.example.com}
    login: {client_id: portcullis, client_secret: s3cret}
    claims_to_headers:
      - {header: x-user, claim: sub}
  - name: other
    issuer: https://other.example.com
    jwks: {discovery: https://other.example.com}
sessions:
  public_url: https://auth.example.com/
  secret_file: session.key
rules:
  - name: admins
    match: {path: "/admin/**"}
    login: corp
    claims: {groups: [admins]}
  - name: app
    match: {path: "/app/**"}
    login: corp
  - name: api
    match: {path: "/api/**"}
"#;
    let config = config::parse(text, "t.yaml", Path::new("."), &|_| None).unwrap();
    Engine::with_static_keys(config)
}

fn session(provider: &str, claims: serde_json::Value, exp: i64) -> SessionCredential {
    SessionCredential::Valid(VerifiedSession {
        provider: provider.to_owned(),
        claims_json: claims.to_string().into_bytes(),
        expires_at: exp,
    })
}

fn decide(path: &str, headers: &HeaderMap, session: Option<&SessionCredential>) -> Decision {
    let mut req = AuthRequest::new(&Method::GET, "app.example.com:8443", path, headers);
    req.session = session;
    engine().decide(&req, NOW)
}

fn browser() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("accept", HeaderValue::from_static("text/html,*/*;q=0.8"));
    h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
    h
}

fn deny(d: &Decision) -> &crate::decision::Deny {
    match d {
        Decision::Deny(d) => d,
        Decision::Allow(a) => panic!("allowed: {a:?}"),
    }
}

#[test]
fn allows_a_session_of_the_rules_provider() {
    let s = session(
        "corp",
        json!({"sub": "alice", "groups": ["admins"]}),
        NOW + 60,
    );
    let d = decide("/admin/x", &HeaderMap::new(), Some(&s));
    let Decision::Allow(a) = d else {
        panic!("{d:?}")
    };
    assert!(a.identity.as_ref().unwrap().is_session());
    assert_eq!(a.set_headers[0].0, "x-user");
    assert_eq!(a.set_headers[0].1, "alice");
    assert_eq!(a.cache_max_age, Some(60));
    // A session counts on a rule without `login` too, when it accepts the provider.
    assert!(matches!(
        decide("/api/x", &HeaderMap::new(), Some(&s)),
        Decision::Allow(_)
    ));
}

#[test]
fn denies_a_session_whose_claims_do_not_hold() {
    let s = session("corp", json!({"sub": "bob", "groups": ["users"]}), NOW + 60);
    let d = decide("/admin/x", &browser(), Some(&s));
    assert_eq!(deny(&d).reason, DenyReason::ClaimMismatch);
    assert_eq!(d.status(), 403);
}

#[test]
fn denies_a_browser_without_credential_with_a_login_redirect() {
    let d = decide("/app/a%20b?x=1", &browser(), None);
    let deny = deny(&d);
    assert_eq!(deny.reason, DenyReason::LoginRequired);
    assert_eq!(d.status(), 302);
    assert_eq!(
        deny.redirect.as_deref(),
        Some(
            "https://auth.example.com/oauth2/start?rd=https%3A%2F%2Fapp.example.com%3A8443%2Fapp%2Fa%2520b%3Fx%3D1"
        )
    );
    let mut nav = HeaderMap::new();
    nav.insert("sec-fetch-mode", HeaderValue::from_static("navigate"));
    assert_eq!(decide("/app/", &nav, None).status(), 302);
}

#[test]
fn denies_an_api_client_without_credential_with_401() {
    let mut h = HeaderMap::new();
    h.insert("accept", HeaderValue::from_static("application/json"));
    let d = decide("/app/x", &h, None);
    assert_eq!(deny(&d).reason, DenyReason::LoginRequired);
    assert_eq!(d.status(), 401);
    assert!(deny(&d).redirect.is_none());
    // Only login rules redirect: a rule without `login` says token_missing.
    let d = decide("/api/x", &browser(), None);
    assert_eq!(deny(&d).reason, DenyReason::TokenMissing);
    assert!(deny(&d).redirect.is_none());
}

#[test]
fn denies_invalid_expired_and_foreign_sessions() {
    let invalid = SessionCredential::Invalid {
        detail: "tampered".to_owned(),
    };
    let d = decide("/app/x", &browser(), Some(&invalid));
    assert_eq!(deny(&d).reason, DenyReason::SessionInvalid);
    assert_eq!(d.status(), 302);
    let d = decide("/app/x", &HeaderMap::new(), Some(&invalid));
    assert_eq!(d.status(), 401);
    let expired = session("corp", json!({"sub": "alice"}), NOW);
    assert_eq!(
        deny(&decide("/app/x", &HeaderMap::new(), Some(&expired))).reason,
        DenyReason::SessionInvalid
    );
    // A session of a provider the rule does not accept is no credential there.
    let foreign = session("unknown", json!({"sub": "alice"}), NOW + 60);
    assert_eq!(
        deny(&decide("/app/x", &HeaderMap::new(), Some(&foreign))).reason,
        DenyReason::LoginRequired
    );
    let malformed = SessionCredential::Valid(VerifiedSession {
        provider: "corp".to_owned(),
        claims_json: b"[1]".to_vec(),
        expires_at: NOW + 60,
    });
    assert_eq!(
        deny(&decide("/app/x", &HeaderMap::new(), Some(&malformed))).reason,
        DenyReason::SessionInvalid
    );
}

#[test]
fn denies_config_mistakes_with_file_line_and_field() {
    let parse = |text: &str| config::parse(text, "t.yaml", Path::new("."), &|_| None).unwrap_err();
    let provider = "providers:\n  - name: corp\n    issuer: https://i\n    jwks: {discovery: https://i}\n    login: {client_id: c, client_secret: s}\n";
    let e = parse(provider);
    assert_eq!(e.field, "providers[0].login");
    let e = parse(&format!(
        "{provider}sessions: {{public_url: https://a, secret_file: k}}\nrules:\n  - name: r\n    login: nope\n"
    ));
    assert_eq!((e.line, e.field.as_str()), (9, "rules[0].login"));
    let e = parse(&format!(
        "{provider}sessions:\n  public_url: https://a\n  secret_file: k\n  allowed_redirect_hosts: [\"a b\"]\n"
    ));
    assert_eq!(e.field, "sessions.allowed_redirect_hosts[0]");
    let e = parse(
        "providers:\n  - name: corp\n    issuer: https://i\n    jwks: {uri: https://i/k}\n    login: {client_id: c, client_secret: s}\n",
    );
    assert_eq!(e.field, "providers[0].login");
    let e = parse(&format!(
        "{provider}sessions: {{public_url: https://a, secret_file: k, store: memcached}}\n"
    ));
    assert_eq!(e.field, "sessions.store");
}

#[test]
fn denies_with_the_rules_provider_named_when_several_log_in() {
    let text = r#"
providers:
  - name: corp
    issuer: https://idp.example.com
    jwks: {discovery: https://idp.example.com}
    login: {client_id: a, client_secret: s}
  - name: partner
    issuer: https://partner.example.com
    jwks: {discovery: https://partner.example.com}
    login: {client_id: b, client_secret: s}
sessions: {public_url: "https://auth.example.com", secret_file: k}
rules:
  - name: partner-app
    match: {path: "/p/**"}
    login: partner
"#;
    let config = config::parse(text, "t.yaml", Path::new("."), &|_| None).unwrap();
    let engine = Engine::with_static_keys(config);
    let headers = browser();
    let req = AuthRequest::new(&Method::GET, "app.example.com", "/p/", &headers);
    let d = engine.decide(&req, NOW);
    assert_eq!(
        deny(&d).redirect.as_deref(),
        Some(
            "https://auth.example.com/oauth2/start?rd=https%3A%2F%2Fapp.example.com%2Fp%2F&provider=partner"
        )
    );
}

fn step_up_engine() -> Engine {
    let text = r#"
providers:
  - name: corp
    issuer: https://idp.example.com
    jwks: {discovery: https://idp.example.com}
    login: {client_id: portcullis, client_secret: s3cret}
sessions:
  public_url: https://auth.example.com/
  secret_file: session.key
rules:
  - name: pay
    match: {path: "/pay/**"}
    login: corp
    acr_values: [urn:gold, urn:silver]
  - name: keys
    match: {path: "/keys/**"}
    login: corp
    amr: [hwk, otp]
"#;
    let config = config::parse(text, "t.yaml", Path::new("."), &|_| None).unwrap();
    Engine::with_static_keys(config)
}

fn decide_step_up(path: &str, headers: &HeaderMap, s: &SessionCredential) -> Decision {
    let mut req = AuthRequest::new(&Method::GET, "app.example.com", path, headers);
    req.session = Some(s);
    step_up_engine().decide(&req, NOW)
}

#[test]
fn allows_a_session_whose_acr_and_amr_are_accepted() {
    let s = session("corp", json!({"sub": "a", "acr": "urn:silver"}), NOW + 60);
    assert!(matches!(
        decide_step_up("/pay/x", &browser(), &s),
        Decision::Allow(_)
    ));
    let s = session("corp", json!({"sub": "a", "amr": ["pwd", "otp"]}), NOW + 60);
    assert!(matches!(
        decide_step_up("/keys/x", &browser(), &s),
        Decision::Allow(_)
    ));
}

#[test]
fn denies_a_weak_session_with_a_step_up_login_or_the_rfc9470_challenge() {
    for claims in [
        json!({"sub": "a", "acr": "urn:bronze"}),
        json!({"sub": "a"}),
        json!({"sub": "a", "acr": ["urn:gold"]}),
    ] {
        let s = session("corp", claims.clone(), NOW + 60);
        let d = decide_step_up("/pay/x", &browser(), &s);
        assert_eq!(deny(&d).reason, DenyReason::StepUpRequired, "{claims}");
        assert_eq!(d.status(), 302);
        assert_eq!(
            deny(&d).redirect.as_deref(),
            Some(
                "https://auth.example.com/oauth2/start?rd=https%3A%2F%2Fapp.example.com%2Fpay%2Fx&acr_values=urn%3Agold%20urn%3Asilver"
            )
        );
        let d = decide_step_up("/pay/x", &HeaderMap::new(), &s);
        assert_eq!(d.status(), 401);
        assert_eq!(
            deny(&d).www_authenticate().as_deref(),
            Some(
                r#"Bearer realm="portcullis", error="insufficient_user_authentication", error_description="a stronger authentication is required", acr_values="urn:gold urn:silver""#
            )
        );
        assert_eq!(
            deny(&d).body(),
            r#"{"error":"insufficient_user_authentication","reason":"step_up_required"}"#
        );
    }
    // amr lacking: refused, never redirected (the provider cannot be asked for it).
    for amr in [json!(["pwd"]), json!("otp"), json!(null)] {
        let s = session("corp", json!({"sub": "a", "amr": amr}), NOW + 60);
        let d = decide_step_up("/keys/x", &browser(), &s);
        assert_eq!(deny(&d).reason, DenyReason::StepUpRequired, "{amr}");
        assert_eq!(d.status(), 401, "{amr}");
    }
}

#[test]
fn denies_step_up_config_mistakes() {
    let base = "providers:\n  - name: corp\n    issuer: https://i\n    jwks: {discovery: https://i}\nrules:\n  - name: r\n";
    let parse = |rule: &str| {
        config::parse(&format!("{base}{rule}"), "t.yaml", Path::new("."), &|_| {
            None
        })
        .unwrap_err()
    };
    let e = parse("    acr_values: [\"a b\"]\n");
    assert_eq!((e.line, e.field.as_str()), (7, "rules[0].acr_values[0]"));
    let e = parse("    amr: [\"x\\\"\"]\n");
    assert_eq!(e.field, "rules[0].amr[0]");
    let e = parse("    acr_values: []\n");
    assert_eq!(e.field, "rules[0].acr_values");
}

#[test]
fn max_age_wants_a_recent_login() {
    let text = r#"
providers:
  - name: corp
    issuer: https://idp.example.com
    jwks: {discovery: https://idp.example.com}
    clock_skew: 5s
    login: {client_id: portcullis, client_secret: s3cret}
sessions:
  public_url: https://auth.example.com/
  secret_file: session.key
rules:
  - name: recent
    match: {path: "/recent/**"}
    login: corp
    max_age: 10m
"#;
    let config = config::parse(text, "t.yaml", Path::new("."), &|_| None).unwrap();
    let engine = Engine::with_static_keys(config);
    let decide = |headers: &HeaderMap, s: Option<&SessionCredential>| {
        let mut req = AuthRequest::new(&Method::GET, "app.example.com", "/recent/x", headers);
        req.session = s;
        engine.decide(&req, NOW)
    };
    // Recent enough (the skew counts), in both directions of the clock.
    for at in [
        json!(NOW),
        json!(NOW - 600),
        json!(NOW - 605),
        json!(NOW + 5),
        json!((NOW - 10) as f64 + 0.5),
    ] {
        let s = session("corp", json!({"sub": "a", "auth_time": at}), NOW + 60);
        assert!(
            matches!(decide(&browser(), Some(&s)), Decision::Allow(_)),
            "{at}"
        );
    }
    // Too old, from the future, missing or not a number: step up.
    for at in [
        json!(NOW - 606),
        json!(NOW + 6),
        json!(null),
        json!("1"),
        json!([NOW]),
    ] {
        let s = session("corp", json!({"sub": "a", "auth_time": at}), NOW + 60);
        let d = decide(&browser(), Some(&s));
        assert_eq!(deny(&d).reason, DenyReason::StepUpRequired, "{at}");
        assert_eq!(
            deny(&d).redirect.as_deref(),
            Some(
                "https://auth.example.com/oauth2/start?rd=https%3A%2F%2Fapp.example.com%2Frecent%2Fx&max_age=600"
            ),
            "{at}"
        );
        let d = decide(&HeaderMap::new(), Some(&s));
        assert_eq!(d.status(), 401);
        assert_eq!(
            deny(&d).www_authenticate().as_deref(),
            Some(
                r#"Bearer realm="portcullis", error="insufficient_user_authentication", error_description="a stronger authentication is required", max_age="600""#
            )
        );
    }
    // No session yet: the first login asks for max_age too.
    let d = decide(&browser(), None);
    assert_eq!(deny(&d).reason, DenyReason::LoginRequired);
    assert_eq!(
        deny(&d).redirect.as_deref(),
        Some(
            "https://auth.example.com/oauth2/start?rd=https%3A%2F%2Fapp.example.com%2Frecent%2Fx&max_age=600"
        )
    );
}

#[test]
fn denies_max_age_config_mistakes() {
    let base = "providers:\n  - name: corp\n    issuer: https://i\n    jwks: {discovery: https://i}\nrules:\n  - name: r\n";
    for bad in ["0s", "1500ms", "400d", "soon"] {
        let e = config::parse(
            &format!("{base}    max_age: {bad}\n"),
            "t.yaml",
            Path::new("."),
            &|_| None,
        )
        .unwrap_err();
        assert_eq!((e.line, e.field.as_str()), (7, "rules[0].max_age"), "{bad}");
    }
}
