//! The decision engine: the framework of `p2p-decision`, evaluated on the exporter's own counters
//! over the framework's windows, for `GET /api/v1/decision` and the `decide` subcommand.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

pub use p2p_decision::{Thresholds, Verdict};

use crate::recorder::{Recorder, Totals};

/// How often the engine samples the recorder's counters.
pub const SAMPLE_PERIOD: Duration = Duration::from_secs(10);

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Input {
    pub value: f64,
    pub threshold: f64,
    pub window_seconds: u64,
    /// How much of the window the exporter has data for; less than the window after a restart.
    pub covered_seconds: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Inputs {
    pub lag_ratio: Input,
    /// The subscriber with the worst lag ratio, if any subscriber received or lagged.
    pub worst_subscriber: Option<String>,
    pub duplicate_ratio: Input,
    pub average_peers: Input,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub verdict: Verdict,
    pub reason: String,
    pub inputs: Inputs,
}

#[derive(Clone, Debug)]
struct Sample {
    at: Instant,
    totals: Totals,
}

/// Keeps enough samples of the recorder's counters to evaluate every window.
pub struct DecisionEngine {
    thresholds: Thresholds,
    recorder: Arc<Recorder>,
    history: Mutex<VecDeque<Sample>>,
}

impl DecisionEngine {
    pub fn new(thresholds: Thresholds, recorder: Arc<Recorder>) -> DecisionEngine {
        let engine = DecisionEngine {
            thresholds,
            recorder,
            history: Mutex::new(VecDeque::new()),
        };
        engine.sample();
        engine
    }

    /// Records the recorder's totals now, forgetting what every window has left behind.
    pub fn sample(&self) {
        let now = Instant::now();
        let keep = self.thresholds.longest_window() + SAMPLE_PERIOD;
        let mut history = self.history.lock().unwrap_or_else(|e| e.into_inner());
        history.push_back(Sample {
            at: now,
            totals: self.recorder.totals(),
        });
        // Keep one sample at or before the start of the longest window, as its baseline.
        while history.len() > 2 && now.saturating_duration_since(history[1].at) >= keep {
            history.pop_front();
        }
    }

    /// Samples every [`SAMPLE_PERIOD`], forever.
    pub async fn run(self: Arc<Self>) {
        let mut ticker = tokio::time::interval(SAMPLE_PERIOD);
        loop {
            ticker.tick().await;
            self.sample();
        }
    }

    /// The verdict from the samples so far and the totals right now.
    pub fn evaluate(&self) -> Decision {
        let now = Sample {
            at: Instant::now(),
            totals: self.recorder.totals(),
        };
        let history = self.history.lock().unwrap_or_else(|e| e.into_inner());
        evaluate(
            &self.thresholds,
            history.iter().chain(std::iter::once(&now)),
        )
    }
}

/// The oldest sample no older than `window` before the newest, and the newest.
fn window_ends<'a>(samples: &[&'a Sample], window: Duration) -> (&'a Sample, &'a Sample) {
    let newest = samples[samples.len() - 1];
    let oldest = samples
        .iter()
        .find(|s| newest.at.saturating_duration_since(s.at) <= window)
        .copied()
        .unwrap_or(newest);
    (oldest, newest)
}

