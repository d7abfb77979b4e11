//! Settlement: results, Rule 4, dead heats, Asian halves, each-way, void legs, resettlement,
//! market void.
//!
//! A bet's return is computed exactly: every line's stake times the product of its legs'
//! return factors, summed over lines, rounded once. A leg's factor per unit of stake is
//!
//! | result   | factor                         |
//! |----------|--------------------------------|
//! | win      | o                              |
//! | lose     | 0                              |
//! | void     | 1                              |
//! | dead heat| o × paid_places / tied         |
//! | half-win | (o + 1) / 2                    |
//! | half-lose| 1 / 2                          |
//!
//! where `o` is the effective price: the struck odds (or, for the place part of an each-way
//! bet, 1 + (odds − 1) × the place fraction), with the winnings part cut by any Rule 4
//! deduction for runners withdrawn after the bet was struck.

use crate::apply::check_operator;
use crate::apply::{ApplyCtx, Book, Handled};
use crate::audit::AuditEvent;
use crate::betting::{line_combos, release_selection_liability};
use crate::code::ResultCode;
use crate::command::{BetKind, LegResult, SelectionResult};
use crate::ids::{Actor, BetId, Currency, MarketId, SelectionId, TimestampMs};
use crate::money::{line_sum_rounded, Money, Ratio, Rounded};
use crate::outcome::Done;
use crate::state::{leg_part_result, Bet, BetStatus, Leg, Market, MarketStatus, State};
use std::collections::BTreeMap;

/// The most a set of Rule 4 deductions can take, in pence in the pound.
pub const RULE4_DEDUCTION_MAX_PENCE: u32 = 90;

/// Cuts the winnings part of `price` by `deduction_pence` in the pound.
fn rule4(price: Ratio, deduction_pence: u32) -> Ratio {
    if deduction_pence == 0 {
        return price;
    }
    // price = n/d; winnings = (n - d)/d; kept = winnings * (100 - p)/100.
    let (n, d) = (price.num, price.den);
    Ratio::new(d * 100 + (n - d) * u128::from(100 - deduction_pence), d * 100)
}

/// The effective win price of a leg.
pub(crate) fn win_odds(leg: &Leg, deduction_pence: u32) -> Ratio {
    rule4(leg.odds.ratio(), deduction_pence)
}

/// The effective place price of an each-way leg: 1 + (odds − 1) × fraction, then Rule 4.
pub(crate) fn place_odds(leg: &Leg, deduction_pence: u32) -> Ratio {
    let terms = leg.each_way.expect("place odds of an each-way leg");
    let (n, d) = (u128::from(leg.odds.numerator()), u128::from(leg.odds.denominator()));
    let (fnum, fden) = (u128::from(terms.fraction_num), u128::from(terms.fraction_den));
    rule4(Ratio::new(d * fden + (n - d) * fnum, d * fden), deduction_pence)
}

fn factor(result: LegResult, price: Ratio) -> Ratio {
    let half = Ratio::new(1, 2);
    match result {
        LegResult::Win => price,
        LegResult::Lose => Ratio::ZERO,
        LegResult::Void => Ratio::ONE,
        LegResult::DeadHeat { paid_places, tied } => {
            price.checked_mul(Ratio::new(u128::from(paid_places), u128::from(tied))).expect("small ratios")
        }
        LegResult::HalfWin => Ratio::new(price.num + price.den, price.den * 2),
        LegResult::HalfLose => half,
    }
}

/// A leg's (win, place) results if its market has results in, else `None`.
fn leg_results(market: &Market, leg: &Leg) -> Option<(LegResult, LegResult)> {
    if !market.status.is_resulted() {
        return None;
    }
    let withdrawn = market.selections.get(&leg.selection).is_some_and(|s| s.withdrawn);
    if market.status == MarketStatus::Voided || withdrawn {
        return Some((LegResult::Void, LegResult::Void));
    }
    Some(match market.results.get(&leg.selection) {
        Some(r) => (leg_part_result(r, None), leg_part_result(r, leg.each_way)),
        None => (LegResult::Lose, LegResult::Lose),
    })
}

