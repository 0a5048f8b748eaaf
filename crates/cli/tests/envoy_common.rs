//! Shared by `envoy_grpc.rs`, `envoy_http.rs` and `ext_authz_grpcio.rs` (included with
//! `#[path]`): the stack `client -> Envoy -> (Portcullis) -> echo upstream`, built from
//! the files in `examples/envoy/` so the examples stay true, and the request matrix
//! both ext_authz modes must pass.
//!
//! Alone (as its own test target) it has nothing to run.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    dead_code,
    reason = "tests; each including test file uses part of the helpers"
)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use portcullis_jose::Algorithm;
use portcullis_test_util::{
    Child, EchoUpstream, Issuer, JwksServer, Portcullis, Response, TempDir, free_port, get,
    peer_bin, request, wait_for_port,
};
use serde_json::{Value, json};

/// The binary under test.
pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_portcullis");
/// The audience `examples/envoy/portcullis.yaml` requires.
pub(crate) const AUDIENCE: &str = "orders-api";
/// The test issuer (replaces the example's `https://login.example.com`).
pub(crate) const ISSUER: &str = "https://issuer.test";

/// `<workspace>/examples`.
pub(crate) fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

/// `examples/envoy/portcullis.yaml` without its `listen:` block (the fixture picks the
/// ports), with the test issuer and the JWKS server's URL in place of the example's.
pub(crate) fn example_portcullis_config(jwks_uri: &str) -> String {
    let path = examples_dir().join("envoy/portcullis.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let out = portcullis_test_util::without_listen(&text);
    let replace_once = |text: &str, from: &str, to: &str| {
        assert_eq!(
            text.matches(from).count(),
            1,
            "{}: expected `{from}` once",
            path.display()
        );
        text.replace(from, to)
    };
    let out = replace_once(
        &out,
        "issuer: https://login.example.com\n",
        &format!("issuer: {ISSUER}\n"),
    );
    replace_once(
        &out,
        "uri: https://login.example.com/.well-known/jwks.json",
        &format!("uri: {jwks_uri}"),
    )
}

/// A running Envoy (killed on drop) started from an example config.
#[derive(Debug)]
pub(crate) struct Envoy {
    /// The process.
    pub(crate) child: Child,
    /// The listener clients talk to.
    pub(crate) port: u16,
    /// The admin port.
    pub(crate) admin: u16,
    /// Holds the rendered config and the log.
    pub(crate) dir: TempDir,
}

impl Envoy {
    /// Renders `examples/envoy/<example>` with `ports` (`("__UPSTREAM_PORT__", 1234)`...,
    /// listener and admin ports are chosen here) and runs it: 127.0.0.1 only, one worker,
    /// a `--base-id` of its own (the admin port: unique while it runs).
    pub(crate) fn start(example: &str, ports: &[(&str, u16)]) -> Envoy {
        Envoy::start_edited(example, ports, &|text| text)
    }

    /// As [`Envoy::start`], with the example's text passed through `edit` first (to
    /// show what a setting is for by changing it).
    pub(crate) fn start_edited(
        example: &str,
        ports: &[(&str, u16)],
        edit: &dyn Fn(String) -> String,
    ) -> Envoy {
        let (port, admin) = (free_port(), free_port());
        let mut text =
            edit(std::fs::read_to_string(examples_dir().join("envoy").join(example)).unwrap());
        let all = [("__LISTEN_PORT__", port), ("__ADMIN_PORT__", admin)];
        for (name, value) in all.iter().chain(ports) {
            assert!(text.contains(name), "{example} has no {name}");
            text = text.replace(name, &value.to_string());
        }
        assert!(
            !text.contains("_PORT__"),
            "{example}: a placeholder is left:\n{text}"
        );
        let dir = TempDir::new("envoy");
        let config = dir.write("envoy.yaml", &text);
        let log = dir.path().join("envoy.log");
        let child = Child::spawn(
            std::process::Command::new(peer_bin("envoy"))
                .arg("--config-path")
                .arg(&config)
                .args(["--concurrency", "1", "--base-id", &admin.to_string()])
                .args(["--log-level", "warn", "--disable-hot-restart"])
                // Access log lines (dynamic metadata checks) are flushed every 10s by default.
                .args(["--file-flush-interval-msec", "50"]),
            &log,
        );
        let envoy = Envoy {
            child,
            port,
            admin,
            dir,
        };
        envoy.wait_live(Duration::from_secs(20));
        envoy
    }

    /// Waits for `/ready` (LIVE) and the listener; panics with Envoy's log if it does not
    /// come up (a config Envoy refuses makes it exit at once).
    fn wait_live(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut last = String::new();
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", self.admin)).is_ok() {
                let r = get(&format!("http://127.0.0.1:{}/ready", self.admin), &[]);
                if r.status == 200 {
                    break;
                }
                last = format!("{} {}", r.status, r.body);
            }
            assert!(
                Instant::now() < deadline,
                "envoy not LIVE ({last}); log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        wait_for_port(self.port, timeout);
    }

    /// `http://127.0.0.1:PORT<path>`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// What Envoy logged (warnings, errors, access log lines).
    pub(crate) fn log(&self) -> String {
        self.child.log()
    }

    /// One counter from `/stats` (0 when absent).
    pub(crate) fn counter(&self, name: &str) -> u64 {
        let r = get(
            &format!("http://127.0.0.1:{}/stats?filter=^{name}$", self.admin),
            &[],
        );
        r.body
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }
}

/// Which ext_authz mode.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub(crate) enum Mode {
    /// `examples/envoy/grpc.yaml`.
    Grpc,
    /// `examples/envoy/http.yaml`.
    Http,
}

