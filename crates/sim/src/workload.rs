//! The clients: an operator, an admin, bettors, a reader and a resolver, all talking to the
//! cluster through random nodes over the peer protocol, all drawing from the seed.
//!
//! - The operator builds a catalogue of [`EVENTS`] events and trades it: prices,
//!   suspensions, non-runners (Rule 4), close and settle (sometimes a dead heat, sometimes a
//!   pause between close and settle), resettlements, voids, book configuration.
//! - The admin changes membership: leadership transfers and, once the log has had time to be
//!   purged, the learner dance — add the learner and, while it is still catching up (usually
//!   by installing a snapshot), promote or remove it.
//! - Bettors deposit, withdraw, bet (every bet type, each-way, stakes sometimes beyond the
//!   wallet, every odds policy) and cash out. Bets on the in-play event are plain singles: they
//!   wait for the market's in-play delay and are decided by `ResolvePending`.
//! - The reader deposits to its own account and reads it back (`check::linearizable`).
//! - The resolver submits `ResolvePending` as the node's background job does in production.
//!
//! Every command but `ResolvePending` carries an idempotency key (each operator command its
//! own); a client whose answer is lost retries the same command, hence the same key, through a
//! random node.

use crate::check::{linearizable, retries};
use crate::oracle::Acked;
use crate::paths::{self, Path};
use crate::rng::Rng;
use crate::world::{call, node_name, World, EPOCH_MS};
use paddock_consensus::transport::Rpc;
use paddock_consensus::{ForwardOp, ForwardReply, WriteError, Written};
use paddock_ledger::{
    AccountId, AccountView, Actor, BetId, BetKind, BookConfig, Command, Currency, Done, EachWayTerms, EventId,
    IdempotencyKey, LegRequest, LegResult, MarketId, MarketRules, Money, NewSelection, Odds, OddsPolicy, Outcome,
    PlaceBet, SelectionId, SelectionResult, TimestampMs,
};
use std::rc::Rc;
use std::time::Duration;

/// Events in the catalogue. Events 0..=3 are pre-match (even ones offer each-way); the last
/// is the in-play event, whose markets have a bet delay.
pub(crate) const EVENTS: u64 = 5;
/// The in-play event.
const IN_PLAY: u64 = EVENTS - 1;
/// Bettor clients.
const BETTORS: u64 = 4;
/// Accounts per bettor.
const ACCOUNTS_PER_BETTOR: u64 = 3;
/// The reader's account.
const READER_ACCOUNT: AccountId = AccountId(9_999);

fn gbp() -> Currency {
    Currency::parse("GBP").expect("static currency")
}

fn actor() -> Actor {
    Actor("sim-operator".into())
}

fn odds(text: &str) -> Odds {
    Odds::parse(text).expect("static odds")
}

/// The accounts bettors bet from.
pub(crate) fn bettor_accounts() -> Vec<AccountId> {
    (1..=BETTORS).flat_map(|c| (0..ACCOUNTS_PER_BETTOR).map(move |a| AccountId(c * 100 + a))).collect()
}

fn market_id(event: u64, generation: u64) -> MarketId {
    MarketId(event * 1000 + generation)
}

fn selection_id(market: MarketId, s: u64) -> SelectionId {
    SelectionId(market.0 * 10 + s)
}

fn rules(event: u64, bet_delay_ms: u64) -> MarketRules {
    MarketRules {
        stake_min: Money(10),
        stake_max: Money(50_000),
        payout_max: Money(50_000_000),
        liability_max: Money(20_000_000),
        bet_delay_ms: if event == IN_PLAY { bet_delay_ms } else { 0 },
        closes_at: None,
        each_way: (event != IN_PLAY && event.is_multiple_of(2)).then_some(EachWayTerms {
            fraction_num: 1,
            fraction_den: 4,
            places: 2,
        }),
    }
}

fn create_market(world: &World, event: u64, generation: u64) -> Command {
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
                odds: odds(prices[s as usize]),
            })
            .collect(),
        rules: rules(event, world.config.bet_delay_ms),
        actor: actor(),
        key: IdempotencyKey(format!("create-market-{}", market.0)),
    }
}

