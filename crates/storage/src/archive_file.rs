//! Archive segment files: settled history that left the replicated state, one file per
//! `ArchiveSettled` log index, written atomically and never changed afterwards.
//!
//! The bytes are the ledger's own segment encoding (magic, version, length, CRC-32C); this
//! module names them `seg-<index>.pda` (the index zero-padded to 20 digits, so names sort by
//! index) and writes them as snapshots are written: `seg-<index>.tmp`, fsync, rename, fsync
//! the directory. A segment is a pure function of the log up to its index, so writing it
//! again (a restarted node replaying the log) writes the same bytes.

use crate::disk::{Disk, StdDisk};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The archive directory.
#[derive(Clone, Debug)]
pub struct ArchiveFiles {
    dir: PathBuf,
    disk: Arc<dyn Disk>,
}

impl ArchiveFiles {
    /// Uses (and creates) `dir` on the real disk.
    pub fn open(dir: &Path) -> io::Result<ArchiveFiles> {
        ArchiveFiles::open_with(Arc::new(StdDisk), dir)
    }

    /// Uses (and creates) `dir` on `disk`, removing temporary files of an interrupted write.
    pub fn open_with(disk: Arc<dyn Disk>, dir: &Path) -> io::Result<ArchiveFiles> {
        disk.create_dir_all(dir)?;
        for path in disk.list(dir)? {
            if path.extension().is_some_and(|e| e == "tmp") {
                disk.remove(&path)?;
            }
        }
        Ok(ArchiveFiles { dir: dir.to_path_buf(), disk })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the segment of `index` lives.
    pub fn path(&self, index: u64) -> PathBuf {
        self.dir.join(format!("seg-{index:020}.pda"))
    }

    /// Writes the segment of `index` durably; after a crash it is either whole or absent.
    pub fn write(&self, index: u64, bytes: &[u8]) -> io::Result<PathBuf> {
        let final_name = format!("seg-{index:020}.pda");
        let tmp_name = format!("seg-{index:020}.tmp");
        self.disk.write_atomic(&self.dir, &tmp_name, &final_name, bytes)?;
        Ok(self.dir.join(final_name))
    }

    /// Removes the segment of `index` if it exists (one written for a command that then moved
    /// nothing).
    pub fn remove(&self, index: u64) -> io::Result<()> {
        match self.disk.remove(&self.path(index)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// The bytes of the segment of `index`, if this node has it.
    pub fn read(&self, index: u64) -> io::Result<Option<Vec<u8>>> {
        match self.disk.read(&self.path(index)) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The indexes of the segments this node has, ascending.
    pub fn indexes(&self) -> io::Result<Vec<u64>> {
        let mut out: Vec<u64> = self
            .disk
            .list(&self.dir)?
            .iter()
            .filter_map(|p| p.file_name()?.to_str()?.strip_prefix("seg-")?.strip_suffix(".pda")?.parse().ok())
            .collect();
        out.sort_unstable();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_segment_written_is_read_back_listed_by_index_and_an_interrupted_write_is_cleared() {
        let dir = tempfile::tempdir().expect("temp dir");
        let files = ArchiveFiles::open(dir.path()).expect("open");
        files.write(120, b"second").expect("write");
        files.write(7, b"first").expect("write");
        assert_eq!(files.indexes().expect("list"), vec![7, 120]);
        assert_eq!(files.read(7).expect("read"), Some(b"first".to_vec()));
        assert_eq!(files.read(8).expect("read"), None, "a segment this node lacks");
        std::fs::write(dir.path().join("seg-00000000000000000130.tmp"), b"torn").expect("torn");
        let reopened = ArchiveFiles::open(dir.path()).expect("reopen");
        assert_eq!(reopened.indexes().expect("list"), vec![7, 120]);
        assert!(!dir.path().join("seg-00000000000000000130.tmp").exists());
    }
}
