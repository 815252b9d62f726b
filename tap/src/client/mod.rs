//! The node's handle on the tap: [`Tap`]. Counts live here as relaxed atomics; a writer thread
//! sends them to the sidecar as cumulative snapshots, with the detail buffer between.

mod config;
mod writer;

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use p2p_observe::{Direction, DisconnectReason, InvType, InventoryItem, MessageKind};

pub use config::{read_token_file, Endpoint, TapConfig};

use crate::announced::Announced;
use crate::channel::{self, ChannelShared, ChannelTap, Clock, SubscriberShared, SubscriberTap};
use crate::histogram::{AtomicHistogram, PROPAGATION_BOUNDS_NS};
use crate::journal::{JournalCounts, Shard};
use crate::protocol::{BlockCounts, DetailCounts, Journey, PeerCounts, Snapshot};

/// An inventory item as the node holds it; implement it for the node's own type so the tap reads
/// the items in place (no copy into the tap's type on the hot path).
pub trait TapItem {
    fn inv_type(&self) -> InvType;
    fn hash(&self) -> &[u8; 32];
}

impl TapItem for InventoryItem {
    fn inv_type(&self) -> InvType {
        self.kind
    }

    fn hash(&self) -> &[u8; 32] {
        &self.hash
    }
}

/// Block journeys held for the writer; past it they are dropped and counted.
const JOURNEYS: usize = 1024;

/// The ring of the shard shared by threads whose thread-locals are already destroyed.
const FALLBACK_RING_BYTES: usize = 4096;

/// Tells taps apart in a thread's shard list (several may live in one process): never reused,
/// unlike an address.
static NEXT_TAP_ID: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// This thread's shard of each tap it reported to, by tap id.
    static SHARDS: RefCell<Vec<(u64, Arc<Shard>)>> = const { RefCell::new(Vec::new()) };
    /// The shard this thread used last and its tap's id, for the hot path: one load and a
    /// comparison. It has no destructor, so it stays readable while the thread exits.
    static LAST_SHARD: Cell<(u64, *const Shard)> = const { Cell::new((u64::MAX, std::ptr::null())) };
}

pub(crate) struct Shared {
    id: u64,
    pub(crate) session: u64,
    pub(crate) clock: Arc<Clock>,
    channels: Mutex<Vec<Arc<ChannelShared>>>,
    subscribers: Mutex<Vec<Arc<SubscriberShared>>>,
    /// One per thread that reported a message, each written by its thread alone; a thread that
    /// exits leaves its shard (and counts) here.
    pub(crate) shards: Mutex<Vec<Arc<Shard>>>,
    ring_bytes: usize,
    /// For a thread whose thread-locals are already destroyed (a call from another
    /// thread-local's destructor): shared, so written under `fallback_lock`.
    fallback: Arc<Shard>,
    fallback_lock: Mutex<()>,
    inbound: AtomicU64,
    outbound: AtomicU64,
    disconnected: [AtomicU64; DisconnectReason::ALL.len()],
    refused: AtomicU64,
    accepted: AtomicU64,
    unannounced: AtomicU64,
    orphaned: AtomicU64,
    reorgs: AtomicU64,
    reorg_depth: AtomicU64,
    reorgs_unknown_depth: AtomicU64,
    propagation: AtomicHistogram,
    announced: Announced,
    pub(crate) journeys: Mutex<VecDeque<Journey>>,
    journeys_total: AtomicU64,
    journeys_dropped: AtomicU64,
    snapshots: AtomicU64,
}

