//! `portcullis explain` and admin `POST /explain` for the reason codes the
//! `explain.rs` table cannot produce from a decision alone: step-up
//! (`step_up_required`: the step shows the acr/amr wanted and shown) and the
//! proxy listener's own answers after an allow (`no_upstream`,
//! `upstream_unavailable`, `upstream_timeout`: the `proxy` step says where the
//! request goes and with which timeouts). For each, the CLI and the API agree,
//! and the real server (its `/verify`, or its proxy listener against a closed
//! port and a slow upstream) answers what was explained, with the documented
//! body and log line. No peer: the real binary, one server for every case, and
//! the test's echo upstream.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::process::Command;
use std::time::{Duration, Instant};

use portcullis_jose::Algorithm;
use portcullis_test_util::{EchoServer, Issuer, Portcullis, free_port, request};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");
const HOST: &str = "api.example.com";

fn config(issuer: &Issuer, proxy: u16, echo: u16, closed: u16) -> String {
    format!(
        r#"  proxy: 127.0.0.1:{proxy}
providers:
  - name: corp
    issuer: {iss}
    audiences: [api]
    algorithms: [ES256]
    jwks:
      inline: {jwks}
upstreams:
  - {{name: down, urls: ["http://127.0.0.1:{closed}"], connect_timeout: 1s}}
  - {{name: hasty, urls: ["http://127.0.0.1:{echo}"], timeout: 1s}}
rules:
  - {{name: down, match: {{path: /down}}, allow: anonymous, upstream: down}}
  - {{name: slow, match: {{path: "/slow/**"}}, allow: anonymous, upstream: hasty}}
  - {{name: nowhere, match: {{path: /nowhere}}, allow: anonymous}}
  - name: pay
    match: {{path: "/pay/**"}}
    acr_values: [urn:gold]
    amr: [hwk]
    upstream: hasty
"#,
        iss = issuer.iss,
        jwks = issuer.jwks()
    )
}

fn cli(p: &Portcullis, path: &str, token: Option<&str>) -> (i32, Value) {
    let url = format!("https://{HOST}{path}");
    let mut args = vec!["explain", "--json", "--url", url.as_str()];
    args.extend(token);
    let out = Command::new(BIN)
        .args(&args[..1])
        .arg("--config")
        .arg(&p.config)
        .args(&args[1..])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "{path}: not JSON ({e}): {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), v)
}

fn api(p: &Portcullis, path: &str, token: Option<&str>) -> Value {
    let body = json!({"method": "GET", "url": format!("https://{HOST}{path}"), "token": token});
    let r = request(
        "POST",
        &format!("http://127.0.0.1:{}/explain", p.admin),
        &[("content-type", "application/json")],
        &body.to_string(),
    );
    assert_eq!(r.status, 200, "{path}: {}", r.body);
    r.json()
}

/// The explanation without what depends on when the keys were published (the
/// CLI publishes its own) or the second it was asked at.
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
        if s["step"] == "key" {
            let detail = s["detail"].as_str().unwrap();
            let cut = detail.split(" (published ").next().unwrap().to_owned();
            s["detail"] = Value::from(cut);
        }
    }
    v
}

fn step<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == name)
        .unwrap_or_else(|| panic!("no {name} step: {v:#}"))
}

/// Explains `path` through the CLI and the API, checks they agree, and returns it.
fn explained(p: &Portcullis, path: &str, token: Option<&str>) -> Value {
    let (code, from_cli) = cli(p, path, token);
    let from_api = api(p, path, token);
    assert_eq!(
        timeless(from_cli.clone()),
        timeless(from_api.clone()),
        "{path}: CLI and API differ"
    );
    let allowed = from_api["decision"] == "allow";
    assert_eq!(code, if allowed { 0 } else { 1 }, "{path}: {from_api:#}");
    from_api
}

