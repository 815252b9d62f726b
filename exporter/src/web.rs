//! `--web.config.file`: TLS and basic authentication for the HTTP server, in the format of
//! Prometheus' exporter-toolkit (node_exporter's `web-config.yml`), so one file serves both.
//!
//! Read once at start-up, every file it names included: any error stops the sidecar before it
//! listens. Relative paths are relative to the file's directory, as in exporter-toolkit.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;
use tokio::sync::Semaphore;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    tls_server_config: Option<TlsFile>,
    /// Parsed so a file written for node_exporter is accepted.
    #[serde(default, rename = "http_server_config")]
    _http_server_config: Option<HttpFile>,
    #[serde(default)]
    basic_auth_users: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsFile {
    cert_file: PathBuf,
    key_file: PathBuf,
    #[serde(default)]
    client_ca_file: Option<PathBuf>,
    #[serde(default)]
    client_auth_type: Option<String>,
    #[serde(default)]
    min_version: Option<String>,
    #[serde(default)]
    max_version: Option<String>,
}

/// Accepted for compatibility; the server speaks HTTP/1.1 only, so `http2` changes nothing.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpFile {
    #[serde(default, rename = "http2")]
    _http2: Option<bool>,
}

/// What the web config file asks for.
pub struct WebConfig {
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub auth: Option<Arc<BasicAuth>>,
}

impl WebConfig {
    /// Neither TLS nor authentication: what the sidecar does without `--web.config.file`.
    pub fn none() -> WebConfig {
        WebConfig {
            tls: None,
            auth: None,
        }
    }

