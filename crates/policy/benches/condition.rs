//! What a rule's `when:` adds to a decision on the cached path: `Engine::decide`
//! for one token (cached after the first call) under the same rule, without a
//! condition (`plain`), with one the direct evaluator decides (`when/direct`), and
//! with one only the cel interpreter decides (`when/interpreter`, a `filter`).
//!
//! `cargo bench -p portcullis-policy --bench condition -- --warm-up-time 1 --measurement-time 3`
#![expect(clippy::expect_used, clippy::unwrap_used, reason = "bench")]

use std::hint::black_box;
use std::path::Path;

use criterion::Criterion;
use http::{HeaderMap, HeaderValue, Method};
use portcullis_jose::{Algorithm, SigningKey, b64};
use portcullis_policy::{AuthRequest, Engine, config};
use serde_json::json;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const NOW: i64 = 1_700_000_000;
const SECRET: &[u8] = b"bench-secret-bench-secret-bench-secret";

fn engine(when: Option<&str>) -> Engine {
    let k = b64::encode(SECRET);
    let when = when
        .map(|w| format!("    when: '{w}'\n"))
        .unwrap_or_default();
    let text = format!(
        "providers:\n  - name: bench\n    issuer: https://issuer.bench\n    audiences: [bench-api]\n    jwks:\n      inline: {{\"keys\":[{{\"kty\":\"oct\",\"k\":\"{k}\",\"kid\":\"h\"}}]}}\n    claims_to_headers:\n      - {{header: x-user, claim: sub}}\nrules:\n  - name: default\n    match: {{}}\n{when}"
    );
    Engine::with_static_keys(config::parse(&text, "bench.yaml", Path::new("."), &|_| None).unwrap())
}

fn main() {
    let claims = json!({
        "iss": "https://issuer.bench", "sub": "user-000001", "aud": ["bench-api", "account"],
        "exp": NOW + 3600, "iat": NOW - 60, "azp": "web-shop",
        "scope": "openid profile email orders:read orders:write",
        "email": "user-000001@example.com", "email_verified": true,
        "realm_access": {"roles": ["customer", "offline_access"]},
    });
    let key = SigningKey::from_secret(SECRET, Algorithm::HS256).expect("key");
    let token = key
        .encode(
            Some("h"),
            &Default::default(),
            claims.to_string().as_bytes(),
        )
        .expect("token");
    let mut headers = HeaderMap::new();
    headers.insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    headers.insert("x-env", HeaderValue::from_static("prod"));
    let cases = [
        ("plain", None),
        (
            "when/direct",
            Some(
                r#"claims.realm_access.roles.exists(r, r == "customer") && request.method == "GET""#,
            ),
        ),
        (
            "when/interpreter",
            Some(
                r#"claims.realm_access.roles.filter(r, r == "customer").size() == 1 && request.method == "GET""#,
            ),
        ),
    ];
    let mut c = Criterion::default().configure_from_args();
    for (name, when) in cases {
        let e = engine(when);
        let req = AuthRequest::new(&Method::GET, "api.bench", "/orders/1", &headers);
        assert_eq!(e.decide(&req, NOW).status(), 200, "{name}");
        c.bench_function(name, |b| {
            b.iter(|| black_box(e.decide(black_box(&req), NOW)))
        });
    }
    c.final_summary();
}
