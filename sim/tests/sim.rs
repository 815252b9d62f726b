//! The simulator's promises: deterministic runs, the scaling document's own claim, each design's semantics
//! checked directly, the model's answer on every cause-specific scenario, and an hour of stress.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use p2p_observe::{Observation, Observer};
use p2p_router::block::encode_block;
use p2p_router::rng::SplitMix64;
use p2p_router::{broadcast_slot_bytes, PeerSink, EVENT_CHANNEL_SIZE};
use p2p_router::{
    BlockHeader, InvType, Inventory, InventoryItem, NetMessage, PeerEvent, PeerId, Router,
    VersionInfo,
};
use p2p_sim::design::{
    Actor, Broadcast, Dedup, Segmented, Sharded, SharedEvent, SharedMessage, ZeroCopy,
};
use p2p_sim::driver::run_design;
use p2p_sim::report::{render_json, simulate, ChannelSize};
use p2p_sim::scenario;
use p2p_sim::{run, Design, DesignKind};
use p2p_workload::ConsumerCost;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Counts what the tests look at, per channel and subscriber name.
#[derive(Default)]
struct Counts {
    inner: Mutex<CountsInner>,
}

#[derive(Default)]
struct CountsInner {
    sent: HashMap<String, u64>,
    received: HashMap<String, u64>,
    lagged: HashMap<String, u64>,
    dropped: u64,
}

impl Observer for Counts {
    fn observe(&self, observation: Observation<'_>) {
        let mut c = self.inner.lock().unwrap();
        match observation {
            Observation::EventSent { channel, .. } => {
                *c.sent.entry(channel.to_owned()).or_default() += 1
            }
            Observation::EventReceived { subscriber, .. } => {
                *c.received.entry(subscriber.to_owned()).or_default() += 1
            }
            Observation::SubscriberLagged {
                subscriber,
                skipped,
            } => *c.lagged.entry(subscriber.to_owned()).or_default() += skipped,
            Observation::InvDropped => c.dropped += 1,
            _ => {}
        }
    }
}

impl Counts {
    fn get(&self, f: impl FnOnce(&CountsInner) -> u64) -> u64 {
        f(&self.inner.lock().unwrap())
    }
}

fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
}

fn register(sink: &mut dyn PeerSink, n: u8) -> PeerId {
    let (sender, _) = mpsc::channel(1);
    let address = SocketAddr::from(([10, 0, 0, n], 8333));
    let version = VersionInfo {
        protocol: 70016,
        best_height: 0,
    };
    sink.register_peer(true, address, version, sender).unwrap()
}

fn block(height: u64, size: usize) -> NetMessage {
    let header = BlockHeader {
        prev_hash: [(height % 200) as u8; 32],
        hash: [(height % 200) as u8 + 1; 32],
        height,
    };
    NetMessage::Block(encode_block(&header, size))
}

#[test]
fn the_same_scenario_and_seed_give_identical_json() {
    let scenarios = [scenario::by_name("transient-spike").unwrap()];
    let designs = [DesignKind::Broadcast2048, DesignKind::Dedup];
    let duration = Some(Duration::from_secs(30));
    let first = simulate(&scenarios, &designs, duration, 7, &mut |_, _, _| {});
    let second = simulate(&scenarios, &designs, duration, 7, &mut |_, _, _| {});
    assert_eq!(render_json(&first), render_json(&second));
    let other_seed = simulate(&scenarios, &designs, duration, 8, &mut |_, _, _| {});
    assert_ne!(render_json(&first), render_json(&other_seed));
}

#[test]
fn the_scaling_documents_testnet_burst_of_250_blocks_shows_zero_lag_on_2048() {
    let scenario = scenario::by_name("testnet-10-burst-250").unwrap();
    let result = run(
        &scenario,
        DesignKind::Broadcast2048,
        scenario.duration,
        1,
        &mut |_| {},
    );
    assert_eq!(result.events_lost, 0);
    assert_eq!(result.lag_ratio, 0.0);
    // The burst did happen: two competing branches of 125 and 126 blocks, one reorganisation.
    assert!(
        result.blocks_accepted + result.blocks_orphaned >= 251,
        "{result:?}"
    );
    assert!(result.reorgs >= 1, "{result:?}");
}

