//! The steps of an opaque token's introspection (RFC 7662): the endpoint asked
//! and its answer, then each check of the answer with expected and actual values,
//! as for a JWT. Described from the outcome the engine reached (the check that
//! failed is the engine's); never the token, never the client secret.

use super::{Step, Trace, human_time, relative, shown};
use crate::config::{ProviderConfig, TokenEndpointAuth};
use crate::engine::Provider;
use crate::introspected::{AnswerSource, IntrospectionOutcome};
use portcullis_jose::Claims;

/// The checks of an introspection answer, in the order the engine runs them.
#[derive(Clone, Copy, Debug, Eq, Ord, PartialEq, PartialOrd)]
pub(crate) enum AnswerCheck {
    Active,
    Issuer,
    Audience,
    Exp,
    Nbf,
    TokenType,
    Cnf,
}

/// The endpoint a provider's tokens are introspected at, in words.
pub(crate) fn endpoint(provider: &Provider) -> String {
    let Some(config) = provider.config().introspection.as_ref() else {
        return "(the provider has no introspection)".to_owned();
    };
    if let Some(e) = &config.endpoint {
        return e.clone();
    }
    match provider
        .slot()
        .metadata()
        .as_deref()
        .and_then(|m| m.introspection_endpoint())
    {
        Some(e) => format!("{e} (from discovery)"),
        None => "(none: not configured, and discovery names none yet)".to_owned(),
    }
}

/// The call and what it answered: the endpoint, the client (its id and how it
/// authenticates, never its secret), and `active` or why there is no answer.
pub(crate) fn introspection_answer_step(
    provider: &Provider,
    outcome: &IntrospectionOutcome,
) -> Step {
    let client = provider
        .config()
        .introspection
        .as_ref()
        .map_or_else(String::new, |c| {
            format!(
                ", client {:?} by {}",
                c.client_id,
                match c.auth {
                    TokenEndpointAuth::ClientSecretBasic => "client_secret_basic",
                    TokenEndpointAuth::ClientSecretPost => "client_secret_post",
                }
            )
        });
    let asked = format!(
        "an opaque token for provider {:?}, introspected at {}{client}",
        provider.name(),
        endpoint(provider)
    );
    match outcome {
        IntrospectionOutcome::Active { .. } => {
            Step::new("introspection", true, format!("{asked}: active true"))
        }
        IntrospectionOutcome::Inactive => {
            Step::new("introspection", true, format!("{asked}: active false"))
        }
        IntrospectionOutcome::Unavailable { detail } => Step::new(
            "introspection",
            false,
            format!("{asked}: no usable answer: {detail}"),
        ),
    }
}

/// `active: false`: the provider does not know the token, or it expired or was revoked.
pub(crate) fn inactive_step() -> Step {
    Step::new(
        "active",
        false,
        "expected true, the answer says false (unknown, expired or revoked)",
    )
}

/// Each check of an active answer, in order, up to the one that `failed`.
pub(crate) fn answer_check_steps(
    trace: &mut impl Trace,
    config: &ProviderConfig,
    claims: &Claims,
    failed: Option<AnswerCheck>,
    now: i64,
) {
    let reached = |c: AnswerCheck| failed.is_none_or(|f| c <= f);
    let ok = |c: AnswerCheck| failed != Some(c);
    let checks = [
        AnswerCheck::Active,
        AnswerCheck::Issuer,
        AnswerCheck::Audience,
        AnswerCheck::Exp,
        AnswerCheck::Nbf,
        AnswerCheck::TokenType,
        AnswerCheck::Cnf,
    ];
    let skew = config.clock_skew_secs;
    let now_text = human_time(now as f64);
    for check in checks.into_iter().take_while(|c| reached(*c)) {
        trace.step(|| {
            let (name, detail) = match check {
                AnswerCheck::Active => (
                    "active",
                    format!(
                        "expected true, the answer says {}",
                        shown(claims.get("active"))
                    ),
                ),
                AnswerCheck::Issuer => (
                    "issuer",
                    match (&config.issuer, claims.get("iss")) {
                        (_, None) => "the answer has no iss (not checked)".to_owned(),
                        (Some(i), iss) => format!("expected {i:?}, answer iss {}", shown(iss)),
                        (None, iss) => format!("answer iss {} (no issuer configured)", shown(iss)),
                    },
                ),
                AnswerCheck::Audience => (
                    "audience",
                    if config.audiences.is_empty() {
                        format!(
                            "no audiences configured (not checked), answer aud {}",
                            shown(claims.get("aud"))
                        )
                    } else {
                        format!(
                            "expected one of {:?}, answer aud {}",
                            config.audiences,
                            shown(claims.get("aud"))
                        )
                    },
                ),
                AnswerCheck::Exp => (
                    "exp",
                    match claims.numeric_date("exp").ok().flatten() {
                        Some(exp) => format!(
                            "exp {} ({}), now {now_text}, clock skew {skew}s",
                            human_time(exp),
                            relative(exp, now)
                        ),
                        None if config.require_exp => {
                            format!("exp {} and required", shown(claims.get("exp")))
                        }
                        None => "no exp (the provider allows answers without one)".to_owned(),
                    },
                ),
                AnswerCheck::Nbf => (
                    "nbf",
                    match claims.numeric_date("nbf").ok().flatten() {
                        Some(nbf) => format!(
                            "nbf {} ({}), must not be after now {now_text} + {skew}s",
                            human_time(nbf),
                            relative(nbf, now)
                        ),
                        None => format!("nbf {}", shown(claims.get("nbf"))),
                    },
                ),
                AnswerCheck::TokenType => (
                    "token_type",
                    match claims.get("token_type") {
                        None => "no token_type (taken as Bearer)".to_owned(),
                        Some(v) => {
                            format!("expected \"Bearer\", answer token_type {}", shown(Some(v)))
                        }
                    },
                ),
                AnswerCheck::Cnf => (
                    "cnf",
                    match claims.get("cnf") {
                        None => "not bound (no cnf), as opaque tokens must be".to_owned(),
                        Some(v) => format!(
                            "bound ({}): proof of possession is not taken for opaque tokens",
                            shown(Some(v))
                        ),
                    },
                ),
            };
            Step::new(name, ok(check), detail)
        });
    }
}

/// The note a caller adds to the `introspection` step: where the answer came from.
pub(crate) fn source_note(source: AnswerSource) -> &'static str {
    match source {
        AnswerSource::Cache => "; answer from the introspection cache",
        AnswerSource::Provider => "; answer asked of the provider just now",
        AnswerSource::Unknown => "",
    }
}
