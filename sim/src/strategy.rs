//! Every router design of the seed behind one interface. Each reports the same observations as
//! the reference router, so the exporter's recorder, rules and dashboards work on any of them.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use p2p_observe::{Direction, DisconnectReason, Observation, Observer};
use p2p_router::dedup::DedupTracker;
use p2p_router::PeerSink;
use p2p_router::{
    NetMessage, PeerEvent, PeerId, PeerSummary, Router, RouterError, Subscriber, VersionInfo,
    EVENTS_CHANNEL,
};
use p2p_workload::{ConsumerCost, NodeModel};
use tokio::sync::broadcast::error::TryRecvError;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::channel::{payload_len, Channel, HeldBytes, Receiver, SHARED_CLONE};
use p2p_workload::{Inbox, VirtualConsumer as Consumer};

/// The node's consumer loop subscribes under this name.
pub const CONSUMER: &str = "consumer";
/// The seed's dedup window.
pub const DEDUP_WINDOW: Duration = Duration::from_secs(5);
/// Segmented fanout's channels and capacities, as in the seed's Scenario B.
pub const SEGMENTS: [(&str, usize); 4] = [
    ("control", 256),
    ("sync", 512),
    ("inventory", 1024),
    ("data", 4096),
];
const SHARDS: [&str; 8] = [
    "shard0", "shard1", "shard2", "shard3", "shard4", "shard5", "shard6", "shard7",
];
/// Capacity of each shard's channel: the node's channel, per shard.
pub const SHARD_CAPACITY: usize = 2048;
/// Every peer actor's mailbox. Reported as one channel and one subscriber, never per peer.
pub const MAILBOXES: &str = "mailboxes";
pub const MAILBOX_CAPACITY: usize = 256;

/// The designs, by the names the CLI and the reports use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StrategyKind {
    Broadcast2048,
    Broadcast4096,
    Broadcast8192,
    Dedup,
    Segmented,
    Sharded,
    Actor,
    ZeroCopy,
}

impl StrategyKind {
    pub const ALL: [StrategyKind; 8] = [
        StrategyKind::Broadcast2048,
        StrategyKind::Broadcast4096,
        StrategyKind::Broadcast8192,
        StrategyKind::Dedup,
        StrategyKind::Segmented,
        StrategyKind::Sharded,
        StrategyKind::Actor,
        StrategyKind::ZeroCopy,
    ];

    pub fn name(self) -> &'static str {
        match self {
            StrategyKind::Broadcast2048 => "broadcast-2048",
            StrategyKind::Broadcast4096 => "broadcast-4096",
            StrategyKind::Broadcast8192 => "broadcast-8192",
            StrategyKind::Dedup => "dedup",
            StrategyKind::Segmented => "segmented",
            StrategyKind::Sharded => "sharded",
            StrategyKind::Actor => "actor",
            StrategyKind::ZeroCopy => "zero-copy",
        }
    }

    pub fn parse(name: &str) -> Option<StrategyKind> {
        StrategyKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Builds the design; everything it does is reported to `observer`.
    pub fn build(
        self,
        max_peers: usize,
        cost: ConsumerCost,
        observer: Arc<dyn Observer>,
    ) -> Box<dyn Strategy> {
        match self {
            StrategyKind::Broadcast2048 => {
                Box::new(Broadcast::new(2048, max_peers, cost, observer))
            }
            StrategyKind::Broadcast4096 => {
                Box::new(Broadcast::new(4096, max_peers, cost, observer))
            }
            StrategyKind::Broadcast8192 => {
                Box::new(Broadcast::new(8192, max_peers, cost, observer))
            }
            StrategyKind::Dedup => Box::new(Dedup::new(max_peers, cost, observer)),
            StrategyKind::Segmented => Box::new(Segmented::new(max_peers, cost, observer)),
            StrategyKind::Sharded => Box::new(Sharded::new(max_peers, cost, observer)),
            StrategyKind::Actor => Box::new(Actor::new(max_peers, cost, observer)),
            StrategyKind::ZeroCopy => Box::new(ZeroCopy::new(max_peers, cost, observer)),
        }
    }
}

impl fmt::Display for StrategyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A router design: peers talk to it through [`PeerSink`], and its consumers handle what it
/// delivers in (virtual or real) time.
pub trait Strategy: PeerSink + Send {
    /// Lets every consumer take and handle what it would have started on before `now`.
    fn catch_up(&mut self, now: Instant);
    /// Payload bytes held by the events queued in the design's channels or mailboxes.
    fn held_bytes(&mut self) -> u64;
}

