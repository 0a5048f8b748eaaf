//! Which protocol a decision was asked in: the `frontend` label of metrics and logs.

use prometheus_client::encoding::{EncodeLabelValue, LabelValueEncoder};

/// A frontend of Portcullis.
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
#[non_exhaustive]
pub enum Frontend {
    /// The demo's protected upstream (`portcullis demo`).
    Demo,
    /// Envoy ext_authz v3 over gRPC.
    ExtAuthzGrpc,
    /// `/verify`: NGINX, Traefik, Caddy, Envoy's HTTP mode.
    ForwardAuth,
    /// The proxy listener (proxy mode).
    Proxy,
}

impl Frontend {
    /// Every frontend.
    pub const ALL: [Frontend; 4] = [
        Frontend::Demo,
        Frontend::ExtAuthzGrpc,
        Frontend::ForwardAuth,
        Frontend::Proxy,
    ];

    /// The frontends every server runs: their latency series exist from the start.
    pub(crate) const SERVED: [Frontend; 2] = [Frontend::ExtAuthzGrpc, Frontend::ForwardAuth];

    /// The label value (`forward_auth`, ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            Frontend::Demo => "demo_upstream",
            Frontend::ExtAuthzGrpc => "ext_authz_grpc",
            Frontend::ForwardAuth => "forward_auth",
            Frontend::Proxy => "proxy",
        }
    }

    /// Its place in [`Frontend::SERVED`], if it is there.
    pub(crate) const fn served_index(self) -> Option<usize> {
        match self {
            Frontend::Demo | Frontend::Proxy => None,
            Frontend::ExtAuthzGrpc => Some(0),
            Frontend::ForwardAuth => Some(1),
        }
    }
}

impl EncodeLabelValue for Frontend {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        std::fmt::Write::write_str(encoder, self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_follow_served() {
        for (i, f) in Frontend::SERVED.iter().enumerate() {
            assert_eq!(f.served_index(), Some(i), "{f:?}");
        }
        assert_eq!(Frontend::Demo.served_index(), None);
    }
}
