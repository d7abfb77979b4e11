//! Apply throughput of the pure ledger (issue: "Benchmark (criterion; a figure, not a test)").
//!
//! - `place_single`: bet placement on a book of 1M funded accounts, 10k open markets and 1M
//!   open bets.
//! - `settle_100k`: settlement of one market holding 100k open bets.
//! - Memory per account and per open bet, measured with a counting allocator and printed.
//! - `authenticate`: the CPU cost of authenticating one request (parse, hash, look up a key among
//!   100k) — the figure next to placement in BENCHMARKS.md.
//!
//! Run: `cargo bench -p paddock-ledger --bench apply`.

#![allow(missing_docs)] // criterion's macros generate undocumented functions

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use paddock_ledger::{
    apply, AccountId, Actor, ApplyCtx, BetKind, Command, Currency, EventId, IdempotencyKey, LegRequest, LegResult,
    MarketId, MarketRules, Money, NewSelection, Odds, OddsPolicy, PlaceBet, SelectionId, SelectionResult, State,
    TimestampMs,
};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
// A benchmark times the ledger by the wall clock; the ledger itself reads none (clippy.toml).
#[allow(clippy::disallowed_types)]
use std::time::Instant;

/// Counts live heap bytes so the bench can report memory per account and per bet.
struct Counting;
static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);

#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const ACCOUNTS: u64 = 1_000_000;
const MARKETS: u64 = 10_000;
/// Open bets on the book when placement is timed (their memory is what the bench reports).
const OPEN_BETS: u64 = 1_000_000;

struct Clock(u64);

impl Clock {
    fn ctx(&mut self) -> ApplyCtx {
        self.0 += 1;
        ApplyCtx { log_index: self.0, time: TimestampMs(1_700_000_000_000 + self.0 / 1000) }
    }
}

/// A key no other command of the benchmark carries.
fn bench_key() -> IdempotencyKey {
    static NEXT: AtomicUsize = AtomicUsize::new(1);
    IdempotencyKey(format!("op-{}", NEXT.fetch_add(1, Ordering::Relaxed)))
}

fn gbp() -> Currency {
    Currency::parse("GBP").unwrap()
}

fn must(state: &mut State, clock: &mut Clock, cmd: Command) {
    let outcome = apply(state, &cmd, clock.ctx());
    assert!(outcome.is_done(), "{cmd:?} -> {outcome:?}");
}

fn rules() -> MarketRules {
    MarketRules {
        stake_min: Money(10),
        stake_max: Money(1_000_000),
        payout_max: Money(100_000_000),
        liability_max: Money(i64::MAX / 4),
        bet_delay_ms: 0,
        closes_at: None,
        each_way: None,
    }
}

fn add_markets(state: &mut State, clock: &mut Clock, count: u64) {
    for m in 0..count {
        must(
            state,
            clock,
            Command::CreateEvent {
                event: EventId(m),
                name: format!("event {m}"),
                sport: "football".into(),
                competition: "bench".into(),
                starts_at: TimestampMs(0),
                actor: Actor("bench".into()),
                key: bench_key(),
            },
        );
        must(
            state,
            clock,
            Command::CreateMarket {
                market: MarketId(m),
                event: EventId(m),
                name: "match result".into(),
                currency: gbp(),
                selections: (0..3)
                    .map(|s| NewSelection {
                        selection: SelectionId(m * 3 + s),
                        name: format!("s{s}"),
                        odds: Odds::parse("2.5").unwrap(),
                    })
                    .collect(),
                rules: rules(),
                actor: Actor("bench".into()),
                key: bench_key(),
            },
        );
    }
}

fn add_accounts(state: &mut State, clock: &mut Clock, count: u64) {
    for a in 0..count {
        must(state, clock, Command::OpenAccount { account: AccountId(a), currency: gbp(), key: bench_key() });
        must(
            state,
            clock,
            Command::Deposit {
                account: AccountId(a),
                amount: Money(1_000_000_000),
                key: IdempotencyKey(format!("d{a}")),
            },
        );
    }
}

fn bet(n: u64, market: u64) -> Command {
    Command::PlaceBet(PlaceBet {
        account: AccountId(n.wrapping_mul(2_654_435_761) % ACCOUNTS),
        legs: vec![LegRequest {
            market: MarketId(market),
            selection: SelectionId(market * 3 + n % 3),
            odds: Odds::parse("2.5").unwrap(),
        }],
        kind: BetKind::Single,
        stake_per_line: Money(100),
        each_way: false,
        odds_policy: OddsPolicy::Any,
        key: IdempotencyKey(format!("b{n}")),
    })
}

fn live() -> usize {
    LIVE_BYTES.load(Ordering::Relaxed)
}

