//! The disk as the storage crate sees it: the one seam where a simulator substitutes a disk
//! that loses unsynced writes, tears them, fails them or flips bits.
//!
//! Production uses [`StdDisk`]: `std::fs` and redb's own file backend.

use std::fmt::Debug;
use std::io;
use std::path::{Path, PathBuf};

/// File operations Paddock's storage needs.
pub trait Disk: Debug + Send + Sync + 'static {
    /// A redb storage backend over the file at `path`, created if missing.
    fn db_backend(&self, path: &Path) -> io::Result<Box<dyn redb::StorageBackend>>;
    /// Creates `dir` and its parents.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Writes `bytes` to `dir/tmp_name`, syncs it, renames it to `dir/final_name`, and syncs
    /// the directory: after a crash either the old or the new file exists, never a torn one.
    fn write_atomic(&self, dir: &Path, tmp_name: &str, final_name: &str, bytes: &[u8]) -> io::Result<()> {
        self.append(&dir.join(tmp_name), bytes, true)?;
        self.commit(dir, tmp_name, final_name)
    }
    /// Reads a whole file.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// The files in `dir`.
    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>>;
    /// Removes a file.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// A file's length in bytes.
    fn file_len(&self, path: &Path) -> io::Result<u64>;
    /// Up to `len` bytes of a file from `offset` on (fewer at its end): a large file read a
    /// piece at a time.
    fn read_at(&self, path: &Path, offset: u64, len: usize) -> io::Result<Vec<u8>>;
    /// Appends `bytes` to a file, creating it if missing; `truncate` empties it first. Not
    /// synced: a file written in pieces is made durable by [`Disk::commit`].
    fn append(&self, path: &Path, bytes: &[u8], truncate: bool) -> io::Result<()>;
    /// Syncs `dir/tmp_name`, renames it to `dir/final_name` and syncs the directory: the end of
    /// a file written in pieces, with [`Disk::write_atomic`]'s guarantee.
    fn commit(&self, dir: &Path, tmp_name: &str, final_name: &str) -> io::Result<()>;
}

/// The real disk.
#[derive(Debug, Default, Clone, Copy)]
pub struct StdDisk;

impl Disk for StdDisk {
    fn db_backend(&self, path: &Path) -> io::Result<Box<dyn redb::StorageBackend>> {
        let file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?;
        Ok(Box::new(redb::backends::FileBackend::new(file).map_err(|e| io::Error::other(e.to_string()))?))
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        std::fs::read_dir(dir)?.map(|e| e.map(|e| e.path())).collect()
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn file_len(&self, path: &Path) -> io::Result<u64> {
        Ok(std::fs::metadata(path)?.len())
    }

    fn read_at(&self, path: &Path, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        use std::os::unix::fs::FileExt;
        let file = std::fs::File::open(path)?;
        let end = file.metadata()?.len().min(offset.saturating_add(len as u64));
        let mut out = vec![0; end.saturating_sub(offset) as usize];
        file.read_exact_at(&mut out, offset)?;
        Ok(out)
    }

    fn append(&self, path: &Path, bytes: &[u8], truncate: bool) -> io::Result<()> {
        use std::io::Write;
        let mut options = std::fs::OpenOptions::new();
        if truncate {
            options.write(true).create(true).truncate(true);
        } else {
            options.append(true).create(true);
        }
        options.open(path)?.write_all(bytes)
    }

    fn commit(&self, dir: &Path, tmp_name: &str, final_name: &str) -> io::Result<()> {
        let tmp = dir.join(tmp_name);
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, dir.join(final_name))?;
        std::fs::File::open(dir)?.sync_all()
    }
}

/// A boxed backend is a backend: lets `Disk` hand out any implementation. Every method is
/// delegated, locks included, so the file backend's double-open protection still works.
#[derive(Debug)]
pub(crate) struct BoxedBackend(pub(crate) Box<dyn redb::StorageBackend>);

type Range = std::ops::Bound<u64>;

impl redb::StorageBackend for BoxedBackend {
    fn len(&self) -> io::Result<u64> {
        self.0.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        self.0.read(offset, out)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.0.write(offset, data)
    }
    fn close(&self) -> io::Result<()> {
        self.0.close()
    }
    fn try_lock_range(&self, start: Range, end: Range) -> Result<bool, redb::BackendError> {
        self.0.try_lock_range(start, end)
    }
    fn try_lock_shared_range(&self, start: Range, end: Range) -> Result<bool, redb::BackendError> {
        self.0.try_lock_shared_range(start, end)
    }
    fn lock_range(&self, start: Range, end: Range) -> Result<(), redb::BackendError> {
        self.0.lock_range(start, end)
    }
    fn lock_shared_range(&self, start: Range, end: Range) -> Result<(), redb::BackendError> {
        self.0.lock_shared_range(start, end)
    }
    fn unlock_range(&self, start: Range, end: Range) -> Result<(), redb::BackendError> {
        self.0.unlock_range(start, end)
    }
    fn query_lock_range(&self, start: Range, end: Range) -> Result<bool, redb::BackendError> {
        self.0.query_lock_range(start, end)
    }
}
