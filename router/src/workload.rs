//! The default "testnet" workload: peers that announce, relay and mine like the seed's testnet, and
//! the node's consumer loop, which spends a processing cost per message type.
//!
//! Lag appears the way it does in the node: when the consumer's cost per message, times the arrival
//! rate, exceeds what it can keep up with for longer than the channel can buffer.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use p2p_observe::{MessageKind, Observation, Observer};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};

use crate::rng::SplitMix64;
use crate::router::{Router, RouterError, Subscriber};
use crate::types::{
    BlockHeader, InvType, Inventory, InventoryItem, NetMessage, NodeAddr, PeerEvent, PeerId,
    VersionInfo,
};

/// How often the generator wakes up; messages due in between go out together, as they would from
/// a socket read loop.
pub const TICK: Duration = Duration::from_millis(10);
/// Duplicates re-announce items at most this old, inside the seed's 5 s dedup window.
const DUPLICATE_SOURCE_AGE: Duration = Duration::from_secs(4);
const RECENT_ITEMS_CAP: usize = 8192;
/// How many peers announce each new block by `inv`.
const BLOCK_ANNOUNCERS: usize = 8;
/// `[hash 32][prev_hash 32][height 8]` at the start of a block payload.
const BLOCK_HEADER_LEN: usize = 72;

#[derive(Clone, Debug, PartialEq)]
pub struct WorkloadConfig {
    pub peers: usize,
    /// Mean messages per second per peer; each peer draws its own rate in `[0.6, 1.4] x` this.
    pub rate_per_peer: f64,
    /// Fraction of `inv` messages that re-announce items other peers announced in the last 4 s.
    pub duplicate_ratio: f64,
    pub block_interval: Duration,
    pub block_size: usize,
    /// Every so often one peer syncs us a run of blocks back to back.
    pub sync_burst_every: Duration,
    pub sync_burst_blocks: usize,
    /// One peer leaves and another takes its place this often.
    pub churn_every: Duration,
    /// Chance that a competing block at the same height follows a new block (an orphan).
    pub stale_block_probability: f64,
    /// Chance that the competing branch grows longer and the node reorganises.
    pub reorg_probability: f64,
    pub seed: u64,
    /// Share of each message type in what peers send on their own.
    pub mix: MessageMix,
    /// Peers that send each sync burst (the same blocks, unless `sync_burst_competing`).
    pub sync_burst_peers: usize,
    /// Each burst peer sends its own branch from the same fork point: competing chains. The last
    /// branch is one block longer, so the node reorganises onto it.
    pub sync_burst_competing: bool,
    /// Other peers that re-announce each new inv within `inv_relay_spread`: the gossip echo of a
    /// well-connected node, where the same inv arrives from 100+ peers.
    pub inv_relay_peers: usize,
    pub inv_relay_spread: Duration,
    /// Peers that connect in a surge, evenly over `surge_over` from `surge_at`; each sends a
    /// handshake (version, verack, getheaders, getaddr) as it joins.
    pub surge_peers: usize,
    pub surge_at: Duration,
    pub surge_over: Duration,
    /// Every peer sends `spike_factor` times its rate from `spike_at` for `spike_for`.
    pub spike_factor: f64,
    pub spike_at: Duration,
    pub spike_for: Duration,
    /// From a block's first `inv` to its delivery: the getdata round trip.
    pub block_fetch_delay: Duration,
}

/// Relative weights of the message types peers send on their own (blocks come from mining and
/// sync bursts).
#[derive(Clone, Debug, PartialEq)]
pub struct MessageMix {
    pub inv: f64,
    pub tx: f64,
    pub headers: f64,
    pub getheaders: f64,
    pub ping: f64,
    pub pong: f64,
    pub getdata: f64,
    pub addr: f64,
    pub getaddr: f64,
}

impl Default for MessageMix {
    /// The testnet mix: mostly inventory, some transactions, a little of everything else.
    fn default() -> Self {
        MessageMix {
            inv: 0.62,
            tx: 0.14,
            headers: 0.04,
            getheaders: 0.02,
            ping: 0.06,
            pong: 0.06,
            getdata: 0.04,
            addr: 0.01,
            getaddr: 0.01,
        }
    }
}

impl MessageMix {
    fn total(&self) -> f64 {
        self.inv
            + self.tx
            + self.headers
            + self.getheaders
            + self.ping
            + self.pong
            + self.getdata
            + self.addr
            + self.getaddr
    }
}

