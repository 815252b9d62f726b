//! The node's counts as its tap last reported them: the latest accepted snapshot, served as it is.
//!
//! Until the first snapshot of a connection arrives, none of these series exists, so a sidecar
//! restart shows Prometheus a gap, never a reset followed by the node's whole history. A node
//! restart is a new session whose counts start at zero, which `rate()` treats like any process
//! restart.

use std::sync::{Arc, Mutex};
use tokio::time::Instant;

use p2p_contract::TAP_CLIENT_DROP_REASONS;
use p2p_observe::{DisconnectReason, MessageKind};
use p2p_tap::histogram::{
    HistogramSnapshot, DELIVERY_BOUNDS_NS, PROPAGATION_BOUNDS_NS, SERVICE_BOUNDS_NS,
};
use p2p_tap::protocol::Snapshot;
use prometheus::core::{Collector, Desc};
use prometheus::proto::{self, MetricFamily, MetricType};

use crate::metrics::def_of;
use crate::peak::PeakWindow;

/// The session and latest snapshot, and the channel peaks of the last `peak_window` seconds.
struct View {
    session: u64,
    snapshot: Snapshot,
    peaks: Vec<(String, PeakWindow)>,
}

pub struct NodeView {
    view: Mutex<Option<View>>,
    /// The node run last connected, which may not have sent a snapshot yet.
    last_session: Mutex<Option<u64>>,
    origin: Instant,
    peak_window_seconds: u64,
}

/// What the decision engine reads from the node.
pub struct NodeTotals {
    pub subscribers: Vec<(String, u64, u64)>,
    pub peers: i64,
}

/// What the view did with a snapshot.
#[derive(Debug, PartialEq, Eq)]
pub enum Accepted {
    /// The session's first snapshot this sidecar has seen: a new node run if `restarted`.
    First {
        restarted: bool,
    },
    Next,
}

impl NodeView {
    pub fn new(peak_window_seconds: u64) -> NodeView {
        NodeView {
            view: Mutex::new(None),
            last_session: Mutex::new(None),
            origin: Instant::now(),
            peak_window_seconds: peak_window_seconds.max(1),
        }
    }

    /// A connection of node run `session` was accepted. Another run's counts stop being served
    /// at once: until this run's first snapshot, its node series are absent (a gap), never the
    /// previous run's as if they were live.
    pub fn begin_session(&self, session: u64) {
        let mut view = self.view.lock().unwrap_or_else(|e| e.into_inner());
        if view.as_ref().is_some_and(|v| v.session != session) {
            *view = None;
        }
    }

    /// Checks `snapshot` (ranges, and no count going backwards within `session`) and serves it.
    pub fn accept(&self, session: u64, snapshot: Snapshot) -> Result<Accepted, p2p_tap::Reject> {
        let mut view = self.view.lock().unwrap_or_else(|e| e.into_inner());
        let same_session = view.as_ref().filter(|v| v.session == session);
        snapshot.check(same_session.map(|v| &v.snapshot))?;
        let accepted = match &*view {
            Some(v) if v.session == session => Accepted::Next,
            _ => {
                let mut last = self.last_session.lock().unwrap_or_else(|e| e.into_inner());
                let restarted = last.is_some_and(|s| s != session);
                *last = Some(session);
                Accepted::First { restarted }
            }
        };
        let second = self.origin.elapsed().as_secs();
        let mut peaks = match view.take() {
            Some(v) if v.session == session => v.peaks,
            _ => Vec::new(),
        };
        for channel in &snapshot.channels {
            let index = match peaks.iter().position(|(n, _)| *n == channel.name) {
                Some(index) => index,
                None => {
                    peaks.push((channel.name.clone(), PeakWindow::default()));
                    peaks.len() - 1
                }
            };
            peaks[index].1.record(second, channel.peak);
        }
        *view = Some(View {
            session,
            snapshot,
            peaks,
        });
        Ok(accepted)
    }

