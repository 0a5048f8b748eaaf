//! `sessions.store: redis://...`: sessions kept server-side, the cookie holding only
//! a sealed random id, so every replica sees the same sessions and an ended one is
//! gone for all of them at once. Keys: `portcullis:session:<id>` (the record, with
//! the session's expiry), `portcullis:sid:<iss> <sid>` and `portcullis:sub:<iss> <sub>`
//! (the ids of that OP session or subject, for back-channel logout).

use std::future::Future;
use std::time::Duration;

use tokio::sync::OnceCell;

use crate::record::SessionRecord;

mod conn;

use conn::{Conn, Target};

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

/// The Redis session store (connected on first use, reconnecting by itself): one
/// node or a Redis Cluster.
pub(crate) struct RedisStore {
    target: Target,
    conn: OnceCell<Conn>,
}

impl RedisStore {
    /// A store on one node at `url` (checked now, connected later).
    pub(crate) fn try_new(url: &str) -> Result<RedisStore, redis::RedisError> {
        Ok(RedisStore {
            target: Target::single(url)?,
            conn: OnceCell::new(),
        })
    }

    /// A store on the Redis Cluster seeded by `nodes` (checked now, connected later).
    pub(crate) fn try_cluster(nodes: &[String]) -> Result<RedisStore, redis::RedisError> {
        Ok(RedisStore {
            target: Target::cluster(nodes, STORE_TIMEOUT / 2)?,
            conn: OnceCell::new(),
        })
    }

    async fn conn(&self) -> Result<Conn, StoreError> {
        let conn = self
            .conn
            .get_or_try_init(|| self.target.connect(STORE_TIMEOUT / 2))
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
        let mut cmds = Vec::new();
        let mut set = redis::cmd("SET");
        set.arg(session_key(&record.id))
            .arg(json)
            .arg("EX")
            .arg(ttl);
        cmds.push(set);
        for index in indexes(record) {
            let mut add = redis::cmd("SADD");
            add.arg(&index).arg(&record.id);
            cmds.push(add);
            // The index lives as long as its longest session.
            for when in ["GT", "NX"] {
                let mut expire = redis::cmd("EXPIRE");
                expire.arg(&index).arg(ttl).arg(when);
                cmds.push(expire);
            }
        }
        conn.run_all(cmds).await?;
        // The sessions gauge's index: best effort (in a cluster it is one more node a
        // login would otherwise depend on).
        let mut add = redis::cmd("ZADD");
        add.arg(ACTIVE_KEY).arg(record.exp).arg(&record.id);
        if let Err(e) = add.query_async::<()>(&mut conn).await {
            tracing::debug!(error = %e, "sessions gauge index not updated");
        }
        Ok(())
    }

    /// How many unexpired sessions the store holds (the sessions gauge): expired
    /// entries of the index are dropped first.
    pub(crate) async fn count_active(&self, now: i64) -> Result<i64, StoreError> {
        bounded(async {
            let mut conn = self.conn().await?;
            redis::cmd("ZREMRANGEBYSCORE")
                .arg(ACTIVE_KEY)
                .arg("-inf")
                .arg(now)
                .query_async::<()>(&mut conn)
                .await?;
            let n: i64 = redis::cmd("ZCARD")
                .arg(ACTIVE_KEY)
                .query_async(&mut conn)
                .await?;
            Ok(n)
        })
        .await
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
        forget_active(&mut conn, &[id.to_owned()]).await;
        Ok(())
    }

    /// Takes the refresh lock of session `id` for `ttl` (`SET NX PX`): `true` when
    /// this replica holds it now, `false` when another one does.
    pub(crate) async fn lock_refresh(
        &self,
        id: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        bounded(async {
            let mut conn = self.conn().await?;
            let set: Option<String> = redis::cmd("SET")
                .arg(refresh_lock_key(id))
                .arg(holder)
                .arg("NX")
                .arg("PX")
                .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX))
                .query_async(&mut conn)
                .await?;
            Ok(set.is_some())
        })
        .await
    }

    /// Lets go of the refresh lock of session `id`, if `holder` still holds it.
    pub(crate) async fn unlock_refresh(&self, id: &str, holder: &str) -> Result<(), StoreError> {
        bounded(async {
            let mut conn = self.conn().await?;
            // Deleted only while it is still ours (it may have expired and been
            // taken): compared and deleted in one step, on the key's node.
            redis::cmd("EVAL")
                .arg(UNLOCK_SCRIPT)
                .arg(1)
                .arg(refresh_lock_key(id))
                .arg(holder)
                .query_async::<()>(&mut conn)
                .await?;
            Ok(())
        })
        .await
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
        let mut cmds = Vec::new();
        for id in &ids {
            let mut del = redis::cmd("DEL");
            del.arg(session_key(id));
            cmds.push(del);
        }
        // The sessions that still existed (the set may name some already expired).
        let ended = conn.run_counted(cmds).await?;
        redis::cmd("DEL")
            .arg(&key)
            .query_async::<()>(&mut conn)
            .await?;
        forget_active(&mut conn, &ids).await;
        Ok(usize::try_from(ended).unwrap_or(0))
    }
}

/// The sorted set of session ids by expiry, for the sessions gauge.
const ACTIVE_KEY: &str = "portcullis:sessions";

/// Drops `ids` from the gauge's index (best effort).
async fn forget_active(conn: &mut Conn, ids: &[String]) {
    if ids.is_empty() {
        return;
    }
    let mut rem = redis::cmd("ZREM");
    rem.arg(ACTIVE_KEY).arg(ids);
    if let Err(e) = rem.query_async::<()>(conn).await {
        tracing::debug!(error = %e, "sessions gauge index not updated");
    }
}

/// Deletes `KEYS[1]` if it holds `ARGV[1]`.
const UNLOCK_SCRIPT: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";

fn refresh_lock_key(id: &str) -> String {
    format!("portcullis:refresh:{id}")
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
