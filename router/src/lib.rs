//! The embedded reference router: a faithful model of the node's P2P router (one
//! `tokio::sync::broadcast` channel, capacity 2048, same API shape and types), its input port
//! ([`PeerSink`]) and the duplicate-inventory cache of the scaling document's deduplication design.
//!
//! The router contains no metric code. It reports [`p2p_observe::Observation`]s to an
//! [`p2p_observe::Observer`]; the exporter turns them into metrics.

pub mod block;
pub mod dedup;
pub mod rng;
mod router;
mod sink;
pub mod types;

pub use router::{
    Router, RouterBuilder, RouterError, Subscriber, EVENTS_CHANNEL, EVENT_CHANNEL_SIZE,
};
pub use sink::PeerSink;
pub use types::*;
