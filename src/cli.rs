//! Command line. Every flag can also be set from the environment variable named in `--help`.

use std::net::SocketAddr;
use std::time::Duration;

use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};
use p2p_workload::{ConsumerCost, WorkloadConfig};

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use p2p_exporter::http::DEFAULT_PORT;
use p2p_exporter::recorder::RecorderConfig;
use p2p_exporter::server::DEFAULT_MAX_CONNECTIONS;
use p2p_exporter::tap::{TapConfig, TapListen};
use p2p_exporter::telemetry::{OtlpProtocol, TelemetryConfig};
use p2p_recording::Source;
use p2p_sim::{DesignKind, Scenario};

use crate::embedded::Simulated;
use crate::UsageError;

/// Sidecar exporter for a node's P2P event router: serves Prometheus metrics on router lag,
/// channel usage, duplicate inventory, message rates, peers and blocks.
///
/// With no node attached it runs the embedded reference router (a model of the node's router with
/// its 2048-event broadcast channel) under a testnet-like workload. Push it into lag by raising
/// --peers, --rate, --block-cost or --message-cost, or by lowering --capacity.
#[derive(Parser, Debug)]
#[command(name = "p2p-exporter", version, max_term_width = 100)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct Cli {
    /// Log filter: a level (error, warn, info, debug, trace) or tracing directives.
    #[arg(long, global = true, env = "P2P_EXPORTER_LOG", default_value = "info")]
    pub log_level: String,

    #[arg(long, global = true, env = "P2P_EXPORTER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Without a subcommand the exporter serves metrics (the options below).
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Print the decision framework's verdict of a running exporter.
    Decide(DecideArgs),
    /// Run stress scenarios against the router designs in virtual time and report which bring
    /// lag under 1% (docs/simulator.md).
    Simulate(SimulateArgs),
    /// Replay a --record file through the router designs in virtual time and report which would
    /// have kept lag under 1% (docs/recording.md).
    Replay(ReplayArgs),
}

#[derive(Args, Debug)]
pub struct SimulateArgs {
    /// Scenarios to run, repeatable or comma-separated, or `all`.
    #[arg(long, value_name = "NAME", value_delimiter = ',', default_value = "all", value_parser = p2p_sim::cli::scenario_name)]
    pub scenario: Vec<String>,

    /// Router designs to run each scenario against, repeatable or comma-separated, or `all`.
    #[arg(long, alias = "strategy", value_name = "NAME", value_delimiter = ',', default_value = "all", value_parser = p2p_sim::cli::design_name)]
    pub design: Vec<String>,

    /// Simulated time per run (each scenario has its own default).
    #[arg(long, value_parser = positive_duration)]
    pub duration: Option<Duration>,

    /// Seed of the workload's random choices; the same seed gives the same numbers.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    /// Print JSON instead of the table.
    #[arg(long)]
    pub json: bool,

    /// Also write a self-contained HTML report (charts included) to this file.
    #[arg(long, value_name = "FILE")]
    pub report: Option<std::path::PathBuf>,

    /// Record what the scenario's peers hand the design to this file, for `replay` (one
    /// scenario and one design).
    #[arg(long, value_name = "FILE")]
    pub record: Option<std::path::PathBuf>,
}

impl SimulateArgs {
    pub fn run(&self) -> anyhow::Result<()> {
        let options = p2p_sim::cli::Options {
            scenarios: self.scenario.clone(),
            designs: self.design.clone(),
            duration: self.duration,
            seed: self.seed,
            json: self.json,
            report: self.report.clone(),
            record: self.record.clone(),
        };
        p2p_sim::cli::check_record(&options).map_err(UsageError)?;
        p2p_sim::cli::run(&options).map_err(|e| anyhow::anyhow!("cannot write the report: {e}"))
    }
}

#[derive(Args, Debug)]
pub struct DecideArgs {
    /// Base URL of the exporter to ask.
    #[arg(
        long,
        env = "P2P_EXPORTER_URL",
        default_value = "http://127.0.0.1:9730"
    )]
    pub url: String,

    /// Print the exporter's JSON instead of a summary.
    #[arg(long)]
    pub json: bool,
}

