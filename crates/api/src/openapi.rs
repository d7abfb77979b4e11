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
    /// A write whose body carries one idempotency key per item instead of the header (a batch:
    /// each item is its own retry-safe request).
    pub keys_in_body: bool,
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
    Route { method, path, summary, request, status, response, idempotent, keys_in_body: false, access, list: false }
}

/// A write of many items, each with its own idempotency key in the body.
const fn batch(
    path: &'static str,
    summary: &'static str,
    request: &'static str,
    response: &'static str,
    access: Access,
) -> Route {
    Route {
        idempotent: false,
        keys_in_body: true,
        ..r("POST", path, summary, Some(request), 200, Some(response), access)
    }
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

/// The path parameters that are text; every other one is an unsigned integer id.
pub const TEXT_PATH_PARAMETERS: &[&str] = &["name", "key_id", "idempotency_key"];

/// A principal's name, as `CreatePrincipalRequest.name` declares it.
const PRINCIPAL_NAME_PATTERN: &str = "^[a-z0-9._@-]{1,64}$";
/// A key id: 16 hex digits.
const KEY_ID_PATTERN: &str = "^[0-9a-fA-F]{16}$";
/// An idempotency key: 1-64 printable ASCII characters (`IdempotencyKey::is_valid`).
const IDEMPOTENCY_KEY_PATTERN: &str = "^[!-~]{1,64}$";

/// Reads answered from this node's own view, not from the replicated book: they take no
/// `consistency` (and refuse it as an unknown query parameter).
const UNREPLICATED_READS: &[&str] =
    &["/v1/cluster", "/v1/cluster/state-hash", "/v1/whoami", "/v1/self-check", "/v1/backup/snapshot", "/v1/backup/log"];

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
    batch(
        "/v1/bets/batch",
        "Place up to 200 bets, each with its own idempotency key and answer, in one log entry",
        "PlaceBetsRequest",
        "PlacedBatchBody",
        BET_PLACE,
    ),
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
    r("GET", "/v1/events/{event_id}", "An event and its markets", None, 200, Some("EventBody"), ANYONE),
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
        "/v1/stream/cluster",
        "Server-sent events: this node's view of the cluster (as GET /v1/cluster) every 500 ms",
        None,
        200,
        None,
        CLUSTER_READ,
    ),
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
    r(
        "GET",
        "/v1/backup/snapshot",
        "The node's latest snapshot file, for a full backup (application/octet-stream)",
        None,
        200,
        None,
        OPERATOR,
    ),
    r(
        "GET",
        "/v1/backup/log",
        "Committed log entries from an index on, for an incremental backup (application/octet-stream)",
        None,
        200,
        None,
        OPERATOR,
    ),
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
        "/v1/cluster/members/{node_id}/demote",
        "Make a voter a learner again (it keeps replicating)",
        None,
        200,
        Some("AckBody"),
        OPERATOR,
    ),
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

/// The operation's id, e.g. `post_accounts_account_id_deposits` for `POST
/// /v1/accounts/{account_id}/deposits`: unique, as generated clients need.
pub fn operation_id(route: &Route) -> String {
    let mut id = route.method.to_ascii_lowercase();
    for segment in route.path.split('/').filter(|s| !s.is_empty() && *s != "v1") {
        id.push('_');
        id.push_str(&segment.trim_start_matches('{').trim_end_matches('}').replace(['-', '.'], "_"));
    }
    id
}

/// A link of the document: what one operation's success answer lets a client (or a stateful
/// tester) call next, and with which of its values.
struct Link {
    from: (&'static str, &'static str),
    to: (&'static str, &'static str),
    /// Parameter name and runtime expression (`$response.body#/bet_id`, `$request.path.bet_id`).
    parameters: &'static [(&'static str, &'static str)],
}

const fn link(
    from: (&'static str, &'static str),
    to: (&'static str, &'static str),
    parameters: &'static [(&'static str, &'static str)],
) -> Link {
    Link { from, to, parameters }
}

const NEW_EVENT: &[(&str, &str)] = &[("event_id", "$request.body#/event_id")];
const NEW_ACCOUNT: &[(&str, &str)] = &[("account_id", "$response.body#/account_id")];
const AN_ACCOUNT: &[(&str, &str)] = &[("account_id", "$request.path.account_id")];
const NEW_BET: &[(&str, &str)] = &[("bet_id", "$response.body#/bet_id")];
const A_BET: &[(&str, &str)] = &[("bet_id", "$request.path.bet_id")];
const NEW_MARKET: &[(&str, &str)] = &[("market_id", "$request.body#/market_id")];
const A_MARKET: &[(&str, &str)] = &[("market_id", "$request.path.market_id")];
const NEW_PRICE: &[(&str, &str)] =
    &[("market_id", "$request.body#/market_id"), ("selection_id", "$request.body#/selections/0/selection_id")];
