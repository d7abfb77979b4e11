//! The state: accounts, catalogue, bets, idempotency records and the audit chain.
//!
//! Every container whose iteration order can reach the state hash or a snapshot is a
//! `BTreeMap` or a `Vec`, never a `HashMap`, so every replica encodes the same bytes. The three
//! largest tables, accounts, bets and idempotency records, are [`DenseMap`]s: hashed for lookups, but
//! showing only their keys' order, and encoded as a `BTreeMap` of the same entries would be.

use crate::audit::AuditChain;
use crate::code::ResultCode;
use crate::command::KeyScope;
use crate::command::{
    BetKind, BookConfig, EachWayTerms, LegResult, LimitKind, LimitWindow, MarketRules, OddsPolicy, SelectionResult,
};
use crate::dense::{ChunkedQueue, DenseMap};
use crate::ids::{AccountId, BetId, Currency, EventId, MarketId, SelectionId, TimestampMs};
use crate::money::{Money, Odds};
use crate::outcome::Outcome;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// The whole book. Change it only through [`crate::apply`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub(crate) config: BookConfig,
    /// The latest leader timestamp applied; time never runs backwards inside the ledger even if
    /// a new leader's clock is behind the old one's.
    pub(crate) clock: TimestampMs,
    pub(crate) accounts: DenseMap<AccountId, Account>,
    pub(crate) house: BTreeMap<Currency, HouseAccounts>,
    pub(crate) events: BTreeMap<EventId, Event>,
    pub(crate) markets: BTreeMap<MarketId, Market>,
    /// Which market each selection belongs to (selection ids are unique book-wide).
    pub(crate) selection_market: BTreeMap<SelectionId, MarketId>,
    pub(crate) bets: DenseMap<BetId, Bet>,
    pub(crate) bet_id_next: u64,
    /// Bets and cash-outs waiting for their in-play delay, in the order they arrived.
    pub(crate) pending: VecDeque<PendingItem>,
    /// Keyed by the key's scope (an account, or the book) and a 128-bit digest of the key text: fixed-size keys compare in
    /// one step and take 16 bytes, where the text took up to 64 twice (map and expiry queue).
    pub(crate) idempotency: DenseMap<(KeyScope, u128), IdempotencyRecord>,
    /// Keys in expiry order (expiry = clock + ttl, and the clock never runs backwards).
    pub(crate) idempotency_expiry: ChunkedQueue<(TimestampMs, KeyScope, u128)>,
    pub(crate) audit: AuditChain,
    /// Principals and API keys. After everything older, so that a version-2 snapshot is a
    /// version-3 one with an empty registry missing from its end.
    pub(crate) auth: crate::auth::Registry,
    /// Incident records. Last, so that a version-3 snapshot is a version-4 one with no
    /// incidents missing from its end.
    pub(crate) incidents: crate::incident::Incidents,
}

/// A player's three ledger accounts plus their limits and history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub(crate) currency: Currency,
    /// Money the player can stake or withdraw. Never negative.
    pub(crate) wallet: Money,
    /// Stakes held for open and pending bets. Never negative.
    pub(crate) reserved: Money,
    /// What the player owes after a resettlement took back more than the wallet held. Zero or
    /// negative; repaid from later credits.
    pub(crate) debt: Money,
    pub(crate) stake_factor_permille: u32,
    pub(crate) limits: BTreeMap<(LimitKind, LimitWindow), Limit>,
    /// Deposits and losses within the longest limit window, oldest first.
    pub(crate) activity: VecDeque<Activity>,
    pub(crate) excluded_until: Option<(crate::command::ExclusionKind, TimestampMs)>,
    /// The account's bets in placement order: an index, so that listing an account's bets
    /// does not scan the whole book.
    pub(crate) bets: Vec<BetId>,
}

impl Account {
    /// Drops activity no limit window can see any more (older than the longest window).
    pub(crate) fn forget_old_activity(&mut self, now: TimestampMs) {
        let horizon = now.0.saturating_sub(LimitWindow::Month.length_ms());
        while self.activity.front().is_some_and(|a| a.at.0 <= horizon) {
            self.activity.pop_front();
        }
    }
}