/// Rule 4 deduction for a leg: withdrawals after the bet was struck, capped at 90p.
fn deduction_for(market: &Market, leg: &Leg) -> u32 {
    let later = market.withdrawals.get(leg.withdrawals_seen as usize..).unwrap_or(&[]);
    later.iter().filter(|(s, _)| *s != leg.selection).map(|(_, p)| *p).sum::<u32>().min(RULE4_DEDUCTION_MAX_PENCE)
}

/// The bet's return if every leg has a result, computed exactly and rounded once.
/// `Some(None)` means "not all legs resulted yet"; `None` means the return overflows.
pub(crate) fn bet_return(state: &State, bet: &Bet) -> Option<Option<Rounded>> {
    if let ([leg], BetKind::Single, false) = (bet.legs.as_slice(), bet.kind, bet.each_way) {
        // The common case — a plain single — without allocating: settling a market of 100k
        // open bets is dominated by this loop.
        let market = &state.markets[&leg.market];
        let Some((win_result, _)) = leg_results(market, leg) else {
            return Some(None);
        };
        let f = factor(win_result, win_odds(leg, deduction_for(market, leg)));
        return crate::money::single_rounded(bet.stake_per_line.0, f, state.config.rounding).map(Some);
    }
    let mut win = Vec::with_capacity(bet.legs.len());
    let mut place = Vec::with_capacity(bet.legs.len());
    for leg in &bet.legs {
        let market = &state.markets[&leg.market];
        let Some((win_result, place_result)) = leg_results(market, leg) else {
            return Some(None);
        };
        let deduction = deduction_for(market, leg);
        win.push(factor(win_result, win_odds(leg, deduction)));
        if leg.each_way.is_some() {
            place.push(factor(place_result, place_odds(leg, deduction)));
        }
    }
    let combos = line_combos(bet.kind, bet.legs.len()).expect("accepted bets have valid shapes");
    let mut lines: Vec<Vec<Ratio>> = combos.iter().map(|c| c.iter().map(|&i| win[i]).collect()).collect();
    if bet.each_way {
        lines.extend(combos.iter().map(|c| c.iter().map(|&i| place[i]).collect()));
    }
    line_sum_rounded(bet.stake_per_line.0, &lines, state.config.rounding).map(Some)
}

fn validate_results(
    market: &Market,
    results: &[SelectionResult],
) -> Result<BTreeMap<SelectionId, SelectionResult>, ResultCode> {
    let mut map = BTreeMap::new();
    for r in results {
        if !market.selections.contains_key(&r.selection) {
            return Err(ResultCode::ResultsInvalid);
        }
        for part in [Some(r.win), r.place].into_iter().flatten() {
            if let LegResult::DeadHeat { paid_places, tied } = part {
                if paid_places == 0 || tied < 2 || paid_places >= tied {
                    return Err(ResultCode::ResultsInvalid);
                }
            }
        }
        if map.insert(r.selection, *r).is_some() {
            return Err(ResultCode::ResultsInvalid);
        }
    }
    Ok(map)
}

