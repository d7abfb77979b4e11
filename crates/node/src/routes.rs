//! HTTP handlers for `/v1`, health and metrics.
//!
//! Writes go through [`Consensus::write`], which forwards to the leader when this node is
//! not it, so any node answers any request. Reads are linearizable unless the caller asks
//! for `?consistency=stale`.

use crate::auth::Caller;
use crate::extract::{
    Body, Failure, IdemKey, ListOptions, Operator, OptionalBody, Page, PathParam, QueryParams, ReadOptions,
};
use crate::App;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use paddock_api::wire::*;
use paddock_api::{convert, ApiError, ErrorCode};
use paddock_consensus::{ReadError, WriteError};
use paddock_ledger::{AccountId, BetId, Command, Done, IncidentId, MarketId, Outcome, ResultCode, Role, SelectionId};

type Answer<T> = Result<(StatusCode, Json<T>), Failure>;

fn write_failure(e: WriteError) -> Failure {
    let error = match &e {
        WriteError::NoLeader => ApiError::new(ErrorCode::Unavailable, e.to_string()).retry_after(1),
        WriteError::Unknown(_) => ApiError::new(ErrorCode::OutcomeUnknown, e.to_string()).retry_after(1),
        WriteError::Stopped(_) => ApiError::new(ErrorCode::Unavailable, e.to_string()).retry_after(2),
        WriteError::Refused(_) => ApiError::new(ErrorCode::MembershipRefused, e.to_string()),
        WriteError::ClockUnsynchronized(_) => {
            ApiError::new(ErrorCode::ClockUnsynchronized, e.to_string()).retry_after(1)
        }
        WriteError::FormatNotActive(_) => ApiError::new(ErrorCode::FormatNotActive, e.to_string()),
    };
    Failure(error)
}

/// The answer header that tells a retry from a first try: `true` when the ledger answered a
/// write from its memory of an earlier one with the same idempotency key and body.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

tokio::task_local! {
    /// Whether the write this request made, if any, was answered as a replay.
    static REPLAYED: std::cell::Cell<Option<bool>>;
}

/// Marks the answers of writes with [`REPLAYED_HEADER`]: `true` for a replay, `false` for a
/// first answer, absent where no command was replicated (a read, or a write that failed).
pub(crate) async fn mark_replays(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let (replayed, mut response) = REPLAYED
        .scope(std::cell::Cell::new(None), async {
            let response = next.run(request).await;
            (REPLAYED.with(|r| r.get()), response)
        })
        .await;
    if let Some(replayed) = replayed {
        let value = axum::http::HeaderValue::from_static(if replayed { "true" } else { "false" });
        response.headers_mut().insert(REPLAYED_HEADER, value);
    }
    response
}

/// Replicates a command; a ledger refusal becomes its 4xx.
pub(crate) async fn submit(app: &App, command: Command) -> Result<(Done, u64), Failure> {
    answer_of(app.consensus.write(command).await)
}

/// A write's answer as the handler's: the replay mark set, a ledger refusal as its 4xx.
fn answer_of(written: Result<paddock_consensus::Written, WriteError>) -> Result<(Done, u64), Failure> {
    let written = written.map_err(write_failure)?;
    // Outside `mark_replays` (a job, a test) there is no answer to mark.
    let _ = REPLAYED.try_with(|r| r.set(Some(written.replayed)));
    match written.outcome {
        Outcome::Done(done) => Ok((done, written.log_index)),
        Outcome::Rejected(code) => Err(Failure(ApiError::ledger(code))),
    }
}

/// Reads the state, linearizably unless the caller accepts a stale read.
pub(crate) async fn read<T>(
    app: &App,
    options: &ReadOptions,
    f: impl FnOnce(&paddock_ledger::State) -> T,
) -> Result<T, Failure> {
    read_data(app, options, |d| f(&d.state)).await
}

/// [`read`] with the whole state-machine data (the applied index with the state).
async fn read_data<T>(
    app: &App,
    options: &ReadOptions,
    f: impl FnOnce(&paddock_consensus::SmData) -> T,
) -> Result<T, Failure> {
    if !options.stale()? {
        app.consensus
            .linearize()
            .await
            .map_err(|e: ReadError| Failure(ApiError::new(ErrorCode::ReadUnavailable, e.to_string()).retry_after(1)))?;
    }
    Ok(app.consensus.read(f))
}

/// An object the path names does not exist: its own code (`account_not_found`, ...), never the
/// generic `not_found` of an unknown route, so a client can tell a typo from a missing object.
fn not_found(code: ResultCode) -> Failure {
    Failure(ApiError::ledger(code))
}

/// `unavailable` while this node's archive lacks segments (it installed a snapshot taken after
/// them and is fetching them from its peers): an answer without them would be incomplete.
fn archive_complete(app: &App) -> Result<(), Failure> {
    let missing = app.consensus.archive_missing();
    if missing.is_empty() {
        return Ok(());
    }
    Err(Failure(ApiError::new(
        ErrorCode::Unavailable,
        format!(
            "this node's archive of settled history lacks {} segments (it is fetching them from its peers); ask \
             another node",
            missing.len()
        ),
    )))
}

/// This node's archive could not be read (a disk error, a damaged index record): the request
/// may succeed on another node, so it is `unavailable`, never a 500.
pub(crate) fn archive_unreadable(e: std::io::Error) -> Failure {
    tracing::error!(error = %e, "cannot read the archive");
    Failure(ApiError::new(
        ErrorCode::Unavailable,
        "this node cannot read its archive of settled history; try another node",
    ))
}

fn ack(log_index: u64) -> Json<AckBody> {
    Json(AckBody { log_index })
}

// ---- accounts ----

pub(crate) async fn open_account(
    State(app): State<App>,
    IdemKey(key): IdemKey,
    Body(req): Body<OpenAccountRequest>,
) -> Answer<AccountBody> {
    let command = convert::open_account(&req, key)?;
    let (_, log_index) = submit(&app, command).await?;
    // A follower forwards the write: it is committed and applied on the leader, but maybe not
    // here yet. Read the account back only once this node has applied the entry.
    let mut applied = app.consensus.applied_watch();
    let wait = std::time::Duration::from_millis(app.config.write_timeout_ms);
    if !matches!(tokio::time::timeout(wait, applied.wait_for(|i| *i >= log_index)).await, Ok(Ok(_))) {
        return Err(Failure(
            ApiError::new(
                ErrorCode::ReadUnavailable,
                format!("the account was opened at log index {log_index}, but this node has not applied it yet"),
            )
            .retry_after(1),
        ));
    }
    let (view, limits) = app
        .consensus
        .read(|d| d.state.account(AccountId(req.account_id)).zip(d.state.account_limits(AccountId(req.account_id))))
        .ok_or_else(|| not_found(ResultCode::AccountNotFound))?;
    Ok((StatusCode::CREATED, Json(convert::account_body(&view, &limits))))
}

