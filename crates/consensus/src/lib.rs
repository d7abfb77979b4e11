//! Replication of the ledger with openraft: the only crate that names an openraft type.
//!
//! # Layout
//! - `cluster_time`: the voters' clocks sampled, and the gate on stamping commands.
//! - [`types`]: the Raft type configuration and the log payload (a stamped ledger command).
//! - [`records`]: versioned on-disk records that openraft's types are converted into.
//! - [`log_store`]: openraft's log traits over the storage crate's group-commit log.
//! - [`state_machine`]: the ledger in memory, snapshots on disk.
//! - [`transport`]: the peer RPC seam and its receiving [`transport::Handler`].
//! - [`network`] / `server`: the gRPC transport (Raft RPCs, write forwarding, read index).
//! - This file: [`Consensus`], the handle the node uses — write, read, membership, status —
//!   in Paddock's own types.
//!
//! # Architecture invariants
//! - A write is answered only after its entry is committed on a majority (each fsynced) and
//!   applied on this node.
//! - A write is retried inside this crate only when it was certainly not appended (no leader,
//!   the leader refused it before appending, the connection was refused). Anything else is
//!   reported as an unknown outcome; the client retries with the same idempotency key.
//! - The clock is injected: this crate never reads the system time itself.

pub mod backup;
mod cluster_time;
pub mod faults;
pub mod formats;
pub mod log_store;
pub mod network;
pub mod records;
mod repair;
mod replica_lag;
pub mod request_id;
mod server;
#[cfg(feature = "sim")]
pub mod sim_runtime;
pub mod state_machine;
pub mod tls;
pub mod transport;
pub mod types;

/// Generated gRPC code for `proto/peer.proto`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod proto {
    tonic::include_proto!("paddock.peer.v1");
}

pub use cluster_time::{ClockView, Sample};
pub use replica_lag::ReplicaLag;
pub use state_machine::{snapshot_log_keep_min, AppliedEvent, SmData, SNAPSHOT_LOG_KEEP_MARGIN};

use crate::log_store::LogAdapter;
use crate::network::{GrpcTransport, NetworkFactory};
use crate::state_machine::StateMachine;
use crate::transport::{call, Handler, PeerError, Rpc, Transport};
use crate::types::{Raft, Request};
use openraft::async_runtime::WatchReceiver;
use openraft::errors::{ChangeMembershipError, ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers, Config, Instant as _, ReadPolicy, ServerState, SnapshotPolicy};
use paddock_ledger::{Command, Outcome, TimestampMs};
use paddock_storage::{DataDir, Disk, FaultSwitches, Identity, LogStore, StdDisk, WriterMode};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, watch};
// tokio's clock, not std's: under the simulator time is simulated and must not leak in.
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The source of leader timestamps (the node passes the system clock; the simulator its own).
pub type Clock = Arc<dyn Fn() -> TimestampMs + Send + Sync>;

/// Raft timing. The defaults aim at sub-second failover on one site.
///
/// fsync on the reference disk takes ≈0.2–0.6 ms and a loopback or same-site round trip well
/// under 1 ms, so a heartbeat every 40 ms costs nothing. openraft's leader lease equals
/// `election_timeout_max`: a follower refuses to vote while the lease of the leader it last
/// heard from runs, so the first candidate is often refused and a failover takes about two
/// election rounds. With 300–600 ms that measured 1.1 s to a new leader and 1.3 s of client
/// unavailability (p99); with 200–250 ms, 0.49 s and 0.64 s; with 150–180 ms about 0.35 s and
/// under 0.4 s after kill -9 and after SIGSTOP alike (`bench/failover.sh`, BENCHMARKS.md).
/// 150 ms is still more than three missed heartbeats, and 60 s of full load on this 2-core
/// machine saw no election. etcd's defaults (100 ms / 1 s) give ≈2 s of unavailability in the
/// same measurement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// Leader heartbeat period.
    pub heartbeat_ms: u64,
    /// Shortest election timeout.
    pub election_min_ms: u64,
    /// Longest election timeout.
    pub election_max_ms: u64,
}

impl Default for Timing {
    fn default() -> Timing {
        Timing { heartbeat_ms: 40, election_min_ms: 150, election_max_ms: 180 }
    }
}

/// Everything a node needs to start its consensus side.
#[derive(Clone, Debug)]
pub struct ConsensusConfig {
    /// This node's id (non-zero).
    pub node_id: u64,
    /// The cluster's name; nodes and data of other clusters are refused.
    pub cluster_id: String,
    /// Data directory (locked while the node runs).
    pub data_dir: PathBuf,
    /// Address the peer gRPC server listens on.
    pub peer_listen: SocketAddr,
    /// Address other nodes reach this one at.
    pub peer_advertise: String,
    /// Source IP of outgoing peer connections; `None` lets the OS choose.
    pub peer_source_ip: Option<std::net::IpAddr>,
    /// Raft timing.
    pub timing: Timing,
    /// Take a snapshot after this many entries since the last one.
    pub snapshot_logs_since_last: u64,
    /// Log entries kept behind the newest snapshot when the log is purged.
    pub snapshot_log_keep: u64,
    /// Cluster time: how far (ms) this node's clock may be from a majority of the voters' before,
    /// as leader, it stops stamping commands and hands leadership over.
    pub clock_offset_max_ms: u64,
    /// How long a write may wait for commit before its outcome is reported unknown.
    pub write_timeout: Duration,
    /// The other nodes known at start (the bootstrap list, id → peer address). A node whose
    /// data directory is empty asks them whether it is already one of their voters.
    pub peers: BTreeMap<u64, String>,
    /// Mutual TLS between peers; `None`: plain TCP (loopback, or a network private by other
    /// means).
    pub tls: Option<tls::PeerTls>,
    /// Bytes per chunk when this node, as leader, sends a snapshot (at most
    /// [`network::SNAPSHOT_CHUNK_BYTES_MAX`]).
    pub snapshot_chunk_bytes: usize,
}

/// Why consensus could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data directory is locked, foreign, or damaged.
    #[error(transparent)]
    DataDir(#[from] paddock_storage::DataDirError),
    /// The peer address could not be listened on (in use, or not an address of this host).
    #[error("cannot listen for peers on {addr}: {}", crate::listen_reason(source))]
    Listen {
        /// The peer listen address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Disk I/O failed.
    #[error("storage: {0}")]
    Io(#[from] std::io::Error),
    /// Raft refused the configuration or failed to start.
    #[error("raft: {0}")]
    Raft(String),
    /// The TLS material could not be used.
    #[error("peer TLS: {0}")]
    Tls(String),
    /// The data directory is empty, but the cluster already counts this node as a voter: its
    /// data was wiped or replaced. Rejoining as a voter that has seen nothing would forget its
    /// votes and its log, and could help elect two leaders in one term.
    #[error(
        "data directory {dir} is empty, but node {peer} counts node {node} as a voter that has acknowledged log \
         entries: its data was wiped or \
         replaced, and a voter that forgot its votes and log could help elect two leaders. Re-add it instead: \
         `paddock members remove --id {node}` against a running node, start this node again on its empty \
         data directory, then `paddock members add --id {node} --peer <its peer address>` and \
         `paddock members promote --id {node}`"
    )]
    WipedVoter {
        /// The empty data directory.
        dir: PathBuf,
        /// This node.
        node: u64,
        /// The peer that counts it as a voter.
        peer: u64,
    },
    /// The log holds an entry in a format this build cannot decode: a newer build wrote it.
    #[error(
        "data directory {dir} was written by a newer Paddock build ({found}; this build reads log entry formats \
         {first} to {newest}). Start the newer build on it again. Going back to this build needs a restore from \
         a backup taken before the upgrade (paddock restore), or re-adding this node empty so that it recovers \
         from its peers while they still run a build it can follow",
        first = paddock_ledger::ENTRY_FORMAT_FIRST,
        newest = paddock_ledger::ENTRY_FORMAT
    )]
    NewerFormat {
        /// The data directory.
        dir: PathBuf,
        /// The entry and its format, as the log store found them.
        found: String,
    },
    /// The log is purged past the newest intact snapshot (the newest was damaged and the log
    /// after the previous one is gone, or the files were removed): the entries in between are
    /// on no local disk, so this node cannot rebuild its state and must recover from its peers.
    /// What [`state_machine::StateMachine::check_log_follows`] finds; at start, storage repair
    /// (`repair.rs`) acts on it (discards the log and recovers from the peers) rather than
    /// refusing, so the message below is for a caller that checks on its own.
    #[error(
        "data directory {dir} cannot rebuild node {node}'s state: its log is purged up to index {purged}, but {}; \
         the entries in between exist only on the other nodes. Re-add it so that it recovers from them: \
         `paddock members remove --id {node}` against a running node, move this data directory aside (keep it \
         for inspection) and start this node again on an empty one, then \
         `paddock members add --id {node} --peer <its peer address>` and `paddock members promote --id {node}`",
        state_machine::describe_snapshots(*.snapshot, .damaged)
    )]
    SnapshotBehindLog {
        /// The data directory.
        dir: PathBuf,
        /// This node.
        node: u64,
        /// The last purged log index: the log starts after it.
        purged: u64,
        /// Index of the newest intact snapshot, if any.
        snapshot: Option<u64>,
        /// Snapshot files skipped as damaged.
        damaged: Vec<PathBuf>,
    },
    /// Storage is damaged in a way a node cannot repair from its peers by itself (see
    /// `repair.rs`): its vote record, or its repair marker. `what` says which and why.
    #[error(
        "data directory {dir} cannot be used by node {node}: {what}; so it does not repair this by itself. Re-add \
         it so that it recovers from its peers: `paddock members remove --id {node}` against a running node, move this data \
         directory aside (keep it for inspection) and start this node again on an empty one, then \
         `paddock members add --id {node} --peer <its peer address>` and `paddock members promote --id {node}`"
    )]
    Unrepairable {
        /// The data directory.
        dir: PathBuf,
        /// This node.
        node: u64,
        /// What is damaged.
        what: String,
    },
    /// Log entries are damaged on the cluster's only voter: no peer holds another copy.
    #[error(
        "data directory {dir}: {what}; but node {node} is the cluster's only voter, so no peer holds another copy \
         of what would be discarded. Nothing was changed. Restore the node from a backup (`paddock restore`, see \
         docs/operations.md), or run more than one voter so that a damaged replica can repair itself"
    )]
    OnlyCopyDamaged {
        /// The data directory.
        dir: PathBuf,
        /// This node.
        node: u64,
        /// What is damaged.
        what: String,
    },
}

