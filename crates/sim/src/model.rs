//! The reference settlement model: every wallet and every bet recomputed from the committed
//! log, by code written apart from the ledger, for the `money` and `settled-once` checkers.
//!
//! It replays the log record (`oracle::Committed`) in index order. It shares nothing with the
//! ledger's implementation but the command and outcome *types*: its own exact rationals, its
//! own line enumeration, its own market and bet bookkeeping. For each account it keeps one
//! signed `net` (wallet plus debt) and the stakes reserved; the ledger's rules make the wallet
//! `max(net, 0)` and the debt `min(net, 0)` after every command (a credit repays debt first, a
//! reversal takes from the wallet first), which is what it compares.
//!
//! # What it follows
//! - Accounts: open, deposit, withdraw (a withdrawal beyond the wallet is a violation).
//! - Bets at the odds the ledger accepted — singles, accumulators, k-of-n, trixie, patent,
//!   yankee, lucky 15, each-way — with stake = stake per line × lines (× 2 each-way), taken
//!   from the wallet (a bet accepted beyond the wallet is a violation), and accepted odds that
//!   must equal the selection's current price in the model's own book.
//! - In-play delays: a pending bet's stake is held; `ResolvePending` decides, in arrival
//!   order, every bet due by the entry's time (the book's clock: the largest stamp of a
//!   successful entry, at most `clock_step_max_ms` ahead for `ResolvePending`). The model
//!   judges each one itself — suspended during the delay, market open, `closes_at`, selection
//!   withdrawn, odds policy against the current price, stake limits, maximum payout, selection
//!   liability — and its accepted/refused counts must equal the ledger's answer.
//! - Cash-out at the value the command asked (paid to the wallet; the stake is the house's).
//! - Settlement, exactly: win, lose, void, dead heat, half-win, half-lose; Rule 4 deductions
//!   for withdrawals after a bet was struck (capped at 90p, a leg's own selection excepted);
//!   each-way place terms and the place result of an unnamed place part (the dead-heat rule
//!   for the last place); a withdrawn runner's legs void; a voided market's legs void; every
//!   line's stake times its legs' factors summed and rounded once by the book's rounding rule.
//! - Resettlement and void of a settled market: every paid bet reversed (from the wallet,
//!   the rest as debt) and settled again; the `bets_settled` count of the answer must match.
//! - Idempotency: the first successful entry of a key takes effect; a later successful entry
//!   with the same key and body is a replay and changes nothing (what it answered is the
//!   `idempotency` checker's business).
//!
//! # What it does not follow
//! - Refusals: a refused entry changes nothing, and the model does not judge whether the
//!   refusal was right (an immediate placement's acceptance is taken from the answer; only
//!   delayed bets are judged).
//! - Cash-out values: it does not check that the value was within the fair value less margin.
//! - Limits, exclusions and stake factors (`SetLimit`, `Exclude`, `SetStakeFactor`) and
//!   delayed cash-outs: the simulator's workload sends none; a successful one is reported as
//!   a violation ("the model cannot follow"), so a workload change cannot silently blind it.
//! - Idempotency-key expiry (30 days; a run lasts seconds).
//! - House and clearing books, rounding remainders and audit records: only players' money.

use crate::oracle::{Committed, Entry};
use crate::paths::{Path, Paths};
use paddock_ledger::{
    AccountId, BetId, BetKind, BookConfig, Command, Done, EachWayTerms, KeyScope, LegResult, MarketId, MarketRules,
    Odds, OddsPolicy, Outcome, PlaceBet, RoundingRule, SelectionId, SelectionResult,
};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Most a set of Rule 4 deductions takes, in pence in the pound (the published rule).
const RULE4_CAP_PENCE: u32 = 90;

/// An exact non-negative rational, always reduced. `None` from an operation is an overflow,
/// which the model reports rather than rounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Q {
    n: u128,
    d: u128,
}

