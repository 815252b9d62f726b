//! A rolling window of the latest arrivals, held in memory: what the sidecar replays through
//! each router design, period after period, to check a fix on the node's own traffic.
//!
//! Each [`RollingWindow::take`] hands over everything that arrived since the previous one, so
//! every arrival is replayed once. Arrivals are kept as the lines a recording file would hold
//! (parsed only when taken), under a byte limit past which the oldest are dropped and counted.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::time::Instant;

use crate::format::{Arrival, Header, Line};
use crate::reader::Contents;
use crate::writer::{encode, Message, Mode, Recording, QUEUE};

pub struct RollingWindow {
    window: Arc<Mutex<Window>>,
    recording: Recording,
    started: Instant,
}

struct Window {
    header: Header,
    /// Oldest first: (nanoseconds since the recording began, the line as a file would hold it).
    lines: VecDeque<(u64, Box<[u8]>)>,
    bytes: usize,
    max_bytes: usize,
    /// Lines dropped at the byte limit since the window was last taken.
    dropped: u64,
    /// Where the window being filled began.
    since: u64,
    /// Registrations of peers still connected, by peer: a window that begins after a peer
    /// registered still starts with it (embedded recordings; a tap recording's periodic peer
    /// counts do the same for it).
    live_peers: BTreeMap<String, Box<[u8]>>,
    /// The registrations live when the window being filled began.
    prelude: Vec<Box<[u8]>>,
}

/// What one window held.
#[derive(Debug)]
pub struct Taken {
    /// As a recording file of the window would read: peers still registered from before it at
    /// `t` = 0, then its arrivals, times counted from its beginning, and its length as the end.
    pub contents: Contents,
    /// Arrivals the byte limit dropped from it.
    pub dropped: u64,
}

impl RollingWindow {
    /// Starts the window's thread. `max_bytes` bounds the lines held between two takes.
    pub fn start(header: Header, max_bytes: usize) -> std::io::Result<RollingWindow> {
        let (sender, receiver) = mpsc::sync_channel::<Message>(QUEUE);
        let recording = Recording::new(sender, Mode::NeverBlock);
        let window = Arc::new(Mutex::new(Window {
            header,
            lines: VecDeque::new(),
            bytes: 0,
            max_bytes,
            dropped: 0,
            since: 0,
            live_peers: BTreeMap::new(),
            prelude: Vec::new(),
        }));
        let shared = Arc::clone(&window);
        std::thread::Builder::new()
            .name("p2p-window".into())
            .spawn(move || fill(&shared, receiver))?;
        Ok(RollingWindow {
            window,
            started: recording.started,
            recording,
        })
    }

    /// A handle for whoever sees the arrivals (as [`crate::RecordingWriter::recording`]).
    pub fn recording(&self) -> Recording {
        self.recording.clone()
    }

    /// Everything since the previous take (or the start), and a new window begun.
    pub fn take(&self) -> Taken {
        let now = u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let mut window = lock(&self.window);
        let since = std::mem::replace(&mut window.since, now);
        let lines = std::mem::take(&mut window.lines);
        window.bytes = 0;
        let dropped = std::mem::take(&mut window.dropped);
        let live: Vec<Box<[u8]>> = window.live_peers.values().cloned().collect();
        let prelude = std::mem::replace(&mut window.prelude, live);
        let header = window.header.clone();
        drop(window);
        let mut arrivals = Vec::with_capacity(prelude.len() + lines.len());
        let mut number = 1;
        let timed = prelude
            .iter()
            .map(|line| (None, line))
            .chain(lines.iter().map(|(t, line)| (Some(*t), line)));
        for (t, line) in timed {
            // Only lines this crate encoded are here, so each parses.
            if let Ok(parsed) = serde_json::from_slice::<Line>(line) {
                number += 1;
                let t = t.map_or(0, |t| t.saturating_sub(since));
                arrivals.push((number, t, parsed.arrival));
            }
        }
        Taken {
            contents: Contents {
                header,
                arrivals,
                end: now.saturating_sub(since),
            },
            dropped,
        }
    }

    /// Arrivals the window's queue dropped (the window's thread fell behind), since the start.
    pub fn queue_dropped(&self) -> u64 {
        self.recording.counts().dropped.load(Ordering::Relaxed)
    }
}

