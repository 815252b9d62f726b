//! The load generator: the workload's peers, their traffic, mining, sync bursts, churn, surges
//! and spikes, sent through a [`PeerSink`].

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use p2p_router::block::encode_block;
use p2p_router::{
    BlockHeader, InvType, Inventory, InventoryItem, NetMessage, NodeAddr, PeerId, PeerSink, Router,
    Version, VersionInfo,
};
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};

use crate::config::WorkloadConfig;
use p2p_router::rng::SplitMix64;

/// How often the generator wakes up; messages due in between go out together, as they would from
/// a socket read loop.
pub const TICK: Duration = Duration::from_millis(10);
/// Duplicates re-announce items at most this old, inside the 5 s dedup window.
const DUPLICATE_SOURCE_AGE: Duration = Duration::from_secs(4);
const RECENT_ITEMS_CAP: usize = 8192;
/// How many peers announce each new block by `inv`.
const BLOCK_ANNOUNCERS: usize = 8;

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
                NetMessage::Version(Version::new(70016, self.tip.height)),
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
