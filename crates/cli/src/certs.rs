//! `paddock certs`: a cluster's own certificate authority and one certificate per node.
//!
//! Each cluster gets its own CA, so that a certificate of one cluster is worth nothing to
//! another. A node certificate names the node for its peers (`node-<id>.<cluster>.paddock`
//! and `peer.<cluster>.paddock`, checked by mutual TLS between peers) and the host names and
//! addresses clients reach it by (the public API's TLS), and may be used both as a server and
//! as a client certificate. Running the command again with the same `--out` reuses the CA
//! there and (re)issues only the node certificates asked for: that is how a node is added or a
//! certificate renewed; the node reloads a renewed certificate by itself.

use anyhow::{bail, Context, Result};
use paddock_node::tls;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What to make.
pub struct CertsRequest<'a> {
    /// The cluster id the nodes run with.
    pub cluster_id: &'a str,
    /// Nodes to issue certificates for.
    pub nodes: &'a [u64],
    /// Host names and IP addresses clients use to reach the nodes (all nodes share them; a
    /// per-node name is added by running the command once per node).
    pub hosts: &'a [String],
    /// Lifetime of the node certificates.
    pub valid_for: Duration,
    /// Output directory (created; reused CA if present).
    pub out: &'a Path,
}

/// What was written.
#[derive(Debug, serde::Serialize)]
pub struct Written {
    /// The CA certificate: give it to clients (`curl --cacert`) and to every node.
    pub ca: PathBuf,
    /// Whether the CA was made now (otherwise the one in `out` was reused).
    pub ca_created: bool,
    /// Per node: certificate and key.
    pub nodes: Vec<NodeFiles>,
}

/// One node's files.
#[derive(Debug, serde::Serialize)]
pub struct NodeFiles {
    /// Node id.
    pub node: u64,
    /// Certificate (PEM).
    pub cert: PathBuf,
    /// Private key (PEM, mode 0600).
    pub key: PathBuf,
}

/// The files a node of `dir` uses, as [`make`] writes them.
pub fn node_files(dir: &Path, node: u64) -> tls::TlsFiles {
    tls::TlsFiles {
        ca: dir.join("ca.pem"),
        cert: dir.join(format!("node-{node}.pem")),
        key: dir.join(format!("node-{node}.key")),
    }
}

fn ca_params(cluster_id: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, "Paddock");
    name.push(DnType::CommonName, format!("Paddock cluster CA {cluster_id}"));
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(3650);
    params
}

/// Writes a file only its owner can read.
pub fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(text.as_bytes())?;
    Ok(())
}

/// Writes `text` to `path` through a temporary file and a rename, so a node reloading it
/// never reads half a file.
fn write_atomically(path: &Path, text: &str, private: bool) -> Result<()> {
    let tmp = path.with_extension("tmp");
    if private {
        write_private(&tmp, text)?;
    } else {
        std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))
}

