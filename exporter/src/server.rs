//! The HTTP serving loop under the axum router, built so slow or hostile clients cannot take
//! `/metrics` down:
//!
//! - a connection has `header_timeout` to finish its TLS handshake and then each request head,
//!   counted from its opening or from its previous response (so the same limit ends idle
//!   keep-alive connections);
//! - at most `max_connections` are open; a new one takes the place of the oldest connection with
//!   no request in flight, so a flood of slow connections closes its own oldest members while a
//!   scrape, which sends its request at once, is served;
//! - a failed accept (out of descriptors, most often) is counted, backs off instead of spinning,
//!   and, when descriptors ran out, lowers the cap below what was open, so that the rest of the
//!   sidecar (the tap, the process collector's `/proc` reads) keeps descriptors of its own.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::Request;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::metrics::ServerMetrics;
use crate::recorder::Recorder;

/// The default of `--web.max-connections`: a sidecar is scraped by a few Prometheus servers.
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;

/// Descriptors left to the rest of the sidecar once the process has run out of them.
const DESCRIPTOR_HEADROOM: usize = 16;
/// How long connections may take to finish their requests at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
const BACKOFF_MIN: Duration = Duration::from_millis(5);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

pub struct ServerConfig {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

/// `listener` of `p2p_exporter_accept_errors_total`, indexed like `ACCEPT_LISTENERS`.
#[derive(Clone, Copy, Debug)]
pub enum Listener {
    Http,
    Tap,
}

/// `reason` of `p2p_exporter_accept_errors_total`, indexed like `ACCEPT_ERROR_REASONS`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AcceptError {
    Descriptors,
    Memory,
    Other,
}

impl AcceptError {
    pub fn of(err: &std::io::Error) -> AcceptError {
        match err.raw_os_error() {
            Some(libc::EMFILE | libc::ENFILE) => AcceptError::Descriptors,
            Some(libc::ENOBUFS | libc::ENOMEM) => AcceptError::Memory,
            _ => AcceptError::Other,
        }
    }
}

/// Counts failed accepts and waits after each, doubling the wait while they keep failing.
pub struct AcceptBackoff {
    listener: Listener,
    delay: Duration,
}

impl AcceptBackoff {
    pub fn new(listener: Listener) -> AcceptBackoff {
        AcceptBackoff {
            listener,
            delay: BACKOFF_MIN,
        }
    }

    pub fn succeeded(&mut self) {
        self.delay = BACKOFF_MIN;
    }

    /// Counts `err`, logs the first of a run of failures, and sleeps.
    pub async fn failed(&mut self, metrics: &ServerMetrics, err: &std::io::Error) -> AcceptError {
        let reason = AcceptError::of(err);
        metrics.accept_errors[self.listener as usize][reason as usize].inc();
        if self.delay == BACKOFF_MIN {
            tracing::warn!(listener = ?self.listener, error = %err, "accept failed; backing off");
        }
        tokio::time::sleep(self.delay).await;
        self.delay = (self.delay * 2).min(BACKOFF_MAX);
        reason
    }
}

/// `reason` of `p2p_exporter_http_connections_closed_total`, indexed like `HTTP_CLOSE_REASONS`.
#[derive(Clone, Copy, Debug)]
enum Ending {
    Closed,
    Timeout,
    Evicted,
    TlsError,
    Error,
}

/// The open connections, oldest first.
struct Connections {
    open: Mutex<BTreeMap<u64, Slot>>,
    next: AtomicU64,
    /// `max_connections`, lowered when descriptors ran out.
    cap: AtomicUsize,
    recorder: Arc<Recorder>,
}

struct Slot {
    in_flight: Arc<AtomicUsize>,
    evict: Arc<Notify>,
}

impl Connections {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Slot>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a new connection after making room for it; `None` when every open connection
    /// has a request in flight.
    fn admit(&self) -> Option<(u64, Arc<AtomicUsize>, Arc<Notify>)> {
        let mut open = self.lock();
        let cap = self.cap.load(Ordering::Relaxed);
        while open.len() >= cap {
            if !evict_oldest_idle(&mut open) {
                return None;
            }
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let in_flight = Arc::new(AtomicUsize::new(0));
        let evict = Arc::new(Notify::new());
        open.insert(
            id,
            Slot {
                in_flight: Arc::clone(&in_flight),
                evict: Arc::clone(&evict),
            },
        );
        self.metrics().connections.set(open.len() as i64);
        Some((id, in_flight, evict))
    }

    fn remove(&self, id: u64) {
        let mut open = self.lock();
        open.remove(&id);
        self.metrics().connections.set(open.len() as i64);
    }

    /// The process is out of descriptors: serve fewer connections from now on, closing idle ones
    /// down to the new cap.
    fn out_of_descriptors(&self) {
        let mut open = self.lock();
        let cap = open.len().saturating_sub(DESCRIPTOR_HEADROOM).max(1);
        if cap < self.cap.load(Ordering::Relaxed) {
            self.cap.store(cap, Ordering::Relaxed);
            tracing::warn!(
                max_connections = cap,
                "out of file descriptors: serving fewer HTTP connections from now on (raise `ulimit -n`)"
            );
        }
        while open.len() > cap && evict_oldest_idle(&mut open) {}
    }

    fn metrics(&self) -> &ServerMetrics {
        &self.recorder.metrics().server
    }
}

/// Tells the oldest connection with no request in flight to close, and forgets it.
fn evict_oldest_idle(open: &mut BTreeMap<u64, Slot>) -> bool {
    let Some(id) = open
        .iter()
        .find(|(_, slot)| slot.in_flight.load(Ordering::Acquire) == 0)
        .map(|(id, _)| *id)
    else {
        return false;
    };
    if let Some(slot) = open.remove(&id) {
        slot.evict.notify_one();
    }
    true
}

/// Removes the connection from the open set however its task ends.
struct Registered {
    connections: Arc<Connections>,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.connections.remove(self.id);
    }
}

