//! What backups and restores need from the replicated log, in its own records.
//!
//! - On a running node: the latest snapshot as its file ([`Consensus::backup_snapshot`]) and the
//!   committed log entries after an index ([`Consensus::backup_log`]), read without pausing
//!   writes. A follower serves them as well as the leader.
//! - Offline (`paddock backup verify`, `paddock restore`): decoding those bytes back
//!   ([`decode_snapshot`], [`decode_entry`]) so that a chain can be replayed onto its snapshot
//!   with the ledger's own `apply`, and seeding a fresh data directory from a replayed state
//!   ([`seed_data_dir`]) so that new nodes start from it as if they had purged their log
//!   behind a snapshot.
//!
//! Nothing here names openraft: everything is in the versioned `*Record` types.

use crate::records::{
    self, EntryRecord, LogIdRecord, MembershipRecord, PayloadRecord, SnapshotMetaRecord, StoredMembershipRecord,
    VoteRecord,
};
use crate::types::Request;
use crate::Consensus;
use paddock_ledger::{Command, State, StateHash, TimestampMs};
use paddock_storage::{DataDir, Identity, LogStore, MetaKey, SnapshotFiles};
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::Path;

/// Why committed log entries cannot be read for a backup.
#[derive(Debug, thiserror::Error)]
pub enum BackupLogError {
    /// The entries asked for were purged behind a snapshot on this node.
    #[error("the log before index {first_available} has been purged on this node (behind a snapshot)")]
    Purged {
        /// The first index this node still has.
        first_available: u64,
    },
    /// Reading the log failed.
    #[error("cannot read the raft log: {0}")]
    Io(#[from] io::Error),
    /// The cluster's commit point could not be confirmed (no leader, no quorum): retry.
    #[error("cannot confirm the cluster's commit point now: {0}")]
    Unconfirmed(#[from] crate::ReadError),
}

impl Consensus {
    /// The index of this node's newest snapshot, `None` before the first (cheap: what a caller
    /// polls before it reads the file with [`Consensus::backup_snapshot`]).
    pub fn snapshot_index(&self) -> Option<u64> {
        self.inner.sm.snapshot_index()
    }

    /// The latest snapshot, as the bytes of its file (magic, version, CRC, checked on the way),
    /// and its index; `None` before the first snapshot or if its file cannot be read intact
    /// (logged). Reads the file from disk: blocking work, to be run off the async runtime.
    pub fn backup_snapshot(&self) -> Option<(u64, Vec<u8>)> {
        match self.inner.sm.snapshot_file_bytes() {
            Ok(found) => found,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the latest snapshot file for a backup");
                None
            }
        }
    }

    /// Committed entries from `from` on, at most `limit`, each as its stored record bytes (an
    /// [`EntryRecord`]), in order and without gaps.
    ///
    /// After a read-index barrier: a follower learns of a commit a moment after the leader, so
    /// without it an increment taken from a follower could end before writes the leader had
    /// already acknowledged when the increment began (the restore drill caught one). After it,
    /// this node has applied everything committed when it was asked, and its commit index
    /// covers those writes.
    pub async fn backup_log(&self, from: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, BackupLogError> {
        self.linearize().await?;
        let purged = match self.inner.log.read_meta(MetaKey::Purged)? {
            Some(bytes) => Some(records::decode::<LogIdRecord>(&bytes)?.index),
            None => None,
        };
        if let Some(purged) = purged.filter(|p| from <= *p) {
            return Err(BackupLogError::Purged { first_available: purged + 1 });
        }
        let committed = self.status().commit_index;
        let end = committed.saturating_add(1).min(from.saturating_add(limit as u64));
        Ok(self.inner.log.read_range(from, end)?)
    }
}

/// A snapshot read back from its file.
pub struct DecodedSnapshot {
    /// The last log entry it includes: index, and the term and node of the leader that wrote it.
    pub last: LogIdRecord,
    /// The state at that entry.
    pub state: State,
}

/// Reads a snapshot file's bytes (as [`Consensus::backup_snapshot`] gave them); `name` is used
/// in errors.
pub fn decode_snapshot(name: &Path, bytes: &[u8]) -> io::Result<DecodedSnapshot> {
    let (_, meta, data) = SnapshotFiles::parse(name, bytes)?;
    let state = State::decode_snapshot(data).map_err(|e| named(name, e))?;
    Ok(DecodedSnapshot { last: last_entry(name, meta)?, state })
}

/// What a backup records of a snapshot file, read without decoding the book.
pub struct SnapshotSummary {
    /// The last log entry it includes.
    pub last: LogIdRecord,
    /// Its state hash and the book's clock.
    pub summary: paddock_ledger::SnapshotSummary,
}

/// Reads a snapshot file's bytes (as [`Consensus::backup_snapshot`] gave them) for its last
/// entry, state hash and clock, checking every checksum but decoding only its metadata (see
/// `State::summarize_snapshot`): what a full backup records, at the speed of a hash.
pub fn summarize_snapshot(name: &Path, bytes: &[u8]) -> io::Result<SnapshotSummary> {
    let (_, meta, data) = SnapshotFiles::parse(name, bytes)?;
    let summary = State::summarize_snapshot(data).map_err(|e| named(name, e))?;
    Ok(SnapshotSummary { last: last_entry(name, meta)?, summary })
}

/// A snapshot file of `state` as of entry `last`, as [`decode_snapshot`] reads it, with no
/// membership (it seeds no node: a backup chain keeps its replayed tip this way), and the
/// state hash, computed on the way. Built in one allocation of its exact size.
pub fn encode_snapshot_file(state: &State, last: LogIdRecord) -> io::Result<(Vec<u8>, StateHash)> {
    let membership = MembershipRecord { configs: Vec::new(), nodes: BTreeMap::new() };
    let meta = SnapshotMetaRecord {
        last_log_id: Some(last),
        membership: StoredMembershipRecord { log_id: Some(last), membership },
    };
    let meta = records::encode(&meta);
    crate::state_machine::stream_state(state, |len, fill| SnapshotFiles::encode_streamed(last.index, &meta, len, fill))
}

/// The last log entry a snapshot file includes, from its metadata.
fn last_entry(name: &Path, meta: &[u8]) -> io::Result<LogIdRecord> {
    let meta: SnapshotMetaRecord = records::decode(meta)?;
    meta.last_log_id.ok_or_else(|| named(name, "a snapshot of an empty log"))
}

fn named(name: &Path, e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", name.display()))
}

/// One log entry read back.
pub struct DecodedEntry {
    /// Its id.
    pub id: LogIdRecord,
    /// The command and its leader timestamp; `None` for a blank or membership entry, which
    /// changes nothing in the book.
    pub command: Option<(TimestampMs, Command)>,
}

/// Reads one entry's record bytes (as [`Consensus::backup_log`] gave them).
pub fn decode_entry(bytes: &[u8]) -> io::Result<DecodedEntry> {
    let record: EntryRecord = records::decode(bytes)?;
    let command = match record.payload {
        PayloadRecord::Normal(Request { time, command }) => Some((time, command)),
        PayloadRecord::Blank | PayloadRecord::Membership(_) => None,
    };
    Ok(DecodedEntry { id: record.log_id, command })
}

/// Applies one decoded entry to `state` exactly as every replica did.
pub fn replay(state: &mut State, entry: &DecodedEntry) {
    if let Some((time, command)) = &entry.command {
        if crate::faults::restore_skips_deposits(command) {
            return;
        }
        paddock_ledger::apply(state, command, paddock_ledger::ApplyCtx { log_index: entry.id.index, time: *time });
    }
}

/// Fails if a running node holds `dir` (its lock): a restore must never replace the data of a
/// live node.
pub fn ensure_not_in_use(dir: &Path) -> io::Result<()> {
    match DataDir::open(dir) {
        Ok(_) => Ok(()),
        Err(e) => Err(io::Error::other(format!("{}: {e}", dir.display()))),
    }
}

/// Makes `dir` (absent or empty) the data directory of node `node_id` of a new cluster
/// `cluster_id` whose voters are `members` (id → peer address), holding `state` as of log
/// entry `last`: an identity, a snapshot at `last` with that membership, and a log purged up
/// to `last`. The node starts as if it had applied the log to `last` and purged it; with every
/// member seeded alike, they elect a leader and go on from `last + 1`. Returns the state hash
/// of what it wrote, computed on the way.
pub fn seed_data_dir(
    dir: &Path,
    cluster_id: &str,
    node_id: u64,
    members: &BTreeMap<u64, String>,
    state: &State,
    last: LogIdRecord,
) -> io::Result<StateHash> {
    if !members.contains_key(&node_id) {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("node {node_id} is not among the members")));
    }
    if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} is not empty: restore only into a new, empty data directory", dir.display()),
        ));
    }
    let data_dir = DataDir::open(dir).map_err(|e| io::Error::other(e.to_string()))?;
    data_dir
        .claim(&Identity { cluster_id: cluster_id.to_string(), node_id })
        .map_err(|e| io::Error::other(e.to_string()))?;
    let membership =
        MembershipRecord { configs: vec![members.keys().copied().collect::<BTreeSet<u64>>()], nodes: members.clone() };
    let meta = SnapshotMetaRecord {
        last_log_id: Some(last),
        membership: StoredMembershipRecord { log_id: Some(last), membership },
    };
    let files = SnapshotFiles::open(&dir.join(crate::SNAPSHOT_DIR))?;
    let state_hash = crate::state_machine::write_state(&files, last.index, &records::encode(&meta), state)?;
    let log = LogStore::open(&dir.join(crate::LOG_FILE))?;
    log.read_entry_versions_up_to(paddock_ledger::ENTRY_FORMAT);
    log.save_meta_durable(MetaKey::Purged, &records::encode(&last))?;
    log.save_meta_durable(MetaKey::Committed, &records::encode(&last))?;
    // A vote in the restored term, so that the first election is for a later one: a leader
    // of an earlier term would write entries whose ids go backwards.
    log.save_meta_durable(
        MetaKey::Vote,
        &records::encode(&VoteRecord { term: last.term, node: node_id, committed: false }),
    )?;
    Ok(state_hash)
}

