//! Issue 16 through the real binary and real peers: `when:` (CEL) conditions,
//! issuer templates with `tenants`, typed claim headers, `allow: optional`.
//!
//! - CEL over claims, the JOSE header and the request, a run-time error, and
//!   compile errors (`portcullis check`): Portcullis's `/verify` alone (the
//!   condition is decided there, whatever the proxy).
//! - Typed headers (arrays and objects in csv, json, first, nested paths), two
//!   tenants accepted and a third refused under one templated provider, tokens
//!   whose `iss` and `tid` disagree, and optional-token routes in all three
//!   cases: through NGINX (`auth_request`, Debian's nginx) and Envoy (gRPC
//!   ext_authz, `examples/envoy/grpc.yaml`), asserting what the echo upstream got.
//!
//! Peers come from `scripts/install-peers` (`$PORTCULLIS_PEERS`, default `<workspace>/.peers`).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

#[path = "envoy_common.rs"]
mod envoy_common;

use std::time::Duration;

use envoy_common::{BIN, Envoy, Failures, tail};
use portcullis_jose::Algorithm;
use portcullis_test_util::{
    Child, EchoUpstream, Issuer, JwksServer, Portcullis, Response, TempDir, free_port, get,
    peer_bin, request, wait_for_port,
};
use serde_json::{Value, json};

const ISSUER: &str = "https://issuer.test";
const AUDIENCE: &str = "orders-api";
const T1: &str = "11111111-2222-3333-4444-555555555555";
const T2: &str = "22222222-2222-3333-4444-555555555555";
const T3: &str = "33333333-2222-3333-4444-555555555555";
/// Every identity header the config sets, as NGINX passes them on.
const IDENTITY: [&str; 7] = [
    "x-user",
    "x-groups",
    "x-groups-json",
    "x-group",
    "x-roles",
    "x-realm",
    "x-tenant",
];

fn config(jwks: &str) -> String {
    format!(
        r#"providers:
  - name: corp
    issuer: {ISSUER}
    audiences: [{AUDIENCE}]
    jwks: {{uri: {jwks}}}
    claims_to_headers:
      - {{header: x-user, claim: sub}}
      - {{header: x-groups, claim: groups}}
      - {{header: x-groups-json, claim: groups, format: json}}
      - {{header: x-group, claim: groups, format: first}}
      - {{header: x-roles, claim: realm_access.roles}}
      - {{header: x-realm, claim: realm_access, format: json}}
  - name: entra
    issuer: "https://login.microsoftonline.com/{{tid}}/v2.0"
    tenants: [{T1}, {T2}]
    audiences: [{AUDIENCE}]
    jwks: {{uri: {jwks}}}
    claims_to_headers:
      - {{header: x-user, claim: sub}}
      - {{header: x-tenant, claim: tid}}
rules:
  - name: landing
    match: {{path: /landing}}
    allow: optional
  - name: cel-claims
    match: {{path: "/cel/claims/**"}}
    providers: [corp]
    when: 'claims.groups.exists(g, g == "finance") && claims.realm_access.roles.size() > 0'
  - name: cel-header
    match: {{path: "/cel/header/**"}}
    providers: [corp]
    when: 'header.kid == "k1" && header.alg == "ES256" && (!has(header.typ) || header.typ == "JWT")'
  - name: cel-request
    match: {{path: "/cel/request/**"}}
    providers: [corp]
    when: 'request.method == "GET" && request.path.startsWith("/cel/request/ok") && request.headers["x-env"] == "prod"'
  - name: cel-error
    match: {{path: "/cel/error/**"}}
    providers: [corp]
    when: 'claims.nothing == 1'
  - name: tenants
    match: {{path: "/tenant/**"}}
    providers: [entra]
  - name: default
    match: {{}}
    providers: [corp]
"#
    )
}

/// Portcullis with [`config`], its keys' server and the issuer of its tokens.
struct Auth {
    portcullis: Portcullis,
    _jwks: JwksServer,
    issuer: Issuer,
}

impl Auth {
    fn start() -> Auth {
        let issuer = Issuer::new(Algorithm::ES256, "k1", ISSUER);
        let jwks = JwksServer::start(&issuer.jwks(), None);
        let portcullis = Portcullis::start(BIN, &config(&jwks.url()));
        portcullis.wait_ready(Duration::from_secs(10));
        Auth {
            portcullis,
            _jwks: jwks,
            issuer,
        }
    }

