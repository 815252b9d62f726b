//! The detail buffer: inv items for the sidecar's duplicate tracker. Each thread that reports has
//! its own [`Shard`]: its message counts and a byte ring of journal entries, both written by that
//! thread alone, so the hot path takes no lock and no lock-prefixed instruction. The writer thread
//! is the ring's only reader: it copies out what was written and frees the space.
//!
//! A ring is bounded in bytes; past the bound an entry is dropped and counted, never half-written.
//! The counts are exact: each is written by one thread (a relaxed load and store) and read by the
//! snapshot, which sums the shards.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use p2p_observe::MessageKind;

use crate::client::TapItem;
use crate::protocol::{ENTRY_HEADER_BYTES, ITEM_BYTES, MAX_FRAME_BYTES, MAX_ITEMS};

/// Keeps a value on a cache line of its own, so the producer's and the reader's positions do not
/// share one.
#[repr(align(64))]
struct Padded<T>(T);

/// A single-producer, single-consumer byte ring. Positions grow without wrapping (a `usize` of
/// bytes); the capacity is a power of two, so a position's offset is a mask.
struct Ring {
    bytes: Box<[UnsafeCell<u8>]>,
    mask: usize,
    /// Bytes written: stored by the producer only, with `Release` after the bytes.
    head: Padded<AtomicUsize>,
    /// Bytes read: stored by the consumer only, with `Release` after it copied them out.
    tail: Padded<AtomicUsize>,
}

// SAFETY: the bytes between `tail` and `head` are only read (by the consumer), the rest only
// written (by the producer); `head` and `tail` hand the regions over with Release/Acquire. The
// producer side is used by one thread at a time (the shard's owner, or a caller holding the
// fallback shard's lock), the consumer side by the writer thread under the shard list's lock.
unsafe impl Sync for Ring {}

impl Ring {
    fn new(capacity: usize) -> Ring {
        // The largest power of two within the bound (and one frame), at least 64 bytes.
        let bound = capacity.clamp(64, MAX_FRAME_BYTES - 1);
        let capacity = 1usize << (usize::BITS - 1 - bound.leading_zeros());
        Ring {
            bytes: (0..capacity).map(|_| UnsafeCell::new(0)).collect(),
            mask: capacity - 1,
            head: Padded(AtomicUsize::new(0)),
            tail: Padded(AtomicUsize::new(0)),
        }
    }

    fn base(&self) -> *mut u8 {
        UnsafeCell::raw_get(self.bytes.as_ptr())
    }

    /// Appends one entry, or returns false (writing nothing) when it does not fit. Producer only.
    #[inline]
    fn push<I: TapItem>(&self, at_ms: u32, items: &[I]) -> bool {
        if items.len() > MAX_ITEMS {
            return false;
        }
        let needed = ENTRY_HEADER_BYTES + items.len() * ITEM_BYTES;
        let head = self.head.0.load(Ordering::Relaxed);
        let tail = self.tail.0.load(Ordering::Acquire);
        if head.wrapping_sub(tail) + needed > self.bytes.len() {
            return false;
        }
        let start = head & self.mask;
        if start + needed <= self.bytes.len() {
            // SAFETY: [start, start + needed) lies in the buffer and in the free region, which
            // only this producer touches until `head` is published below.
            let out = unsafe { std::slice::from_raw_parts_mut(self.base().add(start), needed) };
            encode(out, at_ms, items);
        } else {
            self.push_wrapped(start, needed, at_ms, items);
        }
        self.head.0.store(head + needed, Ordering::Release);
        true
    }

    /// An entry that crosses the end of the buffer: encoded aside, then copied in two parts.
    #[cold]
    fn push_wrapped<I: TapItem>(&self, start: usize, needed: usize, at_ms: u32, items: &[I]) {
        let mut entry = vec![0; needed];
        encode(&mut entry, at_ms, items);
        let first = self.bytes.len() - start;
        // SAFETY: as in `push`: the free region, split at the end of the buffer.
        unsafe {
            std::ptr::copy_nonoverlapping(entry.as_ptr(), self.base().add(start), first);
            std::ptr::copy_nonoverlapping(entry.as_ptr().add(first), self.base(), needed - first);
        }
    }

    /// Appends everything written so far to `out` and frees it. Consumer only.
    fn drain(&self, out: &mut Vec<u8>) {
        let tail = self.tail.0.load(Ordering::Relaxed);
        let head = self.head.0.load(Ordering::Acquire);
        let len = head.wrapping_sub(tail);
        if len == 0 {
            return;
        }
        let start = tail & self.mask;
        let first = len.min(self.bytes.len() - start);
        // SAFETY: [tail, head) was published by the producer's Release store of `head`, and the
        // producer does not write it again until `tail` moves past it.
        unsafe {
            out.extend_from_slice(std::slice::from_raw_parts(self.base().add(start), first));
            out.extend_from_slice(std::slice::from_raw_parts(self.base(), len - first));
        }
        self.tail.0.store(head, Ordering::Release);
    }
}

/// One entry in the layout of [`crate::protocol::encode_journal_entry`], into a slice of exactly
/// its size.
#[inline]
fn encode<I: TapItem>(out: &mut [u8], at_ms: u32, items: &[I]) {
    let (header, body) = out.split_at_mut(ENTRY_HEADER_BYTES);
    header[..4].copy_from_slice(&at_ms.to_le_bytes());
    header[4..].copy_from_slice(&(items.len() as u16).to_le_bytes());
    for (item, out) in items.iter().zip(body.chunks_exact_mut(ITEM_BYTES)) {
        out[0] = item.inv_type() as u8;
        out[1..].copy_from_slice(item.hash());
    }
}

