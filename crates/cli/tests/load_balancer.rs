//! A real HAProxy (the Debian package; `cargo xtask ci` installs it when missing) in front of a
//! real 3-node cluster, configured by `deploy/haproxy/haproxy.cfg` exactly as shipped: clients
//! that talk only to the balancer see errors only while a node fails — frozen, killed, or
//! alive but not ready because its disk is full — the health check ejects the failed node and
//! takes it back once it recovers, and every deposit the balancer acknowledged is in the book.
//!
//! The full disk is a size-limited tmpfs under each node's data directory, so the test runs as
//! root (as CI does; `paddock drill chaos` mounts them the same way).
//!
//! The same file with TLS on both sides (the cluster's CA for the nodes, a certificate of its
//! own for clients): requests and health checks run over HTTPS, plain HTTP gets no answer, and
//! a killed leader is ejected as before.

mod support;

use paddock_chaos::disk::{self, Disks};
use paddock_client::{Client, ClientError, RetryPolicy};
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::*;

/// A running HAProxy (stopped by its PID when dropped) and where to reach it.
struct Haproxy {
    _process: Running,
    url: String,
    stats: String,
}

/// TLS on both sides of the balancer.
struct Tls {
    /// The cluster's CA: HAProxy speaks HTTPS to the nodes and checks their certificates.
    node_ca: PathBuf,
    /// HAProxy's own certificate and key, one PEM file: clients speak HTTPS to it.
    balancer_pem: PathBuf,
}

fn start_haproxy(cluster: &Cluster, tls: Option<Tls>) -> Haproxy {
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/haproxy/haproxy.cfg");
    let ports = free_ports(2);
    let mut command = Command::new(tool("haproxy", "haproxy"));
    command
        .args(["-db", "-f", config])
        .env("PADDOCK_LB_BIND", format!("127.0.0.1:{}", ports[0]))
        .env("PADDOCK_LB_STATS_BIND", format!("127.0.0.1:{}", ports[1]));
    let scheme = match &tls {
        Some(tls) => {
            command.env("PADDOCK_TLS_CA", &tls.node_ca).env("PADDOCK_LB_CERT", &tls.balancer_pem);
            "https"
        }
        None => "http",
    };
    for id in cluster.ids() {
        command.env(format!("PADDOCK_NODE{id}"), cluster.node(id).http.to_string());
    }
    // Next to the nodes' logs.
    let log = cluster.node(1).log_path.with_file_name("haproxy.log");
    Haproxy {
        _process: Running::spawn(&mut command, &log),
        url: format!("{scheme}://127.0.0.1:{}", ports[0]),
        stats: format!("http://127.0.0.1:{}/stats;csv", ports[1]),
    }
}

/// Each node's state in HAProxy's eyes ("UP", "DOWN", ...), from its stats CSV.
async fn balancer_view(lb: &Haproxy) -> Option<Vec<(String, String)>> {
    let csv = reqwest::get(&lb.stats).await.ok()?.text().await.ok()?;
    let header: Vec<&str> = csv.lines().next()?.trim_start_matches("# ").split(',').collect();
    let (name, status) = (header.iter().position(|h| *h == "svname")?, header.iter().position(|h| *h == "status")?);
    Some(
        csv.lines()
            .skip(1)
            .filter(|l| l.starts_with("paddock_nodes,node"))
            .map(|l| l.split(',').collect::<Vec<_>>())
            .map(|f| (f[name].to_string(), f[status].to_string()))
            .collect(),
    )
}

async fn wait_balancer(lb: &Haproxy, node: u64, state: &str, within: Duration) -> Duration {
    let started = Instant::now();
    let server = format!("node{node}");
    poll_until(&format!("HAProxy to see {server} {state}"), within, Duration::from_millis(20), async || {
        let view = balancer_view(lb).await?;
        view.iter().any(|(n, s)| *n == server && s.starts_with(state)).then_some(())
    })
    .await;
    started.elapsed()
}

