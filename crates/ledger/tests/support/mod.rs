//! Test fixture: a `Book` that applies commands the way the replicated log would (an increasing
//! log index and leader clock), checks every ledger invariant after every command, and offers
//! short helpers for the catalogue, wallets, bets and results the specification tests need.
//!
//! Not here: expectations. Every amount a test checks is written out in the test itself.
#![allow(dead_code)]

use paddock_ledger::{
    apply_noting_replay, AccountId, Actor, Applied, ApplyCtx, BetId, BetKind, Command, Currency, Done, EventId,
    IdempotencyKey, LegRequest, LegResult, MarketId, MarketRules, Money, NewSelection, Odds, OddsPolicy, Outcome,
    PlaceBet, ResultCode, SelectionId, SelectionResult, State, TimestampMs,
};
use std::collections::BTreeSet;

/// The first command's leader timestamp (2023-11-14, UTC ms).
pub const T0_MS: u64 = 1_700_000_000_000;

/// Pounds sterling: every test book trades in GBP unless it says otherwise.
pub fn gbp() -> Currency {
    Currency::parse("GBP").expect("GBP is a valid code")
}

/// A price from its usual text ("5/2", "2.375", "-110").
pub fn odds(text: &str) -> Odds {
    Odds::parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

/// A key no other command of this test process carries: for commands whose retry a test
/// does not exercise (those that do spell their key out).
pub fn fresh_key() -> IdempotencyKey {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    IdempotencyKey(format!("fresh-{}", NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)))
}

/// The operator who runs the catalogue in these tests.
pub fn trader() -> Actor {
    Actor("trader:alice".to_string())
}

/// The operator who enters results in these tests.
pub fn settler() -> Actor {
    Actor("settler:bob".to_string())
}

/// Generous rules: a market that no limit gets in the way of, unless a test tightens one.
pub fn rules() -> MarketRules {
    MarketRules {
        stake_min: Money(1),
        stake_max: Money(1_000_000_000),
        payout_max: Money(1_000_000_000_000),
        liability_max: Money(1_000_000_000_000),
        bet_delay_ms: 0,
        closes_at: None,
        each_way: None,
    }
}

/// A result for one selection's win part; the place part follows the default rule.
pub fn res(selection: u64, win: LegResult) -> SelectionResult {
    SelectionResult { selection: SelectionId(selection), win, place: None }
}

/// A result with an explicit place part (each-way).
pub fn res_ew(selection: u64, win: LegResult, place: LegResult) -> SelectionResult {
    SelectionResult { selection: SelectionId(selection), win, place: Some(place) }
}

/// The bet id of an accepted or pending bet.
pub fn bet_id(outcome: &Outcome) -> BetId {
    match outcome {
        Outcome::Done(Done::BetAccepted { bet, .. } | Done::BetPending { bet, .. }) => *bet,
        other => panic!("expected an accepted or pending bet, got {other:?}"),
    }
}

/// A ledger under test with its own log position and clock.
pub struct Book {
    /// The state, for reading views and hashes.
    pub state: State,
    log_index: u64,
    /// Leader timestamp the next command carries; moves 1 ms per command.
    time_ms: u64,
    key_seq: u64,
    events: BTreeSet<u64>,
}

impl Book {
    /// An empty book at `T0_MS`.
    pub fn new() -> Book {
        Book { state: State::new(), log_index: 0, time_ms: T0_MS, key_seq: 0, events: BTreeSet::new() }
    }

    /// The timestamp the next command will carry.
    pub fn now(&self) -> TimestampMs {
        TimestampMs(self.time_ms)
    }

    /// Lets `ms` pass before the next command.
    pub fn advance_ms(&mut self, ms: u64) {
        self.time_ms += ms;
    }

    /// Makes the next command carry exactly `at` (never earlier than now).
    pub fn set_time(&mut self, at: TimestampMs) {
        assert!(at.0 >= self.time_ms, "the fixture's clock only moves forward");
        self.time_ms = at.0;
    }

