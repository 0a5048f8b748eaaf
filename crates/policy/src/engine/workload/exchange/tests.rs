use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};

use http::{HeaderMap, HeaderValue, Method};
use portcullis_jose::b64;

use crate::config;
use crate::decision::{Decision, DenyReason};
use crate::inject::{ExchangeError, ExchangeFuture, Exchanged, Exchanger};
use crate::request::AuthRequest;
use crate::{Engine, TokenSlot};

const NOW: i64 = 1_700_000_000;
const AUDIENCE: &str = "https://backend.example.org";

const CONFIG: &str = r#"
rules:
  - name: exchange
    match: {host: backend.example.org}
    inject:
      audience: https://backend.example.org
      source:
        token_exchange: {token_url: "http://127.0.0.1:1/token", client_id: egress, client_secret: s}
"#;

/// Answers `exchanged-<n>` for the n-th call, valid `lifetime` seconds, or fails.
struct Counting {
    calls: AtomicUsize,
    lifetime: i64,
    fail: bool,
}

impl Exchanger for Counting {
    fn exchange<'a>(&'a self, subject_token: &'a str) -> ExchangeFuture<'a> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        let result = if self.fail {
            Err(ExchangeError {
                why: "HTTP status 400, error invalid_grant".to_owned(),
            })
        } else {
            Ok(Exchanged {
                token: format!("exchanged-{n}-for-{}", subject_token.len()),
                expires_at: NOW + self.lifetime,
            })
        };
        ExchangeFuture(Box::pin(std::future::ready(result)))
    }
}

/// Polls a future whose exchanger answers at once.
fn ready<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    match f.as_mut().poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("the exchange did not complete at once"),
    }
}

fn engine() -> Engine {
    let config = config::parse(CONFIG, "t.yaml", Path::new("/etc"), &|_| None).unwrap();
    Engine::new(config, vec![])
}

fn slot(e: &Engine) -> Arc<TokenSlot> {
    e.inject_slots().next().unwrap().2.clone()
}

fn counting(e: &Engine, lifetime: i64, fail: bool) -> Arc<Counting> {
    let x = Arc::new(Counting {
        calls: AtomicUsize::new(0),
        lifetime,
        fail,
    });
    slot(e).set_exchanger(x.clone(), 16);
    x
}

fn headers(values: &[&str]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for v in values {
        h.append("authorization", HeaderValue::from_str(v).unwrap());
    }
    h
}

fn decide(e: &Engine, h: &HeaderMap, now: i64) -> Decision {
    e.decide(
        &AuthRequest::new(&Method::GET, "backend.example.org", "/x", h),
        now,
    )
}

fn reason(d: &Decision) -> Option<DenyReason> {
    d.reason()
}

/// Decides; on a pending exchange runs it and decides again (as the decider does).
fn decide_exchanging(e: &Engine, h: &HeaderMap, now: i64) -> (Decision, Option<ExchangeError>) {
    let mut d = decide(e, h, now);
    if let Decision::Deny(deny) = &mut d
        && let Some(pending) = deny.exchange.take()
    {
        if let Err(err) = ready(pending.run(|| now)) {
            return (d, Some(err));
        }
        d = decide(e, h, now);
    }
    (d, None)
}

fn authorization(d: &Decision) -> String {
    let Decision::Allow(a) = d else {
        panic!("{d:?}")
    };
    assert_eq!(a.set_headers.len(), 1);
    assert_eq!(a.set_headers[0].0, http::header::AUTHORIZATION);
    a.set_headers[0].1.to_str().unwrap().to_owned()
}

