//! `p2p-check <check>`: the repository's checks behind one command, for CI and for people.
//!
//!     p2p-check dashboards           check dashboards/ (exit 1 on any problem)
//!     p2p-check dashboards --write   regenerate dashboards/json/ first, then check

use std::path::PathBuf;
use std::process::ExitCode;

use p2p_checks::dashboards;

const USAGE: &str = "usage: p2p-check dashboards [--write] [--root DIR]";

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
            "dashboards" if check.is_none() => check = Some(arg.as_str()),
            _ => return usage(),
        }
    }
    if check != Some("dashboards") {
        return usage();
    }
    if write {
        match dashboards::write(&root) {
            Ok(files) => files.iter().for_each(|f| println!("wrote {f}")),
            Err(e) => {
                eprintln!("dashboards: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let report = dashboards::check(&root);
    for problem in &report.problems {
        eprintln!("dashboards: {problem}");
    }
    if report.problems.is_empty() {
        println!(
            "dashboards: ok ({} dashboards, {} panels, {} queries)",
            report.dashboards, report.panels, report.queries
        );
        ExitCode::SUCCESS
    } else {
        eprintln!("dashboards: {} problem(s)", report.problems.len());
        ExitCode::FAILURE
    }
}

fn usage() -> ExitCode {
    eprintln!("{USAGE}");
    ExitCode::from(2)
}
