//! A typed async client for Paddock's HTTP API.
//!
//! - Any node accepts any request, so the client just rotates through the node URLs it was
//!   given when one does not answer.
//! - Every write carries an `Idempotency-Key` chosen by the caller ([`fresh_key`] makes one)
//!   and is retried with the *same* key when the answer is lost (transport error after
//!   sending, `outcome_unknown`, `unavailable`): the ledger returns the first outcome instead
//!   of acting twice. A write without a key (only possible through [`Client::call`]) is retried
//!   only when it certainly was not acted on: the connection could not be made, or the node
//!   refused it before any work (`unavailable`, `overloaded`, `rate_limited`).
//! - Refusals come back as [`ClientError::Api`] with the stable error code.
//! - [`Client::bet_batcher`] groups bets placed from many tasks at once into batch requests
//!   (`batcher.rs`), each bet still answered on its own.

mod batcher;

pub use batcher::{BetBatcher, BATCH_BETS_MAX};
use paddock_api::wire::*;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// A new idempotency key: 128 random bits from the operating system, as 32 hex digits. Make
/// one per logical operation and send it again with every retry of that operation.
pub fn fresh_key() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the operating system provides random bytes");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A new API key made on this machine: 64 random bits of id and 256 of secret. Its secret
/// never needs to leave this machine but in requests: register it with
/// [`Client::issue_key_digest`] (or a static keys file line, [`static_key_line`]).
pub fn new_api_key() -> paddock_api::KeyText {
    let mut bytes = [0u8; 40];
    getrandom::fill(&mut bytes).expect("the operating system provides random bytes");
    let mut secret = [0u8; 32];
    secret.copy_from_slice(&bytes[8..]);
    paddock_api::KeyText { id: paddock_api::KeyId(u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"))), secret }
}

/// The line of a node's static keys file that makes `key` a key of `principal` in `role`.
pub fn static_key_line(principal: &str, role: paddock_api::Role, key: &paddock_api::KeyText) -> String {
    let digest: String = key.hash().0.iter().map(|b| format!("{b:02x}")).collect();
    format!("{principal} {role} {} {digest}", key.id)
}

/// Static keys for a cluster that a program starts itself (the demo, the tests, the chaos
/// harness, a first production node): an operator, who creates the per-person principals,
/// and a service principal, which acts for players. The nodes read [`StaticKeys::file_text`]
/// from `--static-keys`; [`StaticKeys::ring`] gives a client both keys.
pub struct StaticKeys {
    /// Name of the operator principal.
    pub operator_name: String,
    /// The operator's key.
    pub operator: paddock_api::KeyText,
    /// Name of the service principal.
    pub service_name: String,
    /// The service's key.
    pub service: paddock_api::KeyText,
}

impl StaticKeys {
    /// Two new keys for the named principals.
    pub fn generate(operator_name: &str, service_name: &str) -> StaticKeys {
        StaticKeys {
            operator_name: operator_name.into(),
            operator: new_api_key(),
            service_name: service_name.into(),
            service: new_api_key(),
        }
    }

    /// The static keys file (digests only).
    pub fn file_text(&self) -> String {
        format!(
            "# Static API keys: <principal> <role> <key id> <sha256 of the key>\n{}\n{}\n",
            static_key_line(&self.operator_name, paddock_api::Role::Operator, &self.operator),
            static_key_line(&self.service_name, paddock_api::Role::Service, &self.service),
        )
    }

    /// Both keys with their roles, for [`Client::with_keys`].
    pub fn ring(&self) -> Vec<(paddock_api::Role, String)> {
        vec![(paddock_api::Role::Operator, self.operator.expose()), (paddock_api::Role::Service, self.service.expose())]
    }
}

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The API answered with an error.
    #[error("HTTP {status} {code}: {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// Stable error code.
        code: String,
        /// Explanation.
        message: String,
    },
    /// The request was sent (or may have been) and no answer came back.
    #[error("transport: {0}")]
    Transport(String),
    /// No connection could be made: the request was certainly never sent. The text names the
    /// node and the reason in words ("cannot connect to http://127.0.0.1:7001: connection refused").
    #[error("{0}")]
    Unsent(String),
    /// An answer could not be decoded.
    #[error("undecodable answer: {0}")]
    Decode(String),
    /// The client itself could not be set up (a bad CA file).
    #[error("client configuration: {0}")]
    Config(String),
}

