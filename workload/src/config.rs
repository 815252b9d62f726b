//! The workload's knobs.

use std::time::Duration;

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
    pub(crate) fn total(&self) -> f64 {
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
            // Under the scaling document's thresholds (orphans < 1%, reorgs < 0.1% of blocks), as on a
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
