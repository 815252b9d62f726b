//! Scenario A: duplicate inventory dropped before it enters the channel.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use p2p_observe::{Observation, Observer};
use p2p_router::dedup::DedupTracker;
use p2p_router::{NetMessage, PeerId, PeerSink, RouterError, VersionInfo};
use p2p_workload::ConsumerCost;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{Broadcast, Design};

/// The scaling document's dedup window: 5 s.
pub const DEDUP_WINDOW: Duration = Duration::from_secs(5);

/// The exporter's duplicate tracker, unbounded: the simulator's duplicate ratio and the exporter's
/// then agree, and `dedup` drops exactly what they count. (A capped tracker would under-count when
/// a scenario announces more items in 5 s than the cap.)
pub fn inv_window() -> DedupTracker {
    DedupTracker::new(DEDUP_WINDOW, usize::MAX)
}

/// Scenario A: the node's router behind a 5 s inventory cache that drops an `inv` whose every item
/// it has seen, before it enters the channel.
pub struct Dedup {
    inner: Broadcast,
    window: DedupTracker,
}

impl Dedup {
    pub fn new(max_peers: usize, cost: ConsumerCost, observer: Arc<dyn Observer>) -> Dedup {
        Dedup {
            inner: Broadcast::new(2048, max_peers, cost, observer),
            window: inv_window(),
        }
    }
}

impl PeerSink for Dedup {
    fn register_peer(
        &mut self,
        inbound: bool,
        address: SocketAddr,
        version: VersionInfo,
        sender: mpsc::Sender<NetMessage>,
    ) -> Result<PeerId, RouterError> {
        self.inner.register_peer(inbound, address, version, sender)
    }

    fn disconnect(&mut self, peer_id: PeerId, reason: &str) {
        self.inner.disconnect(peer_id, reason)
    }

    fn emit_message(&mut self, peer_id: PeerId, message: NetMessage) {
        if let NetMessage::Inv(inventory) = &message {
            if self
                .window
                .check(&inventory.items, Instant::now())
                .duplicate
            {
                // The peer did send it: count the message, then the drop.
                let observer = &self.inner.observer;
                observer.observe(Observation::MessageEmitted {
                    kind: message.kind(),
                    inventory: &inventory.items,
                });
                observer.observe(Observation::InvDropped);
                return;
            }
        }
        self.inner.emit_message(peer_id, message)
    }
}

impl Design for Dedup {
    fn catch_up(&mut self, now: Instant) {
        self.inner.catch_up(now)
    }

    fn held_bytes(&mut self) -> u64 {
        self.inner.held_bytes()
    }
}
