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
//! Layout: two generations. Each keeps its items in an arrival-ordered `Vec` of 40-byte
//! slots (full 32-byte hash, kind and a nanosecond stamp) and a hash table of `u32` positions into
//! it. Items are written to the current generation; a re-announced item moves to its back, so the
//! previous generation followed by the current one is the arrival order of latest announcements.
//! That order gives expiry (advance a cursor over the expired front) and eviction when full (advance
//! it over the oldest) without touching the hash tables. Every TTL the generations rotate and the
//! previous one is dropped whole: everything in it is then older than the TTL (see `rotate`).

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use foldhash::fast::RandomState;
use hashbrown::HashTable;
use p2p_observe::{InvType, InventoryItem};
use tokio::time::Instant;

/// The scaling document's dedup window: 5 s.
pub const DEFAULT_TTL: Duration = Duration::from_secs(5);
/// Enough for ~10 000 new items a second over the 5 s window.
pub const DEFAULT_MAX_ITEMS: usize = 50_000;

/// Messages up to this many items keep their hashes on the stack.
const INLINE_ITEMS: usize = 16;
/// Dead slots (superseded or forgotten) a generation tolerates beyond its live ones before it is
/// compacted, as the old tracker's order queue did: memory stays proportional to what is tracked.
const COMPACT_SLACK: usize = 1024;

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
    /// collisions. Keys are compared in full (kind and all 32 bytes), so the hash only places them.
    hasher: RandomState,
    /// Stamps count from here.
    base: Instant,
    state: Mutex<State>,
}

/// One item: its full hash, and `meta` = stamp << 2 | kind, where kind is 1 (tx) or 2 (block) and
/// 0 marks a slot superseded by a later announcement.
#[derive(Clone, Copy)]
struct Slot {
    hash: [u8; 32],
    meta: u64,
}

const TOMBSTONE: u64 = 0;
/// Stamps are nanoseconds from the tracker's creation, biased so that the slightly earlier
/// `now` of a thread that lost the race for the lock still fits.
const STAMP_BIAS: i64 = 1 << 60;

fn kind_bits(kind: InvType) -> u64 {
    match kind {
        InvType::Transaction => 1,
        InvType::Block => 2,
    }
}

impl Slot {
    fn new(item: &InventoryItem, stamp: i64) -> Slot {
        Slot {
            hash: item.hash,
            meta: ((stamp + STAMP_BIAS) as u64) << 2 | kind_bits(item.kind),
        }
    }

    fn is(&self, item: &InventoryItem) -> bool {
        self.meta & 3 == kind_bits(item.kind) && self.hash == item.hash
    }

    fn is_tombstone(&self) -> bool {
        self.meta == TOMBSTONE
    }

    fn stamp(&self) -> i64 {
        (self.meta >> 2) as i64 - STAMP_BIAS
    }

    fn kind(&self) -> InvType {
        if self.meta & 3 == 1 {
            InvType::Transaction
        } else {
            InvType::Block
        }
    }
}

#[derive(Default)]
struct Generation {
    /// Arrival order of latest announcements. Slots before `cursor` are forgotten (expired or
    /// evicted); the table may still point at them, and lookups treat that as absent.
    slots: Vec<Slot>,
    /// Item -> its position in `slots`, keyed by the tracker's seeded hash.
    index: HashTable<u32>,
    cursor: usize,
    /// Slots at or after `cursor` that are not tombstones.
    live: usize,
    tombstones: usize,
}

impl Generation {
    /// The item's slot, forgotten or not.
    fn find_any(&self, hash: u64, item: &InventoryItem) -> Option<usize> {
        let slots = &self.slots;
        self.index
            .find(hash, |&i| slots[i as usize].is(item))
            .map(|&i| i as usize)
    }

    /// The item's slot, if it is remembered.
    fn find(&self, hash: u64, item: &InventoryItem) -> Option<usize> {
        self.find_any(hash, item).filter(|&i| i >= self.cursor)
    }

    fn push(&mut self, slot: Slot) -> u32 {
        let at = self.slots.len();
        assert!(
            at < u32::MAX as usize,
            "a generation holds fewer than 2^32 slots"
        );
        self.slots.push(slot);
        self.live += 1;
        at as u32
    }

    fn insert(&mut self, hash: u64, slot: Slot, hasher: &RandomState) {
        let at = self.push(slot);
        let slots = &self.slots;
        self.index
            .insert_unique(hash, at, |&j| hash_slot(hasher, &slots[j as usize]));
    }

    /// Points the item's table entry, found by position, at its new slot.
    fn repoint(&mut self, hash: u64, from: usize, to: u32) {
        let entry = self.index.find_mut(hash, |&j| j as usize == from);
        *entry.expect("the slot is indexed") = to;
    }

