//! Push from nodes the team does not run: the shipped prometheus/agent.yml, central.yml and
//! central-web.yml on real Prometheus 2.42 processes. Three tap-source sidecars, each scraped by
//! its own agent-mode Prometheus, remote-write over TLS with basic auth to one central Prometheus
//! that runs the repository's rules. The test sends each node's counts itself, so the ground truth
//! is exact: the series of every node arrive, the rules evaluate centrally, an outage of the central
//! side loses nothing (the agents' write-ahead logs replay it), and a wrong password writes nothing.

use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use serde_yaml::Value;

use crate::support::{repo_root, sample, samples, wait_for, Client, Exporter, Pki, Prometheus};
use crate::tap::{hello, snapshot, snapshot_frame, tap_exporter};

/// The series whose counts the test sets, so its every value is known.
const SERIES: &str = r#"p2p_events_sent_total{channel="events"}"#;
/// The outage of the central Prometheus, as the requirement states it.
const OUTAGE: Duration = Duration::from_secs(300);
const PASSWORD: &str = "s3cret-of-the-node";

fn shipped(path: &str) -> Value {
    let path = repo_root().join(path);
    serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The value at `path` in a shipped config, which must be there: the test runs the shipped file
/// with only the operator's values (and its intervals) changed.
fn at<'a>(value: &'a mut Value, path: &[&str]) -> &'a mut Value {
    path.iter().fold(value, |value, key| {
        let next = match key.parse::<usize>() {
            Ok(index) => value.get_mut(index),
            Err(_) => value.get_mut(*key),
        };
        next.unwrap_or_else(|| panic!("the shipped config has no {path:?}"))
    })
}

fn set(value: &mut Value, path: &[&str], new: impl Into<Value>) {
    *at(value, path) = new.into();
}

/// A node the test runs: a tap-source sidecar fed by the test, and its agent.
struct Node {
    name: String,
    sidecar: Exporter,
    tap: UnixStream,
    seq: u64,
    /// What the test has sent as `SERIES`: the ground truth.
    sent: u64,
    agent: Prometheus,
    _dir: tempfile::TempDir,
}

impl Node {
    fn start(name: &str, central: SocketAddr, pki: &Pki, password: &str) -> Node {
        let dir = tempfile::tempdir().unwrap();
        // No snapshot for minutes during the outage: a long idle limit keeps the connection.
        let (sidecar, socket) = tap_exporter(dir.path(), &["--tap-idle-timeout", "30m"]);
        let mut tap = UnixStream::connect(&socket).unwrap();
        tap.write_all(&hello(1)).unwrap();
        let mut config = shipped("prometheus/agent.yml");
        set(&mut config, &["global", "scrape_interval"], "1s");
        set(&mut config, &["global", "scrape_timeout"], "1s");
        let job = at(&mut config, &["scrape_configs", "0", "static_configs", "0"]);
        set(job, &["targets", "0"], sidecar.address.to_string());
        set(job, &["labels", "instance"], name);
        let write = at(&mut config, &["remote_write", "0"]);
        set(write, &["url"], format!("https://{central}/api/v1/write"));
        set(write, &["basic_auth", "username"], name);
        set(write, &["basic_auth", "password_file"], "password");
        set(write, &["tls_config", "ca_file"], "ca.pem");
        // Retries every second once the central side is back, instead of up to 30 s.
        set(write, &["queue_config", "max_backoff"], "1s");
        let agent = Prometheus::start_with(
            &serde_yaml::to_string(&config).unwrap(),
            &[
                ("password", password.to_owned()),
                ("ca.pem", pki.ca_pem.clone()),
            ],
            &["--enable-feature=agent"],
            Client::default(),
        );
        let mut node = Node {
            name: name.to_owned(),
            sidecar,
            tap,
            seq: 0,
            sent: 0,
            agent,
            _dir: dir,
        };
        node.send(0);
        node
    }

    /// The node's tap reports `sent` events in total (a cumulative snapshot, served as it is).
    fn send(&mut self, sent: u64) {
        self.tap
            .write_all(&snapshot_frame(&snapshot(self.seq, sent)))
            .unwrap();
        self.seq += 1;
        self.sent = sent;
        wait_for(
            &format!("{} to serve {SERIES} = {sent}", self.name),
            Duration::from_secs(30),
            || (sample(&self.sidecar.scrape(), SERIES) == Some(sent as f64)).then_some(()),
        );
    }

    /// The sum of one family of the agent's own metrics.
    fn agent_metric(&self, name: &str) -> f64 {
        samples(&self.agent.metrics())
            .iter()
            .filter(|s| s.name == name)
            .map(|s| s.value)
            .sum()
    }
}

