//! The openraft type configuration and the application data it carries.

use paddock_ledger::{Command, Outcome, TimestampMs};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A log entry's application payload: a ledger command stamped with the leader's clock.
///
/// The timestamp is assigned once, by the leader that proposes the entry, and travels in the
/// log: every replica applies the same time (DOMAIN.md R7).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// Leader timestamp, UTC ms.
    pub time: TimestampMs,
    /// The command.
    pub command: Command,
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Log lines name the command kind only: bodies can hold account data.
        let debug = format!("{:?}", self.command);
        let kind = debug.split([' ', '(', '{']).next().unwrap_or("?");
        write!(f, "{kind}@{}", self.time.0)
    }
}

/// What applying an entry answered: an outcome for a command, nothing for blank and
/// membership entries.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// The ledger's answer.
    pub outcome: Option<Outcome>,
    /// The answer is a replay of a remembered one (an idempotent retry).
    #[serde(default)]
    pub replayed: bool,
}

/// The async runtime openraft runs on: tokio in production. Under the simulator, openraft's
/// randomness (election timeouts) comes from a seeded RNG so that a run is a function of its
/// seed, and task panics are contained (see `sim_runtime`).
#[cfg(not(feature = "sim"))]
pub type Runtime = openraft::impls::TokioRuntime;
/// The async runtime openraft runs on: seeded and panic-containing for the simulator.
#[cfg(feature = "sim")]
pub type Runtime =
    crate::sim_runtime::CatchPanics<openraft::rt::deterministic_rng::DeterministicRng<openraft::impls::TokioRuntime>>;

openraft::declare_raft_types!(
    /// Paddock's Raft types: u64 node ids, nodes addressed by their peer address.
    pub TypeConfig:
        D = Request,
        R = Response,
        NodeId = u64,
        Node = openraft::BasicNode,
        AsyncRuntime = Runtime,
);

/// The Raft handle type.
pub type Raft = openraft::Raft<TypeConfig, crate::state_machine::StateMachine>;
/// A log id.
pub type LogId = openraft::alias::LogIdOf<TypeConfig>;
/// A log entry.
pub type Entry = openraft::alias::EntryOf<TypeConfig>;
/// A vote.
pub type Vote = openraft::alias::VoteOf<TypeConfig>;
/// A stored membership.
pub type StoredMembership = openraft::alias::StoredMembershipOf<TypeConfig>;
/// Snapshot metadata.
pub type SnapshotMeta = openraft::alias::SnapshotMetaOf<TypeConfig>;
/// A snapshot with its data.
pub type Snapshot = openraft::alias::SnapshotOf<TypeConfig, crate::state_machine::SnapshotBody>;
