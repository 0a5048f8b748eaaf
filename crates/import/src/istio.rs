//! Istio: `RequestAuthentication` (jwtRules become providers) and
//! `AuthorizationPolicy` (ALLOW rules become rules, DENY rules become `deny` rules
//! or a token requirement).
//!
//! Istio evaluates DENY policies, then ALLOW policies (any one allowing is enough),
//! and lets a request through when no ALLOW policy applies. RequestAuthentication
//! alone refuses invalid tokens but lets requests without one through.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::doc::{Doc, list, str_at, strings, unknown_keys};
use crate::model::{ClaimHeader, Config, Jwks, Location, Match, Provider, Rule};
use crate::{ImportError, Product, Warning};

/// What a source (`from`) plus `when` ask of the token: alternatives (any one is enough).
#[derive(Clone, Debug, Default, Eq, PartialEq)]
struct Requirement {
    /// `None`: no token needed.
    authenticated: bool,
    providers: Vec<String>,
    claims: BTreeMap<String, Vec<Value>>,
}

pub(crate) fn import(docs: &[Doc], warnings: &mut Vec<Warning>) -> Result<Config, ImportError> {
    let mut config = Config::default();
    let mut policies = Vec::new();
    for doc in docs {
        match doc.kind() {
            "RequestAuthentication" => request_authentication(doc, &mut config, warnings)?,
            "AuthorizationPolicy" => policies.push(doc),
            other => doc.warn(
                warnings,
                format!("kind {other:?} skipped: only RequestAuthentication and AuthorizationPolicy are read"),
            ),
        }
    }
    if config.providers.is_empty() {
        return Err(ImportError::NothingToImport {
            product: Product::Istio,
            expected: "a RequestAuthentication with jwtRules",
        });
    }

    let mut deny_rules = Vec::new();
    let mut allow_rules = Vec::new();
    // DENY `notRequestPrincipals: ["*"]`: where a token is required (None: everywhere).
    let mut require_jwt: Vec<Option<Match>> = Vec::new();
    let mut any_allow_policy = false;
    for doc in policies {
        let spec = doc.spec();
        if spec.get("selector").is_some()
            || spec.get("targetRef").is_some()
            || spec.get("targetRefs").is_some()
        {
            doc.warn(warnings, "selector/targetRef not carried over: Portcullis applies these rules to every request it is asked about (scope them with the CUSTOM AuthorizationPolicy that sends requests to Portcullis)");
        }
        let action = str_at(spec, &["action"]).unwrap_or("ALLOW");
        match action {
            "ALLOW" => {
                any_allow_policy = true;
                for (i, rule) in list(spec, "rules").iter().enumerate() {
                    allow_rule(doc, i, rule, &config, &mut allow_rules, warnings);
                }
            }
            "DENY" => {
                for (i, rule) in list(spec, "rules").iter().enumerate() {
                    deny_rule(doc, i, rule, &mut deny_rules, &mut require_jwt, warnings);
                }
            }
            other => doc.warn(
                warnings,
                format!("action {other} skipped: only ALLOW and DENY are carried over"),
            ),
        }
    }

    for mut rule in deny_rules {
        rule.name = config.unique_rule_name(&rule.name);
        config.rules.push(rule);
    }
    let everywhere = require_jwt.iter().any(Option::is_none);
    if any_allow_policy {
        if !require_jwt.is_empty() {
            for rule in &mut allow_rules {
                if rule.allow.as_deref() == Some("anonymous") {
                    rule.allow = None;
                    if !everywhere {
                        warnings.push(Warning {
                            origin: "AuthorizationPolicy".to_owned(),
                            message: format!(
                                "rule {}: needs a token here, since a DENY policy requires one on some paths and Portcullis cannot tell which of them this rule covers",
                                rule.name
                            ),
                        });
                    }
                }
            }
        }
        for rule in allow_rules
            .iter()
            .filter(|r| r.allow.as_deref() == Some("anonymous"))
        {
            warnings.push(Warning {
                origin: "AuthorizationPolicy".to_owned(),
                message: format!(
                    "rule {}: `allow: anonymous` does not look at a token, Istio still refuses an invalid one there (401)",
                    rule.name
                ),
            });
        }
        for (i, rule) in allow_rules.iter().enumerate() {
            if let Some(earlier) = allow_rules[..i]
                .iter()
                .find(|e| e.same_match_different_requirements(rule))
            {
                warnings.push(Warning {
                    origin: "AuthorizationPolicy".to_owned(),
                    message: format!(
                        "rules {} and {} match the same requests: Istio allows a request either one allows, Portcullis applies the first ({})",
                        earlier.name, rule.name, earlier.name
                    ),
                });
            }
        }
        for mut rule in allow_rules {
            rule.name = config.unique_rule_name(&rule.name);
            config.rules.push(rule);
        }
    } else {
        for m in require_jwt.iter().flatten() {
            let name = config.unique_rule_name("require-jwt");
            config.rules.push(Rule {
                name,
                match_: m.clone(),
                ..Rule::default()
            });
        }
        let name = config.unique_rule_name("default");
        if everywhere {
            config.rules.push(Rule {
                name,
                ..Rule::default()
            });
        } else {
            warnings.push(Warning {
                origin: "RequestAuthentication".to_owned(),
                message: format!(
                    "rule {name}: no ALLOW policy, so Istio lets requests without a token through and refuses invalid tokens; `allow: anonymous` lets both through (add an AuthorizationPolicy requiring requestPrincipals, or drop `allow: anonymous`, to check tokens)"
                ),
            });
            config.rules.push(Rule {
                name,
                allow: Some("anonymous".to_owned()),
                ..Rule::default()
            });
        }
    }
    Ok(config)
}

