//! Authentication and authorization of every API request, before its handler runs.
//!
//! A request names its route (the matched path template); [`paddock_api::openapi::ROUTES`] says
//! who may call it. Public routes pass. Every other request must carry `Authorization: Bearer
//! <key>`: the key is looked up among the static keys of this node's configuration (the
//! break-glass keys that create the first principals) and then in the replicated registry, so
//! any node authenticates any request and a revocation holds on every node as soon as it is
//! applied there. The role must be listed for the route (function level, OWASP API5); a bettor
//! must own the account or bet the path names (object level, API1), and the handler checks the
//! account a body names. Refusals are 401 `unauthenticated` or 403 `forbidden`, decided before
//! the object is looked up, so neither says whether an object exists.
//!
//! Why a key and not a password: a key is 256 random bits, so its SHA-256 digest cannot be
//! inverted and the check costs a microsecond (measured in BENCHMARKS.md), where a password
//! hash made slow on purpose would cost every request tens of milliseconds.

use crate::extract::Failure;
use crate::App;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use paddock_api::openapi::{Access, Own};
use paddock_api::{ApiError, ErrorCode};
use paddock_ledger::{AccountId, BetId, KeyHash, KeyId, KeyText, Role, TimestampMs};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

/// The authenticated caller of a request, put in the request's extensions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// Principal name: the actor recorded in the audit trail.
    pub principal: String,
    /// Its role.
    pub role: Role,
    /// The key it used.
    pub key: KeyId,
    /// When that key expires, if ever.
    pub expires_at: Option<TimestampMs>,
}

/// A key written in the node's configuration, for bootstrap and break-glass use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaticKey {
    /// Principal name.
    pub principal: String,
    /// Role.
    pub role: Role,
    /// Digest of the key.
    pub hash: KeyHash,
}

/// Reads a static keys file: one key a line, `<principal> <role> <key id: 16 hex> <sha256: 64
/// hex>`, `#` comments and blank lines ignored. `paddock keys static` writes such lines.
pub fn load_static_keys(path: &Path) -> Result<BTreeMap<KeyId, StaticKey>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    parse_static_keys(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Parses the text of a static keys file.
pub fn parse_static_keys(text: &str) -> Result<BTreeMap<KeyId, StaticKey>, String> {
    let mut keys = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [principal, role, id, hash] = fields[..] else {
            return Err(format!("line {}: expected <principal> <role> <key id> <sha256>", n + 1));
        };
        if !paddock_ledger::auth::principal_name_is_valid(principal) {
            return Err(format!("line {}: {principal:?} is not a valid principal name", n + 1));
        }
        let role = Role::parse(role).ok_or_else(|| {
            format!("line {}: role {role:?} is not bettor, trader, operator, auditor or service", n + 1)
        })?;
        let id = parse_key_id(id).ok_or_else(|| format!("line {}: the key id must be 16 hex digits", n + 1))?;
        let hash = parse_digest(hash).ok_or_else(|| format!("line {}: the digest must be 64 hex digits", n + 1))?;
        if keys.insert(id, StaticKey { principal: principal.to_string(), role, hash }).is_some() {
            return Err(format!("line {}: key id {id} appears twice", n + 1));
        }
    }
    Ok(keys)
}

/// A key id: exactly 16 hex digits.
pub fn parse_key_id(text: &str) -> Option<KeyId> {
    (text.len() == 16 && text.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| u64::from_str_radix(text, 16).ok().map(KeyId))
        .flatten()
}

/// A SHA-256 digest: exactly 64 hex digits.
pub fn parse_digest(text: &str) -> Option<KeyHash> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(KeyHash(out))
}

fn unauthenticated(reason: &'static str) -> Response {
    metrics::counter!("paddock_auth_failures_total", "reason" => reason).increment(1);
    let mut response = Failure(ApiError::new(
        ErrorCode::Unauthenticated,
        "this route needs an API key: send `Authorization: Bearer pdk_...`; the key may be unknown, expired or revoked",
    ))
    .into_response();
    response.headers_mut().insert("www-authenticate", HeaderValue::from_static("Bearer realm=\"paddock\""));
    response
}

fn forbidden(reason: &'static str) -> Response {
    metrics::counter!("paddock_auth_denied_total", "reason" => reason).increment(1);
    Failure(ApiError::new(ErrorCode::Forbidden, "this principal may not do this, or not on this object"))
        .into_response()
}