/// A responsible-gambling limit with a possible pending increase.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limit {
    /// In force now; `None` = no limit.
    pub(crate) amount: Option<Money>,
    /// An increase (or removal) that takes effect at the given instant.
    pub(crate) pending: Option<(Option<Money>, TimestampMs)>,
}

/// One entry of an account's limit history.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activity {
    pub(crate) at: TimestampMs,
    /// Deposited (counts against deposit limits).
    pub(crate) deposit: Money,
    /// Stakes minus returns (counts against loss limits; negative for a win).
    pub(crate) loss: Money,
}

/// The house's accounts in one currency.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HouseAccounts {
    /// The book's result: stakes lost by players minus winnings paid. May be negative.
    pub(crate) book: Money,
    /// Deposits minus withdrawals, as the counter-entry of player wallets. Zero or negative.
    pub(crate) clearing: Money,
    /// Fractions of a minor unit that rounding kept (positive) or gave away (negative), in
    /// millionths of a minor unit. A memorandum: it is not money that moved.
    pub(crate) rounding_micro: i64,
}

/// A sporting event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub(crate) name: String,
    pub(crate) sport: String,
    pub(crate) competition: String,
    pub(crate) starts_at: TimestampMs,
    pub(crate) markets: Vec<MarketId>,
}

/// Where a market is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MarketStatus {
    /// Taking bets.
    Open,
    /// Not taking bets for now.
    Suspended,
    /// Not taking bets any more; waiting for results.
    Closed,
    /// Results in, bets settled.
    Settled,
    /// Results corrected at least once.
    Resettled,
    /// Called off: every bet on it is void.
    Voided,
}

impl MarketStatus {
    /// Stable lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            MarketStatus::Open => "open",
            MarketStatus::Suspended => "suspended",
            MarketStatus::Closed => "closed",
            MarketStatus::Settled => "settled",
            MarketStatus::Resettled => "resettled",
            MarketStatus::Voided => "voided",
        }
    }

    /// Whether results are in (settled, resettled or voided).
    pub fn is_resulted(self) -> bool {
        matches!(self, MarketStatus::Settled | MarketStatus::Resettled | MarketStatus::Voided)
    }
}

/// A market with its selections.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Market {
    pub(crate) event: EventId,
    pub(crate) name: String,
    pub(crate) currency: Currency,
    pub(crate) status: MarketStatus,
    pub(crate) rules: MarketRules,
    pub(crate) selections: BTreeMap<SelectionId, Selection>,
    /// Non-runners in withdrawal order, with their Rule 4 deduction.
    pub(crate) withdrawals: Vec<(SelectionId, u32)>,
    /// How many times the market has been suspended: a delayed bet struck before a suspension
    /// is refused even if the market reopened before its delay ended.
    pub(crate) suspensions: u32,
    /// Results, once settled; the version counts settlements (1 = first).
    pub(crate) results: BTreeMap<SelectionId, SelectionResult>,
    pub(crate) result_version: u32,
    /// Every accepted bet with a leg here, in acceptance order.
    pub(crate) bets: Vec<BetId>,
}

/// A selection with its current price.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selection {
    pub(crate) name: String,
    pub(crate) odds: Odds,
    /// Goes up by one with every price change; quotes and cash-outs name it.
    pub(crate) price_version: u64,
    pub(crate) withdrawn: bool,
    /// The book's net loss if this selection wins, summed over open bets that include it.
    pub(crate) liability: Money,
}

/// A bet as the ledger holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bet {
    pub(crate) account: AccountId,
    pub(crate) kind: BetKind,
    pub(crate) each_way: bool,
    pub(crate) odds_policy: OddsPolicy,
    pub(crate) legs: Vec<Leg>,
    pub(crate) stake_per_line: Money,
    /// Lines struck (each-way lines counted twice).
    pub(crate) lines: u32,
    pub(crate) stake: Money,
    /// Largest possible return minus stake: what each leg's selection liability carries.
    pub(crate) potential_win: Money,
    pub(crate) placed_at: TimestampMs,
    pub(crate) status: BetStatus,
    /// The return actually paid by the current settlement (or cash-out).
    pub(crate) paid: Money,
    /// How many times a settlement was applied, and how many reversed.
    pub(crate) settle_count: u32,
    pub(crate) reverse_count: u32,
}

