//! The sidecar exporter: observations from the node's router (or the embedded reference router)
//! in, Prometheus metrics out.
//!
//! - [`recorder::Recorder`] is the core: an [`p2p_observe::Observer`] that owns every metric;
//! - [`metrics::METRICS`] is the table of everything it serves;
//! - [`http::app`] is the HTTP surface, [`server::serve`] its serving loop and [`web`] its TLS
//!   and authentication;
//! - [`tap::TapSource`] takes a real node's observations; [`telemetry`] turns them into spans.
//!
//! The binary (`src/main.rs` at the repository's top) composes this library with the embedded
//! reference router and the simulator.

pub mod decision;
pub mod http;
pub mod metrics;
pub mod node_view;
pub mod peak;
pub mod recorder;
pub mod resources;
pub mod server;
pub mod tap;
pub mod telemetry;
pub mod web;
