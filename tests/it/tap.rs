//! The tap source of the real binary: bad records are skipped and counted by reason while the
//! connection keeps serving; the stand-in node gives the same metrics as the embedded source;
//! every record the node produced is accepted, rejected or dropped, exactly; a node restart is
//! neither lag nor a counter going backwards.

#[path = "../../tap/examples/standin_node/node.rs"]
mod node;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use p2p_exporter::recorder::{Recorder, RecorderConfig};
use p2p_observe::Observer;
use p2p_router::NetMessage;
use p2p_tap::{TapClient, TapConfig};
use prometheus::{Encoder, Registry, TextEncoder};
use tokio::sync::mpsc;

use crate::support::{sample, samples, wait_for, Exporter};

const HELLO: &str = r#"{"v":1,"t":0,"kind":"hello","session":"it","client":"raw","peers":0}"#;
/// One good record: it moves `p2p_peer_registrations_refused_total` by one.
const GOOD: &str = r#"{"v":1,"t":1,"kind":"peer_refused"}"#;

fn tap_exporter(dir: &Path, extra: &[&str]) -> (Exporter, PathBuf) {
    let socket = dir.join("tap.sock");
    let mut args = vec!["--source", "tap", "--tap-socket", socket.to_str().unwrap()];
    args.extend_from_slice(extra);
    (Exporter::start(&args), socket)
}

fn rejected(exporter: &Exporter, reason: &str) -> f64 {
    exporter.value(&format!(
        "p2p_tap_records_rejected_total{{reason=\"{reason}\"}}"
    ))
}

fn wait_value(exporter: &Exporter, series: &str, expected: f64) {
    wait_for(
        &format!("{series} == {expected}"),
        Duration::from_secs(30),
        || (exporter.value(series) == expected).then_some(()),
    );
}

