//! The reference router: the node's router, same shape and same channel, reporting observations.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use p2p_observe::{Direction, DisconnectReason, NoopObserver, Observation, Observer};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;

use crate::types::{NetMessage, PeerEvent, PeerId, PeerSummary, VersionInfo};

/// The node's `EVENT_CHANNEL_SIZE`.
pub const EVENT_CHANNEL_SIZE: usize = 2048;

/// The `channel` label of the node's single event channel.
pub const EVENTS_CHANNEL: &str = "events";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouterError {
    /// `register_peer` was called with `max_peers` peers already registered.
    TooManyPeers {
        max_peers: usize,
    },
    UnknownPeer(PeerId),
    /// The peer's outbound queue is full or its task has gone.
    PeerUnavailable(PeerId),
}

impl fmt::Display for RouterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RouterError::TooManyPeers { max_peers } => {
                write!(f, "peer limit reached ({max_peers} peers)")
            }
            RouterError::UnknownPeer(id) => write!(f, "unknown peer {id}"),
            RouterError::PeerUnavailable(id) => write!(f, "peer {id} is not accepting messages"),
        }
    }
}

impl std::error::Error for RouterError {}

/// What travels on the channel: the node's event, stamped with when it was sent so a subscriber
/// can report delivery latency.
#[derive(Clone, Debug)]
struct Envelope {
    sent_at: Instant,
    event: PeerEvent,
}

struct PeerHandle {
    summary: PeerSummary,
    sender: mpsc::Sender<NetMessage>,
}

struct RouterInner {
    peers: RwLock<HashMap<PeerId, PeerHandle>>,
    events: broadcast::Sender<Envelope>,
    capacity: usize,
    max_peers: usize,
    next_peer: AtomicU64,
    observer: Arc<dyn Observer>,
}

/// The node's router: one broadcast channel carries every peer event to every subscriber.
#[derive(Clone)]
pub struct Router {
    inner: Arc<RouterInner>,
}

pub struct RouterBuilder {
    max_peers: usize,
    capacity: usize,
    observer: Arc<dyn Observer>,
}

impl RouterBuilder {
    /// Channel capacity; the node's is [`EVENT_CHANNEL_SIZE`].
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    pub fn observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observer = observer;
        self
    }

    pub fn build(self) -> Router {
        let (events, _) = broadcast::channel(self.capacity);
        self.observer.observe(Observation::ChannelOpened {
            channel: EVENTS_CHANNEL,
            capacity: self.capacity,
        });
        Router {
            inner: Arc::new(RouterInner {
                peers: RwLock::new(HashMap::new()),
                events,
                capacity: self.capacity,
                max_peers: self.max_peers,
                next_peer: AtomicU64::new(1),
                observer: self.observer,
            }),
        }
    }
}

impl Router {
    /// A router like the node's: capacity [`EVENT_CHANNEL_SIZE`], nobody observing.
    pub fn new(max_peers: usize) -> Router {
        Router::builder(max_peers).build()
    }

    pub fn builder(max_peers: usize) -> RouterBuilder {
        RouterBuilder {
            max_peers,
            capacity: EVENT_CHANNEL_SIZE,
            observer: Arc::new(NoopObserver),
        }
    }

    /// A named subscriber; its receives and lags are reported under `name`.
    pub fn subscribe(&self, name: &'static str) -> Subscriber {
        Subscriber {
            name,
            receiver: self.inner.events.subscribe(),
            observer: Arc::clone(&self.inner.observer),
        }
    }

    pub fn capacity(&self) -> usize {
        self.inner.capacity
    }

    pub fn max_peers(&self) -> usize {
        self.inner.max_peers
    }

    /// Events queued and not yet seen by the slowest subscriber.
    pub fn queued(&self) -> usize {
        self.inner.events.len()
    }

    /// The observer this router reports to, for the parts of the node model that report chain
    /// events next to the router (the consumer loop).
    pub fn observer(&self) -> &Arc<dyn Observer> {
        &self.inner.observer
    }

