//! `paddock`: the one binary. `main` only parses flags and hands over, and names the
//! process's allocator (mimalloc).
//!
//! # Layout
//! - `start`: run a node (this module).
//! - `demo`: a local 3-node cluster with sample markets and betting ([`demo`]).
//! - `load`: open-loop load generation with HDR histograms ([`load`]).
//! - `drill chaos`, `drill failover`: drills against a local cluster of this binary ([`drill`],
//!   [`failover`]).
//! - `upgrade`: a rolling upgrade, one node at a time ([`upgrade`]).
//! - `status`, `members`, `transfer-leader`, `keys`, `principals`: operate a running cluster
//!   over HTTP with an operator's API key (`PADDOCK_KEY`).

mod backup;
mod certs;
mod demo;
mod demo_control;
mod dr;
mod dr_drill;
mod drill;
mod export;
mod failover;
mod load;
mod restore_drill;
mod supervise;
mod upgrade;

/// mimalloc, not glibc's malloc: under batched bets glibc's allocator took about a quarter of
/// the nodes' CPU (`_int_malloc`, `free`, `malloc_consolidate`; BENCHMARKS.md, 2026-12-08).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use paddock_client::Client;
use paddock_node::NodeConfig;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(name = "paddock", version = paddock_node::VERSION, about = "Fault-tolerant betting engine")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a node.
    ///
    /// Example: paddock start --node-id 1 --data-dir /var/lib/paddock --http 10.0.0.1:7001
    /// --peer 10.0.0.1:7101 --bootstrap 1=10.0.0.1:7101,2=10.0.0.2:7101,3=10.0.0.3:7101
    /// --tls-ca ca.pem --tls-cert node-1.pem --tls-key node-1.key --static-keys static-keys
    Start(Box<StartArgs>),
    /// Start a local 3-node cluster with sample markets and a light betting flow.
    ///
    /// Example: paddock demo   (it prints its URLs, CA and keys, and a curl line to try)
    Demo(demo::DemoArgs),
    /// Open-loop load: a mix of bets, deposits, reads and settlements at a target rate.
    ///
    /// Example: paddock load --nodes https://127.0.0.1:7001,https://127.0.0.1:7002 --ca-cert ca.pem
    /// --mix single=90,deposit=10 --rate 1000 --duration-s 30 --report load.json
    Load(load::LoadArgs),
    /// Operational drills against a local cluster of this binary.
    ///
    /// Example: paddock drill chaos --duration-s 120
    Drill {
        #[command(subcommand)]
        drill: drill::DrillCmd,
    },
    /// Make a cluster's CA and its nodes' certificates (TLS for the API, mutual TLS between
    /// peers). Run again with the same --out to add a node or renew: the CA there is reused.
    ///
    /// Example: paddock certs --cluster-id paddock --nodes 1,2,3 --host 127.0.0.1 --host localhost --out certs
    Certs {
        /// The cluster id the nodes run with (`--cluster-id` of `paddock start`).
        #[arg(long, default_value = "paddock")]
        cluster_id: String,
        /// Node ids, e.g. 1,2,3.
        #[arg(long, value_delimiter = ',', required = true)]
        nodes: Vec<u64>,
        /// A host name or IP address clients reach the nodes by (repeatable).
        #[arg(long = "host")]
        hosts: Vec<String>,
        /// Lifetime of the node certificates, days.
        #[arg(long, default_value_t = 365)]
        days: u64,
        /// Output directory: ca.pem, ca.key (keep it safe), node-<id>.pem and node-<id>.key.
        #[arg(long)]
        out: PathBuf,
    },
    /// Print a node's view of the cluster: role, term, leader, indexes and each member's lag.
    ///
    /// Example: `paddock status --node 127.0.0.1:7001` (or `--json` for scripts).
    Status {
        #[command(flatten)]
        target: Target,
        /// The node's answer as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// API keys: make one offline, issue one to a principal, revoke one.
    ///
    /// Example: paddock keys issue --principal tess --ttl-s 3600
    Keys {
        #[command(subcommand)]
        action: KeysCmd,
    },
    /// The audit trail: export it, or verify its hash chain end to end.
    ///
    /// Example: paddock audit export --out audit.json && paddock audit verify --file audit.json
    Audit {
        #[command(subcommand)]
        action: AuditCmd,
    },
    /// Principals: who may call the API, in which role.
    ///
    /// Example: paddock principals create --name ann@example.com --role bettor --accounts 1001
    Principals {
        #[command(subcommand)]
        action: PrincipalsCmd,
    },
    /// Back up the cluster online from any node: the first run into an empty directory takes a
    /// full backup (the node's snapshot and the log after it), every later run into the same
    /// directory adds the log since (an increment). `paddock backup verify` checks a chain.
    ///
    /// Example: PADDOCK_NODE=https://10.0.0.2:7001 paddock backup --to /backups/paddock/2026-12
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Backup {
        #[command(subcommand)]
        action: Option<BackupCmd>,
        #[command(flatten)]
        target: Target,
        /// The chain's directory, or s3://bucket/prefix (credentials from the AWS_* environment):
        /// empty or new for a full backup, the chain's own for an increment.
        #[arg(long, required = true)]
        to: Option<String>,
        /// Encrypt a new chain with this key (32 bytes, or 64 hex digits; or PADDOCK_BACKUP_KEY
        /// in hex): never stored with the backup. An encrypted chain needs it for every run.
        #[arg(long)]
        backup_key_file: Option<PathBuf>,
    },
    /// Seed one node's data directory of a new cluster from a backup chain, at its end or at a
    /// point in it (just before a mistake). Run it for every member, then start them.
    ///
    /// Example: paddock restore --from /backups/c1 --to-index 51234 --cluster-id paddock-r --node-id 1
    /// --bootstrap 1=10.0.0.1:7101,2=10.0.0.2:7101,3=10.0.0.3:7101 --data-dir /var/lib/paddock
    Restore {
        /// The chain's directory, or s3://bucket/prefix.
        #[arg(long)]
        from: String,
        /// Restore up to and including this log index.
        #[arg(long, conflicts_with_all = ["to_time_ms", "to_time"])]
        to_index: Option<u64>,
        /// Restore every entry stamped at or before this UTC time, in milliseconds.
        #[arg(long, conflicts_with = "to_time")]
        to_time_ms: Option<u64>,
        /// Restore every entry stamped at or before this time, RFC 3339 with its offset
        /// (2026-12-07T21:14:59.500Z, 2026-12-07T22:14:59+01:00).
        #[arg(long, value_parser = parse_rfc3339_ms)]
        to_time: Option<u64>,
        #[command(flatten)]
        node: NewNode,
        /// Restore even though a member answers at its peer address: only to seed one node of a
        /// new cluster whose other members already run (a live cluster is refused otherwise).
        #[arg(long)]
        allow_live_peers: bool,
        /// The chain's key, if it is encrypted (or PADDOCK_BACKUP_KEY in hex).
        #[arg(long)]
        backup_key_file: Option<PathBuf>,
    },
    /// A regulator export for a time range from a backup chain: every bet placed, every money
    /// movement and the audit trail, with a manifest of SHA-256 digests, into a new directory.
    ///
    /// Example: paddock export --from /backups/chain-1764979200000 --since-ms 1764979200000
    /// --until-ms 1765584000000 --out /exports/2025-w49
    Export {
        /// The chain's directory, or s3://bucket/prefix.
        #[arg(long)]
        from: String,
        /// The range starts at this UTC time, in milliseconds (inclusive).
        #[arg(long)]
        since_ms: u64,
        /// The range ends at this UTC time, in milliseconds (exclusive).
        #[arg(long)]
        until_ms: u64,
        /// A new, empty directory for the files.
        #[arg(long)]
        out: PathBuf,
        /// The chain's key, if it is encrypted (or PADDOCK_BACKUP_KEY in hex).
        #[arg(long)]
        backup_key_file: Option<PathBuf>,
    },
    /// Incident records: list them (an export, as JSON), open one by hand, close one.
    ///
    /// Example: paddock incidents close --id 3 --resolution "power restored; every node caught up"
    Incidents {
        #[command(subcommand)]
        action: IncidentsCmd,
    },
    /// Change the cluster's membership.
    ///
    /// Example: paddock members add --id 4 --peer 10.0.0.4:7101 && paddock members promote --id 4
    Members {
        #[command(subcommand)]
        action: MembersCmd,
    },
    /// Disaster recovery: promote a standby site's node into a new cluster when the primary
    /// site is lost, and fail back to the primary site once it is rebuilt.
    ///
    /// Example: paddock dr promote --from /var/lib/paddock --data-dir /var/lib/paddock-dr
    /// --cluster-id paddock-dr --node-id 4 --bootstrap 4=10.1.0.4:7101
    Dr {
        #[command(subcommand)]
        action: dr::DrCmd,
    },
    /// Roll the cluster to a new build one node at a time, with no failed request: followers
    /// first, each replaced by your command and waited for until it is back and caught up, then
    /// the leader after handing its leadership to an upgraded node. docs/deployment.md,
    /// "Rolling upgrade".
    ///
    /// Example: paddock upgrade --node https://lb:8443 --ca-cert ca.pem
    /// --replace 'docker-compose up -d --no-deps --force-recreate node{id}' --expect-version 0.2.0
    Upgrade {
        #[command(flatten)]
        target: Target,
        /// Shell command that replaces one node with the new build on its data directory
        /// (stops it, which drains it, and starts the new build); `{id}` is the node's id.
        #[arg(long)]
        replace: String,
        /// The version the new build announces (`paddock --version` of it): the roll waits
        /// for each node to announce it, and skips nodes that already do.
        #[arg(long)]
        expect_version: Option<String>,
        /// Seconds a replaced node may take to come back and catch up before the roll stops.
        #[arg(long, default_value_t = 180)]
        catch_up_timeout_s: u64,
    },
    /// Hand leadership to another node.
    ///
    /// Example: paddock transfer-leader --to 2
    TransferLeader {
        #[command(flatten)]
        target: Target,
        /// Node id to lead.
        #[arg(long)]
        to: u64,
    },
}