/// One leg of a bet, as struck.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leg {
    pub(crate) market: MarketId,
    pub(crate) event: EventId,
    pub(crate) selection: SelectionId,
    /// Accepted odds.
    pub(crate) odds: Odds,
    /// The selection's price version at acceptance.
    pub(crate) price_version: u64,
    /// Place terms when struck (each-way).
    pub(crate) each_way: Option<EachWayTerms>,
    /// How many of the market's withdrawals had happened when the bet was struck: later ones
    /// bring Rule 4 deductions.
    pub(crate) withdrawals_seen: u32,
    /// The market's suspension count when the bet was struck.
    pub(crate) suspensions_seen: u32,
    /// The odds the player asked for (kept for the policy check of a delayed bet).
    pub(crate) odds_requested: Odds,
}

/// Where a bet is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BetStatus {
    /// Waiting for the in-play delay; stake reserved.
    Pending,
    /// Accepted, not yet settled.
    Open,
    /// Settled (possibly resettled since).
    Settled,
    /// Settled early by cash-out; results no longer affect it.
    CashedOut,
    /// Refused when its delay ended; stake returned.
    Rejected(ResultCode),
}

impl BetStatus {
    /// Stable lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            BetStatus::Pending => "pending",
            BetStatus::Open => "open",
            BetStatus::Settled => "settled",
            BetStatus::CashedOut => "cashed_out",
            BetStatus::Rejected(_) => "rejected",
        }
    }
}

/// Something waiting for an in-play delay.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PendingItem {
    /// A bet, decided when `due` has passed.
    Bet {
        /// The bet.
        bet: BetId,
        /// When the delay ends.
        due: TimestampMs,
    },
    /// A cash-out, decided when `due` has passed.
    CashOut {
        /// The bet.
        bet: BetId,
        /// The value to pay.
        value: Money,
        /// Price versions the quote was made from.
        quoted_versions: Vec<(SelectionId, u64)>,
        /// When the delay ends.
        due: TimestampMs,
    },
}

/// A remembered command: every command but `ResolvePending` carries a key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    /// First 16 bytes of SHA-256 of the encoded command: tells "same body" from "other body".
    pub(crate) body_digest: [u8; 16],
    pub(crate) outcome: Outcome,
}

// ---- read-only views, for the API and tests ----

/// A read-only view of an account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountView {
    /// The account.
    pub account: AccountId,
    /// Its currency.
    pub currency: Currency,
    /// Available balance.
    pub balance: Money,
    /// Stakes held on open and pending bets.
    pub exposure: Money,
    /// Owed after a resettlement (zero or negative).
    pub debt: Money,
    /// Self-exclusion or time-out end, if any.
    pub excluded_until: Option<TimestampMs>,
}

/// A read-only view of an event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventView {
    /// The event.
    pub event: EventId,
    /// Name, e.g. "Arsenal v Spurs".
    pub name: String,
    /// Sport.
    pub sport: String,
    /// Competition.
    pub competition: String,
    /// Scheduled start.
    pub starts_at: TimestampMs,
    /// Its markets, in creation order.
    pub markets: Vec<MarketId>,
}

/// An account's limits and exclusion (see [`State::account_limits`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountLimitsView {
    /// Every limit set, by kind and window.
    pub limits: Vec<LimitView>,
    /// The kind of the exclusion in force or last set (its end is `AccountView::excluded_until`).
    pub exclusion: Option<crate::command::ExclusionKind>,
}

/// One limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LimitView {
    /// Deposits or losses.
    pub kind: crate::command::LimitKind,
    /// Day, week or month.
    pub window: crate::command::LimitWindow,
    /// In force now; `None`: no limit.
    pub amount: Option<Money>,
    /// A raise or removal waiting out the cooling-off period: the new amount (`None`: removed)
    /// and when it takes effect.
    pub pending: Option<(Option<Money>, TimestampMs)>,
}

/// One currency's books (see [`State::book_balances`]). Player sums are `i128`: a million
/// wallets of the largest balance would overflow a `Money`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BookBalances {
    /// The currency.
    pub currency: Currency,
    /// All players' available balances.
    pub wallets: i128,
    /// All stakes held on open and pending bets.
    pub reserved: i128,
    /// All debts after resettlements (zero or negative).
    pub debt: i128,
    /// The house's result: stakes lost by players minus winnings paid.
    pub house_book: Money,
    /// Deposits minus withdrawals, as the counter-entry of the wallets (zero or negative).
    pub clearing: Money,
    /// Rounding kept (positive) or given away, in millionths of a minor unit (a memorandum).
    pub rounding_micro: i64,
}