/// Serving metrics: the listen address and the embedded source's knobs.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to serve /metrics on. Every interface by default, since a Prometheus on another
    /// host scrapes the sidecar; on a host you do not control, add --web.config.file (TLS and
    /// basic auth), or listen on 127.0.0.1 and let a Prometheus agent on the host push
    /// (docs/security.md).
    #[arg(long, env = "P2P_EXPORTER_LISTEN", default_value_t = SocketAddr::from(([0, 0, 0, 0], DEFAULT_PORT)))]
    pub listen: SocketAddr,

    #[command(flatten)]
    pub web: WebArgs,

    #[command(flatten)]
    pub router: RouterArgs,

    #[command(flatten)]
    pub workload: WorkloadArgs,

    #[command(flatten)]
    pub simulated: DesignArgs,

    #[command(flatten)]
    pub consumer: ConsumerArgs,

    #[command(flatten)]
    pub exporter: ExporterArgs,

    #[command(flatten)]
    pub source: SourceArgs,

    #[command(flatten)]
    pub traces: TraceArgs,

    /// Record every arrival (embedded: what peers hand the router; tap: the node's records) to
    /// this gzip NDJSON file until shutdown, for `replay` (docs/recording.md).
    #[arg(long, env = "P2P_RECORD", value_name = "FILE")]
    pub record: Option<std::path::PathBuf>,
}

#[derive(Args, Debug)]
#[command(next_help_heading = "HTTP server")]
pub struct WebArgs {
    /// TLS and basic auth, in Prometheus exporter-toolkit's web config format (tls_server_config
    /// with cert_file, key_file and optionally client_ca_file and client_auth_type;
    /// basic_auth_users with bcrypt hashes). Read once at start; any error stops the sidecar
    /// before it listens (docs/security.md).
    #[arg(
        long = "web.config.file",
        env = "P2P_WEB_CONFIG_FILE",
        value_name = "FILE"
    )]
    pub config_file: Option<PathBuf>,

    /// Most HTTP connections open at once; past it a new connection takes the place of the
    /// oldest one with no request in flight. Keep it well below `ulimit -n`.
    #[arg(long = "web.max-connections", env = "P2P_WEB_MAX_CONNECTIONS", default_value_t = DEFAULT_MAX_CONNECTIONS, value_parser = clap::value_parser!(u32).range(1..=1_000_000).map(|n| n as usize))]
    pub max_connections: usize,

    /// Time a connection has to complete its TLS handshake and each request head, counted from
    /// its opening or from its previous response: idle keep-alive connections end after it too.
    #[arg(long = "web.header-timeout", env = "P2P_WEB_HEADER_TIMEOUT", default_value = "10s", value_parser = positive_duration)]
    pub header_timeout: Duration,
}

#[derive(Args, Debug)]
#[command(next_help_heading = "Traces (OTLP; off unless an endpoint is set)")]
pub struct TraceArgs {
    /// OTLP collector endpoint, e.g. http://otel-collector:4318 (http/protobuf) or
    /// http://otel-collector:4317 (grpc). http:// is plain text, https:// is TLS (either
    /// transport), trusting the system's CAs plus the PEM file in OTEL_EXPORTER_OTLP_CERTIFICATE
    /// (or OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE); without a scheme the exporter refuses to start.
    /// OTEL_EXPORTER_OTLP_HEADERS (key=value,... with url-encoded values) adds headers to every
    /// export.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,

    /// OTLP transport: grpc or http/protobuf (http/json is not supported).
    #[arg(
        long,
        env = "OTEL_EXPORTER_OTLP_PROTOCOL",
        default_value = "http/protobuf",
        value_parser = PossibleValuesParser::new(["grpc", "http/protobuf"])
            .map(|name| if name == "grpc" { OtlpProtocol::Grpc } else { OtlpProtocol::HttpProtobuf })
    )]
    pub otlp_protocol: OtlpProtocol,

    /// Longest wait for one export before its spans are dropped and counted.
    #[arg(long, env = "P2P_OTLP_TIMEOUT", default_value = "5s", value_parser = positive_duration)]
    pub otlp_timeout: Duration,

    /// Fraction of blocks traced, decided on the trace id (derived from the block hash), so every
    /// sidecar traces the same blocks.
    #[arg(long, env = "P2P_TRACE_SAMPLE_RATIO", default_value_t = 1.0, value_parser = ratio)]
    pub trace_sample_ratio: f64,

    /// This node's identity in every span's resource (p2p.node.id); defaults to the host name.
    #[arg(long, env = "P2P_NODE_ID")]
    pub node_id: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Args, Debug)]
#[command(next_help_heading = "Embedded router")]
pub struct RouterArgs {
    /// Capacity of the router's event channel (the node's EVENT_CHANNEL_SIZE).
    #[arg(long, env = "P2P_CAPACITY", default_value_t = 2048, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub capacity: u32,

