//! Who may do what, on a real node: every route of the route table × every role × the
//! bettor's own and another's object, plus requests without credentials.
//!
//! The expectations are written out here, route by route, independently of the route table the
//! node enforces; the test fails if the table has a route this list lacks (a new route cannot
//! be forgotten) or the other way round. Then: a key that was revoked or has expired stops
//! working on every node, the audit trail names the person who acted, a bettor cannot learn
//! whether another's account exists, and no key's secret shows in logs, metrics or the audit
//! trail.

mod support;

use paddock_api::Role;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Duration;
use support::*;

use Role::{Auditor, Bettor, Operator, Service, Trader};

/// Which object a bettor's request names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Object {
    /// No player object: bettors are either admitted or not.
    None,
    /// `{account_id}` in the path.
    PathAccount,
    /// `{bet_id}` in the path.
    PathBet,
    /// `account_id` in the body.
    BodyAccount,
}

/// The specification: method, path, the roles admitted, and which object a bettor must own.
/// `None` for roles: public.
const SPEC: &[(&str, &str, Option<&[Role]>, Object)] = &[
    ("POST", "/v1/accounts", Some(&[Operator, Service]), Object::None),
    ("GET", "/v1/accounts/{account_id}", Some(&[Bettor, Operator, Auditor, Service]), Object::PathAccount),
    ("POST", "/v1/accounts/{account_id}/deposits", Some(&[Bettor, Service]), Object::PathAccount),
    ("POST", "/v1/accounts/{account_id}/withdrawals", Some(&[Bettor, Service]), Object::PathAccount),
    ("PUT", "/v1/accounts/{account_id}/limits", Some(&[Bettor, Operator, Service]), Object::PathAccount),
    ("POST", "/v1/accounts/{account_id}/exclusions", Some(&[Bettor, Operator, Service]), Object::PathAccount),
    ("GET", "/v1/accounts/{account_id}/bets", Some(&[Bettor, Operator, Auditor, Service]), Object::PathAccount),
    ("POST", "/v1/bets", Some(&[Bettor, Service]), Object::BodyAccount),
    ("POST", "/v1/bets/batch", Some(&[Bettor, Service]), Object::BodyAccount),
    ("GET", "/v1/bets/{bet_id}", Some(&[Bettor, Operator, Auditor, Service]), Object::PathBet),
    ("GET", "/v1/bets/{bet_id}/cash-out-quote", Some(&[Bettor, Operator, Auditor, Service]), Object::PathBet),
    (
        "GET",
        "/v1/accounts/{account_id}/bets/by-key/{idempotency_key}",
        Some(&[Bettor, Operator, Auditor, Service]),
        Object::PathAccount,
    ),
    ("POST", "/v1/bets/{bet_id}/cash-out", Some(&[Bettor, Service]), Object::PathBet),
    ("POST", "/v1/events", Some(&[Trader, Operator]), Object::None),
    ("GET", "/v1/events", Some(&[Bettor, Trader, Operator, Auditor, Service]), Object::None),
    ("GET", "/v1/events/{event_id}", Some(&[Bettor, Trader, Operator, Auditor, Service]), Object::None),
    ("POST", "/v1/markets", Some(&[Trader, Operator]), Object::None),
    ("GET", "/v1/markets", Some(&[Bettor, Trader, Operator, Auditor, Service]), Object::None),
    ("GET", "/v1/markets/{market_id}", Some(&[Bettor, Trader, Operator, Auditor, Service]), Object::None),
    ("PUT", "/v1/markets/{market_id}/selections/{selection_id}/price", Some(&[Trader, Operator]), Object::None),
    ("POST", "/v1/markets/{market_id}/suspend", Some(&[Trader, Operator]), Object::None),
    ("POST", "/v1/markets/{market_id}/resume", Some(&[Trader, Operator]), Object::None),
    ("POST", "/v1/markets/{market_id}/close", Some(&[Trader, Operator]), Object::None),
    ("POST", "/v1/markets/{market_id}/withdraw-selection", Some(&[Trader, Operator]), Object::None),
    ("POST", "/v1/markets/{market_id}/settle", Some(&[Operator]), Object::None),
    ("POST", "/v1/markets/{market_id}/resettle", Some(&[Operator]), Object::None),
    ("POST", "/v1/markets/{market_id}/void", Some(&[Operator]), Object::None),
    ("GET", "/v1/stream/prices", Some(&[Bettor, Trader, Operator, Auditor, Service]), Object::None),
    ("GET", "/v1/stream/cluster", Some(&[Operator, Auditor, Service]), Object::None),
    ("GET", "/v1/stream/accounts/{account_id}/bets", Some(&[Bettor, Operator, Auditor, Service]), Object::PathAccount),
    ("GET", "/v1/audit", Some(&[Operator, Auditor]), Object::None),
    ("GET", "/v1/book/balances", Some(&[Operator, Auditor]), Object::None),
    ("GET", "/v1/config", Some(&[Operator, Auditor]), Object::None),
    ("PUT", "/v1/config", Some(&[Operator]), Object::None),
    ("PUT", "/v1/accounts/{account_id}/stake-factor", Some(&[Operator]), Object::None),
    ("GET", "/v1/cluster", Some(&[Operator, Auditor, Service]), Object::None),
    ("GET", "/v1/cluster/state-hash", Some(&[Operator]), Object::None),
    ("POST", "/v1/cluster/members", Some(&[Operator]), Object::None),
    ("POST", "/v1/cluster/members/{node_id}/promote", Some(&[Operator]), Object::None),
    ("POST", "/v1/cluster/members/{node_id}/remove", Some(&[Operator]), Object::None),
    ("POST", "/v1/cluster/members/{node_id}/demote", Some(&[Operator]), Object::None),
    ("POST", "/v1/cluster/transfer-leader", Some(&[Operator]), Object::None),
    ("POST", "/v1/principals", Some(&[Operator]), Object::None),
    ("GET", "/v1/principals", Some(&[Operator, Auditor]), Object::None),
    ("POST", "/v1/principals/{name}/accounts", Some(&[Operator]), Object::None),
    ("POST", "/v1/principals/{name}/keys", Some(&[Operator]), Object::None),
    ("POST", "/v1/keys/{key_id}/revoke", Some(&[Operator]), Object::None),
    ("GET", "/v1/backup/snapshot", Some(&[Operator]), Object::None),
    ("GET", "/v1/backup/log", Some(&[Operator]), Object::None),
    ("GET", "/v1/incidents", Some(&[Operator, Auditor]), Object::None),
    ("GET", "/v1/incidents/{incident_id}", Some(&[Operator, Auditor]), Object::None),
    ("POST", "/v1/incidents", Some(&[Operator]), Object::None),
    ("POST", "/v1/incidents/{incident_id}/close", Some(&[Operator]), Object::None),
    ("GET", "/v1/whoami", Some(&[Bettor, Trader, Operator, Auditor, Service]), Object::None),
    ("GET", "/v1/self-check", Some(&[Operator, Auditor]), Object::None),
    ("GET", "/v1/openapi.json", None, Object::None),
    ("GET", "/health/live", None, Object::None),
    ("GET", "/health/ready", None, Object::None),
    ("GET", "/metrics", None, Object::None),
];

