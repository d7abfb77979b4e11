//! Commands: everything that can change the state, as it is written into the replicated log.
//!
//! A command is data only. It is validated by [`crate::apply`], never by its constructor, so a
//! command decoded from a hostile client is as safe to apply as one built in a test.

use crate::auth::{KeyHash, KeyId, Role};
use crate::ids::{AccountId, Actor, BetId, Currency, EventId, IdempotencyKey, MarketId, SelectionId, TimestampMs};
use crate::money::{Money, Odds, RoundingRule};
use serde::{Deserialize, Serialize};

/// Everything that changes the ledger.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Open a player account in one currency.
    OpenAccount {
        /// Id chosen by the caller.
        account: AccountId,
        /// Currency of the wallet.
        currency: Currency,
        /// Makes a retry safe: the same key and body return the first outcome.
        key: IdempotencyKey,
    },
    /// Move money into a wallet (from the deposits clearing account).
    Deposit {
        /// Account credited.
        account: AccountId,
        /// Amount, positive.
        amount: Money,
        /// Makes a retry safe.
        key: IdempotencyKey,
    },
    /// Move money out of a wallet.
    Withdraw {
        /// Account debited.
        account: AccountId,
        /// Amount, positive.
        amount: Money,
        /// Makes a retry safe.
        key: IdempotencyKey,
    },
    /// Set, lower or raise (after cooling-off) or remove a deposit or loss limit.
    SetLimit {
        /// Account concerned.
        account: AccountId,
        /// Deposit or loss.
        kind: LimitKind,
        /// 24 h, 7 d or 30 d.
        window: LimitWindow,
        /// The new limit; `None` removes it (which is an increase).
        amount: Option<Money>,
        /// Makes a retry safe: the same key and body return the first outcome.
        key: IdempotencyKey,
    },
    /// Self-exclusion (at least six months) or a time-out (one day to six weeks).
    Exclude {
        /// Account concerned.
        account: AccountId,
        /// Which kind of break.
        kind: ExclusionKind,
        /// Length of the break in days.
        duration_days: u32,
        /// Makes a retry safe: the same key and body return the first outcome.
        key: IdempotencyKey,
    },
    /// Scale an account's maximum stakes (per mille: 1000 = as the market says).
    SetStakeFactor {
        /// Account concerned.
        account: AccountId,
        /// Factor in thousandths, 1 ..= 10000.
        factor_permille: u32,
        /// Acting operator.
        actor: Actor,
        /// Makes a retry safe: the same key and body return the first outcome.
        key: IdempotencyKey,
    },
    /// Create a sporting event.
    CreateEvent {
        /// Id chosen by the caller.
        event: EventId,
        /// e.g. "Arsenal v Spurs".
        name: String,
        /// e.g. "football".
        sport: String,
        /// e.g. "Premier League".
        competition: String,
        /// Scheduled start.
        starts_at: TimestampMs,
        /// Acting operator.
        actor: Actor,
        /// Makes a retry safe: the same key and body return the first outcome.
        key: IdempotencyKey,
    },
    /// Create a market with its selections and rules. It opens at once.
    CreateMarket {
        /// Id chosen by the caller.
        market: MarketId,
        /// The event it belongs to.
        event: EventId,
        /// e.g. "Match result".
        name: String,
        /// Currency of stakes and limits.
        currency: Currency,
        /// Selections with their opening prices.
        selections: Vec<NewSelection>,
        /// Limits, delay, each-way terms.
        rules: MarketRules,
        /// Acting operator.
        actor: Actor,
        /// Makes a retry safe: the same key and body return the first outcome.
        key: IdempotencyKey,
    },
    /// Change a selection's price; its price version goes up by one.
    SetPrice {
        /// Market.
        market: MarketId,
        /// Selection.
        selection: SelectionId,
        /// New price.
        odds: Odds,
        /// Makes a retry safe: the same key and body return the first outcome.
        key: IdempotencyKey,
    },
    /// Stop taking bets for now.
    SuspendMarket {
        /// Market.
        market: MarketId,
        /// Why (recorded in the audit trail).
        reason: String,
        /// Acting operator.
        actor: Actor,
        /// Makes a retry safe: the same key and body return the first outcome.
        key: IdempotencyKey,
    },
    /// Take bets again after a suspension.
    ResumeMarket {
        /// Market.
        market: MarketId,
        /// Acting operator.
        actor: Actor,
        /// Makes a retry safe: the same key and body return the first outcome.
        key: IdempotencyKey,
    },
    /// No more bets, for good.
    CloseMarket {
        /// Market.
        market: MarketId,
        /// Acting operator.
        actor: Actor,
        /// Makes a retry safe: the same key and body return the first outcome.
        key: IdempotencyKey,
    },
    /// A runner is withdrawn: bets on it are void and earlier bets on the rest of the market
    /// lose `deduction_pence` of their winnings per pound (Rule 4).
    WithdrawSelection {
        /// Market.
        market: MarketId,
        /// The non-runner.
        selection: SelectionId,
        /// Pence in the pound, 0 ..= 90, from the runner's price band.
        deduction_pence: u32,
        /// Acting operator.
        actor: Actor,
        /// Makes a retry safe: the same key and body return the first outcome.
        key: IdempotencyKey,
    },
    /// Record results and settle every bet that they complete.
    SettleMarket {
        /// Market.
        market: MarketId,
        /// One result per selection that did not simply lose.
        results: Vec<SelectionResult>,
        /// Acting operator.
        actor: Actor,
        /// Makes a retry safe: the same key and body return the first outcome.
        key: IdempotencyKey,
    },
    /// Correct results: reverse the first settlement and apply the new one.
    ResettleMarket {
        /// Market.
        market: MarketId,
        /// The corrected results.
        results: Vec<SelectionResult>,
        /// Why (recorded in the audit trail).
        reason: String,
        /// Acting operator.
        actor: Actor,
        /// Makes a retry safe: the same key and body return the first outcome.
        key: IdempotencyKey,
    },
    /// Void the market: every bet on it is void (a void leg in an accumulator).
    VoidMarket {
        /// Market.
        market: MarketId,
        /// Why (recorded in the audit trail).
        reason: String,
        /// Acting operator.
        actor: Actor,
        /// Makes a retry safe: the same key and body return the first outcome.
        key: IdempotencyKey,
    },
    /// Place a bet.
    PlaceBet(PlaceBet),
    /// Decide every pending (in-play delayed) bet and cash-out whose delay has passed, on the
    /// market as it stands at this command's timestamp.
    ResolvePending,
    /// Settle a bet early at a value quoted outside the ledger.
    CashOut {
        /// Owner of the bet.
        account: AccountId,
        /// The bet.
        bet: BetId,
        /// Value offered to the player.
        value: Money,
        /// The price version of each leg's selection the quote was computed from.
        quoted_versions: Vec<(SelectionId, u64)>,
        /// Makes a retry safe.
        key: IdempotencyKey,
    },
    /// Change book-wide settings.
    SetConfig {
        /// The new settings.
        config: BookConfig,
        /// Acting operator.
        actor: Actor,
        /// Makes a retry safe: the same key and body return the first outcome.
        key: IdempotencyKey,
    },
    /// Create a principal: someone or something that may call the API.
    CreatePrincipal {
        /// Unique name (see [`crate::auth::principal_name_is_valid`]).
        name: String,
        /// What it may do.
        role: Role,
        /// For a bettor: the accounts it owns (each owned by one principal at most).
        accounts: Vec<AccountId>,
        /// Acting operator.
        actor: Actor,
        /// Makes a retry safe: the same key and body return the first outcome.
        key: IdempotencyKey,
    },
    /// Give a bettor one more account.
    BindAccount {
        /// The bettor.
        principal: String,
        /// The account, not yet owned by anyone.
        account: AccountId,
        /// Acting operator.
        actor: Actor,
        /// Makes a retry safe: the same key and body return the first outcome.
        key: IdempotencyKey,
    },
    /// Record a new API key of a principal by its digest (the secret never enters the log).
    IssueKey {
        /// Public id, chosen at random by whoever made the secret.
        id: KeyId,
        /// The owner.
        principal: String,
        /// [`crate::auth::key_hash`] of id and secret.
        hash: KeyHash,
        /// Lifetime from this command's timestamp; `None`: until revoked.
        ttl_ms: Option<u64>,
        /// Acting operator.
        actor: Actor,
        /// Makes a retry safe: the same key and body return the first outcome.
        key: IdempotencyKey,
    },
    /// Revoke an API key at once, on every node.
    RevokeKey {
        /// The key.
        id: KeyId,
        /// Acting operator.
        actor: Actor,
        /// Makes a retry safe: the same key and body return the first outcome.
        key: IdempotencyKey,
    },
    /// Record that a failure began (see [`crate::incident`]).
    OpenIncident {
        /// What kind of failure.
        kind: crate::incident::IncidentKind,
        /// The node it touched (0: not one node).
        node: u64,
        /// What caused it, in words.
        cause: String,
        /// Who saw it: a node (`node-<id>`) or an operator.
        actor: Actor,
        /// Makes a retry safe: the same key and body return the first outcome.
        key: IdempotencyKey,
    },
    /// Record that a failure ended.
    CloseIncident {
        /// The incident.
        incident: crate::incident::IncidentId,
        /// How it ended, in words.
        resolution: String,
        /// Who closed it.
        actor: Actor,
        /// Makes a retry safe: the same key and body return the first outcome.
        key: IdempotencyKey,
    },
    /// Place up to [`BETS_PER_BATCH_MAX`] bets in one log entry, as a gateway sends them (as
    /// Betfair's `placeOrders` takes up to 200 instructions). Each bet is applied in order as
    /// its own [`Command::PlaceBet`] would be, with its own idempotency key and its own
    /// outcome: one bet's refusal does not refuse the others. The batch itself has no key and
    /// no record; a retried batch is answered bet by bet from their records.
    PlaceBets(Vec<PlaceBet>),
    /// Number bets from `from` on: applied by `paddock dr promote` to the book it seeds, so
    /// that the promoted site never issues again an id the lost site may have given to a bet
    /// acknowledged after the promoted point. Recorded in the audit trail.
    ReserveBetIds {
        /// The first id the next bet may get; above every id issued so far.
        from: BetId,
        /// Why, in words (the lost cluster and the promoted index).
        reason: String,
        /// Acting operator.
        actor: Actor,
        /// Makes a retry safe: the same key and body return the first outcome.
        key: IdempotencyKey,
    },
    /// Move settled history out of the hot state (see [`crate::archive`]): markets resulted
    /// before `before`, with their bets and emptied events, into an archive segment the node
    /// keeps on disk; the audit trail records the segment's digest. Nothing to move is not an
    /// error: the book is unchanged.
    ArchiveSettled {
        /// Markets whose latest result is older than this may leave.
        before: TimestampMs,
        /// At most this many markets (1 ..= [`crate::archive::ARCHIVE_MARKETS_MAX`]), so that
        /// one apply stays short.
        markets_max: u32,
        /// Who asked: an operator, or a node's retention job (`node-<id>`).
        actor: Actor,
        /// Makes a retry safe: the same key and body return the first outcome.
        key: IdempotencyKey,
    },
    /// (Only in a build with the `next-format` feature, the stand-in for the next log-entry
    /// format in mixed-version tests. It must stay the last variant: one added after it would
    /// get another tag in the builds with and without the feature.) Written by the leader once every member reads entry
    /// format `format`: the first entry of that format, which a build that reads only older
    /// formats cannot decode. Changes nothing in the book.
    #[cfg(feature = "next-format")]
    ActivateFormat {
        /// The entry format every member now reads.
        format: u8,
    },
}