    /// Peers the router accepts; registrations past it are refused and counted.
    #[arg(long, env = "P2P_MAX_PEERS", default_value_t = 125)]
    pub max_peers: usize,
}

/// Run a simulator scenario and router design in real time instead of the workload flags on the
/// node's router.
#[derive(Args, Debug)]
#[command(next_help_heading = "Simulated design (docs/simulator.md)")]
pub struct DesignArgs {
    /// Named scenario to run in real time (its own workload and consumer costs).
    #[arg(long, env = "P2P_SCENARIO", value_name = "NAME", value_parser = scenario_name)]
    pub scenario: Option<String>,

    /// Router design to run; default broadcast-2048, the node's router.
    #[arg(long, env = "P2P_DESIGN", value_name = "NAME", value_parser = design_name)]
    pub design: Option<String>,

    /// The flag's and the variable's first name (`--strategy`, P2P_STRATEGY), for older scripts;
    /// `--design` wins when both are given.
    #[arg(long = "strategy", env = "P2P_STRATEGY", hide = true, value_name = "NAME", value_parser = design_name)]
    pub former_design: Option<String>,
}

fn scenario_name(name: &str) -> Result<String, String> {
    match p2p_sim::cli::scenario_name(name)? {
        all if all == "all" => Err("a live exporter runs one scenario, not all".into()),
        name => Ok(name),
    }
}

fn design_name(name: &str) -> Result<String, String> {
    match p2p_sim::cli::design_name(name)? {
        all if all == "all" => Err("a live exporter runs one design, not all".into()),
        name => Ok(name),
    }
}

#[derive(Args, Debug)]
#[command(next_help_heading = "Workload")]
pub struct WorkloadArgs {
    /// Simulated peers; at most --max-peers, since the router would refuse the rest.
    #[arg(long, env = "P2P_PEERS", default_value_t = 20, value_parser = clap::value_parser!(u32).range(0..=100_000))]
    pub peers: u32,

    /// Mean messages per second per peer; each peer draws its own rate in 0.6x..1.4x of it.
    #[arg(long, env = "P2P_RATE", default_value_t = 35.0, value_parser = non_negative)]
    pub rate: f64,

    /// Fraction of inv messages that re-announce items other peers announced in the last 4 s.
    #[arg(long, env = "P2P_DUPLICATE_RATIO", default_value_t = 0.35, value_parser = ratio)]
    pub duplicate_ratio: f64,

    /// Time between new blocks.
    #[arg(long, env = "P2P_BLOCK_INTERVAL", default_value = "10s", value_parser = positive_duration)]
    pub block_interval: Duration,

    /// Bytes per block payload.
    #[arg(long, env = "P2P_BLOCK_SIZE", default_value_t = 16 * 1024)]
    pub block_size: usize,

    /// Time between sync bursts, when one peer sends a run of blocks back to back.
    #[arg(long, env = "P2P_SYNC_BURST_EVERY", default_value = "120s", value_parser = positive_duration)]
    pub sync_burst_every: Duration,

    /// Blocks in each sync burst.
    #[arg(long, env = "P2P_SYNC_BURST_BLOCKS", default_value_t = 50)]
    pub sync_burst_blocks: usize,

    /// Time between peer replacements (one peer leaves, another joins).
    #[arg(long, env = "P2P_CHURN_EVERY", default_value = "90m", value_parser = positive_duration)]
    pub churn_every: Duration,

    /// Chance that a competing block at the same height follows a new block (an orphan). The
    /// default keeps the orphan rate under 1%, the target of the node team's scaling document.
    #[arg(long, env = "P2P_STALE_BLOCK_PROBABILITY", default_value_t = WorkloadConfig::default().stale_block_probability, value_parser = ratio)]
    pub stale_block_probability: f64,

    /// Chance that the competing branch wins and the node reorganises; at most the stale
    /// probability. The default keeps reorgs under 0.1% of blocks, the target of the node team's
    /// scaling document.
    #[arg(long, env = "P2P_REORG_PROBABILITY", default_value_t = WorkloadConfig::default().reorg_probability, value_parser = ratio)]
    pub reorg_probability: f64,

    /// Seed of the workload's random choices.
    #[arg(long, env = "P2P_SEED", default_value_t = 1)]
    pub seed: u64,
}

