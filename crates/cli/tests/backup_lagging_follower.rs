//! A backup log taken from a follower holds every bet the leader had acknowledged when it was
//! asked. `GET /v1/backup/log` and a node's scheduled backups used to serve entries up to the
//! serving node's own commit index. A follower whose commit index lagged the leader's could
//! therefore hand out an increment that ended before bets the leader had already acknowledged,
//! and a restore from that chain lost them. The restore drill caught this twice. Since commit
//! 7288b97, `Consensus::backup_log` first runs a read-index barrier. A node that cannot confirm
//! the cluster's commit point answers 503 `unavailable` with a Retry-After header instead.
//!
//! The test runs real processes through the chaos harness's proxy. It blocks the leader→follower
//! link only, so no appends and no commit index reach the follower, but the follower can still
//! ask the leader for a read index. The leader then acknowledges bets, and the test asks the
//! follower for its backup log twice: once while the link is blocked and again after it heals.

mod support;

use paddock_api::{ErrorBody, Role};
use paddock_chaos::cluster::{Cluster, Ports};
use paddock_chaos::proxy::{Partition, Proxy};
use paddock_client::Client;
use std::time::{Duration, Instant};
use support::{open_funded, seed_market, single};

const ACCOUNT: u64 = 1;
const MARKET: u64 = 1;
const BETS: u64 = 3;

/// A node's answer to `GET /v1/backup/log?from=1` (one page of the largest size, which holds
/// this test's whole log).
enum BackupLog {
    /// 200: the log indexes of the entries served, in the order they were served.
    Served(Vec<u64>),
    /// 503 `unavailable`: the node could not confirm the cluster's commit point.
    Unavailable {
        /// The Retry-After header in seconds, if the answer had one.
        retry_after_s: Option<u64>,
        /// The error's message.
        message: String,
    },
}

/// Asks node `id` for its backup log from index 1, once, with the harness's operator key.
/// Fails the test on any answer other than 200 or 503 `unavailable`. Not through
/// `Client::get_bytes`, which `paddock backup` uses: the test reads the Retry-After header, which
/// the client's error leaves out.
async fn backup_log(cluster: &Cluster, id: u64) -> BackupLog {
    let operator = cluster
        .keys()
        .iter()
        .find(|(role, _)| *role == Role::Operator)
        .map(|(_, key)| key.clone())
        .expect("the harness holds an operator key");
    // Longer than the node's barrier may wait (its write timeout, 5 s by default) before it
    // answers 503.
    let http = reqwest::Client::builder().timeout(Duration::from_secs(15)).build().expect("an HTTP client");
    let path = "/v1/backup/log?from=1";
    let response = http
        .get(format!("{}{path}", cluster.url(id)))
        .bearer_auth(operator)
        .send()
        .await
        .unwrap_or_else(|e| panic!("node {id} must answer GET {path}: {e}"));
    let status = response.status().as_u16();
    let retry_after_s =
        response.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok());
    let body =
        response.bytes().await.unwrap_or_else(|e| panic!("node {id}'s answer to GET {path} must arrive whole: {e}"));
    match status {
        200 => {
            let entries = paddock_backup::decode_entries(&body[..]).unwrap_or_else(|| {
                panic!("node {id}'s backup log must consist of whole entries, but its last entry is cut short")
            });
            BackupLog::Served(entries.into_iter().map(|(index, _)| index).collect())
        }
        503 => {
            let refusal = serde_json::from_slice::<ErrorBody>(&body[..]).unwrap_or_else(|e| {
                panic!("node {id}'s 503 must carry an error body ({e}): {}", String::from_utf8_lossy(&body))
            });
            assert_eq!(
                refusal.error.code, "unavailable",
                "node {id} may refuse a backup log with 503 only as `unavailable` (retry later): {}",
                refusal.error.message
            );
            BackupLog::Unavailable { retry_after_s, message: refusal.error.message }
        }
        other => panic!(
            "node {id} must answer GET {path} with 200 or with 503 `unavailable`, but it answered {other}: {}",
            String::from_utf8_lossy(&body)
        ),
    }
}

