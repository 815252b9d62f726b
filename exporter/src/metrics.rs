//! Every metric the exporter serves, in one table, and the handles built from it.
//!
//! The table is the contract: the README's metric table, the dashboards' checks and the tests all
//! compare against [`METRICS`]. Conventions are in `docs/instrumentation.md`.

use prometheus::core::Collector;
use prometheus::{
    Counter, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry,
};

use p2p_observe::{DisconnectReason, MessageKind};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricType {
    Counter,
    Gauge,
    Histogram,
}

impl MetricType {
    pub fn as_str(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct MetricDef {
    pub name: &'static str,
    pub kind: MetricType,
    pub labels: &'static [&'static str],
    pub help: &'static str,
}

const fn def(
    name: &'static str,
    kind: MetricType,
    labels: &'static [&'static str],
    help: &'static str,
) -> MetricDef {
    MetricDef {
        name,
        kind,
        labels,
        help,
    }
}

use MetricType::{Counter as C, Gauge as G, Histogram as H};

pub const METRICS: &[MetricDef] = &[
    def("p2p_events_sent_total", C, &["channel"], "Events emitted into a router channel."),
    def("p2p_events_received_total", C, &["subscriber"], "Events a subscriber received."),
    def("p2p_event_channel_lag_total", C, &["subscriber"], "Events a subscriber skipped because it lagged (sum of RecvError::Lagged(n))."),
    def("p2p_event_channel_capacity", G, &["channel"], "Configured capacity of a router channel, in events."),
    def("p2p_event_channel_queued_events", G, &["channel"], "Events queued and not yet seen by the slowest subscriber, after the latest send."),
    def("p2p_event_channel_usage_ratio", H, &["channel"], "Channel fill (queued / capacity) right after each send; a burst between scrapes shows in the upper buckets."),
    def("p2p_event_channel_usage_peak_ratio", G, &["channel"], "Highest channel fill (queued / capacity) over the last peak window (--peak-window)."),
    def("p2p_event_delivery_latency_seconds", H, &["subscriber"], "Time from an event's send to its receipt by a subscriber."),
    def("p2p_messages_total", C, &["type"], "Protocol messages emitted by peers, by NetMessage type."),
    def("p2p_inv_messages_total", C, &[], "Inv messages observed."),
    def("p2p_inv_duplicate_messages_total", C, &[], "Inv messages whose every item was already seen within the dedup TTL (what deduplication would drop)."),
    def("p2p_inv_items_total", C, &[], "Inventory items announced in inv messages."),
    def("p2p_inv_duplicate_items_total", C, &[], "Inventory items already seen within the dedup TTL."),
    def("p2p_inv_dropped_messages_total", C, &[], "Inv messages a deduplicating router dropped before they entered a channel (zero on the node's single-channel router)."),
    def("p2p_inv_dedup_tracked_items", G, &[], "Inventory items the duplicate tracker remembers."),
    def("p2p_inv_dedup_evictions_total", C, &[], "Items the duplicate tracker forgot before their TTL because it was full; while this grows, duplicate counts are a lower bound."),
    def("p2p_peers", G, &[], "Connected peers."),
    def("p2p_peer_connections_total", C, &["direction"], "Peers registered, by direction."),
    def("p2p_peer_disconnections_total", C, &["reason"], "Peers disconnected, by reason reduced to a closed set."),
    def("p2p_peer_registrations_refused_total", C, &[], "Peer registrations refused because the router was at max_peers."),
    def("p2p_blocks_accepted_total", C, &[], "Blocks the node accepted onto its best chain."),
    def("p2p_block_propagation_seconds", H, &[], "Time from a block's first announcement to this node until the node accepted it."),
    def("p2p_blocks_orphaned_total", C, &[], "Blocks that did not connect to the best chain."),
    def("p2p_chain_reorgs_total", C, &[], "Times the best chain switched branches."),
    def("p2p_chain_reorg_depth_blocks_total", C, &[], "Blocks undone by reorganisations."),
    def("p2p_node_resident_memory_bytes", G, &[], "Resident memory of the node process (of the exporter process when running the embedded router)."),
    def("p2p_node_cpu_seconds_total", C, &[], "CPU time used by the node process (by the exporter process when running the embedded router)."),
    def("p2p_exporter_spans_ended_total", C, &[], "Spans handed to the OTLP pipeline (0 while tracing is off)."),
    def("p2p_exporter_spans_exported_total", C, &[], "Spans the OTLP exporter delivered."),
    def("p2p_exporter_spans_export_failed_total", C, &[], "Spans dropped because their OTLP export failed or timed out; ended - exported - failed is what waits in, or was dropped from, the bounded queue."),
    def("p2p_tap_connected", G, &[], "1 while a node's tap client is connected to the tap source (always 0 with the embedded source)."),
    def("p2p_tap_connections_total", C, &["result"], "Connections to the tap source, by result: accepted, refused_busy (a node is already connected), refused_handshake (no valid hello or a wrong token)."),
    def("p2p_tap_records_total", C, &[], "Observation records the tap source accepted and passed to the recorder."),
    def("p2p_tap_records_rejected_total", C, &["reason"], "Lines the tap source skipped, by reason (see docs/tap-protocol.md); the connection keeps serving."),
    def("p2p_tap_client_records_total", C, &[], "Observations the node's tap client produced, from its stats records; summed over node restarts."),
    def("p2p_tap_client_dropped_records_total", C, &["reason"], "Observations the node's tap client did not deliver, by reason: queue_full (dropped, never sent) or connection_lost (in a write that failed); summed over node restarts."),
    def("p2p_tap_node_sessions_total", C, &[], "Runs of the node seen by the tap source (a new hello session); a rise is a node restart, not lag."),
    def("p2p_recording_written_total", C, &[], "Arrivals written to the --record file (0 when not recording)."),
    def("p2p_recording_dropped_total", C, &[], "Arrivals not recorded because the recording's queue was full or its file failed; the router never waits for the recording."),
    def("p2p_exporter_build_info", G, &["version", "source"], "Always 1; labels carry the exporter version and its observation source."),
];

