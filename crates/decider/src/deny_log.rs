//! Deny log lines, rate-limited per reason (issue 18: a bad-token flood wrote
//! 10–20k lines/s). Each reason may log [`DENY_LINES_PER_SECOND`] lines per second;
//! the denies past that are counted, and one summary line per reason and second,
//! at info, says how many were left out: `suppressed K denies for reason R`. The
//! metrics count every decision, logged or not. Lock-free: it runs on the request
//! path.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use portcullis_policy::DenyReason;

/// Most deny lines logged per reason and second.
pub const DENY_LINES_PER_SECOND: u64 = 20;

/// The per-reason windows.
#[derive(Debug)]
pub(crate) struct DenyLog {
    epoch: Instant,
    buckets: Box<[Bucket]>,
}

/// One reason's window: the second it is for (since `epoch`, +1: 0 is "none yet"),
/// the lines logged in it, and the denies left out since the last summary.
#[derive(Debug, Default)]
struct Bucket {
    second: AtomicU64,
    logged: AtomicU64,
    suppressed: AtomicU64,
}

impl DenyLog {
    pub(crate) fn new() -> DenyLog {
        DenyLog {
            epoch: Instant::now(),
            buckets: DenyReason::ALL.iter().map(|_| Bucket::default()).collect(),
        }
    }

    /// Whether this deny for `reason` may be logged; when it may not, it is counted
    /// for the next summary. A new second first summarises the last one.
    pub(crate) fn admit(&self, reason: DenyReason) -> bool {
        let Some(bucket) = self.bucket(reason) else {
            return true;
        };
        let second = self.epoch.elapsed().as_secs().saturating_add(1);
        let seen = bucket.second.load(Ordering::Acquire);
        if seen != second
            && bucket
                .second
                .compare_exchange(seen, second, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            bucket.logged.store(0, Ordering::Release);
            summarise(reason, bucket);
        }
        if bucket.logged.fetch_add(1, Ordering::AcqRel) < DENY_LINES_PER_SECOND {
            return true;
        }
        bucket.suppressed.fetch_add(1, Ordering::AcqRel);
        false
    }

    /// Logs the summary of every reason with denies left out (a flood that stopped
    /// is summarised here, by the server's once-a-second tick).
    pub(crate) fn flush(&self) {
        for (reason, bucket) in DenyReason::ALL.iter().zip(self.buckets.iter()) {
            summarise(*reason, bucket);
        }
    }

    fn bucket(&self, reason: DenyReason) -> Option<&Bucket> {
        let at = DenyReason::ALL.iter().position(|r| *r == reason)?;
        self.buckets.get(at)
    }
}

fn summarise(reason: DenyReason, bucket: &Bucket) {
    let suppressed = bucket.suppressed.swap(0, Ordering::AcqRel);
    if suppressed > 0 {
        tracing::info!(
            reason = reason.as_str(),
            suppressed,
            limit_per_second = DENY_LINES_PER_SECOND,
            "suppressed {suppressed} denies for reason {}",
            reason.as_str()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_logs_the_limit_per_reason_and_counts_the_rest() {
        let log = DenyLog::new();
        let admitted = (0..1000)
            .filter(|_| log.admit(DenyReason::SignatureInvalid))
            .count();
        // Within one second (or across one boundary, at most twice the limit).
        let limit = usize::try_from(DENY_LINES_PER_SECOND).unwrap();
        assert!(admitted >= limit && admitted <= 2 * limit, "{admitted}");
        // Another reason has its own allowance.
        assert!(log.admit(DenyReason::TokenMissing));
        let left_out: u64 = log
            .buckets
            .iter()
            .map(|b| b.suppressed.load(Ordering::Acquire))
            .sum();
        assert_eq!(left_out, 1000 - admitted as u64);
        log.flush();
        assert!(
            log.buckets
                .iter()
                .all(|b| b.suppressed.load(Ordering::Acquire) == 0)
        );
    }
}
