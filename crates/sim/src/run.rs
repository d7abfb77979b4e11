//! One simulation run: a cluster, a workload, a nemesis, and the checkers.
//!
//! A run has two phases. In the *safety* phase clients work while the nemesis injects faults
//! drawn from the seed; checkers watch every replica continuously. In the *liveness* phase
//! every fault is healed and crashed nodes restart; every request still outstanding must
//! then complete, all replicas must converge on one state hash, and the client oracle is
//! checked against the committed log.

use crate::disk::{DiskFaults, FaultHandle, Incarnation, SimDisk};
use crate::net::{self, SimTransport, PEER_PORT};
use crate::oracle::{Acked, Oracle};
use crate::rng::Rng;
use openraft::impls::TokioRuntime;
use openraft::rt::deterministic_rng::DeterministicRng;
use paddock_consensus::transport::{Rpc, Transport};
use paddock_consensus::{Consensus, CoreConfig, ForwardOp, ForwardReply, IoMode, Role, Timing, WriteError, Written};
use paddock_ledger::{
    AccountId, AccountView, Actor, BetId, BetKind, BookConfig, Command, Currency, Done, EachWayTerms, EventId,
    IdempotencyKey, LegRequest, LegResult, MarketId, MarketRules, Money, NewSelection, Odds, OddsPolicy, Outcome,
    PlaceBet, SelectionId, SelectionResult, StateHash, TimestampMs,
};
use paddock_storage::FaultSwitches;
use serde::{de::DeserializeOwned, Serialize};
use sha2::{Digest, Sha256};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A deliberate bug to switch on, to prove the checkers catch it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Teeth {
    /// No bug: the real system.
    None,
    /// The Raft log reports appends durable without fsync.
    AckBeforeFsync,
    /// Bet placement skips the funds check.
    SkipFundsCheck,
}

/// What to simulate.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// The seed everything is drawn from.
    pub seed: u64,
    /// Voters at bootstrap (3 or 5).
    pub voters: u64,
    /// Whether a learner node exists (added and promoted by the operator during the run).
    pub learner: bool,
    /// Length of the fault phase.
    pub safety: Duration,
    /// Longest the healed cluster may take to finish every outstanding request.
    pub liveness: Duration,
    /// A deliberate bug, or none.
    pub teeth: Teeth,
}

impl RunConfig {
    /// The CI shape of a seed: 3 or 5 voters, sometimes a learner, short phases.
    pub fn for_seed(seed: u64, teeth: Teeth) -> RunConfig {
        let mut r = Rng::new(seed ^ 0x5EED);
        RunConfig {
            seed,
            voters: if r.chance(300) { 5 } else { 3 },
            learner: r.chance(400),
            safety: Duration::from_secs(8),
            liveness: Duration::from_secs(20),
            teeth,
        }
    }

    /// The long shape: longer fault phases.
    pub fn long(seed: u64) -> RunConfig {
        RunConfig {
            safety: Duration::from_secs(40),
            liveness: Duration::from_secs(40),
            ..RunConfig::for_seed(seed, Teeth::None)
        }
    }
}

/// What a run found.
#[derive(Clone, Debug)]
pub struct RunReport {
    /// Seed.
    pub seed: u64,
    /// Digest of every event of the run: equal for equal seeds, or the run is not deterministic.
    pub trace_hash: String,
    /// Broken invariants (empty = pass).
    pub violations: Vec<String>,
    /// Client commands with a definitive answer.
    pub answers: u64,
    /// Acknowledged bets.
    pub acked_bets: u64,
    /// Committed log entries seen.
    pub log_entries: u64,
    /// Simulated time.
    pub sim_ms: u64,
    /// Faults injected, in order.
    pub faults: Vec<String>,
    /// Linearizable reads checked.
    pub reads_checked: u64,
    /// Answers by kind (`done` or the refusal code).
    pub codes: BTreeMap<String, u64>,
}

impl RunReport {
    /// Whether every invariant held.
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }
}

const CLUSTER: &str = "sim";
const EPOCH_MS: u64 = 1_800_000_000_000;
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

fn node_name(id: u64) -> String {
    format!("n{id}")
}

fn gbp() -> Currency {
    Currency::parse("GBP").expect("static currency")
}

fn actor() -> Actor {
    Actor("sim-operator".into())
}

/// State shared by the driver, the hosts and the clients (all on one thread).
struct World {
    nodes: RefCell<BTreeMap<u64, Consensus>>,
    incarnations: RefCell<BTreeMap<u64, Arc<AtomicBool>>>,
    oracle: RefCell<Oracle>,
    trace: RefCell<Sha256>,
    stop_new_work: Cell<bool>,
    deadline: Cell<Duration>,
    node_ids: Vec<u64>,
    learner: Option<u64>,
    /// The operator's current market generation per event, for bettors to aim at.
    generation: RefCell<[u64; EVENTS as usize]>,
    /// The operator's next idempotency key number: each operator command has its own key,
    /// sent again with every retry of that command.
    op_keys: Cell<u64>,
}

impl World {
    fn op_key(&self) -> IdempotencyKey {
        let n = self.op_keys.get() + 1;
        self.op_keys.set(n);
        IdempotencyKey(format!("op-{n}"))
    }