fn jwt_with_exp(exp: i64) -> String {
    format!(
        "eyJhbGciOiJFUzI1NiJ9.{}.c2ln",
        b64::encode(format!(r#"{{"sub":"alice","exp":{exp}}}"#).as_bytes())
    )
}

#[test]
fn allows_with_the_exchanged_token_and_keeps_it_per_inbound_token() {
    let e = engine();
    let x = counting(&e, 3600, false);
    let alice = headers(&["Bearer alice-token"]);
    // First: no token kept, an exchange is asked for.
    let d = decide(&e, &alice, NOW);
    let Decision::Deny(deny) = &d else { panic!() };
    assert_eq!(deny.reason, DenyReason::TokenUnavailable);
    assert!(deny.exchange.is_some());
    let (d, err) = decide_exchanging(&e, &alice, NOW);
    assert_eq!(err, None);
    assert_eq!(authorization(&d), "Bearer exchanged-0-for-11");
    assert_eq!(x.calls.load(Ordering::SeqCst), 1);
    // Kept: the same token, no second exchange; the scheme's case does not matter.
    let d = decide(&e, &headers(&["bearer alice-token"]), NOW + 60);
    assert_eq!(authorization(&d), "Bearer exchanged-0-for-11");
    assert_eq!(x.calls.load(Ordering::SeqCst), 1);
    // Another inbound token is exchanged on its own.
    let (d, _) = decide_exchanging(&e, &headers(&["Bearer bob-token-x"]), NOW);
    assert_eq!(authorization(&d), "Bearer exchanged-1-for-11");
    assert_eq!(x.calls.load(Ordering::SeqCst), 2);
}

#[test]
fn renews_shortly_before_expiry() {
    let e = engine();
    let x = counting(&e, 100, false);
    let h = headers(&["Bearer t"]);
    decide_exchanging(&e, &h, NOW);
    // 100 s lifetime: renewed 25 s before it ends.
    assert!(matches!(decide(&e, &h, NOW + 74), Decision::Allow(_)));
    let d = decide(&e, &h, NOW + 75);
    assert_eq!(reason(&d), Some(DenyReason::TokenUnavailable));
    let (d, _) = decide_exchanging(&e, &h, NOW + 75);
    assert!(matches!(d, Decision::Allow(_)), "{d:?}");
    assert_eq!(x.calls.load(Ordering::SeqCst), 2);
}

#[test]
fn denies_without_an_inbound_bearer_token() {
    let e = engine();
    let x = counting(&e, 3600, false);
    for (h, want) in [
        (headers(&[]), DenyReason::TokenMissing),
        (headers(&["Basic YTpi"]), DenyReason::TokenMissing),
        (headers(&["Bearer "]), DenyReason::TokenMissing),
        (
            headers(&["Bearer a", "Bearer b"]),
            DenyReason::TokenMalformed,
        ),
        (headers(&["Bearer a b"]), DenyReason::TokenMalformed),
        (headers(&["Bearer a,b"]), DenyReason::TokenMalformed),
        (headers(&["Bearer ==="]), DenyReason::TokenMalformed),
    ] {
        let d = decide(&e, &h, NOW);
        assert_eq!(reason(&d), Some(want), "{h:?}");
        let Decision::Deny(deny) = d else { panic!() };
        assert!(deny.exchange.is_none());
    }
    let long = format!("Bearer {}", "a".repeat(crate::MAX_SUBJECT_TOKEN_BYTES + 1));
    assert_eq!(
        reason(&decide(&e, &headers(&[&long]), NOW)),
        Some(DenyReason::TokenMalformed)
    );
    assert_eq!(x.calls.load(Ordering::SeqCst), 0);
}

#[test]
fn denies_an_expired_inbound_jwt_without_exchanging_it() {
    let e = engine();
    let x = counting(&e, 3600, false);
    let expired = headers(&[&format!("Bearer {}", jwt_with_exp(NOW - 1))]);
    assert_eq!(
        reason(&decide(&e, &expired, NOW)),
        Some(DenyReason::TokenExpired)
    );
    assert_eq!(x.calls.load(Ordering::SeqCst), 0);
    // An exchanged token is not used past the inbound token's exp.
    let short = headers(&[&format!("Bearer {}", jwt_with_exp(NOW + 10))]);
    let (d, _) = decide_exchanging(&e, &short, NOW);
    assert!(matches!(d, Decision::Allow(_)));
    assert!(matches!(decide(&e, &short, NOW + 9), Decision::Allow(_)));
    assert_eq!(
        reason(&decide(&e, &short, NOW + 10)),
        Some(DenyReason::TokenExpired)
    );
}

#[test]
fn denies_when_the_exchange_fails_or_nothing_exchanges() {
    let e = engine();
    let h = headers(&["Bearer t"]);
    // No exchanger running: denied, nothing to run.
    let d = decide(&e, &h, NOW);
    let Decision::Deny(deny) = &d else { panic!() };
    assert_eq!(deny.reason, DenyReason::TokenUnavailable);
    assert!(deny.exchange.is_none());
    let x = counting(&e, 3600, true);
    let (d, err) = decide_exchanging(&e, &h, NOW);
    assert_eq!(reason(&d), Some(DenyReason::TokenUnavailable));
    assert!(err.unwrap().why.contains("invalid_grant"));
    // Nothing was kept: the next request tries again.
    decide_exchanging(&e, &h, NOW);
    assert_eq!(x.calls.load(Ordering::SeqCst), 2);
}

#[test]
fn denies_an_issued_token_that_expires_at_once() {
    let e = engine();
    counting(&e, 0, false);
    let (d, err) = decide_exchanging(&e, &headers(&["Bearer t"]), NOW);
    assert_eq!(reason(&d), Some(DenyReason::TokenUnavailable));
    assert!(err.is_some());
}

#[test]
fn keys_are_digests_of_audience_and_token() {
    let a = crate::inject::exchange_key(AUDIENCE, "t");
    assert_ne!(a, crate::inject::exchange_key("other", "t"));
    assert_ne!(a, crate::inject::exchange_key(AUDIENCE, "u"));
    assert_ne!(a.as_slice(), b"t");
}

/// `verify_with`: the inbound token is verified by the provider first.
const VERIFY_WITH_CONFIG: &str = r#"
providers:
  - name: login
    issuer: https://login.example.com
    audiences: [frontend]
    jwks: {inline: {"keys": [{"kty": "oct", "kid": "l1", "k": "c2VjcmV0LW9mLWxvZ2luLXNlY3JldC1vZi1sb2dpbi0xMjM0"}]}}
rules:
  - name: exchange
    match: {host: backend.example.org}
    inject:
      audience: https://backend.example.org
      source:
        token_exchange: {token_url: "http://127.0.0.1:1/token", client_id: egress, client_secret: s, verify_with: login}
"#;

fn login_token(secret: &[u8], claims: &str) -> String {
    portcullis_jose::SigningKey::from_secret(secret, portcullis_jose::Algorithm::HS256)
        .unwrap()
        .encode(Some("l1"), &Default::default(), claims.as_bytes())
        .unwrap()
}

#[test]
fn denies_an_inbound_token_verify_with_refuses_without_asking_the_token_endpoint() {
    let config = config::parse(VERIFY_WITH_CONFIG, "t.yaml", Path::new("/etc"), &|_| None).unwrap();
    let e = Engine::with_static_keys(config);
    let x = counting(&e, 3600, false);
    let secret = b"secret-of-login-secret-of-login-1234";
    let good = format!(
        r#"{{"iss":"https://login.example.com","aud":"frontend","sub":"alice","exp":{}}}"#,
        NOW + 600
    );
    for (token, want) in [
        (
            login_token(b"another-secret-another-secret-1234567", &good),
            DenyReason::SignatureInvalid,
        ),
        (
            login_token(secret, &good.replace("frontend", "elsewhere")),
            DenyReason::AudienceMismatch,
        ),
        (
            login_token(
                secret,
                &good.replace(&(NOW + 600).to_string(), &(NOW - 600).to_string()),
            ),
            DenyReason::TokenExpired,
        ),
        ("opaque-token".to_owned(), DenyReason::TokenMalformed),
    ] {
        let d = decide(&e, &headers(&[&format!("Bearer {token}")]), NOW);
        let Decision::Deny(deny) = &d else {
            panic!("{d:?}")
        };
        assert_eq!(deny.reason, want, "{}", deny.detail);
        assert!(deny.exchange.is_none(), "no exchange is asked for");
        assert_eq!(deny.provider.as_deref(), Some("login"));
    }
    assert_eq!(x.calls.load(Ordering::SeqCst), 0);
    // No bearer token: the exchange step's own refusal.
    assert_eq!(
        reason(&decide(&e, &headers(&[]), NOW)),
        Some(DenyReason::TokenMissing)
    );
    assert_eq!(x.calls.load(Ordering::SeqCst), 0);
}

#[test]
fn allows_an_inbound_token_verify_with_accepts_with_its_exchanged_token() {
    let config = config::parse(VERIFY_WITH_CONFIG, "t.yaml", Path::new("/etc"), &|_| None).unwrap();
    let e = Engine::with_static_keys(config);
    let x = counting(&e, 3600, false);
    let token = login_token(
        b"secret-of-login-secret-of-login-1234",
        &format!(
            r#"{{"iss":"https://login.example.com","aud":"frontend","sub":"alice","exp":{}}}"#,
            NOW + 600
        ),
    );
    let h = headers(&[&format!("Bearer {token}")]);
    let (d, err) = decide_exchanging(&e, &h, NOW);
    assert_eq!(err, None);
    assert!(
        authorization(&d).starts_with("Bearer exchanged-0-for-"),
        "{d:?}"
    );
    assert_eq!(x.calls.load(Ordering::SeqCst), 1);
    // Explained: the verify_with step says the provider accepted it.
    let explained = e.explain(
        &AuthRequest::new(&Method::GET, "backend.example.org", "/x", &h),
        NOW,
    );
    let steps = explained.to_json();
    assert!(
        steps["steps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["step"] == "verify_with" && s["ok"] == true),
        "{steps}"
    );
}
