//! `apply`: the one way the state changes, and the account, limit and catalogue commands.
//!
//! Every handler validates everything first and mutates only once nothing can fail, so a
//! refused command leaves the state byte-identical (its hash unchanged). Money moves only
//! through [`State::post`], a double-entry posting between two ledger accounts of one currency.

use crate::audit::AuditEvent;
use crate::code::ResultCode;
use crate::command::{BookConfig, Command, ExclusionKind, LimitKind, LimitWindow, MarketRules, NewSelection};
use crate::ids::{
    text_is_valid, AccountId, Actor, BetId, Currency, EventId, MarketId, SelectionId, TimestampMs, DAY_MS,
};
use crate::money::Money;
use crate::outcome::{Done, Outcome};
use crate::state::{Account, Activity, Event, IdempotencyRecord, Limit, Market, MarketStatus, Selection, State};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// What the log supplies with each command: where it sits and when the leader stamped it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApplyCtx {
    /// Raft log index of the entry (recorded in the audit trail).
    pub log_index: u64,
    /// Leader-assigned timestamp (UTC ms).
    pub time: TimestampMs,
}

/// Most selections one market may have.
pub const MARKET_SELECTIONS_MAX: usize = 200;
/// Shortest self-exclusion, in days (six months; UK rules).
pub const SELF_EXCLUSION_DAYS_MIN: u32 = 182;
/// Longest self-exclusion, in days (ten years).
pub const SELF_EXCLUSION_DAYS_MAX: u32 = 3650;
/// Longest time-out, in days (six weeks).
pub const TIME_OUT_DAYS_MAX: u32 = 42;
/// Longest in-play bet delay a market may have.
pub const BET_DELAY_MS_MAX: u64 = 60_000;
/// Idempotency records dropped per command at most, so pruning never stalls one apply.
const IDEMPOTENCY_PRUNE_BATCH: usize = 64;

pub(crate) type Handled = Result<Done, ResultCode>;

/// What applying one command gave: its outcome, and whether that outcome is the remembered
/// answer to an earlier command with the same idempotency key and body (a retry).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    /// The answer: the first answer again when `replayed`.
    pub outcome: Outcome,
    /// True when the command changed nothing because its key had been seen with this body:
    /// clients are told so (`Idempotent-Replayed: true`) and can tell a retry from a first try.
    pub replayed: bool,
}

/// Applies one command. Pure and deterministic: the outcome and the new state depend only on
/// `state`, `command` and `ctx`.
pub fn apply(state: &mut State, command: &Command, ctx: ApplyCtx) -> Outcome {
    apply_noting_replay(state, command, ctx).outcome
}

/// [`apply`], also saying whether the answer is a replay of a remembered one.
pub fn apply_noting_replay(state: &mut State, command: &Command, ctx: ApplyCtx) -> Applied {
    let fresh = |outcome| Applied { outcome, replayed: false };
    // Time never runs backwards inside the ledger, even across a leader change, and moves
    // forward at most one step per entry (the first entry of a new book sets it).
    let step_max = state.config.clock_step_max_ms;
    let now = if state.clock.0 != 0 && ctx.time.0 > state.clock.0.saturating_add(step_max) {
        match command {
            Command::ResolvePending => state.clock.plus_ms(step_max),
            _ => return fresh(Outcome::Rejected(ResultCode::ClockStepTooLarge)),
        }
    } else {
        state.clock.max(ctx.time)
    };
    if let Command::PlaceBets(bets) = command {
        return fresh(place_bets(state, bets, ctx));
    }
    let Some((scope, key)) = command.idempotency() else {
        let handled = dispatch(state, command, ctx, now);
        return fresh(finish(state, handled, now));
    };
    if !key.is_valid() {
        return fresh(Outcome::Rejected(ResultCode::IdempotencyKeyInvalid));
    }
    let digest = body_digest(command);
    let map_key = (scope, key.digest());
    if let Some(record) = state.idempotency.get(&map_key) {
        return if record.body_digest == digest {
            Applied { outcome: record.outcome.clone(), replayed: true }
        } else {
            fresh(Outcome::Rejected(ResultCode::IdempotencyKeyReused))
        };
    }
    let handled = dispatch(state, command, ctx, now);
    let outcome = finish(state, handled, now);
    // Every first answer is remembered, refusals too: a key names one attempt and its first
    // answer is final. Were refusals judged anew, an attempt held up in a node or the network
    // could take effect after a retry of it had been refused, and the client would have been
    // told "refused" of a command that stands (the simulator found it: docs/simulation.md).
    let forgotten =
        crate::faults::forget_idempotency_records() && matches!(scope, crate::command::KeyScope::Account(_));
    if !forgotten {
        let expires = now.plus_ms(state.config.idempotency_ttl_ms);
        state.idempotency_expiry.push_back((expires, scope, map_key.1));
        state.idempotency.insert(map_key, IdempotencyRecord { body_digest: digest, outcome: outcome.clone() });
    }
    fresh(outcome)
}

