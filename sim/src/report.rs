//! Scenario x design runs, the decision framework's verdict on the baseline, the channel-size
//! recommendation, and the three renderings: a terminal table, JSON and a self-contained HTML page.

use std::fmt::Write as _;
use std::time::Duration;

use p2p_decision::{Thresholds, Verdict};
use serde::Serialize;

use crate::design::{Broadcast, DesignKind};
use crate::driver::{run_design, Build};
use crate::figures::{figures, Figures};
use crate::scenario::Scenario;
use crate::stats::RunResult;

/// The node's router as it is: what the decision framework judges.
pub const BASELINE: DesignKind = DesignKind::Broadcast2048;
/// The channel the size answer is measured on, and the one it moves to when a backlog outgrows
/// that: 2^16 and 2^20 events.
const MEASURED_ON: [usize; 2] = [1 << 16, 1 << 20];

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Baseline {
    /// Its JSON key stays `strategy`, which consumers of the report parse.
    #[serde(rename = "strategy")]
    pub design: String,
    pub lag_ratio: f64,
    pub duplicate_ratio: f64,
    pub average_peers: f64,
    /// The framework's choice: none, deduplicate, segmented_fanout or grow_channel.
    pub verdict: String,
}

/// What channel the node's router needs on this traffic, from one run of it on a channel large
/// enough to lose nothing. Two answers, neither of which grows with the length of the run:
///
/// - **steady overload**: events arrive faster than the consumer handles them over the window;
///   the backlog grows for as long as the traffic lasts and no capacity fixes it;
/// - **burst absorption**: otherwise, the largest backlog the traffic built, and the power of
///   two (tokio rounds capacities up to one) that holds it: on that channel nothing is lost.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ChannelSize {
    /// Events sent per second of the window.
    pub arrival_rate: f64,
    /// Events the consumer handled per second it was busy.
    pub service_rate: f64,
    /// Arrival rate over service rate.
    pub load: f64,
    pub steady_overload: bool,
    /// The largest backlog the traffic built; none under steady overload (there it only says
    /// how long the run was).
    pub peak_backlog: Option<u64>,
    /// The power of two that holds the backlog; none under steady overload, or when the backlog
    /// outgrew the largest channel measured.
    pub capacity: Option<usize>,
    /// The channel the figures were measured on.
    pub measured_on: usize,
}

impl ChannelSize {
    fn of(run: &RunResult, measured_on: usize) -> ChannelSize {
        let window = run.series.last().map_or(0.0, |s| s.t_seconds);
        let busy = run.consumer_busy_seconds.unwrap_or(window);
        let arrival_rate = run.events_sent as f64 / window.max(f64::MIN_POSITIVE);
        let service_rate = if busy > 0.0 {
            run.events_received as f64 / busy
        } else {
            f64::INFINITY
        };
        let load = arrival_rate / service_rate;
        let steady_overload = load >= 1.0;
        let held = !steady_overload && run.events_lost == 0;
        ChannelSize {
            arrival_rate,
            service_rate,
            load,
            steady_overload,
            peak_backlog: (!steady_overload).then_some(run.peak_queued),
            capacity: held.then(|| (run.peak_queued as usize).next_power_of_two()),
            measured_on,
        }
    }

