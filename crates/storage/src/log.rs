//! The Raft log on redb, with group commit.
//!
//! One writer thread owns every write. Callers enqueue operations (append, save vote, save
//! committed, truncate, purge) on one channel; the writer takes whatever is queued — up to a
//! batch limit — applies it in order inside one redb write transaction and commits it with one
//! fsync (`Durability::Immediate`). Only then does it report each append durable. Under load
//! many appends share one fsync; alone, an append waits for exactly one.
//!
//! An appended entry must be readable at once (Raft replicates it before it is durable), so
//! entries wait in an in-memory `pending` map until their transaction commits. Readers look in
//! `pending` first and in redb second; in that order, an entry moving from one to the other is
//! never missed.
//!
//! Values are framed ([`crate::frame`]) and checked on every read: a damaged entry is an
//! error, never data.

use crate::disk::{BoxedBackend, Disk, StdDisk};
use crate::frame;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::collections::BTreeMap;
use std::io;
use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

/// Frame kind of a log entry value.
pub const KIND_LOG_ENTRY: u8 = 1;
/// Frame kind of a meta value.
pub const KIND_META: u8 = 2;
const FORMAT_VERSION: u8 = 1;
/// Why [`LogStore::scan`] refused the log: an entry framed at a newer version than the caller
/// reads (a newer build wrote it). The inner error of the `io::ErrorKind::Unsupported` it
/// returns, so that a caller tells it from any other failure by type.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NewerEntry(pub String);

/// The frame version of a log entry written by [`LogStore::append`]: the caller's first entry
/// format. A caller with newer entry formats writes each entry at its own version
/// ([`LogStore::append_versioned`]) and reads up to [`LogStore::read_entry_versions_up_to`].
pub const ENTRY_VERSION_FIRST: u8 = 1;
/// Most operations one transaction takes; bounds the latency a large queue adds to the first.
const BATCH_OPS_MAX: usize = 1024;

/// The small records kept beside the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetaKey {
    /// The Raft vote (term and candidate).
    Vote,
    /// The highest index known committed (lets a restart re-apply without waiting for a leader).
    Committed,
    /// The last purged log id: the log's lower bound after a purge.
    Purged,
    /// The storage-repair marker: written when damaged entries were discarded, removed when
    /// they have been fetched again from the peers (see `paddock_consensus::repair`).
    Repair,
}

impl MetaKey {
    fn name(self) -> &'static str {
        match self {
            MetaKey::Vote => "vote",
            MetaKey::Committed => "committed",
            MetaKey::Purged => "purged",
            MetaKey::Repair => "repair",
        }
    }
}

/// Called once with the outcome of a queued write.
pub type Done = Box<dyn FnOnce(io::Result<()>) + Send>;

enum Op {
    Append { entries: Vec<(u64, u64, Arc<[u8]>)>, done: Done },
    Meta { key: MetaKey, value: Vec<u8>, done: Option<Done> },
    TruncateAfter { after: Option<u64>, done: Done },
    Purge { upto: u64, purged: Vec<u8>, done: Done },
    Discard { discard: Discard, done: Done },
}

/// What a storage repair removes and records, in one durable transaction.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Discard {
    /// Delete every entry from this index on (`Some(0)`: the whole log).
    pub entries_from: Option<u64>,
    /// Delete every entry up to and including this index (the part a snapshot covers).
    pub entries_upto: Option<u64>,
    /// Meta records to delete.
    pub remove: Vec<MetaKey>,
    /// Meta records to write (unframed values; framed here).
    pub write: Vec<(MetaKey, Vec<u8>)>,
}

/// What a scan of the whole log found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogScan {
    /// The first and last index stored from the scan's start on, damaged or not.
    pub first: Option<u64>,
    /// See `first`.
    pub last: Option<u64>,
    /// The first entry that is damaged (its frame fails its checks) or missing (a hole in
    /// the sequence), and what is wrong with it.
    pub damaged: Option<(u64, String)>,
}

/// Appended but not yet committed: index → (generation of the append, framed bytes).
type Pending = BTreeMap<u64, (u64, Arc<[u8]>)>;

struct Shared {
    db: Database,
    pending: Mutex<Pending>,
    generation: AtomicU64,
    poisoned: AtomicBool,
    faults: FaultSwitches,
    /// Moving average of the last group commits (fsync included), µs: what a leader compares
    /// with its followers' to find a slow disk.
    commit_recent_us: AtomicU64,
    /// Test hook: slept before every commit, µs (a slow disk without root).
    injected_delay_us: AtomicU64,
    /// A read found a damaged entry while the node ran (see [`LogStore::damage_read`]).
    damage_read: AtomicBool,
    /// The newest entry frame version this store's caller decodes: an entry framed at a
    /// newer one was written by a newer build and is refused, never taken for damage.
    entry_version_max: std::sync::atomic::AtomicU8,
}

