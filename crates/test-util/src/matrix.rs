//! The forward-auth matrix every reverse proxy is run through (NGINX `auth_request`,
//! Traefik `forwardAuth`, Caddy `forward_auth`): one Portcullis with one provider and
//! a fixed rule set, a header-echoing upstream, and a list of requests with the answer
//! each must get *through the proxy*, and what the upstream must (not) see.
//!
//! A test starts a [`MatrixEnv`], renders its proxy's example config with
//! [`MatrixEnv::substitute`], starts the proxy, describes it as a [`ProxyUnderTest`]
//! and runs [`Matrix::standard`] (and [`Matrix::claims_query`] for a location whose
//! verify URL carries `claims_group=developers&claims_group=admins`). Every mismatch is
//! collected; [`Matrix::finish`] prints the results and panics with all of them and the
//! logs of Portcullis and the proxy.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use portcullis_jose::Algorithm;
use serde_json::{Value, json};

use crate::{EchoUpstream, Issuer, JwksServer, Portcullis, Response, TempDir, request};

/// The `iss` of the matrix provider.
pub(crate) const MATRIX_ISSUER: &str = "https://issuer.portcullis.test";
/// The audience the matrix provider accepts.
pub(crate) const MATRIX_AUDIENCE: &str = "orders-api";
/// A host with an anonymous rule: a request only matches it when a client managed to
/// forge the host Portcullis decides on (`X-Forwarded-Host`, `X-Original-URL`).
pub(crate) const ANONYMOUS_HOST: &str = "anonymous.invalid";
/// A host whose every path needs `groups: [admins]` (rule `restricted-host`): a request
/// only escapes it when the host Portcullis decides on differs from the upstream's
/// (`ops.test.`, `OPS.TEST`, an absolute-form target naming it...).
pub(crate) const RESTRICTED_HOST: &str = "ops.test";
/// The identity header (`claims_to_headers: x-user <- sub`).
pub(crate) const USER_HEADER: &str = "x-user";
/// The `sub` of every minted token.
pub(crate) const SUBJECT: &str = "alice";
/// What a client sends as `x-user`, hoping it reaches the upstream.
pub(crate) const SPOOFED_USER: &str = "mallory";

/// The rule names of [`matrix_config`].
const RULES: [&str; 8] = [
    "anonymous-host",
    "restricted-host",
    "public",
    "tenant-a",
    "tenant-b",
    "admin",
    "orders",
    "default",
];

/// The providers and rules of the matrix (YAML, without `listen:`).
pub(crate) fn matrix_config(jwks_url: &str) -> String {
    format!(
        r#"providers:
  - name: matrix
    issuer: {MATRIX_ISSUER}
    audiences: [{MATRIX_AUDIENCE}]
    jwks:
      uri: {jwks_url}
    claims_to_headers:
      - {{header: {USER_HEADER}, claim: sub}}
rules:
  - name: anonymous-host
    match: {{host: {ANONYMOUS_HOST}}}
    allow: anonymous
  - name: restricted-host
    match: {{host: {RESTRICTED_HOST}}}
    claims: {{groups: [admins]}}
  - name: public
    match: {{path: "/public/**"}}
    allow: anonymous
  # Two tenants' rules, so that the matrix has 8 rules and Portcullis finds them
  # by the path's first segment (the rule index): every confusing request of the
  # corpus is then decided through the index.
  - name: tenant-a
    match: {{path: "/tenant-a/**"}}
    allow: anonymous
  - name: tenant-b
    match: {{path: "/tenant-b/**"}}
    claims: {{groups: [admins]}}
  - name: admin
    match: {{path: "/admin/**"}}
    claims: {{groups: [admins]}}
  - name: orders
    match: {{path: "/orders/**"}}
    scopes: ["orders:write"]
  - name: default
    match: {{}}
"#
    )
}

