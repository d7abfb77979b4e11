//! Settled history out of memory (`history_retention_s`, `history_interval_s`): every
//! interval the leader asks the cluster to archive markets resulted more than the retention
//! ago (`Command::ArchiveSettled`, a share of markets at a time so that no apply is long),
//! and every node indexes the archive segments it wrote, so that an account's archived bets
//! page like its live ones (`GET /v1/accounts/{id}/bets`) and an archived bet is still found
//! by id (`GET /v1/bets/{id}`).
//!
//! A node that installed a snapshot taken after an `ArchiveSettled` lacks that segment: it
//! fetches it from a peer (`ForwardOp::ArchiveSegment`) and keeps it only if its SHA-256 is the
//! digest its own audit trail records.
//!
//! Metrics: `paddock_archive_segments_missing` (segments the audit trail records that this
//! node's disk still lacks; the history is in the other replicas' archives and in the backup
//! chain), `paddock_archive_segments_fetched_total`, `paddock_state_bets` (bets in memory).

use crate::App;
use paddock_consensus::Role;
use paddock_ledger::{Actor, Command, IdempotencyKey, TimestampMs};
use std::time::Duration;
use tokio::sync::watch;

/// Markets one `ArchiveSettled` moves at most. Every write waits behind an apply, so a share
/// is kept small: 20 markets of 1,000 bets each take about 0.1 s to select, write and apply
/// (BENCHMARKS.md, "Settled history").
pub const ARCHIVE_SHARE_MARKETS: u32 = 20;
/// The bets a share aims at: fewer markets go at once when they are big (a cup final's market
/// may hold hundreds of thousands of bets). A single market bigger than this still goes whole.
pub const ARCHIVE_SHARE_BETS: usize = 20_000;

/// The markets the next share asks for, given what a share of `markets_max` would move
/// (`markets`, `bets`): as many as keep it near [`ARCHIVE_SHARE_BETS`], at least one.
pub(crate) fn share_markets(markets_max: u32, markets: usize, bets: usize) -> u32 {
    if bets <= ARCHIVE_SHARE_BETS || markets <= 1 {
        return markets_max;
    }
    let fitting = markets.saturating_mul(ARCHIVE_SHARE_BETS) / bets;
    (fitting.max(1) as u32).min(markets_max)
}
/// Commands one check sends at most (up to 2,000 markets a check); what is left waits for the
/// next interval.
const SHARES_PER_CHECK_MAX: usize = 100;
/// Missing segments one check fetches from peers at most.
const FETCHES_PER_CHECK_MAX: usize = 10;

/// Starts the job; it stops when `stop` turns true.
pub(crate) fn spawn(app: App, stop: watch::Receiver<bool>) {
    let period = Duration::from_secs(app.config.history_interval_s);
    tokio::spawn(crate::jobs::every(period, stop, move || {
        let app = app.clone();
        Box::pin(async move {
            if app.config.history_retention_s > 0 && app.consensus.status().role == Role::Leader {
                archive_due(&app).await;
            }
            index(&app).await;
        })
    }));
}

/// On the leader: archives, a share at a time, what is older than the retention.
async fn archive_due(app: &App) {
    let now = (app.clock)();
    let before = TimestampMs(now.0.saturating_sub(app.config.history_retention_s.saturating_mul(1_000)));
    for _ in 0..SHARES_PER_CHECK_MAX {
        let (markets_max, applied) = app.consensus.read(|d| {
            let (markets, bets) = d.state.archive_share_size(before, ARCHIVE_SHARE_MARKETS);
            let markets_max = if markets == 0 { 0 } else { share_markets(ARCHIVE_SHARE_MARKETS, markets, bets) };
            (markets_max, d.last_applied.map_or(0, |l| l.index))
        });
        if markets_max == 0 {
            return;
        }
        // One key per share: the applied index names the state the share was chosen from.
        let key = IdempotencyKey(format!("archive-{}-{applied}", before.0));
        let command =
            Command::ArchiveSettled { before, markets_max, actor: Actor(format!("node-{}", app.config.node_id)), key };
        if let Err(e) = app.consensus.write(command).await {
            tracing::warn!(error = %e, "could not archive settled history; trying again next interval");
            return;
        }
    }
}

/// On every node: fetches the segments it lacks from its peers, indexes new segments and
/// publishes what is still missing.
async fn index(app: &App) {
    let missing = app.consensus.archive_missing();
    for index in missing.into_iter().take(FETCHES_PER_CHECK_MAX) {
        match app.consensus.fetch_archive_segment(index).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(index, "no peer has a copy of this archive segment that matches the audit trail")
            }
            Err(e) => tracing::error!(index, error = %e, "cannot fetch an archive segment"),
        }
    }
    let consensus = app.consensus.clone();
    let result = tokio::task::spawn_blocking(move || {
        let indexed = consensus.index_archive()?;
        Ok::<_, std::io::Error>((indexed, consensus.archive_missing()))
    })
    .await;
    match result {
        Ok(Ok((indexed, missing))) => {
            if indexed > 0 {
                tracing::info!(bets = indexed, "indexed archived bets");
            }
            if !missing.is_empty() {
                tracing::warn!(
                    segments = missing.len(),
                    first = missing[0],
                    "this node lacks archive segments the audit trail records and no peer has sent them yet: their \
                     bets are served by the other replicas and kept in the backup chain"
                );
            }
            metrics::gauge!("paddock_archive_segments_missing").set(missing.len() as f64);
        }
        Ok(Err(e)) => tracing::error!(error = %e, "cannot index the archive"),
        Err(e) => tracing::error!(error = %e, "the archive indexer stopped"),
    }
    metrics::gauge!("paddock_state_bets").set(app.consensus.read(|d| d.state.bet_count()) as f64);
}

/// Up to `limit` archived bets of `account` with ids above `after`, from this node's index.
pub(crate) async fn archived_bets_of(
    app: &App,
    account: paddock_ledger::AccountId,
    after: u64,
    limit: usize,
) -> std::io::Result<Vec<paddock_ledger::BetView>> {
    let consensus = app.consensus.clone();
    tokio::task::spawn_blocking(move || consensus.archived_bets_of(account, after, limit))
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))?
}

/// One archived bet, from this node's index.
pub(crate) async fn archived_bet(
    app: &App,
    bet: paddock_ledger::BetId,
) -> std::io::Result<Option<paddock_ledger::BetView>> {
    let consensus = app.consensus.clone();
    tokio::task::spawn_blocking(move || consensus.archived_bet(bet))
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_share_of_big_markets_asks_for_fewer_of_them_and_never_for_none() {
        assert_eq!(share_markets(20, 20, 20_000), 20, "small markets: the whole share");
        assert_eq!(share_markets(20, 20, 200_000), 2, "10,000 bets a market: two at a time");
        assert_eq!(share_markets(20, 20, 4_000_000), 1, "200,000 bets a market: one at a time");
        assert_eq!(share_markets(20, 1, 900_000), 20, "one market alone goes whole");
        assert_eq!(share_markets(20, 3, 30_000), 2);
    }
}
