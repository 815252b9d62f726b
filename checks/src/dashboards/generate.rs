//! The five dashboards, written once here and generated into `dashboards/json/` by
//! `p2p-check dashboards --write`. Every query carries the same selector, every rate the same
//! `$__rate_interval`, every threshold comes from `alerts/thresholds.toml` (see `config`).

use serde_json::Value;

use super::config::*;
use super::grafana::{row, Dashboard, Panel};
use crate::rules::{Names, COVERAGE, VERDICT};
use crate::thresholds::percent;

/// Writes PromQL with the shared selector, so no query can forget it.
struct Queries {
    selector: String,
    /// The recording rules whose names carry a window of thresholds.toml.
    names: Names,
}

impl Queries {
    /// `metric{job="...", instance=~"$instance"}`
    fn series(&self, metric: &str) -> String {
        format!("{metric}{{{}}}", self.selector)
    }

    /// The same with extra matchers, e.g. `le="+Inf"`.
    fn series_where(&self, metric: &str, matchers: &str) -> String {
        format!("{metric}{{{}, {matchers}}}", self.selector)
    }

    fn rate(&self, metric: &str) -> String {
        format!("rate({}[$__rate_interval])", self.series(metric))
    }

    /// Per-second rate summed over every label but `by`.
    fn rate_by(&self, by: &str, metric: &str) -> String {
        format!("sum by ({by}) ({})", self.rate(metric))
    }

    /// Histogram buckets for a heatmap: one series per bucket bound, over the selected nodes.
    fn buckets(&self, histogram: &str) -> String {
        format!(
            "sum by (le) (rate({}[$__rate_interval]))",
            self.series(&format!("{histogram}_bucket"))
        )
    }
}

/// The verdict of `instance:p2p_decision:verdict`, as the recording rule numbers it.
/// -1 is the dashboards' own: a node whose window is not covered yet has no verdict.
const VERDICTS: [(i64, &str, &str); 5] = [
    (-1, "insufficient data", "text"),
    (0, "none", "green"),
    (1, "deduplicate", "orange"),
    (2, "segmented fanout", "purple"),
    (3, "grow channel", "blue"),
];

/// Grafana unit ids: ratios are 0..1 (`percentunit`), rates are custom count units.
const RATIO: &str = "percentunit";
const SECONDS: &str = "s";
const BYTES: &str = "bytes";
const COUNT: &str = "short";
const NO_UNIT: &str = "none";

pub fn dashboards(thresholds: &Thresholds) -> Vec<(DashboardId, Value)> {
    let q = Queries {
        selector: thresholds.selector(),
        names: Names::new(thresholds),
    };
    let job_selector = thresholds.rules.job_selector.clone();
    [
        decision(&q, thresholds),
        channel(&q, thresholds),
        messages(&q, thresholds),
        chain(&q, thresholds),
        peers(&q, thresholds),
    ]
    .into_iter()
    .map(|(id, description, rows)| {
        let dashboard = Dashboard {
            id,
            description: description.to_owned(),
            rows,
            job_selector: job_selector.clone(),
            links: vec![("Runbook".to_owned(), thresholds.rules.runbook_url.clone())],
        };
        (id, dashboard.to_json())
    })
    .collect()
}

type Rows = Vec<super::grafana::Row>;

