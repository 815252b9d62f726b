//! The node-side client: `observe` puts a record on a bounded queue and returns; a background task
//! writes the queue to the sidecar and reconnects with capped, jittered backoff.

use std::borrow::Cow;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use p2p_observe::{Direction, DisconnectReason, InventoryItem, MessageKind, Observation, Observer};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::wire::{self, Body, Record, MAX_ITEMS};

/// Where the sidecar listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// A Unix socket (the default deployment: a shared volume, file permissions for access).
    Unix(PathBuf),
    /// TCP, for when the node and the sidecar share no filesystem; loopback unless you know why.
    Tcp(SocketAddr),
}

impl Endpoint {
    /// `host:port` (an IP address) is TCP; anything else is a Unix socket path. A `unix:` prefix
    /// forces a path.
    pub fn parse(text: &str) -> Endpoint {
        if let Some(path) = text.strip_prefix("unix:") {
            return Endpoint::Unix(path.into());
        }
        match text.parse::<SocketAddr>() {
            Ok(address) => Endpoint::Tcp(address),
            Err(_) => Endpoint::Unix(text.into()),
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Unix(path) => write!(f, "unix:{}", path.display()),
            Endpoint::Tcp(address) => write!(f, "{address}"),
        }
    }
}

impl From<&str> for Endpoint {
    fn from(text: &str) -> Endpoint {
        Endpoint::parse(text)
    }
}

impl From<PathBuf> for Endpoint {
    fn from(path: PathBuf) -> Endpoint {
        Endpoint::Unix(path)
    }
}

impl From<SocketAddr> for Endpoint {
    fn from(address: SocketAddr) -> Endpoint {
        Endpoint::Tcp(address)
    }
}

/// The client's knobs. [`TapConfig::new`] has the defaults.
#[derive(Clone, Debug)]
pub struct TapConfig {
    pub endpoint: Endpoint,
    /// Records the queue holds while the sidecar is away or slow; past it, records are dropped
    /// and counted. At ~100 bytes a record (plus an inv's items) the default holds ~1-2 MB.
    pub queue_capacity: usize,
    /// Sent in `hello` when the sidecar requires a token (`--tap-token`).
    pub token: Option<String>,
    /// How often the client reports its counts (and, with `sample_resources`, the process's
    /// memory and CPU time).
    pub stats_every: Duration,
    /// Read this process's resident memory and CPU time from `/proc` at every stats period, so
    /// the node need not report them.
    pub sample_resources: bool,
    /// First reconnect delay; doubles on each failure up to `backoff_max`, each delay jittered
    /// down to half so restarted sidecars are not hit by every node at once.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
}

impl TapConfig {
    pub fn new(endpoint: impl Into<Endpoint>) -> TapConfig {
        TapConfig {
            endpoint: endpoint.into(),
            queue_capacity: 16 * 1024,
            token: None,
            stats_every: Duration::from_secs(1),
            sample_resources: true,
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_secs(5),
        }
    }

    /// From the environment: `P2P_TAP_SOCKET` (a path or `host:port`), `P2P_TAP_TOKEN`. `None`
    /// when `P2P_TAP_SOCKET` is unset: the node runs without a tap.
    pub fn from_env() -> Option<TapConfig> {
        let endpoint = std::env::var("P2P_TAP_SOCKET").ok()?;
        let mut config = TapConfig::new(Endpoint::parse(&endpoint));
        config.token = std::env::var("P2P_TAP_TOKEN").ok();
        Some(config)
    }
}

/// What the client has done so far. A snapshot taken while the writer is busy may count a record
/// it is handling in none of the fields; the `stats` records the writer sends are exact.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// Observations passed to [`TapClient::observe`].
    pub produced: u64,
    /// Dropped because the queue was full (or the writer had stopped).
    pub dropped: u64,
    /// Taken off the queue and written to a socket.
    pub written: u64,
    /// In a write that failed; some may have arrived.
    pub lost: u64,
    /// Taken off the queue and not yet counted as written or lost.
    pub in_flight: u64,
}

