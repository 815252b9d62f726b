//! The embedded source: the reference router under the testnet workload, reporting to the
//! recorder, so the whole stack runs with no node attached.

use std::sync::Arc;
use std::time::Duration;

use p2p_router::workload::{run_consumer, ConsumerCost, LoadGenerator, WorkloadConfig};
use p2p_router::Router;
use tokio::task::JoinSet;

use crate::recorder::Recorder;
use crate::resources;

/// The node's consumer loop subscribes under this name.
pub const CONSUMER: &str = "consumer";
const RESOURCE_PERIOD: Duration = Duration::from_secs(5);

pub struct EmbeddedConfig {
    pub capacity: usize,
    pub max_peers: usize,
    pub workload: WorkloadConfig,
    pub cost: ConsumerCost,
}

/// Spawns the router's consumer loop, the load generator and the resource sampler onto `tasks`.
pub fn start(config: EmbeddedConfig, recorder: Arc<Recorder>, tasks: &mut JoinSet<()>) -> Router {
    let router = Router::builder(config.max_peers)
        .capacity(config.capacity)
        .observer(recorder.clone())
        .build();
    let consumer = router.subscribe(CONSUMER);
    tasks.spawn(run_consumer(
        consumer,
        config.cost,
        Arc::clone(router.observer()),
    ));
    tasks.spawn(LoadGenerator::new(router.clone(), config.workload).run());
    tasks.spawn(resources::sample_self(recorder, RESOURCE_PERIOD));
    router
}
