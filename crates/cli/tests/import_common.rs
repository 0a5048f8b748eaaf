//! Shared by the `import_*.rs` tests (included with `#[path]`): running `portcullis
//! import` on a fixture from `crates/import/tests/fixtures/`, checking what it prints,
//! and a small table of requests with the status each must get through a real proxy.
//!
//! Alone (as its own test target) it has nothing to run.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    dead_code,
    reason = "tests; each including test file uses part of the helpers"
)]

use std::path::{Path, PathBuf};
use std::process::Command;

use portcullis_test_util::{Response, TempDir};

/// The binary under test.
pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

/// `crates/import/tests/fixtures/NAME`.
pub(crate) fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../import/tests/fixtures")
        .join(name)
}

/// What `portcullis import` printed.
#[derive(Debug)]
pub(crate) struct Imported {
    /// The config (stdout).
    pub(crate) config: String,
    /// The `warning:` lines (stderr).
    pub(crate) warnings: Vec<String>,
}

impl Imported {
    /// Whether one warning line contains every one of `words`.
    pub(crate) fn warns(&self, words: &[&str]) -> bool {
        self.warnings
            .iter()
            .any(|w| words.iter().all(|word| w.contains(word)))
    }

    /// Panics unless one warning line contains every one of `words`.
    pub(crate) fn assert_warns(&self, words: &[&str]) {
        assert!(
            self.warns(words),
            "no warning with {words:?}; warnings:\n{}",
            self.warnings.join("\n")
        );
    }

    /// The config with `from` replaced by `to` (which must occur exactly once).
    pub(crate) fn replaced(&self, from: &str, to: &str) -> String {
        assert_eq!(
            self.config.matches(from).count(),
            1,
            "`{from}` once in:\n{}",
            self.config
        );
        self.config.replace(from, to)
    }
}

/// Runs `portcullis import ARGS...`: it must exit 0, print only `warning:` lines on
/// stderr, and print a config that `portcullis check` accepts as it is.
pub(crate) fn import(args: &[&str]) -> Imported {
    let out = Command::new(BIN).arg("import").args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "import {args:?}: {}\n{stderr}",
        out.status
    );
    let warnings: Vec<String> = stderr.lines().map(str::to_owned).collect();
    for w in &warnings {
        assert!(w.starts_with("warning: "), "not a warning line: {w}");
    }
    let config = String::from_utf8(out.stdout).unwrap();
    assert_check_passes(&config);
    Imported { config, warnings }
}

/// `portcullis check` accepts `config` with the `listen:` block the import's
/// output asks the user to add (check refuses a config serve would not run).
pub(crate) fn assert_check_passes(config: &str) {
    let dir = TempDir::new("import-check");
    let path = dir.write(
        "portcullis.yaml",
        &format!("listen:\n  http: 127.0.0.1:8080\n{config}"),
    );
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "portcullis check refused the imported config: {}\n{config}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One request through the proxy and the status the original product gives it.
pub(crate) struct Case<'a> {
    pub(crate) name: &'a str,
    pub(crate) method: &'a str,
    pub(crate) path: &'a str,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) status: u16,
}

impl<'a> Case<'a> {
    pub(crate) fn new(name: &'a str, method: &'a str, path: &'a str, status: u16) -> Case<'a> {
        Case {
            name,
            method,
            path,
            headers: Vec::new(),
            status,
        }
    }

    pub(crate) fn bearer(mut self, token: &str) -> Case<'a> {
        self.headers
            .push(("Authorization".to_owned(), format!("Bearer {token}")));
        self
    }

    pub(crate) fn header(mut self, name: &str, value: &str) -> Case<'a> {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
}

/// Sends every case to `base_url` with `send` and collects the mismatches; panics
/// with all of them and `logs()`.
pub(crate) fn run_cases(
    base_url: &str,
    cases: &[Case<'_>],
    check_allow: &dyn Fn(&Case<'_>, &Response) -> Option<String>,
    logs: &dyn Fn() -> String,
) {
    let mut failures = Vec::new();
    for case in cases {
        let headers: Vec<(&str, &str)> = case
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let r = portcullis_test_util::request(
            case.method,
            &format!("{base_url}{}", case.path),
            &headers,
            "",
        );
        if r.status != case.status {
            failures.push(format!(
                "{}: {} {} got {}, want {} ({})",
                case.name, case.method, case.path, r.status, case.status, r.body
            ));
        } else if r.status == 200
            && let Some(problem) = check_allow(case, &r)
        {
            failures.push(format!("{}: {problem}", case.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}\n--- logs ---\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n"),
        logs()
    );
}

/// The real NGINX running `examples/nginx/nginx.conf` in front of `upstream_port`,
/// asking Portcullis on `portcullis_http`: `main` is the `auth_request` server
/// (X-Original-URI, nginx-subrequest-auth-jwt's set-up), `ingress` the server written
/// as ingress-nginx generates it for `auth-url` (X-Original-URL).
pub(crate) struct Nginx {
    _child: portcullis_test_util::Child,
    pub(crate) main: u16,
    pub(crate) ingress: u16,
    pub(crate) dir: TempDir,
}

impl Nginx {
    pub(crate) fn start(portcullis_http: u16, upstream_port: u16) -> Nginx {
        use portcullis_test_util::{free_port, peer_bin};
        let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/nginx");
        let (main, ingress) = (free_port(), free_port());
        let dir = TempDir::new("import-nginx");
        let subst = |text: String| {
            let text = text
                .replace("__LISTEN_INGRESS__", &format!("127.0.0.1:{ingress}"))
                .replace("__LISTEN__", &format!("127.0.0.1:{main}"))
                .replace("__PORTCULLIS__", &format!("127.0.0.1:{portcullis_http}"))
                .replace("__UPSTREAM__", &format!("127.0.0.1:{upstream_port}"));
            assert!(!text.contains("__"), "a placeholder is left:\n{text}");
            text
        };
        let conf = dir.write(
            "nginx.conf",
            &subst(std::fs::read_to_string(examples.join("nginx.conf")).unwrap()),
        );
        dir.write(
            "portcullis-verify.conf",
            &subst(std::fs::read_to_string(examples.join("portcullis-verify.conf")).unwrap()),
        );
        let child = portcullis_test_util::Child::spawn(
            Command::new(peer_bin("nginx"))
                .arg("-p")
                .arg(format!("{}/", dir.path().display()))
                .arg("-c")
                .arg(&conf)
                .arg("-e")
                .arg(dir.path().join("error.log")),
            &dir.path().join("nginx.stdout.log"),
        );
        portcullis_test_util::wait_for_port(main, std::time::Duration::from_secs(20));
        portcullis_test_util::wait_for_port(ingress, std::time::Duration::from_secs(20));
        Nginx {
            _child: child,
            main,
            ingress,
            dir,
        }
    }

    pub(crate) fn logs(&self) -> String {
        ["nginx.stdout.log", "error.log"]
            .iter()
            .map(|f| std::fs::read_to_string(self.dir.path().join(f)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }
}
