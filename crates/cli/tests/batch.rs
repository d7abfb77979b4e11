//! `POST /v1/bets/batch` on a real 3-node cluster, sent to a follower (so the batch is
//! forwarded to the leader as one write): each bet answered as `POST /v1/bets` would answer it
//! alone, a resent batch answered from each bet's record, a bet of a batch found by its key,
//! a batch with an item that does not read refused whole with nothing placed, single bets
//! sent at once coalesced into shared entries with every answer still its own, and the
//! client's bet batcher turning concurrent single bets into batch requests, each caller
//! answered on its own, a malformed bet failing no one else's.

mod support;

use paddock_api::wire::{BatchBetBody, PlaceBetsRequest};
use reqwest::StatusCode;
use serde_json::Value;
use support::*;

fn item(key: &str, account: u64, stake_minor: i64) -> BatchBetBody {
    BatchBetBody { idempotency_key: key.into(), bet: single(account, 1, stake_minor) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_answers_bet_by_bet_and_a_resent_batch_takes_no_stake_twice() {
    let mut cluster = Cluster::start(3, &[]).await;
    let client = cluster.client();
    seed_market(&client, 1, 1).await;
    open_funded(&client, 1, 10_000).await;
    open_funded(&client, 2, 500).await;
    let leader = cluster.leader().await;
    let follower = cluster.ids().into_iter().find(|id| *id != leader).expect("a follower");
    let via_follower = cluster.client_for(follower);
    let batch = PlaceBetsRequest {
        bets: vec![item("gw-1", 1, 1_000), item("gw-2", 2, 400), item("gw-3", 2, 400), item("gw-4", 1, 100)],
    };

    let first = via_follower.place_bets(&batch).await.expect("the batch is answered");
    let statuses: Vec<u16> = first.results.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [201, 201, 422, 201], "account 2 had £1 left for its second bet");
    assert_eq!(first.results[2].error.as_ref().map(|e| e.code.as_str()), Some("insufficient_funds"));
    let keys: Vec<&str> = first.results.iter().map(|r| r.idempotency_key.as_str()).collect();
    assert_eq!(keys, ["gw-1", "gw-2", "gw-3", "gw-4"], "results in the request's order");
    assert!(first.results.iter().all(|r| !r.replayed));
    assert!(first.results.iter().filter_map(|r| r.placed.as_ref()).all(|p| p.log_index == first.log_index));
    assert_eq!(client.account(1).await.expect("account").balance_minor, 10_000 - 1_100);
    assert_eq!(client.account(2).await.expect("account").balance_minor, 100);

    let again = client.place_bets(&batch).await.expect("the resent batch is answered");
    assert!(again.log_index > first.log_index, "the resent batch is an entry of its own");
    for (a, b) in first.results.iter().zip(&again.results) {
        assert!(b.replayed, "{}: answered from its record", b.idempotency_key);
        let answer = |r: &paddock_api::wire::BatchResultBody| {
            (r.status, r.placed.as_ref().map(|p| (p.bet_id, p.stake_minor, p.balance_minor)), r.error.clone())
        };
        assert_eq!(answer(a), answer(b), "{}: the first answer again", b.idempotency_key);
    }
    assert_eq!(client.account(1).await.expect("account").balance_minor, 10_000 - 1_100, "no stake taken twice");

    // A bet of the batch is found by its item's key, like a bet placed alone.
    let http = reqwest::Client::new();
    let by_key = http
        .get(format!("{}/v1/accounts/1/bets/by-key/gw-4", cluster.url(leader)))
        .bearer_auth(cluster.keys().operator.expose())
        .send()
        .await
        .expect("answer");
    assert_eq!(by_key.status(), StatusCode::OK);
    let bet: Value = by_key.json().await.unwrap();
    assert_eq!(bet["bet_id"].as_u64(), first.results[3].placed.as_ref().map(|p| p.bet_id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_with_an_unreadable_bet_or_too_many_bets_is_refused_whole() {
    let cluster = Cluster::start(1, &[]).await;
    let client = cluster.client();
    seed_market(&client, 1, 1).await;
    open_funded(&client, 1, 10_000).await;

    let mut bad_odds = item("gw-2", 1, 100);
    bad_odds.bet.legs[0].odds = "two to one".into();
    let refused = client.place_bets(&PlaceBetsRequest { bets: vec![item("gw-1", 1, 100), bad_odds] }).await;
    let error = refused.expect_err("an item that does not read refuses the batch");
    assert_eq!(error.code(), Some("bad_parameter"), "{error}");
    assert!(error.to_string().contains("bets[1]"), "the message names the item: {error}");

    let too_many: Vec<BatchBetBody> = (0..201).map(|i| item(&format!("gw-many-{i}"), 1, 1)).collect();
    let error = client.place_bets(&PlaceBetsRequest { bets: too_many }).await.expect_err("201 bets");
    assert_eq!(error.code(), Some("bad_parameter"), "{error}");
    let error = client.place_bets(&PlaceBetsRequest { bets: Vec::new() }).await.expect_err("no bets");
    assert_eq!(error.code(), Some("bad_parameter"), "{error}");

    assert_eq!(client.account(1).await.expect("account").balance_minor, 10_000, "nothing was placed");
    let first = client.place_bets(&PlaceBetsRequest { bets: vec![item("gw-1", 1, 100)] }).await.expect("batch");
    assert!(!first.results[0].replayed, "the refused batch left no record of gw-1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_bets_that_arrive_together_leave_together_and_each_keeps_its_own_answer() {
    let cluster = Cluster::start(1, &[]).await;
    let client = cluster.client();
    seed_market(&client, 1, 1).await;
    open_funded(&client, 1, 100_000).await;
    let place_all = |keys: Vec<String>| {
        let client = client.clone();
        async move {
            let mut tasks = tokio::task::JoinSet::new();
            for key in keys {
                let client = client.clone();
                tasks.spawn(async move { (key.clone(), client.place_bet(&single(1, 1, 100), &key).await) });
            }
            let mut answers = std::collections::BTreeMap::new();
            while let Some(done) = tasks.join_next().await {
                let (key, answer) = done.expect("task");
                answers.insert(key, answer.expect("every bet is accepted"));
            }
            answers
        }
    };
    let keys: Vec<String> = (0..200).map(|i| format!("together-{i}")).collect();
    let first = place_all(keys.clone()).await;
    let mut ids: Vec<u64> = first.values().map(|p| p.bet_id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 200, "200 bets, each its own");
    assert_eq!(client.account(1).await.expect("account").balance_minor, 100_000 - 200 * 100);

    let metrics = reqwest::get(format!("{}/metrics", cluster.url(1))).await.unwrap().text().await.unwrap();
    let coalesced = metrics
        .lines()
        .find_map(|l| l.strip_prefix("paddock_bets_coalesced_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .expect("the coalescing counter is exported");
    assert!(coalesced > 0.0, "200 bets at once on 4 write slots: some must have left together");

    // Sent again, each answers with its own first answer, grouped or not.
    let again = place_all(keys).await;
    for (key, placed) in &again {
        assert_eq!(placed.bet_id, first[key].bet_id, "{key}: the same bet");
    }
    assert_eq!(client.account(1).await.expect("account").balance_minor, 100_000 - 200 * 100, "no stake twice");
}

/// `paddock_http_requests_total` summed over the series of one route.
async fn requests_on(url: &str, route: &str) -> f64 {
    let metrics = reqwest::get(format!("{url}/metrics")).await.unwrap().text().await.unwrap();
    metrics
        .lines()
        .filter(|l| l.starts_with("paddock_http_requests_total") && l.contains(&format!("route=\"{route}\"")))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_bet_batcher_sends_concurrent_bets_as_batches_and_answers_each_caller_alone() {
    let cluster = Cluster::start(1, &[]).await;
    let client = cluster.client();
    seed_market(&client, 1, 1).await;
    open_funded(&client, 1, 100_000).await;
    let batcher = client.bet_batcher(1);

    // 150 callers at once: 147 good bets, one that does not read, one on a market that does
    // not exist, one the wallet cannot pay for.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..150u32 {
        let batcher = batcher.clone();
        let mut bet = single(1, 1, 100);
        match i {
            40 => bet.legs[0].odds = "two to one".into(),
            80 => bet.legs[0].market_id = 999,
            120 => bet.stake_per_line_minor = 1_000_000,
            _ => {}
        }
        tasks.spawn(async move { (i, batcher.place(bet, &format!("batched-{i}")).await) });
    }
    let mut answers = std::collections::BTreeMap::new();
    while let Some(done) = tasks.join_next().await {
        let (i, answer) = done.expect("task");
        answers.insert(i, answer);
    }

    let code = |i: u32| answers[&i].as_ref().err().and_then(|e| e.code()).map(str::to_string);
    assert_eq!(code(40).as_deref(), Some("bad_parameter"), "the malformed bet gets its own 400");
    assert_eq!(code(80).as_deref(), Some("market_not_found"));
    assert_eq!(code(120).as_deref(), Some("insufficient_funds"));
    let mut ids: Vec<u64> = answers
        .iter()
        .filter(|(i, _)| ![40, 80, 120].contains(*i))
        .map(|(i, a)| a.as_ref().unwrap_or_else(|e| panic!("bet {i} refused: {e}")).bet_id)
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 147, "every good bet accepted once, as its own bet");
    assert_eq!(client.account(1).await.expect("account").balance_minor, 100_000 - 147 * 100);

    let batches = requests_on(&cluster.url(1), "/v1/bets/batch").await;
    let singles = requests_on(&cluster.url(1), "/v1/bets").await;
    assert!(batches >= 1.0, "bets that found the one slot taken left as batches");
    // The batch holding the malformed bet is refused whole and halved down to it: a few more
    // requests, not one per bet.
    assert!(batches + singles < 75.0, "150 bets took {batches} batch and {singles} single requests");

    // The same keys again: the first answers, no stake taken twice.
    let again = batcher.place(single(1, 1, 100), "batched-0").await.expect("a replay");
    assert_eq!(Some(again.bet_id), answers[&0].as_ref().ok().map(|p| p.bet_id));
    assert_eq!(client.account(1).await.expect("account").balance_minor, 100_000 - 147 * 100);
}
