//! `paddock load`: an open-loop load generator.
//!
//! Requests are *scheduled* at the target rate whatever the answers do, and each latency is
//! measured from its scheduled start, so a stalled server shows up as latency rather than as
//! a politely slower client (coordinated omission). At most `--concurrency` requests are in
//! flight; a request that cannot start on time because of that cap is counted as
//! `client_saturated` and not sent.
//!
//! The run is bounded by `--duration-s` and stops by itself; the set-up (accounts, markets)
//! uses ids derived from a run id so that runs against the same cluster do not collide.

use anyhow::{bail, Context, Result};
use hdrhistogram::Histogram;
use paddock_api::wire::*;
use paddock_client::{BetBatcher, Client, ClientError, RetryPolicy};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `paddock load` flags.
#[derive(clap::Args, Clone, Debug)]
pub struct LoadArgs {
    /// Node URLs (comma-separated); requests rotate over them.
    #[arg(long, default_value = "http://127.0.0.1:7001,http://127.0.0.1:7002,http://127.0.0.1:7003")]
    pub nodes: String,
    /// Requests per second to schedule (open loop: a request is due whether or not the last
    /// was answered). 0: closed loop, as pgbench runs: each of `--concurrency` workers sends
    /// its next request as soon as its last is answered, so the generator spends no CPU
    /// scheduling requests it cannot send.
    #[arg(long, default_value_t = 1000)]
    pub rate: u32,
    /// Length of the measured run.
    #[arg(long, default_value_t = 10)]
    pub duration_s: u64,
    /// Most requests in flight at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Operation mix as name=weight pairs; names: single, accumulator, trixie, each_way,
    /// deposit, read, settle.
    #[arg(long, default_value = "single=60,accumulator=10,trixie=5,each_way=5,deposit=10,read=9,settle=1")]
    pub mix: String,
    /// Accounts to create and spread bets over.
    #[arg(long, default_value_t = 1000)]
    pub accounts: u64,
    /// Markets to create (each on its own event).
    #[arg(long, default_value_t = 50)]
    pub markets: u64,
    /// Per-request timeout.
    #[arg(long, default_value_t = 5_000)]
    pub timeout_ms: u64,
    /// Write the JSON report here.
    #[arg(long)]
    pub report: Option<std::path::PathBuf>,
    /// An operator's API key: sets up accounts and markets and settles them, and gives the
    /// generator its own service principal (`paddock-load`) with a key that lives as long as
    /// the run, which places the bets and is revoked at the end.
    #[arg(long, env = "PADDOCK_KEY", hide_env_values = true)]
    pub key: Option<String>,
    /// The service principal the generator acts as (created if missing): two generators with
    /// different principals are rate-limited apart (`bench/flood.sh`).
    #[arg(long, default_value = "paddock-load")]
    pub principal: String,
    /// The cluster CA's certificate, to trust for https:// nodes (`paddock demo` prints it).
    #[arg(long, env = "PADDOCK_CA")]
    pub ca_cert: Option<std::path::PathBuf>,
    /// No progress bar (for logs and CI).
    #[arg(long)]
    pub quiet: bool,
    /// Bets per `single` request: with more than 1, each `single` is one `POST /v1/bets/batch`
    /// of this many singles (at most 200), each with its own idempotency key.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=200))]
    pub batch: u32,
    /// Send each `single` as a caller of a gateway would, one bet, through the client's bet
    /// batcher (`Client::bet_batcher`) with this many batch requests in flight per node: bets
    /// that find every slot taken leave together in one `POST /v1/bets/batch`. Latency is each
    /// bet's own. 0: off.
    #[arg(long, default_value_t = 0, conflicts_with = "batch")]
    pub auto_batch: usize,
    /// Process ids (comma-separated) whose CPU time (user + system, from /proc) over the
    /// measured run is reported, as a total and per accepted bet: the nodes' cost of a bet,
    /// set-up excluded. Linux only.
    #[arg(long, value_delimiter = ',')]
    pub cpu_pids: Vec<u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
enum Op {
    Single,
    Accumulator,
    Trixie,
    EachWay,
    Deposit,
    Read,
    Settle,
}

impl Op {
    const ALL: [Op; 7] = [Op::Single, Op::Accumulator, Op::Trixie, Op::EachWay, Op::Deposit, Op::Read, Op::Settle];

