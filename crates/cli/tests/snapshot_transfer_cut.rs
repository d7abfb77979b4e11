//! A snapshot transfer cut part-way starts again and installs the leader's snapshot: once when
//! the receiving node dies mid-transfer (kill -9, then started again on what it had written),
//! once when its link is cut mid-transfer (every connection aborted, new ones refused, for
//! 2 s). The issue asks for a state of several GiB or "a documented smaller stand-in with a
//! small chunk size": this is the stand-in. The state is about 1,500 deposits; snapshots are
//! taken every 50 entries (a snapshot of about 110 KiB) and travel in chunks of 1 KiB
//! (`--snapshot-chunk-bytes 1024`, the smallest a node takes), each held 20 ms by the harness's
//! proxy on the way to the learner, so a transfer is over a hundred chunks and two seconds long
//! and the test cuts it while it runs. A transfer of several GiB is the same
//! code path with more chunks (`paddock_snapshot_received_bytes_total` counts them), and its
//! figures are in BENCHMARKS.md ("The big book").
//!
//! Nodes 1–3 form the cluster through the proxy; node 4 starts empty and is added as a learner
//! after the voters have purged the log's head, so it can only catch up from a snapshot.

use paddock_chaos::cluster::{Cluster, Ports};
use paddock_chaos::proxy::{Partition, Proxy};
use paddock_client::Client;
use std::time::{Duration, Instant};

const VOTERS: [u64; 3] = [1, 2, 3];
const LEARNER: u64 = 4;
const ACCOUNTS: u64 = 8;

