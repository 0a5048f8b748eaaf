//! OpenTelemetry trace export (OTLP/HTTP protobuf). Peers: a JWKS server and an
//! OTLP/HTTP receiver (`peers/otlp_receiver.py`): no OpenTelemetry Collector can be
//! installed here, so the receiver decodes `ExportTraceServiceRequest` with the
//! official protobuf definitions (PyPI `opentelemetry-proto`, which
//! `scripts/install-peers` puts in `.peers/otlp-proto`). Portcullis is started with `telemetry.otlp_endpoint` at it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is a failure"
)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use portcullis_jose::Algorithm;
use portcullis_test_util::{Child, Issuer, JwksServer, Portcullis, TempDir, peers_dir, python};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");
const ISS: &str = "https://issuer.test";
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";

struct Receiver {
    _child: Child,
    dir: TempDir,
    port: u16,
}

impl Receiver {
    fn start() -> Receiver {
        let dir = TempDir::new("otlp");
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers/otlp_receiver.py");
        let child = Child::spawn(
            std::process::Command::new(python())
                .arg(&script)
                .arg(dir.path())
                .arg(otlp_proto()),
            &dir.path().join("receiver.log"),
        );
        let port_file = dir.path().join("port");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !port_file.exists() {
            assert!(
                Instant::now() < deadline,
                "receiver did not start: {}",
                read(&dir.path().join("receiver.log"))
            );
            std::thread::sleep(Duration::from_millis(25));
        }
        let port = read(&port_file).trim().parse().unwrap();
        Receiver {
            _child: child,
            dir,
            port,
        }
    }

    fn spans(&self) -> Vec<Value> {
        read(&self.dir.path().join("exports.jsonl"))
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn raw(&self) -> Vec<u8> {
        std::fs::read(self.dir.path().join("raw.bin")).unwrap_or_default()
    }
}

/// Where `scripts/install-peers` put PyPI `opentelemetry-proto`.
fn otlp_proto() -> PathBuf {
    let p = peers_dir().join("otlp-proto");
    assert!(
        p.join("opentelemetry/proto").exists(),
        "{} is missing: run scripts/install-peers",
        p.display()
    );
    p
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

fn config(jwks_url: &str, telemetry: &str) -> String {
    format!(
        r#"
providers:
  - name: corp
    issuer: {ISS}
    audiences: [api]
    jwks:
      uri: {jwks_url}
rules:
  - name: public
    match: {{path: /healthz}}
    allow: anonymous
  - name: admin
    match: {{path: "/admin/**"}}
    claims: {{groups: [admins]}}
  - name: default
    match: {{}}
{telemetry}"#
    )
}

fn attr<'a>(span: &'a Value, key: &str) -> &'a Value {
    &span["attributes"][key]
}

fn decisions<'a>(spans: &'a [Value], reason_or_result: &str) -> Vec<&'a Value> {
    spans
        .iter()
        .filter(|s| s["name"] == "portcullis.decision")
        .filter(|s| {
            attr(s, "portcullis.reason") == reason_or_result
                || (attr(s, "portcullis.result") == reason_or_result
                    && attr(s, "portcullis.reason").is_null())
        })
        .collect()
}

