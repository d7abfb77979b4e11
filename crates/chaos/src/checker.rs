//! The checker: after healing and resolving, compares what the cluster holds with what the
//! oracle was told.
//!
//! Checks (each a pass/fail with details):
//! - **resolved**: no operation and no operator action is still unknown.
//! - **bets_exactly_once** (invariant 3): acknowledged bets have distinct ids; each is found by
//!   `GET /v1/bets/{id}` with the acknowledged account, market, selection, stake and odds; each
//!   account's bet list has no duplicate and holds exactly its acknowledged bets; the ledger
//!   holds as many bets as were acknowledged.
//! - **money_conserved** (invariants 1, 6): per account, `balance = deposits − withdrawals −
//!   stakes + payouts` and `exposure = stakes of bets on markets not settled` (so `balance +
//!   exposure = deposits − withdrawals − settled stakes + payouts`), with `payout =
//!   floor(stake × num / den)` in exact integers for bets on the winner of a settled market
//!   (0 for the others); each settled bet was paid exactly that, once (`result_version` 1).
//! - **no_negative_balance** (invariant 2): balance, exposure ≥ 0 and no debt.
//! - **nothing_after_close** (invariant 5): every acknowledged bet on a market that left
//!   "open" has a log index lower than the entry that closed it (read from the audit trail, and
//!   equal to the close acknowledgement's index where there is one). A bet acknowledged by a
//!   retry — the client's, or a node's own re-routing of a keyed write after a frozen leader,
//!   which the client cannot see — carries the retry's index; it passes if the ledger's clock
//!   accepted it strictly before the close (the clock never runs backwards along the log).
//! - **operator_actions_exactly_once**: every operator action carried its own idempotency key
//!   and was re-sent with it until its outcome was known, so the workload knows what it did;
//!   the book must show each acknowledged action once and nothing else: a market exists iff
//!   its creation was acknowledged; each selection's price version is 1 plus the number of
//!   acknowledged price changes on it (a retried price change applied twice would show); a
//!   market is closed or settled only if that action was acknowledged; a settled market is at
//!   result version 1. Actions whose outcome stayed unknown widen the bound by one each (and
//!   already fail **resolved**). Cannot see: an action applied twice that leaves no count
//!   behind (a second identical close is refused by the ledger anyway).
//! - **book_clock_bounded**: no leader whose wall clock jumped (`clock-jump-leader`) moved the
//!   book's clock: at the end every node's book clock is at most a minute ahead of the true
//!   time. Cannot see: a leader clock jump *behind* (the book's clock never runs backwards;
//!   such a leader only stalls it, which the clock-skew cluster test covers by its hand-over).
//! - **replicas_agree** (invariant 7): every node reports the same state hash at the same
//!   applied index, which is at least the leader's commit index (polled, bounded).
//! - **idempotent_replay** (invariant 4): a sample of acknowledged operations re-sent with the
//!   same key and body answer as the first time and move no money.

use crate::cluster::Cluster;
use crate::oracle::*;
use crate::workload::{Caller, Limits};
use paddock_api::wire::*;
use paddock_client::{Client, ClientError};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// At most this many detail lines per check (the count of all is in the summary).
const DETAILS_MAX: usize = 25;

/// One check's verdict.
#[derive(Clone, Debug, Serialize)]
pub struct CheckResult {
    /// Short name.
    pub name: String,
    /// Passed.
    pub passed: bool,
    /// One line.
    pub summary: String,
    /// What went wrong (capped).
    pub details: Vec<String>,
}

#[derive(Default)]
struct Findings {
    details: Vec<String>,
    count: usize,
}

impl Findings {
    fn add(&mut self, line: String) {
        self.count += 1;
        if self.details.len() < DETAILS_MAX {
            self.details.push(line);
        }
    }

    fn verdict(self, name: &str, ok_summary: String) -> CheckResult {
        let passed = self.count == 0;
        let summary = if passed { ok_summary } else { format!("{} problem(s); {ok_summary}", self.count) };
        CheckResult { name: name.into(), passed, summary, details: self.details }
    }
}

/// All checks and the number of acknowledged bets that were lost.
#[derive(Clone, Debug, Serialize)]
pub struct Verdict {
    /// Each check.
    pub checks: Vec<CheckResult>,
    /// Acknowledged bets not found (or found different from the acknowledgement).
    pub acknowledged_but_lost: u64,
}

