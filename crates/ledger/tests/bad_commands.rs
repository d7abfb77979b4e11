//! Refusals: every bad command answers its result code and leaves the state byte-identical
//! (`state_hash()` unchanged — `Book::refuse` checks both). A refusal that changed anything
//! would be a money leak waiting for a retry.

mod support;

use paddock_ledger::{
    AccountId, Actor, BetKind, BookConfig, Command, Currency, EachWayTerms, EventId, ExclusionKind, IdempotencyKey,
    LegResult, LimitKind, LimitWindow, MarketId, MarketRules, Money, NewSelection, Odds, OddsError, OddsPolicy,
    PlaceBet, ResultCode, SelectionId, TimestampMs, DAY_MS,
};
use support::*;

/// Account 1 holds £100. Event 1 has markets 1 (selections 1 at 2/1, 2 at 3/1) and 2 (3, 4 at
/// evens); markets 3, 4 and 5 are on events of their own (selections 5/6, 7/8, 9/10).
/// Account 2 holds £100 and has £10 on selection 5 (bet 1).
fn book() -> Book {
    let mut book = Book::new();
    book.open_funded(1, 10_000);
    book.open_funded(2, 10_000);
    book.market_with(1, 1, &[(1, "2/1"), (2, "3/1")], rules());
    book.market_with(1, 2, &[(3, "evens"), (4, "evens")], rules());
    book.market(3, &[(5, "5/2"), (6, "1/2")]);
    book.market(4, &[(7, "4/1"), (8, "1/4")]);
    book.market(5, &[(9, "6/1"), (10, "1/6")]);
    book.single(2, 5, 1_000);
    book
}

fn place(p: PlaceBet) -> Command {
    Command::PlaceBet(p)
}

fn cash_out(book: &mut Book, account: u64, bet: u64, value: i64, versions: Vec<(SelectionId, u64)>) -> Command {
    let key = book.key();
    Command::CashOut {
        account: AccountId(account),
        bet: paddock_ledger::BetId(bet),
        value: Money(value),
        quoted_versions: versions,
        key,
    }
}

fn selections(ids: std::ops::RangeInclusive<u64>) -> Vec<NewSelection> {
    ids.map(|id| NewSelection { selection: SelectionId(id), name: format!("Runner {id}"), odds: odds("2/1") }).collect()
}

fn create_market(
    market: u64,
    event: u64,
    currency: Currency,
    selections: Vec<NewSelection>,
    rules: MarketRules,
) -> Command {
    Command::CreateMarket {
        market: MarketId(market),
        event: EventId(event),
        name: "Winner".into(),
        currency,
        selections,
        rules,
        actor: trader(),
        key: fresh_key(),
    }
}

