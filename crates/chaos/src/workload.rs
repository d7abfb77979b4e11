//! A bank-style concurrent workload through `paddock-client`, recorded by the [`Oracle`].
//!
//! - Setup (before any fault): `accounts` accounts are opened and funded, one event and a few
//!   multi-selection markets are created.
//! - Workers loop until the run's [`Stop`] (and a bound on operations): deposits (20 %),
//!   withdrawals (20 %; one in twenty asks for about everything, so accounts get drained while
//!   bets race them, and refusals for lack of funds happen) and single bets (60 %) at any
//!   price (`odds_policy` "any") on a random open market. Deposits outweigh withdrawals and
//!   expected betting losses, so long runs do not starve.
//! - An operator now and then moves a price, and retires a market: closes it (while workers
//!   may still be betting on it), settles it with a winner it chose beforehand, and opens a
//!   new one.
//!
//! # Retries
//! The [`Caller`] holds one `paddock_client::Client` per node (`Client::node(i)` of a client
//! given every node URL) and retries *itself*, one HTTP request per attempt, with the same
//! idempotency key and body, moving to the next node after each failure. Doing the retries
//! here rather than inside the client puts each attempt on the oracle's timeline (for the
//! unavailability figures) and counts them. An operation whose attempts or time budget run
//! out on retryable errors is recorded as unknown; [`resolve`] settles those after healing.
//!
//! Operator actions carry idempotency keys of their own, like the money operations: every
//! attempt of one action sends the same key, so an acknowledgement means it happened exactly
//! once, and an action whose outcome stayed unknown is re-sent with its key by [`resolve`]
//! after healing. The workload never takes "already exists" or "already settled" for success:
//! it knows what it did, and the checker verifies each action took effect exactly once.

use crate::oracle::*;
use crate::rng::Rng;
use paddock_api::wire::*;
use paddock_client::{Client, ClientError, RetryPolicy};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Prices the markets are opened and moved at: fractional, with awkward denominators so that
/// payouts exercise the rounding.
const PRICES: &[&str] = &["2/1", "5/2", "7/3", "11/8", "4/9", "13/7", "6/5", "9/4", "10/3", "8/11"];

/// Currency of every account and market.
pub const CURRENCY: &str = "GBP";

/// Workload settings.
#[derive(Clone, Debug)]
pub struct WorkloadConfig {
    /// Concurrent workers.
    pub workers: usize,
    /// Accounts (ids 1..=accounts).
    pub accounts: u64,
    /// Each account's opening deposit.
    pub initial_deposit_minor: i64,
    /// Markets open at a time.
    pub open_markets: usize,
    /// Pause after each operation of a worker.
    pub op_pause: Duration,
    /// Timeout of one HTTP request.
    pub request_timeout: Duration,
    /// Attempts per operation before it is recorded as unknown.
    pub op_attempts: u32,
    /// Time per operation before it is recorded as unknown.
    pub op_budget: Duration,
    /// Share of operations (percent) sent by an impatient client: one attempt, no retry, so
    /// that a fault leaves some outcomes unknown for the resolution to settle.
    pub impatient_percent: u64,
    /// Upper bound on operations per worker (the deadline usually ends them first).
    pub ops_per_worker_max: u64,
}

impl Default for WorkloadConfig {
    fn default() -> WorkloadConfig {
        WorkloadConfig {
            workers: 8,
            accounts: 16,
            initial_deposit_minor: 100_000,
            open_markets: 3,
            op_pause: Duration::from_millis(10),
            request_timeout: Duration::from_millis(2_500),
            op_attempts: 8,
            op_budget: Duration::from_secs(8),
            impatient_percent: 10,
            ops_per_worker_max: 1_000_000,
        }
    }
}

/// How hard one call is retried.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Attempts in all.
    pub attempts: u32,
    /// Time in all (no new attempt starts after it).
    pub budget: Duration,
}

/// The result of a call with retries.
pub struct Retried<T> {
    /// The answer, a definitive refusal, or the last retryable error.
    pub result: Result<T, ClientError>,
    /// Requests made.
    pub attempts: u32,
}

impl<T> Retried<T> {
    /// Whether the result is definitive (an answer or a refusal).
    pub fn definitive(&self) -> bool {
        match &self.result {
            Ok(_) => true,
            Err(e) => !uncertain(e),
        }
    }
}

