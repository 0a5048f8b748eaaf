//! The URLs of one upstream as endpoints: whether the health checks hold each up,
//! how many requests each has in flight, and which one the next request goes to
//! (round robin, or least requests by the power of two choices).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use portcullis_policy::config::{Balance, UpstreamUrl};

/// One URL of an upstream and what is known of it.
#[derive(Debug)]
pub(crate) struct Endpoint {
    /// The URL.
    pub(crate) url: UpstreamUrl,
    /// Whether it takes requests (health checks mark it down and up; up at start).
    healthy: AtomicBool,
    /// Requests sent to it whose response head has not come back yet.
    in_flight: AtomicUsize,
}

impl Endpoint {
    pub(crate) fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }

    /// Sets the health; returns whether it changed.
    pub(crate) fn set_healthy(&self, healthy: bool) -> bool {
        self.healthy.swap(healthy, Ordering::AcqRel) != healthy
    }

    /// Requests in flight.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }
}

/// Counts a request in flight on an endpoint until dropped.
#[derive(Debug)]
pub(crate) struct InFlight<'a>(&'a Endpoint);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The endpoints of one upstream and the balancing policy over them.
#[derive(Debug)]
pub(crate) struct Endpoints {
    list: Vec<Endpoint>,
    balance: Balance,
    /// Round robin's position.
    next: AtomicUsize,
    /// State of the pseudo-random sequence of least requests (splitmix64).
    seed: AtomicU64,
}

impl Endpoints {
    pub(crate) fn new(urls: &[UpstreamUrl], balance: Balance) -> Endpoints {
        let mut seed = [0u8; 8];
        // The system RNG does not fail on Linux; a fixed seed still balances.
        let _ = SystemRandom::new().fill(&mut seed);
        Endpoints {
            list: urls
                .iter()
                .map(|url| Endpoint {
                    url: url.clone(),
                    healthy: AtomicBool::new(true),
                    in_flight: AtomicUsize::new(0),
                })
                .collect(),
            balance,
            next: AtomicUsize::new(0),
            seed: AtomicU64::new(u64::from_le_bytes(seed)),
        }
    }

    pub(crate) fn all(&self) -> &[Endpoint] {
        &self.list
    }

    /// The endpoint the next request goes to: a healthy one not in `tried`, by the
    /// balancing policy; `None` when there is none.
    pub(crate) fn pick(&self, tried: &[usize]) -> Option<usize> {
        let candidates: Vec<usize> = (0..self.list.len())
            .filter(|i| !tried.contains(i) && self.list[*i].is_healthy())
            .collect();
        match candidates.len() {
            0 => None,
            1 => Some(candidates[0]),
            n => match self.balance {
                Balance::RoundRobin => {
                    let turn = self.next.fetch_add(1, Ordering::Relaxed);
                    Some(candidates[turn % n])
                }
                Balance::LeastRequests => {
                    let r = self.random();
                    let n64 = n as u64;
                    let a = usize::try_from(r % n64).unwrap_or(0);
                    // A second, different candidate.
                    let b = (a + 1 + usize::try_from((r >> 32) % (n64 - 1)).unwrap_or(0)) % n;
                    let (ea, eb) = (candidates[a], candidates[b]);
                    if self.list[eb].in_flight() < self.list[ea].in_flight() {
                        Some(eb)
                    } else {
                        Some(ea)
                    }
                }
            },
        }
    }

    /// Counts a request on endpoint `i` until the guard is dropped.
    pub(crate) fn start(&self, i: usize) -> Option<(&Endpoint, InFlight<'_>)> {
        let e = self.list.get(i)?;
        e.in_flight.fetch_add(1, Ordering::Relaxed);
        Some((e, InFlight(e)))
    }

    fn random(&self) -> u64 {
        let mut z = self
            .seed
            .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
            .wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(n: usize) -> Vec<UpstreamUrl> {
        (0..n)
            .map(|i| UpstreamUrl {
                https: false,
                authority: format!("127.0.0.1:{}", 9000 + i),
                host: "127.0.0.1".to_owned(),
                base_path: String::new(),
            })
            .collect()
    }

    #[test]
    fn round_robin_skips_down_and_tried_endpoints() {
        let e = Endpoints::new(&urls(3), Balance::RoundRobin);
        let picks: Vec<_> = (0..6).map(|_| e.pick(&[]).unwrap()).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
        assert!(e.all()[1].set_healthy(false));
        let picks: Vec<_> = (0..6).map(|_| e.pick(&[]).unwrap()).collect();
        assert!(!picks.contains(&1), "{picks:?}");
        assert_eq!(e.pick(&[0, 2]), None);
        assert_eq!(e.pick(&[0]), Some(2));
        e.all()[0].set_healthy(false);
        e.all()[2].set_healthy(false);
        assert_eq!(e.pick(&[]), None);
    }

    #[test]
    fn least_requests_prefers_the_idle_endpoint() {
        let e = Endpoints::new(&urls(2), Balance::LeastRequests);
        let busy = e.start(0).unwrap();
        for _ in 0..50 {
            assert_eq!(e.pick(&[]), Some(1));
        }
        drop(busy);
        let mut seen = [0usize; 2];
        for _ in 0..200 {
            seen[e.pick(&[]).unwrap()] += 1;
        }
        assert!(seen[0] > 0 && seen[1] > 0, "{seen:?}");
        let e = Endpoints::new(&urls(5), Balance::LeastRequests);
        let _g: Vec<_> = (0..4).map(|i| e.start(i).unwrap()).collect();
        let mut idle = 0;
        for _ in 0..100 {
            idle += usize::from(e.pick(&[]) == Some(4));
        }
        // Two of five drawn: the idle one is among them 40% of the time.
        assert!(idle > 15, "{idle}");
    }
}
