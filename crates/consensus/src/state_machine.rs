//! The state-machine adapter: the ledger in memory, snapshots on disk.
//!
//! Entries are applied to the in-memory [`State`] under a write lock held for one entry at a
//! time, so API reads interleave with a long apply stream. A snapshot copies the state under
//! the read lock and checks and encodes the copy off it. Snapshots encode the state with the
//! ledger's own format (magic, version, checksum) and are written by the storage crate
//! atomically; a restarting node loads the newest intact one and openraft replays the
//! committed log after it. Only the newest snapshot's metadata stays in memory: its bytes are
//! read back from its file when a follower needs them or a backup asks, so a node does not
//! carry a second, encoded copy of the book between snapshots.
//!
//! The storage crate keeps the two newest snapshot files and skips a damaged newest one for
//! the previous; that previous one is only of use if the log after it is still there. openraft
//! purges the log up to `max_in_snapshot_log_to_keep` entries behind the *newest* snapshot, so
//! that keep must span a whole snapshot interval and then some ([`snapshot_log_keep_min`]).
//! When it does not (a snapshot installed from the leader, a catch-up that overshot, files
//! deleted), [`StateMachine::check_log_follows`] says so before Raft starts, and storage repair
//! (`repair.rs`) discards the log so that the node recovers from its peers, instead of letting
//! openraft fail on a purged entry.

use crate::records::{self, LogIdRecord, SnapshotMetaRecord};
use crate::types::{LogId, Request, Response, Snapshot, SnapshotMeta, StoredMembership, TypeConfig};
use futures::{Stream, TryStreamExt};
use openraft::storage::{EntryResponder, RaftSnapshotBuilder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend};
use paddock_ledger::archive::ArchiveSegment;
use paddock_ledger::audit::AuditEvent;
use paddock_ledger::{apply_noting_replay, Applied, ApplyCtx, Command, Outcome, State, StateHash, TimestampMs};
use paddock_storage::{ArchiveFiles, ArchiveIndex, LogStore, MetaKey, SnapshotFiles};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;
use tokio::sync::{broadcast, watch};

/// Entries kept beyond one snapshot interval when the log is purged; the default
/// `snapshot_log_keep` is the interval plus this.
///
/// openraft purges the log up to `max_in_snapshot_log_to_keep` entries behind the newest
/// snapshot (`snapshot index + 1 - keep`, in batches). Falling back from a damaged newest
/// snapshot to the previous one needs the log from the previous one's index on, which lies one
/// interval back plus the overshoot: a snapshot is taken at the commit index when the policy
/// fires, so it lands a few entries (a batch committed at once) past the interval.
pub const SNAPSHOT_LOG_KEEP_MARGIN: u64 = 1_000;

/// The smallest `snapshot_log_keep` that still leaves the log since the previous snapshot, for
/// snapshots every `snapshot_logs_since_last` entries.
pub fn snapshot_log_keep_min(snapshot_logs_since_last: u64) -> u64 {
    snapshot_logs_since_last.saturating_add(SNAPSHOT_LOG_KEEP_MARGIN)
}

/// "its newest intact snapshot ends at index 2003 (skipped as damaged: …)", for
/// [`crate::StartError::SnapshotBehindLog`].
pub(crate) fn describe_snapshots(snapshot: Option<u64>, damaged: &[PathBuf]) -> String {
    let mut out = match snapshot {
        Some(index) => format!("its newest intact snapshot ends at index {index}"),
        None => "it has no intact snapshot".to_string(),
    };
    if !damaged.is_empty() {
        let names: Vec<String> = damaged.iter().map(|p| p.display().to_string()).collect();
        out.push_str(&format!(" (skipped as damaged: {})", names.join(", ")));
    }
    out
}

/// The archived-bet index's file inside the archive directory.
pub const ARCHIVE_INDEX_FILE: &str = "index.redb";