fn benches(c: &mut Criterion) {
    let mut clock = Clock(0);
    let mut state = State::new();
    add_markets(&mut state, &mut clock, MARKETS);
    let before_accounts = live();
    add_accounts(&mut state, &mut clock, ACCOUNTS);
    let per_account = (live() - before_accounts) as f64 / ACCOUNTS as f64;

    // Memory per open bet: 1M placements spread over all markets. As many bets as accounts,
    // so that each table's growth by doubling is averaged over a whole doubling, not caught
    // at one step of it (100k placements once happened to double the idempotency table).
    // Each placement is timed too: a table that grows all at once (a hash table's rehash, a
    // vector's copy) stalls the one apply that triggers it, which a mean hides.
    let before_bets = live();
    let mut took_ns: Vec<u64> = Vec::with_capacity(OPEN_BETS as usize);
    for n in 0..OPEN_BETS {
        let cmd = bet(10_000_000 + n, n % MARKETS);
        #[allow(clippy::disallowed_types, clippy::disallowed_methods)] // the benchmark's stopwatch
        let start = Instant::now();
        let outcome = apply(&mut state, &cmd, clock.ctx());
        took_ns.push(start.elapsed().as_nanos() as u64);
        assert!(outcome.is_done());
    }
    let per_bet = (live() - before_bets - took_ns.capacity() * 8) as f64 / OPEN_BETS as f64;
    took_ns.sort_unstable();
    let at = |q: f64| took_ns[((took_ns.len() - 1) as f64 * q) as usize] as f64 / 1000.0;
    println!(
        "placements into a growing book ({OPEN_BETS}): median {:.1} µs, p99 {:.1} µs, p99.99 {:.1} µs, longest {:.1} ms",
        at(0.5),
        at(0.99),
        at(0.9999),
        at(1.0) / 1000.0
    );
    drop(took_ns);
    // One pass of the snapshot encoder over this book (what the state hash and a snapshot
    // build cost): every table in key order.
    #[allow(clippy::disallowed_types, clippy::disallowed_methods)] // the benchmark's stopwatch
    let start = Instant::now();
    let hash = state.state_hash();
    println!("state hash of that book: {:.0} ms ({hash})", start.elapsed().as_secs_f64() * 1000.0);
    // What a hash or a snapshot taken off the state lock holds the lock for: one copy of the
    // book (`GET /v1/cluster/state-hash`, a snapshot build). Freeing it is not counted: that
    // happens after the lock is released.
    #[allow(clippy::disallowed_types, clippy::disallowed_methods)] // the benchmark's stopwatch
    let start = Instant::now();
    let copy = state.clone();
    println!(
        "a copy of that book (the state lock's hold for a hash taken off it): {:.0} ms",
        start.elapsed().as_secs_f64() * 1000.0
    );
    drop(copy);
    println!("memory: {per_account:.0} bytes per funded account (incl. its idempotency record), {per_bet:.0} bytes per open single bet (incl. its idempotency record)");

    let mut group = c.benchmark_group("ledger");
    group.throughput(Throughput::Elements(1));
    let mut next = 0u64;
    group.bench_function("place_single_1M_accounts_10k_markets", |b| {
        b.iter_custom(|iters| {
            let cmds: Vec<Command> = (0..iters).map(|i| bet(next + i, (next + i) % MARKETS)).collect();
            next += iters;
            #[allow(clippy::disallowed_types, clippy::disallowed_methods)] // the benchmark's stopwatch
            let start = Instant::now();
            for cmd in &cmds {
                let outcome = apply(&mut state, cmd, clock.ctx());
                debug_assert!(outcome.is_done());
            }
            start.elapsed()
        })
    });
    drop(state);

    // One market with 100k open bets, settled in one command.
    let mut clock = Clock(0);
    let mut base = State::new();
    add_markets(&mut base, &mut clock, 1);
    add_accounts(&mut base, &mut clock, 100_000);
    for n in 0..100_000u64 {
        let mut cmd = bet(n, 0);
        if let Command::PlaceBet(p) = &mut cmd {
            p.account = AccountId(n);
        }
        assert!(apply(&mut base, &cmd, clock.ctx()).is_done());
    }
    group.throughput(Throughput::Elements(100_000));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    let settle = Command::SettleMarket {
        market: MarketId(0),
        results: vec![SelectionResult { selection: SelectionId(0), win: LegResult::Win, place: None }],
        actor: Actor("bench".into()),
        key: bench_key(),
    };
    // The next entry on this book's own clock: a time far ahead of it is refused as a clock
    // step too large (the bounded clock), which is not what this measures.
    let settle_ctx = clock.ctx();
    group.bench_function("settle_market_with_100k_open_bets", |b| {
        b.iter_batched(
            || base.clone(),
            |mut s| {
                let outcome = apply(&mut s, &settle, settle_ctx);
                assert!(outcome.is_done(), "the settlement is applied");
                s
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

/// The CPU cost of authenticating one request, as a node pays it: parse the presented key,
/// hash it, find it among 100k keys and check it against its digest, expiry and principal.
fn auth_benches(c: &mut Criterion) {
    use paddock_ledger::auth::{key_hash, KeyId, KeyText, Role, KEY_SECRET_LEN};
    let mut clock = Clock(0);
    let mut state = State::new();
    let keys: Vec<String> = (0..100_000u64)
        .map(|n| {
            let name = format!("bettor-{n}");
            let create = Command::CreatePrincipal {
                name: name.clone(),
                role: Role::Bettor,
                accounts: vec![],
                actor: Actor("bench".into()),
                key: IdempotencyKey(format!("p{n}")),
            };
            must(&mut state, &mut clock, create);
            let mut secret = [0u8; KEY_SECRET_LEN];
            secret[..8].copy_from_slice(&n.to_le_bytes());
            let id = KeyId(n.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let issue = Command::IssueKey {
                id,
                principal: name,
                hash: key_hash(id, &secret),
                ttl_ms: None,
                actor: Actor("bench".into()),
                key: IdempotencyKey(format!("k{n}")),
            };
            must(&mut state, &mut clock, issue);
            KeyText { id, secret }.expose()
        })
        .collect();
    let now = TimestampMs(clock.0 + 1);
    let mut group = c.benchmark_group("auth");
    group.throughput(Throughput::Elements(1));
    let mut n = 0usize;
    group.bench_function("authenticate_one_request_100k_keys", |b| {
        b.iter(|| {
            n = (n + 7919) % keys.len();
            let key = KeyText::parse(&keys[n]).expect("a well-formed key");
            let found = state.authenticate(&key, now);
            assert!(found.is_some());
            found
        })
    });
    group.finish();
}

criterion_group!(ledger, benches, auth_benches);
criterion_main!(ledger);
