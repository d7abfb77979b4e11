//! The storage crate's [`Disk`] over turmoil's simulated file system.
//!
//! turmoil supplies the crash model: writes not yet synced are lost when a host crashes, and
//! a file never synced disappears. On top of that this module injects, per node and under the
//! nemesis's control, the faults a real disk has: EIO on any operation, ENOSPC on writes, and
//! silent corruption of bytes read (a flipped bit that only a checksum can catch). It also
//! counts the snapshot files written, for the coverage report (`paths.rs`).

use crate::paths::NodeProbe;
use crate::rng::Rng;
use paddock_storage::Disk;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use turmoil::fs::shim::std::fs as tfs;

/// Faults switched on for one node's disk.
#[derive(Debug, Default)]
pub struct DiskFaults {
    /// Every operation fails with EIO.
    pub eio: bool,
    /// Writes fail with ENOSPC.
    pub full: bool,
    /// Reads return corrupted bytes with this probability (per mille per read).
    pub corrupt_reads_per_mille: u64,
    /// Draws for corruption.
    pub rng: Option<Rng>,
    /// How many corrupted reads were served (the report shows the fault did fire).
    pub corrupted: u64,
}

/// Shared handle to a node's fault switches.
pub type FaultHandle = Arc<Mutex<DiskFaults>>;

/// A node's simulated disk, for one incarnation of the node.
#[derive(Debug, Clone)]
pub struct SimDisk {
    faults: Incarnation,
    probe: Arc<NodeProbe>,
}

/// The fault switches plus this incarnation's liveness. When the simulator crashes a node it
/// marks the incarnation dead first: objects of the dead process that are dropped afterwards
/// (redb flushes on close) must not write to the disk the restarted node will find, or a
/// crash would look like a clean shutdown.
#[derive(Debug, Clone)]
pub struct Incarnation {
    /// Switches shared by every incarnation of the node.
    pub faults: FaultHandle,
    /// False once this incarnation has crashed.
    pub alive: Arc<std::sync::atomic::AtomicBool>,
}

impl SimDisk {
    /// A disk for one incarnation, reporting what it sees to the node's probe.
    pub fn new(faults: Incarnation, probe: Arc<NodeProbe>) -> SimDisk {
        SimDisk { faults, probe }
    }
}

fn check(inc: &Incarnation, write: bool) -> io::Result<()> {
    if !inc.alive.load(std::sync::atomic::Ordering::SeqCst) {
        return Err(io::Error::other("this process has crashed"));
    }
    let f = inc.faults.lock().expect("disk faults lock");
    if f.eio {
        return Err(io::Error::other("simulated EIO"));
    }
    if write && f.full {
        return Err(io::Error::new(io::ErrorKind::StorageFull, "simulated ENOSPC"));
    }
    Ok(())
}

fn maybe_corrupt(inc: &Incarnation, buf: &mut [u8]) {
    if buf.is_empty() {
        return;
    }
    let mut f = inc.faults.lock().expect("disk faults lock");
    let per_mille = f.corrupt_reads_per_mille;
    if per_mille == 0 {
        return;
    }
    let Some(rng) = f.rng.as_mut() else { return };
    if rng.chance(per_mille) {
        let at = rng.below(buf.len() as u64) as usize;
        let bit = rng.below(8) as u8;
        buf[at] ^= 1 << bit;
        f.corrupted += 1;
    }
}

/// A redb storage backend over a turmoil file.
#[derive(Debug)]
struct SimFile {
    file: tfs::File,
    faults: Incarnation,
}

impl redb::StorageBackend for SimFile {
    fn len(&self) -> io::Result<u64> {
        check(&self.faults, false)?;
        Ok(self.file.metadata()?.len())
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        check(&self.faults, false)?;
        self.file.read_exact_at(out, offset)?;
        maybe_corrupt(&self.faults, out);
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        check(&self.faults, true)?;
        self.file.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        check(&self.faults, false)?;
        self.file.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        check(&self.faults, true)?;
        self.file.write_all_at(data, offset)
    }
}

