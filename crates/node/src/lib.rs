//! The Paddock server: one process of a cluster.
//!
//! # Layout
//! - [`config`]: the node's configuration (TOML and defaults).
//! - `routes`: HTTP handlers; `extract`: request decoding and error responses.
//! - `stream`: server-sent event streams; `jobs`: background loops; `metrics`: Prometheus.
//! - This file: [`run`], which wires storage, consensus, HTTP and jobs together and shuts
//!   them down in order.
//!
//! # Architecture invariants
//! - This is the only crate that reads the system clock (it stamps leader timestamps through
//!   the clock it hands to consensus) or owns the public sockets.
//! - Any node accepts any request; a follower forwards writes to the leader.
//! - Overload is refused before work is done: a concurrency limit with load shedding answers
//!   503 with `Retry-After` at once, and a per-client rate limit answers 429.

mod auth;
mod backups;
mod close_monitor;
mod coalesce;
pub mod config;
mod extract;
mod gray;
mod heal;
mod history;
mod incidents;
mod jobs;
mod metrics;
mod request_id;
mod routes;
mod self_check;
mod serve;
mod stream;

pub use auth::{load_static_keys, parse_static_keys, StaticKey};
pub use config::NodeConfig;
/// This build's version: what `paddock --version` prints and peers announce to the leader
/// (`+next-format` on the test build of the next log-entry format).
pub use paddock_consensus::formats::BUILD_VERSION as VERSION;
/// Certificate files and peer identity (the consensus crate owns mutual TLS between peers).
pub use paddock_consensus::tls;

use anyhow::Context;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use governor::{DefaultKeyedRateLimiter, Quota};
use paddock_api::{ApiError, ErrorCode};
use paddock_consensus::{Consensus, ConsensusConfig, Timing};
use paddock_ledger::TimestampMs;
use std::future::Future;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceBuilder;

/// The system clock as UTC milliseconds: the only clock reading in Paddock.
pub fn now() -> TimestampMs {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    TimestampMs(since.as_millis() as u64)
}

/// This node's clock: [`now`] plus the configured test-only offsets (none in production), so
/// that clock-fault tests can give one real process a clock far ahead or behind: a fixed
/// `offset_ms`, and the number of milliseconds in `offset_file` (re-read every 50 ms), which a
/// chaos harness rewrites to make the clock jump while the node runs.
pub fn node_clock(offset_ms: i64, offset_file: Option<std::path::PathBuf>) -> paddock_consensus::Clock {
    let Some(path) = offset_file else {
        return Arc::new(move || TimestampMs(now().0.saturating_add_signed(offset_ms)));
    };
    let read = move || std::fs::read_to_string(&path).ok().and_then(|t| t.trim().parse::<i64>().ok()).unwrap_or(0);
    let cache = std::sync::Mutex::new((std::time::Instant::now(), read()));
    Arc::new(move || {
        let mut c = cache.lock().unwrap_or_else(|e| e.into_inner());
        if c.0.elapsed() >= Duration::from_millis(50) {
            *c = (std::time::Instant::now(), read());
        }
        TimestampMs(now().0.saturating_add_signed(offset_ms.saturating_add(c.1)))
    })
}

/// Shared state of the HTTP layer.
#[derive(Clone)]
pub(crate) struct App {
    inner: Arc<AppInner>,
}

