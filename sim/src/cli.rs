//! What the exporter's `simulate` subcommand does once its flags are parsed: resolve names, run,
//! print the table or the JSON, write the HTML report, and draw a progress bar on a terminal.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use p2p_workload::TICK;

use crate::design::DesignKind;
use crate::driver::{run_design, Build};
use crate::report::{render_html, render_json, render_table, scenario_report, simulate, Report};
use crate::scenario::{self, Scenario};
use p2p_recording::{Cost, Header, Mode, RecordingSink, RecordingWriter, Source};

pub struct Options {
    /// Scenario names, or `all`.
    pub scenarios: Vec<String>,
    /// Design names, or `all`.
    pub designs: Vec<String>,
    pub duration: Option<Duration>,
    pub seed: u64,
    pub json: bool,
    pub report: Option<PathBuf>,
    /// Record what the one scenario's peers hand the one design to this file (docs/recording.md).
    pub record: Option<PathBuf>,
}

/// With `--record`, exactly one scenario and one design: a recording holds one run. The error
/// is one line.
pub fn check_record(options: &Options) -> Result<(), String> {
    let single = |names: &[String]| names.len() == 1 && names[0] != "all";
    if options.record.is_some() && !(single(&options.scenarios) && single(&options.designs)) {
        return Err("--record needs exactly one --scenario and one --design (not all)".into());
    }
    Ok(())
}

/// The recorded run, and the report of that one design.
fn record_run(
    scenario: &Scenario,
    kind: DesignKind,
    options: &Options,
    path: &Path,
    progress: &mut dyn FnMut(&str, &str, f64),
) -> std::io::Result<Report> {
    let duration = options.duration.unwrap_or(scenario.duration);
    let ticks = (duration.as_nanos() / TICK.as_nanos()).max(1) as u32;
    let header = Header {
        capacity: kind.capacity().map(|c| c as u64),
        max_peers: Some(scenario.max_peers() as u64),
        scenario: Some(scenario.name.to_owned()),
        design: Some(kind.name().to_owned()),
        cost: Some(Cost::from(&scenario.cost)),
        ..Header::new(Source::Embedded)
    };
    let writer = RecordingWriter::create(path, &header, Mode::Lossless)?;
    let mut recording = Some(writer.recording());
    let mut runner = |name: &str, build: Build<'_>, done: &mut dyn FnMut(f64)| {
        let seed = options.seed;
        match (name == kind.name()).then(|| recording.take()).flatten() {
            Some(recording) => run_design(
                scenario,
                name,
                &|max_peers, cost, observer| {
                    // The run's clock is virtual: the recording starts on it.
                    let recording = recording.clone().starting_now();
                    Box::new(RecordingSink::new(
                        build(max_peers, cost, observer),
                        recording,
                    ))
                },
                duration,
                seed,
                done,
            ),
            _ => run_design(scenario, name, build, duration, seed, done),
        }
    };
    let report = scenario_report(
        scenario.name,
        scenario.summary,
        duration,
        &[kind],
        &mut runner,
        &mut |name, done| progress(scenario.name, name, done),
    );
    let counts = writer.finish(TICK * ticks)?;
    let dropped = counts.dropped.load(std::sync::atomic::Ordering::Relaxed);
    if dropped > 0 {
        return Err(std::io::Error::other(format!(
            "the recording lost {dropped} arrivals"
        )));
    }
    Ok(Report {
        seed: Some(options.seed),
        scenarios: vec![report],
    })
}

/// `Ok(name)` for a known scenario or `all`; otherwise a one-line error naming the valid ones.
pub fn scenario_name(name: &str) -> Result<String, String> {
    if name == "all" || scenario::NAMES.contains(&name) {
        Ok(name.to_owned())
    } else {
        Err(format!(
            "unknown scenario {name:?}; valid: all, {}",
            scenario::NAMES.join(", ")
        ))
    }
}

/// `Ok(name)` for a known design or `all`; otherwise a one-line error naming the valid ones.
pub fn design_name(name: &str) -> Result<String, String> {
    if name == "all" || DesignKind::parse(name).is_some() {
        Ok(name.to_owned())
    } else {
        let names: Vec<_> = DesignKind::ALL.iter().map(|k| k.name()).collect();
        Err(format!(
            "unknown design {name:?}; valid: all, {}",
            names.join(", ")
        ))
    }
}

fn scenarios(names: &[String]) -> Vec<Scenario> {
    if names.iter().any(|n| n == "all") {
        return scenario::all();
    }
    let mut picked: Vec<Scenario> = Vec::new();
    for name in names {
        if let Some(s) = scenario::by_name(name) {
            if !picked.iter().any(|p| p.name == s.name) {
                picked.push(s);
            }
        }
    }
    picked
}

fn designs(names: &[String]) -> Vec<DesignKind> {
    if names.iter().any(|n| n == "all") {
        return DesignKind::ALL.to_vec();
    }
    let mut picked: Vec<DesignKind> = names.iter().filter_map(|n| DesignKind::parse(n)).collect();
    picked.sort();
    picked.dedup();
    picked
}

/// Runs the simulation and writes its outputs: the table (or JSON with `json`) to stdout, the
/// HTML page to `report`.
pub fn run(options: &Options) -> std::io::Result<()> {
    check_record(options).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let scenarios = scenarios(&options.scenarios);
    let designs = designs(&options.designs);
    let terminal = std::io::stderr().is_terminal();
    let mut last_drawn = (String::new(), -1i64);
    let mut progress = |scenario: &str, design: &str, done: f64| {
        if !terminal {
            return;
        }
        let percent = (done * 100.0) as i64;
        let key = format!("{scenario} {design}");
        if last_drawn.0 == key && last_drawn.1 == percent {
            return;
        }
        let filled = (done * 30.0) as usize;
        eprint!(
            "\r\x1b[2K[{}{}] {key} {percent}%",
            "#".repeat(filled),
            ".".repeat(30 - filled.min(30))
        );
        last_drawn = (key, percent);
    };
    let report = match &options.record {
        Some(path) if scenarios.len() == 1 && designs.len() == 1 => {
            record_run(&scenarios[0], designs[0], options, path, &mut progress)?
        }
        _ => simulate(
            &scenarios,
            &designs,
            options.duration,
            options.seed,
            &mut progress,
        ),
    };
    if terminal {
        eprint!("\r\x1b[2K");
    }
    let mut stdout = std::io::stdout().lock();
    if options.json {
        writeln!(stdout, "{}", render_json(&report))?;
    } else {
        write!(stdout, "{}", render_table(&report))?;
    }
    if let Some(path) = &options.report {
        std::fs::write(path, render_html(&report))?;
    }
    Ok(())
}
