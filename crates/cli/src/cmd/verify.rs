//! `portcullis verify`: the server's verification, from the command line.

use anyhow::{Context as _, Result};
use portcullis_jose::{AlgorithmSet, KeyFormat, KeySet, Secrets, Validation, import_keys};
use serde_json::Value;

use crate::args::VerifyArgs;
use crate::cmd::{algorithm, pretty};
use crate::{Negative, input, time};

pub(crate) fn run(args: VerifyArgs) -> Result<()> {
    if let Some(config) = &args.config {
        let token = input::token(args.token.as_deref())?;
        return match portcullis_app::verify_with_config(config, args.provider.as_deref(), &token) {
            Ok(claims) => {
                println!("{}", pretty(&claims)?);
                Ok(())
            }
            Err(portcullis_app::AppError::Invalid(why)) => Err(Negative(why).into()),
            Err(e) => Err(e.into()),
        };
    }
    let Some(jwks) = &args.jwks else {
        anyhow::bail!("give --jwks FILE_OR_PEM or --config FILE");
    };
    let keys = load_keys(jwks)?;
    let algorithms = if args.alg.is_empty() {
        None
    } else {
        Some(
            args.alg
                .iter()
                .map(|a| algorithm(a))
                .collect::<Result<AlgorithmSet>>()?,
        )
    };
    let mut validation = Validation {
        issuer: args.issuer,
        audiences: args.audience,
        algorithms,
        clock_skew_secs: time::signed_secs(&args.clock_skew).context("--clock-skew")?,
        typ: args.typ,
        ..Validation::default()
    };
    if args.allow_missing_exp {
        validation = validation.dangerous_allow_missing_exp();
    }
    let token = input::token(args.token.as_deref())?;
    match portcullis_jose::verify_jwt(&token, &keys, &validation, time::now()) {
        Ok(jwt) => {
            println!("{}", pretty(&Value::Object(jwt.claims.into_members()))?);
            Ok(())
        }
        Err(e) => Err(Negative(portcullis_app::describe_token_error(
            &e,
            &token,
            portcullis_app::Expected {
                validation: &validation,
                keys: &keys,
                now: time::now(),
            },
        ))
        .into()),
    }
}

/// Keys from a JWKS/JWK JSON file or a PEM file, through the import every key
/// source shares; each key left out is named on stderr with why.
pub(crate) fn load_keys(path: &std::path::Path) -> Result<KeySet> {
    let bytes = input::file(path)?;
    let imported = import_keys(&bytes, KeyFormat::Detect, Secrets::Allow)
        .with_context(|| format!("reading keys from {}", path.display()))?;
    for s in &imported.skipped {
        eprintln!(
            "portcullis: {}: key {} ({}) ignored: {}",
            path.display(),
            s.index,
            s.kid
                .as_deref()
                .map_or_else(|| "no kid".to_owned(), |k| format!("kid {k:?}")),
            s.reason
        );
    }
    if imported.keys.is_empty() {
        anyhow::bail!("{} holds no usable key", path.display());
    }
    Ok(imported.keys)
}