    fn token(&self, claims: Value) -> String {
        let mut c = json!({"sub": "alice", "aud": AUDIENCE});
        if let (Some(base), Value::Object(extra)) = (c.as_object_mut(), claims) {
            base.extend(extra);
        }
        self.issuer.mint(c)
    }

    fn entra(&self, iss_tid: &str, tid: Option<&str>) -> String {
        let mut c = json!({"iss": format!("https://login.microsoftonline.com/{iss_tid}/v2.0")});
        if let Some(t) = tid {
            c["tid"] = json!(t);
        }
        self.token(c)
    }

    /// `/verify` for `method path`, as Traefik and Caddy ask (X-Forwarded-*).
    fn verify(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        extra: &[(&str, &str)],
    ) -> Response {
        let bearer = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![
            ("x-forwarded-method", method),
            ("x-forwarded-host", "api.test"),
            ("x-forwarded-uri", path),
        ];
        if let Some(b) = &bearer {
            headers.push(("authorization", b));
        }
        headers.extend_from_slice(extra);
        self.portcullis.verify(&headers)
    }
}

fn reason(r: &Response) -> String {
    serde_json::from_str::<Value>(&r.body).map_or_else(
        |_| format!("(no JSON body: {})", r.body),
        |v| v["reason"].as_str().unwrap_or("").to_owned(),
    )
}

fn assert_decision(
    r: &Response,
    status: u16,
    want_reason: Option<&str>,
    what: &str,
    log: &dyn Fn() -> String,
) {
    assert_eq!(r.status, status, "{what}: body {}\n{}", r.body, log());
    if let Some(want) = want_reason {
        assert_eq!(reason(r), want, "{what}");
    }
}

fn finance() -> Value {
    json!({"groups": ["dev", "finance"], "realm_access": {"roles": ["reader"]}})
}

#[test]
fn allows_cel_over_claims() {
    let a = Auth::start();
    let r = a.verify("GET", "/cel/claims/q1", Some(&a.token(finance())), &[]);
    assert_decision(&r, 200, None, "finance member", &|| a.portcullis.log());
    assert_eq!(r.header("x-user"), Some("alice"));
}

#[test]
fn denies_cel_over_claims() {
    let a = Auth::start();
    for (claims, what) in [
        (
            json!({"groups": ["dev"], "realm_access": {"roles": ["reader"]}}),
            "not in finance",
        ),
        (
            json!({"groups": ["finance"], "realm_access": {"roles": []}}),
            "no realm role",
        ),
    ] {
        let r = a.verify("GET", "/cel/claims/q1", Some(&a.token(claims)), &[]);
        assert_decision(&r, 403, Some("condition_failed"), what, &|| {
            a.portcullis.log()
        });
        assert_eq!(r.header("x-user"), None, "{what}");
    }
    // The condition comes after the token: no token is still 401.
    let r = a.verify("GET", "/cel/claims/q1", None, &[]);
    assert_decision(&r, 401, Some("token_missing"), "no token", &|| {
        a.portcullis.log()
    });
    let log = a.portcullis.log();
    assert!(
        log.contains("condition_failed") && log.contains("cel-claims"),
        "the deny is logged with its rule and reason:\n{}",
        tail(&log, 20)
    );
}

#[test]
fn allows_cel_over_the_jose_header() {
    let a = Auth::start();
    let r = a.verify("GET", "/cel/header/x", Some(&a.token(json!({}))), &[]);
    assert_decision(&r, 200, None, "kid k1, no typ", &|| a.portcullis.log());
    let now = Issuer::now();
    let claims = json!({"iss": ISSUER, "sub": "alice", "aud": AUDIENCE, "exp": now + 600});
    let mut h = serde_json::Map::new();
    h.insert("typ".into(), json!("JWT"));
    let t = a
        .issuer
        .key
        .encode(Some("k1"), &h, claims.to_string().as_bytes())
        .unwrap();
    let r = a.verify("GET", "/cel/header/x", Some(&t), &[]);
    assert_decision(&r, 200, None, "kid k1, typ JWT", &|| a.portcullis.log());
}

