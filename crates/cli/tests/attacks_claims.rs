//! The attack suite, part 3 (issue #5; the table is in SECURITY.md): claims and
//! token types. Time claims of the wrong type or range, missing `exp`, `aud` and
//! `iss` near-misses, `typ` confusion, an ID token sent to an API; through `/verify`
//! and Envoy ext_authz gRPC. Setup and harness: `attacks_support.rs`.
//!
//! Peers: Portcullis, and the peers' Python (grpcio, xds-protos, cryptography).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

#[path = "attacks_support.rs"]
mod support;

use portcullis_test_util::Issuer;
use serde_json::json;

use support::*;

/// Every attack of this file, by test name, with its cases.
const ATTACKS: Attacks = &[
    ("genuine_tokens_are_allowed", genuine_cases),
    (
        "time_claims_of_wrong_type_or_range_are_refused",
        time_claims,
    ),
    ("missing_exp_is_refused", missing_exp),
    ("expired_and_not_yet_valid_tokens_are_refused", expired),
    ("audience_shapes_and_near_misses_are_refused", audiences),
    ("issuer_near_misses_are_refused", issuers),
    (
        "typ_confusion_is_refused_where_at_jwt_is_expected",
        typ_confusion,
    ),
    ("id_token_for_another_audience_is_refused", id_token),
];

/// Controls: the same server lets genuine tokens through, so every deny below is the
/// attack's doing.
#[test]
fn genuine_tokens_are_allowed() {
    run(ATTACKS, "genuine_tokens_are_allowed");
}

#[test]
fn time_claims_of_wrong_type_or_range_are_refused() {
    run(ATTACKS, "time_claims_of_wrong_type_or_range_are_refused");
}