    /// Applies one command as the next log entry and checks every invariant afterwards. If the
    /// fixture's clock has moved more than the book's maximum step since the last entry, the
    /// leader's `ResolvePending` ticks come first, as a real leader's would.
    pub fn run(&mut self, cmd: Command) -> Outcome {
        self.run_noting_replay(cmd).outcome
    }

    /// [`Book::run`], also telling whether the answer was a replay of a remembered one.
    pub fn run_noting_replay(&mut self, cmd: Command) -> Applied {
        self.catch_up();
        self.apply_entry(cmd)
    }

    /// The leader's ticks over a quiet spell longer than the book's maximum clock step.
    pub fn catch_up(&mut self) {
        let step = self.state.config().clock_step_max_ms;
        let clock = self.state.clock().0;
        if clock != 0 && self.time_ms > clock + step {
            let target = self.time_ms;
            let mut tick_at = clock;
            while target > tick_at + step {
                tick_at += step;
                self.time_ms = tick_at;
                self.tick();
            }
            self.time_ms = target;
        }
    }

    fn tick(&mut self) {
        let outcome = self.apply_entry(Command::ResolvePending).outcome;
        assert!(outcome.is_done(), "a tick is never refused: {outcome:?}");
    }

    fn apply_entry(&mut self, cmd: Command) -> Applied {
        self.log_index += 1;
        let ctx = ApplyCtx { log_index: self.log_index, time: TimestampMs(self.time_ms) };
        let applied = apply_noting_replay(&mut self.state, &cmd, ctx);
        if let Err(broken) = self.state.check_invariants() {
            panic!("invariant broken after {cmd:?} -> {:?}: {broken}", applied.outcome);
        }
        self.time_ms += 1;
        applied
    }

    /// Applies a command that must succeed.
    pub fn ok(&mut self, cmd: Command) -> Done {
        match self.run(cmd.clone()) {
            Outcome::Done(done) => done,
            Outcome::Rejected(code) => panic!("{cmd:?} was refused: {}", code.as_str()),
        }
    }

    /// Applies a command that must be refused with `code` and change nothing but the record of
    /// its idempotency key.
    pub fn refuse(&mut self, cmd: Command, code: ResultCode) {
        self.catch_up();
        let before = self.state.book_hash();
        let outcome = self.run(cmd.clone());
        assert_eq!(outcome, Outcome::Rejected(code), "{cmd:?}");
        assert_eq!(self.state.book_hash(), before, "refused {cmd:?} changed the book");
    }

    /// A fresh idempotency key.
    pub fn key(&mut self) -> IdempotencyKey {
        self.key_seq += 1;
        IdempotencyKey(format!("key-{}", self.key_seq))
    }

    /// Opens a GBP account and deposits `amount_minor` into it (if positive).
    pub fn open_funded(&mut self, account: u64, amount_minor: i64) -> AccountId {
        self.ok(Command::OpenAccount { account: AccountId(account), currency: gbp(), key: fresh_key() });
        if amount_minor > 0 {
            let cmd = self.deposit_cmd(account, amount_minor);
            self.ok(cmd);
        }
        AccountId(account)
    }

    /// A deposit command with a fresh key (build only).
    pub fn deposit_cmd(&mut self, account: u64, amount_minor: i64) -> Command {
        Command::Deposit { account: AccountId(account), amount: Money(amount_minor), key: self.key() }
    }

    /// Deposits with a fresh key.
    pub fn deposit(&mut self, account: u64, amount_minor: i64) -> Outcome {
        let cmd = self.deposit_cmd(account, amount_minor);
        self.run(cmd)
    }

    /// Withdraws with a fresh key.
    pub fn withdraw(&mut self, account: u64, amount_minor: i64) -> Outcome {
        let key = self.key();
        self.run(Command::Withdraw { account: AccountId(account), amount: Money(amount_minor), key })
    }

