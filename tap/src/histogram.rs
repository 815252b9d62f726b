//! Fixed-bucket histograms of atomic counters: observing is a bucket search and two relaxed adds,
//! so the node's threads can record without a lock, and a snapshot reads them while they run.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Upper bounds of delivery latency (send to receive), in nanoseconds: 50 us to 5 s. The node
/// team's scaling document expects under 10 ms in normal load.
pub const DELIVERY_BOUNDS_NS: &[u64] = &[
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
];

/// Upper bounds of the consumer's service time per message (from the return of one `recv` to the
/// next call), in nanoseconds: 1 us to 1 s.
pub const SERVICE_BOUNDS_NS: &[u64] = &[
    1_000,
    2_500,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    1_000_000_000,
];

/// Upper bounds of block propagation (first announcement to acceptance), in nanoseconds: 10 ms to
/// 30 s. The scaling document's targets are p50 under 100 ms and p99 under 500 ms.
pub const PROPAGATION_BOUNDS_NS: &[u64] = &[
    10_000_000,
    25_000_000,
    50_000_000,
    75_000_000,
    100_000_000,
    150_000_000,
    200_000_000,
    300_000_000,
    500_000_000,
    750_000_000,
    1_000_000_000,
    2_000_000_000,
    5_000_000_000,
    10_000_000_000,
    30_000_000_000,
];

/// A histogram over fixed upper bounds; the last bucket has no bound (`+Inf`).
pub struct AtomicHistogram {
    bounds: &'static [u64],
    /// One more than `bounds`: the overflow bucket.
    buckets: Box<[AtomicU64]>,
    sum_ns: AtomicU64,
}

impl AtomicHistogram {
    pub fn new(bounds: &'static [u64]) -> AtomicHistogram {
        AtomicHistogram {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_ns: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, value: Duration) {
        let ns = u64::try_from(value.as_nanos()).unwrap_or(u64::MAX);
        self.observe_ns(ns);
    }

    pub fn observe_ns(&self, ns: u64) {
        let bucket = self.bounds.partition_point(|&bound| bound < ns);
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// [`AtomicHistogram::observe_ns`] for a histogram that only one thread at a time observes
    /// (a subscriber's, owned by its consumer): a relaxed load and store instead of an add.
    #[inline]
    pub(crate) fn observe_ns_single_writer(&self, ns: u64) {
        let bucket = &self.buckets[self.bounds.partition_point(|&bound| bound < ns)];
        bucket.store(bucket.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        let sum = self.sum_ns.load(Ordering::Relaxed).wrapping_add(ns);
        self.sum_ns.store(sum, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            buckets: self
                .buckets
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect(),
            sum_ns: self.sum_ns.load(Ordering::Relaxed),
        }
    }
}

/// Counts per bucket (not cumulative), the overflow bucket last, and the sum of observed values.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistogramSnapshot {
    pub buckets: Vec<u64>,
    pub sum_ns: u64,
}

impl HistogramSnapshot {
    pub fn count(&self) -> u64 {
        self.buckets.iter().fold(0u64, |a, b| a.saturating_add(*b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_lands_in_the_first_bucket_whose_bound_it_does_not_exceed() {
        let histogram = AtomicHistogram::new(&[10, 20]);
        for ns in [0, 10, 11, 20, 21, u64::MAX / 2] {
            histogram.observe_ns(ns);
        }
        let snapshot = histogram.snapshot();
        assert_eq!(snapshot.buckets, [2, 2, 2]);
        assert_eq!(snapshot.count(), 6);
        assert_eq!(snapshot.sum_ns, 62 + u64::MAX / 2);
    }
}
