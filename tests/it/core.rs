//! The exporter core driven by the reference router in process, checked against ground truth the
//! tests count themselves.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use p2p_contract::{INVALID_NAME, OVERFLOW_NAME};
use p2p_exporter::recorder::{Recorder, RecorderConfig};
use p2p_observe::{DisconnectReason, MessageKind};
use p2p_router::rng::SplitMix64;
use p2p_router::{
    InvType, Inventory, InventoryItem, NetMessage, PeerId, Router, VersionInfo, EVENTS_CHANNEL,
};
use prometheus::{Encoder, Registry, TextEncoder};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::mpsc;

use crate::support::{sample, samples};

fn observed_router(capacity: usize) -> (Registry, Arc<Recorder>, Router) {
    let registry = Registry::new();
    let recorder = Arc::new(Recorder::new(&registry, RecorderConfig::default()).unwrap());
    let router = Router::builder(1000)
        .capacity(capacity)
        .observer(recorder.clone())
        .build();
    (registry, recorder, router)
}

fn exposition(registry: &Registry, recorder: &Recorder) -> String {
    recorder.refresh();
    let mut out = Vec::new();
    TextEncoder::new()
        .encode(&registry.gather(), &mut out)
        .unwrap();
    String::from_utf8(out).unwrap()
}

fn value(text: &str, series: &str) -> f64 {
    sample(text, series).unwrap_or_else(|| panic!("{series} missing from:\n{text}"))
}

fn ping(n: u64) -> NetMessage {
    NetMessage::Ping(n)
}