pub(crate) struct AppInner {
    consensus: Consensus,
    config: NodeConfig,
    metrics: metrics_exporter_prometheus::PrometheusHandle,
    /// Per authenticated principal.
    principal_limiter: Option<DefaultKeyedRateLimiter<String>>,
    /// Per source IP, every request.
    ip_limiter: Option<DefaultKeyedRateLimiter<std::net::IpAddr>>,
    /// Per source IP, failed authentications only.
    auth_failure_limiter: Option<DefaultKeyedRateLimiter<std::net::IpAddr>>,
    /// `GET /v1/cluster/state-hash`'s answer at the last applied index it was computed for.
    state_hash_cache: tokio::sync::Mutex<Option<paddock_api::wire::StateHashBody>>,
    /// The binary's digest at start, for the self-check.
    self_check: self_check::AtStart,
    /// Open SSE streams per principal.
    streams: Arc<std::sync::Mutex<std::collections::BTreeMap<String, usize>>>,
    /// Keys from the configuration's static keys file.
    static_keys: std::collections::BTreeMap<paddock_ledger::KeyId, StaticKey>,
    /// This node's clock (the one handed to consensus).
    clock: paddock_consensus::Clock,
    /// Set at the start of shutdown so readiness fails first and the balancer drains us.
    shutting_down: AtomicBool,
    /// Single bets, grouped into one entry when they arrive while others are being written.
    bets: coalesce::Coalescer,
}

impl std::ops::Deref for App {
    type Target = AppInner;
    fn deref(&self) -> &AppInner {
        &self.inner
    }
}

impl App {
    fn shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }

    /// 429 if this request's source address is over its limit (`failed`: counts failed
    /// authentications, which have their own, lower limit).
    fn limit_source(&self, request: &Request, failed: bool) -> Option<Response> {
        if failed {
            return self.limit_failed_authentication(auth::source_ip(request));
        }
        let (limiter, ip) = (self.ip_limiter.as_ref()?, auth::source_ip(request)?);
        limited(limiter.check_key(&ip), "ip")
    }

    /// 429 if the address `ip` is over its budget of failed authentications (this counts one).
    fn limit_failed_authentication(&self, ip: Option<std::net::IpAddr>) -> Option<Response> {
        let (limiter, ip) = (self.auth_failure_limiter.as_ref()?, ip?);
        limited(limiter.check_key(&ip), "auth_failures")
    }

    /// 429 if this principal is over its limit.
    fn limit_principal(&self, principal: &str) -> Option<Response> {
        let limiter = self.principal_limiter.as_ref()?;
        limited(limiter.check_key(&principal.to_string()), "principal")
    }
}

fn limited<P: governor::clock::Reference>(
    check: Result<(), governor::NotUntil<P>>,
    by: &'static str,
) -> Option<Response>
where
    governor::clock::DefaultClock: governor::clock::Clock<Instant = P>,
{
    let not_until = check.err()?;
    let wait = not_until.wait_time_from(governor::clock::Clock::now(&governor::clock::DefaultClock::default()));
    ::metrics::counter!("paddock_http_rate_limited_total", "by" => by).increment(1);
    let seconds = wait.as_secs().max(1) as u32;
    Some(
        extract::Failure(
            ApiError::new(
                ErrorCode::RateLimited,
                match by {
                    "principal" => "too many requests from this principal",
                    "ip" => "too many requests from this address",
                    _ => "too many failed authentications from this address",
                },
            )
            .retry_after(seconds),
        )
        .into_response(),
    )
}

