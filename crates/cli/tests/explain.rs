//! `portcullis explain` and admin `POST /explain` (no peer: the real binary, once
//! as a server and once per case as the CLI): for every reason code the CLI, the
//! API and the real `/verify` decision agree, the steps name the check that
//! failed, and the token is never logged.
#![expect(clippy::unwrap_used, reason = "tests")]

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use portcullis_jose::{Algorithm, b64};
use portcullis_test_util::{Issuer, Portcullis, request};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");
const HOST: &str = "api.example.com";

fn config(issuer: &Issuer) -> String {
    format!(
        r#"providers:
  - name: corp
    issuer: {iss}
    audiences: [api]
    algorithms: [ES256]
    jwks:
      inline: {jwks}
    claims_to_headers:
      - {{header: x-user, claim: sub}}
rules:
  - name: health
    match: {{path: /healthz}}
    allow: anonymous
  - name: admin
    match: {{path: "/admin/**"}}
    claims: {{groups: [admins]}}
  - name: billing
    match: {{path: "/billing/**"}}
    scopes: [billing]
  - name: trial
    match: {{path: "/trial/**"}}
    mode: dry_run
    claims: {{groups: [admins]}}
  - name: cond
    match: {{path: "/cond/**"}}
    when: 'claims.sub == "bob" && request.method == "GET"'
  - name: workloads
    match: {{path: "/mesh/**"}}
    spiffe_ids: ["spiffe://example.org/ns/*/sa/web"]
  - name: api
    match: {{path: "/api/**", host: {HOST}}}
"#,
        iss = issuer.iss,
        jwks = issuer.jwks()
    )
}

struct Case {
    name: &'static str,
    path: &'static str,
    token: Option<String>,
    /// decision, status, reason, the failed step (None: nothing failed but rules)
    want: (
        &'static str,
        u16,
        Option<&'static str>,
        Option<&'static str>,
    ),
}

