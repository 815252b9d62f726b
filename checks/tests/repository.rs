//! The checks over this repository's own dashboards, so `cargo test` fails wherever
//! `p2p-check dashboards` would.

use std::path::Path;

use p2p_checks::dashboards::{self, config, generate};

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
    assert_eq!(thresholds.job, "p2p-exporter");
    assert_eq!(thresholds.lag_ratio, 0.01);
    assert_eq!(thresholds.duplicate_ratio, 0.30);
    assert_eq!(thresholds.average_peers, 150.0);
    assert_eq!(thresholds.capacity_usage_ratio, 0.80);
    assert_eq!(thresholds.propagation_p50_seconds, 0.1);
    assert_eq!(thresholds.propagation_p99_seconds, 0.5);
    assert_eq!(thresholds.peer_churn_per_hour_ratio, 0.05);
    assert_eq!(thresholds.memory_per_peer_bytes, 10.0 * 1024.0 * 1024.0);
    assert_eq!(thresholds.cpu_per_peer_ratio, 0.01);

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
    let dir = tempdir();
    for relative in ["dashboards", "alerts"] {
        copy_tree(&repo_root().join(relative), &dir.join(relative));
    }
    let toml = dir.join("alerts/thresholds.toml");
    let text = std::fs::read_to_string(&toml).unwrap();
    std::fs::write(
        &toml,
        text.replacen("duplicate_ratio = 0.30", "duplicate_ratio = 0.25", 1),
    )
    .unwrap();
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
