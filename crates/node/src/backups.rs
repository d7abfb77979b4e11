//! The node's own backup schedule (`backup_dir`, `backup_interval_s`, `backup_chains_kept`,
//! `backup_key_file` to encrypt):
//! every interval the node adds an increment of its committed log to the newest chain under
//! `backup_dir` (`chain-<UTC ms when it began>`), starting a new chain — a full backup — when
//! there is none or when the log the newest one needs has been purged; chains beyond
//! `backup_chains_kept` are deleted oldest first, never the one in use. The chain format and
//! checks are `paddock_backup`'s, the same as `paddock backup`'s.
//!
//! Metrics: `paddock_backup_configured`, `paddock_backup_last_success_timestamp_seconds`,
//! `paddock_backup_duration_seconds`, `paddock_backup_chain_bytes`, `paddock_backup_failures_total`;
//! the alert `PaddockBackupStale` reads them.

use crate::App;
use paddock_backup::{Key, LogFetchError, Source, TakeError};
use paddock_consensus::backup::BackupLogError;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The node itself as the source of its chain.
struct Local<'a>(&'a App);

impl Source for Local<'_> {
    async fn cluster_id(&self) -> anyhow::Result<String> {
        Ok(self.0.consensus.status().cluster_id)
    }

    async fn snapshot(&self) -> anyhow::Result<Vec<u8>> {
        if self.0.consensus.backup_snapshot().is_none() {
            self.0.consensus.snapshot_now().await.map_err(|e| anyhow::anyhow!("cannot take a snapshot: {e}"))?;
            for _ in 0..600 {
                if self.0.consensus.backup_snapshot().is_some() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        self.0.consensus.backup_snapshot().map(|(_, bytes)| bytes).ok_or_else(|| anyhow::anyhow!("no snapshot yet"))
    }

    async fn log(&self, from: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, LogFetchError> {
        match self.0.consensus.backup_log(from, limit) {
            Ok(entries) => Ok(entries),
            Err(e @ BackupLogError::Purged { .. }) => Err(LogFetchError::Purged(e.to_string())),
            Err(e) => Err(LogFetchError::Other(e.into())),
        }
    }
}

/// Starts the schedule if `backup_dir` is set; an unreadable `backup_key_file` stops the node
/// from starting (backups it could not encrypt must not be written in the clear).
pub(crate) fn spawn(app: App, stop: tokio::sync::watch::Receiver<bool>) -> anyhow::Result<()> {
    let Some(root) = app.config.backup_dir.clone() else {
        metrics::gauge!("paddock_backup_configured").set(0.0);
        return Ok(());
    };
    let key = match &app.config.backup_key_file {
        Some(file) => Some(Key::from_file(file)?),
        None => None,
    };
    metrics::gauge!("paddock_backup_configured").set(1.0);
    let period = Duration::from_secs(app.config.backup_interval_s);
    tokio::spawn(crate::jobs::every(period, stop, move || {
        let (app, root, key) = (app.clone(), root.clone(), key.clone());
        Box::pin(async move { run_once(&app, &root, key.as_ref()).await })
    }));
    Ok(())
}

async fn run_once(app: &App, root: &Path, key: Option<&Key>) {
    let started = std::time::Instant::now();
    let outcome = match newest_chain(root) {
        Ok(Some(chain)) => match paddock_backup::take(&Local(app), &chain, key).await {
            Err(TakeError::Purged(why)) => {
                tracing::warn!(chain = %chain.display(), why = %why, "the backup chain cannot go on: starting a new one");
                new_chain(app, root, key).await
            }
            other => other.map_err(|e| e.to_string()),
        },
        Ok(None) => new_chain(app, root, key).await,
        Err(e) => Err(format!("cannot list {}: {e}", root.display())),
    };
    match outcome {
        Ok(taken) => {
            metrics::gauge!("paddock_backup_last_success_timestamp_seconds").set((app.clock)().0 as f64 / 1000.0);
            metrics::histogram!("paddock_backup_duration_seconds").record(started.elapsed().as_secs_f64());
            metrics::gauge!("paddock_backup_chain_bytes").set(taken.chain_bytes as f64);
            tracing::info!(
                chain = %taken.dir.display(),
                last_index = taken.last_index,
                entries = taken.entries_added,
                "backup taken"
            );
            prune(root, app.config.backup_chains_kept, &taken.dir);
        }
        Err(why) => {
            metrics::counter!("paddock_backup_failures_total").increment(1);
            tracing::error!(error = %why, "the scheduled backup failed");
        }
    }
}

async fn new_chain(app: &App, root: &Path, key: Option<&Key>) -> Result<paddock_backup::Taken, String> {
    let chain = root.join(format!("chain-{}", (app.clock)().0));
    paddock_backup::take(&Local(app), &chain, key).await.map_err(|e| e.to_string())
}

/// Chain directories under `root`, oldest first (their names sort by start time).
fn chains(root: &Path) -> std::io::Result<Vec<PathBuf>> {
    if !root.exists() {
        return Ok(Vec::new());
    }
    let mut found: Vec<(u64, PathBuf)> = std::fs::read_dir(root)?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_prefix("chain-").and_then(|ms| ms.parse().ok()).map(|ms: u64| (ms, e.path()))
        })
        .collect();
    found.sort();
    Ok(found.into_iter().map(|(_, p)| p).collect())
}

fn newest_chain(root: &Path) -> std::io::Result<Option<PathBuf>> {
    Ok(chains(root)?.pop())
}

/// Deletes the oldest chains beyond `keep`, never `in_use`.
fn prune(root: &Path, keep: usize, in_use: &Path) {
    let Ok(all) = chains(root) else { return };
    let excess = all.len().saturating_sub(keep.max(1));
    for old in all.into_iter().take(excess).filter(|c| c != in_use) {
        match std::fs::remove_dir_all(&old) {
            Ok(()) => tracing::info!(chain = %old.display(), "old backup chain deleted (backup_chains_kept)"),
            Err(e) => tracing::warn!(chain = %old.display(), error = %e, "cannot delete an old backup chain"),
        }
    }
}
