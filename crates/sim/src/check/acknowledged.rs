//! Invariant 3: every acknowledged bet exists exactly once after any fault sequence, with the
//! stake and odds that were acknowledged, and each account holds exactly the bets
//! acknowledged to it (every placement key was answered, so an extra bet is a duplicate or a
//! bet nobody was told about).
//!
//! Checked on the converged final state against the client oracle. A bet acknowledged as
//! pending (in-play delay) is checked for its stake only: its odds are fixed when it is
//! decided, and a pending bet refused later still exists, as refused.
//!
//! Cannot see: a bet whose answer never reached the client (liveness reports the request as
//! unanswered instead); intermediate states (a bet lost and restored between samples); other
//! kinds of acknowledged writes (deposits are `money`'s and `linearizable`'s).

use crate::check::Checker;
use crate::world::World;
use paddock_ledger::{AccountId, State};
use std::collections::BTreeMap;

/// Checks the final state; `accounts` are every account bettors placed bets from; `archived`
/// the bets that left the state for the nodes' archive segments, which count as held.
pub(crate) fn check(
    world: &World,
    state: &State,
    archived: &std::collections::BTreeMap<paddock_ledger::BetId, paddock_ledger::BetView>,
    accounts: &[AccountId],
) {
    let bets = world.clients.borrow().bets.clone();
    let mut per_account: BTreeMap<AccountId, usize> = accounts.iter().map(|a| (*a, 0)).collect();
    for b in &bets {
        *per_account.entry(b.account).or_default() += 1;
        match state.bet(b.bet).or_else(|| archived.get(&b.bet).cloned()) {
            None => world.violation(Checker::Acknowledged, format!("acknowledged bet {} is missing", b.bet)),
            Some(v)
                if v.account != b.account
                    || v.stake != b.stake
                    || b.odds.as_ref().is_some_and(|o| *o != v.legs.iter().map(|l| l.2).collect::<Vec<_>>()) =>
            {
                world.violation(Checker::Acknowledged, format!("bet {} differs from what was acknowledged", b.bet))
            }
            Some(_) => {}
        }
    }
    for (account, acked) in per_account {
        let held = state.bets_of(account).len() + archived.values().filter(|b| b.account == account).count();
        if held != acked {
            world.violation(
                Checker::Acknowledged,
                format!("account {account} holds {held} bets, {acked} were acknowledged"),
            );
        }
    }
}