fn request_authentication(
    doc: &Doc,
    config: &mut Config,
    warnings: &mut Vec<Warning>,
) -> Result<(), ImportError> {
    let spec = doc.spec();
    if spec.get("selector").is_some()
        || spec.get("targetRef").is_some()
        || spec.get("targetRefs").is_some()
    {
        doc.warn(warnings, "selector/targetRef not carried over: these providers apply to every request Portcullis is asked about");
    }
    let rules = list(spec, "jwtRules");
    for (i, rule) in rules.iter().enumerate() {
        let Some(issuer) = str_at(rule, &["issuer"]) else {
            return Err(doc.invalid(format!("jwtRules[{i}]: no issuer")));
        };
        let base = if rules.len() == 1 {
            doc.name().to_owned()
        } else {
            format!("{}-{}", doc.name(), i + 1)
        };
        let name = config.unique_provider_name(&base);
        let jwks = match (str_at(rule, &["jwksUri"]), rule.get("jwks")) {
            (Some(uri), _) => Jwks::Uri(uri.to_owned()),
            (None, Some(Value::String(text))) => {
                let value: Value = serde_json::from_str(text)
                    .map_err(|e| doc.invalid(format!("jwtRules[{i}].jwks: not JSON: {e}")))?;
                Jwks::Inline(value)
            }
            (None, Some(other)) => Jwks::Inline(other.clone()),
            (None, None) => Jwks::Discovery(issuer.to_owned()),
        };
        let mut from = Vec::new();
        for h in list(rule, "fromHeaders") {
            match str_at(h, &["name"]) {
                Some(header) => from.push(Location::Header {
                    header: header.to_owned(),
                    prefix: str_at(h, &["prefix"]).map(str::to_owned),
                }),
                None => return Err(doc.invalid(format!("jwtRules[{i}].fromHeaders: no name"))),
            }
        }
        for query in strings(rule, "fromParams") {
            from.push(Location::Query { query });
        }
        for cookie in strings(rule, "fromCookies") {
            from.push(Location::Cookie { cookie });
        }
        if from.is_empty() {
            // Istio's default locations, in its order.
            from.push(Location::Header {
                header: "Authorization".to_owned(),
                prefix: Some("Bearer ".to_owned()),
            });
            from.push(Location::Query {
                query: "access_token".to_owned(),
            });
        }
        let claims_to_headers = list(rule, "outputClaimToHeaders")
            .iter()
            .filter_map(|c| {
                Some(ClaimHeader {
                    header: str_at(c, &["header"])?.to_ascii_lowercase(),
                    claim: str_at(c, &["claim"])?.to_owned(),
                })
            })
            .collect();
        if rule.get("outputPayloadToHeader").is_some() {
            doc.warn(warnings, format!("jwtRules[{i}].outputPayloadToHeader not carried over: Portcullis sets claims one header each (claims_to_headers)"));
        }
        for key in unknown_keys(
            rule,
            &[
                "issuer",
                "audiences",
                "jwksUri",
                "jwks",
                "fromHeaders",
                "fromParams",
                "fromCookies",
                "outputClaimToHeaders",
                "outputPayloadToHeader",
                "forwardOriginalToken",
            ],
        ) {
            doc.warn(warnings, format!("jwtRules[{i}].{key} not carried over"));
        }
        doc.warn(
            warnings,
            format!("provider {name}: Istio accepts tokens without `exp`, Portcullis refuses them (set `require_exp: false` to accept them)"),
        );
        config.providers.push(Provider {
            name,
            issuer: Some(issuer.to_owned()),
            audiences: strings(rule, "audiences"),
            jwks,
            from,
            // Istio's default: the token is removed before the request goes upstream.
            forward_token: Some(
                rule.get("forwardOriginalToken")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
            ),
            claims_to_headers,
            ..Provider::default()
        });
    }
    Ok(())
}

