//! `paddock drill dr`: the site-loss drill for a standby (DR) site, with its RTO and RPO.
//!
//! A primary site of three voters takes bets from closed-loop workers; a fourth node in the
//! standby site follows as a learner, every link between the sites delayed by the harness's
//! proxy (`--site-link-delay-ms`, one way). Then:
//!
//! 1. **Loss.** The primary site's three nodes are killed (kill -9) while the workers bet. The
//!    standby's lag at that moment (`paddock_replica_lag_seconds` and `_entries`, read from its
//!    metrics just before) is reported.
//! 2. **Promotion.** The standby is stopped and `paddock dr promote` seeds a node of a new
//!    cluster (`paddock-dr`) from its book; it starts as that cluster's only voter.
//!    **RTO**: from the loss to the first bet the promoted site accepts (the operator's
//!    decision to fail over is not in it). **RPO**: the entries the primary had committed past
//!    the promoted index (read from the lost nodes' own data directories afterwards), and the
//!    acknowledged bets the promoted book does not hold.
//! 3. **Failback.** While workers bet against the promoted site, the primary site's nodes come
//!    back on empty data directories with the new cluster id and `paddock dr failback` hands
//!    service back to them. The standby site is then lost too (kill -9): every bet acknowledged
//!    since the promotion must be in the primary site's book.
//!
//! Checks, each failing the drill: every bet acknowledged up to the promoted point is in the
//! promoted book as acknowledged (account and stake); bets are missing only if the primary had
//! committed entries past the promoted index; the promoted audit trail verifies; nothing
//! acknowledged since the promotion is lost after failback; no lost bet's id is given to
//! another bet by the promoted site. Bet ids follow the log, so the promoted book's next id at
//! the point splits the acknowledged bets into those it must hold and those lost with the
//! primary, and the promoted site numbers its bets from a reserved floor above both.
//!
//! Every loop is bounded in time; the nodes are stopped by PID when the drill ends.

use crate::load::{drill_bet, setup, DrillWorkers, Space};
use anyhow::{bail, Context, Result};
use paddock_chaos::cluster::{Cluster, Ports};
use paddock_chaos::proxy::{Partition, Proxy};
use paddock_client::Client;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// `paddock drill dr` flags.
#[derive(clap::Args, Clone, Debug)]
pub struct DrDrillArgs {
    /// Betting workers (closed loop, one bet in flight each).
    #[arg(long, default_value_t = 8)]
    pub workers: u32,
    /// Seconds of load before the primary site is lost.
    #[arg(long, default_value_t = 15)]
    pub load_s: u64,
    /// One-way delay of every link between the two sites, ms (the distance to the DR site).
    #[arg(long, default_value_t = 20)]
    pub site_link_delay_ms: u64,
    /// Write the JSON report here.
    #[arg(long)]
    pub report: Option<std::path::PathBuf>,
}

/// The drill's figures.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Bets acknowledged by the primary site before it was lost.
    pub acknowledged_before_loss: u64,
    /// The standby's lag just before the loss, from its own metrics.
    pub standby_lag_seconds: f64,
    pub standby_lag_entries: f64,
    /// The promotion (`paddock dr promote`) alone, ms.
    pub promote_ms: u64,
    /// From the loss of the primary site to the first bet the promoted site accepts, ms.
    pub rto_ms: u64,
    /// The index the promoted book reaches, and the primary's committed index at the loss.
    pub promoted_index: u64,
    pub primary_committed_index: u64,
    /// Committed entries of the primary past the promoted index: the exact RPO in entries.
    pub rpo_entries: u64,
    /// Acknowledged bets the promoted book does not hold: those acknowledged after the promoted
    /// point (their ids at or beyond the promoted site's first).
    pub rpo_bets: u64,
    /// Bets acknowledged by the promoted site while it served (up to the end of failback).
    pub acknowledged_after_promotion: u64,
    /// `paddock dr failback`: until every primary node is a voter, and in all, ms.
    pub failback_caught_up_ms: u64,
    pub failback_ms: u64,
    /// Bets acknowledged since the promotion that the primary site lacks after failback.
    pub lost_after_failback: u64,
    /// Bets are lost only if committed entries were: none is missing unless the primary had
    /// committed entries past the promoted index.
    pub missing_within_rpo: bool,
    /// Every bet acknowledged up to the promoted point is in the promoted book as acknowledged.
    pub promoted_bets_intact: bool,
    /// No id of a lost bet was given to another bet by the promoted site (it numbers its bets
    /// from a reserved floor).
    pub lost_ids_not_reissued: bool,
    /// The promoted site's audit trail verifies.
    pub audit_verifies: bool,
}