/// A batch: each bet as its own `PlaceBet`, in order (so a later bet sees the balance an earlier
/// one left), each with its own idempotency record.
fn place_bets(state: &mut State, bets: &[crate::command::PlaceBet], ctx: ApplyCtx) -> Outcome {
    if bets.is_empty() || bets.len() > crate::command::BETS_PER_BATCH_MAX {
        return Outcome::Rejected(ResultCode::BatchSizeInvalid);
    }
    let items = bets
        .iter()
        .map(|bet| {
            let applied = apply_noting_replay(state, &Command::PlaceBet(bet.clone()), ctx);
            crate::outcome::BatchItem { outcome: applied.outcome, replayed: applied.replayed }
        })
        .collect();
    Outcome::Done(Done::BetsPlaced(items))
}

fn finish(state: &mut State, handled: Handled, now: TimestampMs) -> Outcome {
    match handled {
        Ok(done) => {
            state.clock = now;
            prune_idempotency(state, now);
            Outcome::Done(done)
        }
        Err(code) => Outcome::Rejected(code),
    }
}

fn prune_idempotency(state: &mut State, now: TimestampMs) {
    for _ in 0..IDEMPOTENCY_PRUNE_BATCH {
        match state.idempotency_expiry.front() {
            Some((expires, _, _)) if *expires <= now => {
                let (_, scope, key) = state.idempotency_expiry.pop_front().expect("front exists");
                state.idempotency.remove(&(scope, key));
            }
            _ => break,
        }
    }
}

/// The first 16 bytes of SHA-256 of the command's postcard encoding. The encoding is fed to the
/// hash as it is produced, so the hot path allocates no buffer for it.
fn body_digest(command: &Command) -> [u8; 16] {
    let full: [u8; 32] =
        postcard::serialize_with_flavor(command, HashingFlavor(Sha256::new())).expect("commands encode: plain data");
    let mut out = [0u8; 16];
    out.copy_from_slice(&full[..16]);
    out
}

/// A postcard output that hashes the bytes instead of storing them.
struct HashingFlavor(Sha256);

impl postcard::ser_flavors::Flavor for HashingFlavor {
    type Output = [u8; 32];

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.0.update(data);
        Ok(())
    }

    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.0.update([data]);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<[u8; 32]> {
        Ok(self.0.finalize().into())
    }
}

