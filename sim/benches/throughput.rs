//! Virtual-time simulation throughput in events/s, against a bare `tokio::sync::broadcast` send +
//! `try_recv` loop of the same event count in the same run (the floor no simulation of a broadcast
//! router can beat). Results and method: docs/benchmarks.md, "Simulator".

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use p2p_sim::{run, scenario, DesignKind};
use tokio::sync::broadcast;

/// Simulated time per iteration: a minute of the 100-peer testnet.
const SIMULATED: Duration = Duration::from_secs(60);

fn throughput(c: &mut Criterion) {
    let scenario = scenario::by_name("healthy-under-load").unwrap();
    let events = run(
        &scenario,
        DesignKind::Broadcast2048,
        SIMULATED,
        1,
        &mut |_| {},
    )
    .events_sent;
    let mut group = c.benchmark_group("simulate");
    group.sample_size(10);
    group.throughput(Throughput::Elements(events));
    group.bench_function("healthy-under-load/broadcast-2048", |b| {
        b.iter(|| {
            run(
                &scenario,
                DesignKind::Broadcast2048,
                SIMULATED,
                1,
                &mut |_| {},
            )
        })
    });
    group.bench_function("bare-broadcast-send-try_recv", |b| {
        b.iter(|| {
            let (sender, mut receiver) = broadcast::channel::<(u64, Vec<u8>)>(2048);
            for n in 0..events {
                let _ = sender.send((n, Vec::new()));
                let _ = sender.len();
                let _ = receiver.try_recv();
            }
        })
    });
    group.finish();
}

criterion_group!(benches, throughput);
criterion_main!(benches);
