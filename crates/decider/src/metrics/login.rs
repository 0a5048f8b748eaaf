//! `portcullis_login_total{step, outcome}`: the login endpoints, by step and how
//! they ended (bounded labels: fixed steps, fixed outcome codes).

use prometheus_client::encoding::EncodeLabelSet;

/// A login endpoint (or the refresh of a session).
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
pub enum LoginStep {
    /// `POST /oauth2/backchannel_logout`.
    Backchannel,
    /// `GET /oauth2/callback`.
    Callback,
    /// A session renewed with its refresh token.
    Refresh,
    /// `GET|POST /oauth2/sign_out`.
    SignOut,
    /// `GET /oauth2/start`.
    Start,
}

impl LoginStep {
    /// The label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            LoginStep::Backchannel => "backchannel",
            LoginStep::Callback => "callback",
            LoginStep::Refresh => "refresh",
            LoginStep::SignOut => "sign_out",
            LoginStep::Start => "start",
        }
    }
}

#[derive(Clone, Debug, EncodeLabelSet, Eq, Hash, PartialEq)]
pub(super) struct LoginLabels {
    pub(super) step: &'static str,
    pub(super) outcome: &'static str,
}
