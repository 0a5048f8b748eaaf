//! What the cookies hold: a login in progress (`state`), and a session.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A login in progress, sealed in the state cookie between `/oauth2/start` and
/// `/oauth2/callback`.
#[derive(Debug, Deserialize, Serialize)]
pub(crate) struct StateRecord {
    /// `state` sent to the provider.
    pub(crate) state: String,
    /// `nonce` the ID token must carry.
    pub(crate) nonce: String,
    /// The PKCE `code_verifier`.
    pub(crate) verifier: String,
    /// Where the browser goes afterwards (already checked).
    pub(crate) rd: String,
    /// The provider.
    pub(crate) provider: String,
    /// When the login attempt expires (seconds since the epoch).
    pub(crate) exp: i64,
    /// The `acr_values` asked for (space-separated): the ID token's `acr` must be
    /// one of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) acr_values: Option<String>,
    /// The `max_age` asked for (seconds): the ID token's `auth_time` must be no
    /// older.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) max_age: Option<u64>,
}

/// A session: who logged in, where, until when.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub(crate) struct SessionRecord {
    /// Random session id (ends it on this replica at sign-out).
    pub(crate) id: String,
    /// The provider.
    pub(crate) provider: String,
    /// When it began.
    pub(crate) iat: i64,
    /// When it ends.
    pub(crate) exp: i64,
    /// The claims: the ID token's, completed from userinfo.
    pub(crate) claims: Map<String, Value>,
    /// The ID token (the `id_token_hint` of RP-initiated logout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) id_token: Option<String>,
    /// The provider's refresh token (server-side sessions only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) refresh_token: Option<String>,
    /// When the provider's access token expires: the session is refreshed then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) access_exp: Option<i64>,
}

impl SessionRecord {
    /// The `sub` claim.
    pub(crate) fn sub(&self) -> Option<&str> {
        self.claims.get("sub").and_then(Value::as_str)
    }

    /// The `sid` claim.
    pub(crate) fn sid(&self) -> Option<&str> {
        self.claims.get("sid").and_then(Value::as_str)
    }
}
