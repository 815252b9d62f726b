//! The alerting of `alerts/`, end to end with real components. (The rules are generated from
//! `alerts/thresholds.toml`, checked by the p2p-checks crate; their logic at the shipped windows
//! is proven by `promtool test rules alerts/tests/*.test.yml`, run by scripts/check-alerts.sh.)

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value as Json;
use serde_yaml::Value as Yaml;

use crate::support::{
    free_port, http, repo_root, require_tool, sample, wait_for, Exporter, Prometheus,
};

/// The consumer spends 5 ms per message and 50 ms per block while 40 peers send about 1400
/// messages a second: it handles about 200, so it lags by far more than 1%. Nine inv messages in
/// ten re-announce known items, so the decision verdict is "deduplicate".
const LAGGING: &[&str] = &[
    "--message-cost",
    "5ms",
    "--block-cost",
    "50ms",
    "--peers",
    "40",
    "--duplicate-ratio",
    "0.9",
];
/// Five peers at the default costs: a few ms of work a second for a consumer that never lags.
const HEALTHY: &[&str] = &["--peers", "5"];

const LAG_SERIES: &str = r#"p2p_event_channel_lag_total{subscriber="consumer"}"#;
/// The host and port of every webhook URL in the shipped alertmanager.yml; operators replace it.
const WEBHOOK_PLACEHOLDER: &str = "http://127.0.0.1:9095";

/// Where the generated rules point every alert's runbook_url: `[rules] runbook_url`.
fn runbook_url() -> String {
    let thresholds: toml::Table = read_repo_file("alerts/thresholds.toml")
        .parse()
        .expect("alerts/thresholds.toml is TOML");
    thresholds["rules"]["runbook_url"]
        .as_str()
        .expect("[rules] runbook_url")
        .to_owned()
}

fn read_repo_file(path: &str) -> String {
    std::fs::read_to_string(repo_root().join(path)).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

// --- window scaling ------------------------------------------------------------------------------

/// The shipped rules with their windows scaled down so that the page fires within seconds. A
/// mechanical, textual substitution of every occurrence:
///
/// | shipped                            | here          | used by                              |
/// |------------------------------------|---------------|--------------------------------------|
/// | `[5m]`, `offset 5m`                | `[10s]`, `offset 10s` | the page's ratio and its 5m-ago check |
/// | `[15m]`, `[30m]`, `[1h]`, `[6h]`   | `[20s]`       | tap loss, propagation, churn, chain, decision inputs |
/// | `for: 5m`, `for: 10m`, `for: 15m`  | `for: 5s`     | the page, observer, key metrics, tap |
/// | `for: 1h`                          | `for: 10s`    | the decision tickets                 |
/// | `offset 6h`, `21600`, `21599`      | `offset 20s`, `20`, `19` | the decision window's coverage |
///
/// With 1 s scrapes the page's window still holds ten samples, and its confirmation offset still
/// equals its window, as shipped. Any window the table does not know fails the test, so a new
/// rule cannot slip through unscaled.
fn scale_windows(rules: &str) -> String {
    const SUBSTITUTIONS: &[(&str, &str)] = &[
        ("[5m]", "[10s]"),
        ("offset 5m", "offset 10s"),
        ("[15m]", "[20s]"),
        ("[30m]", "[20s]"),
        ("[1h]", "[20s]"),
        ("[6h]", "[20s]"),
        // The decision window's coverage: its check 6h back, and the window in seconds.
        ("offset 6h", "offset 20s"),
        ("21600", "20"),
        ("21599", "19"),
        ("for: 5m", "for: 5s"),
        ("for: 10m", "for: 5s"),
        ("for: 15m", "for: 5s"),
        ("for: 1h", "for: 10s"),
    ];
    let scaled = SUBSTITUTIONS
        .iter()
        .fold(rules.to_owned(), |text, (from, to)| text.replace(from, to));
    let left: Vec<String> = ["[", "offset ", "for: "]
        .iter()
        .flat_map(|prefix| durations_after(&scaled, prefix))
        .filter(|d| !d.ends_with('s'))
        .collect();
    assert!(
        left.is_empty(),
        "windows scale_windows does not know: {left:?}"
    );
    scaled
}

/// Every duration literal (`5m`, `1h30m`, `10s`) that directly follows `prefix` in `text`.
fn durations_after(text: &str, prefix: &str) -> Vec<String> {
    text.match_indices(prefix)
        .filter_map(|(at, _)| {
            let token: String = text[at + prefix.len()..]
                .chars()
                .take_while(char::is_ascii_alphanumeric)
                .collect();
            seconds(&token).map(|_| token)
        })
        .collect()
}

/// A Prometheus duration (`90s`, `5m`, `1h30m`, `500ms`) in seconds; `None` if `text` is not one.
fn seconds(text: &str) -> Option<f64> {
    let mut total = 0.0;
    let mut rest = text;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        if digits == 0 {
            return None;
        }
        let value: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            "w" => 604800.0,
            "y" => 31536000.0,
            _ => return None,
        };
        total += value * unit;
        rest = &rest[unit_len..];
    }
    Some(total)
}

