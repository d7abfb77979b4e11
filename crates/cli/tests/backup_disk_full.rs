//! A backup onto a full disk: `paddock backup` fails with an error that says so and a non-zero
//! exit code, and the chain it was extending is left exactly as it was — its manifest
//! unchanged, no partial file — so it still verifies, and the next run once there is space
//! extends it. The chain lives on a 1 MiB tmpfs the test mounts (root only, as CI runs; the
//! chaos harness's `disk` module) and fills with a filler file.

mod support;

use paddock_chaos::disk::{fill, free, Disks};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_onto_a_full_disk_fails_clearly_and_leaves_the_chain_as_it_was() {
    let cluster = Cluster::start(3, &[]).await;
    let client = cluster.client();
    seed_market(&client, 1, 1).await;
    open_funded(&client, 1, 1_000_000).await;
    let root = tempfile::tempdir().expect("a directory");
    let disk = root.path().join("backups");
    let mut mounts = Disks::mount(std::slice::from_ref(&disk), 1)
        .expect("mounting a 1 MiB tmpfs needs root, as `cargo xtask ci` runs on this project's machines");
    let chain = disk.join("c1");
    let chain_text = chain.to_str().expect("a UTF-8 path");
    let node = cluster.url(2);
    let full = paddock_as_operator(&cluster, &["backup", "--node", &node, "--to", chain_text], &[])
        .expect("a full backup fits");
    let manifest = std::fs::read(chain.join("manifest.json")).expect("the manifest");

    for n in 0..300 {
        client.place_bet(&single(1, 1, 100), &format!("bet-{n}")).await.expect("a bet");
    }
    fill(&disk, 4 << 20).expect("the disk fills");
    let (code, err) = paddock_as_operator(&cluster, &["backup", "--node", &node, "--to", chain_text], &[])
        .expect_err("an increment onto a full disk fails");
    assert_ne!(code, 0);
    assert!(err.contains("disk full") || err.contains("No space left"), "the error says the disk is full: {err}");
    assert_eq!(
        std::fs::read(chain.join("manifest.json")).expect("the manifest"),
        manifest,
        "the manifest is unchanged"
    );
    let leftovers: Vec<String> = std::fs::read_dir(&chain)
        .expect("the chain")
        .map(|e| e.expect("an entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "no partial file is left: {leftovers:?}");
    let verified = paddock_as_operator(&cluster, &["backup", "verify", "--from", chain_text], &[])
        .expect("the chain still verifies");
    assert_eq!(verified["state_hash"], full["state_hash"]);

    free(&disk).expect("the filler is deleted");
    let increment = paddock_as_operator(&cluster, &["backup", "--node", &node, "--to", chain_text], &[])
        .expect("with space again, the next run extends the chain");
    assert_eq!(increment["files"].as_u64(), full["files"].as_u64().map(|f| f + 1));
    assert!(mounts.unmount_all().is_empty(), "the tmpfs unmounts");
}