/// [`matrix_config`] served by Portcullis's own proxy listener: `listen.proxy` on
/// `proxy_port` (the text continues the `listen:` block [`Portcullis::config_text`]
/// opens), one upstream `app` at `upstream` (`host:port`), and every rule sending
/// what it allows there.
pub(crate) fn matrix_proxy_config(jwks_url: &str, proxy_port: u16, upstream: &str) -> String {
    let mut out = format!(
        "  proxy: 127.0.0.1:{proxy_port}\nupstreams:\n  - name: app\n    urls: [http://{upstream}]\n"
    );
    for line in matrix_config(jwks_url).lines() {
        out.push_str(line);
        out.push('\n');
        if line.starts_with("    match:") {
            out.push_str("    upstream: app\n");
        }
    }
    out
}

/// Everything but the proxy: issuer, JWKS server, Portcullis, the echo upstream, and a
/// scratch folder for the proxy's config and logs.
#[derive(Debug)]
pub struct MatrixEnv {
    /// Mints the tokens (ES256).
    pub issuer: Issuer,
    /// Serves the issuer's JWKS to Portcullis.
    pub jwks: JwksServer,
    /// Portcullis, with the matrix providers and rules.
    pub portcullis: Portcullis,
    /// The upstream behind the proxy.
    pub upstream: EchoUpstream,
    /// The proxy's scratch folder (config, logs).
    pub dir: TempDir,
}

impl MatrixEnv {
    /// Starts the issuer, JWKS server, Portcullis (`bin`, waits for `/readyz`) and the upstream.
    pub fn start(bin: &str, label: &str) -> MatrixEnv {
        let issuer = Issuer::new(Algorithm::ES256, "matrix-es256", MATRIX_ISSUER);
        let jwks = JwksServer::start(&issuer.jwks(), Some(300));
        let portcullis = Portcullis::start(bin, &matrix_config(&jwks.url()));
        portcullis.wait_ready(Duration::from_secs(20));
        MatrixEnv {
            issuer,
            jwks,
            portcullis,
            upstream: EchoUpstream::start(),
            dir: TempDir::new(label),
        }
    }

    /// As [`MatrixEnv::start`], with Portcullis itself as the proxy: its `listen.proxy`
    /// on the returned port forwards every rule's allowed requests to `upstream`
    /// (`host:port`).
    pub fn start_proxy(bin: &str, label: &str, upstream: &str) -> (MatrixEnv, u16) {
        let issuer = Issuer::new(Algorithm::ES256, "matrix-es256", MATRIX_ISSUER);
        let jwks = JwksServer::start(&issuer.jwks(), Some(300));
        // The proxy port is picked with the others, so that a port taken before
        // Portcullis binds it is picked again (CI saw all three tries fail when only
        // the others were).
        let (portcullis, port) = Portcullis::start_with_port(bin, |port| {
            matrix_proxy_config(&jwks.url(), port, upstream)
        });
        portcullis.wait_ready(Duration::from_secs(20));
        let env = MatrixEnv {
            issuer,
            jwks,
            portcullis,
            upstream: EchoUpstream::start(),
            dir: TempDir::new(label),
        };
        (env, port)
    }

    /// Replaces `__PORTCULLIS__` (Portcullis's forward-auth `host:port`), `__UPSTREAM__`
    /// (the upstream's `host:port`), `__DIR__` (the scratch folder) and each `(placeholder, value)`.
    pub fn substitute(&self, template: &str, extra: &[(&str, String)]) -> String {
        let mut text = template
            .replace(
                "__PORTCULLIS__",
                &format!("127.0.0.1:{}", self.portcullis.http),
            )
            .replace("__UPSTREAM__", &format!("127.0.0.1:{}", self.upstream.port))
            .replace("__DIR__", &self.dir.path().display().to_string());
        for (placeholder, value) in extra {
            text = text.replace(placeholder, value);
        }
        assert!(
            !text.contains("__"),
            "a placeholder was left unsubstituted:\n{text}"
        );
        text
    }

    /// A token for `sub` alice and `aud` orders-api with `claims` added (or overriding).
    pub fn token(&self, claims: Value) -> String {
        let mut c = json!({ "sub": SUBJECT, "aud": MATRIX_AUDIENCE });
        if let (Some(base), Value::Object(extra)) = (c.as_object_mut(), claims) {
            base.extend(extra);
        }
        self.issuer.mint(c)
    }
}

