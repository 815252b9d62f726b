//! OTLP traces checked against a receiver that decodes the real protobuf.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

use crate::support::{free_port, wait_for, Exporter};

/// A span as received, with the resource it came under.
#[derive(Clone, Debug)]
struct Received {
    node: String,
    span: Span,
}

/// An OTLP/HTTP receiver on loopback: accepts `POST /v1/traces` with protobuf bodies.
struct Receiver {
    address: SocketAddr,
    spans: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let spans = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&spans);
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let sink = Arc::clone(&sink);
                std::thread::spawn(move || serve(stream, sink));
            }
        });
        Receiver { address, spans }
    }

    fn spans(&self) -> Vec<Received> {
        self.spans.lock().unwrap().clone()
    }
}

fn serve(stream: std::net::TcpStream, sink: Arc<Mutex<Vec<Received>>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut length = 0;
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
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        assert!(
            request_line.starts_with("POST /v1/traces "),
            "{request_line}"
        );
        let request = ExportTraceServiceRequest::decode(body.as_slice()).expect("OTLP protobuf");
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
                    });
                }
            }
        }
        drop(received);
        let reply =
            "HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n";
        if writer.write_all(reply.as_bytes()).is_err() {
            return;
        }
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