pub(crate) async fn get_account(
    State(app): State<App>,
    PathParam(account): PathParam<u64>,
    QueryParams(options): QueryParams<ReadOptions>,
) -> Answer<AccountBody> {
    let (view, limits) =
        read(&app, &options, |s| s.account(AccountId(account)).zip(s.account_limits(AccountId(account))))
            .await?
            .ok_or_else(|| not_found(ResultCode::AccountNotFound))?;
    Ok((StatusCode::OK, Json(convert::account_body(&view, &limits))))
}

async fn transfer(app: App, account: u64, req: AmountRequest, key: IdemKey, deposit: bool) -> Answer<BalanceBody> {
    match submit(&app, convert::transfer(account, &req, key.0, deposit)).await? {
        (Done::Transferred { account, balance }, log_index) => {
            Ok((StatusCode::OK, Json(BalanceBody { account_id: account.0, balance_minor: balance.minor(), log_index })))
        }
        (other, _) => Err(unexpected(other)),
    }
}

pub(crate) async fn deposit(
    State(app): State<App>,
    PathParam(account): PathParam<u64>,
    key: IdemKey,
    Body(req): Body<AmountRequest>,
) -> Answer<BalanceBody> {
    transfer(app, account, req, key, true).await
}

pub(crate) async fn withdraw(
    State(app): State<App>,
    PathParam(account): PathParam<u64>,
    key: IdemKey,
    Body(req): Body<AmountRequest>,
) -> Answer<BalanceBody> {
    transfer(app, account, req, key, false).await
}

pub(crate) async fn set_limit(
    State(app): State<App>,
    IdemKey(key): IdemKey,
    PathParam(account): PathParam<u64>,
    Body(req): Body<LimitRequest>,
) -> Answer<AckBody> {
    let (_, index) = submit(&app, convert::limit(account, &req, key)?).await?;
    Ok((StatusCode::OK, ack(index)))
}

pub(crate) async fn exclude(
    State(app): State<App>,
    IdemKey(key): IdemKey,
    PathParam(account): PathParam<u64>,
    Body(req): Body<ExclusionRequest>,
) -> Answer<AckBody> {
    let (_, index) = submit(&app, convert::exclusion(account, &req, key)?).await?;
    Ok((StatusCode::OK, ack(index)))
}

pub(crate) async fn account_bets(
    State(app): State<App>,
    PathParam(account): PathParam<u64>,
    QueryParams(options): QueryParams<ListOptions>,
) -> Result<Page<BetBody>, Failure> {
    let (limit, after) = (options.limit()?, options.after_id()?.unwrap_or(0));
    let live = read(&app, &options.read(), |s| {
        s.account(AccountId(account)).map(|_| {
            s.bets_of(AccountId(account)).into_iter().filter(|b| b.bet.0 > after).take(limit + 1).collect::<Vec<_>>()
        })
    })
    .await?;
    let live = live.ok_or_else(|| not_found(ResultCode::AccountNotFound))?;
    // Settled history that left memory pages on from the archive: one id order across both.
    archive_complete(&app)?;
    let archived = crate::history::archived_bets_of(&app, AccountId(account), after, limit + 1)
        .await
        .map_err(archive_unreadable)?;
    let mut bets: Vec<paddock_ledger::BetView> = archived.into_iter().chain(live).collect();
    bets.sort_by_key(|b| b.bet);
    bets.dedup_by_key(|b| b.bet);
    let bets: Vec<BetBody> = bets.iter().take(limit + 1).map(convert::bet_body).collect();
    Ok(Page::of(bets, limit, |b| b.bet_id.to_string()))
}

// ---- bets ----

pub(crate) async fn place_bet(
    State(app): State<App>,
    caller: Caller,
    key: IdemKey,
    Body(req): Body<PlaceBetRequest>,
) -> Answer<PlacedBody> {
    if !app.may_use_account(&caller, AccountId(req.account_id)).await {
        return Err(Failure(ApiError::new(ErrorCode::Forbidden, "a bettor places bets only on its own accounts")));
    }
    let result = match convert::place_bet(&req, key.0)? {
        Command::PlaceBet(bet) => answer_of(app.bets.place(bet).await),
        other => submit(&app, other).await,
    };
    let (done, log_index) = match result {
        Ok(ok) => ok,
        Err(Failure(e)) => {
            if let ErrorCode::Ledger(code) = e.code {
                metrics::counter!("paddock_bets_total", "result" => "rejected", "code" => code.as_str()).increment(1);
            }
            return Err(Failure(e));
        }
    };
    let body = match done {
        Done::BetAccepted { .. } | Done::BetPending { .. } => {
            placed_body(Outcome::Done(done), log_index).map_err(Failure)?
        }
        other => return Err(unexpected(other)),
    };
    Ok((StatusCode::CREATED, Json(body)))
}

/// `POST /v1/bets/batch`: up to 200 bets in one log entry, each answered as `POST /v1/bets`
/// would answer it alone. A bettor may batch only bets on its own accounts.
pub(crate) async fn place_bets(
    State(app): State<App>,
    caller: Caller,
    Body(req): Body<PlaceBetsRequest>,
) -> Answer<PlacedBatchBody> {
    if caller.role == Role::Bettor {
        let mut accounts: Vec<u64> = req.bets.iter().map(|b| b.bet.account_id).collect();
        accounts.sort_unstable();
        accounts.dedup();
        for account in accounts {
            if !app.may_use_account(&caller, AccountId(account)).await {
                return Err(Failure(ApiError::new(
                    ErrorCode::Forbidden,
                    "a bettor places bets only on its own accounts: every bet of the batch must name one",
                )));
            }
        }
    }
    let command = convert::place_bets(&req)?;
    let written = app.consensus.write(command).await.map_err(write_failure)?;
    let items = match written.outcome {
        Outcome::Done(Done::BetsPlaced(items)) => items,
        Outcome::Rejected(code) => return Err(Failure(ApiError::ledger(code))),
        Outcome::Done(other) => return Err(unexpected(other)),
    };
    let results = req
        .bets
        .iter()
        .zip(items)
        .map(|(sent, item)| {
            let (status, placed, error) = match placed_body(item.outcome, written.log_index) {
                Ok(placed) => (201, Some(placed), None),
                Err(e) => (e.code.status(), None, Some(e.body().error)),
            };
            BatchResultBody {
                idempotency_key: sent.idempotency_key.clone(),
                status,
                replayed: item.replayed,
                placed,
                error,
            }
        })
        .collect();
    Ok((StatusCode::OK, Json(PlacedBatchBody { results, log_index: written.log_index })))
}

