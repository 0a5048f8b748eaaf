use std::path::Path;

use http::{HeaderMap, HeaderValue, Method};
use portcullis_jose::{Algorithm, SigningKey};
use serde_json::json;

use super::*;
use crate::config;

const NOW: i64 = 1_700_000_000;
const SECRET: &[u8] = b"secret-secret-secret-secret-secret";

fn engine(rules: &str) -> Engine {
    engine_with_headers("{header: x-user, claim: sub}", rules)
}

/// The test provider with `claims_to_headers: [HEADERS]`, and `rules`.
fn engine_with_headers(headers: &str, rules: &str) -> Engine {
    let k = b64::encode(SECRET);
    let text = format!(
        r#"
providers:
  - name: corp
    issuer: https://idp
    audiences: [api]
    jwks:
      inline: {{"keys":[{{"kty":"oct","k":"{k}","kid":"h1"}}]}}
    from:
      - header: Authorization
        prefix: "Bearer "
      - cookie: session
    claims_to_headers:
      - {headers}
{rules}"#
    );
    let config = config::parse(&text, "t.yaml", Path::new("."), &|_| None).unwrap();
    Engine::with_static_keys(config)
}

fn token(claims: serde_json::Value) -> String {
    let key = SigningKey::from_secret(SECRET, Algorithm::HS256).unwrap();
    key.encode(
        Some("h1"),
        &Default::default(),
        claims.to_string().as_bytes(),
    )
    .unwrap()
}

fn good_claims() -> serde_json::Value {
    json!({"iss": "https://idp", "aud": "api", "sub": "alice", "exp": NOW + 600, "groups": ["dev", "admins"], "scope": "read write", "tenant": "acme"})
}

fn request_with(headers: &HeaderMap, path: &str, f: impl FnOnce(&Decision)) {
    let req = AuthRequest::new(&Method::GET, "api.example.com", path, headers);
    let d = engine(RULES).decide(&req, NOW);
    f(&d);
}

fn bearer(t: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {t}")).unwrap(),
    );
    h
}

const RULES: &str = r#"
rules:
  - name: health
    match: {path: /healthz}
    allow: anonymous
  - name: admin
    match: {path: "/admin/**", methods: [GET]}
    claims: {groups: [admins, ops]}
    scopes: [write]
    headers: {x-tenant: "{{ claims.tenant }}"}
  - name: ops
    match: {path: "/ops/**"}
    claims: {groups: ops}
  - name: scoped
    match: {path: "/billing/**"}
    scopes: [billing]
  - name: api
    match: {path: "/api/**"}
"#;

fn reason(d: &Decision) -> &'static str {
    d.reason().map_or("allow", |r| r.as_str())
}

#[test]
fn allows_anonymous_rule_without_token() {
    request_with(&HeaderMap::new(), "/healthz", |d| {
        assert_eq!(reason(d), "allow");
        let Decision::Allow(a) = d else {
            unreachable!()
        };
        assert!(a.remove_headers.iter().any(|h| h == "x-user"));
    });
}

#[test]
fn denies_unmatched_request_with_no_rule() {
    request_with(&HeaderMap::new(), "/elsewhere", |d| {
        assert_eq!((d.status(), reason(d)), (403, "no_rule"));
    });
}

#[test]
fn denies_missing_token_with_401() {
    request_with(&HeaderMap::new(), "/api/x", |d| {
        assert_eq!((d.status(), reason(d)), (401, "token_missing"));
        let Decision::Deny(deny) = d else {
            unreachable!()
        };
        assert_eq!(
            deny.www_authenticate().as_deref(),
            Some(r#"Bearer realm="portcullis""#)
        );
        assert_eq!(
            deny.body(),
            r#"{"error":"unauthorized","reason":"token_missing"}"#
        );
    });
}

#[test]
fn allows_valid_token_and_sets_identity_headers() {
    let t = token(good_claims());
    request_with(&bearer(&t), "/admin/users", |d| {
        let Decision::Allow(a) = d else {
            panic!("{d:?}")
        };
        let set: Vec<_> = a
            .set_headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.to_str().unwrap()))
            .collect();
        assert_eq!(set, vec![("x-user", "alice"), ("x-tenant", "acme")]);
        // Nothing set is removed; only the other spellings of those headers are
        // (issue 10: `x_user` reads as `x-user` to CGI and WSGI upstreams).
        let removed: Vec<&str> = a.remove_headers.iter().map(|h| h.as_str()).collect();
        assert_eq!(removed, ["x_user", "x_tenant"]);
        assert_eq!(a.cache_max_age, Some(600));
    });
}

