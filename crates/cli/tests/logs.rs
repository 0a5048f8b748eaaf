//! `serve` writes its logs on stdout (the contract): JSON lines when stdout is not a
//! terminal, text with `--log-format text`. Starts the real binary, no peer.
#![expect(clippy::unwrap_used, reason = "tests")]

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};

use portcullis_test_util::{TempDir, free_port};

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

/// The first line `serve` prints on stdout, with `extra` arguments.
fn first_stdout_line(extra: &[&str]) -> String {
    let dir = TempDir::new("logs");
    let port = free_port();
    let config = dir.write(
        "c.yaml",
        &format!("listen:\n  admin: 127.0.0.1:{port}\nrules:\n  - {{name: all, match: {{}}, allow: anonymous}}\n"),
    );
    let mut child = Command::new(BIN)
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .args(extra)
        .env_remove("PORTCULLIS_LOG")
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    line
}

#[test]
fn serve_logs_json_lines_on_stdout_when_it_is_not_a_terminal() {
    let line = first_stdout_line(&[]);
    let v: serde_json::Value = serde_json::from_str(line.trim()).unwrap_or_else(|e| {
        panic!("not a JSON line: {line:?}: {e}");
    });
    assert_eq!(v["level"], "INFO", "{v}");
    assert!(v["message"].is_string(), "{v}");
}

#[test]
fn serve_logs_text_when_asked() {
    let line = first_stdout_line(&["--log-format", "text"]);
    assert!(!line.trim().is_empty());
    assert!(
        serde_json::from_str::<serde_json::Value>(line.trim()).is_err(),
        "{line:?}"
    );
    assert!(line.contains("INFO"), "{line:?}");
}

/// Issue 14: fields are plain values, never `Some(...)` or a stringified array.
#[test]
fn serve_logs_plain_field_values() {
    let line = first_stdout_line(&[]);
    let v: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    for (name, value) in v.as_object().unwrap() {
        let text = value.to_string();
        assert!(
            !text.contains("Some(") && !text.starts_with("\"["),
            "{name}: {text} in {line}"
        );
    }
}
