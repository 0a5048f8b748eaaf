//! The top-level `dpop:` block: where DPoP proofs already used are remembered
//! across replicas. Raw (serde) and validated forms side by side.

use serde::Deserialize;

use super::Ctx;
use super::login::{SessionStore, SessionsConfig};
use crate::config::ConfigError;

/// `dpop:`.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawDpopSettings {
    /// `redis://HOST:PORT/DB` (or `rediss://`): the shared replay store.
    pub replay: Option<String>,
}

/// A validated `dpop:`.
#[derive(Clone, Debug, Default, Eq, PartialEq)]
pub struct DpopSettings {
    /// The Redis URL of the shared `jti` memory; `None`: each replica remembers its own.
    pub replay: Option<String>,
}

/// Validates `dpop:`; without `replay`, a Redis session store is the replay store too.
pub(super) fn validate_dpop(
    cx: &Ctx<'_>,
    line: u64,
    raw: Option<RawDpopSettings>,
    sessions: Option<&SessionsConfig>,
) -> Result<DpopSettings, ConfigError> {
    let RawDpopSettings { replay } = raw.unwrap_or_default();
    let replay = match replay {
        Some(url) => {
            if !(url.starts_with("redis://") || url.starts_with("rediss://"))
                || url.len() <= "redis://".len()
            {
                return Err(cx.err(
                    line,
                    "dpop.replay",
                    format!("{url:?} is not a redis:// or rediss:// URL"),
                ));
            }
            Some(url)
        }
        None => sessions.and_then(|s| match &s.store {
            SessionStore::Redis(url) => Some(url.clone()),
            // The replay cache is single-node: a cluster store names no default.
            SessionStore::Cookie | SessionStore::RedisCluster(_) => None,
        }),
    };
    Ok(DpopSettings { replay })
}
