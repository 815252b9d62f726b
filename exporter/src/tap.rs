//! The tap source: a real node's tap connects and sends snapshots of its counts, served as they
//! are ([`NodeView`]), and the items of its inv messages, which go through the recorder's
//! duplicate tracker. Protocol: `docs/tap-protocol.md`.
//!
//! One node per sidecar: a new connection with a valid hello replaces the one being served (a
//! node that reconnects must not wait for its stale connection to time out). A connection that
//! sends no hello within the idle timeout (10 s by default), or nothing for that long after it,
//! is closed. Every bad frame is
//! counted by reason; only a frame too large to trust the framing after it closes the connection.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use futures_util::StreamExt;
use p2p_observe::{Direction, InventoryItem, MessageKind, Observation, Observer};
use p2p_recording::Recording;
use p2p_tap::protocol::{self, Frame, Hello, Reject, MAX_FRAME_BYTES};
use tokio::io::AsyncRead;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::codec::{FramedRead, LengthDelimitedCodec};

use crate::metrics::TapMetrics;
use crate::node_view::{Accepted, NodeView};
use crate::recorder::Recorder;
use crate::server::{self, AcceptBackoff};

/// Connections that have not yet said hello; past it, new ones are refused at once, so a flood of
/// idle connections costs a bounded number of descriptors and tasks.
const MAX_HANDSHAKES: usize = 16;
/// How long the served connection must have been silent before a hello from another node run
/// may take its place: three missed snapshots.
const STALE_AFTER: Duration = Duration::from_secs(3);

/// Where the tap source listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TapListen {
    Unix { path: PathBuf, mode: u32 },
    Tcp(SocketAddr),
}

#[derive(Clone, Debug)]
pub struct TapConfig {
    pub listen: TapListen,
    pub token: Option<String>,
    /// How long a new connection may take to send its hello, and how long a connection may then
    /// be silent (the tap sends a snapshot every second).
    pub idle_timeout: Duration,
}

enum Listener {
    #[cfg(unix)]
    Unix(tokio::net::UnixListener, PathBuf),
    Tcp(tokio::net::TcpListener),
}

/// The tap over TCP is for a node on the sidecar's own host: it has no TLS, so it listens on
/// loopback only.
pub fn check_loopback(address: SocketAddr) -> Result<(), String> {
    if address.ip().is_loopback() {
        return Ok(());
    }
    Err(format!(
        "the tap is a local protocol without TLS and the sidecar runs on the node's host: listen on loopback (127.0.0.1 or [::1]), not {address}"
    ))
}

/// A bound tap source, not yet serving.
pub struct TapSource {
    listener: Listener,
    token: Option<String>,
    idle_timeout: Duration,
}

impl TapSource {
    /// Binds now, so a bad address or an occupied socket fails at start-up.
    pub async fn bind(config: &TapConfig) -> anyhow::Result<TapSource> {
        let listener = match &config.listen {
            TapListen::Tcp(address) => {
                check_loopback(*address).map_err(anyhow::Error::msg)?;
                let listener = tokio::net::TcpListener::bind(address)
                    .await
                    .with_context(|| format!("cannot listen for the tap on {address}"))?;
                Listener::Tcp(listener)
            }
            #[cfg(unix)]
            TapListen::Unix { path, mode } => {
                let listener = bind_unix(path, *mode)
                    .await
                    .with_context(|| format!("cannot listen for the tap on {}", path.display()))?;
                Listener::Unix(listener, path.clone())
            }
            #[cfg(not(unix))]
            TapListen::Unix { .. } => {
                anyhow::bail!("Unix sockets need a Unix system; use --tap-listen")
            }
        };
        Ok(TapSource {
            listener,
            token: config.token.clone(),
            idle_timeout: config.idle_timeout,
        })
    }

    /// What the node should connect to, for the start-up log.
    pub fn endpoint(&self) -> String {
        match &self.listener {
            #[cfg(unix)]
            Listener::Unix(_, path) => path.display().to_string(),
            Listener::Tcp(listener) => listener
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_default(),
        }
    }

