//! The writer thread: connects to the sidecar, sends a hello and a snapshot at once, then the
//! detail buffer every `flush_every` and a snapshot every `snapshot_every`; a final snapshot when
//! the tap is shut down. Its own thread with blocking writes, so a slow sidecar costs the node
//! nothing but a full detail buffer.
#![allow(
    clippy::disallowed_methods,
    reason = "the writer is a thread of the node's own, outside any runtime: its deadlines are the OS clock's"
)]

use std::io::Write;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::config::{Endpoint, TapConfig};
use super::{lock, Shared};
use crate::protocol::{self, Hello, Resources, FRAME_HELLO, FRAME_JOURNAL, FRAME_JOURNEY};

/// Owns the writer thread; dropped with the last [`super::Tap`] clone.
pub(crate) struct Owner {
    stop: Mutex<Option<(mpsc::Sender<()>, JoinHandle<()>)>>,
    finished: Arc<(Mutex<bool>, std::sync::Condvar)>,
    drop_wait: Duration,
}

impl Owner {
    pub(crate) fn start(shared: Arc<Shared>, config: Option<TapConfig>) -> Owner {
        let finished = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
        let Some(config) = config else {
            return Owner {
                stop: Mutex::new(None),
                finished,
                drop_wait: Duration::ZERO,
            };
        };
        let drop_wait = config.write_timeout + 2 * config.flush_every;
        let (stop, stopped) = mpsc::channel();
        let done = Arc::clone(&finished);
        let thread = std::thread::Builder::new()
            .name("p2p-tap".into())
            .spawn(move || {
                Writer::new(shared, config).run(&stopped);
                let (flag, condvar) = &*done;
                *lock(flag) = true;
                condvar.notify_all();
            })
            .expect("the tap's writer thread starts");
        Owner {
            stop: Mutex::new(Some((stop, thread))),
            finished,
            drop_wait,
        }
    }

    pub(crate) fn shutdown(&self, timeout: Duration) {
        let Some((stop, thread)) = lock(&self.stop).take() else {
            return;
        };
        let _ = stop.send(());
        let (flag, condvar) = &*self.finished;
        let guard = lock(flag);
        let (guard, _) = condvar
            .wait_timeout_while(guard, timeout, |done| !*done)
            .unwrap_or_else(|e| e.into_inner());
        if *guard {
            let _ = thread.join();
        }
        // Otherwise the sidecar is not taking the final snapshot: leave the thread to its write
        // timeout rather than hold the node's shutdown.
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        // Long enough for one blocked write to time out and the final snapshot to follow.
        self.shutdown(self.drop_wait);
    }
}

trait Stream: Write + Send {}
impl<T: Write + Send> Stream for T {}

struct Writer {
    shared: Arc<Shared>,
    config: TapConfig,
    stream: Option<Box<dyn Stream>>,
    out: Vec<u8>,
    spare: Vec<u8>,
    backoff: Duration,
    next_attempt: Instant,
    next_snapshot: Instant,
    connected_at: Instant,
}

impl Writer {
    fn new(shared: Arc<Shared>, config: TapConfig) -> Writer {
        let now = Instant::now();
        Writer {
            shared,
            backoff: config.backoff_min,
            config,
            stream: None,
            out: Vec::new(),
            spare: Vec::new(),
            next_attempt: now,
            next_snapshot: now,
            connected_at: now,
        }
    }