/// How writes reach the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriterMode {
    /// A dedicated writer thread with group commit (production).
    Thread,
    /// Each write is committed in the caller, at once. For the deterministic simulator, where
    /// a thread outside the simulation would make runs unrepeatable.
    Inline,
}

/// Deliberate bugs, for proving that the simulator's checkers catch them. Only settable with
/// the `fault-injection` feature, which production builds never enable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultSwitches {
    /// Report an append durable without fsyncing it (commit with `Durability::None`).
    pub ack_before_fsync: bool,
}

/// The writer thread's handle: dropping the last one closes the queue and joins the thread,
/// so that the database file is closed when the store is.
struct Writer {
    queue: Option<mpsc::Sender<Op>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Inline mode: serialises callers so batches stay ordered.
    inline: Option<Mutex<()>>,
}

impl Drop for Writer {
    fn drop(&mut self) {
        drop(self.queue.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The log store. Cheap to clone; clones share one database and one writer.
#[derive(Clone)]
pub struct LogStore {
    // Declared before `shared` so the writer is joined before the database handle drops.
    writer: Arc<Writer>,
    shared: Arc<Shared>,
}

fn other(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

impl LogStore {
    /// Opens (or creates) the log at `path` on the real disk and starts its writer thread.
    pub fn open(path: &Path) -> io::Result<LogStore> {
        LogStore::open_with(&StdDisk, path, WriterMode::Thread, FaultSwitches::default())
    }

    /// Opens (or creates) the log at `path` on `disk`.
    pub fn open_with(disk: &dyn Disk, path: &Path, mode: WriterMode, faults: FaultSwitches) -> io::Result<LogStore> {
        #[cfg(not(feature = "fault-injection"))]
        assert_eq!(faults, FaultSwitches::default(), "fault switches need the fault-injection feature");
        let backend = BoxedBackend(disk.db_backend(path)?);
        let db = Database::builder().create_with_backend(backend).map_err(other)?;
        {
            let tx = db.begin_write().map_err(other)?;
            tx.open_table(LOG).map_err(other)?;
            tx.open_table(META).map_err(other)?;
            tx.commit().map_err(other)?;
        }
        let shared = Arc::new(Shared {
            db,
            pending: Mutex::new(BTreeMap::new()),
            generation: AtomicU64::new(0),
            poisoned: AtomicBool::new(false),
            faults,
            commit_recent_us: AtomicU64::new(0),
            injected_delay_us: AtomicU64::new(0),
            damage_read: AtomicBool::new(false),
            entry_version_max: std::sync::atomic::AtomicU8::new(ENTRY_VERSION_FIRST),
        });
        let writer = match mode {
            WriterMode::Inline => Writer { queue: None, thread: None, inline: Some(Mutex::new(())) },
            WriterMode::Thread => {
                let (queue, rx) = mpsc::channel();
                let writer_shared = shared.clone();
                let thread = std::thread::Builder::new()
                    .name("raft-log-writer".into())
                    .spawn(move || writer(writer_shared, rx))
                    .map_err(other)?;
                Writer { queue: Some(queue), thread: Some(thread), inline: None }
            }
        };
        Ok(LogStore { writer: Arc::new(writer), shared })
    }

    fn send(&self, op: Op) {
        if let Some(lock) = &self.writer.inline {
            let _ordered = lock.lock().expect("inline writer lock");
            process(&self.shared, vec![op]);
            return;
        }
        let queue = self.writer.queue.as_ref().expect("queue lives as long as the writer handle");
        if let Err(mpsc::SendError(op)) = queue.send(op) {
            // The writer exited: it only does so when every sender is gone, which cannot be
            // while `self` exists, or after a panic. Report the write failed either way.
            fail(op, io::Error::other("raft log writer has stopped"));
        }
    }

    /// Entries framed at versions up to `version` are this caller's to decode (the default is
    /// [`ENTRY_VERSION_FIRST`]); a newer one is refused by [`LogStore::scan`] as another
    /// build's, not reported as damage.
    pub fn read_entry_versions_up_to(&self, version: u8) {
        self.shared.entry_version_max.store(version, Ordering::Relaxed);
    }

    fn entry_version_max(&self) -> u8 {
        self.shared.entry_version_max.load(Ordering::Relaxed)
    }

    /// Queues `entries` (index, unframed bytes) for the disk and makes them readable at once.
    /// `done` runs after the fsync that makes them durable.
    pub fn append(&self, entries: Vec<(u64, Vec<u8>)>, done: Done) {
        self.append_versioned(entries.into_iter().map(|(i, bytes)| (i, ENTRY_VERSION_FIRST, bytes)).collect(), done)
    }

    /// [`LogStore::append`] of entries (index, frame version, unframed bytes) each framed at
    /// its own version: the format its bytes are in, so that an older build reading the log
    /// refuses the entries it cannot decode (see [`LogStore::scan`]) instead of misreading them.
    pub fn append_versioned(&self, entries: Vec<(u64, u8, Vec<u8>)>, done: Done) {
        let generation = self.shared.generation.fetch_add(1, Ordering::Relaxed);
        let framed: Vec<(u64, u64, Arc<[u8]>)> = entries
            .into_iter()
            .map(|(i, version, bytes)| (i, generation, Arc::from(frame::encode(KIND_LOG_ENTRY, version, &bytes))))
            .collect();
        // Readable at once even when the write is bound to fail: openraft may already count
        // them as appended and apply the committed ones before it learns of the failure (an
        // append that vanished made it apply nothing; found by the simulator).
        {
            let mut pending = self.shared.pending.lock().expect("pending lock");
            for (i, g, b) in &framed {
                pending.insert(*i, (*g, b.clone()));
            }
        }
        if self.shared.poisoned.load(Ordering::SeqCst) {
            done(Err(io::Error::other("raft log is poisoned by an earlier write error")));
            return;
        }
        self.send(Op::Append { entries: framed, done });
    }

    /// Writes a meta record and waits until it is durable.
    pub fn save_meta_durable(&self, key: MetaKey, value: &[u8]) -> io::Result<()> {
        let (tx, rx) = mpsc::sync_channel(1);
        let value = frame::encode(KIND_META, FORMAT_VERSION, value);
        self.send(Op::Meta { key, value, done: Some(Box::new(move |r| drop(tx.send(r)))) });
        rx.recv().map_err(|_| io::Error::other("raft log writer has stopped"))?
    }

    /// Writes a meta record in order with the other writes, without waiting.
    pub fn save_meta(&self, key: MetaKey, value: &[u8]) {
        let value = frame::encode(KIND_META, FORMAT_VERSION, value);
        self.send(Op::Meta { key, value, done: None });
    }

    /// Reads a meta record.
    pub fn read_meta(&self, key: MetaKey) -> io::Result<Option<Vec<u8>>> {
        let tx = self.shared.db.begin_read().map_err(other)?;
        let table = tx.open_table(META).map_err(other)?;
        match table.get(key.name()).map_err(other)? {
            None => Ok(None),
            Some(v) => {
                let (_, payload) = frame::decode(KIND_META, FORMAT_VERSION, v.value())?;
                Ok(Some(payload.to_vec()))
            }
        }
    }

    /// Deletes every entry after `after` (all of them for `None`) and waits until durable.
    pub fn truncate_after(&self, after: Option<u64>) -> io::Result<()> {
        {
            let mut pending = self.shared.pending.lock().expect("pending lock");
            let from = after.map_or(Bound::Unbounded, Bound::Excluded);
            let doomed: Vec<u64> = pending.range((from, Bound::Unbounded)).map(|(i, _)| *i).collect();
            for i in doomed {
                pending.remove(&i);
            }
        }
        self.wait(|done| Op::TruncateAfter { after, done })
    }

    /// Records `purged` (the caller's encoding of the last purged id) and then deletes every
    /// entry up to and including `upto`, in one durable transaction.
    pub fn purge(&self, upto: u64, purged: &[u8]) -> io::Result<()> {
        let purged = frame::encode(KIND_META, FORMAT_VERSION, purged);
        self.wait(|done| Op::Purge { upto, purged, done })?;
        metrics::counter!("paddock_raft_log_purges_total").increment(1);
        Ok(())
    }

    /// Storage repair: removes and writes what `discard` says in one durable transaction.
    pub fn discard(&self, discard: Discard) -> io::Result<()> {
        {
            let mut pending = self.shared.pending.lock().expect("pending lock");
            let from = discard.entries_from.unwrap_or(u64::MAX);
            let upto = discard.entries_upto;
            pending.retain(|i, _| *i < from && upto.is_none_or(|u| *i > u));
        }
        self.wait(|done| Op::Discard { discard, done })
    }

    /// Reads the frame of every stored entry from index `from` on, in index order, and
    /// reports the first one that is damaged or missing. Reads the database only (call it
    /// before anything is appended).
    pub fn scan(&self, from: u64) -> io::Result<LogScan> {
        let tx = self.shared.db.begin_read().map_err(other)?;
        let table = tx.open_table(LOG).map_err(other)?;
        let mut scan = LogScan::default();
        for row in table.range(from..).map_err(other)? {
            let (k, v) = row.map_err(other)?;
            let index = k.value();
            scan.first.get_or_insert(index);
            // A newer build's entry is refused wherever it lies, after damage too (the repair
            // would otherwise discard it as part of a damaged suffix); it is not damage.
            let decoded = frame::decode(KIND_LOG_ENTRY, self.entry_version_max(), v.value()).map(|_| ());
            if let Err(e @ frame::FrameError::UnsupportedVersion { .. }) = decoded {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    NewerEntry(format!("raft log entry {index}: {e}")),
                ));
            }
            if scan.damaged.is_none() {
                if let Some(last) = scan.last.filter(|last| last + 1 != index) {
                    scan.damaged = Some((last + 1, format!("missing (the log jumps from {last} to {index})")));
                } else if let Err(e) = decoded {
                    scan.damaged = Some((index, e.to_string()));
                }
            }
            scan.last = Some(index);
        }
        Ok(scan)
    }

    /// Calls `f` with the index and unframed bytes of every stored entry whose frame is
    /// intact, in index order, skipping damaged ones. Reads the database only.
    pub fn visit_intact(&self, f: &mut dyn FnMut(u64, &[u8])) -> io::Result<()> {
        let tx = self.shared.db.begin_read().map_err(other)?;
        let table = tx.open_table(LOG).map_err(other)?;
        for row in table.iter().map_err(other)? {
            let (k, v) = row.map_err(other)?;
            if let Ok((_, payload)) = frame::decode(KIND_LOG_ENTRY, self.entry_version_max(), v.value()) {
                f(k.value(), payload);
            }
        }
        Ok(())
    }

    /// The last index written to the database (entries still waiting for their fsync are
    /// not counted): how far this node's log is durable.
    pub fn durable_last(&self) -> io::Result<Option<u64>> {
        let tx = self.shared.db.begin_read().map_err(other)?;
        let table = tx.open_table(LOG).map_err(other)?;
        let last = table.last().map_err(other)?.map(|(k, _)| k.value());
        Ok(last)
    }

    /// Rot at rest, for the simulator: flips one bit in the stored frame of the entry
    /// `pick` selects (modulo the entries stored), durably, behind the frame's back as a
    /// failing disk would. Returns the damaged index, `None` for an empty log.
    #[cfg(feature = "fault-injection")]
    pub fn rot_entry(&self, pick: u64) -> io::Result<Option<u64>> {
        let tx = self.shared.db.begin_write().map_err(other)?;
        let damaged = {
            let mut log = tx.open_table(LOG).map_err(other)?;
            let keys: Vec<u64> = log
                .iter()
                .map_err(other)?
                .map(|r| r.map(|(k, _)| k.value()))
                .collect::<Result<_, _>>()
                .map_err(other)?;
            if keys.is_empty() {
                None
            } else {
                let index = keys[(pick % keys.len() as u64) as usize];
                let mut bytes = log.get(index).map_err(other)?.map(|v| v.value().to_vec()).unwrap_or_default();
                let at = (pick / 7) as usize % bytes.len().max(1);
                if let Some(byte) = bytes.get_mut(at) {
                    *byte ^= 1 << (pick % 8);
                }
                log.insert(index, &bytes[..]).map_err(other)?;
                Some(index)
            }
        };
        tx.commit().map_err(other)?;
        Ok(damaged)
    }

    fn wait(&self, make: impl FnOnce(Done) -> Op) -> io::Result<()> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.send(make(Box::new(move |r| drop(tx.send(r)))));
        rx.recv().map_err(|_| io::Error::other("raft log writer has stopped"))?
    }

    /// Entries with index in `[start, end)`, unframed, in order. Stops at the first gap.
    pub fn read_range(&self, start: u64, end: u64) -> io::Result<Vec<(u64, Vec<u8>)>> {
        if start >= end {
            return Ok(Vec::new());
        }
        // Pending first, then the database: see the module comment.
        let pending: BTreeMap<u64, Arc<[u8]>> = {
            let p = self.shared.pending.lock().expect("pending lock");
            p.range(start..end).map(|(i, (_, b))| (*i, b.clone())).collect()
        };
        let tx = self.shared.db.begin_read().map_err(other)?;
        let table = tx.open_table(LOG).map_err(other)?;
        let mut merged: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
        for row in table.range(start..end).map_err(other)? {
            let (k, v) = row.map_err(other)?;
            merged.insert(k.value(), v.value().to_vec());
        }
        for (i, b) in pending {
            merged.insert(i, b.to_vec());
        }
        let mut out = Vec::with_capacity(merged.len());
        let mut expect = None;
        for (i, framed) in merged {
            if expect.is_some_and(|e| e != i) {
                break;
            }
            let (_, payload) = frame::decode(KIND_LOG_ENTRY, self.entry_version_max(), &framed).map_err(|e| {
                self.shared.damage_read.store(true, Ordering::SeqCst);
                io::Error::new(io::ErrorKind::InvalidData, format!("raft log entry {i}: {e}"))
            })?;
            out.push((i, payload.to_vec()));
            expect = Some(i + 1);
        }
        Ok(out)
    }

    /// The last entry (index and bytes), if any.
    pub fn last(&self) -> io::Result<Option<(u64, Vec<u8>)>> {
        let pending_last = self.shared.pending.lock().expect("pending lock").last_key_value().map(|(i, _)| *i);
        let tx = self.shared.db.begin_read().map_err(other)?;
        let table = tx.open_table(LOG).map_err(other)?;
        let stored_last = table.last().map_err(other)?.map(|(k, _)| k.value());
        match pending_last.max(stored_last) {
            None => Ok(None),
            Some(i) => Ok(self.read_range(i, i + 1)?.pop()),
        }
    }

    /// Whether a read of an entry found it damaged since the store opened. openraft treats the
    /// read error as fatal and stops; only a restart, which repairs the log, brings the node back.
    pub fn damage_read(&self) -> bool {
        self.shared.damage_read.load(Ordering::SeqCst)
    }

    /// Whether a write has failed (the store refuses writes from then on).
    pub fn is_poisoned(&self) -> bool {
        self.shared.poisoned.load(Ordering::SeqCst)
    }

    /// The moving average of recent group commits, fsync included (zero before the first).
    pub fn commit_recent(&self) -> Duration {
        Duration::from_micros(self.shared.commit_recent_us.load(Ordering::Relaxed))
    }

    /// Test hook: sleep this long before every commit from now on (zero: none).
    pub fn set_injected_delay(&self, delay: Duration) {
        self.shared.injected_delay_us.store(delay.as_micros() as u64, Ordering::Relaxed);
    }
}

fn fail(op: Op, e: io::Error) {
    let err = || io::Error::new(e.kind(), e.to_string());
    match op {
        Op::Append { done, .. }
        | Op::TruncateAfter { done, .. }
        | Op::Purge { done, .. }
        | Op::Discard { done, .. } => done(Err(err())),
        Op::Meta { done, .. } => {
            if let Some(done) = done {
                done(Err(err()))
            }
        }
    }
}

fn writer(shared: Arc<Shared>, rx: mpsc::Receiver<Op>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < BATCH_OPS_MAX {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        process(&shared, batch);
    }
}

/// Commits one batch in one transaction and completes its operations.
fn process(shared: &Shared, batch: Vec<Op>) {
    if shared.poisoned.load(Ordering::SeqCst) {
        for op in batch {
            fail(op, io::Error::other("raft log is poisoned by an earlier write error"));
        }
        return;
    }
    let started = Instant::now();
    let delay = shared.injected_delay_us.load(Ordering::Relaxed);
    if delay > 0 {
        std::thread::sleep(Duration::from_micros(delay));
    }
    match write_batch(&shared.db, &batch, shared.faults) {
        Ok(()) => {
            let took = started.elapsed();
            // An exponential moving average over about the last eight commits: one slow commit
            // barely moves it, a disk that stays slow moves it within a few.
            let sample = took.as_micros() as u64;
            let _ = shared.commit_recent_us.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                Some(if old == 0 { sample } else { old - old / 8 + sample / 8 })
            });
            let elapsed = took.as_secs_f64();
            metrics::histogram!("paddock_raft_log_fsync_duration_seconds").record(elapsed);
            metrics::histogram!("paddock_raft_log_batch_ops").record(batch.len() as f64);
            let mut pending = shared.pending.lock().expect("pending lock");
            for op in &batch {
                if let Op::Append { entries, .. } = op {
                    for (i, g, _) in entries {
                        if pending.get(i).is_some_and(|(pg, _)| pg == g) {
                            pending.remove(i);
                        }
                    }
                }
            }
            drop(pending);
            for op in batch {
                match op {
                    Op::Append { done, .. }
                    | Op::TruncateAfter { done, .. }
                    | Op::Purge { done, .. }
                    | Op::Discard { done, .. } => done(Ok(())),
                    Op::Meta { done, .. } => {
                        if let Some(done) = done {
                            done(Ok(()))
                        }
                    }
                }
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "raft log write failed; the store refuses writes from now on");
            shared.poisoned.store(true, Ordering::SeqCst);
            for op in batch {
                fail(op, io::Error::new(e.kind(), e.to_string()));
            }
        }
    }
}