/// The new cluster's id: another than the lost site's (`paddock`), as promotion requires.
const DR_CLUSTER: &str = "paddock-dr";
/// The standby's node id.
const STANDBY: u64 = 4;
/// The primary site's node ids.
const PRIMARY: [u64; 3] = [1, 2, 3];

fn space(workers: u32) -> Space {
    Space { run: 91, accounts: u64::from(workers), markets: 1 }
}

/// Runs the drill.
pub fn run(args: DrDrillArgs) -> Result<()> {
    let dir = tempfile::Builder::new().prefix("paddock-dr-drill-").tempdir()?;
    let binary = std::env::current_exe().context("cannot find the paddock binary")?;
    // Proxied: every peer link goes through the harness's proxy, which delays the links
    // between the sites.
    let mut cluster = Cluster::new(&binary, &dir.path().join("sites"), 4, Ports::find(4, None)?, true, &[])
        .with_bootstrap_members(&PRIMARY);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let result = runtime.block_on(async {
        let partition = Partition::new(cluster.ids());
        let delay = Duration::from_millis(args.site_link_delay_ms);
        for id in PRIMARY {
            partition.set_delay(id, STANDBY, delay);
            partition.set_delay(STANDBY, id, delay);
        }
        let _proxy = Proxy::start(&cluster.proxy_routes(), partition).await?;
        drill(&mut cluster, &args).await
    });
    cluster.kill_all();
    let report = result?;
    println!(
        "dr drill ({} ms one way between the sites): {} bets acknowledged before the loss; standby lag {:.3} s, {} entries; promote {} ms, \
         RTO {} ms (loss to first bet on the DR site); RPO {} entries, {} bets; failback {} ms ({} ms to voters), \
         {} bets acknowledged after promotion, {} lost after failback; missing bets {}, promoted bets {}, \
         lost bets' ids {}, audit trail {}",
        args.site_link_delay_ms,
        report.acknowledged_before_loss,
        report.standby_lag_seconds,
        report.standby_lag_entries,
        report.promote_ms,
        report.rto_ms,
        report.rpo_entries,
        report.rpo_bets,
        report.failback_ms,
        report.failback_caught_up_ms,
        report.acknowledged_after_promotion,
        report.lost_after_failback,
        if report.missing_within_rpo { "within the RPO" } else { "BEYOND THE RPO" },
        if report.promoted_bets_intact { "intact" } else { "ALTERED" },
        if report.lost_ids_not_reissued { "not reissued" } else { "REISSUED" },
        if report.audit_verifies { "verifies" } else { "DOES NOT VERIFY" },
    );
    if let Some(path) = &args.report {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)?;
    }
    if !(report.missing_within_rpo
        && report.promoted_bets_intact
        && report.lost_ids_not_reissued
        && report.audit_verifies
        && report.lost_after_failback == 0)
    {
        bail!("the DR drill failed a check (above)");
    }
    Ok(())
}

/// A client of some of the cluster's nodes, with the harness's keys.
fn client_of(cluster: &Cluster, ids: &[u64]) -> Client {
    Client::new(ids.iter().map(|id| cluster.url(*id)).collect(), Duration::from_secs(5)).with_keys(cluster.keys())
}