    fn trace(&self, event: impl AsRef<str>) {
        let t = turmoil::sim_elapsed().unwrap_or_default().as_millis() as u64;
        if std::env::var_os("PADDOCK_SIM_TRACE").is_some() {
            eprintln!("{t} {}", event.as_ref());
        }
        let mut h = self.trace.borrow_mut();
        h.update(t.to_le_bytes());
        h.update(event.as_ref().as_bytes());
        h.update([0]);
    }

    fn violation(&self, v: String) {
        self.trace(format!("violation {v}"));
        self.oracle.borrow_mut().violations.push(v);
    }
}

async fn call<Req: Serialize, Resp: DeserializeOwned>(node: u64, rpc: Rpc, req: &Req) -> Option<Resp> {
    let transport = SimTransport::new(CLUSTER);
    let payload = postcard::to_stdvec(req).expect("requests encode");
    let bytes = transport.call(format!("{}:{PEER_PORT}", node_name(node)), rpc, payload, CALL_TIMEOUT).await.ok()?;
    postcard::from_bytes(&bytes).ok()
}

fn past_deadline(world: &World) -> bool {
    turmoil::sim_elapsed().unwrap_or_default() >= world.deadline.get()
}

/// Sends a command through random nodes until it gets a definitive answer (retrying with the
/// same body, hence the same idempotency key) or the run's deadline passes.
async fn submit(world: &World, rng: &mut Rng, command: &Command, key: Option<&str>) -> Option<Written> {
    if let Some(k) = key {
        world.oracle.borrow_mut().outstanding.insert(k.to_string());
    }
    let mut backoff = 20u64;
    loop {
        if past_deadline(world) {
            if let Some(k) = key {
                world.trace(format!("gave up {k}"));
            }
            return None;
        }
        let node = world.node_ids[rng.below(world.node_ids.len() as u64) as usize];
        let answer: Option<Result<Written, WriteError>> = call(node, Rpc::ClientWrite, command).await;
        match answer {
            Some(Ok(written)) => {
                if let Some(k) = key {
                    world.trace(format!("{k} -> {:?} @{}", written.outcome, written.log_index));
                    world.oracle.borrow_mut().answer(
                        k,
                        Acked {
                            command: command.clone(),
                            outcome: written.outcome.clone(),
                            log_index: written.log_index,
                        },
                    );
                }
                return Some(written);
            }
            Some(Err(WriteError::Refused(m))) => {
                world.trace(format!("refused {m}"));
                return None;
            }
            _ => {
                tokio::time::sleep(Duration::from_millis(backoff + rng.below(backoff))).await;
                backoff = (backoff * 2).min(400);
            }
        }
    }
}

fn rules(each_way: bool) -> MarketRules {
    MarketRules {
        stake_min: Money(10),
        stake_max: Money(50_000),
        payout_max: Money(50_000_000),
        liability_max: Money(20_000_000),
        bet_delay_ms: 0,
        closes_at: None,
        each_way: each_way.then_some(EachWayTerms { fraction_num: 1, fraction_den: 4, places: 2 }),
    }
}

const EVENTS: u64 = 4;

fn market_id(event: u64, generation: u64) -> MarketId {
    MarketId(event * 1000 + generation)
}

fn selection_id(market: MarketId, s: u64) -> SelectionId {
    SelectionId(market.0 * 10 + s)
}

fn create_market(event: u64, generation: u64) -> Command {
    let market = market_id(event, generation);
    let prices = ["2/1", "5/2", "7/4"];
    Command::CreateMarket {
        market,
        event: EventId(event),
        name: format!("market {}", market.0),
        currency: gbp(),
        selections: (0..3)
            .map(|s| NewSelection {
                selection: selection_id(market, s),
                name: format!("s{s}"),
                odds: Odds::parse(prices[s as usize]).expect("static odds"),
            })
            .collect(),
        rules: rules(event.is_multiple_of(2)),
        actor: actor(),
        key: IdempotencyKey(format!("create-market-{}", market.0)),
    }
}