impl ClientError {
    /// The stable error code of an API refusal.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Whether a retry could change the answer (the command may not have been applied).
    pub fn is_retryable(&self) -> bool {
        match self {
            ClientError::Transport(_) | ClientError::Unsent(_) => true,
            ClientError::Api { code, .. } => {
                matches!(
                    code.as_str(),
                    "unavailable"
                        | "outcome_unknown"
                        | "overloaded"
                        | "read_unavailable"
                        | "rate_limited"
                        | "clock_step_too_large"
                        | "clock_unsynchronized"
                )
            }
            ClientError::Decode(_) | ClientError::Config(_) => false,
        }
    }

    /// Whether the request certainly was not acted on: safe to send again even without an
    /// idempotency key.
    pub fn was_not_acted_on(&self) -> bool {
        match self {
            ClientError::Unsent(_) | ClientError::Config(_) => true,
            ClientError::Api { code, .. } => {
                matches!(
                    code.as_str(),
                    "unavailable" | "overloaded" | "rate_limited" | "clock_step_too_large" | "clock_unsynchronized"
                )
            }
            ClientError::Transport(_) | ClientError::Decode(_) => false,
        }
    }
}

/// How hard to retry.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    /// Attempts in all (1 = no retry).
    pub attempts: u32,
    /// Wait before the second attempt; doubles up to `backoff_max`.
    pub backoff: Duration,
    /// Longest wait between attempts.
    pub backoff_max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy { attempts: 20, backoff: Duration::from_millis(25), backoff_max: Duration::from_millis(500) }
    }
}

/// The client. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    nodes: std::sync::Arc<Vec<String>>,
    next: std::sync::Arc<AtomicUsize>,
    /// Keys and their roles; with more than one, each request uses the first whose role its
    /// route admits (a test harness or an operator's console holding several principals).
    keys: std::sync::Arc<Vec<(Option<paddock_api::Role>, String)>>,
    retry: RetryPolicy,
    timeout: Duration,
}

/// The HTTP client: plain, or trusting only the given CA for HTTPS.
fn http_client(timeout: Duration, ca_pem: Option<&[u8]>) -> Result<reqwest::Client, ClientError> {
    let mut builder = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(Duration::from_millis(500))
        .pool_max_idle_per_host(64)
        .tcp_nodelay(true);
    if let Some(pem) = ca_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| ClientError::Config(format!("the CA file holds no usable PEM certificate: {e}")))?;
        if certs.is_empty() {
            return Err(ClientError::Config("the CA file holds no certificate".into()));
        }
        builder = builder.use_rustls_tls().tls_built_in_root_certs(false);
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder.build().map_err(|e| ClientError::Config(format!("cannot build the HTTP client: {e}")))
}

impl Client {
    /// A client for the given node base URLs (`http://127.0.0.1:7001`), with a per-request
    /// timeout.
    pub fn new(nodes: Vec<String>, timeout: Duration) -> Client {
        let http = http_client(timeout, None).expect("a plain HTTP client builds");
        Client {
            http,
            nodes: std::sync::Arc::new(nodes),
            next: std::sync::Arc::default(),
            keys: std::sync::Arc::default(),
            retry: RetryPolicy::default(),
            timeout,
        }
    }

    /// Trusts the CA certificate(s) in `ca_pem` for `https://` node URLs (the cluster's own CA,
    /// `ca.pem` of `paddock certs`), and no other.
    pub fn with_ca_pem(mut self, ca_pem: &[u8]) -> Result<Client, ClientError> {
        self.http = http_client(self.timeout, Some(ca_pem))?;
        Ok(self)
    }

