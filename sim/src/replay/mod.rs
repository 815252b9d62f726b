//! Replay: a recording's arrivals through each router design in virtual time, with the
//! simulator's report (what-if table, framework verdict, channel size). docs/recording.md.
//!
//! An embedded recording holds the very calls the router received, so a replay on the recorded
//! design reproduces the recorded run exactly. A tap recording holds what the node's tap reported:
//! message kinds and inventory, but no peer identity and no payloads. Its messages are handed to
//! the recorded peers round-robin, and each block takes the hash of the next `block_accepted` (or
//! is an orphan where the node reported one), so designs that split traffic by peer (sharded,
//! actor) get an approximate split.

use std::io::{self, Write};
use std::path::PathBuf;
use std::time::Duration;

use crate::design::DesignKind;
use crate::report::{render_html, render_json, render_table};

mod convert;
mod load;
mod run;

pub use convert::Event;
pub use load::{load, Loaded};
pub use run::{cost, replay_design, report, ticks};

pub struct Options {
    pub path: PathBuf,
    /// Design names, or `all`.
    pub designs: Vec<String>,
    pub block_cost: Option<Duration>,
    pub message_cost: Option<Duration>,
    pub json: bool,
    pub report: Option<PathBuf>,
}

/// Why a replay did not finish.
#[derive(Debug)]
pub enum Error {
    /// The recording cannot be read (one line).
    Input(String),
    Output(io::Error),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Input(text) => f.write_str(text),
            Error::Output(err) => write!(f, "cannot write the report: {err}"),
        }
    }
}

impl std::error::Error for Error {}

/// Loads, replays and writes the outputs: the table (or JSON) to stdout, the HTML to `report`.
pub fn run(options: &Options) -> Result<(), Error> {
    let loaded = load(&options.path).map_err(Error::Input)?;
    let designs: Vec<DesignKind> = if options.designs.iter().any(|s| s == "all") {
        DesignKind::ALL.to_vec()
    } else {
        let mut picked: Vec<_> = options
            .designs
            .iter()
            .filter_map(|s| DesignKind::parse(s))
            .collect();
        picked.sort();
        picked.dedup();
        picked
    };
    let cost = cost(&loaded.header, options.block_cost, options.message_cost);
    let name = options.path.file_name().map_or_else(
        || options.path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let report = report(&loaded, &name, &designs, &cost);
    let mut stdout = io::stdout().lock();
    if options.json {
        writeln!(stdout, "{}", render_json(&report)).map_err(Error::Output)?;
    } else {
        write!(stdout, "{}", render_table(&report)).map_err(Error::Output)?;
    }
    if let Some(path) = &options.report {
        std::fs::write(path, render_html(&report)).map_err(Error::Output)?;
    }
    Ok(())
}

/// Writes `text` gzip-compressed, as a recording is.
#[cfg(test)]
fn write_gz(path: &std::path::Path, text: &str) {
    let mut out = flate2::write::GzEncoder::new(
        std::fs::File::create(path).unwrap(),
        flate2::Compression::fast(),
    );
    out.write_all(text.as_bytes()).unwrap();
    out.finish().unwrap();
}