impl<T: Strategy + ?Sized> Strategy for Box<T> {
    fn catch_up(&mut self, now: Instant) {
        (**self).catch_up(now)
    }

    fn held_bytes(&mut self) -> u64 {
        (**self).held_bytes()
    }
}

/// Peer bookkeeping for the designs that are not the reference router: same ids, same limit, same
/// observations.
struct Peers {
    max_peers: usize,
    next: u64,
    live: HashSet<PeerId>,
    observer: Arc<dyn Observer>,
}

impl Peers {
    fn new(max_peers: usize, observer: Arc<dyn Observer>) -> Peers {
        Peers {
            max_peers,
            next: 1,
            live: HashSet::new(),
            observer,
        }
    }

    fn register(
        &mut self,
        inbound: bool,
        address: SocketAddr,
        version: VersionInfo,
    ) -> Result<PeerSummary, RouterError> {
        if self.live.len() >= self.max_peers {
            self.observer.observe(Observation::PeerRefused);
            return Err(RouterError::TooManyPeers {
                max_peers: self.max_peers,
            });
        }
        let id = PeerId::from_counter(self.next);
        self.next += 1;
        self.live.insert(id);
        let direction = if inbound {
            Direction::Inbound
        } else {
            Direction::Outbound
        };
        self.observer
            .observe(Observation::PeerConnected { direction });
        Ok(PeerSummary {
            id,
            address,
            inbound,
            version,
        })
    }

    fn disconnect(&mut self, peer_id: PeerId, reason: &str) -> bool {
        let removed = self.live.remove(&peer_id);
        if removed {
            self.observer.observe(Observation::PeerDisconnected {
                reason: DisconnectReason::classify(reason),
            });
        }
        removed
    }

    fn emitted(&self, message: &NetMessage) {
        self.observer.observe(Observation::MessageEmitted {
            kind: message.kind(),
            inventory: message.announced_items(),
        });
    }
}

/// The node's router as it is: the reference router with one consumer loop, at a given capacity
/// (Scenario C grows it).
pub struct Broadcast {
    router: Router,
    consumer: Consumer<Subscriber>,
    held: HeldBytes,
    node: NodeModel,
    cost: ConsumerCost,
    observer: Arc<dyn Observer>,
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

impl Strategy for Broadcast {
    fn catch_up(&mut self, now: Instant) {
        self.consumer
            .catch_up(now, &mut self.node, &self.cost, self.observer.as_ref());
    }

    fn held_bytes(&mut self) -> u64 {
        self.held.trim(self.router.queued());
        self.held.total()
    }
}

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

impl Strategy for Dedup {
    fn catch_up(&mut self, now: Instant) {
        self.inner.catch_up(now)
    }

