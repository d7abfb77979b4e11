//! Snapshot files, written atomically and checked on read.
//!
//! ```text
//! offset  size  field
//! 0       8     magic "PDKSNAPF"
//! 8       2     format version (1)
//! 10      8     last included log index
//! 18      4     meta length m
//! 22      m     meta (the consensus crate's encoding of the snapshot's log id and membership)
//! 22+m    8     data length n
//! 30+m    n     data (the ledger's own snapshot encoding, itself checksummed)
//! 30+m+n  4     CRC-32C of everything before
//! ```
//!
//! Written as `snap-<index>.tmp`, fsynced, renamed to `snap-<index>.pds`, then the directory is
//! fsynced, so a crash leaves either the old set of snapshots or the new one, never a torn
//! file under a final name. A snapshot arriving from a peer is the sender's file, byte for
//! byte: appended piece by piece to `incoming.tmp`, checked whole, then committed the same way
//! (fsync, rename, fsync the directory), so its size is bounded by the disk, not by memory. The two newest snapshots are kept: if the newest is damaged the
//! node can fall back one and replay more log.

use crate::disk::{Disk, StdDisk};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Snapshot file magic.
pub const SNAPSHOT_FILE_MAGIC: [u8; 8] = *b"PDKSNAPF";
/// Snapshot file format version this build writes and reads.
pub const SNAPSHOT_FILE_VERSION: u16 = 1;
const KEEP: usize = 2;
/// How much of a streamed snapshot is gathered before it is appended to its file.
const WRITE_PIECE: usize = 4 * 1024 * 1024;
/// The snapshot arriving from a peer, written piece by piece (a temporary file).
const INCOMING: &str = "incoming.tmp";

/// A snapshot as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotFile {
    /// Last log index included.
    pub index: u64,
    /// Consensus metadata bytes.
    pub meta: Vec<u8>,
    /// State bytes.
    pub data: Vec<u8>,
}

/// The snapshot directory.
#[derive(Clone, Debug)]
pub struct SnapshotFiles {
    dir: PathBuf,
    disk: Arc<dyn Disk>,
}

/// What streams a snapshot's data: called once with the sink the data goes to, a piece at a time.
pub type Fill<'a> = dyn FnMut(&mut dyn FnMut(&[u8]) -> io::Result<()>) -> io::Result<()> + 'a;

/// The length of a snapshot file holding `meta_len` bytes of meta and `data_len` of data: the
/// fixed header fields (30 bytes), both parts, and the CRC-32C.
fn file_len(meta_len: usize, data_len: u64) -> u64 {
    30 + meta_len as u64 + data_len + 4
}

/// A snapshot file's bytes into `out` (the one writer of the layout above): the header, the
/// data `fill` streams (checked to be `data_len` bytes), and the CRC-32C of everything before it.
fn stream_parts(
    index: u64,
    meta: &[u8],
    data_len: u64,
    fill: &mut Fill<'_>,
    out: &mut dyn FnMut(&[u8]) -> io::Result<()>,
) -> io::Result<()> {
    let mut header = Vec::with_capacity(usize::try_from(file_len(meta.len(), 0)).unwrap_or(0));
    header.extend_from_slice(&SNAPSHOT_FILE_MAGIC);
    header.extend_from_slice(&SNAPSHOT_FILE_VERSION.to_le_bytes());
    header.extend_from_slice(&index.to_le_bytes());
    header.extend_from_slice(&(meta.len() as u32).to_le_bytes());
    header.extend_from_slice(meta);
    header.extend_from_slice(&data_len.to_le_bytes());
    out(&header)?;
    let mut crc = crc32c::crc32c(&header);
    let mut data_written = 0u64;
    fill(&mut |piece| {
        data_written += piece.len() as u64;
        crc = crc32c::crc32c_append(crc, piece);
        out(piece)
    })?;
    if data_written != data_len {
        return Err(io::Error::other(format!(
            "snapshot {index}: {data_written} bytes of state written where {data_len} were announced"
        )));
    }
    out(&crc.to_le_bytes())
}

fn invalid(path: &Path, what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("snapshot {}: {what}", path.display()))
}

