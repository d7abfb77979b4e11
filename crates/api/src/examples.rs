//! An example of every request and answer body, by schema name: put in the OpenAPI document
//! beside each operation's body (a client developer reads them; schemathesis sends the request
//! examples in its examples phase). A unit test decodes each into its wire type and encodes it
//! back to the same JSON, so an example cannot drift from the type it shows.

use serde_json::{json, Value};

/// 10/11, as the book shows a price.
fn odds_10_11() -> Value {
    json!({ "num": 21, "den": 11, "decimal": "1.91", "fractional": "10/11", "american": "-110" })
}

/// One bet of a batch: a single on market 2.
fn batch_bet(key: &str, account_id: u64, selection_id: u64, odds: &str, stake_minor: i64) -> Value {
    json!({
        "idempotency_key": key,
        "bet": {
            "account_id": account_id,
            "type": "single",
            "k": null,
            "legs": [{ "market_id": 2, "selection_id": selection_id, "odds": odds }],
            "stake_per_line_minor": stake_minor,
            "each_way": false,
            "odds_policy": "exact"
        }
    })
}

/// The example of the body named `schema`, if it has one.
pub fn example(schema: &str) -> Option<Value> {
    let odds = odds_10_11();
    let example = match schema {
        // ---- requests ----
        "OpenAccountRequest" => json!({ "account_id": 1001, "currency": "GBP" }),
        "AmountRequest" => json!({ "amount_minor": 5000 }),
        "LimitRequest" => json!({ "kind": "deposit", "window": "week", "amount_minor": 20000 }),
        "ExclusionRequest" => json!({ "kind": "time_out", "duration_days": 7 }),
        "PlaceBetRequest" => json!({
            "account_id": 1001,
            "type": "single",
            "k": null,
            "legs": [{ "market_id": 2, "selection_id": 201, "odds": "10/11" }],
            "stake_per_line_minor": 500,
            "each_way": false,
            "odds_policy": "exact"
        }),
        "PlaceBetsRequest" => json!({
            "bets": [batch_bet("gw-7-000001", 1001, 201, "10/11", 500), batch_bet("gw-7-000002", 1002, 202, "11/4", 1000)]
        }),
        "BatchBetBody" => batch_bet("gw-7-000001", 1001, 201, "10/11", 500),
        "CashOutRequest" => json!({
            "account_id": 1001,
            "value_minor": 475,
            "quoted_versions": [{ "selection_id": 201, "price_version": 1 }]
        }),
        "CreateEventRequest" => json!({
            "event_id": 10,
            "name": "Arsenal v Spurs",
            "sport": "football",
            "competition": "Premier League",
            "starts_at_ms": 1_893_456_000_000_u64
        }),
        "CreateMarketRequest" => json!({
            "market_id": 20,
            "event_id": 10,
            "name": "Match result",
            "currency": "GBP",
            "selections": [
                { "selection_id": 2001, "name": "Arsenal", "odds": "10/11" },
                { "selection_id": 2002, "name": "Draw", "odds": "5/2" },
                { "selection_id": 2003, "name": "Spurs", "odds": "3/1" }
            ],
            "rules": rules()
        }),
        "PriceRequest" => json!({ "odds": "4/5" }),
        "ReasonRequest" => json!({ "reason": "goal under review" }),
        "WithdrawSelectionRequest" => json!({ "selection_id": 2003, "deduction_pence": 25 }),
        "SettleRequest" => json!({
            "results": [{ "selection_id": 2001, "win": "win", "place": null }],
            "reason": "full time 2-1"
        }),
        "BookConfigBody" => json!({
            "rounding": "down",
            "cash_out_margin_bps": 500,
            "limit_cooling_off_ms": 86_400_000_u64,
            "idempotency_ttl_ms": 2_592_000_000_u64,
            "clock_step_max_ms": 300_000
        }),
        "StakeFactorRequest" => json!({ "factor_permille": 250 }),
        "AddMemberRequest" => json!({ "node_id": 4, "peer_addr": "10.0.0.4:7101" }),
        "TransferLeaderRequest" => json!({ "node_id": 2 }),
        "CreatePrincipalRequest" => json!({ "name": "ann@example.com", "role": "bettor", "account_ids": [1001] }),
        "BindAccountRequest" => json!({ "account_id": 1002 }),
        "IssueKeyRequest" => json!({ "ttl_s": 3600, "key_id": null, "key_sha256": null }),
        "OpenIncidentRequest" => json!({ "cause": "data centre A lost power", "node_id": 3 }),
        "CloseIncidentRequest" => json!({ "resolution": "power restored; the node rejoined and caught up" }),
        // ---- answers ----
        "AccountBody" => json!({
            "account_id": 1001,
            "currency": "GBP",
            "balance_minor": 99_500,
            "exposure_minor": 500,
            "debt_minor": 0,
            "excluded_until_ms": null,
            "exclusion": null,
            "limits": [{
                "kind": "deposit",
                "window": "week",
                "amount_minor": 20000,
                "pending": { "amount_minor": 50000, "effective_at_ms": 1_893_542_400_000_u64 }
            }]
        }),
        "BalanceBody" => json!({ "account_id": 1001, "balance_minor": 105_000, "log_index": 55 }),
        "AckBody" => json!({ "log_index": 58 }),
        "BetBody" => json!({
            "bet_id": 1,
            "account_id": 1001,
            "status": "open",
            "rejection": null,
            "type": "single",
            "each_way": false,
            "legs": [{ "market_id": 2, "selection_id": 201, "odds": odds }],
            "stake_minor": 500,
            "lines": 1,
            "paid_minor": 0,
            "placed_at_ms": 1_893_456_000_000_u64
        }),
        "PlacedBody" => json!({
            "bet_id": 1,
            "status": "accepted",
            "odds": [odds],
            "stake_minor": 500,
            "balance_minor": 99_500,
            "log_index": 59
        }),
        "PlacedBatchBody" => json!({
            "results": [
                {
                    "idempotency_key": "gw-7-000001",
                    "status": 201,
                    "replayed": false,
                    "placed": {
                        "bet_id": 1,
                        "status": "accepted",
                        "odds": [odds],
                        "stake_minor": 500,
                        "balance_minor": 99_500,
                        "log_index": 60
                    },
                    "error": null
                },
                {
                    "idempotency_key": "gw-7-000002",
                    "status": 422,
                    "replayed": false,
                    "placed": null,
                    "error": { "code": "odds_changed", "message": "refused by the ledger: odds changed" }
                }
            ],
            "log_index": 60
        }),
        "BatchResultBody" => json!({
            "idempotency_key": "gw-7-000002",
            "status": 422,
            "replayed": false,
            "placed": null,
            "error": { "code": "odds_changed", "message": "refused by the ledger: odds changed" }
        }),
        "CashOutQuoteBody" => json!({
            "bet_id": 1,
            "account_id": 1001,
            "value_minor": 475,
            "quoted_versions": [{ "selection_id": 201, "price_version": 1 }]
        }),
        "CashedOutBody" => json!({ "bet_id": 1, "pending": false, "balance_minor": 99_975, "log_index": 61 }),
        "EventBody" => json!({
            "event_id": 10,
            "name": "Arsenal v Spurs",
            "sport": "football",
            "competition": "Premier League",
            "starts_at_ms": 1_893_456_000_000_u64,
            "market_ids": [20]
        }),
        "MarketBody" => json!({
            "market_id": 2,
            "event_id": 2,
            "name": "Match result",
            "currency": "GBP",
            "status": "open",
            "result_version": 0,
            "rules": rules(),
            "selections": [{
                "selection_id": 201,
                "name": "Arsenal",
                "odds": odds,
                "price_version": 1,
                "withdrawn": false,
                "liability_minor": 454,
                "rule4_deduction_pence": null,
                "result": null
            }]
        }),
        "SettledBody" => json!({ "market_id": 2, "result_version": 1, "bets_settled": 12, "log_index": 70 }),
        "AuditRecordBody" => json!({
            "seq": 0,
            "log_index": 3,
            "at_ms": 1_796_412_163_304_u64,
            "actor": "demo-operator",
            "event": { "type": "event_created", "event_id": 1 },
            "prev_hash": "0000000000000000000000000000000000000000000000000000000000000000",
            "hash": "2c6209459ed9335a6e52d7dfad338353eae741073f7d4c917ec1a53db3046ea6",
            "record": "0003e8898994a4340d64656d6f2d6f70657261746f72000100000000000000000000000000000000000000000000000000000000000000002c6209459ed9335a6e52d7dfad338353eae741073f7d4c917ec1a53db3046ea6"
        }),
        "BookBalancesBody" => json!({
            "applied_index": 53,
            "currencies": [{
                "currency": "GBP",
                "wallets_minor": 2_000_000,
                "reserved_minor": 0,
                "debt_minor": 0,
                "house_book_minor": 0,
                "clearing_minor": -2_000_000,
                "rounding_micro": 0,
                "total_minor": 0
            }]
        }),
        "ClusterBody" => json!({
            "node_id": 1,
            "cluster_id": "paddock",
            "role": "leader",
            "term": 2,
            "leader_id": 1,
            "last_log_index": 53,
            "commit_index": 53,
            "applied_index": 53,
            "snapshot_index": 0,
            "members": [
                { "node_id": 1, "peer_addr": "10.0.0.1:7101", "voter": true, "matched_index": 53, "lag": 0, "ack_age_ms": 12,
                  "entry_format": 1, "version": "0.1.0",
                  "started_at_ms": 1_796_410_000_000_u64 },
                { "node_id": 2, "peer_addr": "10.0.0.2:7101", "voter": true, "matched_index": 53, "lag": 0, "ack_age_ms": 12,
                  "entry_format": 1, "version": "0.1.0",
                  "started_at_ms": 1_796_410_000_000_u64 },
                { "node_id": 3, "peer_addr": "10.0.0.3:7101", "voter": true, "matched_index": 51, "lag": 2, "ack_age_ms": 9,
                  "entry_format": 1, "version": "0.1.0",
                  "started_at_ms": 1_796_410_000_000_u64 }
            ],
            "clock_synchronized": true,
            "clock_offsets": [{ "node_id": 2, "offset_ms": 1, "error_ms": 2 }, { "node_id": 3, "offset_ms": 1, "error_ms": 1 }],
            "book_clock_ms": 1_796_412_163_870_u64,
            "entry_format": 1
        }),
        "StateHashBody" => json!({
            "applied_index": 53,
            "state_hash": "85bcff08e1ed2aae21b48abe35652ca021b2ba46cd4b4678115fcb82a8a3db6b",
            "book_hash": "7e7a9d53115fc9dfb676327a6f71636b90b8bb0a468ecc679dbab92607614a92",
            "bets": 0,
            "accounts": 20
        }),
        "PrincipalBody" => json!({
            "name": "ann@example.com",
            "role": "bettor",
            "account_ids": [1001],
            "created_at_ms": 1_796_412_163_862_u64,
            "created_by": "root",
            "keys": [{
                "key_id": "2c72d1fda61de759",
                "created_at_ms": 1_796_412_163_870_u64,
                "expires_at_ms": 1_796_455_363_870_u64,
                "revoked_at_ms": null
            }]
        }),
        "IssuedKeyBody" => json!({
            "key_id": "ba6deb6906d32f90",
            "key": "pdk_ba6deb6906d32f90_d16090a05dcfd0d4bb704d28f3563f7e1aa29392557b366323702b955d429406",
            "expires_at_ms": 1_796_415_785_299_u64,
            "log_index": 57
        }),
        "IncidentBody" => json!({
            "incident_id": 1,
            "kind": "reported",
            "node_id": 3,
            "opened_at_ms": 1_796_412_185_258_u64,
            "opened_by": "root",
            "cause": "data centre A lost power",
            "closed_at_ms": null,
            "closed_by": null,
            "resolution": null
        }),
        "IncidentOpenedBody" => json!({ "incident_id": 1, "already_open": false, "log_index": 56 }),
        "WhoAmIBody" => json!({
            "principal": "ann@example.com",
            "role": "bettor",
            "key_id": "2c72d1fda61de759",
            "expires_at_ms": 1_796_455_363_870_u64,
            "account_ids": [1001]
        }),
        "SelfCheckBody" => json!({
            "binary_sha256": "379df74b22690ae4ef3b0931697bbe1675f1c1e6d76b042058a75607fb842fde",
            "binary_sha256_at_start": "379df74b22690ae4ef3b0931697bbe1675f1c1e6d76b042058a75607fb842fde",
            "config_sha256": "c1ef14066d889896cf4e591346e44ed110fb88d48cb93bc25e5d4af02d0fbcf5",
            "expected_binary_sha256": null,
            "expected_config_sha256": null,
            "ok": true,
            "mismatches": [],
            "checked_at_ms": 1_796_412_179_424_u64
        }),
        _ => return None,
    };
    Some(example)
}

