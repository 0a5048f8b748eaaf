//! Spans the OpenTelemetry exporter drops are counted in
//! `portcullis_telemetry_spans_dropped_total{reason}`: a collector that refuses
//! connections fails every export (`export_failed`), and a collector that accepts
//! and never answers holds the exporter until the queue is full (`queue_full`),
//! while decisions go on being answered; with a working OTLP receiver
//! (`peers/otlp_receiver.py`, PyPI `opentelemetry-proto`, as in `telemetry_otlp.rs`)
//! `portcullis_telemetry_spans_exported_total` counts exactly the spans it received
//! and nothing is dropped. The broken collectors are plain sockets.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::net::TcpListener;
use std::time::{Duration, Instant};

use portcullis_test_util::{
    Child, Portcullis, TempDir, free_port, get, peers_dir, python, request,
};

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

fn config(collector: u16) -> String {
    format!(
        "providers: []\nrules:\n  - {{name: open, match: {{path: \"/**\"}}, allow: anonymous}}\ntelemetry:\n  otlp_endpoint: http://127.0.0.1:{collector}\n"
    )
}

/// The value of the series `name` (with its labels) on `/metrics`.
fn series(p: &Portcullis, name: &str) -> u64 {
    let r = get(&format!("http://127.0.0.1:{}/metrics", p.admin), &[]);
    assert_eq!(r.status, 200);
    r.body
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in:\n{}", r.body))
}

/// Sends `n` decisions over `threads` threads; every one is answered 200.
fn decide(p: &Portcullis, n: usize, threads: usize) {
    let url = format!("http://127.0.0.1:{}/verify", p.http);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                for _ in 0..n / threads {
                    let r = request("GET", &url, &[("x-forwarded-uri", "/x")], "");
                    assert_eq!(r.status, 200, "{}", r.body);
                }
            });
        }
    });
}

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

const DROPPED_FAILED: &str = "portcullis_telemetry_spans_dropped_total{reason=\"export_failed\"}";
const DROPPED_FULL: &str = "portcullis_telemetry_spans_dropped_total{reason=\"queue_full\"}";
const EXPORTED: &str = "portcullis_telemetry_spans_exported_total";

#[test]
fn spans_of_failed_exports_are_counted() {
    // Nothing listens there: every export is refused.
    let p = Portcullis::start(BIN, &config(free_port()));
    assert_eq!(series(&p, DROPPED_FAILED), 0);
    decide(&p, 40, 2);
    wait_for(
        "40 spans counted as export_failed",
        Duration::from_secs(20),
        || series(&p, DROPPED_FAILED) >= 40,
    );
    assert_eq!(series(&p, EXPORTED), 0);
    assert_eq!(series(&p, DROPPED_FULL), 0);
}

#[test]
fn spans_past_a_full_queue_are_counted() {
    // A collector that takes the connection and never answers: the export waits
    // for its timeout (10 s) while spans pile up past the queue (4096).
    let hanging = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = hanging.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in hanging.incoming() {
            held.push(conn);
        }
    });
    let p = Portcullis::start(BIN, &config(port));
    // Let the first export start (every 0.5 s) and hang.
    decide(&p, 4, 1);
    std::thread::sleep(Duration::from_millis(800));
    decide(&p, 5200, 4);
    let full = series(&p, DROPPED_FULL);
    assert!(full > 0, "no span counted as queue_full");
    assert!(full < 5200, "{full}");
    assert_eq!(series(&p, EXPORTED), 0);
    // The hung export then times out: its spans are counted as failed.
    wait_for("the hung export to fail", Duration::from_secs(30), || {
        series(&p, DROPPED_FAILED) > 0
    });
}

#[test]
fn exported_spans_are_counted_and_none_dropped() {
    let dir = TempDir::new("otlp");
    let _receiver = Child::spawn(
        std::process::Command::new(python())
            .arg(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("tests/peers/otlp_receiver.py"),
            )
            .arg(dir.path())
            .arg(peers_dir().join("otlp-proto")),
        &dir.path().join("receiver.log"),
    );
    let port_file = dir.path().join("port");
    wait_for("the OTLP receiver", Duration::from_secs(10), || {
        port_file.exists()
    });
    let port: u16 = std::fs::read_to_string(&port_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let p = Portcullis::start(BIN, &config(port));
    decide(&p, 30, 2);
    let received = || {
        std::fs::read_to_string(dir.path().join("exports.jsonl"))
            .unwrap_or_default()
            .lines()
            .count() as u64
    };
    wait_for("30 spans at the receiver", Duration::from_secs(20), || {
        received() >= 30
    });
    // The count is updated once the export request has been answered.
    wait_for("the exported count", Duration::from_secs(10), || {
        series(&p, EXPORTED) >= 30
    });
    assert_eq!(series(&p, EXPORTED), received());
    assert_eq!(series(&p, DROPPED_FAILED), 0);
    assert_eq!(series(&p, DROPPED_FULL), 0);
}
