//! A recording's lines as simulator input: the recorded calls of an embedded recording as they
//! were, a tap recording's records turned into peers and messages.

use std::collections::{HashMap, VecDeque};

use p2p_recording::{parse_peer, Arrival, BlockRef, Item};
use p2p_tap::wire::{self, Body, Hash, WireMessageKind};

/// What a replay sends into a design, with the recorded peer ids.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    Register {
        peer: Option<u64>,
        inbound: bool,
    },
    Disconnect {
        peer: u64,
        reason: String,
    },
    Message {
        peer: u64,
        kind: WireMessageKind,
        items: Vec<Item>,
        size: u64,
        block: Option<BlockRef>,
    },
}

fn peer_of(line: usize, text: &str) -> Result<u64, String> {
    parse_peer(text).ok_or_else(|| format!("line {line}: peer {text:?} is not 16 hex digits"))
}

pub(super) fn embedded_events(
    lines: Vec<(usize, u64, Arrival)>,
) -> Result<Vec<(u64, Event)>, String> {
    lines
        .into_iter()
        .map(|(line, t, arrival)| {
            let event = match arrival {
                Arrival::Register { peer, inbound } => Event::Register {
                    peer: peer.map(|p| peer_of(line, &p)).transpose()?,
                    inbound,
                },
                Arrival::Disconnect { peer, reason } => Event::Disconnect {
                    peer: peer_of(line, &peer)?,
                    reason,
                },
                Arrival::Message {
                    peer,
                    message_type,
                    items,
                    size,
                    block,
                } => Event::Message {
                    peer: peer_of(line, &peer)?,
                    kind: message_type,
                    items,
                    size,
                    block,
                },
                Arrival::Tap { .. } | Arrival::End => {
                    return Err(format!(
                        "line {line}: a tap record in an embedded recording"
                    ))
                }
            };
            Ok((t, event))
        })
        .collect()
}

pub(super) fn peak_peers(events: &[(u64, Event)]) -> usize {
    let (mut live, mut peak) = (0usize, 0usize);
    for (_, event) in events {
        match event {
            Event::Register { peer: Some(_), .. } => live += 1,
            Event::Disconnect { .. } => live = live.saturating_sub(1),
            _ => {}
        }
        peak = peak.max(live);
    }
    peak
}

/// What a block message of a tap recording becomes.
enum Claim {
    Accepted { hash: [u8; 32], height: u64 },
    Orphan,
}

pub(super) struct TapConverted {
    pub(super) events: Vec<(u64, Event)>,
    pub(super) recorded_lag: Option<f64>,
    pub(super) capacity: Option<u64>,
}

/// Synthetic peers for a tap recording, and the events that keep their number in step with the
/// node's.
#[derive(Default)]
struct TapPeers {
    live: VecDeque<u64>,
    next: u64,
    round_robin: usize,
}

impl TapPeers {
    fn register(&mut self, t: u64, inbound: bool, out: &mut Vec<(u64, Event)>) -> u64 {
        self.next += 1;
        self.live.push_back(self.next);
        out.push((
            t,
            Event::Register {
                peer: Some(self.next),
                inbound,
            },
        ));
        self.next
    }

    fn disconnect(&mut self, t: u64, reason: &str, out: &mut Vec<(u64, Event)>) {
        if let Some(peer) = self.live.pop_front() {
            out.push((
                t,
                Event::Disconnect {
                    peer,
                    reason: reason.to_owned(),
                },
            ));
        }
    }

    fn set(&mut self, t: u64, peers: u64, out: &mut Vec<(u64, Event)>) {
        let peers = usize::try_from(peers).unwrap_or(usize::MAX);
        while self.live.len() < peers {
            self.register(t, true, out);
        }
        while self.live.len() > peers {
            self.disconnect(t, "other", out);
        }
    }

    fn sender(&mut self, t: u64, out: &mut Vec<(u64, Event)>) -> u64 {
        if self.live.is_empty() {
            // A message needs a peer; the node had at least one.
            return self.register(t, true, out);
        }
        let peer = self.live[self.round_robin % self.live.len()];
        self.round_robin += 1;
        peer
    }
}

