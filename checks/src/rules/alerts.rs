//! `alerts/rules/alerts.yml`: the page, the decision tickets, the key metrics, the observer and
//! the tap link. Annotations are Prometheus templates; the numbers in their text come from
//! thresholds.toml as well, so a changed threshold cannot leave a summary stating the old one.

use super::yaml::{Alert, Group, Kind, Rule, RuleFile};
use super::{Names, COVERAGE, FLEET_COVERAGE, FLEET_NODES, FLEET_VERDICT, VERDICT};
use crate::thresholds::{bytes_text, duration_text, percent, Thresholds, Window};

const HEADER: &str = "\
Alerting rules of the P2P observability stack. They read the recording rules in recording.yml
(load both files). Severity `critical` pages (PagerDuty); `warning` opens a ticket (alertmanager.yml).
Every alert links its section of alerts/runbook.md; scripts/check-alerts.sh proves it exists.

GENERATED from alerts/thresholds.toml by checks/src/rules/: edit those and run
`cargo run -q -p p2p-checks -- rules --write`; `p2p-check rules` fails on a hand edit.";

struct Spec<'a> {
    comment: String,
    name: &'static str,
    expr: String,
    hold: &'a Window,
    severity: &'static str,
    summary: String,
    description: String,
}

fn alert(t: &Thresholds, spec: Spec) -> Rule {
    Rule {
        comment: spec.comment,
        kind: Kind::Alert(Alert {
            name: spec.name,
            hold: spec.hold.to_string(),
            severity: spec.severity,
            summary: spec.summary,
            description: spec.description,
            runbook_url: format!("{}#{}", t.rules.runbook_url, spec.name.to_lowercase()),
        }),
        expr: spec.expr,
    }
}

/// A key metric's warning: its recording rule strictly above the threshold.
fn key_metric(
    t: &Thresholds,
    name: &'static str,
    record: &str,
    threshold: f64,
    hold: &Window,
    summary: String,
    description: String,
) -> Rule {
    alert(
        t,
        Spec {
            comment: String::new(),
            name,
            expr: format!("{record} > {threshold}"),
            hold,
            severity: "warning",
            summary,
            description,
        },
    )
}

pub fn file(t: &Thresholds, n: &Names) -> RuleFile {
    RuleFile {
        header: HEADER.to_owned(),
        groups: vec![
            Group {
                comment: None,
                name: "p2p-event-lag.alerts",
                rules: vec![page(t, n)],
            },
            Group {
                comment: None,
                name: "p2p-decision.alerts",
                rules: decision(t, n).into_iter().chain(fleet(t, n)).collect(),
            },
            Group {
                comment: None,
                name: "p2p-key-metrics.alerts",
                rules: key_metrics(t),
            },
            Group {
                comment: None,
                name: "p2p-observer.alerts",
                rules: observer(t),
            },
            Group {
                comment: None,
                name: "p2p-tap.alerts",
                rules: tap(t, n),
            },
        ],
    }
}

