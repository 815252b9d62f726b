//! `alerts/rules/recording.yml`: the recording rules, the contract between alerts/ and dashboards/
//! (docs/instrumentation.md lists them).

use super::yaml::{Group, Kind, Rule, RuleFile};
use super::{
    Names, COVERAGE, COVERED, FLEET_COVERAGE, FLEET_NODES, FLEET_VERDICT, INPUT_TIMESTAMP,
    INSUFFICIENT, VERDICT, VERDICT_LABELS,
};
use crate::thresholds::{percent, Thresholds, Window};

const HEADER: &str = "\
Recording rules of the P2P observability stack. Names follow `level:metric:operations` and are the
contract between alerts/ and dashboards/ (docs/instrumentation.md lists them). Every rule keeps
`job` and `instance`; the level says which other label survives (`subscriber`, `channel`).

GENERATED from alerts/thresholds.toml by checks/src/rules/: edit those and run
`cargo run -q -p p2p-checks -- rules --write`; `p2p-check rules` fails on a hand edit.

Conventions used throughout:
- rate() is taken per raw series before any sum, so an exporter restart (counters back to 0)
  is a counter reset that rate() absorbs, never a negative or a spike.
- Every division guards its denominator with `> 0`: a quiet exporter (no events, no blocks, no
  peers) yields no sample at all rather than NaN, so nothing can alert on 0/0.";

fn record(comment: &str, name: impl Into<String>, expr: String) -> Rule {
    Rule {
        comment: comment.to_owned(),
        kind: Kind::Record(name.into()),
        expr,
    }
}

/// `numerator / (denominator > 0)` of two `sum by (job, instance)` over `window`.
fn ratio(function: &str, numerator: &str, denominator: &str, window: &str) -> String {
    format!(
        "sum by (job, instance) ({function}({numerator}[{window}]))\n\
         /\n\
         (sum by (job, instance) ({function}({denominator}[{window}])) > 0)\n"
    )
}

/// A quantile of a histogram over `window`, only where it observed something in that window.
fn quantile(q: &str, histogram: &str, by: &str, window: &str) -> String {
    format!(
        "histogram_quantile({q}, sum by ({by}, le) (rate({histogram}_bucket[{window}])))\n\
         and on ({by})\n\
         (sum by ({by}) (rate({histogram}_count[{window}])) > 0)\n"
    )
}

/// Each subscriber's skipped / (received + skipped) over `window`, its operands indented by
/// `operand` and its division by `operator`.
fn lag_ratio(window: &str, operand: &str, operator: &str) -> String {
    let sum =
        |metric: &str| format!("sum by (job, instance, subscriber) (rate({metric}[{window}]))");
    let operand_lines = [
        "(".to_owned(),
        "    (".to_owned(),
        format!("        {}", sum("p2p_event_channel_lag_total")),
        format!("      + {}", sum("p2p_events_received_total")),
        "    )".to_owned(),
        "  > 0".to_owned(),
        ")".to_owned(),
    ];
    let mut text = format!(
        "{operand}{}\n{operator}/\n",
        sum("p2p_event_channel_lag_total")
    );
    for line in operand_lines {
        text += &format!("{operand}{line}\n");
    }
    text
}