/// The shipped central.yml with fast rule evaluation, the repository's rules, and no Alertmanager
/// to reach (a port nothing listens on); the shipped central-web.yml with the test's certificate
/// and users.
fn central(pki: &Pki, users: &[&str]) -> Prometheus {
    let mut config = shipped("prometheus/central.yml");
    set(&mut config, &["global", "evaluation_interval"], "1s");
    set(&mut config, &["rule_files", "0"], "rules-*.yml");
    let nowhere = format!("127.0.0.1:{}", crate::support::free_port());
    set(
        &mut config,
        &[
            "alerting",
            "alertmanagers",
            "0",
            "static_configs",
            "0",
            "targets",
            "0",
        ],
        nowhere.as_str(),
    );
    set(
        &mut config,
        &["scrape_configs", "0", "static_configs", "0", "targets", "0"],
        nowhere.as_str(),
    );
    let mut web = shipped("prometheus/central-web.yml");
    set(&mut web, &["tls_server_config", "cert_file"], "server.crt");
    set(&mut web, &["tls_server_config", "key_file"], "server.key");
    let mut hashes = serde_yaml::Mapping::new();
    for user in users {
        // The lowest cost bcrypt allows: the check runs on every request.
        let hash = bcrypt::hash(PASSWORD, 4).unwrap();
        hashes.insert((*user).into(), hash.into());
    }
    set(&mut web, &["basic_auth_users"], Value::Mapping(hashes));
    let mut files = vec![
        ("web.yml", serde_yaml::to_string(&web).unwrap()),
        ("server.crt", pki.cert_pem.clone()),
        ("server.key", pki.key_pem.clone()),
    ];
    let rules = repo_root().join("alerts/rules");
    let names: Vec<String> = std::fs::read_dir(&rules)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yml"))
        .map(|n| format!("rules-{n}"))
        .collect();
    for name in &names {
        let source = rules.join(name.trim_start_matches("rules-"));
        files.push((name.as_str(), std::fs::read_to_string(source).unwrap()));
    }
    Prometheus::start_with(
        &serde_yaml::to_string(&config).unwrap(),
        &files,
        &[
            "--web.enable-remote-write-receiver",
            "--web.config.file=web.yml",
        ],
        Client::https(pki).basic_auth(users[0], PASSWORD),
    )
}

