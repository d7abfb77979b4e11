//! The betting rules of DOMAIN.md, one test per rule, each with a worked money example in exact
//! minor units (pence). Where a bookmaker publishes an example on its help pages (Rule 4,
//! each-way, dead heat), the test uses that example's numbers.
//!
//! Every command runs through `support::Book`, which checks the ledger's invariants (money
//! conserved per currency, no negative player balance, reserved = open stakes, liability = open
//! potential wins, audit chain intact) after each one.

mod support;

use paddock_ledger::audit::{verify_records, AuditEvent};
use paddock_ledger::{
    AccountId, Actor, BetKind, BetStatus, BookConfig, Command, Done, EachWayTerms, ExclusionKind, LegResult, LimitKind,
    LimitWindow, MarketId, MarketStatus, Money, Odds, OddsPolicy, Outcome, ResultCode, RoundingRule, SelectionId,
    TimestampMs, DAY_MS,
};
use support::*;

// ---- odds ----

#[test]
fn odds_are_stored_as_the_exact_decimal_price() {
    // 5/2 fractional is 7/2 decimal; 10/11 is 21/11; -110 American is 21/11; +250 is 7/2;
    // 2.375 decimal is 2375/1000 = 19/8; evens is 2/1; 1000/1 is the 1001 ceiling.
    let cases = [
        ("5/2", 7, 2),
        ("10/11", 21, 11),
        ("-110", 21, 11),
        ("+250", 7, 2),
        ("2.375", 19, 8),
        ("evens", 2, 1),
        ("1.01", 101, 100),
        ("1000/1", 1001, 1),
    ];
    for (text, num, den) in cases {
        let price = odds(text);
        assert_eq!((price.numerator(), price.denominator()), (num, den), "{text}");
    }
    assert_eq!(odds("10/11"), odds("-110"));
    assert_eq!(odds("5/2"), odds("+250"));
    assert_eq!(odds("5/2"), odds("3.5"));
    assert_eq!(Odds::new(2375, 1000), Ok(odds("2.375")));
}

#[test]
fn odds_display_as_decimal_fractional_and_american() {
    // (price, decimal to 2 places, fractional, American). 2.375 is 11/8 fractional and +137.5
    // American, shown rounded half-up as +138; 10/11 is 1.909.. shown as 1.91.
    let cases = [
        ("5/2", "3.50", "5/2", "+250"),
        ("10/11", "1.91", "10/11", "-110"),
        ("2.375", "2.38", "11/8", "+138"),
        ("evens", "2.00", "1/1", "+100"),
        ("1/2", "1.50", "1/2", "-200"),
    ];
    for (text, decimal, fractional, american) in cases {
        let price = odds(text);
        assert_eq!(price.to_decimal_string(2), decimal, "{text}");
        assert_eq!(price.to_string(), decimal, "{text}: Display is the 2-place decimal");
        assert_eq!(price.to_fractional_string(), fractional, "{text}");
        assert_eq!(price.to_american_string(), american, "{text}");
    }
}

#[test]
fn fractional_10_11_pays_exactly_21_11_not_1_91() {
    // £100 at 10/11 returns 10000 × 21/11 = 19090.909..p, rounded down to 19090p (£190.90).
    // A price rounded to its 1.91 display would pay 19100p: 10p too much.
    let mut book = Book::new();
    book.open_funded(1, 10_000);
    book.market(1, &[(1, "10/11"), (2, "10/11")]);
    let bet = book.single(1, 1, 10_000);
    book.settle(1, &[res(1, LegResult::Win)]);
    assert_eq!(book.paid(bet), 19_090);
    assert_eq!(book.balance(1), 19_090);
}

#[test]
fn winning_single_returns_stake_times_decimal_odds_and_loser_stake_goes_to_the_house() {
    // £10 at 5/2 wins: 1000 × 7/2 = 3500p. £10 on the loser is kept. House: +1000 + 1000 − 3500.
    let mut book = Book::new();
    book.open_funded(1, 1_000);
    book.open_funded(2, 1_000);
    book.market(1, &[(1, "5/2"), (2, "6/4")]);
    let winner = book.single(1, 1, 1_000);
    let loser = book.single(2, 2, 1_000);
    assert_eq!(book.state.account(AccountId(1)).unwrap().exposure, Money(1_000));
    let done = book.settle(1, &[res(1, LegResult::Win)]);
    assert_eq!(done, Outcome::Done(Done::Settled { market: MarketId(1), result_version: 1, bets_settled: 2 }));
    assert_eq!((book.paid(winner), book.paid(loser)), (3_500, 0));
    assert_eq!((book.balance(1), book.balance(2)), (3_500, 0));
    assert_eq!(book.state.account(AccountId(1)).unwrap().exposure, Money(0));
    assert_eq!(book.state.house_book(gbp()), Money(-1_500));
    assert_eq!(book.state.bet(winner).unwrap().status, BetStatus::Settled);
}

// ---- rounding ----

#[test]
fn payouts_round_down_by_default_and_half_up_when_configured() {
    // 101p at 3/2 (5/2 decimal) = 252.5p: Down pays 252, HalfUp pays 253.
    // 100p at 10/11 (21/11) = 190.909p: Down pays 190, HalfUp pays 191.
    let mut book = Book::new();
    book.open_funded(1, 10_000);
    for (market, price) in [(1, "3/2"), (2, "10/11"), (3, "3/2"), (4, "10/11")] {
        book.market(market, &[(market * 10, price), (market * 10 + 1, "2/1")]);
    }
    assert_eq!(book.state.config().rounding, RoundingRule::Down);
    let down_a = book.single(1, 10, 101);
    let down_b = book.single(1, 20, 100);
    book.settle(1, &[res(10, LegResult::Win)]);
    book.settle(2, &[res(20, LegResult::Win)]);
    assert_eq!((book.paid(down_a), book.paid(down_b)), (252, 190));

    let config = BookConfig { rounding: RoundingRule::HalfUp, ..BookConfig::default() };
    book.ok(Command::SetConfig { config, actor: trader(), key: fresh_key() });
    assert_eq!(book.state.config().rounding, RoundingRule::HalfUp);
    let up_a = book.single(1, 30, 101);
    let up_b = book.single(1, 40, 100);
    book.settle(3, &[res(30, LegResult::Win)]);
    book.settle(4, &[res(40, LegResult::Win)]);
    assert_eq!((book.paid(up_a), book.paid(up_b)), (253, 191));
    // 10000 − 101 − 100 + 252 + 190 − 101 − 100 + 253 + 191.
    assert_eq!(book.balance(1), 10_484);
}

// ---- Rule 4, each-way, dead heat, Asian lines ----

#[test]
fn rule_4_deduction_cuts_winnings_not_stake() {
    // Bookmakers' Rule 4 example: £10 at 4/1 with a 25p deduction. Winnings £40 cut by 25% are
    // £30; with the £10 stake back the return is £40 (4000p). A bet on the non-runner is void
    // (1000p back); a bet struck after the withdrawal is not cut (1000 × 5 = 5000p).
    let mut book = Book::new();
    for account in 1..=3 {
        book.open_funded(account, 1_000);
    }
    book.market(1, &[(1, "4/1"), (2, "3/1"), (3, "6/1")]);
    let before = book.single(1, 1, 1_000);
    let on_non_runner = book.single(2, 2, 1_000);
    book.ok(Command::WithdrawSelection {
        market: MarketId(1),
        selection: SelectionId(2),
        deduction_pence: 25,
        actor: trader(),
        key: fresh_key(),
    });
    let after = book.single(3, 1, 1_000);
    book.settle(1, &[res(1, LegResult::Win)]);
    assert_eq!(book.paid(before), 4_000);
    assert_eq!(book.paid(on_non_runner), 1_000);
    assert_eq!(book.paid(after), 5_000);
    assert_eq!((book.balance(1), book.balance(2), book.balance(3)), (4_000, 1_000, 5_000));
}

