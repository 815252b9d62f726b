//! Replay: a recording's arrivals through each router design in virtual time, with the
//! simulator's report (what-if table, framework verdict, channel size). docs/recording.md.
//!
//! An embedded recording holds the very calls the router received, so a replay on the recorded
//! design reproduces the recorded run exactly. A tap recording holds what the node's tap reported:
//! message kinds and inventory, but no peer identity and no payloads. Its messages are handed to
//! the recorded peers round-robin, and each block takes the hash of the next `block_accepted` (or
//! is an orphan where the node reported one), so designs that split traffic by peer (sharded,
//! actor) get an approximate split.

use std::collections::{HashMap, VecDeque};
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use p2p_observe::Observer;
use p2p_router::{PeerId, VersionInfo};
use p2p_tap::wire::{self, Body, Hash, WireMessageKind};
use p2p_workload::{ConsumerCost, TICK};
use tokio::time::Instant;

use crate::driver::{drive, in_virtual_time, Build, Feed};
use crate::report::{render_html, render_json, render_table, scenario_report, Report};
use crate::stats::{RunResult, Stats};
use crate::strategy::{Strategy, StrategyKind};
use p2p_recording::{parse_peer, rebuild_message, Arrival, BlockRef, Header, Item, Source};

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

/// A recording read whole and checked.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub header: Header,
    /// (nanoseconds since the recording began, event), in arrival order.
    pub events: Vec<(u64, Event)>,
    /// When recording stopped.
    pub end: u64,
    /// Peers a replayed design accepts: the header's, else one more than the most ever connected.
    pub max_peers: usize,
    /// Tap recordings: the worst subscriber's lag ratio as the node itself reported it.
    pub recorded_lag: Option<f64>,
}

/// Reads a recording; the error is one line naming the file and what is wrong with it.
pub fn load(path: &Path) -> Result<Loaded, String> {
    let shown = path.display();
    let contents = p2p_recording::read(path).map_err(|e| e.to_string())?;
    let header = contents.header;
    let lines_read: Vec<(usize, u64, Arrival)> = contents
        .arrivals
        .into_iter()
        .map(|(line, t, arrival)| (usize::try_from(line).unwrap_or(usize::MAX), t, arrival))
        .collect();
    let last = lines_read.last().map_or(0, |(_, t, _)| *t);
    let end = contents.end.max(last);
    let (events, recorded_lag, capacity) = match header.source {
        Source::Embedded => (
            embedded_events(lines_read).map_err(|e| format!("{shown} {e}"))?,
            None,
            None,
        ),
        Source::Tap => {
            let converted = tap_events(lines_read).map_err(|e| format!("{shown} {e}"))?;
            (converted.events, converted.recorded_lag, converted.capacity)
        }
    };
    let mut header = header;
    header.capacity = header.capacity.or(capacity);
    let max_peers = match header.max_peers {
        Some(max) => usize::try_from(max).unwrap_or(usize::MAX),
        None => peak_peers(&events) + 1,
    };
    Ok(Loaded {
        header,
        events,
        end,
        max_peers,
        recorded_lag,
    })
}

fn peer_of(line: usize, text: &str) -> Result<u64, String> {
    parse_peer(text).ok_or_else(|| format!("line {line}: peer {text:?} is not 16 hex digits"))
}

