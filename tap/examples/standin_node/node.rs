//! A stand-in for the node: its own router (one `tokio::sync::broadcast` channel of 2048 of the
//! node's own event type, the node's API shape) and its consumer loop, with the tap calls exactly
//! where `docs/tap-integration.md` puts them. Each call is marked `// TAP:`.
//!
//! Shared by the example binary (`main.rs`), the tests that prove the tap source gives the same
//! metrics as the embedded source, and the benchmark of what the tap costs the node.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use p2p_observe::{Direction, DisconnectReason, MessageKind};
use p2p_router::{
    InvType, Inventory, InventoryItem, NetMessage, PeerEvent, PeerId, PeerSummary, VersionInfo,
};
use p2p_tap::{ChannelTap, SubscriberTap, Tap};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::{broadcast, mpsc};

pub const EVENT_CHANNEL_SIZE: usize = 2048;
/// The names the node's code gives its channel and its consumer loop (label values).
pub const CHANNEL: &str = "events";
pub const CONSUMER: &str = "consumer";

/// TAP: the one `match` the node writes: the message type of an event, for the consumer's
/// service-time histograms.
pub fn event_kind(event: &PeerEvent) -> Option<MessageKind> {
    match event {
        PeerEvent::Message { message, .. } => Some(message.kind()),
        _ => None,
    }
}

struct PeerHandle {
    summary: PeerSummary,
    sender: mpsc::Sender<NetMessage>,
}

struct RouterInner {
    peers: RwLock<HashMap<PeerId, PeerHandle>>,
    events: broadcast::Sender<PeerEvent>,
    max_peers: usize,
    next_peer: AtomicU64,
    // TAP: the router holds the tap handle and its channel's counts.
    tap: Tap,
    events_tap: ChannelTap,
}

#[derive(Clone)]
pub struct Router {
    inner: Arc<RouterInner>,
}

impl Router {
    pub fn new(max_peers: usize, capacity: usize, tap: Tap) -> Router {
        let (events, _) = broadcast::channel(capacity);
        // TAP: the channel and its capacity, once, where it is built.
        let events_tap = tap.channel(CHANNEL, capacity);
        Router {
            inner: Arc::new(RouterInner {
                peers: RwLock::new(HashMap::new()),
                events,
                max_peers,
                next_peer: AtomicU64::new(1),
                tap,
                events_tap,
            }),
        }
    }

    /// The node's public `subscribe()`, unchanged.
    pub fn subscribe(&self) -> broadcast::Receiver<PeerEvent> {
        self.inner.events.subscribe()
    }

    /// The consumer loop, as the node's main builds it.
    pub fn consumer(&self) -> Consumer {
        let receiver = self.subscribe();
        Consumer {
            receiver,
            // TAP: the subscriber's counts, right after subscribing.
            tap: self.inner.tap.clone(),
            counts: self
                .inner
                .tap
                .subscriber(&self.inner.events_tap, CONSUMER, event_kind),
            tip_height: 0,
        }
    }

    pub fn register_peer(
        &self,
        inbound: bool,
        address: SocketAddr,
        version: VersionInfo,
        sender: mpsc::Sender<NetMessage>,
    ) -> Result<PeerId, String> {
        let summary = {
            let mut peers = self.inner.peers.write().unwrap();
            if peers.len() >= self.inner.max_peers {
                drop(peers);
                // TAP: a refused registration.
                self.inner.tap.peer_refused();
                return Err(format!("peer limit reached ({})", self.inner.max_peers));
            }
            let id = PeerId(self.inner.next_peer.fetch_add(1, Ordering::Relaxed));
            let summary = PeerSummary {
                id,
                address,
                inbound,
                version,
            };
            peers.insert(
                id,
                PeerHandle {
                    summary: summary.clone(),
                    sender,
                },
            );
            summary
        };
        let id = summary.id;
        // TAP: a registered peer, by direction.
        self.inner.tap.peer_connected(if inbound {
            Direction::Inbound
        } else {
            Direction::Outbound
        });
        self.publish(PeerEvent::Connected(summary));
        Ok(id)
    }

    pub fn disconnect(&self, peer_id: PeerId, reason: impl Into<String>) -> bool {
        let removed = self.inner.peers.write().unwrap().remove(&peer_id).is_some();
        if removed {
            let reason = reason.into();
            // TAP: the free-text reason is reduced to a closed set here, in the node; the text
            // never leaves the process.
            self.inner
                .tap
                .peer_disconnected(DisconnectReason::classify(&reason));
            self.publish(PeerEvent::Disconnected { peer_id, reason });
        }
        removed
    }

    pub fn send(&self, peer_id: PeerId, message: NetMessage) -> bool {
        let peers = self.inner.peers.read().unwrap();
        peers
            .get(&peer_id)
            .is_some_and(|peer| peer.sender.try_send(message).is_ok())
    }

    pub fn emit_message(&self, peer_id: PeerId, message: NetMessage) {
        // TAP: the message's type, and an inv's items read in place.
        self.inner
            .tap
            .message(message.kind(), message.announced_items());
        self.publish(PeerEvent::Message { peer_id, message });
    }

    fn publish(&self, event: PeerEvent) {
        // TAP: the send, through the channel's counts (sent, or reached no subscriber).
        let _ = self.inner.events_tap.send(&self.inner.events, event);
    }
}

/// The node's consumer loop.
pub struct Consumer {
    receiver: broadcast::Receiver<PeerEvent>,
    tap: Tap,
    counts: SubscriberTap<PeerEvent>,
    tip_height: u64,
}

