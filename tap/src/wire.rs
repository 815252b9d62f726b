//! The line format of tap recordings: one JSON record per line (NDJSON),
//! `{"v":1,"t":<ns>,"kind":"...",...}`. It was the tap's protocol v1; the tap now speaks v2
//! ([`crate::protocol`]), and the sidecar writes what it receives in this form when it records.
//!
//! Every [`Observation`] has exactly one record kind; two more kinds (`hello`, `stats`) are read in
//! older recordings. The JSON Schema is `docs/recording-lines.schema.json`.
//!
//! Versioning: `v` is the format version the writer used. A reader accepts every version from 1
//! up to [`VERSION`] and rejects a newer one with [`Reject::UnknownVersion`]: a newer format may
//! change meanings, and guessing would put wrong numbers on a dashboard. Fields a reader does not
//! know are ignored, so adding an optional field does not need a new version.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use p2p_observe::{Direction, DisconnectReason, InvType, InventoryItem, MessageKind, Observation};
use serde::de::{Deserializer, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};

/// The format version this crate writes, and the newest it reads.
pub const VERSION: u32 = 1;

/// Longest line a reader accepts, newline excluded. An inv of [`MAX_ITEMS`] items is about 4.3 MB,
/// so every record the client can write fits; anything longer is refused before it is buffered
/// whole.
pub const MAX_LINE_BYTES: usize = 8 << 20;

/// Most inventory items in one record: the protocol's own cap on an inv (`MAX_INV_SZ`).
pub const MAX_ITEMS: usize = 50_000;

/// Longest `session`, `client` and `token` strings of a `hello`.
pub const MAX_HELLO_FIELD: usize = 256;

/// Why a line was not accepted. A closed set: these are the `reason` label values of
/// `p2p_tap_records_rejected_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reject {
    /// Nothing but whitespace between two newlines.
    Empty,
    /// Longer than [`MAX_LINE_BYTES`].
    Oversize,
    /// Not UTF-8.
    InvalidUtf8,
    /// Not JSON.
    Malformed,
    /// JSON, but not a record: wrong types, a missing field, an unknown kind, a negative count.
    Invalid,
    /// More than [`MAX_ITEMS`] inventory items.
    TooManyItems,
    /// An inventory hash that is not 64 hex digits.
    BadHash,
    /// `v` is newer than this reader (or 0).
    UnknownVersion,
    /// The connection ended in the middle of a line.
    Truncated,
}

impl Reject {
    pub const ALL: [Reject; 9] = [
        Reject::Empty,
        Reject::Oversize,
        Reject::InvalidUtf8,
        Reject::Malformed,
        Reject::Invalid,
        Reject::TooManyItems,
        Reject::BadHash,
        Reject::UnknownVersion,
        Reject::Truncated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reject::Empty => "empty",
            Reject::Oversize => "oversize",
            Reject::InvalidUtf8 => "invalid_utf8",
            Reject::Malformed => "malformed",
            Reject::Invalid => "invalid",
            Reject::TooManyItems => "too_many_items",
            Reject::BadHash => "bad_hash",
            Reject::UnknownVersion => "unknown_version",
            Reject::Truncated => "truncated",
        }
    }
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One line of the stream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record<'a> {
    /// Format version of the writer.
    pub v: u32,
    /// Nanoseconds since the client started (its own monotonic clock). Starts again from 0 when
    /// the node restarts; `hello.session` tells the two runs apart.
    pub t: u64,
    #[serde(flatten, borrow)]
    pub body: Body<'a>,
}