    /// The name `--mix` and the report use.
    fn name(self) -> &'static str {
        match self {
            Op::Single => "single",
            Op::Accumulator => "accumulator",
            Op::Trixie => "trixie",
            Op::EachWay => "each_way",
            Op::Deposit => "deposit",
            Op::Read => "read",
            Op::Settle => "settle",
        }
    }
}

fn parse_mix(text: &str) -> Result<Vec<(Op, u32)>> {
    let mut out = Vec::new();
    for pair in text.split(',').filter(|p| !p.is_empty()) {
        let (name, weight) = pair.split_once('=').with_context(|| format!("mix entry '{pair}' is not name=weight"))?;
        let name = name.trim();
        let Some(op) = Op::ALL.into_iter().find(|op| op.name() == name) else {
            let known: Vec<&str> = Op::ALL.into_iter().map(Op::name).collect();
            bail!("unknown operation '{name}' in --mix (known: {})", known.join(", "))
        };
        let weight: u32 = weight.trim().parse().with_context(|| format!("bad weight in '{pair}'"))?;
        if weight > 0 {
            out.push((op, weight));
        }
    }
    if out.is_empty() {
        bail!("--mix has no operation with a positive weight");
    }
    Ok(out)
}

/// The JSON report.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Requests per second asked for.
    pub target_rate: u32,
    /// Measured run length.
    pub duration_s: f64,
    /// Requests scheduled.
    pub scheduled: u64,
    /// Answered with success.
    pub ok: u64,
    /// Successful requests per second.
    pub ok_per_s: f64,
    /// Accepted bets per second.
    pub bets_accepted_per_s: f64,
    /// Latency of successful requests, ms.
    pub latency_ms: Percentiles,
    /// Latency of successful bet placements, ms.
    pub bet_latency_ms: Percentiles,
    /// Errors by code (`transport`, `client_saturated`, or the API's code).
    pub errors: BTreeMap<String, u64>,
    /// Successes per operation.
    pub ok_by_op: BTreeMap<String, u64>,
    /// CPU seconds (user + system) the `--cpu-pids` processes used during the measured run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_s: Option<f64>,
    /// Of that, microseconds per accepted bet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_us_per_bet: Option<f64>,
}

/// CPU time (user + system) used so far by `pids`, in seconds, from `/proc/<pid>/stat`.
fn cpu_seconds(pids: &[u32]) -> Result<f64> {
    // Clock ticks per second: 100 on every Linux this runs on (USER_HZ is fixed by the ABI).
    const TICKS_PER_S: f64 = 100.0;
    let mut ticks = 0u64;
    for pid in pids {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .with_context(|| format!("cannot read the CPU time of process {pid} (--cpu-pids): is it running?"))?;
        // The command name (field 2) is in parentheses and may hold spaces: count after it.
        let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        // utime and stime are fields 14 and 15, i.e. 11 and 12 after the name and state.
        for field in [11, 12] {
            ticks += fields.get(field).and_then(|f| f.parse::<u64>().ok()).with_context(|| {
                format!("/proc/{pid}/stat has no CPU time where Linux puts it (field {})", field + 3)
            })?;
        }
    }
    Ok(ticks as f64 / TICKS_PER_S)
}

/// Latency percentiles.
#[derive(Debug, Serialize, Default)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 90th.
    pub p90: f64,
    /// 99th.
    pub p99: f64,
    /// 99.9th.
    pub p999: f64,
    /// Largest.
    pub max: f64,
    /// Samples.
    pub count: u64,
}

