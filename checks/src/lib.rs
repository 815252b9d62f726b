//! Repository checks that CI runs behind one command (`p2p-check`), each in its own module.

pub mod dashboards;