/// The live console (`GET /console`): one self-contained page, embedded in the binary, that
/// reads this node's API with the key the user gives it. It holds no data itself, so it needs
/// no key to load.
async fn console() -> Response {
    (
        [
            (axum::http::header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (axum::http::header::CACHE_CONTROL, "no-store"),
            (
                axum::http::header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; \
                 connect-src *; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            ),
        ],
        CONSOLE_HTML,
    )
        .into_response()
}

const CONSOLE_HTML: &str = include_str!("console.html");

/// How often the node looks whether a read found its Raft log damaged.
const DAMAGE_CHECK_PERIOD: std::time::Duration = std::time::Duration::from_millis(250);

/// Requests refused at the concurrency limit since the process started (one node per process;
/// `paddock_http_shed_total` counts the same for Prometheus). The incident job reads it.
static SHED_REQUESTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

pub(crate) fn shed_requests() -> u64 {
    SHED_REQUESTS.load(std::sync::atomic::Ordering::Relaxed)
}

async fn overloaded(error: tower::BoxError) -> Response {
    if error.is::<tower::timeout::error::Elapsed>() {
        // The request was admitted and ran out of time: a write may still commit.
        ::metrics::counter!("paddock_http_timeouts_total").increment(1);
        return extract::Failure(
            ApiError::new(
                ErrorCode::OutcomeUnknown,
                "the request ran out of time; retry with the same Idempotency-Key",
            )
            .retry_after(1),
        )
        .into_response();
    }
    ::metrics::counter!("paddock_http_shed_total").increment(1);
    SHED_REQUESTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    extract::Failure(ApiError::new(ErrorCode::Overloaded, "the node is at capacity; retry shortly").retry_after(1))
        .into_response()
}

async fn rate_limit(State(app): State<App>, request: Request, next: Next) -> Response {
    match app.limit_source(&request, false) {
        Some(refused) => refused,
        None => next.run(request).await,
    }
}

fn router(app: App) -> Router {
    use routes::*;
    let api = Router::new()
        .route("/v1/accounts", post(open_account))
        .route("/v1/accounts/{account_id}", get(get_account))
        .route("/v1/accounts/{account_id}/deposits", post(deposit))
        .route("/v1/accounts/{account_id}/withdrawals", post(withdraw))
        .route("/v1/accounts/{account_id}/limits", put(set_limit))
        .route("/v1/accounts/{account_id}/exclusions", post(exclude))
        .route("/v1/accounts/{account_id}/bets", get(account_bets))
        .route("/v1/bets", post(place_bet))
        .route("/v1/bets/batch", post(place_bets))
        .route("/v1/bets/{bet_id}", get(get_bet))
        .route("/v1/bets/{bet_id}/cash-out-quote", get(cash_out_quote))
        .route("/v1/accounts/{account_id}/bets/by-key/{idempotency_key}", get(bet_by_key))
        .route("/v1/book/balances", get(book_balances))
        .route("/v1/config", get(get_config).put(set_config))
        .route("/v1/accounts/{account_id}/stake-factor", put(set_stake_factor))
        .route("/v1/bets/{bet_id}/cash-out", post(cash_out))
        .route("/v1/events", post(create_event).get(list_events))
        .route("/v1/events/{event_id}", get(get_event))
        .route("/v1/markets", post(create_market).get(list_markets))
        .route("/v1/markets/{market_id}", get(get_market))
        .route("/v1/markets/{market_id}/selections/{selection_id}/price", put(set_price))
        .route("/v1/markets/{market_id}/suspend", post(suspend))
        .route("/v1/markets/{market_id}/resume", post(resume))
        .route("/v1/markets/{market_id}/close", post(close))
        .route("/v1/markets/{market_id}/withdraw-selection", post(withdraw_selection))
        .route("/v1/markets/{market_id}/settle", post(settle))
        .route("/v1/markets/{market_id}/resettle", post(resettle))
        .route("/v1/markets/{market_id}/void", post(void))
        .route("/v1/stream/prices", get(stream::prices))
        .route("/v1/stream/cluster", get(stream::cluster))
        .route("/v1/stream/accounts/{account_id}/bets", get(stream::account_bets))
        .route("/v1/audit", get(audit))
        .route("/v1/cluster", get(cluster))
        .route("/v1/backup/snapshot", get(routes::backup_snapshot))
        .route("/v1/backup/log", get(routes::backup_log))
        .route("/v1/cluster/state-hash", get(state_hash))
        .route("/v1/cluster/members", post(add_member))
        .route("/v1/cluster/members/{node_id}/promote", post(promote_member))
        .route("/v1/cluster/members/{node_id}/remove", post(remove_member))
        .route("/v1/cluster/members/{node_id}/demote", post(demote_member))
        .route("/v1/cluster/transfer-leader", post(transfer_leader))
        .route("/v1/principals", post(create_principal).get(list_principals))
        .route("/v1/principals/{name}/accounts", post(bind_account))
        .route("/v1/principals/{name}/keys", post(issue_key))
        .route("/v1/keys/{key_id}/revoke", post(revoke_key))
        .route("/v1/incidents", get(list_incidents).post(open_incident))
        .route("/v1/incidents/{incident_id}", get(get_incident))
        .route("/v1/incidents/{incident_id}/close", post(close_incident))
        .route("/v1/whoami", get(whoami))
        .route("/v1/self-check", get(self_check_now))
        .route("/v1/openapi.json", get(openapi))
        // Inner to outer: a write's answer is marked replayed or not; authorize needs the
        // matched route, so it is a route layer; the rate
        // limit per source address runs before it, and load shedding before both.
        .route_layer(axum::middleware::from_fn(routes::mark_replays))
        .route_layer(axum::middleware::from_fn_with_state(app.clone(), auth::authorize))
        .layer(axum::middleware::from_fn_with_state(app.clone(), rate_limit))
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(overloaded))
                .load_shed()
                .concurrency_limit(app.config.concurrency_limit)
                .timeout(Duration::from_millis(app.config.write_timeout_ms + 2_000)),
        )
        .layer(DefaultBodyLimit::max(app.config.body_limit_bytes));
    // Health and metrics bypass the limits: a saturated node must still say how it is.
    Router::new()
        .merge(api)
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .route("/metrics", get(metrics_text))
        .route("/console", get(console))
        .fallback(not_found_fallback)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn(metrics::track))
        .layer(axum::middleware::from_fn(request_id::tag))
        .layer(axum::middleware::from_fn(serve::limit_request_head))
        // The console of one node reads the others when its own stops answering: cross-origin
        // reads are allowed. The API's credential is a bearer key that a browser never sends
        // by itself (no cookies), so another site's page gains nothing it did not already hold.
        .layer(
            tower_http::cors::CorsLayer::new()
                .allow_origin(tower_http::cors::Any)
                .allow_methods([axum::http::Method::GET, axum::http::Method::HEAD])
                .allow_headers([axum::http::header::AUTHORIZATION, axum::http::header::ACCEPT]),
        )
        .with_state(app)
}