/// The newest log-entry format this build reads and writes: a command's encoding is part of
/// the entry (`paddock_consensus` frames each entry at its command's [`Command::format`]).
/// Format 1 is every command up to now. A new command, or a changed one, gets the next format;
/// a leader proposes it only once every member announces that it reads it, and a node refuses
/// to start on a log holding a format newer than this.
pub const ENTRY_FORMAT: u8 = if cfg!(feature = "next-format") { 2 } else { 1 };

/// The oldest log-entry format this build still reads (and what a peer that announces no
/// format, a build older than the announcement, is taken to read).
pub const ENTRY_FORMAT_FIRST: u8 = 1;

/// The namespace an idempotency key is remembered in: a player's keys cannot collide with
/// another player's, nor with the operators' keys for the book.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum KeyScope {
    /// Commands on one account (money, limits, exclusions, opening it).
    Account(AccountId),
    /// Catalogue, pricing, settlement and configuration commands.
    Book,
}

impl Command {
    /// The log-entry format this command needs: a member that reads only older formats
    /// cannot decode it (see [`ENTRY_FORMAT`]).
    pub fn format(&self) -> u8 {
        match self {
            #[cfg(feature = "next-format")]
            Command::ActivateFormat { .. } => 2,
            _ => ENTRY_FORMAT_FIRST,
        }
    }

