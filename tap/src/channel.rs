//! A channel's and its subscribers' counts, kept beside the node's own
//! `tokio::sync::broadcast` channel without changing its type.
//!
//! The queue length is computed from counts, never from `Sender::len()` (which locks the tail and
//! searches the slots): each subscriber's position is what it received plus what it skipped, and
//! the queue is the events sent minus the slowest position, capped at the capacity (a lagging
//! receiver's skipped events are overwritten, not queued). Its peak is kept by the subscribers,
//! not the senders: the queue only grows between two receives, so its largest value after any
//! send is reached right before a receive (or a lag), where the subscriber compares the events
//! sent with its own position. A send costs one atomic add.
//!
//! Delivery latency uses a ring of send instants indexed by send sequence: a receiver knows the
//! sequence of the event it got from its own position. One event in [`SAMPLE_EVERY`] is timed, so
//! the clock is read on one send and two receives in 32.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use p2p_observe::MessageKind;
use tokio::sync::broadcast::{self, error::RecvError, error::SendError, error::TryRecvError};

use crate::histogram::{AtomicHistogram, DELIVERY_BOUNDS_NS, SERVICE_BOUNDS_NS};
use crate::protocol::{ChannelCounts, SubscriberCounts};

/// One event in this many is timed, for delivery latency and service time. Chosen by the event's
/// send sequence, so the sample is uniform and both ends agree on it without talking.
pub const SAMPLE_EVERY: u64 = 32;

/// Subscribers of one channel whose positions bound its queue; the node has one. Past this, a
/// subscriber still counts what it receives but does not hold the queue length up.
const MAX_SUBSCRIBERS: usize = 8;

/// A send instant in the ring, tagged with its sequence so a receiver never reads a stale slot.
struct Stamp {
    seq: AtomicU64,
    at_ns: AtomicU64,
}

pub(crate) struct ChannelShared {
    pub(crate) name: String,
    capacity: u64,
    sent: AtomicU64,
    unsubscribed: AtomicU64,
    peak: AtomicU64,
    ring: Box<[Stamp]>,
    subscribers: [OnceLock<Arc<SubscriberShared>>; MAX_SUBSCRIBERS],
    subscriber_slots: AtomicUsize,
    clock: Arc<Clock>,
}

/// The tap's time origin, and a coarse millisecond clock refreshed by timed sends and the writer,
/// so a journal entry is stamped without reading the clock.
///
/// Where the OS clock itself counts with the processor's time-stamp counter (Linux's `tsc`
/// clocksource, which the kernel picks only when the counter is invariant and in step across
/// cores), the tap reads the counter directly (about 12 ns here, against 35 ns for the OS clock
/// through the vDSO) and scales it by a rate measured against the OS clock over the tap's
/// lifetime: first after 20 ms, then again by the writer at every flush.
pub(crate) struct Clock {
    pub(crate) origin: Instant,
    pub(crate) coarse_ms: std::sync::atomic::AtomicU32,
    tsc: Option<Tsc>,
}

struct Tsc {
    /// The counter at `origin`.
    origin: u64,
    /// Nanoseconds per tick in 32.32 fixed point; 0 until measured.
    scale: AtomicU64,
}

/// How long the rate is measured over before the counter is used.
const CALIBRATE_AFTER_NS: u64 = 20_000_000;

#[cfg(target_arch = "x86_64")]
#[inline]
fn ticks() -> u64 {
    // SAFETY: `rdtsc` exists on every x86_64 processor and has no preconditions.
    unsafe { std::arch::x86_64::_rdtsc() }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline]
fn ticks() -> u64 {
    0
}

/// Whether the OS clock is the time-stamp counter (so reading the counter is reading it).
fn tsc_is_the_os_clock() -> bool {
    cfg!(all(target_arch = "x86_64", target_os = "linux"))
        && std::fs::read_to_string(
            "/sys/devices/system/clocksource/clocksource0/current_clocksource",
        )
        .is_ok_and(|source| source.trim() == "tsc")
}