/// One series of a node's `/metrics`.
async fn metric(cluster: &Cluster, id: u64, series: &str) -> Result<f64> {
    client_of(cluster, &[id]).metric(series).await?.with_context(|| format!("node {id} exports no {series}"))
}

/// Moves a data directory aside (kept, never deleted: the evidence of what was there).
fn move_aside(dir: &Path, suffix: &str) -> Result<()> {
    let to = dir.with_extension(suffix);
    std::fs::rename(dir, &to).with_context(|| format!("cannot move {} to {}", dir.display(), to.display()))
}

async fn drill(cluster: &mut Cluster, args: &DrDrillArgs) -> Result<Report> {
    for id in PRIMARY {
        cluster.start(id)?;
    }
    cluster.wait_ready(&PRIMARY, Duration::from_secs(30)).await?;
    let primary = client_of(cluster, &PRIMARY);
    let space = space(args.workers);
    setup(&primary, &space).await.context("cannot set up the drill's market and accounts")?;

    // The standby site: one learner that follows the primary asynchronously.
    cluster.start(STANDBY)?;
    cluster.add_learner(STANDBY, &PRIMARY, Duration::from_secs(30)).await.context("the standby was not added")?;
    let standby_peer = cluster.spec(STANDBY).advertise.to_string();

    // Business on the primary site, then its loss.
    let bound = Duration::from_secs(args.load_s + 300);
    let workers = DrillWorkers::start(&primary, space, args.workers, 0, bound);
    tokio::time::sleep(Duration::from_secs(args.load_s)).await;
    let standby_lag_seconds = metric(cluster, STANDBY, "paddock_replica_lag_seconds").await?;
    let standby_lag_entries = metric(cluster, STANDBY, "paddock_replica_lag_entries").await?;
    let lost_at = Instant::now();
    for id in PRIMARY {
        cluster.kill(id)?;
    }
    let acked_before_loss = workers.stop().await;

    // Promotion: the standby, stopped, seeds the only voter of a new cluster.
    let promote_started = Instant::now();
    cluster.terminate(STANDBY, Duration::from_secs(10)).await?;
    let standby_dir = cluster.spec(STANDBY).data_dir.clone();
    let kept = standby_dir.with_extension("standby");
    move_aside(&standby_dir, "standby")?;
    let promoted = paddock_backup::dr::promote(&paddock_backup::dr::PromoteRequest {
        from: &kept,
        cluster_id: DR_CLUSTER,
        node_id: STANDBY,
        members: &BTreeMap::from([(STANDBY, standby_peer.clone())]),
        data_dir: &standby_dir,
        force: false,
        bet_id_gap: paddock_backup::dr::BET_ID_GAP_DEFAULT,
    })?;
    let promote_ms = promote_started.elapsed().as_millis() as u64;
    let promoted_index = promoted["promoted_to_index"].as_u64().context("promotion names its index")?;
    // Bets of the promoted book have lower ids than this; bets the lost site acknowledged
    // after the promoted point have this one or higher, and below the reserved floor.
    let point_id = promoted["next_bet_id_at_point"].as_u64().context("promotion names its next bet id")?;
    let bet_ids_from = promoted["bet_ids_from"].as_u64().context("promotion names its reserved bet ids")?;
    cluster.set_cluster_id(STANDBY, Some(DR_CLUSTER));
    cluster.set_bootstrap(STANDBY, None);
    cluster.start(STANDBY)?;
    let dr = client_of(cluster, &[STANDBY]);
    let serve_deadline = Instant::now() + Duration::from_secs(60);
    let first_new_id = loop {
        match dr.place_bet(&drill_bet(&space, 0, 1_000_000), &paddock_client::fresh_key()).await {
            Ok(placed) => break placed.bet_id,
            Err(e) if Instant::now() < serve_deadline => tracing::debug!(error = %e, "the DR site does not serve yet"),
            Err(e) => bail!("the promoted site takes no bet within 60 s: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let rto_ms = lost_at.elapsed().as_millis() as u64;

    // The RPO, exactly: what the lost primary had committed, from its own data directories.
    let mut primary_committed_index = 0u64;
    for id in PRIMARY {
        let committed = paddock_backup::dr::committed_index(&cluster.spec(id).data_dir)
            .with_context(|| format!("cannot read lost node {id}'s data directory"))?;
        primary_committed_index = primary_committed_index.max(committed);
    }
    let rpo_entries = primary_committed_index.saturating_sub(promoted_index);
    // Ids follow the log: bets below the point are the promoted book's and must be there as
    // acknowledged; those from it on were acknowledged after the point and are lost, and the
    // promoted site, numbering from its reserved floor, must not have given their ids again.
    let (mut rpo_bets, mut promoted_bets_intact, mut lost_ids_not_reissued) =
        (0u64, true, first_new_id >= bet_ids_from);
    for (bet_id, account) in &acked_before_loss {
        let found = match dr.bet(*bet_id).await {
            Ok(body) => Some(body),
            Err(e) if e.code() == Some("bet_not_found") => None,
            Err(e) => return Err(e).context("cannot read a bet back from the promoted site"),
        };
        if *bet_id < point_id {
            promoted_bets_intact &= found.is_some_and(|b| b.account_id == *account && b.stake_minor == 100);
        } else {
            rpo_bets += 1;
            lost_ids_not_reissued &= found.is_none();
        }
    }
    let trail = dr.audit_trail().await?;
    let audit_verifies = paddock_api::convert::verify_audit_export(&trail).is_ok();

    // Failback under load on the promoted site: the primary's nodes return empty, as members
    // of the new cluster, and take service back.
    let workers = DrillWorkers::start(&client_of(cluster, &[STANDBY, 1, 2, 3]), space, args.workers, 2_000_000, bound);
    for id in PRIMARY {
        move_aside(&cluster.spec(id).data_dir.clone(), "lost")?;
        cluster.set_cluster_id(id, Some(DR_CLUSTER));
        cluster.set_bootstrap(id, None);
        cluster.start(id)?;
    }
    let site: BTreeMap<u64, String> = PRIMARY.iter().map(|id| (*id, cluster.spec(*id).advertise.to_string())).collect();
    let failback = crate::dr::failback(&dr, &site, Duration::from_secs(120)).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let acked_after_promotion = workers.stop().await;

    // The standby site is lost too: the primary site alone must hold everything acknowledged.
    cluster.kill(STANDBY)?;
    let back = client_of(cluster, &PRIMARY);
    cluster.wait_ready(&PRIMARY, Duration::from_secs(30)).await?;
    let mut lost_after_failback = 0u64;
    for (bet_id, account) in &acked_after_promotion {
        match back.bet(*bet_id).await {
            Ok(body) if body.account_id == *account => {}
            Ok(_) => lost_after_failback += 1,
            Err(e) if e.code() == Some("bet_not_found") => lost_after_failback += 1,
            Err(e) => return Err(e).context("cannot read a bet back from the primary site"),
        }
    }
    Ok(Report {
        acknowledged_before_loss: acked_before_loss.len() as u64,
        standby_lag_seconds,
        standby_lag_entries,
        promote_ms,
        rto_ms,
        promoted_index,
        primary_committed_index,
        rpo_entries,
        rpo_bets,
        acknowledged_after_promotion: acked_after_promotion.len() as u64,
        failback_caught_up_ms: failback.caught_up_ms,
        failback_ms: failback.total_ms,
        lost_after_failback,
        missing_within_rpo: rpo_bets == 0 || rpo_entries > 0,
        promoted_bets_intact,
        lost_ids_not_reissued,
        audit_verifies,
    })
}
