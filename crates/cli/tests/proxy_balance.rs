//! Issue 19, proxy mode's balancing: active health checks (a killed URL is
//! skipped once its checks fail, and taken back once they pass), retries of
//! idempotent requests without a body on another URL when a connect fails (never
//! a POST), every URL down answered 502 `upstream_unavailable`, and
//! `balance: least_requests` sending less to a slow URL than round robin does.
//!
//! The upstreams are real HTTP/1.1 servers on loopback (a small keep-alive server
//! here that counts the requests it answers, health checks apart, and can be
//! killed: its listener closed and its connections shut).
//!
//! Run: `cargo test -p portcullis-cli --test proxy_balance`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_types,
    clippy::disallowed_methods,
    reason = "tests: a panic is a failure; plain std locks and the wall clock"
)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portcullis_test_util::{Child, TempDir, free_port, request, wait_for_port};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

/// A keep-alive HTTP/1.1 upstream answering `200 ok` after `delay` (health checks
/// at `/healthz` at once), counting what it answers.
struct Backend {
    port: u16,
    hits: Arc<AtomicUsize>,
    posts: Arc<AtomicUsize>,
    checks: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
}

impl Backend {
    fn start(delay: Duration) -> Backend {
        Backend::start_on(0, delay)
    }

    fn start_on(port: u16, delay: Duration) -> Backend {
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let b = Backend {
            port,
            hits: Arc::default(),
            posts: Arc::default(),
            checks: Arc::default(),
            stop: Arc::default(),
            conns: Arc::default(),
        };
        let (hits, posts, checks, stop, conns) = (
            b.hits.clone(),
            b.posts.clone(),
            b.checks.clone(),
            b.stop.clone(),
            b.conns.clone(),
        );
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                conns.lock().unwrap().push(stream.try_clone().unwrap());
                let (hits, posts, checks) = (hits.clone(), posts.clone(), checks.clone());
                std::thread::spawn(move || serve(stream, delay, &hits, &posts, &checks));
            }
        });
        b
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// Closes the listener and every open connection; returns once connects fail.
    fn kill(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
            assert!(Instant::now() < deadline, "port {} still open", self.port);
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        if !self.stop.load(Ordering::SeqCst) {
            self.kill();
        }
    }
}

fn serve(
    mut s: TcpStream,
    delay: Duration,
    hits: &AtomicUsize,
    posts: &AtomicUsize,
    checks: &AtomicUsize,
) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        buf.drain(..end);
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while buf.len() < length {
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        buf.drain(..length);
        if head.split_whitespace().nth(1) == Some("/healthz") {
            checks.fetch_add(1, Ordering::SeqCst);
        } else {
            std::thread::sleep(delay);
            if head.starts_with("post ") {
                posts.fetch_add(1, Ordering::SeqCst);
            }
            hits.fetch_add(1, Ordering::SeqCst);
        }
        if s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            .is_err()
        {
            return;
        }
    }
}

/// `portcullis serve` with `config` (`__PROXY__`: its proxy port).
struct Served {
    _child: Child,
    port: u16,
    dir: TempDir,
}

impl Served {
    fn start(label: &str, config: &str) -> Served {
        let dir = TempDir::new(label);
        let port = free_port();
        let path = dir.write(
            "portcullis.yaml",
            &config.replace("__PROXY__", &port.to_string()),
        );
        let child = Child::spawn(
            Command::new(BIN)
                .args(["serve", "--config"])
                .arg(&path)
                .args(["--workers", "2"]),
            &dir.path().join("portcullis.log"),
        );
        wait_for_port(port, Duration::from_secs(20));
        Served {
            _child: child,
            port,
            dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("portcullis.log")).unwrap_or_default()
    }

