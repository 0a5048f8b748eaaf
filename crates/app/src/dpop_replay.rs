//! `dpop.replay: redis://...` (or a Redis session store): the DPoP proofs already
//! used, shared by every replica. Each proof's key is set with `SET key 1 NX EX ttl`:
//! set, it is the first use; not set, another replica (or this one) saw it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use portcullis_decider::SharedReplay;
use portcullis_policy::dpop::{ReplayFuture, ReplayStore, ReplayStoreError};
use redis::aio::ConnectionManager;
use tokio::sync::OnceCell;

/// The Redis replay store (connected on first use, reconnecting by itself).
pub(crate) struct RedisReplay {
    client: redis::Client,
    conn: OnceCell<ConnectionManager>,
}

impl RedisReplay {
    /// A store for `url` (checked now, connected later).
    pub(crate) fn try_new(url: &str) -> Result<RedisReplay, redis::RedisError> {
        Ok(RedisReplay {
            client: redis::Client::open(url)?,
            conn: OnceCell::new(),
        })
    }

    async fn claim(&self, key: &str, ttl_secs: u64) -> Result<bool, redis::RedisError> {
        let mut conn = self
            .conn
            .get_or_try_init(|| ConnectionManager::new(self.client.clone()))
            .await?
            .clone();
        let set: Option<String> = redis::cmd("SET")
            .arg(key)
            .arg(1)
            .arg("NX")
            .arg("EX")
            .arg(ttl_secs.max(1))
            .query_async(&mut conn)
            .await?;
        Ok(set.is_some())
    }
}

impl ReplayStore for RedisReplay {
    fn first_use<'a>(&'a self, key: &'a str, ttl_secs: u64) -> ReplayFuture<'a> {
        let claim: Pin<Box<dyn Future<Output = _> + Send + 'a>> = Box::pin(async move {
            self.claim(key, ttl_secs)
                .await
                .map_err(|e| ReplayStoreError {
                    why: format!("redis: {e}"),
                })
        });
        ReplayFuture(claim)
    }
}

/// The shared replay store `config` names, if any.
///
/// # Errors
/// A URL the Redis client refuses.
pub(crate) fn shared_replay(
    config: &portcullis_policy::Config,
) -> Result<Option<SharedReplay>, redis::RedisError> {
    match &config.dpop.replay {
        None => Ok(None),
        Some(url) => Ok(Some(SharedReplay(Arc::new(RedisReplay::try_new(url)?)))),
    }
}
