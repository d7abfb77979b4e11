//! Overload is refused early and politely: a principal over its rate gets 429 with
//! Retry-After (whatever client id it claims), an address over its rate too, a burst over the
//! node's concurrency limit gets 503 `overloaded` with Retry-After, other principals are still
//! served, and the node stays ready.

mod support;

use reqwest::StatusCode;
use support::*;

async fn get_markets(http: &reqwest::Client, url: &str, key: &str, n: usize) -> (StatusCode, Option<String>, String) {
    let resp = http
        .get(format!("{url}/v1/markets?consistency=stale"))
        .bearer_auth(key)
        // A header a client chooses buys it nothing: a fresh one per request.
        .header("x-client-id", format!("fresh-{n}"))
        .send()
        .await
        .expect("the node answers");
    let status = resp.status();
    let retry = resp.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_string);
    let body = resp.text().await.unwrap_or_default();
    (status, retry, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_over_its_rate_limit_gets_429_with_retry_after_and_others_are_still_served() {
    let cluster = Cluster::start(1, &["--rate-limit", "5"]).await;
    let url = cluster.url(1);
    let harness = cluster.client();
    let mut keys = Vec::new();
    for name in ["greedy", "polite"] {
        harness
            .create_principal(name, paddock_api::Role::Trader, &[], &paddock_client::fresh_key())
            .await
            .expect("principal");
        keys.push(harness.issue_key(name, None).await.expect("key"));
    }
    let http = reqwest::Client::new();
    let mut limited = 0;
    for n in 0..30 {
        let (status, retry, body) = get_markets(&http, &url, &keys[0], n).await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            limited += 1;
            assert!(retry.is_some_and(|r| r.parse::<u32>().is_ok_and(|s| s >= 1)), "429 without Retry-After");
            assert!(body.contains("\"rate_limited\""), "{body}");
        } else {
            assert_eq!(status, StatusCode::OK, "{body}");
        }
    }
    assert!(limited >= 20, "30 requests at once against 5/s: only {limited} refused");
    let (status, _, _) = get_markets(&http, &url, &keys[1], 0).await;
    assert_eq!(status, StatusCode::OK, "another principal is not punished for the greedy one");
    let ready = http.get(format!("{url}/health/ready")).send().await.expect("ready answers");
    assert_eq!(ready.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_over_the_concurrency_limit_is_shed_with_503_and_the_node_stays_ready() {
    let cluster = Cluster::start(1, &["--concurrency-limit", "2"]).await;
    let url = cluster.url(1);
    let client = cluster.client();
    client.open_account(1, "GBP", &paddock_client::fresh_key()).await.expect("account opens");
    let http = reqwest::Client::builder().pool_max_idle_per_host(256).build().expect("client builds");
    let mut burst = tokio::task::JoinSet::new();
    for i in 0..300 {
        let (http, url, service) = (http.clone(), url.clone(), cluster.keys().service.expose());
        burst.spawn(async move {
            let resp = http
                .post(format!("{url}/v1/accounts/1/deposits"))
                .bearer_auth(&service)
                .header("idempotency-key", format!("burst-{i}"))
                .json(&serde_json::json!({ "amount_minor": 1 }))
                .send()
                .await
                .expect("the node answers");
            let retry = resp.headers().get("retry-after").is_some();
            (resp.status(), retry, resp.text().await.unwrap_or_default())
        });
    }
    let (mut ok, mut shed) = (0, 0);
    while let Some(result) = burst.join_next().await {
        let (status, retry, body) = result.expect("request task");
        match status {
            StatusCode::OK => ok += 1,
            StatusCode::SERVICE_UNAVAILABLE => {
                shed += 1;
                assert!(retry, "503 without Retry-After");
                assert!(body.contains("\"overloaded\""), "{body}");
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert!(ok > 0, "nothing was admitted");
    assert!(shed > 0, "300 concurrent requests against a limit of 2: none was shed");
    // Every admitted deposit counted exactly once; the shed ones changed nothing.
    let account = client.account(1).await.expect("account reads");
    assert_eq!(account.balance_minor, ok as i64);
    let ready = http.get(format!("{url}/health/ready")).send().await.expect("ready answers");
    assert_eq!(ready.status(), StatusCode::OK, "the node stays ready after the burst");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_over_its_rate_is_refused_with_or_without_credentials_and_health_is_not() {
    let cluster = Cluster::start(1, &["--rate-limit-per-ip", "5"]).await;
    let url = cluster.url(1);
    let http = reqwest::Client::new();
    let mut limited = 0;
    for _ in 0..30 {
        let resp = http.get(format!("{url}/v1/markets")).send().await.expect("the node answers");
        match resp.status() {
            StatusCode::TOO_MANY_REQUESTS => limited += 1,
            StatusCode::UNAUTHORIZED => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert!(limited >= 20, "30 requests at once against 5/s from one address: only {limited} refused");
    let ready = http.get(format!("{url}/health/ready")).send().await.expect("ready answers");
    assert_eq!(ready.status(), StatusCode::OK, "health probes are never rate limited");
}
