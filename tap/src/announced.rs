//! Blocks' first announcements, remembered for their propagation time (first inv item of kind
//! block to acceptance).
//!
//! Most block items are repeats (every peer announces the same block), so a repeat is found
//! without a lock, a clock read or a general-purpose hash map: a fixed table of
//! [`ANNOUNCED_BLOCKS`] slots in sets of [`WAYS`], the set chosen by a hash keyed with random
//! numbers drawn when the tap starts, each slot a sequence lock over the full 32-byte hash.
//! A lookup compares full hashes, so it is exact whatever the hash function; the key only keeps
//! peers, who choose the hashes they announce, from aiming many hashes at one set. Whatever they
//! announce, a lookup reads one set and an insertion rewrites one slot: the work per item is
//! bounded. A new block takes the table's lock and evicts the oldest block of its set (which, if
//! it is ever accepted, is counted as unannounced), as flooding the table with invented hashes
//! would do to any bounded table.

use std::sync::atomic::{fence, AtomicU64, Ordering};
use std::sync::Mutex;

use crate::channel::Clock;

/// Blocks remembered; past it, a new block replaces the oldest of its set.
pub(crate) const ANNOUNCED_BLOCKS: usize = 4096;
/// Slots per set.
const WAYS: usize = 4;
const SETS: usize = ANNOUNCED_BLOCKS / WAYS;

/// A slot's version: odd while it is being written, [`OCCUPIED`] once it holds a block.
const WRITING: u64 = 1;
const OCCUPIED: u64 = 2;
const VERSION_STEP: u64 = 4;

#[derive(Default)]
struct Slot {
    version: AtomicU64,
    hash: [AtomicU64; 4],
    first_seen_ns: AtomicU64,
}

pub(crate) struct Announced {
    key: [u64; 6],
    slots: Box<[Slot]>,
    /// Held by the one writer of any slot.
    write: Mutex<()>,
}

#[inline]
pub(crate) fn words(hash: &[u8; 32]) -> [u64; 4] {
    std::array::from_fn(|i| u64::from_le_bytes(hash[i * 8..i * 8 + 8].try_into().expect("8 bytes")))
}

/// The high and low halves of a 128-bit product, folded.
#[inline]
fn fold(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    (product as u64) ^ ((product >> 64) as u64)
}

impl Announced {
    pub(crate) fn new(seed: impl Fn(u64) -> u64) -> Announced {
        Announced {
            key: std::array::from_fn(|i| seed(i as u64) | 1),
            slots: (0..ANNOUNCED_BLOCKS).map(|_| Slot::default()).collect(),
            write: Mutex::new(()),
        }
    }

    #[inline]
    fn set(&self, words: &[u64; 4]) -> &[Slot] {
        let k = &self.key;
        let a = fold(words[0] ^ k[0], words[1] ^ k[1]);
        let b = fold(words[2] ^ k[2], words[3] ^ k[3]);
        let set = (fold(a ^ k[4], b ^ k[5]) >> 32) as usize % SETS;
        &self.slots[set * WAYS..set * WAYS + WAYS]
    }

    /// The first announcement of `words`, read without the lock (retrying a slot being written
    /// is not needed: a slot being written holds another block or this one, whose writer is the
    /// caller that announced it first).
    #[inline]
    fn find(set: &[Slot], words: &[u64; 4]) -> Option<u64> {
        set.iter().find_map(|slot| {
            let before = slot.version.load(Ordering::Acquire);
            if before & (WRITING | OCCUPIED) != OCCUPIED {
                return None;
            }
            // Word by word, not as a loaded array compared whole (a stack round trip that stalls).
            let same = slot
                .hash
                .iter()
                .zip(words)
                .all(|(word, value)| word.load(Ordering::Relaxed) == *value);
            let at = slot.first_seen_ns.load(Ordering::Relaxed);
            fence(Ordering::Acquire);
            (same && slot.version.load(Ordering::Relaxed) == before).then_some(at)
        })
    }

    /// An inv announced block `hash`: remembers now as its first announcement unless it was
    /// announced before.
    #[inline]
    pub(crate) fn announce(&self, words: &[u64; 4], clock: &Clock) {
        let set = self.set(words);
        if Self::find(set, words).is_none() {
            self.insert(set, words, clock);
        }
    }

    #[cold]
    fn insert(&self, set: &[Slot], words: &[u64; 4], clock: &Clock) {
        let _guard = self.write.lock().unwrap_or_else(|e| e.into_inner());
        // Another thread may have inserted it since the lock-free look.
        if Self::find(set, words).is_some() {
            return;
        }
        let victim = set
            .iter()
            .min_by_key(|slot| {
                let occupied = slot.version.load(Ordering::Relaxed) & OCCUPIED != 0;
                (occupied, slot.first_seen_ns.load(Ordering::Relaxed))
            })
            .expect("a set has slots");
        let version = victim.version.load(Ordering::Relaxed);
        victim.version.store(version | WRITING, Ordering::Relaxed);
        fence(Ordering::Release);
        for (slot_word, word) in victim.hash.iter().zip(words) {
            slot_word.store(*word, Ordering::Relaxed);
        }
        victim
            .first_seen_ns
            .store(clock.now_ns(), Ordering::Relaxed);
        let next = (version & !(WRITING | OCCUPIED)) + VERSION_STEP;
        victim.version.store(next | OCCUPIED, Ordering::Release);
    }

    /// When `hash` was first announced, if it is remembered.
    pub(crate) fn first_seen_ns(&self, hash: &[u8; 32]) -> Option<u64> {
        let words = words(hash);
        Self::find(self.set(&words), &words)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_keeps_its_first_announcement_and_a_full_set_forgets_its_oldest() {
        let clock = Clock::new();
        let announced = Announced::new(|i| 0x9e37_79b9_7f4a_7c15_u64.wrapping_mul(i + 1));
        // Hashes that share one set, found as a peer that knew the key could find them.
        let target = announced.set(&words(&[0; 32])).as_ptr();
        let aimed: Vec<[u8; 32]> = (1..u32::MAX)
            .map(|n| {
                let mut hash = [0; 32];
                hash[..4].copy_from_slice(&n.to_le_bytes());
                hash
            })
            .filter(|hash| announced.set(&words(hash)).as_ptr() == target)
            .take(WAYS + 1)
            .collect();
        announced.announce(&words(&aimed[0]), &clock);
        let first = announced.first_seen_ns(&aimed[0]).expect("remembered");
        std::thread::sleep(std::time::Duration::from_millis(2));
        announced.announce(&words(&aimed[0]), &clock);
        assert_eq!(announced.first_seen_ns(&aimed[0]), Some(first));
        assert_eq!(announced.first_seen_ns(&aimed[1]), None);
        for hash in &aimed[1..] {
            announced.announce(&words(hash), &clock);
        }
        assert_eq!(
            announced.first_seen_ns(&aimed[0]),
            None,
            "the oldest is forgotten"
        );
        for hash in &aimed[1..] {
            assert!(announced.first_seen_ns(hash).is_some());
        }
    }
}
