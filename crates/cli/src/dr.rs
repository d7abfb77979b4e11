//! `paddock dr`: disaster recovery with a standby site (`docs/operations.md`, "Disaster
//! recovery").
//!
//! - `dr promote` (offline): the standby learner's data directory becomes a node of a new
//!   cluster ([`paddock_backup::dr::promote`]).
//! - `dr failback` (online, against the promoted cluster): the old site's nodes, started empty
//!   with the new cluster's id, join as learners, catch up, become voters, take leadership, and
//!   the standby site's voters go back to being learners — the shape from before the disaster,
//!   under the new cluster id.

use anyhow::{bail, Context, Result};
use paddock_client::{Client, ClientError};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// `paddock dr` subcommands.
#[derive(clap::Subcommand)]
pub enum DrCmd {
    /// Turn a stopped standby (a learner in the DR site) into a node of a new cluster, from
    /// what it had committed. Its own directory is only read; start the node on --data-dir.
    ///
    /// Example: paddock dr promote --from /var/lib/paddock --data-dir /var/lib/paddock-dr
    /// --cluster-id paddock-dr --node-id 4 --bootstrap 4=10.1.0.4:7101
    Promote {
        /// The standby's data directory (its node stopped).
        #[arg(long)]
        from: PathBuf,
        /// The new node (its --cluster-id must be another than the lost site's).
        #[command(flatten)]
        node: crate::NewNode,
        /// Number the promoted site's bets from the book's next id plus this many, so that no
        /// id the lost site gave after the promoted point is issued again (0: no gap).
        #[arg(long, default_value_t = paddock_backup::dr::BET_ID_GAP_DEFAULT)]
        bet_id_gap: u64,
    },
    /// Hand service back to the recovered primary site: its nodes (started on empty data
    /// directories with the promoted cluster's --cluster-id and no --bootstrap) join, catch up,
    /// become voters and take leadership; the DR site's voters become learners again.
    ///
    /// Example: PADDOCK_NODE=https://10.1.0.4:7001 paddock dr failback
    /// --site 1=10.0.0.1:7101,2=10.0.0.2:7101,3=10.0.0.3:7101
    Failback {
        #[command(flatten)]
        target: crate::Target,
        /// The primary site's nodes: id=peer-address, comma-separated; the first one leads.
        #[arg(long)]
        site: String,
        /// How long each node may take to catch up before failback gives up, seconds.
        #[arg(long, default_value_t = 600)]
        catch_up_timeout_s: u64,
    },
}

/// Runs a `paddock dr` subcommand.
pub fn run(cmd: DrCmd) -> Result<()> {
    match cmd {
        DrCmd::Promote { from, node, bet_id_gap } => {
            let members = crate::parse_members(&node.bootstrap)?;
            let promoted = paddock_backup::dr::promote(&paddock_backup::dr::PromoteRequest {
                from: &from,
                cluster_id: &node.cluster_id,
                node_id: node.node_id,
                members: &members,
                data_dir: &node.data_dir,
                force: node.force,
                bet_id_gap,
            })?;
            println!("{}", serde_json::to_string_pretty(&promoted)?);
            Ok(())
        }
        DrCmd::Failback { target, site, catch_up_timeout_s } => {
            let site = crate::parse_members(&site)?;
            let client = target.client()?;
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let report = runtime.block_on(failback(&client, &site, Duration::from_secs(catch_up_timeout_s)))?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(())
        }
    }
}

/// What a failback did, with its durations.
#[derive(Debug, serde::Serialize)]
pub struct FailbackReport {
    /// The site's nodes, now voters.
    pub voters: Vec<u64>,
    /// The nodes that went back to being learners (the DR site's).
    pub demoted: Vec<u64>,
    /// The new leader.
    pub leader: u64,
    /// From the start to every site node a voter, ms.
    pub caught_up_ms: u64,
    /// The whole failback, ms.
    pub total_ms: u64,
}

/// Pause between attempts while a node catches up.
const RETRY: Duration = Duration::from_millis(500);

/// Retries `op` while the leader refuses it (`membership_refused`: a node not reachable yet or
/// not caught up yet), every [`RETRY`], for at most `within`; other errors end it at once.
async fn until_accepted<F, Fut>(within: Duration, mut op: F) -> Result<(), ClientError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<paddock_api::wire::AckBody, ClientError>>,
{
    let deadline = Instant::now() + within;
    loop {
        match op().await {
            Ok(_) => return Ok(()),
            Err(ClientError::Api { ref code, ref message, .. })
                if code == "membership_refused" && Instant::now() < deadline =>
            {
                tracing::info!(reason = %message, "refused for now; retrying");
                tokio::time::sleep(RETRY).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Hands service back to `site` (id → peer address; the first leads), through any node of the
/// promoted cluster. Each step is one membership change at a time and safe to run again.
pub async fn failback(client: &Client, site: &BTreeMap<u64, String>, catch_up: Duration) -> Result<FailbackReport> {
    let started = Instant::now();
    let Some(&lead) = site.keys().next() else {
        bail!("--site lists no node: give the primary site's nodes as id=peer-address");
    };
    let before = client.cluster().await.context("cannot read the promoted cluster's membership")?;
    for (id, addr) in site {
        // Refused while the leader cannot reach it yet (a node still starting).
        until_accepted(catch_up, || client.add_member(*id, addr)).await.with_context(|| {
            format!(
                "cannot add node {id} at {addr} as a learner: start it on an empty data directory with \
                 --cluster-id {} and no --bootstrap, then run failback again",
                before.cluster_id
            )
        })?;
    }
    for id in site.keys() {
        // Refused while it is behind: it is catching up (a snapshot, then the log).
        until_accepted(catch_up, || client.promote(*id))
            .await
            .with_context(|| format!("node {id} did not catch up and become a voter"))?;
    }
    let caught_up_ms = started.elapsed().as_millis() as u64;
    client.transfer_leader(lead).await.with_context(|| format!("cannot hand leadership to node {lead}"))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match client.cluster().await {
            Ok(view) if view.leader_id == Some(lead) => break,
            _ if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(100)).await,
            _ => bail!("node {lead} did not take leadership within 30 s; see `paddock status`"),
        }
    }
    let view = client.cluster().await?;
    let mut demoted = Vec::new();
    for member in view.members.iter().filter(|m| m.voter && !site.contains_key(&m.node_id)) {
        // Refused while the new leader has not yet committed the last promotion (a change
        // in progress when leadership moved).
        until_accepted(Duration::from_secs(30), || client.demote(member.node_id))
            .await
            .with_context(|| format!("cannot make node {} a learner again", member.node_id))?;
        demoted.push(member.node_id);
    }
    Ok(FailbackReport {
        voters: site.keys().copied().collect(),
        demoted,
        leader: lead,
        caught_up_ms,
        total_ms: started.elapsed().as_millis() as u64,
    })
}