    /// Reads and checks `path` and every file it names. The error is one line.
    pub fn load(path: &Path) -> anyhow::Result<WebConfig> {
        let text = std::fs::read_to_string(path).context("cannot read it")?;
        let file: File = if text.trim().is_empty() {
            File::default()
        } else {
            serde_yaml::from_str(&text).map_err(|e| anyhow::anyhow!("{e}"))?
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        let tls = match &file.tls_server_config {
            Some(tls) => Some(Arc::new(tls_config(tls, dir)?)),
            None => None,
        };
        let auth = match file.basic_auth_users.is_empty() {
            true => None,
            false => Some(Arc::new(BasicAuth::new(file.basic_auth_users)?)),
        };
        Ok(WebConfig { tls, auth })
    }
}

fn tls_config(tls: &TlsFile, dir: &Path) -> anyhow::Result<rustls::ServerConfig> {
    let cert_file = dir.join(&tls.cert_file);
    let key_file = dir.join(&tls.key_file);
    let certs = CertificateDer::pem_file_iter(&cert_file)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| anyhow::anyhow!("cert_file {}: {e}", cert_file.display()))?;
    if certs.is_empty() {
        bail!("cert_file {}: no certificate in it", cert_file.display());
    }
    let key = PrivateKeyDer::from_pem_file(&key_file)
        .map_err(|e| anyhow::anyhow!("key_file {}: {e}", key_file.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions = versions(tls.min_version.as_deref(), tls.max_version.as_deref())?;
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&versions)?;
    let verify = match tls.client_auth_type.as_deref().unwrap_or("NoClientCert") {
        "NoClientCert" => None,
        "VerifyClientCertIfGiven" => Some(false),
        "RequireAndVerifyClientCert" => Some(true),
        kind @ ("RequestClientCert" | "RequireAnyClientCert" | "RequireClientCert") => bail!(
            "client_auth_type {kind} is not supported: every client certificate asked for is verified; use VerifyClientCertIfGiven or RequireAndVerifyClientCert"
        ),
        other => bail!("invalid client_auth_type {other:?}"),
    };
    let builder = match (verify, &tls.client_ca_file) {
        (None, None) => builder.with_no_client_auth(),
        (None, Some(_)) => {
            bail!("client_ca_file is set without a client_auth_type that checks certificates")
        }
        (Some(_), None) => bail!("client_auth_type needs client_ca_file"),
        (Some(required), Some(ca_file)) => {
            let ca_file = dir.join(ca_file);
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(&ca_file)
                .map_err(|e| anyhow::anyhow!("client_ca_file {}: {e}", ca_file.display()))?
            {
                let cert =
                    cert.map_err(|e| anyhow::anyhow!("client_ca_file {}: {e}", ca_file.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| anyhow::anyhow!("client_ca_file {}: {e}", ca_file.display()))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            );
            let verifier = match required {
                true => verifier,
                false => verifier.allow_unauthenticated(),
            };
            let verifier = verifier
                .build()
                .map_err(|e| anyhow::anyhow!("client_ca_file {}: {e}", ca_file.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| anyhow::anyhow!("cert_file and key_file do not make a key pair: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

fn versions(
    min: Option<&str>,
    max: Option<&str>,
) -> anyhow::Result<Vec<&'static rustls::SupportedProtocolVersion>> {
    let rank = |name: &str, field: &str| match name {
        "TLS12" => Ok(0),
        "TLS13" => Ok(1),
        "TLS10" | "TLS11" => bail!("{field} {name} is not supported: TLS12 or TLS13"),
        other => bail!("invalid {field} {other:?}: TLS12 or TLS13"),
    };
    let min = min
        .map(|v| rank(v, "min_version"))
        .transpose()?
        .unwrap_or(0);
    let max = max
        .map(|v| rank(v, "max_version"))
        .transpose()?
        .unwrap_or(1);
    let all = [&rustls::version::TLS12, &rustls::version::TLS13];
    if min > max {
        bail!("min_version is above max_version");
    }
    Ok(all[min..=max].to_vec())
}

/// Most distinct credentials whose bcrypt result is remembered; past it the memory starts over.
const CACHE_ENTRIES: usize = 1024;
/// bcrypt computations at once: a flood of wrong passwords costs at most this many cores.
const CONCURRENT_HASHES: usize = 2;

/// `basic_auth_users`: user names and their bcrypt hashes.
///
/// bcrypt takes tens of milliseconds by design; a scrape every 15 s must not pay that each time,
/// so the result of each verification is remembered under a SHA-256 of the user, the password
/// and the hash. Only the exact credentials verified map to a result, so no other password can
/// reuse it.
pub struct BasicAuth {
    users: HashMap<String, String>,
    /// A real hash to verify unknown users against, so they take as long as known ones.
    decoy: String,
    verified: Mutex<HashMap<[u8; 32], bool>>,
    hashing: Semaphore,
}

impl BasicAuth {
    fn new(users: BTreeMap<String, String>) -> anyhow::Result<BasicAuth> {
        for (user, hash) in &users {
            if hash.parse::<bcrypt::HashParts>().is_err() {
                bail!("basic_auth_users: the password of {user:?} is not a bcrypt hash (make one with `htpasswd -nBC 10 \"\"`)");
            }
        }
        let decoy = users.values().next().cloned().unwrap_or_default();
        Ok(BasicAuth {
            users: users.into_iter().collect(),
            decoy,
            verified: Mutex::new(HashMap::new()),
            hashing: Semaphore::new(CONCURRENT_HASHES),
        })
    }

    /// Whether an `Authorization` header carries a known user and its password.
    pub async fn allows(&self, authorization: Option<&HeaderValue>) -> bool {
        let Some((user, password)) = authorization.and_then(basic_credentials) else {
            return false;
        };
        let (hash, known) = match self.users.get(&user) {
            Some(hash) => (hash.clone(), true),
            None => (self.decoy.clone(), false),
        };
        let key = {
            let mut context = ring::digest::Context::new(&ring::digest::SHA256);
            for part in [user.as_bytes(), password.as_bytes(), hash.as_bytes()] {
                context.update(&(part.len() as u64).to_le_bytes());
                context.update(part);
            }
            let mut key = [0; 32];
            key.copy_from_slice(context.finish().as_ref());
            key
        };
        if let Some(result) = self.lock().get(&key) {
            return *result && known;
        }
        let Ok(_permit) = self.hashing.acquire().await else {
            return false;
        };
        let matches = tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or(false);
        let mut verified = self.lock();
        if verified.len() >= CACHE_ENTRIES {
            verified.clear();
        }
        verified.insert(key, matches);
        matches && known
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], bool>> {
        self.verified.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// `Basic base64(user:password)`.
fn basic_credentials(value: &HeaderValue) -> Option<(String, String)> {
    let encoded = value.to_str().ok()?.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// `router` behind basic auth when `auth` is set.
pub fn protect(router: axum::Router, auth: Option<Arc<BasicAuth>>) -> axum::Router {
    match auth {
        Some(auth) => router.layer(axum::middleware::from_fn_with_state(auth, require_auth)),
        None => router,
    }
}

/// Middleware: 401 with a Basic challenge unless the request carries a known user's password.
async fn require_auth(
    State(auth): State<Arc<BasicAuth>>,
    request: Request,
    next: Next,
) -> Response {
    if auth
        .allows(request.headers().get(header::AUTHORIZATION))
        .await
    {
        return next.run(request).await;
    }
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Basic realm=\"p2p-exporter\"")],
        "unauthorized\n",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(user: &str, password: &str) -> HeaderValue {
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        HeaderValue::from_str(&format!("Basic {encoded}")).unwrap()
    }

    #[tokio::test]
    async fn only_the_right_password_of_a_known_user_passes_cached_or_not() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let auth = BasicAuth::new(BTreeMap::from([("prometheus".to_owned(), hash)])).unwrap();
        for _ in 0..2 {
            assert!(auth.allows(Some(&header("prometheus", "s3cret"))).await);
            assert!(!auth.allows(Some(&header("prometheus", "s3cret "))).await);
            assert!(!auth.allows(Some(&header("prometheus", "S3cret"))).await);
            assert!(!auth.allows(Some(&header("nobody", "s3cret"))).await);
            assert!(!auth.allows(None).await);
        }
        assert_eq!(
            auth.lock().len(),
            4,
            "each distinct credential verified once"
        );
        let bearer = HeaderValue::from_static("Bearer s3cret");
        assert!(!auth.allows(Some(&bearer)).await);
    }

    #[test]
    fn a_password_that_is_not_a_bcrypt_hash_is_refused_at_start() {
        let users = BTreeMap::from([("prometheus".to_owned(), "s3cret".to_owned())]);
        let err = BasicAuth::new(users).err().unwrap().to_string();
        assert!(err.contains("not a bcrypt hash"), "{err}");
    }

    #[test]
    fn tls_versions_follow_min_and_max() {
        assert_eq!(versions(None, None).unwrap().len(), 2);
        assert_eq!(
            versions(Some("TLS13"), None).unwrap(),
            [&rustls::version::TLS13]
        );
        assert!(versions(Some("TLS13"), Some("TLS12")).is_err());
        assert!(versions(Some("TLS11"), None).is_err());
    }
}
