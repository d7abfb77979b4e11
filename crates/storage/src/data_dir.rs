//! The data directory: an exclusive lock and the identity of the node that owns it.
//!
//! Two processes on one data directory would interleave two Raft logs into one file; a node
//! started with another cluster's data would vote in the wrong cluster. Both are refused here
//! with a clear message (RELIABILITY.md, "operator" faults).

use crate::frame;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

const KIND_IDENTITY: u8 = 3;
const IDENTITY_VERSION: u8 = 1;

/// Which cluster and node a data directory belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// Cluster name, chosen at bootstrap.
    pub cluster_id: String,
    /// This node's id.
    pub node_id: u64,
}

/// Why a data directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    /// Another process holds the lock.
    #[error("data directory {0} is in use by another paddock process (lock held on {0}/LOCK)")]
    Locked(PathBuf),
    /// The directory belongs to another cluster or node.
    #[error("data directory {dir} belongs to cluster {found_cluster:?} node {found_node}, not cluster {cluster:?} node {node}; refusing to start")]
    WrongIdentity {
        /// Directory.
        dir: PathBuf,
        /// Cluster on disk.
        found_cluster: String,
        /// Node on disk.
        found_node: u64,
        /// Cluster configured.
        cluster: String,
        /// Node configured.
        node: u64,
    },
    /// The identity file is damaged.
    #[error("identity file {0} is damaged: {1}")]
    Damaged(PathBuf, String),
    /// Any other I/O failure.
    #[error("data directory I/O error: {0}")]
    Io(#[from] io::Error),
}

/// An open, locked data directory. The lock is released when this is dropped (or the process dies).
#[derive(Debug)]
pub struct DataDir {
    path: PathBuf,
    _lock: File,
}

impl DataDir {
    /// Creates the directory if needed and takes its lock, without waiting.
    pub fn open(path: &Path) -> Result<DataDir, DataDirError> {
        fs::create_dir_all(path)?;
        let lock = OpenOptions::new().create(true).truncate(false).write(true).open(path.join("LOCK"))?;
        match lock.try_lock() {
            Ok(()) => Ok(DataDir { path: path.to_path_buf(), _lock: lock }),
            Err(fs::TryLockError::WouldBlock) => Err(DataDirError::Locked(path.to_path_buf())),
            Err(fs::TryLockError::Error(e)) => Err(e.into()),
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The identity on disk, if one was written.
    pub fn identity(&self) -> Result<Option<Identity>, DataDirError> {
        let file = self.path.join("IDENTITY");
        let bytes = match fs::read(&file) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let (_, payload) = frame::decode(KIND_IDENTITY, IDENTITY_VERSION, &bytes)
            .map_err(|e| DataDirError::Damaged(file.clone(), e.to_string()))?;
        if payload.len() < 8 {
            return Err(DataDirError::Damaged(file, "too short".into()));
        }
        let node_id = u64::from_le_bytes(payload[..8].try_into().expect("8 bytes"));
        let cluster_id =
            String::from_utf8(payload[8..].to_vec()).map_err(|e| DataDirError::Damaged(file.clone(), e.to_string()))?;
        Ok(Some(Identity { cluster_id, node_id }))
    }

    /// Checks the directory belongs to `expected`, writing the identity on first use.
    pub fn claim(&self, expected: &Identity) -> Result<(), DataDirError> {
        match self.identity()? {
            Some(found) if found == *expected => Ok(()),
            Some(found) => Err(DataDirError::WrongIdentity {
                dir: self.path.clone(),
                found_cluster: found.cluster_id,
                found_node: found.node_id,
                cluster: expected.cluster_id.clone(),
                node: expected.node_id,
            }),
            None => {
                let mut payload = expected.node_id.to_le_bytes().to_vec();
                payload.extend_from_slice(expected.cluster_id.as_bytes());
                let bytes = frame::encode(KIND_IDENTITY, IDENTITY_VERSION, &payload);
                let tmp = self.path.join("IDENTITY.tmp");
                {
                    use std::io::Write;
                    let mut f = File::create(&tmp)?;
                    f.write_all(&bytes)?;
                    f.sync_all()?;
                }
                fs::rename(&tmp, self.path.join("IDENTITY"))?;
                File::open(&self.path)?.sync_all()?;
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_open_of_a_locked_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _first = DataDir::open(dir.path()).unwrap();
        assert!(matches!(DataDir::open(dir.path()), Err(DataDirError::Locked(_))));
    }

    #[test]
    fn a_directory_of_another_cluster_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let d = DataDir::open(dir.path()).unwrap();
        d.claim(&Identity { cluster_id: "alpha".into(), node_id: 1 }).unwrap();
        d.claim(&Identity { cluster_id: "alpha".into(), node_id: 1 }).unwrap();
        let err = d.claim(&Identity { cluster_id: "beta".into(), node_id: 1 }).unwrap_err();
        assert!(err.to_string().contains("belongs to cluster \"alpha\""), "{err}");
    }
}