#[derive(Args, Debug)]
#[command(next_help_heading = "Consumer loop (the node's event handler)")]
pub struct ConsumerArgs {
    /// Processing time per block (validation with post-quantum signatures).
    #[arg(long, env = "P2P_BLOCK_COST", default_value = "3ms", value_parser = duration)]
    pub block_cost: Duration,

    /// Processing time per other message or peer event.
    #[arg(long, env = "P2P_MESSAGE_COST", default_value = "25us", value_parser = duration)]
    pub message_cost: Duration,
}

#[derive(Args, Debug)]
#[command(next_help_heading = "Exporter")]
pub struct ExporterArgs {
    /// Window in which an inv item seen again counts as a duplicate (5 s in the node team's scaling
    /// document).
    #[arg(long, env = "P2P_DEDUP_TTL", default_value = "5s", value_parser = positive_duration)]
    pub dedup_ttl: Duration,

    /// Most inventory items the duplicate tracker remembers; past it the oldest are forgotten and
    /// counted in p2p_inv_dedup_evictions_total.
    #[arg(long, env = "P2P_DEDUP_MAX_ITEMS", default_value_t = 50_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub dedup_max_items: u32,

    /// How far back p2p_event_channel_usage_peak_ratio looks (1s to 60s); keep it at least your
    /// scrape interval so no burst falls between two scrapes.
    #[arg(long, env = "P2P_PEAK_WINDOW", default_value = "30s", value_parser = peak_window)]
    pub peak_window: Duration,
}

impl ServeArgs {
    pub fn workload(&self) -> WorkloadConfig {
        let w = &self.workload;
        WorkloadConfig {
            peers: w.peers as usize,
            rate_per_peer: w.rate,
            duplicate_ratio: w.duplicate_ratio,
            block_interval: w.block_interval,
            block_size: w.block_size,
            sync_burst_every: w.sync_burst_every,
            sync_burst_blocks: w.sync_burst_blocks,
            churn_every: w.churn_every,
            stale_block_probability: w.stale_block_probability,
            reorg_probability: w.reorg_probability.min(w.stale_block_probability),
            seed: w.seed,
            ..WorkloadConfig::default()
        }
    }

    /// The scenario and design to run in real time; `None` (neither flag) is the node's router
    /// under the workload flags, as before. A design alone runs the workload flags on it.
    pub fn design(&self) -> Option<Simulated> {
        let kind = match self
            .simulated
            .design
            .as_ref()
            .or(self.simulated.former_design.as_ref())
        {
            Some(name) => DesignKind::parse(name)?,
            None if self.simulated.scenario.is_some() => DesignKind::Broadcast2048,
            None => return None,
        };
        let scenario = match &self.simulated.scenario {
            Some(name) => p2p_sim::scenario::by_name(name)?,
            None => Scenario {
                name: "testnet",
                summary: "The workload flags.",
                workload: self.workload(),
                cost: self.consumer_cost(),
                duration: Duration::MAX,
            },
        };
        Some(Simulated { scenario, kind })
    }

    pub fn consumer_cost(&self) -> ConsumerCost {
        ConsumerCost {
            block: self.consumer.block_cost,
            message: self.consumer.message_cost,
            ..ConsumerCost::default()
        }
    }

    pub fn telemetry(&self) -> TelemetryConfig {
        let t = &self.traces;
        TelemetryConfig {
            endpoint: t.otlp_endpoint.clone(),
            protocol: t.otlp_protocol,
            sample_ratio: t.trace_sample_ratio,
            export_timeout: t.otlp_timeout,
            shutdown_timeout: Duration::from_secs(5),
            node_id: t.node_id.clone().unwrap_or_else(host_name),
        }
    }

    pub fn recorder(&self) -> RecorderConfig {
        RecorderConfig {
            dedup_ttl: self.exporter.dedup_ttl,
            dedup_max_items: self.exporter.dedup_max_items as usize,
            peak_window: self.exporter.peak_window,
            source: self.source.source.as_str(),
        }
    }
}

/// The kernel's host name (gethostname(2)), the default `p2p.node.id`.
fn host_name() -> String {
    gethostname::gethostname()
        .into_string()
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

fn duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("{e} (examples: 250us, 3ms, 10s, 5m)"))
}

fn positive_duration(text: &str) -> Result<Duration, String> {
    match duration(text)? {
        d if d.is_zero() => Err("must be longer than zero".into()),
        d => Ok(d),
    }
}

fn peak_window(text: &str) -> Result<Duration, String> {
    match duration(text)? {
        d if (1..=60).contains(&d.as_secs()) && d.subsec_nanos() == 0 => Ok(d),
        _ => Err("must be a whole number of seconds from 1s to 60s".into()),
    }
}

