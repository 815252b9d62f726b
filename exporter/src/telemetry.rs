//! OTLP traces: the provider's lifecycle, and the spans the exporter derives from observations.
//!
//! Off unless an endpoint is configured (`--otlp-endpoint` or the standard
//! `OTEL_EXPORTER_OTLP_ENDPOINT`). `https://` means TLS on either transport, trusting the system's
//! roots plus the standard `OTEL_EXPORTER_OTLP_CERTIFICATE`; `OTEL_EXPORTER_OTLP_HEADERS` is read
//! by opentelemetry-otlp itself. The exporter behaves the same with no collector, an unreachable
//! one or a slow one: spans wait in a bounded queue, every export has a timeout, spans that fail
//! are counted and warned about at most once a minute, and what is left is flushed on shutdown
//! within a deadline.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use opentelemetry::trace::{
    Span as _, SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, Tracer as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracer, SdkTracerProvider, SpanData,
    SpanExporter, SpanProcessor,
};
use opentelemetry_sdk::Resource;
use p2p_observe::{InvType, MessageKind, Observation, Observer};
use prometheus::IntCounter;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::CertificateDer;
use tonic::transport::{Certificate, ClientTlsConfig};

use crate::metrics::SpanCounters;
use tokio::time::Instant;

/// Spans waiting for export; past it new spans are dropped (and counted as ended, not exported).
const MAX_QUEUED_SPANS: usize = 2048;
const MAX_EXPORT_BATCH: usize = 512;
/// Blocks whose announcements are remembered until they are accepted.
const MAX_JOURNEYS: usize = 1024;
/// At most one lag span per subscriber per this period, carrying the events skipped in it.
const LAG_SPAN_PERIOD: Duration = Duration::from_secs(1);
/// Subscribers whose lag is aggregated; names come from code, but a tap peer could send many.
const MAX_LAG_SUBSCRIBERS: usize = 64;
const FAILURE_WARNING_PERIOD: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OtlpProtocol {
    Grpc,
    HttpProtobuf,
}

#[derive(Clone, Debug)]
pub struct TelemetryConfig {
    pub endpoint: Option<String>,
    pub protocol: OtlpProtocol,
    pub sample_ratio: f64,
    pub export_timeout: Duration,
    pub shutdown_timeout: Duration,
    /// Identifies this node in every span's resource (`p2p.node.id`).
    pub node_id: String,
}

/// Holds the tracer provider; dropping it flushes and shuts the provider down within the deadline.
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
    shutdown_timeout: Duration,
}

impl TelemetryGuard {
    pub fn tracer(&self) -> Option<SdkTracer> {
        use opentelemetry::trace::TracerProvider as _;
        self.provider
            .as_ref()
            .map(|p| p.tracer(env!("CARGO_PKG_NAME")))
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            if let Err(err) = provider.shutdown_with_timeout(self.shutdown_timeout) {
                tracing::warn!(error = %err, "spans may have been lost at shutdown");
            }
        }
    }
}

