//! The duplicate tracker against the node team's sketched design, on the same key stream.
//!
//! `cargo bench -p p2p-router --bench dedup`
//!
//! Stream: inv messages of 1-4 items (uniform), 35% of items re-announcing an item first announced
//! in the last 4 s (uniform among them), 2% blocks, exponential gaps at 40,000 items/s of stream
//! time: ~130,000 items live in any 5 s, half the 262,144 capacity both designs get. One run feeds
//! the whole stream (1,000,000 items) through a fresh tracker; with 2 threads, thread `t` feeds
//! messages `t, t + 2, ...` concurrently. Every run asserts that both designs counted the same
//! duplicates as the stream holds, so a fast wrong path cannot pass for speed.
//!
//! Before the timings, a counting allocator measures the bytes each design holds when filled
//! with 262,144 live items, and both designs feed the stream in alternation (`ROUNDS` times at 1
//! and at 2 threads): each round prints what each design counted, asserts they counted the same,
//! and the medians give the ns per item and the ratio of one run, less exposed to a neighbour's
//! load than two criterion groups measured minutes apart.

use std::alloc::{GlobalAlloc, Layout, System};
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::RwLock;
use std::time::Duration;

use criterion::{criterion_group, BenchmarkId, Criterion, SamplingMode, Throughput};
use p2p_router::dedup::{DedupTracker, DEFAULT_TTL};
use p2p_router::rng::SplitMix64;
use p2p_router::{InvType, InventoryItem};
use tokio::time::Instant;

const CAPACITY: usize = 262_144;
const STREAM_ITEMS: usize = 1_000_000;
const ITEMS_PER_SECOND: f64 = 40_000.0;
const DUPLICATE_SHARE: f64 = 0.35;
const DUPLICATE_SOURCE_AGE: Duration = Duration::from_secs(4);
/// Threads feeding one tracker may drift apart by at most this much stream time. Without a bound
/// a descheduled thread would fall seconds behind, and then what counts as "within 5 s" would
/// depend on the scheduler, not on the stream.
const MAX_SKEW: Duration = Duration::from_millis(250);
/// Alternating rounds behind the printed ratio.
const ROUNDS: usize = 5;

// --- Counting allocator (counts only while `COUNTING` is set, so timings pay one load) ---

