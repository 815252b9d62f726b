//! The exporter core: observations in, metrics out. It never knows which source fed it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use p2p_observe::{Direction, MessageKind, Observation, Observer};
use prometheus::{Gauge, Histogram, IntCounter, IntGauge, Registry};
use tokio::time::Instant;

use crate::metrics::Metrics;
use crate::peak::PeakWindow;
use p2p_contract::{INVALID_NAME, MAX_NAMES, OVERFLOW_NAME};
use p2p_router::dedup::{DedupTracker, DEFAULT_MAX_ITEMS, DEFAULT_TTL};

#[derive(Clone, Debug)]
pub struct RecorderConfig {
    pub dedup_ttl: Duration,
    pub dedup_max_items: usize,
    /// How far back `p2p_event_channel_usage_peak_ratio` looks; at least the scrape interval.
    pub peak_window: Duration,
    /// The `source` label of `p2p_exporter_build_info`.
    pub source: &'static str,
}

impl Default for RecorderConfig {
    fn default() -> Self {
        RecorderConfig {
            dedup_ttl: DEFAULT_TTL,
            dedup_max_items: DEFAULT_MAX_ITEMS,
            peak_window: Duration::from_secs(30),
            source: "embedded",
        }
    }
}

struct ChannelSeries {
    sent: IntCounter,
    /// Created so the series exists at 0: the reference router always has its subscribers.
    _unsubscribed: IntCounter,
    capacity: IntGauge,
    queued: IntGauge,
    usage: Histogram,
    peak_ratio: Gauge,
    peak: PeakWindow,
    capacity_value: AtomicU64,
}

struct SubscriberSeries {
    received: IntCounter,
    lagged: IntCounter,
    latency: Histogram,
}

/// Series per channel or subscriber name. Names come from code, but the exporter still refuses to
/// let them grow without bound: past [`MAX_NAMES`] they share one `other` series, and a name that
/// is not a plain identifier becomes `invalid`.
struct Named<T> {
    entries: RwLock<Vec<(String, Arc<T>)>>,
}

impl<T> Named<T> {
    fn new() -> Self {
        Named {
            entries: RwLock::new(Vec::new()),
        }
    }

    fn with<R>(&self, name: &str, make: impl Fn(&str) -> T, f: impl FnOnce(&T) -> R) -> R {
        {
            let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
            if let Some((_, series)) = entries.iter().find(|(n, _)| n == name) {
                return f(series);
            }
        }
        let series = {
            let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
            let distinct = entries
                .iter()
                .filter(|(n, _)| n != OVERFLOW_NAME && n != INVALID_NAME)
                .count();
            let label = if !p2p_tap::protocol::is_plain_name(name) {
                INVALID_NAME
            } else if distinct >= MAX_NAMES {
                OVERFLOW_NAME
            } else {
                name
            };
            match entries.iter().find(|(n, _)| n == label) {
                Some((_, series)) => Arc::clone(series),
                None => {
                    let series = Arc::new(make(label));
                    entries.push((label.to_owned(), Arc::clone(&series)));
                    series
                }
            }
        };
        f(&series)
    }

    fn for_each(&self, mut f: impl FnMut(&str, &T)) {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        entries.iter().for_each(|(name, series)| f(name, series));
    }
}

/// Cumulative counts the decision engine samples.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Totals {
    /// (subscriber, received, lagged)
    pub subscribers: Vec<(String, u64, u64)>,
    pub inv_messages: u64,
    pub inv_duplicate_messages: u64,
    pub peers: i64,
}

pub struct Recorder {
    metrics: Metrics,
    /// With the tap source: the node's own counts, which replace this recorder's for everything
    /// the node counts.
    node_view: Option<Arc<crate::node_view::NodeView>>,
    dedup: DedupTracker,
    peak_window_seconds: u64,
    origin: Instant,
    channels: Named<ChannelSeries>,
    subscribers: Named<SubscriberSeries>,
    last_cpu_seconds: AtomicU64,
}

impl Recorder {
    /// Registers every metric on `registry`. With the tap source, what the node counts is served
    /// from its snapshots ([`Recorder::node_view`]) and this recorder's copies stay unserved.
    pub fn new(registry: &Registry, config: RecorderConfig) -> prometheus::Result<Recorder> {
        let peak_window_seconds = config.peak_window.as_secs().max(1);
        let (metrics, node_view) = if config.source == "tap" {
            let view = Arc::new(crate::node_view::NodeView::new(peak_window_seconds));
            registry.register(Box::new(crate::node_view::NodeCollector(Arc::clone(&view))))?;
            let unserved = Registry::new();
            (
                Metrics::new(registry, &unserved, config.source)?,
                Some(view),
            )
        } else {
            (Metrics::new(registry, registry, config.source)?, None)
        };
        Ok(Recorder {
            metrics,
            node_view,
            dedup: DedupTracker::new(config.dedup_ttl, config.dedup_max_items),
            peak_window_seconds,
            origin: Instant::now(),
            channels: Named::new(),
            subscribers: Named::new(),
            last_cpu_seconds: AtomicU64::new(0f64.to_bits()),
        })
    }