    /// Lag and receipts per subscriber (name, received, lagged) and connected peers, for the
    /// decision engine.
    pub fn totals(&self) -> Option<NodeTotals> {
        let view = self.view.lock().unwrap_or_else(|e| e.into_inner());
        let s = &view.as_ref()?.snapshot;
        let subscribers = s
            .subscribers
            .iter()
            .map(|sub| (sub.name.clone(), sub.received, sub.lagged))
            .collect();
        Some(NodeTotals {
            subscribers,
            peers: s.peers.current() as i64,
        })
    }
}

/// Serves a [`NodeView`] from a registry.
pub struct NodeCollector(pub Arc<NodeView>);

impl Collector for NodeCollector {
    /// None declared: the families appear only once a snapshot exists, and the names are the
    /// contract's, which the embedded source's handles would otherwise also claim.
    fn desc(&self) -> Vec<&Desc> {
        Vec::new()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let node = &self.0;
        let view = node.view.lock().unwrap_or_else(|e| e.into_inner());
        let Some(view) = view.as_ref() else {
            return Vec::new();
        };
        let now = node.origin.elapsed().as_secs();
        families(view, now, node.peak_window_seconds)
    }
}

fn families(view: &View, now: u64, window: u64) -> Vec<MetricFamily> {
    let s = &view.snapshot;
    let mut out = Families::default();
    for c in &s.channels {
        let labels = [("channel", c.name.as_str())];
        out.counter("p2p_events_sent_total", &labels, c.sent);
        out.counter("p2p_events_unsubscribed_total", &labels, c.unsubscribed);
        out.gauge("p2p_event_channel_capacity", &labels, c.capacity as f64);
        out.gauge("p2p_event_channel_queued_events", &labels, c.queued as f64);
        let peak = view
            .peaks
            .iter()
            .find(|(n, _)| *n == c.name)
            .map_or(c.peak, |(_, p)| p.max(now, window));
        out.gauge(
            "p2p_event_channel_usage_peak_ratio",
            &labels,
            peak as f64 / c.capacity as f64,
        );
    }
    for sub in &s.subscribers {
        let labels = [("subscriber", sub.name.as_str())];
        out.counter("p2p_events_received_total", &labels, sub.received);
        out.counter("p2p_event_channel_lag_total", &labels, sub.lagged);
        out.histogram(
            "p2p_event_delivery_latency_seconds",
            &labels,
            &sub.latency,
            DELIVERY_BOUNDS_NS,
        );
    }
    // Summed over subscribers: a label per subscriber and type would multiply the series by 18.
    for (i, kind) in MessageKind::ALL.iter().enumerate() {
        let mut total = HistogramSnapshot {
            buckets: vec![0; SERVICE_BOUNDS_NS.len() + 1],
            sum_ns: 0,
        };
        for service in s.subscribers.iter().filter_map(|sub| sub.service.get(i)) {
            for (into, count) in total.buckets.iter_mut().zip(&service.buckets) {
                *into += count;
            }
            total.sum_ns = total.sum_ns.saturating_add(service.sum_ns);
        }
        if total.count() > 0 {
            out.histogram(
                "p2p_consumer_service_seconds",
                &[("type", kind.as_str())],
                &total,
                SERVICE_BOUNDS_NS,
            );
        }
    }
    for (kind, count) in MessageKind::ALL.iter().zip(&s.messages) {
        out.counter("p2p_messages_total", &[("type", kind.as_str())], *count);
    }
    out.counter("p2p_inv_messages_total", &[], s.inv_messages);
    out.counter("p2p_inv_items_total", &[], s.inv_items);
    let p = &s.peers;
    out.gauge("p2p_peers", &[], p.current() as f64);
    out.counter(
        "p2p_peer_connections_total",
        &[("direction", "inbound")],
        p.inbound,
    );
    out.counter(
        "p2p_peer_connections_total",
        &[("direction", "outbound")],
        p.outbound,
    );
    for (reason, count) in DisconnectReason::ALL.iter().zip(&p.disconnected) {
        out.counter(
            "p2p_peer_disconnections_total",
            &[("reason", reason.as_str())],
            *count,
        );
    }
    out.counter("p2p_peer_registrations_refused_total", &[], p.refused);
    let b = &s.blocks;
    out.counter("p2p_blocks_accepted_total", &[], b.accepted);
    out.counter("p2p_blocks_unannounced_total", &[], b.unannounced);
    out.counter("p2p_blocks_orphaned_total", &[], b.orphaned);
    out.counter("p2p_chain_reorgs_total", &[], b.reorgs);
    out.counter("p2p_chain_reorg_depth_blocks_total", &[], b.reorg_depth);
    out.counter(
        "p2p_chain_reorgs_unknown_depth_total",
        &[],
        b.reorgs_unknown_depth,
    );
    out.histogram(
        "p2p_block_propagation_seconds",
        &[],
        &b.propagation,
        PROPAGATION_BOUNDS_NS,
    );
    let d = &s.detail;
    out.counter(
        "p2p_tap_client_records_total",
        &[],
        d.entries + d.dropped_entries + d.journeys,
    );
    for (reason, dropped) in TAP_CLIENT_DROP_REASONS
        .iter()
        .zip([d.dropped_entries, d.dropped_journeys])
    {
        out.counter(
            "p2p_tap_client_dropped_records_total",
            &[("reason", reason)],
            dropped,
        );
    }
    if let Some(r) = &s.resources {
        out.gauge(
            "p2p_node_resident_memory_bytes",
            &[],
            r.resident_memory_bytes as f64,
        );
        out.counter_f64("p2p_node_cpu_seconds_total", &[], r.cpu_seconds);
    }
    out.0
}