impl Default for WorkloadConfig {
    fn default() -> Self {
        WorkloadConfig {
            peers: 20,
            rate_per_peer: 35.0,
            duplicate_ratio: 0.35,
            block_interval: Duration::from_secs(10),
            block_size: 16 * 1024,
            sync_burst_every: Duration::from_secs(120),
            sync_burst_blocks: 50,
            churn_every: Duration::from_secs(90 * 60),
            // Under the seed's thresholds (orphans < 1%, reorgs < 0.1% of blocks), as on a
            // healthy testnet; the flags raise them.
            stale_block_probability: 0.01,
            reorg_probability: 0.001,
            seed: 1,
            mix: MessageMix::default(),
            sync_burst_peers: 1,
            sync_burst_competing: false,
            inv_relay_peers: 0,
            inv_relay_spread: Duration::from_secs(1),
            surge_peers: 0,
            surge_at: Duration::ZERO,
            surge_over: Duration::from_secs(1),
            spike_factor: 1.0,
            spike_at: Duration::ZERO,
            spike_for: Duration::ZERO,
            block_fetch_delay: Duration::from_millis(150),
        }
    }
}

/// What the node's consumer loop spends on each event. Block validation (post-quantum signatures)
/// is the slow one.
#[derive(Clone, Debug, PartialEq)]
pub struct ConsumerCost {
    /// A block the node does not have yet (a block it already has is a hash lookup: `message`).
    pub block: Duration,
    /// Every other message and the connect/disconnect events.
    pub message: Duration,
    /// A transaction (signature verification); `None` costs `message`.
    pub tx: Option<Duration>,
}

impl Default for ConsumerCost {
    fn default() -> Self {
        ConsumerCost {
            block: Duration::from_millis(3),
            message: Duration::from_micros(25),
            tx: None,
        }
    }
}

impl ConsumerCost {
    pub fn of(&self, event: &PeerEvent) -> Duration {
        match event {
            PeerEvent::Message { message, .. } => self.of_kind(message.kind()),
            _ => self.message,
        }
    }

    /// Cost of a message of this kind; a block is counted as new.
    pub fn of_kind(&self, kind: MessageKind) -> Duration {
        match kind {
            MessageKind::Block => self.block,
            MessageKind::Tx => self.tx.unwrap_or(self.message),
            _ => self.message,
        }
    }
}

/// Where the load generator sends what its peers do: the reference router, or any router design
/// with the same entry points.
pub trait PeerSink {
    fn register_peer(
        &mut self,
        inbound: bool,
        address: SocketAddr,
        version: VersionInfo,
        sender: mpsc::Sender<NetMessage>,
    ) -> Result<PeerId, RouterError>;
    fn disconnect(&mut self, peer_id: PeerId, reason: &str);
    fn emit_message(&mut self, peer_id: PeerId, message: NetMessage);
}

impl<T: PeerSink + ?Sized> PeerSink for Box<T> {
    fn register_peer(
        &mut self,
        inbound: bool,
        address: SocketAddr,
        version: VersionInfo,
        sender: mpsc::Sender<NetMessage>,
    ) -> Result<PeerId, RouterError> {
        (**self).register_peer(inbound, address, version, sender)
    }

    fn disconnect(&mut self, peer_id: PeerId, reason: &str) {
        (**self).disconnect(peer_id, reason)
    }

    fn emit_message(&mut self, peer_id: PeerId, message: NetMessage) {
        (**self).emit_message(peer_id, message)
    }
}

impl PeerSink for Router {
    fn register_peer(
        &mut self,
        inbound: bool,
        address: SocketAddr,
        version: VersionInfo,
        sender: mpsc::Sender<NetMessage>,
    ) -> Result<PeerId, RouterError> {
        Router::register_peer(self, inbound, address, version, sender)
    }

    fn disconnect(&mut self, peer_id: PeerId, reason: &str) {
        Router::disconnect(self, peer_id, reason);
    }

    fn emit_message(&mut self, peer_id: PeerId, message: NetMessage) {
        Router::emit_message(self, peer_id, message)
    }
}

pub fn encode_block(header: &BlockHeader, size: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(size.max(BLOCK_HEADER_LEN));
    bytes.extend_from_slice(&header.hash);
    bytes.extend_from_slice(&header.prev_hash);
    bytes.extend_from_slice(&header.height.to_le_bytes());
    bytes.resize(size.max(BLOCK_HEADER_LEN), 0);
    bytes
}

pub fn decode_block_header(bytes: &[u8]) -> Option<BlockHeader> {
    let header = bytes.get(..BLOCK_HEADER_LEN)?;
    Some(BlockHeader {
        hash: header[..32].try_into().ok()?,
        prev_hash: header[32..64].try_into().ok()?,
        height: u64::from_le_bytes(header[64..72].try_into().ok()?),
    })
}

