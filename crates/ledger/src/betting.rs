//! Bet placement, in-play delays, cash-out and prices.
//!
//! Acceptance is one step inside one `apply`: the market state, the price, the limits and the
//! funds are checked and the stake is taken together, so no bet can slip in after a suspension
//! or a close (past-posting) or skip the funds check (the Betfair 2011 incident).

use crate::apply::{check_limits, check_not_excluded, Book, Handled};
use crate::code::ResultCode;
use crate::command::{BetKind, LegRequest, LimitKind, OddsPolicy, PlaceBet};
use crate::ids::{AccountId, BetId, MarketId, SelectionId, TimestampMs};
use crate::money::{line_sum_rounded, Money, Odds, Ratio, RoundingRule};
use crate::outcome::Done;
use crate::settlement::place_odds;
use crate::state::{Bet, BetStatus, Leg, MarketStatus, PendingItem, State};

/// Most legs in one bet (accumulators; system bets are bounded by lines as well).
pub const LEGS_MAX: usize = 20;
/// Most lines one bet may strike (before each-way doubling).
pub const LINES_MAX: usize = 1024;

/// The lines of a bet of `kind` over `n` legs: each line is a set of leg indexes.
pub(crate) fn line_combos(kind: BetKind, n: usize) -> Result<Vec<Vec<usize>>, ResultCode> {
    let sizes: std::ops::RangeInclusive<usize> = match kind {
        BetKind::Single if n == 1 => 1..=1,
        BetKind::Accumulator if n >= 2 => n..=n,
        BetKind::KOfN { k } if k >= 1 && (k as usize) <= n => k as usize..=k as usize,
        BetKind::Trixie if n == 3 => 2..=3,
        BetKind::Patent if n == 3 => 1..=3,
        BetKind::Yankee if n == 4 => 2..=4,
        BetKind::Lucky15 if n == 4 => 1..=4,
        _ => return Err(ResultCode::BetTypeInvalid),
    };
    let lines: usize = sizes.clone().map(|k| binomial(n, k)).sum();
    if lines > LINES_MAX {
        return Err(ResultCode::BetTypeInvalid);
    }
    let mut out = Vec::with_capacity(lines);
    for k in sizes {
        let mut idx: Vec<usize> = (0..k).collect();
        loop {
            out.push(idx.clone());
            // Advance to the next k-combination in lexicographic order.
            let Some(i) = (0..k).rev().find(|&i| idx[i] != i + n - k) else { break };
            idx[i] += 1;
            for j in i + 1..k {
                idx[j] = idx[j - 1] + 1;
            }
        }
    }
    Ok(out)
}

fn binomial(n: usize, k: usize) -> usize {
    (0..k).fold(1usize, |acc, i| acc.saturating_mul(n - i) / (i + 1))
}

/// A bet that passed every acceptance check, ready to be booked.
struct Evaluated {
    legs: Vec<Leg>,
    lines: u32,
    stake: Money,
    potential_win: Money,
}

