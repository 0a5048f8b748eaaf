//! `/metrics` as the contract says: Prometheus text format 0.0.4 by default and
//! OpenMetrics when the scrape's `Accept` asks, each with its own `Content-Type`; the
//! default body passes the real `promtool check metrics` (Debian `prometheus`,
//! installed by scripts/install-peers) after traffic, and counters move by exactly
//! the decisions made.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use portcullis_test_util::{Portcullis, request};

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
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian prometheus): run scripts/install-peers");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n--- body ---\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

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
