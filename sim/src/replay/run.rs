//! Running designs on a recording's events in virtual time, and the report of those runs.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use p2p_observe::Observer;
use p2p_recording::{rebuild_message, Header, Source};
use p2p_router::{PeerId, VersionInfo};
use p2p_workload::{ConsumerCost, TICK};
use tokio::time::Instant;

use super::{Event, Loaded};
use crate::design::{Design, DesignKind};
use crate::driver::{drive, in_virtual_time, Build, Feed};
use crate::report::{scenario_report, Report};
use crate::stats::{RunResult, Stats};

/// Sends a recording's events into a design, each at the first tick at or after its time.
struct ReplayFeed<'a> {
    design: Box<dyn Design>,
    events: &'a [(u64, Event)],
    next: usize,
    /// RecordingSink peer id -> the id the design gave it.
    ids: HashMap<u64, PeerId>,
    started: Instant,
}

impl Feed for ReplayFeed<'_> {
    fn design(&mut self) -> &mut dyn Design {
        self.design.as_mut()
    }

    fn step(&mut self, now: Instant) {
        let due = u64::try_from((now - self.started).as_nanos()).unwrap_or(u64::MAX);
        while let Some((t, event)) = self.events.get(self.next) {
            if *t > due {
                break;
            }
            self.next += 1;
            match event {
                Event::Register { peer, inbound } => {
                    // Nothing reads what the router queues to a replayed peer.
                    let (sender, _) = tokio::sync::mpsc::channel(1);
                    let registered = self.design.register_peer(
                        *inbound,
                        SocketAddr::from(([127, 0, 0, 1], 0)),
                        VersionInfo {
                            protocol: 1,
                            best_height: 0,
                        },
                        sender,
                    );
                    if let (Some(peer), Ok(id)) = (peer, registered) {
                        self.ids.insert(*peer, id);
                    }
                }
                Event::Disconnect { peer, reason } => {
                    if let Some(id) = self.ids.remove(peer) {
                        self.design.disconnect(id, reason);
                    }
                }
                Event::Message {
                    peer,
                    kind,
                    items,
                    size,
                    block,
                } => {
                    let id = self.ids.get(peer).copied().unwrap_or(PeerId(*peer));
                    let message = rebuild_message(*kind, items, *size, block.as_ref());
                    self.design.emit_message(id, message);
                }
            }
        }
    }

    fn peer_count(&self) -> usize {
        self.ids.len()
    }
}

/// The recording's length in generator ticks.
pub fn ticks(loaded: &Loaded) -> u64 {
    loaded.end.div_ceil(TICK.as_nanos() as u64).max(1)
}

/// One design on the recorded arrivals, in virtual time.
pub fn replay_design(
    loaded: &Loaded,
    name: &str,
    build: Build<'_>,
    cost: &ConsumerCost,
    progress: &mut dyn FnMut(f64),
) -> RunResult {
    in_virtual_time(async {
        let stats = Arc::new(Stats::default());
        let design = build(
            loaded.max_peers,
            cost.clone(),
            Arc::clone(&stats) as Arc<dyn Observer>,
        );
        let mut feed = ReplayFeed {
            design,
            events: &loaded.events,
            next: 0,
            ids: HashMap::new(),
            started: Instant::now(),
        };
        // What arrived as the recording began (the first peers) is there before the first tick.
        feed.step(feed.started);
        drive(&mut feed, &stats, name, ticks(loaded), progress).await
    })
}

/// The consumer's costs for a replay: each flag given overrides the recording's header, which
/// overrides the defaults (the live exporter's and most scenarios').
pub fn cost(header: &Header, block: Option<Duration>, message: Option<Duration>) -> ConsumerCost {
    let recorded = header.cost.as_ref().map(ConsumerCost::from);
    let base = recorded.unwrap_or_default();
    ConsumerCost {
        block: block.unwrap_or(base.block),
        message: message.unwrap_or(base.message),
        tx: base.tx,
    }
}