impl Clock {
    #[allow(
        clippy::disallowed_methods,
        reason = "the tap runs on the node's threads and its own: send and receive instants are the OS clock's"
    )]
    pub(crate) fn new() -> Clock {
        let tsc = tsc_is_the_os_clock().then(|| Tsc {
            origin: ticks(),
            scale: AtomicU64::new(0),
        });
        Clock {
            origin: Instant::now(),
            coarse_ms: std::sync::atomic::AtomicU32::new(0),
            tsc,
        }
    }

    #[inline]
    pub(crate) fn now_ns(&self) -> u64 {
        let ns = match &self.tsc {
            Some(tsc) => match tsc.scale.load(Ordering::Relaxed) {
                0 => self.os_now_ns(),
                scale => {
                    let elapsed = u128::from(ticks().wrapping_sub(tsc.origin));
                    u64::try_from((elapsed * u128::from(scale)) >> 32).unwrap_or(u64::MAX)
                }
            },
            None => self.os_now_ns(),
        };
        self.coarse_ms
            .store((ns / 1_000_000) as u32, Ordering::Relaxed);
        ns
    }

    #[cold]
    fn os_now_ns(&self) -> u64 {
        let ns = self.calibrate();
        if ns != 0 {
            return ns;
        }
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Measures the counter's rate against the OS clock since the origin (the writer calls it at
    /// every flush, so the rate converges as the tap runs). Returns the OS clock's reading, or 0
    /// when there is no counter to measure or it is too early.
    pub(crate) fn calibrate(&self) -> u64 {
        let Some(tsc) = &self.tsc else {
            return 0;
        };
        let elapsed_ticks = ticks().wrapping_sub(tsc.origin);
        let ns = u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX);
        if ns < CALIBRATE_AFTER_NS || elapsed_ticks == 0 {
            return 0;
        }
        let scale = (u128::from(ns) << 32) / u128::from(elapsed_ticks);
        tsc.scale
            .store(u64::try_from(scale).unwrap_or(0), Ordering::Relaxed);
        ns
    }
}

impl ChannelShared {
    pub(crate) fn new(name: &str, capacity: usize, clock: Arc<Clock>) -> ChannelShared {
        // What the channel really holds: tokio rounds a broadcast channel's capacity up to a
        // power of two, and lags its receivers only past that.
        let capacity = capacity.max(1).next_power_of_two();
        // Every event still in the channel must have its stamp in the ring.
        let slots = (capacity as u64 / SAMPLE_EVERY + 1).next_power_of_two() as usize * 2;
        ChannelShared {
            name: name.to_owned(),
            capacity: capacity as u64,
            sent: AtomicU64::new(0),
            unsubscribed: AtomicU64::new(0),
            peak: AtomicU64::new(0),
            ring: (0..slots)
                .map(|_| Stamp {
                    seq: AtomicU64::new(u64::MAX),
                    at_ns: AtomicU64::new(0),
                })
                .collect(),
            subscribers: std::array::from_fn(|_| OnceLock::new()),
            subscriber_slots: AtomicUsize::new(0),
            clock,
        }
    }

    #[inline]
    fn sent_one(&self) {
        let seq = self.sent.fetch_add(1, Ordering::Relaxed);
        if seq.is_multiple_of(SAMPLE_EVERY) {
            self.stamp(seq);
        }
    }

    #[cold]
    fn stamp(&self, seq: u64) {
        let stamp = &self.ring[(seq / SAMPLE_EVERY) as usize % self.ring.len()];
        stamp.at_ns.store(self.clock.now_ns(), Ordering::Relaxed);
        stamp.seq.store(seq, Ordering::Release);
    }

    /// A subscriber at `position` is about to move past it: the queue it leaves behind (the
    /// events sent since) is a candidate for the peak.
    #[inline]
    fn backlog_at(&self, position: u64) {
        let queued = self
            .sent
            .load(Ordering::Relaxed)
            .saturating_sub(position)
            .min(self.capacity);
        if queued > self.peak.load(Ordering::Relaxed) {
            self.peak.fetch_max(queued, Ordering::Relaxed);
        }
    }

    #[inline]
    fn queued_after(&self, sent: u64) -> u64 {
        let slots = self.subscriber_slots.load(Ordering::Acquire);
        let slowest = self.subscribers[..slots.min(MAX_SUBSCRIBERS)]
            .iter()
            .filter_map(|slot| slot.get())
            .filter(|s| s.active.load(Ordering::Relaxed))
            .map(|s| s.position.load(Ordering::Relaxed))
            .min()
            .unwrap_or(sent);
        sent.saturating_sub(slowest).min(self.capacity)
    }

    fn sent_at_ns(&self, seq: u64) -> Option<u64> {
        let stamp = &self.ring[(seq / SAMPLE_EVERY) as usize % self.ring.len()];
        (stamp.seq.load(Ordering::Acquire) == seq).then(|| stamp.at_ns.load(Ordering::Relaxed))
    }

