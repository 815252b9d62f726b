//! The handles built from the metric contract ([`p2p_contract::METRICS`]), looked up once at
//! start-up so the hot path is an atomic add. Conventions are in `docs/instrumentation.md`.

use prometheus::core::Collector;
use prometheus::{
    Counter, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry,
};

use p2p_contract::{
    MetricDef, ACCEPT_ERROR_REASONS, ACCEPT_LISTENERS, HTTP_CLOSE_REASONS, METRICS,
    TAP_CLIENT_DROP_REASONS, TAP_CLOSE_REASONS, TAP_CONNECTION_RESULTS,
};
use p2p_observe::{DisconnectReason, MessageKind};

/// Upper bounds for delivery latency: the scaling document expects < 10 ms under normal load.
const DELIVERY_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0,
];
/// Upper bounds for block propagation: the scaling document's targets are p50 < 100 ms and p99 < 500 ms.
const PROPAGATION_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0, 30.0,
];
/// Channel fill; 0.8 is the scaling document's capacity-usage threshold.
const USAGE_BUCKETS: &[f64] = &[0.1, 0.25, 0.5, 0.75, 0.8, 0.9, 0.95, 0.99, 1.0];

pub fn def_of(name: &str) -> &'static MetricDef {
    METRICS
        .iter()
        .find(|d| d.name == name)
        .unwrap_or_else(|| panic!("{name} is not in METRICS"))
}

fn opts(name: &str) -> Opts {
    Opts::new(name, def_of(name).help)
}

fn hist(name: &str, buckets: &[f64]) -> HistogramOpts {
    HistogramOpts::new(name, def_of(name).help).buckets(buckets.to_vec())
}

fn register<C: Collector + Clone + 'static>(registry: &Registry, collector: C) -> C {
    registry
        .register(Box::new(collector.clone()))
        .expect("metric names in METRICS are unique");
    collector
}

/// The tap source's own health. Every label value is pre-registered so each series exists (at 0)
/// from the start, and `rate()` sees the first rejection.
pub struct TapMetrics {
    pub connected: IntGauge,
    /// Indexed like [`TAP_CONNECTION_RESULTS`].
    pub connections: [IntCounter; TAP_CONNECTION_RESULTS.len()],
    /// Indexed like [`TAP_CLOSE_REASONS`].
    pub closed: [IntCounter; TAP_CLOSE_REASONS.len()],
    pub records: IntCounter,
    /// Indexed like [`p2p_tap::Reject::ALL`].
    pub rejected: [IntCounter; p2p_tap::Reject::ALL.len()],
    pub sessions: IntCounter,
}

impl TapMetrics {
    pub fn reject(&self, reason: p2p_tap::Reject) -> &IntCounter {
        let index = p2p_tap::Reject::ALL
            .iter()
            .position(|r| *r == reason)
            .expect("Reject::ALL lists every reason");
        &self.rejected[index]
    }
}

/// The HTTP server's connections and both listeners' accept errors, every series pre-registered.
pub struct ServerMetrics {
    pub connections: IntGauge,
    /// Indexed like [`HTTP_CLOSE_REASONS`].
    pub closed: [IntCounter; HTTP_CLOSE_REASONS.len()],
    /// Indexed like [`ACCEPT_LISTENERS`], then [`ACCEPT_ERROR_REASONS`].
    pub accept_errors: [[IntCounter; ACCEPT_ERROR_REASONS.len()]; ACCEPT_LISTENERS.len()],
}

