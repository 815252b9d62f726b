//! Recordings: what arrived at a router, and when, as gzip-compressed NDJSON (the format is in
//! docs/recording.md). The simulator's `replay` drives router designs with them; [`read`] is the
//! one way to read them, and refuses a file it cannot read whole (see [`Problem`]).
//!
//! The embedded source records at the [`p2p_router::PeerSink`] level (what peers handed the
//! router), which is exactly what a design needs to be driven again. The tap source records the
//! node's tap records as they arrived. Either way the router never waits for the file: arrivals
//! go through a bounded channel to a writer thread, and in [`Mode::NeverBlock`] a full channel
//! drops and counts them.

mod format;
mod reader;
mod sink;
mod writer;

pub use format::*;
pub use reader::{
    read, read_with_limit, Contents, Problem, ReadError, Reader, LONGEST_WRITTEN_LINE,
    MAX_LINE_BYTES,
};
pub use sink::RecordingSink;
pub use writer::{Counts, Mode, Recording, RecordingWriter, QUEUE};
