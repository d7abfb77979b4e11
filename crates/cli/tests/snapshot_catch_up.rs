//! A node loses its disk, is removed, comes back empty, is added as a learner and promoted:
//! the leader has purged the log it would need, so it catches up from a snapshot.
//!
//! The nodes snapshot every 50 entries (`--snapshot-logs 50`), but Raft keeps the last 1050
//! entries behind a snapshot (the default: the interval plus 1000, so that a damaged newest
//! snapshot can fall back to the previous one) and purges them in batches of 256: the log's
//! head is purged once a snapshot reaches index ≥ 1305. So the test writes well past that while
//! the node is out. Snapshots travel in chunks of 1 KiB (`--snapshot-chunk-bytes 1024`), so the
//! one node 3 installs arrives as many chunks.

mod support;

use paddock_client::Client;
use std::time::{Duration, Instant};
use support::*;

/// Writes `count` deposits spread over accounts 1..=8, 8 at a time.
async fn deposits(client: &Client, tag: &str, count: u64) {
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..8u64 {
        let client = client.clone();
        let tag = tag.to_string();
        tasks.spawn(async move {
            for n in (worker..count).step_by(8) {
                let account = 1 + worker;
                client.deposit(account, 100, &format!("{tag}-{n}")).await.unwrap_or_else(|e| panic!("{tag}-{n}: {e}"));
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("deposit task does not panic");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_wiped_node_rejoins_and_catches_up_by_snapshot() {
    let started = Instant::now();
    let mut cluster = Cluster::start(3, &["--snapshot-logs", "50", "--snapshot-chunk-bytes", "1024"]).await;
    let client = cluster.client();
    seed_market(&client, 1, 1).await;
    for account in 1..=8 {
        client.open_account(account, "GBP", &paddock_client::fresh_key()).await.expect("account opens");
    }
    deposits(&client, "before", 250).await;
    let converged = cluster.wait_converged(&cluster.ids(), Duration::from_secs(15)).await;
    assert!(converged.applied_index > 200, "applied index {}", converged.applied_index);

    // Node 3 (never the bootstrapping node) loses its disk and is removed.
    let gone = 3;
    cluster.kill(gone);
    cluster.wipe(gone);
    let leader = cluster.wait_leader_among(&[1, 2], Duration::from_secs(15)).await;
    client.remove_member(gone).await.expect("node 3 is removed");
    poll_until("node 3 to leave the membership", Duration::from_secs(10), Duration::from_millis(50), async || {
        let view = cluster.cluster_view(leader).await?;
        view.members.iter().all(|m| m.node_id != gone).then_some(())
    })
    .await;

    // The cluster moves on far enough for the leader to purge its log's head.
    deposits(&client, "while-out", 1_250).await;
    let purged_head = poll_until(
        "the leader to snapshot past index 1305",
        Duration::from_secs(15),
        Duration::from_millis(100),
        async || {
            let view = cluster.cluster_view(leader).await?;
            (view.snapshot_index >= 1_305).then_some(view.snapshot_index)
        },
    )
    .await;
    eprintln!("leader {leader} snapshot at {purged_head} after {:?}", started.elapsed());

    // Node 3 comes back with an empty data dir; it is not a member, so it is not ready.
    cluster.restart(gone);
    let peer = cluster.node(gone).peer.to_string();
    poll_until("the empty node 3 to answer", Duration::from_secs(15), Duration::from_millis(100), async || {
        cluster.cluster_view(gone).await
    })
    .await;
    client.add_member(gone, &peer).await.expect("node 3 is added as a learner");
    client.promote(gone).await.expect("node 3 is promoted to voter");
    let view = cluster.cluster_view(leader).await.expect("leader answers");
    assert!(view.members.iter().any(|m| m.node_id == gone && m.voter), "members: {:?}", view.members);

    cluster.wait_ready(&cluster.ids(), READY_WITHIN).await;
    let all = cluster.wait_converged(&cluster.ids(), Duration::from_secs(20)).await;
    assert_eq!(all.accounts, 8);
    let account = cluster.client_for(gone).account(1).await.expect("node 3 serves reads");
    assert!(account.balance_minor > 0);

    // It caught up from a snapshot, not by replaying the log from the start.
    let log = cluster.log_text(gone);
    assert!(log.contains("installed snapshot from leader"), "node 3's log shows no snapshot install:\n{log}");
    let rejoined = cluster.cluster_view(gone).await.expect("node 3 answers");
    assert!(rejoined.snapshot_index > 0, "node 3 has no snapshot: {rejoined:?}");
    // In many chunks: the leader sent more than one chunk's worth of snapshot bytes.
    let metrics = reqwest::get(format!("{}/metrics", cluster.url(leader)))
        .await
        .expect("metrics answer")
        .text()
        .await
        .expect("metrics text");
    let sent: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("paddock_snapshot_sent_bytes_total "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("the leader counts the snapshot bytes it sent:\n{metrics}"));
    assert!(sent > 10.0 * 1024.0, "the snapshot went as {sent} bytes: expected many 1 KiB chunks");
    // What arrived is the leader's snapshot file itself, written to node 3's disk as it came
    // (its counter covers the file the install names), then renamed into place, with no
    // incoming file left behind; node 3 may have built newer snapshots of its own since, so
    // the file is compared with the leader's only while both still keep it.
    let field = |name: &str| {
        log.lines()
            .find(|l| l.contains("installed snapshot from leader"))
            .and_then(|l| l.split_whitespace().find_map(|w| w.strip_prefix(name)))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("the install log line names its {name}:\n{log}"))
    };
    let (installed, bytes) = (field("index="), field("bytes="));
    let counted = metric(&cluster, gone, "paddock_snapshot_received_bytes_total").await;
    assert!(counted >= bytes as f64, "node 3 counted {counted} bytes received, the installed file has {bytes}");
    let name = format!("snap-{installed:020}.pds");
    let kept = |id: u64| std::fs::read(cluster.node(id).data_dir.join("snapshots").join(&name)).ok();
    if let (Some(received), Some(sent_file)) = (kept(gone), kept(leader)) {
        assert_eq!(received.len() as u64, bytes);
        assert!(sent_file == received, "node 3's {name} differs from the leader's");
    }
    assert!(!cluster.node(gone).data_dir.join("snapshots/incoming.tmp").exists(), "the incoming file was renamed");
    eprintln!("done in {:?}", started.elapsed());
}

/// A counter's value in node `id`'s metrics (0 if it has not counted anything yet).
async fn metric(cluster: &Cluster, id: u64, name: &str) -> f64 {
    let text = reqwest::get(format!("{}/metrics", cluster.url(id))).await.expect("metrics answer");
    let text = text.text().await.expect("metrics text");
    text.lines().find_map(|l| l.strip_prefix(&format!("{name} "))).and_then(|v| v.parse().ok()).unwrap_or(0.0)
}