    /// Sends `Authorization: Bearer <key>` with every request.
    pub fn with_token(mut self, key: &str) -> Client {
        self.keys = std::sync::Arc::new(vec![(None, key.to_string())]);
        self
    }

    /// Holds several principals' keys; each request uses the first key whose role its route
    /// admits, else the first key.
    pub fn with_keys(mut self, keys: &[(paddock_api::Role, String)]) -> Client {
        self.keys = std::sync::Arc::new(keys.iter().map(|(r, k)| (Some(*r), k.clone())).collect());
        self
    }

    /// The same nodes and settings with another key.
    pub fn as_principal(&self, key: &str) -> Client {
        self.clone().with_token(key)
    }

    fn key_for(&self, method: &Method, path: &str) -> Option<&str> {
        if self.keys.len() > 1 {
            if let Some(route) = paddock_api::openapi::route_for_path(method.as_str(), path) {
                let admitted = self.keys.iter().find(|(role, _)| role.is_some_and(|r| route.access.admits(r)));
                if let Some((_, key)) = admitted {
                    return Some(key);
                }
            }
        }
        self.keys.first().map(|(_, k)| k.as_str())
    }

    /// Replaces the retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Client {
        self.retry = retry;
        self
    }

    /// The same client with its own rotation, starting at node `index` (modulo the node count):
    /// a load generator gives each request the next start so that requests spread over every
    /// node, and a failed try still moves on to the next one.
    pub fn starting_at(&self, index: usize) -> Client {
        let mut c = self.clone();
        c.next = std::sync::Arc::new(AtomicUsize::new(index % self.nodes.len().max(1)));
        c
    }

    /// Pins the client to one node (no rotation): for tests that talk to a given node.
    pub fn node(&self, index: usize) -> Client {
        let mut c = self.clone();
        c.nodes = std::sync::Arc::new(vec![self.nodes[index].clone()]);
        c.next = std::sync::Arc::default();
        c
    }

    /// Node URLs.
    pub fn nodes(&self) -> &[String] {
        &self.nodes
    }

    /// One series of the first node's `/metrics` (see [`metric_value`]); `None` if it does not
    /// export it.
    pub async fn metric(&self, series: &str) -> Result<Option<f64>, ClientError> {
        let text = self.get_bytes("/metrics").await?;
        Ok(metric_value(&String::from_utf8_lossy(&text), series))
    }

    /// A `GET` whose answer is bytes, not JSON (the backup routes), from the first node, once.
    pub async fn get_bytes(&self, path: &str) -> Result<Vec<u8>, ClientError> {
        let base = self.nodes.first().ok_or_else(|| ClientError::Transport("no nodes configured".into()))?;
        self.once_bytes(base, &Method::GET, path, None, None).await
    }

    async fn once<T: DeserializeOwned>(
        &self,
        base: &str,
        method: &Method,
        path: &str,
        body: Option<&serde_json::Value>,
        key: Option<&str>,
    ) -> Result<T, ClientError> {
        let bytes = self.once_bytes(base, method, path, body, key).await?;
        serde_json::from_slice(&bytes)
            .map_err(|e| ClientError::Decode(format!("{e}: {}", String::from_utf8_lossy(&bytes))))
    }

    /// One request; the answer's bytes if it succeeded, else its error.
    async fn once_bytes(
        &self,
        base: &str,
        method: &Method,
        path: &str,
        body: Option<&serde_json::Value>,
        key: Option<&str>,
    ) -> Result<Vec<u8>, ClientError> {
        let mut req = self.http.request(method.clone(), format!("{base}{path}"));
        if let Some(token) = self.key_for(method, path) {
            req = req.bearer_auth(token);
        }
        if let Some(key) = key {
            req = req.header("idempotency-key", key);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = req.send().await.map_err(|e| {
            if e.is_connect() {
                ClientError::Unsent(format!("cannot connect to {base}: {}", root_cause(&e)))
            } else {
                ClientError::Transport(e.to_string())
            }
        })?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| ClientError::Transport(e.to_string()))?;
        if status.is_success() {
            return Ok(bytes.to_vec());
        }
        match serde_json::from_slice::<paddock_api::ErrorBody>(&bytes) {
            Ok(body) => {
                Err(ClientError::Api { status: status.as_u16(), code: body.error.code, message: body.error.message })
            }
            Err(_)
                if status == StatusCode::BAD_GATEWAY
                    || status == StatusCode::SERVICE_UNAVAILABLE
                    || status == StatusCode::GATEWAY_TIMEOUT =>
            {
                // A proxy in front (HAProxy) with no healthy backend.
                Err(ClientError::Api {
                    status: status.as_u16(),
                    code: "unavailable".into(),
                    message: String::from_utf8_lossy(&bytes).into(),
                })
            }
            Err(_) => Err(ClientError::Api {
                status: status.as_u16(),
                code: "unknown".into(),
                message: String::from_utf8_lossy(&bytes).into(),
            }),
        }
    }

    /// Sends a request, rotating nodes and retrying while the error is retryable. A write
    /// (any method but GET) without `key` is retried only while it was certainly not acted on.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
        key: Option<&str>,
    ) -> Result<T, ClientError> {
        let resend_safe = method == Method::GET || key.is_some();
        self.call_with(method, path, body, key, resend_safe).await
    }

    /// [`Client::call`], told whether a request that may have been acted on can be sent again
    /// (a batch's body carries a key per item, so it can).
    async fn call_with<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
        key: Option<&str>,
        resend_safe: bool,
    ) -> Result<T, ClientError> {
        let body = body.map(|b| serde_json::to_value(b).expect("request bodies serialise"));
        let mut wait = self.retry.backoff;
        let mut last = ClientError::Transport("no nodes configured".into());
        for attempt in 0..self.retry.attempts.max(1) {
            if self.nodes.is_empty() {
                break;
            }
            let index = self.next.load(Ordering::Relaxed) % self.nodes.len();
            match self.once(&self.nodes[index], &method, path, body.as_ref(), key).await {
                Ok(v) => return Ok(v),
                Err(e)
                    if e.is_retryable()
                        && (resend_safe || e.was_not_acted_on())
                        && attempt + 1 < self.retry.attempts =>
                {
                    // Move to the next node for the next try: this one may be down, or cut
                    // off from the majority (it answers `unavailable` or `outcome_unknown`).
                    self.next.fetch_add(1, Ordering::Relaxed);
                    last = e;
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(self.retry.backoff_max);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.call(Method::GET, path, None::<&()>, None).await
    }

    async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
        key: Option<&str>,
    ) -> Result<T, ClientError> {
        self.call(Method::POST, path, Some(body), key).await
    }

    /// Opens an account.
    pub async fn open_account(&self, account_id: u64, currency: &str, key: &str) -> Result<AccountBody, ClientError> {
        self.post("/v1/accounts", &OpenAccountRequest { account_id, currency: currency.into() }, Some(key)).await
    }

    /// Reads an account (linearizable).
    pub async fn account(&self, account_id: u64) -> Result<AccountBody, ClientError> {
        self.get(&format!("/v1/accounts/{account_id}")).await
    }

    /// Deposits.
    pub async fn deposit(&self, account_id: u64, amount_minor: i64, key: &str) -> Result<BalanceBody, ClientError> {
        self.post(&format!("/v1/accounts/{account_id}/deposits"), &AmountRequest { amount_minor }, Some(key)).await
    }

    /// Withdraws.
    pub async fn withdraw(&self, account_id: u64, amount_minor: i64, key: &str) -> Result<BalanceBody, ClientError> {
        self.post(&format!("/v1/accounts/{account_id}/withdrawals"), &AmountRequest { amount_minor }, Some(key)).await
    }

    /// Places a bet.
    pub async fn place_bet(&self, req: &PlaceBetRequest, key: &str) -> Result<PlacedBody, ClientError> {
        self.post("/v1/bets", req, Some(key)).await
    }

    /// Places up to 200 bets in one request, each with its own idempotency key (in the body):
    /// the whole batch may be sent again after a lost answer, and each bet then answers with
    /// its first answer (`replayed: true`).
    pub async fn place_bets(&self, req: &PlaceBetsRequest) -> Result<PlacedBatchBody, ClientError> {
        self.call_with(Method::POST, "/v1/bets/batch", Some(req), None, true).await
    }

    /// Reads a bet.
    pub async fn bet(&self, bet_id: u64) -> Result<BetBody, ClientError> {
        self.get(&format!("/v1/bets/{bet_id}")).await
    }

    /// An account's bets.
    pub async fn account_bets(&self, account_id: u64) -> Result<Vec<BetBody>, ClientError> {
        self.all_pages(&format!("/v1/accounts/{account_id}/bets"), |b: &BetBody| b.bet_id.to_string()).await
    }

    /// Every page of a list route, following the cursor (`after` = the last item's id).
    async fn all_pages<T: DeserializeOwned>(
        &self,
        path: &str,
        cursor: impl Fn(&T) -> String,
    ) -> Result<Vec<T>, ClientError> {
        const PAGE: usize = 1000;
        let mut all: Vec<T> = Vec::new();
        loop {
            let after = all.last().map(|last| format!("&after={}", cursor(last))).unwrap_or_default();
            let page: Vec<T> = self.get(&format!("{path}?limit={PAGE}{after}")).await?;
            let full = page.len() == PAGE;
            all.extend(page);
            if !full {
                return Ok(all);
            }
        }
    }

    /// Cashes out.
    pub async fn cash_out(&self, bet_id: u64, req: &CashOutRequest, key: &str) -> Result<CashedOutBody, ClientError> {
        self.post(&format!("/v1/bets/{bet_id}/cash-out"), req, Some(key)).await
    }

    /// Creates an event (operator).
    pub async fn create_event(&self, req: &CreateEventRequest, key: &str) -> Result<AckBody, ClientError> {
        self.post("/v1/events", req, Some(key)).await
    }

    /// Creates a market (operator).
    pub async fn create_market(&self, req: &CreateMarketRequest, key: &str) -> Result<AckBody, ClientError> {
        self.post("/v1/markets", req, Some(key)).await
    }

    /// Reads a market.
    pub async fn market(&self, market_id: u64) -> Result<MarketBody, ClientError> {
        self.get(&format!("/v1/markets/{market_id}")).await
    }

    /// Every event with its markets' ids, fetched a page at a time.
    pub async fn events(&self) -> Result<Vec<EventBody>, ClientError> {
        self.all_pages("/v1/events", |e: &EventBody| e.event_id.to_string()).await
    }

    /// Lists markets (every page).
    pub async fn markets(&self) -> Result<Vec<MarketBody>, ClientError> {
        self.all_pages("/v1/markets", |m: &MarketBody| m.market_id.to_string()).await
    }

    /// Sets a price (operator).
    pub async fn set_price(
        &self,
        market_id: u64,
        selection_id: u64,
        odds: &str,
        key: &str,
    ) -> Result<AckBody, ClientError> {
        self.call(
            Method::PUT,
            &format!("/v1/markets/{market_id}/selections/{selection_id}/price"),
            Some(&PriceRequest { odds: odds.into() }),
            Some(key),
        )
        .await
    }

    /// Suspends, resumes or closes a market: `action` is "suspend", "resume" or "close" (operator).
    pub async fn market_action(
        &self,
        market_id: u64,
        action: &str,
        reason: &str,
        key: &str,
    ) -> Result<AckBody, ClientError> {
        self.post(&format!("/v1/markets/{market_id}/{action}"), &ReasonRequest { reason: reason.into() }, Some(key))
            .await
    }

    /// Settles (or with `resettle`, corrects) a market (operator).
    pub async fn settle(
        &self,
        market_id: u64,
        req: &SettleRequest,
        resettle: bool,
        key: &str,
    ) -> Result<SettledBody, ClientError> {
        let action = if resettle { "resettle" } else { "settle" };
        self.post(&format!("/v1/markets/{market_id}/{action}"), req, Some(key)).await
    }

    /// Voids a market (operator).
    pub async fn void(&self, market_id: u64, reason: &str, key: &str) -> Result<SettledBody, ClientError> {
        self.post(&format!("/v1/markets/{market_id}/void"), &ReasonRequest { reason: reason.into() }, Some(key)).await
    }

    /// The cluster as the answering node sees it.
    pub async fn cluster(&self) -> Result<ClusterBody, ClientError> {
        self.get("/v1/cluster").await
    }

    /// The answering node's state hash.
    pub async fn state_hash(&self) -> Result<StateHashBody, ClientError> {
        self.get("/v1/cluster/state-hash").await
    }

    /// Adds a learner. Membership operations are idempotent by their target state, so each call
    /// carries a fresh key.
    pub async fn add_member(&self, node_id: u64, peer_addr: &str) -> Result<AckBody, ClientError> {
        let body = AddMemberRequest { node_id, peer_addr: peer_addr.into() };
        self.post("/v1/cluster/members", &body, Some(&fresh_key())).await
    }

    /// Promotes a learner to voter.
    pub async fn promote(&self, node_id: u64) -> Result<AckBody, ClientError> {
        self.post(&format!("/v1/cluster/members/{node_id}/promote"), &serde_json::json!({}), Some(&fresh_key())).await
    }

    /// Makes a voter a learner again (it keeps replicating and stops voting).
    pub async fn demote(&self, node_id: u64) -> Result<AckBody, ClientError> {
        self.post(&format!("/v1/cluster/members/{node_id}/demote"), &serde_json::json!({}), Some(&fresh_key())).await
    }

    /// Removes a node.
    pub async fn remove_member(&self, node_id: u64) -> Result<AckBody, ClientError> {
        self.post(&format!("/v1/cluster/members/{node_id}/remove"), &serde_json::json!({}), Some(&fresh_key())).await
    }

    /// Hands leadership to a node.
    pub async fn transfer_leader(&self, node_id: u64) -> Result<AckBody, ClientError> {
        self.post("/v1/cluster/transfer-leader", &TransferLeaderRequest { node_id }, Some(&fresh_key())).await
    }

    /// Creates a principal (`account_ids` only for a bettor).
    pub async fn create_principal(
        &self,
        name: &str,
        role: paddock_api::Role,
        account_ids: &[u64],
        key: &str,
    ) -> Result<PrincipalBody, ClientError> {
        let body =
            CreatePrincipalRequest { name: name.into(), role: role.as_str().into(), account_ids: account_ids.to_vec() };
        self.post("/v1/principals", &body, Some(key)).await
    }

    /// Every principal and its keys.
    pub async fn principals(&self) -> Result<Vec<PrincipalBody>, ClientError> {
        self.all_pages("/v1/principals", |p: &PrincipalBody| p.name.clone()).await
    }

    /// Gives a bettor one more account.
    pub async fn bind_account(&self, principal: &str, account_id: u64, key: &str) -> Result<AckBody, ClientError> {
        self.post(&format!("/v1/principals/{principal}/accounts"), &BindAccountRequest { account_id }, Some(key)).await
    }

    /// Registers a key made on this machine ([`new_api_key`]) by its digest: the secret is not
    /// sent, and a retry with the same idempotency key is safe.
    pub async fn issue_key_digest(
        &self,
        principal: &str,
        new_key: &paddock_api::KeyText,
        ttl_s: Option<u64>,
        key: &str,
    ) -> Result<IssuedKeyBody, ClientError> {
        let digest: String = new_key.hash().0.iter().map(|b| format!("{b:02x}")).collect();
        let body = IssueKeyRequest { ttl_s, key_id: Some(new_key.id.to_string()), key_sha256: Some(digest) };
        self.post(&format!("/v1/principals/{principal}/keys"), &body, Some(key)).await
    }

    /// Makes a key here, registers it for `principal` and returns its text.
    pub async fn issue_key(&self, principal: &str, ttl_s: Option<u64>) -> Result<String, ClientError> {
        let new_key = new_api_key();
        self.issue_key_digest(principal, &new_key, ttl_s, &fresh_key()).await?;
        Ok(new_key.expose())
    }

    /// Revokes a key on every node.
    pub async fn revoke_key(&self, key_id: &str, key: &str) -> Result<AckBody, ClientError> {
        self.post(&format!("/v1/keys/{key_id}/revoke"), &serde_json::json!({}), Some(key)).await
    }

    /// Every incident record, oldest first.
    pub async fn incidents(&self) -> Result<Vec<IncidentBody>, ClientError> {
        self.all_pages("/v1/incidents", |i: &IncidentBody| i.incident_id.to_string()).await
    }

    /// Opens an incident by hand (a failure no node detects by itself).
    pub async fn open_incident(&self, cause: &str, node_id: u64, key: &str) -> Result<IncidentOpenedBody, ClientError> {
        self.post("/v1/incidents", &OpenIncidentRequest { cause: cause.to_string(), node_id }, Some(key)).await
    }

    /// Closes an incident with its resolution.
    pub async fn close_incident(&self, incident_id: u64, resolution: &str, key: &str) -> Result<AckBody, ClientError> {
        let body = CloseIncidentRequest { resolution: resolution.to_string() };
        self.post(&format!("/v1/incidents/{incident_id}/close"), &body, Some(key)).await
    }

    /// The whole audit trail, oldest first, fetched a page of 1000 at a time.
    pub async fn audit_trail(&self) -> Result<Vec<AuditRecordBody>, ClientError> {
        const PAGE: usize = 1000;
        let mut all: Vec<AuditRecordBody> = Vec::new();
        loop {
            let page: Vec<AuditRecordBody> = self.get(&format!("/v1/audit?from={}&limit={PAGE}", all.len())).await?;
            let full = page.len() == PAGE;
            all.extend(page);
            if !full {
                return Ok(all);
            }
        }
    }

    /// Who this client's key belongs to.
    pub async fn whoami(&self) -> Result<WhoAmIBody, ClientError> {
        self.get("/v1/whoami").await
    }

    /// Whether a node answers `/health/ready` with 200.
    pub async fn is_ready(&self, index: usize) -> bool {
        match self.http.get(format!("{}/health/ready", self.nodes[index])).send().await {
            Ok(r) => r.status().is_success(),
            Err(_) => false,
        }
    }
}

/// The innermost reason of an HTTP client error, in words: "connection refused", not the
/// wrapper's "error sending request for url (...)". Lower-cased, without the OS error number.
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut inner = error;
    while let Some(next) = inner.source() {
        inner = next;
    }
    let text = inner.to_string();
    let text = text.split(" (os error").next().unwrap_or(&text);
    text.to_lowercase()
}

