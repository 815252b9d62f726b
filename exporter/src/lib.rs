//! The sidecar exporter: observations from the node's router (or the embedded reference router)
//! in, Prometheus metrics out.
//!
//! - [`recorder::Recorder`] is the core: an [`p2p_observe::Observer`] that owns every metric;
//! - [`metrics::METRICS`] is the table of everything it serves;
//! - [`http::app`] is the HTTP surface;
//! - [`embedded`] starts the reference router, its workload and its consumer loop.

pub mod cli;
pub mod decision;
/// The duplicate-inventory tracker lives with the router model, which the simulator's `dedup`
/// design shares.
pub use p2p_router::dedup;
pub mod embedded;
pub mod http;
pub mod metrics;
pub mod peak;
pub mod recorder;
pub mod recording;
pub mod resources;
pub mod tap;
pub mod telemetry;