/// How storage I/O that blocks is run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoMode {
    /// On tokio's blocking pool and the log's writer thread (production).
    Threads,
    /// In the calling task (the deterministic simulator: no thread outside the simulation).
    Inline,
}

/// The parts of a node's consensus that need no sockets: what the simulator builds on.
#[derive(Clone, Debug)]
pub struct CoreConfig {
    /// This node's id (non-zero).
    pub node_id: u64,
    /// The cluster's name.
    pub cluster_id: String,
    /// Directory (on the given disk) for the log and snapshots.
    pub data_dir: PathBuf,
    /// Raft timing.
    pub timing: Timing,
    /// Take a snapshot after this many entries since the last one.
    pub snapshot_logs_since_last: u64,
    /// Log entries kept behind the newest snapshot when the log is purged.
    pub snapshot_log_keep: u64,
    /// Cluster time: how far (ms) this node's clock may be from a majority of the voters' before,
    /// as leader, it stops stamping commands and hands leadership over.
    pub clock_offset_max_ms: u64,
    /// How long a write may wait for commit before its outcome is reported unknown.
    pub write_timeout: Duration,
    /// Deliberate storage bugs (simulator only; needs the `fault-injection` feature).
    pub log_faults: FaultSwitches,
    /// Announce applied commands here (subscribe first to see entries replayed at start-up).
    pub applied_events: Option<broadcast::Sender<Arc<AppliedEvent>>>,
    /// Refuse to promote a learner the leader has never replicated to, or that is more than
    /// this many entries behind: a voter that cannot keep up can cost the cluster its majority
    /// (`None`: no check; the simulator promotes mid-install on purpose).
    pub promote_lag_max: Option<u64>,
    /// Bytes per chunk of a snapshot sent to a follower.
    pub snapshot_chunk_bytes: usize,
}

/// Production's [`CoreConfig::promote_lag_max`].
pub const PROMOTE_LAG_MAX: u64 = 1_000;

/// Why a write has no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum WriteError {
    /// No leader is known (election in progress, or this node is cut off from the majority).
    /// The command was not appended.
    #[error("no leader is known; the command was not applied")]
    NoLeader,
    /// The command may or may not have been committed (timeout, leader lost mid-write). Retry
    /// with the same idempotency key to learn which.
    #[error("the outcome is unknown: {0}; retry with the same Idempotency-Key")]
    Unknown(String),
    /// This node has stopped (storage failure or shutdown).
    #[error("this node has stopped: {0}")]
    Stopped(String),
    /// A membership or leadership operation was refused.
    #[error("{0}")]
    Refused(String),
    /// This node leads but its clock disagrees with a majority of the voters: it does not
    /// stamp commands (cluster time). Nothing was appended; retry, another node will lead.
    #[error("{0}")]
    ClockUnsynchronized(String),
    /// The command needs a log-entry format that a member does not read yet (a rolling
    /// upgrade is under way, or stopped half-way): nothing was appended. Finish the upgrade.
    #[error("{0}")]
    FormatNotActive(String),
}

/// A committed write.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Written {
    /// The ledger's answer.
    pub outcome: Outcome,
    /// The log index of the entry.
    pub log_index: u64,
    /// The answer is the remembered one of an earlier command with the same idempotency key
    /// and body: this one changed nothing.
    #[serde(skip)]
    pub replayed: bool,
}

/// Why a linearizable read could not be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// No leader is known, or it could not confirm leadership with a quorum.
    #[error("cannot confirm a leader for a linearizable read: {0}")]
    NoQuorum(String),
    /// This node did not catch up to the read index in time.
    #[error("this node is behind the leader's read index")]
    Behind,
}

/// Role of a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Leads the cluster.
    Leader,
    /// Votes and replicates.
    Follower,
    /// Asking for votes.
    Candidate,
    /// Replicates without a vote.
    Learner,
    /// Stopped.
    Shutdown,
}

impl Role {
    /// The role's name as people and clients read it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Leader => "leader",
            Role::Follower => "follower",
            Role::Candidate => "candidate",
            Role::Learner => "learner",
            Role::Shutdown => "shutdown",
        }
    }
}

/// One member as seen from this node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Node id.
    pub id: u64,
    /// Peer address.
    pub addr: String,
    /// Voter (true) or learner.
    pub voter: bool,
    /// Matched log index (known only on the leader).
    pub matched_index: Option<u64>,
    /// Entries behind the leader's last log index (known only on the leader).
    pub lag: Option<u64>,
    /// Milliseconds since this member last acknowledged the leader's heartbeat or append
    /// (known only on the leader; `None` before its first answer in this term).
    pub ack_age_ms: Option<u64>,
    /// The newest log-entry format it reads and its build version, as it announced them in
    /// its append answers (known only on the leader, and for this node itself).
    pub announced: Option<formats::Announced>,
}

/// The cluster as this node sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterStatus {
    /// This node.
    pub node_id: u64,
    /// Cluster name.
    pub cluster_id: String,
    /// This node's role.
    pub role: Role,
    /// Current term.
    pub term: u64,
    /// Known leader.
    pub leader: Option<u64>,
    /// Last log index.
    pub last_log_index: u64,
    /// Committed index as known here.
    pub commit_index: u64,
    /// Applied index.
    pub applied_index: u64,
    /// Last snapshot's index.
    pub snapshot_index: u64,
    /// Members.
    pub members: Vec<Member>,
    /// Whether the leader heard from a quorum recently (leader only).
    pub quorum_ack_age_ms: Option<u64>,
    /// A membership change is under way: the membership is joint (old and new voters both
    /// decide) until the change's second entry commits.
    pub membership_changing: bool,
    /// This node discarded damaged storage and does not vote until its log is durable up to
    /// this index again (fetched from the leader).
    pub repairing_up_to: Option<u64>,
    /// The newest log-entry format every member reads (known only on the leader): what a
    /// command may need to be proposed (`formats.rs`).
    pub entry_format: Option<u8>,
    /// What this node knows of the voters' clocks (cluster time).
    pub clock: ClockView,
}

/// The Raft log's file in a data directory.
pub const LOG_FILE: &str = "raft-log.redb";
/// The snapshots' folder in a data directory.
pub const SNAPSHOT_DIR: &str = "snapshots";
/// The archive segments' folder in a data directory (settled history out of the state).
pub const ARCHIVE_DIR: &str = "archive";

/// Streams a peer may reset before the peer server accepts them (h2's default is 20).
const PEER_RESET_STREAMS_MAX: usize = 1024;

/// Operations a follower forwards to the leader (the `Forward` RPC).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ForwardOp {
    /// Replicate a command.
    Write(Command),
    /// Add a learner.
    AddLearner {
        /// Node id.
        id: u64,
        /// Peer address.
        addr: String,
    },
    /// Make a learner a voter.
    Promote {
        /// Node id.
        id: u64,
    },
    /// Remove a node.
    Remove {
        /// Node id.
        id: u64,
    },
    /// Hand leadership over.
    TransferLeader {
        /// Node id.
        to: u64,
    },
    /// Which voters does this node's membership have? Answered by any node, leader or not: a
    /// node starting on an empty data directory asks its peers before it takes part.
    Membership,
    /// What does this node's clock read? Answered by any node: cluster time is agreed from
    /// the voters' readings.
    ClockSample,
    /// Make a voter a learner again: it keeps replicating and stops voting (a DR site's node
    /// after failback).
    Demote {
        /// Node id.
        id: u64,
    },
    /// Send your copy of the archive segment written at this log index. Answered by any node:
    /// a node that installed a snapshot taken after an `ArchiveSettled` fetches the segment
    /// from its peers and checks it against the digest its audit trail records.
    ArchiveSegment {
        /// The `ArchiveSettled` entry's log index.
        index: u64,
    },
    /// How fast is your disk? Answered by any node: a leader compares its own Raft log commit
    /// time with its followers' to find out whether its disk is the slow one.
    DiskHealth,
}

impl ForwardOp {
    /// Whether sending this again after it may have taken effect is harmless: a write the
    /// ledger answers from its idempotency records when repeated. Membership changes are not.
    pub fn resend_safe(&self) -> bool {
        matches!(self, ForwardOp::Write(command) if command.repeat_is_replay())
    }
}

/// The leader's answer to a forwarded operation.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ForwardReply {
    /// The command was committed and applied.
    Written {
        /// The ledger's answer.
        outcome: Outcome,
        /// Its log index.
        log_index: u64,
        /// The answer was a replay. Not in the postcard encoding of the enum, whose layout
        /// older builds decode: `transport::encode_forward_reply` appends it as a trailing
        /// flags byte, which an older build ignores.
        #[serde(skip)]
        replayed: bool,
    },
    /// A membership or leadership operation was done.
    Done,
    /// Not the leader: nothing was appended; try the hinted leader.
    NotLeader {
        /// The leader this node knows of.
        leader: Option<u64>,
    },
    /// The operation failed.
    Failed(WriteError),
    /// The voters of the answering node's membership (empty if it belongs to no cluster yet).
    Membership {
        /// Voter ids.
        voters: Vec<u64>,
        /// Nodes that have acknowledged log entries, as far as the answering node knows (the
        /// leader's replication progress; empty from a follower): a node among them that now
        /// has an empty data directory lost its data.
        replicated: Vec<u64>,
    },
    /// The answering node's clock reading.
    Clock {
        /// Its wall clock when it answered (UTC ms).
        now: TimestampMs,
    },
    /// The answering node's copy of an archive segment (its file's bytes), if it has one.
    ArchiveSegment(Option<Vec<u8>>),
    /// The answering node's recent Raft log commit time (fsync included).
    DiskHealth {
        /// Moving average of its recent group commits, µs.
        commit_recent_us: u64,
    },
}