pub fn file(t: &Thresholds, n: &Names) -> RuleFile {
    let d = &t.decision;
    let page = &t.page.window;
    RuleFile {
        header: HEADER.to_owned(),
        groups: vec![
            Group {
                comment: None,
                name: "p2p-event-channel.rules",
                rules: vec![
                    record(
                        &format!("Per subscriber: events it skipped / events it was sent (received + skipped), over {page}."),
                        &n.subscriber_lag,
                        lag_ratio(&page.to_string(), "", ""),
                    ),
                    record(
                        &format!(
                            "The worst subscriber's lag ratio over {page}: what P2PEventLagHigh pages on. One lagging\n\
                             subscriber is enough, however many healthy ones there are."
                        ),
                        &n.worst_lag,
                        format!("max by (job, instance) ({})", n.subscriber_lag),
                    ),
                    record(
                        &format!(
                            "The worst subscriber's lag ratio over {}: the decision framework's gate. Computed from the\n\
                             raw counters (a mean of {page} ratios would weigh quiet and busy minutes alike).",
                            d.lag_window
                        ),
                        &n.worst_lag_decision,
                        format!(
                            "max by (job, instance) (\n{})\n",
                            lag_ratio(&d.lag_window.to_string(), "    ", "  ")
                        ),
                    ),
                    record(
                        "Highest channel fill (queued / capacity) seen over 5m, per channel. The exporter's peak\n\
                         gauge already keeps bursts that fall between two scrapes.",
                        "channel:p2p_event_channel_usage_peak_ratio:max_over_time5m",
                        "max by (job, instance, channel) (max_over_time(p2p_event_channel_usage_peak_ratio[5m]))".to_owned(),
                    ),
                    record(
                        "Median time from an event's send to its receipt, per subscriber, over 5m.",
                        "subscriber:p2p_event_delivery_latency_seconds:p50_rate5m",
                        quantile("0.5", "p2p_event_delivery_latency_seconds", "job, instance, subscriber", "5m"),
                    ),
                    record(
                        "99th percentile of the same.",
                        "subscriber:p2p_event_delivery_latency_seconds:p99_rate5m",
                        quantile("0.99", "p2p_event_delivery_latency_seconds", "job, instance, subscriber", "5m"),
                    ),
                ],
            },
            Group {
                comment: None,
                name: "p2p-inventory.rules",
                rules: vec![
                    record(
                        "Share of inv messages whose every item was seen within the dedup TTL (what deduplication\n\
                         would drop), over 5m. The denominator is what the duplicate tracker checked: with the tap\n\
                         source, the inv messages its detail stream delivered, so an overflowing stream makes the\n\
                         ratio cover less traffic, never biases it.",
                        "instance:p2p_inv_duplicate_messages:ratio_rate5m",
                        ratio("rate", "p2p_inv_duplicate_messages_total", "p2p_inv_checked_messages_total", "5m"),
                    ),
                    record(
                        &format!("The same over {}: Scenario A's input.", d.duplicate_window),
                        &n.duplicate_messages_decision,
                        ratio(
                            "rate",
                            "p2p_inv_duplicate_messages_total",
                            "p2p_inv_checked_messages_total",
                            &d.duplicate_window.to_string(),
                        ),
                    ),
                    record(
                        "Share of inventory items already seen within the dedup TTL, over 5m.",
                        "instance:p2p_inv_duplicate_items:ratio_rate5m",
                        ratio("rate", "p2p_inv_duplicate_items_total", "p2p_inv_checked_items_total", "5m"),
                    ),
                    record(
                        "Share of inv messages the duplicate tracker checked (1 with the embedded source; below 1\n\
                         when the tap's detail stream drops), so every duplicate ratio is read with its coverage.",
                        "instance:p2p_inv_dedup_coverage:ratio_rate5m",
                        ratio("rate", "p2p_inv_checked_messages_total", "p2p_inv_messages_total", "5m"),
                    ),
                ],
            },
            Group {
                comment: None,
                name: "p2p-peers-and-chain.rules",
                rules: vec![
                    record(
                        &format!("Average connected peers over {}: Scenario B's input.", d.peers_window),
                        &n.peers_decision,
                        format!("sum by (job, instance) (avg_over_time(p2p_peers[{}]))", d.peers_window),
                    ),
                    record(
                        "Disconnections in the last hour / average connected peers over that hour: the share of\n\
                         the peer set replaced per hour.",
                        "instance:p2p_peer_churn:ratio_rate1h",
                        "sum by (job, instance) (increase(p2p_peer_disconnections_total[1h]))\n\
                         /\n\
                         (sum by (job, instance) (avg_over_time(p2p_peers[1h])) > 0)\n"
                            .to_owned(),
                    ),
                    record(
                        "Median time from a block's first announcement to its acceptance, over 30m (blocks are\n\
                         rarer than messages; 5m would hold too few of them).",
                        "instance:p2p_block_propagation_seconds:p50_rate30m",
                        quantile("0.5", "p2p_block_propagation_seconds", "job, instance", "30m"),
                    ),
                    record(
                        "99th percentile of the same.",
                        "instance:p2p_block_propagation_seconds:p99_rate30m",
                        quantile("0.99", "p2p_block_propagation_seconds", "job, instance", "30m"),
                    ),
                    record(
                        "Reorganisations / accepted blocks over 1h.",
                        "instance:p2p_chain_reorgs:ratio_rate1h",
                        ratio("increase", "p2p_chain_reorgs_total", "p2p_blocks_accepted_total", "1h"),
                    ),
                    record(
                        "Orphaned / (accepted + orphaned) blocks over 1h.",
                        "instance:p2p_blocks_orphaned:ratio_rate1h",
                        "sum by (job, instance) (increase(p2p_blocks_orphaned_total[1h]))\n\
                         /\n\
                         (\n    \
                             (\n        \
                                 sum by (job, instance) (increase(p2p_blocks_accepted_total[1h]))\n      \
                               + sum by (job, instance) (increase(p2p_blocks_orphaned_total[1h]))\n    \
                             )\n  \
                           > 0\n\
                         )\n"
                            .to_owned(),
                    ),
                    record(
                        "Resident memory of the node / connected peers, in bytes per peer.",
                        "instance:p2p_node_resident_memory_bytes:per_peer",
                        "sum by (job, instance) (p2p_node_resident_memory_bytes)\n\
                         /\n\
                         (sum by (job, instance) (p2p_peers) > 0)\n"
                            .to_owned(),
                    ),
                    record(
                        "CPU cores the node used over 5m / average connected peers over 5m (0.01 = 1% of a core\n\
                         per peer).",
                        "instance:p2p_node_cpu:ratio_per_peer_rate5m",
                        "sum by (job, instance) (rate(p2p_node_cpu_seconds_total[5m]))\n\
                         /\n\
                         (sum by (job, instance) (avg_over_time(p2p_peers[5m])) > 0)\n"
                            .to_owned(),
                    ),
                ],
            },
            Group {
                comment: None,
                name: "p2p-tap.rules",
                rules: vec![record(
                    &format!(
                        "The tap's loss, over {w}: detail records (inv entries) the node's tap dropped because its\n\
                         detail buffer was full, plus frames the sidecar refused, / detail records the tap produced.\n\
                         Counts are unaffected (they travel in snapshots); what is lost is duplicate-tracker\n\
                         coverage, and a refused frame is a snapshot or batch the sidecar did not take. The tap's\n\
                         counts are cumulative per node run and served as they are, so rate() handles a node\n\
                         restart like any process restart.\n\
                         `or 0 * ...`: a loss counter without series still gives 0 lost, not an empty sum. Only a\n\
                         tap-mode sidecar whose node produced records has a sample (an embedded sidecar produces\n\
                         none, so the `> 0` guard leaves it out).",
                        w = t.tap.window
                    ),
                    &n.tap_lost,
                    tap_lost(&t.tap.window.to_string()),
                )],
            },
            Group {
                comment: Some(format!(
                    "Its own group, evaluated in order: it reads the recorded {w} inputs, at most one evaluation\n\
                     interval old, which is nothing against a {w} window; each rule here reads the ones above it\n\
                     from the same evaluation.",
                    w = d.lag_window,
                )),
                name: "p2p-decision.rules",
                rules: decision(t, n),
            },
        ],
    }
}

