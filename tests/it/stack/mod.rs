//! The compose stack, checked offline: there is no Docker engine on these machines.
//!
//! `scripts/check-stack.sh` runs the real tools (`docker-compose config -q`, `promtool check
//! config`). These tests check what no tool checks: images pinned, healthchecks, mounted files that
//! exist, only UI ports published, the collector's pipelines, and that the names and ports each file
//! expects of another agree (Prometheus targets, OTLP endpoints, Tempo, Alertmanager's secret files,
//! Grafana's data sources). The compose model checked is the one `docker-compose config` resolves
//! (anchors merged, variables substituted, paths absolute), i.e. what compose would run.
//!
//! Every check is a function returning the problems it finds; the `*_catches_*` tests feed each one
//! a broken input, so a passing check is known to be able to fail.
//!
//! One module per file checked; this one holds what several of them use: YAML helpers, the
//! resolved compose model, the ports each service listens on (Tempo's config is read only for
//! those), the Dockerfile parser, loading the real files, and the shared fixtures.

mod alertmanager;
mod build_context;
mod collector;
mod compose;
mod grafana;
mod prometheus;
mod push;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use p2p_exporter::http::DEFAULT_PORT;
use serde_yaml::Value;

use crate::support::{repo_root, require_tool};

// ---------------------------------------------------------------------------------------------
// Small YAML helpers.

fn parse_yaml(text: &str) -> Value {
    let mut value: Value = serde_yaml::from_str(text).expect("valid YAML");
    // docker-compose (PyYAML) applies `<<` merge keys; serde_yaml only on request.
    value.apply_merge().expect("merge keys apply");
    value
}

fn load_yaml(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let mut value: Value = serde_yaml::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()));
    value.apply_merge().unwrap();
    value
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_sequence()
        .map(|seq| {
            seq.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The type of a collector component id: `otlp/tempo` is an `otlp`.
fn kind(id: &str) -> &str {
    id.split('/').next().unwrap_or(id)
}

/// `host:port` from `0.0.0.0:4317`, `tempo:4317` or `http://otel-collector:4317/`.
fn host_port(address: &str) -> Option<(String, u16)> {
    let rest = address
        .split_once("://")
        .map_or(address, |(_, rest)| rest)
        .trim_end_matches('/');
    let (host, port) = rest.rsplit_once(':')?;
    Some((host.to_owned(), port.parse().ok()?))
}

// ---------------------------------------------------------------------------------------------
// Images.

/// Why `image` is not pinned to a version, if it is not.
fn image_problem(image: &str) -> Option<String> {
    if let Some((_, digest)) = image.split_once("@sha256:") {
        return (digest.len() != 64 || !digest.chars().all(|c| c.is_ascii_hexdigit()))
            .then(|| format!("{image}: malformed sha256 digest"));
    }
    // The tag is in the last path segment; a registry's port (localhost:5000/x) is not a tag.
    let last = image.rsplit('/').next().unwrap_or(image);
    let Some((_, tag)) = last.split_once(':') else {
        return Some(format!("{image} has no tag, which means latest"));
    };
    if tag.contains("latest") {
        return Some(format!("{image} uses a latest tag"));
    }
    let bytes = tag.as_bytes();
    let versioned = bytes
        .windows(3)
        .any(|w| w[0].is_ascii_digit() && w[1] == b'.' && w[2].is_ascii_digit());
    (!versioned).then(|| {
        format!("{image}: tag {tag} names no version (want at least major.minor, e.g. v2.54.1)")
    })
}

// ---------------------------------------------------------------------------------------------
// Dockerfile.

#[derive(Debug, Default)]
struct Dockerfile {
    /// FROM images with global ARG defaults substituted, and the stage names.
    from: Vec<(String, Option<String>)>,
    args: BTreeMap<String, String>,
    /// Of the final stage.
    user: Option<String>,
    env: BTreeMap<String, String>,
    expose: Vec<u16>,
    healthcheck: Option<Vec<String>>,
}

fn parse_dockerfile(text: &str) -> Dockerfile {
    let mut file = Dockerfile::default();
    let mut instruction = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && instruction.is_empty()) {
            continue;
        }
        if let Some(continued) = trimmed.strip_suffix('\\') {
            instruction.push_str(continued);
            instruction.push(' ');
            continue;
        }
        instruction.push_str(trimmed);
        let full = std::mem::take(&mut instruction);
        let (word, rest) = full.split_once(char::is_whitespace).unwrap_or((&full, ""));
        let rest = rest.trim();
        match word.to_ascii_uppercase().as_str() {
            "ARG" if file.from.is_empty() => {
                if let Some((name, value)) = rest.split_once('=') {
                    file.args.insert(name.to_owned(), value.to_owned());
                }
            }
            "FROM" => {
                let mut words = rest.split_whitespace();
                let mut image = words.next().unwrap_or_default().to_owned();
                for (name, value) in &file.args {
                    image = image.replace(&format!("${{{name}}}"), value);
                }
                let stage = match (words.next(), words.next()) {
                    (Some(a), Some(name)) if a.eq_ignore_ascii_case("as") => Some(name.to_owned()),
                    _ => None,
                };
                file.from.push((image, stage));
                file.user = None;
                file.env.clear();
                file.expose.clear();
                file.healthcheck = None;
            }
            "USER" => file.user = Some(rest.to_owned()),
            "ENV" => {
                for pair in rest.split_whitespace() {
                    if let Some((k, v)) = pair.split_once('=') {
                        file.env.insert(k.to_owned(), v.to_owned());
                    }
                }
            }
            "EXPOSE" => file.expose.extend(
                rest.split_whitespace()
                    .filter_map(|p| p.split('/').next()?.parse::<u16>().ok()),
            ),
            "HEALTHCHECK" => {
                file.healthcheck = rest
                    .find("CMD [")
                    .and_then(|at| serde_json::from_str::<Vec<String>>(&rest[at + 4..]).ok());
            }
            _ => {}
        }
    }
    file
}