#[test]
fn scale_windows_rewrites_every_window_and_refuses_unknown_ones() {
    let rule = "expr: rate(a[5m]) > 0.01 and b offset 5m > 0.01 and rate(c[6h]) > 0\nfor: 5m\n";
    assert_eq!(
        scale_windows(rule),
        "expr: rate(a[10s]) > 0.01 and b offset 10s > 0.01 and rate(c[20s]) > 0\nfor: 5s\n"
    );
    let unknown = std::panic::catch_unwind(|| scale_windows("expr: rate(a[2h]) > 0\n"));
    assert!(unknown.is_err(), "a 2h window must not pass unscaled");
    assert_eq!(seconds("1h30m"), Some(5400.0));
    assert_eq!(seconds("500ms"), Some(0.5));
    assert_eq!(seconds("p2p"), None);
}

// --- a webhook receiver --------------------------------------------------------------------------

/// One POST the receiver got: its path and JSON body.
#[derive(Clone, Debug)]
struct Received {
    path: String,
    body: Json,
}

/// Records every POST on a loopback port and answers 200: Alertmanager's webhook and PagerDuty
/// notifications both land here.
struct WebhookReceiver {
    address: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
}

impl WebhookReceiver {
    fn start() -> WebhookReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&received);
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let sink = Arc::clone(&sink);
                std::thread::spawn(move || {
                    if let Some(request) = read_request(stream) {
                        sink.lock().unwrap().push(request);
                    }
                });
            }
        });
        WebhookReceiver { address, received }
    }

    fn all(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// The first Alertmanager webhook notification on `path` with `status` that carries an
    /// alert named `alertname`; returns that alert.
    fn alert(&self, path: &str, alertname: &str, status: &str) -> Option<Json> {
        self.all()
            .into_iter()
            .filter(|r| r.path == path && r.body["status"] == status)
            .flat_map(|r| r.body["alerts"].as_array().cloned().unwrap_or_default())
            .find(|a| a["labels"]["alertname"] == alertname && a["status"] == status)
    }

    /// The first PagerDuty Events v2 message with `event_action` whose summary names `alertname`.
    fn pagerduty(&self, alertname: &str, event_action: &str) -> Option<Json> {
        self.all()
            .into_iter()
            .filter(|r| r.path == "/pagerduty" && r.body["event_action"] == event_action)
            .map(|r| r.body)
            .find(|b| {
                b["payload"]["summary"]
                    .as_str()
                    .is_some_and(|s| s.starts_with(alertname))
            })
    }
}

fn read_request(stream: TcpStream) -> Option<Received> {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    reader.read_line(&mut request_line).ok()?;
    let path = request_line.split_whitespace().nth(1)?.to_owned();
    let mut length = 0;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().ok()?;
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    let mut stream = reader.into_inner();
    stream
        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        .ok()?;
    let body = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Json::String(String::from_utf8_lossy(&body).into_owned()));
    Some(Received { path, body })
}

// --- a real Alertmanager -------------------------------------------------------------------------

/// `prometheus-alertmanager` on a free loopback port, with its own storage and no gossip cluster;
/// killed on drop.
struct Alertmanager {
    child: Child,
    address: SocketAddr,
    dir: tempfile::TempDir,
}

