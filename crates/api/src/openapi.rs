//! The OpenAPI 3.1 document served at `/v1/openapi.json`.
//!
//! Built from one table of routes, so that adding a route means adding one row here; the node
//! has a test that every route it serves appears in this table and the other way round.

use crate::error::{ErrorBody, ErrorCode};
use crate::wire::*;
use paddock_ledger::Role;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItem};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::response::{ResponseBuilder, ResponsesBuilder};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, PathsBuilder, Ref, Required,
};
use utoipa::{PartialSchema, ToSchema};

/// Who may call a route; the node checks it before the handler runs, and the authorization
/// matrix test drives every route with every role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone, without credentials: health, metrics and this document.
    Public,
    /// The listed roles. A bettor among them acts only on an object of its own, named by `Own`.
    Roles(&'static [Role], Own),
}

/// Which object a bettor must own to use a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Own {
    /// None: the route names no player object (or bettors may not call it).
    Nothing,
    /// The `{account_id}` in the path.
    PathAccount,
    /// The `{bet_id}` in the path (through the bet's account).
    PathBet,
    /// The `account_id` in the JSON body (checked by the handler).
    BodyAccount,
}

impl Access {
    /// Whether `role` may call the route at all (ownership aside).
    pub fn admits(self, role: Role) -> bool {
        match self {
            Access::Public => true,
            Access::Roles(roles, _) => roles.contains(&role),
        }
    }
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
    /// Who may call it.
    pub access: Access,
    /// A list: the body is an array of `response`, paged (`limit`, `after` or `from`, and the
    /// `X-Next-Cursor` header).
    pub list: bool,
}

const fn r(
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    request: Option<&'static str>,
    status: u16,
    response: Option<&'static str>,
    access: Access,
) -> Route {
    let idempotent = !matches!(method.as_bytes(), b"GET");
    Route { method, path, summary, request, status, response, idempotent, access, list: false }
}

/// A paged list of `response` items.
const fn list(path: &'static str, summary: &'static str, response: &'static str, access: Access) -> Route {
    Route { list: true, ..r("GET", path, summary, None, 200, Some(response), access) }
}

use Role::{Auditor, Bettor, Operator, Service, Trader};

const PUBLIC: Access = Access::Public;
/// Every authenticated principal.
const ANYONE: Access = Access::Roles(&[Bettor, Trader, Operator, Auditor, Service], Own::Nothing);
const ACCOUNT_READ: Access = Access::Roles(&[Bettor, Operator, Auditor, Service], Own::PathAccount);
const ACCOUNT_MONEY: Access = Access::Roles(&[Bettor, Service], Own::PathAccount);
const ACCOUNT_SAFER_GAMBLING: Access = Access::Roles(&[Bettor, Operator, Service], Own::PathAccount);
const ACCOUNT_OPEN: Access = Access::Roles(&[Operator, Service], Own::Nothing);
const BET_PLACE: Access = Access::Roles(&[Bettor, Service], Own::BodyAccount);
const BET_READ: Access = Access::Roles(&[Bettor, Operator, Auditor, Service], Own::PathBet);
const BET_CASH_OUT: Access = Access::Roles(&[Bettor, Service], Own::PathBet);
const TRADING: Access = Access::Roles(&[Trader, Operator], Own::Nothing);
const OPERATOR: Access = Access::Roles(&[Operator], Own::Nothing);
const OVERSIGHT: Access = Access::Roles(&[Operator, Auditor], Own::Nothing);
const CLUSTER_READ: Access = Access::Roles(&[Operator, Auditor, Service], Own::Nothing);

/// Request bodies whose every field has a default: the body may be left out altogether.
pub const OPTIONAL_BODIES: &[&str] = &["ReasonRequest"];