#[test]
fn unknown_account_market_selection_event_and_bet_ids_are_refused() {
    let mut book = book();
    let cmd = book.deposit_cmd(99, 1_000);
    book.refuse(cmd, ResultCode::AccountNotFound);
    let key = book.key();
    book.refuse(Command::Withdraw { account: AccountId(99), amount: Money(1), key }, ResultCode::AccountNotFound);
    book.refuse(
        Command::SetLimit {
            account: AccountId(99),
            kind: LimitKind::Loss,
            window: LimitWindow::Day,
            amount: Some(Money(1)),
            key: fresh_key(),
        },
        ResultCode::AccountNotFound,
    );
    book.refuse(
        Command::Exclude { account: AccountId(99), kind: ExclusionKind::TimeOut, duration_days: 1, key: fresh_key() },
        ResultCode::AccountNotFound,
    );
    book.refuse(
        Command::SetStakeFactor { account: AccountId(99), factor_permille: 500, actor: trader(), key: fresh_key() },
        ResultCode::AccountNotFound,
    );
    let mut p = book.request(1, &[1], BetKind::Single, 100);
    p.account = AccountId(99);
    book.refuse(place(p), ResultCode::AccountNotFound);

    let mut p = book.request(1, &[1], BetKind::Single, 100);
    p.legs[0].market = MarketId(99);
    book.refuse(place(p), ResultCode::MarketNotFound);
    let mut p = book.request(1, &[1], BetKind::Single, 100);
    p.legs[0].selection = SelectionId(99);
    book.refuse(place(p), ResultCode::SelectionNotFound);
    let mut p = book.request(1, &[1], BetKind::Single, 100);
    p.legs[0].selection = SelectionId(5); // exists, but in market 3
    book.refuse(place(p), ResultCode::SelectionNotFound);

    book.refuse(
        Command::SetPrice { market: MarketId(99), selection: SelectionId(1), odds: odds("2/1"), key: fresh_key() },
        ResultCode::MarketNotFound,
    );
    book.refuse(
        Command::SetPrice { market: MarketId(1), selection: SelectionId(99), odds: odds("2/1"), key: fresh_key() },
        ResultCode::SelectionNotFound,
    );
    book.refuse(
        Command::SuspendMarket { market: MarketId(99), reason: String::new(), actor: trader(), key: fresh_key() },
        ResultCode::MarketNotFound,
    );
    book.refuse(
        Command::ResumeMarket { market: MarketId(99), actor: trader(), key: fresh_key() },
        ResultCode::MarketNotFound,
    );
    book.refuse(
        Command::CloseMarket { market: MarketId(99), actor: trader(), key: fresh_key() },
        ResultCode::MarketNotFound,
    );
    book.refuse(
        Command::SettleMarket { market: MarketId(99), results: vec![], actor: settler(), key: fresh_key() },
        ResultCode::MarketNotFound,
    );
    book.refuse(
        Command::ResettleMarket {
            market: MarketId(99),
            results: vec![],
            reason: "x".into(),
            actor: settler(),
            key: fresh_key(),
        },
        ResultCode::MarketNotFound,
    );
    book.refuse(
        Command::VoidMarket { market: MarketId(99), reason: "x".into(), actor: trader(), key: fresh_key() },
        ResultCode::MarketNotFound,
    );
    book.refuse(
        Command::WithdrawSelection {
            market: MarketId(1),
            selection: SelectionId(99),
            deduction_pence: 0,
            actor: trader(),
            key: fresh_key(),
        },
        ResultCode::SelectionNotFound,
    );
    book.refuse(
        Command::SettleMarket {
            market: MarketId(1),
            results: vec![res(99, LegResult::Win)],
            actor: settler(),
            key: fresh_key(),
        },
        ResultCode::ResultsInvalid,
    );
    book.refuse(
        Command::SettleMarket {
            market: MarketId(1),
            results: vec![res(5, LegResult::Win)],
            actor: settler(),
            key: fresh_key(),
        },
        ResultCode::ResultsInvalid,
    );
    book.refuse(create_market(99, 99, gbp(), selections(901..=902), rules()), ResultCode::EventNotFound);
    let cmd = cash_out(&mut book, 2, 99, 100, vec![]);
    book.refuse(cmd, ResultCode::BetNotFound);
    let cmd = cash_out(&mut book, 99, 1, 100, vec![(SelectionId(5), 1)]);
    book.refuse(cmd, ResultCode::AccountNotFound);
}

#[test]
fn zero_and_negative_stakes_and_amounts_are_refused() {
    let mut book = book();
    for amount in [0, -1, i64::MIN] {
        let cmd = book.deposit_cmd(1, amount);
        book.refuse(cmd, ResultCode::AmountMustBePositive);
        let key = book.key();
        book.refuse(
            Command::Withdraw { account: AccountId(1), amount: Money(amount), key },
            ResultCode::AmountMustBePositive,
        );
        let p = book.request(1, &[1], BetKind::Single, amount);
        book.refuse(place(p), ResultCode::AmountMustBePositive);
        let cmd = cash_out(&mut book, 2, 1, amount, vec![(SelectionId(5), 1)]);
        book.refuse(cmd, ResultCode::AmountMustBePositive);
        book.refuse(
            Command::SetLimit {
                account: AccountId(1),
                kind: LimitKind::Deposit,
                window: LimitWindow::Day,
                amount: Some(Money(amount)),
                key: fresh_key(),
            },
            ResultCode::LimitInvalid,
        );
    }
}

