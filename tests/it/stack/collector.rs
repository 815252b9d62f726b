//! collector/otelcol.yml, checked offline: there is no Docker engine on these machines to start
//! the collector. Its pipelines (components defined, memory_limiter first, batch, health_check),
//! and the OTLP route through it: sidecars to its receivers, its traces on to Tempo's.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_yaml::Value;

use super::{
    assert_none, environment, exporter_services, host_path, host_port, kind, listeners, model_with,
    parse_yaml, service_with_image, stack, strings, target_problem, COMPOSE_FILES, GOOD_COLLECTOR,
    GOOD_MODEL, GOOD_TEMPO,
};

fn collector_problems(config: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let defined = |section: &str, id: &str| {
        config[section]
            .as_mapping()
            .is_some_and(|m| m.contains_key(id))
    };
    let pipelines = config["service"]["pipelines"].as_mapping();
    if pipelines.is_none_or(|p| p.is_empty()) {
        problems.push("service.pipelines is empty: the collector would do nothing".to_owned());
    }
    let mut connector_outputs = BTreeSet::new();
    let mut connector_inputs = BTreeSet::new();
    for (name, pipeline) in pipelines.into_iter().flatten() {
        let name = name.as_str().unwrap_or("?");
        let receivers = strings(&pipeline["receivers"]);
        let processors = strings(&pipeline["processors"]);
        let exporters = strings(&pipeline["exporters"]);
        if receivers.is_empty() || exporters.is_empty() {
            problems.push(format!(
                "pipeline {name} needs at least one receiver and one exporter"
            ));
        }
        for id in &receivers {
            if defined("connectors", id) {
                connector_inputs.insert(id.clone());
            } else if !defined("receivers", id) {
                problems.push(format!(
                    "pipeline {name} names receiver {id}, defined under neither receivers nor connectors"
                ));
            }
        }
        for id in &processors {
            if !defined("processors", id) {
                problems.push(format!(
                    "pipeline {name} names processor {id}, not defined under processors"
                ));
            }
        }
        for id in &exporters {
            if defined("connectors", id) {
                connector_outputs.insert(id.clone());
            } else if !defined("exporters", id) {
                problems.push(format!(
                    "pipeline {name} names exporter {id}, defined under neither exporters nor connectors"
                ));
            }
        }
        match processors.first() {
            Some(first) if kind(first) == "memory_limiter" => {}
            Some(first) => problems.push(format!(
                "pipeline {name} starts with {first}: memory_limiter must be first, so data is refused before it is held"
            )),
            None => problems.push(format!(
                "pipeline {name} has no processors: memory_limiter must be first"
            )),
        }
        if !processors.iter().any(|p| kind(p) == "batch") {
            problems.push(format!("pipeline {name} has no batch processor"));
        }
    }
    for id in connector_outputs.symmetric_difference(&connector_inputs) {
        problems.push(format!(
            "connector {id} must be an exporter of one pipeline and a receiver of another"
        ));
    }
    let enabled = strings(&config["service"]["extensions"]);
    for id in &enabled {
        if !defined("extensions", id) {
            problems.push(format!(
                "service.extensions enables {id}, not defined under extensions"
            ));
        }
    }
    if !enabled.iter().any(|id| kind(id) == "health_check") {
        problems.push(
            "the health_check extension is not enabled: the container healthcheck has nothing to probe"
                .to_owned(),
        );
    }
    for (id, receiver) in config["receivers"].as_mapping().into_iter().flatten() {
        let id = id.as_str().unwrap_or("?");
        if kind(id) != "otlp" {
            continue;
        }
        for protocol in ["grpc", "http"] {
            let endpoint = receiver["protocols"][protocol]["endpoint"].as_str();
            if !endpoint.is_some_and(|e| e.starts_with("0.0.0.0:")) {
                problems.push(format!(
                    "receiver {id} {protocol} endpoint is {endpoint:?}: bind 0.0.0.0 explicitly, or other containers cannot reach it"
                ));
            }
        }
    }
    problems
}

/// OTLP receiver port by OTEL_EXPORTER_OTLP_PROTOCOL value.
fn collector_otlp_ports(config: &Value) -> BTreeMap<&'static str, u16> {
    let mut ports = BTreeMap::new();
    for (id, receiver) in config["receivers"].as_mapping().into_iter().flatten() {
        if id.as_str().map(kind) != Some("otlp") {
            continue;
        }
        for (protocol, env_value) in [("grpc", "grpc"), ("http", "http/protobuf")] {
            if let Some((_, port)) = receiver["protocols"][protocol]["endpoint"]
                .as_str()
                .and_then(host_port)
            {
                ports.insert(env_value, port);
            }
        }
    }
    ports
}

