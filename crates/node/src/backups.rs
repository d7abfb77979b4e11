//! The node's own backup schedule (`backup_dir`, `backup_interval_s`, `backup_chains_kept`,
//! `backup_new_chain_days`, `backup_keep_days`, `backup_key_file` to encrypt):
//! every interval the node adds an increment of its committed log to the newest chain under
//! `backup_dir` (`chain-<UTC ms when it began>`), starting a new chain — a full backup — when
//! there is none, when the newest began `backup_new_chain_days` ago, or when the log it needs
//! has been purged. Retention deletes whole chains only, so no chain is ever left with a gap:
//! those beyond `backup_chains_kept` (oldest first) and those whose last backup is older than
//! `backup_keep_days` — never the one in use. The chain format and checks are
//! `paddock_backup`'s, the same as `paddock backup`'s.
//!
//! With `backup_s3`, every run then copies the chains off-site (`paddock_backup::remote::mirror`):
//! the files a chain gained, its manifest last, and the deletion of chains retention dropped.
//! A failed copy fails nothing local; the next run sends what is missing.
//!
//! Metrics: `paddock_backup_configured`, `paddock_backup_last_success_timestamp_seconds`,
//! `paddock_backup_duration_seconds`, `paddock_backup_chain_bytes`, `paddock_backup_failures_total`,
//! `paddock_backup_offsite_last_success_timestamp_seconds`, `paddock_backup_offsite_failures_total`;
//! the alerts `PaddockBackupStale` and `PaddockBackupOffsiteStale` read them.

use crate::App;
use paddock_backup::{Key, LogFetchError, Source, TakeError};
use paddock_consensus::backup::BackupLogError;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The node itself as the source of its chain.
struct Local<'a>(&'a App);