struct SimPeer {
    id: PeerId,
    rate: f64,
    credit: f64,
    /// What the router queues to this peer; drained and dropped, as a remote would consume it.
    outbox: mpsc::Receiver<NetMessage>,
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Due {
    at: Instant,
    seq: u64,
}

/// Drives the router (or any [`PeerSink`]) with the workload's peers.
pub struct LoadGenerator<S: PeerSink = Router> {
    router: S,
    config: WorkloadConfig,
    rng: SplitMix64,
    /// The chain's own randomness (block hashes, forks), apart from the traffic's: two nodes
    /// running the same seed mine the same blocks whatever their timing, as nodes of one
    /// testnet see the same chain.
    chain_rng: SplitMix64,
    peers: Vec<SimPeer>,
    next_address: u32,
    recent: VecDeque<(InventoryItem, Instant)>,
    scheduled: BinaryHeap<Reverse<Due>>,
    scheduled_messages: HashMap<u64, (usize, NetMessage)>,
    next_seq: u64,
    tip: BlockHeader,
    recent_headers: VecDeque<BlockHeader>,
    next_block_at: Instant,
    next_burst_at: Instant,
    next_churn_at: Instant,
    last_step: Instant,
    started: Instant,
    surge_connected: usize,
}

impl<S: PeerSink> LoadGenerator<S> {
    /// Registers the workload's peers with `router`.
    pub fn new(router: S, config: WorkloadConfig) -> LoadGenerator<S> {
        let now = Instant::now();
        let mut generator = LoadGenerator {
            rng: SplitMix64::new(config.seed),
            chain_rng: SplitMix64::new(config.seed ^ 0xB10C_C4A1),
            next_block_at: now + config.block_interval,
            next_burst_at: now + config.sync_burst_every,
            next_churn_at: now + config.churn_every,
            router,
            config,
            peers: Vec::new(),
            next_address: 1,
            recent: VecDeque::new(),
            scheduled: BinaryHeap::new(),
            scheduled_messages: HashMap::new(),
            next_seq: 0,
            tip: BlockHeader {
                prev_hash: [0; 32],
                hash: [0; 32],
                height: 0,
            },
            recent_headers: VecDeque::new(),
            last_step: now,
            started: now,
            surge_connected: 0,
        };
        for _ in 0..generator.config.peers {
            if let Some(peer) = generator.connect_peer() {
                generator.peers.push(peer);
            }
        }
        generator
    }

    /// Runs until the task is dropped or aborted.
    pub async fn run(mut self) {
        let mut ticker = tokio::time::interval(TICK);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            self.step(Instant::now());
        }
    }

    /// The router (or design) the peers talk to.
    pub fn sink(&self) -> &S {
        &self.router
    }

    pub fn sink_mut(&mut self) -> &mut S {
        &mut self.router
    }

    /// Peers currently connected.
    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    /// Emits everything due between the previous step and `now`.
    pub fn step(&mut self, now: Instant) {
        let mut elapsed = now.saturating_duration_since(self.last_step).as_secs_f64();
        self.last_step = now;
        let since_start = now.saturating_duration_since(self.started);
        let spike_end = self.config.spike_at + self.config.spike_for;
        if since_start > self.config.spike_at && since_start <= spike_end {
            elapsed *= self.config.spike_factor;
        }
        self.surge(since_start, now);
        for index in 0..self.peers.len() {
            let peer = &mut self.peers[index];
            peer.credit += peer.rate * elapsed;
            while self.peers[index].credit >= 1.0 {
                self.peers[index].credit -= 1.0;
                let message = self.random_message(now, index);
                self.router.emit_message(self.peers[index].id, message);
            }
        }
        while let Some(Reverse(due)) = self.scheduled.peek() {
            if due.at > now {
                break;
            }
            let seq = due.seq;
            self.scheduled.pop();
            if let Some((index, message)) = self.scheduled_messages.remove(&seq) {
                if let Some(peer) = self.peers.get(index) {
                    self.router.emit_message(peer.id, message);
                }
            }
        }
        // A burst forks from the tip before a block mined in the same step extends it: the other
        // way round, the burst's first parent would be a block still in flight and every burst
        // block would be orphaned.
        if now >= self.next_burst_at {
            self.next_burst_at += self.config.sync_burst_every;
            self.sync_burst(now);
        }
        if now >= self.next_block_at {
            self.next_block_at += self.config.block_interval;
            self.mine_block(now);
        }
        if now >= self.next_churn_at {
            self.next_churn_at += self.config.churn_every;
            self.churn();
        }
        for peer in &mut self.peers {
            while peer.outbox.try_recv().is_ok() {}
        }
    }

