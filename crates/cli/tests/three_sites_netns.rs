//! Voters across three sites, each site a Linux network namespace of its own, as the sites of a
//! real deployment are separate networks (docs/operations.md, "Voters across three sites").
//! `three_sites.rs` cuts sites apart with the chaos harness's TCP proxy, which refuses or resets
//! connections; here a site is cut off by its own packet filter, which drops every packet to and
//! from the other sites without a word, as a failed link or a firewall does — the case where a
//! node learns nothing until its timeouts run out.
//!
//! The test makes its own network and removes it: a namespace per site (`a`, `b`, `c`) and a
//! `core` namespace whose bridge joins them, one veth pair per site, and one from this test's own
//! namespace to the bridge so that it can reach every node (10.203.77.254; the sites are
//! 10.203.77.1–3). Five voters are placed 2 + 2 + 1 — a = {1, 2}, b = {3, 4}, c = {5} — and run
//! as real `paddock start` processes inside their site's namespace (`ip netns exec`). Each site
//! in turn drops every packet to and from the other two sites (iptables in the site's
//! namespace; the test's own address still reaches it). The other sites must elect a leader if
//! they need one and take every write; the cut-off site must acknowledge none; once the filter is
//! lifted, all five converge on one state hash, the write whose outcome the cut left unknown is
//! asked again with its key, and the balance is exactly the sum of the acknowledged deposits,
//! each once. Needs root (namespaces, veths, iptables), as `cargo xtask ci` has.

mod sites;

use paddock_client::{Client, RetryPolicy, StaticKeys};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SITES: [(&str, &[u64]); 3] = [("a", &[1, 2]), ("b", &[3, 4]), ("c", &[5])];
const SUBNET: &str = "10.203.77";
const HOST: &str = "10.203.77.254";
const ACCOUNT: u64 = 1;

