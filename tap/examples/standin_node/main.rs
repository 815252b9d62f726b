//! The stand-in node, attached to a sidecar through the tap.
//!
//!     cargo run --release -- --source tap --tap-socket /tmp/p2p-tap.sock      # the sidecar
//!     P2P_TAP_SOCKET=/tmp/p2p-tap.sock cargo run -p p2p-tap --example standin_node
//!
//! It runs the scripted workload in a loop (a new round every 10 ms) with a consumer that spends
//! 3 ms on each block, until ctrl-c. See docs/tap-integration.md.

mod node;

use std::time::Duration;

use p2p_tap::{Tap, TapConfig};

#[tokio::main]
async fn main() {
    let mut config = TapConfig::from_env().unwrap_or_else(|| TapConfig::new("p2p-tap.sock"));
    // The sidecar's --tap-token-file, read the same way.
    if let Some(path) = std::env::var_os("P2P_TAP_TOKEN_FILE") {
        match p2p_tap::read_token_file(path.as_ref()) {
            Ok(token) => config.token = Some(token),
            Err(err) => {
                eprintln!("stand-in node: P2P_TAP_TOKEN_FILE: {err}");
                return;
            }
        }
    }
    eprintln!("stand-in node: tap to {}", config.endpoint);
    let tap = Tap::new(config);
    let router = node::Router::new(10, node::EVENT_CHANNEL_SIZE, tap.clone());
    tokio::spawn(router.consumer().run(Duration::from_millis(3)));
    let mut ticker = tokio::time::interval(Duration::from_millis(10));
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                // Each pass is the whole script on a fresh router state, as peers come and go.
                let _outboxes = node::script(&router, 20);
            }
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    let snapshot = tap.snapshot();
    eprintln!(
        "stand-in node: stopping after {} inv messages, lag {:?}",
        snapshot.inv_messages,
        snapshot
            .subscribers
            .iter()
            .map(|s| s.lagged)
            .collect::<Vec<_>>()
    );
    tap.shutdown(Duration::from_secs(2));
}