#[test]
fn rule_4_deductions_from_several_non_runners_add_up_capped_at_90p() {
    // Two non-runners at 50p each add up to 100p, capped at 90p: £10 at 4/1 keeps 10% of its
    // £40 winnings, £4, and returns £14 (1400p).
    let mut book = Book::new();
    book.open_funded(1, 1_000);
    book.market(1, &[(1, "4/1"), (2, "1/2"), (3, "4/6"), (4, "10/1")]);
    let bet = book.single(1, 1, 1_000);
    for selection in [2, 3] {
        book.ok(Command::WithdrawSelection {
            market: MarketId(1),
            selection: SelectionId(selection),
            deduction_pence: 50,
            actor: trader(),
            key: fresh_key(),
        });
    }
    book.settle(1, &[res(1, LegResult::Win)]);
    assert_eq!(book.paid(bet), 1_400);
}

fn each_way_terms(fraction_den: u32, places: u32) -> EachWayTerms {
    EachWayTerms { fraction_num: 1, fraction_den, places }
}

fn each_way_bet(book: &mut Book, account: u64, selection: u64, stake_per_part: i64) -> paddock_ledger::BetId {
    let mut p = book.request(account, &[selection], BetKind::Single, stake_per_part);
    p.each_way = true;
    bet_id(&book.run(Command::PlaceBet(p)))
}

#[test]
fn each_way_place_part_pays_the_place_fraction_of_the_odds() {
    // Bookmakers' each-way example: £5 e/w at 10/1, 1/5 odds, 3 places, costs £10. The horse
    // places but does not win: the win £5 is lost; the place £5 pays at 10/1 × 1/5 = 2/1,
    // £10 winnings plus the £5 stake: £15 (1500p).
    let mut book = Book::new();
    book.open_funded(1, 1_000);
    let rules = paddock_ledger::MarketRules { each_way: Some(each_way_terms(5, 3)), ..rules() };
    book.market_with(1, 1, &[(1, "10/1"), (2, "2/1"), (3, "3/1"), (4, "5/1")], rules);
    let bet = each_way_bet(&mut book, 1, 1, 500);
    let view = book.state.bet(bet).unwrap();
    assert_eq!((view.stake, view.lines, view.each_way), (Money(1_000), 2, true));
    assert_eq!(book.balance(1), 0);
    book.settle(1, &[res(2, LegResult::Win), res_ew(1, LegResult::Lose, LegResult::Win)]);
    assert_eq!(book.paid(bet), 1_500);
    assert_eq!(book.balance(1), 1_500);
}

#[test]
fn each_way_winner_collects_both_parts() {
    // £5 e/w at 10/1, 1/5 odds: the win part returns 500 × 11 = 5500p and the place part
    // 500 × 3 = 1500p; total £70 (7000p) for a £10 stake.
    let mut book = Book::new();
    book.open_funded(1, 1_000);
    let rules = paddock_ledger::MarketRules { each_way: Some(each_way_terms(5, 3)), ..rules() };
    book.market_with(1, 1, &[(1, "10/1"), (2, "2/1")], rules);
    let bet = each_way_bet(&mut book, 1, 1, 500);
    book.settle(1, &[res(1, LegResult::Win)]);
    assert_eq!(book.paid(bet), 7_000);
}

#[test]
fn dead_heat_for_win_halves_the_stake() {
    // Bookmakers' dead-heat example: £10 at 6/1, two-way dead heat for first. Half the stake,
    // £5, is paid at 6/1: £30 winnings + £5 = £35 (3500p); the other £5 is lost.
    // The other tied runner, £10 at 3/1: 500 × 4 = 2000p.
    let mut book = Book::new();
    book.open_funded(1, 1_000);
    book.open_funded(2, 1_000);
    book.market(1, &[(1, "6/1"), (2, "3/1"), (3, "2/1")]);
    let first = book.single(1, 1, 1_000);
    let second = book.single(2, 2, 1_000);
    let dead_heat = LegResult::DeadHeat { paid_places: 1, tied: 2 };
    book.settle(1, &[res(1, dead_heat), res(2, dead_heat)]);
    assert_eq!((book.paid(first), book.paid(second)), (3_500, 2_000));
}

#[test]
fn each_way_dead_heat_for_first_pays_the_place_part_in_full() {
    // Bookmakers' rule: a runner that dead-heats for first has placed. £10 e/w at 6/1, 1/4
    // odds, 3 places, two-way dead heat for first (place part not named): win part
    // 1000 × 7 / 2 = 3500p; place part in full, 1000 × (1 + 6/4) = 2500p; total 6000p.
    // With only 2 places paid and a three-way dead heat for first, the place part too is a dead
    // heat (2 places shared by 3): 1000 × 7 / 3 + 1000 × 5/2 × 2/3 = 7000/3 + 5000/3 = 4000p
    // exactly (rounding each part first would pay 2333 + 1666 = 3999p).
    let mut book = Book::new();
    book.open_funded(1, 4_000);
    let three_places = paddock_ledger::MarketRules { each_way: Some(each_way_terms(4, 3)), ..rules() };
    book.market_with(1, 1, &[(1, "6/1"), (2, "3/1"), (3, "2/1")], three_places);
    let two_places = paddock_ledger::MarketRules { each_way: Some(each_way_terms(4, 2)), ..rules() };
    book.market_with(2, 2, &[(21, "6/1"), (22, "3/1"), (23, "2/1"), (24, "9/1")], two_places);
    let two_way = each_way_bet(&mut book, 1, 1, 1_000);
    let three_way = each_way_bet(&mut book, 1, 21, 1_000);
    let dh2 = LegResult::DeadHeat { paid_places: 1, tied: 2 };
    book.settle(1, &[res(1, dh2), res(2, dh2)]);
    assert_eq!(book.paid(two_way), 6_000);
    let dh3 = LegResult::DeadHeat { paid_places: 1, tied: 3 };
    book.settle(2, &[res(21, dh3), res(22, dh3), res(23, dh3)]);
    assert_eq!(book.paid(three_way), 4_000);
}

#[test]
fn asian_half_win_pays_half_the_stake_at_the_odds_and_returns_half() {
    // £100 at 1.90 on −0.75, team wins by one goal: £50 at 1.90 = £95, plus £50 returned:
    // £145 (14500p).
    let mut book = Book::new();
    book.open_funded(1, 10_000);
    book.market(1, &[(1, "1.90"), (2, "1.90")]);
    let bet = book.single(1, 1, 10_000);
    book.settle(1, &[res(1, LegResult::HalfWin), res(2, LegResult::HalfLose)]);
    assert_eq!(book.paid(bet), 14_500);
}

#[test]
fn asian_half_lose_returns_half_the_stake() {
    // £100 at 1.90 on −0.25, the match is drawn: £50 lost, £50 returned (5000p).
    let mut book = Book::new();
    book.open_funded(1, 10_000);
    book.market(1, &[(1, "1.90"), (2, "1.90")]);
    let bet = book.single(1, 1, 10_000);
    book.settle(1, &[res(1, LegResult::HalfLose), res(2, LegResult::HalfWin)]);
    assert_eq!(book.paid(bet), 5_000);
}

#[test]
fn void_result_returns_the_stake() {
    // £10 at 5/1 on a selection resulted void: 1000p back.
    let mut book = Book::new();
    book.open_funded(1, 1_000);
    book.market(1, &[(1, "5/1"), (2, "1/5")]);
    let bet = book.single(1, 1, 1_000);
    book.settle(1, &[res(1, LegResult::Void), res(2, LegResult::Win)]);
    assert_eq!(book.paid(bet), 1_000);
    assert_eq!(book.balance(1), 1_000);
}

