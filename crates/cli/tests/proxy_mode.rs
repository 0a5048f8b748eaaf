//! Issue 19, proxy mode: `listen.proxy` in front of real upstreams, with real
//! clients. curl over HTTP/1.1, h2c (prior knowledge and `--http2` upgrade
//! offers) and TLS with ALPN and client certificates; python `websockets` and
//! `grpcio` through the proxy to python servers; a hyper upstream (test-util's
//! `EchoServer`) that reports what it received, over HTTP/1.1, h2c and TLS with
//! mTLS out. Spoofed forwarding and identity headers are sent as raw bytes.
//!
//! Run: `cargo test -p portcullis-cli --test proxy_mode` (peers from
//! `scripts/install-peers`: curl, openssl, the venv with grpcio and websockets).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is a failure"
)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use portcullis_jose::Algorithm;
use portcullis_test_util::{
    Child, EchoServer, EchoTls, Issuer, Pki, TempDir, free_port, python, wait_for_port,
};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");
const ISS: &str = "https://issuer.test";

/// A running `portcullis serve` whose proxy listener is on `port`.
struct Served {
    child: Child,
    port: u16,
    _dir: TempDir,
}

fn serve(dir: TempDir, config: &str) -> Served {
    let port = free_port();
    let path = dir.write(
        "portcullis.yaml",
        &config.replace("__PROXY__", &port.to_string()),
    );
    let child = Child::spawn(
        Command::new(BIN)
            .arg("serve")
            .arg("--config")
            .arg(&path)
            .arg("--workers")
            .arg("2"),
        &dir.path().join("portcullis.log"),
    );
    wait_for_port(port, Duration::from_secs(20));
    Served {
        child,
        port,
        _dir: dir,
    }
}

/// curl's answer: status, body, the HTTP version it spoke, its exit code.
struct Curl {
    status: u16,
    body: String,
    version: String,
    exit: i32,
}

impl Curl {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

fn curl(args: &[&str]) -> Curl {
    let out = Command::new("curl")
        .args([
            "-sS",
            "-o",
            "-",
            "-w",
            "\n%{http_code} %{http_version}",
            "--max-time",
            "30",
        ])
        .args(args)
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, tail) = text.rsplit_once('\n').unwrap_or(("", &text));
    let mut tail = tail.split_whitespace();
    Curl {
        status: tail.next().and_then(|s| s.parse().ok()).unwrap_or(0),
        version: tail.next().unwrap_or("").to_owned(),
        body: body.to_owned(),
        exit: out.status.code().unwrap_or(-1),
    }
}

/// Sends `raw` bytes and returns the whole answer (the request should say
/// `Connection: close`).
fn send_raw(port: u16, raw: &[u8]) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(raw).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn body_json(answer: &str) -> Value {
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {answer:?}"))
}

fn issuer() -> Issuer {
    Issuer::new(Algorithm::ES256, "k1", ISS)
}

fn token(issuer: &Issuer, sub: &str) -> String {
    issuer.mint(json!({ "sub": sub, "aud": "app" }))
}

/// Providers for the plain proxy: `x-user` from `sub`, the token not forwarded.
fn provider(issuer: &Issuer) -> String {
    format!(
        r#"providers:
  - name: corp
    issuer: {ISS}
    audiences: [app]
    jwks: {{inline: {jwks}}}
    forward_token: false
    claims_to_headers:
      - {{header: x-user, claim: sub}}
      - {{header: x-forwarded-user, claim: sub}}
"#,
        jwks = issuer.jwks()
    )
}

/// The python upstreams: a gRPC server (generic handler `/echo.Echo/Say`: answers
/// the request bytes and the metadata it got, sets a trailer) and a WebSocket echo
/// server (first message: the headers it got).
const PY_UPSTREAMS: &str = r#"
import asyncio, json, sys, threading
from concurrent import futures
import grpc
from websockets.asyncio.server import serve

grpc_port, ws_port = int(sys.argv[1]), int(sys.argv[2])

def say(request, context):
    md = {k: v for k, v in context.invocation_metadata()}
    context.set_trailing_metadata([("x-echo-trailer", "done")])
    return json.dumps({"got": request.decode(), "metadata": md}).encode()

