//! A regulator export (DOMAIN.md R6) for a time range, read from a backup chain: the chain is
//! the complete history (a snapshot and every committed entry after it), so it holds what the
//! nodes' memory no longer does — settled history archived out of the state, every money
//! movement, the audit trail — and it is checked file by file and by state hash as it is
//! replayed (the same checks as `paddock backup verify`).
//!
//! What the export holds, for entries stamped in `[since, until)`:
//! - every bet placed, as it stood at the end of the range (or when it was archived);
//! - every money movement: per command and per account it touched, the change of the wallet,
//!   of the stakes held and of the debt (each command's effect on each account exactly, found
//!   by comparing the account before and after the command);
//! - the audit trail from its first record to the end of the range, so that it verifies from
//!   the start of the hash chain (`paddock audit verify --file`) and its head can be compared
//!   with a node's live trail.

use crate::{read_manifest, replay, replay_chain_with, Key, Point};
use anyhow::{bail, Context, Result};
use paddock_consensus::backup::DecodedEntry;
use paddock_ledger::audit::AuditRecord;
use paddock_ledger::{AccountId, BetId, BetView, Command, Currency, State, StateHash, TimestampMs};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// One command's effect on one account, in minor units.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Movement {
    /// The command's log index.
    pub log_index: u64,
    /// Its leader timestamp.
    pub at: TimestampMs,
    /// The account.
    pub account: AccountId,
    /// The account's currency.
    pub currency: Currency,
    /// What moved it: `deposit`, `withdrawal`, `place_bet`, `settle_market`, ...
    pub cause: &'static str,
    /// Change of the available balance.
    pub wallet: i64,
    /// Change of the stakes held on open and pending bets.
    pub reserved: i64,
    /// Change of the debt (negative: more owed).
    pub debt: i64,
}

/// What [`export`] read.
pub struct Export {
    /// Bets placed in the range, by id, as they stood at its end (or when archived).
    pub bets: Vec<BetView>,
    /// Money movements in the range, in log order.
    pub movements: Vec<Movement>,
    /// The audit trail from its first record to the end of the range.
    pub audit: Vec<AuditRecord>,
    /// How many of those records are stamped inside the range.
    pub audit_in_range: usize,
    /// Log entries stamped inside the range.
    pub entries: u64,
    /// The last log index replayed (the end of the range, or of the chain).
    pub last_index: u64,
    /// The state hash there.
    pub state_hash: StateHash,
    /// The book clock of the chain's snapshot: the earliest time the chain can export from.
    pub chain_starts_at: TimestampMs,
}

fn cause(command: &Command) -> &'static str {
    match command {
        Command::OpenAccount { .. } => "open_account",
        Command::Deposit { .. } => "deposit",
        Command::Withdraw { .. } => "withdrawal",
        Command::PlaceBet(_) => "place_bet",
        Command::PlaceBets(_) => "place_bets",
        Command::ResolvePending => "in_play_delay_ended",
        Command::CashOut { .. } => "cash_out",
        Command::SettleMarket { .. } => "settle_market",
        Command::ResettleMarket { .. } => "resettle_market",
        Command::VoidMarket { .. } => "void_market",
        _ => "other",
    }
}

type Balances = (Currency, i64, i64, i64);

fn balances(state: &State, account: AccountId) -> Option<Balances> {
    state.account(account).map(|a| (a.currency, a.balance.0, a.exposure.0, a.debt.0))
}

/// Reads the chain in `dir` (decrypted with `key` if sealed) and gathers the export for
/// entries stamped at or after `since_ms` and before `until_ms`. Refuses a range that starts
/// before the chain's snapshot (an older chain holds it) or is empty.
pub fn export(dir: &Path, key: Option<&Key>, since_ms: u64, until_ms: u64) -> Result<Export> {
    if since_ms >= until_ms {
        bail!("the range is empty: --since ({since_ms}) must be before --until ({until_ms})");
    }
    let manifest = read_manifest(dir)?
        .with_context(|| format!("{} holds no backup chain ({} is missing)", dir.display(), crate::MANIFEST))?;
    let mut placed: BTreeSet<BetId> = BTreeSet::new();
    let mut archived: BTreeMap<BetId, BetView> = BTreeMap::new();
    let mut movements = Vec::new();
    let mut entries = 0u64;
    let mut chain_start: Option<TimestampMs> = None;
    let mut apply_entry = |state: &mut State, entry: &DecodedEntry| {
        chain_start.get_or_insert(state.clock());
        let Some((time, command)) = &entry.command else { return };
        if time.0 < since_ms {
            replay(state, entry);
            return;
        }
        entries += 1;
        let touched: Vec<(AccountId, Option<Balances>)> =
            state.accounts_touched(command).into_iter().map(|a| (a, balances(state, a))).collect();
        let next_bet = state.next_bet_id();
        if let Command::ArchiveSettled { before, markets_max, .. } = command {
            // What leaves memory here: keep the views of the range's bets among it.
            let segment = state.archive_segment(*before, *markets_max, entry.id.index);
            archived.extend(segment.bets.into_iter().filter(|b| placed.contains(&b.bet)).map(|b| (b.bet, b)));
        }
        replay(state, entry);
        placed.extend((next_bet.0..state.next_bet_id().0).map(BetId));
        for (account, was) in touched {
            let Some(now) = balances(state, account) else { continue };
            let was = was.unwrap_or((now.0, 0, 0, 0));
            let delta = (now.1 - was.1, now.2 - was.2, now.3 - was.3);
            if delta != (0, 0, 0) {
                movements.push(Movement {
                    log_index: entry.id.index,
                    at: *time,
                    account,
                    currency: now.0,
                    cause: cause(command),
                    wallet: delta.0,
                    reserved: delta.1,
                    debt: delta.2,
                });
            }
        }
    };
    let replayed = replay_chain_with(dir, &manifest, Point::Time(until_ms.saturating_sub(1)), key, &mut apply_entry)
        .map_err(|e| {
            if e.to_string().contains("before this chain's snapshot") {
                anyhow::anyhow!(
                    "the range ends before this chain begins: export it from an older chain (paddock backup verify \
                     --from <chain> shows where each chain starts)"
                )
            } else {
                e
            }
        })?;
    let starts_at = chain_start.unwrap_or(replayed.state.clock());
    if since_ms < starts_at.0 {
        bail!(
            "this chain begins at book time {} ms, after --since {since_ms}: what came before is in an older chain; \
             export from it, or start the range at or after {}",
            starts_at.0,
            starts_at.0
        );
    }
    let state = &replayed.state;
    let bets = placed.iter().filter_map(|b| state.bet(*b).or_else(|| archived.get(b).cloned())).collect();
    let audit: Vec<AuditRecord> = state.audit().records().to_vec();
    let audit_in_range = audit.iter().filter(|r| r.at.0 >= since_ms).count();
    Ok(Export {
        bets,
        movements,
        audit,
        audit_in_range,
        entries,
        last_index: replayed.last.index,
        state_hash: state.state_hash(),
        chain_starts_at: starts_at,
    })
}

/// SHA-256 of `bytes` in lower-case hex: what an export's manifest records for each file.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    crate::hex(&Sha256::digest(bytes))
}