#[test]
fn market_void_returns_every_stake() {
    // Open market voided: £10 and £25 come back in full. A settled market voided later: the
    // £30 return on £10 at 2/1 is replaced by the £10 stake (balance 3000 → 1000).
    let mut book = Book::new();
    book.open_funded(1, 1_000);
    book.open_funded(2, 2_500);
    book.market(1, &[(1, "5/2"), (2, "6/4")]);
    book.market(2, &[(21, "2/1"), (22, "1/2")]);
    let a = book.single(1, 1, 1_000);
    let b = book.single(2, 2, 2_500);
    let done = book.run(Command::VoidMarket {
        market: MarketId(1),
        reason: "abandoned".into(),
        actor: trader(),
        key: fresh_key(),
    });
    assert_eq!(done, Outcome::Done(Done::Settled { market: MarketId(1), result_version: 1, bets_settled: 2 }));
    assert_eq!((book.paid(a), book.paid(b)), (1_000, 2_500));
    assert_eq!((book.balance(1), book.balance(2)), (1_000, 2_500));
    assert_eq!(book.state.market(MarketId(1)).unwrap().status, MarketStatus::Voided);

    let c = book.single(1, 21, 1_000);
    book.settle(2, &[res(21, LegResult::Win)]);
    assert_eq!(book.balance(1), 3_000);
    let done = book.run(Command::VoidMarket {
        market: MarketId(2),
        reason: "wrong course".into(),
        actor: trader(),
        key: fresh_key(),
    });
    assert_eq!(done, Outcome::Done(Done::Settled { market: MarketId(2), result_version: 2, bets_settled: 1 }));
    assert_eq!(book.paid(c), 1_000);
    assert_eq!(book.balance(1), 1_000);
}

// ---- accumulators and system bets ----

/// Three markets on three events: selections 1 (2/1), 2 (3/1), 3 (evens), 4 (4/1), each with
/// a losing alternative 10x.
fn four_events(book: &mut Book) {
    for (market, price) in [(1, "2/1"), (2, "3/1"), (3, "evens"), (4, "4/1")] {
        book.market(market, &[(market, price), (market * 10, "2/1")]);
    }
}

#[test]
fn accumulator_pays_the_product_of_the_odds_once_every_leg_is_in() {
    // £10 treble at 2/1, 3/1, evens: 1000 × 3 × 4 × 2 = 24000p. Nothing is paid until the last
    // leg's market is settled.
    let mut book = Book::new();
    book.open_funded(1, 1_000);
    four_events(&mut book);
    let bet = book.accumulator(1, &[1, 2, 3], 1_000);
    book.settle(1, &[res(1, LegResult::Win)]);
    book.settle(2, &[res(2, LegResult::Win)]);
    assert_eq!(book.state.bet(bet).unwrap().status, BetStatus::Open);
    book.settle(3, &[res(3, LegResult::Win)]);
    assert_eq!(book.paid(bet), 24_000);
}

#[test]
fn accumulator_with_a_void_leg_is_recomputed_as_a_double() {
    // £10 treble at 2/1, 3/1, evens; the evens leg is void: a double, 1000 × 3 × 4 = 12000p.
    let mut book = Book::new();
    book.open_funded(1, 1_000);
    four_events(&mut book);
    let bet = book.accumulator(1, &[1, 2, 3], 1_000);
    book.run(Command::VoidMarket {
        market: MarketId(3),
        reason: "postponed".into(),
        actor: trader(),
        key: fresh_key(),
    });
    book.settle(1, &[res(1, LegResult::Win)]);
    book.settle(2, &[res(2, LegResult::Win)]);
    assert_eq!(book.paid(bet), 12_000);
}

#[test]
fn accumulator_with_a_losing_leg_loses() {
    // £10 treble, legs 1 and 3 win, leg 2 loses: 0p.
    let mut book = Book::new();
    book.open_funded(1, 1_000);
    four_events(&mut book);
    let bet = book.accumulator(1, &[1, 2, 3], 1_000);
    book.settle(1, &[res(1, LegResult::Win)]);
    book.settle(2, &[res(20, LegResult::Win)]);
    book.settle(3, &[res(3, LegResult::Win)]);
    assert_eq!(book.state.bet(bet).unwrap().status, BetStatus::Settled);
    assert_eq!(book.paid(bet), 0);
    assert_eq!(book.balance(1), 0);
}

#[test]
fn yankee_with_one_loser_pays_its_three_doubles_and_one_treble() {
    // £1 Yankee (11 lines, £11) on A 2/1 (3.0), B 3/1 (4.0), C evens (2.0), D 4/1 loses.
    // Winning lines: doubles AB 3×4 = 12, AC 3×2 = 6, BC 4×2 = 8; treble ABC 3×4×2 = 24.
    // Every line with D pays 0. Return 100p × (12 + 6 + 8 + 24) = 5000p (£50).
    let mut book = Book::new();
    book.open_funded(1, 1_100);
    four_events(&mut book);
    let bet = book.system(1, BetKind::Yankee, &[1, 2, 3, 4], 100);
    let view = book.state.bet(bet).unwrap();
    assert_eq!((view.lines, view.stake), (11, Money(1_100)));
    for market in 1..=3 {
        book.settle(market, &[res(market, LegResult::Win)]);
    }
    book.settle(4, &[res(40, LegResult::Win)]);
    assert_eq!(book.paid(bet), 5_000);
    assert_eq!(book.balance(1), 5_000);
}

#[test]
fn system_bets_strike_trixie_4_patent_7_yankee_11_lucky15_15_lines() {
    // Stake = unit × lines: 50p Trixie 200p, Patent 350p, Yankee 550p, Lucky 15 750p,
    // doubles from four (6 lines) 300p; each-way doubles the lines: e/w Trixie 8 lines, 400p.
    let mut book = Book::new();
    book.open_funded(1, 100_000);
    for market in 1..=4 {
        let rules = paddock_ledger::MarketRules { each_way: Some(each_way_terms(4, 3)), ..rules() };
        book.market_with(market, market, &[(market, "2/1"), (market * 10, "3/1")], rules);
    }
    let cases = [
        (BetKind::Trixie, &[1, 2, 3][..], 4),
        (BetKind::Patent, &[1, 2, 3][..], 7),
        (BetKind::Yankee, &[1, 2, 3, 4][..], 11),
        (BetKind::Lucky15, &[1, 2, 3, 4][..], 15),
        (BetKind::KOfN { k: 2 }, &[1, 2, 3, 4][..], 6),
    ];
    for (kind, legs, lines) in cases {
        let outcome = book.bet(1, legs, kind, 50);
        let bet = bet_id(&outcome);
        let Outcome::Done(Done::BetAccepted { stake, .. }) = outcome else { unreachable!() };
        assert_eq!(stake, Money(50 * lines), "{kind:?}");
        assert_eq!(book.state.bet(bet).unwrap().lines, lines as u32, "{kind:?}");
    }
    let mut p = book.request(1, &[1, 2, 3], BetKind::Trixie, 50);
    p.each_way = true;
    let bet = bet_id(&book.run(Command::PlaceBet(p)));
    let view = book.state.bet(bet).unwrap();
    assert_eq!((view.lines, view.stake), (8, Money(400)));
}

// ---- resettlement ----

