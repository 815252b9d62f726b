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

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use p2p_contract::{
    MetricType, MAX_NAMES, METRICS, TAP_CLIENT_DROP_REASONS, TAP_CONNECTION_RESULTS,
};
use p2p_exporter::http::DEFAULT_PORT;
use p2p_observe::{DisconnectReason, MessageKind};
use serde_yaml::Value;

use crate::support::{free_port, repo_root, require_tool, Exporter};

/// The only ports the stack may publish on the host: the UIs and Tempo's query API.
const UI_PORTS: &[u16] = &[3000, 9090, 9093, 3200];
/// The scrape job rules and dashboards select on.
const EXPORTER_JOB: &str = "p2p-exporter";

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
// Collector: pipelines reference defined components, memory_limiter first, batch, health_check.

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

/// An image given by a variable must be required (`${VAR:?message}`): a default would be an
/// unpinned image the checks never see once the variable is set.
fn image_variable_problems(compose_text: &str) -> Vec<String> {
    compose_text
        .lines()
        .map(str::trim)
        .filter(|line| line.starts_with("image:") && line.contains("${"))
        .filter(|line| {
            let after = &line[line.find("${").unwrap() + 2..];
            let name_end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            !after[name_end..].starts_with(":?")
        })
        .map(|line| format!("{line}: an image variable must be required (${{VAR:?...}})"))
        .collect()
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

fn dockerfile_problems(file: &Dockerfile) -> Vec<String> {
    let mut problems = Vec::new();
    let stages: BTreeSet<&str> = file.from.iter().filter_map(|(_, s)| s.as_deref()).collect();
    if file.from.len() < 2 {
        problems.push("not multi-stage: the toolchain would ship in the runtime image".to_owned());
    }
    for (image, _) in &file.from {
        if !stages.contains(image.as_str()) {
            problems.extend(image_problem(image));
        }
    }
    match file.user.as_deref() {
        None => problems.push("the runtime stage runs as root (no USER)".to_owned()),
        Some(user) if matches!(user.split(':').next(), Some("root" | "0")) => {
            problems.push(format!("the runtime stage runs as root (USER {user})"))
        }
        Some(_) => {}
    }
    if file.healthcheck.is_none() {
        problems.push("the runtime stage has no HEALTHCHECK CMD [...]".to_owned());
    }
    if !file.expose.contains(&DEFAULT_PORT) {
        problems.push(format!("the runtime stage does not EXPOSE {DEFAULT_PORT}"));
    }
    let listen = format!("0.0.0.0:{DEFAULT_PORT}");
    if file.env.get("P2P_EXPORTER_LISTEN") != Some(&listen) {
        problems.push(format!(
            "P2P_EXPORTER_LISTEN must be {listen} in the image (containers are reached over their network)"
        ));
    }
    problems
}

/// `major.minor` of a version string (`1.85.1` -> (1, 85)).
fn major_minor(version: &str) -> Option<(u32, u32)> {
    let mut parts = version.split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// The image's Rust must be the workspace's declared rust-version, and must build every locked
/// dependency of the exporter (`deps`: name, version, rust-version).
fn toolchain_problems(
    builder: &str,
    workspace: &str,
    deps: &[(String, String, String)],
) -> Vec<String> {
    let mut problems = Vec::new();
    let (Some(builder_mm), Some(workspace_mm)) = (major_minor(builder), major_minor(workspace))
    else {
        return vec![format!(
            "cannot read Rust versions {builder:?} and {workspace:?}"
        )];
    };
    if builder_mm != workspace_mm {
        problems.push(format!(
            "the Dockerfile builds with Rust {builder} but the workspace declares rust-version {workspace}: keep them in step"
        ));
    }
    for (name, version, needs) in deps {
        if major_minor(needs).is_some_and(|needs| needs > builder_mm) {
            problems.push(format!(
                "{name} {version} needs Rust {needs}, newer than the image's {builder}: raise RUST_VERSION and rust-version together"
            ));
        }
    }
    problems
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

/// (host address, host port) of each published port.
fn published(service: &Value) -> Vec<(Option<String>, Option<u16>)> {
    service["ports"]
        .as_sequence()
        .into_iter()
        .flatten()
        .map(|port| match port.as_str() {
            Some(text) => {
                let text = text.split('/').next().unwrap_or(text);
                let parts: Vec<&str> = text.rsplitn(3, ':').collect();
                match parts.as_slice() {
                    [_, host, address] => (Some((*address).to_owned()), host.parse().ok()),
                    [_, host] => (None, host.parse().ok()),
                    _ => (None, None),
                }
            }
            None => (
                port["host_ip"].as_str().map(str::to_owned),
                port["published"]
                    .as_u64()
                    .map(|p| p as u16)
                    .or_else(|| port["published"].as_str().and_then(|p| p.parse().ok())),
            ),
        })
        .collect()
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

/// Pinned images, healthchecks, repository mounts that exist, only UI ports, on loopback.
/// `image_healthcheck`: the exporter image (Dockerfile) has its own HEALTHCHECK.
fn compose_problems(
    model: &Value,
    root: &Path,
    exists: &dyn Fn(&Path) -> bool,
    image_healthcheck: bool,
) -> Vec<String> {
    let mut problems = Vec::new();
    let all = services(model);
    if all.is_empty() {
        problems.push("no services".to_owned());
    }
    let exporters = exporter_services(model, root);
    // One-shot jobs: something waits for them to complete, so they need no healthcheck.
    let jobs: BTreeSet<String> = all
        .iter()
        .flat_map(|(_, s)| s["depends_on"].as_mapping().into_iter().flatten())
        .filter(|(_, c)| c["condition"].as_str() == Some("service_completed_successfully"))
        .filter_map(|(name, _)| name.as_str().map(str::to_owned))
        .collect();
    for (name, service) in &all {
        match service["image"].as_str() {
            None => problems.push(format!(
                "{name}: no image, so not pinned (a built image needs a versioned tag too)"
            )),
            Some(image) => problems.extend(image_problem(image).map(|p| format!("{name}: {p}"))),
        }
        let health = &service["healthcheck"];
        let disabled = health["disable"].as_bool() == Some(true)
            || strings(&health["test"]).first().map(String::as_str) == Some("NONE");
        let has_own = !strings(&health["test"]).is_empty()
            || health["test"].as_str().is_some_and(|t| !t.is_empty());
        if jobs.contains(name) {
            if service["restart"].as_str() != Some("no") {
                problems.push(format!(
                    "{name} is a one-shot job: restart must be \"no\", or it loops"
                ));
            }
        } else if disabled || !(has_own || (exporters.contains(name) && image_healthcheck)) {
            problems.push(format!("{name} has no healthcheck"));
        }
        for mount in mounts(service).iter().filter(|m| m.bind) {
            let Some(source) = mount.source.as_deref() else {
                continue;
            };
            let path = Path::new(source);
            if !path.starts_with(root) {
                problems.push(format!(
                    "{name} bind-mounts {source} from outside the repository"
                ));
            } else if !exists(path) {
                problems.push(format!(
                    "{name} mounts {} at {}, which does not exist",
                    path.strip_prefix(root).unwrap_or(path).display(),
                    mount.target
                ));
            }
        }
        for (address, port) in published(service) {
            match port {
                Some(port) if UI_PORTS.contains(&port) => {}
                other => problems.push(format!(
                    "{name} publishes port {other:?}: only the UIs ({UI_PORTS:?}) may be published"
                )),
            }
            if address.as_deref() != Some("127.0.0.1") {
                problems.push(format!(
                    "{name} publishes on {address:?}: by default only on 127.0.0.1 (STACK_BIND_ADDRESS opens it)"
                ));
            }
        }
    }
    problems
}

// ---------------------------------------------------------------------------------------------
// Contracts between the files.

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

/// prometheus.yml against the compose model: the exporter job scrapes exactly the sidecars, every
/// target and Alertmanager is a service on a port it listens on, the span metrics are scraped, and
/// the rule files are mounted and present.
fn prometheus_problems(
    prometheus: &Value,
    model: &Value,
    root: &Path,
    listeners: &BTreeMap<String, BTreeSet<u16>>,
    collector: &Value,
) -> Vec<String> {
    let mut problems = Vec::new();
    let Some((prometheus_name, prometheus_service)) = service_with_image(model, "prom/prometheus")
    else {
        return vec!["no prom/prometheus service".to_owned()];
    };
    let mut scraped = BTreeSet::new();
    let jobs = prometheus["scrape_configs"]
        .as_sequence()
        .cloned()
        .unwrap_or_default();
    for job in &jobs {
        let name = job["job_name"].as_str().unwrap_or("?");
        for config in job["static_configs"].as_sequence().into_iter().flatten() {
            for target in strings(&config["targets"]) {
                problems.extend(target_problem(
                    &format!("job {name}"),
                    &target,
                    &prometheus_name,
                    listeners,
                ));
                scraped.insert(target.clone());
                if name == EXPORTER_JOB {
                    scraped.insert(format!("{EXPORTER_JOB}/{target}"));
                }
            }
        }
    }
    let expected: BTreeSet<String> = exporter_services(model, root)
        .iter()
        .map(|s| format!("{EXPORTER_JOB}/{s}:{DEFAULT_PORT}"))
        .collect();
    let actual: BTreeSet<String> = scraped
        .iter()
        .filter(|t| t.starts_with(&format!("{EXPORTER_JOB}/")))
        .cloned()
        .collect();
    if expected.is_empty() || expected != actual {
        problems.push(format!(
            "job {EXPORTER_JOB} must scrape exactly the sidecars {expected:?}, scrapes {actual:?}"
        ));
    }
    for config in prometheus["alerting"]["alertmanagers"]
        .as_sequence()
        .into_iter()
        .flatten()
    {
        for static_config in config["static_configs"].as_sequence().into_iter().flatten() {
            for target in strings(&static_config["targets"]) {
                problems.extend(target_problem(
                    "alerting",
                    &target,
                    &prometheus_name,
                    listeners,
                ));
            }
        }
    }
    // Span metrics reach Prometheus: a pipeline fed by spanmetrics exports to a prometheus
    // exporter, and that exporter's port on the collector service is scraped.
    let collector_service =
        service_with_image(model, "otel/opentelemetry-collector").map(|(n, _)| n);
    let mut span_metrics_scraped = false;
    for (_, pipeline) in collector["service"]["pipelines"]
        .as_mapping()
        .into_iter()
        .flatten()
    {
        if !strings(&pipeline["receivers"])
            .iter()
            .any(|r| kind(r) == "spanmetrics")
        {
            continue;
        }
        for exporter in strings(&pipeline["exporters"])
            .iter()
            .filter(|e| kind(e) == "prometheus")
        {
            let port = collector["exporters"][exporter.as_str()]["endpoint"]
                .as_str()
                .and_then(host_port)
                .map(|(_, p)| p);
            if let (Some(service), Some(port)) = (&collector_service, port) {
                span_metrics_scraped |= scraped.contains(&format!("{service}:{port}"));
            }
        }
    }
    if !span_metrics_scraped {
        problems.push(
            "no pipeline takes spanmetrics to a prometheus exporter that Prometheus scrapes"
                .to_owned(),
        );
    }
    // Rule files: inside a mount of the Prometheus service, matching at least one file.
    let rule_files = strings(&prometheus["rule_files"]);
    if rule_files.is_empty() {
        problems.push("no rule_files: the alerts of alerts/rules would not be loaded".to_owned());
    }
    for pattern in rule_files {
        // Prometheus reads a relative path from its config file's directory.
        let pattern = if pattern.starts_with('/') {
            pattern
        } else {
            format!("/etc/prometheus/{pattern}")
        };
        {
            let (dir, file_glob) = pattern.rsplit_once('/').unwrap_or((".", &pattern));
            match host_path(prometheus_service, dir) {
                None => problems.push(format!(
                    "rule_files {pattern}: {dir} is not bind-mounted into the Prometheus container"
                )),
                Some(host_dir) => {
                    let (prefix, suffix) = file_glob.split_once('*').unwrap_or((file_glob, ""));
                    let matches = std::fs::read_dir(&host_dir)
                        .into_iter()
                        .flatten()
                        .filter_map(Result::ok)
                        .filter(|e| {
                            let n = e.file_name().to_string_lossy().into_owned();
                            n.starts_with(prefix) && n.ends_with(suffix)
                        })
                        .count();
                    if matches == 0 {
                        problems.push(format!(
                            "rule_files {pattern} matches no file in {}",
                            host_dir.display()
                        ));
                    }
                }
            }
        }
    }
    problems
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

/// Every file an Alertmanager config reads (`*_file`, `*_files`, templates), with its path.
fn alertmanager_files(value: &Value, key: &str, found: &mut Vec<(String, String)>) {
    match value {
        Value::Mapping(map) => {
            for (k, v) in map {
                alertmanager_files(v, k.as_str().unwrap_or_default(), found);
            }
        }
        Value::Sequence(seq) => {
            for v in seq {
                alertmanager_files(v, key, found);
            }
        }
        Value::String(path)
            if key.ends_with("_file") || key.ends_with("_files") || key == "templates" =>
        {
            found.push((key.to_owned(), path.clone()))
        }
        _ => {}
    }
}

/// Every file alertmanager.yml reads is mounted into the Alertmanager container (a secret, or a
/// volume), so the PagerDuty routing_key_file path and the compose secret agree.
/// `config_dir`: the config file's directory in the container, against which Alertmanager
/// resolves relative paths.
fn alertmanager_problems(config: &Value, service: &Value, config_dir: &str) -> Vec<String> {
    let mut files = Vec::new();
    alertmanager_files(config, "", &mut files);
    let all = mounts(service);
    files
        .into_iter()
        .filter(|(_, path)| {
            let path = if path.starts_with('/') {
                path.clone()
            } else {
                format!("{}/{path}", config_dir.trim_end_matches('/'))
            };
            let dir = if path.contains('*') {
                path.rsplit_once('/').map_or(path.as_str(), |(d, _)| d)
            } else {
                path.as_str()
            };
            mount_of(&all, dir).is_none()
        })
        .map(|(key, path)| {
            format!("alertmanager.yml {key}: {path} is not mounted into the Alertmanager container (a volume, or a compose secret under /run/secrets)")
        })
        .collect()
}

/// Grafana's provisioning (found through GF_PATHS_PROVISIONING and the mounts): it exists, data
/// source URLs name services on ports they listen on, dashboard folders exist on the host.
fn grafana_problems(
    name: &str,
    service: &Value,
    listeners: &BTreeMap<String, BTreeSet<u16>>,
    exists: &dyn Fn(&Path) -> bool,
) -> Vec<String> {
    let mut problems = Vec::new();
    let env = environment(service);
    let Some(provisioning) = env.get("GF_PATHS_PROVISIONING") else {
        return vec!["grafana: GF_PATHS_PROVISIONING is not set".to_owned()];
    };
    let Some(host_dir) = host_path(service, provisioning) else {
        return vec![format!("grafana: {provisioning} is not bind-mounted")];
    };
    if !exists(&host_dir) {
        return vec![format!(
            "grafana: provisioning directory {} does not exist",
            host_dir.display()
        )];
    }
    for kind_dir in ["datasources", "dashboards"] {
        for entry in std::fs::read_dir(host_dir.join(kind_dir))
            .into_iter()
            .flatten()
            .flatten()
        {
            let path = entry.path();
            if !matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yml" | "yaml")
            ) {
                continue;
            }
            let file = load_yaml(&path);
            for source in file["datasources"].as_sequence().into_iter().flatten() {
                if let Some(url) = source["url"].as_str() {
                    let source_name = source["name"].as_str().unwrap_or("?");
                    problems.extend(target_problem(
                        &format!("grafana data source {source_name}"),
                        url,
                        name,
                        listeners,
                    ));
                }
            }
            for provider in file["providers"].as_sequence().into_iter().flatten() {
                if let Some(dir) = provider["options"]["path"].as_str() {
                    match host_path(service, dir) {
                        Some(host) if exists(&host) => {}
                        other => problems.push(format!(
                            "grafana dashboard provider path {dir} is {other:?} on the host, which does not exist"
                        )),
                    }
                }
            }
        }
    }
    problems
}

// ---------------------------------------------------------------------------------------------
// Series per sidecar: the worst case the closed label sets allow, against the scrape's
// sample_limit.

/// (name, labels without `le`) of each sample line. Label values here are closed-set words, so
/// splitting on `",` is exact enough.
fn sample_lines(exposition: &str) -> Vec<(&str, String)> {
    exposition
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let series = line.rsplit_once(' ').map_or(line, |(series, _)| series);
            match series.split_once('{') {
                Some((name, labels)) => {
                    let kept: Vec<&str> = labels
                        .trim_end_matches('}')
                        .split("\",")
                        .filter(|l| !l.is_empty() && !l.starts_with("le="))
                        .map(|l| l.trim_end_matches('"'))
                        .collect();
                    (name, kept.join(","))
                }
                None => (series, String::new()),
            }
        })
        .collect()
}

/// Values a label can take, at most (docs/instrumentation.md).
fn label_bound(metric: &str, label: &str) -> Option<usize> {
    match (metric, label) {
        // MAX_NAMES names chosen by the router's code, then `other` and `invalid`.
        (_, "channel" | "subscriber") => Some(MAX_NAMES + 2),
        (_, "type") => Some(MessageKind::ALL.len()),
        ("p2p_tap_records_rejected_total", "reason") => Some(p2p_tap::Reject::ALL.len()),
        ("p2p_tap_client_dropped_records_total", "reason") => Some(TAP_CLIENT_DROP_REASONS.len()),
        ("p2p_peer_disconnections_total", "reason") => Some(DisconnectReason::ALL.len()),
        ("p2p_tap_connections_total", "result") => Some(TAP_CONNECTION_RESULTS.len()),
        (_, "direction") => Some(2),
        // One process, one version, one source.
        (_, "version" | "source") => Some(1),
        _ => None,
    }
}

/// The most samples one sidecar can serve: every METRICS family at its label bounds, with the
/// samples per label set (a histogram's buckets, sum and count) read from a real `exposition`,
/// plus the families outside METRICS (process_*) as served.
fn series_ceiling(exposition: &str) -> Result<usize, String> {
    let family_of = |name: &str| -> String {
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(base) = name.strip_suffix(suffix) {
                if METRICS
                    .iter()
                    .any(|d| d.name == base && d.kind == MetricType::Histogram)
                {
                    return base.to_owned();
                }
            }
        }
        name.to_owned()
    };
    // Family -> (samples, distinct label sets other than `le`).
    let mut per_family: BTreeMap<String, (usize, BTreeSet<String>)> = BTreeMap::new();
    for (name, labels) in sample_lines(exposition) {
        let entry = per_family.entry(family_of(name)).or_default();
        entry.0 += 1;
        entry.1.insert(labels);
    }
    let mut ceiling = 0;
    for (family, (count, label_sets)) in &per_family {
        let Some(def) = METRICS.iter().find(|d| d.name == family) else {
            ceiling += count;
            continue;
        };
        let per_set = count / label_sets.len().max(1);
        let mut sets = 1;
        for label in def.labels {
            sets *= label_bound(def.name, label)
                .ok_or_else(|| format!("{family}: label {label} has no known bound"))?;
        }
        ceiling += per_set * sets;
    }
    for def in METRICS {
        if !per_family.contains_key(def.name) {
            return Err(format!(
                "{} is not served, so its size is unknown",
                def.name
            ));
        }
    }
    Ok(ceiling)
}

// ---------------------------------------------------------------------------------------------
// The Docker build context: .dockerignore must leave in everything `cargo build` reads.

/// `*` and `?` within one path component.
fn component_matches(pattern: &[u8], name: &[u8]) -> bool {
    match (pattern.first(), name.first()) {
        (None, None) => true,
        (Some(b'*'), _) => {
            component_matches(&pattern[1..], name)
                || (!name.is_empty() && component_matches(pattern, &name[1..]))
        }
        (Some(b'?'), Some(_)) => component_matches(&pattern[1..], &name[1..]),
        (Some(p), Some(n)) if p == n => component_matches(&pattern[1..], &name[1..]),
        _ => false,
    }
}

/// Components, with `**` matching any number of them.
fn path_matches(pattern: &[&str], path: &[&str]) -> bool {
    match (pattern.first(), path.first()) {
        (None, None) => true,
        (Some(&"**"), _) => {
            path_matches(&pattern[1..], path)
                || (!path.is_empty() && path_matches(pattern, &path[1..]))
        }
        (Some(p), Some(c)) => {
            component_matches(p.as_bytes(), c.as_bytes()) && path_matches(&pattern[1..], &path[1..])
        }
        _ => false,
    }
}

/// Whether Docker leaves `path` (relative to the context) out: a pattern matching the path or one
/// of its directories excludes it; the last matching pattern wins (`!` re-includes).
fn dockerignored(dockerignore: &str, path: &str) -> bool {
    let components: Vec<&str> = path.split('/').collect();
    let mut ignored = false;
    for line in dockerignore.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (include, pattern) = match line.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, line),
        };
        let pattern: Vec<&str> = pattern
            .trim_matches('/')
            .split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .collect();
        if (1..=components.len()).any(|n| path_matches(&pattern, &components[..n])) {
            ignored = !include;
        }
    }
    ignored
}