#[test]
fn the_specification_lists_exactly_the_routes_the_node_serves() {
    let spec: BTreeSet<(&str, &str)> = SPEC.iter().map(|(m, p, _, _)| (*m, *p)).collect();
    let table: BTreeSet<(&str, &str)> = paddock_api::openapi::ROUTES.iter().map(|r| (r.method, r.path)).collect();
    let missing: Vec<_> = table.difference(&spec).collect();
    let extra: Vec<_> = spec.difference(&table).collect();
    assert!(missing.is_empty(), "routes without an authorization expectation here: {missing:?}");
    assert!(extra.is_empty(), "expectations for routes the node does not serve: {extra:?}");
    assert_eq!(spec.len(), SPEC.len(), "a route is listed twice");
}

/// The principals of the test, each with a key.
struct People {
    bettor: String,
    trader: String,
    operator: String,
    auditor: String,
    service: String,
}

impl People {
    fn key(&self, role: Role) -> &str {
        match role {
            Bettor => &self.bettor,
            Trader => &self.trader,
            Operator => &self.operator,
            Auditor => &self.auditor,
            Service => &self.service,
        }
    }
}

/// What a request to `path` sends as body: a well-formed bet (or batch of one) for the bet
/// routes (so that the handler reaches its ownership check), an empty object for other writes.
fn body_for(method: &str, path: &str, account: u64) -> Option<Value> {
    if method == "GET" {
        return None;
    }
    if path == "/v1/bets" {
        return Some(serde_json::to_value(single(account, 1, 100)).expect("bet serialises"));
    }
    if path == "/v1/bets/batch" {
        let bet = serde_json::to_value(single(account, 1, 100)).expect("bet serialises");
        return Some(json!({ "bets": [{ "idempotency_key": paddock_client::fresh_key(), "bet": bet }] }));
    }
    Some(json!({}))
}