    /// Waits (up to 10 s) until the log has `count` lines containing every one of `words`.
    fn wait_log(&self, words: &[&str], count: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.log();
            let n = log
                .lines()
                .filter(|l| words.iter().all(|w| l.contains(w)))
                .count();
            if n >= count {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no {count} log lines with {words:?}:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

const CHECK: &str = "{path: /healthz, interval: 100ms, timeout: 500ms, healthy_threshold: 2, unhealthy_threshold: 2}";

#[test]
fn health_checks_retries_and_every_url_down() {
    let (a, b) = (
        Backend::start(Duration::ZERO),
        Backend::start(Duration::ZERO),
    );
    let dead = (free_port(), free_port());
    let config = format!(
        r#"listen:
  proxy: 127.0.0.1:__PROXY__
upstreams:
  - {{name: pair, urls: ["http://127.0.0.1:{a}", "http://127.0.0.1:{b}"], health_check: {CHECK}}}
  - {{name: pair_once, urls: ["http://127.0.0.1:{a}", "http://127.0.0.1:{b}"], retries: 0, health_check: {CHECK}}}
  - {{name: half, urls: ["http://127.0.0.1:{a}", "http://127.0.0.1:{d0}"], connect_timeout: 1s}}
  - {{name: gone, urls: ["http://127.0.0.1:{d0}", "http://127.0.0.1:{d1}"], health_check: {CHECK}}}
rules:
  - {{name: once, match: {{path: "/once/**"}}, allow: anonymous, upstream: pair_once}}
  - {{name: half, match: {{path: "/half/**"}}, allow: anonymous, upstream: half}}
  - {{name: gone, match: {{path: "/gone/**"}}, allow: anonymous, upstream: gone}}
  - {{name: all, match: {{}}, allow: anonymous, upstream: pair}}
"#,
        a = a.port,
        b = b.port,
        d0 = dead.0,
        d1 = dead.1,
    );
    let served = Served::start("proxy-health", &config);
    let get = |path: &str| request("GET", &served.url(path), &[], "");

    // Both URLs take traffic while both are up.
    for i in 0..10 {
        let r = get(&format!("/x/{i}"));
        assert_eq!(r.status, 200, "{}", r.body);
        let r = get(&format!("/once/{i}"));
        assert_eq!(r.status, 200, "{}", r.body);
    }
    assert_eq!((a.hits(), b.hits()), (10, 10));

    // b dies. Before its checks mark it down, a GET sent to it is retried on a
    // (its connect fails): no 502.
    b.kill();
    let before = a.hits();
    for i in 0..10 {
        let r = get(&format!("/x/after-kill/{i}"));
        assert_eq!(r.status, 200, "GET {i} after the kill: {}", r.body);
    }
    assert_eq!(a.hits(), before + 10);
    // The checks mark b down (both pools check it); then even the upstream without
    // retries sends nothing there.
    served.wait_log(
        &["upstream URL unhealthy", &format!("127.0.0.1:{}", b.port)],
        2,
    );
    let before = a.hits();
    for i in 0..10 {
        let r = get(&format!("/once/{i}"));
        assert_eq!(
            r.status, 200,
            "GET /once/{i} with b marked down: {}",
            r.body
        );
    }
    assert_eq!(a.hits(), before + 10);

    // b comes back on its port: two passing checks and it takes traffic again.
    let b2 = Backend::start_on(b.port, Duration::ZERO);
    served.wait_log(
        &[
            "upstream URL healthy again",
            &format!("127.0.0.1:{}", b.port),
        ],
        2,
    );
    for i in 0..10 {
        assert_eq!(get(&format!("/x/back/{i}")).status, 200);
    }
    assert_eq!(b2.hits(), 5, "round robin over both again");

    // `half`: a and a port nobody listens on, no checks. GETs are retried on a;
    // POSTs never are (round robin sends every other one to the dead URL).
    let before = a.hits();
    for i in 0..4 {
        let r = get(&format!("/half/get/{i}"));
        assert_eq!(r.status, 200, "GET /half/get/{i}: {}", r.body);
    }
    assert_eq!(a.hits(), before + 4);
    let posts_before = a.posts.load(Ordering::SeqCst);
    let mut statuses = Vec::new();
    for i in 0..4 {
        let r = request("POST", &served.url(&format!("/half/post/{i}")), &[], "");
        statuses.push(r.status);
        if r.status == 502 {
            let body: Value = serde_json::from_str(&r.body).unwrap();
            assert_eq!(body["reason"], "upstream_unavailable", "{}", r.body);
        }
    }
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 200, 502, 502], "POSTs are sent once");
    assert_eq!(a.posts.load(Ordering::SeqCst), posts_before + 2);

    // `gone`: every URL down. The first request builds the pool (and starts its
    // checks); once both are marked down, a request is answered 502 without a try.
    let r = get("/gone/first");
    assert_eq!(r.status, 502, "{}", r.body);
    served.wait_log(
        &["upstream URL unhealthy", &format!("127.0.0.1:{}", dead.0)],
        1,
    );
    served.wait_log(
        &["upstream URL unhealthy", &format!("127.0.0.1:{}", dead.1)],
        1,
    );
    let r = get("/gone/again");
    assert_eq!(r.status, 502, "{}", r.body);
    assert_eq!(
        r.body,
        r#"{"error":"bad_gateway","reason":"upstream_unavailable"}"#
    );
    served.wait_log(&["no URL passes its health checks"], 1);
}

#[test]
fn least_requests_sends_less_to_a_slow_url() {
    let (fast_rr, slow_rr) = (
        Backend::start(Duration::ZERO),
        Backend::start(Duration::from_millis(200)),
    );
    let (fast_lr, slow_lr) = (
        Backend::start(Duration::ZERO),
        Backend::start(Duration::from_millis(200)),
    );
    let config = format!(
        r#"listen:
  proxy: 127.0.0.1:__PROXY__
upstreams:
  - {{name: rr, urls: ["http://127.0.0.1:{}", "http://127.0.0.1:{}"]}}
  - {{name: lr, urls: ["http://127.0.0.1:{}", "http://127.0.0.1:{}"], balance: least_requests}}
rules:
  - {{name: rr, match: {{path: "/rr/**"}}, allow: anonymous, upstream: rr}}
  - {{name: lr, match: {{path: "/lr/**"}}, allow: anonymous, upstream: lr}}
"#,
        fast_rr.port, slow_rr.port, fast_lr.port, slow_lr.port
    );
    let served = Served::start("proxy-least", &config);
    // Four clients, 15 requests each, at once.
    let run = |prefix: &str| {
        std::thread::scope(|s| {
            for t in 0..4 {
                let served = &served;
                s.spawn(move || {
                    for i in 0..15 {
                        let r = request("GET", &served.url(&format!("/{prefix}/{t}/{i}")), &[], "");
                        assert_eq!(r.status, 200, "{}", r.body);
                    }
                });
            }
        });
    };
    run("rr");
    run("lr");
    assert_eq!(fast_rr.hits() + slow_rr.hits(), 60);
    assert_eq!(fast_lr.hits() + slow_lr.hits(), 60);
    // Round robin gives the slow URL its half regardless.
    assert_eq!(slow_rr.hits(), 30);
    // Least requests sends it a request only when it is no busier than the fast one
    // (ties, both idle, go either way: on a loaded machine the fast URL is idle less
    // often, so the bound is a third, well under round robin's half and under what a
    // random choice gives, 30 ± 4).
    assert!(
        slow_lr.hits() * 3 <= 60,
        "least_requests sent {} of 60 to the slow URL",
        slow_lr.hits()
    );
    assert!(slow_lr.hits() > 0, "the slow URL still gets some");
}