/// One bet's answer as `POST /v1/bets` gives it, counted in `paddock_bets_total`.
fn placed_body(outcome: Outcome, log_index: u64) -> Result<PlacedBody, ApiError> {
    let (status, bet, odds, stake, balance) = match outcome {
        Outcome::Done(Done::BetAccepted { bet, odds, stake, balance }) => ("accepted", bet, odds, stake, balance),
        Outcome::Done(Done::BetPending { bet, stake, balance }) => ("pending", bet, Vec::new(), stake, balance),
        Outcome::Rejected(code) => {
            metrics::counter!("paddock_bets_total", "result" => "rejected", "code" => code.as_str()).increment(1);
            return Err(ApiError::ledger(code));
        }
        Outcome::Done(other) => return Err(unexpected(other).0),
    };
    metrics::counter!("paddock_bets_total", "result" => status, "code" => "ok").increment(1);
    Ok(PlacedBody {
        bet_id: bet.0,
        status: status.into(),
        odds: odds.into_iter().map(convert::odds_body).collect(),
        stake_minor: stake.minor(),
        balance_minor: balance.minor(),
        log_index,
    })
}

pub(crate) async fn get_bet(
    State(app): State<App>,
    PathParam(bet): PathParam<u64>,
    QueryParams(options): QueryParams<ReadOptions>,
) -> Answer<BetBody> {
    let view = match read(&app, &options, |s| s.bet(BetId(bet))).await? {
        Some(view) => view,
        // Settled history that left memory: from the archive.
        None => match crate::history::archived_bet(&app, BetId(bet)).await.map_err(archive_unreadable)? {
            Some(view) => view,
            None => {
                archive_complete(&app)?;
                return Err(not_found(ResultCode::BetNotFound));
            }
        },
    };
    Ok((StatusCode::OK, Json(convert::bet_body(&view))))
}

pub(crate) async fn cash_out_quote(
    State(app): State<App>,
    PathParam(bet): PathParam<u64>,
    QueryParams(options): QueryParams<ReadOptions>,
) -> Answer<CashOutQuoteBody> {
    let quote =
        read(&app, &options, |s| s.bet_account(BetId(bet)).map(|account| (account, s.cash_out_quote(BetId(bet)))))
            .await?;
    match quote {
        None => Err(not_found(ResultCode::BetNotFound)),
        Some((_, Err(code))) => Err(Failure(ApiError::ledger(code))),
        Some((account, Ok((value, versions)))) => Ok((
            StatusCode::OK,
            Json(CashOutQuoteBody {
                bet_id: bet,
                account_id: account.0,
                value_minor: value.minor(),
                quoted_versions: versions
                    .into_iter()
                    .map(|(s, v)| QuotedVersion { selection_id: s.0, price_version: v })
                    .collect(),
            }),
        )),
    }
}

pub(crate) async fn bet_by_key(
    State(app): State<App>,
    PathParam((account, key)): PathParam<(u64, String)>,
    QueryParams(options): QueryParams<ReadOptions>,
) -> Answer<BetBody> {
    let key = paddock_ledger::IdempotencyKey(key);
    let found = read(&app, &options, |s| {
        let answer = s.account(AccountId(account)).map(|_| s.answer_for_key(AccountId(account), &key));
        answer.map(|a| {
            a.map(|outcome| match outcome {
                Outcome::Done(Done::BetAccepted { bet, .. } | Done::BetPending { bet, .. }) => Ok(s.bet(bet)),
                Outcome::Done(_) => Ok(None),
                Outcome::Rejected(code) => Err(code),
            })
        })
    })
    .await?;
    match found {
        None => Err(not_found(ResultCode::AccountNotFound)),
        // No attempt with this key (or it expired), or the key named another kind of command.
        Some(None) | Some(Some(Ok(None))) => Err(not_found(ResultCode::BetNotFound)),
        Some(Some(Ok(Some(view)))) => Ok((StatusCode::OK, Json(convert::bet_body(&view)))),
        // The attempt was refused: its answer, as it was given.
        Some(Some(Err(code))) => Err(Failure(ApiError::ledger(code))),
    }
}

pub(crate) async fn list_events(
    State(app): State<App>,
    QueryParams(options): QueryParams<ListOptions>,
) -> Result<Page<EventBody>, Failure> {
    let (limit, after) = (options.limit()?, options.after_id()?);
    let page = read(&app, &options.read(), |s| {
        s.events(after.map(paddock_ledger::EventId), limit + 1).iter().map(convert::event_body).collect::<Vec<_>>()
    })
    .await?;
    Ok(Page::of(page, limit, |e| e.event_id.to_string()))
}

pub(crate) async fn get_event(
    State(app): State<App>,
    PathParam(event): PathParam<u64>,
    QueryParams(options): QueryParams<ReadOptions>,
) -> Answer<EventBody> {
    let view = read(&app, &options, |s| s.event(paddock_ledger::EventId(event)))
        .await?
        .ok_or_else(|| not_found(ResultCode::EventNotFound))?;
    Ok((StatusCode::OK, Json(convert::event_body(&view))))
}

pub(crate) async fn get_config(
    State(app): State<App>,
    QueryParams(options): QueryParams<ReadOptions>,
) -> Answer<BookConfigBody> {
    let config = read(&app, &options, |s| convert::book_config_body(s.config())).await?;
    Ok((StatusCode::OK, Json(config)))
}

pub(crate) async fn set_config(
    State(app): State<App>,
    IdemKey(key): IdemKey,
    Operator(actor): Operator,
    Body(req): Body<BookConfigBody>,
) -> Answer<AckBody> {
    let (_, index) = submit(&app, convert::set_config(&req, actor, key)?).await?;
    Ok((StatusCode::OK, ack(index)))
}

pub(crate) async fn set_stake_factor(
    State(app): State<App>,
    IdemKey(key): IdemKey,
    Operator(actor): Operator,
    PathParam(account): PathParam<u64>,
    Body(req): Body<StakeFactorRequest>,
) -> Answer<AckBody> {
    let command =
        Command::SetStakeFactor { account: AccountId(account), factor_permille: req.factor_permille, actor, key };
    let (_, index) = submit(&app, command).await?;
    Ok((StatusCode::OK, ack(index)))
}