/// A node of a new cluster whose data directory a command seeds (`restore`, `dr promote`).
#[derive(clap::Args)]
pub(crate) struct NewNode {
    /// The new cluster's id (its nodes refuse peers of another).
    #[arg(long)]
    pub(crate) cluster_id: String,
    /// This node's id in the new cluster.
    #[arg(long)]
    pub(crate) node_id: u64,
    /// Every voter of the new cluster: id=peer-address, comma-separated.
    #[arg(long)]
    pub(crate) bootstrap: String,
    /// The new node's data directory: must be empty or absent.
    #[arg(long)]
    pub(crate) data_dir: PathBuf,
    /// Replace what is in --data-dir (never while a node runs on it).
    #[arg(long)]
    pub(crate) force: bool,
}

/// Where an operator command goes and on whose authority.
#[derive(clap::Args, Clone)]
struct Target {
    /// Any node's URL, or its host:port (then https:// with --ca-cert, else http://).
    #[arg(long, env = "PADDOCK_NODE", default_value = "http://127.0.0.1:7001")]
    node: String,
    /// The acting principal's API key (recorded in the audit trail by its principal's name).
    /// Prefer the environment variable: a flag shows in the process list.
    #[arg(long, env = "PADDOCK_KEY", hide_env_values = true)]
    key: Option<String>,
    /// The cluster CA's certificate, to trust for an https:// node.
    #[arg(long, env = "PADDOCK_CA")]
    ca_cert: Option<PathBuf>,
}

impl Target {
    /// The node's URL: as given, or `host:port` with the scheme the CA option implies.
    fn url(&self) -> String {
        let node = self.node.trim().trim_end_matches('/');
        if node.starts_with("http://") || node.starts_with("https://") {
            node.to_string()
        } else if self.ca_cert.is_some() {
            format!("https://{node}")
        } else {
            format!("http://{node}")
        }
    }

