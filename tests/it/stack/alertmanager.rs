//! alerts/alertmanager.yml, checked offline against the resolved compose model: there is no Docker
//! engine on these machines to start Alertmanager. Every file it reads (the PagerDuty key) is
//! mounted into its container.

use serde_yaml::Value;

use super::{
    assert_none, host_path, load_yaml, mount_of, mounts, parse_yaml, service_with_image, stack,
    COMPOSE_FILES, GOOD_MODEL,
};

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

// ---------------------------------------------------------------------------------------------
// The checks, on the repository's files.

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

// ---------------------------------------------------------------------------------------------
// Each check, on broken input: it must fail.

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