fn non_negative(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err("must be a number >= 0".into()),
    }
}

fn ratio(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err("must be a number from 0 to 1".into()),
    }
}

#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// A recording made with --record (gzip-compressed NDJSON, docs/recording.md).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// Router designs to replay it through, repeatable or comma-separated, or `all`.
    #[arg(long, alias = "strategy", value_name = "NAME", value_delimiter = ',', default_value = "all", value_parser = p2p_sim::cli::design_name)]
    pub design: Vec<String>,

    /// Processing time per new block; overrides the recording's (a tap recording has none:
    /// default 3ms).
    #[arg(long, value_parser = duration)]
    pub block_cost: Option<Duration>,

    /// Processing time per other message or peer event; overrides the recording's (default 25us).
    #[arg(long, value_parser = duration)]
    pub message_cost: Option<Duration>,

    /// Print JSON instead of the table.
    #[arg(long)]
    pub json: bool,

    /// Also write a self-contained HTML report to this file.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
}

impl ReplayArgs {
    pub fn run(&self) -> anyhow::Result<()> {
        let options = p2p_sim::replay::Options {
            path: self.file.clone(),
            designs: self.design.clone(),
            block_cost: self.block_cost,
            message_cost: self.message_cost,
            json: self.json,
            report: self.report.clone(),
        };
        p2p_sim::replay::run(&options).map_err(anyhow::Error::new)
    }
}

#[derive(Args, Clone, Debug)]
#[command(next_help_heading = "Observation source")]
pub struct SourceArgs {
    /// Where observations come from: the embedded reference router, or a real node's tap client
    /// (docs/tap-integration.md).
    #[arg(long, env = "P2P_SOURCE", default_value = "embedded", value_parser = source_parser())]
    pub source: Source,

    /// Unix socket the tap source listens on (created with --tap-socket-mode; a stale socket
    /// file is replaced). Defaults to $XDG_RUNTIME_DIR/p2p-tap.sock, or ./p2p-tap.sock.
    #[arg(long, env = "P2P_TAP_SOCKET", default_value_os_t = default_socket())]
    pub tap_socket: PathBuf,

    /// Permissions of the socket, in octal: 0600 lets only this user's node connect; 0660 also
    /// the socket's group (a node running as another user in that group).
    #[arg(long, env = "P2P_TAP_SOCKET_MODE", default_value = "0600", value_parser = octal_mode)]
    pub tap_socket_mode: u32,

    /// Listen on TCP instead of the Unix socket, on a loopback address only: the tap has no TLS
    /// and the sidecar runs on the node's host. Set a token (--tap-token-file) to keep the
    /// host's other users out.
    #[arg(long, env = "P2P_TAP_LISTEN", value_parser = loopback)]
    pub tap_listen: Option<SocketAddr>,

    /// File holding the token the node's `hello` must carry (its trailing line break trimmed;
    /// refused if empty or readable by every user). The recommended way to set a token: it
    /// stays out of argv and the environment.
    #[arg(
        long,
        env = "P2P_TAP_TOKEN_FILE",
        value_name = "FILE",
        conflicts_with = "tap_token"
    )]
    pub tap_token_file: Option<PathBuf>,

    /// The token itself (P2P_TAP_TOKEN on both sides); as a flag every user of the host sees it
    /// in the process list, so prefer --tap-token-file.
    #[arg(long, env = "P2P_TAP_TOKEN", hide_env_values = true)]
    pub tap_token: Option<String>,

    /// How long a node's connection may send nothing before it is closed and its slot freed (the
    /// tap sends a snapshot every second). Also the time a new connection has to say hello.
    #[arg(long, env = "P2P_TAP_IDLE_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub tap_idle_timeout: Duration,
}

fn default_socket() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) if !dir.is_empty() => Path::new(&dir).join("p2p-tap.sock"),
        _ => PathBuf::from("p2p-tap.sock"),
    }
}

fn octal_mode(text: &str) -> Result<u32, String> {
    match u32::from_str_radix(text.trim_start_matches("0o"), 8) {
        Ok(mode) if mode <= 0o777 && mode & 0o600 == 0o600 => Ok(mode),
        _ => Err(
            "must be octal permissions that let the owner read and write, e.g. 0600 or 0660".into(),
        ),
    }
}

