//! What the tap costs, as ratios against baselines measured in the same run (docs/benchmarks.md,
//! "Tap"):
//!
//! - `per_event/*`: everything the integration guide asks the node to call for one event (the
//!   message count with an inv's items, the send through `ChannelTap`, the receive through
//!   `SubscriberTap`), in one thread, against a bare `send` + `try_recv` of the same event on the
//!   same kind of channel. The detail buffer is emptied between batches outside the timed part,
//!   as the writer thread would, and the bench fails if any entry was dropped: a figure from the
//!   drop path would flatter the tap. Before criterion's groups, the two paths run in alternating
//!   batches and the fastest batch of each gives a ratio printed on its own line: on a shared
//!   machine, the figure least moved by the neighbours.
//! - `ingest/*`: the sidecar's decoding of a journal frame into inventory items, against
//!   serde_json parsing the same entries into a typed borrowed struct (hex hashes, as JSON
//!   carries them) and decoding the hashes.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use p2p_observe::{InvType, InventoryItem, MessageKind};
use p2p_router::{Inventory, NetMessage, PeerEvent, PeerId};
use p2p_tap::protocol::{self, Frame, FRAME_JOURNAL};
use p2p_tap::{Tap, TapConfig};
use serde::Deserialize;
use tokio::sync::broadcast;

/// Events per timed batch: their journal entries fit the detail buffer, so none is dropped.
const BATCH: u64 = 4096;
/// Batches of each path in the alternating measurement.
const ALTERNATING_ROUNDS: usize = 400;

/// Two announced items, the second a block when `block` (whose first announcement the tap
/// remembers for its propagation time: the rare, slower case).
fn items(block: bool) -> Vec<InventoryItem> {
    vec![
        InventoryItem {
            kind: InvType::Transaction,
            hash: [7; 32],
        },
        InventoryItem {
            kind: if block {
                InvType::Block
            } else {
                InvType::Transaction
            },
            hash: [9; 32],
        },
    ]
}

fn kind_of(event: &PeerEvent) -> Option<MessageKind> {
    match event {
        PeerEvent::Message { message, .. } => Some(message.kind()),
        _ => None,
    }
}

#[allow(
    clippy::disallowed_methods,
    reason = "criterion's iter_custom times batches on the OS clock; no runtime is involved"
)]
fn per_event(c: &mut Criterion) {
    let mut group = c.benchmark_group("per_event");
    group.throughput(Throughput::Elements(1));
    let events = [
        (
            "inv2",
            NetMessage::Inv(Inventory {
                items: items(false),
            }),
        ),
        (
            "inv2_block",
            NetMessage::Inv(Inventory { items: items(true) }),
        ),
        ("ping", NetMessage::Ping(1)),
    ];
    for (name, message) in events {
        let event = PeerEvent::Message {
            peer_id: PeerId(1),
            message,
        };
        let (sender, mut receiver) = broadcast::channel(2048);
        let mut bare_batch = |batch: u64| {
            let start = Instant::now();
            for _ in 0..batch {
                let _ = sender.send(black_box(event.clone()));
                black_box(receiver.try_recv().ok());
            }
            start.elapsed()
        };
        let mut config = TapConfig::new("/nonexistent/p2p-tap-bench.sock");
        config.detail_buffer_bytes = 1 << 19;
        config.sample_resources = false;
        let tap = Tap::new(config);
        let channel = tap.channel("events", 2048);
        let (tap_sender, mut tap_receiver) = broadcast::channel(2048);
        let mut subscriber = tap.subscriber(&channel, "consumer", kind_of);
        let mut detail = Vec::new();
        let mut tap_batch = |batch: u64| {
            let start = Instant::now();
            for _ in 0..batch {
                let event = black_box(event.clone());
                if let PeerEvent::Message { message, .. } = &event {
                    tap.message(message.kind(), message.announced_items());
                }
                let _ = channel.send(&tap_sender, event);
                subscriber.before_recv();
                let received = tap_receiver.try_recv();
                subscriber.after_try_recv(&received);
                black_box(received.ok());
            }
            let elapsed = start.elapsed();
            // The writer's job, outside the timed part.
            tap.take_detail(&mut detail);
            detail.clear();
            elapsed
        };
        // Alternating batches, fastest of each: the two paths share every moment of the
        // machine's load, and the minimum is the run least disturbed by it.
        let (mut bare_best, mut tap_best) = (Duration::MAX, Duration::MAX);
        for _ in 0..ALTERNATING_ROUNDS {
            bare_best = bare_best.min(bare_batch(BATCH));
            tap_best = tap_best.min(tap_batch(BATCH));
        }
        let per_event = |d: Duration| d.as_nanos() as f64 / BATCH as f64;
        eprintln!(
            "per_event/{name}: fastest of {ALTERNATING_ROUNDS} alternating batches of {BATCH}: \
             bare {:.1} ns, tap {:.1} ns, ratio {:.2}",
            per_event(bare_best),
            per_event(tap_best),
            tap_best.as_secs_f64() / bare_best.as_secs_f64()
        );
        let batched = |run: &mut dyn FnMut(u64) -> Duration, iterations: u64| {
            let mut elapsed = Duration::ZERO;
            let mut done = 0;
            while done < iterations {
                let batch = BATCH.min(iterations - done);
                elapsed += run(batch);
                done += batch;
            }
            elapsed
        };
        group.bench_function(format!("{name}/bare"), |b| {
            b.iter_custom(|iterations| batched(&mut bare_batch, iterations))
        });
        group.bench_function(format!("{name}/tap"), |b| {
            b.iter_custom(|iterations| batched(&mut tap_batch, iterations))
        });
        let detail = tap.snapshot().detail;
        assert_eq!(
            detail.dropped_entries, 0,
            "{name}: the timed path dropped detail entries"
        );
        eprintln!(
            "per_event/{name}/tap: {} journal entries written, {} dropped",
            detail.entries, detail.dropped_entries
        );
    }
    group.finish();
}

