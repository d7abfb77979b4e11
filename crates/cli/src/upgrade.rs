//! `paddock upgrade`: a rolling upgrade, one node at a time, with no request failing.
//!
//! The procedure an operator would follow by hand, driven through the API: followers first, the
//! leader last after handing its leadership to a node already upgraded. Before each node goes,
//! the voters that stay must hold a majority that is in step with the leader, so that the
//! cluster keeps committing while it is away. The node is replaced by the operator's own
//! command (`--replace`, with `{id}` for the node's id: `docker-compose up -d --no-deps
//! --force-recreate node{id}`, `ssh host{id} systemctl restart paddock`, ...); that command stops
//! the old process, which drains (readiness fails, `drain_ms`, in-flight requests finish), and
//! starts the new build on the same data directory. The next node goes only once the leader
//! hears from a new process there (it announces another start time), caught up with what was
//! committed when the old one left, and, with `--expect-version`, announcing that version.
//!
//! Mixed versions during the roll are safe by construction (`paddock_consensus::formats`): a
//! leader proposes no entry in a format some member does not read.

use anyhow::{bail, Context, Result};
use paddock_api::wire::ClusterBody;
use paddock_client::Client;
use std::time::{Duration, Instant};

/// What `paddock upgrade` was asked to do.
pub struct Args {
    /// Replaces one node: a shell command with `{id}` for the node id.
    pub replace: String,
    /// The version the new build announces; nodes already announcing it are skipped.
    pub expect_version: Option<String>,
    /// How long a replaced node may take to come back and catch up.
    pub catch_up_timeout: Duration,
}

/// A member is in step when the leader heard from it this recently and it is this close.
const ACK_AGE_OK_MS: u64 = 1_000;
const LAG_OK: u64 = 1_000;

/// The order nodes are replaced in: every member but the leader (learners first, they hold no
/// vote; then voters by id), and the leader last.
pub fn order(view: &ClusterBody) -> Result<Vec<u64>> {
    let Some(leader) = view.leader_id else { bail!("no leader is known: upgrade a cluster that has one") };
    let mut learners: Vec<u64> = view.members.iter().filter(|m| !m.voter).map(|m| m.node_id).collect();
    let mut voters: Vec<u64> =
        view.members.iter().filter(|m| m.voter && m.node_id != leader).map(|m| m.node_id).collect();
    learners.sort_unstable();
    voters.sort_unstable();
    if voters.is_empty() {
        bail!("node {leader} is the only voter: a one-voter cluster cannot be upgraded without downtime; add voters first (paddock members add, promote)");
    }
    Ok(learners.into_iter().chain(voters).chain([leader]).collect())
}

/// Whether node `going` may leave now: the voters that stay, counted as the leader sees them
/// (itself, and those it heard from lately that are close behind), are a majority of all voters.
pub fn may_leave(view: &ClusterBody, going: u64) -> Result<(), String> {
    let voters = view.members.iter().filter(|m| m.voter).count();
    let (staying, lagging): (Vec<_>, Vec<_>) = view
        .members
        .iter()
        .filter(|m| m.voter && m.node_id != going)
        .partition(|m| Some(m.node_id) == view.leader_id || in_step(m));
    if staying.len() * 2 > voters {
        return Ok(());
    }
    let lagging: Vec<String> = lagging.iter().map(|m| m.node_id.to_string()).collect();
    Err(format!(
        "without node {going} only {} of {voters} voters would be in step with the leader (behind or silent: {})",
        staying.len(),
        if lagging.is_empty() { "none".to_string() } else { lagging.join(", ") }
    ))
}

/// The leader's view: asked until the leader answers (through a load balancer, the nodes take
/// turns).
async fn leader_view(client: &Client) -> Result<ClusterBody> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match client.cluster().await {
            Ok(view) if view.role == "leader" => return Ok(view),
            Ok(_) | Err(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(100)).await,
            Ok(view) => bail!(
                "no answer from the leader within 30 s (the last answer was node {}'s, a {}): give --node the leader's \
                 URL or a balancer in front of every node",
                view.node_id,
                view.role
            ),
            Err(e) => return Err(e).context("cannot read the cluster's state"),
        }
    }
}