    pub fn register_peer(
        &self,
        inbound: bool,
        address: SocketAddr,
        version: VersionInfo,
        sender: mpsc::Sender<NetMessage>,
    ) -> Result<PeerId, RouterError> {
        let summary = {
            let mut peers = self.inner.peers.write().expect("peer table poisoned");
            if peers.len() >= self.inner.max_peers {
                drop(peers);
                self.inner.observer.observe(Observation::PeerRefused);
                return Err(RouterError::TooManyPeers {
                    max_peers: self.inner.max_peers,
                });
            }
            let id = PeerId::from_counter(self.inner.next_peer.fetch_add(1, Ordering::Relaxed));
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
        let direction = if inbound {
            Direction::Inbound
        } else {
            Direction::Outbound
        };
        self.inner
            .observer
            .observe(Observation::PeerConnected { direction });
        self.publish(PeerEvent::Connected(summary));
        Ok(id)
    }

    /// Removes a peer and announces it; returns whether the peer was registered.
    pub fn disconnect(&self, peer_id: PeerId, reason: impl Into<String>) -> bool {
        let removed = self
            .inner
            .peers
            .write()
            .expect("peer table poisoned")
            .remove(&peer_id)
            .is_some();
        if removed {
            let reason = reason.into();
            self.inner.observer.observe(Observation::PeerDisconnected {
                reason: DisconnectReason::classify(&reason),
            });
            self.publish(PeerEvent::Disconnected { peer_id, reason });
        }
        removed
    }

    /// Queues a message to one peer without waiting.
    pub fn send(&self, peer_id: PeerId, message: NetMessage) -> Result<(), RouterError> {
        let sender = {
            let peers = self.inner.peers.read().expect("peer table poisoned");
            let handle = peers
                .get(&peer_id)
                .ok_or(RouterError::UnknownPeer(peer_id))?;
            handle.sender.clone()
        };
        sender
            .try_send(message)
            .map_err(|_| RouterError::PeerUnavailable(peer_id))
    }

    /// Queues a message to every peer but `except`; returns how many peers took it.
    pub fn broadcast(&self, message: NetMessage, except: Option<PeerId>) -> usize {
        let peers = self.inner.peers.read().expect("peer table poisoned");
        peers
            .values()
            .filter(|handle| Some(handle.summary.id) != except)
            .filter(|handle| handle.sender.try_send(message.clone()).is_ok())
            .count()
    }

    pub fn peer_summaries(&self) -> Vec<PeerSummary> {
        let peers = self.inner.peers.read().expect("peer table poisoned");
        let mut summaries: Vec<_> = peers.values().map(|h| h.summary.clone()).collect();
        summaries.sort_by_key(|s| s.id);
        summaries
    }

    pub fn peer_count(&self) -> usize {
        self.inner.peers.read().expect("peer table poisoned").len()
    }

    /// A peer delivered `message`: put it on the channel for every subscriber.
    pub fn emit_message(&self, peer_id: PeerId, message: NetMessage) {
        self.inner.observer.observe(Observation::MessageEmitted {
            kind: message.kind(),
            inventory: message.announced_items(),
        });
        self.publish(PeerEvent::Message { peer_id, message });
    }

    fn publish(&self, event: PeerEvent) {
        let envelope = Envelope {
            sent_at: Instant::now(),
            event,
        };
        // Like the node: a send with no subscriber is not an error worth handling.
        let _ = self.inner.events.send(envelope);
        self.inner.observer.observe(Observation::EventSent {
            channel: EVENTS_CHANNEL,
            queued: self.inner.events.len(),
            capacity: self.inner.capacity,
        });
    }
}

/// A named receiver of the router's events. Same results as `broadcast::Receiver::recv`, and every
/// receive and every lag is reported to the router's observer.
pub struct Subscriber {
    name: &'static str,
    receiver: broadcast::Receiver<Envelope>,
    observer: Arc<dyn Observer>,
}

impl Subscriber {
    pub fn name(&self) -> &'static str {
        self.name
    }

    pub async fn recv(&mut self) -> Result<PeerEvent, RecvError> {
        self.recv_timed().await.map(|(event, _)| event)
    }

    /// Like [`Subscriber::recv`], with the instant the event was sent.
    pub async fn recv_timed(&mut self) -> Result<(PeerEvent, Instant), RecvError> {
        match self.receiver.recv().await {
            Ok(envelope) => Ok(self.received(envelope)),
            Err(RecvError::Lagged(skipped)) => {
                self.lagged(skipped);
                Err(RecvError::Lagged(skipped))
            }
            Err(RecvError::Closed) => Err(RecvError::Closed),
        }
    }

    pub fn try_recv(&mut self) -> Result<PeerEvent, TryRecvError> {
        self.try_recv_at(Instant::now()).map(|(event, _)| event)
    }

    /// Like [`Subscriber::try_recv`] for a consumer that takes the event at `now`, which may be
    /// later than the clock: a simulated consumer that is still busy with earlier events. Returns
    /// the instant the event was sent; the reported latency is `now - sent_at` (zero if the event
    /// was sent after `now`).
    pub fn try_recv_at(&mut self, now: Instant) -> Result<(PeerEvent, Instant), TryRecvError> {
        match self.receiver.try_recv() {
            Ok(envelope) => Ok(self.received_at(envelope, now)),
            Err(TryRecvError::Lagged(skipped)) => {
                self.lagged(skipped);
                Err(TryRecvError::Lagged(skipped))
            }
            Err(other) => Err(other),
        }
    }

    fn received(&self, envelope: Envelope) -> (PeerEvent, Instant) {
        self.received_at(envelope, Instant::now())
    }

    fn received_at(&self, envelope: Envelope, now: Instant) -> (PeerEvent, Instant) {
        self.observer.observe(Observation::EventReceived {
            subscriber: self.name,
            latency: now.saturating_duration_since(envelope.sent_at),
        });
        (envelope.event, envelope.sent_at)
    }