#[test]
fn dedup_drops_exactly_the_invs_whose_items_were_all_seen_within_5s() {
    paused_runtime().block_on(async {
        let counts = Arc::new(Counts::default());
        let mut dedup = Dedup::new(8, ConsumerCost::default(), counts.clone());
        let peer = register(&mut dedup, 1);
        let mut rng = SplitMix64::new(3);
        let pool: Vec<[u8; 32]> = (0..12).map(|_| rng.hash()).collect();
        // (time, items) of every inv, for the reference count below.
        let mut announced: Vec<(Instant, Vec<[u8; 32]>)> = Vec::new();
        for _ in 0..2000 {
            tokio::time::advance(Duration::from_millis(rng.below(1500) as u64)).await;
            let hashes: Vec<[u8; 32]> = (0..rng.below(4)).map(|_| pool[rng.below(12)]).collect();
            let items = hashes
                .iter()
                .map(|hash| InventoryItem {
                    kind: InvType::Transaction,
                    hash: *hash,
                })
                .collect();
            dedup.emit_message(peer, NetMessage::Inv(Inventory { items }));
            announced.push((Instant::now(), hashes));
        }
        // Reference: a duplicate when every item was announced less than 5 s before.
        let expected = announced
            .iter()
            .enumerate()
            .filter(|(i, (at, hashes))| {
                hashes.iter().all(|hash| {
                    announced[..*i].iter().any(|(earlier, seen)| {
                        at.duration_since(*earlier) < Duration::from_secs(5) && seen.contains(hash)
                    })
                })
            })
            .count() as u64;
        assert!(expected > 100 && expected < 1900, "{expected}");
        assert_eq!(counts.get(|c| c.dropped), expected);
        // Everything else entered the channel, after the peer's Connected event.
        let sent = counts.get(|c| c.sent["events"]);
        assert_eq!(sent, 1 + 2000 - expected);
    });
}

#[test]
fn segmented_fanout_keeps_control_events_whole_through_a_data_flood() {
    paused_runtime().block_on(async {
        let cost = ConsumerCost {
            block: Duration::from_millis(10),
            ..ConsumerCost::default()
        };
        let flood = |sink: &mut dyn Design| {
            let peer = register(sink, 1);
            for height in 0..10_000 {
                sink.emit_message(peer, block(height, 100));
                if height % 100 == 0 {
                    sink.emit_message(peer, NetMessage::Ping(height));
                }
            }
        };
        let counts = Arc::new(Counts::default());
        let mut segmented = Segmented::new(8, cost.clone(), counts.clone());
        flood(&mut segmented);
        tokio::time::advance(Duration::from_secs(200)).await;
        segmented.catch_up(Instant::now());
        // 1 Connected + 100 pings, all received by the control loop.
        assert_eq!(counts.get(|c| c.received["control"]), 101);
        assert_eq!(
            counts.get(|c| c.lagged.get("control").copied().unwrap_or(0)),
            0
        );
        assert!(counts.get(|c| c.lagged["data"]) > 5000);

        // The node's single channel loses control events in the same flood.
        let counts = Arc::new(Counts::default());
        let mut single = DesignKind::Broadcast2048.build(8, cost, counts.clone());
        flood(single.as_mut());
        tokio::time::advance(Duration::from_secs(200)).await;
        single.catch_up(Instant::now());
        assert!(counts.get(|c| c.lagged["consumer"]) > 5000);
    });
}

#[test]
fn zero_copy_receivers_share_one_payload_and_broadcast_receivers_copy_it() {
    let mut design = ZeroCopy::new(8, ConsumerCost::default(), Arc::new(Counts::default()));
    let mut first = design.subscribe("first");
    let mut second = design.subscribe("second");
    let peer = register(&mut design, 1);
    design.emit_message(peer, block(1, 100_000));
    let body = |receiver: &mut p2p_sim::channel::Receiver<SharedEvent>| loop {
        match receiver.try_recv_at(Instant::now()).unwrap().0 {
            SharedEvent::Message {
                message: SharedMessage::Block(bytes),
                ..
            } => return bytes,
            _ => continue,
        }
    };
    let (a, b) = (body(&mut first), body(&mut second));
    assert_eq!(a.len(), 100_000);
    assert_eq!(a.as_ptr(), b.as_ptr());

    let router = Router::new(8);
    let (mut first, mut second) = (router.subscribe("first"), router.subscribe("second"));
    router.emit_message(peer, block(1, 100_000));
    let body = |event: PeerEvent| match event {
        PeerEvent::Message {
            message: NetMessage::Block(bytes),
            ..
        } => bytes,
        other => panic!("{other:?}"),
    };
    let (a, b) = (
        body(first.try_recv().unwrap()),
        body(second.try_recv().unwrap()),
    );
    assert_ne!(a.as_ptr(), b.as_ptr());
}