fn cases(issuer: &Issuer) -> Vec<Case> {
    let good = json!({"aud": "api", "sub": "alice", "groups": ["dev"], "scope": "read"});
    let with = |edit: &dyn Fn(&mut Value)| {
        let mut c = good.clone();
        edit(&mut c);
        issuer.mint(c)
    };
    let unsigned = |header: Value| {
        let payload = json!({"iss": issuer.iss, "aud": "api", "exp": Issuer::now() + 600});
        format!(
            "{}.{}.{}",
            b64::encode(header.to_string().as_bytes()),
            b64::encode(payload.to_string().as_bytes()),
            b64::encode(&[7u8; 64])
        )
    };
    let now = Issuer::now();
    let case = |name, path, token, want| Case {
        name,
        path,
        token,
        want,
    };
    vec![
        case(
            "allow",
            "/api/x",
            Some(issuer.mint(good.clone())),
            ("allow", 200, None, None),
        ),
        case("anonymous", "/healthz", None, ("allow", 200, None, None)),
        case(
            "dry_run",
            "/trial/x",
            Some(issuer.mint(good.clone())),
            ("allow", 200, None, Some("claim")),
        ),
        case(
            "token_missing",
            "/api/x",
            None,
            ("deny", 401, Some("token_missing"), Some("token")),
        ),
        case(
            "token_malformed",
            "/api/x",
            Some("abc.def".to_owned()),
            ("deny", 401, Some("token_malformed"), Some("format")),
        ),
        case(
            "signature_invalid",
            "/api/x",
            Some(unsigned(json!({"alg": "ES256", "kid": "k1"}))),
            ("deny", 401, Some("signature_invalid"), Some("signature")),
        ),
        case(
            "algorithm_not_allowed",
            "/api/x",
            Some(unsigned(json!({"alg": "RS256", "kid": "k1"}))),
            (
                "deny",
                401,
                Some("algorithm_not_allowed"),
                Some("algorithm"),
            ),
        ),
        case(
            "key_not_found",
            "/api/x",
            Some(unsigned(json!({"alg": "ES256", "kid": "rotated-away"}))),
            ("deny", 401, Some("key_not_found"), Some("key")),
        ),
        case(
            "issuer_mismatch",
            "/api/x",
            Some(with(&|c| c["iss"] = json!("https://evil.test"))),
            ("deny", 401, Some("issuer_mismatch"), Some("issuer")),
        ),
        case(
            "audience_mismatch",
            "/api/x",
            Some(with(&|c| c["aud"] = json!(["web"]))),
            ("deny", 401, Some("audience_mismatch"), Some("audience")),
        ),
        case(
            "token_expired",
            "/api/x",
            Some(with(&|c| c["exp"] = json!(now - 7200))),
            ("deny", 401, Some("token_expired"), Some("exp")),
        ),
        case(
            "token_not_yet_valid",
            "/api/x",
            Some(with(&|c| c["nbf"] = json!(now + 7200))),
            ("deny", 401, Some("token_not_yet_valid"), Some("nbf")),
        ),
        case(
            "claim_mismatch",
            "/admin/x",
            Some(issuer.mint(good.clone())),
            ("deny", 403, Some("claim_mismatch"), Some("claim")),
        ),
        case(
            "scope_missing",
            "/billing/x",
            Some(issuer.mint(good.clone())),
            ("deny", 403, Some("scope_missing"), Some("scopes")),
        ),
        case(
            "no_rule",
            "/elsewhere",
            None,
            ("deny", 403, Some("no_rule"), Some("rule")),
        ),
        case(
            "request_invalid",
            "/api/%2F..",
            None,
            ("deny", 400, Some("request_invalid"), Some("request")),
        ),
        case(
            "condition_failed",
            "/cond/x",
            Some(issuer.mint(good.clone())),
            ("deny", 403, Some("condition_failed"), Some("condition")),
        ),
        case(
            "condition_holds",
            "/cond/x",
            Some(with(&|c| c["sub"] = json!("bob"))),
            ("allow", 200, None, None),
        ),
        case(
            "spiffe_id_mismatch",
            "/mesh/x",
            Some(with(&|c| {
                c["sub"] = json!("spiffe://example.org/ns/prod/sa/db")
            })),
            ("deny", 403, Some("spiffe_id_mismatch"), Some("spiffe_ids")),
        ),
        case(
            "spiffe_id_allowed",
            "/mesh/x",
            Some(with(&|c| {
                c["sub"] = json!("spiffe://example.org/ns/prod/sa/web")
            })),
            ("allow", 200, None, None),
        ),
        // Bound to a client certificate that no request here presents.
        case(
            "certificate_mismatch",
            "/api/x",
            Some(with(&|c| {
                c["cnf"] = json!({"x5t#S256": b64::encode(&[7u8; 32])})
            })),
            (
                "deny",
                401,
                Some("certificate_mismatch"),
                Some("certificate"),
            ),
        ),
        // DPoP-bound, and the provider does not take DPoP.
        case(
            "dpop_invalid",
            "/api/x",
            Some(with(&|c| c["cnf"] = json!({"jkt": "abc"}))),
            ("deny", 401, Some("dpop_invalid"), Some("dpop")),
        ),
    ]
}