/// The sidecars send OTLP to the collector's receiver for their protocol and name themselves; the
/// collector mounts this config, sends traces on to Tempo's receiver, and stays inside its memory.
fn otlp_problems(
    model: &Value,
    root: &Path,
    collector: &Value,
    listeners: &BTreeMap<String, BTreeSet<u16>>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let Some((collector_name, collector_service)) =
        service_with_image(model, "otel/opentelemetry-collector")
    else {
        return vec!["no otel/opentelemetry-collector service".to_owned()];
    };
    let otlp_ports = collector_otlp_ports(collector);
    for name in exporter_services(model, root) {
        let service = &model["services"][name.as_str()];
        let env = environment(service);
        let protocol = env.get("OTEL_EXPORTER_OTLP_PROTOCOL").map(String::as_str);
        let endpoint = env
            .get("OTEL_EXPORTER_OTLP_ENDPOINT")
            .and_then(|e| host_port(e));
        match (protocol.and_then(|p| otlp_ports.get(p)), endpoint) {
            (Some(port), Some((host, sent_to))) if host == collector_name && sent_to == *port => {}
            (port, endpoint) => problems.push(format!(
                "{name}: OTLP goes to {endpoint:?} over {protocol:?}, but the collector {collector_name} receives that protocol on {port:?}"
            )),
        }
        if env.get("OTEL_SERVICE_NAME").is_none_or(String::is_empty) {
            problems.push(format!("{name}: no OTEL_SERVICE_NAME"));
        }
        let identity = format!("service.instance.id={name}");
        if !env
            .get("OTEL_RESOURCE_ATTRIBUTES")
            .is_some_and(|a| a.split(',').any(|kv| kv.trim() == identity))
        {
            problems.push(format!(
                "{name}: OTEL_RESOURCE_ATTRIBUTES must carry {identity}, the node's identity (and its span metrics' instance label)"
            ));
        }
    }
    // The collector container loads the file this test checked.
    let config_arg = strings(&collector_service["command"])
        .iter()
        .find_map(|a| a.strip_prefix("--config=").map(str::to_owned));
    let loaded = config_arg
        .as_deref()
        .and_then(|path| host_path(collector_service, path));
    if loaded.as_deref() != Some(root.join("collector/otelcol.yml").as_path()) {
        problems.push(format!(
            "{collector_name} loads {config_arg:?} = host {loaded:?}, not collector/otelcol.yml"
        ));
    }
    // Traces reach Tempo: every OTLP exporter of a traces pipeline sends to a service's receiver.
    let mut to_tempo = false;
    for (name, pipeline) in collector["service"]["pipelines"]
        .as_mapping()
        .into_iter()
        .flatten()
    {
        if name.as_str().map(kind) != Some("traces") {
            continue;
        }
        for exporter in strings(&pipeline["exporters"])
            .iter()
            .filter(|e| kind(e) == "otlp")
        {
            let endpoint = collector["exporters"][exporter.as_str()]["endpoint"]
                .as_str()
                .unwrap_or_default();
            match target_problem(
                &format!("exporter {exporter}"),
                endpoint,
                &collector_name,
                listeners,
            ) {
                Some(problem) => problems.push(problem),
                None => {
                    let host = host_port(endpoint).map(|(h, _)| h).unwrap_or_default();
                    to_tempo |= model["services"][host.as_str()]["image"]
                        .as_str()
                        .is_some_and(|i| i.starts_with("grafana/tempo"));
                }
            }
        }
    }
    if !to_tempo {
        problems.push("no traces pipeline exports to the Tempo service".to_owned());
    }
    // memory_limiter must refuse data before the container's memory limit kills the collector.
    let limit_mib = collector["processors"]["memory_limiter"]["limit_mib"].as_u64();
    let container_mib = collector_service["mem_limit"]
        .as_str()
        .and_then(|m| m.strip_suffix('m'))
        .and_then(|m| m.parse::<u64>().ok())
        .or_else(|| collector_service["mem_limit"].as_u64().map(|b| b >> 20));
    match (limit_mib, container_mib) {
        (Some(limit), Some(container)) if limit < container => {}
        (limit, container) => problems.push(format!(
            "memory_limiter limit_mib {limit:?} must be set and below the container's mem_limit {container:?} MiB"
        )),
    }
    problems
}

// ---------------------------------------------------------------------------------------------
// The checks, on the repository's files.

