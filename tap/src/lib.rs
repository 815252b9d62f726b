//! The node-side tap: what the node adds to send its router's observations to the sidecar.
//!
//! - [`TapClient`] implements [`p2p_observe::Observer`]: hand it to the router (or call
//!   [`TapClient::observe`] at each point of `docs/tap-integration.md`). It never blocks: records
//!   go on a bounded queue, a full queue drops and counts, and a background task writes to the
//!   sidecar, reconnecting with capped, jittered backoff.
//! - [`wire`] is the format: versioned NDJSON records, one per observation (`docs/tap-protocol.md`).
//! - [`framing`] splits a byte stream into bounded lines, for readers of the format.
//!
//! Dependencies are kept to serde, serde_json, a minimal tokio, hex and libc, so the node pays little to
//! link it.

pub mod client;
pub mod framing;
pub mod resources;
pub mod wire;

pub use client::{ClientStats, Endpoint, TapClient, TapConfig};
pub use wire::{decode, encode, Body, Record, Reject, VERSION};