/// One applied command, for live streams (prices, an account's bets).
#[derive(Clone, Debug)]
pub struct AppliedEvent {
    /// Log index.
    pub index: u64,
    /// Leader timestamp.
    pub time: TimestampMs,
    /// The command.
    pub command: Command,
    /// Its outcome.
    pub outcome: Outcome,
    /// The outcome is the one remembered for the command's idempotency key (an earlier
    /// attempt took effect or was refused): nothing changed now.
    pub replayed: bool,
}

/// The replicated state and where it stands in the log.
pub struct SmData {
    /// The book.
    pub state: State,
    /// Last log id applied.
    pub last_applied: Option<LogId>,
    /// Membership as of `last_applied`.
    pub membership: StoredMembership,
}

pub(crate) struct Shared {
    io: crate::IoMode,
    pub(crate) data: RwLock<SmData>,
    pub(crate) applied: watch::Sender<u64>,
    pub(crate) events: broadcast::Sender<Arc<AppliedEvent>>,
    files: SnapshotFiles,
    /// Settled history that left the state (`ArchiveSettled`), one segment file per index.
    pub(crate) archive: ArchiveFiles,
    /// The archived bets by account, derived from the segments (see [`StateMachine::index_archive`]).
    archive_index: ArchiveIndex,
    /// Segments the audit trail records that this node's archive lacks (it installed a
    /// snapshot taken after them), until fetched from a peer.
    archive_gaps: Mutex<Vec<u64>>,
    /// The newest snapshot's metadata; its bytes stay in its file, read when a follower
    /// needs them (holding them would keep a second copy of the book in memory).
    pub(crate) current: Mutex<Option<SnapshotMeta>>,
    /// Snapshot files skipped as damaged when this state machine was opened.
    damaged: Vec<PathBuf>,
}

/// The state machine handed to openraft. Clones share one state.
#[derive(Clone)]
pub struct StateMachine {
    pub(crate) shared: Arc<Shared>,
}

/// Runs blocking disk work on the blocking pool, or inline under the simulator.
async fn off_task<T: Send + 'static>(
    io: crate::IoMode,
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    match io {
        crate::IoMode::Inline => f(),
        // The seam itself: the one place this file may use the blocking pool (clippy.toml).
        #[allow(clippy::disallowed_methods)]
        crate::IoMode::Threads => tokio::task::spawn_blocking(f).await.map_err(|e| io::Error::other(e.to_string()))?,
    }
}

/// The pieces a snapshot file is copied in when it is installed from another directory.
const COPY_PIECE_BYTES: usize = 4 << 20;

/// A snapshot's bytes as openraft hands them around: not the bytes but the snapshot *file* on
/// this node's disk — header, meta, state and CRC-32C, exactly as written — read or received a
/// piece at a time, so a snapshot's size is bounded by the disk, not by memory or by a peer
/// message. The leader streams its newest file; a follower appends what arrives to its
/// incoming file and installs that file, renamed into place, without writing a second copy.
#[derive(Clone, Debug)]
pub struct SnapshotBody {
    files: SnapshotFiles,
    io: crate::IoMode,
    place: BodyPlace,
    len: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BodyPlace {
    /// The snapshot file of this index.
    Stored(u64),
    /// The snapshot directory's incoming file, received whole from a peer.
    Incoming,
}

impl SnapshotBody {
    /// The file's length in bytes.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Up to `len` bytes from `offset` on, read off the async runtime.
    pub(crate) async fn read(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let (files, place) = (self.files.clone(), self.place);
        off_task(self.io, move || match place {
            BodyPlace::Stored(index) => files.read_range(index, offset, len),
            BodyPlace::Incoming => files.incoming_read(offset, len),
        })
        .await
    }

    /// The snapshot file of `index`.
    pub(crate) fn stored(files: SnapshotFiles, io: crate::IoMode, index: u64) -> io::Result<SnapshotBody> {
        let len = files.file_len(index)?;
        Ok(SnapshotBody { files, io, place: BodyPlace::Stored(index), len })
    }
}

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

impl StateMachine {
    /// Opens the snapshot directory on the real disk and loads the newest intact snapshot;
    /// archive segments go to its `archive` subdirectory.
    pub fn open(snapshot_dir: &Path) -> io::Result<StateMachine> {
        let archive_dir = snapshot_dir.join("archive");
        StateMachine::open_with(
            Arc::new(paddock_storage::StdDisk),
            snapshot_dir,
            &archive_dir,
            crate::IoMode::Threads,
            None,
        )
    }

