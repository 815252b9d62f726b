//! Helpers shared by the integration tests: the exporter binary, real Prometheus, a tiny HTTP
//! client, and exposition-format parsing.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Path of an external tool the tests run for real; fails with how to get it.
pub fn require_tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!("{name} is not on PATH: run ./scripts/test.sh, which installs it from Debian's packages")
        })
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `probe` every 100 ms until it returns `Some`, or panics with `what` after `timeout`.
#[allow(
    clippy::disallowed_methods,
    reason = "a deadline for real processes in real time"
)]
pub fn wait_for<T>(what: &str, timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A minimal HTTP/1.1 client: one request per connection, plain text.
pub fn http(
    address: SocketAddr,
    method: &str,
    path: &str,
    body: &[u8],
) -> std::io::Result<(u16, String)> {
    Client::default().request(address, method, path, body)
}

/// [`http`] with `timeout` for connecting and for each read.
pub fn http_within(
    address: SocketAddr,
    method: &str,
    path: &str,
    body: &[u8],
    timeout: Duration,
) -> std::io::Result<(u16, String)> {
    Client::default()
        .within(timeout)
        .request(address, method, path, body)
}

/// The status, head and body of an HTTP/1.1 response read to its end.
pub fn response(raw: &[u8]) -> (u16, String, String) {
    let text = String::from_utf8_lossy(raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    (status, head.to_owned(), body)
}

/// How a test reaches a server: plain HTTP, or HTTPS trusting one CA (for a server whose
/// certificate names 127.0.0.1), with or without basic auth.
#[derive(Clone, Default)]
pub struct Client {
    tls: Option<Arc<rustls::ClientConfig>>,
    authorization: Option<String>,
    /// For connecting (at most 5 s) and for each read; 30 s when unset.
    timeout: Option<Duration>,
}

impl Client {
    pub fn https(pki: &Pki) -> Client {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(pki.ca_der.clone()).unwrap();
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        Client {
            tls: Some(Arc::new(config)),
            ..Client::default()
        }
    }

    pub fn within(self, timeout: Duration) -> Client {
        Client {
            timeout: Some(timeout),
            ..self
        }
    }

    pub fn basic_auth(self, user: &str, password: &str) -> Client {
        use base64::Engine as _;
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        Client {
            authorization: Some(format!("Basic {token}")),
            ..self
        }
    }

    /// One request on a new connection; the status and the (de-chunked) body.
    pub fn request(
        &self,
        address: SocketAddr,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> std::io::Result<(u16, String)> {
        let timeout = self.timeout.unwrap_or(Duration::from_secs(30));
        let stream = TcpStream::connect_timeout(&address, timeout.min(Duration::from_secs(5)))?;
        stream.set_read_timeout(Some(timeout))?;
        match &self.tls {
            None => self.exchange(stream, address, method, path, body),
            Some(config) => {
                let name = rustls::pki_types::ServerName::from(address.ip());
                let connection = rustls::ClientConnection::new(Arc::clone(config), name)
                    .map_err(std::io::Error::other)?;
                let tls = rustls::StreamOwned::new(connection, stream);
                self.exchange(tls, address, method, path, body)
            }
        }
    }

    fn exchange(
        &self,
        mut stream: impl Read + Write,
        address: SocketAddr,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> std::io::Result<(u16, String)> {
        let authorization = self
            .authorization
            .as_ref()
            .map(|value| format!("Authorization: {value}\r\n"))
            .unwrap_or_default();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n{authorization}Content-Length: {}\r\nContent-Type: application/x-www-form-urlencoded\r\n\r\n",
            body.len()
        )?;
        stream.write_all(body)?;
        stream.flush()?;
        let mut raw = Vec::new();
        match stream.read_to_end(&mut raw) {
            // A TLS peer that closes without close_notify has still sent the whole response.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
            other => {
                other?;
            }
        }
        let (status, _, body) = response(&raw);
        Ok((status, body))
    }
}

/// A CA made for one test, and a server certificate it signed for 127.0.0.1 and localhost.
pub struct Pki {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
    ca_der: rustls::pki_types::CertificateDer<'static>,
}

impl Pki {
    pub fn new() -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "p2p test CA");
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        Pki {
            ca_pem: ca.pem(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            ca_der: ca.der().clone(),
        }
    }

    /// Writes `ca.pem`, `server.crt` and `server.key` into `dir`.
    pub fn write_to(&self, dir: &Path) {
        std::fs::write(dir.join("ca.pem"), &self.ca_pem).unwrap();
        std::fs::write(dir.join("server.crt"), &self.cert_pem).unwrap();
        std::fs::write(dir.join("server.key"), &self.key_pem).unwrap();
    }
}

pub fn get(address: SocketAddr, path: &str) -> (u16, String) {
    http(address, "GET", path, b"").unwrap_or_else(|e| panic!("GET http://{address}{path}: {e}"))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

pub fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The value of the sample `series` (name with labels exactly as exposed, e.g.
/// `p2p_messages_total{type="inv"}`) in Prometheus text exposition.
pub fn sample(exposition: &str, series: &str) -> Option<f64> {
    exposition.lines().find_map(|line| {
        let rest = line.strip_prefix(series)?;
        let value = rest.strip_prefix(' ')?;
        value.split_whitespace().next()?.parse().ok()
    })
}

/// One line of text exposition.
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// Every sample line, skipping comments.
pub fn samples(exposition: &str) -> Vec<Sample> {
    exposition
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("sample line has a value");
            let (name, labels) = match series.split_once('{') {
                Some((name, labels)) => (name, parse_labels(labels.trim_end_matches('}'))),
                None => (series, Vec::new()),
            };
            Sample {
                name: name.to_owned(),
                labels,
                value: value.parse().unwrap_or(f64::NAN),
            }
        })
        .collect()
}

fn parse_labels(text: &str) -> Vec<(String, String)> {
    let mut labels = Vec::new();
    let mut rest = text;
    while let Some((name, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        value.push(match escaped {
                            'n' => '\n',
                            other => other,
                        });
                    }
                }
                '"' => {
                    end = i + 1;
                    break;
                }
                other => value.push(other),
            }
        }
        labels.push((name.trim_start_matches(',').trim().to_owned(), value));
        rest = &after[end..];
    }
    labels
}