    /// Brings the values computed at scrape time up to date; call before encoding.
    pub fn refresh(&self) {
        let now = self.second();
        self.channels.for_each(|_, series| {
            let capacity = series.capacity_value.load(Ordering::Relaxed).max(1);
            let peak = series.peak.max(now, self.peak_window_seconds);
            series.peak_ratio.set(peak as f64 / capacity as f64);
        });
        self.metrics.dedup_tracked.set(self.dedup.tracked() as i64);
        self.metrics.recording.refresh();
    }

    /// Where the OTLP pipeline reports its span counts.
    pub fn span_counters(&self) -> crate::metrics::SpanCounters {
        crate::metrics::SpanCounters {
            ended: self.metrics.spans_ended.clone(),
            exported: self.metrics.spans_exported.clone(),
            failed: self.metrics.spans_export_failed.clone(),
        }
    }

    /// The handles, for a source that reports on itself (the tap source's own health).
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The source says the node restarted: its CPU time starts again from zero, and what it
    /// reports next is all new (without this, a restarted node that has already used more CPU
    /// than the old run's last sample would be counted from the old total).
    pub fn node_restarted(&self) {
        self.last_cpu_seconds
            .store(0f64.to_bits(), Ordering::Relaxed);
    }

    /// The node's counts as its tap reports them (tap source only).
    pub fn node_view(&self) -> Option<&Arc<crate::node_view::NodeView>> {
        self.node_view.as_ref()
    }

    pub fn totals(&self) -> Totals {
        let (subscribers, peers) = match self.node_view.as_ref().and_then(|v| v.totals()) {
            Some(node) => (node.subscribers, node.peers),
            None => {
                let mut subscribers = Vec::new();
                self.subscribers.for_each(|name, s| {
                    subscribers.push((name.to_owned(), s.received.get(), s.lagged.get()))
                });
                (subscribers, self.metrics.peers.get())
            }
        };
        Totals {
            subscribers,
            inv_messages: self.metrics.inv_checked_messages.get(),
            inv_duplicate_messages: self.metrics.inv_duplicate_messages.get(),
            peers,
        }
    }

    fn second(&self) -> u64 {
        self.origin.elapsed().as_secs()
    }

    fn channel<R>(&self, name: &str, f: impl FnOnce(&ChannelSeries) -> R) -> R {
        let m = &self.metrics;
        self.channels.with(
            name,
            |label| ChannelSeries {
                sent: m.events_sent.with_label_values(&[label]),
                _unsubscribed: m.unsubscribed.with_label_values(&[label]),
                capacity: m.capacity.with_label_values(&[label]),
                queued: m.queued.with_label_values(&[label]),
                usage: m.usage.with_label_values(&[label]),
                peak_ratio: m.usage_peak.with_label_values(&[label]),
                peak: PeakWindow::default(),
                capacity_value: AtomicU64::new(0),
            },
            f,
        )
    }

    fn subscriber<R>(&self, name: &str, f: impl FnOnce(&SubscriberSeries) -> R) -> R {
        let m = &self.metrics;
        self.subscribers.with(
            name,
            |label| SubscriberSeries {
                received: m.events_received.with_label_values(&[label]),
                lagged: m.lagged.with_label_values(&[label]),
                latency: m.delivery_latency.with_label_values(&[label]),
            },
            f,
        )
    }

    fn record_cpu(&self, total: f64) {
        let previous = f64::from_bits(
            self.last_cpu_seconds
                .swap(total.to_bits(), Ordering::Relaxed),
        );
        // A smaller total means the process restarted: everything it reports is new.
        let delta = if total >= previous {
            total - previous
        } else {
            total
        };
        self.metrics.node_cpu.inc_by(delta);
    }
}

