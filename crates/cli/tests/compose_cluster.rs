//! deploy/compose.yaml on the real Docker engine with Compose v1 (`docker-compose`): the three
//! images built from local files (`xtask/image.sh --all`, the node from the tests' debug
//! binary), the secrets made by `xtask/compose.sh setup`, then `docker-compose up`: three nodes
//! on their own site networks and a shared backbone, HAProxy in front over TLS, Prometheus
//! scraping them with the alert rules loaded. It must elect a leader, take an authenticated
//! write through HAProxy that every node then holds, refuse a request without a key, and
//! Prometheus must see every node up and have Paddock's rules. Everything runs under a
//! project name of its own (`-p`), on host ports picked free on loopback, with image tags of
//! its own, and `docker-compose down -v` plus the image removals undo it, also on failure.

mod support;

use std::time::{Duration, Instant};
use support::compose::Project;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_compose_up_brings_up_an_authenticated_cluster_behind_haproxy_with_prometheus() {
    let started = Instant::now();
    let project = Project::up("compose");
    // Through HAProxy, over TLS checked against the cluster's CA, with the operator's key.
    let (_, ca) = project.operator();
    let url = format!("https://127.0.0.1:{}", project.lb_port);
    let client = project.client(Duration::from_secs(5));
    let view = project.wait_leader().await;
    eprintln!(
        "compose cluster led by node {} {:.1} s after the image builds began",
        view.leader_id.unwrap_or_default(),
        started.elapsed().as_secs_f64()
    );
    assert_eq!(view.members.iter().filter(|m| m.voter).count(), 3);
    client.open_account(1, "GBP", "compose-open-1").await.expect("an authenticated write through HAProxy");
    let account = client.account(1).await.expect("the account reads");
    assert_eq!(account.balance_minor, 0);
    // Every node holds it: asked directly, the three agree on a state with it.
    assert!(project.converged().await.accounts >= 1);
    let anonymous = paddock_client::Client::new(vec![url], Duration::from_secs(5)).with_ca_pem(&ca).unwrap();
    let refused = anonymous.account(1).await.expect_err("a request without a key is refused");
    assert!(refused.to_string().contains("401") || refused.to_string().contains("unauthorized"), "{refused}");

    // Prometheus: every node scraped over TLS and up, Paddock's alert rules loaded.
    let prometheus = format!("http://127.0.0.1:{}", project.prometheus_port);
    poll_until("Prometheus to see three nodes up", Duration::from_secs(60), Duration::from_millis(500), async || {
        let results = prometheus_query(&prometheus, "up{job=\"paddock\"}").await?;
        (results.len() == 3 && results.iter().all(|r| r["value"][1] == "1")).then_some(())
    })
    .await;
    let rules: serde_json::Value =
        reqwest::Client::new().get(format!("{prometheus}/api/v1/rules")).send().await.unwrap().json().await.unwrap();
    let text = rules.to_string();
    for alert in ["PaddockNoLeader", "PaddockStorageFailed", "PaddockStorageRepairStuck"] {
        assert!(text.contains(alert), "Prometheus has no rule {alert}: {text}");
    }
    let ps = project.compose_ok(&["ps"]);
    eprintln!("{ps}");
}