impl Disk for SimDisk {
    fn db_backend(&self, path: &Path) -> io::Result<Box<dyn redb::StorageBackend>> {
        check(&self.faults, false)?;
        let file = tfs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?;
        // A new file is lost in a crash until it has been synced once; redb's first commit
        // syncs it, and the directory entry is made durable here.
        if let Some(parent) = path.parent() {
            tfs::sync_dir(parent)?;
        }
        Ok(Box::new(SimFile { file, faults: self.faults.clone() }))
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        check(&self.faults, true)?;
        tfs::create_dir_all(dir)?;
        if let Some(parent) = dir.parent() {
            tfs::sync_dir(parent)?;
        }
        Ok(())
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        check(&self.faults, false)?;
        let mut buf = Vec::new();
        tfs::File::open(path)?.read_to_end(&mut buf)?;
        maybe_corrupt(&self.faults, &mut buf);
        Ok(buf)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        check(&self.faults, false)?;
        let mut out: Vec<PathBuf> = tfs::read_dir(dir)?.map(|e| e.map(|e| e.path())).collect::<io::Result<_>>()?;
        // Directory order must not leak nondeterminism into the run.
        out.sort();
        Ok(out)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        check(&self.faults, true)?;
        tfs::remove_file(path)
    }

    fn file_len(&self, path: &Path) -> io::Result<u64> {
        check(&self.faults, false)?;
        Ok(tfs::File::open(path)?.metadata()?.len())
    }

    fn read_at(&self, path: &Path, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        check(&self.faults, false)?;
        let file = tfs::File::open(path)?;
        let end = file.metadata()?.len().min(offset.saturating_add(len as u64));
        let mut out = vec![0; end.saturating_sub(offset) as usize];
        file.read_exact_at(&mut out, offset)?;
        maybe_corrupt(&self.faults, &mut out);
        Ok(out)
    }

    fn append(&self, path: &Path, bytes: &[u8], truncate: bool) -> io::Result<()> {
        check(&self.faults, true)?;
        let file = tfs::OpenOptions::new().read(true).write(true).create(true).truncate(truncate).open(path)?;
        let end = file.metadata()?.len();
        file.write_all_at(bytes, end)
    }

    fn commit(&self, dir: &Path, tmp_name: &str, final_name: &str) -> io::Result<()> {
        check(&self.faults, true)?;
        let tmp = dir.join(tmp_name);
        tfs::OpenOptions::new().read(true).write(true).open(&tmp)?.sync_all()?;
        tfs::rename(&tmp, dir.join(final_name))?;
        tfs::sync_dir(dir)?;
        if final_name.starts_with("snap-") && final_name.ends_with(".pds") {
            self.probe.snapshot_files_written.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        Ok(())
    }
}

/// Rot at rest, applied before a node starts (the nemesis's `DiskRot`): by `pick`, one bit of
/// one log entry's stored frame (two times in three), or one bit of every snapshot file.
/// Returns what was damaged, for the trace.
pub(crate) fn rot(disk: &SimDisk, data_dir: &Path, pick: u64) -> String {
    if pick.is_multiple_of(3) {
        let dir = data_dir.join(paddock_consensus::SNAPSHOT_DIR);
        let Ok(files) = disk.list(&dir) else { return "no snapshot directory".into() };
        let mut damaged = 0;
        for path in files {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if !(name.starts_with("snap-") && name.ends_with(".pds")) {
                continue;
            }
            let flipped = (|| -> io::Result<()> {
                let file = tfs::OpenOptions::new().read(true).write(true).open(&path)?;
                let len = file.metadata()?.len();
                if len == 0 {
                    return Ok(());
                }
                let at = (pick / 3) % len;
                let mut byte = [0u8];
                file.read_exact_at(&mut byte, at)?;
                byte[0] ^= 1 << (pick % 8);
                file.write_all_at(&byte, at)?;
                file.sync_all()
            })();
            if flipped.is_ok() {
                damaged += 1;
            }
        }
        return format!("{damaged} snapshot files");
    }
    let path = data_dir.join(paddock_consensus::LOG_FILE);
    let opened = paddock_storage::LogStore::open_with(
        disk,
        &path,
        paddock_storage::WriterMode::Inline,
        paddock_storage::FaultSwitches::default(),
    );
    match opened.and_then(|log| log.rot_entry(pick)) {
        Ok(Some(index)) => format!("log entry {index}"),
        Ok(None) => "an empty log".into(),
        Err(e) => format!("nothing (the log would not open: {e})"),
    }
}
