//! Storage repair on real processes (`crates/consensus/src/repair.rs`): a follower is stopped,
//! bytes of one acknowledged deposit are flipped in its Raft log file on disk (every copy
//! redb keeps of the record), and it is started again while writes go on. It must find the
//! damage, discard that entry and the rest of its log, fetch them again from the leader —
//! not crash-loop, not serve the damaged entry — and then vote again: with the old leader
//! killed, it and the third node elect a new one. No acknowledged deposit is lost and the
//! replicas converge to one state hash. The time from damage found to repaired is printed
//! (BENCHMARKS.md), never asserted.

mod support;

use paddock_client::Client;
use std::path::Path;
use std::time::{Duration, Instant};
use support::*;

const ACCOUNTS: u64 = 4;
const AMOUNT: i64 = 100;

/// Flips one bit in every copy of `needle` in the file at `path`; returns how many.
fn flip_every_copy(path: &Path, needle: &[u8]) -> usize {
    let mut bytes = std::fs::read(path).expect("the log file reads");
    let mut hits = 0;
    let mut at = 0;
    while let Some(pos) = bytes[at..].windows(needle.len()).position(|w| w == needle) {
        let byte = at + pos + needle.len() / 2;
        bytes[byte] ^= 0x40;
        hits += 1;
        at = at + pos + needle.len();
    }
    std::fs::write(path, &bytes).expect("the log file is rewritten");
    hits
}

/// Deposits `count` times, round robin over the accounts, each acknowledged; returns how
/// much went into each account.
async fn deposits(client: &Client, tag: &str, count: u64) -> i64 {
    for n in 0..count {
        let account = 1 + n % ACCOUNTS;
        client.deposit(account, AMOUNT, &format!("{tag}-{n}")).await.unwrap_or_else(|e| panic!("{tag}-{n}: {e}"));
    }
    count as i64 * AMOUNT
}

async fn total_balance(client: &Client) -> i64 {
    let mut total = 0;
    for account in 1..=ACCOUNTS {
        total += client.account(account).await.expect("the account reads").balance_minor;
    }
    total
}

/// A 3-node cluster whose accounts took `before` deposits, then the one keyed `marked` (the
/// record a test damages), then `after` more, all acknowledged and on every node; with the
/// total deposited.
async fn cluster_with_deposits(before: u64, marked: &str, after: u64) -> (Cluster, paddock_client::Client, i64) {
    let cluster = Cluster::start(3, &[]).await;
    let client = cluster.client();
    for account in 1..=ACCOUNTS {
        client.open_account(account, "GBP", &format!("open-{account}")).await.expect("the account opens");
    }
    let mut expected = deposits(&client, "before", before).await;
    client.deposit(1, AMOUNT, marked).await.expect("the deposit to damage is acknowledged");
    expected += AMOUNT;
    expected += deposits(&client, "after", after).await;
    cluster.wait_converged(&cluster.ids(), READY_WITHIN).await;
    (cluster, client, expected)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_with_a_damaged_log_fetches_it_again_from_its_peers_and_votes_again() {
    let (mut cluster, client, mut expected) = cluster_with_deposits(200, "rot-me-deposit-0042", 40).await;
    let leader = cluster.leader().await;
    let victim = cluster.ids().into_iter().find(|id| *id != leader).expect("a follower");

    // Stopped cleanly, then rot at rest: redb's own checks pass, only the record's frame
    // checksum can tell.
    assert!(cluster.terminate(victim).await, "node {victim} did not exit on SIGTERM");
    let log_file = cluster.node(victim).data_dir.join("raft-log.redb");
    let copies = flip_every_copy(&log_file, b"rot-me-deposit-0042");
    assert!(copies > 0, "the deposit's record is not in node {victim}'s log file");
    expected += deposits(&client, "while-down", 50).await;

    let restarted = Instant::now();
    cluster.restart(victim);
    let took_ms: u64 = poll_until(
        &format!("node {victim} to repair its log"),
        Duration::from_secs(30),
        Duration::from_millis(50),
        async || {
            let log = cluster.log_text(victim);
            let line = log.lines().find(|l| l.contains("storage repair finished"))?;
            line.split("took_ms=").nth(1)?.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
        },
    )
    .await;
    let log = cluster.log_text(victim);
    assert!(log.contains("storage repair: log entry") && log.contains("is damaged"), "the damage is not named:\n{log}");
    assert!(log.contains("not voting until the log is fetched again"), "no abstention announced:\n{log}");
    assert!(!log.contains("panicked"), "the node panicked:\n{log}");
    assert!(cluster.is_running(victim), "node {victim} exited instead of repairing:\n{log}");
    let leader_log = cluster.log_text(leader);
    assert!(
        leader_log.contains(&format!("node {victim} is repairing damaged storage")),
        "the leader did not restart replication to the repairing node:\n{leader_log}"
    );
    let view = cluster.cluster_view(victim).await.expect("the repaired node answers");
    assert_eq!(view.repairing_up_to, None, "the repair is still reported");
    eprintln!(
        "node {victim}: {copies} copies of one entry damaged; repaired {took_ms} ms after the damage was found \
         ({} ms after the restart)",
        restarted.elapsed().as_millis()
    );

    // Everything acknowledged is there, on every replica.
    cluster.wait_ready(&cluster.ids(), READY_WITHIN).await;
    cluster.wait_converged(&cluster.ids(), READY_WITHIN).await;
    assert_eq!(total_balance(&client).await, expected, "an acknowledged deposit is missing");

    // It votes again: without the old leader, the repaired node and the third elect one.
    cluster.kill(leader);
    let others: Vec<u64> = cluster.ids().into_iter().filter(|id| *id != leader).collect();
    let new_leader = cluster.wait_leader_among(&others, Duration::from_secs(15)).await;
    expected += deposits(&client, "new-leader", 20).await;
    cluster.wait_converged(&others, READY_WITHIN).await;
    assert_eq!(total_balance(&client).await, expected);
    eprintln!("nodes {others:?} elected node {new_leader} after node {leader} was killed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_whole_cluster_restart_with_the_old_leader_s_log_damaged_loses_nothing() {
    // After a whole-cluster stop the old leader, its vote committed, could take up its old term
    // again at once (openraft's leader restore) and hand new entries the log ids of committed
    // ones it had discarded: a repairing node never leads, so it must not.
    let (mut cluster, client, mut expected) = cluster_with_deposits(100, "rot-me-leader-deposit-7", 30).await;
    let leader = cluster.leader().await;
    for id in cluster.ids() {
        assert!(cluster.terminate(id).await, "node {id} did not exit on SIGTERM");
    }
    let log_file = cluster.node(leader).data_dir.join("raft-log.redb");
    assert!(flip_every_copy(&log_file, b"rot-me-leader-deposit-7") > 0, "the record is not in the leader's log file");
    for id in cluster.ids() {
        cluster.restart(id);
    }
    cluster.wait_ready(&cluster.ids(), READY_WITHIN).await;
    poll_until("the old leader to repair", Duration::from_secs(30), Duration::from_millis(50), async || {
        cluster.log_text(leader).contains("storage repair finished").then_some(())
    })
    .await;
    expected += deposits(&client, "after-restart", 30).await;
    cluster.wait_converged(&cluster.ids(), READY_WITHIN).await;
    assert_eq!(total_balance(&client).await, expected, "an acknowledged deposit is missing or doubled");
}