#[test]
fn denies_cel_over_the_jose_header() {
    let a = Auth::start();
    // The same key and kid; the header's `typ` is what the condition refuses.
    let key = &a.issuer.key;
    let now = Issuer::now();
    let claims = json!({"iss": ISSUER, "sub": "alice", "aud": AUDIENCE, "exp": now + 600});
    let with_typ = |typ: Value| {
        let mut h = serde_json::Map::new();
        h.insert("typ".into(), typ);
        key.encode(Some("k1"), &h, claims.to_string().as_bytes())
            .unwrap()
    };
    for (t, what) in [
        (with_typ(json!("at+jwt")), "typ at+jwt"),
        (with_typ(json!("secevent+jwt")), "typ secevent+jwt"),
    ] {
        let r = a.verify("GET", "/cel/header/x", Some(&t), &[]);
        assert_decision(&r, 403, Some("condition_failed"), what, &|| {
            a.portcullis.log()
        });
    }
}

#[test]
fn allows_cel_over_the_request() {
    let a = Auth::start();
    let t = a.token(json!({}));
    for path in [
        "/cel/request/ok",
        "/cel/request/ok/deeper?q=1",
        "/cel/request/x/../ok",
    ] {
        let r = a.verify("GET", path, Some(&t), &[("x-env", "prod")]);
        assert_decision(&r, 200, None, path, &|| a.portcullis.log());
    }
}

#[test]
fn denies_cel_over_the_request() {
    let a = Auth::start();
    let t = a.token(json!({}));
    for (method, path, env, what) in [
        ("POST", "/cel/request/ok", Some("prod"), "POST"),
        ("GET", "/cel/request/other", Some("prod"), "another path"),
        ("GET", "/cel/request/ok", Some("dev"), "x-env dev"),
        (
            "GET",
            "/cel/request/ok",
            None,
            "no x-env (a run-time error)",
        ),
    ] {
        let extra: Vec<(&str, &str)> = env.map(|e| ("x-env", e)).into_iter().collect();
        let r = a.verify(method, path, Some(&t), &extra);
        assert_decision(&r, 403, Some("condition_failed"), what, &|| {
            a.portcullis.log()
        });
    }
}

#[test]
fn denies_cel_that_fails_at_run_time() {
    let a = Auth::start();
    let r = a.verify("GET", "/cel/error/x", Some(&a.token(finance())), &[]);
    assert_decision(&r, 403, Some("condition_failed"), "claims.nothing", &|| {
        a.portcullis.log()
    });
}