#[test]
fn the_collector_pipelines_use_defined_components_behind_memory_limiter() {
    let stack = stack(COMPOSE_FILES[0]);
    assert_none(
        "collector/otelcol.yml",
        collector_problems(&stack.collector),
    );
}

#[test]
fn sidecars_send_traces_to_the_collector_which_sends_them_to_tempo() {
    for files in COMPOSE_FILES {
        let s = stack(files);
        let listening = listeners(&s.model, &s.collector, &s.tempo, &s.root);
        assert_none(
            &format!("OTLP route with {files:?}"),
            otlp_problems(&s.model, &s.root, &s.collector, &listening),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Each check, on broken input: it must fail.

fn collector_with(from: &str, to: &str) -> Vec<String> {
    assert!(GOOD_COLLECTOR.contains(from), "fixture has no {from:?}");
    collector_problems(&parse_yaml(&GOOD_COLLECTOR.replacen(from, to, 1)))
}

#[test]
fn the_collector_check_passes_a_good_config_and_catches_each_mistake() {
    assert_none(
        "good fixture",
        collector_problems(&parse_yaml(GOOD_COLLECTOR)),
    );
    let cases = [
        (
            "processors: [memory_limiter, batch]",
            "processors: [batch, memory_limiter]",
            "must be first",
        ),
        (
            "processors: [memory_limiter, batch]",
            "processors: [memory_limiter]",
            "no batch",
        ),
        (
            "exporters: [otlp/tempo, spanmetrics]",
            "exporters: [otlp/jaeger, spanmetrics]",
            "otlp/jaeger",
        ),
        ("receivers: [otlp]", "receivers: [zipkin]", "zipkin"),
        (
            "processors: [memory_limiter, batch]\n      exporters: [prometheus]",
            "processors: [memory_limiter, filter, batch]\n      exporters: [prometheus]",
            "filter",
        ),
        (
            "exporters: [otlp/tempo, spanmetrics]",
            "exporters: [otlp/tempo]",
            "connector spanmetrics",
        ),
        (
            "extensions: [health_check]",
            "extensions: []",
            "health_check",
        ),
        (
            "extensions: [health_check]",
            "extensions: [health_check, pprof]",
            "pprof",
        ),
        (
            "grpc: {endpoint: \"0.0.0.0:4317\"}",
            "grpc: {}",
            "bind 0.0.0.0",
        ),
        ("pipelines:", "pipelines: {}\n  old_pipelines:", "empty"),
    ];
    for (from, to, expected) in cases {
        let problems = collector_with(from, to);
        assert!(
            problems.iter().any(|p| p.contains(expected)),
            "{from:?} -> {to:?}: expected a problem mentioning {expected:?}, got {problems:?}"
        );
    }
}

#[test]
fn the_otlp_check_catches_wrong_ports_missing_identity_and_no_route_to_tempo() {
    let root = Path::new("/repo");
    let collector = parse_yaml(GOOD_COLLECTOR);
    let check = |model: &Value, collector: &Value| {
        let listening = listeners(model, collector, &parse_yaml(GOOD_TEMPO), root);
        otlp_problems(model, root, collector, &listening)
    };
    assert_none("good fixture", check(&parse_yaml(GOOD_MODEL), &collector));
    let cases = [
        (
            "otel-collector:4317",
            "otel-collector:4318",
            "receives that protocol on",
        ),
        (
            "PROTOCOL: grpc",
            "PROTOCOL: http/json",
            "over Some(\"http/json\")",
        ),
        (
            "service.instance.id=node-a,",
            "",
            "service.instance.id=node-a",
        ),
        (
            "OTEL_SERVICE_NAME: p2p-exporter",
            "OTEL_SERVICE_NAME: \"\"",
            "OTEL_SERVICE_NAME",
        ),
        (
            "/repo/collector/otelcol.yml:",
            "/repo/collector/other.yml:",
            "not collector/otelcol.yml",
        ),
        (
            "mem_limit: 512m",
            "mem_limit: 256m",
            "below the container's mem_limit",
        ),
    ];
    for (from, to, expected) in cases {
        let problems = check(&model_with(from, to), &collector);
        assert!(
            problems.iter().any(|p| p.contains(expected)),
            "{from:?} -> {to:?}: expected {expected:?} in {problems:?}"
        );
    }
    let to_jaeger = parse_yaml(&GOOD_COLLECTOR.replace("tempo:4317", "jaeger:4317"));
    let problems = check(&parse_yaml(GOOD_MODEL), &to_jaeger);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("jaeger is not a compose service")),
        "{problems:?}"
    );
    assert!(problems.iter().any(|p| p.contains("Tempo")), "{problems:?}");
}
