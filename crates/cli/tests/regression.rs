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

fn eventually(timeout: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + timeout;
    while !f() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn reloads(p: &Portcullis, outcome: &str) -> u64 {
    let want = format!("portcullis_config_reloads_total{{outcome=\"{outcome}\"}} ");
    p.metrics()
        .lines()
        .find_map(|l| l.strip_prefix(&want).and_then(|n| n.trim().parse().ok()))
        .unwrap_or(0)
}

/// Issue 18, found already 1: an empty config file was accepted on reload (every
/// request then got 403 `no_rule`; an editor that truncates before writing does
/// that), and `check` passed an empty file. Now a reload is refused by the rules of
/// a start (no listener, no rule), the old config keeps serving, the refusal is
/// logged and counted; `check` agrees with `serve`. Issue 11: the file is watched
/// with `notify`; a save by rename (as editors do) is seen and applied.
#[test]
fn regression_issue18_empty_config_is_refused_on_reload_as_at_start() {
    let dir = TempDir::new("regression-empty-reload");
    let key = Issuer::new(Algorithm::ES256, "k1", ISS);
    let text = provider_config(&json!({"keys": [key.jwk()]}), "");
    let token = key.mint(json!({"sub": "alice", "aud": "api"}));
    let bearer = format!("Bearer {token}");

    // `check` and `serve` agree: an empty file, a rule-less one and a listener-less
    // one are refused by both, with exit 2 and a line naming the field.
    let listen = "listen:\n  admin: 127.0.0.1:9\n";
    for (name, body, field) in [
        ("empty.yaml", String::new(), "listen"),
        ("comments.yaml", "# nothing yet\n".to_owned(), "listen"),
        (
            "no-rules.yaml",
            format!("{listen}providers: []\nrules: []\n"),
            "rules",
        ),
        (
            "no-rules-key.yaml",
            format!("{listen}providers: []\n"),
            "rules",
        ),
        ("no-listen.yaml", text.clone(), "listen"),
    ] {
        let file = dir.write(name, &body);
        for cmd in ["check", "serve"] {
            let out = portcullis(&[cmd, "--config", file.to_str().unwrap()]);
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(2), "{cmd} {name}: {err}");
            assert!(
                err.contains(&format!(": {field}: names no ")),
                "{cmd} {name}: {err}"
            );
        }
    }

    let p = Portcullis::start(BIN, &text);
    p.wait_ready(Duration::from_secs(10));
    assert_eq!(p.verify(&[("authorization", &bearer)]).status, 200);

    // Truncated in place, as an editor does before writing.
    std::fs::write(&p.config, "").unwrap();
    eventually(Duration::from_secs(5), "empty file refused", || {
        reloads(&p, "rejected") == 1
    });
    let r = p.verify(&[("authorization", &bearer)]);
    assert_eq!(r.status, 200, "the old config keeps serving: {}", r.body);
    // A file with listeners but no rule: refused too.
    p.rewrite_config("providers: []\nrules: []\n");
    eventually(Duration::from_secs(5), "rule-less file refused", || {
        reloads(&p, "rejected") == 2
    });
    assert_eq!(p.verify(&[("authorization", &bearer)]).status, 200);
    let log = p.log();
    assert!(
        log.contains("config reload refused") && log.contains("names no rule"),
        "{log}"
    );
    assert_eq!(reloads(&p, "applied"), 0, "{log}");

    // A good file saved by rename is seen (notify watches the folder) and applied.
    let stricter = text.replace(
        "    match: {}\n",
        "    match: {}\n    claims: {groups: [admins]}\n",
    );
    p.rewrite_config(&stricter);
    eventually(Duration::from_secs(5), "rename seen and applied", || {
        p.verify(&[("authorization", &bearer)]).status == 403
    });
    assert_eq!(reloads(&p, "applied"), 1);
    let admin = key.mint(json!({"sub": "root", "aud": "api", "groups": ["admins"]}));
    assert_eq!(
        p.verify(&[("authorization", &format!("Bearer {admin}"))])
            .status,
        200
    );
}

fn metric(p: &Portcullis, name: &str) -> u64 {
    let want = format!("{name} ");
    p.metrics()
        .lines()
        .find_map(|l| l.strip_prefix(&want).and_then(|n| n.trim().parse().ok()))
        .unwrap_or(0)
}

fn jwks_of(issuers: &[&Issuer]) -> String {
    json!({ "keys": issuers.iter().map(|i| i.jwk()).collect::<Vec<_>>() }).to_string()
}