/// Repository-relative paths that `include_str!` / `include_bytes!` in `source` (at `file`, a
/// repository-relative path) read.
fn included_files(file: &str, source: &str) -> Vec<String> {
    let mut found = Vec::new();
    for macro_name in ["include_str!(\"", "include_bytes!(\""] {
        for (at, _) in source.match_indices(macro_name) {
            let rest = &source[at + macro_name.len()..];
            let Some(end) = rest.find('"') else { continue };
            let mut parts: Vec<&str> = file.split('/').collect();
            parts.pop();
            for component in rest[..end].split('/') {
                match component {
                    ".." => {
                        parts.pop();
                    }
                    "." | "" => {}
                    other => parts.push(other),
                }
            }
            found.push(parts.join("/"));
        }
    }
    found
}

fn build_context_problems(dockerignore: &str, needed: &[String]) -> Vec<String> {
    needed
        .iter()
        .filter(|path| dockerignored(dockerignore, path))
        .map(|path| format!("{path} is needed by the image build but .dockerignore leaves it out"))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Loading the real files.

fn cargo_metadata() -> serde_json::Value {
    let output = Command::new(env!("CARGO"))
        .current_dir(repo_root())
        .args(["metadata", "--format-version", "1", "--locked", "--offline"])
        .args(["--filter-platform", "x86_64-unknown-linux-gnu"])
        .output()
        .expect("run cargo metadata");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Every file of every workspace member (manifests, sources, tests, benches) and every file their
/// sources include, relative to the repository root.
fn build_inputs(root: &Path) -> Vec<String> {
    let metadata = cargo_metadata();
    let mut inputs = vec!["Cargo.toml".to_owned(), "Cargo.lock".to_owned()];
    let members: Vec<&str> = metadata["workspace_members"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m.as_str())
        .collect();
    for package in metadata["packages"].as_array().unwrap() {
        if !members.contains(&package["id"].as_str().unwrap_or_default()) {
            continue;
        }
        let manifest = Path::new(package["manifest_path"].as_str().unwrap());
        let mut todo = vec![manifest.parent().unwrap().to_path_buf()];
        while let Some(dir) = todo.pop() {
            for entry in std::fs::read_dir(&dir).unwrap().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    if entry.file_name() != "target" {
                        todo.push(path);
                    }
                    continue;
                }
                let relative = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                if path.extension().is_some_and(|e| e == "rs") {
                    let source = std::fs::read_to_string(&path).unwrap_or_default();
                    inputs.extend(included_files(&relative, &source));
                }
                inputs.push(relative);
            }
        }
    }
    inputs.sort();
    inputs.dedup();
    inputs
}

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
fn every_image_is_pinned_and_every_service_checks_its_health() {
    let built_healthcheck = dockerfile().healthcheck.is_some();
    for files in COMPOSE_FILES {
        let stack = stack(files);
        assert_none(
            &format!("{files:?}"),
            compose_problems(
                &stack.model,
                &stack.root,
                &|p| p.exists(),
                built_healthcheck,
            ),
        );
        for file in *files {
            let text = std::fs::read_to_string(stack.root.join(file)).unwrap();
            assert_none(file, image_variable_problems(&text));
        }
    }
}

