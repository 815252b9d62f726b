//! `p2p-check rules`: the Prometheus rules under `alerts/rules/` are generated from
//! `recording.rs` + `alerts.rs` + `alerts/thresholds.toml`, so a threshold, a window, a `for`, the
//! runbook address and the job selector each have one place to be changed. The check fails while
//! the shipped files differ, byte for byte, from what the generator makes now.

mod alerts;
mod recording;
mod yaml;

use std::path::Path;

use crate::thresholds::Thresholds;

/// The generated files, under `alerts/rules/`.
pub const FILES: [&str; 2] = ["recording.yml", "alerts.yml"];

/// The recording rules whose range is a window of thresholds.toml: their names carry that window
/// (`level:metric:operations`), so the alerts and the dashboards take the names from here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Names {
    /// Per subscriber, over the page's window.
    pub subscriber_lag: String,
    /// The worst subscriber, over the page's window: what the page reads.
    pub worst_lag: String,
    /// The worst subscriber, over the decision's lag window.
    pub worst_lag_decision: String,
    pub duplicate_messages_decision: String,
    pub peers_decision: String,
    pub tap_lost: String,
    /// Across the nodes of a job whose window is covered: events lost / events sent.
    pub fleet_lag: String,
    /// The share of those nodes whose worst subscriber lags above the decision's ratio.
    pub fleet_nodes_lagging: String,
    pub fleet_duplicate_messages: String,
    /// The mean over those nodes of each one's average peers.
    pub fleet_peers: String,
}

/// The framework's verdict as one series: 0 none, 1 deduplicate, 2 segmented fanout, 3 grow.
/// Absent while the node's inputs do not yet cover the decision window.
pub const VERDICT: &str = "instance:p2p_decision:verdict";
/// The scrape time of a node's decision inputs, recorded at every evaluation: its oldest value in
/// the window says since when Prometheus holds them.
pub const INPUT_TIMESTAMP: &str = "instance:p2p_decision_inputs:timestamp_seconds";
/// How much of the decision window a node's inputs cover, in seconds (the window once covered).
pub const COVERED: &str = "instance:p2p_decision:covered_seconds";
/// The same as a share of the window: 1 exactly once covered, when the verdict exists.
pub const COVERAGE: &str = "instance:p2p_decision:coverage_ratio";
/// The testnet's verdict (per job), numbered as the node's.
pub const FLEET_VERDICT: &str = "job:p2p_decision:verdict";
/// The share of a job's reporting nodes whose inputs cover the window.
pub const FLEET_COVERAGE: &str = "job:p2p_decision:coverage_ratio";
/// Nodes of a job per verdict, `verdict` one of VERDICT_LABELS or `insufficient_data`.
pub const FLEET_NODES: &str = "job:p2p_decision:nodes";
/// The `verdict` label of FLEET_NODES for each verdict code, in code order.
pub const VERDICT_LABELS: [&str; 4] = ["none", "deduplicate", "segmented_fanout", "grow_channel"];
/// The `verdict` label of FLEET_NODES for the nodes without a verdict yet.
pub const INSUFFICIENT: &str = "insufficient_data";

impl Names {
    pub fn new(t: &Thresholds) -> Names {
        Names {
            subscriber_lag: format!(
                "subscriber:p2p_event_channel_lag:ratio_rate{}",
                t.page.window
            ),
            worst_lag: format!(
                "instance:p2p_event_channel_lag:max_ratio_rate{}",
                t.page.window
            ),
            worst_lag_decision: format!(
                "instance:p2p_event_channel_lag:max_ratio_rate{}",
                t.decision.lag_window
            ),
            duplicate_messages_decision: format!(
                "instance:p2p_inv_duplicate_messages:ratio_rate{}",
                t.decision.duplicate_window
            ),
            peers_decision: format!(
                "instance:p2p_peers:avg_over_time{}",
                t.decision.peers_window
            ),
            tap_lost: format!("instance:p2p_tap_records_lost:ratio_rate{}", t.tap.window),
            fleet_lag: format!(
                "job:p2p_event_channel_lag:ratio_rate{}",
                t.decision.lag_window
            ),
            fleet_nodes_lagging: format!(
                "job:p2p_nodes_lagging:ratio_rate{}",
                t.decision.lag_window
            ),
            fleet_duplicate_messages: format!(
                "job:p2p_inv_duplicate_messages:ratio_rate{}",
                t.decision.duplicate_window
            ),
            fleet_peers: format!("job:p2p_peers:avg_over_time{}", t.decision.peers_window),
        }
    }
}

/// Each file of `FILES` with its text.
pub fn generate(t: &Thresholds) -> Vec<(&'static str, String)> {
    let names = Names::new(t);
    vec![
        (FILES[0], recording::file(t, &names).render()),
        (FILES[1], alerts::file(t, &names).render()),
    ]
}

fn thresholds(root: &Path) -> Result<Thresholds, String> {
    Thresholds::load(&root.join("alerts/thresholds.toml"))
}

/// Regenerates `alerts/rules/*.yml` from the code and `alerts/thresholds.toml`.
pub fn write(root: &Path) -> Result<Vec<String>, String> {
    let dir = root.join("alerts/rules");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut written = Vec::new();
    for (name, text) in generate(&thresholds(root)?) {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        written.push(format!("alerts/rules/{name}"));
    }
    Ok(written)
}

/// Every shipped rule file that is not, byte for byte, what the generator makes from the
/// shipped thresholds.toml; and any other rule file there (Prometheus would load it too).
pub fn check(root: &Path) -> Vec<String> {
    let t = match thresholds(root) {
        Ok(t) => t,
        Err(e) => return vec![e],
    };
    let dir = root.join("alerts/rules");
    let mut problems = Vec::new();
    for (name, generated) in generate(&t) {
        let path = dir.join(name);
        match std::fs::read_to_string(&path) {
            Ok(shipped) if shipped == generated => {}
            Ok(_) => problems.push(format!(
                "alerts/rules/{name} differs from what checks/src/rules/ and alerts/thresholds.toml make: run `cargo run -q -p p2p-checks -- rules --write`"
            )),
            Err(e) => problems.push(format!("alerts/rules/{name}: {e}")),
        }
    }
    if let Ok(entries) = std::fs::read_dir(&dir) {
        let mut extra: Vec<String> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| !FILES.contains(&name.as_str()))
            .collect();
        extra.sort();
        problems.extend(extra.into_iter().map(|name| {
            format!("alerts/rules/{name} is not generated: Prometheus loads every file there")
        }));
    }
    problems
}
