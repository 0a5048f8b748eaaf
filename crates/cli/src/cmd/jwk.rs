//! `portcullis jwk`: the public JWK of a PEM key.

use anyhow::{Context as _, Result};
use portcullis_jose::public_key_from_pem;
use serde_json::Value;

use crate::args::JwkArgs;
use crate::cmd::{algorithm, pretty, public_jwk};
use crate::input;

pub(crate) fn run(args: JwkArgs) -> Result<()> {
    let text = String::from_utf8(input::file(&args.pem)?)
        .with_context(|| format!("{} is not a PEM text file", args.pem.display()))?;
    let material = public_key_from_pem(&text)
        .with_context(|| format!("reading a key from {}", args.pem.display()))?;
    let alg = args.alg.as_deref().map(algorithm).transpose()?;
    if let Some(alg) = alg {
        // Refuse a JWK that promises an algorithm its key cannot serve.
        portcullis_jose::VerifyingKey::try_new(material.clone(), None, Some(alg))
            .with_context(|| format!("--alg {alg}"))?;
    }
    let jwk = Value::Object(public_jwk(&material, args.kid.as_deref(), alg)?);
    let out = if args.jwks {
        serde_json::json!({ "keys": [jwk] })
    } else {
        jwk
    };
    println!("{}", pretty(&out)?);
    Ok(())
}
