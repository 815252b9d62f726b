//! Tap protocol v2: what the node's tap sends the sidecar (`docs/tap-protocol.md`).
//!
//! A connection is a stream of frames, each a little-endian `u32` length and that many bytes; the
//! first byte of a frame says what it is:
//!
//! - `H` hello (JSON [`Hello`]), first on every connection;
//! - `S` snapshot (JSON [`Snapshot`]): every count the tap keeps, cumulative since the node
//!   started, about once a second and once more at shutdown;
//! - `J` journal (binary, [`encode_journal_entry`]): the items of inv messages, for the sidecar's
//!   duplicate tracker, batched;
//! - `B` block journey (JSON [`Journey`]): one accepted block, for traces.
//!
//! Counts travel only in snapshots, so they are exact whatever happens to the detail frames
//! (journal and journeys), which the node drops and counts when the sidecar cannot keep up.

use std::fmt;

use p2p_observe::{DisconnectReason, InvType, InventoryItem, MessageKind};
use serde::{Deserialize, Serialize};

use crate::histogram::{
    HistogramSnapshot, DELIVERY_BOUNDS_NS, PROPAGATION_BOUNDS_NS, SERVICE_BOUNDS_NS,
};

/// The protocol version this crate speaks. A sidecar refuses any other: v1 (NDJSON, one record
/// per observation) is not supported.
pub const VERSION: u32 = 2;

/// Largest frame, type byte included. A journal frame is cut well below it by the client; a
/// reader refuses a longer length before reading the frame, so one frame never costs more memory
/// than this.
pub const MAX_FRAME_BYTES: usize = 1 << 20;

/// Most items one journal entry carries: the protocol's own cap on an inv (`MAX_INV_SZ`).
pub const MAX_ITEMS: usize = 50_000;

/// Bytes of one journal item: the kind and the 32-byte hash.
pub const ITEM_BYTES: usize = 33;

/// Bytes of a journal entry before its items: milliseconds since the session started (`u32`) and
/// the item count (`u16`).
pub const ENTRY_HEADER_BYTES: usize = 6;

/// Most channels, and most subscribers, a snapshot may name: the sidecar's cap on those label
/// values.
pub const MAX_NAMES: usize = 16;

/// Longest `client` and `token` of a hello.
pub const MAX_TEXT: usize = 256;

/// Largest count a snapshot may carry: 2^53, the largest integer a Prometheus sample (an `f64`)
/// holds exactly. Anything above is a node bug or an attack, not a count.
pub const MAX_COUNT: u64 = 1 << 53;

/// Largest channel capacity a snapshot may declare (tokio's broadcast limit is `usize::MAX >> 1`;
/// anything above this is certainly not a real channel).
pub const MAX_CAPACITY: u64 = 1 << 32;

pub const FRAME_HELLO: u8 = b'H';
pub const FRAME_SNAPSHOT: u8 = b'S';
pub const FRAME_JOURNAL: u8 = b'J';
pub const FRAME_JOURNEY: u8 = b'B';