fn remote_provider(name: &str, iss: &str, url: &str, tuning: &str) -> String {
    format!(
        "  - name: {name}\n    issuer: {iss}\n    audiences: [api]\n    jwks: {{uri: \"{url}\", refresh: 1h, min_refresh: 1s, {tuning}}}\n"
    )
}

/// Issue 18, found already 2: during a rotation only the request that won the
/// unknown-`kid` refetch waited for the new keys; others with the new `kid` in the
/// same milliseconds got 401 `key_not_found`. And any unknown `kid` (an
/// attacker's) spent the refetch allowance, so a real rotation right after (or a
/// second rotation right after a first) was refused for up to 30 s. Now every
/// request asking while a refetch is in flight waits on it; a `kid` a fetch did not
/// bring is junk, answered at once with no fetch; a never-seen `kid` gets a fetch
/// after a short minimum interval, within a per-source budget. Two providers, each
/// with its own real JWKS server.
#[test]
fn regression_issue18_rotation_waits_for_every_request_and_junk_kids_do_not_starve_it() {
    const ROT: &str = "https://rotating.example.com";
    const JUNK: &str = "https://junk.example.com";
    let a = Issuer::new(Algorithm::ES256, "a", ROT);
    let b = Issuer::new(Algorithm::ES256, "b", ROT);
    let b2 = Issuer::new(Algorithm::ES256, "b2", ROT);
    let c = Issuer::new(Algorithm::ES256, "c", JUNK);
    let d = Issuer::new(Algorithm::ES256, "d", JUNK);
    let rotating = portcullis_test_util::JwksServer::start(&jwks_of(&[&a]), None);
    let junked = portcullis_test_util::JwksServer::start(&jwks_of(&[&c]), None);
    let text = format!(
        "providers:\n{}{}rules:\n  - name: default\n    match: {{}}\n",
        remote_provider("rot", ROT, &rotating.url(), "timeout: 2s"),
        remote_provider("junk", JUNK, &junked.url(), "timeout: 2s"),
    );
    let p = Portcullis::start(BIN, &text);
    p.wait_ready(Duration::from_secs(10));
    let ta = a.mint(json!({"sub": "alice", "aud": "api"}));
    assert_eq!(
        p.verify(&[("authorization", &format!("Bearer {ta}"))])
            .status,
        200
    );

    // Rotation: 16 requests with the new kid at once all pass, on one refetch.
    rotating.set(&jwks_of(&[&a, &b]));
    let before = rotating.hits();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(16));
    let url = format!("http://127.0.0.1:{}/verify", p.http);
    let threads: Vec<_> = (0..16)
        .map(|i| {
            let token = b.mint(json!({"sub": format!("user-{i}"), "aud": "api"}));
            let (barrier, url) = (barrier.clone(), url.clone());
            std::thread::spawn(move || {
                barrier.wait();
                portcullis_test_util::get(&url, &[("authorization", &format!("Bearer {token}"))])
            })
        })
        .collect();
    for t in threads {
        let r = t.join().unwrap();
        assert_eq!(r.status, 200, "{}\n{}", r.body, p.log());
    }
    assert_eq!(rotating.hits() - before, 1, "one refetch for all of them");

    // A second rotation right after the first: its first request passes (it was
    // held 30 s by the fetch that brought `b`).
    rotating.set(&jwks_of(&[&b, &b2]));
    let t = b2.mint(json!({"sub": "bob", "aud": "api"}));
    let r = p.verify(&[("authorization", &format!("Bearer {t}"))]);
    assert_eq!(r.status, 200, "{}\n{}", r.body, p.log());

    // Junk kids on the other provider: refused; the same junk kid again costs no
    // fetch (a fetch that looked for it did not bring it).
    let stranger = Issuer::new(Algorithm::ES256, "junk-kid", JUNK);
    let before = junked.hits();
    for _ in 0..10 {
        let t = stranger.mint(json!({"sub": "mallory", "aud": "api"}));
        let r = p.verify(&[("authorization", &format!("Bearer {t}"))]);
        assert_eq!(r.status, 401);
        assert_eq!(r.json()["reason"], "key_not_found");
    }
    assert_eq!(junked.hits() - before, 1, "a junk kid is looked for once");
    // Many different junk kids: each refused, the fetches they cost are bounded by
    // the budget (a burst, then one per REFILL).
    let started = std::time::Instant::now();
    for i in 0..40 {
        let t = Issuer::new(Algorithm::ES256, &format!("junk-{i}"), JUNK)
            .mint(json!({"sub": "mallory", "aud": "api"}));
        let r = p.verify(&[("authorization", &format!("Bearer {t}"))]);
        assert_eq!(r.status, 401);
        assert_eq!(r.json()["reason"], "key_not_found");
    }
    let budget = 1 + 10 + started.elapsed().as_secs() / 3 + 1;
    let spent = junked.hits() - before;
    assert!(spent as u64 <= budget, "{spent} fetches (budget {budget})");
    // A real rotation right after: its kid passes (with the budget spent, within the
    // refill: 3 s).
    junked.set(&jwks_of(&[&c, &d]));
    let td = d.mint(json!({"sub": "dave", "aud": "api"}));
    eventually(Duration::from_secs(5), "the rotated kid passes", || {
        p.verify(&[("authorization", &format!("Bearer {td}"))])
            .status
            == 200
    });
}