/// What a record says. One kind per [`Observation`] variant, plus `hello` and `stats`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Body<'a> {
    /// First line of every connection.
    Hello {
        /// Random id of the client's run: a new value means the node restarted.
        #[serde(borrow)]
        session: Cow<'a, str>,
        /// The client's name and version, for logs.
        #[serde(borrow)]
        client: Cow<'a, str>,
        /// The shared token, when the sidecar asks for one.
        #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
        token: Option<Cow<'a, str>>,
        /// Connected peers, as of the records sent before this one.
        peers: u64,
    },
    /// The client's own counts since it started, sent periodically and when it stops.
    Stats {
        /// Observations the node passed to the client.
        produced: u64,
        /// Observations dropped because the queue was full (the sidecar absent or slow).
        dropped: u64,
        /// Observations in a write that failed (the sidecar went away mid-write); some may have
        /// arrived.
        lost: u64,
        /// Connected peers, as of the records sent before this one.
        peers: u64,
    },
    ChannelOpened {
        #[serde(borrow)]
        channel: Cow<'a, str>,
        capacity: u64,
    },
    PeerConnected {
        direction: WireDirection,
    },
    PeerRefused,
    PeerDisconnected {
        reason: WireReason,
    },
    EventSent {
        #[serde(borrow)]
        channel: Cow<'a, str>,
        queued: u64,
        capacity: u64,
    },
    MessageEmitted {
        #[serde(rename = "type")]
        message_type: WireMessageKind,
        #[serde(default, borrow, skip_serializing_if = "Inventory::is_empty")]
        inventory: Inventory<'a>,
    },
    EventReceived {
        #[serde(borrow)]
        subscriber: Cow<'a, str>,
        latency_ns: u64,
    },
    SubscriberLagged {
        #[serde(borrow)]
        subscriber: Cow<'a, str>,
        skipped: u64,
    },
    /// A deduplicating router dropped an inv before it entered a channel.
    InvDropped,
    BlockAccepted {
        hash: Hash,
        height: u64,
        /// Optional (added within v1): absent means unknown, `0` a genuine zero offset.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        received_ns: Option<u64>,
        /// Optional (added within v1): absent means unknown, `0` a genuine zero offset.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        delivered_ns: Option<u64>,
        propagation_ns: u64,
    },
    BlockOrphaned,
    ChainReorganized {
        depth: u32,
    },
    ResourceSample {
        resident_memory_bytes: u64,
        cpu_seconds_total: f64,
    },
}

macro_rules! wire_enum {
    ($(#[$doc:meta])* $wire:ident => $domain:ident { $($variant:ident = $name:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
        pub enum $wire { $(#[serde(rename = $name)] $variant),+ }

        impl From<$domain> for $wire {
            fn from(value: $domain) -> Self {
                match value { $($domain::$variant => $wire::$variant),+ }
            }
        }

        impl From<$wire> for $domain {
            fn from(value: $wire) -> Self {
                match value { $($wire::$variant => $domain::$variant),+ }
            }
        }
    };
}

wire_enum!(
    /// `inbound` or `outbound`.
    WireDirection => Direction { Inbound = "inbound", Outbound = "outbound" }
);
wire_enum!(
    /// The closed disconnect reason; the node classifies its free text before it reaches the wire.
    WireReason => DisconnectReason {
        Requested = "requested", Timeout = "timeout", Protocol = "protocol", Io = "io", Other = "other",
    }
);
wire_enum!(
    /// The `NetMessage` variant in lower case, as the `type` label.
    WireMessageKind => MessageKind {
        Version = "version", VerAck = "verack", GetHeaders = "getheaders", Headers = "headers",
        Ping = "ping", Pong = "pong", GetAddr = "getaddr", Addr = "addr", Inv = "inv",
        GetData = "getdata", Tx = "tx", Block = "block", Reject = "reject",
    }
);

/// The items of an inv. Serialized as `[{"type":"block","hash":"<64 hex>"}, ...]`; decoding never
/// fails on a bad hash or on too many items, it records the problem so the reader can count the
/// precise reason.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Inventory<'a> {
    pub items: Cow<'a, [InventoryItem]>,
    pub problem: Option<Reject>,
}

impl<'a> Inventory<'a> {
    pub fn borrowed(items: &'a [InventoryItem]) -> Self {
        Inventory {
            items: Cow::Borrowed(items),
            problem: None,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty() && self.problem.is_none()
    }
}

/// Lower-case hex of a hash, without allocating.
pub fn hex32(hash: &[u8; 32], out: &mut [u8; 64]) {
    hex::encode_to_slice(hash, out).expect("64 hex digits hold 32 bytes");
}

/// 64 hex digits (either case) to bytes.
pub fn parse_hex32(text: &str) -> Option<[u8; 32]> {
    let mut hash = [0u8; 32];
    hex::decode_to_slice(text, &mut hash).ok().map(|()| hash)
}

/// A 32-byte hash as 64 hex digits. Reading never fails on a string that is not a hash: it is
/// `None`, and the record is refused as [`Reject::BadHash`] rather than as a type error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hash(pub Option<[u8; 32]>);

impl Serialize for Hash {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut hex = [0u8; 64];
        hex32(&self.0.unwrap_or_default(), &mut hex);
        serializer.serialize_str(std::str::from_utf8(&hex).expect("hex digits are ASCII"))
    }
}

impl<'de> Deserialize<'de> for Hash {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <Cow<'de, str>>::deserialize(deserializer)?;
        Ok(Hash(parse_hex32(&text)))
    }
}

struct WireItem<'i>(&'i InventoryItem);