/// Finds the caller of a request from its `Authorization` header. `may_catch_up` is asked
/// before the one costly step (a read-index round trip for a key id this node has not seen);
/// if it says no, the key is refused as it stands.
pub(crate) async fn authenticate(
    app: &App,
    header: Option<&HeaderValue>,
    may_catch_up: impl FnOnce() -> bool,
) -> Result<Caller, &'static str> {
    let text = header.ok_or("missing")?.to_str().map_err(|_| "malformed")?;
    let token = text.strip_prefix("Bearer ").or_else(|| text.strip_prefix("bearer ")).ok_or("malformed")?;
    let key = KeyText::parse(token.trim()).ok_or("malformed")?;
    if let Some(found) = app.static_keys.get(&key.id) {
        let presented = key.hash();
        // Constant time: how long the comparison takes says nothing about the digest.
        let same = found.hash.0.iter().zip(presented.0.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
        return if same {
            Ok(Caller { principal: found.principal.clone(), role: found.role, key: key.id, expires_at: None })
        } else {
            Err("invalid")
        };
    }
    let now = (app.clock)();
    let look = |app: &App| app.consensus.read(|d| (d.state.authenticate(&key, now), d.state.api_key(key.id).is_some()));
    let (mut found, mut known) = look(app);
    // A key issued a moment ago through another node may not be applied here yet: catch up
    // once (a ReadIndex round trip) before refusing a key id this node has never seen.
    if !known {
        if !may_catch_up() {
            return Err("rate_limited");
        }
        if app.consensus.linearize().await.is_ok() {
            (found, known) = look(app);
        }
    }
    let _ = known;
    let found = found.ok_or("invalid")?;
    Ok(Caller { principal: found.principal, role: found.role, key: found.key, expires_at: found.expires_at })
}

