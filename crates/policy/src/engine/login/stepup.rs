//! Step-up (RFC 9470): a rule's `acr_values` and `amr` against the `acr` and `amr`
//! of the token or session that passed. Too weak is a 401 `step_up_required` with
//! the `insufficient_user_authentication` challenge; a browser navigation with a
//! session on a `login` rule is sent to log in again with `acr_values`.

use percent_encoding::utf8_percent_encode;
use serde_json::Value;

use super::{RD_KEEP, is_navigation};
use crate::config::StepUp;
use crate::decision::{Deny, DenyReason, Identity};
use crate::engine::{Engine, Rule, boxed};
use crate::request::AuthRequest;

impl Engine {
    /// Checks the rule's step-up requirement, if it has one, on `identity`.
    pub(in crate::engine) fn check_step_up(
        &self,
        rule: &Rule,
        provider: usize,
        identity: &Identity,
        req: &AuthRequest<'_>,
    ) -> Result<(), Box<Deny>> {
        let Some(step) = &rule.config.step_up else {
            return Ok(());
        };
        let claims = identity.kept_claims();
        let acr = claims.get("acr").and_then(Value::as_str);
        let acr_ok = acr_satisfies(step, acr);
        let amr_ok = amr_satisfies(step, claims.get("amr"));
        if acr_ok && amr_ok {
            return Ok(());
        }
        let mut deny = boxed(
            DenyReason::StepUpRequired,
            Some(&rule.name),
            Some(&self.providers[provider].name),
            format!(
                "acr {:?} (want one of {:?}), amr {} (want one of {:?})",
                acr.unwrap_or(""),
                step.acr_values,
                if amr_ok { "ok" } else { "lacking" },
                step.amr
            ),
        );
        deny.acr_values = step.acr_values_param().map(Into::into);
        // A browser with a session is sent to log in again, asking for `acr_values`;
        // only when the acr is what is lacking (the provider cannot be asked for an
        // `amr`: a redirect would come back just as weak, a loop).
        if identity.is_session()
            && !acr_ok
            && let (Some(idx), Some(acr_values)) = (rule.config.login, &deny.acr_values)
            && is_navigation(req.headers)
            && let Some(mut url) = self.login_redirect(req, idx)
        {
            url.push_str("&acr_values=");
            url.extend(utf8_percent_encode(acr_values, RD_KEEP));
            deny.redirect = Some(url);
        }
        Err(deny)
    }
}

/// Whether `acr` is one of the accepted values (any, when none are named).
fn acr_satisfies(step: &StepUp, acr: Option<&str>) -> bool {
    step.acr_values.is_empty() || acr.is_some_and(|a| step.acr_values.iter().any(|v| v == a))
}

/// Whether `amr` (an array of strings, RFC 8176) holds one of the required values.
fn amr_satisfies(step: &StepUp, amr: Option<&Value>) -> bool {
    if step.amr.is_empty() {
        return true;
    }
    match amr {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .any(|m| step.amr.iter().any(|v| v == m)),
        _ => false,
    }
}
