//! Invariant 8, first half: a term has at most one leader.
//!
//! Every 100 steps each running node's own view (role and term) is sampled; two nodes seen
//! leading in one term is a violation.
//!
//! Cannot see: leadership between samples (a leader that rose and fell within 100 steps),
//! and a stale leader that still believes it leads in an *older* term (that is allowed by Raft
//! and harmless as long as it cannot commit; `log-matching` and `linearizable` catch what it
//! could break).

use crate::check::Checker;
use crate::world::World;
use paddock_consensus::{ClusterStatus, Role};
use std::collections::BTreeMap;

/// Samples one node's status.
pub(crate) fn observe(world: &World, leaders: &mut BTreeMap<u64, u64>, node: u64, status: &ClusterStatus) {
    if status.role != Role::Leader {
        return;
    }
    match leaders.get(&status.term) {
        Some(other) if *other != node => {
            world
                .violation(Checker::Election, format!("two leaders in term {}: nodes {other} and {node}", status.term));
        }
        Some(_) => {}
        None => {
            leaders.insert(status.term, node);
        }
    }
}
