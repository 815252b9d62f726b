//! Every panel query of every dashboard in `dashboards/json/`, run against a real Prometheus that
//! scrapes real exporters and evaluates the real recording and alert rules. A panel that returns
//! no data here would show "No data" in Grafana; that is a failure.
//!
//! Two nodes, as one Grafana watching a testnet would see them, each moving the signals it is
//! there for:
//! - `lagging`: a consumer loop too slow for its peers: lag, duplicates, churn;
//! - `healthy`: default consumer costs, a block every 700 ms, no sync bursts, frequent stale
//!   blocks and reorgs: accepted blocks, propagation, orphans, reorgs, churn, duplicates, and no
//!   lag.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use crate::support::{get, repo_root, sample, samples, wait_for, Exporter, Prometheus};

/// Rule windows, shortened so the rules yield data seconds after the first scrape instead of
/// hours: every duration of a minute or more that follows `[`, `offset ` or `for: ` in the rule
/// files becomes 15 s (5m, 30m, 1h, 6h -> 15s; the `for:` of alerts and the page's `offset 5m`
/// alike, so alerts fire too). Shorter durations stay as written. 15 s is 15 scrapes at the test's
/// 1 s scrape interval: enough samples for every rate(). The decision window's length in seconds
/// (its coverage's divisor, 21600, and the bound below it, 21599) scales with it.
fn scale_windows(rules: &str) -> String {
    scale_durations(rules)
        .replace("21600", "15")
        .replace("21599", "14")
}

fn scale_durations(rules: &str) -> String {
    const SCALED: &str = "15s";
    let mut out = String::with_capacity(rules.len());
    let mut rest = rules;
    loop {
        let next = ["[", "offset ", "for: "]
            .iter()
            .filter_map(|marker| rest.find(marker).map(|at| (at, marker.len())))
            .min();
        let Some((at, len)) = next else {
            out.push_str(rest);
            return out;
        };
        out.push_str(&rest[..at + len]);
        rest = &rest[at + len..];
        let end = rest
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(rest.len());
        let token = &rest[..end];
        match humantime::parse_duration(token) {
            Ok(window) if window >= Duration::from_secs(60) => out.push_str(SCALED),
            _ => out.push_str(token),
        }
        rest = &rest[end..];
    }
}

/// What Grafana sends for a dashboard query with "All" nodes picked at a 15 s scrape interval;
/// the same values as `p2p_checks::dashboards::promql::LIVE`, which the structural check uses.
fn grafana_substitute(query: &str) -> String {
    let substituted = query
        .replace("${__rate_interval}", "1m")
        .replace("$__rate_interval", "1m")
        .replace("${instance}", ".*")
        .replace("$instance", ".*");
    assert!(
        !substituted.contains('$'),
        "a variable this test does not substitute: {query}"
    );
    substituted
}

struct PanelQuery {
    dashboard: String,
    panel: String,
    legend: String,
    promql: String,
}

impl PanelQuery {
    fn name(&self) -> String {
        format!("{} / {:?} ({})", self.dashboard, self.panel, self.legend)
    }
}

fn dashboards() -> Vec<Value> {
    let dir = repo_root().join("dashboards/json");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|path| serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap())
        .collect()
}

/// Every target of every panel (rows' nested panels included), substituted as Grafana would.
fn panel_queries(dashboards: &[Value]) -> Vec<PanelQuery> {
    let mut queries = Vec::new();
    for dashboard in dashboards {
        let uid = dashboard["uid"].as_str().unwrap();
        let top = dashboard["panels"].as_array().unwrap();
        let nested = top.iter().filter_map(|p| p["panels"].as_array()).flatten();
        for panel in top.iter().chain(nested) {
            for target in panel["targets"].as_array().into_iter().flatten() {
                let Some(expr) = target["expr"].as_str().filter(|e| !e.is_empty()) else {
                    continue;
                };
                queries.push(PanelQuery {
                    dashboard: uid.to_owned(),
                    panel: panel["title"].as_str().unwrap().to_owned(),
                    legend: target["legendFormat"].as_str().unwrap_or("").to_owned(),
                    promql: grafana_substitute(expr),
                });
            }
        }
    }
    queries
}

/// Values of an instant query's result that Grafana would draw (NaN and infinities are not).
fn finite_values(result: &[Value]) -> Vec<f64> {
    result
        .iter()
        .filter_map(|series| series["value"][1].as_str()?.parse::<f64>().ok())
        .filter(|value| value.is_finite())
        .collect()
}

fn counter_sum(exposition: &str, name: &str) -> f64 {
    samples(exposition)
        .iter()
        .filter(|s| s.name == name)
        .map(|s| s.value)
        .sum()
}

