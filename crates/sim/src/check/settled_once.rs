//! Invariant 6, first half: each bet is settled at most once per result version — checked
//! per bet, not summed over its legs.
//!
//! Two checks:
//! - On every running replica every 100 steps, model-free: a bet's settlement count may not
//!   exceed 1 + the result versions *beyond the first* of its own markets (it is settled
//!   once when its last market gets results, and once more each time one of its markets is
//!   resettled or voided afterwards). A bet whose four markets were each settled once may be
//!   settled once, not four times.
//! - Against the reference model, on the replicas standing at the model's index (every 100
//!   steps and at the end): a bet's settlement count may not exceed the number of times the
//!   log's results settled it in the model (`model.rs`).
//!
//! Cannot see: a settlement that was applied and reversed between samples (the count keeps
//! it, so only a count *below* the truth would hide, and `money` compares what was paid); a
//! settlement paid twice under one count (`money` sees the wallet); the reversal count, which
//! the ledger's views do not expose (the ledger's own `check_invariants`, run by
//! `conservation`, ties it to the status).

use crate::check::Checker;
use crate::model::Model;
use crate::world::World;
use paddock_ledger::{BetId, State};

/// The model-free bound on one replica.
pub(crate) fn check_replica(world: &World, node: u64, applied: u64, state: &State) {
    // Ids, not a count: archived bets leave gaps below the next id.
    for id in 1..state.next_bet_id().0 {
        let Some(bet) = state.bet(BetId(id)) else { continue };
        let resettled: u32 =
            bet.legs.iter().filter_map(|(m, _, _)| state.market(*m)).map(|m| m.result_version.saturating_sub(1)).sum();
        if bet.settle_count > 1 + resettled {
            world.violation(
                Checker::SettledOnce,
                format!(
                    "node {node} at applied index {applied}: bet {id} settled {} times, its markets were resettled {resettled} times",
                    bet.settle_count
                ),
            );
        }
    }
}

/// Per bet against the model, on a replica at the model's index.
pub(crate) fn check_against_model(world: &World, model: &Model, node: u64, state: &State) {
    for (id, m) in model.bets() {
        if let Some(bet) = state.bet(id) {
            if bet.settle_count > m.settles {
                world.violation(
                    Checker::SettledOnce,
                    format!(
                        "node {node} at applied index {}: bet {id} settled {} times, the log's results settle it {} times",
                        model.upto, bet.settle_count, m.settles
                    ),
                );
            }
        }
    }
}