/// The proxy a matrix runs through.
#[derive(Debug)]
pub struct ProxyUnderTest {
    /// Its name in messages (`nginx`, `traefik`...).
    pub name: String,
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
    /// Whether the client gets Portcullis's JSON deny body. If not, the reason is
    /// asserted through `/metrics` only.
    pub passes_deny_body: bool,
    /// How many times the proxy asks `/verify` about one denied request (NGINX asking
    /// again from its error page: 2).
    pub verify_calls_per_deny: u64,
    /// Its log files, shown on failure.
    pub logs: Vec<PathBuf>,
}

impl ProxyUnderTest {
    /// Waits (up to 20 s) until `GET /public/ready` through the proxy reaches the upstream:
    /// the proxy listens, has loaded its routes and reaches Portcullis.
    pub fn wait_routed(&self, env: &MatrixEnv) {
        let port: u16 = self
            .base_url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("base_url ends with :PORT");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "{} never listened on {}\n{}",
                self.name,
                self.base_url,
                logs(env, self)
            );
            std::thread::sleep(Duration::from_millis(25));
        }
        loop {
            let r = request("GET", &format!("{}/public/ready", self.base_url), &[], "");
            if r.status == 200 && echo(&r).is_some() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} never routed /public/ready to the upstream; last answer {} {}\n{}",
                self.name,
                r.status,
                r.body,
                logs(env, self)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// What `WWW-Authenticate` must be on a deny.
#[derive(Clone, Copy, Debug)]
enum Www {
    /// Exactly this, once.
    Exact(&'static str),
    /// `Bearer realm="portcullis", error="invalid_token", error_description="..."`, once.
    InvalidToken,
    /// Anything (the contract does not say).
    Any,
    /// None at all.
    Absent,
}

#[derive(Clone, Debug)]
enum Expect {
    /// 200 from the upstream; it saw `x-user` = `user` (`None`: no `x-user` at all).
    Allow {
        rule: &'static str,
        user: Option<&'static str>,
    },
    /// Denied by the proxy with Portcullis's status, and never reaching the upstream.
    Deny {
        status: u16,
        reason: &'static str,
        rule: &'static str,
        www: Www,
    },
    /// A client forged the header the proxy names the original request in. Denied
    /// either way: 401 `token_missing` when the proxy overwrote the forgery (Portcullis
    /// then decides on the real request), or `request_invalid` (400; 403 behind NGINX)
    /// when Portcullis saw both the proxy's and the client's version and they disagreed.
    Forged,
}

#[derive(Clone, Debug)]
struct Case {
    name: String,
    method: &'static str,
    path: String,
    headers: Vec<(String, String)>,
    expect: Expect,
}

impl Case {
    fn new(name: &str, path: &str, expect: Expect) -> Case {
        Case {
            name: name.to_owned(),
            method: "GET",
            path: path.to_owned(),
            headers: Vec::new(),
            expect,
        }
    }

    fn bearer(mut self, token: &str) -> Case {
        self.headers
            .push(("Authorization".to_owned(), format!("Bearer {token}")));
        self
    }

