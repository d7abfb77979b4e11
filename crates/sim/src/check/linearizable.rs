//! Invariant 9: reads are linearizable.
//!
//! A single-writer register: the reader client owns one account and only deposits 100 to it.
//! After k acknowledged deposits, a linearizable read (`ClientRead`, through a random node,
//! leader or follower) must show exactly k × 100 — fewer is a stale read, more a write that
//! took effect twice or was reported failed but applied.
//!
//! Cannot see: stale reads of other data (one register, one reader); a read that happens to
//! land on a replica that is up to date even though it skipped the read index (a stale-read
//! bug is caught only when the node it hits lags); `?consistency=stale` reads, which are
//! allowed to lag and are not exercised.

use crate::check::Checker;
use crate::world::World;

/// Checks one read: `balance` read from `node` at `applied` after `acked` deposits of 100.
pub(crate) fn check_read(world: &World, node: u64, applied: u64, balance: i64, acked: i64) {
    world.clients.borrow_mut().reads_checked += 1;
    if balance != acked * 100 {
        world.violation(
            Checker::Linearizable,
            format!(
                "linearizable read from node {node} at applied index {applied} saw balance {balance}, expected {} after {acked} acknowledged deposits",
                acked * 100
            ),
        );
    }
}