/// Builds the provider; must run inside the tokio runtime (the gRPC client lives on it).
pub fn init(config: &TelemetryConfig, counters: SpanCounters) -> anyhow::Result<TelemetryGuard> {
    let Some(endpoint) = config.endpoint.as_deref().filter(|e| !e.is_empty()) else {
        return Ok(TelemetryGuard {
            provider: None,
            shutdown_timeout: config.shutdown_timeout,
        });
    };
    let tls = match endpoint.split_once("://").map(|(scheme, _)| scheme) {
        Some("https") => true,
        Some("http") => false,
        _ => anyhow::bail!("OTLP endpoint {endpoint}: give http:// (plain text) or https:// (TLS)"),
    };
    let extra_ca = extra_ca()?;
    let exporter = match config.protocol {
        OtlpProtocol::Grpc => {
            let builder = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint)
                .with_timeout(config.export_timeout);
            if tls {
                let mut tls_config = ClientTlsConfig::new().with_native_roots();
                if let Some((_, pem)) = &extra_ca {
                    tls_config = tls_config.ca_certificate(Certificate::from_pem(pem));
                }
                builder.with_tls_config(tls_config).build()?
            } else {
                builder.build()?
            }
        }
        OtlpProtocol::HttpProtobuf => opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
            .with_timeout(config.export_timeout)
            .with_http_client(http_client(config.export_timeout, extra_ca.as_ref())?)
            .build()?,
    };
    let batch = BatchSpanProcessor::builder(CountingExporter {
        inner: exporter,
        counters: counters.clone(),
        last_warning: Mutex::new(None),
    })
    .with_batch_config(
        BatchConfigBuilder::default()
            .with_max_queue_size(MAX_QUEUED_SPANS)
            .with_max_export_batch_size(MAX_EXPORT_BATCH)
            .with_scheduled_delay(Duration::from_secs(1))
            .build(),
    )
    .build();
    let mut resource = Resource::builder();
    // OTEL_SERVICE_NAME, when set, wins over the package name.
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name(env!("CARGO_PKG_NAME"));
    }
    let mut attributes = vec![
        KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
        KeyValue::new("p2p.node.id", config.node_id.clone()),
    ];
    // The collector's span metrics tell sidecars apart by service.instance.id; default it to the
    // node id unless OTEL_RESOURCE_ATTRIBUTES already names one.
    let named = std::env::var("OTEL_RESOURCE_ATTRIBUTES").is_ok_and(|attrs| {
        attrs
            .split(',')
            .any(|kv| kv.trim().starts_with("service.instance.id="))
    });
    if !named {
        attributes.push(KeyValue::new("service.instance.id", config.node_id.clone()));
    }
    let resource = resource.with_attributes(attributes).build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(CountingProcessor {
            inner: batch,
            ended: counters.ended,
        })
        // Decided on the trace id alone: every sidecar samples the same blocks.
        .with_sampler(Sampler::TraceIdRatioBased(config.sample_ratio))
        .with_resource(resource)
        .build();
    tracing::info!(endpoint, protocol = ?config.protocol, "exporting traces over OTLP");
    Ok(TelemetryGuard {
        provider: Some(provider),
        shutdown_timeout: config.shutdown_timeout,
    })
}

/// The standard variables naming a PEM file of CAs to trust for the collector's certificate, on
/// top of the system's roots; the traces-only one wins.
const CERTIFICATE_VARIABLES: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
    "OTEL_EXPORTER_OTLP_CERTIFICATE",
];

/// The extra CA file (its variable and contents), if one is set; an unreadable one or one with no
/// certificate ends start-up rather than fail every export later.
fn extra_ca() -> anyhow::Result<Option<(&'static str, Vec<u8>)>> {
    let Some((variable, path)) = CERTIFICATE_VARIABLES.iter().find_map(|variable| {
        std::env::var_os(variable)
            .filter(|path| !path.is_empty())
            .map(|path| (*variable, std::path::PathBuf::from(path)))
    }) else {
        return Ok(None);
    };
    let pem =
        std::fs::read(&path).map_err(|e| anyhow::anyhow!("{variable}={}: {e}", path.display()))?;
    if CertificateDer::pem_slice_iter(&pem).next().is_none() {
        anyhow::bail!("{variable}={}: no PEM certificate in it", path.display());
    }
    Ok(Some((variable, pem)))
}

/// The http/protobuf client: rustls (ring) trusting the system's roots and the extra CA, the
/// same trust the gRPC transport gets from tonic.
fn http_client(
    timeout: Duration,
    extra_ca: Option<&(&'static str, Vec<u8>)>,
) -> anyhow::Result<reqwest::blocking::Client> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    if let Some((variable, pem)) = extra_ca {
        for cert in CertificateDer::pem_slice_iter(pem) {
            roots
                .add(cert.map_err(|e| anyhow::anyhow!("{variable}: {e}"))?)
                .map_err(|e| anyhow::anyhow!("{variable}: {e}"))?;
        }
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    // The blocking client runs its own runtime, which cannot be built on a tokio worker.
    std::thread::spawn(move || {
        reqwest::blocking::Client::builder()
            .timeout(timeout)
            .tls_backend_preconfigured(tls)
            .build()
    })
    .join()
    .map_err(|_| anyhow::anyhow!("building the OTLP HTTP client panicked"))?
    .map_err(|e| anyhow::anyhow!("cannot build the OTLP HTTP client: {e}"))
}

/// Counts every span handed to the pipeline, before the bounded queue can drop it.
#[derive(Debug)]
struct CountingProcessor<P> {
    inner: P,
    ended: IntCounter,
}

impl<P: SpanProcessor> SpanProcessor for CountingProcessor<P> {
    fn on_start(&self, span: &mut opentelemetry_sdk::trace::Span, cx: &Context) {
        self.inner.on_start(span, cx)
    }

    fn on_end(&self, span: SpanData) {
        self.ended.inc();
        self.inner.on_end(span)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource)
    }
}

