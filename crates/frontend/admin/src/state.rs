//! `GET /state.json`: what the admin page shows, for the live config: providers
//! with their keys (kid, alg, type; never key material), where the keys come
//! from and how that source is doing, and the rules in order.

use portcullis_policy::config::{Access, RuleMode};
use portcullis_policy::explain::{human_time, key_source};
use portcullis_policy::matcher::HostPattern;
use portcullis_policy::{Engine, Provider};
use serde_json::{Value, json};

/// The page's data.
pub(crate) fn state(engine: &Engine, now: i64) -> Value {
    let providers: Vec<Value> = engine.providers().iter().map(provider).collect();
    let names: Vec<&str> = engine.providers().iter().map(Provider::name).collect();
    let rules: Vec<Value> = engine
        .rules()
        .map(|r| {
            let hosts: Vec<String> = r
                .hosts
                .iter()
                .map(|h| match h {
                    HostPattern::Exact(h) => h.clone(),
                    HostPattern::Suffix(s) => format!("*{s}"),
                })
                .collect();
            json!({
                "name": r.name,
                "hosts": hosts,
                "paths": r.paths.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
                "methods": r.methods.iter().map(|m| m.as_str()).collect::<Vec<_>>(),
                "access": match r.access {
                    Access::Anonymous => "anonymous",
                    Access::Authenticated => "authenticated",
                    Access::Deny => "deny",
                    Access::Optional => "optional",
                },
                "mode": if r.mode == RuleMode::DryRun { "dry_run" } else { "enforce" },
                "providers": match r.access {
                    Access::Authenticated | Access::Optional => r.providers.iter().filter_map(|&i| names.get(i)).collect::<Vec<_>>(),
                    _ => Vec::new(),
                },
                "claims": r.claims.iter().map(|(path, values)| format!("{path} in {}", Value::from(values.clone()))).collect::<Vec<_>>(),
                "scopes": r.scopes,
                "deny_template": r.deny.is_some(),
                "when": r.when.as_ref().map(|w| w.source()),
                "login": r.login.and_then(|i| names.get(i)),
                "upstream": r.upstream.as_ref().map(|u| u.name.as_str()),
            })
        })
        .collect();
    json!({
        "now": human_time(now as f64),
        "ready": engine.is_ready(),
        "providers": providers,
        "rules": rules,
        "cached_tokens": engine.cached_tokens(),
    })
}

fn provider(p: &Provider) -> Value {
    let status = p.slot().status();
    let time = |t: Option<i64>| t.map(|t| human_time(t as f64));
    let keys: Vec<Value> = p
        .slot()
        .load()
        .map(|set| {
            set.keys()
                .iter()
                .map(|k| {
                    json!({
                        "kid": k.kid().map(|k| k.as_str()),
                        "algorithms": k.algorithms().iter().map(|a| a.name()).collect::<Vec<_>>(),
                        "type": k.material().kty(),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    json!({
        "name": p.name(),
        "issuer": p.config().issuer,
        "audiences": p.config().audiences,
        "source": key_source(p.config()),
        "ready": p.slot().is_ready(),
        "keys": keys,
        "fetched_at": time(status.fetched_at),
        "next_refresh": time(status.next_refresh),
        "last_error": status.last_error.as_ref().map(|(at, e)| json!({"at": human_time(*at as f64), "error": e})),
    })
}
