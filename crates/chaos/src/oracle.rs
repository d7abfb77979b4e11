//! The oracle: the history of what the workload asked and what it was told.
//!
//! Every money-moving operation is recorded with its idempotency key, body and outcome:
//! - **acknowledged**, with the answer (for a bet: bet id, stake, accepted odds as exact
//!   `num/den`, log index);
//! - **refused**, with the stable error code (a definitive "no": nothing was applied);
//! - **unknown**: retries were exhausted on errors after which the command may or may not have
//!   been applied. After healing, each unknown operation is retried with the same key and body
//!   until the answer is definitive; the record keeps that it was unknown.
//!
//! Every attempt (one HTTP request) is also kept on a timeline, which the report uses to
//! measure client-visible unavailability around each fault. Operator actions on markets
//! (create, close, settle) are kept per market, with the winner chosen before settling.

use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

/// What an operation asked for.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OpBody {
    /// A deposit.
    Deposit {
        /// Account.
        account_id: u64,
        /// Amount.
        amount_minor: i64,
    },
    /// A withdrawal.
    Withdraw {
        /// Account.
        account_id: u64,
        /// Amount.
        amount_minor: i64,
    },
    /// A single bet at any price.
    Bet {
        /// Account.
        account_id: u64,
        /// Market.
        market_id: u64,
        /// Selection.
        selection_id: u64,
        /// Stake.
        stake_minor: i64,
        /// The price the bettor saw (the policy is "any", so a moved price is accepted).
        odds: String,
    },
}

impl OpBody {
    /// The account the operation moves money on.
    pub fn account_id(&self) -> u64 {
        match self {
            OpBody::Deposit { account_id, .. }
            | OpBody::Withdraw { account_id, .. }
            | OpBody::Bet { account_id, .. } => *account_id,
        }
    }

    /// "deposit", "withdraw" or "bet".
    pub fn kind(&self) -> &'static str {
        match self {
            OpBody::Deposit { .. } => "deposit",
            OpBody::Withdraw { .. } => "withdraw",
            OpBody::Bet { .. } => "bet",
        }
    }
}

/// What an acknowledgement said.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Answer {
    /// A deposit's or withdrawal's balance afterwards.
    Balance {
        /// Balance afterwards.
        balance_minor: i64,
    },
    /// A bet was placed.
    Placed {
        /// Bet id.
        bet_id: u64,
        /// "accepted" or "pending".
        status: String,
        /// Stake taken.
        stake_minor: i64,
        /// Accepted odds per leg, exact (`num/den` decimal price).
        odds: Vec<(u32, u32)>,
        /// Log index of the entry that answered (for a replayed key: of the retry).
        log_index: u64,
        /// Balance afterwards.
        balance_minor: i64,
    },
}

/// How an operation ended.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum OpOutcome {
    /// Applied, with the answer.
    Acknowledged {
        /// The answer.
        answer: Answer,
    },
    /// Definitively refused.
    Refused {
        /// Stable error code.
        code: String,
    },
    /// Retries exhausted on errors that leave the outcome open.
    Unknown {
        /// The last error.
        error: String,
    },
}

/// One operation of the workload.
#[derive(Clone, Debug, Serialize)]
pub struct OpRecord {
    /// Sequence number in the history.
    pub id: u64,
    /// Idempotency key.
    pub key: String,
    /// Worker index (`None` for setup).
    pub worker: Option<usize>,
    /// What was asked.
    pub body: OpBody,
    /// Seconds since the run started.
    pub started_s: f64,
    /// Seconds since the run started.
    pub finished_s: f64,
    /// HTTP requests made, including the resolution's.
    pub attempts: u32,
    /// The final outcome (after resolution, if it was unknown).
    pub outcome: OpOutcome,
    /// It was unknown when the workload gave up on it.
    pub was_unknown: bool,
    /// When the resolution got a definitive answer.
    pub resolved_s: Option<f64>,
}

impl OpRecord {
    /// The acknowledged answer, if any.
    pub fn answer(&self) -> Option<&Answer> {
        match &self.outcome {
            OpOutcome::Acknowledged { answer } => Some(answer),
            _ => None,
        }
    }
}

/// What one HTTP attempt came to.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum AttemptResult {
    /// Acknowledged.
    Served,
    /// Definitively refused (the system answered: it is available).
    Refused {
        /// Code.
        code: String,
    },
    /// Failed in a way that may be retried.
    Failed {
        /// Kind: an API code (`unavailable`, `outcome_unknown`, ...), `timeout`, `transport`.
        kind: String,
    },
}

/// One HTTP attempt on the timeline.
#[derive(Clone, Debug, Serialize)]
pub struct AttemptEvent {
    /// What the attempt was for: "deposit", "withdraw", "bet", "operator", "resolve", "setup".
    pub what: &'static str,
    /// Node index asked (0-based).
    pub node: usize,
    /// Seconds since the run started.
    pub start_s: f64,
    /// Seconds since the run started.
    pub end_s: f64,
    /// Outcome.
    pub result: AttemptResult,
}

