//! Backups to S3-compatible object storage, against a real S3 server: s3s-fs (built into
//! `target/tools` by `xtask/packages.sh`) on loopback, its objects in a directory the test
//! owns. A 3-node cluster takes bets; `paddock backup --to s3://…` takes a full backup and then
//! an increment into the bucket; `backup verify --from s3://…` replays the chain from the
//! bucket; `paddock restore --from s3://…` seeds a node with the chain's state hash; a byte
//! flipped in one object on the server is reported by that object's name.

mod support;

use serde_json::Value;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::*;

const ACCESS_KEY: &str = "paddock-test-access";
const SECRET_KEY: &str = "paddock-test-secret-0123456789";

/// The S3 server, stopped by PID when dropped.
struct S3Server {
    child: Child,
    endpoint: String,
    root: tempfile::TempDir,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_s3() -> S3Server {
    let binary = concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/tools/s3s-fs/bin/s3s-fs");
    assert!(
        std::path::Path::new(binary).exists(),
        "{binary} is missing: `bash xtask/packages.sh` builds it (cargo xtask ci runs it)"
    );
    let root = tempfile::tempdir().expect("the server's directory");
    // A bucket is a directory under the server's root.
    std::fs::create_dir(root.path().join("backups")).expect("the bucket");
    let port = free_ports(1)[0];
    let child = Command::new(binary)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
        .arg(root.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("s3s-fs starts");
    // Owned at once, so that a panic below still stops it (by PID, on drop).
    let server = S3Server { child, endpoint: format!("http://127.0.0.1:{port}"), root };
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return server;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("s3s-fs did not listen on 127.0.0.1:{port} within 5 s");
}

/// Runs `paddock` with the operator's key and the S3 server's credentials.
fn paddock(cluster: &Cluster, s3: &S3Server, args: &[&str]) -> Result<Value, (i32, String)> {
    let env = [
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ENDPOINT", s3.endpoint.as_str()),
        ("AWS_ALLOW_HTTP", "true"),
    ];
    paddock_as_operator(cluster, args, &env)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_in_an_s3_bucket_is_extended_verified_and_restored_and_a_damaged_object_is_named() {
    let s3 = start_s3();
    let cluster = Cluster::start(3, &[]).await;
    let client = cluster.client();
    seed_market(&client, 1, 1).await;
    for account in 1..=5 {
        client.open_account(account, "GBP", &paddock_client::fresh_key()).await.expect("account opens");
        client.deposit(account, 100_000, &paddock_client::fresh_key()).await.expect("deposit");
        client.place_bet(&single(account, 1, 500), &format!("first-{account}")).await.expect("bet");
    }
    let node = cluster.url(1);
    let url = "s3://backups/paddock/c1";
    let full = paddock(&cluster, &s3, &["backup", "--node", &node, "--to", url]).expect("a full backup to the bucket");
    let full_files = full["files"].as_u64().expect("a file count");
    assert_eq!(full["dir"], url, "the chain is named by its URL, not the scratch copy: {full}");

    for account in 1..=5 {
        client.place_bet(&single(account, 1, 700), &format!("second-{account}")).await.expect("bet");
    }
    let increment = paddock(&cluster, &s3, &["backup", "--node", &node, "--to", url]).expect("an increment");
    assert_eq!(increment["files"].as_u64(), Some(full_files + 1), "one file more: {increment}");

    // The objects are on the server, under the chain's prefix, the manifest among them.
    let stored: Vec<String> = std::fs::read_dir(s3.root.path().join("backups/paddock/c1"))
        .expect("the server stored the chain")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(stored.len() as u64, full_files + 2, "every file and the manifest: {stored:?}");
    assert!(stored.iter().any(|n| n == "manifest.json"), "{stored:?}");

    let verified = paddock(&cluster, &s3, &["backup", "verify", "--from", url]).expect("the chain verifies");
    assert_eq!(verified["verified"], true, "{verified}");
    assert_eq!(verified["state_hash"], increment["state_hash"], "{verified}");

    let data = tempfile::tempdir().expect("a data directory");
    let restored = paddock(
        &cluster,
        &s3,
        &[
            "restore",
            "--from",
            url,
            "--cluster-id",
            "paddock-r",
            "--node-id",
            "1",
            "--bootstrap",
            "1=127.0.0.1:7101",
            "--data-dir",
            data.path().join("n1").to_str().unwrap(),
        ],
    )
    .expect("a restore from the bucket");
    assert_eq!(restored["state_hash"], increment["state_hash"], "{restored}");

    // One byte flipped in the last increment on the server: verify names that object.
    let last = increment["added"].as_str().expect("the increment's file name").to_string();
    let object = s3.root.path().join("backups/paddock/c1").join(&last);
    let mut bytes = std::fs::read(&object).expect("the object");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&object, bytes).expect("the damaged object");
    let (code, err) = paddock(&cluster, &s3, &["backup", "verify", "--from", url]).expect_err("a damaged chain fails");
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(&last), "the damaged object is named: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nodes_scheduled_chains_are_copied_to_the_bucket_and_the_copy_verifies_and_restores() {
    let s3 = start_s3();
    let root = tempfile::tempdir().expect("backup root");
    let root_text = root.path().to_str().expect("utf-8").to_string();
    let own: &[&str] =
        &["--backup-dir", &root_text, "--backup-interval-s", "1", "--backup-s3", "s3://backups/prod/node-2"];
    let env: &[(&str, &str)] = &[
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ENDPOINT", s3.endpoint.as_str()),
        ("AWS_ALLOW_HTTP", "true"),
    ];
    let cluster = Cluster::start_with_own_args_and_env(3, &[], &[(2, own)], &[(2, env)]).await;
    let client = cluster.client();
    seed_market(&client, 1, 1).await;
    client.open_account(1, "GBP", "open-1").await.expect("account opens");
    client.deposit(1, 100_000, "deposit-1").await.expect("deposit");
    for n in 0..10 {
        client.place_bet(&single(1, 1, 100), &format!("bet-{n}")).await.expect("bet");
    }
    let acknowledged = cluster.wait_converged(&cluster.ids(), Duration::from_secs(15)).await;

    // Within a few periods the bucket holds a chain, read straight from the server, that
    // verifies past every acknowledged bet.
    let (url, verified) = poll_until(
        "the scheduled chain copied to the bucket past the acknowledged bets",
        Duration::from_secs(30),
        Duration::from_millis(500),
        async || {
            let chain = std::fs::read_dir(s3.root.path().join("backups/prod/node-2"))
                .ok()?
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .find(|name| name.starts_with("chain-"))?;
            let url = format!("s3://backups/prod/node-2/{chain}");
            let verified = paddock(&cluster, &s3, &["backup", "verify", "--from", &url]).ok()?;
            (verified["last_index"].as_u64()? >= acknowledged.applied_index).then_some((url, verified))
        },
    )
    .await;
    assert_eq!(verified["verified"], true);
    assert_eq!(verified["not_in_the_chain"], serde_json::json!([]), "only the chain's files, no tip: {verified}");
    let copied_at = cluster.client_for(2).metric("paddock_backup_offsite_last_success_timestamp_seconds").await;
    assert!(copied_at.ok().flatten().is_some_and(|t| t > 1.7e9), "the last copy is a recent UTC time");
    let failures = cluster.client_for(2).metric("paddock_backup_offsite_failures_total").await;
    assert_eq!(failures.ok().flatten(), Some(0.0));
    assert_eq!(cluster.client_for(1).metric("paddock_backup_offsite_configured").await.ok().flatten(), Some(0.0));

    // The copy alone restores a node holding the state it recorded.
    let data_dir = root.path().join("restored");
    let peer = format!("1=127.0.0.1:{}", free_ports(1)[0]);
    let restored = paddock(
        &cluster,
        &s3,
        &[
            "restore",
            "--from",
            &url,
            "--cluster-id",
            "paddock-offsite",
            "--node-id",
            "1",
            "--bootstrap",
            &peer,
            "--data-dir",
            data_dir.to_str().expect("utf-8"),
        ],
    )
    .expect("restored from the bucket's copy");
    assert_eq!(restored["state_hash"], verified["state_hash"]);
}
