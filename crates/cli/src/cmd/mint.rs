//! `portcullis mint`: a signed JWT from flags.

use anyhow::{Context as _, Result, bail};
use portcullis_jose::{Family, SigningKey, b64, json};
use serde_json::{Map, Value};

use crate::args::MintArgs;
use crate::cmd::algorithm;
use crate::{input, time};

pub(crate) fn run(args: MintArgs) -> Result<()> {
    let alg = args.alg.as_deref().map(algorithm).transpose()?;
    let bytes = input::file(&args.key)?;
    let key = load_key(&bytes, alg)
        .with_context(|| format!("reading a key from {}", args.key.display()))?;
    let now = time::now();

    let mut claims = Map::new();
    if let Some(iss) = args.iss {
        claims.insert("iss".into(), Value::from(iss));
    }
    if let Some(sub) = args.sub {
        claims.insert("sub".into(), Value::from(sub));
    }
    match args.aud.len() {
        0 => {}
        1 => {
            claims.insert("aud".into(), Value::from(args.aud[0].clone()));
        }
        _ => {
            claims.insert("aud".into(), Value::from(args.aud.clone()));
        }
    }
    let iat = match &args.iat {
        Some(t) => time::instant(t, now)?,
        None => now,
    };
    claims.insert("iat".into(), Value::from(iat));
    if !args.no_exp {
        let ttl = time::signed_secs(&args.ttl).context("--ttl")?;
        claims.insert("exp".into(), Value::from(now + ttl));
    }
    if let Some(nbf) = &args.nbf {
        claims.insert(
            "nbf".into(),
            Value::from(time::instant(nbf, now).context("--nbf")?),
        );
    }
    for c in &args.claims {
        let (name, value) = input::name_value(c).context("--claim")?;
        claims.insert(name, value);
    }
    let mut header = Map::new();
    for h in &args.headers {
        let (name, value) = input::name_value(h).context("--header")?;
        header.insert(name, value);
    }
    let kid = if args.no_kid {
        None
    } else {
        args.kid.or_else(|| key.public_material().thumbprint())
    };
    let payload = serde_json::to_vec(&Value::Object(claims))?;
    println!("{}", key.encode(kid.as_deref(), &header, &payload)?);
    Ok(())
}

/// A PEM private key, or for HS*: an `oct` JWK or the raw bytes of the secret.
fn load_key(bytes: &[u8], alg: Option<portcullis_jose::Algorithm>) -> Result<SigningKey> {
    if let Some(alg) = alg.filter(|a| a.family() == Family::Hmac) {
        let secret = match json::parse_object(bytes) {
            Ok(jwk) => {
                let k = jwk
                    .get("k")
                    .and_then(Value::as_str)
                    .context("the JWK has no \"k\" member")?;
                b64::decode(k.as_bytes()).context("\"k\" is not base64url")?
            }
            Err(_) => bytes.to_vec(),
        };
        return Ok(SigningKey::from_secret(&secret, alg)?);
    }
    let Ok(text) = std::str::from_utf8(bytes) else {
        bail!("not a PEM file (for an HMAC secret, pass --alg HS256/384/512)");
    };
    Ok(SigningKey::from_pem(text, alg)?)
}