#[test]
fn explain_covers_step_up_and_the_proxy_listener_codes() {
    let issuer = Issuer::new(Algorithm::ES256, "k1", "https://idp.test");
    let echo = EchoServer::start(None);
    let (proxy, closed) = (free_port(), free_port());
    let p = Portcullis::start(BIN, &config(&issuer, proxy, echo.port, closed));
    p.wait_ready(Duration::from_secs(20));
    let proxied = |path: &str, id: &str| {
        request(
            "GET",
            &format!("http://127.0.0.1:{proxy}{path}"),
            &[("host", HOST), ("x-request-id", id)],
            "",
        )
    };

    // step_up_required: a valid token, acr and amr too weak.
    let weak =
        issuer.mint(json!({"aud": "api", "sub": "alice", "acr": "urn:bronze", "amr": ["pwd"]}));
    let v = explained(&p, "/pay/x", Some(&weak));
    assert_eq!(
        (&v["decision"], &v["status"], &v["reason"], &v["rule"]),
        (
            &json!("deny"),
            &json!(401),
            &json!("step_up_required"),
            &json!("pay")
        )
    );
    let s = step(&v, "step_up");
    assert_eq!(s["ok"], false);
    assert_eq!(
        s["detail"],
        r#"acr wants one of [urn:gold], token acr "urn:bronze"; amr wants one of [hwk], token amr ["pwd"]"#
    );
    let real = p.verify(&[
        ("x-forwarded-method", "GET"),
        ("x-forwarded-host", HOST),
        ("x-forwarded-uri", "/pay/x"),
        ("authorization", &format!("Bearer {weak}")),
    ]);
    assert_eq!(real.status, 401, "{}", real.body);
    assert_eq!(real.json()["reason"], "step_up_required");
    assert!(
        real.header("www-authenticate")
            .is_some_and(|w| w.contains("insufficient_user_authentication")),
        "{:?}",
        real.headers
    );
    // Strong enough: explained and served as allowed (the proxy step names the upstream).
    let strong = issuer
        .mint(json!({"aud": "api", "sub": "alice", "acr": "urn:gold", "amr": ["pwd", "hwk"]}));
    let v = explained(&p, "/pay/x", Some(&strong));
    assert_eq!(v["decision"], "allow", "{v:#}");
    assert_eq!(step(&v, "step_up")["ok"], true);

    // upstream_unavailable: explained as an allow whose proxy step says what a
    // failed connect gets; the proxy listener then answers exactly that.
    let v = explained(&p, "/down", None);
    assert_eq!(
        (&v["decision"], &v["rule"]),
        (&json!("allow"), &json!("down"))
    );
    let s = step(&v, "proxy");
    assert_eq!(s["ok"], true);
    assert_eq!(
        s["detail"],
        format!(
            "on the proxy listener: forwarded to upstream \"down\" [http://127.0.0.1:{closed}] (round robin, connect timeout 1s, timeout 30s); a connect that fails or takes over 1s: 502 upstream_unavailable; no response head within 30s: 504 upstream_timeout"
        )
    );
    let down = proxied("/down", "proxy-down");
    assert_eq!(down.status, 502, "{}", down.body);
    assert_eq!(
        down.body,
        r#"{"error":"bad_gateway","reason":"upstream_unavailable"}"#
    );

    // upstream_timeout: the echo upstream answers /slow after 5 s, the timeout is 1 s.
    let v = explained(&p, "/slow/x", None);
    assert!(
        step(&v, "proxy")["detail"]
            .as_str()
            .unwrap()
            .contains("no response head within 1s: 504 upstream_timeout"),
        "{v:#}"
    );
    let started = Instant::now();
    let slow = proxied("/slow/x", "proxy-slow");
    assert_eq!(slow.status, 504, "{}", slow.body);
    assert_eq!(
        slow.body,
        r#"{"error":"gateway_timeout","reason":"upstream_timeout"}"#
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the timeout is 1s"
    );

    // no_upstream: allowed by the decision (and by /verify), 404 on the proxy listener.
    let v = explained(&p, "/nowhere", None);
    assert_eq!(v["decision"], "allow");
    let s = step(&v, "proxy");
    assert_eq!(s["ok"], false);
    assert_eq!(
        s["detail"],
        "on the proxy listener: rule \"nowhere\" names no upstream, so it answers 404 no_upstream (forward auth and ext_authz allow)"
    );
    let nowhere = proxied("/nowhere", "proxy-nowhere");
    assert_eq!(nowhere.status, 404, "{}", nowhere.body);
    assert_eq!(
        nowhere.body,
        r#"{"error":"not_found","reason":"no_upstream"}"#
    );
    let real = p.verify(&[
        ("x-forwarded-method", "GET"),
        ("x-forwarded-host", HOST),
        ("x-forwarded-uri", "/nowhere"),
    ]);
    assert_eq!(real.status, 200, "{}", real.body);

    // Each proxy answer is one warn line naming the rule, the reason and the request ID.
    let log = p.log();
    for (id, reason, rule) in [
        ("proxy-down", "upstream_unavailable", "down"),
        ("proxy-slow", "upstream_timeout", "slow"),
        ("proxy-nowhere", "no_upstream", "nowhere"),
    ] {
        let line = log
            .lines()
            .find(|l| l.contains(id))
            .unwrap_or_else(|| panic!("no log line for {id}:\n{log}"));
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(v["level"], "WARN", "{line}");
        assert_eq!(v["reason"], reason, "{line}");
        assert_eq!(v["rule"], rule, "{line}");
    }
    // The explained tokens are never logged.
    for t in [&weak, &strong] {
        assert!(
            !log.contains(t.rsplit('.').next().unwrap()),
            "token in the log"
        );
    }
}
