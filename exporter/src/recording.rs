//! Record and replay (docs/recording.md): the `--record` file of a serving exporter, and the
//! `replay` subcommand.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use p2p_sim::record::{Cost, Header, Mode, RecordingWriter, Source};
use p2p_sim::StrategyKind;

use crate::cli::ServeArgs;
use crate::recorder::Recorder;

#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// A recording made with --record (gzip-compressed NDJSON, docs/recording.md).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// Router designs to replay it through, repeatable or comma-separated, or `all`.
    #[arg(long, value_name = "NAME", value_delimiter = ',', default_value = "all", value_parser = p2p_sim::cli::strategy_name)]
    pub strategy: Vec<String>,

    /// Processing time per new block; overrides the recording's (a tap recording has none:
    /// default 3ms).
    #[arg(long, value_parser = duration)]
    pub block_cost: Option<Duration>,

    /// Processing time per other message or peer event; overrides the recording's (default 25us).
    #[arg(long, value_parser = duration)]
    pub message_cost: Option<Duration>,

    /// Print JSON instead of the table.
    #[arg(long)]
    pub json: bool,

    /// Also write a self-contained HTML report to this file.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
}

fn duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("{e} (examples: 250us, 3ms)"))
}

impl ReplayArgs {
    pub fn run(&self) -> anyhow::Result<()> {
        let options = p2p_sim::replay::Options {
            path: self.file.clone(),
            strategies: self.strategy.clone(),
            block_cost: self.block_cost,
            message_cost: self.message_cost,
            json: self.json,
            report: self.report.clone(),
        };
        p2p_sim::replay::run(&options).map_err(anyhow::Error::new)
    }
}

/// What the serving exporter records: its source, and what it knows of the router it feeds.
pub fn header(args: &ServeArgs) -> Header {
    match args.source.source {
        crate::tap::Source::Tap => Header::new(Source::Tap),
        crate::tap::Source::Embedded => match args.design() {
            Some(design) => Header {
                capacity: match design.strategy {
                    StrategyKind::Broadcast4096 => Some(4096),
                    StrategyKind::Broadcast8192 => Some(8192),
                    StrategyKind::Segmented | StrategyKind::Sharded | StrategyKind::Actor => None,
                    _ => Some(2048),
                },
                max_peers: Some(design.scenario.max_peers() as u64),
                scenario: (design.scenario.duration != Duration::MAX)
                    .then(|| design.scenario.name.to_owned()),
                strategy: Some(design.strategy.name().to_owned()),
                cost: Some(Cost::from(&design.scenario.cost)),
                ..Header::new(Source::Embedded)
            },
            None => Header {
                capacity: Some(u64::from(args.router.capacity)),
                max_peers: Some(args.router.max_peers as u64),
                cost: Some(Cost::from(&args.consumer_cost())),
                ..Header::new(Source::Embedded)
            },
        },
    }
}

/// Opens the `--record` file and points the recording metrics at it.
pub fn start(
    path: &Path,
    args: &ServeArgs,
    recorder: &Recorder,
) -> anyhow::Result<RecordingWriter> {
    let writer = RecordingWriter::create(path, &header(args), Mode::NeverBlock)
        .map_err(|e| anyhow::anyhow!("cannot record to {}: {e}", path.display()))?;
    let _ = recorder
        .metrics()
        .recording
        .counts
        .set(std::sync::Arc::clone(writer.recording().counts()));
    Ok(writer)
}

/// Ends the recording: the end line, the gzip trailer, the file closed.
pub fn finish(writer: RecordingWriter, path: &Path) -> anyhow::Result<()> {
    let end = writer.elapsed();
    let counts = writer
        .finish(end)
        .map_err(|e| anyhow::anyhow!("cannot finish the recording {}: {e}", path.display()))?;
    use std::sync::atomic::Ordering::Relaxed;
    tracing::info!(
        file = %path.display(),
        written = counts.written.load(Relaxed),
        dropped = counts.dropped.load(Relaxed),
        "recording finished"
    );
    Ok(())
}

/// `simulate --record` records one run: anything else is a usage error (exit 2, one line).
pub fn check_simulate(options: &p2p_sim::cli::Options) {
    if let Err(message) = p2p_sim::cli::check_record(options) {
        eprintln!("error: {message} (see --help)");
        std::process::exit(2);
    }
}