fn tap_lost(window: &str) -> String {
    let rate = |metric: &str| format!("sum by (job, instance) (rate({metric}[{window}]))");
    let lost = |metric: &str| {
        format!(
            "    (\n        {}\n      or\n        0 * {}\n    )\n",
            rate(metric),
            rate("p2p_tap_client_records_total")
        )
    };
    format!(
        "(\n{}  +\n{})\n/\n({} > 0)\n",
        lost("p2p_tap_client_dropped_records_total"),
        lost("p2p_tap_records_rejected_total"),
        rate("p2p_tap_client_records_total"),
    )
}

/// The node's coverage, its verdict, and the fleet's inputs and verdict.
fn decision(t: &Thresholds, n: &Names) -> Vec<Rule> {
    let d = &t.decision;
    let w = d.window();
    let covered_nodes = format!("({COVERAGE} == 1)");
    // A per-node sum over the decision window, of the covered nodes only.
    let of_covered = |metric: &str, window: &Window| {
        format!(
            "sum by (job) (\n    sum by (job, instance) (rate({metric}[{window}]))\n  and on (job, instance)\n    {covered_nodes}\n)\n"
        )
    };
    let lag = &d.lag_window;
    vec![
        record(
            "When the node's decision inputs were last scraped. Its oldest value in the window says since\n\
             when Prometheus holds them; recorded (not computed from the raw series) so that the coverage\n\
             below needs no subquery.",
            INPUT_TIMESTAMP,
            "max by (job, instance) (timestamp(p2p_events_received_total))".to_owned(),
        ),
        record(
            &format!(
                "How much of the {w} decision window the inputs cover, in seconds. Covered ({s} exactly)\n\
                 once the inputs existed {w} ago (`offset {w}`, so one evaluation interval cannot make it\n\
                 flicker); until then the time since the oldest timestamp in the window, held below {s}.\n\
                 Only for a node whose inputs are current. Gaps inside the window are not subtracted:\n\
                 rate() and avg_over_time() span them, as they span an exporter restart.",
                s = w.seconds(),
            ),
            COVERED,
            format!(
                "(\n    {s} + 0 * ({INPUT_TIMESTAMP} offset {w})\n  or\n    clamp_max(time() - min_over_time({INPUT_TIMESTAMP}[{w}]), {below})\n)\nand on (job, instance)\n{INPUT_TIMESTAMP}\n",
                s = w.seconds(),
                below = w.seconds() - 1,
            ),
        ),
        record(
            &format!(
                "The share of the {w} window covered: below 1 the node has insufficient data and no verdict."
            ),
            COVERAGE,
            format!("{COVERED} / {}", w.seconds()),
        ),
        record(
            &format!(
                "The scaling document's decision framework as a number, from the {w} inputs:\n  \
                   0 none (lag at or below {lag}), 1 deduplicate (duplicates above {dup}),\n  \
                   2 segmented fanout (else average peers above {peers}), 3 grow the channel (else).\n\
                 `or` keeps the left-most branch that has a sample for an instance, which gives the\n\
                 framework's priority. No lag data (no events at all) gives no verdict, and neither does a\n\
                 window not yet covered (insufficient data: {COVERAGE} below 1).",
                w = lag,
                lag = percent(d.lag_ratio),
                dup = percent(d.duplicate_ratio),
                peers = d.average_peers,
            ),
            VERDICT,
            format!(
                "(\n{}\n)\nand on (job, instance)\n{covered_nodes}\n",
                indent(&verdict(t, "job, instance", &n.worst_lag_decision, &n.duplicate_messages_decision, &n.peers_decision), "    ")
            ),
        ),
        record(
            "The testnet (one job): the share of its reporting nodes whose inputs cover the window.",
            FLEET_COVERAGE,
            format!("sum by (job) ({COVERAGE} == bool 1)\n/\ncount by (job) ({COVERAGE})\n"),
        ),
        record(
            "Nodes per verdict, `insufficient_data` for those whose window is not covered yet. A verdict\n\
             no node has gives no sample (the dashboards show 0).",
            FLEET_NODES,
            fleet_nodes(),
        ),
        record(
            &format!(
                "The scaling document's testnet_metrics.event_lag_rate: events lost / events sent, summed over\n\
                 the covered nodes (their subscribers'), over {lag}. A busy node weighs as its traffic does."
            ),
            &n.fleet_lag,
            format!(
                "{}/\n(\n{}\n  > 0\n)\n",
                of_covered("p2p_event_channel_lag_total", lag),
                indent(
                    &of_covered_sum(&covered_nodes, lag),
                    "    "
                ),
            ),
        ),
        record(
            &format!(
                "The share of the covered nodes whose worst subscriber lost more than {} over {lag}.",
                percent(d.lag_ratio)
            ),
            &n.fleet_nodes_lagging,
            format!(
                "sum by (job) (\n    ({} > bool {})\n  and on (job, instance)\n    {covered_nodes}\n)\n/\ncount by (job) (\n    {}\n  and on (job, instance)\n    {covered_nodes}\n)\n",
                n.worst_lag_decision, d.lag_ratio, n.worst_lag_decision,
            ),
        ),
        record(
            &format!(
                "Duplicate inv messages / inv messages checked, summed over the covered nodes, over {}.",
                d.duplicate_window
            ),
            &n.fleet_duplicate_messages,
            format!(
                "{}/\n(\n{}\n  > 0\n)\n",
                of_covered("p2p_inv_duplicate_messages_total", &d.duplicate_window),
                indent(&of_covered("p2p_inv_checked_messages_total", &d.duplicate_window), "    "),
            ),
        ),
        record(
            &format!(
                "The covered nodes' average peers over {}, averaged over those nodes.",
                d.peers_window
            ),
            &n.fleet_peers,
            format!(
                "avg by (job) ({} and on (job, instance) {covered_nodes})",
                n.peers_decision
            ),
        ),
        record(
            &format!(
                "The framework on the testnet's inputs, numbered as the node's verdict. No verdict until\n\
                 at least {} of the reporting nodes cover the window.",
                percent(d.fleet_nodes_covered)
            ),
            FLEET_VERDICT,
            format!(
                "(\n{}\n)\nand on (job)\n({FLEET_COVERAGE} >= {})\n",
                indent(&verdict(t, "job", &n.fleet_lag, &n.fleet_duplicate_messages, &n.fleet_peers), "    "),
                d.fleet_nodes_covered
            ),
        ),
    ]
}