fn evaluate<'a>(t: &Thresholds, samples: impl Iterator<Item = &'a Sample>) -> Decision {
    let samples: Vec<&Sample> = samples.collect();
    let input = |value: f64, threshold: f64, window: Duration, from: &Sample, to: &Sample| Input {
        value,
        threshold,
        window_seconds: window.as_secs(),
        covered_seconds: to.at.saturating_duration_since(from.at).as_secs(),
    };

    let (from, to) = window_ends(&samples, t.lag_window);
    let mut worst: Option<(String, f64)> = None;
    for (name, received, lagged) in &to.totals.subscribers {
        let (received0, lagged0) = from
            .totals
            .subscribers
            .iter()
            .find(|(n, _, _)| n == name)
            .map_or((0, 0), |(_, r, l)| (*r, *l));
        // A counter below its baseline means the source restarted: count from zero.
        let delta = |now: u64, then: u64| if now >= then { now - then } else { now };
        let (received, lagged) = (delta(*received, received0), delta(*lagged, lagged0));
        if received + lagged == 0 {
            continue;
        }
        let ratio = lagged as f64 / (received + lagged) as f64;
        if worst.as_ref().is_none_or(|(_, w)| ratio > *w) {
            worst = Some((name.clone(), ratio));
        }
    }
    let lag_ratio = worst.as_ref().map_or(0.0, |(_, r)| *r);
    let lag = input(lag_ratio, t.lag_ratio, t.lag_window, from, to);

    let (from, to) = window_ends(&samples, t.duplicate_window);
    let inv = to
        .totals
        .inv_messages
        .saturating_sub(from.totals.inv_messages);
    let duplicates = to
        .totals
        .inv_duplicate_messages
        .saturating_sub(from.totals.inv_duplicate_messages);
    let duplicate_ratio = if inv == 0 {
        0.0
    } else {
        duplicates as f64 / inv as f64
    };
    let duplicate = input(
        duplicate_ratio,
        t.duplicate_ratio,
        t.duplicate_window,
        from,
        to,
    );

    let (from, to) = window_ends(&samples, t.peers_window);
    let in_window: Vec<_> = samples.iter().filter(|s| s.at >= from.at).collect();
    let average_peers =
        in_window.iter().map(|s| s.totals.peers as f64).sum::<f64>() / in_window.len() as f64;
    let peers = input(average_peers, t.average_peers, t.peers_window, from, to);

    let verdict = Verdict::decide(t, lag_ratio, duplicate_ratio, average_peers);
    let pct = |v: f64| format!("{:.2}%", v * 100.0);
    let reason = match verdict {
        Verdict::None => format!(
            "lag {} is within {}: do nothing (metrics show headroom)",
            pct(lag_ratio),
            pct(t.lag_ratio)
        ),
        Verdict::Deduplicate => format!(
            "lag {} > {} and duplicate inv {} > {}: deduplicate inv before the channel (scaling document: 2-3 weeks)",
            pct(lag_ratio),
            pct(t.lag_ratio),
            pct(duplicate_ratio),
            pct(t.duplicate_ratio)
        ),
        Verdict::SegmentedFanout => format!(
            "lag {} > {}, duplicates {} <= {}, average peers {:.1} > {}: segment the channel (scaling document: 3-4 weeks)",
            pct(lag_ratio),
            pct(t.lag_ratio),
            pct(duplicate_ratio),
            pct(t.duplicate_ratio),
            average_peers,
            t.average_peers
        ),
        Verdict::GrowChannel => format!(
            "lag {} > {}, duplicates {} <= {}, average peers {:.1} <= {}: grow EVENT_CHANNEL_SIZE (scaling document: 5 minutes)",
            pct(lag_ratio),
            pct(t.lag_ratio),
            pct(duplicate_ratio),
            pct(t.duplicate_ratio),
            average_peers,
            t.average_peers
        ),
    };
    Decision {
        verdict,
        reason,
        inputs: Inputs {
            lag_ratio: lag,
            worst_subscriber: worst.map(|(name, _)| name),
            duplicate_ratio: duplicate,
            average_peers: peers,
        },
    }
}

/// `decide`: asks a running exporter and prints its verdict.
pub async fn print(url: &str, json: bool) -> anyhow::Result<()> {
    let body = fetch(url, "/api/v1/decision").await?;
    if json {
        println!("{body}");
        return Ok(());
    }
    let decision: Decision = serde_json::from_str(&body)
        .map_err(|e| anyhow::anyhow!("{} did not answer with a decision: {e}", url))?;
    let i = &decision.inputs;
    let line = |name: &str, input: &Input, value: String, threshold: String| {
        println!(
            "  {name:<16} {value:>9}  (threshold {threshold}, window {}, {} covered)",
            humantime::format_duration(Duration::from_secs(input.window_seconds)),
            humantime::format_duration(Duration::from_secs(input.covered_seconds)),
        )
    };
    println!("verdict: {}", decision.verdict.as_str());
    println!("reason:  {}", decision.reason);
    let pct = |v: f64| format!("{:.2}%", v * 100.0);
    line(
        "lag ratio",
        &i.lag_ratio,
        pct(i.lag_ratio.value),
        pct(i.lag_ratio.threshold),
    );
    line(
        "duplicate ratio",
        &i.duplicate_ratio,
        pct(i.duplicate_ratio.value),
        pct(i.duplicate_ratio.threshold),
    );
    line(
        "average peers",
        &i.average_peers,
        format!("{:.1}", i.average_peers.value),
        format!("{}", i.average_peers.threshold),
    );
    Ok(())
}

