//! Recordings: what arrived at a router, and when, as gzip-compressed NDJSON. The format is in
//! docs/recording.md; `replay` reads it back.
//!
//! The embedded source records at the [`PeerSink`] level (what peers handed the router), which is
//! exactly what a design needs to be driven again. The tap source records the node's tap records
//! as they arrived. Either way the router never waits for the file: arrivals go through a bounded
//! channel to a writer thread, and in [`Mode::NeverBlock`] a full channel drops and counts them.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use flate2::write::GzEncoder;
use flate2::Compression;
use p2p_router::workload::{decode_block_header, ConsumerCost, PeerSink};
use p2p_router::{BlockHeader, InventoryItem, NetMessage, PeerId, RouterError, VersionInfo};
use p2p_tap::wire::{Hash, WireInvType, WireMessageKind};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc as tokio_mpsc;
use tokio::time::Instant;

use crate::strategy::Strategy;

/// The `format` of every recording's header.
pub const FORMAT: &str = "p2p-recording";
/// The version this build writes, and the newest it reads.
pub const VERSION: u32 = 1;
/// Arrivals waiting for the writer thread; past it a live recording drops.
pub const QUEUE: usize = 65_536;

/// Where a recording's arrivals came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Calls into the router's `PeerSink`: peers, messages and their payload sizes, exactly.
    Embedded,
    /// A node's tap records: kinds and inventory, no peer identity and no payloads.
    Tap,
}

/// The consumer's costs, in nanoseconds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cost {
    pub block_ns: u64,
    pub message_ns: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tx_ns: Option<u64>,
}

impl From<&ConsumerCost> for Cost {
    fn from(cost: &ConsumerCost) -> Cost {
        let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        Cost {
            block_ns: nanos(cost.block),
            message_ns: nanos(cost.message),
            tx_ns: cost.tx.map(nanos),
        }
    }
}

impl From<&Cost> for ConsumerCost {
    fn from(cost: &Cost) -> ConsumerCost {
        ConsumerCost {
            block: Duration::from_nanos(cost.block_ns),
            message: Duration::from_nanos(cost.message_ns),
            tx: cost.tx_ns.map(Duration::from_nanos),
        }
    }
}

/// The first line of a recording.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Header {
    /// Always [`FORMAT`].
    pub format: String,
    /// Format version of the writer.
    pub v: u32,
    pub source: Source,
    /// The recorded router's channel capacity, when known.
    #[serde(default)]
    pub capacity: Option<u64>,
    /// Peers the recorded router accepted, when known.
    #[serde(default)]
    pub max_peers: Option<u64>,
    /// The simulator scenario that produced the arrivals, if any.
    #[serde(default)]
    pub scenario: Option<String>,
    /// The router design that was recorded, if not the node's own.
    #[serde(default)]
    pub strategy: Option<String>,
    /// The consumer's costs, when known (never for a tap recording).
    #[serde(default)]
    pub cost: Option<Cost>,
}

impl Header {
    pub fn new(source: Source) -> Header {
        Header {
            format: FORMAT.to_owned(),
            v: VERSION,
            source,
            capacity: None,
            max_peers: None,
            scenario: None,
            strategy: None,
            cost: None,
        }
    }
}

/// One inventory item: `{"type":"block","hash":"<64 hex>"}`, as on the tap wire.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Item {
    #[serde(rename = "type")]
    pub kind: WireInvType,
    pub hash: Hash,
}

/// A block's header, as its payload starts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BlockRef {
    pub hash: Hash,
    pub prev: Hash,
    pub height: u64,
}

