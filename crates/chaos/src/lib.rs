//! Jepsen-style chaos against real `paddock` processes (RELIABILITY.md, "Chaos against real
//! processes").
//!
//! [`run`] starts a 3- or 5-node cluster of the real binary behind a fault-injecting TCP
//! proxy, drives a concurrent bank-style workload through the typed client while a nemesis
//! kills, pauses, partitions and fills disks, then heals everything, resolves every operation
//! whose outcome was unknown, checks the invariants against the recorded history and reports.
//!
//! # Layout
//! - [`cluster`]: the node processes (per-node loopback addresses, signals by PID, waits).
//! - [`proxy`]: the TCP proxy between nodes and its [`proxy::Partition`] (blocked links, delays).
//! - [`disk`]: data directories on size-limited tmpfs mounts, filled to ENOSPC.
//! - [`workload`] and [`oracle`]: the operations and their recorded history.
//! - [`nemesis`]: the fault schedule and its execution.
//! - [`checker`]: the invariants checked after healing.
//! - [`report`]: per-fault and total figures, as text and JSON.
//! - [`rng`]: the seeded generator behind every choice.
//!
//! # Cleanup
//! Whatever happens (success, failed check, harness error, panic unwinding), the node
//! processes are SIGKILLed by PID, the proxy is stopped and every tmpfs is unmounted before
//! [`run`] returns. The run directory is deleted after a passing run in a temporary directory
//! and kept otherwise (its path is in the report).

pub mod checker;
pub mod cluster;
pub mod disk;
pub mod nemesis;
pub mod oracle;
pub mod proxy;
pub mod report;
pub mod rng;
pub mod workload;

pub use nemesis::{FaultKind, Timings};
pub use report::Report;
pub use workload::WorkloadConfig;

use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long past the planned duration a planned fault may still start.
const FAULT_GRACE: Duration = Duration::from_secs(20);

/// What to run.
#[derive(Clone, Debug)]
pub struct ChaosConfig {
    /// The `paddock` binary.
    pub binary: PathBuf,
    /// Nodes: 3 or 5.
    pub nodes: usize,
    /// How long the workload runs (longer if the last planned fault is still running; the
    /// faults are planned to fit in it).
    pub duration: Duration,
    /// Seed of every choice.
    pub seed: u64,
    /// Faults to draw from (empty: none, a baseline).
    pub faults: Vec<FaultKind>,
    /// Run directory (kept); `None`: a temporary directory, deleted after a passing run.
    pub work_dir: Option<PathBuf>,
    /// Where to write the JSON report (besides `report.json` in a kept run directory).
    pub report_path: Option<PathBuf>,
    /// First HTTP port (node i uses base+i); `None`: picked from the process id.
    pub base_port: Option<u16>,
    /// Put the proxy between the nodes (false: a baseline without link faults; isolate-leader
    /// and split are then skipped).
    pub proxy: bool,
    /// Size of each data tmpfs (disk-full fault), MiB.
    pub tmpfs_mb: u64,
    /// Snapshot every this many log entries (small, so that restarts exercise snapshots).
    pub snapshot_logs: u64,
    /// Fault lengths.
    pub timings: Timings,
    /// The workload's shape.
    pub workload: WorkloadConfig,
}

impl Default for ChaosConfig {
    fn default() -> ChaosConfig {
        ChaosConfig {
            binary: PathBuf::from("paddock"),
            nodes: 3,
            duration: Duration::from_secs(60),
            seed: 1,
            faults: FaultKind::ALL.to_vec(),
            work_dir: None,
            report_path: None,
            base_port: None,
            proxy: true,
            tmpfs_mb: 64,
            snapshot_logs: 2_000,
            timings: Timings::default(),
            workload: WorkloadConfig::default(),
        }
    }
}

/// Runs the harness on its own Tokio runtime; see [`run_async`]. Ctrl-C stops the run
/// cleanly: the nodes are killed, the mounts undone, the run directory kept.
pub fn run(config: &ChaosConfig) -> Result<Report> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .context("cannot build a Tokio runtime")?;
    runtime.block_on(async {
        tokio::select! {
            r = run_async(config) => r,
            _ = tokio::signal::ctrl_c() => bail!("interrupted by Ctrl-C; the nodes were stopped"),
        }
    })
}

/// Everything that must be undone, in the order it must be undone: processes first (they hold
/// the mounts busy), then the proxy, then the mounts, then the directory.
struct Harness {
    cluster: Option<cluster::Cluster>,
    proxy: Option<proxy::Proxy>,
    disks: Option<disk::Disks>,
    dir: Option<tempfile::TempDir>,
}

impl Harness {
    /// Stops everything; returns what could not be unmounted.
    fn teardown(&mut self) -> Vec<String> {
        if let Some(mut c) = self.cluster.take() {
            c.kill_all();
        }
        if let Some(mut p) = self.proxy.take() {
            p.stop();
        }
        self.disks.take().map(|mut d| d.unmount_all()).unwrap_or_default()
    }

