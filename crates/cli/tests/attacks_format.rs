//! The attack suite, part 2 (issue #5; the table is in SECURITY.md): token format.
//! JWE, JSON serialization and polyglots, nested tokens, `crit`, `b64`, duplicate
//! members, non-canonical base64url, oversized and deeply nested tokens; through
//! `/verify` and Envoy ext_authz gRPC. Setup and harness: `attacks_support.rs`.
//!
//! Peers: Portcullis, and the peers' Python (grpcio, xds-protos, cryptography).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

#[path = "attacks_support.rs"]
mod support;

use portcullis_jose::b64;
use portcullis_test_util::Issuer;
use serde_json::json;

use support::*;

/// Every attack of this file, by test name, with its cases.
const ATTACKS: Attacks = &[
    ("genuine_tokens_are_allowed", genuine_cases),
    ("jwe_and_encryption_headers_are_refused", jwe),
    (
        "json_serialization_and_polyglot_tokens_are_refused",
        serializations,
    ),
    ("nested_jwt_cty_is_refused", nested),
    ("crit_headers_are_refused", crit),
    ("unencoded_payload_b64_false_is_refused", b64_false),
    ("duplicate_members_are_refused", duplicates),
    ("non_canonical_base64url_is_refused", non_canonical),
    ("oversized_tokens_dots_and_deep_json_are_refused", oversized),
];

/// Controls: the same server lets genuine tokens through, so every deny below is the
/// attack's doing.
#[test]
fn genuine_tokens_are_allowed() {
    run(ATTACKS, "genuine_tokens_are_allowed");
}

#[test]
fn jwe_and_encryption_headers_are_refused() {
    run(ATTACKS, "jwe_and_encryption_headers_are_refused");
}