    /// Connects the surge peers due by `since_start`, each with its handshake.
    fn surge(&mut self, since_start: Duration, now: Instant) {
        while self.surge_connected < self.config.surge_peers {
            let due = self.config.surge_at
                + self
                    .config
                    .surge_over
                    .mul_f64(self.surge_connected as f64 / self.config.surge_peers as f64);
            if since_start < due {
                return;
            }
            self.surge_connected += 1;
            let Some(peer) = self.connect_peer() else {
                continue;
            };
            self.peers.push(peer);
            let index = self.peers.len() - 1;
            let handshake = [
                NetMessage::Version(VersionInfo {
                    protocol: 70016,
                    best_height: self.tip.height,
                }),
                NetMessage::VerAck,
                NetMessage::GetHeaders {
                    locator: vec![self.tip.hash],
                    stop_hash: [0; 32],
                },
                NetMessage::GetAddr,
            ];
            for (i, message) in handshake.into_iter().enumerate() {
                self.schedule(now + Duration::from_millis(i as u64), index, message);
            }
        }
    }

    fn connect_peer(&mut self) -> Option<SimPeer> {
        let (sender, outbox) = mpsc::channel(64);
        let n = self.next_address;
        self.next_address += 1;
        let address = SocketAddr::from(([10, (n >> 16) as u8, (n >> 8) as u8, n as u8], 8333));
        let inbound = self.rng.chance(0.5);
        let version = VersionInfo {
            protocol: 70016,
            best_height: self.tip.height,
        };
        let id = self
            .router
            .register_peer(inbound, address, version, sender)
            .ok()?;
        let rate = self.config.rate_per_peer * (0.6 + 0.8 * self.rng.next_f64());
        Some(SimPeer {
            id,
            rate,
            credit: self.rng.next_f64(),
            outbox,
        })
    }

    fn churn(&mut self) {
        if self.peers.is_empty() {
            return;
        }
        const REASONS: [&str; 3] = [
            "ping timeout",
            "connection reset by peer",
            "misbehaving: invalid inv",
        ];
        let index = self.rng.below(self.peers.len());
        let reason = REASONS[self.rng.below(REASONS.len())];
        self.router.disconnect(self.peers[index].id, reason);
        match self.connect_peer() {
            Some(peer) => self.peers[index] = peer,
            None => {
                self.peers.swap_remove(index);
            }
        }
    }

    fn random_message(&mut self, now: Instant, peer_index: usize) -> NetMessage {
        let mix = &self.config.mix;
        let mut roll = self.rng.next_f64() * mix.total();
        let mut pick = |weight: f64| {
            let hit = roll < weight;
            roll -= weight;
            hit
        };
        let (inv, tx, headers, getheaders, ping, pong, getdata, addr) = (
            pick(mix.inv),
            pick(mix.tx),
            pick(mix.headers),
            pick(mix.getheaders),
            pick(mix.ping),
            pick(mix.pong),
            pick(mix.getdata),
            pick(mix.addr),
        );
        if inv {
            NetMessage::Inv(self.random_inventory(now, peer_index))
        } else if tx {
            NetMessage::Tx(vec![0u8; 250 + self.rng.below(500)])
        } else if headers {
            NetMessage::Headers(self.recent_headers.iter().rev().take(4).cloned().collect())
        } else if getheaders {
            NetMessage::GetHeaders {
                locator: vec![self.tip.hash],
                stop_hash: [0; 32],
            }
        } else if ping {
            NetMessage::Ping(self.rng.next_u64())
        } else if pong {
            NetMessage::Pong(self.rng.next_u64())
        } else if getdata {
            NetMessage::GetData(Inventory {
                items: vec![InventoryItem {
                    kind: InvType::Transaction,
                    hash: self.rng.hash(),
                }],
            })
        } else if addr {
            NetMessage::Addr(vec![NodeAddr {
                address: SocketAddr::from(([10, 9, 0, self.rng.below(250) as u8], 8333)),
                services: 1,
            }])
        } else {
            NetMessage::GetAddr
        }
    }

