//! The sidecar on a host the team does not run: TLS and basic auth from a web config file,
//! scraped by a real Prometheus; mutual TLS; bad config files; slow clients and descriptor
//! exhaustion; the tap's token file and its loopback rule. Certificates are made here, and
//! everything runs on loopback.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::support::{
    get, http, http_within, repo_root, response, sample, wait_for, Exporter, Prometheus,
};

const USER: &str = "prometheus";
const PASSWORD: &str = "correct horse battery staple";

/// A certificate authority made for one test, and the files it wrote.
struct Pki {
    dir: tempfile::TempDir,
    issuer: Issuer<'static, KeyPair>,
    ca_pem: String,
}

impl Pki {
    fn new(name: &str) -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let ca_pem = params.self_signed(&key).unwrap().pem();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), &ca_pem).unwrap();
        Pki {
            dir,
            issuer: Issuer::new(params, key),
            ca_pem,
        }
    }

    /// A leaf certificate and key for `usage`, as PEM.
    fn leaf(&self, usage: ExtendedKeyUsagePurpose) -> (String, String) {
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// Writes the server's certificate and key next to the CA, and `web.yml` with `body` after
    /// a tls_server_config naming them (relative paths: the file's directory).
    fn web_config(&self, tls_extra: &str, rest: &str) -> std::path::PathBuf {
        let (cert, key) = self.leaf(ExtendedKeyUsagePurpose::ServerAuth);
        std::fs::write(self.dir.path().join("server.pem"), cert).unwrap();
        std::fs::write(self.dir.path().join("server-key.pem"), key).unwrap();
        let path = self.dir.path().join("web.yml");
        std::fs::write(
            &path,
            format!("tls_server_config:\n  cert_file: server.pem\n  key_file: server-key.pem\n{tls_extra}{rest}"),
        )
        .unwrap();
        path
    }
}

fn users() -> String {
    let hash = bcrypt::hash(PASSWORD, 10).unwrap();
    format!("basic_auth_users:\n  {USER}: '{hash}'\n")
}

/// A TLS client trusting `ca_pem`, presenting `identity` (certificate and key PEM) if given.
fn client(ca_pem: &str, identity: Option<(String, String)>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
        .unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    Arc::new(match identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
    })
}

/// GET `path` over TLS; (status, head, body).
fn https_get(
    address: SocketAddr,
    config: &Arc<rustls::ClientConfig>,
    path: &str,
    credentials: Option<(&str, &str)>,
) -> std::io::Result<(u16, String, String)> {
    let name = ServerName::IpAddress(address.ip().into());
    let connection = rustls::ClientConnection::new(Arc::clone(config), name)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let tcp = TcpStream::connect_timeout(&address, Duration::from_secs(5))?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut tls = rustls::StreamOwned::new(connection, tcp);
    let authorization = credentials
        .map(|(user, password)| {
            let encoded =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            format!("Authorization: Basic {encoded}\r\n")
        })
        .unwrap_or_default();
    write!(
        tls,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n{authorization}\r\n"
    )?;
    let mut raw = Vec::new();
    match tls.read_to_end(&mut raw) {
        Ok(_) => {}
        // A peer that closes without close_notify after a whole response.
        Err(err) if err.kind() == ErrorKind::UnexpectedEof && !raw.is_empty() => {}
        Err(err) => return Err(err),
    }
    Ok(response(&raw))
}

fn closed(exposition: &str, reason: &str) -> f64 {
    sample(
        exposition,
        &format!("p2p_exporter_http_connections_closed_total{{reason=\"{reason}\"}}"),
    )
    .unwrap_or_else(|| panic!("closed{{reason={reason}}} is not served"))
}

