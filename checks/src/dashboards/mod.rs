//! `p2p-check dashboards`: the Grafana dashboards under `dashboards/` are generated from
//! `generate.rs` + `config.rs` + `alerts/thresholds.toml`, and checked as JSON against the rules in
//! `check.rs`, the exporter's metric table and the recording rules in `alerts/rules/`.

pub mod check;
pub mod config;
pub mod generate;
pub mod grafana;
pub mod known;
pub mod promql;

use std::path::Path;

use serde_json::Value;
use serde_yaml::Value as Yaml;

use config::{
    Thresholds, ALERTMANAGER_UID, ALERTMANAGER_URL, DASHBOARD_FOLDER, GRAFANA_MOUNT,
    PROMETHEUS_UID, PROMETHEUS_URL, TEMPO_UID, TEMPO_URL,
};
use known::Known;

/// What one run found.
#[derive(Debug, Default)]
pub struct Report {
    pub problems: Vec<String>,
    pub dashboards: usize,
    pub panels: usize,
    pub queries: usize,
}

fn thresholds(root: &Path) -> Result<Thresholds, String> {
    Thresholds::load(&root.join("alerts/thresholds.toml"))
}

/// Regenerates `dashboards/json/*.json` from the code and `alerts/thresholds.toml`.
pub fn write(root: &Path) -> Result<Vec<String>, String> {
    let dir = root.join("dashboards/json");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut written = Vec::new();
    for (id, dashboard) in generate::dashboards(&thresholds(root)?) {
        let path = dir.join(id.file_name());
        let text = serde_json::to_string_pretty(&dashboard).expect("JSON values serialise") + "\n";
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        written.push(format!("dashboards/json/{}", id.file_name()));
    }
    Ok(written)
}

/// Every check over the repository at `root`.
pub fn check(root: &Path) -> Report {
    let mut report = Report::default();
    let known = match Known::from_repo(root) {
        Ok(known) => known,
        Err(e) => {
            report.problems.push(e);
            return report;
        }
    };
    if known.recording_rules().is_empty() {
        report.problems.push(
            "alerts/rules/*.yml holds no recording rule; the dashboards read them".to_owned(),
        );
    }

    let dir = root.join("dashboards/json");
    let mut files = Vec::new();
    match std::fs::read_dir(&dir) {
        Ok(entries) => {
            for path in entries.flatten().map(|e| e.path()) {
                if path.extension().is_some_and(|e| e == "json") {
                    let name = path.file_name().unwrap().to_string_lossy().into_owned();
                    match std::fs::read_to_string(&path) {
                        Ok(text) => files.push((name, text)),
                        Err(e) => report.problems.push(format!("{}: {e}", path.display())),
                    }
                }
            }
        }
        Err(e) => report.problems.push(format!("{}: {e}", dir.display())),
    }
    files.sort();
    report.problems.extend(check::check_files(&files, &known));

    for (_, text) in &files {
        if let Ok(dashboard) = serde_json::from_str::<Value>(text) {
            report.dashboards += 1;
            let panels: Vec<&Value> = dashboard["panels"]
                .as_array()
                .into_iter()
                .flatten()
                .collect();
            report.panels += panels.iter().filter(|p| p["type"] != "row").count();
            report.queries += panels
                .iter()
                .filter_map(|p| p["targets"].as_array())
                .map(Vec::len)
                .sum::<usize>();
        }
    }

    report.problems.extend(freshness(root, &files));
    report.problems.extend(provisioning(root));
    report
}

/// The committed JSON must be what the generator makes now, so a threshold changed in
/// alerts/thresholds.toml, or a hand edit of the JSON, cannot drift unnoticed.
fn freshness(root: &Path, files: &[(String, String)]) -> Vec<String> {
    let thresholds = match thresholds(root) {
        Ok(thresholds) => thresholds,
        Err(e) => return vec![e],
    };
    let mut problems = Vec::new();
    for (id, generated) in generate::dashboards(&thresholds) {
        let name = id.file_name();
        let committed = files
            .iter()
            .find(|(file, _)| *file == name)
            .and_then(|(_, text)| serde_json::from_str::<Value>(text).ok());
        if committed.as_ref() != Some(&generated) {
            problems.push(format!(
                "dashboards/json/{name} differs from what checks/src/dashboards/generate.rs and alerts/thresholds.toml make: run `cargo run -q -p p2p-checks -- dashboards --write`"
            ));
        }
    }
    problems
}

/// The provisioning files name the datasource uids the dashboards rely on, and the provider reads
/// the JSON from where the compose file mounts it.
fn provisioning(root: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let read = |relative: &str| -> Result<Yaml, String> {
        let path = root.join(relative);
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{relative}: {e}"))?;
        serde_yaml::from_str(&text).map_err(|e| format!("{relative}: not YAML: {e}"))
    };
    let datasources_file = "dashboards/provisioning/datasources/datasources.yml";
    match read(datasources_file) {
        Err(e) => problems.push(e),
        Ok(doc) => {
            let datasources = doc["datasources"]
                .as_sequence()
                .cloned()
                .unwrap_or_default();
            for (uid, kind, url) in [
                (PROMETHEUS_UID, "prometheus", PROMETHEUS_URL),
                (ALERTMANAGER_UID, "alertmanager", ALERTMANAGER_URL),
                (TEMPO_UID, "tempo", TEMPO_URL),
            ] {
                let found = datasources.iter().any(|d| {
                    d["uid"].as_str() == Some(uid)
                        && d["type"].as_str() == Some(kind)
                        && d["url"].as_str() == Some(url)
                });
                if !found {
                    problems.push(format!(
                        "{datasources_file}: no {kind} datasource with uid {uid:?} at {url}"
                    ));
                }
            }
        }
    }
    let providers_file = "dashboards/provisioning/dashboards/dashboards.yml";
    match read(providers_file) {
        Err(e) => problems.push(e),
        Ok(doc) => {
            let json_dir = format!("{GRAFANA_MOUNT}/json");
            let found = doc["providers"]
                .as_sequence()
                .into_iter()
                .flatten()
                .any(|p| {
                    p["type"].as_str() == Some("file")
                        && p["folder"].as_str() == Some(DASHBOARD_FOLDER)
                        && p["options"]["path"].as_str() == Some(json_dir.as_str())
                });
            if !found {
                problems.push(format!(
                    "{providers_file}: no file provider reading {json_dir} into folder {DASHBOARD_FOLDER:?}"
                ));
            }
        }
    }
    problems
}
