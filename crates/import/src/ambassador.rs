//! Ambassador / Edge Stack: JWT `Filter`s become providers, `FilterPolicy` rules
//! become rules (in order; a request no rule matches passes without a filter, as in
//! Ambassador).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::doc::{Doc, flag, list, str_at, strings, unknown_keys};
use crate::model::{ClaimHeader, Config, Jwks, Match, Provider, Rule};
use crate::{ImportError, Product, Warning};

/// A JWT filter's provider and the constant headers it injects.
struct JwtFilter {
    name: String,
    namespace: Option<String>,
    provider: Option<String>,
    headers: BTreeMap<String, String>,
}

pub(crate) fn import(docs: &[Doc], warnings: &mut Vec<Warning>) -> Result<Config, ImportError> {
    let mut config = Config::default();
    let mut filters = Vec::new();
    let mut other_filters = Vec::new();
    let mut policies = Vec::new();
    for doc in docs {
        match doc.kind() {
            "Filter" => {
                let spec = doc.spec();
                let jwt = spec.get("JWT").or_else(|| spec.get("jwt"));
                match jwt {
                    Some(jwt) => filters.push(jwt_filter(doc, jwt, &mut config, warnings)),
                    None => other_filters.push(doc.name().to_owned()),
                }
            }
            "FilterPolicy" => policies.push(doc),
            other => doc.warn(
                warnings,
                format!("kind {other:?} skipped: only Filter and FilterPolicy are read"),
            ),
        }
    }
    if filters.is_empty() {
        return Err(ImportError::NothingToImport {
            product: Product::Ambassador,
            expected: "a Filter with a JWT section",
        });
    }
    if policies.is_empty() {
        warnings.push(Warning {
            origin: "FilterPolicy".to_owned(),
            message: "no FilterPolicy: Ambassador applies no filter, this config asks every request for a token from any JWT filter's provider (rule default)".to_owned(),
        });
        let name = config.unique_rule_name("default");
        config.rules.push(Rule {
            name,
            ..Rule::default()
        });
        return Ok(config);
    }
    let mut catch_all = false;
    for doc in policies {
        if catch_all {
            doc.warn(
                warnings,
                "not carried over: an earlier rule matches every request",
            );
            continue;
        }
        for (i, rule) in list(doc.spec(), "rules").iter().enumerate() {
            let base = format!("{}-{}", doc.name(), i + 1);
            let name = config.unique_rule_name(&base);
            let mut out = Rule {
                name,
                ..Rule::default()
            };
            match policy_match(rule) {
                Ok(m) => out.match_ = m,
                Err(why) => {
                    doc.warn(warnings, format!("rules[{i}] not carried over ({why}): the requests it matches go to later rules"));
                    continue;
                }
            }
            let refs = list(rule, "filters");
            if refs.is_empty() {
                out.allow = Some("anonymous".to_owned());
            }
            let mut jwt_seen = false;
            for r in refs {
                let fname = str_at(r, &["name"]).unwrap_or("");
                let fns = str_at(r, &["namespace"]).or(doc.namespace());
                let found = filters.iter().find(|f| {
                    f.name == fname
                        && (fns.is_none() || f.namespace.is_none() || f.namespace.as_deref() == fns)
                });
                let Some(filter) = found else {
                    let why = if other_filters.iter().any(|o| o == fname) {
                        format!("filter {fname} is not a JWT filter")
                    } else {
                        format!("filter {fname} is not in the input")
                    };
                    doc.warn(
                        warnings,
                        format!("rules[{i}]: {why}: this rule denies (allow: deny)"),
                    );
                    out.allow = Some("deny".to_owned());
                    continue;
                };
                let Some(provider) = &filter.provider else {
                    doc.warn(warnings, format!("rules[{i}]: filter {fname} was not carried over: this rule denies (allow: deny)"));
                    out.allow = Some("deny".to_owned());
                    continue;
                };
                if jwt_seen {
                    doc.warn(warnings, format!("rules[{i}]: several JWT filters (all must accept in Ambassador): Portcullis accepts a token from any of them"));
                }
                jwt_seen = true;
                out.providers.push(provider.clone());
                out.headers.extend(filter.headers.clone());
                out.scopes
                    .extend(strings(r.get("arguments").unwrap_or(&Value::Null), "scope"));
                if r.get("ifRequestHeader").is_some() {
                    doc.warn(warnings, format!("rules[{i}]: ifRequestHeader not carried over: the filter applies to every request of the rule"));
                }
                for key in ["onDeny", "onAllow"] {
                    if let Some(v) = str_at(r, &[key])
                        && v != "break"
                        && v != "continue"
                    {
                        doc.warn(warnings, format!("rules[{i}]: {key}: {v} not carried over"));
                    }
                }
            }
            if out.match_ == Match::default() {
                catch_all = true;
            }
            config.rules.push(out);
            if catch_all {
                break;
            }
        }
    }
    if !catch_all {
        let name = config.unique_rule_name("unfiltered");
        config.rules.push(Rule {
            name,
            allow: Some("anonymous".to_owned()),
            ..Rule::default()
        });
    }
    Ok(config)
}