    fn random_inventory(&mut self, now: Instant, peer_index: usize) -> Inventory {
        while let Some((_, seen)) = self.recent.front() {
            if now.saturating_duration_since(*seen) <= DUPLICATE_SOURCE_AGE {
                break;
            }
            self.recent.pop_front();
        }
        let count = 1 + self.rng.below(4);
        let items = if !self.recent.is_empty() && self.rng.chance(self.config.duplicate_ratio) {
            (0..count)
                .map(|_| self.recent[self.rng.below(self.recent.len())].0)
                .collect()
        } else {
            let items: Vec<_> = (0..count)
                .map(|_| InventoryItem {
                    kind: InvType::Transaction,
                    hash: self.rng.hash(),
                })
                .collect();
            for item in &items {
                if self.recent.len() == RECENT_ITEMS_CAP {
                    self.recent.pop_front();
                }
                self.recent.push_back((*item, now));
            }
            self.relay(now, peer_index, &items);
            items
        };
        Inventory { items }
    }

    /// Other peers echo a new announcement, each after its own gossip delay.
    fn relay(&mut self, now: Instant, peer_index: usize, items: &[InventoryItem]) {
        let relays = self
            .config
            .inv_relay_peers
            .min(self.peers.len().saturating_sub(1));
        let spread = self.config.inv_relay_spread.as_micros().max(1) as usize;
        for i in 1..=relays {
            let peer = (peer_index + i) % self.peers.len();
            let delay = Duration::from_micros(self.rng.below(spread) as u64);
            let inv = NetMessage::Inv(Inventory {
                items: items.to_vec(),
            });
            self.schedule(now + delay, peer, inv);
        }
    }

    fn schedule(&mut self, at: Instant, peer_index: usize, message: NetMessage) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.scheduled.push(Reverse(Due { at, seq }));
        self.scheduled_messages.insert(seq, (peer_index, message));
    }

    fn next_header(&mut self, parent: &BlockHeader) -> BlockHeader {
        BlockHeader {
            prev_hash: parent.hash,
            hash: self.chain_rng.hash(),
            height: parent.height + 1,
        }
    }

    fn block(&self, header: &BlockHeader) -> NetMessage {
        NetMessage::Block(encode_block(header, self.config.block_size))
    }

    /// A new block: announced by `inv` from several peers over a few hundred milliseconds, then
    /// delivered by the first of them; sometimes chased by a competing block, and rarely by a
    /// competing branch that wins.
    fn mine_block(&mut self, now: Instant) {
        if self.peers.is_empty() {
            return;
        }
        let parent = self.tip.clone();
        let header = self.next_header(&parent);
        let announcers = BLOCK_ANNOUNCERS.min(self.peers.len());
        let first = self.rng.below(self.peers.len());
        for i in 0..announcers {
            let peer = (first + i) % self.peers.len();
            let delay = Duration::from_millis(30 * i as u64 + self.rng.below(20) as u64);
            let inv = NetMessage::Inv(Inventory {
                items: vec![InventoryItem {
                    kind: InvType::Block,
                    hash: header.hash,
                }],
            });
            self.schedule(now + delay, peer, inv);
        }
        let block = self.block(&header);
        self.schedule(now + self.config.block_fetch_delay, first, block);
        self.tip = header.clone();
        self.remember_header(header);

        if self.chain_rng.chance(self.config.stale_block_probability) {
            let rival_peer = (first + 1) % self.peers.len();
            let rival = self.next_header(&parent);
            let rival_block = self.block(&rival);
            // Rivals arrive before the next block is mined, however short the interval.
            let rival_delay = Duration::from_millis(400).min(self.config.block_interval * 2 / 5);
            self.schedule(now + rival_delay, rival_peer, rival_block);
            if self
                .chain_rng
                .chance(self.config.reorg_probability / self.config.stale_block_probability)
            {
                let winner = self.next_header(&rival);
                let winner_block = self.block(&winner);
                let winner_delay =
                    Duration::from_millis(600).min(self.config.block_interval * 3 / 5);
                self.schedule(now + winner_delay, rival_peer, winner_block);
                self.tip = winner.clone();
                self.remember_header(winner);
            }
        }
    }

    /// Peers send us a run of blocks back to back, as in a catch-up sync: the same run from each
    /// of `sync_burst_peers`, or one competing branch each.
    fn sync_burst(&mut self, now: Instant) {
        if self.peers.is_empty() || self.config.sync_burst_blocks == 0 {
            return;
        }
        let senders = self.config.sync_burst_peers.clamp(1, self.peers.len());
        let first = self.rng.below(self.peers.len());
        let fork = self.tip.clone();
        let mut shared: Vec<BlockHeader> = Vec::new();
        for s in 0..senders {
            let peer = (first + s) % self.peers.len();
            let competing = self.config.sync_burst_competing;
            let blocks = self.config.sync_burst_blocks + usize::from(competing && s + 1 == senders);
            let mut parent = fork.clone();
            for i in 0..blocks {
                let header = if competing || s == 0 {
                    let header = self.next_header(&parent);
                    shared.push(header.clone());
                    header
                } else {
                    shared[i].clone()
                };
                let block = self.block(&header);
                self.schedule(now + Duration::from_micros(200 * i as u64), peer, block);
                parent = header;
            }
            if competing || s == 0 {
                self.tip = parent;
            }
        }
        for header in shared.iter().rev().take(16).rev() {
            self.remember_header(header.clone());
        }
    }

    fn remember_header(&mut self, header: BlockHeader) {
        if self.recent_headers.len() == 16 {
            self.recent_headers.pop_front();
        }
        self.recent_headers.push_back(header);
    }
}

