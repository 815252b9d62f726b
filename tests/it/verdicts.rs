//! The exporter's decision engine and the shipped recording rules must reach the same verdict on
//! every scenario the simulator offers. Each scenario's baseline run gives the three inputs; the
//! Rust side decides with `p2p_decision`, and real promtool evaluates `instance:p2p_decision:verdict`
//! over synthetic series that carry exactly those ratios for seven hours.

use std::fmt::Write as _;
use std::process::Command;
use std::time::Duration;

use p2p_decision::{Thresholds, Verdict};
use p2p_sim::DesignKind;

use crate::support::{repo_root, require_tool};

/// Long enough for each scenario's ratios to settle, short enough for a debug build.
const RUN: Duration = Duration::from_secs(30);
/// Events per minute in the synthetic series; large so that ratios keep their precision.
const PER_MINUTE: f64 = 1_000_000.0;

fn verdict_code(verdict: Verdict) -> u8 {
    match verdict {
        Verdict::None => 0,
        Verdict::Deduplicate => 1,
        Verdict::SegmentedFanout => 2,
        Verdict::GrowChannel => 3,
    }
}

/// A promtool test whose series make the 6h recording rules see exactly these inputs.
fn promtool_case(name: &str, lag: f64, duplicates: f64, peers: f64, expected: u8) -> String {
    let labels = format!(r#"job="p2p-exporter", instance="{name}""#);
    let lagged = PER_MINUTE * lag;
    let received = PER_MINUTE - lagged;
    let dup = PER_MINUTE * duplicates;
    let mut case = String::new();
    writeln!(
        case,
        "  # {name}: lag {lag}, duplicates {duplicates}, peers {peers}"
    )
    .unwrap();
    writeln!(case, "  - interval: 1m").unwrap();
    writeln!(case, "    input_series:").unwrap();
    for (series, step) in [
        ("p2p_event_channel_lag_total", lagged),
        ("p2p_events_received_total", received),
    ] {
        writeln!(
            case,
            "      - series: '{series}{{{labels}, subscriber=\"consumer\"}}'"
        )
        .unwrap();
        writeln!(case, "        values: '0+{step}x420'").unwrap();
    }
    for (series, step) in [
        ("p2p_inv_messages_total", PER_MINUTE),
        ("p2p_inv_checked_messages_total", PER_MINUTE),
        ("p2p_inv_duplicate_messages_total", dup),
    ] {
        writeln!(case, "      - series: '{series}{{{labels}}}'").unwrap();
        writeln!(case, "        values: '0+{step}x420'").unwrap();
    }
    writeln!(case, "      - series: 'p2p_peers{{{labels}}}'").unwrap();
    writeln!(case, "        values: '{peers}x420'").unwrap();
    writeln!(case, "    promql_expr_test:").unwrap();
    writeln!(case, "      - expr: instance:p2p_decision:verdict").unwrap();
    writeln!(case, "        eval_time: 7h").unwrap();
    writeln!(case, "        exp_samples:").unwrap();
    writeln!(
        case,
        "          - labels: 'instance:p2p_decision:verdict{{{labels}}}'"
    )
    .unwrap();
    writeln!(case, "            value: {expected}").unwrap();
    case
}

#[test]
fn the_exporter_and_the_rules_agree_on_every_scenario() {
    let promtool = require_tool("promtool");
    let thresholds = Thresholds::shipped();
    let dir = tempfile::tempdir().unwrap();
    let rules = repo_root().join("alerts/rules/recording.yml");
    let mut tests = format!(
        "rule_files:\n  - {}\nevaluation_interval: 1m\ntests:\n",
        rules.display()
    );
    let mut verdicts = Vec::new();
    for scenario in p2p_sim::scenario::all() {
        let run = p2p_sim::run(&scenario, DesignKind::Broadcast2048, RUN, 1, &mut |_| {});
        let verdict = Verdict::decide(
            &thresholds,
            run.lag_ratio,
            run.duplicate_ratio,
            run.average_peers,
        );
        verdicts.push((scenario.name, verdict));
        tests.push_str(&promtool_case(
            scenario.name,
            run.lag_ratio,
            run.duplicate_ratio,
            run.average_peers,
            verdict_code(verdict),
        ));
    }
    let path = dir.path().join("verdicts.test.yml");
    std::fs::write(&path, &tests).unwrap();
    let output = Command::new(promtool)
        .args(["test", "rules"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "promtool disagrees with the exporter's verdicts {verdicts:?}:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // The scenarios between them exercise more than one branch, or agreement would prove little.
    let distinct: std::collections::BTreeSet<_> =
        verdicts.iter().map(|(_, v)| verdict_code(*v)).collect();
    assert!(distinct.len() >= 3, "{verdicts:?}");
}