/// Starts every client.
pub(crate) fn spawn(sim: &mut turmoil::Sim, world: &Rc<World>, seed: u64) {
    let w = world.clone();
    sim.client("operator", async move { operator(w, Rng::new(seed)).await });
    let w = world.clone();
    sim.client("admin", async move { admin(w, Rng::new(seed ^ 0xAD)).await });
    for c in 1..=BETTORS {
        let w = world.clone();
        sim.client(format!("bettor{c}"), async move { bettor(w, Rng::new(seed ^ (c * 7919)), c).await });
    }
    let w = world.clone();
    sim.client("reader", async move { reader(w, Rng::new(seed ^ 0xABCD)).await });
    let w = world.clone();
    sim.client("resolver", async move { resolver(w, Rng::new(seed ^ 0x7E50)).await });
}

/// A random node to send a request to: one of the voters at bootstrap. Not the learner: while
/// it is not a member it knows no leader and answers only when its write timeout has passed,
/// which would starve the workload.
fn pick_node(world: &World, rng: &mut Rng) -> u64 {
    world.voters()[rng.below(world.voters().len() as u64) as usize]
}

/// Sends a command through random nodes until it gets a definitive answer (retrying with the
/// same body, hence the same idempotency key) or the run's deadline passes. With `key`, the
/// answers are recorded in the client oracle and retries compared with the first.
pub(crate) async fn submit(world: &World, rng: &mut Rng, command: &Command, key: Option<&str>) -> Option<Written> {
    if let Some(k) = key {
        world.clients.borrow_mut().outstanding.insert(k.to_string());
    }
    let mut backoff = 20u64;
    loop {
        if world.past_deadline() {
            if let Some(k) = key {
                world.trace(format!("gave up {k}"));
            }
            return None;
        }
        let node = pick_node(world, rng);
        let answer: Option<Result<Written, WriteError>> = call(node, Rpc::ClientWrite, command).await;
        match answer {
            Some(Ok(written)) => {
                if let Some(k) = key {
                    world.trace(format!("{k} -> {:?} @{}", written.outcome, written.log_index));
                    let acked = Acked {
                        command: command.clone(),
                        outcome: written.outcome.clone(),
                        log_index: written.log_index,
                    };
                    let first = world.clients.borrow_mut().answer(k, acked.clone());
                    if let Some(first) = first {
                        retries::compare(world, k, &first, &acked);
                    }
                }
                return Some(written);
            }
            Some(Err(WriteError::Refused(m))) => {
                world.trace(format!("refused {m}"));
                return None;
            }
            other => {
                if let Some(k) = key {
                    world.trace(format!("{k} via node {node}: no answer ({other:?})"));
                }
                tokio::time::sleep(Duration::from_millis(backoff + rng.below(backoff))).await;
                backoff = (backoff * 2).min(400);
            }
        }
    }
}