/// Whether an error leaves the outcome open (retry with the same key). Beyond the client's
/// retryable errors: an undecodable success and an error without a stable code.
pub fn uncertain(e: &ClientError) -> bool {
    e.is_retryable() || matches!(e, ClientError::Decode(_)) || e.code() == Some("unknown")
}

/// A short name for an error's kind.
fn error_kind(e: &ClientError, took: Duration, timeout: Duration) -> String {
    match e {
        ClientError::Api { code, .. } => code.clone(),
        ClientError::Transport(m) => {
            if m.contains("timed out") || took + Duration::from_millis(50) >= timeout {
                "timeout".into()
            } else {
                "transport".into()
            }
        }
        ClientError::Unsent(_) => "connect".into(),
        ClientError::Decode(_) => "decode".into(),
        ClientError::Config(_) => "config".into(),
    }
}

/// One client per node, and the retry loop.
pub struct Caller {
    clients: Vec<Client>,
    timeout: Duration,
    keys: Vec<(paddock_api::Role, String)>,
}

impl Caller {
    /// Clients for every node URL holding the harness's keys, one attempt per call.
    pub fn new(urls: Vec<String>, timeout: Duration, keys: &[(paddock_api::Role, String)]) -> Caller {
        let base = Client::new(urls, timeout).with_keys(keys).with_retry(RetryPolicy {
            attempts: 1,
            backoff: Duration::from_millis(1),
            backoff_max: Duration::from_millis(1),
        });
        let clients = (0..base.nodes().len()).map(|i| base.node(i)).collect();
        Caller { clients, timeout, keys: keys.to_vec() }
    }

    /// Number of nodes.
    pub fn nodes(&self) -> usize {
        self.clients.len()
    }

    /// A client with every node and the client's own retries, for reads.
    pub fn reader(&self, urls: Vec<String>) -> Client {
        Client::new(urls, Duration::from_secs(5)).with_keys(&self.keys).with_retry(RetryPolicy {
            attempts: 30,
            backoff: Duration::from_millis(50),
            backoff_max: Duration::from_millis(500),
        })
    }

    /// Calls `f` on node `*node` and, while the error is uncertain, again on the next node
    /// after a backoff, within `limits`. Each attempt goes on the oracle's timeline as `what`.
    pub async fn call<T, F, Fut>(
        &self,
        oracle: &Oracle,
        what: &'static str,
        node: &mut usize,
        limits: Limits,
        mut f: F,
    ) -> Retried<T>
    where
        F: FnMut(Client) -> Fut,
        Fut: Future<Output = Result<T, ClientError>>,
    {
        let started = Instant::now();
        let mut backoff = Duration::from_millis(50);
        let mut last = ClientError::Transport("no attempt made".into());
        let n = self.clients.len().max(1);
        for attempt in 0..limits.attempts.max(1) {
            let index = *node % n;
            let t = Instant::now();
            let start_s = oracle.now_s();
            let result = f(self.clients[index].clone()).await;
            let (outcome, done) = match &result {
                Ok(_) => (AttemptResult::Served, true),
                Err(e) if !uncertain(e) => {
                    (AttemptResult::Refused { code: e.code().unwrap_or("decode").to_string() }, true)
                }
                Err(e) => (AttemptResult::Failed { kind: error_kind(e, t.elapsed(), self.timeout) }, false),
            };
            oracle.attempt(AttemptEvent { what, node: index, start_s, end_s: oracle.now_s(), result: outcome });
            if done {
                return Retried { result, attempts: attempt + 1 };
            }
            last = result.err().expect("an uncertain error");
            *node = (index + 1) % n;
            if started.elapsed() + backoff >= limits.budget || attempt + 1 >= limits.attempts {
                return Retried { result: Err(last), attempts: attempt + 1 };
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(500));
        }
        Retried { result: Err(last), attempts: limits.attempts }
    }

    /// Sends one money-moving operation (same key and body on every attempt).
    pub async fn send(
        &self,
        oracle: &Oracle,
        what: &'static str,
        node: &mut usize,
        limits: Limits,
        key: &str,
        body: &OpBody,
    ) -> (OpOutcome, u32) {
        let r = self
            .call(oracle, what, node, limits, |c| {
                let body = body.clone();
                let key = key.to_string();
                async move { send_once(&c, &key, &body).await }
            })
            .await;
        let outcome = match r.result {
            Ok(answer) => OpOutcome::Acknowledged { answer },
            Err(e) if !uncertain(&e) => OpOutcome::Refused { code: e.code().unwrap_or("decode").to_string() },
            Err(e) => OpOutcome::Unknown { error: e.to_string() },
        };
        (outcome, r.attempts)
    }
}