/// Sends SIGTERM (from the test itself: no `kill` binary needed) and waits up to a minute for
/// the exit.
fn terminate(child: &mut Child, what: &str) -> std::process::ExitStatus {
    let pid = child.id() as libc::pid_t;
    // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
    assert_eq!(
        unsafe { libc::kill(pid, libc::SIGTERM) },
        0,
        "SIGTERM to {pid}"
    );
    wait_for(&format!("{what} to exit"), Duration::from_secs(60), || {
        child.try_wait().unwrap()
    })
}

/// The exporter binary, started on a free loopback port; killed on drop.
pub struct Exporter {
    pub child: Child,
    pub address: SocketAddr,
    stderr_lines: mpsc::Receiver<String>,
}

impl Exporter {
    /// Starts `p2p-exporter --listen 127.0.0.1:0 --log-format json ARGS` and waits for it to listen.
    pub fn start(args: &[&str]) -> Exporter {
        Exporter::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), args)
    }

    /// Like [`Exporter::start`], but listening on `listen`. Restarting on the same address keeps
    /// Prometheus's `instance` label, as a real sidecar restart does (counters back to zero).
    pub fn start_on(listen: SocketAddr, args: &[&str]) -> Exporter {
        Exporter::spawn(Exporter::command(listen, args))
    }

    /// Like [`Exporter::start`], with environment variables set for it.
    pub fn start_with_env(args: &[&str], env: &[(&str, String)]) -> Exporter {
        let mut command = Exporter::command(SocketAddr::from(([127, 0, 0, 1], 0)), args);
        command.envs(env.iter().map(|(k, v)| (k, v)));
        Exporter::spawn(command)
    }

    /// Like [`Exporter::start`], with at most `descriptors` open files (`ulimit -n`).
    pub fn start_with_descriptors(descriptors: u64, args: &[&str]) -> Exporter {
        use std::os::unix::process::CommandExt;
        let mut command = Exporter::command(SocketAddr::from(([127, 0, 0, 1], 0)), args);
        // SAFETY: setrlimit is async-signal-safe and touches no memory of the parent.
        unsafe {
            command.pre_exec(move || {
                let limit = libc::rlimit {
                    rlim_cur: descriptors,
                    rlim_max: descriptors,
                };
                match libc::setrlimit(libc::RLIMIT_NOFILE, &limit) {
                    0 => Ok(()),
                    _ => Err(std::io::Error::last_os_error()),
                }
            });
        }
        Exporter::spawn(command)
    }

    fn command(listen: SocketAddr, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_p2p-exporter"));
        command
            .arg("--listen")
            .arg(listen.to_string())
            .args(["--log-format", "json"])
            .args(args);
        command
    }

    fn spawn(mut command: Command) -> Exporter {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start p2p-exporter");
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let address = loop {
            let line = rx
                .recv_timeout(Duration::from_secs(30))
                .expect("p2p-exporter printed no 'listening' line within 30 s");
            let record: serde_json::Value = match serde_json::from_str(&line) {
                Ok(record) => record,
                Err(_) => continue,
            };
            if record["fields"]["message"] == "listening" {
                break record["fields"]["address"]
                    .as_str()
                    .expect("listening line has an address")
                    .parse()
                    .unwrap();
            }
        };
        Exporter {
            child,
            address,
            stderr_lines: rx,
        }
    }

    pub fn scrape(&self) -> String {
        let (status, body) = get(self.address, "/metrics");
        assert_eq!(status, 200, "GET /metrics");
        body
    }

    pub fn value(&self, series: &str) -> f64 {
        sample(&self.scrape(), series).unwrap_or_else(|| panic!("{series} is not served"))
    }

    /// Sends SIGTERM (from the test itself: no `kill` binary needed) and waits for the exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        terminate(&mut self.child, "the exporter")
    }

    /// Log lines printed since the last call.
    pub fn drain_log(&self) -> Vec<String> {
        self.stderr_lines.try_iter().collect()
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A real Prometheus on a free loopback port, with its own data directory; killed on drop.
pub struct Prometheus {
    pub child: Child,
    pub address: SocketAddr,
    pub dir: tempfile::TempDir,
    args: Vec<String>,
    client: Client,
}

impl Prometheus {
    /// `config` is a complete prometheus.yml; `files` are written next to it first (rule files it
    /// names by relative path).
    pub fn start(config: &str, files: &[(&str, String)]) -> Prometheus {
        Prometheus::start_with(config, files, &[], Client::default())
    }

    /// Like [`Prometheus::start`], with extra flags (`--enable-feature=agent` keeps a write-ahead
    /// log instead of a TSDB), reached through `client` (a `--web.config.file` with TLS or basic
    /// auth covers every endpoint, readiness included).
    pub fn start_with(
        config: &str,
        files: &[(&str, String)],
        args: &[&str],
        client: Client,
    ) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        for (name, contents) in files {
            std::fs::write(dir.path().join(name), contents).unwrap();
        }
        std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
        let address = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let storage = if args.contains(&"--enable-feature=agent") {
            "--storage.agent.path"
        } else {
            "--storage.tsdb.path"
        };
        let mut all = vec![
            format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ),
            format!("{storage}={}", dir.path().join("data").display()),
            format!("--web.listen-address={address}"),
            "--web.enable-lifecycle".to_owned(),
        ];
        all.extend(args.iter().map(|a| (*a).to_owned()));
        let child = Prometheus::spawn(dir.path(), &all);
        let prometheus = Prometheus {
            child,
            address,
            dir,
            args: all,
            client,
        };
        prometheus.wait_ready();
        prometheus
    }

    fn spawn(dir: &Path, args: &[String]) -> Child {
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(dir.join("prometheus.log"))
            .unwrap();
        Command::new(require_tool("prometheus"))
            .current_dir(dir)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus")
    }

    fn wait_ready(&self) {
        wait_for("Prometheus to be ready", Duration::from_secs(60), || {
            self.client
                .request(self.address, "GET", "/-/ready", b"")
                .ok()
                .filter(|(status, _)| *status == 200)
        });
    }

    /// Stops it with SIGTERM (a clean shutdown, as an operator's restart) and waits for the exit.
    pub fn stop(&mut self) {
        terminate(&mut self.child, "Prometheus");
    }

    /// Starts it again after [`Prometheus::stop`], with the same flags, port and data.
    pub fn restart(&mut self) {
        self.child = Prometheus::spawn(self.dir.path(), &self.args);
        self.wait_ready();
    }

    /// Its own metrics (`/metrics`), as text exposition.
    pub fn metrics(&self) -> String {
        let (status, text) = self
            .client
            .request(self.address, "GET", "/metrics", b"")
            .unwrap_or_else(|e| panic!("GET /metrics of Prometheus: {e}"));
        assert_eq!(status, 200, "GET /metrics of Prometheus: {text}");
        text
    }

    /// Runs an instant query; returns the `data.result` array.
    pub fn query(&self, promql: &str) -> Vec<serde_json::Value> {
        self.instant(promql, &format!("query={}", url_encode(promql)))
    }

    /// Runs an instant query evaluated at `time` (Unix seconds); returns the `data.result` array.
    pub fn query_at(&self, promql: &str, time: f64) -> Vec<serde_json::Value> {
        self.instant(promql, &format!("query={}&time={time}", url_encode(promql)))
    }

    fn instant(&self, promql: &str, body: &str) -> Vec<serde_json::Value> {
        let (status, text) = self
            .client
            .request(self.address, "POST", "/api/v1/query", body.as_bytes())
            .unwrap_or_else(|e| panic!("query {promql}: {e}"));
        let reply: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("query {promql}: status {status}, {e}: {text}"));
        assert_eq!(reply["status"], "success", "query {promql}: {text}");
        reply["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The first sample's value of an instant query, if any.
    pub fn scalar(&self, promql: &str) -> Option<f64> {
        self.query(promql)
            .first()
            .and_then(|r| r["value"][1].as_str().and_then(|v| v.parse().ok()))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How a run of the exporter binary ended, with its peak memory.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Measured {
    /// The exit code; `None` when a signal ended it.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// The child's peak resident set (`ru_maxrss` from wait4), in bytes.
    pub max_rss: u64,
}

/// Set for the launcher: the exporter's arguments (JSON) and the file for its [`Measured`].
const LAUNCH_ARGS: &str = "P2P_TEST_LAUNCH_ARGS";
const LAUNCH_OUT: &str = "P2P_TEST_LAUNCH_OUT";

/// Runs `p2p-exporter ARGS` to its end and measures its peak resident memory.
///
/// Linux counts in a child's `ru_maxrss` the peak of the memory it was spawned from (exec records
/// the old address space's high-water mark), and this test process is large and runs many tests
/// at once. So a fresh, small process spawns the exporter: this test binary, running only
/// [`measure_launcher`].
pub fn run_measured(args: &[&str]) -> Measured {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("measured.json");
    let launcher = Command::new(std::env::current_exe().unwrap())
        .args(["support::measure_launcher", "--exact", "--test-threads=1"])
        .env(LAUNCH_ARGS, serde_json::to_string(args).unwrap())
        .env(LAUNCH_OUT, &out)
        .stdin(Stdio::null())
        .output()
        .expect("start the launcher");
    assert!(launcher.status.success(), "{launcher:?}");
    serde_json::from_slice(&std::fs::read(&out).expect("the launcher's result")).unwrap()
}

/// The launcher of [`run_measured`]; does nothing in an ordinary test run.
#[test]
fn measure_launcher() {
    let (Some(args), Some(out)) = (
        std::env::var(LAUNCH_ARGS).ok(),
        std::env::var_os(LAUNCH_OUT),
    ) else {
        return;
    };
    let args: Vec<String> = serde_json::from_str(&args).unwrap();
    let measured = spawn_measured(&args);
    std::fs::write(out, serde_json::to_vec(&measured).unwrap()).unwrap();
}

fn spawn_measured(args: &[String]) -> Measured {
    let mut child = Command::new(env!("CARGO_BIN_EXE_p2p-exporter"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start p2p-exporter");
    let read_all = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let stdout = read_all(Box::new(child.stdout.take().unwrap()));
    let stderr = read_all(Box::new(child.stderr.take().unwrap()));
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value of the plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 on our own child, with pointers to live locals. The child is reaped here, so
    // `child` must not be waited for again (it is only dropped, which does not wait).
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid, "wait4: {}", std::io::Error::last_os_error());
    drop(child);
    Measured {
        code: libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status)),
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
        // Linux reports ru_maxrss in KiB.
        max_rss: u64::try_from(usage.ru_maxrss).unwrap_or(0) * 1024,
    }
}
