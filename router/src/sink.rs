//! The router's input port: what peers do, as the node's connection tasks report it. The load
//! generator drives any router design through it.

use std::net::SocketAddr;

use tokio::sync::mpsc;

use crate::router::{Router, RouterError};
use crate::types::{NetMessage, PeerId, VersionInfo};

/// Where the load generator sends what its peers do: the reference router, or any router design
/// with the same entry points.
pub trait PeerSink {
    fn register_peer(
        &mut self,
        inbound: bool,
        address: SocketAddr,
        version: VersionInfo,
        sender: mpsc::Sender<NetMessage>,
    ) -> Result<PeerId, RouterError>;
    fn disconnect(&mut self, peer_id: PeerId, reason: &str);
    fn emit_message(&mut self, peer_id: PeerId, message: NetMessage);
}

impl<T: PeerSink + ?Sized> PeerSink for Box<T> {
    fn register_peer(
        &mut self,
        inbound: bool,
        address: SocketAddr,
        version: VersionInfo,
        sender: mpsc::Sender<NetMessage>,
    ) -> Result<PeerId, RouterError> {
        (**self).register_peer(inbound, address, version, sender)
    }

    fn disconnect(&mut self, peer_id: PeerId, reason: &str) {
        (**self).disconnect(peer_id, reason)
    }

    fn emit_message(&mut self, peer_id: PeerId, message: NetMessage) {
        (**self).emit_message(peer_id, message)
    }
}

impl PeerSink for Router {
    fn register_peer(
        &mut self,
        inbound: bool,
        address: SocketAddr,
        version: VersionInfo,
        sender: mpsc::Sender<NetMessage>,
    ) -> Result<PeerId, RouterError> {
        Router::register_peer(self, inbound, address, version, sender)
    }

    fn disconnect(&mut self, peer_id: PeerId, reason: &str) {
        Router::disconnect(self, peer_id, reason);
    }

    fn emit_message(&mut self, peer_id: PeerId, message: NetMessage) {
        Router::emit_message(self, peer_id, message)
    }
}
