//! `alerts/thresholds.toml`, typed: every threshold and window of the alerting rules and every
//! number the dashboards draw, plus the two settings of the generated rules (runbook address,
//! job selector). Both generators read this one struct, so neither can restate a number.
//!
//! Unknown keys are refused: a misspelt key would otherwise leave its rule at a value nobody set.

use std::fmt;
use std::path::Path;

use serde::Deserialize;

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    pub decision: Decision,
    pub page: Page,
    pub key_metrics: KeyMetrics,
    pub key_metrics_for: KeyMetricsFor,
    pub observer: Observer,
    pub tap: Tap,
    pub rules: Settings,
}

/// The scaling document's decision framework, on 6-hour inputs.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    pub lag_ratio: f64,
    pub duplicate_ratio: f64,
    pub average_peers: f64,
    pub lag_window: Window,
    pub duplicate_window: Window,
    pub peers_window: Window,
    #[serde(rename = "for")]
    pub hold: Window,
    /// The fleet verdict waits until at least this share of the reporting nodes cover the window.
    pub fleet_nodes_covered: f64,
}

impl Decision {
    /// The longest input window: a verdict needs all its inputs, so it waits for this one.
    pub fn window(&self) -> &Window {
        [&self.lag_window, &self.duplicate_window, &self.peers_window]
            .into_iter()
            .max_by_key(|w| w.seconds())
            .expect("three windows")
    }
}

/// P2PEventLagHigh, the page.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Page {
    pub lag_ratio: f64,
    pub window: Window,
    #[serde(rename = "for")]
    pub hold: Window,
    pub confirm_offset: Window,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyMetrics {
    pub capacity_usage_ratio: f64,
    pub block_propagation_p50_seconds: f64,
    pub block_propagation_p99_seconds: f64,
    pub memory_per_peer_bytes: f64,
    pub cpu_per_peer_ratio: f64,
    pub peer_churn_per_hour_ratio: f64,
    pub reorg_ratio: f64,
    pub orphan_ratio: f64,
}

/// The `for` of each key-metric warning.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyMetricsFor {
    pub capacity_usage: Window,
    pub block_propagation_p50: Window,
    pub block_propagation_p99: Window,
    pub memory_per_peer: Window,
    pub cpu_per_peer: Window,
    pub peer_churn: Window,
    pub reorg: Window,
    pub orphan: Window,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Observer {
    pub down_for: Window,
    pub absent_for: Window,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tap {
    pub disconnected_for: Window,
    pub lost_ratio: f64,
    pub window: Window,
    pub dropping_for: Window,
}

/// What differs from one deployment to the next, not from one node to the next.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Where `alerts/runbook.md` is read; each alert links `<runbook_url>#<its heading>`.
    pub runbook_url: String,
    /// One PromQL label matcher selecting the exporters' series, e.g. `job="p2p-exporter"`.
    pub job_selector: String,
}

impl Thresholds {
    pub fn load(path: &Path) -> Result<Thresholds, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Thresholds::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Thresholds, String> {
        let thresholds: Thresholds = toml::from_str(text).map_err(|e| e.to_string())?;
        thresholds.rules.validate()?;
        Ok(thresholds)
    }

    /// The label selector every dashboard query carries: the exporters' job, and the nodes
    /// picked in the `instance` variable (`.*` when "All" is picked).
    pub fn selector(&self) -> String {
        format!(r#"{}, instance=~"$instance""#, self.rules.job_selector)
    }
}

impl Settings {
    fn validate(&self) -> Result<(), String> {
        let url = &self.runbook_url;
        if !(url.starts_with("https://") || url.starts_with("http://")) || url.contains('#') {
            return Err(format!(
                "[rules] runbook_url = {url:?}: an http(s) address without a #fragment (each alert adds its own)"
            ));
        }
        // A matcher is one `name op "value"`: parsed inside a selector, it must give exactly one.
        let selector = format!("up{{{}}}", self.job_selector);
        let matchers = match promql_parser::parser::parse(&selector) {
            Ok(promql_parser::parser::Expr::VectorSelector(v)) => v.matchers.matchers.len(),
            _ => 0,
        };
        if matchers != 1 {
            return Err(format!(
                "[rules] job_selector = {:?}: not one PromQL label matcher such as job=\"p2p-exporter\"",
                self.job_selector
            ));
        }
        Ok(())
    }
}

/// A Prometheus duration of thresholds.toml (`5m`, `6h`, `90s`): written into the rules as
/// given, and spelt out in their annotations.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Window {
    text: String,
    seconds: u64,
}

impl TryFrom<String> for Window {
    type Error = String;

