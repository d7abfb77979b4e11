//! The invariant checkers: one module per invariant (RELIABILITY.md numbers in brackets), each
//! saying in its own doc what it checks and what it cannot see.
//!
//! | checker | module | invariant | when |
//! |---|---|---|---|
//! | `conservation` | [`conservation`] | 1, 2 | every replica, every 100 steps |
//! | `settled-once` | [`settled_once`] | 6 (at most once) | every replica, every 100 steps; per bet against the model at the end |
//! | `replicas` | [`replicas`] | 7 | every replica, every 100 steps, and after healing |
//! | `election` | [`election`] | 8 (a node's leader terms never go backwards: durable votes) | every replica, every 100 steps |
//! | `log-matching` | [`log_matching`] | 8 (committed entries never change) | every applied entry |
//! | `acknowledged` | [`acknowledged`] | 3 | the final state |
//! | `retries` | [`retries`] | 4 | every client answer |
//! | `idempotency` | [`idempotency`] | 11 | the committed log, at the end |
//! | `closed-market` | [`closed_market`] | 5 | the committed log, at the end |
//! | `money` | [`money`] | 1, 2, 4, 6 (amounts) against a reference model | every 100 steps and at the end |
//! | `linearizable` | [`linearizable`] | 9 | every read of the reader client |
//! | `liveness` | [`liveness`] | after healing, every request answered, one state | the end |
//! | `book-clock` | [`clock`] | the book's clock within the cluster-time bound of the true time | every replica, every 100 steps |
//! | `restore` | [`restore`] | 10 (a restored backup has the recorded state hash) | snapshots captured every 100 steps, restored at the end |
//!
//! A node that panics is reported too (`node-panic`), but a deliberate bug must be caught by a
//! checker, not only by a panic (`tests/teeth.rs`).

pub mod acknowledged;
pub mod clock;
pub mod closed_market;
pub mod conservation;
pub mod election;
pub mod idempotency;
pub mod linearizable;
pub mod liveness;
pub mod log_matching;
pub mod money;
pub mod replicas;
pub mod restore;
pub mod retries;
pub mod settled_once;

use crate::model::Model;
use crate::world::World;
use paddock_consensus::Consensus;
use paddock_ledger::{BetId, BetView};
use std::collections::BTreeMap;

/// The archive as the committed log makes it: the log replayed with the ledger's own `apply`,
/// keeping every bet an `ArchiveSettled` moved out of the state (the segment the ledger builds
/// at that index, which every replica writes to its disk before applying it). The simulated
/// disks can be read only from inside their node, so the checkers compare the replicas'
/// states against this; the process tests read the segment files themselves.
#[derive(Default)]
pub(crate) struct ArchiveShadow {
    state: paddock_ledger::State,
    upto: u64,
    /// The archived bets, by id.
    pub(crate) bets: BTreeMap<BetId, BetView>,
}

impl ArchiveShadow {
    fn new() -> ArchiveShadow {
        ArchiveShadow { state: paddock_ledger::State::new(), ..ArchiveShadow::default() }
    }

    /// Replays the committed log up to `target`.
    pub(crate) fn advance(&mut self, world: &World, target: u64) {
        use paddock_ledger::{apply, audit::AuditEvent, ApplyCtx, Command};
        if target <= self.upto {
            return;
        }
        let committed = world.committed.borrow();
        for (index, entry) in committed.entries.range(self.upto + 1..=target) {
            let ctx = ApplyCtx { log_index: *index, time: entry.time };
            let segment = match &entry.command {
                Command::ArchiveSettled { before, markets_max, .. } => {
                    Some(self.state.archive_segment(*before, *markets_max, *index))
                }
                _ => None,
            };
            apply(&mut self.state, &entry.command, ctx);
            let archived_here = self
                .state
                .audit()
                .records()
                .last()
                .is_some_and(|r| r.log_index == *index && matches!(r.event, AuditEvent::HistoryArchived { .. }));
            if let Some(segment) = segment.filter(|_| archived_here) {
                self.bets.extend(segment.bets.into_iter().map(|b| (b.bet, b)));
            }
        }
        self.upto = self.upto.max(target);
    }
}
use paddock_ledger::StateHash;
use std::fmt;