    fn held_bytes(&mut self) -> u64 {
        self.inner.held_bytes()
    }
}

/// Which segment (index into [`SEGMENTS`]) carries an event: the seed's `ControlEvent` (peer
/// lifecycle, ping/pong, and the handshake and address messages that only the peer manager
/// reads), sync (headers), inventory (inv, getdata) and data (block, tx).
pub fn segment_of(event: &PeerEvent) -> usize {
    match event {
        PeerEvent::Connected(_) | PeerEvent::Disconnected { .. } => 0,
        PeerEvent::Message { message, .. } => match message {
            NetMessage::Version(_)
            | NetMessage::VerAck
            | NetMessage::Ping(_)
            | NetMessage::Pong(_)
            | NetMessage::GetAddr
            | NetMessage::Addr(_)
            | NetMessage::Reject { .. } => 0,
            NetMessage::GetHeaders { .. } | NetMessage::Headers(_) => 1,
            NetMessage::Inv(_) | NetMessage::GetData(_) => 2,
            NetMessage::Tx(_) | NetMessage::Block(_) => 3,
        },
    }
}

/// Designs with several channels, each read by its own consumer loop (its own task, so they run
/// side by side): segmented fanout and sharding.
struct MultiChannel {
    peers: Peers,
    channels: Vec<Channel<PeerEvent>>,
    consumers: Vec<Consumer<Receiver<PeerEvent>>>,
    node: NodeModel,
    cost: ConsumerCost,
    observer: Arc<dyn Observer>,
}

impl MultiChannel {
    fn new(
        channels: &[(&'static str, usize)],
        max_peers: usize,
        cost: ConsumerCost,
        observer: Arc<dyn Observer>,
    ) -> MultiChannel {
        let channels: Vec<_> = channels
            .iter()
            .map(|(name, capacity)| Channel::new(name, *capacity, Arc::clone(&observer)))
            .collect();
        // Each channel's consumer subscribes under the channel's name.
        let names: Vec<&'static str> = channels.iter().map(|c| c.name()).collect();
        let consumers = channels
            .iter()
            .zip(names)
            .map(|(channel, name)| Consumer::new(channel.subscribe(name)))
            .collect();
        MultiChannel {
            peers: Peers::new(max_peers, Arc::clone(&observer)),
            channels,
            consumers,
            node: NodeModel::default(),
            cost,
            observer,
        }
    }

    fn send(&mut self, channel: usize, event: PeerEvent) {
        let size = match &event {
            PeerEvent::Message { message, .. } => payload_len(message),
            _ => 0,
        };
        self.channels[channel].send(event, size);
    }

    fn catch_up(&mut self, now: Instant) {
        for consumer in &mut self.consumers {
            consumer.catch_up(now, &mut self.node, &self.cost, self.observer.as_ref());
        }
    }

    fn held_bytes(&mut self) -> u64 {
        self.channels.iter_mut().map(|c| c.held_bytes()).sum()
    }
}

/// Scenario B: typed channels, control 256 / sync 512 / inventory 1024 / data 4096, each read by
/// the component that needs it (peer manager, header sync, inventory relay, block and tx
/// validation) in its own loop, so a block flood cannot starve control events.
pub struct Segmented(MultiChannel);

impl Segmented {
    pub fn new(max_peers: usize, cost: ConsumerCost, observer: Arc<dyn Observer>) -> Segmented {
        Segmented(MultiChannel::new(&SEGMENTS, max_peers, cost, observer))
    }
}

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

macro_rules! multi_channel_design {
    ($design:ty, $route:expr) => {
        impl PeerSink for $design {
            fn register_peer(
                &mut self,
                inbound: bool,
                address: SocketAddr,
                version: VersionInfo,
                _sender: mpsc::Sender<NetMessage>,
            ) -> Result<PeerId, RouterError> {
                let summary = self.0.peers.register(inbound, address, version)?;
                let id = summary.id;
                let event = PeerEvent::Connected(summary);
                let channel = $route(id, &event);
                self.0.send(channel, event);
                Ok(id)
            }

            fn disconnect(&mut self, peer_id: PeerId, reason: &str) {
                if self.0.peers.disconnect(peer_id, reason) {
                    let event = PeerEvent::Disconnected {
                        peer_id,
                        reason: reason.to_owned(),
                    };
                    let channel = $route(peer_id, &event);
                    self.0.send(channel, event);
                }
            }

            fn emit_message(&mut self, peer_id: PeerId, message: NetMessage) {
                self.0.peers.emitted(&message);
                let event = PeerEvent::Message { peer_id, message };
                let channel = $route(peer_id, &event);
                self.0.send(channel, event);
            }
        }

        impl Strategy for $design {
            fn catch_up(&mut self, now: Instant) {
                self.0.catch_up(now)
            }

            fn held_bytes(&mut self) -> u64 {
                self.0.held_bytes()
            }
        }
    };
}

multi_channel_design!(Segmented, |_, event: &PeerEvent| segment_of(event));
multi_channel_design!(Sharded, |peer: PeerId, _: &PeerEvent| Sharded::shard_of(
    peer
));

/// One peer actor: its mailbox and its own loop.
struct PeerActor {
    sender: mpsc::Sender<(Instant, NetMessage)>,
    mailbox: mpsc::Receiver<(Instant, NetMessage)>,
    busy_until: Instant,
    held: u64,
}

/// Phase 4.1: a bounded mailbox per peer, each drained by that peer's actor. The dispatcher never
/// waits: a message for a full mailbox is dropped and counted as lag of `mailboxes`. Mailboxes
/// move messages, so receivers copy nothing.
pub struct Actor {
    peers: Peers,
    actors: HashMap<PeerId, PeerActor>,
    /// Actors in registration order, so catching up is deterministic.
    order: Vec<PeerId>,
    fullest: usize,
    node: NodeModel,
    cost: ConsumerCost,
    observer: Arc<dyn Observer>,
}

impl Actor {
    pub fn new(max_peers: usize, cost: ConsumerCost, observer: Arc<dyn Observer>) -> Actor {
        observer.observe(Observation::ChannelOpened {
            channel: MAILBOXES,
            capacity: MAILBOX_CAPACITY,
        });
        Actor {
            peers: Peers::new(max_peers, Arc::clone(&observer)),
            actors: HashMap::new(),
            order: Vec::new(),
            fullest: 0,
            node: NodeModel::default(),
            cost,
            observer,
        }
    }

    /// Takes everything waiting in a peer's mailbox, in the order its actor would.
    pub fn take_mailbox(&mut self, peer_id: PeerId) -> Vec<NetMessage> {
        let mut taken = Vec::new();
        if let Some(actor) = self.actors.get_mut(&peer_id) {
            while let Ok((_, message)) = actor.mailbox.try_recv() {
                actor.held -= payload_len(&message);
                taken.push(message);
            }
        }
        taken
    }

    /// Messages queued in one peer's mailbox.
    fn queued(actor: &PeerActor) -> usize {
        MAILBOX_CAPACITY - actor.sender.capacity()
    }
}

impl PeerSink for Actor {
    fn register_peer(
        &mut self,
        inbound: bool,
        address: SocketAddr,
        version: VersionInfo,
        _sender: mpsc::Sender<NetMessage>,
    ) -> Result<PeerId, RouterError> {
        let id = self.peers.register(inbound, address, version)?.id;
        let (sender, mailbox) = mpsc::channel(MAILBOX_CAPACITY);
        self.actors.insert(
            id,
            PeerActor {
                sender,
                mailbox,
                busy_until: Instant::now(),
                held: 0,
            },
        );
        self.order.push(id);
        Ok(id)
    }

    fn disconnect(&mut self, peer_id: PeerId, reason: &str) {
        if self.peers.disconnect(peer_id, reason) {
            // The actor stops with its peer; what its mailbox held goes with it.
            self.actors.remove(&peer_id);
            self.order.retain(|id| *id != peer_id);
        }
    }

    fn emit_message(&mut self, peer_id: PeerId, message: NetMessage) {
        self.peers.emitted(&message);
        let Some(actor) = self.actors.get_mut(&peer_id) else {
            return;
        };
        let size = payload_len(&message);
        match actor.sender.try_send((Instant::now(), message)) {
            Ok(()) => {
                actor.held += size;
                self.fullest = self.fullest.max(Actor::queued(actor));
                self.observer.observe(Observation::EventSent {
                    channel: MAILBOXES,
                    queued: self.fullest,
                    capacity: MAILBOX_CAPACITY,
                });
            }
            Err(_) => self.observer.observe(Observation::SubscriberLagged {
                subscriber: MAILBOXES,
                skipped: 1,
            }),
        }
    }
}

impl Strategy for Actor {
    fn catch_up(&mut self, now: Instant) {
        let mut fullest = 0;
        for id in &self.order {
            let Some(actor) = self.actors.get_mut(id) else {
                continue;
            };
            while actor.busy_until < now {
                let Ok((sent_at, message)) = actor.mailbox.try_recv() else {
                    actor.busy_until = now;
                    break;
                };
                actor.held -= payload_len(&message);
                let started = actor.busy_until.max(sent_at);
                self.observer.observe(Observation::EventReceived {
                    subscriber: MAILBOXES,
                    latency: started - sent_at,
                });
                let event = PeerEvent::Message {
                    peer_id: *id,
                    message,
                };
                actor.busy_until = started
                    + self.node.handle(
                        &event,
                        sent_at,
                        started,
                        &self.cost,
                        self.observer.as_ref(),
                    );
            }
            fullest = fullest.max(Actor::queued(actor));
        }
        self.fullest = fullest;
    }

    fn held_bytes(&mut self) -> u64 {
        self.actors.values().map(|a| a.held).sum()
    }
}

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

impl Strategy for ZeroCopy {
    fn catch_up(&mut self, now: Instant) {
        self.consumer
            .catch_up(now, &mut self.node, &self.cost, self.observer.as_ref());
    }

    fn held_bytes(&mut self) -> u64 {
        self.channel.held_bytes()
    }
}

impl<S: Strategy> Strategy for p2p_recording::RecordingSink<S> {
    fn catch_up(&mut self, now: Instant) {
        self.inner_mut().catch_up(now)
    }

    fn held_bytes(&mut self) -> u64 {
        self.inner_mut().held_bytes()
    }
}