pub(crate) struct Inner {
    id: u64,
    cluster_id: String,
    raft: Raft,
    sm: StateMachine,
    transport: Arc<dyn Transport>,
    clock: Clock,
    write_timeout: Duration,
    promote_lag_max: Option<u64>,
    server: std::sync::Mutex<Option<(JoinHandle<()>, tokio::sync::oneshot::Sender<()>)>>,
    /// Held for the node's life: the data-directory lock (production only).
    data_dir: std::sync::Mutex<Option<DataDir>>,
    /// This node started on an empty data directory and a peer already has a cluster: it
    /// waits to be added, and must not initialise a cluster of its own.
    found_existing_cluster: std::sync::atomic::AtomicBool,
    /// The voters' clocks as sampled by this node; gates stamping while leader.
    cluster_time: cluster_time::ClusterTime,
    /// Why this node, not yet a member of any membership, cannot join (its bootstrap list
    /// disagrees with the cluster's): logged, and given as `/health/ready`'s reason.
    join_problem: std::sync::Mutex<Option<String>>,
    /// The Raft log, kept to ask whether a write to it has failed.
    log: LogStore,
    /// When this node was last in step with the leader (a follower's or learner's lag).
    lag: replica_lag::LagTracker,
    /// The storage-repair marker while this node refetches discarded entries (`repair.rs`).
    repair: std::sync::Mutex<Option<records::RepairRecord>>,
    /// What the members announced to this node while it led, and what it announces itself
    /// (`formats.rs`).
    pub(crate) formats: Arc<formats::PeerFormats>,
}

impl Inner {
    /// The repair marker while this node abstains from votes (see `repair.rs`).
    pub(crate) fn repairing(&self) -> Option<records::RepairRecord> {
        *self.repair.lock().expect("repair lock")
    }

    /// The newest log-entry format every member reads, as announced to this node while it
    /// leads (`formats.rs`), and the members that hold it below this build's own.
    fn cluster_format(&self) -> (u8, Vec<u64>) {
        let (membership, term) = {
            let m = self.raft.metrics();
            let m = m.borrow_watched();
            (m.membership_config.clone(), m.current_term)
        };
        let members: Vec<u64> = membership.membership().nodes().map(|(id, _)| *id).collect();
        self.formats.cluster_format(members, self.id, term)
    }

    /// Whether `command` may be proposed: a leader never appends an entry some member could
    /// not decode (it would refuse every append from there on).
    fn format_allows(&self, command: &Command) -> Result<(), String> {
        let needed = command.format();
        if needed <= paddock_ledger::ENTRY_FORMAT_FIRST {
            return Ok(());
        }
        let (format, behind) = self.cluster_format();
        if needed <= format {
            return Ok(());
        }
        let who = if behind.len() == 1 { "member" } else { "members" };
        Err(format!(
            "this command needs log entry format {needed}, and {who} {} read only format {format}: a rolling upgrade \
             is under way or stopped half-way; nothing was applied. Upgrade every member (docs/deployment.md, \
             \"Rolling upgrade\"), then send it again",
            describe_ids(&behind)
        ))
    }
}

/// The consensus handle. Cheap to clone.
#[derive(Clone)]
pub struct Consensus {
    inner: Arc<Inner>,
}

const POLL: Duration = Duration::from_millis(20);

/// How long a leadership transfer waits to see the new leader take over: elections finish in
/// well under a second on a healthy cluster, so this only ends a hand-off that went wrong.
const TRANSFER_TAKEOVER_WAIT: Duration = Duration::from_secs(5);
/// How long a node waits for a peer's disk figures.
const DISK_HEALTH_TIMEOUT: Duration = Duration::from_millis(500);
/// How long the leader waits for a node about to be added to answer that it is there.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

impl Consensus {
    /// Opens storage on the real disk, starts Raft and the gRPC peer server. The node is not
    /// part of a cluster until [`Consensus::bootstrap`] or a leader adds it.
    pub async fn start(config: ConsensusConfig, clock: Clock) -> Result<Consensus, StartError> {
        let data_dir = DataDir::open(&config.data_dir)?;
        let transport = Arc::new(
            GrpcTransport::new(&config.cluster_id, config.peer_source_ip, config.tls.as_ref())
                .map_err(|e| StartError::Tls(e.to_string()))?,
        );
        // "Recover, not format": an empty data directory is a new node, or a voter that lost
        // its data. Ask the known peers before taking part, and before writing the identity
        // (so a refused start leaves the directory as empty as it was).
        let found_existing_cluster = if data_dir.identity()?.is_none() {
            ask_peers_about_empty_node(&*transport, &config).await?
        } else {
            false
        };
        data_dir.claim(&Identity { cluster_id: config.cluster_id.clone(), node_id: config.node_id })?;
        let core = CoreConfig {
            node_id: config.node_id,
            cluster_id: config.cluster_id.clone(),
            data_dir: config.data_dir.clone(),
            timing: config.timing,
            snapshot_logs_since_last: config.snapshot_logs_since_last,
            snapshot_log_keep: config.snapshot_log_keep,
            clock_offset_max_ms: config.clock_offset_max_ms,
            write_timeout: config.write_timeout,
            log_faults: FaultSwitches::default(),
            applied_events: None,
            promote_lag_max: Some(PROMOTE_LAG_MAX),
            snapshot_chunk_bytes: config.snapshot_chunk_bytes.clamp(1, network::SNAPSHOT_CHUNK_BYTES_MAX),
        };
        // Before Raft starts: a port another process holds is refused with nothing begun.
        let listener = tokio::net::TcpListener::bind(config.peer_listen)
            .await
            .map_err(|source| StartError::Listen { addr: config.peer_listen, source })?;
        let (consensus, handler) =
            Consensus::start_core(core, clock, Arc::new(StdDisk), transport, IoMode::Threads).await?;
        *consensus.inner.data_dir.lock().expect("data dir lock") = Some(data_dir);
        consensus.inner.found_existing_cluster.store(found_existing_cluster, std::sync::atomic::Ordering::SeqCst);
        let service = server::PeerService { handler, tls: config.tls.is_some() };
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server_tls = match &config.tls {
            Some(peer) => Some(
                tls::server_config(peer.cert.clone(), Some(peer.roots.clone()), &[b"h2"])
                    .map_err(|e| StartError::Tls(e.to_string()))?,
            ),
            None => None,
        };
        let task = tokio::spawn(async move {
            let svc = proto::peer_server::PeerServer::new(service)
                .max_decoding_message_size(network::MESSAGE_BYTES_MAX)
                .max_encoding_message_size(network::MESSAGE_BYTES_MAX);
            let stop = async {
                let _ = stop_rx.await;
            };
            // h2 closes a connection whose client resets more than 20 streams before the
            // server accepts them (the "rapid reset" defence). A leader cancels an append that
            // outlives its timeout, and under a heavy batch load twenty such cancellations
            // arrive together: the connection closes, and every write forwarded on it ends
            // `outcome_unknown`. Peers are members authenticated by certificate, so the
            // defence is widened here; the public listener keeps h2's default.
            let router = tonic::transport::Server::builder()
                .http2_max_pending_accept_reset_streams(Some(PEER_RESET_STREAMS_MAX))
                .add_service(svc);
            let result = match server_tls {
                None => {
                    let listener = tokio_stream::wrappers::TcpListenerStream::new(listener);
                    let incoming = tokio_stream::StreamExt::map(listener, |stream| {
                        let stream = stream?;
                        stream.set_nodelay(true)?;
                        Ok::<_, std::io::Error>(stream)
                    });
                    router.serve_with_incoming_shutdown(incoming, stop).await
                }
                Some(server_tls) => {
                    router.serve_with_incoming_shutdown(server::tls_incoming(listener, server_tls), stop).await
                }
            };
            if let Err(e) = result {
                tracing::error!(error = %e, "peer server failed");
            }
        });
        *consensus.inner.server.lock().expect("server lock") = Some((task, stop_tx));
        tokio::spawn(watch_bootstrap(
            Arc::downgrade(&consensus.inner),
            config.peers.clone(),
            config.peer_advertise.clone(),
        ));
        Ok(consensus)
    }

