//! The node team's decision framework (`../shared/seed/p2p-scaling-strategy.md`, "Decision
//! Framework"), and its thresholds:
//!
//! ```text
//! IF lag rate > 1%:
//!     IF duplicate-inv rate > 30%   -> deduplicate          (2-3 weeks of work)
//!     ELSE IF average peers > 150   -> segmented fanout     (3-4 weeks)
//!     ELSE                          -> grow the channel     (5 minutes)
//! otherwise                         -> do nothing
//! ```
//!
//! The thresholds come from `alerts/thresholds.toml`, the file the alert rules are checked against,
//! so the exporter, the simulator and Prometheus can only disagree about data, never about rules.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The shared thresholds file, compiled in.
pub const THRESHOLDS_TOML: &str = include_str!("../../alerts/thresholds.toml");

#[derive(Clone, Debug, PartialEq)]
pub struct Thresholds {
    pub lag_ratio: f64,
    pub duplicate_ratio: f64,
    pub average_peers: f64,
    pub lag_window: Duration,
    pub duplicate_window: Duration,
    pub peers_window: Duration,
}

#[derive(Deserialize)]
struct ThresholdsFile {
    decision: DecisionSection,
}

#[derive(Deserialize)]
struct DecisionSection {
    lag_ratio: f64,
    duplicate_ratio: f64,
    average_peers: f64,
    lag_window: String,
    duplicate_window: String,
    peers_window: String,
}

impl Thresholds {
    pub fn parse(toml_text: &str) -> Result<Thresholds, String> {
        let file: ThresholdsFile = toml::from_str(toml_text).map_err(|e| e.to_string())?;
        let d = file.decision;
        let window = |name: &str, text: &str| {
            humantime::parse_duration(text).map_err(|e| format!("decision.{name} = {text:?}: {e}"))
        };
        Ok(Thresholds {
            lag_ratio: d.lag_ratio,
            duplicate_ratio: d.duplicate_ratio,
            average_peers: d.average_peers,
            lag_window: window("lag_window", &d.lag_window)?,
            duplicate_window: window("duplicate_window", &d.duplicate_window)?,
            peers_window: window("peers_window", &d.peers_window)?,
        })
    }

    /// The thresholds shipped in `alerts/thresholds.toml`.
    pub fn shipped() -> Thresholds {
        Thresholds::parse(THRESHOLDS_TOML).expect("alerts/thresholds.toml is valid (tested)")
    }

    pub fn longest_window(&self) -> Duration {
        self.lag_window
            .max(self.duplicate_window)
            .max(self.peers_window)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    None,
    Deduplicate,
    SegmentedFanout,
    GrowChannel,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::None => "none",
            Verdict::Deduplicate => "deduplicate",
            Verdict::SegmentedFanout => "segmented_fanout",
            Verdict::GrowChannel => "grow_channel",
        }
    }

    /// The framework itself, on already-computed inputs.
    pub fn decide(
        t: &Thresholds,
        lag_ratio: f64,
        duplicate_ratio: f64,
        average_peers: f64,
    ) -> Verdict {
        if lag_ratio <= t.lag_ratio {
            Verdict::None
        } else if duplicate_ratio > t.duplicate_ratio {
            Verdict::Deduplicate
        } else if average_peers > t.average_peers {
            Verdict::SegmentedFanout
        } else {
            Verdict::GrowChannel
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_thresholds_are_the_scaling_documents() {
        let t = Thresholds::shipped();
        assert_eq!(
            (t.lag_ratio, t.duplicate_ratio, t.average_peers),
            (0.01, 0.30, 150.0)
        );
        assert_eq!(t.lag_window, Duration::from_secs(6 * 3600));
    }

    #[test]
    fn each_branch_of_the_framework() {
        let t = Thresholds::shipped();
        assert_eq!(
            Verdict::decide(&t, 0.01, 0.9, 900.0),
            Verdict::None,
            "exactly 1% is headroom"
        );
        assert_eq!(
            Verdict::decide(&t, 0.0101, 0.31, 900.0),
            Verdict::Deduplicate
        );
        assert_eq!(
            Verdict::decide(&t, 0.05, 0.30, 151.0),
            Verdict::SegmentedFanout
        );
        assert_eq!(Verdict::decide(&t, 0.05, 0.30, 150.0), Verdict::GrowChannel);
    }

    #[test]
    fn a_bad_window_is_reported_with_its_key() {
        let text = THRESHOLDS_TOML.replace("lag_window = \"6h\"", "lag_window = \"soon\"");
        let err = Thresholds::parse(&text).unwrap_err();
        assert!(err.contains("decision.lag_window"), "{err}");
    }
}