/// Checks a bet against the book as it stands at `now`. With `booking` false it only runs the
/// checks that can be made before an in-play delay (structure, markets open, funds); with
/// `booking` true it runs all of them on current prices.
fn evaluate(
    state: &State,
    p: &PlaceBet,
    now: TimestampMs,
    booking: bool,
    funds_held: bool,
) -> Result<Evaluated, ResultCode> {
    let acc = state.accounts.get(&p.account).ok_or(ResultCode::AccountNotFound)?;
    check_not_excluded(acc, now)?;
    if p.legs.is_empty() {
        return Err(ResultCode::LegsEmpty);
    }
    if p.legs.len() > LEGS_MAX {
        return Err(ResultCode::TooManyLegs);
    }
    if p.stake_per_line.0 <= 0 {
        return Err(ResultCode::AmountMustBePositive);
    }
    // A single's one line is its one leg: no table of combinations to build for it.
    let combos = match (p.kind, p.legs.len()) {
        (BetKind::Single, 1) => None,
        (kind, n) => Some(line_combos(kind, n)?),
    };
    let parts: i64 = if p.each_way { 2 } else { 1 };
    let line_count = combos.as_ref().map_or(1, Vec::len) as i64 * parts;
    let stake = p.stake_per_line.checked_mul(line_count).ok_or(ResultCode::AmountOverflow)?;

    let mut legs = Vec::with_capacity(p.legs.len());
    // Each leg's selection liability and its market's cap, kept from the lookups below for the
    // liability check at the end (which needs the bet's potential win, known only then).
    let mut liabilities = [(Money::ZERO, Money::ZERO); LEGS_MAX];
    let mut stake_min = Money::ZERO;
    let mut stake_max = Money(i64::MAX);
    let mut payout_max = Money(i64::MAX);
    for (i, req) in p.legs.iter().enumerate() {
        if !req.odds.is_valid() {
            return Err(ResultCode::OddsInvalid);
        }
        let market = state.markets.get(&req.market).ok_or(ResultCode::MarketNotFound)?;
        let sel = market.selections.get(&req.selection).ok_or(ResultCode::SelectionNotFound)?;
        if market.currency != acc.currency {
            return Err(ResultCode::CurrencyMismatch);
        }
        if p.legs[..i].iter().any(|other| state.markets.get(&other.market).map(|m| m.event) == Some(market.event)) {
            return Err(ResultCode::LegsSameEvent);
        }
        if p.each_way && market.rules.each_way.is_none() {
            return Err(ResultCode::EachWayNotOffered);
        }
        match market.status {
            MarketStatus::Open => {}
            MarketStatus::Closed | MarketStatus::Settled | MarketStatus::Resettled
                if crate::faults::accept_bets_after_close() => {}
            MarketStatus::Suspended => return Err(ResultCode::MarketSuspended),
            MarketStatus::Closed => return Err(ResultCode::MarketClosed),
            MarketStatus::Voided => return Err(ResultCode::MarketVoided),
            MarketStatus::Settled | MarketStatus::Resettled => return Err(ResultCode::MarketNotOpen),
        }
        if market.rules.closes_at.is_some_and(|t| now >= t) {
            return Err(ResultCode::MarketClosed);
        }
        if sel.withdrawn {
            return Err(ResultCode::SelectionWithdrawn);
        }
        let accepted = match p.odds_policy {
            OddsPolicy::Exact if sel.odds != req.odds => return Err(ResultCode::OddsChanged),
            OddsPolicy::Higher if sel.odds.ratio_lt(&req.odds) => return Err(ResultCode::OddsChanged),
            _ => sel.odds,
        };
        stake_min = stake_min.max(market.rules.stake_min);
        let factor = i128::from(acc.stake_factor_permille);
        let scaled = (i128::from(market.rules.stake_max.0) * factor / 1000).min(i128::from(i64::MAX));
        stake_max = stake_max.min(Money(scaled as i64));
        payout_max = payout_max.min(market.rules.payout_max);
        liabilities[i] = (sel.liability, market.rules.liability_max);
        legs.push(Leg {
            market: req.market,
            event: market.event,
            selection: req.selection,
            odds: accepted,
            price_version: sel.price_version,
            each_way: if p.each_way { market.rules.each_way } else { None },
            withdrawals_seen: market.withdrawals.len() as u32,
            suspensions_seen: market.suspensions,
            odds_requested: req.odds,
        });
    }
    if !funds_held && acc.wallet < stake && !crate::faults::skip_funds_check() {
        return Err(ResultCode::InsufficientFunds);
    }
    if !booking {
        return Ok(Evaluated { legs, lines: line_count as u32, stake, potential_win: Money::ZERO });
    }
    if stake < stake_min {
        return Err(ResultCode::StakeBelowMinimum);
    }
    if stake > stake_max {
        return Err(ResultCode::StakeAboveMaximum);
    }
    // The rounding settlement will use: checking with round-down let a half-up book pay one
    // unit over the maximum payout and under-count the liability by as much.
    let potential_return = best_case_return(&legs, combos.as_deref(), p.stake_per_line, state.config.rounding)
        .ok_or(ResultCode::MaxPayoutExceeded)?;
    if potential_return > payout_max {
        return Err(ResultCode::MaxPayoutExceeded);
    }
    let potential_win = Money(potential_return.0 - stake.0);
    for &(liability, liability_max) in &liabilities[..legs.len()] {
        let after = liability.checked_add(potential_win).ok_or(ResultCode::AmountOverflow)?;
        if after > liability_max {
            return Err(ResultCode::LiabilityLimitExceeded);
        }
    }
    check_limits(acc, LimitKind::Loss, stake, now)?;
    Ok(Evaluated { legs, lines: line_count as u32, stake, potential_win })
}

