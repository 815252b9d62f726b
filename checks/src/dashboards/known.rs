//! The names a dashboard query may use: what the exporter serves (its `METRICS` table), what the
//! recording rules in `alerts/rules/*.yml` record, and what Prometheus writes itself.

use std::collections::BTreeSet;
use std::path::Path;

use p2p_contract::{MetricType, METRICS};
use serde_yaml::Value;

/// Series Prometheus writes for every target it scrapes and every alert rule it evaluates.
pub const PROMETHEUS_SERIES: &[&str] = &[
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
    "ALERTS",
    "ALERTS_FOR_STATE",
];

/// The exporter's process collector (`prometheus` crate, `process` feature): not in `METRICS`
/// because the exporter does not define them, but it serves them.
pub const PROCESS_PREFIX: &str = "process_";

#[derive(Clone, Debug, Default)]
pub struct Known {
    series: BTreeSet<String>,
    recording_rules: BTreeSet<String>,
    alerts: BTreeSet<String>,
}

impl Known {
    /// The exporter's table and Prometheus's own series, plus the rules of `rule_files`
    /// (file name, YAML text).
    pub fn new(rule_files: &[(String, String)]) -> Result<Known, String> {
        let mut known = Known {
            series: exporter_series().collect(),
            ..Known::default()
        };
        known
            .series
            .extend(PROMETHEUS_SERIES.iter().map(|s| s.to_string()));
        for (file, text) in rule_files {
            let document: Value =
                serde_yaml::from_str(text).map_err(|e| format!("{file}: not YAML: {e}"))?;
            let groups = document["groups"]
                .as_sequence()
                .ok_or_else(|| format!("{file}: no `groups` list"))?;
            for rule in groups
                .iter()
                .filter_map(|g| g["rules"].as_sequence())
                .flatten()
            {
                if let Some(record) = rule["record"].as_str() {
                    known.recording_rules.insert(record.to_owned());
                }
                if let Some(alert) = rule["alert"].as_str() {
                    known.alerts.insert(alert.to_owned());
                }
            }
        }
        Ok(known)
    }

    /// Reads `alerts/rules/*.yml` (and `*.yaml`) under `root`; none yet is not an error.
    pub fn from_repo(root: &Path) -> Result<Known, String> {
        let dir = root.join("alerts/rules");
        let mut files = Vec::new();
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                let path = entry.path();
                if matches!(
                    path.extension().and_then(|e| e.to_str()),
                    Some("yml" | "yaml")
                ) {
                    let text = std::fs::read_to_string(&path)
                        .map_err(|e| format!("{}: {e}", path.display()))?;
                    files.push((path.display().to_string(), text));
                }
            }
        }
        files.sort();
        Known::new(&files)
    }

    pub fn is_metric(&self, name: &str) -> bool {
        self.series.contains(name)
            || self.recording_rules.contains(name)
            || name.starts_with(PROCESS_PREFIX)
    }

    pub fn alerts(&self) -> &BTreeSet<String> {
        &self.alerts
    }

    pub fn recording_rules(&self) -> &BTreeSet<String> {
        &self.recording_rules
    }
}

/// Every series name the exporter serves: a histogram is only ever stored as its `_bucket`,
/// `_sum` and `_count` series, so its bare name is not one.
pub fn exporter_series() -> impl Iterator<Item = String> {
    METRICS.iter().flat_map(|def| match def.kind {
        MetricType::Histogram => ["_bucket", "_sum", "_count"]
            .iter()
            .map(|suffix| format!("{}{suffix}", def.name))
            .collect::<Vec<_>>(),
        MetricType::Counter | MetricType::Gauge => vec![def.name.to_owned()],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: &str = r#"
groups:
  - name: g
    rules:
      - record: instance:p2p_peers:avg_over_time6h
        expr: avg_over_time(p2p_peers[6h])
      - alert: P2PEventLagHigh
        expr: vector(1)
"#;

    fn known() -> Known {
        Known::new(&[("rules.yml".to_owned(), RULES.to_owned())]).unwrap()
    }

    #[test]
    fn histograms_resolve_through_their_suffixes_only() {
        let known = known();
        for name in [
            "p2p_block_propagation_seconds_bucket",
            "p2p_block_propagation_seconds_sum",
            "p2p_block_propagation_seconds_count",
        ] {
            assert!(known.is_metric(name), "{name}");
        }
        assert!(!known.is_metric("p2p_block_propagation_seconds"));
    }

    #[test]
    fn exporter_metrics_rules_and_prometheus_series_are_known_and_nothing_else() {
        let known = known();
        for name in [
            "p2p_peers",
            "p2p_messages_total",
            "instance:p2p_peers:avg_over_time6h",
            "up",
            "ALERTS",
            "process_resident_memory_bytes",
        ] {
            assert!(known.is_metric(name), "{name}");
        }
        for name in [
            "p2p_peer",
            "instance:p2p_peers:avg_over_time1h",
            "node_cpu_seconds_total",
        ] {
            assert!(!known.is_metric(name), "{name}");
        }
        assert_eq!(
            known.alerts().iter().collect::<Vec<_>>(),
            ["P2PEventLagHigh"]
        );
    }

    #[test]
    fn a_rule_file_that_is_not_yaml_is_an_error() {
        let error = Known::new(&[("bad.yml".to_owned(), "groups: [".to_owned())]).unwrap_err();
        assert!(error.starts_with("bad.yml: not YAML"), "{error}");
    }
}
