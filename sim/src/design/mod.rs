//! Every router design of the node team's scaling document behind one interface, one file per
//! design. Each reports the same observations as the reference router, so the exporter's recorder,
//! rules and dashboards work on any of them.

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use p2p_observe::{Direction, DisconnectReason, Observation, Observer};
use p2p_router::{
    NetMessage, PeerId, PeerSink, PeerSummary, RouterError, VersionInfo, EVENT_CHANNEL_SIZE,
};
use p2p_workload::ConsumerCost;
use tokio::time::Instant;

mod actor;
mod broadcast;
mod dedup;
mod multi_channel;
mod segmented;
mod sharded;
mod zero_copy;

pub use actor::{Actor, MAILBOXES, MAILBOX_CAPACITY};
pub use broadcast::Broadcast;
pub use dedup::{inv_window, Dedup, DEDUP_WINDOW};
pub use segmented::{segment_of, Segmented, SEGMENTS};
pub use sharded::{Sharded, SHARDS, SHARD_CAPACITY};
pub use zero_copy::{SharedEvent, SharedMessage, ZeroCopy};

/// The node's consumer loop subscribes under this name.
pub const CONSUMER: &str = "consumer";

/// The designs, by the names the CLI and the reports use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DesignKind {
    Broadcast2048,
    Broadcast4096,
    Broadcast8192,
    Dedup,
    Segmented,
    Sharded,
    Actor,
    ZeroCopy,
}

impl DesignKind {
    pub const ALL: [DesignKind; 8] = [
        DesignKind::Broadcast2048,
        DesignKind::Broadcast4096,
        DesignKind::Broadcast8192,
        DesignKind::Dedup,
        DesignKind::Segmented,
        DesignKind::Sharded,
        DesignKind::Actor,
        DesignKind::ZeroCopy,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DesignKind::Broadcast2048 => "broadcast-2048",
            DesignKind::Broadcast4096 => "broadcast-4096",
            DesignKind::Broadcast8192 => "broadcast-8192",
            DesignKind::Dedup => "dedup",
            DesignKind::Segmented => "segmented",
            DesignKind::Sharded => "sharded",
            DesignKind::Actor => "actor",
            DesignKind::ZeroCopy => "zero-copy",
        }
    }

    /// The capacity of the design's one channel; `None` for the designs with several.
    pub fn capacity(self) -> Option<usize> {
        match self {
            DesignKind::Broadcast2048 | DesignKind::Dedup | DesignKind::ZeroCopy => {
                Some(EVENT_CHANNEL_SIZE)
            }
            DesignKind::Broadcast4096 => Some(2 * EVENT_CHANNEL_SIZE),
            DesignKind::Broadcast8192 => Some(4 * EVENT_CHANNEL_SIZE),
            DesignKind::Segmented | DesignKind::Sharded | DesignKind::Actor => None,
        }
    }

    pub fn parse(name: &str) -> Option<DesignKind> {
        DesignKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Builds the design; everything it does is reported to `observer`.
    pub fn build(
        self,
        max_peers: usize,
        cost: ConsumerCost,
        observer: Arc<dyn Observer>,
    ) -> Box<dyn Design> {
        match self {
            DesignKind::Broadcast2048 => Box::new(Broadcast::new(2048, max_peers, cost, observer)),
            DesignKind::Broadcast4096 => Box::new(Broadcast::new(4096, max_peers, cost, observer)),
            DesignKind::Broadcast8192 => Box::new(Broadcast::new(8192, max_peers, cost, observer)),
            DesignKind::Dedup => Box::new(Dedup::new(max_peers, cost, observer)),
            DesignKind::Segmented => Box::new(Segmented::new(max_peers, cost, observer)),
            DesignKind::Sharded => Box::new(Sharded::new(max_peers, cost, observer)),
            DesignKind::Actor => Box::new(Actor::new(max_peers, cost, observer)),
            DesignKind::ZeroCopy => Box::new(ZeroCopy::new(max_peers, cost, observer)),
        }
    }
}

impl fmt::Display for DesignKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A router design: peers talk to it through [`PeerSink`], and its consumers handle what it
/// delivers in (virtual or real) time.
pub trait Design: PeerSink + Send {
    /// Lets every consumer take and handle what it would have started on before `now`.
    fn catch_up(&mut self, now: Instant);
    /// Payload bytes held by the events queued in the design's channels or mailboxes.
    fn held_bytes(&mut self) -> u64;
    /// Time the node's one consumer loop spent handling events up to `now`; `None` where the
    /// work is split over several loops.
    fn consumer_busy(&mut self, _now: Instant) -> Option<Duration> {
        None
    }
}

impl<T: Design + ?Sized> Design for Box<T> {
    fn catch_up(&mut self, now: Instant) {
        (**self).catch_up(now)
    }

    fn held_bytes(&mut self) -> u64 {
        (**self).held_bytes()
    }

    fn consumer_busy(&mut self, now: Instant) -> Option<Duration> {
        (**self).consumer_busy(now)
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

impl<S: Design> Design for p2p_recording::RecordingSink<S> {
    fn catch_up(&mut self, now: Instant) {
        self.inner_mut().catch_up(now)
    }

    fn held_bytes(&mut self) -> u64 {
        self.inner_mut().held_bytes()
    }

    fn consumer_busy(&mut self, now: Instant) -> Option<Duration> {
        self.inner_mut().consumer_busy(now)
    }
}