    /// Opens the snapshot directory on `disk` and loads the newest intact snapshot, if any.
    /// `events`, if given, is the channel applied commands are announced on: a caller that
    /// subscribed before opening sees every entry, including those replayed at start-up.
    pub fn open_with(
        disk: Arc<dyn paddock_storage::Disk>,
        snapshot_dir: &Path,
        archive_dir: &Path,
        io: crate::IoMode,
        events: Option<broadcast::Sender<Arc<AppliedEvent>>>,
    ) -> io::Result<StateMachine> {
        let archive = ArchiveFiles::open_with(disk.clone(), archive_dir)?;
        let archive_index = ArchiveIndex::open_with(&*disk, &archive_dir.join(ARCHIVE_INDEX_FILE))?;
        let files = SnapshotFiles::open_with(disk, snapshot_dir)?;
        let mut damaged = Vec::new();
        let latest = files.latest(|path, e| {
            tracing::error!(path = %path.display(), error = %e, "damaged snapshot skipped");
            damaged.push(path.to_path_buf());
        })?;
        let (data, current) = match latest {
            None => (SmData { state: State::new(), last_applied: None, membership: StoredMembership::default() }, None),
            Some(file) => {
                let meta: SnapshotMeta = records::decode::<SnapshotMetaRecord>(&file.meta)?.into_meta()?;
                let state = State::decode_snapshot(&file.data).map_err(invalid)?;
                if let Err(broken) = state.check_invariants() {
                    // A snapshot that passed its checksum yet breaks an invariant was written
                    // by a bug; serving from it would spread the damage.
                    panic!("snapshot at index {} breaks a ledger invariant: {broken}", file.index);
                }
                tracing::info!(index = file.index, bytes = file.data.len(), "loaded snapshot");
                let data = SmData { state, last_applied: meta.last_log_id, membership: meta.last_membership.clone() };
                (data, Some(meta))
            }
        };
        let applied_index = data.last_applied.as_ref().map_or(0, |l| l.index);
        let (applied, _) = watch::channel(applied_index);
        let events = events.unwrap_or_else(|| broadcast::channel(4096).0);
        let machine = StateMachine {
            shared: Arc::new(Shared {
                io,
                data: RwLock::new(data),
                applied,
                events,
                files,
                archive,
                archive_index,
                archive_gaps: Mutex::new(Vec::new()),
                current: Mutex::new(current),
                damaged,
            }),
        };
        machine.refresh_archive_gaps()?;
        Ok(machine)
    }

    /// Checks, before Raft starts, that the loaded snapshot and `log` together rebuild the
    /// state: the log must be purged no further than the snapshot's index, or the entries in
    /// between are on no local disk. Otherwise the node cannot start from its own data (it
    /// must be re-added and recover from its peers), and says so.
    pub fn check_log_follows(&self, log: &LogStore, node: u64, data_dir: &Path) -> Result<(), crate::StartError> {
        let Some(bytes) = log.read_meta(MetaKey::Purged)? else { return Ok(()) };
        let purged = records::decode::<LogIdRecord>(&bytes)?.index;
        let snapshot = self.read(|d| d.last_applied.map(|l| l.index));
        if snapshot.is_some_and(|s| s >= purged) {
            return Ok(());
        }
        Err(crate::StartError::SnapshotBehindLog {
            dir: data_dir.to_path_buf(),
            node,
            purged,
            snapshot,
            damaged: self.shared.damaged.clone(),
        })
    }

    /// Snapshot files skipped as damaged when this state machine was opened.
    pub(crate) fn damaged_snapshots(&self) -> Vec<PathBuf> {
        self.shared.damaged.clone()
    }

    /// Runs `f` on the state as applied so far.
    pub fn read<T>(&self, f: impl FnOnce(&SmData) -> T) -> T {
        f(&self.shared.data.read().expect("state lock"))
    }

