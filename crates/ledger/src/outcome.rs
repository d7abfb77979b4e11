//! Outcomes: what applying a command answers.

use crate::code::ResultCode;
use crate::ids::{AccountId, BetId, MarketId};
use crate::money::{Money, Odds};
use serde::{Deserialize, Serialize};

/// The answer to one command. `Rejected` always means nothing changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// The command took effect.
    Done(Done),
    /// The command was refused; the state is as it was.
    Rejected(ResultCode),
}

impl Outcome {
    /// The refusal code, if any.
    pub fn code(&self) -> Option<ResultCode> {
        match self {
            Outcome::Done(_) => None,
            Outcome::Rejected(code) => Some(*code),
        }
    }

    /// Whether the command took effect.
    pub fn is_done(&self) -> bool {
        matches!(self, Outcome::Done(_))
    }
}

/// What a successful command did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Done {
    /// A catalogue, limit or configuration change with nothing more to say.
    Ok,
    /// An account was opened.
    AccountOpened {
        /// The account.
        account: AccountId,
    },
    /// A deposit or withdrawal moved money.
    Transferred {
        /// The account.
        account: AccountId,
        /// Wallet balance afterwards.
        balance: Money,
    },
    /// The bet was accepted.
    BetAccepted {
        /// The bet.
        bet: BetId,
        /// Accepted odds per leg, in leg order.
        odds: Vec<Odds>,
        /// Total stake taken.
        stake: Money,
        /// Wallet balance afterwards.
        balance: Money,
    },
    /// The bet waits for the in-play delay; its stake is reserved.
    BetPending {
        /// The bet.
        bet: BetId,
        /// Total stake reserved.
        stake: Money,
        /// Wallet balance afterwards.
        balance: Money,
    },
    /// The bet was cashed out (or the cash-out waits for the in-play delay).
    CashOut {
        /// The bet.
        bet: BetId,
        /// `true` if it waits for the delay.
        pending: bool,
        /// Wallet balance afterwards.
        balance: Money,
    },
    /// Pending bets and cash-outs were decided.
    Resolved {
        /// Bets accepted.
        accepted: u32,
        /// Bets and cash-outs refused.
        rejected: u32,
    },
    /// A market was settled, resettled or voided.
    Settled {
        /// The market.
        market: MarketId,
        /// The market's result version afterwards (1 after the first settlement).
        result_version: u32,
        /// Bets whose settlement this command completed or changed.
        bets_settled: u32,
    },
    /// An API key was recorded.
    KeyIssued {
        /// The key.
        key: crate::auth::KeyId,
        /// When it stops working, if ever.
        expires_at: Option<crate::ids::TimestampMs>,
    },
    /// An incident is open.
    IncidentOpened {
        /// Its number.
        incident: crate::incident::IncidentId,
        /// True if it was already open (the same fault on the same node): nothing changed.
        already_open: bool,
    },
    /// A batch of bets was applied: one answer per bet, in the batch's order.
    BetsPlaced(Vec<BatchItem>),
}

/// One bet's answer in a batch ([`Done::BetsPlaced`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchItem {
    /// As a `PlaceBet` of that bet alone would have answered.
    pub outcome: Outcome,
    /// The answer is the one remembered for the bet's idempotency key (an earlier attempt
    /// took effect or was refused), not a new one.
    pub replayed: bool,
}
