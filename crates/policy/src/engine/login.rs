//! Sessions as credentials, and the login redirect of `login` rules: what the
//! engine does when a request carries no bearer token.

use std::sync::Arc;

use http::HeaderMap;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use portcullis_jose::Claims;

use super::{Engine, Rule, boxed, render_headers};
use crate::canonical::canonical_host;
use crate::decision::{Deny, DenyReason, Identity};
use crate::request::{AuthRequest, SessionCredential};

/// Characters kept as they are in the `rd` query value (RFC 3986 unreserved).
pub(super) const RD_KEEP: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

impl Engine {
    /// No bearer token: the request's session, if it holds and the rule accepts its
    /// provider; else the deny (`login_required`, `session_invalid` or
    /// `token_missing`), with a redirect to log in for a browser on a `login` rule.
    pub(super) fn session_identity(
        &self,
        rule: &Rule,
        req: &AuthRequest<'_>,
        missing: Box<Deny>,
        now: i64,
    ) -> Result<(usize, Arc<Identity>), Box<Deny>> {
        let mut deny = match req.session {
            Some(SessionCredential::Valid(session)) => {
                let idx = self
                    .providers
                    .iter()
                    .position(|p| *p.name == *session.provider)
                    .filter(|idx| rule.config.providers.contains(idx));
                match idx {
                    Some(idx) if session.expires_at > now => {
                        let provider = &self.providers[idx];
                        let claims = Claims::from_json(&session.claims_json).map_err(|e| {
                            boxed(
                                DenyReason::SessionInvalid,
                                Some(&rule.name),
                                Some(&provider.name),
                                format!("session claims: {e}"),
                            )
                        });
                        match claims {
                            Ok(claims) => {
                                let headers =
                                    render_headers(&provider.config.claims_to_headers, &claims);
                                let kept =
                                    claims.retain(|c| self.kept_claims.iter().any(|k| k == c));
                                return Ok((
                                    idx,
                                    Arc::new(Identity::from_session(
                                        provider.name.clone(),
                                        &session.claims_json,
                                        kept,
                                        Some(session.expires_at as f64),
                                        headers,
                                    )),
                                ));
                            }
                            Err(d) => d,
                        }
                    }
                    Some(idx) => boxed(
                        DenyReason::SessionInvalid,
                        Some(&rule.name),
                        Some(&self.providers[idx].name),
                        "the session has expired".to_owned(),
                    ),
                    // A session from a provider this rule does not accept is no
                    // credential here.
                    None => self.no_credential(rule, missing),
                }
            }
            Some(SessionCredential::Invalid { detail }) => boxed(
                DenyReason::SessionInvalid,
                Some(&rule.name),
                None,
                format!("session cookie: {detail}"),
            ),
            None => self.no_credential(rule, missing),
        };
        if let Some(idx) = rule.config.login
            && is_navigation(req.headers)
        {
            deny.redirect = self.login_redirect(req, idx);
            // A rule with `max_age` asks for it at once (the ID token then carries
            // `auth_time`): no second round trip to log in again.
            if let (Some(url), Some(max_age)) = (
                &mut deny.redirect,
                rule.config.step_up.as_ref().and_then(|s| s.max_age),
            ) {
                url.push_str(&format!("&max_age={}", max_age.as_secs()));
            }
        }
        Err(deny)
    }

    fn no_credential(&self, rule: &Rule, missing: Box<Deny>) -> Box<Deny> {
        match rule.config.login {
            Some(idx) => boxed(
                DenyReason::LoginRequired,
                Some(&rule.name),
                Some(&self.providers[idx].name),
                "no token and no session on a login rule".to_owned(),
            ),
            None => missing,
        }
    }

    /// `public_url/oauth2/start?rd=<original URL>`, and `&provider=NAME` when more
    /// than one provider logs browsers in.
    pub(super) fn login_redirect(&self, req: &AuthRequest<'_>, provider: usize) -> Option<String> {
        let start = self.login_start.as_deref()?;
        let scheme = forwarded_proto(req.headers).unwrap_or("http");
        let original = format!("{scheme}://{}{}", host_with_port(req), req.path);
        let mut url = format!("{start}?rd={}", utf8_percent_encode(&original, RD_KEEP));
        let logins = self
            .providers
            .iter()
            .filter(|p| p.config.login.is_some())
            .count();
        if logins > 1 {
            url.push_str("&provider=");
            url.extend(utf8_percent_encode(&self.providers[provider].name, RD_KEEP));
        }
        Some(url)
    }
}

/// A browser navigation: `Accept` holds `text/html`, or `Sec-Fetch-Mode: navigate`.
pub(crate) fn is_navigation(headers: &HeaderMap) -> bool {
    let accepts_html = headers.get_all(http::header::ACCEPT).iter().any(|v| {
        v.to_str()
            .is_ok_and(|v| v.to_ascii_lowercase().contains("text/html"))
    });
    accepts_html
        || headers
            .get("sec-fetch-mode")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"navigate"))
}

/// The original host as the client wrote it, port included: a forward-auth
/// frontend hands over the host read the canonical way (no port), and the proxy's
/// `X-Forwarded-Host` keeps the port; it is used only when it names the same host.
fn host_with_port<'r>(req: &AuthRequest<'r>) -> &'r str {
    let mut values = req.headers.get_all("x-forwarded-host").iter();
    if let (Some(raw), None) = (values.next(), values.next())
        && let Ok(raw) = raw.to_str()
        && let (Ok(a), Ok(b)) = (canonical_host(raw), canonical_host(req.host))
        && a == b
        && raw
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"-.:[]".contains(&c))
    {
        return raw;
    }
    req.host
}

/// `X-Forwarded-Proto` when it is exactly one of `http`, `https`.
fn forwarded_proto(headers: &HeaderMap) -> Option<&'static str> {
    let mut values = headers.get_all("x-forwarded-proto").iter();
    let first = values.next()?;
    if values.next().is_some() {
        return None;
    }
    match first.as_bytes().trim_ascii() {
        b if b.eq_ignore_ascii_case(b"https") => Some("https"),
        b if b.eq_ignore_ascii_case(b"http") => Some("http"),
        _ => None,
    }
}

mod stepup;

#[cfg(test)]
mod tests;
