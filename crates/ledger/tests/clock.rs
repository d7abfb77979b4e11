//! The book's clock moves forward at most `clock_step_max_ms` per log entry: one entry stamped
//! by a leader whose clock is far ahead is refused, so it cannot expire every idempotency key,
//! end self-exclusions or pass every market's `closes_at`. The leader's `ResolvePending` ticks
//! advance the clock a step at a time after a quiet spell.

mod support;

use paddock_ledger::{
    apply, AccountId, ApplyCtx, BookConfig, Command, IdempotencyKey, Money, Outcome, ResultCode, TimestampMs, DAY_MS,
};
use support::*;

/// Applies `cmd` directly, stamped `at` (the fixture would tick the clock forward first).
fn apply_at(book: &mut Book, cmd: &Command, at: TimestampMs, log_index: u64) -> Outcome {
    apply(&mut book.state, cmd, ApplyCtx { log_index, time: at })
}

#[test]
fn an_entry_stamped_beyond_the_maximum_step_is_refused_and_changes_nothing() {
    let mut book = Book::new();
    book.open_funded(1, 10_000);
    let step = BookConfig::default().clock_step_max_ms;
    let clock = book.state.clock();
    let hash = book.state.state_hash();
    let deposit = Command::Deposit { account: AccountId(1), amount: Money(500), key: IdempotencyKey("d-1".into()) };
    let outcome = apply_at(&mut book, &deposit, clock.plus_ms(step + 1), 1_000);
    assert_eq!(outcome, Outcome::Rejected(ResultCode::ClockStepTooLarge));
    assert_eq!(book.state.state_hash(), hash, "the refusal changed nothing, the clock included");
    // Exactly one step ahead is fine.
    let outcome = apply_at(&mut book, &deposit, clock.plus_ms(step), 1_001);
    assert!(outcome.is_done(), "{outcome:?}");
    assert_eq!(book.state.clock(), clock.plus_ms(step));
}

#[test]
fn a_tick_moves_the_clock_at_most_one_step() {
    let mut book = Book::new();
    book.open_funded(1, 10_000);
    let step = BookConfig::default().clock_step_max_ms;
    let clock = book.state.clock();
    let outcome = apply_at(&mut book, &Command::ResolvePending, clock.plus_ms(30 * DAY_MS), 1_000);
    assert!(outcome.is_done(), "{outcome:?}");
    assert_eq!(book.state.clock(), clock.plus_ms(step), "a leader a month ahead moves the book one step only");
}

#[test]
fn one_bad_entry_cannot_expire_idempotency_keys() {
    let mut book = Book::new();
    book.open_funded(1, 10_000);
    let key = IdempotencyKey("deposit-before-the-jump".into());
    let deposit = Command::Deposit { account: AccountId(1), amount: Money(700), key };
    let first = book.run(deposit.clone());
    assert!(first.is_done());
    // A leader 31 days ahead (past the 30-day TTL) proposes a command: refused.
    let far = book.state.clock().plus_ms(31 * DAY_MS);
    let other = Command::Deposit { account: AccountId(1), amount: Money(1), key: IdempotencyKey("x".into()) };
    assert_eq!(apply_at(&mut book, &other, far, 1_000), Outcome::Rejected(ResultCode::ClockStepTooLarge));
    // The client's retry of its first deposit still finds the record: no second credit.
    assert_eq!(book.run(deposit), first);
    assert_eq!(book.balance(1), 10_700);
}

#[test]
fn the_maximum_step_is_configurable_within_bounds() {
    let mut book = Book::new();
    let config = |ms| Command::SetConfig {
        config: BookConfig { clock_step_max_ms: ms, ..BookConfig::default() },
        actor: settler(),
        key: fresh_key(),
    };
    book.refuse(config(1_000), ResultCode::ConfigInvalid);
    book.refuse(config(DAY_MS + 1), ResultCode::ConfigInvalid);
    book.ok(config(60_000));
    assert_eq!(book.state.config().clock_step_max_ms, 60_000);
}