/// Computes the returns of every open bet on `market` that the new results complete, with the
/// market's results temporarily replaced. Nothing is changed if any return overflows.
fn returns_under(
    state: &mut State,
    market: MarketId,
    status: MarketStatus,
    results: BTreeMap<SelectionId, SelectionResult>,
    reversing: bool,
) -> Result<Vec<(BetId, Rounded)>, ResultCode> {
    let m = state.markets.get_mut(&market).expect("market exists");
    let old_status = std::mem::replace(&mut m.status, status);
    let old_results = std::mem::replace(&mut m.results, results);
    // Borrowed out of the market while its bets are read (no copy of a list of 100k ids), and
    // put back below.
    let bet_ids = std::mem::take(&mut m.bets);
    let mut out = Vec::with_capacity(bet_ids.len());
    let mut failed = false;
    let mut total: i128 = 0;
    for &id in &bet_ids {
        let bet = &state.bets[&id];
        let eligible = bet.status == BetStatus::Open || (reversing && bet.status == BetStatus::Settled);
        if !eligible {
            continue;
        }
        match bet_return(state, bet) {
            Some(Some(r)) => {
                total += i128::from(r.paid_minor);
                out.push((id, r));
            }
            Some(None) => {}
            None => failed = true,
        }
    }
    let house = state.house_book(state.markets[&market].currency);
    let m = state.markets.get_mut(&market).expect("market exists");
    m.bets = bet_ids;
    // Paying `total` must fit the house book and every wallet; i64::MAX/2 leaves room for
    // the reversal that a resettlement posts first.
    if failed || i128::from(house.0) - total < i128::from(i64::MIN / 2) {
        m.status = old_status;
        m.results = old_results;
        return Err(ResultCode::AmountOverflow);
    }
    // The new status and results stay in place: the caller books the returns under them.
    Ok(out)
}

/// Books computed returns on open bets: each bet is settled, its stake leaves the account's
/// reserved book for the house and its return goes from the house to the wallet (paying any
/// debt first), as two postings per bet would — but with one lookup of each bet and of its
/// account, and with the house's and the selections' shares summed and booked once at the
/// end, since settling a market of 100k bets is dominated by this loop. The sums are the same
/// whatever the order. Returns the total paid and the total of the stakes.
fn settle_bets(state: &mut State, returns: &[(BetId, Rounded)], now: TimestampMs) -> (i64, i64) {
    let mut house: BTreeMap<Currency, (i128, i128)> = BTreeMap::new();
    let mut released: BTreeMap<(MarketId, SelectionId), i128> = BTreeMap::new();
    let (mut paid_total, mut stakes_total) = (0i64, 0i64);
    for (id, r) in returns {
        let bet = state.bets.get_mut(id).expect("bet exists");
        assert_eq!(bet.status, BetStatus::Open, "settling a bet that is not open");
        bet.status = BetStatus::Settled;
        bet.paid = Money(r.paid_minor);
        bet.settle_count += 1;
        for leg in &bet.legs {
            *released.entry((leg.market, leg.selection)).or_default() += i128::from(bet.potential_win.0);
        }
        let (stake, paid) = (bet.stake, Money(r.paid_minor));
        assert!(paid.0 >= 0, "negative return {} on bet {}", paid.0, id.0);
        let acc = state.accounts.get_mut(&bet.account).expect("settling for an account that exists");
        acc.reserved = acc.reserved.checked_sub(stake).expect("posting overflow (debit)");
        assert!(
            acc.reserved.0 >= 0 || crate::faults::skip_funds_check(),
            "player balance reserved went negative: {}",
            acc.reserved.0
        );
        acc.wallet = acc.wallet.checked_add(paid).expect("posting overflow (credit)");
        let mut to_house = i128::from(stake.0) - i128::from(paid.0);
        if crate::faults::pay_winner_twice() && paid.0 > stake.0 {
            acc.wallet = acc.wallet.checked_add(paid).expect("posting overflow (credit)");
            to_house -= i128::from(paid.0);
        }
        acc.record_activity(now, Money::ZERO, Money(-paid.0));
        acc.repay_debt();
        let share = house.entry(acc.currency).or_default();
        share.0 += to_house;
        share.1 += i128::from(r.remainder_micro);
        paid_total += paid.0;
        stakes_total += stake.0;
    }
    for ((market, selection), amount) in released {
        // At most the selection's liability, which is a `Money`, or the release below fails.
        let amount = Money(i64::try_from(amount).expect("liability never below zero"));
        release_selection_liability(state, market, selection, amount);
    }
    for (currency, (to_house, rounding)) in house {
        let h = state.house.entry(currency).or_default();
        h.book.0 = i64::try_from(i128::from(h.book.0) + to_house).expect("posting overflow (house)");
        h.rounding_micro =
            i64::try_from(i128::from(h.rounding_micro) + rounding).expect("rounding memorandum overflow");
    }
    (paid_total, stakes_total)
}