#[test]
fn resettlement_takes_back_a_corrected_winners_return_and_pays_the_new_winner() {
    // £10 on A at 2/1 is paid 3000p; the result is corrected to B. A's 3000p are taken back
    // (8000 → 5000); £10 on B at 3/1 is paid 4000p. Both settlements stay in the audit trail.
    let mut book = Book::new();
    book.open_funded(1, 6_000);
    book.open_funded(2, 1_000);
    book.market(1, &[(1, "2/1"), (2, "3/1")]);
    let a = book.single(1, 1, 1_000);
    let b = book.single(2, 2, 1_000);
    book.settle(1, &[res(1, LegResult::Win)]);
    assert_eq!((book.balance(1), book.balance(2)), (8_000, 0));
    let done = book.run(Command::ResettleMarket {
        market: MarketId(1),
        results: vec![res(2, LegResult::Win)],
        reason: "photo finish reviewed".into(),
        actor: settler(),
        key: fresh_key(),
    });
    assert_eq!(done, Outcome::Done(Done::Settled { market: MarketId(1), result_version: 2, bets_settled: 2 }));
    assert_eq!((book.paid(a), book.paid(b)), (0, 4_000));
    assert_eq!((book.balance(1), book.balance(2)), (5_000, 4_000));
    assert_eq!(book.state.account(AccountId(1)).unwrap().debt, Money(0));
    assert_eq!(book.state.bet(a).unwrap().settle_count, 2);
    let settlements = book
        .state
        .audit()
        .records()
        .iter()
        .filter(|r| matches!(r.event, AuditEvent::MarketSettled { market: MarketId(1), .. }))
        .count();
    assert_eq!(settlements, 2);
    assert_eq!(book.state.market(MarketId(1)).unwrap().status, MarketStatus::Resettled);
}

#[test]
fn resettlement_records_debt_when_the_return_was_withdrawn_and_deposits_repay_it() {
    // £10 on A at 2/1 is paid 3000p, withdrawn to 0, then A is corrected to a loser: the
    // wallet stays at 0 and a debt of 3000p is recorded. Deposit 1000p: all of it repays debt
    // (debt 2000p). Deposit 4000p: 2000p repays the rest, 2000p is available.
    let mut book = Book::new();
    book.open_funded(1, 1_000);
    book.market(1, &[(1, "2/1"), (2, "3/1")]);
    let bet = book.single(1, 1, 1_000);
    book.settle(1, &[res(1, LegResult::Win)]);
    assert!(book.withdraw(1, 3_000).is_done());
    book.run(Command::ResettleMarket {
        market: MarketId(1),
        results: vec![res(2, LegResult::Win)],
        reason: "stewards' inquiry".into(),
        actor: settler(),
        key: fresh_key(),
    });
    let view = book.state.account(AccountId(1)).unwrap();
    assert_eq!((view.balance, view.debt), (Money(0), Money(-3_000)));
    assert_eq!(book.paid(bet), 0);
    assert_eq!(book.deposit(1, 1_000), Outcome::Done(Done::Transferred { account: AccountId(1), balance: Money(0) }));
    assert_eq!(book.state.account(AccountId(1)).unwrap().debt, Money(-2_000));
    assert_eq!(
        book.deposit(1, 4_000),
        Outcome::Done(Done::Transferred { account: AccountId(1), balance: Money(2_000) })
    );
    assert_eq!(book.state.account(AccountId(1)).unwrap().debt, Money(0));
    // The house kept the lost £10 stake and nothing else.
    assert_eq!(book.state.house_book(gbp()), Money(1_000));
}

// ---- cash-out ----

/// £10 on selection 1 at 4/1; the price then shortens to 2/1 (price version 2).
/// Fair value = 1000 × 5/3 = 1666.67p; less the default 5% margin = 1583.33p, so 1583p is the
/// most the book may pay.
fn cash_out_book() -> (Book, paddock_ledger::BetId) {
    let mut book = Book::new();
    book.open_funded(1, 1_000);
    book.market(1, &[(1, "4/1"), (2, "1/4")]);
    let bet = book.single(1, 1, 1_000);
    book.ok(Command::SetPrice { market: MarketId(1), selection: SelectionId(1), odds: odds("2/1"), key: fresh_key() });
    assert_eq!(book.state.market(MarketId(1)).unwrap().selections[0].price_version, 2);
    (book, bet)
}

fn cash_out(book: &mut Book, bet: paddock_ledger::BetId, value: i64, version: u64) -> Command {
    Command::CashOut {
        account: AccountId(1),
        bet,
        value: Money(value),
        quoted_versions: vec![(SelectionId(1), version)],
        key: book.key(),
    }
}

#[test]
fn cash_out_at_or_below_fair_value_minus_margin_is_accepted() {
    // 1583p ≤ 1583.33p: paid at once; the bet is closed and later results do not touch it.
    let (mut book, bet) = cash_out_book();
    let cmd = cash_out(&mut book, bet, 1_583, 2);
    assert_eq!(book.run(cmd), Outcome::Done(Done::CashOut { bet, pending: false, balance: Money(1_583) }));
    let view = book.state.bet(bet).unwrap();
    assert_eq!((view.status, view.paid), (BetStatus::CashedOut, Money(1_583)));
    assert_eq!(book.state.market(MarketId(1)).unwrap().selections[0].liability, Money(0));
    book.settle(1, &[res(1, LegResult::Win)]);
    assert_eq!(book.balance(1), 1_583);
    // A lower offer is accepted too (a fresh bet at the same prices: fair 1000 × 3/3 = 1000p).
    book.open_funded(2, 1_000);
    book.market(2, &[(21, "2/1"), (22, "1/2")]);
    let second = book.single(2, 21, 1_000);
    let key = book.key();
    let done = book.run(Command::CashOut {
        account: AccountId(2),
        bet: second,
        value: Money(500),
        quoted_versions: vec![(SelectionId(21), 1)],
        key,
    });
    assert!(done.is_done());
    assert_eq!(book.balance(2), 500);
}

#[test]
fn cash_out_above_fair_value_minus_margin_is_refused() {
    // 1584p > 1583.33p.
    let (mut book, bet) = cash_out_book();
    let cmd = cash_out(&mut book, bet, 1_584, 2);
    book.refuse(cmd, ResultCode::CashOutValueTooHigh);
    assert_eq!(book.state.bet(bet).unwrap().status, BetStatus::Open);
}

#[test]
fn cash_out_quoted_on_an_old_price_version_is_refused() {
    // The quote names version 1 (4/1); the price is now version 2 (2/1).
    let (mut book, bet) = cash_out_book();
    let cmd = cash_out(&mut book, bet, 1_000, 1);
    book.refuse(cmd, ResultCode::CashOutQuoteStale);
}

#[test]
fn cash_out_is_refused_while_the_market_is_suspended() {
    let (mut book, bet) = cash_out_book();
    book.ok(Command::SuspendMarket { market: MarketId(1), reason: "goal".into(), actor: trader(), key: fresh_key() });
    let cmd = cash_out(&mut book, bet, 1_000, 2);
    book.refuse(cmd, ResultCode::MarketSuspended);
}

#[test]
fn cash_out_on_an_in_play_market_waits_for_the_bet_delay() {
    // 5 s delay. £10 at evens, price unchanged: fair 1000p, allowed 950p. The cash-out is
    // pending (balance still 0) until ResolvePending runs 5 s later and pays 950p.
    let mut book = Book::new();
    book.open_funded(1, 1_000);
    let rules = paddock_ledger::MarketRules { bet_delay_ms: 5_000, ..rules() };
    book.market_with(1, 1, &[(1, "evens"), (2, "evens")], rules);
    let bet = book.single(1, 1, 1_000);
    book.advance_ms(5_000);
    book.ok(Command::ResolvePending);
    let cmd = cash_out(&mut book, bet, 950, 1);
    assert_eq!(book.run(cmd), Outcome::Done(Done::CashOut { bet, pending: true, balance: Money(0) }));
    book.advance_ms(5_000);
    assert_eq!(book.ok(Command::ResolvePending), Done::Resolved { accepted: 1, rejected: 0 });
    assert_eq!(book.balance(1), 950);
    assert_eq!(book.state.bet(bet).unwrap().status, BetStatus::CashedOut);
}

