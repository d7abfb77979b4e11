//! TLS for both listeners: the certificate files, their reloading, and the peer identity rule.
//!
//! Every node of a cluster holds a certificate signed by the cluster's own CA (`paddock certs`
//! makes them) that names it `node-<id>.<cluster>.paddock` and `peer.<cluster>.paddock`.
//! Between peers TLS is mutual: a connection is accepted only with a certificate of this CA,
//! a dialling node checks that the listener holds one too (the `peer.` name), and a request is
//! served only if the caller's certificate names a current member ([`cert_names_node`]; the
//! membership probe of a node that is not yet one aside, which reveals voter ids only).
//!
//! Certificate and key files are re-read when their modification time changes
//! ([`ReloadingCert::reload_if_changed`], called by a job of the node), so a renewed
//! certificate takes effect on the next handshake without a restart. The CA is read at start:
//! rotating it is a rolling restart (docs/security.md).

use rustls::client::ResolvesClientCert;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, ServerConfig, SignatureScheme};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

/// Why certificate material could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or holds no usable PEM item.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// rustls refused the material.
    #[error("TLS configuration: {0}")]
    Config(String),
}

fn file_error(path: &Path, message: impl std::fmt::Display) -> TlsError {
    TlsError::File { path: path.to_path_buf(), message: message.to_string() }
}

/// Where a node's TLS material lives (PEM files).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// The cluster CA's certificate.
    pub ca: PathBuf,
    /// This node's certificate (chain), signed by the CA.
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
}

/// The crypto provider: ring, the one every TLS user in the build shares.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The peer name of node `id` of `cluster`, as its certificate carries it.
pub fn node_name(cluster: &str, id: u64) -> String {
    format!("node-{id}.{cluster}.paddock")
}

/// The name every node certificate of `cluster` carries: what a dialling peer checks.
pub fn cluster_name(cluster: &str) -> String {
    format!("peer.{cluster}.paddock")
}

/// Whether `cluster` can appear in a certificate name: 1-63 of a-z, 0-9 and '-', not at the
/// ends (one DNS label).
pub fn cluster_id_is_dns_label(cluster: &str) -> bool {
    !cluster.is_empty()
        && cluster.len() <= 63
        && cluster.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !cluster.starts_with('-')
        && !cluster.ends_with('-')
}

/// Whether `cert` (already verified against the CA in the handshake) names node `id` of
/// `cluster`.
pub fn cert_names_node(cert: &CertificateDer<'_>, cluster: &str, id: u64) -> bool {
    let Ok(name) = ServerName::try_from(node_name(cluster, id)) else { return false };
    webpki::EndEntityCert::try_from(cert).is_ok_and(|c| c.verify_is_valid_for_subject_name(&name).is_ok())
}

/// Reads the certificates of a PEM file.
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(path, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_error(path, e))?;
    if certs.is_empty() {
        return Err(file_error(path, "holds no certificate (expected PEM \"BEGIN CERTIFICATE\")"));
    }
    Ok(certs)
}

/// Reads a CA file into a root store.
pub fn read_roots(path: &Path) -> Result<Arc<RootCertStore>, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs(path)? {
        roots.add(cert).map_err(|e| file_error(path, format!("not a usable CA certificate: {e}")))?;
    }
    Ok(Arc::new(roots))
}

fn read_certified_key(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, TlsError> {
    let chain = read_certs(cert)?;
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| file_error(key, e))?;
    let signing = provider()
        .key_provider
        .load_private_key(private)
        .map_err(|e| file_error(key, format!("not a usable private key: {e}")))?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|e| file_error(key, format!("does not belong to {}: {e}", cert.display())))?;
    Ok(Arc::new(certified))
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// A certificate and key that are re-read when their files change; serves both as the
/// server's certificate and as the client certificate of outgoing peer connections.
#[derive(Debug)]
pub struct ReloadingCert {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
    stamp: Mutex<(Option<SystemTime>, Option<SystemTime>)>,
}

impl ReloadingCert {
    /// Loads the pair; fails if either file is missing, unreadable, or they do not match.
    pub fn load(cert: &Path, key: &Path) -> Result<Arc<ReloadingCert>, TlsError> {
        let stamp = (modified(cert), modified(key));
        let current = read_certified_key(cert, key)?;
        Ok(Arc::new(ReloadingCert {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            current: RwLock::new(current),
            stamp: Mutex::new(stamp),
        }))
    }

    /// Re-reads the pair if either file's modification time changed. `Ok(true)`: the new pair
    /// is in use from the next handshake on; an error keeps the old pair (and is retried at the
    /// next call, as the files may be half written).
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let now = (modified(&self.cert), modified(&self.key));
        let mut stamp = self.stamp.lock().expect("certificate stamp lock");
        if *stamp == now {
            return Ok(false);
        }
        let fresh = read_certified_key(&self.cert, &self.key)?;
        *self.current.write().expect("certificate lock") = fresh;
        *stamp = now;
        Ok(true)
    }

    fn current(&self) -> Arc<CertifiedKey> {
        self.current.read().expect("certificate lock").clone()
    }

    /// The leaf certificate in use now.
    pub fn leaf(&self) -> CertificateDer<'static> {
        self.current().cert[0].clone()
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

impl ResolvesClientCert for ReloadingCert {
    fn resolve(&self, _: &[&[u8]], _: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// A server configuration with `cert`; with `client_roots`, clients must present a
/// certificate of those roots (mutual TLS). `alpn`: the protocols offered.
pub fn server_config(
    cert: Arc<ReloadingCert>,
    client_roots: Option<Arc<RootCertStore>>,
    alpn: &[&[u8]],
) -> Result<Arc<ServerConfig>, TlsError> {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match client_roots {
        Some(roots) => {
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider())
                .build()
                .map_err(|e| TlsError::Config(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(cert);
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// A client configuration trusting `roots`, presenting `cert` if given.
pub fn client_config(
    roots: Arc<RootCertStore>,
    cert: Option<Arc<ReloadingCert>>,
    alpn: &[&[u8]],
) -> Result<Arc<ClientConfig>, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(roots);
    let mut config = match cert {
        Some(cert) => builder.with_client_cert_resolver(cert),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// Peer TLS of one node: its certificate (reloading) and the cluster CA.
#[derive(Clone, Debug)]
pub struct PeerTls {
    /// This node's certificate, also its client certificate.
    pub cert: Arc<ReloadingCert>,
    /// The cluster CA.
    pub roots: Arc<RootCertStore>,
}

impl PeerTls {
    /// Loads the files; the certificate must name node `id` of `cluster`, so that a file
    /// mix-up is found at start rather than as refused connections.
    pub fn load(files: &TlsFiles, cluster: &str, id: u64) -> Result<PeerTls, TlsError> {
        if !cluster_id_is_dns_label(cluster) {
            return Err(TlsError::Config(format!(
                "cluster id {cluster:?} cannot be named in a certificate: use 1-63 of a-z, 0-9 and '-'"
            )));
        }
        let roots = read_roots(&files.ca)?;
        let cert = ReloadingCert::load(&files.cert, &files.key)?;
        if !cert_names_node(&cert.leaf(), cluster, id) {
            return Err(file_error(
                &files.cert,
                format!("does not name {}: make this node's certificate with `paddock certs`", node_name(cluster, id)),
            ));
        }
        Ok(PeerTls { cert, roots })
    }
}