#[test]
fn denies_invalid_tokens_with_their_reason() {
    let mut c = good_claims();
    c["exp"] = json!(NOW - 3600);
    request_with(&bearer(&token(c)), "/api/x", |d| {
        assert_eq!((d.status(), reason(d)), (401, "token_expired"))
    });
    let mut c = good_claims();
    c["iss"] = json!("https://evil");
    request_with(&bearer(&token(c)), "/api/x", |d| {
        assert_eq!(reason(d), "issuer_mismatch")
    });
    let mut c = good_claims();
    c["aud"] = json!("other");
    request_with(&bearer(&token(c)), "/api/x", |d| {
        assert_eq!(reason(d), "audience_mismatch")
    });
    let mut t = token(good_claims());
    t.push('A');
    request_with(&bearer(&t), "/api/x", |d| {
        assert!(matches!(reason(d), "signature_invalid" | "token_malformed"));
        let Decision::Deny(deny) = d else {
            unreachable!()
        };
        assert!(
            deny.www_authenticate()
                .unwrap()
                .contains(r#"error="invalid_token""#)
        );
    });
    request_with(&bearer("not.a.jwt"), "/api/x", |d| {
        assert_eq!(reason(d), "token_malformed")
    });
}

#[test]
fn deny_hints_name_kid_iss_and_sub_of_signed_and_unsigned_tokens() {
    let hints = |t: &str| {
        let mut out = None;
        request_with(&bearer(t), "/api/x", |d| {
            let Decision::Deny(deny) = d else {
                panic!("expected a deny")
            };
            let h = &deny.token_hints;
            out = Some((h.kid.clone(), h.iss.clone(), h.sub.clone()));
        });
        out.unwrap()
    };
    let named = (
        Some("h1".to_owned()),
        Some("https://idp".to_owned()),
        Some("alice".to_owned()),
    );
    // Signature held, claims failed: taken from what verified.
    let mut c = good_claims();
    c["exp"] = json!(NOW - 3600);
    assert_eq!(hints(&token(c)), named);
    // Signature failed: read (untrusted) from the token itself.
    let t = token(good_claims());
    let (head, sig) = t.rsplit_once('.').unwrap();
    let other = if sig.starts_with('A') { 'B' } else { 'A' };
    let forged = format!("{head}.{other}{}", &sig[1..]);
    assert_eq!(hints(&forged), named);
}

#[test]
fn denies_missing_claim_with_403() {
    let mut c = good_claims();
    c["groups"] = json!(["dev"]);
    request_with(&bearer(&token(c)), "/admin/x", |d| {
        assert_eq!((d.status(), reason(d)), (403, "claim_mismatch"))
    });
    request_with(&bearer(&token(good_claims())), "/ops/x", |d| {
        assert_eq!(reason(d), "claim_mismatch")
    });
}

#[test]
fn allows_scalar_claim_requirement_matching_array_element() {
    let mut c = good_claims();
    c["groups"] = json!(["ops"]);
    request_with(&bearer(&token(c)), "/ops/x", |d| {
        assert_eq!(reason(d), "allow")
    });
}

#[test]
fn denies_missing_scope_with_insufficient_scope() {
    request_with(&bearer(&token(good_claims())), "/billing/x", |d| {
        assert_eq!((d.status(), reason(d)), (403, "scope_missing"));
        let Decision::Deny(deny) = d else {
            unreachable!()
        };
        assert_eq!(
            deny.www_authenticate().as_deref(),
            Some(r#"Bearer error="insufficient_scope""#)
        );
    });
    let mut c = good_claims();
    c["scp"] = json!(["billing"]);
    request_with(&bearer(&token(c)), "/billing/x", |d| {
        assert_eq!(reason(d), "allow")
    });
}

#[test]
fn denies_two_different_tokens() {
    let mut h = bearer(&token(good_claims()));
    let mut c = good_claims();
    c["sub"] = json!("mallory");
    h.insert(
        "cookie",
        HeaderValue::from_str(&format!("session={}", token(c))).unwrap(),
    );
    request_with(&h, "/api/x", |d| {
        assert_eq!((d.status(), reason(d)), (401, "token_malformed"))
    });
}

#[test]
fn allows_token_from_cookie() {
    let mut h = HeaderMap::new();
    h.insert(
        "cookie",
        HeaderValue::from_str(&format!("a=b; session={}", token(good_claims()))).unwrap(),
    );
    request_with(&h, "/api/x", |d| assert_eq!(reason(d), "allow"));
}

#[test]
fn denies_traversal_into_protected_path() {
    request_with(&HeaderMap::new(), "/healthz/../admin/x", |d| {
        assert_eq!(reason(d), "token_missing")
    });
    request_with(&HeaderMap::new(), "/healthz?/../admin", |d| {
        assert_eq!(reason(d), "allow")
    });
}

#[test]
fn allows_with_extra_claims_only_when_they_hold() {
    let e = engine(RULES);
    let h = bearer(&token(good_claims()));
    let extra = [
        ("groups".to_owned(), "admins".to_owned()),
        ("groups".to_owned(), "nobody".to_owned()),
    ];
    let mut req = AuthRequest::new(&Method::GET, "h", "/api/x", &h);
    req.extra_claims = &extra;
    assert_eq!(reason(&e.decide(&req, NOW)), "allow");
    let extra = [("groups".to_owned(), "nobody".to_owned())];
    req.extra_claims = &extra;
    assert_eq!(reason(&e.decide(&req, NOW)), "claim_mismatch");
}

#[test]
fn selects_rule_by_name() {
    let e = engine(RULES);
    let h = HeaderMap::new();
    let mut req = AuthRequest::new(&Method::GET, "h", "/admin/x", &h);
    req.rule = Some("health");
    assert_eq!(reason(&e.decide(&req, NOW)), "allow");
    req.rule = Some("nope");
    assert_eq!(reason(&e.decide(&req, NOW)), "no_rule");
}

#[test]
fn cache_never_outlives_exp_or_key_set() {
    let e = engine(RULES);
    let mut c = good_claims();
    c["exp"] = json!(NOW + 10);
    let h = bearer(&token(c));
    let req = AuthRequest::new(&Method::GET, "h", "/api/x", &h);
    assert_eq!(reason(&e.decide(&req, NOW)), "allow");
    assert_eq!(reason(&e.decide(&req, NOW + 1)), "allow");
    assert_eq!(e.cache_stats().hits.load(Ordering::Relaxed), 1);
    // exp + skew (60 s) is where the verifier stops, cached or not.
    assert_eq!(reason(&e.decide(&req, NOW + 70)), "token_expired");
    assert_eq!(reason(&e.decide(&req, NOW + 5)), "allow");
    // A new key set (rotation) drops what was verified under the old one.
    let other = portcullis_jose::KeySet::new(vec![]);
    e.providers()[0].slot().store(other);
    assert_eq!(reason(&e.decide(&req, NOW + 5)), "key_not_found");
}

#[test]
fn denies_when_provider_has_no_keys() {
    let text = "providers:\n  - name: remote\n    jwks: {uri: http://127.0.0.1:1/jwks}\nrules:\n  - name: all\n";
    let config = config::parse(text, "t.yaml", Path::new("."), &|_| None).unwrap();
    let e = Engine::new(config, vec![]);
    assert!(!e.is_ready());
    let h = bearer(&token(good_claims()));
    let req = AuthRequest::new(&Method::GET, "h", "/", &h);
    assert_eq!(reason(&e.decide(&req, NOW)), "key_not_found");
}

/// Rules that read no claims: identities keep no claim parsed (and no token), and
/// what a request does read (claim requirements from the proxy) is parsed again for
/// it from the request's token.
const PLAIN_RULES: &str = r#"
rules:
  - name: api
    match: {path: "/api/**"}
"#;

#[test]
fn identities_keep_only_the_token_when_no_rule_reads_claims_and_decide_the_same() {
    let plain = engine(PLAIN_RULES);
    assert!(plain.kept_claims.is_empty());
    let mut kept = engine(RULES).kept_claims;
    kept.sort();
    assert_eq!(kept, ["groups", "iss", "scope", "scp", "sub", "tenant"]);
    let h = bearer(&token(good_claims()));
    let admins = [("groups".to_owned(), "admins".to_owned())];
    let other_tenant = [("tenant".to_owned(), "other".to_owned())];
    let mut req = AuthRequest::new(&Method::GET, "h", "/api/x", &h);
    for round in 0..2 {
        // The first round verifies, the second is a cache hit.
        let Decision::Allow(allow) = plain.decide(&req, NOW) else {
            panic!("round {round}: expected an allow")
        };
        let identity = allow.identity.unwrap();
        // The identity keeps no token (the cache keys on its digest): every claim
        // comes from the request's token.
        assert!(identity.claims().members().is_empty());
        assert_eq!(
            identity.claims_with(Some(h_token(&h))).subject(),
            Some("alice")
        );
        assert!(identity.kept_claims().members().is_empty());
        assert_eq!(identity.headers.len(), 1, "x-user from claims_to_headers");
        req.extra_claims = &admins;
        assert_eq!(reason(&plain.decide(&req, NOW)), "allow");
        req.extra_claims = &other_tenant;
        let d = plain.decide(&req, NOW);
        assert_eq!(reason(&d), "claim_mismatch");
        let Decision::Deny(deny) = d else {
            unreachable!()
        };
        assert_eq!(deny.token_hints.sub.as_deref(), Some("alice"));
        req.extra_claims = &[];
    }
    assert!(plain.cache_stats().hits.load(Ordering::Relaxed) >= 3);
}

#[test]
fn an_identity_weighs_its_kept_claims_not_its_token() {
    let json = serde_json::to_vec(&good_claims()).unwrap();
    let token: Arc<str> = Arc::from(format!("e30.{}.c2ln", b64::encode(&json)));
    let all = Claims::from_json(&json).unwrap();
    let bare = Identity::new(
        Arc::from("corp"),
        token.clone(),
        Claims::default(),
        None,
        Vec::new(),
    );
    let kept = Identity::new(Arc::from("corp"), token, all.clone(), None, Vec::new());
    assert_eq!(bare.claims(), all);
    assert_eq!(bare.claims_json(), Some(json.clone()));
    assert!(bare.estimated_bytes() < 256, "the token is the cache key's");
    assert!(kept.estimated_bytes() > 3 * json.len());
}

#[test]
fn identities_keep_parsed_only_the_claims_rules_read() {
    let e = engine(RULES);
    let mut c = good_claims();
    c["realm_access"] = json!({"roles": ["x"]});
    let h = bearer(&token(c));
    let req = AuthRequest::new(&Method::GET, "h", "/admin/x", &h);
    for round in 0..2 {
        let Decision::Allow(allow) = e.decide(&req, NOW) else {
            panic!("round {round}: expected an allow")
        };
        let identity = allow.identity.unwrap();
        let mut kept: Vec<&str> = identity
            .kept_claims()
            .members()
            .keys()
            .map(String::as_str)
            .collect();
        kept.sort_unstable();
        assert_eq!(kept, ["groups", "iss", "scope", "sub", "tenant"]);
        // Every claim, from the request's token (the identity keeps none).
        assert!(
            identity
                .claims_with(Some(h_token(&h)))
                .get("realm_access")
                .is_some()
        );
        // Rule headers come from the kept claims, provider headers from all of them.
        let set: Vec<(&str, &str)> = allow
            .set_headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.to_str().unwrap()))
            .collect();
        assert!(set.contains(&("x-tenant", "acme")), "{set:?}");
        assert!(set.contains(&("x-user", "alice")), "{set:?}");
    }
    assert_eq!(e.cache_stats().hits.load(Ordering::Relaxed), 1);
}

