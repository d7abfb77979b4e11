//! Any node accepts any request: a follower forwards writes to the leader, and what it wrote
//! is read back from another node; a keyed write forwarded to a leader that then froze is sent
//! on to the leader elected in its place, within the same request.

mod support;

use std::time::Duration;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_accepts_writes_and_forwards_them_to_the_leader() {
    let mut cluster = Cluster::start(3, &[]).await;
    let leader = cluster.leader().await;
    let followers: Vec<u64> = cluster.ids().into_iter().filter(|id| *id != leader).collect();
    let (writer, reader) = (followers[0], followers[1]);
    let via_follower = cluster.client_for(writer);
    let view = cluster.cluster_view(writer).await.expect("the follower answers");
    assert_eq!(view.role, "follower", "node {writer} was picked as a follower");

    // The catalogue, through the follower.
    seed_market(&via_follower, 1, 1).await;

    // An account, a deposit and two bets, through the follower.
    let account =
        via_follower.open_account(7, "GBP", &paddock_client::fresh_key()).await.expect("account opens via a follower");
    assert_eq!(account.balance_minor, 0);
    let balance = via_follower.deposit(7, 10_000, "deposit-7-1").await.expect("deposit via a follower");
    assert_eq!(balance.balance_minor, 10_000);
    let first = via_follower.place_bet(&single(7, 1, 1_500), "bet-7-1").await.expect("first bet via a follower");
    let second = via_follower.place_bet(&single(7, 1, 2_500), "bet-7-2").await.expect("second bet via a follower");
    assert_eq!((first.status.as_str(), second.status.as_str()), ("accepted", "accepted"));
    assert_eq!(second.balance_minor, 10_000 - 1_500 - 2_500);
    assert_ne!(first.bet_id, second.bet_id);

    // Read back from the other follower (linearizable reads) and from the leader.
    for id in [reader, leader] {
        let other = cluster.client_for(id);
        let market = other.market(1).await.expect("the market is visible on another node");
        assert_eq!(market.status, "open");
        assert_eq!(market.selections.len(), 2);
        let account = other.account(7).await.expect("the account is visible on another node");
        assert_eq!(account.balance_minor, 6_000, "node {id}: balance");
        assert_eq!(account.exposure_minor, 4_000, "node {id}: stakes held");
        let bet = other.bet(first.bet_id).await.expect("the first bet is visible on another node");
        assert_eq!((bet.account_id, bet.stake_minor, bet.status.as_str()), (7, 1_500, "open"));
        let mut ids: Vec<u64> = other.account_bets(7).await.expect("bet list").iter().map(|b| b.bet_id).collect();
        ids.sort_unstable();
        let mut expected = vec![first.bet_id, second.bet_id];
        expected.sort_unstable();
        assert_eq!(ids, expected, "node {id}: the account's bets");
    }

    // A retry through the *other* follower with the same key returns the first answer.
    let again = cluster
        .client_for(reader)
        .place_bet(&single(7, 1, 1_500), "bet-7-1")
        .await
        .expect("a retried bet answers with its first outcome");
    assert_eq!(again.bet_id, first.bet_id);

    let converged = cluster.wait_converged(&cluster.ids(), Duration::from_secs(15)).await;
    assert_eq!((converged.bets, converged.accounts), (2, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyed_write_forwarded_to_a_leader_that_froze_is_sent_to_its_successor_and_applied_once() {
    let mut cluster = Cluster::start(3, &[]).await;
    let client = cluster.client();
    seed_market(&client, 1, 1).await;
    client.open_account(7, "GBP", "open-7").await.expect("account opens");
    client.deposit(7, 10_000, "deposit-7").await.expect("deposit");
    let leader = cluster.leader().await;
    let follower = cluster.ids().into_iter().find(|id| *id != leader).expect("a follower");
    // One attempt, so the answer is the follower's own: no client retry can hide a timeout.
    let once = cluster.client_for(follower).with_retry(paddock_client::RetryPolicy {
        attempts: 1,
        backoff: Duration::from_millis(1),
        backoff_max: Duration::from_millis(1),
    });
    cluster.wait_converged(&cluster.ids(), Duration::from_secs(15)).await;

    cluster.pause(leader);
    let placed = once.place_bet(&single(7, 1, 1_500), "bet-7-frozen").await;
    cluster.resume(leader);
    let placed = placed.expect("the follower re-routes the keyed bet to the new leader and answers it");
    assert_eq!(placed.status, "accepted");

    let metrics = reqwest::get(format!("{}/metrics", cluster.url(follower))).await.unwrap().text().await.unwrap();
    let rerouted = metrics
        .lines()
        .find_map(|l| l.strip_prefix("paddock_forward_rerouted_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .expect("the re-route counter is exported");
    assert!(rerouted >= 1.0, "the write went to the frozen leader first: {rerouted}");

    // Applied once, whatever the frozen leader did with it when it woke.
    cluster.wait_converged(&cluster.ids(), Duration::from_secs(15)).await;
    let account = client.account(7).await.expect("account");
    assert_eq!(account.balance_minor, 10_000 - 1_500, "one stake taken");
    let again = client.place_bet(&single(7, 1, 1_500), "bet-7-frozen").await.expect("the retry answers");
    assert_eq!(again.bet_id, placed.bet_id, "the same bet, from its record");
}
