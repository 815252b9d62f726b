//! docker-compose.push.yml, checked offline on the model `docker-compose config` resolves: the
//! same image, healthcheck, mount and port rules as the local stack, each service in exactly one
//! side's profile, and the contracts between the compose file and prometheus/agent.yml,
//! central.yml and central-web.yml (what the agent's shell rewrites is in agent.yml, the files the
//! configs read are the secrets compose mounts there, the flags the central side needs are given).

use std::path::Path;

use p2p_exporter::http::DEFAULT_PORT;
use serde_yaml::Value;

use super::compose::compose_problems;
use super::{
    assert_none, dockerfile, exporter_services, host_path, load_yaml, resolve, services, strings,
};
use crate::support::repo_root;

const PUSH_FILE: &str = "docker-compose.push.yml";

/// The values the agent's entrypoint replaces in agent.yml (see the compose file's sed).
const NODE_PLACEHOLDER: &str = "community-node-1";
const URL_PLACEHOLDER: &str = "https://prometheus.p2p-team.example:9090/api/v1/write";

/// Container paths of a service's secrets.
fn secret_targets(service: &Value) -> Vec<String> {
    service["secrets"]
        .as_sequence()
        .into_iter()
        .flatten()
        .filter_map(|s| s["target"].as_str().map(str::to_owned))
        .collect()
}

fn service_running<'a>(model: &'a Value, flag: &str) -> Option<(String, &'a Value)> {
    services(model).into_iter().find(|(_, s)| {
        strings(&s["command"])
            .iter()
            .chain(strings(&s["entrypoint"]).iter())
            .any(|arg| arg.contains(flag))
    })
}

fn push_problems(model: &Value, agent: &Value, agent_text: &str, web: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    for (name, service) in services(model) {
        let profiles = strings(&service["profiles"]);
        if profiles != ["agent"] && profiles != ["central"] {
            problems.push(format!(
                "{name}: profiles {profiles:?}, want exactly one of agent or central"
            ));
        }
    }
    match service_running(model, "--enable-feature=agent") {
        None => problems.push("no service runs Prometheus in agent mode".to_owned()),
        Some((name, service)) => {
            let exporters = exporter_services(model, &repo_root());
            let shares = service["network_mode"]
                .as_str()
                .and_then(|mode| mode.strip_prefix("service:"));
            if !shares.is_some_and(|s| exporters.iter().any(|e| e == s)) {
                problems.push(format!(
                    "{name}: network_mode {:?} is not a sidecar's network, so 127.0.0.1 is not the sidecar",
                    service["network_mode"]
                ));
            }
            let target = format!("127.0.0.1:{DEFAULT_PORT}");
            let targets = strings(&agent["scrape_configs"][0]["static_configs"][0]["targets"]);
            if targets != [target.clone()] {
                problems.push(format!(
                    "agent.yml scrapes {targets:?}, not the sidecar at {target}"
                ));
            }
            match host_path(service, "/etc/prometheus/agent.yml") {
                Some(path) if path.ends_with("prometheus/agent.yml") => {}
                other => problems.push(format!("{name} mounts {other:?} as agent.yml")),
            }
            for placeholder in [NODE_PLACEHOLDER, URL_PLACEHOLDER] {
                if !agent_text.contains(placeholder) {
                    problems.push(format!(
                        "agent.yml has no {placeholder}: the entrypoint's sed would leave it unset"
                    ));
                }
            }
            let write = &agent["remote_write"][0];
            let secrets = secret_targets(service);
            for file in [
                &write["basic_auth"]["password_file"],
                &write["tls_config"]["ca_file"],
            ] {
                let file = file.as_str().unwrap_or("(none)");
                if !secrets.iter().any(|s| s == file) {
                    problems.push(format!(
                        "{name}: agent.yml reads {file}, which is no secret of it"
                    ));
                }
            }
        }
    }
    match service_running(model, "--web.enable-remote-write-receiver") {
        None => problems.push("no service receives remote writes".to_owned()),
        Some((name, service)) => {
            let command = strings(&service["command"]);
            let secrets = secret_targets(service);
            match command
                .iter()
                .find_map(|arg| arg.strip_prefix("--web.config.file="))
            {
                Some(file) if secrets.iter().any(|s| s == file) => {}
                other => problems.push(format!(
                    "{name}: the web config {other:?} (TLS and basic auth) is not a mounted secret"
                )),
            }
            for key in ["cert_file", "key_file"] {
                let file = web["tls_server_config"][key].as_str().unwrap_or("(none)");
                if !secrets.iter().any(|s| s == file) {
                    problems.push(format!(
                        "{name}: central-web.yml's {key} {file} is no secret of it"
                    ));
                }
            }
            match host_path(service, "/etc/prometheus/prometheus.yml") {
                Some(path) if path.ends_with("prometheus/central.yml") => {}
                other => problems.push(format!("{name} mounts {other:?} as its config")),
            }
            match host_path(service, "/etc/prometheus/rules") {
                Some(path) if path.ends_with("alerts/rules") => {}
                other => problems.push(format!("{name} mounts {other:?} as its rules")),
            }
        }
    }
    problems
}

