//! The observation vocabulary.
//!
//! Every source of P2P events (the embedded reference router today, the node-side tap client later)
//! reports what happened as an [`Observation`]; one exporter core turns observations into metrics and
//! never knows which source fed it. Domain code reports, it never touches a metric.
//!
//! Everything that could end up as a metric label is a closed enum here: a remote peer can choose the
//! bytes of a message, never a label value.

use std::fmt;
use std::time::Duration;

/// Kind of an inventory item, as the node's `InvType` (`Transaction = 1`, `Block = 2`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum InvType {
    Transaction = 1,
    Block = 2,
}

/// One announced item: what it is and its 32-byte hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct InventoryItem {
    pub kind: InvType,
    pub hash: [u8; 32],
}

/// The type of a protocol message, one variant per `NetMessage` variant of the node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MessageKind {
    Version,
    VerAck,
    GetHeaders,
    Headers,
    Ping,
    Pong,
    GetAddr,
    Addr,
    Inv,
    GetData,
    Tx,
    Block,
    Reject,
}

impl MessageKind {
    pub const ALL: [MessageKind; 13] = [
        MessageKind::Version,
        MessageKind::VerAck,
        MessageKind::GetHeaders,
        MessageKind::Headers,
        MessageKind::Ping,
        MessageKind::Pong,
        MessageKind::GetAddr,
        MessageKind::Addr,
        MessageKind::Inv,
        MessageKind::GetData,
        MessageKind::Tx,
        MessageKind::Block,
        MessageKind::Reject,
    ];

    /// The `type` label value: the variant name in lower case.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Version => "version",
            MessageKind::VerAck => "verack",
            MessageKind::GetHeaders => "getheaders",
            MessageKind::Headers => "headers",
            MessageKind::Ping => "ping",
            MessageKind::Pong => "pong",
            MessageKind::GetAddr => "getaddr",
            MessageKind::Addr => "addr",
            MessageKind::Inv => "inv",
            MessageKind::GetData => "getdata",
            MessageKind::Tx => "tx",
            MessageKind::Block => "block",
            MessageKind::Reject => "reject",
        }
    }

    /// Dense index into per-kind tables (`0..ALL.len()`).
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for MessageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a peer went away, reduced from the node's free-text reason to a closed set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DisconnectReason {
    /// We asked for it (eviction, shutdown of the peer task, operator request).
    Requested,
    /// The peer stopped answering.
    Timeout,
    /// The peer broke the protocol (bad handshake, invalid message, misbehaviour score).
    Protocol,
    /// The connection failed underneath us (reset, EOF, broken pipe).
    Io,
    /// Anything the rules below do not recognise.
    Other,
}

impl DisconnectReason {
    pub const ALL: [DisconnectReason; 5] = [
        DisconnectReason::Requested,
        DisconnectReason::Timeout,
        DisconnectReason::Protocol,
        DisconnectReason::Io,
        DisconnectReason::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DisconnectReason::Requested => "requested",
            DisconnectReason::Timeout => "timeout",
            DisconnectReason::Protocol => "protocol",
            DisconnectReason::Io => "io",
            DisconnectReason::Other => "other",
        }
    }

    /// Reduces the node's free-text reason to a closed set. The text itself never leaves this
    /// function: it may contain addresses, peer ids or bytes chosen by the remote side.
    pub fn classify(reason: &str) -> DisconnectReason {
        let reason = reason.to_ascii_lowercase();
        let has = |words: &[&str]| words.iter().any(|w| reason.contains(w));
        if has(&["timeout", "timed out", "ping", "stale", "unresponsive"]) {
            DisconnectReason::Timeout
        } else if has(&[
            "protocol",
            "handshake",
            "invalid",
            "malformed",
            "misbehav",
            "version",
            "banned",
            "rate limit",
            "flood",
        ]) {
            DisconnectReason::Protocol
        } else if has(&[
            "reset",
            "eof",
            "broken pipe",
            "io ",
            "io:",
            "i/o",
            "refused",
            "closed",
        ]) {
            DisconnectReason::Io
        } else if has(&["requested", "shutdown", "evict", "disconnect", "max peers"]) {
            DisconnectReason::Requested
        } else {
            DisconnectReason::Other
        }
    }
}

/// Which way a connection was opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    Inbound,
    Outbound,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
}

/// Name of an event channel (`events` for the node's single channel) or of a subscriber (the
/// node's consumer loop is `consumer`). Names come from code, never from the network; the exporter
/// still bounds how many distinct names it will turn into label values.
pub type Name<'a> = &'a str;

