//! The node's whole tap CPU at a steady 50,000 events/s (docs/benchmarks.md, "Tap"): the same
//! paced loop (an inv of 2 items or a ping, sent and received in the node's thread) runs once
//! bare and once with every call the integration guide asks for, with the tap's writer thread
//! connected to a sidecar stand-in that reads and discards. The tap's cost is the loop thread's
//! extra CPU time plus the writer thread's, over the run's wall time. CPU times are per thread
//! (`/proc/thread-self/schedstat`, nanoseconds), so the stand-in sidecar is not counted.
//!
//! Not a criterion bench: it measures a rate over seconds, not an operation. Run with
//! `cargo bench -p p2p-tap --bench tap_cpu`.
#![allow(
    clippy::disallowed_methods,
    reason = "a paced loop on the OS clock, outside any runtime"
)]

use std::io::Read;
use std::os::unix::net::UnixListener;
use std::time::{Duration, Instant};

use p2p_observe::{InvType, InventoryItem, MessageKind};
use p2p_router::{Inventory, NetMessage, PeerEvent, PeerId};
use p2p_tap::{Tap, TapConfig};
use tokio::sync::broadcast;

const RATE: u64 = 50_000;
const RUN: Duration = Duration::from_secs(4);
const TICK: Duration = Duration::from_millis(10);

/// Nanoseconds this thread (or `tid`) has run on a CPU.
fn thread_cpu_ns(path: &str) -> u64 {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn writer_cpu_ns() -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .flatten()
        .filter(|task| {
            std::fs::read_to_string(task.path().join("comm"))
                .is_ok_and(|name| name.trim() == "p2p-tap")
        })
        .map(|task| thread_cpu_ns(&task.path().join("schedstat").to_string_lossy()))
        .sum()
}

fn events() -> Vec<PeerEvent> {
    let inv = NetMessage::Inv(Inventory {
        items: vec![
            InventoryItem {
                kind: InvType::Transaction,
                hash: [7; 32],
            },
            InventoryItem {
                kind: InvType::Transaction,
                hash: [9; 32],
            },
        ],
    });
    [inv, NetMessage::Ping(1)]
        .into_iter()
        .map(|message| PeerEvent::Message {
            peer_id: PeerId(1),
            message,
        })
        .collect()
}

fn kind_of(event: &PeerEvent) -> Option<MessageKind> {
    match event {
        PeerEvent::Message { message, .. } => Some(message.kind()),
        _ => None,
    }
}

/// Runs the paced loop; returns (loop thread CPU ns, writer CPU ns, events, dropped entries).
fn run(tap: Option<&Tap>) -> (u64, u64, u64, u64) {
    let events = events();
    let (sender, mut receiver) = broadcast::channel(2048);
    let channel = tap.map(|t| t.channel("events", 2048));
    let mut subscriber = tap.map(|t| t.subscriber(channel.as_ref().unwrap(), "consumer", kind_of));
    let per_tick = RATE * TICK.as_millis() as u64 / 1000;
    let writer_before = writer_cpu_ns();
    let cpu_before = thread_cpu_ns("/proc/thread-self/schedstat");
    let start = Instant::now();
    let mut sent = 0u64;
    let mut next = start;
    while start.elapsed() < RUN {
        for _ in 0..per_tick {
            let event = events[(sent % 2) as usize].clone();
            match (tap, &channel, &mut subscriber) {
                (Some(tap), Some(channel), Some(subscriber)) => {
                    if let PeerEvent::Message { message, .. } = &event {
                        tap.message(message.kind(), message.announced_items());
                    }
                    let _ = channel.send(&sender, event);
                    subscriber.before_recv();
                    let received = receiver.try_recv();
                    subscriber.after_try_recv(&received);
                    std::hint::black_box(received.ok());
                }
                _ => {
                    let _ = sender.send(event);
                    std::hint::black_box(receiver.try_recv().ok());
                }
            }
            sent += 1;
        }
        next += TICK;
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    let cpu = thread_cpu_ns("/proc/thread-self/schedstat") - cpu_before;
    // Let the writer flush and snapshot what the run produced before reading its CPU time.
    std::thread::sleep(Duration::from_millis(1200));
    let writer = writer_cpu_ns().saturating_sub(writer_before);
    let dropped = tap.map_or(0, |t| t.snapshot().detail.dropped_entries);
    (cpu, writer, sent, dropped)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let dir = tempfile_dir();
    let socket = dir.join("tap.sock");
    let listener = UnixListener::bind(&socket).expect("bind the stand-in sidecar");
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut buffer = vec![0u8; 1 << 16];
                while matches!(stream.read(&mut buffer), Ok(n) if n > 0) {}
            });
        }
    });
    let (bare_cpu, _, bare_events, _) = run(None);
    let mut config = TapConfig::new(socket.clone());
    config.sample_resources = true;
    let tap = Tap::new(config);
    let (tap_cpu, writer_cpu, tap_events, dropped) = run(Some(&tap));
    let wall = RUN.as_secs_f64();
    let per_event = |cpu: u64, n: u64| cpu as f64 / n as f64;
    println!(
        "tap_cpu: {RATE} events/s for {wall} s; bare loop {:.0} ns/event ({bare_events} events), with tap {:.0} ns/event ({tap_events} events, {dropped} detail entries dropped), writer thread {:.1} ms",
        per_event(bare_cpu, bare_events),
        per_event(tap_cpu, tap_events),
        writer_cpu as f64 / 1e6
    );
    let extra = (tap_cpu as f64 / tap_events as f64 - bare_cpu as f64 / bare_events as f64)
        * (RATE as f64 * wall)
        + writer_cpu as f64;
    println!(
        "tap_cpu: the tap costs {:.4} of a core at {RATE} events/s (target at most 0.01)",
        extra.max(0.0) / 1e9 / wall
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("p2p-tap-cpu-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
