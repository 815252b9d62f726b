//! Phase 4.1: a mailbox and an actor per peer.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use p2p_observe::{Observation, Observer};
use p2p_router::{NetMessage, PeerEvent, PeerId, PeerSink, RouterError, VersionInfo};
use p2p_workload::{ConsumerCost, NodeModel};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{Design, Peers};
use crate::channel::payload_len;

/// Every peer actor's mailbox. Reported as one channel and one subscriber, never per peer.
pub const MAILBOXES: &str = "mailboxes";
pub const MAILBOX_CAPACITY: usize = 256;

/// One peer actor: its mailbox and its own loop.
struct PeerActor {
    sender: mpsc::Sender<(Instant, NetMessage)>,
    mailbox: mpsc::Receiver<(Instant, NetMessage)>,
    busy_until: Instant,
    held: u64,
}

/// Phase 4.1: a bounded mailbox per peer, each drained by that peer's actor. The dispatcher never
/// waits: a message for a full mailbox is dropped and counted as lag of `mailboxes`. Mailboxes
/// move messages, so receivers copy nothing.
pub struct Actor {
    peers: Peers,
    actors: HashMap<PeerId, PeerActor>,
    /// Actors in registration order, so catching up is deterministic.
    order: Vec<PeerId>,
    fullest: usize,
    node: NodeModel,
    cost: ConsumerCost,
    observer: Arc<dyn Observer>,
}

impl Actor {
    pub fn new(max_peers: usize, cost: ConsumerCost, observer: Arc<dyn Observer>) -> Actor {
        observer.observe(Observation::ChannelOpened {
            channel: MAILBOXES,
            capacity: MAILBOX_CAPACITY,
        });
        Actor {
            peers: Peers::new(max_peers, Arc::clone(&observer)),
            actors: HashMap::new(),
            order: Vec::new(),
            fullest: 0,
            node: NodeModel::default(),
            cost,
            observer,
        }
    }

    /// Takes everything waiting in a peer's mailbox, in the order its actor would.
    pub fn take_mailbox(&mut self, peer_id: PeerId) -> Vec<NetMessage> {
        let mut taken = Vec::new();
        if let Some(actor) = self.actors.get_mut(&peer_id) {
            while let Ok((_, message)) = actor.mailbox.try_recv() {
                actor.held -= payload_len(&message);
                taken.push(message);
            }
        }
        taken
    }

    /// Messages queued in one peer's mailbox.
    fn queued(actor: &PeerActor) -> usize {
        MAILBOX_CAPACITY - actor.sender.capacity()
    }
}

impl PeerSink for Actor {
    fn register_peer(
        &mut self,
        inbound: bool,
        address: SocketAddr,
        version: VersionInfo,
        _sender: mpsc::Sender<NetMessage>,
    ) -> Result<PeerId, RouterError> {
        let id = self.peers.register(inbound, address, version)?.id;
        let (sender, mailbox) = mpsc::channel(MAILBOX_CAPACITY);
        self.actors.insert(
            id,
            PeerActor {
                sender,
                mailbox,
                busy_until: Instant::now(),
                held: 0,
            },
        );
        self.order.push(id);
        Ok(id)
    }

    fn disconnect(&mut self, peer_id: PeerId, reason: &str) {
        if self.peers.disconnect(peer_id, reason) {
            // The actor stops with its peer; what its mailbox held goes with it.
            self.actors.remove(&peer_id);
            self.order.retain(|id| *id != peer_id);
        }
    }

    fn emit_message(&mut self, peer_id: PeerId, message: NetMessage) {
        self.peers.emitted(&message);
        let Some(actor) = self.actors.get_mut(&peer_id) else {
            return;
        };
        let size = payload_len(&message);
        match actor.sender.try_send((Instant::now(), message)) {
            Ok(()) => {
                actor.held += size;
                self.fullest = self.fullest.max(Actor::queued(actor));
                self.observer.observe(Observation::EventSent {
                    channel: MAILBOXES,
                    queued: self.fullest,
                    capacity: MAILBOX_CAPACITY,
                });
            }
            Err(_) => self.observer.observe(Observation::SubscriberLagged {
                subscriber: MAILBOXES,
                skipped: 1,
            }),
        }
    }
}

impl Design for Actor {
    fn catch_up(&mut self, now: Instant) {
        let mut fullest = 0;
        for id in &self.order {
            let Some(actor) = self.actors.get_mut(id) else {
                continue;
            };
            while actor.busy_until < now {
                let Ok((sent_at, message)) = actor.mailbox.try_recv() else {
                    actor.busy_until = now;
                    break;
                };
                actor.held -= payload_len(&message);
                let started = actor.busy_until.max(sent_at);
                self.observer.observe(Observation::EventReceived {
                    subscriber: MAILBOXES,
                    latency: started - sent_at,
                });
                let event = PeerEvent::Message {
                    peer_id: *id,
                    message,
                };
                actor.busy_until = started
                    + self.node.handle(
                        &event,
                        sent_at,
                        started,
                        &self.cost,
                        self.observer.as_ref(),
                    );
            }
            fullest = fullest.max(Actor::queued(actor));
        }
        self.fullest = fullest;
    }

    fn held_bytes(&mut self) -> u64 {
        self.actors.values().map(|a| a.held).sum()
    }
}