fn cli(config: &std::path::Path, args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    let mut child = Command::new(BIN)
        .arg("explain")
        .arg("--config")
        .arg(config)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The explanation without what depends on the second it was asked at (relative
/// times in the `exp`/`nbf`/`iat` steps) or the keys were published at (the CLI
/// publishes its own).
fn timeless(mut v: Value) -> Value {
    for s in v["steps"].as_array_mut().unwrap() {
        if matches!(s["step"].as_str(), Some("exp" | "nbf" | "iat")) {
            s["detail"] = Value::Null;
        }
        // A deny's detail may name the second it was decided at (`(now N)`).
        if s["step"] == "response"
            && let Some(detail) = s["detail"].as_str()
            && let Some((before, after)) = detail.split_once(" (now ")
        {
            let rest = after.split_once(')').map_or("", |(_, r)| r);
            s["detail"] = Value::from(format!("{before}{rest}"));
        }
        // An allow's `Cache-Control: max-age=N` counts down to the token's
        // `exp`; the CLI and the API read the clock a moment apart.
        if s["step"] == "response"
            && let Some(detail) = s["detail"].as_str()
            && let Some((before, after)) = detail.split_once("max-age=")
        {
            let rest = after.trim_start_matches(|c: char| c.is_ascii_digit());
            s["detail"] = Value::from(format!("{before}max-age=N{rest}"));
        }
        if s["step"] == "key" {
            let detail = s["detail"].as_str().unwrap();
            assert!(detail.contains(" (published 20"), "{detail}");
            let cut: String = detail.split(" (published ").next().unwrap().to_owned();
            s["detail"] = Value::from(cut);
        }
    }
    v
}

fn failed_step(v: &Value) -> Option<String> {
    let steps = v["steps"].as_array().unwrap();
    steps[..steps.len() - 1]
        .iter()
        .filter(|s| s["ok"] == false && s["step"] != "rule")
        .chain(
            steps
                .iter()
                .filter(|s| s["ok"] == false && s["step"] == "rule" && v["reason"] == "no_rule"),
        )
        .last()
        .map(|s| s["step"].as_str().unwrap().to_owned())
}

#[test]
fn cli_api_and_verify_agree_for_every_reason_code() {
    let issuer = Issuer::new(Algorithm::ES256, "k1", "https://idp.test");
    let p = Portcullis::start(BIN, &config(&issuer));
    p.wait_ready(Duration::from_secs(20));
    let all = cases(&issuer);
    for c in &all {
        let url = format!("https://{HOST}{}", c.path);
        let mut args = vec![
            "--json",
            "--url",
            url.as_str(),
            "-H",
            "X-Request-Id: explain-test",
        ];
        if let Some(t) = &c.token {
            args.push(t);
        }
        let (code, stdout, stderr) = cli(&p.config, &args, None);
        let from_cli: Value = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {stdout}\n{stderr}", c.name));
        assert_eq!(
            code,
            if c.want.0 == "allow" { 0 } else { 1 },
            "{}: {stderr}",
            c.name
        );

        let body = json!({"method": "GET", "url": url, "headers": {"x-request-id": "explain-test"}, "token": c.token});
        let r = request(
            "POST",
            &format!("http://127.0.0.1:{}/explain", p.admin),
            &[("content-type", "application/json")],
            &body.to_string(),
        );
        assert_eq!(r.status, 200, "{}: {}", c.name, r.body);
        assert_eq!(r.header("content-type"), Some("application/json"));
        let from_api = r.json();
        assert_eq!(
            timeless(from_cli.clone()),
            timeless(from_api.clone()),
            "{}: CLI and API differ",
            c.name
        );

        let (decision, status, reason, failed) = c.want;
        assert_eq!(from_api["decision"], decision, "{}: {from_api:#}", c.name);
        assert_eq!(from_api["status"], status, "{}", c.name);
        assert_eq!(from_api["reason"].as_str(), reason, "{}", c.name);
        assert_eq!(
            failed_step(&from_api).as_deref(),
            failed,
            "{}: {from_api:#}",
            c.name
        );
        assert_eq!(
            from_api["steps"].as_array().unwrap().last().unwrap()["step"],
            "response"
        );

        // The real decision, through the forward-auth frontend, is the explained one.
        let auth = c.token.as_ref().map(|t| format!("Bearer {t}"));
        let mut headers = vec![
            ("x-forwarded-method", "GET"),
            ("x-forwarded-host", HOST),
            ("x-forwarded-uri", c.path),
            ("x-request-id", "explain-test"),
        ];
        if let Some(a) = &auth {
            headers.push(("authorization", a));
        }
        let real = p.verify(&headers);
        assert_eq!(
            real.status, status,
            "{}: /verify said {} {}",
            c.name, real.status, real.body
        );
        if let Some(reason) = reason {
            assert_eq!(real.json()["reason"], reason, "{}", c.name);
        }
    }
    // The condition's step shows the expression and its value.
    let cond = explain_api(&p, "/cond/x", all_token(&all, "condition_failed"));
    assert_eq!(
        step_detail(&cond, "condition"),
        r#"when "claims.sub == \"bob\" && request.method == \"GET\"" is false"#
    );
    let mesh = explain_api(&p, "/mesh/x", all_token(&all, "spiffe_id_mismatch"));
    assert_eq!(
        step_detail(&mesh, "spiffe_ids"),
        r#"wants one of [spiffe://example.org/ns/*/sa/web], token SPIFFE ID "spiffe://example.org/ns/prod/sa/db""#
    );
    // The dry-run rule says what it would have done.
    let dry = cli(
        &p.config,
        &[
            "--json",
            "--url",
            &format!("https://{HOST}/trial/x"),
            all[2].token.as_deref().unwrap(),
        ],
        None,
    );
    let v: Value = serde_json::from_str(&dry.1).unwrap();
    let step = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "dry_run")
        .unwrap()
        .clone();
    assert!(
        step["detail"]
            .as_str()
            .unwrap()
            .contains("would deny (403 claim_mismatch)"),
        "{step}"
    );
    // No token, valid or not, is ever written to the log.
    let log = p.log();
    for c in &all {
        if let Some(t) = &c.token {
            let signature = t.rsplit('.').next().unwrap();
            assert!(
                !log.contains(t.as_str()) && (signature.len() < 8 || !log.contains(signature)),
                "{}: token in the log",
                c.name
            );
        }
    }
    // The dry run was logged as such, with its request ID.
    assert!(
        log.lines()
            .any(|l| l.contains("dry run: would deny")
                && l.contains("\"request_id\":\"explain-test\"")),
        "{log}"
    );
}

fn all_token<'a>(all: &'a [Case], name: &str) -> &'a str {
    all.iter()
        .find(|c| c.name == name)
        .and_then(|c| c.token.as_deref())
        .unwrap()
}