pub(crate) async fn book_balances(
    State(app): State<App>,
    QueryParams(options): QueryParams<ReadOptions>,
) -> Answer<BookBalancesBody> {
    // One read of the state: the figures and the index they are at agree.
    let (applied_index, balances) =
        read_data(&app, &options, |d| (d.last_applied.map_or(0, |l| l.index), d.state.book_balances())).await?;
    let minor = |v: i128| i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX });
    let currencies = balances
        .iter()
        .map(|b| CurrencyBalancesBody {
            currency: b.currency.to_string(),
            wallets_minor: minor(b.wallets),
            reserved_minor: minor(b.reserved),
            debt_minor: minor(b.debt),
            house_book_minor: b.house_book.minor(),
            clearing_minor: b.clearing.minor(),
            rounding_micro: b.rounding_micro,
            total_minor: minor(b.total()),
        })
        .collect();
    Ok((StatusCode::OK, Json(BookBalancesBody { applied_index, currencies })))
}

pub(crate) async fn cash_out(
    State(app): State<App>,
    PathParam(bet): PathParam<u64>,
    key: IdemKey,
    Body(req): Body<CashOutRequest>,
) -> Answer<CashedOutBody> {
    match submit(&app, convert::cash_out(bet, &req, key.0)).await? {
        (Done::CashOut { bet, pending, balance }, log_index) => Ok((
            StatusCode::OK,
            Json(CashedOutBody { bet_id: bet.0, pending, balance_minor: balance.minor(), log_index }),
        )),
        (other, _) => Err(unexpected(other)),
    }
}

// ---- catalogue (operator) ----

pub(crate) async fn create_event(
    State(app): State<App>,
    IdemKey(key): IdemKey,
    Operator(actor): Operator,
    Body(req): Body<CreateEventRequest>,
) -> Answer<AckBody> {
    let (_, index) = submit(&app, convert::create_event(&req, actor, key)).await?;
    Ok((StatusCode::CREATED, ack(index)))
}

pub(crate) async fn create_market(
    State(app): State<App>,
    IdemKey(key): IdemKey,
    Operator(actor): Operator,
    Body(req): Body<CreateMarketRequest>,
) -> Answer<AckBody> {
    // Refused here, by this node's clock, rather than by the ledger: a market already closed
    // would be shown open and refuse every bet. (The ledger keeps accepting it, so replicas of
    // older and newer builds apply the same entries alike.)
    let now = (app.clock)().0;
    if let Some(closes) = req.rules.closes_at_ms.filter(|&t| t <= now) {
        return Err(Failure(ApiError::new(
            ErrorCode::ClosesAtPassed,
            format!("closes_at_ms {closes} is not in the future (now is {now}): the market would take no bet"),
        )));
    }
    let (_, index) = submit(&app, convert::create_market(&req, actor, key)?).await?;
    Ok((StatusCode::CREATED, ack(index)))
}

pub(crate) async fn list_markets(
    State(app): State<App>,
    QueryParams(options): QueryParams<ListOptions>,
) -> Result<Page<MarketBody>, Failure> {
    let (limit, after) = (options.limit()?, options.after_id()?.unwrap_or(0));
    let markets = read(&app, &options.read(), |s| {
        s.market_ids()
            .into_iter()
            .filter(|m| m.0 > after)
            .take(limit + 1)
            .filter_map(|m| s.market(m))
            .map(|v| convert::market_body(&v))
            .collect::<Vec<_>>()
    })
    .await?;
    Ok(Page::of(markets, limit, |m| m.market_id.to_string()))
}

pub(crate) async fn get_market(
    State(app): State<App>,
    PathParam(market): PathParam<u64>,
    QueryParams(options): QueryParams<ReadOptions>,
) -> Answer<MarketBody> {
    let view = read(&app, &options, |s| s.market(MarketId(market)))
        .await?
        .ok_or_else(|| not_found(ResultCode::MarketNotFound))?;
    Ok((StatusCode::OK, Json(convert::market_body(&view))))
}

pub(crate) async fn set_price(
    State(app): State<App>,
    IdemKey(key): IdemKey,
    _operator: Operator,
    PathParam((market, selection)): PathParam<(u64, u64)>,
    Body(req): Body<PriceRequest>,
) -> Answer<AckBody> {
    let command = Command::SetPrice {
        market: MarketId(market),
        selection: SelectionId(selection),
        odds: convert::odds(&req.odds)?,
        key,
    };
    let (_, index) = submit(&app, command).await?;
    Ok((StatusCode::OK, ack(index)))
}

pub(crate) async fn suspend(
    State(app): State<App>,
    IdemKey(key): IdemKey,
    Operator(actor): Operator,
    PathParam(market): PathParam<u64>,
    OptionalBody(req): OptionalBody<ReasonRequest>,
) -> Answer<AckBody> {
    let (_, index) =
        submit(&app, Command::SuspendMarket { market: MarketId(market), reason: req.reason, actor, key }).await?;
    Ok((StatusCode::OK, ack(index)))
}

pub(crate) async fn resume(
    State(app): State<App>,
    IdemKey(key): IdemKey,
    Operator(actor): Operator,
    PathParam(market): PathParam<u64>,
    OptionalBody(_req): OptionalBody<ReasonRequest>,
) -> Answer<AckBody> {
    let (_, index) = submit(&app, Command::ResumeMarket { market: MarketId(market), actor, key }).await?;
    Ok((StatusCode::OK, ack(index)))
}

pub(crate) async fn close(
    State(app): State<App>,
    IdemKey(key): IdemKey,
    Operator(actor): Operator,
    PathParam(market): PathParam<u64>,
    OptionalBody(_req): OptionalBody<ReasonRequest>,
) -> Answer<AckBody> {
    let (_, index) = submit(&app, Command::CloseMarket { market: MarketId(market), actor, key }).await?;
    Ok((StatusCode::OK, ack(index)))
}

pub(crate) async fn withdraw_selection(
    State(app): State<App>,
    IdemKey(key): IdemKey,
    Operator(actor): Operator,
    PathParam(market): PathParam<u64>,
    Body(req): Body<WithdrawSelectionRequest>,
) -> Answer<AckBody> {
    let command = Command::WithdrawSelection {
        market: MarketId(market),
        selection: SelectionId(req.selection_id),
        deduction_pence: req.deduction_pence,
        actor,
        key,
    };
    let (_, index) = submit(&app, command).await?;
    Ok((StatusCode::OK, ack(index)))
}

fn settled((done, log_index): (Done, u64)) -> Answer<SettledBody> {
    match done {
        Done::Settled { market, result_version, bets_settled } => {
            Ok((StatusCode::OK, Json(SettledBody { market_id: market.0, result_version, bets_settled, log_index })))
        }
        other => Err(unexpected(other)),
    }
}

pub(crate) async fn settle(
    State(app): State<App>,
    IdemKey(key): IdemKey,
    Operator(actor): Operator,
    PathParam(market): PathParam<u64>,
    Body(req): Body<SettleRequest>,
) -> Answer<SettledBody> {
    let results = convert::results(&req)?;
    settled(submit(&app, Command::SettleMarket { market: MarketId(market), results, actor, key }).await?)
}

