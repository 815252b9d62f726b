//! The compose files (docker-compose.yml, and with docker-compose.node.yml), checked offline on the
//! model `docker-compose config` resolves: there is no Docker engine on these machines to run them.
//! Images pinned, healthchecks, mounts that exist, only the UI ports published, on loopback.

use std::collections::BTreeSet;
use std::path::Path;

use serde_yaml::Value;

use super::{
    assert_none, dockerfile, exporter_services, image_problem, model_with, mounts, parse_yaml,
    services, stack, strings, COMPOSE_FILES, GOOD_MODEL,
};

/// The only ports the stack may publish on the host: the UIs and Tempo's query API.
const UI_PORTS: &[u16] = &[3000, 9090, 9093, 3200];

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

/// Pinned images, healthchecks, repository mounts that exist, only UI ports, on loopback.
/// `image_healthcheck`: the exporter image (Dockerfile) has its own HEALTHCHECK.
pub(super) fn compose_problems(
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
            // A Prometheus behind its web config (TLS and basic auth on every endpoint) is meant
            // to be reached from other hosts: the central side of push.
            let guarded = strings(&service["command"])
                .iter()
                .any(|arg| arg.starts_with("--web.config.file="));
            if !guarded && address.as_deref() != Some("127.0.0.1") {
                problems.push(format!(
                    "{name} publishes on {address:?}: by default only on 127.0.0.1 (STACK_BIND_ADDRESS opens it)"
                ));
            }
        }
    }
    problems
}

// ---------------------------------------------------------------------------------------------
// The checks, on the repository's files.

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

// ---------------------------------------------------------------------------------------------
// Each check, on broken input: it must fail.

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
        (
            "\"127.0.0.1:9090:9090/tcp\"",
            "\"0.0.0.0:9090:9090/tcp\"",
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