fn synthetic_hash(n: u64, tag: u8) -> [u8; 32] {
    let mut hash = [0u8; 32];
    hash[..8].copy_from_slice(&n.to_le_bytes());
    hash[31] = tag;
    hash
}

pub(super) fn tap_events(lines: Vec<(usize, u64, Arrival)>) -> Result<TapConverted, String> {
    let mut records = Vec::with_capacity(lines.len());
    for (line, t, arrival) in lines {
        let Arrival::Tap { record } = arrival else {
            return Err(format!("line {line}: not a tap record in a tap recording"));
        };
        records.push((line, t, serde_json::to_vec(&record).unwrap_or_default()));
    }
    let mut decoded = Vec::with_capacity(records.len());
    for (line, t, bytes) in &records {
        let record = wire::decode(bytes).map_err(|reason| match reason {
            wire::Reject::UnknownVersion => format!(
                "line {line}: a tap record of a newer format than this build reads (version {}): upgrade the exporter",
                wire::VERSION
            ),
            other => format!("line {line}: not a tap record ({other})"),
        })?;
        decoded.push((*t, record.body));
    }
    // Blocks the node validated, in the order it reported them.
    let claims: Vec<(usize, Claim)> = decoded
        .iter()
        .enumerate()
        .filter_map(|(position, (_, body))| match body {
            Body::BlockAccepted {
                hash: Hash(Some(hash)),
                height,
                ..
            } => Some((
                position,
                Claim::Accepted {
                    hash: *hash,
                    height: *height,
                },
            )),
            Body::BlockOrphaned => Some((position, Claim::Orphan)),
            _ => None,
        })
        .collect();
    let mut next_claim = 0;
    let mut last_block: Option<BlockRef> = None;
    let mut orphans = 0u64;
    let mut peers = TapPeers::default();
    let mut session: Option<String> = None;
    let mut subscribers: HashMap<String, (u64, u64)> = HashMap::new();
    let mut capacity = None;
    let mut events = Vec::new();
    for (position, (t, body)) in decoded.iter().enumerate() {
        let t = *t;
        match body {
            Body::Hello {
                session: id,
                peers: count,
                ..
            } => {
                if session.as_deref().is_some_and(|s| s != id.as_ref()) {
                    // The node restarted: its old peers are gone.
                    peers.set(t, 0, &mut events);
                }
                session = Some(id.to_string());
                peers.set(t, *count, &mut events);
            }
            Body::Stats { peers: count, .. } => peers.set(t, *count, &mut events),
            Body::PeerConnected { direction } => {
                let inbound = matches!(direction, wire::WireDirection::Inbound);
                peers.register(t, inbound, &mut events);
            }
            Body::PeerDisconnected { reason } => {
                let reason = p2p_observe::DisconnectReason::from(*reason);
                peers.disconnect(t, reason.as_str(), &mut events);
            }
            Body::MessageEmitted {
                message_type,
                inventory,
            } => {
                let peer = peers.sender(t, &mut events);
                let block = (*message_type == WireMessageKind::Block).then(|| {
                    while next_claim < claims.len() && claims[next_claim].0 < position {
                        next_claim += 1;
                    }
                    let claim = claims.get(next_claim).map(|(_, c)| c);
                    next_claim += 1;
                    match (claim, &last_block) {
                        (Some(Claim::Accepted { hash, height }), _) => {
                            let block = BlockRef {
                                hash: Hash(Some(*hash)),
                                prev: last_block.as_ref().map_or(Hash(Some([0; 32])), |b| b.hash),
                                height: *height,
                            };
                            last_block = Some(block.clone());
                            block
                        }
                        // No validation left to match: a block the node already had.
                        (None, Some(last)) => last.clone(),
                        (Some(Claim::Orphan), _) | (None, None) => {
                            orphans += 1;
                            BlockRef {
                                hash: Hash(Some(synthetic_hash(orphans, 0xee))),
                                prev: Hash(Some(synthetic_hash(orphans, 0xef))),
                                height: 0,
                            }
                        }
                    }
                });
                events.push((
                    t,
                    Event::Message {
                        peer,
                        kind: *message_type,
                        items: inventory
                            .items
                            .iter()
                            .map(|i| Item {
                                kind: i.kind.into(),
                                hash: Hash(Some(i.hash)),
                            })
                            .collect(),
                        size: 0,
                        block,
                    },
                ));
            }
            Body::EventReceived { subscriber, .. } => {
                subscribers.entry(subscriber.to_string()).or_default().0 += 1
            }
            Body::SubscriberLagged {
                subscriber,
                skipped,
            } => subscribers.entry(subscriber.to_string()).or_default().1 += skipped,
            Body::ChannelOpened {
                capacity: opened, ..
            } => capacity = capacity.or(Some(*opened)),
            _ => {}
        }
    }
    let recorded_lag = subscribers
        .values()
        .map(|(received, lagged)| {
            let taken = received + lagged;
            if taken == 0 {
                0.0
            } else {
                *lagged as f64 / taken as f64
            }
        })
        .reduce(f64::max);
    Ok(TapConverted {
        events,
        recorded_lag,
        capacity,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replay::{load, write_gz};

    #[test]
    fn a_tap_recording_becomes_peers_round_robin_and_matched_blocks() {
        let path =
            std::env::temp_dir().join(format!("p2p-replay-tap-{}.ndjson.gz", std::process::id()));
        let hash = "ab".repeat(32);
        let text = [
            r#"{"format":"p2p-recording","v":1,"source":"tap"}"#.to_owned(),
            r#"{"t":0,"kind":"tap","record":{"v":1,"t":0,"kind":"hello","session":"s1","client":"c","peers":2}}"#.to_owned(),
            r#"{"t":1,"kind":"tap","record":{"v":1,"t":1,"kind":"message_emitted","type":"ping"}}"#.to_owned(),
            r#"{"t":2,"kind":"tap","record":{"v":1,"t":2,"kind":"message_emitted","type":"block"}}"#.to_owned(),
            format!(r#"{{"t":3,"kind":"tap","record":{{"v":1,"t":3,"kind":"block_accepted","hash":"{hash}","height":5,"propagation_ns":9}}}}"#),
            r#"{"t":4,"kind":"tap","record":{"v":1,"t":4,"kind":"message_emitted","type":"block"}}"#.to_owned(),
            r#"{"t":5,"kind":"tap","record":{"v":1,"t":5,"kind":"event_received","subscriber":"consumer","latency_ns":1}}"#.to_owned(),
            r#"{"t":6,"kind":"tap","record":{"v":1,"t":6,"kind":"subscriber_lagged","subscriber":"consumer","skipped":3}}"#.to_owned(),
            r#"{"t":7,"kind":"end"}"#.to_owned(),
        ]
        .join("\n")
            + "\n";
        write_gz(&path, &text);
        let loaded = load(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(loaded.end, 7);
        assert_eq!(loaded.max_peers, 3);
        assert_eq!(loaded.recorded_lag, Some(0.75));
        let block = BlockRef {
            hash: Hash(parse_hex(&hash)),
            prev: Hash(Some([0; 32])),
            height: 5,
        };
        let message = |peer, kind, block| Event::Message {
            peer,
            kind,
            items: vec![],
            size: 0,
            block,
        };
        assert_eq!(
            loaded
                .events
                .iter()
                .map(|(_, e)| e.clone())
                .collect::<Vec<_>>(),
            [
                Event::Register {
                    peer: Some(1),
                    inbound: true
                },
                Event::Register {
                    peer: Some(2),
                    inbound: true
                },
                message(1, WireMessageKind::Ping, None),
                message(2, WireMessageKind::Block, Some(block.clone())),
                // Nothing left to match: the block the node already had.
                message(1, WireMessageKind::Block, Some(block)),
            ]
        );
    }

    fn parse_hex(text: &str) -> Option<[u8; 32]> {
        wire::parse_hex32(text)
    }
}
