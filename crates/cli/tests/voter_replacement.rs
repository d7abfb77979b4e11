//! Self-healing membership on real processes (`--replace-voter-pool`, `crates/node/src/heal.rs`):
//! a voter killed for longer than the limit is replaced by a caught-up standby learner without
//! an operator, the cluster keeps taking writes throughout, and the dead node, started again,
//! rejoins as a learner with the book; a voter that comes and goes faster than the limit, or
//! one with no standby to take its place, changes nothing.

use paddock_chaos::cluster::{Cluster, Ports};
use paddock_client::Client;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const AFTER_S: u64 = 3;

/// The harness's clusters use fixed loopback addresses per node id: one cluster at a time.
static ONE_CLUSTER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
const ACCOUNT: u64 = 1;

fn client(cluster: &Cluster, ids: &[u64]) -> Client {
    Client::new(ids.iter().map(|id| cluster.url(*id)).collect(), Duration::from_secs(3)).with_keys(cluster.keys())
}

/// Starts `nodes` nodes, 1-3 the voters and any other a node waiting to be added, every one
/// with `--replace-voter-pool pool` and the test's limit.
fn started(dir: &tempfile::TempDir, nodes: usize, pool: &str) -> Cluster {
    let args: Vec<String> =
        ["--replace-voter-pool", pool, "--replace-voter-after-s", &AFTER_S.to_string()].map(String::from).to_vec();
    let binary = env!("CARGO_BIN_EXE_paddock").as_ref();
    let mut cluster = Cluster::new(binary, dir.path(), nodes, Ports::find(nodes, None).unwrap(), false, &args)
        .with_bootstrap_members(&[1, 2, 3]);
    cluster.start_all().unwrap();
    cluster
}

/// Voters and learners as node `id` sees them, once it answers.
async fn membership(cluster: &Cluster, id: u64) -> Option<(BTreeSet<u64>, BTreeSet<u64>)> {
    let view = cluster.view(id).await?;
    let voters = view.members.iter().filter(|m| m.voter).map(|m| m.node_id).collect();
    let learners = view.members.iter().filter(|m| !m.voter).map(|m| m.node_id).collect();
    Some((voters, learners))
}