/// Adds `n` to a count that only one thread writes: a relaxed load and store, no lock prefix.
#[inline]
fn add(count: &AtomicU64, n: u64) {
    count.store(count.load(Ordering::Relaxed) + n, Ordering::Relaxed);
}

/// A thread's counts and detail ring, for one tap. Written by its owner thread only; read by
/// snapshots and drained by the writer thread.
pub(crate) struct Shard {
    messages: [AtomicU64; MessageKind::ALL.len()],
    entries: AtomicU64,
    items: AtomicU64,
    dropped_entries: AtomicU64,
    dropped_items: AtomicU64,
    /// The last block this thread saw announced (valid once `has_last_block`): a run of
    /// announcements of one block, every peer announcing the new tip, then costs one comparison.
    last_block: [AtomicU64; 4],
    has_last_block: AtomicBool,
    ring: Ring,
}

/// The sums of the detail counts over the shards.
#[derive(Default)]
pub(crate) struct JournalCounts {
    pub(crate) entries: u64,
    pub(crate) items: u64,
    pub(crate) dropped_entries: u64,
    pub(crate) dropped_items: u64,
}

impl Shard {
    pub(crate) fn new(ring_bytes: usize) -> Shard {
        Shard {
            messages: std::array::from_fn(|_| AtomicU64::new(0)),
            entries: AtomicU64::new(0),
            items: AtomicU64::new(0),
            dropped_entries: AtomicU64::new(0),
            dropped_items: AtomicU64::new(0),
            last_block: std::array::from_fn(|_| AtomicU64::new(0)),
            has_last_block: AtomicBool::new(false),
            ring: Ring::new(ring_bytes),
        }
    }

    /// Counts a message. Owner only.
    #[inline]
    pub(crate) fn message(&self, kind: MessageKind) {
        add(&self.messages[kind.index()], 1);
    }

    /// Writes an inv's entry, or counts it dropped when the ring is full. Owner only.
    #[inline]
    pub(crate) fn inv<I: TapItem>(&self, at_ms: u32, items: &[I]) {
        let count = items.len() as u64;
        if self.ring.push(at_ms, items) {
            add(&self.entries, 1);
            add(&self.items, count);
        } else {
            add(&self.dropped_entries, 1);
            add(&self.dropped_items, count);
        }
    }

    /// Whether `block` is a block other than the last this thread saw announced, which it then
    /// becomes. Owner only.
    #[inline]
    pub(crate) fn new_block(&self, block: &[u64; 4]) -> bool {
        // Word by word: an array of the loaded words, compared whole, would be stored to the stack
        // and read back wider than it was written, which stalls.
        let same = self
            .last_block
            .iter()
            .zip(block)
            .all(|(word, value)| word.load(Ordering::Relaxed) == *value);
        if same && self.has_last_block.load(Ordering::Relaxed) {
            return false;
        }
        for (word, value) in self.last_block.iter().zip(block) {
            word.store(*value, Ordering::Relaxed);
        }
        self.has_last_block.store(true, Ordering::Relaxed);
        true
    }

    /// Appends the entries written since the last call to `out`. The writer thread only (or one
    /// caller at a time, under the shard list's lock).
    pub(crate) fn drain(&self, out: &mut Vec<u8>) {
        self.ring.drain(out);
    }

    /// Adds this shard's message counts to `messages`.
    pub(crate) fn add_messages(&self, messages: &mut [u64]) {
        for (sum, count) in messages.iter_mut().zip(&self.messages) {
            *sum += count.load(Ordering::Relaxed);
        }
    }

    /// Adds this shard's detail counts to `counts`. Every inv passes through [`Shard::inv`],
    /// written or dropped, so these also count every inv message and item.
    pub(crate) fn add_counts(&self, counts: &mut JournalCounts) {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        counts.entries += load(&self.entries);
        counts.items += load(&self.items);
        counts.dropped_entries += load(&self.dropped_entries);
        counts.dropped_items += load(&self.dropped_items);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{self, Frame, FRAME_JOURNAL};
    use p2p_observe::{InvType, InventoryItem};

    fn item(n: u8) -> InventoryItem {
        InventoryItem {
            kind: if n.is_multiple_of(2) {
                InvType::Transaction
            } else {
                InvType::Block
            },
            hash: [n; 32],
        }
    }

    #[test]
    fn entries_cross_the_end_of_the_ring_intact_and_a_full_ring_drops_whole_entries() {
        // 256 bytes: three entries of 2 items (72 bytes each) fit, a fourth does not.
        let shard = Shard::new(256);
        let mut out = Vec::new();
        let mut expected = Vec::new();
        for round in 0..20u8 {
            for n in 0..3u8 {
                let items = [item(round), item(n)];
                shard.inv(u32::from(round), &items);
                protocol::encode_journal_entry(
                    &mut expected,
                    u32::from(round),
                    items.iter().map(|i| (i.kind, i.hash)),
                );
            }
            shard.inv(0, &[item(1), item(2)]);
            shard.drain(&mut out);
        }
        assert_eq!(out, expected);
        let mut frame = vec![FRAME_JOURNAL];
        frame.extend_from_slice(&out);
        let Ok(Frame::Journal(entries)) = protocol::decode(&frame) else {
            panic!("a journal frame");
        };
        assert_eq!(entries.iter().count(), 60);
        let mut counts = JournalCounts::default();
        shard.add_counts(&mut counts);
        assert_eq!((counts.entries, counts.items), (60, 120));
        assert_eq!((counts.dropped_entries, counts.dropped_items), (20, 40));
    }
}
