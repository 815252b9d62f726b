//! The building blocks every strategy shares: a named broadcast channel that reports like the
//! reference router, a receiver that reports like its `Subscriber`, the accounting of the payload
//! bytes a channel holds, and the node's consumer loop in virtual time.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use p2p_observe::{Observation, Observer};
use p2p_router::workload::{ConsumerCost, NodeModel};
use p2p_router::{NetMessage, PeerEvent, Subscriber};
use tokio::sync::broadcast::{self, error::TryRecvError};
use tokio::time::Instant;

/// What copying a payload costs a receiver: 25 us per 100 KB on this machine (a `Vec<u8>` clone,
/// measured in `benches/throughput.rs`).
pub const COPY_NANOS_PER_BYTE: f64 = 0.25;
/// What sharing a payload costs a receiver: a `Bytes` clone plus its drop, about 130 ns here.
pub const SHARED_CLONE: Duration = Duration::from_nanos(130);

/// Payload bytes an event holds while it is queued: block and transaction bodies, inventory items
/// and headers. Fixed-size fields are ignored; they are the same for every design.
pub fn payload_len(message: &NetMessage) -> u64 {
    match message {
        NetMessage::Block(bytes) | NetMessage::Tx(bytes) => bytes.len() as u64,
        NetMessage::Inv(inventory) | NetMessage::GetData(inventory) => {
            36 * inventory.items.len() as u64
        }
        NetMessage::Headers(headers) => 72 * headers.len() as u64,
        _ => 0,
    }
}

/// What a receiver pays to clone a `Vec<u8>` payload out of a broadcast slot.
pub fn copy_cost(event: &PeerEvent) -> Duration {
    match event {
        PeerEvent::Message {
            message: NetMessage::Block(bytes) | NetMessage::Tx(bytes),
            ..
        } => Duration::from_nanos((bytes.len() as f64 * COPY_NANOS_PER_BYTE) as u64),
        _ => Duration::ZERO,
    }
}

/// Payload bytes held by the events still queued in one channel. A broadcast slot drops its value
/// once every receiver has seen it (or it is overwritten), so the held bytes are those of the last
/// `len()` events sent.
#[derive(Default)]
pub struct HeldBytes {
    sizes: VecDeque<u64>,
    total: u64,
}

impl HeldBytes {
    /// One more event of `size` bytes was sent. Trimming waits for the next [`HeldBytes::trim`]:
    /// asking a broadcast channel its length walks its slots.
    pub fn sent(&mut self, size: u64) {
        self.sizes.push_back(size);
        self.total += size;
    }

    /// Receivers took events; `queued` are still held.
    pub fn trim(&mut self, queued: usize) {
        while self.sizes.len() > queued {
            self.total -= self.sizes.pop_front().unwrap_or(0);
        }
    }

    pub fn total(&self) -> u64 {
        self.total
    }
}

/// A named `tokio::sync::broadcast` channel carrying `T`, stamped with its send time, reporting
/// `EventSent` exactly as the reference router does for its `events` channel.
pub struct Channel<T> {
    name: &'static str,
    sender: broadcast::Sender<(Instant, T)>,
    capacity: usize,
    held: HeldBytes,
    observer: Arc<dyn Observer>,
}