    /// Whether applying this command again after it took effect changes nothing and answers
    /// as the first time did: it carries a key (a batch: each of its bets carries one), so the
    /// repeat is answered from the idempotency records. What may safely be sent again after a
    /// lost answer.
    pub fn repeat_is_replay(&self) -> bool {
        match self {
            Command::PlaceBets(bets) => bets.iter().all(|bet| bet.key.is_valid()),
            _ => self.idempotency().is_some(),
        }
    }

    /// The command's idempotency key and the namespace it is remembered in. Every command
    /// carries one except [`Command::ResolvePending`], which the leader submits by itself and
    /// which is idempotent by nature (it decides only what is due, once), and
    /// [`Command::PlaceBets`], whose bets carry one each.
    pub fn idempotency(&self) -> Option<(KeyScope, &IdempotencyKey)> {
        use Command::*;
        match self {
            OpenAccount { account, key, .. }
            | Deposit { account, key, .. }
            | Withdraw { account, key, .. }
            | SetLimit { account, key, .. }
            | Exclude { account, key, .. }
            | SetStakeFactor { account, key, .. }
            | CashOut { account, key, .. } => Some((KeyScope::Account(*account), key)),
            PlaceBet(p) => Some((KeyScope::Account(p.account), &p.key)),
            CreateEvent { key, .. }
            | CreateMarket { key, .. }
            | SetPrice { key, .. }
            | SuspendMarket { key, .. }
            | ResumeMarket { key, .. }
            | CloseMarket { key, .. }
            | WithdrawSelection { key, .. }
            | SettleMarket { key, .. }
            | ResettleMarket { key, .. }
            | VoidMarket { key, .. }
            | SetConfig { key, .. }
            | CreatePrincipal { key, .. }
            | BindAccount { key, .. }
            | IssueKey { key, .. }
            | RevokeKey { key, .. }
            | OpenIncident { key, .. }
            | CloseIncident { key, .. }
            | ReserveBetIds { key, .. }
            | ArchiveSettled { key, .. } => Some((KeyScope::Book, key)),
            ResolvePending | PlaceBets(_) => None,
            #[cfg(feature = "next-format")]
            ActivateFormat { .. } => None,
        }
    }
}

