//! The building blocks every design shares: a named broadcast channel that reports like the
//! reference router, a receiver that reports like its `Subscriber` (and that the node's consumer
//! loop in virtual time can take from), and the accounting of the payload bytes a channel holds.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use p2p_observe::{Observation, Observer};
use p2p_router::{NetMessage, PeerEvent};
use p2p_workload::{handle_event, ConsumerCost, Inbox, NodeModel};
use tokio::sync::broadcast::{self, error::TryRecvError};
use tokio::time::Instant;

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

#[cfg(test)]
mod tests {
    use super::*;
    use p2p_recording::{message_arrival, rebuild_message, Arrival};
    use p2p_router::{BlockHeader, InvType, Inventory, InventoryItem, PeerId};

    #[test]
    fn a_rebuilt_message_holds_the_payload_bytes_of_the_recorded_one() {
        let header = BlockHeader {
            prev_hash: [1; 32],
            hash: [2; 32],
            height: 7,
        };
        let items = vec![InventoryItem {
            kind: InvType::Transaction,
            hash: [3; 32],
        }];
        let messages = [
            NetMessage::Inv(Inventory {
                items: items.clone(),
            }),
            NetMessage::GetData(Inventory { items }),
            NetMessage::Block(p2p_router::block::encode_block(&header, 4096)),
            NetMessage::Block(vec![9; 10]),
            NetMessage::Tx(vec![5; 300]),
            NetMessage::Headers(vec![header.clone(); 3]),
            NetMessage::Ping(42),
        ];
        for message in messages {
            let Arrival::Message {
                message_type,
                items,
                size,
                block,
                ..
            } = message_arrival(PeerId(5), &message)
            else {
                panic!("{message:?} is not a message arrival");
            };
            let rebuilt = rebuild_message(message_type, &items, size, block.as_ref());
            assert_eq!(payload_len(&rebuilt), payload_len(&message), "{message:?}");
        }
    }
}