#[test]
fn claims_rules_read_names_dotted_paths_whole_and_by_first_step() {
    let e = engine(
        r#"
rules:
  - name: a
    claims: {realm_access.roles: [admin], "https://x.example/tier": [gold]}
    headers: {x-org: "org {{ claims.org.name }}"}
"#,
    );
    let mut kept = e.kept_claims.clone();
    kept.sort();
    assert_eq!(
        kept,
        [
            "https://x",
            "https://x.example/tier",
            "iss",
            "org",
            "org.name",
            "realm_access",
            "realm_access.roles",
            "sub"
        ]
    );
}

const READING_RULES: &str = r#"
rules:
  - name: ops-host
    match: {host: ops.test, path: "/**"}
    claims: {groups: [ops]}
  - name: public
    match: {path: "/public/**"}
    allow: anonymous
  - name: admin
    match: {path: "/admin/**"}
    claims: {groups: [admins]}
  - name: open
    match: {path: "/**"}
    allow: anonymous
"#;

fn decide_at(engine: &Engine, host: &str, path: &str, headers: &HeaderMap) -> Decision {
    engine.decide(&AuthRequest::new(&Method::GET, host, path, headers), NOW)
}

/// Issue 10, class 1: `/public/..%2fadmin/x` matched `/public/**`; it is refused now
/// (`escaped_slashes: reject`, the default), and read as `/admin/x` with `decode`.
#[test]
fn regression_issue10_escaped_slash_does_not_reach_public_rule() {
    let e = engine(READING_RULES);
    let none = HeaderMap::new();
    for path in [
        "/public/..%2fadmin/x",
        "/public/..%5cadmin/x",
        "/public/..\\admin/x",
    ] {
        let d = decide_at(&e, "api.test", path, &none);
        assert_eq!(reason(&d), "request_invalid", "{path}");
        assert_eq!(d.status(), 400, "{path}");
    }
    let decode = engine(&format!(
        "request: {{escaped_slashes: decode}}\n{READING_RULES}"
    ));
    let d = decide_at(&decode, "api.test", "/public/..%2fadmin/x", &none);
    assert_eq!(reason(&d), "token_missing", "read as /admin/x");
    let keep = engine(&format!(
        "request: {{escaped_slashes: keep}}\n{READING_RULES}"
    ));
    let d = decide_at(&keep, "api.test", "/public/..%2fadmin/x", &none);
    assert!(
        matches!(d, Decision::Allow(_)),
        "keep is unsafe, and documented so"
    );
}