#[test]
fn each_bad_record_is_counted_by_reason_and_the_connection_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let (exporter, socket) = tap_exporter(dir.path(), &[]);
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the socket is private to its user");
    }
    let mut stream = UnixStream::connect(&socket).unwrap();
    writeln!(stream, "{HELLO}").unwrap();
    wait_value(&exporter, "p2p_tap_connected", 1.0);

    let hash = "ab".repeat(32);
    let item = format!(r#"{{"type":"block","hash":"{hash}"}}"#);
    let inv = |n: usize| {
        let mut line =
            String::from(r#"{"v":1,"t":1,"kind":"message_emitted","type":"inv","inventory":["#);
        for i in 0..n {
            if i > 0 {
                line.push(',');
            }
            line.push_str(&item);
        }
        line.push_str("]}");
        line.into_bytes()
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("malformed", br#"{"v":1,"t":1,"kind":"#.to_vec()),
        (
            "invalid",
            br#"{"v":1,"t":1,"kind":"event_sent","channel":"events","queued":"3","capacity":4}"#
                .to_vec(),
        ),
        // 10 MiB with no newline; the newline that finally ends it is written below.
        ("oversize", vec![b'x'; 10 << 20]),
        // 10^6 items: past the line limit long before the item limit.
        ("oversize", inv(1_000_000)),
        ("too_many_items", inv(p2p_tap::wire::MAX_ITEMS + 1)),
        (
            "invalid_utf8",
            b"{\"v\":1,\"t\":1,\"kind\":\"block_orphaned\",\"x\":\"\xff\xfe\"}".to_vec(),
        ),
        ("unknown_version", br#"{"v":2,"t":1,"kind":"peer_refused"}"#.to_vec()),
        (
            "bad_hash",
            format!(
                r#"{{"v":1,"t":1,"kind":"block_accepted","hash":"{}","height":1,"propagation_ns":1}}"#,
                &hash[..60]
            )
            .into_bytes(),
        ),
        ("empty", Vec::new()),
    ];
    let mut expected = std::collections::BTreeMap::<&str, f64>::new();
    for (i, (reason, line)) in cases.iter().enumerate() {
        stream.write_all(line).unwrap();
        stream.write_all(b"\n").unwrap();
        // The connection still serves: the next good record is accepted.
        writeln!(stream, "{GOOD}").unwrap();
        *expected.entry(reason).or_default() += 1.0;
        wait_value(&exporter, "p2p_tap_records_total", (i + 1) as f64);
        for (reason, count) in &expected {
            assert_eq!(rejected(&exporter, reason), *count, "reason {reason}");
        }
    }
    assert_eq!(
        exporter.value("p2p_peer_registrations_refused_total"),
        cases.len() as f64
    );

    // A record split across reads at every byte arrives whole, each time.
    let line = format!("{GOOD}\n");
    for split in 1..line.len() {
        stream.write_all(&line.as_bytes()[..split]).unwrap();
        stream.flush().unwrap();
        std::thread::sleep(Duration::from_millis(2));
        stream.write_all(&line.as_bytes()[split..]).unwrap();
    }
    let total = (cases.len() + line.len() - 1) as f64;
    wait_value(&exporter, "p2p_tap_records_total", total);
    assert_eq!(exporter.value("p2p_tap_connected"), 1.0);
    assert_eq!(
        exporter.value(r#"p2p_tap_connections_total{result="accepted"}"#),
        1.0,
        "one connection served it all"
    );

    // The connection ends in the middle of a line: truncated, and the node slot frees up.
    stream.write_all(br#"{"v":1,"t":1,"#).unwrap();
    drop(stream);
    wait_value(&exporter, "p2p_tap_connected", 0.0);
    assert_eq!(rejected(&exporter, "truncated"), 1.0);
    assert_eq!(exporter.value("p2p_tap_records_total"), total);
}

#[test]
fn one_node_per_sidecar_and_the_token_is_required_when_set() {
    let dir = tempfile::tempdir().unwrap();
    let (exporter, socket) = tap_exporter(dir.path(), &["--tap-token", "s3cret"]);
    let refused =
        |result: &str| exporter.value(&format!("p2p_tap_connections_total{{result=\"{result}\"}}"));
    // No token, a wrong token, a first line that is not a hello: refused and closed.
    for (n, first) in [
        HELLO.to_owned(),
        HELLO.replace("\"peers\"", "\"token\":\"guess\",\"peers\""),
        GOOD.to_owned(),
    ]
    .into_iter()
    .enumerate()
    {
        let mut stream = UnixStream::connect(&socket).unwrap();
        writeln!(stream, "{first}").unwrap();
        // Closed by the sidecar (a reset, when our hello is still unread, is a close too).
        let _ = stream.read_to_end(&mut Vec::new());
        wait_value(
            &exporter,
            r#"p2p_tap_connections_total{result="refused_handshake"}"#,
            (n + 1) as f64,
        );
        wait_value(&exporter, "p2p_tap_connected", 0.0);
    }
    assert_eq!(refused("refused_busy"), 0.0);
    let mut node = UnixStream::connect(&socket).unwrap();
    writeln!(
        node,
        "{}",
        HELLO.replace("\"peers\":0", "\"token\":\"s3cret\",\"peers\":7")
    )
    .unwrap();
    wait_value(&exporter, "p2p_tap_connected", 1.0);
    assert_eq!(
        exporter.value("p2p_peers"),
        7.0,
        "peers come from the hello"
    );
    // A second node is turned away while the first is served.
    let mut second = UnixStream::connect(&socket).unwrap();
    let _ = second.read_to_end(&mut Vec::new());
    assert_eq!(refused("refused_busy"), 1.0);
    assert_eq!(refused("accepted"), 1.0);
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

/// The deterministic series both sources must agree on (blocks are left out: the stand-in's
/// consumer validates them, the drained reference subscriber does not).
fn comparable(exposition: &str) -> Vec<(String, f64)> {
    const FAMILIES: &[&str] = &[
        "p2p_messages_total",
        "p2p_inv_messages_total",
        "p2p_inv_duplicate_messages_total",
        "p2p_inv_items_total",
        "p2p_inv_duplicate_items_total",
        "p2p_events_sent_total",
        "p2p_events_received_total",
        "p2p_event_channel_lag_total",
        "p2p_event_channel_capacity",
        "p2p_event_channel_queued_events",
        "p2p_event_channel_usage_ratio_count",
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

/// Counts what the node's code hands the tap, to check the client's own count independently.
struct Counting {
    tap: TapClient,
    calls: AtomicU64,
}

impl Observer for Counting {
    fn observe(&self, observation: p2p_observe::Observation<'_>) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.tap.observe(observation);
    }
}

/// Runs the stand-in node against `endpoint`; returns (observe calls, the client).
fn standin_run(
    runtime: &tokio::runtime::Runtime,
    endpoint: &Path,
    queue: usize,
) -> (u64, TapClient) {
    let mut config = TapConfig::new(endpoint.to_path_buf());
    config.queue_capacity = queue;
    config.stats_every = Duration::from_millis(100);
    config.sample_resources = false;
    let tap = TapClient::spawn_on(config, runtime.handle());
    let counting = Arc::new(Counting {
        tap: tap.clone(),
        calls: AtomicU64::new(0),
    });
    let router = node::Router::new(10, node::EVENT_CHANNEL_SIZE, counting.clone());
    let mut consumer = router.subscribe();
    let _outboxes = node::script(&router, ROUNDS);
    consumer.drain();
    (counting.calls.load(Ordering::Relaxed), tap)
}

fn wait_for_delivery(exporter: &Exporter, produced: u64) {
    wait_for("the client's final stats", Duration::from_secs(60), || {
        (exporter.value("p2p_tap_client_records_total") == produced as f64).then_some(())
    });
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
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    // A queue that holds the whole run, so nothing is dropped and every series must match.
    let (produced, tap) = standin_run(&runtime, &socket, 1 << 20);
    wait_for_delivery(&exporter, produced);
    // The client's own count agrees once its writer has taken everything off the queue.
    wait_for("the client's count", Duration::from_secs(10), || {
        (tap.stats().produced == produced).then_some(())
    });
    wait_value(&exporter, "p2p_tap_records_total", produced as f64);

    let expected = comparable(&embedded_run());
    let got = comparable(&exporter.scrape());
    assert_eq!(got, expected);
    // The workload is what it says: lag, duplicates, refusals all present.
    let text = exporter.scrape();
    let lag = sample(
        &text,
        r#"p2p_event_channel_lag_total{subscriber="consumer"}"#,
    )
    .unwrap();
    let sent = sample(&text, r#"p2p_events_sent_total{channel="events"}"#).unwrap();
    assert_eq!(lag, sent - node::EVENT_CHANNEL_SIZE as f64);
    assert!(sample(&text, "p2p_inv_duplicate_messages_total").unwrap() >= (ROUNDS / 3) as f64);
    assert_eq!(
        sample(&text, "p2p_peer_registrations_refused_total"),
        Some(2.0)
    );
    assert_eq!(sum(&text, "p2p_tap_client_dropped_records_total"), 0.0);
    assert_eq!(sum(&text, "p2p_tap_records_rejected_total"), 0.0);
    assert_eq!(
        sample(
            &text,
            &format!(
                r#"p2p_exporter_build_info{{source="tap",version="{}"}}"#,
                env!("CARGO_PKG_VERSION")
            ),
        ),
        Some(1.0)
    );
}

/// Forwards the client's stream to the sidecar, corrupting every `every`-th observation line.
fn corrupting_proxy(listen: &Path, target: PathBuf, every: u64) -> Arc<AtomicU64> {
    let corrupted = Arc::new(AtomicU64::new(0));
    let listener = std::os::unix::net::UnixListener::bind(listen).unwrap();
    let count = Arc::clone(&corrupted);
    std::thread::spawn(move || {
        let (client, _) = listener.accept().unwrap();
        let mut sidecar = UnixStream::connect(&target).unwrap();
        let reader = std::io::BufReader::new(client);
        let mut observations = 0u64;
        for line in std::io::BufRead::split(reader, b'\n') {
            let mut line = line.unwrap();
            let control = line
                .windows(8)
                .any(|w| w == b"\"hello\"," || w == b"\"stats\",");
            if !control {
                observations += 1;
                if observations.is_multiple_of(every) {
                    line[0] = b'#';
                    count.fetch_add(1, Ordering::Relaxed);
                }
            }
            line.push(b'\n');
            sidecar.write_all(&line).unwrap();
        }
    });
    corrupted
}

#[test]
fn every_record_the_node_produced_is_accepted_rejected_or_dropped_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let (exporter, socket) = tap_exporter(dir.path(), &[]);
    let proxy = dir.path().join("proxy.sock");
    let corrupted = corrupting_proxy(&proxy, socket, 97);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    // A queue far smaller than the burst: the node outruns the writer and records are dropped.
    let (produced, tap) = standin_run(&runtime, &proxy, 256);
    wait_for_delivery(&exporter, produced);
    wait_for("the client's count", Duration::from_secs(10), || {
        (tap.stats().produced == produced).then_some(())
    });
    let stats = tap.stats();
    assert!(stats.dropped > 0, "the small queue overflowed: {stats:?}");
    wait_value(
        &exporter,
        r#"p2p_tap_client_dropped_records_total{reason="queue_full"}"#,
        stats.dropped as f64,
    );
    let text = exporter.scrape();
    let accepted = sample(&text, "p2p_tap_records_total").unwrap();
    let rejected = sum(&text, "p2p_tap_records_rejected_total");
    let dropped = sum(&text, "p2p_tap_client_dropped_records_total");
    assert_eq!(rejected, corrupted.load(Ordering::Relaxed) as f64);
    assert_eq!(
        sample(
            &text,
            r#"p2p_tap_records_rejected_total{reason="malformed"}"#
        ),
        Some(rejected)
    );
    assert_eq!(accepted + rejected + dropped, produced as f64);
}

#[test]
fn a_node_restart_is_not_lag_and_no_counter_goes_backwards() {
    let dir = tempfile::tempdir().unwrap();
    let (exporter, socket) = tap_exporter(dir.path(), &[]);
    let mut total_produced = 0;
    let mut last_sent = 0.0;
    for run in 1..=2 {
        // Each run is a new node process: a new client, a new session, clocks from zero.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let (produced, _tap) = standin_run(&runtime, &socket, 1 << 20);
        total_produced += produced;
        wait_for_delivery(&exporter, total_produced);
        let text = exporter.scrape();
        assert_eq!(
            sample(&text, "p2p_tap_node_sessions_total"),
            Some(run as f64)
        );
        let sent = sample(&text, r#"p2p_events_sent_total{channel="events"}"#).unwrap();
        assert!(sent > last_sent, "counters add up across node runs");
        last_sent = sent;
        // Lag is exactly what each run's consumer skipped, nothing for the restart itself.
        let lag = sample(
            &text,
            r#"p2p_event_channel_lag_total{subscriber="consumer"}"#,
        )
        .unwrap();
        assert_eq!(lag, sent - run as f64 * node::EVENT_CHANNEL_SIZE as f64);
        // The node process ends with its runtime; the sidecar sees the connection close.
        drop(runtime);
        wait_value(&exporter, "p2p_tap_connected", 0.0);
    }
}