    /// Keeps the temporary run directory (on failure, for the logs).
    fn keep_dir(&mut self) {
        if let Some(d) = self.dir.take() {
            let _ = d.keep();
        }
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        // An error or a panic skipped the normal teardown: keep the logs, stop everything.
        if self.cluster.is_some() {
            self.keep_dir();
        }
        for dir in self.teardown() {
            eprintln!("chaos: could not unmount the tmpfs on {dir}; run `umount -l {dir}`");
        }
    }
}

/// Runs the harness: setup, workload with nemesis, heal, resolve, check, report. An `Err` is
/// a harness failure (the cluster never became ready, a port was taken, ...); invariant
/// violations are in the report (see [`Report::passed`]).
pub async fn run_async(config: &ChaosConfig) -> Result<Report> {
    let started = Instant::now();
    if config.nodes != 3 && config.nodes != 5 {
        bail!("--nodes must be 3 or 5, not {}", config.nodes);
    }
    if !config.binary.is_file() {
        bail!("no paddock binary at {}", config.binary.display());
    }
    let faults = config.faults.clone();
    let mut harness = Harness { cluster: None, proxy: None, disks: None, dir: None };
    let run_dir = match &config.work_dir {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
            d.clone()
        }
        None => {
            let t = tempfile::Builder::new().prefix("paddock-chaos-").tempdir()?;
            let p = t.path().to_path_buf();
            harness.dir = Some(t);
            p
        }
    };
    // Self-healing needs a standby: one more node, a learner, and every node told which nodes
    // may replace a dead voter.
    let standby = faults.contains(&FaultKind::ReplaceVoter).then_some(config.nodes as u64 + 1);
    let slots = config.nodes + usize::from(standby.is_some());
    let ports = cluster::Ports::find(slots, config.base_port)?;
    let mut extra = vec!["--snapshot-logs".to_string(), config.snapshot_logs.to_string()];
    if standby.is_some() {
        let pool: Vec<String> = (1..=slots as u64).map(|id| id.to_string()).collect();
        extra.extend([
            "--replace-voter-pool".to_string(),
            pool.join(","),
            "--replace-voter-after-s".to_string(),
            config.timings.replace_after.as_secs().max(1).to_string(),
        ]);
    }
    if faults.contains(&FaultKind::SlowDiskLeader) {
        extra.extend(["--slow-disk-for-s".to_string(), config.timings.slow_disk_for.as_secs().max(1).to_string()]);
    }
    let mut skipped = Vec::new();

    // Data disks (only if the disk fault is wanted).
    let mut cluster = cluster::Cluster::new(&config.binary, &run_dir, slots, ports, config.proxy, &extra);
    if standby.is_some() {
        let voters: Vec<u64> = (1..=config.nodes as u64).collect();
        cluster = cluster.with_bootstrap_members(&voters);
    }
    let data_dirs: Vec<PathBuf> = cluster.ids().iter().map(|id| cluster.spec(*id).data_dir.clone()).collect();
    let disks: Result<Vec<PathBuf>, String> = if faults.contains(&FaultKind::DiskFull) {
        match disk::Disks::mount(&data_dirs, config.tmpfs_mb) {
            Ok(d) => {
                harness.disks = Some(d);
                Ok(data_dirs.clone())
            }
            Err(e) => {
                skipped.push(format!("disk-full: {e:#}"));
                Err(format!("{e:#}"))
            }
        }
    } else {
        Err("not selected".into())
    };

    // Proxy, then nodes.
    let partition = proxy::Partition::new(cluster.ids());
    let routes = cluster.proxy_routes();
    if config.proxy {
        harness.proxy = Some(proxy::Proxy::start(&routes, partition.clone()).await?);
    }
    cluster.start_all()?;
    harness.cluster = Some(cluster);
    let cluster = harness.cluster.as_mut().expect("just set");
    let ids = cluster.ids();
    let voters: Vec<u64> = ids.iter().copied().filter(|id| Some(*id) != standby).collect();
    cluster.wait_ready(&voters, Duration::from_secs(60)).await.context("the cluster did not start")?;
    cluster.leader(Duration::from_secs(30)).await?;
    if let Some(standby) = standby {
        cluster.add_learner(standby, &voters, Duration::from_secs(30)).await.context("the standby was not added")?;
        cluster.wait_ready(&[standby], Duration::from_secs(30)).await?;
        println!("chaos: node {standby} added as a standby learner");
    }
    println!(
        "chaos: {} nodes up (HTTP {}), run directory {}",
        config.nodes,
        cluster.urls().join(" "),
        run_dir.display()
    );

    // Workload setup on a healthy cluster.
    let t0 = Instant::now();
    let oracle = Arc::new(oracle::Oracle::new(t0));
    let workload = Arc::new(workload::Workload::new(
        config.workload.clone(),
        config.seed,
        cluster.urls(),
        cluster.keys(),
        oracle.clone(),
    ));
    workload.setup().await.context("workload setup failed")?;

    // Workload and nemesis together.
    let deadline = Instant::now() + config.duration;
    let plannable: Vec<FaultKind> = faults
        .iter()
        .copied()
        .filter(|f| {
            let link = matches!(f, FaultKind::IsolateLeader | FaultKind::Split);
            if link && !config.proxy {
                skipped.push(format!("{f}: no proxy between the nodes"));
            }
            // Without the tmpfs mounts the disk fault cannot run (already reported above).
            let no_disk = *f == FaultKind::DiskFull && disks.is_err();
            (!link || config.proxy) && !no_disk
        })
        .collect();
    let steps = nemesis::plan(config.seed, &plannable, config.duration, &config.timings);
    println!(
        "chaos: workload for {:?}, faults planned: {}",
        config.duration,
        steps.iter().map(|s| s.kind.name()).collect::<Vec<_>>().join(", ")
    );
    // The plan fits the duration; real faults take a little longer (recovery waits), so the
    // workload runs on until the nemesis is done, within a bounded grace.
    let stop = workload::Stop {
        deadline,
        hard: deadline + FAULT_GRACE + Duration::from_secs(30),
        nemesis_done: Arc::default(),
    };
    let runner = workload.clone();
    let load_stop = stop.clone();
    let load = tokio::spawn(async move { runner.run(load_stop).await });
    let mut env = nemesis::Env {
        cluster: &mut *cluster,
        partition: &partition,
        disks,
        t0,
        deadline: deadline + FAULT_GRACE,
        timings: config.timings.clone(),
    };
    let records = nemesis::run(&steps, &mut env).await;
    stop.nemesis_done.store(true, std::sync::atomic::Ordering::SeqCst);
    let _ = load.await;
    let workload_end_s = oracle.now_s();

    // Heal everything.
    let mut harness_errors = Vec::new();
    partition.heal();
    for id in cluster.ids() {
        if cluster.is_paused(id) {
            cluster.resume(id)?;
        }
        let _ = disk::free(&cluster.spec(id).data_dir);
        if !cluster.is_running(id) {
            harness_errors.push(format!("node {id} was down at the end of the workload; restarted"));
            cluster.restart(id)?;
        }
    }
    if let Err(e) = cluster.wait_ready(&ids, Duration::from_secs(60)).await {
        harness_errors.push(format!("after healing: {e:#}"));
    }

    // Resolve unknown operations.
    let left = workload::resolve(
        workload.caller(),
        &oracle,
        workload::Limits { attempts: 40, budget: Duration::from_secs(20) },
        Duration::from_secs(120),
    )
    .await;
    if left > 0 {
        println!("chaos: {left} operation(s) stay unknown after resolution");
    }

    // Check.
    let history = oracle.snapshot();
    let verdict = checker::check(&history, workload.caller(), &oracle, cluster).await;
    let history = oracle.snapshot();

    // Report.
    let mut faults_report = Vec::new();
    for (i, r) in records.iter().enumerate() {
        let window_end =
            records.iter().skip(i + 1).find(|n| n.skipped.is_none()).map_or(workload_end_s, |n| n.start_s).max(r.end_s);
        faults_report.push(report::fault_report(r, window_end, &history.attempts));
        if let Some(why) = &r.skipped {
            skipped.push(format!("{}: {why}", r.kind));
        }
    }
    for missing in &plannable {
        if !steps.iter().any(|s| s.kind == *missing) {
            skipped.push(format!("{missing}: no time left in a {:?} run", config.duration));
        }
    }
    skipped.dedup();
    let proxy_stats = partition.stats();
    let history_path = run_dir.join("history.json");
    if let Err(e) = std::fs::write(&history_path, serde_json::to_vec(&history).unwrap_or_default()) {
        harness_errors.push(format!("cannot write {}: {e}", history_path.display()));
    }
    let failures = harness.teardown();
    for dir in failures {
        harness_errors.push(format!("could not unmount the tmpfs on {dir}"));
    }
    let mut report = Report {
        seed: config.seed,
        nodes: config.nodes,
        duration_s: config.duration.as_secs_f64(),
        run_time_s: 0.0,
        faults_selected: faults.iter().map(|f| f.name().to_string()).collect(),
        work_dir: run_dir.display().to_string(),
        faults: faults_report,
        totals: report::totals(&history, verdict.acknowledged_but_lost),
        checks: verdict.checks,
        skipped,
        proxy: proxy_stats,
        harness_errors,
    };
    report.run_time_s = started.elapsed().as_secs_f64();
    let passed = report.passed();
    if !passed {
        harness.keep_dir();
    }
    if harness.dir.is_none() {
        report.write_json(&run_dir.join("report.json"))?;
    } else {
        report.work_dir = format!("{} (deleted after a passing run)", run_dir.display());
    }
    if let Some(path) = &config.report_path {
        report.write_json(path).with_context(|| format!("cannot write the report to {}", path.display()))?;
    }
    Ok(report)
}