/// Runs a command that must succeed (an `ip` or `iptables` call setting the network up).
fn run(program: &str, args: &[&str]) {
    let out = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

/// The test's network: namespaces named after this process, removed (with every veth in them,
/// and so their peers) when dropped.
struct Network {
    prefix: String,
}

impl Network {
    fn ns(&self, site: &str) -> String {
        format!("{}-{site}", self.prefix)
    }

    fn site_ip(index: usize) -> String {
        format!("{SUBNET}.{}", index + 1)
    }

    fn create() -> Network {
        let net = Network { prefix: format!("p3s{}", std::process::id()) };
        let core = net.ns("core");
        run("ip", &["netns", "add", &core]);
        run("ip", &["-n", &core, "link", "set", "lo", "up"]);
        run("ip", &["-n", &core, "link", "add", "br0", "type", "bridge"]);
        run("ip", &["-n", &core, "link", "set", "br0", "up"]);
        for (index, (site, _)) in SITES.iter().enumerate() {
            let ns = net.ns(site);
            let (inside, outside) = (format!("{}{site}0", net.prefix), format!("{}{site}1", net.prefix));
            run("ip", &["netns", "add", &ns]);
            run("ip", &["-n", &ns, "link", "set", "lo", "up"]);
            run("ip", &["link", "add", &inside, "type", "veth", "peer", "name", &outside]);
            run("ip", &["link", "set", &inside, "netns", &ns]);
            run("ip", &["link", "set", &outside, "netns", &core]);
            run("ip", &["-n", &ns, "link", "set", &inside, "name", "eth0"]);
            run("ip", &["-n", &ns, "addr", "add", &format!("{}/24", Network::site_ip(index)), "dev", "eth0"]);
            run("ip", &["-n", &ns, "link", "set", "eth0", "up"]);
            run("ip", &["-n", &core, "link", "set", &outside, "master", "br0", "up"]);
        }
        // This test's own way in, from the namespace it runs in.
        let (host, bridge_side) = (format!("{}h0", net.prefix), format!("{}h1", net.prefix));
        run("ip", &["link", "add", &host, "type", "veth", "peer", "name", &bridge_side]);
        run("ip", &["link", "set", &bridge_side, "netns", &core]);
        run("ip", &["-n", &core, "link", "set", &bridge_side, "master", "br0", "up"]);
        run("ip", &["addr", "add", &format!("{HOST}/24"), "dev", &host]);
        run("ip", &["link", "set", &host, "up"]);
        net
    }

    /// Drops every packet between `site` and the other sites, both ways; the test's own address
    /// still gets through.
    fn cut(&self, site: &str) {
        let ns = self.ns(site);
        let others = format!("{SUBNET}.0/24");
        for (chain, dir, addr) in [("INPUT", "-i", "-s"), ("OUTPUT", "-o", "-d")] {
            run("ip", &["netns", "exec", &ns, "iptables", "-A", chain, dir, "eth0", addr, HOST, "-j", "ACCEPT"]);
            run("ip", &["netns", "exec", &ns, "iptables", "-A", chain, dir, "eth0", addr, &others, "-j", "DROP"]);
        }
    }

    fn heal(&self, site: &str) {
        let ns = self.ns(site);
        for chain in ["INPUT", "OUTPUT"] {
            run("ip", &["netns", "exec", &ns, "iptables", "-F", chain]);
        }
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        // The test's own end of the bridge first: the kernel removes a namespace's devices
        // only once nothing holds it, so a veth pair would otherwise linger a moment.
        let _ = Command::new("ip").args(["link", "del", &format!("{}h0", self.prefix)]).status();
        for site in ["a", "b", "c", "core"] {
            let _ = Command::new("ip").args(["netns", "del", &self.ns(site)]).status();
        }
    }
}

/// The nodes, stopped by PID when dropped (before the network goes).
struct Nodes(Vec<Child>);

impl Drop for Nodes {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn site_of(id: u64) -> usize {
    SITES.iter().position(|(_, members)| members.contains(&id)).expect("every node has a site")
}

fn http(id: u64) -> String {
    format!("{}:{}", Network::site_ip(site_of(id)), 7000 + id)
}

fn peer(id: u64) -> String {
    format!("{}:{}", Network::site_ip(site_of(id)), 7100 + id)
}

fn client(keys: &StaticKeys, ids: &[u64], timeout: Duration) -> Client {
    Client::new(ids.iter().map(|id| format!("http://{}", http(*id))).collect(), timeout).with_keys(&keys.ring())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn losing_any_one_of_three_sites_each_its_own_network_keeps_a_majority_that_takes_every_write() {
    let net = Network::create();
    let dir = tempfile::tempdir().expect("a run directory");
    let keys = StaticKeys::generate("sites-operator", "sites-service");
    let keys_file = dir.path().join("static-keys");
    std::fs::write(&keys_file, keys.file_text()).expect("the keys file");
    let ids: Vec<u64> = (1..=5).collect();
    let bootstrap = ids.iter().map(|id| format!("{id}={}", peer(*id))).collect::<Vec<_>>().join(",");
    let mut nodes = Nodes(Vec::new());
    for id in &ids {
        let log = std::fs::File::create(dir.path().join(format!("node-{id}.log"))).expect("a log file");
        let child = Command::new("ip")
            .args(["netns", "exec", &net.ns(SITES[site_of(*id)].0)])
            .arg(env!("CARGO_BIN_EXE_paddock"))
            .arg("start")
            .args(["--node-id", &id.to_string()])
            .arg("--data-dir")
            .arg(dir.path().join(format!("node-{id}")))
            .args(["--http", &http(*id), "--peer", &peer(*id), "--bootstrap", &bootstrap])
            .arg("--static-keys")
            .arg(&keys_file)
            // Plain HTTP on the test's own network: no TLS to set up in five namespaces.
            .arg("--insecure-plaintext")
            .env("RUST_LOG", "info,openraft=warn,h2=warn,tower=warn,hyper=warn")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("a log handle"))
            .stderr(log)
            .spawn()
            .expect("a node starts in its site's namespace");
        nodes.0.push(child);
    }
    let all = client(&keys, &ids, Duration::from_secs(5));
    let started = Instant::now();
    while all.open_account(ACCOUNT, "GBP", "open-1").await.is_err() {
        assert!(started.elapsed() < Duration::from_secs(60), "the five nodes did not take a write within 60 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut acknowledged = 0i64;

    for (site, members) in SITES {
        let rest: Vec<u64> = ids.iter().copied().filter(|id| !members.contains(id)).collect();
        net.cut(site);
        let cut_at = Instant::now();

        // The other two sites: a majority, which goes on (after an election if the leader was
        // in the lost site, found only when its heartbeats stop arriving).
        let majority = client(&keys, &rest, Duration::from_secs(2));
        acknowledged +=
            sites::majority_takes_every_write(&majority, ACCOUNT, site, cut_at, Duration::from_secs(30)).await;

        // The cut-off site, still reachable from the test, acknowledges nothing.
        let minority = client(&keys, members, Duration::from_secs(2)).with_retry(RetryPolicy {
            attempts: 1,
            backoff: Duration::from_millis(1),
            backoff_max: Duration::from_millis(1),
        });
        let cut_off_key = format!("site-{site}-cut-off");
        let refused = minority.deposit(ACCOUNT, 1_000_000, &cut_off_key).await;
        assert!(refused.is_err(), "the cut-off site {site} acknowledged a write");

        net.heal(site);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut hashes = Vec::new();
            for id in &ids {
                let one = client(&keys, &[*id], Duration::from_secs(2));
                hashes.push(one.state_hash().await.ok().map(|h| (h.applied_index, h.state_hash)));
            }
            if hashes.iter().all(|h| h.is_some() && *h == hashes[0]) {
                break;
            }
            assert!(Instant::now() < deadline, "after site {site} came back the nodes did not converge");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Unlike a refused connection, a dropped packet leaves the cut-off site's write in
        // flight: a follower there still holds it for the leader, and it may reach the leader
        // once the link heals, after the client gave up on it. Its outcome was unknown, so the
        // client asks again with the same key, as every client must: the answer is the one
        // deposit, applied once, whenever that was.
        majority
            .deposit(ACCOUNT, 1_000_000, &cut_off_key)
            .await
            .unwrap_or_else(|e| panic!("site {site}: the retried write with its key failed: {e}"));
        acknowledged += 1_000_000;
        let balance = all.account(ACCOUNT).await.expect("the account reads").balance_minor;
        assert_eq!(balance, acknowledged, "after site {site}: every acknowledged deposit once and nothing else");
    }
    drop(nodes);
    drop(net);
}
