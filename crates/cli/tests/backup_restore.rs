//! Backups taken online from a follower, encrypted at rest, checked, and restored to just
//! before an operator's mistake: a real 3-node cluster takes bets; `paddock backup` takes a full backup from a
//! follower, then an increment after more bets and after market 1 is voided by mistake;
//! `paddock backup verify` confirms the chain and names a damaged file; the whole cluster is
//! lost (killed, data directories wiped) and `paddock restore --to-index` rebuilds every node
//! at the last entry before the void. The restored cluster holds every bet acknowledged before
//! that point with the recorded state hash, the market is open again, its audit trail
//! verifies, and it takes bets.

mod support;

use serde_json::Value;
use std::path::Path;
use std::time::Duration;
use support::*;

/// Runs `paddock` with the operator's key; its JSON answer, or its exit code and stderr.
fn paddock(cluster: &Cluster, args: &[&str]) -> Result<Value, (i32, String)> {
    paddock_as_operator(cluster, args, &[])
}

async fn place_bets(cluster: &Cluster, accounts: std::ops::RangeInclusive<u64>, tag: &str) -> Vec<u64> {
    let client = cluster.client();
    let mut ids = Vec::new();
    for account in accounts {
        let placed = client.place_bet(&single(account, 1, 500), &format!("{tag}-{account}")).await.expect("bet");
        ids.push(placed.bet_id);
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_taken_from_a_follower_restores_the_cluster_to_just_before_a_mistake() {
    let mut cluster = Cluster::start(3, &[]).await;
    let client = cluster.client();
    seed_market(&client, 1, 1).await;
    for account in 1..=10 {
        client.open_account(account, "GBP", &paddock_client::fresh_key()).await.expect("account opens");
        client.deposit(account, 100_000, &paddock_client::fresh_key()).await.expect("deposit");
    }
    let before_backup = place_bets(&cluster, 1..=10, "first").await;

    let leader = cluster.leader().await;
    let follower = cluster.ids().into_iter().find(|id| *id != leader).expect("a follower");
    let chain = tempfile::tempdir().expect("backup directory");
    let dir = chain.path().join("chain");
    let dir_text = dir.to_str().expect("utf-8 path");
    // Encrypted at rest, with a key kept apart from the chain.
    let key_file = chain.path().join("backup.key");
    std::fs::write(&key_file, "5a".repeat(32)).expect("key file");
    let key = key_file.to_str().expect("utf-8 path");
    let node = cluster.url(follower);
    let acknowledged = cluster.cluster_view(leader).await.expect("the leader answers").commit_index;
    let full = paddock(&cluster, &["backup", "--node", &node, "--to", dir_text, "--backup-key-file", key])
        .expect("a full backup from a follower");
    assert!(full["last_index"].as_u64() >= Some(acknowledged), "the backup holds every acknowledged bet: {full}");
    let full_files = full["files"].as_u64().expect("a file count");

    // More business, then the mistake: market 1 voided, every bet on it void.
    let after_backup = place_bets(&cluster, 1..=10, "second").await;
    let before_mistake = cluster.cluster_view(leader).await.expect("the leader answers").commit_index;
    client.void(1, "voided by mistake", "the-mistake").await.expect("the void is applied");
    assert_eq!(
        client.bet(after_backup[0]).await.expect("bet reads").status,
        "settled",
        "voided: settled, stake returned"
    );
    cluster.wait_converged(&cluster.ids(), Duration::from_secs(15)).await;
    let increment = paddock(&cluster, &["backup", "--node", &node, "--to", dir_text, "--backup-key-file", key])
        .expect("an increment");
    assert_eq!(increment["files"].as_u64(), Some(full_files + 1), "the increment is one more file: {increment}");
    assert!(increment["last_index"].as_u64() > Some(before_mistake), "the increment holds the void: {increment}");

    // The chain checks out, and a damaged copy is named.
    let verified = paddock(&cluster, &["backup", "verify", "--from", dir_text, "--backup-key-file", key])
        .expect("the chain verifies");
    assert_eq!(verified["verified"], true);
    let (_, why) = paddock(&cluster, &["backup", "verify", "--from", dir_text]).expect_err("not without its key");
    assert!(why.contains(verified["key_id"].as_str().expect("a key id")), "the key needed is named: {why}");
    let wrong_key_file = chain.path().join("another.key");
    std::fs::write(&wrong_key_file, "a7".repeat(32)).expect("another key file");
    let wrong_key = wrong_key_file.to_str().expect("utf-8 path");
    let (code, why) = paddock(&cluster, &["backup", "verify", "--from", dir_text, "--backup-key-file", wrong_key])
        .expect_err("not with another key");
    assert_eq!(code, 1);
    assert!(
        why.contains(verified["key_id"].as_str().expect("a key id")) && why.contains("the key given is"),
        "the key needed and the key given are named: {why}"
    );
    for file in std::fs::read_dir(&dir).expect("chain") {
        let bytes = std::fs::read(file.expect("entry").path()).expect("file");
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains("voided by mistake") && !text.contains("GBP"), "no book data in the clear");
    }
    assert_eq!(
        (&verified["last_index"], &verified["state_hash"]),
        (&increment["last_index"], &increment["state_hash"])
    );
    let damaged = chain.path().join("damaged");
    copy_dir(&dir, &damaged);
    let log_name = increment["added"].as_str().expect("the increment's file name").to_string();
    flip_a_byte(&damaged.join(&log_name));
    let (code, why) =
        paddock(&cluster, &["backup", "verify", "--from", damaged.to_str().expect("utf-8"), "--backup-key-file", key])
            .expect_err("a damaged chain does not verify");
    assert_eq!(code, 1);
    assert!(why.contains(&log_name), "the damaged file is named: {why}");

    // The site is lost.
    for id in cluster.ids() {
        cluster.kill(id);
        cluster.wipe(id);
    }
    let point = before_mistake.to_string();
    // `paddock restore` of node `id` of the new cluster into `data_dir`, with `flags` (the
    // point, `--force`) and the chain's key unless `flags` gives one.
    let restore = |cluster: &Cluster, id: u64, data_dir: &Path, flags: &[&str]| {
        let id = id.to_string();
        let mut args = vec!["restore", "--from", dir_text];
        args.extend_from_slice(flags);
        args.extend(["--cluster-id", "paddock", "--node-id", &id, "--bootstrap", cluster.bootstrap()]);
        args.extend(["--data-dir", data_dir.to_str().expect("utf-8")]);
        if !flags.contains(&"--backup-key-file") {
            args.extend(["--backup-key-file", key]);
        }
        paddock(cluster, &args)
    };
    let mut restored = Vec::new();
    for id in cluster.ids() {
        let data_dir = cluster.node(id).data_dir.clone();
        let answer =
            restore(&cluster, id, &data_dir, &["--to-index", &point]).expect("the node's data directory is seeded");
        restored.push(answer);
    }
    assert!(restored.iter().all(|r| r["state_hash"] == restored[0]["state_hash"]), "every node from one state");
    assert_eq!(restored[0]["restored_to_index"].as_u64(), Some(before_mistake));
    // Refused: restoring node 1 over a directory that holds data, then (below) into a new
    // directory while the cluster runs.
    let again = restore(&cluster, 1, &cluster.node(1).data_dir, &[]);
    let (_, why) = again.expect_err("a data directory in use is not overwritten");
    assert!(why.contains("not empty"), "{why}");
    // Refused, with the target as it was: a forced restore with another key.
    let seeded: Vec<_> = walk(&cluster.node(1).data_dir);
    let forced = restore(&cluster, 1, &cluster.node(1).data_dir, &["--force", "--backup-key-file", wrong_key]);
    let (code, why) = forced.expect_err("not with another key, even forced");
    assert_eq!(code, 1);
    assert!(why.contains("the key given is"), "{why}");
    assert_eq!(walk(&cluster.node(1).data_dir), seeded, "the forced restore that failed left the target as it was");

    for id in cluster.ids() {
        cluster.restart(id);
    }
    cluster.wait_ready(&cluster.ids(), READY_WITHIN).await;
    // Refused: a restore aimed at the addresses of a running cluster, even into an empty
    // directory.
    let fresh = chain.path().join("fresh-node-1");
    let (code, why) = restore(&cluster, 1, &fresh, &[]).expect_err("a live cluster is not restored into");
    assert_eq!(code, 1);
    assert!(why.contains("never restore into a live cluster"), "{why}");
    assert!(!fresh.exists(), "nothing was written");
    let now = cluster.wait_converged(&cluster.ids(), Duration::from_secs(20)).await;
    // The state hash also covers incident records: the one thing the new cluster may have
    // written since it started is an incident about its own start (a node slow to come up).
    // With none, the hash is the chain's; with one, it must be of that kind and nothing else.
    let incidents = cluster.get_as_operator(1, "/v1/incidents").await;
    let incidents = incidents.as_array().expect("a list of incidents");
    if incidents.is_empty() {
        assert_eq!(now.state_hash, restored[0]["state_hash"], "the restored cluster has the state the chain recorded");
    } else {
        let kinds: Vec<&str> = incidents.iter().filter_map(|i| i["kind"].as_str()).collect();
        assert!(
            kinds.iter().all(|k| *k == "node_unreachable" || *k == "leader_changed"),
            "only incidents about the restart itself are new: {}",
            kinds.join(", ")
        );
    }
    let client = cluster.client();
    for bet in before_backup.iter().chain(&after_backup) {
        assert_eq!(client.bet(*bet).await.expect("the bet is there").status, "open", "bet {bet} is open again");
    }
    let market = client.market(1).await.expect("market 1 reads");
    assert_eq!(market.status, "open", "the mistake is undone");
    let audit = paddock(&cluster, &["audit", "verify", "--node", &cluster.url(1)]).expect("the audit trail verifies");
    assert_eq!(audit["verified"], true);
    let next = client.place_bet(&single(1, 1, 700), "after-restore").await.expect("the restored cluster takes bets");
    assert!(next.bet_id > *after_backup.last().expect("bets"), "bet ids go on from the restored point");
}

/// Every file under `dir` with its bytes, in name order.
fn walk(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("a directory") {
        let path = entry.expect("an entry").path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            let bytes = std::fs::read(&path).expect("a file");
            files.push((path, bytes));
        }
    }
    files.sort();
    files
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("copy directory");
    for entry in std::fs::read_dir(from).expect("chain directory") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
    }
}