/// Most bets in one [`Command::PlaceBets`].
pub const BETS_PER_BATCH_MAX: usize = 200;

/// A selection as created with a market.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewSelection {
    /// Id chosen by the caller, unique in the book.
    pub selection: SelectionId,
    /// e.g. "Arsenal", "Draw", "Red Rum".
    pub name: String,
    /// Opening price.
    pub odds: Odds,
}

/// Per-market limits and terms.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarketRules {
    /// Smallest total stake accepted.
    pub stake_min: Money,
    /// Largest total stake accepted (before the account's stake factor).
    pub stake_max: Money,
    /// Largest return one bet may pay.
    pub payout_max: Money,
    /// Largest net loss the book accepts on any one selection winning.
    pub liability_max: Money,
    /// In-play bet delay; 0 for none.
    pub bet_delay_ms: u64,
    /// After this instant no bet is accepted even if nobody closed the market (past-posting
    /// protection that does not depend on a timer on one machine).
    pub closes_at: Option<TimestampMs>,
    /// Each-way place terms, if offered.
    pub each_way: Option<EachWayTerms>,
}

/// Each-way place terms: the place part pays `fraction_num / fraction_den` of the win odds for
/// the first `places` places.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EachWayTerms {
    /// Numerator of the fraction of the odds (1 in 1/4).
    pub fraction_num: u32,
    /// Denominator of the fraction of the odds (4 in 1/4).
    pub fraction_den: u32,
    /// Places paid.
    pub places: u32,
}

/// The outcome of one leg part (the win part, or the place part of an each-way bet).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LegResult {
    /// Pays at the odds.
    Win,
    /// Stake lost.
    Lose,
    /// Stake returned; in an accumulator the leg counts as odds 1.
    Void,
    /// Tied: `paid_places` places shared among `tied` runners; that fraction of the stake
    /// pays at the odds and the rest is lost.
    DeadHeat {
        /// Places available to the tied runners (1 for a tie for first in a win market).
        paid_places: u32,
        /// Runners tied.
        tied: u32,
    },
    /// Asian line: half the stake wins, half is returned.
    HalfWin,
    /// Asian line: half the stake loses, half is returned.
    HalfLose,
}

