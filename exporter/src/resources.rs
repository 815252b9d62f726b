//! Resource use of this process for the embedded source: there the router and its consumer loop
//! run inside the exporter, so the exporter process stands in for the node. The `/proc` reading is
//! the tap client's, which does the same inside a real node.

use std::time::Duration;

use p2p_observe::{Observation, Observer};

/// Reports this process's usage every `period`, forever.
pub async fn sample_self(observer: impl Observer, period: Duration) {
    let mut ticker = tokio::time::interval(period);
    loop {
        ticker.tick().await;
        if let Some((resident_memory_bytes, cpu_seconds_total)) = p2p_tap::resources::read_self() {
            observer.observe(Observation::ResourceSample {
                resident_memory_bytes,
                cpu_seconds_total,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_this_process() {
        let (memory, _cpu) = p2p_tap::resources::read_self().expect("/proc is mounted on Linux");
        assert!(memory > 0);
    }
}
