//! A token issuer for tests: a key, its JWKS, and minting.

use portcullis_jose::{Algorithm, SigningKey};
use serde_json::{Value, json};

/// A signing key with a `kid`.
#[derive(Debug)]
pub struct Issuer {
    /// The key.
    pub key: SigningKey,
    /// Its `kid`.
    pub kid: String,
    /// The `iss` it mints.
    pub iss: String,
}

impl Issuer {
    /// A fresh key for `alg` (not HS*).
    pub fn new(alg: Algorithm, kid: &str, iss: &str) -> Issuer {
        let (key, _) = SigningKey::generate(alg).unwrap();
        Issuer {
            key,
            kid: kid.to_owned(),
            iss: iss.to_owned(),
        }
    }

    /// The public JWK (with `kid`, `alg`, `use`).
    pub fn jwk(&self) -> Value {
        let mut jwk = self.key.public_material().public_jwk().unwrap();
        jwk.insert("kid".into(), Value::from(self.kid.clone()));
        jwk.insert("alg".into(), Value::from(self.key.alg().name()));
        jwk.insert("use".into(), Value::from("sig"));
        Value::Object(jwk)
    }

    /// `{"keys": [jwk]}`.
    pub fn jwks(&self) -> String {
        json!({ "keys": [self.jwk()] }).to_string()
    }

    /// Seconds since the epoch.
    pub fn now() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }

    /// Mints a token: `iss`, `iat`, `exp` (now + 1h) are added unless `claims` sets them.
    pub fn mint(&self, claims: Value) -> String {
        let now = Issuer::now();
        let mut c = json!({ "iss": self.iss, "iat": now, "exp": now + 3600 });
        if let (Some(base), Value::Object(extra)) = (c.as_object_mut(), claims) {
            for (k, v) in extra {
                base.insert(k, v);
            }
        }
        self.key
            .encode(
                Some(&self.kid),
                &Default::default(),
                c.to_string().as_bytes(),
            )
            .unwrap()
    }
}