/// Families in the order first named, each with its contract help.
#[derive(Default)]
struct Families(Vec<MetricFamily>);

impl Families {
    fn push(
        &mut self,
        name: &str,
        kind: MetricType,
        labels: &[(&str, &str)],
        mut metric: proto::Metric,
    ) {
        metric.set_label(
            labels
                .iter()
                .map(|(n, v)| {
                    let mut pair = proto::LabelPair::default();
                    pair.set_name((*n).to_owned());
                    pair.set_value((*v).to_owned());
                    pair
                })
                .collect(),
        );
        if let Some(family) = self.0.iter_mut().find(|f| f.name() == name) {
            family.mut_metric().push(metric);
            return;
        }
        let mut family = MetricFamily::default();
        family.set_name(name.to_owned());
        family.set_help(def_of(name).help.to_owned());
        family.set_field_type(kind);
        family.mut_metric().push(metric);
        self.0.push(family);
    }

    fn counter(&mut self, name: &str, labels: &[(&str, &str)], value: u64) {
        self.counter_f64(name, labels, value as f64);
    }

    fn counter_f64(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        let mut counter = proto::Counter::default();
        counter.set_value(value);
        let mut metric = proto::Metric::default();
        metric.set_counter(counter);
        self.push(name, MetricType::COUNTER, labels, metric);
    }

    fn gauge(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        let mut gauge = proto::Gauge::default();
        gauge.set_value(value);
        self.push(
            name,
            MetricType::GAUGE,
            labels,
            proto::Metric::from_gauge(gauge),
        );
    }

    fn histogram(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        histogram: &HistogramSnapshot,
        bounds_ns: &[u64],
    ) {
        let mut h = proto::Histogram::default();
        let mut cumulative = 0;
        h.set_bucket(
            bounds_ns
                .iter()
                .zip(&histogram.buckets)
                .map(|(bound, count)| {
                    cumulative += count;
                    let mut bucket = proto::Bucket::default();
                    bucket.set_cumulative_count(cumulative);
                    bucket.set_upper_bound(*bound as f64 / 1e9);
                    bucket
                })
                .collect(),
        );
        h.set_sample_count(histogram.count());
        h.set_sample_sum(histogram.sum_ns as f64 / 1e9);
        let mut metric = proto::Metric::default();
        metric.set_histogram(h);
        self.push(name, MetricType::HISTOGRAM, labels, metric);
    }
}
