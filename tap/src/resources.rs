//! The node process's resident memory and CPU time, read from `/proc/self` by the client's writer
//! task, so a node gets `p2p_node_*` metrics without reporting them itself.

/// Linux reports CPU time in clock ticks of `USER_HZ`, which is 100 on every architecture Rust
/// targets.
const TICKS_PER_SECOND: f64 = 100.0;
const PAGE_SIZE: u64 = 4096;

/// `(resident_memory_bytes, cpu_seconds_total)`, or `None` where `/proc` is not there.
pub fn read_self() -> Option<(u64, f64)> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    parse(&statm, &stat)
}

fn parse(statm: &str, stat: &str) -> Option<(u64, f64)> {
    let resident_pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // The command name in parentheses may contain spaces; fields are counted after it.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace();
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((
        resident_pages * PAGE_SIZE,
        (utime + stime) as f64 / TICKS_PER_SECOND,
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_proc_files_even_with_spaces_in_the_command_name() {
        let statm = "5000 1200 300 10 0 900 0\n";
        let stat = "4242 (my node) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 9 0";
        assert_eq!(super::parse(statm, stat), Some((1200 * 4096, 3.0)));
    }
}
