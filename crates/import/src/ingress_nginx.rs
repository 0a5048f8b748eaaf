//! ingress-nginx: `Ingress` objects whose `nginx.ingress.kubernetes.io/auth-url`
//! points at an auth service. Each host and its paths become a rule; `claims_NAME`
//! parameters on the auth URL become the rule's claims; `auth-response-headers`
//! become `claims_to_headers` where the header's claim can be told.
//!
//! An Ingress does not say who issues the tokens: the provider is a placeholder.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::doc::{Doc, list, str_at};
use crate::model::{ClaimHeader, Config, Jwks, Match, Provider, Rule};
use crate::{ImportError, Product, Warning};

pub(crate) const ANNOTATION: &str = "nginx.ingress.kubernetes.io/";
/// The placeholder provider's name.
pub(crate) const PROVIDER: &str = "idp";

/// The annotation `name` (without the prefix).
pub(crate) fn annotation<'a>(doc: &'a Doc, name: &str) -> Option<&'a str> {
    doc.value
        .get("metadata")
        .and_then(|m| m.get("annotations"))
        .and_then(|a| a.get(format!("{ANNOTATION}{name}")))
        .and_then(Value::as_str)
}

/// The parts of an auth URL.
#[derive(Debug)]
pub(crate) struct AuthUrl {
    pub(crate) host: String,
    pub(crate) port: Option<u16>,
    pub(crate) https: bool,
    pub(crate) query: Vec<(String, String)>,
}

pub(crate) fn parse_auth_url(url: &str) -> Option<AuthUrl> {
    let (https, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else {
        (false, url.strip_prefix("http://")?)
    };
    let (authority, path_query) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, Some(p.parse().ok()?)),
        None => (authority, None),
    };
    let query = path_query
        .split_once('?')
        .map(|(_, q)| q)
        .unwrap_or("")
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (kv.to_owned(), String::new()),
        })
        .collect();
    Some(AuthUrl {
        host: host.to_ascii_lowercase(),
        port,
        https,
        query,
    })
}

/// The claim an identity header usually carries (oauth2-proxy, Istio, our examples).
fn header_claim(header: &str) -> Option<String> {
    let h = header.to_ascii_lowercase();
    if let Some(claim) = h.strip_prefix("x-jwt-claim-") {
        return Some(claim.to_owned());
    }
    let claim = match h.as_str() {
        "x-user"
        | "x-auth-request-user"
        | "x-forwarded-user"
        | "x-remote-user"
        | "remote-user"
        | "x-user-id"
        | "x-sub"
        | "x-subject" => "sub",
        "x-email" | "x-auth-request-email" | "x-forwarded-email" | "x-user-email" => "email",
        "x-groups" | "x-auth-request-groups" | "x-forwarded-groups" | "x-user-groups" => "groups",
        "x-auth-request-preferred-username"
        | "x-forwarded-preferred-username"
        | "x-preferred-username"
        | "x-username" => "preferred_username",
        _ => return None,
    };
    Some(claim.to_owned())
}

/// An Ingress path as a Portcullis path (`None`: any path).
pub(crate) fn rule_path(path: &str, path_type: &str) -> Result<Option<String>, String> {
    if path.contains(['*', '(', '[', '$', '^', '{']) {
        return Err(format!("path {path:?} looks like a regular expression"));
    }
    match path_type {
        "Exact" => Ok(Some(path.to_owned())),
        "Prefix" | "ImplementationSpecific" => {
            let trimmed = path.trim_end_matches('/');
            if trimmed.is_empty() {
                Ok(None)
            } else {
                Ok(Some(format!("{trimmed}/**")))
            }
        }
        other => Err(format!("pathType {other:?}")),
    }
}