#[test]
fn check_reports_cel_compile_errors_with_positions() {
    let dir = TempDir::new("cel-check");
    for (when, want) in [
        (
            "claims.sub ==",
            "rules[0].when: at 1:14 of the expression: Syntax error",
        ),
        (
            "claims.sub == \"a\" && body.x",
            "rules[0].when: at 1:22 of the expression: \"body\" is not a variable",
        ),
    ] {
        let text = format!(
            "providers:\n  - name: a\n    issuer: {ISSUER}\n    jwks: {{uri: https://issuer.test/jwks}}\nrules:\n  - name: r\n    match: {{}}\n    when: '{when}'\n"
        );
        let path = dir.write("bad.yaml", &text);
        let out = std::process::Command::new(BIN)
            .args(["check", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{when}: {stderr}");
        assert!(
            stderr.contains(&format!("bad.yaml:8: {want}")),
            "{when}: {stderr}"
        );
    }
}

// === through NGINX and Envoy ===

/// One request through a proxy and what must come of it.
struct Case {
    name: &'static str,
    path: &'static str,
    token: Option<String>,
    /// 200 with these identity headers at the upstream (absent: removed), or a deny.
    want: Want,
}

enum Want {
    Allow(Vec<(&'static str, Option<String>)>),
    Deny(u16, &'static str),
}

fn cases(a: &Auth) -> Vec<Case> {
    let typed = a.token(json!({
        "groups": ["admins", "dev ops"],
        "realm_access": {"roles": ["a,b", "c"], "n": 1},
    }));
    let quoted =
        a.token(json!({"groups": ["say \"hi\"", "x"], "realm_access": {"roles": ["r1", "r2"]}}));
    let injected = a.token(json!({"sub": "alice\r\nx-admin: 1", "groups": ["ok"]}));
    let mut expired = json!({});
    expired["exp"] = json!(Issuer::now() - 3600);
    let absent = |names: &[&'static str]| -> Vec<(&'static str, Option<String>)> {
        names.iter().map(|n| (*n, None)).collect()
    };
    let s = |v: &str| Some(v.to_owned());
    vec![
        Case {
            name: "typed headers: arrays and objects in each format",
            path: "/api/typed",
            token: Some(typed),
            want: Want::Allow(vec![
                ("x-user", s("alice")),
                ("x-groups", s("admins,dev ops")),
                ("x-groups-json", s(r#"["admins","dev ops"]"#)),
                ("x-group", s("admins")),
                // csv with a comma in an element: JSON instead.
                ("x-roles", s(r#"["a,b","c"]"#)),
                ("x-realm", s(r#"{"n":1,"roles":["a,b","c"]}"#)),
                ("x-tenant", None),
            ]),
        },
        Case {
            name: "typed headers: a double quote turns csv into JSON",
            path: "/api/quoted",
            token: Some(quoted),
            want: Want::Allow(vec![
                ("x-groups", s(r#"["say \"hi\"","x"]"#)),
                ("x-group", s("say \"hi\"")),
                ("x-roles", s("r1,r2")),
            ]),
        },
        Case {
            name: "typed headers: CR/LF in a claim is refused, not mangled",
            path: "/api/injected",
            token: Some(injected),
            want: Want::Allow(vec![
                ("x-user", None),
                ("x-admin", None),
                ("x-groups", s("ok")),
            ]),
        },
        Case {
            name: "tenant 1 accepted",
            path: "/tenant/a",
            token: Some(a.entra(T1, Some(T1))),
            want: Want::Allow(vec![("x-tenant", s(T1)), ("x-user", s("alice"))]),
        },
        Case {
            name: "tenant 2 accepted",
            path: "/tenant/a",
            token: Some(a.entra(T2, Some(T2))),
            want: Want::Allow(vec![("x-tenant", s(T2))]),
        },
        Case {
            name: "tenant 3 refused",
            path: "/tenant/a",
            token: Some(a.entra(T3, Some(T3))),
            want: Want::Deny(401, "issuer_mismatch"),
        },
        Case {
            name: "iss names tenant 1, tid tenant 2",
            path: "/tenant/a",
            token: Some(a.entra(T1, Some(T2))),
            want: Want::Deny(401, "issuer_mismatch"),
        },
        Case {
            name: "iss names a tenant, no tid",
            path: "/tenant/a",
            token: Some(a.entra(T1, None)),
            want: Want::Deny(401, "issuer_mismatch"),
        },
        Case {
            name: "optional, no token: anonymous, identity headers removed",
            path: "/landing",
            token: None,
            want: Want::Allow(absent(&IDENTITY)),
        },
        Case {
            name: "optional, valid token: identity headers set",
            path: "/landing",
            token: Some(a.token(json!({"groups": ["dev"]}))),
            want: Want::Allow(vec![("x-user", s("alice")), ("x-groups", s("dev"))]),
        },
        Case {
            name: "optional, expired token: 401",
            path: "/landing",
            token: Some(a.token(expired)),
            want: Want::Deny(401, "token_expired"),
        },
        Case {
            name: "optional, garbage token: 401",
            path: "/landing",
            token: Some("not.a.token".to_owned()),
            want: Want::Deny(401, "token_malformed"),
        },
    ]
}

/// Sends every case through `base` (with client-sent copies of every identity
/// header, which must never pass), checking status, reason (when the proxy passes
/// the deny body) and what the upstream got.
fn run(a: &Auth, base: &str, passes_body: bool, f: &mut Failures) {
    for case in cases(a) {
        let bearer = case.token.as_ref().map(|t| format!("Bearer {t}"));
        let mut headers: Vec<(&str, &str)> = IDENTITY.iter().map(|h| (*h, "spoofed")).collect();
        if let Some(b) = &bearer {
            headers.push(("authorization", b));
        }
        let r = request("GET", &format!("{base}{}", case.path), &headers, "");
        match &case.want {
            Want::Allow(expect) => {
                let echo = f.allowed(case.name, &r, &[]);
                let seen = &echo["headers"];
                for (name, want) in expect {
                    let got = &seen[*name];
                    match want {
                        Some(v) => f.check(got == &Value::from(v.as_str()), || {
                            format!("{}: upstream saw {name} = {got}, expected {v:?}", case.name)
                        }),
                        None => f.check(got.is_null(), || {
                            format!("{}: upstream saw {name} = {got}, expected none", case.name)
                        }),
                    }
                }
                for name in IDENTITY {
                    f.check(seen[name] != "spoofed", || {
                        format!("{}: the client's {name} reached the upstream", case.name)
                    });
                }
            }
            Want::Deny(status, want_reason) => {
                f.check(r.status == *status, || {
                    format!(
                        "{}: expected {status}, got {} {}",
                        case.name, r.status, r.body
                    )
                });
                f.check(!r.body.contains("\"headers\""), || {
                    format!("{}: the upstream was reached", case.name)
                });
                if passes_body {
                    f.check(reason(&r) == *want_reason, || {
                        format!(
                            "{}: expected reason {want_reason}, got {}",
                            case.name, r.body
                        )
                    });
                }
            }
        }
    }
}

/// NGINX `auth_request`: each identity header copied with `auth_request_set`;
/// an empty variable sends no header, so client-sent copies are dropped too.
fn nginx_conf(dir: &TempDir, listen: u16, portcullis: u16, upstream: u16) -> String {
    let mut set = String::new();
    let mut pass = String::new();
    for h in IDENTITY {
        let var = h.replace('-', "_");
        set.push_str(&format!(
            "        auth_request_set ${var} $upstream_http_{var};\n"
        ));
        pass.push_str(&format!("            proxy_set_header {h} ${var};\n"));
    }
    format!(
        r#"daemon off;
worker_processes 1;
pid nginx.pid;
error_log error.log notice;
events {{ worker_connections 64; }}
http {{
    access_log access.log;
    client_body_temp_path client_body_temp;
    proxy_temp_path proxy_temp;
    fastcgi_temp_path fastcgi_temp;
    uwsgi_temp_path uwsgi_temp;
    scgi_temp_path scgi_temp;
    server {{
        listen 127.0.0.1:{listen};
        auth_request /_portcullis;
{set}        location / {{
            proxy_pass http://127.0.0.1:{upstream};
{pass}        }}
        location = /_portcullis {{
            internal;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header Host $host;
            proxy_set_header X-Original-Method $request_method;
            proxy_set_header X-Original-URI $request_uri;
            proxy_pass http://127.0.0.1:{portcullis}/verify;
        }}
    }}
}}
"#,
    )
    .replace("__DIR__", &dir.path().display().to_string())
}

#[test]
fn typed_headers_tenants_and_optional_tokens_through_nginx() {
    let a = Auth::start();
    let upstream = EchoUpstream::start();
    let dir = TempDir::new("nginx-issue16");
    let port = free_port();
    let conf = dir.write(
        "nginx.conf",
        &nginx_conf(&dir, port, a.portcullis.http, upstream.port),
    );
    let _nginx = Child::spawn(
        std::process::Command::new(peer_bin("nginx"))
            .arg("-p")
            .arg(format!("{}/", dir.path().display()))
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(dir.path().join("error.log")),
        &dir.path().join("nginx.stdout.log"),
    );
    wait_for_port(port, Duration::from_secs(10));
    let mut f = Failures::default();
    run(&a, &format!("http://127.0.0.1:{port}"), false, &mut f);
    let nginx_log = std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default();
    f.assert_none(
        "through nginx",
        &format!(
            "--- portcullis:\n{}\n--- nginx:\n{}",
            tail(&a.portcullis.log(), 30),
            tail(&nginx_log, 20)
        ),
    );
}

#[test]
fn typed_headers_tenants_and_optional_tokens_through_envoy() {
    let a = Auth::start();
    let upstream = EchoUpstream::start();
    let envoy = Envoy::start(
        "grpc.yaml",
        &[
            ("__PORTCULLIS_GRPC_PORT__", a.portcullis.grpc),
            ("__UPSTREAM_PORT__", upstream.port),
        ],
    );
    // Envoy is LIVE; the first request may race its cluster warm-up.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while get(&envoy.url("/landing"), &[]).status != 200 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut f = Failures::default();
    run(
        &a,
        &format!("http://127.0.0.1:{}", envoy.port),
        true,
        &mut f,
    );
    f.assert_none(
        "through envoy",
        &format!(
            "--- portcullis:\n{}\n--- envoy:\n{}",
            tail(&a.portcullis.log(), 30),
            tail(&envoy.log(), 20)
        ),
    );
}