/// `result` of `p2p_tap_connections_total`.
pub const TAP_CONNECTION_RESULTS: [&str; 3] = ["accepted", "refused_busy", "refused_handshake"];
/// `reason` of `p2p_tap_client_dropped_records_total`.
pub const TAP_CLIENT_DROP_REASONS: [&str; 2] = ["queue_full", "connection_lost"];

/// Label values of each labelled metric that are not fixed by the code: `channel` and `subscriber`
/// come from names the router's code chooses, bounded by [`MAX_NAMES`]; everything else is closed.
pub const MAX_NAMES: usize = 16;
pub const OVERFLOW_NAME: &str = "other";
pub const INVALID_NAME: &str = "invalid";

/// Upper bounds for delivery latency: the seed expects < 10 ms under normal load.
const DELIVERY_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0,
];
/// Upper bounds for block propagation: the seed's targets are p50 < 100 ms and p99 < 500 ms.
const PROPAGATION_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0, 30.0,
];
/// Channel fill; 0.8 is the seed's capacity-usage threshold.
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
    pub connections: [IntCounter; 3],
    pub records: IntCounter,
    /// Indexed like [`p2p_tap::Reject::ALL`].
    pub rejected: [IntCounter; p2p_tap::Reject::ALL.len()],
    pub client_records: IntCounter,
    /// Indexed like [`TAP_CLIENT_DROP_REASONS`].
    pub client_dropped: [IntCounter; 2],
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

/// Every handle, registered on the registry it was built with. Label handles that are known at
/// start-up are looked up here once, so the hot path is an atomic add.
pub struct Metrics {
    pub tap: TapMetrics,
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
    pub inv_duplicate_messages: IntCounter,
    pub inv_items: IntCounter,
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
    pub node_memory: IntGauge,
    pub node_cpu: Counter,
    pub spans_ended: IntCounter,
    pub spans_exported: IntCounter,
    pub spans_export_failed: IntCounter,
    pub recording: RecordingMetrics,
}

