//! The wire format: every observation round-trips, the JSON Schema accepts what the encoder
//! writes (and refuses what the decoder refuses), and every bad line gets its own reason.

use std::borrow::Cow;
use std::path::Path;
use std::time::Duration;

use p2p_observe::{Direction, DisconnectReason, InvType, InventoryItem, MessageKind, Observation};
use p2p_tap::wire::{self, Body, Record, Reject, MAX_ITEMS, MAX_LINE_BYTES, VERSION};

fn item(kind: InvType, byte: u8) -> InventoryItem {
    let mut hash = [byte; 32];
    hash[0] = 0xab;
    hash[31] = 0x0f;
    InventoryItem { kind, hash }
}

/// One of every observation, with values at the edges of their ranges.
fn every_observation(items: &[InventoryItem]) -> Vec<Observation<'_>> {
    let mut all = vec![
        Observation::ChannelOpened {
            channel: "events",
            capacity: 2048,
        },
        Observation::PeerRefused,
        Observation::EventSent {
            channel: "events",
            queued: 2047,
            capacity: 2048,
        },
        Observation::MessageEmitted {
            kind: MessageKind::Inv,
            inventory: items,
        },
        Observation::EventReceived {
            subscriber: "consumer",
            latency: Duration::from_nanos(1_234_567),
        },
        Observation::SubscriberLagged {
            subscriber: "consumer",
            skipped: u64::MAX,
        },
        Observation::BlockAccepted {
            hash: [0xcd; 32],
            height: 1_000_001,
            received: Some(Duration::from_millis(12)),
            delivered: Some(Duration::from_millis(40)),
            propagation: Duration::from_millis(87),
        },
        // Announced by the block itself (a genuine zero), from a node that does not time delivery.
        Observation::BlockAccepted {
            hash: [0xce; 32],
            height: 1_000_002,
            received: Some(Duration::ZERO),
            delivered: None,
            propagation: Duration::from_millis(3),
        },
        Observation::InvDropped,
        Observation::BlockOrphaned,
        Observation::ChainReorganized { depth: u32::MAX },
        Observation::ResourceSample {
            resident_memory_bytes: 123 << 20,
            cpu_seconds_total: 17.25,
        },
    ];
    for direction in [Direction::Inbound, Direction::Outbound] {
        all.push(Observation::PeerConnected { direction });
    }
    for reason in DisconnectReason::ALL {
        all.push(Observation::PeerDisconnected { reason });
    }
    for kind in MessageKind::ALL {
        all.push(Observation::MessageEmitted {
            kind,
            inventory: &[],
        });
    }
    all
}

fn control_records() -> Vec<Body<'static>> {
    vec![
        Body::Hello {
            session: Cow::Borrowed("0123456789abcdef"),
            client: Cow::Borrowed("p2p-tap/0.1.0"),
            token: Some(Cow::Borrowed("s3cret")),
            peers: 17,
        },
        Body::Hello {
            session: Cow::Borrowed("x"),
            client: Cow::Borrowed("y"),
            token: None,
            peers: 0,
        },
        Body::Stats {
            produced: 10,
            dropped: 2,
            lost: 1,
            peers: 3,
        },
    ]
}

fn line(body: Body<'_>, t: u64) -> Vec<u8> {
    wire::encode(&Record {
        v: VERSION,
        t,
        body,
    })
}

#[test]
fn every_observation_kind_encodes_and_decodes_to_itself() {
    let items = [
        item(InvType::Transaction, 1),
        item(InvType::Block, 2),
        item(InvType::Transaction, 0xff),
    ];
    let observations = every_observation(&items);
    let mut kinds = std::collections::BTreeSet::new();
    for (t, observation) in observations.iter().enumerate() {
        let encoded = line(Body::from_observation(observation), t as u64);
        assert_eq!(encoded.last(), Some(&b'\n'));
        assert_eq!(
            encoded.iter().filter(|&&b| b == b'\n').count(),
            1,
            "one line"
        );
        let decoded = wire::decode(&encoded[..encoded.len() - 1]).unwrap();
        assert_eq!(decoded.v, VERSION);
        assert_eq!(decoded.t, t as u64);
        assert_eq!(decoded.body.observation().as_ref(), Some(observation));
        let json: serde_json::Value = serde_json::from_slice(&encoded).unwrap();
        kinds.insert(json["kind"].as_str().unwrap().to_owned());
    }
    // Thirteen observation variants, each with its own kind.
    assert_eq!(kinds.len(), 13, "{kinds:?}");
    for body in control_records() {
        let encoded = line(body.clone(), 5);
        let decoded = wire::decode(&encoded[..encoded.len() - 1]).unwrap();
        assert_eq!(decoded.body, body);
        assert_eq!(decoded.body.observation(), None);
    }
}