impl Shared {
    fn new(detail_buffer_bytes: usize) -> Shared {
        let zero = || AtomicU64::new(0);
        // Used only by calls from a thread's teardown: a small ring (its drops are counted).
        let fallback = Arc::new(Shard::new(FALLBACK_RING_BYTES));
        let session = random_session();
        Shared {
            id: NEXT_TAP_ID.fetch_add(1, Ordering::Relaxed),
            session,
            clock: Arc::new(Clock::new()),
            channels: Mutex::new(Vec::new()),
            subscribers: Mutex::new(Vec::new()),
            shards: Mutex::new(vec![Arc::clone(&fallback)]),
            ring_bytes: detail_buffer_bytes,
            fallback,
            fallback_lock: Mutex::new(()),
            inbound: zero(),
            outbound: zero(),
            disconnected: std::array::from_fn(|_| zero()),
            refused: zero(),
            accepted: zero(),
            unannounced: zero(),
            orphaned: zero(),
            reorgs: zero(),
            reorg_depth: zero(),
            reorgs_unknown_depth: zero(),
            propagation: AtomicHistogram::new(PROPAGATION_BOUNDS_NS),
            announced: Announced::new(|i| random_session() ^ session.rotate_left(i as u32)),
            journeys: Mutex::new(VecDeque::new()),
            journeys_total: zero(),
            journeys_dropped: zero(),
            snapshots: zero(),
        }
    }

    /// Runs `f` on this thread's shard, registering it on first use. The shard is this
    /// thread's alone, so `f` may write its counts without read-modify-write.
    #[inline]
    fn with_shard<R>(&self, f: impl FnOnce(&Shard) -> R) -> R {
        let (id, shard) = LAST_SHARD.get();
        if id == self.id {
            // SAFETY: the shard was pushed to this tap's list (ids are never reused, so `self` is
            // that tap), which holds it until the tap itself is dropped.
            return f(unsafe { &*shard });
        }
        self.with_shard_slow(f)
    }

    /// Another tap than the last this thread used, or its first report.
    #[cold]
    fn with_shard_slow<R>(&self, f: impl FnOnce(&Shard) -> R) -> R {
        let own = SHARDS.try_with(|shards| {
            let mut shards = shards.try_borrow_mut().ok()?;
            if let Some((_, shard)) = shards.iter().find(|(id, _)| *id == self.id) {
                return Some(Arc::clone(shard));
            }
            // Shards of taps that are gone are held by this list alone.
            shards.retain(|(_, shard)| Arc::strong_count(shard) > 1);
            let shard = Arc::new(Shard::new(self.ring_bytes));
            lock(&self.shards).push(Arc::clone(&shard));
            shards.push((self.id, Arc::clone(&shard)));
            Some(shard)
        });
        match own {
            Ok(Some(shard)) => {
                LAST_SHARD.set((self.id, Arc::as_ptr(&shard)));
                f(&shard)
            }
            _ => {
                let _guard = lock(&self.fallback_lock);
                f(&self.fallback)
            }
        }
    }

    /// Runs `each` on every shard under the shard list's lock, so one caller at a time drains
    /// the rings (the writer thread, or a benchmark standing in for it).
    pub(crate) fn drain_journal(&self, mut each: impl FnMut(&Shard)) {
        for shard in lock(&self.shards).iter() {
            each(shard);
        }
    }

