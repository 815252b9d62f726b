//! Phase 4.2: peers partitioned into shards, each with its own channel.

use std::net::SocketAddr;
use std::sync::Arc;

use p2p_observe::Observer;
use p2p_router::{NetMessage, PeerEvent, PeerId, PeerSink, RouterError, VersionInfo};
use p2p_workload::ConsumerCost;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::multi_channel::{multi_channel_design, MultiChannel};
use super::Design;
use crate::channel::Receiver;

pub const SHARDS: [&str; 8] = [
    "shard0", "shard1", "shard2", "shard3", "shard4", "shard5", "shard6", "shard7",
];
/// Capacity of each shard's channel: the node's channel, per shard.
pub const SHARD_CAPACITY: usize = 2048;

/// Phase 4.2: peers partitioned into 8 shards by id, each with its own channel and event loop.
pub struct Sharded(MultiChannel);

impl Sharded {
    pub fn new(max_peers: usize, cost: ConsumerCost, observer: Arc<dyn Observer>) -> Sharded {
        let shards: Vec<_> = SHARDS.iter().map(|s| (*s, SHARD_CAPACITY)).collect();
        Sharded(MultiChannel::new(&shards, max_peers, cost, observer))
    }

    pub fn shard_of(peer_id: PeerId) -> usize {
        (peer_id.0 % SHARDS.len() as u64) as usize
    }

    /// Another receiver of one shard's channel (a component that reads that shard).
    pub fn subscribe(&self, shard: usize, name: &'static str) -> Receiver<PeerEvent> {
        self.0.channels[shard].subscribe(name)
    }
}

multi_channel_design!(Sharded, |peer: PeerId, _: &PeerEvent| Sharded::shard_of(
    peer
));
