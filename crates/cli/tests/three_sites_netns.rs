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

mod netns;
mod sites;

use netns::{Network, Nodes};
use paddock_client::{Client, RetryPolicy, StaticKeys};
use std::time::{Duration, Instant};

const SITES: [(&str, &[u64]); 3] = [("a", &[1, 2]), ("b", &[3, 4]), ("c", &[5])];
const ACCOUNT: u64 = 1;

fn site_of(id: u64) -> &'static str {
    SITES.iter().find(|(_, members)| members.contains(&id)).expect("every node has a site").0
}

fn client(net: &Network, keys: &StaticKeys, ids: &[u64], timeout: Duration) -> Client {
    Client::new(ids.iter().map(|id| format!("http://{}", net.http(site_of(*id), *id))).collect(), timeout)
        .with_keys(&keys.ring())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn losing_any_one_of_three_sites_each_its_own_network_keeps_a_majority_that_takes_every_write() {
    let net = Network::create("p3s", "10.203.77", &SITES.map(|(site, _)| site));
    let dir = tempfile::tempdir().expect("a run directory");
    let keys = StaticKeys::generate("sites-operator", "sites-service");
    let keys_file = dir.path().join("static-keys");
    std::fs::write(&keys_file, keys.file_text()).expect("the keys file");
    let ids: Vec<u64> = (1..=5).collect();
    let bootstrap = ids.iter().map(|id| format!("{id}={}", net.peer(site_of(*id), *id))).collect::<Vec<_>>().join(",");
    let mut nodes = Nodes::default();
    for id in &ids {
        let (data_dir, log) = (dir.path().join(format!("node-{id}")), dir.path().join(format!("node-{id}.log")));
        let child = net.start_node(site_of(*id), *id, &data_dir, &keys_file, &["--bootstrap", &bootstrap], &log);
        nodes.0.insert(*id, child);
    }
    let all = client(&net, &keys, &ids, Duration::from_secs(5));
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
        let majority = client(&net, &keys, &rest, Duration::from_secs(2));
        acknowledged +=
            sites::majority_takes_every_write(&majority, ACCOUNT, site, cut_at, Duration::from_secs(30)).await;

        // The cut-off site, still reachable from the test, acknowledges nothing.
        let minority = client(&net, &keys, members, Duration::from_secs(2)).with_retry(RetryPolicy {
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
                let one = client(&net, &keys, &[*id], Duration::from_secs(2));
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
