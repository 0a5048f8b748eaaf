//! `/metrics` as the contract says: Prometheus text format 0.0.4 by default and
//! OpenMetrics when the scrape's `Accept` asks, each with its own `Content-Type`; the
//! default body passes the real `promtool check metrics` (Debian `prometheus`,
//! installed by scripts/install-peers) after traffic, and counters move by exactly
//! the decisions made.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is a failure"
)]

use std::time::Duration;

use portcullis_jose::Algorithm;
use portcullis_test_util::{Issuer, JwksServer, Portcullis, promtool_check, request};

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

const RULES: &str = r#"providers: []
rules:
  - name: open
    match: {path: "/open/**"}
    allow: anonymous
"#;

fn scrape(p: &Portcullis, accept: Option<&str>) -> (String, String) {
    let headers: Vec<(&str, &str)> = accept.map(|a| ("accept", a)).into_iter().collect();
    let r = request(
        "GET",
        &format!("http://127.0.0.1:{}/metrics", p.admin),
        &headers,
        "",
    );
    assert_eq!(r.status, 200);
    let content_type = r
        .headers
        .iter()
        .find(|(n, _)| n == "content-type")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    (content_type, r.body)
}

fn decisions(body: &str, result: &str, reason: &str) -> f64 {
    body.lines()
        .filter(|l| l.starts_with("portcullis_decisions_total{"))
        .filter(|l| {
            l.contains(&format!("result=\"{result}\""))
                && l.contains(&format!("reason=\"{reason}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn metrics_pass_promtool_and_count_exactly() {
    let p = Portcullis::start(BIN, RULES);
    p.wait_ready(Duration::from_secs(20));
    let (_, before) = scrape(&p, None);
    let verify = format!("http://127.0.0.1:{}/verify", p.http);
    for _ in 0..3 {
        assert_eq!(
            request("GET", &verify, &[("x-forwarded-uri", "/open/x")], "").status,
            200
        );
    }
    for _ in 0..2 {
        let r = request("GET", &verify, &[("x-forwarded-uri", "/closed")], "");
        assert_eq!(r.status, 403);
    }
    let r = request("GET", &verify, &[("x-forwarded-uri", "/open/..%2fx")], "");
    assert_eq!(r.status, 400);

    let (content_type, text) = scrape(&p, None);
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    assert_eq!(
        decisions(&text, "allow", "") - decisions(&before, "allow", ""),
        3.0,
        "{text}"
    );
    assert_eq!(
        decisions(&text, "deny", "no_rule") - decisions(&before, "deny", "no_rule"),
        2.0
    );
    assert_eq!(
        decisions(&text, "deny", "request_invalid") - decisions(&before, "deny", "request_invalid"),
        1.0
    );
    promtool_check(&text);

    let (content_type, om) = scrape(
        &p,
        Some("application/openmetrics-text;version=1.0.0,text/plain;q=0.5"),
    );
    assert_eq!(
        content_type,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(om.ends_with("# EOF\n"), "{om}");
    assert!(om.contains("# TYPE portcullis_decisions counter"), "{om}");
}

/// The one sample of `series` (a full name with labels), as text.
fn sample<'a>(body: &'a str, series: &str) -> Option<&'a str> {
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
}

fn number(body: &str, series: &str) -> i64 {
    sample(body, series)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in\n{body}"))
}

const ISS: &str = "https://issuer.test";

fn keyed(jwks_url: &str, extra_rule: &str) -> String {
    format!(
        r#"providers:
  - name: corp
    issuer: {ISS}
    audiences: [api]
    jwks: {{uri: "{jwks_url}", refresh: 1h}}
rules:
{extra_rule}  - name: default
    match: {{}}
"#
    )
}

fn wait_for(p: &Portcullis, what: &str, mut done: impl FnMut(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, body) = scrape(p, None);
        if done(&body) {
            return body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what} never showed in /metrics:\n{body}\nlog:\n{}",
            p.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Key-set age, key count and last fetch outcome per provider; reloads by outcome and
/// the last-reload gauges after a known sequence (start, a reload applied, a reload
/// refused); `build_info`. Every value exact, and promtool still passes.
#[test]
fn key_set_and_reload_gauges_after_a_known_sequence() {
    let started = Issuer::now();
    let a = Issuer::new(Algorithm::ES256, "key-a", ISS);
    let b = Issuer::new(Algorithm::ES256, "key-b", ISS);
    let jwks = JwksServer::start(
        &serde_json::json!({"keys": [a.jwk(), b.jwk()]}).to_string(),
        None,
    );
    let p = Portcullis::start(BIN, &keyed(&jwks.url(), ""));
    p.wait_ready(Duration::from_secs(20));
    let (_, text) = scrape(&p, None);
    assert_eq!(
        sample(&text, "portcullis_config_last_reload_successful"),
        Some("1")
    );
    let loaded_at = number(
        &text,
        "portcullis_config_last_reload_success_timestamp_seconds",
    );
    assert!(
        (started..=Issuer::now()).contains(&loaded_at),
        "{loaded_at}"
    );
    for outcome in ["applied", "rejected"] {
        let series = format!("portcullis_config_reloads_total{{outcome=\"{outcome}\"}}");
        assert_eq!(sample(&text, &series), Some("0"), "{text}");
    }
    assert_eq!(
        sample(&text, r#"portcullis_provider_keys{provider="corp"}"#),
        Some("2")
    );
    for (outcome, v) in [("error", "0"), ("invalid", "0"), ("success", "1")] {
        let series =
            format!("portcullis_jwks_last_fetch{{provider=\"corp\",outcome=\"{outcome}\"}}");
        assert_eq!(sample(&text, &series), Some(v), "{series}\n{text}");
    }
    assert_eq!(
        sample(
            &text,
            r#"portcullis_jwks_fetches_total{provider="corp",outcome="success"}"#
        ),
        Some("1"),
        "{text}"
    );
    let fetched_at = number(
        &text,
        r#"portcullis_jwks_last_success_timestamp_seconds{provider="corp"}"#,
    );
    assert!((started..=Issuer::now()).contains(&fetched_at));
    let age = number(&text, r#"portcullis_jwks_age_seconds{provider="corp"}"#);
    assert!((0..=Issuer::now() - fetched_at).contains(&age), "{age}");
    let build = format!(
        "portcullis_build_info{{version=\"{}\",arch=\"{}\",os=\"{}\"}}",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::ARCH,
        std::env::consts::OS
    );
    assert_eq!(sample(&text, &build), Some("1"), "{text}");
    promtool_check(&text);

    // A reload that is applied.
    std::thread::sleep(Duration::from_millis(1100));
    p.rewrite_config(&keyed(
        &jwks.url(),
        "  - name: open\n    match: {path: /open}\n    allow: anonymous\n",
    ));
    let text = wait_for(&p, "the applied reload", |t| {
        sample(t, r#"portcullis_config_reloads_total{outcome="applied"}"#) == Some("1")
    });
    let applied_at = number(
        &text,
        "portcullis_config_last_reload_success_timestamp_seconds",
    );
    assert!(applied_at > loaded_at, "{applied_at} after {loaded_at}");
    assert_eq!(
        sample(&text, "portcullis_config_last_reload_successful"),
        Some("1")
    );
    assert_eq!(
        request(
            "GET",
            &format!("http://127.0.0.1:{}/verify", p.http),
            &[("x-forwarded-uri", "/open")],
            ""
        )
        .status,
        200
    );

    // A reload that is refused: the counters and gauges say so, the old config serves.
    p.rewrite_config("providers: []\nrules:\n  - name: broken\n    match: {pth: /x}\n");
    let text = wait_for(&p, "the refused reload", |t| {
        sample(t, r#"portcullis_config_reloads_total{outcome="rejected"}"#) == Some("1")
    });
    assert_eq!(
        sample(
            &text,
            r#"portcullis_config_reloads_total{outcome="applied"}"#
        ),
        Some("1")
    );
    assert_eq!(
        sample(&text, "portcullis_config_last_reload_successful"),
        Some("0")
    );
    assert_eq!(
        number(
            &text,
            "portcullis_config_last_reload_success_timestamp_seconds"
        ),
        applied_at
    );
    assert_eq!(
        sample(&text, r#"portcullis_provider_keys{provider="corp"}"#),
        Some("2")
    );
    promtool_check(&text);
}
