//! The checks over this repository's own dashboards and rules, so `cargo test` fails wherever
//! `p2p-check dashboards` or `p2p-check rules` would.

use std::path::{Path, PathBuf};
use std::process::Command;

use p2p_checks::dashboards::{self, config, generate};
use p2p_checks::rules;
use p2p_checks::thresholds::Thresholds;
use serde_yaml::Value as Yaml;

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

#[test]
fn the_repository_dashboards_pass_every_check() {
    let report = dashboards::check(repo_root());
    assert_eq!(report.problems, Vec::<String>::new());
    assert_eq!(report.dashboards, config::DASHBOARDS.len());
}

#[test]
fn thresholds_are_read_from_alerts_thresholds_toml_and_drawn_as_lines() {
    let thresholds = config::Thresholds::load(&repo_root().join("alerts/thresholds.toml")).unwrap();
    assert_eq!(thresholds.rules.job_selector, r#"job="p2p-exporter""#);
    assert_eq!(thresholds.decision.lag_ratio, 0.01);
    assert_eq!(thresholds.decision.duplicate_ratio, 0.30);
    assert_eq!(thresholds.decision.average_peers, 150.0);
    let k = &thresholds.key_metrics;
    assert_eq!(k.capacity_usage_ratio, 0.80);
    assert_eq!(k.block_propagation_p50_seconds, 0.1);
    assert_eq!(k.block_propagation_p99_seconds, 0.5);
    assert_eq!(k.peer_churn_per_hour_ratio, 0.05);
    assert_eq!(k.memory_per_peer_bytes, 10.0 * 1024.0 * 1024.0);
    assert_eq!(k.cpu_per_peer_ratio, 0.01);

    // The scaling document's lines, each on the panel it belongs to.
    let dashboards = generate::dashboards(&thresholds);
    let line = |uid: &str, title: &str| -> Vec<f64> {
        let (_, dashboard) = dashboards.iter().find(|(id, _)| id.uid == uid).unwrap();
        let panel = dashboard["panels"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["title"] == title)
            .unwrap_or_else(|| panic!("{uid} has no panel {title:?}"));
        panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|step| step["value"].as_f64())
            .collect()
    };
    assert_eq!(
        line("p2p-decision", "Event lag ratio, worst subscriber"),
        [0.01]
    );
    assert_eq!(line("p2p-decision", "Duplicate inv ratio"), [0.30]);
    assert_eq!(
        line("p2p-decision", "Connected peers, 6 h average"),
        [150.0]
    );
    assert_eq!(
        line("p2p-decision", "Channel capacity usage, 5 m peak"),
        [0.80]
    );
    assert_eq!(
        line("p2p-chain", "Block propagation p50 and p99"),
        [0.1, 0.5]
    );
    assert_eq!(line("p2p-peers", "Peer churn per hour"), [0.05]);
    assert_eq!(line("p2p-peers", "Memory per peer"), [10_485_760.0]);
    assert_eq!(line("p2p-peers", "CPU per peer"), [0.01]);
}

