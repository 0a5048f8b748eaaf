//! `sessions.store: redis://...`: sessions kept server-side, the cookie holding only
//! a sealed random id, so every replica sees the same sessions and an ended one is
//! gone for all of them at once. Keys: `portcullis:session:<id>` (the record, with
//! the session's expiry), `portcullis:sid:<iss> <sid>` and `portcullis:sub:<iss> <sub>`
//! (the ids of that OP session or subject, for back-channel logout).

use std::future::Future;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::OnceCell;

use crate::record::SessionRecord;

/// Why the store cannot answer (a session it cannot read is no session).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Redis cannot be reached or refused the command.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// A stored record does not parse.
    #[error("stored session: {0}")]
    Record(#[from] serde_json::Error),
    /// Redis did not answer within the bound: a request never waits on a store that
    /// is down (the fault harness found requests held until Redis came back).
    #[error("redis: no answer within {0:?}")]
    Timeout(Duration),
}

/// The longest a request waits for Redis, connecting included. Redis answers a session
/// read in well under a millisecond on a local network; past this it is down, and the
/// session is none (fail closed) rather than a held request.
const STORE_TIMEOUT: Duration = Duration::from_millis(1000);

/// Runs one store operation within [`STORE_TIMEOUT`].
async fn bounded<T>(op: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
    tokio::time::timeout(STORE_TIMEOUT, op)
        .await
        .unwrap_or(Err(StoreError::Timeout(STORE_TIMEOUT)))
}

/// The Redis session store (connected on first use, reconnecting by itself).
pub(crate) struct RedisStore {
    client: redis::Client,
    conn: OnceCell<ConnectionManager>,
}

impl RedisStore {
    /// A store for `url` (checked now, connected later).
    pub(crate) fn try_new(url: &str) -> Result<RedisStore, redis::RedisError> {
        Ok(RedisStore {
            client: redis::Client::open(url)?,
            conn: OnceCell::new(),
        })
    }

    async fn conn(&self) -> Result<ConnectionManager, StoreError> {
        let conn = self
            .conn
            .get_or_try_init(|| {
                // Each command and each (re)connection attempt is bounded, and a broken
                // connection is retried once per command: the manager keeps reconnecting
                // in the background while commands fail fast.
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(STORE_TIMEOUT / 2))
                    .set_response_timeout(Some(STORE_TIMEOUT / 2))
                    .set_number_of_retries(1)
                    .set_max_delay(Duration::from_millis(200));
                ConnectionManager::new_with_config(self.client.clone(), config)
            })
            .await?;
        Ok(conn.clone())
    }

    /// Stores `record` until it expires, and indexes it by `sid` and `sub`.
    pub(crate) async fn put(&self, record: &SessionRecord, now: i64) -> Result<(), StoreError> {
        bounded(self.put_unbounded(record, now)).await
    }

    async fn put_unbounded(&self, record: &SessionRecord, now: i64) -> Result<(), StoreError> {
        let ttl = (record.exp - now).max(1);
        let json = serde_json::to_string(record)?;
        let mut conn = self.conn().await?;
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("SET")
            .arg(session_key(&record.id))
            .arg(json)
            .arg("EX")
            .arg(ttl)
            .ignore();
        for index in indexes(record) {
            pipe.cmd("SADD").arg(&index).arg(&record.id).ignore();
            // The index lives as long as its longest session.
            pipe.cmd("EXPIRE").arg(&index).arg(ttl).arg("GT").ignore();
            pipe.cmd("EXPIRE").arg(&index).arg(ttl).arg("NX").ignore();
        }
        pipe.query_async::<()>(&mut conn).await?;
        Ok(())
    }

    /// The session of `id`, if it exists.
    pub(crate) async fn get(&self, id: &str) -> Result<Option<SessionRecord>, StoreError> {
        bounded(self.get_unbounded(id)).await
    }

    async fn get_unbounded(&self, id: &str) -> Result<Option<SessionRecord>, StoreError> {
        let mut conn = self.conn().await?;
        let json: Option<String> = redis::cmd("GET")
            .arg(session_key(id))
            .query_async(&mut conn)
            .await?;
        Ok(json.map(|j| serde_json::from_str(&j)).transpose()?)
    }

    /// Ends the session of `id`.
    pub(crate) async fn delete(&self, id: &str) -> Result<(), StoreError> {
        bounded(self.delete_unbounded(id)).await
    }

    async fn delete_unbounded(&self, id: &str) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        redis::cmd("DEL")
            .arg(session_key(id))
            .query_async::<()>(&mut conn)
            .await?;
        Ok(())
    }

    /// Ends every session indexed under `index` (`sid:<iss> <sid>` or `sub:<iss> <sub>`);
    /// returns how many there were.
    pub(crate) async fn end_all(&self, index: &str) -> Result<usize, StoreError> {
        bounded(self.end_all_unbounded(index)).await
    }

    async fn end_all_unbounded(&self, index: &str) -> Result<usize, StoreError> {
        let mut conn = self.conn().await?;
        let key = format!("portcullis:{index}");
        let ids: Vec<String> = redis::cmd("SMEMBERS")
            .arg(&key)
            .query_async(&mut conn)
            .await?;
        let mut pipe = redis::pipe();
        pipe.atomic();
        for id in &ids {
            pipe.cmd("DEL").arg(session_key(id)).ignore();
        }
        pipe.cmd("DEL").arg(&key).ignore();
        pipe.query_async::<()>(&mut conn).await?;
        Ok(ids.len())
    }
}

fn session_key(id: &str) -> String {
    format!("portcullis:session:{id}")
}

fn indexes(record: &SessionRecord) -> Vec<String> {
    let iss = record
        .claims
        .get("iss")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("");
    let mut out = Vec::new();
    if let Some(sid) = record.sid() {
        out.push(format!("portcullis:sid:{iss} {sid}"));
    }
    if let Some(sub) = record.sub() {
        out.push(format!("portcullis:sub:{iss} {sub}"));
    }
    out
}
