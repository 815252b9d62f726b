//! `p2p-check <check>`: the repository's checks behind one command, for CI and for people.
//!
//!     p2p-check dashboards           check dashboards/ (exit 1 on any problem)
//!     p2p-check dashboards --write   regenerate dashboards/json/ first, then check
//!     p2p-check rules                check that alerts/rules/*.yml are what thresholds.toml makes
//!     p2p-check rules --write        regenerate alerts/rules/*.yml first, then check

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use p2p_checks::{dashboards, rules};

const USAGE: &str = "usage: p2p-check dashboards|rules [--write] [--root DIR]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // The repository this binary was built from, unless told otherwise.
    let mut root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut write = false;
    let mut check = None;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--write" => write = true,
            "--root" => match rest.next() {
                Some(dir) => root = PathBuf::from(dir),
                None => return usage(),
            },
            "dashboards" | "rules" if check.is_none() => check = Some(arg.clone()),
            _ => return usage(),
        }
    }
    match check.as_deref() {
        Some("dashboards") => run_dashboards(&root, write),
        Some("rules") => run_rules(&root, write),
        _ => usage(),
    }
}

/// Prints what `write` wrote, or its error (then the check is not run).
fn report_written(check: &str, written: Result<Vec<String>, String>) -> bool {
    match written {
        Ok(files) => {
            files.iter().for_each(|f| println!("wrote {f}"));
            true
        }
        Err(e) => {
            eprintln!("{check}: {e}");
            false
        }
    }
}

/// Prints the problems; success when there are none.
fn verdict(check: &str, problems: &[String], ok: String) -> ExitCode {
    for problem in problems {
        eprintln!("{check}: {problem}");
    }
    if problems.is_empty() {
        println!("{check}: ok ({ok})");
        ExitCode::SUCCESS
    } else {
        eprintln!("{check}: {} problem(s)", problems.len());
        ExitCode::FAILURE
    }
}

fn run_dashboards(root: &Path, write: bool) -> ExitCode {
    if write && !report_written("dashboards", dashboards::write(root)) {
        return ExitCode::FAILURE;
    }
    let report = dashboards::check(root);
    let ok = format!(
        "{} dashboards, {} panels, {} queries",
        report.dashboards, report.panels, report.queries
    );
    verdict("dashboards", &report.problems, ok)
}

fn run_rules(root: &Path, write: bool) -> ExitCode {
    if write && !report_written("rules", rules::write(root)) {
        return ExitCode::FAILURE;
    }
    let ok = format!(
        "{} files as alerts/thresholds.toml makes them",
        rules::FILES.len()
    );
    verdict("rules", &rules::check(root), ok)
}

fn usage() -> ExitCode {
    eprintln!("{USAGE}");
    ExitCode::from(2)
}