    /// Opens storage on `disk` and starts Raft, with peers reached through `transport`. The
    /// caller serves the returned [`Handler`] to other nodes however it likes (the simulator
    /// over simulated TCP).
    pub async fn start_core(
        config: CoreConfig,
        clock: Clock,
        disk: Arc<dyn Disk>,
        transport: Arc<dyn Transport>,
        io: IoMode,
    ) -> Result<(Consensus, Handler), StartError> {
        disk.create_dir_all(&config.data_dir)?;
        let mode = if io == IoMode::Inline { WriterMode::Inline } else { WriterMode::Thread };
        let log = LogStore::open_with(&*disk, &config.data_dir.join(LOG_FILE), mode, config.log_faults)?;
        log.read_entry_versions_up_to(paddock_ledger::ENTRY_FORMAT);
        let sm = StateMachine::open_with(
            disk,
            &config.data_dir.join(SNAPSHOT_DIR),
            &config.data_dir.join(ARCHIVE_DIR),
            io,
            config.applied_events.clone(),
        )?;
        let found = repair::at_start(&log, &sm, config.node_id, &config.data_dir, clock().0).map_err(|e| match e {
            // By the error's type, not its kind: only the scan's refusal of a newer entry.
            StartError::Io(e) if e.get_ref().is_some_and(|inner| inner.is::<paddock_storage::NewerEntry>()) => {
                StartError::NewerFormat { dir: config.data_dir.clone(), found: e.to_string() }
            }
            other => other,
        })?;
        let raft_config = Config {
            cluster_name: config.cluster_id.clone(),
            heartbeat_interval: config.timing.heartbeat_ms,
            election_timeout_min: config.timing.election_min_ms,
            election_timeout_max: config.timing.election_max_ms,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_logs_since_last),
            max_in_snapshot_log_to_keep: config.snapshot_log_keep,
            purge_batch_size: 256,
            max_payload_entries: 1024,
            // A node that was frozen or cut off and wakes asks first whether the others would
            // vote for it: while they still hear their leader they say no, and the leader stays
            // (without it, every such wake-up raised the term and deposed a healthy leader).
            enable_pre_vote: Some(true),
            // openraft lets a node that led before its restart lead again at once, in the same
            // term, without an election. A node repairing damaged storage must not: its shorter
            // log would give new entries the log ids of committed ones its followers hold
            // (`repair.rs`).
            enable_leader_restore: Some(found.marker.is_none()),
            ..Default::default()
        }
        .validate()
        .map_err(|e| StartError::Raft(e.to_string()))?;
        let (reverts, revert_requests) = tokio::sync::mpsc::unbounded_channel();
        let formats = Arc::new(formats::PeerFormats::new(clock().0));
        let network = NetworkFactory {
            transport: transport.clone(),
            snapshot_chunk_bytes: config.snapshot_chunk_bytes,
            reverts: network::Reverts(reverts),
            formats: formats.clone(),
        };
        let raft =
            Raft::new(config.node_id, Arc::new(raft_config), network, LogAdapter::new(log.clone(), io), sm.clone())
                .await
                .map_err(|e| StartError::Raft(e.to_string()))?;
        let inner = Arc::new(Inner {
            log,
            id: config.node_id,
            cluster_id: config.cluster_id.clone(),
            raft: raft.clone(),
            sm,
            transport,
            clock,
            write_timeout: config.write_timeout,
            promote_lag_max: config.promote_lag_max,
            server: std::sync::Mutex::new(None),
            data_dir: std::sync::Mutex::new(None),
            found_existing_cluster: std::sync::atomic::AtomicBool::new(false),
            cluster_time: cluster_time::ClusterTime::new(config.clock_offset_max_ms),
            join_problem: std::sync::Mutex::new(None),
            lag: replica_lag::LagTracker::new(Instant::now()),
            repair: std::sync::Mutex::new(found.marker),
            formats,
        });
        tokio::spawn(sample_clocks(Arc::downgrade(&inner)));
        tokio::spawn(allow_reverts(Arc::downgrade(&inner), revert_requests));
        #[cfg(feature = "next-format")]
        tokio::spawn(activate_format(Arc::downgrade(&inner)));
        if let Some(marker) = found.marker {
            // Before the first election timeout can fire: a repairing node never campaigns.
            raft.runtime_config().elect(false);
            tracing::warn!(
                node = config.node_id,
                up_to = marker.up_to,
                "storage repair: not voting until the log is fetched again up to index {}",
                marker.up_to
            );
            tokio::spawn(watch_repair(Arc::downgrade(&inner)));
        }
        let handler = Handler {
            cluster_id: Arc::from(config.cluster_id.as_str()),
            raft,
            inner: Arc::downgrade(&inner),
            staging: Arc::default(),
        };
        Ok((Consensus { inner }, handler))
    }

    /// Makes this node the first member(s) of a new cluster. Harmless if already initialised.
    pub async fn bootstrap(&self, members: BTreeMap<u64, String>) -> Result<(), WriteError> {
        let nodes: BTreeMap<u64, BasicNode> =
            members.into_iter().map(|(id, addr)| (id, BasicNode::new(addr))).collect();
        match self.inner.raft.initialize(nodes).await {
            Ok(()) => Ok(()),
            Err(RaftError::APIError(openraft::errors::InitializeError::NotAllowed(_))) => Ok(()),
            Err(e) => Err(WriteError::Refused(e.to_string())),
        }
    }

    /// This node's id.
    pub fn node_id(&self) -> u64 {
        self.inner.id
    }

    /// Whether this node started on an empty data directory while a peer already had a
    /// cluster: it waits to be added (`members add`) and must not bootstrap a cluster itself.
    pub fn found_existing_cluster(&self) -> bool {
        self.inner.found_existing_cluster.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Why this node cannot join its cluster, when its bootstrap list disagrees with the
    /// cluster's (see `watch_bootstrap`); `None` once it is a member, or while nothing is known.
    pub fn join_problem(&self) -> Option<String> {
        self.inner.join_problem.lock().expect("join problem lock").clone()
    }

    /// Replicates a command and returns the ledger's answer.
    pub async fn write(&self, command: Command) -> Result<Written, WriteError> {
        self.inner.write(command).await
    }

    /// Waits until this node has applied everything committed before the call: a read after
    /// it is linearizable (ReadIndex, confirmed with a quorum by the leader).
    pub async fn linearize(&self) -> Result<(), ReadError> {
        self.inner.linearize().await
    }

    /// Runs `f` on the local state (after [`Consensus::linearize`] for a linearizable read).
    pub fn read<T>(&self, f: impl FnOnce(&SmData) -> T) -> T {
        self.inner.sm.read(f)
    }

    /// The archive segment `ArchiveSettled` wrote at `index`, read from this node's disk and
    /// checked (magic, version, checksum); `Ok(None)` if this node does not have it.
    pub fn archive_segment(&self, index: u64) -> std::io::Result<Option<paddock_ledger::archive::ArchiveSegment>> {
        self.inner.sm.archive_segment(index)
    }

    /// The archive segments the audit trail records that this node's disk lacks (it installed
    /// a snapshot taken after them and has not fetched them yet), by log index. Cheap: kept up
    /// to date at start, at each snapshot install and at each fetch.
    pub fn archive_missing(&self) -> Vec<u64> {
        self.inner.sm.archive_gaps()
    }

    /// Fetches the archive segment of `index` from the first member that has it, checks it
    /// against the digest this node's audit trail records for it, and writes it to this
    /// node's archive. `Ok(false)`: no member had a copy that checks.
    pub async fn fetch_archive_segment(&self, index: u64) -> std::io::Result<bool> {
        let Some(digest) =
            self.read(|d| d.state.archive_segments().into_iter().find(|r| r.log_index == index)).map(|r| r.digest)
        else {
            return Err(std::io::Error::other(format!("the audit trail records no archive segment at index {index}")));
        };
        let members: Vec<(u64, String)> = {
            let membership = self.inner.raft.metrics().borrow_watched().membership_config.clone();
            membership.membership().nodes().map(|(id, n)| (*id, n.addr.clone())).collect()
        };
        for (id, addr) in members.into_iter().filter(|(id, _)| *id != self.inner.id) {
            let op = ForwardOp::ArchiveSegment { index };
            let reply = call(&*self.inner.transport, &addr, Rpc::Forward, &op, Duration::from_secs(30)).await;
            let bytes = match reply {
                Ok(ForwardReply::ArchiveSegment(Some(bytes))) => bytes,
                Ok(_) => continue,
                Err(e) => {
                    tracing::warn!(node = id, index, error = %e, "could not fetch an archive segment from a peer");
                    continue;
                }
            };
            match paddock_ledger::archive::ArchiveSegment::decode(&bytes) {
                Ok(segment) if segment.log_index == index && segment.digest() == digest => {
                    let archive = self.inner.sm.archive_files().clone();
                    self.inner.sm.off_task(move || archive.write(index, &bytes).map(|_| ())).await?;
                    let sm = self.inner.sm.clone();
                    self.inner.sm.off_task(move || sm.refresh_archive_gaps()).await?;
                    metrics::counter!("paddock_archive_segments_fetched_total").increment(1);
                    tracing::info!(index, from = id, "fetched a missing archive segment from a peer");
                    return Ok(true);
                }
                _ => tracing::error!(
                    node = id,
                    index,
                    "a peer's archive segment does not match the audit trail; not kept"
                ),
            }
        }
        Ok(false)
    }

    /// Indexes archive segments not indexed yet (blocking disk work); returns the bets indexed.
    pub fn index_archive(&self) -> std::io::Result<u64> {
        self.inner.sm.index_archive()
    }

    /// Up to `limit` archived bets of `account` with ids above `after`, ascending (blocking
    /// disk reads, one small range).
    pub fn archived_bets_of(
        &self,
        account: paddock_ledger::AccountId,
        after: u64,
        limit: usize,
    ) -> std::io::Result<Vec<paddock_ledger::BetView>> {
        self.inner.sm.archived_bets_of(account, after, limit)
    }

    /// One archived bet, if this node has indexed it.
    pub fn archived_bet(&self, bet: paddock_ledger::BetId) -> std::io::Result<Option<paddock_ledger::BetView>> {
        self.inner.sm.archived_bet(bet)
    }

    /// Applied commands as they happen.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<AppliedEvent>> {
        self.inner.sm.subscribe()
    }

    /// Applied index as it moves.
    pub fn applied_watch(&self) -> watch::Receiver<u64> {
        self.inner.sm.shared.applied.subscribe()
    }

    /// Adds a node as a learner; it starts replicating at once.
    pub async fn add_learner(&self, id: u64, addr: String) -> Result<(), WriteError> {
        self.inner.on_leader(ForwardOp::AddLearner { id, addr }).await.map(|_| ())
    }

    /// Makes a learner a voter.
    pub async fn promote(&self, id: u64) -> Result<(), WriteError> {
        self.inner.on_leader(ForwardOp::Promote { id }).await.map(|_| ())
    }

    /// Makes a voter a learner: it keeps its data and replicating, and no longer votes.
    pub async fn demote(&self, id: u64) -> Result<(), WriteError> {
        self.inner.on_leader(ForwardOp::Demote { id }).await.map(|_| ())
    }

    /// Removes a node from the cluster.
    pub async fn remove(&self, id: u64) -> Result<(), WriteError> {
        self.inner.on_leader(ForwardOp::Remove { id }).await.map(|_| ())
    }

    /// On the leader: makes the learner `standby` a voter in place of the voter `dead`, in one
    /// joint-consensus change (the number of voters never changes), and keeps `dead` as a
    /// learner, so that if it comes back it follows as a standby instead of voting with a
    /// stale view. Refused, with nothing changed, when the membership no longer has `dead` as
    /// a voter and `standby` as a learner (it changed since the caller looked), and — by
    /// openraft, atomically — on a node that does not lead or while another membership change
    /// is under way.
    pub async fn replace_voter(&self, dead: u64, standby: u64) -> Result<(), WriteError> {
        let membership = self.inner.raft.metrics().borrow_watched().membership_config.clone();
        let membership = membership.membership();
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        if !voters.contains(&dead) {
            return Err(WriteError::Refused(format!("node {dead} is not a voter (any more); nothing was changed")));
        }
        if voters.contains(&standby) || membership.get_node(&standby).is_none() {
            return Err(WriteError::Refused(format!(
                "node {standby} is not a learner of this cluster; nothing was changed"
            )));
        }
        let mut next = voters;
        next.remove(&dead);
        next.insert(standby);
        match self.inner.raft.change_membership(ChangeMembers::ReplaceAllVoters(next), true).await {
            Ok(_) => Ok(()),
            // Refused before anything was appended.
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => Err(WriteError::Refused(format!(
                "node {} does not lead: only the leader replaces voters",
                self.inner.id
            ))),
            Err(e) => Err(write_error(e)),
        }
    }

    /// Asks the leader to hand leadership to `to`, and answers once this node itself knows `to`
    /// leads: the leader has only begun the hand-off when it says yes, and a caller's next
    /// request (a readiness probe, a write) should find the new leader rather than the
    /// election in between.
    pub async fn transfer_leader(&self, to: u64) -> Result<(), WriteError> {
        self.inner.on_leader(ForwardOp::TransferLeader { to }).await?;
        match self.inner.raft.wait(Some(TRANSFER_TAKEOVER_WAIT)).current_leader(to, "leadership transfer").await {
            Ok(_) => Ok(()),
            Err(openraft::metrics::WaitError::ShuttingDown) => {
                Err(WriteError::Stopped("raft has shut down".to_string()))
            }
            Err(openraft::metrics::WaitError::Timeout(..)) => Err(WriteError::Unknown(format!(
                "node {to} has not taken over within {} s; see `paddock status` for who leads",
                TRANSFER_TAKEOVER_WAIT.as_secs()
            ))),
        }
    }

    /// Takes a snapshot now (and lets the log be purged behind it).
    pub async fn snapshot_now(&self) -> Result<(), WriteError> {
        self.inner.raft.trigger().snapshot().await.map_err(|e| WriteError::Stopped(e.to_string()))
    }

    /// Whether a write to this node's Raft log has failed (a full or failing disk): the log
    /// refuses every later write and Raft on this node has stopped; only a restart on working
    /// storage brings the node back.
    pub fn storage_failed(&self) -> bool {
        self.inner.log.is_poisoned()
    }

    /// Whether a read found a damaged entry in this node's Raft log while it ran: Raft has
    /// stopped here; a restart repairs the log from the peers (`repair.rs`).
    pub fn storage_damaged(&self) -> bool {
        self.inner.log.damage_read()
    }

    /// The moving average of this node's recent Raft log commits, fsync included.
    pub fn fsync_recent(&self) -> Duration {
        self.inner.log.commit_recent()
    }

    /// Member `id`'s [`Consensus::fsync_recent`], asked over the peer protocol (at most 500 ms).
    pub async fn peer_fsync_recent(&self, id: u64) -> Result<Duration, String> {
        let addr = self.inner.addr_of(id).ok_or_else(|| format!("node {id} is not a member"))?;
        let reply: Result<ForwardReply, PeerError> =
            call(&*self.inner.transport, &addr, Rpc::Forward, &ForwardOp::DiskHealth, DISK_HEALTH_TIMEOUT).await;
        match reply {
            Ok(ForwardReply::DiskHealth { commit_recent_us }) => Ok(Duration::from_micros(commit_recent_us)),
            Ok(_) => Err(format!("node {id} answered something else")),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Test hook: every later commit of this node's Raft log sleeps `delay` first.
    pub fn set_injected_fsync_delay(&self, delay: Duration) {
        self.inner.log.set_injected_delay(delay);
    }

    /// The cluster as this node sees it.
    pub fn status(&self) -> ClusterStatus {
        let m = self.inner.raft.metrics().borrow_watched().clone();
        let role = match m.state {
            ServerState::Leader => Role::Leader,
            ServerState::Follower => Role::Follower,
            ServerState::Candidate => Role::Candidate,
            ServerState::Learner => Role::Learner,
            ServerState::Shutdown => Role::Shutdown,
        };
        let last_log_index = m.last_log_index.unwrap_or(0);
        let membership = m.membership_config.membership();
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        let replication = m.replication.clone().unwrap_or_default();
        let heartbeat = m.heartbeat.clone().unwrap_or_default();
        let members = membership
            .nodes()
            .map(|(id, node)| {
                let matched = replication.get(id).map(|l| l.as_ref().map_or(0, |l| l.index));
                Member {
                    id: *id,
                    addr: node.addr.clone(),
                    voter: voters.contains(id),
                    matched_index: matched,
                    lag: matched.map(|i| last_log_index.saturating_sub(i)),
                    ack_age_ms: heartbeat.get(id).copied().flatten().map(|t| t.elapsed().as_millis() as u64),
                    announced: (role == Role::Leader || *id == self.inner.id)
                        .then(|| self.inner.formats.of(*id, self.inner.id, m.current_term))
                        .flatten(),
                }
            })
            .collect();
        ClusterStatus {
            node_id: self.inner.id,
            cluster_id: self.inner.cluster_id.clone(),
            role,
            term: m.current_term,
            leader: m.current_leader,
            last_log_index,
            commit_index: m.local_committed.as_ref().map_or(0, |l| l.index),
            applied_index: m.last_applied.as_ref().map_or(0, |l| l.index),
            snapshot_index: m.snapshot.as_ref().map_or(0, |l| l.index),
            members,
            quorum_ack_age_ms: m.last_quorum_acked.as_ref().map(|t| t.elapsed().as_millis() as u64),
            membership_changing: membership.get_joint_config().len() > 1,
            repairing_up_to: self.inner.repairing().map(|m| m.up_to),
            entry_format: (role == Role::Leader).then(|| self.inner.cluster_format().0),
            clock: self.inner.cluster_time.view(),
        }
    }

    /// How far behind the leader this node is, as it can tell by itself (zero on the leader):
    /// the lag of a standby site, the data a site failover would lose.
    pub fn replica_lag(&self) -> ReplicaLag {
        let m = self.inner.raft.metrics().borrow_watched().clone();
        let applied = m.last_applied.as_ref().map_or(0, |l| l.index);
        self.inner.lag.sample(Instant::now(), applied, m.state == ServerState::Leader)
    }

    /// Stops the peer server and Raft.
    pub async fn shutdown(&self) {
        let server = self.inner.server.lock().expect("server lock").take();
        if let Err(e) = self.inner.raft.shutdown().await {
            tracing::warn!(error = %e, "raft shutdown");
        }
        if let Some((task, stop)) = server {
            let _ = stop.send(());
            // The server's graceful stop waits for every peer connection to close, and one
            // whose packets are dropped (a cut link, a peer site gone dark) closes only when TCP
            // gives up, many minutes on: a node could not stop while its site was cut off.
            // Raft has stopped, so nothing sent on them now would be answered anyway.
            let abort = task.abort_handle();
            if tokio::time::timeout(PEER_SERVER_STOP_TIMEOUT, task).await.is_err() {
                tracing::warn!(
                    timeout_ms = PEER_SERVER_STOP_TIMEOUT.as_millis() as u64,
                    "peer connections did not close in time; dropping them"
                );
                abort.abort();
            }
        }
    }
}

/// How long a stopping node waits for its peer connections to close (see [`Consensus::shutdown`]).
const PEER_SERVER_STOP_TIMEOUT: Duration = Duration::from_secs(2);

/// What a failed openraft write or membership change means to the caller (a refusal to change
/// the membership changed nothing; anything else may or may not have taken effect).
fn write_error(e: RaftError<types::TypeConfig, ClientWriteError<types::TypeConfig>>) -> WriteError {
    match e {
        RaftError::Fatal(f) => WriteError::Stopped(f.to_string()),
        RaftError::APIError(ClientWriteError::ChangeMembershipError(c)) => WriteError::Refused(membership_refusal(&c)),
        other => WriteError::Unknown(other.to_string()),
    }
}

/// Why a membership change was refused, for an operator: openraft's own messages print its log
/// ids and voter sets as Rust debug text.
fn membership_refusal<CLID: openraft::vote::RaftCommittedLeaderId>(e: &ChangeMembershipError<CLID, u64>) -> String {
    let voters = |sets: &[std::collections::BTreeSet<u64>]| {
        sets.iter()
            .map(|set| set.iter().map(u64::to_string).collect::<Vec<_>>().join(", "))
            .map(|set| format!("{{{set}}}"))
            .collect::<Vec<_>>()
            .join(" and ")
    };
    let index =
        |id: &Option<openraft::LogId<CLID>>| id.as_ref().map_or_else(|| "none".to_string(), |id| id.index.to_string());
    match e {
        ChangeMembershipError::InProgress(p) => format!(
            "another membership change is in progress (log index {}; the last committed one is at {}): try again \
             once it has committed, usually within a second",
            index(&p.membership_log_id),
            index(&p.committed),
        ),
        ChangeMembershipError::EmptyMembership(_) => "the change would leave the cluster without a voter".to_string(),
        ChangeMembershipError::LearnerNotFound(l) => format!(
            "node {} is not a learner of this cluster: add it first (paddock members add --id {} --peer <address>)",
            l.node_id, l.node_id
        ),
        ChangeMembershipError::UncommittedLeaderLog(u) => format!(
            "the leader has not yet committed the first entry of its term (log index {}): try again once it has, \
             usually within a second",
            u.leader_log_id.index
        ),
        ChangeMembershipError::NodeMetadataChanged(n) => format!(
            "node {} is already a member with another address: remove it first (paddock members remove --id {})",
            n.node_id, n.node_id
        ),
        ChangeMembershipError::UnsupportedMembershipTransition(u) => format!(
            "voters {} cannot become voters {} in one change: change one voter at a time",
            voters(&u.previous),
            voters(&u.proposed)
        ),
    }
}

/// Samples the other voters' clocks every [`cluster_time::SAMPLE_PERIOD`] for as long as the
/// node runs; as leader, hands leadership over when its own clock is out.
async fn sample_clocks(inner: std::sync::Weak<Inner>) {
    loop {
        let Some(me) = inner.upgrade() else { return };
        let state = me.raft.metrics().borrow_watched().state;
        if state == ServerState::Shutdown {
            return;
        }
        let membership = me.raft.metrics().borrow_watched().membership_config.clone();
        let membership = membership.membership();
        if membership.voter_ids().any(|v| v == me.id) {
            let others: Vec<(u64, String)> = membership
                .voter_ids()
                .filter(|v| *v != me.id)
                .filter_map(|v| membership.get_node(&v).map(|n| (v, n.addr.clone())))
                .collect();
            let verdict = me.cluster_time.round(&*me.transport, &me.clock, others).await;
            if me.leader() == Some(me.id) {
                if let Some(to) = me.cluster_time.leader_action(&verdict) {
                    if let Err(e) = me.raft.trigger().transfer_leader(to).await {
                        tracing::warn!(to, error = %e, "could not hand leadership over");
                    }
                }
            }
        }
        drop(me);
        tokio::time::sleep(cluster_time::SAMPLE_PERIOD).await;
    }
}

/// How often a repairing node looks whether its log is whole again.
const REPAIR_CHECK_PERIOD: Duration = Duration::from_millis(100);

/// While this node repairs damaged storage: once its log is durable up to the marker again,
/// removes the marker and lets the node vote and campaign again (`repair.rs`).
async fn watch_repair(inner: std::sync::Weak<Inner>) {
    loop {
        tokio::time::sleep(REPAIR_CHECK_PERIOD).await;
        let Some(me) = inner.upgrade() else { return };
        let Some(marker) = me.repairing() else { return };
        match repair::caught_up(&me.log, &me.sm, &marker) {
            Ok(false) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "storage repair: cannot read the log's end; trying again");
                continue;
            }
            Ok(true) => {}
        }
        if let Err(e) = repair::finish(&me.log) {
            tracing::warn!(error = %e, "storage repair: cannot remove the repair marker; trying again");
            continue;
        }
        *me.repair.lock().expect("repair lock") = None;
        me.raft.runtime_config().elect(true);
        let took_ms = (me.clock)().0.saturating_sub(marker.found_ms);
        metrics::counter!("paddock_storage_repairs_total", "stage" => "repaired").increment(1);
        metrics::histogram!("paddock_storage_repair_seconds").record(took_ms as f64 / 1000.0);
        tracing::info!(
            node = me.id,
            up_to = marker.up_to,
            took_ms,
            "storage repair finished: the log is whole again up to index {}; voting again",
            marker.up_to
        );
        return;
    }
}