fn percentiles(h: &Histogram<u64>) -> Percentiles {
    let ms = |us: u64| us as f64 / 1000.0;
    Percentiles {
        p50: ms(h.value_at_quantile(0.5)),
        p90: ms(h.value_at_quantile(0.9)),
        p99: ms(h.value_at_quantile(0.99)),
        p999: ms(h.value_at_quantile(0.999)),
        max: ms(h.max()),
        count: h.len(),
    }
}

struct Tally {
    all: Histogram<u64>,
    bets: Histogram<u64>,
    errors: BTreeMap<String, u64>,
    ok_by_op: BTreeMap<String, u64>,
    ok: u64,
    bets_accepted: u64,
}

impl Tally {
    fn new() -> Tally {
        let h = || Histogram::new_with_bounds(1, 60_000_000, 3).expect("static histogram bounds");
        Tally { all: h(), bets: h(), errors: BTreeMap::new(), ok_by_op: BTreeMap::new(), ok: 0, bets_accepted: 0 }
    }

    /// Counts one answered request that took `latency` (from when it was due).
    fn record(&mut self, op: Op, result: Result<Answered, ClientError>, latency: Duration) {
        let latency_us = latency.as_micros().max(1) as u64;
        match result {
            Ok((accepted, refused)) => {
                self.ok += 1;
                self.all.saturating_record(latency_us);
                *self.ok_by_op.entry(op.name().to_string()).or_default() += 1;
                if matches!(op, Op::Single | Op::Accumulator | Op::Trixie | Op::EachWay) {
                    self.bets_accepted += accepted;
                    self.bets.saturating_record(latency_us);
                }
                for code in refused {
                    *self.errors.entry(code).or_default() += 1;
                }
            }
            Err(e) => {
                let code = match &e {
                    ClientError::Api { code, .. } => code.clone(),
                    ClientError::Transport(_) => "transport".into(),
                    ClientError::Unsent(_) => "connect".into(),
                    ClientError::Decode(_) => "decode".into(),
                    ClientError::Config(_) => "config".into(),
                };
                *self.errors.entry(code).or_default() += 1;
            }
        }
    }
}

/// Picks an operation by weight.
fn pick_op(mix: &[(Op, u32)], dice: &mut Dice) -> Op {
    let total: u32 = mix.iter().map(|(_, w)| w).sum();
    let mut roll = dice.below(u64::from(total)) as u32;
    mix.iter()
        .find(|(_, w)| {
            if roll < *w {
                true
            } else {
                roll -= w;
                false
            }
        })
        .map(|(op, _)| *op)
        .expect("weights sum")
}

/// Ids this run uses.
#[derive(Clone, Copy)]
pub(crate) struct Space {
    pub(crate) run: u64,
    pub(crate) accounts: u64,
    pub(crate) markets: u64,
}

impl Space {
    pub(crate) fn account(&self, i: u64) -> u64 {
        self.run * 10_000_000 + i % self.accounts
    }
    fn market(&self, i: u64) -> u64 {
        self.run * 10_000_000 + i
    }
    fn selection(&self, market: u64, s: u64) -> u64 {
        market * 10 + s
    }
}

fn market_request(space: &Space, i: u64) -> (CreateEventRequest, CreateMarketRequest) {
    let m = space.market(i);
    let event = CreateEventRequest {
        event_id: m,
        name: format!("load event {i}"),
        sport: "racing".into(),
        competition: "load".into(),
        starts_at_ms: 4_000_000_000_000,
    };
    let market = CreateMarketRequest {
        market_id: m,
        event_id: m,
        name: format!("load market {i}"),
        currency: "GBP".into(),
        selections: (1..=4)
            .map(|s| NewSelectionBody {
                selection_id: space.selection(m, s),
                name: format!("runner {s}"),
                odds: "3/1".into(),
            })
            .collect(),
        rules: MarketRulesBody {
            stake_min_minor: 1,
            stake_max_minor: 1_000_000,
            payout_max_minor: 1_000_000_000,
            liability_max_minor: i64::MAX / 4,
            bet_delay_ms: 0,
            closes_at_ms: None,
            each_way: Some(EachWayBody { fraction: "1/4".into(), places: 3 }),
        },
    };
    (event, market)
}