#[test]
fn overflowing_amounts_are_refused() {
    let mut book = book();
    // i64::MAX more on a wallet that already holds £100 would wrap.
    let cmd = book.deposit_cmd(1, i64::MAX);
    book.refuse(cmd, ResultCode::AmountOverflow);
    // A Lucky 15 strikes 15 lines: 15 × (i64::MAX / 10) does not fit.
    let p = book.request(1, &[1, 5, 7, 9], BetKind::Lucky15, i64::MAX / 10);
    book.refuse(place(p), ResultCode::AmountOverflow);
    // Each-way doubles the stake: 2 × (i64::MAX / 2 + 1) does not fit.
    let terms = Some(EachWayTerms { fraction_num: 1, fraction_den: 4, places: 3 });
    book.market_with(6, 6, &[(11, "8/1"), (12, "2/1")], MarketRules { each_way: terms, ..rules() });
    let mut p = book.request(1, &[11], BetKind::Single, i64::MAX / 2 + 1);
    p.each_way = true;
    book.refuse(place(p), ResultCode::AmountOverflow);
    // A huge stake the wallet can cover is still above the market maximum (£10,000,000).
    assert!(book.deposit(1, 2_000_000_000).is_done());
    let p = book.request(1, &[1], BetKind::Single, 1_000_000_001);
    book.refuse(place(p), ResultCode::StakeAboveMaximum);
}

#[test]
fn odds_out_of_range_cannot_be_made() {
    // The book offers decimal prices 1.01 ..= 1001 with a denominator of at most 10000.
    for (num, den) in [(1, 1), (100, 100), (100, 101), (1002, 1), (3, 0), (20_001, 10_001), (0, 5)] {
        assert_eq!(Odds::new(num, den), Err(OddsError::OutOfRange), "{num}/{den}");
    }
    assert!(Odds::new(101, 100).is_ok());
    assert!(Odds::new(1001, 1).is_ok());
    for text in ["1.00", "1001.01", "0/1", "1/0", "1001/1", "+99", "-99", "0.5"] {
        assert_eq!(Odds::parse(text), Err(OddsError::OutOfRange), "{text}");
    }
    for text in ["", "abc", "2.12345", "5/x", "1.2.3", "+", "2,5"] {
        assert!(matches!(Odds::parse(text), Err(OddsError::Unreadable(_))), "{text}");
    }
}

#[test]
fn invalid_odds_decoded_from_a_client_are_refused() {
    // `Odds::new` cannot make 1/1 or an unreduced 4/2, but a decoder can: apply must check.
    let decode = |num: u32, den: u32| -> Odds {
        postcard::from_bytes(&postcard::to_stdvec(&(num, den)).unwrap()).expect("two varints decode as Odds")
    };
    for bad in [decode(1, 1), decode(4, 2), decode(5, 0)] {
        assert!(!bad.is_valid());
        let mut book = book();
        book.refuse(
            Command::SetPrice { market: MarketId(1), selection: SelectionId(1), odds: bad, key: fresh_key() },
            ResultCode::OddsInvalid,
        );
        let mut p = book.request(1, &[1], BetKind::Single, 100);
        p.legs[0].odds = bad;
        p.odds_policy = OddsPolicy::Any;
        book.refuse(place(p), ResultCode::OddsInvalid);
        let mut sels = selections(901..=902);
        sels[1].odds = bad;
        book.refuse(create_market(99, 1, gbp(), sels, rules()), ResultCode::OddsInvalid);
    }
}