fn dispatch(state: &mut State, command: &Command, ctx: ApplyCtx, now: TimestampMs) -> Handled {
    match command {
        Command::OpenAccount { account, currency, .. } => open_account(state, *account, *currency),
        Command::Deposit { account, amount, .. } => deposit(state, *account, *amount, now),
        Command::Withdraw { account, amount, .. } => withdraw(state, *account, *amount),
        Command::SetLimit { account, kind, window, amount, .. } => {
            set_limit(state, *account, *kind, *window, *amount, ctx, now)
        }
        Command::Exclude { account, kind, duration_days, .. } => {
            exclude(state, *account, *kind, *duration_days, ctx, now)
        }
        Command::SetStakeFactor { account, factor_permille, actor, .. } => {
            set_stake_factor(state, *account, *factor_permille, actor, ctx, now)
        }
        Command::CreateEvent { event, name, sport, competition, starts_at, actor, .. } => {
            create_event(state, *event, [name, sport, competition], *starts_at, actor, ctx, now)
        }
        Command::CreateMarket { market, event, name, currency, selections, rules, actor, .. } => {
            create_market(state, *market, *event, name, *currency, selections, rules, actor, ctx, now)
        }
        Command::SetPrice { market, selection, odds, .. } => {
            crate::betting::set_price(state, *market, *selection, *odds)
        }
        Command::SuspendMarket { market, reason, actor, .. } => {
            change_status(state, *market, &[MarketStatus::Open], MarketStatus::Suspended, reason, actor, ctx, now)
        }
        Command::ResumeMarket { market, actor, .. } => {
            change_status(state, *market, &[MarketStatus::Suspended], MarketStatus::Open, "", actor, ctx, now)
        }
        Command::CloseMarket { market, actor, .. } => change_status(
            state,
            *market,
            &[MarketStatus::Open, MarketStatus::Suspended],
            MarketStatus::Closed,
            "",
            actor,
            ctx,
            now,
        ),
        Command::WithdrawSelection { market, selection, deduction_pence, actor, .. } => {
            crate::settlement::withdraw_selection(state, *market, *selection, *deduction_pence, actor, ctx, now)
        }
        Command::SettleMarket { market, results, actor, .. } => {
            crate::settlement::settle_market(state, *market, results, actor, ctx, now)
        }
        Command::ResettleMarket { market, results, reason, actor, .. } => {
            crate::settlement::resettle_market(state, *market, results, reason, actor, ctx, now)
        }
        Command::VoidMarket { market, reason, actor, .. } => {
            crate::settlement::void_market(state, *market, reason, actor, ctx, now)
        }
        Command::PlaceBet(place) => crate::betting::place_bet(state, place, now),
        Command::ResolvePending => crate::betting::resolve_pending(state, now),
        // Applied bet by bet before dispatch (`place_bets`); never reaches here.
        Command::PlaceBets(_) => Err(ResultCode::BatchSizeInvalid),
        Command::CashOut { account, bet, value, quoted_versions, .. } => {
            crate::betting::cash_out(state, *account, *bet, *value, quoted_versions, now)
        }
        Command::SetConfig { config, actor, .. } => set_config(state, config, actor, ctx, now),
        Command::CreatePrincipal { name, role, accounts, actor, .. } => {
            crate::auth::create_principal(state, name, *role, accounts, actor, ctx, now)
        }
        Command::BindAccount { principal, account, actor, .. } => {
            crate::auth::bind_account(state, principal, *account, actor, ctx, now)
        }
        Command::IssueKey { id, principal, hash, ttl_ms, actor, .. } => {
            crate::auth::issue_key(state, *id, principal, *hash, *ttl_ms, actor, ctx, now)
        }
        Command::RevokeKey { id, actor, .. } => crate::auth::revoke_key(state, *id, actor, ctx, now),
        Command::OpenIncident { kind, node, cause, actor, .. } => {
            crate::incident::open_incident(state, *kind, *node, cause, actor, ctx, now)
        }
        Command::CloseIncident { incident, resolution, actor, .. } => {
            crate::incident::close_incident(state, *incident, resolution, actor, ctx, now)
        }
        Command::ReserveBetIds { from, reason, actor, .. } => reserve_bet_ids(state, *from, reason, actor, ctx, now),
        Command::ArchiveSettled { before, markets_max, actor, .. } => {
            archive_settled(state, *before, *markets_max, actor, ctx, now)
        }
        #[cfg(feature = "next-format")]
        Command::ActivateFormat { .. } => Ok(Done::Ok),
    }
}

/// Moves settled history into an archive segment (see [`crate::archive`]). The node that
/// applies it builds the same segment first, from the same state, to keep it on disk.
fn archive_settled(
    state: &mut State,
    before: TimestampMs,
    markets_max: u32,
    actor: &Actor,
    ctx: ApplyCtx,
    now: TimestampMs,
) -> Handled {
    check_actor(actor)?;
    if markets_max == 0 || markets_max > crate::archive::ARCHIVE_MARKETS_MAX {
        return Err(ResultCode::ConfigInvalid);
    }
    let segment = state.archive_segment(before, markets_max, ctx.log_index);
    if segment.markets.is_empty() {
        return Ok(Done::Ok);
    }
    state.remove_archived(&segment, now);
    let event = AuditEvent::HistoryArchived {
        before,
        markets: segment.markets.len() as u32,
        bets: segment.bets.len() as u64,
        digest: segment.digest(),
    };
    state.audit.push(ctx.log_index, now, actor.clone(), event);
    Ok(Done::Ok)
}

