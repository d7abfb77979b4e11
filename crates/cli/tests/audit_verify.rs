//! `paddock audit export` and `paddock audit verify` against a live node: the trail verifies
//! end to end, from the node and from the export, and a tampered export is refused by name.

mod support;

use std::process::Command;
use support::*;

fn paddock(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_paddock")).args(args).output().expect("paddock runs");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_trail_verifies_from_the_node_and_from_an_export_and_tampering_is_named() {
    let cluster = Cluster::start(1, &[]).await;
    let client = cluster.client();
    for market in 1..=3 {
        seed_market(&client, market, market).await;
    }
    let key = cluster.keys().operator.expose();
    let url = cluster.url(1);
    let (ok, text) = paddock(&["audit", "verify", "--node", &url, "--key", &key]);
    assert!(ok && text.contains("\"verified\": true"), "{text}");

    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("audit.json");
    let file_arg = file.display().to_string();
    let (ok, text) = paddock(&["audit", "export", "--node", &url, "--key", &key, "--out", &file_arg]);
    assert!(ok, "{text}");
    let (ok, text) = paddock(&["audit", "verify", "--file", &file_arg]);
    assert!(ok && text.contains("\"records\": 6"), "three events and three markets: {text}");

    // Someone edits who created the second market.
    let mut trail: Vec<serde_json::Value> = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    trail[3]["actor"] = "someone-else".into();
    std::fs::write(&file, serde_json::to_vec(&trail).unwrap()).unwrap();
    let (ok, text) = paddock(&["audit", "verify", "--file", &file_arg]);
    assert!(!ok && text.contains("record 3"), "a tampered export is refused, naming the record: {text}");
}