impl BookBalances {
    fn empty(currency: Currency) -> BookBalances {
        BookBalances {
            currency,
            wallets: 0,
            reserved: 0,
            debt: 0,
            house_book: Money(0),
            clearing: Money(0),
            rounding_micro: 0,
        }
    }

    /// The sum of the five books: zero while money is conserved.
    pub fn total(&self) -> i128 {
        self.wallets + self.reserved + self.debt + i128::from(self.house_book.0) + i128::from(self.clearing.0)
    }
}

/// A read-only view of a bet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BetView {
    /// The bet.
    pub bet: BetId,
    /// Owner.
    pub account: AccountId,
    /// Shape.
    pub kind: BetKind,
    /// Each-way or not.
    pub each_way: bool,
    /// Legs: market, selection, accepted odds.
    pub legs: Vec<(MarketId, SelectionId, Odds)>,
    /// Total stake.
    pub stake: Money,
    /// Lines struck.
    pub lines: u32,
    /// Status.
    pub status: BetStatus,
    /// Paid by settlement or cash-out so far.
    pub paid: Money,
    /// Acceptance (or placement, while pending) time.
    pub placed_at: TimestampMs,
    /// Settlements applied.
    pub settle_count: u32,
}

/// A read-only view of a market.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarketView {
    /// The market.
    pub market: MarketId,
    /// The event.
    pub event: EventId,
    /// Name.
    pub name: String,
    /// Currency.
    pub currency: Currency,
    /// Status.
    pub status: MarketStatus,
    /// Result version (0 before settlement).
    pub result_version: u32,
    /// Its limits and terms: stake and payout limits, liability limit, in-play delay,
    /// `closes_at`, each-way terms.
    pub rules: crate::command::MarketRules,
    /// Selections: id, name, odds, price version, withdrawn, liability, deduction, result.
    pub selections: Vec<SelectionView>,
}

/// A read-only view of a selection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelectionView {
    /// The selection.
    pub selection: SelectionId,
    /// Name.
    pub name: String,
    /// Current price.
    pub odds: Odds,
    /// Price version.
    pub price_version: u64,
    /// Non-runner.
    pub withdrawn: bool,
    /// Book liability if it wins.
    pub liability: Money,
    /// A non-runner's Rule 4 deduction (pence in the pound), if it was withdrawn.
    pub rule4_deduction_pence: Option<u32>,
    /// Its result, once the market is settled (a selection without one lost).
    pub result: Option<crate::command::SelectionResult>,
}

impl State {
    /// An empty book with default settings.
    pub fn new() -> State {
        State { bet_id_next: 1, ..State::default() }
    }

    /// Book-wide settings.
    pub fn config(&self) -> &BookConfig {
        &self.config
    }

    /// The ledger's clock: the latest leader timestamp it applied.
    pub fn clock(&self) -> TimestampMs {
        self.clock
    }

    /// Number of accounts.
    pub fn account_count(&self) -> usize {
        self.accounts.len()
    }

    /// The id the next bet placed will get: every bet so far has a smaller one.
    pub fn next_bet_id(&self) -> BetId {
        BetId(self.bet_id_next)
    }

    /// Number of bets ever placed (pending, open, settled, ...).
    pub fn bet_count(&self) -> usize {
        self.bets.len()
    }

    /// One account.
    pub fn account(&self, account: AccountId) -> Option<AccountView> {
        self.accounts.get(&account).map(|a| AccountView {
            account,
            currency: a.currency,
            balance: a.wallet,
            exposure: a.reserved,
            debt: a.debt,
            excluded_until: a.excluded_until.map(|(_, until)| until),
        })
    }

    /// Up to `limit` events after `after` (by id), ascending.
    pub fn events(&self, after: Option<EventId>, limit: usize) -> Vec<EventView> {
        let from = after.map_or(EventId(0), |a| EventId(a.0.saturating_add(1)));
        self.events.range(from..).take(limit).map(|(&event, e)| event_view(event, e)).collect()
    }