/// Envoy, Portcullis (with the example config), the echo upstream and a JWKS server.
#[derive(Debug)]
pub(crate) struct Stack {
    /// Field order is drop order: Envoy first.
    pub(crate) envoy: Envoy,
    /// The auth server.
    pub(crate) portcullis: Portcullis,
    /// The protected upstream.
    pub(crate) upstream: EchoUpstream,
    /// Serves the issuer's keys.
    pub(crate) jwks: JwksServer,
    /// Mints the tokens.
    pub(crate) issuer: Issuer,
    /// Portcullis' config (providers and rules), to restart it.
    pub(crate) config: String,
    /// The mode.
    pub(crate) mode: Mode,
}

impl Stack {
    /// Starts everything for `mode`.
    pub(crate) fn start(mode: Mode) -> Stack {
        Stack::start_edited(mode, &|text| text)
    }

    /// As [`Stack::start`], with the Envoy example edited by `edit`.
    pub(crate) fn start_edited(mode: Mode, edit: &dyn Fn(String) -> String) -> Stack {
        let issuer = Issuer::new(Algorithm::ES256, "k1", ISSUER);
        let jwks = JwksServer::start(&issuer.jwks(), None);
        let config = example_portcullis_config(&jwks.url());
        let portcullis = Portcullis::start(BIN, &config);
        portcullis.wait_ready(Duration::from_secs(10));
        let upstream = EchoUpstream::start();
        let envoy = match mode {
            Mode::Grpc => Envoy::start_edited(
                "grpc.yaml",
                &[
                    ("__PORTCULLIS_GRPC_PORT__", portcullis.grpc),
                    ("__UPSTREAM_PORT__", upstream.port),
                ],
                edit,
            ),
            Mode::Http => Envoy::start_edited(
                "http.yaml",
                &[
                    ("__PORTCULLIS_HTTP_PORT__", portcullis.http),
                    ("__UPSTREAM_PORT__", upstream.port),
                ],
                edit,
            ),
        };
        Stack {
            envoy,
            portcullis,
            upstream,
            jwks,
            issuer,
            config,
            mode,
        }
    }

    /// A valid token for `sub` with extra claims (`aud` is the example's audience).
    pub(crate) fn token(&self, sub: &str, extra: Value) -> String {
        let mut claims = json!({"sub": sub, "aud": AUDIENCE});
        if let (Some(c), Value::Object(extra)) = (claims.as_object_mut(), extra) {
            c.extend(extra);
        }
        self.issuer.mint(claims)
    }

