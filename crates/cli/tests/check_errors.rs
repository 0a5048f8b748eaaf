//! `check` refuses what `serve` refuses, and every message names the file, the
//! line and the full field (issue 14's newcomer run). The real binary, no peer.
#![expect(clippy::unwrap_used, reason = "tests")]

use std::process::Command;
use std::time::Duration;

use portcullis_test_util::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

fn run(args: &[&str], config: &std::path::Path) -> (Option<i32>, String) {
    let out = Command::new(BIN)
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// One rule, so a config is servable (`check` and `serve` refuse one with none).
const RULE: &str = "rules:\n  - {name: all, match: {}, allow: anonymous}\n";

#[test]
fn check_and_serve_refuse_a_config_without_listener_naming_file_and_line() {
    let dir = TempDir::new("check-errors");
    let path = dir.write("none.yaml", "# no listener\nproviders: []\n");
    let want = format!(
        "{}:1: listen: names no listener (http, grpc, admin or proxy)",
        path.display()
    );
    let (code, stderr) = run(&["check"], &path);
    assert_eq!(code, Some(2));
    assert!(stderr.starts_with(&want), "{stderr}");
    let mut serve = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while serve.try_wait().unwrap().is_none() {
        assert!(std::time::Instant::now() < deadline, "serve kept running");
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = serve.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with(&want), "{stderr}");
    assert!(!stderr.contains("config:0"), "{stderr}");
}

#[test]
fn check_warns_of_a_missing_or_unusable_key_file_at_its_line() {
    let dir = TempDir::new("check-errors");
    let head = "listen:\n  admin: 127.0.0.1:9\nproviders:\n  - name: corp\n    jwks:\n";
    let missing = dir.write(
        "missing.yaml",
        &format!("{head}      file: nothere.json\n{RULE}"),
    );
    // serve starts without the file (a sidecar may write it later), so check
    // passes, and says what serve will do.
    let (code, stderr) = run(&["check"], &missing);
    assert_eq!(code, Some(0));
    assert!(
        stderr.contains("serve denies this provider's tokens"),
        "{stderr}"
    );
    assert!(
        stderr.starts_with(&format!(
            "warning: {}:6: providers[0].jwks.file: cannot read ",
            missing.display()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("nothere.json"), "{stderr}");
    dir.write("empty.json", r#"{"keys": []}"#);
    let empty = dir.write(
        "empty.yaml",
        &format!("{head}      file: empty.json\n{RULE}"),
    );
    let (code, stderr) = run(&["check"], &empty);
    assert_eq!(code, Some(0));
    assert!(
        stderr.starts_with(&format!(
            "warning: {}:6: providers[0].jwks.file: ",
            empty.display()
        )),
        "{stderr}"
    );
    let flow = dir.write(
        "flow.yaml",
        &format!("listen:\n  admin: 127.0.0.1:9\nproviders:\n  - name: corp\n    jwks: {{file: gone.json}}\n{RULE}"),
    );
    let (code, stderr) = run(&["check"], &flow);
    assert_eq!(code, Some(0));
    assert!(
        stderr.starts_with(&format!(
            "warning: {}:5: providers[0].jwks.file: ",
            flow.display()
        )),
        "{stderr}"
    );
}

#[test]
fn yaml_mistakes_name_the_right_line_and_field() {
    let dir = TempDir::new("check-errors");
    let head = "listen:\n  admin: 127.0.0.1:9\nproviders:\n  - name: corp\n";
    for (name, body, want) in [
        (
            "indent",
            "    issuer: https://idp\n  audiences: [api]\n    jwks: {file: k.json}\n",
            ":6: providers[0].audiences: indented 2 spaces",
        ),
        (
            "scalar",
            "    audiences: orders-api\n    jwks: {file: k.json}\n",
            ":5: providers[0].audiences: expected a list",
        ),
        (
            "duplicate",
            "    name: again\n    jwks: {file: k.json}\n",
            ":5: providers[0].name: this key appears twice",
        ),
        (
            "typo",
            "    audince: [api]\n    jwks: {file: k.json}\n",
            ":5: providers[0].audince: unknown key; did you mean `audiences`?",
        ),
    ] {
        let path = dir.write(&format!("{name}.yaml"), &format!("{head}{body}"));
        let (code, stderr) = run(&["check"], &path);
        assert_eq!(code, Some(2), "{name}");
        assert!(
            stderr.starts_with(&format!("{}{want}", path.display())),
            "{name}: {stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "{name}: one line");
    }
}

/// The admin listener off loopback: `check` and `serve` both refuse it at its line,
/// naming `listen.admin` and the key that allows it; with that key both accept it.
#[test]
fn admin_off_loopback_is_refused_at_its_line_unless_allowed() {
    let dir = TempDir::new("check-errors");
    let path = dir.write(
        "remote.yaml",
        &format!("listen:\n  http: 127.0.0.1:0\n  admin: 0.0.0.0:0\n{RULE}"),
    );
    let want = format!(
        "{}:3: listen.admin: 0.0.0.0:0 is not a loopback address; the admin listener serves /explain, the rules and key metadata, so it listens on 127.0.0.1 or [::1] unless `listen.admin_allow_remote: true` is set",
        path.display()
    );
    let (code, stderr) = run(&["check"], &path);
    assert_eq!(code, Some(2));
    assert!(stderr.starts_with(&want), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    let out = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&path)
        .stdout(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with(&want), "{stderr}");

    let allowed = dir.write(
        "allowed.yaml",
        &format!(
            "listen:\n  http: 127.0.0.1:0\n  admin: 0.0.0.0:0\n  admin_allow_remote: true\n{RULE}"
        ),
    );
    let (code, stderr) = run(&["check"], &allowed);
    assert_eq!(code, Some(0), "{stderr}");
}

/// `allow: deny` has its own reason code, not `no_rule`.
#[test]
fn a_rule_that_denies_says_rule_denied() {
    let dir = TempDir::new("check-errors");
    let path = dir.write(
        "deny.yaml",
        "listen:\n  http: 127.0.0.1:9\nrules:\n  - name: closed\n    match: {path: /closed}\n    allow: deny\n",
    );
    let out = Command::new(BIN)
        .args([
            "explain",
            "--json",
            "--url",
            "https://api.example.com/closed",
            "--config",
        ])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let x: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(x["reason"], "rule_denied", "{x}");
    assert_eq!(x["rule"], "closed");
    assert_eq!(x["status"], 403);
    let out = Command::new(BIN)
        .args([
            "explain",
            "--json",
            "--url",
            "https://api.example.com/open",
            "--config",
        ])
        .arg(&path)
        .output()
        .unwrap();
    let x: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(x["reason"], "no_rule", "{x}");
}

/// `verify --provider` with a name the config lacks: the file and the flag, no line 0.
#[test]
fn verify_with_an_unknown_provider_names_the_file_not_line_0() {
    let dir = TempDir::new("check-errors");
    let path = dir.write(
        "p.yaml",
        "listen:\n  http: 127.0.0.1:9\nproviders: []\nrules: []\n",
    );
    let out = Command::new(BIN)
        .args(["verify", "--provider", "nope", "--config"])
        .arg(&path)
        .arg("a.b.c")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.trim(),
        format!(
            "{}: --provider: no provider is named \"nope\"",
            path.display()
        )
    );
    assert!(!stderr.contains(":0:"), "{stderr}");
}

/// `sessions:` errors found when its files are read (`load_login`) name the line
/// of the field, never `FILE:0:`.
#[test]
fn login_and_session_errors_name_their_line_and_field() {
    let dir = TempDir::new("check-errors");
    let good_secret = dir.write(
        "session.key",
        "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n",
    );
    let bad_secret = dir.write("bad.key", "not base64 at all!!\n");
    let config = |secret: &std::path::Path, extra: &str| {
        format!(
            "listen: {{http: 127.0.0.1:0}}\nproviders:\n  - name: corp\n    issuer: https://idp.example.com\n    jwks: {{discovery: https://idp.example.com}}\n    login: {{client_id: p, client_secret: s}}\nsessions:\n  public_url: https://auth.example.com\n  secret_file: {}\n{extra}{RULE}",
            secret.display()
        )
    };
    let missing = dir.path().join("missing.key");
    let cases = [
        (config(&missing, ""), 9, "sessions.secret_file"),
        (config(&bad_secret, ""), 9, "sessions.secret_file"),
        (
            config(
                &good_secret,
                "  token:\n    key_file: missing.pem\n    issuer: https://auth.example.com\n    audiences: [mesh]\n",
            ),
            11,
            "sessions.token.key_file",
        ),
    ];
    for (i, (text, line, field)) in cases.iter().enumerate() {
        let path = dir.write(&format!("login{i}.yaml"), text);
        let (code, stderr) = run(&["check"], &path);
        assert_eq!(code, Some(2), "{i}: {stderr}");
        let want = format!("{}:{line}: {field}: ", path.display());
        assert!(
            stderr.starts_with(&want),
            "{i}: want {want:?}, got {stderr}"
        );
        assert!(!stderr.contains(":0:"), "{stderr}");
    }
}