#[test]
fn prometheus_scrapes_over_tls_with_basic_auth_and_a_wrong_password_gets_401() {
    let pki = Pki::new("scrape CA");
    let config = pki.web_config("", &users());
    let exporter = Exporter::start(&["--web.config.file", config.to_str().unwrap()]);
    let address = exporter.address;
    let tls = client(&pki.ca_pem, None);

    let (status, _, body) = https_get(address, &tls, "/metrics", Some((USER, PASSWORD))).unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        sample(&body, r#"p2p_event_channel_capacity{channel="events"}"#),
        Some(2048.0)
    );
    for credentials in [None, Some((USER, "wrong")), Some(("nobody", PASSWORD))] {
        let (status, head, _) = https_get(address, &tls, "/metrics", credentials).unwrap();
        assert_eq!(status, 401, "{credentials:?}");
        assert!(
            head.lines().any(|l| l
                .to_ascii_lowercase()
                .starts_with("www-authenticate: basic ")),
            "{credentials:?}: {head}"
        );
    }

    // Plain HTTP to the TLS port: no response, no metrics.
    match http(address, "GET", "/metrics", b"") {
        Err(_) => {}
        Ok((status, body)) => {
            assert_eq!(status, 0, "{body}");
            assert!(!body.contains("p2p_"), "{body}");
        }
    }
    wait_for(
        "the plain connection counted",
        Duration::from_secs(10),
        || {
            let (_, _, body) = https_get(address, &tls, "/metrics", Some((USER, PASSWORD))).ok()?;
            (closed(&body, "tls_error") == 1.0).then_some(())
        },
    );

    let target = address.to_string();
    let job = |name: &str, password: &str| {
        format!(
            "  - job_name: {name}\n    scheme: https\n    tls_config: {{ca_file: ca.pem}}\n    basic_auth: {{username: {USER}, password: '{password}'}}\n    static_configs: [{{targets: ['{target}']}}]\n"
        )
    };
    let prometheus = Prometheus::start(
        &format!(
            "global: {{scrape_interval: 1s, scrape_timeout: 900ms}}\nscrape_configs:\n{}{}",
            job("tls", PASSWORD),
            job("wrong-password", "wrong")
        ),
        &[("ca.pem", pki.ca_pem.clone())],
    );
    wait_for(
        "Prometheus to scrape the capacity over TLS",
        Duration::from_secs(60),
        || {
            (prometheus.scalar(r#"p2p_event_channel_capacity{job="tls",channel="events"}"#)
                == Some(2048.0))
            .then_some(())
        },
    );
    assert_eq!(prometheus.scalar(r#"up{job="tls"}"#), Some(1.0));
    let last_error = wait_for(
        "the wrong password's target to be down",
        Duration::from_secs(60),
        || {
            let (_, text) = get(prometheus.address, "/api/v1/targets");
            let reply: serde_json::Value = serde_json::from_str(&text).ok()?;
            let target = reply["data"]["activeTargets"]
                .as_array()?
                .iter()
                .find(|t| t["labels"]["job"] == "wrong-password")?
                .clone();
            (target["health"] == "down").then(|| target["lastError"].as_str().unwrap().to_owned())
        },
    );
    assert!(last_error.contains("401 Unauthorized"), "{last_error}");
    assert_eq!(prometheus.scalar(r#"up{job="wrong-password"}"#), Some(0.0));
    assert_eq!(
        prometheus.scalar(r#"count(p2p_event_channel_capacity{job="wrong-password"})"#),
        None
    );
}

#[test]
fn mutual_tls_serves_a_client_certificate_of_the_ca_and_refuses_the_rest() {
    let pki = Pki::new("client CA");
    let config = pki.web_config(
        "  client_ca_file: ca.pem\n  client_auth_type: RequireAndVerifyClientCert\n",
        "",
    );
    let exporter = Exporter::start(&["--web.config.file", config.to_str().unwrap()]);
    let address = exporter.address;
    let identity = pki.leaf(ExtendedKeyUsagePurpose::ClientAuth);
    let stranger = Pki::new("another CA").leaf(ExtendedKeyUsagePurpose::ClientAuth);

    let with_cert = client(&pki.ca_pem, Some(identity));
    let (status, _, body) = https_get(address, &with_cert, "/metrics", None).unwrap();
    assert_eq!(status, 200);
    assert!(body.contains("p2p_exporter_build_info"), "{body}");
    for (what, refused) in [
        ("no certificate", client(&pki.ca_pem, None)),
        (
            "another CA's certificate",
            client(&pki.ca_pem, Some(stranger)),
        ),
    ] {
        let result = https_get(address, &refused, "/metrics", None);
        assert!(result.is_err(), "{what}: {result:?}");
    }
    wait_for("both refusals counted", Duration::from_secs(10), || {
        let (_, _, body) = https_get(address, &with_cert, "/metrics", None).ok()?;
        (closed(&body, "tls_error") == 2.0).then_some(())
    });
}

#[test]
fn a_bad_web_config_stops_the_sidecar_with_one_line_and_exit_code_2() {
    let pki = Pki::new("config CA");
    // Writes the certificate and key the cases name.
    pki.web_config("", "");
    let dir = pki.dir.path();
    let tls = "tls_server_config:\n  cert_file: server.pem\n  key_file: server-key.pem\n";
    let cases = [
        ("missing.yml", None, "cannot read it"),
        (
            "no-cert.yml",
            Some(
                "tls_server_config:\n  cert_file: nowhere.pem\n  key_file: server-key.pem\n"
                    .to_owned(),
            ),
            "cert_file",
        ),
        (
            "plain-password.yml",
            Some("basic_auth_users:\n  prometheus: s3cret\n".to_owned()),
            "not a bcrypt hash",
        ),
        (
            "ca-without-policy.yml",
            Some(format!("{tls}  client_ca_file: ca.pem\n")),
            "client_ca_file is set without",
        ),
        (
            "unknown-field.yml",
            Some(format!("{tls}  cipher_suites: [TLS_AES_128_GCM_SHA256]\n")),
            "unknown field `cipher_suites`",
        ),
        (
            "not-yaml.yml",
            Some("tls_server_config: [\n".to_owned()),
            "",
        ),
    ];
    for (name, contents, says) in cases {
        let path = dir.join(name);
        if let Some(contents) = contents {
            std::fs::write(&path, contents).unwrap();
        }
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_p2p-exporter"))
            .args(["--listen", "127.0.0.1:0", "--web.config.file"])
            .arg(&path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{name}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{name}: {stderr}");
        assert!(
            stderr.starts_with(&format!("error: --web.config.file {}: ", path.display())),
            "{name}: {stderr}"
        );
        assert!(stderr.contains(says), "{name}: {stderr}");
    }
}

/// Raises this test process's own descriptor limit to at least `needed`.
fn allow_descriptors(needed: u64) {
    // SAFETY: getrlimit and setrlimit on a local struct.
    unsafe {
        let mut limit: libc::rlimit = std::mem::zeroed();
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        if limit.rlim_cur < needed {
            limit.rlim_cur = needed.min(limit.rlim_max);
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
        }
        assert!(
            limit.rlim_cur >= needed,
            "the test needs {needed} descriptors; the hard limit is {}",
            limit.rlim_max
        );
    }
}

const SLOW_CLIENTS: usize = 1000;
const HEADER_TIMEOUT: Duration = Duration::from_secs(2);

/// 1,000 slowloris connections against a sidecar limited to `descriptors`: every `/metrics`
/// probe during and after the flood is answered, every slow connection is closed by the server
/// within the header timeout (or earlier, evicted), and the counts say so. Returns the
/// exposition after the flood and the probes' latencies.
#[allow(
    clippy::disallowed_methods,
    reason = "deadlines and latencies of real connections in real time"
)]
fn slowloris(exporter: &Exporter) -> (String, Vec<Duration>) {
    allow_descriptors(4 * SLOW_CLIENTS as u64 + 256);
    let address = exporter.address;
    let flooding = Arc::new(AtomicBool::new(true));
    let prober = {
        let flooding = Arc::clone(&flooding);
        std::thread::spawn(move || {
            let mut latencies = Vec::new();
            let mut after = 0;
            // During the flood, then 20 more over the next two seconds.
            while flooding.load(Ordering::Relaxed) || after < 20 {
                if !flooding.load(Ordering::Relaxed) {
                    after += 1;
                }
                let started = Instant::now();
                let (status, body) =
                    http_within(address, "GET", "/metrics", b"", Duration::from_secs(5))
                        .unwrap_or_else(|e| panic!("probe {}: {e}", latencies.len()));
                latencies.push(started.elapsed());
                assert_eq!(status, 200, "{body}");
                assert!(body.contains("p2p_exporter_build_info"), "{body}");
                std::thread::sleep(Duration::from_millis(100));
            }
            latencies
        })
    };
    let mut slow = Vec::with_capacity(SLOW_CLIENTS);
    for i in 0..SLOW_CLIENTS {
        let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("slow connection {i}: {e}"));
        // Part of a request head; the rest never comes.
        let _ = stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: sidecar\r\n");
        slow.push((stream, Instant::now()));
    }
    flooding.store(false, Ordering::Relaxed);
    // One more header line each, a second later: trickling does not extend the limit.
    std::thread::sleep(Duration::from_secs(1));
    for (stream, _) in &mut slow {
        let _ = stream.write_all(b"X-Slow: 1\r\n");
    }
    let latencies = prober.join().expect("every probe answered");
    let margin = Duration::from_secs(10);
    for (i, (mut stream, opened)) in slow.into_iter().enumerate() {
        let deadline = opened + HEADER_TIMEOUT + margin;
        let mut buffer = [0u8; 512];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            stream
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            match stream.read(&mut buffer) {
                Ok(0) => break,
                Ok(_) => continue,
                Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset) => break,
                Err(e) => panic!("slow connection {i} still open {margin:?} past the timeout: {e}"),
            }
        }
    }
    let exposition = wait_for(
        "every slow connection counted as closed",
        Duration::from_secs(10),
        || {
            let (_, body) = get(address, "/metrics");
            let slow = closed(&body, "timeout") + closed(&body, "evicted");
            (slow == SLOW_CLIENTS as f64).then_some(body)
        },
    );
    let mut sorted = latencies.clone();
    sorted.sort();
    eprintln!(
        "slowloris: {} probes, median {:?}, max {:?}; closed by timeout {}, evicted {}",
        sorted.len(),
        sorted[sorted.len() / 2],
        sorted[sorted.len() - 1],
        closed(&exposition, "timeout"),
        closed(&exposition, "evicted"),
    );
    (exposition, latencies)
}

fn accept_errors(exposition: &str, listener: &str, reason: &str) -> f64 {
    sample(
        exposition,
        &format!("p2p_exporter_accept_errors_total{{listener=\"{listener}\",reason=\"{reason}\"}}"),
    )
    .unwrap_or_else(|| panic!("accept errors {listener} {reason} are not served"))
}

#[test]
fn a_thousand_slow_connections_under_1024_descriptors_leave_metrics_answering() {
    let timeout = format!("{}s", HEADER_TIMEOUT.as_secs());
    let exporter = Exporter::start_with_descriptors(1024, &["--web.header-timeout", &timeout]);
    let (exposition, latencies) = slowloris(&exporter);
    assert!(latencies.len() > 20, "{latencies:?}");
    // The default cap (256) kept the newest open until their timeout and closed the oldest.
    assert!(closed(&exposition, "timeout") >= 1.0, "{exposition}");
    assert!(closed(&exposition, "evicted") >= 1.0, "{exposition}");
    assert_eq!(closed(&exposition, "error"), 0.0);
    assert_eq!(
        closed(&exposition, "closed"),
        latencies.len() as f64,
        "each probe closed after its response"
    );
    assert_eq!(accept_errors(&exposition, "http", "descriptors"), 0.0);
    assert_eq!(
        sample(&exposition, "p2p_exporter_http_connections"),
        Some(1.0),
        "only the scrape itself is open"
    );
}

#[test]
fn running_out_of_descriptors_is_counted_and_metrics_and_the_tap_keep_working() {
    let dir = tempfile::tempdir().unwrap();
    let tap = SocketAddr::from(([127, 0, 0, 1], crate::support::free_port()));
    let timeout = format!("{}s", HEADER_TIMEOUT.as_secs());
    // A cap above the descriptor limit: the process runs out before the cap is reached.
    let exporter = Exporter::start_with_descriptors(
        512,
        &[
            "--web.header-timeout",
            &timeout,
            "--web.max-connections",
            "5000",
            "--source",
            "tap",
            "--tap-listen",
            &tap.to_string(),
            "--tap-socket",
            dir.path().join("unused.sock").to_str().unwrap(),
        ],
    );
    let (exposition, _) = slowloris(&exporter);
    assert!(
        accept_errors(&exposition, "http", "descriptors") >= 1.0,
        "{exposition}"
    );
    assert!(closed(&exposition, "evicted") >= 1.0, "{exposition}");
    // The tap still accepts: a connection that closes before its hello is counted as such.
    drop(TcpStream::connect(tap).unwrap());
    wait_for(
        "the tap to count the connection",
        Duration::from_secs(10),
        || {
            (exporter.value(r#"p2p_tap_connections_total{result="closed_before_hello"}"#) == 1.0)
                .then_some(())
        },
    );
}

fn write_private(path: &Path, text: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn the_tap_token_file_admits_the_node_with_that_token_and_refuses_another() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("tap-token");
    write_private(&token_file, "n0de-s3cret\n", 0o600);
    let tap = SocketAddr::from(([127, 0, 0, 1], crate::support::free_port()));
    let exporter = Exporter::start(&[
        "--source",
        "tap",
        "--tap-listen",
        &tap.to_string(),
        "--tap-token-file",
        token_file.to_str().unwrap(),
    ]);
    let node = |token: String| {
        let mut config = p2p_tap::TapConfig::new(tap);
        config.token = Some(token);
        config.sample_resources = false;
        p2p_tap::Tap::new(config)
    };
    let right = node(p2p_tap::read_token_file(&token_file).unwrap());
    wait_for("the node with the token", Duration::from_secs(30), || {
        (exporter.value("p2p_tap_connected") == 1.0).then_some(())
    });
    let wrong = node("n0de-s3cret\n".to_owned());
    wait_for("the wrong token refused", Duration::from_secs(30), || {
        (exporter.value(r#"p2p_tap_connections_total{result="refused_token"}"#) >= 1.0)
            .then_some(())
    });
    let exposition = exporter.scrape();
    assert_eq!(
        sample(
            &exposition,
            r#"p2p_tap_connections_total{result="accepted"}"#
        ),
        Some(1.0)
    );
    assert_eq!(sample(&exposition, "p2p_tap_connected"), Some(1.0));
    wrong.shutdown(Duration::from_secs(5));
    right.shutdown(Duration::from_secs(5));
}

#[test]
fn a_tap_beyond_loopback_or_a_bad_token_file_is_one_line_and_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    write_private(&empty, "\n", 0o600);
    let public = dir.path().join("public");
    write_private(&public, "s3cret\n", 0o644);
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_p2p-exporter"))
            .args(["--listen", "127.0.0.1:0", "--source", "tap"])
            .args(args)
            .current_dir(repo_root())
            .output()
            .unwrap()
    };
    for (args, says) in [
        (
            vec!["--tap-listen", "0.0.0.0:9731"],
            "the tap is a local protocol",
        ),
        (vec!["--tap-listen", "192.0.2.7:9731"], "listen on loopback"),
        (
            vec![
                "--tap-listen",
                "127.0.0.1:0",
                "--tap-token-file",
                empty.to_str().unwrap(),
            ],
            "holds no token",
        ),
        (
            vec![
                "--tap-listen",
                "127.0.0.1:0",
                "--tap-token-file",
                public.to_str().unwrap(),
            ],
            "every user may read it",
        ),
    ] {
        let output = run(&args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}
