//! A bootstrap list that differs between nodes is found and said loudly, not waited on in
//! silence: a node left out of the cluster its peers formed logs why at ERROR and gives it as
//! its readiness reason; a node restarted with a `--bootstrap` other than the membership its
//! data directory holds warns that the list is ignored. Real processes on loopback.

mod support;

use std::time::Duration;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_left_out_by_a_typo_in_the_first_nodes_bootstrap_list_says_why_it_cannot_join() {
    let mut cluster = Cluster::unstarted(3, &[]);
    // Node 1 forms the cluster; its list names a node 4 (nobody) where node 3 should be.
    let nobody = free_ports(1)[0];
    let typo = format!("1={},2={},4=127.0.0.1:{nobody}", cluster.node(1).peer, cluster.node(2).peer);
    cluster.set_bootstrap(1, &typo);
    // Node 3 first: it finds no cluster yet, as on a first start of all three. It asks its peers
    // before it logs that it started, so the others start only once it has.
    cluster.restart(3);
    let every = Duration::from_millis(50);
    poll_until("node 3 to start on its own", READY_WITHIN, every, async || {
        cluster.log_text(3).contains("node started").then_some(())
    })
    .await;
    cluster.spawn_all();
    cluster.wait_ready(&[1, 2], READY_WITHIN).await;

    let http = reqwest::Client::new();
    let url = format!("{}/health/ready", cluster.url(3));
    let every = Duration::from_millis(200);
    let reason =
        poll_until("node 3 to give the disagreement as its readiness reason", READY_WITHIN, every, async || {
            let response = http.get(&url).send().await.ok()?;
            let status = response.status();
            let body: serde_json::Value = response.json().await.ok()?;
            let reason = body["reason"].as_str()?.to_string();
            (status == 503 && reason.contains("--bootstrap")).then_some(reason)
        })
        .await;
    assert!(reason.contains("1, 2 and 3") && reason.contains("1, 2 and 4"), "names both voter sets: {reason}");
    assert!(reason.contains("paddock members add --id 3"), "says what to do: {reason}");
    let log = cluster.log_text(3);
    assert!(log.contains("ERROR") && log.contains("this node cannot join its cluster"), "said loudly: {log}");
    assert!(!log.contains("Some("), "no Debug text: {log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restarted_with_another_bootstrap_list_warns_that_the_list_is_ignored() {
    let mut cluster = Cluster::start(1, &[]).await;
    assert!(!cluster.log_text(1).contains("--bootstrap is ignored"), "the list the node was formed with is not");
    assert!(cluster.terminate(1).await, "node 1 stops");
    let other = format!("1={},2=127.0.0.1:{}", cluster.node(1).peer, free_ports(1)[0]);
    cluster.set_bootstrap(1, &other);
    cluster.restart(1);
    cluster.wait_ready(&[1], READY_WITHIN).await;
    let every = Duration::from_millis(200);
    poll_until("node 1 to warn that its new --bootstrap is ignored", Duration::from_secs(10), every, async || {
        let log = cluster.log_text(1);
        (log.contains("WARN") && log.contains("--bootstrap is ignored")).then_some(())
    })
    .await;
    let log = cluster.log_text(1);
    assert!(log.contains(&other), "names the list it was given: {log}");
}