    fn run(mut self, stop: &mpsc::Receiver<()>) {
        loop {
            self.shared.clock.calibrate();
            self.shared.clock.now_ns();
            if self.stream.is_none() && Instant::now() >= self.next_attempt {
                self.connect();
            }
            if self.stream.is_some() {
                let snapshot_due = Instant::now() >= self.next_snapshot;
                self.flush_details();
                if snapshot_due {
                    self.send_snapshot(false);
                }
                self.write_out();
            }
            match stop.recv_timeout(self.config.flush_every) {
                Err(RecvTimeoutError::Timeout) => continue,
                // Shut down, or every handle is gone.
                Ok(()) | Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        if self.stream.is_none() {
            self.connect();
        }
        if self.stream.is_some() {
            self.flush_details();
            self.send_snapshot(true);
            self.write_out();
        }
    }

    fn connect(&mut self) {
        match open(&self.config) {
            Ok(stream) => {
                self.stream = Some(stream);
                // The backoff restarts only once the connection has lasted (see `write_out`): a
                // sidecar that accepts and then closes (a wrong token, another node connected)
                // must not be hit in a loop.
                self.connected_at = Instant::now();
                let hello = Hello {
                    v: protocol::VERSION,
                    session: self.shared.session,
                    client: self.config.client.clone(),
                    token: self.config.token.clone(),
                };
                protocol::write_json_frame(&mut self.out, FRAME_HELLO, &hello);
                // A restarted sidecar serves nothing until its first snapshot: send it at once.
                self.next_snapshot = Instant::now();
            }
            Err(_) => self.back_off(),
        }
    }

    fn back_off(&mut self) {
        let jitter = 0.5 + 0.5 * (self.shared.session % 1000) as f64 / 1000.0;
        self.next_attempt = Instant::now() + self.backoff.mul_f64(jitter);
        self.backoff = (self.backoff * 2).min(self.config.backoff_max);
    }

    /// Takes the detail buffer into frames. Only while connected: while the sidecar is away the
    /// buffer fills and then drops (and counts), so the backlog sent on reconnect is bounded.
    fn flush_details(&mut self) {
        let (out, spare) = (&mut self.out, &mut self.spare);
        // One frame per thread's ring: a ring is smaller than a frame.
        self.shared.drain_journal(|shard| {
            shard.drain(spare);
            if !spare.is_empty() {
                protocol::write_frame(out, FRAME_JOURNAL, spare);
                spare.clear();
            }
        });
        let journeys: Vec<_> = lock(&self.shared.journeys).drain(..).collect();
        for journey in &journeys {
            protocol::write_json_frame(&mut self.out, FRAME_JOURNEY, journey);
        }
    }

    fn send_snapshot(&mut self, last: bool) {
        let mut snapshot = self.shared.snapshot(last, true);
        if self.config.sample_resources {
            snapshot.resources =
                crate::resources::read_self().map(|(resident_memory_bytes, cpu_seconds)| {
                    Resources {
                        resident_memory_bytes,
                        cpu_seconds,
                    }
                });
        }
        protocol::write_json_frame(&mut self.out, protocol::FRAME_SNAPSHOT, &snapshot);
        self.next_snapshot = Instant::now() + self.config.snapshot_every;
    }

    fn write_out(&mut self) {
        let Some(stream) = self.stream.as_mut() else {
            self.out.clear();
            return;
        };
        let written = stream.write_all(&self.out).and_then(|_| stream.flush());
        self.out.clear();
        if written.is_err() {
            // Counts are in the next snapshot whatever was lost; detail already written is gone.
            self.stream = None;
            if self.connected_at.elapsed() >= self.config.snapshot_every {
                // A connection that lasted broke: reconnect at once, from the shortest backoff.
                self.backoff = self.config.backoff_min;
                self.next_attempt = Instant::now();
            } else {
                self.back_off();
            }
        }
    }
}

fn open(config: &TapConfig) -> std::io::Result<Box<dyn Stream>> {
    match &config.endpoint {
        Endpoint::Tcp(address) => {
            let stream = std::net::TcpStream::connect_timeout(address, config.write_timeout)?;
            stream.set_write_timeout(Some(config.write_timeout))?;
            stream.set_nodelay(true)?;
            Ok(Box::new(stream))
        }
        #[cfg(unix)]
        Endpoint::Unix(path) => {
            let stream = std::os::unix::net::UnixStream::connect(path)?;
            stream.set_write_timeout(Some(config.write_timeout))?;
            Ok(Box::new(stream))
        }
        #[cfg(not(unix))]
        Endpoint::Unix(_) => Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "Unix sockets need a Unix system",
        )),
    }
}