fn jwt_filter(
    doc: &Doc,
    jwt: &Value,
    config: &mut Config,
    warnings: &mut Vec<Warning>,
) -> JwtFilter {
    let mut filter = JwtFilter {
        name: doc.name().to_owned(),
        namespace: doc.namespace().map(str::to_owned),
        provider: None,
        headers: BTreeMap::new(),
    };
    let mut algorithms = Vec::new();
    for alg in strings(jwt, "validAlgorithms") {
        if alg.eq_ignore_ascii_case("none") {
            doc.warn(warnings, "validAlgorithms: none refused: it accepts unsigned tokens, which anyone can make; Portcullis never accepts them");
        } else {
            algorithms.push(alg);
        }
    }
    let Some(uri) = str_at(jwt, &["jwksURI"]) else {
        doc.warn(
            warnings,
            "no jwksURI: the filter is not carried over (rules using it deny)",
        );
        return filter;
    };
    let name = config.unique_provider_name(doc.name());
    let mut provider = Provider {
        name: name.clone(),
        jwks: Jwks::Uri(uri.to_owned()),
        algorithms,
        ..Provider::default()
    };
    if let Some(aud) = str_at(jwt, &["audience"]) {
        provider.audiences.push(aud.to_owned());
        if flag(jwt, "requireAudience") != Some(true) {
            doc.warn(warnings, format!("requireAudience is false: Ambassador accepts tokens without `aud`, Portcullis requires `aud` to hold {aud:?}"));
        }
    } else if flag(jwt, "requireAudience") == Some(true) {
        doc.warn(
            warnings,
            "requireAudience without audience not carried over: `aud` is not checked",
        );
    }
    if let Some(iss) = str_at(jwt, &["issuer"]) {
        provider.issuer = Some(iss.to_owned());
        if flag(jwt, "requireIssuer") != Some(true) {
            doc.warn(warnings, format!("requireIssuer is false: Ambassador accepts tokens without `iss`, Portcullis requires `iss` {iss:?}"));
        }
    }
    if flag(jwt, "requireExpiresAt") != Some(true) {
        doc.warn(warnings, "requireExpiresAt is false: Ambassador accepts tokens without `exp`, Portcullis refuses them (set `require_exp: false` to accept them)");
    }
    for key in ["requireIssuedAt", "requireNotBefore"] {
        if flag(jwt, key) == Some(true) {
            doc.warn(warnings, format!("{key} not carried over: Portcullis checks the claim when it is present, a token without it is accepted"));
        }
    }
    // Ambassador's leeway defaults to none; the largest one given is Portcullis' skew.
    let leeways: Vec<&str> = [
        "leewayForExpiresAt",
        "leewayForIssuedAt",
        "leewayForNotBefore",
    ]
    .iter()
    .filter_map(|k| str_at(jwt, &[k]))
    .collect();
    provider.clock_skew = Some(
        leeways
            .iter()
            .max_by_key(|l| seconds(l).unwrap_or(0))
            .map_or_else(|| "0s".to_owned(), |l| (*l).to_owned()),
    );
    for h in list(jwt, "injectRequestHeaders") {
        let (Some(header), Some(value)) = (str_at(h, &["name"]), str_at(h, &["value"])) else {
            continue;
        };
        match claim_template(value) {
            Some(claim) => provider.claims_to_headers.push(ClaimHeader {
                header: header.to_ascii_lowercase(),
                claim,
            }),
            None if !value.contains("{{") => {
                filter.headers.insert(header.to_ascii_lowercase(), value.to_owned());
            }
            None => doc.warn(warnings, format!("injectRequestHeaders {header}: template {value:?} not carried over (only {{{{ .token.Claims.NAME }}}})")),
        }
    }
    if flag(jwt, "insecureTLS") == Some(true) {
        doc.warn(
            warnings,
            "insecureTLS not carried over: Portcullis verifies the JWKS server's certificate",
        );
    }
    for key in unknown_keys(
        jwt,
        &[
            "jwksURI",
            "validAlgorithms",
            "audience",
            "requireAudience",
            "issuer",
            "requireIssuer",
            "requireExpiresAt",
            "requireIssuedAt",
            "requireNotBefore",
            "leewayForExpiresAt",
            "leewayForIssuedAt",
            "leewayForNotBefore",
            "injectRequestHeaders",
            "insecureTLS",
            "renegotiateTLS",
        ],
    ) {
        doc.warn(warnings, format!("{key} not carried over"));
    }
    config.providers.push(provider);
    filter.provider = Some(name);
    filter
}

/// `{{ .token.Claims.email }}` -> `email` (`.a.b` -> `a.b`).
fn claim_template(value: &str) -> Option<String> {
    let inner = value.trim().strip_prefix("{{")?.strip_suffix("}}")?.trim();
    let claim = inner.strip_prefix(".token.Claims.")?;
    let ok = !claim.is_empty()
        && claim.split('.').all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        });
    ok.then(|| claim.to_owned())
}

/// Seconds of a Go duration with one unit (`30s`, `2m`, `1h`).
fn seconds(text: &str) -> Option<u64> {
    let (n, mult) = if let Some(n) = text.strip_suffix("ms") {
        (n, 0)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60)
    } else if let Some(n) = text.strip_suffix('h') {
        (n, 3600)
    } else {
        return None;
    };
    n.parse::<u64>().ok().map(|n| n * mult)
}

/// A FilterPolicy rule's host and path globs as a match.
fn policy_match(rule: &Value) -> Result<Match, String> {
    let mut m = Match::default();
    let host = str_at(rule, &["host"]).unwrap_or("*");
    if host != "*" {
        let bare = host.strip_prefix("*.").unwrap_or(host);
        if bare.contains('*') {
            return Err(format!("host glob {host:?}"));
        }
        m.host.push(host.to_ascii_lowercase());
    }
    let path = str_at(rule, &["path"]).unwrap_or("*");
    if path != "*" {
        match path.strip_suffix("/*") {
            Some(prefix) if !prefix.contains('*') => m.path.push(format!("{prefix}/**")),
            _ if path.contains('*') => return Err(format!("path glob {path:?}")),
            _ => m.path.push(path.to_owned()),
        }
    }
    Ok(m)
}
