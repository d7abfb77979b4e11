//! Every command but the leader's own `ResolvePending` carries an idempotency key, remembered
//! in the replicated state: a retry with the same key and body returns the first answer and
//! changes nothing; the same key with another body is `idempotency_key_reused`. So a retried
//! settlement, resettlement or price change cannot act twice.

mod support;

use paddock_ledger::{
    AccountId, Command, Done, IdempotencyKey, LegResult, MarketId, Odds, Outcome, ResultCode, SelectionId,
};
use support::*;

fn key(text: &str) -> IdempotencyKey {
    IdempotencyKey(text.to_string())
}

fn settle_cmd(market: u64, winner: u64, key_text: &str) -> Command {
    Command::SettleMarket {
        market: MarketId(market),
        results: vec![res(winner, LegResult::Win)],
        actor: settler(),
        key: key(key_text),
    }
}

#[test]
fn a_retried_settlement_answers_as_the_first_and_pays_winners_once() {
    let mut book = Book::new();
    book.open_funded(1, 10_000);
    book.market(10, &[(101, "2/1"), (102, "3/1")]);
    book.single(1, 101, 1_000);
    book.ok(Command::CloseMarket { market: MarketId(10), actor: trader(), key: key("close-10") });

    let first = book.run(settle_cmd(10, 101, "settle-10"));
    assert!(matches!(first, Outcome::Done(Done::Settled { bets_settled: 1, .. })), "{first:?}");
    assert_eq!(book.balance(1), 9_000 + 3_000, "stake back plus winnings at 2/1");

    let hash = book.state.state_hash();
    let retry = book.run(settle_cmd(10, 101, "settle-10"));
    assert_eq!(retry, first, "the retry gets the first answer");
    assert_eq!(book.state.state_hash(), hash, "and changes nothing");
    assert_eq!(book.balance(1), 12_000);
}

#[test]
fn a_retried_resettlement_corrects_the_result_once() {
    let mut book = Book::new();
    book.open_funded(1, 10_000);
    book.market(10, &[(101, "2/1"), (102, "3/1")]);
    book.single(1, 101, 1_000);
    book.ok(Command::CloseMarket { market: MarketId(10), actor: trader(), key: key("close-10") });
    book.ok(settle_cmd(10, 102, "settle-10"));
    let resettle = || Command::ResettleMarket {
        market: MarketId(10),
        results: vec![res(101, LegResult::Win)],
        reason: "photo finish reviewed".to_string(),
        actor: settler(),
        key: key("resettle-10"),
    };
    let first = book.run(resettle());
    assert!(matches!(first, Outcome::Done(Done::Settled { result_version: 2, .. })), "{first:?}");
    let hash = book.state.state_hash();
    assert_eq!(book.run(resettle()), first);
    assert_eq!(book.state.state_hash(), hash);
    assert_eq!(book.state.market(MarketId(10)).expect("market").result_version, 2, "corrected once, not twice");
}

#[test]
fn a_retried_price_change_moves_the_price_version_once() {
    let mut book = Book::new();
    book.market(10, &[(101, "2/1"), (102, "3/1")]);
    let set = || Command::SetPrice {
        market: MarketId(10),
        selection: SelectionId(101),
        odds: Odds::parse("5/2").expect("odds"),
        key: key("price-101-a"),
    };
    book.ok(set());
    book.ok(set());
    let market = book.state.market(MarketId(10)).expect("market");
    let selection = market.selections.iter().find(|s| s.selection == SelectionId(101)).expect("selection");
    assert_eq!(selection.price_version, 2, "opening price 1, one change");
}

#[test]
fn the_same_key_with_another_body_is_refused_and_changes_nothing() {
    let mut book = Book::new();
    book.market(10, &[(101, "2/1"), (102, "3/1")]);
    book.ok(Command::SuspendMarket {
        market: MarketId(10),
        reason: "stewards' enquiry".to_string(),
        actor: trader(),
        key: key("op-1"),
    });
    book.refuse(
        Command::ResumeMarket { market: MarketId(10), actor: trader(), key: key("op-1") },
        ResultCode::IdempotencyKeyReused,
    );
}

#[test]
fn keys_of_different_accounts_and_of_the_book_do_not_collide() {
    let mut book = Book::new();
    for account in [1, 2] {
        book.ok(Command::OpenAccount { account: AccountId(account), currency: gbp(), key: key("same-text") });
    }
    book.market(10, &[(101, "2/1")]);
    book.ok(Command::SuspendMarket {
        market: MarketId(10),
        reason: "same key text as the players used".to_string(),
        actor: trader(),
        key: key("same-text"),
    });
    assert!(book.state.account(AccountId(2)).is_some(), "the second account opened under its own scope");
}

#[test]
fn an_operator_command_without_a_valid_key_is_refused() {
    let mut book = Book::new();
    book.market(10, &[(101, "2/1")]);
    for bad in ["", "has space", &"k".repeat(65)] {
        book.refuse(
            Command::CloseMarket { market: MarketId(10), actor: trader(), key: key(bad) },
            ResultCode::IdempotencyKeyInvalid,
        );
    }
}

#[test]
fn a_retry_is_told_apart_from_the_first_answer() {
    let mut book = Book::new();
    book.open_funded(1, 10_000);
    book.market(10, &[(101, "2/1")]);
    let request = book.request(1, &[101], paddock_ledger::BetKind::Single, 1_000);
    let place = Command::PlaceBet(request);

    let first = book.run_noting_replay(place.clone());
    assert!(first.outcome.is_done(), "{:?}", first.outcome);
    assert!(!first.replayed, "a first try is not a replay");

    let retry = book.run_noting_replay(place.clone());
    assert_eq!(retry.outcome, first.outcome, "the retry gets the first answer");
    assert!(retry.replayed, "and is told it is a replay");

    let refused = book.run_noting_replay(Command::CloseMarket { market: MarketId(99), actor: trader(), key: key("c") });
    assert_eq!(refused.outcome, Outcome::Rejected(ResultCode::MarketNotFound));
    assert!(!refused.replayed, "a first refusal is not a replay");
    let again = book.run_noting_replay(Command::CloseMarket { market: MarketId(99), actor: trader(), key: key("c") });
    assert_eq!(again.outcome, refused.outcome);
    assert!(again.replayed, "a remembered refusal is a replay too");

    let reused = book.run_noting_replay(Command::ResumeMarket { market: MarketId(99), actor: trader(), key: key("c") });
    assert_eq!(reused.outcome, Outcome::Rejected(ResultCode::IdempotencyKeyReused));
    assert!(!reused.replayed, "a key reused with another body is a refusal, not a replay");
}
