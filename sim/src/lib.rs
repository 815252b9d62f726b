//! A deterministic what-if simulator: the node's router and the Phase 3/4 alternatives of its
//! scaling document under named stress scenarios, in virtual time, with reports that say which
//! design brings lag under 1% and what the decision framework would have chosen.
//!
//! How to run it and how to read its report: docs/simulator.md.

pub mod channel;
pub mod cli;
pub mod design;
pub mod driver;
pub mod figures;
pub mod replay;
pub mod report;
pub mod scenario;
pub mod stats;

pub use design::{Design, DesignKind};
pub use driver::{run, run_realtime};
pub use report::{simulate, Report, ScenarioReport};
pub use scenario::Scenario;
pub use stats::RunResult;
