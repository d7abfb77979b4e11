//! The client oracle and the committed-log record: what clients sent and were told, and
//! what every node applied at every index.
//!
//! Client answers are claims to verify; the log record, gathered from every node's applied
//! entries, is the ground truth they are checked against.

use paddock_ledger::{AccountId, BetId, Command, Done, MarketId, Money, Odds, Outcome};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};

/// What a client learned about one keyed command.
#[derive(Clone, Debug)]
pub struct Acked {
    /// The command as sent (the same bytes on every retry).
    pub command: Command,
    /// Its answer.
    pub outcome: Outcome,
    /// The log index of the entry that produced it.
    pub log_index: u64,
}

/// An acknowledged bet placement, as the client was told.
#[derive(Clone, Debug)]
pub struct AckedBet {
    /// Owner.
    pub account: AccountId,
    /// Bet id.
    pub bet: BetId,
    /// Stake taken.
    pub stake: Money,
    /// Accepted odds per leg.
    pub odds: Vec<Odds>,
}

/// Everything recorded during a run.
#[derive(Default, Debug)]
pub struct Oracle {
    /// Every definitive answer per idempotency key (retries append; all must be equal).
    pub answers: BTreeMap<String, Vec<Acked>>,
    /// Keys whose command was sent but never got a definitive answer.
    pub outstanding: BTreeSet<String>,
    /// Acknowledged placements.
    pub bets: Vec<AckedBet>,
    /// Committed log, index → (digest of the command, the command, its outcome), from every
    /// node's applied entries.
    pub log: BTreeMap<u64, ([u8; 32], Command, Outcome)>,
    /// Violations found as the run went.
    pub violations: Vec<String>,
    /// Linearizable-read checks done.
    pub reads_checked: u64,
}

fn digest(command: &Command, outcome: &Outcome) -> [u8; 32] {
    let bytes = postcard::to_stdvec(&(command, outcome)).expect("commands encode");
    Sha256::digest(bytes).into()
}

impl Oracle {
    /// Records a definitive answer to a keyed command.
    pub fn answer(&mut self, key: &str, acked: Acked) {
        if let Outcome::Done(Done::BetAccepted { bet, odds, stake, .. }) = &acked.outcome {
            let first = self.answers.get(key).is_none_or(|a| a.is_empty());
            if first {
                if let Command::PlaceBet(p) = &acked.command {
                    self.bets.push(AckedBet { account: p.account, bet: *bet, stake: *stake, odds: odds.clone() });
                }
            }
        }
        let entry = self.answers.entry(key.to_string()).or_default();
        if let Some(first) = entry.first() {
            // Invariant 4: a retry returns the original outcome.
            if first.outcome != acked.outcome {
                self.violations.push(format!(
                    "key {key}: retry answered {:?}, first answer was {:?}",
                    acked.outcome, first.outcome
                ));
            }
        }
        entry.push(acked);
        self.outstanding.remove(key);
    }

    /// Records an entry a node applied; two nodes disagreeing on an index is a violation of
    /// log matching (invariant 8).
    pub fn applied(&mut self, node: u64, index: u64, command: &Command, outcome: &Outcome) {
        let d = digest(command, outcome);
        match self.log.get(&index) {
            Some((existing, _, _)) if *existing != d => {
                self.violations
                    .push(format!("node {node} applied a different entry at index {index} than another node"));
            }
            Some(_) => {}
            None => {
                self.log.insert(index, (d, command.clone(), outcome.clone()));
            }
        }
    }

    /// First answers by kind: `done`, or the refusal code.
    pub fn codes(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for answers in self.answers.values() {
            if let Some(first) = answers.first() {
                let kind = match &first.outcome {
                    Outcome::Done(_) => "done".to_string(),
                    Outcome::Rejected(code) => code.as_str().to_string(),
                };
                *out.entry(kind).or_default() += 1;
            }
        }
        out
    }

    /// Invariant 5 on the committed log: no bet accepted while its market was not open.
    pub fn check_no_bet_on_a_closed_market(&mut self) {
        #[derive(Clone, Copy, PartialEq)]
        enum S {
            Open,
            Shut,
        }
        let mut status: BTreeMap<MarketId, S> = BTreeMap::new();
        // A retried key is answered from the idempotency record with the original outcome:
        // only the first entry naming a bet is its acceptance.
        let mut seen: BTreeSet<BetId> = BTreeSet::new();
        let mut found = Vec::new();
        let dump: Option<u64> = std::env::var("PADDOCK_SIM_DUMP_MARKET").ok().and_then(|v| v.parse().ok());
        for (index, (_, command, outcome)) in &self.log {
            if let Some(m) = dump {
                let touches = match command {
                    Command::PlaceBet(p) => p.legs.iter().any(|l| l.market.0 == m),
                    other => format!("{other:?}").contains(&format!("market: MarketId({m})")),
                };
                if touches {
                    eprintln!("{index}: {command:?} -> {outcome:?}");
                }
            }
            let Outcome::Done(done) = outcome else { continue };
            match command {
                Command::CreateMarket { market, .. } | Command::ResumeMarket { market, .. } => {
                    status.insert(*market, S::Open);
                }
                Command::SuspendMarket { market, .. }
                | Command::CloseMarket { market, .. }
                | Command::SettleMarket { market, .. }
                | Command::VoidMarket { market, .. } => {
                    status.insert(*market, S::Shut);
                }
                Command::PlaceBet(p) if matches!(done, Done::BetAccepted { bet, .. } if seen.insert(*bet)) => {
                    for leg in &p.legs {
                        if status.get(&leg.market) != Some(&S::Open) {
                            found.push(format!(
                                "bet accepted at index {index} on market {} which was not open",
                                leg.market
                            ));
                        }
                    }
                }
                _ => {}
            }
        }
        self.violations.extend(found);
    }
}
