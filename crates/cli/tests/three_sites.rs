//! Voters across three sites, so that losing any one keeps a majority (docs/operations.md,
//! "Disaster recovery"): five voters as 2 + 2 + 1 — sites A = {1, 2}, B = {3, 4}, C = {5} —
//! every peer link through the chaos harness's proxy. Each site in turn is cut off from the
//! other two (every link both ways, the site's nodes still running). The other sites elect a
//! leader if they need one and take every write; the cut-off site acknowledges none; once the
//! links heal, all five converge on one state hash, and the balance is exactly the sum of the
//! acknowledged deposits — none lost, none from the cut-off site applied behind the client's
//! back.

mod sites;

use paddock_chaos::cluster::{Cluster, Ports};
use paddock_chaos::proxy::{Partition, Proxy, Route};
use paddock_client::{Client, RetryPolicy};
use std::time::{Duration, Instant};

const SITES: [(&str, &[u64]); 3] = [("A", &[1, 2]), ("B", &[3, 4]), ("C", &[5])];
const ACCOUNT: u64 = 1;

fn client(cluster: &Cluster, ids: &[u64], timeout: Duration) -> Client {
    Client::new(ids.iter().map(|id| cluster.url(*id)).collect(), timeout).with_keys(cluster.keys())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn losing_any_one_of_three_sites_keeps_a_majority_that_takes_every_write() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster =
        Cluster::new(env!("CARGO_BIN_EXE_paddock").as_ref(), dir.path(), 5, Ports::find(5, None).unwrap(), true, &[]);
    let ids = cluster.ids();
    let partition = Partition::new(ids.clone());
    let routes: Vec<Route> = ids
        .iter()
        .map(|id| Route { node: *id, listen: cluster.spec(*id).advertise, upstream: cluster.spec(*id).peer })
        .collect();
    let _proxy = Proxy::start(&routes, partition.clone()).await.unwrap();
    cluster.start_all().unwrap();
    cluster.wait_ready(&ids, Duration::from_secs(30)).await.unwrap();
    let all = client(&cluster, &ids, Duration::from_secs(5));
    all.open_account(ACCOUNT, "GBP", "open-1").await.expect("the account opens");
    let mut acknowledged = 0i64;

    for (site, members) in SITES {
        let rest: Vec<u64> = ids.iter().copied().filter(|id| !members.contains(id)).collect();
        partition.split(&rest, members);
        let cut_at = Instant::now();

        // The other two sites: a majority, which goes on (after an election if the leader
        // was in the lost site).
        let majority = client(&cluster, &rest, Duration::from_secs(2));
        acknowledged +=
            sites::majority_takes_every_write(&majority, ACCOUNT, site, cut_at, Duration::from_secs(20)).await;

        // The cut-off site acknowledges nothing.
        let minority = client(&cluster, members, Duration::from_secs(2)).with_retry(RetryPolicy {
            attempts: 1,
            backoff: Duration::from_millis(1),
            backoff_max: Duration::from_millis(1),
        });
        let refused = minority.deposit(ACCOUNT, 1_000_000, &format!("site-{site}-cut-off")).await;
        assert!(refused.is_err(), "the cut-off site {site} acknowledged a write: {refused:?}");

        partition.heal();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut hashes = Vec::new();
            for id in &ids {
                hashes.push(cluster.state_hash(*id).await.map(|h| (h.applied_index, h.state_hash)));
            }
            if hashes.iter().all(|h| h.is_some() && *h == hashes[0]) {
                break;
            }
            assert!(Instant::now() < deadline, "after site {site} came back the nodes did not converge: {hashes:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let balance = all.account(ACCOUNT).await.expect("the account reads").balance_minor;
        assert_eq!(balance, acknowledged, "after site {site}: every acknowledged deposit and nothing else");
    }
}