fn decision(q: &Queries, t: &Thresholds) -> (DashboardId, &'static str, Rows) {
    let coverage = q.series(COVERAGE);
    // The verdict, or -1 (insufficient data) for a node whose window is not covered yet.
    let verdict = format!(
        "{} or on (job, instance) (-1 + 0 * {coverage})",
        q.series(VERDICT)
    );
    let nodes_with = |code: i64| format!("count(({verdict}) == {code}) or vector(0)");
    let mut testnet = Panel::bargauge(
        "Nodes per verdict (testnet)",
        "How many of the selected nodes currently get each verdict.",
        COUNT,
    )
    .size(8, 7)
    .min(0.0);
    for (code, name, _) in VERDICTS {
        testnet = testnet.instant(nodes_with(code), name);
    }
    let framework = format!(
        "**If** the worst subscriber's lag ratio over 6 h is above {lag}: duplicate inv above {dup} \
         → **deduplicate**; else average peers above {peers} → **segmented fanout**; else → **grow \
         channel**. At or below {lag}: **none**.\n\n\
         [Runbook]({runbook}) · [Event channel]({channel}) · [Messages]({messages}) · \
         [Propagation]({chain}) · [Peers]({peers_url})",
        runbook = t.rules.runbook_url,
        lag = percent(t.decision.lag_ratio),
        dup = percent(t.decision.duplicate_ratio),
        peers = t.decision.average_peers,
        channel = CHANNEL.url(),
        messages = MESSAGES.url(),
        chain = CHAIN.url(),
        peers_url = PEERS.url(),
    );
    let rows = vec![
        row(
            "Verdict",
            vec![
                Panel::stat(
                    "Verdict per node",
                    "The decision framework's current verdict for each node (instance:p2p_decision:verdict); insufficient data until its inputs cover the decision window.",
                    NO_UNIT,
                )
                .size(6, 7)
                .query(verdict.clone(), "{{instance}}")
                .mappings(&VERDICTS)
                .link("Runbook", &t.rules.runbook_url),
                Panel::stat(
                    "Decision window covered per node",
                    "How much of the decision window Prometheus holds each node's inputs for (instance:p2p_decision:coverage_ratio): below 100%, no verdict.",
                    RATIO,
                )
                .size(4, 7)
                .query(coverage.clone(), "{{instance}}")
                .min(0.0)
                .max(1.0),
                testnet,
                Panel::text(
                    "Decision framework",
                    "The scaling document's rule behind the verdict (lag > 1%, then duplicates > 30% or peers > 150), with links to the runbook and the other dashboards.",
                    &framework,
                )
                .size(6, 7),
                Panel::state_timeline(
                    "Verdict history per node",
                    "How each node's verdict changed over the time range.",
                    NO_UNIT,
                )
                .size(24, 6)
                .query(verdict, "{{instance}}")
                .mappings(&VERDICTS)
                .alerts(DECISION_ALERTS),
            ],
        ),
        row(
            "Decision inputs",
            vec![
                Panel::timeseries(
                    "Event lag ratio, worst subscriber",
                    "Events skipped / events sent to the worst subscriber; the line is the framework's gate.",
                    RATIO,
                )
                .query(q.series(&q.names.worst_lag), "{{instance}} 5m (page)")
                .query(q.series(&q.names.worst_lag_decision), "{{instance}} 6h (decision)")
                .threshold(t.decision.lag_ratio)
                .min(0.0)
                .alerts(LAG_ALERTS)
                .alerts(DECISION_ALERTS)
                .link_to(CHANNEL),
                Panel::timeseries(
                    "Duplicate inv ratio",
                    "Share of inv messages whose every item was already seen; above the line, deduplicate.",
                    RATIO,
                )
                .query(q.series("instance:p2p_inv_duplicate_messages:ratio_rate5m"), "{{instance}} 5m")
                .query(q.series(&q.names.duplicate_messages_decision), "{{instance}} 6h (decision)")
                .threshold(t.decision.duplicate_ratio)
                .min(0.0)
                .alerts(DECISION_ALERTS)
                .link_to(MESSAGES),
                Panel::timeseries(
                    "Connected peers, 6 h average",
                    "Average connected peers over 6 h and right now; above the line, segmented fanout.",
                    COUNT,
                )
                .query(q.series(&q.names.peers_decision), "{{instance}} 6h average (decision)")
                .query(q.series("p2p_peers"), "{{instance}} now")
                .threshold(t.decision.average_peers)
                .min(0.0)
                .alerts(DECISION_ALERTS)
                .link_to(PEERS),
                Panel::timeseries(
                    "Channel capacity usage, 5 m peak",
                    "Highest channel fill (queued / capacity) seen over 5 m, bursts between scrapes included.",
                    RATIO,
                )
                .query(
                    q.series("channel:p2p_event_channel_usage_peak_ratio:max_over_time5m"),
                    "{{instance}} {{channel}}",
                )
                .threshold(t.key_metrics.capacity_usage_ratio)
                .min(0.0)
                .max(1.0)
                .alerts(CHANNEL_ALERTS)
                .link_to(CHANNEL),
            ],
        ),
        row(
            "Alerts",
            vec![Panel::table(
                "Firing P2P alerts",
                "Every P2P alert firing now on the selected nodes, with its labels.",
                NO_UNIT,
            )
            .size(24, 7)
            .table_query(format!(
                r#"ALERTS{{alertstate="firing", alertname=~"{ALL_ALERTS}", instance=~"$instance"}}"#
            ))
            .link("Runbook", &t.rules.runbook_url)],
        ),
    ];
    (
        DECISION,
        "Which of the scaling document's three fixes (deduplicate, segment, grow the channel) the measurements call for, per node and across the testnet.",
        rows,
    )
}

