//! Resource use of this process, read from `/proc`, for the embedded source: there the router
//! and its consumer loop run inside the exporter, so the exporter process stands in for the node.

use std::time::Duration;

use p2p_observe::{Observation, Observer};

/// Linux reports CPU time in clock ticks of `USER_HZ`, which is 100 on every architecture Rust
/// targets.
const TICKS_PER_SECOND: f64 = 100.0;
const PAGE_SIZE: u64 = 4096;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Usage {
    pub resident_memory_bytes: u64,
    pub cpu_seconds_total: f64,
}

/// `None` where `/proc` is not there to read.
pub fn read_self() -> Option<Usage> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    parse(&statm, &stat)
}

fn parse(statm: &str, stat: &str) -> Option<Usage> {
    let resident_pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // The command name in parentheses may contain spaces; fields are counted after it.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace();
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Usage {
        resident_memory_bytes: resident_pages * PAGE_SIZE,
        cpu_seconds_total: (utime + stime) as f64 / TICKS_PER_SECOND,
    })
}

/// Reports this process's usage every `period`, forever.
pub async fn sample_self(observer: impl Observer, period: Duration) {
    let mut ticker = tokio::time::interval(period);
    loop {
        ticker.tick().await;
        if let Some(usage) = read_self() {
            observer.observe(Observation::ResourceSample {
                resident_memory_bytes: usage.resident_memory_bytes,
                cpu_seconds_total: usage.cpu_seconds_total,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files_even_with_spaces_in_the_command_name() {
        let statm = "5000 1200 300 10 0 900 0\n";
        let stat = "4242 (p2p exporter) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 9 0";
        assert_eq!(
            parse(statm, stat),
            Some(Usage {
                resident_memory_bytes: 1200 * 4096,
                cpu_seconds_total: 3.0
            })
        );
        assert_eq!(parse("", stat), None);
    }

    #[test]
    fn reads_this_process() {
        let usage = read_self().expect("/proc is mounted on Linux");
        assert!(usage.resident_memory_bytes > 0);
    }
}