/// The node's view of its chain, enough to tell accepted, orphaned and reorganising blocks apart.
#[derive(Default)]
struct ChainView {
    /// Every block we keep: hash -> (height, parent).
    blocks: HashMap<[u8; 32], (u64, [u8; 32])>,
    /// The best chain by height.
    best: HashMap<u64, [u8; 32]>,
    tip_hash: [u8; 32],
    tip_height: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockOutcome {
    Accepted,
    Reorganized { depth: u32 },
    Orphaned,
    Known,
}

/// How many blocks below the tip the view keeps.
const CHAIN_MEMORY: u64 = 256;

impl ChainView {
    fn connect(&mut self, header: &BlockHeader) -> BlockOutcome {
        if self.blocks.contains_key(&header.hash) {
            return BlockOutcome::Known;
        }
        let parent_known = header.prev_hash == self.tip_hash
            || self.blocks.get(&header.prev_hash).map(|(h, _)| *h + 1) == Some(header.height);
        if !parent_known {
            if header.height > self.tip_height {
                // Its ancestors never reached us (lag skipped them, or they are still in flight):
                // a node fetches them and moves on to the longer chain. Counting the block as an
                // orphan would make every later block an orphan too, after a single skip.
                self.blocks
                    .insert(header.hash, (header.height, header.prev_hash));
                self.set_tip(header);
                return BlockOutcome::Accepted;
            }
            return BlockOutcome::Orphaned;
        }
        self.blocks
            .insert(header.hash, (header.height, header.prev_hash));
        if header.prev_hash == self.tip_hash {
            self.set_tip(header);
            return BlockOutcome::Accepted;
        }
        if header.height <= self.tip_height {
            return BlockOutcome::Orphaned;
        }
        // A side branch overtook the best chain: walk it back to where it forks.
        let mut branch = vec![(header.height, header.hash)];
        let mut cursor = header.prev_hash;
        while let Some(&(height, parent)) = self.blocks.get(&cursor) {
            if self.best.get(&height) == Some(&cursor) {
                break;
            }
            branch.push((height, cursor));
            cursor = parent;
        }
        let fork_height = branch.last().map_or(header.height, |(h, _)| *h) - 1;
        let depth = (self.tip_height - fork_height) as u32;
        for (height, hash) in branch {
            self.best.insert(height, hash);
        }
        self.best.retain(|height, _| *height <= header.height);
        self.set_tip(header);
        BlockOutcome::Reorganized { depth }
    }

    fn set_tip(&mut self, header: &BlockHeader) {
        self.tip_hash = header.hash;
        self.tip_height = header.height;
        self.best.insert(header.height, header.hash);
        let floor = header.height.saturating_sub(CHAIN_MEMORY);
        if self.blocks.len() as u64 > 2 * CHAIN_MEMORY {
            self.blocks.retain(|_, (height, _)| *height >= floor);
            self.best.retain(|height, _| *height >= floor);
        }
    }
}

/// What the node's consumer loop does with the events it handles, apart from the time it takes:
/// remembers when each block was first announced, connects blocks to its chain and reports the
/// outcome. Shared by the live consumer loop and the simulator's virtual-time consumers.
#[derive(Default)]
pub struct NodeModel {
    chain: ChainView,
    first_seen: HashMap<[u8; 32], Instant>,
}

/// A block the node has connected (or not) and still has to report once it is done validating.
pub struct BlockArrival {
    outcome: BlockOutcome,
    hash: [u8; 32],
    height: u64,
    first_seen: Instant,
    /// When the block message itself reached the router.
    received_at: Instant,
}

impl BlockArrival {
    pub fn outcome(&self) -> BlockOutcome {
        self.outcome
    }

