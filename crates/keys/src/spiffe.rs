//! SPIFFE trust bundles from the Workload API: the `FetchJWTBundles` stream
//! (through the `spiffe` crate's client, which sends the `workload.spiffe.io: true`
//! metadata), one provider's trust domain taken from each bundle set. The stream is
//! reopened with backoff when it fails or ends; the last good keys stay published
//! meanwhile. A set without the trust domain, or whose bundle has no usable key,
//! keeps the last good keys too (and is reported `Invalid`).
//!
//! Bundle files (`bundle: {file}`) are key files ([`crate::file`]): a SPIFFE
//! bundle is a JWKS, its `jwt-svid` keys are imported, its `x509-svid` ones skipped.

use std::time::Duration;

use futures_util::StreamExt as _;
use portcullis_jose::{KeySet, Secrets};
use spiffe::{JwtBundleSet, TrustDomain, WorkloadApiClient};

use crate::publish::{FetchOutcome, Publisher, parse_keys};

/// First wait after a failure; doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(200);
/// Longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// One trust domain's bundle, streamed from the Workload API at `endpoint`.
#[derive(Clone, Debug)]
pub(crate) struct WorkloadApiBundles {
    pub(crate) endpoint: String,
    pub(crate) trust_domain: String,
}

/// Exponential backoff between reconnects (reset by a good message).
#[derive(Debug)]
pub(crate) struct Backoff {
    next: Duration,
}

impl Backoff {
    pub(crate) fn new() -> Backoff {
        Backoff { next: MIN_BACKOFF }
    }

    pub(crate) fn reset(&mut self) {
        self.next = MIN_BACKOFF;
    }

    /// The wait before the next attempt, and doubles the one after.
    pub(crate) fn step(&mut self) -> Duration {
        let now = self.next;
        self.next = (self.next * 2).min(MAX_BACKOFF);
        now
    }
}

impl WorkloadApiBundles {
    pub(crate) async fn feed(self, publisher: Publisher) {
        let mut backoff = Backoff::new();
        let trust_domain = match TrustDomain::new(&self.trust_domain) {
            Ok(td) => td,
            Err(e) => {
                // Validated at config load: cannot happen; deny rather than guess.
                tracing::error!(provider = %publisher.providers(), error = %e, "trust domain refused by the SPIFFE library");
                return;
            }
        };
        loop {
            match self
                .stream_once(&trust_domain, &publisher, &mut backoff)
                .await
            {
                Ok(()) => {
                    tracing::warn!(provider = %publisher.providers(), endpoint = %self.endpoint, "Workload API bundle stream ended; reconnecting")
                }
                Err(e) => {
                    publisher.report(FetchOutcome::Error);
                    tracing::warn!(provider = %publisher.providers(), endpoint = %self.endpoint, error = %e, "Workload API bundle stream failed; keeping the last bundle");
                }
            }
            tokio::time::sleep(backoff.step()).await;
        }
    }

    /// Connects and reads the stream until it ends or fails.
    async fn stream_once(
        &self,
        trust_domain: &TrustDomain,
        publisher: &Publisher,
        backoff: &mut Backoff,
    ) -> Result<(), spiffe::WorkloadApiError> {
        let client = WorkloadApiClient::connect_to(&self.endpoint).await?;
        let mut stream = client.stream_jwt_bundles().await?;
        while let Some(message) = stream.next().await {
            let set = message?;
            backoff.reset();
            match keys_of(&set, trust_domain, publisher) {
                Some(keys) => {
                    tracing::info!(provider = %publisher.providers(), trust_domain = %self.trust_domain, keys = keys.len(), "Workload API bundle received");
                    publisher.publish(&keys);
                    publisher.report(FetchOutcome::Success);
                }
                None => publisher.report(FetchOutcome::Invalid),
            }
        }
        Ok(())
    }
}

/// The keys of `trust_domain`'s bundle in `set`, through the one import every
/// source shares (the `spiffe` crate only splits the bundle into its JWKs).
fn keys_of(
    set: &JwtBundleSet,
    trust_domain: &TrustDomain,
    publisher: &Publisher,
) -> Option<KeySet> {
    let Some(bundle) = set.get(trust_domain) else {
        tracing::warn!(provider = %publisher.providers(), trust_domain = %trust_domain, "Workload API bundle set has no bundle for the trust domain; keeping the last one");
        return None;
    };
    let mut jwks = Vec::from(&b"{\"keys\":["[..]);
    for (i, authority) in bundle.jwt_authorities().enumerate() {
        if i > 0 {
            jwks.push(b',');
        }
        jwks.extend_from_slice(authority.jwk_json());
    }
    jwks.extend_from_slice(b"]}");
    match parse_keys(
        &publisher.providers(),
        "workload api",
        &jwks,
        Secrets::Refuse,
    ) {
        Ok(keys) => Some(keys),
        Err(e) => {
            tracing::warn!(provider = %publisher.providers(), error = %e, "Workload API bundle has no usable key; keeping the last one");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_limit_and_resets() {
        let mut b = Backoff::new();
        assert_eq!(b.step(), MIN_BACKOFF);
        assert_eq!(b.step(), MIN_BACKOFF * 2);
        for _ in 0..20 {
            b.step();
        }
        assert_eq!(b.step(), MAX_BACKOFF);
        b.reset();
        assert_eq!(b.step(), MIN_BACKOFF);
    }
}
