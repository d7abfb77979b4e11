//! `paddock drill`: operational drills against a local cluster of this very binary.
//!
//! - `drill chaos`: the Jepsen-style chaos harness ([`paddock_chaos`]): a 3- or 5-node
//!   cluster behind a fault-injecting proxy, a bank-style workload, a nemesis, invariant
//!   checks and a report. Exits non-zero if any check fails. See `docs/chaos.md`.
//! - `drill failover`: kill -9 (or SIGSTOP) of the leader under a steady write load, trial after trial;
//!   client-visible write unavailability (1 s client timeout) and the time to a new leader,
//!   measured as `bench/failover.sh` measures etcd.
//! - `drill restore`: backups under load, the whole site lost, a restore from the chain; RTO,
//!   RPO and checks of the restored book (`restore_drill.rs`).
//! - `drill dr`: the primary site lost under load, the standby site promoted, then failback;
//!   RTO, RPO and checks (`dr_drill.rs`).

use anyhow::{bail, Context, Result};
use paddock_chaos::{ChaosConfig, FaultKind};
use std::path::PathBuf;
use std::time::Duration;

/// `paddock drill` subcommands.
#[derive(clap::Subcommand, Clone, Debug)]
pub enum DrillCmd {
    /// Chaos: kill, pause, partition and fill disks under a bank workload; check invariants.
    ///
    /// Example: paddock drill chaos --nodes 3 --duration-s 120 --faults kill-leader,split --seed 7
    Chaos(ChaosArgs),
    /// Failover: kill -9 (or SIGSTOP) the leader under a steady write load and time the recovery.
    ///
    /// Example: paddock drill failover --trials 5 --report failover.json
    Failover(crate::failover::FailoverArgs),
    /// Restore: under load, back up from a follower on a schedule, lose every node and its data,
    /// restore the cluster from the chain; report RTO and RPO and check the restored book.
    ///
    /// Example: paddock drill restore --load-s 20 --increment-every-s 5 --report restore.json
    Restore(crate::restore_drill::RestoreDrillArgs),
    /// DR: under load, lose the primary site, promote the standby site's learner, fail back;
    /// report RTO and RPO and check that nothing acknowledged after the promotion is lost.
    ///
    /// Example: paddock drill dr --load-s 15 --report dr.json
    Dr(crate::dr_drill::DrDrillArgs),
}

/// `paddock drill chaos` flags.
#[derive(clap::Args, Clone, Debug)]
pub struct ChaosArgs {
    /// Nodes in the cluster: 3 or 5.
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// How long the workload and the nemesis run, seconds.
    #[arg(long, default_value_t = 60)]
    pub duration_s: u64,
    /// Seed of every choice (fault order, quiet periods, targets, workload); default: the clock.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Comma list of faults to draw from: kill-leader, kill-follower, pause-leader,
    /// isolate-leader, split, disk-full, clock-jump-leader, replace-voter, slow-disk-leader, rot-follower; "all"; "none" for a baseline.
    #[arg(long, default_value = "all")]
    pub faults: String,
    /// Write the JSON report here.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Run directory (node logs, data, history.json, report.json); kept. Default: a temporary
    /// directory, deleted after a passing run.
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// First HTTP port (node i listens on 127.0.1.i:base+i); default: picked and checked free.
    #[arg(long)]
    pub base_port: Option<u16>,
    /// Concurrent workload workers.
    #[arg(long, default_value_t = 8)]
    pub workers: usize,
    /// No proxy between the nodes (a baseline; isolate-leader and split are skipped).
    #[arg(long)]
    pub no_proxy: bool,
    /// Size of each node's tmpfs data disk for the disk-full fault, MiB.
    #[arg(long, default_value_t = 64)]
    pub tmpfs_mb: u64,
}

/// Runs a drill.
pub fn run(cmd: DrillCmd) -> Result<()> {
    match cmd {
        DrillCmd::Chaos(args) => chaos(args),
        DrillCmd::Failover(args) => crate::failover::run(args),
        DrillCmd::Restore(args) => crate::restore_drill::run(args),
        DrillCmd::Dr(args) => crate::dr_drill::run(args),
    }
}

fn chaos(args: ChaosArgs) -> Result<()> {
    if args.nodes != 3 && args.nodes != 5 {
        bail!("--nodes must be 3 or 5");
    }
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(1)
    });
    let defaults = ChaosConfig::default();
    let config = ChaosConfig {
        binary: std::env::current_exe().context("cannot find the paddock binary")?,
        nodes: args.nodes,
        duration: Duration::from_secs(args.duration_s),
        seed,
        faults: FaultKind::parse_list(&args.faults)?,
        work_dir: args.work_dir,
        report_path: args.report.clone(),
        base_port: args.base_port,
        proxy: !args.no_proxy,
        tmpfs_mb: args.tmpfs_mb,
        workload: paddock_chaos::WorkloadConfig { workers: args.workers.max(1), ..defaults.workload.clone() },
        ..defaults
    };
    println!("paddock drill chaos: seed {seed} (rerun with --seed {seed})");
    let report = paddock_chaos::run(&config)?;
    println!();
    print!("{}", report.text());
    if let Some(path) = &args.report {
        println!("report written to {}", path.display());
    }
    if !report.passed() {
        bail!("chaos run failed (seed {seed}); see the report above and the node logs in {}", report.work_dir);
    }
    Ok(())
}
