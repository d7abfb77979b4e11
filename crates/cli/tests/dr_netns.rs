//! Disaster recovery across two sites, each a Linux network namespace of its own (the issue's
//! "a DR replica in another site, in tests its own network namespace"), driven as an operator
//! drives it: `paddock members add`, `paddock dr promote`, `paddock start`, `paddock dr
//! failback`. `dr.rs` runs the same story as `paddock drill dr`, through the chaos harness's
//! proxy on loopback; here the link between the sites fails by dropping every packet, so the
//! standby learns nothing until its lag says so.
//!
//! The primary site `p` holds voters 1–3, the standby site `d` learner 4 (`netns::Network`).
//! Deposits of one unit each go to the primary; the standby catches up; then the link between
//! the sites is cut and deposits of a thousand go on at the primary, which needs no standby to
//! commit. The standby's `paddock_replica_lag_seconds` must grow through the cut. Then the
//! primary site is lost (kill -9), the standby is stopped and promoted into a new cluster: its
//! book must hold exactly the deposits from before the cut, and the entries the primary
//! committed past the promoted index — read from the lost nodes' directories, the RPO in
//! entries — must cover every deposit from the cut. The promoted site takes deposits of a
//! million; the primary site comes back on empty directories and `paddock dr failback` hands
//! service back while deposits go on; then the standby site is lost too, and the primary site
//! must hold every deposit the promoted site acknowledged. Needs root, as `cargo xtask ci` has.

mod netns;

use netns::{Network, Nodes};
use paddock_client::{Client, StaticKeys};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const PRIMARY: [u64; 3] = [1, 2, 3];
const STANDBY: u64 = 4;
const ACCOUNT: u64 = 1;
const DR_CLUSTER: &str = "paddock-dr";

fn site(id: u64) -> &'static str {
    if PRIMARY.contains(&id) {
        "p"
    } else {
        "d"
    }
}

struct Sites {
    net: Network,
    keys: StaticKeys,
    keys_file: std::path::PathBuf,
    dir: std::path::PathBuf,
}

impl Sites {
    fn http(&self, id: u64) -> String {
        self.net.http(site(id), id)
    }

    fn peer(&self, id: u64) -> String {
        self.net.peer(site(id), id)
    }

    fn members(&self, ids: &[u64]) -> String {
        ids.iter().map(|id| format!("{id}={}", self.peer(*id))).collect::<Vec<_>>().join(",")
    }

    fn client(&self, ids: &[u64]) -> Client {
        Client::new(ids.iter().map(|id| format!("http://{}", self.http(*id))).collect(), Duration::from_secs(3))
            .with_keys(&self.keys.ring())
    }

    /// `paddock start` of node `id` in its site on `data_dir`, with `identity` (`--bootstrap`
    /// or `--cluster-id`).
    fn start(&self, nodes: &mut Nodes, id: u64, data_dir: &Path, identity: &[&str]) {
        let log = self.dir.join(format!("node-{id}.log"));
        nodes.0.insert(id, self.net.start_node(site(id), id, data_dir, &self.keys_file, identity, &log));
    }

    /// `paddock <args>` as an operator runs it from the test's own network, with the operator's
    /// key, against `node`.
    fn paddock(&self, node: u64, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_paddock"))
            .args(args)
            .env("PADDOCK_NODE", format!("http://{}", self.http(node)))
            .env("PADDOCK_KEY", self.keys.operator.expose())
            .output()
            .expect("paddock runs")
    }

    fn dir_of(&self, name: &str) -> std::path::PathBuf {
        self.dir.join(name)
    }

    /// The last lines of every node's log, for a failure message: the run directory goes with
    /// the test.
    fn log_tails(&self) -> String {
        let mut out = String::new();
        for id in PRIMARY.iter().chain([&STANDBY]) {
            let log = std::fs::read_to_string(self.dir.join(format!("node-{id}.log"))).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            out += &format!("--- node {id}'s log ends:\n{}\n", lines[lines.len().saturating_sub(30)..].join("\n"));
        }
        out
    }
}

