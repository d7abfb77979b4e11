//! What to simulate ([`RunConfig`], [`Teeth`]) and what a run found ([`RunReport`]).

use crate::check::{Checker, Violation};
use crate::paths::Paths;
use crate::rng::Rng;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// A deliberate bug to switch on, to prove the checkers catch it. Each lives behind a
/// `fault-injection` (ledger, storage) or `sim` (consensus) switch that is a constant `false`
/// in production builds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Teeth {
    /// No bug: the real system.
    None,
    /// Storage: the Raft log reports appends durable without fsync.
    AckBeforeFsync,
    /// Ledger: bet placement skips the funds check (and `post` lets the wallet go negative).
    SkipFundsCheck,
    /// Ledger: settlement posts a winner's return to the wallet twice.
    PayWinnerTwice,
    /// Consensus: one replica (node 2) counts one deposit entry as applied without applying it.
    SkipLogEntry,
    /// Consensus: a linearizable read is served from the local state without a read index.
    StaleRead,
    /// Ledger: bets are accepted on closed and settled markets (past-posting).
    BetAfterClose,
    /// Ledger: account commands' idempotency records are not kept, so a retry applies again.
    LoseIdempotencyRecord,
    /// Consensus: a leader stamps commands whatever its clock reads (no cluster-time gate).
    NoClockGate,
    /// Backup: a restore's replay of the log after a backup's snapshot leaves deposits out.
    RestoreSkipsDeposits,
}

impl Teeth {
    /// Every deliberate bug.
    pub const BUGS: [Teeth; 9] = [
        Teeth::AckBeforeFsync,
        Teeth::SkipFundsCheck,
        Teeth::PayWinnerTwice,
        Teeth::SkipLogEntry,
        Teeth::StaleRead,
        Teeth::BetAfterClose,
        Teeth::LoseIdempotencyRecord,
        Teeth::NoClockGate,
        Teeth::RestoreSkipsDeposits,
    ];

    /// Stable name, as given to `--teeth`.
    pub fn name(self) -> &'static str {
        match self {
            Teeth::None => "none",
            Teeth::AckBeforeFsync => "ack-before-fsync",
            Teeth::SkipFundsCheck => "skip-funds-check",
            Teeth::PayWinnerTwice => "pay-winner-twice",
            Teeth::SkipLogEntry => "skip-log-entry",
            Teeth::StaleRead => "stale-read",
            Teeth::BetAfterClose => "bet-after-close",
            Teeth::LoseIdempotencyRecord => "lose-idempotency-record",
            Teeth::NoClockGate => "no-clock-gate",
            Teeth::RestoreSkipsDeposits => "restore-skips-deposits",
        }
    }

    /// The bug named `name`.
    pub fn parse(name: &str) -> Option<Teeth> {
        std::iter::once(Teeth::None).chain(Teeth::BUGS).find(|t| t.name() == name)
    }

    /// The checker that must catch this bug (the teeth test asserts it fired).
    pub fn caught_by(self) -> Option<Checker> {
        match self {
            Teeth::None => None,
            // Appends lost on a majority at a crash: acknowledged bets vanish (and openraft
            // often panics on the log reversion, which alone would not count).
            Teeth::AckBeforeFsync => Some(Checker::Acknowledged),
            Teeth::SkipFundsCheck => Some(Checker::Money),
            Teeth::PayWinnerTwice => Some(Checker::Money),
            Teeth::SkipLogEntry => Some(Checker::Replicas),
            Teeth::StaleRead => Some(Checker::Linearizable),
            Teeth::BetAfterClose => Some(Checker::ClosedMarket),
            Teeth::LoseIdempotencyRecord => Some(Checker::Idempotency),
            Teeth::NoClockGate => Some(Checker::BookClock),
            Teeth::RestoreSkipsDeposits => Some(Checker::Restore),
        }
    }
}

/// What to simulate.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// The seed everything is drawn from.
    pub seed: u64,
    /// Voters at bootstrap (3 or 5).
    pub voters: u64,
    /// Whether a learner node exists (added, promoted and removed by the admin client).
    pub learner: bool,
    /// Length of the fault phase.
    pub safety: Duration,
    /// Longest the healed cluster may take to finish every outstanding request.
    pub liveness: Duration,
    /// Raft snapshot policy: a snapshot every this many entries. Small, so snapshots are built,
    /// the log is purged behind them and lagging nodes must install them.
    pub snapshot_interval: u64,
    /// Entries kept behind the newest snapshot when the log is purged.
    pub snapshot_keep: u64,
    /// In-play delay of the delayed event's markets (bets wait for `ResolvePending`).
    pub bet_delay_ms: u64,
    /// Snapshot chunk size: small, so a snapshot travels as many chunks and a fault can cut a
    /// transfer between two of them.
    pub snapshot_chunk_bytes: usize,
    /// A deliberate bug, or none.
    pub teeth: Teeth,
}

impl RunConfig {
    /// The CI shape of a seed: 3 or 5 voters, often a learner, short phases, small snapshot
    /// interval and log keep.
    pub fn for_seed(seed: u64, teeth: Teeth) -> RunConfig {
        let mut r = Rng::new(seed ^ 0x5EED);
        RunConfig {
            seed,
            voters: if r.chance(300) { 5 } else { 3 },
            learner: r.chance(600),
            safety: Duration::from_secs(8),
            liveness: Duration::from_secs(20),
            snapshot_interval: 40 + r.below(41),
            snapshot_keep: 10 + r.below(21),
            bet_delay_ms: 200 + r.below(1_000),
            snapshot_chunk_bytes: 512 + r.below(4_096) as usize,
            teeth,
        }
    }

    /// The long shape: longer fault phases.
    pub fn long(seed: u64) -> RunConfig {
        RunConfig {
            safety: Duration::from_secs(40),
            liveness: Duration::from_secs(40),
            ..RunConfig::for_seed(seed, Teeth::None)
        }
    }
}

/// What a run found.
#[derive(Clone, Debug)]
pub struct RunReport {
    /// Seed.
    pub seed: u64,
    /// Digest of every event of the run: equal for equal seeds, or the run is not deterministic.
    pub trace_hash: String,
    /// Broken invariants, each tagged with the checker that found it (empty = pass).
    pub violations: Vec<Violation>,
    /// Client commands with a definitive answer.
    pub answers: u64,
    /// Acknowledged bets (accepted or pending).
    pub acked_bets: u64,
    /// Committed log entries seen.
    pub log_entries: u64,
    /// Simulated time.
    pub sim_ms: u64,
    /// Faults injected, in order.
    pub faults: Vec<String>,
    /// Linearizable reads checked.
    pub reads_checked: u64,
    /// Answers by kind (`done` or the refusal code).
    pub codes: BTreeMap<String, u64>,
    /// The dangerous paths this run reached.
    pub paths: Paths,
}

impl RunReport {
    /// Whether every invariant held.
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }

    /// The checkers that found something.
    pub fn fired(&self) -> BTreeSet<Checker> {
        self.violations.iter().map(|v| v.checker).collect()
    }
}