impl Source for Local<'_> {
    async fn cluster_id(&self) -> anyhow::Result<String> {
        Ok(self.0.consensus.status().cluster_id)
    }

    async fn snapshot(&self) -> anyhow::Result<Vec<u8>> {
        if self.0.consensus.snapshot_index().is_none() {
            self.0.consensus.snapshot_now().await.map_err(|e| anyhow::anyhow!("cannot take a snapshot: {e}"))?;
            for _ in 0..600 {
                if self.0.consensus.snapshot_index().is_some() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let consensus = self.0.consensus.clone();
        tokio::task::spawn_blocking(move || consensus.backup_snapshot())
            .await?
            .map(|(_, bytes)| bytes)
            .ok_or_else(|| anyhow::anyhow!("no intact snapshot yet"))
    }

    async fn log(&self, from: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, LogFetchError> {
        match self.0.consensus.backup_log(from, limit).await {
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
    // Built once, at start, so that missing credentials stop the node with what to set (the
    // URL itself was checked with the configuration).
    let offsite = app
        .config
        .backup_s3
        .as_deref()
        .map(|url| -> anyhow::Result<_> {
            let (bucket, prefix) = paddock_backup::remote::Location::bucket(url)?;
            Ok(Arc::new(paddock_backup::remote::Remote::from_env(&bucket, &prefix)?))
        })
        .transpose()?;
    metrics::gauge!("paddock_backup_configured").set(1.0);
    metrics::gauge!("paddock_backup_offsite_configured").set(if offsite.is_some() { 1.0 } else { 0.0 });
    let period = Duration::from_secs(app.config.backup_interval_s);
    tokio::spawn(crate::jobs::every(period, stop, move || {
        let (app, root, key, offsite) = (app.clone(), root.clone(), key.clone(), offsite.clone());
        Box::pin(async move {
            run_once(&app, &root, key.as_ref()).await;
            if let Some(offsite) = offsite {
                copy_offsite(&app, &root, &offsite).await;
            }
        })
    }));
    Ok(())
}

/// Copies the chains under `root` to the bucket ([`paddock_backup::remote::mirror`]).
async fn copy_offsite(app: &App, root: &Path, offsite: &paddock_backup::remote::Remote) {
    let chains = match chains(root) {
        Ok(chains) => chains,
        Err(e) => {
            metrics::counter!("paddock_backup_offsite_failures_total").increment(1);
            tracing::error!(error = %e, "cannot list the backup chains to copy off-site");
            return;
        }
    };
    let named: Vec<(String, PathBuf)> = chains
        .into_iter()
        .filter_map(|(_, dir)| Some((dir.file_name()?.to_string_lossy().into_owned(), dir)))
        .collect();
    match paddock_backup::remote::mirror(offsite, &named).await {
        Ok(done) => {
            metrics::gauge!("paddock_backup_offsite_last_success_timestamp_seconds")
                .set((app.clock)().0 as f64 / 1000.0);
            if !done.copied.is_empty() || !done.deleted.is_empty() {
                tracing::info!(copied = %done.copied.join(", "), deleted = %done.deleted.join(", "), "backup chains copied off-site");
            }
        }
        Err(e) => {
            metrics::counter!("paddock_backup_offsite_failures_total").increment(1);
            tracing::error!(error = %format!("{e:#}"), "cannot copy the backup chains off-site: the next run tries again");
        }
    }
}

async fn run_once(app: &App, root: &Path, key: Option<&Key>) {
    let started = std::time::Instant::now();
    let now_ms = (app.clock)().0;
    let rotate_after_ms = app.config.backup_new_chain_days.saturating_mul(DAY_MS);
    let outcome = match newest_chain(root) {
        Ok(Some((began_ms, _))) if now_ms.saturating_sub(began_ms) >= rotate_after_ms => {
            tracing::info!("the newest backup chain is backup_new_chain_days old: starting a new one");
            new_chain(app, root, key).await
        }
        Ok(Some((_, chain))) => match paddock_backup::take(&Local(app), &chain, key).await {
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
            // Only the chain in use grows: the tips of the others are dead weight.
            for (_, chain) in chains(root).unwrap_or_default() {
                if chain != taken.dir {
                    let _ = std::fs::remove_file(chain.join(paddock_backup::TIP));
                }
            }
            let keep_ms = app.config.backup_keep_days.map(|d| d.saturating_mul(DAY_MS));
            prune(root, Retention { chains: app.config.backup_chains_kept, max_age_ms: keep_ms }, &taken.dir, now_ms);
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

/// A day in milliseconds.
const DAY_MS: u64 = 86_400_000;

/// Chain directories under `root` with the UTC ms each began, oldest first (their names sort by
/// start time).
fn chains(root: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
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
    Ok(found)
}

fn newest_chain(root: &Path) -> std::io::Result<Option<(u64, PathBuf)>> {
    Ok(chains(root)?.pop())
}

/// What retention keeps.
#[derive(Clone, Copy, Debug)]
struct Retention {
    /// At most this many chains.
    chains: usize,
    /// No chain whose last backup is older than this (ms); `None`: no age bound.
    max_age_ms: Option<u64>,
}

/// When a chain last gained a file: its manifest's modification time (UTC ms).
fn last_backup_ms(chain: &Path) -> Option<u64> {
    let modified = std::fs::metadata(chain.join(paddock_backup::MANIFEST)).and_then(|m| m.modified()).ok()?;
    modified.duration_since(std::time::UNIX_EPOCH).ok().map(|d| d.as_millis() as u64)
}

/// Deletes whole chains beyond `keep` — the oldest beyond its count, and any whose last backup
/// is older than its age — never `in_use`; returns what it deleted.
fn prune(root: &Path, keep: Retention, in_use: &Path, now_ms: u64) -> Vec<PathBuf> {
    let Ok(all) = chains(root) else { return Vec::new() };
    let excess = all.len().saturating_sub(keep.chains.max(1));
    let mut deleted = Vec::new();
    for (i, (_, chain)) in all.into_iter().enumerate() {
        if chain == in_use {
            continue;
        }
        let too_many = i < excess;
        let too_old = keep
            .max_age_ms
            .is_some_and(|max| last_backup_ms(&chain).is_none_or(|last| now_ms.saturating_sub(last) > max));
        if !(too_many || too_old) {
            continue;
        }
        let why = if too_many { "backup_chains_kept" } else { "backup_keep_days" };
        match std::fs::remove_dir_all(&chain) {
            Ok(()) => {
                tracing::info!(chain = %chain.display(), rule = why, "old backup chain deleted");
                deleted.push(chain);
            }
            Err(e) => tracing::warn!(chain = %chain.display(), error = %e, "cannot delete an old backup chain"),
        }
    }
    deleted
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    /// A chain that began at `began_ms` and last gained a file `age_days` ago.
    fn chain(root: &Path, began_ms: u64, age_days: u64) -> PathBuf {
        let dir = root.join(format!("chain-{began_ms}"));
        std::fs::create_dir_all(&dir).unwrap();
        let manifest = std::fs::File::create(dir.join(paddock_backup::MANIFEST)).unwrap();
        manifest.set_modified(SystemTime::now() - Duration::from_secs(age_days * 86_400)).unwrap();
        dir
    }

    fn now_ms() -> u64 {
        SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
    }

    #[test]
    fn chains_beyond_the_count_go_oldest_first_and_the_one_in_use_stays() {
        let root = tempfile::tempdir().unwrap();
        let old = [chain(root.path(), 1_000, 3), chain(root.path(), 2_000, 2)];
        let newest = chain(root.path(), 3_000, 1);
        let deleted = prune(root.path(), Retention { chains: 1, max_age_ms: None }, &newest, now_ms());
        assert_eq!(deleted, old.to_vec());
        assert!(newest.exists());
    }

    #[test]
    fn chains_last_backed_up_longer_ago_than_the_age_bound_go_whole_within_the_count() {
        let root = tempfile::tempdir().unwrap();
        let too_old = chain(root.path(), 1_000, 15);
        let recent = chain(root.path(), 2_000, 3);
        let newest = chain(root.path(), 3_000, 0);
        let deleted = prune(root.path(), Retention { chains: 10, max_age_ms: Some(14 * DAY_MS) }, &newest, now_ms());
        assert_eq!(deleted, vec![too_old]);
        assert!(recent.exists() && newest.exists());
    }

    #[test]
    fn the_chain_in_use_is_never_deleted_however_old() {
        let root = tempfile::tempdir().unwrap();
        let only = chain(root.path(), 1_000, 400);
        let deleted = prune(root.path(), Retention { chains: 1, max_age_ms: Some(DAY_MS) }, &only, now_ms());
        assert!(deleted.is_empty());
        assert!(only.exists());
    }
}
