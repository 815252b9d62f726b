//! The writer: a bounded queue to a thread that writes and compresses, so the router never waits.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use flate2::write::GzEncoder;
use flate2::Compression;
use tokio::time::Instant;

use crate::format::{Arrival, Header, Line};

/// Arrivals waiting for the writer thread; past it a live recording drops.
pub const QUEUE: usize = 65_536;

/// Whether a full queue waits or drops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Never wait: a live router must not slow down for its recording. Drops are counted.
    NeverBlock,
    /// Wait for the writer: a virtual-time run has nothing to protect and must lose nothing.
    Lossless,
}

/// Arrivals written to the file and dropped at a full queue.
#[derive(Debug, Default)]
pub struct Counts {
    pub written: AtomicU64,
    pub dropped: AtomicU64,
}

enum Message {
    Line(Line),
    /// A raw tap line, already checked to be one JSON record.
    Tap(u64, Vec<u8>),
    End(u64),
}

/// Hands arrivals to the writer thread. Cheap to clone; never blocks in [`Mode::NeverBlock`].
#[derive(Clone)]
pub struct Recording {
    sender: SyncSender<Message>,
    counts: Arc<Counts>,
    started: Instant,
    mode: Mode,
}

impl Recording {
    fn since_start(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn send(&self, message: Message) {
        match self.mode {
            Mode::Lossless => {
                if self.sender.send(message).is_err() {
                    self.counts.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
            Mode::NeverBlock => match self.sender.try_send(message) {
                Ok(()) => {}
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                    self.counts.dropped.fetch_add(1, Ordering::Relaxed);
                }
            },
        }
    }

    /// Records `arrival` as arriving now.
    pub fn arrival(&self, arrival: Arrival) {
        let t = self.since_start();
        self.send(Message::Line(Line { t, arrival }));
    }

    /// Records one tap line (a decoded, accepted record) as arriving now.
    pub fn tap_line(&self, line: &[u8]) {
        let t = self.since_start();
        self.send(Message::Tap(t, line.to_vec()));
    }

    pub fn counts(&self) -> &Arc<Counts> {
        &self.counts
    }

    /// The same recording with its clock starting now: a virtual-time run starts its recording
    /// inside its runtime, whose clock is not the one the writer was created on.
    pub fn starting_now(mut self) -> Recording {
        self.started = Instant::now();
        self
    }
}

/// The file being written and its writer thread.
pub struct RecordingWriter {
    recording: Recording,
    thread: JoinHandle<io::Result<()>>,
}

impl RecordingWriter {
    /// Creates `path` now (so a bad path fails at start-up) and starts the writer thread; the
    /// header is the file's first line.
    pub fn create(path: &Path, header: &Header, mode: Mode) -> io::Result<RecordingWriter> {
        let file = File::create(path)?;
        let mut out = GzEncoder::new(BufWriter::new(file), Compression::fast());
        serde_json::to_writer(&mut out, header)?;
        out.write_all(b"\n")?;
        let (sender, receiver) = mpsc::sync_channel::<Message>(QUEUE);
        let counts = Arc::new(Counts::default());
        let thread_counts = Arc::clone(&counts);
        let thread = std::thread::Builder::new()
            .name("p2p-recording".into())
            .spawn(move || write_all(out, receiver, &thread_counts))?;
        Ok(RecordingWriter {
            recording: Recording {
                sender,
                counts,
                started: Instant::now(),
                mode,
            },
            thread,
        })
    }

    /// A handle for whoever sees the arrivals.
    pub fn recording(&self) -> Recording {
        self.recording.clone()
    }

    /// Time since the recording began, on the clock the arrivals are stamped with.
    pub fn elapsed(&self) -> Duration {
        self.recording.started.elapsed()
    }

    /// Writes the `end` line at `end` after the start, finishes the gzip stream and closes the
    /// file. Waits for the queue to drain.
    pub fn finish(self, end: Duration) -> io::Result<Arc<Counts>> {
        let end = u64::try_from(end.as_nanos()).unwrap_or(u64::MAX);
        // Blocking: finishing happens off the router's path, and the end must not be dropped.
        let _ = self.recording.sender.send(Message::End(end));
        let counts = Arc::clone(&self.recording.counts);
        drop(self.recording);
        match self.thread.join() {
            Ok(result) => result.map(|()| counts),
            Err(_) => Err(io::Error::other("the recording's writer thread panicked")),
        }
    }
}

fn write_all(
    mut out: GzEncoder<BufWriter<File>>,
    receiver: mpsc::Receiver<Message>,
    counts: &Counts,
) -> io::Result<()> {
    let mut failed: Option<io::Error> = None;
    let mut buffer = Vec::with_capacity(256);
    // Stops at the end message, or when every handle is gone without one (no end line then).
    for message in receiver.iter() {
        buffer.clear();
        let end = match message {
            Message::Line(line) => {
                serde_json::to_writer(&mut buffer, &line)?;
                false
            }
            Message::Tap(t, raw) => {
                // The raw record is one JSON value: nest it without parsing it again.
                write!(buffer, "{{\"t\":{t},\"kind\":\"tap\",\"record\":")?;
                buffer.extend_from_slice(&raw);
                buffer.push(b'}');
                false
            }
            Message::End(t) => {
                serde_json::to_writer(
                    &mut buffer,
                    &Line {
                        t,
                        arrival: Arrival::End,
                    },
                )?;
                true
            }
        };
        buffer.push(b'\n');
        if failed.is_none() {
            match out.write_all(&buffer) {
                Ok(()) if !end => {
                    counts.written.fetch_add(1, Ordering::Relaxed);
                }
                Ok(()) => {}
                Err(err) => failed = Some(err),
            }
        } else if !end {
            counts.dropped.fetch_add(1, Ordering::Relaxed);
        }
        if end {
            break;
        }
    }
    if let Some(err) = failed {
        return Err(err);
    }
    out.finish()?
        .into_inner()
        .map_err(|e| e.into_error())?
        .sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_waiting() {
        let (sender, _receiver) = mpsc::sync_channel(1);
        let recording = Recording {
            sender,
            counts: Arc::new(Counts::default()),
            started: Instant::now(),
            mode: Mode::NeverBlock,
        };
        for _ in 0..5 {
            recording.arrival(Arrival::End);
        }
        assert_eq!(recording.counts().dropped.load(Ordering::Relaxed), 4);
    }
}