    /// Every count now; `sent`: a snapshot for the sidecar, which restarts the channels' peaks.
    /// Subscribers are read before channels, so `sent` is at least every subscriber's
    /// `received + lagged`, but for sends still between `Sender::send` and their count (a receiver
    /// can take an event before its send is counted).
    pub(crate) fn snapshot(&self, last: bool, sent: bool) -> Snapshot {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let subscribers = lock(&self.subscribers)
            .iter()
            .map(|s| s.snapshot())
            .collect();
        let channels = lock(&self.channels)
            .iter()
            .map(|c| c.snapshot(sent))
            .collect();
        let mut messages = vec![0; MessageKind::ALL.len()];
        let mut journal = JournalCounts::default();
        for shard in lock(&self.shards).iter() {
            shard.add_messages(&mut messages);
            shard.add_counts(&mut journal);
        }
        let detail = DetailCounts {
            entries: journal.entries,
            items: journal.items,
            dropped_entries: journal.dropped_entries,
            dropped_items: journal.dropped_items,
            journeys: load(&self.journeys_total),
            dropped_journeys: load(&self.journeys_dropped),
        };
        Snapshot {
            seq: self.snapshots.fetch_add(1, Ordering::Relaxed),
            uptime_ms: self.clock.origin.elapsed().as_millis() as u64,
            last,
            channels,
            subscribers,
            messages,
            // Every inv is a journal entry, written or dropped.
            inv_messages: detail.entries + detail.dropped_entries,
            inv_items: detail.items + detail.dropped_items,
            peers: {
                // Disconnections first: every one read has its connection already counted.
                let disconnected = self
                    .disconnected
                    .iter()
                    .map(|d| d.load(Ordering::SeqCst))
                    .collect();
                PeerCounts {
                    inbound: self.inbound.load(Ordering::SeqCst),
                    outbound: self.outbound.load(Ordering::SeqCst),
                    disconnected,
                    refused: load(&self.refused),
                }
            },
            blocks: BlockCounts {
                accepted: load(&self.accepted),
                unannounced: load(&self.unannounced),
                orphaned: load(&self.orphaned),
                reorgs: load(&self.reorgs),
                reorg_depth: load(&self.reorg_depth),
                reorgs_unknown_depth: load(&self.reorgs_unknown_depth),
                propagation: self.propagation.snapshot(),
            },
            detail,
            resources: None,
        }
    }
}

/// `name` as a label value the sidecar accepts (`[a-z][a-z0-9_]{0,31}`, not `other` or
/// `invalid`): lower-cased, other characters made `_`, a leading non-letter prefixed, cut to 32.
fn label_name(name: &str) -> String {
    let mut label: String = name
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '_'
            }
        })
        .collect();
    if !label.starts_with(|c: char| c.is_ascii_lowercase()) {
        label.insert(0, 'n');
    }
    label.truncate(32);
    if crate::protocol::is_plain_name(&label) {
        label
    } else {
        format!("{label}_")
    }
}

/// `base_n`, cut so the whole stays a label value.
fn suffixed(base: &str, n: u32) -> String {
    let suffix = format!("_{n}");
    let keep = 32usize.saturating_sub(suffix.len()).min(base.len());
    format!("{}{suffix}", &base[..keep])
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn random_session() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    // RandomState is seeded from the OS; mixing in the time and pid keeps two runs apart even
    // where it is not.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.write_u32(std::process::id());
    hasher.finish()
}

impl std::fmt::Debug for Tap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tap")
            .field("session", &self.shared.session)
            .finish_non_exhaustive()
    }
}

/// The node's handle on the tap. Create it where the router is built (inside a library is fine:
/// it needs no runtime), clone it to wherever the node reports, and keep one clone until
/// shutdown: when the last clone is dropped, the writer sends a final snapshot and stops.
#[derive(Clone)]
pub struct Tap {
    shared: Arc<Shared>,
    _owner: Arc<writer::Owner>,
}

impl Tap {
    /// Starts the writer thread for `config`; it connects in the background and never blocks the
    /// node.
    pub fn new(config: TapConfig) -> Tap {
        let shared = Arc::new(Shared::new(config.detail_buffer_bytes));
        let owner = writer::Owner::start(Arc::clone(&shared), Some(config));
        Tap {
            shared,
            _owner: Arc::new(owner),
        }
    }

    /// A tap that counts and sends nothing, for a node started without a sidecar.
    pub fn disabled() -> Tap {
        let shared = Arc::new(Shared::new(0));
        let owner = writer::Owner::start(Arc::clone(&shared), None);
        Tap {
            shared,
            _owner: Arc::new(owner),
        }
    }

    /// [`TapConfig::from_env`], or a disabled tap when `P2P_TAP_SOCKET` is unset.
    pub fn from_env() -> Tap {
        TapConfig::from_env().map_or_else(Tap::disabled, Tap::new)
    }