impl Alertmanager {
    fn start(config: &str) -> Alertmanager {
        let binary = require_tool("prometheus-alertmanager");
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("alertmanager.yml");
        std::fs::write(&config_path, config).unwrap();
        let address = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let log = std::fs::File::create(dir.path().join("alertmanager.log")).unwrap();
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={address}"))
            .arg("--cluster.listen-address=")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus-alertmanager");
        let mut alertmanager = Alertmanager {
            child,
            address,
            dir,
        };
        wait_for("Alertmanager to be ready", Duration::from_secs(60), || {
            if let Ok(Some(status)) = alertmanager.child.try_wait() {
                panic!("alertmanager exited ({status}):\n{}", alertmanager.log());
            }
            http(address, "GET", "/-/ready", b"")
                .ok()
                .filter(|(status, _)| *status == 200)
        });
        alertmanager
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("alertmanager.log")).unwrap_or_default()
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The shipped alertmanager.yml, pointed at this test (the mechanical rewrite an operator does by
/// hand): the placeholder webhook host becomes `webhook` (paths kept), PagerDuty reads its key
/// from `routing_key_file` and posts to `webhook`'s `/pagerduty` instead of PagerDuty's API (so
/// nothing leaves the machine), and the grouping waits shrink from 30s / 5m to 1s.
fn test_alertmanager_config(shipped: &str, webhook: SocketAddr, routing_key_file: &Path) -> String {
    let mut config: Yaml = serde_yaml::from_str(shipped).expect("alertmanager.yml is YAML");
    config["route"]["group_wait"] = "1s".into();
    config["route"]["group_interval"] = "1s".into();
    let receivers = config["receivers"]
        .as_sequence_mut()
        .expect("alertmanager.yml has receivers");
    for receiver in receivers {
        if let Some(webhooks) = receiver
            .get_mut("webhook_configs")
            .and_then(Yaml::as_sequence_mut)
        {
            for webhook_config in webhooks {
                let url = webhook_config["url"].as_str().expect("webhook url");
                let path = url.strip_prefix(WEBHOOK_PLACEHOLDER).unwrap_or_else(|| {
                    panic!("webhook url {url} is not the documented placeholder")
                });
                webhook_config["url"] = format!("http://{webhook}{path}").into();
            }
        }
        if let Some(pagerduty) = receiver
            .get_mut("pagerduty_configs")
            .and_then(Yaml::as_sequence_mut)
        {
            for pagerduty_config in pagerduty {
                assert!(
                    pagerduty_config.get("routing_key_file").is_some(),
                    "PagerDuty reads its key from routing_key_file"
                );
                pagerduty_config["routing_key_file"] =
                    routing_key_file.display().to_string().into();
                pagerduty_config["url"] = format!("http://{webhook}/pagerduty").into();
            }
        }
    }
    serde_yaml::to_string(&config).unwrap()
}

/// Polls `probe` until it returns `Some`; on timeout panics with everything needed to see why.
#[allow(
    clippy::disallowed_methods,
    reason = "a deadline for real processes (Prometheus, Alertmanager) in real time"
)]
fn await_or_explain<T>(
    what: &str,
    timeout: Duration,
    explain: impl Fn() -> String,
    mut probe: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        if Instant::now() > deadline {
            panic!(
                "timed out after {timeout:?} waiting for {what}\n{}",
                explain()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn lag_pages_through_pagerduty_and_the_webhook_then_resolves_when_the_load_is_removed() {
    let webhook = WebhookReceiver::start();
    let secrets = tempfile::tempdir().unwrap();
    let routing_key_file = secrets.path().join("pagerduty-routing-key");
    // One line with its newline, as an operator writes it.
    std::fs::write(&routing_key_file, "test-routing-key\n").unwrap();
    let alertmanager = Alertmanager::start(&test_alertmanager_config(
        &read_repo_file("alerts/alertmanager.yml"),
        webhook.address,
        &routing_key_file,
    ));

    // The exporter really lags: its lag counter is served and keeps growing.
    let lagging = Exporter::start(LAGGING);
    let address = lagging.address;
    let lagged = wait_for("the consumer to lag", Duration::from_secs(30), || {
        sample(&lagging.scrape(), LAG_SERIES).filter(|v| *v > 0.0)
    });
    wait_for("the lag to keep growing", Duration::from_secs(30), || {
        sample(&lagging.scrape(), LAG_SERIES).filter(|v| *v > lagged)
    });

    let prometheus_config = format!(
        r#"global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files: [recording.yml, alerts.yml]
alerting:
  alertmanagers:
    - static_configs:
        - targets: ["{alertmanager}"]
scrape_configs:
  - job_name: p2p-exporter
    static_configs:
      - targets: ["{address}"]
"#,
        alertmanager = alertmanager.address,
    );
    let prometheus = Prometheus::start(
        &prometheus_config,
        &[
            (
                "recording.yml",
                scale_windows(&read_repo_file("alerts/rules/recording.yml")),
            ),
            (
                "alerts.yml",
                scale_windows(&read_repo_file("alerts/rules/alerts.yml")),
            ),
        ],
    );
    let explain = || {
        format!(
            "received: {:#?}\nALERTS: {:?}\nalertmanager log:\n{}\nprometheus log:\n{}",
            webhook.all(),
            prometheus.query("ALERTS"),
            alertmanager.log(),
            prometheus.log()
        )
    };
    let minute = Duration::from_secs(60);

    // The page reaches the on-call webhook, with the labels and annotations of the rule...
    let page = await_or_explain("the page at the webhook", minute, explain, || {
        webhook.alert("/page", "P2PEventLagHigh", "firing")
    });
    let instance = address.to_string();
    assert_eq!(page["labels"]["severity"], "critical");
    assert_eq!(page["labels"]["job"], "p2p-exporter");
    assert_eq!(page["labels"]["instance"], instance.as_str());
    assert_eq!(
        page["annotations"]["summary"],
        format!("P2P event loop on {instance} is dropping more than 1% of peer events.")
    );
    assert_eq!(
        page["annotations"]["runbook_url"],
        format!("{}#p2peventlaghigh", runbook_url())
    );
    assert!(
        page["annotations"]["description"]
            .as_str()
            .unwrap()
            .contains("Lagging subscribers: consumer ("),
        "the description names the lagging subscriber: {page}"
    );
    // ...and PagerDuty, with the key read from routing_key_file.
    let trigger = await_or_explain("the PagerDuty trigger", minute, explain, || {
        webhook.pagerduty("P2PEventLagHigh", "trigger")
    });
    assert_eq!(trigger["routing_key"], "test-routing-key");
    assert_eq!(trigger["payload"]["severity"], "critical");

    // The 20s duplicate ratio is far over 30%: the decision ticket goes to the ticket webhook.
    let ticket = await_or_explain("the decision ticket", minute, explain, || {
        webhook.alert("/ticket", "P2PDecisionDeduplicate", "firing")
    });
    assert_eq!(ticket["labels"]["severity"], "warning");
    assert_eq!(ticket["labels"]["instance"], instance.as_str());

    // Remove the load: the exporter restarts on the same address with a healthy workload. Its
    // counters start again from zero, which the rules take as a counter reset, not as lag.
    drop(lagging);
    let healthy = Exporter::start_on(address, HEALTHY);
    await_or_explain(
        "the page to resolve at the webhook",
        minute,
        explain,
        || webhook.alert("/page", "P2PEventLagHigh", "resolved"),
    );
    await_or_explain("the PagerDuty resolve", minute, explain, || {
        webhook.pagerduty("P2PEventLagHigh", "resolve")
    });
    // Once the window holds only the new process, the worst lag ratio is exactly zero, and the
    // page has not come back.
    await_or_explain("a lag ratio of exactly 0", minute, explain, || {
        prometheus
            .scalar("instance:p2p_event_channel_lag:max_ratio_rate5m")
            .filter(|ratio| *ratio == 0.0)
    });
    assert_eq!(
        sample(&healthy.scrape(), LAG_SERIES),
        Some(0.0),
        "the healthy consumer never lagged"
    );
    assert!(
        prometheus
            .query(r#"ALERTS{alertname="P2PEventLagHigh"}"#)
            .is_empty(),
        "{}",
        explain()
    );

    // Each severity reached only its receivers.
    for received in webhook.all() {
        let severities: Vec<&str> = match received.path.as_str() {
            "/pagerduty" => vec![received.body["payload"]["severity"].as_str().unwrap()],
            _ => received.body["alerts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["labels"]["severity"].as_str().unwrap())
                .collect(),
        };
        let expected = match received.path.as_str() {
            "/page" | "/pagerduty" => "critical",
            "/ticket" => "warning",
            other => panic!("a notification to an unknown path {other}"),
        };
        assert!(
            severities.iter().all(|s| *s == expected),
            "{} got {severities:?}",
            received.path
        );
    }
}
