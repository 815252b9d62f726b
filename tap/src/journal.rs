//! The detail buffer: inv items for the sidecar's duplicate tracker, appended under a short lock
//! and swapped out whole by the writer. Bounded in bytes; past the bound an entry is dropped and
//! counted, never half-written.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use p2p_observe::InvType;

use crate::protocol::{self, DetailCounts, ENTRY_HEADER_BYTES, ITEM_BYTES, MAX_FRAME_BYTES};

pub(crate) struct Journal {
    buffer: Mutex<Vec<u8>>,
    capacity: usize,
    entries: AtomicU64,
    items: AtomicU64,
    dropped_entries: AtomicU64,
    dropped_items: AtomicU64,
}

impl Journal {
    /// `capacity` is capped so one buffer always fits in a frame.
    pub(crate) fn new(capacity: usize) -> Journal {
        let capacity = capacity.clamp(ENTRY_HEADER_BYTES + ITEM_BYTES, MAX_FRAME_BYTES - 1);
        Journal {
            buffer: Mutex::new(Vec::with_capacity(capacity)),
            capacity,
            entries: AtomicU64::new(0),
            items: AtomicU64::new(0),
            dropped_entries: AtomicU64::new(0),
            dropped_items: AtomicU64::new(0),
        }
    }

    pub(crate) fn push(
        &self,
        at_ms: u32,
        items: impl ExactSizeIterator<Item = (InvType, [u8; 32])>,
    ) {
        let count = items.len() as u64;
        let needed = ENTRY_HEADER_BYTES + items.len() * ITEM_BYTES;
        let written = {
            let mut buffer = self.buffer.lock().unwrap_or_else(|e| e.into_inner());
            buffer.len() + needed <= self.capacity
                && protocol::encode_journal_entry(&mut buffer, at_ms, items)
        };
        if written {
            self.entries.fetch_add(1, Ordering::Relaxed);
            self.items.fetch_add(count, Ordering::Relaxed);
        } else {
            self.dropped_entries.fetch_add(1, Ordering::Relaxed);
            self.dropped_items.fetch_add(count, Ordering::Relaxed);
        }
    }

    /// Swaps the buffer with `spare` (which must be empty); the entries are now the caller's.
    pub(crate) fn take(&self, spare: &mut Vec<u8>) {
        debug_assert!(spare.is_empty());
        let mut buffer = self.buffer.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::swap(&mut *buffer, spare);
    }

    pub(crate) fn counts(&self, journeys: u64, dropped_journeys: u64) -> DetailCounts {
        DetailCounts {
            entries: self.entries.load(Ordering::Relaxed),
            items: self.items.load(Ordering::Relaxed),
            dropped_entries: self.dropped_entries.load(Ordering::Relaxed),
            dropped_items: self.dropped_items.load(Ordering::Relaxed),
            journeys,
            dropped_journeys,
        }
    }
}