/// The operator: builds the catalogue, then trades, settles, corrects and changes membership.
async fn operator(world: Rc<World>, mut rng: Rng) -> turmoil::Result {
    for e in 0..EVENTS {
        let create = Command::CreateEvent {
            event: EventId(e),
            name: format!("event {e}"),
            sport: "racing".into(),
            competition: "sim".into(),
            starts_at: TimestampMs(EPOCH_MS + 3_600_000),
            actor: actor(),
            key: world.op_key(),
        };
        submit(&world, &mut rng, &create, None).await;
        submit(&world, &mut rng, &create_market(e, 0), None).await;
    }
    let mut generation = [0u64; EVENTS as usize];
    let mut settled: Vec<MarketId> = Vec::new();
    while !world.stop_new_work.get() {
        tokio::time::sleep(Duration::from_millis(150 + rng.below(350))).await;
        let e = rng.below(EVENTS);
        let market = market_id(e, generation[e as usize]);
        let roll = rng.below(100);
        let command = match roll {
            0..=29 => Command::SetPrice {
                market,
                selection: selection_id(market, rng.below(3)),
                odds: Odds::parse(["6/4", "2/1", "9/4", "3/1", "10/11"][rng.below(5) as usize]).expect("static odds"),
                key: world.op_key(),
            },
            30..=39 => {
                Command::SuspendMarket { market, reason: "incident".into(), actor: actor(), key: world.op_key() }
            }
            40..=54 => Command::ResumeMarket { market, actor: actor(), key: world.op_key() },
            55..=59 => Command::WithdrawSelection {
                market,
                selection: selection_id(market, 2),
                deduction_pence: 15,
                actor: actor(),
                key: world.op_key(),
            },
            60..=74 => {
                // Close and settle this market, then open the next generation.
                submit(&world, &mut rng, &Command::CloseMarket { market, actor: actor(), key: world.op_key() }, None)
                    .await;
                let winner = rng.below(3);
                let results = vec![SelectionResult {
                    selection: selection_id(market, winner),
                    win: if rng.chance(150) { LegResult::DeadHeat { paid_places: 1, tied: 2 } } else { LegResult::Win },
                    place: None,
                }];
                submit(
                    &world,
                    &mut rng,
                    &Command::SettleMarket { market, results, actor: actor(), key: world.op_key() },
                    None,
                )
                .await;
                settled.push(market);
                generation[e as usize] += 1;
                world.generation.borrow_mut()[e as usize] = generation[e as usize];
                create_market(e, generation[e as usize])
            }
            75..=79 if !settled.is_empty() => {
                let old = settled[rng.below(settled.len() as u64) as usize];
                let results = vec![SelectionResult {
                    selection: selection_id(old, rng.below(3)),
                    win: LegResult::Win,
                    place: None,
                }];
                Command::ResettleMarket {
                    market: old,
                    results,
                    reason: "corrected result".into(),
                    actor: actor(),
                    key: world.op_key(),
                }
            }
            80..=81 => Command::VoidMarket { market, reason: "abandoned".into(), actor: actor(), key: world.op_key() },
            82..=84 => Command::SetConfig {
                config: BookConfig { cash_out_margin_bps: 100 + rng.below(400) as u32, ..BookConfig::default() },
                actor: actor(),
                key: world.op_key(),
            },
            _ => {
                membership(&world, &mut rng).await;
                continue;
            }
        };
        let voided = matches!(command, Command::VoidMarket { .. });
        submit(&world, &mut rng, &command, None).await;
        if voided {
            generation[e as usize] += 1;
            world.generation.borrow_mut()[e as usize] = generation[e as usize];
            submit(&world, &mut rng, &create_market(e, generation[e as usize]), None).await;
        }
    }
    Ok(())
}

/// A membership change or leader transfer, sent to whichever node leads.
async fn membership(world: &World, rng: &mut Rng) {
    let op = match (world.learner, rng.below(4)) {
        (Some(l), 0) => ForwardOp::AddLearner { id: l, addr: format!("{}:{PEER_PORT}", node_name(l)) },
        (Some(l), 1) => ForwardOp::Promote { id: l },
        (Some(l), 2) => ForwardOp::Remove { id: l },
        _ => ForwardOp::TransferLeader { to: world.node_ids[rng.below(world.node_ids.len() as u64) as usize] },
    };
    for _ in 0..10 {
        if past_deadline(world) {
            return;
        }
        let node = world.node_ids[rng.below(world.node_ids.len() as u64) as usize];
        let reply: Option<ForwardReply> = call(node, Rpc::Forward, &op).await;
        match reply {
            Some(ForwardReply::NotLeader { .. }) | None => tokio::time::sleep(Duration::from_millis(50)).await,
            Some(other) => {
                world.trace(format!("membership {op:?} -> {other:?}"));
                return;
            }
        }
    }
}