/// Deposits `amount` with `key` until it is acknowledged, asking again with the same key while
/// the outcome is unknown or the cluster has no leader; within `within`.
async fn deposit(client: &Client, amount: i64, key: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        match client.deposit(ACCOUNT, amount, key).await {
            Ok(_) => return,
            Err(e) => assert!(Instant::now() < deadline, "deposit {key} was not acknowledged within {within:?}: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn metric(client: &Client, series: &str) -> f64 {
    client.metric(series).await.expect("metrics read").unwrap_or_else(|| panic!("no {series}"))
}

fn json(out: &std::process::Output, what: &str) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{what} printed no JSON: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_standby_site_in_its_own_network_takes_over_when_the_primary_is_lost_and_hands_every_bet_back() {
    let dir = tempfile::tempdir().expect("a run directory");
    let keys = StaticKeys::generate("dr-operator", "dr-service");
    let keys_file = dir.path().join("static-keys");
    std::fs::write(&keys_file, keys.file_text()).expect("the keys file");
    let sites =
        Sites { net: Network::create("pdr", "10.203.78", &["p", "d"]), keys, keys_file, dir: dir.path().to_path_buf() };
    let mut nodes = Nodes::default();
    let bootstrap = sites.members(&PRIMARY);
    for id in PRIMARY {
        sites.start(&mut nodes, id, &sites.dir_of(&format!("node-{id}")), &["--bootstrap", &bootstrap]);
    }
    // The standby starts with no bootstrap list: it waits to be added.
    sites.start(&mut nodes, STANDBY, &sites.dir_of("node-4"), &[]);
    let primary = sites.client(&PRIMARY);
    let started = Instant::now();
    while let Err(e) = primary.open_account(ACCOUNT, "GBP", "open-1").await {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the primary site did not take a write within 60 s: {e}\n{}",
            sites.log_tails()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let started = Instant::now();
    loop {
        let out = sites.paddock(1, &["members", "add", "--id", "4", "--peer", &sites.peer(STANDBY)]);
        if out.status.success() {
            break;
        }
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(started.elapsed() < Duration::from_secs(30), "the standby was not added within 30 s: {err}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Business before the link fails, and the standby in step with it.
    for i in 0..50 {
        deposit(&primary, 1, &format!("before-{i}"), Duration::from_secs(10)).await;
    }
    let standby = sites.client(&[STANDBY]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let leader_hash = sites.client(&[1]).state_hash().await.expect("node 1's state hash");
    loop {
        let hash = standby.state_hash().await.expect("the standby's state hash");
        if hash.applied_index >= leader_hash.applied_index {
            break;
        }
        assert!(Instant::now() < deadline, "the standby did not catch up within 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(standby.account(ACCOUNT).await.expect("the standby reads").balance_minor, 50);
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(&standby, "paddock_replica_lag_entries").await > 0.0 {
        assert!(Instant::now() < deadline, "a standby in step reports entries behind for 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The link between the sites fails; the primary needs no standby to commit.
    sites.net.cut("d");
    let cut_at = Instant::now();
    for i in 0..20 {
        deposit(&primary, 1_000, &format!("during-cut-{i}"), Duration::from_secs(10)).await;
    }
    tokio::time::sleep(Duration::from_secs(2).saturating_sub(cut_at.elapsed())).await;
    let lag_seconds = metric(&standby, "paddock_replica_lag_seconds").await;
    let since_cut = cut_at.elapsed().as_secs_f64();
    assert!(
        lag_seconds >= since_cut - 0.5,
        "the standby heard nothing for {since_cut:.1} s and reports a lag of {lag_seconds:.1} s"
    );

    // The primary site is lost.
    let lost_at = Instant::now();
    for id in PRIMARY {
        nodes.kill(id);
    }
    // Promotion: the standby, stopped, seeds the only voter of a new cluster.
    assert!(nodes.terminate(STANDBY), "the standby did not stop within 30 s of SIGTERM\n{}", sites.log_tails());
    let promoted_dir = sites.dir_of("node-4-dr");
    let out = Command::new(env!("CARGO_BIN_EXE_paddock"))
        .args(["dr", "promote", "--from"])
        .arg(sites.dir_of("node-4"))
        .arg("--data-dir")
        .arg(&promoted_dir)
        .args(["--cluster-id", DR_CLUSTER, "--node-id", "4", "--bootstrap", &sites.members(&[STANDBY])])
        .output()
        .expect("paddock runs");
    let promoted = json(&out, "paddock dr promote");
    let promoted_index = promoted["promoted_to_index"].as_u64().expect("the promoted index");
    sites.start(&mut nodes, STANDBY, &promoted_dir, &["--cluster-id", DR_CLUSTER]);
    deposit(&standby, 1_000_000, "promoted-first", Duration::from_secs(60)).await;
    let rto = lost_at.elapsed();
    eprintln!("the standby site took its first deposit {} ms after the primary site was lost", rto.as_millis());

    // The RPO, exactly: the promoted book holds every deposit from before the cut and none
    // from after it, and the primary had committed an entry for each of those past the point.
    let balance = standby.account(ACCOUNT).await.expect("the promoted site reads").balance_minor;
    assert_eq!(balance, 50 + 1_000_000, "the promoted book is the book at the cut, plus its own deposit");
    let committed = PRIMARY
        .iter()
        .map(|id| paddock_backup::dr::committed_index(&sites.dir_of(&format!("node-{id}"))).expect("a lost node's log"))
        .max()
        .expect("three nodes");
    assert!(
        committed >= promoted_index + 20,
        "the primary committed {committed}, the standby was promoted at {promoted_index}: \
         20 deposits were lost with the site"
    );

    // Failback: the primary site returns empty, as members of the new cluster, and takes
    // service back while deposits go on.
    sites.net.heal("d");
    for id in PRIMARY {
        let data_dir = sites.dir_of(&format!("node-{id}-back"));
        sites.start(&mut nodes, id, &data_dir, &["--cluster-id", DR_CLUSTER]);
    }
    let site_arg = sites.members(&PRIMARY);
    let failback = {
        let (node, key) = (format!("http://{}", sites.http(STANDBY)), sites.keys.operator.expose());
        tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_paddock"))
                .args(["dr", "failback", "--site", &site_arg, "--catch-up-timeout-s", "60"])
                .env("PADDOCK_NODE", node)
                .env("PADDOCK_KEY", key)
                .output()
                .expect("paddock runs")
        })
    };
    let everyone = sites.client(&[STANDBY, 1, 2, 3]);
    let mut after_promotion = 1_000_000i64;
    let mut i = 0;
    while !failback.is_finished() {
        deposit(&everyone, 1_000_000, &format!("failback-{i}"), Duration::from_secs(60)).await;
        after_promotion += 1_000_000;
        i += 1;
        assert!(i < 10_000, "failback did not finish within 10,000 deposits");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let report = json(&failback.await.expect("failback ran"), "paddock dr failback");
    eprintln!("failback under {i} deposits: {report}");

    // The standby site is lost too: the primary site alone holds everything acknowledged.
    nodes.kill(STANDBY);
    let back = sites.client(&PRIMARY);
    let deadline = Instant::now() + Duration::from_secs(30);
    let balance = loop {
        match back.account(ACCOUNT).await {
            Ok(account) => break account.balance_minor,
            Err(e) => assert!(Instant::now() < deadline, "the primary site does not serve after failback: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(balance, 50 + after_promotion, "every deposit acknowledged since the promotion is in the primary site");
    drop(nodes);
}
