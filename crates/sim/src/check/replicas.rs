//! Invariant 7: replicas that have applied the same log index hold byte-identical state.
//!
//! Every 100 steps each running node's (applied index, state hash) is sampled and compared
//! with the first hash any node showed at that index. After healing, when every member
//! reached one applied index, their hashes must be equal too (else the run reports it here;
//! not reaching one index at all is a `liveness` failure).
//!
//! Cannot see: two replicas that differ only at indexes where they were never sampled at the
//! same time, if the difference heals before the end (a snapshot install overwrites it); and a
//! difference outside the ledger state (Raft's membership, which the hash does not cover).

use crate::check::Checker;
use crate::world::World;
use paddock_ledger::StateHash;
use std::collections::BTreeMap;

/// Samples one replica.
pub(crate) fn observe(
    world: &World,
    hashes: &mut BTreeMap<u64, (u64, StateHash)>,
    node: u64,
    applied: u64,
    hash: StateHash,
) {
    match hashes.get(&applied) {
        Some((other, h)) if *h != hash => {
            world.violation(Checker::Replicas, format!("nodes {other} and {node} differ at applied index {applied}"));
        }
        Some(_) => {}
        None => {
            hashes.insert(applied, (node, hash));
        }
    }
}

/// After healing: members at one applied index must hold one state hash.
pub(crate) fn check_converged(world: &World, views: &[(u64, u64, StateHash)]) {
    if let Some((first, rest)) = views.split_first() {
        for other in rest {
            if other.1 == first.1 && other.2 != first.2 {
                world.violation(
                    Checker::Replicas,
                    format!("after healing, nodes {} and {} differ at applied index {}", first.0, other.0, first.1),
                );
            }
        }
    }
}