/// Issue 10, class 2: `/admin//../public/x` was read `/public/x` (anonymous).
#[test]
fn regression_issue10_dot_segments_in_rfc_order() {
    let e = engine(READING_RULES);
    let d = decide_at(&e, "api.test", "/admin//../public/x", &HeaderMap::new());
    assert_eq!(reason(&d), "request_invalid");
    let d = decide_at(&e, "api.test", "/public/%2e%2e/admin/x", &HeaderMap::new());
    assert_eq!(reason(&d), "token_missing");
}

/// Issue 10, class 4: `ops.test.` fell through to the anonymous `/**` rule.
#[test]
fn regression_issue10_trailing_dot_host_matches_its_rule() {
    let e = engine(READING_RULES);
    for host in ["ops.test.", "OPS.TEST", "ops.test.:8443", "ops.test:80"] {
        let d = decide_at(&e, host, "/x", &HeaderMap::new());
        assert_eq!(reason(&d), "token_missing", "{host}");
    }
    let d = decide_at(&e, "ops.test:80:80", "/x", &HeaderMap::new());
    assert_eq!(reason(&d), "request_invalid");
}

/// Issue 10, class 6: a client's `x_user` is removed like `x-user`, on anonymous
/// allows and on allows with a token; where the proxy cannot remove it, refused.
#[test]
fn regression_issue10_identity_header_spellings_are_removed() {
    let e = engine(READING_RULES);
    let mut headers = bearer(&token(
        json!({"iss": "https://idp", "aud": "api", "sub": "alice", "exp": NOW + 600, "groups": ["admins"]}),
    ));
    headers.insert("x_user", HeaderValue::from_static("mallory"));
    headers.insert("x_other", HeaderValue::from_static("kept"));
    for path in ["/public/x", "/admin/x"] {
        match decide_at(&e, "api.test", path, &headers) {
            Decision::Allow(a) => {
                assert!(a.remove_headers.iter().any(|h| h == "x_user"), "{path}");
                assert!(!a.remove_headers.iter().any(|h| h == "x_other"), "{path}");
            }
            d => panic!("{path}: {d:?}"),
        }
    }
    // Named even when the request does not show it: Envoy's HTTP mode forwards only
    // its allowed_headers to us, the upstream gets the rest.
    match decide_at(&e, "api.test", "/public/x", &HeaderMap::new()) {
        Decision::Allow(a) => assert!(a.remove_headers.iter().any(|h| h == "x_user")),
        d => panic!("{d:?}"),
    }
    assert_eq!(
        other_spellings(&HeaderName::from_static("x-auth-user"))
            .iter()
            .map(|h| h.as_str())
            .collect::<Vec<_>>(),
        ["x_auth-user", "x-auth_user", "x_auth_user"]
    );
    let mut req = AuthRequest::new(&Method::GET, "api.test", "/public/x", &headers);
    req.removes_headers = false;
    assert_eq!(reason(&e.decide(&req, NOW)), "request_invalid");
    assert!(e.is_identity_spelling(b"X_User") && e.is_identity_spelling(b"x-user"));
    assert!(!e.is_identity_spelling(b"x_users"));
}

