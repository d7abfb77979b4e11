//! `book-clock`: no leader whose wall clock jumped or drifted past the cluster-time bound moves
//! the book's clock.
//!
//! Checks, on every replica at every sample, that the ledger's clock (the latest leader
//! timestamp applied) is at most [`AHEAD_MAX_MS`] ahead of the true simulated time: the largest
//! offset at which a leader still stamps (`clock_offset_max_ms`, 500) plus slack for the
//! samples' round trips and for drift between two cluster-time rounds. The ledger's clock never
//! runs backwards, so an excursion that got in at any moment stays visible until the end.
//!
//! Cannot see: a clock *behind* the truth (it only stalls the book's clock; the leader hands
//! over all the same, which `tests/clock_skew.rs` covers on real processes); an excursion
//! smaller than the bound, which cluster time allows by design.

use crate::check::Checker;
use crate::world::{World, EPOCH_MS};
use paddock_ledger::State;

/// How far ahead of the true time a book's clock may read.
pub(crate) const AHEAD_MAX_MS: u64 = 500 + 1_000;

/// Checks one replica's book clock against the true time.
pub(crate) fn check(world: &World, node: u64, state: &State) {
    let truth = EPOCH_MS + world.now.get().as_millis() as u64;
    let book = state.clock().0;
    if book > truth + AHEAD_MAX_MS {
        world.violation(
            Checker::BookClock,
            format!("node {node}: the book's clock is {} ms ahead of the true time", book - truth),
        );
    }
}
