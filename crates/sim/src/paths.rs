//! Coverage: which dangerous paths a run actually went down.
//!
//! A checker that never sees a snapshot install cannot catch a bug in it, so a batch reports,
//! per path, how many seeds reached it, and CI fails when one was reached by none
//! (`--require-paths`). The signals come from seams the simulator already owns or from
//! production metrics, never from new hooks in the code under test:
//!
//! - the production `metrics` macros, captured by [`MetricCounts`] (a recorder local to the
//!   simulation's thread): `paddock_raft_log_purges_total` (storage) for purges,
//!   `paddock_snapshot_build_duration_seconds` (consensus) for snapshots built,
//!   `paddock_archive_segments_fetched_total` (consensus) for archive segments fetched,
//!   `paddock_snapshot_transfers_restarted_total` (consensus) for snapshot transfers cut and
//!   started again, `paddock_storage_repair_seconds` (consensus) for a storage repair finished;
//! - per node, [`NodeProbe`]: `SimDisk` counts snapshot files written, the peer server in
//!   `net.rs` counts `SnapshotInstall` RPCs (the end of a chunked transfer) in flight and those answered after the node wrote
//!   the snapshot to its disk (an install, not just a refusal);
//! - the driver (leaders seen per term, crashes and restarts) and the reference model (delayed
//!   bets decided, settlements by kind, retries answered from the idempotency record).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A path through the code that a run may or may not reach.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Path {
    /// A node purged its Raft log behind a snapshot.
    LogPurged,
    /// A node built a snapshot.
    SnapshotBuilt,
    /// A voter installed a snapshot sent by the leader (it lagged behind the purged log).
    SnapshotToFollower,
    /// The learner installed a snapshot sent by the leader.
    SnapshotToLearner,
    /// A promotion or removal was under way while a node was receiving a snapshot.
    MembershipDuringSnapshot,
    /// A snapshot transfer was cut part-way (a partition, a crash, a timeout) and the leader
    /// started it again: the receiver emptied its incoming file at the new first chunk.
    SnapshotTransferRestarted,
    /// The leader changed at least once.
    LeaderChange,
    /// A node crashed and was restarted.
    CrashRestart,
    /// A bet waited for its in-play delay and was then accepted by `ResolvePending`.
    DelayedBetAccepted,
    /// A bet waited for its in-play delay and was then refused by `ResolvePending`.
    DelayedBetRefused,
    /// A retry of a command that had taken effect was answered from its idempotency record.
    RetryAnsweredFromRecord,
    /// A settled market was resettled or voided, reversing paid bets.
    Resettlement,
    /// A bet was cashed out.
    CashOut,
    /// A bet was settled with a Rule 4 deduction.
    Rule4,
    /// A bet was settled on a dead heat.
    DeadHeat,
    /// An each-way bet was settled.
    EachWay,
    /// A clock fault (a jump or a drift) hit the node leading at the time.
    ClockFaultOnLeader,
    /// An `ArchiveSettled` moved settled history out of the state.
    HistoryArchived,
    /// A node fetched an archive segment it lacked from a peer (it had installed a snapshot
    /// taken after it). Informational: it needs a snapshot install past an archiving.
    ArchiveFetched,
    /// A disk served a corrupted read (a checksum had to catch it). Informational: a running
    /// node reads mostly from memory, so the corruption fault rarely reaches a read (see
    /// [`Path::required`]).
    CorruptRead,
    /// A node found rot at rest in its log or snapshots, discarded it, abstained from votes,
    /// and finished fetching it again from the leader (`paddock_storage_repair_seconds`).
    StorageRepaired,
}

impl Path {
    /// Every path, in table order.
    pub const ALL: [Path; 21] = [
        Path::LogPurged,
        Path::SnapshotBuilt,
        Path::SnapshotToFollower,
        Path::SnapshotToLearner,
        Path::MembershipDuringSnapshot,
        Path::SnapshotTransferRestarted,
        Path::LeaderChange,
        Path::CrashRestart,
        Path::DelayedBetAccepted,
        Path::DelayedBetRefused,
        Path::RetryAnsweredFromRecord,
        Path::Resettlement,
        Path::CashOut,
        Path::Rule4,
        Path::DeadHeat,
        Path::EachWay,
        Path::ClockFaultOnLeader,
        Path::HistoryArchived,
        Path::ArchiveFetched,
        Path::CorruptRead,
        Path::StorageRepaired,
    ];