impl SnapshotFiles {
    /// Uses (and creates) `dir` on the real disk, removing leftover temporary files of an
    /// interrupted write.
    pub fn open(dir: &Path) -> io::Result<SnapshotFiles> {
        SnapshotFiles::open_with(Arc::new(StdDisk), dir)
    }

    /// Uses (and creates) `dir` on `disk`.
    pub fn open_with(disk: Arc<dyn Disk>, dir: &Path) -> io::Result<SnapshotFiles> {
        disk.create_dir_all(dir)?;
        for path in disk.list(dir)? {
            if path.extension().is_some_and(|e| e == "tmp") {
                disk.remove(&path)?;
            }
        }
        Ok(SnapshotFiles { dir: dir.to_path_buf(), disk })
    }

    /// Encodes a snapshot file.
    pub fn encode(snapshot: &SnapshotFile) -> Vec<u8> {
        Self::encode_parts(snapshot.index, &snapshot.meta, &snapshot.data)
    }

    /// Encodes a snapshot file from its parts, copying each once.
    pub fn encode_parts(index: u64, meta: &[u8], data: &[u8]) -> Vec<u8> {
        Self::encode_streamed(index, meta, data.len() as u64, &mut |sink| sink(data))
            .expect("encoding into memory cannot fail, and the data is the length announced")
    }

    /// Decodes and checks a snapshot file's bytes.
    pub fn decode(path: &Path, bytes: &[u8]) -> io::Result<SnapshotFile> {
        let (index, meta, data) = Self::parse(path, bytes)?;
        Ok(SnapshotFile { index, meta: meta.to_vec(), data: data.to_vec() })
    }

    /// [`SnapshotFiles::decode`] of bytes read whole, reusing them for the data rather than
    /// copying it: a large snapshot is held once while it loads, not twice.
    pub fn decode_owned(path: &Path, mut bytes: Vec<u8>) -> io::Result<SnapshotFile> {
        let (index, meta, data_at) = {
            let (index, meta, data) = Self::parse(path, &bytes)?;
            let start = data.as_ptr() as usize - bytes.as_ptr() as usize;
            (index, meta.to_vec(), start..start + data.len())
        };
        bytes.truncate(data_at.end);
        bytes.drain(..data_at.start);
        Ok(SnapshotFile { index, meta, data: bytes })
    }

