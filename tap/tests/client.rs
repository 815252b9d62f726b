//! The node is never blocked: with no sidecar, a sidecar that stops reading, and a sidecar killed
//! and restarted, `observe` returns promptly, drops are counted exactly, and records flow again.
//!
//! The sidecar here is a minimal in-process reader of the wire format, so each case controls
//! exactly when it reads. The latency bound is deliberately generous (these machines are shared);
//! the precise cost is in the benchmark (`benches/tap.rs`, docs/benchmarks.md).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use p2p_observe::{MessageKind, Observation};
use p2p_tap::framing::{Frame, LineBuffer};
use p2p_tap::wire::{self, Body, MAX_LINE_BYTES};
use p2p_tap::{TapClient, TapConfig};
use tokio::io::AsyncReadExt;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;

/// Far above any real `observe` (tens of nanoseconds), far below what a blocked call would take.
const GENEROUS: Duration = Duration::from_millis(50);

fn ping(n: u64) -> Observation<'static> {
    let _ = n;
    Observation::MessageEmitted {
        kind: MessageKind::Ping,
        inventory: &[],
    }
}

/// Calls `observe` `count` times; returns the slowest call.
#[allow(
    clippy::disallowed_methods,
    reason = "how long observe() blocks the node's thread is real time"
)]
fn observe_many(client: &TapClient, count: u64) -> Duration {
    let mut worst = Duration::ZERO;
    for n in 0..count {
        let started = Instant::now();
        client.observe(ping(n));
        worst = worst.max(started.elapsed());
    }
    worst
}

fn config(path: &Path, queue: usize) -> TapConfig {
    let mut config = TapConfig::new(path.to_path_buf());
    config.queue_capacity = queue;
    config.stats_every = Duration::from_millis(50);
    config.sample_resources = false;
    config.backoff_min = Duration::from_millis(5);
    config.backoff_max = Duration::from_millis(40);
    config
}

fn socket_path(name: &str) -> (tempdir::Dir, PathBuf) {
    let dir = tempdir::Dir::new(name);
    let path = dir.0.join("tap.sock");
    (dir, path)
}