#[test]
fn changed_price_is_refused_under_the_exact_policy() {
    let mut book = book();
    let p = book.request(1, &[1], BetKind::Single, 1_000); // saw 2/1
    book.ok(Command::SetPrice { market: MarketId(1), selection: SelectionId(1), odds: odds("9/4"), key: fresh_key() });
    book.refuse(place(p.clone()), ResultCode::OddsChanged);
    // Another attempt is another key: the first key's refusal is its final answer.
    let mut worse = p;
    worse.key = fresh_key();
    worse.legs[0].odds = odds("5/2");
    worse.odds_policy = OddsPolicy::Higher;
    book.refuse(place(worse), ResultCode::OddsChanged);
}

#[test]
fn more_than_20_legs_is_too_many() {
    let mut book = Book::new();
    book.open_funded(1, 10_000);
    for i in 1..=21 {
        book.market(100 + i, &[(1000 + i, "evens"), (2000 + i, "evens")]);
    }
    let legs: Vec<u64> = (1001..=1021).collect();
    let p = book.request(1, &legs, BetKind::Accumulator, 100);
    book.refuse(place(p), ResultCode::TooManyLegs);
    let p = book.request(1, &legs, BetKind::KOfN { k: 2 }, 1);
    book.refuse(place(p), ResultCode::TooManyLegs);
    // Twenty legs is the cap, not over it: 100p × 2^20 = 104857600p potential return.
    book.accumulator(1, &legs[..20], 100);
}

#[test]
fn legs_on_one_event_cannot_be_combined() {
    let mut book = book();
    // Markets 1 and 2 are both on event 1.
    let p = book.request(1, &[1, 3], BetKind::Accumulator, 100);
    book.refuse(place(p), ResultCode::LegsSameEvent);
    let p = book.request(1, &[1, 2], BetKind::Accumulator, 100);
    book.refuse(place(p), ResultCode::LegsSameEvent);
    let p = book.request(1, &[5, 1, 3], BetKind::Trixie, 100);
    book.refuse(place(p), ResultCode::LegsSameEvent);
}

#[test]
fn closed_suspended_settled_and_voided_markets_refuse_bets() {
    let mut book = book();
    book.ok(Command::SuspendMarket { market: MarketId(1), reason: "goal".into(), actor: trader(), key: fresh_key() });
    let p = book.request(1, &[1], BetKind::Single, 100);
    book.refuse(place(p), ResultCode::MarketSuspended);
    // An accumulator with a suspended leg is refused too.
    let p = book.request(1, &[7, 1], BetKind::Accumulator, 100);
    book.refuse(place(p), ResultCode::MarketSuspended);
    book.ok(Command::CloseMarket { market: MarketId(3), actor: trader(), key: fresh_key() });
    let p = book.request(1, &[5], BetKind::Single, 100);
    book.refuse(place(p), ResultCode::MarketClosed);
    book.settle(4, &[res(7, LegResult::Win)]);
    let p = book.request(1, &[8], BetKind::Single, 100);
    book.refuse(place(p), ResultCode::MarketNotOpen);
    book.ok(Command::VoidMarket { market: MarketId(5), reason: "abandoned".into(), actor: trader(), key: fresh_key() });
    let p = book.request(1, &[9], BetKind::Single, 100);
    book.refuse(place(p), ResultCode::MarketVoided);
    book.ok(Command::WithdrawSelection {
        market: MarketId(2),
        selection: SelectionId(3),
        deduction_pence: 45,
        actor: trader(),
        key: fresh_key(),
    });
    let p = book.request(1, &[3], BetKind::Single, 100);
    book.refuse(place(p), ResultCode::SelectionWithdrawn);
}

