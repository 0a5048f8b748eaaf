use std::path::Path;
use std::sync::Arc;

use http::{HeaderMap, HeaderValue, Method};
use portcullis_jose::{Algorithm, KeySet, SigningKey, VerifyingKey, b64};
use serde_json::json;

use crate::config;
use crate::keyslot::KeySlot;
use crate::request::{SessionCredential, VerifiedSession};
use crate::{AuthRequest, Decision, DenyReason, Engine, Introspected, IntrospectionOutcome};

const NOW: i64 = 1_700_000_000;
const SECRET: &[u8] = b"secret-secret-secret-secret-secret";
const OPAQUE: &str = "1ZvgX1UfuD-6CGYt-7qXkNsSouAghh88nRTd1TBPw9Y";

fn engine(extra_rules: &str) -> Engine {
    let k = b64::encode(SECRET);
    let text = format!(
        r#"
providers:
  - name: corp
    issuer: https://idp
    audiences: [api]
    algorithms: [HS256]
    jwks:
      inline: {{"keys":[{{"kty":"oct","k":"{k}","kid":"h1"}}]}}
    claims_to_headers:
      - {{header: x-user, claim: sub}}
rules:
  - name: health
    match: {{path: /healthz}}
    allow: anonymous
  - name: admin
    match: {{path: "/admin/**"}}
    claims: {{groups: [admins]}}
  - name: billing
    match: {{path: "/billing/**"}}
    scopes: [billing]
{extra_rules}  - name: api
    match: {{path: "/api/**", host: api.example.com}}
"#
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

fn good() -> serde_json::Value {
    json!({"iss": "https://idp", "aud": "api", "sub": "alice", "exp": NOW + 600, "groups": ["dev"], "scope": "read"})
}

fn with(claims: serde_json::Value, edit: impl FnOnce(&mut serde_json::Value)) -> String {
    let mut c = claims;
    edit(&mut c);
    token(c)
}

/// The engine of the exhaustive test: the HS256 provider above, a `spiffe`
/// provider (its bundle's key given to its slot, as the key source would), a
/// login provider with sessions, and rules for each kind of check.
struct Wide {
    engine: Engine,
    mesh: SigningKey,
}

const WIDE: &str = r#"
providers:
  - name: corp
    issuer: https://idp
    audiences: [api]
    algorithms: [HS256]
    jwks:
      inline: {"keys":[{"kty":"oct","k":"K","kid":"h1"}]}
    claims_to_headers:
      - {header: x-user, claim: sub}
  - name: mesh
    spiffe:
      trust_domain: example.org
      bundle: {file: bundle.json}
    audiences: [spiffe://example.org/backend]
  - name: sso
    issuer: https://sso.example.com
    jwks: {discovery: https://sso.example.com}
    login: {client_id: portcullis, client_secret: s3cret}
  - name: opaque
    issuer: https://op.example.com
    jwks: {discovery: https://op.example.com}
    introspection: {endpoint: https://op.example.com/introspect, client_id: rs, client_secret: s3cret}
sessions:
  public_url: https://auth.example.com/
  secret_file: session.key
rules:
  - name: health
    match: {path: /healthz}
    allow: anonymous
  - name: admin
    match: {path: "/admin/**"}
    providers: [corp]
    claims: {groups: [admins]}
  - name: billing
    match: {path: "/billing/**"}
    providers: [corp]
    scopes: [billing]
  - name: egress
    match: {host: backend.example.org}
    inject:
      audience: spiffe://example.org/backend
      socket: unix:///tmp/agent.sock
  - name: workloads
    match: {path: "/mesh/**"}
    providers: [mesh]
    spiffe_ids: ["spiffe://example.org/ns/*/sa/web"]
  - name: cond
    match: {path: "/cond/**"}
    providers: [corp]
    when: 'claims.sub == "bob" && request.method == "GET"'
  - name: strict
    match: {path: "/strict/**"}
    providers: [corp]
    when: "claims.level > 2"
  - name: app
    match: {path: "/app/**"}
    providers: [sso]
    login: sso
  - name: closed
    match: {path: "/closed/**"}
    allow: deny
  - name: pay
    match: {path: "/pay/**"}
    providers: [corp, sso]
    login: sso
    acr_values: [urn:gold]
    amr: [hwk]
  - name: opaque
    match: {path: "/opaque/**"}
    providers: [opaque]
  - name: peers
    match: {path: "/peers/**"}
    allow: anonymous
    peer_spiffe_ids: ["spiffe://example.org/ns/*/sa/web"]
  - name: api
    match: {path: "/api/**", host: api.example.com}
    providers: [corp]
"#;

fn wide() -> Wide {
    let text = WIDE.replace("\"K\"", &format!("{:?}", b64::encode(SECRET)));
    let config = config::parse(&text, "t.yaml", Path::new("/etc"), &|_| None).unwrap();
    let (mesh, _) = SigningKey::generate(Algorithm::ES256).unwrap();
    let verifying = VerifyingKey::try_new(
        mesh.public_material(),
        Some(portcullis_jose::Kid::new("m1")),
        Some(Algorithm::ES256),
    )
    .unwrap();
    let slots = config
        .providers
        .iter()
        .map(|p| match &p.jwks.source {
            config::JwksSource::Static(keys) => Arc::new(KeySlot::with_keys(keys.clone())),
            config::JwksSource::Spiffe(_) => {
                Arc::new(KeySlot::with_keys(KeySet::new(vec![verifying.clone()])))
            }
            _ => Arc::new(KeySlot::empty()),
        })
        .collect();
    Wide {
        engine: Engine::new(config, slots),
        mesh,
    }
}

impl Wide {
    fn svid(&self, sub: &str) -> String {
        let claims = json!({"sub": sub, "aud": ["spiffe://example.org/backend"], "exp": NOW + 300, "iat": NOW});
        self.mesh
            .encode(
                Some("m1"),
                &Default::default(),
                claims.to_string().as_bytes(),
            )
            .unwrap()
    }
}

/// A request: host, path, token, session.
struct Case {
    host: &'static str,
    path: &'static str,
    token: Option<String>,
    session: Option<SessionCredential>,
    /// The decider's introspection answer about the (opaque) token.
    introspected: Option<Introspected>,
}

/// A request that is denied for `reason`, and the step that must fail. The
/// match is exhaustive: a new reason code does not compile until explain has
/// a case, or is listed as produced only by a frontend.
fn case(w: &Wide, reason: DenyReason) -> Option<(Case, &'static str)> {
    let unsigned = |header: serde_json::Value| {
        format!(
            "{}.{}.{}",
            b64::encode(header.to_string().as_bytes()),
            b64::encode(good().to_string().as_bytes()),
            b64::encode(b"not a signature")
        )
    };
    let api = |token: Option<String>| Case {
        host: "api.example.com",
        path: "/api/x",
        token,
        session: None,
        introspected: None,
    };
    let at = |host, path, token| Case {
        host,
        path,
        token,
        session: None,
        introspected: None,
    };
    let opaque = |outcome| Case {
        introspected: Some(Introspected {
            provider: Arc::from("opaque"),
            token: Arc::from(OPAQUE),
            outcome,
        }),
        ..at("api.example.com", "/opaque/x", Some(OPAQUE.to_owned()))
    };
    Some(match reason {
        DenyReason::TokenMissing => (api(None), "token"),
        DenyReason::TokenMalformed => (api(Some("not.a-jwt".to_owned())), "format"),
        DenyReason::SignatureInvalid => (
            api(Some(unsigned(json!({"alg": "HS256", "kid": "h1"})))),
            "signature",
        ),
        DenyReason::AlgorithmNotAllowed => (
            api(Some(unsigned(json!({"alg": "RS256", "kid": "h1"})))),
            "algorithm",
        ),
        DenyReason::KeyNotFound => (
            api(Some(unsigned(json!({"alg": "HS256", "kid": "gone"})))),
            "key",
        ),
        DenyReason::IssuerMismatch => (
            api(Some(with(good(), |c| c["iss"] = json!("https://evil")))),
            "issuer",
        ),
        DenyReason::AudienceMismatch => (
            api(Some(with(good(), |c| c["aud"] = json!("other")))),
            "audience",
        ),
        DenyReason::TokenExpired => (
            api(Some(with(good(), |c| c["exp"] = json!(NOW - 3600)))),
            "exp",
        ),
        DenyReason::TokenNotYetValid => (
            api(Some(with(good(), |c| c["nbf"] = json!(NOW + 3600)))),
            "nbf",
        ),
        DenyReason::ClaimMismatch => (
            at("api.example.com", "/admin/x", Some(token(good()))),
            "claim",
        ),
        DenyReason::ScopeMissing => (
            at("api.example.com", "/billing/x", Some(token(good()))),
            "scopes",
        ),
        DenyReason::NoRule => (at("api.example.com", "/elsewhere", None), "rule"),
        DenyReason::RuleDenied => (at("api.example.com", "/closed/x", None), "rule"),
        DenyReason::RequestInvalid => (at("api.example.com", "/api/%2F..", None), "request"),
        DenyReason::SpiffeIdMismatch => (
            at(
                "api.example.com",
                "/mesh/x",
                Some(w.svid("spiffe://example.org/ns/default/sa/backend")),
            ),
            "spiffe_ids",
        ),
        // A token bound to a certificate the request does not present.
        DenyReason::CertificateMismatch => (
            api(Some(with(good(), |c| {
                c["cnf"] = json!({"x5t#S256": b64::encode(&[7u8; 32])});
            }))),
            "certificate",
        ),
        // A DPoP-bound token, and the provider does not take DPoP.
        DenyReason::DpopInvalid => (
            api(Some(with(good(), |c| c["cnf"] = json!({"jkt": "abc"})))),
            "dpop",
        ),
        DenyReason::TokenPresent => (
            at("backend.example.org", "/x", Some(token(good()))),
            "inject",
        ),
        // The token source has not filled the slot (none runs here).
        DenyReason::TokenUnavailable => (at("backend.example.org", "/x", None), "inject"),
        DenyReason::ConditionFailed => (
            at("api.example.com", "/cond/x", Some(token(good()))),
            "condition",
        ),
        DenyReason::LoginRequired => (at("app.example.com", "/app/x", None), "session"),
        DenyReason::SessionInvalid => (
            Case {
                session: Some(SessionCredential::Invalid {
                    detail: "tampered".to_owned(),
                }),
                ..at("app.example.com", "/app/x", None)
            },
            "session",
        ),
        // Produced by the proxy listener after an allow (no upstream for the
        // rule, or the upstream failed): explained as the `proxy` step of the
        // allow (`explains_what_the_proxy_listener_does`), and produced for real
        // by crates/cli/tests/explain_proxy.rs.
        DenyReason::NoUpstream | DenyReason::UpstreamUnavailable | DenyReason::UpstreamTimeout => {
            return None;
        }
        // Opaque tokens, with the answer the decider got from the provider.
        DenyReason::TokenInactive => (opaque(IntrospectionOutcome::Inactive), "active"),
        DenyReason::IntrospectionUnavailable => (
            opaque(IntrospectionOutcome::Unavailable {
                detail: "https://op.example.com/introspect answered HTTP 500".to_owned(),
            }),
            "introspection",
        ),
        // No client certificate at all (the peer module's tests read them).
        DenyReason::PeerSpiffeIdMismatch => {
            (at("api.example.com", "/peers/x", None), "peer_spiffe_ids")
        }
        // A valid token whose acr and amr are weaker than the login rule wants.
        DenyReason::StepUpRequired => (
            at(
                "api.example.com",
                "/pay/x",
                Some(with(good(), |c| {
                    c["acr"] = json!("urn:bronze");
                    c["amr"] = json!(["pwd"]);
                })),
            ),
            "step_up",
        ),
    })
}

fn headers(token: Option<&str>) -> HeaderMap {
    let mut h = HeaderMap::new();
    if let Some(t) = token {
        h.insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {t}")).unwrap(),
        );
    }
    h
}

/// The step that failed: the last before the response.
fn failed_step(steps: &[super::Step]) -> &super::Step {
    let before = &steps[..steps.len() - 1];
    let failed: Vec<_> = before.iter().filter(|s| !s.ok).collect();
    assert_eq!(failed.len().min(1), 1, "no step failed: {steps:#?}");
    failed.last().unwrap()
}

#[test]
fn explains_every_reason_code_as_the_decision_has_it() {
    let w = wide();
    let mut explained_reasons = 0;
    for reason in DenyReason::ALL {
        let Some((c, want)) = case(&w, reason) else {
            continue;
        };
        explained_reasons += 1;
        let h = headers(c.token.as_deref());
        let mut req = AuthRequest::new(&Method::GET, c.host, c.path, &h);
        req.session = c.session.as_ref();
        req.introspected = c.introspected.as_ref();
        let decided = w.engine.decide(&req, NOW);
        let explained = w.engine.explain(&req, NOW);
        assert_eq!(decided.reason(), Some(reason), "{}: {decided:?}", c.path);
        assert_eq!(explained.reason, Some(reason.as_str()), "{explained:#?}");
        assert_eq!(explained.status, decided.status());
        assert!(!explained.allowed);
        if let Decision::Deny(d) = &decided {
            assert_eq!(explained.rule.as_deref(), d.rule.as_deref(), "{reason}");
            assert_eq!(
                explained.provider.as_deref(),
                d.provider.as_deref(),
                "{reason}"
            );
        }
        let step = failed_step(&explained.steps);
        assert_eq!(step.step, want, "{reason}: {:#?}", explained.steps);
        let last = explained.steps.last().unwrap();
        assert_eq!(last.step, "response");
        assert!(
            last.detail
                .starts_with(&format!("{} {reason}", decided.status())),
            "{last:?}"
        );
        // The token itself is never part of an explanation.
        if let Some(t) = &c.token {
            let json = explained.to_json().to_string();
            let signature = t.rsplit('.').next().unwrap();
            assert!(signature.len() < 8 || !json.contains(signature), "{json}");
            assert!(!json.contains(t.as_str()));
        }
    }
    // All but the three the proxy listener produces after an allow, named here
    // with the test that produces each for real.
    let elsewhere = [
        (DenyReason::NoUpstream, "crates/cli/tests/explain_proxy.rs"),
        (
            DenyReason::UpstreamUnavailable,
            "crates/cli/tests/explain_proxy.rs",
        ),
        (
            DenyReason::UpstreamTimeout,
            "crates/cli/tests/explain_proxy.rs",
        ),
    ];
    for (reason, _) in elsewhere {
        assert!(case(&w, reason).is_none(), "{reason} has a case here now");
    }
    assert_eq!(explained_reasons + elsewhere.len(), DenyReason::ALL.len());
}

#[test]
fn explains_expected_and_actual_values() {
    let e = engine("");
    let t = with(good(), |c| c["aud"] = json!(["web", "mobile"]));
    let h = headers(Some(&t));
    let req = AuthRequest::new(&Method::GET, "api.example.com", "/api/x", &h);
    let x = e.explain(&req, NOW);
    let detail = |name: &str| {
        x.steps
            .iter()
            .find(|s| s.step == name)
            .map(|s| s.detail.clone())
            .unwrap_or_else(|| panic!("no {name} step: {:#?}", x.steps))
    };
    assert_eq!(
        detail("audience"),
        r#"expected one of ["api"], token aud ["web","mobile"]"#
    );
    assert_eq!(
        detail("issuer"),
        r#"expected "https://idp", token iss "https://idp""#
    );
    assert_eq!(
        detail("exp"),
        "exp 2023-11-14T22:23:20Z (in 10m), now 2023-11-14T22:13:20Z, clock skew 60s"
    );
    assert_eq!(
        detail("key"),
        r#"the token names kid "h1"; a key of [h1] from inline (config) verified it"#
    );
    assert!(detail("token").contains("header authorization (prefix \"Bearer \")"));
    // Earlier rules say why they did not match.
    let rules: Vec<_> = x.steps.iter().filter(|s| s.step == "rule").collect();
    assert_eq!(rules.len(), 4);
    assert_eq!(
        rules[0].detail,
        r#"rule "health" does not match: path "/api/x" is not /healthz"#
    );
    assert!(rules[3].ok);
}

#[test]
fn explains_an_allow_with_its_headers_and_keeps_no_token() {
    let e = engine("");
    let t = token(good());
    let h = headers(Some(&t));
    let req = AuthRequest::new(&Method::GET, "api.example.com", "/api/x", &h);
    let x = e.explain(&req, NOW);
    assert!(x.allowed);
    assert_eq!(
        (x.status, x.rule.as_deref(), x.provider.as_deref()),
        (200, Some("api"), Some("corp"))
    );
    assert!(
        x.steps.iter().all(|s| s.ok || s.step == "rule"),
        "{:#?}",
        x.steps
    );
    let key = x.steps.iter().find(|s| s.step == "key").unwrap();
    assert_eq!(
        key.detail,
        "kid h1, oct key, algorithms [HS256], from inline (config)"
    );
    let last = x.steps.last().unwrap();
    assert_eq!(
        last.detail,
        "200; set x-user: alice; remove x_user; Cache-Control: max-age=600"
    );
    // Explain neither reads nor fills the token cache.
    assert_eq!(e.cached_tokens(), 0);
    assert!(matches!(e.decide(&req, NOW), Decision::Allow(_)));
    assert_eq!(e.cached_tokens(), 1);
    let again = e.explain(&req, NOW);
    assert!(again.steps.iter().any(|s| s.step == "signature"));
}

#[test]
fn json_has_exactly_the_contract_members() {
    let e = engine("");
    let h = headers(None);
    let req = AuthRequest::new(&Method::GET, "api.example.com", "/api/x", &h);
    let v = e.explain(&req, NOW).to_json();
    let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["decision", "provider", "reason", "rule", "status", "steps"]
    );
    assert_eq!(v["decision"], "deny");
    assert_eq!(v["status"], 401);
    assert_eq!(v["reason"], "token_missing");
    assert_eq!(v["rule"], "api");
    assert_eq!(v["provider"], serde_json::Value::Null);
    for s in v["steps"].as_array().unwrap() {
        let mut keys: Vec<&str> = s.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["detail", "ok", "step"]);
    }
}

#[test]
fn allows_dry_run_rule_that_would_deny_and_says_so() {
    let e = engine(
        "  - name: trial\n    match: {path: \"/trial/**\"}\n    mode: dry_run\n    claims: {groups: [admins]}\n",
    );
    let t = token(good());
    let h = headers(Some(&t));
    let req = AuthRequest::new(&Method::GET, "api.example.com", "/trial/x", &h);
    let Decision::Allow(a) = e.decide(&req, NOW) else {
        panic!("a dry-run rule allows")
    };
    assert_eq!(&*a.rule, "trial");
    assert!(a.identity.is_none() && a.set_headers.is_empty());
    assert!(a.remove_headers.iter().any(|h| h == "x-user"));
    let would = a.dry_run.expect("the deny it would answer");
    assert_eq!(would.reason, DenyReason::ClaimMismatch);
    let x = e.explain(&req, NOW);
    assert!(x.allowed);
    let dry = x.steps.iter().find(|s| s.step == "dry_run").unwrap();
    assert!(
        dry.detail.contains("would deny (403 claim_mismatch)"),
        "{dry:?}"
    );
    assert!(
        x.steps
            .last()
            .unwrap()
            .detail
            .contains("dry run: would deny 403 claim_mismatch")
    );
    // No token at all: still allowed, still reported.
    let h = headers(None);
    let req = AuthRequest::new(&Method::GET, "api.example.com", "/trial/x", &h);
    let Decision::Allow(a) = e.decide(&req, NOW) else {
        panic!("a dry-run rule allows")
    };
    assert_eq!(a.dry_run.unwrap().reason, DenyReason::TokenMissing);
    // A request that cannot be read is refused before any rule, dry run or not.
    let req = AuthRequest::new(&Method::GET, "api.example.com", "/trial/%2F", &h);
    assert_eq!(
        e.decide(&req, NOW).reason(),
        Some(DenyReason::RequestInvalid)
    );
}

#[test]
fn denies_unknown_mode_at_load() {
    let text = "rules:\n  - name: r\n    match: {}\n    allow: anonymous\n    mode: dryrun\n";
    let err = config::parse(text, "t.yaml", Path::new("."), &|_| None).unwrap_err();
    assert_eq!((err.line, err.field.as_str()), (5, "rules[0].mode"));
    assert!(err.problem.contains("not enforce or dry_run"), "{err}");
}

/// Explains `path` on the wide engine with a bearer token and a session.
fn explain_wide(
    w: &Wide,
    host: &str,
    path: &str,
    token: Option<&str>,
    session: Option<&SessionCredential>,
) -> super::Explanation {
    let h = headers(token);
    let mut req = AuthRequest::new(&Method::GET, host, path, &h);
    req.session = session;
    let explained = w.engine.explain(&req, NOW);
    let decided = w.engine.decide(&req, NOW);
    assert_eq!(explained.reason, decided.reason().map(|r| r.as_str()));
    assert_eq!(explained.status, decided.status());
    explained
}

fn step<'a>(x: &'a super::Explanation, name: &str) -> &'a super::Step {
    x.steps
        .iter()
        .find(|s| s.step == name)
        .unwrap_or_else(|| panic!("no {name} step: {:#?}", x.steps))
}

#[test]
fn explains_the_condition_with_its_source_and_value() {
    let w = wide();
    let source = r#"claims.sub == "bob" && request.method == "GET""#;
    let x = explain_wide(&w, "a.test", "/cond/x", Some(&token(good())), None);
    let s = step(&x, "condition");
    assert!(!s.ok);
    assert_eq!(s.detail, format!("when {source:?} is false"));
    let bob = with(good(), |c| c["sub"] = json!("bob"));
    let x = explain_wide(&w, "a.test", "/cond/x", Some(&bob), None);
    assert!(x.allowed, "{x:#?}");
    let s = step(&x, "condition");
    assert!(s.ok);
    assert_eq!(s.detail, format!("when {source:?} is true"));
    // A run-time error (the token has no `level`) is its value too, and denies.
    let x = explain_wide(&w, "a.test", "/strict/x", Some(&token(good())), None);
    let s = step(&x, "condition");
    assert!(!s.ok);
    assert_eq!(x.reason, Some("condition_failed"));
    assert!(
        s.detail
            .starts_with(r#"when "claims.level > 2" is an error: "#),
        "{s:?}"
    );
}

#[test]
fn explains_spiffe_ids_with_patterns_and_the_tokens_id() {
    let w = wide();
    let ok = w.svid("spiffe://example.org/ns/prod/sa/web");
    let x = explain_wide(&w, "a.test", "/mesh/x", Some(&ok), None);
    assert!(x.allowed, "{x:#?}");
    let s = step(&x, "spiffe_ids");
    assert!(s.ok);
    assert_eq!(
        s.detail,
        r#"wants one of [spiffe://example.org/ns/*/sa/web], token SPIFFE ID "spiffe://example.org/ns/prod/sa/web""#
    );
    let bad = w.svid("spiffe://example.org/ns/prod/sa/db");
    let x = explain_wide(&w, "a.test", "/mesh/x", Some(&bad), None);
    let s = step(&x, "spiffe_ids");
    assert!(!s.ok);
    assert!(
        s.detail
            .ends_with(r#"token SPIFFE ID "spiffe://example.org/ns/prod/sa/db""#)
    );
}

#[test]
fn explains_certificate_binding_dpop_and_inject() {
    let w = wide();
    let bound = with(good(), |c| {
        c["cnf"] = json!({"x5t#S256": b64::encode(&[7u8; 32])});
    });
    let x = explain_wide(&w, "api.example.com", "/api/x", Some(&bound), None);
    assert_eq!(
        step(&x, "certificate").detail,
        "the token is certificate-bound and no client certificate was presented"
    );
    let dpop = with(good(), |c| c["cnf"] = json!({"jkt": "abc"}));
    let x = explain_wide(&w, "api.example.com", "/api/x", Some(&dpop), None);
    assert_eq!(
        step(&x, "dpop").detail,
        "the provider does not take DPoP; a DPoP-bound token, and the provider does not take DPoP"
    );
    // A plain bearer token at a provider without DPoP: no dpop step at all.
    let x = explain_wide(&w, "api.example.com", "/api/x", Some(&token(good())), None);
    assert!(x.allowed);
    assert!(
        x.steps
            .iter()
            .all(|s| s.step != "dpop" && s.step != "certificate")
    );
    let x = explain_wide(&w, "backend.example.org", "/x", None, None);
    assert_eq!(
        step(&x, "inject").detail,
        r#"token_unavailable: no fresh token for audience "spiffe://example.org/backend" yet (audience "spiffe://example.org/backend", replace false)"#
    );
}

#[test]
fn explains_a_session_in_place_of_a_token() {
    let w = wide();
    let session = SessionCredential::Valid(VerifiedSession {
        provider: "sso".to_owned(),
        claims_json: br#"{"sub":"alice"}"#.to_vec(),
        expires_at: NOW + 60,
    });
    let x = explain_wide(&w, "app.example.com", "/app/x", None, Some(&session));
    assert!(x.allowed, "{x:#?}");
    assert_eq!(x.provider.as_deref(), Some("sso"));
    let s = step(&x, "session");
    assert!(s.ok);
    assert_eq!(
        s.detail,
        r#"provider "sso", from a session (not a token), valid until 2023-11-14T22:14:20Z"#
    );
    // A browser without a session is sent to log in; the URL (which carries the
    // request's query) is not repeated.
    let mut h = headers(None);
    h.insert("accept", HeaderValue::from_static("text/html"));
    let req = AuthRequest::new(&Method::GET, "app.example.com", "/app/x?token=secret", &h);
    let x = w.engine.explain(&req, NOW);
    assert_eq!(x.reason, Some("login_required"));
    let s = step(&x, "session");
    assert!(!s.ok);
    assert!(
        s.detail.ends_with("a browser is redirected to log in"),
        "{s:?}"
    );
    assert!(!x.to_json().to_string().contains("secret"));
}

#[test]
fn explains_the_step_up_wanted_and_shown() {
    let w = wide();
    let t = with(good(), |c| {
        c["acr"] = json!("urn:bronze");
        c["amr"] = json!(["pwd"]);
    });
    let h = headers(Some(&t));
    let req = AuthRequest::new(&Method::GET, "api.example.com", "/pay/x", &h);
    let x = w.engine.explain(&req, NOW);
    let step = x.steps.iter().find(|s| s.step == "step_up").unwrap();
    assert!(!step.ok);
    assert_eq!(
        step.detail,
        r#"acr wants one of [urn:gold], token acr "urn:bronze"; amr wants one of [hwk], token amr ["pwd"]"#
    );
    assert_eq!(x.reason, Some("step_up_required"));
    // Strong enough: the step holds and the request is allowed.
    let t = with(good(), |c| {
        c["acr"] = json!("urn:gold");
        c["amr"] = json!(["pwd", "hwk"]);
    });
    let h = headers(Some(&t));
    let req = AuthRequest::new(&Method::GET, "api.example.com", "/pay/x", &h);
    let x = w.engine.explain(&req, NOW);
    assert!(x.allowed, "{x:#?}");
    assert!(x.steps.iter().any(|s| s.step == "step_up" && s.ok));
}

#[test]
fn explains_what_the_proxy_listener_does() {
    let text = r#"
providers: []
upstreams:
  - name: app
    urls: [http://127.0.0.1:9, "http://app.internal/base"]
    connect_timeout: 2s
    timeout: 45s
rules:
  - name: proxied
    match: {path: "/app/**"}
    allow: anonymous
    upstream: app
  - name: nowhere
    match: {path: "/nowhere"}
    allow: anonymous
  - name: closed
    match: {path: "/closed"}
    allow: deny
"#;
    let config = config::parse(text, "t.yaml", Path::new("."), &|_| None).unwrap();
    let e = Engine::with_static_keys(config);
    let h = HeaderMap::new();
    let explain = |path| e.explain(&AuthRequest::new(&Method::GET, "h", path, &h), NOW);
    let proxied = explain("/app/x");
    let step = proxied.steps.iter().find(|s| s.step == "proxy").unwrap();
    assert!(step.ok);
    assert_eq!(
        step.detail,
        r#"on the proxy listener: forwarded to upstream "app" [http://127.0.0.1:9, http://app.internal:80/base] (round robin, connect timeout 2s, timeout 45s); a connect that fails or takes over 2s: 502 upstream_unavailable; no response head within 45s: 504 upstream_timeout"#
    );
    let nowhere = explain("/nowhere");
    assert!(nowhere.allowed);
    let step = nowhere.steps.iter().find(|s| s.step == "proxy").unwrap();
    assert!(!step.ok);
    assert!(
        step.detail
            .contains("names no upstream, so it answers 404 no_upstream"),
        "{step:?}"
    );
    // A deny is answered as the decision says: no proxy step.
    let closed = explain("/closed");
    assert!(!closed.steps.iter().any(|s| s.step == "proxy"));
    // Without upstreams (no proxy mode) there is no proxy step at all.
    let e = engine("");
    let x = e.explain(&AuthRequest::new(&Method::GET, "h", "/healthz", &h), NOW);
    assert!(x.allowed);
    assert!(!x.steps.iter().any(|s| s.step == "proxy"));
}