/// An example value of the path parameter `name`: the objects the body examples name.
pub fn parameter_example(name: &str) -> Option<Value> {
    Some(match name {
        "account_id" => json!(1001),
        "bet_id" => json!(1),
        "market_id" => json!(2),
        "event_id" => json!(10),
        "selection_id" => json!(201),
        "node_id" => json!(2),
        "incident_id" => json!(1),
        "name" => json!("ann@example.com"),
        "key_id" => json!("2c72d1fda61de759"),
        "idempotency_key" => json!("bet-1001-0001"),
        _ => return None,
    })
}

/// What the infrastructure routes answer, which have no schema of their own: media type and
/// example, by path.
pub fn infrastructure_example(path: &str) -> Option<(&'static str, Value)> {
    match path {
        "/health/live" => Some(("application/json", json!({ "status": "live" }))),
        "/health/ready" => Some(("application/json", json!({ "status": "ready", "leader_id": 1 }))),
        "/metrics" => Some((
            "text/plain",
            Value::from(
                "# HELP paddock_clock_synchronized 1 while this node's clock agrees with a majority of the voters' (cluster time); a leader at 0 stamps no command and hands leadership over.\n# TYPE paddock_clock_synchronized gauge\npaddock_clock_synchronized 1\n",
            ),
        )),
        "/v1/openapi.json" => Some(("application/json", json!({ "openapi": "3.1.0", "info": { "title": "Paddock" } }))),
        "/v1/stream/prices" => Some(("text/event-stream", server_sent("market", "MarketBody"))),
        "/v1/stream/cluster" => Some(("text/event-stream", server_sent("cluster", "ClusterBody"))),
        "/v1/backup/snapshot" | "/v1/backup/log" => Some(("application/octet-stream", json!("binary"))),
        "/v1/stream/accounts/{account_id}/bets" => Some(("text/event-stream", server_sent("bet", "BetBody"))),
        _ => None,
    }
}