/// Counts exported and failed spans, and warns about failures at most once a minute.
struct CountingExporter<E> {
    inner: E,
    counters: SpanCounters,
    last_warning: Mutex<Option<Instant>>,
}

impl<E> std::fmt::Debug for CountingExporter<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CountingExporter")
    }
}

impl<E: SpanExporter> SpanExporter for CountingExporter<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let spans = batch.len() as u64;
        let result = self.inner.export(batch).await;
        match &result {
            Ok(()) => self.counters.exported.inc_by(spans),
            Err(err) => {
                self.counters.failed.inc_by(spans);
                let mut last = self.last_warning.lock().unwrap_or_else(|e| e.into_inner());
                if last.is_none_or(|t| t.elapsed() >= FAILURE_WARNING_PERIOD) {
                    *last = Some(Instant::now());
                    tracing::warn!(error = %err, spans, "OTLP export failed; spans dropped");
                }
            }
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource)
    }
}

/// The trace a block's spans belong to on every node: its id is the first 16 bytes of the block
/// hash, so the sidecars of a whole testnet put their spans for one block in one trace.
pub fn block_trace_context(hash: &[u8; 32]) -> Context {
    let trace_id = TraceId::from_bytes(hash[..16].try_into().expect("16 bytes"));
    let span_id = SpanId::from_bytes(hash[16..24].try_into().expect("8 bytes"));
    let parent = SpanContext::new(
        trace_id,
        span_id,
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    );
    Context::new().with_remote_span_context(parent)
}

struct Journey {
    first_seen: SystemTime,
    announcers: u64,
}

/// Blocks announced and not yet accepted, oldest first, at most [`MAX_JOURNEYS`].
#[derive(Default)]
struct Journeys {
    by_hash: HashMap<[u8; 32], Journey>,
    order: VecDeque<[u8; 32]>,
}

/// Passes every observation on, and turns block journeys and lag episodes into spans. Installed
/// only when tracing is on, so the hot path pays nothing otherwise.
pub struct Traced<O> {
    inner: O,
    tracer: SdkTracer,
    journeys: Mutex<Journeys>,
    /// Per subscriber: when its last lag span went out, and the events skipped since.
    lag: Mutex<HashMap<String, (Option<Instant>, u64)>>,
    last_queued: AtomicU64,
}

impl<O: Observer> Traced<O> {
    pub fn new(inner: O, tracer: SdkTracer) -> Traced<O> {
        Traced {
            inner,
            tracer,
            journeys: Mutex::new(Journeys::default()),
            lag: Mutex::new(HashMap::new()),
            last_queued: AtomicU64::new(0),
        }
    }

    fn announced(&self, hash: [u8; 32]) {
        let mut guard = self.journeys.lock().unwrap_or_else(|e| e.into_inner());
        let Journeys { by_hash, order } = &mut *guard;
        by_hash
            .entry(hash)
            .or_insert_with(|| {
                order.push_back(hash);
                Journey {
                    first_seen: SystemTime::now(),
                    announcers: 0,
                }
            })
            .announcers += 1;
        while order.len() > MAX_JOURNEYS {
            if let Some(oldest) = order.pop_front() {
                by_hash.remove(&oldest);
            }
        }
    }