fn page(t: &Thresholds, n: &Names) -> Rule {
    let p = &t.page;
    let lag = percent(p.lag_ratio);
    let confirmed = Window::from_seconds(p.confirm_offset.seconds() + p.hold.seconds()).spelt();
    alert(
        t,
        Spec {
            comment: format!(
                "The page. The worst subscriber's {w} lag ratio above {lag}, now AND {offset} ago, for\n\
                 {hold}: every {adjective} window of the last {confirmed} lost more than {lag} of events.\n\
                 Why the offset: a heavy burst of a minute (a sync burst) keeps a {w} ratio above {lag} for\n\
                 about the window plus the burst, so `> {ratio} for {w}` alone would page on it; here lag\n\
                 must last at least {offset}. Counter resets (exporter restart) are absorbed by rate() in the\n\
                 recording rule.",
                w = p.window,
                adjective = p.window.adjective(),
                offset = p.confirm_offset.spelt(),
                hold = p.hold.spelt(),
                ratio = p.lag_ratio,
            ),
            name: "P2PEventLagHigh",
            expr: format!(
                "{worst} > {ratio}\nand on (job, instance)\n{worst} offset {offset} > {ratio}\n",
                worst = n.worst_lag,
                ratio = p.lag_ratio,
                offset = p.confirm_offset,
            ),
            hold: &p.hold,
            severity: "critical",
            summary: format!(
                "P2P event loop on {{{{ $labels.instance }}}} is dropping more than {lag} of peer events."
            ),
            description: format!(
                concat!(
                    r#"The worst subscriber of {{{{ $labels.instance }}}} (job {{{{ $labels.job }}}}) skipped {{{{ $value | humanizePercentage }}}} of its events over the last {spelt}, and every {adjective} window has been above {lag} for at least {confirmed}."#,
                    "\n",
                    r#"Lagging subscribers:{{{{ range printf "{subscriber}{{job=%q,instance=%q}} > {ratio}" $labels.job $labels.instance | query }}}} {{{{ .Labels.subscriber }}}} ({{{{ .Value | humanizePercentage }}}}){{{{ end }}}}."#,
                    "\n",
                    r#"Current decision verdict (0 none, 1 deduplicate, 2 segmented fanout, 3 grow channel):"#,
                    "\n",
                    r#"{{{{ with printf "{VERDICT}{{job=%q,instance=%q}}" $labels.job $labels.instance | query }}}}{{{{ . | first | value }}}}{{{{ else }}}}none yet, {{{{ with printf "{COVERAGE}{{job=%q,instance=%q}}" $labels.job $labels.instance | query }}}}insufficient data ({{{{ . | first | value | humanizePercentage }}}} of the decision window covered){{{{ else }}}}no decision inputs{{{{ end }}}}{{{{ end }}}}."#,
                ),
                spelt = p.window.spelt(),
                adjective = p.window.adjective(),
                subscriber = n.subscriber_lag,
                ratio = p.lag_ratio,
                lag = lag,
                confirmed = confirmed,
                VERDICT = VERDICT,
                COVERAGE = COVERAGE,
            ),
        },
    )
}

fn decision(t: &Thresholds, n: &Names) -> Vec<Rule> {
    let d = &t.decision;
    let lag = percent(d.lag_ratio);
    let dup = percent(d.duplicate_ratio);
    let peers = d.average_peers.to_string();
    // The lag window opens each description; an input over another window says so.
    let over = |window: &Window| {
        if *window == d.lag_window {
            String::new()
        } else {
            format!(" over the last {}", window.spelt())
        }
    };
    let lost_decision = format!(
        r#"{{{{ with printf "{}{{job=%q,instance=%q}}" $labels.job $labels.instance | query }}}}{{{{ . | first | value | humanizePercentage }}}}{{{{ end }}}}"#,
        n.worst_lag_decision
    );
    let ticket = |name, scenario: &str, what: &str, input: &str, description: String| {
        alert(
            t,
            Spec {
                comment: String::new(),
                name,
                expr: format!("{input}\nand on (job, instance)\n{VERDICT} == {}\n", scenario_code(name)),
                hold: &d.hold,
                severity: "warning",
                summary: format!(
                    "Decision for {{{{ $labels.instance }}}}: {what} (scaling document Scenario {scenario})."
                ),
                description,
            },
        )
    };
    let mut rules = vec![
        ticket(
            "P2PDecisionDeduplicate",
            "A",
            "implement inv deduplication",
            &n.duplicate_messages_decision,
            format!(
                "Over the last {w} {{{{ $labels.instance }}}} lost\n{lost_decision}\nof its events (above {lag}) and {{{{ $value | humanizePercentage }}}} of inv messages{dup_over} were duplicates (above {dup}). The decision framework says: deduplicate inventory (estimated 2-3 weeks).",
                w = d.lag_window.spelt(),
                dup_over = over(&d.duplicate_window),
            ),
        ),
        ticket(
            "P2PDecisionSegmentedFanout",
            "B",
            "implement segmented fanout",
            &n.peers_decision,
            format!(
                concat!(
                    r#"Over the last {w} {{{{ $labels.instance }}}} lost"#,
                    "\n",
                    r#"{lost_decision}"#,
                    "\n",
                    r#"of its events (above {lag}) with {{{{ $value | printf "%.0f" }}}} peers on average{peers_over} (above {peers}), while duplicates{dup_over} stayed at or below {dup}. The decision framework says: split the channel into typed channels (estimated 3-4 weeks)."#,
                ),
                w = d.lag_window.spelt(),
                peers_over = over(&d.peers_window),
                dup_over = over(&d.duplicate_window),
                lost_decision = lost_decision,
                lag = lag,
                peers = peers,
                dup = dup,
            ),
        ),
        ticket(
            "P2PDecisionGrowChannel",
            "C",
            "increase EVENT_CHANNEL_SIZE",
            &n.worst_lag_decision,
            format!(
                "Over the last {w} {{{{ $labels.instance }}}} lost {{{{ $value | humanizePercentage }}}} of its events (above {lag}), with duplicates{dup_over} at or below {dup} and {peers} peers or fewer on average{peers_over}. The decision framework says: grow the channel (estimated 5 minutes).",
                w = d.lag_window.spelt(),
                peers_over = over(&d.peers_window),
                dup_over = over(&d.duplicate_window),
            ),
        ),
    ];
    rules[0].comment = format!(
        "The decision framework as three tickets; they read the single verdict series, so at most\n\
         one fires per instance, and only while the {w} lag ratio is above {lag} (verdict 0 otherwise).\n\
         `for: {hold}` over {w} inputs: a verdict must hold for {hold_spelt} before it opens weeks of work.\n\
         Each alert's value is the input that decided it.",
        w = d.lag_window,
        hold = d.hold,
        hold_spelt = d.hold.spelt(),
    );
    rules
}