fn flip_a_byte(path: &Path) {
    let mut bytes = std::fs::read(path).expect("file");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(path, bytes).expect("write");
}

/// A metric's value in a node's `/metrics` (a series without labels).
async fn metric(cluster: &Cluster, node: u64, name: &str) -> Option<f64> {
    cluster.client_for(node).metric(name).await.ok()?
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_a_backup_schedule_keeps_a_chain_that_verifies_and_says_when_it_last_succeeded() {
    let root = tempfile::tempdir().expect("backup root");
    let root_text = root.path().to_str().expect("utf-8").to_string();
    let own: &[&str] = &["--backup-dir", &root_text, "--backup-interval-s", "1"];
    let cluster = Cluster::start_with_own_args(3, &[], &[(2, own)]).await;
    let client = cluster.client();
    seed_market(&client, 1, 1).await;
    client.open_account(1, "GBP", "open-1").await.expect("account opens");
    client.deposit(1, 100_000, "deposit-1").await.expect("deposit");
    for n in 0..20 {
        client.place_bet(&single(1, 1, 100), &format!("bet-{n}")).await.expect("bet");
    }
    let acknowledged = cluster.wait_converged(&cluster.ids(), Duration::from_secs(15)).await.applied_index;

    // Within a few periods the node's chain holds everything acknowledged, and it says so.
    let chain = poll_until(
        "a scheduled backup past the acknowledged bets",
        Duration::from_secs(20),
        Duration::from_millis(250),
        async || {
            let chain = std::fs::read_dir(root.path())
                .ok()?
                .filter_map(|e| e.ok())
                .map(|e| e.path())
                .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("chain-")))?;
            let verified = paddock(&cluster, &["backup", "verify", "--from", chain.to_str()?]).ok()?;
            (verified["last_index"].as_u64()? >= acknowledged).then_some((chain, verified))
        },
    )
    .await;
    assert_eq!(chain.1["verified"], true);
    assert_eq!(metric(&cluster, 2, "paddock_backup_configured").await, Some(1.0));
    assert_eq!(metric(&cluster, 1, "paddock_backup_configured").await, Some(0.0), "only node 2 has a schedule");
    let last_success = metric(&cluster, 2, "paddock_backup_last_success_timestamp_seconds").await.unwrap_or(0.0);
    assert!(last_success > 1.7e9, "the last success is a recent UTC time: {last_success}");
    assert_eq!(metric(&cluster, 2, "paddock_backup_failures_total").await, Some(0.0));
}