    /// The random id of this node run, as sent in every hello.
    pub fn session(&self) -> u64 {
        self.shared.session
    }

    /// The counts of the channel named `name` (the node's single channel is `events`), created
    /// on first use with `capacity` (rounded up to a power of two, as tokio does).
    pub fn channel(&self, name: &str, capacity: usize) -> ChannelTap {
        let name = label_name(name);
        let name = name.as_str();
        let mut channels = lock(&self.shared.channels);
        if let Some(existing) = channels.iter().find(|c| c.name == name) {
            return ChannelTap {
                shared: Arc::clone(existing),
            };
        }
        let shared = Arc::new(ChannelShared::new(
            name,
            capacity,
            Arc::clone(&self.shared.clock),
        ));
        channels.push(Arc::clone(&shared));
        ChannelTap { shared }
    }

    /// The counts of a subscriber of `channel` (the node's consumer loop is `consumer`), starting
    /// from now. Call right after `subscribe()`. `kind_of` names the message type of an event,
    /// for the service-time histograms (`None` for events that are not messages).
    ///
    /// A consumer loop that restarts under the same name takes up its predecessor's counts (they
    /// never go backwards). A second live subscriber under a name in use is reported as
    /// `name_2`, `name_3`, ..., and a name that cannot be a label value is made into one, so no
    /// snapshot is refused for it.
    pub fn subscriber<T>(
        &self,
        channel: &ChannelTap,
        name: &str,
        kind_of: fn(&T) -> Option<MessageKind>,
    ) -> SubscriberTap<T> {
        let base = label_name(name);
        let mut subscribers = lock(&self.shared.subscribers);
        let same_channel = |s: &&Arc<SubscriberShared>| s.channel == channel.shared.name;
        let mut candidate = base.clone();
        for n in 2.. {
            match subscribers
                .iter()
                .filter(same_channel)
                .find(|s| s.name == candidate)
            {
                None => break,
                Some(existing) if !existing.active.load(Ordering::Acquire) => {
                    let holds_queue = channel::resume_subscriber(existing, &channel.shared);
                    return SubscriberTap::new(
                        Arc::clone(existing),
                        Arc::clone(&channel.shared),
                        kind_of,
                        holds_queue,
                    );
                }
                Some(_) => candidate = suffixed(&base, n),
            }
        }
        let (shared, holds_queue) = channel::subscriber_shared(&candidate, &channel.shared);
        subscribers.push(Arc::clone(&shared));
        SubscriberTap::new(shared, Arc::clone(&channel.shared), kind_of, holds_queue)
    }

    /// A peer emitted a message; `inventory` holds an inv's items (empty otherwise). Counts it,
    /// and copies an inv's items into the detail buffer for the duplicate tracker.
    #[inline]
    pub fn message<I: TapItem>(&self, kind: MessageKind, inventory: &[I]) {
        let s = &*self.shared;
        if kind != MessageKind::Inv {
            s.with_shard(|shard| shard.message(kind));
            return;
        }
        let at_ms = s.clock.coarse_ms.load(Ordering::Relaxed);
        s.with_shard(|shard| {
            shard.message(kind);
            shard.inv(at_ms, inventory);
            for item in inventory {
                if item.inv_type() == InvType::Block {
                    let block = crate::announced::words(item.hash());
                    if shard.new_block(&block) {
                        s.announced.announce(&block, &s.clock);
                    }
                }
            }
        });
    }

    /// A message without inventory: [`Tap::message`] with an empty item list, which needs no
    /// item type spelled out.
    #[inline]
    pub fn count_message(&self, kind: MessageKind) {
        self.message::<InventoryItem>(kind, &[]);
    }

    /// A peer completed its handshake and was registered.
    pub fn peer_connected(&self, direction: Direction) {
        match direction {
            Direction::Inbound => &self.shared.inbound,
            Direction::Outbound => &self.shared.outbound,
        }
        .fetch_add(1, Ordering::SeqCst);
    }