/// Issue 18, found already 3: a reload that only changed a key source's tuning
/// (`jwks.timeout`) threw the last good keys away: with the JWKS endpoint down,
/// every token was then refused and `/readyz` was 503 until it returned. Now keys
/// carry over when the source reads the same place.
#[test]
fn regression_issue18_tuning_only_reload_keeps_the_last_good_keys() {
    let a = Issuer::new(Algorithm::ES256, "a", ISS);
    let jwks = portcullis_test_util::JwksServer::start(&jwks_of(&[&a]), None);
    let text = |timeout: &str| {
        format!(
            "providers:\n{}rules:\n  - name: default\n    match: {{}}\n",
            remote_provider("corp", ISS, &jwks.url(), &format!("timeout: {timeout}"))
        )
    };
    let p = Portcullis::start(BIN, &text("2s"));
    p.wait_ready(Duration::from_secs(10));
    let t = a.mint(json!({"sub": "alice", "aud": "api"}));
    assert_eq!(
        p.verify(&[("authorization", &format!("Bearer {t}"))])
            .status,
        200
    );

    jwks.set_down(true);
    let hits = jwks.hits();
    p.rewrite_config(&text("3s"));
    eventually(Duration::from_secs(5), "reload applied", || {
        reloads(&p, "applied") == 1
    });
    // The new source has tried (and failed) to fetch.
    eventually(Duration::from_secs(5), "the new source fetched", || {
        jwks.hits() > hits
    });
    let fresh = a.mint(json!({"sub": "carol", "aud": "api"}));
    let r = p.verify(&[("authorization", &format!("Bearer {fresh}"))]);
    assert_eq!(r.status, 200, "{}\n{}", r.body, p.log());
    let ready = portcullis_test_util::get(&format!("http://127.0.0.1:{}/readyz", p.admin), &[]);
    assert_eq!(ready.status, 200, "{}", ready.body);
}

/// Issue 18, found already 4: every refresh emptied the token cache (the key-set
/// generation bumped on every store), even when the key set did not change. Now
/// only a changed set bumps it: a cached token stays cached across refreshes.
#[test]
fn regression_issue18_refresh_with_the_same_keys_keeps_the_token_cache() {
    let a = Issuer::new(Algorithm::ES256, "a", ISS);
    // max-age=1 with min_refresh 1s: a refresh every second.
    let jwks = portcullis_test_util::JwksServer::start(&jwks_of(&[&a]), Some(1));
    let p = Portcullis::start(
        BIN,
        &format!(
            "providers:\n{}rules:\n  - name: default\n    match: {{}}\n",
            remote_provider("corp", ISS, &jwks.url(), "timeout: 2s")
        ),
    );
    p.wait_ready(Duration::from_secs(10));
    let t = a.mint(json!({"sub": "alice", "aud": "api"}));
    let auth = format!("Bearer {t}");
    assert_eq!(p.verify(&[("authorization", &auth)]).status, 200);
    let misses = metric(&p, "portcullis_token_cache_misses_total");
    let hits = metric(&p, "portcullis_token_cache_hits_total");
    let fetched = jwks.hits();
    eventually(Duration::from_secs(10), "two refreshes", || {
        jwks.hits() >= fetched + 2
    });
    assert_eq!(p.verify(&[("authorization", &auth)]).status, 200);
    assert_eq!(
        metric(&p, "portcullis_token_cache_misses_total"),
        misses,
        "no second verification"
    );
    assert_eq!(metric(&p, "portcullis_token_cache_hits_total"), hits + 1);
    // A changed set still drops what its old keys verified: the key leaves.
    let b = Issuer::new(Algorithm::ES256, "b", ISS);
    jwks.set(&jwks_of(&[&b]));
    eventually(Duration::from_secs(10), "removed key refused", || {
        p.verify(&[("authorization", &auth)]).status == 401
    });
}