/// Fails the test unless a served backup log (`indexes`, from index 1) has no gaps and holds
/// the entry of every acknowledged bet (`(bet id, log index)`).
fn assert_holds_every_acknowledged_bet(node: u64, when: &str, indexes: &[u64], acknowledged: &[(u64, u64)]) {
    let last = indexes.last().map_or("no entry at all".to_string(), |i| format!("index {i}"));
    assert!(indexes.windows(2).all(|w| w[1] == w[0] + 1), "{when}, node {node}'s backup log must run without gaps");
    for (bet_id, log_index) in acknowledged {
        assert!(
            indexes.contains(log_index),
            "{when}, node {node}'s backup log must hold bet {bet_id}, which was acknowledged at log index \
             {log_index}, but the log ends at {last}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_behind_the_leader_never_serves_a_backup_log_that_misses_an_acknowledged_bet() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster =
        Cluster::new(env!("CARGO_BIN_EXE_paddock").as_ref(), dir.path(), 3, Ports::find(3, None).unwrap(), true, &[]);
    let partition = Partition::new(cluster.ids());
    let _proxy = Proxy::start(&cluster.proxy_routes(), partition.clone()).await.unwrap();
    cluster.start_all().unwrap();
    let ids = cluster.ids();
    cluster.wait_ready(&ids, Duration::from_secs(30)).await.unwrap();
    let leader = cluster.leader(Duration::from_secs(15)).await.expect("the cluster elects a leader");
    let follower = ids.iter().copied().find(|id| *id != leader).expect("a three-node cluster has a follower");
    let via_leader = Client::new(vec![cluster.url(leader)], Duration::from_secs(5)).with_keys(cluster.keys());

    // The catalogue goes in before the cut, so the follower holds a log of its own.
    seed_market(&via_leader, 1, MARKET).await;
    cluster
        .wait_caught_up(follower, Duration::from_secs(15))
        .await
        .expect("the follower catches up with the leader before the cut");

    // A link is named by the side that dials it. After this the leader cannot reach the
    // follower, so no appends, heartbeats or commit index arrive there. The follower can still
    // call the leader to ask for a read index.
    partition.block(&[(leader, follower)]);
    assert!(
        partition.is_blocked(leader, follower) && !partition.is_blocked(follower, leader),
        "the cut must stop the leader from dialling the follower and still let the follower dial the leader"
    );

    open_funded(&via_leader, ACCOUNT, 100_000).await;
    let mut acknowledged = Vec::new();
    for n in 0..BETS {
        let placed = via_leader
            .place_bet(&single(ACCOUNT, MARKET, 500), &format!("bet-{n}"))
            .await
            .unwrap_or_else(|e| panic!("the leader must acknowledge bet {n} while one follower is cut off: {e}"));
        assert_eq!(placed.status, "accepted", "bet {n} must be accepted at once (the market has no bet delay)");
        acknowledged.push((placed.bet_id, placed.log_index));
    }
    let highest = acknowledged.iter().map(|(_, index)| *index).max().expect("bets were placed");

    // The scenario itself: the follower's commit index is behind the acknowledged bets.
    let view = cluster.view(follower).await.expect("the follower answers GET /v1/cluster");
    assert!(
        view.commit_index < highest,
        "for this test to say anything, the cut-off follower must lag the leader, but its commit index {} already \
         reaches the last acknowledged bet at {highest}",
        view.commit_index
    );

    match backup_log(&cluster, follower).await {
        BackupLog::Unavailable { retry_after_s, message } => assert!(
            retry_after_s.is_some(),
            "a follower that cannot confirm the commit point must say when to retry with a Retry-After header: \
             {message}"
        ),
        BackupLog::Served(indexes) => {
            assert_holds_every_acknowledged_bet(follower, "while cut off from the leader", &indexes, &acknowledged)
        }
    }

    // Once the link heals, the follower catches up and serves a log with every acknowledged bet.
    partition.heal();
    let healed_at = Instant::now();
    let within = Duration::from_secs(30);
    let mut last_refusal = String::from("no answer yet");
    let mut served = None;
    for _ in 0..30 {
        match backup_log(&cluster, follower).await {
            BackupLog::Served(indexes) => {
                served = Some(indexes);
                break;
            }
            BackupLog::Unavailable { retry_after_s, message } => {
                last_refusal = message;
                if healed_at.elapsed() >= within {
                    break;
                }
                tokio::time::sleep(Duration::from_secs(retry_after_s.unwrap_or(1).clamp(1, 2))).await;
            }
        }
    }
    let indexes = served.unwrap_or_else(|| {
        panic!(
            "within {} s of the link healing, the follower must serve its backup log, but its last answer was 503: \
             {last_refusal}\nits log ends:\n{}",
            within.as_secs(),
            cluster.log_tail(follower, 30)
        )
    });
    assert_holds_every_acknowledged_bet(follower, "once the link healed", &indexes, &acknowledged);

    cluster.kill_all();
}