    /// Checks a snapshot file's bytes (magic, version, lengths, CRC-32C) and names its parts
    /// where they lie, without copying them: its index, meta and data.
    pub fn parse<'a>(path: &Path, bytes: &'a [u8]) -> io::Result<(u64, &'a [u8], &'a [u8])> {
        let take = |at: usize, n: usize| bytes.get(at..at + n).ok_or_else(|| invalid(path, "truncated"));
        if take(0, 8)? != SNAPSHOT_FILE_MAGIC {
            return Err(invalid(path, "bad magic"));
        }
        let version = u16::from_le_bytes(take(8, 2)?.try_into().expect("2 bytes"));
        if version != SNAPSHOT_FILE_VERSION {
            return Err(invalid(path, &format!("format version {version} not supported")));
        }
        if bytes.len() < 4 {
            return Err(invalid(path, "truncated"));
        }
        let body_len = bytes.len() - 4;
        let stored = u32::from_le_bytes(bytes[body_len..].try_into().expect("4 bytes"));
        if crc32c::crc32c(&bytes[..body_len]) != stored {
            return Err(invalid(path, "checksum mismatch"));
        }
        let index = u64::from_le_bytes(take(10, 8)?.try_into().expect("8 bytes"));
        let meta_len = u32::from_le_bytes(take(18, 4)?.try_into().expect("4 bytes")) as usize;
        let meta = take(22, meta_len)?;
        let data_len = u64::from_le_bytes(take(22 + meta_len, 8)?.try_into().expect("8 bytes")) as usize;
        let data = take(30 + meta_len, data_len)?;
        if 30 + meta_len + data_len != body_len {
            return Err(invalid(path, "length fields disagree with file size"));
        }
        Ok((index, meta, data))
    }

    fn final_path(&self, index: u64) -> PathBuf {
        self.dir.join(format!("snap-{index:020}.pds"))
    }

    /// The snapshot directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path of the snapshot file of `index`.
    pub fn path(&self, index: u64) -> PathBuf {
        self.final_path(index)
    }

    /// The length of the snapshot file of `index`.
    pub fn file_len(&self, index: u64) -> io::Result<u64> {
        self.disk.file_len(&self.final_path(index))
    }

    /// Up to `len` bytes of the snapshot file of `index` from `offset` on, unchecked: a reader
    /// of pieces checks the whole file's CRC-32C when it has them all.
    pub fn read_range(&self, index: u64, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        self.disk.read_at(&self.final_path(index), offset, len)
    }

    /// Appends a piece of a snapshot file arriving from a peer to the incoming file
    /// (`incoming.tmp`), emptying it first if `first`. Only one snapshot arrives at a time; a
    /// leftover is removed when the directory is opened, like every temporary file.
    pub fn incoming_append(&self, bytes: &[u8], first: bool) -> io::Result<()> {
        self.disk.append(&self.dir.join(INCOMING), bytes, first)
    }

    /// Up to `len` bytes of the incoming file from `offset` on.
    pub fn incoming_read(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        self.disk.read_at(&self.dir.join(INCOMING), offset, len)
    }

    /// The incoming file's length.
    pub fn incoming_len(&self) -> io::Result<u64> {
        self.disk.file_len(&self.dir.join(INCOMING))
    }

    /// Makes the incoming file, whole and checked by the caller, the snapshot of `index`:
    /// synced, renamed to its final name, the directory synced (no second copy is written),
    /// then all but the newest snapshots dropped.
    pub fn incoming_commit(&self, index: u64) -> io::Result<PathBuf> {
        let len = self.incoming_len()?;
        self.disk.commit(&self.dir, INCOMING, &format!("snap-{index:020}.pds"))?;
        metrics::gauge!("paddock_snapshot_size_bytes").set(len as f64);
        self.prune()?;
        Ok(self.final_path(index))
    }

    fn prune(&self) -> io::Result<()> {
        let mut all = self.list()?;
        all.sort_unstable_by(|a, b| b.cmp(a));
        for (_, path) in all.into_iter().skip(KEEP) {
            self.disk.remove(&path)?;
        }
        Ok(())
    }

    /// Writes a snapshot durably and drops all but the newest ones.
    pub fn write(&self, snapshot: &SnapshotFile) -> io::Result<PathBuf> {
        self.write_parts(snapshot.index, &snapshot.meta, &snapshot.data)
    }

    /// [`SnapshotFiles::write`] from the snapshot's parts: the state's bytes are copied once,
    /// into the file's.
    pub fn write_parts(&self, index: u64, meta: &[u8], data: &[u8]) -> io::Result<PathBuf> {
        self.write_streamed(index, meta, data.len() as u64, &mut |sink| sink(data))
    }

    /// Writes a snapshot durably whose data `fill` streams, exactly `data_len` bytes handed to
    /// the sink it is given a piece at a time, then drops all but the newest snapshots: a state
    /// of any size is written without its encoding ever being held whole (every snapshot file
    /// is written this way; [`SnapshotFiles::write_parts`] streams parts it holds). A `fill`
    /// that fails or writes another length leaves only a temporary file, removed on the next
    /// open.
    pub fn write_streamed(&self, index: u64, meta: &[u8], data_len: u64, fill: &mut Fill<'_>) -> io::Result<PathBuf> {
        let started = Instant::now();
        let final_name = format!("snap-{index:020}.pds");
        let tmp_name = format!("snap-{index:020}.tmp");
        let tmp = self.dir.join(&tmp_name);
        let mut out = Vec::with_capacity(WRITE_PIECE);
        let mut first = true;
        stream_parts(index, meta, data_len, fill, &mut |piece| {
            if out.len() + piece.len() > WRITE_PIECE {
                self.disk.append(&tmp, &out, first)?;
                first = false;
                out.clear();
            }
            if piece.len() >= WRITE_PIECE {
                // A piece as large as a write goes as it is, not copied first.
                self.disk.append(&tmp, piece, first)?;
                first = false;
            } else {
                out.extend_from_slice(piece);
            }
            Ok(())
        })?;
        self.disk.append(&tmp, &out, first)?;
        self.disk.commit(&self.dir, &tmp_name, &final_name)?;
        metrics::histogram!("paddock_snapshot_write_duration_seconds").record(started.elapsed().as_secs_f64());
        metrics::gauge!("paddock_snapshot_size_bytes").set(file_len(meta.len(), data_len) as f64);
        self.prune()?;
        Ok(self.final_path(index))
    }

    /// A snapshot file's bytes whose data `fill` streams (as [`SnapshotFiles::write_streamed`]
    /// takes it), in one allocation of the file's exact size.
    pub fn encode_streamed(index: u64, meta: &[u8], data_len: u64, fill: &mut Fill<'_>) -> io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(usize::try_from(file_len(meta.len(), data_len)).unwrap_or(0));
        stream_parts(index, meta, data_len, fill, &mut |piece| {
            out.extend_from_slice(piece);
            Ok(())
        })?;
        Ok(out)
    }

    /// The snapshot file of `index`, checked (magic, version, checksum): its bytes as on disk.
    pub fn read_checked(&self, index: u64) -> io::Result<Vec<u8>> {
        let path = self.final_path(index);
        let bytes = self.disk.read(&path)?;
        Self::parse(&path, &bytes)?;
        Ok(bytes)
    }

    /// The snapshot file of `index`, read and decoded.
    pub fn read(&self, index: u64) -> io::Result<SnapshotFile> {
        let path = self.final_path(index);
        let bytes = self.disk.read(&path)?;
        Self::decode_owned(&path, bytes)
    }

    fn list(&self) -> io::Result<Vec<(u64, PathBuf)>> {
        let mut out = Vec::new();
        for path in self.disk.list(&self.dir)? {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if let Some(index) = name.strip_prefix("snap-").and_then(|n| n.strip_suffix(".pds")) {
                if let Ok(index) = index.parse::<u64>() {
                    out.push((index, path));
                }
            }
        }
        Ok(out)
    }

    /// The newest snapshot that reads back intact. Damaged files are reported through
    /// `on_damaged` and skipped, so an older good snapshot plus the log can still recover.
    pub fn latest(&self, mut on_damaged: impl FnMut(&Path, &io::Error)) -> io::Result<Option<SnapshotFile>> {
        let mut all = self.list()?;
        all.sort_unstable_by(|a, b| b.cmp(a));
        for (_, path) in all {
            let bytes = self.disk.read(&path)?;
            match Self::decode_owned(&path, bytes) {
                Ok(s) => return Ok(Some(s)),
                Err(e) => on_damaged(&path, &e),
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn snap(index: u64) -> SnapshotFile {
        SnapshotFile { index, meta: format!("meta{index}").into_bytes(), data: vec![index as u8; 100] }
    }

    #[test]
    fn the_newest_intact_snapshot_is_loaded_and_only_two_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let files = SnapshotFiles::open(dir.path()).unwrap();
        for i in [5, 10, 15] {
            files.write(&snap(i)).unwrap();
        }
        assert_eq!(files.list().unwrap().len(), 2);
        assert_eq!(files.latest(|_, _| panic!("no damage")).unwrap(), Some(snap(15)));
    }

    #[test]
    fn a_snapshot_streamed_in_pieces_is_the_file_written_whole_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let whole = SnapshotFiles::open(&dir.path().join("whole")).unwrap();
        let streamed = SnapshotFiles::open(&dir.path().join("streamed")).unwrap();
        // Bigger than one write piece, so the file is appended to several times.
        let data: Vec<u8> = (0..WRITE_PIECE as u64 * 2 + 77).map(|i| (i * 31 % 251) as u8).collect();
        let snapshot = SnapshotFile { index: 9, meta: b"meta".to_vec(), data: data.clone() };
        whole.write(&snapshot).unwrap();
        streamed
            .write_streamed(9, b"meta", data.len() as u64, &mut |sink| data.chunks(1000).try_for_each(&mut *sink))
            .unwrap();
        assert_eq!(fs::read(streamed.path(9)).unwrap(), fs::read(whole.path(9)).unwrap());
        assert_eq!(streamed.read(9).unwrap(), snapshot);
    }

    #[test]
    fn a_streamed_snapshot_that_is_not_the_length_announced_or_fails_is_never_kept() {
        let dir = tempfile::tempdir().unwrap();
        let files = SnapshotFiles::open(dir.path()).unwrap();
        files.write(&snap(5)).unwrap();
        let short = files.write_streamed(9, b"meta", 10, &mut |sink| sink(&[1; 9]));
        assert!(short.unwrap_err().to_string().contains("9 bytes of state written where 10 were announced"));
        let failed = files.write_streamed(9, b"meta", 10, &mut |sink| {
            sink(&[1; 5])?;
            Err(io::Error::other("disk full"))
        });
        assert_eq!(failed.unwrap_err().to_string(), "disk full");
        assert_eq!(
            files.latest(|_, _| panic!("no damage")).unwrap(),
            Some(snap(5)),
            "the old snapshot stays the newest"
        );
        assert!(SnapshotFiles::open(dir.path()).is_ok());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1, "the temporary file goes on the next open");
    }

    #[test]
    fn a_damaged_newest_snapshot_falls_back_to_the_previous_one() {
        let dir = tempfile::tempdir().unwrap();
        let files = SnapshotFiles::open(dir.path()).unwrap();
        files.write(&snap(5)).unwrap();
        let newest = files.write(&snap(10)).unwrap();
        let mut bytes = fs::read(&newest).unwrap();
        bytes[40] ^= 1;
        fs::write(&newest, bytes).unwrap();
        let mut damaged = Vec::new();
        assert_eq!(files.latest(|p, _| damaged.push(p.to_path_buf())).unwrap(), Some(snap(5)));
        assert_eq!(damaged, vec![newest]);
    }

    #[test]
    fn a_snapshot_arriving_in_pieces_becomes_the_newest_file_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let sender = SnapshotFiles::open(&dir.path().join("leader")).unwrap();
        let receiver = SnapshotFiles::open(&dir.path().join("follower")).unwrap();
        sender.write(&snap(40)).unwrap();
        receiver.write(&snap(5)).unwrap();
        receiver.write(&snap(10)).unwrap();
        let len = sender.file_len(40).unwrap();
        // A first attempt cut short, then the whole file again in 7-byte pieces.
        receiver.incoming_append(&sender.read_range(40, 0, 7).unwrap(), true).unwrap();
        let mut offset = 0;
        while offset < len {
            let piece = sender.read_range(40, offset, 7).unwrap();
            receiver.incoming_append(&piece, offset == 0).unwrap();
            offset += piece.len() as u64;
        }
        assert_eq!(sender.read_range(40, len, 7).unwrap(), Vec::<u8>::new(), "nothing past the end");
        assert_eq!(receiver.incoming_len().unwrap(), len);
        receiver.incoming_commit(40).unwrap();
        assert_eq!(fs::read(receiver.path(40)).unwrap(), fs::read(sender.path(40)).unwrap());
        assert_eq!(receiver.latest(|_, _| panic!("no damage")).unwrap(), Some(snap(40)));
        assert_eq!(receiver.list().unwrap().len(), 2, "the oldest is dropped");
        assert!(!dir.path().join("follower").join(INCOMING).exists());
    }

    #[test]
    fn a_leftover_incoming_snapshot_is_removed_on_open() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(INCOMING), b"half received").unwrap();
        SnapshotFiles::open(dir.path()).unwrap();
        assert!(!dir.path().join(INCOMING).exists());
    }

    #[test]
    fn a_leftover_temporary_file_is_removed_on_open() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("snap-00000000000000000007.tmp"), b"half written").unwrap();
        let files = SnapshotFiles::open(dir.path()).unwrap();
        assert_eq!(files.latest(|_, _| panic!("tmp files are not snapshots")).unwrap(), None);
        assert!(!dir.path().join("snap-00000000000000000007.tmp").exists());
    }
}