/// First frame of every connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Always [`VERSION`].
    pub v: u32,
    /// Random per node run: a new session is a node restart, whose counts start at zero.
    pub session: u64,
    /// The client's name and version, for the sidecar's log.
    pub client: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// Everything the tap counts, cumulative since the node started (its session).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Numbered from 0 in each session.
    pub seq: u64,
    pub uptime_ms: u64,
    /// The node is shutting down: no snapshot follows in this session.
    #[serde(default)]
    pub last: bool,
    pub channels: Vec<ChannelCounts>,
    pub subscribers: Vec<SubscriberCounts>,
    /// Messages emitted by peers, indexed like [`MessageKind::ALL`].
    pub messages: Vec<u64>,
    pub inv_messages: u64,
    pub inv_items: u64,
    pub peers: PeerCounts,
    pub blocks: BlockCounts,
    pub detail: DetailCounts,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelCounts {
    pub name: String,
    pub capacity: u64,
    /// Sends that entered the channel.
    pub sent: u64,
    /// Sends that reached no subscriber (the channel had none), so never entered it.
    pub unsubscribed: u64,
    /// Events not yet taken by the slowest subscriber, at the snapshot.
    pub queued: u64,
    /// The most events queued right after any send since the previous snapshot.
    pub peak: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriberCounts {
    pub name: String,
    pub channel: String,
    pub received: u64,
    /// Events skipped: the sum of every `RecvError::Lagged(n)`.
    pub lagged: u64,
    /// Send-to-receive latency of one event in [`crate::SAMPLE_EVERY`], over
    /// [`DELIVERY_BOUNDS_NS`].
    pub latency: HistogramSnapshot,
    /// Service time per message type (indexed like [`MessageKind::ALL`]; events that are not
    /// messages are not timed), one event in [`crate::SAMPLE_EVERY`], over [`SERVICE_BOUNDS_NS`].
    pub service: Vec<HistogramSnapshot>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerCounts {
    pub inbound: u64,
    pub outbound: u64,
    /// Indexed like [`DisconnectReason::ALL`].
    pub disconnected: Vec<u64>,
    pub refused: u64,
}

impl PeerCounts {
    /// Connected now: every registration minus every disconnection.
    pub fn current(&self) -> u64 {
        let gone: u64 = self.disconnected.iter().sum();
        (self.inbound + self.outbound).saturating_sub(gone)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockCounts {
    pub accepted: u64,
    /// Accepted without ever being announced to this node (mined here, or fetched during sync):
    /// no propagation time.
    pub unannounced: u64,
    pub orphaned: u64,
    pub reorgs: u64,
    /// Blocks undone by reorganisations of known depth.
    pub reorg_depth: u64,
    /// Reorganisations whose depth the node did not know.
    pub reorgs_unknown_depth: u64,
    /// First announcement to acceptance, over [`PROPAGATION_BOUNDS_NS`].
    pub propagation: HistogramSnapshot,
}

/// What became of the detail frames: journal entries (one per inv) and block journeys.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetailCounts {
    pub entries: u64,
    pub items: u64,
    /// Entries (and their items) the node dropped because its detail buffer was full.
    pub dropped_entries: u64,
    pub dropped_items: u64,
    pub journeys: u64,
    pub dropped_journeys: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Resources {
    pub resident_memory_bytes: u64,
    pub cpu_seconds: f64,
}

/// One accepted block, for the block-journey trace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journey {
    #[serde(with = "hash_hex")]
    pub hash: [u8; 32],
    pub height: u64,
    /// First announcement to acceptance; absent for a block never announced to this node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub propagation_ns: Option<u64>,
}

mod hash_hex {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(hash: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(hash))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let text = <&str>::deserialize(d)?;
        let mut hash = [0u8; 32];
        hex::decode_to_slice(text, &mut hash)
            .map_err(|_| serde::de::Error::custom("a hash is 64 hex digits"))?;
        Ok(hash)
    }
}

/// Why a frame was refused. A closed set: the `reason` label values of
/// `p2p_tap_records_rejected_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reject {
    /// Longer than [`MAX_FRAME_BYTES`] (the connection is closed: its framing cannot be trusted).
    TooLarge,
    /// An empty frame or an unknown type byte.
    UnknownFrame,
    /// Not the JSON or binary layout its type promises.
    Malformed,
    /// A hello of another protocol version.
    UnknownVersion,
    /// A journal item of an unknown kind, or more than [`MAX_ITEMS`] in one entry.
    BadItem,
    /// A channel or subscriber name that is not [`is_plain_name`], or more than [`MAX_NAMES`].
    BadName,
    /// A value outside its range: a queue longer than its channel, more disconnections than
    /// connections, a count above [`MAX_COUNT`], a histogram of the wrong shape.
    OutOfRange,
    /// A count smaller than in the previous snapshot of the same session.
    WentBackwards,
    /// The connection ended inside a frame.
    Truncated,
}

impl Reject {
    pub const ALL: [Reject; 9] = [
        Reject::TooLarge,
        Reject::UnknownFrame,
        Reject::Malformed,
        Reject::UnknownVersion,
        Reject::BadItem,
        Reject::BadName,
        Reject::OutOfRange,
        Reject::WentBackwards,
        Reject::Truncated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reject::TooLarge => "too_large",
            Reject::UnknownFrame => "unknown_frame",
            Reject::Malformed => "malformed",
            Reject::UnknownVersion => "unknown_version",
            Reject::BadItem => "bad_item",
            Reject::BadName => "bad_name",
            Reject::OutOfRange => "out_of_range",
            Reject::WentBackwards => "went_backwards",
            Reject::Truncated => "truncated",
        }
    }
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A decoded frame. Journal entries borrow the frame's bytes.
#[derive(Debug)]
pub enum Frame<'a> {
    Hello(Hello),
    Snapshot(Box<Snapshot>),
    Journal(JournalEntries<'a>),
    Journey(Journey),
}

/// Decodes one frame (its type byte and body, the length prefix already taken off). Journal items
/// are checked here; snapshot values are checked against the session by [`Snapshot::check`].
pub fn decode(frame: &[u8]) -> Result<Frame<'_>, Reject> {
    let (&kind, body) = frame.split_first().ok_or(Reject::UnknownFrame)?;
    match kind {
        FRAME_HELLO => {
            let hello: Hello = serde_json::from_slice(body).map_err(|_| Reject::Malformed)?;
            if hello.v != VERSION {
                return Err(Reject::UnknownVersion);
            }
            if hello.client.len() > MAX_TEXT
                || hello.token.as_ref().is_some_and(|t| t.len() > MAX_TEXT)
            {
                return Err(Reject::OutOfRange);
            }
            Ok(Frame::Hello(hello))
        }
        FRAME_SNAPSHOT => serde_json::from_slice(body)
            .map(|s| Frame::Snapshot(Box::new(s)))
            .map_err(|_| Reject::Malformed),
        FRAME_JOURNAL => JournalEntries::check(body).map(Frame::Journal),
        FRAME_JOURNEY => serde_json::from_slice(body)
            .map(Frame::Journey)
            .map_err(|_| Reject::Malformed),
        _ => Err(Reject::UnknownFrame),
    }
}

