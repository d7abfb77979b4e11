//! "Recover, not format": a voter whose data directory was wiped must not rejoin as a voter
//! that has seen nothing (it would forget its votes and its log, and could help elect two
//! leaders in one term). It refuses to start, saying how to re-add it; re-added the way the
//! message says, it catches up.

mod support;

use std::time::Duration;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_voter_refuses_to_start_and_rejoins_when_re_added() {
    let mut cluster = Cluster::start(3, &[]).await;
    let client = cluster.client();
    seed_market(&client, 1, 1).await;
    client.open_account(1, "GBP", "open-1").await.expect("account opens");
    client.deposit(1, 5_000, "deposit-1").await.expect("deposit");

    // A follower loses its disk and is started again, still a voter of the cluster. (The
    // leader knows which voters have acknowledged entries; a first start of a voter that
    // never did is not refused.)
    let leader = cluster.leader().await;
    let wiped = cluster.ids().into_iter().find(|id| *id != leader).expect("a follower");
    cluster.kill(wiped);
    cluster.wipe(wiped);
    cluster.restart(wiped);
    poll_until("the wiped voter to refuse to start", Duration::from_secs(20), Duration::from_millis(100), async || {
        (!cluster.is_running(wiped)).then_some(())
    })
    .await;
    let log = cluster.log_text(wiped);
    assert!(log.contains(&format!("counts node {wiped} as a voter")), "the refusal says why:\n{log}");
    assert!(
        log.contains(&format!("paddock members remove --id {wiped}"))
            && log.contains(&format!("paddock members promote --id {wiped}")),
        "the refusal says how to re-add the node:\n{log}"
    );
    assert!(!cluster.node(wiped).data_dir.join("IDENTITY").exists(), "a refused start leaves the directory empty");

    // The way the message says: remove it, start it empty, add it back and promote it.
    client.remove_member(wiped).await.expect("the wiped node is removed");
    let others: Vec<u64> = cluster.ids().into_iter().filter(|id| *id != wiped).collect();
    let leader = cluster.wait_leader_among(&others, Duration::from_secs(15)).await;
    poll_until(
        "the wiped node to leave the membership",
        Duration::from_secs(10),
        Duration::from_millis(50),
        async || {
            let view = cluster.cluster_view(leader).await?;
            view.members.iter().all(|m| m.node_id != wiped).then_some(())
        },
    )
    .await;
    cluster.restart(wiped);
    poll_until("the empty node to answer", Duration::from_secs(15), Duration::from_millis(100), async || {
        cluster.cluster_view(wiped).await
    })
    .await;
    let peer = cluster.node(wiped).advertised.to_string();
    client.add_member(wiped, &peer).await.expect("the node is added as a learner");
    client.promote(wiped).await.expect("the node is promoted to voter");
    let converged = cluster.wait_converged(&cluster.ids(), Duration::from_secs(20)).await;
    assert_eq!(converged.accounts, 1, "the re-added node holds the book");
    let account = cluster.client_for(wiped).account(1).await.expect("the account reads on the re-added node");
    assert_eq!(account.balance_minor, 5_000);
}
