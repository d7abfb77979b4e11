//! What one client can take from a node is bounded: every list pages, a principal holds a
//! bounded number of streams and a stream ends when its client leaves, oversized or slow
//! requests are refused rather than served, a connection that sends nothing is closed, the
//! node holds a bounded number of connections, and an address that guesses keys is slowed.

mod support;

use reqwest::StatusCode;
use std::time::Duration;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_page_with_a_cursor_and_refuse_a_page_size_out_of_range() {
    let cluster = Cluster::start(1, &[]).await;
    let client = cluster.client();
    for market in 1..=5 {
        seed_market(&client, market, market).await;
    }
    let http = reqwest::Client::new();
    let key = cluster.keys().operator.expose();
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..5 {
        let mut url = format!("{}/v1/markets?limit=2", cluster.url(1));
        if let Some(c) = &cursor {
            url.push_str(&format!("&after={c}"));
        }
        let response = http.get(url).bearer_auth(&key).send().await.expect("answer");
        assert_eq!(response.status(), StatusCode::OK);
        cursor = response.headers().get("x-next-cursor").map(|v| v.to_str().expect("ascii").to_string());
        let page: Vec<serde_json::Value> = response.json().await.expect("a JSON array");
        assert!(page.len() <= 2, "a page holds at most its limit");
        seen.extend(page.iter().map(|m| m["market_id"].as_u64().expect("id")));
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(seen, vec![1, 2, 3, 4, 5], "the pages together are the whole list, in order, once");
    for bad in ["limit=0", "limit=5000", "after=abc"] {
        let response =
            http.get(format!("{}/v1/markets?{bad}", cluster.url(1))).bearer_auth(&key).send().await.expect("answer");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bad}");
        assert!(response.text().await.unwrap().contains("bad_parameter"), "{bad}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_principal_holds_a_bounded_number_of_streams_and_a_closed_one_frees_its_place() {
    let cluster = Cluster::start(1, &["--sse-streams-per-principal", "3"]).await;
    let key = cluster.keys().service.expose();
    let http = reqwest::Client::new();
    let url = format!("{}/v1/stream/prices", cluster.url(1));
    let mut open = Vec::new();
    for _ in 0..3 {
        let response = http.get(&url).bearer_auth(&key).send().await.expect("answer");
        assert_eq!(response.status(), StatusCode::OK);
        open.push(response);
    }
    let refused = http.get(&url).bearer_auth(&key).send().await.expect("answer");
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.text().await.unwrap().contains("streams open"));
    // Another principal is not held back by this one's streams.
    let other = http.get(&url).bearer_auth(cluster.keys().operator.expose()).send().await.expect("answer");
    assert_eq!(other.status(), StatusCode::OK);
    // The client leaves one stream (a quiet one: no event will come): its place is freed.
    drop(open.pop());
    poll_until("a closed stream to free its place", Duration::from_secs(10), Duration::from_millis(100), async || {
        let response = http.get(&url).bearer_auth(&key).send().await.ok()?;
        (response.status() == StatusCode::OK).then_some(response)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_slow_requests_are_refused_not_served() {
    let cluster = Cluster::start(1, &[]).await;
    let http = reqwest::Client::new();
    let long = format!("{}/v1/markets?consistency={}", cluster.url(1), "x".repeat(5_000));
    let response = http.get(long).send().await.expect("answer");
    assert_eq!(response.status(), StatusCode::URI_TOO_LONG);
    assert!(response.text().await.unwrap().contains("uri_too_long"));

    let huge = "y".repeat(20_000);
    let response = http.get(format!("{}/health/live", cluster.url(1))).header("x-filler", huge).send().await;
    // Closed without an answer (Err) is refused all the same.
    if let Ok(r) = response {
        assert_eq!(r.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    }

    // A client that starts a request and never finishes its headers is cut off.
    let mut slow = tokio::net::TcpStream::connect(cluster.node(1).http).await.expect("connects");
    slow.write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n").await.expect("writes");
    let mut buf = Vec::new();
    let ended = tokio::time::timeout(Duration::from_secs(20), slow.read_to_end(&mut buf)).await;
    assert!(ended.is_ok(), "a slow client kept its connection for 20 s");
    assert!(!String::from_utf8_lossy(&buf).contains("200 OK"), "the unfinished request was not served");

    // A client that connects and sends nothing at all is cut off too.
    let mut silent = tokio::net::TcpStream::connect(cluster.node(1).http).await.expect("connects");
    let ended = tokio::time::timeout(Duration::from_secs(20), silent.read_to_end(&mut Vec::new())).await;
    assert!(ended.is_ok(), "a client that sent nothing kept its connection for 20 s");

    // The node is still well.
    let ready = http.get(format!("{}/health/ready", cluster.url(1))).send().await.expect("answer");
    assert_eq!(ready.status(), StatusCode::OK);
}

/// Opens a connection and asks for `/health/live` on it, keeping it open: true if served,
/// false if the node closed it without an answer.
async fn served_connection(addr: std::net::SocketAddr) -> (bool, tokio::net::TcpStream) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("the kernel accepts");
    let _ = stream.write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let mut head = [0u8; 12];
    let read =
        tokio::time::timeout(Duration::from_secs(5), stream.read(&mut head)).await.expect("an answer or a close");
    (matches!(read, Ok(n) if n > 0 && head.starts_with(b"HTTP/1.1 200")), stream)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_holds_at_most_its_connection_limit_and_a_closed_connection_frees_its_place() {
    let cluster = Cluster::start(1, &["--connections-max", "3"]).await;
    let addr = cluster.node(1).http;
    // Connections that stay open hold places (the harness's own pooled connection may hold
    // one too): by the fourth at the latest, one is closed without an answer.
    let mut held = Vec::new();
    let mut refused = false;
    for _ in 0..4 {
        let (served, stream) = served_connection(addr).await;
        if !served {
            refused = true;
            break;
        }
        held.push(stream);
    }
    assert!(refused, "{} connections were served at once with a limit of 3", held.len());
    assert!(!held.is_empty(), "the first connection is served");

    // One of them leaves: its place is free again.
    drop(held.pop());
    let served = poll_until("a place to free up", Duration::from_secs(5), Duration::from_millis(50), async || {
        let (served, stream) = served_connection(addr).await;
        served.then_some(stream)
    })
    .await;
    drop(served);
    drop(held);
    let metrics =
        poll_until("the metrics to answer", Duration::from_secs(15), Duration::from_millis(100), async || {
            reqwest::get(format!("{}/metrics", cluster.url(1))).await.ok()?.text().await.ok()
        })
        .await;
    assert!(
        metrics.lines().any(|l| l.starts_with("paddock_http_connections_refused_total ") && !l.ends_with(" 0")),
        "refusals are counted:\n{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_that_keeps_presenting_wrong_keys_is_refused_with_429_before_any_lookup() {
    let cluster = Cluster::start(1, &["--auth-failures-per-ip", "3"]).await;
    let http = reqwest::Client::new();
    let url = format!("{}/v1/markets", cluster.url(1));
    let mut statuses = Vec::new();
    for n in 0..6u64 {
        // Well-formed keys with ids this node has never seen: each would cost a catch-up.
        let guess = format!("pdk_{n:016x}_{}", "ab".repeat(32));
        let response = http.get(&url).bearer_auth(guess).send().await.expect("answer");
        statuses.push(response.status());
    }
    assert_eq!(&statuses[..3], &[StatusCode::UNAUTHORIZED; 3], "within the budget: 401 {statuses:?}");
    assert!(statuses[3..].iter().all(|s| *s == StatusCode::TOO_MANY_REQUESTS), "beyond it: 429 {statuses:?}");
    // A request without any key costs nothing from that budget, and a real key still works.
    let none = http.get(&url).send().await.expect("answer");
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    cluster.client().markets().await.expect("the operator's key works from the same address");
}
