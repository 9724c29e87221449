//! TLS for the gateway port (`gateway.tls`): certificate + key files, or a self-signed
//! certificate generated once under `<state>/tls/` (0600 files in a 0700 dir) and reused, so
//! its fingerprint (what clients pin) stays stable across restarts. rustls with the *ring*
//! provider (no cmake, no second crypto backend in the binary).
//!
//! The same port serves `wss://` and `https://`. A plaintext client on a TLS port gets a
//! short plaintext HTTP 400 that says so (see [`PLAINTEXT_ON_TLS_PORT`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

/// `gateway.tls`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSettings {
    pub enabled: bool,
    /// Generate (once) a self-signed certificate when no files are given.
    pub auto_generate: bool,
    pub cert_path: Option<PathBuf>,
    pub key_path: Option<PathBuf>,
}

/// What a plaintext HTTP/WebSocket client receives on a TLS port.
pub const PLAINTEXT_ON_TLS_PORT: &str =
    "This Pincer gateway port speaks TLS only: use wss:// (WebSocket) or https:// (HTTP).\n";

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("gateway.tls: cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("gateway.tls: {path} holds no PEM certificate")]
    NoCertificate { path: PathBuf },
    #[error("gateway.tls: {path} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)")]
    NoKey { path: PathBuf },
    #[error("gateway.tls: set certPath and keyPath, or autoGenerate: true")]
    NotConfigured,
    #[error("gateway.tls: cannot generate a certificate: {0}")]
    Generate(String),
    #[error("gateway.tls: cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("gateway.tls: the certificate and key do not form a usable TLS identity: {0}")]
    Config(rustls::Error),
}

/// A loaded server identity.
pub struct TlsIdentity {
    pub config: Arc<rustls::ServerConfig>,
    /// Lower-case hex SHA-256 of the leaf certificate (DER).
    pub fingerprint: String,
    pub cert_path: PathBuf,
    pub generated: bool,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsIdentity")
            .field("fingerprint", &self.fingerprint)
            .field("cert_path", &self.cert_path)
            .finish_non_exhaustive()
    }
}

/// Lower-case hex SHA-256 of a DER certificate.
pub fn fingerprint_sha256(der: &[u8]) -> String {
    pincer_protocol::device_auth::hex(&Sha256::digest(der))
}

/// `AB:CD:…` form for humans.
pub fn colon_fingerprint(hex: &str) -> String {
    hex.as_bytes()
        .chunks(2)
        .map(|c| String::from_utf8_lossy(c).to_ascii_uppercase())
        .collect::<Vec<_>>()
        .join(":")
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn write_private(path: &Path, data: &[u8]) -> Result<(), TlsError> {
    crate::state_dir::write_private_file(path, data).map_err(|e| TlsError::Write {
        path: path.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    })
}

/// Paths of the generated certificate and key under the state dir.
pub fn generated_paths(state_dir: &Path) -> (PathBuf, PathBuf) {
    let dir = state_dir.join("tls");
    (dir.join("gateway-cert.pem"), dir.join("gateway-key.pem"))
}

fn generate(cert_path: &Path, key_path: &Path) -> Result<(), TlsError> {
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    if let Ok(host) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        let host = host.trim();
        if !host.is_empty() && !names.iter().any(|n| n == host) {
            names.push(host.to_string());
        }
    }
    let certified =
        rcgen::generate_simple_self_signed(names).map_err(|e| TlsError::Generate(e.to_string()))?;
    if let Some(dir) = cert_path.parent() {
        crate::state_dir::ensure_private_dir(dir).map_err(|e| TlsError::Write {
            path: dir.to_path_buf(),
            source: std::io::Error::other(e.to_string()),
        })?;
    }
    write_private(key_path, certified.signing_key.serialize_pem().as_bytes())?;
    write_private(cert_path, certified.cert.pem().as_bytes())?;
    Ok(())
}

/// Load (or generate) the identity described by `settings`.
pub fn load(settings: &TlsSettings, state_dir: &Path) -> Result<TlsIdentity, TlsError> {
    let (gen_cert, gen_key) = generated_paths(state_dir);
    let (cert_path, key_path, generated) = match (&settings.cert_path, &settings.key_path) {
        // As the reference: with autoGenerate, a pair is generated at the configured paths
        // only when both files are missing (a partial pair is an error, never overwritten).
        (Some(c), Some(k)) if settings.auto_generate && !c.exists() && !k.exists() => {
            generate(c, k)?;
            (c.clone(), k.clone(), true)
        }
        (Some(c), Some(k)) => (c.clone(), k.clone(), false),
        _ if settings.auto_generate => {
            let exists = gen_cert.is_file() && gen_key.is_file();
            if !exists {
                generate(&gen_cert, &gen_key)?;
            }
            (gen_cert, gen_key, !exists)
        }
        _ => return Err(TlsError::NotConfigured),
    };
    let cert_pem = read(&cert_path)?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .filter_map(Result::ok)
        .collect();
    let Some(leaf) = certs.first() else {
        return Err(TlsError::NoCertificate { path: cert_path });
    };
    let fingerprint = fingerprint_sha256(leaf.as_ref());
    let key_pem = read(&key_path)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| TlsError::NoKey {
        path: key_path.clone(),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Config)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(TlsError::Config)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsIdentity {
        config: Arc::new(config),
        fingerprint,
        cert_path,
        generated,
    })
}

