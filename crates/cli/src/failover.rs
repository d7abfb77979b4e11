//! `paddock drill failover`: what a client sees when the leader is killed or frozen.
//!
//! The same measurement as the etcd baseline (`../shared/bench/etcd_failover.py`), so the two
//! compare: W workers, each paced at R writes/s, round-robin over every node, a 1 s timeout
//! per request, a node that refused a connection skipped for 0.5 s. After a warm-up the leader
//! is killed with SIGKILL (`--fault kill`) or frozen with SIGSTOP (`--fault stop`: the process
//! holds its sockets open and answers nothing, the harder case for a client and for the
//! followers that forward to it). Reported per trial, from the fault instant:
//!
//! - `unavail_ms`: until the first successful write that was *sent after* the kill completes;
//! - `max_gap_ms`: the largest hole between consecutive successful completions around it;
//! - `new_leader_ms`: until the survivors agree on a new leader (polled every 10 ms): the
//!   server-side part, independent of the client timeout;
//! - failed writes after the kill, by kind.
//!
//! The killed node is restarted (a frozen one resumed with SIGCONT) and caught up before the
//! next trial. Every trial is bounded.

use anyhow::{bail, Context, Result};
use paddock_chaos::cluster::{Cluster, Ports};
use paddock_client::{Client, ClientError, RetryPolicy};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What is done to the leader.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// SIGKILL: the process is gone and its connections are refused.
    Kill,
    /// SIGSTOP: the process is frozen with its connections open.
    Stop,
}

impl Fault {
    fn name(self) -> &'static str {
        match self {
            Fault::Kill => "kill",
            Fault::Stop => "stop",
        }
    }
}

/// `paddock drill failover` flags.
#[derive(clap::Args, Clone, Debug)]
pub struct FailoverArgs {
    /// Faults of the leader, one per trial.
    #[arg(long, default_value_t = 5)]
    pub trials: u32,
    /// What is done to the leader: kill (SIGKILL) or stop (SIGSTOP, resumed after the trial).
    #[arg(long, value_enum, default_value_t = Fault::Kill)]
    pub fault: Fault,
    /// Writing workers.
    #[arg(long, default_value_t = 16)]
    pub workers: u32,
    /// Writes per second per worker.
    #[arg(long, default_value_t = 50)]
    pub rate_per_worker: u32,
    /// Client timeout per request, ms.
    #[arg(long, default_value_t = 1000)]
    pub timeout_ms: u64,
    /// Load before the kill, seconds.
    #[arg(long, default_value_t = 3)]
    pub warmup_s: u64,
    /// Load after recovery, seconds.
    #[arg(long, default_value_t = 2)]
    pub post_s: u64,
    /// Write the JSON report here.
    #[arg(long)]
    pub report: Option<std::path::PathBuf>,
    /// Extra `paddock start` arguments for every node, e.g. "--election-timeout-min-ms 250".
    #[arg(long, allow_hyphen_values = true, default_value = "")]
    pub node_args: String,
}

/// One trial's figures.
#[derive(Debug, Serialize)]
pub struct Trial {
    /// Trial number.
    pub trial: u32,
    /// What was done to the leader: "kill" or "stop".
    pub fault: &'static str,
    /// The leader the fault hit.
    pub leader: u64,
    /// Node that took over.
    pub new_leader: Option<u64>,
    /// Successful writes per second before the kill.
    pub pre_kill_ops_per_s: f64,
    /// Until the first successful write sent after the kill completed, ms.
    pub unavail_ms: Option<f64>,
    /// Largest hole between successful completions around the kill, ms.
    pub max_gap_ms: f64,
    /// Until the survivors agreed on a new leader, ms.
    pub new_leader_ms: Option<f64>,
    /// Writes that failed after the kill, by kind.
    pub failed_after_kill: BTreeMap<String, u64>,
}

struct Record {
    sent: Instant,
    done: Instant,
    ok: bool,
    kind: String,
}