    /// The last applied index (0 before any).
    pub fn applied_index(&self) -> u64 {
        *self.shared.applied.borrow()
    }

    /// Waits until at least `index` is applied, or the timeout passes.
    pub async fn wait_applied(&self, index: u64, timeout: std::time::Duration) -> bool {
        let mut rx = self.shared.applied.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|applied| *applied >= index)).await.is_ok_and(|r| r.is_ok())
    }

    /// Subscribes to applied commands.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<AppliedEvent>> {
        self.shared.events.subscribe()
    }

    /// Runs blocking disk work on the blocking pool, or inline under the simulator.
    pub(crate) async fn off_task<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> io::Result<T> + Send + 'static,
    ) -> io::Result<T> {
        off_task(self.shared.io, f).await
    }

    /// Appends a piece of a snapshot file arriving from a peer to this node's incoming file
    /// (emptied first if `first`), off the async runtime.
    pub(crate) async fn append_incoming(&self, piece: Vec<u8>, first: bool) -> io::Result<Vec<u8>> {
        let files = self.shared.files.clone();
        self.off_task(move || files.incoming_append(&piece, first).map(|()| piece)).await
    }

    /// This node's incoming file, received whole (its length and CRC-32C already checked), as
    /// openraft installs it.
    pub(crate) fn incoming_body(&self, len: u64) -> SnapshotBody {
        SnapshotBody { files: self.shared.files.clone(), io: self.shared.io, place: BodyPlace::Incoming, len }
    }

    fn build(&self) -> io::Result<Snapshot> {
        let started = Instant::now();
        // Apply waits for the state lock, and every write waits for apply: the lock is held
        // only to copy the state (a few ms for a large book), not for the invariant check and
        // the encoding that follow (tens of ms; they were the p99.9 of a bet under load).
        let (meta, state) = {
            let d = self.shared.data.read().expect("state lock");
            let meta = SnapshotMeta { last_log_id: d.last_applied, last_membership: d.membership.clone() };
            (meta, d.state.clone())
        };
        metrics::histogram!("paddock_snapshot_apply_pause_seconds").record(started.elapsed().as_secs_f64());
        if let Err(broken) = state.check_invariants() {
            let index = meta.last_log_id.map_or(0, |l| l.index);
            panic!("ledger invariant broken at index {index}: {broken}");
        }
        // Streamed into the file: the encoding is never held whole beside the copy.
        self.persist(&meta, &state).inspect_err(|_| {
            metrics::counter!("paddock_snapshot_failures_total", "op" => "build").increment(1);
        })?;
        drop(state);
        *self.shared.current.lock().expect("snapshot lock") = Some(meta.clone());
        let snapshot = Snapshot { snapshot: self.stored_body(&meta)?, meta };
        metrics::histogram!("paddock_snapshot_build_duration_seconds").record(started.elapsed().as_secs_f64());
        Ok(snapshot)
    }

    fn persist(&self, meta: &SnapshotMeta, state: &State) -> io::Result<()> {
        let index = meta.last_log_id.as_ref().map_or(0, |l| l.index);
        write_state(&self.shared.files, index, &records::encode(&SnapshotMetaRecord::from(meta)), state)?;
        Ok(())
    }

    /// The newest snapshot, as its file: `None` before the first. Nothing is read here; a
    /// sender reads the file a piece at a time and checks its CRC-32C on the way.
    fn load_current(&self) -> io::Result<Option<Snapshot>> {
        let Some(meta) = self.shared.current.lock().expect("snapshot lock").clone() else { return Ok(None) };
        Ok(Some(Snapshot { snapshot: self.stored_body(&meta)?, meta }))
    }

    fn stored_body(&self, meta: &SnapshotMeta) -> io::Result<SnapshotBody> {
        let index = meta.last_log_id.as_ref().map_or(0, |l| l.index);
        SnapshotBody::stored(self.shared.files.clone(), self.shared.io, index)
    }

    /// The newest snapshot's last included index, `None` before the first.
    pub(crate) fn snapshot_index(&self) -> Option<u64> {
        let current = self.shared.current.lock().expect("snapshot lock");
        current.as_ref().map(|meta| meta.last_log_id.as_ref().map_or(0, |l| l.index))
    }

    /// The newest snapshot's file bytes (checked) and its index, read from disk.
    pub(crate) fn snapshot_file_bytes(&self) -> io::Result<Option<(u64, Vec<u8>)>> {
        let Some(meta) = self.shared.current.lock().expect("snapshot lock").clone() else { return Ok(None) };
        let index = meta.last_log_id.as_ref().map_or(0, |l| l.index);
        Ok(Some((index, self.shared.files.read_checked(index)?)))
    }
}

