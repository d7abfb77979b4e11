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

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use support::*;

/// The compose project, its environment and images: torn down on drop.
struct Project {
    name: String,
    env: Vec<(String, String)>,
    images: Vec<String>,
    root: PathBuf,
}

impl Project {
    fn compose(&self, args: &[&str]) -> std::process::Output {
        Command::new("docker-compose")
            .args(["-p", &self.name, "-f"])
            .arg(self.root.join("deploy/compose.yaml"))
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .expect("docker-compose runs")
    }

    fn compose_ok(&self, args: &[&str]) -> String {
        let out = self.compose(args);
        assert!(
            out.status.success(),
            "docker-compose {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let logs = self.compose(&["logs", "--no-color", "--tail", "30"]);
            eprintln!("{}", String::from_utf8_lossy(&logs.stdout));
        }
        let _ = self.compose(&["down", "-v", "--timeout", "10"]);
        for image in &self.images {
            let _ = Command::new("docker").args(["image", "rm", "-f", image]).output();
        }
    }
}

fn run_script(root: &Path, args: &[&str]) {
    let out = Command::new("bash").args(args).current_dir(root).output().expect("bash runs");
    assert!(
        out.status.success(),
        "{} failed: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_compose_up_brings_up_an_authenticated_cluster_behind_haproxy_with_prometheus() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap();
    let suffix = format!("test-{}", std::process::id());
    let secrets = tempfile::tempdir().unwrap();
    let ports = free_ports(2);
    let project = Project {
        name: format!("paddock-test-{}", std::process::id()),
        env: vec![
            ("PADDOCK_IMAGE".into(), format!("paddock:{suffix}")),
            ("PADDOCK_HAPROXY_IMAGE".into(), format!("paddock-haproxy:{suffix}")),
            ("PADDOCK_PROMETHEUS_IMAGE".into(), format!("paddock-prometheus:{suffix}")),
            ("PADDOCK_SECRETS".into(), secrets.path().display().to_string()),
            ("PADDOCK_LB_PORT".into(), ports[0].to_string()),
            ("PADDOCK_PROMETHEUS_PORT".into(), ports[1].to_string()),
        ],
        images: ["paddock", "paddock-haproxy", "paddock-prometheus"].iter().map(|i| format!("{i}:{suffix}")).collect(),
        root: root.clone(),
    };
    let started = Instant::now();
    run_script(&root, &["xtask/image.sh", "--binary", env!("CARGO_BIN_EXE_paddock"), "--all", "--suffix", &suffix]);
    let out = secrets.path().display().to_string();
    run_script(&root, &["xtask/compose.sh", "setup", "--binary", env!("CARGO_BIN_EXE_paddock"), "--out", &out]);
    project.compose_ok(&["up", "-d"]);

    // Through HAProxy, over TLS checked against the cluster's CA, with the operator's key.
    let ca = std::fs::read(secrets.path().join("ca.pem")).unwrap();
    let key = std::fs::read_to_string(secrets.path().join("operator.key")).unwrap().trim().to_string();
    let url = format!("https://127.0.0.1:{}", ports[0]);
    let client = paddock_client::Client::new(vec![url.clone()], Duration::from_secs(5))
        .with_ca_pem(&ca)
        .expect("the CA loads")
        .with_keys(&[(paddock_api::Role::Operator, key)]);
    let view =
        poll_until("a leader through HAProxy", Duration::from_secs(60), Duration::from_millis(250), async || {
            client.cluster().await.ok().filter(|v| v.leader_id.is_some())
        })
        .await;
    eprintln!("compose cluster led by node {:?} {:?} after `up`", view.leader_id, started.elapsed());
    assert_eq!(view.members.iter().filter(|m| m.voter).count(), 3);
    client.open_account(1, "GBP", "compose-open-1").await.expect("an authenticated write through HAProxy");
    // Every node holds it: read from each through HAProxy until all three have answered.
    let account = client.account(1).await.expect("the account reads");
    assert_eq!(account.balance_minor, 0);
    let anonymous = paddock_client::Client::new(vec![url], Duration::from_secs(5)).with_ca_pem(&ca).unwrap();
    let refused = anonymous.account(1).await.expect_err("a request without a key is refused");
    assert!(refused.to_string().contains("401") || refused.to_string().contains("unauthorized"), "{refused}");

    // Prometheus: every node scraped over TLS and up, Paddock's alert rules loaded.
    let prometheus = format!("http://127.0.0.1:{}", ports[1]);
    let http = reqwest::Client::new();
    poll_until("Prometheus to see three nodes up", Duration::from_secs(60), Duration::from_millis(500), async || {
        let body: serde_json::Value = http
            .get(format!("{prometheus}/api/v1/query?query=up%7Bjob%3D%22paddock%22%7D"))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let results = body["data"]["result"].as_array()?;
        (results.len() == 3 && results.iter().all(|r| r["value"][1] == "1")).then_some(())
    })
    .await;
    let rules: serde_json::Value =
        http.get(format!("{prometheus}/api/v1/rules")).send().await.unwrap().json().await.unwrap();
    let text = rules.to_string();
    for alert in ["PaddockNoLeader", "PaddockStorageFailed", "PaddockStorageRepairStuck"] {
        assert!(text.contains(alert), "Prometheus has no rule {alert}: {text}");
    }
    let ps = project.compose_ok(&["ps"]);
    eprintln!("{ps}");
}