impl Observer for Recorder {
    fn observe(&self, observation: Observation<'_>) {
        let m = &self.metrics;
        match observation {
            Observation::ChannelOpened { channel, capacity } => self.channel(channel, |s| {
                s.capacity.set(capacity as i64);
                s.capacity_value.store(capacity as u64, Ordering::Relaxed);
            }),
            Observation::PeerConnected { direction } => {
                m.peers.inc();
                match direction {
                    Direction::Inbound => m.connections_inbound.inc(),
                    Direction::Outbound => m.connections_outbound.inc(),
                }
            }
            Observation::PeerRefused => m.registrations_refused.inc(),
            Observation::PeerDisconnected { reason } => {
                m.peers.dec();
                m.disconnections[reason as usize].inc();
            }
            Observation::EventSent {
                channel,
                queued,
                capacity,
            } => {
                let second = self.second();
                self.channel(channel, |s| {
                    s.sent.inc();
                    s.queued.set(queued as i64);
                    s.usage.observe(queued as f64 / capacity.max(1) as f64);
                    s.peak.record(second, queued as u64);
                    if s.capacity_value.swap(capacity as u64, Ordering::Relaxed) != capacity as u64
                    {
                        s.capacity.set(capacity as i64);
                    }
                })
            }
            Observation::MessageEmitted { kind, inventory } => {
                m.messages[kind.index()].inc();
                if kind == MessageKind::Inv {
                    m.inv_messages.inc();
                    m.inv_items.inc_by(inventory.len() as u64);
                    m.inv_checked_messages.inc();
                    m.inv_checked_items.inc_by(inventory.len() as u64);
                    let verdict = self.dedup.check(inventory, Instant::now());
                    if verdict.duplicate {
                        m.inv_duplicate_messages.inc();
                    }
                    m.inv_duplicate_items.inc_by(verdict.duplicate_items as u64);
                    m.dedup_evictions.inc_by(verdict.evicted_live as u64);
                }
            }
            Observation::InvDropped => m.inv_dropped.inc(),
            Observation::EventReceived {
                subscriber,
                latency,
            } => self.subscriber(subscriber, |s| {
                s.received.inc();
                s.latency.observe(latency.as_secs_f64());
            }),
            Observation::SubscriberLagged {
                subscriber,
                skipped,
            } => self.subscriber(subscriber, |s| s.lagged.inc_by(skipped)),
            Observation::BlockAccepted { propagation, .. } => {
                m.blocks_accepted.inc();
                m.block_propagation.observe(propagation.as_secs_f64());
            }
            Observation::BlockOrphaned => m.blocks_orphaned.inc(),
            Observation::ChainReorganized { depth } => {
                m.reorgs.inc();
                m.reorg_depth.inc_by(depth as u64);
            }
            Observation::ResourceSample {
                resident_memory_bytes,
                cpu_seconds_total,
            } => {
                m.node_memory.set(resident_memory_bytes as i64);
                self.record_cpu(cpu_seconds_total);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_names_the_exporter_reserves_are_the_ones_the_tap_protocol_refuses() {
        for reserved in [OVERFLOW_NAME, INVALID_NAME] {
            assert!(!p2p_tap::protocol::is_plain_name(reserved), "{reserved}");
        }
    }

    #[test]
    fn names_past_the_cap_share_one_series_and_odd_names_become_invalid() {
        let registry = Registry::new();
        let recorder = Recorder::new(&registry, RecorderConfig::default()).unwrap();
        for i in 0..(MAX_NAMES + 5) {
            let name = format!("sub{i}");
            recorder.observe(Observation::SubscriberLagged {
                subscriber: &name,
                skipped: 1,
            });
        }
        recorder.observe(Observation::SubscriberLagged {
            subscriber: "10.0.0.1:8333",
            skipped: 2,
        });
        let lag = recorder.metrics.lagged.clone();
        assert_eq!(lag.with_label_values(&["sub0"]).get(), 1);
        assert_eq!(lag.with_label_values(&[OVERFLOW_NAME]).get(), 5);
        assert_eq!(lag.with_label_values(&[INVALID_NAME]).get(), 2);
        let mut distinct = 0;
        recorder.subscribers.for_each(|_, _| distinct += 1);
        assert_eq!(distinct, MAX_NAMES + 2);
    }

    #[test]
    fn cpu_time_never_goes_backwards_across_a_node_restart() {
        let registry = Registry::new();
        let recorder = Recorder::new(&registry, RecorderConfig::default()).unwrap();
        for cpu in [10.0, 12.5, 3.0, 4.0] {
            recorder.observe(Observation::ResourceSample {
                resident_memory_bytes: 1,
                cpu_seconds_total: cpu,
            });
        }
        assert_eq!(recorder.metrics.node_cpu.get(), 12.5 + 3.0 + 1.0);
    }
}