/// A JSON log line's field (top level or under `fields`).
fn field<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
    v.get(name)
        .or_else(|| v.get("fields").and_then(|f| f.get(name)))
}

fn log_lines(p: &Portcullis) -> Vec<Value> {
    p.log()
        .lines()
        .filter_map(|l| serde_json::from_str(l.trim()).ok())
        .collect()
}

/// One request on `stream` (kept alive): the status and the lower-cased head.
fn raw_get(stream: &mut std::net::TcpStream, path: &str, auth: &str) -> (u16, String) {
    use std::io::{Read as _, Write as _};
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: test\r\nAuthorization: {auth}\r\n\r\n"
    )
    .unwrap();
    let mut buf = Vec::new();
    let mut byte = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = stream.read(&mut byte).unwrap();
        assert!(
            n > 0,
            "connection closed: {}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&byte[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().unwrap());
    while buf.len() < head_end + length {
        let n = stream.read(&mut byte).unwrap();
        assert!(n > 0);
        buf.extend_from_slice(&byte[..n]);
    }
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap();
    (status, head)
}

/// Issue 18, found already 6: SIGTERM had no drain grace: `/readyz` was not turned
/// to 503 first and keep-alive connections saw resets. Now readiness turns off at
/// once, every listener keeps serving for `shutdown_grace` (HTTP/1 responses ask
/// keep-alive clients to close), then the listeners drain and the process exits 0.
#[test]
fn regression_issue18_sigterm_turns_readiness_off_serves_through_the_grace_then_exits_zero() {
    let key = Issuer::new(Algorithm::ES256, "k1", ISS);
    let text = provider_config(&json!({"keys": [key.jwk()]}), "");
    let mut p = Portcullis::start(BIN, &format!("shutdown_grace: 3s\n{text}"));
    p.wait_ready(Duration::from_secs(10));
    let auth = format!("Bearer {}", key.mint(json!({"sub": "alice", "aud": "api"})));
    let mut kept = std::net::TcpStream::connect(("127.0.0.1", p.http)).unwrap();
    kept.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let (status, head) = raw_get(&mut kept, "/verify", &auth);
    assert_eq!(status, 200);
    assert!(!head.contains("connection: close"), "{head}");

    p.child.signal("TERM");
    let readyz = format!("http://127.0.0.1:{}/readyz", p.admin);
    eventually(Duration::from_secs(2), "/readyz 503", || {
        portcullis_test_util::get(&readyz, &[]).status == 503
    });
    // Still serving: the kept connection (asked to close after this answer) and new ones.
    let (status, head) = raw_get(&mut kept, "/verify", &auth);
    assert_eq!(status, 200, "{}", p.log());
    assert!(head.contains("connection: close"), "{head}");
    assert_eq!(p.verify(&[("authorization", &auth)]).status, 200);
    assert!(!p.child.has_exited(), "the grace is not over");

    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !p.child.has_exited() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = p.child.stop(Duration::from_secs(1)).expect("exited");
    assert_eq!(status.code(), Some(0), "{}", p.log());
    let log = p.log();
    assert!(log.contains("serving on for the grace period"), "{log}");
}

/// Issue 18, found already 7: a restart served before any keys were loaded, so the
/// first requests with valid tokens got 401. `startup.wait_for_keys` holds the
/// listeners back (bounded) until every provider has keys.
#[test]
fn regression_issue18_startup_waits_for_first_keys() {
    let key = Issuer::new(Algorithm::ES256, "k1", ISS);
    let jwks = portcullis_test_util::JwksServer::start(&jwks_of(&[&key]), None);
    jwks.set_down(true);
    let text = format!(
        "startup: {{wait_for_keys: 10s}}\nproviders:\n{}rules:\n  - name: default\n    match: {{}}\n",
        remote_provider("corp", ISS, &jwks.url(), "timeout: 2s")
    );
    let up = {
        let jwks_hits = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = jwks_hits.clone();
        let server = &jwks;
        std::thread::scope(|s| {
            s.spawn(move || {
                // Up again after the first failed fetches.
                while server.hits() < 2 {
                    std::thread::sleep(Duration::from_millis(20));
                }
                server.set_down(false);
                flag.store(true, std::sync::atomic::Ordering::SeqCst);
            });
            let p = Portcullis::start(BIN, &text);
            (p, jwks_hits.load(std::sync::atomic::Ordering::SeqCst))
        })
    };
    let (p, was_up) = up;
    assert!(was_up, "listening only after the key server came back");
    // The very first request passes, and /readyz is 200 from the first answer on.
    let token = key.mint(json!({"sub": "alice", "aud": "api"}));
    let r = p.verify(&[("authorization", &format!("Bearer {token}"))]);
    assert_eq!(r.status, 200, "{}\n{}", r.body, p.log());
    let ready = portcullis_test_util::get(&format!("http://127.0.0.1:{}/readyz", p.admin), &[]);
    assert_eq!(ready.status, 200);
    assert!(p.log().contains("every provider has keys"), "{}", p.log());
}