/// A bettor with its own accounts: deposits, withdrawals, bets of every type, cash-outs.
async fn bettor(world: Rc<World>, mut rng: Rng, client: u64) -> turmoil::Result {
    let accounts: Vec<AccountId> = (0..3).map(|a| AccountId(client * 100 + a)).collect();
    let mut n = 0u64;
    for a in &accounts {
        submit(&world, &mut rng, &Command::OpenAccount { account: *a, currency: gbp(), key: world.op_key() }, None)
            .await;
        n += 1;
        let key = format!("c{client}-{n}");
        let deposit = Command::Deposit { account: *a, amount: Money(20_000), key: IdempotencyKey(key.clone()) };
        submit(&world, &mut rng, &deposit, Some(&key)).await;
    }
    let mut my_bets: Vec<(AccountId, BetId, Vec<SelectionId>)> = Vec::new();
    while !world.stop_new_work.get() {
        tokio::time::sleep(Duration::from_millis(20 + rng.below(100))).await;
        n += 1;
        let key = format!("c{client}-{n}");
        let account = accounts[rng.below(3) as usize];
        let roll = rng.below(100);
        let command = if roll < 12 {
            Command::Deposit { account, amount: Money(100 + rng.below(5_000) as i64), key: IdempotencyKey(key.clone()) }
        } else if roll < 20 {
            Command::Withdraw {
                account,
                amount: Money(100 + rng.below(8_000) as i64),
                key: IdempotencyKey(key.clone()),
            }
        } else if roll < 30 && !my_bets.is_empty() {
            let (owner, bet, selections) = my_bets[rng.below(my_bets.len() as u64) as usize].clone();
            Command::CashOut {
                account: owner,
                bet,
                value: Money(50 + rng.below(2_000) as i64),
                quoted_versions: selections.iter().map(|s| (*s, 1 + rng.below(3))).collect(),
                key: IdempotencyKey(key.clone()),
            }
        } else {
            // Legs on distinct events, each on one of the latest two market generations.
            let legs_n = 1 + rng.below(4);
            let mut events: Vec<u64> = (0..EVENTS).collect();
            let mut legs = Vec::new();
            for _ in 0..legs_n {
                let e = events.remove(rng.below(events.len() as u64) as usize);
                // Mostly the live market; sometimes one just settled (refused: not open).
                let current = world.generation.borrow()[e as usize];
                let generation = if rng.chance(850) { current } else { current.saturating_sub(1) };
                let market = market_id(e, generation);
                let odds = Odds::parse(["2/1", "5/2", "7/4", "3/1"][rng.below(4) as usize]).expect("static odds");
                legs.push(LegRequest { market, selection: selection_id(market, rng.below(3)), odds });
            }
            let kind = match (legs.len(), rng.below(4)) {
                (1, _) => BetKind::Single,
                (3, 0) => BetKind::Trixie,
                (3, 1) => BetKind::Patent,
                (4, 0) => BetKind::Yankee,
                (4, 1) => BetKind::Lucky15,
                (n, 2) => BetKind::KOfN { k: (n as u32) / 2 },
                _ => BetKind::Accumulator,
            };
            // Stakes are sometimes more than the wallet holds: the funds check must refuse.
            let stake = if rng.chance(100) { 30_000 } else { 10 + rng.below(1_500) as i64 };
            Command::PlaceBet(PlaceBet {
                account,
                legs,
                kind,
                stake_per_line: Money(stake),
                each_way: rng.chance(150),
                odds_policy: [OddsPolicy::Any, OddsPolicy::Any, OddsPolicy::Any, OddsPolicy::Higher, OddsPolicy::Exact]
                    [rng.below(5) as usize],
                key: IdempotencyKey(key.clone()),
            })
        };
        let written = submit(&world, &mut rng, &command, Some(&key)).await;
        if let (Command::PlaceBet(p), Some(Written { outcome: Outcome::Done(Done::BetAccepted { bet, .. }), .. })) =
            (&command, written)
        {
            my_bets.push((p.account, bet, p.legs.iter().map(|l| l.selection).collect()));
        }
    }
    Ok(())
}

/// Invariant 9 on a single-writer register: after k acknowledged deposits to its own account,
/// a linearizable read through any node must show exactly k deposits.
async fn reader(world: Rc<World>, mut rng: Rng) -> turmoil::Result {
    let account = AccountId(9_999);
    submit(&world, &mut rng, &Command::OpenAccount { account, currency: gbp(), key: world.op_key() }, None).await;
    let mut acked = 0i64;
    let mut n = 0;
    while !world.stop_new_work.get() {
        n += 1;
        let key = format!("reader-{n}");
        let deposit = Command::Deposit { account, amount: Money(100), key: IdempotencyKey(key.clone()) };
        match submit(&world, &mut rng, &deposit, Some(&key)).await {
            Some(Written { outcome: Outcome::Done(_), .. }) => acked += 1,
            _ => return Ok(()),
        }
        let node = world.node_ids[rng.below(world.node_ids.len() as u64) as usize];
        let read: Option<Result<(u64, Option<AccountView>), String>> = call(node, Rpc::ClientRead, &account).await;
        if let Some(Ok((applied, view))) = read {
            let balance = view.map_or(0, |v| v.balance.minor());
            world.oracle.borrow_mut().reads_checked += 1;
            if balance != acked * 100 {
                world.violation(format!(
                    "linearizable read from node {node} at applied index {applied} saw balance {balance}, expected {} after {acked} acknowledged deposits",
                    acked * 100
                ));
            }
        }
        tokio::time::sleep(Duration::from_millis(50 + rng.below(200))).await;
    }
    Ok(())
}

/// The continuous checks on every running replica.
fn check_replicas(world: &World, hashes: &mut BTreeMap<u64, (u64, StateHash)>, leaders: &mut BTreeMap<u64, u64>) {
    let nodes: Vec<(u64, Consensus)> = world.nodes.borrow().iter().map(|(i, c)| (*i, c.clone())).collect();
    for (id, c) in nodes {
        let status = c.status();
        if status.role == Role::Leader {
            // Invariant 8: at most one leader per term.
            match leaders.get(&status.term) {
                Some(other) if *other != id => {
                    world.violation(format!("two leaders in term {}: nodes {other} and {id}", status.term));
                }
                _ => {
                    leaders.insert(status.term, id);
                }
            }
        }
        let (applied, checked, hash) = c.read(|d| {
            let applied = d.last_applied.map_or(0, |l| l.index);
            let mut checked = d.state.check_invariants();
            if checked.is_ok() {
                // Invariant 6: settled at most once per result version.
                for id in 1..=d.state.bet_count() as u64 {
                    let Some(bet) = d.state.bet(BetId(id)) else { continue };
                    let versions: u32 =
                        bet.legs.iter().filter_map(|(m, _, _)| d.state.market(*m)).map(|m| m.result_version).sum();
                    if bet.settle_count > versions {
                        checked =
                            Err(format!("bet {id} settled {} times over {versions} result versions", bet.settle_count));
                        break;
                    }
                }
            }
            (applied, checked, d.state.state_hash())
        });
        if let Err(broken) = checked {
            world.violation(format!("node {id} at applied index {applied}: {broken}"));
        }
        // Invariant 7: replicas at the same applied index hold the same state.
        match hashes.get(&applied) {
            Some((other, h)) if *h != hash => {
                world.violation(format!("nodes {other} and {id} differ at applied index {applied}"));
            }
            Some(_) => {}
            None => {
                hashes.insert(applied, (id, hash));
            }
        }
    }
}