/// After a disaster-recovery promotion: bets are numbered from `from` on, so that no id the
/// lost site may have given after the promoted point is ever issued again. A floor at or below
/// the next id would reserve nothing: refused.
fn reserve_bet_ids(
    state: &mut State,
    from: BetId,
    reason: &str,
    actor: &Actor,
    ctx: ApplyCtx,
    now: TimestampMs,
) -> Handled {
    check_operator(actor, reason)?;
    if from.0 <= state.bet_id_next {
        return Err(ResultCode::ConfigInvalid);
    }
    let was = BetId(state.bet_id_next);
    state.bet_id_next = from.0;
    let event = AuditEvent::BetIdsReserved { from: was, to: from, reason: reason.to_string() };
    state.audit.push(ctx.log_index, now, actor.clone(), event);
    Ok(Done::Ok)
}

/// One side of a double-entry posting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Book {
    /// A player's available money.
    Wallet(AccountId),
    /// A player's stakes on open and pending bets.
    Reserved(AccountId),
    /// What a player owes after a resettlement.
    Debt(AccountId),
    /// The house's betting result.
    House(Currency),
    /// Deposits and withdrawals clearing.
    Clearing(Currency),
}

/// What a broken-invariant message names: words, not `Debug` text.
impl std::fmt::Display for Book {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Book::Wallet(account) => write!(f, "the wallet of account {account}"),
            Book::Reserved(account) => write!(f, "the reserved stakes of account {account}"),
            Book::Debt(account) => write!(f, "the debt of account {account}"),
            Book::House(currency) => write!(f, "the house book in {currency}"),
            Book::Clearing(currency) => write!(f, "the clearing book in {currency}"),
        }
    }
}

impl State {
    fn book_balance(&mut self, book: Book) -> (&mut Money, Currency) {
        match book {
            Book::Wallet(a) | Book::Reserved(a) | Book::Debt(a) => {
                let acc = self.accounts.get_mut(&a).expect("posting to an account that exists");
                let currency = acc.currency;
                let slot = match book {
                    Book::Wallet(_) => &mut acc.wallet,
                    Book::Reserved(_) => &mut acc.reserved,
                    _ => &mut acc.debt,
                };
                (slot, currency)
            }
            Book::House(c) | Book::Clearing(c) => {
                let house = self.house.entry(c).or_default();
                let slot = if matches!(book, Book::House(_)) { &mut house.book } else { &mut house.clearing };
                (slot, c)
            }
        }
    }

    /// Moves `amount` from `from` to `to`. Callers validate first; an overflow, a currency
    /// mismatch or a player balance driven negative here is a bug, and the replica stops
    /// rather than carry a broken book.
    pub(crate) fn post(&mut self, from: Book, to: Book, amount: Money) {
        assert!(amount.0 >= 0, "negative posting of {} minor units from {from} to {to}", amount.0);
        if amount.0 == 0 {
            return;
        }
        let (slot, from_currency) = self.book_balance(from);
        *slot = slot.checked_sub(amount).expect("posting overflow (debit)");
        let debit_after = *slot;
        let (slot, to_currency) = self.book_balance(to);
        *slot = slot.checked_add(amount).expect("posting overflow (credit)");
        assert_eq!(from_currency, to_currency, "posting across currencies, from {from} to {to}");
        if matches!(from, Book::Wallet(_) | Book::Reserved(_)) && !crate::faults::skip_funds_check() {
            assert!(debit_after.0 >= 0, "{from} went negative: {} minor units", debit_after.0);
        }
    }

    /// Pays what the wallet can towards the account's debt.
    pub(crate) fn repay_debt(&mut self, account: AccountId) {
        self.accounts.get_mut(&account).expect("repaying for an account that exists").repay_debt();
    }

