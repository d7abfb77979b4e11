//! The API contract a client builds on, on a real node: a missing object is named by its own
//! code, every write answer carries its log index and says whether it is a replay, market
//! status changes need no body, a parameter error names the rule in words, a market that
//! would already be closed is refused at creation, a member nobody can reach is not added,
//! and a market shows its rules, deductions and results.

mod support;

use reqwest::StatusCode;
use serde_json::Value;
use std::time::Duration;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposit_answer_carries_its_log_index_and_a_retry_answers_as_the_first_attempt() {
    let cluster = Cluster::start(1, &[]).await;
    let client = cluster.client();
    client.open_account(7, "GBP", "open-7").await.expect("account opens");
    let first = client.deposit(7, 500, "deposit-7-1").await.expect("deposit");
    assert!(first.log_index > 0, "{first:?}");
    let retry = client.deposit(7, 500, "deposit-7-1").await.expect("the same deposit again");
    assert_eq!(retry.balance_minor, first.balance_minor, "a retry with the same key answers the first attempt");
    assert!(retry.log_index > first.log_index, "the retry is an entry of its own, later in the log");
    let next = client.deposit(7, 500, "deposit-7-2").await.expect("another deposit");
    assert!(next.log_index > first.log_index);
    assert_eq!(next.balance_minor, 1_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspend_resume_and_close_need_no_body_and_a_body_must_still_be_json() {
    let cluster = Cluster::start(1, &[]).await;
    let client = cluster.client();
    seed_market(&client, 1, 10).await;
    let http = reqwest::Client::new();
    let operator = cluster.keys().operator.expose();
    for (action, key) in [("suspend", "s-1"), ("resume", "r-1"), ("close", "c-1")] {
        // No body and no Content-Type at all, as `curl -XPOST` sends it.
        let response = http
            .post(format!("{}/v1/markets/10/{action}", cluster.url(1)))
            .bearer_auth(&operator)
            .header("Idempotency-Key", key)
            .send()
            .await
            .expect("answer");
        let status = response.status();
        let text = response.text().await.unwrap();
        assert_eq!(status, StatusCode::OK, "{action} without a body: {text}");
        assert!(serde_json::from_str::<Value>(&text).unwrap()["log_index"].as_u64().is_some());
    }
    assert_eq!(client.market(10).await.expect("market").status, "closed");
    // A body that is there but not JSON is still refused.
    let response = http
        .post(format!("{}/v1/markets/10/suspend", cluster.url(1)))
        .bearer_auth(&operator)
        .header("Idempotency-Key", "s-2")
        .body("reason=kick-off")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_path_parameter_is_explained_in_words() {
    let cluster = Cluster::start(1, &[]).await;
    let http = reqwest::Client::new();
    let response = http
        .get(format!("{}/v1/bets/-1", cluster.url(1)))
        .bearer_auth(cluster.keys().operator.expose())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "bad_parameter");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("bet_id must be a whole number from 0 to"), "{message}");
    assert!(!message.contains("u64"), "no Rust type names: {message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_market_closing_in_the_past_is_refused_and_not_created() {
    let cluster = Cluster::start(1, &[]).await;
    let client = cluster.client();
    client.create_event(&event_request(1), "event-1").await.expect("event");
    let mut request = market_request(1, 20);
    request.rules.closes_at_ms = Some(1_000);
    let http = reqwest::Client::new();
    let response = http
        .post(format!("{}/v1/markets", cluster.url(1)))
        .bearer_auth(cluster.keys().operator.expose())
        .header("Idempotency-Key", "market-20")
        .json(&request)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(code_of(&response.text().await.unwrap()), "closes_at_passed");
    let (status, body) = cluster.get_as_operator_refused(1, "/v1/markets/20").await;
    assert_eq!((status, code_of(&body).as_str()), (404, "market_not_found"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_node_that_is_not_a_member_is_refused_and_changes_nothing() {
    let cluster = Cluster::start(3, &[]).await;
    let client = cluster.client();
    let before = client.cluster().await.expect("cluster view");
    let refused = client.remove_member(9).await.expect_err("node 9 was never added");
    assert_eq!(refused.code(), Some("membership_refused"), "{refused}");
    assert!(refused.to_string().contains("node 9 is not a member"), "{refused}");
    let after = client.cluster().await.expect("cluster view");
    // The same members (replication progress, matched index and lag, moves on regardless).
    let members = |c: &paddock_api::wire::ClusterBody| {
        c.members.iter().map(|m| (m.node_id, m.peer_addr.clone(), m.voter)).collect::<Vec<_>>()
    };
    assert_eq!(members(&after), members(&before));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_ex_leader_alone_does_not_claim_to_be_a_ready_leader() {
    let mut cluster = Cluster::start(3, &[]).await;
    let leader = cluster.leader().await;
    // The followers first: a leader that stops while a follower is in step hands its
    // leadership over, and would no longer be the ex-leader.
    let mut order: Vec<u64> = cluster.ids().into_iter().filter(|id| *id != leader).collect();
    order.push(leader);
    for id in order {
        assert!(cluster.terminate(id).await, "node {id} stops");
    }
    cluster.restart(leader);
    // Alone it can reach no quorum: whatever it believes about its term, it is not ready.
    let http = reqwest::Client::new();
    let url = format!("{}/health/ready", cluster.url(leader));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(4);
    let mut answered = 0;
    while std::time::Instant::now() < deadline {
        if let Ok(response) = http.get(&url).send().await {
            answered += 1;
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            assert_ne!(status, StatusCode::OK, "the ex-leader alone said it was ready: {body}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(answered > 10, "the restarted node answered its readiness probe ({answered} times)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_restarted_alone_stops_saying_it_is_ready_once_its_leader_stays_silent() {
    let mut cluster = Cluster::start(3, &[]).await;
    let leader = cluster.leader().await;
    let follower = cluster.ids().into_iter().find(|id| *id != leader).unwrap();
    for id in cluster.ids() {
        assert!(cluster.terminate(id).await, "node {id} stops");
    }
    // It knows its leader from before (its saved vote), hears nobody, and with pre-vote starts
    // no election: it must not tell a balancer it can serve.
    cluster.restart(follower);
    let url = format!("{}/health/ready", cluster.url(follower));
    let body = poll_until(
        "the lone follower to report not ready",
        Duration::from_secs(15),
        Duration::from_millis(200),
        async || {
            let response = reqwest::get(&url).await.ok()?;
            let status = response.status();
            let body = response.text().await.ok()?;
            (status == StatusCode::SERVICE_UNAVAILABLE && body.contains("not in step with leader")).then_some(body)
        },
    )
    .await;
    assert!(body.contains("no word from it"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_market_shows_its_rules_its_non_runners_deduction_and_its_results() {
    use paddock_api::wire::{EachWayBody, SelectionResultBody, SettleRequest, WithdrawSelectionRequest};
    let cluster = Cluster::start(1, &[]).await;
    let client = cluster.client();
    client.create_event(&event_request(1), "event-1").await.expect("event");
    let mut request = market_request(1, 30);
    request.rules.bet_delay_ms = 2_000;
    request.rules.closes_at_ms = Some(4_000_000_000_000);
    request.rules.each_way = Some(EachWayBody { fraction: "1/4".into(), places: 3 });
    client.create_market(&request, "market-30").await.expect("market");
    let shown = client.market(30).await.expect("market");
    assert_eq!(shown.rules, request.rules, "the rules read back as they were set");

    let operator = cluster.keys().operator.expose();
    let http = reqwest::Client::new();
    let withdrawn = http
        .post(format!("{}/v1/markets/30/withdraw-selection", cluster.url(1)))
        .bearer_auth(&operator)
        .header("Idempotency-Key", "withdraw-302")
        .json(&WithdrawSelectionRequest { selection_id: 302, deduction_pence: 25 })
        .send()
        .await
        .unwrap();
    assert_eq!(withdrawn.status(), StatusCode::OK, "{}", withdrawn.text().await.unwrap());
    let settle = SettleRequest {
        results: vec![SelectionResultBody { selection_id: 301, win: "dead_heat:1/2".into(), place: None }],
        reason: String::new(),
    };
    client.settle(30, &settle, false, "settle-30").await.expect("settled");
    let settled = client.market(30).await.expect("market");
    let home = settled.selections.iter().find(|s| s.selection_id == 301).unwrap();
    let away = settled.selections.iter().find(|s| s.selection_id == 302).unwrap();
    assert_eq!(home.result.as_ref().map(|r| r.win.as_str()), Some("dead_heat:1/2"));
    assert_eq!(home.rule4_deduction_pence, None);
    assert_eq!(away.rule4_deduction_pence, Some(25));
    assert!(away.withdrawn && away.result.is_none());
    assert_eq!(settled.result_version, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_shows_its_limits_and_its_exclusion() {
    let cluster = Cluster::start(1, &[]).await;
    let client = cluster.client();
    client.open_account(8, "GBP", "open-8").await.expect("account opens");
    let fresh = client.account(8).await.expect("account");
    assert!(fresh.limits.is_empty() && fresh.exclusion.is_none());
    let http = reqwest::Client::new();
    let service = cluster.keys().service.expose();
    let send = |method: reqwest::Method, path: &str, key: &str, body: Value| {
        http.request(method, format!("{}{path}", cluster.url(1)))
            .bearer_auth(&service)
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
    };
    let limit = serde_json::json!({ "kind": "deposit", "window": "week", "amount_minor": 20_000 });
    let set = send(reqwest::Method::PUT, "/v1/accounts/8/limits", "limit-8", limit).await.unwrap();
    assert_eq!(set.status(), StatusCode::OK, "{}", set.text().await.unwrap());
    let raise = serde_json::json!({ "kind": "deposit", "window": "week", "amount_minor": 50_000 });
    let raised = send(reqwest::Method::PUT, "/v1/accounts/8/limits", "limit-8-raise", raise).await.unwrap();
    assert_eq!(raised.status(), StatusCode::OK);
    let time_out = serde_json::json!({ "kind": "time_out", "duration_days": 2 });
    let out = send(reqwest::Method::POST, "/v1/accounts/8/exclusions", "out-8", time_out).await.unwrap();
    assert_eq!(out.status(), StatusCode::OK, "{}", out.text().await.unwrap());

    let account = client.account(8).await.expect("account");
    assert_eq!(account.exclusion.as_deref(), Some("time_out"));
    assert!(account.excluded_until_ms.is_some());
    assert_eq!(account.limits.len(), 1, "{:?}", account.limits);
    let deposit = &account.limits[0];
    assert_eq!((deposit.kind.as_str(), deposit.window.as_str()), ("deposit", "week"));
    assert_eq!(deposit.amount_minor, Some(20_000), "a raise waits out its cooling-off period");
    let pending = deposit.pending.as_ref().expect("the raise is pending");
    assert_eq!(pending.amount_minor, Some(50_000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_lost_an_answer_learns_it_by_the_idempotency_key_without_resending() {
    let cluster = Cluster::start(1, &[]).await;
    let client = cluster.client();
    seed_market(&client, 1, 40).await;
    client.open_account(9, "GBP", "open-9").await.expect("account");
    client.deposit(9, 1_000, "deposit-9").await.expect("deposit");
    let placed = client.place_bet(&single(9, 40, 300), "bet-9-a").await.expect("placed");
    let refused = client.place_bet(&single(9, 40, 5_000), "bet-9-b").await.expect_err("more than the wallet");
    assert_eq!(refused.code(), Some("insufficient_funds"));

    let http = reqwest::Client::new();
    let operator = cluster.keys().operator.expose();
    let by_key = |key: &'static str| {
        http.get(format!("{}/v1/accounts/9/bets/by-key/{key}", cluster.url(1))).bearer_auth(&operator).send()
    };
    let found = by_key("bet-9-a").await.unwrap();
    assert_eq!(found.status(), StatusCode::OK);
    let bet: Value = found.json().await.unwrap();
    assert_eq!(bet["bet_id"].as_u64(), Some(placed.bet_id));
    let was_refused = by_key("bet-9-b").await.unwrap();
    assert_eq!(was_refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(code_of(&was_refused.text().await.unwrap()), "insufficient_funds", "the first answer, as given");
    let never = by_key("bet-9-c").await.unwrap();
    assert_eq!(never.status(), StatusCode::NOT_FOUND);
    assert_eq!(code_of(&never.text().await.unwrap()), "bet_not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_books_of_each_currency_are_readable_and_sum_to_zero() {
    let cluster = Cluster::start(1, &[]).await;
    let client = cluster.client();
    seed_market(&client, 1, 50).await;
    client.open_account(11, "GBP", "open-11").await.expect("account");
    client.deposit(11, 2_000, "deposit-11").await.expect("deposit");
    client.place_bet(&single(11, 50, 500), "bet-11").await.expect("placed");
    let http = reqwest::Client::new();
    let books: Value = http
        .get(format!("{}/v1/book/balances", cluster.url(1)))
        .bearer_auth(cluster.keys().operator.expose())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let gbp = books["currencies"].as_array().unwrap().iter().find(|c| c["currency"] == "GBP").expect("GBP books");
    assert_eq!(gbp["wallets_minor"], 1_500);
    assert_eq!(gbp["reserved_minor"], 500);
    assert_eq!(gbp["clearing_minor"], -2_000);
    assert_eq!(gbp["total_minor"], 0, "money is conserved: {gbp}");
    assert!(books["applied_index"].as_u64().unwrap() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_tunes_the_books_settings_and_a_players_stake_factor_and_both_are_audited() {
    let cluster = Cluster::start(1, &[]).await;
    let client = cluster.client();
    client.open_account(12, "GBP", "open-12").await.expect("account");
    let http = reqwest::Client::new();
    let operator = cluster.keys().operator.expose();
    let url = |path: &str| format!("{}{path}", cluster.url(1));
    let mut config: Value =
        http.get(url("/v1/config")).bearer_auth(&operator).send().await.unwrap().json().await.unwrap();
    assert_eq!(config["rounding"], "down", "the default: truncate, the UK norm");
    config["rounding"] = "half_up".into();
    config["cash_out_margin_bps"] = 300.into();
    let set = http.put(url("/v1/config")).bearer_auth(&operator).header("Idempotency-Key", "config-1").json(&config);
    let set = set.send().await.unwrap();
    assert_eq!(set.status(), StatusCode::OK, "{}", set.text().await.unwrap());
    let now: Value = http.get(url("/v1/config")).bearer_auth(&operator).send().await.unwrap().json().await.unwrap();
    assert_eq!(now, config, "the settings read back as set");

    let mut bad = config.clone();
    bad["idempotency_ttl_ms"] = 1.into();
    let refused = http.put(url("/v1/config")).bearer_auth(&operator).header("Idempotency-Key", "config-2").json(&bad);
    let refused = refused.send().await.unwrap();
    assert!(refused.status().is_client_error());
    assert_eq!(code_of(&refused.text().await.unwrap()), "config_invalid");

    let factor = |key: &'static str, permille: u32| {
        http.put(url("/v1/accounts/12/stake-factor"))
            .bearer_auth(&operator)
            .header("Idempotency-Key", key)
            .json(&serde_json::json!({ "factor_permille": permille }))
            .send()
    };
    assert_eq!(factor("factor-1", 250).await.unwrap().status(), StatusCode::OK);
    let zero = factor("factor-2", 0).await.unwrap();
    assert!(zero.status().is_client_error());

    let events = cluster.audit_events(1).await;
    assert!(
        events.iter().any(|e| e == r#"{"type":"config_changed"}"#),
        "an event with no fields is an object too: {events:?}"
    );
    assert!(
        events.iter().any(|e| e.contains(r#""type":"stake_factor_changed""#) && e.contains(r#""factor_permille":250"#)),
        "{events:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_listed_with_their_markets() {
    let cluster = Cluster::start(1, &[]).await;
    let client = cluster.client();
    seed_market(&client, 3, 60).await;
    client.create_market(&market_request(3, 61), "market-61").await.expect("second market");
    client.create_event(&event_request(4), "event-4").await.expect("event");
    let events = client.events().await.expect("events");
    assert_eq!(events.iter().map(|e| e.event_id).collect::<Vec<_>>(), vec![3, 4]);
    assert_eq!(events[0].market_ids, vec![60, 61]);
    assert_eq!(events[0].name, "Test event 3");
    assert!(events[1].market_ids.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cash_out_quote_is_exactly_what_the_book_accepts() {
    use paddock_api::wire::{CashOutQuoteBody, CashOutRequest};
    let cluster = Cluster::start(1, &[]).await;
    let client = cluster.client();
    seed_market(&client, 1, 70).await;
    client.open_account(13, "GBP", "open-13").await.expect("account");
    client.deposit(13, 10_000, "deposit-13").await.expect("deposit");
    let bet = client.place_bet(&single(13, 70, 1_000), "bet-13").await.expect("placed").bet_id;
    let http = reqwest::Client::new();
    let service = cluster.keys().service.expose();
    let quote: CashOutQuoteBody = http
        .get(format!("{}/v1/bets/{bet}/cash-out-quote", cluster.url(1)))
        .bearer_auth(&service)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!((quote.bet_id, quote.account_id), (bet, 13));
    assert!(quote.value_minor > 0 && quote.value_minor <= 1_000, "at unchanged prices, less the margin: {quote:?}");
    let offer = |value_minor: i64| CashOutRequest {
        account_id: 13,
        value_minor,
        quoted_versions: quote.quoted_versions.clone(),
    };
    let greedy = client.cash_out(bet, &offer(quote.value_minor + 1), "cash-13-a").await.expect_err("one unit more");
    assert_eq!(greedy.code(), Some("cash_out_value_too_high"));
    let done = client.cash_out(bet, &offer(quote.value_minor), "cash-13-b").await.expect("the quoted value is taken");
    assert!(!done.pending);
    let after = http.get(format!("{}/v1/bets/{bet}/cash-out-quote", cluster.url(1))).bearer_auth(&service).send();
    let after = after.await.unwrap();
    assert_eq!(after.status(), StatusCode::CONFLICT);
    assert_eq!(code_of(&after.text().await.unwrap()), "bet_not_open");
}

/// POSTs `body` to `path` on `url` as the operator with an idempotency key; the status, the
/// `Idempotent-Replayed` header and the body's error code, if any.
async fn post_keyed(cluster: &Cluster, url: &str, path: &str, key: &str, body: Value) -> (u16, Option<String>, String) {
    let response = reqwest::Client::new()
        .post(format!("{url}{path}"))
        .bearer_auth(cluster.keys().operator.expose())
        .header("Idempotency-Key", key)
        .json(&body)
        .send()
        .await
        .expect("answer");
    let status = response.status().as_u16();
    let replayed = response.headers().get("idempotent-replayed").map(|v| v.to_str().expect("ascii header").to_string());
    let text = response.text().await.unwrap_or_default();
    let code = if status >= 400 { code_of(&text) } else { String::new() };
    (status, replayed, code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_write_says_it_is_a_replay_through_the_leader_and_through_a_follower() {
    let mut cluster = Cluster::start(3, &[]).await;
    let leader = cluster.leader().await;
    let follower = cluster.ids().into_iter().find(|id| *id != leader).expect("a follower");
    let (on_leader, on_follower) = (cluster.url(leader), cluster.url(follower));
    let open = serde_json::json!({"account_id": 7, "currency": "GBP"});

    let first = post_keyed(&cluster, &on_leader, "/v1/accounts", "open-7", open.clone()).await;
    assert_eq!(first, (201, Some("false".to_string()), String::new()), "a first answer is not a replay");
    let retry = post_keyed(&cluster, &on_leader, "/v1/accounts", "open-7", open.clone()).await;
    assert_eq!(retry, (201, Some("true".to_string()), String::new()), "the retry is told it is a replay");
    let relayed = post_keyed(&cluster, &on_follower, "/v1/accounts", "open-7", open).await;
    assert_eq!(relayed, (201, Some("true".to_string()), String::new()), "relayed by a follower, still a replay");

    // A refusal is remembered and replayed the same way.
    let path = "/v1/markets/99/close";
    let refused = post_keyed(&cluster, &on_follower, path, "close-99", serde_json::json!({})).await;
    assert_eq!(refused, (404, Some("false".to_string()), "market_not_found".to_string()));
    let again = post_keyed(&cluster, &on_leader, path, "close-99", serde_json::json!({})).await;
    assert_eq!(again, (404, Some("true".to_string()), "market_not_found".to_string()));

    // A read replicates nothing and is not marked.
    let read = reqwest::Client::new()
        .get(format!("{on_follower}/v1/accounts/7"))
        .bearer_auth(cluster.keys().operator.expose())
        .send()
        .await
        .expect("answer");
    assert_eq!(read.status(), StatusCode::OK);
    assert!(read.headers().get("idempotent-replayed").is_none(), "a read is neither first nor replay");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adding_a_node_nobody_can_reach_is_refused_and_changes_nothing() {
    let mut cluster = Cluster::start(3, &[]).await;
    let leader = cluster.leader().await;
    let follower = cluster.ids().into_iter().find(|id| *id != leader).expect("a follower");
    // Loopback ports that were free a moment ago: nothing listens there.
    let port = free_ports(1)[0];
    let (nobody, elsewhere) = (format!("127.0.0.1:{port}"), format!("127.0.0.2:{port}"));
    let members = |c: &paddock_api::wire::ClusterBody| {
        c.members.iter().map(|m| (m.node_id, m.peer_addr.clone(), m.voter)).collect::<Vec<_>>()
    };
    let before = members(&cluster.client().cluster().await.expect("cluster view"));
    for (through, peer) in [(leader, nobody.as_str()), (follower, elsewhere.as_str())] {
        let refused = cluster.client_for(through).add_member(4, peer).await.expect_err("nobody answers there");
        assert_eq!(refused.code(), Some("membership_refused"), "{refused}");
        let text = refused.to_string();
        assert!(text.contains(&format!("cannot reach node 4 at {peer}")), "{text}");
        assert!(text.contains("start it first"), "says what to do: {text}");
    }
    let after = members(&cluster.client().cluster().await.expect("cluster view"));
    assert_eq!(after, before, "no learner was added");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_can_be_read_by_id_with_its_markets_and_an_unknown_one_is_event_not_found() {
    let cluster = Cluster::start(1, &[]).await;
    seed_market(&cluster.client(), 7, 70).await;
    let event = cluster.get_as_operator(1, "/v1/events/7").await;
    assert_eq!(event["event_id"], 7, "{event}");
    assert_eq!(event["name"], "Test event 7", "{event}");
    assert_eq!(event["market_ids"], serde_json::json!([70]), "{event}");
    // An id spelt as JSON may spell a whole number (a link carries a request body's `7.0`).
    assert_eq!(cluster.get_as_operator(1, "/v1/events/7.0").await, event, "7.0 is event 7");
    assert_eq!(cluster.get_as_operator(1, "/v1/markets/7e1").await["market_id"], 70, "7e1 is market 70");
    let (status, body) = cluster.get_as_operator_refused(1, "/v1/events/8").await;
    assert_eq!((status, code_of(&body).as_str()), (404, "event_not_found"), "{body}");
}
