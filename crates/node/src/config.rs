//! Node configuration: a TOML file, flags, or both (flags win).

use paddock_consensus::Timing;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Everything a node needs to run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Node id, unique in the cluster, non-zero.
    pub node_id: u64,
    /// Cluster name; data and peers of another cluster are refused.
    #[serde(default = "default_cluster")]
    pub cluster_id: String,
    /// Data directory (locked while the node runs).
    pub data_dir: PathBuf,
    /// Public HTTP API address.
    pub http_listen: SocketAddr,
    /// Peer gRPC address.
    pub peer_listen: SocketAddr,
    /// Peer address others use; defaults to `peer_listen`.
    #[serde(default)]
    pub peer_advertise: Option<String>,
    /// Source IP for outgoing peer connections (defaults to the OS's choice). Chaos tests give
    /// each node its own loopback address so a proxy can cut single links.
    #[serde(default)]
    pub peer_source_ip: Option<std::net::IpAddr>,
    /// Initial voters (id → peer address). The node with the smallest id initialises the
    /// cluster on first start; a restart with the same list changes nothing.
    #[serde(default, deserialize_with = "node_id_keys")]
    pub bootstrap: BTreeMap<u64, String>,
    /// Raft heartbeat period.
    #[serde(default = "default_heartbeat")]
    pub heartbeat_ms: u64,
    /// Raft election timeout, lower bound.
    #[serde(default = "default_election_min")]
    pub election_timeout_min_ms: u64,
    /// Raft election timeout, upper bound.
    #[serde(default = "default_election_max")]
    pub election_timeout_max_ms: u64,
    /// Take a snapshot every this many log entries.
    #[serde(default = "default_snapshot_logs")]
    pub snapshot_logs_since_last: u64,
    /// Log entries kept behind the newest snapshot when the log is purged. Unset: the snapshot
    /// interval plus [`paddock_consensus::SNAPSHOT_LOG_KEEP_MARGIN`], so that the log since the
    /// previous snapshot survives and a damaged newest snapshot can be skipped for the previous
    /// one; a smaller value is refused (see [`NodeConfig::snapshot_log_keep`]).
    #[serde(default)]
    pub snapshot_log_keep: Option<u64>,
    /// Bytes per chunk when this node, as leader, sends a snapshot (1 KiB to 16 MiB). A snapshot
    /// travels as chunks so that no peer message grows with the state.
    #[serde(default = "default_snapshot_chunk")]
    pub snapshot_chunk_bytes: usize,
    /// Cluster time: how far this node's clock may be from a majority of the voters' (ms)
    /// before, as leader, it refuses to stamp commands and hands leadership over.
    #[serde(default = "default_clock_offset_max")]
    pub clock_offset_max_ms: u64,
    /// Test only: added to this node's wall clock (chaos and clock-skew tests).
    #[serde(default)]
    pub clock_offset_ms: i64,
    /// Test only: a file holding milliseconds added to this node's wall clock, re-read while
    /// the node runs (the chaos harness makes clocks jump with it).
    #[serde(default)]
    pub clock_offset_file: Option<PathBuf>,
    /// How long a write waits for commit before answering `outcome_unknown`.
    #[serde(default = "default_write_timeout")]
    pub write_timeout_ms: u64,
    /// Largest request body accepted.
    #[serde(default = "default_body_limit")]
    pub body_limit_bytes: usize,
    /// The cluster CA's certificate (PEM). With `tls_cert_file` and `tls_key_file`: the public
    /// API serves HTTPS only and peers speak mutual TLS (`paddock certs` makes all three).
    #[serde(default)]
    pub tls_ca_file: Option<PathBuf>,
    /// This node's certificate (PEM), signed by the CA; re-read when it changes.
    #[serde(default)]
    pub tls_cert_file: Option<PathBuf>,
    /// Its private key (PEM); re-read when it changes.
    #[serde(default)]
    pub tls_key_file: Option<PathBuf>,
    /// Allow plain HTTP and unauthenticated peers on addresses outside loopback. Anyone on
    /// that network can then read keys off the wire and speak to the peer port: for a network
    /// that is private by other means only. Logged loudly at every start.
    #[serde(default)]
    pub insecure_plaintext: bool,
    /// Requests served at once; the excess is refused at once with 503 and Retry-After.
    #[serde(default = "default_concurrency")]
    pub concurrency_limit: usize,
    /// Requests per second allowed per authenticated principal; 0 = off.
    #[serde(default = "default_rate", alias = "rate_limit_per_client_per_s")]
    pub rate_limit_per_principal_per_s: u32,
    /// Requests per second allowed per source IP address, authenticated or not; 0 = off (behind
    /// a load balancer every request comes from its address).
    #[serde(default = "default_rate")]
    pub rate_limit_per_ip_per_s: u32,
    /// Failed authentications per second allowed per source IP before 429; 0 = off.
    #[serde(default = "default_auth_failures")]
    pub auth_failures_per_ip_per_s: u32,
    /// A file of static API keys (`<principal> <role> <key id> <sha256>` a line) that this node
    /// accepts besides the replicated ones: the break-glass keys that create the first
    /// principals. `paddock keys static` writes its lines.
    #[serde(default)]
    pub static_keys_file: Option<PathBuf>,
    /// Longest lifetime of a person's key (every role but service), and its default: keys of
    /// people are sessions that end by themselves.
    #[serde(default = "default_interactive_ttl")]
    pub interactive_key_ttl_max_s: u64,
    /// R8: the SHA-256 (hex) the running binary must have; a mismatch raises an alarm.
    #[serde(default)]
    pub expected_binary_sha256: Option<String>,
    /// R8: the SHA-256 (hex) the effective configuration must have (`GET /v1/self-check`
    /// shows the current one).
    #[serde(default)]
    pub expected_config_sha256: Option<String>,
    /// Seconds between scheduled self-checks (R8 asks for at least daily).
    #[serde(default = "default_self_check_interval")]
    pub self_check_interval_s: u64,
    /// SSE streams one principal may hold open on one node.
    #[serde(default = "default_streams")]
    pub sse_streams_per_principal_max: usize,
    /// `/metrics` answers only requests with the key of an operator, auditor or service
    /// principal (Prometheus: `authorization: { credentials_file: ... }`); off: public.
    #[serde(default)]
    pub metrics_require_key: bool,
    /// Open client connections this node holds at most; one more is closed as soon as it is
    /// accepted (`paddock_http_connections_refused_total`).
    #[serde(default = "default_connections")]
    pub connections_max: usize,
    /// At a stop (SIGTERM), how long the node keeps serving with readiness failing before it
    /// stops accepting connections: the time a load balancer needs to stop sending it new
    /// requests (HAProxy as configured here: two checks 100-250 ms apart). Requests in flight
    /// then finish. 0: stop accepting at once.
    #[serde(default = "default_drain_ms")]
    pub drain_ms: u64,
    /// A node is ready only if it applied within this many entries of its commit index.
    #[serde(default = "default_ready_lag")]
    pub ready_lag_entries_max: u64,
    /// Log as JSON lines instead of text.
    #[serde(default)]
    pub log_json: bool,
    /// Take scheduled backups into chains under this directory (`chain-<UTC ms>`); none if
    /// unset.
    #[serde(default)]
    pub backup_dir: Option<PathBuf>,
    /// Seconds between scheduled backups.
    #[serde(default = "default_backup_interval")]
    pub backup_interval_s: u64,
    /// Encrypt scheduled backups with the key in this file (32 bytes or 64 hex digits); the
    /// key is never written with the backup.
    #[serde(default)]
    pub backup_key_file: Option<PathBuf>,
    /// Backup chains kept under `backup_dir`; older ones are deleted (never the one in use).
    #[serde(default = "default_backup_chains_kept")]
    pub backup_chains_kept: usize,
    /// Start a new chain (a full backup) once the newest began this many days ago, so that
    /// chains rotate and old ones can be deleted whole.
    #[serde(default = "default_backup_new_chain_days")]
    pub backup_new_chain_days: u64,
    /// Delete chains whose last backup is older than this many days (never the one in use);
    /// unset: only `backup_chains_kept` bounds them.
    #[serde(default)]
    pub backup_keep_days: Option<u64>,
    /// Copy every chain under `backup_dir` to this bucket after each scheduled backup
    /// (`s3://bucket/prefix`, a chain per `prefix/chain-<ms>`; chains retention deletes here go
    /// there too); credentials from the AWS environment variables.
    #[serde(default)]
    pub backup_s3: Option<String>,
    /// Settled history leaves the in-memory state this many seconds after its market's latest
    /// result (default 7 days), into the node's archive (`<data_dir>/archive`), where it stays
    /// queryable; 0 keeps everything in memory.
    #[serde(default = "default_history_retention")]
    pub history_retention_s: u64,
    /// Seconds between the leader's checks for history old enough to archive.
    #[serde(default = "default_history_interval")]
    pub history_interval_s: u64,
    /// One log line per request (target `paddock::access`: request id, method, route, status,
    /// duration), and one on the leader per request it serves for a follower.
    #[serde(default)]
    pub access_log: bool,
    /// Self-healing: the nodes that may be made voters automatically, in place of a voter the
    /// leader has not heard from for `replace_voter_after_s`: this site's voters and its
    /// standby learners (never a DR site's learner, which follows asynchronously from afar).
    /// A learner in this list that is caught up is a standby; a voter replaced is kept as a
    /// learner and, listed here, becomes a standby once it is back and caught up. Empty (the
    /// default): voters are never replaced automatically.
    #[serde(default)]
    pub replace_voter_pool: Vec<u64>,
    /// Seconds a voter must stay unreachable from the leader, without a single answer,
    /// before a standby replaces it; also the least time between two automatic replacements
    /// and how long a standby must have been caught up. A node that comes and goes within it
    /// never changes the membership.
    #[serde(default = "default_replace_voter_after")]
    pub replace_voter_after_s: u64,
    /// Gray failure: as leader, hand leadership to the follower with the fastest disk when this
    /// node's recent fsync has stayed above this many times the followers' median (and above
    /// 10 ms) for `slow_disk_for_s`; 0: never.
    #[serde(default = "default_slow_disk_ratio")]
    pub slow_disk_ratio: u32,
    /// How long the leader's disk must stay slow before it hands leadership off.
    #[serde(default = "default_slow_disk_for")]
    pub slow_disk_for_s: u64,
    /// Test only: a file holding milliseconds added to every fsync of this node's Raft log,
    /// re-read while the node runs (a slow disk without root).
    #[serde(default)]
    pub fsync_delay_file: Option<PathBuf>,
}