/// Names of channels and subscribers, interned so a queued record holds an index, not a string.
/// Names come from the node's code, so a handful; past [`MAX_NAMES`] they share `other`.
const MAX_NAMES: usize = 64;
const OVERFLOW: u8 = u8::MAX;

struct Names {
    slots: [OnceLock<Box<str>>; MAX_NAMES],
    insert: Mutex<()>,
}

impl Names {
    fn new() -> Names {
        Names {
            slots: std::array::from_fn(|_| OnceLock::new()),
            insert: Mutex::new(()),
        }
    }

    /// Lock-free for a name seen before: a scan of the few names in use.
    fn id(&self, name: &str) -> u8 {
        for (i, slot) in self.slots.iter().enumerate() {
            match slot.get() {
                Some(known) if **known == *name => return i as u8,
                Some(_) => continue,
                None => return self.insert(name, i),
            }
        }
        OVERFLOW
    }

    #[cold]
    fn insert(&self, name: &str, from: usize) -> u8 {
        let _guard = self.insert.lock().unwrap_or_else(|e| e.into_inner());
        for (i, slot) in self.slots.iter().enumerate().skip(from) {
            match slot.get() {
                Some(known) if **known == *name => return i as u8,
                Some(_) => continue,
                None => {
                    let _ = slot.set(name.into());
                    return i as u8;
                }
            }
        }
        OVERFLOW
    }

    fn name(&self, id: u8) -> &str {
        self.slots
            .get(id as usize)
            .and_then(|slot| slot.get())
            .map_or("other", |name| name)
    }
}

/// A queued observation: owned, small, names as indices.
#[derive(Debug)]
enum Queued {
    ChannelOpened {
        channel: u8,
        capacity: usize,
    },
    PeerConnected(Direction),
    PeerRefused,
    PeerDisconnected(DisconnectReason),
    EventSent {
        channel: u8,
        queued: usize,
        capacity: usize,
    },
    Message(MessageKind),
    /// The only case that allocates: an inv's items are copied, since the node's buffer is
    /// borrowed. The queue bounds how many such copies exist.
    Inv(Box<[InventoryItem]>),
    EventReceived {
        subscriber: u8,
        latency: Duration,
    },
    SubscriberLagged {
        subscriber: u8,
        skipped: u64,
    },
    InvDropped,
    BlockAccepted {
        hash: [u8; 32],
        height: u64,
        received: Option<Duration>,
        delivered: Option<Duration>,
        propagation: Duration,
    },
    BlockOrphaned,
    ChainReorganized(u32),
    ResourceSample {
        resident_memory_bytes: u64,
        cpu_seconds_total: f64,
    },
}

impl Queued {
    fn new(observation: &Observation<'_>, names: &Names) -> Queued {
        match *observation {
            Observation::ChannelOpened { channel, capacity } => Queued::ChannelOpened {
                channel: names.id(channel),
                capacity,
            },
            Observation::PeerConnected { direction } => Queued::PeerConnected(direction),
            Observation::PeerRefused => Queued::PeerRefused,
            Observation::PeerDisconnected { reason } => Queued::PeerDisconnected(reason),
            Observation::EventSent {
                channel,
                queued,
                capacity,
            } => Queued::EventSent {
                channel: names.id(channel),
                queued,
                capacity,
            },
            Observation::MessageEmitted {
                kind,
                inventory: [],
            } => Queued::Message(kind),
            // More items than a record may carry (the protocol's own cap, so only from a node
            // that does not enforce it): the first MAX_ITEMS stand for the message.
            Observation::MessageEmitted { inventory, .. } => {
                Queued::Inv(inventory[..inventory.len().min(MAX_ITEMS)].into())
            }
            Observation::EventReceived {
                subscriber,
                latency,
            } => Queued::EventReceived {
                subscriber: names.id(subscriber),
                latency,
            },
            Observation::SubscriberLagged {
                subscriber,
                skipped,
            } => Queued::SubscriberLagged {
                subscriber: names.id(subscriber),
                skipped,
            },
            Observation::InvDropped => Queued::InvDropped,
            Observation::BlockAccepted {
                hash,
                height,
                received,
                delivered,
                propagation,
            } => Queued::BlockAccepted {
                hash,
                height,
                received,
                delivered,
                propagation,
            },
            Observation::BlockOrphaned => Queued::BlockOrphaned,
            Observation::ChainReorganized { depth } => Queued::ChainReorganized(depth),
            Observation::ResourceSample {
                resident_memory_bytes,
                cpu_seconds_total,
            } => Queued::ResourceSample {
                resident_memory_bytes,
                // JSON has no NaN; a negative or non-finite sample is a node bug, sent as 0.
                cpu_seconds_total: if cpu_seconds_total.is_finite() && cpu_seconds_total >= 0.0 {
                    cpu_seconds_total
                } else {
                    0.0
                },
            },
        }
    }