pub(crate) async fn resettle(
    State(app): State<App>,
    IdemKey(key): IdemKey,
    Operator(actor): Operator,
    PathParam(market): PathParam<u64>,
    Body(req): Body<SettleRequest>,
) -> Answer<SettledBody> {
    let results = convert::results(&req)?;
    settled(
        submit(&app, Command::ResettleMarket { market: MarketId(market), results, reason: req.reason, actor, key })
            .await?,
    )
}

pub(crate) async fn void(
    State(app): State<App>,
    IdemKey(key): IdemKey,
    Operator(actor): Operator,
    PathParam(market): PathParam<u64>,
    OptionalBody(req): OptionalBody<ReasonRequest>,
) -> Answer<SettledBody> {
    settled(submit(&app, Command::VoidMarket { market: MarketId(market), reason: req.reason, actor, key }).await?)
}

/// Audit export, paged by sequence number.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditQuery {
    #[serde(default)]
    from: u64,
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    consistency: Option<String>,
}

pub(crate) async fn audit(
    State(app): State<App>,
    QueryParams(q): QueryParams<AuditQuery>,
) -> Result<Page<AuditRecordBody>, Failure> {
    let options = ReadOptions { consistency: q.consistency.clone() };
    let limit = ListOptions { limit: q.limit, ..ListOptions::default() }.limit()?;
    let records = read(&app, &options, |s| {
        s.audit()
            .records()
            .iter()
            .skip(usize::try_from(q.from).unwrap_or(usize::MAX))
            .take(limit + 1)
            .map(convert::audit_body)
            .collect::<Vec<_>>()
    })
    .await?;
    // The audit trail pages by sequence number: the next page starts `from` the one after.
    Ok(Page::of(records, limit, |r| (r.seq + 1).to_string()))
}

// ---- cluster ----

pub(crate) async fn cluster(State(app): State<App>) -> Answer<ClusterBody> {
    Ok((StatusCode::OK, Json(cluster_body(&app))))
}

/// This node's view of the cluster, as `GET /v1/cluster` and `/v1/stream/cluster` give it.
pub(crate) fn cluster_body(app: &App) -> ClusterBody {
    let s = app.consensus.status();
    let role = s.role.as_str();
    {
        ClusterBody {
            node_id: s.node_id,
            cluster_id: s.cluster_id,
            role: role.into(),
            term: s.term,
            leader_id: s.leader,
            last_log_index: s.last_log_index,
            commit_index: s.commit_index,
            applied_index: s.applied_index,
            snapshot_index: s.snapshot_index,
            members: s
                .members
                .into_iter()
                .map(|m| MemberBody {
                    node_id: m.id,
                    peer_addr: m.addr,
                    voter: m.voter,
                    matched_index: m.matched_index,
                    lag: m.lag,
                    ack_age_ms: m.ack_age_ms,
                    entry_format: m.announced.as_ref().map(|a| u32::from(a.format)),
                    started_at_ms: m.announced.as_ref().map(|a| a.started_ms),
                    version: m.announced.map(|a| a.version),
                })
                .collect(),
            clock_synchronized: s.clock.synchronized,
            clock_offsets: s
                .clock
                .offsets
                .iter()
                .map(|(id, sample)| ClockOffsetBody {
                    node_id: *id,
                    offset_ms: sample.offset_ms,
                    error_ms: sample.error_ms,
                })
                .collect(),
            book_clock_ms: app.consensus.read(|d| d.state.clock().0),
            repairing_up_to: s.repairing_up_to,
            entry_format: s.entry_format.map(u32::from),
        }
    }
}

/// The hashes cost two passes over the whole state, so they are computed at most once per
/// applied index, however often they are asked for — and from a copy, off the state lock and
/// off the async workers: hashing under the lock held apply, and every write behind it, for
/// seconds on a book of millions (about 3 s a hash for 1M accounts and 1M bets, BENCHMARKS.md),
/// where the copy holds it for the time of a clone. The work runs in a task of its own that
/// holds the cache: a request that gives up (the request timeout) leaves it to finish and fill
/// the cache for the retry, and two computations never run at once, so at most one copy of the
/// state exists for them.
pub(crate) async fn state_hash(State(app): State<App>) -> Answer<StateHashBody> {
    let task = tokio::spawn(async move {
        let applied = app.consensus.read(|d| d.last_applied.map_or(0, |l| l.index));
        let mut cache = app.state_hash_cache.lock().await;
        if let Some(body) = cache.as_ref().filter(|b| b.applied_index == applied) {
            return body.clone();
        }
        let (applied_index, copy) = app.consensus.read(|d| (d.last_applied.map_or(0, |l| l.index), d.state.clone()));
        let (bets, accounts) = (copy.bet_count() as u64, copy.account_count() as u64);
        let (state_hash, book_hash) = tokio::task::spawn_blocking(move || copy.into_hashes())
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        let body = StateHashBody {
            applied_index,
            state_hash: state_hash.to_string(),
            book_hash: book_hash.to_string(),
            bets,
            accounts,
        };
        *cache = Some(body.clone());
        body
    });
    // A panic while hashing is a broken invariant of the encoder: it goes on as it would have
    // inline.
    let body = task.await.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    Ok((StatusCode::OK, Json(body)))
}

/// A membership change's answer: the node's last log index once it is done. Membership
/// changes are idempotent by their target state (adding a member that is already there at the
/// same address, promoting a voter, handing leadership to the leader all answer done and
/// change nothing; removing a non-member is refused), so their `Idempotency-Key` is required
/// and checked like every write's but need not be remembered.
fn membership_ack(app: &App, done: Result<(), WriteError>) -> Answer<AckBody> {
    done.map_err(write_failure)?;
    Ok((StatusCode::OK, ack(app.consensus.status().last_log_index)))
}

/// Node ids start at 1 (the document says so): 0 is a mistake in the request, not a node.
fn positive_node_id(node: u64) -> Result<(), Failure> {
    if node == 0 {
        return Err(bad("node_id must be a positive integer"));
    }
    Ok(())
}

pub(crate) async fn add_member(
    State(app): State<App>,
    IdemKey(_key): IdemKey,
    _operator: Operator,
    Body(req): Body<AddMemberRequest>,
) -> Answer<AckBody> {
    positive_node_id(req.node_id)?;
    let peer = convert::peer_address(&req.peer_addr)?;
    membership_ack(&app, app.consensus.add_learner(req.node_id, peer).await)
}

pub(crate) async fn promote_member(
    State(app): State<App>,
    IdemKey(_key): IdemKey,
    _operator: Operator,
    PathParam(node): PathParam<u64>,
) -> Answer<AckBody> {
    positive_node_id(node)?;
    membership_ack(&app, app.consensus.promote(node).await)
}