    /// Serves connections on `tasks` until they are shut down. Observations go to `observer`
    /// (the recorder, possibly wrapped); the tap's own health goes to `recorder`'s metrics.
    /// With `recording`, every accepted record is recorded as it arrives (a hello without its
    /// token).
    pub fn start(
        self,
        observer: Arc<dyn Observer>,
        recorder: Arc<Recorder>,
        view: Arc<NodeView>,
        recording: Option<Recording>,
        tasks: &mut JoinSet<()>,
    ) {
        let state = Arc::new(State {
            observer,
            recorder,
            view,
            recording,
            token: self.token,
            idle_timeout: self.idle_timeout,
            handshakes: AtomicUsize::new(0),
            serving: Mutex::new(None),
            origin: tokio::time::Instant::now(),
            next_connection: AtomicUsize::new(0),
            recorded: Mutex::new(None),
        });
        tasks.spawn(accept_loop(self.listener, state));
    }
}

#[cfg(unix)]
async fn bind_unix(path: &Path, mode: u32) -> std::io::Result<tokio::net::UnixListener> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "a file that is not a socket is in the way",
            ));
        }
        if tokio::net::UnixStream::connect(path).await.is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                "another process is listening on it",
            ));
        }
        // Left behind by a sidecar that did not shut down cleanly.
        std::fs::remove_file(path)?;
    }
    // Bind under a temporary name, set the mode, then rename: the socket never exists at its
    // real path with wider permissions than asked.
    let file_name = path
        .file_name()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "no file name"))?;
    let mut temporary = file_name.to_owned();
    temporary.push(format!(".{}.tmp", std::process::id()));
    let temporary = path.with_file_name(temporary);
    let _ = std::fs::remove_file(&temporary);
    let listener = tokio::net::UnixListener::bind(&temporary)?;
    std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(mode))?;
    std::fs::rename(&temporary, path)?;
    Ok(listener)
}

struct State {
    observer: Arc<dyn Observer>,
    recorder: Arc<Recorder>,
    view: Arc<NodeView>,
    recording: Option<Recording>,
    token: Option<String>,
    idle_timeout: Duration,
    handshakes: AtomicUsize,
    serving: Mutex<Option<Serving>>,
    origin: tokio::time::Instant,
    next_connection: AtomicUsize,
    /// Messages by type already written to the recording, per session.
    recorded: Mutex<Option<Recorded>>,
}

/// The connection serving the node.
struct Serving {
    id: usize,
    session: u64,
    /// Tells the connection it has been replaced.
    replaced: Arc<Notify>,
    /// When it last sent a frame, in ms since the source started.
    heard: Arc<AtomicU64>,
}

impl State {
    fn now_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }

    fn metrics(&self) -> &TapMetrics {
        &self.recorder.metrics().tap
    }

    fn result(&self, result: ConnectionResult) {
        self.metrics().connections[result as usize].inc();
    }

    fn closed(&self, reason: Closed) {
        self.metrics().closed[reason as usize].inc();
    }
}

/// What the recording already holds of a session's counted traffic.
struct Recorded {
    session: u64,
    messages: Vec<u64>,
    /// Inbound and outbound registrations.
    connected: [u64; 2],
}

/// `result` of `p2p_tap_connections_total`, indexed like `TAP_CONNECTION_RESULTS`: every
/// connection ends up in exactly one.
#[derive(Clone, Copy, Debug)]
enum ConnectionResult {
    Accepted,
    RefusedBusy,
    RefusedHandshake,
    RefusedToken,
    HelloTimeout,
    ClosedBeforeHello,
}

/// `reason` of `p2p_tap_connections_closed_total`, indexed like `TAP_CLOSE_REASONS`: why an
/// accepted connection ended.
#[derive(Clone, Copy, Debug)]
enum Closed {
    Eof,
    Idle,
    Replaced,
    TooLarge,
    Error,
}

type Stream = Box<dyn AsyncRead + Send + Unpin>;
type Frames = FramedRead<Stream, LengthDelimitedCodec>;