    fn try_from(text: String) -> Result<Window, String> {
        let seconds = parse_duration(&text)
            .ok_or_else(|| format!("{text:?} is not a Prometheus duration such as 5m or 6h"))?;
        Ok(Window { text, seconds })
    }
}

/// Whole seconds of `1h30m`-style text; units s, m, h, d, w, each once, largest first, as
/// Prometheus writes them. Sub-second windows have no use in these rules.
fn parse_duration(text: &str) -> Option<u64> {
    const UNITS: [(char, u64); 5] = [
        ('w', 604_800),
        ('d', 86_400),
        ('h', 3600),
        ('m', 60),
        ('s', 1),
    ];
    let mut rest = text;
    let mut total = 0;
    let mut next_unit = 0;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        let value: u64 = rest[..digits].parse().ok()?;
        let unit = rest[digits..].chars().next()?;
        let at = UNITS[next_unit..].iter().position(|(u, _)| *u == unit)? + next_unit;
        total += value * UNITS[at].1;
        next_unit = at + 1;
        rest = &rest[digits + 1..];
    }
    (total > 0).then_some(total)
}

impl Window {
    pub fn from_seconds(seconds: u64) -> Window {
        let mut text = String::new();
        let mut rest = seconds;
        for (unit, size) in [("h", 3600), ("m", 60), ("s", 1)] {
            if rest >= size {
                text += &format!("{}{unit}", rest / size);
                rest %= size;
            }
        }
        Window { text, seconds }
    }

    pub fn seconds(&self) -> u64 {
        self.seconds
    }

    /// `5 minutes`, `6 hours`, `1 hour`.
    pub fn spelt(&self) -> String {
        let (count, unit) = self.largest_unit();
        format!("{count} {unit}{}", if count == 1 { "" } else { "s" })
    }

    /// `5-minute`, `6-hour`, as in "every 5-minute window".
    pub fn adjective(&self) -> String {
        let (count, unit) = self.largest_unit();
        format!("{count}-{unit}")
    }

    fn largest_unit(&self) -> (u64, &'static str) {
        [(3600, "hour"), (60, "minute"), (1, "second")]
            .into_iter()
            .find(|(size, _)| self.seconds.is_multiple_of(*size))
            .map(|(size, unit)| (self.seconds / size, unit))
            .expect("every count of seconds divides by 1")
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// `0.01` -> `1%`, `0.001` -> `0.1%`: ratios as people read them.
pub fn percent(ratio: f64) -> String {
    format!("{}%", (ratio * 10_000.0).round() / 100.0)
}

/// `0.1` -> `100 ms`, `2` -> `2 s`.
pub fn duration_text(seconds: f64) -> String {
    if seconds < 1.0 {
        format!("{} ms", (seconds * 1000.0 * 1000.0).round() / 1000.0)
    } else {
        format!("{seconds} s")
    }
}

/// `10485760` -> `10 MiB`: the largest binary unit that divides it.
pub fn bytes_text(bytes: f64) -> String {
    [(1u64 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")]
        .into_iter()
        .find(|(size, _)| bytes >= *size as f64 && bytes % *size as f64 == 0.0)
        .map(|(size, unit)| format!("{} {unit}", bytes / size as f64))
        .unwrap_or_else(|| format!("{bytes} bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(text: &str) -> Result<Window, String> {
        Window::try_from(text.to_owned())
    }

    #[test]
    fn windows_are_prometheus_durations_spelt_out() {
        assert_eq!(window("6h").unwrap().seconds(), 21_600);
        assert_eq!(window("1h30m").unwrap().seconds(), 5400);
        assert_eq!(window("5m").unwrap().spelt(), "5 minutes");
        assert_eq!(window("1h").unwrap().spelt(), "1 hour");
        assert_eq!(window("90m").unwrap().spelt(), "90 minutes");
        assert_eq!(window("5m").unwrap().adjective(), "5-minute");
        assert_eq!(Window::from_seconds(600).to_string(), "10m");
        assert_eq!(Window::from_seconds(5400).to_string(), "1h30m");
        for bad in ["", "6", "h", "6 hours", "30m1h", "5m5m", "500ms", "0m"] {
            assert!(window(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn numbers_read_as_people_write_them() {
        assert_eq!(percent(0.01), "1%");
        assert_eq!(percent(0.001), "0.1%");
        assert_eq!(percent(0.3), "30%");
        assert_eq!(duration_text(0.1), "100 ms");
        assert_eq!(duration_text(2.0), "2 s");
        assert_eq!(bytes_text(10_485_760.0), "10 MiB");
        assert_eq!(bytes_text(1536.0), "1536 bytes");
    }
}