/// The operator: builds the catalogue, then trades, settles and corrects it.
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
        submit(&world, &mut rng, &create_market(&world, e, 0), None).await;
    }
    let mut generation = [0u64; EVENTS as usize];
    let mut settled: Vec<MarketId> = Vec::new();
    while !world.stop_new_work.get() {
        tokio::time::sleep(Duration::from_millis(150 + rng.below(350))).await;
        let e = rng.below(EVENTS);
        let market = market_id(e, generation[e as usize]);
        let command = match rng.below(100) {
            0..=29 => Command::SetPrice {
                market,
                selection: selection_id(market, rng.below(3)),
                odds: odds(["6/4", "2/1", "9/4", "3/1", "10/11"][rng.below(5) as usize]),
                key: world.op_key(),
            },
            30..=41 => {
                Command::SuspendMarket { market, reason: "incident".into(), actor: actor(), key: world.op_key() }
            }
            42..=57 => Command::ResumeMarket { market, actor: actor(), key: world.op_key() },
            58..=63 => Command::WithdrawSelection {
                market,
                selection: selection_id(market, 2),
                deduction_pence: 15,
                actor: actor(),
                key: world.op_key(),
            },
            64..=81 => {
                // Close and settle this market (sometimes a while apart: bets keep coming and
                // must be refused), then open the next generation.
                submit(&world, &mut rng, &Command::CloseMarket { market, actor: actor(), key: world.op_key() }, None)
                    .await;
                if rng.chance(300) {
                    tokio::time::sleep(Duration::from_millis(50 + rng.below(300))).await;
                }
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
                create_market(&world, e, generation[e as usize])
            }
            82..=89 if !settled.is_empty() => {
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
            90..=92 => Command::VoidMarket { market, reason: "abandoned".into(), actor: actor(), key: world.op_key() },
            // Settled history out of the state, as a node's retention job asks for it: markets
            // resulted more than half a (simulated) second ago, a few at a time.
            93..=97 => {
                let now = EPOCH_MS + turmoil::sim_elapsed().unwrap_or_default().as_millis() as u64;
                Command::ArchiveSettled {
                    before: TimestampMs(now.saturating_sub(500)),
                    markets_max: 1 + rng.below(3) as u32,
                    actor: actor(),
                    key: world.op_key(),
                }
            }
            _ => Command::SetConfig {
                config: BookConfig { cash_out_margin_bps: 100 + rng.below(400) as u32, ..BookConfig::default() },
                actor: actor(),
                key: world.op_key(),
            },
        };
        let voided = matches!(command, Command::VoidMarket { .. });
        submit(&world, &mut rng, &command, None).await;
        if voided {
            generation[e as usize] += 1;
            world.generation.borrow_mut()[e as usize] = generation[e as usize];
            submit(&world, &mut rng, &create_market(&world, e, generation[e as usize]), None).await;
        }
    }
    Ok(())
}

/// The admin: leadership transfers and, with a learner, the learner dance.
async fn admin(world: Rc<World>, mut rng: Rng) -> turmoil::Result {
    // The dance waits until the leader must have purged its log (openraft purges in batches
    // of 256 entries behind the newest snapshot): a learner added then cannot be caught up
    // from the log and needs a snapshot.
    let purged_by = 256 + world.config.snapshot_keep + world.config.snapshot_interval + 20;
    while !world.stop_new_work.get() {
        tokio::time::sleep(Duration::from_millis(600 + rng.below(1_400))).await;
        let log_index = world.committed.borrow().entries.keys().next_back().copied().unwrap_or(0);
        match world.learner {
            Some(l) if log_index >= purged_by && rng.chance(700) => {
                let add = ForwardOp::AddLearner { id: l, addr: format!("{}:{}", node_name(l), crate::net::PEER_PORT) };
                let then = if rng.chance(600) { ForwardOp::Promote { id: l } } else { ForwardOp::Remove { id: l } };
                if rng.chance(250) {
                    membership(&world, &mut rng, then).await;
                    continue;
                }
                // Promote or remove the learner while it is still catching up: try again every
                // few milliseconds (refused until the learner is a member, or while the last
                // membership change is uncommitted) until it is done or the learner caught up.
                let added = std::cell::Cell::new(false);
                let (mut a, mut b) = (rng.fork(), rng.fork());
                futures::join!(
                    async {
                        membership(&world, &mut a, add).await;
                        added.set(true);
                    },
                    async {
                        for _ in 0..50 {
                            tokio::time::sleep(Duration::from_millis(2 + b.below(6))).await;
                            let last_try = added.get();
                            if matches!(membership(&world, &mut b, then.clone()).await, Some(ForwardReply::Done))
                                || last_try
                            {
                                break;
                            }
                        }
                    }
                );
            }
            _ => {
                let to = world.node_ids[rng.below(world.node_ids.len() as u64) as usize];
                membership(&world, &mut rng, ForwardOp::TransferLeader { to }).await;
            }
        }
    }
    Ok(())
}

