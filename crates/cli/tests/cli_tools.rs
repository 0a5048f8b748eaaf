//! The small tools people expect, run as the real binary: `verify` messages (times in
//! words, the token's `iss`/`aud` beside the expected ones, the known kids, the
//! `Bearer ` hint, never `Some(..)`), `jwk --jwks`, `keygen --bits`, `completions`,
//! `man`, and the LICENSE. Peers: bash and groff (Debian), when present.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is a failure"
)]

use std::path::Path;
use std::process::{Command, Output, Stdio};

use portcullis_test_util::TempDir;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// An ES256 key `key.pem` and its JWKS `jwks.json` (kid `k1`) in `dir`.
fn keys(dir: &TempDir) -> (String, String) {
    let key = dir.path().join("key.pem");
    let out = run(&[
        "keygen",
        "--alg",
        "ES256",
        "--kid",
        "k1",
        "--out",
        key.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let jwks = dir.write("jwks.json", &text(&out.stdout));
    (
        key.to_str().unwrap().to_owned(),
        jwks.to_str().unwrap().to_owned(),
    )
}

fn mint(key: &str, extra: &[&str]) -> String {
    let mut args = vec!["mint", "--key", key, "--alg", "ES256", "--kid", "k1"];
    args.extend_from_slice(extra);
    let out = run(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout).trim().to_owned()
}

/// `verify --jwks` with the expected issuer and audience; its exit code and stderr lines.
fn verify(jwks: &str, token: &str) -> (Option<i32>, Vec<String>) {
    let out = run(&[
        "verify",
        "--jwks",
        jwks,
        "--issuer",
        "https://login.example.com",
        "--audience",
        "orders-api",
        token,
    ]);
    let err = text(&out.stderr);
    assert!(!err.contains("Some("), "{err}");
    assert!(!err.contains(token), "the token was echoed: {err}");
    (out.status.code(), err.lines().map(str::to_owned).collect())
}

#[test]
fn verify_says_what_is_wrong_in_words() {
    let dir = TempDir::new("verify-words");
    let (key, jwks) = keys(&dir);
    let good = ["--iss", "https://login.example.com", "--aud", "orders-api"];

    // Expired: the time in RFC 3339 and relative to now, then now and the skew.
    let mut args = good.to_vec();
    args.extend_from_slice(&["--claim", "exp=1700000000"]);
    let (code, lines) = verify(&jwks, &mint(&key, &args));
    assert_eq!(code, Some(1));
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].starts_with("token_expired: the token expired at 2023-11-14T22:13:20Z (")
            && lines[0].ends_with(" ago)"),
        "{lines:?}"
    );
    assert!(
        lines[1].starts_with("  now 20") && lines[1].ends_with("Z, clock skew 60s"),
        "{lines:?}"
    );

    // Not yet valid.
    let mut args = good.to_vec();
    args.extend_from_slice(&["--nbf", "+2h"]);
    let (code, lines) = verify(&jwks, &mint(&key, &args));
    assert_eq!(code, Some(1));
    assert!(
        lines[0].starts_with("token_not_yet_valid: the token is not valid before ")
            && (lines[0].ends_with("(in 2h)") || lines[0].contains("(in 1h 59m")),
        "{lines:?}"
    );

    // The token's iss next to the expected one.
    let (code, lines) = verify(
        &jwks,
        &mint(
            &key,
            &["--iss", "https://evil.example", "--aud", "orders-api"],
        ),
    );
    assert_eq!(code, Some(1));
    assert_eq!(
        lines,
        [
            r#"issuer_mismatch: the token's iss is "https://evil.example", expected "https://login.example.com""#
        ]
    );
    let (_, lines) = verify(&jwks, &mint(&key, &["--aud", "orders-api"]));
    assert_eq!(
        lines,
        [r#"issuer_mismatch: the token's iss is (none), expected "https://login.example.com""#]
    );

    // The token's aud next to the expected ones.
    let (code, lines) = verify(
        &jwks,
        &mint(
            &key,
            &[
                "--iss",
                "https://login.example.com",
                "--aud",
                "billing",
                "--aud",
                "search",
            ],
        ),
    );
    assert_eq!(code, Some(1));
    assert_eq!(
        lines,
        [
            r#"audience_mismatch: the token's aud is ["billing","search"], expected one of ["orders-api"]"#
        ]
    );

    // An unknown kid: the kids the keys do have.
    let out = run(&[
        "mint",
        "--key",
        &key,
        "--alg",
        "ES256",
        "--kid",
        "rotated-away",
        "--iss",
        "https://login.example.com",
        "--aud",
        "orders-api",
    ]);
    let (code, lines) = verify(&jwks, text(&out.stdout).trim());
    assert_eq!(code, Some(1));
    assert_eq!(
        lines,
        [
            r#"key_not_found: no key has kid "rotated-away""#,
            r#"  known kids: "k1""#
        ]
    );

    // `Bearer ` pasted in front: malformed, with the hint.
    let token = mint(&key, &good);
    let pasted = format!("Bearer {token}");
    let (code, lines) = verify(&jwks, &pasted);
    assert_eq!(code, Some(1));
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].starts_with("token_malformed: "), "{lines:?}");
    assert_eq!(
        lines[1],
        format!(
            "  hint: the token starts with \"Bearer \"; pass only what follows it ({}...)",
            &token[..12]
        )
    );

    // And the good token verifies: exit 0, the claims on stdout.
    let out = run(&[
        "verify",
        "--jwks",
        &jwks,
        "--issuer",
        "https://login.example.com",
        "--audience",
        "orders-api",
        &token,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let claims: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(claims["aud"], "orders-api");
}

/// `verify --config`: the same words, with the provider named on the first line.
#[test]
fn verify_with_a_config_names_the_provider() {
    let dir = TempDir::new("verify-config");
    let (key, jwks) = keys(&dir);
    let config = dir.write(
        "portcullis.yaml",
        &format!(
            "listen: {{http: 127.0.0.1:1}}\nproviders:\n  - name: corp\n    issuer: https://login.example.com\n    audiences: [orders-api]\n    jwks: {{file: {jwks}}}\nrules:\n  - name: all\n    match: {{}}\n"
        ),
    );
    let token = mint(
        &key,
        &["--iss", "https://login.example.com", "--aud", "billing"],
    );
    let out = run(&["verify", "--config", config.to_str().unwrap(), &token]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert_eq!(
        err.lines().collect::<Vec<_>>(),
        [
            r#"audience_mismatch: the token's aud is "billing", expected one of ["orders-api"] (provider corp)"#
        ],
        "{err}"
    );
}

#[test]
fn jwk_jwks_wraps_the_key() {
    let dir = TempDir::new("jwk-jwks");
    let (key, jwks) = keys(&dir);
    let plain = run(&["jwk", &key, "--kid", "k1", "--alg", "ES256"]);
    assert!(plain.status.success(), "{}", text(&plain.stderr));
    let jwk: Value = serde_json::from_slice(&plain.stdout).unwrap();
    assert_eq!(jwk["kid"], "k1");
    assert!(jwk.get("keys").is_none());
    assert!(jwk.get("d").is_none(), "private part printed: {jwk}");
    let wrapped = run(&["jwk", &key, "--kid", "k1", "--alg", "ES256", "--jwks"]);
    assert!(wrapped.status.success());
    let set: Value = serde_json::from_slice(&wrapped.stdout).unwrap();
    assert_eq!(set, serde_json::json!({ "keys": [jwk] }));
    // The same as keygen printed, and `verify --jwks` takes it.
    let from_keygen: Value =
        serde_json::from_str(&std::fs::read_to_string(&jwks).unwrap()).unwrap();
    assert_eq!(set, from_keygen);
    let again = dir.write("again.json", &text(&wrapped.stdout));
    let token = mint(&key, &[]);
    let out = run(&["verify", "--jwks", again.to_str().unwrap(), &token]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

fn modulus_bits(jwks: &Value) -> usize {
    let n = jwks["keys"][0]["n"].as_str().unwrap();
    // base64url without padding: 4 characters per 3 bytes.
    n.len() * 6 / 8 * 8
}

#[test]
fn keygen_bits_sizes_rsa_keys_and_refuses_the_rest() {
    let dir = TempDir::new("keygen-bits");
    let out_path = dir.path().join("rsa3072.pem");
    let out = run(&[
        "keygen",
        "--alg",
        "PS384",
        "--bits",
        "3072",
        "--out",
        out_path.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let jwks: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(modulus_bits(&jwks), 3072, "{jwks}");
    assert_eq!(jwks["keys"][0]["alg"], "PS384");
    // The key signs, and its JWK verifies what it signed.
    let jwks_file = dir.write("rsa3072.json", &text(&out.stdout));
    let token = run(&[
        "mint",
        "--key",
        out_path.to_str().unwrap(),
        "--alg",
        "PS384",
    ]);
    assert!(token.status.success(), "{}", text(&token.stderr));
    let ok = run(&[
        "verify",
        "--jwks",
        jwks_file.to_str().unwrap(),
        text(&token.stdout).trim(),
    ]);
    assert!(ok.status.success(), "{}", text(&ok.stderr));

    let default_path = dir.path().join("rsa2048.pem");
    let out = run(&[
        "keygen",
        "--alg",
        "RS256",
        "--out",
        default_path.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    assert_eq!(
        modulus_bits(&serde_json::from_slice(&out.stdout).unwrap()),
        2048
    );

    for (args, message) in [
        (
            vec!["keygen", "--alg", "RS256", "--bits", "1024"],
            "invalid value '1024' for '--bits <BITS>'",
        ),
        (
            vec!["keygen", "--alg", "RS256", "--bits", "2047"],
            "invalid value '2047' for '--bits <BITS>'",
        ),
        (
            vec!["keygen", "--alg", "ES256", "--bits", "4096"],
            "portcullis: --bits is for RSA keys (RS*/PS*), not ES256",
        ),
    ] {
        let out_path = dir.path().join("refused.pem");
        let mut args = args.clone();
        args.extend_from_slice(&["--out", out_path.to_str().unwrap()]);
        let out = run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(text(&out.stderr).contains(message), "{}", text(&out.stderr));
        assert!(!out_path.exists(), "a key was written for {args:?}");
    }
}

#[test]
fn completions_are_scripts_the_shells_accept() {
    let commands = [
        "serve",
        "demo",
        "check",
        "keygen",
        "jwk",
        "mint",
        "inspect",
        "verify",
        "explain",
        "import",
        "completions",
        "man",
    ];
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = run(&["completions", shell]);
        assert!(out.status.success(), "{shell}: {}", text(&out.stderr));
        let script = text(&out.stdout);
        for c in commands {
            assert!(script.contains(c), "{shell} completion lacks {c}");
        }
    }
    let out = run(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
    // bash loads it and completes the commands.
    let dir = TempDir::new("completions");
    let script = dir.write(
        "portcullis.bash",
        &text(&run(&["completions", "bash"]).stdout),
    );
    let probe = format!(
        "source {}; COMP_WORDS=(portcullis ver); COMP_CWORD=1; _portcullis portcullis ver portcullis; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display()
    );
    let out = Command::new("bash").args(["-c", &probe]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "verify");
}

#[test]
fn man_pages_render() {
    let out = run(&["man"]);
    assert!(out.status.success());
    let page = text(&out.stdout);
    assert!(page.contains(".TH portcullis 1"), "{page}");
    for c in ["serve", "verify", "explain", "completions"] {
        assert!(page.contains(c), "the page does not list {c}");
    }
    let out = run(&["man", "verify"]);
    assert!(out.status.success());
    let page = text(&out.stdout);
    assert!(page.contains(".TH portcullis-verify 1"), "{page}");
    assert!(page.contains("jwks"), "{page}");
    let out = run(&["man", "nonsense"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr).trim(),
        "portcullis: no command is named \"nonsense\""
    );
    // groff reads it without a warning, and the text says what verify does.
    if Path::new("/usr/bin/groff").exists() {
        let dir = TempDir::new("man");
        let file = dir.write("portcullis-verify.1", &page);
        let out = Command::new("groff")
            .args(["-man", "-Tutf8", "-ww", "-z"])
            .arg(&file)
            .output()
            .unwrap();
        assert!(out.status.success());
        assert_eq!(text(&out.stderr), "", "groff warnings");
        let out = Command::new("groff")
            .args(["-man", "-Tascii", "-P", "-cbou"])
            .arg(&file)
            .output()
            .unwrap();
        let rendered = text(&out.stdout);
        let words = rendered.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            words.contains("NAME portcullis-verify - Verify a token like the server does"),
            "{rendered}"
        );
        assert!(
            words.contains("SYNOPSIS portcullis verify [--config]"),
            "{rendered}"
        );
    }
}

#[test]
fn license_matches_cargo_toml() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let cargo = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let license = cargo
        .lines()
        .find_map(|l| l.strip_prefix("license = "))
        .unwrap()
        .trim_matches('"');
    assert_eq!(license, "Apache-2.0");
    let text = std::fs::read_to_string(root.join("LICENSE")).unwrap();
    assert!(text.contains("Apache License\n                           Version 2.0, January 2004"));
    assert!(text.contains("TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION"));
    assert!(text.contains("END OF TERMS AND CONDITIONS"));
}
