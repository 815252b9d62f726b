//! The duplicate-inventory tracker, with the seed's semantics: an `inv` message is a duplicate when
//! every one of its items was seen within the last `ttl` (5 s); items are counted the same way.
//!
//! The seed's sketch checks under a read lock and inserts later, so two peers announcing the same
//! item at the same moment are both counted new. Here the check and the insert of one message
//! happen under one lock: with any number of threads, the first announcement of an item is new and
//! every later one within the TTL is a duplicate, exactly as if they had come one at a time.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use p2p_observe::{InvType, InventoryItem};
use tokio::time::Instant;

/// The seed's dedup window.
pub const DEFAULT_TTL: Duration = Duration::from_secs(5);
/// Enough for ~10 000 new items a second over the 5 s window.
pub const DEFAULT_MAX_ITEMS: usize = 50_000;

type Key = (InvType, [u8; 32]);

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
    ttl: Duration,
    max_items: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Item -> its latest announcement. Hashes are announced by remote peers, so the map keeps a
    /// seeded hasher (no crafted collisions), but a fast one: SipHash was most of the tracker's cost.
    last_seen: HashMap<Key, Stamp, foldhash::fast::RandomState>,
    /// Announcements in arrival order, for expiry and eviction. An entry whose stamp no longer
    /// matches `last_seen` was superseded by a later announcement and is skipped.
    order: VecDeque<(Key, Stamp)>,
    next_seq: u64,
}

/// When an item was announced, and a sequence number that tells two announcements at the same
/// instant apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    at: Instant,
    seq: u64,
}

impl DedupTracker {
    pub fn new(ttl: Duration, max_items: usize) -> DedupTracker {
        DedupTracker {
            ttl,
            max_items: max_items.max(1),
            state: Mutex::new(State::default()),
        }
    }

    /// Classifies one `inv` message announced at `now` and remembers its items.
    pub fn check(&self, items: &[InventoryItem], now: Instant) -> InvVerdict {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.expire(now, self.ttl);
        let is_fresh = |seen: Option<&Stamp>| {
            seen.is_some_and(|s| now.saturating_duration_since(s.at) < self.ttl)
        };
        let duplicate_items = items
            .iter()
            .filter(|item| is_fresh(state.last_seen.get(&(item.kind, item.hash))))
            .count();
        let mut evicted_live = 0;
        for item in items {
            let key = (item.kind, item.hash);
            if !state.last_seen.contains_key(&key) && state.last_seen.len() >= self.max_items {
                if let Some(evicted_at) = state.evict_oldest() {
                    if now.saturating_duration_since(evicted_at) < self.ttl {
                        evicted_live += 1;
                    }
                }
            }
            let stamp = Stamp {
                at: now,
                seq: state.next_seq,
            };
            state.next_seq += 1;
            state.last_seen.insert(key, stamp);
            state.order.push_back((key, stamp));
        }
        state.compact();
        InvVerdict {
            duplicate: duplicate_items == items.len(),
            duplicate_items,
            evicted_live,
        }
    }

    /// Items currently remembered.
    pub fn tracked(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .last_seen
            .len()
    }
}

impl State {
    fn expire(&mut self, now: Instant, ttl: Duration) {
        while let Some(&(key, stamp)) = self.order.front() {
            if now.saturating_duration_since(stamp.at) < ttl {
                break;
            }
            self.order.pop_front();
            if self.last_seen.get(&key) == Some(&stamp) {
                self.last_seen.remove(&key);
            }
        }
    }

    /// Forgets the least recently announced item; returns when it was last announced.
    fn evict_oldest(&mut self) -> Option<Instant> {
        while let Some((key, stamp)) = self.order.pop_front() {
            if self.last_seen.get(&key) == Some(&stamp) {
                self.last_seen.remove(&key);
                return Some(stamp.at);
            }
        }
        None
    }

    /// Re-announcements leave superseded entries in `order`; drop them once they outnumber the
    /// live ones, so memory stays proportional to the tracked items.
    fn compact(&mut self) {
        if self.order.len() > 2 * self.last_seen.len() + 1024 {
            let last_seen = &self.last_seen;
            self.order
                .retain(|(key, stamp)| last_seen.get(key) == Some(stamp));
        }
    }
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
        let state = tracker.state.lock().unwrap();
        assert_eq!(state.last_seen.len(), 5);
        assert!(
            state.order.len() <= 2 * 5 + 1024 + 1,
            "{}",
            state.order.len()
        );
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
