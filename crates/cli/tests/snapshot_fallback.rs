//! A damaged snapshot on a real node, SIGKILLed and one byte of a snapshot file flipped:
//!
//! - its only snapshot damaged, the node replays its whole log (nothing is purged yet);
//! - its newest snapshot damaged, it falls back to the previous one plus the log after it;
//! - every snapshot damaged and the log purged, it discards the log (storage repair, see
//!   `crates/consensus/src/repair.rs`) and recovers from its peers by itself.
//!
//! The first two run with `--snapshot-logs 2000` and the default log-keep rule
//! (`snapshot_log_keep` unset: the interval plus 1000), so after the second snapshot (index
//! ≈ 4000) the log from the first one (≈ 2000) on is still there. Under the old rule (1000
//! entries behind the newest snapshot) the log was purged to ≈ 3000 and the node could not
//! start ("Cannot re-apply logs: need logs from index 2004, but purged up to …3095"): that is
//! what the fallback phase catches.

mod support;

use paddock_client::Client;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::*;

/// Writes `count` deposits spread over accounts 1..=16, 16 at a time.
async fn deposits(client: &Client, tag: &str, count: u64) {
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..16u64 {
        let client = client.clone();
        let tag = tag.to_string();
        tasks.spawn(async move {
            for n in (worker..count).step_by(16) {
                let account = 1 + worker;
                client.deposit(account, 100, &format!("{tag}-{n}")).await.unwrap_or_else(|e| panic!("{tag}-{n}: {e}"));
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("deposit task does not panic");
    }
}

/// A node's snapshot files with their indexes, oldest first.
fn snapshot_files(data_dir: &Path) -> Vec<(u64, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(data_dir.join("snapshots")) else { return Vec::new() };
    let mut out: Vec<(u64, PathBuf)> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter_map(|path| {
            let name = path.file_name()?.to_str()?;
            let index = name.strip_prefix("snap-")?.strip_suffix(".pds")?.parse().ok()?;
            Some((index, path))
        })
        .collect();
    out.sort();
    out
}

/// Flips one bit of the byte in the middle of `path`.
fn flip_middle_byte(path: &Path) {
    let mut bytes = std::fs::read(path).expect("snapshot file reads");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(path, &bytes).expect("snapshot file is rewritten");
}

/// What a node logged since its `start`-th start.
fn log_since_start(cluster: &Cluster, id: u64, start: u32) -> String {
    let log = cluster.log_text(id);
    let marker = format!("==== harness: start #{start} of node {id} ====");
    log.split(&marker).nth(1).unwrap_or_else(|| panic!("node {id} was not started {start} times")).to_string()
}

/// Waits until the restarted node is ready (true) or has exited (false).
async fn ready_or_exited(cluster: &mut Cluster, id: u64) -> bool {
    let probe = Client::new(vec![cluster.url(id)], Duration::from_secs(2));
    poll_until(&format!("node {id} to be ready or to exit"), READY_WITHIN, Duration::from_millis(100), async || {
        if !cluster.is_running(id) {
            return Some(false);
        }
        probe.is_ready(0).await.then_some(true)
    })
    .await
}

async fn start_cluster(snapshot_logs: u64) -> (Cluster, Client) {
    let interval = snapshot_logs.to_string();
    let cluster = Cluster::start(3, &["--snapshot-logs", &interval]).await;
    let client = cluster.client();
    seed_market(&client, 1, 1).await;
    for account in 1..=16 {
        client.open_account(account, "GBP", &paddock_client::fresh_key()).await.expect("account opens");
    }
    (cluster, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_damaged_snapshot_is_skipped_for_the_previous_one_and_the_log() {
    const INTERVAL: u64 = 2_000;
    let started = Instant::now();
    let (mut cluster, client) = start_cluster(INTERVAL).await;

    // One snapshot on every node (≈ 2000); nothing purged yet.
    deposits(&client, "first", INTERVAL + 500).await;
    cluster.wait_converged(&cluster.ids(), Duration::from_secs(30)).await;
    let leader = cluster.leader().await;
    let victim = cluster.ids().into_iter().find(|id| *id != leader).expect("a follower");
    let data_dir = cluster.node(victim).data_dir.clone();
    let only =
        poll_until("the follower's first snapshot", Duration::from_secs(30), Duration::from_millis(100), async || {
            let files = snapshot_files(&data_dir);
            (files.len() == 1).then(|| files[0].clone())
        })
        .await;
    eprintln!("node {victim} holds one snapshot, at {}, after {:?}", only.0, started.elapsed());

    // Its only snapshot damaged: it starts from nothing and replays its whole log.
    cluster.kill(victim);
    flip_middle_byte(&only.1);
    cluster.restart(victim);
    let up = ready_or_exited(&mut cluster, victim).await;
    assert!(up, "node {victim} did not start on its log alone:\n{}", log_since_start(&cluster, victim, 2));
    cluster.wait_converged(&cluster.ids(), Duration::from_secs(30)).await;
    let log = log_since_start(&cluster, victim, 2);
    assert!(log.contains("damaged snapshot skipped"), "the skip is not logged:\n{log}");
    assert!(!log.contains("loaded snapshot"), "no snapshot was intact, yet one was loaded:\n{log}");
    assert!(!log.contains("installed snapshot from leader"), "the node was sent a snapshot:\n{log}");

    // Two intact snapshots on the follower (it took one at once on replaying, and one more).
    deposits(&client, "second", INTERVAL + 200).await;
    cluster.wait_converged(&cluster.ids(), Duration::from_secs(30)).await;
    let files = poll_until(
        "the follower to hold two intact snapshots",
        Duration::from_secs(30),
        Duration::from_millis(100),
        async || {
            let files = snapshot_files(&data_dir);
            (files.len() == 2 && files[0].0 != only.0 && files[1].0 >= files[0].0 + INTERVAL).then_some(files)
        },
    )
    .await;
    let (previous, newest) = (files[0].0, files[1].0);
    eprintln!("node {victim} holds snapshots {previous} and {newest} after {:?}", started.elapsed());

    // Its newest snapshot damaged: the previous one plus the log after it.
    cluster.kill(victim);
    flip_middle_byte(&files[1].1);
    deposits(&client, "while-down", 200).await;
    cluster.restart(victim);
    let up = ready_or_exited(&mut cluster, victim).await;
    assert!(up, "node {victim} did not start on its previous snapshot:\n{}", log_since_start(&cluster, victim, 3));
    cluster.wait_ready(&cluster.ids(), READY_WITHIN).await;
    let converged = cluster.wait_converged(&cluster.ids(), Duration::from_secs(30)).await;
    assert!(converged.applied_index > newest, "applied index {}", converged.applied_index);
    assert_eq!(converged.accounts, 16);
    let log = log_since_start(&cluster, victim, 3);
    assert!(log.contains("damaged snapshot skipped"), "the skip is not logged:\n{log}");
    assert!(log.contains(&format!("snap-{newest:020}.pds")), "the log does not name the damaged file:\n{log}");
    assert!(
        log.contains("loaded snapshot") && log.contains(&format!("index={previous} ")),
        "the previous snapshot ({previous}) is not what was loaded:\n{log}"
    );
    assert!(!log.contains("installed snapshot from leader"), "the node was sent a snapshot:\n{log}");
    eprintln!("done in {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_that_cannot_rebuild_its_state_discards_its_log_and_recovers_from_its_peers_by_itself() {
    // Snapshots every 50 entries keep 1050 behind the newest; once a snapshot reaches 1500 the
    // log's head (≥ 256 entries, one purge batch) is gone.
    let started = Instant::now();
    let (mut cluster, client) = start_cluster(50).await;
    deposits(&client, "before", 1_700).await;
    cluster.wait_converged(&cluster.ids(), Duration::from_secs(30)).await;
    let leader = cluster.leader().await;
    let victim = cluster.ids().into_iter().find(|id| *id != leader).expect("a follower");
    let data_dir = cluster.node(victim).data_dir.clone();
    let files = poll_until(
        "the follower to snapshot past 1500",
        Duration::from_secs(30),
        Duration::from_millis(100),
        async || {
            let files = snapshot_files(&data_dir);
            (files.len() == 2 && files[0].0 >= 1_500).then_some(files)
        },
    )
    .await;
    // Let the purge that follows the snapshot land.
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Both snapshots damaged: no snapshot reaches the log's head, so the log is no use. The
    // node discards it (storage repair), abstains from votes, and the leader sends it a
    // snapshot; nothing to do for an operator.
    cluster.kill(victim);
    for (_, path) in &files {
        flip_middle_byte(path);
    }
    deposits(&client, "while-down", 200).await;
    cluster.restart(victim);
    let up = ready_or_exited(&mut cluster, victim).await;
    let log = log_since_start(&cluster, victim, 2);
    assert!(up, "node {victim} did not start:\n{log}");
    cluster.wait_ready(&cluster.ids(), READY_WITHIN).await;
    let converged = cluster.wait_converged(&cluster.ids(), Duration::from_secs(30)).await;
    assert_eq!(converged.accounts, 16);
    let log = poll_until("the repair to finish", Duration::from_secs(30), Duration::from_millis(100), async || {
        let log = log_since_start(&cluster, victim, 2);
        log.contains("storage repair finished").then_some(log)
    })
    .await;
    assert!(log.contains("the log does not follow an intact snapshot"), "the repair does not say why:\n{log}");
    assert!(log.contains("it has no intact snapshot (skipped as damaged:"), "the repair names the damage:\n{log}");
    assert!(log.contains("installed snapshot from leader"), "the node did not recover from a peer:\n{log}");
    assert!(!log.contains("panicked"), "the node panicked:\n{log}");
    eprintln!("done in {:?}", started.elapsed());
}
