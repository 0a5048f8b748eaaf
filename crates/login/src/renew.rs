//! Refresh with `store: cookie`: the provider's refresh token travels sealed in the
//! session cookie (AES-256-GCM, like the rest of the session). When the access
//! token has expired, the first request refreshes the session at the token
//! endpoint (one at a time per session on this replica) and the answer carries the
//! renewed session cookie with the new tokens. Until the browser sends that cookie,
//! its requests with the old one are served from the renewed session this replica
//! keeps (bounded), so a rotated refresh token is not sent twice from here.

use portcullis_decider::{Decider, LoginStep};

use crate::Login;
use crate::record::SessionRecord;

/// What reading a session cookie gave: the session, and when it was renewed, the
/// `Set-Cookie` values of the renewed session (for the answer to the browser).
pub(crate) struct Opened {
    pub(crate) record: SessionRecord,
    pub(crate) set_cookies: Vec<String>,
}

impl Login {
    /// `record` itself while its access token holds (or it has no refresh token),
    /// else the session refreshed here, with its renewed cookies.
    pub(crate) async fn renew_cookie_if_due(
        &self,
        decider: &Decider,
        record: SessionRecord,
        now: i64,
    ) -> Result<Opened, String> {
        let unchanged = |record| Opened {
            record,
            set_cookies: Vec::new(),
        };
        let (Some(_), Some(exp)) = (&record.refresh_token, record.access_exp) else {
            return Ok(unchanged(record));
        };
        if exp > now {
            return Ok(unchanged(record));
        }
        let lock = match self.refreshing.get_or_insert_with(&record.id, || {
            Ok::<_, std::convert::Infallible>(std::sync::Arc::new(tokio::sync::Mutex::new(())))
        }) {
            Ok(lock) => lock,
            Err(never) => match never {},
        };
        let _one_at_a_time = lock.lock().await;
        // This replica renewed it already (the browser still sends the old cookie, or
        // a concurrent request waited on the lock): that session, and its cookie again.
        // Only when it is newer than the cookie's: another replica may have renewed
        // the cookie since (its later access token expiry says so).
        let newest = self.renewed.get(&record.id).filter(|(r, _)| {
            r.iat == record.iat && r.provider == record.provider && r.access_exp > record.access_exp
        });
        if let Some((newer, sealed)) = &newest
            && newer.access_exp.is_some_and(|e| e > now)
        {
            return Ok(self.with_cookies(newer.clone(), sealed.as_deref(), now));
        }
        // The newest refresh token this replica knows of (a rotated one replaces it).
        let current = newest.map_or(record, |(r, _)| r);
        let Some(refresh_token) = current.refresh_token.clone() else {
            return Ok(unchanged(current));
        };
        let result = self
            .refresh_grant(decider, None, current, &refresh_token, now)
            .await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err((outcome, _)) => outcome,
        };
        decider.metrics().login(LoginStep::Refresh, outcome);
        let next = result.map_err(|(_, detail)| detail)?;
        // Sealed once: every request of the burst hands the browser the same cookie.
        let sealed = self.seal_session(&next);
        self.renewed
            .insert(next.id.clone(), (next.clone(), sealed.clone()));
        Ok(self.with_cookies(next, sealed.as_deref(), now))
    }

    /// `record` with the `Set-Cookie` values of `sealed`, the cookie value that holds
    /// it (valid as long as the session is).
    fn with_cookies(&self, record: SessionRecord, sealed: Option<&str>, now: i64) -> Opened {
        let max_age = u64::try_from(record.exp - now).unwrap_or(0).max(1);
        let set_cookies = match sealed {
            Some(sealed) => crate::cookies::set_chunked(
                &self.sessions.cookie,
                &self.sessions.cookie.name,
                sealed,
                max_age,
            ),
            None => {
                // Not representable as a cookie: served from here until it expires.
                tracing::warn!("renewed session does not fit in its cookies");
                Vec::new()
            }
        };
        Opened {
            record,
            set_cookies,
        }
    }

    /// `session` sealed for the session cookie: whole when it fits, else without
    /// its ID token, else without its refresh token too (then it is not renewed
    /// again); `None` when even that does not fit.
    pub(crate) fn seal_session(&self, session: &SessionRecord) -> Option<String> {
        let limit = crate::cookies::CHUNK * crate::cookies::MAX_CHUNKS;
        let seal = |s: &SessionRecord| {
            serde_json::to_vec(s)
                .ok()
                .and_then(|plain| self.sealer.seal(crate::SESSION, &plain).ok())
        };
        let sealed = seal(session)?;
        if sealed.len() <= limit {
            return Some(sealed);
        }
        let mut smaller = session.clone();
        smaller.id_token = None;
        let sealed = seal(&smaller)?;
        if sealed.len() <= limit {
            return Some(sealed);
        }
        smaller.refresh_token = None;
        let sealed = seal(&smaller)?;
        (sealed.len() <= limit).then_some(sealed)
    }
}