#[test]
fn the_exporter_image_is_multi_stage_non_root_and_pinned() {
    assert_none("Dockerfile", dockerfile_problems(&dockerfile()));
}

#[test]
fn the_image_builds_with_the_declared_rust_version_and_so_do_the_locked_dependencies() {
    let builder = dockerfile()
        .args
        .get("RUST_VERSION")
        .cloned()
        .expect("the Dockerfile has ARG RUST_VERSION=...");
    let metadata = cargo_metadata();
    let packages: BTreeMap<&str, &serde_json::Value> = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p))
        .collect();
    let exporter = packages
        .values()
        .find(|p| p["name"] == "p2p-exporter")
        .unwrap();
    let workspace = exporter["rust_version"].as_str().unwrap().to_owned();
    // What `cargo build --release -p p2p-exporter` compiles: normal and build dependencies.
    let nodes: BTreeMap<&str, &serde_json::Value> = metadata["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["id"].as_str().unwrap(), n))
        .collect();
    let mut todo = vec![exporter["id"].as_str().unwrap()];
    let mut seen = BTreeSet::new();
    while let Some(id) = todo.pop() {
        if !seen.insert(id) {
            continue;
        }
        for dep in nodes[id]["deps"].as_array().into_iter().flatten() {
            let built = dep["dep_kinds"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|k| k["kind"].is_null() || k["kind"] == "build");
            if built {
                todo.push(dep["pkg"].as_str().unwrap());
            }
        }
    }
    let deps: Vec<(String, String, String)> = seen
        .iter()
        .filter_map(|id| {
            let p = packages[id];
            Some((
                p["name"].as_str()?.to_owned(),
                p["version"].as_str()?.to_owned(),
                p["rust_version"].as_str()?.to_owned(),
            ))
        })
        .collect();
    assert!(
        deps.len() > 10,
        "the exporter's dependency graph was not found"
    );
    assert_none(
        "Dockerfile RUST_VERSION",
        toolchain_problems(&builder, &workspace, &deps),
    );
}

