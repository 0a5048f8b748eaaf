//! Refresh (server-side sessions): when the provider's access token has expired,
//! the session is renewed with its refresh token (RFC 6749 §6), one refresh at a
//! time per session on a replica (others wait for it and read its result, so a
//! rotated refresh token is never used twice); a refusal ends the session.

use std::sync::Arc;
use std::time::Duration;

use portcullis_decider::{Decider, LoginStep};
use portcullis_jose::{Validation, verify_jwt};
use serde_json::Value;

use crate::Login;
use crate::oidc::{self, ClientAuth, ExchangeError};
use crate::record::SessionRecord;

/// How long a replica holds a session's refresh lock at most (beyond the token
/// endpoint's 10-second timeout, so a slow refresh is not run twice).
const REFRESH_LOCK_TTL: Duration = Duration::from_secs(15);
/// How long a request waits for another replica's refresh.
const REFRESH_WAIT: Duration = Duration::from_secs(5);
/// How often it looks.
const REFRESH_POLL: Duration = Duration::from_millis(25);

impl Login {
    /// `record` itself while its access token holds (or it has no refresh token),
    /// else the refreshed session.
    pub(crate) async fn refresh_if_due(
        &self,
        decider: &Decider,
        record: SessionRecord,
        now: i64,
    ) -> Result<SessionRecord, String> {
        let (Some(store), Some(_), Some(exp)) =
            (&self.store, &record.refresh_token, record.access_exp)
        else {
            return Ok(record);
        };
        if exp > now {
            return Ok(record);
        }
        let lock = match self.refreshing.get_or_insert_with(&record.id, || {
            Ok::<_, std::convert::Infallible>(Arc::new(tokio::sync::Mutex::new(())))
        }) {
            Ok(lock) => lock,
            Err(never) => match never {},
        };
        let _one_at_a_time = lock.lock().await;
        // Another request may have refreshed it while this one waited.
        let current = match store.get(&record.id).await {
            Ok(Some(current)) => current,
            Ok(None) => return Err("ended".to_owned()),
            Err(e) => return Err(format!("session store: {e}")),
        };
        if current.access_exp.is_some_and(|e| e > now) {
            return Ok(current);
        }
        let Some(refresh_token) = current.refresh_token.clone() else {
            return Ok(current);
        };
        // One refresh per session across replicas: the replica holding the lock in
        // Redis refreshes; another waits for its result and reads the new tokens.
        let holder = self
            .sealer
            .random(12)
            .map_err(|_| "no randomness".to_owned())?;
        match store
            .lock_refresh(&current.id, &holder, REFRESH_LOCK_TTL)
            .await
        {
            Ok(true) => {}
            Ok(false) => return self.await_refresh(decider, store, &current.id, now).await,
            Err(e) => return Err(format!("session store: {e}")),
        }
        // Another replica may have refreshed it and let go of the lock between the
        // read above and taking the lock: read again under the lock, so the spent
        // refresh token is never sent (the two-replica test found this window).
        let (current, refresh_token) = match store.get(&current.id).await {
            Ok(Some(latest)) if latest.access_exp.is_some_and(|e| e > now) => {
                self.unlock(store, &latest.id, &holder).await;
                decider.metrics().login(LoginStep::Refresh, "waited");
                return Ok(latest);
            }
            Ok(Some(latest)) => {
                let token = latest.refresh_token.clone().unwrap_or(refresh_token);
                (latest, token)
            }
            Ok(None) => {
                self.unlock(store, &current.id, &holder).await;
                return Err("ended".to_owned());
            }
            Err(e) => {
                self.unlock(store, &current.id, &holder).await;
                return Err(format!("session store: {e}"));
            }
        };
        let result = self
            .refresh_grant(
                decider,
                Some(&**store),
                current.clone(),
                &refresh_token,
                now,
            )
            .await;
        self.unlock(store, &current.id, &holder).await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err((outcome, _)) => outcome,
        };
        decider.metrics().login(LoginStep::Refresh, outcome);
        result.map_err(|(_, detail)| detail)
    }

    /// Ends a session whose refresh was refused: deleted from the store, and (a
    /// cookie session, whose copies cannot be deleted) refused on this replica.
    async fn end_refused(
        &self,
        decider: &Decider,
        store: Option<&crate::store::RedisStore>,
        session: &SessionRecord,
        now: i64,
    ) {
        self.ended
            .end(format!("id:{}", session.id), now, session.exp);
        self.renewed.remove(&session.id);
        decider.metrics().sessions_ended(
            self.store_kind,
            portcullis_decider::SessionEnd::RefreshRefused,
            1,
        );
        if let Some(store) = store {
            let _ = store.delete(&session.id).await;
        }
    }

    /// Lets go of the refresh lock (when it cannot, it expires by itself).
    async fn unlock(&self, store: &crate::store::RedisStore, id: &str, holder: &str) {
        if let Err(e) = store.unlock_refresh(id, holder).await {
            tracing::warn!(error = %e, "refresh lock not released (it expires by itself)");
        }
    }

    /// Another replica is refreshing session `id`: waits (at most
    /// [`REFRESH_WAIT`]) for the refreshed session to appear in the store.
    async fn await_refresh(
        &self,
        decider: &Decider,
        store: &crate::store::RedisStore,
        id: &str,
        now: i64,
    ) -> Result<SessionRecord, String> {
        let deadline = tokio::time::Instant::now() + REFRESH_WAIT;
        loop {
            tokio::time::sleep(REFRESH_POLL).await;
            match store.get(id).await {
                Ok(Some(s)) if s.access_exp.is_some_and(|e| e > now) => {
                    decider.metrics().login(LoginStep::Refresh, "waited");
                    return Ok(s);
                }
                Ok(Some(_)) => {}
                Ok(None) => return Err("ended (while another replica refreshed it)".to_owned()),
                Err(e) => return Err(format!("session store: {e}")),
            }
            if tokio::time::Instant::now() >= deadline {
                decider.metrics().login(LoginStep::Refresh, "wait_timeout");
                return Err("another replica is still refreshing the session".to_owned());
            }
        }
    }

    /// One refresh grant at the token endpoint for `current`, stored; the error names
    /// its outcome label (`refused`, `provider_unreachable`, `id_token_invalid`,
    /// `store_unavailable`, `provider_gone`) and a detail.
    pub(crate) async fn refresh_grant(
        &self,
        decider: &Decider,
        store: Option<&crate::store::RedisStore>,
        current: SessionRecord,
        refresh_token: &str,
        now: i64,
    ) -> Result<SessionRecord, (&'static str, String)> {
        let gone = |d: &str| ("provider_gone", d.to_owned());
        let engine = decider.engine();
        let provider = engine
            .providers()
            .iter()
            .find(|p| p.name() == current.provider && p.config().login.is_some())
            .ok_or_else(|| gone("the session's provider is gone"))?;
        let login = provider
            .config()
            .login
            .as_ref()
            .ok_or_else(|| gone("the session's provider is gone"))?;
        let endpoint = provider
            .slot()
            .metadata()
            .and_then(|m| m.token_endpoint().map(str::to_owned))
            .ok_or_else(|| ("provider_unreachable", "no token endpoint".to_owned()))?;
        let auth = ClientAuth {
            client_id: &login.client_id,
            client_secret: self.secret(provider.name()).unwrap_or_default(),
            post: login.token_endpoint_auth
                == portcullis_policy::config::TokenEndpointAuth::ClientSecretPost,
        };
        let answer = oidc::token_request(
            &self.http,
            &endpoint,
            &auth,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ],
        )
        .await;
        let m = match answer {
            Ok(m) => m,
            // The provider is down: no session for now, but it is not ended.
            Err(e @ ExchangeError::Unreachable { .. }) => {
                return Err(("provider_unreachable", e.to_string()));
            }
            Err(e) => {
                tracing::info!(error = %e, "refresh refused: session ended");
                self.end_refused(decider, store, &current, now).await;
                return Err(("refused", format!("refresh refused: {e}")));
            }
        };
        let mut next = current.clone();
        if let Some(Value::String(id_token)) = m.get("id_token") {
            // A refreshed ID token must be the provider's, for us, about the same user.
            let snapshot = provider.slot().snapshot();
            let keys = snapshot.keys().ok_or((
                "provider_unreachable",
                "the provider has no keys".to_owned(),
            ))?;
            let validation = Validation {
                audiences: vec![login.client_id.clone()],
                typ: None,
                ..provider.validation().clone()
            };
            let jwt = verify_jwt(id_token, keys, &validation, now)
                .map_err(|e| ("id_token_invalid", format!("refreshed id token: {e}")))?;
            if jwt.claims.subject() != current.sub() {
                self.end_refused(decider, store, &current, now).await;
                return Err((
                    "id_token_invalid",
                    "refreshed id token names another sub".to_owned(),
                ));
            }
            next.id_token = Some(id_token.clone());
        }
        if let Some(Value::String(rotated)) = m.get("refresh_token") {
            next.refresh_token = Some(rotated.clone());
        }
        let lifetime = m.get("expires_in").and_then(Value::as_i64).unwrap_or(300);
        next.access_exp = Some(now + lifetime.max(1));
        if let Some(store) = store {
            store
                .put(&next, now)
                .await
                .map_err(|e| ("store_unavailable", format!("session store: {e}")))?;
        }
        tracing::info!(
            provider = provider.name(),
            sub = next.sub().unwrap_or(""),
            "session refreshed"
        );
        Ok(next)
    }
}