#[test]
fn records_look_like_the_documented_example() {
    let items = [item(InvType::Block, 0x11)];
    let encoded = line(
        Body::from_observation(&Observation::MessageEmitted {
            kind: MessageKind::Inv,
            inventory: &items,
        }),
        42,
    );
    let hash = format!("ab{}0f", "11".repeat(30));
    assert_eq!(
        String::from_utf8(encoded).unwrap(),
        format!(
            "{{\"v\":1,\"t\":42,\"kind\":\"message_emitted\",\"type\":\"inv\",\"inventory\":[{{\"type\":\"block\",\"hash\":\"{hash}\"}}]}}\n"
        )
    );
    let ping = line(
        Body::from_observation(&Observation::MessageEmitted {
            kind: MessageKind::Ping,
            inventory: &[],
        }),
        7,
    );
    assert_eq!(
        ping,
        b"{\"v\":1,\"t\":7,\"kind\":\"message_emitted\",\"type\":\"ping\"}\n"
    );
}

fn schema() -> jsonschema::Validator {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/recording-lines.schema.json");
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    jsonschema::validator_for(&schema).expect("the schema is valid JSON Schema")
}

#[test]
fn the_json_schema_accepts_every_record_the_encoder_writes() {
    let validator = schema();
    let items: Vec<_> = (0..5).map(|i| item(InvType::Transaction, i)).collect();
    let mut bodies: Vec<Body<'_>> = every_observation(&items)
        .iter()
        .map(Body::from_observation)
        .collect();
    bodies.extend(control_records());
    for body in bodies {
        let encoded = line(body, u64::MAX);
        let json: serde_json::Value = serde_json::from_slice(&encoded).unwrap();
        let errors: Vec<_> = validator
            .iter_errors(&json)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{json}: {errors:?}");
    }
}

#[test]
fn the_json_schema_refuses_what_the_decoder_refuses() {
    let validator = schema();
    let hash = "00".repeat(32);
    for bad in [
        r#"{"v":1,"t":1,"kind":"peer_refused","extra":1}"#.to_owned(),
        r#"{"v":2,"t":1,"kind":"peer_refused"}"#.to_owned(),
        r#"{"v":1,"t":-1,"kind":"peer_refused"}"#.to_owned(),
        r#"{"v":1,"t":1,"kind":"peer_connected","direction":"sideways"}"#.to_owned(),
        r#"{"v":1,"t":1,"kind":"event_sent","channel":"events","queued":"3","capacity":4}"#
            .to_owned(),
        format!(
            r#"{{"v":1,"t":1,"kind":"message_emitted","type":"inv","inventory":[{{"type":"block","hash":"{}"}}]}}"#,
            &hash[..62]
        ),
        r#"{"v":1,"t":1,"kind":"launch_missiles"}"#.to_owned(),
    ] {
        let json: serde_json::Value = serde_json::from_str(&bad).unwrap();
        assert!(!validator.is_valid(&json), "schema accepted {bad}");
        if !bad.contains("extra") {
            assert!(
                wire::decode(bad.as_bytes()).is_err(),
                "decoder accepted {bad}"
            );
        }
    }
}