#[test]
fn insufficient_funds_are_refused() {
    let mut book = book();
    let p = book.request(1, &[1], BetKind::Single, 10_001);
    book.refuse(place(p), ResultCode::InsufficientFunds);
    // A Trixie at £25.01 a line costs £100.04.
    let p = book.request(1, &[1, 5, 7], BetKind::Trixie, 2_501);
    book.refuse(place(p), ResultCode::InsufficientFunds);
    let key = book.key();
    book.refuse(Command::Withdraw { account: AccountId(1), amount: Money(10_001), key }, ResultCode::InsufficientFunds);
    // Account 2 has £10 of its £100 on an open bet: only £90 can be withdrawn.
    let key = book.key();
    book.refuse(Command::Withdraw { account: AccountId(2), amount: Money(9_001), key }, ResultCode::InsufficientFunds);
}

#[test]
fn invalid_idempotency_keys_are_refused() {
    let mut book = book();
    let longest = "k".repeat(64);
    for bad in [String::new(), "k".repeat(65), "has space".into(), "tab\there".into(), "naïve".into()] {
        let key = IdempotencyKey(bad);
        book.refuse(
            Command::Deposit { account: AccountId(1), amount: Money(100), key: key.clone() },
            ResultCode::IdempotencyKeyInvalid,
        );
        book.refuse(
            Command::Withdraw { account: AccountId(1), amount: Money(100), key: key.clone() },
            ResultCode::IdempotencyKeyInvalid,
        );
        let mut p = book.request(1, &[1], BetKind::Single, 100);
        p.key = key.clone();
        book.refuse(place(p), ResultCode::IdempotencyKeyInvalid);
        book.refuse(
            Command::CashOut {
                account: AccountId(2),
                bet: paddock_ledger::BetId(1),
                value: Money(1),
                quoted_versions: vec![(SelectionId(5), 1)],
                key,
            },
            ResultCode::IdempotencyKeyInvalid,
        );
    }
    assert!(book
        .run(Command::Deposit { account: AccountId(1), amount: Money(100), key: IdempotencyKey(longest) })
        .is_done());
}

#[test]
fn bad_currency_codes_and_mismatched_currencies_are_refused() {
    let mut book = book();
    for code in [*b"gbp", *b"G1P", *b"GB ", [0, 0, 0]] {
        book.refuse(
            Command::OpenAccount { account: AccountId(50), currency: Currency(code), key: fresh_key() },
            ResultCode::CurrencyInvalid,
        );
        book.refuse(create_market(99, 1, Currency(code), selections(901..=902), rules()), ResultCode::CurrencyInvalid);
    }
    assert_eq!(Currency::parse("GB"), None);
    assert_eq!(Currency::parse("gbp"), None);
    book.ok(Command::OpenAccount {
        account: AccountId(50),
        currency: Currency::parse("EUR").unwrap(),
        key: fresh_key(),
    });
    assert!(book.deposit(50, 10_000).is_done());
    let p = book.request(50, &[1], BetKind::Single, 100);
    book.refuse(place(p), ResultCode::CurrencyMismatch);
}

#[test]
fn bet_type_must_fit_the_number_of_legs() {
    let mut book = book();
    let cases: [(BetKind, &[u64]); 9] = [
        (BetKind::Yankee, &[1, 5, 7]),
        (BetKind::Lucky15, &[1, 5, 7]),
        (BetKind::Trixie, &[1, 5, 7, 9]),
        (BetKind::Patent, &[1, 5]),
        (BetKind::Single, &[1, 5]),
        (BetKind::Accumulator, &[1]),
        (BetKind::KOfN { k: 0 }, &[1, 5, 7]),
        (BetKind::KOfN { k: 4 }, &[1, 5, 7]),
        (BetKind::Yankee, &[1, 5, 7, 9, 4]),
    ];
    for (kind, legs) in cases {
        let p = book.request(1, legs, kind, 100);
        book.refuse(place(p), ResultCode::BetTypeInvalid);
    }
    let p = book.request(1, &[], BetKind::Single, 100);
    book.refuse(place(p), ResultCode::LegsEmpty);
    let mut p = book.request(1, &[1], BetKind::Single, 100);
    p.each_way = true;
    book.refuse(place(p), ResultCode::EachWayNotOffered);
}