fn rule_base_name(doc: &Doc, i: usize) -> String {
    format!("{}-{}", doc.name(), i + 1)
}

fn allow_rule(
    doc: &Doc,
    i: usize,
    rule: &Value,
    config: &Config,
    out: &mut Vec<Rule>,
    warnings: &mut Vec<Warning>,
) {
    let name = rule_base_name(doc, i);
    let drop = |warnings: &mut Vec<Warning>, why: String| {
        doc.warn(
            warnings,
            format!("rules[{i}] not carried over ({why}): requests only it allows are refused"),
        );
    };
    if let Some(key) = unknown_keys(rule, &["from", "to", "when"])
        .into_iter()
        .next()
    {
        return drop(warnings, format!("unknown field {key}"));
    }
    let mut when = Requirement::default();
    for cond in list(rule, "when") {
        if let Err(why) = condition(cond, config, &mut when) {
            return drop(warnings, why);
        }
    }
    let mut alternatives = Vec::new();
    let froms = list(rule, "from");
    if froms.is_empty() {
        alternatives.push(when.clone());
    }
    for from in froms {
        match source(from.get("source").unwrap_or(&Value::Null), config) {
            Ok(alts) => {
                for mut alt in alts {
                    if merge(&mut alt, &when).is_err() {
                        continue;
                    }
                    alternatives.push(alt);
                }
            }
            Err(why) => return drop(warnings, why),
        }
    }
    let mut matches = Vec::new();
    let tos = list(rule, "to");
    if tos.is_empty() {
        matches.push(Match::default());
    }
    for to in tos {
        match operation(to.get("operation").unwrap_or(&Value::Null)) {
            Ok(m) => matches.push(m),
            Err(why) => return drop(warnings, why),
        }
    }
    for m in &matches {
        for alt in &alternatives {
            out.push(Rule {
                name: name.clone(),
                match_: m.clone(),
                allow: (!alt.authenticated).then(|| "anonymous".to_owned()),
                providers: alt.providers.clone(),
                claims: alt.claims.clone(),
                ..Rule::default()
            });
        }
    }
}

