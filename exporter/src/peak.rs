//! The highest channel fill over a sliding window, so a scrape every 15 s still sees a channel that
//! was 95% full for 200 ms in between. Lock-free: one compare-and-swap per send, in the common case
//! none.

use std::sync::atomic::{AtomicU64, Ordering};

/// Longest supported window, in seconds.
pub const MAX_WINDOW_SECONDS: u64 = 60;
const SLOTS: usize = MAX_WINDOW_SECONDS as usize + 4;

/// Per-second maxima in a ring. A slot packs `(second << 32) | value`, so a slot left over from an
/// older lap of the ring is recognised and ignored.
pub struct PeakWindow {
    slots: [AtomicU64; SLOTS],
}

impl Default for PeakWindow {
    fn default() -> Self {
        PeakWindow {
            slots: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl PeakWindow {
    /// Records `value` seen during second `second` (seconds since any fixed origin).
    pub fn record(&self, second: u64, value: u64) {
        let value = value.min(u32::MAX as u64);
        let stamp = second & 0xFFFF_FFFF;
        let slot = &self.slots[second as usize % SLOTS];
        let mut current = slot.load(Ordering::Relaxed);
        loop {
            let same_second = current >> 32 == stamp;
            if same_second && current & 0xFFFF_FFFF >= value {
                return;
            }
            match slot.compare_exchange_weak(
                current,
                (stamp << 32) | value,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(actual) => current = actual,
            }
        }
    }

    /// The largest value recorded in the `window` seconds up to and including `now`.
    pub fn max(&self, now: u64, window: u64) -> u64 {
        let window = window.clamp(1, MAX_WINDOW_SECONDS);
        (0..window)
            .filter_map(|back| now.checked_sub(back))
            .map(|second| {
                let packed = self.slots[second as usize % SLOTS].load(Ordering::Relaxed);
                if packed >> 32 == second & 0xFFFF_FFFF {
                    packed & 0xFFFF_FFFF
                } else {
                    0
                }
            })
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_stays_visible_for_the_window_then_disappears() {
        let peak = PeakWindow::default();
        peak.record(100, 10);
        peak.record(100, 1950);
        peak.record(100, 3);
        peak.record(101, 20);
        assert_eq!(peak.max(101, 15), 1950);
        assert_eq!(peak.max(114, 15), 1950);
        assert_eq!(peak.max(115, 15), 20);
        assert_eq!(peak.max(116, 15), 0);
    }

    #[test]
    fn a_slot_from_an_older_lap_is_not_mistaken_for_this_one() {
        let peak = PeakWindow::default();
        peak.record(5, 900);
        let lap = 5 + SLOTS as u64;
        assert_eq!(peak.max(lap, 1), 0);
        peak.record(lap, 7);
        assert_eq!(peak.max(lap, 1), 7);
    }

    #[test]
    fn concurrent_records_keep_the_maximum() {
        let peak = std::sync::Arc::new(PeakWindow::default());
        let threads: Vec<_> = (0..4u64)
            .map(|t| {
                let peak = peak.clone();
                std::thread::spawn(move || {
                    for v in 0..10_000u64 {
                        peak.record(42, v * 4 + t);
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(peak.max(42, 1), 9_999 * 4 + 3);
    }
}