fn values(result: &[serde_json::Value]) -> Vec<(f64, f64)> {
    result
        .first()
        .and_then(|r| r["values"].as_array())
        .into_iter()
        .flatten()
        .map(|pair| {
            (
                pair[0].as_f64().unwrap(),
                pair[1].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect()
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[allow(
    clippy::disallowed_methods,
    reason = "the outage is real time for real processes"
)]
fn sleep_until(deadline: std::time::Instant) {
    std::thread::sleep(deadline.saturating_duration_since(std::time::Instant::now()));
}

#[allow(
    clippy::disallowed_methods,
    reason = "the outage is real time for real processes"
)]
fn now() -> std::time::Instant {
    std::time::Instant::now()
}

#[test]
fn agents_push_over_tls_every_node_arrives_an_outage_replays_and_a_wrong_password_writes_nothing() {
    let pki = Pki::new();
    let names = ["community-node-1", "community-node-2", "community-node-3"];
    let intruder = "community-node-4";
    let mut central = central(&pki, &[names[0], names[1], names[2], intruder]);
    let mut nodes: Vec<Node> = names
        .iter()
        .map(|name| Node::start(name, central.address, &pki, PASSWORD))
        .collect();
    // A known user with a wrong password.
    let wrong = Node::start(intruder, central.address, &pki, "not-the-password");

    // The node's name is its instance; the agent's external label comes along.
    let arrived = |central: &Prometheus, node: &Node| {
        central.scalar(&format!(
            "p2p_events_sent_total{{job=\"p2p-exporter\",instance=\"{}\",network=\"beta-testnet\"}}",
            node.name
        ))
    };
    let until_central_has = |central: &Prometheus, nodes: &[Node]| {
        for node in nodes {
            wait_for(
                &format!("{} = {} centrally", node.name, node.sent),
                Duration::from_secs(120),
                || (arrived(central, node) == Some(node.sent as f64)).then_some(()),
            );
        }
    };
    // Every node's first value (0, so increase() below extrapolates nothing at the start).
    until_central_has(&central, &nodes);
    for (i, node) in nodes.iter_mut().enumerate() {
        node.send(100 * (i as u64 + 1));
    }
    until_central_has(&central, &nodes);

    // The recording rules run centrally, per node: no node lags, so each lag ratio is exactly 0.
    let ratios = wait_for(
        "the lag ratio of every node centrally",
        Duration::from_secs(60),
        || {
            let result = central.query("instance:p2p_event_channel_lag:max_ratio_rate5m");
            (result.len() == names.len()).then_some(result)
        },
    );
    let mut instances: Vec<&str> = ratios
        .iter()
        .map(|r| {
            assert_eq!(r["value"][1], "0", "{r}");
            assert_eq!(r["metric"]["job"], "p2p-exporter", "{r}");
            r["metric"]["instance"].as_str().unwrap()
        })
        .collect();
    instances.sort_unstable();
    assert_eq!(instances, names);

    // The testnet's rules run centrally too. The nodes are minutes old, so there is no fleet
    // verdict yet: all of them count as insufficient data, none is covered, no verdict recorded.
    let fleet = wait_for(
        "the testnet's nodes per verdict centrally",
        Duration::from_secs(60),
        || {
            let result = central.query(r#"job:p2p_decision:nodes{verdict="insufficient_data"}"#);
            (result.len() == 1).then_some(result)
        },
    );
    assert_eq!(fleet[0]["value"][1], names.len().to_string(), "{fleet:?}");
    assert_eq!(
        central.query("job:p2p_decision:coverage_ratio")[0]["value"][1],
        "0"
    );
    assert!(central.query("job:p2p_decision:verdict").is_empty());

    // The wrong password: refused (401 is not retried, so the agent counts the samples failed),
    // and nothing of that node is written.
    wait_for(
        "the intruder's samples to fail",
        Duration::from_secs(60),
        || {
            (wrong.agent_metric("prometheus_remote_storage_samples_failed_total") > 0.0)
                .then_some(())
        },
    );
    let (status, _) = Client::https(&pki)
        .basic_auth(intruder, "not-the-password")
        .request(central.address, "POST", "/api/v1/write", b"")
        .unwrap();
    assert_eq!(status, 401);
    let (status, _) = Client::https(&pki)
        .request(central.address, "POST", "/api/v1/write", b"")
        .unwrap();
    assert_eq!(status, 401);
    // The same empty write with the right password passes authentication (and is then refused
    // as no snappy-compressed request): the 401s above are the password's.
    let (status, _) = Client::https(&pki)
        .basic_auth(intruder, PASSWORD)
        .request(central.address, "POST", "/api/v1/write", b"")
        .unwrap();
    assert_eq!(status, 400);
    // Plain text on the TLS port gets no answer from Prometheus' API.
    let plain = crate::support::http(central.address, "GET", "/-/ready", b"");
    assert!(
        plain.as_ref().map_or(true, |(status, _)| *status != 200),
        "{plain:?}"
    );

    // The outage: the central Prometheus is down for 5 minutes while the nodes keep counting.
    let stopped_at = unix_now();
    let outage_start = now();
    central.stop();
    let mut outage_values = Vec::new();
    for step in 1..=2u64 {
        sleep_until(outage_start + OUTAGE * step as u32 / 3);
        for (i, node) in nodes.iter_mut().enumerate() {
            node.send(node.sent + 1000 * step + 7 * (i as u64 + 1));
        }
        outage_values.push((unix_now(), nodes.iter().map(|n| n.sent).collect::<Vec<_>>()));
    }
    for node in &nodes {
        // The agent did try, and holds what it could not send.
        assert!(
            node.agent_metric("prometheus_remote_storage_samples_retried_total") > 0.0
                || node.agent_metric("prometheus_remote_storage_samples_pending") > 0.0,
            "{}: the agent saw no outage",
            node.name
        );
    }
    sleep_until(outage_start + OUTAGE);
    let restarted_at = unix_now();
    central.restart();
    until_central_has(&central, &nodes);

    for (i, node) in nodes.iter().enumerate() {
        let selector = format!(
            "p2p_events_sent_total{{channel=\"events\",instance=\"{}\"}}",
            node.name
        );
        let last: f64 = central.query(&format!("timestamp({selector})"))[0]["value"][1]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        // Evaluated at the last sample over a window reaching back past the first (0): nothing
        // is extrapolated, so increase() is exactly what the node counted.
        let increase = central.query_at(&format!("increase({selector}[20m])"), last);
        assert_eq!(
            increase[0]["value"][1]
                .as_str()
                .unwrap()
                .parse::<f64>()
                .unwrap(),
            node.sent as f64,
            "{}",
            node.name
        );
        // The samples of the outage were written after it, from the agent's write-ahead log:
        // one a second, with no hole, each the value the node had then.
        let raw = values(&central.query_at(&format!("{selector}[20m]"), last));
        let during: Vec<(f64, f64)> = raw
            .iter()
            .copied()
            .filter(|(t, _)| *t > stopped_at + 5.0 && *t < restarted_at - 5.0)
            .collect();
        assert!(
            during.len() as f64 > (restarted_at - stopped_at) / 2.0,
            "{}: {} samples from the outage",
            node.name,
            during.len()
        );
        let widest = during
            .windows(2)
            .map(|w| w[1].0 - w[0].0)
            .fold(0.0, f64::max);
        assert!(
            widest < 5.0,
            "{}: a {widest} s hole in the outage",
            node.name
        );
        for (t, value) in &during {
            let expected = outage_values
                .iter()
                .rev()
                .find(|(sent_at, _)| *sent_at + 2.0 < *t)
                .map_or(100.0 * (i as f64 + 1.0), |(_, sent)| sent[i] as f64);
            let changing = outage_values
                .iter()
                .any(|(sent_at, _)| (*t - *sent_at).abs() <= 2.0);
            assert!(
                changing || *value == expected,
                "{} at {t}: {value}, the node had {expected}",
                node.name
            );
        }
    }

    // Still nothing of the intruder, after its agent retried through the outage.
    assert!(
        central
            .query(&format!("{{instance=\"{intruder}\"}}"))
            .is_empty(),
        "the node with the wrong password was written"
    );
    assert!(wrong.agent_metric("prometheus_remote_storage_samples_failed_total") > 0.0);
}
