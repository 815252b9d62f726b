//! OTLP traces checked against a receiver that decodes the real protobuf.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

use crate::support::{free_port, wait_for, Exporter, Pki};

/// A span as received, with the resource it came under and the request's headers.
#[derive(Clone, Debug)]
struct Received {
    node: String,
    span: Span,
    headers: Vec<(String, String)>,
}

type Sink = Arc<Mutex<Vec<Received>>>;

/// An OTLP/HTTP receiver on loopback: accepts `POST /v1/traces` with protobuf bodies, in plain
/// text or, with [`Receiver::start_tls`], over TLS with the test's certificate.
struct Receiver {
    address: SocketAddr,
    spans: Sink,
}

impl Receiver {
    fn start() -> Receiver {
        Receiver::listen(None)
    }

    fn start_tls(pki: &Pki) -> Receiver {
        Receiver::listen(Some(server_tls(pki)))
    }

    fn listen(tls: Option<Arc<rustls::ServerConfig>>) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let spans = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&spans);
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let sink = Arc::clone(&sink);
                let tls = tls.clone();
                std::thread::spawn(move || match tls {
                    None => serve(stream, sink),
                    Some(config) => {
                        let connection = rustls::ServerConnection::new(config).unwrap();
                        serve(rustls::StreamOwned::new(connection, stream), sink)
                    }
                });
            }
        });
        Receiver { address, spans }
    }

    fn spans(&self) -> Vec<Received> {
        self.spans.lock().unwrap().clone()
    }
}

fn server_tls(pki: &Pki) -> Arc<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = vec![CertificateDer::from_pem_slice(pki.cert_pem.as_bytes()).unwrap()];
    let key = PrivateKeyDer::from_pem_slice(pki.key_pem.as_bytes()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    Arc::new(config)
}

fn serve(stream: impl Read + Write, sink: Sink) {
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut length = 0;
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap();
                }
                headers.push((name.to_ascii_lowercase(), value.trim().to_owned()));
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        assert!(
            request_line.starts_with("POST /v1/traces "),
            "{request_line}"
        );
        let request = ExportTraceServiceRequest::decode(body.as_slice()).expect("OTLP protobuf");
        record(&sink, headers, request);
        let reply =
            "HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n";
        let writer = reader.get_mut();
        if writer
            .write_all(reply.as_bytes())
            .and_then(|()| writer.flush())
            .is_err()
        {
            return;
        }
    }
}

fn record(sink: &Sink, headers: Vec<(String, String)>, request: ExportTraceServiceRequest) {
    let mut received = sink.lock().unwrap();
    for resource_spans in request.resource_spans {
        let attributes = resource_spans
            .resource
            .map(|r| r.attributes)
            .unwrap_or_default();
        let node = string_attribute(&attributes, "p2p.node.id").unwrap_or_default();
        for scope in resource_spans.scope_spans {
            for span in scope.spans {
                received.push(Received {
                    node: node.clone(),
                    span,
                    headers: headers.clone(),
                });
            }
        }
    }
}

/// An OTLP/gRPC receiver over TLS: the proto's TraceService on tonic, on its own runtime.
struct GrpcReceiver {
    address: SocketAddr,
    spans: Sink,
}

struct TraceSink(Sink);

#[tonic::async_trait]
impl TraceService for TraceSink {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let headers = request
            .metadata()
            .clone()
            .into_headers()
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    value.to_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        record(&self.0, headers, request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

impl GrpcReceiver {
    fn start_tls(pki: &Pki) -> GrpcReceiver {
        let address = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let spans: Sink = Arc::new(Mutex::new(Vec::new()));
        let service = TraceServiceServer::new(TraceSink(Arc::clone(&spans)));
        let identity = tonic::transport::Identity::from_pem(&pki.cert_pem, &pki.key_pem);
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                tonic::transport::Server::builder()
                    .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))
                    .unwrap()
                    .add_service(service)
                    .serve(address)
                    .await
                    .unwrap();
            });
        });
        wait_for(
            "the gRPC receiver to listen",
            Duration::from_secs(10),
            || std::net::TcpStream::connect(address).ok(),
        );
        GrpcReceiver { address, spans }
    }

    fn spans(&self) -> Vec<Received> {
        self.spans.lock().unwrap().clone()
    }
}