/// Creates the run's markets and opens and funds its accounts.
pub(crate) async fn setup(client: &Client, space: &Space) -> Result<()> {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..space.markets {
        let (client, space) = (client.clone(), *space);
        tasks.spawn(async move {
            let (event, market) = market_request(&space, i);
            client.create_event(&event, &paddock_client::fresh_key()).await?;
            client.create_market(&market, &paddock_client::fresh_key()).await?;
            Ok::<_, ClientError>(())
        });
        if tasks.len() >= 16 {
            tasks.join_next().await.expect("a task")?.context("creating markets")?;
        }
    }
    while let Some(r) = tasks.join_next().await {
        r?.context("creating markets")?;
    }
    for i in 0..space.accounts {
        let (client, space) = (client.clone(), *space);
        tasks.spawn(async move {
            let account = space.account(i);
            client.open_account(account, "GBP", &paddock_client::fresh_key()).await?;
            client.deposit(account, 1_000_000_000, &format!("load-{}-seed-{account}", space.run)).await?;
            Ok::<_, ClientError>(())
        });
        if tasks.len() >= 32 {
            tasks.join_next().await.expect("a task")?.context("opening accounts")?;
        }
    }
    while let Some(r) = tasks.join_next().await {
        r?.context("opening accounts")?;
    }
    Ok(())
}

/// A tiny deterministic generator (xorshift) for choosing operations and ids.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// A leg on market `market_index` of the run, on one of its four runners (by `s`).
pub(crate) fn leg(space: &Space, market_index: u64, s: u64) -> LegBody {
    let m = space.market(market_index);
    LegBody { market_id: m, selection_id: space.selection(m, 1 + s % 4), odds: "3/1".into() }
}

/// The drills' bet: a single of 100 minor units on the space's first market, the `n`th of
/// worker `worker` (its own account).
pub(crate) fn drill_bet(space: &Space, worker: u64, n: u64) -> PlaceBetRequest {
    PlaceBetRequest {
        account_id: space.account(worker),
        bet_type: "single".into(),
        k: None,
        legs: vec![leg(space, 0, n)],
        stake_per_line_minor: 100,
        each_way: false,
        odds_policy: "higher".into(),
    }
}

/// What one request did: bets accepted, and the refusal codes of a batch's refused bets.
type Answered = (u64, Vec<String>);

/// How a `single` leaves: alone, `--batch` bets per request, or through the per-node bet
/// batchers of `--auto-batch`.
#[derive(Clone)]
struct Sending {
    batch: u32,
    batchers: Arc<Vec<BetBatcher>>,
}

