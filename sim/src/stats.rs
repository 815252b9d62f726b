//! What a run measured: an [`Observer`] that collects the same observations the exporter's
//! recorder turns into metrics, and the per-run summary computed from them.

use std::sync::Mutex;
use std::time::Duration;

use p2p_observe::{MessageKind, Observation, Observer};
use serde::Serialize;
use tokio::time::Instant;

use p2p_router::dedup::DedupTracker;

use crate::design::inv_window;

/// The scaling document's success criteria (Phase 2.3): lag under 1% (the decision framework's gate,
/// `alerts/thresholds.toml`), average block propagation under 100 ms, p99 under 500 ms.
pub const LAG_RATIO_TARGET: f64 = 0.01;
const PROPAGATION_AVG_TARGET_SECONDS: f64 = 0.1;
const PROPAGATION_P99_TARGET_SECONDS: f64 = 0.5;

/// Latencies in log-linear buckets: 8 per power of two (within 12.5%), exact below 8 ns.
#[derive(Default)]
struct LogHistogram {
    counts: Vec<u64>,
    total: u64,
}

impl LogHistogram {
    fn bucket(nanos: u64) -> usize {
        if nanos < 8 {
            return nanos as usize;
        }
        let exponent = 63 - nanos.leading_zeros() as usize;
        let mantissa = ((nanos >> (exponent - 3)) & 7) as usize;
        (exponent - 2) * 8 + mantissa
    }

    /// The largest value a bucket holds.
    fn upper(bucket: usize) -> u64 {
        if bucket < 8 {
            return bucket as u64;
        }
        let exponent = bucket / 8 + 2;
        let mantissa = (bucket % 8) as u64;
        ((8 + mantissa + 1) << (exponent - 3)) - 1
    }

    fn record(&mut self, value: Duration) {
        let bucket = LogHistogram::bucket(value.as_nanos().min(u64::MAX as u128) as u64);
        if self.counts.len() <= bucket {
            self.counts.resize(bucket + 1, 0);
        }
        self.counts[bucket] += 1;
        self.total += 1;
    }

    fn quantile(&self, q: f64) -> Option<Duration> {
        if self.total == 0 {
            return None;
        }
        let rank = ((q * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (bucket, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Some(Duration::from_nanos(LogHistogram::upper(bucket)));
            }
        }
        None
    }
}

struct Named {
    name: String,
    a: u64,
    b: u64,
}

#[derive(Default)]
struct Inner {
    /// (subscriber, received, lagged)
    subscribers: Vec<Named>,
    /// (channel, capacity, peak queued)
    channels: Vec<Named>,
    sent: u64,
    latency: LogHistogram,
    propagation: Vec<Duration>,
    inv_messages: u64,
    inv_duplicates: u64,
    inv_dropped: u64,
    blocks_orphaned: u64,
    reorgs: u64,
    window: Option<DedupTracker>,
    interval_received: u64,
    interval_lagged: u64,
    interval_usage: f64,
}

fn entry<'a>(entries: &'a mut Vec<Named>, name: &str) -> &'a mut Named {
    let index = match entries.iter().position(|e| e.name == name) {
        Some(index) => index,
        None => {
            entries.push(Named {
                name: name.to_owned(),
                a: 0,
                b: 0,
            });
            entries.len() - 1
        }
    };
    &mut entries[index]
}

/// Collects a run's observations. Runs are single-threaded; the lock is never contended.
#[derive(Default)]
pub struct Stats {
    inner: Mutex<Inner>,
}

impl Observer for Stats {
    fn observe(&self, observation: Observation<'_>) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let inner = &mut *inner;
        match observation {
            Observation::ChannelOpened { channel, capacity } => {
                entry(&mut inner.channels, channel).a = capacity as u64
            }
            Observation::EventSent {
                channel,
                queued,
                capacity,
            } => {
                inner.sent += 1;
                let series = entry(&mut inner.channels, channel);
                series.b = series.b.max(queued as u64);
                let usage = queued as f64 / capacity.max(1) as f64;
                inner.interval_usage = inner.interval_usage.max(usage);
            }
            Observation::MessageEmitted {
                kind: MessageKind::Inv,
                inventory,
            } => {
                inner.inv_messages += 1;
                let window = inner.window.get_or_insert_with(inv_window);
                if window.check(inventory, Instant::now()).duplicate {
                    inner.inv_duplicates += 1;
                }
            }
            Observation::InvDropped => inner.inv_dropped += 1,
            Observation::EventReceived {
                subscriber,
                latency,
            } => {
                entry(&mut inner.subscribers, subscriber).a += 1;
                inner.latency.record(latency);
                inner.interval_received += 1;
            }
            Observation::SubscriberLagged {
                subscriber,
                skipped,
            } => {
                entry(&mut inner.subscribers, subscriber).b += skipped;
                inner.interval_lagged += skipped;
            }
            Observation::BlockAccepted { propagation, .. } => inner.propagation.push(propagation),
            Observation::BlockOrphaned => inner.blocks_orphaned += 1,
            Observation::ChainReorganized { .. } => inner.reorgs += 1,
            _ => {}
        }
    }
}