async fn worker(
    client: Client,
    nodes: usize,
    id: u32,
    rate: u32,
    stop: Arc<std::sync::atomic::AtomicBool>,
    records: Arc<Mutex<Vec<Record>>>,
    deadline: Instant,
) {
    let period = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let mut next = Instant::now();
    let mut down_until = vec![Instant::now(); nodes];
    let mut rr = id as usize % nodes;
    let mut seq = 0u64;
    let account = 8_000_000 + u64::from(id);
    while !stop.load(std::sync::atomic::Ordering::SeqCst) && Instant::now() < deadline {
        let now = Instant::now();
        if next > now {
            tokio::time::sleep(next - now).await;
        }
        next = (next + period).max(Instant::now() - period);
        let mut pick = rr;
        for _ in 0..nodes {
            pick = rr;
            rr = (rr + 1) % nodes;
            if down_until[pick] <= Instant::now() {
                break;
            }
        }
        seq += 1;
        let sent = Instant::now();
        let result =
            client.node(pick).deposit(account, 1, &format!("failover-{id}-{seq}-{}", sent.elapsed().as_nanos())).await;
        let done = Instant::now();
        let (ok, kind) = match result {
            Ok(_) => (true, "ok".to_string()),
            Err(ClientError::Transport(m)) if m.contains("timed out") || m.contains("timeout") => {
                (false, "timeout".into())
            }
            Err(ClientError::Transport(_) | ClientError::Unsent(_)) => {
                down_until[pick] = Instant::now() + Duration::from_millis(500);
                (false, "connect".into())
            }
            Err(e) => (false, e.code().unwrap_or("error").to_string()),
        };
        records.lock().expect("records lock").push(Record { sent, done, ok, kind });
        if !ok {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

async fn survivors_agree(cluster: &Cluster, survivors: &[u64], killed: u64) -> Option<u64> {
    let mut leaders = Vec::new();
    for id in survivors {
        leaders.push(cluster.view(*id).await.and_then(|v| v.leader_id));
    }
    match leaders.first() {
        Some(Some(l)) if *l != killed && leaders.iter().all(|x| *x == Some(*l)) => Some(*l),
        _ => None,
    }
}

async fn trial(cluster: &mut Cluster, args: &FailoverArgs, n: u32) -> Result<Trial> {
    let urls = cluster.urls();
    let client = Client::new(urls.clone(), Duration::from_millis(args.timeout_ms))
        .with_keys(cluster.keys())
        .with_retry(RetryPolicy { attempts: 1, backoff: Duration::ZERO, backoff_max: Duration::ZERO });
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let records = Arc::new(Mutex::new(Vec::new()));
    let bound = Instant::now() + Duration::from_secs(args.warmup_s + args.post_s + 30);
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..args.workers {
        tasks.spawn(worker(client.clone(), urls.len(), w, args.rate_per_worker, stop.clone(), records.clone(), bound));
    }
    tokio::time::sleep(Duration::from_secs(args.warmup_s)).await;
    let leader = cluster.leader(Duration::from_secs(5)).await?;
    let killed_at = Instant::now();
    match args.fault {
        Fault::Kill => cluster.kill(leader)?,
        Fault::Stop => cluster.pause(leader)?,
    }
    let survivors: Vec<u64> = cluster.ids().into_iter().filter(|i| *i != leader).collect();
    let mut new_leader = None;
    let mut new_leader_ms = None;
    while killed_at.elapsed() < Duration::from_secs(20) {
        if let Some(l) = survivors_agree(cluster, &survivors, leader).await {
            new_leader = Some(l);
            new_leader_ms = Some(killed_at.elapsed().as_secs_f64() * 1000.0);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Load goes on until a write sent after the kill succeeded, then for post_s more.
    while killed_at.elapsed() < Duration::from_secs(20) {
        if records.lock().expect("records lock").iter().any(|r| r.ok && r.sent >= killed_at) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_secs(args.post_s)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    while tasks.join_next().await.is_some() {}
    let recs = std::mem::take(&mut *records.lock().expect("records lock"));
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let unavail_ms =
        recs.iter().filter(|r| r.ok && r.sent >= killed_at).map(|r| r.done).min().map(|t| ms(t - killed_at));
    let mut done_ok: Vec<Instant> = recs.iter().filter(|r| r.ok).map(|r| r.done).collect();
    done_ok.sort();
    let mut gap = Duration::ZERO;
    let window: Vec<Instant> = done_ok.iter().copied().filter(|t| *t + Duration::from_secs(1) >= killed_at).collect();
    for pair in window.windows(2) {
        gap = gap.max(pair[1] - pair[0]);
    }
    if let (Some(before), Some(after)) =
        (done_ok.iter().rev().find(|t| **t < killed_at), done_ok.iter().find(|t| **t >= killed_at))
    {
        gap = gap.max(*after - *before);
    }
    let mut failed = BTreeMap::new();
    for r in recs.iter().filter(|r| !r.ok && r.sent + Duration::from_millis(1) >= killed_at) {
        *failed.entry(r.kind.clone()).or_default() += 1;
    }
    let pre = recs.iter().filter(|r| r.ok && r.sent >= start + Duration::from_secs(1) && r.sent < killed_at).count();
    let pre_window = (killed_at - start).as_secs_f64() - 1.0;
    let t = Trial {
        trial: n,
        fault: args.fault.name(),
        leader,
        new_leader,
        pre_kill_ops_per_s: pre as f64 / pre_window.max(0.001),
        unavail_ms,
        max_gap_ms: ms(gap),
        new_leader_ms,
        failed_after_kill: failed,
    };
    println!("{}", serde_json::to_string(&t)?);
    match args.fault {
        Fault::Kill => cluster.restart(leader)?,
        Fault::Stop => cluster.resume(leader)?,
    }
    cluster.wait_ready(&cluster.ids(), Duration::from_secs(30)).await?;
    cluster.wait_caught_up(leader, Duration::from_secs(30)).await?;
    Ok(t)
}

fn percentile(mut v: Vec<f64>, q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

/// Runs the drill.
pub fn run(args: FailoverArgs) -> Result<()> {
    let dir = tempfile::Builder::new().prefix("paddock-failover-").tempdir()?;
    let binary = std::env::current_exe().context("cannot find the paddock binary")?;
    let ports = Ports::find(3, None)?;
    let node_args: Vec<String> = args.node_args.split_whitespace().map(str::to_string).collect();
    let mut cluster = Cluster::new(&binary, dir.path(), 3, ports, false, &node_args);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let result = runtime.block_on(async {
        cluster.start_all()?;
        cluster.wait_ready(&cluster.ids(), Duration::from_secs(30)).await?;
        let setup = Client::new(cluster.urls(), Duration::from_secs(5)).with_keys(cluster.keys());
        for w in 0..args.workers {
            let account = 8_000_000 + u64::from(w);
            if let Err(e) = setup.open_account(account, "GBP", &paddock_client::fresh_key()).await {
                if e.code() != Some("account_exists") {
                    bail!("cannot open account {account}: {e}");
                }
            }
        }
        let mut trials = Vec::new();
        for n in 1..=args.trials {
            trials.push(trial(&mut cluster, &args, n).await?);
        }
        Ok(trials)
    });
    cluster.kill_all();
    let trials = result?;
    let unavail: Vec<f64> = trials.iter().filter_map(|t| t.unavail_ms).collect();
    let elect: Vec<f64> = trials.iter().filter_map(|t| t.new_leader_ms).collect();
    println!(
        "failover ({}) over {} trials ({} workers x {}/s, client timeout {} ms): unavailability p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms; new leader p50 {:.0} ms, max {:.0} ms",
        args.fault.name(),
        trials.len(),
        args.workers,
        args.rate_per_worker,
        args.timeout_ms,
        percentile(unavail.clone(), 0.5),
        percentile(unavail.clone(), 0.99),
        unavail.iter().copied().fold(0.0, f64::max),
        percentile(elect.clone(), 0.5),
        elect.iter().copied().fold(0.0, f64::max),
    );
    if let Some(path) = &args.report {
        std::fs::write(path, serde_json::to_vec_pretty(&trials)?)?;
    }
    Ok(())
}