/// Runs a node until `shutdown` resolves, then drains HTTP, stops Raft and returns.
pub async fn run(config: NodeConfig, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
    config.validate().map_err(anyhow::Error::msg).context("invalid configuration")?;
    let static_keys = match &config.static_keys_file {
        Some(path) => auth::load_static_keys(path).map_err(anyhow::Error::msg)?,
        None => Default::default(),
    };
    if config.runs_insecure_outside_loopback() {
        tracing::warn!(
            http = %config.http_listen,
            peer = %config.peer_listen,
            "INSECURE: plain HTTP and unauthenticated peers outside loopback (insecure_plaintext); API keys cross \
             the network in clear and anyone who reaches the peer port can act as a node"
        );
    }
    let tls = match config.tls_files() {
        Some(files) => Some(
            paddock_consensus::tls::PeerTls::load(&files, &config.cluster_id, config.node_id)
                .map_err(anyhow::Error::msg)
                .context("cannot load the TLS files")?,
        ),
        None => None,
    };
    let public_tls = match &tls {
        Some(peer) => Some(
            paddock_consensus::tls::server_config(peer.cert.clone(), None, &[b"h2", b"http/1.1"])
                .map_err(anyhow::Error::msg)?,
        ),
        None => None,
    };
    let metrics = metrics::handle();
    let http = tokio::net::TcpListener::bind(config.http_listen).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot listen for HTTP on {} (--http, or `http_listen` in the config file): {}",
            config.http_listen,
            paddock_consensus::listen_reason(&e)
        )
    })?;
    let clock = node_clock(config.clock_offset_ms, config.clock_offset_file.clone());
    let consensus = Consensus::start(
        ConsensusConfig {
            node_id: config.node_id,
            cluster_id: config.cluster_id.clone(),
            data_dir: config.data_dir.clone(),
            peer_listen: config.peer_listen,
            peer_advertise: config.advertised_peer(),
            peer_source_ip: config.peer_source_ip,
            timing: Timing {
                heartbeat_ms: config.heartbeat_ms,
                election_min_ms: config.election_timeout_min_ms,
                election_max_ms: config.election_timeout_max_ms,
            },
            snapshot_logs_since_last: config.snapshot_logs_since_last,
            snapshot_log_keep: config.snapshot_log_keep(),
            clock_offset_max_ms: config.clock_offset_max_ms,
            write_timeout: Duration::from_millis(config.write_timeout_ms),
            peers: config.bootstrap.clone(),
            tls: tls.clone(),
            snapshot_chunk_bytes: config.snapshot_chunk_bytes,
        },
        clock.clone(),
    )
    .await
    .map_err(|e| match e {
        paddock_consensus::StartError::Listen { .. } => {
            anyhow::anyhow!("{e} (--peer, or `peer_listen` in the config file)")
        }
        other => anyhow::Error::new(other).context("cannot start consensus"),
    })?;
    if config.bootstrap.keys().next() == Some(&config.node_id) && !consensus.found_existing_cluster() {
        consensus.bootstrap(config.bootstrap.clone()).await.context("cannot bootstrap the cluster")?;
    }
    fn keyed<K: std::hash::Hash + Eq + Clone>(rate: u32) -> Option<DefaultKeyedRateLimiter<K>> {
        NonZeroU32::new(rate).map(|rate| DefaultKeyedRateLimiter::keyed(Quota::per_second(rate)))
    }
    let app = App {
        inner: Arc::new(AppInner {
            consensus: consensus.clone(),
            config: config.clone(),
            metrics,
            principal_limiter: keyed(config.rate_limit_per_principal_per_s),
            ip_limiter: keyed(config.rate_limit_per_ip_per_s),
            auth_failure_limiter: keyed(config.auth_failures_per_ip_per_s),
            static_keys,
            streams: Arc::default(),
            self_check: self_check::AtStart::take().map_err(anyhow::Error::msg)?,
            state_hash_cache: tokio::sync::Mutex::new(None),
            clock,
            shutting_down: AtomicBool::new(false),
            bets: coalesce::Coalescer::start(consensus.clone()),
        }),
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    jobs::spawn_all(app.clone(), stop_rx.clone());
    jobs::spawn_self_check(app.clone(), stop_rx.clone());
    backups::spawn(app.clone(), stop_rx.clone()).context("cannot start the backup schedule")?;
    history::spawn(app.clone(), stop_rx.clone());
    if let Some(peer) = &tls {
        jobs::spawn_certificate_reload(peer.cert.clone(), stop_rx);
    }
    tracing::info!(
        node = config.node_id,
        http = %config.http_listen,
        peer = %config.peer_listen,
        tls = tls.is_some(),
        "node started"
    );
    let drain = app.clone();
    let damaged = consensus.clone();
    let shutdown = async move {
        // A damaged entry read while running stops Raft here (openraft treats storage errors as
        // fatal); the repair runs at start, so stop cleanly — redb must close its file, or its
        // own recovery would meet the damage first — and exit with an error for the supervisor.
        let damage = async {
            while !damaged.storage_damaged() {
                tokio::time::sleep(DAMAGE_CHECK_PERIOD).await;
            }
            tracing::error!("a read found damaged data in the Raft log; stopping so that a restart repairs it");
        };
        tokio::select! {
            () = shutdown => {}
            () = damage => {}
        }
        // Readiness fails first, and the node goes on serving for a while: a load balancer
        // that checks readiness stops sending new requests here before the listener closes,
        // so none of them meets a refused connection. Then the requests in flight finish.
        drain.shutting_down.store(true, Ordering::SeqCst);
        if damaged.storage_damaged() {
            // Raft has stopped here: nothing accepted now could be answered, and a refused
            // connection sends the balancer elsewhere at once.
            return;
        }
        let wait = Duration::from_millis(drain.config.drain_ms);
        tracing::info!(
            drain_ms = drain.config.drain_ms,
            "shutting down: not ready; serving until the balancer has noticed"
        );
        // Meanwhile a leader hands its leadership to the voter most in step: the cluster
        // then waits for no election timeout, and writes in flight here are not cut off.
        let fresh = Duration::from_millis((4 * drain.config.heartbeat_ms).max(200));
        tokio::join!(tokio::time::sleep(wait), hand_off_leadership(&damaged, fresh));
        tracing::info!("shutting down: no new connections; finishing the requests in flight");
    };
    serve::serve(http, public_tls, router(app), config.connections_max, shutdown).await;
    let _ = stop_tx.send(true);
    consensus.shutdown().await;
    if consensus.storage_damaged() {
        anyhow::bail!(
            "stopped: a read found damaged data in the Raft log of {}; start the node again (paddock start \
             --supervise and systemd do) and it discards the damaged entries and fetches them from its peers",
            config.data_dir.display()
        );
    }
    tracing::info!("node stopped");
    Ok(())
}