    /// One event and its markets.
    pub fn event(&self, event: EventId) -> Option<EventView> {
        self.events.get(&event).map(|e| event_view(event, e))
    }

    /// An account's responsible-gambling settings: each limit in force (and a change waiting
    /// out its cooling-off period), and the kind of exclusion, if any.
    pub fn account_limits(&self, account: AccountId) -> Option<AccountLimitsView> {
        self.accounts.get(&account).map(|a| AccountLimitsView {
            limits: a
                .limits
                .iter()
                .map(|(&(kind, window), l)| LimitView { kind, window, amount: l.amount, pending: l.pending })
                .collect(),
            exclusion: a.excluded_until.map(|(kind, _)| kind),
        })
    }

    /// The account a bet belongs to (cheaper than [`State::bet`] for an ownership check).
    pub fn bet_account(&self, bet: BetId) -> Option<AccountId> {
        self.bets.get(&bet).map(|b| b.account)
    }

    /// One bet.
    pub fn bet(&self, bet: BetId) -> Option<BetView> {
        self.bets.get(&bet).map(|b| BetView {
            bet,
            account: b.account,
            kind: b.kind,
            each_way: b.each_way,
            legs: b.legs.iter().map(|l| (l.market, l.selection, l.odds)).collect(),
            stake: b.stake,
            lines: b.lines,
            status: b.status,
            paid: b.paid,
            placed_at: b.placed_at,
            settle_count: b.settle_count,
        })
    }

    /// An account's bets, oldest first.
    pub fn bets_of(&self, account: AccountId) -> Vec<BetView> {
        // The account's own index, not a scan of the whole book.
        self.accounts.get(&account).map_or(Vec::new(), |a| a.bets.iter().filter_map(|id| self.bet(*id)).collect())
    }

    /// The accounts whose balances `command` may change if it is applied now: what a
    /// regulator export diffs to list every money movement without scanning every account.
    pub fn accounts_touched(&self, command: &crate::command::Command) -> std::collections::BTreeSet<AccountId> {
        use crate::command::Command::*;
        let bets_of_market = |market: &MarketId| -> Vec<AccountId> {
            self.markets
                .get(market)
                .map_or(Vec::new(), |m| m.bets.iter().filter_map(|b| self.bets.get(b)).map(|b| b.account).collect())
        };
        match command {
            OpenAccount { account, .. }
            | Deposit { account, .. }
            | Withdraw { account, .. }
            | CashOut { account, .. } => [*account].into(),
            PlaceBet(p) => [p.account].into(),
            PlaceBets(bets) => bets.iter().map(|p| p.account).collect(),
            ResolvePending => self
                .pending
                .iter()
                .filter_map(|p| match p {
                    PendingItem::Bet { bet, .. } | PendingItem::CashOut { bet, .. } => self.bets.get(bet),
                })
                .map(|b| b.account)
                .collect(),
            SettleMarket { market, .. } | ResettleMarket { market, .. } | VoidMarket { market, .. } => {
                bets_of_market(market).into_iter().collect()
            }
            _ => Default::default(),
        }
    }

    /// One market.
    pub fn market(&self, market: MarketId) -> Option<MarketView> {
        self.markets.get(&market).map(|m| MarketView {
            market,
            event: m.event,
            name: m.name.clone(),
            currency: m.currency,
            status: m.status,
            result_version: m.result_version,
            rules: m.rules.clone(),
            selections: m
                .selections
                .iter()
                .map(|(id, s)| SelectionView {
                    selection: *id,
                    name: s.name.clone(),
                    odds: s.odds,
                    price_version: s.price_version,
                    withdrawn: s.withdrawn,
                    liability: s.liability,
                    rule4_deduction_pence: m.withdrawals.iter().find(|(w, _)| w == id).map(|(_, d)| *d),
                    result: m.results.get(id).cloned(),
                })
                .collect(),
        })
    }

    /// All market ids, ascending.
    pub fn market_ids(&self) -> Vec<MarketId> {
        self.markets.keys().copied().collect()
    }