server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(
    "echo.Echo", {"Say": grpc.unary_unary_rpc_method_handler(say)})])
server.add_insecure_port(f"127.0.0.1:{grpc_port}")
server.start()

async def ws_handler(ws):
    h = ws.request.headers
    await ws.send(json.dumps({k: h.get(k) for k in ["x-user", "authorization", "x-forwarded-for", "upgrade"]}))
    async for m in ws:
        await ws.send("echo:" + m)

async def main():
    async with serve(ws_handler, "127.0.0.1", ws_port):
        print("ready", flush=True)
        await asyncio.Future()

asyncio.run(main())
"#;

const PY_GRPC_CLIENT: &str = r#"
import json, sys
import grpc
port, token = sys.argv[1], sys.argv[2]
ch = grpc.insecure_channel(f"127.0.0.1:{port}")
say = ch.unary_unary("/echo.Echo/Say")
md = [("x-user", "spoofed")]
if token:
    md.append(("authorization", "Bearer " + token))
try:
    resp, call = say.with_call(b"hello", metadata=md, timeout=10)
    print(json.dumps({"ok": json.loads(resp), "trailers": dict(call.trailing_metadata())}))
except grpc.RpcError as e:
    print(json.dumps({"code": e.code().name, "details": e.details()}))
"#;

const PY_WS_CLIENT: &str = r#"
import json, sys
from websockets.sync.client import connect
from websockets.exceptions import InvalidStatus
port, token = sys.argv[1], sys.argv[2]
headers = {"x-user": "spoofed", "x-forwarded-for": "6.6.6.6"}
if token:
    headers["authorization"] = "Bearer " + token
try:
    with connect(f"ws://127.0.0.1:{port}/ws", additional_headers=headers, open_timeout=10) as ws:
        first = json.loads(ws.recv(timeout=10))
        ws.send("ping")
        print(json.dumps({"first": first, "echo": ws.recv(timeout=10)}))
except InvalidStatus as e:
    print(json.dumps({"status": e.response.status_code}))
"#;