/// At a stop: if this node leads, hands leadership to the voter that is most in step with it
/// (heard from within `fresh`, a few heartbeats, so not one that has just stopped too; least
/// behind), waiting at most 3 s, also with `drain_ms` 0. Nothing to hand to (a single voter, or
/// none in step): the followers elect a leader as after a crash.
async fn hand_off_leadership(consensus: &paddock_consensus::Consensus, fresh: Duration) {
    let status = consensus.status();
    if status.role != paddock_consensus::Role::Leader {
        return;
    }
    let Some(to) = status
        .members
        .iter()
        .filter(|m| m.voter && m.id != status.node_id && m.ack_age_ms.is_some_and(|age| age < fresh.as_millis() as u64))
        .min_by_key(|m| m.lag.unwrap_or(u64::MAX))
        .map(|m| m.id)
    else {
        return;
    };
    match tokio::time::timeout(Duration::from_secs(3), consensus.transfer_leader(to)).await {
        Ok(Ok(())) => tracing::info!(to, "shutting down: leadership handed over"),
        Ok(Err(e)) => {
            tracing::warn!(to, error = %e, "shutting down: leadership not handed over; the others will elect")
        }
        Err(_) => tracing::warn!(to, "shutting down: leadership not handed over within 3 s; the others will elect"),
    }
}

/// Colour codes in log lines only for a person at a terminal who has not asked for none
/// (`NO_COLOR`, no-color.org): a file, a pipe or a log collector gets plain text.
fn colour(stderr_is_terminal: bool, no_color: bool) -> bool {
    stderr_is_terminal && !no_color
}

/// Sets up logging: text or JSON lines, filtered by `RUST_LOG` (default `info`), coloured only
/// on a terminal.
pub fn init_logging(json: bool, access_log: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn,h2=warn,tower=warn,hyper=warn"))
        // One line per request only when asked for (`access_log`), whatever RUST_LOG says.
        .add_directive(
            if access_log { "paddock::access=info" } else { "paddock::access=off" }.parse().expect("static directive"),
        );
    use std::io::IsTerminal;
    let ansi = colour(std::io::stderr().is_terminal(), std::env::var_os("NO_COLOR").is_some());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    if json {
        let _ = builder.json().try_init();
    } else {
        let _ = builder.try_init();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn log_lines_are_coloured_only_on_a_terminal_without_no_color() {
        assert!(super::colour(true, false));
        assert!(!super::colour(false, false), "a file or a pipe gets plain text");
        assert!(!super::colour(true, true), "NO_COLOR is honoured");
    }
}
