//! The scaling document's memory and pressure claims, computed from the node's types
//! (`size_of`) and from one traffic's runs instead of repeated: what a channel slot weighs, what
//! each design allocates up front and what its queued payloads held, what deduplication keeps out
//! of the channel and what shared (`Bytes`) bodies save with the node's subscriber count.

use std::mem::size_of;

use p2p_router::{broadcast_slot_bytes, NetMessage, PeerEvent};
use serde::Serialize;

use crate::design::{DesignKind, SharedEvent, MAILBOX_CAPACITY, SEGMENTS, SHARDS, SHARD_CAPACITY};
use crate::stats::RunResult;

/// One design's memory on this traffic.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DesignMemory {
    pub design: String,
    /// Slots of its channels; for `actor`, every mailbox full at the run's average peers (tokio
    /// allocates mailbox slots as they fill, so that is a bound, not an allocation).
    pub slots: u64,
    pub slot_bytes: u64,
    /// slots x slot size: allocated when a broadcast channel is created, whatever it carries.
    pub fixed_bytes: u64,
    /// The most payload bytes (bodies, inventory items, headers) its queued events held at once.
    pub peak_held_payload_bytes: u64,
    /// (fixed + peak held) over the node's router's.
    pub vs_baseline: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Figures {
    /// `size_of::<PeerEvent>()`: the node's event, its largest message (`version`) inline.
    pub event_bytes: u64,
    /// One broadcast slot of the node's channel: the event, tokio's receiver count and position,
    /// and the slot's mutex.
    pub slot_bytes: u64,
    pub memory: Vec<DesignMemory>,
    /// Duplicate inv messages (every item seen within 5 s) over every event the node's channel
    /// carried: the share of channel pressure deduplication removes.
    pub dedup_event_share: f64,
    /// Subscribers of the node's channel in this traffic.
    pub subscribers: u64,
    /// Share of payload copies shared bodies avoid: a `Vec<u8>` body is copied once per receiving
    /// subscriber, a `Bytes` body never, so (n - 1) / n of the memory the copies hold beside the
    /// queued original, and nothing with one subscriber. Copy time is saved either way.
    pub zero_copy_memory_saving: f64,
}

/// The slots a design allocates and what each weighs, in the node's layout (the simulator's
/// channels also carry a send timestamp, which the node's do not).
fn layout(kind: DesignKind, average_peers: f64) -> (u64, u64) {
    let event_slot = broadcast_slot_bytes::<PeerEvent>() as u64;
    match kind {
        DesignKind::Broadcast2048
        | DesignKind::Broadcast4096
        | DesignKind::Broadcast8192
        | DesignKind::Dedup => (kind.capacity().unwrap_or(0) as u64, event_slot),
        DesignKind::ZeroCopy => (
            kind.capacity().unwrap_or(0) as u64,
            broadcast_slot_bytes::<SharedEvent>() as u64,
        ),
        DesignKind::Segmented => (
            SEGMENTS.iter().map(|(_, capacity)| *capacity as u64).sum(),
            event_slot,
        ),
        DesignKind::Sharded => ((SHARDS.len() * SHARD_CAPACITY) as u64, event_slot),
        DesignKind::Actor => (
            (average_peers.round() as u64) * MAILBOX_CAPACITY as u64,
            size_of::<NetMessage>() as u64,
        ),
    }
}

/// The figures of one traffic: `runs` every design run on it, `baseline` the node's router's.
pub fn figures(runs: &[RunResult], baseline: &RunResult) -> Figures {
    let total = |r: &RunResult| {
        let kind = DesignKind::parse(&r.design);
        let (slots, slot_bytes) = kind.map_or((0, 0), |k| layout(k, r.average_peers));
        (
            slots,
            slot_bytes,
            slots * slot_bytes + r.peak_held_payload_bytes,
        )
    };
    let (_, _, baseline_total) = total(baseline);
    let memory = runs
        .iter()
        .filter(|r| DesignKind::parse(&r.design).is_some())
        .map(|r| {
            let (slots, slot_bytes, bytes) = total(r);
            DesignMemory {
                design: r.design.clone(),
                slots,
                slot_bytes,
                fixed_bytes: slots * slot_bytes,
                peak_held_payload_bytes: r.peak_held_payload_bytes,
                vs_baseline: bytes as f64 / baseline_total.max(1) as f64,
            }
        })
        .collect();
    let duplicates = (baseline.duplicate_ratio * baseline.inv_messages as f64).round();
    let subscribers = baseline.subscribers.max(1);
    Figures {
        event_bytes: size_of::<PeerEvent>() as u64,
        slot_bytes: broadcast_slot_bytes::<PeerEvent>() as u64,
        memory,
        dedup_event_share: duplicates / baseline.events_sent.max(1) as f64,
        subscribers,
        zero_copy_memory_saving: (subscribers - 1) as f64 / subscribers as f64,
    }
}