    /// A registration was refused (the router was full).
    pub fn peer_refused(&self) {
        self.shared.refused.fetch_add(1, Ordering::Relaxed);
    }

    /// A registered peer went away; [`DisconnectReason::classify`] reduces the node's text.
    pub fn peer_disconnected(&self, reason: DisconnectReason) {
        // SeqCst with the connections' adds and the snapshot's loads: a snapshot never sees a
        // disconnection without the connection before it.
        self.shared.disconnected[reason as usize].fetch_add(1, Ordering::SeqCst);
    }

    /// The node connected a block to its chain (best chain or a side branch). Its propagation is
    /// measured from the first inv that announced it, when one did.
    pub fn block_accepted(&self, hash: &[u8; 32], height: u64) {
        let s = &*self.shared;
        s.accepted.fetch_add(1, Ordering::Relaxed);
        let first_seen = s.announced.first_seen_ns(hash);
        let propagation_ns = first_seen.map(|at| s.clock.now_ns().saturating_sub(at));
        match propagation_ns {
            Some(ns) => s.propagation.observe_ns(ns),
            None => {
                s.unannounced.fetch_add(1, Ordering::Relaxed);
            }
        }
        s.journeys_total.fetch_add(1, Ordering::Relaxed);
        let mut journeys = lock(&s.journeys);
        if journeys.len() >= JOURNEYS {
            s.journeys_dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        journeys.push_back(Journey {
            hash: *hash,
            height,
            propagation_ns,
        });
    }

    /// A block that does not connect to any known chain (its parent is unknown).
    pub fn block_orphaned(&self) {
        self.shared.orphaned.fetch_add(1, Ordering::Relaxed);
    }

    /// The best chain switched branches, undoing `depth` blocks (`None` when the node does not
    /// know how many).
    pub fn chain_reorganized(&self, depth: Option<u32>) {
        let s = &*self.shared;
        s.reorgs.fetch_add(1, Ordering::Relaxed);
        match depth {
            Some(depth) => s.reorg_depth.fetch_add(depth as u64, Ordering::Relaxed),
            None => s.reorgs_unknown_depth.fetch_add(1, Ordering::Relaxed),
        };
    }

    /// Takes the detail buffer's journal entries (what the writer does every `flush_every`), for
    /// a benchmark standing in for the writer; `buffer` must be empty and receives the entries.
    pub fn take_detail(&self, buffer: &mut Vec<u8>) {
        self.shared.drain_journal(|shard| shard.drain(buffer));
    }

    /// Every count now, as the next snapshot would carry them (for tests and a node's own logs).
    /// Reading it leaves the peak the sidecar will get untouched.
    pub fn snapshot(&self) -> Snapshot {
        self.shared.snapshot(false, false)
    }

    /// Sends a final snapshot and stops the writer, waiting up to `timeout` for the sidecar to
    /// take it. Dropping the last clone does the same, waiting up to `write_timeout` plus two
    /// flush periods (one blocked write, then the final snapshot).
    pub fn shutdown(&self, timeout: Duration) {
        self._owner.shutdown(timeout);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::broadcast;

    #[test]
    fn a_restarted_consumer_continues_its_counts_and_a_second_live_one_gets_its_own_name() {
        let tap = Tap::disabled();
        let channel = tap.channel("events", 64);
        let (sender, mut receiver) = broadcast::channel(64);
        let mut first = tap.subscriber(&channel, "consumer", |_: &u8| None);
        for _ in 0..5 {
            channel.send(&sender, 1u8).unwrap();
            first.after_try_recv(&receiver.try_recv());
        }
        let mut second = tap.subscriber(&channel, "consumer", |_: &u8| None);
        let mut second_receiver = sender.subscribe();
        channel.send(&sender, 2u8).unwrap();
        second.after_try_recv(&second_receiver.try_recv());
        drop(first);
        // The loop restarts: the same name takes up where it was, so nothing goes backwards.
        let mut restarted = tap.subscriber(&channel, "consumer", |_: &u8| None);
        let mut restarted_receiver = sender.subscribe();
        channel.send(&sender, 3u8).unwrap();
        restarted.after_try_recv(&restarted_receiver.try_recv());
        let snapshot = tap.snapshot();
        let counts: Vec<_> = snapshot
            .subscribers
            .iter()
            .map(|s| (s.name.as_str(), s.received))
            .collect();
        assert_eq!(counts, [("consumer", 6), ("consumer_2", 1)]);
        // Names that cannot be label values are made into ones, so no snapshot is refused.
        let odd = tap.channel("Peer-Events", 8);
        let _subscriber = tap.subscriber(&odd, "10.0.0.1:8333", |_: &u8| None);
        let snapshot = tap.snapshot();
        assert_eq!(snapshot.channels[1].name, "peer_events");
        assert_eq!(snapshot.subscribers[2].name, "n10_0_0_1_8333");
        assert_eq!(snapshot.check(None), Ok(()));
    }

    /// A sidecar that accepts and closes at once (a wrong token, another node connected) is
    /// retried with a growing backoff, not on every writer tick.
    #[test]
    #[allow(
        clippy::disallowed_methods,
        reason = "counts the writer thread's real attempts over a real second and a half"
    )]
    fn connections_that_end_at_once_are_retried_with_backoff() {
        let dir = std::env::temp_dir().join(format!("p2p-tap-backoff-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("tap.sock");
        let _ = std::fs::remove_file(&socket);
        let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        listener.set_nonblocking(true).unwrap();
        let tap = Tap::new(TapConfig::new(socket.clone()));
        let mut accepted = 0;
        let window = std::time::Duration::from_millis(1500);
        let started = std::time::Instant::now();
        while started.elapsed() < window {
            match listener.accept() {
                Ok((stream, _)) => {
                    accepted += 1;
                    drop(stream);
                }
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(5)),
            }
        }
        drop(tap);
        // 50 ms doubling: about six attempts in 1.5 s; retrying every 50 ms tick would be ~30.
        assert!(
            (1..=10).contains(&accepted),
            "{accepted} connections in 1.5 s"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn reading_a_snapshot_on_the_node_leaves_the_sidecars_peak() {
        let tap = Tap::disabled();
        let channel = tap.channel("events", 64);
        let (sender, mut receiver) = broadcast::channel(64);
        let mut consumer = tap.subscriber(&channel, "consumer", |_: &u8| None);
        for _ in 0..50 {
            channel.send(&sender, 1u8).unwrap();
        }
        consumer.before_recv();
        consumer.after_try_recv(&receiver.try_recv());
        assert_eq!(tap.snapshot().channels[0].peak, 50);
        assert_eq!(tap.shared.snapshot(false, true).channels[0].peak, 50);
        assert_eq!(tap.snapshot().channels[0].peak, 49);
    }

    fn inv(n: u64) -> [InventoryItem; 2] {
        let mut tx = [0; 32];
        tx[..8].copy_from_slice(&n.to_le_bytes());
        [
            InventoryItem {
                kind: InvType::Transaction,
                hash: tx,
            },
            InventoryItem {
                kind: InvType::Block,
                hash: [(n % 7) as u8 + 1; 32],
            },
        ]
    }

    /// Threads that each report to two taps at once, while a consumer receives and snapshots are
    /// taken: every total is exact once they are done, including the counts of threads that have
    /// exited, and neither tap sees the other's.
    #[test]
    fn concurrent_threads_give_exact_totals_per_tap() {
        const THREADS: u64 = 4;
        const EACH: u64 = 20_000;
        let (a, b) = (Tap::disabled(), Tap::disabled());
        let channel = a.channel("events", 1024);
        let (sender, mut receiver) = broadcast::channel::<u64>(1024);
        let mut consumer = a.subscriber(&channel, "consumer", |_: &u64| Some(MessageKind::Ping));
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            let senders: Vec<_> = (0..THREADS)
                .map(|t| {
                    let (a, b, channel, sender) = (&a, &b, &channel, &sender);
                    scope.spawn(move || {
                        for i in 0..EACH {
                            a.message(MessageKind::Inv, &inv(t * EACH + i));
                            a.message::<InventoryItem>(MessageKind::Ping, &[]);
                            b.message::<InventoryItem>(MessageKind::Pong, &[]);
                            let _ = channel.send(sender, i);
                        }
                    })
                })
                .collect();
            scope.spawn(|| {
                let mut previous = 0;
                while !done.load(Ordering::Relaxed) {
                    let sent = a.snapshot().messages[MessageKind::Ping.index()];
                    assert!(sent >= previous, "a count went backwards");
                    previous = sent;
                }
            });
            for thread in senders {
                thread.join().unwrap();
            }
            done.store(true, Ordering::Relaxed);
        });
        loop {
            consumer.before_recv();
            let result = receiver.try_recv();
            consumer.after_try_recv(&result);
            if matches!(result, Err(broadcast::error::TryRecvError::Empty)) {
                break;
            }
        }
        let total = THREADS * EACH;
        let snapshot = a.snapshot();
        assert_eq!(snapshot.messages[MessageKind::Inv.index()], total);
        assert_eq!(snapshot.messages[MessageKind::Ping.index()], total);
        assert_eq!(snapshot.messages[MessageKind::Pong.index()], 0);
        assert_eq!(snapshot.inv_messages, total);
        assert_eq!(snapshot.inv_items, 2 * total);
        let detail = &snapshot.detail;
        assert_eq!(detail.entries + detail.dropped_entries, total);
        assert_eq!(detail.items + detail.dropped_items, 2 * total);
        assert_eq!(snapshot.channels[0].sent, total);
        let subscriber = &snapshot.subscribers[0];
        assert_eq!(subscriber.received + subscriber.lagged, total);
        let other = b.snapshot();
        assert_eq!(other.messages[MessageKind::Pong.index()], total);
        assert_eq!(other.messages.iter().sum::<u64>(), total);
        assert_eq!(other.inv_messages, 0);
    }

    /// The peak is the largest queue any send left, though subscribers keep it: ten sends
    /// before a receive, then a lag past a full channel.
    #[test]
    fn the_queue_peak_is_the_most_queued_after_a_send() {
        let tap = Tap::disabled();
        let channel = tap.channel("events", 16);
        let (sender, mut receiver) = broadcast::channel::<u64>(16);
        let mut consumer = tap.subscriber(&channel, "consumer", |_: &u64| None);
        let mut drain = |consumer: &mut SubscriberTap<u64>| loop {
            let result = receiver.try_recv();
            consumer.after_try_recv(&result);
            if matches!(result, Err(broadcast::error::TryRecvError::Empty)) {
                break;
            }
        };
        for i in 0..10 {
            let _ = channel.send(&sender, i);
        }
        drain(&mut consumer);
        let first = tap.shared.snapshot(false, true).channels[0].clone();
        assert_eq!((first.sent, first.queued, first.peak), (10, 0, 10));
        let _ = channel.send(&sender, 10);
        let second = tap.shared.snapshot(false, true).channels[0].clone();
        assert_eq!(
            (second.queued, second.peak),
            (1, 1),
            "the peak restarts at a snapshot"
        );
        for i in 0..40 {
            let _ = channel.send(&sender, i);
        }
        drain(&mut consumer);
        let third = tap.shared.snapshot(false, true);
        assert_eq!(third.channels[0].peak, 16, "at most the capacity");
        let subscriber = &third.subscribers[0];
        assert_eq!(subscriber.received + subscriber.lagged, 51);
    }
}