/// `floor(stake × num / den)`, exactly.
pub fn payout(stake_minor: i64, num: u32, den: u32) -> i64 {
    let p = i128::from(stake_minor) * i128::from(num) / i128::from(den.max(1));
    i64::try_from(p).unwrap_or(i64::MAX)
}

/// The first audit record where a market leaves "open": (log index, ledger time ms).
fn leave_open_records(records: &[AuditRecordBody]) -> BTreeMap<u64, (u64, u64)> {
    let mut out = BTreeMap::new();
    for r in records {
        if r.event["type"] != "market_status_changed" || r.event["from"] != "open" {
            continue;
        }
        let Some(id) = r.event["market_id"].as_u64() else { continue };
        out.entry(id).or_insert((r.log_index, r.at_ms));
    }
    out
}

async fn read_audit(reader: &Client) -> Result<Vec<AuditRecordBody>, ClientError> {
    let mut all = Vec::new();
    for _ in 0..10_000 {
        let page: Vec<AuditRecordBody> = reader
            .call(reqwest::Method::GET, &format!("/v1/audit?from={}&limit=1000", all.len()), None::<&()>, None)
            .await?;
        let n = page.len();
        all.extend(page);
        if n < 1000 {
            break;
        }
    }
    Ok(all)
}

/// Reads many things with bounded concurrency; `None` for "not found", an error otherwise.
async fn read_many<T, F, Fut>(ids: Vec<u64>, f: F) -> BTreeMap<u64, Result<Option<T>, ClientError>>
where
    T: Send + 'static,
    F: Fn(u64) -> Fut,
    Fut: std::future::Future<Output = Result<T, ClientError>> + Send + 'static,
{
    let mut out = BTreeMap::new();
    for chunk in ids.chunks(16) {
        let mut set = tokio::task::JoinSet::new();
        for id in chunk {
            let fut = f(*id);
            let id = *id;
            set.spawn(async move { (id, fut.await) });
        }
        while let Some(joined) = set.join_next().await {
            if let Ok((id, r)) = joined {
                let r = match r {
                    Ok(v) => Ok(Some(v)),
                    Err(e) if e.code().is_some_and(|c| c == "not_found" || c.ends_with("_not_found")) => Ok(None),
                    Err(e) => Err(e),
                };
                out.insert(id, r);
            }
        }
    }
    out
}

/// An acknowledged bet as the oracle knows it.
struct AckedBet<'a> {
    op: &'a OpRecord,
    account_id: u64,
    market_id: u64,
    selection_id: u64,
    bet_id: u64,
    stake_minor: i64,
    odds: (u32, u32),
    log_index: u64,
}

fn acked_bets(history: &History) -> Vec<AckedBet<'_>> {
    history
        .ops
        .iter()
        .filter_map(|op| match (&op.body, op.answer()) {
            (
                OpBody::Bet { account_id, market_id, selection_id, .. },
                Some(Answer::Placed { bet_id, stake_minor, odds, log_index, .. }),
            ) => Some(AckedBet {
                op,
                account_id: *account_id,
                market_id: *market_id,
                selection_id: *selection_id,
                bet_id: *bet_id,
                stake_minor: *stake_minor,
                odds: odds.first().copied().unwrap_or((0, 1)),
                log_index: *log_index,
            }),
            _ => None,
        })
        .collect()
}

