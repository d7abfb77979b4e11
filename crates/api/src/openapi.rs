//! The OpenAPI 3.1 document served at `/v1/openapi.json`.
//!
//! Built from one table of routes, so that adding a route means adding one row here; the node
//! has a test that every route it serves appears in this table and the other way round.

use crate::error::ErrorBody;
use crate::wire::*;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItem};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::response::{ResponseBuilder, ResponsesBuilder};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, PathsBuilder, Ref, Required,
};
use utoipa::{PartialSchema, ToSchema};

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Audience {
    /// Players' systems (accounts, bets).
    Player,
    /// Trading and operations staff: needs `X-Operator`.
    Operator,
    /// Infrastructure: health, metrics, cluster.
    Infra,
}

/// One route of the API.
#[derive(Clone, Copy, Debug)]
pub struct Route {
    /// GET, POST, PUT.
    pub method: &'static str,
    /// Path with `{param}` placeholders.
    pub path: &'static str,
    /// One line.
    pub summary: &'static str,
    /// Request body schema name, if any.
    pub request: Option<&'static str>,
    /// Success status.
    pub status: u16,
    /// Success body schema name, if JSON.
    pub response: Option<&'static str>,
    /// Needs an `Idempotency-Key` header.
    pub idempotent: bool,
    /// Who calls it.
    pub audience: Audience,
}

const fn r(
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    request: Option<&'static str>,
    status: u16,
    response: Option<&'static str>,
    idempotent: bool,
    audience: Audience,
) -> Route {
    Route { method, path, summary, request, status, response, idempotent, audience }
}

use Audience::{Infra, Operator, Player};