    /// The consumer took the block from its channel at `delivered_at` and validation ends at
    /// `accepted_at`; every offset counts from the block's first announcement.
    pub fn report(self, observer: &dyn Observer, delivered_at: Instant, accepted_at: Instant) {
        let since = |at: Instant| at.saturating_duration_since(self.first_seen);
        let accepted = Observation::BlockAccepted {
            hash: self.hash,
            height: self.height,
            received: Some(since(self.received_at)),
            delivered: Some(since(delivered_at)),
            propagation: since(accepted_at),
        };
        match self.outcome {
            BlockOutcome::Accepted => observer.observe(accepted),
            BlockOutcome::Reorganized { depth } => {
                observer.observe(Observation::ChainReorganized { depth });
                observer.observe(accepted);
            }
            BlockOutcome::Orphaned => observer.observe(Observation::BlockOrphaned),
            BlockOutcome::Known => {}
        }
    }
}

impl NodeModel {
    /// An `inv` sent at `sent_at`: block announcements start their propagation clock.
    pub fn on_inv(&mut self, items: &[InventoryItem], sent_at: Instant) {
        for item in items.iter().filter(|i| i.kind == InvType::Block) {
            self.first_seen.entry(item.hash).or_insert(sent_at);
        }
        if self.first_seen.len() > 4096 {
            if let Some(cutoff) = sent_at.checked_sub(Duration::from_secs(60)) {
                self.first_seen.retain(|_, seen| *seen >= cutoff);
            }
        }
    }

    /// A block payload sent at `sent_at`; `None` when it does not even carry a header.
    pub fn on_block(&mut self, bytes: &[u8], sent_at: Instant) -> Option<BlockArrival> {
        let header = decode_block_header(bytes)?;
        let first_seen = self
            .first_seen
            .remove(&header.hash)
            .unwrap_or(sent_at)
            .min(sent_at);
        Some(BlockArrival {
            outcome: self.chain.connect(&header),
            hash: header.hash,
            height: header.height,
            first_seen,
            received_at: sent_at,
        })
    }

    /// Handles one event taken at `started`; returns what it cost, and reports a block once
    /// validated at `started + cost`. A block the node already has costs a lookup, not a
    /// validation.
    pub fn handle(
        &mut self,
        event: &PeerEvent,
        sent_at: Instant,
        started: Instant,
        cost: &ConsumerCost,
        observer: &dyn Observer,
    ) -> Duration {
        match event {
            PeerEvent::Message {
                message: NetMessage::Inv(inventory),
                ..
            } => {
                self.on_inv(&inventory.items, sent_at);
                cost.message
            }
            PeerEvent::Message {
                message: NetMessage::Block(bytes),
                ..
            } => self.block(bytes, sent_at, started, cost, observer),
            other => cost.of(other),
        }
    }

