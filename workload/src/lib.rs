//! What drives a router when no node is attached, and what the node does with the events.
//!
//! - [`LoadGenerator`]: peers that announce, relay and mine like the testnet, feeding any router
//!   design through its [`p2p_router::PeerSink`];
//! - the node's consumer loop, one model ([`NodeModel`]: the chain it keeps; [`ConsumerCost`]: the
//!   time each message costs it) with two drivers: [`run_consumer`] in real time for the live
//!   exporter and [`VirtualConsumer`] on tokio's paused clock for the simulator.
//!
//! Lag appears the way it does in the node: when the consumer's cost per message, times the
//! arrival rate, exceeds what it can keep up with for longer than the channel can buffer.

mod chain;
mod config;
mod consumer;
mod generator;

pub use chain::{BlockArrival, BlockOutcome, NodeModel};
pub use config::{MessageMix, WorkloadConfig};
pub use consumer::{
    copy_cost, handle_event, run_consumer, ConsumerCost, Inbox, VirtualConsumer,
    COPY_NANOS_PER_BYTE,
};
pub use generator::{LoadGenerator, TICK};
