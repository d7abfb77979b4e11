//! A leader dies mid-stream: every bet the cluster acknowledged survives, exactly once, and
//! the money adds up; the dead node comes back and agrees with the others.

mod support;

use paddock_api::wire::PlaceBetRequest;
use paddock_client::{Client, ClientError};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::*;

/// Bettors, one stream each.
const ACCOUNTS: u64 = 4;
/// Each bettor's deposit: far more than the stream can stake.
const DEPOSIT_MINOR: i64 = 100_000_000;
/// Bound on bets per stream (2000 in all).
const BETS_PER_ACCOUNT_MAX: u64 = 500;
/// Bound on a stream's duration.
const STREAM_MAX: Duration = Duration::from_secs(15);
/// How long a stream keeps retrying one key with retryable errors before it gives up on it.
const KEY_RETRY_MAX: Duration = Duration::from_secs(20);

struct Acked {
    key: String,
    bet_id: u64,
    stake_minor: i64,
    at: Instant,
}

#[derive(Default)]
struct StreamReport {
    acked: Vec<Acked>,
    /// Definitive refusals (not expected with this book).
    refused: Vec<(String, ClientError)>,
    /// Keys whose outcome stayed unknown (retryable errors until the retry bound).
    unresolved: Vec<(String, PlaceBetRequest, ClientError)>,
    retried: u64,
}

