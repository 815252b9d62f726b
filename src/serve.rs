//! Serving: the metrics registry, the observation source (embedded or tap), traces and the HTTP
//! server, composed until SIGTERM or ctrl-c.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;
use opentelemetry_sdk::trace::SdkTracer;
use p2p_exporter::decision::{DecisionEngine, Thresholds};
use p2p_exporter::http::{app, AppState};
use p2p_exporter::recorder::Recorder;
use p2p_exporter::server::ServerConfig;
use p2p_exporter::tap::{TapConfig, TapSource};
use p2p_exporter::telemetry;
use p2p_exporter::web::WebConfig;
use p2p_recording::Source;
use prometheus::Registry;
use tokio::task::JoinSet;
use tracing_subscriber::EnvFilter;

use crate::cli::{LogFormat, ServeArgs};
use crate::embedded::{self, EmbeddedConfig};

/// Sets up metrics and telemetry, serves until SIGTERM or ctrl-c, then flushes spans while the
/// runtime can still carry them.
pub fn run(
    runtime: &tokio::runtime::Runtime,
    args: ServeArgs,
    filter: EnvFilter,
    format: LogFormat,
) -> anyhow::Result<()> {
    check_peers(&args)?;
    // Every file the flags name is read before anything starts.
    let web = match &args.web.config_file {
        Some(path) => WebConfig::load(path).map_err(|e| {
            crate::UsageError(format!("--web.config.file {}: {e:#}", path.display()))
        })?,
        None => WebConfig::none(),
    };
    let tap = match args.source.source {
        Source::Tap => Some(args.source.tap().map_err(crate::UsageError)?),
        Source::Embedded => None,
    };
    let registry = Registry::new();
    registry.register(Box::new(
        prometheus::process_collector::ProcessCollector::for_self(),
    ))?;
    let recorder = Arc::new(Recorder::new(&registry, args.recorder())?);
    let telemetry = {
        // The gRPC exporter's client lives on the runtime.
        let _runtime = runtime.enter();
        telemetry::init(&args.telemetry(), recorder.span_counters())
    };
    let telemetry = match telemetry {
        Ok(telemetry) => telemetry,
        Err(err) => {
            crate::init_logging(filter, format, None);
            return Err(err.context("cannot set up OTLP traces"));
        }
    };
    crate::init_logging(filter, format, telemetry.tracer());
    let result = runtime.block_on(serve(
        args,
        web,
        tap,
        registry,
        recorder,
        telemetry.tracer(),
    ));
    drop(telemetry);
    result
}

async fn serve(
    args: ServeArgs,
    web: WebConfig,
    tap: Option<TapConfig>,
    registry: Registry,
    recorder: Arc<Recorder>,
    tracer: Option<SdkTracer>,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let address = listener.local_addr()?;

    let mut tasks = JoinSet::new();
    let recording = match &args.record {
        Some(path) => Some(crate::recording::start(path, &args, &recorder)?),
        None => None,
    };
    let observer = telemetry::observer(Arc::clone(&recorder), tracer);
    let source = args.source.source;
    match source {
        Source::Embedded => {
            embedded::start(
                EmbeddedConfig {
                    capacity: args.router.capacity as usize,
                    max_peers: args.router.max_peers,
                    workload: args.workload(),
                    cost: args.consumer_cost(),
                    design: args.design(),
                    recording: recording.as_ref().map(|r| r.recording()),
                },
                observer,
                Arc::clone(&recorder),
                &mut tasks,
            );
        }
        Source::Tap => {
            let tap = TapSource::bind(&tap.context("the tap source has no configuration")?).await?;
            tracing::info!(tap = %tap.endpoint(), "waiting for the node's tap client");
            let view = recorder
                .node_view()
                .cloned()
                .context("the recorder was not built for the tap source")?;
            tap.start(
                observer,
                Arc::clone(&recorder),
                view,
                recording.as_ref().map(|r| r.recording()),
                &mut tasks,
            );
        }
    }
    let decision = Arc::new(DecisionEngine::new(
        Thresholds::shipped(),
        Arc::clone(&recorder),
    ));
    tasks.spawn(Arc::clone(&decision).run());
    let ready = Arc::new(AtomicBool::new(true));
    let state = AppState {
        registry,
        recorder: Arc::clone(&recorder),
        decision,
        ready: Arc::clone(&ready),
    };
    // Ready once the source runs: in tap mode that is "the node can connect", not "a node is
    // connected", so a sidecar whose node is down keeps being scraped and p2p_tap_connected=0
    // can page (docs/tap-integration.md).
    // One span for the whole run, exported when it ends (at shutdown, before the final flush).
    let design = args.design();
    let _run_span = tracing::info_span!(
        "p2p.scenario_run",
        source = source.as_str(),
        scenario = design.as_ref().map_or("testnet", |d| d.scenario.name),
        design = design.as_ref().map_or("broadcast-2048", |d| d.kind.name()),
    );
    let shutdown = shutdown_signal()?;
    let (tls, auth) = (web.tls.is_some(), web.auth.is_some());
    if !tls && !address.ip().is_loopback() {
        tracing::warn!(%address, "serving plain HTTP beyond loopback: on a host you do not control, set --web.config.file (docs/security.md)");
    }
    tracing::info!(%address, source = source.as_str(), tls, auth, "listening");
    let config = ServerConfig {
        max_connections: args.web.max_connections,
        header_timeout: args.web.header_timeout,
        tls: web.tls,
    };
    let router = p2p_exporter::web::protect(app(state), web.auth);
    p2p_exporter::server::serve(listener, router, config, recorder, shutdown).await;
    ready.store(false, Ordering::Release);
    tasks.shutdown().await;
    if let (Some(writer), Some(path)) = (recording, args.record.clone()) {
        // Waits for the writer thread to drain and finish the gzip stream.
        tokio::task::spawn_blocking(move || crate::recording::finish(writer, &path)).await??;
    }
    tracing::info!("stopped");
    Ok(())
}

/// The embedded router refuses registrations past `--max-peers`: a workload of more peers would
/// quietly run with fewer, and its verdict would be about another network.
fn check_peers(args: &ServeArgs) -> anyhow::Result<()> {
    let peers = args.workload.peers as usize;
    let max_peers = args.router.max_peers;
    if args.source.source == Source::Embedded && args.design().is_none() && peers > max_peers {
        return Err(crate::UsageError(format!(
            "--peers {peers} is above --max-peers {max_peers}: the router would refuse {} of them; raise --max-peers or lower --peers",
            peers - max_peers
        ))
        .into());
    }
    Ok(())
}

/// Resolves on SIGTERM or ctrl-c. The handlers are installed when this is called, not when it is
/// first polled: a SIGTERM that arrives right after "listening" must still shut down gracefully.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot install the SIGTERM handler")?;
    let ctrl_c = tokio::signal::ctrl_c();
    Ok(async move {
        #[cfg(unix)]
        let terminate = terminate.recv();
        #[cfg(not(unix))]
        let terminate = std::future::pending::<Option<()>>();
        tokio::select! {
            _ = ctrl_c => tracing::info!("ctrl-c received, shutting down"),
            _ = terminate => tracing::info!("SIGTERM received, shutting down"),
        }
    })
}