fn deny_rule(
    doc: &Doc,
    i: usize,
    rule: &Value,
    out: &mut Vec<Rule>,
    require_jwt: &mut Vec<Option<Match>>,
    warnings: &mut Vec<Warning>,
) {
    let drop = |warnings: &mut Vec<Warning>, why: &str| {
        doc.warn(
            warnings,
            format!("DENY rules[{i}] not carried over ({why}): requests it denies may be allowed"),
        );
    };
    if !list(rule, "when").is_empty() || !unknown_keys(rule, &["from", "to", "when"]).is_empty() {
        return drop(
            warnings,
            "only `to` and `from: notRequestPrincipals: [\"*\"]` are carried over",
        );
    }
    let mut matches = Vec::new();
    for to in list(rule, "to") {
        match operation(to.get("operation").unwrap_or(&Value::Null)) {
            Ok(m) => matches.push(m),
            Err(why) => return drop(warnings, &why),
        }
    }
    let froms = list(rule, "from");
    if froms.is_empty() {
        if matches.is_empty() {
            matches.push(Match::default());
        }
        for m in matches {
            out.push(Rule {
                name: format!("{}-deny", rule_base_name(doc, i)),
                match_: m,
                allow: Some("deny".to_owned()),
                ..Rule::default()
            });
        }
        return;
    }
    let requires_token = froms.iter().all(|f| {
        let s = f.get("source").unwrap_or(&Value::Null);
        unknown_keys(s, &["notRequestPrincipals"]).is_empty()
            && strings(s, "notRequestPrincipals") == ["*"]
    });
    if !requires_token {
        return drop(
            warnings,
            "only `from: notRequestPrincipals: [\"*\"]` (a token is required) is carried over",
        );
    }
    if matches.is_empty() {
        require_jwt.push(None);
    } else {
        require_jwt.extend(matches.into_iter().map(Some));
    }
}

/// A `when` condition added to `req`.
fn condition(cond: &Value, config: &Config, req: &mut Requirement) -> Result<(), String> {
    let key = str_at(cond, &["key"]).ok_or("a condition without key")?;
    if cond.get("notValues").is_some() {
        return Err(format!("{key}: notValues"));
    }
    let values = strings(cond, "values");
    if values.iter().any(|v| v.contains('*')) {
        return Err(format!("{key}: wildcard values"));
    }
    let values: Vec<Value> = values.into_iter().map(Value::from).collect();
    req.authenticated = true;
    let claim = if let Some(rest) = key.strip_prefix("request.auth.claims") {
        claim_path(rest).ok_or_else(|| format!("{key}: not request.auth.claims[NAME]"))?
    } else {
        match key {
            "request.auth.audiences" => "aud".to_owned(),
            "request.auth.presenter" => "azp".to_owned(),
            "request.auth.principal" => {
                let mut alts = principals(&strings(cond, "values"), config)?;
                if alts.len() != 1 {
                    return Err(format!("{key}: principals of several issuers"));
                }
                let alt = alts.remove(0);
                return merge(req, &alt).map_err(|()| format!("{key}: contradicts the source"));
            }
            other => return Err(format!("condition {other}")),
        }
    };
    add_claim(req, &claim, values)
}

/// `[a][b]` -> `a.b`.
fn claim_path(text: &str) -> Option<String> {
    let mut parts = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let inner = rest.strip_prefix('[')?;
        let end = inner.find(']')?;
        let part = &inner[..end];
        if part.is_empty() || part.contains('.') {
            return None;
        }
        parts.push(part);
        rest = &inner[end + 1..];
    }
    (!parts.is_empty()).then(|| parts.join("."))
}

fn add_claim(req: &mut Requirement, claim: &str, values: Vec<Value>) -> Result<(), String> {
    match req.claims.get_mut(claim) {
        // Both must hold: the values both allow.
        Some(existing) => {
            existing.retain(|v| values.contains(v));
            Ok(())
        }
        None => {
            req.claims.insert(claim.to_owned(), values);
            Ok(())
        }
    }
}

/// Adds `other`'s demands to `req` (both must hold). Err: they cannot both hold.
fn merge(req: &mut Requirement, other: &Requirement) -> Result<(), ()> {
    req.authenticated |= other.authenticated;
    if !other.providers.is_empty() {
        if req.providers.is_empty() {
            req.providers = other.providers.clone();
        } else {
            req.providers.retain(|p| other.providers.contains(p));
            if req.providers.is_empty() {
                return Err(());
            }
        }
    }
    for (claim, values) in &other.claims {
        let _ = add_claim(req, claim, values.clone());
    }
    Ok(())
}

