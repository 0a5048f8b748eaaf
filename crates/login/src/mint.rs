//! The session token: a short-lived JWT for upstreams, signed by our own key, whose
//! public JWK is served at `/.well-known/jwks.json`.

use http::{HeaderName, HeaderValue};
use portcullis_jose::SigningKey;
use portcullis_policy::config::SessionTokenConfig;
use serde_json::{Map, Value, json};

/// Why the signing key cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidSigningKey {
    /// The file cannot be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Not a usable private key.
    #[error("{path}: {detail}")]
    Key {
        /// The file.
        path: String,
        /// Why.
        detail: String,
    },
}

/// Mints session tokens.
pub struct Minter {
    config: SessionTokenConfig,
    key: SigningKey,
    kid: String,
    jwks: String,
    discovery: String,
}

impl std::fmt::Debug for Minter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Minter").field("kid", &self.kid).finish()
    }
}

impl Minter {
    /// Reads the key file; `public_url` places the JWKS.
    ///
    /// # Errors
    /// [`InvalidSigningKey`].
    pub fn try_new(
        config: &SessionTokenConfig,
        public_url: &str,
    ) -> Result<Minter, InvalidSigningKey> {
        let path = config.key_file.display().to_string();
        let text = std::fs::read_to_string(&config.key_file).map_err(|source| {
            InvalidSigningKey::Read {
                path: path.clone(),
                source,
            }
        })?;
        let key = SigningKey::from_pem(&text, None).map_err(|e| InvalidSigningKey::Key {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        let material = key.public_material();
        let (Some(mut jwk), Some(kid)) = (material.public_jwk(), material.thumbprint()) else {
            return Err(InvalidSigningKey::Key {
                path,
                detail: "an HMAC secret cannot sign session tokens: use a private key".to_owned(),
            });
        };
        let alg = key.alg().name();
        jwk.insert("kid".into(), Value::from(kid.as_str()));
        jwk.insert("alg".into(), Value::from(alg));
        jwk.insert("use".into(), Value::from("sig"));
        let jwks = json!({"keys": [Value::Object(jwk)]}).to_string();
        let discovery = json!({
            "issuer": config.issuer,
            "jwks_uri": format!("{public_url}/.well-known/jwks.json"),
            "id_token_signing_alg_values_supported": [alg],
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
        })
        .to_string();
        Ok(Minter {
            config: config.clone(),
            key,
            kid,
            jwks,
            discovery,
        })
    }

    /// The upstream header the token goes in.
    pub fn header(&self) -> &HeaderName {
        &self.config.header
    }

    /// `/.well-known/jwks.json`.
    pub fn jwks(&self) -> &str {
        &self.jwks
    }

    /// `/.well-known/openid-configuration`.
    pub fn discovery(&self) -> &str {
        &self.discovery
    }

    /// A token for a session with `claims`, valid `ttl` from `now` (and never past
    /// the session's end), as the header to set upstream.
    pub fn mint(
        &self,
        claims: &Map<String, Value>,
        now: i64,
        session_exp: i64,
    ) -> Option<(HeaderName, HeaderValue)> {
        let mut out = Map::new();
        for name in &self.config.claims {
            if let Some(v) = claims.get(name) {
                out.insert(name.clone(), v.clone());
            }
        }
        out.insert("iss".into(), Value::from(self.config.issuer.as_str()));
        match self.config.audiences.as_slice() {
            [] => {}
            [one] => {
                out.insert("aud".into(), Value::from(one.as_str()));
            }
            many => {
                out.insert("aud".into(), Value::from(many.to_vec()));
            }
        }
        let exp = (now + self.config.ttl.as_secs() as i64).min(session_exp);
        out.insert("iat".into(), Value::from(now));
        out.insert("exp".into(), Value::from(exp));
        let payload = serde_json::to_vec(&Value::Object(out)).ok()?;
        let mut header = Map::new();
        header.insert("typ".into(), Value::from("JWT"));
        let token = self
            .key
            .encode(Some(&self.kid), &header, &payload)
            .map_err(|e| tracing::error!(error = %e, "session token not signed"))
            .ok()?;
        let value = if self.config.header == http::header::AUTHORIZATION {
            format!("Bearer {token}")
        } else {
            token
        };
        Some((
            self.config.header.clone(),
            HeaderValue::from_str(&value).ok()?,
        ))
    }
}