    fn observation<'a>(&'a self, names: &'a Names) -> Observation<'a> {
        match self {
            Queued::ChannelOpened { channel, capacity } => Observation::ChannelOpened {
                channel: names.name(*channel),
                capacity: *capacity,
            },
            Queued::PeerConnected(direction) => Observation::PeerConnected {
                direction: *direction,
            },
            Queued::PeerRefused => Observation::PeerRefused,
            Queued::PeerDisconnected(reason) => Observation::PeerDisconnected { reason: *reason },
            Queued::EventSent {
                channel,
                queued,
                capacity,
            } => Observation::EventSent {
                channel: names.name(*channel),
                queued: *queued,
                capacity: *capacity,
            },
            Queued::Message(kind) => Observation::MessageEmitted {
                kind: *kind,
                inventory: &[],
            },
            Queued::Inv(items) => Observation::MessageEmitted {
                kind: MessageKind::Inv,
                inventory: items,
            },
            Queued::EventReceived {
                subscriber,
                latency,
            } => Observation::EventReceived {
                subscriber: names.name(*subscriber),
                latency: *latency,
            },
            Queued::SubscriberLagged {
                subscriber,
                skipped,
            } => Observation::SubscriberLagged {
                subscriber: names.name(*subscriber),
                skipped: *skipped,
            },
            Queued::InvDropped => Observation::InvDropped,
            Queued::BlockAccepted {
                hash,
                height,
                received,
                delivered,
                propagation,
            } => Observation::BlockAccepted {
                hash: *hash,
                height: *height,
                received: *received,
                delivered: *delivered,
                propagation: *propagation,
            },
            Queued::BlockOrphaned => Observation::BlockOrphaned,
            Queued::ChainReorganized(depth) => Observation::ChainReorganized { depth: *depth },
            Queued::ResourceSample {
                resident_memory_bytes,
                cpu_seconds_total,
            } => Observation::ResourceSample {
                resident_memory_bytes: *resident_memory_bytes,
                cpu_seconds_total: *cpu_seconds_total,
            },
        }
    }
}

/// How an observation moves the peer count; used to keep `peers` in `hello`/`stats` right even
/// for records that were dropped.
fn peer_delta(observation: &Observation<'_>) -> i64 {
    match observation {
        Observation::PeerConnected { .. } => 1,
        Observation::PeerDisconnected { .. } => -1,
        _ => 0,
    }
}

struct Shared {
    queue: mpsc::Sender<(u64, Queued)>,
    origin: Instant,
    names: Names,
    dropped: AtomicU64,
    /// Peer-count effect of dropped records: they never reach the writer, which counts the rest.
    dropped_peer_delta: AtomicI64,
    dequeued: AtomicU64,
    written: AtomicU64,
    lost: AtomicU64,
    connected: AtomicBool,
}

/// The node's handle on the tap. Cheap to clone; implements [`Observer`], so the node can hand it
/// to its router. The writer task stops when the last handle is dropped, after writing what is
/// queued if the sidecar is there to take it.
#[derive(Clone)]
pub struct TapClient {
    shared: Arc<Shared>,
}