    /// The answer in plain words.
    pub fn describe(&self) -> String {
        let rates = format!(
            "events arrive at {:.0}/s, the consumer handles {:.0}/s while busy (load {:.0}%)",
            self.arrival_rate,
            self.service_rate,
            self.load * 100.0
        );
        match (self.steady_overload, self.capacity, self.peak_backlog) {
            (true, _, _) => format!(
                "steady overload: {rates}; the backlog grows for as long as this traffic lasts, so no channel size fixes it"
            ),
            (false, Some(capacity), Some(backlog)) => format!(
                "bursts built a backlog of at most {backlog} events; a channel of {capacity} holds it and loses nothing ({rates})"
            ),
            _ => format!(
                "a burst built a backlog beyond {} events: no channel up to that size holds it ({rates})",
                self.measured_on
            ),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ScenarioReport {
    pub scenario: String,
    pub summary: String,
    pub duration_seconds: f64,
    pub runs: Vec<RunResult>,
    pub baseline: Baseline,
    /// Designs whose worst subscriber lagged under 1%.
    pub under_1pct_lag: Vec<String>,
    pub channel_size: ChannelSize,
    /// The scaling document's memory and pressure figures on this traffic.
    pub figures: Figures,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    /// The workload's seed; none for a replay.
    pub seed: Option<u64>,
    pub scenarios: Vec<ScenarioReport>,
}

/// Runs one design for a report: its name, how to build it, and where to report progress.
pub type Runner<'r> = &'r mut dyn FnMut(&str, Build<'_>, &mut dyn FnMut(f64)) -> RunResult;

/// Runs every scenario against every design. `duration` overrides each scenario's own;
/// `progress` is told the scenario, the run and the share of it done.
pub fn simulate(
    scenarios: &[Scenario],
    designs: &[DesignKind],
    duration: Option<Duration>,
    seed: u64,
    progress: &mut dyn FnMut(&str, &str, f64),
) -> Report {
    let reports = scenarios
        .iter()
        .map(|scenario| {
            let duration = duration.unwrap_or(scenario.duration);
            let mut runner = |name: &str, build: Build<'_>, done: &mut dyn FnMut(f64)| {
                run_design(scenario, name, build, duration, seed, done)
            };
            scenario_report(
                scenario.name,
                scenario.summary,
                duration,
                designs,
                &mut runner,
                &mut |name, done| progress(scenario.name, name, done),
            )
        })
        .collect();
    Report {
        seed: Some(seed),
        scenarios: reports,
    }
}

/// One traffic (a scenario, or a recording) against every design, with the framework's verdict
/// on the baseline and the channel-size recommendation. `run` runs one design on that traffic.
pub fn scenario_report(
    name: &str,
    summary: &str,
    duration: Duration,
    designs: &[DesignKind],
    run: Runner<'_>,
    progress: &mut dyn FnMut(&str, f64),
) -> ScenarioReport {
    let mut run_kind = |kind: DesignKind, run: Runner<'_>| {
        run(
            kind.name(),
            &|max_peers, cost, observer| kind.build(max_peers, cost, observer),
            &mut |done| progress(kind.name(), done),
        )
    };
    let mut runs: Vec<RunResult> = designs
        .iter()
        .map(|kind| run_kind(*kind, &mut *run))
        .collect();
    let baseline_run = match runs.iter().find(|r| r.design == BASELINE.name()) {
        Some(found) => found.clone(),
        None => run_kind(BASELINE, &mut *run),
    };
    let thresholds = Thresholds::shipped();
    let verdict = Verdict::decide(
        &thresholds,
        baseline_run.lag_ratio,
        baseline_run.duplicate_ratio,
        baseline_run.average_peers,
    );
    let channel_size = channel_size(run, progress);
    let figures = figures(&runs, &baseline_run);
    runs.sort_by_key(|r| DesignKind::parse(&r.design));
    ScenarioReport {
        scenario: name.to_owned(),
        summary: summary.to_owned(),
        duration_seconds: duration.as_secs_f64(),
        under_1pct_lag: runs
            .iter()
            .filter(|r| r.criteria.lag_under_1pct)
            .map(|r| r.design.clone())
            .collect(),
        baseline: Baseline {
            design: BASELINE.name().to_owned(),
            lag_ratio: baseline_run.lag_ratio,
            duplicate_ratio: baseline_run.duplicate_ratio,
            average_peers: baseline_run.average_peers,
            verdict: verdict.as_str().to_owned(),
        },
        runs,
        channel_size,
        figures,
    }
}

/// Runs the node's router on a channel that loses nothing (2^16 events, then 2^20 when a burst
/// outgrows that and the consumer is not overloaded) and reads the channel size off it.
fn channel_size(run: Runner<'_>, progress: &mut dyn FnMut(&str, f64)) -> ChannelSize {
    let mut size = None;
    for capacity in MEASURED_ON {
        let name = format!("broadcast-{capacity}");
        let result = run(
            &name,
            &|max_peers, cost, observer| {
                Box::new(Broadcast::new(capacity, max_peers, cost, observer))
            },
            &mut |done| progress(&name, done),
        );
        let measured = ChannelSize::of(&result, capacity);
        let answered = measured.steady_overload || measured.capacity.is_some();
        size = Some(measured);
        if answered {
            break;
        }
    }
    size.expect("at least one channel is measured")
}

fn percent(ratio: f64) -> String {
    format!("{:.2}%", ratio * 100.0)
}

fn millis(seconds: Option<f64>) -> String {
    match seconds {
        Some(s) if s < 0.001 => format!("{:.0}us", s * 1e6),
        Some(s) => format!("{:.1}ms", s * 1e3),
        None => "-".to_owned(),
    }
}

fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 20 => format!("{:.1}MiB", n as f64 / (1 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1}KiB", n as f64 / 1024.0),
        n => format!("{n}B"),
    }
}

const HEADERS: [&str; 12] = [
    "design",
    "lag",
    "lost",
    "dup",
    "deliv p50",
    "deliv p99",
    "prop avg",
    "prop p50",
    "prop p99",
    "peak use",
    "held",
    "criteria",
];

fn row(r: &RunResult) -> [String; 12] {
    let failed: Vec<&str> = [
        (r.criteria.lag_under_1pct, "lag"),
        (r.criteria.propagation_avg_under_100ms, "avg"),
        (r.criteria.propagation_p99_under_500ms, "p99"),
        (r.criteria.memory_stable, "mem"),
    ]
    .iter()
    .filter(|(ok, _)| !ok)
    .map(|(_, name)| *name)
    .collect();
    [
        r.design.clone(),
        percent(r.lag_ratio),
        r.events_lost.to_string(),
        percent(r.duplicate_ratio),
        millis(r.delivery_latency_p50_seconds),
        millis(r.delivery_latency_p99_seconds),
        millis(r.block_propagation_avg_seconds),
        millis(r.block_propagation_p50_seconds),
        millis(r.block_propagation_p99_seconds),
        format!(
            "{:.0}% {}",
            r.peak_channel_usage_ratio * 100.0,
            r.peak_channel
        ),
        bytes(r.peak_held_payload_bytes),
        if failed.is_empty() {
            "PASS".to_owned()
        } else {
            format!("FAIL({})", failed.join(","))
        },
    ]
}

fn conclusion(s: &ScenarioReport) -> Vec<String> {
    let b = &s.baseline;
    let fixes = if s.under_1pct_lag.is_empty() {
        "none".to_owned()
    } else {
        s.under_1pct_lag.join(", ")
    };
    vec![
        format!(
            "verdict on {}: lag {}, duplicate invs {}, average peers {:.0} -> {}",
            b.design,
            percent(b.lag_ratio),
            percent(b.duplicate_ratio),
            b.average_peers,
            b.verdict
        ),
        format!("under 1% lag: {fixes}"),
        format!("channel size: {}", s.channel_size.describe()),
    ]
}

/// The figures section: the scaling document's memory and pressure claims on this traffic.
fn figure_lines(s: &ScenarioReport) -> Vec<String> {
    let f = &s.figures;
    let memory: Vec<String> = f
        .memory
        .iter()
        .map(|m| {
            format!(
                "{} {} x {}B = {} fixed + {} held ({:.2}x)",
                m.design,
                m.slots,
                m.slot_bytes,
                bytes(m.fixed_bytes),
                bytes(m.peak_held_payload_bytes),
                m.vs_baseline
            )
        })
        .collect();
    vec![
        format!(
            "figures: an event is {}B, a broadcast slot {}B; memory, fixed slots plus peak held payload, against {BASELINE}: {}",
            f.event_bytes,
            f.slot_bytes,
            memory.join("; ")
        ),
        format!(
            "figures: deduplication keeps {} of the events out of the channel; with {} subscriber(s) shared bodies save {} of payload memory",
            percent(f.dedup_event_share),
            f.subscribers,
            percent(f.zero_copy_memory_saving)
        ),
    ]
}

/// The report as aligned text tables, one per scenario.
pub fn render_table(report: &Report) -> String {
    let mut out = String::new();
    for s in &report.scenarios {
        let seed = report
            .seed
            .map(|s| format!(", seed {s}"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "== {} ({:.0} s simulated{seed})\n   {}",
            s.scenario, s.duration_seconds, s.summary
        );
        let rows: Vec<[String; 12]> = s.runs.iter().map(row).collect();
        let widths: Vec<usize> = (0..HEADERS.len())
            .map(|i| {
                rows.iter()
                    .map(|r| r[i].len())
                    .chain([HEADERS[i].len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |cells: &[String]| {
            let padded: Vec<String> = cells
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            padded.join("  ").trim_end().to_owned()
        };
        let headers: Vec<String> = HEADERS.iter().map(|h| h.to_string()).collect();
        let _ = writeln!(out, "{}", line(&headers));
        for r in &rows {
            let _ = writeln!(out, "{}", line(r));
        }
        for text in conclusion(s).into_iter().chain(figure_lines(s)) {
            let _ = writeln!(out, "{text}");
        }
        out.push('\n');
    }
    out
}

pub fn render_json(report: &Report) -> String {
    serde_json::to_string_pretty(report).expect("the report serialises")
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const PALETTE: [&str; 10] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
    "#7f7f7f", "#bcbd22",
];

/// A line chart of one value over time, one line per run, as inline SVG.
fn chart(title: &str, runs: &[RunResult], value: &dyn Fn(&crate::stats::Sample) -> f64) -> String {
    let (width, height, left, bottom) = (640.0, 220.0, 50.0, 30.0);
    let t_max = runs
        .iter()
        .flat_map(|r| r.series.last())
        .map(|s| s.t_seconds)
        .fold(1.0_f64, f64::max);
    let y_max = runs
        .iter()
        .flat_map(|r| r.series.iter().map(value))
        .fold(0.0_f64, f64::max)
        .max(0.01);
    let x = |t: f64| left + (width - left - 10.0) * t / t_max;
    let y = |v: f64| (height - bottom) - (height - bottom - 10.0) * v / y_max;
    let mut svg = format!(
        r#"<figure><figcaption>{}</figcaption><svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">"#,
        escape(title)
    );
    let _ = write!(
        svg,
        r##"<line x1="{left}" y1="{b}" x2="{r}" y2="{b}" stroke="#888"/><line x1="{left}" y1="10" x2="{left}" y2="{b}" stroke="#888"/><text x="4" y="14" font-size="11">{top:.1}%</text><text x="4" y="{b}" font-size="11">0%</text><text x="{left}" y="{t}" font-size="11">0 s</text><text x="{r2}" y="{t}" font-size="11" text-anchor="end">{t_max:.0} s</text>"##,
        b = height - bottom,
        r = width - 10.0,
        top = y_max * 100.0,
        t = height - 10.0,
        r2 = width - 10.0,
    );
    for (i, r) in runs.iter().enumerate() {
        let points: Vec<String> = r
            .series
            .iter()
            .map(|s| format!("{:.1},{:.1}", x(s.t_seconds), y(value(s))))
            .collect();
        let _ = write!(
            svg,
            r#"<polyline fill="none" stroke="{}" stroke-width="1.5" points="{}"><title>{}</title></polyline>"#,
            PALETTE[i % PALETTE.len()],
            points.join(" "),
            escape(&r.design)
        );
    }
    svg.push_str("</svg><div class=\"legend\">");
    for (i, r) in runs.iter().enumerate() {
        let _ = write!(
            svg,
            r#"<span><i style="background:{}"></i>{}</span>"#,
            PALETTE[i % PALETTE.len()],
            escape(&r.design)
        );
    }
    svg.push_str("</div></figure>");
    svg
}

/// One HTML page with inline CSS and SVG: it opens offline, and loads nothing.
pub fn render_html(report: &Report) -> String {
    let mut html = String::from(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>P2P router what-if simulation</title><style>
body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}
table{border-collapse:collapse;font-size:13px;margin:1em 0}th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}
th:first-child,td:first-child{text-align:left}.pass{color:#197a1e;font-weight:bold}.fail{color:#b3261e;font-weight:bold}
figure{display:inline-block;margin:0 1em 1em 0}figcaption{font-weight:bold;font-size:13px}
.legend span{margin-right:1em;font-size:12px}.legend i{display:inline-block;width:10px;height:10px;margin-right:4px}
.verdict{background:#f3f3f3;padding:.6em 1em;border-left:4px solid #1f77b4}
</style></head><body><h1>P2P router what-if simulation</h1>
<p>Each scenario ran in virtual time against every router design. Lag is the worst subscriber's
lagged / (received + lagged); criteria are the scaling document's: lag &lt; 1%, average block propagation &lt;
100 ms, p99 &lt; 500 ms, queued memory stable. How to read this page: docs/simulator.md.</p>"#,
    );
    if let Some(seed) = report.seed {
        let _ = write!(html, "<p>Seed {seed}.</p>");
    }
    for s in &report.scenarios {
        let _ = write!(
            html,
            "<h2>{}</h2><p>{} ({:.0} s simulated)</p><table><tr>",
            escape(&s.scenario),
            escape(&s.summary),
            s.duration_seconds
        );
        for h in HEADERS {
            let _ = write!(html, "<th>{}</th>", escape(h));
        }
        html.push_str("</tr>");
        for r in &s.runs {
            html.push_str("<tr>");
            let cells = row(r);
            for (i, cell) in cells.iter().enumerate() {
                let class = match (i, r.pass) {
                    (11, true) => " class=\"pass\"",
                    (11, false) => " class=\"fail\"",
                    _ => "",
                };
                let _ = write!(html, "<td{class}>{}</td>", escape(cell));
            }
            html.push_str("</tr>");
        }
        html.push_str("</table><div class=\"verdict\">");
        for text in conclusion(s).into_iter().chain(figure_lines(s)) {
            let _ = write!(html, "<p>{}</p>", escape(&text));
        }
        html.push_str("</div>");
        html.push_str(&chart("Lag ratio over time", &s.runs, &|p| p.lag_ratio));
        html.push_str(&chart("Peak channel usage over time", &s.runs, &|p| {
            p.usage_ratio
        }));
    }
    html.push_str("</body></html>\n");
    html
}