/// Writes `state` as the snapshot of `index` with its consensus `meta`, streamed from the
/// encoder into the file (the encoding is never held whole): its state hash comes with it.
pub(crate) fn write_state(files: &SnapshotFiles, index: u64, meta: &[u8], state: &State) -> io::Result<StateHash> {
    stream_state(state, |len, fill| files.write_streamed(index, meta, len, fill)).map(|(_, hash)| hash)
}

/// Hands `state`'s snapshot encoding to `write` (a file's writer, or one into memory) as the
/// data it streams, with the length it must announce first; returns what `write` returned and
/// the state hash, computed on the way.
pub(crate) fn stream_state<T>(
    state: &State,
    write: impl FnOnce(u64, &mut paddock_storage::Fill<'_>) -> io::Result<T>,
) -> io::Result<(T, StateHash)> {
    let mut hash = None;
    let len = state.snapshot_len();
    let written = write(len, &mut |sink| {
        hash = Some(state.write_snapshot(len, sink)?);
        Ok(())
    })?;
    Ok((written, hash.expect("set by the write that just succeeded")))
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    type SnapshotData = SnapshotBody;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let me = self.clone();
        self.off_task(move || me.build()).await
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotData = SnapshotBody;
    type SnapshotBuilder = StateMachine;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        let d = self.shared.data.read().expect("state lock");
        Ok((d.last_applied, d.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        while let Some((entry, responder)) = entries.try_next().await? {
            let index = entry.log_id.index;
            // An `ArchiveSettled` moves history out of the state: its segment goes to disk,
            // durably, before the state changes, so that no snapshot can ever be taken of a
            // state without that history while the segment is not yet on disk.
            let segment = match &entry.payload {
                EntryPayload::Normal(Request {
                    command: Command::ArchiveSettled { before, markets_max, .. }, ..
                }) => {
                    let segment = self.read(|d| d.state.archive_segment(*before, *markets_max, index));
                    if segment.markets.is_empty() {
                        None
                    } else {
                        self.keep_segment(&segment).await?;
                        Some(segment)
                    }
                }
                _ => None,
            };
            let mut unused_segment = None;
            let response = {
                let mut d = self.shared.data.write().expect("state lock");
                d.last_applied = Some(entry.log_id);
                match entry.payload {
                    EntryPayload::Blank => Response::default(),
                    // The skipped-entry bug (simulator teeth only): counted as applied, not applied.
                    EntryPayload::Normal(Request { command, .. })
                        if crate::faults::skip_entry(&self.shared.events, index, &command) =>
                    {
                        Response::default()
                    }
                    EntryPayload::Normal(Request { time, command }) => {
                        let Applied { outcome, replayed } =
                            apply_noting_replay(&mut d.state, &command, ApplyCtx { log_index: index, time });
                        // A refused or replayed `ArchiveSettled` moved nothing: its segment file
                        // names no record and goes.
                        unused_segment = segment.filter(|s| !archived_at(&d.state, index, s));
                        drop(d);
                        if self.shared.events.receiver_count() > 0 {
                            let event = AppliedEvent { index, time, command, outcome: outcome.clone(), replayed };
                            let _ = self.shared.events.send(Arc::new(event));
                        }
                        Response { outcome: Some(outcome), replayed }
                    }
                    EntryPayload::Membership(m) => {
                        d.membership = StoredMembership::new(Some(entry.log_id), m);
                        Response::default()
                    }
                }
            };
            if let Some(segment) = unused_segment {
                let archive = self.shared.archive.clone();
                self.off_task(move || archive.remove(segment.log_index)).await?;
            }
            self.shared.applied.send_replace(index);
            if let Some(responder) = responder {
                responder.send(response);
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(&mut self, meta: &SnapshotMeta, snapshot: SnapshotBody) -> Result<(), io::Error> {
        self.install(meta, snapshot).await.inspect_err(|e| {
            metrics::counter!("paddock_snapshot_failures_total", "op" => "install").increment(1);
            tracing::error!(error = %e, "cannot install the snapshot received from the leader");
        })
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        let me = self.clone();
        self.off_task(move || me.load_current()).await
    }
}

/// Whether the command at `index` archived `segment`: the audit trail's newest record is its
/// `HistoryArchived`. A digest that differs from the segment's means this replica and its
/// ledger disagree about what left the state: a bug, and the replica stops.
fn archived_at(state: &State, index: u64, segment: &ArchiveSegment) -> bool {
    let Some(last) = state.audit().records().last() else { return false };
    let AuditEvent::HistoryArchived { digest, .. } = &last.event else { return false };
    if last.log_index != index {
        return false;
    }
    assert_eq!(*digest, segment.digest(), "archive segment at index {index} differs from the one the ledger recorded");
    true
}

impl StateMachine {
    /// Writes an archive segment durably. A failed write fails the apply (and stops the node)
    /// rather than let the history leave the state without a copy on this node's disk.
    async fn keep_segment(&self, segment: &ArchiveSegment) -> io::Result<()> {
        let started = Instant::now();
        let archive = self.shared.archive.clone();
        let (index, bets) = (segment.log_index, segment.bets.len());
        let bytes = segment.encode();
        let len = bytes.len();
        self.off_task(move || archive.write(index, &bytes).map(|_| ())).await.inspect_err(|e| {
            tracing::error!(index, error = %e, "cannot write the archive segment");
        })?;
        metrics::counter!("paddock_archive_bets_total").increment(bets as u64);
        metrics::histogram!("paddock_archive_write_seconds").record(started.elapsed().as_secs_f64());
        tracing::info!(index, bets, bytes = len, "archived settled history");
        Ok(())
    }

    /// The archive segment of `index` from this node's disk, checked: `Ok(None)` if this node
    /// does not have it (it installed a snapshot taken after that index).
    pub fn archive_segment(&self, index: u64) -> io::Result<Option<ArchiveSegment>> {
        let Some(bytes) = self.shared.archive.read(index)? else { return Ok(None) };
        let path = self.shared.archive.path(index);
        ArchiveSegment::decode(&bytes).map(Some).map_err(|e| invalid(format!("{}: {e}", path.display())))
    }

    /// The raw bytes of this node's archive segment of `index`, read off the async runtime.
    pub(crate) async fn archive_bytes(&self, index: u64) -> io::Result<Option<Vec<u8>>> {
        let archive = self.shared.archive.clone();
        self.off_task(move || archive.read(index)).await
    }

    /// Recomputes which recorded segments this node's archive lacks.
    pub(crate) fn refresh_archive_gaps(&self) -> io::Result<()> {
        let have = self.shared.archive.indexes()?;
        let recorded = self.read(|d| d.state.archive_segments());
        let gaps: Vec<u64> = recorded.iter().map(|r| r.log_index).filter(|i| have.binary_search(i).is_err()).collect();
        if !gaps.is_empty() {
            tracing::warn!(
                segments = gaps.len(),
                first = gaps[0],
                "this node's archive lacks segments; fetching them from peers"
            );
        }
        *self.shared.archive_gaps.lock().expect("archive gaps lock") = gaps;
        Ok(())
    }

    /// The recorded segments this node's archive lacks, ascending.
    pub fn archive_gaps(&self) -> Vec<u64> {
        self.shared.archive_gaps.lock().expect("archive gaps lock").clone()
    }

    /// The archive directory.
    pub fn archive_files(&self) -> &ArchiveFiles {
        &self.shared.archive
    }

    /// Indexes every archive segment on disk that the index does not list yet; returns how many
    /// bets it indexed. Blocking disk work: run it off the async runtime.
    pub fn index_archive(&self) -> io::Result<u64> {
        let done = self.shared.archive_index.segments()?;
        let mut bets = 0;
        for index in self.shared.archive.indexes()? {
            if done.binary_search(&index).is_ok() {
                continue;
            }
            let Some(segment) = self.archive_segment(index)? else { continue };
            let rows = segment
                .bets
                .iter()
                .map(|b| (b.account.0, b.bet.0, postcard::to_stdvec(b).expect("bet view encodes: plain data")));
            bets += self.shared.archive_index.insert_segment(index, rows)?;
        }
        Ok(bets)
    }

    /// Up to `limit` archived bets of `account` with ids above `after`, ascending, from the
    /// index (segments not indexed yet are not seen).
    pub fn archived_bets_of(
        &self,
        account: paddock_ledger::AccountId,
        after: u64,
        limit: usize,
    ) -> io::Result<Vec<paddock_ledger::BetView>> {
        let rows = self.shared.archive_index.account_bets(account.0, after, limit)?;
        rows.iter().map(|(_, bytes)| postcard::from_bytes(bytes).map_err(invalid)).collect()
    }

    /// One archived bet, if indexed.
    pub fn archived_bet(&self, bet: paddock_ledger::BetId) -> io::Result<Option<paddock_ledger::BetView>> {
        match self.shared.archive_index.bet(bet.0)? {
            Some(bytes) => postcard::from_bytes(&bytes).map(Some).map_err(invalid),
            None => Ok(None),
        }
    }

    /// Installs a snapshot received whole into the incoming file: read and checked (the file's
    /// own CRC-32C, its index against the metadata the leader sent, the state's invariants),
    /// then the file itself is renamed into place and the state swapped in. Until the rename
    /// the node's snapshots are untouched; after it, a restart loads the new one.
    async fn install(&mut self, meta: &SnapshotMeta, body: SnapshotBody) -> Result<(), io::Error> {
        if body.place != BodyPlace::Incoming || body.files.dir() != self.shared.files.dir() {
            // Another file than this node's incoming one (openraft's storage suite hands one
            // state machine's snapshot to another): copied into the incoming file first.
            let mut offset = 0;
            while offset < body.len() {
                let piece = body.read(offset, COPY_PIECE_BYTES).await?;
                if piece.is_empty() {
                    return Err(invalid(format!("the snapshot file ends at byte {offset}, not {}", body.len())));
                }
                let first = offset == 0;
                offset += piece.len() as u64;
                self.append_incoming(piece, first).await?;
            }
        }
        let index = meta.last_log_id.as_ref().map_or(0, |l| l.index);
        let files = self.shared.files.clone();
        let expected = meta.clone();
        let state = self
            .off_task(move || {
                let bytes = files.incoming_read(0, usize::MAX)?;
                let (file_index, meta, data) = SnapshotFiles::parse(Path::new("incoming snapshot"), &bytes)?;
                let sent: SnapshotMeta = records::decode::<SnapshotMetaRecord>(meta)?.into_meta()?;
                if file_index != index || sent.last_log_id != expected.last_log_id {
                    return Err(invalid(format!(
                        "the snapshot file received is of index {file_index}, the leader's metadata says {index}"
                    )));
                }
                let state = State::decode_snapshot(data).map_err(invalid)?;
                drop(bytes);
                if let Err(broken) = state.check_invariants() {
                    return Err(invalid(format!("received snapshot breaks a ledger invariant: {broken}")));
                }
                files.incoming_commit(index)?;
                Ok(state)
            })
            .await?;
        {
            let mut d = self.shared.data.write().expect("state lock");
            *d = SmData { state, last_applied: meta.last_log_id, membership: meta.last_membership.clone() };
        }
        *self.shared.current.lock().expect("snapshot lock") = Some(meta.clone());
        self.shared.applied.send_replace(index);
        tracing::info!(index, bytes = body.len(), "installed snapshot from leader");
        // History archived between this node's last apply and the snapshot is not on its disk.
        let me = self.clone();
        self.off_task(move || me.refresh_archive_gaps()).await?;
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::StartError;
    use paddock_storage::SnapshotFile;

    fn log_purged_to(dir: &Path, purged: Option<u64>) -> LogStore {
        let log = LogStore::open(&dir.join("raft-log.redb")).unwrap();
        if let Some(index) = purged {
            log.purge(index, &records::encode(&LogIdRecord { term: 1, node: 1, index })).unwrap();
        }
        log
    }

    /// Writes a snapshot of an empty book at `index` (also for `repair.rs`'s tests).
    pub(crate) fn write_snapshot(files: &SnapshotFiles, index: u64) -> PathBuf {
        let meta = SnapshotMeta {
            last_log_id: Some(LogIdRecord { term: 1, node: 1, index }.into()),
            last_membership: StoredMembership::default(),
        };
        let file = SnapshotFile {
            index,
            meta: records::encode(&SnapshotMetaRecord::from(&meta)),
            data: State::new().encode_snapshot(),
        };
        files.write(&file).unwrap()
    }

    fn damage(path: &Path) {
        let mut bytes = std::fs::read(path).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x40;
        std::fs::write(path, bytes).unwrap();
    }

    #[test]
    fn a_damaged_newest_snapshot_falls_back_while_the_log_reaches_the_previous_one() {
        let dir = tempfile::tempdir().unwrap();
        let snapshots = dir.path().join("snapshots");
        let files = SnapshotFiles::open(&snapshots).unwrap();
        write_snapshot(&files, 100);
        let newest = write_snapshot(&files, 200);
        damage(&newest);
        let sm = StateMachine::open(&snapshots).unwrap();
        assert_eq!(sm.applied_index(), 100);
        let log = log_purged_to(dir.path(), Some(100));
        sm.check_log_follows(&log, 2, dir.path()).expect("the log starts right after the previous snapshot");
    }

    #[test]
    fn a_lone_damaged_snapshot_is_replaced_by_the_whole_log_if_nothing_was_purged() {
        let dir = tempfile::tempdir().unwrap();
        let snapshots = dir.path().join("snapshots");
        let only = write_snapshot(&SnapshotFiles::open(&snapshots).unwrap(), 100);
        damage(&only);
        let sm = StateMachine::open(&snapshots).unwrap();
        assert_eq!(sm.applied_index(), 0);
        let log = log_purged_to(dir.path(), None);
        sm.check_log_follows(&log, 2, dir.path()).expect("the whole log is there");
    }

    #[test]
    fn a_log_purged_past_the_newest_intact_snapshot_is_refused_with_the_way_out() {
        let dir = tempfile::tempdir().unwrap();
        let snapshots = dir.path().join("snapshots");
        let files = SnapshotFiles::open(&snapshots).unwrap();
        write_snapshot(&files, 100);
        let newest = write_snapshot(&files, 200);
        damage(&newest);
        let sm = StateMachine::open(&snapshots).unwrap();
        let log = log_purged_to(dir.path(), Some(150));
        let refused = sm.check_log_follows(&log, 2, dir.path()).unwrap_err();
        assert!(
            matches!(&refused, StartError::SnapshotBehindLog { purged: 150, snapshot: Some(100), damaged, .. }
                if damaged == &vec![newest.clone()]),
            "{refused:?}"
        );
        let text = refused.to_string();
        assert!(text.contains("purged up to index 150, but its newest intact snapshot ends at index 100"), "{text}");
        assert!(text.contains("skipped as damaged:") && text.contains("snap-00000000000000000200.pds"), "{text}");
        assert!(text.contains("paddock members remove --id 2"), "{text}");

        // No snapshot at all (all damaged, or none written) and a purged log: the same.
        let empty = tempfile::tempdir().unwrap();
        let sm = StateMachine::open(empty.path()).unwrap();
        let refused = sm.check_log_follows(&log, 2, dir.path()).unwrap_err();
        assert!(refused.to_string().contains("it has no intact snapshot"), "{refused}");
    }
}
