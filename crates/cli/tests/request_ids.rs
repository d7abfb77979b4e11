//! Request ids follow a request through the cluster: a write sent to a follower with
//! `X-Request-Id` is answered with the same id, and the JSON log lines of both the follower
//! (which received it) and the leader (which served it for the follower) carry that id — so an
//! operator can find one client request in every node's log.

mod support;

use serde_json::Value;
use std::time::Duration;
use support::*;

/// The JSON log lines of `node` that carry `request_id`.
fn lines_with(cluster: &Cluster, node: u64, request_id: &str) -> Vec<Value> {
    cluster
        .log_text(node)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|entry| entry["fields"]["request_id"] == request_id)
        .collect()
}

async fn open_account(cluster: &Cluster, at: u64, request_id: Option<&str>) -> reqwest::Response {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("http client");
    let mut request = http
        .post(format!("{}/v1/accounts", cluster.url(at)))
        .bearer_auth(cluster.keys().operator.expose())
        .header("Idempotency-Key", format!("open-{}", request_id.unwrap_or("none")))
        .json(&serde_json::json!({ "account_id": 7, "currency": "GBP" }));
    if let Some(id) = request_id {
        request = request.header("X-Request-Id", id);
    }
    request.send().await.expect("the node answers")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_id_is_answered_and_logged_by_the_follower_and_the_leader_that_served_it() {
    let mut cluster = Cluster::start(3, &["--access-log", "--log-json"]).await;
    let leader = cluster.leader().await;
    let follower = cluster.ids().into_iter().find(|id| *id != leader).expect("a follower");

    let answer = open_account(&cluster, follower, Some("trace-77.a_b")).await;
    assert_eq!(answer.status(), 201, "the forwarded write succeeds");
    assert_eq!(answer.headers()["x-request-id"], "trace-77.a_b", "the client's id comes back");

    let (on_follower, on_leader) = poll_until(
        "the request id in both nodes' logs",
        Duration::from_secs(10),
        Duration::from_millis(100),
        async || {
            let (f, l) = (lines_with(&cluster, follower, "trace-77.a_b"), lines_with(&cluster, leader, "trace-77.a_b"));
            (!f.is_empty() && !l.is_empty()).then_some((f, l))
        },
    )
    .await;
    let access = &on_follower[0];
    assert_eq!(access["target"], "paddock::access", "{access}");
    assert_eq!(access["fields"]["route"], "/v1/accounts", "{access}");
    assert_eq!(access["fields"]["status"], 201, "{access}");
    let served = &on_leader[0];
    assert_eq!(served["fields"]["rpc"], "forward", "the leader served it for the follower: {served}");
    assert_eq!(served["fields"]["ok"], true, "{served}");

    let unnamed = open_account(&cluster, follower, None).await;
    let given = unnamed.headers()["x-request-id"].to_str().expect("text").to_string();
    assert!(!given.is_empty() && given != "trace-77.a_b", "a request without an id gets a fresh one: {given}");

    let unusable = open_account(&cluster, follower, Some("has space")).await;
    let replaced = unusable.headers()["x-request-id"].to_str().expect("text").to_string();
    assert!(replaced != "has space" && !replaced.contains(' '), "an unusable id is replaced, not echoed: {replaced}");
    assert_ne!(replaced, given, "every fresh id is new");
}