/// One point of a run's time series.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Sample {
    pub t_seconds: f64,
    /// Lagged / (received + lagged) over the interval, all subscribers together.
    pub lag_ratio: f64,
    /// Highest fill of any channel over the interval.
    pub usage_ratio: f64,
    /// Highest payload bytes held in queues over the interval.
    pub held_bytes: u64,
}

/// The scaling document's success criteria, each met or not.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Criteria {
    /// Event lag rate < 1% of total messages (worst subscriber).
    pub lag_under_1pct: bool,
    /// Average block propagation < 100 ms.
    pub propagation_avg_under_100ms: bool,
    /// Block propagation p99 < 500 ms.
    pub propagation_p99_under_500ms: bool,
    /// The level queued payload memory returns to (its median) is no higher in the second half of
    /// the run than in the first (1.5x plus 1 MiB of slack): bursts come and go, a leak stays.
    pub memory_stable: bool,
}

impl Criteria {
    pub fn all(&self) -> bool {
        self.lag_under_1pct
            && self.propagation_avg_under_100ms
            && self.propagation_p99_under_500ms
            && self.memory_stable
    }
}

/// Everything a run measured.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunResult {
    /// Its JSON key stays `strategy`, which consumers of the report parse.
    #[serde(rename = "strategy")]
    pub design: String,
    /// Lag ratio of the worst subscriber.
    pub lag_ratio: f64,
    pub worst_subscriber: String,
    pub events_sent: u64,
    pub events_received: u64,
    /// Events skipped by lagging subscribers (or dropped at full mailboxes).
    pub events_lost: u64,
    pub inv_messages: u64,
    /// Inv messages whose every item was seen within 5 s / inv messages, as peers sent them.
    pub duplicate_ratio: f64,
    /// Inv messages the design dropped before its channel (dedup only).
    pub inv_dropped: u64,
    pub delivery_latency_p50_seconds: Option<f64>,
    pub delivery_latency_p99_seconds: Option<f64>,
    pub blocks_accepted: u64,
    pub blocks_orphaned: u64,
    pub reorgs: u64,
    pub block_propagation_avg_seconds: Option<f64>,
    pub block_propagation_p50_seconds: Option<f64>,
    pub block_propagation_p99_seconds: Option<f64>,
    /// Highest fill (queued / capacity) of any channel, and which.
    pub peak_channel_usage_ratio: f64,
    pub peak_channel: String,
    /// Most events queued in any one channel at once.
    pub peak_queued: u64,
    /// Highest payload bytes held by queued events.
    pub peak_held_payload_bytes: u64,
    /// Subscribers that took or lost events.
    pub subscribers: u64,
    /// Time the node's one consumer loop spent handling events; none where several loops share
    /// the work.
    pub consumer_busy_seconds: Option<f64>,
    pub average_peers: f64,
    pub criteria: Criteria,
    pub pass: bool,
    pub series: Vec<Sample>,
}

fn exact_quantile(sorted: &[Duration], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1].as_secs_f64())
}

fn median(values: &mut [u64]) -> u64 {
    values.sort_unstable();
    values.get(values.len() / 2).copied().unwrap_or(0)
}

fn memory_stable(series: &[Sample]) -> bool {
    let mut held: Vec<u64> = series.iter().map(|s| s.held_bytes).collect();
    let (first, second) = held.split_at_mut(series.len() / 2);
    median(second) as f64 <= median(first) as f64 * 1.5 + (1 << 20) as f64
}

impl Stats {
    /// Closes one interval of the time series.
    pub fn sample(&self, t_seconds: f64, held_bytes: u64) -> Sample {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let taken = inner.interval_received + inner.interval_lagged;
        let sample = Sample {
            t_seconds,
            lag_ratio: if taken == 0 {
                0.0
            } else {
                inner.interval_lagged as f64 / taken as f64
            },
            usage_ratio: inner.interval_usage,
            held_bytes,
        };
        inner.interval_received = 0;
        inner.interval_lagged = 0;
        inner.interval_usage = 0.0;
        sample
    }

