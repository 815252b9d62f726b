//! The node's P2P types, as its router exposes them.

use std::fmt;
use std::net::SocketAddr;

pub use p2p_observe::{InvType, InventoryItem, MessageKind};

/// A peer's identity, shown as 16 hex digits like the node does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub u64);

impl PeerId {
    /// Peer ids look random in the node; a bijective mix of a counter keeps them unique and
    /// reproducible.
    pub fn from_counter(counter: u64) -> PeerId {
        let mut z = counter.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        PeerId(z ^ (z >> 31))
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Inventory {
    pub items: Vec<InventoryItem>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockHeader {
    pub prev_hash: [u8; 32],
    pub hash: [u8; 32],
    pub height: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeAddr {
    pub address: SocketAddr,
    pub services: u64,
}

/// What the router keeps of a peer's handshake.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionInfo {
    pub protocol: u32,
    pub best_height: u64,
}

/// A `version` message with every field the node's handshake carries. It is the largest
/// message, so it sets the size of every `NetMessage` and of every broadcast slot: the fields
/// are here for their layout as much as for their content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version {
    pub protocol: u32,
    pub services: u64,
    pub timestamp: i64,
    pub receiver: NodeAddr,
    pub sender: NodeAddr,
    pub nonce: u64,
    pub user_agent: String,
    pub best_height: u64,
    pub auth_tag: [u8; 32],
}

impl Version {
    /// A handshake announcing `protocol` and `best_height`; addresses unspecified, the rest zero.
    pub fn new(protocol: u32, best_height: u64) -> Version {
        let unspecified = NodeAddr {
            address: SocketAddr::from(([0, 0, 0, 0], 0)),
            services: 0,
        };
        Version {
            protocol,
            services: 0,
            timestamp: 0,
            receiver: unspecified.clone(),
            sender: unspecified,
            nonce: 0,
            user_agent: String::new(),
            best_height,
            auth_tag: [0; 32],
        }
    }
}

/// A protocol message, one variant per message of the node's wire protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetMessage {
    Version(Version),
    VerAck,
    GetHeaders {
        locator: Vec<[u8; 32]>,
        stop_hash: [u8; 32],
    },
    Headers(Vec<BlockHeader>),
    Ping(u64),
    Pong(u64),
    GetAddr,
    Addr(Vec<NodeAddr>),
    Inv(Inventory),
    GetData(Inventory),
    Tx(Vec<u8>),
    Block(Vec<u8>),
    Reject {
        code: u16,
        reason: String,
    },
}

impl NetMessage {
    pub fn kind(&self) -> MessageKind {
        match self {
            NetMessage::Version(_) => MessageKind::Version,
            NetMessage::VerAck => MessageKind::VerAck,
            NetMessage::GetHeaders { .. } => MessageKind::GetHeaders,
            NetMessage::Headers(_) => MessageKind::Headers,
            NetMessage::Ping(_) => MessageKind::Ping,
            NetMessage::Pong(_) => MessageKind::Pong,
            NetMessage::GetAddr => MessageKind::GetAddr,
            NetMessage::Addr(_) => MessageKind::Addr,
            NetMessage::Inv(_) => MessageKind::Inv,
            NetMessage::GetData(_) => MessageKind::GetData,
            NetMessage::Tx(_) => MessageKind::Tx,
            NetMessage::Block(_) => MessageKind::Block,
            NetMessage::Reject { .. } => MessageKind::Reject,
        }
    }

    /// The announced items when this is an `inv`; empty otherwise.
    pub fn announced_items(&self) -> &[InventoryItem] {
        match self {
            NetMessage::Inv(inventory) => &inventory.items,
            _ => &[],
        }
    }
}

/// What the router knows about a registered peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerSummary {
    pub id: PeerId,
    pub address: SocketAddr,
    pub inbound: bool,
    pub version: VersionInfo,
}

/// An event on the router's broadcast channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerEvent {
    Connected(PeerSummary),
    Disconnected {
        peer_id: PeerId,
        reason: String,
    },
    Message {
        peer_id: PeerId,
        message: NetMessage,
    },
}

/// Bytes one slot of a `tokio::sync::broadcast` channel of `T` occupies: tokio keeps each value
/// as `Mutex<Slot { rem: usize, pos: u64, val: Option<T> }>` (std's mutex: tokio's `parking_lot`
/// feature is off), and allocates every slot when the channel is created.
pub const fn broadcast_slot_bytes<T>() -> usize {
    std::mem::size_of::<std::sync::Mutex<(usize, u64, Option<T>)>>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_event_has_the_nodes_layout() {
        // The node's handshake fields set the size of every message and event.
        assert_eq!(std::mem::size_of::<Version>(), 176);
        assert_eq!(std::mem::size_of::<NetMessage>(), 176);
        assert_eq!(std::mem::size_of::<PeerEvent>(), 184);
        assert_eq!(broadcast_slot_bytes::<PeerEvent>(), 208);
    }

    #[test]
    fn peer_id_shows_as_16_hex_digits() {
        assert_eq!(PeerId(0xab).to_string(), "00000000000000ab");
        assert_eq!(PeerId(u64::MAX).to_string(), "ffffffffffffffff");
    }

    #[test]
    fn only_inv_announces_items() {
        let item = InventoryItem {
            kind: InvType::Block,
            hash: [1; 32],
        };
        let inv = NetMessage::Inv(Inventory { items: vec![item] });
        let getdata = NetMessage::GetData(Inventory { items: vec![item] });
        assert_eq!(inv.announced_items(), &[item]);
        assert!(getdata.announced_items().is_empty());
        assert_eq!(getdata.kind(), MessageKind::GetData);
    }
}