/// (The `next-format` test build only.) While this node leads, proposes the first entry of
/// this build's newest format until it is written: the entry an older build cannot decode.
/// Nothing here checks the members' formats: the write path's gate (`Inner::format_allows`)
/// refuses it while some member does not announce that it reads it, as it would any command.
#[cfg(feature = "next-format")]
async fn activate_format(inner: std::sync::Weak<Inner>) {
    let (mut activated_in, mut refused_in) = (None, None);
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let Some(inner) = inner.upgrade() else { return };
        let (leads, term) = {
            let m = inner.raft.metrics();
            let m = m.borrow_watched();
            (m.current_leader == Some(inner.id), m.current_term)
        };
        if !leads || activated_in == Some(term) {
            continue;
        }
        let format = paddock_ledger::ENTRY_FORMAT;
        match inner.write(Command::ActivateFormat { format }).await {
            Ok(written) => {
                tracing::info!(format, index = written.log_index, "every member reads the new log entry format");
                activated_in = Some(term);
            }
            Err(WriteError::FormatNotActive(why)) if refused_in != Some(term) => {
                tracing::info!(format, "the new log entry format waits: {why}");
                refused_in = Some(term);
            }
            Err(e) => tracing::debug!(error = %e, "log entry format not activated yet"),
        }
    }
}