/// Writes one frame: the length prefix, the type byte, the body.
pub fn write_frame(out: &mut Vec<u8>, kind: u8, body: &[u8]) {
    let length = u32::try_from(body.len() + 1).expect("frames are far below 4 GiB");
    out.extend_from_slice(&length.to_le_bytes());
    out.push(kind);
    out.extend_from_slice(body);
}

/// Writes a JSON frame.
pub fn write_json_frame<T: Serialize>(out: &mut Vec<u8>, kind: u8, value: &T) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    out.push(kind);
    serde_json::to_writer(&mut *out, value).expect("tap frames serialise to JSON");
    let length = u32::try_from(out.len() - start - 4).expect("frames are far below 4 GiB");
    out[start..start + 4].copy_from_slice(&length.to_le_bytes());
}

/// Appends one journal entry: `at_ms` (since the session started), the item count, the items.
/// Returns false, writing nothing, for an entry of more than [`MAX_ITEMS`] items.
pub fn encode_journal_entry(
    out: &mut Vec<u8>,
    at_ms: u32,
    items: impl ExactSizeIterator<Item = (InvType, [u8; 32])>,
) -> bool {
    let Ok(count) = u16::try_from(items.len()) else {
        return false;
    };
    if items.len() > MAX_ITEMS {
        return false;
    }
    out.reserve(ENTRY_HEADER_BYTES + items.len() * ITEM_BYTES);
    out.extend_from_slice(&at_ms.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    for (kind, hash) in items {
        out.push(kind as u8);
        out.extend_from_slice(&hash);
    }
    true
}

/// The entries of a journal frame, already checked: iterating cannot fail.
#[derive(Clone, Copy, Debug)]
pub struct JournalEntries<'a> {
    body: &'a [u8],
}

/// One inv message from the journal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JournalEntry<'a> {
    pub at_ms: u32,
    items: &'a [u8],
}

impl<'a> JournalEntry<'a> {
    pub fn len(&self) -> usize {
        self.items.len() / ITEM_BYTES
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn items(&self) -> impl ExactSizeIterator<Item = InventoryItem> + 'a {
        self.items
            .chunks_exact(ITEM_BYTES)
            .map(|item| InventoryItem {
                kind: inv_type(item[0]).expect("checked when the frame was decoded"),
                hash: item[1..].try_into().expect("chunks are ITEM_BYTES long"),
            })
    }
}

fn inv_type(byte: u8) -> Option<InvType> {
    match byte {
        1 => Some(InvType::Transaction),
        2 => Some(InvType::Block),
        _ => None,
    }
}

impl<'a> JournalEntries<'a> {
    fn check(body: &'a [u8]) -> Result<JournalEntries<'a>, Reject> {
        let mut rest = body;
        while !rest.is_empty() {
            let (_, items, tail) = split_entry(rest).ok_or(Reject::Malformed)?;
            if items.len() / ITEM_BYTES > MAX_ITEMS
                || items
                    .chunks_exact(ITEM_BYTES)
                    .any(|item| inv_type(item[0]).is_none())
            {
                return Err(Reject::BadItem);
            }
            rest = tail;
        }
        Ok(JournalEntries { body })
    }

    pub fn iter(&self) -> impl Iterator<Item = JournalEntry<'a>> + 'a {
        let mut rest = self.body;
        std::iter::from_fn(move || {
            let (at_ms, items, tail) = split_entry(rest)?;
            rest = tail;
            Some(JournalEntry { at_ms, items })
        })
    }
}

fn split_entry(bytes: &[u8]) -> Option<(u32, &[u8], &[u8])> {
    let header = bytes.get(..ENTRY_HEADER_BYTES)?;
    let at_ms = u32::from_le_bytes(header[..4].try_into().ok()?);
    let count = u16::from_le_bytes(header[4..6].try_into().ok()?) as usize;
    let end = ENTRY_HEADER_BYTES + count * ITEM_BYTES;
    let items = bytes.get(ENTRY_HEADER_BYTES..end)?;
    Some((at_ms, items, &bytes[end..]))
}

/// A channel or subscriber name that can be a label value: `[a-z][a-z0-9_]{0,31}`, and not
/// `other` or `invalid` (which the sidecar reserves).
pub fn is_plain_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    (1..=32).contains(&bytes.len())
        && bytes[0].is_ascii_lowercase()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_')
        && name != "other"
        && name != "invalid"
}

