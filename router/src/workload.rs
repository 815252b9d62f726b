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

use p2p_observe::{Observation, Observer};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};

use crate::rng::SplitMix64;
use crate::router::{Router, Subscriber};
use crate::types::{
    BlockHeader, InvType, Inventory, InventoryItem, NetMessage, NodeAddr, PeerEvent, PeerId,
    VersionInfo,
};

/// How often the generator wakes up; messages due in between go out together, as they would from
/// a socket read loop.
const TICK: Duration = Duration::from_millis(10);
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
            stale_block_probability: 0.05,
            reorg_probability: 0.02,
            seed: 1,
        }
    }
}

/// What the node's consumer loop spends on each event. Block validation (post-quantum signatures)
/// is the slow one.
#[derive(Clone, Debug, PartialEq)]
pub struct ConsumerCost {
    pub block: Duration,
    /// Every other message and the connect/disconnect events.
    pub message: Duration,
}

impl Default for ConsumerCost {
    fn default() -> Self {
        ConsumerCost {
            block: Duration::from_millis(3),
            message: Duration::from_micros(25),
        }
    }
}

impl ConsumerCost {
    pub fn of(&self, event: &PeerEvent) -> Duration {
        match event {
            PeerEvent::Message {
                message: NetMessage::Block(_),
                ..
            } => self.block,
            _ => self.message,
        }
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

/// Drives the router with the workload's peers.
pub struct LoadGenerator {
    router: Router,
    config: WorkloadConfig,
    rng: SplitMix64,
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
}

impl LoadGenerator {
    /// Registers the workload's peers with `router`.
    pub fn new(router: Router, config: WorkloadConfig) -> LoadGenerator {
        let now = Instant::now();
        let mut generator = LoadGenerator {
            rng: SplitMix64::new(config.seed),
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

    /// Emits everything due between the previous step and `now`.
    pub fn step(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last_step).as_secs_f64();
        self.last_step = now;
        for index in 0..self.peers.len() {
            let peer = &mut self.peers[index];
            peer.credit += peer.rate * elapsed;
            while self.peers[index].credit >= 1.0 {
                self.peers[index].credit -= 1.0;
                let message = self.random_message(now);
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
        if now >= self.next_block_at {
            self.next_block_at += self.config.block_interval;
            self.mine_block(now);
        }
        if now >= self.next_burst_at {
            self.next_burst_at += self.config.sync_burst_every;
            self.sync_burst(now);
        }
        if now >= self.next_churn_at {
            self.next_churn_at += self.config.churn_every;
            self.churn();
        }
        for peer in &mut self.peers {
            while peer.outbox.try_recv().is_ok() {}
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

    fn random_message(&mut self, now: Instant) -> NetMessage {
        let roll = self.rng.next_f64();
        if roll < 0.62 {
            NetMessage::Inv(self.random_inventory(now))
        } else if roll < 0.76 {
            NetMessage::Tx(vec![0u8; 250 + self.rng.below(500)])
        } else if roll < 0.80 {
            NetMessage::Headers(self.recent_headers.iter().rev().take(4).cloned().collect())
        } else if roll < 0.82 {
            NetMessage::GetHeaders {
                locator: vec![self.tip.hash],
                stop_hash: [0; 32],
            }
        } else if roll < 0.88 {
            NetMessage::Ping(self.rng.next_u64())
        } else if roll < 0.94 {
            NetMessage::Pong(self.rng.next_u64())
        } else if roll < 0.98 {
            NetMessage::GetData(Inventory {
                items: vec![InventoryItem {
                    kind: InvType::Transaction,
                    hash: self.rng.hash(),
                }],
            })
        } else if roll < 0.99 {
            NetMessage::Addr(vec![NodeAddr {
                address: SocketAddr::from(([10, 9, 0, self.rng.below(250) as u8], 8333)),
                services: 1,
            }])
        } else {
            NetMessage::GetAddr
        }
    }

    fn random_inventory(&mut self, now: Instant) -> Inventory {
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
            items
        };
        Inventory { items }
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
            hash: self.rng.hash(),
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
        self.schedule(now + Duration::from_millis(150), first, block);
        self.tip = header.clone();
        self.remember_header(header);

        if self.rng.chance(self.config.stale_block_probability) {
            let rival_peer = (first + 1) % self.peers.len();
            let rival = self.next_header(&parent);
            let rival_block = self.block(&rival);
            self.schedule(now + Duration::from_millis(400), rival_peer, rival_block);
            if self
                .rng
                .chance(self.config.reorg_probability / self.config.stale_block_probability)
            {
                let winner = self.next_header(&rival);
                let winner_block = self.block(&winner);
                self.schedule(now + Duration::from_millis(600), rival_peer, winner_block);
                self.tip = winner.clone();
                self.remember_header(winner);
            }
        }
    }

    /// One peer sends us a run of blocks back to back, as in a catch-up sync.
    fn sync_burst(&mut self, now: Instant) {
        if self.peers.is_empty() || self.config.sync_burst_blocks == 0 {
            return;
        }
        let peer = self.rng.below(self.peers.len());
        for i in 0..self.config.sync_burst_blocks {
            let header = self.next_header(&self.tip.clone());
            let block = self.block(&header);
            self.schedule(now + Duration::from_micros(200 * i as u64), peer, block);
            self.tip = header.clone();
            self.remember_header(header);
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

enum BlockOutcome {
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

/// The node's consumer loop: handles each event synchronously, and on `Lagged` only logs, as the
/// node does. Returns when the router is gone.
pub async fn run_consumer(
    mut subscriber: Subscriber,
    cost: ConsumerCost,
    observer: Arc<dyn Observer>,
) {
    let mut chain = ChainView::default();
    let mut first_seen: HashMap<[u8; 32], Instant> = HashMap::new();
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
        debt_nanos += cost.of(&event).as_nanos() as i128;
        if let PeerEvent::Message { message, .. } = &event {
            match message {
                NetMessage::Inv(inventory) => {
                    for item in inventory.items.iter().filter(|i| i.kind == InvType::Block) {
                        first_seen.entry(item.hash).or_insert(sent_at);
                    }
                }
                NetMessage::Block(bytes) => {
                    if let Some(header) = decode_block_header(bytes) {
                        let seen = first_seen
                            .remove(&header.hash)
                            .unwrap_or(sent_at)
                            .min(sent_at);
                        let validated_at =
                            Instant::now() + Duration::from_nanos(debt_nanos.max(0) as u64);
                        report_block(&observer, chain.connect(&header), validated_at - seen);
                    }
                }
                _ => {}
            }
        }
        if first_seen.len() > 4096 {
            let cutoff = Instant::now() - Duration::from_secs(60);
            first_seen.retain(|_, seen| *seen >= cutoff);
        }
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

fn report_block(observer: &Arc<dyn Observer>, outcome: BlockOutcome, propagation: Duration) {
    match outcome {
        BlockOutcome::Accepted => observer.observe(Observation::BlockAccepted { propagation }),
        BlockOutcome::Reorganized { depth } => {
            observer.observe(Observation::ChainReorganized { depth });
            observer.observe(Observation::BlockAccepted { propagation });
        }
        BlockOutcome::Orphaned => observer.observe(Observation::BlockOrphaned),
        BlockOutcome::Known => {}
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
        // A block whose parent we never saw.
        assert!(matches!(
            chain.connect(&header(9, 99, 98)),
            BlockOutcome::Orphaned
        ));
    }
}