// ---------------------------------------------------------------------------------------------
// The resolved compose model.

#[derive(Debug)]
struct Mount {
    source: Option<String>,
    target: String,
    bind: bool,
}

fn mounts(service: &Value) -> Vec<Mount> {
    let mut found = Vec::new();
    for volume in service["volumes"].as_sequence().into_iter().flatten() {
        if let Some(text) = volume.as_str() {
            let parts: Vec<&str> = text.split(':').collect();
            if parts.len() == 1 {
                found.push(Mount {
                    source: None,
                    target: parts[0].to_owned(),
                    bind: false,
                });
            } else {
                found.push(Mount {
                    source: Some(parts[0].to_owned()),
                    target: parts[1].to_owned(),
                    bind: parts[0].starts_with(['/', '.', '~']),
                });
            }
        } else {
            found.push(Mount {
                source: volume["source"].as_str().map(str::to_owned),
                target: volume["target"].as_str().unwrap_or_default().to_owned(),
                bind: volume["type"].as_str() == Some("bind"),
            });
        }
    }
    for secret in service["secrets"].as_sequence().into_iter().flatten() {
        let (source, target) = match secret.as_str() {
            Some(name) => (name.to_owned(), None),
            None => (
                secret["source"].as_str().unwrap_or_default().to_owned(),
                secret["target"].as_str().map(str::to_owned),
            ),
        };
        let target = match target {
            Some(t) if t.starts_with('/') => t,
            Some(t) => format!("/run/secrets/{t}"),
            None => format!("/run/secrets/{source}"),
        };
        found.push(Mount {
            source: Some(source),
            target,
            bind: false,
        });
    }
    found
}

/// The mount holding `container_path`, and the path's remainder inside it.
fn mount_of<'a>(mounts: &'a [Mount], container_path: &str) -> Option<(&'a Mount, String)> {
    mounts
        .iter()
        .filter_map(|m| {
            let rest = container_path.strip_prefix(m.target.trim_end_matches('/'))?;
            (rest.is_empty() || rest.starts_with('/'))
                .then(|| (m, rest.trim_start_matches('/').to_owned()))
        })
        .max_by_key(|(m, _)| m.target.len())
}

/// Where `container_path` of a bind mount lives on the host.
fn host_path(service: &Value, container_path: &str) -> Option<PathBuf> {
    let all = mounts(service);
    let (mount, rest) = mount_of(&all, container_path)?;
    let source = PathBuf::from(mount.source.as_ref()?);
    mount.bind.then(|| {
        if rest.is_empty() {
            source
        } else {
            source.join(rest)
        }
    })
}

fn environment(service: &Value) -> BTreeMap<String, String> {
    let env = &service["environment"];
    if let Some(map) = env.as_mapping() {
        map.iter()
            .filter_map(|(k, v)| {
                let value = match v {
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    other => serde_yaml::to_string(other).ok()?.trim().to_owned(),
                };
                Some((k.as_str()?.to_owned(), value))
            })
            .collect()
    } else {
        strings(env)
            .iter()
            .filter_map(|kv| {
                kv.split_once('=')
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
            })
            .collect()
    }
}

fn services(model: &Value) -> Vec<(String, &Value)> {
    model["services"]
        .as_mapping()
        .into_iter()
        .flatten()
        .filter_map(|(name, service)| Some((name.as_str()?.to_owned(), service)))
        .collect()
}

