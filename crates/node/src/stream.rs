//! Live streams as server-sent events: price and market changes, one account's bets, and the
//! cluster as this node sees it.
//!
//! Both follow the commands this node applies, so a client connected to any node sees every
//! change in log order. A client that falls too far behind is told (`lagged`) and should
//! re-read the resource and reconnect.
//!
//! A stream ends when its client disconnects (its task watches the connection, not only the
//! next event), and each principal may hold at most `sse_streams_per_principal_max` streams
//! open on a node: one more is refused with 429.

use crate::auth::Caller;
use crate::extract::{Failure, PathParam};
use crate::App;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use paddock_api::convert;
use paddock_consensus::AppliedEvent;
use paddock_ledger::{AccountId, BetId, Command, Done, MarketId, Outcome};
use std::collections::BTreeSet;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

fn json_event(name: &str, value: &impl serde::Serialize) -> Event {
    Event::default().event(name).json_data(value).unwrap_or_else(|_| Event::default().event("error"))
}

fn market_of(command: &Command) -> Option<MarketId> {
    match command {
        Command::SetPrice { market, .. }
        | Command::SuspendMarket { market, .. }
        | Command::ResumeMarket { market, .. }
        | Command::CloseMarket { market, .. }
        | Command::WithdrawSelection { market, .. }
        | Command::SettleMarket { market, .. }
        | Command::ResettleMarket { market, .. }
        | Command::VoidMarket { market, .. }
        | Command::CreateMarket { market, .. } => Some(*market),
        _ => None,
    }
}