fn write_batch(db: &Database, batch: &[Op], faults: FaultSwitches) -> io::Result<()> {
    let mut tx = db.begin_write().map_err(other)?;
    let durability = if faults.ack_before_fsync { redb::Durability::None } else { redb::Durability::Immediate };
    tx.set_durability(durability).map_err(other)?;
    {
        let mut log = tx.open_table(LOG).map_err(other)?;
        let mut meta = tx.open_table(META).map_err(other)?;
        for op in batch {
            match op {
                Op::Append { entries, .. } => {
                    for (i, _, bytes) in entries {
                        log.insert(*i, &bytes[..]).map_err(other)?;
                    }
                }
                Op::Meta { key, value, .. } => {
                    meta.insert(key.name(), &value[..]).map_err(other)?;
                }
                Op::TruncateAfter { after, .. } => {
                    let from = after.map_or(0, |a| a + 1);
                    log.retain_in(from.., |_, _| false).map_err(other)?;
                }
                Op::Purge { upto, purged, .. } => {
                    // The purged marker first: if the log lost its head without the marker, a
                    // restart would see a log with a hole at its start.
                    meta.insert(MetaKey::Purged.name(), &purged[..]).map_err(other)?;
                    log.retain_in(..=*upto, |_, _| false).map_err(other)?;
                }
                Op::Discard { discard, .. } => {
                    // The marker and the meta first, then the entries: all in one transaction,
                    // so a crash leaves either the damaged log or the repaired one with its
                    // marker, never a shortened log that forgot how far it reached.
                    for key in &discard.remove {
                        meta.remove(key.name()).map_err(other)?;
                    }
                    for (key, value) in &discard.write {
                        let framed = frame::encode(KIND_META, FORMAT_VERSION, value);
                        meta.insert(key.name(), &framed[..]).map_err(other)?;
                    }
                    if let Some(from) = discard.entries_from {
                        log.retain_in(from.., |_, _| false).map_err(other)?;
                    }
                    if let Some(upto) = discard.entries_upto {
                        log.retain_in(..=upto, |_, _| false).map_err(other)?;
                    }
                }
            }
        }
    }
    tx.commit().map_err(other)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::channel;

    fn append_wait(log: &LogStore, entries: Vec<(u64, Vec<u8>)>) -> io::Result<()> {
        let (tx, rx) = channel();
        log.append(entries, Box::new(move |r| tx.send(r).unwrap()));
        rx.recv().unwrap()
    }

    #[test]
    fn appended_entries_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raft.redb");
        {
            let log = LogStore::open(&path).unwrap();
            append_wait(&log, vec![(1, b"a".to_vec()), (2, b"b".to_vec())]).unwrap();
            log.save_meta_durable(MetaKey::Vote, b"vote-1").unwrap();
        }
        let log = LogStore::open(&path).unwrap();
        assert_eq!(log.read_range(1, 10).unwrap(), vec![(1, b"a".to_vec()), (2, b"b".to_vec())]);
        assert_eq!(log.read_meta(MetaKey::Vote).unwrap(), Some(b"vote-1".to_vec()));
        assert_eq!(log.last().unwrap(), Some((2, b"b".to_vec())));
    }

    /// A disk whose database writes fail once `broken` is set.
    #[derive(Debug)]
    struct BreakableDisk {
        broken: Arc<AtomicBool>,
    }

    #[derive(Debug)]
    struct BreakableBackend {
        inner: redb::backends::FileBackend,
        broken: Arc<AtomicBool>,
    }

    impl redb::StorageBackend for BreakableBackend {
        fn len(&self) -> io::Result<u64> {
            self.inner.len()
        }
        fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
            self.inner.read(offset, out)
        }
        fn set_len(&self, len: u64) -> io::Result<()> {
            self.inner.set_len(len)
        }
        fn sync_data(&self) -> io::Result<()> {
            if self.broken.load(Ordering::SeqCst) {
                return Err(io::Error::other("broken disk"));
            }
            self.inner.sync_data()
        }
        fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
            if self.broken.load(Ordering::SeqCst) {
                return Err(io::Error::other("broken disk"));
            }
            self.inner.write(offset, data)
        }
    }

    impl Disk for BreakableDisk {
        fn db_backend(&self, path: &Path) -> io::Result<Box<dyn redb::StorageBackend>> {
            let file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?;
            let inner = redb::backends::FileBackend::new(file).map_err(other)?;
            Ok(Box::new(BreakableBackend { inner, broken: self.broken.clone() }))
        }
        fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
            StdDisk.create_dir_all(dir)
        }
        fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
            StdDisk.read(path)
        }
        fn list(&self, dir: &Path) -> io::Result<Vec<std::path::PathBuf>> {
            StdDisk.list(dir)
        }
        fn remove(&self, path: &Path) -> io::Result<()> {
            StdDisk.remove(path)
        }
        fn file_len(&self, path: &Path) -> io::Result<u64> {
            StdDisk.file_len(path)
        }
        fn read_at(&self, path: &Path, offset: u64, len: usize) -> io::Result<Vec<u8>> {
            StdDisk.read_at(path, offset, len)
        }
        fn append(&self, path: &Path, bytes: &[u8], truncate: bool) -> io::Result<()> {
            StdDisk.append(path, bytes, truncate)
        }
        fn commit(&self, dir: &Path, tmp: &str, name: &str) -> io::Result<()> {
            StdDisk.commit(dir, tmp, name)
        }
    }

    #[test]
    fn an_append_to_a_poisoned_log_is_still_readable() {
        // Regression (simulator, seed 79): after a failed write the store refused later appends
        // without making them readable. openraft counts an entry as appended when `append`
        // returns, so it applied committed entries the log then did not hold: nothing was
        // applied (a debug assertion in openraft; in a release build the state machine would
        // have skipped them).
        let dir = tempfile::tempdir().unwrap();
        let broken = Arc::new(AtomicBool::new(false));
        let disk = BreakableDisk { broken: broken.clone() };
        let log =
            LogStore::open_with(&disk, &dir.path().join("raft.redb"), WriterMode::Inline, FaultSwitches::default())
                .unwrap();
        append_wait(&log, vec![(1, b"a".to_vec())]).unwrap();
        broken.store(true, Ordering::SeqCst);
        assert!(append_wait(&log, vec![(2, b"b".to_vec())]).is_err());
        assert!(log.is_poisoned());
        assert!(append_wait(&log, vec![(3, b"c".to_vec())]).is_err());
        let read: Vec<u64> = log.read_range(1, 4).unwrap().into_iter().map(|(i, _)| i).collect();
        assert_eq!(read, vec![1, 2, 3]);
    }

    #[test]
    fn an_entry_is_readable_before_its_fsync_reports() {
        let dir = tempfile::tempdir().unwrap();
        let log = LogStore::open(&dir.path().join("raft.redb")).unwrap();
        let (tx, rx) = channel();
        log.append(vec![(1, b"x".to_vec())], Box::new(move |r| tx.send(r).unwrap()));
        assert_eq!(log.read_range(1, 2).unwrap(), vec![(1, b"x".to_vec())]);
        rx.recv().unwrap().unwrap();
        assert_eq!(log.read_range(1, 2).unwrap(), vec![(1, b"x".to_vec())]);
    }

    #[test]
    fn truncate_and_purge_bound_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let log = LogStore::open(&dir.path().join("raft.redb")).unwrap();
        append_wait(&log, (1..=10).map(|i| (i, vec![i as u8])).collect()).unwrap();
        log.truncate_after(Some(7)).unwrap();
        assert_eq!(log.last().unwrap().map(|(i, _)| i), Some(7));
        log.purge(3, b"purged-3").unwrap();
        assert_eq!(log.read_range(0, 100).unwrap().first().map(|(i, _)| *i), Some(4));
        assert_eq!(log.read_meta(MetaKey::Purged).unwrap(), Some(b"purged-3".to_vec()));
        log.truncate_after(None).unwrap();
        assert_eq!(log.last().unwrap(), None);
    }

    #[test]
    fn many_concurrent_appends_share_fsyncs_and_all_complete_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let log = LogStore::open(&dir.path().join("raft.redb")).unwrap();
        let (tx, rx) = channel();
        for i in 1..=500u64 {
            let tx = tx.clone();
            log.append(vec![(i, i.to_le_bytes().to_vec())], Box::new(move |r| tx.send((i, r.is_ok())).unwrap()));
        }
        let order: Vec<(u64, bool)> = (0..500).map(|_| rx.recv().unwrap()).collect();
        assert!(order.iter().all(|(_, ok)| *ok));
        assert!(order.windows(2).all(|w| w[0].0 < w[1].0), "completions arrive in append order");
        assert_eq!(log.read_range(1, 501).unwrap().len(), 500);
    }

    /// Overwrites the stored value of `index` with `bytes` (the store must be closed).
    fn overwrite(path: &Path, index: u64, bytes: &[u8]) {
        let db = Database::create(path).unwrap();
        let tx = db.begin_write().unwrap();
        tx.open_table(LOG).unwrap().insert(index, bytes).unwrap();
        tx.commit().unwrap();
    }

    #[test]
    fn a_scan_names_the_first_damaged_or_missing_entry_from_where_it_starts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raft.redb");
        {
            let log = LogStore::open(&path).unwrap();
            append_wait(&log, (1..=10).map(|i| (i, vec![i as u8; 4])).collect()).unwrap();
            let whole = log.scan(0).unwrap();
            assert_eq!((whole.first, whole.last, whole.damaged), (Some(1), Some(10), None));
        }
        let mut damaged = frame::encode(KIND_LOG_ENTRY, FORMAT_VERSION, &[4; 4]);
        damaged[9] ^= 0x01;
        overwrite(&path, 4, &damaged);
        overwrite(&path, 12, &frame::encode(KIND_LOG_ENTRY, FORMAT_VERSION, &[12; 4]));
        let log = LogStore::open(&path).unwrap();
        let scan = log.scan(0).unwrap();
        assert_eq!((scan.first, scan.last), (Some(1), Some(12)));
        assert_eq!(scan.damaged, Some((4, "record checksum mismatch".to_string())));
        let after = log.scan(5).unwrap();
        assert_eq!(after.damaged, Some((11, "missing (the log jumps from 10 to 12)".to_string())));
    }

    #[test]
    fn a_newer_format_is_refused_by_the_scan_not_reported_as_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raft.redb");
        overwrite(&path, 1, &frame::encode(KIND_LOG_ENTRY, FORMAT_VERSION + 1, b"from a newer build"));
        let err = LogStore::open(&path).unwrap().scan(0).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Unsupported);
        assert!(err.get_ref().is_some_and(|inner| inner.is::<NewerEntry>()), "told apart by its type");
        assert!(err.to_string().contains("raft log entry 1: record format version 2 is not supported"), "{err}");
    }

    #[test]
    fn a_newer_format_after_a_damaged_entry_is_refused_too_not_discarded_with_the_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raft.redb");
        {
            let log = LogStore::open(&path).unwrap();
            append_wait(&log, (1..=3).map(|i| (i, vec![i as u8; 4])).collect()).unwrap();
        }
        let mut damaged = frame::encode(KIND_LOG_ENTRY, FORMAT_VERSION, &[2; 4]);
        damaged[9] ^= 0x01;
        overwrite(&path, 2, &damaged);
        overwrite(&path, 3, &frame::encode(KIND_LOG_ENTRY, FORMAT_VERSION + 1, b"from a newer build"));
        let err = LogStore::open(&path).unwrap().scan(0).unwrap_err();
        assert!(err.to_string().contains("raft log entry 3: record format version 2"), "{err}");
    }

    #[test]
    fn entries_are_framed_at_their_own_version_and_read_up_to_the_callers_newest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raft.redb");
        {
            let log = LogStore::open(&path).unwrap();
            log.read_entry_versions_up_to(2);
            let (tx, rx) = mpsc::channel();
            let entries = vec![(1, 1, b"first format".to_vec()), (2, 2, b"second format".to_vec())];
            log.append_versioned(entries, Box::new(move |r| tx.send(r).unwrap()));
            rx.recv().unwrap().unwrap();
            assert_eq!(log.scan(0).unwrap().damaged, None);
            let read: Vec<Vec<u8>> = log.read_range(1, 3).unwrap().into_iter().map(|(_, b)| b).collect();
            assert_eq!(read, vec![b"first format".to_vec(), b"second format".to_vec()]);
        }
        // A caller that decodes only the first format (an older build) is refused the log.
        let older = LogStore::open(&path).unwrap();
        let err = older.scan(0).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Unsupported, "{err}");
        assert!(
            err.to_string().contains("raft log entry 2: record format version 2 is not supported (max 1)"),
            "{err}"
        );
    }

    #[test]
    fn a_discard_removes_a_suffix_or_a_prefix_and_meta_records_in_one_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raft.redb");
        {
            let log = LogStore::open(&path).unwrap();
            append_wait(&log, (1..=10).map(|i| (i, vec![i as u8])).collect()).unwrap();
            log.save_meta_durable(MetaKey::Committed, b"c-10").unwrap();
            log.discard(Discard {
                entries_from: Some(8),
                entries_upto: Some(2),
                remove: vec![MetaKey::Committed],
                write: vec![(MetaKey::Repair, b"marker".to_vec())],
            })
            .unwrap();
        }
        let log = LogStore::open(&path).unwrap();
        let left: Vec<u64> = log.read_range(0, 100).unwrap().into_iter().map(|(i, _)| i).collect();
        assert_eq!(left, (3..=7).collect::<Vec<_>>());
        assert_eq!(log.read_meta(MetaKey::Committed).unwrap(), None);
        assert_eq!(log.read_meta(MetaKey::Repair).unwrap(), Some(b"marker".to_vec()));
        assert_eq!(log.durable_last().unwrap(), Some(7));
    }

    #[test]
    fn a_damaged_entry_is_an_error_not_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raft.redb");
        {
            let db = Database::create(&path).unwrap();
            let tx = db.begin_write().unwrap();
            {
                let mut t = tx.open_table(LOG).unwrap();
                let mut framed = frame::encode(KIND_LOG_ENTRY, FORMAT_VERSION, b"payload");
                let last = framed.len() - 1;
                framed[last] ^= 0x40;
                t.insert(1u64, &framed[..]).unwrap();
            }
            tx.commit().unwrap();
        }
        let log = LogStore::open(&path).unwrap();
        assert!(!log.damage_read());
        let err = log.read_range(1, 2).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(log.damage_read(), "the node is told, so that it can stop and repair at its restart");
    }
}