impl Odds {
    /// `self < other` as numbers.
    pub(crate) fn ratio_lt(&self, other: &Odds) -> bool {
        u64::from(self.numerator()) * u64::from(other.denominator())
            < u64::from(other.numerator()) * u64::from(self.denominator())
    }
}

/// The return if every leg wins (and places): what the book stands to pay at most.
/// `combos` is `None` for a single, whose lines are its win line and, each way, its place line.
fn best_case_return(legs: &[Leg], combos: Option<&[Vec<usize>]>, unit: Money, rule: RoundingRule) -> Option<Money> {
    let Some(combos) = combos else {
        let leg = &legs[0];
        let win = [leg.odds.ratio()];
        let rounded = match leg.each_way {
            Some(_) => line_sum_rounded(unit.0, &[win, [place_odds(leg, 0)]], rule),
            None => line_sum_rounded(unit.0, &[win], rule),
        };
        return rounded.map(|r| Money(r.paid_minor));
    };
    let mut lines: Vec<Vec<Ratio>> = combos.iter().map(|c| c.iter().map(|&i| legs[i].odds.ratio()).collect()).collect();
    if legs.iter().any(|l| l.each_way.is_some()) {
        for c in combos {
            lines.push(c.iter().map(|&i| place_odds(&legs[i], 0)).collect());
        }
    }
    line_sum_rounded(unit.0, &lines, rule).map(|r| Money(r.paid_minor))
}

/// The next bet id, taken.
fn take_bet_id(state: &mut State) -> BetId {
    let id = BetId(state.bet_id_next);
    state.bet_id_next += 1;
    id
}

fn next_bet_id(state: &mut State, account: AccountId) -> BetId {
    let id = take_bet_id(state);
    state.accounts.get_mut(&account).expect("evaluated account exists").index_bet(id);
    id
}

/// Places a bet: accepted now, or pending for the longest in-play delay among its markets.
pub(crate) fn place_bet(state: &mut State, p: &PlaceBet, now: TimestampMs) -> Handled {
    let delay_ms =
        p.legs.iter().filter_map(|l| state.markets.get(&l.market)).map(|m| m.rules.bet_delay_ms).max().unwrap_or(0);
    if delay_ms > 0 {
        let ev = evaluate(state, p, now, false, false)?;
        let bet = next_bet_id(state, p.account);
        state.post(Book::Wallet(p.account), Book::Reserved(p.account), ev.stake);
        state.bets.insert(
            bet,
            Bet {
                account: p.account,
                kind: p.kind,
                each_way: p.each_way,
                odds_policy: p.odds_policy,
                legs: ev.legs,
                stake_per_line: p.stake_per_line,
                lines: ev.lines,
                stake: ev.stake,
                potential_win: Money::ZERO,
                placed_at: now,
                status: BetStatus::Pending,
                paid: Money::ZERO,
                settle_count: 0,
                reverse_count: 0,
            },
        );
        state.pending.push_back(PendingItem::Bet { bet, due: now.plus_ms(delay_ms) });
        let balance = state.accounts[&p.account].wallet;
        return Ok(Done::BetPending { bet, stake: ev.stake, balance });
    }
    let ev = evaluate(state, p, now, true, false)?;
    let bet = take_bet_id(state);
    // The hot path: the account is looked up once for the bet's index, the stake, the loss
    // activity and the balance, where four postings and lookups of `State` each found it again.
    let acc = state.accounts.get_mut(&p.account).expect("evaluated account exists");
    acc.index_bet(bet);
    acc.reserve(ev.stake);
    acc.record_activity(now, Money::ZERO, ev.stake);
    let balance = acc.wallet;
    let odds = ev.legs.iter().map(|l| l.odds).collect();
    let stake = ev.stake;
    book_legs(state, bet, p, ev, now);
    Ok(Done::BetAccepted { bet, odds, stake, balance })
}