    fn lagged(&self, skipped: u64) {
        self.observer.observe(Observation::SubscriberLagged {
            subscriber: self.name,
            skipped,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{InvType, Inventory, InventoryItem};

    fn addr(n: u8) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, n], 8333))
    }

    fn version() -> VersionInfo {
        VersionInfo {
            protocol: 70016,
            best_height: 0,
        }
    }

    #[tokio::test]
    async fn register_peer_refuses_past_max_peers_and_emits_connected() {
        let router = Router::new(2);
        let mut events = router.subscribe("test");
        let (tx, _rx) = mpsc::channel(4);
        let a = router
            .register_peer(true, addr(1), version(), tx.clone())
            .unwrap();
        let b = router
            .register_peer(false, addr(2), version(), tx.clone())
            .unwrap();
        assert_ne!(a, b);
        assert_eq!(
            router.register_peer(true, addr(3), version(), tx),
            Err(RouterError::TooManyPeers { max_peers: 2 })
        );
        match events.recv().await.unwrap() {
            PeerEvent::Connected(summary) => {
                assert_eq!(summary.id, a);
                assert!(summary.inbound);
            }
            other => panic!("expected Connected, got {other:?}"),
        }
        assert!(matches!(events.recv().await.unwrap(), PeerEvent::Connected(s) if s.id == b));
        assert!(events.try_recv().is_err(), "a refused peer emits nothing");
        assert_eq!(router.peer_count(), 2);
    }

    #[tokio::test]
    async fn disconnect_emits_once_with_the_reason_and_frees_a_slot() {
        let router = Router::new(1);
        let mut events = router.subscribe("test");
        let (tx, _rx) = mpsc::channel(4);
        let id = router
            .register_peer(true, addr(1), version(), tx.clone())
            .unwrap();
        assert!(router.disconnect(id, "ping timeout"));
        assert!(!router.disconnect(id, "again"));
        events.recv().await.unwrap();
        assert_eq!(
            events.recv().await.unwrap(),
            PeerEvent::Disconnected {
                peer_id: id,
                reason: "ping timeout".into()
            }
        );
        assert!(events.try_recv().is_err());
        router.register_peer(true, addr(2), version(), tx).unwrap();
    }

    #[tokio::test]
    async fn send_and_broadcast_reach_peer_queues() {
        let router = Router::new(8);
        let (tx_a, mut rx_a) = mpsc::channel(4);
        let (tx_b, mut rx_b) = mpsc::channel(4);
        let a = router
            .register_peer(true, addr(1), version(), tx_a)
            .unwrap();
        let b = router
            .register_peer(true, addr(2), version(), tx_b)
            .unwrap();
        router.send(a, NetMessage::Ping(1)).unwrap();
        assert_eq!(
            router.send(PeerId(0), NetMessage::Ping(1)),
            Err(RouterError::UnknownPeer(PeerId(0)))
        );
        assert_eq!(router.broadcast(NetMessage::Pong(2), Some(a)), 1);
        assert_eq!(rx_a.recv().await, Some(NetMessage::Ping(1)));
        assert_eq!(rx_b.recv().await, Some(NetMessage::Pong(2)));
        assert!(rx_a.try_recv().is_err());
        let ids: Vec<_> = router.peer_summaries().iter().map(|s| s.id).collect();
        let mut expected = vec![a, b];
        expected.sort();
        assert_eq!(ids, expected);
    }

    #[tokio::test]
    async fn emit_message_reaches_every_subscriber_in_order() {
        let router = Router::builder(8).capacity(4).build();
        let mut first = router.subscribe("first");
        let mut second = router.subscribe("second");
        let inv = NetMessage::Inv(Inventory {
            items: vec![InventoryItem {
                kind: InvType::Transaction,
                hash: [9; 32],
            }],
        });
        router.emit_message(PeerId(5), inv.clone());
        router.emit_message(PeerId(5), NetMessage::Ping(3));
        assert_eq!(router.queued(), 2);
        for sub in [&mut first, &mut second] {
            assert_eq!(
                sub.recv().await.unwrap(),
                PeerEvent::Message {
                    peer_id: PeerId(5),
                    message: inv.clone()
                }
            );
            assert!(matches!(
                sub.recv().await.unwrap(),
                PeerEvent::Message {
                    message: NetMessage::Ping(3),
                    ..
                }
            ));
        }
        assert_eq!(router.queued(), 0);
    }

    #[tokio::test]
    async fn a_slow_subscriber_sees_lagged_with_the_number_skipped() {
        let router = Router::builder(8).capacity(4).build();
        let mut slow = router.subscribe("slow");
        for n in 0..10 {
            router.emit_message(PeerId(1), NetMessage::Ping(n));
        }
        assert_eq!(slow.recv().await, Err(RecvError::Lagged(6)));
        assert!(matches!(
            slow.recv().await.unwrap(),
            PeerEvent::Message {
                message: NetMessage::Ping(6),
                ..
            }
        ));
    }
}
