//! Grafana's provisioning (dashboards/provisioning), checked offline against the resolved compose
//! model: there is no Docker engine on these machines to start Grafana. It is mounted and exists,
//! its data sources name services on ports they listen on, its dashboard folders exist.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_yaml::Value;

use super::{
    assert_none, environment, host_path, listeners, load_yaml, parse_yaml, service_with_image,
    stack, target_problem, COMPOSE_FILES, GOOD_COLLECTOR, GOOD_MODEL, GOOD_TEMPO,
};

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
// The checks, on the repository's files.

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