/// Records an accepted bet whose stake is already in `Reserved`.
fn book_accepted(state: &mut State, bet: BetId, p: &PlaceBet, ev: Evaluated, now: TimestampMs) {
    state.record_activity(p.account, now, Money::ZERO, ev.stake);
    book_legs(state, bet, p, ev, now);
}

/// Adds an accepted bet to its selections' liabilities and markets' bet lists, and to the book.
fn book_legs(state: &mut State, bet: BetId, p: &PlaceBet, ev: Evaluated, now: TimestampMs) {
    for leg in &ev.legs {
        let market = state.markets.get_mut(&leg.market).expect("evaluated leg market exists");
        market.bets.push(bet);
        let sel = market.selections.get_mut(&leg.selection).expect("evaluated selection exists");
        sel.liability = sel.liability.checked_add(ev.potential_win).expect("liability checked in evaluate");
    }
    state.bets.insert(
        bet,
        Bet {
            account: p.account,
            kind: p.kind,
            each_way: p.each_way,
            odds_policy: p.odds_policy,
            legs: ev.legs,
            stake_per_line: p.stake_per_line,
            lines: ev.lines,
            stake: ev.stake,
            potential_win: ev.potential_win,
            placed_at: now,
            status: BetStatus::Open,
            paid: Money::ZERO,
            settle_count: 0,
            reverse_count: 0,
        },
    );
}

/// The request a pending bet was placed with, rebuilt to judge it again when its delay ends.
fn request_of(bet: &Bet) -> PlaceBet {
    PlaceBet {
        account: bet.account,
        legs: bet
            .legs
            .iter()
            .map(|l| LegRequest { market: l.market, selection: l.selection, odds: l.odds_requested })
            .collect(),
        kind: bet.kind,
        stake_per_line: bet.stake_per_line,
        each_way: bet.each_way,
        odds_policy: bet.odds_policy,
        key: crate::ids::IdempotencyKey(String::new()),
    }
}

/// Decides every pending item whose delay has passed, in arrival order, on the book as it
/// stands now: a market suspended during the delay refuses the bet.
pub(crate) fn resolve_pending(state: &mut State, now: TimestampMs) -> Handled {
    let (mut accepted, mut rejected) = (0u32, 0u32);
    let mut keep = std::collections::VecDeque::with_capacity(state.pending.len());
    let items = std::mem::take(&mut state.pending);
    for item in items {
        match item {
            PendingItem::Bet { bet, due } if due <= now => {
                let p = request_of(&state.bets[&bet]);
                // A suspension during the delay refuses the bet even if the market has reopened:
                // whatever caused it (a goal, a red card) happened after the player's price.
                let suspended_meanwhile =
                    state.bets[&bet].legs.iter().any(|l| state.markets[&l.market].suspensions != l.suspensions_seen);
                let judged = if suspended_meanwhile {
                    Err(ResultCode::MarketSuspended)
                } else {
                    evaluate(state, &p, now, true, true)
                };
                match judged {
                    Ok(ev) => {
                        book_accepted(state, bet, &p, ev, now);
                        accepted += 1;
                    }
                    Err(code) => {
                        let b = state.bets.get_mut(&bet).expect("pending bet exists");
                        b.status = BetStatus::Rejected(code);
                        let (account, stake) = (b.account, b.stake);
                        state.post(Book::Reserved(account), Book::Wallet(account), stake);
                        state.repay_debt(account);
                        rejected += 1;
                    }
                }
            }
            PendingItem::CashOut { bet, value, quoted_versions, due } if due <= now => {
                let account = state.bets[&bet].account;
                match check_cash_out(state, account, bet, value, &quoted_versions) {
                    Ok(_) => {
                        execute_cash_out(state, bet, value, now);
                        accepted += 1;
                    }
                    Err(_) => rejected += 1,
                }
            }
            other => keep.push_back(other),
        }
    }
    state.pending = keep;
    Ok(Done::Resolved { accepted, rejected })
}