/// How long a client may take to start and finish the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Accept TLS on a fresh socket. A client that speaks plaintext (its first byte is not a TLS
/// handshake record) gets a short HTTP 400 saying the port speaks TLS, then the socket closes.
pub async fn accept(
    config: Arc<rustls::ServerConfig>,
    tcp: tokio::net::TcpStream,
    peer: std::net::SocketAddr,
) -> Option<tokio_rustls::server::TlsStream<tokio::net::TcpStream>> {
    use tokio::time::timeout;
    let mut first = [0u8; 1];
    match timeout(TLS_HANDSHAKE_TIMEOUT, tcp.peek(&mut first)).await {
        Ok(Ok(1)) if first[0] == 0x16 => {}
        Ok(Ok(1)) => {
            refuse_plaintext(tcp).await;
            tracing::debug!(%peer, "plaintext client on the TLS port");
            return None;
        }
        _ => return None,
    }
    match timeout(
        TLS_HANDSHAKE_TIMEOUT,
        tokio_rustls::TlsAcceptor::from(config).accept(tcp),
    )
    .await
    {
        Ok(Ok(stream)) => Some(stream),
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            None
        }
        Err(_) => None,
    }
}

async fn refuse_plaintext(mut tcp: tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::time::{timeout, Duration};
    // Read the request head first: closing with unread data would reset the connection and
    // the client would never see the explanation.
    let mut buf = vec![0u8; 8192];
    let mut seen = 0;
    while seen < buf.len() {
        match timeout(Duration::from_secs(2), tcp.read(&mut buf[seen..])).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => {
                seen += n;
                if buf[..seen].windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
        }
    }
    let body = PLAINTEXT_ON_TLS_PORT;
    let response = format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = timeout(Duration::from_secs(2), tcp.write_all(response.as_bytes())).await;
    let _ = tcp.shutdown().await;
    let _ = timeout(Duration::from_secs(1), tcp.read(&mut buf)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_generated_identity_is_private_and_stable() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let settings = TlsSettings {
            enabled: true,
            auto_generate: true,
            ..Default::default()
        };
        let first = load(&settings, dir.path()).unwrap_or_else(|e| panic!("{e}"));
        assert!(first.generated);
        assert_eq!(first.fingerprint.len(), 64);
        let second = load(&settings, dir.path()).unwrap_or_else(|e| panic!("{e}"));
        assert!(!second.generated);
        assert_eq!(first.fingerprint, second.fingerprint);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let (c, k) = generated_paths(dir.path());
            for p in [c, k] {
                let mode = std::fs::metadata(&p)
                    .map(|m| m.permissions().mode() & 0o777)
                    .unwrap_or(0);
                assert_eq!(mode, 0o600, "{}", p.display());
            }
        }
        assert_eq!(colon_fingerprint("abcd"), "AB:CD");
    }

    #[test]
    fn missing_files_are_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let settings = TlsSettings {
            enabled: true,
            auto_generate: false,
            cert_path: Some(dir.path().join("nope.pem")),
            key_path: Some(dir.path().join("key.pem")),
        };
        let err = load(&settings, dir.path()).err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("nope.pem")));
        // autoGenerate fills missing configured paths once, and never a partial pair.
        let cert = dir.path().join("conf/cert.pem");
        let key = dir.path().join("conf/key.pem");
        let settings = TlsSettings {
            enabled: true,
            auto_generate: true,
            cert_path: Some(cert.clone()),
            key_path: Some(key.clone()),
        };
        let made = load(&settings, dir.path()).unwrap_or_else(|e| panic!("{e}"));
        assert!(made.generated && cert.is_file() && key.is_file());
        let again = load(&settings, dir.path()).unwrap_or_else(|e| panic!("{e}"));
        assert!(!again.generated);
        assert_eq!(made.fingerprint, again.fingerprint);
        std::fs::remove_file(&key).unwrap_or_else(|e| panic!("{e}"));
        let err = load(&settings, dir.path()).err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("key.pem")));
        assert!(matches!(
            load(&TlsSettings::default(), dir.path()),
            Err(TlsError::NotConfigured)
        ));
    }
}