struct Counting;
static COUNTING: AtomicBool = AtomicBool::new(false);
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if COUNTING.load(Ordering::Relaxed) {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            let live = LIVE.fetch_add(new_size, Ordering::Relaxed) + new_size;
            // Old and new block coexist during a moving realloc.
            PEAK.fetch_max(live, Ordering::Relaxed);
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

// --- The node team's design ---

type Key = (InvType, [u8; 32]);

/// `RwLock<LruCache<(InvType, [u8; 32]), Instant>>`: a message is a duplicate when every item is
/// in the cache with elapsed < TTL; then every item is put. Written to be fast and exact: one write
/// lock per message for the check and the puts (a read lock for the check, then a write lock,
/// costs two acquisitions and misses duplicates under races), the same seeded foldhash as the new
/// tracker, and `get_mut` for items already cached (one lookup that also refreshes and promotes
/// them) then `push` for the rest. That equals "check all, then put all" for messages without a
/// repeated item, which the stream never has.
struct LruDesign {
    ttl: Duration,
    cache: RwLock<lru::LruCache<Key, Instant, foldhash::fast::RandomState>>,
}

impl LruDesign {
    fn new(ttl: Duration, capacity: usize) -> LruDesign {
        let capacity = NonZeroUsize::new(capacity).expect("non-zero capacity");
        LruDesign {
            ttl,
            cache: RwLock::new(lru::LruCache::with_hasher(capacity, Default::default())),
        }
    }

    fn check(&self, items: &[InventoryItem], now: Instant) -> Verdict {
        let mut cache = self.cache.write().unwrap();
        let mut verdict = Verdict::default();
        let mut missing = [0usize; 4];
        let mut missing_len = 0;
        for (i, item) in items.iter().enumerate() {
            match cache.get_mut(&(item.kind, item.hash)) {
                Some(seen) => {
                    if now.saturating_duration_since(*seen) < self.ttl {
                        verdict.duplicate_items += 1;
                    }
                    *seen = now;
                }
                None => {
                    missing[missing_len] = i;
                    missing_len += 1;
                }
            }
        }
        for &i in &missing[..missing_len] {
            let item = &items[i];
            if let Some((_, seen)) = cache.push((item.kind, item.hash), now) {
                if now.saturating_duration_since(seen) < self.ttl {
                    verdict.evicted_live += 1;
                }
            }
        }
        verdict.duplicate = verdict.duplicate_items == items.len();
        verdict
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Verdict {
    duplicate: bool,
    duplicate_items: usize,
    evicted_live: usize,
}

trait Design: Sync {
    fn check(&self, items: &[InventoryItem], now: Instant) -> Verdict;
}

impl Design for LruDesign {
    fn check(&self, items: &[InventoryItem], now: Instant) -> Verdict {
        LruDesign::check(self, items, now)
    }
}

impl Design for DedupTracker {
    fn check(&self, items: &[InventoryItem], now: Instant) -> Verdict {
        let v = DedupTracker::check(self, items, now);
        Verdict {
            duplicate: v.duplicate,
            duplicate_items: v.duplicate_items,
            evicted_live: v.evicted_live,
        }
    }
}

// --- The stream ---

struct Message {
    at: Instant,
    items: Vec<InventoryItem>,
}

struct Stream {
    messages: Vec<Message>,
    items: usize,
    duplicate_items: usize,
    duplicate_messages: usize,
}

fn stream(start: Instant) -> Stream {
    let mut rng = SplitMix64::new(0x5eed_d00d);
    // First announcements, oldest first, for picking re-announcements from the last 4 s.
    let mut recent: std::collections::VecDeque<(Instant, InventoryItem)> = Default::default();
    let mut messages = Vec::new();
    let (mut items, mut duplicate_items, mut duplicate_messages) = (0, 0, 0);
    let mut at = start;
    while items < STREAM_ITEMS {
        let len = 1 + rng.below(4);
        let gap = -(1.0 - rng.next_f64()).ln() * len as f64 / ITEMS_PER_SECOND;
        at += Duration::from_secs_f64(gap);
        while recent
            .front()
            .is_some_and(|(first, _)| at.duration_since(*first) > DUPLICATE_SOURCE_AGE)
        {
            recent.pop_front();
        }
        let mut message = Vec::with_capacity(len);
        let mut duplicates = 0;
        while message.len() < len {
            if !recent.is_empty() && rng.chance(DUPLICATE_SHARE) {
                let (_, item) = recent[rng.below(recent.len())];
                if !message.contains(&item) {
                    message.push(item);
                    duplicates += 1;
                }
                continue;
            }
            let kind = if rng.chance(0.02) {
                InvType::Block
            } else {
                InvType::Transaction
            };
            let item = InventoryItem {
                kind,
                hash: rng.hash(),
            };
            recent.push_back((at, item));
            message.push(item);
        }
        items += len;
        duplicate_items += duplicates;
        duplicate_messages += usize::from(duplicates == len);
        messages.push(Message { at, items: message });
    }
    Stream {
        messages,
        items,
        duplicate_items,
        duplicate_messages,
    }
}

/// Feeds the stream through `design` from `threads` threads; returns the duplicate messages and
/// items counted.
fn feed(design: &dyn Design, stream: &Stream, threads: usize) -> (usize, usize) {
    let start = stream.messages[0].at;
    let progress: Vec<AtomicU64> = (0..threads).map(|_| AtomicU64::new(0)).collect();
    let max_skew = MAX_SKEW.as_nanos() as u64;
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let progress = &progress;
                scope.spawn(move || {
                    let (mut messages, mut items) = (0, 0);
                    for (n, message) in stream.messages.iter().skip(t).step_by(threads).enumerate()
                    {
                        if threads > 1 && n % 64 == 0 {
                            let mine = message.at.duration_since(start).as_nanos() as u64;
                            progress[t].store(mine, Ordering::Release);
                            while progress
                                .iter()
                                .any(|p| mine > p.load(Ordering::Acquire) + max_skew)
                            {
                                std::thread::yield_now();
                            }
                        }
                        let verdict = design.check(&message.items, message.at);
                        assert_eq!(verdict.evicted_live, 0, "the stream stays under the cap");
                        messages += usize::from(verdict.duplicate);
                        items += verdict.duplicate_items;
                    }
                    // Done: never hold the others back.
                    progress[t].store(u64::MAX / 2, Ordering::Release);
                    (messages, items)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
    })
}

fn assert_counts(stream: &Stream, threads: usize, counted: (usize, usize)) {
    // Items are exact however threads interleave: every re-announcement comes < 5 s after the
    // first. Whole messages are exact on one thread; on two, a re-announcement can overtake the
    // first announcement of another of its message's items.
    assert_eq!(counted.1, stream.duplicate_items, "duplicate items");
    if threads == 1 {
        assert_eq!(counted.0, stream.duplicate_messages, "duplicate messages");
    }
}

fn throughput(c: &mut Criterion) {
    let stream = stream(Instant::now());
    eprintln!(
        "stream: {} messages, {} items, {} duplicate items, {} duplicate messages, {:.1} s",
        stream.messages.len(),
        stream.items,
        stream.duplicate_items,
        stream.duplicate_messages,
        stream
            .messages
            .last()
            .unwrap()
            .at
            .duration_since(stream.messages[0].at)
            .as_secs_f64()
    );
    let mut group = c.benchmark_group("dedup");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(15))
        .throughput(Throughput::Elements(stream.items as u64));
    for threads in [1, 2] {
        group.bench_with_input(BenchmarkId::new("tracker", threads), &threads, |b, &t| {
            b.iter_custom(|iters| {
                run(iters, &stream, t, || {
                    DedupTracker::new(DEFAULT_TTL, CAPACITY)
                })
            })
        });
        group.bench_with_input(
            BenchmarkId::new("lru_rwlock", threads),
            &threads,
            |b, &t| {
                b.iter_custom(|iters| {
                    run(iters, &stream, t, || LruDesign::new(DEFAULT_TTL, CAPACITY))
                })
            },
        );
    }
    group.finish();
}

/// `iters` runs of the whole stream, each through a fresh design; only the feeding is timed.
#[allow(
    clippy::disallowed_methods,
    reason = "a benchmark measures real time; the stream's own times are tokio's"
)]
fn run<D: Design>(iters: u64, stream: &Stream, threads: usize, make: impl Fn() -> D) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let design = make();
        let began = std::time::Instant::now();
        let counted = feed(&design, stream, threads);
        total += began.elapsed();
        assert_counts(stream, threads, counted);
        drop(design);
    }
    total
}

