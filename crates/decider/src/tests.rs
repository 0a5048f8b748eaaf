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

/// Answers every token with a fixed response, counting calls.
#[derive(Debug, Default)]
struct FixedIntrospector {
    calls: std::sync::atomic::AtomicUsize,
}

impl portcullis_policy::Introspect for FixedIntrospector {
    fn introspect<'a>(
        &'a self,
        provider: &'a portcullis_policy::Provider,
        token: &'a str,
        _now: i64,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = portcullis_policy::Introspected> + Send + 'a>,
    > {
        self.calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let outcome = if token == "good-opaque" {
            portcullis_policy::IntrospectionOutcome::Active {
                claims_json: Arc::from(
                    format!(r#"{{"active":true,"client_id":"m2m","exp":{}}}"#, T0 + 60).as_bytes(),
                ),
            }
        } else {
            portcullis_policy::IntrospectionOutcome::Inactive
        };
        Box::pin(std::future::ready(portcullis_policy::Introspected {
            provider: Arc::from(provider.name()),
            token: Arc::from(token),
            outcome,
        }))
    }
}

fn introspecting_engine(mode: &str) -> Engine {
    let text = format!(
        r#"
providers:
  - name: corp
    issuer: https://idp
    jwks: {{discovery: https://idp}}
    introspection: {{client_id: c, client_secret: s}}
    claims_to_headers: [{{header: x-client, claim: client_id}}]
rules:
  - name: api
    match: {{}}
    {mode}
"#
    );
    Engine::with_static_keys(config::parse(&text, "t.yaml", Path::new("."), &|_| None).unwrap())
}

fn opaque(token: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    h
}

/// An opaque token: the decider asks the introspector once and decides with its
/// answer; without an introspector, fail closed.
#[tokio::test]
async fn introspects_opaque_tokens_off_the_engine() {
    let clock = Arc::new(ManualClock::new(T0));
    let introspector = Arc::new(FixedIntrospector::default());
    let decider = Decider::new(introspecting_engine(""), Arc::new(Metrics::new()))
        .with_clock(clock)
        .with_introspector(introspector.clone());
    let good = opaque("good-opaque");
    let req = AuthRequest::new(&http::Method::GET, "h", "/x", &good);
    let Decision::Allow(a) = decider.decide(&req, Frontend::ForwardAuth).await else {
        panic!("denied")
    };
    assert!(
        a.set_headers
            .iter()
            .any(|(n, v)| n == "x-client" && v == "m2m")
    );
    assert_eq!(
        introspector
            .calls
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    let bad = opaque("made-up");
    let req = AuthRequest::new(&http::Method::GET, "h", "/x", &bad);
    let d = decider.decide(&req, Frontend::ForwardAuth).await;
    assert_eq!(d.reason().map(|r| r.as_str()), Some("token_inactive"));

    let plain = Decider::new(introspecting_engine(""), Arc::new(Metrics::new()));
    let req = AuthRequest::new(&http::Method::GET, "h", "/x", &good);
    let d = plain.decide(&req, Frontend::ForwardAuth).await;
    assert_eq!(d.status(), 503, "{d:?}");
}

/// A dry-run rule is decided with the answer too (what it would deny is logged).
#[tokio::test]
async fn dry_run_rules_introspect_too() {
    let introspector = Arc::new(FixedIntrospector::default());
    let decider = Decider::new(
        introspecting_engine("mode: dry_run"),
        Arc::new(Metrics::new()),
    )
    .with_clock(Arc::new(ManualClock::new(T0)))
    .with_introspector(introspector.clone());
    let bad = opaque("made-up");
    let req = AuthRequest::new(&http::Method::GET, "h", "/x", &bad);
    let Decision::Allow(a) = decider.decide(&req, Frontend::ForwardAuth).await else {
        panic!("a dry-run rule allows")
    };
    assert_eq!(a.dry_run.map(|d| d.reason.as_str()), Some("token_inactive"));
}

/// A step for the layer tests: records whether it ran and whether the round it
/// saw still held an introspection answer; optionally learns one.
#[derive(Debug)]
struct Probe {
    wants_deny: bool,
    learns: bool,
    ran: std::sync::atomic::AtomicBool,
    saw_introspected: std::sync::atomic::AtomicBool,
}

impl Probe {
    fn new(wants_deny: bool, learns: bool) -> Arc<Probe> {
        Arc::new(Probe {
            wants_deny,
            learns,
            ran: false.into(),
            saw_introspected: false.into(),
        })
    }

    fn seen(&self) -> (bool, bool) {
        use std::sync::atomic::Ordering::SeqCst;
        (self.ran.load(SeqCst), self.saw_introspected.load(SeqCst))
    }
}

impl step::Step for Arc<Probe> {
    fn wants(&self, decision: &Decision) -> bool {
        matches!(decision, Decision::Deny(_)) == self.wants_deny
    }

    fn run<'a>(&'a self, round: &'a mut step::Round<'_>) -> step::StepFuture<'a> {
        Box::pin(async move {
            use std::sync::atomic::Ordering::SeqCst;
            self.ran.store(true, SeqCst);
            self.saw_introspected
                .store(round.request().introspected.is_some(), SeqCst);
            if self.learns {
                round.learn_introspection(portcullis_policy::Introspected {
                    provider: "corp".into(),
                    token: "opaque".into(),
                    outcome: portcullis_policy::IntrospectionOutcome::Inactive,
                });
            }
            round.decide_again();
        })
    }
}

/// The layers run in order, only when the decision asks for them, and what an
/// earlier layer learned (an introspection answer) is in every later layer's
/// request and re-decision: an exchange after an introspection keeps the answer.
#[tokio::test]
async fn layers_run_in_order_and_keep_what_they_learned() {
    let engine = engine();
    let headers = HeaderMap::new();
    let req = AuthRequest::new(&http::Method::GET, "h", "/x", &headers);
    let clock = ManualClock::new(T0);
    let (first, on_allow, last) = (
        Probe::new(true, true),
        Probe::new(false, false),
        Probe::new(true, false),
    );
    let steps: Vec<Box<dyn step::Step>> = vec![
        Box::new(first.clone()),
        Box::new(on_allow.clone()),
        Box::new(last.clone()),
    ];
    let mut round = step::Round::start(&engine, &req, &clock);
    assert!(
        matches!(round.decision, Decision::Deny(_)),
        "no token: a deny"
    );
    round.run(&steps).await;
    assert_eq!(
        first.seen(),
        (true, false),
        "the first layer ran, before any answer"
    );
    assert_eq!(
        on_allow.seen(),
        (false, false),
        "a layer for allows did not run on a deny"
    );
    assert_eq!(
        last.seen(),
        (true, true),
        "the last layer saw the first one's answer"
    );
    assert!(matches!(round.decision, Decision::Deny(_)));
    assert!(
        round.request().introspected.is_some(),
        "the round keeps the answer"
    );
}