/// Services built from the repository's Dockerfile: the sidecar exporters.
fn exporter_services(model: &Value, root: &Path) -> Vec<String> {
    services(model)
        .into_iter()
        .filter(|(_, s)| {
            let context = s["build"]["context"].as_str().or(s["build"].as_str());
            context.is_some_and(|c| Path::new(c) == root || c == ".")
        })
        .map(|(name, _)| name)
        .collect()
}

fn service_with_image<'a>(model: &'a Value, prefix: &str) -> Option<(String, &'a Value)> {
    services(model)
        .into_iter()
        .find(|(_, s)| s["image"].as_str().is_some_and(|i| i.starts_with(prefix)))
}

// ---------------------------------------------------------------------------------------------
// Contracts between the files: the ports each service listens on, and whether a target reaches one.

/// Ports each compose service listens on, as far as the repository's configs say.
fn listeners(
    model: &Value,
    collector: &Value,
    tempo: &Value,
    root: &Path,
) -> BTreeMap<String, BTreeSet<u16>> {
    let mut ports = BTreeMap::new();
    for (name, service) in services(model) {
        let image = service["image"].as_str().unwrap_or_default();
        let known: BTreeSet<u16> = if exporter_services(model, root).contains(&name) {
            [DEFAULT_PORT].into()
        } else if image.starts_with("otel/opentelemetry-collector") {
            collector_ports(collector)
        } else if image.starts_with("grafana/tempo") {
            let mut p: BTreeSet<u16> = tempo["server"]["http_listen_port"]
                .as_u64()
                .map(|p| p as u16)
                .into_iter()
                .collect();
            for (_, protocol) in tempo["distributor"]["receivers"]["otlp"]["protocols"]
                .as_mapping()
                .into_iter()
                .flatten()
            {
                p.extend(
                    protocol["endpoint"]
                        .as_str()
                        .and_then(host_port)
                        .map(|(_, p)| p),
                );
            }
            p
        } else if image.starts_with("prom/prometheus") {
            [9090].into()
        } else if image.starts_with("prom/alertmanager") {
            [9093].into()
        } else if image.starts_with("grafana/grafana") {
            [3000].into()
        } else {
            BTreeSet::new()
        };
        ports.insert(name, known);
    }
    ports
}

/// Ports the collector config listens on.
fn collector_ports(config: &Value) -> BTreeSet<u16> {
    let mut ports = BTreeSet::new();
    let mut add = |address: &Value| {
        if let Some((_, port)) = address.as_str().and_then(host_port) {
            ports.insert(port);
        }
    };
    for (_, receiver) in config["receivers"].as_mapping().into_iter().flatten() {
        for (_, protocol) in receiver["protocols"].as_mapping().into_iter().flatten() {
            add(&protocol["endpoint"]);
        }
    }
    for (id, exporter) in config["exporters"].as_mapping().into_iter().flatten() {
        if id.as_str().map(kind) == Some("prometheus") {
            add(&exporter["endpoint"]);
        }
    }
    for (_, extension) in config["extensions"].as_mapping().into_iter().flatten() {
        add(&extension["endpoint"]);
    }
    add(&config["service"]["telemetry"]["metrics"]["address"]);
    ports
}