/// A stopped node's book as its data directory holds it: its latest intact snapshot with the
/// log entries after it that the node knew to be committed replayed onto it.
pub struct LocalBook {
    /// The directory's owner: cluster and node.
    pub identity: Identity,
    /// The state after `last`.
    pub state: State,
    /// The last entry the book includes (none: an empty log and no snapshot).
    pub last: Option<LogIdRecord>,
    /// Entries in the log after `last`: written here but not known committed, so left out
    /// (they may never have been acknowledged to anyone).
    pub left_out: u64,
}

/// Reads a stopped node's data directory (the `paddock dr promote` source). Fails if a node
/// runs on it (its lock), if it is not a data directory, or if its log has a gap.
pub fn read_data_dir(dir: &Path) -> io::Result<LocalBook> {
    let named = |e: &dyn std::fmt::Display| io::Error::other(format!("{}: {e}", dir.display()));
    if !dir.join("IDENTITY").exists() || !dir.join(crate::LOG_FILE).exists() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{} is not a paddock data directory (no IDENTITY or {})", dir.display(), crate::LOG_FILE),
        ));
    }
    let data_dir = DataDir::open(dir).map_err(|e| named(&e))?;
    let identity = data_dir.identity().map_err(|e| named(&e))?.ok_or_else(|| named(&"no identity"))?;
    let mut damaged = Vec::new();
    let snapshot = SnapshotFiles::open(&dir.join(crate::SNAPSHOT_DIR))?
        .latest(|path, e| damaged.push(format!("{}: {e}", path.display())))?;
    for why in &damaged {
        tracing::warn!(snapshot = %why, "a damaged snapshot was skipped; an older one and the log are used");
    }
    let (mut state, mut last) = match snapshot {
        Some(file) => {
            let name = dir.join(crate::SNAPSHOT_DIR);
            let state = State::decode_snapshot(&file.data).map_err(|e| self::named(&name, e))?;
            (state, Some(last_entry(&name, &file.meta)?))
        }
        None => (State::new(), None),
    };
    let log = LogStore::open(&dir.join(crate::LOG_FILE))?;
    log.read_entry_versions_up_to(paddock_ledger::ENTRY_FORMAT);
    let committed = match log.read_meta(MetaKey::Committed)? {
        Some(bytes) => Some(records::decode::<LogIdRecord>(&bytes)?.index),
        None => None,
    };
    // openraft's first entry (the initial membership) has index 0.
    let first = last.map_or(0, |l| l.index + 1);
    if let Some(upto) = committed.filter(|c| *c >= first) {
        for (index, bytes) in log.read_range(first, upto + 1)? {
            let expected = last.map_or(0, |l| l.index + 1);
            if index != expected {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: the log has no entry {expected} (the next is {index})", dir.display()),
                ));
            }
            let entry = decode_entry(&bytes)?;
            replay(&mut state, &entry);
            last = Some(entry.id);
        }
        if last.is_none_or(|l| l.index < upto) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: entries up to {upto} are committed but the log ends before", dir.display()),
            ));
        }
    }
    let left_out = match (log.last()?, last) {
        (Some((end, _)), Some(l)) => end.saturating_sub(l.index),
        (Some((end, _)), None) => end + 1,
        (None, _) => 0,
    };
    Ok(LocalBook { identity, state, last, left_out })
}