impl Snapshot {
    /// Checks every value against its range, and, given the previous snapshot of the same
    /// session, that no count went backwards. A snapshot that fails is refused whole: serving part
    /// of it would mix two moments.
    pub fn check(&self, previous: Option<&Snapshot>) -> Result<(), Reject> {
        self.check_shape()?;
        if let Some(previous) = previous {
            self.check_monotonic(previous)?;
        }
        Ok(())
    }

    fn check_shape(&self) -> Result<(), Reject> {
        let names = self.channels.iter().map(|c| c.name.as_str());
        let mut names = names.chain(self.subscribers.iter().map(|s| s.name.as_str()));
        if self.channels.len() > MAX_NAMES
            || self.subscribers.len() > MAX_NAMES
            || names.any(|n| !is_plain_name(n))
        {
            return Err(Reject::BadName);
        }
        let histogram_ok = |h: &HistogramSnapshot, bounds: &[u64]| {
            h.buckets.len() == bounds.len() + 1 && h.buckets.iter().all(|b| *b <= MAX_COUNT)
        };
        let mut counts = vec![
            self.inv_messages,
            self.inv_items,
            self.peers.inbound,
            self.peers.outbound,
            self.peers.refused,
        ];
        counts.extend(&self.messages);
        counts.extend(&self.peers.disconnected);
        let b = &self.blocks;
        counts.extend([
            b.accepted,
            b.unannounced,
            b.orphaned,
            b.reorgs,
            b.reorg_depth,
        ]);
        counts.push(b.reorgs_unknown_depth);
        let d = &self.detail;
        counts.extend([d.entries, d.items, d.dropped_entries, d.dropped_items]);
        counts.extend([d.journeys, d.dropped_journeys]);
        for c in &self.channels {
            counts.extend([c.sent, c.unsubscribed]);
            if c.capacity == 0
                || c.capacity > MAX_CAPACITY
                || c.queued > c.capacity
                || c.peak > c.capacity
            {
                return Err(Reject::OutOfRange);
            }
        }
        for s in &self.subscribers {
            counts.extend([s.received, s.lagged]);
            if !self.channels.iter().any(|c| c.name == s.channel)
                || !histogram_ok(&s.latency, DELIVERY_BOUNDS_NS)
                || s.service.len() != MessageKind::ALL.len()
                || !s.service.iter().all(|h| histogram_ok(h, SERVICE_BOUNDS_NS))
            {
                return Err(Reject::OutOfRange);
            }
        }
        let connected = self.peers.inbound.saturating_add(self.peers.outbound);
        let gone = self
            .peers
            .disconnected
            .iter()
            .fold(0u64, |a, b| a.saturating_add(*b));
        let resources_ok = self.resources.as_ref().is_none_or(|r| {
            r.resident_memory_bytes <= MAX_COUNT
                && r.cpu_seconds.is_finite()
                && r.cpu_seconds >= 0.0
        });
        if self.messages.len() != MessageKind::ALL.len()
            || self.peers.disconnected.len() != DisconnectReason::ALL.len()
            || gone > connected
            || counts.iter().any(|c| *c > MAX_COUNT)
            || !histogram_ok(&b.propagation, PROPAGATION_BOUNDS_NS)
            || !resources_ok
        {
            return Err(Reject::OutOfRange);
        }
        Ok(())
    }