    /// Stable kebab-case name (the batch table, `--json`, the per-seed line).
    pub fn name(self) -> &'static str {
        match self {
            Path::LogPurged => "log-purged",
            Path::SnapshotBuilt => "snapshot-built",
            Path::SnapshotToFollower => "snapshot-to-follower",
            Path::SnapshotToLearner => "snapshot-to-learner",
            Path::MembershipDuringSnapshot => "membership-during-snapshot",
            Path::SnapshotTransferRestarted => "snapshot-transfer-restarted",
            Path::LeaderChange => "leader-change",
            Path::CrashRestart => "crash-restart",
            Path::DelayedBetAccepted => "delayed-bet-accepted",
            Path::DelayedBetRefused => "delayed-bet-refused",
            Path::RetryAnsweredFromRecord => "retry-from-record",
            Path::Resettlement => "resettlement",
            Path::CashOut => "cash-out",
            Path::Rule4 => "rule4",
            Path::DeadHeat => "dead-heat",
            Path::EachWay => "each-way",
            Path::ClockFaultOnLeader => "clock-fault-on-leader",
            Path::HistoryArchived => "history-archived",
            Path::ArchiveFetched => "archive-fetched",
            Path::CorruptRead => "corrupt-read",
            Path::StorageRepaired => "storage-repaired",
        }
    }

    /// Whether a batch run with `--require-paths` fails when no seed reached this path. Not
    /// for `corrupt-read`: restarting a node *into* read corruption would reach it in every
    /// fifth seed, but then corrupted reads during redb's recovery make some seeds lose
    /// fsynced log entries and break log matching (seeds 47 and 186), which needs a storage
    /// decision first (docs/simulation.md); until then the path is reported, not required.
    pub fn required(self) -> bool {
        !matches!(self, Path::CorruptRead | Path::ArchiveFetched)
    }

    /// The path named `name`.
    pub fn parse(name: &str) -> Option<Path> {
        Path::ALL.into_iter().find(|p| p.name() == name)
    }
}

/// Per node, what the simulator's own seams saw. Shared with `SimDisk` and the peer server
/// (hence atomics: `Disk` must be `Send + Sync`, though everything runs on one thread).
#[derive(Debug, Default)]
pub struct NodeProbe {
    /// Snapshot files (`snap-*.pds`) written to this node's disk, built or installed.
    pub snapshot_files_written: AtomicU64,
    /// `InstallSnapshot` RPCs being handled by this node right now.
    pub installs_in_flight: AtomicU64,
    /// `InstallSnapshot` RPCs this node started handling.
    pub installs_started: AtomicU64,
    /// `InstallSnapshot` RPCs answered after this node wrote a snapshot file: installed.
    pub installs_done: AtomicU64,
}

impl NodeProbe {
    /// Marks an `InstallSnapshot` RPC as being handled until the guard drops (also when the
    /// node crashes mid-call and its task is dropped).
    pub fn install(self: &Arc<Self>) -> InstallGuard {
        self.installs_in_flight.fetch_add(1, Ordering::SeqCst);
        self.installs_started.fetch_add(1, Ordering::SeqCst);
        let files_before = self.snapshot_files_written.load(Ordering::SeqCst);
        InstallGuard { probe: self.clone(), files_before, answered_ok: false }
    }
}

/// An `InstallSnapshot` RPC being handled; see [`NodeProbe::install`].
#[derive(Debug)]
pub struct InstallGuard {
    probe: Arc<NodeProbe>,
    files_before: u64,
    /// Set when the handler answered without error.
    pub answered_ok: bool,
}

impl Drop for InstallGuard {
    fn drop(&mut self) {
        self.probe.installs_in_flight.fetch_sub(1, Ordering::SeqCst);
        let wrote = self.probe.snapshot_files_written.load(Ordering::SeqCst) > self.files_before;
        if self.answered_ok && wrote {
            self.probe.installs_done.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// `InstallSnapshot` activity summed over nodes: (started so far, in flight now).
pub fn installs(probes: &BTreeMap<u64, Arc<NodeProbe>>) -> (u64, u64) {
    probes.values().fold((0, 0), |(s, f), p| {
        (s + p.installs_started.load(Ordering::SeqCst), f + p.installs_in_flight.load(Ordering::SeqCst))
    })
}

/// A `metrics` recorder that counts, per metric name, counter increments and histogram
/// records (gauges are ignored). Installed for one run with `metrics::with_local_recorder`,
/// so it sees what the nodes of that run emit and nothing else.
#[derive(Debug, Default)]
pub struct MetricCounts {
    counts: Mutex<BTreeMap<String, Arc<Count>>>,
}

#[derive(Debug, Default)]
struct Count(AtomicU64);

impl metrics::CounterFn for Count {
    fn increment(&self, value: u64) {
        self.0.fetch_add(value, Ordering::Relaxed);
    }

    fn absolute(&self, value: u64) {
        self.0.fetch_max(value, Ordering::Relaxed);
    }
}

impl metrics::HistogramFn for Count {
    fn record(&self, _value: f64) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

impl MetricCounts {
    fn slot(&self, key: &metrics::Key) -> Arc<Count> {
        self.counts.lock().expect("metric counts lock").entry(key.name().to_string()).or_default().clone()
    }

    /// Counter total, or number of histogram records, for `name`.
    pub fn get(&self, name: &str) -> u64 {
        self.counts.lock().expect("metric counts lock").get(name).map_or(0, |c| c.0.load(Ordering::Relaxed))
    }
}

impl metrics::Recorder for MetricCounts {
    fn describe_counter(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
    fn describe_gauge(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}
    fn describe_histogram(&self, _: metrics::KeyName, _: Option<metrics::Unit>, _: metrics::SharedString) {}

    fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        metrics::Counter::from_arc(self.slot(key))
    }

    fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::noop()
    }

    fn register_histogram(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Histogram {
        metrics::Histogram::from_arc(self.slot(key))
    }
}

/// The paths reached by one run.
pub type Paths = BTreeSet<Path>;