fn time_claims(f: &Fixture) -> Vec<Case> {
    let now = Issuer::now();
    let future = (now + 3600).to_string();
    let bad = [
        format!(r#""{future}""#),
        "true".to_owned(),
        "false".to_owned(),
        "null".to_owned(),
        format!("[{future}]"),
        format!(r#"{{"t":{future}}}"#),
        "1e309".to_owned(),
        format!("1{}", "0".repeat(50)),
        "1e50".to_owned(),
        "1e300".to_owned(),
        "-1".to_owned(),
        format!("-{future}"),
        "-1e10".to_owned(),
        "253402300800".to_owned(),
        "18446744073709551616".to_owned(),
    ];
    let mut out = Vec::new();
    for name in ["exp", "nbf", "iat"] {
        for value in &bad {
            out.push(deny(
                format!("{name} = {value}"),
                rs_signed(f, "", &claims(&[(name, value)])),
                MALFORMED,
            ));
        }
    }
    // iat in the future beyond the skew is malformed too (CONTRACT.md).
    out.push(deny(
        "iat an hour ahead",
        rs_signed(f, "", &claims(&[("iat", &(now + 3600).to_string())])),
        MALFORMED,
    ));
    out
}

#[test]
fn missing_exp_is_refused() {
    run(ATTACKS, "missing_exp_is_refused");
}

fn missing_exp(f: &Fixture) -> Vec<Case> {
    vec![
        deny(
            "no exp (RS256)",
            rs_signed(f, "", &claims(&[("exp", ABSENT)])),
            MALFORMED,
        ),
        deny(
            "no exp (ES256)",
            signed(
                &f.ec.key,
                &header("ES256", Some("ec-1"), ""),
                &claims(&[("exp", ABSENT)]),
            ),
            MALFORMED,
        ),
        deny(
            "no exp, far nbf and iat only",
            rs_signed(f, "", &claims(&[("exp", ABSENT), ("nbf", "0")])),
            MALFORMED,
        ),
        deny(
            "exp spelled EXP",
            rs_signed(f, "", &claims(&[("exp", ABSENT), ("EXP", "4000000000")])),
            MALFORMED,
        ),
    ]
}

#[test]
fn expired_and_not_yet_valid_tokens_are_refused() {
    run(ATTACKS, "expired_and_not_yet_valid_tokens_are_refused");
}

fn expired(f: &Fixture) -> Vec<Case> {
    let now = Issuer::now();
    vec![
        deny(
            "exp an hour ago",
            rs_signed(
                f,
                "",
                &claims(&[
                    ("exp", &(now - 3600).to_string()),
                    ("iat", &(now - 7200).to_string()),
                ]),
            ),
            &["token_expired"],
        ),
        deny(
            "exp 0",
            rs_signed(f, "", &claims(&[("exp", "0"), ("iat", ABSENT)])),
            &["token_expired"],
        ),
        deny(
            "nbf an hour ahead",
            rs_signed(f, "", &claims(&[("nbf", &(now + 3600).to_string())])),
            &["token_not_yet_valid"],
        ),
    ]
}

#[test]
fn audience_shapes_and_near_misses_are_refused() {
    run(ATTACKS, "audience_shapes_and_near_misses_are_refused");
}

fn audiences(f: &Fixture) -> Vec<Case> {
    let mut out: Vec<Case> = [
        r#"[]"#,
        r#""""#,
        r#""Orders-Api""#,
        r#""ORDERS-API""#,
        r#""orders-api ""#,
        r#"" orders-api""#,
        r#""orders-api\u0000""#,
        r#""orders-api/""#,
        r#""https://orders-api""#,
        r#""orders-api,billing""#,
        r#"["orders-api "]"#,
        r#"["other","Orders-api"]"#,
        ABSENT,
    ]
    .iter()
    .map(|aud| {
        deny(
            format!("aud {aud}"),
            rs_signed(f, "", &claims(&[("aud", aud)])),
            AUDIENCE,
        )
    })
    .collect();
    out.extend(
        [
            r#"[123]"#,
            r#"[["orders-api"]]"#,
            r#"[{"aud":"orders-api"}]"#,
            r#"{"orders-api":true}"#,
            r#"["orders-api",null]"#,
            "123",
            "true",
            "null",
        ]
        .iter()
        .map(|aud| {
            deny(
                format!("aud {aud}"),
                rs_signed(f, "", &claims(&[("aud", aud)])),
                MALFORMED,
            )
        }),
    );
    out
}

#[test]
fn issuer_near_misses_are_refused() {
    run(ATTACKS, "issuer_near_misses_are_refused");
}

fn issuers(f: &Fixture) -> Vec<Case> {
    let attacker = json!(format!("http://127.0.0.1:{}", f.attacker.port)).to_string();
    let near: Vec<String> = [
        r#""https://idp.example.com.evil.test""#,
        r#""https://idp.example.com@evil.test""#,
        r#""https://idp.example.co""#,
        r#""https://idp.example.com/""#,
        r#""https://idp.example.com ""#,
        r#""https://idp.example.com\u0000""#,
        r#""HTTPS://IDP.EXAMPLE.COM""#,
        r#""http://idp.example.com""#,
        r#""https://idp.example.com:443""#,
        r#""https://evil.test/https://idp.example.com""#,
        r#"["https://idp.example.com"]"#,
        r#"{"iss":"https://idp.example.com"}"#,
        r#""""#,
        "null",
        "1",
        ABSENT,
        r#""https://at.example.com""#,
    ]
    .map(str::to_owned)
    .into_iter()
    .chain([attacker])
    .collect();
    near.iter()
        .map(|iss| {
            deny(
                format!("iss {iss}"),
                rs_signed(f, "", &claims(&[("iss", iss)])),
                ISSUER,
            )
        })
        .collect()
}

#[test]
fn typ_confusion_is_refused_where_at_jwt_is_expected() {
    run(ATTACKS, "typ_confusion_is_refused_where_at_jwt_is_expected");
}

fn typ_confusion(f: &Fixture) -> Vec<Case> {
    let at_claims = claims(&[("iss", &json!(AT_ISS).to_string())]);
    let with_typ =
        |extra: &str| signed(&f.at.key, &header("ES256", Some("at-1"), extra), &at_claims);
    // A typ mismatch is reported as token_malformed (TokenError::TypeMismatch).
    let mut out: Vec<Case> = [
        "",
        r#","typ":"JWT""#,
        r#","typ":"jwt""#,
        r#","typ":"application/jwt""#,
        r#","typ":"id_token+jwt""#,
        r#","typ":"logout+jwt""#,
        r#","typ":"at+jwt ""#,
        r#","typ":"at-jwt""#,
        r#","typ":"application/at+jwt+x""#,
        r#","typ":"""#,
        r#","typ":["at+jwt"]"#,
        r#","typ":null"#,
    ]
    .iter()
    .map(|extra| {
        deny(
            format!("access-token rule, header {extra:?}"),
            with_typ(extra),
            MALFORMED,
        )
        .to(Route::AccessTokens)
    })
    .collect();
    // The same genuine at+jwt token on the default rule: `corp` does not hold the
    // `at` provider's key (the signature is checked before the issuer).
    out.push(deny(
        "at+jwt token of the `at` provider sent to the corp rule",
        with_typ(r#","typ":"at+jwt""#),
        NO_KEY,
    ));
    out
}

#[test]
fn id_token_for_another_audience_is_refused() {
    run(ATTACKS, "id_token_for_another_audience_is_refused");
}

fn id_token(f: &Fixture) -> Vec<Case> {
    let now = Issuer::now();
    let id_claims = |aud: &str| {
        format!(
            r#"{{"iss":"{ISS}","sub":"alice","aud":{aud},"azp":"orders-web","nonce":"n-0S6_WzA2Mj","auth_time":{now},"iat":{now},"exp":{}}}"#,
            now + 3600
        )
    };
    vec![
        deny(
            "ID token, aud = the client id",
            signed(
                &f.rs.key,
                &header("RS256", Some("rs-1"), r#","typ":"JWT""#),
                &id_claims(r#""orders-web""#),
            ),
            AUDIENCE,
        ),
        deny(
            "ID token, aud = [client id]",
            signed(
                &f.ec.key,
                &header("ES256", Some("ec-1"), ""),
                &id_claims(r#"["orders-web"]"#),
            ),
            AUDIENCE,
        ),
        deny(
            "ID token sent to the at+jwt rule",
            signed(
                &f.at.key,
                &header("ES256", Some("at-1"), r#","typ":"JWT""#),
                &id_claims(r#""orders-api""#).replace(ISS, AT_ISS),
            ),
            MALFORMED,
        )
        .to(Route::AccessTokens),
    ]
}
