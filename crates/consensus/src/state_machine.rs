//! The state-machine adapter: the ledger in memory, snapshots on disk.
//!
//! Entries are applied to the in-memory [`State`] under a write lock held for one entry at a
//! time, so API reads interleave with a long apply stream. Snapshots encode the state with the
//! ledger's own format (magic, version, checksum) and are written by the storage crate
//! atomically; a restarting node loads the newest intact one and openraft replays the
//! committed log after it.

use crate::records::{self, SnapshotMetaRecord};
use crate::types::{LogId, Request, Response, Snapshot, SnapshotMeta, StoredMembership, TypeConfig};
use futures::{Stream, TryStreamExt};
use openraft::storage::{EntryResponder, RaftSnapshotBuilder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend};
use paddock_ledger::{apply, ApplyCtx, Command, Outcome, State, TimestampMs};
use paddock_storage::{SnapshotFile, SnapshotFiles};
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;
use tokio::sync::{broadcast, watch};

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
    current: Mutex<Option<Snapshot>>,
}

/// The state machine handed to openraft. Clones share one state.
#[derive(Clone)]
pub struct StateMachine {
    pub(crate) shared: Arc<Shared>,
}

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

impl StateMachine {
    /// Opens the snapshot directory on the real disk and loads the newest intact snapshot.
    pub fn open(snapshot_dir: &Path) -> io::Result<StateMachine> {
        StateMachine::open_with(Arc::new(paddock_storage::StdDisk), snapshot_dir, crate::IoMode::Threads, None)
    }

    /// Opens the snapshot directory on `disk` and loads the newest intact snapshot, if any.
    /// `events`, if given, is the channel applied commands are announced on: a caller that
    /// subscribed before opening sees every entry, including those replayed at start-up.
    pub fn open_with(
        disk: Arc<dyn paddock_storage::Disk>,
        snapshot_dir: &Path,
        io: crate::IoMode,
        events: Option<broadcast::Sender<Arc<AppliedEvent>>>,
    ) -> io::Result<StateMachine> {
        let files = SnapshotFiles::open_with(disk, snapshot_dir)?;
        let latest =
            files.latest(|path, e| tracing::error!(path = %path.display(), error = %e, "damaged snapshot skipped"))?;
        let (data, current) = match latest {
            None => (SmData { state: State::new(), last_applied: None, membership: StoredMembership::default() }, None),
            Some(file) => {
                let meta: SnapshotMeta = records::decode::<SnapshotMetaRecord>(&file.meta)?.into_meta()?;
                let state = State::decode_snapshot(&file.data).map_err(invalid)?;
                if let Err(broken) = state.check_invariants() {
                    // A snapshot that passed its checksum yet breaks an invariant was written
                    // by a bug; serving from it would spread the damage.
                    panic!("snapshot at {:?} breaks a ledger invariant: {broken}", meta.last_log_id);
                }
                tracing::info!(index = file.index, bytes = file.data.len(), "loaded snapshot");
                let data = SmData { state, last_applied: meta.last_log_id, membership: meta.last_membership.clone() };
                (data, Some(Snapshot { meta, snapshot: file.data }))
            }
        };
        let applied_index = data.last_applied.as_ref().map_or(0, |l| l.index);
        let (applied, _) = watch::channel(applied_index);
        let events = events.unwrap_or_else(|| broadcast::channel(4096).0);
        Ok(StateMachine {
            shared: Arc::new(Shared {
                io,
                data: RwLock::new(data),
                applied,
                events,
                files,
                current: Mutex::new(current),
            }),
        })
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
    async fn off_task<T: Send + 'static>(&self, f: impl FnOnce() -> io::Result<T> + Send + 'static) -> io::Result<T> {
        match self.shared.io {
            crate::IoMode::Inline => f(),
            // The seam itself: the one place this file may use the blocking pool (clippy.toml).
            #[allow(clippy::disallowed_methods)]
            crate::IoMode::Threads => {
                tokio::task::spawn_blocking(f).await.map_err(|e| io::Error::other(e.to_string()))?
            }
        }
    }

    fn build(&self) -> io::Result<Snapshot> {
        let started = Instant::now();
        let (meta, data) = {
            let d = self.shared.data.read().expect("state lock");
            if let Err(broken) = d.state.check_invariants() {
                panic!("ledger invariant broken at {:?}: {broken}", d.last_applied);
            }
            let meta = SnapshotMeta { last_log_id: d.last_applied, last_membership: d.membership.clone() };
            (meta, d.state.encode_snapshot())
        };
        self.persist(&meta, &data)?;
        let snapshot = Snapshot { meta, snapshot: data };
        *self.shared.current.lock().expect("snapshot lock") = Some(snapshot.clone());
        metrics::histogram!("paddock_snapshot_build_duration_seconds").record(started.elapsed().as_secs_f64());
        Ok(snapshot)
    }

    fn persist(&self, meta: &SnapshotMeta, data: &[u8]) -> io::Result<()> {
        let file = SnapshotFile {
            index: meta.last_log_id.as_ref().map_or(0, |l| l.index),
            meta: records::encode(&SnapshotMetaRecord::from(meta)),
            data: data.to_vec(),
        };
        self.shared.files.write(&file)?;
        Ok(())
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    type SnapshotData = Vec<u8>;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let me = self.clone();
        self.off_task(move || me.build()).await
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotData = Vec<u8>;
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
            let response = {
                let mut d = self.shared.data.write().expect("state lock");
                d.last_applied = Some(entry.log_id);
                match entry.payload {
                    EntryPayload::Blank => Response::default(),
                    EntryPayload::Normal(Request { time, command }) => {
                        let outcome = apply(&mut d.state, &command, ApplyCtx { log_index: index, time });
                        drop(d);
                        if self.shared.events.receiver_count() > 0 {
                            let event = AppliedEvent { index, time, command, outcome: outcome.clone() };
                            let _ = self.shared.events.send(Arc::new(event));
                        }
                        Response { outcome: Some(outcome) }
                    }
                    EntryPayload::Membership(m) => {
                        d.membership = StoredMembership::new(Some(entry.log_id), m);
                        Response::default()
                    }
                }
            };
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

    async fn install_snapshot(&mut self, meta: &SnapshotMeta, snapshot: Vec<u8>) -> Result<(), io::Error> {
        let state = State::decode_snapshot(&snapshot).map_err(invalid)?;
        if let Err(broken) = state.check_invariants() {
            return Err(invalid(format!("received snapshot breaks a ledger invariant: {broken}")));
        }
        let me = self.clone();
        let (meta_c, data_c) = (meta.clone(), snapshot.clone());
        self.off_task(move || me.persist(&meta_c, &data_c)).await?;
        let index = meta.last_log_id.as_ref().map_or(0, |l| l.index);
        {
            let mut d = self.shared.data.write().expect("state lock");
            *d = SmData { state, last_applied: meta.last_log_id, membership: meta.last_membership.clone() };
        }
        *self.shared.current.lock().expect("snapshot lock") = Some(Snapshot { meta: meta.clone(), snapshot });
        self.shared.applied.send_replace(index);
        tracing::info!(index, "installed snapshot from leader");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        Ok(self.shared.current.lock().expect("snapshot lock").clone())
    }
}
