//! The node-side tap (protocol v2): what the node links to let its sidecar see its P2P layer.
//!
//! - [`Tap`] is the node's handle. Every count and level (events sent and received, lag, messages
//!   by type, peers, blocks) is a relaxed atomic inside the node; the sidecar gets them as
//!   cumulative snapshots, so they are exact whatever the connection does.
//! - [`ChannelTap`] and [`SubscriberTap`] sit beside the node's own broadcast channel: the queue
//!   length comes from counts, delivery latency from a ring of send instants, and the consumer's
//!   service time per message type from its `recv` calls.
//! - Only what needs per-item data is streamed: inv items (for the sidecar's duplicate tracker)
//!   and block journeys, batched, bounded, and counted when dropped.
//! - [`protocol`] is the wire format (`docs/tap-protocol.md`); [`wire`] is the older
//!   one-record-per-line schema, kept as the line format of recordings.
//!
//! Dependencies are kept to serde, serde_json, hex, libc and tokio's `sync`, so the node pays
//! little to link it.

mod announced;
pub mod channel;
pub mod client;
pub mod histogram;
mod journal;
pub mod protocol;
pub mod resources;
pub mod wire;

pub use channel::{ChannelTap, SubscriberTap, SAMPLE_EVERY};
pub use client::{read_token_file, Endpoint, Tap, TapConfig, TapItem};
pub use p2p_observe::{Direction, DisconnectReason, InvType, MessageKind};
pub use protocol::{Reject, VERSION};
