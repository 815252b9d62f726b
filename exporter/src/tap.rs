//! The tap source: a real node's tap client connects, its records become observations, and the
//! recorder sees exactly what it sees from the embedded router. Protocol: `docs/tap-protocol.md`.
//!
//! One node per sidecar: a second connection is refused while one is served. Every bad line is
//! skipped and counted by reason, and the connection goes on. The node's restarts are told apart
//! from reconnects by the `hello` session, so its counters never go backwards here.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use p2p_observe::Observer;
use p2p_recording::Recording;
use p2p_tap::framing::{Frame, LineBuffer};
use p2p_tap::wire::{self, Body, Reject, MAX_LINE_BYTES};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::task::JoinSet;

use crate::metrics::TapMetrics;
use crate::recorder::Recorder;

/// How long a new connection may take to send its `hello`; a connection that never does would
/// otherwise hold the one node slot.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
const READ_CHUNK: usize = 64 * 1024;

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
}

enum Listener {
    #[cfg(unix)]
    Unix(tokio::net::UnixListener, PathBuf),
    Tcp(tokio::net::TcpListener),
}

/// A bound tap source, not yet serving.
pub struct TapSource {
    listener: Listener,
    token: Option<String>,
}

impl TapSource {
    /// Binds now, so a bad address or an occupied socket fails at start-up.
    pub async fn bind(config: &TapConfig) -> anyhow::Result<TapSource> {
        let listener = match &config.listen {
            TapListen::Tcp(address) => {
                if !address.ip().is_loopback() && config.token.is_none() {
                    bail!("refusing to listen for the tap on {address}, which is not loopback, without --tap-token");
                }
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
            TapListen::Unix { .. } => bail!("Unix sockets need a Unix system; use --tap-listen"),
        };
        Ok(TapSource {
            listener,
            token: config.token.clone(),
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
        recording: Option<Recording>,
        tasks: &mut JoinSet<()>,
    ) {
        let state = Arc::new(State {
            observer,
            recorder,
            recording,
            token: self.token,
            busy: AtomicBool::new(false),
            session: Mutex::new(None),
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
    recording: Option<Recording>,
    token: Option<String>,
    busy: AtomicBool,
    session: Mutex<Option<Session>>,
}

/// The node run last seen, and its cumulative counts already added to the metrics.
struct Session {
    id: String,
    produced: u64,
    dropped: u64,
    lost: u64,
}

impl State {
    fn metrics(&self) -> &TapMetrics {
        &self.recorder.metrics().tap
    }
}

async fn accept_loop(listener: Listener, state: Arc<State>) {
    let mut connections = JoinSet::new();
    loop {
        let accepted: std::io::Result<Box<dyn AsyncRead + Send + Unpin>> = match &listener {
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
            Ok(stream) => stream,
            Err(err) => {
                // Out of file descriptors and the like: wait rather than spin.
                tracing::warn!(error = %err, "tap accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if state.busy.swap(true, Ordering::AcqRel) {
            state.metrics().connections[1].inc();
            tracing::warn!(
                "tap connection refused: a node is already connected (one node per sidecar)"
            );
            continue;
        }
        let state = Arc::clone(&state);
        connections.spawn(async move {
            serve_connection(&state, stream).await;
            state.metrics().connected.set(0);
            state.busy.store(false, Ordering::Release);
        });
        // Reap finished connections so the set does not grow.
        while connections.try_join_next().is_some() {}
    }
}

/// What a line did to the connection.
enum Step {
    Continue,
    Close,
}

async fn serve_connection(state: &State, mut stream: Box<dyn AsyncRead + Send + Unpin>) {
    let mut lines = LineBuffer::new(MAX_LINE_BYTES);
    let mut chunk = vec![0u8; READ_CHUNK];
    let mut greeted = false;
    let hello_deadline = tokio::time::Instant::now() + HELLO_TIMEOUT;
    loop {
        let read = if greeted {
            stream.read(&mut chunk).await
        } else {
            match tokio::time::timeout_at(hello_deadline, stream.read(&mut chunk)).await {
                Ok(read) => read,
                Err(_) => {
                    refuse(state, "no hello within 10 s");
                    return;
                }
            }
        };
        let n = match read {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        lines.push(&chunk[..n]);
        while let Some(frame) = lines.next_frame() {
            let step = match frame {
                Frame::Rejected(reason) => reject(state, reason, greeted),
                Frame::Line(line) => handle_line(state, line, &mut greeted),
            };
            if let Step::Close = step {
                return;
            }
        }
    }
    if let Some(reason) = lines.finish() {
        state.metrics().reject(reason).inc();
    }
    if greeted {
        // The node is gone or reconnecting; its peers are unknown until it says hello again.
        state.recorder.metrics().peers.set(0);
        tracing::info!("tap client disconnected");
    }
}

fn reject(state: &State, reason: Reject, greeted: bool) -> Step {
    state.metrics().reject(reason).inc();
    tracing::debug!(%reason, "tap record rejected");
    if greeted {
        Step::Continue
    } else {
        refuse(state, "the first line was not a hello record");
        Step::Close
    }
}

fn refuse(state: &State, why: &str) {
    state.metrics().connections[2].inc();
    tracing::warn!(reason = why, "tap connection refused");
}

fn handle_line(state: &State, line: &[u8], greeted: &mut bool) -> Step {
    let record = match wire::decode(line) {
        Ok(record) => record,
        Err(reason) => {
            if reason == Reject::UnknownVersion {
                tracing::warn!(
                    newest_known = wire::VERSION,
                    "tap record of a newer format version rejected: upgrade the sidecar"
                );
            }
            return reject(state, reason, *greeted);
        }
    };
    if !*greeted {
        return match &record.body {
            Body::Hello {
                session,
                client,
                token,
                peers,
            } => {
                if !token_matches(state.token.as_deref(), token.as_deref()) {
                    refuse(state, "wrong or missing token");
                    return Step::Close;
                }
                *greeted = true;
                if let Some(recording) = &state.recording {
                    let hello = wire::Record {
                        v: record.v,
                        t: record.t,
                        body: Body::Hello {
                            session: session.clone(),
                            client: client.clone(),
                            token: None,
                            peers: *peers,
                        },
                    };
                    let line = wire::encode(&hello);
                    recording.tap_line(line.strip_suffix(b"\n").unwrap_or(&line));
                }
                state.metrics().connections[0].inc();
                state.metrics().connected.set(1);
                start_session(state, session);
                state.recorder.metrics().peers.set(*peers as i64);
                tracing::info!(client = %client, "tap client connected");
                Step::Continue
            }
            _ => {
                refuse(state, "the first record was not a hello");
                Step::Close
            }
        };
    }
    if let Some(recording) = &state.recording {
        recording.tap_line(line);
    }
    match record.body.observation() {
        Some(observation) => {
            state.metrics().records.inc();
            state.observer.observe(observation);
        }
        // A second hello on one connection says nothing new.
        None => {
            if let Body::Stats {
                produced,
                dropped,
                lost,
                peers,
            } = &record.body
            {
                add_client_counts(state, *produced, *dropped, *lost);
                state.recorder.metrics().peers.set(*peers as i64);
            }
        }
    }
    Step::Continue
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

fn start_session(state: &State, id: &str) {
    let mut session = state.session.lock().unwrap_or_else(|e| e.into_inner());
    match session.as_ref() {
        // A reconnect of the same run (the sidecar or the socket came back): counts continue.
        Some(current) if current.id == id => {}
        previous => {
            if previous.is_some() {
                tracing::info!("the node restarted (new tap session)");
                state.recorder.node_restarted();
            }
            state.metrics().sessions.inc();
            *session = Some(Session {
                id: id.to_owned(),
                produced: 0,
                dropped: 0,
                lost: 0,
            });
        }
    }
}

/// The client's counts are cumulative for its run; add what is new since the last stats.
fn add_client_counts(state: &State, produced: u64, dropped: u64, lost: u64) {
    let mut session = state.session.lock().unwrap_or_else(|e| e.into_inner());
    let Some(session) = session.as_mut() else {
        return;
    };
    let m = state.metrics();
    for (total, seen, counter) in [
        (produced, &mut session.produced, &m.client_records),
        (dropped, &mut session.dropped, &m.client_dropped[0]),
        (lost, &mut session.lost, &m.client_dropped[1]),
    ] {
        // Within one run the client's counts only grow; a smaller one is ignored, never
        // subtracted.
        if total > *seen {
            counter.inc_by(total - *seen);
            *seen = total;
        }
    }
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
