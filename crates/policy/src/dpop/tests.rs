use portcullis_jose::{Algorithm, SigningKey, b64};
use serde_json::{Value, json};

use super::*;

const NOW: i64 = 1_700_000_000;
const TOKEN: &str = "access.token.here";

struct Holder {
    key: SigningKey,
    jwk: Value,
    jkt: String,
}

fn holder() -> Holder {
    let (key, _) = SigningKey::generate(Algorithm::ES256).unwrap();
    let jwk = Value::Object(key.public_material().public_jwk().unwrap());
    let jkt = key.public_material().thumbprint().unwrap();
    Holder { key, jwk, jkt }
}

fn ath(token: &str) -> String {
    b64::encode(digest::digest(&digest::SHA256, token.as_bytes()).as_ref())
}

impl Holder {
    fn proof(&self, claims: Value, header: Option<Value>) -> String {
        let header = header.unwrap_or_else(|| json!({"typ": "dpop+jwt", "jwk": self.jwk}));
        let Value::Object(h) = header else { panic!() };
        self.key
            .encode(None, &h, claims.to_string().as_bytes())
            .unwrap()
    }

    fn good(&self) -> Value {
        json!({"jti": "j1", "htm": "GET", "htu": "https://api.test/orders?x=1", "iat": NOW, "ath": ath(TOKEN)})
    }
}

const TARGET: ProofTarget<'static> = ProofTarget {
    scheme: None,
    method: "GET",
    host: "api.test",
    path: "/orders",
};

fn check(h: &Holder, proof: &str) -> Result<Proof, InvalidProof> {
    verify_proof(proof, TOKEN, &h.jkt, TARGET, NOW, 60)
}

#[test]
fn allows_a_good_proof_once() {
    let h = holder();
    let proof = h.proof(h.good(), None);
    let p = check(&h, &proof).unwrap();
    assert_eq!(p.jkt, h.jkt);
    let replay = ReplayCache::new(16);
    assert!(replay.first_use(&p, NOW));
    assert!(!replay.first_use(&p, NOW + 1));
    // Other spellings of the same URL.
    for htu in [
        "HTTPS://API.test:443/orders",
        "http://api.test/orders#f",
        "https://api.test/./orders",
    ] {
        let mut c = h.good();
        c["htu"] = json!(htu);
        assert!(check(&h, &h.proof(c, None)).is_ok(), "{htu}");
    }
    // With a known scheme, only that one.
    let mut c = h.good();
    c["htu"] = json!("http://api.test/orders");
    let https = ProofTarget {
        scheme: Some("https"),
        ..TARGET
    };
    assert_eq!(
        verify_proof(&h.proof(c, None), TOKEN, &h.jkt, https, NOW, 60),
        Err(InvalidProof::Url)
    );
}

#[test]
fn denies_bad_proofs() {
    let h = holder();
    let other = holder();
    let with = |name: &str, v: Value| {
        let mut c = h.good();
        c[name] = v;
        h.proof(c, None)
    };
    let cases: Vec<(String, InvalidProof)> = vec![
        (with("htm", json!("POST")), InvalidProof::Method),
        (
            with("htu", json!("https://api.test/other")),
            InvalidProof::Url,
        ),
        (
            with("htu", json!("https://evil.test/orders")),
            InvalidProof::Url,
        ),
        (
            with("htu", json!("https://u@api.test/orders")),
            InvalidProof::Url,
        ),
        (
            with("htu", json!("ftp://api.test/orders")),
            InvalidProof::Url,
        ),
        (
            with("iat", json!(NOW - 61)),
            InvalidProof::Stale {
                iat: NOW - 61,
                now: NOW,
                window: 60,
            },
        ),
        (
            with("iat", json!(NOW + 61)),
            InvalidProof::Stale {
                iat: NOW + 61,
                now: NOW,
                window: 60,
            },
        ),
        (
            with("ath", json!(ath("another token"))),
            InvalidProof::AccessTokenHash,
        ),
        (with("jti", json!("")), InvalidProof::Claim { name: "jti" }),
        (
            h.proof(json!({"htm": "GET"}), None),
            InvalidProof::Claim { name: "jti" },
        ),
        (
            h.proof(h.good(), Some(json!({"typ": "JWT", "jwk": h.jwk}))),
            InvalidProof::Type,
        ),
        (
            h.proof(h.good(), Some(json!({"typ": "dpop+jwt"}))),
            InvalidProof::Key {
                why: "no jwk".into(),
            },
        ),
        // Signed by one key, naming another.
        (
            h.proof(h.good(), Some(json!({"typ": "dpop+jwt", "jwk": other.jwk}))),
            InvalidProof::Signature {
                why: "the signature is invalid".into(),
            },
        ),
        // A good proof by a key the token is not bound to.
        (other.proof(h.good(), None), InvalidProof::KeyMismatch),
    ];
    for (proof, want) in cases {
        let got = check(&h, &proof).unwrap_err();
        match (&got, &want) {
            (InvalidProof::Signature { .. }, InvalidProof::Signature { .. }) => {}
            _ => assert_eq!(got, want, "{proof}"),
        }
    }
    let mut private = h.jwk.clone();
    private["d"] = json!("AAAA");
    assert!(matches!(
        check(
            &h,
            &h.proof(h.good(), Some(json!({"typ": "dpop+jwt", "jwk": private})))
        ),
        Err(InvalidProof::Key { .. })
    ));
    let hs = SigningKey::from_secret(&[1; 32], Algorithm::HS256).unwrap();
    let Value::Object(hdr) =
        json!({"typ": "dpop+jwt", "jwk": {"kty": "oct", "k": b64::encode(&[1; 32])}})
    else {
        panic!()
    };
    let proof = hs
        .encode(None, &hdr, h.good().to_string().as_bytes())
        .unwrap();
    assert!(matches!(check(&h, &proof), Err(InvalidProof::Key { .. })));
    assert!(check(&h, "garbage").is_err());
}
