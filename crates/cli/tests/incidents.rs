//! Incidents the cluster records by itself (R3): kill -9 the leader of a real 3-node cluster
//! and the record shows what an auditor asks for — a `leader_changed` incident naming the old
//! leader, opened and closed by the new one, and a `node_unreachable` incident for the dead
//! node that stays open while it is down and is closed once it is back.

mod support;

use serde_json::Value;
use std::time::Duration;
use support::*;

async fn incidents(cluster: &Cluster, at: u64) -> Vec<Value> {
    let page = cluster.get_as_operator(at, "/v1/incidents?limit=1000").await;
    page.as_array().cloned().unwrap_or_default()
}

fn of_kind<'a>(all: &'a [Value], kind: &str, node: u64) -> Vec<&'a Value> {
    all.iter().filter(|i| i["kind"] == kind && i["node_id"] == node).collect()
}

fn listed(all: &[Value]) -> String {
    all.iter()
        .map(|i| format!("{} {} node {} closed {}", i["incident_id"], i["kind"], i["node_id"], i["closed_at_ms"]))
        .collect::<Vec<_>>()
        .join("; ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_leader_leaves_a_leader_change_and_an_unreachable_node_on_record_until_it_returns() {
    let mut cluster = Cluster::start(3, &[]).await;
    let old = cluster.leader().await;
    let at_start = incidents(&cluster, old).await;
    assert!(
        at_start.iter().all(|i| i["kind"] != "leader_changed" && i["kind"] != "node_unreachable"),
        "a cluster starting up is not an incident: {}",
        listed(&at_start)
    );

    cluster.kill(old);
    let others: Vec<u64> = cluster.ids().into_iter().filter(|id| *id != old).collect();
    let new = cluster.wait_leader_among(&others, READY_WITHIN).await;

    let recorded = poll_until(
        "the leader change and the unreachable node on record",
        READY_WITHIN,
        Duration::from_millis(250),
        async || {
            let all = incidents(&cluster, new).await;
            let changed = of_kind(&all, "leader_changed", old);
            let unreachable = of_kind(&all, "node_unreachable", old);
            (!changed.is_empty() && !unreachable.is_empty()).then_some(all)
        },
    )
    .await;
    let change = of_kind(&recorded, "leader_changed", old)[0];
    assert_eq!(change["opened_by"], format!("node-{new}"), "the new leader records the change: {change}");
    assert!(change["closed_at_ms"].is_u64(), "a leader change is over once recorded: {change}");
    let cause = change["cause"].as_str().unwrap_or_default();
    assert!(
        cause.contains(&format!("node {old}")) && cause.contains(&format!("node {new} was elected")),
        "the cause names the old and the new leader: {cause}"
    );
    let down = of_kind(&recorded, "node_unreachable", old)[0];
    assert!(down["closed_at_ms"].is_null(), "the dead node's incident stays open while it is down: {down}");
    assert!(down["cause"].as_str().unwrap_or_default().contains("no answer"), "{down}");

    cluster.restart(old);
    let incident_id = down["incident_id"].clone();
    let closed = poll_until(
        "the unreachable node's incident closed after its return",
        READY_WITHIN,
        Duration::from_millis(250),
        async || {
            let all = incidents(&cluster, new).await;
            all.into_iter().find(|i| i["incident_id"] == incident_id && i["closed_at_ms"].is_u64())
        },
    )
    .await;
    assert!(
        closed["resolution"].as_str().unwrap_or_default().contains(&format!("node {old} answers")),
        "the resolution says the node answers again: {closed}"
    );
    assert!(
        closed["closed_at_ms"].as_u64() >= closed["opened_at_ms"].as_u64(),
        "an incident ends after it starts: {closed}"
    );
    let all = incidents(&cluster, new).await;
    assert_eq!(
        of_kind(&all, "node_unreachable", old).len(),
        1,
        "one outage is one incident, however many looks saw it: {}",
        listed(&all)
    );
}
