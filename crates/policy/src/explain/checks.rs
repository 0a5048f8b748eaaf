//! The steps of the checks after the token core: the rule's `when:`, the
//! session that stands in for a token, DPoP, and outbound injection. Each is
//! described from the outcome the engine reached, never evaluated again.

use std::sync::Arc;

use super::{Step, human_time};
use crate::condition::Condition;
use crate::config::spiffe::InjectConfig;
use crate::decision::{Decision, Deny, Identity};
use crate::dpop::DpopMode;
use crate::engine::Provider;
use crate::request::SessionCredential;

/// The rule's `when:`: its source and the value the decision used.
pub(crate) fn condition_step(condition: &Condition, value: &Result<bool, String>) -> Step {
    let shown = match value {
        Ok(true) => "true".to_owned(),
        Ok(false) => "false".to_owned(),
        Err(why) => format!("an error: {why}"),
    };
    Step::new(
        "condition",
        matches!(value, Ok(true)),
        format!("when {:?} is {shown}", condition.source()),
    )
}

/// A browser session in place of a bearer token: its provider and end, or why
/// it is no credential here.
pub(crate) fn session_step(
    providers: &[Provider],
    session: Option<&SessionCredential>,
    outcome: &Result<(usize, Arc<Identity>), Box<Deny>>,
) -> Step {
    match (outcome, session) {
        (Ok((idx, _)), Some(SessionCredential::Valid(s))) => Step::new(
            "session",
            true,
            format!(
                "provider {:?}, from a session (not a token), valid until {}",
                providers.get(*idx).map_or("?", |p| p.name()),
                human_time(s.expires_at as f64)
            ),
        ),
        (Ok((idx, _)), _) => Step::new(
            "session",
            true,
            format!(
                "provider {:?}, from a session (not a token)",
                providers.get(*idx).map_or("?", |p| p.name())
            ),
        ),
        (Err(d), _) => {
            let mut detail = format!("{}: {}", d.reason, d.detail);
            // Not the URL itself: it carries the original request's query.
            if d.redirect.is_some() {
                detail.push_str("; a browser is redirected to log in");
            }
            Step::new("session", false, detail)
        }
    }
}

/// DPoP (RFC 9449) for a provider that takes it or a DPoP-bound token.
pub(crate) fn dpop_step(mode: Option<DpopMode>, outcome: &Result<(), Box<Deny>>) -> Step {
    let mode = match mode {
        None => "the provider does not take DPoP",
        Some(DpopMode::Allowed) => "dpop: allowed",
        Some(DpopMode::Required) => "dpop: required",
    };
    match outcome {
        Ok(()) => Step::new(
            "dpop",
            true,
            format!("{mode}; the proof verifies and is unused"),
        ),
        Err(d) => Step::new("dpop", false, format!("{mode}; {}", d.detail)),
    }
}

/// An `inject` rule: the token it sets, or why it has none to set.
pub(crate) fn inject_step(config: &InjectConfig, decision: &Decision) -> Step {
    match decision {
        Decision::Allow(_) => Step::new(
            "inject",
            true,
            format!(
                "a fresh token for audience {:?} is set as Authorization{}",
                config.audience,
                if config.replace {
                    " (replacing any the request has)"
                } else {
                    ""
                }
            ),
        ),
        Decision::Deny(d) => Step::new(
            "inject",
            false,
            format!(
                "{}: {} (audience {:?}, replace {})",
                d.reason, d.detail, config.audience, config.replace
            ),
        ),
    }
}

/// Step-up (`acr_values`, `amr`): what the rule wants against what the token or
/// session shows, and the outcome the engine reached (a login redirect noted).
pub(crate) fn step_up_step(
    step_up: &crate::config::StepUp,
    identity: &Identity,
    outcome: &Result<(), Box<Deny>>,
) -> Step {
    let claims = identity.kept_claims();
    let acr = claims
        .get("acr")
        .map_or_else(|| "(none)".to_owned(), |v| super::shown(Some(v)));
    let amr = claims
        .get("amr")
        .map_or_else(|| "(none)".to_owned(), |v| super::shown(Some(v)));
    let wants = |list: &[String]| {
        if list.is_empty() {
            "any".to_owned()
        } else {
            format!("one of [{}]", list.join(", "))
        }
    };
    let from = if identity.is_session() {
        "session"
    } else {
        "token"
    };
    let mut detail = format!(
        "acr wants {}, {from} acr {acr}; amr wants {}, {from} amr {amr}",
        wants(&step_up.acr_values),
        wants(&step_up.amr),
    );
    if let Err(d) = outcome
        && d.redirect.is_some()
    {
        detail.push_str("; a browser is sent to log in again with acr_values");
    }
    Step::new("step_up", outcome.is_ok(), detail)
}