async fn one(
    client: &Client,
    space: &Space,
    op: Op,
    n: u64,
    seed: u64,
    sending: &Sending,
    live_markets: &Mutex<(u64, u64)>,
) -> Result<Answered, ClientError> {
    let batch = sending.batch;
    let mut dice = Dice(seed | 1);
    let account = space.account(dice.below(space.accounts));
    let (first, next) = *live_markets.lock().expect("market window lock");
    let pick = |dice: &mut Dice| first + dice.below(next - first);
    let key = format!("load-{}-{n}", space.run);
    let bet = |bet_type: &str, legs: Vec<LegBody>, each_way: bool| PlaceBetRequest {
        account_id: account,
        bet_type: bet_type.into(),
        k: None,
        legs,
        stake_per_line_minor: 100,
        each_way,
        odds_policy: "any".into(),
    };
    fn placed<T>(_: T) -> Answered {
        (1, Vec::new())
    }
    fn nothing<T>(_: T) -> Answered {
        (0, Vec::new())
    }
    match op {
        Op::Single if batch > 1 => {
            let bets = (0..batch)
                .map(|i| {
                    let account = space.account(dice.below(space.accounts));
                    BatchBetBody {
                        idempotency_key: format!("{key}-{i}"),
                        bet: PlaceBetRequest {
                            account_id: account,
                            ..bet("single", vec![leg(space, pick(&mut dice), dice.next())], false)
                        },
                    }
                })
                .collect();
            let answer = client.place_bets(&PlaceBetsRequest { bets }).await?;
            let accepted = answer.results.iter().filter(|r| r.status == 201).count() as u64;
            let refused = answer.results.into_iter().filter_map(|r| r.error.map(|e| e.code)).collect();
            Ok((accepted, refused))
        }
        Op::Single if !sending.batchers.is_empty() => sending.batchers[n as usize % sending.batchers.len()]
            .place(bet("single", vec![leg(space, pick(&mut dice), dice.next())], false), &key)
            .await
            .map(placed),
        Op::Single => client
            .place_bet(&bet("single", vec![leg(space, pick(&mut dice), dice.next())], false), &key)
            .await
            .map(placed),
        Op::EachWay => client
            .place_bet(&bet("single", vec![leg(space, pick(&mut dice), dice.next())], true), &key)
            .await
            .map(placed),
        Op::Accumulator | Op::Trixie => {
            let legs_n = if op == Op::Trixie { 3 } else { 2 + dice.below(3) };
            let mut markets: Vec<u64> = Vec::new();
            while (markets.len() as u64) < legs_n.min(next - first) {
                let m = pick(&mut dice);
                if !markets.contains(&m) {
                    markets.push(m);
                }
            }
            let legs = markets.iter().map(|m| leg(space, *m, dice.next())).collect::<Vec<_>>();
            let kind = if op == Op::Trixie && legs.len() == 3 {
                "trixie"
            } else if legs.len() >= 2 {
                "accumulator"
            } else {
                "single"
            };
            client.place_bet(&bet(kind, legs, false), &key).await.map(placed)
        }
        Op::Deposit => client.deposit(account, 1_000, &key).await.map(nothing),
        Op::Read => client.account(account).await.map(nothing),
        Op::Settle => {
            // Retire the oldest market: settle it and open a replacement, so the window of
            // live markets keeps its size. One settlement at a time keeps the window dense.
            static SETTLING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
            let _one_at_a_time = SETTLING.lock().await;
            let (oldest, replacement) = {
                let mut w = live_markets.lock().expect("market window lock");
                if w.1 - w.0 <= 3 {
                    return Ok((0, Vec::new()));
                }
                let old = w.0;
                w.0 += 1;
                (old, w.1)
            };
            let (event, market) = market_request(space, replacement);
            client.create_event(&event, &paddock_client::fresh_key()).await?;
            client.create_market(&market, &paddock_client::fresh_key()).await?;
            live_markets.lock().expect("market window lock").1 += 1;
            let results = SettleRequest {
                results: vec![SelectionResultBody {
                    selection_id: space.selection(space.market(oldest), 1),
                    win: "win".into(),
                    place: None,
                }],
                reason: String::new(),
            };
            client.settle(space.market(oldest), &results, false, &paddock_client::fresh_key()).await.map(nothing)
        }
    }
}

/// The load generator's service principal and a key for this run (lifetime: the run plus an
/// hour). Created on first use.
async fn load_principal(operator: &Client, name: &str, duration_s: u64) -> Result<paddock_api::KeyText> {
    match operator.create_principal(name, paddock_api::Role::Service, &[], &paddock_client::fresh_key()).await {
        Ok(_) => {}
        Err(e) if e.code() == Some("principal_exists") => {}
        Err(e) => return Err(e).context("cannot create the load generator's service principal"),
    }
    let key = paddock_client::new_api_key();
    operator
        .issue_key_digest(name, &key, Some(duration_s + 3600), &paddock_client::fresh_key())
        .await
        .context("cannot issue the load generator its key")?;
    Ok(key)
}