/// Issue 10, class 6: `Connection: close, x-user` makes a proxy drop the identity
/// header we set (Caddy): refused.
#[test]
fn regression_issue10_connection_naming_identity_header_is_refused() {
    let e = engine(READING_RULES);
    let mut headers = HeaderMap::new();
    headers.insert("connection", HeaderValue::from_static("close, X-User"));
    let d = decide_at(&e, "api.test", "/public/x", &headers);
    assert_eq!(reason(&d), "request_invalid");
    headers.insert(
        "connection",
        HeaderValue::from_static("keep-alive, upgrade"),
    );
    assert!(matches!(
        decide_at(&e, "api.test", "/public/x", &headers),
        Decision::Allow(_)
    ));
}

#[test]
fn escaped_slashes_config_is_checked() {
    let err = config::parse(
        "request: {escaped_slashes: unescape}\n",
        "t.yaml",
        Path::new("."),
        &|_| None,
    )
    .unwrap_err();
    assert_eq!(err.field, "request.escaped_slashes");
    assert_eq!(err.line, 1);
}

/// Issue 10, bug 3: the key set and its generation were two atomics, stored one
/// after the other and read one after the other. A verification that read the old
/// keys, with a rotation landing before it read the generation, cached the token
/// under the new generation: it stayed allowed until its `exp` though its key was
/// gone. Now a verification reads one snapshot and caches under that snapshot's
/// generation. The interleaving, made deterministic: verify against snapshot A
/// (taken before the rotation), rotate to B without the key, then decide under B.
#[test]
fn regression_issue10_cache_entry_is_bound_to_the_snapshot_it_verified_against() {
    let e = engine(RULES);
    let h = bearer(&token(good_claims()));
    let req = AuthRequest::new(&Method::GET, "h", "/api/x", &h);
    let rule = e.rules.iter().find(|r| &*r.name == "api").unwrap();
    let slot = e.providers()[0].slot().clone();
    let a = slot.snapshot();
    // The rotation lands while the verification is between its reads.
    slot.store(portcullis_jose::KeySet::new(vec![]));
    assert!(
        e.verify_with(
            0,
            &a,
            h_token(&h),
            Some(&e.cache.as_ref().unwrap().digest(h_token(&h))),
            rule,
            NOW,
            &mut NoTrace
        )
        .is_ok()
    );
    assert_eq!(e.cached_tokens(), 1, "verified under A, cached under A");
    // Under B the entry is stale: no hit, and the token has no key any more.
    assert_eq!(reason(&e.decide(&req, NOW)), "key_not_found");
    assert_eq!(e.cache_stats().hits.load(Ordering::Relaxed), 0);
    // And an entry made under the current snapshot is a hit while it lasts.
    let e = engine(RULES);
    assert_eq!(reason(&e.decide(&req, NOW)), "allow");
    assert_eq!(reason(&e.decide(&req, NOW)), "allow");
    assert_eq!(e.cache_stats().hits.load(Ordering::Relaxed), 1);
}

