//! `paddock load` does what its flags say: requests rotate over every node of `--nodes`
//! (not only the first, until it fails), and `--markets` markets are created. A real cluster
//! and the real binary; the run is bounded by `--duration-s` and stops by itself.

mod support;

use std::process::Command;
use support::*;

/// Requests a node has answered, from its own metrics.
async fn requests_answered(url: &str) -> u64 {
    let text = reqwest::get(format!("{url}/metrics")).await.expect("metrics scrape").text().await.expect("text");
    text.lines()
        .filter(|l| l.starts_with("paddock_http_requests_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_spreads_its_requests_over_every_node_and_creates_the_markets_asked_for() {
    let cluster = Cluster::start(3, &[]).await;
    let before = requests_by_node(&cluster).await;
    let dir = tempfile::tempdir().expect("temporary directory");
    let report = dir.path().join("load.json");
    let nodes = cluster.urls().join(",");
    let out = Command::new(env!("CARGO_BIN_EXE_paddock"))
        .args(["load", "--nodes", &nodes, "--rate", "100", "--duration-s", "3", "--quiet"])
        .args(["--accounts", "10", "--markets", "6", "--mix", "read=100", "--report"])
        .arg(&report)
        .env("PADDOCK_KEY", cluster.keys().operator.expose())
        .output()
        .expect("paddock load runs");
    assert!(out.status.success(), "paddock load failed: {}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).expect("report written")).expect("report is JSON");
    let ok = report["ok"].as_u64().expect("ok count");
    assert!(ok >= 200, "about 300 reads scheduled, {ok} answered: {report}");

    let after = requests_by_node(&cluster).await;
    for (i, (b, a)) in before.iter().zip(&after).enumerate() {
        // An even spread gives each node a third of the reads; a client stuck on one node
        // gives the others none but the few set-up and probe requests.
        assert!(a - b >= ok / 5, "node {} answered {} of {ok} reads: {before:?} -> {after:?}", i + 1, a - b);
    }

    let markets = cluster.client().markets().await.expect("markets list");
    assert_eq!(markets.len(), 6, "--markets 6 creates six markets: {}", markets.len());
}

/// Requests each node has answered, in node order.
async fn requests_by_node(cluster: &Cluster) -> Vec<u64> {
    let mut out = Vec::new();
    for url in cluster.urls() {
        out.push(requests_answered(&url).await);
    }
    out
}