/// A membership change or leader transfer, sent to whichever node leads; its answer, if any.
async fn membership(world: &World, rng: &mut Rng, op: ForwardOp) -> Option<ForwardReply> {
    let changes_voters = matches!(op, ForwardOp::Promote { .. } | ForwardOp::Remove { .. });
    let (started_before, in_flight_before) = paths::installs(&world.probes);
    for _ in 0..10 {
        if world.past_deadline() {
            return None;
        }
        let node = pick_node(world, rng);
        let reply: Option<ForwardReply> = call(node, Rpc::Forward, &op).await;
        match reply {
            Some(ForwardReply::NotLeader { .. }) | None => tokio::time::sleep(Duration::from_millis(50)).await,
            Some(other) => {
                world.trace(format!("membership {op:?} -> {other:?}"));
                let (started, in_flight) = paths::installs(&world.probes);
                let overlapped = in_flight_before > 0 || started > started_before || in_flight > 0;
                if changes_voters && overlapped && matches!(other, ForwardReply::Done) {
                    world.reached(Path::MembershipDuringSnapshot);
                }
                return Some(other);
            }
        }
    }
    None
}

/// A bettor with its own accounts: deposits, withdrawals, bets of every type, cash-outs.
async fn bettor(world: Rc<World>, mut rng: Rng, client: u64) -> turmoil::Result {
    let accounts: Vec<AccountId> = (0..ACCOUNTS_PER_BETTOR).map(|a| AccountId(client * 100 + a)).collect();
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
        tokio::time::sleep(Duration::from_millis(5 + rng.below(45))).await;
        n += 1;
        let key = format!("c{client}-{n}");
        let account = accounts[rng.below(ACCOUNTS_PER_BETTOR) as usize];
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
            place_bet(&world, &mut rng, account, key.clone())
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

/// A bet: a single on the in-play event (held for its delay), or legs on distinct pre-match
/// events, each on one of the latest two market generations.
fn place_bet(world: &World, rng: &mut Rng, account: AccountId, key: String) -> Command {
    let leg = |rng: &mut Rng, e: u64| {
        // Mostly the live market; sometimes one just settled (refused: not open).
        let current = world.generation.borrow()[e as usize];
        let generation = if rng.chance(850) { current } else { current.saturating_sub(1) };
        let market = market_id(e, generation);
        LegRequest {
            market,
            selection: selection_id(market, rng.below(3)),
            odds: odds(["2/1", "5/2", "7/4", "3/1"][rng.below(4) as usize]),
        }
    };
    let in_play = rng.chance(250);
    let legs: Vec<LegRequest> = if in_play {
        vec![leg(rng, IN_PLAY)]
    } else {
        let mut events: Vec<u64> = (0..IN_PLAY).collect();
        let mut legs = Vec::new();
        for _ in 0..1 + rng.below(IN_PLAY) {
            let e = events.remove(rng.below(events.len() as u64) as usize);
            legs.push(leg(rng, e));
        }
        legs
    };
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
        each_way: !in_play && rng.chance(150),
        odds_policy: [OddsPolicy::Any, OddsPolicy::Any, OddsPolicy::Any, OddsPolicy::Higher, OddsPolicy::Exact]
            [rng.below(5) as usize],
        key: IdempotencyKey(key),
    })
}

/// The reader: a single-writer register read back through random nodes (invariant 9).
async fn reader(world: Rc<World>, mut rng: Rng) -> turmoil::Result {
    let account = READER_ACCOUNT;
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
        let node = pick_node(&world, &mut rng);
        let read: Option<Result<(u64, Option<AccountView>), String>> = call(node, Rpc::ClientRead, &account).await;
        if let Some(Ok((applied, view))) = read {
            linearizable::check_read(&world, node, applied, view.map_or(0, |v| v.balance.minor()), acked);
        }
        tokio::time::sleep(Duration::from_millis(50 + rng.below(200))).await;
    }
    Ok(())
}

/// The resolver: `ResolvePending` every 100–200 ms, as the leader's background job submits
/// it in production, and once more after the last bets' delay has passed.
async fn resolver(world: Rc<World>, mut rng: Rng) -> turmoil::Result {
    while !world.stop_new_work.get() {
        tokio::time::sleep(Duration::from_millis(100 + rng.below(100))).await;
        submit(&world, &mut rng, &Command::ResolvePending, None).await;
    }
    tokio::time::sleep(Duration::from_millis(world.config.bet_delay_ms + 200)).await;
    submit(&world, &mut rng, &Command::ResolvePending, None).await;
    Ok(())
}