const NEW_PRINCIPAL: &[(&str, &str)] = &[("name", "$response.body#/name")];
const NEW_KEY: &[(&str, &str)] = &[("key_id", "$response.body#/key_id")];
const NEW_INCIDENT: &[(&str, &str)] = &[("incident_id", "$response.body#/incident_id")];

/// The links between operations: each object an answer creates or names, to the operations
/// on it.
const LINKS: &[Link] = &[
    link(("POST", "/v1/accounts"), ("GET", "/v1/accounts/{account_id}"), NEW_ACCOUNT),
    link(("POST", "/v1/accounts"), ("POST", "/v1/accounts/{account_id}/deposits"), NEW_ACCOUNT),
    link(("POST", "/v1/accounts"), ("POST", "/v1/accounts/{account_id}/withdrawals"), NEW_ACCOUNT),
    link(("POST", "/v1/accounts"), ("PUT", "/v1/accounts/{account_id}/limits"), NEW_ACCOUNT),
    link(("POST", "/v1/accounts"), ("POST", "/v1/accounts/{account_id}/exclusions"), NEW_ACCOUNT),
    link(("POST", "/v1/accounts"), ("GET", "/v1/accounts/{account_id}/bets"), NEW_ACCOUNT),
    link(("POST", "/v1/accounts"), ("PUT", "/v1/accounts/{account_id}/stake-factor"), NEW_ACCOUNT),
    link(("GET", "/v1/accounts/{account_id}"), ("POST", "/v1/accounts/{account_id}/deposits"), AN_ACCOUNT),
    link(("GET", "/v1/accounts/{account_id}"), ("POST", "/v1/accounts/{account_id}/withdrawals"), AN_ACCOUNT),
    link(("GET", "/v1/accounts/{account_id}"), ("GET", "/v1/accounts/{account_id}/bets"), AN_ACCOUNT),
    link(("POST", "/v1/bets"), ("GET", "/v1/bets/{bet_id}"), NEW_BET),
    link(("POST", "/v1/bets"), ("GET", "/v1/bets/{bet_id}/cash-out-quote"), NEW_BET),
    link(("POST", "/v1/bets"), ("POST", "/v1/bets/{bet_id}/cash-out"), NEW_BET),
    link(("GET", "/v1/bets/{bet_id}"), ("GET", "/v1/bets/{bet_id}/cash-out-quote"), A_BET),
    link(("GET", "/v1/bets/{bet_id}"), ("POST", "/v1/bets/{bet_id}/cash-out"), A_BET),
    link(("POST", "/v1/events"), ("GET", "/v1/events/{event_id}"), NEW_EVENT),
    link(("POST", "/v1/markets"), ("GET", "/v1/markets/{market_id}"), NEW_MARKET),
    link(("POST", "/v1/markets"), ("PUT", "/v1/markets/{market_id}/selections/{selection_id}/price"), NEW_PRICE),
    link(("POST", "/v1/markets"), ("POST", "/v1/markets/{market_id}/suspend"), NEW_MARKET),
    link(("POST", "/v1/markets"), ("POST", "/v1/markets/{market_id}/resume"), NEW_MARKET),
    link(("POST", "/v1/markets"), ("POST", "/v1/markets/{market_id}/close"), NEW_MARKET),
    link(("POST", "/v1/markets"), ("POST", "/v1/markets/{market_id}/withdraw-selection"), NEW_MARKET),
    link(("POST", "/v1/markets"), ("POST", "/v1/markets/{market_id}/settle"), NEW_MARKET),
    link(("POST", "/v1/markets"), ("POST", "/v1/markets/{market_id}/void"), NEW_MARKET),
    link(("GET", "/v1/markets/{market_id}"), ("POST", "/v1/markets/{market_id}/suspend"), A_MARKET),
    link(("GET", "/v1/markets/{market_id}"), ("POST", "/v1/markets/{market_id}/settle"), A_MARKET),
    link(("POST", "/v1/markets/{market_id}/settle"), ("POST", "/v1/markets/{market_id}/resettle"), A_MARKET),
    link(("POST", "/v1/principals"), ("POST", "/v1/principals/{name}/accounts"), NEW_PRINCIPAL),
    link(("POST", "/v1/principals"), ("POST", "/v1/principals/{name}/keys"), NEW_PRINCIPAL),
    link(("POST", "/v1/principals/{name}/keys"), ("POST", "/v1/keys/{key_id}/revoke"), NEW_KEY),
    link(("POST", "/v1/incidents"), ("GET", "/v1/incidents/{incident_id}"), NEW_INCIDENT),
    link(("POST", "/v1/incidents"), ("POST", "/v1/incidents/{incident_id}/close"), NEW_INCIDENT),
];

