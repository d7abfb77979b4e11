//! R8 self-authentication on a real node: it hashes its own binary and configuration, answers
//! `GET /v1/self-check` with the digests, and raises an alarm (metric, log line, incident
//! record) when they are not the ones the operator expects; the incident closes when the check
//! passes again.

mod support;

use serde_json::Value;
use std::time::Duration;
use support::*;

fn sha256sum(path: &str) -> String {
    let out = std::process::Command::new("sha256sum").arg(path).output().expect("sha256sum runs");
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().expect("a digest").to_string()
}

async fn self_check(cluster: &Cluster) -> Value {
    cluster.get_as_operator(1, "/v1/self-check").await
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

/// The self-check's incidents as `node` lists them (the cluster may also have recorded, say, a
/// leader change at start-up; those are not this test's).
async fn incidents(cluster: &Cluster, node: u64) -> Vec<Value> {
    let all = cluster.get_as_operator(node, "/v1/incidents").await.as_array().expect("an array").clone();
    all.into_iter().filter(|i| i["kind"] == "self_check_failed").collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_self_check_is_an_incident_on_every_node_until_the_check_passes_again() {
    let right = sha256sum(env!("CARGO_BIN_EXE_paddock"));
    let wrong = "ab".repeat(32);
    let mut cluster = Cluster::start_with_own_args(3, &[], &[(2, &["--expected-binary-sha256", &wrong])]).await;

    // Node 2's check at start fails: an incident opens, and node 1 lists it too.
    let open = poll_until("node 2's incident", Duration::from_secs(15), Duration::from_millis(200), async || {
        let list = incidents(&cluster, 1).await;
        (list.len() == 1).then_some(list)
    })
    .await;
    let incident = &open[0];
    assert_eq!(incident["kind"], "self_check_failed", "{incident}");
    assert_eq!(incident["node_id"], 2);
    assert_eq!(incident["opened_by"], "node-2");
    assert!(incident["cause"].as_str().unwrap().contains(&format!("expected {wrong}")), "{incident}");
    assert!(incident["closed_at_ms"].is_null());

    // Found again on demand, it is the same incident, not a new one.
    cluster.get_as_operator(2, "/v1/self-check").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(incidents(&cluster, 3).await.len(), 1, "one incident per fault and node");

    // Node 2 restarts with the right expectation: its check passes and closes the incident.
    assert!(cluster.terminate(2).await, "node 2 stops");
    cluster.set_own_args(2, &["--expected-binary-sha256", &right]);
    cluster.restart(2);
    let closed = poll_until("the incident to close", Duration::from_secs(20), Duration::from_millis(200), async || {
        let list = incidents(&cluster, 1).await;
        list.into_iter().find(|i| !i["closed_at_ms"].is_null())
    })
    .await;
    assert_eq!(closed["closed_by"], "node-2");
    assert!(closed["resolution"].as_str().unwrap().contains("passed"), "{closed}");
    assert!(closed["closed_at_ms"].as_u64() >= closed["opened_at_ms"].as_u64());

    // Both ends are in the audit trail.
    let events = cluster.audit_events(1).await;
    assert!(events.iter().any(|e| e.contains(r#""type":"incident_opened""#)), "{events:?}");
    assert!(events.iter().any(|e| e.contains(r#""type":"incident_closed""#)), "{events:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_opens_and_closes_an_incident_no_node_can_see() {
    let cluster = Cluster::start(1, &[]).await;
    let http = reqwest::Client::new();
    let operator = cluster.keys().operator.expose();
    // Through the client, which retries while the new cluster settles (503 with Retry-After).
    let client = cluster.client();
    let opened = client.open_incident("data centre A lost power", 0, "incident-dc-a").await.expect("opened");
    let id = opened.incident_id;
    assert!(!opened.already_open);
    client.close_incident(id, "power back; nodes caught up", "close-dc-a").await.expect("closed");

    let close = |key: &'static str, resolution: &'static str| {
        http.post(format!("{}/v1/incidents/{id}/close", cluster.url(1)))
            .bearer_auth(&operator)
            .header("Idempotency-Key", key)
            .json(&serde_json::json!({ "resolution": resolution }))
            .send()
    };
    let twice = close("close-dc-a-again", "again").await.unwrap();
    assert_eq!(twice.status(), 409);
    assert!(twice.text().await.unwrap().contains("incident_closed"));

    let one = cluster.get_as_operator(1, &format!("/v1/incidents/{id}")).await;
    assert_eq!(one["kind"], "reported");
    assert_eq!(one["resolution"], "power back; nodes caught up");
    let missing = http.get(format!("{}/v1/incidents/999", cluster.url(1))).bearer_auth(&operator).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert!(missing.text().await.unwrap().contains("incident_not_found"));
}