/// A plain HTTP/1.1 GET: `decide` talks to one exporter on a trusted network.
async fn fetch(base: &str, path: &str) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let authority = base
        .strip_prefix("http://")
        .ok_or_else(|| anyhow::anyhow!("--url must start with http:// (got {base:?})"))?
        .trim_end_matches('/');
    let mut stream = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::TcpStream::connect(authority),
    )
    .await
    .map_err(|_| anyhow::anyhow!("connecting to {base} timed out"))?
    .map_err(|e| anyhow::anyhow!("cannot connect to {base}: {e}"))?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .map_err(|_| anyhow::anyhow!("{base} did not answer within 10 s"))??;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow::anyhow!("{base} sent a malformed HTTP response"))?;
    let status = head.split_whitespace().nth(1).unwrap_or("?");
    if status != "200" {
        anyhow::bail!("{base}{path} answered HTTP {status}");
    }
    Ok(body.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn thresholds() -> Thresholds {
        Thresholds::shipped()
    }

    fn sample(
        at: Instant,
        subscribers: &[(&str, u64, u64)],
        inv: u64,
        dup: u64,
        peers: i64,
    ) -> Sample {
        Sample {
            at,
            totals: Totals {
                subscribers: subscribers
                    .iter()
                    .map(|(n, r, l)| (n.to_string(), *r, *l))
                    .collect(),
                inv_messages: inv,
                inv_duplicate_messages: dup,
                peers,
            },
        }
    }

    #[test]
    fn inputs_are_deltas_over_each_window_and_the_worst_subscriber_counts() {
        let t = Thresholds {
            lag_window: Duration::from_secs(60),
            duplicate_window: Duration::from_secs(60),
            peers_window: Duration::from_secs(60),
            ..thresholds()
        };
        let t0 = Instant::now();
        let s = [
            // Outside every window: its big lag must not count.
            sample(t0, &[("consumer", 0, 0), ("rpc", 0, 0)], 0, 0, 500),
            sample(
                t0 + Duration::from_secs(30),
                &[("consumer", 1000, 900), ("rpc", 0, 0)],
                100,
                90,
                100,
            ),
            sample(
                t0 + Duration::from_secs(60),
                &[("consumer", 2000, 900), ("rpc", 100, 0)],
                200,
                150,
                160,
            ),
            sample(
                t0 + Duration::from_secs(90),
                &[("consumer", 2950, 950), ("rpc", 190, 10)],
                300,
                170,
                190,
            ),
        ];
        let decision = evaluate(&t, s.iter());
        // Baseline t0+30: consumer 1950 received, 50 lagged (2.5%); rpc 190 and 10 (5%).
        assert_eq!(decision.inputs.lag_ratio.value, 0.05);
        assert_eq!(decision.inputs.worst_subscriber.as_deref(), Some("rpc"));
        assert_eq!(decision.inputs.lag_ratio.covered_seconds, 60);
        assert_eq!(decision.inputs.duplicate_ratio.value, 80.0 / 200.0);
        assert_eq!(
            decision.inputs.average_peers.value,
            (100.0 + 160.0 + 190.0) / 3.0
        );
        assert_eq!(decision.verdict, Verdict::Deduplicate);
    }

    #[test]
    fn a_restarted_source_is_counted_from_zero_not_as_negative() {
        let t = thresholds();
        let t0 = Instant::now();
        let s = [
            sample(t0, &[("consumer", 10_000, 5_000)], 100, 10, 20),
            sample(
                t0 + Duration::from_secs(10),
                &[("consumer", 990, 10)],
                10,
                1,
                20,
            ),
        ];
        let decision = evaluate(&t, s.iter());
        assert_eq!(decision.inputs.lag_ratio.value, 0.01);
        assert_eq!(decision.verdict, Verdict::None);
    }

    #[test]
    fn no_traffic_means_no_lag() {
        let t = thresholds();
        let t0 = Instant::now();
        let decision = evaluate(&t, [sample(t0, &[], 0, 0, 0)].iter());
        assert_eq!(decision.verdict, Verdict::None);
        assert_eq!(decision.inputs.worst_subscriber, None);
    }
}