pub(crate) async fn demote_member(
    State(app): State<App>,
    IdemKey(_key): IdemKey,
    _operator: Operator,
    PathParam(node): PathParam<u64>,
) -> Answer<AckBody> {
    positive_node_id(node)?;
    membership_ack(&app, app.consensus.demote(node).await)
}

pub(crate) async fn remove_member(
    State(app): State<App>,
    IdemKey(_key): IdemKey,
    _operator: Operator,
    PathParam(node): PathParam<u64>,
) -> Answer<AckBody> {
    positive_node_id(node)?;
    membership_ack(&app, app.consensus.remove(node).await)
}

pub(crate) async fn transfer_leader(
    State(app): State<App>,
    IdemKey(_key): IdemKey,
    _operator: Operator,
    Body(req): Body<TransferLeaderRequest>,
) -> Answer<AckBody> {
    positive_node_id(req.node_id)?;
    membership_ack(&app, app.consensus.transfer_leader(req.node_id).await)
}

// ---- principals and keys ----

fn key_body(k: &paddock_ledger::KeyView) -> KeyBody {
    KeyBody {
        key_id: k.id.to_string(),
        created_at_ms: k.created_at.0,
        expires_at_ms: k.expires_at.map(|t| t.0),
        revoked_at_ms: k.revoked_at.map(|t| t.0),
    }
}

fn principal_body(p: &paddock_ledger::PrincipalView) -> PrincipalBody {
    PrincipalBody {
        name: p.name.clone(),
        role: p.role.as_str().to_string(),
        account_ids: p.accounts.iter().map(|a| a.0).collect(),
        created_at_ms: p.created_at.0,
        created_by: p.created_by.clone(),
        keys: p.keys.iter().map(key_body).collect(),
    }
}

fn bad(message: impl Into<String>) -> Failure {
    Failure(ApiError::new(ErrorCode::BadParameter, message))
}

pub(crate) async fn create_principal(
    State(app): State<App>,
    IdemKey(key): IdemKey,
    Operator(actor): Operator,
    Body(req): Body<CreatePrincipalRequest>,
) -> Answer<PrincipalBody> {
    let role =
        Role::parse(&req.role).ok_or_else(|| bad("role must be one of bettor, trader, operator, auditor, service"))?;
    let accounts = req.account_ids.iter().map(|a| AccountId(*a)).collect();
    let command = Command::CreatePrincipal { name: req.name.clone(), role, accounts, actor, key };
    let (_, log_index) = submit(&app, command).await?;
    wait_applied(&app, log_index).await?;
    let view =
        app.consensus.read(|d| d.state.principal(&req.name)).ok_or_else(|| not_found(ResultCode::PrincipalNotFound))?;
    Ok((StatusCode::CREATED, Json(principal_body(&view))))
}

pub(crate) async fn list_principals(
    State(app): State<App>,
    QueryParams(options): QueryParams<ListOptions>,
) -> Result<Page<PrincipalBody>, Failure> {
    let limit = options.limit()?;
    let after = options.after.clone().unwrap_or_default();
    let page = read(&app, &options.read(), |s| {
        s.principals().iter().filter(|p| p.name > after).take(limit + 1).map(principal_body).collect::<Vec<_>>()
    })
    .await?;
    Ok(Page::of(page, limit, |p| p.name.clone()))
}

pub(crate) async fn bind_account(
    State(app): State<App>,
    IdemKey(key): IdemKey,
    Operator(actor): Operator,
    PathParam(name): PathParam<String>,
    Body(req): Body<BindAccountRequest>,
) -> Answer<AckBody> {
    let command = Command::BindAccount { principal: name, account: AccountId(req.account_id), actor, key };
    let (_, index) = submit(&app, command).await?;
    Ok((StatusCode::OK, ack(index)))
}

pub(crate) async fn issue_key(
    State(app): State<App>,
    IdemKey(key): IdemKey,
    Operator(actor): Operator,
    PathParam(name): PathParam<String>,
    Body(req): Body<IssueKeyRequest>,
) -> Answer<IssuedKeyBody> {
    // Linearizable: a principal created a moment ago through another node must be seen here,
    // or its key would escape the session cap.
    let role = read(&app, &ReadOptions::default(), |s| s.principal(&name).map(|p| p.role)).await?;
    // An unknown principal: the ledger refuses the command with principal_not_found.
    let max_s = app.config.interactive_key_ttl_max_s;
    let ttl_s = match (role.is_some_and(Role::is_interactive), req.ttl_s) {
        (_, Some(0)) => return Err(bad("ttl_s must be positive")),
        (true, Some(ttl)) if ttl > max_s => {
            return Err(Failure(ApiError::new(ErrorCode::Ledger(ResultCode::KeyTtlInvalid), format!(
                "a person's key is a session of at most interactive_key_ttl_max_s = {max_s} s; ask for less, or use a service principal for a long-lived key"
            ))))
        }
        (true, ttl) => Some(ttl.unwrap_or(max_s)),
        (false, ttl) => ttl,
    };
    let (id, hash, shown) = match (&req.key_id, &req.key_sha256) {
        (Some(id), Some(digest)) => {
            let id = crate::auth::parse_key_id(id).ok_or_else(|| bad("key_id must be 16 hex digits"))?;
            let hash = crate::auth::parse_digest(digest).ok_or_else(|| bad("key_sha256 must be 64 hex digits"))?;
            (id, hash, None)
        }
        (None, None) => {
            let made = crate::auth::new_key().map_err(|e| Failure(ApiError::new(ErrorCode::Unavailable, e)))?;
            (made.id, made.hash(), Some(made.expose()))
        }
        _ => {
            return Err(Failure(ApiError::new(
                ErrorCode::RequestRefused,
                "send both key_id and key_sha256, or neither",
            )))
        }
    };
    let ttl_ms = ttl_s.map(|s| s.saturating_mul(1000));
    let command = Command::IssueKey { id, principal: name, hash, ttl_ms, actor, key };
    let (done, log_index) = submit(&app, command).await?;
    match done {
        // A retry answered from the record of the first attempt names the first key, whose
        // secret this node never saw: only the id is returned then.
        Done::KeyIssued { key, expires_at } => Ok((
            StatusCode::CREATED,
            Json(IssuedKeyBody {
                key_id: key.to_string(),
                key: shown.filter(|_| key == id),
                expires_at_ms: expires_at.map(|t| t.0),
                log_index,
            }),
        )),
        other => Err(unexpected(other)),
    }
}

