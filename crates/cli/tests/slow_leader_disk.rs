//! Gray failure on real processes (`--slow-disk-ratio`, `crates/node/src/gray.rs`): the
//! leader's disk turns slow — every fsync of its Raft log 60 ms longer, through the nodes'
//! hidden test hook `--fsync-delay-file` — while nothing is down. The leader sees its own
//! fsync far above its followers' for the configured time and hands leadership to one of
//! them; writes go on throughout, and their latency before, during and after is printed
//! (BENCHMARKS.md), never asserted. (With both followers healthy they form the majority an
//! entry needs, so the slow leader costs little until one of them fails: the hand-off restores
//! that margin.)

mod support;

use std::time::{Duration, Instant};
use support::*;

/// Median of the latencies of the deposits sent for `for_`, one after another.
async fn median_latency(client: &paddock_client::Client, tag: &str, for_: Duration) -> Duration {
    let mut samples = Vec::new();
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < for_ {
        n += 1;
        let sent = Instant::now();
        client.deposit(1, 100, &format!("{tag}-{n}")).await.expect("the deposit is acknowledged");
        samples.push(sent.elapsed());
    }
    samples.sort();
    samples[samples.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_on_a_slow_disk_hands_leadership_to_a_follower() {
    let hooks = tempfile::tempdir().unwrap();
    let delay_file = |id: u64| hooks.path().join(format!("node-{id}.fsync-delay-ms"));
    let args: Vec<Vec<String>> = (1..=3u64)
        .map(|id| {
            std::fs::write(delay_file(id), "0").unwrap();
            vec!["--fsync-delay-file".to_string(), delay_file(id).display().to_string()]
        })
        .collect();
    let own: Vec<(u64, Vec<&str>)> =
        args.iter().enumerate().map(|(i, a)| (i as u64 + 1, a.iter().map(String::as_str).collect())).collect();
    let own: Vec<(u64, &[&str])> = own.iter().map(|(id, a)| (*id, a.as_slice())).collect();
    let mut cluster =
        Cluster::start_with_own_args(3, &["--slow-disk-ratio", "5", "--slow-disk-for-s", "3"], &own).await;
    let client = cluster.client();
    client.open_account(1, "GBP", "open-1").await.expect("the account opens");
    let slow = cluster.leader().await;

    let before = median_latency(&client, "before", Duration::from_secs(3)).await;
    std::fs::write(delay_file(slow), "60").unwrap();
    let slowed_at = Instant::now();
    let during = median_latency(&client, "during", Duration::from_secs(2)).await;
    let (new_leader, handed_after) = poll_until(
        "leadership to leave the node with the slow disk",
        Duration::from_secs(30),
        Duration::from_millis(100),
        async || {
            let view = cluster.cluster_view(slow).await?;
            view.leader_id.filter(|l| *l != slow).map(|l| (l, slowed_at.elapsed()))
        },
    )
    .await;
    let after = median_latency(&client, "after", Duration::from_secs(3)).await;
    eprintln!(
        "leader {slow}'s disk slowed by 60 ms per fsync: median deposit {:.1} ms before, {:.1} ms while it led, \
         {:.1} ms after it handed leadership to node {new_leader} ({} ms after the slowdown; limit 3 s)",
        before.as_secs_f64() * 1e3,
        during.as_secs_f64() * 1e3,
        after.as_secs_f64() * 1e3,
        handed_after.as_millis()
    );
    assert!(handed_after >= Duration::from_secs(3), "handed off before the limit: {handed_after:?}");

    // It says why, and it stays a follower: the others' disks keep up.
    let log = cluster.log_text(slow);
    assert!(log.contains("this leader's disk is slow") && log.contains(&format!("node {new_leader}")), "{log}");
    tokio::time::sleep(Duration::from_secs(5)).await;
    let view = cluster.cluster_view(slow).await.expect("the slow node answers");
    assert_ne!(view.leader_id, Some(slow), "leadership went back to the slow disk");
    let account = client.account(1).await.expect("the account reads");
    assert!(account.balance_minor > 0);
    cluster.kill(slow);
}