    /// Creates a GBP market on `event` (creating the event if new) with `(selection, price)`s.
    pub fn market_with(&mut self, event: u64, market: u64, selections: &[(u64, &str)], rules: MarketRules) -> MarketId {
        if self.events.insert(event) {
            self.ok(Command::CreateEvent {
                event: EventId(event),
                name: format!("Event {event}"),
                sport: "horse racing".to_string(),
                competition: "Test meeting".to_string(),
                starts_at: TimestampMs(T0_MS + 3_600_000),
                actor: trader(),
                key: fresh_key(),
            });
        }
        let selections = selections
            .iter()
            .map(|(id, price)| NewSelection {
                selection: SelectionId(*id),
                name: format!("Runner {id}"),
                odds: odds(price),
            })
            .collect();
        self.ok(Command::CreateMarket {
            market: MarketId(market),
            event: EventId(event),
            name: format!("Market {market}"),
            currency: gbp(),
            selections,
            rules,
            actor: trader(),
            key: fresh_key(),
        });
        MarketId(market)
    }

    /// A market with generous rules on an event of its own (event id = market id).
    pub fn market(&mut self, market: u64, selections: &[(u64, &str)]) -> MarketId {
        self.market_with(market, market, selections, rules())
    }

    /// A leg on `selection` at its current price.
    pub fn leg(&self, selection: u64) -> LegRequest {
        for market in self.state.market_ids() {
            let view = self.state.market(market).expect("listed market exists");
            if let Some(s) = view.selections.iter().find(|s| s.selection == SelectionId(selection)) {
                return LegRequest { market, selection: s.selection, odds: s.odds };
            }
        }
        panic!("no selection {selection} in the book");
    }

    /// A bet request at current prices, exact odds policy, not each-way, fresh key.
    pub fn request(&mut self, account: u64, selections: &[u64], kind: BetKind, stake_per_line: i64) -> PlaceBet {
        PlaceBet {
            account: AccountId(account),
            legs: selections.iter().map(|s| self.leg(*s)).collect(),
            kind,
            stake_per_line: Money(stake_per_line),
            each_way: false,
            odds_policy: OddsPolicy::Exact,
            key: self.key(),
        }
    }

    /// Places a bet of any shape at current prices.
    pub fn bet(&mut self, account: u64, selections: &[u64], kind: BetKind, stake_per_line: i64) -> Outcome {
        let p = self.request(account, selections, kind, stake_per_line);
        self.run(Command::PlaceBet(p))
    }

    /// Places a single that must be accepted (or go pending); returns its id.
    pub fn single(&mut self, account: u64, selection: u64, stake: i64) -> BetId {
        bet_id(&self.bet(account, &[selection], BetKind::Single, stake))
    }

    /// Places an accumulator that must be accepted; returns its id.
    pub fn accumulator(&mut self, account: u64, selections: &[u64], stake: i64) -> BetId {
        bet_id(&self.bet(account, selections, BetKind::Accumulator, stake))
    }

    /// Places a system bet (Trixie, Yankee, ...) that must be accepted; returns its id.
    pub fn system(&mut self, account: u64, kind: BetKind, selections: &[u64], stake_per_line: i64) -> BetId {
        bet_id(&self.bet(account, selections, kind, stake_per_line))
    }

    /// Settles a market (selections not named lose).
    pub fn settle(&mut self, market: u64, results: &[SelectionResult]) -> Outcome {
        self.run(Command::SettleMarket {
            market: MarketId(market),
            results: results.to_vec(),
            actor: settler(),
            key: fresh_key(),
        })
    }

    /// Available wallet balance in minor units.
    pub fn balance(&self, account: u64) -> i64 {
        self.state.account(AccountId(account)).expect("account exists").balance.0
    }

    /// What a bet has paid so far (settlement or cash-out), in minor units.
    pub fn paid(&self, bet: BetId) -> i64 {
        self.state.bet(bet).expect("bet exists").paid.0
    }
}