/// TOML table keys are always strings: `[bootstrap] 1 = "…"` arrives as `"1"`.
fn node_id_keys<'de, D: serde::Deserializer<'de>>(d: D) -> Result<BTreeMap<u64, String>, D::Error> {
    let raw: BTreeMap<String, String> = BTreeMap::deserialize(d)?;
    raw.into_iter()
        .map(|(k, v)| {
            k.parse::<u64>()
                .map(|id| (id, v))
                .map_err(|_| serde::de::Error::custom(format!("bootstrap key {k:?} is not a node id")))
        })
        .collect()
}

fn default_slow_disk_ratio() -> u32 {
    5
}

fn default_slow_disk_for() -> u64 {
    10
}

fn default_replace_voter_after() -> u64 {
    30
}

fn default_history_retention() -> u64 {
    7 * 86_400
}

fn default_history_interval() -> u64 {
    60
}

fn default_backup_interval() -> u64 {
    300
}

fn default_backup_chains_kept() -> usize {
    2
}

fn default_backup_new_chain_days() -> u64 {
    1
}

fn default_cluster() -> String {
    "paddock".into()
}
fn default_heartbeat() -> u64 {
    Timing::default().heartbeat_ms
}
fn default_election_min() -> u64 {
    Timing::default().election_min_ms
}
fn default_election_max() -> u64 {
    Timing::default().election_max_ms
}
/// A snapshot every 10,000 entries came every 2.5 s at full single-bet load, and each one
/// costs a core for tens of ms on a 2-core machine; at 50,000 a restart still replays at most
/// about 0.3 s of single-bet entries (BENCHMARKS.md, "The tail").
fn default_snapshot_logs() -> u64 {
    50_000
}
fn default_clock_offset_max() -> u64 {
    500
}
fn default_write_timeout() -> u64 {
    5_000
}
fn default_snapshot_chunk() -> usize {
    paddock_consensus::network::SNAPSHOT_CHUNK_BYTES_DEFAULT
}
fn default_body_limit() -> usize {
    64 * 1024
}
fn default_concurrency() -> usize {
    1024
}
fn default_rate() -> u32 {
    0
}
fn default_auth_failures() -> u32 {
    20
}
fn default_interactive_ttl() -> u64 {
    12 * 3600
}
fn default_self_check_interval() -> u64 {
    86_400
}
fn default_streams() -> usize {
    8
}
fn default_connections() -> usize {
    4096
}
fn default_drain_ms() -> u64 {
    1000
}
fn default_ready_lag() -> u64 {
    1_000
}