/// The --record file's counts, copied from its writer at each scrape.
pub struct RecordingMetrics {
    pub written: IntCounter,
    pub dropped: IntCounter,
    pub counts: std::sync::OnceLock<std::sync::Arc<p2p_sim::record::Counts>>,
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
    pub fn new(registry: &Registry, source: &str) -> prometheus::Result<Metrics> {
        let counter = |name: &str| register(registry, IntCounter::with_opts(opts(name)).unwrap());
        let counter_vec = |name: &str| {
            register(
                registry,
                IntCounterVec::new(opts(name), def_of(name).labels).unwrap(),
            )
        };
        let gauge_vec = |name: &str| {
            register(
                registry,
                IntGaugeVec::new(opts(name), def_of(name).labels).unwrap(),
            )
        };
        let messages_vec = counter_vec("p2p_messages_total");
        let connections = counter_vec("p2p_peer_connections_total");
        let disconnections_vec = counter_vec("p2p_peer_disconnections_total");
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
        let tap_rejected = counter_vec("p2p_tap_records_rejected_total");
        let tap_client_dropped = counter_vec("p2p_tap_client_dropped_records_total");
        let tap = TapMetrics {
            connected: register(registry, IntGauge::with_opts(opts("p2p_tap_connected"))?),
            connections: TAP_CONNECTION_RESULTS.map(|r| tap_connections.with_label_values(&[r])),
            records: counter("p2p_tap_records_total"),
            rejected: p2p_tap::Reject::ALL.map(|r| tap_rejected.with_label_values(&[r.as_str()])),
            client_records: counter("p2p_tap_client_records_total"),
            client_dropped: TAP_CLIENT_DROP_REASONS
                .map(|r| tap_client_dropped.with_label_values(&[r])),
            sessions: counter("p2p_tap_node_sessions_total"),
        };
        Ok(Metrics {
            tap,
            events_sent: counter_vec("p2p_events_sent_total"),
            events_received: counter_vec("p2p_events_received_total"),
            lagged: counter_vec("p2p_event_channel_lag_total"),
            capacity: gauge_vec("p2p_event_channel_capacity"),
            queued: gauge_vec("p2p_event_channel_queued_events"),
            usage: register(
                registry,
                HistogramVec::new(
                    hist("p2p_event_channel_usage_ratio", USAGE_BUCKETS),
                    &["channel"],
                )?,
            ),
            usage_peak: register(
                registry,
                GaugeVec::new(opts("p2p_event_channel_usage_peak_ratio"), &["channel"])?,
            ),
            delivery_latency: register(
                registry,
                HistogramVec::new(
                    hist("p2p_event_delivery_latency_seconds", DELIVERY_BUCKETS),
                    &["subscriber"],
                )?,
            ),
            messages: MessageKind::ALL.map(|kind| messages_vec.with_label_values(&[kind.as_str()])),
            inv_messages: counter("p2p_inv_messages_total"),
            inv_duplicate_messages: counter("p2p_inv_duplicate_messages_total"),
            inv_items: counter("p2p_inv_items_total"),
            inv_duplicate_items: counter("p2p_inv_duplicate_items_total"),
            inv_dropped: counter("p2p_inv_dropped_messages_total"),
            dedup_tracked: register(
                registry,
                IntGauge::with_opts(opts("p2p_inv_dedup_tracked_items"))?,
            ),
            dedup_evictions: counter("p2p_inv_dedup_evictions_total"),
            peers: register(registry, IntGauge::with_opts(opts("p2p_peers"))?),
            connections_inbound: connections.with_label_values(&["inbound"]),
            connections_outbound: connections.with_label_values(&["outbound"]),
            disconnections: DisconnectReason::ALL
                .map(|reason| disconnections_vec.with_label_values(&[reason.as_str()])),
            registrations_refused: counter("p2p_peer_registrations_refused_total"),
            blocks_accepted: counter("p2p_blocks_accepted_total"),
            block_propagation: register(
                registry,
                Histogram::with_opts(hist("p2p_block_propagation_seconds", PROPAGATION_BUCKETS))?,
            ),
            blocks_orphaned: counter("p2p_blocks_orphaned_total"),
            reorgs: counter("p2p_chain_reorgs_total"),
            reorg_depth: counter("p2p_chain_reorg_depth_blocks_total"),
            node_memory: register(
                registry,
                IntGauge::with_opts(opts("p2p_node_resident_memory_bytes"))?,
            ),
            node_cpu: register(
                registry,
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