/// The decision framework on the testnet's inputs as three tickets, one job each.
fn fleet(t: &Thresholds, n: &Names) -> Vec<Rule> {
    let d = &t.decision;
    let lag = percent(d.lag_ratio);
    let dup = percent(d.duplicate_ratio);
    let peers = d.average_peers.to_string();
    let w = d.window().spelt();
    let of_job = |record: &str, then: &str| {
        format!(
            r#"{{{{ with printf "{record}{{job=%q}}" $labels.job | query }}}}{{{{ . | first | value{then} }}}}{{{{ end }}}}"#
        )
    };
    // Every fleet ticket opens with the evidence: the lost share and the nodes behind it.
    let evidence = format!(
        concat!(
            r#"Over the last {w} the nodes of job {{{{ $labels.job }}}} with a covered window ({covered} of those reporting) lost {lost} of the events sent to them (above {lag});"#,
            "\n",
            r#"{lagging} of them lost more than {lag} each."#,
        ),
        w = w,
        covered = of_job(FLEET_COVERAGE, " | humanizePercentage"),
        lost = of_job(&n.fleet_lag, " | humanizePercentage"),
        lagging = of_job(&n.fleet_nodes_lagging, " | humanizePercentage"),
        lag = lag,
    );
    let ticket = |name: &'static str,
                  code: u8,
                  scenario: &str,
                  what: &str,
                  input: &str,
                  then: String| {
        alert(
            t,
            Spec {
                comment: String::new(),
                name,
                expr: format!("{input}\nand on (job)\n{FLEET_VERDICT} == {code}\n"),
                hold: &d.hold,
                severity: "warning",
                summary: format!(
                    "Decision for the testnet (job {{{{ $labels.job }}}}): {what} (scaling document Scenario {scenario})."
                ),
                description: format!("{evidence}\n{then}"),
            },
        )
    };
    let mut rules = vec![
        ticket(
            "P2PFleetDecisionDeduplicate",
            1,
            "A",
            "implement inv deduplication",
            &n.fleet_duplicate_messages,
            format!("{{{{ $value | humanizePercentage }}}} of their inv messages were duplicates (above {dup}). The decision framework says: deduplicate inventory (estimated 2-3 weeks)."),
        ),
        ticket(
            "P2PFleetDecisionSegmentedFanout",
            2,
            "B",
            "implement segmented fanout",
            &n.fleet_peers,
            format!(r#"They had {{{{ $value | printf "%.0f" }}}} peers on average (above {peers}), while duplicates stayed at or below {dup}. The decision framework says: split the channel into typed channels (estimated 3-4 weeks)."#),
        ),
        ticket(
            "P2PFleetDecisionGrowChannel",
            3,
            "C",
            "increase EVENT_CHANNEL_SIZE",
            &n.fleet_lag,
            format!("Duplicates stayed at or below {dup} and peers at {peers} or fewer on average. The decision framework says: grow the channel (estimated 5 minutes)."),
        ),
    ];
    rules[0].comment = format!(
        "The same framework for the testnet as a whole (the scaling document's testnet_metrics): one\n\
         ticket per job from {FLEET_VERDICT}, which exists only while at least {} of the\n\
         reporting nodes cover the {w} window ({FLEET_NODES} counts them per verdict).",
        percent(d.fleet_nodes_covered),
        w = d.window(),
    );
    rules
}

/// The verdict code of each ticket, as `instance:p2p_decision:verdict` numbers it.
fn scenario_code(name: &str) -> u8 {
    match name {
        "P2PDecisionDeduplicate" => 1,
        "P2PDecisionSegmentedFanout" => 2,
        "P2PDecisionGrowChannel" => 3,
        other => unreachable!("no verdict for {other}"),
    }
}

fn key_metrics(t: &Thresholds) -> Vec<Rule> {
    let k = &t.key_metrics;
    let f = &t.key_metrics_for;
    let fill_text = percent(k.capacity_usage_ratio);
    let p50 = duration_text(k.block_propagation_p50_seconds);
    let p99 = duration_text(k.block_propagation_p99_seconds);
    let memory = bytes_text(k.memory_per_peer_bytes);
    let cpu = percent(k.cpu_per_peer_ratio);
    let churn = percent(k.peer_churn_per_hour_ratio);
    let reorg = percent(k.reorg_ratio);
    let orphan = percent(k.orphan_ratio);
    let mut rules = vec![
        key_metric(
            t,
            "P2PEventChannelNearlyFull",
            "channel:p2p_event_channel_usage_peak_ratio:max_over_time5m",
            k.capacity_usage_ratio,
            &f.capacity_usage,
            format!("Event channel {{{{ $labels.channel }}}} on {{{{ $labels.instance }}}} keeps filling above {fill_text}."),
            format!(
                "The {{{{ $labels.channel }}}} channel of {{{{ $labels.instance }}}} reached {{{{ $value | humanizePercentage }}}} of its capacity in the last 5 minutes, and every 5-minute window for {} went above {fill_text}. Past 100% its slowest subscriber lags.",
                f.capacity_usage.spelt()
            ),
        ),
        key_metric(
            t,
            "P2PBlockPropagationP50Slow",
            "instance:p2p_block_propagation_seconds:p50_rate30m",
            k.block_propagation_p50_seconds,
            &f.block_propagation_p50,
            format!("Median block propagation on {{{{ $labels.instance }}}} is above {p50}."),
            format!("Half of the blocks {{{{ $labels.instance }}}} accepted in the last 30 minutes took more than {{{{ $value | humanizeDuration }}}} from first announcement to acceptance (target: under {p50})."),
        ),
        key_metric(
            t,
            "P2PBlockPropagationP99Slow",
            "instance:p2p_block_propagation_seconds:p99_rate30m",
            k.block_propagation_p99_seconds,
            &f.block_propagation_p99,
            format!("99th percentile block propagation on {{{{ $labels.instance }}}} is above {p99}."),
            format!("1% of the blocks {{{{ $labels.instance }}}} accepted in the last 30 minutes took more than {{{{ $value | humanizeDuration }}}} from first announcement to acceptance (target: under {p99})."),
        ),
        key_metric(
            t,
            "P2PMemoryPerPeerHigh",
            "instance:p2p_node_resident_memory_bytes:per_peer",
            k.memory_per_peer_bytes,
            &f.memory_per_peer,
            format!("Node memory per peer on {{{{ $labels.instance }}}} is above {memory}."),
            format!("The node on {{{{ $labels.instance }}}} holds {{{{ $value | humanize1024 }}}}B of resident memory per connected peer (target: under {memory})."),
        ),
        key_metric(
            t,
            "P2PCPUPerPeerHigh",
            "instance:p2p_node_cpu:ratio_per_peer_rate5m",
            k.cpu_per_peer_ratio,
            &f.cpu_per_peer,
            format!("Node CPU per peer on {{{{ $labels.instance }}}} is above {cpu} of a core."),
            format!("The node on {{{{ $labels.instance }}}} used {{{{ $value | humanizePercentage }}}} of a CPU core per connected peer over the last 5 minutes (target: under {cpu})."),
        ),
        key_metric(
            t,
            "P2PPeerChurnHigh",
            "instance:p2p_peer_churn:ratio_rate1h",
            k.peer_churn_per_hour_ratio,
            &f.peer_churn,
            format!("Peer churn on {{{{ $labels.instance }}}} is above {churn} per hour."),
            format!("{{{{ $labels.instance }}}} lost {{{{ $value | humanizePercentage }}}} of its average peer set in the last hour (target: under {churn} per hour)."),
        ),
        key_metric(
            t,
            "P2PReorgRateHigh",
            "instance:p2p_chain_reorgs:ratio_rate1h",
            k.reorg_ratio,
            &f.reorg,
            format!("Chain reorganisations on {{{{ $labels.instance }}}} exceed {reorg} of blocks."),
            format!("Over the last hour {{{{ $labels.instance }}}} reorganised its chain for {{{{ $value | humanizePercentage }}}} of the blocks it accepted (target: under {reorg})."),
        ),
        key_metric(
            t,
            "P2POrphanRateHigh",
            "instance:p2p_blocks_orphaned:ratio_rate1h",
            k.orphan_ratio,
            &f.orphan,
            format!("Orphaned blocks on {{{{ $labels.instance }}}} exceed {orphan}."),
            format!("Over the last hour {{{{ $value | humanizePercentage }}}} of the blocks {{{{ $labels.instance }}}} received did not connect to its best chain (target: under {orphan})."),
        ),
    ];
    rules[0].comment = "The scaling document's \"Key Metrics to Track\", one warning each, strictly above its value.\n\
                        `for` from [key_metrics_for]: trends to fix in working hours, not blips."
        .to_owned();
    rules
}

fn observer(t: &Thresholds) -> Vec<Rule> {
    let o = &t.observer;
    let job = &t.rules.job_selector;
    vec![
        alert(
            t,
            Spec {
                comment: "The observer itself. While it is blind, P2PEventLagHigh cannot fire.".to_owned(),
                name: "P2PExporterDown",
                expr: format!("up{{{job}}} == 0"),
                hold: &o.down_for,
                severity: "warning",
                summary: "Prometheus cannot scrape the P2P exporter on {{ $labels.instance }}.".to_owned(),
                description: format!(
                    "Every scrape of {{{{ $labels.instance }}}} (job {{{{ $labels.job }}}}) has failed for {} (up = {{{{ $value }}}}). The node's P2P layer is unobserved: its lag page cannot fire.",
                    o.down_for.spelt()
                ),
            },
        ),
        alert(
            t,
            Spec {
                comment: "No target of the job serves our metrics: the job is missing from Prometheus's\n\
                          configuration or service discovery, every target is down, or the targets are not our\n\
                          exporter. `up == 0` cannot see the first and last cases."
                    .to_owned(),
                name: "P2PExporterMetricsAbsent",
                expr: format!("absent(p2p_exporter_build_info{{{job}}})"),
                hold: &o.absent_for,
                severity: "warning",
                summary: "No P2P exporter metrics reach Prometheus (job {{ $labels.job }}).".to_owned(),
                description: format!(
                    "For {} Prometheus has held no p2p_exporter_build_info series for job {{{{ $labels.job }}}} (absent = {{{{ $value }}}}): no node's P2P layer is observed and no lag page can fire.",
                    o.absent_for.spelt()
                ),
            },
        ),
    ]
}

fn tap(t: &Thresholds, n: &Names) -> Vec<Rule> {
    let tap = &t.tap;
    let lost = percent(tap.lost_ratio);
    let refused = |result: &str| {
        format!(
            r#"{{{{ with printf "sum(increase(p2p_tap_connections_total{{job=%q,instance=%q,result=\"{result}\"}}[{w}]))" $labels.job $labels.instance | query }}}}{{{{ . | first | value | printf "%.0f" }}}}{{{{ else }}}}0{{{{ end }}}}"#,
            w = tap.disconnected_for
        )
    };
    let per_reason = |metric: &str, what: &str| {
        format!(
            r#"{{{{ range printf "sum by (reason) (rate({metric}{{job=%q,instance=%q}}[{w}])) > 0" $labels.job $labels.instance | query }}}} {{{{ .Value | printf "%.1f" }}}} {what} ({{{{ .Labels.reason }}}}),{{{{ end }}}}"#,
            w = tap.window
        )
    };
    vec![
        alert(
            t,
            Spec {
                comment: format!(
                    "A tap-mode sidecar (`--source tap`) with no node connected: the node is down, or cannot\n\
                     reach or open the socket, or its hello is refused. Its metrics are frozen, so none of the\n\
                     node's alerts, the lag page included, can fire. Selected by build_info{{source=\"tap\"}}: an\n\
                     embedded sidecar has no node and reports p2p_tap_connected 0 all the time. `/readyz` stays\n\
                     ready without a node on purpose, so the sidecar keeps being scraped and this can fire; a\n\
                     sidecar that is not scraped at all is P2PExporterDown's. `for: {}` rides out a node or\n\
                     sidecar restart (the client reconnects within 5 s of the sidecar being back).",
                    tap.disconnected_for
                ),
                name: "P2PTapDisconnected",
                expr: "p2p_tap_connected == 0\nand on (job, instance)\np2p_exporter_build_info{source=\"tap\"}\n".to_owned(),
                hold: &tap.disconnected_for,
                severity: "warning",
                summary: "No node is connected to the tap of the P2P exporter on {{ $labels.instance }}.".to_owned(),
                description: format!(
                    "The tap-mode exporter {{{{ $labels.instance }}}} (job {{{{ $labels.job }}}}) has had no node connected for {w} (p2p_tap_connected = {{{{ $value }}}}): its node's P2P metrics are frozen and its lag page cannot fire.\nConnections refused in the last {w}: {handshake}\nfor a bad hello or token, {busy}\nbecause another node held the tap.",
                    w = tap.disconnected_for.spelt(),
                    handshake = refused("refused_handshake"),
                    busy = refused("refused_busy"),
                ),
            },
        ),
        alert(
            t,
            Spec {
                comment: format!(
                    "The tap loses detail: the node's tap drops inv entries (its detail buffer is full: the\n\
                     sidecar is away or slow) or the sidecar refuses frames. Counts stay exact; the duplicate\n\
                     ratio then covers fewer inv messages, and a refused snapshot leaves the node's series\n\
                     stale. A healthy tap loses nothing. Why {lost}, and why `for: {hold}` over a {w} window\n\
                     (one burst, such as a sidecar restart, leaves the window before the `for` ends): the [tap]\n\
                     section of alerts/thresholds.toml.",
                    hold = tap.dropping_for,
                    w = tap.window,
                ),
                name: "P2PTapDroppingRecords",
                expr: format!("{} > {}", n.tap_lost, tap.lost_ratio),
                hold: &tap.dropping_for,
                severity: "warning",
                summary: format!("The tap of {{{{ $labels.instance }}}} is losing more than {lost} of its detail records."),
                description: format!(
                    concat!(
                        r#"Over the last {w} {{{{ $value | humanizePercentage }}}} of the detail records the node's tap produced never reached the duplicate tracker of {{{{ $labels.instance }}}} (job {{{{ $labels.job }}}}), and it has been above {lost} for {hold}: counts stay exact, but the duplicate ratio covers fewer inv messages, and a refused snapshot leaves the node's series stale."#,
                        "\n",
                        r#"Per second:{dropped}{rejected}"#,
                        "\n",
                        r#"of {{{{ with printf "sum(rate(p2p_tap_client_records_total{{job=%q,instance=%q}}[{window}]))" $labels.job $labels.instance | query }}}}{{{{ . | first | value | printf "%.1f" }}}}{{{{ end }}}} produced."#,
                    ),
                    w = tap.window.spelt(),
                    hold = tap.dropping_for.spelt(),
                    dropped = per_reason("p2p_tap_client_dropped_records_total", "dropped by the node's tap"),
                    rejected = per_reason("p2p_tap_records_rejected_total", "refused by the sidecar"),
                    window = tap.window,
                    lost = lost,
                ),
            },
        ),
    ]
}