impl NodeConfig {
    /// A config with every default, for the given identity and addresses.
    pub fn new(node_id: u64, data_dir: PathBuf, http_listen: SocketAddr, peer_listen: SocketAddr) -> NodeConfig {
        NodeConfig {
            node_id,
            cluster_id: default_cluster(),
            data_dir,
            http_listen,
            peer_listen,
            peer_advertise: None,
            peer_source_ip: None,
            bootstrap: BTreeMap::new(),
            heartbeat_ms: default_heartbeat(),
            election_timeout_min_ms: default_election_min(),
            election_timeout_max_ms: default_election_max(),
            snapshot_logs_since_last: default_snapshot_logs(),
            snapshot_log_keep: None,
            snapshot_chunk_bytes: default_snapshot_chunk(),
            clock_offset_max_ms: default_clock_offset_max(),
            clock_offset_ms: 0,
            clock_offset_file: None,
            write_timeout_ms: default_write_timeout(),
            body_limit_bytes: default_body_limit(),
            concurrency_limit: default_concurrency(),
            rate_limit_per_principal_per_s: default_rate(),
            rate_limit_per_ip_per_s: default_rate(),
            auth_failures_per_ip_per_s: default_auth_failures(),
            static_keys_file: None,
            interactive_key_ttl_max_s: default_interactive_ttl(),
            ready_lag_entries_max: default_ready_lag(),
            sse_streams_per_principal_max: default_streams(),
            connections_max: default_connections(),
            drain_ms: default_drain_ms(),
            metrics_require_key: false,
            expected_binary_sha256: None,
            expected_config_sha256: None,
            self_check_interval_s: default_self_check_interval(),
            log_json: false,
            access_log: false,
            backup_dir: None,
            backup_key_file: None,
            backup_interval_s: default_backup_interval(),
            backup_chains_kept: default_backup_chains_kept(),
            backup_new_chain_days: default_backup_new_chain_days(),
            backup_keep_days: None,
            backup_s3: None,
            history_retention_s: default_history_retention(),
            history_interval_s: default_history_interval(),
            replace_voter_pool: Vec::new(),
            replace_voter_after_s: default_replace_voter_after(),
            slow_disk_ratio: default_slow_disk_ratio(),
            slow_disk_for_s: default_slow_disk_for(),
            fsync_delay_file: None,
            tls_ca_file: None,
            tls_cert_file: None,
            tls_key_file: None,
            insecure_plaintext: false,
        }
    }