#[test]
fn each_bad_line_is_refused_with_its_reason() {
    let good_hash = "ab".repeat(32);
    let inv = |hash: &str| {
        format!(
            r#"{{"v":1,"t":1,"kind":"message_emitted","type":"inv","inventory":[{{"type":"transaction","hash":"{hash}"}}]}}"#
        )
    };
    let many = |n: usize| {
        let item = format!(r#"{{"type":"block","hash":"{good_hash}"}}"#);
        format!(
            r#"{{"v":1,"t":1,"kind":"message_emitted","type":"inv","inventory":[{}]}}"#,
            vec![item; n].join(",")
        )
    };
    let cases: Vec<(Vec<u8>, Reject)> = vec![
        (b"".to_vec(), Reject::Empty),
        (b"  \t\r".to_vec(), Reject::Empty),
        (b"{\"v\":1,\"t\":1,".to_vec(), Reject::Malformed),
        (b"not json".to_vec(), Reject::Malformed),
        (b"{\"v\":1,\"t\":1,\"kind\":\"peer_refused\"}}".to_vec(), Reject::Malformed),
        (
            b"{\"v\":1,\"t\":1,\"kind\":\"event_sent\",\"channel\":\"events\",\"queued\":\"3\",\"capacity\":4}"
                .to_vec(),
            Reject::Invalid,
        ),
        (b"{\"v\":1,\"t\":1,\"kind\":\"chain_reorganized\"}".to_vec(), Reject::Invalid),
        (b"{\"v\":1,\"t\":1,\"kind\":\"no_such_kind\"}".to_vec(), Reject::Invalid),
        (b"[1,2,3]".to_vec(), Reject::Invalid),
        (
            b"{\"v\":1,\"t\":1,\"kind\":\"resource_sample\",\"resident_memory_bytes\":1,\"cpu_seconds_total\":-1}"
                .to_vec(),
            Reject::Invalid,
        ),
        (b"{\"v\":2,\"t\":1,\"kind\":\"peer_refused\"}".to_vec(), Reject::UnknownVersion),
        // A newer version with a shape this reader does not know is still "unknown version".
        (b"{\"v\":7,\"t\":\"soon\",\"kind\":\"warp\"}".to_vec(), Reject::UnknownVersion),
        (b"{\"v\":0,\"t\":1,\"kind\":\"peer_refused\"}".to_vec(), Reject::UnknownVersion),
        (inv(&good_hash[..63]).into_bytes(), Reject::BadHash),
        (
            format!(r#"{{"v":1,"t":1,"kind":"block_accepted","hash":"{}","height":1,"propagation_ns":1}}"#, "g".repeat(64)).into_bytes(),
            Reject::BadHash,
        ),
        (inv(&format!("zz{}", &good_hash[2..])).into_bytes(), Reject::BadHash),
        (b"{\"v\":1,\"t\":1,\"kind\":\"block_orphaned\",\"x\":\"\xff\xfe\"}".to_vec(), Reject::InvalidUtf8),
        (many(MAX_ITEMS + 1).into_bytes(), Reject::TooManyItems),
        (vec![b'x'; MAX_LINE_BYTES + 1], Reject::Oversize),
    ];
    for (line, reason) in cases {
        let shown = String::from_utf8_lossy(&line[..line.len().min(120)]).into_owned();
        assert_eq!(wire::decode(&line).map(|_| ()), Err(reason), "{shown}");
    }
    // The limits themselves are accepted.
    assert!(wire::decode(many(MAX_ITEMS).as_bytes()).is_ok());
    assert!(wire::decode(inv(&good_hash.to_uppercase()).as_bytes()).is_ok());
}

#[test]
fn an_older_record_with_fields_this_reader_does_not_know_is_read() {
    let record = wire::decode(
        br#"{"v":1,"t":9,"kind":"subscriber_lagged","subscriber":"consumer","skipped":4,"note":"from a newer minor"}"#,
    )
    .unwrap();
    assert_eq!(
        record.body.observation(),
        Some(Observation::SubscriberLagged {
            subscriber: "consumer",
            skipped: 4
        })
    );
}

#[test]
fn a_block_accepted_without_the_optional_offsets_is_read_as_unknown() {
    let hash = "cd".repeat(32);
    let old = format!(
        r#"{{"v":1,"t":9,"kind":"block_accepted","hash":"{hash}","height":7,"propagation_ns":87}}"#
    );
    assert_eq!(
        wire::decode(old.as_bytes()).unwrap().body.observation(),
        Some(Observation::BlockAccepted {
            hash: [0xcd; 32],
            height: 7,
            received: None,
            delivered: None,
            propagation: Duration::from_nanos(87),
        })
    );
    // A known zero is written as 0, an unknown offset not at all.
    let encoded = line(
        Body::from_observation(&Observation::BlockAccepted {
            hash: [0xcd; 32],
            height: 7,
            received: Some(Duration::ZERO),
            delivered: None,
            propagation: Duration::from_nanos(87),
        }),
        9,
    );
    let json: serde_json::Value = serde_json::from_slice(&encoded).unwrap();
    assert_eq!(json["received_ns"], 0);
    assert!(json.get("delivered_ns").is_none());
    assert!(schema().is_valid(&json));
}