    /// Removes a remembered item (it moved to the other generation).
    fn remove(&mut self, hash: u64, at: usize) {
        if let Ok(entry) = self.index.find_entry(hash, |&j| j as usize == at) {
            entry.remove();
        }
        self.slots[at].meta = TOMBSTONE;
        self.live -= 1;
        self.tombstones += 1;
    }

    fn clear(&mut self) {
        self.slots.clear();
        self.index.clear();
        self.cursor = 0;
        self.live = 0;
        self.tombstones = 0;
    }

    /// The oldest slot not yet forgotten, skipping tombstones.
    fn front(&mut self) -> Option<Slot> {
        while let Some(slot) = self.slots.get(self.cursor) {
            if !slot.is_tombstone() {
                return Some(*slot);
            }
            self.cursor += 1;
        }
        None
    }

    /// Forgets the front slot (which `front` just returned).
    fn forget_front(&mut self) {
        self.cursor += 1;
        self.live -= 1;
    }

    /// Rewrites the slots without the dead ones and re-indexes them: O(live), and done only once
    /// the dead outnumber the live by `COMPACT_SLACK`, so amortised O(1) per announcement.
    fn compact_if_sparse(&mut self, hasher: &RandomState) {
        let dead = self.cursor + self.tombstones;
        if dead <= self.live + COMPACT_SLACK {
            return;
        }
        let cursor = self.cursor;
        let mut kept = 0;
        for i in cursor..self.slots.len() {
            if !self.slots[i].is_tombstone() {
                self.slots[kept] = self.slots[i];
                kept += 1;
            }
        }
        self.slots.truncate(kept);
        self.index.clear();
        let slots = &self.slots;
        for (i, slot) in slots.iter().enumerate() {
            let item = InventoryItem {
                kind: slot.kind(),
                hash: slot.hash,
            };
            self.index
                .insert_unique(hash_item(hasher, &item), i as u32, |&j| {
                    hash_slot(hasher, &slots[j as usize])
                });
        }
        self.cursor = 0;
        self.tombstones = 0;
    }
}

fn hash_item(hasher: &RandomState, item: &InventoryItem) -> u64 {
    hash_key(hasher, kind_bits(item.kind), &item.hash)
}

fn hash_slot(hasher: &RandomState, slot: &Slot) -> u64 {
    hash_key(hasher, slot.meta & 3, &slot.hash)
}

fn hash_key(hasher: &RandomState, kind: u64, hash: &[u8; 32]) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = hasher.build_hasher();
    h.write_u8(kind as u8);
    h.write(hash);
    h.finish()
}

struct State {
    cap: usize,
    /// The latest `now` seen, and the start of its current generation (stamps).
    latest: i64,
    generation_start: i64,
    current: Generation,
    previous: Generation,
}

fn is_fresh(now: i64, stamp: i64, ttl: i64) -> bool {
    // A `now` earlier than the stamp (a thread that lost the race for the lock) counts as 0 s.
    (now - stamp).max(0) < ttl
}

impl State {
    fn new(cap: usize) -> State {
        State {
            cap,
            latest: 0,
            generation_start: 0,
            current: Generation::default(),
            previous: Generation::default(),
        }
    }

    fn live(&self) -> usize {
        self.current.live + self.previous.live
    }

    /// Why dropping `previous` here is exact: when a generation stopped being current,
    /// `generation_start` became the latest `now` seen, which is at least every stamp in it
    /// (stamps are past `now`s). It is dropped only once `now - generation_start >= ttl`, so every
    /// item in it was last announced at least a TTL ago: it had expired anyway.
    fn rotate(&mut self, now: i64, ttl: i64) {
        if now - self.latest >= ttl {
            // Idle for a TTL: every stamp is at most `latest`, so everything has expired.
            self.current.clear();
            self.previous.clear();
            self.generation_start = now;
        } else if now - self.generation_start >= ttl {
            self.previous.clear();
            std::mem::swap(&mut self.current, &mut self.previous);
            self.generation_start = self.latest.max(now);
        }
        self.latest = self.latest.max(now);
    }

    /// The oldest item not yet forgotten: the previous generation's front, else the current one's.
    fn oldest(&mut self) -> Option<(&mut Generation, Slot)> {
        if let Some(slot) = self.previous.front() {
            return Some((&mut self.previous, slot));
        }
        let slot = self.current.front()?;
        Some((&mut self.current, slot))
    }

    /// Forgets expired items from the front of the arrival order, as the old tracker's queue did.
    fn expire(&mut self, now: i64, ttl: i64) {
        while let Some((generation, slot)) = self.oldest() {
            if is_fresh(now, slot.stamp(), ttl) {
                break;
            }
            generation.forget_front();
        }
    }