// ---- odds-change policy ----

fn policy_bet(book: &mut Book, seen: &str, policy: OddsPolicy) -> Outcome {
    let mut p = book.request(1, &[1], BetKind::Single, 1_000);
    p.legs[0].odds = odds(seen);
    p.odds_policy = policy;
    book.run(Command::PlaceBet(p))
}

fn price_book(current: &str) -> Book {
    let mut book = Book::new();
    book.open_funded(1, 10_000);
    book.market(1, &[(1, "5/2"), (2, "evens")]);
    book.ok(Command::SetPrice {
        market: MarketId(1),
        selection: SelectionId(1),
        odds: odds(current),
        key: fresh_key(),
    });
    book
}

#[test]
fn odds_policy_exact_refuses_any_price_change() {
    // Seen 5/2, now 3/1 (better) or 2/1 (worse): both refused. Seen 3/1 when it is 3/1: accepted.
    let mut book = price_book("3/1");
    let before = book.state.book_hash();
    assert_eq!(policy_bet(&mut book, "5/2", OddsPolicy::Exact), Outcome::Rejected(ResultCode::OddsChanged));
    assert_eq!(book.state.book_hash(), before, "only the key's record of the refusal is kept");
    let mut book = price_book("2/1");
    assert_eq!(policy_bet(&mut book, "5/2", OddsPolicy::Exact), Outcome::Rejected(ResultCode::OddsChanged));
    let mut book = price_book("3/1");
    assert!(policy_bet(&mut book, "3/1", OddsPolicy::Exact).is_done());
}

#[test]
fn odds_policy_higher_accepts_an_equal_or_better_price_and_reports_it() {
    // Seen 5/2, now 3/1: accepted at 3/1 (4.0). Seen 5/2, now 5/2: accepted. Seen 5/2, now
    // 2/1: refused.
    let mut book = price_book("3/1");
    match policy_bet(&mut book, "5/2", OddsPolicy::Higher) {
        Outcome::Done(Done::BetAccepted { odds: accepted, .. }) => assert_eq!(accepted, vec![odds("3/1")]),
        other => panic!("{other:?}"),
    }
    let mut book = price_book("5/2");
    assert!(policy_bet(&mut book, "5/2", OddsPolicy::Higher).is_done());
    let mut book = price_book("2/1");
    assert_eq!(policy_bet(&mut book, "5/2", OddsPolicy::Higher), Outcome::Rejected(ResultCode::OddsChanged));
}

#[test]
fn odds_policy_any_accepts_a_worse_price_and_pays_at_it() {
    // Seen 5/2, now 2/1: accepted at 2/1; £10 wins 1000 × 3 = 3000p, not 3500p.
    let mut book = price_book("2/1");
    let outcome = policy_bet(&mut book, "5/2", OddsPolicy::Any);
    match &outcome {
        Outcome::Done(Done::BetAccepted { odds: accepted, .. }) => assert_eq!(accepted, &vec![odds("2/1")]),
        other => panic!("{other:?}"),
    }
    let bet = bet_id(&outcome);
    book.settle(1, &[res(1, LegResult::Win)]);
    assert_eq!(book.paid(bet), 3_000);
}

// ---- placement limits ----

#[test]
fn stake_must_lie_between_the_market_minimum_and_maximum() {
    // Minimum £1, maximum £100 of total stake: 99p and £100.01 refused, £1 and £100 accepted;
    // a £25.01-a-line Trixie (4 lines, £100.04) is over the maximum.
    let mut book = Book::new();
    book.open_funded(1, 100_000);
    let limits = paddock_ledger::MarketRules { stake_min: Money(100), stake_max: Money(10_000), ..rules() };
    for market in 1..=3 {
        book.market_with(market, market, &[(market, "2/1"), (market * 10, "2/1")], limits.clone());
    }
    let p = book.request(1, &[1], BetKind::Single, 99);
    book.refuse(Command::PlaceBet(p), ResultCode::StakeBelowMinimum);
    let p = book.request(1, &[1], BetKind::Single, 10_001);
    book.refuse(Command::PlaceBet(p), ResultCode::StakeAboveMaximum);
    let p = book.request(1, &[1, 2, 3], BetKind::Trixie, 2_501);
    book.refuse(Command::PlaceBet(p), ResultCode::StakeAboveMaximum);
    book.single(1, 1, 100);
    book.single(1, 1, 10_000);
    book.system(1, BetKind::Trixie, &[1, 2, 3], 2_500);
}

#[test]
fn stake_factor_scales_an_accounts_maximum_stake() {
    // Maximum £100 at factor 500‰ is £50 for this account: £50.01 refused, £50 accepted.
    let mut book = Book::new();
    book.open_funded(1, 100_000);
    let limits = paddock_ledger::MarketRules { stake_max: Money(10_000), ..rules() };
    book.market_with(1, 1, &[(1, "2/1"), (2, "2/1")], limits);
    book.ok(Command::SetStakeFactor { account: AccountId(1), factor_permille: 500, actor: trader(), key: fresh_key() });
    let p = book.request(1, &[1], BetKind::Single, 5_001);
    book.refuse(Command::PlaceBet(p), ResultCode::StakeAboveMaximum);
    book.single(1, 1, 5_000);
}

#[test]
fn max_payout_caps_the_return_of_one_bet() {
    // Maximum return £1000: £200 at 4/1 returns exactly 100000p (accepted); £200.01 would
    // return 100005p (refused).
    let mut book = Book::new();
    book.open_funded(1, 100_000);
    let limits = paddock_ledger::MarketRules { payout_max: Money(100_000), ..rules() };
    book.market_with(1, 1, &[(1, "4/1"), (2, "1/4")], limits);
    let p = book.request(1, &[1], BetKind::Single, 20_001);
    book.refuse(Command::PlaceBet(p), ResultCode::MaxPayoutExceeded);
    book.single(1, 1, 20_000);
}

#[test]
fn max_payout_is_checked_with_the_rounding_the_bet_will_be_paid_with() {
    // Rounding half-up, maximum return 252p: 101p at 3/2 returns 252.5p, paid as 253p, over
    // the maximum: refused. 100p at 3/2 returns exactly 250p: accepted.
    let mut book = Book::new();
    book.open_funded(1, 10_000);
    let config = BookConfig { rounding: RoundingRule::HalfUp, ..BookConfig::default() };
    book.ok(Command::SetConfig { config, actor: trader(), key: fresh_key() });
    let limits = paddock_ledger::MarketRules { payout_max: Money(252), ..rules() };
    book.market_with(1, 1, &[(1, "3/2"), (2, "1/2")], limits);
    let p = book.request(1, &[1], BetKind::Single, 101);
    book.refuse(Command::PlaceBet(p), ResultCode::MaxPayoutExceeded);
    let bet = book.single(1, 1, 100);
    book.settle(1, &[res(1, LegResult::Win)]);
    assert_eq!(book.paid(bet), 250);
}