/// Each operator action took effect exactly once (see the module doc).
fn operator_actions_exactly_once<'a>(
    history: &History,
    market_of: &dyn Fn(u64) -> Option<&'a MarketBody>,
) -> CheckResult {
    let mut f = Findings::default();
    let count = |id: u64, kind: &dyn Fn(&OperatorAction) -> bool| -> (usize, usize) {
        let mine = history.actions.iter().filter(|a| a.market_id == id && kind(&a.action));
        let (mut acked, mut unknown) = (0, 0);
        for a in mine {
            match a.state {
                ActionState::Acknowledged { .. } => acked += 1,
                ActionState::Unknown { .. } => unknown += 1,
                ActionState::Refused { .. } | ActionState::NotSent => {}
            }
        }
        (acked, unknown)
    };
    for id in history.markets.keys().copied() {
        let created = count(id, &|a| matches!(a, OperatorAction::CreateMarket { .. }));
        let Some(m) = market_of(id) else {
            if created.0 > 0 {
                f.add(format!("market {id}: its creation was acknowledged but it does not exist"));
            }
            continue;
        };
        if created == (0, 0) {
            f.add(format!("market {id} exists but no creation of it was acknowledged"));
        }
        for s in &m.selections {
            let (acked, unknown) = count(
                id,
                &|a| matches!(a, OperatorAction::SetPrice { selection_id, .. } if *selection_id == s.selection_id),
            );
            let (low, high) = (1 + acked as u64, 1 + (acked + unknown) as u64);
            if !(low..=high).contains(&s.price_version) {
                f.add(format!(
                    "market {id} selection {}: price version {} after {acked} acknowledged price change(s) ({unknown} unknown): a change was applied twice or lost",
                    s.selection_id, s.price_version
                ));
            }
        }
        let closed = count(id, &|a| matches!(a, OperatorAction::Close));
        if m.status != "open" && m.status != "suspended" && closed == (0, 0) {
            f.add(format!("market {id} is {} but no close was acknowledged", m.status));
        }
        let settled = count(id, &|a| matches!(a, OperatorAction::Settle { .. }));
        if m.status == "settled" && settled == (0, 0) {
            f.add(format!("market {id} is settled but no settlement was acknowledged"));
        }
        if m.status == "settled" && m.result_version != 1 {
            f.add(format!("market {id} was settled {} times", m.result_version));
        }
    }
    let acked = history.actions.iter().filter(|a| a.state.acknowledged()).count();
    f.verdict(
        "operator_actions_exactly_once",
        format!("{acked} acknowledged operator actions on {} markets, each applied once", history.markets.len()),
    )
}

/// How far ahead of the harness's wall clock a node's book clock may read at the end: a leader
/// stamps with its own clock, and node clocks on one machine agree to well within this.
const BOOK_CLOCK_SLACK_MS: u64 = 60_000;

/// No leader with a jumped clock moved the book's clock: at the end every node's book clock is
/// at most [`BOOK_CLOCK_SLACK_MS`] ahead of the true time (the ledger's clock never runs
/// backwards, so a jump that got in at any moment would still show).
async fn book_clock_bounded(cluster: &mut Cluster) -> CheckResult {
    let mut f = Findings::default();
    let wall_ms =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    let mut read = 0;
    for id in cluster.ids() {
        match cluster.view(id).await {
            Some(view) => {
                read += 1;
                if view.book_clock_ms > wall_ms + BOOK_CLOCK_SLACK_MS {
                    f.add(format!(
                        "node {id}: the book's clock reads {} ms, {} ms ahead of the true time",
                        view.book_clock_ms,
                        view.book_clock_ms - wall_ms
                    ));
                }
            }
            None => f.add(format!("node {id} did not answer /v1/cluster")),
        }
    }
    f.verdict(
        "book_clock_bounded",
        format!("{read} nodes' book clocks within {BOOK_CLOCK_SLACK_MS} ms of the true time"),
    )
}