/// What arrived. Peer ids are the recorded router's, as 16 hex digits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Arrival {
    /// A peer registered; `peer` is absent when the router refused it (at `max_peers`).
    Register {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        peer: Option<String>,
        inbound: bool,
    },
    Disconnect {
        peer: String,
        reason: String,
    },
    /// A message a peer handed the router. `size` is the body length of a block or tx, the entry
    /// count of headers, addr and a getheaders locator; `block` the header a block payload starts
    /// with.
    Message {
        peer: String,
        #[serde(rename = "type")]
        message_type: WireMessageKind,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        items: Vec<Item>,
        #[serde(default, skip_serializing_if = "is_zero")]
        size: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        block: Option<BlockRef>,
    },
    /// A tap record, as the node sent it (a `hello` without its token).
    Tap {
        record: serde_json::Value,
    },
    /// The recording's last line: when recording stopped.
    End,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A line after the header.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Line {
    /// Nanoseconds since the recording began.
    pub t: u64,
    #[serde(flatten)]
    pub arrival: Arrival,
}

pub fn peer_hex(peer: PeerId) -> String {
    peer.to_string()
}

pub fn parse_peer(text: &str) -> Option<u64> {
    (text.len() == 16)
        .then(|| u64::from_str_radix(text, 16).ok())
        .flatten()
}

fn items_of(items: &[InventoryItem]) -> Vec<Item> {
    items
        .iter()
        .map(|i| Item {
            kind: i.kind.into(),
            hash: Hash(Some(i.hash)),
        })
        .collect()
}

/// The arrival of `message` from `peer`: what a design needs of it, not its bytes.
pub fn message_arrival(peer: PeerId, message: &NetMessage) -> Arrival {
    let (items, size, block) = match message {
        NetMessage::Inv(inventory) | NetMessage::GetData(inventory) => {
            (items_of(&inventory.items), 0, None)
        }
        NetMessage::Block(bytes) => (
            Vec::new(),
            bytes.len() as u64,
            decode_block_header(bytes).map(|h| BlockRef {
                hash: Hash(Some(h.hash)),
                prev: Hash(Some(h.prev_hash)),
                height: h.height,
            }),
        ),
        NetMessage::Tx(bytes) => (Vec::new(), bytes.len() as u64, None),
        NetMessage::Headers(headers) => (Vec::new(), headers.len() as u64, None),
        NetMessage::Addr(addresses) => (Vec::new(), addresses.len() as u64, None),
        NetMessage::GetHeaders { locator, .. } => (Vec::new(), locator.len() as u64, None),
        _ => (Vec::new(), 0, None),
    };
    Arrival::Message {
        peer: peer_hex(peer),
        message_type: message.kind().into(),
        items,
        size,
        block,
    }
}

/// A message with the same kind, items, payload sizes and block header as the one recorded;
/// everything else (nonces, addresses, body bytes) zero.
pub fn rebuild_message(
    kind: WireMessageKind,
    items: &[Item],
    size: u64,
    block: Option<&BlockRef>,
) -> NetMessage {
    use p2p_router::{Inventory, NodeAddr};
    let size = usize::try_from(size).unwrap_or(usize::MAX);
    let inventory = || Inventory {
        items: items
            .iter()
            .map(|i| InventoryItem {
                kind: i.kind.into(),
                hash: i.hash.0.unwrap_or_default(),
            })
            .collect(),
    };
    let zero_header = BlockHeader {
        prev_hash: [0; 32],
        hash: [0; 32],
        height: 0,
    };
    match kind {
        WireMessageKind::Version => NetMessage::Version(VersionInfo {
            protocol: 0,
            best_height: 0,
        }),
        WireMessageKind::VerAck => NetMessage::VerAck,
        WireMessageKind::GetHeaders => NetMessage::GetHeaders {
            locator: vec![[0; 32]; size],
            stop_hash: [0; 32],
        },
        WireMessageKind::Headers => NetMessage::Headers(vec![zero_header; size]),
        WireMessageKind::Ping => NetMessage::Ping(0),
        WireMessageKind::Pong => NetMessage::Pong(0),
        WireMessageKind::GetAddr => NetMessage::GetAddr,
        WireMessageKind::Addr => NetMessage::Addr(vec![
            NodeAddr {
                address: SocketAddr::from(([0, 0, 0, 0], 0)),
                services: 0,
            };
            size
        ]),
        WireMessageKind::Inv => NetMessage::Inv(inventory()),
        WireMessageKind::GetData => NetMessage::GetData(inventory()),
        WireMessageKind::Tx => NetMessage::Tx(vec![0; size]),
        WireMessageKind::Block => match block {
            Some(b) => NetMessage::Block(p2p_router::workload::encode_block(
                &BlockHeader {
                    prev_hash: b.prev.0.unwrap_or_default(),
                    hash: b.hash.0.unwrap_or_default(),
                    height: b.height,
                },
                size,
            )),
            None => NetMessage::Block(vec![0; size]),
        },
        WireMessageKind::Reject => NetMessage::Reject {
            code: 0,
            reason: String::new(),
        },
    }
}

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

