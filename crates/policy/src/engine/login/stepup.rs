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
        now: i64,
    ) -> Result<(), Box<Deny>> {
        let Some(step) = &rule.config.step_up else {
            return Ok(());
        };
        let claims = identity.kept_claims();
        let acr = claims.get("acr").and_then(Value::as_str);
        let acr_ok = acr_satisfies(step, acr);
        let amr_ok = amr_satisfies(step, claims.get("amr"));
        let skew = self.providers[provider].config.clock_skew_secs;
        let fresh_ok = fresh_enough(step, claims.get("auth_time"), now, skew);
        if acr_ok && amr_ok && fresh_ok {
            return Ok(());
        }
        let mut deny = boxed(
            DenyReason::StepUpRequired,
            Some(&rule.name),
            Some(&self.providers[provider].name),
            format!(
                "acr {:?} (want one of {:?}), amr {} (want one of {:?}), auth_time {}",
                acr.unwrap_or(""),
                step.acr_values,
                if amr_ok { "ok" } else { "lacking" },
                step.amr,
                if fresh_ok {
                    "ok"
                } else {
                    "missing or older than max_age"
                },
            ),
        );
        deny.acr_values = step.acr_values_param().map(Into::into);
        deny.max_age = step.max_age.filter(|_| !fresh_ok).map(|m| m.as_secs());
        // A browser with a session is sent to log in again, asking for `acr_values`
        // (and `max_age`); only when the acr or the login's age is what is lacking
        // (the provider cannot be asked for an `amr`: a redirect would come back just
        // as weak, a loop).
        if identity.is_session()
            && (!acr_ok || !fresh_ok)
            && let Some(idx) = rule.config.login
            && is_navigation(req.headers)
            && let Some(mut url) = self.login_redirect(req, idx)
        {
            if let Some(acr_values) = &deny.acr_values {
                url.push_str("&acr_values=");
                url.extend(utf8_percent_encode(acr_values, RD_KEEP));
            }
            if let Some(max_age) = deny.max_age {
                url.push_str(&format!("&max_age={max_age}"));
            }
            deny.redirect = Some(url);
        }
        Err(deny)
    }
}

/// Whether the login (`auth_time`, seconds since the epoch) is recent enough for
/// the rule's `max_age` (always, without one); a missing `auth_time` is not.
fn fresh_enough(step: &StepUp, auth_time: Option<&Value>, now: i64, skew: i64) -> bool {
    let Some(max_age) = step.max_age else {
        return true;
    };
    let Some(at) = auth_time.and_then(Value::as_f64).filter(|t| t.is_finite()) else {
        return false;
    };
    let max = i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX);
    // A login in the future (beyond the skew) is no login to trust either.
    let at = at.floor() as i64;
    at <= now.saturating_add(skew) && now.saturating_sub(at) <= max.saturating_add(skew)
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
