//! Every node stops at once — gracefully, then with kill -9 — and the cluster comes back with
//! the same book.
//!
//! A restarted leader appends a blank entry, so the applied index moves on; the book — every
//! balance, account and bet — must not. (The state hash may: it also covers the incident
//! records the cluster writes about its own failures, such as a node unreachable while the
//! others were still stopping.)

mod support;

use paddock_client::Client;
use std::time::Duration;
use support::*;

/// Opens accounts `first..first+count`, funds them and places a bet from each.
async fn write_some(client: &Client, first: u64, count: u64, tag: &str) {
    for account in first..first + count {
        client.open_account(account, "GBP", &paddock_client::fresh_key()).await.expect("account opens");
        client.deposit(account, 50_000, &format!("{tag}-deposit-{account}")).await.expect("deposit");
        client
            .place_bet(&single(account, 1, 1_000 + account as i64), &format!("{tag}-bet-{account}"))
            .await
            .expect("bet");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_cluster_restart_keeps_the_book() {
    let mut cluster = Cluster::start(3, &[]).await;
    let client = cluster.client();
    seed_market(&client, 1, 1).await;
    write_some(&client, 1, 20, "first").await;
    let before = cluster.wait_converged(&cluster.ids(), Duration::from_secs(15)).await;
    assert_eq!((before.accounts, before.bets), (20, 20));
    let book_before = cluster.book(1).await;

    // 1. SIGTERM every node: each drains and exits by itself.
    for id in cluster.ids() {
        assert!(cluster.terminate(id).await, "node {id} did not exit within 10 s of SIGTERM");
    }
    for id in cluster.ids() {
        cluster.restart(id);
    }
    cluster.wait_ready(&cluster.ids(), READY_WITHIN).await;
    let after_term = cluster.wait_converged(&cluster.ids(), Duration::from_secs(20)).await;
    assert!(after_term.applied_index >= before.applied_index, "the log went backwards");
    assert_eq!(cluster.book(1).await, book_before, "a graceful restart of all nodes changed the book");
    assert_eq!((after_term.accounts, after_term.bets), (20, 20));

    // The cluster still takes writes; remember the book again.
    write_some(&client, 21, 10, "second").await;
    let before_kill = cluster.wait_converged(&cluster.ids(), Duration::from_secs(15)).await;
    assert_ne!(before_kill.state_hash, before.state_hash);
    assert_eq!((before_kill.accounts, before_kill.bets), (30, 30));
    let book_before_kill = cluster.book(1).await;

    // 2. kill -9 every node: no chance to flush anything that was not already durable.
    for id in cluster.ids() {
        cluster.kill(id);
    }
    for id in cluster.ids() {
        cluster.restart(id);
    }
    cluster.wait_ready(&cluster.ids(), READY_WITHIN).await;
    let after_kill = cluster.wait_converged(&cluster.ids(), Duration::from_secs(20)).await;
    assert!(after_kill.applied_index >= before_kill.applied_index, "the log went backwards");
    assert_eq!(cluster.book(1).await, book_before_kill, "kill -9 of all nodes changed the book");

    // And the data reads back through the API.
    let account = client.account(25).await.expect("account 25 survives");
    assert_eq!(account.balance_minor, 50_000 - 1_025);
    let bets = client.account_bets(25).await.expect("account 25's bets");
    assert_eq!(bets.len(), 1);
}