#[test]
fn the_build_context_holds_every_file_the_build_reads() {
    let root = repo_root();
    let inputs = build_inputs(&root);
    // The decision engine compiles alerts/thresholds.toml in: proof the scan sees includes.
    assert!(
        inputs.iter().any(|p| p == "alerts/thresholds.toml"),
        "include_str! scan found no alerts/thresholds.toml"
    );
    let dockerignore = std::fs::read_to_string(root.join(".dockerignore")).unwrap();
    assert_none(
        ".dockerignore",
        build_context_problems(&dockerignore, &inputs),
    );
    // And it keeps out what must never reach an image layer or slows every build.
    for kept_out in [
        ".git/config",
        "target/debug/p2p-exporter",
        "exporter/target/x",
        ".env",
    ] {
        assert!(
            dockerignored(&dockerignore, kept_out),
            "{kept_out} is sent to the build"
        );
    }
}

#[test]
fn the_sidecar_scrape_sample_limit_covers_the_worst_case_the_labels_allow() {
    let exporter = Exporter::start(&[]);
    let exposition = exporter.scrape();
    let served = sample_lines(&exposition).len();
    let ceiling = series_ceiling(&exposition).unwrap();
    let prometheus = load_yaml(&repo_root().join("prometheus/prometheus.yml"));
    let job = prometheus["scrape_configs"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|j| j["job_name"] == EXPORTER_JOB)
        .unwrap();
    let limit = job["sample_limit"]
        .as_u64()
        .expect("the p2p-exporter job sets sample_limit") as usize;
    println!("a sidecar serves {served} samples; at most {ceiling}; sample_limit {limit}");
    assert!(
        served <= ceiling && ceiling <= limit,
        "served {served}, ceiling {ceiling}, sample_limit {limit}: raise sample_limit (and docs/scaling.md) or bound the new labels"
    );
}

