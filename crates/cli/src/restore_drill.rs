//! `paddock drill restore`: the disaster-recovery drill for backups, with its RTO and RPO.
//!
//! A local 3-node cluster takes bets from closed-loop workers. Under that load the drill takes
//! a full backup from a follower, then increments every `--increment-every-s`, as a schedule
//! would. Then the site is lost: every node is killed (kill -9) while the workers still bet, and
//! their data directories are deleted. The drill restores every node from the chain into new
//! data directories, starts them, and reports:
//!
//! - **RTO**: from the start of the restore to the first bet the restored cluster accepts
//!   (restore, start, election), and the restore alone;
//! - **RPO**: what was acknowledged and is not in the restored book — bets acknowledged after
//!   the last increment was cut, in number and in seconds of business;
//! - checks, each failing the drill: the restored state hash is the chain's, every bet
//!   acknowledged before the last increment began is in the restored book as placed, and the
//!   audit trail verifies.
//!
//! Every loop is bounded in time; the nodes are stopped by PID when the drill ends.

use crate::backup::ClientSource;
use crate::load::{drill_bet, setup, DrillWorkers, Space};
use anyhow::{bail, Context, Result};
use paddock_backup as backup;
use paddock_chaos::cluster::{Cluster, Ports};
use paddock_client::Client;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// `paddock drill restore` flags.
#[derive(clap::Args, Clone, Debug)]
pub struct RestoreDrillArgs {
    /// Betting workers (closed loop, one bet in flight each).
    #[arg(long, default_value_t = 8)]
    pub workers: u32,
    /// Seconds of load before the site is lost.
    #[arg(long, default_value_t = 20)]
    pub load_s: u64,
    /// Seconds between increments (the backup schedule).
    #[arg(long, default_value_t = 5)]
    pub increment_every_s: u64,
    /// Write the JSON report here.
    #[arg(long)]
    pub report: Option<std::path::PathBuf>,
}

/// The drill's figures.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Bets acknowledged to clients before the site was lost.
    pub acknowledged: u64,
    /// Files in the chain and its last index.
    pub chain_files: usize,
    pub chain_last_index: u64,
    /// The full backup's and the increments' durations, ms.
    pub full_backup_ms: u64,
    pub increment_ms: Vec<u64>,
    /// Restore of the three data directories, ms.
    pub restore_ms: u64,
    /// From the start of the restore to the first accepted bet, ms.
    pub rto_ms: u64,
    /// Acknowledged bets not in the restored book (all acknowledged after the last increment
    /// was cut).
    pub rpo_bets: u64,
    /// From the last increment's cut to the loss of the site, ms: the business a restore
    /// from this chain gives up.
    pub rpo_ms: u64,
    /// The restored cluster's state hash equals the chain's.
    pub state_hash_matches: bool,
    /// Every bet acknowledged before the last increment began is in the restored book.
    pub acknowledged_before_point_present: bool,
    /// The restored audit trail verifies.
    pub audit_verifies: bool,
}

/// The drill's ids: one market and an account per worker, as `paddock load` lays them out.
fn space(workers: u32) -> Space {
    Space { run: 90, accounts: u64::from(workers), markets: 1 }
}

/// Runs the drill.
pub fn run(args: RestoreDrillArgs) -> Result<()> {
    let dir = tempfile::Builder::new().prefix("paddock-restore-drill-").tempdir()?;
    let binary = std::env::current_exe().context("cannot find the paddock binary")?;
    let mut cluster = Cluster::new(&binary, &dir.path().join("site"), 3, Ports::find(3, None)?, false, &[]);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let result = runtime.block_on(drill(&mut cluster, &args, dir.path()));
    cluster.kill_all();
    let report = result?;
    println!(
        "restore drill: {} bets acknowledged; chain of {} files to index {}; full backup {} ms, increments {} ms; \
         restore {} ms, RTO {} ms (restore start to first accepted bet); RPO {} bets, {} ms; state hash {}, \
         acknowledged bets before the point {}, audit trail {}",
        report.acknowledged,
        report.chain_files,
        report.chain_last_index,
        report.full_backup_ms,
        report.increment_ms.iter().map(u64::to_string).collect::<Vec<_>>().join("/"),
        report.restore_ms,
        report.rto_ms,
        report.rpo_bets,
        report.rpo_ms,
        if report.state_hash_matches { "matches" } else { "DIFFERS" },
        if report.acknowledged_before_point_present { "all present" } else { "MISSING" },
        if report.audit_verifies { "verifies" } else { "DOES NOT VERIFY" },
    );
    if let Some(path) = &args.report {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)?;
    }
    if !(report.state_hash_matches && report.acknowledged_before_point_present && report.audit_verifies) {
        bail!("the restore drill failed a check (above)");
    }
    Ok(())
}

