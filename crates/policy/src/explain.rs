//! Explaining a decision: the engine reports each step it takes to a [`Trace`].
//!
//! The hot path passes [`NoTrace`], whose [`Trace::step`] never calls the closure
//! that would describe the step (so nothing is formatted); `portcullis explain`
//! and admin `POST /explain` pass a [`Recorder`]. Both run the same decide
//! functions, so the explanation is the decision's own account, not a second
//! implementation. What is described here (expected and actual values) is read
//! from the same config and token; whether a step held comes from the engine.
//!
//! Nothing here ever holds the token itself: steps name where it was found,
//! its header and its claims.

mod checks;
mod introspection;
mod proxy;
mod request;

use std::time::{Duration, UNIX_EPOCH};

use portcullis_jose::{Claims, CompactJws, Header, KeySet, TokenError, VerifyingKey};
use serde_json::{Value, json};

use crate::config::{Access, JwksSource, ProviderConfig, RuleConfig, TokenLocation};
use crate::decision::{Decision, Deny};
use crate::engine::Provider;
use crate::matcher::{HostPattern, PathPattern};

pub(crate) use checks::{condition_step, dpop_step, inject_step, session_step, step_up_step};
pub(crate) use introspection::{
    AnswerCheck, answer_check_steps, inactive_step, introspection_answer_step,
};
pub(crate) use proxy::proxy_step;
pub use request::{ExplainRequest, InvalidExplainRequest, MAX_EXPLAIN_BODY, PreparedExplain};

/// One step of a decision.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct Step {
    /// What was looked at (`rule`, `token`, `key`, `exp`, `claim`...).
    pub step: &'static str,
    /// Whether it held.
    pub ok: bool,
    /// Expected and actual values, in words.
    pub detail: String,
}

impl Step {
    /// A step.
    pub fn new(step: &'static str, ok: bool, detail: impl Into<String>) -> Step {
        Step {
            step,
            ok,
            detail: detail.into(),
        }
    }
}

/// An observer of a decision's steps.
pub trait Trace {
    /// Whether steps are kept. When false, [`Trace::step`] never calls its closure,
    /// and the engine consults and fills the token cache as usual; when true it
    /// verifies afresh and stores nothing (an explained token is never kept).
    const RECORDS: bool;

    /// Reports a step; `describe` is called only when steps are kept.
    fn step(&mut self, describe: impl FnOnce() -> Step);
}

/// The hot path's trace: keeps nothing, costs nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoTrace;

/// Keeps every step, in order.
#[derive(Clone, Debug, Default)]
pub struct Recorder {
    steps: Vec<Step>,
}

impl Recorder {
    /// The steps so far.
    pub fn into_steps(self) -> Vec<Step> {
        self.steps
    }
}

/// A decision with the steps that led to it.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct Explanation {
    /// `allow` or `deny`.
    pub allowed: bool,
    /// The HTTP status a frontend answers with.
    pub status: u16,
    /// The reason code of a deny.
    pub reason: Option<&'static str>,
    /// The rule that decided, if any.
    pub rule: Option<String>,
    /// The provider whose token it was (or whose check failed), if any.
    pub provider: Option<String>,
    /// The steps, the last one being the response.
    pub steps: Vec<Step>,
    /// The opaque token's introspection the caller may run and explain again
    /// with (see [`PreparedExplain::explain`]); not part of the JSON.
    pub introspect: Option<crate::IntrospectionAsk>,
}

impl Explanation {
    /// The explanation of `decision`, reached through `steps`; a last step names
    /// the response (status and headers).
    pub fn new(decision: &Decision, mut steps: Vec<Step>) -> Explanation {
        steps.push(response_step(decision));
        let introspect = match decision {
            Decision::Deny(d) => d.introspect.as_deref().cloned(),
            Decision::Allow(a) => a
                .dry_run
                .as_ref()
                .and_then(|d| d.introspect.as_deref().cloned()),
        };
        match decision {
            Decision::Allow(a) => Explanation {
                allowed: true,
                status: 200,
                reason: None,
                rule: Some(a.rule.to_string()),
                provider: a.identity.as_ref().map(|i| i.provider.to_string()),
                steps,
                introspect,
            },
            Decision::Deny(d) => Explanation {
                allowed: false,
                status: d.status(),
                reason: Some(d.reason.as_str()),
                rule: d.rule.as_deref().map(str::to_owned),
                provider: d.provider.as_deref().map(str::to_owned),
                steps,
                introspect,
            },
        }
    }