/// Undoes a settlement: the return goes back to the house (from the wallet, and what the
/// wallet lacks becomes debt), the stake back to reserved, the bet is open again.
fn reverse_bet(state: &mut State, id: BetId, now: TimestampMs) {
    let bet = state.bets.get_mut(&id).expect("bet exists");
    assert_eq!(bet.status, BetStatus::Settled, "reversing a bet that is not settled");
    bet.status = BetStatus::Open;
    bet.reverse_count += 1;
    let paid = std::mem::replace(&mut bet.paid, Money::ZERO);
    let (account, stake, potential_win, legs) = (bet.account, bet.stake, bet.potential_win, bet.legs.clone());
    let currency = state.accounts[&account].currency;
    for leg in &legs {
        let sel =
            state.markets.get_mut(&leg.market).and_then(|m| m.selections.get_mut(&leg.selection)).expect("leg exists");
        sel.liability = sel.liability.checked_add(potential_win).expect("liability was this large before");
    }
    let from_wallet = Money(paid.0.min(state.accounts[&account].wallet.0));
    state.post(Book::Wallet(account), Book::House(currency), from_wallet);
    state.post(Book::Debt(account), Book::House(currency), Money(paid.0 - from_wallet.0));
    state.post(Book::House(currency), Book::Reserved(account), stake);
    state.record_activity(account, now, Money::ZERO, paid);
}

fn audit_settled(
    state: &mut State,
    market: MarketId,
    bets_settled: u32,
    paid_net: Money,
    reason: &str,
    actor: &Actor,
    ctx: ApplyCtx,
    now: TimestampMs,
) -> Done {
    let result_version = state.markets[&market].result_version;
    state.audit.push(
        ctx.log_index,
        now,
        actor.clone(),
        AuditEvent::MarketSettled { market, result_version, bets_settled, paid_net, reason: reason.to_string() },
    );
    Done::Settled { market, result_version, bets_settled }
}

/// First settlement of a market.
pub(crate) fn settle_market(
    state: &mut State,
    market: MarketId,
    results: &[SelectionResult],
    actor: &Actor,
    ctx: ApplyCtx,
    now: TimestampMs,
) -> Handled {
    check_operator(actor, "")?;
    let m = state.markets.get(&market).ok_or(ResultCode::MarketNotFound)?;
    match m.status {
        MarketStatus::Open | MarketStatus::Suspended | MarketStatus::Closed => {}
        MarketStatus::Settled | MarketStatus::Resettled => return Err(ResultCode::MarketAlreadySettled),
        MarketStatus::Voided => return Err(ResultCode::MarketVoided),
    }
    let results = validate_results(m, results)?;
    let from = m.status;
    let returns = returns_under(state, market, MarketStatus::Settled, results, false)?;
    let m = state.markets.get_mut(&market).expect("market exists");
    m.result_version = 1;
    let (paid, stakes) = settle_bets(state, &returns, now);
    let paid_net = paid - stakes;
    state.audit.push(
        ctx.log_index,
        now,
        actor.clone(),
        AuditEvent::MarketStatusChanged { market, from, to: MarketStatus::Settled, reason: String::new() },
    );
    Ok(audit_settled(state, market, returns.len() as u32, Money(paid_net), "", actor, ctx, now))
}