    /// A block payload taken at `started`; returns its cost (see [`NodeModel::handle`]).
    pub fn block(
        &mut self,
        bytes: &[u8],
        sent_at: Instant,
        started: Instant,
        cost: &ConsumerCost,
        observer: &dyn Observer,
    ) -> Duration {
        match self.on_block(bytes, sent_at) {
            Some(arrival) if arrival.outcome() != BlockOutcome::Known => {
                arrival.report(observer, started, started + cost.block);
                cost.block
            }
            _ => cost.message,
        }
    }
}

/// The node's consumer loop: handles each event synchronously, and on `Lagged` only logs, as the
/// node does. Returns when the router is gone.
pub async fn run_consumer(
    mut subscriber: Subscriber,
    cost: ConsumerCost,
    observer: Arc<dyn Observer>,
) {
    let mut node = NodeModel::default();
    // Processing time owed but not yet slept. Sleeping per message would round every 25 us up to a
    // timer tick; paying the debt in ~1 ms installments keeps the modelled throughput exact.
    let mut debt_nanos: i128 = 0;
    let mut lag_log = LagLog::default();
    loop {
        let (event, sent_at) = match subscriber.recv_timed().await {
            Ok(received) => received,
            Err(RecvError::Lagged(skipped)) => {
                lag_log.skipped(skipped);
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        let started = Instant::now() + Duration::from_nanos(debt_nanos.max(0) as u64);
        debt_nanos += node
            .handle(&event, sent_at, started, &cost, observer.as_ref())
            .as_nanos() as i128;
        if debt_nanos >= 1_000_000 {
            let started = Instant::now();
            tokio::time::sleep(Duration::from_nanos(debt_nanos as u64)).await;
            // Oversleeping is credited to the next messages, up to one tick.
            debt_nanos -= started.elapsed().as_nanos() as i128;
            debt_nanos = debt_nanos.max(-1_000_000);
        }
        lag_log.flush();
    }
}

/// The node logs every `Lagged`; under sustained lag that is thousands of lines a second, so the
/// model sums them into one line a second.
#[derive(Default)]
struct LagLog {
    pending: u64,
    last: Option<Instant>,
}

impl LagLog {
    fn skipped(&mut self, skipped: u64) {
        self.pending += skipped;
        self.flush();
    }

    fn flush(&mut self) {
        let now = Instant::now();
        if self.pending > 0 && self.last.is_none_or(|t| now - t >= Duration::from_secs(1)) {
            tracing::warn!(skipped = self.pending, "peer event loop lagged");
            self.pending = 0;
            self.last = Some(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(height: u64, hash: u8, prev: u8) -> BlockHeader {
        BlockHeader {
            prev_hash: [prev; 32],
            hash: [hash; 32],
            height,
        }
    }

    #[test]
    fn block_header_round_trips_through_the_payload() {
        let h = header(42, 7, 6);
        let bytes = encode_block(&h, 1000);
        assert_eq!(bytes.len(), 1000);
        assert_eq!(decode_block_header(&bytes), Some(h));
        assert_eq!(decode_block_header(&bytes[..71]), None);
    }

    #[test]
    fn chain_view_accepts_orphans_and_reorganises() {
        let mut chain = ChainView::default();
        assert!(matches!(
            chain.connect(&header(1, 1, 0)),
            BlockOutcome::Accepted
        ));
        assert!(matches!(
            chain.connect(&header(2, 2, 1)),
            BlockOutcome::Accepted
        ));
        // A rival at height 2 does not beat the tip.
        assert!(matches!(
            chain.connect(&header(2, 12, 1)),
            BlockOutcome::Orphaned
        ));
        // Its child does: one block undone.
        assert!(matches!(
            chain.connect(&header(3, 13, 12)),
            BlockOutcome::Reorganized { depth: 1 }
        ));
        assert!(matches!(
            chain.connect(&header(4, 14, 13)),
            BlockOutcome::Accepted
        ));
        assert!(matches!(
            chain.connect(&header(4, 14, 13)),
            BlockOutcome::Known
        ));
        // Above the tip with ancestors we never saw (lag skipped them): the node fetches them and
        // moves on, so one skipped block does not orphan every block after it.
        assert_eq!(chain.connect(&header(9, 99, 98)), BlockOutcome::Accepted);
        assert_eq!(chain.connect(&header(10, 100, 99)), BlockOutcome::Accepted);
        // At or below the tip with a parent we never saw: a stale side block.
        assert_eq!(chain.connect(&header(10, 77, 76)), BlockOutcome::Orphaned);
    }

    #[test]
    fn an_accepted_block_reports_its_offsets_from_the_first_announcement() {
        type Offsets = (Option<Duration>, Option<Duration>, Duration);
        struct Last(std::sync::Mutex<Option<Offsets>>);
        impl Observer for Last {
            fn observe(&self, observation: Observation<'_>) {
                if let Observation::BlockAccepted {
                    received,
                    delivered,
                    propagation,
                    ..
                } = observation
                {
                    *self.0.lock().unwrap() = Some((received, delivered, propagation));
                }
            }
        }
        let observer = Last(std::sync::Mutex::new(None));
        let cost = ConsumerCost {
            block: Duration::from_millis(5),
            ..ConsumerCost::default()
        };
        let h = header(1, 1, 0);
        let t0 = Instant::now();
        let mut node = NodeModel::default();
        node.on_inv(
            &[InventoryItem {
                kind: InvType::Block,
                hash: h.hash,
            }],
            t0,
        );
        let bytes = encode_block(&h, 100);
        let sent_at = t0 + Duration::from_millis(2);
        let started = t0 + Duration::from_millis(3);
        node.block(&bytes, sent_at, started, &cost, &observer);
        assert_eq!(
            observer.0.lock().unwrap().take(),
            Some((
                Some(Duration::from_millis(2)),
                Some(Duration::from_millis(3)),
                Duration::from_millis(8)
            ))
        );

        // Announced by the block itself: a genuine zero, not an unknown offset.
        let h = header(2, 2, 1);
        node.block(&encode_block(&h, 100), started, started, &cost, &observer);
        assert_eq!(
            observer.0.lock().unwrap().take(),
            Some((
                Some(Duration::ZERO),
                Some(Duration::ZERO),
                Duration::from_millis(5)
            ))
        );
    }
}