/// The bet request an [`OpBody::Bet`] stands for.
pub fn bet_request(body: &OpBody) -> Option<PlaceBetRequest> {
    match body {
        OpBody::Bet { account_id, market_id, selection_id, stake_minor, odds } => Some(PlaceBetRequest {
            account_id: *account_id,
            bet_type: "single".into(),
            k: None,
            legs: vec![LegBody { market_id: *market_id, selection_id: *selection_id, odds: odds.clone() }],
            stake_per_line_minor: *stake_minor,
            each_way: false,
            odds_policy: "any".into(),
        }),
        _ => None,
    }
}

async fn send_once(c: &Client, key: &str, body: &OpBody) -> Result<Answer, ClientError> {
    match body {
        OpBody::Deposit { account_id, amount_minor } => {
            c.deposit(*account_id, *amount_minor, key).await.map(|b| Answer::Balance { balance_minor: b.balance_minor })
        }
        OpBody::Withdraw { account_id, amount_minor } => c
            .withdraw(*account_id, *amount_minor, key)
            .await
            .map(|b| Answer::Balance { balance_minor: b.balance_minor }),
        OpBody::Bet { .. } => {
            let request = bet_request(body).expect("a bet body");
            c.place_bet(&request, key).await.map(|p| Answer::Placed {
                bet_id: p.bet_id,
                status: p.status,
                stake_minor: p.stake_minor,
                odds: p.odds.iter().map(|o| (o.num, o.den)).collect(),
                log_index: p.log_index,
                balance_minor: p.balance_minor,
            })
        }
    }
}

/// One attempt of an operator action; the answer's log index where it has one.
async fn act_once(c: &Client, market_id: u64, key: &str, action: &OperatorAction) -> Result<Option<u64>, ClientError> {
    match action {
        OperatorAction::CreateMarket { request } => c.create_market(request, key).await.map(|a| Some(a.log_index)),
        OperatorAction::SetPrice { selection_id, odds } => {
            c.set_price(market_id, *selection_id, odds, key).await.map(|a| Some(a.log_index))
        }
        OperatorAction::Close => {
            c.market_action(market_id, "close", "chaos: retiring the market", key).await.map(|a| Some(a.log_index))
        }
        OperatorAction::Settle { request } => c.settle(market_id, request, false, key).await.map(|_| None),
    }
}

/// Where an action stands after its attempts.
fn action_state(oracle: &Oracle, result: &Result<Option<u64>, ClientError>) -> (ActionState, Option<u64>) {
    match result {
        Ok(index) => (ActionState::Acknowledged { at_s: oracle.now_s() }, *index),
        Err(e) if !uncertain(e) => (ActionState::Refused { code: e.code().unwrap_or("decode").into() }, None),
        Err(e) => (ActionState::Unknown { error: e.to_string() }, None),
    }
}

/// When the workload stops: once the deadline has passed *and* the nemesis is done (so every
/// fault runs under load), and at the hard deadline regardless.
#[derive(Clone, Debug)]
pub struct Stop {
    /// Planned end.
    pub deadline: Instant,
    /// End in any case.
    pub hard: Instant,
    /// Set by the harness when the nemesis has finished.
    pub nemesis_done: Arc<std::sync::atomic::AtomicBool>,
}

impl Stop {
    /// Whether to stop now.
    pub fn reached(&self) -> bool {
        let now = Instant::now();
        now >= self.hard || (now >= self.deadline && self.nemesis_done.load(Ordering::SeqCst))
    }
}

/// A market the workers may bet on.
#[derive(Clone, Debug)]
struct OpenMarket {
    market_id: u64,
    selections: Vec<(u64, String)>,
}

/// The running workload.
pub struct Workload {
    config: WorkloadConfig,
    seed: u64,
    caller: Caller,
    oracle: Arc<Oracle>,
    open: Mutex<Vec<OpenMarket>>,
    next_market: AtomicU64,
    next_action: AtomicU64,
}

/// The event every market hangs off.
const EVENT_ID: u64 = 1;

impl Workload {
    /// A workload against `urls`, recording into `oracle`.
    pub fn new(
        config: WorkloadConfig,
        seed: u64,
        urls: Vec<String>,
        keys: &[(paddock_api::Role, String)],
        oracle: Arc<Oracle>,
    ) -> Workload {
        let caller = Caller::new(urls, config.request_timeout, keys);
        Workload {
            config,
            seed,
            caller,
            oracle,
            open: Mutex::default(),
            next_market: AtomicU64::new(1),
            next_action: AtomicU64::new(1),
        }
    }