impl AttemptEvent {
    /// Whether this attempt is one of the workload's writes.
    pub fn is_workload_write(&self) -> bool {
        matches!(self.what, "deposit" | "withdraw" | "bet")
    }
}

/// Where an operator action stands. Every action carries its own idempotency key, so a retry
/// that reaches a node after the first attempt was applied gets the first answer back: an
/// acknowledgement means the action happened, exactly once.
#[derive(Clone, Debug, Serialize, PartialEq, Default)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ActionState {
    /// Not sent.
    #[default]
    NotSent,
    /// Acknowledged.
    Acknowledged {
        /// When.
        at_s: f64,
    },
    /// Refused.
    Refused {
        /// Code.
        code: String,
    },
    /// Outcome unknown, even after the resolution re-sent it with its key.
    Unknown {
        /// The last error.
        error: String,
    },
}

impl ActionState {
    /// Whether the action was acknowledged.
    pub fn acknowledged(&self) -> bool {
        matches!(self, ActionState::Acknowledged { .. })
    }
}

/// What an operator action did.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OperatorAction {
    /// Created the market.
    CreateMarket {
        /// The request.
        request: paddock_api::wire::CreateMarketRequest,
    },
    /// Moved one selection's price.
    SetPrice {
        /// Selection.
        selection_id: u64,
        /// New price.
        odds: String,
    },
    /// Closed the market.
    Close,
    /// Settled the market.
    Settle {
        /// The request (the operator's chosen winner).
        request: paddock_api::wire::SettleRequest,
    },
}

impl OperatorAction {
    /// A short name for messages.
    pub fn name(&self) -> &'static str {
        match self {
            OperatorAction::CreateMarket { .. } => "create market",
            OperatorAction::SetPrice { .. } => "set price",
            OperatorAction::Close => "close",
            OperatorAction::Settle { .. } => "settle",
        }
    }
}

/// One operator action with its key, as sent and as finally known.
#[derive(Clone, Debug, Serialize)]
pub struct ActionRecord {
    /// Its idempotency key (sent with every attempt, and again by the resolution).
    pub key: String,
    /// The market it acts on.
    pub market_id: u64,
    /// What it does.
    pub action: OperatorAction,
    /// Where it stands.
    pub state: ActionState,
    /// HTTP requests made for it.
    pub attempts: u32,
    /// Whether its outcome was unknown at first and learnt by the resolution.
    pub resolved: bool,
}

/// A market's life as the operator drove it.
#[derive(Clone, Debug, Serialize, Default)]
pub struct MarketRecord {
    /// Market id.
    pub market_id: u64,
    /// Selections (id, opening price).
    pub selections: Vec<(u64, String)>,
    /// Creation.
    pub created: ActionState,
    /// Closing.
    pub close: ActionState,
    /// Log index of the close acknowledgement.
    pub close_log_index: Option<u64>,
    /// The winner, chosen before the settlement was sent (the only result ever sent).
    pub winner: Option<u64>,
    /// Settlement.
    pub settle: ActionState,
}

/// Everything recorded in a run.
#[derive(Clone, Debug, Serialize, Default)]
pub struct History {
    /// Accounts opened.
    pub accounts: Vec<u64>,
    /// Operations in the order they started.
    pub ops: Vec<OpRecord>,
    /// Every HTTP attempt of the operations and the operator.
    pub attempts: Vec<AttemptEvent>,
    /// Markets by id.
    pub markets: BTreeMap<u64, MarketRecord>,
    /// Every operator action, in the order they were sent.
    pub actions: Vec<ActionRecord>,
    /// Operator actions that were refused.
    pub operator_errors: Vec<String>,
}

/// The shared recorder.
pub struct Oracle {
    t0: Instant,
    history: Mutex<History>,
}

impl Oracle {
    /// A recorder whose clock starts at `t0`.
    pub fn new(t0: Instant) -> Oracle {
        Oracle { t0, history: Mutex::default() }
    }

    /// Seconds since the run started.
    pub fn now_s(&self) -> f64 {
        self.t0.elapsed().as_secs_f64()
    }

    /// When the run started.
    pub fn t0(&self) -> Instant {
        self.t0
    }

    /// Runs `f` on the history under the lock.
    pub fn with<T>(&self, f: impl FnOnce(&mut History) -> T) -> T {
        let mut h = self.history.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut h)
    }

    /// Records an attempt.
    pub fn attempt(&self, event: AttemptEvent) {
        self.with(|h| h.attempts.push(event));
    }

    /// Records an operation; returns its id.
    pub fn op(&self, mut record: OpRecord) -> u64 {
        self.with(|h| {
            record.id = h.ops.len() as u64;
            h.ops.push(record);
            h.ops.len() as u64 - 1
        })
    }

    /// Updates a market's record (creating it if needed).
    pub fn market(&self, market_id: u64, f: impl FnOnce(&mut MarketRecord)) {
        self.with(|h| {
            let m = h.markets.entry(market_id).or_insert_with(|| MarketRecord { market_id, ..MarketRecord::default() });
            f(m);
        });
    }

    /// A copy of the history.
    pub fn snapshot(&self) -> History {
        self.with(|h| h.clone())
    }
}