impl TapClient {
    /// Starts a client with the default settings for `endpoint` and returns at once; the
    /// connection is made in the background. Call inside a tokio runtime.
    pub fn connect(endpoint: impl Into<Endpoint>) -> TapClient {
        TapClient::with_config(TapConfig::new(endpoint))
    }

    /// Like [`TapClient::connect`] with every knob. Panics outside a tokio runtime.
    pub fn with_config(config: TapConfig) -> TapClient {
        Self::spawn_on(config, &tokio::runtime::Handle::current())
    }

    /// Runs the writer on `runtime`, for a node that calls this from outside its runtime.
    #[allow(
        clippy::disallowed_methods,
        reason = "records are stamped on the OS clock: observe() runs on the node's threads, in or out of a runtime, so a paused tokio clock would mix two clocks in one stream"
    )]
    pub fn spawn_on(config: TapConfig, runtime: &tokio::runtime::Handle) -> TapClient {
        let (queue, receiver) = mpsc::channel(config.queue_capacity.max(1));
        let shared = Arc::new(Shared {
            queue,
            origin: Instant::now(),
            names: Names::new(),
            dropped: AtomicU64::new(0),
            dropped_peer_delta: AtomicI64::new(0),
            dequeued: AtomicU64::new(0),
            written: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            connected: AtomicBool::new(false),
        });
        let writer = Writer::new(config, Arc::downgrade(&shared), receiver);
        runtime.spawn(writer.run());
        TapClient { shared }
    }

    /// Never blocks and never waits: a record goes on the queue or, when it is full, is dropped
    /// and counted.
    #[inline]
    pub fn observe(&self, observation: Observation<'_>) {
        let shared = &*self.shared;
        match shared.queue.try_reserve() {
            Ok(permit) => {
                let t = shared.origin.elapsed().as_nanos() as u64;
                permit.send((t, Queued::new(&observation, &shared.names)));
            }
            Err(_) => shared.dropped(&observation),
        }
    }

    pub fn stats(&self) -> ClientStats {
        let s = &*self.shared;
        let dropped = s.dropped.load(Ordering::Relaxed);
        let dequeued = s.dequeued.load(Ordering::Relaxed);
        let written = s.written.load(Ordering::Relaxed);
        let lost = s.lost.load(Ordering::Relaxed);
        let queued = (s.queue.max_capacity() - s.queue.capacity()) as u64;
        ClientStats {
            produced: dropped + dequeued + queued,
            dropped,
            written,
            lost,
            in_flight: dequeued.saturating_sub(written + lost),
        }
    }

    /// Whether the writer holds a connection to the sidecar right now.
    pub fn is_connected(&self) -> bool {
        self.shared.connected.load(Ordering::Relaxed)
    }
}

impl Shared {
    #[cold]
    fn dropped(&self, observation: &Observation<'_>) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
        let delta = peer_delta(observation);
        if delta != 0 {
            self.dropped_peer_delta.fetch_add(delta, Ordering::Relaxed);
        }
    }
}

impl Observer for TapClient {
    fn observe(&self, observation: Observation<'_>) {
        TapClient::observe(self, observation)
    }
}

/// Capped exponential backoff with "equal jitter": each delay is drawn from [d/2, d].
struct Backoff {
    min: Duration,
    max: Duration,
    attempt: u32,
    rng: u64,
}

impl Backoff {
    fn next(&mut self) -> Duration {
        let ceiling = self
            .min
            .saturating_mul(1u32 << self.attempt.min(20))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        // SplitMix64: jitter needs spread, not cryptographic quality.
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        let fraction = ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64;
        ceiling.mul_f64(0.5 + fraction / 2.0)
    }

    fn reset(&mut self) {
        self.attempt = 0;
    }
}

fn random_u64() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    hasher.write_u32(std::process::id());
    hasher.finish()
}

/// Write buffer flushed at this size, or when the queue is momentarily empty.
const FLUSH_BYTES: usize = 64 * 1024;