    /// The caller (for resolution and checks).
    pub fn caller(&self) -> &Caller {
        &self.caller
    }

    fn limits(&self) -> Limits {
        Limits { attempts: self.config.op_attempts, budget: self.config.op_budget }
    }

    /// Opens and funds the accounts, creates the event and the first markets. Meant for a
    /// healthy cluster: any failure is an error.
    pub async fn setup(&self) -> anyhow::Result<()> {
        let limits = Limits { attempts: 40, budget: Duration::from_secs(20) };
        let mut node = 0;
        for account in 1..=self.config.accounts {
            let r = self
                .caller
                .call(&self.oracle, "setup", &mut node, limits, |c| {
                    let key = format!("s{:x}-open-{account}", self.seed);
                    async move { c.open_account(account, CURRENCY, &key).await.map(|_| ()) }
                })
                .await;
            r.result.map_err(|e| anyhow::anyhow!("cannot open account {account}: {e}"))?;
            self.oracle.with(|h| h.accounts.push(account));
            let body = OpBody::Deposit { account_id: account, amount_minor: self.config.initial_deposit_minor };
            let key = format!("setup-{account}");
            let started_s = self.oracle.now_s();
            let (outcome, attempts) = self.caller.send(&self.oracle, "setup", &mut node, limits, &key, &body).await;
            let acked = matches!(outcome, OpOutcome::Acknowledged { .. });
            self.oracle.op(OpRecord {
                id: 0,
                key,
                worker: None,
                body,
                started_s,
                finished_s: self.oracle.now_s(),
                attempts,
                outcome: outcome.clone(),
                was_unknown: false,
                resolved_s: None,
            });
            if !acked {
                anyhow::bail!("cannot fund account {account}: {outcome:?}");
            }
        }
        let starts_at_ms =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() as u64 + 86_400_000;
        let r = self
            .caller
            .call(&self.oracle, "setup", &mut node, limits, |c| {
                let key = format!("s{:x}-event-{EVENT_ID}", self.seed);
                async move {
                    let req = CreateEventRequest {
                        event_id: EVENT_ID,
                        name: "Chaos Cup".into(),
                        sport: "football".into(),
                        competition: "Chaos".into(),
                        starts_at_ms,
                    };
                    c.create_event(&req, &key).await.map(|_| ())
                }
            })
            .await;
        r.result.map_err(|e| anyhow::anyhow!("cannot create the event: {e}"))?;
        let mut rng = Rng::fork(self.seed, 1);
        for _ in 0..self.config.open_markets {
            if !self.open_new_market(&mut rng, &mut node, limits).await {
                anyhow::bail!("cannot create the first markets");
            }
        }
        Ok(())
    }

    /// Creates the next market; true if it exists afterwards (then workers may bet on it).
    async fn open_new_market(&self, rng: &mut Rng, node: &mut usize, limits: Limits) -> bool {
        let market_id = self.next_market.fetch_add(1, Ordering::SeqCst);
        let count = rng.range(3, 4);
        let selections: Vec<(u64, String)> =
            (1..=count).map(|k| (market_id * 10 + k, rng.pick(PRICES).to_string())).collect();
        self.oracle.market(market_id, |m| m.selections = selections.clone());
        let request = CreateMarketRequest {
            market_id,
            event_id: EVENT_ID,
            name: format!("Chaos market {market_id}"),
            currency: CURRENCY.into(),
            selections: selections
                .iter()
                .map(|(id, odds)| NewSelectionBody {
                    selection_id: *id,
                    name: format!("Runner {id}"),
                    odds: odds.clone(),
                })
                .collect(),
            rules: MarketRulesBody {
                stake_min_minor: 1,
                stake_max_minor: 1_000_000_000,
                payout_max_minor: 1_000_000_000_000,
                liability_max_minor: 1_000_000_000_000_000,
                bet_delay_ms: 0,
                closes_at_ms: None,
                each_way: None,
            },
        };
        let (state, _) = self.act(market_id, OperatorAction::CreateMarket { request }, node, limits).await;
        let exists = state.acknowledged();
        self.oracle.market(market_id, |m| m.created = state);
        if exists {
            self.open.lock().unwrap_or_else(|e| e.into_inner()).push(OpenMarket { market_id, selections });
        }
        exists
    }