/// The result of one selection. Selections that a settlement does not name lose.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelectionResult {
    /// Selection.
    pub selection: SelectionId,
    /// The win part.
    pub win: LegResult,
    /// The place part (each-way); `None` means "placed" if it won, placed as a dead heat for
    /// first allows (in full if the terms pay at least `tied` places, else the paid places are
    /// shared among the tied runners), void if void, else lost.
    pub place: Option<LegResult>,
}

/// A bet placement request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaceBet {
    /// Who bets.
    pub account: AccountId,
    /// The selections with the odds the player saw.
    pub legs: Vec<LegRequest>,
    /// Single, accumulator or system.
    pub kind: BetKind,
    /// Stake per line (per part for each-way).
    pub stake_per_line: Money,
    /// Each-way: every line is struck twice, once to win and once to place.
    pub each_way: bool,
    /// What to do if a price moved.
    pub odds_policy: OddsPolicy,
    /// Makes a retry safe.
    pub key: IdempotencyKey,
}

/// One selection of a bet with the odds the player saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegRequest {
    /// Market.
    pub market: MarketId,
    /// Selection.
    pub selection: SelectionId,
    /// The price the player saw.
    pub odds: Odds,
}

/// The shape of a bet: which combinations of its legs are struck as lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BetKind {
    /// One leg.
    Single,
    /// All legs in one line (a double, treble, ... up to [`crate::LEGS_MAX`] folds).
    Accumulator,
    /// Every combination of exactly `k` of the legs.
    KOfN {
        /// Legs per line.
        k: u32,
    },
    /// 3 legs: 3 doubles and a treble (4 lines).
    Trixie,
    /// 3 legs: 3 singles, 3 doubles and a treble (7 lines).
    Patent,
    /// 4 legs: 6 doubles, 4 trebles and a four-fold (11 lines).
    Yankee,
    /// 4 legs: 4 singles, 6 doubles, 4 trebles and a four-fold (15 lines).
    Lucky15,
}

/// What to do when the price has moved since the player saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OddsPolicy {
    /// Reject on any change.
    Exact,
    /// Accept an equal or better current price.
    Higher,
    /// Accept whatever the current price is.
    Any,
}

/// A deposit or a loss limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum LimitKind {
    /// Total deposits in the window.
    Deposit,
    /// Stakes minus returns in the window.
    Loss,
}

/// The window a limit applies over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum LimitWindow {
    /// 24 hours.
    Day,
    /// 7 days.
    Week,
    /// 30 days.
    Month,
}

impl LimitWindow {
    /// All windows, shortest first.
    pub const ALL: [LimitWindow; 3] = [LimitWindow::Day, LimitWindow::Week, LimitWindow::Month];

    /// Length in milliseconds.
    pub fn length_ms(self) -> u64 {
        crate::ids::DAY_MS
            * match self {
                LimitWindow::Day => 1,
                LimitWindow::Week => 7,
                LimitWindow::Month => 30,
            }
    }
}

/// A break from gambling.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExclusionKind {
    /// At least [`crate::SELF_EXCLUSION_DAYS_MIN`] days.
    SelfExclusion,
    /// One day to six weeks.
    TimeOut,
}

/// The default [`BookConfig::clock_step_max_ms`]: five minutes. Far below the shortest
/// idempotency TTL, exclusion or time-out (a day), so no single entry can end one.
pub const CLOCK_STEP_MAX_MS_DEFAULT: u64 = 5 * 60_000;

/// Book-wide settings, changed only by an operator command (so every replica agrees).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookConfig {
    /// How payouts are rounded to minor units.
    pub rounding: RoundingRule,
    /// The smallest margin, in basis points of fair value, a cash-out quote must leave.
    pub cash_out_margin_bps: u32,
    /// How long a limit increase waits before it applies.
    pub limit_cooling_off_ms: u64,
    /// How long an idempotency key is remembered.
    pub idempotency_ttl_ms: u64,
    /// The most one log entry may move the book's clock forward. A command stamped further
    /// ahead is refused (`clock_step_too_large`), except `ResolvePending`, which advances the
    /// clock by at most this much: the leader's ticks catch the clock up after a quiet spell.
    pub clock_step_max_ms: u64,
}

impl Default for BookConfig {
    fn default() -> BookConfig {
        BookConfig {
            rounding: RoundingRule::Down,
            cash_out_margin_bps: 500,
            limit_cooling_off_ms: crate::ids::DAY_MS,
            idempotency_ttl_ms: 30 * crate::ids::DAY_MS,
            clock_step_max_ms: CLOCK_STEP_MAX_MS_DEFAULT,
        }
    }
}