    /// Forgets the least recently announced item; returns when it was last announced.
    fn evict_oldest(&mut self) -> Option<i64> {
        let (generation, slot) = self.oldest()?;
        generation.forget_front();
        Some(slot.stamp())
    }

    /// When the item was last announced, if it is remembered.
    fn last_seen(&self, hash: u64, item: &InventoryItem) -> Option<i64> {
        if let Some(i) = self.current.find(hash, item) {
            return Some(self.current.slots[i].stamp());
        }
        let i = self.previous.find(hash, item)?;
        Some(self.previous.slots[i].stamp())
    }

    /// Remembers an announcement of `item` at `now`; returns whether making room forgot a live item.
    fn announce(
        &mut self,
        hash: u64,
        item: &InventoryItem,
        now: i64,
        ttl: i64,
        hasher: &RandomState,
    ) -> bool {
        let slot = Slot::new(item, now);
        let in_current = self.current.find_any(hash, item);
        if let Some(i) = in_current.filter(|&i| i >= self.current.cursor) {
            // Already current: move it to the back, keeping the arrival order of latest
            // announcements (the slot at the back is simply rewritten).
            let current = &mut self.current;
            if i + 1 == current.slots.len() {
                current.slots[i] = slot;
            } else {
                let at = current.slots.len() as u32;
                current.slots.push(slot);
                current.repoint(hash, i, at);
                current.slots[i].meta = TOMBSTONE;
                current.tombstones += 1;
            }
            return false;
        }
        // Forgotten in the current generation means the older previous one has nothing live
        // (it is forgotten first), so only an item absent from the current one can be there.
        if in_current.is_none() {
            if let Some(i) = self.previous.find(hash, item) {
                self.previous.remove(hash, i);
                self.current.insert(hash, slot, hasher);
                return false;
            }
        }
        // New: make room first, as the old tracker did.
        let mut evicted_live = false;
        if self.live() >= self.cap {
            if let Some(stamp) = self.evict_oldest() {
                evicted_live = is_fresh(now, stamp, ttl);
            }
        }
        match in_current {
            Some(forgotten) => {
                let at = self.current.push(slot);
                self.current.repoint(hash, forgotten, at);
            }
            None => self.current.insert(hash, slot, hasher),
        }
        evicted_live
    }
}

impl DedupTracker {
    pub fn new(ttl: Duration, max_items: usize) -> DedupTracker {
        DedupTracker {
            ttl_ns: ttl.as_nanos().min(i64::MAX as u128 / 4) as i64,
            hasher: RandomState::default(),
            base: Instant::now(),
            state: Mutex::new(State::new(max_items.max(1))),
        }
    }

    /// Classifies one `inv` message announced at `now` and remembers its items.
    pub fn check(&self, items: &[InventoryItem], now: Instant) -> InvVerdict {
        let ttl = self.ttl_ns;
        let now = self.stamp(now);
        let mut inline = [0u64; INLINE_ITEMS];
        let mut spilled = Vec::new();
        let hashes: &mut [u64] = if items.len() <= INLINE_ITEMS {
            &mut inline[..items.len()]
        } else {
            spilled.resize(items.len(), 0);
            &mut spilled
        };
        for (hash, item) in hashes.iter_mut().zip(items) {
            *hash = hash_item(&self.hasher, item);
        }
        let mut state = lock(&self.state);
        state.rotate(now, ttl);
        state.expire(now, ttl);
        // All lookups before any insert, as before: an item repeated within one message is
        // judged by what was seen before the message.
        let duplicate_items = hashes
            .iter()
            .zip(items)
            .filter(|&(&hash, item)| {
                state
                    .last_seen(hash, item)
                    .is_some_and(|stamp| is_fresh(now, stamp, ttl))
            })
            .count();
        let evicted_live = hashes
            .iter()
            .zip(items)
            .filter(|&(&hash, item)| state.announce(hash, item, now, ttl, &self.hasher))
            .count();
        state.current.compact_if_sparse(&self.hasher);
        InvVerdict {
            duplicate: duplicate_items == items.len(),
            duplicate_items,
            evicted_live,
        }
    }

    /// Items currently remembered (as of the latest message).
    pub fn tracked(&self) -> usize {
        let mut state = lock(&self.state);
        let latest = state.latest;
        state.expire(latest, self.ttl_ns);
        state.live()
    }

    /// Nanoseconds from the tracker's creation; earlier instants are negative.
    fn stamp(&self, now: Instant) -> i64 {
        let limit = (STAMP_BIAS - 1) as u128;
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
        let state = tracker.state.lock().unwrap();
        let slots = state.current.slots.len() + state.previous.slots.len();
        assert!(slots <= 2 * 5 + COMPACT_SLACK + 1, "{slots}");
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
    /// often exactly 4.999, 5.000 or 5.001 s after it; idle gaps drop whole generations.
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
