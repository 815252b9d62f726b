//! The duplicate-inventory tracker, with the scaling document's semantics: an `inv` message is a duplicate when
//! every one of its items was seen within the last `ttl` (5 s); items are counted the same way. An
//! empty `inv` is a duplicate. The window counts from an item's latest announcement.
//!
//! The document's sketch checks under a read lock and inserts later, so two peers announcing the same
//! item at the same moment are both counted new. Here the check and the insert of one message
//! happen under one lock: with any number of threads, the first announcement of an item is new and
//! every later one within the TTL is a duplicate, exactly as if the messages had come one at a time.
//! (One lock measured faster than 16 shards on two threads: a message of 1-4 items took 2-3 shard
//! locks, and the smaller tables shared the cache worse.) Hashing happens before the lock.
//!
//! Layout: a ring of 16-byte slots (the item's 64-bit fingerprint and a nanosecond stamp) in the
//! arrival order of latest announcements, each numbered by a sequence number, and an index from
//! fingerprint to sequence number. A re-announced item moves to the back (its old slot is marked
//! superseded). That order gives expiry (advance the head over the expired front) and eviction when
//! full (advance it over the oldest) without touching the index: an index entry whose number is
//! behind the head is simply not live, and the next insert that passes it takes its place.
//!
//! The index is an open-addressing table of 64-byte buckets, each holding five (fingerprint,
//! sequence number) pairs: finding an item, or finding that it is absent, reads one cache line
//! (rarely two), and nothing else. Before taking the lock, a message prefetches the buckets of all
//! its items, so that those cache misses overlap each other and the wait. A superseded slot is
//! marked in a bitmap (a bit per slot, which stays in cache), and the index asks for huge pages.
//!
//! An item is known by its fingerprint: a 64-bit hash of its kind and 32 bytes under keys drawn
//! at random for each tracker, so peers cannot aim at it. Two different items are confused only
//! when their fingerprints agree in all 64 bits: with 262,144 items remembered, a chance of
//! 1.4e-14 per announcement: at 40,000 items a second, one false duplicate in about 50 years.
//! Holding 16 bytes instead of the 33-byte key halves the memory and removes the second cache miss
//! a full comparison costs; no duplicate is ever missed for it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use p2p_observe::{InvType, InventoryItem};
use tokio::time::Instant;

/// The scaling document's dedup window: 5 s.
pub const DEFAULT_TTL: Duration = Duration::from_secs(5);
/// Enough for ~10 000 new items a second over the 5 s window.
pub const DEFAULT_MAX_ITEMS: usize = 50_000;

/// Messages up to this many items keep their hashes on the stack.
const INLINE_ITEMS: usize = 16;
/// Slots in the first ring (it doubles when full of remembered items), and items the smallest
/// index has room for.
const MIN_ROOM: usize = 4096;
/// The index of a cap up to this many items (4 MB) is allocated up front, so that filling the
/// tracker never pauses to re-index; a larger or unbounded tracker's starts at `MIN_ROOM`.
const PREALLOCATE_UP_TO: usize = 1 << 18;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InvVerdict {
    /// Every item was seen within the TTL: what deduplication would drop.
    pub duplicate: bool,
    pub duplicate_items: usize,
    /// Items forgotten before their TTL ran out because the tracker was full. While this is
    /// non-zero the duplicate counts are a lower bound, and the exporter says so.
    pub evicted_live: usize,
}

pub struct DedupTracker {
    ttl_ns: i64,
    /// Seeded: hashes are announced by remote peers, so an unseeded hash would invite crafted
    /// collisions.
    keys: HashKeys,
    /// Stamps count from here.
    base: Instant,
    /// Where the index is, for prefetching outside the lock.
    index_at: IndexAddress,
    state: Mutex<State>,
}

/// The index's address and size, packed into one word (`log2(buckets) << 58 | address`; user
/// addresses fit in 57 bits) so a reader never pairs one index's address with another's size.
/// A message prefetches its buckets from it before waiting for the lock, so the cache misses
/// overlap the wait instead of lengthening the time the lock is held. A stale value costs only a
/// useless prefetch: the lookups themselves run under the lock.
struct IndexAddress(AtomicU64);

impl IndexAddress {
    fn pack(index: &Index) -> u64 {
        (index.buckets.len().trailing_zeros() as u64) << 58 | index.buckets.as_ptr() as u64
    }

    fn publish(&self, index: &Index) {
        let packed = Self::pack(index);
        if self.0.load(Ordering::Relaxed) != packed {
            self.0.store(packed, Ordering::Relaxed);
        }
    }