fn run_py(dir: &Path, script: &str, name: &str, args: &[&str]) -> Value {
    let path = dir.join(name);
    std::fs::write(&path, script).unwrap();
    let out = Command::new(python())
        .arg(&path)
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim()).unwrap_or_else(|e| {
        panic!(
            "{name}: not JSON ({e}): {text:?}; stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// The plain (cleartext) proxy and its upstreams, shared by the cases below.
struct Plain {
    served: Served,
    echo: EchoServer,
    issuer: Issuer,
}

fn plain(extra_rules: &str, extra_upstreams: &str) -> Plain {
    let issuer = issuer();
    let echo = EchoServer::start(None);
    let closed = free_port();
    let config = format!(
        r#"listen:
  proxy: 127.0.0.1:__PROXY__
trusted_proxies: [127.0.0.2/32]
{providers}upstreams:
  - {{name: echo, urls: ["http://127.0.0.1:{e}"]}}
  - {{name: echo_h2c, urls: ["http://127.0.0.1:{e}/base"], protocol: h2c}}
  - {{name: down, urls: ["http://127.0.0.1:{closed}"], connect_timeout: 1s}}
  - {{name: hasty, urls: ["http://127.0.0.1:{e}"], timeout: 1s}}
  - {{name: stripped, urls: ["http://127.0.0.1:{e}/v2"], strip_prefix: /svc}}
{extra_upstreams}rules:
  - {{name: public, match: {{path: "/public/**"}}, allow: anonymous, upstream: echo}}
  - {{name: h2c, match: {{path: "/h2c/**"}}, allow: anonymous, upstream: echo_h2c}}
  - {{name: nowhere, match: {{path: /nowhere}}, allow: anonymous}}
  - {{name: down, match: {{path: /down}}, allow: anonymous, upstream: down}}
  - {{name: slow, match: {{path: "/slow/**"}}, allow: anonymous, upstream: hasty}}
  - {{name: upload, match: {{path: /upload}}, allow: anonymous, upstream: echo}}
  - {{name: svc, match: {{path: "/svc/**"}}, allow: anonymous, upstream: stripped}}
  - {{name: ops, match: {{host: ops.test, path: "/ops/**"}}, allow: anonymous, upstream: echo}}
{extra_rules}  - {{name: app, match: {{path: "/app/**"}}, upstream: echo}}
"#,
        providers = provider(&issuer),
        e = echo.port,
    );
    let served = serve(TempDir::new("proxy-plain"), &config);
    Plain {
        served,
        echo,
        issuer,
    }
}

#[test]
fn decides_as_verify_and_forwards_identity_over_http1_and_h2c() {
    let p = plain("", "");
    let base = format!("http://127.0.0.1:{}", p.served.port);
    let t = token(&p.issuer, "alice");
    let auth = format!("Authorization: Bearer {t}");

    // No token: the /verify answer (401, WWW-Authenticate, JSON), nothing upstream.
    let before = p.echo.hits();
    let out = Command::new("curl")
        .args(["-sS", "-i", &format!("{base}/app/x")])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    assert!(text.starts_with("http/1.1 401"), "{text}");
    assert!(
        text.contains("www-authenticate: bearer realm=\"portcullis\""),
        "{text}"
    );
    assert!(
        text.contains(r#"{"error":"unauthorized","reason":"token_missing"}"#),
        "{text}"
    );
    // A token signed by another key of the same kid: 401 signature_invalid.
    let forged = token(&issuer(), "alice");
    let bad = curl(&[
        "-i",
        "-H",
        &format!("Authorization: Bearer {forged}"),
        &format!("{base}/app/x"),
    ]);
    assert_eq!(bad.status, 401);
    assert!(
        bad.body.contains(r#"error="invalid_token""#),
        "{}",
        bad.body
    );
    assert!(
        bad.body
            .ends_with(r#"{"error":"invalid_token","reason":"signature_invalid"}"#),
        "{}",
        bad.body
    );
    assert_eq!(
        p.echo.hits(),
        before,
        "a denied request reached the upstream"
    );

    // Allowed over HTTP/1.1: identity set, the client's copy replaced, the token
    // stripped (forward_token: false), the canonical path forwarded.
    let ok = curl(&[
        "-H",
        &auth,
        "-H",
        "x-user: mallory",
        &format!("{base}/app/a/./b//c?q=1"),
    ]);
    assert_eq!(ok.status, 200, "{}", ok.body);
    let got = ok.json();
    assert_eq!(got["headers"]["x-user"], "alice", "{got}");
    assert!(got["headers"].get("authorization").is_none(), "{got}");
    assert_eq!(got["path"], "/app/a/b/c?q=1", "{got}");
    assert_eq!(got["version"], "HTTP/1.1");
    assert_eq!(got["headers"]["x-forwarded-for"], "127.0.0.1");
    assert_eq!(got["headers"]["x-forwarded-proto"], "http");
    assert!(
        got["headers"]["x-request-id"].as_str().unwrap().len() >= 16,
        "{got}"
    );

    // h2c downstream (prior knowledge), HTTP/1.1 upstream.
    let h2 = curl(&[
        "--http2-prior-knowledge",
        "-H",
        &auth,
        "-H",
        "x-request-id: req-42",
        &format!("{base}/app/h2"),
    ]);
    assert_eq!((h2.status, h2.version.as_str()), (200, "2"), "{}", h2.body);
    let got = h2.json();
    assert_eq!(got["headers"]["x-user"], "alice");
    assert_eq!(got["headers"]["x-request-id"], "req-42");
    assert_eq!(
        got["headers"]["host"],
        format!("127.0.0.1:{}", p.served.port)
    );
    assert_eq!(got["version"], "HTTP/1.1");

    // `--http2` on http:// offers an h2c upgrade: served as HTTP/1.1 here, and the
    // offer (Upgrade, HTTP2-Settings) is not passed on.
    let offer = curl(&["--http2", &format!("{base}/public/offer")]);
    assert_eq!(offer.status, 200);
    let got = offer.json();
    for h in ["upgrade", "http2-settings", "connection"] {
        assert!(
            got["headers"].get(h).is_none(),
            "{h} reached the upstream: {got}"
        );
    }

    // h2c upstream (protocol: h2c), under its base path.
    let up = curl(&["--http2-prior-knowledge", &format!("{base}/h2c/x")]);
    assert_eq!(up.status, 200, "{}", up.body);
    assert_eq!(up.json()["version"], "HTTP/2.0");
    assert_eq!(up.json()["path"], "/base/h2c/x");

    // strip_prefix, then the URL's base path.
    let svc = curl(&[&format!("{base}/svc/orders/7?x=1")]);
    assert_eq!(svc.status, 200, "{}", svc.body);
    assert_eq!(svc.json()["path"], "/v2/orders/7?x=1");

    // No rule: 403 no_rule; a rule without upstream: 404 no_upstream.
    let none = curl(&[&format!("{base}/elsewhere")]);
    assert_eq!(
        (none.status, none.json()["reason"].as_str()),
        (403, Some("no_rule"))
    );
    let nowhere = curl(&[&format!("{base}/nowhere")]);
    assert_eq!(
        (nowhere.status, nowhere.json()["reason"].as_str()),
        (404, Some("no_upstream"))
    );
    // An ambiguous path is refused, not forwarded.
    let before = p.echo.hits();
    let enc = send_raw(
        p.served.port,
        b"GET /public/a%2F..%2Fadmin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(enc.starts_with("HTTP/1.1 400"), "{enc}");
    assert_eq!(body_json(&enc)["reason"], "request_invalid");
    assert_eq!(p.echo.hits(), before);
}

#[test]
fn upstream_down_is_502_and_slow_is_504() {
    let p = plain("", "");
    let base = format!("http://127.0.0.1:{}", p.served.port);
    let down = curl(&[&format!("{base}/down")]);
    assert_eq!(down.status, 502, "{}", down.body);
    assert_eq!(
        down.body,
        r#"{"error":"bad_gateway","reason":"upstream_unavailable"}"#
    );
    let started = Instant::now();
    let slow = curl(&[&format!("{base}/slow/x")]);
    assert_eq!(slow.status, 504, "{}", slow.body);
    assert_eq!(slow.json()["reason"], "upstream_timeout");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the timeout is 1s"
    );
    // The same through HTTP/2.
    let down2 = curl(&["--http2-prior-knowledge", &format!("{base}/down")]);
    assert_eq!((down2.status, down2.version.as_str()), (502, "2"));
}

#[test]
fn spoofed_forwarding_and_identity_headers_never_reach_the_upstream() {
    let p = plain("", "");
    let port = p.served.port;
    let t = token(&p.issuer, "alice");
    // Every client-sent forwarding header and identity spelling, as raw bytes.
    let raw = format!(
        "GET /app/s HTTP/1.1\r\nHost: app.test\r\nAuthorization: Bearer {t}\r\n\
         X-Forwarded-For: 1.2.3.4\r\nX-Forwarded-For: 5.6.7.8\r\nx_forwarded_for: 9.9.9.9\r\n\
         X-Forwarded-Host: evil.test\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Prefix: /admin\r\n\
         Forwarded: for=1.2.3.4;host=evil.test;proto=https\r\nX-Real-IP: 1.2.3.4\r\n\
         X-User: admin\r\nx_user: admin\r\nX-Forwarded-User: admin\r\n\
         Connection: close, x-forwarded-for\r\n\r\n"
    );
    let answer = send_raw(port, raw.as_bytes());
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let h = &body_json(&answer)["headers"];
    assert_eq!(h["x-forwarded-for"], "127.0.0.1", "{h}");
    assert_eq!(h["x-forwarded-host"], "app.test", "{h}");
    assert_eq!(h["x-forwarded-proto"], "http", "{h}");
    assert_eq!(h["x-real-ip"], "127.0.0.1", "{h}");
    assert_eq!(
        h["forwarded"], r#"for=127.0.0.1;proto=http;host="app.test""#,
        "{h}"
    );
    assert_eq!(h["x-user"], "alice", "{h}");
    // An identity header named like a forwarding header is the decision's.
    assert_eq!(h["x-forwarded-user"], "alice", "{h}");
    for gone in [
        "x_forwarded_for",
        "x-forwarded-prefix",
        "x_user",
        "authorization",
    ] {
        assert!(h.get(gone).is_none(), "{gone} reached the upstream: {h}");
    }

    // The decision reads the host the request names, never a client's forwarding
    // headers: X-Forwarded-Host and Forwarded do not open a host-restricted rule.
    let before = p.echo.hits();
    let spoof_host = send_raw(
        port,
        b"GET /ops/x HTTP/1.1\r\nHost: app.test\r\nX-Forwarded-Host: ops.test\r\nForwarded: host=ops.test\r\nX-Original-URL: /ops/x\r\nConnection: close\r\n\r\n",
    );
    assert!(spoof_host.starts_with("HTTP/1.1 403"), "{spoof_host}");
    assert_eq!(p.echo.hits(), before);
    let real_host = send_raw(
        port,
        b"GET /ops/x HTTP/1.1\r\nHost: OPS.test.\r\nConnection: close\r\n\r\n",
    );
    assert!(real_host.starts_with("HTTP/1.1 200"), "{real_host}");

    // Anonymous: no identity header at all, whatever the client sends.
    let anon = send_raw(
        port,
        b"GET /public/a HTTP/1.1\r\nHost: app.test\r\nX-User: admin\r\nX_User: admin\r\nx-user: root\r\nConnection: close\r\n\r\n",
    );
    let h = &body_json(&anon)["headers"];
    assert!(
        h.get("x-user").is_none() && h.get("x_user").is_none(),
        "{h}"
    );

    // `Connection` naming an identity header is refused, as /verify refuses it.
    let before = p.echo.hits();
    let named = send_raw(
        port,
        format!(
            "GET /app/c HTTP/1.1\r\nHost: app.test\r\nAuthorization: Bearer {t}\r\nConnection: x-user\r\n\r\n"
        )
        .as_bytes(),
    );
    assert!(named.starts_with("HTTP/1.1 400"), "{named}");
    // Smuggling forms hyper refuses before any decision; and a host that
    // disagrees with an absolute-form target.
    for raw in [
        "GET /public/a HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n",
        "GET http://other.test/public/a HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n",
        "GET /public/a HTTP/1.1\r\nConnection: close\r\n\r\n",
    ] {
        let a = send_raw(port, raw.as_bytes());
        assert!(a.starts_with("HTTP/1.1 400"), "{raw:?} -> {a}");
    }
    assert_eq!(
        p.echo.hits(),
        before,
        "a refused request reached the upstream"
    );
    // Content-Length beside Transfer-Encoding: refused, or re-framed (never both
    // passed on for the upstream to choose from).
    let both = send_raw(
        port,
        b"POST /public/a HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n",
    );
    if !both.starts_with("HTTP/1.1 400") {
        let h = &body_json(&both)["headers"];
        assert!(
            h.get("content-length").is_none() || h.get("transfer-encoding").is_none(),
            "{both}"
        );
    }

    // A trusted proxy (127.0.0.2) keeps its chain, appended to.
    let trusted = curl(&[
        "--interface",
        "127.0.0.2",
        "-H",
        "X-Forwarded-For: 203.0.113.9",
        "-H",
        "X-Forwarded-Proto: https",
        &format!("http://127.0.0.1:{port}/public/t"),
    ]);
    assert_eq!(trusted.status, 200, "{}", trusted.body);
    let h = &trusted.json()["headers"];
    assert_eq!(h["x-forwarded-for"], "203.0.113.9, 127.0.0.2", "{h}");
    assert_eq!(h["x-forwarded-proto"], "https", "{h}");
}

fn vm_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_1_gib_upload_streams_with_flat_memory() {
    let p = plain("", "");
    let pid = p.served.child.pid();
    // Warm up (connection pools, first allocations), then measure.
    assert_eq!(
        curl(&[&format!("http://127.0.0.1:{}/public/w", p.served.port)]).status,
        200
    );
    let baseline = vm_rss_kib(pid);
    let gib: u64 = 1 << 30;
    let mut upload = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "head -c {gib} /dev/zero | curl -sS --max-time 120 -T - http://127.0.0.1:{}/upload",
            p.served.port
        ))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut peak = baseline;
    let mut samples = 0;
    while upload.try_wait().unwrap().is_none() {
        peak = peak.max(vm_rss_kib(pid));
        samples += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut out = String::new();
    upload
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let got: Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out:?}"));
    assert_eq!(got["bytes"], gib, "the upstream got every byte");
    eprintln!("1 GiB upload: RSS baseline {baseline} KiB, peak {peak} KiB, {samples} samples");
    assert!(samples > 5, "too few samples to say anything");
    assert!(
        peak < baseline + 32 * 1024,
        "RSS grew from {baseline} KiB to {peak} KiB: the body was buffered"
    );
}

#[test]
fn a_512_mib_download_streams_with_flat_memory() {
    let p = plain("", "");
    let pid = p.served.child.pid();
    assert_eq!(
        curl(&[&format!("http://127.0.0.1:{}/public/w", p.served.port)]).status,
        200
    );
    let baseline = vm_rss_kib(pid);
    let size: u64 = 512 << 20;
    // curl reads at its own pace; a proxy that buffered would hold the body.
    let mut download = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "120",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{size_download}",
        ])
        .arg(format!(
            "http://127.0.0.1:{}/public/download?{size}",
            p.served.port
        ))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut peak = baseline;
    let mut samples = 0;
    while download.try_wait().unwrap().is_none() {
        peak = peak.max(vm_rss_kib(pid));
        samples += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut out = String::new();
    download
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert_eq!(out.trim(), format!("200 {size}"));
    eprintln!("512 MiB download: RSS baseline {baseline} KiB, peak {peak} KiB, {samples} samples");
    assert!(samples > 5, "too few samples to say anything");
    assert!(
        peak < baseline + 32 * 1024,
        "RSS grew from {baseline} KiB to {peak} KiB: the body was buffered"
    );
}

#[test]
fn websocket_and_grpc_pass_through_after_the_decision() {
    let (g, w) = (free_port(), free_port());
    let dir = TempDir::new("proxy-py");
    let script = dir.write("upstreams.py", PY_UPSTREAMS);
    let upstreams = Child::spawn(
        Command::new(python())
            .arg(&script)
            .arg(g.to_string())
            .arg(w.to_string()),
        &dir.path().join("upstreams.log"),
    );
    wait_for_port(g, Duration::from_secs(20));
    wait_for_port(w, Duration::from_secs(20));
    let p = plain(
        "  - {name: ws, match: {path: /ws}, upstream: ws}\n  - {name: grpc, match: {path: \"/echo.Echo/**\"}, upstream: grpc}\n",
        &format!(
            "  - {{name: ws, urls: [\"http://127.0.0.1:{w}\"]}}\n  - {{name: grpc, urls: [\"http://127.0.0.1:{g}\"]}}\n"
        ),
    );
    let port = p.served.port.to_string();
    let t = token(&p.issuer, "alice");

    // WebSocket: refused without a token (the 401 of the decision), else upgraded,
    // with the identity set and the spoofed copies replaced.
    let denied = run_py(dir.path(), PY_WS_CLIENT, "ws_client.py", &[&port, ""]);
    assert_eq!(denied["status"], 401, "{denied}");
    let ws = run_py(dir.path(), PY_WS_CLIENT, "ws_client.py", &[&port, &t]);
    assert_eq!(ws["echo"], "echo:ping", "{ws}; log: {}", upstreams.log());
    assert_eq!(ws["first"]["x-user"], "alice", "{ws}");
    assert_eq!(ws["first"]["x-forwarded-for"], "127.0.0.1", "{ws}");
    assert_eq!(ws["first"]["authorization"], Value::Null, "{ws}");

    // gRPC (h2c both ways, trailers passed back).
    let denied = run_py(dir.path(), PY_GRPC_CLIENT, "grpc_client.py", &[&port, ""]);
    assert_eq!(denied["code"], "UNAUTHENTICATED", "{denied}");
    let ok = run_py(dir.path(), PY_GRPC_CLIENT, "grpc_client.py", &[&port, &t]);
    assert_eq!(ok["ok"]["got"], "hello", "{ok}");
    assert_eq!(ok["ok"]["metadata"]["x-user"], "alice", "{ok}");
    assert!(ok["ok"]["metadata"].get("authorization").is_none(), "{ok}");
    assert_eq!(ok["trailers"]["x-echo-trailer"], "done", "{ok}");
}

#[test]
fn tls_in_with_client_certificates_and_revocation_and_mtls_out() {
    let dir = TempDir::new("proxy-tls");
    let pki = Pki::new(dir.path(), "test-ca");
    let other = Pki::new(dir.path(), "other-ca");
    let (server_cert, server_key) = pki.issue("proxy", "DNS:localhost,IP:127.0.0.1");
    let (alice, alice_key) = pki.issue("alice", "URI:spiffe://test/alice");
    let (bob, bob_key) = pki.issue("bob", "URI:spiffe://test/bob");
    let (stranger, stranger_key) = other.issue("stranger", "DNS:stranger");
    let (up_cert, up_key) = pki.issue("app", "DNS:app.internal");
    let (out_cert, out_key) = pki.issue("portcullis", "DNS:portcullis");
    let (a_cert, a_key) = pki.issue("a.test", "DNS:a.test");
    // The upstream requires a client certificate from the test CA (mTLS out).
    let echo = EchoServer::start(Some(EchoTls {
        cert: up_cert,
        key: up_key,
        client_ca: Some(pki.ca()),
    }));
    let config = format!(
        r#"listen:
  proxy: 127.0.0.1:__PROXY__
  proxy_tls:
    {{cert: {sc}, key: {sk}, client_ca: {ca}, crl: [{crl}],
      sni: [{{server_name: a.test, cert: {ac}, key: {ak}}}]}}
upstreams:
  - name: app
    urls: ["https://127.0.0.1:{e}"]
    tls: {{ca: {ca}, cert: {oc}, key: {ok}, server_name: app.internal}}
rules:
  - {{name: closed, match: {{path: "/closed/**"}}, allow: deny, upstream: app}}
  - {{name: all, match: {{}}, allow: anonymous, upstream: app}}
"#,
        sc = server_cert.display(),
        sk = server_key.display(),
        ca = pki.ca().display(),
        crl = pki.crl().display(),
        e = echo.port,
        oc = out_cert.display(),
        ok = out_key.display(),
        ac = a_cert.display(),
        ak = a_key.display(),
    );
    let served = serve(TempDir::new("proxy-tls-serve"), &config);
    let url = format!("https://127.0.0.1:{}/hello", served.port);
    let ca = pki.ca();
    let ca = ca.to_str().unwrap();
    let with = |cert: &Path, key: &Path, http2: bool| {
        let mut args = vec![
            "--cacert",
            ca,
            "--cert",
            cert.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
        ];
        args.push(if http2 { "--http2" } else { "--http1.1" });
        args.push(&url);
        curl(&args.iter().map(|s| &**s).collect::<Vec<_>>())
    };

    // HTTP/2 by ALPN with a client certificate; the upstream saw ours (mTLS out).
    let a = with(&alice, &alice_key, true);
    assert_eq!(
        (a.status, a.version.as_str()),
        (200, "2"),
        "{} exit {}",
        a.body,
        a.exit
    );
    let got = a.json();
    assert_eq!(got["tls_client_cert"], true, "{got}");
    assert_eq!(got["headers"]["x-forwarded-proto"], "https", "{got}");
    assert_eq!(got["path"], "/hello");
    let a1 = with(&bob, &bob_key, false);
    assert_eq!(
        (a1.status, a1.version.as_str()),
        (200, "1.1"),
        "{}",
        a1.body
    );

    // SNI picks the certificate: a.test has its own; b.test gets the default one,
    // which is not valid for it.
    let by_name = |name: &str| {
        let resolve = format!("{name}:{}:127.0.0.1", served.port);
        curl(&[
            "--cacert",
            ca,
            "--cert",
            bob.to_str().unwrap(),
            "--key",
            bob_key.to_str().unwrap(),
            "--resolve",
            &resolve,
            &format!("https://{name}:{}/sni", served.port),
        ])
    };
    let a = by_name("a.test");
    assert_eq!(a.status, 200, "{} exit {}", a.body, a.exit);
    assert_eq!(
        a.json()["headers"]["x-forwarded-host"],
        format!("a.test:{}", served.port)
    );
    let b = by_name("b.test");
    assert_eq!(
        (b.status, b.exit),
        (0, 60),
        "b.test was served a certificate valid for it"
    );

    // A deny names the client certificate (subject, SPIFFE ID) in its log line.
    let closed = curl(&[
        "--cacert",
        ca,
        "--cert",
        bob.to_str().unwrap(),
        "--key",
        bob_key.to_str().unwrap(),
        &format!("https://127.0.0.1:{}/closed/x", served.port),
    ]);
    assert_eq!(closed.status, 403, "{}", closed.body);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !served.child.log().contains("CN=bob; uri=spiffe://test/bob") {
        assert!(
            Instant::now() < deadline,
            "no deny line names the client certificate: {}",
            served.child.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // No client certificate, or one from another CA: no handshake, no request.
    let before = echo.hits();
    let none = curl(&["--cacert", ca, &url]);
    assert_ne!(none.exit, 0, "accepted without a client certificate");
    assert_eq!(none.status, 0);
    let s = with(&stranger, &stranger_key, true);
    assert_eq!(s.status, 0, "a certificate of another CA was accepted");
    assert_eq!(echo.hits(), before);

    // Revoke alice: refused once the CRL file changes; bob still gets through.
    pki.revoke(&alice);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = with(&alice, &alice_key, true);
        if r.status == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a revoked certificate is still accepted"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(with(&bob, &bob_key, true).status, 200);
    assert!(
        served.child.log().contains("listen.proxy_tls TLS reloaded"),
        "{}",
        served.child.log()
    );
}

/// Runs one of the demo's printed `curl -i ...` lines (its quoting is single
/// quotes around one header) and returns status and body.
fn run_demo_line(line: &str) -> (u16, String) {
    let mut args: Vec<String> = Vec::new();
    let mut rest = line.strip_prefix("curl ").unwrap();
    while !rest.is_empty() {
        rest = rest.trim_start();
        if let Some(r) = rest.strip_prefix('\'') {
            let (quoted, after) = r.split_once('\'').unwrap();
            args.push(quoted.to_owned());
            rest = after;
        } else {
            let (word, after) = rest.split_once(' ').unwrap_or((rest, ""));
            args.push(word.to_owned());
            rest = after;
        }
    }
    let args: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| *a != "-i")
        .collect();
    let c = curl(&args);
    (c.status, c.body)
}

#[test]
fn the_demo_protects_its_app_through_the_proxy_listener() {
    use std::io::BufRead as _;
    let mut child = Command::new(BIN)
        .args(["demo", "--port", &free_port().to_string()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = Vec::new();
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if line.starts_with("Ctrl-C") {
            break;
        }
        lines.push(line);
    }
    let curls: Vec<&String> = lines.iter().filter(|l| l.starts_with("curl -i")).collect();
    assert_eq!(curls.len(), 5, "{lines:#?}");
    let results: Vec<(u16, String)> = curls.iter().map(|l| run_demo_line(l)).collect();
    let _ = child.kill();
    let _ = child.wait();
    let statuses: Vec<u16> = results.iter().map(|r| r.0).collect();
    assert_eq!(statuses, [401, 200, 200, 403, 200], "{results:#?}");
    // Through the proxy: the app got the identity the decision set.
    let hello: Value = serde_json::from_str(&results[2].1).unwrap();
    assert_eq!(hello["hello"], "alice", "{hello}");
    assert_eq!(hello["path"], "/hello");
    let admin: Value = serde_json::from_str(&results[4].1).unwrap();
    assert_eq!(admin["hello"], "root", "{admin}");
    let denied: Value = serde_json::from_str(&results[3].1).unwrap();
    assert_eq!(denied["reason"], "claim_mismatch");
}

#[test]
fn several_urls_are_used_in_turn() {
    let (a, b) = (EchoServer::start(None), EchoServer::start(None));
    let config = format!(
        r#"listen:
  proxy: 127.0.0.1:__PROXY__
upstreams:
  - {{name: pair, urls: ["http://127.0.0.1:{}", "http://127.0.0.1:{}"]}}
rules:
  - {{name: all, match: {{}}, allow: anonymous, upstream: pair}}
"#,
        a.port, b.port
    );
    let served = serve(TempDir::new("proxy-rr"), &config);
    for i in 0..6 {
        let r = curl(&[&format!("http://127.0.0.1:{}/n/{i}", served.port)]);
        assert_eq!(r.status, 200, "{}", r.body);
    }
    assert_eq!((a.hits(), b.hits()), (3, 3));
}
