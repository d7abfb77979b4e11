//! Invariant 10: restoring a backup yields the state whose hash was recorded at that backup's
//! index.
//!
//! A backup's full part is a node's latest snapshot file as `GET /v1/backup/snapshot` serves it
//! (`Consensus::backup_snapshot`, read from the node's snapshot file), its increments the
//! committed log after it. Every simulated second each running node reads its latest snapshot
//! file as a backup would (inside the node: a simulated disk is read only there), and the first
//! one served at an index not yet captured is kept (at most [`KEPT_MAX`], so the captures
//! spread over the run). At the end each one is
//! restored the way `paddock restore` does it — decoded from its file bytes, then the committed
//! log after it replayed with the ledger's own `apply` (`paddock_consensus::backup`) — and:
//!
//! - at the snapshot's own index, its hash must equal the hash replicas showed there (when one
//!   was sampled at exactly that index);
//! - replayed up to the index every member converged on, its hash must equal theirs.
//!
//! Cannot see: a fault in reading the log from a node's own store for an increment (the
//! replayed entries come from the committed record the checkers keep; the process tests in
//! `crates/cli/tests/backup_restore.rs` read a real node's log), nor the seeding of a data
//! directory from the restored state (tested there too).

use crate::check::Checker;
use crate::world::World;
use paddock_consensus::backup::{decode_snapshot, replay, DecodedEntry};
use paddock_consensus::records::LogIdRecord;
use paddock_ledger::StateHash;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Snapshots kept per run.
const KEPT_MAX: usize = 6;

/// One snapshot as a backup would have stored it.
struct Taken {
    node: u64,
    index: u64,
    bytes: Vec<u8>,
}

/// The snapshots captured so far.
#[derive(Default)]
pub(crate) struct Backups {
    taken: Vec<Taken>,
    indexes: BTreeSet<u64>,
}

/// Keeps the snapshots the nodes served since the last call, one per index not kept yet.
pub(crate) fn observe(backups: &mut Backups, world: &World) {
    for (node, index, bytes) in world.served_snapshots.borrow_mut().drain(..) {
        if backups.taken.len() < KEPT_MAX && backups.indexes.insert(index) {
            backups.taken.push(Taken { node, index, bytes });
        }
    }
}

/// Restores every captured snapshot and compares it with the replicas; `converged` is the
/// members' (node, applied index, state hash) after healing.
pub(crate) fn check(
    world: &World,
    backups: &Backups,
    hashes: &BTreeMap<u64, (u64, StateHash)>,
    converged: &(u64, u64, StateHash),
) {
    let committed = world.committed.borrow();
    for taken in &backups.taken {
        let decoded = match decode_snapshot(Path::new("snapshot"), &taken.bytes) {
            Ok(d) => d,
            Err(e) => {
                world.violation(
                    Checker::Restore,
                    format!("the snapshot node {} served at index {} does not decode: {e}", taken.node, taken.index),
                );
                continue;
            }
        };
        let mut state = decoded.state;
        if let Some((seen_on, hash)) = hashes.get(&taken.index) {
            if state.state_hash() != *hash {
                world.violation(
                    Checker::Restore,
                    format!(
                        "the snapshot node {} served at index {} restores to another state than node {seen_on} held there",
                        taken.node, taken.index
                    ),
                );
                continue;
            }
        }
        let (to_node, upto, hash) = converged;
        for (index, entry) in committed.entries.range(taken.index + 1..=*upto) {
            let id = LogIdRecord { term: 0, node: 0, index: *index };
            replay(&mut state, &DecodedEntry { id, command: Some((entry.time, entry.command.clone())) });
        }
        if state.state_hash() != *hash {
            world.violation(
                Checker::Restore,
                format!(
                    "a backup of node {} at index {} (its snapshot, then the committed log) restores to another state \
                     at index {upto} than node {to_node} converged on",
                    taken.node, taken.index
                ),
            );
        }
    }
}