/// Serves the network's requests to let a repairing follower's log go backwards (see
/// `network::Reverts`): each is handed to openraft before the answer that needs it.
async fn allow_reverts(
    inner: std::sync::Weak<Inner>,
    mut requests: tokio::sync::mpsc::UnboundedReceiver<(u64, tokio::sync::oneshot::Sender<()>)>,
) {
    while let Some((target, done)) = requests.recv().await {
        if let Some(me) = inner.upgrade() {
            match me.raft.trigger().allow_next_revert(&target, true).await {
                Ok(Ok(())) => {
                    metrics::counter!("paddock_replica_reverts_allowed_total").increment(1);
                    tracing::info!(
                        target,
                        "node {target} is repairing damaged storage: replication to it restarts from its log's end"
                    );
                }
                Ok(Err(e)) => tracing::debug!(target, error = %e, "no replication to reset"),
                Err(e) => tracing::debug!(target, error = %e, "raft has stopped"),
            }
        }
        let _ = done.send(());
    }
}

/// How often a node outside any membership asks its bootstrap peers about theirs.
const BOOTSTRAP_CHECK_PERIOD: Duration = Duration::from_secs(2);
/// Rounds (of [`BOOTSTRAP_CHECK_PERIOD`]) a node counted as a voter may go with nothing
/// replicated to it before its address in the others' lists is suspected.
const UNREACHED_ROUNDS: u32 = 5;

/// A typo in one node's `--bootstrap` forms a cluster without it, and it would wait forever
/// with nothing in its log. Compares the bootstrap list with what the peers report:
///
/// - a node already in a membership, started again with a list that differs from it, is told
///   (once, at WARN) that the list is ignored and how membership changes;
/// - a node in no membership asks its bootstrap peers every [`BOOTSTRAP_CHECK_PERIOD`] which
///   voters they have. Voters other than the ones its list names mean the lists disagree; being
///   a voter there but reached by no entry for a while means the others have another address
///   for it. Either is logged at ERROR, once per distinct finding, and kept as
///   [`Consensus::join_problem`] (the readiness reason) until the node joins.
async fn watch_bootstrap(inner: std::sync::Weak<Inner>, bootstrap: BTreeMap<u64, String>, advertise: String) {
    // Let Raft load the stored membership first.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut unreached = 0u32;
    let mut said: Option<String> = None;
    loop {
        let Some(me) = inner.upgrade() else { return };
        let membership = me.raft.metrics().borrow_watched().membership_config.clone();
        let membership = membership.membership();
        let members: BTreeMap<u64, String> = membership.nodes().map(|(id, n)| (*id, n.addr.clone())).collect();
        if !members.is_empty() {
            let voters: BTreeMap<u64, String> = members
                .iter()
                .filter(|(id, _)| membership.voter_ids().any(|v| v == **id))
                .map(|(i, a)| (*i, a.clone()))
                .collect();
            if !bootstrap.is_empty() && voters != bootstrap && said.is_none() {
                tracing::warn!(
                    bootstrap = %describe_members(&bootstrap),
                    voters = %describe_members(&voters),
                    "--bootstrap is ignored: this node's data directory already holds the cluster's membership; \
                     change members with `paddock members add|promote|remove`"
                );
            }
            *me.join_problem.lock().expect("join problem lock") = None;
            return;
        }
        if !bootstrap.contains_key(&me.id) {
            // A node joining an existing cluster waits to be added; nothing to compare.
            drop(me);
            tokio::time::sleep(BOOTSTRAP_CHECK_PERIOD).await;
            continue;
        }
        let mut problem = None;
        for (&peer, addr) in bootstrap.iter().filter(|(id, _)| **id != me.id) {
            let reply = call(&*me.transport, addr, Rpc::Forward, &ForwardOp::Membership, Duration::from_secs(1)).await;
            let Ok(ForwardReply::Membership { voters, .. }) = reply else { continue };
            if voters.is_empty() {
                continue;
            }
            let ours: Vec<u64> = bootstrap.keys().copied().collect();
            if voters != ours && me.found_existing_cluster.load(std::sync::atomic::Ordering::SeqCst) {
                // Started empty beside a running cluster (a new node, or a wiped one being
                // re-added): waiting to be added is the expected step, not a disagreement.
                problem = Some(format!(
                    "waiting to be added: node {peer}'s cluster has voters {}; add this node with \
                     `paddock members add --id {} --peer {advertise}`",
                    describe_ids(&voters),
                    me.id
                ));
                break;
            }
            if voters != ours {
                problem = Some(format!(
                    "this node's --bootstrap names voters {} but node {peer}'s cluster has voters {}: the bootstrap \
                     lists differ between nodes; give every node the same --bootstrap, or add this node with \
                     `paddock members add --id {} --peer {advertise}`",
                    describe_ids(&ours),
                    describe_ids(&voters),
                    me.id
                ));
                break;
            }
            unreached += 1;
            if unreached >= UNREACHED_ROUNDS {
                problem = Some(format!(
                    "node {peer} counts this node as a voter, but no entry has reached it in {} s: the other nodes \
                     may have another address for node {} in their --bootstrap (this node is at {advertise}); \
                     compare --bootstrap on every node",
                    u64::from(unreached) * BOOTSTRAP_CHECK_PERIOD.as_secs(),
                    me.id
                ));
            }
            break;
        }
        if problem.is_some() && problem != said {
            let text = problem.as_deref().unwrap_or_default();
            if text.starts_with("waiting to be added") {
                tracing::warn!(problem = text, "this node is not a member yet");
            } else {
                tracing::error!(problem = text, "this node cannot join its cluster");
            }
            said.clone_from(&problem);
        }
        *me.join_problem.lock().expect("join problem lock") = problem;
        drop(me);
        tokio::time::sleep(BOOTSTRAP_CHECK_PERIOD).await;
    }
}