/// One thing that happened in the P2P layer.
///
/// Borrowed so that reporting from the hot path allocates nothing: a recorder that must keep
/// something copies it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Observation<'a> {
    /// A channel exists with this capacity. Reported once, when the router is built.
    ChannelOpened { channel: Name<'a>, capacity: usize },
    /// A peer completed its handshake and was registered.
    PeerConnected { direction: Direction },
    /// A registration was refused because the router was at `max_peers`.
    PeerRefused,
    /// A registered peer went away.
    PeerDisconnected { reason: DisconnectReason },
    /// An event went into a channel. `queued` is the channel's length right after the send: events
    /// not yet seen by its slowest subscriber.
    EventSent {
        channel: Name<'a>,
        queued: usize,
        capacity: usize,
    },
    /// A protocol message was emitted by a peer; `inventory` holds the items of an `inv`.
    MessageEmitted {
        kind: MessageKind,
        inventory: &'a [InventoryItem],
    },
    /// A deduplicating router dropped an `inv` whose every item it had seen within its window,
    /// before the message entered a channel.
    InvDropped,
    /// A subscriber received one event, `latency` after it was sent.
    EventReceived {
        subscriber: Name<'a>,
        latency: Duration,
    },
    /// A subscriber fell behind and skipped `skipped` events: exactly the `n` of
    /// `RecvError::Lagged(n)`.
    SubscriberLagged { subscriber: Name<'a>, skipped: u64 },
    /// The node accepted a block onto its chain, `propagation` after the block was first announced
    /// to it. The hash and height identify the block across every node's traces; they never
    /// become labels.
    ///
    /// `received` (the block message itself reached the router) and `delivered` (the node's
    /// consumer took it from its channel) are offsets from the same first announcement; `None`
    /// means unknown (a node that does not measure them, or a record from an older tap client),
    /// while `Some(Duration::ZERO)` is a genuine zero: a block announced by the block itself.
    BlockAccepted {
        hash: [u8; 32],
        height: u64,
        received: Option<Duration>,
        delivered: Option<Duration>,
        propagation: Duration,
    },
    /// A block that did not connect to the best chain.
    BlockOrphaned,
    /// The best chain switched branches, undoing `depth` blocks.
    ChainReorganized { depth: u32 },
    /// The node's resource use, sampled periodically.
    ResourceSample {
        resident_memory_bytes: u64,
        cpu_seconds_total: f64,
    },
}

/// Receives observations. Called on the node's hot path: an implementation must never block and
/// should cost no more than a few atomic operations.
pub trait Observer: Send + Sync + 'static {
    fn observe(&self, observation: Observation<'_>);
}

/// Discards everything; the baseline for measuring what observing costs.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoopObserver;

impl Observer for NoopObserver {
    fn observe(&self, _observation: Observation<'_>) {}
}

impl<T: Observer + ?Sized> Observer for std::sync::Arc<T> {
    fn observe(&self, observation: Observation<'_>) {
        (**self).observe(observation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_kind_labels_are_lower_case_variant_names_and_indices_are_dense() {
        let labels: Vec<_> = MessageKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(
            labels,
            [
                "version",
                "verack",
                "getheaders",
                "headers",
                "ping",
                "pong",
                "getaddr",
                "addr",
                "inv",
                "getdata",
                "tx",
                "block",
                "reject"
            ]
        );
        for (i, kind) in MessageKind::ALL.iter().enumerate() {
            assert_eq!(kind.index(), i);
        }
    }

    #[test]
    fn disconnect_reasons_are_reduced_to_a_closed_set() {
        let cases = [
            ("ping timeout after 60s", DisconnectReason::Timeout),
            ("Handshake failed: bad magic", DisconnectReason::Protocol),
            (
                "invalid block from 10.0.0.7:8333",
                DisconnectReason::Protocol,
            ),
            ("connection reset by peer", DisconnectReason::Io),
            ("unexpected EOF", DisconnectReason::Io),
            ("shutdown requested", DisconnectReason::Requested),
            ("evicted: max peers", DisconnectReason::Requested),
            ("rate limit exceeded", DisconnectReason::Protocol),
            ("\u{1F600} attacker-chosen text", DisconnectReason::Other),
            ("", DisconnectReason::Other),
        ];
        for (text, expected) in cases {
            assert_eq!(DisconnectReason::classify(text), expected, "{text:?}");
        }
    }
}