fn h_token(h: &HeaderMap) -> &str {
    h.get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap()
}

/// Issue 17, target 5: a decision builds only the claims it reads, and still checks
/// the whole payload as strictly as before.
#[test]
fn a_decision_builds_only_the_claims_it_reads_and_checks_all_of_them() {
    let e = engine(RULES);
    let names = e.providers[0].claims_read.as_deref().unwrap();
    for read in ["sub", "cnf", "groups", "scope", "tenant", "iss"] {
        assert!(names.iter().any(|n| n == read), "{read} in {names:?}");
    }
    assert!(!names.iter().any(|n| n == "realm_access"), "{names:?}");
    let key = SigningKey::from_secret(SECRET, Algorithm::HS256).unwrap();
    let raw = |payload: &str| {
        key.encode(Some("h1"), &Default::default(), payload.as_bytes())
            .unwrap()
    };
    let base = format!(
        r#""iss":"https://idp","aud":"api","sub":"alice","exp":{},"groups":["admins"],"scope":"write","tenant":"acme""#,
        NOW + 600
    );
    let decide = |t: &str, path: &str| {
        let h = bearer(t);
        e.decide(&AuthRequest::new(&Method::GET, "h", path, &h), NOW)
    };
    // An unread claim of any shape: allowed, as before.
    let ok = raw(&format!(
        r#"{{{base},"realm_access":{{"roles":["a",{{"b":[1,2.5,null]}}]}}}}"#
    ));
    assert_eq!(reason(&decide(&ok, "/admin/x")), "allow");
    // What the full parse refuses in a claim no rule reads is refused all the same.
    for bad in [
        r#""realm_access":{"roles":[],"roles":[]}"#,
        r#""realm_access":[{"x":1,"x":1}]"#,
        r#""big":1e400"#,
        r#""deep":[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]"#,
        r#""sub":"again""#,
        r#""\u0073ub":"escaped repeat""#,
    ] {
        for path in ["/admin/x", "/api/x"] {
            let d = decide(&raw(&format!("{{{base},{bad}}}")), path);
            assert_eq!(reason(&d), "token_malformed", "{bad} on {path}: {d:?}");
        }
    }
    // A claim provider headers read by a dotted path is built.
    let e = engine_with_headers(
        "{header: x-org, claim: org.name}",
        "rules:\n  - name: api\n    match: {path: \"/api/**\"}\n",
    );
    assert!(
        e.providers[0]
            .claims_read
            .as_deref()
            .unwrap()
            .iter()
            .any(|n| n == "org")
    );
    let h = bearer(&raw(&format!(r#"{{{base},"org":{{"name":"acme-eu"}}}}"#)));
    let Decision::Allow(a) = e.decide(&AuthRequest::new(&Method::GET, "h", "/api/x", &h), NOW)
    else {
        panic!("expected an allow")
    };
    assert!(
        a.set_headers
            .iter()
            .any(|(n, v)| n == "x-org" && v == "acme-eu"),
        "{:?}",
        a.set_headers
    );
}

#[test]
fn every_claim_is_built_for_a_when_condition() {
    let e = engine(
        r#"
rules:
  - name: cond
    when: 'claims.realm_access.roles.exists(r, r == "x")'
"#,
    );
    assert!(e.providers[0].claims_read.is_none());
    let mut c = good_claims();
    c["realm_access"] = json!({"roles": ["x"]});
    let h = bearer(&token(c));
    let d = e.decide(&AuthRequest::new(&Method::GET, "h", "/any", &h), NOW);
    assert_eq!(reason(&d), "allow", "{d:?}");
}
