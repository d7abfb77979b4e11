//! Malformed or refused requests get a 4xx with a stable error code, never a 5xx, and leave
//! the book exactly as it was.

mod support;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::*;

/// One raw request and what must come back.
struct Case {
    what: &'static str,
    method: Method,
    path: String,
    headers: Vec<(&'static str, String)>,
    anonymous: bool,
    /// Raw body bytes; sent with `Content-Type: application/json` unless `no_content_type`.
    body: Option<Vec<u8>>,
    no_content_type: bool,
    status: u16,
    code: &'static str,
}

fn case(what: &'static str, method: Method, path: &str, status: u16, code: &'static str) -> Case {
    Case {
        what,
        method,
        path: path.into(),
        headers: Vec::new(),
        body: None,
        no_content_type: false,
        anonymous: false,
        status,
        code,
    }
}

impl Case {
    fn json(mut self, body: Value) -> Case {
        self.body = Some(serde_json::to_vec(&body).expect("json encodes"));
        self
    }
    fn raw(mut self, body: &[u8]) -> Case {
        self.body = Some(body.to_vec());
        self
    }
    fn header(mut self, name: &'static str, value: &str) -> Case {
        self.headers.push((name, value.into()));
        self
    }
    fn key(self, key: &str) -> Case {
        self.header("idempotency-key", key)
    }
    /// Sends no credentials (every other case sends a key its route admits).
    fn anonymous(mut self) -> Case {
        self.anonymous = true;
        self
    }
    fn without_content_type(mut self) -> Case {
        self.no_content_type = true;
        self
    }
}

/// A key of the harness whose role the route admits (the operator's for unknown routes).
fn key_for(ring: &[(paddock_api::Role, String)], method: &str, path: &str) -> String {
    let route = paddock_api::openapi::route_for_path(method, path);
    let admitted = ring.iter().find(|(role, _)| route.is_some_and(|r| r.access.admits(*role)));
    admitted.unwrap_or(&ring[0]).1.clone()
}

fn bet(account_id: u64, odds: &str, stake: i64) -> Value {
    json!({
        "account_id": account_id,
        "type": "single",
        "legs": [{ "market_id": 1, "selection_id": 11, "odds": odds }],
        "stake_per_line_minor": stake,
        "odds_policy": "any",
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_4xx_with_a_stable_code_and_changes_nothing() {
    let cluster = Cluster::start(1, &[]).await;
    let client = cluster.client();
    seed_market(&client, 1, 1).await;
    client.open_account(1, "GBP", &paddock_client::fresh_key()).await.expect("account opens");
    client.deposit(1, 10_000, "known-key").await.expect("deposit");
    let before = cluster.state_hash(1).await.expect("state hash");

    let big = {
        let mut b = br#"{"amount_minor": 1, "pad": ""#.to_vec();
        b.extend(std::iter::repeat_n(b'x', 70 * 1024));
        b.extend(br#""}"#);
        b
    };
    let long_key = "k".repeat(65);
    let cases = vec![
        case("malformed JSON", Method::POST, "/v1/accounts/1/deposits", 400, "malformed_body")
            .key("k-malformed")
            .raw(br#"{"amount_minor": 5"#),
        case("wrong type", Method::POST, "/v1/accounts/1/deposits", 400, "malformed_body")
            .key("k-type")
            .json(json!({ "amount_minor": "five" })),
        case("unknown field", Method::POST, "/v1/accounts/1/deposits", 400, "malformed_body")
            .key("k-unknown")
            .json(json!({ "amount_minor": 5, "amount_minr": 5 })),
        case("missing field", Method::POST, "/v1/accounts", 400, "malformed_body")
            .key("k-case-1")
            .json(json!({ "account_id": 9 })),
        case("body over 64 KiB", Method::POST, "/v1/accounts/1/deposits", 413, "body_too_large").key("k-big").raw(&big),
        case("no Content-Type", Method::POST, "/v1/accounts/1/deposits", 415, "unsupported_media_type")
            .key("k-ctype")
            .raw(br#"{"amount_minor": 5}"#)
            .without_content_type(),
        case("no Idempotency-Key", Method::POST, "/v1/accounts/1/deposits", 400, "idempotency_key_missing")
            .json(json!({ "amount_minor": 5 })),
        case("65-character Idempotency-Key", Method::POST, "/v1/accounts/1/deposits", 400, "idempotency_key_invalid")
            .key(&long_key)
            .json(json!({ "amount_minor": 5 })),
        case("non-numeric account id", Method::GET, "/v1/accounts/abc", 400, "bad_parameter"),
        case("non-numeric bet id", Method::GET, "/v1/bets/-1", 400, "bad_parameter"),
        case("deposit to an unknown account", Method::POST, "/v1/accounts/999/deposits", 404, "account_not_found")
            .key("k-nobody")
            .json(json!({ "amount_minor": 5 })),
        case("read of an unknown account", Method::GET, "/v1/accounts/999", 404, "account_not_found"),
        case("read of an unknown bet", Method::GET, "/v1/bets/999", 404, "bet_not_found"),
        case("read of an unknown market", Method::GET, "/v1/markets/999", 404, "market_not_found"),
        case("the bets of an unknown account", Method::GET, "/v1/accounts/999/bets", 404, "account_not_found"),
        case("unknown route", Method::GET, "/v1/nothing-here", 404, "not_found"),
        case("wrong method", Method::DELETE, "/v1/accounts/1", 405, "method_not_allowed"),
        case("wrong method on a collection", Method::PUT, "/v1/bets", 405, "method_not_allowed").key("k-case-2"),
        case("an operator route without a key", Method::POST, "/v1/events", 401, "unauthenticated")
            .key("k-case-3")
            .anonymous()
            .json(serde_json::to_value(event_request(2)).expect("json")),
        case("a malformed key", Method::POST, "/v1/events", 401, "unauthenticated")
            .key("k-case-4")
            .anonymous()
            .header("authorization", "Bearer pdk_not-a-key")
            .json(serde_json::to_value(event_request(2)).expect("json")),
        case("a well-formed key no node knows", Method::GET, "/v1/accounts/1", 401, "unauthenticated")
            .anonymous()
            .header("authorization", &format!("Bearer {}", paddock_client::new_api_key().expose())),
        case("X-Operator names nobody any more", Method::POST, "/v1/events", 401, "unauthenticated")
            .key("k-case-4b")
            .anonymous()
            .header("x-operator", "root")
            .json(serde_json::to_value(event_request(2)).expect("json")),
        case("an event id already taken", Method::POST, "/v1/events", 409, "event_exists")
            .key("k-case-5")
            .json(serde_json::to_value(event_request(1)).expect("json")),
        case("a price of \"banana\"", Method::PUT, "/v1/markets/1/selections/11/price", 400, "bad_parameter")
            .key("k-price-banana")
            .json(json!({ "odds": "banana" })),
        case(
            "a price for an unknown market",
            Method::PUT,
            "/v1/markets/9/selections/91/price",
            404,
            "market_not_found",
        )
        .key("k-price-unknown")
        .json(json!({ "odds": "2/1" })),
        case("Content-Type text/plain", Method::POST, "/v1/accounts/1/deposits", 415, "unsupported_media_type")
            .key("k-text")
            .header("content-type", "text/plain")
            .raw(br#"{"amount_minor": 5}"#)
            .without_content_type(),
        case("odds \"banana\"", Method::POST, "/v1/bets", 400, "bad_parameter")
            .key("k-banana")
            .json(bet(1, "banana", 100)),
        case("negative stake", Method::POST, "/v1/bets", 400, "amount_must_be_positive")
            .key("k-negative")
            .json(bet(1, "2/1", -100)),
        case("negative deposit", Method::POST, "/v1/accounts/1/deposits", 400, "amount_must_be_positive")
            .key("k-negative-deposit")
            .json(json!({ "amount_minor": -5 })),
        case("same key, different body", Method::POST, "/v1/accounts/1/deposits", 409, "idempotency_key_reused")
            .key("known-key")
            .json(json!({ "amount_minor": 10_001 })),
        case("bad consistency", Method::GET, "/v1/accounts/1?consistency=eventual", 400, "bad_parameter"),
        case("bad consistency on a list", Method::GET, "/v1/markets?consistency=", 400, "bad_parameter"),
    ];

    let http = reqwest::Client::builder().timeout(std::time::Duration::from_secs(10)).build().expect("http client");
    let base = cluster.url(1);
    let mut failures = Vec::new();
    let ring = cluster.keys().ring();
    for c in &cases {
        let mut request = http.request(c.method.clone(), format!("{base}{}", c.path));
        if !c.anonymous {
            request = request.bearer_auth(key_for(&ring, c.method.as_str(), &c.path));
        }
        for (name, value) in &c.headers {
            request = request.header(*name, value);
        }
        if let Some(body) = &c.body {
            if !c.no_content_type {
                request = request.header("content-type", "application/json");
            }
            request = request.body(body.clone());
        }
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                failures.push(format!("{}: no answer: {e}", c.what));
                continue;
            }
        };
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let code = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["error"]["code"].as_str().map(str::to_string))
            .unwrap_or_default();
        if status.is_server_error() {
            failures.push(format!("{}: server error {status}: {text}", c.what));
        } else if status != StatusCode::from_u16(c.status).expect("valid status") || code != c.code {
            failures.push(format!("{}: expected {} {}, got {status} {text}", c.what, c.status, c.code));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));

    // Nothing changed the book (rejected commands may still have gone through the log, and
    // the ledger keeps each refused key's answer: only those records may differ).
    let after = cluster.state_hash(1).await.expect("state hash");
    assert_eq!(after.book_hash, before.book_hash, "a refused request changed the book");
    assert_eq!((after.accounts, after.bets), (before.accounts, before.bets));
    let account = client.account(1).await.expect("account 1");
    assert_eq!((account.balance_minor, account.exposure_minor), (10_000, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_state_changing_route_refuses_a_request_without_an_idempotency_key() {
    // Generated from the route table, so that a new write route cannot forget the key (a
    // batch: the key of each item).
    let cluster = Cluster::start(1, &[]).await;
    let client = cluster.client();
    seed_market(&client, 1, 1).await;
    client.open_account(1, "GBP", "open-1").await.expect("account opens");
    let before = cluster.state_hash(1).await.expect("state hash");
    let http = reqwest::Client::builder().timeout(std::time::Duration::from_secs(10)).build().expect("http client");
    let mut failures = Vec::new();
    let ring = cluster.keys().ring();
    let writes: Vec<_> = paddock_api::openapi::ROUTES.iter().filter(|r| r.method != "GET").collect();
    assert!(writes.len() >= 20, "the route table lists the write routes");
    for route in &writes {
        let path = route.path.replace("{account_id}", "1").replace("{market_id}", "1").replace("{selection_id}", "11");
        let path = regex_free_params(&path);
        let method = Method::from_bytes(route.method.as_bytes()).expect("route methods are valid");
        // A batch carries a key per item: an item without one is what must be refused.
        let body = if route.keys_in_body {
            let bet = serde_json::to_value(single(1, 1, 100)).expect("bet serialises");
            serde_json::json!({ "bets": [{ "bet": bet }] }).to_string()
        } else {
            "{}".to_string()
        };
        let response = http
            .request(method, format!("{}{path}", cluster.url(1)))
            .bearer_auth(key_for(&ring, route.method, &path))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await;
        let Ok(response) = response else {
            failures.push(format!("{} {path}: no answer", route.method));
            continue;
        };
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let named = if route.keys_in_body {
            text.contains("\"malformed_body\"") && text.contains("idempotency_key")
        } else {
            text.contains("\"idempotency_key_missing\"")
        };
        if status != StatusCode::BAD_REQUEST || !named {
            failures
                .push(format!("{} {path}: expected 400 idempotency_key_missing, got {status} {text}", route.method));
        }
    }
    assert!(failures.is_empty(), "{} of {} write routes:\n{}", failures.len(), writes.len(), failures.join("\n"));
    let after = cluster.state_hash(1).await.expect("state hash");
    assert_eq!(after, before, "a request without a key changed the book");
}

/// Replaces every remaining `{param}` of a route template with 1.
fn regex_free_params(path: &str) -> String {
    path.split('/').map(|s| if s.starts_with('{') && s.ends_with('}') { "1" } else { s }).collect::<Vec<_>>().join("/")
}