fn string_attribute(attributes: &[KeyValue], key: &str) -> Option<String> {
    attributes.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            Value::StringValue(s) => Some(s.clone()),
            Value::IntValue(i) => Some(i.to_string()),
            Value::DoubleValue(d) => Some(d.to_string()),
            _ => None,
        }
    })
}

fn traced_exporter(receiver: &Receiver, node: &str) -> Exporter {
    let endpoint = format!("http://{}", receiver.address);
    Exporter::start(&[
        "--block-interval",
        "1s",
        "--otlp-endpoint",
        &endpoint,
        "--otlp-protocol",
        "http/protobuf",
        "--node-id",
        node,
        "--seed",
        "42",
    ])
}

#[test]
fn block_journeys_arrive_with_their_attributes_and_one_trace_id_per_block_across_nodes() {
    let receiver = Receiver::start();
    let _a = traced_exporter(&receiver, "node-a");
    let _b = traced_exporter(&receiver, "node-b");

    // The same workload seed mines the same blocks on both nodes.
    let journeys = wait_for(
        "both nodes to trace the same blocks",
        Duration::from_secs(60),
        || {
            let mut by_hash: BTreeMap<String, Vec<Received>> = BTreeMap::new();
            for r in receiver
                .spans()
                .into_iter()
                .filter(|r| r.span.name == "p2p.block.journey")
            {
                let hash = string_attribute(&r.span.attributes, "block.hash").unwrap();
                by_hash.entry(hash).or_default().push(r);
            }
            let shared: Vec<_> = by_hash
                .into_values()
                .filter(|spans| spans.iter().map(|r| &r.node).collect::<BTreeSet<_>>().len() == 2)
                .collect();
            (shared.len() >= 2).then_some(shared)
        },
    );

    for spans in journeys {
        let hash = string_attribute(&spans[0].span.attributes, "block.hash").unwrap();
        assert_eq!(hash.len(), 64);
        for r in &spans {
            assert_eq!(
                hex::encode(&r.span.trace_id),
                hash[..32],
                "trace id is the hash's first half"
            );
            let height: u64 = string_attribute(&r.span.attributes, "block.height")
                .unwrap()
                .parse()
                .unwrap();
            assert!(height >= 1);
            assert!(string_attribute(&r.span.attributes, "block.announcers").is_some());
            assert!(string_attribute(&r.span.attributes, "block.propagation_ms").is_some());
            let events: Vec<_> = r.span.events.iter().map(|e| e.name.as_str()).collect();
            assert_eq!(
                events,
                [
                    "first inv seen",
                    "block received",
                    "delivered to consumer",
                    "block accepted"
                ]
            );
            let times: Vec<u64> = r.span.events.iter().map(|e| e.time_unix_nano).collect();
            assert!(
                times.windows(2).all(|w| w[0] <= w[1]),
                "event times go forward: {times:?}"
            );
            assert!(r.span.start_time_unix_nano <= r.span.end_time_unix_nano);
        }
    }
}

#[test]
fn lag_episodes_become_spans_with_the_skipped_count() {
    let receiver = Receiver::start();
    let endpoint = format!("http://{}", receiver.address);
    let _lagging = Exporter::start(&[
        "--message-cost",
        "2ms",
        "--peers",
        "40",
        "--otlp-endpoint",
        &endpoint,
    ]);
    let span = wait_for("a lag episode span", Duration::from_secs(60), || {
        receiver
            .spans()
            .into_iter()
            .find(|r| r.span.name == "p2p.lag_episode")
    });
    assert_eq!(
        string_attribute(&span.span.attributes, "subscriber").as_deref(),
        Some("consumer")
    );
    let skipped: u64 = string_attribute(&span.span.attributes, "events.skipped")
        .unwrap()
        .parse()
        .unwrap();
    assert!(skipped > 0);
}