/// Every route the node serves.
pub const ROUTES: &[Route] = &[
    r("POST", "/v1/accounts", "Open an account", Some("OpenAccountRequest"), 201, Some("AccountBody"), ACCOUNT_OPEN),
    r("GET", "/v1/accounts/{account_id}", "Read balance and exposure", None, 200, Some("AccountBody"), ACCOUNT_READ),
    r(
        "POST",
        "/v1/accounts/{account_id}/deposits",
        "Deposit",
        Some("AmountRequest"),
        200,
        Some("BalanceBody"),
        ACCOUNT_MONEY,
    ),
    r(
        "POST",
        "/v1/accounts/{account_id}/withdrawals",
        "Withdraw",
        Some("AmountRequest"),
        200,
        Some("BalanceBody"),
        ACCOUNT_MONEY,
    ),
    r(
        "PUT",
        "/v1/accounts/{account_id}/limits",
        "Set a deposit or loss limit",
        Some("LimitRequest"),
        200,
        Some("AckBody"),
        ACCOUNT_SAFER_GAMBLING,
    ),
    r(
        "POST",
        "/v1/accounts/{account_id}/exclusions",
        "Self-exclude or take a time-out",
        Some("ExclusionRequest"),
        200,
        Some("AckBody"),
        ACCOUNT_SAFER_GAMBLING,
    ),
    list("/v1/accounts/{account_id}/bets", "List an account's bets", "BetBody", ACCOUNT_READ),
    r("POST", "/v1/bets", "Place a bet of any type", Some("PlaceBetRequest"), 201, Some("PlacedBody"), BET_PLACE),
    r("GET", "/v1/bets/{bet_id}", "Read a bet", None, 200, Some("BetBody"), BET_READ),
    r(
        "GET",
        "/v1/bets/{bet_id}/cash-out-quote",
        "What a cash-out of the bet is accepted for now",
        None,
        200,
        Some("CashOutQuoteBody"),
        BET_READ,
    ),
    r(
        "GET",
        "/v1/accounts/{account_id}/bets/by-key/{idempotency_key}",
        "The bet an account placed with this Idempotency-Key (its refusal, if it was refused)",
        None,
        200,
        Some("BetBody"),
        ACCOUNT_READ,
    ),
    r(
        "POST",
        "/v1/bets/{bet_id}/cash-out",
        "Cash out at a quoted value",
        Some("CashOutRequest"),
        200,
        Some("CashedOutBody"),
        BET_CASH_OUT,
    ),
    r("POST", "/v1/events", "Create an event", Some("CreateEventRequest"), 201, Some("AckBody"), TRADING),
    list("/v1/events", "Events and their markets", "EventBody", ANYONE),
    r(
        "POST",
        "/v1/markets",
        "Create a market with selections",
        Some("CreateMarketRequest"),
        201,
        Some("AckBody"),
        TRADING,
    ),
    list("/v1/markets", "List markets", "MarketBody", ANYONE),
    r("GET", "/v1/markets/{market_id}", "Read a market and its prices", None, 200, Some("MarketBody"), ANYONE),
    r(
        "PUT",
        "/v1/markets/{market_id}/selections/{selection_id}/price",
        "Set a price",
        Some("PriceRequest"),
        200,
        Some("AckBody"),
        TRADING,
    ),
    r("POST", "/v1/markets/{market_id}/suspend", "Suspend", Some("ReasonRequest"), 200, Some("AckBody"), TRADING),
    r("POST", "/v1/markets/{market_id}/resume", "Resume", Some("ReasonRequest"), 200, Some("AckBody"), TRADING),
    r("POST", "/v1/markets/{market_id}/close", "Close", Some("ReasonRequest"), 200, Some("AckBody"), TRADING),
    r(
        "POST",
        "/v1/markets/{market_id}/withdraw-selection",
        "Withdraw a runner (Rule 4)",
        Some("WithdrawSelectionRequest"),
        200,
        Some("AckBody"),
        TRADING,
    ),
    r("POST", "/v1/markets/{market_id}/settle", "Settle", Some("SettleRequest"), 200, Some("SettledBody"), OPERATOR),
    r(
        "POST",
        "/v1/markets/{market_id}/resettle",
        "Resettle after a corrected result",
        Some("SettleRequest"),
        200,
        Some("SettledBody"),
        OPERATOR,
    ),
    r("POST", "/v1/markets/{market_id}/void", "Void", Some("ReasonRequest"), 200, Some("SettledBody"), OPERATOR),
    r("GET", "/v1/stream/prices", "Server-sent events: price and market status changes", None, 200, None, ANYONE),
    r(
        "GET",
        "/v1/stream/accounts/{account_id}/bets",
        "Server-sent events: an account's bet updates",
        None,
        200,
        None,
        ACCOUNT_READ,
    ),
    list("/v1/audit", "Export the audit trail (hash chain)", "AuditRecordBody", OVERSIGHT),
    r(
        "GET",
        "/v1/config",
        "The book's settings (rounding, cash-out margin, cooling-off, ...)",
        None,
        200,
        Some("BookConfigBody"),
        OVERSIGHT,
    ),
    r(
        "PUT",
        "/v1/config",
        "Change the book's settings (audited)",
        Some("BookConfigBody"),
        200,
        Some("AckBody"),
        OPERATOR,
    ),
    r(
        "PUT",
        "/v1/accounts/{account_id}/stake-factor",
        "Set a player's stake factor (audited)",
        Some("StakeFactorRequest"),
        200,
        Some("AckBody"),
        OPERATOR,
    ),
    r(
        "GET",
        "/v1/book/balances",
        "Every currency's books: players' money, the house, the clearing (they sum to zero)",
        None,
        200,
        Some("BookBalancesBody"),
        OVERSIGHT,
    ),
    r("GET", "/v1/cluster", "Members, roles, leader, term, indexes, lag", None, 200, Some("ClusterBody"), CLUSTER_READ),
    r("GET", "/v1/cluster/state-hash", "State hash at the applied index", None, 200, Some("StateHashBody"), OPERATOR),
    r("POST", "/v1/cluster/members", "Add a learner", Some("AddMemberRequest"), 200, Some("AckBody"), OPERATOR),
    r(
        "POST",
        "/v1/cluster/members/{node_id}/promote",
        "Promote a learner to voter",
        None,
        200,
        Some("AckBody"),
        OPERATOR,
    ),
    r("POST", "/v1/cluster/members/{node_id}/remove", "Remove a node", None, 200, Some("AckBody"), OPERATOR),
    r(
        "POST",
        "/v1/cluster/transfer-leader",
        "Hand leadership to a node",
        Some("TransferLeaderRequest"),
        200,
        Some("AckBody"),
        OPERATOR,
    ),
    r(
        "POST",
        "/v1/principals",
        "Create a principal",
        Some("CreatePrincipalRequest"),
        201,
        Some("PrincipalBody"),
        OPERATOR,
    ),
    list("/v1/principals", "List principals and their keys", "PrincipalBody", OVERSIGHT),
    r(
        "POST",
        "/v1/principals/{name}/accounts",
        "Give a bettor an account",
        Some("BindAccountRequest"),
        200,
        Some("AckBody"),
        OPERATOR,
    ),
    r(
        "POST",
        "/v1/principals/{name}/keys",
        "Issue an API key (shown once)",
        Some("IssueKeyRequest"),
        201,
        Some("IssuedKeyBody"),
        OPERATOR,
    ),
    r("POST", "/v1/keys/{key_id}/revoke", "Revoke an API key on every node", None, 200, Some("AckBody"), OPERATOR),
    list("/v1/incidents", "Incident records (R3): what failed, when, and how it ended", "IncidentBody", OVERSIGHT),
    r("GET", "/v1/incidents/{incident_id}", "One incident record", None, 200, Some("IncidentBody"), OVERSIGHT),
    r(
        "POST",
        "/v1/incidents",
        "Open an incident by hand (a failure no node detects by itself)",
        Some("OpenIncidentRequest"),
        201,
        Some("IncidentOpenedBody"),
        OPERATOR,
    ),
    r(
        "POST",
        "/v1/incidents/{incident_id}/close",
        "Close an incident with its resolution",
        Some("CloseIncidentRequest"),
        200,
        Some("AckBody"),
        OPERATOR,
    ),
    r("GET", "/v1/whoami", "The calling principal", None, 200, Some("WhoAmIBody"), ANYONE),
    r(
        "GET",
        "/v1/self-check",
        "Hash the running binary and the effective configuration now, against the expected digests",
        None,
        200,
        Some("SelfCheckBody"),
        OVERSIGHT,
    ),
    r("GET", "/v1/openapi.json", "This document", None, 200, None, PUBLIC),
    r("GET", "/health/live", "The process is up", None, 200, None, PUBLIC),
    r("GET", "/health/ready", "Member of a cluster with a known leader and caught up", None, 200, None, PUBLIC),
    r("GET", "/metrics", "Prometheus metrics", None, 200, None, PUBLIC),
];

