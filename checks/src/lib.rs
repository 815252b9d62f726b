//! Repository checks that CI runs behind one command (`p2p-check`), each in its own module.

pub mod dashboards;
pub mod rules;
pub mod thresholds;