    /// Records deposit or loss activity for limit windows, dropping what no window can see.
    pub(crate) fn record_activity(&mut self, account: AccountId, now: TimestampMs, deposit: Money, loss: Money) {
        self.accounts
            .get_mut(&account)
            .expect("activity on an account that exists")
            .record_activity(now, deposit, loss);
    }
}

impl Account {
    /// Pays what the wallet can towards the debt: a posting from the wallet to the debt book,
    /// of at most what either holds, so neither can overflow or go negative.
    pub(crate) fn repay_debt(&mut self) {
        let repay = self.wallet.0.min(-self.debt.0);
        if repay > 0 {
            self.wallet.0 -= repay;
            self.debt.0 += repay;
        }
    }

    /// Adds a new bet to the account's index of bets.
    pub(crate) fn index_bet(&mut self, bet: BetId) {
        // Most accounts place few bets: a first push would take room for four.
        if self.bets.capacity() == 0 {
            self.bets.reserve_exact(1);
        }
        self.bets.push(bet);
    }

    /// Holds `amount` of the wallet as a stake: [`State::post`] from `Book::Wallet` to
    /// `Book::Reserved` of this account, with its checks, for a caller that holds the account.
    pub(crate) fn reserve(&mut self, amount: Money) {
        assert!(amount.0 >= 0, "negative stake of {} minor units reserved", amount.0);
        self.wallet = self.wallet.checked_sub(amount).expect("posting overflow (debit)");
        self.reserved = self.reserved.checked_add(amount).expect("posting overflow (credit)");
        if !crate::faults::skip_funds_check() {
            assert!(self.wallet.0 >= 0, "player wallet went negative: {} minor units", self.wallet.0);
        }
    }

    /// Records deposit or loss activity for limit windows, dropping what no window can see.
    pub(crate) fn record_activity(&mut self, now: TimestampMs, deposit: Money, loss: Money) {
        self.forget_old_activity(now);
        match self.activity.back_mut() {
            // Merge with the newest entry at the same instant: keeps a busy account's history short.
            Some(last) if last.at == now => {
                last.deposit = last.deposit.checked_add(deposit).expect("activity totals bounded by balances");
                last.loss = last.loss.checked_add(loss).expect("activity totals bounded by balances");
            }
            _ => {
                // Most accounts hold one to three entries: growing by one up to four takes
                // what they use, where the first push would take room for four.
                if self.activity.len() == self.activity.capacity() && self.activity.len() < 4 {
                    self.activity.reserve_exact(1);
                }
                self.activity.push_back(Activity { at: now, deposit, loss })
            }
        }
    }
}

/// The limit in force at `now`, taking a due pending increase into account.
pub(crate) fn limit_in_force(limit: &Limit, now: TimestampMs) -> Option<Money> {
    match limit.pending {
        Some((amount, due)) if due <= now => amount,
        _ => limit.amount,
    }
}

/// Sum of `field` over the account's activity within `window` ending at `now`.
pub(crate) fn window_total(
    acc: &Account,
    window: LimitWindow,
    now: TimestampMs,
    field: fn(&Activity) -> Money,
) -> i128 {
    let start = now.0.saturating_sub(window.length_ms());
    acc.activity.iter().filter(|a| a.at.0 > start).map(|a| i128::from(field(a).0)).sum()
}

/// Refuses when the account is self-excluded or in a time-out at `now`.
pub(crate) fn check_not_excluded(acc: &Account, now: TimestampMs) -> Result<(), ResultCode> {
    match acc.excluded_until {
        Some((ExclusionKind::SelfExclusion, until)) if now < until => Err(ResultCode::SelfExcluded),
        Some((ExclusionKind::TimeOut, until)) if now < until => Err(ResultCode::TimedOut),
        _ => Ok(()),
    }
}

/// Refuses when adding `amount` to the `kind` total of any window would pass a limit.
pub(crate) fn check_limits(acc: &Account, kind: LimitKind, amount: Money, now: TimestampMs) -> Result<(), ResultCode> {
    let code = match kind {
        LimitKind::Deposit => ResultCode::DepositLimitExceeded,
        LimitKind::Loss => ResultCode::LossLimitReached,
    };
    let field: fn(&Activity) -> Money = match kind {
        LimitKind::Deposit => |a| a.deposit,
        LimitKind::Loss => |a| a.loss,
    };
    for window in LimitWindow::ALL {
        let Some(limit) = acc.limits.get(&(kind, window)).and_then(|l| limit_in_force(l, now)) else {
            continue;
        };
        if window_total(acc, window, now, field) + i128::from(amount.0) > i128::from(limit.0) {
            return Err(code);
        }
    }
    Ok(())
}

