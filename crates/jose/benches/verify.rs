//! What `verify_jwt` costs on top of the signature check it wraps.
//!
//! For each algorithm: `full/<ALG>` is `verify_jwt` of a realistic token
//! (`kid`, `typ`; `iss`, `sub`, `aud`, `exp`, `iat`, `nbf` and custom claims)
//! against a ready one-key [`KeySet`] with issuer and audience checks;
//! `primitive/<ALG>` is aws-lc-rs alone on the same signing input and signature
//! (`ParsedPublicKey::verify_sig`, or `hmac::verify` for HS256), with the key
//! parsed beforehand exactly as `VerifyingKey` parses it.
//!
//! After the run two tables compare the two paths, rate ratio = primitive time /
//! full time (1.0 = no overhead; the target for RS256 is at least 0.85): one from
//! criterion's estimates, one from an interleaved run that keeps each path's
//! fastest batch, which holds up better when other work shares the machine.
//!
//! `claims/{full,keeping}/{small,large}` compare parsing a whole payload with parsing
//! it for the few claims a decision reads (see `bench_claims`).
//!
//! `cargo bench -p portcullis-jose --bench verify -- --warm-up-time 1 --measurement-time 3`
#![expect(clippy::expect_used, reason = "bench")]

use std::fs;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use aws_lc_rs::{hmac, signature};
use criterion::Criterion;
use portcullis_jose::{
    Algorithm, Claims, KeyMaterial, KeySet, Kid, SigningKey, Validation, VerifyingKey, b64,
    verify_jwt,
};
use serde_json::{Map, Value, json};

// The allocator the `portcullis` binary ships with, so the overhead measured here is
// the overhead served.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The clock the tokens are checked at.
const NOW: i64 = 1_700_000_000;
/// The algorithms benchmarked, in table order.
const ALGORITHMS: [Algorithm; 7] = [
    Algorithm::RS256,
    Algorithm::PS256,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::ES512,
    Algorithm::EdDSA,
    Algorithm::HS256,
];
/// The issuer and audience of the tokens (and of the validation).
const ISSUER: &str = "https://login.example.com/realms/portcullis";
const AUDIENCE: &str = "orders-api";

/// The raw aws-lc-rs verifier for one key.
enum Primitive {
    Public(signature::ParsedPublicKey),
    Hmac(Box<hmac::Key>),
}

impl Primitive {
    fn verify(&self, message: &[u8], sig: &[u8]) -> bool {
        match self {
            Primitive::Public(key) => key.verify_sig(message, sig).is_ok(),
            Primitive::Hmac(key) => hmac::verify(key, message, sig).is_ok(),
        }
    }
}

/// One algorithm's token, key set and raw verifier.
struct Case {
    alg: Algorithm,
    token: String,
    keys: KeySet,
    validation: Validation,
    primitive: Primitive,
    signing_input: Vec<u8>,
    signature: Vec<u8>,
}

