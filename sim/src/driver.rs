//! Runs a scenario against a design, in virtual time (deterministic, far faster than real time) or
//! in real time (to feed a live exporter).
//!
//! Virtual time is tokio's paused clock on a current-thread runtime: every `Instant::now()` in the
//! router and the workload reads it, and the driver moves it one generator tick at a time. At each
//! tick the consumers first take what they would have started on before it, then the peers send
//! what is due: the real `tokio::sync::broadcast` channels see the same sends and receives, in the
//! same order, as on a live node, so lag is the channel's own.

use std::sync::Arc;
use std::time::Duration;

use p2p_observe::Observer;
use p2p_workload::{ConsumerCost, LoadGenerator, TICK};
use tokio::time::{Instant, MissedTickBehavior};

use crate::design::{Design, DesignKind};
use crate::scenario::Scenario;
use crate::stats::{RunResult, Stats};
use p2p_recording::{Recording, RecordingSink};

/// Points in a run's time series.
const SAMPLES: u64 = 200;

/// One scenario against one design for `duration` of virtual time. `progress` is told the share
/// done, about once per sample.
pub fn run(
    scenario: &Scenario,
    design: DesignKind,
    duration: Duration,
    seed: u64,
    progress: &mut dyn FnMut(f64),
) -> RunResult {
    run_design(
        scenario,
        design.name(),
        &|max_peers, cost, observer| design.build(max_peers, cost, observer),
        duration,
        seed,
        progress,
    )
}

/// Builds a design for a run: `(max_peers, cost, observer)`.
pub type Build<'a> = &'a dyn Fn(usize, ConsumerCost, Arc<dyn Observer>) -> Box<dyn Design>;

/// Like [`run`], for any design, named `name` in the result.
pub fn run_design(
    scenario: &Scenario,
    name: &str,
    build: Build<'_>,
    duration: Duration,
    seed: u64,
    progress: &mut dyn FnMut(f64),
) -> RunResult {
    in_virtual_time(async {
        let stats = Arc::new(Stats::default());
        let design = build(
            scenario.max_peers(),
            scenario.cost.clone(),
            Arc::clone(&stats) as Arc<dyn Observer>,
        );
        let workload = p2p_workload::WorkloadConfig {
            seed,
            ..scenario.workload.clone()
        };
        let mut generator = LoadGenerator::new(design, workload);
        let ticks = (duration.as_nanos() / TICK.as_nanos()).max(1) as u64;
        drive(&mut generator, &stats, name, ticks, progress).await
    })
}

/// Runs `run` on a current-thread runtime whose clock is paused: time moves only when the driver
/// advances it.
pub fn in_virtual_time<F: std::future::Future>(run: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime starts")
        .block_on(run)
}

/// What sends into a design at each tick: the workload's peers, or a recording.
pub trait Feed {
    fn design(&mut self) -> &mut dyn Design;
    /// Sends everything due by `now`.
    fn step(&mut self, now: Instant);
    /// Peers connected after the latest step.
    fn peer_count(&self) -> usize;
}

impl Feed for LoadGenerator<Box<dyn Design>> {
    fn design(&mut self) -> &mut dyn Design {
        self.sink_mut().as_mut()
    }

    fn step(&mut self, now: Instant) {
        LoadGenerator::step(self, now)
    }

    fn peer_count(&self) -> usize {
        LoadGenerator::peer_count(self)
    }
}

/// Moves virtual time `ticks` generator ticks; at each, the design's consumers catch up, then
/// `feed` sends. Call inside [`in_virtual_time`], with `stats` the design's observer.
pub async fn drive(
    feed: &mut dyn Feed,
    stats: &Stats,
    name: &str,
    ticks: u64,
    progress: &mut dyn FnMut(f64),
) -> RunResult {
    let sample_every = (ticks / SAMPLES).max(1);
    let started = Instant::now();
    let mut series = Vec::new();
    let (mut peers_sum, mut held_peak, mut interval_held) = (0u64, 0u64, 0u64);
    for tick in 1..=ticks {
        tokio::time::advance(TICK).await;
        let now = Instant::now();
        feed.design().catch_up(now);
        feed.step(now);
        peers_sum += feed.peer_count() as u64;
        let held = feed.design().held_bytes();
        interval_held = interval_held.max(held);
        if tick % sample_every == 0 || tick == ticks {
            let t = (now - started).as_secs_f64();
            series.push(stats.sample(t, interval_held));
            held_peak = held_peak.max(interval_held);
            interval_held = 0;
            progress(tick as f64 / ticks as f64);
        }
    }
    let busy = feed.design().consumer_busy(Instant::now());
    stats.finish(
        name,
        series,
        peers_sum as f64 / ticks as f64,
        held_peak,
        busy,
    )
}

/// The same scenario and design in real time, reporting to `observer` (the exporter's recorder),
/// until the task is dropped.
/// With `recording`, every arrival at the design is recorded too.
pub async fn run_realtime(
    scenario: Scenario,
    design: DesignKind,
    observer: Arc<dyn Observer>,
    recording: Option<Recording>,
) {
    let mut design = design.build(scenario.max_peers(), scenario.cost.clone(), observer);
    if let Some(recording) = recording {
        design = Box::new(RecordingSink::new(design, recording));
    }
    let mut generator = LoadGenerator::new(design, scenario.workload);
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let now = Instant::now();
        generator.sink_mut().catch_up(now);
        generator.step(now);
    }
}