fn open_account(state: &mut State, account: AccountId, currency: Currency) -> Handled {
    if !currency.is_valid() {
        return Err(ResultCode::CurrencyInvalid);
    }
    if state.accounts.contains_key(&account) {
        return Err(ResultCode::AccountExists);
    }
    state.house.entry(currency).or_default();
    state.accounts.insert(
        account,
        Account {
            currency,
            wallet: Money::ZERO,
            reserved: Money::ZERO,
            debt: Money::ZERO,
            stake_factor_permille: 1000,
            limits: BTreeMap::new(),
            activity: Default::default(),
            excluded_until: None,
            bets: Vec::new(),
        },
    );
    Ok(Done::AccountOpened { account })
}

fn deposit(state: &mut State, account: AccountId, amount: Money, now: TimestampMs) -> Handled {
    let acc = state.accounts.get(&account).ok_or(ResultCode::AccountNotFound)?;
    if amount.0 <= 0 {
        return Err(ResultCode::AmountMustBePositive);
    }
    check_not_excluded(acc, now)?;
    check_limits(acc, LimitKind::Deposit, amount, now)?;
    let clearing = state.house.get(&acc.currency).map(|h| h.clearing).unwrap_or_default();
    // Every total this deposit touches must stay inside i64, including the activity window.
    if acc.wallet.checked_add(amount).is_none()
        || clearing.checked_sub(amount).is_none()
        || acc.activity.iter().try_fold(amount, |t, a| t.checked_add(a.deposit)).is_none()
    {
        return Err(ResultCode::AmountOverflow);
    }
    let currency = acc.currency;
    state.post(Book::Clearing(currency), Book::Wallet(account), amount);
    state.record_activity(account, now, amount, Money::ZERO);
    state.repay_debt(account);
    Ok(Done::Transferred { account, balance: state.accounts[&account].wallet })
}

fn withdraw(state: &mut State, account: AccountId, amount: Money) -> Handled {
    let acc = state.accounts.get(&account).ok_or(ResultCode::AccountNotFound)?;
    if amount.0 <= 0 {
        return Err(ResultCode::AmountMustBePositive);
    }
    if acc.wallet < amount {
        return Err(ResultCode::InsufficientFunds);
    }
    let clearing = state.house.get(&acc.currency).map(|h| h.clearing).unwrap_or_default();
    if clearing.checked_add(amount).is_none() {
        return Err(ResultCode::AmountOverflow);
    }
    let currency = acc.currency;
    state.post(Book::Wallet(account), Book::Clearing(currency), amount);
    Ok(Done::Transferred { account, balance: state.accounts[&account].wallet })
}

fn set_limit(
    state: &mut State,
    account: AccountId,
    kind: LimitKind,
    window: LimitWindow,
    amount: Option<Money>,
    ctx: ApplyCtx,
    now: TimestampMs,
) -> Handled {
    let cooling_off_ms = state.config.limit_cooling_off_ms;
    let acc = state.accounts.get_mut(&account).ok_or(ResultCode::AccountNotFound)?;
    if amount.is_some_and(|a| a.0 <= 0) {
        return Err(ResultCode::LimitInvalid);
    }
    let slot = acc.limits.entry((kind, window)).or_insert(Limit { amount: None, pending: None });
    let current = limit_in_force(slot, now);
    let is_decrease = match (amount, current) {
        (Some(new), Some(old)) => new <= old,
        (Some(_), None) => true,
        (None, None) => true,
        (None, Some(_)) => false,
    };
    // A decrease protects the player and applies at once; an increase (or removal) waits out
    // the cooling-off period so that a decision taken in the heat of a losing run can lapse.
    let effective_at = if is_decrease {
        *slot = Limit { amount, pending: None };
        now
    } else {
        let due = now.plus_ms(cooling_off_ms);
        *slot = Limit { amount: current, pending: Some((amount, due)) };
        due
    };
    state.audit.push(
        ctx.log_index,
        now,
        Actor(format!("account:{account}")),
        AuditEvent::LimitChanged { account, kind, window, amount, effective_at },
    );
    Ok(Done::Ok)
}