thread_local! {
    /// The message and place of the last panic on this thread, for the report.
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Replaces the printing panic hook, once per process, by one that records the panic for the
/// run's report: a node panicking (a broken invariant, a failed assertion) is a finding, and
/// the report says where.
fn record_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !turmoil::in_simulation() {
                // The driver's or a test's own panic: report it as usual.
                default_hook(info);
                return;
            }
            let message = info
                .payload()
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| info.payload().downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            let place = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
            if std::env::var_os("PADDOCK_SIM_PANICS").is_some() {
                eprintln!("panic: {message}{place}\n{}", std::backtrace::Backtrace::force_capture());
            }
            // `try_with`: a panic while thread-locals are torn down must not panic again here.
            let _ = LAST_PANIC.try_with(|p| {
                if let Ok(mut p) = p.try_borrow_mut() {
                    // Keep the first: later panics are usually consequences of it.
                    if p.is_none() {
                        *p = Some(format!("{message}{place}"));
                    }
                }
            });
        }));
    });
}

/// Runs one seed.
pub fn run(config: &RunConfig) -> RunReport {
    record_panics();
    LAST_PANIC.with(|p| p.borrow_mut().take());
    paddock_ledger::faults::set_skip_funds_check(config.teeth == Teeth::SkipFundsCheck);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_inner(config)));
    paddock_ledger::faults::set_skip_funds_check(false);
    let first_panic = LAST_PANIC.with(|p| p.borrow_mut().take());
    match result {
        Ok(mut report) => {
            if let Some(p) = first_panic {
                report.violations.push(format!("a node panicked: {p}"));
            }
            report
        }
        Err(panic) => {
            let message = first_panic
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()));
            RunReport {
                seed: config.seed,
                trace_hash: "panicked".into(),
                violations: vec![format!("a node panicked: {}", message.unwrap_or_else(|| "(no message)".into()))],
                answers: 0,
                acked_bets: 0,
                log_entries: 0,
                sim_ms: 0,
                faults: Vec::new(),
                reads_checked: 0,
                codes: BTreeMap::new(),
            }
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Fault {
    Crash(u64),
    CrashMajority,
    IsolateLeader,
    Split,
    OneWay,
    Loss,
    Latency,
    Pause(u64),
    DiskEio(u64),
    DiskFull(u64),
    DiskCorrupt(u64),
}

