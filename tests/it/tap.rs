//! The tap source of the real binary against the stand-in node and hand-made frames: counts are
//! exact when the detail stream overflows, the stand-in gives the embedded source's metrics, the
//! final snapshot arrives, every bad value is refused with its reason, and no connection can hold
//! the node's slot or the sidecar's memory.

#[path = "../../tap/examples/standin_node/node.rs"]
mod node;

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use p2p_exporter::recorder::{Recorder, RecorderConfig};
use p2p_router::NetMessage;
use p2p_tap::protocol::{self, Hello, Snapshot, FRAME_HELLO, FRAME_JOURNAL, FRAME_SNAPSHOT};
use p2p_tap::{Tap, TapConfig};
use prometheus::{Encoder, Registry, TextEncoder};
use tokio::sync::mpsc;

use crate::support::{sample, samples, wait_for, Exporter};

/// A tap-source exporter. Tests that write frames by hand, with pauses between them a real tap
/// would fill with snapshots, pass a long `--tap-idle-timeout`.
pub(crate) fn tap_exporter(dir: &Path, extra: &[&str]) -> (Exporter, PathBuf) {
    let socket = dir.join("tap.sock");
    let mut args = vec!["--source", "tap", "--tap-socket", socket.to_str().unwrap()];
    args.extend_from_slice(extra);
    (Exporter::start(&args), socket)
}

fn wait_value(exporter: &Exporter, series: &str, expected: f64) {
    wait_for(
        &format!("{series} == {expected}"),
        Duration::from_secs(30),
        || (sample(&exporter.scrape(), series) == Some(expected)).then_some(()),
    );
}

/// Lets `p2p_router::Router`, the embedded source's router, run the stand-in's script.
impl node::NodeRouter for p2p_router::Router {
    fn register(
        &self,
        inbound: bool,
        sender: mpsc::Sender<NetMessage>,
    ) -> Option<p2p_router::PeerId> {
        let address = std::net::SocketAddr::from(([10, 0, 0, 1], 8333));
        let version = p2p_router::VersionInfo {
            protocol: 70016,
            best_height: 0,
        };
        self.register_peer(inbound, address, version, sender).ok()
    }
    fn emit(&self, peer: p2p_router::PeerId, message: NetMessage) {
        self.emit_message(peer, message)
    }
    fn drop_peer(&self, peer: p2p_router::PeerId, reason: &str) {
        self.disconnect(peer, reason);
    }
}

const ROUNDS: u64 = 1500;