async fn accept_loop(listener: Listener, state: Arc<State>) {
    let mut connections = JoinSet::new();
    let mut backoff = AcceptBackoff::new(server::Listener::Tap);
    loop {
        let accepted: std::io::Result<Stream> = match &listener {
            #[cfg(unix)]
            Listener::Unix(listener, _) => listener
                .accept()
                .await
                .map(|(stream, _)| Box::new(stream) as _),
            Listener::Tcp(listener) => listener
                .accept()
                .await
                .map(|(stream, _)| Box::new(stream) as _),
        };
        let stream = match accepted {
            Ok(stream) => {
                backoff.succeeded();
                stream
            }
            Err(err) => {
                backoff.failed(&state.recorder.metrics().server, &err).await;
                continue;
            }
        };
        if state.handshakes.fetch_add(1, Ordering::AcqRel) >= MAX_HANDSHAKES {
            state.handshakes.fetch_sub(1, Ordering::AcqRel);
            state.result(ConnectionResult::RefusedBusy);
            tracing::warn!("tap connection refused: too many connections waiting for their hello");
            continue;
        }
        let state = Arc::clone(&state);
        connections.spawn(async move { serve_connection(&state, stream).await });
        // Reap finished connections so the set does not grow.
        while connections.try_join_next().is_some() {}
    }
}

enum FramingError {
    TooLarge,
    Truncated,
    Io,
}

/// What the length-delimited codec's error means: it reports a length over the limit as
/// `InvalidData`, and a stream that ends inside a frame as an `Other` error of its own.
fn framing_error(err: &std::io::Error) -> FramingError {
    match err.kind() {
        std::io::ErrorKind::InvalidData => FramingError::TooLarge,
        std::io::ErrorKind::Other | std::io::ErrorKind::UnexpectedEof => FramingError::Truncated,
        _ => FramingError::Io,
    }
}

fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .little_endian()
        .length_field_length(4)
        .max_frame_length(MAX_FRAME_BYTES)
        .new_codec()
}