/// Every handle, registered on the registry it was built with. Label handles that are known at
/// start-up are looked up here once, so the hot path is an atomic add.
pub struct Metrics {
    pub tap: TapMetrics,
    pub server: ServerMetrics,
    pub events_sent: IntCounterVec,
    pub events_received: IntCounterVec,
    pub lagged: IntCounterVec,
    pub capacity: IntGaugeVec,
    pub queued: IntGaugeVec,
    pub usage: HistogramVec,
    pub usage_peak: GaugeVec,
    pub delivery_latency: HistogramVec,
    pub messages: [IntCounter; MessageKind::ALL.len()],
    pub inv_messages: IntCounter,
    pub inv_checked_messages: IntCounter,
    pub inv_duplicate_messages: IntCounter,
    pub inv_items: IntCounter,
    pub inv_checked_items: IntCounter,
    pub inv_duplicate_items: IntCounter,
    pub inv_dropped: IntCounter,
    pub dedup_tracked: IntGauge,
    pub dedup_evictions: IntCounter,
    pub peers: IntGauge,
    pub connections_inbound: IntCounter,
    pub connections_outbound: IntCounter,
    pub disconnections: [IntCounter; DisconnectReason::ALL.len()],
    pub registrations_refused: IntCounter,
    pub blocks_accepted: IntCounter,
    pub block_propagation: Histogram,
    pub blocks_orphaned: IntCounter,
    pub reorgs: IntCounter,
    pub reorg_depth: IntCounter,
    pub unsubscribed: IntCounterVec,
    pub blocks_unannounced: IntCounter,
    pub reorgs_unknown_depth: IntCounter,
    pub client_records: IntCounter,
    /// Indexed like [`TAP_CLIENT_DROP_REASONS`].
    pub client_dropped: [IntCounter; TAP_CLIENT_DROP_REASONS.len()],
    pub node_memory: IntGauge,
    pub node_cpu: Counter,
    pub spans_ended: IntCounter,
    pub spans_exported: IntCounter,
    pub spans_export_failed: IntCounter,
    pub recording: RecordingMetrics,
}

/// The counters the telemetry pipeline reports to; registered with every other metric.
#[derive(Clone)]
pub struct SpanCounters {
    pub ended: IntCounter,
    pub exported: IntCounter,
    pub failed: IntCounter,
}

/// The --record file's counts, copied from its writer at each scrape.
pub struct RecordingMetrics {
    pub written: IntCounter,
    pub dropped: IntCounter,
    pub counts: std::sync::OnceLock<std::sync::Arc<p2p_recording::Counts>>,
}

impl RecordingMetrics {
    pub fn refresh(&self) {
        use std::sync::atomic::Ordering;
        let Some(counts) = self.counts.get() else {
            return;
        };
        for (counter, total) in [
            (&self.written, &counts.written),
            (&self.dropped, &counts.dropped),
        ] {
            let total = total.load(Ordering::Relaxed);
            counter.inc_by(total.saturating_sub(counter.get()));
        }
    }
}