#[test]
fn the_image_healthcheck_passes_on_a_running_exporter_and_fails_without_one() {
    let command = dockerfile().healthcheck.expect("HEALTHCHECK CMD [...]");
    require_tool("bash");
    let run = |port: u16| {
        Command::new(&command[0])
            .args(&command[1..])
            .env("P2P_EXPORTER_LISTEN", format!("0.0.0.0:{port}"))
            .stderr(std::process::Stdio::null())
            .status()
            .expect("run the healthcheck")
            .success()
    };
    let exporter = Exporter::start(&[]);
    assert!(
        run(exporter.address.port()),
        "healthy exporter reported unhealthy"
    );
    assert!(!run(free_port()), "nothing listening, yet reported healthy");
}

#[test]
fn prometheus_scrapes_every_sidecar_and_loads_the_mounted_rules() {
    for files in COMPOSE_FILES {
        let s = stack(files);
        let listening = listeners(&s.model, &s.collector, &s.tempo, &s.root);
        assert_none(
            &format!("prometheus/prometheus.yml with {files:?}"),
            prometheus_problems(&s.prometheus, &s.model, &s.root, &listening, &s.collector),
        );
    }
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

#[test]
fn alertmanager_gets_every_file_its_config_reads() {
    let s = stack(COMPOSE_FILES[0]);
    let (_, service) = service_with_image(&s.model, "prom/alertmanager").expect("alertmanager");
    let path = host_path(service, "/etc/alertmanager/alertmanager.yml")
        .expect("alertmanager.yml is bind-mounted");
    // Its existence is every_image_is_pinned_and_every_service_checks_its_health's to report.
    if path.exists() {
        assert_none(
            "alerts/alertmanager.yml",
            alertmanager_problems(&load_yaml(&path), service, "/etc/alertmanager"),
        );
    }
}

#[test]
fn grafana_is_provisioned_from_the_repository_with_reachable_data_sources() {
    let s = stack(COMPOSE_FILES[0]);
    let listening = listeners(&s.model, &s.collector, &s.tempo, &s.root);
    let (name, service) = service_with_image(&s.model, "grafana/grafana").expect("grafana");
    assert_none(
        "grafana",
        grafana_problems(&name, service, &listening, &|p| p.exists()),
    );
}

// ---------------------------------------------------------------------------------------------
// Each check, on broken input: it must fail.

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
fn the_image_check_refuses_latest_missing_and_unversioned_tags() {
    for pinned in [
        "prom/prometheus:v2.54.1",
        "otel/opentelemetry-collector-contrib:0.111.0",
        "localhost:5000/p2p-exporter:0.1.0",
        "rust:1.85.1-slim-bookworm",
        "debian@sha256:0000000000000000000000000000000000000000000000000000000000000000",
    ] {
        assert_eq!(image_problem(pinned), None, "{pinned}");
    }
    for unpinned in [
        "grafana/grafana",
        "grafana/grafana:latest",
        "localhost:5000/p2p-exporter",
        "debian:bookworm-slim",
        "grafana/tempo:2",
        "busybox:1.36-latest",
        "debian@sha256:abc",
    ] {
        assert!(
            image_problem(unpinned).is_some(),
            "{unpinned} passed as pinned"
        );
    }
    assert!(image_variable_problems("    image: ${NODE_IMAGE:?set it}\n").is_empty());
    assert_eq!(
        image_variable_problems("image: ${NODE_IMAGE:-node:latest}").len(),
        1
    );
    assert_eq!(
        image_variable_problems("  image: \"${NODE_IMAGE}\"").len(),
        1
    );
}

const GOOD_DOCKERFILE: &str = r#"
ARG RUST_VERSION=1.85.1
FROM rust:${RUST_VERSION}-slim-bookworm AS build
RUN cargo build --release
FROM debian:12.7-slim
COPY --from=build /x /x
USER 10001:10001
ENV P2P_EXPORTER_LISTEN=0.0.0.0:9730
EXPOSE 9730
HEALTHCHECK --interval=15s \
    CMD ["/bin/bash", "-c", "true"]
"#;

#[test]
fn the_dockerfile_check_catches_root_single_stage_unpinned_and_no_healthcheck() {
    let good = parse_dockerfile(GOOD_DOCKERFILE);
    assert_eq!(good.from[0].0, "rust:1.85.1-slim-bookworm");
    assert_eq!(
        good.healthcheck.as_deref(),
        Some(&["/bin/bash".to_owned(), "-c".into(), "true".into()][..])
    );
    assert_none("good fixture", dockerfile_problems(&good));
    let cases = [
        ("USER 10001:10001", "USER root", "root"),
        ("USER 10001:10001", "", "root"),
        (
            "FROM debian:12.7-slim",
            "FROM debian:bookworm-slim",
            "no version",
        ),
        (
            "ARG RUST_VERSION=1.85.1",
            "ARG RUST_VERSION=latest",
            "latest",
        ),
        (
            "HEALTHCHECK --interval=15s \\\n    CMD [\"/bin/bash\", \"-c\", \"true\"]",
            "",
            "HEALTHCHECK",
        ),
        ("EXPOSE 9730", "EXPOSE 8080", "EXPOSE"),
        (
            "ENV P2P_EXPORTER_LISTEN=0.0.0.0:9730",
            "ENV P2P_EXPORTER_LISTEN=127.0.0.1:9730",
            "P2P_EXPORTER_LISTEN",
        ),
    ];
    for (from, to, expected) in cases {
        assert!(GOOD_DOCKERFILE.contains(from), "fixture has no {from:?}");
        let problems =
            dockerfile_problems(&parse_dockerfile(&GOOD_DOCKERFILE.replacen(from, to, 1)));
        assert!(
            problems.iter().any(|p| p.contains(expected)),
            "{from:?} -> {to:?}: expected {expected:?} in {problems:?}"
        );
    }
    let single = "FROM rust:1.85.1-slim-bookworm\nUSER 1\nEXPOSE 9730\nENV P2P_EXPORTER_LISTEN=0.0.0.0:9730\nHEALTHCHECK CMD [\"true\"]\n";
    assert!(dockerfile_problems(&parse_dockerfile(single))
        .iter()
        .any(|p| p.contains("multi-stage")));
}

#[test]
fn the_toolchain_check_catches_drift_and_dependencies_needing_newer_rust() {
    let deps = |v: &str| vec![("tonic".to_owned(), "0.14.0".to_owned(), v.to_owned())];
    assert_none(
        "in step",
        toolchain_problems("1.85.1", "1.85", &deps("1.75")),
    );
    assert_none(
        "equal",
        toolchain_problems("1.85.1", "1.85", &deps("1.85.0")),
    );
    assert_eq!(toolchain_problems("1.88.0", "1.85", &[]).len(), 1);
    let newer = toolchain_problems("1.85.1", "1.85", &deps("1.88"));
    assert!(newer.iter().any(|p| p.contains("tonic")), "{newer:?}");
}

#[test]
fn the_series_ceiling_multiplies_each_family_by_its_label_bounds() {
    // Everything in METRICS served once, as a sidecar does; then one known family checked.
    let mut exposition = String::new();
    for def in METRICS {
        let labels: Vec<String> = def.labels.iter().map(|l| format!("{l}=\"x\"")).collect();
        let labels = labels.join(",");
        match def.kind {
            MetricType::Histogram => {
                for le in ["0.1", "+Inf"] {
                    let sep = if labels.is_empty() { "" } else { "," };
                    exposition.push_str(&format!(
                        "{}_bucket{{{labels}{sep}le=\"{le}\"}} 1\n",
                        def.name
                    ));
                }
                exposition.push_str(&format!(
                    "{}_sum{{{labels}}} 1\n{}_count{{{labels}}} 1\n",
                    def.name, def.name
                ));
            }
            _ => exposition.push_str(&format!("{}{{{labels}}} 1\n", def.name)),
        }
    }
    exposition.push_str("process_open_fds 9\n");
    let expected: usize = METRICS
        .iter()
        .map(|d| {
            let per_set = if d.kind == MetricType::Histogram {
                4
            } else {
                1
            };
            per_set
                * d.labels
                    .iter()
                    .map(|l| label_bound(d.name, l).unwrap())
                    .product::<usize>()
        })
        .sum::<usize>()
        + 1;
    assert_eq!(series_ceiling(&exposition), Ok(expected));
    // A family missing from the scrape cannot be sized.
    let without = exposition.replace("p2p_peers{} 1\n", "");
    assert!(series_ceiling(&without).is_err());
}

#[test]
fn the_build_context_check_catches_an_ignored_input() {
    let needed = vec![
        "Cargo.toml".to_owned(),
        "exporter/src/main.rs".to_owned(),
        "alerts/thresholds.toml".to_owned(),
    ];
    let good = "# comment\n.git\n**/target\ndocker-compose*.yml\n**/*secret*\n";
    assert_none("good", build_context_problems(good, &needed));
    for bad in [
        "alerts",
        "/alerts/",
        "**/*.toml",
        "exporter/src",
        "*\n!Cargo.toml\n!exporter",
    ] {
        let problems = build_context_problems(bad, &needed);
        assert!(!problems.is_empty(), "{bad:?} passed");
    }
    assert!(dockerignored(good, "docker-compose.node.yml"));
    assert!(!dockerignored(good, "exporter/docker-compose.yml"));
    assert!(dockerignored(good, "a/b/my-secret-file"));
    assert!(dockerignored(good, "router/target/debug/x"));
    assert_eq!(
        included_files(
            "decision/src/lib.rs",
            r#"pub const T: &str = include_str!("../../alerts/thresholds.toml");"#
        ),
        ["alerts/thresholds.toml"]
    );
}

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

fn fixture_exists(path: &Path) -> bool {
    !path.to_string_lossy().contains("missing")
}

#[test]
fn the_compose_check_catches_unpinned_unhealthy_missing_mounts_and_extra_ports() {
    let root = Path::new("/repo");
    let check = |model: &Value| compose_problems(model, root, &fixture_exists, true);
    assert_none("good fixture", check(&parse_yaml(GOOD_MODEL)));
    let cases = [
        (
            "image: grafana/tempo:2.6.0",
            "image: grafana/tempo:latest",
            "latest",
        ),
        (
            "image: grafana/tempo:2.6.0\n    healthcheck: {test: [\"CMD\", \"true\"]}",
            "image: grafana/tempo:2.6.0",
            "tempo has no healthcheck",
        ),
        (
            "healthcheck: {test: [\"CMD\", \"true\"]}\n  prometheus",
            "healthcheck: {test: [\"NONE\"]}\n  prometheus",
            "tempo has no healthcheck",
        ),
        (
            "/repo/alerts/rules:",
            "/repo/alerts/missing-rules:",
            "does not exist",
        ),
        (
            "/repo/alerts/rules:",
            "/var/run/docker.sock:",
            "outside the repository",
        ),
        (
            "\"127.0.0.1:9090:9090/tcp\"",
            "\"127.0.0.1:9091:9090/tcp\"",
            "9091",
        ),
        (
            "\"127.0.0.1:9090:9090/tcp\"",
            "\"9090:9090/tcp\"",
            "127.0.0.1",
        ),
        ("restart: \"no\"", "restart: always", "one-shot"),
    ];
    for (from, to, expected) in cases {
        let problems = check(&model_with(from, to));
        assert!(
            problems.iter().any(|p| p.contains(expected)),
            "{from:?} -> {to:?}: expected {expected:?} in {problems:?}"
        );
    }
    // An exporter without its image's HEALTHCHECK has none.
    let problems = compose_problems(&parse_yaml(GOOD_MODEL), root, &fixture_exists, false);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("node-a has no healthcheck")),
        "{problems:?}"
    );
}