/// Makes (or reuses) the CA in `out` and issues the node certificates.
pub fn make(request: &CertsRequest<'_>) -> Result<Written> {
    if !tls::cluster_id_is_dns_label(request.cluster_id) {
        bail!(
            "cluster id {:?} cannot be named in a certificate: use 1-63 of a-z, 0-9 and '-' (and the same --cluster-id for `paddock start`)",
            request.cluster_id
        );
    }
    if request.nodes.is_empty() || request.nodes.contains(&0) {
        bail!("--nodes must list node ids (positive integers), e.g. --nodes 1,2,3");
    }
    std::fs::create_dir_all(request.out).with_context(|| format!("cannot create {}", request.out.display()))?;
    let ca_cert_path = request.out.join("ca.pem");
    let ca_key_path = request.out.join("ca.key");
    let params = ca_params(request.cluster_id);
    let (ca_key, ca_created) = if ca_key_path.exists() {
        let pem = std::fs::read_to_string(&ca_key_path)
            .with_context(|| format!("cannot read the CA key {}", ca_key_path.display()))?;
        let key = KeyPair::from_pem(&pem).with_context(|| format!("{} is not a private key", ca_key_path.display()))?;
        if !ca_cert_path.exists() {
            bail!(
                "{} exists but {} does not: restore the CA certificate, or use a new --out",
                ca_key_path.display(),
                ca_cert_path.display()
            );
        }
        (key, false)
    } else {
        let key = KeyPair::generate().context("cannot generate the CA key")?;
        let cert = params.self_signed(&key).context("cannot sign the CA certificate")?;
        write_atomically(&ca_key_path, &key.serialize_pem(), true)?;
        write_atomically(&ca_cert_path, &cert.pem(), false)?;
        (key, true)
    };
    // The issuer is the CA's name and key: rebuilt from the cluster id, so a reused CA signs
    // exactly as it did the first time.
    let issuer = Issuer::new(params, ca_key);
    let mut nodes = Vec::new();
    for &node in request.nodes {
        let mut names = vec![tls::node_name(request.cluster_id, node), tls::cluster_name(request.cluster_id)];
        names.extend(request.hosts.iter().cloned());
        let mut leaf = CertificateParams::new(names).context("a --host is neither an IP address nor a DNS name")?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "Paddock");
        dn.push(DnType::CommonName, tls::node_name(request.cluster_id, node));
        leaf.distinguished_name = dn;
        leaf.is_ca = IsCa::ExplicitNoCa;
        leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        let now = time::OffsetDateTime::now_utc();
        leaf.not_before = now - time::Duration::hours(1);
        leaf.not_after = now + time::Duration::seconds(request.valid_for.as_secs() as i64);
        let key = KeyPair::generate().context("cannot generate a node key")?;
        let cert = leaf.signed_by(&key, &issuer).context("cannot sign a node certificate")?;
        let files = node_files(request.out, node);
        // Key first: a node reloading between the two writes sees a mismatched pair, refuses
        // it and keeps the old one until the certificate lands too.
        write_atomically(&files.key, &key.serialize_pem(), true)?;
        write_atomically(&files.cert, &cert.pem(), false)?;
        nodes.push(NodeFiles { node, cert: files.cert, key: files.key });
    }
    Ok(Written { ca: ca_cert_path, ca_created, nodes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_certificates_name_their_node_and_load_as_peer_tls() {
        let dir = tempfile::tempdir().unwrap();
        let hosts = vec!["127.0.0.1".to_string(), "localhost".to_string()];
        let request = CertsRequest {
            cluster_id: "blue",
            nodes: &[1, 2],
            hosts: &hosts,
            valid_for: Duration::from_secs(86_400),
            out: dir.path(),
        };
        let written = make(&request).unwrap();
        assert!(written.ca_created);
        let one = tls::PeerTls::load(&node_files(dir.path(), 1), "blue", 1).unwrap();
        assert!(tls::cert_names_node(&one.cert.leaf(), "blue", 1));
        assert!(!tls::cert_names_node(&one.cert.leaf(), "blue", 2), "node 1's certificate does not name node 2");
        assert!(!tls::cert_names_node(&one.cert.leaf(), "green", 1), "nor node 1 of another cluster");
        let err = tls::PeerTls::load(&node_files(dir.path(), 1), "blue", 2).err().unwrap().to_string();
        assert!(err.contains("does not name node-2.blue.paddock"), "{err}");

        // Again: the CA is reused and the new certificate chains to it.
        let again = make(&CertsRequest { nodes: &[3], ..request }).unwrap();
        assert!(!again.ca_created);
        tls::PeerTls::load(&node_files(dir.path(), 3), "blue", 3).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("node-3.key")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "keys are private");
    }

    #[test]
    fn a_cluster_id_that_cannot_be_a_dns_label_is_refused_with_the_rule() {
        let dir = tempfile::tempdir().unwrap();
        let err = make(&CertsRequest {
            cluster_id: "My_Cluster",
            nodes: &[1],
            hosts: &[],
            valid_for: Duration::from_secs(60),
            out: dir.path(),
        })
        .err()
        .unwrap()
        .to_string();
        assert!(err.contains("a-z, 0-9 and '-'"), "{err}");
    }
}