#[test]
fn sharded_and_actor_keep_each_peers_order() {
    let mut sharded = Sharded::new(64, ConsumerCost::default(), Arc::new(Counts::default()));
    let mut receivers: Vec<_> = (0..8).map(|s| sharded.subscribe(s, "check")).collect();
    let mut actor = Actor::new(64, ConsumerCost::default(), Arc::new(Counts::default()));
    let sharded_peers: Vec<_> = (0..16).map(|n| register(&mut sharded, n)).collect();
    let actor_peers: Vec<_> = (0..16).map(|n| register(&mut actor, n)).collect();
    for n in 0..100u64 {
        for p in 0..16 {
            sharded.emit_message(sharded_peers[p], NetMessage::Ping(n));
            actor.emit_message(actor_peers[p], NetMessage::Ping(n));
        }
    }
    let mut seen: HashMap<PeerId, Vec<u64>> = HashMap::new();
    for (shard, receiver) in receivers.iter_mut().enumerate() {
        while let Ok((event, _)) = receiver.try_recv_at(Instant::now()) {
            if let PeerEvent::Message {
                peer_id,
                message: NetMessage::Ping(n),
            } = event
            {
                assert_eq!(Sharded::shard_of(peer_id), shard);
                seen.entry(peer_id).or_default().push(n);
            }
        }
    }
    let in_order: Vec<u64> = (0..100).collect();
    assert_eq!(seen.len(), 16);
    assert!(seen.values().all(|pings| *pings == in_order));
    for peer in actor_peers {
        let pings: Vec<u64> = actor
            .take_mailbox(peer)
            .into_iter()
            .map(|m| match m {
                NetMessage::Ping(n) => n,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(pings, in_order);
    }
}

/// The designs whose worst subscriber lagged under 1% on a scenario, at its own duration.
fn under_1pct(name: &str) -> Vec<&'static str> {
    let scenario = scenario::by_name(name).unwrap();
    DesignKind::ALL
        .into_iter()
        .filter(|kind| run(&scenario, *kind, scenario.duration, 1, &mut |_| {}).lag_ratio < 0.01)
        .map(DesignKind::name)
        .collect()
}

#[test]
fn dup_storm_is_fixed_by_dedup_and_by_parallel_consumers() {
    assert_eq!(under_1pct("dup-storm"), ["dedup", "sharded", "actor"]);
}

#[test]
fn peer_surge_is_not_fixed_by_segmented_fanout() {
    assert_eq!(under_1pct("peer-surge"), ["sharded", "actor"]);
}

#[test]
fn a_burst_longer_than_the_channel_is_fixed_by_a_channel_that_holds_it() {
    assert_eq!(
        under_1pct("slow-consumer-burst"),
        ["broadcast-8192", "segmented"]
    );
}

#[test]
fn healthy_under_load_needs_nothing() {
    let all: Vec<_> = DesignKind::ALL.iter().map(|k| k.name()).collect();
    assert_eq!(under_1pct("healthy-under-load"), all);
}

#[test]
fn a_transient_spike_is_absorbed_by_a_bigger_channel_or_split_consumers() {
    assert_eq!(
        under_1pct("transient-spike"),
        [
            "broadcast-4096",
            "broadcast-8192",
            "segmented",
            "sharded",
            "actor"
        ]
    );
}

#[test]
fn a_simulated_hour_of_stress_100_peers_runs_in_the_suite() {
    let scenario = scenario::by_name("stress-100-peers").unwrap();
    let hour = Duration::from_secs(3600);
    let result = run(&scenario, DesignKind::Broadcast2048, hour, 1, &mut |_| {});
    assert_eq!(result.series.last().unwrap().t_seconds, 3600.0);
    // 30 bursts of 50 blocks, each block sent by 100 peers.
    assert!(
        result.events_sent > 100 * 20 * 3600,
        "{}",
        result.events_sent
    );
    assert!(result.events_lost > 0, "the bursts overflow 2048");
}

/// The channel-size answer for a scenario on the node's router, run for `duration`.
fn channel_size(name: &str, duration: Duration) -> ChannelSize {
    let scenario = scenario::by_name(name).unwrap();
    let report = simulate(
        &[scenario],
        &[DesignKind::Broadcast2048],
        Some(duration),
        1,
        &mut |_, _, _| {},
    );
    report.scenarios[0].channel_size.clone()
}

#[test]
fn the_channel_size_answer_is_the_same_for_a_run_twice_as_long() {
    // None: steady overload, which no capacity fixes.
    for (name, expected) in [
        ("peer-surge", None),
        ("slow-consumer-burst", Some(8192)),
        ("steady-overload", None),
    ] {
        let duration = scenario::by_name(name).unwrap().duration;
        for run in [duration, 2 * duration] {
            let size = channel_size(name, run);
            assert_eq!(size.capacity, expected, "{name} for {run:?}: {size:?}");
            assert_eq!(size.steady_overload, expected.is_none(), "{name}: {size:?}");
            assert_eq!(size.peak_backlog.is_some(), expected.is_some(), "{name}");
        }
    }
}

#[test]
fn the_channel_that_holds_the_largest_burst_loses_nothing_and_half_of_it_loses() {
    let scenario = scenario::by_name("slow-consumer-burst").unwrap();
    let size = channel_size(scenario.name, scenario.duration);
    let capacity = size.capacity.unwrap();
    assert!(
        size.peak_backlog.unwrap() as usize > capacity / 2,
        "{size:?}"
    );
    let lost = |capacity: usize| {
        run_design(
            &scenario,
            "check",
            &|max_peers, cost, observer| {
                Box::new(Broadcast::new(capacity, max_peers, cost, observer))
            },
            scenario.duration,
            1,
            &mut |_| {},
        )
        .events_lost
    };
    assert_eq!(lost(capacity), 0);
    assert!(lost(capacity / 2) > 0);
}

#[test]
fn the_reports_memory_figures_follow_from_the_nodes_types() {
    let scenario = scenario::by_name("dup-storm").unwrap();
    let designs = [
        DesignKind::Broadcast2048,
        DesignKind::Dedup,
        DesignKind::Segmented,
        DesignKind::ZeroCopy,
    ];
    let report = simulate(
        &[scenario],
        &designs,
        Some(Duration::from_secs(10)),
        1,
        &mut |_, _, _| {},
    );
    let s = &report.scenarios[0];
    let f = &s.figures;
    let slot = broadcast_slot_bytes::<PeerEvent>() as u64;
    assert_eq!(f.event_bytes, std::mem::size_of::<PeerEvent>() as u64);
    assert_eq!(f.slot_bytes, slot);
    let memory = |design: &str| f.memory.iter().find(|m| m.design == design).unwrap();
    let run = |design: &str| s.runs.iter().find(|r| r.design == design).unwrap();
    let baseline = memory("broadcast-2048");
    assert_eq!(baseline.fixed_bytes, EVENT_CHANNEL_SIZE as u64 * slot);
    assert_eq!(baseline.vs_baseline, 1.0);
    let segmented: u64 = p2p_sim::design::SEGMENTS
        .iter()
        .map(|(_, c)| *c as u64)
        .sum();
    assert_eq!(memory("segmented").fixed_bytes, segmented * slot);
    assert_eq!(
        memory("zero-copy").slot_bytes,
        broadcast_slot_bytes::<SharedEvent>() as u64
    );
    let held = |design: &str| memory(design).fixed_bytes + run(design).peak_held_payload_bytes;
    assert_eq!(
        memory("segmented").vs_baseline,
        held("segmented") as f64 / held("broadcast-2048") as f64
    );
    // What the figure says deduplication removes is what the dedup design dropped.
    let dedup = run("dedup");
    assert!(dedup.inv_dropped > 0);
    assert_eq!(
        f.dedup_event_share,
        dedup.inv_dropped as f64 / (dedup.events_sent + dedup.inv_dropped) as f64
    );
    assert_eq!(
        dedup.events_sent + dedup.inv_dropped,
        run("broadcast-2048").events_sent
    );
    // One subscriber: nothing for shared bodies to save.
    assert_eq!(f.subscribers, 1);
    assert_eq!(f.zero_copy_memory_saving, 0.0);
    let mut two = run("broadcast-2048").clone();
    two.subscribers = 2;
    let two = p2p_sim::figures::figures(std::slice::from_ref(&two), &two);
    assert_eq!(two.zero_copy_memory_saving, 0.5);
}

#[test]
fn steady_overload_is_fixed_only_by_running_several_consumer_loops() {
    assert_eq!(
        under_1pct("steady-overload"),
        ["segmented", "sharded", "actor"]
    );
}