const GOOD_PROMETHEUS: &str = r#"
rule_files: [/etc/prometheus/rules/*.yml]
alerting:
  alertmanagers:
    - static_configs: [{targets: ['alertmanager:9093']}]
scrape_configs:
  - job_name: p2p-exporter
    static_configs: [{targets: ['node-a:9730']}]
  - job_name: otel-collector-spanmetrics
    static_configs: [{targets: ['otel-collector:8889']}]
  - job_name: prometheus
    static_configs: [{targets: ['localhost:9090']}]
"#;

const GOOD_TEMPO: &str = r#"
server: {http_listen_port: 3200}
distributor: {receivers: {otlp: {protocols: {grpc: {endpoint: "0.0.0.0:4317"}}}}}
"#;

/// A repository root holding alerts/rules/alerts.yml, for the rule_files check.
fn fixture_repo() -> (tempfile::TempDir, Value) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("alerts/rules")).unwrap();
    std::fs::write(dir.path().join("alerts/rules/alerts.yml"), "groups: []\n").unwrap();
    let root = dir.path().to_str().unwrap();
    let model = parse_yaml(&GOOD_MODEL.replace("/repo", root));
    (dir, model)
}

#[test]
fn the_prometheus_check_catches_missing_sidecars_unknown_targets_and_unmounted_rules() {
    let (dir, model) = fixture_repo();
    let collector = parse_yaml(GOOD_COLLECTOR);
    let listening = listeners(&model, &collector, &parse_yaml(GOOD_TEMPO), dir.path());
    let check = |prometheus: &str, model: &Value| {
        prometheus_problems(
            &parse_yaml(prometheus),
            model,
            dir.path(),
            &listening,
            &collector,
        )
    };
    assert_none("good fixture", check(GOOD_PROMETHEUS, &model));
    let cases = [
        (
            "job_name: p2p-exporter",
            "job_name: p2p",
            "must scrape exactly",
        ),
        (
            "['node-a:9730']",
            "['node-a:9100']",
            "does not listen on 9100",
        ),
        (
            "['node-a:9730']",
            "['node-a:9730', 'node-z:9730']",
            "node-z is not a compose service",
        ),
        ("'alertmanager:9093'", "'alertmanager:9094'", "alerting"),
        (
            "'otel-collector:8889'",
            "'otel-collector:8888'",
            "spanmetrics",
        ),
        (
            "/etc/prometheus/rules/*.yml",
            "/etc/prometheus/other/*.yml",
            "not bind-mounted",
        ),
        (
            "/etc/prometheus/rules/*.yml",
            "/etc/prometheus/rules/*.yaml",
            "matches no file",
        ),
        (
            "rule_files: [/etc/prometheus/rules/*.yml]",
            "rule_files: []",
            "no rule_files",
        ),
    ];
    for (from, to, expected) in cases {
        assert!(GOOD_PROMETHEUS.contains(from), "fixture has no {from:?}");
        let problems = check(&GOOD_PROMETHEUS.replacen(from, to, 1), &model);
        assert!(
            problems.iter().any(|p| p.contains(expected)),
            "{from:?} -> {to:?}: expected {expected:?} in {problems:?}"
        );
    }
    // A sidecar added to compose but not to prometheus.yml.
    let root = dir.path().to_str().unwrap();
    let two = parse_yaml(&GOOD_MODEL.replace("/repo", root).replacen(
        "services:\n",
        &format!(
            "services:\n  node-b:\n    build: {{context: {root}}}\n    image: p2p-exporter:0.1.0\n"
        ),
        1,
    ));
    let problems = check(GOOD_PROMETHEUS, &two);
    assert!(
        problems.iter().any(|p| p.contains("node-b")),
        "{problems:?}"
    );
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

#[test]
fn the_alertmanager_check_catches_a_secret_file_that_is_not_mounted() {
    let model = parse_yaml(GOOD_MODEL);
    let service = &model["services"]["alertmanager"];
    let config = |path: &str| {
        parse_yaml(&format!(
            "receivers:\n  - name: page\n    pagerduty_configs:\n      - routing_key_file: {path}\ntemplates: ['/etc/alertmanager/alertmanager.yml']\n"
        ))
    };
    assert_none(
        "mounted secret",
        alertmanager_problems(
            &config("/run/secrets/pagerduty_routing_key"),
            service,
            "/etc/alertmanager",
        ),
    );
    for path in [
        "/run/secrets/pagerduty_key",
        "/etc/alertmanager/secrets/key",
        "key.txt",
    ] {
        let problems = alertmanager_problems(&config(path), service, "/etc/alertmanager");
        assert!(
            problems.iter().any(|p| p.contains("routing_key_file")),
            "{path}: {problems:?}"
        );
    }
}

#[test]
fn the_grafana_check_catches_missing_provisioning_and_unreachable_data_sources() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    let provisioning = dir.path().join("dashboards/provisioning");
    std::fs::create_dir_all(provisioning.join("datasources")).unwrap();
    std::fs::create_dir_all(provisioning.join("dashboards")).unwrap();
    std::fs::create_dir_all(dir.path().join("dashboards/json")).unwrap();
    let service = parse_yaml(&format!(
        "environment: {{GF_PATHS_PROVISIONING: /etc/grafana/p2p/provisioning}}\nvolumes: ['{root}/dashboards:/etc/grafana/p2p:ro']\n"
    ));
    let model = parse_yaml(GOOD_MODEL);
    let listening = listeners(
        &model,
        &parse_yaml(GOOD_COLLECTOR),
        &parse_yaml(GOOD_TEMPO),
        Path::new("/repo"),
    );
    let write = |datasource_url: &str, dashboards: &str| {
        std::fs::write(
            provisioning.join("datasources/ds.yml"),
            format!(
                "apiVersion: 1\ndatasources:\n  - name: Prometheus\n    url: {datasource_url}\n"
            ),
        )
        .unwrap();
        std::fs::write(
            provisioning.join("dashboards/dash.yaml"),
            format!(
                "apiVersion: 1\nproviders:\n  - name: p2p\n    options: {{path: {dashboards}}}\n"
            ),
        )
        .unwrap();
        grafana_problems("grafana", &service, &listening, &|p| p.exists())
    };
    assert_none(
        "good fixture",
        write("http://prometheus:9090", "/etc/grafana/p2p/json"),
    );
    // Inside the Grafana container, localhost is Grafana.
    let problems = write("http://localhost:9090", "/etc/grafana/p2p/json");
    assert!(
        problems.iter().any(|p| p.contains("grafana")),
        "{problems:?}"
    );
    let problems = write("http://prometheus:9091", "/etc/grafana/p2p/json");
    assert!(problems.iter().any(|p| p.contains("9091")), "{problems:?}");
    let problems = write("http://victoria:8428", "/etc/grafana/p2p/json");
    assert!(
        problems.iter().any(|p| p.contains("victoria")),
        "{problems:?}"
    );
    let problems = write("http://prometheus:9090", "/etc/grafana/p2p/dashboards-json");
    assert!(
        problems.iter().any(|p| p.contains("dashboards-json")),
        "{problems:?}"
    );
    std::fs::remove_dir_all(&provisioning).unwrap();
    let problems = grafana_problems("grafana", &service, &listening, &|p| p.exists());
    assert!(
        problems.iter().any(|p| p.contains("does not exist")),
        "{problems:?}"
    );
}