/// `GET /v1/stream/prices`: the market after each price or status change.
pub(crate) async fn prices(
    State(app): State<App>,
    caller: Caller,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Failure> {
    let slot = StreamSlot::take(&app, &caller.principal)?;
    let mut rx = app.consensus.subscribe();
    let stream = async_stream(slot, move |tx| async move {
        loop {
            let event: Arc<AppliedEvent> = match rx.recv().await {
                Ok(e) => e,
                Err(RecvError::Lagged(n)) => {
                    let _ = tx.send(json_event("lagged", &serde_json::json!({ "missed": n }))).await;
                    continue;
                }
                Err(RecvError::Closed) => break,
            };
            let Outcome::Done(_) = &event.outcome else { continue };
            let Some(market) = market_of(&event.command) else { continue };
            let Some(view) = app.consensus.read(|d| d.state.market(market)) else { continue };
            let mut body = serde_json::to_value(convert::market_body(&view)).unwrap_or_default();
            body["log_index"] = event.index.into();
            if tx.send(json_event("market", &body)).await.is_err() {
                break;
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// How often `GET /v1/stream/cluster` sends the cluster view.
pub const CLUSTER_PERIOD: Duration = Duration::from_millis(500);

/// `GET /v1/stream/cluster`: this node's view of the cluster every [`CLUSTER_PERIOD`] (the
/// console's live map; a watcher sees an election within half a second).
pub(crate) async fn cluster(
    State(app): State<App>,
    caller: Caller,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Failure> {
    let slot = StreamSlot::take(&app, &caller.principal)?;
    let stream = async_stream(slot, move |tx| async move {
        let mut tick = tokio::time::interval(CLUSTER_PERIOD);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if tx.send(json_event("cluster", &crate::routes::cluster_body(&app))).await.is_err() {
                break;
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// `GET /v1/stream/accounts/{account_id}/bets`: each of the account's bets after it changes.
pub(crate) async fn account_bets(
    State(app): State<App>,
    caller: Caller,
    PathParam(account): PathParam<u64>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Failure> {
    let account = AccountId(account);
    let mut rx = app.consensus.subscribe();
    let mut watched: BTreeSet<BetId> = app
        .consensus
        .read(|d| d.state.account(account).map(|_| d.state.bets_of(account).iter().map(|b| b.bet).collect()))
        .ok_or_else(|| Failure(paddock_api::ApiError::new(paddock_api::ErrorCode::NotFound, "no such account")))?;
    let slot = StreamSlot::take(&app, &caller.principal)?;
    let stream = async_stream(slot, move |tx| async move {
        loop {
            let event = match rx.recv().await {
                Ok(e) => e,
                Err(RecvError::Lagged(n)) => {
                    let _ = tx.send(json_event("lagged", &serde_json::json!({ "missed": n }))).await;
                    continue;
                }
                Err(RecvError::Closed) => break,
            };
            let changed: Vec<BetId> = match (&event.command, &event.outcome) {
                (Command::PlaceBet(p), Outcome::Done(Done::BetAccepted { bet, .. } | Done::BetPending { bet, .. }))
                    if p.account == account =>
                {
                    watched.insert(*bet);
                    vec![*bet]
                }
                (Command::PlaceBets(bets), Outcome::Done(Done::BetsPlaced(items))) => {
                    let placed: Vec<BetId> = bets
                        .iter()
                        .zip(items)
                        .filter(|(p, _)| p.account == account)
                        .filter_map(|(_, item)| match item.outcome {
                            Outcome::Done(Done::BetAccepted { bet, .. } | Done::BetPending { bet, .. }) => Some(bet),
                            _ => None,
                        })
                        .collect();
                    if placed.is_empty() {
                        continue;
                    }
                    watched.extend(placed.iter().copied());
                    placed
                }
                (Command::CashOut { account: a, bet, .. }, Outcome::Done(_)) if *a == account => vec![*bet],
                // Settlement and delayed decisions can touch any watched bet: re-read them.
                (
                    Command::SettleMarket { .. }
                    | Command::ResettleMarket { .. }
                    | Command::VoidMarket { .. }
                    | Command::ResolvePending,
                    Outcome::Done(_),
                ) => watched.iter().copied().collect(),
                _ => continue,
            };
            let bodies: Vec<_> = app
                .consensus
                .read(|d| changed.iter().filter_map(|b| d.state.bet(*b)).map(|v| convert::bet_body(&v)).collect());
            for body in bodies {
                let mut value = serde_json::to_value(&body).unwrap_or_default();
                value["log_index"] = event.index.into();
                if tx.send(json_event("bet", &value)).await.is_err() {
                    return;
                }
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// One open stream of a principal, counted while it lives.
pub(crate) struct StreamSlot {
    open: Arc<std::sync::Mutex<std::collections::BTreeMap<String, usize>>>,
    principal: String,
}

impl StreamSlot {
    /// Counts one more stream of `principal`, or refuses it with 429 when it has its maximum.
    fn take(app: &App, principal: &str) -> Result<StreamSlot, Failure> {
        let max = app.config.sse_streams_per_principal_max;
        let mut open = app.streams.lock().expect("stream count lock");
        let count = open.entry(principal.to_string()).or_default();
        if *count >= max {
            ::metrics::counter!("paddock_http_rate_limited_total", "by" => "streams").increment(1);
            return Err(Failure(
                paddock_api::ApiError::new(
                    paddock_api::ErrorCode::RateLimited,
                    format!("this principal already has {max} streams open on this node; close one first"),
                )
                .retry_after(5),
            ));
        }
        *count += 1;
        ::metrics::gauge!("paddock_sse_streams_open").increment(1.0);
        Ok(StreamSlot { open: app.streams.clone(), principal: principal.to_string() })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock().expect("stream count lock");
        if let Some(count) = open.get_mut(&self.principal) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.principal);
            }
        }
        ::metrics::gauge!("paddock_sse_streams_open").decrement(1.0);
    }
}

/// A stream fed by a task through a bounded channel. The task ends, and frees its slot, when
/// the client leaves: it watches the channel's closing, so a quiet stream ends too.
fn async_stream<F, Fut>(slot: StreamSlot, producer: F) -> impl Stream<Item = Result<Event, Infallible>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Event>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(256);
    let watch = tx.clone();
    let produce = producer(tx);
    tokio::spawn(async move {
        let _slot = slot;
        tokio::select! {
            () = produce => {}
            () = watch.closed() => {}
        }
    });
    futures::StreamExt::map(tokio_stream::wrappers::ReceiverStream::new(rx), Ok)
}