#[test]
fn impossible_results_are_refused() {
    let mut book = book();
    let settle = |results: Vec<paddock_ledger::SelectionResult>| Command::SettleMarket {
        market: MarketId(1),
        results,
        actor: settler(),
        key: fresh_key(),
    };
    for bad in [
        LegResult::DeadHeat { paid_places: 1, tied: 1 },
        LegResult::DeadHeat { paid_places: 1, tied: 0 },
        LegResult::DeadHeat { paid_places: 0, tied: 2 },
        LegResult::DeadHeat { paid_places: 2, tied: 2 },
        LegResult::DeadHeat { paid_places: 3, tied: 2 },
    ] {
        book.refuse(settle(vec![res(1, bad)]), ResultCode::ResultsInvalid);
        book.refuse(settle(vec![res_ew(1, LegResult::Lose, bad)]), ResultCode::ResultsInvalid);
    }
    book.refuse(settle(vec![res(1, LegResult::Win), res(1, LegResult::Lose)]), ResultCode::ResultsInvalid);
    // The same checks guard a correction.
    book.settle(3, &[res(5, LegResult::Win)]);
    book.refuse(
        Command::ResettleMarket {
            market: MarketId(3),
            results: vec![res(5, LegResult::DeadHeat { paid_places: 1, tied: 1 })],
            reason: "typo".into(),
            actor: settler(),
            key: fresh_key(),
        },
        ResultCode::ResultsInvalid,
    );
}

#[test]
fn resettling_a_market_that_was_never_settled_is_refused() {
    let mut book = book();
    let resettle = |market| Command::ResettleMarket {
        market: MarketId(market),
        results: vec![],
        reason: "correction".into(),
        actor: settler(),
        key: fresh_key(),
    };
    book.refuse(resettle(3), ResultCode::MarketNotSettled);
    book.ok(Command::CloseMarket { market: MarketId(3), actor: trader(), key: fresh_key() });
    book.refuse(resettle(3), ResultCode::MarketNotSettled);
    book.ok(Command::VoidMarket { market: MarketId(4), reason: "abandoned".into(), actor: trader(), key: fresh_key() });
    book.refuse(resettle(4), ResultCode::MarketVoided);
}

#[test]
fn settling_a_market_twice_is_refused() {
    // Settlement is idempotent per result version: a repeated result is refused and pays
    // nothing twice; a correction must go through ResettleMarket.
    let mut book = book();
    let results = [res(5, LegResult::Win)];
    book.settle(3, &results);
    assert_eq!(book.balance(2), 9_000 + 3_500);
    let again =
        Command::SettleMarket { market: MarketId(3), results: results.to_vec(), actor: settler(), key: fresh_key() };
    book.refuse(again, ResultCode::MarketAlreadySettled);
    book.ok(Command::ResettleMarket {
        market: MarketId(3),
        results: vec![res(6, LegResult::Win)],
        reason: "x".into(),
        actor: settler(),
        key: fresh_key(),
    });
    let again =
        Command::SettleMarket { market: MarketId(3), results: results.to_vec(), actor: settler(), key: fresh_key() };
    book.refuse(again, ResultCode::MarketAlreadySettled);
    book.ok(Command::VoidMarket { market: MarketId(4), reason: "abandoned".into(), actor: trader(), key: fresh_key() });
    book.refuse(
        Command::SettleMarket { market: MarketId(4), results: vec![], actor: settler(), key: fresh_key() },
        ResultCode::MarketVoided,
    );
    book.refuse(
        Command::VoidMarket { market: MarketId(4), reason: "again".into(), actor: trader(), key: fresh_key() },
        ResultCode::MarketVoided,
    );
}