fn jwe(f: &Fixture) -> Vec<Case> {
    let payload = claims(&[("sub", r#""admin""#)]);
    let parts = |header_json: &str| {
        format!(
            "{}.{}.{}.{}.{}",
            seg(header_json),
            b64::encode(&[7; 256]),
            b64::encode(&[1; 12]),
            b64::encode(payload.as_bytes()),
            b64::encode(&[2; 16])
        )
    };
    vec![
        deny(
            "JWE RSA-OAEP-256/A256GCM, 5 segments",
            parts(r#"{"alg":"RSA-OAEP-256","enc":"A256GCM","kid":"rs-1"}"#),
            MALFORMED,
        ),
        deny(
            "JWE dir/A128GCM, 5 segments",
            parts(r#"{"alg":"dir","enc":"A128GCM"}"#),
            MALFORMED,
        ),
        deny("five empty segments", "....".to_owned(), MALFORMED),
        deny("a.b.c.d.e", "a.b.c.d.e".to_owned(), MALFORMED),
        deny(
            "enc in a signed 3-segment token",
            rs_signed(f, r#","enc":"A256GCM""#, &payload),
            MALFORMED,
        ),
        deny(
            "zip in a signed token",
            rs_signed(f, r#","zip":"DEF""#, &payload),
            MALFORMED,
        ),
        deny(
            "alg dir in 3 segments",
            with_sig(r#"{"alg":"dir","kid":"rs-1"}"#, &payload, b""),
            ALGORITHM,
        ),
        deny(
            "alg RSA-OAEP in 3 segments",
            with_sig(r#"{"alg":"RSA-OAEP","kid":"rs-1"}"#, &payload, &[1; 256]),
            ALGORITHM,
        ),
    ]
}

#[test]
fn json_serialization_and_polyglot_tokens_are_refused() {
    run(
        ATTACKS,
        "json_serialization_and_polyglot_tokens_are_refused",
    );
}

fn serializations(f: &Fixture) -> Vec<Case> {
    let alice = claims(&[("sub", r#""alice""#)]);
    let admin = claims(&[("sub", r#""admin""#)]);
    let genuine = rs_signed(f, "", &alice);
    let (h, p, s) = split3(&genuine);
    let forged_p = seg(&admin);
    vec![
        deny(
            "JWS JSON general serialization",
            json!({"payload": p, "signatures": [{"protected": h, "signature": s}]}).to_string(),
            MALFORMED,
        ),
        deny(
            "JWS JSON flattened serialization",
            json!({"payload": p, "protected": h, "signature": s}).to_string(),
            MALFORMED,
        ),
        deny(
            "flattened serialization with a forged payload",
            json!({"payload": forged_p, "protected": h, "signature": s}).to_string(),
            MALFORMED,
        ),
        // CVE-2022-39227 (python-jwt): a JSON document whose first member name holds
        // a compact token with a forged payload.
        deny(
            "polyglot compact/JSON token (CVE-2022-39227)",
            format!(
                r#"{{"  {h}.{forged_p}.":"","protected":"{h}", "payload":"{p}","protected":"{h}","payload":"{p}","signature":"{s}"}}"#
            ),
            MALFORMED,
        ),
        deny(
            "compact token followed by JSON",
            format!(r#"{genuine}{{"payload":"{forged_p}"}}"#),
            MALFORMED,
        ),
        deny(
            "genuine token with a forged payload appended",
            format!("{genuine}.{forged_p}"),
            MALFORMED,
        ),
        deny(
            "JSON serialization base64url-encoded as one segment",
            b64::encode(
                json!({"payload": p, "protected": h, "signature": s})
                    .to_string()
                    .as_bytes(),
            ),
            MALFORMED,
        ),
    ]
}

#[test]
fn nested_jwt_cty_is_refused() {
    run(ATTACKS, "nested_jwt_cty_is_refused");
}

fn nested(f: &Fixture) -> Vec<Case> {
    let inner = f.mallory.mint(json!({"sub": "admin", "aud": AUD}));
    let inner_json = json!(inner).to_string();
    let payload = claims(&[]);
    vec![
        deny(
            "cty JWT over claims",
            rs_signed(f, r#","cty":"JWT""#, &payload),
            MALFORMED,
        ),
        deny(
            "cty jwt (lower case)",
            rs_signed(f, r#","cty":"jwt""#, &payload),
            MALFORMED,
        ),
        deny(
            "cty JWT with a nested token as payload",
            signed(
                &f.rs.key,
                &header("RS256", Some("rs-1"), r#","cty":"JWT""#),
                &inner,
            ),
            MALFORMED,
        ),
        // RFC 7515 §4.1.10: "application/JWT" is the same media type as "JWT". The
        // payload is then a token, not a claims object: refused either way.
        deny(
            "cty application/JWT with a nested token as payload",
            signed(
                &f.rs.key,
                &header("RS256", Some("rs-1"), r#","cty":"application/JWT""#),
                &inner,
            ),
            MALFORMED,
        ),
        deny(
            "nested token as a JSON string payload",
            signed(&f.rs.key, &header("RS256", Some("rs-1"), ""), &inner_json),
            MALFORMED,
        ),
        deny(
            "cty not a string",
            rs_signed(f, r#","cty":["JWT"]"#, &payload),
            MALFORMED,
        ),
    ]
}

#[test]
fn crit_headers_are_refused() {
    run(ATTACKS, "crit_headers_are_refused");
}

fn crit(f: &Fixture) -> Vec<Case> {
    let payload = claims(&[]);
    [
        r#","crit":["x-unknown"],"x-unknown":1"#,
        r#","crit":["exp"],"exp":1"#,
        r#","crit":[]"#,
        r#","crit":"x-unknown","x-unknown":1"#,
        r#","crit":null"#,
        r#","crit":["b64"],"b64":true"#,
        r#","crit":["x-unknown"]"#,
    ]
    .iter()
    .map(|extra| {
        deny(
            format!("genuinely signed, header {extra}"),
            rs_signed(f, extra, &payload),
            MALFORMED,
        )
    })
    .collect()
}

#[test]
fn unencoded_payload_b64_false_is_refused() {
    run(ATTACKS, "unencoded_payload_b64_false_is_refused");
}

fn b64_false(f: &Fixture) -> Vec<Case> {
    let payload = claims(&[("sub", r#""admin""#)]);
    let with_crit = header("RS256", Some("rs-1"), r#","b64":false,"crit":["b64"]"#);
    // RFC 7797: the signing input is the header segment, a dot and the raw payload.
    let raw = sign_segments(&f.rs.key, &seg(&with_crit), &payload);
    // The raw payload holds dots (the issuer URL), so the token has more than three
    // segments; detached, it has three.
    let detached = {
        let h = raw.split('.').next().unwrap();
        let s = raw.rsplit('.').next().unwrap();
        format!("{h}..{s}")
    };
    vec![
        deny(
            "b64 false with crit, payload unencoded (RFC 7797)",
            raw,
            MALFORMED,
        ),
        deny("b64 false with crit, payload detached", detached, MALFORMED),
        deny(
            "b64 false with crit, payload encoded",
            signed(&f.rs.key, &with_crit, &payload),
            MALFORMED,
        ),
        deny(
            "b64 false without crit",
            rs_signed(f, r#","b64":false"#, &payload),
            MALFORMED,
        ),
        deny(
            "b64 true",
            rs_signed(f, r#","b64":true"#, &payload),
            MALFORMED,
        ),
    ]
}

#[test]
fn duplicate_members_are_refused() {
    run(ATTACKS, "duplicate_members_are_refused");
}

fn duplicates(f: &Fixture) -> Vec<Case> {
    let now = Issuer::now();
    let payload = claims(&[]);
    let base = claims(&[("sub", r#""alice""#)]);
    let dup = |extra: &str| format!("{},{extra}}}", &base[..base.len() - 1]);
    vec![
        deny(
            "header alg twice (RS256 then none)",
            with_sig(
                r#"{"alg":"RS256","alg":"none","kid":"rs-1"}"#,
                &payload,
                b"",
            ),
            MALFORMED,
        ),
        deny(
            "header alg twice (none then RS256), genuinely signed",
            signed(
                &f.rs.key,
                r#"{"alg":"none","alg":"RS256","kid":"rs-1"}"#,
                &payload,
            ),
            MALFORMED,
        ),
        deny(
            "header alg twice, one escaped (\\u0061lg)",
            signed(
                &f.rs.key,
                r#"{"alg":"RS256","\u0061lg":"HS256","kid":"rs-1"}"#,
                &payload,
            ),
            MALFORMED,
        ),
        deny(
            "header kid twice",
            signed(
                &f.rs.key,
                r#"{"alg":"RS256","kid":"rs-1","kid":"ec-1"}"#,
                &payload,
            ),
            MALFORMED,
        ),
        deny(
            "payload sub twice",
            rs_signed(f, "", &dup(r#""sub":"admin""#)),
            MALFORMED,
        ),
        deny(
            "payload sub twice, one escaped (\\u0073ub)",
            rs_signed(f, "", &dup(r#""\u0073ub":"admin""#)),
            MALFORMED,
        ),
        deny(
            "payload exp twice (past then future)",
            rs_signed(
                f,
                "",
                &format!(
                    r#"{{"iss":"{ISS}","aud":"{AUD}","sub":"alice","exp":{},"exp":{}}}"#,
                    now - 3600,
                    now + 3600
                ),
            ),
            MALFORMED,
        ),
        deny(
            "payload aud twice",
            rs_signed(f, "", &dup(r#""aud":"other""#)),
            MALFORMED,
        ),
        deny(
            "payload iss twice",
            rs_signed(f, "", &dup(r#""iss":"https://evil.example""#)),
            MALFORMED,
        ),
        deny(
            "duplicate inside a nested object",
            rs_signed(f, "", &dup(r#""realm":{"role":"user","role":"admin"}"#)),
            MALFORMED,
        ),
    ]
}

#[test]
fn non_canonical_base64url_is_refused() {
    run(ATTACKS, "non_canonical_base64url_is_refused");
}

const URL_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Sets the lowest bit of a segment's last character: a non-zero trailing bit
/// when the segment's length is not a multiple of 4.
fn flip_trailing_bit(segment: &str) -> String {
    assert_ne!(segment.len() % 4, 0, "{segment} has no trailing bits");
    let last = segment.as_bytes()[segment.len() - 1];
    let v = URL_ALPHABET.iter().position(|c| *c == last).unwrap();
    let flipped = URL_ALPHABET[v ^ 1] as char;
    format!("{}{flipped}", &segment[..segment.len() - 1])
}

fn pad(segment: &str) -> String {
    format!("{segment}{}", "=".repeat((4 - segment.len() % 4) % 4))
}

fn std_alphabet(segment: &str) -> String {
    segment.replace('-', "+").replace('_', "/")
}

fn non_canonical(f: &Fixture) -> Vec<Case> {
    // A header and a payload whose encodings have trailing bits and use - or _.
    let mut filler = String::new();
    let (h, p) = loop {
        let h = seg(&header(
            "RS256",
            Some("rs-1"),
            &format!(r#","x":"{filler}""#),
        ));
        let p = seg(&claims(&[("note", &format!(r#""???>>>{filler}""#))]));
        if !h.len().is_multiple_of(4)
            && !p.len().is_multiple_of(4)
            && (p.contains('-') || p.contains('_'))
        {
            break (h, p);
        }
        filler.push('a');
    };
    let genuine = sign_segments(&f.rs.key, &h, &p);
    let s = split3(&genuine).2.to_owned();
    let ec_genuine = signed(&f.ec.key, &header("ES256", Some("ec-1"), ""), &claims(&[]));
    let (eh, ep, es) = split3(&ec_genuine);
    let mut out = vec![
        // Each variant is signed as sent, so only the encoding check can refuse it.
        deny(
            "header padded with =",
            sign_segments(&f.rs.key, &pad(&h), &p),
            MALFORMED,
        ),
        deny(
            "payload padded with =",
            sign_segments(&f.rs.key, &h, &pad(&p)),
            MALFORMED,
        ),
        deny(
            "payload in the standard alphabet (+ /)",
            sign_segments(&f.rs.key, &h, &std_alphabet(&p)),
            MALFORMED,
        ),
        deny(
            "header with a non-zero trailing bit",
            sign_segments(&f.rs.key, &flip_trailing_bit(&h), &p),
            MALFORMED,
        ),
        deny(
            "payload with a non-zero trailing bit",
            sign_segments(&f.rs.key, &h, &flip_trailing_bit(&p)),
            MALFORMED,
        ),
        deny(
            "payload with a space inside",
            sign_segments(&f.rs.key, &h, &format!("{} {}", &p[..8], &p[8..])),
            MALFORMED,
        ),
        deny(
            "payload with a tab inside",
            sign_segments(&f.rs.key, &h, &format!("{}\t{}", &p[..8], &p[8..])),
            MALFORMED,
        ),
        deny(
            "signature padded with =",
            format!("{h}.{p}.{}", pad(&s)),
            MALFORMED,
        ),
        deny(
            "ES256 signature with a non-zero trailing bit",
            format!("{eh}.{ep}.{}", flip_trailing_bit(es)),
            MALFORMED,
        ),
        deny(
            "signature with a space inside",
            format!("{h}.{p}.{} {}", &s[..10], &s[10..]),
            MALFORMED,
        ),
        deny(
            "signature with a % escape",
            format!("{h}.{p}.{}%3D", &s),
            MALFORMED,
        ),
    ];
    // A standard-alphabet signature needs a - or _ in the genuine one (almost always).
    if s.contains('-') || s.contains('_') {
        out.push(deny(
            "signature in the standard alphabet (+ /)",
            format!("{h}.{p}.{}", std_alphabet(&s)),
            MALFORMED,
        ));
    }
    out
}

/// Oversized tokens, 10^6 dots and deep JSON. The 10^6-dot token (1 MB) goes through
/// gRPC in the table; over HTTP it is larger than the listener's 64 KiB request head,
/// so hyper refuses it before Portcullis sees it: that must be a refusal too.
#[test]
fn oversized_tokens_dots_and_deep_json_are_refused() {
    run(ATTACKS, "oversized_tokens_dots_and_deep_json_are_refused");
    let f = fixture();
    let dots = ".".repeat(1_000_000);
    let a = http_verify(f.p.http, "/verify", &dots);
    // 431 Request Header Fields Too Large, from the listener's 64 KiB request-head
    // limit: refused before any token parsing (the contract's 401/403 applies to
    // requests that reach the decision; proxies cap headers well below this anyway).
    assert_eq!(a.status, 431, "10^6 dots over HTTP: {a:?}");
    // The server is still answering.
    let ok = f.rs.mint(json!({"sub": "alice", "aud": AUD}));
    assert_eq!(http_verify(f.p.http, "/verify", &ok).status, 200);
}

fn oversized(f: &Fixture) -> Vec<Case> {
    let big_claim = format!(r#""{}""#, "A".repeat(20_000));
    let deep = |depth: usize| format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
    let deep_objects = |depth: usize| format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth));
    let deep_payload = claims(&[("x", &deep(5000))]);
    vec![
        deny(
            "20 KB token, genuinely signed (limit 16 KiB)",
            rs_signed(f, "", &claims(&[("pad", &big_claim)])),
            MALFORMED,
        ),
        deny("15,000 dots", ".".repeat(15_000), MALFORMED),
        deny("60,000 dots", ".".repeat(60_000), MALFORMED),
        deny("10^6 dots", ".".repeat(1_000_000), MALFORMED).grpc_only(),
        deny(
            "header nested 5,000 arrays deep",
            with_sig(
                &header("RS256", Some("rs-1"), &format!(r#","x":{}"#, deep(5000))),
                &claims(&[]),
                b"",
            ),
            MALFORMED,
        ),
        deny(
            "header nested 1,500 objects deep",
            with_sig(
                &header(
                    "RS256",
                    Some("rs-1"),
                    &format!(r#","x":{}"#, deep_objects(1500)),
                ),
                &claims(&[]),
                b"",
            ),
            MALFORMED,
        ),
        deny(
            "header nested 17 deep (one past the limit)",
            with_sig(
                &header("RS256", Some("rs-1"), &format!(r#","x":{}"#, deep(16))),
                &claims(&[]),
                b"",
            ),
            MALFORMED,
        ),
        deny(
            "payload nested 5,000 deep, genuinely signed",
            rs_signed(f, "", &deep_payload),
            MALFORMED,
        ),
        // Unsigned bytes are never parsed: a forged deep payload fails on its signature.
        deny(
            "payload nested 5,000 deep, forged signature",
            with_sig(&header("RS256", Some("rs-1"), ""), &deep_payload, &[1; 256]),
            SIGNATURE,
        ),
        deny(
            "an 11,000-character alg",
            with_sig(&format!(r#"{{"alg":"{}"}}"#, "A".repeat(11_000)), "{}", b""),
            ALGORITHM,
        ),
    ]
}