impl Serialize for WireItem<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut hex = [0u8; 64];
        hex32(&self.0.hash, &mut hex);
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("type", &WireInvType::from(self.0.kind))?;
        map.serialize_entry(
            "hash",
            std::str::from_utf8(&hex).expect("hex digits are ASCII"),
        )?;
        map.end()
    }
}

wire_enum!(
    /// Kind of an inventory item.
    WireInvType => InvType { Transaction = "transaction", Block = "block" }
);

impl Serialize for Inventory<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.items.len()))?;
        for item in self.items.iter() {
            seq.serialize_element(&WireItem(item))?;
        }
        seq.end()
    }
}

/// An item as read: the hash is checked after parsing so a bad one is its own reason.
#[derive(Deserialize)]
struct ReadItem {
    #[serde(rename = "type")]
    kind: WireInvType,
    hash: Hash,
}

impl<'de: 'a, 'a> Deserialize<'de> for Inventory<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Items;
        impl<'de> Visitor<'de> for Items {
            type Value = Inventory<'static>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of inventory items")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(MAX_ITEMS));
                let mut problem = None;
                let mut count = 0usize;
                while let Some(item) = seq.next_element::<ReadItem>()? {
                    count += 1;
                    if count > MAX_ITEMS {
                        // Keep reading (the line is bounded) but stop storing.
                        problem = Some(Reject::TooManyItems);
                        continue;
                    }
                    match item.hash.0 {
                        Some(hash) => items.push(InventoryItem {
                            kind: item.kind.into(),
                            hash,
                        }),
                        None => problem = problem.or(Some(Reject::BadHash)),
                    }
                }
                Ok(Inventory {
                    items: Cow::Owned(items),
                    problem,
                })
            }
        }
        deserializer.deserialize_seq(Items)
    }
}

impl<'a> Body<'a> {
    /// The record of an observation, borrowing its names and items.
    pub fn from_observation(observation: &Observation<'a>) -> Body<'a> {
        match *observation {
            Observation::ChannelOpened { channel, capacity } => Body::ChannelOpened {
                channel: Cow::Borrowed(channel),
                capacity: capacity as u64,
            },
            Observation::PeerConnected { direction } => Body::PeerConnected {
                direction: direction.into(),
            },
            Observation::PeerRefused => Body::PeerRefused,
            Observation::PeerDisconnected { reason } => Body::PeerDisconnected {
                reason: reason.into(),
            },
            Observation::EventSent {
                channel,
                queued,
                capacity,
            } => Body::EventSent {
                channel: Cow::Borrowed(channel),
                queued: queued as u64,
                capacity: capacity as u64,
            },
            Observation::MessageEmitted { kind, inventory } => Body::MessageEmitted {
                message_type: kind.into(),
                inventory: Inventory::borrowed(inventory),
            },
            Observation::EventReceived {
                subscriber,
                latency,
            } => Body::EventReceived {
                subscriber: Cow::Borrowed(subscriber),
                latency_ns: nanos(latency),
            },
            Observation::SubscriberLagged {
                subscriber,
                skipped,
            } => Body::SubscriberLagged {
                subscriber: Cow::Borrowed(subscriber),
                skipped,
            },
            Observation::InvDropped => Body::InvDropped,
            Observation::BlockAccepted {
                hash,
                height,
                received,
                delivered,
                propagation,
            } => Body::BlockAccepted {
                hash: Hash(Some(hash)),
                height,
                received_ns: received.map(nanos),
                delivered_ns: delivered.map(nanos),
                propagation_ns: nanos(propagation),
            },
            Observation::BlockOrphaned => Body::BlockOrphaned,
            Observation::ChainReorganized { depth } => Body::ChainReorganized { depth },
            Observation::ResourceSample {
                resident_memory_bytes,
                cpu_seconds_total,
            } => Body::ResourceSample {
                resident_memory_bytes,
                cpu_seconds_total,
            },
        }
    }

    /// The observation this record carries; `None` for `hello` and `stats`.
    pub fn observation(&self) -> Option<Observation<'_>> {
        Some(match self {
            Body::Hello { .. } | Body::Stats { .. } => return None,
            Body::ChannelOpened { channel, capacity } => Observation::ChannelOpened {
                channel,
                capacity: usize_of(*capacity),
            },
            Body::PeerConnected { direction } => Observation::PeerConnected {
                direction: (*direction).into(),
            },
            Body::PeerRefused => Observation::PeerRefused,
            Body::PeerDisconnected { reason } => Observation::PeerDisconnected {
                reason: (*reason).into(),
            },
            Body::EventSent {
                channel,
                queued,
                capacity,
            } => Observation::EventSent {
                channel,
                queued: usize_of(*queued),
                capacity: usize_of(*capacity),
            },
            Body::MessageEmitted {
                message_type,
                inventory,
            } => Observation::MessageEmitted {
                kind: (*message_type).into(),
                inventory: &inventory.items,
            },
            Body::EventReceived {
                subscriber,
                latency_ns,
            } => Observation::EventReceived {
                subscriber,
                latency: Duration::from_nanos(*latency_ns),
            },
            Body::SubscriberLagged {
                subscriber,
                skipped,
            } => Observation::SubscriberLagged {
                subscriber,
                skipped: *skipped,
            },
            Body::InvDropped => Observation::InvDropped,
            Body::BlockAccepted {
                hash,
                height,
                received_ns,
                delivered_ns,
                propagation_ns,
            } => Observation::BlockAccepted {
                // A record with a bad hash never gets here: `problem` refuses it.
                hash: hash.0.unwrap_or_default(),
                height: *height,
                received: received_ns.map(Duration::from_nanos),
                delivered: delivered_ns.map(Duration::from_nanos),
                propagation: Duration::from_nanos(*propagation_ns),
            },
            Body::BlockOrphaned => Observation::BlockOrphaned,
            Body::ChainReorganized { depth } => Observation::ChainReorganized { depth: *depth },
            Body::ResourceSample {
                resident_memory_bytes,
                cpu_seconds_total,
            } => Observation::ResourceSample {
                resident_memory_bytes: *resident_memory_bytes,
                cpu_seconds_total: *cpu_seconds_total,
            },
        })
    }

