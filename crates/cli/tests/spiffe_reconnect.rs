//! The SPIFFE Workload API going away and coming back: bundles and the injected
//! JWT-SVID are kept while it is down, the client reconnects with backoff (it does
//! not spin), and after the agent returns with a rotated trust bundle the new key
//! is used and the removed one refused.
//!
//! SPIRE itself cannot be installed here, so the SPIRE Agent is stood in for by
//! `portcullis_test_util::WorkloadApi`, a tonic server of the official SPIFFE
//! `workload.proto` on a Unix socket, stopped (its streams cut, its socket removed)
//! and restarted on the same socket path.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::os::unix::net::UnixListener;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use portcullis_test_util::{Issuer, Portcullis, Response, TempDir, WorkloadApi, get};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");
const TRUST_DOMAIN: &str = "example.org";
const FRONTEND: &str = "spiffe://example.org/ns/default/sa/frontend";
const BACKEND_AUD: &str = "spiffe://example.org/backend";
/// The lifetime of the SVIDs the agent hands out: renewed at half of it.
const SVID_TTL: i64 = 8;

fn config(endpoint: &str) -> String {
    format!(
        r#"providers:
  - name: mesh
    spiffe:
      trust_domain: {TRUST_DOMAIN}
      bundle: {{workload_api: "{endpoint}"}}
    audiences: [{BACKEND_AUD}]
    claims_to_headers:
      - {{header: x-spiffe-id, claim: sub}}
rules:
  - name: egress
    match: {{host: backend.example.org}}
    inject:
      audience: {BACKEND_AUD}
      source: workload_api
      socket: "{endpoint}"
  - name: api
    match: {{path: /api/**}}
    providers: [mesh]
"#
    )
}

/// The outbound call: the `Authorization` Portcullis injects, if it answers 200.
fn inject(p: &Portcullis) -> Option<String> {
    let r = p.verify(&[
        ("x-forwarded-host", "backend.example.org"),
        ("x-forwarded-uri", "/orders"),
        ("x-forwarded-method", "GET"),
    ]);
    (r.status == 200).then(|| r.header("authorization").unwrap().to_owned())
}

/// The inbound call with `svid`.
fn validate(p: &Portcullis, svid: &str) -> Response {
    p.verify(&[
        ("x-forwarded-host", "api.example.org"),
        ("x-forwarded-uri", "/api/orders"),
        ("x-forwarded-method", "GET"),
        ("authorization", &format!("Bearer {svid}")),
    ])
}

fn reason(r: &Response) -> String {
    r.json()["reason"].as_str().unwrap_or_default().to_owned()
}

fn claims() -> Value {
    let now = Issuer::now();
    json!({"sub": FRONTEND, "aud": [BACKEND_AUD], "iat": now, "exp": now + 300})
}

fn kid_of(authorization: &str) -> String {
    let token = authorization.strip_prefix("Bearer ").unwrap();
    let header = portcullis_jose::b64::decode(token.split('.').next().unwrap().as_bytes()).unwrap();
    let header: Value = serde_json::from_slice(&header).unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

fn ready(p: &Portcullis) -> u16 {
    get(&format!("http://127.0.0.1:{}/readyz", p.admin), &[]).status
}

fn eventually(what: &str, p: &Portcullis, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !f() {
        assert!(
            Instant::now() < deadline,
            "timed out: {what}\nlog:\n{}",
            p.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A socket that accepts connections and drops them at once (an agent that is not
/// answering), counting them.
struct DeadSocket {
    accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl DeadSocket {
    fn bind(path: &Path) -> DeadSocket {
        let listener = UnixListener::bind(path).unwrap();
        listener.set_nonblocking(true).unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, s) = (accepted.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        a.fetch_add(1, Ordering::SeqCst);
                        drop(conn);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        DeadSocket {
            accepted,
            stop,
            thread: Some(thread),
        }
    }

    fn close(mut self, path: &Path) -> usize {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.take().unwrap().join().unwrap();
        let _ = std::fs::remove_file(path);
        self.accepted.load(Ordering::SeqCst)
    }
}

#[test]
fn workload_api_restart_keeps_bundles_and_svids_then_takes_the_rotated_bundle() {
    let dir = TempDir::new("spiffe-reconnect");
    let mut api = WorkloadApi::start(dir.path(), TRUST_DOMAIN, FRONTEND, SVID_TTL);
    let p = Portcullis::start(BIN, &config(&api.endpoint()));
    p.wait_ready(Duration::from_secs(10));
    let mut first = None;
    eventually("a JWT-SVID to inject", &p, || {
        first = inject(&p);
        first.is_some()
    });
    let first = first.unwrap();
    assert_eq!(kid_of(&first), "k1");
    let old_key_svid = api.mint(&claims());
    let r = validate(&p, &old_key_svid);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("x-spiffe-id"), Some(FRONTEND));
    let svid_calls = api.svid_calls();

    // 1. The agent goes away: its streams are cut, its socket removed.
    api.stop();
    let down = Instant::now();
    eventually("the bundle stream failure logged", &p, || {
        p.log().contains("Workload API bundle stream")
    });
    // Meanwhile the last bundle is in use, readiness holds, and the injected SVID
    // is served from its slot.
    for _ in 0..5 {
        let r = validate(&p, &old_key_svid);
        assert_eq!(
            r.status, 200,
            "bundle lost while the agent is down: {}",
            r.body
        );
        assert_eq!(ready(&p), 200, "not ready while the agent is down");
        assert_eq!(inject(&p).as_deref(), Some(first.as_str()));
        std::thread::sleep(Duration::from_millis(200));
    }

    // 2. A socket that accepts and drops: Portcullis retries with backoff, it does
    //    not spin. Over 3 s, doubling waits from 200 ms give a handful of attempts
    //    per client (bundles; the SVID renewal at half-life joins in).
    let dead = DeadSocket::bind(api.socket());
    std::thread::sleep(Duration::from_secs(3));
    let attempts = dead.close(api.socket());
    eprintln!("connection attempts to the dead socket in 3 s: {attempts}");
    assert!(
        (1..=16).contains(&attempts),
        "{attempts} connection attempts in 3 s while the agent was down\nlog:\n{}",
        p.log()
    );
    assert_eq!(ready(&p), 200);
    let r = validate(&p, &old_key_svid);
    assert_eq!(r.status, 200, "{}", r.body);
    // The renewal at half-life failed, and the current SVID is still injected.
    eventually("the failed renewal logged", &p, || {
        p.log().contains("inject: no new token")
    });
    assert!(down.elapsed() < Duration::from_secs(SVID_TTL as u64 - 1));
    assert_eq!(inject(&p).as_deref(), Some(first.as_str()));
    let log = p.log();
    let failures = log.matches("Workload API bundle stream failed").count();
    eprintln!("bundle stream failures logged while down: {failures}");
    assert!(
        (1..=16).contains(&failures),
        "{failures} bundle stream failures logged\n{log}"
    );

    // 3. The agent returns with a rotated bundle: k2 only (k1 removed).
    api.rotate();
    api.retire();
    let connections = api.connections();
    api.restart();
    let mut renewed = None;
    eventually("the SVID renewed from the restarted agent", &p, || {
        renewed = inject(&p).filter(|a| *a != first);
        renewed.is_some()
    });
    let renewed = renewed.unwrap();
    assert_eq!(kid_of(&renewed), "k2");
    assert!(api.svid_calls() > svid_calls);
    eventually("the rotated bundle in use", &p, || {
        let r = validate(&p, &old_key_svid);
        r.status == 401 && reason(&r) == "key_not_found"
    });
    let new_key_svid = api.mint(&claims());
    let r = validate(&p, &new_key_svid);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("x-spiffe-id"), Some(FRONTEND));
    let injected = renewed.strip_prefix("Bearer ").unwrap();
    let r = validate(&p, injected);
    assert_eq!(r.status, 200, "the injected SVID: {}", r.body);
    assert!(p.log().contains("Workload API bundle received"));
    assert_eq!(ready(&p), 200);

    // 4. Connected again, it stays connected: no new connection over 1.5 s.
    let settled = api.connections();
    assert!(settled > connections, "no reconnection counted");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        api.connections(),
        settled,
        "new connections while connected"
    );
}
