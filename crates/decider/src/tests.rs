use std::path::Path;
use std::sync::Arc;

use http::{HeaderMap, HeaderValue};
use portcullis_jose::{Algorithm, SigningKey, b64};
use portcullis_policy::{AuthRequest, Decision, Engine, ManualClock, config};

use super::*;

const SECRET: &[u8] = b"secret-secret-secret-secret-secret";
const T0: i64 = 1_800_000_000;

fn engine() -> Engine {
    let k = b64::encode(SECRET);
    let text = format!(
        r#"
providers:
  - name: corp
    issuer: https://idp
    audiences: [api]
    clock_skew: 0s
    jwks:
      inline: {{"keys":[{{"kty":"oct","k":"{k}","kid":"h1"}}]}}
rules:
  - name: api
    match: {{}}
"#
    );
    Engine::with_static_keys(config::parse(&text, "t.yaml", Path::new("."), &|_| None).unwrap())
}

fn bearer(exp: i64) -> HeaderMap {
    let key = SigningKey::from_secret(SECRET, Algorithm::HS256).unwrap();
    let claims = format!(r#"{{"iss":"https://idp","aud":"api","sub":"a","exp":{exp}}}"#);
    let t = key
        .encode(Some("h1"), &Default::default(), claims.as_bytes())
        .unwrap();
    let mut h = HeaderMap::new();
    h.insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {t}")).unwrap(),
    );
    h
}

/// With an injected clock, expiry is decided at the instant the test says, not at
/// the machine's: the same token is allowed, then (cached or not) expired.
#[tokio::test]
async fn decides_by_the_injected_clock() {
    let clock = Arc::new(ManualClock::new(T0));
    let decider = Decider::new(engine(), Arc::new(Metrics::new())).with_clock(clock.clone());
    let headers = bearer(T0 + 60);
    let req = AuthRequest::new(&http::Method::GET, "h", "/x", &headers);
    assert!(matches!(
        decider.decide(&req, Frontend::ForwardAuth).await,
        Decision::Allow(_)
    ));
    assert_eq!(decider.now(), T0);
    clock.advance(61);
    let d = decider.decide(&req, Frontend::ForwardAuth).await;
    assert_eq!(
        d.reason().map(|r| r.as_str()),
        Some("token_expired"),
        "{d:?}"
    );
}