    /// The counts for a snapshot. With `restart_peak` (the snapshots the writer sends), the peak
    /// restarts from the current queue, so each snapshot's peak is its own period's.
    pub(crate) fn snapshot(&self, restart_peak: bool) -> ChannelCounts {
        let sent = self.sent.load(Ordering::Relaxed);
        let queued = self.queued_after(sent);
        let peak = if restart_peak {
            self.peak.swap(queued, Ordering::Relaxed)
        } else {
            self.peak.load(Ordering::Relaxed)
        }
        .max(queued);
        ChannelCounts {
            name: self.name.clone(),
            capacity: self.capacity,
            sent,
            unsubscribed: self.unsubscribed.load(Ordering::Relaxed),
            queued,
            peak,
        }
    }
}

/// The node's handle on one channel: call [`ChannelTap::send`] where the node calls
/// `Sender::send`. Cheap to clone.
#[derive(Clone)]
pub struct ChannelTap {
    pub(crate) shared: Arc<ChannelShared>,
}

impl std::fmt::Debug for ChannelTap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelTap")
            .field("name", &self.shared.name)
            .field("capacity", &self.shared.capacity)
            .finish_non_exhaustive()
    }
}

impl ChannelTap {
    /// Sends `event` on `sender` and counts it: as sent if it entered the channel, apart if the
    /// channel had no subscriber. Returns what `send` returned.
    #[inline]
    pub fn send<T>(&self, sender: &broadcast::Sender<T>, event: T) -> Result<usize, SendError<T>> {
        let result = sender.send(event);
        self.record_send(result.is_ok());
        result
    }