/// The route that serves `method` on a concrete path (e.g. `/v1/bets/42`), matching `{param}`
/// segments of the templates to anything.
pub fn route_for_path(method: &str, path: &str) -> Option<&'static Route> {
    let path = path.split('?').next().unwrap_or(path);
    ROUTES.iter().find(|r| {
        r.method == method && {
            let (t, p): (Vec<&str>, Vec<&str>) = (r.path.split('/').collect(), path.split('/').collect());
            t.len() == p.len() && t.iter().zip(&p).all(|(t, p)| t == p || (t.starts_with('{') && !p.is_empty()))
        }
    })
}

/// The route that serves `method` on the axum path pattern `path` (e.g. `/v1/bets/{bet_id}`).
pub fn route(method: &str, path: &str) -> Option<&'static Route> {
    ROUTES.iter().find(|r| r.method == method && r.path == path)
}

fn schemas() -> Vec<(String, utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>)> {
    macro_rules! s {
        ($($t:ty),*) => { vec![$((<$t>::name().to_string(), <$t>::schema()),)*] };
    }
    let mut all = s!(
        ErrorBody,
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
        AuditRecordBody,
        CreatePrincipalRequest,
        BindAccountRequest,
        IssueKeyRequest,
        PrincipalBody,
        KeyBody,
        IssuedKeyBody,
        WhoAmIBody,
        SelfCheckBody,
        OpenIncidentRequest,
        CloseIncidentRequest,
        IncidentBody,
        IncidentOpenedBody,
        LimitBody,
        PendingLimitBody,
        BookBalancesBody,
        CurrencyBalancesBody,
        BookConfigBody,
        StakeFactorRequest,
        EventBody,
        CashOutQuoteBody
    );
    all.push((crate::error::ErrorDetail::name().to_string(), error_detail_schema().into()));
    all
}

