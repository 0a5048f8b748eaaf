//! Issue 16: `allow: optional`, typed claim headers, issuer templates, `when:`.

use std::path::Path;

use http::{HeaderMap, HeaderValue, Method};
use portcullis_jose::{Algorithm, SigningKey};
use serde_json::{Value, json};

use super::*;
use crate::config;

const NOW: i64 = 1_700_000_000;
const SECRET: &[u8] = b"secret-secret-secret-secret-secret";

fn engine_with(providers_extra: &str, issuer: &str, rules: &str) -> Engine {
    let k = b64::encode(SECRET);
    let text = format!(
        r#"
providers:
  - name: corp
    issuer: "{issuer}"
    audiences: [api]
    jwks:
      inline: {{"keys":[{{"kty":"oct","k":"{k}","kid":"h1"}}]}}
{providers_extra}
rules:
{rules}"#
    );
    let config = config::parse(&text, "t.yaml", Path::new("."), &|_| None)
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    Engine::with_static_keys(config)
}

fn token(claims: Value) -> String {
    let key = SigningKey::from_secret(SECRET, Algorithm::HS256).unwrap();
    key.encode(
        Some("h1"),
        &Default::default(),
        claims.to_string().as_bytes(),
    )
    .unwrap()
}

fn claims_with(extra: Value) -> Value {
    let mut c = json!({"iss": "https://idp", "aud": "api", "sub": "alice", "exp": NOW + 600});
    if let (Some(base), Value::Object(extra)) = (c.as_object_mut(), extra) {
        base.extend(extra);
    }
    c
}

fn decide(engine: &Engine, method: &Method, path: &str, headers: &HeaderMap) -> Decision {
    let req = AuthRequest::new(method, "api.example.com", path, headers);
    engine.decide(&req, NOW)
}

fn bearer(t: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {t}")).unwrap(),
    );
    h
}

fn reason(d: &Decision) -> &'static str {
    d.reason().map_or("allow", |r| r.as_str())
}

fn set_headers(d: &Decision) -> Vec<(String, String)> {
    let Decision::Allow(a) = d else {
        panic!("expected an allow, got {d:?}")
    };
    a.set_headers
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap().to_owned()))
        .collect()
}

fn removed(d: &Decision) -> Vec<String> {
    let Decision::Allow(a) = d else {
        panic!("expected an allow, got {d:?}")
    };
    a.remove_headers
        .iter()
        .map(|n| n.as_str().to_owned())
        .collect()
}

// === allow: optional ===

const SUB_HEADER: &str = "    claims_to_headers:\n      - {header: x-user, claim: sub}\n";

fn optional_engine() -> Engine {
    engine_with(
        SUB_HEADER,
        "https://idp",
        "  - name: landing\n    match: {path: /}\n    allow: optional\n",
    )
}

#[test]
fn allows_optional_rule_without_token_anonymously() {
    let d = decide(&optional_engine(), &Method::GET, "/", &HeaderMap::new());
    assert_eq!(reason(&d), "allow");
    assert!(set_headers(&d).is_empty());
    assert!(removed(&d).contains(&"x-user".to_owned()));
    let Decision::Allow(a) = &d else {
        unreachable!()
    };
    assert!(a.identity.is_none());
}

#[test]
fn allows_optional_rule_with_valid_token_and_sets_identity() {
    let t = token(claims_with(json!({})));
    let d = decide(&optional_engine(), &Method::GET, "/", &bearer(&t));
    assert_eq!(set_headers(&d), [("x-user".to_owned(), "alice".to_owned())]);
    assert!(!removed(&d).contains(&"x-user".to_owned()));
}

#[test]
fn denies_optional_rule_with_invalid_token() {
    let e = optional_engine();
    let mut expired = claims_with(json!({}));
    expired["exp"] = json!(NOW - 3600);
    let d = decide(&e, &Method::GET, "/", &bearer(&token(expired)));
    assert_eq!((d.status(), reason(&d)), (401, "token_expired"));
    let d = decide(&e, &Method::GET, "/", &bearer("not.a.jwt"));
    assert_eq!((d.status(), reason(&d)), (401, "token_malformed"));
    // An empty bearer is a malformed credential, not "no token".
    let mut h = HeaderMap::new();
    h.insert("authorization", HeaderValue::from_static("Bearer "));
    let d = decide(&e, &Method::GET, "/", &h);
    assert_eq!(d.status(), 401, "{d:?}");
    let mut foreign = claims_with(json!({}));
    foreign["iss"] = json!("https://evil");
    let d = decide(&e, &Method::GET, "/", &bearer(&token(foreign)));
    assert_eq!((d.status(), reason(&d)), (401, "issuer_mismatch"));
}