#[test]
fn invalid_market_transitions_and_rule_4_deductions_are_refused() {
    let mut book = book();
    book.refuse(
        Command::ResumeMarket { market: MarketId(1), actor: trader(), key: fresh_key() },
        ResultCode::MarketStateInvalid,
    );
    book.settle(4, &[res(7, LegResult::Win)]);
    book.refuse(
        Command::CloseMarket { market: MarketId(4), actor: trader(), key: fresh_key() },
        ResultCode::MarketStateInvalid,
    );
    book.refuse(
        Command::SuspendMarket { market: MarketId(4), reason: String::new(), actor: trader(), key: fresh_key() },
        ResultCode::MarketStateInvalid,
    );
    book.refuse(
        Command::SetPrice { market: MarketId(4), selection: SelectionId(7), odds: odds("2/1"), key: fresh_key() },
        ResultCode::MarketStateInvalid,
    );
    book.refuse(
        Command::WithdrawSelection {
            market: MarketId(4),
            selection: SelectionId(8),
            deduction_pence: 0,
            actor: trader(),
            key: fresh_key(),
        },
        ResultCode::MarketStateInvalid,
    );
    book.refuse(
        Command::WithdrawSelection {
            market: MarketId(1),
            selection: SelectionId(2),
            deduction_pence: 91,
            actor: trader(),
            key: fresh_key(),
        },
        ResultCode::DeductionInvalid,
    );
    book.ok(Command::WithdrawSelection {
        market: MarketId(1),
        selection: SelectionId(2),
        deduction_pence: 90,
        actor: trader(),
        key: fresh_key(),
    });
    book.refuse(
        Command::WithdrawSelection {
            market: MarketId(1),
            selection: SelectionId(2),
            deduction_pence: 10,
            actor: trader(),
            key: fresh_key(),
        },
        ResultCode::SelectionWithdrawn,
    );
    book.refuse(
        Command::SetPrice { market: MarketId(1), selection: SelectionId(2), odds: odds("2/1"), key: fresh_key() },
        ResultCode::SelectionWithdrawn,
    );
}

#[test]
fn duplicate_ids_and_malformed_catalogue_entries_are_refused() {
    let mut book = book();
    book.refuse(
        Command::OpenAccount { account: AccountId(1), currency: gbp(), key: fresh_key() },
        ResultCode::AccountExists,
    );
    let event = |id: u64, name: &str, actor: Actor| Command::CreateEvent {
        event: EventId(id),
        name: name.into(),
        sport: "football".into(),
        competition: "Cup".into(),
        starts_at: TimestampMs(T0_MS),
        actor,
        key: fresh_key(),
    };
    book.refuse(event(1, "Again", trader()), ResultCode::EventExists);
    book.refuse(event(60, "", trader()), ResultCode::TextInvalid);
    book.refuse(event(60, "A\nB", trader()), ResultCode::TextInvalid);
    book.refuse(event(60, &"x".repeat(201), trader()), ResultCode::TextInvalid);
    book.refuse(event(60, "Fine", Actor(String::new())), ResultCode::TextInvalid);
    book.refuse(
        Command::SuspendMarket { market: MarketId(1), reason: "r".repeat(201), actor: trader(), key: fresh_key() },
        ResultCode::TextInvalid,
    );

    book.refuse(create_market(1, 1, gbp(), selections(901..=902), rules()), ResultCode::MarketExists);
    book.refuse(create_market(99, 1, gbp(), selections(1..=1), rules()), ResultCode::SelectionExists);
    let mut twice = selections(901..=902);
    twice[1].selection = SelectionId(901);
    book.refuse(create_market(99, 1, gbp(), twice, rules()), ResultCode::SelectionExists);
    book.refuse(create_market(99, 1, gbp(), vec![], rules()), ResultCode::SelectionCountInvalid);
    book.refuse(create_market(99, 1, gbp(), selections(1001..=1201), rules()), ResultCode::SelectionCountInvalid);
    let bad_rules = [
        MarketRules { stake_min: Money(0), ..rules() },
        MarketRules { stake_min: Money(500), stake_max: Money(499), ..rules() },
        MarketRules { payout_max: Money(0), ..rules() },
        MarketRules { liability_max: Money(-1), ..rules() },
        MarketRules { bet_delay_ms: paddock_ledger::BET_DELAY_MS_MAX + 1, ..rules() },
        MarketRules { each_way: Some(EachWayTerms { fraction_num: 0, fraction_den: 4, places: 3 }), ..rules() },
        MarketRules { each_way: Some(EachWayTerms { fraction_num: 5, fraction_den: 4, places: 3 }), ..rules() },
        MarketRules { each_way: Some(EachWayTerms { fraction_num: 1, fraction_den: 4, places: 0 }), ..rules() },
    ];
    for rules in bad_rules {
        book.refuse(create_market(99, 1, gbp(), selections(901..=902), rules), ResultCode::MarketRulesInvalid);
    }
}