/// Places a bet, retrying retryable errors with the same key until the answer is definitive
/// or `give_up_at`. `Ok(Err(_))` is a definitive refusal, `Err(_)` an unknown outcome.
async fn place_definitively(
    client: &Client,
    request: &PlaceBetRequest,
    key: &str,
    give_up_at: Instant,
    retried: &mut u64,
) -> Result<Result<paddock_api::wire::PlacedBody, ClientError>, ClientError> {
    let mut last = None;
    for _ in 0..1_000 {
        match client.place_bet(request, key).await {
            Ok(placed) => return Ok(Ok(placed)),
            Err(e) if e.is_retryable() => {
                *retried += 1;
                last = Some(e);
                if Instant::now() >= give_up_at {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => return Ok(Err(e)),
        }
    }
    Err(last.unwrap_or_else(|| ClientError::Transport("retry bound reached".into())))
}

async fn stream(client: Client, account: u64, stop: Arc<AtomicBool>, started: Instant) -> StreamReport {
    let mut report = StreamReport::default();
    for n in 0..BETS_PER_ACCOUNT_MAX {
        if stop.load(Ordering::SeqCst) || started.elapsed() >= STREAM_MAX {
            break;
        }
        let key = format!("stream-{account}-{n}");
        let request = single(account, 1, 100 + (n % 50) as i64);
        let give_up_at = Instant::now() + KEY_RETRY_MAX;
        match place_definitively(&client, &request, &key, give_up_at, &mut report.retried).await {
            Ok(Ok(placed)) => {
                assert_eq!(placed.stake_minor, request.stake_per_line_minor, "{key}: stake taken");
                report.acked.push(Acked {
                    key,
                    bet_id: placed.bet_id,
                    stake_minor: placed.stake_minor,
                    at: Instant::now(),
                })
            }
            Ok(Err(e)) => report.refused.push((key, e)),
            Err(e) => report.unresolved.push((key, request, e)),
        }
    }
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_the_leader_under_a_stream_of_bets_loses_no_acknowledged_bet() {
    let mut cluster = Cluster::start(3, &[]).await;
    let client = cluster.client();
    seed_market(&client, 1, 1).await;
    for account in 1..=ACCOUNTS {
        client.open_account(account, "GBP", &paddock_client::fresh_key()).await.expect("account opens");
        client.deposit(account, DEPOSIT_MINOR, &format!("seed-{account}")).await.expect("deposit");
    }

    // The streams: one task per account, all through a client that knows all three nodes.
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let streams: Vec<_> =
        (1..=ACCOUNTS).map(|account| tokio::spawn(stream(client.clone(), account, stop.clone(), started))).collect();

    // Kill the leader 2 s into the stream.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let old_leader = cluster.leader().await;
    cluster.kill(old_leader);
    let killed_at = Instant::now();
    let survivors: Vec<u64> = cluster.ids().into_iter().filter(|id| *id != old_leader).collect();
    let new_leader = cluster.wait_leader_among(&survivors, Duration::from_secs(15)).await;
    let failover = killed_at.elapsed();
    eprintln!("killed leader {old_leader}; node {new_leader} leads after {failover:?}");

    // The stream carries on under the new leader for a while, then stops.
    let elected_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::SeqCst);
    let mut reports = BTreeMap::new();
    for (account, task) in (1..=ACCOUNTS).zip(streams) {
        reports.insert(account, task.await.expect("stream task does not panic"));
    }

    // Keys still unresolved are retried (same key, same body) now that the cluster is quiet:
    // a client that never got an answer must be able to learn the outcome.
    for (account, report) in reports.iter_mut() {
        for (key, request, _) in std::mem::take(&mut report.unresolved) {
            let give_up_at = Instant::now() + Duration::from_secs(10);
            match place_definitively(&client, &request, &key, give_up_at, &mut report.retried).await {
                Ok(Ok(placed)) => report.acked.push(Acked {
                    key,
                    bet_id: placed.bet_id,
                    stake_minor: placed.stake_minor,
                    at: Instant::now(),
                }),
                Ok(Err(e)) => report.refused.push((key, e)),
                Err(e) => panic!("account {account}: {key} still has no outcome on a healthy cluster: {e}"),
            }
        }
    }

    let total_acked: usize = reports.values().map(|r| r.acked.len()).sum();
    let after_failover: usize = reports.values().flat_map(|r| &r.acked).filter(|a| a.at > elected_at).count();
    let retried: u64 = reports.values().map(|r| r.retried).sum();
    eprintln!("{total_acked} bets acknowledged ({after_failover} after the new leader took over), {retried} retries");
    for (account, report) in &reports {
        assert!(report.refused.is_empty(), "account {account}: refusals {:?}", report.refused);
    }
    assert!(total_acked >= 20, "the stream placed only {total_acked} bets");
    assert!(after_failover > 0, "no bet was acknowledged after the failover");

    // Every acknowledged bet exists exactly once, as acknowledged, read from a survivor.
    let reader = cluster.client_for(new_leader);
    let mut all_ids = BTreeSet::new();
    for (account, report) in &reports {
        for a in &report.acked {
            assert!(all_ids.insert(a.bet_id), "bet id {} acknowledged twice ({})", a.bet_id, a.key);
        }
        // The account's bets are exactly the acknowledged ones: no lost bet, no duplicate of
        // a retried key (each key was used for one bet only).
        let listed = reader.account_bets(*account).await.expect("account's bets");
        let listed_ids: BTreeMap<u64, i64> = listed.iter().map(|b| (b.bet_id, b.stake_minor)).collect();
        assert_eq!(listed.len(), listed_ids.len(), "account {account}: a bet is listed twice");
        let acked_ids: BTreeMap<u64, i64> = report.acked.iter().map(|a| (a.bet_id, a.stake_minor)).collect();
        assert_eq!(listed.len(), report.acked.len(), "account {account}: bets held vs acknowledged");
        assert_eq!(listed_ids, acked_ids, "account {account}: bets held vs acknowledged (id → stake)");

        let staked: i64 = report.acked.iter().map(|a| a.stake_minor).sum();
        let view = reader.account(*account).await.expect("account");
        assert_eq!(view.balance_minor, DEPOSIT_MINOR - staked, "account {account}: balance");
        assert_eq!(view.exposure_minor, staked, "account {account}: stakes held");
    }
    // Each bet, one by one, on the other survivor.
    let other_survivor = *survivors.iter().find(|id| **id != new_leader).expect("two survivors");
    let one_by_one = cluster.client_for(other_survivor);
    let expected: Vec<(u64, u64, i64)> = reports
        .iter()
        .flat_map(|(account, r)| r.acked.iter().map(move |a| (a.bet_id, *account, a.stake_minor)))
        .collect();
    let mut checks = tokio::task::JoinSet::new();
    for chunk in expected.chunks(expected.len().div_ceil(8)) {
        let (c, chunk) = (one_by_one.clone(), chunk.to_vec());
        checks.spawn(async move {
            for (bet_id, account, stake) in chunk {
                let bet = c.bet(bet_id).await.unwrap_or_else(|e| panic!("bet {bet_id}: {e}"));
                assert_eq!((bet.account_id, bet.stake_minor, bet.status.as_str()), (account, stake, "open"));
            }
        });
    }
    while let Some(done) = checks.join_next().await {
        done.expect("bet checks do not panic");
    }

    // The killed node comes back, catches up and agrees with the others.
    let before_restart = cluster.wait_converged(&survivors, Duration::from_secs(15)).await;
    assert_eq!(before_restart.bets as usize, total_acked, "bets held in all");
    let book_before = cluster.book(new_leader).await;
    cluster.restart(old_leader);
    cluster.wait_ready(&[old_leader], READY_WITHIN).await;
    let target = cluster.cluster_view(new_leader).await.expect("leader answers").commit_index;
    poll_until(
        &format!("node {old_leader} to apply up to {target}"),
        Duration::from_secs(20),
        Duration::from_millis(100),
        async || (cluster.cluster_view(old_leader).await?.applied_index >= target).then_some(()),
    )
    .await;
    // All three agree on one state hash (which also covers the incident the leader closes as
    // the node returns), and the money and bets are what they were.
    let all = cluster.wait_converged(&cluster.ids(), Duration::from_secs(20)).await;
    assert_eq!(cluster.book(old_leader).await, book_before, "the restarted node changed the book");
    assert_eq!(all.bets as usize, total_acked);
}