    /// A check serde cannot express: what makes a well-formed record unusable.
    fn problem(&self) -> Option<Reject> {
        match self {
            Body::MessageEmitted { inventory, .. } => inventory.problem,
            Body::BlockAccepted {
                hash: Hash(None), ..
            } => Some(Reject::BadHash),
            Body::ResourceSample {
                cpu_seconds_total, ..
            } if !(cpu_seconds_total.is_finite() && *cpu_seconds_total >= 0.0) => {
                Some(Reject::Invalid)
            }
            Body::Hello {
                session,
                client,
                token,
                ..
            } if [Some(session), Some(client), token.as_ref()]
                .into_iter()
                .flatten()
                .any(|s| s.len() > MAX_HELLO_FIELD) =>
            {
                Some(Reject::Invalid)
            }
            _ => None,
        }
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

fn usize_of(value: u64) -> usize {
    usize::try_from(value).unwrap_or(usize::MAX)
}

/// Appends `record` and a newline to `out`.
pub fn encode_into(record: &Record<'_>, out: &mut Vec<u8>) {
    serde_json::to_writer(&mut *out, record).expect("records always serialize");
    out.push(b'\n');
}

/// One record as a line, newline included.
pub fn encode(record: &Record<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    encode_into(record, &mut out);
    out
}

/// Decodes one line (without its newline), or says precisely why it is not a record.
pub fn decode(line: &[u8]) -> Result<Record<'_>, Reject> {
    if line.len() > MAX_LINE_BYTES {
        return Err(Reject::Oversize);
    }
    if line.iter().all(u8::is_ascii_whitespace) {
        return Err(Reject::Empty);
    }
    let text = std::str::from_utf8(line).map_err(|_| Reject::InvalidUtf8)?;
    match serde_json::from_str::<Record<'_>>(text) {
        Ok(record) if record.v == 0 || record.v > VERSION => Err(Reject::UnknownVersion),
        Ok(record) => match record.body.problem() {
            Some(reason) => Err(reason),
            None => Ok(record),
        },
        Err(err) if err.is_data() => Err(version_or_invalid(text)),
        Err(_) => Err(Reject::Malformed),
    }
}

/// A record that does not fit this version's shape may be a newer version's: say which, since
/// "upgrade the sidecar" is a different fix from "the node writes garbage". Only runs on errors.
fn version_or_invalid(text: &str) -> Reject {
    #[derive(Deserialize)]
    struct VersionOnly {
        v: u64,
    }
    match serde_json::from_str::<VersionOnly>(text) {
        Ok(VersionOnly { v }) if v == 0 || v > u64::from(VERSION) => Reject::UnknownVersion,
        _ => Reject::Invalid,
    }
}
