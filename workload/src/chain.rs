//! What the node's consumer does with blocks: its chain view, and when each block was first
//! announced, so block propagation can be reported.

use std::collections::HashMap;
use std::time::Duration;

use p2p_observe::{Observation, Observer};
use p2p_router::block::decode_block_header;
use p2p_router::{BlockHeader, InvType, InventoryItem, NetMessage, PeerEvent};
use tokio::time::Instant;

use crate::consumer::ConsumerCost;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consumer::ConsumerCost;
    use p2p_router::block::encode_block;

    fn header(height: u64, hash: u8, prev: u8) -> BlockHeader {
        BlockHeader {
            prev_hash: [prev; 32],
            hash: [hash; 32],
            height,
        }
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
