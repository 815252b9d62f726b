//! A stand-in for the node: its own router (one `tokio::sync::broadcast` channel of 2048, the
//! node's API shape) and its consumer loop, with the tap calls exactly where
//! `docs/tap-integration.md` puts them. Each call is marked `// TAP:`.
//!
//! Shared by the example binary (`main.rs`) and the tests that prove the tap source gives the
//! same metrics as the embedded source.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use p2p_observe::{Direction, DisconnectReason, Observation, Observer};
use p2p_router::{
    InvType, Inventory, InventoryItem, NetMessage, PeerEvent, PeerId, PeerSummary, VersionInfo,
};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::{broadcast, mpsc};

pub const EVENT_CHANNEL_SIZE: usize = 2048;
/// The names the node's code gives its channel and its consumer loop (label values).
pub const CHANNEL: &str = "events";
pub const CONSUMER: &str = "consumer";

/// The node's event, stamped when sent so the consumer can report delivery latency. If your
/// events carry no send time, this 16-byte wrapper is the one change the tap asks of the type.
#[derive(Clone, Debug)]
pub struct Stamped {
    pub sent_at: Instant,
    pub event: PeerEvent,
}

struct PeerHandle {
    summary: PeerSummary,
    sender: mpsc::Sender<NetMessage>,
}

struct RouterInner {
    peers: RwLock<HashMap<PeerId, PeerHandle>>,
    events: broadcast::Sender<Stamped>,
    max_peers: usize,
    capacity: usize,
    next_peer: AtomicU64,
    // TAP: the router holds the tap (a `TapClient`, or anything implementing `Observer`).
    tap: Arc<dyn Observer>,
}

#[derive(Clone)]
pub struct Router {
    inner: Arc<RouterInner>,
}

impl Router {
    pub fn new(max_peers: usize, capacity: usize, tap: Arc<dyn Observer>) -> Router {
        let (events, _) = broadcast::channel(capacity);
        // TAP: the channel and its capacity, once.
        tap.observe(Observation::ChannelOpened {
            channel: CHANNEL,
            capacity,
        });
        Router {
            inner: Arc::new(RouterInner {
                peers: RwLock::new(HashMap::new()),
                events,
                max_peers,
                capacity,
                next_peer: AtomicU64::new(1),
                tap,
            }),
        }
    }

    pub fn subscribe(&self) -> Consumer {
        Consumer {
            receiver: self.inner.events.subscribe(),
            tap: Arc::clone(&self.inner.tap),
            first_seen: HashMap::new(),
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
                self.inner.tap.observe(Observation::PeerRefused);
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
        self.inner.tap.observe(Observation::PeerConnected {
            direction: if inbound {
                Direction::Inbound
            } else {
                Direction::Outbound
            },
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
            self.inner.tap.observe(Observation::PeerDisconnected {
                reason: DisconnectReason::classify(&reason),
            });
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
        // TAP: the message's type, and an inv's items (borrowed: nothing is copied unless the
        // record is queued).
        self.inner.tap.observe(Observation::MessageEmitted {
            kind: message.kind(),
            inventory: message.announced_items(),
        });
        self.publish(PeerEvent::Message { peer_id, message });
    }

    #[allow(
        clippy::disallowed_methods,
        reason = "the stand-in is the node's own code, which stamps its events on the OS clock"
    )]
    fn publish(&self, event: PeerEvent) {
        let _ = self.inner.events.send(Stamped {
            sent_at: Instant::now(),
            event,
        });
        // TAP: after every send, the channel's length (what its slowest subscriber has not seen).
        self.inner.tap.observe(Observation::EventSent {
            channel: CHANNEL,
            queued: self.inner.events.len(),
            capacity: self.inner.capacity,
        });
    }
}

/// The node's consumer loop.
pub struct Consumer {
    receiver: broadcast::Receiver<Stamped>,
    tap: Arc<dyn Observer>,
    first_seen: HashMap<[u8; 32], Instant>,
    tip_height: u64,
}

impl Consumer {
    /// The loop as it runs in the node: handle each event, log on `Lagged`.
    pub async fn run(mut self, block_cost: Duration) {
        loop {
            match self.receiver.recv().await {
                Ok(stamped) => {
                    if self.handle(stamped) {
                        tokio::time::sleep(block_cost).await;
                    }
                }
                Err(RecvError::Lagged(skipped)) => self.lagged(skipped),
                Err(RecvError::Closed) => return,
            }
        }
    }

    /// Everything queued now, without waiting; returns how many events were handled.
    pub fn drain(&mut self) -> usize {
        let mut handled = 0;
        loop {
            match self.receiver.try_recv() {
                Ok(stamped) => {
                    self.handle(stamped);
                    handled += 1;
                }
                Err(TryRecvError::Lagged(skipped)) => self.lagged(skipped),
                Err(_) => return handled,
            }
        }
    }

    fn lagged(&self, skipped: u64) {
        // TAP: the `Lagged` arm, next to the node's own warning.
        self.tap.observe(Observation::SubscriberLagged {
            subscriber: CONSUMER,
            skipped,
        });
        eprintln!("WARN peer event loop lagged skipped={skipped}");
    }

    /// Returns whether the event was a block (the slow case).
    #[allow(
        clippy::disallowed_methods,
        reason = "the stand-in is the node's own code, which stamps its events on the OS clock"
    )]
    fn handle(&mut self, stamped: Stamped) -> bool {
        let taken = Instant::now();
        // TAP: every receive, with the time since the send.
        self.tap.observe(Observation::EventReceived {
            subscriber: CONSUMER,
            latency: stamped.sent_at.elapsed(),
        });
        let PeerEvent::Message { message, .. } = stamped.event else {
            return false;
        };
        match message {
            NetMessage::Inv(inventory) => {
                for item in inventory.items.iter().filter(|i| i.kind == InvType::Block) {
                    self.first_seen.entry(item.hash).or_insert(stamped.sent_at);
                }
                false
            }
            NetMessage::Block(bytes) => {
                if let Some((hash, height)) = decode_block(&bytes) {
                    let first_seen = self.first_seen.remove(&hash).unwrap_or(stamped.sent_at);
                    if height > self.tip_height {
                        let depth = 0u32; // a real node knows the fork point; see the guide.
                        if depth > 0 {
                            // TAP: a reorg, before the block that caused it.
                            self.tap.observe(Observation::ChainReorganized { depth });
                        }
                        self.tip_height = height;
                        // TAP: the block is on the best chain.
                        self.tap.observe(Observation::BlockAccepted {
                            hash,
                            height,
                            received: Some(stamped.sent_at.saturating_duration_since(first_seen)),
                            delivered: Some(taken.saturating_duration_since(first_seen)),
                            propagation: first_seen.elapsed(),
                        });
                    } else {
                        // TAP: a block that did not connect to the best chain.
                        self.tap.observe(Observation::BlockOrphaned);
                    }
                }
                true
            }
            _ => false,
        }
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