    /// The contract's JSON: `{"decision", "status", "reason", "rule", "provider", "steps"}`.
    pub fn to_json(&self) -> Value {
        json!({
            "decision": if self.allowed { "allow" } else { "deny" },
            "status": self.status,
            "reason": self.reason,
            "rule": self.rule,
            "provider": self.provider,
            "steps": self.steps.iter().map(|s| json!({
                "step": s.step,
                "ok": s.ok,
                "detail": s.detail,
            })).collect::<Vec<_>>(),
        })
    }

    /// Says in the `introspection` step where its answer came from.
    pub fn note_answer_source(&mut self, source: crate::AnswerSource) {
        if let Some(step) = self
            .steps
            .iter_mut()
            .rev()
            .find(|s| s.step == "introspection")
        {
            step.detail.push_str(introspection::source_note(source));
        }
    }

    /// The explanation for a terminal: one line per step.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for s in &self.steps {
            out.push_str(if s.ok { "  ok    " } else { "  FAIL  " });
            out.push_str(&format!("{:<10} {}\n", s.step, s.detail));
        }
        let verdict = match self.reason {
            None => format!("ALLOW {}", self.status),
            Some(reason) => format!("DENY {} {reason}", self.status),
        };
        out.push_str(&format!(
            "{verdict} (rule {}, provider {})\n",
            self.rule.as_deref().unwrap_or("-"),
            self.provider.as_deref().unwrap_or("-")
        ));
        out
    }
}

// === impl Trace ===

impl Trace for NoTrace {
    const RECORDS: bool = false;

    #[inline(always)]
    fn step(&mut self, _describe: impl FnOnce() -> Step) {}
}

impl Trace for Recorder {
    const RECORDS: bool = true;

    fn step(&mut self, describe: impl FnOnce() -> Step) {
        self.steps.push(describe());
    }
}

/// The response a frontend gives for `decision`.
fn response_step(decision: &Decision) -> Step {
    match decision {
        Decision::Allow(a) => {
            let mut detail = "200".to_owned();
            if let Some(dry) = &a.dry_run {
                detail.push_str(&format!(
                    " (dry run: would deny {} {})",
                    dry.status(),
                    dry.reason
                ));
            }
            for (name, value) in &a.set_headers {
                detail.push_str(&format!(
                    "; set {name}: {}",
                    String::from_utf8_lossy(value.as_bytes())
                ));
            }
            if !a.remove_headers.is_empty() {
                let names: Vec<&str> = a.remove_headers.iter().map(|h| h.as_str()).collect();
                detail.push_str(&format!("; remove {}", names.join(", ")));
            }
            if let Some(age) = a.cache_max_age {
                detail.push_str(&format!("; Cache-Control: max-age={age}"));
            }
            Step::new("response", true, detail)
        }
        Decision::Deny(d) => Step::new("response", false, deny_detail(d)),
    }
}

fn deny_detail(d: &Deny) -> String {
    let mut detail = format!("{} {}: {}", d.status(), d.reason, d.detail);
    if let Some(www) = d.www_authenticate() {
        detail.push_str(&format!("; WWW-Authenticate: {www}"));
    }
    detail
}

