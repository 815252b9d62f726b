//! Phase 4.3: the node's channel with shared block and transaction bodies.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use p2p_observe::Observer;
use p2p_router::{NetMessage, PeerId, PeerSink, RouterError, VersionInfo, EVENTS_CHANNEL};
use p2p_workload::{ConsumerCost, Inbox, NodeModel, VirtualConsumer as Consumer};
use tokio::sync::broadcast::error::TryRecvError;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{Design, Peers, CONSUMER};
use crate::channel::{payload_len, Channel, Receiver, SHARED_CLONE};

/// A message whose block or transaction body is shared (`Bytes`, reference counted) instead of
/// owned: every receiver of a broadcast slot gets the same bytes.
#[derive(Clone, Debug)]
pub enum SharedMessage {
    Block(Bytes),
    Tx(Bytes),
    Other(NetMessage),
}

#[derive(Clone, Debug)]
pub enum SharedEvent {
    Connected(PeerId),
    Disconnected(PeerId),
    Message {
        peer_id: PeerId,
        message: SharedMessage,
    },
}

impl SharedMessage {
    /// Takes ownership of the `Vec<u8>` body: no copy, here or at any receiver.
    pub fn from_message(message: NetMessage) -> SharedMessage {
        match message {
            NetMessage::Block(bytes) => SharedMessage::Block(Bytes::from(bytes)),
            NetMessage::Tx(bytes) => SharedMessage::Tx(Bytes::from(bytes)),
            other => SharedMessage::Other(other),
        }
    }
}

impl Inbox for Receiver<SharedEvent> {
    fn take(
        &mut self,
        at: Instant,
        node: &mut NodeModel,
        cost: &ConsumerCost,
        observer: &dyn Observer,
    ) -> Result<Instant, TryRecvError> {
        let (event, sent_at) = self.try_recv_at(at)?;
        let started = at.max(sent_at);
        let spent = match &event {
            SharedEvent::Message { message, .. } => match message {
                SharedMessage::Block(bytes) => {
                    SHARED_CLONE + node.block(bytes, sent_at, started, cost, observer)
                }
                SharedMessage::Tx(_) => SHARED_CLONE + cost.of_kind(p2p_observe::MessageKind::Tx),
                SharedMessage::Other(NetMessage::Inv(inventory)) => {
                    node.on_inv(&inventory.items, sent_at);
                    cost.message
                }
                SharedMessage::Other(other) => cost.of_kind(other.kind()),
            },
            _ => cost.message,
        };
        Ok(started + spent)
    }
}

/// Phase 4.3: the node's single channel of 2048, with block and transaction bodies as `Bytes`.
pub struct ZeroCopy {
    peers: Peers,
    channel: Channel<SharedEvent>,
    consumer: Consumer<Receiver<SharedEvent>>,
    node: NodeModel,
    cost: ConsumerCost,
    observer: Arc<dyn Observer>,
}

impl ZeroCopy {
    pub fn new(max_peers: usize, cost: ConsumerCost, observer: Arc<dyn Observer>) -> ZeroCopy {
        let channel = Channel::new(EVENTS_CHANNEL, 2048, Arc::clone(&observer));
        let consumer = Consumer::new(channel.subscribe(CONSUMER));
        ZeroCopy {
            peers: Peers::new(max_peers, Arc::clone(&observer)),
            channel,
            consumer,
            node: NodeModel::default(),
            cost,
            observer,
        }
    }

    /// A receiver of the design's channel, for checking what receivers share.
    pub fn subscribe(&self, name: &'static str) -> Receiver<SharedEvent> {
        self.channel.subscribe(name)
    }
}

impl PeerSink for ZeroCopy {
    fn register_peer(
        &mut self,
        inbound: bool,
        address: SocketAddr,
        version: VersionInfo,
        _sender: mpsc::Sender<NetMessage>,
    ) -> Result<PeerId, RouterError> {
        let id = self.peers.register(inbound, address, version)?.id;
        self.channel.send(SharedEvent::Connected(id), 0);
        Ok(id)
    }

    fn disconnect(&mut self, peer_id: PeerId, reason: &str) {
        if self.peers.disconnect(peer_id, reason) {
            self.channel.send(SharedEvent::Disconnected(peer_id), 0);
        }
    }

    fn emit_message(&mut self, peer_id: PeerId, message: NetMessage) {
        self.peers.emitted(&message);
        let size = payload_len(&message);
        let message = SharedMessage::from_message(message);
        self.channel
            .send(SharedEvent::Message { peer_id, message }, size);
    }
}

impl Design for ZeroCopy {
    fn catch_up(&mut self, now: Instant) {
        self.consumer
            .catch_up(now, &mut self.node, &self.cost, self.observer.as_ref());
    }

    fn held_bytes(&mut self) -> u64 {
        self.channel.held_bytes()
    }
}