    fn client(&self) -> Result<Client> {
        let Some(key) = &self.key else {
            bail!("this command needs an API key: set PADDOCK_KEY (or pass --key); `paddock demo` prints one")
        };
        let url = self.url();
        let client = Client::new(vec![url.clone()], Duration::from_secs(10)).with_token(key);
        match &self.ca_cert {
            Some(path) => {
                let pem = std::fs::read(path).with_context(|| format!("cannot read the CA file {}", path.display()))?;
                Ok(client.with_ca_pem(&pem)?)
            }
            None if url.starts_with("https://") => {
                bail!("{url} is https: give the cluster's CA certificate with --ca-cert or PADDOCK_CA")
            }
            None => Ok(client),
        }
    }
}

/// `paddock status` for a person: the node's view, then one line per member.
fn status_table(c: &paddock_api::wire::ClusterBody) -> String {
    let leader = c.leader_id.map_or("none known".to_string(), |l| format!("node {l}"));
    let mut out = format!(
        "cluster {}: node {} is {} in term {}; leader {leader}\n\
         log: last {}, committed {}, applied {}, snapshot {}; clock {}\n\n",
        c.cluster_id,
        c.node_id,
        c.role,
        c.term,
        c.last_log_index,
        c.commit_index,
        c.applied_index,
        c.snapshot_index,
        if c.clock_synchronized { "agrees with a majority" } else { "NOT synchronized" },
    );
    if let Some(up_to) = c.repairing_up_to {
        out.push_str(&format!(
            "REPAIRING damaged storage: fetching the log from the leader up to index {up_to}; not voting until then\n\n"
        ));
    }
    if let Some(format) = c.entry_format {
        out.push_str(&format!("every member reads log entry format {format} (or newer)\n\n"));
    }
    out.push_str(&format!(
        "{:<6} {:<24} {:<8} {:>10} {:>8}  {:<6} {}\n",
        "node", "peer address", "kind", "matched", "lag", "format", "version"
    ));
    for m in &c.members {
        let dash = || "-".to_string();
        out.push_str(&format!(
            "{:<6} {:<24} {:<8} {:>10} {:>8}  {:<6} {}\n",
            m.node_id,
            m.peer_addr,
            if m.voter { "voter" } else { "learner" },
            m.matched_index.map_or_else(dash, |i| i.to_string()),
            m.lag.map_or_else(dash, |l| l.to_string()),
            m.entry_format.map_or_else(dash, |f| f.to_string()),
            m.version.clone().unwrap_or_else(dash),
        ));
    }
    if c.role != "leader" {
        out.push_str("(matched index, lag, format and version are known on the leader: ask it for them)\n");
    }
    out
}

#[derive(Subcommand)]
enum KeysCmd {
    /// Make a key on this machine, without any node: for a node's static keys file (the
    /// break-glass operator key that creates the first principals). Prints the key, once,
    /// and the line to append to the file given to `paddock start --static-keys`.
    ///
    /// Example: paddock keys new --principal root --role operator   (then append the printed
    /// static_keys_line to the file given to --static-keys)
    New {
        /// Principal name, e.g. "root".
        #[arg(long)]
        principal: String,
        /// bettor, trader, operator, auditor or service.
        #[arg(long)]
        role: String,
    },
    /// Make a key on this machine and register its digest for a principal; prints the key once.
    ///
    /// Example: paddock keys issue --principal tess --ttl-s 3600
    Issue {
        #[command(flatten)]
        target: Target,
        /// Principal name.
        #[arg(long)]
        principal: String,
        /// Lifetime in seconds (a person's key: at most the node's interactive_key_ttl_max_s).
        #[arg(long)]
        ttl_s: Option<u64>,
    },
    /// Revoke a key on every node.
    ///
    /// Example: paddock keys revoke --id 1a2b3c4d5e6f7081
    Revoke {
        #[command(flatten)]
        target: Target,
        /// The key id (16 hex digits, the part after `pdk_`).
        #[arg(long)]
        id: String,
    },
}