/// Whether a rule matched, and which part of it did not.
pub(crate) fn rule_step(
    rule: &RuleConfig,
    matched: bool,
    method: &http::Method,
    host: &str,
    path: &str,
) -> Step {
    if matched {
        let access = match rule.access {
            Access::Anonymous => "anonymous: no token needed",
            Access::Authenticated => "a valid token is needed",
            Access::Deny => "the rule denies",
            Access::Optional => "optional: no token is anonymous, a token must be valid",
        };
        return Step::new(
            "rule",
            true,
            format!(
                "rule {:?} matches {method} {host}{path}; {access}",
                rule.name
            ),
        );
    }
    let mut why = Vec::new();
    if !rule.hosts.is_empty() && !rule.hosts.iter().any(|h| h.matches(host)) {
        let hosts: Vec<String> = rule
            .hosts
            .iter()
            .map(|h| match h {
                HostPattern::Exact(h) => h.clone(),
                HostPattern::Suffix(s) => format!("*{s}"),
            })
            .collect();
        why.push(format!("host {host:?} is not {}", list(&hosts)));
    }
    if !rule.paths.is_empty() && !rule.paths.iter().any(|p| p.matches(path)) {
        let paths: Vec<&str> = rule.paths.iter().map(PathPattern::as_str).collect();
        why.push(format!("path {path:?} is not {}", list(&paths)));
    }
    if !rule.methods.is_empty() && !rule.methods.iter().any(|m| m == method) {
        why.push(format!("method {method} is not {}", list(&rule.methods)));
    }
    Step::new(
        "rule",
        false,
        format!("rule {:?} does not match: {}", rule.name, why.join("; ")),
    )
}

fn list<T: std::fmt::Display>(items: &[T]) -> String {
    let names: Vec<String> = items.iter().map(ToString::to_string).collect();
    match names.as_slice() {
        [one] => one.clone(),
        _ => format!("any of [{}]", names.join(", ")),
    }
}

/// Where a location is, in words.
pub(crate) fn location(loc: &TokenLocation) -> String {
    match loc {
        TokenLocation::Header { name, prefix } if prefix.is_empty() => format!("header {name}"),
        TokenLocation::Header { name, prefix } => format!("header {name} (prefix {prefix:?})"),
        TokenLocation::Cookie(name) => format!("cookie {name}"),
        TokenLocation::Query(name) => format!("query parameter {name}"),
    }
}

/// Where the provider's keys come from.
pub fn key_source(provider: &ProviderConfig) -> String {
    match &provider.jwks.source {
        JwksSource::Static(_) => "inline (config)".to_owned(),
        JwksSource::File(path) => format!("file {}", path.display()),
        JwksSource::Uri(uri) => format!("uri {uri}"),
        JwksSource::Discovery(issuer) => format!("discovery {issuer}"),
        JwksSource::Spiffe(spiffe) => match &spiffe.bundle {
            crate::config::spiffe::BundleSource::File(path) => format!(
                "SPIFFE bundle of {} from file {}",
                spiffe.trust_domain,
                path.display()
            ),
            crate::config::spiffe::BundleSource::WorkloadApi(socket) => format!(
                "SPIFFE bundle of {} from the Workload API at {socket}",
                spiffe.trust_domain
            ),
        },
    }
}