/// The deterministic series both sources must agree on. Blocks are left out (the stand-in's
/// consumer validates them, the drained reference subscriber does not), and so is the queue
/// length, which the embedded source takes after the last send and the tap at its last snapshot
/// (after the drain).
fn comparable(exposition: &str) -> Vec<(String, f64)> {
    const FAMILIES: &[&str] = &[
        "p2p_messages_total",
        "p2p_inv_messages_total",
        "p2p_inv_checked_messages_total",
        "p2p_inv_duplicate_messages_total",
        "p2p_inv_items_total",
        "p2p_inv_duplicate_items_total",
        "p2p_events_sent_total",
        "p2p_events_received_total",
        "p2p_event_channel_lag_total",
        "p2p_event_channel_capacity",
        "p2p_peers",
        "p2p_peer_connections_total",
        "p2p_peer_disconnections_total",
        "p2p_peer_registrations_refused_total",
    ];
    let mut out: Vec<_> = samples(exposition)
        .into_iter()
        .filter(|s| FAMILIES.contains(&s.name.as_str()))
        .map(|s| {
            let labels: Vec<_> = s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            (format!("{}{{{}}}", s.name, labels.join(",")), s.value)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The embedded source's path: the reference router reporting straight to a recorder.
fn embedded_run() -> String {
    let registry = Registry::new();
    let recorder = Arc::new(Recorder::new(&registry, RecorderConfig::default()).unwrap());
    let router = p2p_router::Router::builder(10)
        .capacity(node::EVENT_CHANNEL_SIZE)
        .observer(recorder.clone())
        .build();
    let mut consumer = router.subscribe(node::CONSUMER);
    let _outboxes = node::script(&router, ROUNDS);
    while let Ok(_) | Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) =
        consumer.try_recv()
    {}
    recorder.refresh();
    let mut text = Vec::new();
    TextEncoder::new()
        .encode(&registry.gather(), &mut text)
        .unwrap();
    String::from_utf8(text).unwrap()
}

/// What the stand-in's own code counted, apart from the tap.
struct GroundTruth {
    received: u64,
    lagged: u64,
}

/// Runs the stand-in node's script against `endpoint` with a detail buffer of `detail_bytes`,
/// then shuts its tap down (the final snapshot).
fn standin_run(endpoint: &Path, detail_bytes: usize, snapshot_every: Duration) -> GroundTruth {
    let mut config = TapConfig::new(endpoint.to_path_buf());
    config.detail_buffer_bytes = detail_bytes;
    config.snapshot_every = snapshot_every;
    config.sample_resources = false;
    let tap = Tap::new(config);
    let router = node::Router::new(10, node::EVENT_CHANNEL_SIZE, tap.clone());
    let mut consumer = router.consumer();
    let _outboxes = node::script(&router, ROUNDS);
    let (received, lagged) = consumer.drain();
    drop(consumer);
    tap.shutdown(Duration::from_secs(10));
    GroundTruth { received, lagged }
}

fn sum(exposition: &str, family: &str) -> f64 {
    samples(exposition)
        .iter()
        .filter(|s| s.name == family)
        .map(|s| s.value)
        .sum()
}

#[test]
fn the_standin_node_gives_the_same_metrics_as_the_embedded_source() {
    let dir = tempfile::tempdir().unwrap();
    let (exporter, socket) = tap_exporter(dir.path(), &[]);
    wait_value(&exporter, "p2p_tap_connected", 0.0);
    // A detail buffer that holds the whole run, so every inv reaches the duplicate tracker.
    let truth = standin_run(&socket, 1 << 19, Duration::from_millis(100));
    wait_value(&exporter, "p2p_inv_checked_messages_total", ROUNDS as f64);
    let text = exporter.scrape();
    assert_eq!(comparable(&text), comparable(&embedded_run()));
    assert_eq!(
        sample(&text, r#"p2p_events_received_total{subscriber="consumer"}"#),
        Some(truth.received as f64)
    );
    assert_eq!(sum(&text, "p2p_tap_client_dropped_records_total"), 0.0);
    assert_eq!(sum(&text, "p2p_tap_records_rejected_total"), 0.0);
}

#[test]
fn lag_sent_and_received_stay_exact_when_the_detail_stream_overflows() {
    let dir = tempfile::tempdir().unwrap();
    let (exporter, socket) = tap_exporter(dir.path(), &[]);
    // Room for a handful of inv entries per flush: the script's 1,500 overflow it.
    let truth = standin_run(&socket, 256, Duration::from_millis(100));
    assert!(truth.lagged > 0, "the script overflows the channel");
    let sent = truth.received + truth.lagged;
    wait_value(
        &exporter,
        r#"p2p_events_sent_total{channel="events"}"#,
        sent as f64,
    );
    let text = exporter.scrape();
    let value = |series: &str| sample(&text, series).unwrap_or_else(|| panic!("{series}"));
    assert_eq!(
        value(r#"p2p_events_received_total{subscriber="consumer"}"#),
        truth.received as f64
    );
    assert_eq!(
        value(r#"p2p_event_channel_lag_total{subscriber="consumer"}"#),
        truth.lagged as f64
    );
    assert_eq!(value("p2p_inv_messages_total"), ROUNDS as f64);
    let dropped = value(r#"p2p_tap_client_dropped_records_total{reason="buffer_full"}"#);
    assert!(dropped > 0.0, "the detail buffer overflowed");
    // What was not dropped was checked, and the coverage says how much that is.
    assert_eq!(
        value("p2p_inv_checked_messages_total"),
        ROUNDS as f64 - dropped
    );
    // Every inv is a detail record, and so is every accepted block's journey.
    assert_eq!(
        value("p2p_tap_client_records_total"),
        ROUNDS as f64 + value("p2p_blocks_accepted_total")
    );
}

#[test]
fn the_final_snapshot_arrives_at_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let (exporter, socket) = tap_exporter(dir.path(), &[]);
    // No periodic snapshot during the run: only the one sent on connecting (before any event)
    // and the final one can carry the counts.
    let truth = standin_run(&socket, 1 << 19, Duration::from_secs(3600));
    wait_value(
        &exporter,
        r#"p2p_events_sent_total{channel="events"}"#,
        (truth.received + truth.lagged) as f64,
    );
    assert_eq!(
        exporter.value(r#"p2p_event_channel_lag_total{subscriber="consumer"}"#),
        truth.lagged as f64
    );
}

fn frame(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    protocol::write_frame(&mut out, kind, body);
    out
}

pub(crate) fn hello(session: u64) -> Vec<u8> {
    let mut out = Vec::new();
    let hello = Hello {
        v: protocol::VERSION,
        session,
        client: "it".into(),
        token: None,
    };
    protocol::write_json_frame(&mut out, FRAME_HELLO, &hello);
    out
}

/// A valid snapshot: one channel with one subscriber, `n` events through it.
pub(crate) fn snapshot(seq: u64, n: u64) -> Snapshot {
    let tap = Tap::disabled();
    let channel = tap.channel("events", 2048);
    let (sender, mut receiver) = tokio::sync::broadcast::channel(2048);
    let mut subscriber = tap.subscriber(&channel, "consumer", |_: &u64| None);
    for i in 0..n {
        channel.send(&sender, i).unwrap();
        subscriber.after_try_recv(&receiver.try_recv());
    }
    Snapshot {
        seq,
        ..tap.snapshot()
    }
}

pub(crate) fn snapshot_frame(snapshot: &Snapshot) -> Vec<u8> {
    let mut out = Vec::new();
    protocol::write_json_frame(&mut out, FRAME_SNAPSHOT, snapshot);
    out
}

#[test]
fn each_bad_value_is_refused_with_its_reason_and_the_last_good_snapshot_stays_served() {
    let dir = tempfile::tempdir().unwrap();
    let (exporter, socket) = tap_exporter(dir.path(), &["--tap-idle-timeout", "5m"]);
    let mut node = UnixStream::connect(&socket).unwrap();
    node.write_all(&hello(7)).unwrap();
    node.write_all(&snapshot_frame(&snapshot(0, 10))).unwrap();
    wait_value(
        &exporter,
        r#"p2p_events_sent_total{channel="events"}"#,
        10.0,
    );

    let good = snapshot(1, 20);
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    let mut bad = good.clone();
    bad.channels[0].queued = 4096;
    cases.push(("out_of_range", snapshot_frame(&bad)));
    let mut bad = good.clone();
    bad.peers.disconnected[0] = 1;
    cases.push(("out_of_range", snapshot_frame(&bad)));
    let mut bad = good.clone();
    bad.subscribers[0].lagged = u64::MAX;
    cases.push(("out_of_range", snapshot_frame(&bad)));
    let mut bad = good.clone();
    bad.inv_items = 1 << 60;
    cases.push(("out_of_range", snapshot_frame(&bad)));
    let mut bad = snapshot(2, 5);
    bad.seq = 2;
    cases.push(("went_backwards", snapshot_frame(&bad)));
    let mut bad = good.clone();
    bad.channels[0].name = "10.0.0.1:8333".into();
    bad.subscribers[0].channel = bad.channels[0].name.clone();
    cases.push(("bad_name", snapshot_frame(&bad)));
    cases.push(("malformed", frame(FRAME_SNAPSHOT, b"{\"seq\":")));
    cases.push(("unknown_frame", frame(b'?', b"")));
    let mut journal = Vec::new();
    journal.extend_from_slice(&0u32.to_le_bytes());
    journal.extend_from_slice(&1u16.to_le_bytes());
    journal.push(9);
    journal.extend_from_slice(&[0; 32]);
    cases.push(("bad_item", frame(FRAME_JOURNAL, &journal)));

    for (i, (reason, bytes)) in cases.iter().enumerate() {
        let before = exporter.scrape();
        node.write_all(bytes).unwrap();
        let series = format!("p2p_tap_records_rejected_total{{reason=\"{reason}\"}}");
        let expected = sample(&before, &series).unwrap() + 1.0;
        wait_value(&exporter, &series, expected);
        assert_eq!(
            exporter.value(r#"p2p_events_sent_total{channel="events"}"#),
            10.0,
            "case {i} ({reason}) changed what is served"
        );
    }
    assert_eq!(exporter.value("p2p_peers"), 0.0);
    node.write_all(&snapshot_frame(&good)).unwrap();
    wait_value(
        &exporter,
        r#"p2p_events_sent_total{channel="events"}"#,
        20.0,
    );
    assert_eq!(exporter.value("p2p_tap_connected"), 1.0);
}

#[test]
fn a_silent_connection_loses_the_slot_and_a_new_hello_replaces_a_stale_one() {
    let dir = tempfile::tempdir().unwrap();
    let (exporter, socket) = tap_exporter(dir.path(), &["--tap-idle-timeout", "3s"]);
    let closed = |reason: &str| {
        exporter.value(&format!(
            "p2p_tap_connections_closed_total{{reason=\"{reason}\"}}"
        ))
    };
    // A stale connection: hello, then nothing.
    let mut stale = UnixStream::connect(&socket).unwrap();
    stale.write_all(&hello(1)).unwrap();
    wait_value(&exporter, "p2p_tap_connected", 1.0);
    // The node comes back on a new connection: it takes over at once.
    let mut node = UnixStream::connect(&socket).unwrap();
    node.write_all(&hello(1)).unwrap();
    node.write_all(&snapshot_frame(&snapshot(0, 3))).unwrap();
    wait_value(
        &exporter,
        r#"p2p_tap_connections_closed_total{reason="replaced"}"#,
        1.0,
    );
    wait_value(&exporter, r#"p2p_events_sent_total{channel="events"}"#, 3.0);
    assert_eq!(exporter.value("p2p_tap_connected"), 1.0);
    // Then it goes silent too, and is closed by the idle timeout.
    wait_value(
        &exporter,
        r#"p2p_tap_connections_closed_total{reason="idle"}"#,
        1.0,
    );
    assert_eq!(exporter.value("p2p_tap_connected"), 0.0);
    assert_eq!(closed("replaced"), 1.0);
    drop(stale);
}

#[test]
fn every_connection_is_counted_in_exactly_one_result() {
    let dir = tempfile::tempdir().unwrap();
    let (exporter, socket) = tap_exporter(dir.path(), &[]);
    const ATTEMPTS: usize = 1000;
    for _ in 0..ATTEMPTS {
        drop(UnixStream::connect(&socket).unwrap());
    }
    wait_for("every attempt counted", Duration::from_secs(30), || {
        (sum(&exporter.scrape(), "p2p_tap_connections_total") == ATTEMPTS as f64).then_some(())
    });
    // Refused at once when too many wait for their hello, or seen to close before it.
    let text = exporter.scrape();
    let count = |result: &str| {
        sample(
            &text,
            &format!("p2p_tap_connections_total{{result=\"{result}\"}}"),
        )
        .unwrap()
    };
    assert_eq!(
        count("closed_before_hello") + count("refused_busy"),
        ATTEMPTS as f64
    );
}

/// Peak resident memory of a process, from `/proc/<pid>/status`.
fn peak_rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

#[test]
fn one_oversized_record_costs_no_more_memory_than_the_frame_limit() {
    let dir = tempfile::tempdir().unwrap();
    let (exporter, socket) = tap_exporter(dir.path(), &["--tap-idle-timeout", "5m"]);
    let mut node = UnixStream::connect(&socket).unwrap();
    node.write_all(&hello(3)).unwrap();
    wait_value(&exporter, "p2p_tap_connected", 1.0);
    let before = peak_rss_bytes(exporter.child.id());
    // Twenty frames just under the limit, each refused as malformed after it is read...
    let big = frame(FRAME_SNAPSHOT, &vec![b' '; protocol::MAX_FRAME_BYTES - 1]);
    for _ in 0..20 {
        node.write_all(&big).unwrap();
    }
    wait_value(
        &exporter,
        r#"p2p_tap_records_rejected_total{reason="malformed"}"#,
        20.0,
    );
    // ...then a length of 7 MB, refused before its body is read, closing the connection.
    let mut huge = (7u32 << 20).to_le_bytes().to_vec();
    huge.extend_from_slice(&[b'S'; 4096]);
    let _ = node.write_all(&huge);
    wait_value(
        &exporter,
        r#"p2p_tap_connections_closed_total{reason="too_large"}"#,
        1.0,
    );
    let grown = peak_rss_bytes(exporter.child.id()).saturating_sub(before);
    // A few frames' worth of buffers, not twenty, and not the 7 MB.
    assert!(
        grown < 8 * protocol::MAX_FRAME_BYTES as u64,
        "peak RSS grew by {grown} bytes"
    );
}

#[test]
fn a_node_restart_is_a_new_session_whose_counts_start_again() {
    let dir = tempfile::tempdir().unwrap();
    let (exporter, socket) = tap_exporter(dir.path(), &["--tap-idle-timeout", "5m"]);
    let mut first = UnixStream::connect(&socket).unwrap();
    first.write_all(&hello(1)).unwrap();
    first.write_all(&snapshot_frame(&snapshot(0, 30))).unwrap();
    wait_value(
        &exporter,
        r#"p2p_events_sent_total{channel="events"}"#,
        30.0,
    );
    drop(first);
    wait_value(&exporter, "p2p_tap_connected", 0.0);
    // The restarted node's counts are served as they are, from zero: Prometheus sees a reset,
    // which rate() handles as any process restart.
    let mut second = UnixStream::connect(&socket).unwrap();
    second.write_all(&hello(2)).unwrap();
    second.write_all(&snapshot_frame(&snapshot(0, 4))).unwrap();
    wait_value(&exporter, r#"p2p_events_sent_total{channel="events"}"#, 4.0);
    assert_eq!(exporter.value("p2p_tap_node_sessions_total"), 2.0);
}

#[test]
fn a_restarted_sidecar_serves_no_node_series_until_the_first_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let (exporter, socket) = tap_exporter(dir.path(), &["--tap-idle-timeout", "5m"]);
    let mut node = UnixStream::connect(&socket).unwrap();
    node.write_all(&hello(5)).unwrap();
    wait_value(&exporter, "p2p_tap_connected", 1.0);
    let text = exporter.scrape();
    for family in [
        "p2p_events_sent_total",
        "p2p_event_channel_lag_total",
        "p2p_inv_messages_total",
        "p2p_tap_client_records_total",
        "p2p_peers",
    ] {
        assert!(
            !samples(&text).iter().any(|s| s.name == family),
            "{family} is served before any snapshot"
        );
    }
    node.write_all(&snapshot_frame(&snapshot(0, 1))).unwrap();
    wait_value(&exporter, r#"p2p_events_sent_total{channel="events"}"#, 1.0);
}

/// The value of the first sample of an instant query's result.
fn first_value(result: &[serde_json::Value]) -> Option<f64> {
    result
        .first()
        .and_then(|r| r["value"][1].as_str())
        .and_then(|v| v.parse().ok())
}

#[test]
fn increase_across_a_sidecar_restart_and_a_node_restart_equals_the_node_counts() {
    use crate::support::{free_port, Prometheus};
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("tap.sock");
    let listen = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    let args = [
        "--source",
        "tap",
        "--tap-socket",
        socket.to_str().unwrap(),
        "--tap-idle-timeout",
        "5m",
    ];
    let mut sidecar = Exporter::start_on(listen, &args);
    let config = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: p2p-exporter\n    static_configs:\n      - targets: ['{listen}']\n"
    );
    let prometheus = Prometheus::start(&config, &[]);
    let series = r#"p2p_events_sent_total{channel="events"}"#;
    let scraped = |value: f64| {
        wait_for(
            &format!("Prometheus to scrape {series} = {value}"),
            Duration::from_secs(60),
            || (prometheus.scalar(series) == Some(value)).then_some(()),
        );
    };
    // Session 1, from zero: 0, 100, 200 sent, each scraped.
    let mut node = UnixStream::connect(&socket).unwrap();
    node.write_all(&hello(1)).unwrap();
    for (seq, sent) in [(0, 0), (1, 100), (2, 200)] {
        node.write_all(&snapshot_frame(&snapshot(seq, sent)))
            .unwrap();
        scraped(sent as f64);
    }
    // The sidecar restarts on the same address; the node reconnects with the same session and
    // its counts continue where they were.
    drop(node);
    sidecar.terminate();
    let sidecar = Exporter::start_on(listen, &args);
    let mut node = UnixStream::connect(&socket).unwrap();
    node.write_all(&hello(1)).unwrap();
    for (seq, sent) in [(3, 300), (4, 450)] {
        node.write_all(&snapshot_frame(&snapshot(seq, sent)))
            .unwrap();
        scraped(sent as f64);
    }
    // The node restarts: a new session counts from zero. (A live connection of another run is
    // not replaced: the new run gets the slot once the old one's connection has closed.)
    drop(node);
    wait_value(&sidecar, "p2p_tap_connected", 0.0);
    let mut node = UnixStream::connect(&socket).unwrap();
    node.write_all(&hello(2)).unwrap();
    for (seq, sent) in [(0, 0), (1, 70)] {
        node.write_all(&snapshot_frame(&snapshot(seq, sent)))
            .unwrap();
        scraped(sent as f64);
    }
    // Evaluated at the last sample, over a window reaching back before the first, so Prometheus
    // extrapolates nothing: the first sample is 0 and the window ends on the last.
    let last = prometheus.query(&format!("timestamp({series})"));
    let at: f64 = last[0]["value"][1].as_str().unwrap().parse().unwrap();
    let increase = first_value(&prometheus.query_at(&format!("increase({series}[10m])"), at));
    assert_eq!(increase, Some(450.0 + 70.0));
    assert_eq!(sidecar.value("p2p_tap_node_sessions_total"), 2.0);
}

#[test]
fn another_live_run_is_refused_a_quiet_one_replaced_and_the_old_counts_never_served_as_new() {
    let dir = tempfile::tempdir().unwrap();
    let (exporter, socket) = tap_exporter(dir.path(), &["--tap-idle-timeout", "5m"]);
    let sent = r#"p2p_events_sent_total{channel="events"}"#;
    let mut first = UnixStream::connect(&socket).unwrap();
    first.write_all(&hello(1)).unwrap();
    first.write_all(&snapshot_frame(&snapshot(0, 30))).unwrap();
    wait_value(&exporter, sent, 30.0);
    // A second node run while the first is sending: refused, so two taps cannot take turns.
    let mut second = UnixStream::connect(&socket).unwrap();
    second.write_all(&hello(2)).unwrap();
    wait_value(
        &exporter,
        r#"p2p_tap_connections_total{result="refused_busy"}"#,
        1.0,
    );
    assert_eq!(exporter.value(sent), 30.0);
    // Once the first has been quiet for three snapshot periods, the second takes its place, and
    // the first run's counts stop being served before the second's first snapshot.
    std::thread::sleep(Duration::from_millis(3500));
    let mut second = UnixStream::connect(&socket).unwrap();
    second.write_all(&hello(2)).unwrap();
    wait_value(
        &exporter,
        r#"p2p_tap_connections_closed_total{reason="replaced"}"#,
        1.0,
    );
    assert_eq!(sample(&exporter.scrape(), sent), None);
    second.write_all(&snapshot_frame(&snapshot(0, 4))).unwrap();
    wait_value(&exporter, sent, 4.0);
    // A frame cut short by the end of the connection is counted as truncated.
    let frame = snapshot_frame(&snapshot(1, 5));
    second.write_all(&frame[..frame.len() / 2]).unwrap();
    drop(second);
    wait_value(
        &exporter,
        r#"p2p_tap_records_rejected_total{reason="truncated"}"#,
        1.0,
    );
    drop(first);
}
