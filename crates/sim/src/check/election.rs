//! Invariant 8, first half: a leader is never elected twice under one identity, and a node
//! never leads in a term older than one it led in before.
//!
//! openraft's default ("advanced") leader id is the pair (term, node): two nodes may both be
//! elected in one term (votes are ordered by term, then node id, and the later one wins), so
//! "one leader per term" is not openraft's invariant (seed 1698 of a 2,000-seed batch showed
//! two leaders in term 11 that way). What must hold instead is that a node's vote is durable:
//! the terms a node is seen leading in never go backwards, even across its crashes.
//!
//! Every 100 steps each running node's own view (role and term) is sampled.
//!
//! Cannot see: leadership between samples (a leader that rose and fell within 100 steps);
//! two leaders of one term competing for the same entries (`log-matching` and
//! `linearizable` catch what that could break).

use crate::check::Checker;
use crate::world::World;
use paddock_consensus::{ClusterStatus, Role};
use std::collections::BTreeMap;

/// Samples one node's status. `leaders` holds, per term, the first leader seen in it (for the
/// leader-change path); `led` the highest term each node was seen leading in.
pub(crate) fn observe(
    world: &World,
    leaders: &mut BTreeMap<u64, u64>,
    led: &mut BTreeMap<u64, u64>,
    node: u64,
    status: &ClusterStatus,
) {
    if status.role != Role::Leader {
        return;
    }
    leaders.entry(status.term).or_insert(node);
    let highest = led.entry(node).or_insert(status.term);
    if status.term < *highest {
        world.violation(
            Checker::Election,
            format!("node {node} leads in term {} after leading in term {highest}: it forgot its vote", status.term),
        );
    } else {
        *highest = status.term;
    }
}