/// `ErrorDetail` with its `code` declared as the closed list of every code, so that a
/// generated client has them as an enum.
fn error_detail_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::Type;
    use utoipa::openapi::ObjectBuilder;
    let codes: Vec<&str> = ErrorCode::all().map(ErrorCode::as_str).collect();
    ObjectBuilder::new()
        .description(Some("Code and message."))
        .property(
            "code",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(codes))
                .description(Some("Stable machine-readable code, e.g. `insufficient_funds`; see the response's description for the codes of each status")),
        )
        .required("code")
        .property(
            "message",
            ObjectBuilder::new().schema_type(Type::String).description(Some("Human-readable explanation")),
        )
        .required("message")
        .into()
}

/// The codes each error status can carry, e.g. `400: bad_parameter, malformed_body, ...`,
/// for statuses in `range`.
fn codes_by_status(range: std::ops::RangeInclusive<u16>) -> String {
    let mut by_status: std::collections::BTreeMap<u16, Vec<&str>> = std::collections::BTreeMap::new();
    for code in ErrorCode::all().filter(|c| range.contains(&c.status())) {
        by_status.entry(code.status()).or_default().push(code.as_str());
    }
    by_status.iter().map(|(status, codes)| format!("{status}: {}", codes.join(", "))).collect::<Vec<_>>().join("; ")
}

fn json_ref(name: &str) -> utoipa::openapi::Content {
    ContentBuilder::new().schema(Some(Ref::from_schema_name(name))).build()
}