#[test]
fn with_no_collector_the_exporter_keeps_serving_and_counts_failed_spans() {
    let closed = format!("http://127.0.0.1:{}", free_port());
    let exporter = Exporter::start(&[
        "--block-interval",
        "100ms",
        "--otlp-endpoint",
        &closed,
        "--otlp-timeout",
        "1s",
    ]);
    wait_for(
        "failed exports to be counted",
        Duration::from_secs(60),
        || (exporter.value("p2p_exporter_spans_export_failed_total") > 0.0).then_some(()),
    );
    let early = exporter.value("p2p_node_resident_memory_bytes");
    let failed = exporter.value("p2p_exporter_spans_export_failed_total");
    wait_for("more failed exports", Duration::from_secs(60), || {
        (exporter.value("p2p_exporter_spans_export_failed_total") > failed + 20.0).then_some(())
    });
    let text = exporter.scrape();
    let late = crate::support::sample(&text, "p2p_node_resident_memory_bytes").unwrap();
    // The span queue is bounded: memory does not grow with the spans that could not be sent.
    assert!(late < early + 64.0 * 1024.0 * 1024.0, "{early} -> {late}");
    let exported = crate::support::sample(&text, "p2p_exporter_spans_exported_total").unwrap();
    assert_eq!(exported, 0.0);
}

#[test]
fn the_run_span_is_flushed_when_the_exporter_stops() {
    let receiver = Receiver::start();
    let endpoint = format!("http://{}", receiver.address);
    let mut exporter = Exporter::start(&["--otlp-endpoint", &endpoint, "--node-id", "node-z"]);
    // The run span only ends at shutdown: it can only arrive through the final flush.
    assert!(receiver
        .spans()
        .iter()
        .all(|r| r.span.name != "p2p.scenario_run"));
    let exit = exporter.terminate();
    assert!(exit.success(), "{exit:?}");
    let run = receiver
        .spans()
        .into_iter()
        .find(|r| r.span.name == "p2p.scenario_run")
        .expect("the run span arrives before the process exits");
    assert_eq!(run.node, "node-z");
    assert_eq!(
        string_attribute(&run.span.attributes, "design").as_deref(),
        Some("broadcast-2048")
    );
}

#[test]
fn a_collector_that_never_answers_costs_a_bounded_queue_and_counted_failures() {
    // Accepts connections and reads nothing: every export waits for its timeout.
    let black_hole = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = black_hole.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in black_hole.incoming().map_while(Result::ok) {
            held.push(stream);
        }
    });
    let exporter = Exporter::start(&[
        "--block-interval",
        "10ms",
        "--otlp-endpoint",
        &format!("http://{address}"),
        "--otlp-timeout",
        "1s",
    ]);
    let text = wait_for("exports to time out", Duration::from_secs(60), || {
        let text = exporter.scrape();
        let failed = crate::support::sample(&text, "p2p_exporter_spans_export_failed_total")?;
        (failed > 0.0).then_some(text)
    });
    let waiting = |text: &str| {
        let value = |name| crate::support::sample(text, name).unwrap();
        value("p2p_exporter_spans_ended_total")
            - value("p2p_exporter_spans_exported_total")
            - value("p2p_exporter_spans_export_failed_total")
    };
    assert_eq!(
        crate::support::sample(&text, "p2p_exporter_spans_exported_total"),
        Some(0.0)
    );
    // Spans ended but neither exported nor failed are queued (at most 2048), in the batch being
    // exported (at most 512), or were dropped at the full queue: never more than the queue holds
    // plus what was dropped, and /metrics answers throughout.
    let ended_before = crate::support::sample(&text, "p2p_exporter_spans_ended_total").unwrap();
    let later = wait_for("more spans to end", Duration::from_secs(60), || {
        let text = exporter.scrape();
        let ended = crate::support::sample(&text, "p2p_exporter_spans_ended_total")?;
        (ended > ended_before + 200.0).then_some(text)
    });
    assert!(waiting(&later) >= 0.0);
    let (status, _) = crate::support::get(exporter.address, "/healthz");
    assert_eq!(status, 200);
}

