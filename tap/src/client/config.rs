//! Where the tap sends and how often: [`TapConfig`] and its [`Endpoint`].

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the sidecar listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// A Unix socket (the default deployment: a shared volume, file permissions for access).
    Unix(PathBuf),
    /// TCP, for when the node and the sidecar share no filesystem; loopback unless you know why.
    Tcp(SocketAddr),
}

impl Endpoint {
    /// `host:port` (an IP address) is TCP; anything else is a Unix socket path. A `unix:` prefix
    /// forces a path.
    pub fn parse(text: &str) -> Endpoint {
        if let Some(path) = text.strip_prefix("unix:") {
            return Endpoint::Unix(path.into());
        }
        match text.parse::<SocketAddr>() {
            Ok(address) => Endpoint::Tcp(address),
            Err(_) => Endpoint::Unix(text.into()),
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Unix(path) => write!(f, "unix:{}", path.display()),
            Endpoint::Tcp(address) => write!(f, "{address}"),
        }
    }
}

impl From<&str> for Endpoint {
    fn from(text: &str) -> Endpoint {
        Endpoint::parse(text)
    }
}

impl From<PathBuf> for Endpoint {
    fn from(path: PathBuf) -> Endpoint {
        Endpoint::Unix(path)
    }
}

impl From<SocketAddr> for Endpoint {
    fn from(address: SocketAddr) -> Endpoint {
        Endpoint::Tcp(address)
    }
}

/// The tap's knobs. [`TapConfig::new`] has the defaults.
#[derive(Clone, Debug)]
pub struct TapConfig {
    pub endpoint: Endpoint,
    /// Sent in the hello when the sidecar requires a token; [`read_token_file`] reads the one
    /// the sidecar's `--tap-token-file` names.
    pub token: Option<String>,
    /// The client's name in the hello, for the sidecar's log.
    pub client: String,
    /// How often a snapshot of every count is sent. The sidecar's idle timeout is 10 s, so keep
    /// this well below it.
    pub snapshot_every: Duration,
    /// How often the detail buffer (inv items, block journeys) is written out.
    pub flush_every: Duration,
    /// Bytes of inv items held between flushes, or while the sidecar is away, for each node thread
    /// that reports messages (each has a ring of its own, written without a lock; rounded down to
    /// a power of two, at most 512 KiB); past it, entries are dropped and counted (counts stay
    /// exact). Each item takes 33 bytes, plus 6 per inv. A thread that exits keeps its ring: the
    /// node's peer tasks run on a fixed set of runtime threads.
    pub detail_buffer_bytes: usize,
    /// Read this process's resident memory and CPU time from `/proc` at every snapshot.
    pub sample_resources: bool,
    /// First reconnect delay; doubles on each failure up to `backoff_max`, each delay jittered
    /// down to half so restarted sidecars are not hit by every node at once.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// How long a blocked write to the sidecar may take before the connection is dropped.
    pub write_timeout: Duration,
}

impl TapConfig {
    pub fn new(endpoint: impl Into<Endpoint>) -> TapConfig {
        TapConfig {
            endpoint: endpoint.into(),
            token: None,
            client: concat!("p2p-tap/", env!("CARGO_PKG_VERSION")).to_owned(),
            snapshot_every: Duration::from_secs(1),
            flush_every: Duration::from_millis(50),
            detail_buffer_bytes: 512 * 1024,
            sample_resources: true,
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_secs(5),
            write_timeout: Duration::from_secs(5),
        }
    }

    /// From the environment: `P2P_TAP_SOCKET` (a path or `host:port`) and `P2P_TAP_TOKEN`. `None`
    /// when `P2P_TAP_SOCKET` is unset: the node runs with a tap that counts but sends nothing.
    pub fn from_env() -> Option<TapConfig> {
        let endpoint = std::env::var("P2P_TAP_SOCKET").ok()?;
        let mut config = TapConfig::new(Endpoint::parse(&endpoint));
        config.token = std::env::var("P2P_TAP_TOKEN").ok();
        Some(config)
    }
}

/// Reads a tap token from a file, the way both sides do (the sidecar's `--tap-token-file`): its
/// trailing line break is not part of it; an empty file, or one that every user may read, is
/// refused, since the token only keeps the host's other users off the tap's loopback port.
pub fn read_token_file(path: &Path) -> std::io::Result<String> {
    use std::io::{Error, ErrorKind};
    let text = std::fs::read_to_string(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if std::fs::metadata(path)?.permissions().mode() & 0o004 != 0 {
            return Err(Error::new(
                ErrorKind::PermissionDenied,
                "every user may read it: `chmod o-r` it (0600 or 0640)",
            ));
        }
    }
    let token = text.strip_suffix('\n').unwrap_or(&text);
    let token = token.strip_suffix('\r').unwrap_or(token);
    if token.is_empty() {
        return Err(Error::new(ErrorKind::InvalidData, "it holds no token"));
    }
    Ok(token.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_file_loses_its_line_break_and_must_hold_a_private_token() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("p2p-tap-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("token");
        let write = |text: &str, mode: u32| {
            std::fs::write(&path, text).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        write("s3cret\n", 0o600);
        assert_eq!(read_token_file(&path).unwrap(), "s3cret");
        write("s3cret\r\n", 0o640);
        assert_eq!(read_token_file(&path).unwrap(), "s3cret");
        write(" s3cret ", 0o600);
        assert_eq!(read_token_file(&path).unwrap(), " s3cret ");
        write("\n", 0o600);
        assert_eq!(
            read_token_file(&path).unwrap_err().kind(),
            std::io::ErrorKind::InvalidData
        );
        write("s3cret\n", 0o644);
        assert_eq!(
            read_token_file(&path).unwrap_err().kind(),
            std::io::ErrorKind::PermissionDenied
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