#[test]
fn decisions_and_key_fetches_are_exported_with_the_callers_trace() {
    let receiver = Receiver::start();
    let issuer = Issuer::new(Algorithm::ES256, "k1", ISS);
    let jwks = JwksServer::start(&issuer.jwks(), None);
    let telemetry = format!(
        "telemetry:\n  otlp_endpoint: http://127.0.0.1:{}\n  service_name: portcullis-test\n  headers: {{x-test-header: sent}}\n",
        receiver.port
    );
    let mut p = Portcullis::start(BIN, &config(&jwks.url(), &telemetry));
    p.wait_ready(Duration::from_secs(10));
    let token = issuer.mint(json!({"sub": "alice", "aud": "api", "groups": ["users"]}));
    let bearer = format!("Bearer {token}");
    let traceparent = format!("00-{TRACE_ID}-{PARENT_ID}-01");

    // Allowed, inside the caller's trace: the answer carries our span onward.
    let r = p.verify(&[
        ("authorization", &bearer),
        ("traceparent", &traceparent),
        ("x-forwarded-method", "GET"),
        ("x-forwarded-host", "api.test"),
        ("x-forwarded-uri", "/orders?access_token=secret-in-query"),
    ]);
    assert_eq!(r.status, 200, "{}", p.log());
    let onward = r
        .header("traceparent")
        .expect("traceparent on the allow")
        .to_owned();
    let parts: Vec<&str> = onward.split('-').collect();
    assert_eq!(parts.len(), 4, "{onward}");
    assert_eq!(parts[1], TRACE_ID, "{onward}");
    assert_ne!(parts[2], PARENT_ID, "{onward}");

    // Denied: no token (401), and claims not satisfied (403).
    let r = p.verify(&[
        ("x-forwarded-uri", "/orders"),
        ("x-forwarded-host", "api.test"),
    ]);
    assert_eq!(r.status, 401);
    assert!(r.header("traceparent").is_none());
    let r = p.verify(&[
        ("authorization", &bearer),
        ("x-forwarded-uri", "/admin/x"),
        ("x-forwarded-host", "api.test"),
    ]);
    assert_eq!(r.status, 403);

    // Hostile traceparents: a malformed one and a repeated one start a new trace
    // and change no decision.
    let junk = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJtYWxsb3J5In0.junk-token-value";
    let r = p.verify(&[
        ("authorization", &format!("Bearer {junk}")),
        ("traceparent", "00-zzzz-not-a-trace-01"),
    ]);
    assert_eq!(r.status, 401);
    let r = p.verify(&[
        ("authorization", &bearer),
        ("traceparent", &traceparent),
        (
            "traceparent",
            "00-11111111111111111111111111111111-2222222222222222-01",
        ),
        ("x-forwarded-uri", "/healthz"),
    ]);
    assert_eq!(r.status, 200);

    // SIGTERM flushes the queue before the exit.
    assert!(
        p.child
            .stop(Duration::from_secs(20))
            .is_some_and(|s| s.success()),
        "{}",
        p.log()
    );

    let deadline = Instant::now() + Duration::from_secs(5);
    while receiver
        .spans()
        .iter()
        .filter(|s| s["name"] == "portcullis.decision")
        .count()
        < 5
    {
        assert!(
            Instant::now() < deadline,
            "spans: {:#?}\nlog:\n{}",
            receiver.spans(),
            p.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let spans = receiver.spans();

    let allow = decisions(&spans, "allow");
    let allow = allow
        .iter()
        .find(|s| attr(s, "portcullis.rule") == "default")
        .unwrap_or_else(|| panic!("{spans:#?}"));
    assert_eq!(allow["trace_id"], TRACE_ID);
    assert_eq!(allow["parent_span_id"], PARENT_ID);
    assert_eq!(
        allow["span_id"], parts[2],
        "the onward traceparent names the decision span"
    );
    assert_eq!(attr(allow, "portcullis.provider"), "corp");
    assert_eq!(attr(allow, "portcullis.frontend"), "forward_auth");
    assert_eq!(attr(allow, "http.request.method"), "GET");
    assert_eq!(attr(allow, "server.address"), "api.test");
    assert_eq!(attr(allow, "url.path"), "/orders", "no query");
    assert_eq!(attr(allow, "http.response.status_code"), 200);
    assert_eq!(allow["kind"], 2, "SPAN_KIND_SERVER");
    assert_eq!(allow["resource"]["service.name"], "portcullis-test");
    assert_eq!(allow["content_type"], "application/x-protobuf");
    assert_eq!(allow["x_test_header"], "sent");
    assert_eq!(allow["events"], 0, "no log events in spans");

    let missing = decisions(&spans, "token_missing");
    assert_eq!(missing.len(), 1, "{spans:#?}");
    assert_eq!(attr(missing[0], "http.response.status_code"), 401);
    assert_eq!(attr(missing[0], "portcullis.result"), "deny");
    assert_eq!(attr(missing[0], "portcullis.rule"), "default");
    assert_eq!(
        missing[0]["parent_span_id"], "",
        "a root span without traceparent"
    );

    let claim = decisions(&spans, "claim_mismatch");
    assert_eq!(claim.len(), 1, "{spans:#?}");
    assert_eq!(attr(claim[0], "portcullis.rule"), "admin");
    assert_eq!(attr(claim[0], "http.response.status_code"), 403);

    // The malformed traceparent: a new trace, a root span.
    let malformed = decisions(&spans, "algorithm_not_allowed");
    assert_eq!(malformed.len(), 1, "{spans:#?}");
    assert_eq!(malformed[0]["parent_span_id"], "");
    assert_ne!(malformed[0]["trace_id"], TRACE_ID);
    // The repeated one is read by no one: a new trace too.
    let public = decisions(&spans, "allow")
        .into_iter()
        .find(|s| attr(s, "portcullis.rule") == "public")
        .unwrap_or_else(|| panic!("{spans:#?}"));
    assert_eq!(public["parent_span_id"], "");

    let fetch = spans
        .iter()
        .find(|s| s["name"] == "portcullis.jwks_fetch")
        .unwrap_or_else(|| panic!("{spans:#?}"));
    assert_eq!(attr(fetch, "portcullis.provider"), "corp");
    assert_eq!(attr(fetch, "url.full"), jwks.url().as_str());
    assert_eq!(attr(fetch, "portcullis.outcome"), "success");
    assert_eq!(attr(fetch, "portcullis.keys"), 1);
    assert!(attr(fetch, "portcullis.duration_ms").is_i64(), "{fetch}");
    assert_eq!(fetch["kind"], 3, "SPAN_KIND_CLIENT");

    // Nothing but our spans, and never a token or a part of one.
    for s in &spans {
        let name = s["name"].as_str().unwrap();
        assert!(name.starts_with("portcullis."), "{name}");
    }
    let raw = receiver.raw();
    let sig = token.rsplit('.').next().unwrap();
    for needle in [
        token.as_str(),
        sig,
        junk,
        "junk-token-value",
        "secret-in-query",
    ] {
        assert!(
            !raw.windows(needle.len()).any(|w| w == needle.as_bytes()),
            "{needle:?} was exported"
        );
    }
}

#[test]
fn without_an_endpoint_nothing_is_exported() {
    let receiver = Receiver::start();
    let issuer = Issuer::new(Algorithm::ES256, "k1", ISS);
    let jwks = JwksServer::start(&issuer.jwks(), None);
    let mut p = Portcullis::start(BIN, &config(&jwks.url(), ""));
    p.wait_ready(Duration::from_secs(10));
    let token = issuer.mint(json!({"sub": "alice", "aud": "api"}));
    let r = p.verify(&[
        ("authorization", &format!("Bearer {token}")),
        ("traceparent", &format!("00-{TRACE_ID}-{PARENT_ID}-01")),
    ]);
    assert_eq!(r.status, 200);
    assert!(
        r.header("traceparent").is_none(),
        "no span, nothing carried"
    );
    assert_eq!(p.verify(&[]).status, 401);
    assert!(
        p.child
            .stop(Duration::from_secs(20))
            .is_some_and(|s| s.success())
    );
    assert!(!p.log().contains("exporting traces"), "{}", p.log());
    std::thread::sleep(Duration::from_millis(300));
    assert!(receiver.raw().is_empty());
    assert!(!receiver.dir.path().join("exports.jsonl").exists());
}

#[test]
fn bad_telemetry_keys_name_the_file_line_and_field() {
    let dir = TempDir::new("otel-check");
    let cases = [
        (
            "  otlp_endpoint: 127.0.0.1:4318\n",
            "telemetry.otlp_endpoint",
            "not an http:// or https:// URL",
        ),
        (
            "  otlp_endpoint: http://user:pw@c:4318\n",
            "telemetry.otlp_endpoint",
            "no user:password",
        ),
        (
            "  otlp_endpoint: http://c:4318\n  sample_ratio: 1.5\n",
            "telemetry.sample_ratio",
            "between 0.0 and 1.0",
        ),
        (
            "  otlp_endpoint: http://c:4318\n  protocol: grpc\n",
            "telemetry.protocol",
            "not supported",
        ),
        ("  service_name: x\n", "telemetry.otlp_endpoint", "missing"),
    ];
    for (i, (block, field, problem)) in cases.iter().enumerate() {
        let text = format!(
            "listen:\n  http: 127.0.0.1:1\nproviders: []\nrules:\n  - name: all\n    match: {{}}\n    allow: anonymous\ntelemetry:\n{block}"
        );
        let path = dir.write(&format!("c{i}.yaml"), &text);
        let out = std::process::Command::new(BIN)
            .args(["check", "--config"])
            .arg(&path)
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{block}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        // The field's own line, else the block's first line (9).
        let line = text
            .lines()
            .position(|l| {
                l.trim_start()
                    .starts_with(field.rsplit('.').next().unwrap())
            })
            .map_or(9, |n| n + 1);
        let want = format!("{}:{line}: {field}: ", path.display());
        assert!(stderr.contains(&want), "want {want:?} in {stderr:?}");
        assert!(stderr.contains(problem), "want {problem:?} in {stderr:?}");
    }

    // The standard variable stands in for the key, and is checked like it.
    let text = "listen:\n  http: 127.0.0.1:1\nproviders: []\nrules:\n  - name: all\n    match: {}\n    allow: anonymous\n";
    let path = dir.write("env.yaml", text);
    let out = std::process::Command::new(BIN)
        .args(["check", "--config"])
        .arg(&path)
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("OTEL_EXPORTER_OTLP_ENDPOINT: "), "{stderr}");
}
