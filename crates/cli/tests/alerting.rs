//! Alerts end to end, with real components: a real Prometheus (Debian package, unpacked into
//! `target/tools` by `xtask/packages.sh`) scrapes a real 3-node cluster with
//! `deploy/prometheus/paddock-alerts.yml` loaded, and a real Alertmanager (Debian package,
//! installed by the same script) routes to a webhook this test serves. Stopping a majority of
//! the nodes must bring `PaddockNoLeader` to the webhook; restarting them must bring its
//! resolution. The times from fault to notification
//! are printed (BENCHMARKS.md). Everything listens on 127.0.0.1; Alertmanager's cluster
//! gossip is switched off.

mod support;

use axum::routing::post;
use axum::Json;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::*;

/// The last lines of the tools' logs and Prometheus's view of its alerts, for a failure.
async fn diagnosis(dir: &Path, prometheus_port: u16) -> String {
    let mut out = String::new();
    for name in ["prometheus.log", "alertmanager.log"] {
        let text = std::fs::read_to_string(dir.join(name)).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        out += &format!("---- {name} ----\n{}\n", lines[lines.len().saturating_sub(15)..].join("\n"));
    }
    let alerts = reqwest::get(format!("http://127.0.0.1:{prometheus_port}/api/v1/alerts")).await;
    let alerts = match alerts {
        Ok(answer) => answer.text().await.unwrap_or_default(),
        Err(e) => e.to_string(),
    };
    out + &format!("---- Prometheus's alerts ----\n{alerts}\n")
}

/// What the webhook received: (when, status, alert names).
type Received = Arc<Mutex<Vec<(Instant, String, Vec<String>)>>>;

async fn serve_webhook(received: Received) -> u16 {
    let app = axum::Router::new().route(
        "/",
        post(move |Json(body): Json<serde_json::Value>| {
            let received = received.clone();
            async move {
                let names = body["alerts"]
                    .as_array()
                    .map(|alerts| {
                        alerts.iter().filter_map(|a| a["labels"]["alertname"].as_str().map(str::to_string)).collect()
                    })
                    .unwrap_or_default();
                let status = body["status"].as_str().unwrap_or_default().to_string();
                received.lock().unwrap().push((Instant::now(), status, names));
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("webhook port");
    let port = listener.local_addr().expect("bound").port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    port
}

/// Waits for a notification with `status` naming `alert`; returns when it arrived, or `None`
/// after `within`.
async fn notified(received: &Received, status: &str, alert: &str, within: Duration) -> Option<Instant> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        let found = received
            .lock()
            .unwrap()
            .iter()
            .find(|(_, s, names)| s == status && names.iter().any(|n| n == alert))
            .map(|r| r.0);
        if found.is_some() {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_without_a_majority_pages_through_prometheus_and_alertmanager_and_resolves_when_it_is_back() {
    let mut cluster = Cluster::start(3, &[]).await;
    let dir = tempfile::tempdir().expect("temporary directory");
    let received: Received = Arc::default();
    let webhook = serve_webhook(received.clone()).await;
    let ports = free_ports(2);
    let (prometheus_port, alertmanager_port) = (ports[0], ports[1]);

    std::fs::write(
        dir.path().join("alertmanager.yml"),
        format!(
            "route:\n  receiver: test\n  group_by: [alertname]\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\n\
             receivers:\n  - name: test\n    webhook_configs:\n      - url: http://127.0.0.1:{webhook}/\n        send_resolved: true\n"
        ),
    )
    .expect("alertmanager.yml");
    let _alertmanager = Running::spawn(
        Command::new(tool("prometheus-alertmanager", "prometheus-alertmanager")).args([
            format!("--config.file={}", dir.path().join("alertmanager.yml").display()),
            format!("--storage.path={}", dir.path().join("am").display()),
            format!("--web.listen-address=127.0.0.1:{alertmanager_port}"),
            // No cluster gossip: it would listen on every interface.
            "--cluster.listen-address=".into(),
        ]),
        &dir.path().join("alertmanager.log"),
    );

    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/prometheus/paddock-alerts.yml");
    let targets: Vec<String> = cluster.ids().into_iter().map(|id| format!("'{}'", cluster.node(id).http)).collect();
    std::fs::write(
        dir.path().join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - '{}'\n\
             alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['127.0.0.1:{alertmanager_port}']\n\
             scrape_configs:\n  - job_name: paddock\n    static_configs:\n      - targets: [{}]\n",
            rules.display(),
            targets.join(", ")
        ),
    )
    .expect("prometheus.yml");
    let _prometheus = Running::spawn(
        Command::new(tool("prometheus", "prometheus")).args([
            format!("--config.file={}", dir.path().join("prometheus.yml").display()),
            format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()),
            format!("--web.listen-address=127.0.0.1:{prometheus_port}"),
        ]),
        &dir.path().join("prometheus.log"),
    );

    // Prometheus sees all three nodes up and a leader before the fault.
    let prometheus = format!("http://127.0.0.1:{prometheus_port}");
    poll_until(
        "Prometheus to scrape the three nodes and see a leader",
        Duration::from_secs(30),
        Duration::from_millis(250),
        async || {
            let query = "count(up{job=\"paddock\"} == 1) == 3 and on() sum(paddock_raft_is_leader) == 1";
            prometheus_query(&prometheus, query).await.is_some_and(|r| !r.is_empty()).then_some(())
        },
    )
    .await;
    assert!(received.lock().unwrap().is_empty(), "a healthy cluster notifies nothing");

    // A majority stops: no leader can be elected.
    let leader = cluster.leader().await;
    let stopped: Vec<u64> = cluster.ids().into_iter().filter(|id| *id != leader).chain([leader]).take(2).collect();
    let fault_at = Instant::now();
    for id in &stopped {
        cluster.kill(*id);
    }
    let Some(fired) = notified(&received, "firing", "PaddockNoLeader", Duration::from_secs(60)).await else {
        panic!("no firing PaddockNoLeader reached the webhook\n{}", diagnosis(dir.path(), prometheus_port).await);
    };

    let restored_at = Instant::now();
    for id in &stopped {
        cluster.restart(*id);
    }
    cluster.wait_ready(&cluster.ids(), Duration::from_secs(30)).await;
    let Some(resolved) = notified(&received, "resolved", "PaddockNoLeader", Duration::from_secs(60)).await else {
        panic!("no resolved PaddockNoLeader reached the webhook\n{}", diagnosis(dir.path(), prometheus_port).await);
    };
    println!(
        "PaddockNoLeader: notified {} ms after a majority stopped; resolved {} ms after the nodes were restarted",
        (fired - fault_at).as_millis(),
        (resolved - restored_at).as_millis()
    );
}
