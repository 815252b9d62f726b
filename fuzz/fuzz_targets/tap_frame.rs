//! The sidecar's frame decoder on arbitrary bytes: decoding and checking must never panic, and
//! a journal that decodes must iterate to exactly the items its bytes hold.
#![no_main]

use libfuzzer_sys::fuzz_target;
use p2p_tap::protocol::{self, Frame, ENTRY_HEADER_BYTES, ITEM_BYTES};

fuzz_target!(|data: &[u8]| {
    match protocol::decode(data) {
        Ok(Frame::Snapshot(snapshot)) => {
            let _ = snapshot.check(None);
            let _ = snapshot.check(Some(&snapshot));
        }
        Ok(Frame::Journal(entries)) => {
            let bytes: usize = entries
                .iter()
                .map(|entry| ENTRY_HEADER_BYTES + entry.items().count() * ITEM_BYTES)
                .sum();
            assert_eq!(bytes, data.len() - 1);
        }
        _ => {}
    }
});
