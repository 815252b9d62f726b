//! Scenario B: one channel per kind of event.

use std::net::SocketAddr;
use std::sync::Arc;

use p2p_observe::Observer;
use p2p_router::{NetMessage, PeerEvent, PeerId, PeerSink, RouterError, VersionInfo};
use p2p_workload::ConsumerCost;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::multi_channel::{multi_channel_design, MultiChannel};
use super::Design;

/// Segmented fanout's channels and capacities, as in the scaling document's Scenario B.
pub const SEGMENTS: [(&str, usize); 4] = [
    ("control", 256),
    ("sync", 512),
    ("inventory", 1024),
    ("data", 4096),
];

/// Which segment (index into [`SEGMENTS`]) carries an event: the scaling document's `ControlEvent` (peer
/// lifecycle, ping/pong, and the handshake and address messages that only the peer manager
/// reads), sync (headers), inventory (inv, getdata) and data (block, tx).
pub fn segment_of(event: &PeerEvent) -> usize {
    match event {
        PeerEvent::Connected(_) | PeerEvent::Disconnected { .. } => 0,
        PeerEvent::Message { message, .. } => match message {
            NetMessage::Version(_)
            | NetMessage::VerAck
            | NetMessage::Ping(_)
            | NetMessage::Pong(_)
            | NetMessage::GetAddr
            | NetMessage::Addr(_)
            | NetMessage::Reject { .. } => 0,
            NetMessage::GetHeaders { .. } | NetMessage::Headers(_) => 1,
            NetMessage::Inv(_) | NetMessage::GetData(_) => 2,
            NetMessage::Tx(_) | NetMessage::Block(_) => 3,
        },
    }
}

/// Scenario B: typed channels, control 256 / sync 512 / inventory 1024 / data 4096, each read by
/// the component that needs it (peer manager, header sync, inventory relay, block and tx
/// validation) in its own loop, so a block flood cannot starve control events.
pub struct Segmented(MultiChannel);

impl Segmented {
    pub fn new(max_peers: usize, cost: ConsumerCost, observer: Arc<dyn Observer>) -> Segmented {
        Segmented(MultiChannel::new(&SEGMENTS, max_peers, cost, observer))
    }
}

multi_channel_design!(Segmented, |_, event: &PeerEvent| segment_of(event));