#[test]
fn lag_counter_equals_the_skips_a_slow_subscriber_saw() {
    let (registry, recorder, router) = observed_router(16);
    let mut slow = router.subscribe("slow");
    let mut rng = SplitMix64::new(11);
    let (mut sent, mut received, mut skipped) = (0u64, 0u64, 0u64);
    let mut read = |slow: &mut p2p_router::Subscriber, budget: usize| {
        for _ in 0..budget {
            match slow.try_recv() {
                Ok(_) => received += 1,
                Err(TryRecvError::Lagged(n)) => skipped += n,
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Closed) => unreachable!("the router is alive"),
            }
        }
    };
    for _ in 0..500 {
        for _ in 0..rng.below(40) {
            router.emit_message(PeerId(1), ping(sent));
            sent += 1;
        }
        read(&mut slow, rng.below(25));
    }
    read(&mut slow, usize::MAX);

    let text = exposition(&registry, &recorder);
    assert!(skipped > 0, "the workload must make the subscriber lag");
    assert_eq!(
        value(&text, r#"p2p_event_channel_lag_total{subscriber="slow"}"#),
        skipped as f64
    );
    assert_eq!(
        value(&text, r#"p2p_events_received_total{subscriber="slow"}"#),
        received as f64
    );
    assert_eq!(
        received + skipped,
        sent,
        "every event sent while subscribed is received or skipped"
    );
    assert_eq!(
        value(&text, r#"p2p_events_sent_total{channel="events"}"#),
        sent as f64
    );
    assert_eq!(
        value(&text, r#"p2p_messages_total{type="ping"}"#),
        sent as f64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lag_is_exact_with_a_slow_async_consumer_racing_the_producer() {
    let (registry, recorder, router) = observed_router(64);
    let mut slow = router.subscribe("consumer");
    let consumer = tokio::spawn(async move {
        let (mut received, mut skipped) = (0u64, 0u64);
        loop {
            match slow.recv().await {
                Ok(_) => {
                    received += 1;
                    if received % 50 == 0 {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
                Err(RecvError::Lagged(n)) => skipped += n,
                Err(RecvError::Closed) => return (received, skipped),
            }
        }
    });
    const SENT: u64 = 20_000;
    for n in 0..SENT {
        router.emit_message(PeerId(2), ping(n));
        if n % 1000 == 0 {
            tokio::task::yield_now().await;
        }
    }
    // Dropping the only router handle closes the channel once the consumer has drained it.
    drop(router);
    let (received, skipped) = consumer.await.unwrap();
    let text = exposition(&registry, &recorder);
    assert_eq!(received + skipped, SENT);
    assert_eq!(
        value(
            &text,
            r#"p2p_event_channel_lag_total{subscriber="consumer"}"#
        ),
        skipped as f64
    );
    assert_eq!(
        value(&text, r#"p2p_events_received_total{subscriber="consumer"}"#),
        received as f64
    );
}

#[test]
fn the_exporter_is_not_a_subscriber_of_the_router() {
    let (registry, recorder, router) = observed_router(8);
    // With nobody subscribed, nothing queues: the exporter observes without holding a receiver
    // that could lag or keep events alive.
    for n in 0..100 {
        router.emit_message(PeerId(1), ping(n));
    }
    assert_eq!(router.queued(), 0);
    let text = exposition(&registry, &recorder);
    assert_eq!(
        value(&text, r#"p2p_events_sent_total{channel="events"}"#),
        100.0
    );
    assert!(!text.contains("p2p_events_received_total{"), "{text}");
}

#[tokio::test(start_paused = true)]
async fn a_burst_between_two_scrapes_is_visible_at_the_next_scrape() {
    let (registry, recorder, router) = observed_router(100);
    let mut consumer = router.subscribe("consumer");
    let before = exposition(&registry, &recorder);
    assert_eq!(
        value(
            &before,
            r#"p2p_event_channel_usage_peak_ratio{channel="events"}"#
        ),
        0.0
    );

    // Between scrapes: the channel fills to 95%, then the consumer catches up.
    for n in 0..95 {
        router.emit_message(PeerId(1), ping(n));
    }
    while consumer.try_recv().is_ok() {}
    router.emit_message(PeerId(1), ping(95));
    consumer.try_recv().unwrap();
    tokio::time::advance(Duration::from_millis(14_000)).await;

    let after = exposition(&registry, &recorder);
    assert_eq!(
        value(
            &after,
            r#"p2p_event_channel_queued_events{channel="events"}"#
        ),
        1.0,
        "the instantaneous gauge alone would miss the burst"
    );
    assert_eq!(
        value(
            &after,
            r#"p2p_event_channel_usage_peak_ratio{channel="events"}"#
        ),
        0.95
    );
    // The histogram counts the sends that found the channel over 90% full: fills 0.91 to 0.95.
    let over = value(
        &after,
        r#"p2p_event_channel_usage_ratio_bucket{channel="events",le="+Inf"}"#,
    ) - value(
        &after,
        r#"p2p_event_channel_usage_ratio_bucket{channel="events",le="0.9"}"#,
    );
    assert_eq!(over, 5.0);
    assert_eq!(
        value(&after, r#"p2p_event_channel_capacity{channel="events"}"#),
        100.0
    );

    // Once the peak window (30 s) has passed, the peak is the current fill again.
    tokio::time::advance(Duration::from_secs(31)).await;
    router.emit_message(PeerId(1), ping(96));
    let later = exposition(&registry, &recorder);
    assert_eq!(
        value(
            &later,
            r#"p2p_event_channel_usage_peak_ratio{channel="events"}"#
        ),
        0.01
    );
}

fn tx_inv(hashes: &[u8]) -> NetMessage {
    NetMessage::Inv(Inventory {
        items: hashes
            .iter()
            .map(|h| InventoryItem {
                kind: InvType::Transaction,
                hash: [*h; 32],
            })
            .collect(),
    })
}

#[tokio::test(start_paused = true)]
async fn duplicate_inventory_counts_follow_the_5_second_window() {
    let (registry, recorder, router) = observed_router(64);
    router.emit_message(PeerId(1), tx_inv(&[1, 2]));
    tokio::time::advance(Duration::from_millis(4_999)).await;
    router.emit_message(PeerId(2), tx_inv(&[1, 2])); // duplicate: both seen 4.999 s ago
    router.emit_message(PeerId(3), tx_inv(&[2, 3])); // new: item 3 is new; item 2 duplicate
    tokio::time::advance(Duration::from_millis(5_001)).await;
    router.emit_message(PeerId(4), tx_inv(&[3])); // new: seen 5.001 s ago
    router.emit_message(PeerId(5), NetMessage::GetData(Inventory::default()));

    let text = exposition(&registry, &recorder);
    assert_eq!(value(&text, "p2p_inv_messages_total"), 4.0);
    assert_eq!(value(&text, "p2p_inv_duplicate_messages_total"), 1.0);
    assert_eq!(value(&text, "p2p_inv_items_total"), 7.0);
    assert_eq!(value(&text, "p2p_inv_duplicate_items_total"), 3.0);
    assert_eq!(value(&text, "p2p_inv_dedup_evictions_total"), 0.0);
    assert_eq!(value(&text, r#"p2p_messages_total{type="getdata"}"#), 1.0);
}

/// Everything a remote peer or the node's free text could put in front of the exporter.
#[tokio::test]
async fn labels_come_from_closed_sets() {
    let (registry, recorder, router) = observed_router(32);
    let mut consumer = router.subscribe("consumer");
    let mut evil = router.subscribe("Peer 10.6.6.6:8333");
    let (tx, _rx) = mpsc::channel(8);
    let mut ids = Vec::new();
    for n in 0..5u8 {
        let address = SocketAddr::from(([10, 6, 6, n], 8333));
        let version = VersionInfo {
            protocol: 70016,
            best_height: 7,
        };
        ids.push(
            router
                .register_peer(n % 2 == 0, address, version, tx.clone())
                .unwrap(),
        );
    }
    router.emit_message(
        ids[0],
        NetMessage::Reject {
            code: 1,
            reason: "\"}\nevil_metric 1 from 10.6.6.6".into(),
        },
    );
    for (i, id) in ids.iter().enumerate() {
        router.emit_message(*id, tx_inv(&[i as u8]));
        router.disconnect(
            *id,
            format!("peer {id} at 10.6.6.{i}:8333 said \u{2620} {i}"),
        );
    }
    while consumer.try_recv().is_ok() {}
    while !matches!(evil.try_recv(), Err(TryRecvError::Empty)) {}

    let text = exposition(&registry, &recorder);
    let closed: BTreeMap<&str, BTreeSet<String>> = [
        (
            "type",
            MessageKind::ALL
                .iter()
                .map(|k| k.as_str().to_owned())
                .collect(),
        ),
        (
            "reason",
            // Disconnect reasons, the tap source's closed sets (rejected lines, client drops), and the
            // HTTP server's (connection ends, accept errors).
            DisconnectReason::ALL
                .iter()
                .map(|r| r.as_str().to_owned())
                .chain(p2p_tap::Reject::ALL.iter().map(|r| r.as_str().to_owned()))
                .chain(
                    p2p_contract::TAP_CLIENT_DROP_REASONS
                        .iter()
                        .chain(&p2p_contract::TAP_CLOSE_REASONS)
                        .chain(&p2p_contract::HTTP_CLOSE_REASONS)
                        .chain(&p2p_contract::ACCEPT_ERROR_REASONS)
                        .map(|r| (*r).to_owned()),
                )
                .collect(),
        ),
        (
            "listener",
            p2p_contract::ACCEPT_LISTENERS
                .iter()
                .map(|r| (*r).to_owned())
                .collect(),
        ),
        (
            "result",
            p2p_contract::TAP_CONNECTION_RESULTS
                .iter()
                .map(|r| (*r).to_owned())
                .collect(),
        ),
        (
            "direction",
            ["inbound", "outbound"].map(String::from).into(),
        ),
        (
            "channel",
            [EVENTS_CHANNEL, OVERFLOW_NAME, INVALID_NAME]
                .map(String::from)
                .into(),
        ),
        (
            "subscriber",
            ["consumer", OVERFLOW_NAME, INVALID_NAME]
                .map(String::from)
                .into(),
        ),
        ("source", ["embedded", "tap"].map(String::from).into()),
        ("version", [env!("CARGO_PKG_VERSION").to_owned()].into()),
    ]
    .into_iter()
    .collect();
    for sample in samples(&text).iter().filter(|s| s.name.starts_with("p2p_")) {
        let name = &sample.name;
        for (label, value) in &sample.labels {
            if label == "le" {
                assert!(
                    value == "+Inf" || value.parse::<f64>().is_ok(),
                    "{name} le={value}"
                );
                continue;
            }
            let allowed = closed
                .get(label.as_str())
                .unwrap_or_else(|| panic!("{name} has an unexpected label {label}"));
            assert!(
                allowed.contains(value),
                "{name}{{{label}={value:?}}} is not in a closed set"
            );
        }
    }
    for id in &ids {
        assert!(!text.contains(&id.to_string()), "peer id {id} leaked");
    }
    assert!(!text.contains("10.6.6."), "an address leaked");
    assert!(!text.contains("evil_metric"), "message text leaked");
    assert!(value(&text, r#"p2p_events_received_total{subscriber="invalid"}"#) > 0.0);
}