async fn drill(cluster: &mut Cluster, args: &RestoreDrillArgs, work: &std::path::Path) -> Result<Report> {
    cluster.start_all()?;
    cluster.wait_ready(&cluster.ids(), Duration::from_secs(30)).await?;
    let client = Client::new(cluster.urls(), Duration::from_secs(5)).with_keys(cluster.keys());
    let space = space(args.workers);
    setup(&client, &space).await.context("cannot set up the drill's market and accounts")?;

    // Closed-loop betting until the site is lost; every acknowledgement recorded.
    let workers = DrillWorkers::start(&client, space, args.workers, 0, Duration::from_secs(args.load_s + 120));

    // The backup schedule: a full backup from a follower, then increments.
    let leader = cluster.leader(Duration::from_secs(10)).await?;
    let follower = cluster.ids().into_iter().find(|id| *id != leader).expect("three nodes");
    let source = Client::new(vec![cluster.url(follower)], Duration::from_secs(30)).with_keys(cluster.keys());
    let chain = work.join("chain");
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let t = Instant::now();
    backup::take(&ClientSource(&source), &chain, None).await.context("the full backup failed")?;
    let full_backup_ms = t.elapsed().as_millis() as u64;
    let mut increment_ms = Vec::new();
    // The point: bets acknowledged before the last increment began are certainly in it.
    let mut point: (usize, Instant) = (0, Instant::now());
    while started.elapsed() < Duration::from_secs(args.load_s) {
        tokio::time::sleep(Duration::from_secs(args.increment_every_s)).await;
        let acked_before = workers.acknowledged();
        let cut = Instant::now();
        let t = Instant::now();
        backup::take(&ClientSource(&source), &chain, None).await.context("an increment failed")?;
        increment_ms.push(t.elapsed().as_millis() as u64);
        point = (acked_before, cut);
    }
    // Business goes on a moment after the last increment, then the site is lost.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let lost_at = Instant::now();
    for id in cluster.ids() {
        cluster.kill(id)?;
    }
    let acked = workers.stop().await;
    for id in cluster.ids() {
        let data = cluster.spec(id).data_dir.clone();
        std::fs::remove_dir_all(&data).with_context(|| format!("cannot delete {}", data.display()))?;
    }

    // Restore every node from the chain and serve again.
    let restore_started = Instant::now();
    let manifest = backup::read_manifest(&chain)?.context("the chain has no manifest")?;
    let members: BTreeMap<u64, String> = crate::parse_members(cluster.bootstrap())?;
    let mut restored_hash = String::new();
    for id in cluster.ids() {
        let answer = backup::restore(&backup::RestoreRequest {
            from: &chain,
            point: backup::Point::End,
            cluster_id: "paddock",
            node_id: id,
            members: &members,
            data_dir: &cluster.spec(id).data_dir,
            force: false,
            // Every node was stopped above: nothing answers at the members' addresses.
            allow_live_peers: false,
            key: None,
        })?;
        restored_hash = answer["state_hash"].as_str().unwrap_or_default().to_string();
    }
    let restore_ms = restore_started.elapsed().as_millis() as u64;
    cluster.start_all()?;
    cluster.wait_ready(&cluster.ids(), Duration::from_secs(60)).await?;
    let hash_now = client.state_hash().await.context("the restored cluster answers its state hash")?;
    let state_hash_matches = hash_now.state_hash == restored_hash;
    let serve_deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match client.place_bet(&drill_bet(&space, 0, 0), &paddock_client::fresh_key()).await {
            Ok(_) => break,
            Err(e) if Instant::now() < serve_deadline => tracing::debug!(error = %e, "not serving yet"),
            Err(e) => bail!("the restored cluster takes no bet within 60 s: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rto_ms = restore_started.elapsed().as_millis() as u64;

    // Which acknowledged bets the restored book holds.
    let mut missing = 0u64;
    let mut missing_before_point = 0u64;
    for (i, (bet_id, _)) in acked.iter().enumerate() {
        let present = match client.bet(*bet_id).await {
            Ok(body) => body.stake_minor == 100,
            Err(e) if e.code() == Some("bet_not_found") => false,
            Err(e) => return Err(e).context("cannot read a bet back"),
        };
        if !present {
            missing += 1;
            if i < point.0 {
                missing_before_point += 1;
            }
        }
    }
    let trail = client.audit_trail().await?;
    let audit_verifies = paddock_api::convert::verify_audit_export(&trail).is_ok();
    Ok(Report {
        acknowledged: acked.len() as u64,
        chain_files: manifest.files.len(),
        chain_last_index: manifest.files.last().map_or(0, |f| f.last_index),
        full_backup_ms,
        increment_ms,
        restore_ms,
        rto_ms,
        rpo_bets: missing,
        rpo_ms: lost_at.duration_since(point.1).as_millis() as u64,
        state_hash_matches,
        acknowledged_before_point_present: missing_before_point == 0,
        audit_verifies,
    })
}