impl Consumer {
    /// The loop as it runs in the node: handle each event, log on `Lagged`.
    pub async fn run(mut self, block_cost: Duration) {
        loop {
            // TAP: `recv` through the subscriber's counts (received, lagged, latency, service).
            match self.counts.recv(&mut self.receiver).await {
                Ok(event) => {
                    if self.handle(event) {
                        tokio::time::sleep(block_cost).await;
                    }
                }
                Err(RecvError::Lagged(skipped)) => {
                    eprintln!("WARN peer event loop lagged skipped={skipped}")
                }
                Err(RecvError::Closed) => return,
            }
        }
    }

    /// Everything queued now, without waiting; returns how many events were handled and how
    /// many `Lagged(n)` skipped, counted here as the node counts them, apart from the tap.
    pub fn drain(&mut self) -> (u64, u64) {
        let (mut handled, mut skipped_total) = (0, 0);
        loop {
            self.counts.before_recv();
            let result = self.receiver.try_recv();
            // TAP: a node that calls `try_recv` itself reports what it returned.
            self.counts.after_try_recv(&result);
            match result {
                Ok(event) => {
                    self.handle(event);
                    handled += 1;
                }
                Err(TryRecvError::Lagged(skipped)) => skipped_total += skipped,
                Err(_) => return (handled, skipped_total),
            }
        }
    }

    /// Returns whether the event was a block (the slow case).
    fn handle(&mut self, event: PeerEvent) -> bool {
        let PeerEvent::Message { message, .. } = event else {
            return false;
        };
        let NetMessage::Block(bytes) = message else {
            return false;
        };
        if let Some((hash, height)) = decode_block(&bytes) {
            if height > self.tip_height {
                self.tip_height = height;
                // TAP: the block is on the chain; its propagation is timed from its first inv.
                self.tap.block_accepted(&hash, height);
            } else {
                // TAP: a block that did not connect to the best chain.
                self.tap.block_orphaned();
            }
        }
        true
    }
}

/// The stand-in's block payload: `[hash 32][height 8 LE]...`.
pub fn encode_block(hash: [u8; 32], height: u64, size: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(size.max(40));
    bytes.extend_from_slice(&hash);
    bytes.extend_from_slice(&height.to_le_bytes());
    bytes.resize(size.max(40), 0);
    bytes
}

pub fn decode_block(bytes: &[u8]) -> Option<([u8; 32], u64)> {
    Some((
        bytes.get(..32)?.try_into().ok()?,
        u64::from_le_bytes(bytes.get(32..40)?.try_into().ok()?),
    ))
}

/// What a workload needs from a router; the reference router (`p2p_router::Router`) has the same
/// methods, so one script drives both.
pub trait NodeRouter {
    fn register(&self, inbound: bool, sender: mpsc::Sender<NetMessage>) -> Option<PeerId>;
    fn emit(&self, peer: PeerId, message: NetMessage);
    fn drop_peer(&self, peer: PeerId, reason: &str);
}

impl NodeRouter for Router {
    fn register(&self, inbound: bool, sender: mpsc::Sender<NetMessage>) -> Option<PeerId> {
        let address = SocketAddr::from(([10, 0, 0, 1], 8333));
        let version = VersionInfo {
            protocol: 70016,
            best_height: 0,
        };
        self.register_peer(inbound, address, version, sender).ok()
    }
    fn emit(&self, peer: PeerId, message: NetMessage) {
        self.emit_message(peer, message)
    }
    fn drop_peer(&self, peer: PeerId, reason: &str) {
        self.disconnect(peer, reason);
    }
}

fn hash_of(n: u64, salt: u8) -> [u8; 32] {
    let mut hash = [salt; 32];
    hash[..8].copy_from_slice(&n.to_le_bytes());
    hash
}

/// A deterministic workload: 12 peers try to register with a router of 10, `rounds` rounds of
/// inv (a third re-announcing the previous inv's items), tx, ping and headers, a block every 50
/// rounds, then every peer disconnects. Returns the peers' outboxes, which must outlive the run.
pub fn script(router: &impl NodeRouter, rounds: u64) -> Vec<mpsc::Receiver<NetMessage>> {
    let mut outboxes = Vec::new();
    let mut peers = Vec::new();
    for i in 0..12 {
        let (sender, outbox) = mpsc::channel(16);
        outboxes.push(outbox);
        if let Some(id) = router.register(i % 2 == 0, sender) {
            peers.push(id);
        }
    }
    if peers.is_empty() {
        return outboxes;
    }
    let mut previous: Vec<InventoryItem> = Vec::new();
    for round in 0..rounds {
        let peer = peers[(round % peers.len() as u64) as usize];
        let items = if round % 3 == 2 {
            previous.clone()
        } else {
            (0..1 + round % 3)
                .map(|k| InventoryItem {
                    kind: if k == 0 {
                        InvType::Transaction
                    } else {
                        InvType::Block
                    },
                    hash: hash_of(round * 4 + k, 0x5a),
                })
                .collect()
        };
        previous = items.clone();
        router.emit(peer, NetMessage::Inv(Inventory { items }));
        router.emit(peer, NetMessage::Tx(vec![round as u8; 64]));
        router.emit(peer, NetMessage::Ping(round));
        if round % 7 == 0 {
            router.emit(peer, NetMessage::Headers(Vec::new()));
        }
        if round % 50 == 49 {
            let height = round / 50 + 1;
            router.emit(
                peer,
                NetMessage::Block(encode_block(hash_of(height, 0xb1), height, 256)),
            );
        }
    }
    let reasons = [
        "ping timeout",
        "connection reset by peer",
        "shutdown requested",
    ];
    for (peer, reason) in peers.iter().zip(reasons.iter().cycle()) {
        router.drop_peer(*peer, reason);
    }
    outboxes
}