    fn header(mut self, name: &str, value: &str) -> Case {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    fn method(mut self, method: &'static str) -> Case {
        self.method = method;
        self
    }
}

fn allow(rule: &'static str, user: Option<&'static str>) -> Expect {
    Expect::Allow { rule, user }
}

fn deny(status: u16, reason: &'static str, rule: &'static str, www: Www) -> Expect {
    Expect::Deny {
        status,
        reason,
        rule,
        www,
    }
}

const MISSING: Www = Www::Exact(r#"Bearer realm="portcullis""#);
const INSUFFICIENT_SCOPE: Www = Www::Exact(r#"Bearer error="insufficient_scope""#);

/// Runs cases through one proxy and collects the mismatches.
#[derive(Debug)]
pub struct Matrix<'a> {
    env: &'a MatrixEnv,
    proxy: &'a ProxyUnderTest,
    results: Vec<(String, String, Vec<String>)>,
    started: Instant,
}

impl<'a> Matrix<'a> {
    /// A matrix through `proxy`.
    pub fn new(env: &'a MatrixEnv, proxy: &'a ProxyUnderTest) -> Matrix<'a> {
        Matrix {
            env,
            proxy,
            results: Vec::new(),
            started: Instant::now(),
        }
    }

    /// The issue's matrix: valid token, no token, tampered/expired/wrong-issuer/
    /// wrong-audience/malformed tokens, claims and scopes not satisfied, client-sent
    /// `x-user`, anonymous rule, and forged original-request headers.
    pub fn standard(&mut self) -> &mut Self {
        let env = self.env;
        let now = Issuer::now();
        let valid = env.token(json!({}));
        let sig_start = valid.rfind('.').expect("compact JWS") + 1;
        let mid = sig_start + (valid.len() - sig_start) / 2;
        let mut tampered = valid.clone();
        let flipped = if &valid[mid..=mid] == "A" { "B" } else { "A" };
        tampered.replace_range(mid..=mid, flipped);
        let expired = env.token(json!({ "iat": now - 7200, "exp": now - 3600 }));
        let wrong_issuer = env.token(json!({ "iss": "https://issuer.elsewhere.test" }));
        let wrong_audience = env.token(json!({ "aud": "someone-else" }));
        let devs = env.token(json!({ "groups": ["developers"] }));
        let admins = env.token(json!({ "groups": ["developers", "admins"] }));
        let read = env.token(json!({ "scope": "orders:read" }));
        let write = env.token(json!({ "scope": "orders:read orders:write" }));
        let forged_url = format!("http://{ANONYMOUS_HOST}/public/forged");
        let cases = vec![
            Case::new("valid token", "/api/items", allow("default", Some(SUBJECT))).bearer(&valid),
            Case::new(
                "valid token, client-sent x-user",
                "/api/items?page=2",
                allow("default", Some(SUBJECT)),
            )
            .bearer(&valid)
            .header(USER_HEADER, SPOOFED_USER),
            Case::new(
                "valid token, POST",
                "/api/items",
                allow("default", Some(SUBJECT)),
            )
            .bearer(&valid)
            .method("POST"),
            Case::new(
                "no token",
                "/api/items",
                deny(401, "token_missing", "default", MISSING),
            ),
            Case::new(
                "no token, client-sent x-user",
                "/api/items",
                deny(401, "token_missing", "default", MISSING),
            )
            .header(USER_HEADER, SPOOFED_USER),
            Case::new(
                "tampered signature",
                "/api/items",
                deny(401, "signature_invalid", "default", Www::InvalidToken),
            )
            .bearer(&tampered),
            Case::new(
                "expired",
                "/api/items",
                deny(401, "token_expired", "default", Www::InvalidToken),
            )
            .bearer(&expired),
            Case::new(
                "wrong issuer",
                "/api/items",
                deny(401, "issuer_mismatch", "default", Www::InvalidToken),
            )
            .bearer(&wrong_issuer),
            Case::new(
                "wrong audience",
                "/api/items",
                deny(401, "audience_mismatch", "default", Www::InvalidToken),
            )
            .bearer(&wrong_audience),
            Case::new(
                "malformed",
                "/api/items",
                deny(401, "token_malformed", "default", Www::InvalidToken),
            )
            .bearer("not.a.jwt"),
            Case::new(
                "claim missing (/admin needs groups admins)",
                "/admin/panel",
                deny(403, "claim_mismatch", "admin", Www::Any),
            )
            .bearer(&devs),
            Case::new(
                "claim present",
                "/admin/panel",
                allow("admin", Some(SUBJECT)),
            )
            .bearer(&admins)
            .header(USER_HEADER, SPOOFED_USER),
            Case::new(
                "scope missing (/orders needs orders:write)",
                "/orders/42",
                deny(403, "scope_missing", "orders", INSUFFICIENT_SCOPE),
            )
            .bearer(&read),
            Case::new(
                "scope present",
                "/orders/42",
                allow("orders", Some(SUBJECT)),
            )
            .bearer(&write),
            Case::new(
                "anonymous rule, no token, client-sent x-user",
                "/public/info",
                allow("public", None),
            )
            .header(USER_HEADER, SPOOFED_USER),
            // The original request is the proxy's to tell: a client-sent copy of any of
            // the headers Portcullis reads it from must not decide (here: a path with an
            // anonymous rule, or a host with one).
            Case::new("forged X-Forwarded-Uri", "/api/items", Expect::Forged)
                .header("X-Forwarded-Method", "GET")
                .header("X-Forwarded-Uri", "/public/forged"),
            Case::new("forged X-Forwarded-Host", "/api/items", Expect::Forged)
                .header("X-Forwarded-Host", ANONYMOUS_HOST),
            Case::new("forged X-Original-URI", "/api/items", Expect::Forged)
                .header("X-Original-Method", "GET")
                .header("X-Original-URI", "/public/forged"),
            Case::new("forged X-Original-URL", "/api/items", Expect::Forged)
                .header("X-Original-URL", &forged_url),
        ];
        for case in cases {
            self.run(&case);
        }
        self
    }

    /// nginx-subrequest-auth-jwt style per-location requirements: under `prefix` the proxy
    /// asks `/verify?claims_group=developers&claims_group=admins`.
    pub fn claims_query(&mut self, prefix: &str) -> &mut Self {
        let env = self.env;
        let path = format!("{prefix}/tools");
        let developer = env.token(json!({ "group": "developers" }));
        let admin = env.token(json!({ "group": "admins" }));
        let guest = env.token(json!({ "group": "guests" }));
        let none = env.token(json!({}));
        let cases = vec![
            Case::new(
                "claims_group: developers",
                &path,
                allow("default", Some(SUBJECT)),
            )
            .bearer(&developer)
            .header(USER_HEADER, SPOOFED_USER),
            Case::new(
                "claims_group: admins",
                &path,
                allow("default", Some(SUBJECT)),
            )
            .bearer(&admin),
            Case::new(
                "claims_group: guests",
                &path,
                deny(403, "claim_mismatch", "default", Www::Any),
            )
            .bearer(&guest),
            Case::new(
                "claims_group: no group claim",
                &path,
                deny(403, "claim_mismatch", "default", Www::Any),
            )
            .bearer(&none),
            Case::new(
                "claims_group: no token",
                &path,
                deny(401, "token_missing", "default", MISSING),
            ),
        ];
        for case in cases {
            self.run(&case);
        }
        self
    }

    fn run(&mut self, case: &Case) {
        let url = format!("{}{}", self.proxy.base_url, case.path);
        let headers: Vec<(&str, &str)> = case
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let before = self.env.portcullis.metrics();
        let r = request(case.method, &url, &headers, "");
        let after = self.env.portcullis.metrics();
        let mut problems = Vec::new();
        let expect = match &case.expect {
            // 400 behind Traefik and Caddy; 403 behind NGINX, which turns a 400 into a 500.
            Expect::Forged if matches!(r.status, 400 | 403) => {
                deny(r.status, "request_invalid", "", Www::Absent)
            }
            Expect::Forged => deny(401, "token_missing", "default", MISSING),
            other => other.clone(),
        };
        match &expect {
            Expect::Allow { rule, user } => {
                self.check_allow(case, &r, rule, *user, &mut problems);
                let n =
                    decisions(&after, "allow", "", rule) - decisions(&before, "allow", "", rule);
                if n != 1.0 {
                    problems.push(format!(
                        "/metrics: {n} allow decisions for rule {rule:?}, want 1"
                    ));
                }
            }
            Expect::Deny {
                status,
                reason,
                rule,
                www,
            } => {
                self.check_deny(&r, *status, reason, *www, &mut problems);
                for allowed in RULES {
                    let n = decisions(&after, "allow", "", allowed)
                        - decisions(&before, "allow", "", allowed);
                    if n > 0.0 {
                        problems.push(format!(
                            "/metrics: Portcullis allowed it by rule {allowed:?} ({n} decisions)"
                        ));
                    }
                }
                let n = decisions(&after, "deny", reason, rule)
                    - decisions(&before, "deny", reason, rule);
                let want = self.proxy.verify_calls_per_deny as f64;
                if n != want {
                    problems.push(format!(
                        "/metrics: {n} deny decisions with reason {reason:?} and rule {rule:?}, want {want}"
                    ));
                }
            }
            Expect::Forged => unreachable!("resolved to a deny above"),
        }
        let want = match &expect {
            Expect::Allow { rule, .. } => format!("200 (rule {rule})"),
            Expect::Deny { status, reason, .. } => format!("{status} {reason}"),
            Expect::Forged => "a deny".to_owned(),
        };
        let line = format!(
            "{} {} with {:?}: want {want}, got {} {}",
            case.method,
            case.path,
            case.headers
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>(),
            r.status,
            one_line(&r.body)
        );
        self.results.push((case.name.clone(), line, problems));
    }

    fn check_allow(
        &self,
        case: &Case,
        r: &Response,
        rule: &str,
        user: Option<&str>,
        problems: &mut Vec<String>,
    ) {
        if r.status != 200 {
            problems.push(format!("status {}, want 200 (rule {rule})", r.status));
            return;
        }
        let Some(seen) = echo(r) else {
            problems.push("the body is not the upstream's echo".to_owned());
            return;
        };
        if seen["path"] != case.path.as_str() {
            problems.push(format!(
                "the upstream saw path {}, want {:?}",
                seen["path"], case.path
            ));
        }
        if seen["method"] != case.method {
            problems.push(format!(
                "the upstream saw method {}, want {}",
                seen["method"], case.method
            ));
        }
        let got = &seen["headers"][USER_HEADER];
        match user {
            Some(u) if got != u => problems.push(format!(
                "the upstream saw {USER_HEADER}: {got}, want exactly {u:?}"
            )),
            None if !got.is_null() => {
                problems.push(format!("the upstream saw {USER_HEADER}: {got}, want none"))
            }
            _ => {}
        }
        if seen["headers"].to_string().contains(SPOOFED_USER) {
            problems.push(format!(
                "the client's {USER_HEADER}: {SPOOFED_USER} reached the upstream: {}",
                seen["headers"]
            ));
        }
        let sent = case
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("authorization"));
        if let Some((_, v)) = sent
            && seen["headers"]["authorization"] != v.as_str()
        {
            problems.push(format!(
                    "the upstream saw authorization {}, want the client's (forward_token defaults to true)",
                    seen["headers"]["authorization"]
                ));
        }
    }