    /// Counts a send the node made itself: `entered` is `send(..).is_ok()`.
    #[inline]
    pub fn record_send(&self, entered: bool) {
        if entered {
            self.shared.sent_one();
        } else {
            self.shared.unsubscribed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

pub(crate) struct SubscriberShared {
    pub(crate) name: String,
    pub(crate) channel: String,
    position: AtomicU64,
    received: AtomicU64,
    lagged: AtomicU64,
    pub(crate) active: AtomicBool,
    /// Whether it has one of the channel's slots, so its position bounds the queue.
    holds_queue: bool,
    latency: AtomicHistogram,
    service: [AtomicHistogram; MessageKind::ALL.len()],
}

impl SubscriberShared {
    pub(crate) fn snapshot(&self) -> SubscriberCounts {
        SubscriberCounts {
            name: self.name.clone(),
            channel: self.channel.clone(),
            received: self.received.load(Ordering::Relaxed),
            lagged: self.lagged.load(Ordering::Relaxed),
            latency: self.latency.snapshot(),
            service: self.service.iter().map(|h| h.snapshot()).collect(),
        }
    }
}

/// Subscribes a subscriber's counts to `channel`, starting at the channel's current position
/// (where a receiver subscribed now starts).
pub(crate) fn subscriber_shared(
    name: &str,
    channel: &ChannelShared,
) -> (Arc<SubscriberShared>, bool) {
    let slot = channel.subscriber_slots.fetch_add(1, Ordering::AcqRel);
    let shared = Arc::new(SubscriberShared {
        name: name.to_owned(),
        channel: channel.name.clone(),
        position: AtomicU64::new(channel.sent.load(Ordering::Relaxed)),
        received: AtomicU64::new(0),
        lagged: AtomicU64::new(0),
        active: AtomicBool::new(true),
        holds_queue: slot < MAX_SUBSCRIBERS,
        latency: AtomicHistogram::new(DELIVERY_BOUNDS_NS),
        service: std::array::from_fn(|_| AtomicHistogram::new(SERVICE_BOUNDS_NS)),
    });
    if let Some(cell) = channel.subscribers.get(slot) {
        let _ = cell.set(Arc::clone(&shared));
    }
    (shared, slot < MAX_SUBSCRIBERS)
}

/// Takes up the counts of a subscriber that went away (a consumer loop restarted under the same
/// name): they continue from where they were, so they never go backwards, and the position
/// starts at the channel's current one, where a new receiver starts.
pub(crate) fn resume_subscriber(shared: &Arc<SubscriberShared>, channel: &ChannelShared) -> bool {
    shared
        .position
        .store(channel.sent.load(Ordering::Relaxed), Ordering::Relaxed);
    shared.active.store(true, Ordering::Release);
    shared.holds_queue
}

/// The consumer's handle: call [`SubscriberTap::recv`] instead of `Receiver::recv`. Owned by the
/// one task that receives, so its counts are written without read-modify-write.
pub struct SubscriberTap<T> {
    shared: Arc<SubscriberShared>,
    channel: Arc<ChannelShared>,
    kind_of: fn(&T) -> Option<MessageKind>,
    /// A timed event being served: its type and when `recv` returned it.
    serving: Option<(MessageKind, u64)>,
    /// Whether this subscriber's backlog counts toward the channel's queue peak.
    holds_queue: bool,
}

impl<T> SubscriberTap<T> {
    pub(crate) fn new(
        shared: Arc<SubscriberShared>,
        channel: Arc<ChannelShared>,
        kind_of: fn(&T) -> Option<MessageKind>,
        holds_queue: bool,
    ) -> SubscriberTap<T> {
        SubscriberTap {
            shared,
            channel,
            kind_of,
            serving: None,
            holds_queue,
        }
    }

    /// Receives from `receiver` and counts what came back: an event (and, for one in
    /// [`SAMPLE_EVERY`], its latency and the service time of the message before it), a lag of `n`
    /// skipped events, or the end of the channel.
    pub async fn recv(&mut self, receiver: &mut broadcast::Receiver<T>) -> Result<T, RecvError>
    where
        T: Clone,
    {
        self.before_recv();
        let result = receiver.recv().await;
        self.after_recv(&result);
        result
    }

    /// For a node that calls `recv` itself: call right before it.
    #[inline]
    pub fn before_recv(&mut self) {
        if let Some((kind, returned_ns)) = self.serving.take() {
            let now = self.channel.clock.now_ns();
            self.shared.service[kind.index()]
                .observe_ns_single_writer(now.saturating_sub(returned_ns));
        }
    }

    /// For a node that calls `recv` itself: call with what it returned.
    #[inline]
    pub fn after_recv(&mut self, result: &Result<T, RecvError>) {
        match result {
            Ok(event) => self.received(event),
            Err(RecvError::Lagged(skipped)) => self.lagged(*skipped),
            Err(RecvError::Closed) => {}
        }
    }

    /// For a node that calls `try_recv`: call with what it returned.
    #[inline]
    pub fn after_try_recv(&mut self, result: &Result<T, TryRecvError>) {
        match result {
            Ok(event) => self.received(event),
            Err(TryRecvError::Lagged(skipped)) => self.lagged(*skipped),
            Err(TryRecvError::Empty | TryRecvError::Closed) => {}
        }
    }

    #[inline]
    fn received(&mut self, event: &T) {
        let s = &*self.shared;
        let seq = s.position.load(Ordering::Relaxed);
        if self.holds_queue {
            self.channel.backlog_at(seq);
        }
        s.position.store(seq + 1, Ordering::Relaxed);
        s.received
            .store(s.received.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        if seq.is_multiple_of(SAMPLE_EVERY) {
            self.timed(seq, event);
        }
    }

    fn lagged(&mut self, skipped: u64) {
        let s = &*self.shared;
        let position = s.position.load(Ordering::Relaxed);
        if self.holds_queue {
            self.channel.backlog_at(position);
        }
        s.position.store(position + skipped, Ordering::Relaxed);
        s.lagged.store(
            s.lagged.load(Ordering::Relaxed) + skipped,
            Ordering::Relaxed,
        );
    }

    #[cold]
    fn timed(&mut self, seq: u64, event: &T) {
        let now = self.channel.clock.now_ns();
        if let Some(sent) = self.channel.sent_at_ns(seq) {
            self.shared
                .latency
                .observe_ns_single_writer(now.saturating_sub(sent));
        }
        self.serving = (self.kind_of)(event).map(|kind| (kind, now));
    }
}

impl<T> Drop for SubscriberTap<T> {
    fn drop(&mut self) {
        // A consumer that is gone no longer holds the queue length up.
        self.shared.active.store(false, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_keeps_to_the_os_clock_once_it_reads_the_counter() {
        let clock = Clock::new();
        std::thread::sleep(std::time::Duration::from_millis(30));
        clock.calibrate();
        let mut previous = 0;
        for _ in 0..1000 {
            let ns = clock.now_ns();
            let os = u64::try_from(clock.origin.elapsed().as_nanos()).unwrap();
            assert!(ns >= previous, "the clock went backwards");
            assert!(
                ns.abs_diff(os) < 1_000_000,
                "{ns} ns against the OS clock's {os}"
            );
            previous = ns;
        }
        assert_eq!(
            u64::from(clock.coarse_ms.load(Ordering::Relaxed)),
            previous / 1_000_000
        );
    }
}
