//! The connection under the session store: one Redis node (a connection manager)
//! or a Redis Cluster (the cluster client routes each key to its node). A cluster
//! refuses a pipeline or transaction over keys of several slots, so there each
//! command goes alone.

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};

/// How to reach the store.
pub(super) enum Target {
    /// One node.
    Single(redis::Client),
    /// A Redis Cluster, by its seed nodes.
    Cluster(Box<ClusterClient>),
}

impl Target {
    /// One node at `url`.
    pub(super) fn single(url: &str) -> Result<Target, redis::RedisError> {
        Ok(Target::Single(redis::Client::open(url)?))
    }

    /// A cluster seeded by `nodes` (`redis://host:port` each), each command and
    /// connection bounded by `timeout`.
    pub(super) fn cluster(
        nodes: &[String],
        timeout: Duration,
    ) -> Result<Target, redis::RedisError> {
        let client = ClusterClientBuilder::new(nodes.iter().map(String::as_str))
            .connection_timeout(timeout)
            .response_timeout(timeout)
            .retries(1)
            .max_retry_wait(200)
            .build()?;
        Ok(Target::Cluster(Box::new(client)))
    }

    /// Connects.
    pub(super) async fn connect(&self, timeout: Duration) -> Result<Conn, redis::RedisError> {
        match self {
            Target::Single(client) => {
                // Each command and each (re)connection attempt is bounded, and a broken
                // connection is retried once per command: the manager keeps reconnecting
                // in the background while commands fail fast.
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(timeout))
                    .set_number_of_retries(1)
                    .set_max_delay(Duration::from_millis(200));
                Ok(Conn::Single(
                    ConnectionManager::new_with_config(client.clone(), config).await?,
                ))
            }
            Target::Cluster(client) => Ok(Conn::Cluster(client.get_async_connection().await?)),
        }
    }
}

/// A connection to one node or to the cluster.
#[derive(Clone)]
pub(super) enum Conn {
    /// One node.
    Single(ConnectionManager),
    /// The cluster.
    Cluster(ClusterConnection),
}

impl Conn {
    /// Runs `cmds`, in one transaction on a single node, one by one on a cluster
    /// (their keys lie in different slots); answers are ignored.
    pub(super) async fn run_all(&mut self, cmds: Vec<Cmd>) -> Result<(), redis::RedisError> {
        match self {
            Conn::Single(c) => {
                let mut pipe = redis::pipe();
                pipe.atomic();
                for cmd in cmds {
                    pipe.add_command(cmd).ignore();
                }
                pipe.query_async::<()>(c).await
            }
            Conn::Cluster(c) => {
                for cmd in cmds {
                    cmd.query_async::<()>(c).await?;
                }
                Ok(())
            }
        }
    }
}

impl Conn {
    /// Runs `cmds` as [`Conn::run_all`] does and adds up their integer answers (how
    /// many keys a series of `DEL` removed).
    pub(super) async fn run_counted(&mut self, cmds: Vec<Cmd>) -> Result<i64, redis::RedisError> {
        match self {
            Conn::Single(c) => {
                let mut pipe = redis::pipe();
                pipe.atomic();
                for cmd in cmds {
                    pipe.add_command(cmd);
                }
                let answers: Vec<i64> = pipe.query_async(c).await?;
                Ok(answers.iter().sum())
            }
            Conn::Cluster(c) => {
                let mut sum = 0;
                for cmd in cmds {
                    sum += cmd.query_async::<i64>(c).await?;
                }
                Ok(sum)
            }
        }
    }
}

// === impl ConnectionLike for Conn ===

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}