#[test]
fn optional_rule_applies_its_requirements_to_a_token() {
    let e = engine_with(
        SUB_HEADER,
        "https://idp",
        "  - name: landing\n    match: {path: /}\n    allow: optional\n    claims: {groups: [staff]}\n",
    );
    let d = decide(&e, &Method::GET, "/", &HeaderMap::new());
    assert_eq!(reason(&d), "allow");
    let t = token(claims_with(json!({"groups": ["staff"]})));
    assert_eq!(reason(&decide(&e, &Method::GET, "/", &bearer(&t))), "allow");
    let t = token(claims_with(json!({"groups": ["guests"]})));
    let d = decide(&e, &Method::GET, "/", &bearer(&t));
    assert_eq!((d.status(), reason(&d)), (403, "claim_mismatch"));
}

// === typed claim headers ===

const TYPED: &str = r#"    claims_to_headers:
      - {header: x-groups, claim: groups}
      - {header: x-groups-json, claim: groups, format: json}
      - {header: x-group, claim: groups, format: first}
      - {header: x-roles, claim: realm_access.roles}
      - {header: x-realm, claim: realm_access}
      - {header: x-user, claim: sub}
"#;

#[test]
fn allows_with_claims_rendered_in_each_format() {
    let e = engine_with(
        TYPED,
        "https://idp",
        "  - name: api\n    match: {}\n    headers: {x-tenant: \"t={{ claims.realm_access.roles | json }}\"}\n",
    );
    let t = token(claims_with(json!({
        "groups": ["admins", "dev"],
        "realm_access": {"roles": ["a,b", "c"]},
    })));
    let d = decide(&e, &Method::GET, "/x", &bearer(&t));
    let set = set_headers(&d);
    let want = [
        ("x-groups", "admins,dev"),
        ("x-groups-json", r#"["admins","dev"]"#),
        ("x-group", "admins"),
        ("x-roles", r#"["a,b","c"]"#),
        ("x-realm", r#"{"roles":["a,b","c"]}"#),
        ("x-user", "alice"),
        ("x-tenant", r#"t=["a,b","c"]"#),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect();
    assert_eq!(set, want);
}

#[test]
fn denies_header_injection_by_leaving_the_header_unset() {
    let e = engine_with(TYPED, "https://idp", "  - name: api\n    match: {}\n");
    let t = token(claims_with(json!({
        "sub": "alice\r\nx-admin: true",
        "groups": ["ok", "bad\nx-admin: 1"],
    })));
    let d = decide(&e, &Method::GET, "/x", &bearer(&t));
    let set = set_headers(&d);
    let names: Vec<&str> = set.iter().map(|(n, _)| n.as_str()).collect();
    // Neither stripped nor mangled: x-user and the csv x-groups are not set at all
    // (and removed from the request); JSON escapes the newline; `first` is "ok".
    assert_eq!(names, ["x-groups-json", "x-group"]);
    assert_eq!(set[0].1, r#"["ok","bad\nx-admin: 1"]"#);
    assert_eq!(set[1].1, "ok");
    let gone = removed(&d);
    assert!(gone.contains(&"x-user".to_owned()) && gone.contains(&"x-groups".to_owned()));
}

#[test]
fn rejects_an_unknown_claim_format() {
    let k = b64::encode(SECRET);
    let text = format!(
        "providers:\n  - name: a\n    jwks:\n      inline: {{\"keys\":[{{\"kty\":\"oct\",\"k\":\"{k}\"}}]}}\n    claims_to_headers:\n      - header: x-g\n        claim: groups\n        format: yaml\n"
    );
    let e = config::parse(&text, "t.yaml", Path::new("."), &|_| None).unwrap_err();
    assert_eq!(
        (e.line, e.field.as_str()),
        (8, "providers[0].claims_to_headers[0].format"),
        "{e}"
    );
    assert!(e.problem.contains("csv, json, first"), "{e}");
}

// === issuer templates ===

const T1: &str = "11111111-2222-3333-4444-555555555555";
const T2: &str = "22222222-2222-3333-4444-555555555555";
const T3: &str = "33333333-2222-3333-4444-555555555555";

fn entra(tid: &str, claimed_tid: Option<&str>) -> String {
    let mut c =
        claims_with(json!({"iss": format!("https://login.microsoftonline.com/{tid}/v2.0")}));
    if let Some(t) = claimed_tid {
        c["tid"] = json!(t);
    }
    token(c)
}

fn tenant_engine(rules: &str) -> Engine {
    engine_with(
        &format!(
            "    tenants: [{T1}, {T2}]\n    claims_to_headers:\n      - {{header: x-tenant, claim: tid}}\n"
        ),
        "https://login.microsoftonline.com/{tid}/v2.0",
        rules,
    )
}

#[test]
fn allows_two_tenants_under_one_templated_provider() {
    let e = tenant_engine("  - name: api\n    match: {}\n");
    for tid in [T1, T2] {
        let d = decide(&e, &Method::GET, "/x", &bearer(&entra(tid, Some(tid))));
        assert_eq!(set_headers(&d), [("x-tenant".to_owned(), tid.to_owned())]);
    }
}

#[test]
fn denies_a_third_tenant_and_tokens_whose_iss_and_tid_disagree() {
    let e = tenant_engine("  - name: api\n    match: {}\n");
    for (t, why) in [
        (entra(T3, Some(T3)), "tenant not on the list"),
        (entra(T1, Some(T2)), "iss names T1, tid T2"),
        (entra(T2, Some(T1)), "iss names T2, tid T1"),
        (entra(T1, None), "no tid"),
        (entra(&format!("{T1}/x"), Some(T1)), "two segments"),
        (token(claims_with(json!({"tid": T1}))), "another issuer"),
    ] {
        let d = decide(&e, &Method::GET, "/x", &bearer(&t));
        assert_eq!((d.status(), reason(&d)), (401, "issuer_mismatch"), "{why}");
    }
    // Without an allow-list, any tenant whose iss and tid agree.
    let open = engine_with(
        "",
        "https://login.microsoftonline.com/{tid}/v2.0",
        "  - name: api\n    match: {}\n",
    );
    assert_eq!(
        reason(&decide(
            &open,
            &Method::GET,
            "/x",
            &bearer(&entra(T3, Some(T3)))
        )),
        "allow"
    );
    let d = decide(&open, &Method::GET, "/x", &bearer(&entra(T3, Some(T1))));
    assert_eq!(reason(&d), "issuer_mismatch");
}

#[test]
fn rules_read_the_bound_tenant_as_its_claim() {
    let e = tenant_engine(&format!(
        "  - name: t1-only\n    match: {{path: /t1}}\n    claims: {{tid: [{T1}]}}\n    headers: {{x-org: \"org-{{{{ claims.tid }}}}\"}}\n"
    ));
    let d = decide(&e, &Method::GET, "/t1", &bearer(&entra(T1, Some(T1))));
    assert!(set_headers(&d).contains(&("x-org".to_owned(), format!("org-{T1}"))));
    let d = decide(&e, &Method::GET, "/t1", &bearer(&entra(T2, Some(T2))));
    assert_eq!((d.status(), reason(&d)), (403, "claim_mismatch"));
}

#[test]
fn finds_the_templated_provider_among_others_by_its_prefix() {
    let k = b64::encode(SECRET);
    let other = format!(
        "  - name: plain\n    issuer: https://idp\n    audiences: [api]\n    jwks:\n      inline: {{\"keys\":[{{\"kty\":\"oct\",\"k\":\"{k}\",\"kid\":\"h1\"}}]}}\n    claims_to_headers:\n      - {{header: x-provider, claim: iss}}\n"
    );
    let e = engine_with(
        &other,
        "https://login.microsoftonline.com/{tid}/v2.0",
        "  - name: api\n    match: {}\n",
    );
    let d = decide(&e, &Method::GET, "/x", &bearer(&entra(T3, Some(T3))));
    let Decision::Allow(a) = &d else {
        panic!("{d:?}")
    };
    assert_eq!(&*a.identity.as_ref().unwrap().provider, "corp");
    let d = decide(
        &e,
        &Method::GET,
        "/x",
        &bearer(&token(claims_with(json!({})))),
    );
    let Decision::Allow(a) = &d else {
        panic!("{d:?}")
    };
    assert_eq!(&*a.identity.as_ref().unwrap().provider, "plain");
    let d = decide(&e, &Method::GET, "/x", &bearer(&entra(T3, Some(T1))));
    assert_eq!(reason(&d), "issuer_mismatch");
}

#[test]
fn rejects_bad_issuer_templates_and_stray_tenants() {
    let k = b64::encode(SECRET);
    for (issuer, tenants, field) in [
        ("https://x/{tid", "", "providers[0].issuer"),
        ("https://x/{a}{b}", "", "providers[0].issuer"),
        (
            "https://{a}.x/{b}",
            "    tenants: [t]\n",
            "providers[0].issuer",
        ),
        ("https://x/", "    tenants: [t]\n", "providers[0].tenants"),
        (
            "https://x/{tid}",
            "    tenants: []\n",
            "providers[0].tenants",
        ),
        (
            "https://x/{tid}",
            "    tenants: [a/b]\n",
            "providers[0].tenants",
        ),
    ] {
        let text = format!(
            "providers:\n  - name: a\n    issuer: \"{issuer}\"\n{tenants}    jwks:\n      inline: {{\"keys\":[{{\"kty\":\"oct\",\"k\":\"{k}\"}}]}}\n"
        );
        let e = config::parse(&text, "t.yaml", Path::new("."), &|_| None).unwrap_err();
        assert_eq!(e.field, field, "{issuer}: {e}");
        assert!(e.line >= 2, "{e}");
    }
}

// === when: (CEL) ===

fn when_engine(when: &str) -> Engine {
    engine_with(
        "",
        "https://idp",
        &format!(
            "  - name: cond\n    match: {{path: \"/c/**\"}}\n    when: '{when}'\n  - name: open\n    match: {{path: \"/open/**\"}}\n    allow: anonymous\n    when: 'request.method == \"GET\"'\n"
        ),
    )
}

fn with_headers(t: &str, extra: &[(&str, &str)]) -> HeaderMap {
    let mut h = bearer(t);
    for (n, v) in extra {
        h.append(
            http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

#[test]
fn allows_and_denies_by_a_condition_over_claims() {
    let e = when_engine(r#"claims.groups.exists(g, g == "finance") && claims.level >= 3"#);
    let t = token(claims_with(
        json!({"groups": ["dev", "finance"], "level": 3}),
    ));
    assert_eq!(
        reason(&decide(&e, &Method::GET, "/c/r", &bearer(&t))),
        "allow"
    );
    let t = token(claims_with(json!({"groups": ["dev"], "level": 9})));
    let d = decide(&e, &Method::GET, "/c/r", &bearer(&t));
    assert_eq!((d.status(), reason(&d)), (403, "condition_failed"));
    let Decision::Deny(deny) = &d else {
        unreachable!()
    };
    assert_eq!(
        deny.body(),
        r#"{"error":"access_denied","reason":"condition_failed"}"#
    );
    assert_eq!(deny.www_authenticate(), None);
}

#[test]
fn allows_and_denies_by_a_condition_over_the_jose_header() {
    let e = when_engine(r#"header.kid == "h1" && header.alg == "HS256""#);
    let t = token(claims_with(json!({})));
    assert_eq!(
        reason(&decide(&e, &Method::GET, "/c/r", &bearer(&t))),
        "allow"
    );
    let e = when_engine(r#"header.kid == "other""#);
    assert_eq!(
        reason(&decide(&e, &Method::GET, "/c/r", &bearer(&t))),
        "condition_failed"
    );
}

#[test]
fn allows_and_denies_by_a_condition_over_the_request() {
    let e = when_engine(
        r#"request.method == "GET" && request.host == "api.example.com" && request.path.startsWith("/c/reports") && request.headers["x-env"] == "prod""#,
    );
    let t = token(claims_with(json!({})));
    let ok = with_headers(&t, &[("x-env", "prod")]);
    assert_eq!(
        reason(&decide(&e, &Method::GET, "/c/reports/1?x=1", &ok)),
        "allow"
    );
    // The canonical path: dot segments removed before the condition reads it.
    assert_eq!(
        reason(&decide(&e, &Method::GET, "/c/x/../reports/1", &ok)),
        "allow"
    );
    for (method, path, headers) in [
        (Method::POST, "/c/reports/1", ok.clone()),
        (Method::GET, "/c/other", ok.clone()),
        (
            Method::GET,
            "/c/reports/1",
            with_headers(&t, &[("x-env", "dev")]),
        ),
    ] {
        let d = decide(&e, &method, path, &headers);
        assert_eq!(reason(&d), "condition_failed", "{method} {path}");
    }
    // A header that is absent is a run-time error: denied, never allowed.
    let d = decide(&e, &Method::GET, "/c/reports/1", &bearer(&t));
    assert_eq!((d.status(), reason(&d)), (403, "condition_failed"));
    // Anonymous rules evaluate it too (with empty claims).
    let e = when_engine("true");
    assert_eq!(
        reason(&decide(&e, &Method::GET, "/open/x", &HeaderMap::new())),
        "allow"
    );
    let d = decide(&e, &Method::POST, "/open/x", &HeaderMap::new());
    assert_eq!(reason(&d), "condition_failed");
}

#[test]
fn allows_and_denies_by_a_condition_over_now() {
    let e = when_engine("claims.exp - now > 300");
    let t = token(claims_with(json!({})));
    assert_eq!(
        reason(&decide(&e, &Method::GET, "/c/r", &bearer(&t))),
        "allow"
    );
    let mut c = claims_with(json!({}));
    c["exp"] = json!(NOW + 100);
    assert_eq!(
        reason(&decide(&e, &Method::GET, "/c/r", &bearer(&token(c)))),
        "condition_failed"
    );
}

#[test]
fn denies_when_the_condition_fails_at_run_time() {
    let t = token(claims_with(json!({"groups": "not-a-list", "n": 0})));
    for when in [
        "claims.missing == 1",                  // no such key
        r#"claims.groups.exists(g, g == "x")"#, // `exists` over a string
        "1 / claims.n == 1",                    // division by zero
        r#"claims.sub"#,                        // not a boolean
        r#"claims.sub + 1 == 2"#,               // no such overload
    ] {
        let e = when_engine(when);
        let d = decide(&e, &Method::GET, "/c/r", &bearer(&t));
        assert_eq!(
            (d.status(), reason(&d)),
            (403, "condition_failed"),
            "{when}"
        );
    }
}

#[test]
fn condition_reads_the_cached_identity() {
    let e = when_engine(r#"claims.sub == "alice""#);
    let t = token(claims_with(json!({})));
    for _ in 0..3 {
        assert_eq!(
            reason(&decide(&e, &Method::GET, "/c/r", &bearer(&t))),
            "allow"
        );
    }
    assert_eq!(e.cache_stats().hits.load(Ordering::Relaxed), 2);
    assert_eq!(e.cache_stats().misses.load(Ordering::Relaxed), 1);
}

#[test]
fn rejects_conditions_that_do_not_compile_with_their_position() {
    for (when, line, column, what) in [
        ("claims.sub ==", 1, 14, "Syntax error"),
        (
            "claims.sub == \"a\" && body.x",
            1,
            22,
            "\"body\" is not a variable",
        ),
        (
            "claims.groups.exists(g, g == x)",
            1,
            30,
            "\"x\" is not a variable",
        ),
        ("Foo{a: 1}", 1, 4, "no message types"),
        ("claims.level + 1", 1, 14, "arithmetic, never a boolean"),
        ("\"yes\"", 1, 1, "never a boolean"),
        ("[true]", 1, 1, "a list, never a boolean"),
    ] {
        let k = b64::encode(SECRET);
        let text = format!(
            "providers:\n  - name: a\n    jwks:\n      inline: {{\"keys\":[{{\"kty\":\"oct\",\"k\":\"{k}\"}}]}}\nrules:\n  - name: r\n    when: '{when}'\n"
        );
        let e = config::parse(&text, "t.yaml", Path::new("."), &|_| None).unwrap_err();
        assert_eq!(
            (e.line, e.field.as_str()),
            (7, "rules[0].when"),
            "{when}: {e}"
        );
        assert!(
            e.problem
                .starts_with(&format!("at {line}:{column} of the expression")),
            "{when}: {e}"
        );
        assert!(e.problem.contains(what), "{when}: {e}");
        assert!(
            e.to_string().starts_with("t.yaml:7: rules[0].when: at "),
            "{e}"
        );
    }
    // Comprehension variables are the expression's own.
    assert!(
        crate::condition::Condition::compile(
            "claims.groups.all(g, g != \"\") && [1].map(x, x + now).size() == 1"
        )
        .is_ok()
    );
}
