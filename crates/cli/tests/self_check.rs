//! R8 self-authentication on a real node: it hashes its own binary and configuration, answers
//! `GET /v1/self-check` with the digests, and raises an alarm (metric, log line) when they
//! are not the ones the operator expects.

mod support;

use serde_json::Value;
use std::time::Duration;
use support::*;

fn sha256sum(path: &str) -> String {
    let out = std::process::Command::new("sha256sum").arg(path).output().expect("sha256sum runs");
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().expect("a digest").to_string()
}

async fn self_check(cluster: &Cluster) -> Value {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let response = http
        .get(format!("{}/v1/self-check", cluster.url(1)))
        .bearer_auth(cluster.keys().operator.expose())
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), 200);
    response.json().await.expect("json")
}

async fn metrics(cluster: &Cluster) -> String {
    reqwest::get(format!("{}/metrics", cluster.url(1))).await.unwrap().text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_reports_the_digest_of_the_binary_it_runs_and_passes_when_it_is_the_expected_one() {
    let binary = sha256sum(env!("CARGO_BIN_EXE_paddock"));
    let cluster = Cluster::start(1, &["--expected-binary-sha256", &binary]).await;
    let check = self_check(&cluster).await;
    assert_eq!(check["binary_sha256"], binary.as_str(), "the digest is the file's own");
    assert_eq!(check["ok"], true, "{check}");
    assert!(metrics(&cluster).await.contains("paddock_self_check_ok 1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_binary_or_configuration_than_expected_raises_an_alarm() {
    let wrong = "ab".repeat(32);
    let cluster =
        Cluster::start(1, &["--expected-binary-sha256", &wrong, "--expected-config-sha256", &"cd".repeat(32)]).await;
    let check = self_check(&cluster).await;
    assert_eq!(check["ok"], false);
    let mismatches = check["mismatches"].as_array().expect("a list");
    assert_eq!(mismatches.len(), 2, "{check}");
    assert!(mismatches[0].as_str().unwrap().contains(&format!("expected {wrong}")));
    let text = metrics(&cluster).await;
    assert!(text.contains("paddock_self_check_ok 0"), "the alarm metric is down");
    assert!(text.contains("paddock_self_check_failures_total"));
    assert!(cluster.log_text(1).contains("SELF-CHECK FAILED"), "and a log line says so");
}