/// Every route the node serves.
pub const ROUTES: &[Route] = &[
    r("POST", "/v1/accounts", "Open an account", Some("OpenAccountRequest"), 201, Some("AccountBody"), true, Player),
    r("GET", "/v1/accounts/{account_id}", "Read balance and exposure", None, 200, Some("AccountBody"), false, Player),
    r(
        "POST",
        "/v1/accounts/{account_id}/deposits",
        "Deposit",
        Some("AmountRequest"),
        200,
        Some("BalanceBody"),
        true,
        Player,
    ),
    r(
        "POST",
        "/v1/accounts/{account_id}/withdrawals",
        "Withdraw",
        Some("AmountRequest"),
        200,
        Some("BalanceBody"),
        true,
        Player,
    ),
    r(
        "PUT",
        "/v1/accounts/{account_id}/limits",
        "Set a deposit or loss limit",
        Some("LimitRequest"),
        200,
        Some("AckBody"),
        true,
        Player,
    ),
    r(
        "POST",
        "/v1/accounts/{account_id}/exclusions",
        "Self-exclude or take a time-out",
        Some("ExclusionRequest"),
        200,
        Some("AckBody"),
        true,
        Player,
    ),
    r("GET", "/v1/accounts/{account_id}/bets", "List an account's bets", None, 200, Some("BetBody"), false, Player),
    r("POST", "/v1/bets", "Place a bet of any type", Some("PlaceBetRequest"), 201, Some("PlacedBody"), true, Player),
    r("GET", "/v1/bets/{bet_id}", "Read a bet", None, 200, Some("BetBody"), false, Player),
    r(
        "POST",
        "/v1/bets/{bet_id}/cash-out",
        "Cash out at a quoted value",
        Some("CashOutRequest"),
        200,
        Some("CashedOutBody"),
        true,
        Player,
    ),
    r("POST", "/v1/events", "Create an event", Some("CreateEventRequest"), 201, Some("AckBody"), true, Operator),
    r(
        "POST",
        "/v1/markets",
        "Create a market with selections",
        Some("CreateMarketRequest"),
        201,
        Some("AckBody"),
        true,
        Operator,
    ),
    r("GET", "/v1/markets", "List markets", None, 200, Some("MarketBody"), false, Player),
    r("GET", "/v1/markets/{market_id}", "Read a market and its prices", None, 200, Some("MarketBody"), false, Player),
    r(
        "PUT",
        "/v1/markets/{market_id}/selections/{selection_id}/price",
        "Set a price",
        Some("PriceRequest"),
        200,
        Some("AckBody"),
        true,
        Operator,
    ),
    r(
        "POST",
        "/v1/markets/{market_id}/suspend",
        "Suspend",
        Some("ReasonRequest"),
        200,
        Some("AckBody"),
        true,
        Operator,
    ),
    r("POST", "/v1/markets/{market_id}/resume", "Resume", Some("ReasonRequest"), 200, Some("AckBody"), true, Operator),
    r("POST", "/v1/markets/{market_id}/close", "Close", Some("ReasonRequest"), 200, Some("AckBody"), true, Operator),
    r(
        "POST",
        "/v1/markets/{market_id}/withdraw-selection",
        "Withdraw a runner (Rule 4)",
        Some("WithdrawSelectionRequest"),
        200,
        Some("AckBody"),
        true,
        Operator,
    ),
    r(
        "POST",
        "/v1/markets/{market_id}/settle",
        "Settle",
        Some("SettleRequest"),
        200,
        Some("SettledBody"),
        true,
        Operator,
    ),
    r(
        "POST",
        "/v1/markets/{market_id}/resettle",
        "Resettle after a corrected result",
        Some("SettleRequest"),
        200,
        Some("SettledBody"),
        true,
        Operator,
    ),
    r("POST", "/v1/markets/{market_id}/void", "Void", Some("ReasonRequest"), 200, Some("SettledBody"), true, Operator),
    r(
        "GET",
        "/v1/stream/prices",
        "Server-sent events: price and market status changes",
        None,
        200,
        None,
        false,
        Player,
    ),
    r(
        "GET",
        "/v1/stream/accounts/{account_id}/bets",
        "Server-sent events: an account's bet updates",
        None,
        200,
        None,
        false,
        Player,
    ),
    r("GET", "/v1/audit", "Export the audit trail (hash chain)", None, 200, Some("AuditRecordBody"), false, Operator),
    r("GET", "/v1/cluster", "Members, roles, leader, term, indexes, lag", None, 200, Some("ClusterBody"), false, Infra),
    r(
        "GET",
        "/v1/cluster/state-hash",
        "State hash at the applied index",
        None,
        200,
        Some("StateHashBody"),
        false,
        Infra,
    ),
    r("POST", "/v1/cluster/members", "Add a learner", Some("AddMemberRequest"), 200, Some("AckBody"), true, Operator),
    r(
        "POST",
        "/v1/cluster/members/{node_id}/promote",
        "Promote a learner to voter",
        None,
        200,
        Some("AckBody"),
        true,
        Operator,
    ),
    r("POST", "/v1/cluster/members/{node_id}/remove", "Remove a node", None, 200, Some("AckBody"), true, Operator),
    r(
        "POST",
        "/v1/cluster/transfer-leader",
        "Hand leadership to a node",
        Some("TransferLeaderRequest"),
        200,
        Some("AckBody"),
        true,
        Operator,
    ),
    r("GET", "/v1/openapi.json", "This document", None, 200, None, false, Infra),
    r("GET", "/health/live", "The process is up", None, 200, None, false, Infra),
    r("GET", "/health/ready", "Member of a cluster with a known leader and caught up", None, 200, None, false, Infra),
    r("GET", "/metrics", "Prometheus metrics", None, 200, None, false, Infra),
];

fn schemas() -> Vec<(String, utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>)> {
    macro_rules! s {
        ($($t:ty),*) => { vec![$((<$t>::name().to_string(), <$t>::schema()),)*] };
    }
    s!(
        ErrorBody,
        crate::error::ErrorDetail,
        OpenAccountRequest,
        AccountBody,
        AmountRequest,
        BalanceBody,
        LimitRequest,
        ExclusionRequest,
        CreateEventRequest,
        NewSelectionBody,
        EachWayBody,
        MarketRulesBody,
        CreateMarketRequest,
        OddsBody,
        SelectionBody,
        MarketBody,
        PriceRequest,
        ReasonRequest,
        WithdrawSelectionRequest,
        SelectionResultBody,
        SettleRequest,
        SettledBody,
        LegBody,
        PlaceBetRequest,
        BetBody,
        BetLegBody,
        PlacedBody,
        CashOutRequest,
        QuotedVersion,
        CashedOutBody,
        AckBody,
        ClusterBody,
        MemberBody,
        ClockOffsetBody,
        AddMemberRequest,
        TransferLeaderRequest,
        StateHashBody,
        AuditRecordBody
    )
}