pub(crate) async fn revoke_key(
    State(app): State<App>,
    IdemKey(key): IdemKey,
    Operator(actor): Operator,
    PathParam(id): PathParam<String>,
) -> Answer<AckBody> {
    let id = crate::auth::parse_key_id(&id).ok_or_else(|| bad("the key id must be 16 hex digits"))?;
    let (_, index) = submit(&app, Command::RevokeKey { id, actor, key }).await?;
    Ok((StatusCode::OK, ack(index)))
}

// ---- incidents ----

pub(crate) async fn list_incidents(
    State(app): State<App>,
    QueryParams(options): QueryParams<ListOptions>,
) -> Result<Page<IncidentBody>, Failure> {
    let (limit, after) = (options.limit()?, options.after_id()?);
    let page = read(&app, &options.read(), |s| {
        s.incidents(after.map(IncidentId), limit + 1).iter().map(convert::incident_body).collect::<Vec<_>>()
    })
    .await?;
    Ok(Page::of(page, limit, |i| i.incident_id.to_string()))
}

pub(crate) async fn get_incident(
    State(app): State<App>,
    PathParam(id): PathParam<u64>,
    QueryParams(options): QueryParams<ReadOptions>,
) -> Answer<IncidentBody> {
    let view = read(&app, &options, |s| s.incident(IncidentId(id)))
        .await?
        .ok_or_else(|| not_found(ResultCode::IncidentNotFound))?;
    Ok((StatusCode::OK, Json(convert::incident_body(&view))))
}

pub(crate) async fn open_incident(
    State(app): State<App>,
    IdemKey(key): IdemKey,
    Operator(actor): Operator,
    Body(req): Body<OpenIncidentRequest>,
) -> Answer<IncidentOpenedBody> {
    match submit(&app, convert::open_incident(&req, actor, key)).await? {
        (Done::IncidentOpened { incident, already_open }, log_index) => {
            Ok((StatusCode::CREATED, Json(IncidentOpenedBody { incident_id: incident.0, already_open, log_index })))
        }
        (other, _) => Err(unexpected(other)),
    }
}

pub(crate) async fn close_incident(
    State(app): State<App>,
    IdemKey(key): IdemKey,
    Operator(actor): Operator,
    PathParam(id): PathParam<u64>,
    Body(req): Body<CloseIncidentRequest>,
) -> Answer<AckBody> {
    let command = Command::CloseIncident { incident: IncidentId(id), resolution: req.resolution, actor, key };
    let (_, index) = submit(&app, command).await?;
    Ok((StatusCode::OK, ack(index)))
}

pub(crate) async fn whoami(State(app): State<App>, caller: Caller) -> Answer<WhoAmIBody> {
    let accounts = app.consensus.read(|d| d.state.principal(&caller.principal).map(|p| p.accounts).unwrap_or_default());
    Ok((
        StatusCode::OK,
        Json(WhoAmIBody {
            principal: caller.principal,
            role: caller.role.as_str().to_string(),
            key_id: caller.key.to_string(),
            expires_at_ms: caller.expires_at.map(|t| t.0),
            account_ids: accounts.iter().map(|a| a.0).collect(),
        }),
    ))
}

pub(crate) async fn self_check_now(State(app): State<App>) -> Answer<SelfCheckBody> {
    let now = (app.clock)().0;
    let result = crate::self_check::check(&app.config, &app.self_check, now);
    crate::jobs::record_self_check(app.clone(), result.clone());
    Ok((StatusCode::OK, Json(result)))
}

/// Waits until this node has applied `log_index` (a follower forwards writes: the leader has
/// applied it, this node maybe not yet).
async fn wait_applied(app: &App, log_index: u64) -> Result<(), Failure> {
    let mut applied = app.consensus.applied_watch();
    let wait = std::time::Duration::from_millis(app.config.write_timeout_ms);
    if matches!(tokio::time::timeout(wait, applied.wait_for(|i| *i >= log_index)).await, Ok(Ok(_))) {
        return Ok(());
    }
    Err(Failure(
        ApiError::new(
            ErrorCode::ReadUnavailable,
            format!("the change was applied at log index {log_index}, but this node has not applied it yet"),
        )
        .retry_after(1),
    ))
}

// ---- infrastructure ----

/// The document depends on nothing but the route table and the build: made once, on the
/// first request for it, not again on every one.
static OPENAPI: std::sync::LazyLock<serde_json::Value> = std::sync::LazyLock::new(paddock_api::openapi::document);

pub(crate) async fn openapi() -> Response {
    Json(&*OPENAPI).into_response()
}

pub(crate) async fn live() -> Response {
    (StatusCode::OK, Json(serde_json::json!({ "status": "live" }))).into_response()
}

/// Ready = a member of a cluster with a known leader, caught up within the configured bound,
/// and not shutting down. This is what a load balancer keys on.
pub(crate) async fn ready(State(app): State<App>) -> Response {
    let s = app.consensus.status();
    match not_ready_reason(&app, &s) {
        None => (StatusCode::OK, Json(serde_json::json!({ "status": "ready", "leader_id": s.leader }))).into_response(),
        Some(reason) => {
            (StatusCode::SERVICE_UNAVAILABLE, Json(serde_json::json!({ "status": "not_ready", "reason": reason })))
                .into_response()
        }
    }
}

/// Why this node is not ready, or `None` if it is: `/health/ready` answers with it, and the
/// `paddock_ready` gauge (which the no-leader alert reads) is sampled from it.
pub(crate) fn not_ready_reason(app: &App, s: &paddock_consensus::ClusterStatus) -> Option<String> {
    let lag = s.commit_index.saturating_sub(s.applied_index);
    if app.shutting_down() {
        Some("shutting down".to_string())
    } else if app.consensus.storage_damaged() {
        Some("a read found damaged data in the Raft log: Raft has stopped here and the node exits so that its restart repairs the log from its peers".into())
    } else if app.consensus.storage_failed() {
        Some("a write to the Raft log failed (disk full or failing): Raft has stopped here; restart the node on working storage".into())
    } else if s.members.iter().all(|m| m.id != s.node_id) {
        // Why it cannot join, when its bootstrap list disagrees with the cluster's.
        Some(app.consensus.join_problem().unwrap_or_else(|| "not a member of a cluster".into()))
    } else if s.leader.is_none() {
        Some("no known leader".into())
    } else if !matches!(
        s.role,
        paddock_consensus::Role::Leader | paddock_consensus::Role::Follower | paddock_consensus::Role::Learner
    ) {
        Some(format!("this node is a {}", s.role.as_str()))
    } else if s.role == paddock_consensus::Role::Leader
        && s.members.iter().filter(|m| m.voter).count() > 1
        && s.quorum_ack_age_ms.is_none_or(|age| age > 2 * app.config.election_timeout_max_ms)
    {
        // A restarted ex-leader may believe it still leads before a quorum has answered it:
        // it must not tell a load balancer it is the leader and ready until one has. (The only
        // voter is its own quorum; heartbeats keep the acks of a larger one fresh when idle.)
        Some("this node's leadership is not yet confirmed by a quorum of voters".into())
    } else if let Some(silent) = follower_out_of_step(app, s) {
        // With pre-vote, a follower cut off from every other node (or restarted alone) keeps
        // the leader it knew and starts no election: it would stay "ready" and a balancer
        // would send it requests that wait out their timeout.
        Some(format!(
            "not in step with leader {} for {:.1} s: no word from it (cut off, or alone), or applying behind",
            s.leader.unwrap_or_default(),
            silent.as_secs_f64()
        ))
    } else if lag > app.config.ready_lag_entries_max {
        Some(format!("applied index {} is {lag} behind commit {}", s.applied_index, s.commit_index))
    } else {
        None
    }
}

