//! Durable storage for a Paddock node. Knows bytes, files and fsync; knows nothing of Raft.
//!
//! # Layout
//! - [`frame`]: the record frame every persistent value is wrapped in (magic, version, CRC).
//! - [`log`]: the Raft log on redb, written by one thread with group commit.
//! - [`snapshot_file`]: snapshot files written atomically (temp, fsync, rename, fsync dir).
//! - [`archive_file`]: archive segment files (settled history out of the replicated state).
//! - [`archive_index`]: the on-disk index of archived bets by account (derived, rebuildable).
//! - [`data_dir`]: the data-directory lock and the cluster identity file.
//! - [`disk`]: the file operations storage needs, the seam a simulator replaces.
//!
//! # Architecture invariants
//! - An append is reported durable only after the fsync of the transaction that holds it.
//! - Log, vote, committed-index and purge writes go through one ordered queue, so they reach
//!   the disk in the order the caller issued them.
//! - A write error poisons the store: every later write fails. After a failed fsync the page
//!   cache may already have dropped the data ("fsyncgate"), so retrying could report a write
//!   durable that never reached the disk; the process must restart and recover from the log.
//! - The consensus crate converts its own types into bytes; this crate never names openraft.

pub mod archive_file;
pub mod archive_index;
pub mod data_dir;
pub mod disk;
pub mod frame;
pub mod log;
pub mod snapshot_file;

pub use archive_file::ArchiveFiles;
pub use archive_index::ArchiveIndex;
pub use data_dir::{DataDir, DataDirError, Identity};
pub use disk::{Disk, StdDisk};
pub use frame::FrameError;
pub use log::{Discard, FaultSwitches, LogScan, LogStore, MetaKey, NewerEntry, WriterMode};
pub use snapshot_file::{Fill, SnapshotFile, SnapshotFiles};
