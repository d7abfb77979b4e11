//! openraft's log storage traits over [`paddock_storage::LogStore`].
//!
//! Appends return at once and are reported flushed by the storage writer after the fsync of
//! the group-commit transaction that holds them; vote, truncate and purge wait for their own
//! fsync. Blocking waits run on tokio's blocking pool so that RaftCore's task is never parked
//! on a disk.

use crate::records::{self, EntryRecord, LogIdRecord, VoteRecord};
use crate::types::{Entry, LogId, TypeConfig, Vote};
use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::OptionalSend;
use paddock_storage::{LogStore, MetaKey};
use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};

/// The Raft log as openraft sees it.
#[derive(Clone)]
pub struct LogAdapter {
    store: LogStore,
    io: crate::IoMode,
}

impl LogAdapter {
    /// Wraps an open log store.
    pub fn new(store: LogStore, io: crate::IoMode) -> LogAdapter {
        LogAdapter { store, io }
    }

    fn read_log_id_meta(&self, key: MetaKey) -> io::Result<Option<LogId>> {
        match self.store.read_meta(key)? {
            None => Ok(None),
            Some(bytes) => Ok(Some(records::decode::<LogIdRecord>(&bytes)?.into())),
        }
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(LogStore) -> io::Result<T> + Send + 'static,
    ) -> io::Result<T> {
        let store = self.store.clone();
        match self.io {
            // Inline: the store commits in the caller, so `f` never blocks on another thread.
            crate::IoMode::Inline => f(store),
            // The seam itself: the one place this file may use the blocking pool (clippy.toml).
            #[allow(clippy::disallowed_methods)]
            crate::IoMode::Threads => {
                tokio::task::spawn_blocking(move || f(store)).await.map_err(|e| io::Error::other(e.to_string()))?
            }
        }
    }
}

fn decode_entry(bytes: &[u8]) -> io::Result<Entry> {
    records::decode::<EntryRecord>(bytes)?.into_entry()
}

impl RaftLogReader<TypeConfig> for LogAdapter {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        let start = match range.start_bound() {
            Bound::Included(s) => *s,
            Bound::Excluded(s) => s + 1,
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(e) => e.saturating_add(1),
            Bound::Excluded(e) => *e,
            Bound::Unbounded => u64::MAX,
        };
        self.store.read_range(start, end)?.iter().map(|(_, bytes)| decode_entry(bytes)).collect()
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        match self.store.read_meta(MetaKey::Vote)? {
            None => Ok(None),
            Some(bytes) => Ok(Some(records::decode::<VoteRecord>(&bytes)?.into())),
        }
    }
}

impl RaftLogStorage<TypeConfig> for LogAdapter {
    type LogReader = LogAdapter;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let last_purged_log_id = self.read_log_id_meta(MetaKey::Purged)?;
        let last = match self.store.last()? {
            Some((_, bytes)) => Some(decode_entry(&bytes)?.log_id),
            None => None,
        };
        Ok(LogState { last_log_id: last.or(last_purged_log_id), last_purged_log_id })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        let bytes = records::encode(&VoteRecord::from(vote));
        self.blocking(move |s| s.save_meta_durable(MetaKey::Vote, &bytes)).await
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        // Ordered with the log writes but not waited for: losing it in a crash only means a
        // restart waits for the leader before re-applying, never a wrong state.
        if let Some(id) = committed {
            self.store.save_meta(MetaKey::Committed, &records::encode(&LogIdRecord::from(&id)));
        }
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        self.read_log_id_meta(MetaKey::Committed)
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<TypeConfig>) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        // Each entry framed at the format its command needs: an older build reading this log
        // refuses the entries it could not decode instead of misreading them.
        let encoded: Vec<(u64, u8, Vec<u8>)> = entries
            .into_iter()
            .map(|e| (e.log_id.index, crate::formats::entry_format(&e), records::encode(&EntryRecord::from(&e))))
            .collect();
        self.store.append_versioned(encoded, Box::new(move |result| callback.io_completed(result)));
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let after = last_log_id.map(|id| id.index);
        self.blocking(move |s| s.truncate_after(after)).await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        let bytes = records::encode(&LogIdRecord::from(&log_id));
        let upto = log_id.index;
        self.blocking(move |s| s.purge(upto, &bytes)).await
    }
}