/// Deposits `count` of one unit each, spread over the accounts, 8 at a time.
async fn deposits(client: &Client, tag: &str, count: u64) {
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..ACCOUNTS {
        let client = client.clone();
        let tag = tag.to_string();
        tasks.spawn(async move {
            for n in (worker..count).step_by(ACCOUNTS as usize) {
                client.deposit(1 + worker, 1, &format!("{tag}-{n}")).await.unwrap_or_else(|e| panic!("{tag}-{n}: {e}"));
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("a deposit task does not panic");
    }
}

/// A counter of node `id`'s, 0 while it has counted nothing (or does not answer).
async fn counter(cluster: &Cluster, id: u64, series: &str) -> f64 {
    let client = Client::new(vec![cluster.url(id)], Duration::from_secs(1)).with_keys(cluster.keys());
    client.metric(series).await.ok().flatten().unwrap_or(0.0)
}

/// Waits until the learner has received part of a snapshot and not yet installed one; fails
/// if the transfer ends first (the stand-in state would then be too small to cut).
async fn mid_transfer(cluster: &Cluster, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let received = counter(cluster, LEARNER, "paddock_snapshot_received_bytes_total").await;
        let installed = cluster.log_text(LEARNER).matches("installed snapshot from leader").count();
        if received > 0.0 {
            assert_eq!(installed, 0, "{what}: the transfer ended before it could be cut (received {received} bytes)");
            eprintln!("{what}: cut after {received} bytes");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: no snapshot chunk arrived within 60 s\n{}",
            cluster.log_tail(LEARNER, 30)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_snapshot_transfer_cut_part_way_by_a_crash_or_a_link_starts_again_and_installs_the_leaders_snapshot() {
    let dir = tempfile::tempdir().expect("a run directory");
    let args: Vec<String> =
        ["--snapshot-logs", "50", "--snapshot-chunk-bytes", "1024"].iter().map(|s| s.to_string()).collect();
    let binary = std::path::PathBuf::from(env!("CARGO_BIN_EXE_paddock"));
    let mut cluster = Cluster::new(&binary, dir.path(), 4, Ports::find(4, None).expect("free ports"), true, &args)
        .with_bootstrap_members(&VOTERS);
    let partition = Partition::new(cluster.ids());
    let _proxy = Proxy::start(&cluster.proxy_routes(), partition.clone()).await.expect("the proxy starts");
    cluster.start_all().expect("the nodes start");
    let voters = Client::new(VOTERS.iter().map(|id| cluster.url(*id)).collect(), Duration::from_secs(5))
        .with_keys(cluster.keys());
    let started = Instant::now();
    for account in 1..=ACCOUNTS {
        while let Err(e) = voters.open_account(account, "GBP", &format!("open-{account}")).await {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the cluster took no write within 60 s: {e}\nnode 1's log ends:\n{}",
                cluster.log_tail(1, 30)
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    // Far enough for the voters to purge the log's head (see snapshot_catch_up.rs: a snapshot
    // at index ≥ 1305 does).
    deposits(&voters, "deposit", 1_500).await;
    let leader = cluster.leader(Duration::from_secs(15)).await.expect("a leader");
    let deadline = Instant::now() + Duration::from_secs(30);
    while cluster.view(leader).await.is_none_or(|v| v.snapshot_index < 1_305) {
        assert!(Instant::now() < deadline, "the leader did not snapshot past index 1305 within 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let size = counter(&cluster, leader, "paddock_snapshot_size_bytes").await;
    eprintln!("the leader's snapshot: {size} bytes, {:.0} chunks", size / 1024.0);

    // Node 4 is added; the leader can send it only a snapshot, slowed on the way.
    for id in VOTERS {
        partition.set_delay(id, LEARNER, Duration::from_millis(20));
    }
    let add = {
        let client = voters.clone();
        let peer = cluster.spec(LEARNER).advertise.to_string();
        tokio::spawn(async move { client.add_member(LEARNER, &peer).await })
    };

    // The first cut: node 4 dies mid-transfer and starts again on what it had written.
    mid_transfer(&cluster, "the first transfer").await;
    cluster.kill(LEARNER).expect("node 4 is killed");
    let incoming = cluster.spec(LEARNER).data_dir.join("snapshots").join("incoming.tmp");
    assert!(incoming.exists(), "the killed node left no part-written incoming file to start again over");
    cluster.start(LEARNER).expect("node 4 starts again");

    // The second cut: its link fails mid-transfer for 2 s.
    mid_transfer(&cluster, "the second transfer").await;
    partition.isolate(LEARNER);
    tokio::time::sleep(Duration::from_secs(2)).await;
    partition.heal();

    // The add may answer with a timeout (the leader waited for a learner that was cut off);
    // the membership change itself was committed before that wait.
    let _ = add.await.expect("the add task ran");
    let view = cluster.view(leader).await.expect("the leader answers");
    let learners: Vec<String> = view.members.iter().filter(|m| !m.voter).map(|m| m.node_id.to_string()).collect();
    assert!(learners.contains(&LEARNER.to_string()), "node 4 is no learner; the learners are: {}", learners.join(", "));
    cluster.wait_caught_up(LEARNER, Duration::from_secs(60)).await.expect("node 4 catches up");
    let restarted = counter(&cluster, LEARNER, "paddock_snapshot_transfers_restarted_total").await;
    assert!(restarted >= 1.0, "the leader did not start the cut transfer again from its first chunk");
    let log = cluster.log_text(LEARNER);
    assert!(
        log.contains("installed snapshot from leader"),
        "node 4 installed no snapshot:\n{}",
        cluster.log_tail(LEARNER, 40)
    );
    assert!(!incoming.exists(), "the incoming file was not renamed into place");

    // Node 4 holds exactly the cluster's state: same hash at the same index, every deposit.
    deposits(&voters, "after", 16).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (ours, theirs) = (cluster.state_hash(LEARNER).await, cluster.state_hash(leader).await);
        if let (Some(ours), Some(theirs)) = (&ours, &theirs) {
            if ours.applied_index == theirs.applied_index && ours.state_hash == theirs.state_hash {
                break;
            }
        }
        let at = |h: &Option<paddock_api::wire::StateHashBody>| {
            h.as_ref().map_or("no answer".to_string(), |h| format!("{} at index {}", h.state_hash, h.applied_index))
        };
        assert!(
            Instant::now() < deadline,
            "node 4 did not converge with the leader: {} against {}",
            at(&ours),
            at(&theirs)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let learner = Client::new(vec![cluster.url(LEARNER)], Duration::from_secs(2)).with_keys(cluster.keys());
    for worker in 0..ACCOUNTS {
        // The deposits `deposits` made to this account, of one unit each.
        let made = (worker..1_500).step_by(ACCOUNTS as usize).count() + (worker..16).step_by(ACCOUNTS as usize).count();
        let balance = learner.account(1 + worker).await.expect("node 4 reads").balance_minor;
        assert_eq!(balance, made as i64, "account {} on node 4", 1 + worker);
    }
    cluster.kill_all();
}