    fn check_monotonic(&self, previous: &Snapshot) -> Result<(), Reject> {
        let grew = |now: &[u64], before: &[u64]| {
            now.len() == before.len() && now.iter().zip(before).all(|(n, b)| n >= b)
        };
        let histogram_grew = |now: &HistogramSnapshot, before: &HistogramSnapshot| {
            grew(&now.buckets, &before.buckets)
        };
        let mut ok = self.seq > previous.seq
            && !previous.last
            && grew(&self.messages, &previous.messages)
            && grew(&self.peers.disconnected, &previous.peers.disconnected)
            && histogram_grew(&self.blocks.propagation, &previous.blocks.propagation);
        let scalar = |s: &Snapshot| {
            let (p, b, d) = (&s.peers, &s.blocks, &s.detail);
            [
                s.inv_messages,
                s.inv_items,
                p.inbound,
                p.outbound,
                p.refused,
                b.accepted,
                b.unannounced,
                b.orphaned,
                b.reorgs,
                b.reorg_depth,
                b.reorgs_unknown_depth,
                d.entries,
                d.items,
                d.dropped_entries,
                d.dropped_items,
                d.journeys,
                d.dropped_journeys,
            ]
        };
        ok &= grew(&scalar(self), &scalar(previous));
        // A channel or subscriber may appear later in a session, never vanish or shrink.
        for before in &previous.channels {
            ok &= self.channels.iter().any(|now| {
                now.name == before.name
                    && now.sent >= before.sent
                    && now.unsubscribed >= before.unsubscribed
            });
        }
        for before in &previous.subscribers {
            ok &= self.subscribers.iter().any(|now| {
                now.name == before.name
                    && now.received >= before.received
                    && now.lagged >= before.lagged
                    && histogram_grew(&now.latency, &before.latency)
                    && now
                        .service
                        .iter()
                        .zip(&before.service)
                        .all(|(n, b)| histogram_grew(n, b))
            });
        }
        if ok {
            Ok(())
        } else {
            Err(Reject::WentBackwards)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot() -> Snapshot {
        let tap = crate::Tap::disabled();
        let channel = tap.channel("events", 8);
        let (sender, mut receiver) = tokio::sync::broadcast::channel(8);
        let mut subscriber = tap.subscriber(&channel, "consumer", |_: &u8| None);
        for _ in 0..20 {
            channel.send(&sender, 1u8).unwrap();
        }
        subscriber.after_try_recv(&receiver.try_recv());
        tap.snapshot()
    }

    #[test]
    fn a_snapshot_round_trips_and_its_queue_comes_from_the_counts() {
        let snapshot = snapshot();
        let mut frame = Vec::new();
        write_json_frame(&mut frame, FRAME_SNAPSHOT, &snapshot);
        let Ok(Frame::Snapshot(decoded)) = decode(&frame[4..]) else {
            panic!("a snapshot frame");
        };
        assert_eq!(*decoded, snapshot);
        let channel = &snapshot.channels[0];
        // 20 sent into 8 slots: the receiver skipped 12 and took one.
        assert_eq!((channel.sent, channel.capacity), (20, 8));
        assert_eq!(snapshot.subscribers[0].lagged, 12);
        assert_eq!(snapshot.subscribers[0].received, 0);
        assert_eq!(channel.queued, 8);
        assert_eq!(snapshot.check(None), Ok(()));
    }

    #[test]
    fn journal_entries_round_trip_and_bad_ones_are_refused() {
        let mut body = vec![FRAME_JOURNAL];
        let items = [(InvType::Transaction, [1; 32]), (InvType::Block, [2; 32])];
        assert!(encode_journal_entry(&mut body, 7, items.into_iter()));
        assert!(encode_journal_entry(&mut body, 9, [].into_iter()));
        let Ok(Frame::Journal(entries)) = decode(&body) else {
            panic!("a journal frame");
        };
        let entries: Vec<_> = entries.iter().collect();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].at_ms, 7);
        let decoded: Vec<_> = entries[0].items().map(|i| (i.kind, i.hash)).collect();
        assert_eq!(decoded, items);
        assert!(entries[1].is_empty());
        let mut bad_kind = body.clone();
        bad_kind[1 + ENTRY_HEADER_BYTES] = 3;
        assert_eq!(decode(&bad_kind).unwrap_err(), Reject::BadItem);
        assert_eq!(
            decode(&body[..body.len() - 1]).unwrap_err(),
            Reject::Malformed
        );
    }

    #[test]
    fn random_bytes_never_panic_the_decoder() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z ^ (z >> 31)
        };
        let kinds = [FRAME_HELLO, FRAME_SNAPSHOT, FRAME_JOURNAL, FRAME_JOURNEY, 0];
        for round in 0..20_000 {
            let len = (next() % 200) as usize;
            let mut frame = vec![kinds[round % kinds.len()]];
            frame.extend((0..len).map(|_| next() as u8));
            if let Ok(Frame::Snapshot(snapshot)) = decode(&frame) {
                let _ = snapshot.check(Some(&snapshot));
            }
        }
    }
}