/// Waits until `check` passes on the leader's view, or says why not after `within`: that view
/// and what the check found.
async fn wait_for<T>(
    client: &Client,
    within: Duration,
    what: &str,
    check: impl Fn(&ClusterBody) -> Result<T, String>,
) -> Result<(ClusterBody, T)> {
    let deadline = Instant::now() + within;
    loop {
        let view = leader_view(client).await?;
        match check(&view) {
            Ok(found) => return Ok((view, found)),
            Err(why) if Instant::now() >= deadline => {
                bail!(
                    "{what}: not within {} s: {why}. The roll stops here; look at that node's log and `paddock \
                     status`, then run paddock upgrade again with --expect-version (nodes already on the new build \
                     are skipped)",
                    within.as_secs()
                )
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

fn member(view: &ClusterBody, id: u64) -> Option<&paddock_api::wire::MemberBody> {
    view.members.iter().find(|m| m.node_id == id)
}

fn in_step(m: &paddock_api::wire::MemberBody) -> bool {
    m.ack_age_ms.is_some_and(|age| age <= ACK_AGE_OK_MS) && m.lag.is_some_and(|lag| lag <= LAG_OK)
}

/// The voter the leader hands over to before its own turn: an upgraded one in step with it
/// (the least behind), else any voter in step.
pub fn successor(view: &ClusterBody, upgraded: &[u64]) -> Result<u64, String> {
    let candidates = || view.members.iter().filter(|m| m.voter && Some(m.node_id) != view.leader_id && in_step(m));
    candidates()
        .filter(|m| upgraded.contains(&m.node_id))
        .min_by_key(|m| m.lag)
        .or_else(|| candidates().min_by_key(|m| m.lag))
        .map(|m| m.node_id)
        .ok_or_else(|| "no other voter is in step with the leader to hand leadership to".to_string())
}

/// Whether the process now answering for `id` is a new one, caught up with `left_at` and (if
/// asked) announcing `expect`.
pub fn is_back(
    view: &ClusterBody,
    id: u64,
    old_start: Option<u64>,
    left_at: u64,
    expect: Option<&str>,
) -> Result<(), String> {
    let Some(m) = member(view, id) else { return Err(format!("node {id} is not a member")) };
    match m.started_at_ms {
        None => return Err("no process there has answered the leader yet".into()),
        Some(started) if Some(started) == old_start => return Err("the old process still answers".into()),
        Some(_) => {}
    }
    let matched = m.matched_index.unwrap_or(0);
    if matched < left_at {
        return Err(format!("it has matched index {matched} of the {left_at} committed when it left"));
    }
    match (expect, m.version.as_deref()) {
        (Some(want), Some(has)) if want != has => Err(format!("it announces {has}, not {want}")),
        (Some(want), None) => Err(format!("it has not announced a version yet (expecting {want})")),
        _ => Ok(()),
    }
}

/// Runs the operator's replace command for node `id`.
fn replace(command: &str, id: u64) -> Result<()> {
    let command = command.replace("{id}", &id.to_string());
    let status = std::process::Command::new("sh")
        .args(["-c", &command])
        .status()
        .with_context(|| format!("cannot run the replace command `{command}`"))?;
    if !status.success() {
        bail!(
            "the replace command `{command}` failed ({status}); node {id} may be down: bring it back on its data \
             directory, then run paddock upgrade again (nodes already on the new build are skipped with \
             --expect-version)"
        );
    }
    Ok(())
}

/// Rolls the cluster `client` reaches to the new build, one node at a time.
pub async fn run(client: &Client, args: &Args) -> Result<()> {
    let started = Instant::now();
    let view = leader_view(client).await?;
    let order = order(&view)?;
    println!(
        "rolling upgrade of cluster {}: nodes in the order {} (the leader, node {}, last)",
        view.cluster_id,
        order.iter().map(u64::to_string).collect::<Vec<_>>().join(", "),
        view.leader_id.unwrap_or_default()
    );
    let mut upgraded: Vec<u64> = Vec::new();
    for id in order {
        let view = leader_view(client).await?;
        let Some(m) = member(&view, id) else {
            println!("node {id}: no longer a member, skipped");
            continue;
        };
        if let (Some(want), Some(has)) = (&args.expect_version, &m.version) {
            if want == has {
                println!("node {id}: already runs {has}, skipped");
                upgraded.push(id);
                continue;
            }
        }
        let from_version = m.version.clone().unwrap_or_else(|| "an unannounced version".into());
        let step = Instant::now();
        if view.leader_id == Some(id) {
            // The leader goes last, after handing over to an upgraded voter in step with it.
            let (_, to) = wait_for(client, args.catch_up_timeout, &format!("a successor to node {id}"), |v| {
                successor(v, &upgraded)
            })
            .await?;
            client.transfer_leader(to).await.with_context(|| format!("handing leadership from node {id} to {to}"))?;
            wait_for(client, Duration::from_secs(30), &format!("node {to} leads"), |v| {
                if v.node_id == to {
                    Ok(())
                } else {
                    Err(format!("node {} still leads", v.node_id))
                }
            })
            .await?;
            println!("node {id}: leadership handed to node {to}");
        }
        let (before, ()) =
            wait_for(client, args.catch_up_timeout, &format!("node {id} may leave"), |v| may_leave(v, id)).await?;
        let (left_at, old_start) = (before.commit_index, member(&before, id).and_then(|m| m.started_at_ms));
        replace(&args.replace, id)?;
        let expect = args.expect_version.as_deref();
        let (back, ()) = wait_for(client, args.catch_up_timeout, &format!("node {id} is back and caught up"), |v| {
            is_back(v, id, old_start, left_at, expect)
        })
        .await?;
        let to_version = member(&back, id).and_then(|m| m.version.clone()).unwrap_or_else(|| "?".into());
        println!(
            "node {id}: replaced ({from_version} -> {to_version}), caught up past index {left_at} in {:.1} s",
            step.elapsed().as_secs_f64()
        );
        upgraded.push(id);
    }
    let view = leader_view(client).await?;
    let versions: Vec<String> =
        view.members.iter().map(|m| format!("node {} {}", m.node_id, m.version.as_deref().unwrap_or("?"))).collect();
    println!(
        "done in {:.1} s: {}; node {} leads; every member reads log entry format {}",
        started.elapsed().as_secs_f64(),
        versions.join(", "),
        view.node_id,
        view.entry_format.map_or("?".to_string(), |f| f.to_string())
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use paddock_api::wire::MemberBody;

    fn view(leader: u64, members: &[(u64, bool, Option<u64>)]) -> ClusterBody {
        ClusterBody {
            node_id: leader,
            cluster_id: "paddock".into(),
            role: "leader".into(),
            term: 2,
            leader_id: Some(leader),
            last_log_index: 100,
            commit_index: 100,
            applied_index: 100,
            snapshot_index: 0,
            members: members
                .iter()
                .map(|(id, voter, lag)| MemberBody {
                    node_id: *id,
                    peer_addr: format!("node{id}:7101"),
                    voter: *voter,
                    matched_index: lag.map(|l| 100u64.saturating_sub(l)),
                    lag: *lag,
                    ack_age_ms: lag.map(|_| 40),
                    entry_format: Some(1),
                    version: Some("0.1.0".into()),
                    started_at_ms: Some(5_000),
                })
                .collect(),
            clock_synchronized: true,
            clock_offsets: vec![],
            book_clock_ms: 0,
            repairing_up_to: None,
            entry_format: Some(1),
        }
    }

    #[test]
    fn learners_go_first_then_the_followers_by_id_and_the_leader_last() {
        let v = view(2, &[(1, true, Some(0)), (2, true, Some(0)), (3, true, Some(0)), (4, false, Some(0))]);
        assert_eq!(order(&v).unwrap(), vec![4, 1, 3, 2]);
    }

    #[test]
    fn a_cluster_of_one_voter_is_refused_with_what_to_do() {
        let err = order(&view(1, &[(1, true, Some(0))])).unwrap_err().to_string();
        assert!(err.contains("cannot be upgraded without downtime") && err.contains("members add"), "{err}");
    }

    #[test]
    fn a_node_leaves_only_if_the_voters_that_stay_are_a_majority_in_step() {
        let healthy = view(1, &[(1, true, Some(0)), (2, true, Some(0)), (3, true, Some(3))]);
        assert_eq!(may_leave(&healthy, 2), Ok(()));
        // Node 3 has not caught up after its own replacement: node 2 must wait for it.
        let behind = view(1, &[(1, true, Some(0)), (2, true, Some(0)), (3, true, Some(5_000))]);
        let why = may_leave(&behind, 2).unwrap_err();
        assert!(why.contains("only 1 of 3 voters") && why.contains("behind or silent: 3"), "{why}");
        // A member the leader has not heard from lately is not in step.
        let silent = view(1, &[(1, true, Some(0)), (2, true, None), (3, true, Some(0))]);
        assert!(may_leave(&silent, 3).is_err());
        assert_eq!(may_leave(&silent, 2), Ok(()), "the silent one itself may go");
    }

    #[test]
    fn the_leader_hands_over_to_an_upgraded_voter_in_step_else_to_any_voter_in_step() {
        let v = view(1, &[(1, true, Some(0)), (2, true, Some(2)), (3, true, Some(0)), (4, false, Some(0))]);
        assert_eq!(successor(&v, &[2, 4]), Ok(2), "upgraded, though not the least behind");
        assert_eq!(successor(&v, &[4]), Ok(3), "a learner does not lead: any voter in step");
        let alone = view(1, &[(1, true, Some(0)), (2, true, None), (3, true, Some(50_000))]);
        assert!(successor(&alone, &[2, 3]).is_err(), "node 2 is silent, node 3 far behind");
    }

    #[test]
    fn a_replaced_node_is_back_only_when_a_new_process_answers_caught_up_with_the_expected_version() {
        let mut v = view(1, &[(1, true, Some(0)), (2, true, Some(0)), (3, true, Some(0))]);
        // Its matched index is still the old process's, which does not move back by itself.
        let why = is_back(&v, 2, Some(5_000), 100, None).unwrap_err();
        assert!(why.contains("the old process still answers"), "{why}");
        v.members[1].started_at_ms = None;
        assert!(is_back(&v, 2, Some(5_000), 100, None).unwrap_err().contains("no process there has answered"));
        v.members[1].started_at_ms = Some(9_000);
        assert_eq!(is_back(&v, 2, Some(5_000), 100, None), Ok(()));
        assert!(is_back(&v, 2, Some(5_000), 101, None).unwrap_err().contains("matched index 100 of the 101"));
        assert!(is_back(&v, 2, Some(5_000), 100, Some("0.2.0")).unwrap_err().contains("announces 0.1.0, not 0.2.0"));
        v.members[1].version = Some("0.2.0".into());
        assert_eq!(is_back(&v, 2, Some(5_000), 100, Some("0.2.0")), Ok(()));
    }
}
