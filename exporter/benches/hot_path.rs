//! What observing costs the node's hot path: `Router::emit_message` with the exporter's recorder
//! attached, against the same router with a no-op observer, in the same run. Results and method:
//! docs/benchmarks.md.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use p2p_exporter::recorder::{Recorder, RecorderConfig};
use p2p_observe::{NoopObserver, Observer};
use p2p_router::rng::SplitMix64;
use p2p_router::{InvType, Inventory, InventoryItem, NetMessage, PeerId, Router};
use prometheus::Registry;

const BATCH: usize = 1024;

/// The testnet mix the router sees most: inv of 1-4 items, a third of them re-announcements.
fn messages(seed: u64) -> Vec<NetMessage> {
    let mut rng = SplitMix64::new(seed);
    let mut recent: Vec<[u8; 32]> = Vec::new();
    (0..BATCH)
        .map(|i| {
            if i % 3 == 2 {
                return NetMessage::Ping(i as u64);
            }
            let items = (0..1 + rng.below(4))
                .map(|_| {
                    let hash = if !recent.is_empty() && rng.chance(0.35) {
                        recent[rng.below(recent.len())]
                    } else {
                        let hash = rng.hash();
                        recent.push(hash);
                        hash
                    };
                    InventoryItem {
                        kind: InvType::Transaction,
                        hash,
                    }
                })
                .collect();
            NetMessage::Inv(Inventory { items })
        })
        .collect()
}

fn router(observer: Arc<dyn Observer>) -> (Router, p2p_router::Subscriber) {
    let router = Router::builder(1000).observer(observer).build();
    // One subscriber that never reads, as a lagging consumer would: the channel stays full, which
    // is the case the instrumentation must not slow down.
    let subscriber = router.subscribe("consumer");
    (router, subscriber)
}

fn emit(c: &mut Criterion) {
    bench_mix(c, "emit_testnet_mix", messages);
    // Without inventory the duplicate tracker is idle: what is left is counters and the channel
    // gauges.
    bench_mix(c, "emit_ping", |seed| {
        (0..BATCH as u64)
            .map(|i| NetMessage::Ping(seed + i))
            .collect()
    });
}

fn bench_mix(c: &mut Criterion, group_name: &str, make: fn(u64) -> Vec<NetMessage>) {
    let mut group = c.benchmark_group(group_name);
    group.throughput(Throughput::Elements(BATCH as u64));
    let registry = Registry::new();
    let recorder = Arc::new(Recorder::new(&registry, RecorderConfig::default()).unwrap());
    let observers: [(&str, Arc<dyn Observer>); 2] =
        [("noop", Arc::new(NoopObserver)), ("recorder", recorder)];
    for (name, observer) in observers {
        let (router, _subscriber) = router(observer);
        let mut seed = 0;
        group.bench_function(name, |b| {
            b.iter_batched(
                || {
                    seed += 1;
                    make(seed)
                },
                |batch| {
                    for message in batch {
                        router.emit_message(PeerId(7), message);
                    }
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, emit);
criterion_main!(benches);