fn link_name(link: &Link) -> String {
    route(link.to.0, link.to.1).map(operation_id).unwrap_or_default()
}

fn link_to(link: &Link) -> utoipa::openapi::link::Link {
    let mut built = utoipa::openapi::link::LinkBuilder::new().operation_id(link_name(link));
    for (name, expression) in link.parameters {
        built = built.parameter(*name, *expression);
    }
    built.build()
}

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
        PlaceBetsRequest,
        BatchBetBody,
        PlacedBatchBody,
        BatchResultBody,
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

/// The body schema `name`, with its example.
fn json_ref_with_example(name: &str) -> utoipa::openapi::Content {
    ContentBuilder::new().schema(Some(Ref::from_schema_name(name))).example(crate::examples::example(name)).build()
}

/// The document, as the JSON the node serves.
pub fn document() -> serde_json::Value {
    let mut doc = serde_json::to_value(built_document()).expect("an OpenAPI document serializes");
    each_object(&mut doc, &mut |object| {
        declare_unsigned_range(object);
        declare_enum(object);
        spell_links_as_the_specification_does(object);
    });
    doc
}

/// Calls `rewrite` on every JSON object in `value`, outermost first.
fn each_object(
    value: &mut serde_json::Value,
    rewrite: &mut impl FnMut(&mut serde_json::Map<String, serde_json::Value>),
) {
    match value {
        serde_json::Value::Object(map) => {
            rewrite(map);
            map.values_mut().for_each(|v| each_object(v, rewrite));
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(|v| each_object(v, rewrite)),
        _ => {}
    }
}

/// utoipa 5.5 writes a Link Object's fields in snake case (`operation_id`); the OpenAPI
/// specification, and every tool that reads links, spells them `operationId`, `operationRef`
/// and `requestBody`.
fn spell_links_as_the_specification_does(object: &mut serde_json::Map<String, serde_json::Value>) {
    let Some(serde_json::Value::Object(links)) = object.get_mut("links") else { return };
    for link in links.values_mut().filter_map(serde_json::Value::as_object_mut) {
        for (snake, camel) in
            [("operation_id", "operationId"), ("operation_ref", "operationRef"), ("request_body", "requestBody")]
        {
            if let Some(v) = link.remove(snake) {
                link.insert(camel.to_string(), v);
            }
        }
    }
}

/// An unsigned Rust integer comes out of utoipa as `int64`/`int32` with `minimum: 0`, which
/// says its top half is out of range while the server takes it. Each integer schema with a
/// non-negative minimum and no maximum is an unsigned field: it gets its real maximum and
/// the `uint64`/`uint32` format. (Signed fields that have a minimum declare a maximum too.)
fn declare_unsigned_range(object: &mut serde_json::Map<String, serde_json::Value>) {
    let integer = match object.get("type") {
        Some(serde_json::Value::String(t)) => t == "integer",
        Some(serde_json::Value::Array(ts)) => ts.iter().any(|t| t == "integer"),
        _ => false,
    };
    let unsigned = object.get("minimum").and_then(serde_json::Value::as_f64).is_some_and(|m| m >= 0.0);
    if integer && unsigned && !object.contains_key("maximum") {
        let (format, max) = match object.get("format").and_then(serde_json::Value::as_str) {
            Some("int32") => ("uint32", serde_json::Value::from(u32::MAX)),
            _ => ("uint64", serde_json::Value::from(u64::MAX)),
        };
        object.insert("format".to_string(), format.into());
        object.insert("maximum".to_string(), max);
    }
}

/// A string field written with `pattern = "^(a|b|c)$"` is a closed set: declared as an
/// `enum`, so that a generated client has it as one.
fn declare_enum(object: &mut serde_json::Map<String, serde_json::Value>) {
    let words = object
        .get("pattern")
        .and_then(serde_json::Value::as_str)
        .and_then(|p| p.strip_prefix("^(")?.strip_suffix(")$"))
        .filter(|alternatives| {
            alternatives.contains('|')
                && alternatives.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'|')
        })
        .map(|alternatives| alternatives.split('|').map(serde_json::Value::from).collect::<Vec<_>>());
    if let Some(words) = words {
        object.remove("pattern");
        object.insert("enum".to_string(), serde_json::Value::Array(words));
    }
}

