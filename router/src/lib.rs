//! The embedded reference router: a faithful model of the node's P2P router (one
//! `tokio::sync::broadcast` channel, capacity 2048, same API shape and types), and the load
//! generator and consumer loop that drive it when no node is attached.
//!
//! The router contains no metric code. It reports [`p2p_observe::Observation`]s to an
//! [`p2p_observe::Observer`]; the exporter turns them into metrics.

pub mod dedup;
pub mod rng;
mod router;
pub mod types;
pub mod workload;

pub use router::{
    Router, RouterBuilder, RouterError, Subscriber, EVENTS_CHANNEL, EVENT_CHANNEL_SIZE,
};
pub use types::*;