// --- Memory ---

/// Bytes held (and the peak while filling) by a design filled with `CAPACITY` live items.
fn held_when_full<D: Design>(make: impl Fn() -> D) -> (usize, usize, D) {
    let mut rng = SplitMix64::new(7);
    let items: Vec<_> = (0..CAPACITY)
        .map(|_| InventoryItem {
            kind: InvType::Transaction,
            hash: rng.hash(),
        })
        .collect();
    let start = Instant::now();
    LIVE.store(0, Ordering::SeqCst);
    PEAK.store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
    let design = make();
    for (i, item) in items.iter().enumerate() {
        // All within 4 s, so all live when the last arrives.
        let at = start + Duration::from_micros(i as u64 * 15);
        let verdict = design.check(std::slice::from_ref(item), at);
        assert!(!verdict.duplicate && verdict.evicted_live == 0);
    }
    COUNTING.store(false, Ordering::SeqCst);
    (
        LIVE.load(Ordering::SeqCst),
        PEAK.load(Ordering::SeqCst),
        design,
    )
}

fn memory() {
    let mb = |bytes: usize| bytes as f64 / 1e6;
    let (tracker, tracker_peak, t) = held_when_full(|| DedupTracker::new(DEFAULT_TTL, CAPACITY));
    assert_eq!(t.tracked(), CAPACITY);
    let (lru, lru_peak, _l) = held_when_full(|| LruDesign::new(DEFAULT_TTL, CAPACITY));
    eprintln!(
        "memory with {CAPACITY} live items: tracker {:.1} MB (peak {:.1} MB), lru_rwlock {:.1} MB \
         (peak {:.1} MB), {:.0} vs {:.0} bytes/item",
        mb(tracker),
        mb(tracker_peak),
        mb(lru),
        mb(lru_peak),
        tracker as f64 / CAPACITY as f64,
        lru as f64 / CAPACITY as f64,
    );
    assert!(tracker <= lru, "the tracker holds more than the LRU design");
}

// --- Ratio ---

/// Feeds the stream once through a fresh design; returns the time and what it counted.
#[allow(
    clippy::disallowed_methods,
    reason = "times a run of real threads on the OS clock; no runtime is involved"
)]
fn timed_feed<D: Design>(
    stream: &Stream,
    threads: usize,
    make: impl Fn() -> D,
) -> (f64, (usize, usize)) {
    let design = make();
    let began = std::time::Instant::now();
    let counted = feed(&design, stream, threads);
    let ns_per_item = began.elapsed().as_nanos() as f64 / stream.items as f64;
    assert_counts(stream, threads, counted);
    (ns_per_item, counted)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Both designs in alternation on the same stream: what each counted, and the time per item.
fn ratios(stream: &Stream) {
    for threads in [1, 2] {
        let (mut tracker_ns, mut lru_ns) = (Vec::new(), Vec::new());
        for round in 0..ROUNDS {
            let (t, tracker) =
                timed_feed(stream, threads, || DedupTracker::new(DEFAULT_TTL, CAPACITY));
            let (l, lru) = timed_feed(stream, threads, || LruDesign::new(DEFAULT_TTL, CAPACITY));
            eprintln!(
                "round {round}, {threads} thread(s): tracker {t:.0} ns/item, {} duplicate items, \
                 {} duplicate messages; lru_rwlock {l:.0} ns/item, {} duplicate items, {} duplicate \
                 messages",
                tracker.1, tracker.0, lru.1, lru.0
            );
            assert_eq!(
                tracker.1, lru.1,
                "both designs count the same duplicate items"
            );
            if threads == 1 {
                assert_eq!(tracker.0, lru.0, "and the same duplicate messages");
            }
            tracker_ns.push(t);
            lru_ns.push(l);
        }
        let (t, l) = (median(tracker_ns), median(lru_ns));
        eprintln!(
            "ratio, {threads} thread(s), median of {ROUNDS}: tracker {t:.0} ns/item, lru_rwlock \
             {l:.0} ns/item: {:.2}x",
            l / t
        );
    }
}

criterion_group!(benches, throughput);

fn main() {
    memory();
    ratios(&stream(Instant::now()));
    benches();
    Criterion::default().configure_from_args().final_summary();
}