fn fill(window: &Mutex<Window>, receiver: mpsc::Receiver<Message>) {
    let mut buffer = Vec::with_capacity(256);
    for message in receiver.iter() {
        let (t, peer) = match &message {
            Message::Line(line) => (line.t, peer_change(&line.arrival)),
            Message::Tap(t, _) => (*t, None),
            Message::End(_) => return,
        };
        buffer.clear();
        if encode(message, &mut buffer).is_err() {
            continue;
        }
        let line: Box<[u8]> = buffer.as_slice().into();
        let mut window = lock(window);
        match peer {
            Some(PeerChange::Registered(peer)) => {
                window.live_peers.insert(peer, line.clone());
            }
            Some(PeerChange::Gone(peer)) => {
                window.live_peers.remove(&peer);
            }
            None => {}
        }
        window.bytes += line.len();
        window.lines.push_back((t, line));
        while window.bytes > window.max_bytes {
            let Some((_, oldest)) = window.lines.pop_front() else {
                break;
            };
            window.bytes -= oldest.len();
            window.dropped += 1;
        }
    }
}

enum PeerChange {
    Registered(String),
    Gone(String),
}

fn peer_change(arrival: &Arrival) -> Option<PeerChange> {
    match arrival {
        Arrival::Register {
            peer: Some(peer), ..
        } => Some(PeerChange::Registered(peer.clone())),
        Arrival::Disconnect { peer, .. } => Some(PeerChange::Gone(peer.clone())),
        _ => None,
    }
}

fn lock(window: &Mutex<Window>) -> MutexGuard<'_, Window> {
    window.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::Source;

    fn register(peer: &str) -> Arrival {
        Arrival::Register {
            peer: Some(peer.to_owned()),
            inbound: true,
        }
    }

    fn wait_for(window: &RollingWindow, lines: usize) {
        while lock(&window.window).lines.len() < lines {
            std::thread::yield_now();
        }
    }

    #[test]
    fn each_take_holds_what_arrived_since_the_last_with_the_peers_still_connected_first() {
        let window = RollingWindow::start(Header::new(Source::Embedded), 1 << 20).unwrap();
        let recording = window.recording();
        recording.arrival(register("01"));
        recording.arrival(register("02"));
        wait_for(&window, 2);
        let first = window.take();
        assert_eq!(first.contents.arrivals.len(), 2);
        assert_eq!(first.dropped, 0);

        recording.arrival(Arrival::Disconnect {
            peer: "01".into(),
            reason: "timeout".into(),
        });
        recording.arrival(register("03"));
        wait_for(&window, 2);
        let second = window.take();
        let arrivals: Vec<&Arrival> = second.contents.arrivals.iter().map(|a| &a.2).collect();
        // Peers 01 and 02 registered before this window and were connected when it began: they
        // come first, at 0.
        assert_eq!(
            arrivals,
            [
                &register("01"),
                &register("02"),
                &Arrival::Disconnect {
                    peer: "01".into(),
                    reason: "timeout".into()
                },
                &register("03"),
            ]
        );
        assert_eq!(second.contents.arrivals[1].1, 0);
        // The third window starts with the peers connected at its beginning: 02 and 03.
        let third = window.take();
        let arrivals: Vec<&Arrival> = third.contents.arrivals.iter().map(|a| &a.2).collect();
        assert_eq!(arrivals, [&register("02"), &register("03")]);
        assert!(second.contents.arrivals.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(second.contents.end >= second.contents.arrivals.last().unwrap().1);
    }

    #[test]
    fn past_the_byte_limit_the_oldest_lines_go_and_are_counted() {
        let limit = 1000;
        let window = RollingWindow::start(Header::new(Source::Tap), limit).unwrap();
        let recording = window.recording();
        for n in 0..25 {
            recording.tap_line(format!(r#"{{"v":1,"n":{n}}}"#).as_bytes());
        }
        while {
            let held = lock(&window.window);
            held.lines.len() + held.dropped as usize
        } < 25
        {
            std::thread::yield_now();
        }
        let held: usize = lock(&window.window).bytes;
        let taken = window.take();
        let kept: Vec<u64> = taken
            .contents
            .arrivals
            .iter()
            .map(|(_, _, arrival)| match arrival {
                Arrival::Tap { record } => record["n"].as_u64().unwrap(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(kept.len() as u64 + taken.dropped, 25);
        assert!(taken.dropped > 0 && held <= limit, "{held}");
        // The newest stayed, in order.
        assert_eq!(kept, (taken.dropped..25).collect::<Vec<_>>());
    }
}