fn case(alg: Algorithm) -> Case {
    let signer = match alg {
        Algorithm::HS256 => SigningKey::from_secret(&[0x5a; 32], alg),
        _ => SigningKey::generate(alg).map(|(key, _pkcs8)| key),
    }
    .expect("signing key");
    let claims = json!({
        "iss": ISSUER,
        "sub": "f3c1c0de-7b9a-4d6e-9f0a-1b2c3d4e5f60",
        "aud": [AUDIENCE, "account"],
        "exp": NOW + 300,
        "iat": NOW - 60,
        "nbf": NOW - 60,
        "azp": "web-shop",
        "scope": "openid profile email orders:read orders:write",
        "email": "alice@example.com",
        "email_verified": true,
        "realm_access": {"roles": ["customer", "offline_access"]},
    });
    let mut header = Map::new();
    header.insert("typ".to_owned(), Value::from("JWT"));
    let kid = "2024-06-rotating-signing-key";
    let token = signer
        .encode(
            Some(kid),
            &header,
            &serde_json::to_vec(&claims).expect("claims"),
        )
        .expect("token");
    let material = signer.public_material();
    let key = VerifyingKey::try_new(material.clone(), Some(Kid::new(kid)), Some(alg))
        .expect("verifying key");
    let primitive = match &material {
        KeyMaterial::Hmac { secret } => {
            Primitive::Hmac(Box::new(hmac::Key::new(hmac::HMAC_SHA256, secret)))
        }
        KeyMaterial::Rsa { n, e } => {
            let params = match alg {
                Algorithm::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
                _ => &signature::RSA_PKCS1_2048_8192_SHA256,
            };
            Primitive::Public(
                signature::RsaPublicKeyComponents { n, e }
                    .to_parsed_public_key(params)
                    .expect("rsa key"),
            )
        }
        KeyMaterial::Ec { x, y, .. } => {
            let params: &'static dyn signature::VerificationAlgorithm = match alg {
                Algorithm::ES256 => &signature::ECDSA_P256_SHA256_FIXED,
                Algorithm::ES384 => &signature::ECDSA_P384_SHA384_FIXED,
                _ => &signature::ECDSA_P521_SHA512_FIXED,
            };
            let point = [&[0x04][..], x, y].concat();
            Primitive::Public(signature::ParsedPublicKey::new(params, point).expect("ec key"))
        }
        KeyMaterial::Ed25519 { x } => Primitive::Public(
            signature::ParsedPublicKey::new(&signature::ED25519, x).expect("ed25519 key"),
        ),
        _ => panic!("unexpected key material for {alg}"),
    };
    let (signing_input, sig_b64) = token.rsplit_once('.').expect("three segments");
    let signature = b64::decode(sig_b64.as_bytes()).expect("signature");
    let validation = Validation {
        issuer: Some(ISSUER.to_owned()),
        audiences: vec![AUDIENCE.to_owned()],
        ..Validation::default()
    };
    let case = Case {
        alg,
        keys: KeySet::new(vec![key]),
        validation,
        primitive,
        signing_input: signing_input.as_bytes().to_vec(),
        signature,
        token,
    };
    // Both paths must succeed, or the bench measures an early failure.
    assert!(
        verify_jwt(&case.token, &case.keys, &case.validation, NOW).is_ok(),
        "{alg}: full verify fails"
    );
    assert!(
        case.primitive.verify(&case.signing_input, &case.signature),
        "{alg}: primitive verify fails"
    );
    case
}

fn bench(c: &mut Criterion, cases: &[Case]) {
    let mut group = c.benchmark_group("verify");
    for case in cases {
        group.bench_function(format!("full/{}", case.alg), |b| {
            b.iter(|| {
                verify_jwt(
                    black_box(&case.token),
                    &case.keys,
                    &case.validation,
                    black_box(NOW),
                )
                .is_ok()
            });
        });
        group.bench_function(format!("primitive/{}", case.alg), |b| {
            b.iter(|| {
                case.primitive
                    .verify(black_box(&case.signing_input), black_box(&case.signature))
            });
        });
    }
    group.finish();
}

/// What parsing a verified payload costs, all of it (`Claims::from_json`) against only
/// the claims a decision reads (`Claims::from_json_keeping`, as the policy engine calls
/// it for a rule that reads no claim: `sub` and `cnf` beside the registered ones), for
/// the payload of `bench/run`'s tokens and for an Entra-style one with 200 group IDs.
fn bench_claims(c: &mut Criterion) {
    let small = json!({
        "iss": ISSUER, "sub": "user-000000", "aud": [AUDIENCE, "account"],
        "exp": NOW + 300, "iat": NOW - 60, "nbf": NOW - 60, "jti": "bench-rs256-0000000",
        "azp": "web-shop", "scope": "openid profile email orders:read orders:write",
        "email": "user-000000@example.com", "email_verified": true,
        "realm_access": {"roles": ["customer", "offline_access"]},
    });
    let mut large = small.clone();
    large["groups"] = (0..200)
        .map(|i| Value::from(format!("3f2b{i:04x}-8c1d-4e7a-9b6f-0a1b2c3d4e5f")))
        .collect();
    large["wids"] = json!(["b79fbf4d-3ef9-4689-8143-76b194e85509"]);
    let keep: &dyn Fn(&str) -> bool = &|name| name == "sub" || name == "cnf";
    let mut group = c.benchmark_group("claims");
    for (name, payload) in [("small", small), ("large", large)] {
        let bytes = serde_json::to_vec(&payload).expect("payload");
        assert_eq!(
            Claims::from_json_keeping(&bytes, keep)
                .expect("keeping")
                .members()
                .len(),
            6
        );
        group.bench_function(format!("full/{name}"), |b| {
            b.iter(|| Claims::from_json(black_box(&bytes)).is_ok());
        });
        group.bench_function(format!("keeping/{name}"), |b| {
            b.iter(|| Claims::from_json_keeping(black_box(&bytes), keep).is_ok());
        });
    }
    group.finish();
}

/// Where criterion writes its results: as criterion itself decides, except that
/// the target directory is found from this executable (`<target>/release/deps/`)
/// rather than by running `cargo metadata`.
fn criterion_home() -> Option<PathBuf> {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return Some(home.into());
    }
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        return Some(PathBuf::from(target).join("criterion"));
    }
    let exe = std::env::current_exe().ok()?;
    Some(exe.parent()?.parent()?.parent()?.join("criterion"))
}

