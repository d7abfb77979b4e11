//! The client oracle and the committed-log record: what clients sent and were told, and what
//! the nodes applied at every index.
//!
//! Client answers are claims to verify; the log record, gathered from every node's applied
//! entries, is the ground truth they are checked against. The record is taken from each
//! node's applied-entry channel by the driver after every simulation step (not by a task on
//! the node), so an entry a node applied just before it crashed is still recorded: every
//! committed entry up to any replica's applied index is in the record, which the reference
//! model relies on (`model.rs`). Blank and membership entries are not ledger commands and are
//! not recorded.

use paddock_ledger::{AccountId, BetId, Command, Done, Money, Odds, Outcome, TimestampMs};
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
    /// Accepted odds per leg; `None` while the bet waited for its in-play delay (the odds are
    /// fixed when it is decided).
    pub odds: Option<Vec<Odds>>,
}

/// Everything the clients sent and were told.
#[derive(Default, Debug)]
pub struct Clients {
    /// Every definitive answer per idempotency key (retries append; all must be equal).
    pub answers: BTreeMap<String, Vec<Acked>>,
    /// Keys whose command was sent but never got a definitive answer.
    pub outstanding: BTreeSet<String>,
    /// Acknowledged placements, accepted or pending.
    pub bets: Vec<AckedBet>,
    /// Linearizable-read checks done.
    pub reads_checked: u64,
}

impl Clients {
    /// Records a definitive answer to a keyed command; returns the first answer for the key,
    /// if this one is a retry's.
    pub fn answer(&mut self, key: &str, acked: Acked) -> Option<Acked> {
        let first = self.answers.get(key).and_then(|a| a.first()).cloned();
        if first.is_none() {
            if let Command::PlaceBet(p) = &acked.command {
                let placed = match &acked.outcome {
                    Outcome::Done(Done::BetAccepted { bet, odds, stake, .. }) => {
                        Some((*bet, *stake, Some(odds.clone())))
                    }
                    Outcome::Done(Done::BetPending { bet, stake, .. }) => Some((*bet, *stake, None)),
                    _ => None,
                };
                if let Some((bet, stake, odds)) = placed {
                    self.bets.push(AckedBet { account: p.account, bet, stake, odds });
                }
            }
        }
        self.answers.entry(key.to_string()).or_default().push(acked);
        self.outstanding.remove(key);
        first
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
}

/// One committed entry as a node applied it.
#[derive(Clone, Debug)]
pub struct Entry {
    /// Digest of the command and its outcome (two nodes must agree on it).
    pub digest: [u8; 32],
    /// The leader's timestamp.
    pub time: TimestampMs,
    /// The command.
    pub command: Command,
    /// What applying it answered.
    pub outcome: Outcome,
}

/// The committed log as the nodes applied it: index → the first node's entry.
#[derive(Default, Debug)]
pub struct Committed {
    /// Entries by log index.
    pub entries: BTreeMap<u64, Entry>,
}

impl Committed {
    /// Records an entry a node applied; returns the entry already recorded at that index if
    /// it differs (a log-matching violation, judged by the caller).
    pub fn record(&mut self, index: u64, time: TimestampMs, command: &Command, outcome: &Outcome) -> Option<&Entry> {
        let bytes = postcard::to_stdvec(&(command, outcome)).expect("commands encode");
        let digest: [u8; 32] = Sha256::digest(bytes).into();
        if self.entries.get(&index).is_some_and(|e| e.digest != digest) {
            return self.entries.get(&index);
        }
        self.entries.entry(index).or_insert_with(|| Entry {
            digest,
            time,
            command: command.clone(),
            outcome: outcome.clone(),
        });
        None
    }
}
