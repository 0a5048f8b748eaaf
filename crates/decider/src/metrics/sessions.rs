//! Browser sessions: `portcullis_sessions_created_total{store}`,
//! `portcullis_sessions_ended_total{store, cause}` and, where the store can know
//! it (Redis), `portcullis_sessions_active{store}`. Bounded labels: the store kind
//! and a fixed set of causes.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Where sessions are kept (the `store` label).
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
pub enum SessionStoreKind {
    /// Sealed in the cookie (`store: cookie`).
    Cookie,
    /// One Redis node.
    Redis,
    /// A Redis Cluster.
    RedisCluster,
}

impl SessionStoreKind {
    /// The label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            SessionStoreKind::Cookie => "cookie",
            SessionStoreKind::Redis => "redis",
            SessionStoreKind::RedisCluster => "redis_cluster",
        }
    }
}

/// Why a session ended before it expired (the `cause` label).
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
pub enum SessionEnd {
    /// `/oauth2/sign_out`.
    SignOut,
    /// Back-channel logout (each session it ended).
    Backchannel,
    /// The provider refused the refresh (`invalid_grant`: revoked, logged out).
    RefreshRefused,
}

impl SessionEnd {
    /// The label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            SessionEnd::SignOut => "sign_out",
            SessionEnd::Backchannel => "backchannel",
            SessionEnd::RefreshRefused => "refresh_refused",
        }
    }
}

#[derive(Clone, Debug, EncodeLabelSet, Eq, Hash, PartialEq)]
struct StoreLabel {
    store: &'static str,
}

#[derive(Clone, Debug, EncodeLabelSet, Eq, Hash, PartialEq)]
struct EndLabels {
    store: &'static str,
    cause: &'static str,
}

/// The session series.
#[derive(Debug, Default)]
pub(super) struct SessionMetrics {
    created: Family<StoreLabel, Counter>,
    ended: Family<EndLabels, Counter>,
    active: Family<StoreLabel, Gauge>,
}

impl SessionMetrics {
    /// Registers the series in `registry`.
    pub(super) fn register(registry: &mut Registry) -> SessionMetrics {
        let m = SessionMetrics::default();
        registry.register(
            "portcullis_sessions_created",
            "Browser sessions begun (logins), by store",
            m.created.clone(),
        );
        registry.register(
            "portcullis_sessions_ended",
            "Browser sessions ended before they expired, by store and cause",
            m.ended.clone(),
        );
        registry.register(
            "portcullis_sessions_active",
            "Unexpired sessions in the store (Redis stores only; counted every 15 s)",
            m.active.clone(),
        );
        m
    }

    pub(super) fn created(&self, store: SessionStoreKind) {
        self.created
            .get_or_create(&StoreLabel {
                store: store.as_str(),
            })
            .inc();
    }

    pub(super) fn ended(&self, store: SessionStoreKind, cause: SessionEnd, count: u64) {
        self.ended
            .get_or_create(&EndLabels {
                store: store.as_str(),
                cause: cause.as_str(),
            })
            .inc_by(count);
    }

    pub(super) fn active(&self, store: SessionStoreKind, count: i64) {
        self.active
            .get_or_create(&StoreLabel {
                store: store.as_str(),
            })
            .set(count);
    }
}