async fn send(
    http: &reqwest::Client,
    base: &str,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, String) {
    let mut request = http
        .request(Method::from_bytes(method.as_bytes()).expect("valid method"), format!("{base}{path}"))
        .header("idempotency-key", paddock_client::fresh_key());
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap_or_else(|e| panic!("{method} {path}: no answer: {e}"));
    let status = response.status();
    // Streams never end: their status and headers are the answer.
    let text = if path.contains("/stream/") && status.is_success() {
        String::new()
    } else {
        response.text().await.unwrap_or_default()
    };
    (status, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_admits_exactly_its_roles_and_a_bettor_only_on_its_own_objects() {
    let cluster = Cluster::start(1, &[]).await;
    let harness = cluster.client();
    seed_market(&harness, 1, 1).await;
    for account in [1, 2] {
        harness.open_account(account, "GBP", &paddock_client::fresh_key()).await.expect("account opens");
        harness.deposit(account, 100_000, &paddock_client::fresh_key()).await.expect("deposit");
    }
    let own_bet = harness.place_bet(&single(1, 1, 100), &paddock_client::fresh_key()).await.expect("bet").bet_id;
    let other_bet = harness.place_bet(&single(2, 1, 100), &paddock_client::fresh_key()).await.expect("bet").bet_id;
    let mut keys = Vec::new();
    for (name, role, accounts) in [
        ("ann", Bettor, &[1u64][..]),
        ("bob", Bettor, &[2][..]),
        ("tess", Trader, &[][..]),
        ("olga", Operator, &[][..]),
        ("aud", Auditor, &[][..]),
        ("gateway", Service, &[][..]),
    ] {
        harness.create_principal(name, role, accounts, &paddock_client::fresh_key()).await.expect("principal");
        keys.push(harness.issue_key(name, None).await.expect("key"));
    }
    let people = People {
        bettor: keys[0].clone(),
        trader: keys[2].clone(),
        operator: keys[3].clone(),
        auditor: keys[4].clone(),
        service: keys[5].clone(),
    };
    let base = cluster.url(1);
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("http client");
    let fill = |path: &str, account: u64, bet: u64| {
        path.replace("{account_id}", &account.to_string())
            .replace("{bet_id}", &bet.to_string())
            .replace("{market_id}", "1")
            .replace("{event_id}", "1")
            .replace("{selection_id}", "11")
            .replace("{node_id}", "99")
            .replace("{name}", "nobody-here")
            .replace("{key_id}", "00000000000000ff")
            .replace("{incident_id}", "999")
            .replace("{idempotency_key}", "some-key")
    };
    let mut failures = Vec::new();
    let mut checked = 0;
    for (method, template, roles, object) in SPEC {
        let own = fill(template, 1, own_bet);
        let Some(roles) = roles else {
            let (status, text) = send(&http, &base, method, &own, None, None).await;
            if !status.is_success() && status != StatusCode::SERVICE_UNAVAILABLE {
                failures.push(format!("{method} {template} is public but answered {status} {text}"));
            }
            continue;
        };
        let (status, text) = send(&http, &base, method, &own, None, body_for(method, template, 1)).await;
        if status != StatusCode::UNAUTHORIZED || code_of(&text) != "unauthenticated" {
            failures.push(format!("{method} {template} without a key: {status} {text}"));
        }
        // axum serves HEAD with the GET handler: it must be authorized as that GET.
        if *method == "GET" && !template.contains("/stream/") {
            let (status, _) = send(&http, &base, "HEAD", &own, None, None).await;
            if status != StatusCode::UNAUTHORIZED {
                failures.push(format!("HEAD {template} without a key: {status}"));
            }
            let (status, _) = send(&http, &base, "HEAD", &own, Some(people.key(Bettor)), None).await;
            if !roles.contains(&Bettor) && status != StatusCode::FORBIDDEN {
                failures.push(format!("HEAD {template} as a bettor: {status}"));
            }
        }
        for role in Role::ALL {
            let (status, text) =
                send(&http, &base, method, &own, Some(people.key(role)), body_for(method, template, 1)).await;
            checked += 1;
            let admitted = roles.contains(&role);
            let refused = status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN;
            if admitted && refused {
                failures.push(format!("{method} {template} as {role} (own object) was refused: {status} {text}"));
            }
            if !admitted && (status != StatusCode::FORBIDDEN || code_of(&text) != "forbidden") {
                failures.push(format!("{method} {template} as {role}: expected 403 forbidden, got {status} {text}"));
            }
            if role == Bettor && admitted && *object != Object::None {
                let other = fill(template, 2, other_bet);
                let (status, text) =
                    send(&http, &base, method, &other, Some(&people.bettor), body_for(method, template, 2)).await;
                checked += 1;
                if status != StatusCode::FORBIDDEN || code_of(&text) != "forbidden" {
                    failures.push(format!("{method} {template} as a bettor on another's object: {status} {text}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
    assert!(checked > 150, "the matrix ran: {checked} checks");

    // No enumeration: another's account and an account that does not exist look the same.
    let theirs = send(&http, &base, "GET", "/v1/accounts/2", Some(&people.bettor), None).await;
    let nobody = send(&http, &base, "GET", "/v1/accounts/987654", Some(&people.bettor), None).await;
    assert_eq!(theirs, nobody, "a bettor cannot tell another's account from a missing one");
    let theirs = send(&http, &base, "GET", &format!("/v1/bets/{other_bet}"), Some(&people.bettor), None).await;
    let nobody = send(&http, &base, "GET", "/v1/bets/987654", Some(&people.bettor), None).await;
    assert_eq!(theirs, nobody, "nor another's bet from a missing one");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_and_expired_keys_stop_working_on_every_node_and_the_audit_trail_names_the_person() {
    let cluster = Cluster::start(3, &[]).await;
    let harness = cluster.client();
    harness.create_principal("olga", Operator, &[], &paddock_client::fresh_key()).await.expect("principal");
    let olga_key = harness.issue_key("olga", None).await.expect("key");
    let olga_id = olga_key[4..20].to_string();
    let short_key = harness.issue_key("olga", Some(1)).await.expect("a one-second key");
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("http client");

    // Olga acts; the audit trail says it was Olga, whichever node she asked.
    let olga = paddock_client::Client::new(vec![cluster.url(2)], Duration::from_secs(10)).with_token(&olga_key);
    olga.create_event(&event_request(5), &paddock_client::fresh_key()).await.expect("olga creates an event");
    let trail: Vec<Value> =
        serde_json::from_str(&send(&http, &cluster.url(3), "GET", "/v1/audit", Some(&olga_key), None).await.1)
            .expect("audit json");
    let created = trail.iter().find(|r| r["event"]["type"] == "event_created").expect("event");
    assert_eq!(created["actor"], "olga");
    assert!(trail.iter().any(|r| r["actor"] == "root" && r["event"]["type"] == "key_issued"));

    // Expiry: the one-second key works at first, then not.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let (status, _) = send(&http, &cluster.url(1), "GET", "/v1/whoami", Some(&short_key), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "an expired key is refused");

    // Revocation on one node holds on every node once applied there.
    harness.revoke_key(&olga_id, &paddock_client::fresh_key()).await.expect("revoke");
    for id in [1, 2, 3] {
        let url = cluster.url(id);
        poll_until(
            &format!("node {id} refuses the revoked key"),
            Duration::from_secs(10),
            Duration::from_millis(50),
            async || {
                let (status, _) = send(&http, &url, "GET", "/v1/whoami", Some(&olga_key), None).await;
                (status == StatusCode::UNAUTHORIZED).then_some(())
            },
        )
        .await;
    }

    // Secrets never leave the client: not in logs, metrics or the audit trail.
    let secrets: Vec<String> = [olga_key.clone(), short_key.clone(), cluster.keys().operator.expose()]
        .iter()
        .map(|k| k[21..].to_string())
        .collect();
    let metrics = http.get(format!("{}/metrics", cluster.url(1))).send().await.expect("metrics").text().await.unwrap();
    let audit = send(&http, &cluster.url(1), "GET", "/v1/audit", Some(&cluster.keys().operator.expose()), None).await.1;
    for id in [1, 2, 3] {
        let log = cluster.log_text(id);
        for secret in &secrets {
            assert!(!log.contains(secret.as_str()), "node {id}'s log holds a key's secret");
        }
    }
    for secret in &secrets {
        assert!(!metrics.contains(secret.as_str()) && !audit.contains(secret.as_str()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_be_kept_for_the_scrapers_keys() {
    let cluster = Cluster::start(1, &["--metrics-require-key"]).await;
    let http = reqwest::Client::new();
    let url = format!("{}/metrics", cluster.url(1));
    let anonymous = http.get(&url).send().await.expect("answer");
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(code_of(&anonymous.text().await.unwrap()), "unauthenticated");
    let wrong = http.get(&url).bearer_auth(format!("pdk_{:016x}_{}", 7, "ab".repeat(32))).send().await.unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    for key in [cluster.keys().service.expose(), cluster.keys().operator.expose()] {
        let scrape = http.get(&url).bearer_auth(key).send().await.expect("answer");
        assert_eq!(scrape.status(), StatusCode::OK);
        assert!(scrape.text().await.unwrap().contains("paddock_http_requests_total"));
    }
    // Health stays public: a load balancer checks it without a key.
    let ready = http.get(format!("{}/health/ready", cluster.url(1))).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
}