#[test]
fn liability_limit_caps_the_books_loss_on_each_selection() {
    // Limit £100 per selection. £20 at 4/1 (liability 8000p) + £5 at 4/1 (2000p) = 10000p,
    // accepted; 1p more at 4/1 would add 4p: refused. Another selection has its own limit.
    // Settlement releases the liability.
    let mut book = Book::new();
    book.open_funded(1, 100_000);
    let limits = paddock_ledger::MarketRules { liability_max: Money(10_000), ..rules() };
    book.market_with(1, 1, &[(1, "4/1"), (2, "4/1")], limits);
    book.single(1, 1, 2_000);
    book.single(1, 1, 500);
    let p = book.request(1, &[1], BetKind::Single, 1);
    book.refuse(Command::PlaceBet(p), ResultCode::LiabilityLimitExceeded);
    book.single(1, 2, 2_500);
    let liability = |book: &Book| -> Vec<i64> {
        book.state.market(MarketId(1)).unwrap().selections.iter().map(|s| s.liability.0).collect()
    };
    assert_eq!(liability(&book), vec![10_000, 10_000]);
    book.settle(1, &[res(1, LegResult::Win)]);
    assert_eq!(liability(&book), vec![0, 0]);
}

// ---- in-play delay and past-posting ----

#[test]
fn in_play_bet_is_pending_until_its_delay_passes_then_accepted() {
    // 5 s delay. £10 is reserved at once (balance 0, exposure 1000p); at 4.999 s nothing is
    // decided; at 5 s the bet is accepted on the market as it stands.
    let mut book = Book::new();
    book.open_funded(1, 1_000);
    let rules = paddock_ledger::MarketRules { bet_delay_ms: 5_000, ..rules() };
    book.market_with(1, 1, &[(1, "2/1"), (2, "2/1")], rules);
    let placed_at = book.now();
    let outcome = book.bet(1, &[1], BetKind::Single, 1_000);
    let bet = bet_id(&outcome);
    assert_eq!(outcome, Outcome::Done(Done::BetPending { bet, stake: Money(1_000), balance: Money(0) }));
    assert_eq!(book.state.account(AccountId(1)).unwrap().exposure, Money(1_000));
    assert_eq!(book.state.bet(bet).unwrap().status, BetStatus::Pending);
    book.set_time(placed_at.plus_ms(4_999));
    assert_eq!(book.ok(Command::ResolvePending), Done::Resolved { accepted: 0, rejected: 0 });
    assert_eq!(book.state.bet(bet).unwrap().status, BetStatus::Pending);
    book.set_time(placed_at.plus_ms(5_000));
    assert_eq!(book.ok(Command::ResolvePending), Done::Resolved { accepted: 1, rejected: 0 });
    let view = book.state.bet(bet).unwrap();
    assert_eq!((view.status, view.placed_at), (BetStatus::Open, placed_at.plus_ms(5_000)));
    book.settle(1, &[res(1, LegResult::Win)]);
    assert_eq!(book.balance(1), 3_000);
}

#[test]
fn in_play_bet_is_rejected_and_refunded_if_the_market_is_suspended_during_the_delay() {
    let mut book = Book::new();
    book.open_funded(1, 1_000);
    let rules = paddock_ledger::MarketRules { bet_delay_ms: 5_000, ..rules() };
    book.market_with(1, 1, &[(1, "2/1"), (2, "2/1")], rules);
    let placed_at = book.now();
    let bet = book.single(1, 1, 1_000);
    book.ok(Command::SuspendMarket { market: MarketId(1), reason: "goal".into(), actor: trader(), key: fresh_key() });
    book.set_time(placed_at.plus_ms(5_000));
    assert_eq!(book.ok(Command::ResolvePending), Done::Resolved { accepted: 0, rejected: 1 });
    assert_eq!(book.state.bet(bet).unwrap().status, BetStatus::Rejected(ResultCode::MarketSuspended));
    let view = book.state.account(AccountId(1)).unwrap();
    assert_eq!((view.balance, view.exposure), (Money(1_000), Money(0)));
    assert_eq!(book.state.pending_count(), 0);
}

#[test]
fn in_play_bet_is_rejected_if_the_market_was_suspended_and_reopened_during_the_delay() {
    // A goal at second 2 suspends the market, which reopens at second 3 with new prices. The
    // bet struck at second 0 was priced before the goal: it must not stand (as Betfair lapses
    // bets caught by an in-play suspension), even though the market is open when the delay ends.
    let mut book = Book::new();
    book.open_funded(1, 1_000);
    let rules = paddock_ledger::MarketRules { bet_delay_ms: 5_000, ..rules() };
    book.market_with(1, 1, &[(1, "2/1"), (2, "2/1")], rules);
    let placed_at = book.now();
    let mut p = book.request(1, &[1], BetKind::Single, 1_000);
    p.odds_policy = OddsPolicy::Any;
    let bet = bet_id(&book.run(Command::PlaceBet(p)));
    book.ok(Command::SuspendMarket { market: MarketId(1), reason: "goal".into(), actor: trader(), key: fresh_key() });
    book.ok(Command::ResumeMarket { market: MarketId(1), actor: trader(), key: fresh_key() });
    book.set_time(placed_at.plus_ms(5_000));
    assert_eq!(book.ok(Command::ResolvePending), Done::Resolved { accepted: 0, rejected: 1 });
    assert_eq!(book.state.bet(bet).unwrap().status, BetStatus::Rejected(ResultCode::MarketSuspended));
    assert_eq!(book.balance(1), 1_000);
}

#[test]
fn in_play_bet_is_judged_on_the_price_when_its_delay_ends() {
    // Both players saw 2/1; the price drifts to 5/2 during the 5 s delay. Exact: refused and
    // refunded. Any: accepted at 5/2, so £10 wins 1000 × 7/2 = 3500p.
    let mut book = Book::new();
    book.open_funded(1, 1_000);
    book.open_funded(2, 1_000);
    let rules = paddock_ledger::MarketRules { bet_delay_ms: 5_000, ..rules() };
    book.market_with(1, 1, &[(1, "2/1"), (2, "2/1")], rules);
    let exact = book.single(1, 1, 1_000);
    let mut p = book.request(2, &[1], BetKind::Single, 1_000);
    p.odds_policy = OddsPolicy::Any;
    let any = bet_id(&book.run(Command::PlaceBet(p)));
    book.ok(Command::SetPrice { market: MarketId(1), selection: SelectionId(1), odds: odds("5/2"), key: fresh_key() });
    book.advance_ms(5_000);
    assert_eq!(book.ok(Command::ResolvePending), Done::Resolved { accepted: 1, rejected: 1 });
    assert_eq!(book.state.bet(exact).unwrap().status, BetStatus::Rejected(ResultCode::OddsChanged));
    assert_eq!(book.balance(1), 1_000);
    assert_eq!(book.state.bet(any).unwrap().legs[0].2, odds("5/2"));
    book.settle(1, &[res(1, LegResult::Win)]);
    assert_eq!(book.paid(any), 3_500);
}

#[test]
fn no_bet_is_accepted_after_suspension_or_close() {
    let mut book = Book::new();
    book.open_funded(1, 10_000);
    book.market(1, &[(1, "2/1"), (2, "2/1")]);
    book.ok(Command::SuspendMarket {
        market: MarketId(1),
        reason: "red card".into(),
        actor: trader(),
        key: fresh_key(),
    });
    let p = book.request(1, &[1], BetKind::Single, 1_000);
    book.refuse(Command::PlaceBet(p), ResultCode::MarketSuspended);
    book.ok(Command::ResumeMarket { market: MarketId(1), actor: trader(), key: fresh_key() });
    book.single(1, 1, 1_000);
    book.ok(Command::CloseMarket { market: MarketId(1), actor: trader(), key: fresh_key() });
    let p = book.request(1, &[1], BetKind::Single, 1_000);
    book.refuse(Command::PlaceBet(p), ResultCode::MarketClosed);
}