#[derive(Subcommand)]
enum AuditCmd {
    /// Write the whole audit trail of a live node to a JSON file (an operator's or an
    /// auditor's key).
    ///
    /// Example: PADDOCK_KEY=pdk_... paddock audit export --out audit.json
    Export {
        #[command(flatten)]
        target: Target,
        /// The file to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Verify the hash chain end to end, from a live node or from an export: every record
    /// decodes, says what its fields say, and links to the one before. Exits non-zero, naming
    /// the first bad record, if not.
    ///
    /// Example: paddock audit verify --file audit.json
    Verify {
        #[command(flatten)]
        target: Target,
        /// An export written by `paddock audit export` (else the trail of --node).
        #[arg(long)]
        file: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum PrincipalsCmd {
    /// Create a principal.
    ///
    /// Example: paddock principals create --name ann@example.com --role bettor --accounts 1001,1002
    Create {
        #[command(flatten)]
        target: Target,
        /// Name: 1-64 of a-z, 0-9, '.', '_', '@', '-'.
        #[arg(long)]
        name: String,
        /// bettor, trader, operator, auditor or service.
        #[arg(long)]
        role: String,
        /// A bettor's accounts, e.g. "1001,1002".
        #[arg(long, value_delimiter = ',')]
        accounts: Vec<u64>,
    },
    /// Give a bettor one more account.
    ///
    /// Example: paddock principals bind --name ann@example.com --account 1003
    Bind {
        #[command(flatten)]
        target: Target,
        /// Bettor's name.
        #[arg(long)]
        name: String,
        /// Account id.
        #[arg(long)]
        account: u64,
    },
    /// List principals and their keys (never the keys' secrets).
    ///
    /// Example: paddock principals list
    List {
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Subcommand)]
enum BackupCmd {
    /// Re-read every file of a chain, check its checksums and index ranges, and replay it to
    /// confirm each recorded state hash. Names the first bad file; exit code 1 if any.
    ///
    /// Example: paddock backup verify --from /backups/paddock/2026-12
    Verify {
        /// The chain's directory, or s3://bucket/prefix.
        #[arg(long)]
        from: String,
        /// The chain's key, if it is encrypted (or PADDOCK_BACKUP_KEY in hex).
        #[arg(long)]
        backup_key_file: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum IncidentsCmd {
    /// Every incident record, oldest first, as JSON.
    ///
    /// Example: paddock incidents list > incidents.json
    List {
        #[command(flatten)]
        target: Target,
    },
    /// Open an incident for a failure no node detects by itself.
    ///
    /// Example: paddock incidents open --cause "data centre A lost power" --node-id 3
    Open {
        #[command(flatten)]
        target: Target,
        /// What happened, e.g. "data centre A lost power".
        #[arg(long)]
        cause: String,
        /// The node it touched (default: not one node). Not `--node`: that names the node to
        /// send the command to.
        #[arg(long = "node-id", default_value_t = 0)]
        node_id: u64,
    },
    /// Close an incident with how it ended.
    ///
    /// Example: paddock incidents close --id 3 --resolution "power restored; every node caught up"
    Close {
        #[command(flatten)]
        target: Target,
        /// The incident's number.
        #[arg(long)]
        id: u64,
        /// How it ended, e.g. "power restored; every node caught up".
        #[arg(long)]
        resolution: String,
    },
}

fn role(text: &str) -> Result<paddock_api::Role> {
    paddock_api::Role::parse(text)
        .with_context(|| format!("role {text:?} is not one of bettor, trader, operator, auditor, service"))
}

#[derive(Subcommand)]
enum MembersCmd {
    /// Add a node as a learner (it replicates the log but does not vote until promoted).
    ///
    /// Example: paddock members add --id 4 --peer 10.0.0.4:7101
    Add {
        #[command(flatten)]
        target: Target,
        /// New node's id.
        #[arg(long)]
        id: u64,
        /// New node's peer address.
        #[arg(long)]
        peer: String,
    },
    /// Promote a learner to voter.
    ///
    /// Example: paddock members promote --id 4
    Promote {
        #[command(flatten)]
        target: Target,
        /// Node id.
        #[arg(long)]
        id: u64,
    },
    /// Remove a node.
    ///
    /// Example: paddock members remove --id 4
    Remove {
        #[command(flatten)]
        target: Target,
        /// Node id.
        #[arg(long)]
        id: u64,
    },
    /// Make a voter a learner again: it keeps replicating and no longer votes.
    ///
    /// Example: paddock members demote --id 4
    Demote {
        #[command(flatten)]
        target: Target,
        /// Node id.
        #[arg(long)]
        id: u64,
    },
}

/// `paddock start`: a TOML file and/or flags; flags override the file.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct StartArgs {
    /// TOML configuration file.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Node id (non-zero).
    #[arg(long)]
    pub node_id: Option<u64>,
    /// Cluster name.
    #[arg(long)]
    pub cluster_id: Option<String>,
    /// Data directory.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// HTTP listen address.
    #[arg(long)]
    pub http: Option<SocketAddr>,
    /// Peer (gRPC) listen address.
    #[arg(long)]
    pub peer: Option<SocketAddr>,
    /// Address other nodes dial to reach this one (defaults to --peer).
    #[arg(long)]
    pub peer_advertise: Option<String>,
    /// Source IP for outgoing peer connections.
    #[arg(long)]
    pub peer_source_ip: Option<std::net::IpAddr>,
    /// Initial voters, e.g. "1=127.0.0.1:7101,2=127.0.0.1:7102,3=127.0.0.1:7103".
    #[arg(long)]
    pub bootstrap: Option<String>,
    /// Snapshot every N log entries.
    #[arg(long)]
    pub snapshot_logs: Option<u64>,
    /// Log entries kept behind the newest snapshot when the log is purged (default: the
    /// snapshot interval + 1000; smaller values are refused).
    #[arg(long)]
    pub snapshot_log_keep: Option<u64>,
    /// Bytes per chunk when this node, as leader, sends a snapshot to a follower (default
    /// 4 MiB, at most 16 MiB).
    #[arg(long)]
    pub snapshot_chunk_bytes: Option<usize>,
    /// Cluster time: the largest offset (ms) from a majority of the voters' clocks at which
    /// this node, as leader, still stamps commands.
    #[arg(long)]
    pub clock_offset_max_ms: Option<u64>,
    /// Test only: added to this node's wall clock, to test clock faults.
    #[arg(long, hide = true, allow_hyphen_values = true)]
    pub clock_offset_ms: Option<i64>,
    /// Test only: a file of milliseconds added to this node's wall clock, re-read while it runs.
    #[arg(long, hide = true)]
    pub clock_offset_file: Option<PathBuf>,
    /// Raft heartbeat period, ms.
    #[arg(long)]
    pub heartbeat_ms: Option<u64>,
    /// Raft election timeout, lower bound, ms.
    #[arg(long)]
    pub election_timeout_min_ms: Option<u64>,
    /// Raft election timeout, upper bound, ms (also openraft's leader lease).
    #[arg(long)]
    pub election_timeout_max_ms: Option<u64>,
    /// Per-principal rate limit (requests/s, 0 = off).
    #[arg(long)]
    pub rate_limit: Option<u32>,
    /// Per-source-IP rate limit (requests/s, 0 = off).
    #[arg(long)]
    pub rate_limit_per_ip: Option<u32>,
    /// R8: the SHA-256 the running binary must have (a mismatch raises an alarm).
    #[arg(long)]
    pub expected_binary_sha256: Option<String>,
    /// R8: the SHA-256 the effective configuration must have (`GET /v1/self-check` shows it).
    #[arg(long)]
    pub expected_config_sha256: Option<String>,
    /// SSE streams one principal may hold open on this node.
    #[arg(long)]
    pub sse_streams_per_principal: Option<usize>,
    /// Open client connections this node holds at most (default 4096).
    #[arg(long)]
    pub connections_max: Option<usize>,
    /// At a stop, ms the node keeps serving with readiness failing so that a load balancer
    /// stops sending it requests, before it stops accepting connections (default 1000).
    #[arg(long)]
    pub drain_ms: Option<u64>,
    /// `/metrics` answers only the key of an operator, auditor or service principal.
    #[arg(long)]
    pub metrics_require_key: bool,
    /// Failed authentications per second one source address may make before it gets 429
    /// (default 20; 0 turns the limit off).
    #[arg(long)]
    pub auth_failures_per_ip: Option<u32>,
    /// File of static API keys (`paddock keys new` prints its lines).
    #[arg(long)]
    pub static_keys: Option<PathBuf>,
    /// The cluster CA certificate (PEM); with --tls-cert and --tls-key the API serves HTTPS
    /// only and peers speak mutual TLS (`paddock certs` makes all three).
    #[arg(long)]
    pub tls_ca: Option<PathBuf>,
    /// This node's certificate (PEM); re-read when the file changes.
    #[arg(long)]
    pub tls_cert: Option<PathBuf>,
    /// This node's private key (PEM); re-read when the file changes.
    #[arg(long)]
    pub tls_key: Option<PathBuf>,
    /// Allow plain HTTP and unauthenticated peers on addresses outside loopback (logged
    /// loudly): only for a network that is private by other means.
    #[arg(long)]
    pub insecure_plaintext: bool,
    /// Concurrent requests before shedding load.
    #[arg(long)]
    pub concurrency_limit: Option<usize>,
    /// Log JSON lines.
    #[arg(long)]
    pub log_json: bool,
    /// Log one line per request (and per request served for a follower) with its request id.
    #[arg(long)]
    pub access_log: bool,
    /// Take scheduled backups into chains under this directory.
    #[arg(long)]
    pub backup_dir: Option<PathBuf>,
    /// Seconds between scheduled backups (300).
    #[arg(long)]
    pub backup_interval_s: Option<u64>,
    /// Backup chains kept under --backup-dir (2).
    #[arg(long)]
    pub backup_chains_kept: Option<usize>,
    /// Start a new backup chain (a full backup) once the newest began this many days ago (1).
    #[arg(long)]
    pub backup_new_chain_days: Option<u64>,
    /// Delete backup chains whose last backup is older than this many days (never the one in use).
    #[arg(long)]
    pub backup_keep_days: Option<u64>,
    /// Encrypt scheduled backups with the key in this file (32 bytes or 64 hex digits).
    #[arg(long)]
    pub backup_key_file: Option<PathBuf>,
    /// Copy every scheduled backup chain to s3://bucket/prefix after each backup (credentials
    /// from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT).
    #[arg(long)]
    pub backup_s3: Option<String>,
    /// Archive settled history this many seconds after its market's latest result (604800 = 7
    /// days; 0: keep everything in memory).
    #[arg(long)]
    pub history_retention_s: Option<u64>,
    /// Seconds between the leader's checks for history to archive (60).
    #[arg(long)]
    pub history_interval_s: Option<u64>,
    /// Self-healing: nodes that may replace a voter unreachable for --replace-voter-after-s
    /// (this site's voters and standby learners, comma-separated; never a DR learner). Unset:
    /// voters are never replaced automatically.
    #[arg(long, value_delimiter = ',')]
    pub replace_voter_pool: Option<Vec<u64>>,
    /// Seconds a voter must be unreachable before a caught-up standby replaces it (30).
    #[arg(long)]
    pub replace_voter_after_s: Option<u64>,
    /// Gray failure: as leader, hand leadership off when this node's fsync stays above this many
    /// times the followers' median (and above 10 ms) for --slow-disk-for-s (5; 0: never).
    #[arg(long)]
    pub slow_disk_ratio: Option<u32>,
    /// Seconds the leader's disk must stay slow before it hands leadership off (10).
    #[arg(long)]
    pub slow_disk_for_s: Option<u64>,
    /// Test only: a file of milliseconds added to every fsync of the Raft log, re-read while
    /// the node runs.
    #[arg(long, hide = true)]
    pub fsync_delay_file: Option<PathBuf>,
    /// Run the node as a child process and start it again when it dies, after a pause that
    /// doubles with each death in a row; give up (exit code 70) on a crash loop.
    #[arg(long)]
    pub supervise: bool,
    /// Under --supervise: deaths allowed within --supervise-window-s; one more is a crash loop.
    #[arg(long, default_value_t = 5)]
    pub supervise_restarts_max: u32,
    /// Under --supervise: the window deaths are counted in, seconds; a node up this long resets
    /// the pause.
    #[arg(long, default_value_t = 300)]
    pub supervise_window_s: u64,
    /// Under --supervise: the first pause before a restart, ms.
    #[arg(long, default_value_t = 1000)]
    pub supervise_backoff_ms: u64,
    /// Under --supervise: the longest pause before a restart, ms.
    #[arg(long, default_value_t = 30_000)]
    pub supervise_backoff_max_ms: u64,
}

/// An RFC 3339 time with its offset, as UTC milliseconds: `--to-time`.
fn parse_rfc3339_ms(text: &str) -> Result<u64, String> {
    let at = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).map_err(|e| {
        format!(
            "{e}: give an RFC 3339 time with its offset, such as 2026-12-07T21:14:59Z or 2026-12-07T22:14:59.500+01:00"
        )
    })?;
    u64::try_from(at.unix_timestamp_nanos() / 1_000_000).map_err(|_| "the time is before 1970".to_string())
}

fn parse_members(text: &str) -> Result<BTreeMap<u64, String>> {
    text.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|pair| {
            let (id, addr) = pair.split_once('=').with_context(|| format!("{pair:?} is not id=address"))?;
            Ok((id.trim().parse().with_context(|| format!("bad node id in {pair:?}"))?, addr.trim().to_string()))
        })
        .collect()
}

fn build_config(args: &StartArgs) -> Result<NodeConfig> {
    let mut config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            NodeConfig::from_toml(&text).with_context(|| format!("invalid config {}", path.display()))?
        }
        None => {
            let (Some(id), Some(dir), Some(http), Some(peer)) = (args.node_id, &args.data_dir, args.http, args.peer)
            else {
                bail!("without --config, --node-id, --data-dir, --http and --peer are required");
            };
            NodeConfig::new(id, dir.clone(), http, peer)
        }
    };
    if let Some(v) = args.node_id {
        config.node_id = v;
    }
    if let Some(v) = &args.cluster_id {
        config.cluster_id = v.clone();
    }
    if let Some(v) = &args.data_dir {
        config.data_dir = v.clone();
    }
    if let Some(v) = args.http {
        config.http_listen = v;
    }
    if let Some(v) = args.peer {
        config.peer_listen = v;
    }
    if let Some(v) = &args.peer_advertise {
        config.peer_advertise = Some(v.clone());
    }
    if let Some(v) = args.peer_source_ip {
        config.peer_source_ip = Some(v);
    }
    if let Some(v) = &args.bootstrap {
        config.bootstrap = parse_members(v)?;
    }
    if let Some(v) = args.snapshot_logs {
        config.snapshot_logs_since_last = v;
    }
    if let Some(v) = args.snapshot_chunk_bytes {
        config.snapshot_chunk_bytes = v;
    }
    if let Some(v) = args.snapshot_log_keep {
        config.snapshot_log_keep = Some(v);
    }
    if let Some(v) = args.clock_offset_max_ms {
        config.clock_offset_max_ms = v;
    }
    if let Some(v) = args.clock_offset_ms {
        config.clock_offset_ms = v;
    }
    if let Some(v) = &args.clock_offset_file {
        config.clock_offset_file = Some(v.clone());
    }
    if let Some(v) = args.heartbeat_ms {
        config.heartbeat_ms = v;
    }
    if let Some(v) = args.election_timeout_min_ms {
        config.election_timeout_min_ms = v;
    }
    if let Some(v) = args.election_timeout_max_ms {
        config.election_timeout_max_ms = v;
    }
    if let Some(v) = args.rate_limit {
        config.rate_limit_per_principal_per_s = v;
    }
    if let Some(v) = args.rate_limit_per_ip {
        config.rate_limit_per_ip_per_s = v;
    }
    if let Some(v) = &args.expected_binary_sha256 {
        config.expected_binary_sha256 = Some(v.clone());
    }
    if let Some(v) = &args.expected_config_sha256 {
        config.expected_config_sha256 = Some(v.clone());
    }
    if let Some(v) = args.auth_failures_per_ip {
        config.auth_failures_per_ip_per_s = v;
    }
    if args.metrics_require_key {
        config.metrics_require_key = true;
    }
    if let Some(v) = args.connections_max {
        config.connections_max = v;
    }
    if let Some(v) = args.drain_ms {
        config.drain_ms = v;
    }
    if let Some(v) = args.sse_streams_per_principal {
        config.sse_streams_per_principal_max = v;
    }
    if let Some(v) = &args.tls_ca {
        config.tls_ca_file = Some(v.clone());
    }
    if let Some(v) = &args.tls_cert {
        config.tls_cert_file = Some(v.clone());
    }
    if let Some(v) = &args.tls_key {
        config.tls_key_file = Some(v.clone());
    }
    if args.insecure_plaintext {
        config.insecure_plaintext = true;
    }
    if let Some(v) = &args.static_keys {
        config.static_keys_file = Some(v.clone());
    }
    if let Some(v) = args.concurrency_limit {
        config.concurrency_limit = v;
    }
    config.log_json |= args.log_json;
    config.access_log |= args.access_log;
    if let Some(dir) = &args.backup_dir {
        config.backup_dir = Some(dir.clone());
    }
    if let Some(v) = args.backup_interval_s {
        config.backup_interval_s = v;
    }
    if let Some(v) = args.backup_chains_kept {
        config.backup_chains_kept = v;
    }
    if let Some(v) = args.backup_new_chain_days {
        config.backup_new_chain_days = v;
    }
    if let Some(v) = args.backup_keep_days {
        config.backup_keep_days = Some(v);
    }
    if let Some(file) = &args.backup_key_file {
        config.backup_key_file = Some(file.clone());
    }
    if let Some(url) = &args.backup_s3 {
        config.backup_s3 = Some(url.clone());
    }
    if let Some(v) = args.history_retention_s {
        config.history_retention_s = v;
    }
    if let Some(v) = args.history_interval_s {
        config.history_interval_s = v;
    }
    if let Some(pool) = &args.replace_voter_pool {
        config.replace_voter_pool = pool.clone();
    }
    if let Some(v) = args.replace_voter_after_s {
        config.replace_voter_after_s = v;
    }
    if let Some(v) = args.slow_disk_ratio {
        config.slow_disk_ratio = v;
    }
    if let Some(v) = args.slow_disk_for_s {
        config.slow_disk_for_s = v;
    }
    if let Some(file) = &args.fsync_delay_file {
        config.fsync_delay_file = Some(file.clone());
    }
    config.validate().map_err(anyhow::Error::msg)?;
    Ok(config)
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler installs");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

fn start(args: StartArgs) -> Result<()> {
    let config = build_config(&args)?;
    if args.supervise {
        // The configuration is checked above, once: a mistake in it is refused here instead of
        // becoming a crash loop.
        let policy = supervise::Policy {
            restarts_max: args.supervise_restarts_max,
            window: Duration::from_secs(args.supervise_window_s),
            backoff_first: Duration::from_millis(args.supervise_backoff_ms),
            backoff_max: Duration::from_millis(args.supervise_backoff_max_ms.max(args.supervise_backoff_ms)),
        };
        let code = supervise::run(policy, supervise::child_args(std::env::args_os().skip(1)))?;
        std::process::exit(code);
    }
    paddock_node::init_logging(config.log_json, config.access_log);
    // A panic anywhere — a broken ledger invariant in the apply task above all — must stop the
    // process, not just the task it happened in: a replica that computed a wrong book must
    // not keep serving it. The supervisor restarts it and it recovers from the log.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default_hook(info);
        tracing::error!(%info, "panic: stopping the process");
        std::process::abort();
    }));
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(paddock_node::run(config, shutdown_signal()))
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Start(args) => start(*args),
        Cmd::Demo(args) => demo::run(args),
        Cmd::Certs { cluster_id, nodes, hosts, days, out } => {
            let written = certs::make(&certs::CertsRequest {
                cluster_id: &cluster_id,
                nodes: &nodes,
                hosts: &hosts,
                valid_for: Duration::from_secs(days.saturating_mul(86_400)),
                out: &out,
            })?;
            println!("{}", serde_json::to_string_pretty(&written)?);
            Ok(())
        }
        Cmd::Backup { action: Some(BackupCmd::Verify { from, backup_key_file }), .. } => {
            let key = backup::key(backup_key_file.as_deref())?;
            let chain = backup::open_blocking(&from)?;
            println!("{}", serde_json::to_string_pretty(&paddock_backup::verify(chain.dir(), key.as_ref())?)?);
            Ok(())
        }
        Cmd::Restore { from, to_index, to_time_ms, to_time, node, allow_live_peers, backup_key_file } => {
            let key = backup::key(backup_key_file.as_deref())?;
            let members = parse_members(&node.bootstrap)?;
            let point = match (to_index, to_time_ms.or(to_time)) {
                (Some(n), _) => paddock_backup::Point::Index(n),
                (None, Some(t)) => paddock_backup::Point::Time(t),
                (None, None) => paddock_backup::Point::End,
            };
            let chain = backup::open_blocking(&from)?;
            let restored = paddock_backup::restore(&paddock_backup::RestoreRequest {
                from: chain.dir(),
                point,
                cluster_id: &node.cluster_id,
                node_id: node.node_id,
                members: &members,
                data_dir: &node.data_dir,
                force: node.force,
                allow_live_peers,
                key: key.as_ref(),
            })?;
            println!("{}", serde_json::to_string_pretty(&restored)?);
            Ok(())
        }
        Cmd::Export { from, since_ms, until_ms, out, backup_key_file } => {
            let manifest = export::run(export::Args { from, since_ms, until_ms, out, backup_key_file })?;
            println!("{}", serde_json::to_string_pretty(&manifest)?);
            Ok(())
        }
        Cmd::Load(args) => load::run(args),
        Cmd::Drill { drill } => drill::run(drill),
        Cmd::Dr { action } => dr::run(action),
        other => {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime
                .block_on(async move {
                    let value = match other {
                        Cmd::Status { target, json } => {
                            let cluster = target.client()?.cluster().await?;
                            if !json {
                                print!("{}", status_table(&cluster));
                                return Ok(());
                            }
                            serde_json::to_value(cluster)?
                        }
                        Cmd::Upgrade { target, replace, expect_version, catch_up_timeout_s } => {
                            let args = upgrade::Args {
                                replace,
                                expect_version,
                                catch_up_timeout: Duration::from_secs(catch_up_timeout_s),
                            };
                            upgrade::run(&target.client()?, &args).await?;
                            return Ok(());
                        }
                        Cmd::TransferLeader { target, to } => {
                            serde_json::to_value(target.client()?.transfer_leader(to).await?)?
                        }
                        Cmd::Members { action } => match action {
                            MembersCmd::Add { target, id, peer } => {
                                serde_json::to_value(target.client()?.add_member(id, &peer).await?)?
                            }
                            MembersCmd::Promote { target, id } => {
                                serde_json::to_value(target.client()?.promote(id).await?)?
                            }
                            MembersCmd::Remove { target, id } => {
                                serde_json::to_value(target.client()?.remove_member(id).await?)?
                            }
                            MembersCmd::Demote { target, id } => {
                                serde_json::to_value(target.client()?.demote(id).await?)?
                            }
                        },
                        Cmd::Keys { action } => match action {
                            KeysCmd::New { principal, role: r } => {
                                let key = paddock_client::new_api_key();
                                let line = paddock_client::static_key_line(&principal, role(&r)?, &key);
                                serde_json::json!({ "key": key.expose(), "static_keys_line": line })
                            }
                            KeysCmd::Issue { target, principal, ttl_s } => {
                                let key = paddock_client::new_api_key();
                                let issued = target
                                    .client()?
                                    .issue_key_digest(&principal, &key, ttl_s, &paddock_client::fresh_key())
                                    .await?;
                                serde_json::json!({
                                    "principal": principal,
                                    "key_id": issued.key_id,
                                    "key": key.expose(),
                                    "expires_at_ms": issued.expires_at_ms,
                                })
                            }
                            KeysCmd::Revoke { target, id } => serde_json::to_value(
                                target.client()?.revoke_key(&id, &paddock_client::fresh_key()).await?,
                            )?,
                        },
                        Cmd::Audit { action } => match action {
                            AuditCmd::Export { target, out } => {
                                let trail = target.client()?.audit_trail().await?;
                                let verified = paddock_api::convert::verify_audit_export(&trail)
                                    .map_err(|e| anyhow::anyhow!("the node's audit trail does not verify: {e}"))?;
                                std::fs::write(&out, serde_json::to_vec_pretty(&trail)?)
                                    .with_context(|| format!("cannot write {}", out.display()))?;
                                serde_json::json!({ "file": out, "records": verified.records, "head": verified.head })
                            }
                            AuditCmd::Verify { target, file } => {
                                let trail: Vec<paddock_api::wire::AuditRecordBody> = match &file {
                                    Some(path) => serde_json::from_slice(
                                        &std::fs::read(path)
                                            .with_context(|| format!("cannot read {}", path.display()))?,
                                    )
                                    .with_context(|| format!("{} is not an audit export", path.display()))?,
                                    None => target.client()?.audit_trail().await?,
                                };
                                let verified = paddock_api::convert::verify_audit_export(&trail)
                                    .map_err(|e| anyhow::anyhow!("audit trail FAILS verification: {e}"))?;
                                serde_json::json!({
                                    "verified": true,
                                    "records": verified.records,
                                    "head": verified.head,
                                    "last_log_index": verified.last_log_index,
                                })
                            }
                        },
                        Cmd::Principals { action } => match action {
                            PrincipalsCmd::Create { target, name, role: r, accounts } => serde_json::to_value(
                                target
                                    .client()?
                                    .create_principal(&name, role(&r)?, &accounts, &paddock_client::fresh_key())
                                    .await?,
                            )?,
                            PrincipalsCmd::Bind { target, name, account } => serde_json::to_value(
                                target.client()?.bind_account(&name, account, &paddock_client::fresh_key()).await?,
                            )?,
                            PrincipalsCmd::List { target } => {
                                serde_json::to_value(target.client()?.principals().await?)?
                            }
                        },
                        Cmd::Backup { action: None, target, to, backup_key_file } => {
                            let to = to.context("--to names the chain's directory or s3://bucket/prefix")?;
                            let key = backup::key(backup_key_file.as_deref())?;
                            let client = target.client()?;
                            let chain = backup::Working::open(&to).await?;
                            let taken = paddock_backup::take_with(
                                &backup::ClientSource(&client),
                                chain.dir(),
                                key.as_ref(),
                                chain.tip(),
                            )
                            .await?;
                            chain.finish().await?;
                            let mut answer = serde_json::to_value(taken)?;
                            // The chain's name, not the scratch copy it was extended in.
                            answer["dir"] = serde_json::Value::String(to);
                            answer
                        }
                        Cmd::Incidents { action } => match action {
                            IncidentsCmd::List { target } => serde_json::to_value(target.client()?.incidents().await?)?,
                            IncidentsCmd::Open { target, cause, node_id } => serde_json::to_value(
                                target.client()?.open_incident(&cause, node_id, &paddock_client::fresh_key()).await?,
                            )?,
                            IncidentsCmd::Close { target, id, resolution } => serde_json::to_value(
                                target.client()?.close_incident(id, &resolution, &paddock_client::fresh_key()).await?,
                            )?,
                        },
                        Cmd::Start(_)
                        | Cmd::Demo(_)
                        | Cmd::Load(_)
                        | Cmd::Drill { .. }
                        | Cmd::Dr { .. }
                        | Cmd::Certs { .. }
                        | Cmd::Restore { .. }
                        | Cmd::Export { .. }
                        | Cmd::Backup { action: Some(_), .. } => {
                            unreachable!("handled above")
                        }
                    };
                    println!("{}", serde_json::to_string_pretty(&value)?);
                    Ok(())
                })
                .map_err(with_node_hint)
        }
    }
}

