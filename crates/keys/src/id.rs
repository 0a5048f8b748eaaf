//! What makes two key sources the same one, so that a reload keeps a running
//! source (its keys, its backoff, its refetch limit) instead of starting over.

use std::path::PathBuf;
use std::time::Duration;

use portcullis_policy::config::spiffe::BundleSource;
use portcullis_policy::config::{FetchTuning, JwksSource, JwksSpec};

/// The identity of a running key source: equal ids are one source. Static keys
/// (inline, PEM) have none, they need no task.
#[derive(Clone, Debug, Eq, Hash, PartialEq)]
#[non_exhaustive]
pub enum SourceId {
    /// An OIDC issuer, fetched with this tuning.
    Discovery {
        /// The issuer URL.
        issuer: String,
        /// How it is fetched.
        tuning: Tuning,
    },
    /// A watched key file.
    File(PathBuf),
    /// A trust domain's bundle streamed from a Workload API endpoint.
    Spiffe {
        /// The endpoint.
        endpoint: String,
        /// The trust domain.
        trust_domain: String,
    },
    /// A JWKS URI, fetched with this tuning.
    Uri {
        /// The URI.
        uri: String,
        /// How it is fetched.
        tuning: Tuning,
    },
}

/// The fetch tuning as part of an identity: a source whose timing changed is a
/// new source.
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
pub struct Tuning {
    refresh: Duration,
    min_refresh: Duration,
    max_refresh: Duration,
    timeout: Duration,
}

impl SourceId {
    /// The identity of the source of `spec`; `None` for static keys.
    pub fn of(spec: &JwksSpec) -> Option<SourceId> {
        match &spec.source {
            JwksSource::Static(_) => None,
            JwksSource::File(path) => Some(SourceId::File(path.clone())),
            JwksSource::Uri(uri) => Some(SourceId::Uri {
                uri: uri.clone(),
                tuning: Tuning::from(spec.tuning),
            }),
            JwksSource::Discovery(issuer) => Some(SourceId::Discovery {
                issuer: issuer.clone(),
                tuning: Tuning::from(spec.tuning),
            }),
            JwksSource::Spiffe(s) => Some(match &s.bundle {
                BundleSource::File(path) => SourceId::File(path.clone()),
                BundleSource::WorkloadApi(endpoint) => SourceId::Spiffe {
                    endpoint: endpoint.clone(),
                    trust_domain: s.trust_domain.clone(),
                },
            }),
        }
    }
}

impl SourceId {
    /// Whether `other` reads the same place (URI, issuer, file, endpoint and trust
    /// domain), whatever its tuning: a reload that changes only the tuning starts
    /// a new source, which starts from the old one's last good keys.
    pub fn is_same_place(&self, other: &SourceId) -> bool {
        match (self, other) {
            (SourceId::Discovery { issuer: a, .. }, SourceId::Discovery { issuer: b, .. }) => {
                a == b
            }
            (SourceId::Uri { uri: a, .. }, SourceId::Uri { uri: b, .. }) => a == b,
            (a, b) => a == b,
        }
    }
}

// === impl Tuning ===

impl From<FetchTuning> for Tuning {
    fn from(tuning: FetchTuning) -> Tuning {
        // Destructured: a new tuning field must be considered here.
        let FetchTuning {
            refresh,
            min_refresh,
            max_refresh,
            timeout,
        } = tuning;
        Tuning {
            refresh,
            min_refresh,
            max_refresh,
            timeout,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn spec(source: JwksSource, tuning: FetchTuning) -> JwksSpec {
        JwksSpec {
            source,
            tuning,
            warnings: Vec::new(),
        }
    }

    #[test]
    fn sources_are_the_same_when_source_and_tuning_are() {
        let uri = || JwksSource::Uri("https://a.test/jwks".to_owned());
        let slow = FetchTuning {
            refresh: Duration::from_secs(3600),
            ..FetchTuning::default()
        };
        let a = SourceId::of(&spec(uri(), FetchTuning::default()));
        let b = SourceId::of(&spec(uri(), FetchTuning::default()));
        let c = SourceId::of(&spec(uri(), slow));
        let d = SourceId::of(&spec(
            JwksSource::Discovery("https://a.test/jwks".to_owned()),
            FetchTuning::default(),
        ));
        let e = SourceId::of(&spec(
            JwksSource::File(PathBuf::from("/k.json")),
            FetchTuning::default(),
        ));
        let f = SourceId::of(&spec(JwksSource::File(PathBuf::from("/k.json")), slow));
        assert_eq!(a, b);
        assert_ne!(a, c, "another tuning is another source");
        assert_ne!(a, d, "the same URL as discovery is another source");
        assert_eq!(e, f, "a file has no tuning");
        let set: HashSet<_> = [a, b, c, d, e, f].into_iter().flatten().collect();
        assert_eq!(set.len(), 4);
        let fixed = spec(
            JwksSource::Static(portcullis_jose::KeySet::default()),
            FetchTuning::default(),
        );
        assert_eq!(SourceId::of(&fixed), None);
    }
}
