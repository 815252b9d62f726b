//! The stand-in node, attached to a sidecar through the tap client.
//!
//!     cargo run --release -- --source tap --tap-socket /tmp/p2p-tap.sock      # the sidecar
//!     P2P_TAP_SOCKET=/tmp/p2p-tap.sock cargo run -p p2p-tap --example standin_node
//!
//! It runs the scripted workload in a loop (a new round every 10 ms) with a consumer that spends
//! `--block-cost` on each block, until ctrl-c. See docs/tap-integration.md.

mod node;

use std::sync::Arc;
use std::time::Duration;

use p2p_tap::{TapClient, TapConfig};

#[tokio::main]
async fn main() {
    let config = TapConfig::from_env().unwrap_or_else(|| TapConfig::new("p2p-tap.sock"));
    eprintln!("stand-in node: tap to {}", config.endpoint);
    let tap = TapClient::with_config(config);
    let router = node::Router::new(10, node::EVENT_CHANNEL_SIZE, Arc::new(tap.clone()));
    let consumer = router.subscribe();
    tokio::spawn(consumer.run(Duration::from_millis(3)));
    let mut ticker = tokio::time::interval(Duration::from_millis(10));
    let mut report = tokio::time::interval(Duration::from_secs(10));
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                // Each pass is the whole script on a fresh router state, as peers come and go.
                let _outboxes = node::script(&router, 20);
            }
            _ = report.tick() => eprintln!("stand-in node: {:?}", tap.stats()),
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    eprintln!("stand-in node: stopping, {:?}", tap.stats());
}