/// Runs the load and returns the report.
pub async fn run_load(args: &LoadArgs) -> Result<Report> {
    let mix = parse_mix(&args.mix)?;
    let nodes: Vec<String> =
        args.nodes.split(',').map(|s| s.trim().trim_end_matches('/').to_string()).filter(|s| !s.is_empty()).collect();
    let Some(operator_key) = args.key.clone() else {
        anyhow::bail!("paddock load needs an operator's API key: set PADDOCK_KEY (or pass --key)")
    };
    let ca = match &args.ca_cert {
        Some(path) => {
            Some(std::fs::read(path).map_err(|e| anyhow::anyhow!("cannot read the CA file {}: {e}", path.display()))?)
        }
        None => None,
    };
    let trusting = |client: Client| -> Result<Client> {
        Ok(match &ca {
            Some(pem) => client.with_ca_pem(pem)?,
            None => client,
        })
    };
    let operator = trusting(Client::new(nodes.clone(), Duration::from_secs(10)))?.with_token(&operator_key);
    let service_key = load_principal(&operator, &args.principal, args.duration_s).await?;
    let keys = [(paddock_api::Role::Operator, operator_key), (paddock_api::Role::Service, service_key.expose())];
    let setup_client = trusting(Client::new(nodes.clone(), Duration::from_secs(10)))?.with_keys(&keys);
    let run = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() % 100_000 + 1;
    let space = Space { run, accounts: args.accounts.max(1), markets: args.markets.max(4) };
    let started_setup = Instant::now();
    setup(&setup_client, &space).await?;
    if !args.quiet {
        eprintln!(
            "set-up: {} accounts and {} markets in {:.1} s",
            space.accounts,
            space.markets,
            started_setup.elapsed().as_secs_f64()
        );
    }
    // Measured requests are not retried: a refusal or a lost answer is what we measure.
    let client = trusting(Client::new(nodes, Duration::from_millis(args.timeout_ms)))?
        .with_keys(&keys)
        .with_retry(RetryPolicy { attempts: 1, backoff: Duration::ZERO, backoff_max: Duration::ZERO });
    let tally = Arc::new(Mutex::new(Tally::new()));
    let live_markets = Arc::new(Mutex::new((0u64, space.markets)));
    let semaphore = Arc::new(tokio::sync::Semaphore::new(args.concurrency.max(1)));
    let cpu_before = if args.cpu_pids.is_empty() { None } else { Some(cpu_seconds(&args.cpu_pids)?) };
    let batchers = if args.auto_batch == 0 {
        Vec::new()
    } else {
        (0..client.nodes().len()).map(|i| client.starting_at(i).bet_batcher(args.auto_batch)).collect()
    };
    let sending = Sending { batch: args.batch, batchers: Arc::new(batchers) };
    let run = Run { args, mix: &mix, client: &client, space, tally: &tally, live_markets: &live_markets, sending };
    let (scheduled, elapsed) = if args.rate == 0 { closed_loop(&run).await } else { open_loop(&run, &semaphore).await };
    let cpu_s = match cpu_before {
        Some(before) => Some(cpu_seconds(&args.cpu_pids)? - before),
        None => None,
    };
    // The run's key ends with the run (its lifetime would end it within the hour anyway).
    if let Err(e) = operator.revoke_key(&service_key.id.to_string(), &paddock_client::fresh_key()).await {
        eprintln!("warning: could not revoke the load generator's key {}: {e}", service_key.id);
    }
    let t = tally.lock().expect("tally lock");
    Ok(Report {
        target_rate: args.rate,
        duration_s: elapsed,
        scheduled,
        ok: t.ok,
        ok_per_s: t.ok as f64 / elapsed,
        bets_accepted_per_s: t.bets_accepted as f64 / elapsed,
        latency_ms: percentiles(&t.all),
        bet_latency_ms: percentiles(&t.bets),
        errors: t.errors.clone(),
        ok_by_op: t.ok_by_op.clone(),
        cpu_s,
        cpu_us_per_bet: cpu_s.map(|s| s * 1e6 / t.bets_accepted.max(1) as f64),
    })
}