/// A time as RFC 3339, in UTC.
pub fn human_time(secs: f64) -> String {
    if !(0.0..=253_402_300_799.0).contains(&secs) {
        return format!("{secs}");
    }
    let t = UNIX_EPOCH + Duration::from_secs(secs as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// `in 5m` / `3m ago`.
fn relative(secs: f64, now: i64) -> String {
    let delta = secs - now as f64;
    let span = humantime::format_duration(Duration::from_secs(delta.abs().min(1e12) as u64));
    if delta >= 0.0 {
        format!("in {span}")
    } else {
        format!("{span} ago")
    }
}

/// What the token core said of a token.
pub(crate) enum TokenOutcome<'a> {
    /// It verified, with this key.
    Verified(&'a Header, &'a Claims, &'a VerifyingKey),
    /// It failed; the signed header and claims when only the claims failed.
    Rejected(&'a TokenError, Option<(&'a Header, &'a Claims)>),
}

/// The checks of one token by one provider, in the token core's order, each with
/// expected and actual values; the one `error` names failed, those after it were
/// not reached and are left out.
pub(crate) fn token_steps(
    trace: &mut impl Trace,
    checker: &Provider,
    keys: &KeySet,
    token: &str,
    outcome: TokenOutcome<'_>,
    now: i64,
) {
    let (provider, validation) = (checker.config(), checker.validation());
    let (header, claims, key, error) = match outcome {
        TokenOutcome::Verified(h, c, k) => (Some(h.clone()), Some(c), Some(k), None),
        TokenOutcome::Rejected(e, signed) => {
            // The header of a token whose signature did not hold is read only to
            // say what it asked for; it is never trusted.
            let header = match signed {
                Some((h, _)) => Some(h.clone()),
                None => CompactJws::parse(token, validation.max_token_bytes)
                    .ok()
                    .map(CompactJws::into_header),
            };
            (header, signed.map(|s| s.1), None, Some(e))
        }
    };
    let stage = error.map_or(Stage::Done, Stage::of);
    let failed = |s: Stage| stage == s;
    trace.step(|| {
        Step::new(
            "format",
            !failed(Stage::Format),
            match (error, &header) {
                (Some(e), _) if failed(Stage::Format) => {
                    format!("the token is not a valid JWS: {e}")
                }
                (_, Some(h)) => format!(
                    "a compact JWS of {} bytes (limit {}), header alg {}{}",
                    token.len(),
                    validation.max_token_bytes,
                    h.alg().name(),
                    h.kid().map(|k| format!(", kid {k:?}")).unwrap_or_default()
                ),
                _ => format!("a compact JWS of {} bytes", token.len()),
            },
        )
    });
    if stage == Stage::Format {
        return;
    }
    let allowed = validation.algorithms.unwrap_or_else(|| keys.algorithms());
    let allowed_names: Vec<&str> = allowed.iter().map(|a| a.name()).collect();
    let alg = header.as_ref().map_or("?", |h| h.alg().name());
    trace.step(|| {
        Step::new(
            "algorithm",
            !failed(Stage::Algorithm),
            format!(
                "alg {alg}, allowed [{}]{}",
                allowed_names.join(", "),
                if validation.algorithms.is_none() {
                    " (the keys' algorithms)"
                } else {
                    ""
                }
            ),
        )
    });
    if stage == Stage::Algorithm {
        return;
    }
    let known: Vec<String> = keys
        .keys()
        .iter()
        .map(|k| {
            k.kid()
                .map_or_else(|| "(no kid)".to_owned(), |k| k.as_str().to_owned())
        })
        .collect();
    let asked = header
        .as_ref()
        .and_then(|h| h.kid().map(|k| format!("{k:?}")))
        .unwrap_or_else(|| "none".to_owned());
    let source = match checker.slot().status().fetched_at {
        Some(at) => format!(
            "{} (published {})",
            key_source(provider),
            human_time(at as f64)
        ),
        None => key_source(provider),
    };
    trace.step(|| {
        let detail = match key {
            Some(k) => format!(
                "kid {}, {} key, algorithms [{}], from {}",
                k.kid().map_or("(none)", |k| k.as_str()),
                k.material().kty(),
                k.algorithms()
                    .iter()
                    .map(|a| a.name())
                    .collect::<Vec<_>>()
                    .join(", "),
                source,
            ),
            None if failed(Stage::Key) => format!(
                "no key fits: the token names kid {asked}, the provider has [{}] from {source}",
                known.join(", "),
            ),
            None => format!(
                "the token names kid {asked}; a key of [{}] from {source} verified it",
                known.join(", "),
            ),
        };
        Step::new("key", !failed(Stage::Key), detail)
    });
    if stage == Stage::Key {
        return;
    }
    trace.step(|| {
        Step::new(
            "signature",
            !failed(Stage::Signature),
            if failed(Stage::Signature) {
                format!("the {alg} signature does not verify with any key the token may name")
            } else {
                format!("the {alg} signature verifies")
            },
        )
    });
    if stage == Stage::Signature {
        return;
    }
    if let (Some(e), true) = (error, failed(Stage::Claims)) {
        trace.step(|| Step::new("claims", false, format!("the claims are not valid: {e}")));
        return;
    }
    let Some(claims) = claims else {
        return;
    };
    let skew = validation.clock_skew_secs;
    let date = |name: &'static str| claims.numeric_date(name).ok().flatten();
    let now_text = human_time(now as f64);
    trace.step(|| {
        let detail = match date("exp") {
            Some(exp) => format!(
                "exp {} ({}), now {now_text}, clock skew {skew}s",
                human_time(exp),
                relative(exp, now)
            ),
            None if validation.require_exp => "exp is missing and required".to_owned(),
            None => "no exp (the provider allows tokens without one)".to_owned(),
        };
        Step::new("exp", !failed(Stage::Exp), detail)
    });
    if stage == Stage::Exp {
        return;
    }
    for (name, this) in [("nbf", Stage::Nbf), ("iat", Stage::Iat)] {
        let Some(t) = date(name) else {
            continue;
        };
        trace.step(|| {
            Step::new(
                name,
                !failed(this),
                format!(
                    "{name} {} ({}), must not be after now {now_text} + {skew}s",
                    human_time(t),
                    relative(t, now)
                ),
            )
        });
        if stage == this {
            return;
        }
    }
    if let Some(issuer) = &validation.issuer {
        trace.step(|| {
            Step::new(
                "issuer",
                !failed(Stage::Issuer),
                format!(
                    "expected {issuer:?}, token iss {}",
                    shown(claims.get("iss"))
                ),
            )
        });
        if stage == Stage::Issuer {
            return;
        }
    }
    if !validation.audiences.is_empty() {
        trace.step(|| {
            Step::new(
                "audience",
                !failed(Stage::Audience),
                format!(
                    "expected one of {:?}, token aud {}",
                    validation.audiences,
                    shown(claims.get("aud"))
                ),
            )
        });
        if stage == Stage::Audience {
            return;
        }
    }
    if let Some(typ) = &validation.typ {
        trace.step(|| {
            Step::new(
                "typ",
                !failed(Stage::Typ),
                format!(
                    "expected {typ:?}, token typ {:?}",
                    header.as_ref().and_then(Header::typ).unwrap_or("(none)")
                ),
            )
        });
    }
}

/// A claim's value as JSON, or `(missing)`.
pub(crate) fn shown(value: Option<&Value>) -> String {
    match value {
        None => "(missing)".to_owned(),
        Some(v) => {
            let text = v.to_string();
            match text.char_indices().nth(200) {
                Some((i, _)) => format!("{}…", &text[..i]),
                None => text,
            }
        }
    }
}

/// Which check of the token core an error comes from, in the order they run.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
enum Stage {
    Format,
    Algorithm,
    Key,
    Signature,
    Claims,
    Exp,
    Nbf,
    Iat,
    Issuer,
    Audience,
    Typ,
    Done,
}

impl Stage {
    fn of(e: &TokenError) -> Stage {
        match e {
            TokenError::AlgorithmNotAllowed { .. } | TokenError::UnsupportedAlgorithm { .. } => {
                Stage::Algorithm
            }
            TokenError::KeyNotFound { .. } => Stage::Key,
            TokenError::SignatureInvalid => Stage::Signature,
            TokenError::Expired { .. } | TokenError::MissingExp => Stage::Exp,
            TokenError::NotYetValid { .. } => Stage::Nbf,
            TokenError::IssuedInFuture { .. } => Stage::Iat,
            TokenError::IssuerMismatch => Stage::Issuer,
            TokenError::AudienceMismatch => Stage::Audience,
            TokenError::TypeMismatch { .. } => Stage::Typ,
            TokenError::InvalidClaim { .. } => Stage::Claims,
            TokenError::InvalidJson {
                segment: portcullis_jose::Segment::Payload,
                ..
            } => Stage::Claims,
            _ => Stage::Format,
        }
    }
}

#[cfg(test)]
mod tests;