fn exclude(
    state: &mut State,
    account: AccountId,
    kind: ExclusionKind,
    duration_days: u32,
    ctx: ApplyCtx,
    now: TimestampMs,
) -> Handled {
    let acc = state.accounts.get_mut(&account).ok_or(ResultCode::AccountNotFound)?;
    let allowed = match kind {
        ExclusionKind::SelfExclusion => SELF_EXCLUSION_DAYS_MIN..=SELF_EXCLUSION_DAYS_MAX,
        ExclusionKind::TimeOut => 1..=TIME_OUT_DAYS_MAX,
    };
    if !allowed.contains(&duration_days) {
        return Err(ResultCode::LimitInvalid);
    }
    let until = now.plus_ms(u64::from(duration_days) * DAY_MS);
    // A break can be extended or turned into a self-exclusion, never shortened.
    let (kind, until) = match acc.excluded_until {
        Some((old_kind, old_until)) if old_until > now && old_until >= until => {
            let stronger = if old_kind == ExclusionKind::SelfExclusion { old_kind } else { kind };
            (stronger, old_until)
        }
        _ => (kind, until),
    };
    acc.excluded_until = Some((kind, until));
    state.audit.push(
        ctx.log_index,
        now,
        Actor(format!("account:{account}")),
        AuditEvent::Excluded { account, kind, until },
    );
    Ok(Done::Ok)
}

fn check_actor(actor: &Actor) -> Result<(), ResultCode> {
    check_operator(actor, "")
}

/// An operator command's actor and its free-text reason obey the ledger's one rule for text.
pub(crate) fn check_operator(actor: &Actor, reason: &str) -> Result<(), ResultCode> {
    if actor.0.is_empty() || !text_is_valid(&actor.0) || !text_is_valid(reason) {
        Err(ResultCode::TextInvalid)
    } else {
        Ok(())
    }
}

fn set_stake_factor(
    state: &mut State,
    account: AccountId,
    factor_permille: u32,
    actor: &Actor,
    ctx: ApplyCtx,
    now: TimestampMs,
) -> Handled {
    check_actor(actor)?;
    let acc = state.accounts.get_mut(&account).ok_or(ResultCode::AccountNotFound)?;
    if !(1..=10_000).contains(&factor_permille) {
        return Err(ResultCode::LimitInvalid);
    }
    acc.stake_factor_permille = factor_permille;
    state.audit.push(ctx.log_index, now, actor.clone(), AuditEvent::StakeFactorChanged { account, factor_permille });
    Ok(Done::Ok)
}

#[allow(clippy::too_many_arguments)]
fn create_event(
    state: &mut State,
    event: EventId,
    texts: [&String; 3],
    starts_at: TimestampMs,
    actor: &Actor,
    ctx: ApplyCtx,
    now: TimestampMs,
) -> Handled {
    check_actor(actor)?;
    if texts.iter().any(|t| t.is_empty() || !text_is_valid(t)) {
        return Err(ResultCode::TextInvalid);
    }
    if state.events.contains_key(&event) {
        return Err(ResultCode::EventExists);
    }
    let [name, sport, competition] = texts;
    state.events.insert(
        event,
        Event {
            name: name.clone(),
            sport: sport.clone(),
            competition: competition.clone(),
            starts_at,
            markets: Vec::new(),
        },
    );
    state.audit.push(ctx.log_index, now, actor.clone(), AuditEvent::EventCreated { event });
    Ok(Done::Ok)
}

fn rules_are_valid(rules: &MarketRules) -> bool {
    let each_way_ok = rules.each_way.is_none_or(|t| {
        t.fraction_num >= 1 && t.fraction_num <= t.fraction_den && t.fraction_den <= 100 && (1..=10).contains(&t.places)
    });
    rules.stake_min.0 > 0
        && rules.stake_max >= rules.stake_min
        && rules.payout_max.0 > 0
        && rules.liability_max.0 >= 0
        && rules.bet_delay_ms <= BET_DELAY_MS_MAX
        && each_way_ok
}