#[test]
fn no_bet_is_accepted_from_closes_at_even_if_nobody_closed_the_market() {
    // closes_at = T0 + 1 h. A bet 1 ms before is accepted; at closes_at it is refused although
    // the market's status still says open.
    let mut book = Book::new();
    book.open_funded(1, 10_000);
    let closes_at = TimestampMs(T0_MS + 3_600_000);
    let rules = paddock_ledger::MarketRules { closes_at: Some(closes_at), ..rules() };
    book.market_with(1, 1, &[(1, "2/1"), (2, "2/1")], rules);
    book.set_time(TimestampMs(closes_at.0 - 1));
    book.single(1, 1, 1_000);
    let p = book.request(1, &[1], BetKind::Single, 1_000);
    book.refuse(Command::PlaceBet(p), ResultCode::MarketClosed);
    assert_eq!(book.state.market(MarketId(1)).unwrap().status, MarketStatus::Open);
}

// ---- responsible gambling ----

fn set_limit(book: &mut Book, kind: LimitKind, window: LimitWindow, amount: Option<i64>) {
    book.ok(Command::SetLimit { account: AccountId(1), kind, window, amount: amount.map(Money), key: fresh_key() });
}

#[test]
fn deposit_limits_apply_over_24h_7d_and_30d_windows() {
    // For each window: a £100 limit, £100 deposited at t. 1p more is refused until t + window
    // (still refused 1 ms before), and accepted from t + window, when the £100 has left it.
    for window in LimitWindow::ALL {
        let mut book = Book::new();
        book.open_funded(1, 0);
        set_limit(&mut book, LimitKind::Deposit, window, Some(10_000));
        let t = book.now();
        assert!(book.deposit(1, 10_000).is_done());
        let cmd = book.deposit_cmd(1, 1);
        book.refuse(cmd, ResultCode::DepositLimitExceeded);
        book.set_time(t.plus_ms(window.length_ms() - 1));
        let cmd = book.deposit_cmd(1, 1);
        book.refuse(cmd, ResultCode::DepositLimitExceeded);
        book.set_time(t.plus_ms(window.length_ms()));
        assert!(book.deposit(1, 1).is_done(), "{window:?}");
    }
    // The lowest limit wins: £100 a day but £50 a week allows only £50.
    let mut book = Book::new();
    book.open_funded(1, 0);
    set_limit(&mut book, LimitKind::Deposit, LimitWindow::Day, Some(10_000));
    set_limit(&mut book, LimitKind::Deposit, LimitWindow::Week, Some(5_000));
    let cmd = book.deposit_cmd(1, 5_001);
    book.refuse(cmd, ResultCode::DepositLimitExceeded);
    assert!(book.deposit(1, 5_000).is_done());
}

#[test]
fn loss_limit_counts_stakes_minus_returns() {
    // £50 a day. Stakes £30 + £20 = £50 of possible loss: 1p more is refused. £30 on A at 2/1
    // wins 9000p: losses are now 5000 − 9000 = −4000p, so a £90 stake fits exactly (−4000 +
    // 9000 = 5000p) and 1p more does not.
    let mut book = Book::new();
    book.open_funded(1, 20_000);
    set_limit(&mut book, LimitKind::Loss, LimitWindow::Day, Some(5_000));
    book.market(1, &[(1, "2/1"), (2, "2/1")]);
    book.market(2, &[(21, "2/1"), (22, "2/1")]);
    book.single(1, 1, 3_000);
    book.single(1, 21, 2_000);
    let p = book.request(1, &[21], BetKind::Single, 1);
    book.refuse(Command::PlaceBet(p), ResultCode::LossLimitReached);
    book.settle(1, &[res(1, LegResult::Win)]);
    book.single(1, 21, 9_000);
    let p = book.request(1, &[21], BetKind::Single, 1);
    book.refuse(Command::PlaceBet(p), ResultCode::LossLimitReached);
}

#[test]
fn limit_decrease_applies_at_once() {
    // Weekly deposit limit £300, £100 deposited; lowered to £150: £50.01 more is refused at
    // once, £50 accepted.
    let mut book = Book::new();
    book.open_funded(1, 0);
    set_limit(&mut book, LimitKind::Deposit, LimitWindow::Week, Some(30_000));
    assert!(book.deposit(1, 10_000).is_done());
    set_limit(&mut book, LimitKind::Deposit, LimitWindow::Week, Some(15_000));
    let cmd = book.deposit_cmd(1, 5_001);
    book.refuse(cmd, ResultCode::DepositLimitExceeded);
    assert!(book.deposit(1, 5_000).is_done());
}

#[test]
fn limit_increase_applies_only_after_the_24h_cooling_off() {
    // Weekly deposit limit £100, fully used; raised to £300 at t. Until t + 24 h the old £100
    // applies (1p refused, also at t + 24 h − 1 ms); from t + 24 h £200 more is accepted. The
    // audit trail records when the increase takes effect. Removing a limit is an increase too.
    let mut book = Book::new();
    book.open_funded(1, 0);
    assert_eq!(book.state.config().limit_cooling_off_ms, DAY_MS);
    set_limit(&mut book, LimitKind::Deposit, LimitWindow::Week, Some(10_000));
    assert!(book.deposit(1, 10_000).is_done());
    let t = book.now();
    set_limit(&mut book, LimitKind::Deposit, LimitWindow::Week, Some(30_000));
    let cmd = book.deposit_cmd(1, 1);
    book.refuse(cmd, ResultCode::DepositLimitExceeded);
    book.set_time(t.plus_ms(DAY_MS - 1));
    let cmd = book.deposit_cmd(1, 1);
    book.refuse(cmd, ResultCode::DepositLimitExceeded);
    book.set_time(t.plus_ms(DAY_MS));
    assert!(book.deposit(1, 20_000).is_done());
    let cmd = book.deposit_cmd(1, 1);
    book.refuse(cmd, ResultCode::DepositLimitExceeded);
    let scheduled = book.state.audit().records().iter().any(|r| {
        matches!(r.event, AuditEvent::LimitChanged { amount: Some(Money(30_000)), effective_at, .. }
            if effective_at == t.plus_ms(DAY_MS))
    });
    assert!(scheduled, "the increase and its effective time are in the audit trail");

    let t = book.now();
    set_limit(&mut book, LimitKind::Deposit, LimitWindow::Week, None);
    let cmd = book.deposit_cmd(1, 1);
    book.refuse(cmd, ResultCode::DepositLimitExceeded);
    book.set_time(t.plus_ms(DAY_MS));
    assert!(book.deposit(1, 1_000_000).is_done());
}

#[test]
fn self_exclusion_of_at_least_182_days_refuses_bets_and_deposits() {
    // 181 days is too short. 182 days from t: deposits and bets refused until t + 182 days
    // (still refused 1 ms before); the player can still withdraw what is theirs.
    let mut book = Book::new();
    book.open_funded(1, 5_000);
    book.market(1, &[(1, "2/1"), (2, "2/1")]);
    book.refuse(
        Command::Exclude {
            account: AccountId(1),
            kind: ExclusionKind::SelfExclusion,
            duration_days: 181,
            key: fresh_key(),
        },
        ResultCode::LimitInvalid,
    );
    let t = book.now();
    book.ok(Command::Exclude {
        account: AccountId(1),
        kind: ExclusionKind::SelfExclusion,
        duration_days: 182,
        key: fresh_key(),
    });
    let until = t.plus_ms(182 * DAY_MS);
    assert_eq!(book.state.account(AccountId(1)).unwrap().excluded_until, Some(until));
    let cmd = book.deposit_cmd(1, 1_000);
    book.refuse(cmd, ResultCode::SelfExcluded);
    let p = book.request(1, &[1], BetKind::Single, 1_000);
    book.refuse(Command::PlaceBet(p), ResultCode::SelfExcluded);
    assert!(book.withdraw(1, 5_000).is_done());
    book.set_time(TimestampMs(until.0 - 1));
    let cmd = book.deposit_cmd(1, 1_000);
    book.refuse(cmd, ResultCode::SelfExcluded);
}