impl<T: Clone> Channel<T> {
    pub fn new(name: &'static str, capacity: usize, observer: Arc<dyn Observer>) -> Channel<T> {
        let (sender, _) = broadcast::channel(capacity);
        observer.observe(Observation::ChannelOpened {
            channel: name,
            capacity,
        });
        Channel {
            name,
            sender,
            capacity,
            held: HeldBytes::default(),
            observer,
        }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn subscribe(&self, name: &'static str) -> Receiver<T> {
        Receiver {
            name,
            receiver: self.sender.subscribe(),
            observer: Arc::clone(&self.observer),
        }
    }

    pub fn send(&mut self, event: T, size: u64) {
        // As in the node: a send nobody receives is not an error.
        let _ = self.sender.send((Instant::now(), event));
        let queued = self.sender.len();
        self.held.sent(size);
        self.observer.observe(Observation::EventSent {
            channel: self.name,
            queued,
            capacity: self.capacity,
        });
    }

    pub fn held_bytes(&mut self) -> u64 {
        self.held.trim(self.sender.len());
        self.held.total()
    }
}

/// A named receiver, reporting receives and lags like the reference router's `Subscriber`.
pub struct Receiver<T> {
    name: &'static str,
    receiver: broadcast::Receiver<(Instant, T)>,
    observer: Arc<dyn Observer>,
}

impl<T: Clone> Receiver<T> {
    /// Takes the next event for a consumer that starts on it at `at` (or when it was sent, if
    /// later).
    pub fn try_recv_at(&mut self, at: Instant) -> Result<(T, Instant), TryRecvError> {
        match self.receiver.try_recv() {
            Ok((sent_at, event)) => {
                self.observer.observe(Observation::EventReceived {
                    subscriber: self.name,
                    latency: at.saturating_duration_since(sent_at),
                });
                Ok((event, sent_at))
            }
            Err(TryRecvError::Lagged(skipped)) => {
                self.observer.observe(Observation::SubscriberLagged {
                    subscriber: self.name,
                    skipped,
                });
                Err(TryRecvError::Lagged(skipped))
            }
            Err(other) => Err(other),
        }
    }
}

/// Something a consumer loop takes events from and handles them.
pub trait Inbox {
    /// Takes one event at `at` and handles it; returns when the consumer is done with it.
    fn take(
        &mut self,
        at: Instant,
        node: &mut NodeModel,
        cost: &ConsumerCost,
        observer: &dyn Observer,
    ) -> Result<Instant, TryRecvError>;
}

/// Handles a node event that was sent at `sent_at`, starting at `at` or when it was sent.
fn handle_event(
    event: &PeerEvent,
    sent_at: Instant,
    at: Instant,
    node: &mut NodeModel,
    cost: &ConsumerCost,
    observer: &dyn Observer,
) -> Instant {
    let started = at.max(sent_at);
    started + node.handle(event, sent_at, started, cost, observer) + copy_cost(event)
}

impl Inbox for Subscriber {
    fn take(
        &mut self,
        at: Instant,
        node: &mut NodeModel,
        cost: &ConsumerCost,
        observer: &dyn Observer,
    ) -> Result<Instant, TryRecvError> {
        let (event, sent_at) = self.try_recv_at(at)?;
        Ok(handle_event(&event, sent_at, at, node, cost, observer))
    }
}

impl Inbox for Receiver<PeerEvent> {
    fn take(
        &mut self,
        at: Instant,
        node: &mut NodeModel,
        cost: &ConsumerCost,
        observer: &dyn Observer,
    ) -> Result<Instant, TryRecvError> {
        let (event, sent_at) = self.try_recv_at(at)?;
        Ok(handle_event(&event, sent_at, at, node, cost, observer))
    }
}

/// The node's consumer loop in virtual time: it handles one event at a time, each taking its
/// cost, and is busy until `busy_until`.
pub struct Consumer<I> {
    pub inbox: I,
    busy_until: Instant,
}

impl<I: Inbox> Consumer<I> {
    pub fn new(inbox: I) -> Consumer<I> {
        Consumer {
            inbox,
            busy_until: Instant::now(),
        }
    }

    /// Takes and handles every event the loop would have started on before `now`. Events sent at
    /// `now` are not in the channel yet: the driver lets consumers catch up before peers send.
    pub fn catch_up(
        &mut self,
        now: Instant,
        node: &mut NodeModel,
        cost: &ConsumerCost,
        observer: &dyn Observer,
    ) {
        while self.busy_until < now {
            match self.inbox.take(self.busy_until, node, cost, observer) {
                Ok(done) => self.busy_until = done,
                Err(TryRecvError::Lagged(_)) => {}
                Err(_) => {
                    self.busy_until = now;
                    return;
                }
            }
        }
    }
}
