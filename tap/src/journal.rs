//! The detail buffer: inv items for the sidecar's duplicate tracker, appended under a short lock
//! and swapped out whole by the writer. Bounded in bytes; past the bound an entry is dropped and
//! counted, never half-written. Its counts sit under the same lock, so an entry costs the node
//! one lock and a copy, and no atomic of its own.

use std::sync::Mutex;

use p2p_observe::InvType;

use crate::protocol::{self, DetailCounts, ENTRY_HEADER_BYTES, ITEM_BYTES, MAX_FRAME_BYTES};

#[derive(Default)]
struct Buffer {
    bytes: Vec<u8>,
    entries: u64,
    items: u64,
    dropped_entries: u64,
    dropped_items: u64,
}

pub(crate) struct Journal {
    buffer: Mutex<Buffer>,
    capacity: usize,
}

impl Journal {
    /// `capacity` is capped so one buffer always fits in a frame.
    pub(crate) fn new(capacity: usize) -> Journal {
        let capacity = capacity.clamp(ENTRY_HEADER_BYTES + ITEM_BYTES, MAX_FRAME_BYTES - 1);
        Journal {
            buffer: Mutex::new(Buffer {
                bytes: Vec::with_capacity(capacity),
                ..Buffer::default()
            }),
            capacity,
        }
    }

    pub(crate) fn push(
        &self,
        at_ms: u32,
        items: impl ExactSizeIterator<Item = (InvType, [u8; 32])>,
    ) {
        let count = items.len() as u64;
        let needed = ENTRY_HEADER_BYTES + items.len() * ITEM_BYTES;
        let mut buffer = self.buffer.lock().unwrap_or_else(|e| e.into_inner());
        let written = buffer.bytes.len() + needed <= self.capacity
            && protocol::encode_journal_entry(&mut buffer.bytes, at_ms, items);
        if written {
            buffer.entries += 1;
            buffer.items += count;
        } else {
            buffer.dropped_entries += 1;
            buffer.dropped_items += count;
        }
    }

    /// Swaps the buffer with `spare` (which must be empty); the entries are now the caller's.
    pub(crate) fn take(&self, spare: &mut Vec<u8>) {
        debug_assert!(spare.is_empty());
        let mut buffer = self.buffer.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::swap(&mut buffer.bytes, spare);
    }

    /// Every inv passes through [`Journal::push`], written or dropped, so these also count every
    /// inv message and item.
    pub(crate) fn counts(&self, journeys: u64, dropped_journeys: u64) -> DetailCounts {
        let buffer = self.buffer.lock().unwrap_or_else(|e| e.into_inner());
        DetailCounts {
            entries: buffer.entries,
            items: buffer.items,
            dropped_entries: buffer.dropped_entries,
            dropped_items: buffer.dropped_items,
            journeys,
            dropped_journeys,
        }
    }
}
