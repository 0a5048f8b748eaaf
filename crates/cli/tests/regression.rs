//! One regression test per reported bug, named after its issue (STYLE.md #29).
//! Each runs the real `portcullis` binary. Peers: none but Portcullis.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::process::{Command, Output, Stdio};

use portcullis_test_util::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

fn portcullis(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Issue 10, bug 4: `keygen --out FILE` replaced an existing private key without a
/// word (only the default `key.pem` was protected). Now an existing file is kept
/// (exit 2, one line naming the file and `--force`) unless `--force` is given, and
/// the key is written atomically with mode 0600.
#[test]
fn regression_issue10_keygen_out_never_overwrites_without_force() {
    let dir = TempDir::new("regression-keygen");
    let key = dir.write("signing.pem", "the old key\n");
    let key_arg = key.to_str().unwrap();

    let out = portcullis(&["keygen", "--alg", "ES256", "--out", key_arg]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(key_arg) && err.contains("--force"), "{err}");
    assert!(out.stdout.is_empty(), "nothing printed on refusal");
    assert_eq!(std::fs::read_to_string(&key).unwrap(), "the old key\n");

    // A dangling symlink is a name in use too: never followed, never replaced.
    #[cfg(unix)]
    {
        let link = dir.path().join("link.pem");
        std::os::unix::fs::symlink(dir.path().join("nowhere.pem"), &link).unwrap();
        let out = portcullis(&["keygen", "--alg", "ES256", "--out", link.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(!dir.path().join("nowhere.pem").exists());
    }

    let out = portcullis(&["keygen", "--alg", "ES256", "--out", key_arg, "--force"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let pem = std::fs::read_to_string(&key).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{pem}");
    let jwks: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(jwks["keys"][0]["alg"], "ES256");

    let fresh = dir.path().join("fresh.pem");
    let out = portcullis(&["keygen", "--alg", "EdDSA", "--out", fresh.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    #[cfg(unix)]
    for path in [&key, &fresh] {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", path.display());
    }
    // No temporary file is left behind.
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.contains(".tmp-")), "{names:?}");
}