    /// Per currency: the sum of every ledger account. Zero for every currency, always.
    pub fn currency_totals(&self) -> BTreeMap<Currency, i128> {
        let mut totals: BTreeMap<Currency, i128> = BTreeMap::new();
        for a in self.accounts.values_any_order() {
            *totals.entry(a.currency).or_default() +=
                i128::from(a.wallet.0) + i128::from(a.reserved.0) + i128::from(a.debt.0);
        }
        for (c, h) in &self.house {
            *totals.entry(*c).or_default() += i128::from(h.book.0) + i128::from(h.clearing.0);
        }
        totals
    }

    /// The first answer to the command an account sent with idempotency key `key`, while the
    /// key is remembered: what a client that lost the answer (a crash, a timeout) needs in
    /// order to learn what happened without sending the body again.
    pub fn answer_for_key(&self, account: AccountId, key: &crate::ids::IdempotencyKey) -> Option<Outcome> {
        self.idempotency.get(&(crate::command::KeyScope::Account(account), key.digest())).map(|r| r.outcome.clone())
    }

    /// Every currency's books: what the players hold (wallets, stakes held, debts) against the
    /// house's result and the deposit clearing. They sum to zero in each currency (money is
    /// conserved), which anyone with these figures can check from outside.
    pub fn book_balances(&self) -> Vec<BookBalances> {
        let mut out: BTreeMap<Currency, BookBalances> = BTreeMap::new();
        for a in self.accounts.values_any_order() {
            let b = out.entry(a.currency).or_insert_with(|| BookBalances::empty(a.currency));
            b.wallets += i128::from(a.wallet.0);
            b.reserved += i128::from(a.reserved.0);
            b.debt += i128::from(a.debt.0);
        }
        for (c, h) in &self.house {
            let b = out.entry(*c).or_insert_with(|| BookBalances::empty(*c));
            b.house_book = h.book;
            b.clearing = h.clearing;
            b.rounding_micro = h.rounding_micro;
        }
        out.into_values().collect()
    }

    /// The most a cash-out of `bet` is accepted for now, and the price versions it rests on
    /// (refused as a cash-out would be: `bet_not_open`, `market_suspended`, ...).
    pub fn cash_out_quote(&self, bet: BetId) -> Result<(Money, Vec<(SelectionId, u64)>), ResultCode> {
        crate::betting::cash_out_quote(self, bet)
    }

    /// The house book result in one currency (stakes kept minus winnings paid).
    pub fn house_book(&self, currency: Currency) -> Money {
        self.house.get(&currency).map(|h| h.book).unwrap_or_default()
    }

    /// The audit chain.
    pub fn audit(&self) -> &AuditChain {
        &self.audit
    }

    /// Number of remembered idempotency keys.
    pub fn idempotency_key_count(&self) -> usize {
        self.idempotency.len()
    }

    /// Pending bets and cash-outs waiting for their delay.
    pub fn pending_count(&self) -> usize {
        self.pending.len()
    }

    /// When the earliest pending item is due, if any.
    pub fn pending_due_first(&self) -> Option<TimestampMs> {
        self.pending
            .iter()
            .map(|p| match p {
                PendingItem::Bet { due, .. } | PendingItem::CashOut { due, .. } => *due,
            })
            .min()
    }
}

/// A selection's result for the win part (`place_terms` is `None`) or for the place part of an
/// each-way leg struck on `place_terms`, where an unnamed place part follows the win part.
pub(crate) fn leg_part_result(result: &SelectionResult, place_terms: Option<EachWayTerms>) -> LegResult {
    let Some(terms) = place_terms else {
        return result.win;
    };
    result.place.unwrap_or(match result.win {
        LegResult::Win => LegResult::Win,
        LegResult::Void => LegResult::Void,
        // Runners that dead-heat for first fill places 1 ..= tied, so they have placed: in full
        // when the terms pay that many places, else sharing the paid places (the bookmakers'
        // dead-heat rule for the last place). Treating them as unplaced lost the place stake.
        LegResult::DeadHeat { tied, .. } if tied <= terms.places => LegResult::Win,
        LegResult::DeadHeat { tied, .. } => LegResult::DeadHeat { paid_places: terms.places, tied },
        _ => LegResult::Lose,
    })
}

fn event_view(event: EventId, e: &Event) -> EventView {
    EventView {
        event,
        name: e.name.clone(),
        sport: e.sport.clone(),
        competition: e.competition.clone(),
        starts_at: e.starts_at,
        markets: e.markets.clone(),
    }
}