struct Writer {
    config: TapConfig,
    shared: std::sync::Weak<Shared>,
    receiver: mpsc::Receiver<(u64, Queued)>,
    session: String,
    backoff: Backoff,
    origin: Instant,
    /// Peer-count effect of the records taken off the queue.
    dequeued_peer_delta: i64,
    buffer: Vec<u8>,
    /// Records encoded in `buffer`.
    buffered: u64,
}

type Stream = Box<dyn AsyncWrite + Send + Unpin>;

impl Writer {
    #[allow(
        clippy::disallowed_methods,
        reason = "the OS clock, as TapClient::spawn_on's origin"
    )]
    fn new(
        config: TapConfig,
        shared: std::sync::Weak<Shared>,
        receiver: mpsc::Receiver<(u64, Queued)>,
    ) -> Writer {
        let seed = random_u64();
        let origin = shared.upgrade().map_or_else(Instant::now, |s| s.origin);
        Writer {
            backoff: Backoff {
                min: config.backoff_min,
                max: config.backoff_max.max(config.backoff_min),
                attempt: 0,
                rng: seed,
            },
            session: format!("{seed:016x}"),
            config,
            shared,
            receiver,
            origin,
            dequeued_peer_delta: 0,
            buffer: Vec::with_capacity(FLUSH_BYTES + 4096),
            buffered: 0,
        }
    }

    async fn run(mut self) {
        loop {
            let stream = match connect(&self.config.endpoint).await {
                Ok(stream) => stream,
                Err(_) => {
                    // Nothing more will come and nobody is there to take what is queued.
                    if self.shared.strong_count() == 0 {
                        return;
                    }
                    tokio::time::sleep(self.backoff.next()).await;
                    continue;
                }
            };
            self.backoff.reset();
            self.set_connected(true);
            let finished = self.serve(stream).await;
            self.set_connected(false);
            if finished {
                return;
            }
        }
    }

    fn set_connected(&self, connected: bool) {
        if let Some(shared) = self.shared.upgrade() {
            shared.connected.store(connected, Ordering::Relaxed);
        }
    }

    /// Writes until the connection fails (returns false) or every handle is gone and the queue is
    /// written (returns true).
    async fn serve(&mut self, mut stream: Stream) -> bool {
        let peers = self.peers();
        let token = self.config.token.clone();
        self.push_control(Body::Hello {
            session: Cow::Borrowed(&self.session.clone()),
            client: Cow::Borrowed(concat!("p2p-tap/", env!("CARGO_PKG_VERSION"))),
            token: token.as_deref().map(Cow::Borrowed),
            peers,
        });
        if self.flush(&mut stream).await.is_err() {
            return false;
        }
        let mut ticker = tokio::time::interval(self.config.stats_every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            tokio::select! {
                biased;
                next = self.receiver.recv() => match next {
                    Some((t, queued)) => {
                        self.encode(t, &queued);
                        let due = self.buffer.len() >= FLUSH_BYTES || self.receiver.is_empty();
                        if due && self.flush(&mut stream).await.is_err() {
                            return false;
                        }
                    }
                    None => {
                        self.push_stats();
                        let _ = self.flush(&mut stream).await;
                        let _ = stream.shutdown().await;
                        return true;
                    }
                },
                _ = ticker.tick() => {
                    if self.config.sample_resources {
                        if let Some((memory, cpu)) = crate::resources::read_self() {
                            self.push_control(Body::ResourceSample {
                                resident_memory_bytes: memory,
                                cpu_seconds_total: cpu,
                            });
                        }
                    }
                    self.push_stats();
                    if self.flush(&mut stream).await.is_err() {
                        return false;
                    }
                }
            }
        }
    }

    fn encode(&mut self, t: u64, queued: &Queued) {
        let Some(shared) = self.shared.upgrade() else {
            // Only during teardown: names are gone with the last handle; encode without them.
            return self.encode_with(t, queued, &Names::new());
        };
        self.encode_with(t, queued, &shared.names);
        shared.dequeued.fetch_add(1, Ordering::Relaxed);
    }

    fn encode_with(&mut self, t: u64, queued: &Queued, names: &Names) {
        let observation = queued.observation(names);
        self.dequeued_peer_delta += peer_delta(&observation);
        let record = Record {
            v: wire::VERSION,
            t,
            body: Body::from_observation(&observation),
        };
        wire::encode_into(&record, &mut self.buffer);
        self.buffered += 1;
    }

    fn push_control(&mut self, body: Body<'_>) {
        let record = Record {
            v: wire::VERSION,
            t: self.origin.elapsed().as_nanos() as u64,
            body,
        };
        wire::encode_into(&record, &mut self.buffer);
    }

    fn push_stats(&mut self) {
        let (produced, dropped, lost) = match self.shared.upgrade() {
            Some(s) => {
                let dropped = s.dropped.load(Ordering::Relaxed);
                let dequeued = s.dequeued.load(Ordering::Relaxed);
                (dequeued + dropped, dropped, s.lost.load(Ordering::Relaxed))
            }
            None => return,
        };
        let peers = self.peers();
        self.push_control(Body::Stats {
            produced,
            dropped,
            lost,
            peers,
        });
    }

    fn peers(&self) -> u64 {
        let dropped = self
            .shared
            .upgrade()
            .map_or(0, |s| s.dropped_peer_delta.load(Ordering::Relaxed));
        (self.dequeued_peer_delta + dropped).max(0) as u64
    }

    async fn flush(&mut self, stream: &mut Stream) -> std::io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let result = async {
            stream.write_all(&self.buffer).await?;
            stream.flush().await
        }
        .await;
        if let Some(shared) = self.shared.upgrade() {
            let counter = if result.is_ok() {
                &shared.written
            } else {
                &shared.lost
            };
            counter.fetch_add(self.buffered, Ordering::Relaxed);
        }
        self.buffer.clear();
        self.buffered = 0;
        result
    }
}