/// A tiny temporary directory helper, to keep this crate's dev-dependencies small.
mod tempdir {
    use std::path::PathBuf;
    pub struct Dir(pub PathBuf);
    impl Dir {
        pub fn new(name: &str) -> Dir {
            let path = std::env::temp_dir().join(format!(
                "p2p-tap-{name}-{}-{:?}",
                std::process::id(),
                std::time::SystemTime::now()
            ));
            std::fs::create_dir_all(&path).unwrap();
            Dir(path)
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// What the reader saw on one connection, line by line.
#[derive(Debug)]
enum Seen {
    Hello {
        session: String,
        peers: u64,
    },
    Stats {
        produced: u64,
        dropped: u64,
        lost: u64,
    },
    Observation,
    Closed,
}

/// Reads one connection and reports each record.
async fn read_connection(mut stream: UnixStream, seen: mpsc::UnboundedSender<Seen>) {
    let mut lines = LineBuffer::new(MAX_LINE_BYTES);
    let mut chunk = vec![0; 64 * 1024];
    loop {
        let n = match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        lines.push(&chunk[..n]);
        while let Some(frame) = lines.next_frame() {
            let Frame::Line(line) = frame else {
                panic!("the client wrote an oversize line")
            };
            let record = wire::decode(line).expect("the client writes valid records");
            let event = match record.body {
                Body::Hello { session, peers, .. } => Seen::Hello {
                    session: session.into_owned(),
                    peers,
                },
                Body::Stats {
                    produced,
                    dropped,
                    lost,
                    ..
                } => Seen::Stats {
                    produced,
                    dropped,
                    lost,
                },
                _ => Seen::Observation,
            };
            let _ = seen.send(event);
        }
    }
    let _ = seen.send(Seen::Closed);
}

/// Waits for the next stats record whose `produced` is `produced`, counting observations on the
/// way; returns (observations seen, the stats).
async fn until_stats(
    seen: &mut mpsc::UnboundedReceiver<Seen>,
    produced: u64,
) -> (u64, (u64, u64, u64)) {
    let mut observations = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let event = tokio::time::timeout_at(deadline, seen.recv())
            .await
            .expect("stats within 30 s")
            .expect("reader alive");
        match event {
            Seen::Observation => observations += 1,
            Seen::Stats {
                produced: p,
                dropped,
                lost,
            } if p == produced => return (observations, (p, dropped, lost)),
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_sidecar_observe_returns_at_once_and_counts_every_drop() {
    let (_dir, path) = socket_path("absent");
    let client = TapClient::with_config(config(&path, 100));
    let worst = observe_many(&client, 10_000);
    assert!(worst < GENEROUS, "worst observe took {worst:?}");
    // Nothing is taken off the queue while there is no connection: exactly the queue is kept.
    let stats = client.stats();
    assert_eq!(stats.produced, 10_000);
    assert_eq!(stats.dropped, 10_000 - 100);
    assert!(!client.is_connected());

    // The sidecar appears: the 100 queued records and the drop count reach it.
    let listener = UnixListener::bind(&path).unwrap();
    let (stream, _) = listener.accept().await.unwrap();
    let (tx, mut seen) = mpsc::unbounded_channel();
    tokio::spawn(read_connection(stream, tx));
    let (observations, (_, dropped, lost)) = until_stats(&mut seen, 10_000).await;
    assert_eq!((observations, dropped, lost), (100, 9_900, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sidecar_that_stops_reading_never_blocks_the_node_and_drops_are_exact() {
    let (_dir, path) = socket_path("stopped");
    let listener = UnixListener::bind(&path).unwrap();
    let client = TapClient::with_config(config(&path, 1000));
    // Accept, and do not read: the socket buffers fill, the writer waits, the queue fills.
    let (stream, _) = listener.accept().await.unwrap();
    let mut worst = Duration::ZERO;
    let mut produced = 0u64;
    while client.stats().dropped < 50_000 {
        worst = worst.max(observe_many(&client, 10_000));
        produced += 10_000;
        assert!(produced < 50_000_000, "the queue never filled");
    }
    assert!(worst < GENEROUS, "worst observe took {worst:?}");

    // Reading again: every record not dropped arrives, and the client's count of drops is the
    // sidecar's.
    let (tx, mut seen) = mpsc::unbounded_channel();
    tokio::spawn(read_connection(stream, tx));
    let (observations, (_, dropped, lost)) = until_stats(&mut seen, produced).await;
    assert_eq!(lost, 0);
    assert_eq!(dropped, client.stats().dropped);
    assert_eq!(observations + dropped, produced);
    assert_eq!(client.stats().produced, produced);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sidecar_killed_and_restarted_gets_records_again_from_the_same_session() {
    let (_dir, path) = socket_path("restart");
    let listener = UnixListener::bind(&path).unwrap();
    let client = TapClient::with_config(config(&path, 1000));
    let (stream, _) = listener.accept().await.unwrap();
    let (tx, mut seen) = mpsc::unbounded_channel();
    let reader = tokio::spawn(read_connection(stream, tx));
    let first = match seen.recv().await.unwrap() {
        Seen::Hello { session, peers } => {
            assert_eq!(peers, 0);
            session
        }
        other => panic!("expected hello, got {other:?}"),
    };
    let mut worst = observe_many(&client, 500);
    let (observations, _) = until_stats(&mut seen, 500).await;
    assert_eq!(observations, 500);

    // Kill: the connection and the listener go away, the socket file stays (as after SIGKILL).
    reader.abort();
    // Gone for sure before the node writes again (bytes in a socket buffer at the moment of a
    // real kill are lost without anyone being able to count them).
    let _ = reader.await;
    drop(listener);
    while client.is_connected() {
        worst = worst.max(observe_many(&client, 100));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    worst = worst.max(observe_many(&client, 20_000));
    assert!(worst < GENEROUS, "worst observe took {worst:?}");
    let before_restart = client.stats();
    assert!(
        before_restart.dropped >= 20_000 - 1000,
        "{before_restart:?}"
    );

    // Restart on the same path: the client reconnects on its own, says hello with the same
    // session, and its queued records and exact drop count arrive.
    std::fs::remove_file(&path).unwrap();
    let listener = UnixListener::bind(&path).unwrap();
    let (stream, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept())
        .await
        .expect("the client reconnects")
        .unwrap();
    let (tx, mut seen) = mpsc::unbounded_channel();
    tokio::spawn(read_connection(stream, tx));
    match seen.recv().await.unwrap() {
        Seen::Hello { session, .. } => assert_eq!(session, first, "same run, same session"),
        other => panic!("expected hello, got {other:?}"),
    }
    // What was queued before the restart arrives first.
    let (queued, (_, dropped, lost)) = until_stats(&mut seen, before_restart.produced).await;
    assert_eq!(
        (dropped, lost),
        (before_restart.dropped, before_restart.lost)
    );
    // Everything produced went to the first sidecar, to this one, was dropped (counted), or was
    // in the write that failed (counted as lost).
    assert_eq!(500 + queued + dropped + lost, before_restart.produced);
    // And new records flow.
    client.observe(ping(0));
    let (fresh, (_, dropped_after, _)) = until_stats(&mut seen, before_restart.produced + 1).await;
    assert_eq!(fresh, 1, "records flow again after the restart");
    assert_eq!(dropped_after, client.stats().dropped);
}