/// A [`PeerSink`] (or design) that records every call before passing it on.
pub struct Recorded<S> {
    inner: S,
    recording: Recording,
}

impl<S> Recorded<S> {
    pub fn new(inner: S, recording: Recording) -> Recorded<S> {
        Recorded { inner, recording }
    }
}

impl<S: PeerSink> PeerSink for Recorded<S> {
    fn register_peer(
        &mut self,
        inbound: bool,
        address: SocketAddr,
        version: VersionInfo,
        sender: tokio_mpsc::Sender<NetMessage>,
    ) -> Result<PeerId, RouterError> {
        let result = self.inner.register_peer(inbound, address, version, sender);
        self.recording.arrival(Arrival::Register {
            peer: result.as_ref().ok().map(|id| peer_hex(*id)),
            inbound,
        });
        result
    }

    fn disconnect(&mut self, peer_id: PeerId, reason: &str) {
        self.recording.arrival(Arrival::Disconnect {
            peer: peer_hex(peer_id),
            reason: reason.to_owned(),
        });
        self.inner.disconnect(peer_id, reason)
    }

    fn emit_message(&mut self, peer_id: PeerId, message: NetMessage) {
        self.recording.arrival(message_arrival(peer_id, &message));
        self.inner.emit_message(peer_id, message)
    }
}

impl<S: Strategy> Strategy for Recorded<S> {
    fn catch_up(&mut self, now: Instant) {
        self.inner.catch_up(now)
    }

    fn held_bytes(&mut self) -> u64 {
        self.inner.held_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p2p_router::{InvType, Inventory};

    #[test]
    fn every_message_kind_rebuilds_with_its_kind_items_and_sizes() {
        let header = BlockHeader {
            prev_hash: [1; 32],
            hash: [2; 32],
            height: 7,
        };
        let items = vec![InventoryItem {
            kind: InvType::Transaction,
            hash: [3; 32],
        }];
        let messages = [
            NetMessage::Inv(Inventory {
                items: items.clone(),
            }),
            NetMessage::GetData(Inventory { items }),
            NetMessage::Block(p2p_router::workload::encode_block(&header, 4096)),
            NetMessage::Block(vec![9; 10]),
            NetMessage::Tx(vec![5; 300]),
            NetMessage::Headers(vec![header.clone(); 3]),
            NetMessage::Ping(42),
            NetMessage::VerAck,
        ];
        for message in messages {
            let arrival = message_arrival(PeerId(5), &message);
            // Through the file format and back.
            let line = serde_json::to_string(&Line { t: 1, arrival }).unwrap();
            let Line { arrival, .. } = serde_json::from_str(&line).unwrap();
            let Arrival::Message {
                peer,
                message_type,
                items,
                size,
                block,
            } = arrival
            else {
                panic!("{line}");
            };
            assert_eq!(parse_peer(&peer), Some(5));
            let rebuilt = rebuild_message(message_type, &items, size, block.as_ref());
            assert_eq!(rebuilt.kind(), message.kind(), "{line}");
            assert_eq!(rebuilt.announced_items(), message.announced_items());
            assert_eq!(
                crate::channel::payload_len(&rebuilt),
                crate::channel::payload_len(&message),
                "{line}"
            );
            if let (NetMessage::Block(a), NetMessage::Block(b)) = (&rebuilt, &message) {
                assert_eq!(decode_block_header(a), decode_block_header(b));
            }
        }
    }

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