fn json_ref(name: &str) -> utoipa::openapi::Content {
    ContentBuilder::new().schema(Some(Ref::from_schema_name(name))).build()
}

/// The document.
pub fn document() -> OpenApi {
    let mut paths = PathsBuilder::new();
    for route in ROUTES {
        let mut op = OperationBuilder::new().summary(Some(route.summary)).tag(match route.audience {
            Player => "player",
            Operator => "operator",
            Infra => "infrastructure",
        });
        for segment in route.path.split('/') {
            if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                op = op.parameter(
                    ParameterBuilder::new()
                        .name(name)
                        .parameter_in(ParameterIn::Path)
                        .required(Required::True)
                        .schema(Some(u64::schema())),
                );
            }
        }
        if route.idempotent {
            op = op.parameter(
                ParameterBuilder::new()
                    .name("Idempotency-Key")
                    .parameter_in(ParameterIn::Header)
                    .required(Required::True)
                    .description(Some(
                        "1-64 printable ASCII characters; a retry with the same key and body returns the first answer",
                    ))
                    .schema(Some(String::schema())),
            );
        }
        if route.audience == Operator && route.method != "GET" {
            op = op.parameter(
                ParameterBuilder::new()
                    .name("X-Operator")
                    .parameter_in(ParameterIn::Header)
                    .required(Required::True)
                    .description(Some("The acting person, recorded in the audit trail"))
                    .schema(Some(String::schema())),
            );
        }
        if let Some(req) = route.request {
            op = op.request_body(Some(
                RequestBodyBuilder::new()
                    .content("application/json", json_ref(req))
                    .required(Some(Required::True))
                    .build(),
            ));
        }
        let ok = match route.response {
            Some(name) => {
                ResponseBuilder::new().description("Success").content("application/json", json_ref(name)).build()
            }
            None => ResponseBuilder::new().description("Success").build(),
        };
        let err = ResponseBuilder::new()
            .description("Refused; `error.code` is stable")
            .content("application/json", json_ref("ErrorBody"))
            .build();
        let responses = ResponsesBuilder::new()
            .response(route.status.to_string(), ok)
            .response("4XX", err.clone())
            .response("503", err)
            .build();
        op = op.responses(responses);
        let method = match route.method {
            "GET" => HttpMethod::Get,
            "PUT" => HttpMethod::Put,
            _ => HttpMethod::Post,
        };
        paths = paths.path(route.path, PathItem::new(method, op.build()));
    }
    OpenApiBuilder::new()
        .info(InfoBuilder::new().title("Paddock").version(env!("CARGO_PKG_VERSION")).description(Some(
            "Fault-tolerant betting engine. Money is in minor units; odds are exact rationals. Any node accepts any request.",
        )))
        .paths(paths.build())
        .components(Some(ComponentsBuilder::new().schemas_from_iter(schemas()).build()))
        .build()
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_schema_a_route_names_is_in_the_components() {
        let doc = super::document();
        let json = serde_json::to_value(&doc).unwrap();
        let schemas = json["components"]["schemas"].as_object().unwrap();
        for route in super::ROUTES {
            for name in route.request.iter().chain(route.response.iter()) {
                assert!(schemas.contains_key(*name), "{} {} names missing schema {name}", route.method, route.path);
            }
        }
        assert_eq!(
            json["paths"].as_object().unwrap().len(),
            super::ROUTES.iter().map(|r| r.path).collect::<std::collections::BTreeSet<_>>().len()
        );
    }

    #[test]
    fn every_state_changing_route_requires_an_idempotency_key_and_no_read_does() {
        for route in super::ROUTES {
            assert_eq!(
                route.idempotent,
                route.method != "GET",
                "{} {}: every write carries an Idempotency-Key so that a retry cannot act twice",
                route.method,
                route.path
            );
        }
    }
}
