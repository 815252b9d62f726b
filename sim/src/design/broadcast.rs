//! The node's router as it is, at a given channel capacity.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use p2p_observe::Observer;
use p2p_router::{NetMessage, PeerId, PeerSink, Router, RouterError, Subscriber, VersionInfo};
use p2p_workload::{ConsumerCost, NodeModel, VirtualConsumer as Consumer};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{Design, CONSUMER};
use crate::channel::{payload_len, HeldBytes};

/// The node's router as it is: the reference router with one consumer loop, at a given capacity
/// (Scenario C grows it).
pub struct Broadcast {
    router: Router,
    consumer: Consumer<Subscriber>,
    held: HeldBytes,
    node: NodeModel,
    cost: ConsumerCost,
    pub(super) observer: Arc<dyn Observer>,
}

impl Broadcast {
    pub fn new(
        capacity: usize,
        max_peers: usize,
        cost: ConsumerCost,
        observer: Arc<dyn Observer>,
    ) -> Broadcast {
        let router = Router::builder(max_peers)
            .capacity(capacity)
            .observer(Arc::clone(&observer))
            .build();
        let consumer = Consumer::new(router.subscribe(CONSUMER));
        Broadcast {
            router,
            consumer,
            held: HeldBytes::default(),
            node: NodeModel::default(),
            cost,
            observer,
        }
    }

    fn sent(&mut self, size: u64) {
        self.held.sent(size);
    }
}

impl PeerSink for Broadcast {
    fn register_peer(
        &mut self,
        inbound: bool,
        address: SocketAddr,
        version: VersionInfo,
        sender: mpsc::Sender<NetMessage>,
    ) -> Result<PeerId, RouterError> {
        let id = self
            .router
            .register_peer(inbound, address, version, sender)?;
        self.sent(0);
        Ok(id)
    }

    fn disconnect(&mut self, peer_id: PeerId, reason: &str) {
        if self.router.disconnect(peer_id, reason) {
            self.sent(0);
        }
    }

    fn emit_message(&mut self, peer_id: PeerId, message: NetMessage) {
        let size = payload_len(&message);
        self.router.emit_message(peer_id, message);
        self.sent(size);
    }
}

impl Design for Broadcast {
    fn catch_up(&mut self, now: Instant) {
        self.consumer
            .catch_up(now, &mut self.node, &self.cost, self.observer.as_ref());
    }

    fn held_bytes(&mut self) -> u64 {
        self.held.trim(self.router.queued());
        self.held.total()
    }

    fn consumer_busy(&mut self, now: Instant) -> Option<Duration> {
        Some(self.consumer.busy(now))
    }
}
