//! The embedded source: the reference router under the testnet workload, reporting to the
//! recorder, so the whole stack runs with no node attached.

use std::sync::Arc;
use std::time::Duration;

use p2p_exporter::recorder::Recorder;
use p2p_exporter::resources;
use p2p_observe::Observer;
use p2p_recording::{Recording, RecordingSink};
use p2p_router::Router;
use p2p_sim::{run_realtime, DesignKind, Scenario};
use p2p_workload::{run_consumer, ConsumerCost, LoadGenerator, WorkloadConfig};
use tokio::task::JoinSet;

/// The node's consumer loop subscribes under this name.
pub const CONSUMER: &str = "consumer";
const RESOURCE_PERIOD: Duration = Duration::from_secs(5);

pub struct EmbeddedConfig {
    pub capacity: usize,
    pub max_peers: usize,
    pub workload: WorkloadConfig,
    pub cost: ConsumerCost,
    /// A simulator scenario and design to run in real time instead of the node's router.
    pub design: Option<Simulated>,
    /// Where to record what peers hand the router (`--record`).
    pub recording: Option<Recording>,
}

/// A scenario on a router design, run in real time to feed /metrics.
#[derive(Debug)]
pub struct Simulated {
    pub scenario: Scenario,
    pub kind: DesignKind,
}

/// Spawns the router's consumer loop, the load generator and the resource sampler onto `tasks`;
/// with a design, the simulator's real-time driver instead of the first two.
/// The router reports to `observer` (the recorder, possibly wrapped by span derivation).
pub fn start(
    config: EmbeddedConfig,
    observer: Arc<dyn Observer>,
    recorder: Arc<Recorder>,
    tasks: &mut JoinSet<()>,
) {
    tasks.spawn(resources::sample_self(recorder, RESOURCE_PERIOD));
    if let Some(design) = config.design {
        tasks.spawn(run_realtime(
            design.scenario,
            design.kind,
            observer,
            config.recording,
        ));
        return;
    }
    let router = Router::builder(config.max_peers)
        .capacity(config.capacity)
        .observer(observer)
        .build();
    let consumer = router.subscribe(CONSUMER);
    tasks.spawn(run_consumer(
        consumer,
        config.cost,
        Arc::clone(router.observer()),
    ));
    match config.recording {
        Some(recording) => tasks.spawn(
            LoadGenerator::new(RecordingSink::new(router, recording), config.workload).run(),
        ),
        None => tasks.spawn(LoadGenerator::new(router, config.workload).run()),
    };
}