impl Metrics {
    /// The sidecar's own metrics go on `registry`, what describes the node on `node`: the same
    /// registry with the embedded source, an unserved one with the tap source, whose node
    /// families come from the node's snapshots instead (`crate::node_view`).
    pub fn new(registry: &Registry, node: &Registry, source: &str) -> prometheus::Result<Metrics> {
        let counter = |name: &str| register(registry, IntCounter::with_opts(opts(name)).unwrap());
        let counter_vec = |name: &str| {
            register(
                registry,
                IntCounterVec::new(opts(name), def_of(name).labels).unwrap(),
            )
        };
        let node_counter = |name: &str| register(node, IntCounter::with_opts(opts(name)).unwrap());
        let node_counter_vec = |name: &str| {
            register(
                node,
                IntCounterVec::new(opts(name), def_of(name).labels).unwrap(),
            )
        };
        let gauge_vec = |name: &str| {
            register(
                node,
                IntGaugeVec::new(opts(name), def_of(name).labels).unwrap(),
            )
        };
        let messages_vec = node_counter_vec("p2p_messages_total");
        let connections = node_counter_vec("p2p_peer_connections_total");
        let disconnections_vec = node_counter_vec("p2p_peer_disconnections_total");
        let build_info = register(
            registry,
            IntGaugeVec::new(
                opts("p2p_exporter_build_info"),
                def_of("p2p_exporter_build_info").labels,
            )?,
        );
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION"), source])
            .set(1);
        let tap_connections = counter_vec("p2p_tap_connections_total");
        let tap_closed = counter_vec("p2p_tap_connections_closed_total");
        let tap_rejected = counter_vec("p2p_tap_records_rejected_total");
        let tap_client_dropped = node_counter_vec("p2p_tap_client_dropped_records_total");
        let tap = TapMetrics {
            connected: register(registry, IntGauge::with_opts(opts("p2p_tap_connected"))?),
            connections: TAP_CONNECTION_RESULTS.map(|r| tap_connections.with_label_values(&[r])),
            closed: TAP_CLOSE_REASONS.map(|r| tap_closed.with_label_values(&[r])),
            records: counter("p2p_tap_records_total"),
            rejected: p2p_tap::Reject::ALL.map(|r| tap_rejected.with_label_values(&[r.as_str()])),
            sessions: counter("p2p_tap_node_sessions_total"),
        };
        let http_closed = counter_vec("p2p_exporter_http_connections_closed_total");
        let accept_errors = counter_vec("p2p_exporter_accept_errors_total");
        let server = ServerMetrics {
            connections: register(
                registry,
                IntGauge::with_opts(opts("p2p_exporter_http_connections"))?,
            ),
            closed: HTTP_CLOSE_REASONS.map(|r| http_closed.with_label_values(&[r])),
            accept_errors: ACCEPT_LISTENERS.map(|listener| {
                ACCEPT_ERROR_REASONS.map(|r| accept_errors.with_label_values(&[listener, r]))
            }),
        };
        Ok(Metrics {
            tap,
            server,
            events_sent: node_counter_vec("p2p_events_sent_total"),
            events_received: node_counter_vec("p2p_events_received_total"),
            lagged: node_counter_vec("p2p_event_channel_lag_total"),
            capacity: gauge_vec("p2p_event_channel_capacity"),
            queued: gauge_vec("p2p_event_channel_queued_events"),
            usage: register(
                node,
                HistogramVec::new(
                    hist("p2p_event_channel_usage_ratio", USAGE_BUCKETS),
                    &["channel"],
                )?,
            ),
            usage_peak: register(
                node,
                GaugeVec::new(opts("p2p_event_channel_usage_peak_ratio"), &["channel"])?,
            ),
            delivery_latency: register(
                node,
                HistogramVec::new(
                    hist("p2p_event_delivery_latency_seconds", DELIVERY_BUCKETS),
                    &["subscriber"],
                )?,
            ),
            messages: MessageKind::ALL.map(|kind| messages_vec.with_label_values(&[kind.as_str()])),
            inv_messages: node_counter("p2p_inv_messages_total"),
            inv_checked_messages: counter("p2p_inv_checked_messages_total"),
            inv_duplicate_messages: counter("p2p_inv_duplicate_messages_total"),
            inv_items: node_counter("p2p_inv_items_total"),
            inv_checked_items: counter("p2p_inv_checked_items_total"),
            inv_duplicate_items: counter("p2p_inv_duplicate_items_total"),
            inv_dropped: counter("p2p_inv_dropped_messages_total"),
            dedup_tracked: register(
                registry,
                IntGauge::with_opts(opts("p2p_inv_dedup_tracked_items"))?,
            ),
            dedup_evictions: counter("p2p_inv_dedup_evictions_total"),
            peers: register(node, IntGauge::with_opts(opts("p2p_peers"))?),
            connections_inbound: connections.with_label_values(&["inbound"]),
            connections_outbound: connections.with_label_values(&["outbound"]),
            disconnections: DisconnectReason::ALL
                .map(|reason| disconnections_vec.with_label_values(&[reason.as_str()])),
            registrations_refused: node_counter("p2p_peer_registrations_refused_total"),
            blocks_accepted: node_counter("p2p_blocks_accepted_total"),
            block_propagation: register(
                node,
                Histogram::with_opts(hist("p2p_block_propagation_seconds", PROPAGATION_BUCKETS))?,
            ),
            blocks_orphaned: node_counter("p2p_blocks_orphaned_total"),
            reorgs: node_counter("p2p_chain_reorgs_total"),
            reorg_depth: node_counter("p2p_chain_reorg_depth_blocks_total"),
            unsubscribed: node_counter_vec("p2p_events_unsubscribed_total"),
            blocks_unannounced: node_counter("p2p_blocks_unannounced_total"),
            reorgs_unknown_depth: node_counter("p2p_chain_reorgs_unknown_depth_total"),
            client_records: node_counter("p2p_tap_client_records_total"),
            client_dropped: TAP_CLIENT_DROP_REASONS
                .map(|r| tap_client_dropped.with_label_values(&[r])),
            node_memory: register(
                node,
                IntGauge::with_opts(opts("p2p_node_resident_memory_bytes"))?,
            ),
            node_cpu: register(
                node,
                Counter::with_opts(opts("p2p_node_cpu_seconds_total"))?,
            ),
            spans_ended: counter("p2p_exporter_spans_ended_total"),
            spans_exported: counter("p2p_exporter_spans_exported_total"),
            spans_export_failed: counter("p2p_exporter_spans_export_failed_total"),
            recording: RecordingMetrics {
                written: counter("p2p_recording_written_total"),
                dropped: counter("p2p_recording_dropped_total"),
                counts: std::sync::OnceLock::new(),
            },
        })
    }
}
