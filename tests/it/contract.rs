//! The metric table in the code, the README's table and what `/metrics` serves must agree.

use std::collections::BTreeSet;
use std::sync::Arc;

use p2p_contract::METRICS;
use p2p_exporter::recorder::{Recorder, RecorderConfig};
use p2p_observe::{Observation, Observer};
use prometheus::Registry;

use crate::support::repo_root;

/// (name, type, labels) of every row between the README's metric-table markers.
fn readme_table() -> BTreeSet<(String, String, String)> {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let start = readme
        .find("<!-- metric-table:start -->")
        .expect("start marker");
    let end = readme
        .find("<!-- metric-table:end -->")
        .expect("end marker");
    readme[start..end]
        .lines()
        .filter(|line| line.starts_with("| `"))
        .map(|line| {
            let cells: Vec<_> = line.split('|').map(str::trim).collect();
            let strip = |cell: &str| cell.replace('`', "");
            (strip(cells[1]), strip(cells[2]), strip(cells[3]))
        })
        .collect()
}

fn code_table() -> BTreeSet<(String, String, String)> {
    METRICS
        .iter()
        .map(|m| {
            (
                m.name.to_owned(),
                m.kind.as_str().to_owned(),
                m.labels.join(", "),
            )
        })
        .collect()
}

/// What a recorder that has seen one of every observation serves, and what a tap-source
/// recorder serves from one snapshot in which the consumer was timed, as (name, type) pairs.
fn served_families() -> BTreeSet<(String, String)> {
    let mut served = embedded_families();
    served.extend(tap_families());
    served
}

fn families(registry: &Registry) -> BTreeSet<(String, String)> {
    registry
        .gather()
        .iter()
        .map(|family| {
            let kind = format!("{:?}", family.get_field_type()).to_lowercase();
            (family.name().to_owned(), kind)
        })
        .collect()
}

fn tap_families() -> BTreeSet<(String, String)> {
    let registry = Registry::new();
    let config = RecorderConfig {
        source: "tap",
        ..RecorderConfig::default()
    };
    let recorder = Recorder::new(&registry, config).unwrap();
    let tap = p2p_tap::Tap::disabled();
    let channel = tap.channel("events", 16);
    let (sender, mut receiver) = tokio::sync::broadcast::channel(16);
    let mut consumer = tap.subscriber(&channel, "consumer", |_: &u8| {
        Some(p2p_observe::MessageKind::Ping)
    });
    for _ in 0..2 {
        channel.send(&sender, 1u8).unwrap();
        consumer.before_recv();
        consumer.after_try_recv(&receiver.try_recv());
    }
    consumer.before_recv();
    let mut snapshot = tap.snapshot();
    snapshot.resources = Some(p2p_tap::protocol::Resources {
        resident_memory_bytes: 1,
        cpu_seconds: 1.0,
    });
    recorder.node_view().unwrap().accept(1, snapshot).unwrap();
    families(&registry)
}

fn embedded_families() -> BTreeSet<(String, String)> {
    let registry = Registry::new();
    let recorder = Arc::new(Recorder::new(&registry, RecorderConfig::default()).unwrap());
    let router = p2p_router::Router::builder(4)
        .observer(recorder.clone())
        .build();
    let mut consumer = router.subscribe("consumer");
    router.emit_message(p2p_router::PeerId(1), p2p_router::NetMessage::Ping(1));
    consumer.try_recv().unwrap();
    recorder.observe(Observation::ResourceSample {
        resident_memory_bytes: 1,
        cpu_seconds_total: 1.0,
    });
    recorder.refresh();
    families(&registry)
}

#[test]
fn every_metric_in_the_readme_is_in_the_code_and_back() {
    assert_eq!(readme_table(), code_table());
}

#[test]
fn every_served_metric_is_in_the_table_and_every_table_metric_is_served() {
    let served = served_families();
    let table: BTreeSet<_> = METRICS
        .iter()
        .map(|m| (m.name.to_owned(), m.kind.as_str().to_owned()))
        .collect();
    assert_eq!(served, table);
}