/// Nanoseconds per iteration that criterion estimated in this run (slope, else mean).
fn estimate_ns(home: &Path, id: &str, since: SystemTime) -> Option<f64> {
    let path = home.join("verify").join(id).join("new/estimates.json");
    let fresh = fs::metadata(&path).and_then(|m| m.modified()).ok()? >= since;
    if !fresh {
        return None;
    }
    let estimates: Value = serde_json::from_slice(&fs::read(&path).ok()?).ok()?;
    ["slope", "mean"]
        .into_iter()
        .find_map(|name| estimates.get(name)?.get("point_estimate")?.as_f64())
}

/// Interleaved timing of the two paths: batches of `full` then `primitive`,
/// alternating for `budget`, keeping each path's fastest batch. On a shared,
/// busy machine the minimum is what the code costs when nothing interferes,
/// and the alternation exposes both paths to the same conditions.
fn paired_min_ns(case: &Case, budget: Duration) -> (f64, f64) {
    let full = || {
        verify_jwt(
            black_box(&case.token),
            &case.keys,
            &case.validation,
            black_box(NOW),
        )
        .is_ok()
    };
    let primitive = || {
        case.primitive
            .verify(black_box(&case.signing_input), black_box(&case.signature))
    };
    // Batches of about 200 us, so that most of them see no preemption.
    let once = Instant::now();
    black_box(full());
    let per = once.elapsed().as_nanos().max(1);
    let batch = u32::try_from((200_000 / per).clamp(1, 10_000)).unwrap_or(1);
    let time = |f: &dyn Fn() -> bool| {
        let start = Instant::now();
        for _ in 0..batch {
            black_box(f());
        }
        start.elapsed().as_nanos() as f64 / f64::from(batch)
    };
    let (mut best_full, mut best_primitive) = (f64::MAX, f64::MAX);
    let start = Instant::now();
    while start.elapsed() < budget {
        best_full = best_full.min(time(&full));
        best_primitive = best_primitive.min(time(&primitive));
    }
    (best_full, best_primitive)
}

fn row(alg: Algorithm, full: f64, primitive: f64) {
    let ratio = primitive / full;
    let target = match alg {
        Algorithm::RS256 if ratio >= 0.85 => " (target >= 0.85: met)",
        Algorithm::RS256 => " (target >= 0.85: MISSED)",
        _ => "",
    };
    println!(
        "| {:<5} | {:>12.2} us | {:>16.2} us | {:>6.2} us | {ratio:>6.3}{target} |",
        alg.name(),
        full / 1000.0,
        primitive / 1000.0,
        (full - primitive) / 1000.0,
    );
}

fn print_ratios(cases: &[Case], since: SystemTime) {
    let Some(home) = criterion_home() else {
        println!("(no criterion output directory: no ratio table)");
        return;
    };
    let header = |title: &str| {
        println!();
        println!("{title}");
        println!(
            "| alg   | full verify_jwt | aws-lc-rs primitive | overhead  | rate ratio full/primitive |"
        );
        println!(
            "|-------|-----------------|---------------------|-----------|---------------------------|"
        );
    };
    // Only the algorithms criterion measured in this run (a filter may skip some).
    let measured: Vec<(&Case, f64, f64)> = cases
        .iter()
        .filter_map(|case| {
            let full = estimate_ns(&home, &format!("full_{}", case.alg), since)?;
            let primitive = estimate_ns(&home, &format!("primitive_{}", case.alg), since)?;
            Some((case, full, primitive))
        })
        .collect();
    if measured.is_empty() {
        return;
    }
    header("criterion estimates (rate ratio = primitive time / full time):");
    for (case, full, primitive) in &measured {
        row(case.alg, *full, *primitive);
    }
    header("interleaved, fastest batch of each over 2 s (robust to a busy machine):");
    for (case, _, _) in &measured {
        let (full, primitive) = paired_min_ns(case, Duration::from_secs(2));
        row(case.alg, full, primitive);
    }
}

#[expect(clippy::disallowed_methods, reason = "tests mint with the wall clock")]
fn main() {
    let since = SystemTime::now();
    let cases: Vec<Case> = ALGORITHMS.into_iter().map(case).collect();
    let mut c = Criterion::default().without_plots().configure_from_args();
    bench(&mut c, &cases);
    bench_claims(&mut c);
    c.final_summary();
    print_ratios(&cases, since);
}
