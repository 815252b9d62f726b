//! The node process's resident memory and CPU time, read from `/proc/self` by the client's writer
//! task, so a node gets `p2p_node_*` metrics without reporting them itself.

use std::sync::OnceLock;

/// The kernel's page size and clock-tick rate (`USER_HZ`), which `/proc` counts in: 4 KiB and 100
/// on most machines, but 16 KiB or 64 KiB pages on some arm64 and ppc64 kernels.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Units {
    page_size: u64,
    ticks_per_second: f64,
}

fn units() -> Units {
    static UNITS: OnceLock<Units> = OnceLock::new();
    *UNITS.get_or_init(|| Units {
        page_size: sysconf(libc::_SC_PAGESIZE).unwrap_or(4096),
        ticks_per_second: sysconf(libc::_SC_CLK_TCK).unwrap_or(100) as f64,
    })
}

fn sysconf(name: libc::c_int) -> Option<u64> {
    // SAFETY: sysconf(3) takes a plain integer and touches no memory of ours.
    let value = unsafe { libc::sysconf(name) };
    u64::try_from(value).ok().filter(|&v| v > 0)
}

/// `(resident_memory_bytes, cpu_seconds_total)`, or `None` where `/proc` is not there.
pub fn read_self() -> Option<(u64, f64)> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    parse(&statm, &stat, units())
}

fn parse(statm: &str, stat: &str, units: Units) -> Option<(u64, f64)> {
    let resident_pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // The command name in parentheses may contain spaces; fields are counted after it.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace();
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((
        resident_pages * units.page_size,
        (utime + stime) as f64 / units.ticks_per_second,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files_even_with_spaces_in_the_command_name() {
        let statm = "5000 1200 300 10 0 900 0\n";
        let stat = "4242 (my node) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 9 0";
        let units = Units {
            page_size: 16384,
            ticks_per_second: 100.0,
        };
        assert_eq!(parse(statm, stat, units), Some((1200 * 16384, 3.0)));
    }

    fn getconf(name: &str) -> u64 {
        let output = std::process::Command::new("getconf")
            .arg(name)
            .output()
            .expect("run getconf");
        assert!(output.status.success(), "getconf {name}: {output:?}");
        String::from_utf8(output.stdout)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    #[test]
    fn page_size_and_clock_ticks_are_the_kernels() {
        let units = units();
        assert_eq!(units.page_size, getconf("PAGESIZE"));
        assert_eq!(units.ticks_per_second, getconf("CLK_TCK") as f64);
    }
}