async fn connect(endpoint: &Endpoint) -> std::io::Result<Stream> {
    match endpoint {
        #[cfg(unix)]
        Endpoint::Unix(path) => Ok(Box::new(tokio::net::UnixStream::connect(path).await?)),
        #[cfg(not(unix))]
        Endpoint::Unix(_) => Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "Unix sockets need a Unix system",
        )),
        Endpoint::Tcp(address) => {
            let stream = tokio::net::TcpStream::connect(address).await?;
            // Records are batched already; waiting for more would only add latency.
            stream.set_nodelay(true)?;
            Ok(Box::new(stream))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_as_paths_or_addresses() {
        assert_eq!(
            Endpoint::parse("127.0.0.1:9731"),
            Endpoint::Tcp(SocketAddr::from(([127, 0, 0, 1], 9731)))
        );
        assert_eq!(
            Endpoint::parse("/run/p2p/tap.sock"),
            Endpoint::Unix("/run/p2p/tap.sock".into())
        );
        assert_eq!(
            Endpoint::parse("unix:127.0.0.1:1"),
            Endpoint::Unix("127.0.0.1:1".into())
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter_in_the_upper_half() {
        let mut backoff = Backoff {
            min: Duration::from_millis(100),
            max: Duration::from_secs(2),
            attempt: 0,
            rng: 7,
        };
        for ceiling_ms in [100, 200, 400, 800, 1600, 2000, 2000, 2000] {
            let delay = backoff.next();
            let ceiling = Duration::from_millis(ceiling_ms);
            assert!(
                delay <= ceiling && delay >= ceiling / 2,
                "{delay:?} vs {ceiling:?}"
            );
        }
        backoff.reset();
        assert!(backoff.next() <= Duration::from_millis(100));
    }

    #[test]
    fn names_are_interned_once_and_bounded() {
        let names = Names::new();
        assert_eq!(names.id("events"), 0);
        assert_eq!(names.id("consumer"), 1);
        assert_eq!(names.id("events"), 0);
        for i in 0..MAX_NAMES {
            names.id(&format!("n{i}"));
        }
        assert_eq!(names.id("one_too_many"), OVERFLOW);
        assert_eq!(names.name(OVERFLOW), "other");
        assert_eq!(names.name(1), "consumer");
    }
}
