//! What segmented fanout and sharding share: several channels, each with its own consumer loop.

use std::sync::Arc;

use p2p_observe::Observer;
use p2p_router::PeerEvent;
use p2p_workload::{ConsumerCost, NodeModel, VirtualConsumer as Consumer};
use tokio::time::Instant;

use super::Peers;
use crate::channel::{payload_len, Channel, Receiver};

/// Designs with several channels, each read by its own consumer loop (its own task, so they run
/// side by side): segmented fanout and sharding.
pub(super) struct MultiChannel {
    pub(super) peers: Peers,
    pub(super) channels: Vec<Channel<PeerEvent>>,
    consumers: Vec<Consumer<Receiver<PeerEvent>>>,
    node: NodeModel,
    cost: ConsumerCost,
    observer: Arc<dyn Observer>,
}

impl MultiChannel {
    pub(super) fn new(
        channels: &[(&'static str, usize)],
        max_peers: usize,
        cost: ConsumerCost,
        observer: Arc<dyn Observer>,
    ) -> MultiChannel {
        let channels: Vec<_> = channels
            .iter()
            .map(|(name, capacity)| Channel::new(name, *capacity, Arc::clone(&observer)))
            .collect();
        // Each channel's consumer subscribes under the channel's name.
        let names: Vec<&'static str> = channels.iter().map(|c| c.name()).collect();
        let consumers = channels
            .iter()
            .zip(names)
            .map(|(channel, name)| Consumer::new(channel.subscribe(name)))
            .collect();
        MultiChannel {
            peers: Peers::new(max_peers, Arc::clone(&observer)),
            channels,
            consumers,
            node: NodeModel::default(),
            cost,
            observer,
        }
    }

    pub(super) fn send(&mut self, channel: usize, event: PeerEvent) {
        let size = match &event {
            PeerEvent::Message { message, .. } => payload_len(message),
            _ => 0,
        };
        self.channels[channel].send(event, size);
    }

    pub(super) fn catch_up(&mut self, now: Instant) {
        for consumer in &mut self.consumers {
            consumer.catch_up(now, &mut self.node, &self.cost, self.observer.as_ref());
        }
    }

    pub(super) fn held_bytes(&mut self) -> u64 {
        self.channels.iter_mut().map(|c| c.held_bytes()).sum()
    }
}

/// The peer side and the design side of a multi-channel design, given how it routes an event
/// (`|peer, event| channel index`).
macro_rules! multi_channel_design {
    ($design:ty, $route:expr) => {
        impl PeerSink for $design {
            fn register_peer(
                &mut self,
                inbound: bool,
                address: SocketAddr,
                version: VersionInfo,
                _sender: mpsc::Sender<NetMessage>,
            ) -> Result<PeerId, RouterError> {
                let summary = self.0.peers.register(inbound, address, version)?;
                let id = summary.id;
                let event = PeerEvent::Connected(summary);
                let channel = $route(id, &event);
                self.0.send(channel, event);
                Ok(id)
            }

            fn disconnect(&mut self, peer_id: PeerId, reason: &str) {
                if self.0.peers.disconnect(peer_id, reason) {
                    let event = PeerEvent::Disconnected {
                        peer_id,
                        reason: reason.to_owned(),
                    };
                    let channel = $route(peer_id, &event);
                    self.0.send(channel, event);
                }
            }

            fn emit_message(&mut self, peer_id: PeerId, message: NetMessage) {
                self.0.peers.emitted(&message);
                let event = PeerEvent::Message { peer_id, message };
                let channel = $route(peer_id, &event);
                self.0.send(channel, event);
            }
        }

        impl Design for $design {
            fn catch_up(&mut self, now: Instant) {
                self.0.catch_up(now)
            }

            fn held_bytes(&mut self) -> u64 {
                self.0.held_bytes()
            }
        }
    };
}

pub(super) use multi_channel_design;