fn loopback(text: &str) -> Result<SocketAddr, String> {
    let address = text
        .parse::<SocketAddr>()
        .map_err(|e| format!("{e} (an IP address and port, e.g. 127.0.0.1:9731)"))?;
    p2p_exporter::tap::check_loopback(address)?;
    Ok(address)
}

impl SourceArgs {
    /// The tap's configuration, its token file read; the error is one line.
    pub fn tap(&self) -> Result<TapConfig, String> {
        let token = match &self.tap_token_file {
            Some(path) => Some(
                p2p_tap::read_token_file(path)
                    .map_err(|e| format!("--tap-token-file {}: {e}", path.display()))?,
            ),
            None => self.tap_token.clone().filter(|t| !t.is_empty()),
        };
        Ok(TapConfig {
            listen: match self.tap_listen {
                Some(address) => TapListen::Tcp(address),
                None => TapListen::Unix {
                    path: self.tap_socket.clone(),
                    mode: self.tap_socket_mode,
                },
            },
            token,
            idle_timeout: self.tap_idle_timeout,
        })
    }
}

/// `--source`: the library's [`Source`], with the help text of each value.
fn source_parser() -> impl TypedValueParser<Value = Source> {
    PossibleValuesParser::new([
        PossibleValue::new("embedded")
            .help("The embedded reference router under the built-in workload"),
        PossibleValue::new("tap").help("A real node, through its tap client"),
    ])
    .map(|name| {
        if name == "tap" {
            Source::Tap
        } else {
            Source::Embedded
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_default_node_id_is_the_kernels_host_name() {
        let kernel = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        assert_eq!(host_name(), kernel.trim());
    }

    #[test]
    fn the_command_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults_are_the_scaling_documents_testnet() {
        let cli = Cli::try_parse_from(["p2p-exporter"]).unwrap();
        assert!(cli.command.is_none());
        let cli = cli.serve;
        assert_eq!(cli.listen, SocketAddr::from(([0, 0, 0, 0], DEFAULT_PORT)));
        assert_eq!(cli.router.capacity, 2048);
        let workload = cli.workload();
        assert_eq!(workload.peers, 20);
        assert_eq!(workload.rate_per_peer, 35.0);
        assert_eq!(cli.recorder().dedup_ttl, Duration::from_secs(5));
    }

    #[test]
    fn the_former_strategy_flag_still_names_a_design() {
        let serve = |args: &[&str]| {
            let cli = Cli::try_parse_from([&["p2p-exporter"], args].concat()).unwrap();
            cli.serve.design().map(|d| d.kind)
        };
        assert_eq!(serve(&["--design", "sharded"]), Some(DesignKind::Sharded));
        assert_eq!(serve(&["--strategy", "sharded"]), Some(DesignKind::Sharded));
        assert_eq!(
            serve(&["--design", "actor", "--strategy", "sharded"]),
            Some(DesignKind::Actor)
        );
        for command in ["simulate", "replay"] {
            let mut args = vec!["p2p-exporter", command, "--strategy", "dedup,actor"];
            if command == "replay" {
                args.push("x.gz");
            }
            let designs = match Cli::try_parse_from(args).unwrap().command {
                Some(Command::Simulate(simulate)) => simulate.design,
                Some(Command::Replay(replay)) => replay.design,
                other => panic!("{other:?}"),
            };
            assert_eq!(designs, ["dedup", "actor"], "{command}");
        }
        let help = Cli::command().render_long_help().to_string();
        assert!(!help.contains("strategy"), "{help}");
    }

    #[test]
    fn bad_values_are_refused_with_the_reason() {
        for args in [
            ["--duplicate-ratio", "1.5"],
            ["--rate=-1", "--seed=1"],
            ["--capacity", "0"],
            ["--peak-window", "90s"],
            ["--block-cost", "fast"],
            ["--listen", "localhost"],
            ["--tap-listen", "0.0.0.0:9731"],
            ["--tap-listen", "192.0.2.1:9731"],
            ["--web.max-connections", "0"],
        ] {
            let err = Cli::try_parse_from(["p2p-exporter", args[0], args[1]]).unwrap_err();
            assert_eq!(
                err.kind(),
                clap::error::ErrorKind::ValueValidation,
                "{args:?}"
            );
        }
    }

    #[test]
    fn socket_modes_must_let_the_owner_in() {
        assert_eq!(octal_mode("0600"), Ok(0o600));
        assert_eq!(octal_mode("660"), Ok(0o660));
        assert!(octal_mode("0400").is_err());
        assert!(octal_mode("1777").is_err());
        assert!(octal_mode("rw").is_err());
    }
}