/// A node nobody answers at is usually a wrong `--node` (or `PADDOCK_NODE`), or a node not
/// started yet: say which setting to check.
fn with_node_hint(error: anyhow::Error) -> anyhow::Error {
    match error.downcast_ref::<paddock_client::ClientError>() {
        Some(paddock_client::ClientError::Unsent(_)) => error.context(
            "no node answered: check --node (or PADDOCK_NODE) names a running node, e.g. --node 127.0.0.1:7001",
        ),
        _ => error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        // clap's own consistency checks (unique argument names in every subcommand, ...),
        // which a release build would otherwise skip.
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn a_restore_time_is_rfc_3339_with_its_offset_and_anything_else_is_refused_with_an_example() {
        assert_eq!(parse_rfc3339_ms("2026-12-07T21:14:59.500Z"), Ok(1_796_678_099_500));
        assert_eq!(parse_rfc3339_ms("2026-12-07T22:14:59.500+01:00"), Ok(1_796_678_099_500));
        for bad in ["2026-12-07 21:14:59", "2026-12-07T21:14:59", "yesterday", "1796678099500"] {
            let error = parse_rfc3339_ms(bad).expect_err(bad);
            assert!(error.contains("such as 2026-12-07T21:14:59Z"), "{bad}: {error}");
        }
    }

    fn target(node: &str, ca: bool) -> Target {
        Target { node: node.to_string(), key: None, ca_cert: ca.then(|| PathBuf::from("ca.pem")) }
    }

    #[test]
    fn a_node_given_as_host_and_port_gets_the_scheme_its_ca_option_implies() {
        assert_eq!(target("127.0.0.1:7001", false).url(), "http://127.0.0.1:7001");
        assert_eq!(target("127.0.0.1:7001", true).url(), "https://127.0.0.1:7001");
        assert_eq!(target("https://n1.example:7001/", false).url(), "https://n1.example:7001");
    }

    #[test]
    fn status_is_a_table_a_person_reads_with_no_debug_text() {
        use paddock_api::wire::{ClusterBody, MemberBody};
        let member = |node_id, voter, lag: Option<u64>| MemberBody {
            node_id,
            peer_addr: format!("127.0.0.1:710{node_id}"),
            voter,
            matched_index: lag.map(|l| 120 - l),
            lag,
            ack_age_ms: lag.map(|_| 30),
            entry_format: Some(1),
            version: Some("0.1.0".into()),
            started_at_ms: Some(1_796_410_000_000),
        };
        let cluster = ClusterBody {
            node_id: 1,
            cluster_id: "paddock".into(),
            role: "leader".into(),
            term: 3,
            leader_id: Some(1),
            last_log_index: 120,
            commit_index: 120,
            applied_index: 120,
            snapshot_index: 100,
            members: vec![member(1, true, Some(0)), member(2, true, Some(4)), member(4, false, None)],
            clock_synchronized: true,
            clock_offsets: vec![],
            book_clock_ms: 0,
            repairing_up_to: None,
            entry_format: Some(1),
        };
        let table = status_table(&cluster);
        assert!(table.starts_with("cluster paddock: node 1 is leader in term 3; leader node 1\n"), "{table}");
        assert!(
            table.contains("2      127.0.0.1:7102           voter           116        4  1      0.1.0"),
            "{table}"
        );
        assert!(table.contains("every member reads log entry format 1"), "{table}");
        assert!(table.contains("learner"), "{table}");
        assert!(!table.contains("Some(") && !table.contains("None"), "{table}");
    }

    #[test]
    fn bootstrap_members_parse_from_id_equals_address_pairs() {
        let m = parse_members("1=127.0.0.1:7101, 2=127.0.0.1:7102").unwrap();
        assert_eq!(m.get(&2).map(String::as_str), Some("127.0.0.1:7102"));
        assert!(parse_members("1:127.0.0.1").is_err());
    }
}