/// The value of one series in Prometheus text exposition: `series` is its name with its labels
/// as exposed (`paddock_raft_replication_lag_entries{follower="4"}`), or the bare name of an
/// unlabelled one. `None` if the text has no such series.
pub fn metric_value(exposition: &str, series: &str) -> Option<f64> {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::metric_value;

    const EXPOSITION: &str = "# HELP paddock_replica_lag_seconds Lag.\n\
        # TYPE paddock_replica_lag_seconds gauge\n\
        paddock_replica_lag_seconds 0.25\n\
        paddock_replica_lag_seconds_total 9\n\
        paddock_raft_replication_lag_entries{follower=\"2\"} 3\n\
        paddock_raft_replication_lag_entries{follower=\"4\"} 57\n";

    #[test]
    fn a_series_is_found_by_its_exact_name_and_labels_never_by_a_longer_name() {
        assert_eq!(metric_value(EXPOSITION, "paddock_replica_lag_seconds"), Some(0.25));
        assert_eq!(metric_value(EXPOSITION, "paddock_raft_replication_lag_entries{follower=\"4\"}"), Some(57.0));
        assert_eq!(metric_value(EXPOSITION, "paddock_raft_replication_lag_entries"), None);
        assert_eq!(metric_value(EXPOSITION, "paddock_missing"), None);
    }
}