/// Changes a selection's price and bumps its version.
pub(crate) fn set_price(state: &mut State, market: MarketId, selection: SelectionId, odds: Odds) -> Handled {
    if !odds.is_valid() {
        return Err(ResultCode::OddsInvalid);
    }
    let m = state.markets.get_mut(&market).ok_or(ResultCode::MarketNotFound)?;
    if !matches!(m.status, MarketStatus::Open | MarketStatus::Suspended) {
        return Err(ResultCode::MarketStateInvalid);
    }
    let sel = m.selections.get_mut(&selection).ok_or(ResultCode::SelectionNotFound)?;
    if sel.withdrawn {
        return Err(ResultCode::SelectionWithdrawn);
    }
    sel.odds = odds;
    sel.price_version += 1;
    Ok(Done::Ok)
}

/// Checks a cash-out request; returns the most the book would pay.
fn check_cash_out(
    state: &State,
    account: AccountId,
    bet_id: BetId,
    value: Money,
    quoted_versions: &[(SelectionId, u64)],
) -> Result<Money, ResultCode> {
    let bet = state.bets.get(&bet_id).ok_or(ResultCode::BetNotFound)?;
    if bet.account != account {
        return Err(ResultCode::BetAccountMismatch);
    }
    if bet.status != BetStatus::Open {
        return Err(ResultCode::BetNotOpen);
    }
    if value.0 <= 0 {
        return Err(ResultCode::AmountMustBePositive);
    }
    let mut current = Vec::with_capacity(bet.legs.len());
    for leg in &bet.legs {
        let market = &state.markets[&leg.market];
        match market.status {
            MarketStatus::Open => {}
            MarketStatus::Suspended => return Err(ResultCode::MarketSuspended),
            _ => return Err(ResultCode::CashOutUnavailable),
        }
        let sel = &market.selections[&leg.selection];
        if sel.withdrawn {
            return Err(ResultCode::CashOutUnavailable);
        }
        let quoted = quoted_versions.iter().find(|(s, _)| *s == leg.selection).map(|(_, v)| *v);
        if quoted != Some(sel.price_version) {
            return Err(ResultCode::CashOutQuoteStale);
        }
        current.push(sel.odds);
    }
    // Fair value: each line's stake carried at struck odds and laid back at current odds.
    let combos = line_combos(bet.kind, bet.legs.len()).expect("accepted bets have valid shapes");
    let mut lines: Vec<Vec<Ratio>> = Vec::new();
    let parts: &[bool] = if bet.each_way { &[false, true] } else { &[false] };
    for &place in parts {
        for c in &combos {
            lines.push(
                c.iter()
                    .map(|&i| {
                        let leg = &bet.legs[i];
                        let (struck, now) = if place {
                            let now_leg = Leg { odds: current[i], ..*leg };
                            (place_odds(leg, 0), place_odds(&now_leg, 0))
                        } else {
                            (leg.odds.ratio(), current[i].ratio())
                        };
                        struck.checked_mul(Ratio::new(now.den, now.num)).expect("small odds ratios")
                    })
                    .collect(),
            );
        }
    }
    // The margin is one more exact factor on every line, so fair value less margin is rounded
    // once, at the end. Rounding the fair value first and then the margin rounded twice and
    // refused values up to a unit below the exact limit (1583p refused against 1583.33p).
    let keep = Ratio::new(u128::from(10_000 - state.config.cash_out_margin_bps.min(10_000)), 10_000);
    for line in &mut lines {
        line.push(keep);
    }
    let allowed =
        line_sum_rounded(bet.stake_per_line.0, &lines, RoundingRule::Down).ok_or(ResultCode::AmountOverflow)?;
    let allowed = Money(allowed.paid_minor);
    if value > allowed {
        return Err(ResultCode::CashOutValueTooHigh);
    }
    Ok(allowed)
}