/// Who found a violation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Checker {
    /// Money conserved, no negative balance (ledger bookkeeping on every replica).
    Conservation,
    /// No bet settled more often than its results allow.
    SettledOnce,
    /// Replicas at one applied index hold one state.
    Replicas,
    /// A node never leads in a term older than one it led in (durable votes).
    Election,
    /// No two nodes apply different entries at one index.
    LogMatching,
    /// Every acknowledged bet exists exactly once, as acknowledged.
    Acknowledged,
    /// A client's retry gets the first answer.
    Retries,
    /// A key takes effect at most once in the committed log.
    Idempotency,
    /// No bet accepted on a market that was not open.
    ClosedMarket,
    /// Every wallet and every bet's return equals the reference model's.
    Money,
    /// Linearizable reads see every acknowledged write.
    Linearizable,
    /// After healing, every request completes and the replicas converge.
    Liveness,
    /// The book's clock stays within the cluster-time bound of the true time.
    BookClock,
    /// A backup (a snapshot, then the committed log) restores to the replicas' state.
    Restore,
    /// A node panicked (not a checker: the ledger's or openraft's own assertion).
    Panic,
}

impl Checker {
    /// Every checker, in report order.
    pub const ALL: [Checker; 15] = [
        Checker::Conservation,
        Checker::SettledOnce,
        Checker::Replicas,
        Checker::Election,
        Checker::LogMatching,
        Checker::Acknowledged,
        Checker::Retries,
        Checker::Idempotency,
        Checker::ClosedMarket,
        Checker::Money,
        Checker::Linearizable,
        Checker::Liveness,
        Checker::BookClock,
        Checker::Restore,
        Checker::Panic,
    ];

    /// Stable kebab-case name.
    pub fn name(self) -> &'static str {
        match self {
            Checker::Conservation => "conservation",
            Checker::SettledOnce => "settled-once",
            Checker::Replicas => "replicas",
            Checker::Election => "election",
            Checker::LogMatching => "log-matching",
            Checker::Acknowledged => "acknowledged",
            Checker::Retries => "retries",
            Checker::Idempotency => "idempotency",
            Checker::ClosedMarket => "closed-market",
            Checker::Money => "money",
            Checker::Linearizable => "linearizable",
            Checker::Liveness => "liveness",
            Checker::BookClock => "book-clock",
            Checker::Restore => "restore",
            Checker::Panic => "node-panic",
        }
    }

    /// The checker named `name`.
    pub fn parse(name: &str) -> Option<Checker> {
        Checker::ALL.into_iter().find(|c| c.name() == name)
    }
}

impl fmt::Display for Checker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A broken invariant and the checker that found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Who found it.
    pub checker: Checker,
    /// What was found.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}", self.checker, self.message)
    }
}

/// What the continuous checks remember between samples.
pub(crate) struct Continuous {
    /// Per applied index, the first node seen there and its state hash.
    pub(crate) hashes: BTreeMap<u64, (u64, StateHash)>,
    /// Per term, the first leader seen (openraft may elect two nodes in one term).
    pub(crate) leaders: BTreeMap<u64, u64>,
    /// Per node, the highest term it was seen leading in.
    pub(crate) led: BTreeMap<u64, u64>,
    /// The reference model, advanced along the committed log.
    pub(crate) model: Model,
    /// Snapshots captured as backups, restored at the end.
    pub(crate) backups: restore::Backups,
    /// The archive the committed log makes, advanced with the model.
    pub(crate) archive: ArchiveShadow,
}

impl Continuous {
    pub(crate) fn new() -> Continuous {
        Continuous {
            hashes: BTreeMap::new(),
            leaders: BTreeMap::new(),
            led: BTreeMap::new(),
            model: Model::new(),
            archive: ArchiveShadow::new(),
            backups: restore::Backups::default(),
        }
    }
}

/// One sample of the continuous checks over every running replica.
pub(crate) fn sample(world: &World, c: &mut Continuous) {
    let nodes: Vec<(u64, Consensus)> = world.nodes.borrow().iter().map(|(i, n)| (*i, n.clone())).collect();
    for (id, node) in &nodes {
        election::observe(world, &mut c.leaders, &mut c.led, *id, &node.status());
        node.read(|d| {
            let applied = d.last_applied.map_or(0, |l| l.index);
            conservation::check(world, *id, applied, &d.state);
            clock::check(world, *id, &d.state);
            settled_once::check_replica(world, *id, applied, &d.state);
            replicas::observe(world, &mut c.hashes, *id, applied, d.state.state_hash());
        });
    }
    restore::observe(&mut c.backups, world);
    money::compare_leading(world, &mut c.model, &mut c.archive, &nodes);
}