/// One server-sent event: the body's example with the `log_index` of the change.
fn server_sent(event: &str, body: &str) -> Value {
    let mut data = example(body).unwrap_or_default();
    data["log_index"] = 60.into();
    Value::from(format!("event: {event}\ndata: {data}\n\n"))
}

fn rules() -> Value {
    json!({
        "stake_min_minor": 10,
        "stake_max_minor": 100_000,
        "payout_max_minor": 10_000_000,
        "liability_max_minor": 50_000_000,
        "bet_delay_ms": 0,
        "closes_at_ms": null,
        "each_way": null
    })
}

#[cfg(test)]
mod tests {
    use super::example;
    use crate::wire::*;

    /// Decodes `name`'s example as `T` and encodes it again: the same JSON, so no field is
    /// misspelt, missing or extra.
    fn round_trips<T: serde::de::DeserializeOwned + serde::Serialize>(name: &str) {
        let shown = example(name).unwrap_or_else(|| panic!("{name} has an example"));
        let read: T = serde_json::from_value(shown.clone()).unwrap_or_else(|e| panic!("{name}'s example: {e}"));
        assert_eq!(serde_json::to_value(&read).unwrap(), shown, "{name}'s example is the type's own JSON");
    }

    #[test]
    fn every_example_is_exactly_what_its_type_reads_and_writes() {
        macro_rules! each {
            ($($t:ident),* $(,)?) => { $( round_trips::<$t>(stringify!($t)); )* };
        }
        each!(
            OpenAccountRequest,
            AmountRequest,
            LimitRequest,
            ExclusionRequest,
            PlaceBetRequest,
            PlaceBetsRequest,
            BatchBetBody,
            CashOutRequest,
            CreateEventRequest,
            CreateMarketRequest,
            PriceRequest,
            ReasonRequest,
            WithdrawSelectionRequest,
            SettleRequest,
            BookConfigBody,
            StakeFactorRequest,
            AddMemberRequest,
            TransferLeaderRequest,
            CreatePrincipalRequest,
            BindAccountRequest,
            IssueKeyRequest,
            OpenIncidentRequest,
            CloseIncidentRequest,
            AccountBody,
            BalanceBody,
            AckBody,
            BetBody,
            PlacedBody,
            PlacedBatchBody,
            BatchResultBody,
            CashOutQuoteBody,
            CashedOutBody,
            EventBody,
            MarketBody,
            SettledBody,
            AuditRecordBody,
            BookBalancesBody,
            ClusterBody,
            StateHashBody,
            PrincipalBody,
            IssuedKeyBody,
            IncidentBody,
            IncidentOpenedBody,
            WhoAmIBody,
            SelfCheckBody,
        );
    }

    #[test]
    fn every_body_a_route_names_has_an_example_and_every_other_route_one_of_its_own() {
        for route in crate::openapi::ROUTES {
            for name in route.request.iter().chain(route.response.iter()) {
                assert!(example(name).is_some(), "{} {}: no example of {name}", route.method, route.path);
            }
            for segment in route.path.split('/') {
                if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    assert!(super::parameter_example(name).is_some(), "{}: no example of {name}", route.path);
                }
            }
            if route.response.is_none() {
                assert!(
                    super::infrastructure_example(route.path).is_some(),
                    "{} {}: no example answer",
                    route.method,
                    route.path
                );
            }
        }
    }
}