/// How long this follower has been out of step with its leader, if longer than a follower in
/// a working cluster ever is: ten election timeouts, 3 s at least (heartbeats come every
/// `heartbeat_ms`; a leader's slow fsync delays entries, not beyond that).
fn follower_out_of_step(app: &App, s: &paddock_consensus::ClusterStatus) -> Option<std::time::Duration> {
    if s.role != paddock_consensus::Role::Follower {
        return None;
    }
    let allowed = std::time::Duration::from_millis((10 * app.config.election_timeout_max_ms).max(3_000));
    let silent = std::time::Duration::from_secs_f64(app.consensus.replica_lag().seconds);
    (silent > allowed).then_some(silent)
}

pub(crate) async fn metrics_text(State(app): State<App>, headers: axum::http::HeaderMap) -> Response {
    if app.config.metrics_require_key {
        if let Err(refused) = crate::auth::scraper(&app, headers.get("authorization")).await {
            return refused;
        }
    }
    let mut previous = None;
    let status = app.consensus.status();
    crate::metrics::publish_raft(&status, &mut previous);
    crate::metrics::publish_ready(not_ready_reason(&app, &status).is_none());
    crate::metrics::publish_storage(app.consensus.storage_failed(), &app.config.data_dir);
    crate::metrics::publish_replica_lag(app.consensus.replica_lag());
    ([("content-type", "text/plain; version=0.0.4")], app.metrics.render()).into_response()
}

pub(crate) async fn not_found_fallback() -> Failure {
    Failure(ApiError::new(ErrorCode::NotFound, "no such route; see /v1/openapi.json"))
}

pub(crate) async fn method_not_allowed() -> Failure {
    Failure(ApiError::new(ErrorCode::MethodNotAllowed, "method not allowed on this route; see /v1/openapi.json"))
}

fn unexpected(done: Done) -> Failure {
    // The ledger answered a command with another command's kind of answer: a bug, but one
    // that must not take the node down mid-request; it is logged and reported as unknown.
    tracing::error!(?done, "unexpected ledger answer");
    Failure(ApiError::new(ErrorCode::OutcomeUnknown, "unexpected answer from the ledger"))
}

// ---- backups ----

/// `GET /v1/backup/log`'s query.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BackupLogQuery {
    /// First log index wanted (1 or more).
    from: u64,
    /// Entries at most; default and maximum [`BACKUP_LOG_LIMIT_MAX`].
    #[serde(default)]
    limit: Option<usize>,
}

/// The most entries one `GET /v1/backup/log` answers.
pub(crate) const BACKUP_LOG_LIMIT_MAX: usize = 10_000;

/// How long `GET /v1/backup/snapshot` waits for a first snapshot it asked for.
const FIRST_SNAPSHOT_WITHIN: std::time::Duration = std::time::Duration::from_secs(30);

/// `GET /v1/backup/snapshot`: the node's latest snapshot file, as on its disk. A node that has
/// none yet takes one first.
pub(crate) async fn backup_snapshot(State(app): State<App>) -> Result<Response, Failure> {
    if app.consensus.snapshot_index().is_none() {
        app.consensus.snapshot_now().await.map_err(write_failure)?;
        let deadline = tokio::time::Instant::now() + FIRST_SNAPSHOT_WITHIN;
        while app.consensus.snapshot_index().is_none() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
    let consensus = app.consensus.clone();
    let read = tokio::task::spawn_blocking(move || consensus.backup_snapshot()).await.ok().flatten();
    let Some((index, bytes)) = read else {
        return Err(Failure(
            ApiError::new(ErrorCode::Unavailable, "no snapshot could be taken yet; retry").retry_after(5),
        ));
    };
    Ok((
        StatusCode::OK,
        [("content-type", "application/octet-stream".to_string()), ("x-paddock-snapshot-index", index.to_string())],
        bytes,
    )
        .into_response())
}

/// `GET /v1/backup/log?from=N&limit=M`: committed entries from N on, each as
/// `index u64 | length u32 | record bytes` (little-endian); empty when N is past the commit
/// index. 410 `log_purged` when this node has purged N behind a snapshot. Served after a
/// read-index barrier, so a follower's answer reaches every entry committed when it was asked.
pub(crate) async fn backup_log(
    State(app): State<App>,
    QueryParams(query): QueryParams<BackupLogQuery>,
) -> Result<Response, Failure> {
    if query.from == 0 {
        return Err(Failure(ApiError::new(ErrorCode::BadParameter, "from: the log starts at index 1")));
    }
    let limit = query.limit.unwrap_or(BACKUP_LOG_LIMIT_MAX);
    if limit == 0 || limit > BACKUP_LOG_LIMIT_MAX {
        return Err(Failure(ApiError::new(
            ErrorCode::BadParameter,
            format!("limit: between 1 and {BACKUP_LOG_LIMIT_MAX}"),
        )));
    }
    let entries = match app.consensus.backup_log(query.from, limit).await {
        Ok(entries) => entries,
        Err(paddock_consensus::backup::BackupLogError::Purged { first_available }) => {
            return Err(Failure(ApiError::new(
                ErrorCode::LogPurged,
                format!(
                    "this node has purged its log before index {first_available}: start a new backup chain \
                     (a full backup), or ask a node that still has index {}",
                    query.from
                ),
            )))
        }
        Err(e @ paddock_consensus::backup::BackupLogError::Unconfirmed(_)) => {
            return Err(Failure(ApiError::new(ErrorCode::Unavailable, format!("{e}; retry")).retry_after(1)))
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot read the raft log for a backup");
            return Err(Failure(
                ApiError::new(ErrorCode::Unavailable, "cannot read the log now; retry").retry_after(5),
            ));
        }
    };
    let mut body = Vec::new();
    paddock_backup::encode_entries(&mut body, &entries);
    Ok((StatusCode::OK, [("content-type", "application/octet-stream")], body).into_response())
}
