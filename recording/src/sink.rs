//! A router input that records every call before passing it on.

use std::net::SocketAddr;

use p2p_router::{NetMessage, PeerId, PeerSink, RouterError, VersionInfo};
use tokio::sync::mpsc;

use crate::format::{message_arrival, peer_hex, Arrival};
use crate::writer::Recording;

/// A [`PeerSink`] (or a router design) that records every call before passing it on.
pub struct RecordingSink<S> {
    inner: S,
    recording: Recording,
}

impl<S> RecordingSink<S> {
    pub fn new(inner: S, recording: Recording) -> RecordingSink<S> {
        RecordingSink { inner, recording }
    }

    /// The wrapped router design, for what it does apart from taking arrivals.
    pub fn inner_mut(&mut self) -> &mut S {
        &mut self.inner
    }
}

impl<S: PeerSink> PeerSink for RecordingSink<S> {
    fn register_peer(
        &mut self,
        inbound: bool,
        address: SocketAddr,
        version: VersionInfo,
        sender: mpsc::Sender<NetMessage>,
    ) -> Result<PeerId, RouterError> {
        let result = self.inner.register_peer(inbound, address, version, sender);
        self.recording.arrival(Arrival::Register {
            peer: result.as_ref().ok().map(|id| peer_hex(*id)),
            inbound,
        });
        result
    }

    fn disconnect(&mut self, peer_id: PeerId, reason: &str) {
        self.recording.arrival(Arrival::Disconnect {
            peer: peer_hex(peer_id),
            reason: reason.to_owned(),
        });
        self.inner.disconnect(peer_id, reason)
    }

    fn emit_message(&mut self, peer_id: PeerId, message: NetMessage) {
        self.recording.arrival(message_arrival(peer_id, &message));
        self.inner.emit_message(peer_id, message)
    }
}