async fn serve_connection(state: &State, stream: Stream) {
    let mut frames = FramedRead::new(stream, codec());
    let handshake = handshake(state, &mut frames).await;
    state.handshakes.fetch_sub(1, Ordering::AcqRel);
    let hello = match handshake {
        Ok(hello) => hello,
        Err((result, why)) => {
            state.result(result);
            tracing::warn!(reason = why, "tap connection refused");
            return;
        }
    };
    let id = state.next_connection.fetch_add(1, Ordering::Relaxed);
    let replaced = Arc::new(Notify::new());
    let heard = Arc::new(AtomicU64::new(state.now_ms()));
    {
        let mut serving = lock(&state.serving);
        if let Some(current) = serving.as_ref() {
            let silent_ms = state
                .now_ms()
                .saturating_sub(current.heard.load(Ordering::Relaxed));
            // The same node run reconnecting takes over at once; another run only from a
            // connection that has gone quiet, so two live taps cannot take turns.
            if current.session != hello.session && silent_ms < STALE_AFTER.as_millis() as u64 {
                drop(serving);
                state.result(ConnectionResult::RefusedBusy);
                tracing::warn!(
                    "tap connection refused: another node run is connected and sending (one node per sidecar)"
                );
                return;
            }
            current.replaced.notify_one();
        }
        *serving = Some(Serving {
            id,
            session: hello.session,
            replaced: Arc::clone(&replaced),
            heard: Arc::clone(&heard),
        });
    }
    state.result(ConnectionResult::Accepted);
    state.view.begin_session(hello.session);
    state.metrics().connected.set(1);
    tracing::info!(client = %hello.client, "tap client connected");
    let closed = tokio::select! {
        // Checked first: a replaced connection handles none of the frames it still has buffered.
        biased;
        _ = replaced.notified() => Closed::Replaced,
        closed = serve_frames(state, hello.session, &heard, &mut frames) => closed,
    };
    state.closed(closed);
    let mut serving = lock(&state.serving);
    if serving.as_ref().is_some_and(|current| current.id == id) {
        *serving = None;
        state.metrics().connected.set(0);
        tracing::info!(reason = ?closed, "tap client disconnected");
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

async fn handshake(
    state: &State,
    frames: &mut Frames,
) -> Result<Hello, (ConnectionResult, &'static str)> {
    let first = match tokio::time::timeout(state.idle_timeout, frames.next()).await {
        Err(_) => return Err((ConnectionResult::HelloTimeout, "no hello in time")),
        Ok(None) => {
            return Err((
                ConnectionResult::ClosedBeforeHello,
                "closed before its hello",
            ))
        }
        Ok(Some(Err(_))) => {
            state.metrics().reject(Reject::TooLarge).inc();
            return Err((
                ConnectionResult::RefusedHandshake,
                "the first frame was too large",
            ));
        }
        Ok(Some(Ok(frame))) => frame,
    };
    match protocol::decode(&first) {
        Ok(Frame::Hello(hello)) => {
            if token_matches(state.token.as_deref(), hello.token.as_deref()) {
                Ok(hello)
            } else {
                Err((ConnectionResult::RefusedToken, "wrong or missing token"))
            }
        }
        Ok(_) => Err((
            ConnectionResult::RefusedHandshake,
            "the first frame was not a hello",
        )),
        Err(reason) => {
            state.metrics().reject(reason).inc();
            if reason == Reject::UnknownVersion {
                tracing::warn!(
                    speaks = protocol::VERSION,
                    "a tap of another protocol version connected: upgrade the older side"
                );
            }
            Err((
                ConnectionResult::RefusedHandshake,
                "the first frame was not a valid hello",
            ))
        }
    }
}

async fn serve_frames(
    state: &State,
    session: u64,
    heard: &AtomicU64,
    frames: &mut Frames,
) -> Closed {
    let mut items = Vec::new();
    loop {
        let frame = match tokio::time::timeout(state.idle_timeout, frames.next()).await {
            Err(_) => return Closed::Idle,
            Ok(None) => return Closed::Eof,
            Ok(Some(Ok(frame))) => frame,
            Ok(Some(Err(err))) => {
                return match framing_error(&err) {
                    FramingError::TooLarge => {
                        state.metrics().reject(Reject::TooLarge).inc();
                        Closed::TooLarge
                    }
                    FramingError::Truncated => {
                        state.metrics().reject(Reject::Truncated).inc();
                        Closed::Eof
                    }
                    FramingError::Io => Closed::Error,
                };
            }
        };
        heard.store(state.now_ms(), Ordering::Relaxed);
        match protocol::decode(&frame) {
            Ok(frame) => handle_frame(state, session, frame, &mut items),
            Err(reason) => {
                state.metrics().reject(reason).inc();
                tracing::debug!(%reason, "tap frame rejected");
            }
        }
    }
}

fn handle_frame(state: &State, session: u64, frame: Frame<'_>, items: &mut Vec<InventoryItem>) {
    match frame {
        Frame::Snapshot(snapshot) => {
            let recording = state.recording.as_ref().map(|_| (*snapshot).clone());
            match state.view.accept(session, *snapshot) {
                Ok(accepted) => {
                    state.metrics().records.inc();
                    if let Accepted::First { restarted } = accepted {
                        state.metrics().sessions.inc();
                        if restarted {
                            tracing::info!("the node restarted (new tap session)");
                        }
                    }
                    if let (Some(recording), Some(snapshot)) = (&state.recording, recording) {
                        record_messages(state, recording, session, &snapshot);
                    }
                }
                Err(reason) => {
                    state.metrics().reject(reason).inc();
                    tracing::debug!(%reason, "tap snapshot rejected");
                }
            }
        }
        Frame::Journal(entries) => {
            state.metrics().records.inc();
            for entry in entries.iter() {
                items.clear();
                items.extend(entry.items());
                if let Some(recording) = &state.recording {
                    let inv = Observation::MessageEmitted {
                        kind: MessageKind::Inv,
                        inventory: items,
                    };
                    record_line(recording, u64::from(entry.at_ms) * 1_000_000, &inv);
                }
                state.observer.observe(Observation::MessageEmitted {
                    kind: MessageKind::Inv,
                    inventory: items,
                });
            }
        }
        Frame::Journey(journey) => {
            state.metrics().records.inc();
            // A block never announced to this node (mined here, fetched in sync) has no journey
            // to trace; a propagation of zero would be a false one.
            if let Some(ns) = journey.propagation_ns {
                state.observer.observe(Observation::BlockAccepted {
                    hash: journey.hash,
                    height: journey.height,
                    received: None,
                    delivered: None,
                    propagation: Duration::from_nanos(ns),
                });
            }
        }
        // A second hello on one connection says nothing new.
        Frame::Hello(_) => {}
    }
}

/// Most messages of one type written for one snapshot: a recording is for replaying traffic, not
/// for letting a bad snapshot fill a disk.
const MAX_RECORDED_PER_SNAPSHOT: u64 = 1 << 20;

/// Writes, as recording lines, the peers that connected and the messages other than inv that
/// arrived since the previous snapshot: the tap counts them and does not stream them, so they are
/// placed at the snapshot's time (a replay sees them in one-second steps; inv messages keep
/// their own times).
fn record_messages(
    state: &State,
    recording: &Recording,
    session: u64,
    snapshot: &p2p_tap::protocol::Snapshot,
) {
    let mut recorded = lock(&state.recorded);
    let (previous, connected) = match recorded.take() {
        Some(r) if r.session == session => (r.messages, r.connected),
        _ => (vec![0; MessageKind::ALL.len()], [0, 0]),
    };
    let at_ns = snapshot.uptime_ms.saturating_mul(1_000_000);
    let now_connected = [snapshot.peers.inbound, snapshot.peers.outbound];
    let directions = [Direction::Inbound, Direction::Outbound];
    for ((direction, now), before) in directions.into_iter().zip(now_connected).zip(connected) {
        for _ in 0..now.saturating_sub(before).min(MAX_RECORDED_PER_SNAPSHOT) {
            record_line(recording, at_ns, &Observation::PeerConnected { direction });
        }
    }
    for ((kind, now), before) in MessageKind::ALL
        .iter()
        .zip(&snapshot.messages)
        .zip(&previous)
    {
        if *kind == MessageKind::Inv {
            continue;
        }
        let message = Observation::MessageEmitted {
            kind: *kind,
            inventory: &[],
        };
        for _ in 0..now.saturating_sub(*before).min(MAX_RECORDED_PER_SNAPSHOT) {
            record_line(recording, at_ns, &message);
        }
    }
    *recorded = Some(Recorded {
        session,
        messages: snapshot.messages.clone(),
        connected: now_connected,
    });
}

/// One observation as a recording line (the line schema of `p2p_tap::wire`).
fn record_line(recording: &Recording, at_ns: u64, observation: &Observation<'_>) {
    let record = p2p_tap::wire::Record {
        v: p2p_tap::wire::VERSION,
        t: at_ns,
        body: p2p_tap::wire::Body::from_observation(observation),
    };
    let line = p2p_tap::wire::encode(&record);
    recording.tap_line(line.strip_suffix(b"\n").unwrap_or(&line));
}

/// Constant time in the token's length, so a local attacker cannot find it byte by byte.
fn token_matches(expected: Option<&str>, given: Option<&str>) -> bool {
    let Some(expected) = expected else {
        return true;
    };
    let given = given.unwrap_or("");
    let (a, b) = (expected.as_bytes(), given.as_bytes());
    let mut difference = (a.len() != b.len()) as u8;
    for (i, x) in a.iter().enumerate() {
        difference |= x ^ b.get(i).copied().unwrap_or(0);
    }
    difference == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison_needs_the_exact_token() {
        assert!(token_matches(None, None));
        assert!(token_matches(None, Some("anything")));
        assert!(token_matches(Some("s3cret"), Some("s3cret")));
        for wrong in [
            None,
            Some(""),
            Some("s3cre"),
            Some("s3cret!"),
            Some("S3cret"),
        ] {
            assert!(!token_matches(Some("s3cret"), wrong), "{wrong:?}");
        }
    }
}