    /// Reads a TOML file.
    pub fn from_toml(text: &str) -> Result<NodeConfig, toml::de::Error> {
        toml::from_str(text)
    }

    /// Checks values that would make the node misbehave.
    pub fn validate(&self) -> Result<(), String> {
        if self.node_id == 0 {
            return Err("node_id must be non-zero".into());
        }
        if self.cluster_id.is_empty() || self.cluster_id.len() > 64 {
            return Err("cluster_id must be 1-64 characters".into());
        }
        if self.heartbeat_ms == 0 || self.election_timeout_min_ms <= self.heartbeat_ms * 2 {
            return Err("election_timeout_min_ms must exceed twice heartbeat_ms".into());
        }
        if self.election_timeout_max_ms <= self.election_timeout_min_ms {
            return Err("election_timeout_max_ms must exceed election_timeout_min_ms".into());
        }
        if !self.bootstrap.is_empty() && !self.bootstrap.contains_key(&self.node_id) {
            return Err(format!(
                "bootstrap members {:?} do not include this node {}",
                self.bootstrap.keys(),
                self.node_id
            ));
        }
        if self.concurrency_limit == 0 || self.body_limit_bytes < 1024 {
            return Err("concurrency_limit must be positive and body_limit_bytes at least 1024".into());
        }
        // A command is never larger than the JSON body it came from, so this keeps every log
        // entry within what a peer message can carry.
        let entry_max = paddock_consensus::network::ENTRY_BYTES_MAX;
        if self.body_limit_bytes > entry_max {
            return Err(format!(
                "body_limit_bytes {} is above {entry_max}, the largest log entry peers can replicate",
                self.body_limit_bytes
            ));
        }
        let chunk_max = paddock_consensus::network::SNAPSHOT_CHUNK_BYTES_MAX;
        if !(1024..=chunk_max).contains(&self.snapshot_chunk_bytes) {
            return Err(format!(
                "snapshot_chunk_bytes {} must be from 1024 to {chunk_max} (a chunk is one peer message)",
                self.snapshot_chunk_bytes
            ));
        }
        for (name, digest) in [
            ("expected_binary_sha256", &self.expected_binary_sha256),
            ("expected_config_sha256", &self.expected_config_sha256),
        ] {
            if digest.as_ref().is_some_and(|d| d.len() != 64 || !d.bytes().all(|b| b.is_ascii_hexdigit())) {
                return Err(format!("{name} must be 64 hex digits (a SHA-256), as GET /v1/self-check shows it"));
            }
        }
        if self.connections_max == 0 {
            return Err("connections_max must be positive".into());
        }
        if self.history_interval_s == 0 {
            return Err("history_interval_s must be positive (set history_retention_s = 0 to never archive)".into());
        }
        if self.backup_interval_s == 0 || self.backup_chains_kept == 0 || self.backup_new_chain_days == 0 {
            return Err("backup_interval_s, backup_chains_kept and backup_new_chain_days must be positive".into());
        }
        if let Some(url) = &self.backup_s3 {
            if self.backup_dir.is_none() {
                return Err(
                    "backup_s3 copies the chains under backup_dir off-site: set backup_dir (a local directory) too"
                        .into(),
                );
            }
            if paddock_backup::remote::Location::bucket(url).is_err() {
                return Err(format!(
                    "backup_s3 must name a bucket and a prefix, as s3://bucket/paddock/node-2, not {url}"
                ));
            }
        }
        if self.backup_keep_days.is_some_and(|keep| keep < self.backup_new_chain_days) {
            return Err(
                "backup_keep_days must be at least backup_new_chain_days: a chain is still growing until a new one \
                 starts, and only whole chains are deleted"
                    .into(),
            );
        }
        if self.replace_voter_after_s == 0 {
            return Err(
                "replace_voter_after_s must be positive: a voter is replaced only after the leader has not heard \
                 from it for that long (leave replace_voter_pool empty to never replace one)"
                    .into(),
            );
        }
        if self.slow_disk_ratio == 1 || self.slow_disk_for_s == 0 {
            return Err("slow_disk_ratio must be 0 (off) or at least 2, and slow_disk_for_s positive: a leader hands \
                 leadership off only for a disk clearly and lastingly slower than its followers'"
                .into());
        }
        if self.replace_voter_pool.contains(&0) {
            return Err("replace_voter_pool names node 0: node ids are non-zero".into());
        }
        if self.self_check_interval_s == 0 {
            return Err("self_check_interval_s must be positive".into());
        }
        if self.interactive_key_ttl_max_s == 0 {
            return Err("interactive_key_ttl_max_s must be positive".into());
        }
        match (&self.tls_ca_file, &self.tls_cert_file, &self.tls_key_file) {
            (None, None, None) => {
                let exposed: Vec<String> = [self.http_listen, self.peer_listen]
                    .iter()
                    .filter(|a| !a.ip().is_loopback())
                    .map(|a| a.to_string())
                    .collect();
                if !exposed.is_empty() && !self.insecure_plaintext {
                    return Err(format!(
                        "{} is outside loopback but TLS is not configured: API keys would cross the network in \
                         clear and anyone could speak to the peer port. Make certificates with `paddock certs` \
                         and set tls_ca_file, tls_cert_file and tls_key_file (--tls-ca, --tls-cert, --tls-key), \
                         or, on a network private by other means, set insecure_plaintext (--insecure-plaintext)",
                        exposed.join(" and ")
                    ));
                }
            }
            (Some(_), Some(_), Some(_)) => {
                if !paddock_consensus::tls::cluster_id_is_dns_label(&self.cluster_id) {
                    return Err(format!(
                        "cluster_id {:?} cannot be named in a certificate: with TLS use 1-63 of a-z, 0-9 and '-'",
                        self.cluster_id
                    ));
                }
            }
            _ => return Err("TLS needs all three of tls_ca_file, tls_cert_file and tls_key_file".into()),
        }
        let keep_min = paddock_consensus::snapshot_log_keep_min(self.snapshot_logs_since_last);
        if let Some(keep) = self.snapshot_log_keep.filter(|k| *k < keep_min) {
            return Err(format!(
                "snapshot_log_keep {keep} is below snapshot_logs_since_last + {} = {keep_min}: a damaged newest \
                 snapshot is skipped for the previous one plus the log after it, so the log must reach back past \
                 the previous snapshot; leave snapshot_log_keep unset (the default is {keep_min}) or raise it",
                paddock_consensus::SNAPSHOT_LOG_KEEP_MARGIN
            ));
        }
        Ok(())
    }