fn explain_api(p: &Portcullis, path: &str, token: &str) -> Value {
    let body = json!({"method": "GET", "url": format!("https://{HOST}{path}"), "token": token});
    let r = request(
        "POST",
        &format!("http://127.0.0.1:{}/explain", p.admin),
        &[("content-type", "application/json")],
        &body.to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

fn step_detail(v: &Value, name: &str) -> String {
    v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == name)
        .and_then(|s| s["detail"].as_str())
        .unwrap_or_else(|| panic!("no {name} step: {v:#}"))
        .to_owned()
}

#[test]
fn explain_reads_the_token_from_stdin_and_speaks_plainly() {
    let issuer = Issuer::new(Algorithm::ES256, "k1", "https://idp.test");
    let dir = portcullis_test_util::TempDir::new("explain");
    let path = dir.write("c.yaml", &config(&issuer));
    let expired = issuer.mint(json!({"aud": "api", "exp": Issuer::now() - 7200}));
    let (code, stdout, stderr) = cli(
        &path,
        &["--url", &format!("https://{HOST}/api/x"), "-"],
        Some(&format!("Bearer {expired}\n")),
    );
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stdout.contains("FAIL  exp"), "{stdout}");
    assert!(stdout.contains("ago), now "), "{stdout}");
    assert!(
        stdout.contains("DENY 401 token_expired (rule api, provider corp)"),
        "{stdout}"
    );
    assert!(stderr.contains("token_expired"), "{stderr}");
    // Usage and config errors exit 2.
    let (code, _, stderr) = cli(&path, &["--url", "no host"], None);
    assert_eq!(code, 2, "{stderr}");
    let (code, _, stderr) = cli(&path, &["--url", "https://h/x", "-H", "no colon"], None);
    assert_eq!(code, 2, "{stderr}");
    let bad = dir.write(
        "bad.yaml",
        "rules:\n  - name: r\n    allow: anonymous\n    mode: sometimes\n",
    );
    let (code, _, stderr) = cli(&bad, &["--url", "https://h/x"], None);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("bad.yaml:4: rules[0].mode"), "{stderr}");
}

#[test]
fn explain_api_refuses_what_it_cannot_read() {
    let p = Portcullis::start(
        BIN,
        "providers: []\nrules: [{name: other, match: {path: /other}, allow: anonymous}]\n",
    );
    let url = format!("http://127.0.0.1:{}/explain", p.admin);
    for body in [
        "",
        "not json",
        "[1]",
        r#"{"url": 5}"#,
        r#"{"url": "https://h/", "tokn": "x"}"#,
        r#"{"url": "https://h/", "headers": {"a": 1}}"#,
    ] {
        let r = request("POST", &url, &[], body);
        assert_eq!(r.status, 400, "{body:?}: {}", r.body);
        assert_eq!(r.json()["error"], "invalid_request", "{body:?}");
    }
    // A token in a malformed body is not echoed back.
    let r = request(
        "POST",
        &url,
        &[],
        r#"{"url": "https://h/", "headers": "eyJsecret.eyJsecret.sig"}"#,
    );
    assert_eq!(r.status, 400);
    assert!(!r.body.contains("eyJsecret"), "{}", r.body);
    let r = request(
        "POST",
        &url,
        &[],
        &format!(
            r#"{{"url": "https://h/", "token": "{}"}}"#,
            "a".repeat(70_000)
        ),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    let r = request("POST", &url, &[], r#"{"url": "/x"}"#);
    assert_eq!(r.status, 400, "a path needs a Host: {}", r.body);
    let r = request(
        "POST",
        &url,
        &[],
        r#"{"url": "/x", "headers": {"host": "h"}}"#,
    );
    assert_eq!(
        (r.status, r.json()["reason"].as_str()),
        (200, Some("no_rule"))
    );
    let r = request("GET", &url, &[], "");
    assert_eq!((r.status, r.header("allow")), (405, Some("POST")));
}
