//! nginx-subrequest-auth-jwt's `config.yaml`: `validationKeys` (EC public keys; the
//! first one is used), `claimsSource: static|queryString`, and static `claims` (a list
//! of alternative claim sets). The older snake_case spellings (`validation_keys`,
//! `ecdsa_public_keys`, `claims_source`) are read too.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::doc::{Doc, list, str_at, unknown_keys};
use crate::model::{Config, Jwks, Provider, Rule};
use crate::{ImportError, Product, Warning};

pub(crate) fn import(docs: &[Doc], warnings: &mut Vec<Warning>) -> Result<Config, ImportError> {
    let Some(doc) = docs.first() else {
        return Err(ImportError::NothingToImport {
            product: Product::NginxSubrequestAuthJwt,
            expected: "a config.yaml with validationKeys",
        });
    };
    let origin = doc.file.clone();
    let warn = |warnings: &mut Vec<Warning>, message: String| {
        warnings.push(Warning {
            origin: origin.clone(),
            message,
        });
    };
    for extra in &docs[1..] {
        warn(
            warnings,
            format!("document {} skipped: one config per import", extra.index),
        );
    }
    let v = &doc.value;
    let keys = keys(doc)?;
    let Some(key) = keys.first() else {
        return Err(doc.invalid("no validationKeys (type ecPublicKey, key: PEM)"));
    };
    if keys.len() > 1 {
        warn(
            warnings,
            format!(
                "{} more validation keys not carried over: nginx-subrequest-auth-jwt uses only the first",
                keys.len() - 1
            ),
        );
    }
    let mut config = Config::default();
    config.providers.push(Provider {
        name: "nginx-subrequest-auth-jwt".to_owned(),
        jwks: Jwks::Pem(key.clone()),
        // It accepts ECDSA signatures only; the key's curve fixes which one.
        algorithms: Vec::new(),
        // jwt-go checks times without leeway.
        clock_skew: Some("0s".to_owned()),
        ..Provider::default()
    });
    warn(warnings, "nginx-subrequest-auth-jwt accepts tokens without `exp`, Portcullis refuses them (set `require_exp: false` to accept them)".to_owned());
    let source = str_at(v, &["claimsSource"])
        .or_else(|| str_at(v, &["claims_source"]))
        .unwrap_or("static");
    let mut rule = Rule {
        name: "default".to_owned(),
        ..Rule::default()
    };
    match source {
        "static" => {
            let sets = list(v, "claims")
                .iter()
                .chain(list(v, "static"))
                .filter_map(Value::as_object)
                .collect::<Vec<_>>();
            let mut merged: BTreeMap<String, Vec<Value>> = BTreeMap::new();
            for (i, set) in sets.iter().enumerate() {
                let set: BTreeMap<String, Vec<Value>> = set
                    .iter()
                    .map(|(k, vals)| {
                        let vals = match vals {
                            Value::Array(a) => a.clone(),
                            other => vec![other.clone()],
                        };
                        (k.clone(), vals)
                    })
                    .collect();
                if i == 0 {
                    merged = set;
                    continue;
                }
                // Alternatives on the same single claim merge into one list of values.
                let single = |m: &BTreeMap<String, Vec<Value>>| m.len() == 1;
                if single(&merged) && single(&set) && merged.keys().eq(set.keys()) {
                    for (k, vals) in set {
                        merged.entry(k).or_default().extend(vals);
                    }
                } else {
                    warn(
                        warnings,
                        format!(
                            "claims[{i}] not carried over: Portcullis rules have no OR between claim sets, tokens only this set allows are refused"
                        ),
                    );
                }
            }
            rule.claims = merged;
            if !rule.claims.is_empty() {
                warn(warnings, "a claim holding an array is refused by nginx-subrequest-auth-jwt (it compares strings only), Portcullis accepts it when one element matches".to_owned());
            }
        }
        "queryString" | "query" => {
            warn(warnings, "claimsSource queryString: Portcullis reads claims_NAME=VALUE from the /verify URL the same way, but a call without any claims_ parameter is allowed for any valid token (nginx-subrequest-auth-jwt denies it)".to_owned());
        }
        other => {
            return Err(doc.invalid(format!(
                "claimsSource {other:?} is not static or queryString"
            )));
        }
    }
    if let Some(kind) = str_at(v, &["validation_type"]).or_else(|| str_at(v, &["validationType"]))
        && !kind.to_ascii_lowercase().contains("ec")
    {
        warn(
            warnings,
            format!("validation_type {kind:?} not carried over: only EC public keys are read"),
        );
    }
    for key in unknown_keys(
        v,
        &[
            "validationKeys",
            "validation_keys",
            "ecdsa_public_keys",
            "claimsSource",
            "claims_source",
            "claims",
            "static",
            "validation_type",
            "validationType",
        ],
    ) {
        warn(warnings, format!("{key} not carried over"));
    }
    config.rules.push(rule);
    Ok(config)
}

/// The PEM public keys, in order.
fn keys(doc: &Doc) -> Result<Vec<String>, ImportError> {
    let v = &doc.value;
    let mut out = Vec::new();
    for entry in list(v, "validationKeys")
        .iter()
        .chain(list(v, "validation_keys"))
    {
        let kind = str_at(entry, &["type"]).unwrap_or("ecPublicKey");
        if kind != "ecPublicKey" {
            return Err(doc.invalid(format!("validation key type {kind:?}: only ecPublicKey is used by nginx-subrequest-auth-jwt")));
        }
        match str_at(entry, &["key"]) {
            Some(pem) => out.push(pem.trim().to_owned()),
            None => return Err(doc.invalid("a validation key without `key`")),
        }
    }
    match v.get("ecdsa_public_keys") {
        Some(Value::String(pem)) => out.push(pem.trim().to_owned()),
        Some(Value::Array(pems)) => out.extend(
            pems.iter()
                .filter_map(Value::as_str)
                .map(|p| p.trim().to_owned()),
        ),
        _ => {}
    }
    Ok(out)
}
