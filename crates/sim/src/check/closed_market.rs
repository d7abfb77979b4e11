//! Invariant 5: no bet is accepted on a market that was closed or suspended at that point of
//! the log (past-posting).
//!
//! Replays the committed log with a market status of its own (open on creation and resume;
//! shut on suspension, close, settlement, resettlement and void) and checks every successful
//! placement — accepted at once, or held for its in-play delay — against the status of each
//! of its legs' markets at that index. A retried key answered from the record repeats the
//! first outcome, so only the first entry naming a bet counts as its placement.
//!
//! Cannot see: the decision of a delayed bet at `ResolvePending` (its answer only counts bets;
//! the `money` model judges each one, market status included, and fails on a disagreement);
//! `closes_at` (the workload sets none).

use crate::check::Checker;
use crate::oracle::Committed;
use crate::world::World;
use paddock_ledger::{BetId, Command, Done, MarketId, Outcome};
use std::collections::{BTreeMap, BTreeSet};

/// Checks the whole log record.
pub(crate) fn check(world: &World, log: &Committed) {
    let mut open: BTreeMap<MarketId, bool> = BTreeMap::new();
    let mut seen: BTreeSet<BetId> = BTreeSet::new();
    let dump: Option<u64> = std::env::var("PADDOCK_SIM_DUMP_MARKET").ok().and_then(|v| v.parse().ok());
    for (index, e) in &log.entries {
        if let Some(m) = dump {
            let touches = match &e.command {
                Command::PlaceBet(p) => p.legs.iter().any(|l| l.market.0 == m),
                other => format!("{other:?}").contains(&format!("market: MarketId({m})")),
            };
            if touches {
                eprintln!("{index}: {:?} -> {:?}", e.command, e.outcome);
            }
        }
        let Outcome::Done(done) = &e.outcome else { continue };
        match &e.command {
            Command::CreateMarket { market, .. } | Command::ResumeMarket { market, .. } => {
                open.insert(*market, true);
            }
            Command::SuspendMarket { market, .. }
            | Command::CloseMarket { market, .. }
            | Command::SettleMarket { market, .. }
            | Command::ResettleMarket { market, .. }
            | Command::VoidMarket { market, .. } => {
                open.insert(*market, false);
            }
            Command::PlaceBet(p) => {
                let bet = match done {
                    Done::BetAccepted { bet, .. } | Done::BetPending { bet, .. } => *bet,
                    _ => continue,
                };
                if !seen.insert(bet) {
                    continue;
                }
                for leg in &p.legs {
                    if open.get(&leg.market) != Some(&true) {
                        world.violation(
                            Checker::ClosedMarket,
                            format!("bet {bet} accepted at index {index} on market {} which was not open", leg.market),
                        );
                    }
                }
            }
            _ => {}
        }
    }
}