/// Why `target` (host:port or URL), connected to from the service `from`, reaches nothing.
fn target_problem(
    what: &str,
    target: &str,
    from: &str,
    listeners: &BTreeMap<String, BTreeSet<u16>>,
) -> Option<String> {
    let Some((mut host, port)) = host_port(target) else {
        return Some(format!("{what}: {target} is not host:port"));
    };
    // Inside a container, localhost is that container.
    if host == "localhost" || host == "127.0.0.1" {
        host = from.to_owned();
    }
    match listeners.get(&host) {
        None => Some(format!("{what}: {host} is not a compose service")),
        Some(ports) if !ports.contains(&port) => Some(format!(
            "{what}: {host} does not listen on {port} (it listens on {ports:?})"
        )),
        Some(_) => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Loading the real files.

struct Stack {
    root: PathBuf,
    model: Value,
    collector: Value,
    tempo: Value,
    prometheus: Value,
    _secret: tempfile::NamedTempFile,
}

/// `docker-compose -f FILES config`, with dummy values for the variables an operator must set.
fn resolve(files: &[&str]) -> (Value, tempfile::NamedTempFile) {
    let root = repo_root();
    let secret = tempfile::NamedTempFile::new().unwrap();
    let mut command = Command::new(require_tool("docker-compose"));
    command.current_dir(&root);
    for file in files {
        command.args(["-f", file]);
    }
    let output = command
        .arg("config")
        .env("GRAFANA_ADMIN_PASSWORD", "check-only")
        .env("PAGERDUTY_ROUTING_KEY_FILE", secret.path())
        .env("NODE_IMAGE", "registry.example/p2p-node:1.0.0")
        .env("NODE_HEALTHCHECK", "true")
        // The defaults are what is checked (loopback only).
        .env_remove("STACK_BIND_ADDRESS")
        .output()
        .expect("run docker-compose");
    assert!(
        output.status.success(),
        "docker-compose {files:?} config failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    (parse_yaml(&String::from_utf8_lossy(&output.stdout)), secret)
}

fn stack(files: &[&str]) -> Stack {
    let root = repo_root();
    let (model, secret) = resolve(files);
    Stack {
        collector: load_yaml(&root.join("collector/otelcol.yml")),
        tempo: load_yaml(&root.join("tempo/tempo.yml")),
        prometheus: load_yaml(&root.join("prometheus/prometheus.yml")),
        root,
        model,
        _secret: secret,
    }
}

fn dockerfile() -> Dockerfile {
    parse_dockerfile(&std::fs::read_to_string(repo_root().join("Dockerfile")).unwrap())
}

fn assert_none(what: &str, problems: Vec<String>) {
    assert!(problems.is_empty(), "{what}:\n  {}", problems.join("\n  "));
}

const COMPOSE_FILES: &[&[&str]] = &[
    &["docker-compose.yml"],
    &["docker-compose.yml", "docker-compose.node.yml"],
];

// ---------------------------------------------------------------------------------------------
// Fixtures for the checks on broken input.

const GOOD_COLLECTOR: &str = r#"
receivers:
  otlp:
    protocols:
      grpc: {endpoint: "0.0.0.0:4317"}
      http: {endpoint: "0.0.0.0:4318"}
processors:
  memory_limiter: {limit_mib: 400}
  batch: {}
connectors:
  spanmetrics: {}
exporters:
  otlp/tempo: {endpoint: "tempo:4317"}
  prometheus: {endpoint: "0.0.0.0:8889"}
extensions:
  health_check: {endpoint: "0.0.0.0:13133"}
service:
  extensions: [health_check]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [memory_limiter, batch]
      exporters: [otlp/tempo, spanmetrics]
    metrics/spanmetrics:
      receivers: [spanmetrics]
      processors: [memory_limiter, batch]
      exporters: [prometheus]
"#;

const GOOD_MODEL: &str = r#"
services:
  node-a:
    build: {context: /repo}
    image: p2p-exporter:0.1.0
    environment:
      OTEL_EXPORTER_OTLP_ENDPOINT: http://otel-collector:4317
      OTEL_EXPORTER_OTLP_PROTOCOL: grpc
      OTEL_SERVICE_NAME: p2p-exporter
      OTEL_RESOURCE_ATTRIBUTES: service.instance.id=node-a,deployment.environment=test
  probe-tools:
    image: busybox:1.36.1-musl
    restart: "no"
    volumes: ["probe-tools:/probe:rw"]
  otel-collector:
    image: otel/opentelemetry-collector-contrib:0.111.0
    command: ["--config=/etc/otelcol-contrib/config.yaml"]
    mem_limit: 512m
    volumes: ["/repo/collector/otelcol.yml:/etc/otelcol-contrib/config.yaml:ro"]
    depends_on: {probe-tools: {condition: service_completed_successfully}}
    healthcheck: {test: ["CMD", "/probe/busybox", "true"]}
  tempo:
    image: grafana/tempo:2.6.0
    healthcheck: {test: ["CMD", "true"]}
  prometheus:
    image: prom/prometheus:v2.54.1
    volumes:
      - /repo/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro
      - /repo/alerts/rules:/etc/prometheus/rules:ro
      - prometheus-data:/prometheus:rw
    ports: ["127.0.0.1:9090:9090/tcp"]
    healthcheck: {test: ["CMD", "wget", "-q", "--spider", "http://127.0.0.1:9090/-/ready"]}
  alertmanager:
    image: prom/alertmanager:v0.27.0
    volumes: ["/repo/alerts/alertmanager.yml:/etc/alertmanager/alertmanager.yml:ro"]
    secrets: [{source: pagerduty_routing_key}]
    healthcheck: {test: ["CMD", "true"]}
"#;

fn model_with(from: &str, to: &str) -> Value {
    assert!(GOOD_MODEL.contains(from), "fixture has no {from:?}");
    parse_yaml(&GOOD_MODEL.replacen(from, to, 1))
}

const GOOD_TEMPO: &str = r#"
server: {http_listen_port: 3200}
distributor: {receivers: {otlp: {protocols: {grpc: {endpoint: "0.0.0.0:4317"}}}}}
"#;