#[test]
fn time_out_refuses_bets_and_deposits_until_it_ends() {
    // One-day time-out from t: refused until t + 24 h; accepted from then. Six weeks + 1 day
    // (43 days) is longer than a time-out may be.
    let mut book = Book::new();
    book.open_funded(1, 5_000);
    book.market(1, &[(1, "2/1"), (2, "2/1")]);
    book.refuse(
        Command::Exclude { account: AccountId(1), kind: ExclusionKind::TimeOut, duration_days: 43, key: fresh_key() },
        ResultCode::LimitInvalid,
    );
    let t = book.now();
    book.ok(Command::Exclude {
        account: AccountId(1),
        kind: ExclusionKind::TimeOut,
        duration_days: 1,
        key: fresh_key(),
    });
    let cmd = book.deposit_cmd(1, 1_000);
    book.refuse(cmd, ResultCode::TimedOut);
    let p = book.request(1, &[1], BetKind::Single, 1_000);
    book.refuse(Command::PlaceBet(p), ResultCode::TimedOut);
    book.set_time(t.plus_ms(DAY_MS));
    assert!(book.deposit(1, 1_000).is_done());
    book.single(1, 1, 1_000);
}

// ---- idempotency ----

#[test]
fn retry_with_the_same_key_and_body_returns_the_original_outcome_and_moves_money_once() {
    // Deposit £50 twice with one key: one deposit, both answers say balance 5000p. Bet £10
    // twice with one key: one bet, one stake taken (balance 4000p). A refusal is remembered too:
    // the key's first answer is final, so a new attempt once the cause is gone takes a new key.
    let mut book = Book::new();
    book.open_funded(1, 0);
    book.market(1, &[(1, "2/1"), (2, "2/1")]);
    let deposit = book.deposit_cmd(1, 5_000);
    let first = book.run(deposit.clone());
    let hash = book.state.state_hash();
    assert_eq!(book.run(deposit), first);
    assert_eq!(first, Outcome::Done(Done::Transferred { account: AccountId(1), balance: Money(5_000) }));
    assert_eq!(book.state.state_hash(), hash);

    let bet = Command::PlaceBet(book.request(1, &[1], BetKind::Single, 1_000));
    let first = book.run(bet.clone());
    assert!(first.is_done());
    assert_eq!(book.run(bet), first);
    assert_eq!((book.state.bet_count(), book.balance(1)), (1, 4_000));

    let big = Command::PlaceBet(book.request(1, &[1], BetKind::Single, 10_000));
    assert_eq!(book.run(big.clone()), Outcome::Rejected(ResultCode::InsufficientFunds));
    assert!(book.deposit(1, 6_000).is_done());
    let hash = book.state.state_hash();
    assert_eq!(book.run(big), Outcome::Rejected(ResultCode::InsufficientFunds), "the retry gets the first answer");
    assert_eq!(book.state.state_hash(), hash, "and changes nothing");
    let again = Command::PlaceBet(book.request(1, &[1], BetKind::Single, 10_000));
    assert!(book.run(again).is_done(), "a new attempt, with a new key, is judged anew");
    assert_eq!(book.balance(1), 0);
}

#[test]
fn same_key_with_another_body_is_idempotency_key_reused() {
    let mut book = Book::new();
    book.open_funded(1, 0);
    let key = book.key();
    let deposit = |amount| Command::Deposit { account: AccountId(1), amount: Money(amount), key: key.clone() };
    assert!(book.run(deposit(5_000)).is_done());
    book.refuse(deposit(5_001), ResultCode::IdempotencyKeyReused);
    book.refuse(
        Command::Withdraw { account: AccountId(1), amount: Money(5_000), key: key.clone() },
        ResultCode::IdempotencyKeyReused,
    );
    assert_eq!(book.balance(1), 5_000);
}

// ---- audit trail ----

#[test]
fn audit_trail_records_operator_decisions_with_the_actor_and_verifies() {
    let mut book = Book::new();
    book.open_funded(1, 1_000);
    book.market(1, &[(1, "2/1"), (2, "2/1")]);
    book.market(2, &[(21, "2/1"), (22, "2/1")]);
    book.single(1, 1, 1_000);
    book.ok(Command::SuspendMarket {
        market: MarketId(1),
        reason: "VAR check".into(),
        actor: trader(),
        key: fresh_key(),
    });
    book.ok(Command::ResumeMarket { market: MarketId(1), actor: trader(), key: fresh_key() });
    book.settle(1, &[res(1, LegResult::Win)]);
    let carol = Actor("trader:carol".into());
    book.ok(Command::VoidMarket {
        market: MarketId(2),
        reason: "abandoned".into(),
        actor: carol.clone(),
        key: fresh_key(),
    });
    set_limit(&mut book, LimitKind::Deposit, LimitWindow::Day, Some(10_000));

    let records = book.state.audit().records();
    let has =
        |actor: &Actor, pred: &dyn Fn(&AuditEvent) -> bool| records.iter().any(|r| &r.actor == actor && pred(&r.event));
    assert!(has(&trader(), &|e| matches!(e,
        AuditEvent::MarketStatusChanged { market: MarketId(1), to: MarketStatus::Suspended, reason, .. } if reason == "VAR check")));
    assert!(has(&settler(), &|e| matches!(
        e,
        AuditEvent::MarketSettled {
            market: MarketId(1),
            result_version: 1,
            bets_settled: 1,
            paid_net: Money(2_000),
            ..
        }
    )));
    assert!(has(&carol, &|e| matches!(e,
        AuditEvent::MarketStatusChanged { market: MarketId(2), to: MarketStatus::Voided, reason, .. } if reason == "abandoned")));
    assert!(has(&Actor("account:1".into()), &|e| matches!(
        e,
        AuditEvent::LimitChanged {
            account: AccountId(1),
            kind: LimitKind::Deposit,
            window: LimitWindow::Day,
            amount: Some(Money(10_000)),
            ..
        }
    )));
    // Each record carries the log index of the command that caused it, in order.
    assert!(records.windows(2).all(|w| w[0].log_index <= w[1].log_index && w[1].seq == w[0].seq + 1));
    assert_eq!(book.state.audit().verify(), Ok(()));
}

#[test]
fn tampered_copy_of_the_audit_trail_fails_verification() {
    let mut book = Book::new();
    book.open_funded(1, 1_000);
    book.market(1, &[(1, "2/1"), (2, "2/1")]);
    book.single(1, 1, 1_000);
    book.settle(1, &[res(1, LegResult::Win)]);
    let records = book.state.audit().records().to_vec();
    assert_eq!(verify_records(&records), Ok(()));
    let settled = records.iter().position(|r| matches!(r.event, AuditEvent::MarketSettled { .. })).unwrap();

    let mut edited = records.clone();
    if let AuditEvent::MarketSettled { paid_net, .. } = &mut edited[settled].event {
        *paid_net = Money(0);
    }
    assert_eq!(verify_records(&edited), Err(settled as u64));

    let mut reattributed = records.clone();
    reattributed[settled].actor = Actor("someone:else".into());
    assert_eq!(verify_records(&reattributed), Err(settled as u64));

    let mut removed = records.clone();
    removed.remove(1);
    assert_eq!(verify_records(&removed), Err(1));
    assert_eq!(book.state.audit().verify(), Ok(()), "the original is untouched");
}