#[test]
fn every_panel_query_returns_data_and_the_lag_duplicate_and_propagation_panels_move() {
    let lagging = Exporter::start(&[
        "--message-cost",
        "3ms",
        "--peers",
        "30",
        "--block-interval",
        "1s",
        "--sync-burst-every",
        "5s",
        "--churn-every",
        "2s",
    ]);
    let healthy = Exporter::start(&[
        "--peers",
        "30",
        "--block-interval",
        "700ms",
        "--sync-burst-every",
        "1h",
        // A stale block every ~3.5 s and a reorg every ~14 s, so both show within a minute.
        "--stale-block-probability",
        "0.2",
        "--reorg-probability",
        "0.05",
        "--churn-every",
        "2s",
    ]);

    // Each node moves the signals it is there for, as its own /metrics says.
    let moved = |exporter: &Exporter, counters: &[&str]| {
        let exposition = exporter.scrape();
        counters
            .iter()
            .all(|name| counter_sum(&exposition, name) > 0.0)
            .then_some(())
    };
    wait_for(
        "the lagging node to lag, see duplicates and lose peers",
        Duration::from_secs(120),
        || {
            moved(
                &lagging,
                &[
                    "p2p_event_channel_lag_total",
                    "p2p_inv_duplicate_messages_total",
                    "p2p_peer_disconnections_total",
                ],
            )
        },
    );
    wait_for(
        "the healthy node to accept, propagate, orphan and reorganise blocks and lose peers",
        Duration::from_secs(120),
        || {
            moved(
                &healthy,
                &[
                    "p2p_blocks_accepted_total",
                    "p2p_block_propagation_seconds_count",
                    "p2p_blocks_orphaned_total",
                    "p2p_chain_reorgs_total",
                    "p2p_inv_duplicate_messages_total",
                    "p2p_peer_disconnections_total",
                ],
            )
        },
    );
    assert_eq!(
        sample(
            &healthy.scrape(),
            r#"p2p_event_channel_lag_total{subscriber="consumer"}"#
        ),
        Some(0.0),
        "the healthy node must not lag, or it stops accepting blocks"
    );

    let config = format!(
        r#"global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [recording.yml, alerts.yml]
scrape_configs:
  - job_name: p2p-exporter
    static_configs:
      - targets: ['{}', '{}']
"#,
        lagging.address, healthy.address
    );
    let rules = |file: &str| {
        let path = repo_root().join("alerts/rules").join(file);
        scale_windows(
            &std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
        )
    };
    let prometheus = Prometheus::start(
        &config,
        &[
            ("recording.yml", rules("recording.yml")),
            ("alerts.yml", rules("alerts.yml")),
        ],
    );
    let (status, loaded) = get(prometheus.address, "/api/v1/rules");
    assert_eq!(status, 200);
    let loaded: Value = serde_json::from_str(&loaded).unwrap();
    assert!(
        loaded["data"]["groups"].as_array().unwrap().len() >= 2,
        "Prometheus loaded no rule groups: {}",
        prometheus.log()
    );

    let dashboards = dashboards();
    let uids: Vec<&str> = dashboards
        .iter()
        .map(|d| d["uid"].as_str().unwrap())
        .collect();
    assert_eq!(
        uids,
        [
            "p2p-chain",
            "p2p-channel",
            "p2p-decision",
            "p2p-messages",
            "p2p-peers"
        ]
    );
    let queries = panel_queries(&dashboards);

    // Every panel query returns something Grafana can draw. The list of those still empty is
    // printed whenever it changes, so a timeout names them.
    let mut last_missing = Vec::new();
    wait_for(
        "every panel query to return data",
        Duration::from_secs(180),
        || {
            let missing: Vec<String> = queries
                .iter()
                .filter(|q| finite_values(&prometheus.query(&q.promql)).is_empty())
                .map(PanelQuery::name)
                .collect();
            if missing != last_missing {
                eprintln!("panel queries without data yet: {missing:#?}");
                last_missing = missing.clone();
            }
            missing.is_empty().then_some(())
        },
    );

    // The `instance` variable lists both nodes.
    for dashboard in &dashboards {
        let variable = dashboard["templating"]["list"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == "instance")
            .unwrap();
        let query = variable["query"].as_str().unwrap();
        let selector = query
            .strip_prefix("label_values(")
            .and_then(|q| q.strip_suffix(", instance)"))
            .unwrap_or_else(|| panic!("unexpected variable query {query}"));
        let mut instances: Vec<String> = prometheus
            .query(selector)
            .iter()
            .map(|s| s["metric"]["instance"].as_str().unwrap().to_owned())
            .collect();
        instances.sort();
        let mut expected = vec![lagging.address.to_string(), healthy.address.to_string()];
        expected.sort();
        assert_eq!(instances, expected, "{query}");
    }

    // The panels this workload must move are above zero, for every query they hold.
    let moving = [
        ("p2p-decision", "Event lag ratio, worst subscriber"),
        ("p2p-decision", "Duplicate inv ratio"),
        ("p2p-channel", "Lag ratio per subscriber"),
        ("p2p-channel", "Events received and skipped per subscriber"),
        ("p2p-channel", "Sends into a nearly full channel"),
        ("p2p-messages", "Duplicate inv ratio, messages and items"),
        ("p2p-messages", "Inv messages: all and duplicates"),
        ("p2p-chain", "Block propagation p50 and p99"),
        ("p2p-chain", "Block propagation distribution"),
    ];
    for (uid, title) in moving {
        let panel: Vec<&PanelQuery> = queries
            .iter()
            .filter(|q| q.dashboard == uid && q.panel == title)
            .collect();
        assert!(!panel.is_empty(), "{uid} has no panel {title:?}");
        for query in panel {
            wait_for(
                &format!("{} to be above zero", query.name()),
                Duration::from_secs(60),
                || {
                    finite_values(&prometheus.query(&query.promql))
                        .iter()
                        .any(|v| *v > 0.0)
                        .then_some(())
                },
            );
        }
    }

    // The verdict, exactly: the lagging node lags (> 1%) with ~35% duplicate inv (> 30%), so
    // deduplicate (1); the healthy node does not lag, so none (0).
    let verdicts = |promql: &str| -> BTreeMap<String, f64> {
        prometheus
            .query(promql)
            .iter()
            .map(|s| {
                let instance = s["metric"]["instance"].as_str().unwrap_or("").to_owned();
                let value = s["value"][1].as_str().unwrap().parse().unwrap();
                (instance, value)
            })
            .collect()
    };
    let verdict_query = queries
        .iter()
        .find(|q| q.dashboard == "p2p-decision" && q.panel == "Verdict per node")
        .expect("the Decision overview has a verdict per node");
    let expected = BTreeMap::from([
        (lagging.address.to_string(), 1.0),
        (healthy.address.to_string(), 0.0),
    ]);
    wait_for(
        "verdicts deduplicate (lagging) and none (healthy)",
        Duration::from_secs(60),
        || (verdicts(&verdict_query.promql) == expected).then_some(()),
    );
    let nodes_per_verdict: BTreeMap<&str, f64> = queries
        .iter()
        .filter(|q| q.dashboard == "p2p-decision" && q.panel == "Nodes per verdict (testnet)")
        .map(|q| {
            let values = finite_values(&prometheus.query(&q.promql));
            assert_eq!(values.len(), 1, "{}", q.name());
            (q.legend.as_str(), values[0])
        })
        .collect();
    assert_eq!(
        nodes_per_verdict,
        BTreeMap::from([
            ("insufficient data", 0.0),
            ("none", 1.0),
            ("deduplicate", 1.0),
            ("segmented fanout", 0.0),
            ("grow channel", 0.0),
        ])
    );

    // Alerts show as annotations: every annotation query is valid PromQL to Prometheus, and the
    // lag page and the decision ticket are firing for the lagging node.
    for dashboard in &dashboards {
        for annotation in dashboard["annotations"]["list"].as_array().unwrap() {
            let expr = annotation["target"]["expr"]
                .as_str()
                .expect("every annotation queries Prometheus");
            let promql = grafana_substitute(expr);
            let name = annotation["name"].as_str().unwrap();
            if ["Lag page", "Decision tickets"].contains(&name) {
                wait_for(
                    &format!("annotation {name:?} to show a firing alert"),
                    Duration::from_secs(60),
                    || {
                        prometheus
                            .query(&promql)
                            .iter()
                            .any(|s| s["metric"]["instance"] == lagging.address.to_string())
                            .then_some(())
                    },
                );
            } else {
                prometheus.query(&promql);
            }
        }
    }
}

#[test]
fn scale_windows_shortens_ranges_offsets_and_for_and_nothing_else() {
    let rules = "expr: rate(a[5m]) / rate(b[30m]) + c offset 5m + d[1h] + e[6h] + f[30s] + g[5m:1m]\nfor: 15m\nsummary: held for 10 minutes";
    assert_eq!(
        scale_windows(rules),
        "expr: rate(a[15s]) / rate(b[15s]) + c offset 15s + d[15s] + e[15s] + f[30s] + g[15s:1m]\nfor: 15s\nsummary: held for 10 minutes"
    );
}