/// What a measured run shares between its requests.
struct Run<'a> {
    args: &'a LoadArgs,
    mix: &'a [(Op, u32)],
    client: &'a Client,
    space: Space,
    tally: &'a Arc<Mutex<Tally>>,
    live_markets: &'a Arc<Mutex<(u64, u64)>>,
    sending: Sending,
}

/// Closed loop: `--concurrency` workers, each sending its next request when its last is
/// answered, until the run's length is up. Returns (requests sent, seconds measured).
async fn closed_loop(run: &Run<'_>) -> (u64, f64) {
    let Run { args, mix, client, space, tally, live_markets, ref sending } = *run;
    let deadline = Duration::from_secs(args.duration_s);
    let start = Instant::now();
    let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for w in 0..args.concurrency.max(1) {
        let (client, tally, live_markets, sent, mix, sending) =
            (client.starting_at(w), tally.clone(), live_markets.clone(), sent.clone(), mix.to_vec(), sending.clone());
        let mut dice = Dice(0x2545_F491_4F6C_DD1D ^ space.run ^ ((w as u64 + 1) << 32));
        workers.spawn(async move {
            while start.elapsed() < deadline {
                let n = sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                let op = pick_op(&mix, &mut dice);
                let began = Instant::now();
                let result = one(&client, &space, op, n, dice.next(), &sending, &live_markets).await;
                tally.lock().expect("tally lock").record(op, result, began.elapsed());
            }
        });
    }
    while workers.join_next().await.is_some() {}
    (sent.load(std::sync::atomic::Ordering::Relaxed), start.elapsed().as_secs_f64())
}

/// Open loop: requests due at `--rate`, at most `--concurrency` in flight (a due request
/// with none free counts as `client_saturated`). Returns (requests scheduled, seconds).
async fn open_loop(run: &Run<'_>, semaphore: &Arc<tokio::sync::Semaphore>) -> (u64, f64) {
    let Run { args, mix, client, space, tally, live_markets, ref sending } = *run;
    let period = Duration::from_secs_f64(1.0 / f64::from(args.rate.max(1)));
    let deadline = Duration::from_secs(args.duration_s);
    let scheduled_total = (args.duration_s as f64 * f64::from(args.rate)) as u64;
    let progress =
        if args.quiet { indicatif::ProgressBar::hidden() } else { indicatif::ProgressBar::new(scheduled_total) };
    progress.set_style(
        indicatif::ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} scheduled {msg}")
            .expect("static template"),
    );
    let mut dice = Dice(0x2545_F491_4F6C_DD1D ^ space.run);
    let start = Instant::now();
    let mut scheduled = 0u64;
    let mut tasks = tokio::task::JoinSet::new();
    while scheduled < scheduled_total {
        let due = start + period.mul_f64(scheduled as f64);
        if due.elapsed() >= deadline || start.elapsed() >= deadline {
            break;
        }
        tokio::time::sleep_until(due.into()).await;
        scheduled += 1;
        let op = pick_op(mix, &mut dice);
        let Ok(permit) = semaphore.clone().try_acquire_owned() else {
            *tally.lock().expect("tally lock").errors.entry("client_saturated".into()).or_default() += 1;
            continue;
        };
        let (client, task_tally, live_markets, seed, sending) =
            (client.starting_at(scheduled as usize), tally.clone(), live_markets.clone(), dice.next(), sending.clone());
        tasks.spawn(async move {
            let result = one(&client, &space, op, scheduled, seed, &sending, &live_markets).await;
            task_tally.lock().expect("tally lock").record(op, result, due.elapsed());
            drop(permit);
        });
        while tasks.try_join_next().is_some() {}
        if scheduled.is_multiple_of(256) {
            progress.set_position(scheduled);
            let t = tally.lock().expect("tally lock");
            let failed: u64 = t.errors.values().sum();
            let rate = t.ok as f64 / start.elapsed().as_secs_f64().max(0.001);
            let p99_ms = t.all.value_at_quantile(0.99) as f64 / 1000.0;
            progress.set_message(format!("ok {} ({rate:.0}/s, p99 {p99_ms:.1} ms), failed {failed}", t.ok));
        }
    }
    // Answers still in flight count, within their own timeout.
    while tasks.join_next().await.is_some() {}
    progress.finish_and_clear();
    (scheduled, start.elapsed().as_secs_f64())
}