    /// Sends a request through Envoy.
    pub(crate) fn send(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Response {
        request(method, &self.envoy.url(path), headers, "")
    }

    /// Both logs, for failure messages.
    pub(crate) fn logs(&self) -> String {
        format!(
            "--- portcullis log:\n{}\n--- envoy log:\n{}",
            tail(&self.portcullis.log(), 40),
            tail(&self.envoy.log(), 40)
        )
    }
}

/// The last `n` lines.
pub(crate) fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Collects every mismatch so one run reports all of them.
#[derive(Debug, Default)]
pub(crate) struct Failures(pub(crate) Vec<String>);

impl Failures {
    /// Records `what` unless `ok`.
    pub(crate) fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            self.0.push(what());
        }
    }

    /// Panics with every failure (and `context`) if there is any.
    pub(crate) fn assert_none(&self, test: &str, context: &str) {
        assert!(
            self.0.is_empty(),
            "{test}: {} failure(s):\n  - {}\n{context}",
            self.0.len(),
            self.0.join("\n  - ")
        );
    }

    /// An allowed request: 200 from the echo upstream, which saw `expect` (`Some(v)`: exactly
    /// one value `v`; `None`: absent). Returns what the upstream saw.
    pub(crate) fn allowed(
        &mut self,
        case: &str,
        r: &Response,
        expect: &[(&str, Option<&str>)],
    ) -> Value {
        let echo: Value = serde_json::from_str(&r.body).unwrap_or(Value::Null);
        if r.status != 200 || echo.get("headers").is_none() {
            self.0.push(format!(
                "{case}: expected 200 from the upstream, got {} {:?} body {}",
                r.status,
                r.header("www-authenticate"),
                r.body
            ));
            return echo;
        }
        let seen = &echo["headers"];
        for (name, want) in expect {
            let got = &seen[*name];
            match want {
                Some(v) => self.check(got == &Value::from(*v), || {
                    format!("{case}: upstream saw {name} = {got}, expected exactly {v:?}")
                }),
                None => self.check(got.is_null(), || {
                    format!("{case}: upstream saw {name} = {got}, expected it removed")
                }),
            }
        }
        echo
    }

    /// A denied request: `status`, the JSON body's `reason`, the `WWW-Authenticate`
    /// header (present and containing every fragment of `www`; not checked when empty),
    /// and the upstream not reached.
    pub(crate) fn denied(
        &mut self,
        case: &str,
        r: &Response,
        status: u16,
        reason: &str,
        www: &[&str],
    ) {
        self.check(r.status == status, || {
            format!(
                "{case}: expected {status}, got {} body {}",
                r.status, r.body
            )
        });
        let body: Value = serde_json::from_str(&r.body).unwrap_or(Value::Null);
        self.check(body.get("headers").is_none(), || {
            format!("{case}: the upstream was reached: {}", r.body)
        });
        self.check(body["reason"] == reason, || {
            format!(
                "{case}: expected reason {reason:?} in the JSON body, got {:?}",
                r.body
            )
        });
        self.check(body["error"].is_string(), || {
            format!("{case}: no \"error\" in the JSON body {:?}", r.body)
        });
        for fragment in www {
            let got = r.header("www-authenticate");
            self.check(got.is_some_and(|v| v.contains(fragment)), || {
                format!("{case}: WWW-Authenticate {got:?} does not contain {fragment:?}")
            });
        }
    }
}

/// The realm-only challenge for a missing token.
pub(crate) const CHALLENGE: &str = r#"Bearer realm="portcullis""#;

