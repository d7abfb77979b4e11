//! Money against an independent model (invariants 1, 2, 4 and 6's "settlement pays exactly
//! what the rules say"): every wallet, every stake held, every debt and every bet's status
//! and return must equal, to the minor unit, what the reference model (`model.rs`) computes
//! by replaying the committed log.
//!
//! Every 100 steps the model is advanced to the furthest applied index of any running replica
//! and compared with the replicas at exactly that index; after healing it is compared with
//! the converged state. The model also checks each entry on the way: the balance the ledger
//! answered, a bet or withdrawal beyond the wallet, accepted odds against the current price,
//! the stake against its lines, the delayed bets a `ResolvePending` decided, the number of
//! bets a settlement completed. What the model covers, and what it takes on trust, is listed
//! in `model.rs`.
//!
//! Cannot see: replicas that are behind the furthest one at a sample (they are compared when
//! they reach an index the model stands at, or at the end); anything the model does not
//! follow (refusals it takes as given, cash-out values, the house's own books); a wrong entry
//! that every replica applied *and* the model agrees with — the model reads the same log, so
//! a client command that should never have been logged is the `retries`, `idempotency` and
//! `acknowledged` checkers' business.

use crate::check::Checker;
use crate::model::{BetState, Model};
use crate::world::World;
use paddock_consensus::Consensus;
use paddock_ledger::{BetStatus, State};

/// Mismatches reported per comparison: one wrong settlement usually shows in several places.
const MISMATCHES_MAX: usize = 5;

/// Advances the model to the furthest running replica and compares it with the replicas there.
pub(crate) fn compare_leading(
    world: &World,
    model: &mut Model,
    archive: &mut crate::check::ArchiveShadow,
    nodes: &[(u64, Consensus)],
) {
    let applied: Vec<(u64, u64)> =
        nodes.iter().map(|(id, n)| (*id, n.read(|d| d.last_applied.map_or(0, |l| l.index)))).collect();
    let Some(furthest) = applied.iter().map(|(_, a)| *a).max() else { return };
    advance(world, model, furthest);
    archive.advance(world, furthest);
    let archived = &archive.bets;
    for (id, node) in nodes {
        node.read(|d| {
            if d.last_applied.map_or(0, |l| l.index) == model.upto {
                compare(world, model, *id, &d.state, archived);
                crate::check::settled_once::check_against_model(world, model, *id, &d.state);
            }
        });
    }
}

/// Advances the model to `index`, reporting what it found on the way.
pub(crate) fn advance(world: &World, model: &mut Model, index: u64) {
    let problems = model.advance(&world.committed.borrow(), index);
    for p in problems {
        world.violation(Checker::Money, p);
    }
}

/// Compares one replica (standing at the model's index) with the model: a bet the model says
/// was archived must be gone from the state and in the archive (`archived`, from any node's
/// segments) as the model has it; any other bet must be in the state.
pub(crate) fn compare(
    world: &World,
    model: &Model,
    node: u64,
    state: &State,
    archived: &std::collections::BTreeMap<paddock_ledger::BetId, paddock_ledger::BetView>,
) {
    let at = model.upto;
    let mut found = Vec::new();
    let mut accounts = 0;
    for (account, m) in model.accounts() {
        accounts += 1;
        match state.account(account) {
            None => found.push(format!("account {account} is missing")),
            Some(v) if (v.balance.0, v.exposure.0, v.debt.0) != (m.wallet, m.reserved, m.debt) => found.push(format!(
                "account {account} holds wallet {} reserved {} debt {}, the model {} {} {}",
                v.balance.0, v.exposure.0, v.debt.0, m.wallet, m.reserved, m.debt
            )),
            Some(_) => {}
        }
    }
    if state.account_count() != accounts {
        found.push(format!("the book has {} accounts, the log opened {accounts}", state.account_count()));
    }
    let mut bets = 0;
    for (id, m) in model.bets() {
        let v = match (m.archived, state.bet(id)) {
            (false, Some(v)) => v,
            (false, None) => {
                found.push(format!("bet {id} is missing"));
                continue;
            }
            (true, Some(_)) => {
                found.push(format!("bet {id} should have been archived and is still in the state"));
                continue;
            }
            (true, None) => match archived.get(&id) {
                Some(v) => v.clone(),
                None => {
                    found.push(format!("bet {id} was archived by the model, not by the ledger's own rule"));
                    continue;
                }
            },
        };
        if !m.archived {
            bets += 1;
        }
        let status_agrees = matches!(
            (m.state, v.status),
            (BetState::Pending, BetStatus::Pending)
                | (BetState::Open, BetStatus::Open)
                | (BetState::Settled, BetStatus::Settled)
                | (BetState::CashedOut, BetStatus::CashedOut)
                | (BetState::Refused, BetStatus::Rejected(_))
        );
        if !status_agrees || v.paid.0 != m.paid {
            found.push(format!(
                "bet {id} is {:?} paid {}, the model says {:?} paid {}",
                v.status, v.paid.0, m.state, m.paid
            ));
        }
    }
    if state.bet_count() != bets {
        found.push(format!("the book has {} bets, the log placed {bets}", state.bet_count()));
    }
    for f in found.into_iter().take(MISMATCHES_MAX) {
        world.violation(Checker::Money, format!("node {node} at applied index {at}: {f}"));
    }
}