/// Prints the text summary.
pub fn print_summary(r: &Report) {
    println!(
        "target {} req/s for {:.1} s: scheduled {}, ok {} ({:.0}/s), bets accepted {:.0}/s",
        r.target_rate, r.duration_s, r.scheduled, r.ok, r.ok_per_s, r.bets_accepted_per_s
    );
    let p = &r.latency_ms;
    println!(
        "latency ms (all ok): p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
        p.p50, p.p90, p.p99, p.p999, p.max
    );
    let b = &r.bet_latency_ms;
    println!(
        "latency ms (bets):   p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
        b.p50, b.p90, b.p99, b.p999, b.max
    );
    if r.errors.is_empty() {
        println!("errors: none");
    } else {
        println!("errors: {}", r.errors.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" "));
    }
}

/// `paddock load`.
pub fn run(args: LoadArgs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let report = runtime.block_on(run_load(&args))?;
    print_summary(&report);
    if let Some(path) = &args.report {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// One acknowledged bet: its id and account.
pub(crate) type Acked = (u64, u64);

/// The drills' closed-loop betting workers (one bet in flight each, [`drill_bet`]s numbered from
/// `first_n`), recording every acknowledgement until told to stop or `bounded_by` has passed.
pub(crate) struct DrillWorkers {
    acked: Arc<Mutex<Vec<Acked>>>,
    stop: Arc<AtomicBool>,
    tasks: tokio::task::JoinSet<()>,
}

impl DrillWorkers {
    pub(crate) fn start(
        client: &Client,
        space: Space,
        workers: u32,
        first_n: u64,
        bounded_by: Duration,
    ) -> DrillWorkers {
        let acked: Arc<Mutex<Vec<Acked>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let deadline = Instant::now() + bounded_by;
        let mut tasks = tokio::task::JoinSet::new();
        for w in 0..u64::from(workers) {
            let (acked, stop) = (acked.clone(), stop.clone());
            let client = client.clone().with_retry(RetryPolicy {
                attempts: 1,
                backoff: Duration::from_millis(1),
                backoff_max: Duration::from_millis(1),
            });
            tasks.spawn(async move {
                let mut n = first_n;
                while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                    n += 1;
                    match client.place_bet(&drill_bet(&space, w, n), &paddock_client::fresh_key()).await {
                        Ok(placed) => acked.lock().expect("acked lock").push((placed.bet_id, space.account(w))),
                        // Nothing to bet against for a moment (a failover): do not spin.
                        Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                    }
                }
            });
        }
        DrillWorkers { acked, stop, tasks }
    }

    /// Bets acknowledged so far.
    pub(crate) fn acknowledged(&self) -> usize {
        self.acked.lock().expect("acked lock").len()
    }

    /// Stops the workers; every bet acknowledged, in the order the acknowledgements arrived.
    pub(crate) async fn stop(mut self) -> Vec<Acked> {
        self.stop.store(true, Ordering::SeqCst);
        while self.tasks.join_next().await.is_some() {}
        std::mem::take(&mut *self.acked.lock().expect("acked lock"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_parses_and_refuses_unknown_operations() {
        let mix = parse_mix("single=3,deposit=1,read=0").unwrap();
        assert_eq!(mix, vec![(Op::Single, 3), (Op::Deposit, 1)]);
        assert!(parse_mix("teleport=1").is_err());
        assert!(parse_mix("read=0").is_err());
    }
}