/// The document.
pub fn document() -> OpenApi {
    let mut paths = PathsBuilder::new();
    for route in ROUTES {
        let tag = match route.access {
            Access::Public => "infrastructure",
            Access::Roles(roles, _) if roles.contains(&Bettor) => "player",
            Access::Roles(..) => "operator",
        };
        let mut op = OperationBuilder::new().summary(Some(route.summary)).tag(tag);
        if let Access::Roles(roles, own) = route.access {
            let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
            let mut text = format!("Roles: {}.", names.join(", "));
            if roles.contains(&Bettor) && own != Own::Nothing {
                text.push_str(" A bettor only on its own accounts and bets.");
            }
            op = op.description(Some(text)).security(SecurityRequirement::new("bearer", Vec::<String>::new()));
        }
        for segment in route.path.split('/') {
            if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                let schema = match name {
                    "name" | "key_id" | "idempotency_key" => String::schema(),
                    _ => u64::schema(),
                };
                op = op.parameter(
                    ParameterBuilder::new()
                        .name(name)
                        .parameter_in(ParameterIn::Path)
                        .required(Required::True)
                        .schema(Some(schema)),
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
                    .schema(Some(
                        utoipa::openapi::ObjectBuilder::new()
                            .schema_type(utoipa::openapi::schema::Type::String)
                            .pattern(Some("^[!-~]{1,64}$"))
                            .min_length(Some(1))
                            .max_length(Some(64)),
                    )),
            );
        }
        if let Some(req) = route.request {
            op = op.request_body(Some(
                RequestBodyBuilder::new()
                    .content("application/json", json_ref(req))
                    .required(Some(if OPTIONAL_BODIES.contains(&req) { Required::False } else { Required::True }))
                    .build(),
            ));
        }
        if route.method == "GET" && route.response.is_some() && route.access != Access::Public {
            op = op.parameter(
                ParameterBuilder::new()
                    .name("consistency")
                    .parameter_in(ParameterIn::Query)
                    .required(Required::False)
                    .description(Some("linearizable (the default: a read index from the leader first) or stale"))
                    .schema(Some(
                        utoipa::openapi::ObjectBuilder::new()
                            .schema_type(utoipa::openapi::schema::Type::String)
                            .enum_values(Some(["linearizable", "stale"])),
                    )),
            );
        }
        if route.list {
            let limit = utoipa::openapi::ObjectBuilder::new()
                .schema_type(utoipa::openapi::schema::Type::Integer)
                .minimum(Some(1))
                .maximum(Some(1000));
            op = op.parameter(
                ParameterBuilder::new()
                    .name("limit")
                    .parameter_in(ParameterIn::Query)
                    .required(Required::False)
                    .description(Some("Items per page, 1-1000 (default 100)"))
                    .schema(Some(limit)),
            );
            let (cursor, text, schema) = if route.path == "/v1/audit" {
                ("from", "The sequence number to start at (the X-Next-Cursor of the previous page)", u64::schema())
            } else if route.path == "/v1/principals" {
                ("after", "The last name of the previous page (its X-Next-Cursor)", String::schema())
            } else {
                ("after", "The last id of the previous page (its X-Next-Cursor)", u64::schema())
            };
            op = op.parameter(
                ParameterBuilder::new()
                    .name(cursor)
                    .parameter_in(ParameterIn::Query)
                    .required(Required::False)
                    .description(Some(text))
                    .schema(Some(schema)),
            );
        }
        let ok = match route.response {
            Some(name) if route.list => {
                let array = utoipa::openapi::ArrayBuilder::new().items(Ref::from_schema_name(name));
                let next = utoipa::openapi::HeaderBuilder::new()
                    .schema(String::schema())
                    .description(Some("Present when more items may follow: pass it as the cursor of the next page"))
                    .build();
                ResponseBuilder::new()
                    .description("Success: one page")
                    .content("application/json", ContentBuilder::new().schema(Some(array)).build())
                    .header("X-Next-Cursor", next)
                    .build()
            }
            Some(name) => {
                ResponseBuilder::new().description("Success").content("application/json", json_ref(name)).build()
            }
            None => ResponseBuilder::new().description("Success").build(),
        };
        let replayed = || {
            utoipa::openapi::HeaderBuilder::new()
                .schema(
                    utoipa::openapi::ObjectBuilder::new()
                        .schema_type(utoipa::openapi::schema::Type::String)
                        .enum_values(Some(["true", "false"])),
                )
                .description(Some(
                    "true: the answer is the first answer to an earlier request with this Idempotency-Key and body, which this one did not repeat",
                ))
                .build()
        };
        let error = |text: String| {
            let mut built = ResponseBuilder::new().description(text).content("application/json", json_ref("ErrorBody"));
            if route.idempotent {
                built = built.header("Idempotent-Replayed", replayed());
            }
            built.build()
        };
        let client_error =
            error(format!("Refused, nothing changed; `error.code` is stable: {}", codes_by_status(400..=499)));
        let unavailable = error(format!(
            "Not done now, retry after Retry-After (outcome_unknown: maybe done, retry with the same Idempotency-Key): {}",
            codes_by_status(500..=599)
        ));
        let ok = if route.idempotent {
            let mut ok = ok;
            ok.headers.insert("Idempotent-Replayed".to_string(), replayed());
            ok
        } else {
            ok
        };
        let responses = ResponsesBuilder::new()
            .response(route.status.to_string(), ok)
            .response("4XX", client_error)
            .response("503", unavailable)
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
        .components(Some(
            ComponentsBuilder::new()
                .schemas_from_iter(schemas())
                .security_scheme(
                    "bearer",
                    SecurityScheme::Http(
                        HttpBuilder::new()
                            .scheme(HttpAuthScheme::Bearer)
                            .description(Some("An API key, pdk_<16 hex>_<64 hex>, from `paddock keys issue`"))
                            .build(),
                    ),
                )
                .build(),
        ))
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
    fn only_health_metrics_and_this_document_are_public_and_bettors_own_what_they_touch() {
        for route in super::ROUTES {
            let public = matches!(route.access, super::Access::Public);
            let infra =
                route.path.starts_with("/health/") || route.path == "/metrics" || route.path == "/v1/openapi.json";
            assert_eq!(public, infra, "{} {}", route.method, route.path);
            if let super::Access::Roles(roles, own) = route.access {
                let names_player_object = route.path.contains("{account_id}") || route.path.contains("{bet_id}");
                if roles.contains(&super::Bettor) && names_player_object {
                    assert_ne!(
                        own,
                        super::Own::Nothing,
                        "{} {}: a bettor must own the object",
                        route.method,
                        route.path
                    );
                }
            }
        }
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
