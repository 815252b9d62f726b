//! prometheus/prometheus.yml, checked offline against the resolved compose model: there is no
//! Docker engine on these machines to start Prometheus. Every target a service on a port it listens
//! on, the sidecars and span metrics scraped, the rule files mounted, and a sample_limit above the
//! most series a sidecar can serve.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use p2p_contract::{
    MetricType, MAX_NAMES, METRICS, TAP_CLIENT_DROP_REASONS, TAP_CONNECTION_RESULTS,
};
use p2p_exporter::http::DEFAULT_PORT;
use p2p_observe::{DisconnectReason, MessageKind};
use serde_yaml::Value;

use super::{
    assert_none, exporter_services, host_path, host_port, kind, listeners, load_yaml, parse_yaml,
    service_with_image, stack, strings, target_problem, COMPOSE_FILES, GOOD_COLLECTOR, GOOD_MODEL,
    GOOD_TEMPO,
};
use crate::support::{repo_root, Exporter};

/// The scrape job rules and dashboards select on.
const EXPORTER_JOB: &str = "p2p-exporter";

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
        ("p2p_tap_connections_closed_total", "reason") => {
            Some(p2p_contract::TAP_CLOSE_REASONS.len())
        }
        ("p2p_exporter_http_connections_closed_total", "reason") => {
            Some(p2p_contract::HTTP_CLOSE_REASONS.len())
        }
        ("p2p_exporter_accept_errors_total", "listener") => {
            Some(p2p_contract::ACCEPT_LISTENERS.len())
        }
        ("p2p_exporter_accept_errors_total", "reason") => {
            Some(p2p_contract::ACCEPT_ERROR_REASONS.len())
        }
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
        if def.name == "p2p_consumer_service_seconds" && !per_family.contains_key(def.name) {
            // Only the node's tap measures service time: its size is its buckets (plus +Inf,
            // _sum and _count) at every label set.
            let per_set = p2p_tap::histogram::SERVICE_BOUNDS_NS.len() + 3;
            let mut sets = 1;
            for label in def.labels {
                sets *= label_bound(def.name, label)
                    .ok_or_else(|| format!("{}: label {label} has no known bound", def.name))?;
            }
            ceiling += per_set * sets;
            continue;
        }
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
// The checks, on the repository's files.

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

// ---------------------------------------------------------------------------------------------
// Each check, on broken input: it must fail.

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