/// A `source` as alternatives.
fn source(source: &Value, config: &Config) -> Result<Vec<Requirement>, String> {
    if let Some(key) = unknown_keys(source, &["requestPrincipals"])
        .into_iter()
        .next()
    {
        return Err(format!("source.{key}"));
    }
    let principals_list = strings(source, "requestPrincipals");
    if principals_list.is_empty() {
        return Ok(vec![Requirement::default()]);
    }
    principals(&principals_list, config)
}

/// `requestPrincipals` (`*`, `ISS/SUB`, `ISS/*`) as alternatives, one per issuer.
fn principals(list: &[String], config: &Config) -> Result<Vec<Requirement>, String> {
    if list.iter().any(|p| p == "*") {
        return Ok(vec![Requirement {
            authenticated: true,
            ..Requirement::default()
        }]);
    }
    // issuer -> subjects (None: any subject)
    let mut by_issuer: Vec<(String, Option<Vec<Value>>)> = Vec::new();
    for p in list {
        let (iss, sub) = p
            .rsplit_once('/')
            .ok_or_else(|| format!("requestPrincipal {p:?} is not ISSUER/SUBJECT"))?;
        if iss.contains('*') || (sub.contains('*') && sub != "*") {
            return Err(format!(
                "requestPrincipal {p:?}: wildcards other than ISSUER/*"
            ));
        }
        let entry = match by_issuer.iter_mut().find(|(i, _)| i == iss) {
            Some(e) => e,
            None => {
                by_issuer.push((iss.to_owned(), Some(Vec::new())));
                by_issuer.last_mut().ok_or("unreachable")?
            }
        };
        if sub == "*" {
            entry.1 = None;
        } else if let Some(subs) = &mut entry.1 {
            subs.push(Value::from(sub));
        }
    }
    let mut out = Vec::new();
    for (iss, subs) in by_issuer {
        let providers: Vec<String> = config
            .providers
            .iter()
            .filter(|p| p.issuer.as_deref() == Some(iss.as_str()))
            .map(|p| p.name.clone())
            .collect();
        if providers.is_empty() {
            return Err(format!("no jwtRule has issuer {iss:?}"));
        }
        let mut claims = BTreeMap::new();
        if let Some(subs) = subs {
            claims.insert("sub".to_owned(), subs);
        }
        out.push(Requirement {
            authenticated: true,
            providers,
            claims,
        });
    }
    Ok(out)
}

/// An `operation` as a match.
fn operation(op: &Value) -> Result<Match, String> {
    if let Some(key) = unknown_keys(op, &["hosts", "paths", "methods"])
        .into_iter()
        .next()
    {
        return Err(format!("operation.{key}"));
    }
    let mut m = Match::default();
    let paths = strings(op, "paths");
    if !paths.iter().any(|p| p == "*") {
        for p in paths {
            m.path.push(path(&p)?);
        }
    }
    let hosts = strings(op, "hosts");
    if !hosts.iter().any(|h| h == "*") {
        for h in hosts {
            let bare = h.strip_prefix("*.").unwrap_or(&h);
            if bare.contains('*') || bare.contains(':') {
                return Err(format!("host {h:?} (only exact hosts and *.suffix)"));
            }
            m.host.push(h.to_ascii_lowercase());
        }
    }
    m.methods = strings(op, "methods");
    Ok(m)
}

/// An Istio path (exact, `prefix*`, `*suffix`) as a Portcullis path.
fn path(p: &str) -> Result<String, String> {
    if p.contains('{') {
        return Err(format!("path template {p:?}"));
    }
    match p.strip_suffix('*') {
        Some(prefix) if prefix.ends_with('/') && !prefix.contains('*') => Ok(format!("{prefix}**")),
        Some(_) => Err(format!("path {p:?} (only exact paths and /prefix/*)")),
        None if p.contains('*') => Err(format!("path {p:?} (only exact paths and /prefix/*)")),
        None => Ok(p.to_owned()),
    }
}
