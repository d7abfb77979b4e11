//! Batches of bets (`Command::PlaceBets`), as a gateway sends them: a batch is its bets, each
//! applied in order exactly as its own `PlaceBet` would be, with its own idempotency key and
//! its own answer, in one log entry.

mod support;

use paddock_ledger::{
    apply, apply_noting_replay, ApplyCtx, BatchItem, BetKind, Command, Done, Outcome, PlaceBet, ResultCode,
    TimestampMs, BETS_PER_BATCH_MAX,
};
use support::*;

/// A book with two funded accounts (1: £100, 2: £5) and a market of two runners.
fn book() -> Book {
    let mut book = Book::new();
    book.open_funded(1, 10_000);
    book.open_funded(2, 500);
    book.market(7, &[(71, "5/2"), (72, "evens")]);
    book
}

/// Account 1 backs runner 71 for £10, account 2 for £4, account 2 again for £4 (more than it
/// has left: refused), then account 1 backs runner 72 for £1.
fn bets(book: &mut Book) -> Vec<PlaceBet> {
    vec![
        book.request(1, &[71], BetKind::Single, 1_000),
        book.request(2, &[71], BetKind::Single, 400),
        book.request(2, &[71], BetKind::Single, 400),
        book.request(1, &[72], BetKind::Single, 100),
    ]
}

fn ctx(book: &Book, log_index: u64) -> ApplyCtx {
    ApplyCtx { log_index, time: book.now() }
}

fn items(outcome: &Outcome) -> &[BatchItem] {
    match outcome {
        Outcome::Done(Done::BetsPlaced(items)) => items,
        other => panic!("a batch answers with one item per bet, not {other:?}"),
    }
}

#[test]
fn a_batch_leaves_the_book_exactly_as_its_bets_placed_one_by_one_in_the_same_entry_would() {
    let mut batched = book();
    // The same book: set-up keys are unique per test process, so a second book would differ.
    let mut one_by_one = batched.state.clone();
    let requests = bets(&mut batched);
    let at = ctx(&batched, 1_000);

    let outcome = apply(&mut batched.state, &Command::PlaceBets(requests.clone()), at);
    let singles: Vec<Outcome> =
        requests.iter().map(|bet| apply(&mut one_by_one, &Command::PlaceBet(bet.clone()), at)).collect();

    let answers: Vec<Outcome> = items(&outcome).iter().map(|item| item.outcome.clone()).collect();
    assert_eq!(answers, singles, "each bet answered as its own PlaceBet, in the batch's order");
    assert_eq!(batched.state.state_hash(), one_by_one.state_hash(), "byte-identical books");
    batched.state.check_invariants().expect("the batched book keeps every invariant");
}

#[test]
fn one_bet_refused_does_not_refuse_the_others_and_later_bets_see_earlier_ones() {
    let mut book = book();
    let requests = bets(&mut book);
    let outcome = book.run(Command::PlaceBets(requests));
    let items = items(&outcome);
    assert_eq!(items.len(), 4);
    assert!(items[0].outcome.is_done() && items[1].outcome.is_done() && items[3].outcome.is_done());
    assert_eq!(
        items[2].outcome,
        Outcome::Rejected(ResultCode::InsufficientFunds),
        "account 2 had £1 left after its first bet of the batch"
    );
    assert!(items.iter().all(|item| !item.replayed), "first answers, none remembered");
    assert_eq!(book.balance(1), 10_000 - 1_000 - 100);
    assert_eq!(book.balance(2), 500 - 400);
}

#[test]
fn a_retried_batch_is_answered_bet_by_bet_from_their_records_and_changes_nothing() {
    let mut book = book();
    let requests = bets(&mut book);
    let first = book.run(Command::PlaceBets(requests.clone()));
    let hash = book.state.state_hash();
    let retry = book.run(Command::PlaceBets(requests));
    let (first, retry) = (items(&first), items(&retry));
    for (i, (a, b)) in first.iter().zip(retry).enumerate() {
        assert_eq!(a.outcome, b.outcome, "bet {i}: the first answer again");
        assert!(b.replayed, "bet {i}: marked as a replay");
    }
    assert_eq!(book.state.state_hash(), hash, "a retry takes no stake twice");
}

#[test]
fn a_bet_placed_in_a_batch_retried_alone_with_its_key_is_a_replay_of_its_answer() {
    let mut book = book();
    let requests = bets(&mut book);
    let outcome = book.run(Command::PlaceBets(requests.clone()));
    let alone = book.run_noting_replay(Command::PlaceBet(requests[0].clone()));
    assert!(alone.replayed);
    assert_eq!(alone.outcome, items(&outcome)[0].outcome);
}

#[test]
fn an_empty_batch_or_one_over_the_limit_is_refused_and_changes_nothing() {
    let mut book = book();
    let hash = book.state.state_hash();
    book.refuse(Command::PlaceBets(Vec::new()), ResultCode::BatchSizeInvalid);
    let over: Vec<PlaceBet> = (0..=BETS_PER_BATCH_MAX).map(|_| book.request(1, &[71], BetKind::Single, 1)).collect();
    book.refuse(Command::PlaceBets(over), ResultCode::BatchSizeInvalid);
    assert_eq!(book.state.state_hash(), hash);
    let full: Vec<PlaceBet> = (0..BETS_PER_BATCH_MAX).map(|_| book.request(1, &[71], BetKind::Single, 1)).collect();
    let outcome = book.run(Command::PlaceBets(full));
    assert!(items(&outcome).iter().all(|item| item.outcome.is_done()), "exactly the limit is a batch");
    assert_eq!(book.balance(1), 10_000 - BETS_PER_BATCH_MAX as i64);
}

#[test]
fn a_batch_from_a_leader_whose_clock_jumped_is_refused_whole() {
    let mut book = book();
    let requests = bets(&mut book);
    let hash = book.state.state_hash();
    let step = book.state.config().clock_step_max_ms;
    let far = ApplyCtx { log_index: 1_000, time: TimestampMs(book.state.clock().0 + step + 1) };
    let applied = apply_noting_replay(&mut book.state, &Command::PlaceBets(requests), far);
    assert_eq!(applied.outcome, Outcome::Rejected(ResultCode::ClockStepTooLarge));
    assert_eq!(book.state.state_hash(), hash, "no bet and no idempotency record");
}
