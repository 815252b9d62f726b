//! The named workloads. Each is a reproducible `WorkloadConfig` (peers, message mix and rates,
//! duplicate structure, bursts, churn, blocks) plus the consumer's processing cost per message
//! type; docs/simulator.md explains every choice.

use std::time::Duration;

use p2p_workload::{ConsumerCost, WorkloadConfig};

#[derive(Clone, Debug)]
pub struct Scenario {
    pub name: &'static str,
    pub summary: &'static str,
    pub workload: WorkloadConfig,
    pub cost: ConsumerCost,
    /// Simulated time a run covers unless told otherwise.
    pub duration: Duration,
}

impl Scenario {
    /// Peers the router must accept: every peer the workload ever connects at once.
    pub fn max_peers(&self) -> usize {
        self.workload.peers + self.workload.surge_peers + 1
    }
}

const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

const fn us(n: u64) -> Duration {
    Duration::from_micros(n)
}

const fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// The names, in report order.
pub const NAMES: [&str; 10] = [
    "testnet-10-burst-250",
    "stress-100-peers",
    "sustained-1000-blocks",
    "mainnet-1000",
    "dup-storm",
    "peer-surge",
    "slow-consumer-burst",
    "healthy-under-load",
    "transient-spike",
    "steady-overload",
];

pub fn all() -> Vec<Scenario> {
    NAMES.iter().filter_map(|name| by_name(name)).collect()
}

pub fn by_name(name: &str) -> Option<Scenario> {
    let base = WorkloadConfig {
        block_fetch_delay: ms(40),
        ..WorkloadConfig::default()
    };
    let cost = ConsumerCost::default();
    let scenario = match name {
        "testnet-10-burst-250" => Scenario {
            name: "testnet-10-burst-250",
            summary: "The scaling document's tested setup: 10 peers, then a burst sync of 250 blocks from two competing chains.",
            workload: WorkloadConfig {
                peers: 10,
                sync_burst_every: secs(60),
                sync_burst_blocks: 125,
                sync_burst_peers: 2,
                sync_burst_competing: true,
                ..base
            },
            cost,
            duration: secs(120),
        },
        "stress-100-peers" => Scenario {
            name: "stress-100-peers",
            summary: "Scaling document, Phase 2.3: 100 peers, each sending the same 50-block sync burst every 2 minutes.",
            workload: WorkloadConfig {
                peers: 100,
                sync_burst_every: secs(120),
                sync_burst_blocks: 50,
                sync_burst_peers: 100,
                ..base
            },
            cost,
            duration: secs(3600),
        },
        "sustained-1000-blocks" => Scenario {
            name: "sustained-1000-blocks",
            summary: "Scaling document, Phase 2.3: 10 peers mining continuously, a block every 500 ms, 1000 blocks.",
            workload: WorkloadConfig {
                peers: 10,
                block_interval: ms(500),
                block_size: 64 * 1024,
                sync_burst_blocks: 0,
                ..base
            },
            cost,
            duration: secs(500),
        },
        "mainnet-1000" => Scenario {
            name: "mainnet-1000",
            summary: "Phase 4 target: 1000 peers at typical load (21-49 messages/s each).",
            workload: WorkloadConfig {
                peers: 1000,
                ..base
            },
            cost,
            duration: secs(30),
        },
        "dup-storm" => Scenario {
            name: "dup-storm",
            summary: "120 peers; every new inv is echoed by 100 other peers within a second.",
            workload: WorkloadConfig {
                peers: 120,
                rate_per_peer: 1.0,
                duplicate_ratio: 0.0,
                inv_relay_peers: 100,
                inv_relay_spread: secs(1),
                ..base
            },
            cost: ConsumerCost {
                message: us(150),
                ..cost
            },
            duration: secs(60),
        },
        "peer-surge" => Scenario {
            name: "peer-surge",
            summary: "60 peers, then 180 more connect within 5 s and stay: 240 peers at 35 messages/s.",
            workload: WorkloadConfig {
                peers: 60,
                duplicate_ratio: 0.1,
                surge_peers: 180,
                surge_at: secs(10),
                surge_over: secs(5),
                ..base
            },
            cost: ConsumerCost {
                message: us(200),
                ..cost
            },
            duration: secs(60),
        },
        "slow-consumer-burst" => Scenario {
            name: "slow-consumer-burst",
            summary: "5 peers; a 3000-block sync burst every minute against 10 ms block validation.",
            workload: WorkloadConfig {
                peers: 5,
                duplicate_ratio: 0.1,
                sync_burst_every: secs(60),
                sync_burst_blocks: 3000,
                ..base
            },
            cost: ConsumerCost {
                block: ms(10),
                ..cost
            },
            duration: secs(180),
        },
        "healthy-under-load" => Scenario {
            name: "healthy-under-load",
            summary: "100 peers at 35 messages/s with sync bursts of 50 blocks: busy, within capacity.",
            workload: WorkloadConfig {
                peers: 100,
                ..base
            },
            cost,
            duration: secs(300),
        },
        "transient-spike" => Scenario {
            name: "transient-spike",
            summary: "40 peers; for 1 s every peer sends 15 times its rate (a relay storm), then calms.",
            workload: WorkloadConfig {
                peers: 40,
                duplicate_ratio: 0.1,
                spike_factor: 15.0,
                spike_at: secs(20),
                spike_for: ms(1000),
                ..base
            },
            cost: ConsumerCost {
                message: us(60),
                ..cost
            },
            duration: secs(60),
        },
        "steady-overload" => Scenario {
            name: "steady-overload",
            summary: "60 peers, 20% duplicate invs, 600 us per message: the consumer is slower than the traffic, all the time.",
            workload: WorkloadConfig {
                peers: 60,
                duplicate_ratio: 0.2,
                ..base
            },
            cost: ConsumerCost {
                message: us(600),
                ..cost
            },
            duration: secs(60),
        },
        _ => return None,
    };
    Some(scenario)
}