#[allow(clippy::too_many_arguments)]
fn create_market(
    state: &mut State,
    market: MarketId,
    event: EventId,
    name: &str,
    currency: Currency,
    selections: &[NewSelection],
    rules: &MarketRules,
    actor: &Actor,
    ctx: ApplyCtx,
    now: TimestampMs,
) -> Handled {
    check_actor(actor)?;
    if name.is_empty()
        || !text_is_valid(name)
        || selections.iter().any(|s| s.name.is_empty() || !text_is_valid(&s.name))
    {
        return Err(ResultCode::TextInvalid);
    }
    if !currency.is_valid() {
        return Err(ResultCode::CurrencyInvalid);
    }
    if !state.events.contains_key(&event) {
        return Err(ResultCode::EventNotFound);
    }
    if state.markets.contains_key(&market) {
        return Err(ResultCode::MarketExists);
    }
    if selections.is_empty() || selections.len() > MARKET_SELECTIONS_MAX {
        return Err(ResultCode::SelectionCountInvalid);
    }
    let mut seen = std::collections::BTreeSet::new();
    for s in selections {
        if !seen.insert(s.selection) || state.selection_market.contains_key(&s.selection) {
            return Err(ResultCode::SelectionExists);
        }
        if !s.odds.is_valid() {
            return Err(ResultCode::OddsInvalid);
        }
    }
    if !rules_are_valid(rules) {
        return Err(ResultCode::MarketRulesInvalid);
    }
    let selection_map: BTreeMap<SelectionId, Selection> = selections
        .iter()
        .map(|s| {
            (
                s.selection,
                Selection {
                    name: s.name.clone(),
                    odds: s.odds,
                    price_version: 1,
                    withdrawn: false,
                    liability: Money::ZERO,
                },
            )
        })
        .collect();
    for s in selections {
        state.selection_market.insert(s.selection, market);
    }
    state.house.entry(currency).or_default();
    state.events.get_mut(&event).expect("checked above").markets.push(market);
    state.markets.insert(
        market,
        Market {
            event,
            name: name.to_string(),
            currency,
            status: MarketStatus::Open,
            rules: rules.clone(),
            selections: selection_map,
            withdrawals: Vec::new(),
            suspensions: 0,
            results: BTreeMap::new(),
            result_version: 0,
            bets: Vec::new(),
        },
    );
    state.audit.push(ctx.log_index, now, actor.clone(), AuditEvent::MarketCreated { market });
    Ok(Done::Ok)
}

#[allow(clippy::too_many_arguments)]
fn change_status(
    state: &mut State,
    market: MarketId,
    from_allowed: &[MarketStatus],
    to: MarketStatus,
    reason: &str,
    actor: &Actor,
    ctx: ApplyCtx,
    now: TimestampMs,
) -> Handled {
    check_operator(actor, reason)?;
    let m = state.markets.get_mut(&market).ok_or(ResultCode::MarketNotFound)?;
    let from = m.status;
    if !from_allowed.contains(&from) {
        return Err(ResultCode::MarketStateInvalid);
    }
    m.status = to;
    if to == MarketStatus::Suspended {
        m.suspensions += 1;
    }
    state.audit.push(
        ctx.log_index,
        now,
        actor.clone(),
        AuditEvent::MarketStatusChanged { market, from, to, reason: reason.to_string() },
    );
    Ok(Done::Ok)
}

fn set_config(state: &mut State, config: &BookConfig, actor: &Actor, ctx: ApplyCtx, now: TimestampMs) -> Handled {
    check_actor(actor)?;
    let valid = config.cash_out_margin_bps <= 5_000
        && config.limit_cooling_off_ms <= 30 * DAY_MS
        && (DAY_MS..=400 * DAY_MS).contains(&config.idempotency_ttl_ms)
        && (10_000..=DAY_MS).contains(&config.clock_step_max_ms);
    if !valid {
        return Err(ResultCode::ConfigInvalid);
    }
    state.config = config.clone();
    state.audit.push(ctx.log_index, now, actor.clone(), AuditEvent::ConfigChanged);
    Ok(Done::Ok)
}