    pub fn finish(
        &self,
        design: &str,
        series: Vec<Sample>,
        average_peers: f64,
        peak_held_payload_bytes: u64,
        consumer_busy: Option<Duration>,
    ) -> RunResult {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let (worst_subscriber, lag_ratio) = inner
            .subscribers
            .iter()
            .map(|s| {
                let taken = s.a + s.b;
                let ratio = if taken == 0 {
                    0.0
                } else {
                    s.b as f64 / taken as f64
                };
                (s.name.clone(), ratio)
            })
            .fold((String::new(), 0.0), |worst, next| {
                if next.1 > worst.1 || worst.0.is_empty() {
                    next
                } else {
                    worst
                }
            });
        let (peak_channel, peak_channel_usage_ratio) = inner
            .channels
            .iter()
            .map(|c| (c.name.clone(), c.b as f64 / c.a.max(1) as f64))
            .fold((String::new(), 0.0), |peak, next| {
                if next.1 > peak.1 || peak.0.is_empty() {
                    next
                } else {
                    peak
                }
            });
        let mut propagation = inner.propagation.clone();
        propagation.sort();
        let avg = (!propagation.is_empty()).then(|| {
            propagation.iter().map(Duration::as_secs_f64).sum::<f64>() / propagation.len() as f64
        });
        let memory_stable = memory_stable(&series);
        let p99 = exact_quantile(&propagation, 0.99);
        let criteria = Criteria {
            lag_under_1pct: lag_ratio < LAG_RATIO_TARGET,
            propagation_avg_under_100ms: avg.is_some_and(|a| a < PROPAGATION_AVG_TARGET_SECONDS),
            propagation_p99_under_500ms: p99.is_some_and(|p| p < PROPAGATION_P99_TARGET_SECONDS),
            memory_stable,
        };
        RunResult {
            design: design.to_owned(),
            lag_ratio,
            worst_subscriber,
            events_sent: inner.sent,
            events_received: inner.subscribers.iter().map(|s| s.a).sum(),
            events_lost: inner.subscribers.iter().map(|s| s.b).sum(),
            inv_messages: inner.inv_messages,
            duplicate_ratio: if inner.inv_messages == 0 {
                0.0
            } else {
                inner.inv_duplicates as f64 / inner.inv_messages as f64
            },
            inv_dropped: inner.inv_dropped,
            delivery_latency_p50_seconds: inner.latency.quantile(0.5).map(|d| d.as_secs_f64()),
            delivery_latency_p99_seconds: inner.latency.quantile(0.99).map(|d| d.as_secs_f64()),
            blocks_accepted: propagation.len() as u64,
            blocks_orphaned: inner.blocks_orphaned,
            reorgs: inner.reorgs,
            block_propagation_avg_seconds: avg,
            block_propagation_p50_seconds: exact_quantile(&propagation, 0.5),
            block_propagation_p99_seconds: p99,
            peak_channel_usage_ratio,
            peak_channel,
            peak_queued: inner.channels.iter().map(|c| c.b).max().unwrap_or(0),
            peak_held_payload_bytes,
            subscribers: inner.subscribers.len() as u64,
            consumer_busy_seconds: consumer_busy.map(|d| d.as_secs_f64()),
            average_peers,
            pass: criteria.all(),
            criteria,
            series,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lag_criterion_is_the_decision_frameworks_gate() {
        assert_eq!(
            LAG_RATIO_TARGET,
            p2p_decision::Thresholds::shipped().lag_ratio
        );
    }

    #[test]
    fn histogram_buckets_bound_their_values_within_an_eighth() {
        for nanos in [0u64, 7, 8, 9, 15, 16, 1000, 25_000, 3_000_000, 1 << 40] {
            let bucket = LogHistogram::bucket(nanos);
            let upper = LogHistogram::upper(bucket);
            assert!(upper >= nanos, "{nanos} -> {upper}");
            assert!(
                upper as f64 <= nanos as f64 * 1.125 + 1.0,
                "{nanos} -> {upper}"
            );
        }
        let mut h = LogHistogram::default();
        for micros in 1..=100 {
            h.record(Duration::from_micros(micros));
        }
        let p50 = h.quantile(0.5).unwrap();
        assert!(p50 >= Duration::from_micros(50) && p50 <= Duration::from_micros(57));
    }
}