fn run_inner(config: &RunConfig) -> RunReport {
    let mut rng = Rng::new(config.seed);
    let voters: Vec<u64> = (1..=config.voters).collect();
    let learner = config.learner.then_some(config.voters + 1);
    let node_ids: Vec<u64> = voters.iter().copied().chain(learner).collect();
    let total = config.safety + config.liveness;
    let mut builder = turmoil::Builder::new();
    builder
        .simulation_duration(total + Duration::from_secs(30))
        .tick_duration(Duration::from_millis(1))
        .rng_seed(config.seed)
        .min_message_latency(Duration::from_micros(200))
        .max_message_latency(Duration::from_millis(2 + rng.below(5)))
        .tcp_capacity(1 << 16);
    // Torn writes at crash in some runs: a write larger than a block may be cut at a block edge.
    if rng.chance(500) {
        builder.fs().block_size(512);
    }
    let mut sim = builder.build();
    let world = Rc::new(World {
        nodes: RefCell::default(),
        incarnations: RefCell::default(),
        oracle: RefCell::default(),
        trace: RefCell::new(Sha256::new()),
        stop_new_work: Cell::new(false),
        deadline: Cell::new(total),
        node_ids: node_ids.clone(),
        learner,
        generation: RefCell::new([0; EVENTS as usize]),
        op_keys: Cell::new(0),
    });
    let disk_faults: BTreeMap<u64, FaultHandle> = node_ids
        .iter()
        .map(|i| {
            (*i, Arc::new(Mutex::new(DiskFaults { rng: Some(Rng::new(config.seed ^ i)), ..DiskFaults::default() })))
        })
        .collect();
    let log_faults = FaultSwitches { ack_before_fsync: config.teeth == Teeth::AckBeforeFsync };
    let bootstrap: BTreeMap<u64, String> =
        voters.iter().map(|i| (*i, format!("{}:{PEER_PORT}", node_name(*i)))).collect();
    for &id in &node_ids {
        let world = world.clone();
        let faults = disk_faults[&id].clone();
        let bootstrap = bootstrap.clone();
        let node_seed = config.seed.wrapping_mul(31).wrapping_add(id);
        sim.host(node_name(id), move || {
            let world = world.clone();
            let faults = faults.clone();
            let bootstrap = bootstrap.clone();
            async move {
                let alive = Arc::new(AtomicBool::new(true));
                world.incarnations.borrow_mut().insert(id, alive.clone());
                let disk = SimDisk::new(Incarnation { faults, alive });
                // Subscribed before the node opens, so that entries it replays at start-up
                // reach the log record too.
                let (events, mut applied) = tokio::sync::broadcast::channel(1 << 14);
                let core = CoreConfig {
                    node_id: id,
                    cluster_id: CLUSTER.into(),
                    data_dir: "/data".into(),
                    timing: Timing::default(),
                    snapshot_logs_since_last: 150,
                    snapshot_log_keep: 1_000,
                    clock_offset_max_ms: 500,
                    write_timeout: Duration::from_secs(3),
                    log_faults,
                    applied_events: Some(events.clone()),
                };
                let clock: paddock_consensus::Clock =
                    Arc::new(|| TimestampMs(EPOCH_MS + turmoil::sim_elapsed().unwrap_or_default().as_millis() as u64));
                let inner_world = world.clone();
                let node = DeterministicRng::<TokioRuntime>::scope(node_seed, async move {
                    let world = inner_world;
                    let started = Consensus::start_core(
                        core,
                        clock,
                        Arc::new(disk),
                        Arc::new(SimTransport::new(CLUSTER)),
                        IoMode::Inline,
                    )
                    .await;
                    let (consensus, handler) = match started {
                        Ok(parts) => parts,
                        Err(e) => {
                            world.trace(format!("node {id} could not start: {e}"));
                            return Ok(());
                        }
                    };
                    if id == 1 {
                        let _ = consensus.bootstrap(bootstrap).await;
                    }
                    let recorder = world.clone();
                    tokio::task::spawn_local(async move {
                        loop {
                            match applied.recv().await {
                                Ok(e) => recorder.oracle.borrow_mut().applied(id, e.index, &e.command, &e.outcome),
                                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                            }
                        }
                    });
                    world.nodes.borrow_mut().insert(id, consensus);
                    net::serve(handler).await?;
                    Ok(())
                });
                // A panic in the node's own future (openraft's tasks catch theirs) freezes the
                // node instead of shutting the runtime down: see `sim_runtime` in consensus.
                match futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(node)).await {
                    Ok(result) => result,
                    Err(_) => std::future::pending().await,
                }
            }
        });
    }
    let client_seed = rng.next_u64();
    {
        let w = world.clone();
        let r = Rng::new(client_seed);
        sim.client("operator", async move { operator(w, r).await });
    }
    for c in 1..=3u64 {
        let w = world.clone();
        let r = Rng::new(client_seed ^ (c * 7919));
        sim.client(format!("bettor{c}"), async move { bettor(w, r, c).await });
    }
    {
        let w = world.clone();
        let r = Rng::new(client_seed ^ 0xABCD);
        sim.client("reader", async move { reader(w, r).await });
    }

    // The nemesis: a schedule of faults over the safety phase.
    let mut schedule: Vec<(Duration, Fault, Duration)> = Vec::new();
    let mut t = Duration::from_millis(1_500);
    while t < config.safety {
        let pick = |rng: &mut Rng| node_ids[rng.below(node_ids.len() as u64) as usize];
        let fault = match rng.below(11) {
            0 => Fault::Crash(pick(&mut rng)),
            1 => Fault::CrashMajority,
            2 => Fault::IsolateLeader,
            3 => Fault::Split,
            4 => Fault::OneWay,
            5 => Fault::Loss,
            6 => Fault::Latency,
            7 => Fault::Pause(pick(&mut rng)),
            8 => Fault::DiskEio(pick(&mut rng)),
            9 => Fault::DiskFull(pick(&mut rng)),
            _ => Fault::DiskCorrupt(pick(&mut rng)),
        };
        let length = Duration::from_millis(300 + rng.below(2_000));
        schedule.push((t, fault, length));
        t += length + Duration::from_millis(200 + rng.below(1_200));
    }
    let mut faults_log = Vec::new();
    let mut active: Vec<(Duration, Fault, Vec<u64>)> = Vec::new();
    let mut crashed: BTreeSet<u64> = BTreeSet::new();
    let mut hashes = BTreeMap::new();
    let mut leaders = BTreeMap::new();
    let mut next = 0usize;
    let mut healed = false;
    let mut step_n: u64 = 0;
    let names: Vec<String> = node_ids.iter().map(|i| node_name(*i)).collect();
    let leader_of = |world: &World| {
        world.nodes.borrow().values().map(|c| c.status()).find(|s| s.role == Role::Leader).map(|s| s.node_id)
    };

    let crash = |sim: &mut turmoil::Sim, world: &World, id: u64, crashed: &mut BTreeSet<u64>| {
        if crashed.insert(id) {
            if let Some(alive) = world.incarnations.borrow().get(&id) {
                alive.store(false, Ordering::SeqCst);
            }
            world.nodes.borrow_mut().remove(&id);
            sim.crash(node_name(id));
        }
    };
    let restart = |sim: &mut turmoil::Sim, id: u64, crashed: &mut BTreeSet<u64>| {
        if crashed.remove(&id) {
            sim.bounce(node_name(id));
        }
    };

    let outcome = loop {
        let done = match sim.step() {
            Ok(done) => done,
            Err(e) => break Err(format!("simulation error: {e}")),
        };
        step_n += 1;
        let now = sim.elapsed();
        if done {
            break Ok(());
        }
        if now >= total + Duration::from_secs(25) {
            break Err("liveness: clients still had requests outstanding when the run ended".into());
        }
        // End faults whose time is up.
        let mut ending = Vec::new();
        active.retain(|(until, f, nodes)| {
            if *until <= now {
                ending.push((*f, nodes.clone()));
                false
            } else {
                true
            }
        });
        for (f, nodes) in ending {
            match f {
                Fault::Crash(_) | Fault::CrashMajority | Fault::DiskEio(_) | Fault::DiskFull(_) => {
                    for id in nodes {
                        let mut d = disk_faults[&id].lock().expect("disk faults lock");
                        d.eio = false;
                        d.full = false;
                        drop(d);
                        // A disk error poisons the node's log: like an operator would, restart it.
                        crash(&mut sim, &world, id, &mut crashed);
                        restart(&mut sim, id, &mut crashed);
                    }
                }
                Fault::DiskCorrupt(id) => {
                    disk_faults[&id].lock().expect("disk faults lock").corrupt_reads_per_mille = 0;
                    crash(&mut sim, &world, id, &mut crashed);
                    restart(&mut sim, id, &mut crashed);
                }
                Fault::Pause(id) => {
                    for other in &names {
                        sim.release(node_name(id), other.as_str());
                    }
                }
                Fault::IsolateLeader | Fault::Split | Fault::OneWay => {
                    for a in &names {
                        for b in &names {
                            if a != b {
                                sim.repair(a.as_str(), b.as_str());
                            }
                        }
                    }
                }
                Fault::Loss => {
                    for a in &names {
                        for b in &names {
                            if a != b {
                                sim.set_link_fail_rate(a.as_str(), b.as_str(), 0.0);
                            }
                        }
                    }
                }
                Fault::Latency => sim.set_max_message_latency(Duration::from_millis(5)),
            }
            world.trace(format!("end {f:?}"));
        }
        // Start scheduled faults.
        while next < schedule.len() && schedule[next].0 <= now && now < config.safety {
            let (_, fault, length) = schedule[next];
            next += 1;
            let mut touched = Vec::new();
            match fault {
                Fault::Crash(id) => {
                    crash(&mut sim, &world, id, &mut crashed);
                    touched.push(id);
                }
                Fault::CrashMajority => {
                    for &id in voters.iter().take(voters.len() / 2 + 1) {
                        crash(&mut sim, &world, id, &mut crashed);
                        touched.push(id);
                    }
                }
                Fault::IsolateLeader => {
                    if let Some(l) = leader_of(&world) {
                        for other in &names {
                            if *other != node_name(l) {
                                sim.partition(node_name(l), other.as_str());
                            }
                        }
                    }
                }
                Fault::Split => {
                    let cut = 1 + rng.below(names.len() as u64 - 1) as usize;
                    for a in &names[..cut] {
                        for b in &names[cut..] {
                            sim.partition(a.as_str(), b.as_str());
                        }
                    }
                }
                Fault::OneWay => {
                    let a = &names[rng.below(names.len() as u64) as usize];
                    let b = &names[rng.below(names.len() as u64) as usize];
                    if a != b {
                        sim.partition_oneway(a.as_str(), b.as_str());
                    }
                }
                Fault::Loss => {
                    for a in &names {
                        for b in &names {
                            if a != b && rng.chance(500) {
                                sim.set_link_fail_rate(a.as_str(), b.as_str(), 0.05 + rng.below(250) as f64 / 1000.0);
                            }
                        }
                    }
                }
                Fault::Latency => sim.set_max_message_latency(Duration::from_millis(20 + rng.below(200))),
                Fault::Pause(id) => {
                    for other in &names {
                        if *other != node_name(id) {
                            sim.hold(node_name(id), other.as_str());
                        }
                    }
                }
                Fault::DiskEio(id) => {
                    disk_faults[&id].lock().expect("disk faults lock").eio = true;
                    touched.push(id);
                }
                Fault::DiskFull(id) => {
                    disk_faults[&id].lock().expect("disk faults lock").full = true;
                    touched.push(id);
                }
                Fault::DiskCorrupt(id) => {
                    disk_faults[&id].lock().expect("disk faults lock").corrupt_reads_per_mille = 50;
                }
            }
            let note = format!("{:.3}s {fault:?} for {:.3}s", now.as_secs_f64(), length.as_secs_f64());
            world.trace(&note);
            faults_log.push(note);
            active.push((now + length, fault, touched));
        }
        // Heal everything at the end of the safety phase.
        if now >= config.safety && !healed {
            healed = true;
            world.stop_new_work.set(true);
            for (_, f, nodes) in active.drain(..) {
                if let Fault::Pause(id) = f {
                    for other in &names {
                        sim.release(node_name(id), other.as_str());
                    }
                }
                for id in nodes {
                    let mut d = disk_faults[&id].lock().expect("disk faults lock");
                    d.eio = false;
                    d.full = false;
                }
            }
            for id in &node_ids {
                let mut d = disk_faults[id].lock().expect("disk faults lock");
                d.eio = false;
                d.full = false;
                d.corrupt_reads_per_mille = 0;
            }
            for a in &names {
                for b in &names {
                    if a != b {
                        sim.repair(a.as_str(), b.as_str());
                        sim.set_link_fail_rate(a.as_str(), b.as_str(), 0.0);
                    }
                }
            }
            sim.set_max_message_latency(Duration::from_millis(5));
            // Restart every node: crashed ones, and those whose disk fault poisoned their log.
            for id in node_ids.clone() {
                crash(&mut sim, &world, id, &mut crashed);
                restart(&mut sim, id, &mut crashed);
            }
            world.trace("healed");
        }
        if step_n.is_multiple_of(100) {
            check_replicas(&world, &mut hashes, &mut leaders);
        }
    };

    let mut report_violations = Vec::new();
    if let Err(e) = outcome {
        report_violations.push(e);
    }
    // Convergence: every node reaches the same applied index and the same state.
    let mut converged = false;
    for _ in 0..20_000 {
        if sim.step().is_err() {
            break;
        }
        let views: Vec<(u64, u64, StateHash)> = world
            .nodes
            .borrow()
            .iter()
            .map(|(id, c)| c.read(|d| (*id, d.last_applied.map_or(0, |l| l.index), d.state.state_hash())))
            .collect();
        let members = world
            .nodes
            .borrow()
            .values()
            .next()
            .map(|c| c.status().members.iter().map(|m| m.id).collect::<BTreeSet<_>>());
        let expected = members.unwrap_or_default();
        let present: Vec<&(u64, u64, StateHash)> = views.iter().filter(|(id, _, _)| expected.contains(id)).collect();
        if present.len() == expected.len()
            && !present.is_empty()
            && present.windows(2).all(|w| w[0].1 == w[1].1 && w[0].2 == w[1].2)
        {
            converged = true;
            world.trace(format!("converged at {} with {}", present[0].1, present[0].2));
            break;
        }
    }
    check_replicas(&world, &mut hashes, &mut leaders);
    if !converged {
        report_violations.push("replicas did not converge on one applied index and state hash after healing".into());
    }
    // The client oracle against the final state.
    let final_state = world.nodes.borrow().values().next().cloned();
    let mut oracle = world.oracle.borrow_mut();
    oracle.check_no_bet_on_a_closed_market();
    if !oracle.outstanding.is_empty() {
        report_violations.push(format!("liveness: {} requests never got an answer", oracle.outstanding.len()));
    }
    if let Some(node) = final_state {
        let bets = oracle.bets.clone();
        let mut found = Vec::new();
        node.read(|d| {
            let mut per_account: BTreeMap<AccountId, usize> = BTreeMap::new();
            for b in &bets {
                *per_account.entry(b.account).or_default() += 1;
                match d.state.bet(b.bet) {
                    None => found.push(format!("acknowledged bet {} is missing", b.bet)),
                    Some(v)
                        if v.account != b.account
                            || v.stake != b.stake
                            || v.legs.iter().map(|l| l.2).collect::<Vec<_>>() != b.odds =>
                    {
                        found.push(format!("bet {} differs from what was acknowledged", b.bet))
                    }
                    Some(_) => {}
                }
            }
            for (account, acked) in per_account {
                // Invariant 3: exactly once — the book holds no more bets than were acknowledged
                // for this account (every placement key was acknowledged or refused).
                let held = d
                    .state
                    .bets_of(account)
                    .iter()
                    .filter(|v| !matches!(v.status, paddock_ledger::BetStatus::Rejected(_)))
                    .count();
                if held != acked {
                    found.push(format!("account {account} holds {held} bets, {acked} were acknowledged"));
                }
            }
        });
        oracle.violations.extend(found);
    } else {
        report_violations.push("no node running at the end".into());
    }
    report_violations.extend(oracle.violations.iter().cloned());
    let trace_hash = {
        let mut h = world.trace.borrow().clone();
        h.update(format!("{report_violations:?}"));
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    };
    let codes = oracle.codes();
    let sim_ms = sim.elapsed().as_millis() as u64;
    let (answers, acked_bets, log_entries, reads_checked) =
        (oracle.answers.len() as u64, oracle.bets.len() as u64, oracle.log.len() as u64, oracle.reads_checked);
    drop(oracle);
    // The simulation is over: what the dropped nodes flush on close goes nowhere.
    for alive in world.incarnations.borrow().values() {
        alive.store(false, Ordering::SeqCst);
    }
    world.nodes.borrow_mut().clear();
    drop(sim);
    RunReport {
        seed: config.seed,
        codes,
        trace_hash,
        violations: report_violations,
        answers,
        acked_bets,
        log_entries,
        sim_ms,
        faults: faults_log,
        reads_checked,
    }
}
