//! What the exporter's `simulate` subcommand does once its flags are parsed: resolve names, run,
//! print the table or the JSON, write the HTML report, and draw a progress bar on a terminal.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use crate::report::{render_html, render_json, render_table, simulate};
use crate::scenario::{self, Scenario};
use crate::strategy::StrategyKind;

pub struct Options {
    /// Scenario names, or `all`.
    pub scenarios: Vec<String>,
    /// Strategy names, or `all`.
    pub strategies: Vec<String>,
    pub duration: Option<Duration>,
    pub seed: u64,
    pub json: bool,
    pub report: Option<PathBuf>,
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

/// `Ok(name)` for a known strategy or `all`; otherwise a one-line error naming the valid ones.
pub fn strategy_name(name: &str) -> Result<String, String> {
    if name == "all" || StrategyKind::parse(name).is_some() {
        Ok(name.to_owned())
    } else {
        let names: Vec<_> = StrategyKind::ALL.iter().map(|k| k.name()).collect();
        Err(format!(
            "unknown strategy {name:?}; valid: all, {}",
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

fn strategies(names: &[String]) -> Vec<StrategyKind> {
    if names.iter().any(|n| n == "all") {
        return StrategyKind::ALL.to_vec();
    }
    let mut picked: Vec<StrategyKind> = names
        .iter()
        .filter_map(|n| StrategyKind::parse(n))
        .collect();
    picked.sort();
    picked.dedup();
    picked
}

/// Runs the simulation and writes its outputs: the table (or JSON with `json`) to stdout, the
/// HTML page to `report`.
pub fn run(options: &Options) -> std::io::Result<()> {
    let scenarios = scenarios(&options.scenarios);
    let strategies = strategies(&options.strategies);
    let terminal = std::io::stderr().is_terminal();
    let mut last_drawn = (String::new(), -1i64);
    let mut progress = |scenario: &str, strategy: &str, done: f64| {
        if !terminal {
            return;
        }
        let percent = (done * 100.0) as i64;
        let key = format!("{scenario} {strategy}");
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
    let report = simulate(
        &scenarios,
        &strategies,
        options.duration,
        options.seed,
        &mut progress,
    );
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