#[test]
fn out_of_range_limits_exclusions_stake_factors_and_config_are_refused() {
    let mut book = book();
    for (kind, days) in [
        (ExclusionKind::SelfExclusion, 181),
        (ExclusionKind::SelfExclusion, 3651),
        (ExclusionKind::TimeOut, 0),
        (ExclusionKind::TimeOut, 43),
    ] {
        book.refuse(
            Command::Exclude { account: AccountId(1), kind, duration_days: days, key: fresh_key() },
            ResultCode::LimitInvalid,
        );
    }
    for factor_permille in [0, 10_001] {
        book.refuse(
            Command::SetStakeFactor { account: AccountId(1), factor_permille, actor: trader(), key: fresh_key() },
            ResultCode::LimitInvalid,
        );
    }
    for config in [
        BookConfig { cash_out_margin_bps: 5_001, ..BookConfig::default() },
        BookConfig { limit_cooling_off_ms: 30 * DAY_MS + 1, ..BookConfig::default() },
        BookConfig { idempotency_ttl_ms: DAY_MS - 1, ..BookConfig::default() },
        BookConfig { idempotency_ttl_ms: 400 * DAY_MS + 1, ..BookConfig::default() },
    ] {
        book.refuse(Command::SetConfig { config, actor: trader(), key: fresh_key() }, ResultCode::ConfigInvalid);
    }
    book.refuse(
        Command::SetConfig { config: BookConfig::default(), actor: Actor(String::new()), key: fresh_key() },
        ResultCode::TextInvalid,
    );
}

#[test]
fn cash_out_of_someone_elses_closed_or_settled_bet_is_refused() {
    let mut book = book();
    // Bet 1 is account 2's £10 on selection 5 at 5/2, price version 1.
    let cmd = cash_out(&mut book, 1, 1, 500, vec![(SelectionId(5), 1)]);
    book.refuse(cmd, ResultCode::BetAccountMismatch);
    let cmd = cash_out(&mut book, 2, 1, 500, vec![]);
    book.refuse(cmd, ResultCode::CashOutQuoteStale);
    let cmd = cash_out(&mut book, 2, 1, 500, vec![(SelectionId(6), 1)]);
    book.refuse(cmd, ResultCode::CashOutQuoteStale);
    book.ok(Command::CloseMarket { market: MarketId(3), actor: trader(), key: fresh_key() });
    let cmd = cash_out(&mut book, 2, 1, 500, vec![(SelectionId(5), 1)]);
    book.refuse(cmd, ResultCode::CashOutUnavailable);
    book.settle(3, &[res(6, LegResult::Win)]);
    let cmd = cash_out(&mut book, 2, 1, 500, vec![(SelectionId(5), 1)]);
    book.refuse(cmd, ResultCode::BetNotOpen);
}