/// The matrix both modes share: valid, missing, invalid, claims, scopes, anonymous,
/// spoofed identity headers, cookie tokens, query strings.
pub(crate) fn run_matrix(s: &Stack, f: &mut Failures) {
    let alice = s.token("alice", json!({}));
    let bearer = format!("Bearer {alice}");
    let auth = |t: &str| format!("Bearer {t}");

    // Valid: the upstream sees the identity and (forward_token) the token.
    let r = s.send("GET", "/api/items?page=2", &[("authorization", &bearer)]);
    let echo = f.allowed(
        "valid token",
        &r,
        &[
            ("x-user", Some("alice")),
            ("authorization", Some(&bearer)),
            ("x-rule", None),
        ],
    );
    f.check(
        echo.is_null() || echo["path"] == "/api/items?page=2",
        || format!("valid token: upstream path {}", echo["path"]),
    );

    // Spoofed identity headers: overwritten (set) or removed (not set).
    let r = s.send(
        "GET",
        "/api/items",
        &[
            ("authorization", &bearer),
            ("x-user", "mallory"),
            ("x-rule", "reports"),
        ],
    );
    f.allowed(
        "valid token + spoofed x-user/x-rule",
        &r,
        &[("x-user", Some("alice")), ("x-rule", None)],
    );

    // Missing token.
    let r = s.send("GET", "/api/items", &[("x-user", "mallory")]);
    f.denied("missing token", &r, 401, "token_missing", &[CHALLENGE]);
    f.check(r.header("www-authenticate") == Some(CHALLENGE), || {
        format!(
            "missing token: WWW-Authenticate {:?}, expected {CHALLENGE:?}",
            r.header("www-authenticate")
        )
    });
    f.check(r.header("content-type") == Some("application/json"), || {
        format!("missing token: content-type {:?}", r.header("content-type"))
    });

    // Invalid tokens: 401 with the reason and an invalid_token challenge.
    let stranger = Issuer::new(Algorithm::ES256, "k1", ISSUER);
    let forged = stranger.mint(json!({"sub": "alice", "aud": AUDIENCE}));
    let now = Issuer::now();
    let invalid = [
        ("forged signature", forged, "signature_invalid"),
        (
            "expired",
            s.token("alice", json!({"iat": now - 7200, "exp": now - 3600})),
            "token_expired",
        ),
        (
            "wrong audience",
            s.issuer.mint(json!({"sub": "alice", "aud": "other-api"})),
            "audience_mismatch",
        ),
        (
            "wrong issuer",
            s.issuer
                .mint(json!({"sub": "alice", "aud": AUDIENCE, "iss": "https://other.test"})),
            "issuer_mismatch",
        ),
        ("not a JWT", "abc.def".to_owned(), "token_malformed"),
    ];
    for (case, token, reason) in &invalid {
        let r = s.send("GET", "/api/items", &[("authorization", &auth(token))]);
        f.denied(
            case,
            &r,
            401,
            reason,
            &[r#"realm="portcullis""#, r#"error="invalid_token""#],
        );
    }

    // Claims: /admin/** needs groups [admins].
    let dev = s.token("bob", json!({"groups": ["dev"]}));
    let r = s.send("GET", "/admin/users", &[("authorization", &auth(&dev))]);
    f.denied("admin without the group", &r, 403, "claim_mismatch", &[]);
    let admin = s.token("carol", json!({"groups": ["dev", "admins"]}));
    let r = s.send(
        "POST",
        "/admin/users",
        &[("authorization", &auth(&admin)), ("x-user", "mallory")],
    );
    f.allowed("admin with the group", &r, &[("x-user", Some("carol"))]);

    // Scopes: /orders/** needs orders:write.
    let reader = s.token("dave", json!({"scope": "orders:read"}));
    let r = s.send(
        "POST",
        "/orders/42?notify=1",
        &[("authorization", &auth(&reader))],
    );
    f.denied(
        "orders without the scope",
        &r,
        403,
        "scope_missing",
        &[r#"error="insufficient_scope""#],
    );
    let writer = s.token("erin", json!({"scope": "orders:read orders:write"}));
    let r = s.send(
        "POST",
        "/orders/42?notify=1",
        &[("authorization", &auth(&writer))],
    );
    let echo = f.allowed("orders with the scope", &r, &[("x-user", Some("erin"))]);
    f.check(
        echo.is_null() || (echo["path"] == "/orders/42?notify=1" && echo["method"] == "POST"),
        || {
            format!(
                "orders with the scope: upstream got {} {}",
                echo["method"], echo["path"]
            )
        },
    );

    // Anonymous: no token needed, spoofed identity headers still removed.
    let r = s.send(
        "GET",
        "/public/info",
        &[("x-user", "mallory"), ("x-rule", "reports")],
    );
    f.allowed(
        "anonymous + spoofed headers",
        &r,
        &[("x-user", None), ("x-rule", None)],
    );
    let r = s.send(
        "GET",
        "/public/info",
        &[("authorization", &bearer), ("x-user", "mallory")],
    );
    f.allowed(
        "anonymous with a token + spoofed x-user",
        &r,
        &[("x-user", None)],
    );

    // The decision is made on the request Envoy routes, whatever the client claims in the
    // headers other proxies use to describe the original request.
    let forged = [
        ("x-forwarded-uri", "/public/forged"),
        ("x-forwarded-method", "GET"),
        ("x-original-uri", "/public/forged"),
        ("x-original-url", "http://127.0.0.1/public/forged"),
    ];
    let r = s.send("GET", "/api/items", &forged);
    f.denied(
        "forged X-Forwarded-*/X-Original-*",
        &r,
        401,
        "token_missing",
        &[CHALLENGE],
    );

    // Nor the host: `reports` matches host per-route-only.invalid and needs groups
    // [reporting]; a client-sent X-Forwarded-Host must not select it (the default rule
    // allows alice). Envoy sends Portcullis the :authority it routed on.
    let r = s.send(
        "GET",
        "/api/items",
        &[
            ("authorization", &bearer),
            ("x-forwarded-host", "per-route-only.invalid"),
        ],
    );
    f.allowed(
        "forged X-Forwarded-Host",
        &r,
        &[("x-user", Some("alice")), ("x-rule", None)],
    );

    // Dot segments and doubled slashes cannot smuggle a request past a rule: Envoy
    // normalizes the path (normalize_path, merge_slashes) before asking Portcullis.
    for path in [
        "/public/../admin/users",
        "/public/%2e%2e/admin/users",
        "/public/..%2fadmin/users",
        "//admin/users",
        "/public//../admin/users",
    ] {
        let r = s.send("GET", path, &[("authorization", &auth(&dev))]);
        let echo: Value = serde_json::from_str(&r.body).unwrap_or(Value::Null);
        let upstream_path = echo["path"].as_str().unwrap_or("");
        // Allowed only if what the upstream got is outside /admin/.
        f.check(
            r.status != 200 || !upstream_path.trim_start_matches('/').starts_with("admin"),
            || {
                format!(
                    "{path} with a non-admin token: {} and the upstream got {upstream_path:?}",
                    r.status
                )
            },
        );
    }

    // The token in the `session` cookie (HTTP mode: allowed_headers must name `cookie`).
    let cookie = format!("theme=dark; session={alice}");
    let r = s.send(
        "GET",
        "/api/items",
        &[("cookie", &cookie), ("x-user", "mallory")],
    );
    f.allowed(
        "token in the session cookie",
        &r,
        &[("x-user", Some("alice"))],
    );
}