/// Issue 18, found already 8: deny logs flooded at 10–20k lines/s under a bad-token
/// flood. Now at most 20 lines per second per reason, then one summary line per
/// reason and second (`suppressed K denies for reason R`); the metrics stay exact.
#[test]
fn regression_issue18_deny_logs_are_rate_limited_with_counts() {
    let key = Issuer::new(Algorithm::ES256, "k1", ISS);
    let p = Portcullis::start(BIN, &provider_config(&json!({"keys": [key.jwk()]}), ""));
    p.wait_ready(Duration::from_secs(10));
    // Eight clients at once, each on one keep-alive connection.
    const CLIENTS: u64 = 8;
    const EACH: u64 = 100;
    const FLOOD: u64 = CLIENTS * EACH;
    let started = std::time::Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let port = p.http;
            std::thread::spawn(move || {
                let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
                stream
                    .set_read_timeout(Some(Duration::from_secs(10)))
                    .unwrap();
                for i in 0..EACH {
                    let (status, _) =
                        raw_get(&mut stream, "/verify", &format!("Bearer junk{c}x{i}"));
                    assert_eq!(status, 401);
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    let seconds = started.elapsed().as_secs() + 2;
    let counted = || {
        let want = r#"portcullis_decisions_total{frontend="forward_auth",result="deny",reason="token_malformed""#;
        p.metrics()
            .lines()
            .filter(|l| l.starts_with(want))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum::<u64>()
    };
    assert_eq!(counted(), FLOOD, "every deny counted");
    let tally = || {
        let lines = log_lines(&p);
        let logged = lines
            .iter()
            .filter(|v| field(v, "message").and_then(Value::as_str) == Some("deny"))
            .count() as u64;
        let suppressed: u64 = lines
            .iter()
            .filter(|v| {
                field(v, "message")
                    .and_then(Value::as_str)
                    .is_some_and(|m| {
                        m.starts_with("suppressed ")
                            && m.ends_with(" denies for reason token_malformed")
                    })
            })
            .filter_map(|v| field(v, "suppressed").and_then(Value::as_u64))
            .sum();
        (logged, suppressed)
    };
    // The summary of the last second comes with the next tick.
    eventually(
        Duration::from_secs(5),
        "every deny logged or summarised",
        || {
            let (logged, suppressed) = tally();
            logged + suppressed == FLOOD
        },
    );
    let (logged, suppressed) = tally();
    // At most 20 a second (the flood's seconds, and the ones it straddles).
    assert!(logged <= 20 * seconds, "{logged} deny lines in {seconds}s");
    assert!(suppressed > 0, "{logged} lines, none left out");
}

/// Whether the peer closed `stream` (EOF or reset) within its read timeout.
fn closed(stream: &mut std::net::TcpStream) -> bool {
    use std::io::Read as _;
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => matches!(
            e.kind(),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
        ),
    }
}

/// Issue 18, found already 5: idle connections were never closed; with thousands
/// of idle keep-alive connections held open, a new client's request timed out while
/// `/healthz` stayed 200. Now a client has `connections.header_read_timeout` from
/// accept to send a request head, and at `connections.max` the connection idle the
/// longest is closed to make room.
#[test]
fn regression_issue18_idle_connections_are_shed_and_a_new_client_is_answered() {
    use std::net::TcpStream;
    let key = Issuer::new(Algorithm::ES256, "k1", ISS);
    let text = provider_config(&json!({"keys": [key.jwk()]}), "");
    let p = Portcullis::start(
        BIN,
        &format!("connections: {{max: 200, header_read_timeout: 3s, idle_timeout: 60s}}\n{text}"),
    );
    p.wait_ready(Duration::from_secs(10));
    let auth = format!("Bearer {}", key.mint(json!({"sub": "alice", "aud": "api"})));
    let connect = || {
        let s = TcpStream::connect(("127.0.0.1", p.http)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
        s
    };
    // Keep-alive connections, each served once, then idle.
    let mut kept: Vec<TcpStream> = (0..20)
        .map(|_| {
            let mut s = connect();
            assert_eq!(raw_get(&mut s, "/verify", &auth).0, 200);
            s
        })
        .collect();
    // Three times the cap more that send nothing. (3,000 against a cap of 1,000 failed
    // here on a loaded machine, in 3 of 4 runs beside two busy loops, the oldest kept
    // connection never shed. The kernel counted 13-17 listen overflows per such run
    // (`nstat TcpExtListenOverflows`; 1-3 with these sizes, 3 of 3 passing). The
    // likely chain, not traced further: connects past the backlog are retried a second
    // later, the first silent ones reach their header timeout meanwhile, and the cap
    // is never reached.)
    let mut silent: Vec<TcpStream> = (0..600).map(|_| connect()).collect();
    // A new client still gets its answer.
    let mut fresh = connect();
    let (status, _) = raw_get(&mut fresh, "/verify", &auth);
    assert_eq!(status, 200, "{}", p.log());
    // The connections idle the longest made room: the first kept ones are closed.
    assert!(closed(&mut kept[0]), "the oldest idle connection was shed");
    // A silent connection that was not shed is closed by the header timeout.
    let last = silent.last_mut().unwrap();
    assert!(closed(last), "a client that sends nothing is closed");
    // The server serves on.
    let mut after = connect();
    assert_eq!(raw_get(&mut after, "/verify", &auth).0, 200);
}

/// Issue 18 (the proxy listener): the `http` and `admin` listeners got header and
/// idle timeouts from accept and a cap that sheds the oldest idle connection, but
/// the `proxy` listener kept hyper's header timeout only, never closed idle
/// keep-alive connections, and let clients over its cap wait in the accept queue.
/// Now it holds connections within the same `connections:` limits. Slowloris, silent
/// and idle clients through raw sockets; a new client is still answered.
#[test]
fn regression_issue18_the_proxy_listener_closes_slow_and_idle_connections_and_sheds_at_the_cap() {
    use std::io::Write as _;
    use std::net::TcpStream;
    let proxy = portcullis_test_util::free_port();
    let p = Portcullis::start(
        BIN,
        &format!(
            "  proxy: 127.0.0.1:{proxy}\nconnections: {{max: 50, header_read_timeout: 1s, idle_timeout: 2s}}\nproviders: []\nrules:\n  - name: open\n    match: {{}}\n    allow: anonymous\n"
        ),
    );
    p.wait_ready(Duration::from_secs(10));
    let connect = || {
        let s = TcpStream::connect(("127.0.0.1", proxy)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
        s
    };
    // Answered: the rule has no upstream (404 `no_upstream`), which is an answer.
    let mut first = connect();
    let (status, _) = raw_get(&mut first, "/", "Bearer none");
    assert_eq!(status, 404, "{}", p.log());

    // Slowloris: part of a head, then nothing. Closed by the header timeout.
    let mut slow = connect();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: test\r\nX-Slow: ")
        .unwrap();
    // Silent: connects and sends nothing.
    let mut silent = connect();
    let started = std::time::Instant::now();
    assert!(closed(&mut slow), "a partial head is cut off");
    assert!(closed(&mut silent), "a client that sends nothing is closed");
    assert!(started.elapsed() < Duration::from_secs(6));
    // Idle after a request: closed by the idle timeout.
    assert!(
        closed(&mut first),
        "an idle keep-alive connection is closed"
    );

    // At the cap, the connection idle the longest makes room for a new client.
    let mut kept: Vec<TcpStream> = (0..50)
        .map(|_| {
            let mut s = connect();
            assert_eq!(raw_get(&mut s, "/", "Bearer none").0, 404);
            s
        })
        .collect();
    let mut fresh = connect();
    assert_eq!(
        raw_get(&mut fresh, "/", "Bearer none").0,
        404,
        "{}",
        p.log()
    );
    assert!(closed(&mut kept[0]), "the oldest idle connection was shed");
    let mut after = connect();
    assert_eq!(raw_get(&mut after, "/", "Bearer none").0, 404);
}