/// Every design named (or all) on the recording, as a simulator report.
pub fn report(loaded: &Loaded, name: &str, designs: &[DesignKind], cost: &ConsumerCost) -> Report {
    let header = &loaded.header;
    let mut summary = format!(
        "Replay of {} recording",
        match header.source {
            Source::Embedded => "an embedded",
            Source::Tap => "a tap",
        }
    );
    if let Some(scenario) = &header.scenario {
        summary += &format!(" of scenario {scenario}");
    }
    if let Some(design) = &header.design {
        summary += &format!(" on {design}");
    }
    summary += &format!(
        ": {} arrivals; consumer costs {} (block {:?}, message {:?}).",
        loaded.events.len(),
        if header.cost.is_some() {
            "from the recording unless overridden"
        } else {
            "from the flags or defaults"
        },
        cost.block,
        cost.message
    );
    if let Some(lag) = loaded.recorded_lag {
        summary += &format!(" The node itself reported lag {:.2}%.", lag * 100.0);
    }
    if header.source == Source::Tap {
        summary += " Tap records carry no peer identity or payloads: messages go to the recorded peers round-robin and blocks take their hashes from block_accepted, so sharded and actor results are approximate.";
    }
    let duration = Duration::from_nanos(ticks(loaded) * TICK.as_nanos() as u64);
    let mut runner = |run: &str, build: Build<'_>, done: &mut dyn FnMut(f64)| {
        replay_design(loaded, run, build, cost, done)
    };
    let scenario = scenario_report(
        name,
        &summary,
        duration,
        designs,
        &mut runner,
        &mut |_, _| {},
    );
    Report {
        seed: None,
        scenarios: vec![scenario],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::run_design;
    use crate::replay::load;
    use crate::scenario;
    use p2p_recording::{Cost, Mode, RecordingSink, RecordingWriter};

    /// Runs `kind` on the scenario while recording it, then replays the recording on `kind`.
    fn record_and_replay(name: &str, kind: DesignKind, seconds: u64) -> (RunResult, RunResult) {
        let scenario = scenario::by_name(name).unwrap();
        let dir =
            std::env::temp_dir().join(format!("p2p-replay-{}-{name}-{kind}", std::process::id()));
        let path = dir.with_extension("ndjson.gz");
        let header = Header {
            max_peers: Some(scenario.max_peers() as u64),
            cost: Some(Cost::from(&scenario.cost)),
            ..Header::new(Source::Embedded)
        };
        let writer = RecordingWriter::create(&path, &header, Mode::Lossless).unwrap();
        let recording = writer.recording();
        let duration = Duration::from_secs(seconds);
        let original = run_design(
            &scenario,
            kind.name(),
            &|max_peers, cost, observer| {
                let recording = recording.clone().starting_now();
                Box::new(RecordingSink::new(
                    kind.build(max_peers, cost, observer),
                    recording,
                ))
            },
            duration,
            1,
            &mut |_| {},
        );
        drop(recording);
        writer.finish(duration).unwrap();
        let loaded = load(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let cost = cost(&loaded.header, None, None);
        assert_eq!(cost, scenario.cost);
        let replayed = replay_design(
            &loaded,
            kind.name(),
            &|max_peers, cost, observer| kind.build(max_peers, cost, observer),
            &cost,
            &mut |_| {},
        );
        (original, replayed)
    }

    #[test]
    fn a_replayed_scenario_recording_reproduces_the_run_exactly() {
        // Blocks, competing bursts and a reorg; a surge of handshakes; per-peer designs.
        for (name, kind, seconds) in [
            ("testnet-10-burst-250", DesignKind::Broadcast2048, 65),
            ("peer-surge", DesignKind::Sharded, 20),
            ("peer-surge", DesignKind::Actor, 20),
            ("dup-storm", DesignKind::Dedup, 10),
        ] {
            let (original, replayed) = record_and_replay(name, kind, seconds);
            assert!(original.events_received > 0, "{name} {kind}");
            assert_eq!(replayed, original, "{name} {kind}");
        }
    }
}
