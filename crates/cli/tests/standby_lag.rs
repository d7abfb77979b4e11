//! A standby's own lag (`paddock_replica_lag_seconds`, the input of `PaddockReplicaLagging`)
//! on real processes: a learner in step reads well under a second; once every link to it is
//! cut (the nodes still running, writes going on at the primary) its lag grows with the time
//! since the cut although it cannot know what it misses, and the leader sees it fall behind;
//! once the links heal it is back in step.

use paddock_chaos::cluster::{Cluster, Ports};
use paddock_chaos::proxy::{Partition, Proxy};
use paddock_client::Client;
use std::time::{Duration, Instant};

const STANDBY: u64 = 4;
const PRIMARY: [u64; 3] = [1, 2, 3];

/// One series of a node's `/metrics`.
async fn metric(cluster: &Cluster, id: u64, series: &str) -> f64 {
    let client = Client::new(vec![cluster.url(id)], Duration::from_secs(2)).with_keys(cluster.keys());
    client.metric(series).await.expect("metrics answer").unwrap_or_else(|| panic!("node {id} exports no {series}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_standby_cut_off_from_its_leader_reports_a_lag_that_grows_with_the_time_since() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster =
        Cluster::new(env!("CARGO_BIN_EXE_paddock").as_ref(), dir.path(), 4, Ports::find(4, None).unwrap(), true, &[])
            .with_bootstrap_members(&PRIMARY);
    let partition = Partition::new(cluster.ids());
    let _proxy = Proxy::start(&cluster.proxy_routes(), partition.clone()).await.unwrap();
    cluster.start_all().unwrap();
    cluster.wait_ready(&PRIMARY, Duration::from_secs(30)).await.unwrap();
    let primary = Client::new(PRIMARY.iter().map(|id| cluster.url(*id)).collect(), Duration::from_secs(5))
        .with_keys(cluster.keys());
    primary.open_account(1, "GBP", "open-1").await.expect("the account opens");
    cluster.add_learner(STANDBY, &PRIMARY, Duration::from_secs(20)).await.expect("the standby joins as a learner");
    let in_step = metric(&cluster, STANDBY, "paddock_replica_lag_seconds").await;
    assert!(in_step < 1.0, "a standby in step lags {in_step} s");

    partition.split(&PRIMARY, &[STANDBY]);
    let cut_at = Instant::now();
    for n in 0..50 {
        primary.deposit(1, 100, &format!("while-cut-{n}")).await.expect("the primary takes writes");
    }
    tokio::time::sleep(Duration::from_secs(3).saturating_sub(cut_at.elapsed())).await;
    let cut_for = cut_at.elapsed().as_secs_f64();
    let lag = metric(&cluster, STANDBY, "paddock_replica_lag_seconds").await;
    assert!(lag >= cut_for - 1.0 && lag <= cut_for + 1.0, "cut off for {cut_for:.1} s, the standby reports {lag} s");
    let leader = cluster.leader(Duration::from_secs(10)).await.unwrap();
    let behind = metric(&cluster, leader, "paddock_raft_replication_lag_entries{follower=\"4\"}").await;
    assert!(behind >= 50.0, "the leader sees the standby {behind} entries behind");

    partition.heal();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let lag = metric(&cluster, STANDBY, "paddock_replica_lag_seconds").await;
        if lag < 1.0 {
            break;
        }
        assert!(Instant::now() < deadline, "15 s after the links healed the standby still lags {lag} s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
