//! `portcullis inspect`: decode without verifying anything.

use anyhow::{Context as _, Result, bail};
use base64::Engine as _;
use portcullis_jose::b64;
use serde_json::{Map, Value, json};

use crate::args::InspectArgs;
use crate::cmd::pretty;
use crate::{input, time};

pub(crate) fn run(args: InspectArgs) -> Result<()> {
    let token = input::token(args.token.as_deref())?;
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 {
        bail!(
            "a compact JWS has 3 segments, this has {} (5 would be an encrypted JWE)",
            parts.len()
        );
    }
    let mut notes =
        vec!["NOT VERIFIED: signature, issuer, audience and times were not checked".to_owned()];
    let header = segment(parts[0], "header", &mut notes)?;
    let payload = segment(parts[1], "payload", &mut notes)?;
    let now = time::now();
    let mut times = Map::new();
    if let Value::Object(claims) = &payload {
        for name in ["iat", "nbf", "exp"] {
            if let Some(t) = claims.get(name).and_then(Value::as_f64) {
                times.insert(name.into(), Value::from(time::human(t, now)));
            }
        }
    }
    let out = json!({
        "header": header,
        "payload": payload,
        "times": times,
        "signature_bytes": b64::decode(parts[2].as_bytes()).map_or(0, |s| s.len()),
        "verified": false,
        "notes": notes,
    });
    println!("{}", pretty(&out)?);
    eprintln!("portcullis inspect: nothing was verified; use `portcullis verify` to check a token");
    Ok(())
}

/// Decodes a segment, leniently (noting any non-canonical encoding or JSON problem).
fn segment(text: &str, name: &str, notes: &mut Vec<String>) -> Result<Value> {
    let bytes = match b64::decode(text.as_bytes()) {
        Some(b) => b,
        None => {
            notes.push(format!(
                "{name} is not canonical base64url (a verifier rejects it)"
            ));
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(text.trim_end_matches('='))
                .with_context(|| format!("{name} is not base64url"))?
        }
    };
    match portcullis_jose::json::parse_strict(&bytes) {
        Ok(v) => Ok(v),
        Err(problem) => {
            notes.push(format!("{name} is not strict JSON: {problem}"));
            Ok(Value::from(String::from_utf8_lossy(&bytes).into_owned()))
        }
    }
}