    fn prefetch(&self, fingerprints: &[u64]) {
        let packed = self.0.load(Ordering::Relaxed);
        let (base, mask) = (packed & ((1 << 58) - 1), (1u64 << (packed >> 58)) - 1);
        for &fingerprint in fingerprints {
            prefetch((base + (fingerprint & mask) * size_of::<Bucket>() as u64) as *const i8);
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn prefetch(address: *const i8) {
    // SAFETY: SSE is part of x86_64, and a prefetch is a hint: it never faults and never changes
    // memory, whatever the address.
    unsafe { std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(address) };
}

#[cfg(not(target_arch = "x86_64"))]
fn prefetch(_address: *const i8) {}

/// One announcement: the item's fingerprint and when (nanoseconds from the tracker's creation).
#[derive(Clone, Copy)]
struct Slot {
    fingerprint: u64,
    stamp: i64,
}

fn kind_bits(kind: InvType) -> u64 {
    match kind {
        InvType::Transaction => 1,
        InvType::Block => 2,
    }
}

/// The seeded hash: a folded multiply per half of the 32 bytes and one to combine them, the
/// construction foldhash uses, with keys drawn at random for each tracker. The whole 64 bits are
/// the item's fingerprint; the low bits also place it in the index.
#[derive(Clone, Copy)]
struct HashKeys([u64; 6]);

impl HashKeys {
    fn random() -> HashKeys {
        use std::hash::BuildHasher;
        let state = foldhash::fast::RandomState::default();
        HashKeys(std::array::from_fn(|i| state.hash_one(i)))
    }

    fn hash(&self, kind: u64, hash: &[u8; 32]) -> u64 {
        let k = &self.0;
        let word =
            |i: usize| u64::from_le_bytes(hash[8 * i..8 * i + 8].try_into().expect("8 bytes"));
        let low = folded_multiply(word(0) ^ k[0], word(1) ^ k[1]);
        let high = folded_multiply(word(2) ^ k[2], word(3) ^ k[3]);
        folded_multiply(low ^ k[4], high ^ k[5].wrapping_add(kind))
    }

    fn item(&self, item: &InventoryItem) -> u64 {
        self.hash(kind_bits(item.kind), &item.hash)
    }
}

fn folded_multiply(x: u64, y: u64) -> u64 {
    let product = x as u128 * y as u128;
    product as u64 ^ (product >> 64) as u64
}

const LANES: usize = 5;
/// A lane that never held an entry: it ends every probe.
const FREE: u32 = u32::MAX;
/// Sequence numbers stay below this; reaching it renumbers the slots from 0.
const SEQ_LIMIT: u32 = u32::MAX - 1;

/// Five (fingerprint, sequence number) pairs: one cache line.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Bucket {
    fingerprints: [u64; LANES],
    seqs: [u32; LANES],
}

const FREE_BUCKET: Bucket = Bucket {
    fingerprints: [0; LANES],
    seqs: [FREE; LANES],
};

/// Where an entry is in the index: (bucket, lane).
type Place = (usize, usize);

enum Probe {
    /// The item's live entry, and the sequence number of its slot.
    Found(Place, u32),
    /// Absent; where an insert goes (the first lane on its path that is free or not live).
    Absent(Place),
}

/// Fingerprint -> sequence number of its slot, open addressing over buckets with linear probing. An
/// entry whose slot has been forgotten is not live: lookups pass over it and inserts reuse its
/// lane, so it never needs removing, and free lanes (never used since the last rebuild) end
/// every probe.
struct Index {
    buckets: Vec<Bucket>,
    /// Lanes no longer free.
    used: usize,
}

impl Index {
    fn with_room(items: usize) -> Index {
        Index {
            buckets: free_buckets(Self::buckets_for(items)),
            used: 0,
        }
    }

    /// Buckets for `items` at the maximum load (5/8 of the lanes), a power of two.
    fn buckets_for(items: usize) -> usize {
        (items.max(1) * 8).div_ceil(LANES * 5).next_power_of_two()
    }

    fn room(&self) -> usize {
        self.buckets.len() * LANES * 5 / 8
    }

    fn home(&self, fingerprint: u64) -> usize {
        fingerprint as usize & (self.buckets.len() - 1)
    }

    /// Walks the fingerprint's probe chain to its live entry, or to a free lane.
    fn probe(&self, fingerprint: u64, live: impl Fn(u32) -> bool) -> Probe {
        let mask = self.buckets.len() - 1;
        let mut reusable = None;
        let mut b = self.home(fingerprint);
        loop {
            let bucket = &self.buckets[b];
            for lane in 0..LANES {
                let seq = bucket.seqs[lane];
                if seq == FREE {
                    return Probe::Absent(reusable.unwrap_or((b, lane)));
                }
                if !live(seq) {
                    reusable.get_or_insert((b, lane));
                } else if bucket.fingerprints[lane] == fingerprint {
                    return Probe::Found((b, lane), seq);
                }
            }
            b = (b + 1) & mask;
        }
    }

    /// Writes an entry at `place` (from `Probe::Absent`).
    fn put(&mut self, (b, lane): Place, fingerprint: u64, seq: u32) {
        let bucket = &mut self.buckets[b];
        if bucket.seqs[lane] == FREE {
            self.used += 1;
        }
        bucket.seqs[lane] = seq;
        bucket.fingerprints[lane] = fingerprint;
    }

    fn set(&mut self, (b, lane): Place, seq: u32) {
        self.buckets[b].seqs[lane] = seq;
    }

    /// Empties the index, resized to `buckets` (reused when the size is the same).
    fn reset(&mut self, buckets: usize) {
        if buckets == self.buckets.len() {
            self.buckets.fill(FREE_BUCKET);
        } else {
            self.buckets = free_buckets(buckets);
        }
        self.used = 0;
    }
}

/// `count` free buckets. Lookups land anywhere in the index, so past a few megabytes most of them
/// would also miss the TLB (each a page walk, dearer still under virtualisation); the kernel is
/// asked to back the index with huge pages before it is first written, where it supports that.
fn free_buckets(count: usize) -> Vec<Bucket> {
    let mut buckets: Vec<Bucket> = Vec::with_capacity(count);
    advise_huge_pages(buckets.as_mut_ptr().cast(), count * size_of::<Bucket>());
    buckets.resize(count, FREE_BUCKET);
    buckets
}

#[cfg(target_os = "linux")]
fn advise_huge_pages(start: *mut u8, len: usize) {
    const HUGE_PAGE: usize = 2 << 20;
    if len < HUGE_PAGE {
        return;
    }
    // madvise wants a page-aligned start; the pages around the rounded range keep the default.
    let page = 4096;
    let aligned = (start as usize).next_multiple_of(page);
    let len = len - (aligned - start as usize);
    // SAFETY: the range lies inside the allocation just made, which nothing else refers to, and
    // MADV_HUGEPAGE changes only how the kernel backs it, never its contents or validity. A kernel
    // without transparent huge pages returns an error, which leaves the default: nothing to do.
    unsafe {
        libc::madvise(aligned as *mut libc::c_void, len, libc::MADV_HUGEPAGE);
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge_pages(_start: *mut u8, _len: usize) {}

const EMPTY_SLOT: Slot = Slot {
    fingerprint: 0,
    stamp: 0,
};

/// One bit per ring position: set when the slot there was superseded by a later announcement of
/// its item. A bitmap rather than a mark in the slot, because marking an old slot is a write to a
/// line long out of cache, and the bitmap (a 32nd of the ring) stays in cache.
struct Superseded(Vec<u64>);

impl Superseded {
    fn for_ring(len: usize) -> Superseded {
        Superseded(vec![0; len.div_ceil(64)])
    }

    fn get(&self, position: usize) -> bool {
        self.0[position / 64] >> (position % 64) & 1 == 1
    }

    fn set(&mut self, position: usize, superseded: bool) {
        let (word, bit) = (&mut self.0[position / 64], 1u64 << (position % 64));
        if superseded {
            *word |= bit;
        } else {
            *word &= !bit;
        }
    }
}

struct State {
    cap: usize,
    /// The latest `now` seen (a stamp); `i64::MIN` before the first.
    latest: i64,
    /// Slots in the arrival order of latest announcements: the slot of sequence number `s` is
    /// `ring[s & (ring.len() - 1)]`, for `head <= s < back`. Everything before `head` is forgotten.
    ring: Vec<Slot>,
    superseded: Superseded,
    head: u32,
    back: u32,
    /// Slots in `head..back` not superseded, and superseded.
    live: usize,
    superseded_slots: usize,
    index: Index,
}

fn is_fresh(now: i64, stamp: i64, ttl: i64) -> bool {
    // A `now` earlier than the stamp (a thread that lost the race for the lock) counts as 0 s.
    (now - stamp).max(0) < ttl
}

impl State {
    fn new(cap: usize) -> State {
        let index_room = if cap <= PREALLOCATE_UP_TO {
            cap.max(MIN_ROOM)
        } else {
            MIN_ROOM
        };
        State {
            cap,
            latest: i64::MIN,
            ring: vec![EMPTY_SLOT; MIN_ROOM],
            superseded: Superseded::for_ring(MIN_ROOM),
            head: 0,
            back: 0,
            live: 0,
            superseded_slots: 0,
            index: Index::with_room(index_room),
        }
    }

    fn position(&self, seq: u32) -> usize {
        seq as usize & (self.ring.len() - 1)
    }

    fn slot(&self, seq: u32) -> &Slot {
        &self.ring[self.position(seq)]
    }

    fn is_superseded(&self, seq: u32) -> bool {
        self.superseded.get(self.position(seq))
    }

    fn slot_mut(&mut self, seq: u32) -> &mut Slot {
        let mask = self.ring.len() - 1;
        &mut self.ring[seq as usize & mask]
    }

    fn probe(&self, fingerprint: u64) -> Probe {
        let (head, back) = (self.head, self.back);
        self.index
            .probe(fingerprint, |seq| (head..back).contains(&seq))
    }

    /// Forgets everything when idle for a TTL: every stamp is at most `latest`, so everything
    /// has expired.
    fn advance(&mut self, now: i64, ttl: i64) {
        if now.saturating_sub(self.latest) >= ttl {
            self.head = self.back;
            self.live = 0;
            self.superseded_slots = 0;
        }
        self.latest = self.latest.max(now);
    }

    /// The oldest slot not yet forgotten, skipping superseded ones.
    fn front(&mut self) -> Option<Slot> {
        while self.head < self.back {
            if !self.is_superseded(self.head) {
                return Some(*self.slot(self.head));
            }
            self.head += 1;
            self.superseded_slots -= 1;
        }
        None
    }

    /// Forgets the front slot (which `front` just returned).
    fn forget_front(&mut self) {
        self.head += 1;
        self.live -= 1;
    }

    /// Forgets expired items from the front of the arrival order.
    fn expire(&mut self, now: i64, ttl: i64) {
        while let Some(slot) = self.front() {
            if is_fresh(now, slot.stamp, ttl) {
                break;
            }
            self.forget_front();
        }
    }

    /// Forgets the least recently announced item; returns when it was last announced.
    fn evict_oldest(&mut self) -> Option<i64> {
        let slot = self.front()?;
        self.forget_front();
        Some(slot.stamp)
    }

    /// Whether the item is remembered. Once `expire` has run for `now`, everything remembered
    /// was announced within the TTL, so this is "seen within the TTL".
    fn remembers(&self, fingerprint: u64) -> bool {
        matches!(self.probe(fingerprint), Probe::Found(..))
    }

    /// Makes sure one more slot and one more index entry fit without moving anything.
    fn reserve_one(&mut self) {
        let span = (self.back - self.head) as usize;
        if span == self.ring.len() {
            if self.superseded_slots >= span / 2 {
                self.rebuild();
            } else {
                self.grow_ring();
            }
        }
        if self.back >= SEQ_LIMIT || self.index.used >= self.index.room() {
            self.rebuild();
        }
    }

    /// Doubles the ring; sequence numbers, and so the index, stay as they are.
    fn grow_ring(&mut self) {
        let mut ring = vec![EMPTY_SLOT; 2 * self.ring.len()];
        let mut superseded = Superseded::for_ring(ring.len());
        let mask = ring.len() - 1;
        for seq in self.head..self.back {
            ring[seq as usize & mask] = *self.slot(seq);
            superseded.set(seq as usize & mask, self.is_superseded(seq));
        }
        self.ring = ring;
        self.superseded = superseded;
    }

    /// Renumbers the remembered slots from 0 without the superseded ones and re-indexes them, with
    /// room for twice as many: O(remembered), and needed only when superseded slots fill half the
    /// ring, the index runs out of free lanes or the sequence numbers run out, so amortised O(1)
    /// per announcement.
    fn rebuild(&mut self) {
        let mut ring = vec![EMPTY_SLOT; self.ring.len()];
        let mut kept = 0;
        for seq in self.head..self.back {
            if !self.is_superseded(seq) {
                ring[kept] = *self.slot(seq);
                kept += 1;
            }
        }
        self.ring = ring;
        self.superseded = Superseded::for_ring(self.ring.len());
        self.head = 0;
        self.back = kept as u32;
        self.superseded_slots = 0;
        let buckets = Index::buckets_for((2 * kept).max(MIN_ROOM));
        self.index.reset(buckets.max(self.index.buckets.len()));
        for seq in 0..self.back {
            let fingerprint = self.slot(seq).fingerprint;
            let (head, back) = (self.head, seq);
            // The slots are distinct, so each probe ends at a free lane.
            if let Probe::Absent(place) =
                self.index.probe(fingerprint, |s| (head..back).contains(&s))
            {
                self.index.put(place, fingerprint, seq);
            }
        }
    }

    /// Appends a slot; `reserve_one` has made room.
    fn push(&mut self, slot: Slot) -> u32 {
        let seq = self.back;
        *self.slot_mut(seq) = slot;
        let position = self.position(seq);
        self.superseded.set(position, false);
        self.back += 1;
        self.live += 1;
        seq
    }

    /// Remembers an announcement at `now`; returns whether making room forgot a live item.
    ///
    /// The announcement is stamped `latest`, which is `now` unless a thread that lost the race
    /// for the lock brings an earlier one: stamps follow the order in which messages take the
    /// lock, so the ring is sorted by stamp, and once the expired front is gone everything
    /// remembered was announced within the TTL.
    fn announce(&mut self, fingerprint: u64, now: i64, ttl: i64) -> bool {
        self.reserve_one();
        let slot = Slot {
            fingerprint,
            stamp: self.latest,
        };
        match self.probe(fingerprint) {
            Probe::Found(place, seq) => {
                // Move it to the back, keeping the arrival order of latest announcements (the
                // slot at the back is simply rewritten).
                if seq + 1 == self.back {
                    *self.slot_mut(seq) = slot;
                } else {
                    let position = self.position(seq);
                    self.superseded.set(position, true);
                    self.live -= 1;
                    self.superseded_slots += 1;
                    let at = self.push(slot);
                    self.index.set(place, at);
                }
                false
            }
            Probe::Absent(place) => {
                // New: make room first. Forgetting the oldest leaves `place` valid (it was free
                // or held an entry that was not live, and still does).
                let mut evicted_live = false;
                if self.live >= self.cap {
                    if let Some(stamp) = self.evict_oldest() {
                        evicted_live = is_fresh(now, stamp, ttl);
                    }
                }
                let at = self.push(slot);
                self.index.put(place, fingerprint, at);
                evicted_live
            }
        }
    }
}

impl DedupTracker {
    pub fn new(ttl: Duration, max_items: usize) -> DedupTracker {
        let state = State::new(max_items.max(1));
        DedupTracker {
            ttl_ns: ttl.as_nanos().min(i64::MAX as u128 / 4) as i64,
            keys: HashKeys::random(),
            base: Instant::now(),
            index_at: IndexAddress(AtomicU64::new(IndexAddress::pack(&state.index))),
            state: Mutex::new(state),
        }
    }

    /// Classifies one `inv` message announced at `now` and remembers its items.
    pub fn check(&self, items: &[InventoryItem], now: Instant) -> InvVerdict {
        let mut inline = [0u64; INLINE_ITEMS];
        let mut spilled = Vec::new();
        let fingerprints: &mut [u64] = if items.len() <= INLINE_ITEMS {
            &mut inline[..items.len()]
        } else {
            spilled.resize(items.len(), 0);
            &mut spilled
        };
        for (fingerprint, item) in fingerprints.iter_mut().zip(items) {
            *fingerprint = self.keys.item(item);
        }
        self.check_fingerprints(fingerprints, now)
    }

    fn check_fingerprints(&self, fingerprints: &[u64], now: Instant) -> InvVerdict {
        let ttl = self.ttl_ns;
        let now = self.stamp(now);
        // Every bucket of the message is on its way before any is used: a message waits about
        // one cache miss, whatever its length, and with other threads mostly while it waits for
        // the lock.
        self.index_at.prefetch(fingerprints);
        let mut state = lock(&self.state);
        state.advance(now, ttl);
        state.expire(now, ttl);
        // All lookups before any insert: an item repeated within one message is judged by what
        // was seen before the message.
        let duplicate_items = fingerprints
            .iter()
            .filter(|&&fingerprint| state.remembers(fingerprint))
            .count();
        let evicted_live = fingerprints
            .iter()
            .filter(|&&fingerprint| state.announce(fingerprint, now, ttl))
            .count();
        self.index_at.publish(&state.index);
        InvVerdict {
            duplicate: duplicate_items == fingerprints.len(),
            duplicate_items,
            evicted_live,
        }
    }

    /// Items currently remembered (as of the latest message).
    pub fn tracked(&self) -> usize {
        let mut state = lock(&self.state);
        let latest = state.latest;
        state.expire(latest, self.ttl_ns);
        state.live
    }

    /// Nanoseconds from the tracker's creation; earlier instants are negative.
    fn stamp(&self, now: Instant) -> i64 {
        let limit = (i64::MAX / 2) as u128;
        if now >= self.base {
            (now - self.base).as_nanos().min(limit) as i64
        } else {
            -((self.base - now).as_nanos().min(limit) as i64)
        }
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panic on another thread should not stop the counting.
    state.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Barrier};

    fn tx(n: u8) -> InventoryItem {
        InventoryItem {
            kind: InvType::Transaction,
            hash: [n; 32],
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn an_item_seen_4999_ms_ago_is_a_duplicate_and_5001_ms_ago_is_not() {
        let t0 = Instant::now();
        let tracker = DedupTracker::new(DEFAULT_TTL, 100);
        assert!(!tracker.check(&[tx(1)], t0).duplicate);
        let verdict = tracker.check(&[tx(1)], t0 + ms(4999));
        assert_eq!(
            verdict,
            InvVerdict {
                duplicate: true,
                duplicate_items: 1,
                evicted_live: 0
            }
        );

        let tracker = DedupTracker::new(DEFAULT_TTL, 100);
        tracker.check(&[tx(1)], t0);
        assert_eq!(
            tracker.check(&[tx(1)], t0 + ms(5001)),
            InvVerdict::default()
        );
        // Exactly 5 s is outside "within the last 5 s".
        let tracker = DedupTracker::new(DEFAULT_TTL, 100);
        tracker.check(&[tx(1)], t0);
        assert!(!tracker.check(&[tx(1)], t0 + ms(5000)).duplicate);
    }

    #[test]
    fn the_window_counts_from_the_latest_announcement() {
        let t0 = Instant::now();
        let tracker = DedupTracker::new(DEFAULT_TTL, 100);
        tracker.check(&[tx(1)], t0);
        assert!(tracker.check(&[tx(1)], t0 + ms(4000)).duplicate);
        assert!(tracker.check(&[tx(1)], t0 + ms(8000)).duplicate);
        assert!(!tracker.check(&[tx(1)], t0 + ms(13_001)).duplicate);
    }

    #[test]
    fn one_new_item_makes_the_message_new_but_the_old_items_still_count() {
        let t0 = Instant::now();
        let tracker = DedupTracker::new(DEFAULT_TTL, 100);
        tracker.check(&[tx(1), tx(2)], t0);
        let verdict = tracker.check(&[tx(1), tx(2), tx(3)], t0 + ms(10));
        assert_eq!(
            verdict,
            InvVerdict {
                duplicate: false,
                duplicate_items: 2,
                evicted_live: 0
            }
        );
        assert!(tracker.check(&[tx(3), tx(1)], t0 + ms(20)).duplicate);
    }

    #[test]
    fn a_block_and_a_transaction_with_the_same_hash_are_different_items() {
        let t0 = Instant::now();
        let tracker = DedupTracker::new(DEFAULT_TTL, 100);
        tracker.check(&[tx(1)], t0);
        let block = InventoryItem {
            kind: InvType::Block,
            hash: [1; 32],
        };
        assert!(!tracker.check(&[block], t0).duplicate);
    }

    #[test]
    fn when_the_cap_bites_live_evictions_are_counted_and_expired_ones_are_not() {
        let t0 = Instant::now();
        let tracker = DedupTracker::new(DEFAULT_TTL, 3);
        tracker.check(&[tx(1), tx(2), tx(3)], t0);
        let verdict = tracker.check(&[tx(4)], t0 + ms(1));
        assert_eq!(verdict.evicted_live, 1);
        assert_eq!(tracker.tracked(), 3);
        // tx(1) was forgotten early: the tracker under-counts, and said so above.
        assert!(!tracker.check(&[tx(1)], t0 + ms(2)).duplicate);
        // After the TTL everything has expired on its own: nothing live is evicted.
        let verdict = tracker.check(&[tx(5), tx(6), tx(7)], t0 + ms(6000));
        assert_eq!(verdict.evicted_live, 0);
        assert_eq!(tracker.tracked(), 3);
    }

    #[test]
    fn memory_stays_bounded_under_re_announcement() {
        let t0 = Instant::now();
        let tracker = DedupTracker::new(DEFAULT_TTL, 10);
        for i in 0..100_000u64 {
            tracker.check(&[tx((i % 5) as u8)], t0 + Duration::from_micros(i));
        }
        assert_eq!(tracker.tracked(), 5);
        // Superseded slots are compacted away: neither the ring nor the index grew.
        let state = tracker.state.lock().unwrap();
        assert_eq!(state.ring.len(), MIN_ROOM);
        assert_eq!(state.index.buckets.len(), Index::buckets_for(MIN_ROOM));
    }

    /// The straightforward model of the semantics: every item's latest announcement, no cap.
    #[derive(Default)]
    struct Reference {
        last_seen: std::collections::HashMap<(InvType, [u8; 32]), Instant>,
    }

    impl Reference {
        fn check(&mut self, items: &[InventoryItem], now: Instant) -> (bool, usize) {
            let fresh = |at: &Instant| now.saturating_duration_since(*at) < DEFAULT_TTL;
            let duplicates = items
                .iter()
                .filter(|i| self.last_seen.get(&(i.kind, i.hash)).is_some_and(fresh))
                .count();
            for item in items {
                self.last_seen.insert((item.kind, item.hash), now);
            }
            (duplicates == items.len(), duplicates)
        }

        fn tracked(&self, now: Instant) -> usize {
            let fresh = |at: &&Instant| now.saturating_duration_since(**at) < DEFAULT_TTL;
            self.last_seen.values().filter(fresh).count()
        }
    }

    fn random_item(rng: &mut crate::rng::SplitMix64) -> InventoryItem {
        let mut hash = [0u8; 32];
        hash[..8].copy_from_slice(&(rng.below(3000) as u64).to_le_bytes());
        let kind = if rng.chance(0.2) {
            InvType::Block
        } else {
            InvType::Transaction
        };
        InventoryItem { kind, hash }
    }

    /// Random messages over a small pool of items. Many re-announce an earlier message's items,
    /// often exactly 4.999, 5.000 or 5.001 s after it; idle gaps forget everything at once.
    fn agrees_with_the_reference_model(max_items: usize, seed: u64, step_ns: bool) {
        let mut rng = crate::rng::SplitMix64::new(seed);
        let tracker = DedupTracker::new(DEFAULT_TTL, max_items);
        let mut reference = Reference::default();
        let mut history: Vec<(Instant, Vec<InventoryItem>)> = Vec::new();
        let mut now = Instant::now();
        let (mut duplicates, mut boundary_hits) = (0, 0);
        for message in 0..40_000 {
            now += match rng.below(2000) {
                0 => ms(12_000),
                _ if step_ns => Duration::from_nanos(rng.below(2_000_000) as u64),
                _ => ms(rng.below(3) as u64),
            };
            let mut items: Vec<_> = (0..rng.below(6)).map(|_| random_item(&mut rng)).collect();
            if !history.is_empty() && rng.chance(0.4) {
                let (at, earlier) =
                    &history[history.len() - 1 - rng.below(history.len().min(8000))];
                let boundary = *at + ms(4999 + rng.below(3) as u64);
                if boundary >= now && rng.chance(0.1) {
                    now = boundary;
                    boundary_hits += 1;
                }
                items.truncate(rng.below(2));
                items.extend(earlier.iter().copied());
            }
            let verdict = tracker.check(&items, now);
            let (duplicate, duplicate_items) = reference.check(&items, now);
            assert_eq!(
                verdict,
                InvVerdict {
                    duplicate,
                    duplicate_items,
                    evicted_live: 0
                },
                "message {message}: {items:?}"
            );
            duplicates += usize::from(duplicate && !items.is_empty());
            if message % 100 == 0 {
                assert_eq!(
                    tracker.tracked(),
                    reference.tracked(now),
                    "message {message} max {max_items} {step_ns} {items:?} {now:?}"
                );
            }
            history.push((now, items));
        }
        // The stream exercised both outcomes and the boundary.
        assert!(duplicates > 1000 && duplicates < 30_000, "{duplicates}");
        assert!(boundary_hits > 50, "{boundary_hits}");
    }

    #[test]
    fn under_the_cap_every_verdict_matches_a_plain_map_of_latest_announcements() {
        // Millisecond and nanosecond clocks; the caps are never reached.
        agrees_with_the_reference_model(8192, 1, false);
        agrees_with_the_reference_model(usize::MAX, 2, false);
        agrees_with_the_reference_model(8192, 3, true);
        agrees_with_the_reference_model(DEFAULT_MAX_ITEMS, 4, true);
    }

    #[test]
    fn a_full_tracker_holds_max_items_and_counts_every_live_eviction() {
        let t0 = Instant::now();
        let max_items = 16_384;
        let tracker = DedupTracker::new(DEFAULT_TTL, max_items);
        let mut evicted = 0;
        let announced = 3 * max_items;
        for i in 0..announced {
            let mut hash = [0u8; 32];
            hash[..8].copy_from_slice(&(i as u64).to_le_bytes());
            let item = InventoryItem {
                kind: InvType::Transaction,
                hash,
            };
            evicted += tracker
                .check(&[item], t0 + Duration::from_micros(i as u64))
                .evicted_live;
        }
        // All within one TTL: every item forgotten was live, and each one was counted.
        assert_eq!(tracker.tracked(), max_items);
        assert_eq!(evicted, announced - max_items);
    }

    #[test]
    fn two_threads_announcing_the_same_new_item_at_once_see_it_new_exactly_once() {
        const ROUNDS: usize = 5000;
        let tracker = DedupTracker::new(DEFAULT_TTL, DEFAULT_MAX_ITEMS);
        let barrier = Barrier::new(2);
        let t0 = Instant::now();
        let new: Vec<Vec<bool>> = std::thread::scope(|scope| {
            let threads: Vec<_> = (0..2)
                .map(|_| {
                    scope.spawn(|| {
                        (0..ROUNDS)
                            .map(|round| {
                                let mut hash = [0u8; 32];
                                hash[..8].copy_from_slice(&(round as u64).to_le_bytes());
                                let item = InventoryItem {
                                    kind: InvType::Transaction,
                                    hash,
                                };
                                let at = t0 + Duration::from_micros(round as u64);
                                barrier.wait();
                                !tracker.check(&[item], at).duplicate
                            })
                            .collect()
                    })
                })
                .collect();
            threads.into_iter().map(|t| t.join().unwrap()).collect()
        });
        for (round, (a, b)) in new[0].iter().zip(&new[1]).enumerate() {
            assert_eq!(usize::from(*a) + usize::from(*b), 1, "round {round}");
        }
    }

    #[test]
    fn fingerprints_sharing_one_probe_chain_are_still_told_apart() {
        // Every fingerprint here has the same low 32 bits, so all of them start at one bucket
        // and share its chain; only the high bits separate them.
        let t0 = Instant::now();
        let tracker = DedupTracker::new(DEFAULT_TTL, 100);
        let fingerprint = |n: u64| (n + 1) << 32 | 0x5eed;
        let check = |n: u64, at: u64| tracker.check_fingerprints(&[fingerprint(n)], t0 + ms(at));
        for n in 0..60 {
            assert!(!check(n, n).duplicate, "{n}");
        }
        for n in 0..60 {
            assert!(check(n, 100 + n).duplicate, "{n}");
        }
        assert_eq!(tracker.tracked(), 60);
        // Past the cap the oldest go first, each counted once.
        let evicted: usize = (60..160).map(|n| check(n, 200 + n).evicted_live).sum();
        assert_eq!(evicted, 60);
        assert_eq!(tracker.tracked(), 100);
        assert!(!check(0, 400).duplicate);
        assert!(check(159, 400).duplicate);
    }

    #[test]
    fn every_byte_and_the_kind_reach_the_fingerprint() {
        let keys = HashKeys::random();
        let mut seen = std::collections::HashSet::new();
        for kind in [InvType::Transaction, InvType::Block] {
            for position in 0..32 {
                for value in 1..=255u8 {
                    let mut hash = [0u8; 32];
                    hash[position] = value;
                    assert!(seen.insert(keys.item(&InventoryItem { kind, hash })));
                }
            }
            assert!(seen.insert(keys.item(&InventoryItem {
                kind,
                hash: [0; 32]
            })));
        }
    }

    #[test]
    fn threads_racing_on_the_same_hashes_miss_no_duplicate() {
        const THREADS: usize = 8;
        const MESSAGES: usize = 2000;
        let tracker = Arc::new(DedupTracker::new(DEFAULT_TTL, DEFAULT_MAX_ITEMS));
        let barrier = Arc::new(Barrier::new(THREADS));
        let t0 = Instant::now();
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                let tracker = Arc::clone(&tracker);
                let barrier = Arc::clone(&barrier);
                std::thread::spawn(move || {
                    barrier.wait();
                    let mut duplicates = 0;
                    for m in 0..MESSAGES {
                        let mut a = [0u8; 32];
                        a[..8].copy_from_slice(&(m as u64).to_le_bytes());
                        let mut b = a;
                        b[31] = 1;
                        let items = [
                            InventoryItem {
                                kind: InvType::Transaction,
                                hash: a,
                            },
                            InventoryItem {
                                kind: InvType::Transaction,
                                hash: b,
                            },
                        ];
                        if tracker.check(&items, t0).duplicate {
                            duplicates += 1;
                        }
                    }
                    duplicates
                })
            })
            .collect();
        let duplicates: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
        // Each message is new exactly once, however the threads interleave.
        assert_eq!(duplicates, (THREADS - 1) * MESSAGES);
    }
}
