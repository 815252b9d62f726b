//! The metric contract: every metric the exporter serves (name, type, labels, help) and the bound
//! of every label's values, in one table.
//!
//! The README's metric table, the dashboards' and rules' checks and the tests all compare against
//! [`METRICS`]; the exporter registers exactly these. A crate of its own so that the checks can
//! read the contract without building the HTTP server. Conventions: `docs/instrumentation.md`.

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
    def("p2p_events_unsubscribed_total", C, &["channel"], "Sends that reached no subscriber (the channel had none), so never entered the channel."),
    def("p2p_events_received_total", C, &["subscriber"], "Events a subscriber received."),
    def("p2p_event_channel_lag_total", C, &["subscriber"], "Events a subscriber skipped because it lagged (sum of RecvError::Lagged(n))."),
    def("p2p_event_channel_capacity", G, &["channel"], "Configured capacity of a router channel, in events."),
    def("p2p_event_channel_queued_events", G, &["channel"], "Events queued and not yet seen by the slowest subscriber: after the latest send (embedded source), at the latest snapshot (tap source)."),
    def("p2p_event_channel_usage_ratio", H, &["channel"], "Channel fill (queued / capacity) right after each send; a burst between scrapes shows in the upper buckets."),
    def("p2p_event_channel_usage_peak_ratio", G, &["channel"], "Highest channel fill (queued / capacity) over the last peak window (--peak-window)."),
    def("p2p_event_delivery_latency_seconds", H, &["subscriber"], "Time from an event's send to its receipt by a subscriber."),
    def("p2p_consumer_service_seconds", H, &["type"], "Time the node's subscribers spent on one message before their next receive, by message type, summed over subscribers (the node has one); one event in 32, from the node's tap (not served by the embedded source)."),
    def("p2p_messages_total", C, &["type"], "Protocol messages emitted by peers, by NetMessage type."),
    def("p2p_inv_messages_total", C, &[], "Inv messages observed."),
    def("p2p_inv_checked_messages_total", C, &[], "Inv messages the duplicate tracker checked: all of them with the embedded source, those the tap's detail stream delivered with the tap source (the duplicate ratios' denominator)."),
    def("p2p_inv_checked_items_total", C, &[], "Inventory items the duplicate tracker checked (see p2p_inv_checked_messages_total)."),
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
    def("p2p_blocks_accepted_total", C, &[], "Blocks the node connected to its chain (the best chain or, with the tap source, a side branch)."),
    def("p2p_block_propagation_seconds", H, &[], "Time from a block's first announcement to this node until the node accepted it."),
    def("p2p_blocks_unannounced_total", C, &[], "Accepted blocks never announced to this node (mined here or fetched in sync), so without a propagation time."),
    def("p2p_blocks_orphaned_total", C, &[], "Blocks the node could not connect: with the tap source, a block whose parent is unknown; in the embedded model, one that did not extend the best chain."),
    def("p2p_chain_reorgs_total", C, &[], "Times the best chain switched branches."),
    def("p2p_chain_reorg_depth_blocks_total", C, &[], "Blocks undone by reorganisations of known depth."),
    def("p2p_chain_reorgs_unknown_depth_total", C, &[], "Reorganisations whose depth the node did not report."),
    def("p2p_node_resident_memory_bytes", G, &[], "Resident memory of the node process (of the exporter process when running the embedded router)."),
    def("p2p_node_cpu_seconds_total", C, &[], "CPU time used by the node process (by the exporter process when running the embedded router)."),
    def("p2p_exporter_spans_ended_total", C, &[], "Spans handed to the OTLP pipeline (0 while tracing is off)."),
    def("p2p_exporter_spans_exported_total", C, &[], "Spans the OTLP exporter delivered."),
    def("p2p_exporter_spans_export_failed_total", C, &[], "Spans dropped because their OTLP export failed or timed out; ended - exported - failed is what waits in, or was dropped from, the bounded queue."),
    def("p2p_tap_connected", G, &[], "1 while a node's tap client is connected to the tap source (always 0 with the embedded source)."),
    def("p2p_tap_connections_total", C, &["result"], "Connections to the tap source, each counted once by result: accepted, refused_busy (too many waiting for their hello), refused_handshake (no valid hello), refused_token, hello_timeout, closed_before_hello."),
    def("p2p_tap_connections_closed_total", C, &["reason"], "Accepted tap connections that ended, by reason: eof, idle (nothing for 10 s), replaced (by a new hello from the node), too_large (a frame over the limit), error."),
    def("p2p_tap_records_total", C, &[], "Frames (snapshots, journal batches, block journeys) the tap source accepted."),
    def("p2p_tap_records_rejected_total", C, &["reason"], "Frames the tap source refused, by reason (see docs/tap-protocol.md); only too_large closes the connection."),
    def("p2p_tap_client_records_total", C, &[], "Detail records the node's tap produced for its detail stream (inv entries and block journeys), from its snapshots."),
    def("p2p_tap_client_dropped_records_total", C, &["reason"], "Detail records the node's tap dropped, by reason: buffer_full (inv entries: its detail buffer was full) or journey_buffer_full (block journeys); counts stay exact, the duplicate ratio then covers p2p_inv_checked_messages_total of p2p_inv_messages_total."),
    def("p2p_tap_node_sessions_total", C, &[], "Runs of the node seen by the tap source (a new hello session); a rise is a node restart, not lag."),
    def("p2p_recording_written_total", C, &[], "Arrivals written to the --record file (0 when not recording)."),
    def("p2p_recording_dropped_total", C, &[], "Arrivals not recorded because the recording's queue was full or its file failed; the router never waits for the recording."),
    def("p2p_exporter_http_connections", G, &[], "Open connections to the sidecar's HTTP server, at most --web.max-connections."),
    def("p2p_exporter_http_connections_closed_total", C, &["reason"], "HTTP connections that ended, by reason: closed (by the client, or after its last response), timeout (no TLS handshake or request head within --web.header-timeout, idle keep-alive included), evicted (closed for a new one at --web.max-connections or when out of descriptors), tls_error (a failed handshake: plain HTTP on the TLS port, a missing or untrusted client certificate), error."),
    def("p2p_exporter_accept_errors_total", C, &["listener", "reason"], "Failed accepts on the HTTP (listener=http) or tap (listener=tap) socket, by reason: descriptors (EMFILE, ENFILE), memory (ENOBUFS, ENOMEM), other; each is followed by a back-off."),
    def("p2p_exporter_build_info", G, &["version", "source"], "Always 1; labels carry the exporter version and its observation source."),
];