    /// Sends one operator action under a key of its own (the same on every attempt), records
    /// it, and returns where it stands and, if acknowledged, its log index.
    async fn act(
        &self,
        market_id: u64,
        action: OperatorAction,
        node: &mut usize,
        limits: Limits,
    ) -> (ActionState, Option<u64>) {
        let key = format!("s{:x}-op-{}", self.seed, self.next_action.fetch_add(1, Ordering::SeqCst));
        let r = self
            .caller
            .call(&self.oracle, "operator", node, limits, |c| {
                let (key, action) = (key.clone(), action.clone());
                async move { act_once(&c, market_id, &key, &action).await }
            })
            .await;
        let (state, index) = action_state(&self.oracle, &r.result);
        if let ActionState::Refused { code } = &state {
            self.oracle.with(|h| h.operator_errors.push(format!("{} on market {market_id}: {code}", action.name())));
        }
        let record =
            ActionRecord { key, market_id, action, state: state.clone(), attempts: r.attempts, resolved: false };
        self.oracle.with(|h| h.actions.push(record));
        (state, index)
    }

    /// Runs every worker and the operator until `stop`.
    pub async fn run(self: &Arc<Self>, stop: Stop) {
        let mut tasks = Vec::new();
        for w in 0..self.config.workers {
            let me = self.clone();
            let stop = stop.clone();
            tasks.push(tokio::spawn(async move { me.worker(w, &stop).await }));
        }
        let me = self.clone();
        tasks.push(tokio::spawn(async move { me.operator(&stop).await }));
        for t in tasks {
            let _ = t.await;
        }
    }

    async fn worker(&self, w: usize, stop: &Stop) {
        let mut rng = Rng::fork(self.seed, 100 + w as u64);
        let mut node = w % self.caller.nodes().max(1);
        for seq in 0..self.config.ops_per_worker_max {
            if stop.reached() {
                break;
            }
            let account_id = rng.range(1, self.config.accounts);
            let roll = rng.below(100);
            let market = {
                let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
                (!open.is_empty()).then(|| open[rng.below(open.len() as u64) as usize].clone())
            };
            let body = match (roll, market) {
                (0..=59, Some(m)) => {
                    let (selection_id, odds) = rng.pick(&m.selections).clone();
                    OpBody::Bet {
                        account_id,
                        market_id: m.market_id,
                        selection_id,
                        stake_minor: rng.range(10, 2_000) as i64,
                        odds,
                    }
                }
                (0..=79, _) => OpBody::Deposit { account_id, amount_minor: rng.range(100, 6_000) as i64 },
                // Now and then a withdrawal of about everything, racing the account's bets:
                // it drains the account or is refused, never overdraws it.
                _ if rng.chance(5) => OpBody::Withdraw { account_id, amount_minor: 120_000 },
                _ => OpBody::Withdraw { account_id, amount_minor: rng.range(100, 3_000) as i64 },
            };
            let key = format!("s{:x}-w{w}-{seq}", self.seed);
            let started_s = self.oracle.now_s();
            let limits = if rng.chance(self.config.impatient_percent) {
                Limits { attempts: 1, budget: self.config.request_timeout }
            } else {
                self.limits()
            };
            let (outcome, attempts) = self.caller.send(&self.oracle, body.kind(), &mut node, limits, &key, &body).await;
            self.oracle.op(OpRecord {
                id: 0,
                key,
                worker: Some(w),
                body,
                started_s,
                finished_s: self.oracle.now_s(),
                attempts,
                outcome,
                was_unknown: false,
                resolved_s: None,
            });
            if !self.config.op_pause.is_zero() {
                tokio::time::sleep(self.config.op_pause).await;
            }
        }
    }