/// "1, 2 and 3".
fn describe_ids(ids: &[u64]) -> String {
    let words: Vec<String> = ids.iter().map(u64::to_string).collect();
    match words.split_last() {
        None => "none".to_string(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
    }
}

/// "1=10.0.0.1:7101,2=10.0.0.2:7101", the `--bootstrap` syntax.
fn describe_members(members: &BTreeMap<u64, String>) -> String {
    members.iter().map(|(id, addr)| format!("{id}={addr}")).collect::<Vec<_>>().join(",")
}

/// Asks each known peer whether it counts this node (whose data directory is empty) as a voter;
/// refuses to start if one does. Returns whether any peer already has a cluster. A peer that
/// does not answer is skipped: on a cluster's very first start the others may not be up yet.
async fn ask_peers_about_empty_node(transport: &dyn Transport, config: &ConsensusConfig) -> Result<bool, StartError> {
    let mut existing = false;
    for (&peer, addr) in config.peers.iter().filter(|(id, _)| **id != config.node_id) {
        match call(transport, addr, Rpc::Forward, &ForwardOp::Membership, Duration::from_secs(2)).await {
            Ok(ForwardReply::Membership { voters, replicated }) => {
                // A voter in the bootstrap list that has never acknowledged an entry is simply
                // starting for the first time (the cluster may have formed without it).
                if voters.contains(&config.node_id) && replicated.contains(&config.node_id) {
                    return Err(StartError::WipedVoter { dir: config.data_dir.clone(), node: config.node_id, peer });
                }
                existing |= !voters.is_empty();
            }
            Ok(_) => tracing::warn!(peer, "peer gave no membership answer"),
            Err(e) => tracing::info!(peer, error = %e, "could not ask peer whether this empty node is a voter"),
        }
    }
    if existing {
        tracing::warn!("empty data directory and the cluster exists: waiting to be added with `paddock members add`");
    }
    Ok(existing)
}

impl Inner {
    pub(crate) async fn linearize(&self) -> Result<(), ReadError> {
        let deadline = Instant::now() + self.write_timeout;
        let index = loop {
            match self.leader() {
                Some(l) if l == self.id => break self.leader_read_index().await?,
                Some(l) => {
                    let addr =
                        self.addr_of(l).ok_or_else(|| ReadError::NoQuorum(format!("leader {l} has no address")))?;
                    let reply: Result<Result<u64, String>, PeerError> =
                        call(&*self.transport, &addr, Rpc::ReadIndex, &(), self.write_timeout).await;
                    match reply {
                        Ok(Ok(index)) => break index,
                        Ok(Err(e))
                        | Err(PeerError::Refused { message: e, .. })
                        | Err(PeerError::Unsupported { message: e, .. })
                        | Err(PeerError::Unreachable { message: e, .. }) => {
                            if Instant::now() >= deadline {
                                return Err(ReadError::NoQuorum(e));
                            }
                        }
                    }
                }
                None if Instant::now() >= deadline => return Err(ReadError::NoQuorum("no leader".into())),
                None => {}
            }
            tokio::time::sleep(POLL).await;
        };
        let left = deadline.saturating_duration_since(Instant::now()).max(POLL);
        if self.sm.wait_applied(index, left).await {
            Ok(())
        } else {
            Err(ReadError::Behind)
        }
    }

    pub(crate) async fn write(&self, command: Command) -> Result<Written, WriteError> {
        match self.on_leader(ForwardOp::Write(command)).await? {
            ForwardReply::Written { outcome, log_index, replayed } => Ok(Written { outcome, log_index, replayed }),
            other => Err(WriteError::Unknown(format!("unexpected reply {other:?}"))),
        }
    }

    /// The applied index and one account, read together (the simulator's client reads).
    #[cfg(feature = "sim")]
    pub(crate) fn read_account(
        &self,
        account: paddock_ledger::AccountId,
    ) -> (u64, Option<paddock_ledger::AccountView>) {
        self.sm.read(|d| (d.last_applied.map_or(0, |l| l.index), d.state.account(account)))
    }

    fn leader(&self) -> Option<u64> {
        self.raft.metrics().borrow_watched().current_leader
    }

    fn addr_of(&self, id: u64) -> Option<String> {
        let m = self.raft.metrics().borrow_watched().membership_config.clone();
        m.membership().get_node(&id).map(|n| n.addr.clone())
    }

    pub(crate) async fn leader_read_index(&self) -> Result<u64, ReadError> {
        self.raft
            .ensure_linearizable(ReadPolicy::ReadIndex)
            .await
            .map(|read| read.index())
            .map_err(|e| ReadError::NoQuorum(e.to_string()))
    }

    /// Runs `op` on the leader: here if this node leads, else forwarded. Retries only while
    /// the operation was certainly not appended.
    async fn on_leader(&self, op: ForwardOp) -> Result<ForwardReply, WriteError> {
        let deadline = Instant::now() + self.write_timeout;
        let mut last_error = WriteError::NoLeader;
        while Instant::now() < deadline {
            let reply = match self.leader() {
                Some(l) if l == self.id => self.run_as_leader(op.clone()).await,
                Some(l) => match self.addr_of(l) {
                    None => ForwardReply::NotLeader { leader: None },
                    Some(addr) => {
                        let left = deadline.saturating_duration_since(Instant::now()).max(POLL);
                        let forwarded = transport::call_forward(&*self.transport, &addr, &op, left);
                        // A leader that froze (SIGSTOP, a stalled VM) answers nothing until it
                        // wakes; a new one is elected long before the write timeout.
                        let answer = tokio::select! {
                            answer = forwarded => Some(answer),
                            () = self.leader_moved_from(l) => None,
                        };
                        match answer {
                            Some(Ok(reply)) => reply,
                            Some(Err(PeerError::Unreachable { never_sent: true, .. })) => {
                                // Refused before anything was sent: safe to try again.
                                last_error = WriteError::NoLeader;
                                ForwardReply::NotLeader { leader: None }
                            }
                            Some(Err(e)) => return Err(WriteError::Unknown(e.to_string())),
                            // The old leader may have appended it: send it again only if the
                            // ledger answers a repeat with the first answer (its idempotency key).
                            None if op.resend_safe() => {
                                metrics::counter!("paddock_forward_rerouted_total").increment(1);
                                last_error = WriteError::NoLeader;
                                ForwardReply::NotLeader { leader: None }
                            }
                            None => {
                                return Err(WriteError::Unknown(format!(
                                    "leader {l} was replaced while this node waited for its answer: the operation may \
                                     or may not have taken effect"
                                )))
                            }
                        }
                    }
                },
                None => ForwardReply::NotLeader { leader: None },
            };
            match reply {
                ForwardReply::NotLeader { .. } => tokio::time::sleep(POLL).await,
                ForwardReply::Failed(e) => return Err(e),
                done => return Ok(done),
            }
        }
        Err(last_error)
    }

    /// Resolves once this node no longer takes `leader` for the leader: another was elected,
    /// or an election is under way. Never resolves while it does.
    async fn leader_moved_from(&self, leader: u64) {
        let mut metrics = self.raft.metrics();
        while metrics.borrow_watched().current_leader == Some(leader) {
            if metrics.changed().await.is_err() {
                // Raft stopped: the write ends with its own error or timeout.
                return std::future::pending().await;
            }
        }
    }

    /// Runs `op` assuming this node leads; answers `NotLeader` if it does not.
    pub(crate) async fn run_as_leader(&self, op: ForwardOp) -> ForwardReply {
        let not_leader = |e: &RaftError<types::TypeConfig, ClientWriteError<types::TypeConfig>>| match e {
            RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => {
                Some(ForwardReply::NotLeader { leader: f.leader_id })
            }
            _ => None,
        };
        let fail = |e| ForwardReply::Failed(write_error(e));
        match op {
            ForwardOp::Membership => {
                let metrics = self.raft.metrics().borrow_watched().clone();
                let replicated = metrics
                    .replication
                    .as_ref()
                    .map(|r| {
                        r.iter().filter(|(_, m)| m.as_ref().is_some_and(|l| l.index > 0)).map(|(id, _)| *id).collect()
                    })
                    .unwrap_or_default();
                ForwardReply::Membership {
                    voters: metrics.membership_config.membership().voter_ids().collect(),
                    replicated,
                }
            }
            ForwardOp::ClockSample => ForwardReply::Clock { now: (self.clock)() },
            ForwardOp::DiskHealth => {
                ForwardReply::DiskHealth { commit_recent_us: self.log.commit_recent().as_micros() as u64 }
            }
            ForwardOp::ArchiveSegment { index } => match self.sm.archive_bytes(index).await {
                Ok(bytes) => ForwardReply::ArchiveSegment(bytes),
                Err(e) => {
                    ForwardReply::Failed(WriteError::Unknown(format!("cannot read archive segment {index}: {e}")))
                }
            },
            ForwardOp::Write(command) => {
                if let Err(why) = self.cluster_time.may_stamp(&self.clock) {
                    return ForwardReply::Failed(WriteError::ClockUnsynchronized(why));
                }
                if let Err(why) = self.format_allows(&command) {
                    return ForwardReply::Failed(WriteError::FormatNotActive(why));
                }
                let request = Request { time: (self.clock)(), command };
                match tokio::time::timeout(self.write_timeout, self.raft.client_write(request)).await {
                    Err(_) => ForwardReply::Failed(WriteError::Unknown(format!(
                        "not committed within {} ms",
                        self.write_timeout.as_millis()
                    ))),
                    Ok(Ok(resp)) => match resp.data.outcome {
                        Some(outcome) => ForwardReply::Written {
                            outcome,
                            log_index: resp.log_id.index,
                            replayed: resp.data.replayed,
                        },
                        None => ForwardReply::Failed(WriteError::Unknown("entry applied without an outcome".into())),
                    },
                    Ok(Err(e)) => not_leader(&e).unwrap_or_else(|| fail(e)),
                }
            }
            ForwardOp::AddLearner { id, addr } => {
                // Membership operations are idempotent by their target state, so that a
                // retried request changes nothing and answers done.
                if let Some(known) = self.addr_of(id) {
                    return if known == addr {
                        ForwardReply::Done
                    } else {
                        ForwardReply::Failed(WriteError::Refused(format!(
                            "node {id} is already a member at {known}; remove it first to re-add it at {addr}"
                        )))
                    };
                }
                // Two members at one address would be one process answering for two ids: the
                // leader would replicate to itself (schemathesis found this, a debug assertion in
                // openraft). Refuse it, naming the member that has the address.
                let membership = self.raft.metrics().borrow_watched().membership_config.clone();
                if let Some((other, _)) = membership.membership().nodes().find(|(_, n)| n.addr == addr) {
                    return ForwardReply::Failed(WriteError::Refused(format!(
                        "{addr} is the peer address of node {other}: give node {id} its own address"
                    )));
                }
                // A learner nobody can dial would be added all the same and the blocking add
                // would wait out the write timeout (`outcome_unknown` from a healthy cluster):
                // ask it first whether it is there, as any node of the cluster answers.
                let probe: Result<ForwardReply, PeerError> =
                    call(&*self.transport, &addr, Rpc::Forward, &ForwardOp::Membership, PROBE_TIMEOUT).await;
                if let Err(e) = probe {
                    return ForwardReply::Failed(WriteError::Refused(format!(
                        "cannot reach node {id} at {addr} from the leader (node {}): {e}; start it first \
                         (`paddock start --node-id {id} --peer {addr} ...` with this cluster's --cluster-id), \
                         check that the leader can connect to that address, then add it",
                        self.id
                    )));
                }
                match self.raft.add_learner(id, BasicNode::new(addr), true).await {
                    Ok(_) => ForwardReply::Done,
                    Err(e) => not_leader(&e).unwrap_or_else(|| fail(e)),
                }
            }
            ForwardOp::Promote { id } => {
                let membership = self.raft.metrics().borrow_watched().membership_config.clone();
                if membership.membership().voter_ids().any(|v| v == id) {
                    return ForwardReply::Done;
                }
                if membership.membership().get_node(&id).is_none() {
                    return ForwardReply::Failed(WriteError::Refused(format!(
                        "node {id} is not a member; add it as a learner first"
                    )));
                }
                if let Some(max) = self.promote_lag_max {
                    // A learner still installing its snapshot gets the write timeout to catch up.
                    let deadline = Instant::now() + self.write_timeout;
                    let behind = loop {
                        let m = self.raft.metrics().borrow_watched().clone();
                        let last = m.last_log_index.unwrap_or(0);
                        let matched =
                            m.replication.as_ref().and_then(|r| r.get(&id).cloned()).flatten().map(|l| l.index);
                        let behind = matched.map(|i| last.saturating_sub(i));
                        if behind.is_some_and(|b| b <= max) || Instant::now() >= deadline {
                            break behind;
                        }
                        tokio::time::sleep(POLL).await;
                    };
                    if behind.is_none_or(|b| b > max) {
                        let state = behind.map_or("has not replicated anything yet".to_string(), |b| {
                            format!("is {b} entries behind")
                        });
                        return ForwardReply::Failed(WriteError::Refused(format!(
                            "node {id} {state}: promote it once `paddock status` shows it within {max} entries of the \
                             leader; a voter that cannot keep up can cost the cluster its majority"
                        )));
                    }
                }
                match self.raft.change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false).await {
                    Ok(_) => ForwardReply::Done,
                    Err(e) => not_leader(&e).unwrap_or_else(|| fail(e)),
                }
            }
            ForwardOp::Remove { id } => {
                let membership = self.raft.metrics().borrow_watched().membership_config.clone();
                if membership.membership().get_node(&id).is_none() {
                    // Refused rather than "done": an operator who typed the wrong id must hear
                    // it, not find the node they meant still a member.
                    return ForwardReply::Failed(WriteError::Refused(format!(
                        "node {id} is not a member of this cluster (never added, or already removed); nothing was changed"
                    )));
                }
                let voters: BTreeSet<u64> = membership.membership().voter_ids().collect();
                if voters.len() == 1 && voters.contains(&id) {
                    return ForwardReply::Failed(WriteError::Refused(format!(
                        "node {id} is the only voter: removing it would leave a cluster that can decide nothing; \
                         add and promote another node first"
                    )));
                }
                let change = if voters.contains(&id) {
                    ChangeMembers::RemoveVoters(BTreeSet::from([id]))
                } else {
                    ChangeMembers::RemoveNodes(BTreeSet::from([id]))
                };
                match self.raft.change_membership(change, false).await {
                    Ok(_) => ForwardReply::Done,
                    Err(e) => not_leader(&e).unwrap_or_else(|| fail(e)),
                }
            }
            ForwardOp::Demote { id } => {
                let membership = self.raft.metrics().borrow_watched().membership_config.clone();
                let voters: BTreeSet<u64> = membership.membership().voter_ids().collect();
                if !voters.contains(&id) {
                    return if membership.membership().get_node(&id).is_some() {
                        ForwardReply::Done
                    } else {
                        ForwardReply::Failed(WriteError::Refused(format!(
                            "node {id} is not a member of this cluster; nothing was changed"
                        )))
                    };
                }
                if voters.len() == 1 {
                    return ForwardReply::Failed(WriteError::Refused(format!(
                        "node {id} is the only voter: the cluster would have no one to decide; promote another node first"
                    )));
                }
                // `retain`: the removed voter stays a member, as a learner.
                match self.raft.change_membership(ChangeMembers::RemoveVoters(BTreeSet::from([id])), true).await {
                    Ok(_) => ForwardReply::Done,
                    Err(e) => not_leader(&e).unwrap_or_else(|| fail(e)),
                }
            }
            ForwardOp::TransferLeader { to } => {
                if self.leader() != Some(self.id) {
                    return ForwardReply::NotLeader { leader: self.leader() };
                }
                if to == self.id {
                    return ForwardReply::Done;
                }
                // Handing leadership to a node that is not a voter cannot succeed; the leader
                // would only step down and cost an election.
                let membership = self.raft.metrics().borrow_watched().membership_config.clone();
                if !membership.membership().voter_ids().any(|v| v == to) {
                    return ForwardReply::Failed(WriteError::Refused(format!(
                        "node {to} is not a voter: leadership can go only to a voter (see `paddock status`)"
                    )));
                }
                if let Some(Err(why)) = self.cluster_time.agrees_with(to) {
                    return ForwardReply::Failed(WriteError::Refused(why));
                }
                match self.raft.trigger().transfer_leader(to).await {
                    Ok(()) => ForwardReply::Done,
                    Err(e) => ForwardReply::Failed(WriteError::Stopped(e.to_string())),
                }
            }
        }
    }
}