fn gcd(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl Q {
    fn new(n: u128, d: u128) -> Q {
        let g = gcd(n, d).max(1);
        Q { n: n / g, d: d / g }
    }

    fn int(n: u128) -> Q {
        Q { n, d: 1 }
    }

    fn odds(o: Odds) -> Q {
        Q::new(u128::from(o.numerator()), u128::from(o.denominator()))
    }

    fn mul(self, o: Q) -> Option<Q> {
        Some(Q::new(self.n.checked_mul(o.n)?, self.d.checked_mul(o.d)?))
    }

    fn add(self, o: Q) -> Option<Q> {
        let d = self.d.checked_mul(o.d)?;
        Some(Q::new(self.n.checked_mul(o.d)?.checked_add(o.n.checked_mul(self.d)?)?, d))
    }

    fn less_than(self, o: Q) -> bool {
        self.n * o.d < o.n * self.d
    }

    /// Rounded to whole minor units by `rule`.
    fn round(self, rule: RoundingRule) -> i64 {
        let (floor, rest) = (self.n / self.d, self.n % self.d);
        let up = rule == RoundingRule::HalfUp && rest * 2 >= self.d;
        (floor + u128::from(up)) as i64
    }
}

/// Every line of a bet of `kind` over `n` legs, as sets of leg indexes (by bit mask);
/// `None` for a shape the book does not offer.
fn lines(kind: BetKind, n: usize) -> Option<Vec<Vec<usize>>> {
    let sizes = match kind {
        BetKind::Single if n == 1 => 1..=1,
        BetKind::Accumulator if n >= 2 => n..=n,
        BetKind::KOfN { k } if k >= 1 && k as usize <= n => k as usize..=k as usize,
        BetKind::Trixie if n == 3 => 2..=3,
        BetKind::Patent if n == 3 => 1..=3,
        BetKind::Yankee if n == 4 => 2..=4,
        BetKind::Lucky15 if n == 4 => 1..=4,
        _ => return None,
    };
    if n > 16 {
        return None;
    }
    Some(
        (1u32..1 << n)
            .filter(|m| sizes.contains(&(m.count_ones() as usize)))
            .map(|m| (0..n).filter(|i| m & (1 << i) != 0).collect())
            .collect(),
    )
}

/// Cuts the winnings part of `price` by `pence` in the pound.
fn rule4(price: Q, pence: u32) -> Q {
    // winnings (n - d)/d keep (100 - p)/100 of themselves.
    Q::new(price.d * 100 + (price.n - price.d) * u128::from(100 - pence), price.d * 100)
}

/// The place price of each-way `terms` on `odds`: 1 + (odds − 1) × fraction.
fn place_price(odds: Odds, terms: EachWayTerms) -> Q {
    let o = Q::odds(odds);
    let (fnum, fden) = (u128::from(terms.fraction_num), u128::from(terms.fraction_den));
    Q::new(o.d * fden + (o.n - o.d) * fnum, o.d * fden)
}

/// Return per unit staked on a leg with `result` at effective price `price`.
fn factor(result: LegResult, price: Q) -> Option<Q> {
    Some(match result {
        LegResult::Win => price,
        LegResult::Lose => Q::int(0),
        LegResult::Void => Q::int(1),
        LegResult::DeadHeat { paid_places, tied } => price.mul(Q::new(u128::from(paid_places), u128::from(tied)))?,
        LegResult::HalfWin => Q::new(price.n + price.d, price.d * 2),
        LegResult::HalfLose => Q::new(1, 2),
    })
}

/// The place part's result for a selection's declared result under `terms`: as declared, or
/// following the win part — a winner places, runners dead-heating for first fill places
/// 1..=tied (in full if the terms pay that many places, else sharing the paid places).
fn place_result(r: &SelectionResult, terms: EachWayTerms) -> LegResult {
    if let Some(place) = r.place {
        return place;
    }
    match r.win {
        LegResult::Win => LegResult::Win,
        LegResult::Void => LegResult::Void,
        LegResult::DeadHeat { tied, .. } if tied <= terms.places => LegResult::Win,
        LegResult::DeadHeat { tied, .. } => LegResult::DeadHeat { paid_places: terms.places, tied },
        _ => LegResult::Lose,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MarketState {
    Open,
    Suspended,
    Closed,
    Settled,
    Resettled,
    Voided,
}

impl MarketState {
    fn resulted(self) -> bool {
        matches!(self, MarketState::Settled | MarketState::Resettled | MarketState::Voided)
    }
}

#[derive(Debug)]
struct Market {
    state: MarketState,
    rules: MarketRules,
    prices: BTreeMap<SelectionId, Odds>,
    withdrawn: BTreeSet<SelectionId>,
    /// Non-runners in order, with their deduction.
    withdrawals: Vec<(SelectionId, u32)>,
    suspensions: u32,
    results: BTreeMap<SelectionId, SelectionResult>,
    /// Accepted bets with a leg here, in acceptance order.
    bets: Vec<BetId>,
    /// Potential wins of open bets per selection.
    liability: BTreeMap<SelectionId, i128>,
    /// The ledger clock of its latest result (settlement, resettlement or void).
    resulted_at: u64,
    /// Moved out of the hot state by an `ArchiveSettled`.
    archived: bool,
}

#[derive(Clone, Copy, Debug)]
struct Leg {
    market: MarketId,
    selection: SelectionId,
    /// Accepted odds (the requested ones while pending).
    odds: Odds,
    requested: Odds,
    withdrawals_seen: usize,
    suspensions_seen: u32,
    terms: Option<EachWayTerms>,
}

/// Where a bet is, as the model sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BetState {
    /// Waiting for its in-play delay.
    Pending,
    /// Accepted, not settled.
    Open,
    /// Settled (possibly again after a resettlement).
    Settled,
    /// Cashed out.
    CashedOut,
    /// Refused when its delay ended.
    Refused,
}

/// A bet as the model sees it.
#[derive(Clone, Debug)]
pub(crate) struct Bet {
    account: AccountId,
    kind: BetKind,
    each_way: bool,
    policy: OddsPolicy,
    stake_per_line: i64,
    stake: i64,
    legs: Vec<Leg>,
    due_ms: u64,
    potential_win: i64,
    /// Where it is.
    pub(crate) state: BetState,
    /// Return paid by its current settlement, or its cash-out value.
    pub(crate) paid: i64,
    /// How many times the log's results settled it.
    pub(crate) settles: u32,
    /// Moved out of the hot state (with its markets) by an `ArchiveSettled`: the replicas
    /// hold it in their archive segments instead.
    pub(crate) archived: bool,
}

#[derive(Clone, Copy, Debug, Default)]
struct Wallet {
    /// Wallet plus debt.
    net: i128,
    reserved: i128,
}

/// An account's money as the model computes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Holdings {
    /// Available.
    pub(crate) wallet: i64,
    /// Stakes held.
    pub(crate) reserved: i64,
    /// Owed (zero or negative).
    pub(crate) debt: i64,
}

/// The model. Advance it along the log with [`Model::advance`].
pub(crate) struct Model {
    clock_ms: u64,
    config: BookConfig,
    accounts: BTreeMap<AccountId, Wallet>,
    markets: BTreeMap<MarketId, Market>,
    bets: BTreeMap<BetId, Bet>,
    pending: VecDeque<BetId>,
    keys: BTreeMap<(KeyScope, String), Command>,
    /// Entries up to this index are applied.
    pub(crate) upto: u64,
    /// Paths the log went down (delayed bets decided, kinds of settlement).
    pub(crate) paths: Paths,
}

impl Model {
    pub(crate) fn new() -> Model {
        Model {
            clock_ms: 0,
            config: BookConfig::default(),
            accounts: BTreeMap::new(),
            markets: BTreeMap::new(),
            bets: BTreeMap::new(),
            pending: VecDeque::new(),
            keys: BTreeMap::new(),
            upto: 0,
            paths: Paths::new(),
        }
    }

    /// Every account's money.
    pub(crate) fn accounts(&self) -> impl Iterator<Item = (AccountId, Holdings)> + '_ {
        self.accounts.iter().map(|(id, w)| {
            let wallet = w.net.max(0) as i64;
            (*id, Holdings { wallet, reserved: w.reserved as i64, debt: w.net.min(0) as i64 })
        })
    }

    /// Every bet.
    pub(crate) fn bets(&self) -> impl Iterator<Item = (BetId, &Bet)> + '_ {
        self.bets.iter().map(|(id, b)| (*id, b))
    }

    /// Applies every recorded entry after [`Model::upto`] and up to `target`; returns what it
    /// found wrong, each message naming the log index.
    pub(crate) fn advance(&mut self, log: &Committed, target: u64) -> Vec<String> {
        let mut problems = Vec::new();
        if target <= self.upto {
            return problems;
        }
        for (index, entry) in log.entries.range(self.upto + 1..=target) {
            if let Err(p) = self.apply(entry) {
                problems.push(format!("log index {index}: {p}"));
            }
        }
        self.upto = target;
        problems
    }

    fn apply(&mut self, entry: &Entry) -> Result<(), String> {
        let time = entry.time.0;
        let step = self.config.clock_step_max_ms;
        let now = if self.clock_ms != 0 && time > self.clock_ms.saturating_add(step) {
            match entry.command {
                Command::ResolvePending => self.clock_ms + step,
                // The ledger refuses it (clock_step_too_large); a refusal changes nothing.
                _ => self.clock_ms,
            }
        } else {
            self.clock_ms.max(time)
        };
        let Outcome::Done(done) = &entry.outcome else { return Ok(()) };
        if let Some((scope, key)) = entry.command.idempotency() {
            match self.keys.get(&(scope, key.0.clone())) {
                // A replay answered from the key's record: nothing happens.
                Some(first) if *first == entry.command => return Ok(()),
                Some(_) => return Err(format!("key {key:?} reused with another body took effect")),
                None => {
                    self.keys.insert((scope, key.0.clone()), entry.command.clone());
                }
            }
        }
        self.clock_ms = now;
        self.command(&entry.command, done, now)
    }

    fn command(&mut self, command: &Command, done: &Done, now: u64) -> Result<(), String> {
        match (command, done) {
            (Command::OpenAccount { account, .. }, Done::AccountOpened { .. }) => {
                if self.accounts.insert(*account, Wallet::default()).is_some() {
                    return Err(format!("account {account} opened twice"));
                }
                Ok(())
            }
            (Command::Deposit { account, amount, .. }, Done::Transferred { balance, .. }) => {
                self.wallet(*account)?.net += i128::from(amount.0);
                self.check_balance(*account, balance.0)
            }
            (Command::Withdraw { account, amount, .. }, Done::Transferred { balance, .. }) => {
                let w = self.wallet(*account)?;
                if w.net < i128::from(amount.0) {
                    return Err(format!("withdrawal of {amount} from account {account} holding {}", w.net.max(0)));
                }
                w.net -= i128::from(amount.0);
                self.check_balance(*account, balance.0)
            }
            (Command::PlaceBet(p), Done::BetAccepted { bet, odds, stake, balance }) => {
                self.place(p, *bet, Some(odds), stake.0, now)?;
                self.check_balance(p.account, balance.0)
            }
            (Command::PlaceBet(p), Done::BetPending { bet, stake, balance }) => {
                self.place(p, *bet, None, stake.0, now)?;
                self.check_balance(p.account, balance.0)
            }
            (Command::ResolvePending, Done::Resolved { accepted, rejected }) => self.resolve(now, *accepted, *rejected),
            (Command::CashOut { account, bet, value, .. }, Done::CashOut { pending: false, balance, .. }) => {
                self.cash_out(*account, *bet, value.0)?;
                self.check_balance(*account, balance.0)
            }
            (Command::CreateEvent { .. }, Done::Ok) => Ok(()),
            (Command::CreateMarket { market, selections, rules, .. }, Done::Ok) => {
                let m = Market {
                    state: MarketState::Open,
                    rules: rules.clone(),
                    prices: selections.iter().map(|s| (s.selection, s.odds)).collect(),
                    withdrawn: BTreeSet::new(),
                    withdrawals: Vec::new(),
                    suspensions: 0,
                    results: BTreeMap::new(),
                    bets: Vec::new(),
                    liability: BTreeMap::new(),
                    resulted_at: 0,
                    archived: false,
                };
                if self.markets.insert(*market, m).is_some() {
                    return Err(format!("market {market} created twice"));
                }
                Ok(())
            }
            (Command::SetPrice { market, selection, odds, .. }, Done::Ok) => {
                self.market(*market)?.prices.insert(*selection, *odds);
                Ok(())
            }
            (Command::SuspendMarket { market, .. }, Done::Ok) => {
                let m = self.market(*market)?;
                m.state = MarketState::Suspended;
                m.suspensions += 1;
                Ok(())
            }
            (Command::ResumeMarket { market, .. }, Done::Ok) => {
                self.market(*market)?.state = MarketState::Open;
                Ok(())
            }
            (Command::CloseMarket { market, .. }, Done::Ok) => {
                self.market(*market)?.state = MarketState::Closed;
                Ok(())
            }
            (Command::WithdrawSelection { market, selection, deduction_pence, .. }, Done::Ok) => {
                let m = self.market(*market)?;
                m.withdrawn.insert(*selection);
                m.withdrawals.push((*selection, *deduction_pence));
                Ok(())
            }
            (Command::SettleMarket { market, results, .. }, Done::Settled { bets_settled, .. }) => {
                self.result(*market, MarketState::Settled, results, *bets_settled, now)
            }
            (Command::ResettleMarket { market, results, .. }, Done::Settled { bets_settled, .. }) => {
                self.paths.insert(Path::Resettlement);
                self.result(*market, MarketState::Resettled, results, *bets_settled, now)
            }
            (Command::VoidMarket { market, .. }, Done::Settled { bets_settled, .. }) => {
                if self.market(*market)?.state.resulted() {
                    self.paths.insert(Path::Resettlement);
                }
                self.result(*market, MarketState::Voided, &[], *bets_settled, now)
            }
            (Command::SetConfig { config, .. }, Done::Ok) => {
                self.config = config.clone();
                Ok(())
            }
            (Command::ArchiveSettled { before, markets_max, .. }, Done::Ok) => {
                self.archive(before.0, *markets_max);
                Ok(())
            }
            (other, done) => Err(format!("the model cannot follow {other:?} answered {done:?}")),
        }
    }

    /// `ArchiveSettled`, by the rule written out again: markets resulted before `before`, not
    /// named by a bet waiting for its delay, taken `markets_max` at a time in id order until
    /// some of them may leave together — every bet on them final, every leg of each on a
    /// market leaving too — then at most `markets_max` of those, closed again.
    fn archive(&mut self, before: u64, markets_max: u32) {
        let waiting: BTreeSet<MarketId> =
            self.pending.iter().flat_map(|b| self.bets[b].legs.iter().map(|l| l.market)).collect();
        let eligible: Vec<MarketId> = self
            .markets
            .iter()
            .filter(|(id, m)| !m.archived && m.state.resulted() && m.resulted_at < before && !waiting.contains(id))
            .map(|(id, _)| *id)
            .collect();
        let close = |set: &mut BTreeSet<MarketId>| loop {
            let blocked: Vec<MarketId> = set
                .iter()
                .copied()
                .filter(|m| {
                    self.markets[m].bets.iter().any(|b| {
                        let bet = &self.bets[b];
                        matches!(bet.state, BetState::Pending | BetState::Open)
                            || bet.legs.iter().any(|l| !set.contains(&l.market))
                    })
                })
                .collect();
            if blocked.is_empty() {
                return;
            }
            for m in blocked {
                set.remove(&m);
            }
        };
        let step = (markets_max as usize).max(1);
        let mut candidates = BTreeSet::new();
        let mut chosen = BTreeSet::new();
        for batch in eligible.chunks(step) {
            candidates.extend(batch.iter().copied());
            let mut closed = candidates.clone();
            close(&mut closed);
            if !closed.is_empty() {
                let mut share: BTreeSet<MarketId> = closed.iter().copied().take(step).collect();
                close(&mut share);
                chosen = if share.is_empty() { closed } else { share };
                break;
            }
        }
        if !chosen.is_empty() {
            self.paths.insert(Path::HistoryArchived);
        }
        for m in chosen {
            let market = self.markets.get_mut(&m).expect("chosen from the markets");
            market.archived = true;
            for b in market.bets.clone() {
                self.bets.get_mut(&b).expect("a market's bet exists").archived = true;
            }
        }
    }

    fn wallet(&mut self, account: AccountId) -> Result<&mut Wallet, String> {
        self.accounts.get_mut(&account).ok_or_else(|| format!("account {account} was never opened"))
    }

    fn market(&mut self, market: MarketId) -> Result<&mut Market, String> {
        self.markets.get_mut(&market).ok_or_else(|| format!("market {market} was never created"))
    }

    /// The ledger answered `balance` as the wallet after this entry.
    fn check_balance(&self, account: AccountId, balance: i64) -> Result<(), String> {
        let expected = self.accounts.get(&account).map_or(0, |w| w.net.max(0));
        if i128::from(balance) != expected {
            return Err(format!(
                "account {account}: the ledger answered balance {balance}, the model holds {expected}"
            ));
        }
        Ok(())
    }

    /// Books a placement: accepted (`odds` given) or pending for its in-play delay.
    fn place(
        &mut self,
        p: &PlaceBet,
        bet: BetId,
        odds: Option<&Vec<Odds>>,
        stake: i64,
        now: u64,
    ) -> Result<(), String> {
        let line_count = lines(p.kind, p.legs.len()).ok_or("a bet of a shape the book does not offer")?.len() as i64
            * if p.each_way { 2 } else { 1 };
        if p.stake_per_line.0 * line_count != stake {
            return Err(format!("bet {bet}: stake {stake} for {line_count} lines of {}", p.stake_per_line));
        }
        let wallet = self.wallet(p.account)?;
        if wallet.net < i128::from(stake) {
            return Err(format!(
                "bet {bet} accepted for {stake} from account {} holding {}",
                p.account,
                wallet.net.max(0)
            ));
        }
        wallet.net -= i128::from(stake);
        wallet.reserved += i128::from(stake);
        let mut legs = Vec::with_capacity(p.legs.len());
        let mut delay_ms = 0;
        for (i, req) in p.legs.iter().enumerate() {
            let m =
                self.markets.get(&req.market).ok_or_else(|| format!("bet {bet} on unknown market {}", req.market))?;
            let price = *m.prices.get(&req.selection).ok_or_else(|| format!("bet {bet} on unknown selection"))?;
            delay_ms = delay_ms.max(m.rules.bet_delay_ms);
            let accepted = match odds {
                Some(odds) => {
                    let o = *odds.get(i).ok_or_else(|| format!("bet {bet}: fewer accepted odds than legs"))?;
                    if o != price {
                        return Err(format!(
                            "bet {bet} accepted at {o} on selection {}, priced {price}",
                            req.selection
                        ));
                    }
                    o
                }
                None => req.odds,
            };
            legs.push(Leg {
                market: req.market,
                selection: req.selection,
                odds: accepted,
                requested: req.odds,
                withdrawals_seen: m.withdrawals.len(),
                suspensions_seen: m.suspensions,
                terms: if p.each_way { m.rules.each_way } else { None },
            });
        }
        let mut b = Bet {
            account: p.account,
            kind: p.kind,
            each_way: p.each_way,
            policy: p.odds_policy,
            stake_per_line: p.stake_per_line.0,
            stake,
            legs,
            due_ms: now + delay_ms,
            potential_win: 0,
            state: BetState::Pending,
            paid: 0,
            settles: 0,
            archived: false,
        };
        match (odds.is_some(), delay_ms > 0) {
            (true, false) => {
                b.potential_win = self.best_return(&b)? - stake;
                b.state = BetState::Open;
                self.book_open(bet, &b);
            }
            (false, true) => self.pending.push_back(bet),
            (true, true) => return Err(format!("bet {bet} accepted at once on a market with an in-play delay")),
            (false, false) => return Err(format!("bet {bet} held for a delay on markets without one")),
        }
        if self.bets.insert(bet, b).is_some() {
            return Err(format!("bet id {bet} given twice"));
        }
        Ok(())
    }

    /// An accepted bet enters its markets' books and liabilities.
    fn book_open(&mut self, id: BetId, bet: &Bet) {
        let mut markets: Vec<MarketId> = Vec::new();
        for leg in &bet.legs {
            let m = self.markets.get_mut(&leg.market).expect("checked at placement");
            *m.liability.entry(leg.selection).or_default() += i128::from(bet.potential_win);
            if !markets.contains(&leg.market) {
                markets.push(leg.market);
                m.bets.push(id);
            }
        }
    }

    fn release_liability(&mut self, id: BetId, sign: i128) {
        let bet = &self.bets[&id];
        let pw = i128::from(bet.potential_win) * sign;
        for leg in bet.legs.clone() {
            *self.markets.get_mut(&leg.market).expect("leg market").liability.entry(leg.selection).or_default() -= pw;
        }
    }

    /// The return if every leg wins and places: what the book stands to pay at most.
    fn best_return(&self, bet: &Bet) -> Result<i64, String> {
        let overflow = || "best-case return overflows the model".to_string();
        let combos = lines(bet.kind, bet.legs.len()).ok_or("bet shape")?;
        let mut total = Q::int(0);
        let place = bet.legs.iter().any(|l| l.terms.is_some());
        for combo in &combos {
            let mut win = Q::int(bet.stake_per_line as u128);
            let mut plc = win;
            for &i in combo {
                let leg = &bet.legs[i];
                win = win.mul(Q::odds(leg.odds)).ok_or_else(overflow)?;
                if place {
                    let terms = leg.terms.ok_or("each-way bet with a leg without place terms")?;
                    plc = plc.mul(place_price(leg.odds, terms)).ok_or_else(overflow)?;
                }
            }
            total = total.add(win).ok_or_else(overflow)?;
            if place {
                total = total.add(plc).ok_or_else(overflow)?;
            }
        }
        Ok(total.round(self.config.rounding))
    }

    /// Decides every pending bet due by `now`; the counts must match the ledger's answer.
    fn resolve(&mut self, now: u64, accepted: u32, rejected: u32) -> Result<(), String> {
        let (mut yes, mut no) = (0u32, 0u32);
        let mut keep = VecDeque::new();
        for id in std::mem::take(&mut self.pending) {
            if self.bets[&id].due_ms > now {
                keep.push_back(id);
                continue;
            }
            match self.judge(&self.bets[&id], now)? {
                Some(odds) => {
                    let counts: Vec<(usize, u32)> = {
                        let bet = &self.bets[&id];
                        bet.legs
                            .iter()
                            .map(|l| (self.markets[&l.market].withdrawals.len(), self.markets[&l.market].suspensions))
                            .collect()
                    };
                    let mut bet = self.bets.remove(&id).expect("pending bet");
                    for (leg, (o, (w, s))) in bet.legs.iter_mut().zip(odds.into_iter().zip(counts)) {
                        leg.odds = o;
                        leg.withdrawals_seen = w;
                        leg.suspensions_seen = s;
                    }
                    bet.potential_win = self.best_return(&bet)? - bet.stake;
                    bet.state = BetState::Open;
                    self.book_open(id, &bet);
                    self.bets.insert(id, bet);
                    self.paths.insert(Path::DelayedBetAccepted);
                    yes += 1;
                }
                None => {
                    let bet = self.bets.get_mut(&id).expect("pending bet");
                    bet.state = BetState::Refused;
                    let (account, stake) = (bet.account, i128::from(bet.stake));
                    let w = self.wallet(account)?;
                    w.reserved -= stake;
                    w.net += stake;
                    self.paths.insert(Path::DelayedBetRefused);
                    no += 1;
                }
            }
        }
        self.pending = keep;
        if (yes, no) != (accepted, rejected) {
            return Err(format!(
                "ResolvePending: the model accepts {yes} and refuses {no} delayed bets, the ledger {accepted} and {rejected}"
            ));
        }
        Ok(())
    }

    /// A delayed bet judged at `now` on the book as it stands: the odds it is struck at, or
    /// `None` if refused.
    fn judge(&self, bet: &Bet, now: u64) -> Result<Option<Vec<Odds>>, String> {
        let mut odds = Vec::with_capacity(bet.legs.len());
        let (mut stake_min, mut stake_max, mut payout_max) = (0i64, i64::MAX, i64::MAX);
        for leg in &bet.legs {
            let m = &self.markets[&leg.market];
            // A suspension during the delay refuses it, even if the market reopened.
            if m.suspensions != leg.suspensions_seen
                || m.state != MarketState::Open
                || m.rules.closes_at.is_some_and(|t| now >= t.0)
                || m.withdrawn.contains(&leg.selection)
                || (bet.each_way && m.rules.each_way.is_none())
            {
                return Ok(None);
            }
            let price = m.prices[&leg.selection];
            let refused = match bet.policy {
                OddsPolicy::Exact => price != leg.requested,
                OddsPolicy::Higher => Q::odds(price).less_than(Q::odds(leg.requested)),
                _ => false,
            };
            if refused {
                return Ok(None);
            }
            odds.push(price);
            stake_min = stake_min.max(m.rules.stake_min.0);
            stake_max = stake_max.min(m.rules.stake_max.0);
            payout_max = payout_max.min(m.rules.payout_max.0);
        }
        if bet.stake < stake_min || bet.stake > stake_max {
            return Ok(None);
        }
        let mut struck = bet.clone();
        for (leg, o) in struck.legs.iter_mut().zip(&odds) {
            leg.odds = *o;
        }
        let best = self.best_return(&struck)?;
        if best > payout_max {
            return Ok(None);
        }
        let potential_win = i128::from(best - bet.stake);
        for leg in &bet.legs {
            let m = &self.markets[&leg.market];
            if m.liability.get(&leg.selection).copied().unwrap_or(0) + potential_win
                > i128::from(m.rules.liability_max.0)
            {
                return Ok(None);
            }
        }
        Ok(Some(odds))
    }

    fn cash_out(&mut self, account: AccountId, id: BetId, value: i64) -> Result<(), String> {
        let bet = self.bets.get(&id).ok_or_else(|| format!("cash-out of unknown bet {id}"))?;
        if bet.account != account || bet.state != BetState::Open {
            return Err(format!("bet {id} cashed out in state {:?} by account {account}", bet.state));
        }
        self.release_liability(id, 1);
        let bet = self.bets.get_mut(&id).expect("bet");
        bet.state = BetState::CashedOut;
        bet.paid = value;
        let stake = i128::from(bet.stake);
        let w = self.wallet(account)?;
        w.reserved -= stake;
        w.net += i128::from(value);
        self.paths.insert(Path::CashOut);
        Ok(())
    }

    /// New results (or a void) for a market: reverse what it paid, settle what is complete.
    fn result(
        &mut self,
        market: MarketId,
        state: MarketState,
        results: &[SelectionResult],
        bets_settled: u32,
        now: u64,
    ) -> Result<(), String> {
        if self.market(market)?.archived {
            return Err(format!("market {market} was archived, yet results were applied to it"));
        }
        self.market(market)?.resulted_at = now;
        let bets = self.market(market)?.bets.clone();
        let mut reversed = BTreeSet::new();
        for id in &bets {
            if self.bets[id].state == BetState::Settled {
                self.reverse(*id)?;
                reversed.insert(*id);
            }
        }
        let m = self.market(market)?;
        m.state = state;
        m.results = results.iter().map(|r| (r.selection, *r)).collect();
        let mut changed = reversed.len() as u32;
        for id in &bets {
            if self.bets[id].state != BetState::Open {
                continue;
            }
            if let Some(paid) = self.bet_return(*id)? {
                self.settle(*id, paid)?;
                if !reversed.contains(id) {
                    changed += 1;
                }
            }
        }
        if changed != bets_settled {
            return Err(format!(
                "market {market}: the model settles {changed} bets, the ledger answered {bets_settled}"
            ));
        }
        Ok(())
    }

    fn reverse(&mut self, id: BetId) -> Result<(), String> {
        self.release_liability(id, -1);
        let bet = self.bets.get_mut(&id).expect("bet");
        bet.state = BetState::Open;
        let (account, stake, paid) = (bet.account, i128::from(bet.stake), i128::from(std::mem::take(&mut bet.paid)));
        let w = self.wallet(account)?;
        w.net -= paid;
        w.reserved += stake;
        Ok(())
    }

    fn settle(&mut self, id: BetId, paid: i64) -> Result<(), String> {
        self.release_liability(id, 1);
        let bet = self.bets.get_mut(&id).expect("bet");
        bet.state = BetState::Settled;
        bet.paid = paid;
        bet.settles += 1;
        let (account, stake, each_way) = (bet.account, i128::from(bet.stake), bet.each_way);
        let w = self.wallet(account)?;
        w.reserved -= stake;
        w.net += i128::from(paid);
        if each_way {
            self.paths.insert(Path::EachWay);
        }
        Ok(())
    }

    /// What the bet returns if every leg's market has results, else `None`.
    fn bet_return(&mut self, id: BetId) -> Result<Option<i64>, String> {
        let overflow = || format!("the return of bet {id} overflows the model");
        let bet = &self.bets[&id];
        let mut win = Vec::with_capacity(bet.legs.len());
        let mut place = Vec::with_capacity(bet.legs.len());
        let (mut rule4_used, mut dead_heat) = (false, false);
        for leg in &bet.legs {
            let m = &self.markets[&leg.market];
            if !m.state.resulted() {
                return Ok(None);
            }
            let (w, p) = if m.state == MarketState::Voided || m.withdrawn.contains(&leg.selection) {
                (LegResult::Void, LegResult::Void)
            } else {
                match m.results.get(&leg.selection) {
                    Some(r) => (r.win, leg.terms.map_or(r.win, |t| place_result(r, t))),
                    None => (LegResult::Lose, LegResult::Lose),
                }
            };
            let later = m.withdrawals.get(leg.withdrawals_seen..).unwrap_or(&[]);
            let pence =
                later.iter().filter(|(s, _)| *s != leg.selection).map(|(_, p)| *p).sum::<u32>().min(RULE4_CAP_PENCE);
            rule4_used |= pence > 0 && w != LegResult::Void;
            dead_heat |= matches!(w, LegResult::DeadHeat { .. }) || matches!(p, LegResult::DeadHeat { .. });
            win.push(factor(w, rule4(Q::odds(leg.odds), pence)).ok_or_else(overflow)?);
            if let Some(terms) = leg.terms {
                place.push(factor(p, rule4(place_price(leg.odds, terms), pence)).ok_or_else(overflow)?);
            }
        }
        let combos = lines(bet.kind, bet.legs.len()).ok_or("bet shape")?;
        let unit = Q::int(bet.stake_per_line as u128);
        let mut total = Q::int(0);
        for combo in &combos {
            let mut line = unit;
            for &i in combo {
                line = line.mul(win[i]).ok_or_else(overflow)?;
            }
            total = total.add(line).ok_or_else(overflow)?;
            if bet.each_way {
                let mut line = unit;
                for &i in combo {
                    line = line.mul(*place.get(i).ok_or("each-way leg without place terms")?).ok_or_else(overflow)?;
                }
                total = total.add(line).ok_or_else(overflow)?;
            }
        }
        if rule4_used {
            self.paths.insert(Path::Rule4);
        }
        if dead_heat {
            self.paths.insert(Path::DeadHeat);
        }
        Ok(Some(total.round(self.config.rounding)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_of_each_shape() {
        assert_eq!(lines(BetKind::Single, 1).unwrap().len(), 1);
        assert_eq!(lines(BetKind::Trixie, 3).unwrap().len(), 4);
        assert_eq!(lines(BetKind::Patent, 3).unwrap().len(), 7);
        assert_eq!(lines(BetKind::Yankee, 4).unwrap().len(), 11);
        assert_eq!(lines(BetKind::Lucky15, 4).unwrap().len(), 15);
        assert_eq!(lines(BetKind::KOfN { k: 2 }, 4).unwrap().len(), 6);
        assert!(lines(BetKind::Trixie, 4).is_none());
    }

    #[test]
    fn rule4_and_place_prices_match_the_worked_examples() {
        // 3/1 (decimal 4) with a 25p deduction: winnings 3 become 2.25, decimal 3.25.
        let odds = Odds::parse("3/1").unwrap();
        assert_eq!(rule4(Q::odds(odds), 25), Q::new(13, 4));
        // Each-way 1/4 the odds at 3/1: place winnings 0.75, decimal 1.75.
        let terms = EachWayTerms { fraction_num: 1, fraction_den: 4, places: 2 };
        assert_eq!(place_price(odds, terms), Q::new(7, 4));
        // 1000 at 7/4 (decimal 2.75), rounded down.
        assert_eq!(Q::int(1000).mul(Q::odds(Odds::parse("7/4").unwrap())).unwrap().round(RoundingRule::Down), 2750);
        assert_eq!(Q::new(9, 2).round(RoundingRule::Down), 4);
        assert_eq!(Q::new(9, 2).round(RoundingRule::HalfUp), 5);
    }
}