fn push_model() -> (Value, tempfile::NamedTempFile) {
    resolve(&[PUSH_FILE])
}

fn real_files() -> (Value, String, Value) {
    let root = repo_root();
    let agent_text = std::fs::read_to_string(root.join("prometheus/agent.yml")).unwrap();
    (
        load_yaml(&root.join("prometheus/agent.yml")),
        agent_text,
        load_yaml(&root.join("prometheus/central-web.yml")),
    )
}

#[test]
fn the_push_sides_are_pinned_healthy_and_agree_with_their_prometheus_configs() {
    let (model, _secret) = push_model();
    let root = repo_root();
    assert_none(
        PUSH_FILE,
        compose_problems(
            &model,
            &root,
            &|p: &Path| p.exists(),
            dockerfile().healthcheck.is_some(),
        ),
    );
    let (agent, agent_text, web) = real_files();
    assert_none(PUSH_FILE, push_problems(&model, &agent, &agent_text, &web));
}

#[test]
fn the_push_check_catches_a_shared_service_a_lost_placeholder_and_unmounted_files() {
    let (model, _secret) = push_model();
    let (agent, agent_text, web) = real_files();
    let check = |model: &Value, agent: &Value, text: &str, web: &Value| {
        push_problems(model, agent, text, web)
    };
    let expect = |problems: Vec<String>, expected: &str| {
        assert!(
            problems.iter().any(|p| p.contains(expected)),
            "expected {expected:?} in {problems:?}"
        );
    };
    let mut broken = model.clone();
    broken["services"]["alertmanager"]["profiles"] = Value::Sequence(vec![]);
    expect(
        check(&broken, &agent, &agent_text, &web),
        "alertmanager: profiles",
    );
    let mut broken = model.clone();
    broken["services"]["prometheus-agent"]["network_mode"] = "bridge".into();
    expect(
        check(&broken, &agent, &agent_text, &web),
        "not a sidecar's network",
    );
    let renamed = agent_text.replace(NODE_PLACEHOLDER, "my-node");
    expect(
        check(&model, &agent, &renamed, &web),
        "sed would leave it unset",
    );
    let mut moved = agent.clone();
    moved["remote_write"][0]["tls_config"]["ca_file"] = "/elsewhere/ca.pem".into();
    expect(
        check(&model, &moved, &agent_text, &web),
        "/elsewhere/ca.pem",
    );
    let mut moved = web.clone();
    moved["tls_server_config"]["key_file"] = "/elsewhere/key".into();
    expect(check(&model, &agent, &agent_text, &moved), "key_file");
    let mut broken = model.clone();
    broken["services"]["prometheus-central"]["command"] = Value::Sequence(vec![]);
    expect(
        check(&broken, &agent, &agent_text, &web),
        "receives remote writes",
    );
}