/// Why a listen address could not be bound, in words an operator acts on.
pub fn listen_reason(error: &std::io::Error) -> String {
    match error.kind() {
        std::io::ErrorKind::AddrInUse => {
            "the address is already in use: another process (perhaps another paddock node) listens there; \
             stop it or choose another address"
                .to_string()
        }
        std::io::ErrorKind::AddrNotAvailable => {
            "the address is not one of this host's: choose an address of a local interface".to_string()
        }
        std::io::ErrorKind::PermissionDenied => {
            "permission denied: ports below 1024 need privileges; choose a port above 1024".to_string()
        }
        _ => {
            let text = error.to_string();
            text.split(" (os error").next().unwrap_or(&text).to_lowercase()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::membership_refusal;
    use openraft::errors::{ChangeMembershipError, InProgress, LearnerNotFound, UnsupportedMembershipTransition};
    use openraft::impls::leader_id_adv::LeaderId;
    use openraft::LogId;
    use std::collections::BTreeSet;

    type Refusal = ChangeMembershipError<LeaderId<u64, u64>, u64>;

    #[test]
    fn a_refused_membership_change_says_why_and_what_to_do_without_debug_text() {
        let at = |index| Some(LogId::new(LeaderId { term: 2, node_id: 4 }, index));
        let cases: [(Refusal, &str); 3] = [
            (
                InProgress { committed: at(75), membership_log_id: at(76) }.into(),
                "another membership change is in progress (log index 76; the last committed one is at 75)",
            ),
            (LearnerNotFound { node_id: 5 }.into(), "node 5 is not a learner of this cluster: add it first"),
            (
                UnsupportedMembershipTransition {
                    previous: vec![BTreeSet::from([1, 2, 3])],
                    proposed: vec![BTreeSet::from([4, 5, 6])],
                }
                .into(),
                "voters {1, 2, 3} cannot become voters {4, 5, 6} in one change",
            ),
        ];
        for (error, expected) in cases {
            let text = membership_refusal(&error);
            assert!(text.contains(expected), "{text}");
            assert!(!text.contains("Some(") && !text.contains("LogId") && !text.contains("LeaderId"), "{text}");
        }
    }
}