/// Marks a request in flight while it is handled, so the connection is not evicted under it.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn start(count: &Arc<AtomicUsize>) -> InFlight {
        count.fetch_add(1, Ordering::AcqRel);
        InFlight(Arc::clone(count))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then gives open connections
/// [`SHUTDOWN_GRACE`] to finish.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    config: ServerConfig,
    recorder: Arc<Recorder>,
    shutdown: impl Future<Output = ()>,
) {
    let connections = Arc::new(Connections {
        open: Mutex::new(BTreeMap::new()),
        next: AtomicU64::new(0),
        cap: AtomicUsize::new(config.max_connections.max(1)),
        recorder,
    });
    let config = Arc::new(config);
    let stop = CancellationToken::new();
    let mut tasks = JoinSet::new();
    let mut backoff = AcceptBackoff::new(Listener::Http);
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let tcp = match accepted {
            Ok((tcp, _)) => {
                backoff.succeeded();
                tcp
            }
            Err(err) => {
                if AcceptError::of(&err) == AcceptError::Descriptors {
                    connections.out_of_descriptors();
                }
                backoff.failed(connections.metrics(), &err).await;
                continue;
            }
        };
        let Some((id, in_flight, evict)) = connections.admit() else {
            // Every connection is mid-request; this one waits for none of them.
            connections.metrics().closed[Ending::Evicted as usize].inc();
            continue;
        };
        let registered = Registered {
            connections: Arc::clone(&connections),
            id,
        };
        let (router, config, stop) = (router.clone(), Arc::clone(&config), stop.clone());
        tasks.spawn(async move {
            let closed = tokio::select! {
                biased;
                _ = evict.notified() => Ending::Evicted,
                closed = connection(tcp, router, &config, in_flight, stop) => closed,
            };
            registered.connections.metrics().closed[closed as usize].inc();
            drop(registered);
        });
        while tasks.try_join_next().is_some() {}
        // Lets the new connection read its request before further accepts can evict it.
        tokio::task::yield_now().await;
    }
    drop(listener);
    stop.cancel();
    if tokio::time::timeout(SHUTDOWN_GRACE, async {
        while tasks.join_next().await.is_some() {}
    })
    .await
    .is_err()
    {
        tracing::warn!("HTTP connections still open at shutdown were closed");
    }
}

async fn connection(
    tcp: tokio::net::TcpStream,
    router: axum::Router,
    config: &ServerConfig,
    in_flight: Arc<AtomicUsize>,
    stop: CancellationToken,
) -> Ending {
    let _ = tcp.set_nodelay(true);
    match &config.tls {
        None => http(tcp, router, config, in_flight, stop).await,
        Some(tls) => {
            let acceptor = tokio_rustls::TlsAcceptor::from(Arc::clone(tls));
            match tokio::time::timeout(config.header_timeout, acceptor.accept(tcp)).await {
                Err(_) => Ending::Timeout,
                Ok(Err(err)) => {
                    tracing::debug!(error = %err, "TLS handshake failed");
                    Ending::TlsError
                }
                Ok(Ok(tls)) => http(tls, router, config, in_flight, stop).await,
            }
        }
    }
}

async fn http<I>(
    io: I,
    router: axum::Router,
    config: &ServerConfig,
    in_flight: Arc<AtomicUsize>,
    stop: CancellationToken,
) -> Ending
where
    I: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let service = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
        let busy = InFlight::start(&in_flight);
        let router = router.clone();
        async move {
            let response = router.oneshot(request).await;
            drop(busy);
            response
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_timeout);
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let mut stopping = false;
    let result = loop {
        tokio::select! {
            result = conn.as_mut() => break result,
            _ = stop.cancelled(), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    };
    match result {
        Ok(()) => Ending::Closed,
        Err(err) if err.is_timeout() => Ending::Timeout,
        Err(err) if err.is_incomplete_message() || err.is_closed() || err.is_canceled() => {
            Ending::Closed
        }
        Err(err) => {
            tracing::debug!(error = %err, "HTTP connection failed");
            Ending::Error
        }
    }
}
