//! One regression test per reported bug, named after its issue (STYLE.md #29).
//! Each runs the real `portcullis` binary. Peers: none but Portcullis.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use portcullis_jose::{Algorithm, b64};
use portcullis_test_util::{Issuer, Portcullis, TempDir};
use serde_json::{Value, json};

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

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const ISS: &str = "https://idp.example.com";

fn provider_config(jwks: &Value, extra: &str) -> String {
    format!(
        "providers:\n  - name: corp\n    issuer: {ISS}\n    audiences: [api]\n    jwks:\n      inline: {jwks}\n{extra}rules:\n  - name: default\n    match: {{}}\n"
    )
}

/// Issue 10, bug 1: an inline JWKS with one key of an unsupported type, curve or
/// algorithm, or meant for encryption, refused the whole config, while `file:` and
/// `uri:` sources ignored such a key with a warning. RFC 7517 §5: such keys are
/// ignored. Now every source imports through one function: inline skips are
/// `warning:` lines of `check` (and of `serve`'s log) naming file, line, key index,
/// `kid` and why, and the other keys serve. Weak keys are still refused, and a JWKS
/// with no usable key is still an error.
#[test]
fn regression_issue10_inline_jwks_skips_unusable_key() {
    let dir = TempDir::new("regression-inline");
    let good = Issuer::new(Algorithm::EdDSA, "good", ISS);
    let rsa = Issuer::new(Algorithm::RS256, "rsa", ISS).jwk();
    let ed448 = json!({"kty": "OKP", "crv": "Ed448", "kid": "ed448",
                       "x": b64::encode(&[9u8; 57])});
    let k1 = json!({"kty": "EC", "crv": "secp256k1", "kid": "k1",
                    "x": b64::encode(&[1u8; 32]), "y": b64::encode(&[2u8; 32])});
    let enc = json!({"kty": "RSA", "kid": "enc", "use": "enc", "n": rsa["n"], "e": rsa["e"]});
    let jwks = json!({"keys": [good.jwk(), ed448, k1, enc]});
    let text = provider_config(&jwks, "");
    // `check` refuses a config with no listener; `Portcullis::start` adds its own.
    let file = dir.write(
        "inline.yaml",
        &format!("{text}listen:\n  admin: 127.0.0.1:9\n"),
    );
    let file_arg = file.to_str().unwrap();

    let out = portcullis(&["check", "--config", file_arg]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(stdout(&out).contains(": ok"), "{}", stdout(&out));
    let warnings: Vec<&str> = err.lines().filter(|l| l.starts_with("warning: ")).collect();
    assert_eq!(warnings.len(), 3, "{err}");
    let line = text.lines().position(|l| l.contains("inline:")).unwrap() + 1;
    for (i, (kid, why)) in [
        ("ed448", "unsupported curve: \"Ed448\""),
        ("k1", "unsupported curve: \"secp256k1\""),
        ("enc", "key is not meant for signatures (use)"),
    ]
    .into_iter()
    .enumerate()
    {
        let want = format!(
            "warning: {file_arg}:{line}: providers[0].jwks.inline.keys[{}]: key (kid {kid:?}) ignored: {why}",
            i + 1
        );
        assert_eq!(warnings[i], want, "{err}");
    }

    // The usable key serves; the skipped ones are named in the log.
    let p = Portcullis::start(BIN, &text);
    p.wait_ready(Duration::from_secs(10));
    let token = good.mint(json!({"sub": "alice", "aud": "api"}));
    let r = p.verify(&[("authorization", &format!("Bearer {token}"))]);
    assert_eq!(r.status, 200, "{}", p.log());
    let log = p.log();
    assert!(
        log.lines()
            .any(|l| l.contains("warning: ") && l.contains("kid \\\"ed448\\\"")),
        "{log}"
    );

    // A weak key is still the config's mistake: refused, naming the key.
    let weak = json!({"kty": "oct", "kid": "short", "k": b64::encode(b"short")});
    let file = dir.write(
        "weak.yaml",
        &provider_config(&json!({"keys": [good.jwk(), weak]}), ""),
    );
    let out = portcullis(&["check", "--config", file.to_str().unwrap()]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("providers[0].jwks.inline.keys[1]: key too weak"),
        "{err}"
    );

    // No usable key at all is still an error.
    let file = dir.write(
        "none.yaml",
        &provider_config(&json!({"keys": [jwks["keys"][1], jwks["keys"][3]]}), ""),
    );
    let out = portcullis(&["check", "--config", file.to_str().unwrap()]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("providers[0].jwks.inline: holds no usable key"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// Issue 10, bug 2: RFC 9864's fully specified name `Ed25519` was an unknown
/// algorithm (header, JWK `alg`, `algorithms:`, `--alg`). It now names the same
/// verification as `EdDSA` for an Ed25519 key, both ways; `Ed448` is refused as
/// not supported, by name.
#[test]
fn regression_issue10_ed25519_is_the_fully_specified_eddsa() {
    let dir = TempDir::new("regression-ed25519");
    let key = dir.path().join("ed.pem");
    let key_arg = key.to_str().unwrap();
    let out = portcullis(&["keygen", "--alg", "Ed25519", "--out", key_arg]);
    assert!(out.status.success(), "{}", stderr(&out));
    let jwks: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(jwks["keys"][0]["alg"], "Ed25519");
    assert_eq!(jwks["keys"][0]["crv"], "Ed25519");
    let pinned = dir.write("ed25519.json", &jwks.to_string());
    let mut eddsa_jwks = jwks.clone();
    eddsa_jwks["keys"][0]["alg"] = json!("EdDSA");
    let eddsa_pinned = dir.write("eddsa.json", &eddsa_jwks.to_string());

    let out = portcullis(&["jwk", key_arg, "--alg", "Ed25519"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("\"alg\": \"Ed25519\""),
        "{}",
        stdout(&out)
    );

    let mint = |alg: &str| {
        let out = portcullis(&[
            "mint", "--key", key_arg, "--alg", alg, "--iss", ISS, "--aud", "api", "--sub", "alice",
        ]);
        assert!(out.status.success(), "{alg}: {}", stderr(&out));
        stdout(&out).trim().to_owned()
    };
    let ed25519 = mint("Ed25519");
    let header: Value = serde_json::from_slice(
        &b64::decode(ed25519.split('.').next().unwrap().as_bytes()).unwrap(),
    )
    .unwrap();
    assert_eq!(header["alg"], "Ed25519");
    let eddsa = mint("EdDSA");
    // Either name of the token, either name of the key, either name allowed.
    for (token, jwks) in [
        (&ed25519, &pinned),
        (&ed25519, &eddsa_pinned),
        (&eddsa, &pinned),
        (&eddsa, &eddsa_pinned),
    ] {
        for allowed in [None, Some("EdDSA"), Some("Ed25519")] {
            let mut args = vec![
                "verify",
                "--jwks",
                jwks.to_str().unwrap(),
                "--issuer",
                ISS,
                "--audience",
                "api",
            ];
            if let Some(a) = allowed {
                args.extend(["--alg", a]);
            }
            args.push(token);
            let out = portcullis(&args);
            assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        }
    }
    // A provider listing `EdDSA` accepts `Ed25519` tokens, and the other way round.
    for listed in ["EdDSA", "Ed25519"] {
        let config = dir.write(
            "eddsa.yaml",
            &provider_config(&jwks, &format!("    algorithms: [{listed}]\n")),
        );
        for token in [&ed25519, &eddsa] {
            let out = portcullis(&["verify", "--config", config.to_str().unwrap(), token]);
            assert!(out.status.success(), "{listed}: {}", stderr(&out));
        }
    }
    // A provider that allows only ES256 still refuses both names.
    let out = portcullis(&[
        "verify",
        "--jwks",
        pinned.to_str().unwrap(),
        "--alg",
        "ES256",
        &ed25519,
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));

    // Ed448: refused by name, never silently.
    let out = portcullis(&[
        "keygen",
        "--alg",
        "Ed448",
        "--out",
        dir.path().join("x.pem").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("\"Ed448\" is not supported"),
        "{}",
        stderr(&out)
    );
    let config = dir.write(
        "ed448.yaml",
        &provider_config(&jwks, "    algorithms: [Ed448]\n"),
    );
    let out = portcullis(&["check", "--config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("providers[0].algorithms: algorithm \"Ed448\" is not supported"),
        "{}",
        stderr(&out)
    );
    let rest = ed25519.split_once('.').unwrap().1;
    let forged = format!("{}.{rest}", b64::encode(br#"{"alg":"Ed448","kid":"x"}"#));
    let out = portcullis(&["verify", "--jwks", pinned.to_str().unwrap(), &forged]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out).trim(),
        "algorithm_not_allowed: algorithm \"Ed448\" is not supported"
    );
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
