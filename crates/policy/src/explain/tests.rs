use std::path::Path;

use http::{HeaderMap, HeaderValue, Method};
use portcullis_jose::{Algorithm, SigningKey, b64};
use serde_json::json;

use crate::config;
use crate::{AuthRequest, Decision, DenyReason, Engine};

const NOW: i64 = 1_700_000_000;
const SECRET: &[u8] = b"secret-secret-secret-secret-secret";

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

/// A request that is denied for `reason`: path and token. The match is
/// exhaustive: a new reason code does not compile until explain has a case,
/// or is listed as produced only with another configuration or by a frontend.
fn case(reason: DenyReason) -> Option<(&'static str, Option<String>)> {
    let unsigned = |header: serde_json::Value| {
        format!(
            "{}.{}.{}",
            b64::encode(header.to_string().as_bytes()),
            b64::encode(good().to_string().as_bytes()),
            b64::encode(b"not a signature")
        )
    };
    Some(match reason {
        DenyReason::TokenMissing => ("/api/x", None),
        DenyReason::TokenMalformed => ("/api/x", Some("not.a-jwt".to_owned())),
        DenyReason::SignatureInvalid => (
            "/api/x",
            Some(unsigned(json!({"alg": "HS256", "kid": "h1"}))),
        ),
        DenyReason::AlgorithmNotAllowed => (
            "/api/x",
            Some(unsigned(json!({"alg": "RS256", "kid": "h1"}))),
        ),
        DenyReason::KeyNotFound => (
            "/api/x",
            Some(unsigned(json!({"alg": "HS256", "kid": "gone"}))),
        ),
        DenyReason::IssuerMismatch => (
            "/api/x",
            Some(with(good(), |c| c["iss"] = json!("https://evil"))),
        ),
        DenyReason::AudienceMismatch => {
            ("/api/x", Some(with(good(), |c| c["aud"] = json!("other"))))
        }
        DenyReason::TokenExpired => (
            "/api/x",
            Some(with(good(), |c| c["exp"] = json!(NOW - 3600))),
        ),
        DenyReason::TokenNotYetValid => (
            "/api/x",
            Some(with(good(), |c| c["nbf"] = json!(NOW + 3600))),
        ),
        DenyReason::ClaimMismatch => ("/admin/x", Some(token(good()))),
        DenyReason::ScopeMissing => ("/billing/x", Some(token(good()))),
        DenyReason::NoRule => ("/elsewhere", None),
        DenyReason::RequestInvalid => ("/api/%2F..", None),
        // Produced with a spiffe provider or an inject rule, not by this
        // engine's HS256 provider.
        DenyReason::SpiffeIdMismatch
        | DenyReason::TokenPresent
        | DenyReason::CertificateMismatch
        | DenyReason::TokenUnavailable => return None,
        // Produced on rules with a `when:` condition (tests in condition.rs).
        DenyReason::ConditionFailed => return None,
        // Produced with a DPoP-enabled provider.
        DenyReason::DpopInvalid => return None,
        // Produced on `login` rules with sessions configured.
        DenyReason::LoginRequired | DenyReason::SessionInvalid => return None,
        // Produced by the proxy frontend after the decision.
        DenyReason::NoUpstream | DenyReason::UpstreamUnavailable | DenyReason::UpstreamTimeout => {
            return None;
        }
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
    let e = engine("");
    for reason in DenyReason::ALL {
        let Some((path, token)) = case(reason) else {
            continue;
        };
        let h = headers(token.as_deref());
        let req = AuthRequest::new(&Method::GET, "api.example.com", path, &h);
        let decided = e.decide(&req, NOW);
        let explained = e.explain(&req, NOW);
        assert_eq!(decided.reason(), Some(reason), "{path}: {decided:?}");
        assert_eq!(explained.reason, Some(reason.as_str()), "{explained:#?}");
        assert_eq!(explained.status, decided.status());
        assert!(!explained.allowed);
        let step = failed_step(&explained.steps);
        let want = match reason {
            DenyReason::TokenMissing | DenyReason::TokenMalformed => "token",
            DenyReason::SignatureInvalid => "signature",
            DenyReason::AlgorithmNotAllowed => "algorithm",
            DenyReason::KeyNotFound => "key",
            DenyReason::IssuerMismatch => "issuer",
            DenyReason::AudienceMismatch => "audience",
            DenyReason::TokenExpired => "exp",
            DenyReason::TokenNotYetValid => "nbf",
            DenyReason::ClaimMismatch => "claim",
            DenyReason::ScopeMissing => "scopes",
            DenyReason::NoRule => "rule",
            DenyReason::RequestInvalid => "request",
            DenyReason::SpiffeIdMismatch
            | DenyReason::TokenPresent
            | DenyReason::CertificateMismatch
            | DenyReason::TokenUnavailable
            | DenyReason::NoUpstream
            | DenyReason::UpstreamUnavailable
            | DenyReason::UpstreamTimeout
            | DenyReason::LoginRequired
            | DenyReason::SessionInvalid
            | DenyReason::ConditionFailed
            | DenyReason::DpopInvalid => unreachable!("no case for {reason}"),
        };
        // A malformed token fails in the token core's format check.
        let got = if reason == DenyReason::TokenMalformed && step.step == "format" {
            "token"
        } else {
            step.step
        };
        assert_eq!(got, want, "{reason}: {:#?}", explained.steps);
        let last = explained.steps.last().unwrap();
        assert_eq!(last.step, "response");
        assert!(
            last.detail
                .starts_with(&format!("{} {reason}", decided.status())),
            "{last:?}"
        );
        // The token itself is never part of an explanation.
        if let Some(t) = &token {
            let json = explained.to_json().to_string();
            let signature = t.rsplit('.').next().unwrap();
            assert!(signature.len() < 8 || !json.contains(signature), "{json}");
            assert!(!json.contains(t.as_str()));
        }
    }
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