    fn check_deny(
        &self,
        r: &Response,
        status: u16,
        reason: &str,
        www: Www,
        problems: &mut Vec<String>,
    ) {
        if r.status != status {
            problems.push(format!("status {}, want {status} ({reason})", r.status));
        }
        if echo(r).is_some() {
            problems.push("a denied request reached the upstream".to_owned());
        }
        let values: Vec<&str> = r
            .headers
            .iter()
            .filter(|(n, _)| n == "www-authenticate")
            .map(|(_, v)| v.as_str())
            .collect();
        match www {
            Www::Exact(want) if values != [want] => problems.push(format!(
                "WWW-Authenticate {values:?}, want exactly [{want:?}]"
            )),
            Www::InvalidToken
                if values.len() != 1
                    || !values[0]
                        .starts_with(r#"Bearer realm="portcullis", error="invalid_token""#)
                    || !values[0].contains("error_description=\"") =>
            {
                problems.push(format!(
                    "WWW-Authenticate {values:?}, want one `Bearer realm=\"portcullis\", error=\"invalid_token\", error_description=\"...\"`"
                ));
            }
            Www::Absent if !values.is_empty() => {
                problems.push(format!("WWW-Authenticate {values:?}, want none"));
            }
            _ => {}
        }
        if self.proxy.passes_deny_body {
            match serde_json::from_str::<Value>(&r.body) {
                Ok(body) if body["reason"] == reason && body["error"].is_string() => {}
                _ => problems.push(format!(
                    "body {:?}, want JSON with \"reason\":{reason:?} and an \"error\"",
                    r.body
                )),
            }
        }
    }

    /// Prints every result and panics with the mismatches and the logs, if any.
    pub fn finish(&self) {
        let mut report = String::new();
        let mut failures = 0;
        for (name, line, problems) in &self.results {
            let verdict = if problems.is_empty() { "ok  " } else { "FAIL" };
            let _ = writeln!(report, "[{}] {verdict} {name}: {line}", self.proxy.name);
            for p in problems {
                failures += 1;
                let _ = writeln!(report, "         - {p}");
            }
        }
        let _ = writeln!(
            report,
            "[{}] {} cases, {failures} problems, {:.1?}",
            self.proxy.name,
            self.results.len(),
            self.started.elapsed()
        );
        eprint!("{report}");
        assert!(
            failures == 0,
            "{failures} problems through {}:\n{report}\n{}",
            self.proxy.name,
            logs(self.env, self.proxy)
        );
    }
}

/// The upstream's echo, if that is what the body is.
fn echo(r: &Response) -> Option<Value> {
    let v: Value = serde_json::from_str(&r.body).ok()?;
    (v["headers"].is_object() && v["path"].is_string()).then_some(v)
}

fn one_line(body: &str) -> String {
    let flat: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.len() > 160 {
        let mut end = 160;
        while !flat.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &flat[..end])
    } else {
        flat
    }
}

/// `portcullis_decisions_total` summed over the lines with this result, reason and rule.
pub(crate) fn decisions(metrics: &str, result: &str, reason: &str, rule: &str) -> f64 {
    let labels = [
        format!("result=\"{result}\""),
        format!("reason=\"{reason}\""),
        format!("rule=\"{rule}\""),
    ];
    metrics
        .lines()
        .filter(|l| l.starts_with("portcullis_decisions_total{"))
        .filter(|l| labels.iter().all(|label| l.contains(label.as_str())))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Portcullis's log and the proxy's logs (their last 150 lines each).
pub(crate) fn logs(env: &MatrixEnv, proxy: &ProxyUnderTest) -> String {
    let mut out = format!(
        "--- portcullis log ({}) ---\n{}\n",
        env.portcullis.dir.path().join("portcullis.log").display(),
        tail(&env.portcullis.log(), 150)
    );
    for path in &proxy.logs {
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| format!("({e})"));
        let _ = writeln!(out, "--- {} ---\n{}", path.display(), tail(&text, 150));
    }
    out
}

/// A certificate-bound token (RFC 8705 `cnf.x5t#S256`) with a client-sent
/// `X-Forwarded-Client-Cert` naming its thumbprint, through the proxy at `base_url`,
/// which terminates no mTLS: forward-auth proxies pass client headers to `/verify`, so
/// the example must clear this one, or the header meets the binding without the
/// certificate's key. Panics unless the answer is 401 `certificate_mismatch` (when the
/// proxy passes deny bodies) and the upstream saw nothing.
pub fn assert_forged_client_cert_refused(env: &MatrixEnv, proxy: &ProxyUnderTest) {
    let bound = env.token(json!({
        "cnf": {"x5t#S256": portcullis_jose::b64::encode(&[7u8; 32])}
    }));
    let auth = format!("Bearer {bound}");
    let forged = format!("Hash={}", "07".repeat(32));
    let r = crate::get(
        &format!("{}/api/items", proxy.base_url),
        &[
            ("authorization", &auth),
            ("x-forwarded-client-cert", &forged),
        ],
    );
    assert_eq!(r.status, 401, "{}: {}", proxy.name, r.body);
    if proxy.passes_deny_body {
        assert!(
            r.body.contains("certificate_mismatch"),
            "{}: {}",
            proxy.name,
            r.body
        );
    }
}
