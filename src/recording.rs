//! The `--record` file of a serving exporter (docs/recording.md).

use std::path::Path;
use std::time::Duration;

use p2p_recording::{Cost, Header, Mode, RecordingWriter, Source};
use p2p_sim::DesignKind;

use crate::cli::ServeArgs;
use p2p_exporter::recorder::Recorder;

/// What the serving exporter records: its source, and what it knows of the router it feeds.
pub fn header(args: &ServeArgs) -> Header {
    match args.source.source {
        Source::Tap => Header::new(Source::Tap),
        Source::Embedded => match args.design() {
            Some(design) => Header {
                capacity: match design.kind {
                    DesignKind::Broadcast4096 => Some(4096),
                    DesignKind::Broadcast8192 => Some(8192),
                    DesignKind::Segmented | DesignKind::Sharded | DesignKind::Actor => None,
                    DesignKind::Broadcast2048 | DesignKind::Dedup | DesignKind::ZeroCopy => {
                        Some(2048)
                    }
                },
                max_peers: Some(design.scenario.max_peers() as u64),
                scenario: (design.scenario.duration != Duration::MAX)
                    .then(|| design.scenario.name.to_owned()),
                design: Some(design.kind.name().to_owned()),
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