    async fn operator(&self, stop: &Stop) {
        let mut rng = Rng::fork(self.seed, 2);
        let mut node = 0;
        let limits = self.limits();
        for _ in 0..100_000u32 {
            let pause = Duration::from_millis(rng.range(1_500, 3_000));
            if stop.reached() {
                break;
            }
            tokio::time::sleep(pause).await;
            if stop.reached() {
                break;
            }
            let open: Vec<OpenMarket> = self.open.lock().unwrap_or_else(|e| e.into_inner()).clone();
            if open.is_empty() {
                if !self.open_new_market(&mut rng, &mut node, limits).await {
                    continue;
                }
                continue;
            }
            if rng.chance(40) {
                let m = rng.pick(&open);
                let (selection_id, _) = rng.pick(&m.selections).clone();
                let price = rng.pick(PRICES).to_string();
                let market_id = m.market_id;
                let action = OperatorAction::SetPrice { selection_id, odds: price.clone() };
                let (state, _) = self.act(market_id, action, &mut node, limits).await;
                if state.acknowledged() {
                    let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
                    if let Some(m) = open.iter_mut().find(|m| m.market_id == market_id) {
                        if let Some(s) = m.selections.iter_mut().find(|s| s.0 == selection_id) {
                            s.1 = price;
                        }
                    }
                }
            }
            if rng.chance(60) {
                let oldest = open[0].clone();
                self.retire(&oldest, &mut rng, &mut node, limits).await;
                self.open_new_market(&mut rng, &mut node, limits).await;
            }
        }
    }

    /// Closes a market (bets may race the close), settles it with a winner chosen first.
    async fn retire(&self, market: &OpenMarket, rng: &mut Rng, node: &mut usize, limits: Limits) {
        let market_id = market.market_id;
        let (state, index) = self.act(market_id, OperatorAction::Close, node, limits).await;
        self.oracle.market(market_id, |m| {
            m.close = state;
            m.close_log_index = index;
        });
        self.open.lock().unwrap_or_else(|e| e.into_inner()).retain(|m| m.market_id != market_id);
        let winner = rng.pick(&market.selections).0;
        self.oracle.market(market_id, |m| m.winner = Some(winner));
        let request = SettleRequest {
            results: vec![SelectionResultBody { selection_id: winner, win: "win".into(), place: None }],
            reason: String::new(),
        };
        let (state, _) = self.act(market_id, OperatorAction::Settle { request }, node, limits).await;
        self.oracle.market(market_id, |m| m.settle = state);
    }
}

/// After healing: retries every unknown operation with its key and body until the answer is
/// definitive, within `total` (and `per_op` each). Returns how many stay unknown.
pub async fn resolve(caller: &Caller, oracle: &Oracle, per_op: Limits, total: Duration) -> usize {
    let started = Instant::now();
    let unknown: Vec<(usize, String, OpBody)> = oracle.with(|h| {
        h.ops
            .iter()
            .enumerate()
            .filter(|(_, o)| matches!(o.outcome, OpOutcome::Unknown { .. }))
            .map(|(i, o)| (i, o.key.clone(), o.body.clone()))
            .collect()
    });
    let mut left = 0;
    let mut node = 0;
    for (i, key, body) in unknown {
        if started.elapsed() >= total {
            left += 1;
            continue;
        }
        let (outcome, attempts) = caller.send(oracle, "resolve", &mut node, per_op, &key, &body).await;
        let definitive = !matches!(outcome, OpOutcome::Unknown { .. });
        if !definitive {
            left += 1;
        }
        let now = oracle.now_s();
        oracle.with(|h| {
            let op = &mut h.ops[i];
            op.was_unknown = true;
            op.attempts += attempts;
            op.outcome = outcome;
            if definitive {
                op.resolved_s = Some(now);
            }
        });
    }
    // Operator actions of unknown outcome: the same key again, until the answer is known.
    let unknown: Vec<(usize, ActionRecord)> = oracle.with(|h| {
        h.actions
            .iter()
            .enumerate()
            .filter(|(_, a)| matches!(a.state, ActionState::Unknown { .. }))
            .map(|(i, a)| (i, a.clone()))
            .collect()
    });
    for (i, record) in unknown {
        if started.elapsed() >= total {
            left += 1;
            continue;
        }
        let r = caller
            .call(oracle, "resolve", &mut node, per_op, |c| {
                let record = record.clone();
                async move { act_once(&c, record.market_id, &record.key, &record.action).await }
            })
            .await;
        let (state, _) = action_state(oracle, &r.result);
        if matches!(state, ActionState::Unknown { .. }) {
            left += 1;
        }
        oracle.with(|h| {
            let a = &mut h.actions[i];
            a.attempts += r.attempts;
            a.resolved = !matches!(state, ActionState::Unknown { .. });
            a.state = state.clone();
            let market = h.markets.entry(record.market_id).or_default();
            match record.action {
                OperatorAction::CreateMarket { .. } => market.created = state,
                OperatorAction::Close => market.close = state,
                OperatorAction::Settle { .. } => market.settle = state,
                OperatorAction::SetPrice { .. } => {}
            }
        });
    }
    left
}
