//! Invariants 1 and 2: money is conserved per currency and no player balance is negative —
//! with the rest of the ledger's bookkeeping (reserved stakes equal open stakes, selection
//! liabilities equal open bets' potential wins, debt only with an empty wallet, the bet index,
//! the audit hash chain).
//!
//! Runs `State::check_invariants` on every running replica every 100 steps of simulated time.
//!
//! Cannot see: a state that breaks an invariant and is repaired between two samples; and any
//! error that keeps the books balanced — a winner paid twice from the house book, a deposit
//! applied twice, a bet settled at the wrong odds all conserve money. Those are the `money`
//! checker's job, which recomputes every wallet independently.

use crate::check::Checker;
use crate::world::World;
use paddock_ledger::State;

/// Checks one replica's state.
pub(crate) fn check(world: &World, node: u64, applied: u64, state: &State) {
    if let Err(broken) = state.check_invariants() {
        world.violation(Checker::Conservation, format!("node {node} at applied index {applied}: {broken}"));
    }
}