/// `OTEL_EXPORTER_OTLP_HEADERS`, url-encoded as the OTel spec writes values: `a b=c`.
const HEADERS: &str = "x-p2p-team=beta%20testnet%3D1";

/// An exporter sending to `endpoint` over `protocol`, trusting the test's CA when `ca` is given.
fn tls_exporter(endpoint: &str, protocol: &str, node: &str, ca: Option<&Path>) -> Exporter {
    let mut env = vec![("OTEL_EXPORTER_OTLP_HEADERS", HEADERS.to_owned())];
    if let Some(ca) = ca {
        env.push((
            "OTEL_EXPORTER_OTLP_CERTIFICATE",
            ca.to_str().unwrap().to_owned(),
        ));
    }
    Exporter::start_with_env(
        &[
            "--block-interval",
            "200ms",
            "--otlp-endpoint",
            endpoint,
            "--otlp-protocol",
            protocol,
            "--otlp-timeout",
            "1s",
            "--node-id",
            node,
        ],
        &env,
    )
}

/// Spans arrive over TLS on either transport with the header; without the CA the exporter does
/// not trust the receiver, and counts its spans failed.
fn spans_arrive_over_tls(
    pki: &Pki,
    protocol: &str,
    address: SocketAddr,
    spans: &dyn Fn() -> Vec<Received>,
) {
    let dir = tempfile::tempdir().unwrap();
    pki.write_to(dir.path());
    let ca = dir.path().join("ca.pem");
    let endpoint = format!("https://{address}");
    let trusting = tls_exporter(&endpoint, protocol, "node-tls", Some(&ca));
    let untrusting = tls_exporter(&endpoint, protocol, "node-untrusting", None);
    let span = wait_for(
        &format!("a {protocol} span over TLS"),
        Duration::from_secs(60),
        || spans().into_iter().find(|r| r.node == "node-tls"),
    );
    assert!(
        span.headers
            .iter()
            .any(|(name, value)| name == "x-p2p-team" && value == "beta testnet=1"),
        "{:?}",
        span.headers
    );
    // The receiver has the spans before the exporter has its answer and counts them exported.
    wait_for(
        "the trusting exporter to count its spans exported",
        Duration::from_secs(60),
        || (trusting.value("p2p_exporter_spans_exported_total") > 0.0).then_some(()),
    );
    wait_for(
        "the untrusting exporter's spans to fail",
        Duration::from_secs(60),
        || (untrusting.value("p2p_exporter_spans_export_failed_total") > 0.0).then_some(()),
    );
    assert_eq!(untrusting.value("p2p_exporter_spans_exported_total"), 0.0);
    assert!(spans().iter().all(|r| r.node != "node-untrusting"));
}

#[test]
fn spans_reach_a_tls_collector_over_http_protobuf_with_the_configured_header() {
    let pki = Pki::new();
    let receiver = Receiver::start_tls(&pki);
    spans_arrive_over_tls(&pki, "http/protobuf", receiver.address, &|| {
        receiver.spans()
    });
}

#[test]
fn spans_reach_a_tls_collector_over_grpc_with_the_configured_header() {
    let pki = Pki::new();
    let receiver = GrpcReceiver::start_tls(&pki);
    spans_arrive_over_tls(&pki, "grpc", receiver.address, &|| receiver.spans());
}

#[test]
fn an_endpoint_without_a_scheme_is_refused_at_start() {
    let run = crate::support::run_measured(&["--otlp-endpoint", "127.0.0.1:4317"]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stderr
            .contains("give http:// (plain text) or https:// (TLS)"),
        "{}",
        run.stderr
    );
}