/// One deposit through the balancer: when it was sent and answered, and how it ended.
struct Sent {
    account: u64,
    sent: Instant,
    done: Instant,
    answer: Result<(), ClientError>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_haproxy_a_frozen_or_killed_node_costs_clients_only_its_failover_and_no_acknowledged_deposit() {
    assert!(disk::is_root(), "this test mounts a small tmpfs as each node's disk: run it as root (CI does)");
    // Declared first, dropped last: the nodes stop before their disks are unmounted.
    let mut disks: Disks;
    let mut cluster = Cluster::unstarted(3, &[]);
    let dirs: Vec<PathBuf> = cluster.ids().into_iter().map(|id| cluster.node(id).data_dir.clone()).collect();
    disks = Disks::mount(&dirs, 64).unwrap_or_else(|e| panic!("cannot mount the nodes' disks: {e:#}"));
    cluster.spawn_all();
    cluster.wait_ready(&cluster.ids(), Duration::from_secs(30)).await;
    let lb = start_haproxy(&cluster, None);
    for id in cluster.ids() {
        wait_balancer(&lb, id, "UP", Duration::from_secs(10)).await;
    }
    let setup = cluster.client();
    let accounts: Vec<u64> = (1..=6).collect();
    for account in &accounts {
        setup.open_account(*account, "GBP", &paddock_client::fresh_key()).await.expect("account opens");
    }

    // Clients that know only the balancer and never retry: every error is one a user saw.
    let client = Client::new(vec![lb.url.clone()], Duration::from_secs(8))
        .with_keys(&cluster.keys().ring())
        .with_retry(RetryPolicy { attempts: 1, backoff: Duration::ZERO, backoff_max: Duration::ZERO });
    let log = Arc::new(Mutex::new(Vec::<Sent>::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut workers = tokio::task::JoinSet::new();
    for account in accounts.clone() {
        let (client, log, stop) = (client.clone(), log.clone(), stop.clone());
        workers.spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::SeqCst) && Instant::now() < deadline {
                let sent = Instant::now();
                let answer = client.deposit(account, 1, &paddock_client::fresh_key()).await.map(|_| ());
                log.lock().unwrap().push(Sent { account, sent, done: Instant::now(), answer });
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    // A frozen follower: its sockets stay open and it answers nothing.
    let leader = cluster.leader().await;
    let follower = cluster.ids().into_iter().find(|id| *id != leader).expect("a follower");
    let frozen_at = Instant::now();
    cluster.pause(follower);
    let ejected_after = wait_balancer(&lb, follower, "DOWN", Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    cluster.resume(follower);
    wait_balancer(&lb, follower, "UP", Duration::from_secs(10)).await;
    let frozen_window = (frozen_at, Instant::now());
    tokio::time::sleep(Duration::from_secs(1)).await;

    // The leader killed.
    let killed_at = Instant::now();
    cluster.kill(leader);
    let survivors: Vec<u64> = cluster.ids().into_iter().filter(|id| *id != leader).collect();
    cluster.wait_leader_among(&survivors, Duration::from_secs(10)).await;
    wait_balancer(&lb, leader, "DOWN", Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    cluster.restart(leader);
    cluster.wait_ready(&cluster.ids(), Duration::from_secs(30)).await;
    wait_balancer(&lb, leader, "UP", Duration::from_secs(10)).await;
    let killed_window = (killed_at, Instant::now());
    tokio::time::sleep(Duration::from_secs(1)).await;

    // A follower's disk fills: its store refuses the next write, Raft stops there and the node
    // answers /health/ready with 503 while its process and port stay up. Freed and restarted,
    // it catches up and comes back.
    let leader = cluster.leader().await;
    let full = cluster.ids().into_iter().find(|id| *id != leader).expect("a follower");
    let full_at = Instant::now();
    let dir = cluster.node(full).data_dir.clone();
    tokio::task::spawn_blocking(move || disk::fill(&dir, 1 << 30)).await.expect("fill task").expect("disk filled");
    let full_ejected_after = wait_balancer(&lb, full, "DOWN", Duration::from_secs(10)).await;
    disk::free(&cluster.node(full).data_dir).expect("disk freed");
    cluster.kill(full);
    cluster.restart(full);
    cluster.wait_ready(&cluster.ids(), Duration::from_secs(30)).await;
    wait_balancer(&lb, full, "UP", Duration::from_secs(10)).await;
    let full_window = (full_at, Instant::now());
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    while workers.join_next().await.is_some() {}

    let log = std::mem::take(&mut *log.lock().unwrap());
    let in_window =
        |s: &Sent, (from, to): (Instant, Instant)| s.done + Duration::from_millis(50) >= from && s.sent <= to;
    let stray: Vec<String> = log
        .iter()
        .filter(|s| {
            s.answer.is_err()
                && !in_window(s, frozen_window)
                && !in_window(s, killed_window)
                && !in_window(s, full_window)
        })
        .map(|s| s.answer.as_ref().unwrap_err().to_string())
        .collect();
    assert!(stray.is_empty(), "errors outside the failures: {}", stray.join("; "));
    let acknowledged = log.iter().filter(|s| s.answer.is_ok()).count();
    assert!(acknowledged > 200, "the load ran throughout ({acknowledged} deposits acknowledged)");
    // The longest stretch without a successful answer after each fault: what a user felt.
    let gap_after = |from: Instant| {
        let mut done: Vec<Instant> = log.iter().filter(|s| s.answer.is_ok()).map(|s| s.done).collect();
        done.sort();
        let before = done.iter().rev().find(|t| **t < from).copied().unwrap_or(from);
        done.iter().filter(|t| **t >= from).fold((Duration::ZERO, before), |(gap, last), t| (gap.max(*t - last), *t)).0
    };
    println!(
        "through HAProxy: frozen follower ejected after {} ms, longest gap {} ms; killed leader: longest gap {} ms; \
         follower with a full disk ejected after {} ms, longest gap {} ms; {acknowledged} deposits acknowledged, {} failed",
        ejected_after.as_millis(),
        gap_after(frozen_at).as_millis(),
        gap_after(killed_at).as_millis(),
        full_ejected_after.as_millis(),
        gap_after(full_at).as_millis(),
        log.len() - acknowledged,
    );

    // Every acknowledged deposit stands; one whose answer was lost may or may not.
    for account in accounts {
        let acked = log.iter().filter(|s| s.account == account && s.answer.is_ok()).count() as i64;
        let unknown = log.iter().filter(|s| s.account == account && s.answer.is_err()).count() as i64;
        let balance = setup.account(account).await.expect("account").balance_minor;
        assert!(
            (acked..=acked + unknown).contains(&balance),
            "account {account}: balance {balance}, {acked} deposits acknowledged and {unknown} unanswered"
        );
    }
    drop(lb);
    for id in cluster.ids() {
        if cluster.is_running(id) {
            cluster.kill(id);
        }
    }
    let left = disks.unmount_all();
    assert!(left.is_empty(), "tmpfs left mounted: {}", left.join("; "));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_haproxy_tls_runs_end_to_end_and_a_killed_node_is_ejected_over_tls_checks() {
    let mut cluster = Cluster::start_tls(3, &[]).await;
    let node_ca = cluster.certs_dir().expect("a TLS cluster").join("ca.pem");
    // HAProxy's own certificate for clients, from a CA of its own (as a site's public one would be).
    let lb_dir = tempfile::tempdir().expect("temporary directory");
    let made = Command::new(env!("CARGO_BIN_EXE_paddock"))
        .args(["certs", "--cluster-id", "balancer", "--nodes", "1", "--host", "127.0.0.1", "--out"])
        .arg(lb_dir.path())
        .output()
        .expect("paddock certs runs");
    assert!(made.status.success(), "paddock certs: {}", String::from_utf8_lossy(&made.stderr));
    let pem = lb_dir.path().join("haproxy.pem");
    let mut joined = std::fs::read(lb_dir.path().join("node-1.pem")).expect("certificate");
    joined.extend(std::fs::read(lb_dir.path().join("node-1.key")).expect("key"));
    std::fs::write(&pem, joined).expect("HAProxy's PEM");
    let lb = start_haproxy(&cluster, Some(Tls { node_ca: node_ca.clone(), balancer_pem: pem }));
    for id in cluster.ids() {
        wait_balancer(&lb, id, "UP", Duration::from_secs(10)).await;
    }
    assert!(lb.url.starts_with("https://"), "clients reach the balancer over HTTPS: {}", lb.url);

    let lb_ca = std::fs::read(lb_dir.path().join("ca.pem")).expect("the balancer's CA");
    let client = Client::new(vec![lb.url.clone()], Duration::from_secs(8))
        .with_keys(&cluster.keys().ring())
        .with_ca_pem(&lb_ca)
        .expect("the CA reads");
    client.open_account(1, "GBP", &paddock_client::fresh_key()).await.expect("an account opens through TLS both ways");
    for _ in 0..20 {
        client.deposit(1, 100, &paddock_client::fresh_key()).await.expect("a deposit through the balancer");
    }
    let plain = reqwest::Client::new().get(lb.url.replace("https://", "http://") + "/health/ready").send().await;
    assert!(!plain.is_ok_and(|r| r.status().is_success()), "plain HTTP gets no answer from the TLS port");

    let leader = cluster.leader().await;
    cluster.kill(leader);
    let ejected_after = wait_balancer(&lb, leader, "DOWN", Duration::from_secs(5)).await;
    let survivors: Vec<u64> = cluster.ids().into_iter().filter(|id| *id != leader).collect();
    cluster.wait_leader_among(&survivors, Duration::from_secs(10)).await;
    let mut answered = 0;
    for _ in 0..40 {
        if client.deposit(1, 100, &paddock_client::fresh_key()).await.is_ok() {
            answered += 1;
        }
    }
    assert_eq!(answered, 40, "after the failover every deposit goes through the balancer again");
    let balance = cluster.client().account(1).await.expect("the account reads");
    assert_eq!(balance.balance_minor, 100 * (20 + answered), "every acknowledged deposit is in the balance");
    println!(
        "TLS behind HAProxy: killed leader {leader} ejected after {} ms over TLS health checks",
        ejected_after.as_millis()
    );
}