/// Reverses every settled bet on the market, then settles again under the new status/results.
#[allow(clippy::too_many_arguments)]
fn redo_settlement(
    state: &mut State,
    market: MarketId,
    status: MarketStatus,
    results: BTreeMap<SelectionId, SelectionResult>,
    reason: &str,
    actor: &Actor,
    ctx: ApplyCtx,
    now: TimestampMs,
) -> Handled {
    let from = state.markets[&market].status;
    let old_paid: BTreeMap<BetId, Money> = state.markets[&market]
        .bets
        .iter()
        .filter(|id| state.bets[*id].status == BetStatus::Settled)
        .map(|id| (*id, state.bets[id].paid))
        .collect();
    let returns = returns_under(state, market, status, results, true)?;
    for id in old_paid.keys() {
        reverse_bet(state, *id, now);
    }
    let m = state.markets.get_mut(&market).expect("market exists");
    m.result_version += 1;
    let changed = old_paid.len() as u32 + returns.iter().filter(|(id, _)| !old_paid.contains_key(id)).count() as u32;
    let (paid, _) = settle_bets(state, &returns, now);
    let paid_net = paid - old_paid.values().map(|m| m.0).sum::<i64>();
    state.audit.push(
        ctx.log_index,
        now,
        actor.clone(),
        AuditEvent::MarketStatusChanged { market, from, to: status, reason: reason.to_string() },
    );
    Ok(audit_settled(state, market, changed, Money(paid_net), reason, actor, ctx, now))
}

/// Corrects the results of a settled market.
pub(crate) fn resettle_market(
    state: &mut State,
    market: MarketId,
    results: &[SelectionResult],
    reason: &str,
    actor: &Actor,
    ctx: ApplyCtx,
    now: TimestampMs,
) -> Handled {
    check_operator(actor, reason)?;
    let m = state.markets.get(&market).ok_or(ResultCode::MarketNotFound)?;
    match m.status {
        MarketStatus::Settled | MarketStatus::Resettled => {}
        MarketStatus::Voided => return Err(ResultCode::MarketVoided),
        _ => return Err(ResultCode::MarketNotSettled),
    }
    let results = validate_results(m, results)?;
    redo_settlement(state, market, MarketStatus::Resettled, results, reason, actor, ctx, now)
}

/// Voids a market in any state but voided; a settled market's bets are reversed first.
pub(crate) fn void_market(
    state: &mut State,
    market: MarketId,
    reason: &str,
    actor: &Actor,
    ctx: ApplyCtx,
    now: TimestampMs,
) -> Handled {
    check_operator(actor, reason)?;
    let m = state.markets.get(&market).ok_or(ResultCode::MarketNotFound)?;
    if m.status == MarketStatus::Voided {
        return Err(ResultCode::MarketVoided);
    }
    redo_settlement(state, market, MarketStatus::Voided, BTreeMap::new(), reason, actor, ctx, now)
}

/// Marks a non-runner; bets on it will be void and earlier bets on others get Rule 4.
pub(crate) fn withdraw_selection(
    state: &mut State,
    market: MarketId,
    selection: SelectionId,
    deduction_pence: u32,
    actor: &Actor,
    ctx: ApplyCtx,
    now: TimestampMs,
) -> Handled {
    check_operator(actor, "")?;
    if deduction_pence > RULE4_DEDUCTION_MAX_PENCE {
        return Err(ResultCode::DeductionInvalid);
    }
    let m = state.markets.get_mut(&market).ok_or(ResultCode::MarketNotFound)?;
    if !matches!(m.status, MarketStatus::Open | MarketStatus::Suspended | MarketStatus::Closed) {
        return Err(ResultCode::MarketStateInvalid);
    }
    let sel = m.selections.get_mut(&selection).ok_or(ResultCode::SelectionNotFound)?;
    if sel.withdrawn {
        return Err(ResultCode::SelectionWithdrawn);
    }
    sel.withdrawn = true;
    m.withdrawals.push((selection, deduction_pence));
    state.audit.push(
        ctx.log_index,
        now,
        actor.clone(),
        AuditEvent::SelectionWithdrawn { market, selection, deduction_pence },
    );
    Ok(Done::Ok)
}