/// The most a cash-out of `bet` would be accepted for right now, with the price versions the
/// ledger will check: the same valuation [`cash_out`] applies, so a client that sends this
/// value with these versions is accepted unless a price moves first.
pub(crate) fn cash_out_quote(state: &State, bet_id: BetId) -> Result<(Money, Vec<(SelectionId, u64)>), ResultCode> {
    let bet = state.bets.get(&bet_id).ok_or(ResultCode::BetNotFound)?;
    let versions: Vec<(SelectionId, u64)> = bet
        .legs
        .iter()
        .map(|l| (l.selection, state.markets[&l.market].selections[&l.selection].price_version))
        .collect();
    match check_cash_out(state, bet.account, bet_id, Money(1), &versions) {
        Ok(allowed) => Ok((allowed, versions)),
        // Worth less than one minor unit after the margin: nothing to offer.
        Err(ResultCode::CashOutValueTooHigh) => Err(ResultCode::CashOutUnavailable),
        Err(code) => Err(code),
    }
}

/// Cash-out: at once, or pending for the in-play delay.
pub(crate) fn cash_out(
    state: &mut State,
    account: AccountId,
    bet: BetId,
    value: Money,
    quoted_versions: &[(SelectionId, u64)],
    now: TimestampMs,
) -> Handled {
    if !state.accounts.contains_key(&account) {
        return Err(ResultCode::AccountNotFound);
    }
    check_cash_out(state, account, bet, value, quoted_versions)?;
    let already_pending = state.pending.iter().any(|p| matches!(p, PendingItem::CashOut { bet: b, .. } if *b == bet));
    if already_pending {
        return Err(ResultCode::BetNotOpen);
    }
    let delay_ms = state.bets[&bet].legs.iter().map(|l| state.markets[&l.market].rules.bet_delay_ms).max().unwrap_or(0);
    if delay_ms > 0 {
        state.pending.push_back(PendingItem::CashOut {
            bet,
            value,
            quoted_versions: quoted_versions.to_vec(),
            due: now.plus_ms(delay_ms),
        });
        return Ok(Done::CashOut { bet, pending: true, balance: state.accounts[&account].wallet });
    }
    execute_cash_out(state, bet, value, now);
    Ok(Done::CashOut { bet, pending: false, balance: state.accounts[&account].wallet })
}

fn execute_cash_out(state: &mut State, bet_id: BetId, value: Money, now: TimestampMs) {
    let bet = state.bets.get_mut(&bet_id).expect("checked bet exists");
    bet.status = BetStatus::CashedOut;
    bet.paid = value;
    let (account, stake, potential_win) = (bet.account, bet.stake, bet.potential_win);
    let legs = bet.legs.clone();
    let currency = state.accounts[&account].currency;
    release_liability(state, &legs, potential_win);
    state.post(Book::Reserved(account), Book::House(currency), stake);
    state.post(Book::House(currency), Book::Wallet(account), value);
    state.record_activity(account, now, Money::ZERO, Money(-value.0));
    state.repay_debt(account);
}

/// Takes a bet's potential win off each of its selections' liability.
pub(crate) fn release_liability(state: &mut State, legs: &[Leg], potential_win: Money) {
    for leg in legs {
        release_selection_liability(state, leg.market, leg.selection, potential_win);
    }
}

/// Takes `amount` off one selection's liability.
pub(crate) fn release_selection_liability(state: &mut State, market: MarketId, selection: SelectionId, amount: Money) {
    let sel =
        state.markets.get_mut(&market).and_then(|m| m.selections.get_mut(&selection)).expect("leg selection exists");
    sel.liability = sel.liability.checked_sub(amount).expect("liability never below zero");
    assert!(sel.liability.0 >= 0, "selection liability went negative");
}