fn built_document() -> OpenApi {
    let mut paths = PathsBuilder::new();
    for route in ROUTES {
        let tag = match route.access {
            Access::Public => "infrastructure",
            Access::Roles(roles, _) if roles.contains(&Bettor) => "player",
            Access::Roles(..) => "operator",
        };
        let mut op =
            OperationBuilder::new().summary(Some(route.summary)).tag(tag).operation_id(Some(operation_id(route)));
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
                let text = |pattern: &str| -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                    utoipa::openapi::ObjectBuilder::new()
                        .schema_type(utoipa::openapi::schema::Type::String)
                        .pattern(Some(pattern))
                        .into()
                };
                let schema = match name {
                    "name" => text(PRINCIPAL_NAME_PATTERN),
                    "key_id" => text(KEY_ID_PATTERN),
                    "idempotency_key" => text(IDEMPOTENCY_KEY_PATTERN),
                    "node_id" => utoipa::openapi::ObjectBuilder::new()
                        .schema_type(utoipa::openapi::schema::Type::Integer)
                        .format(Some(utoipa::openapi::SchemaFormat::Custom("uint64".to_string())))
                        .minimum(Some(1))
                        .maximum(Some(u64::MAX))
                        .into(),
                    _ => u64::schema(),
                };
                op = op.parameter(
                    ParameterBuilder::new()
                        .name(name)
                        .parameter_in(ParameterIn::Path)
                        .required(Required::True)
                        .schema(Some(schema))
                        .example(crate::examples::parameter_example(name)),
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
                    .example(Some(serde_json::Value::from("bet-1001-0001")))
                    .schema(Some(
                        utoipa::openapi::ObjectBuilder::new()
                            .schema_type(utoipa::openapi::schema::Type::String)
                            .pattern(Some(IDEMPOTENCY_KEY_PATTERN))
                            .min_length(Some(1))
                            .max_length(Some(64)),
                    )),
            );
        }
        if let Some(req) = route.request {
            op = op.request_body(Some(
                RequestBodyBuilder::new()
                    .content("application/json", json_ref_with_example(req))
                    .required(Some(if OPTIONAL_BODIES.contains(&req) { Required::False } else { Required::True }))
                    .build(),
            ));
        }
        if route.method == "GET" && route.response.is_some() && !UNREPLICATED_READS.contains(&route.path) {
            op = op.parameter(
                ParameterBuilder::new()
                    .name("consistency")
                    .parameter_in(ParameterIn::Query)
                    .required(Required::False)
                    .description(Some("linearizable (the default: a read index from the leader first) or stale"))
                    .example(Some(serde_json::Value::from("linearizable")))
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
                    .example(Some(serde_json::Value::from(100)))
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
        if route.path == "/v1/backup/log" {
            let from = utoipa::openapi::ObjectBuilder::new()
                .schema_type(utoipa::openapi::schema::Type::Integer)
                .format(Some(utoipa::openapi::SchemaFormat::Custom("uint64".to_string())))
                .minimum(Some(1))
                .maximum(Some(u64::MAX));
            op = op.parameter(
                ParameterBuilder::new()
                    .name("from")
                    .parameter_in(ParameterIn::Query)
                    .required(Required::True)
                    .description(Some("The first log index wanted (the chain's last index + 1)"))
                    .example(Some(serde_json::Value::from(1)))
                    .schema(Some(from)),
            );
            let limit = utoipa::openapi::ObjectBuilder::new()
                .schema_type(utoipa::openapi::schema::Type::Integer)
                .minimum(Some(1))
                .maximum(Some(10_000));
            op = op.parameter(
                ParameterBuilder::new()
                    .name("limit")
                    .parameter_in(ParameterIn::Query)
                    .required(Required::False)
                    .description(Some("Entries at most, 1-10000 (default 10000)"))
                    .schema(Some(limit)),
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
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(array))
                            .example(crate::examples::example(name).map(|item| serde_json::json!([item])))
                            .build(),
                    )
                    .header("X-Next-Cursor", next)
                    .build()
            }
            Some(name) => {
                let mut ok = ResponseBuilder::new()
                    .description("Success")
                    .content("application/json", json_ref_with_example(name));
                for link in LINKS.iter().filter(|l| l.from == (route.method, route.path)) {
                    ok = ok.link(link_name(link), link_to(link));
                }
                ok.build()
            }
            None => match crate::examples::infrastructure_example(route.path) {
                Some((media_type, example)) => ResponseBuilder::new()
                    .description("Success")
                    .content(media_type, ContentBuilder::new().example(Some(example)).build())
                    .build(),
                None => ResponseBuilder::new().description("Success").build(),
            },
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
    fn operation_ids_are_unique_and_every_link_joins_two_operations_on_parameters_they_have() {
        let ids: std::collections::BTreeSet<String> = super::ROUTES.iter().map(super::operation_id).collect();
        assert_eq!(ids.len(), super::ROUTES.len(), "one id per operation");
        for link in super::LINKS {
            let from = super::route(link.from.0, link.from.1).expect("a link starts at a route");
            let to = super::route(link.to.0, link.to.1).expect("a link ends at a route");
            assert!(from.response.is_some(), "{} {} answers a body to take values from", from.method, from.path);
            for (name, expression) in link.parameters {
                assert!(to.path.contains(&format!("{{{name}}}")), "{} {} has no parameter {name}", to.method, to.path);
                let source = expression.strip_prefix("$request.path.");
                assert!(source.is_none_or(|p| from.path.contains(&format!("{{{p}}}"))), "{expression}");
            }
        }
        let json = serde_json::to_value(super::document()).unwrap();
        let links = &json["paths"]["/v1/bets"]["post"]["responses"]["201"]["links"];
        assert_eq!(links["get_bets_bet_id"]["operationId"], "get_bets_bet_id");
        assert_eq!(links["get_bets_bet_id"]["parameters"]["bet_id"], "$response.body#/bet_id");
    }

    #[test]
    fn path_parameters_are_text_exactly_where_the_node_reads_text() {
        let json = super::document();
        for route in super::ROUTES {
            let parameters = json["paths"][route.path][route.method.to_ascii_lowercase()]["parameters"].as_array();
            for p in parameters.into_iter().flatten().filter(|p| p["in"] == "path") {
                let name = p["name"].as_str().unwrap();
                let text = super::TEXT_PATH_PARAMETERS.contains(&name);
                let declared = if text { "string" } else { "integer" };
                assert_eq!(p["schema"]["type"], declared, "{} {}: {name}", route.method, route.path);
            }
        }
    }

    #[test]
    fn unsigned_fields_declare_their_whole_range_and_closed_sets_are_enums() {
        let json = serde_json::to_value(super::document()).unwrap();
        let schemas = &json["components"]["schemas"];
        let account_id = &schemas["OpenAccountRequest"]["properties"]["account_id"];
        assert_eq!(account_id["maximum"], u64::MAX, "{account_id}");
        assert_eq!(account_id["format"], "uint64");
        let stake = &schemas["PlaceBetRequest"]["properties"]["stake_per_line_minor"];
        assert_eq!(stake["maximum"], i64::MAX, "a signed field keeps its own range: {stake}");
        let policy = &schemas["PlaceBetRequest"]["properties"]["odds_policy"];
        assert_eq!(policy["enum"], serde_json::json!(["exact", "higher", "any"]), "{policy}");
        assert!(policy.get("pattern").is_none());
        let result = &schemas["SelectionResultBody"]["properties"]["win"];
        assert!(result["pattern"].as_str().unwrap().contains("dead_heat"), "an open form stays a pattern: {result}");
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
                route.idempotent || route.keys_in_body,
                route.method != "GET",
                "{} {}: every write carries an Idempotency-Key (in the header, or per item in a batch's body) so \
                 that a retry cannot act twice",
                route.method,
                route.path
            );
            assert!(
                !(route.idempotent && route.keys_in_body),
                "{} {}: one key or one per item",
                route.method,
                route.path
            );
        }
    }

    #[test]
    fn a_batch_item_key_has_the_header_s_pattern() {
        let json = serde_json::to_value(super::document()).unwrap();
        let item = &json["components"]["schemas"]["BatchBetBody"]["properties"]["idempotency_key"];
        assert_eq!(item["pattern"], super::IDEMPOTENCY_KEY_PATTERN);
    }
}