/// Deposits 100 into the account every 50 ms, each with its own key, retrying a key until it
/// is acknowledged; stops when told and returns how many were acknowledged.
fn deposit_until(client: Client, stop: Arc<AtomicU64>) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let mut n = 0u64;
        while stop.load(Ordering::SeqCst) == 0 {
            let key = format!("steady-{n}");
            let give_up = Instant::now() + Duration::from_secs(30);
            while let Err(e) = client.deposit(ACCOUNT, 100, &key).await {
                assert!(Instant::now() < give_up, "deposit {key} not acknowledged within 30 s: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            n += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        n
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_voter_is_replaced_by_a_caught_up_standby_and_rejoins_as_a_learner() {
    let _one = ONE_CLUSTER.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = started(&dir, 4, "1,2,3,4");
    cluster.wait_ready(&[1, 2, 3], Duration::from_secs(30)).await.unwrap();
    let all = client(&cluster, &[1, 2, 3, 4]);
    all.open_account(ACCOUNT, "GBP", "open-1").await.expect("the account opens");
    cluster.add_learner(4, &[1, 2, 3], Duration::from_secs(20)).await.expect("the standby joins as a learner");

    let stop = Arc::new(AtomicU64::new(0));
    let writer = deposit_until(all.clone(), stop.clone());
    tokio::time::sleep(Duration::from_secs(1)).await;

    // The leader dies: the new leader counts its silence from when it took over.
    let dead = cluster.leader(Duration::from_secs(10)).await.unwrap();
    cluster.kill(dead).unwrap();
    let killed_at = Instant::now();
    let rest: Vec<u64> = [1, 2, 3, 4].into_iter().filter(|id| *id != dead).collect();
    let expected_voters: BTreeSet<u64> = rest.iter().copied().collect();
    let (healer, healed_after) = loop {
        let leader = cluster.leader(Duration::from_secs(10)).await.unwrap();
        if let Some((voters, learners)) = membership(&cluster, leader).await {
            if voters == expected_voters && learners == BTreeSet::from([dead]) {
                break (leader, killed_at.elapsed());
            }
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(30),
            "30 s after voter {dead} died the membership is {:?}",
            membership(&cluster, leader).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!(
        "voter {dead} killed; standby 4 voting in its place after {} ms (limit {AFTER_S} s)",
        healed_after.as_millis()
    );
    assert!(healed_after >= Duration::from_secs(AFTER_S), "replaced before the limit: {healed_after:?}");

    // Full redundancy: a second failure (another voter killed) is survived.
    let leader = cluster.leader(Duration::from_secs(10)).await.unwrap();
    let second = *rest.iter().find(|id| **id != leader).expect("a follower");
    cluster.kill(second).unwrap();
    let survivors: Vec<u64> = rest.iter().copied().filter(|id| *id != second).collect();
    client(&cluster, &survivors)
        .deposit(ACCOUNT, 100, "after-second-failure")
        .await
        .expect("with the dead voter replaced, the cluster survives a second failure: two of three voters take writes");
    cluster.start(second).unwrap();

    // The dead node comes back: a learner, caught up, not a voter.
    cluster.start(dead).unwrap();
    cluster.wait_caught_up(dead, Duration::from_secs(30)).await.unwrap();
    cluster.wait_caught_up(second, Duration::from_secs(30)).await.unwrap();
    let view = cluster.view(dead).await.expect("the returned node answers");
    assert_eq!(view.role, "learner", "the returned node follows as a learner");
    let leader = cluster.leader(Duration::from_secs(10)).await.unwrap();
    let (voters, learners) = membership(&cluster, leader).await.unwrap();
    assert_eq!((voters, learners), (expected_voters, BTreeSet::from([dead])), "no churn when it returns");

    stop.store(1, Ordering::SeqCst);
    let acknowledged = writer.await.unwrap();
    assert!(acknowledged > 20, "writes went on throughout ({acknowledged})");
    let account = all.account(ACCOUNT).await.unwrap();
    assert_eq!(account.balance_minor, (acknowledged as i64 + 1) * 100, "every acknowledged deposit, once");
    let converging = Instant::now();
    loop {
        let mut hashes = BTreeSet::new();
        for id in [1, 2, 3, 4] {
            hashes.insert(cluster.state_hash(id).await.map(|h| (h.applied_index, h.state_hash)));
        }
        if hashes.len() == 1 && hashes.iter().all(Option::is_some) {
            break;
        }
        assert!(converging.elapsed() < Duration::from_secs(20), "replicas do not converge: {hashes:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // On record: opened with the reason, closed with the result, in the audit trail.
    let incidents = all.incidents().await.unwrap();
    let replaced: Vec<_> = incidents.iter().filter(|i| i.kind == "voter_replaced").collect();
    assert_eq!(replaced.len(), 1, "one replacement, one incident: {replaced:?}");
    assert_eq!(replaced[0].node_id, dead);
    assert!(replaced[0].cause.contains("standby node 4"), "{}", replaced[0].cause);
    let resolution = replaced[0].resolution.as_deref().unwrap_or_default();
    assert!(resolution.contains(&format!("node 4 votes in place of node {dead}")), "{resolution}");
    let counted = client(&cluster, &[healer]).metric("paddock_voter_replacements_total").await.unwrap();
    assert_eq!(counted, Some(1.0), "the leader that replaced the voter counted it");
    cluster.kill_all();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_voter_that_comes_and_goes_or_has_no_standby_changes_nothing() {
    let _one = ONE_CLUSTER.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = started(&dir, 3, "1,2,3");
    cluster.wait_ready(&[1, 2, 3], Duration::from_secs(30)).await.unwrap();
    let all = client(&cluster, &[1, 2, 3]);
    all.open_account(ACCOUNT, "GBP", "open-1").await.expect("the account opens");
    let leader = cluster.leader(Duration::from_secs(10)).await.unwrap();
    let flapper = [1, 2, 3].into_iter().find(|id| *id != leader).unwrap();
    let before = membership(&cluster, leader).await.unwrap();
    let term_before = cluster.view(leader).await.expect("the leader answers").term;

    // Frozen for two thirds of the limit, back for a second, five times over.
    for _ in 0..5 {
        cluster.pause(flapper).unwrap();
        tokio::time::sleep(Duration::from_millis(AFTER_S * 1000 * 2 / 3)).await;
        cluster.resume(flapper).unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // Nor does it depose the leader when it wakes: it asks for a pre-vote first, and the others,
    // still hearing their leader, refuse it.
    let leader_after = cluster.leader(Duration::from_secs(10)).await.unwrap();
    let term_after = cluster.view(leader_after).await.expect("the leader answers").term;
    assert_eq!(
        (leader_after, term_after),
        (leader, term_before),
        "the frozen voter's wake-ups changed the leader or the term"
    );
    assert_eq!(membership(&cluster, leader).await.unwrap(), before, "a node that comes and goes changes nothing");

    // Dead for good, and nobody to take its place: refused, said once, nothing changed. (The
    // pool names only the voters, so no learner can be promoted.)
    let dead = flapper;
    cluster.kill(dead).unwrap();
    let refused = client(&cluster, &[leader]);
    let series = "paddock_voter_replacements_refused_total{reason=\"no_standby\"}";
    let killed_at = Instant::now();
    loop {
        if refused.metric(series).await.unwrap().is_some_and(|n| n >= 1.0) {
            break;
        }
        assert!(killed_at.elapsed() < Duration::from_secs(20), "no refusal counted within 20 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let log = cluster.log_tail(leader, 400);
    assert!(
        log.contains(&format!("voter {dead} has not answered the leader")) && log.contains("paddock members add"),
        "the refusal says what is wrong and what to do:\n{log}"
    );
    assert_eq!(membership(&cluster, leader).await.unwrap(), before, "nothing changed");
    let incidents = all.incidents().await.unwrap();
    assert!(incidents.iter().all(|i| i.kind != "voter_replaced"), "no replacement recorded: {incidents:?}");
    cluster.kill_all();
}
