//! Cluster time: a node whose wall clock is an hour ahead of the others must not move the
//! book's clock. While it leads it stamps no command (writes answer 503
//! `clock_unsynchronized`) and hands leadership to a node whose clock agrees with the
//! majority; leadership is never handed *to* it; it reports the disagreement in
//! `/v1/cluster`, in `paddock_clock_synchronized` and in its log.

mod support;

use std::time::{SystemTime, UNIX_EPOCH};
use support::*;

const HOUR_MS: u64 = 3_600_000;

fn wall_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_millis() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_an_hour_ahead_stamps_nothing_and_hands_leadership_to_an_agreeing_node() {
    // Node 1 bootstraps the cluster, so it is the first to stand for election.
    let skewed = 1;
    let offset = HOUR_MS.to_string();
    let mut cluster = Cluster::launch_with_node_args(3, &[], &[(skewed, &["--clock-offset-ms", &offset])]);
    cluster.wait_ready(&cluster.ids(), READY_WITHIN).await;

    // Writes go through whichever node leads; the client retries clock_unsynchronized.
    let client = cluster.client();
    seed_market(&client, 1, 1).await;
    client.open_account(1, "GBP", "open-1").await.expect("the account opens");
    for n in 0..20 {
        client.deposit(1, 100, &format!("deposit-{n}")).await.expect("a deposit is applied");
    }

    let leader = cluster.leader().await;
    assert_ne!(leader, skewed, "the node an hour ahead does not keep the leadership");
    let view = cluster.cluster_view(leader).await.expect("the leader answers");
    assert!(view.clock_synchronized, "the leader's clock agrees with the majority");
    assert!(
        view.book_clock_ms < wall_ms() + 60_000,
        "the book's clock {} must not have been moved by the node an hour ahead (wall clock {})",
        view.book_clock_ms,
        wall_ms()
    );

    // The skewed node knows it is out, and says so.
    let mine = cluster.cluster_view(skewed).await.expect("the skewed node answers");
    assert!(!mine.clock_synchronized, "node {skewed} sees that its clock disagrees");
    assert!(
        mine.clock_offsets.iter().all(|o| o.offset_ms < -(HOUR_MS as i64) + 60_000),
        "from node {skewed}, both others are an hour behind: {:?}",
        mine.clock_offsets
    );
    let metrics = reqwest::get(format!("{}/metrics", cluster.url(skewed)))
        .await
        .expect("metrics answer")
        .text()
        .await
        .expect("metrics text");
    assert!(metrics.lines().any(|l| l == "paddock_clock_synchronized 0"), "the gauge says so:\n{metrics}");

    // Leadership is not handed to it.
    let refused = cluster.client().transfer_leader(skewed).await.expect_err("the hand-over is refused");
    assert_eq!(refused.code(), Some("membership_refused"), "{refused}");
    assert!(refused.to_string().contains("clock"), "the refusal says why: {refused}");

    // Had it led, it said why it stamped nothing.
    let log = cluster.log_text(skewed);
    if log.contains("became leader") || log.contains("handing leadership over") {
        assert!(log.contains("disagrees with a majority of the voters"), "{log}");
    }
    let balance = cluster.client().account(1).await.expect("the account reads").balance_minor;
    assert_eq!(balance, 2_000, "every deposit applied exactly once");
}