    /// One span per accepted block. `received` and `delivered` are offsets from the first
    /// announcement; an unknown one (`None`: an older tap client, or a node that does not measure
    /// it) gets no event. Event times never go backwards, so the events stay in journey order.
    fn accepted(
        &self,
        hash: [u8; 32],
        height: u64,
        received: Option<Duration>,
        delivered: Option<Duration>,
        propagation: Duration,
    ) {
        let journey = {
            let mut guard = self.journeys.lock().unwrap_or_else(|e| e.into_inner());
            guard.by_hash.remove(&hash)
        };
        let now = SystemTime::now();
        let first_seen = now - propagation;
        let hex = hex::encode(hash);
        let mut span = self
            .tracer
            .span_builder("p2p.block.journey")
            .with_start_time(first_seen)
            .with_attributes([
                KeyValue::new("block.hash", hex),
                KeyValue::new("block.height", height as i64),
                KeyValue::new(
                    "block.announcers",
                    journey.as_ref().map_or(0, |j| j.announcers) as i64,
                ),
                KeyValue::new("block.propagation_ms", propagation.as_secs_f64() * 1000.0),
            ])
            .start_with_context(&self.tracer, &block_trace_context(&hash));
        let mut last = journey.map_or(first_seen, |j| j.first_seen).min(now);
        span.add_event_with_timestamp("first inv seen", last, vec![]);
        for (name, offset) in [
            ("block received", received),
            ("delivered to consumer", delivered),
        ] {
            if let Some(offset) = offset {
                last = (first_seen + offset.min(propagation)).max(last);
                span.add_event_with_timestamp(name, last, vec![]);
            }
        }
        span.add_event_with_timestamp("block accepted", now, vec![]);
        span.end_with_timestamp(now);
    }

    fn lagged(&self, subscriber: &str, skipped: u64) {
        let now = Instant::now();
        let due = {
            let mut lag = self.lag.lock().unwrap_or_else(|e| e.into_inner());
            if !lag.contains_key(subscriber) && lag.len() >= MAX_LAG_SUBSCRIBERS {
                return;
            }
            let entry = lag.entry(bounded(subscriber)).or_insert((None, 0));
            entry.1 += skipped;
            if entry
                .0
                .is_some_and(|last| now.saturating_duration_since(last) < LAG_SPAN_PERIOD)
            {
                return;
            }
            let total = entry.1;
            *entry = (Some(now), 0);
            total
        };
        let mut span = self
            .tracer
            .span_builder("p2p.lag_episode")
            .with_attributes([
                KeyValue::new("subscriber", bounded(subscriber)),
                KeyValue::new("events.skipped", due as i64),
                KeyValue::new(
                    "channel.queued",
                    self.last_queued.load(Ordering::Relaxed) as i64,
                ),
            ])
            .start(&self.tracer);
        span.end();
    }
}

impl<O: Observer> Observer for Traced<O> {
    fn observe(&self, observation: Observation<'_>) {
        self.inner.observe(observation);
        match observation {
            Observation::MessageEmitted {
                kind: MessageKind::Inv,
                inventory,
            } => inventory
                .iter()
                .filter(|item| item.kind == InvType::Block)
                .for_each(|item| self.announced(item.hash)),
            Observation::EventSent { queued, .. } => {
                self.last_queued.store(queued as u64, Ordering::Relaxed)
            }
            Observation::BlockAccepted {
                hash,
                height,
                received,
                delivered,
                propagation,
            } => self.accepted(hash, height, received, delivered, propagation),
            Observation::SubscriberLagged {
                subscriber,
                skipped,
            } => self.lagged(subscriber, skipped),
            _ => {}
        }
    }
}

/// A subscriber name as it goes into a span: names come from code, but over the tap they arrive
/// from another process, so their length is capped.
fn bounded(name: &str) -> String {
    name.chars().take(64).collect()
}

/// The tracer-aware observer the router reports to: the recorder alone, or the recorder with
/// span derivation when tracing is on.
pub fn observer(
    recorder: Arc<crate::recorder::Recorder>,
    tracer: Option<SdkTracer>,
) -> Arc<dyn Observer> {
    match tracer {
        Some(tracer) => Arc::new(Traced::new(recorder, tracer)),
        None => recorder,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blocks_trace_id_is_the_start_of_its_hash() {
        let mut hash = [0u8; 32];
        hash[0] = 0xab;
        hash[15] = 0x01;
        let cx = block_trace_context(&hash);
        let sc = cx.span().span_context().clone();
        assert_eq!(
            sc.trace_id().to_string(),
            "ab000000000000000000000000000001"
        );
        assert!(sc.is_remote() && sc.is_sampled());
    }
}