fn channel(q: &Queries, t: &Thresholds) -> (DashboardId, &'static str, Rows) {
    let usage_buckets = "p2p_event_channel_usage_ratio_bucket";
    let sends = |le: &str| {
        format!(
            "sum by (instance, channel) (rate({}[$__rate_interval]))",
            q.series_where(usage_buckets, &format!(r#"le="{le}""#))
        )
    };
    let nearly_full_share = format!(
        "({all} - {below}) / ({all} > 0)",
        all = sends("+Inf"),
        below = sends(&t.key_metrics.capacity_usage_ratio.to_string()),
    );
    let rows = vec![
        row(
            "Lag",
            vec![
                Panel::timeseries(
                    "Lag ratio per subscriber",
                    "Events each subscriber skipped / events sent to it, over 5 m; the line is 1%.",
                    RATIO,
                )
                .size(8, 8)
                .query(q.series(&q.names.subscriber_lag), "{{instance}} {{subscriber}}")
                .threshold(t.decision.lag_ratio)
                .min(0.0)
                .alerts(LAG_ALERTS),
                Panel::timeseries(
                    "Events received and skipped per subscriber",
                    "Per second: events each subscriber received, and events it skipped because it lagged.",
                    "count:events/s",
                )
                .size(8, 8)
                .query(q.rate_by("instance, subscriber", "p2p_events_received_total"), "{{instance}} {{subscriber}} received")
                .query(q.rate_by("instance, subscriber", "p2p_event_channel_lag_total"), "{{instance}} {{subscriber}} skipped")
                .min(0.0)
                .alerts(LAG_ALERTS),
                Panel::timeseries(
                    "Events sent per channel",
                    "Per second: events the router emitted into each channel.",
                    "count:events/s",
                )
                .size(8, 8)
                .query(q.rate_by("instance, channel", "p2p_events_sent_total"), "{{instance}} {{channel}}")
                .min(0.0),
            ],
        ),
        row(
            "Queue and usage",
            vec![
                Panel::timeseries(
                    "Queued events and capacity",
                    "Events not yet seen by the slowest subscriber (after the latest send; at the latest snapshot with the tap source), against the channel's capacity.",
                    COUNT,
                )
                .size(8, 8)
                .query(q.series("p2p_event_channel_queued_events"), "{{instance}} {{channel}} queued")
                .query(q.series("p2p_event_channel_capacity"), "{{instance}} {{channel}} capacity")
                .min(0.0),
                Panel::timeseries(
                    "Channel usage with bursts",
                    "Highest fill over the exporter's peak window and over 5 m; bursts between scrapes still show.",
                    RATIO,
                )
                .size(8, 8)
                .query(q.series("p2p_event_channel_usage_peak_ratio"), "{{instance}} {{channel}} peak window")
                .query(
                    q.series("channel:p2p_event_channel_usage_peak_ratio:max_over_time5m"),
                    "{{instance}} {{channel}} 5m max",
                )
                .threshold(t.key_metrics.capacity_usage_ratio)
                .min(0.0)
                .max(1.0)
                .alerts(CHANNEL_ALERTS),
                Panel::timeseries(
                    "Sends into a nearly full channel",
                    "Share of sends that found the channel above the capacity-usage line, from the per-send fill histogram (embedded source; a node's tap reports the peak instead, in the panel beside).",
                    RATIO,
                )
                .size(8, 8)
                .query(nearly_full_share, "{{instance}} {{channel}}")
                .min(0.0)
                .max(1.0),
            ],
        ),
        row(
            "Delivery latency",
            vec![
                Panel::heatmap(
                    "Delivery latency distribution",
                    "Time from an event's send to its receipt, all subscribers of the selected nodes.",
                    SECONDS,
                )
                .heatmap_query(q.buckets("p2p_event_delivery_latency_seconds")),
                Panel::timeseries(
                    "Delivery latency p50 and p99",
                    "Median and 99th percentile of send-to-receipt time per subscriber over 5 m; the line is 10 ms.",
                    SECONDS,
                )
                .query(
                    q.series("subscriber:p2p_event_delivery_latency_seconds:p50_rate5m"),
                    "{{instance}} {{subscriber}} p50",
                )
                .query(
                    q.series("subscriber:p2p_event_delivery_latency_seconds:p99_rate5m"),
                    "{{instance}} {{subscriber}} p99",
                )
                .threshold(DELIVERY_LATENCY_SECONDS)
                .min(0.0),
            ],
        ),
    ];
    (
        CHANNEL,
        "The router's broadcast channel: who lags, how full it gets, how long delivery takes.",
        rows,
    )
}

fn messages(q: &Queries, t: &Thresholds) -> (DashboardId, &'static str, Rows) {
    let rows = vec![
        row(
            "Messages",
            vec![
                Panel::timeseries(
                    "Messages per second by type",
                    "Protocol messages emitted by peers, per NetMessage type, over the selected nodes.",
                    "count:msg/s",
                )
                .size(16, 8)
                .query(q.rate_by("type", "p2p_messages_total"), "{{type}}")
                .min(0.0),
                Panel::bargauge(
                    "Message mix",
                    "Each message type's share of all messages right now.",
                    RATIO,
                )
                .size(8, 8)
                .instant(
                    format!(
                        "{} / scalar(sum({}))",
                        q.rate_by("type", "p2p_messages_total"),
                        q.rate("p2p_messages_total")
                    ),
                    "{{type}}",
                )
                .min(0.0)
                .max(1.0),
            ],
        ),
        row(
            "Inventory",
            vec![
                Panel::timeseries(
                    "Duplicate inv ratio, messages and items",
                    "Share of inv messages (and of items) already seen within the dedup TTL; above the line, deduplicate.",
                    RATIO,
                )
                .query(q.series("instance:p2p_inv_duplicate_messages:ratio_rate5m"), "{{instance}} messages 5m")
                .query(q.series(&q.names.duplicate_messages_decision), "{{instance}} messages 6h (decision)")
                .query(q.series("instance:p2p_inv_duplicate_items:ratio_rate5m"), "{{instance}} items 5m")
                .threshold(t.decision.duplicate_ratio)
                .min(0.0)
                .max(1.0)
                .alerts(DECISION_ALERTS),
                Panel::timeseries(
                    "Inv messages: all and duplicates",
                    "Per second: inv messages, and the duplicates among them that deduplication would drop.",
                    "count:msg/s",
                )
                .size(6, 8)
                .query(q.rate("p2p_inv_messages_total"), "{{instance}} all")
                .query(q.rate("p2p_inv_duplicate_messages_total"), "{{instance}} duplicates")
                .min(0.0),
                Panel::timeseries(
                    "Inv items: all and duplicates",
                    "Per second: inventory items announced, and those already seen within the dedup TTL.",
                    "count:items/s",
                )
                .size(6, 8)
                .query(q.rate("p2p_inv_items_total"), "{{instance}} all")
                .query(q.rate("p2p_inv_duplicate_items_total"), "{{instance}} duplicates")
                .min(0.0),
                Panel::timeseries(
                    "Inv messages dropped by deduplication",
                    "Per second: inv messages a deduplicating router dropped before its channel (zero on the single-channel router).",
                    "count:msg/s",
                )
                .size(6, 8)
                .query(q.rate("p2p_inv_dropped_messages_total"), "{{instance}}")
                .min(0.0),
                Panel::timeseries(
                    "Duplicate ratio coverage",
                    "Share of inv messages the duplicate tracker checked, over 5 m: 1 unless the node's tap dropped detail records (its counts stay exact).",
                    RATIO,
                )
                .size(6, 8)
                .query(q.series("instance:p2p_inv_dedup_coverage:ratio_rate5m"), "{{instance}}")
                .min(0.0)
                .max(1.0),
                Panel::timeseries(
                    "Dedup tracker size",
                    "Inventory items the exporter's duplicate tracker remembers.",
                    COUNT,
                )
                .size(6, 8)
                .query(q.series("p2p_inv_dedup_tracked_items"), "{{instance}}")
                .min(0.0),
                Panel::timeseries(
                    "Dedup tracker evictions",
                    "Per second: items forgotten before their TTL because the tracker was full; above zero, duplicate ratios are a lower bound.",
                    "count:items/s",
                )
                .size(6, 8)
                .query(q.rate("p2p_inv_dedup_evictions_total"), "{{instance}}")
                .min(0.0),
            ],
        ),
    ];
    (
        MESSAGES,
        "What peers send, and how much of the inventory traffic is duplicate.",
        rows,
    )
}

fn chain(q: &Queries, t: &Thresholds) -> (DashboardId, &'static str, Rows) {
    let rows = vec![
        row(
            "Propagation",
            vec![
                Panel::timeseries(
                    "Block propagation p50 and p99",
                    "Time from a block's first announcement to its acceptance, over 30 m; lines at the p50 and p99 targets.",
                    SECONDS,
                )
                .query(q.series("instance:p2p_block_propagation_seconds:p50_rate30m"), "{{instance}} p50")
                .query(q.series("instance:p2p_block_propagation_seconds:p99_rate30m"), "{{instance}} p99")
                .thresholds(&[
                    (t.key_metrics.block_propagation_p50_seconds, "orange"),
                    (t.key_metrics.block_propagation_p99_seconds, "red"),
                ])
                .min(0.0)
                .alerts(PROPAGATION_ALERTS),
                Panel::heatmap(
                    "Block propagation distribution",
                    "Announcement-to-acceptance time of every accepted block on the selected nodes.",
                    SECONDS,
                )
                .heatmap_query(q.buckets("p2p_block_propagation_seconds")),
            ],
        ),
        row(
            "Chain",
            vec![
                Panel::timeseries(
                    "Blocks accepted and orphaned",
                    "Per second: blocks accepted onto the best chain, and blocks that did not connect to it.",
                    "count:blocks/s",
                )
                .size(6, 8)
                .query(q.rate("p2p_blocks_accepted_total"), "{{instance}} accepted")
                .query(q.rate("p2p_blocks_orphaned_total"), "{{instance}} orphaned")
                .min(0.0),
                Panel::timeseries(
                    "Orphan block ratio, 1 h",
                    "Orphaned / (accepted + orphaned) blocks over the last hour.",
                    RATIO,
                )
                .size(6, 8)
                .query(q.series("instance:p2p_blocks_orphaned:ratio_rate1h"), "{{instance}}")
                .threshold(t.key_metrics.orphan_ratio)
                .min(0.0)
                .alerts(CHAIN_ALERTS),
                Panel::timeseries(
                    "Reorg ratio, 1 h",
                    "Reorganisations / accepted blocks over the last hour.",
                    RATIO,
                )
                .size(6, 8)
                .query(q.series("instance:p2p_chain_reorgs:ratio_rate1h"), "{{instance}}")
                .threshold(t.key_metrics.reorg_ratio)
                .min(0.0)
                .alerts(CHAIN_ALERTS),
                Panel::timeseries(
                    "Reorgs and blocks undone",
                    "Per second: reorganisations of the best chain, and the blocks they undid.",
                    "cps",
                )
                .size(6, 8)
                .query(q.rate("p2p_chain_reorgs_total"), "{{instance}} reorgs")
                .query(q.rate("p2p_chain_reorg_depth_blocks_total"), "{{instance}} blocks undone")
                .min(0.0),
            ],
        ),
    ];
    (
        CHAIN,
        "How fast blocks reach the node, and how often the chain reorganises or orphans them.",
        rows,
    )
}

fn peers(q: &Queries, t: &Thresholds) -> (DashboardId, &'static str, Rows) {
    let rows = vec![
        row(
            "Peers",
            vec![
                Panel::timeseries(
                    "Connected peers",
                    "Connected peers now and averaged over 6 h; above the line, segmented fanout.",
                    COUNT,
                )
                .size(8, 8)
                .query(q.series("p2p_peers"), "{{instance}} now")
                .query(q.series(&q.names.peers_decision), "{{instance}} 6h average")
                .threshold(t.decision.average_peers)
                .min(0.0)
                .alerts(DECISION_ALERTS),
                Panel::timeseries(
                    "Peer churn per hour",
                    "Disconnections in the last hour / average connected peers over it.",
                    RATIO,
                )
                .size(8, 8)
                .query(q.series("instance:p2p_peer_churn:ratio_rate1h"), "{{instance}}")
                .threshold(t.key_metrics.peer_churn_per_hour_ratio)
                .min(0.0)
                .alerts(PEER_ALERTS),
                Panel::timeseries(
                    "Connections, disconnections and refusals",
                    "Per second: peers registered by direction, disconnected by reason, refused at max_peers.",
                    "count:peers/s",
                )
                .size(8, 8)
                .query(q.rate_by("instance, direction", "p2p_peer_connections_total"), "{{instance}} connected {{direction}}")
                .query(q.rate_by("instance, reason", "p2p_peer_disconnections_total"), "{{instance}} disconnected {{reason}}")
                .query(q.rate("p2p_peer_registrations_refused_total"), "{{instance}} refused")
                .min(0.0),
            ],
        ),
        row(
            "Node resources",
            vec![
                Panel::timeseries(
                    "Memory per peer",
                    "Node resident memory / connected peers.",
                    BYTES,
                )
                .size(6, 8)
                .query(q.series("instance:p2p_node_resident_memory_bytes:per_peer"), "{{instance}}")
                .threshold(t.key_metrics.memory_per_peer_bytes)
                .min(0.0)
                .alerts(RESOURCE_ALERTS),
                Panel::timeseries(
                    "CPU per peer",
                    "Node CPU (1 = one core) / average connected peers, over 5 m.",
                    RATIO,
                )
                .size(6, 8)
                .query(q.series("instance:p2p_node_cpu:ratio_per_peer_rate5m"), "{{instance}}")
                .threshold(t.key_metrics.cpu_per_peer_ratio)
                .min(0.0)
                .alerts(RESOURCE_ALERTS),
                Panel::timeseries(
                    "Node resident memory",
                    "Resident memory of the node (of the exporter when it runs the embedded router).",
                    BYTES,
                )
                .size(6, 8)
                .query(q.series("p2p_node_resident_memory_bytes"), "{{instance}}")
                .min(0.0),
                Panel::timeseries(
                    "Node CPU",
                    "CPU used by the node (1 = one core; the exporter when it runs the embedded router).",
                    RATIO,
                )
                .size(6, 8)
                .query(q.rate("p2p_node_cpu_seconds_total"), "{{instance}}")
                .min(0.0),
            ],
        ),
        row(
            "Exporter health",
            vec![
                Panel::stat(
                    "Exporter up",
                    "Whether Prometheus's last scrape of each exporter succeeded.",
                    NO_UNIT,
                )
                .size(6, 6)
                .query(q.series("up"), "{{instance}}")
                .mappings(&[(0, "down", "red"), (1, "up", "green")]),
                Panel::timeseries(
                    "Scrape duration",
                    "How long Prometheus took to scrape each exporter.",
                    SECONDS,
                )
                .size(6, 6)
                .query(q.series("scrape_duration_seconds"), "{{instance}}")
                .min(0.0)
                .alerts(EXPORTER_ALERTS),
                Panel::timeseries(
                    "Samples per scrape",
                    "Series each exporter served at its last scrape; flat unless a label set grows.",
                    COUNT,
                )
                .size(6, 6)
                .query(q.series("scrape_samples_scraped"), "{{instance}}")
                .min(0.0),
                Panel::timeseries(
                    "Exporter drops",
                    "Per second: observations the node's tap client dropped, tap lines rejected, spans whose export failed, dedup items evicted early.",
                    "cps",
                )
                .size(6, 6)
                .query(
                    q.rate_by("instance, reason", "p2p_tap_client_dropped_records_total"),
                    "{{instance}} tap client dropped ({{reason}})",
                )
                .query(
                    q.rate_by("instance, reason", "p2p_tap_records_rejected_total"),
                    "{{instance}} tap rejected ({{reason}})",
                )
                .query(q.rate("p2p_exporter_spans_export_failed_total"), "{{instance}} spans export failed")
                .query(q.rate("p2p_inv_dedup_evictions_total"), "{{instance}} dedup evictions")
                .min(0.0)
                .alerts(EXPORTER_ALERTS),
                Panel::table(
                    "Exporter build",
                    "Version and observation source (embedded router or node tap) of each exporter.",
                    NO_UNIT,
                )
                .size(10, 6)
                .table_query(q.series("p2p_exporter_build_info")),
                Panel::stat(
                    "Node tap connected",
                    "Whether the node's tap client is connected (always no with the embedded router).",
                    NO_UNIT,
                )
                .size(4, 6)
                .query(q.series("p2p_tap_connected"), "{{instance}}")
                .mappings(&[(0, "no", "text"), (1, "yes", "green")]),
                Panel::timeseries(
                    "Exporter process memory",
                    "Resident memory of the exporter process itself.",
                    BYTES,
                )
                .size(10, 6)
                .query(q.series("process_resident_memory_bytes"), "{{instance}}")
                .min(0.0),
            ],
        ),
    ];
    (
        PEERS,
        "Who is connected and for how long, what each peer costs, and whether the exporter itself is healthy.",
        rows,
    )
}
