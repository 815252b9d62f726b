//! The node's consumer loop: one model (what each event costs, what the node does with it:
//! [`NodeModel::handle`] with a [`ConsumerCost`]) and its two drivers, so the live exporter and the
//! simulator cannot drift apart:
//!
//! - [`run_consumer`] in real time, on a router's [`Subscriber`], for the live exporter;
//! - [`VirtualConsumer`] on tokio's paused clock, on any [`Inbox`], for the simulator: it also
//!   charges the payload clone a receive makes ([`copy_cost`]), which real time pays by itself.

use std::sync::Arc;
use std::time::Duration;

use p2p_observe::{MessageKind, Observer};
use p2p_router::{NetMessage, PeerEvent, Subscriber};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::time::Instant;

use crate::chain::NodeModel;

/// What copying a payload costs a receiver: 25 us per 100 KB on this machine (a `Vec<u8>` clone,
/// measured in `sim/benches/throughput.rs`).
pub const COPY_NANOS_PER_BYTE: f64 = 0.25;

/// What the node's consumer loop spends on each event. Block validation (post-quantum signatures)
/// is the slow one.
#[derive(Clone, Debug, PartialEq)]
pub struct ConsumerCost {
    /// A block the node does not have yet (a block it already has is a hash lookup: `message`).
    pub block: Duration,
    /// Every other message and the connect/disconnect events.
    pub message: Duration,
    /// A transaction (signature verification); `None` costs `message`.
    pub tx: Option<Duration>,
}

impl Default for ConsumerCost {
    fn default() -> Self {
        ConsumerCost {
            block: Duration::from_millis(3),
            message: Duration::from_micros(25),
            tx: None,
        }
    }
}

impl ConsumerCost {
    pub fn of(&self, event: &PeerEvent) -> Duration {
        match event {
            PeerEvent::Message { message, .. } => self.of_kind(message.kind()),
            _ => self.message,
        }
    }

    /// Cost of a message of this kind; a block is counted as new.
    pub fn of_kind(&self, kind: MessageKind) -> Duration {
        match kind {
            MessageKind::Block => self.block,
            MessageKind::Tx => self.tx.unwrap_or(self.message),
            _ => self.message,
        }
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

/// Handles a node event that was sent at `sent_at`, starting at `at` or when it was sent;
/// returns when the consumer is done with it, the payload clone of the receive included.
pub fn handle_event(
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

/// The node's consumer loop in virtual time: it handles one event at a time, each taking its
/// cost, and is busy until `busy_until`.
pub struct VirtualConsumer<I> {
    pub inbox: I,
    busy_until: Instant,
    created: Instant,
    /// Time it found its inbox empty: what its service rate is measured without.
    idle: Duration,
}

impl<I: Inbox> VirtualConsumer<I> {
    pub fn new(inbox: I) -> VirtualConsumer<I> {
        let now = Instant::now();
        VirtualConsumer {
            inbox,
            busy_until: now,
            created: now,
            idle: Duration::ZERO,
        }
    }

    /// Time spent handling events from its creation to `now`.
    pub fn busy(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.created)
            .saturating_sub(self.idle)
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
                    self.idle += now - self.busy_until;
                    self.busy_until = now;
                    return;
                }
            }
        }
    }
}

/// The node's consumer loop: handles each event synchronously, and on `Lagged` only logs, as the
/// node does. Returns when the router is gone.
pub async fn run_consumer(
    mut subscriber: Subscriber,
    cost: ConsumerCost,
    observer: Arc<dyn Observer>,
) {
    let mut node = NodeModel::default();
    // Processing time owed but not yet slept. Sleeping per message would round every 25 us up to a
    // timer tick; paying the debt in ~1 ms installments keeps the modelled throughput exact.
    let mut debt_nanos: i128 = 0;
    let mut lag_log = LagLog::default();
    loop {
        let (event, sent_at) = match subscriber.recv_timed().await {
            Ok(received) => received,
            Err(RecvError::Lagged(skipped)) => {
                lag_log.skipped(skipped);
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        let started = Instant::now() + Duration::from_nanos(debt_nanos.max(0) as u64);
        debt_nanos += node
            .handle(&event, sent_at, started, &cost, observer.as_ref())
            .as_nanos() as i128;
        if debt_nanos >= 1_000_000 {
            let started = Instant::now();
            tokio::time::sleep(Duration::from_nanos(debt_nanos as u64)).await;
            // Oversleeping is credited to the next messages, up to one tick.
            debt_nanos -= started.elapsed().as_nanos() as i128;
            debt_nanos = debt_nanos.max(-1_000_000);
        }
        lag_log.flush();
    }
}

/// The node logs every `Lagged`; under sustained lag that is thousands of lines a second, so the
/// model sums them into one line a second.
#[derive(Default)]
struct LagLog {
    pending: u64,
    last: Option<Instant>,
}

impl LagLog {
    fn skipped(&mut self, skipped: u64) {
        self.pending += skipped;
        self.flush();
    }

    fn flush(&mut self) {
        let now = Instant::now();
        if self.pending > 0 && self.last.is_none_or(|t| now - t >= Duration::from_secs(1)) {
            tracing::warn!(skipped = self.pending, "peer event loop lagged");
            self.pending = 0;
            self.last = Some(now);
        }
    }
}