/// Runs every check. `cluster` must have every node up.
pub async fn check(history: &History, caller: &Caller, oracle: &Oracle, cluster: &mut Cluster) -> Verdict {
    let reader = caller.reader(cluster.urls());
    let mut checks = Vec::new();
    let mut lost = 0u64;

    // ---- resolved ----
    let unknown: Vec<&OpRecord> =
        history.ops.iter().filter(|o| matches!(o.outcome, OpOutcome::Unknown { .. })).collect();
    let was_unknown = history.ops.iter().filter(|o| o.was_unknown).count();
    let mut f = Findings::default();
    for op in &unknown {
        f.add(format!("op {} ({}) key {} is still unknown: {:?}", op.id, op.body.kind(), op.key, op.outcome));
    }
    let actions_resolved = history.actions.iter().filter(|a| a.resolved).count();
    for a in history.actions.iter().filter(|a| matches!(a.state, ActionState::Unknown { .. })) {
        f.add(format!("{} on market {} (key {}) is still unknown", a.action.name(), a.market_id, a.key));
    }
    checks.push(f.verdict(
        "resolved",
        format!(
            "{was_unknown} unknown operation(s) and {actions_resolved} operator action(s) of unknown outcome, all resolved"
        ),
    ));

    // ---- reads ----
    let bets = acked_bets(history);
    let markets_read = read_many(history.markets.keys().copied().collect(), |id| {
        let r = reader.clone();
        async move { r.market(id).await }
    })
    .await;
    let accounts_read = read_many(history.accounts.clone(), |id| {
        let r = reader.clone();
        async move { r.account(id).await }
    })
    .await;
    let lists_read = read_many(history.accounts.clone(), |id| {
        let r = reader.clone();
        async move { r.account_bets(id).await }
    })
    .await;
    let bets_read = read_many(bets.iter().map(|b| b.bet_id).collect(), |id| {
        let r = reader.clone();
        async move { r.bet(id).await }
    })
    .await;
    let audit = read_audit(&reader).await;
    let ledger_bets = reader.state_hash().await.map(|h| h.bets);

    let market_status = |id: u64| -> Option<&MarketBody> {
        match markets_read.get(&id) {
            Some(Ok(Some(m))) => Some(m),
            _ => None,
        }
    };
    let settled_winner = |id: u64| -> Option<Option<u64>> {
        // Some(winner) if the market is settled, None if not settled.
        market_status(id).filter(|m| m.status == "settled").map(|_| history.markets.get(&id).and_then(|r| r.winner))
    };

    // ---- bets exactly once ----
    let mut f = Findings::default();
    let mut by_id: BTreeMap<u64, &AckedBet> = BTreeMap::new();
    for b in &bets {
        if let Some(other) = by_id.insert(b.bet_id, b) {
            f.add(format!("bet id {} acknowledged for two keys: {} and {}", b.bet_id, other.op.key, b.op.key));
        }
    }
    for b in &bets {
        match bets_read.get(&b.bet_id) {
            Some(Ok(Some(view))) => {
                let leg = view.legs.first();
                let same = view.account_id == b.account_id
                    && view.stake_minor == b.stake_minor
                    && view.legs.len() == 1
                    && leg.is_some_and(|l| {
                        l.market_id == b.market_id
                            && l.selection_id == b.selection_id
                            && (l.odds.num, l.odds.den) == b.odds
                    });
                if !same {
                    lost += 1;
                    f.add(format!(
                        "bet {} (key {}) differs from its acknowledgement: held {:?}, acknowledged account {} stake {} odds {}/{}",
                        b.bet_id, b.op.key, view, b.account_id, b.stake_minor, b.odds.0, b.odds.1
                    ));
                }
            }
            Some(Ok(None)) => {
                lost += 1;
                f.add(format!("acknowledged bet {} (key {}) is not found", b.bet_id, b.op.key));
            }
            Some(Err(e)) => f.add(format!("cannot read bet {}: {e}", b.bet_id)),
            None => f.add(format!("bet {} was not read", b.bet_id)),
        }
    }
    for account in &history.accounts {
        let expected: BTreeSet<u64> = bets.iter().filter(|b| b.account_id == *account).map(|b| b.bet_id).collect();
        match lists_read.get(account) {
            Some(Ok(Some(list))) => {
                let mut seen = BTreeSet::new();
                for bet in list {
                    if !seen.insert(bet.bet_id) {
                        f.add(format!("account {account} lists bet {} twice", bet.bet_id));
                    }
                    if !expected.contains(&bet.bet_id) {
                        f.add(format!("account {account} holds bet {} that was never acknowledged", bet.bet_id));
                    }
                }
                for id in expected.difference(&seen) {
                    // Counted as lost above if GET /v1/bets/{id} also misses it.
                    f.add(format!("account {account}'s bet list lacks acknowledged bet {id}"));
                }
            }
            Some(Ok(None)) => f.add(format!("account {account} is not found")),
            Some(Err(e)) => f.add(format!("cannot read account {account}'s bets: {e}")),
            None => f.add(format!("account {account}'s bets were not read")),
        }
    }
    match &ledger_bets {
        Ok(n) if *n as usize != by_id.len() => {
            f.add(format!("the ledger holds {n} bets; {} were acknowledged", by_id.len()))
        }
        Ok(_) => {}
        Err(e) => f.add(format!("cannot read the ledger's bet count: {e}")),
    }
    checks.push(f.verdict(
        "bets_exactly_once",
        format!("{} acknowledged bets, each found once with its stake and odds", by_id.len()),
    ));

    // ---- money conserved ----
    let mut f = Findings::default();
    #[derive(Default)]
    struct Book {
        deposits: i64,
        withdrawals: i64,
        stakes: i64,
        payouts: i64,
        open_stakes: i64,
    }
    let mut books: BTreeMap<u64, Book> = history.accounts.iter().map(|a| (*a, Book::default())).collect();
    for op in &history.ops {
        let Some(answer) = op.answer() else { continue };
        let book = books.entry(op.body.account_id()).or_default();
        match (&op.body, answer) {
            (OpBody::Deposit { amount_minor, .. }, _) => book.deposits += amount_minor,
            (OpBody::Withdraw { amount_minor, .. }, _) => book.withdrawals += amount_minor,
            _ => {}
        }
    }
    let mut settled_bets = 0;
    for b in &bets {
        let book = books.entry(b.account_id).or_default();
        book.stakes += b.stake_minor;
        let expected_paid = match settled_winner(b.market_id) {
            Some(Some(winner)) => {
                settled_bets += 1;
                if winner == b.selection_id {
                    payout(b.stake_minor, b.odds.0, b.odds.1)
                } else {
                    0
                }
            }
            Some(None) => {
                f.add(format!("market {} is settled but the operator never chose a winner", b.market_id));
                0
            }
            None => {
                book.open_stakes += b.stake_minor;
                0
            }
        };
        book.payouts += expected_paid;
        if let Some(Ok(Some(view))) = bets_read.get(&b.bet_id) {
            let settled = settled_winner(b.market_id).is_some();
            let want_status = if settled { "settled" } else { "open" };
            if view.status != want_status || view.paid_minor != expected_paid {
                f.add(format!(
                    "bet {} is {} paid {}; expected {want_status} paid {expected_paid}",
                    b.bet_id, view.status, view.paid_minor
                ));
            }
        }
    }
    for (id, record) in &history.markets {
        let Some(m) = market_status(*id) else {
            if record.created.acknowledged() {
                f.add(format!("market {id} was created but cannot be read: {:?}", markets_read.get(id)));
            }
            continue;
        };
        if m.status == "settled" && m.result_version != 1 {
            f.add(format!("market {id} is at result version {}", m.result_version));
        }
        if record.settle.acknowledged() && m.status != "settled" {
            f.add(format!("market {id}'s settlement was acknowledged but it is {}", m.status));
        }
        if record.close.acknowledged() && m.status == "open" {
            f.add(format!("market {id}'s close was acknowledged but it is open"));
        }
    }
    let mut views: BTreeMap<u64, AccountBody> = BTreeMap::new();
    for (account, book) in &books {
        match accounts_read.get(account) {
            Some(Ok(Some(view))) => {
                let balance = book.deposits - book.withdrawals - book.stakes + book.payouts;
                if view.balance_minor != balance || view.exposure_minor != book.open_stakes {
                    f.add(format!(
                        "account {account}: balance {} exposure {}, expected balance {balance} (deposits {} − withdrawals {} − stakes {} + payouts {}) exposure {}",
                        view.balance_minor, view.exposure_minor, book.deposits, book.withdrawals, book.stakes, book.payouts, book.open_stakes
                    ));
                }
                views.insert(*account, view.clone());
            }
            Some(Ok(None)) => f.add(format!("account {account} is not found")),
            Some(Err(e)) => f.add(format!("cannot read account {account}: {e}")),
            None => f.add(format!("account {account} was not read")),
        }
    }
    let total: i64 = views.values().map(|v| v.balance_minor + v.exposure_minor).sum();
    checks.push(f.verdict(
        "money_conserved",
        format!(
            "{} accounts hold {total} (balance + exposure) as the history says; {settled_bets} settled bets paid exactly",
            views.len()
        ),
    ));

    // ---- no negative balance ----
    let mut f = Findings::default();
    for (account, v) in &views {
        if v.balance_minor < 0 || v.exposure_minor < 0 || v.debt_minor != 0 {
            f.add(format!(
                "account {account}: balance {} exposure {} debt {}",
                v.balance_minor, v.exposure_minor, v.debt_minor
            ));
        }
    }
    checks.push(f.verdict("no_negative_balance", format!("{} accounts, none negative", views.len())));

    // ---- nothing accepted after close ----
    let mut f = Findings::default();
    let mut proved_by_index = 0;
    let mut proved_by_time = 0;
    match &audit {
        Err(e) => f.add(format!("cannot read the audit trail: {e}")),
        Ok(records) => {
            let closes = leave_open_records(records);
            for (id, record) in &history.markets {
                let Some(m) = market_status(*id) else { continue };
                if m.status == "open" || m.status == "suspended" {
                    continue;
                }
                let Some(&(close_index, close_ms)) = closes.get(id) else {
                    f.add(format!("market {id} is {} but the audit trail has no record of it closing", m.status));
                    continue;
                };
                if let Some(acked) = record.close_log_index {
                    if acked != close_index {
                        f.add(format!(
                            "market {id}: close acknowledged at log index {acked}, audit says {close_index}"
                        ));
                    }
                }
                for b in bets.iter().filter(|b| b.market_id == *id) {
                    if b.log_index < close_index {
                        proved_by_index += 1;
                        continue;
                    }
                    // Acknowledged by a retry — the client's, or the node's own (a keyed write
                    // re-routed to a new leader after the first froze): the index is the
                    // retry's. A bet's `placed_at` is the ledger time of its acceptance and the
                    // ledger's clock never runs backwards along the log, so a bet accepted
                    // before the close's time was accepted before the close.
                    let placed = match bets_read.get(&b.bet_id) {
                        Some(Ok(Some(v))) => Some(v.placed_at_ms),
                        _ => None,
                    };
                    match placed {
                        Some(p) if p < close_ms => proved_by_time += 1,
                        _ => f.add(format!(
                            "bet {} (key {}, {} attempt(s)) acknowledged at log index {} on market {id} closed at {close_index} (placed at {:?} ms, closed at {close_ms} ms)",
                            b.bet_id, b.op.key, b.op.attempts, b.log_index, placed
                        )),
                    }
                }
            }
        }
    }
    checks.push(f.verdict(
        "nothing_after_close",
        format!("bets before their market's close: {proved_by_index} by log index, {proved_by_time} by ledger time (answered by a retry)"),
    ));

    // ---- operator actions exactly once ----
    checks.push(operator_actions_exactly_once(history, &|id| market_status(id)));

    // ---- the book's clock stayed bounded ----
    checks.push(book_clock_bounded(cluster).await);

    // ---- replicas agree ----
    checks.push(replicas_agree(cluster, Duration::from_secs(30)).await);

    // ---- idempotent replay ----
    checks.push(idempotent_replay(history, caller, oracle, &reader).await);

    Verdict { checks, acknowledged_but_lost: lost }
}

