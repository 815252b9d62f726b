//! The lines of a recording: a header, arrivals, an end line.

use std::net::SocketAddr;
use std::time::Duration;

use p2p_router::block::decode_block_header;
use p2p_router::{BlockHeader, InventoryItem, NetMessage, PeerId, Version};
use p2p_tap::wire::{Hash, WireInvType, WireMessageKind};
use p2p_workload::ConsumerCost;
use serde::{Deserialize, Serialize};

/// The `format` of every recording's header.
pub const FORMAT: &str = "p2p-recording";
/// The version this build writes, and the newest it reads.
pub const VERSION: u32 = 1;
/// Where observations (and so a recording's arrivals) come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The embedded reference router: a recording holds the calls into its `PeerSink` (peers,
    /// messages and their payload sizes, exactly).
    Embedded,
    /// A real node through its tap client: a recording holds its tap records (kinds and
    /// inventory, no peer identity and no payloads).
    Tap,
}

impl Source {
    /// The name on the command line, in a recording's header and in the `source` label of
    /// `p2p_exporter_build_info`.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Embedded => "embedded",
            Source::Tap => "tap",
        }
    }
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
    /// The router design that was recorded, if not the node's own. Its key stays `strategy`, as
    /// in the recordings already written.
    #[serde(default, rename = "strategy")]
    pub design: Option<String>,
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
            design: None,
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

/// A peer id from its 16 hex digits (either case); anything else, a sign included, is `None`.
pub fn parse_peer(text: &str) -> Option<u64> {
    let mut bytes = [0u8; 8];
    hex::decode_to_slice(text, &mut bytes).ok()?;
    Some(u64::from_be_bytes(bytes))
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
        WireMessageKind::Version => NetMessage::Version(Version::new(0, 0)),
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
            Some(b) => NetMessage::Block(p2p_router::block::encode_block(
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
            NetMessage::Block(p2p_router::block::encode_block(&header, 4096)),
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
            assert_eq!(parse_peer(&peer.to_uppercase()), Some(5));
            let rebuilt = rebuild_message(message_type, &items, size, block.as_ref());
            assert_eq!(rebuilt.kind(), message.kind(), "{line}");
            assert_eq!(rebuilt.announced_items(), message.announced_items());
            assert_eq!(
                rebuilt.announced_items(),
                message.announced_items(),
                "{line}"
            );
            if let (NetMessage::Block(a), NetMessage::Block(b)) = (&rebuilt, &message) {
                assert_eq!(decode_block_header(a), decode_block_header(b));
            }
        }
    }
}