#[test]
fn a_threshold_changed_in_the_toml_makes_the_committed_dashboards_stale() {
    let dir = edited_copy(
        "dashboards",
        &[("duplicate_ratio = 0.30", "duplicate_ratio = 0.25")],
    );
    let problems = dashboards::check(&dir).problems;
    assert_eq!(problems.len(), 2, "{problems:#?}");
    for (problem, file) in problems
        .iter()
        .zip(["p2p-decision.json", "p2p-messages.json"])
    {
        assert!(
            problem.starts_with(&format!("dashboards/json/{file} differs")),
            "{problem}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

// --- rules --------------------------------------------------------------------------------------

#[test]
fn the_shipped_rules_are_byte_for_byte_what_thresholds_toml_generates() {
    let thresholds = Thresholds::load(&repo_root().join("alerts/thresholds.toml")).unwrap();
    for (name, generated) in rules::generate(&thresholds) {
        let shipped = std::fs::read_to_string(repo_root().join("alerts/rules").join(name)).unwrap();
        assert!(
            shipped == generated,
            "alerts/rules/{name} is not what the generator makes: run `cargo run -q -p p2p-checks -- rules --write`"
        );
    }
    assert_eq!(rules::check(repo_root()), Vec::<String>::new());
}

/// A copy of alerts/ and dashboards/ in a fresh directory, with `edit` applied to its
/// thresholds.toml (each `(from, to)` must occur).
fn edited_copy(name: &str, edits: &[(&str, &str)]) -> PathBuf {
    let dir = tempdir().join(name);
    for relative in ["dashboards", "alerts"] {
        copy_tree(&repo_root().join(relative), &dir.join(relative));
    }
    let toml = dir.join("alerts/thresholds.toml");
    let mut text = std::fs::read_to_string(&toml).unwrap();
    for (from, to) in edits {
        assert!(text.contains(from), "thresholds.toml has no {from:?}");
        text = text.replacen(from, to, 1);
    }
    std::fs::write(&toml, text).unwrap();
    dir
}

/// The lines of `after` that differ from `before`, side by side (the files keep their line count).
fn changed_lines(before: &str, after: &str) -> Vec<(String, String)> {
    assert_eq!(before.lines().count(), after.lines().count());
    before
        .lines()
        .zip(after.lines())
        .filter(|(b, a)| b != a)
        .map(|(b, a)| (b.trim().to_owned(), a.trim().to_owned()))
        .collect()
}

#[test]
fn a_threshold_changed_in_the_toml_changes_its_rules_and_nothing_else() {
    let dir = edited_copy(
        "threshold",
        &[("duplicate_ratio = 0.30", "duplicate_ratio = 0.25")],
    );
    assert_eq!(
        rules::check(&dir),
        [
            "alerts/rules/recording.yml differs from what checks/src/rules/ and alerts/thresholds.toml make: run `cargo run -q -p p2p-checks -- rules --write`",
            "alerts/rules/alerts.yml differs from what checks/src/rules/ and alerts/thresholds.toml make: run `cargo run -q -p p2p-checks -- rules --write`",
        ]
    );
    let shipped =
        |name: &str| std::fs::read_to_string(repo_root().join("alerts/rules").join(name)).unwrap();
    let generated =
        rules::generate(&Thresholds::load(&dir.join("alerts/thresholds.toml")).unwrap());
    let pair = |b: &str, a: &str| (b.to_owned(), a.to_owned());
    assert_eq!(
        changed_lines(&shipped("recording.yml"), &generated[0].1),
        [
            pair(
                "#   0 none (lag at or below 1%), 1 deduplicate (duplicates above 30%),",
                "#   0 none (lag at or below 1%), 1 deduplicate (duplicates above 25%),"
            ),
            pair(
                "(1 + 0 * (instance:p2p_inv_duplicate_messages:ratio_rate6h > 0.3))",
                "(1 + 0 * (instance:p2p_inv_duplicate_messages:ratio_rate6h > 0.25))"
            ),
            pair(
                "(1 + 0 * (job:p2p_inv_duplicate_messages:ratio_rate6h > 0.3))",
                "(1 + 0 * (job:p2p_inv_duplicate_messages:ratio_rate6h > 0.25))"
            ),
        ]
    );
    assert_eq!(
        changed_lines(&shipped("alerts.yml"), &generated[1].1),
        [
            pair(
                "duplicates (above 30%). The decision framework says: deduplicate inventory (estimated",
                "duplicates (above 25%). The decision framework says: deduplicate inventory (estimated"
            ),
            pair(
                "while duplicates stayed at or below 30%. The decision framework says: split the channel",
                "while duplicates stayed at or below 25%. The decision framework says: split the channel"
            ),
            pair(
                "its events (above 1%), with duplicates at or below 30% and 150 peers or fewer on",
                "its events (above 1%), with duplicates at or below 25% and 150 peers or fewer on"
            ),
            pair(
                "{{ $value | humanizePercentage }} of their inv messages were duplicates (above 30%). The",
                "{{ $value | humanizePercentage }} of their inv messages were duplicates (above 25%). The"
            ),
            pair(
                "stayed at or below 30%. The decision framework says: split the channel into typed",
                "stayed at or below 25%. The decision framework says: split the channel into typed"
            ),
            pair(
                "Duplicates stayed at or below 30% and peers at 150 or fewer on average. The decision",
                "Duplicates stayed at or below 25% and peers at 150 or fewer on average. The decision"
            ),
        ]
    );
    // Regenerated, the copy passes again.
    rules::write(&dir).unwrap();
    assert_eq!(rules::check(&dir), Vec::<String>::new());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Every rule of a generated file, by its `alert` or `record` name.
fn rules_by_name(text: &str) -> Vec<(String, Yaml)> {
    let file: Yaml = serde_yaml::from_str(text).unwrap();
    file["groups"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_sequence().unwrap().clone())
        .map(|rule| {
            let name = rule["alert"]
                .as_str()
                .or(rule["record"].as_str())
                .unwrap()
                .to_owned();
            (name, rule)
        })
        .collect()
}

/// `promtool check rules` on the files generated into `dir`, as Prometheus would load them.
fn promtool_accepts(dir: &Path) {
    let files: Vec<PathBuf> = rules::FILES
        .iter()
        .map(|f| dir.join("alerts/rules").join(f))
        .collect();
    let output = Command::new("promtool")
        .arg("check")
        .arg("rules")
        .args(&files)
        .output()
        .expect("promtool on PATH (scripts/test.sh installs Debian's prometheus package)");
    assert!(
        output.status.success(),
        "promtool check rules: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_runbook_address_and_the_job_selector_are_settings_of_rules_and_dashboards() {
    let url = "https://wiki.example.org/p2p/runbook";
    let selector = r#"job=~"p2p-exporter-(testnet|devnet)""#;
    let dir = edited_copy(
        "settings",
        &[
            (
                r#"runbook_url = "https://github.com/p2p-observability/p2p-observability/blob/main/alerts/runbook.md""#,
                &format!("runbook_url = {url:?}"),
            ),
            (
                r#"job_selector = 'job="p2p-exporter"'"#,
                &format!("job_selector = '{selector}'"),
            ),
        ],
    );
    rules::write(&dir).unwrap();
    dashboards::write(&dir).unwrap();
    let alerts =
        rules_by_name(&std::fs::read_to_string(dir.join("alerts/rules/alerts.yml")).unwrap());
    assert_eq!(alerts.len(), 19);
    for (name, rule) in &alerts {
        assert_eq!(
            rule["annotations"]["runbook_url"].as_str(),
            Some(format!("{url}#{}", name.to_lowercase()).as_str())
        );
    }
    let expr = |name: &str| {
        let (_, rule) = alerts.iter().find(|(n, _)| n == name).unwrap();
        rule["expr"].as_str().unwrap().to_owned()
    };
    assert_eq!(expr("P2PExporterDown"), format!("up{{{selector}}} == 0"));
    assert_eq!(
        expr("P2PExporterMetricsAbsent"),
        format!("absent(p2p_exporter_build_info{{{selector}}})")
    );
    // Neither the placeholder nor the shipped job is left anywhere, in rules or dashboards.
    for file in [
        "alerts/rules/alerts.yml",
        "dashboards/json/p2p-decision.json",
        "dashboards/json/p2p-peers.json",
    ] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        assert!(
            !text.contains("github.com/p2p-observability"),
            "{file} keeps the placeholder"
        );
        assert!(
            !text.contains(r#"job=\"p2p-exporter\""#) && !text.contains(r#"job="p2p-exporter""#),
            "{file} keeps the job"
        );
    }
    let decision = std::fs::read_to_string(dir.join("dashboards/json/p2p-decision.json")).unwrap();
    assert!(
        decision.contains(url) && decision.contains(r#"job=~\"p2p-exporter-(testnet|devnet)\""#)
    );
    assert_eq!(dashboards::check(&dir).problems, Vec::<String>::new());
    promtool_accepts(&dir);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_window_changed_in_the_toml_renames_its_rule_for_every_reader() {
    let dir = edited_copy(
        "window",
        &[(r#"lag_window = "6h""#, r#"lag_window = "12h""#)],
    );
    rules::write(&dir).unwrap();
    dashboards::write(&dir).unwrap();
    let recording = std::fs::read_to_string(dir.join("alerts/rules/recording.yml")).unwrap();
    let alerts = std::fs::read_to_string(dir.join("alerts/rules/alerts.yml")).unwrap();
    let records = rules_by_name(&recording);
    let (_, gate) = records
        .iter()
        .find(|(name, _)| name == "instance:p2p_event_channel_lag:max_ratio_rate12h")
        .expect("the decision's lag rule named after its window");
    // Skipped, and skipped plus received, over the new window.
    assert_eq!(gate["expr"].as_str().unwrap().matches("[12h]").count(), 3);
    assert!(!recording.contains("max_ratio_rate6h") && !alerts.contains("max_ratio_rate6h"));
    // The other 6h inputs keep theirs; the verdict and the tickets read the renamed gate.
    assert!(recording.contains("instance:p2p_inv_duplicate_messages:ratio_rate6h"));
    assert_eq!(
        records.iter().find(|(n, _)| n == rules::VERDICT).unwrap().1["expr"]
            .as_str()
            .unwrap()
            .matches("instance:p2p_event_channel_lag:max_ratio_rate12h")
            .count(),
        4
    );
    assert!(alerts.contains("Over the last 12 hours"));
    // The dashboards read it under its new name, and every name they read exists.
    let decision = std::fs::read_to_string(dir.join("dashboards/json/p2p-decision.json")).unwrap();
    assert!(decision.contains("instance:p2p_event_channel_lag:max_ratio_rate12h"));
    assert_eq!(dashboards::check(&dir).problems, Vec::<String>::new());
    promtool_accepts(&dir);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn settings_and_windows_that_would_make_wrong_rules_are_refused() {
    let shipped = std::fs::read_to_string(repo_root().join("alerts/thresholds.toml")).unwrap();
    let refused = |from: &str, to: &str| -> String {
        assert!(shipped.contains(from), "{from:?}");
        Thresholds::parse(&shipped.replacen(from, to, 1)).unwrap_err()
    };
    let job = r#"job_selector = 'job="p2p-exporter"'"#;
    assert!(refused(job, "job_selector = 'p2p-exporter'").contains("not one PromQL label matcher"));
    assert!(refused(job, r#"job_selector = 'job="a", env="b"'"#)
        .contains("not one PromQL label matcher"));
    assert!(
        refused("alerts/runbook.md\"", "alerts/runbook.md#top\"").contains("without a #fragment")
    );
    assert!(refused("lag_window = \"6h\"", "lag_window = \"6 hours\"")
        .contains("not a Prometheus duration"));
    // A misspelt key would leave its rule at a value nobody set.
    assert!(refused("orphan_ratio =", "orphans_ratio =").contains("unknown field `orphans_ratio`"));
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("p2p-checks-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