/// Lagged + received per node, summed over the covered nodes.
fn of_covered_sum(covered_nodes: &str, window: &Window) -> String {
    format!(
        "sum by (job) (\n    (\n        sum by (job, instance) (rate(p2p_event_channel_lag_total[{window}]))\n      + sum by (job, instance) (rate(p2p_events_received_total[{window}]))\n    )\n  and on (job, instance)\n    {covered_nodes}\n)\n"
    )
}

fn fleet_nodes() -> String {
    let mut branches: Vec<String> = VERDICT_LABELS
        .iter()
        .enumerate()
        .map(|(code, label)| {
            format!(r#"label_replace(count by (job) ({VERDICT} == {code}), "verdict", "{label}", "", "")"#)
        })
        .collect();
    branches.push(format!(
        r#"label_replace(count by (job) ({COVERAGE} < 1), "verdict", "{INSUFFICIENT}", "", "")"#
    ));
    branches.join("\nor\n") + "\n"
}

fn indent(text: &str, by: &str) -> String {
    text.lines()
        .map(|line| format!("{by}{line}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The framework over three inputs that share the labels `on`.
fn verdict(t: &Thresholds, on: &str, lag: &str, duplicates: &str, peers: &str) -> String {
    let d = &t.decision;
    let lagging = format!("({lag} > {})", d.lag_ratio);
    format!(
        "(\n    \
             (1 + 0 * ({duplicates} > {dup_ratio}))\n  \
           and on ({on})\n    \
             {lagging}\n\
         )\n\
         or\n\
         (\n    \
             (2 + 0 * ({peers} > {average_peers}))\n  \
           and on ({on})\n    \
             {lagging}\n\
         )\n\
         or\n\
         (3 + 0 * {lagging})\n\
         or\n\
         (0 * {lag})",
        dup_ratio = d.duplicate_ratio,
        average_peers = d.average_peers,
    )
}