/// `result` of `p2p_tap_connections_total`.
pub const TAP_CONNECTION_RESULTS: [&str; 6] = [
    "accepted",
    "refused_busy",
    "refused_handshake",
    "refused_token",
    "hello_timeout",
    "closed_before_hello",
];
/// `reason` of `p2p_tap_connections_closed_total`.
pub const TAP_CLOSE_REASONS: [&str; 5] = ["eof", "idle", "replaced", "too_large", "error"];
/// `reason` of `p2p_exporter_http_connections_closed_total`.
pub const HTTP_CLOSE_REASONS: [&str; 5] = ["closed", "timeout", "evicted", "tls_error", "error"];
/// `listener` of `p2p_exporter_accept_errors_total`.
pub const ACCEPT_LISTENERS: [&str; 2] = ["http", "tap"];
/// `reason` of `p2p_exporter_accept_errors_total`.
pub const ACCEPT_ERROR_REASONS: [&str; 3] = ["descriptors", "memory", "other"];
/// `reason` of `p2p_tap_client_dropped_records_total`.
pub const TAP_CLIENT_DROP_REASONS: [&str; 2] = ["buffer_full", "journey_buffer_full"];

/// Label values of each labelled metric that are not fixed by the code: `channel` and `subscriber`
/// come from names the router's code chooses, bounded by [`MAX_NAMES`]; everything else is closed.
pub const MAX_NAMES: usize = 16;
pub const OVERFLOW_NAME: &str = "other";
pub const INVALID_NAME: &str = "invalid";