/// Polls every node until all report the same applied index (at least the leader's commit
/// index read just before), then compares their hashes.
pub async fn replicas_agree(cluster: &mut Cluster, within: Duration) -> CheckResult {
    let t0 = Instant::now();
    let ids = cluster.ids();
    let mut f = Findings::default();
    let mut last: Vec<(u64, Option<StateHashBody>)> = Vec::new();
    let rounds = within.as_millis() / 200 + 2;
    for _ in 0..rounds {
        let commit = match cluster.leader(Duration::from_secs(2)).await {
            Ok(l) => cluster.view(l).await.map(|v| v.commit_index),
            Err(_) => None,
        };
        last.clear();
        for id in &ids {
            last.push((*id, cluster.state_hash(*id).await));
        }
        let indexes: BTreeSet<Option<u64>> = last.iter().map(|(_, h)| h.as_ref().map(|h| h.applied_index)).collect();
        if let (Some(commit), 1) = (commit, indexes.len()) {
            if let Some(Some(index)) = indexes.first() {
                if *index >= commit {
                    let hashes: BTreeSet<&str> =
                        last.iter().filter_map(|(_, h)| h.as_ref().map(|h| h.state_hash.as_str())).collect();
                    if hashes.len() != 1 {
                        for (id, h) in &last {
                            f.add(format!("node {id}: {h:?}"));
                        }
                        return f.verdict("replicas_agree", format!("nodes disagree at applied index {index}"));
                    }
                    let h = last[0].1.as_ref().expect("all answered");
                    return f.verdict(
                        "replicas_agree",
                        format!(
                            "{} nodes hold state {}… at applied index {index} ({} bets, {} accounts)",
                            ids.len(),
                            &h.state_hash[..h.state_hash.len().min(16)],
                            h.bets,
                            h.accounts
                        ),
                    );
                }
            }
        }
        if t0.elapsed() >= within {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for (id, h) in &last {
        f.add(format!("node {id}: {h:?}"));
    }
    f.add(format!("the nodes did not reach one applied index within {within:?}"));
    f.verdict("replicas_agree", "no common applied index".into())
}

/// Re-sends a sample of acknowledged operations with the same key and body: each must answer
/// as it did the first time, and the accounts' balances must not move.
async fn idempotent_replay(history: &History, caller: &Caller, oracle: &Oracle, reader: &Client) -> CheckResult {
    let mut f = Findings::default();
    let acked: Vec<&OpRecord> = history.ops.iter().filter(|o| o.answer().is_some()).collect();
    let step = (acked.len() / 30).max(1);
    let sample: Vec<&OpRecord> = acked.iter().step_by(step).take(30).copied().collect();
    let accounts: BTreeSet<u64> = sample.iter().map(|o| o.body.account_id()).collect();
    let mut before = BTreeMap::new();
    for a in &accounts {
        match reader.account(*a).await {
            Ok(v) => {
                before.insert(*a, (v.balance_minor, v.exposure_minor));
            }
            Err(e) => f.add(format!("cannot read account {a}: {e}")),
        }
    }
    let limits = Limits { attempts: 20, budget: Duration::from_secs(10) };
    let mut node = 0;
    for op in &sample {
        let (outcome, _) = caller.send(oracle, "check", &mut node, limits, &op.key, &op.body).await;
        let first = op.answer().expect("acknowledged");
        let same = match (&outcome, first) {
            (
                OpOutcome::Acknowledged { answer: Answer::Balance { balance_minor: a } },
                Answer::Balance { balance_minor: b },
            ) => a == b,
            (
                OpOutcome::Acknowledged { answer: Answer::Placed { bet_id: a, stake_minor: sa, odds: oa, .. } },
                Answer::Placed { bet_id: b, stake_minor: sb, odds: ob, .. },
            ) => a == b && sa == sb && oa == ob,
            _ => false,
        };
        if !same {
            f.add(format!(
                "replay of {} (key {}) answered {outcome:?}; first answer {first:?}",
                op.body.kind(),
                op.key
            ));
        }
    }
    for (a, (balance, exposure)) in &before {
        match reader.account(*a).await {
            Ok(v) if v.balance_minor == *balance && v.exposure_minor == *exposure => {}
            Ok(v) => f.add(format!(
                "account {a} moved after replays: balance {balance} → {}, exposure {exposure} → {}",
                v.balance_minor, v.exposure_minor
            )),
            Err(e) => f.add(format!("cannot read account {a}: {e}")),
        }
    }
    f.verdict(
        "idempotent_replay",
        format!("{} acknowledged operations replayed with their keys: same answers, no money moved", sample.len()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payout_truncates_exactly() {
        // 7/3 fractional is 10/3 decimal: 100 × 10/3 = 333.33… → 333.
        assert_eq!(payout(100, 10, 3), 333);
        assert_eq!(payout(1_999, 13, 9), 2_887);
        assert_eq!(payout(i64::MAX / 2, 3, 1), i64::MAX);
    }

    #[test]
    fn the_audit_trail_tells_when_a_market_left_open() {
        let rec = |seq: u64, log_index: u64, event: serde_json::Value| AuditRecordBody {
            seq,
            log_index,
            at_ms: 1_000 + seq,
            actor: "op".into(),
            event,
            prev_hash: String::new(),
            hash: String::new(),
            record: String::new(),
        };
        let status = |market: u64, from: &str, to: &str| serde_json::json!({ "type": "market_status_changed", "market_id": market, "from": from, "to": to, "reason": "" });
        let records = vec![
            rec(0, 5, serde_json::json!({ "type": "market_created", "market_id": 12 })),
            rec(1, 9, status(12, "open", "closed")),
            rec(2, 11, status(12, "closed", "settled")),
            rec(3, 14, status(3, "open", "settled")),
        ];
        let m = leave_open_records(&records);
        assert_eq!(m.get(&12), Some(&(9, 1_001)));
        assert_eq!(m.get(&3), Some(&(14, 1_003)));
        assert_eq!(m.len(), 2);
    }
}