    /// Log entries Raft keeps behind the newest snapshot: `snapshot_log_keep` if set, else
    /// [`paddock_consensus::snapshot_log_keep_min`] of the snapshot interval.
    pub fn snapshot_log_keep(&self) -> u64 {
        self.snapshot_log_keep
            .unwrap_or_else(|| paddock_consensus::snapshot_log_keep_min(self.snapshot_logs_since_last))
    }

    /// The TLS files, if TLS is configured.
    pub fn tls_files(&self) -> Option<paddock_consensus::tls::TlsFiles> {
        match (&self.tls_ca_file, &self.tls_cert_file, &self.tls_key_file) {
            (Some(ca), Some(cert), Some(key)) => {
                Some(paddock_consensus::tls::TlsFiles { ca: ca.clone(), cert: cert.clone(), key: key.clone() })
            }
            _ => None,
        }
    }

    /// Whether plain connections are allowed outside loopback (and must be logged loudly).
    pub fn runs_insecure_outside_loopback(&self) -> bool {
        self.tls_files().is_none() && !(self.http_listen.ip().is_loopback() && self.peer_listen.ip().is_loopback())
    }

    /// The peer address others use.
    pub fn advertised_peer(&self) -> String {
        self.peer_advertise.clone().unwrap_or_else(|| self.peer_listen.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minimal_toml_file_gets_the_defaults_and_an_unknown_key_is_refused() {
        let text = r#"
            node_id = 1
            data_dir = "/tmp/p1"
            http_listen = "127.0.0.1:7001"
            peer_listen = "127.0.0.1:7101"
            [bootstrap]
            1 = "127.0.0.1:7101"
        "#;
        let c = NodeConfig::from_toml(text).unwrap();
        assert_eq!(c.heartbeat_ms, paddock_consensus::Timing::default().heartbeat_ms);
        c.validate().unwrap();
        assert!(NodeConfig::from_toml(&format!("hartbeat_ms = 5\n{text}")).is_err());
    }

    #[test]
    fn the_log_keep_defaults_past_one_snapshot_interval_and_a_smaller_one_is_refused() {
        let mut c =
            NodeConfig::new(1, "/tmp/p1".into(), "127.0.0.1:7001".parse().unwrap(), "127.0.0.1:7101".parse().unwrap());
        assert_eq!(c.snapshot_log_keep, None);
        assert_eq!(c.snapshot_log_keep(), c.snapshot_logs_since_last + paddock_consensus::SNAPSHOT_LOG_KEEP_MARGIN);
        c.snapshot_logs_since_last = 2_000;
        assert_eq!(c.snapshot_log_keep(), 3_000);
        c.validate().unwrap();
        c.snapshot_log_keep = Some(3_000);
        c.validate().unwrap();
        c.snapshot_log_keep = Some(1_000);
        let refused = c.validate().unwrap_err();
        assert!(refused.contains("snapshot_log_keep 1000 is below") && refused.contains("= 3000"), "{refused}");
        c.snapshot_log_keep = Some(5_000);
        c.validate().unwrap();
        assert_eq!(c.snapshot_log_keep(), 5_000);
    }

    #[test]
    fn an_off_site_bucket_needs_a_local_backup_dir_and_a_bucket_with_a_prefix() {
        let mut c =
            NodeConfig::new(1, "/tmp/p1".into(), "127.0.0.1:7001".parse().unwrap(), "127.0.0.1:7101".parse().unwrap());
        c.backup_s3 = Some("s3://paddock-backups/prod/node-1".into());
        let refused = c.validate().unwrap_err();
        assert!(refused.contains("set backup_dir"), "{refused}");
        c.backup_dir = Some("/var/backups/paddock".into());
        c.validate().unwrap();
        for bad in ["/mnt/offsite", "s3://paddock-backups"] {
            c.backup_s3 = Some(bad.into());
            let refused = c.validate().unwrap_err();
            assert!(refused.contains("as s3://bucket/paddock/node-2"), "{bad}: {refused}");
        }
    }

    #[test]
    fn plain_connections_outside_loopback_are_refused_unless_explicitly_allowed() {
        let mut c =
            NodeConfig::new(1, "/tmp/p1".into(), "0.0.0.0:7001".parse().unwrap(), "127.0.0.1:7101".parse().unwrap());
        let refused = c.validate().unwrap_err();
        assert!(refused.contains("0.0.0.0:7001 is outside loopback") && refused.contains("paddock certs"), "{refused}");
        c.insecure_plaintext = true;
        c.validate().unwrap();
        assert!(c.runs_insecure_outside_loopback());

        let mut c =
            NodeConfig::new(1, "/tmp/p1".into(), "127.0.0.1:7001".parse().unwrap(), "10.1.2.3:7101".parse().unwrap());
        assert!(c.validate().unwrap_err().contains("10.1.2.3:7101"), "the peer port counts too");
        c.tls_ca_file = Some("/etc/paddock/ca.pem".into());
        assert!(c.validate().unwrap_err().contains("all three"), "half a TLS configuration is refused");
        c.tls_cert_file = Some("/etc/paddock/node-1.pem".into());
        c.tls_key_file = Some("/etc/paddock/node-1.key".into());
        c.validate().unwrap();
        assert!(!c.runs_insecure_outside_loopback());
        c.cluster_id = "Prod_1".into();
        assert!(c.validate().unwrap_err().contains("cannot be named in a certificate"));
    }
}