fn embedded_events(lines: Vec<(usize, u64, Arrival)>) -> Result<Vec<(u64, Event)>, String> {
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

fn peak_peers(events: &[(u64, Event)]) -> usize {
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

struct TapConverted {
    events: Vec<(u64, Event)>,
    recorded_lag: Option<f64>,
    capacity: Option<u64>,
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

fn tap_events(lines: Vec<(usize, u64, Arrival)>) -> Result<TapConverted, String> {
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

/// Sends a recording's events into a design, each at the first tick at or after its time.
struct ReplayFeed<'a> {
    design: Box<dyn Strategy>,
    events: &'a [(u64, Event)],
    next: usize,
    /// RecordingSink peer id -> the id the design gave it.
    ids: HashMap<u64, PeerId>,
    started: Instant,
}

impl Feed for ReplayFeed<'_> {
    fn design(&mut self) -> &mut dyn Strategy {
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

/// Every strategy named (or all) on the recording, as a simulator report.
pub fn report(
    loaded: &Loaded,
    name: &str,
    strategies: &[StrategyKind],
    cost: &ConsumerCost,
) -> Report {
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
    if let Some(strategy) = &header.strategy {
        summary += &format!(" on {strategy}");
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
        strategies,
        &mut runner,
        &mut |_, _| {},
    );
    Report {
        seed: None,
        scenarios: vec![scenario],
    }
}

pub struct Options {
    pub path: PathBuf,
    /// Strategy names, or `all`.
    pub strategies: Vec<String>,
    pub block_cost: Option<Duration>,
    pub message_cost: Option<Duration>,
    pub json: bool,
    pub report: Option<PathBuf>,
}

/// Why a replay did not finish.
#[derive(Debug)]
pub enum Error {
    /// The recording cannot be read (one line).
    Input(String),
    Output(io::Error),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Input(text) => f.write_str(text),
            Error::Output(err) => write!(f, "cannot write the report: {err}"),
        }
    }
}

impl std::error::Error for Error {}

/// Loads, replays and writes the outputs: the table (or JSON) to stdout, the HTML to `report`.
pub fn run(options: &Options) -> Result<(), Error> {
    let loaded = load(&options.path).map_err(Error::Input)?;
    let strategies: Vec<StrategyKind> = if options.strategies.iter().any(|s| s == "all") {
        StrategyKind::ALL.to_vec()
    } else {
        let mut picked: Vec<_> = options
            .strategies
            .iter()
            .filter_map(|s| StrategyKind::parse(s))
            .collect();
        picked.sort();
        picked.dedup();
        picked
    };
    let cost = cost(&loaded.header, options.block_cost, options.message_cost);
    let name = options.path.file_name().map_or_else(
        || options.path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let report = report(&loaded, &name, &strategies, &cost);
    let mut stdout = io::stdout().lock();
    if options.json {
        writeln!(stdout, "{}", render_json(&report)).map_err(Error::Output)?;
    } else {
        write!(stdout, "{}", render_table(&report)).map_err(Error::Output)?;
    }
    if let Some(path) = &options.report {
        std::fs::write(path, render_html(&report)).map_err(Error::Output)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::run_design;
    use crate::scenario;
    use p2p_recording::{Cost, Mode, RecordingSink, RecordingWriter};

    /// Runs `kind` on the scenario while recording it, then replays the recording on `kind`.
    fn record_and_replay(name: &str, kind: StrategyKind, seconds: u64) -> (RunResult, RunResult) {
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
            ("testnet-10-burst-250", StrategyKind::Broadcast2048, 65),
            ("peer-surge", StrategyKind::Sharded, 20),
            ("peer-surge", StrategyKind::Actor, 20),
            ("dup-storm", StrategyKind::Dedup, 10),
        ] {
            let (original, replayed) = record_and_replay(name, kind, seconds);
            assert!(original.events_received > 0, "{name} {kind}");
            assert_eq!(replayed, original, "{name} {kind}");
        }
    }

    fn write_gz(path: &Path, text: &str) {
        let mut out = flate2::write::GzEncoder::new(
            std::fs::File::create(path).unwrap(),
            flate2::Compression::fast(),
        );
        out.write_all(text.as_bytes()).unwrap();
        out.finish().unwrap();
    }

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

    #[test]
    fn bad_files_fail_with_one_line_saying_why() {
        let dir = std::env::temp_dir().join(format!("p2p-replay-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let header = r#"{"format":"p2p-recording","v":1,"source":"embedded"}"#;
        let plain = dir.join("plain");
        std::fs::write(&plain, format!("{header}\n")).unwrap();
        let newer = dir.join("newer");
        write_gz(
            &newer,
            r#"{"format":"p2p-recording","v":2,"source":"embedded"}"#,
        );
        let other = dir.join("other");
        write_gz(&other, "{\"hello\":1}\n");
        let garbage = dir.join("garbage");
        write_gz(&garbage, &format!("{header}\nnot json\n"));
        let truncated = dir.join("truncated");
        let mut full = Vec::new();
        {
            let mut out = flate2::write::GzEncoder::new(&mut full, flate2::Compression::fast());
            writeln!(out, "{header}").unwrap();
            for t in 0..2000 {
                writeln!(out, "{{\"t\":{t},\"kind\":\"register\",\"inbound\":true}}").unwrap();
            }
            out.finish().unwrap();
        }
        std::fs::write(&truncated, &full[..full.len() / 2]).unwrap();
        for (path, expected) in [
            (dir.join("missing"), "cannot read"),
            (plain, "not gzip-compressed"),
            (newer, "version 2 is not supported"),
            (other, "not a p2p-recording header"),
            (garbage, "line 2: not a recording line"),
            (truncated, "truncated"),
        ] {
            let error = load(&path).unwrap_err();
            assert!(error.contains(expected), "{}: {error}", path.display());
            assert!(!error.contains('\n'), "{error}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