/// A new key: 64 random bits of id and 256 of secret from the operating system.
pub(crate) fn new_key() -> Result<KeyText, String> {
    let mut bytes = [0u8; 40];
    getrandom::fill(&mut bytes).map_err(|e| format!("the operating system gave no randomness: {e}"))?;
    let mut secret = [0u8; paddock_ledger::auth::KEY_SECRET_LEN];
    secret.copy_from_slice(&bytes[8..]);
    Ok(KeyText { id: KeyId(u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"))), secret })
}

/// The value of path parameter `name` in `path`, given the route's template.
fn path_param<'a>(template: &str, path: &'a str, name: &str) -> Option<&'a str> {
    let wanted = format!("{{{name}}}");
    template.split('/').zip(path.split('/')).find(|(t, _)| *t == wanted).map(|(_, v)| v)
}

impl App {
    /// Whether `caller` may act on `account`: always for roles other than bettor (the route's
    /// role list has already admitted them); a bettor only on an account it owns. A node that
    /// has not yet applied a recent binding catches up once before saying no.
    pub(crate) async fn may_use_account(&self, caller: &Caller, account: AccountId) -> bool {
        if caller.role != Role::Bettor {
            return true;
        }
        let owns =
            |app: &App| app.consensus.read(|d| d.state.account_owner(account) == Some(caller.principal.as_str()));
        owns(self) || (self.consensus.linearize().await.is_ok() && owns(self))
    }

    async fn may_use_bet(&self, caller: &Caller, bet: BetId) -> bool {
        if caller.role != Role::Bettor {
            return true;
        }
        let owns = |app: &App| {
            app.consensus.read(|d| {
                d.state.bet_account(bet).is_some_and(|a| d.state.account_owner(a) == Some(caller.principal.as_str()))
            })
        };
        if owns(self) || (self.consensus.linearize().await.is_ok() && owns(self)) {
            return true;
        }
        // An archived bet: its account is in the archive index.
        match crate::history::archived_bet(self, bet).await {
            Ok(Some(view)) => {
                self.consensus.read(|d| d.state.account_owner(view.account) == Some(caller.principal.as_str()))
            }
            _ => false,
        }
    }
}

/// With `metrics_require_key`: `/metrics` answers only a key of an operator, an auditor or a
/// service principal (a Prometheus server's), and a wrong or missing one gets 401 or 403.
pub(crate) async fn scraper(app: &App, header: Option<&HeaderValue>) -> Result<(), Response> {
    match authenticate(app, header, || true).await {
        Ok(caller) if matches!(caller.role, Role::Operator | Role::Auditor | Role::Service) => Ok(()),
        Ok(_) => Err(forbidden("role")),
        Err(reason) => Err(unauthenticated(reason)),
    }
}

/// Middleware: authenticates and authorizes every request to a known route.
pub(crate) async fn authorize(State(app): State<App>, mut request: Request, next: Next) -> Response {
    let Some(template) = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string()) else {
        return next.run(request).await; // no route: the 404 fallback answers
    };
    // axum answers HEAD with the GET handler: it is authorized as the GET it is.
    let method = if request.method() == axum::http::Method::HEAD { "GET" } else { request.method().as_str() };
    let Some(route) = paddock_api::openapi::route(method, &template) else {
        // A route the router serves but the table does not list: refused rather than served
        // unchecked (a unit test holds the router and the table equal).
        return forbidden("unlisted");
    };
    let Access::Roles(roles, own) = route.access else {
        return next.run(request).await;
    };
    let header = request.headers().get("authorization").cloned();
    // Guessing keys costs a guesser its address's budget (sending none costs nothing). An
    // unknown key id is charged before the node asks the leader about it, so an address over
    // its budget costs no round trip; any other failure is charged when it is found.
    let mut limited = None;
    let mut charged = false;
    let ip = source_ip(&request);
    let result = authenticate(&app, header.as_ref(), || {
        charged = true;
        limited = app.limit_failed_authentication(ip);
        limited.is_none()
    })
    .await;
    let caller = match result {
        Ok(caller) => caller,
        Err(reason) => {
            if let Some(response) = limited {
                return response;
            }
            if reason != "missing" && !charged {
                if let Some(response) = app.limit_source(&request, true) {
                    return response;
                }
            }
            return unauthenticated(reason);
        }
    };
    if !roles.contains(&caller.role) {
        return forbidden("role");
    }
    let path = request.uri().path().to_string();
    let allowed = match own {
        Own::Nothing | Own::BodyAccount => true,
        Own::PathAccount => match path_param(&template, &path, "account_id").and_then(|v| v.parse().ok()) {
            Some(account) => app.may_use_account(&caller, AccountId(account)).await,
            None => caller.role != Role::Bettor, // a bad id: the handler answers 400 to the others
        },
        Own::PathBet => match path_param(&template, &path, "bet_id").and_then(|v| v.parse().ok()) {
            Some(bet) => app.may_use_bet(&caller, BetId(bet)).await,
            None => caller.role != Role::Bettor,
        },
    };
    if !allowed {
        return forbidden("object");
    }
    if let Some(response) = app.limit_principal(&caller.principal) {
        return response;
    }
    request.extensions_mut().insert(caller);
    next.run(request).await
}

/// The source address of a request (the balancer's, behind one).
pub(crate) fn source_ip(request: &Request) -> Option<std::net::IpAddr> {
    request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_static_keys_file_is_read_and_its_mistakes_are_named_by_line() {
        let hash = "ab".repeat(32);
        let text = format!(
            "# bootstrap keys\n\nroot operator 00000000000000aa {hash}\nsvc.load service 00000000000000bb {hash}\n"
        );
        let keys = parse_static_keys(&text).unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[&KeyId(0xaa)].role, Role::Operator);
        for (bad, says) in [
            (format!("root operator 00aa {hash}"), "line 1: the key id"),
            (format!("root admin 00000000000000aa {hash}"), "line 1: role \"admin\""),
            (format!("Root operator 00000000000000aa {hash}"), "not a valid principal name"),
            ("root operator 00000000000000aa abcd".to_string(), "the digest"),
            (format!("a operator 00000000000000aa {hash}\nb operator 00000000000000aa {hash}"), "line 2: key id"),
            ("root operator".to_string(), "expected"),
        ] {
            let err = parse_static_keys(&bad).unwrap_err();
            assert!(err.contains(says), "{err} should say {says}");
        }
    }

    #[test]
    fn path_parameters_are_read_by_the_template() {
        assert_eq!(path_param("/v1/bets/{bet_id}/cash-out", "/v1/bets/42/cash-out", "bet_id"), Some("42"));
        assert_eq!(path_param("/v1/accounts/{account_id}", "/v1/accounts/7", "bet_id"), None);
    }
}