pub(crate) fn import(docs: &[Doc], warnings: &mut Vec<Warning>) -> Result<Config, ImportError> {
    let mut config = Config::default();
    let mut claims_to_headers: Vec<ClaimHeader> = Vec::new();
    let mut any = false;
    for doc in docs {
        if doc.kind() != "Ingress" {
            doc.warn(
                warnings,
                format!("kind {:?} skipped: only Ingress is read", doc.kind()),
            );
            continue;
        }
        let Some(url) = annotation(doc, "auth-url") else {
            doc.warn(
                warnings,
                "no auth-url annotation: NGINX asks no auth service about it; skipped",
            );
            continue;
        };
        any = true;
        let Some(auth) = parse_auth_url(url) else {
            return Err(doc.invalid(format!("auth-url {url:?} is not an http(s) URL")));
        };
        let mut claims: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for (k, v) in &auth.query {
            match k.strip_prefix("claims_") {
                Some(name) if !v.contains('%') && !name.contains('%') => {
                    claims
                        .entry(name.to_owned())
                        .or_default()
                        .push(Value::from(v.clone()));
                }
                _ => doc.warn(
                    warnings,
                    format!("auth-url parameter {k}={v} not carried over"),
                ),
            }
        }
        if let Some(headers) = annotation(doc, "auth-response-headers") {
            for header in headers.split(',').map(str::trim).filter(|h| !h.is_empty()) {
                match header_claim(header) {
                    Some(claim) => {
                        let ch = ClaimHeader {
                            header: header.to_ascii_lowercase(),
                            claim,
                        };
                        if !claims_to_headers.contains(&ch) {
                            claims_to_headers.push(ch);
                        }
                    }
                    None => doc.warn(warnings, format!("auth-response-headers {header}: which claim it carries cannot be told; add it to claims_to_headers by hand")),
                }
            }
        }
        if let Some(signin) = annotation(doc, "auth-signin") {
            doc.warn(warnings, format!("auth-signin {signin} not carried over: Portcullis answers 401 and NGINX still redirects to the sign-in page (keep the annotation); browser login with sessions is not part of this config"));
        }
        for key in [
            "auth-snippet",
            "auth-proxy-set-headers",
            "auth-cache-key",
            "auth-request-redirect",
            "auth-always-set-cookie",
        ] {
            if annotation(doc, key).is_some() {
                doc.warn(warnings, format!("{key} not carried over"));
            }
        }
        let use_regex = annotation(doc, "use-regex") == Some("true");
        let spec = doc.spec();
        let mut rules = list(spec, "rules").to_vec();
        if rules.is_empty() && spec.get("defaultBackend").is_some() {
            rules.push(Value::Object(serde_json::Map::new()));
        }
        for (i, r) in rules.iter().enumerate() {
            let host = str_at(r, &["host"]);
            let mut m = Match::default();
            if let Some(h) = host {
                m.host.push(h.to_ascii_lowercase());
            }
            let mut any_path = false;
            let mut failed = None;
            for p in list(r.get("http").unwrap_or(&Value::Null), "paths") {
                let path = str_at(p, &["path"]).unwrap_or("/");
                let path_type = str_at(p, &["pathType"]).unwrap_or("ImplementationSpecific");
                if use_regex && path_type == "ImplementationSpecific" {
                    failed = Some(format!("path {path:?} is a regular expression (use-regex)"));
                    break;
                }
                match rule_path(path, path_type) {
                    Ok(Some(p)) => m.path.push(p),
                    Ok(None) => any_path = true,
                    Err(why) => {
                        failed = Some(why);
                        break;
                    }
                }
            }
            if let Some(why) = failed {
                doc.warn(
                    warnings,
                    format!(
                        "rules[{i}] not carried over ({why}): its requests are refused (no rule)"
                    ),
                );
                continue;
            }
            if any_path {
                m.path.clear();
            }
            let name = config.unique_rule_name(&format!("{}-{}", doc.name(), i + 1));
            config.rules.push(Rule {
                name,
                match_: m,
                providers: vec![PROVIDER.to_owned()],
                claims: claims.clone(),
                ..Rule::default()
            });
        }
    }
    if !any {
        return Err(ImportError::NothingToImport {
            product: Product::IngressNginx,
            expected: "an Ingress with a nginx.ingress.kubernetes.io/auth-url annotation",
        });
    }
    warnings.push(Warning {
        origin: "Ingress".to_owned(),
        message: format!("an Ingress does not say who issues the tokens: provider {PROVIDER} is a placeholder, set its issuer, audiences and jwks"),
    });
    config.providers.insert(
        0,
        Provider {
            name: PROVIDER.to_owned(),
            issuer: Some("https://idp.example.com".to_owned()),
            jwks: Jwks::Uri("https://idp.example.com/.well-known/jwks.json".to_owned()),
            claims_to_headers,
            ..Provider::default()
        },
    );
    Ok(config)
}
