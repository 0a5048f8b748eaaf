use std::path::Path;
use std::sync::Arc;

use http::{HeaderMap, HeaderValue, Method};
use portcullis_jose::{Algorithm, KeySet, SigningKey, VerifyingKey, b64};
use serde_json::json;

use crate::Engine;
use crate::config;
use crate::decision::{Decision, DenyReason};
use crate::inject::InjectedToken;
use crate::keyslot::KeySlot;
use crate::request::{AuthRequest, Peer};

const NOW: i64 = 1_700_000_000;
const CERT: &str = "-----BEGIN CERTIFICATE-----\nMIIBXTCCAQOgAwIBAgIUB0W6fKQ3iYf6o2m2c1Ygq0E0n5gwCgYIKoZIzj0EAwIw\n-----END CERTIFICATE-----\n";
const OTHER_CERT: &str = "-----BEGIN CERTIFICATE-----\nAAAAfKQ3iYf6o2m2c1Ygq0E0n5gwCgYIKoZIzj0EAwIw\n-----END CERTIFICATE-----\n";

const CONFIG: &str = r#"
providers:
  - name: mesh
    spiffe:
      trust_domain: example.org
      bundle: {file: bundle.json}
    audiences: [spiffe://example.org/backend]
    claims_to_headers:
      - {header: x-spiffe-id, claim: sub}
rules:
  - name: egress
    match: {host: backend.example.org}
    inject:
      audience: spiffe://example.org/backend
      socket: unix:///tmp/agent.sock
  - name: egress-replace
    match: {host: replace.example.org}
    inject:
      audience: spiffe://example.org/backend
      source: workload_api
      socket: unix:///tmp/agent.sock
      replace: true
  - name: from-frontend
    match: {path: /api/**}
    providers: [mesh]
    spiffe_ids: ["spiffe://example.org/ns/default/sa/frontend", "spiffe://example.org/ns/*/sa/web"]
  - name: any
    match: {}
    providers: [mesh]
"#;

struct Fixture {
    engine: Engine,
    key: SigningKey,
}

fn fixture() -> Fixture {
    let config = config::parse(CONFIG, "t.yaml", Path::new("/etc"), &|_| None).unwrap();
    let (key, _) = SigningKey::generate(Algorithm::ES256).unwrap();
    let verifying = VerifyingKey::try_new(
        key.public_material(),
        Some(portcullis_jose::Kid::new("k1")),
        Some(Algorithm::ES256),
    )
    .unwrap();
    let slot = Arc::new(KeySlot::with_keys(KeySet::new(vec![verifying])));
    Fixture {
        engine: Engine::new(config, vec![slot]),
        key,
    }
}

impl Fixture {
    fn svid(&self, claims: serde_json::Value) -> String {
        self.key
            .encode(
                Some("k1"),
                &Default::default(),
                claims.to_string().as_bytes(),
            )
            .unwrap()
    }

    fn decide(&self, host: &str, path: &str, headers: &HeaderMap, peer: Option<&Peer>) -> Decision {
        let mut req = AuthRequest::new(&Method::GET, host, path, headers);
        req.peer = peer;
        self.engine.decide(&req, NOW)
    }
}

fn claims(sub: &str) -> serde_json::Value {
    json!({"sub": sub, "aud": ["spiffe://example.org/backend"], "exp": NOW + 300, "iat": NOW})
}

fn bearer(t: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {t}")).unwrap(),
    );
    h
}

fn reason(d: &Decision) -> Option<DenyReason> {
    match d {
        Decision::Deny(d) => Some(d.reason),
        Decision::Allow(_) => None,
    }
}

#[test]
fn allows_listed_spiffe_ids() {
    let f = fixture();
    for sub in [
        "spiffe://example.org/ns/default/sa/frontend",
        "spiffe://example.org/ns/prod/sa/web",
    ] {
        let d = f.decide("api.test", "/api/x", &bearer(&f.svid(claims(sub))), None);
        let Decision::Allow(a) = d else {
            panic!("{sub}: {d:?}")
        };
        assert_eq!(a.set_headers[0].1, sub);
    }
}

#[test]
fn denies_other_spiffe_ids() {
    let f = fixture();
    for sub in [
        "spiffe://example.org/ns/default/sa/backend",
        "spiffe://example.org/ns/a/b/sa/web",
    ] {
        let d = f.decide("api.test", "/api/x", &bearer(&f.svid(claims(sub))), None);
        assert_eq!(reason(&d), Some(DenyReason::SpiffeIdMismatch), "{sub}");
        assert_eq!(DenyReason::SpiffeIdMismatch.status().code(), 403);
    }
}

#[test]
fn denies_tokens_that_break_the_svid_rules() {
    let f = fixture();
    let aud = json!(["spiffe://example.org/backend"]);
    for (c, want) in [
        (
            json!({"sub": "spiffe://other.org/a", "aud": aud, "exp": NOW + 60}),
            DenyReason::IssuerMismatch,
        ),
        (
            json!({"sub": "alice", "aud": aud, "exp": NOW + 60}),
            DenyReason::TokenMalformed,
        ),
        (
            json!({"sub": "spiffe://example.org/a", "exp": NOW + 60}),
            DenyReason::AudienceMismatch,
        ),
        (
            json!({"sub": "spiffe://example.org/a", "aud": aud}),
            DenyReason::TokenMalformed,
        ),
        (
            json!({"sub": "spiffe://example.org/a", "aud": aud, "exp": NOW - 600}),
            DenyReason::TokenExpired,
        ),
    ] {
        let d = f.decide("api.test", "/other", &bearer(&f.svid(c.clone())), None);
        assert_eq!(reason(&d), Some(want), "{c}");
    }
    // typ other than JWT/JOSE.
    let mut header = serde_json::Map::new();
    header.insert("typ".into(), json!("at+jwt"));
    let t = f
        .key
        .encode(
            Some("k1"),
            &header,
            claims("spiffe://example.org/a").to_string().as_bytes(),
        )
        .unwrap();
    assert_eq!(
        reason(&f.decide("api.test", "/other", &bearer(&t), None)),
        Some(DenyReason::TokenMalformed)
    );
    // HS256 with a made-up key is never accepted by a spiffe provider.
    let hs = SigningKey::from_secret(&[7; 32], Algorithm::HS256).unwrap();
    let t = hs
        .encode(
            Some("k1"),
            &Default::default(),
            claims("spiffe://example.org/a").to_string().as_bytes(),
        )
        .unwrap();
    let d = f.decide("api.test", "/other", &bearer(&t), None);
    assert_eq!(reason(&d).map(|r| r.status().code()), Some(401), "{d:?}");
}

fn bound(f: &Fixture, cert: &str) -> String {
    let x5t = b64::encode(&crate::spiffe::thumbprint_of_pem(cert).unwrap());
    let mut c = claims("spiffe://example.org/ns/default/sa/frontend");
    c["cnf"] = json!({"x5t#S256": x5t});
    f.svid(c)
}

#[test]
fn allows_certificate_bound_tokens_with_their_certificate() {
    let f = fixture();
    let t = bound(&f, CERT);
    let peer = Peer {
        address: None,
        certificate: Some(CERT.to_owned()),
        principal: None,
    };
    assert_eq!(
        reason(&f.decide("api.test", "/api/x", &bearer(&t), Some(&peer))),
        None
    );
    // A second time (from the token cache) too, and still refused without it.
    assert_eq!(
        reason(&f.decide("api.test", "/api/x", &bearer(&t), Some(&peer))),
        None
    );
}

#[test]
fn denies_certificate_bound_tokens_without_their_certificate() {
    let f = fixture();
    let t = bound(&f, CERT);
    let other = Peer {
        address: None,
        certificate: Some(OTHER_CERT.to_owned()),
        principal: None,
    };
    for peer in [None, Some(&other)] {
        let d = f.decide("api.test", "/api/x", &bearer(&t), peer);
        assert_eq!(reason(&d), Some(DenyReason::CertificateMismatch));
        assert_eq!(DenyReason::CertificateMismatch.status().code(), 401);
    }
    // Cached after an allow, the binding still holds.
    let right = Peer {
        address: None,
        certificate: Some(CERT.to_owned()),
        principal: None,
    };
    assert_eq!(
        reason(&f.decide("api.test", "/api/x", &bearer(&t), Some(&right))),
        None
    );
    assert_eq!(
        reason(&f.decide("api.test", "/api/x", &bearer(&t), Some(&other))),
        Some(DenyReason::CertificateMismatch)
    );
}

#[test]
fn inject_sets_authorization_from_the_slot() {
    let f = fixture();
    let empty = HeaderMap::new();
    assert_eq!(
        reason(&f.decide("backend.example.org", "/", &empty, None)),
        Some(DenyReason::TokenUnavailable)
    );
    let (_, _, slot) = f.engine.inject_slots().next().unwrap();
    slot.store(InjectedToken::try_new("abc.def.ghi", NOW + 60).unwrap());
    let Decision::Allow(a) = f.decide("backend.example.org", "/", &empty, None) else {
        panic!()
    };
    assert_eq!(
        a.set_headers,
        vec![(
            http::header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc.def.ghi")
        )]
    );
    assert!(!a.remove_headers.contains(&http::header::AUTHORIZATION));
    // An expired one is not sent.
    slot.store(InjectedToken::try_new("abc.def.ghi", NOW).unwrap());
    assert_eq!(
        reason(&f.decide("backend.example.org", "/", &empty, None)),
        Some(DenyReason::TokenUnavailable)
    );
}

#[test]
fn denies_injection_over_a_present_token_unless_replace() {
    let f = fixture();
    for (_, _, slot) in f.engine.inject_slots() {
        slot.store(InjectedToken::try_new("new", NOW + 60).unwrap());
    }
    let d = f.decide("backend.example.org", "/", &bearer("old"), None);
    assert_eq!(reason(&d), Some(DenyReason::TokenPresent));
    let Decision::Allow(a) = f.decide("replace.example.org", "/", &bearer("old"), None) else {
        panic!()
    };
    assert_eq!(a.set_headers[0].1, "Bearer new");
}
