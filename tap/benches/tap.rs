//! What the tap costs, as ratios against baselines measured in the same run (docs/benchmarks.md,
//! "Tap"):
//!
//! - `observe/*`: `TapClient::observe` against a bare `try_send` of the same record on a tokio
//!   bounded channel of the same capacity, with a reader draining it ("up") and with nobody
//!   reading, so the channel is full ("dead").
//! - `ingest/*`: the sidecar's reading path (line framing, decoding, validation, conversion to the
//!   observation) against serde_json alone parsing the same bytes.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use p2p_observe::{InvType, InventoryItem, MessageKind, Observation};
use p2p_tap::framing::{Frame, LineBuffer};
use p2p_tap::wire::{self, Body, Record, MAX_LINE_BYTES};
use p2p_tap::{TapClient, TapConfig};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

const QUEUE: usize = 16 * 1024;

fn items() -> [InventoryItem; 2] {
    [
        InventoryItem {
            kind: InvType::Transaction,
            hash: [7; 32],
        },
        InventoryItem {
            kind: InvType::Block,
            hash: [9; 32],
        },
    ]
}

/// The same record the client queues, owned: what a node would send on its own channel.
fn owned(observation: &Observation<'_>) -> (u64, Body<'static>) {
    let body = match Body::from_observation(observation) {
        Body::MessageEmitted {
            message_type,
            inventory,
        } => Body::MessageEmitted {
            message_type,
            inventory: wire::Inventory {
                items: inventory.items.into_owned().into(),
                problem: None,
            },
        },
        other => other.clone().into_owned_unchecked(),
    };
    (0, body)
}

trait IntoOwned {
    fn into_owned_unchecked(self) -> Body<'static>;
}

impl IntoOwned for Body<'_> {
    fn into_owned_unchecked(self) -> Body<'static> {
        match self {
            Body::EventSent {
                channel,
                queued,
                capacity,
            } => Body::EventSent {
                channel: channel.into_owned().into(),
                queued,
                capacity,
            },
            _ => Body::PeerRefused,
        }
    }
}

fn observe(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let dir = std::env::temp_dir().join(format!("p2p-tap-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let up_path = dir.join("up.sock");
    let _ = std::fs::remove_file(&up_path);
    let listener = {
        let _guard = runtime.enter();
        tokio::net::UnixListener::bind(&up_path).unwrap()
    };
    // A sidecar that reads and discards as fast as it can.
    runtime.spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 256 * 1024];
                while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
            });
        }
    });
    let config = |path| {
        let mut config = TapConfig::new(dir.join(path));
        config.queue_capacity = QUEUE;
        config.sample_resources = false;
        config
    };
    let up = TapClient::spawn_on(config("up.sock"), runtime.handle());
    let dead = TapClient::spawn_on(config("nobody-listens.sock"), runtime.handle());
    while !up.is_connected() {
        std::thread::sleep(Duration::from_millis(10));
    }

    // Baselines: the same records on a bare bounded channel, drained or full.
    let (drained_tx, mut drained_rx) = mpsc::channel::<(u64, Body<'static>)>(QUEUE);
    runtime.spawn(async move { while drained_rx.recv().await.is_some() {} });
    let (full_tx, _full_rx) = mpsc::channel::<(u64, Body<'static>)>(QUEUE);
    while full_tx.try_send((0, Body::PeerRefused)).is_ok() {}

    let inventory = items();
    let cases = [
        (
            "ping",
            Observation::MessageEmitted {
                kind: MessageKind::Ping,
                inventory: &[],
            },
        ),
        (
            "inv2",
            Observation::MessageEmitted {
                kind: MessageKind::Inv,
                inventory: &inventory,
            },
        ),
        (
            "event_sent",
            Observation::EventSent {
                channel: "events",
                queued: 100,
                capacity: 2048,
            },
        ),
    ];
    let mut group = c.benchmark_group("observe");
    group.throughput(Throughput::Elements(1));
    for (name, observation) in cases {
        group.bench_function(format!("{name}/try_send_up"), |b| {
            b.iter(|| black_box(drained_tx.try_send(owned(black_box(&observation))).is_ok()))
        });
        group.bench_function(format!("{name}/tap_up"), |b| {
            b.iter(|| up.observe(black_box(observation)))
        });
        group.bench_function(format!("{name}/try_send_dead"), |b| {
            b.iter(|| black_box(full_tx.try_send(owned(black_box(&observation))).is_ok()))
        });
        group.bench_function(format!("{name}/tap_dead"), |b| {
            b.iter(|| dead.observe(black_box(observation)))
        });
    }
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

/// 10,000 records of the router's usual mix, as the client writes them.
fn stream() -> (Vec<u8>, u64) {
    let inventory = items();
    let mut out = Vec::new();
    let mut count = 0;
    for i in 0..2_500u64 {
        for observation in [
            Observation::MessageEmitted {
                kind: MessageKind::Inv,
                inventory: &inventory[..1 + (i % 2) as usize],
            },
            Observation::EventSent {
                channel: "events",
                queued: i as usize % 2048,
                capacity: 2048,
            },
            Observation::EventReceived {
                subscriber: "consumer",
                latency: Duration::from_micros(i % 900),
            },
            Observation::MessageEmitted {
                kind: MessageKind::Tx,
                inventory: &[],
            },
        ] {
            wire::encode_into(
                &Record {
                    v: 1,
                    t: i * 1000,
                    body: Body::from_observation(&observation),
                },
                &mut out,
            );
            count += 1;
        }
    }
    (out, count)
}

fn ingest(c: &mut Criterion) {
    let (bytes, count) = stream();
    let mut group = c.benchmark_group("ingest");
    group.throughput(Throughput::Elements(count));
    group.bench_function("serde_json_value", |b| {
        b.iter(|| {
            for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                black_box(serde_json::from_slice::<serde_json::Value>(line).unwrap());
            }
        })
    });
    group.bench_function("serde_json_typed", |b| {
        b.iter(|| {
            for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                black_box(serde_json::from_slice::<Record<'_>>(line).unwrap());
            }
        })
    });
    group.bench_function("tap_source", |b| {
        b.iter_batched_ref(
            || LineBuffer::new(MAX_LINE_BYTES),
            |lines| {
                // Reads arrive in 64 KiB chunks, as the sidecar reads them.
                for chunk in bytes.chunks(64 * 1024) {
                    lines.push(chunk);
                    while let Some(frame) = lines.next_frame() {
                        if let Frame::Line(line) = frame {
                            let record = wire::decode(line).unwrap();
                            black_box(record.body.observation());
                        }
                    }
                }
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30);
    targets = observe, ingest
}
criterion_main!(benches);