/// A journal entry as JSON would carry it, parsed without copying the strings.
#[derive(Deserialize)]
struct JsonEntry<'a> {
    #[allow(dead_code)]
    t: u32,
    #[serde(borrow)]
    items: Vec<JsonItem<'a>>,
}

#[derive(Deserialize)]
struct JsonItem<'a> {
    #[serde(rename = "type")]
    kind: u8,
    hash: &'a str,
}

const ENTRIES: usize = 1000;

fn ingest(c: &mut Criterion) {
    let mut group = c.benchmark_group("ingest");
    group.throughput(Throughput::Elements(ENTRIES as u64));
    let mut body = Vec::new();
    let mut json = String::from("[");
    for i in 0..ENTRIES {
        let mut hash = [0u8; 32];
        hash[..8].copy_from_slice(&(i as u64).to_le_bytes());
        let entry = [
            (InvType::Transaction, hash),
            (InvType::Block, [i as u8; 32]),
        ];
        protocol::encode_journal_entry(&mut body, i as u32, entry.into_iter());
        if i > 0 {
            json.push(',');
        }
        json.push_str(&format!(
            r#"{{"t":{i},"items":[{{"type":1,"hash":"{}"}},{{"type":2,"hash":"{}"}}]}}"#,
            hex::encode(entry[0].1),
            hex::encode(entry[1].1)
        ));
    }
    json.push(']');
    let mut frame = vec![FRAME_JOURNAL];
    frame.extend_from_slice(&body);
    let mut items = Vec::with_capacity(2 * ENTRIES);
    group.bench_function("serde_json_typed_borrowed", |b| {
        b.iter(|| {
            items.clear();
            let entries: Vec<JsonEntry<'_>> = serde_json::from_str(black_box(&json)).unwrap();
            for entry in entries {
                for item in entry.items {
                    let mut hash = [0u8; 32];
                    hex::decode_to_slice(item.hash, &mut hash).unwrap();
                    let kind = if item.kind == 1 {
                        InvType::Transaction
                    } else {
                        InvType::Block
                    };
                    items.push(InventoryItem { kind, hash });
                }
            }
            assert_eq!(items.len(), 2 * ENTRIES);
        })
    });
    group.bench_function("tap_journal", |b| {
        b.iter(|| {
            items.clear();
            let Ok(Frame::Journal(entries)) = protocol::decode(black_box(&frame)) else {
                panic!("a journal frame");
            };
            for entry in entries.iter() {
                items.extend(entry.items());
            }
            assert_eq!(items.len(), 2 * ENTRIES);
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = per_event, ingest
}
criterion_main!(benches);
