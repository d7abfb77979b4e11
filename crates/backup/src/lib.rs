//! Backup chains: what `paddock backup`, `paddock backup verify`, `paddock restore` and a
//! node's own backup schedule share — a chain in a local directory, taken online from any
//! [`Source`] of a node's snapshot and committed log (a node over HTTP, or the node itself),
//! checked file by file and by replay, and restored into fresh data directories at any point.
//!
//! A chain is one directory:
//!
//! - `snap-<index>.pds`: the node's latest snapshot file as it is on the node's disk (magic
//!   `PDKSNAPF`, version, CRC-32C) — the state at a known log index;
//! - `log-<first>-<last>.pdl`: the committed log entries after it, as the nodes store them
//!   (format below) — one file per `paddock backup` run, the increments;
//! - `manifest.json`: the chain in order — each file's name, index range, size, SHA-256, and
//!   the state hash after it (computed by replaying the chain when the file was taken) — with a
//!   SHA-256 of the manifest itself.
//!
//! ```text
//! log file:  magic "PDKBKLOG" | version u16 (1) | first u64 | last u64 | count u64
//!            | count × (index u64 | length u32 | entry record bytes) | CRC-32C u32 of all before
//! ```
//! (little-endian). A restore replays the chain onto its snapshot with the ledger's own
//! `apply`, up to an index or a time, and seeds each new node's data directory with the
//! result (`paddock_consensus::backup::seed_data_dir`).

pub mod dr;
pub mod export;
pub mod remote;
pub mod seal;

pub use seal::Key;

use anyhow::{bail, Context, Result};
use paddock_consensus::backup::{
    decode_entry, decode_snapshot, encode_snapshot_file, replay, seed_data_dir, summarize_snapshot, DecodedEntry,
};
use paddock_consensus::records::LogIdRecord;
use paddock_ledger::State;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The manifest's file name in a chain directory.
pub const MANIFEST: &str = "manifest.json";
/// The chain's replayed end, kept beside it so that the next increment starts from there
/// instead of replaying the whole chain: a node snapshot file of the state after the chain's
/// last file, sealed like the chain. Not part of the chain (the manifest does not name it, a
/// remote target never receives it), used only when its index and state hash are the
/// manifest's last, and rewritten by every increment; `verify` and `restore` never read it.
pub const TIP: &str = "tip.pds";
/// `format` of a manifest.
const MANIFEST_FORMAT: &str = "paddock-backup-manifest";
/// Manifest version this build writes and reads.
const MANIFEST_VERSION: u32 = 1;
/// Log file magic.
pub const LOG_MAGIC: [u8; 8] = *b"PDKBKLOG";
/// Log file version this build writes and reads.
pub const LOG_VERSION: u16 = 1;
/// Entries asked of the node per request.
const PAGE: usize = 10_000;

/// The chain's table of contents.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`MANIFEST_FORMAT`].
    pub format: String,
    /// [`MANIFEST_VERSION`].
    pub version: u32,
    /// The cluster the chain was taken from: an increment from another cluster is refused.
    pub cluster_id: String,
    /// The files, oldest first: one snapshot, then logs.
    pub files: Vec<ChainFile>,
    /// Every file is sealed (zstd, and encrypted when `key_id` is set): see [`seal`]. Absent
    /// in a plain chain.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sealed: bool,
    /// The id of the key the files are encrypted with (never the key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// SHA-256 (hex) of this manifest serialised with this field empty.
    pub sha256: String,
}

/// One file of a chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainFile {
    /// File name in the chain directory.
    pub name: String,
    /// `snapshot` or `log`.
    pub kind: String,
    /// First log index it covers (a snapshot: its index).
    pub first_index: u64,
    /// Last log index it covers.
    pub last_index: u64,
    /// Size in bytes.
    pub bytes: u64,
    /// SHA-256 of the file (hex).
    pub sha256: String,
    /// The state hash after the chain up to and including this file.
    pub state_hash: String,
    /// The book's clock after it (UTC ms, the latest leader timestamp applied).
    pub book_clock_ms: u64,
}

impl Manifest {
    fn digest(&self) -> String {
        let mut bare = self.clone();
        bare.sha256 = String::new();
        hex(&Sha256::digest(serde_json::to_vec(&bare).expect("a manifest serialises")))
    }

    fn last_index(&self) -> u64 {
        self.files.last().map_or(0, |f| f.last_index)
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads and checks a chain's manifest; `None` if the directory has none.
pub fn read_manifest(dir: &Path) -> Result<Option<Manifest>> {
    let path = dir.join(MANIFEST);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    parse_manifest(&path.display().to_string(), &bytes).map(Some)
}

/// Checks a manifest's bytes (format, version, its own SHA-256); `origin` names it in errors.
pub(crate) fn parse_manifest(origin: &str, bytes: &[u8]) -> Result<Manifest> {
    let manifest: Manifest =
        serde_json::from_slice(bytes).with_context(|| format!("{origin}: not a backup manifest"))?;
    if manifest.format != MANIFEST_FORMAT {
        bail!("{origin}: not a Paddock backup manifest (format {})", manifest.format);
    }
    if manifest.version != MANIFEST_VERSION {
        bail!(
            "{origin}: manifest version {} (this build reads {MANIFEST_VERSION}): use the paddock release that wrote it",
            manifest.version
        );
    }
    if manifest.digest() != manifest.sha256 {
        bail!("{origin}: damaged (its SHA-256 does not match its content)");
    }
    Ok(manifest)
}

/// Refuses early, and by the key's id, a chain that needs another key than the one given.
fn check_key(manifest: &Manifest, key: Option<&Key>) -> Result<()> {
    match (&manifest.key_id, key) {
        (Some(id), None) => {
            bail!("the chain is encrypted with key {id}: give that key (--backup-key-file or PADDOCK_BACKUP_KEY)")
        }
        (Some(id), Some(key)) if key.id() != *id => {
            bail!("the chain is encrypted with key {id}, and the key given is {}: give the chain's key", key.id())
        }
        _ => Ok(()),
    }
}

/// Writes `bytes` to `dir/name` durably: a temporary file, fsync, rename, fsync of the directory.
/// A failed write (a full disk) leaves no partial file behind, and `dir/name` as it was.
fn write_durably(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let tmp = write_synced(dir, name, |file| Ok(file.write_all(bytes)?))?;
    publish(dir, &tmp, name)
}

/// A chain file written durably, sealed as the chain's files are (streamed: see
/// [`write_synced`]).
fn write_chain_file(dir: &Path, name: &str, plain: &[u8], sealed: bool, key: Option<&Key>) -> Result<Written> {
    let (tmp, written) = write_chain_file_synced(dir, name, plain, sealed, key)?;
    publish(dir, &tmp, name)?;
    Ok(written)
}

/// [`write_chain_file`] up to its temporary file, written and fsynced but not yet renamed.
fn write_chain_file_synced(
    dir: &Path,
    name: &str,
    plain: &[u8],
    sealed: bool,
    key: Option<&Key>,
) -> Result<(PathBuf, Written)> {
    let (mut sha, mut bytes) = (Sha256::new(), 0u64);
    let tmp = write_synced(dir, name, |file| {
        let mut out = Tap::new(file, |piece: &[u8]| {
            sha.update(piece);
            bytes += piece.len() as u64;
        });
        if sealed {
            seal::seal_into(plain, key, &mut out)
        } else {
            Ok(out.write_all(plain)?)
        }
    })?;
    Ok((tmp, Written { bytes, sha256: hex(&sha.finalize()) }))
}

/// A file written durably: its length and SHA-256, taken on the way.
struct Written {
    bytes: u64,
    sha256: String,
}

/// A writer that shows every piece that passes through it to `seen` (a checksum, a hash, a
/// count), so that a file is checked as it is written instead of read again.
pub(crate) struct Tap<W, F> {
    inner: W,
    seen: F,
}

impl<W: Write, F: FnMut(&[u8])> Tap<W, F> {
    pub(crate) fn new(inner: W, seen: F) -> Tap<W, F> {
        Tap { inner, seen }
    }

    /// The writer it wraps, done with watching.
    pub(crate) fn into_inner(self) -> W {
        self.inner
    }
}

impl<W: Write, F: FnMut(&[u8])> Write for Tap<W, F> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        (self.seen)(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Writes `dir/<name>.tmp` through `fill` and fsyncs it, streamed through a buffer (a sealed
/// file is never held whole). On any error nothing is left behind. [`publish`] gives it its
/// name.
fn write_synced(dir: &Path, name: &str, fill: impl FnOnce(&mut dyn Write) -> Result<()>) -> Result<PathBuf> {
    let tmp = dir.join(format!("{name}.tmp"));
    let written = (|| -> Result<()> {
        let file = std::fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
        fill(&mut out).with_context(|| format!("cannot write {}", tmp.display()))?;
        let file = out
            .into_inner()
            .map_err(|e| e.into_error())
            .with_context(|| format!("cannot write {} (is the disk full?)", tmp.display()))?;
        file.sync_all().with_context(|| format!("cannot fsync {} (is the disk full?)", tmp.display()))
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(tmp)
}

/// Renames a file [`write_synced`] wrote to `dir/name`, and fsyncs the directory.
fn publish(dir: &Path, tmp: &Path, name: &str) -> Result<()> {
    std::fs::rename(tmp, dir.join(name)).with_context(|| format!("cannot rename {}", tmp.display()))?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

fn write_manifest(dir: &Path, manifest: &mut Manifest) -> Result<()> {
    manifest.sha256 = manifest.digest();
    write_durably(dir, MANIFEST, &serde_json::to_vec_pretty(manifest)?)
}

/// Appends entries as `index u64 | length u32 | record`, little-endian, one after another: the
/// body of a log file and of a `GET /v1/backup/log` answer alike.
pub fn encode_entries(out: &mut Vec<u8>, entries: &[(u64, Vec<u8>)]) {
    out.reserve(entries.iter().map(|e| e.1.len() + 12).sum());
    for (index, bytes) in entries {
        out.extend_from_slice(&index.to_le_bytes());
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(bytes);
    }
}

/// Reads what [`encode_entries`] wrote; `None` if an entry is cut short.
pub fn decode_entries(mut bytes: &[u8]) -> Option<Vec<(u64, Vec<u8>)>> {
    let mut entries = Vec::new();
    while !bytes.is_empty() {
        let index = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?);
        let len = u32::from_le_bytes(bytes.get(8..12)?.try_into().ok()?) as usize;
        entries.push((index, bytes.get(12..12 + len)?.to_vec()));
        bytes = &bytes[12 + len..];
    }
    Some(entries)
}

/// Encodes entries (index, record bytes; consecutive) as a log file.
pub fn encode_log(entries: &[(u64, Vec<u8>)]) -> Vec<u8> {
    let first = entries.first().map_or(0, |e| e.0);
    let last = entries.last().map_or(0, |e| e.0);
    let mut out = Vec::with_capacity(34 + entries.iter().map(|e| e.1.len() + 12).sum::<usize>() + 4);
    out.extend_from_slice(&LOG_MAGIC);
    out.extend_from_slice(&LOG_VERSION.to_le_bytes());
    out.extend_from_slice(&first.to_le_bytes());
    out.extend_from_slice(&last.to_le_bytes());
    out.extend_from_slice(&(entries.len() as u64).to_le_bytes());
    encode_entries(&mut out, entries);
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Decodes a log file: its entries, checked for magic, version, CRC, count and consecutive
/// indexes. `name` is used in errors.
pub fn decode_log(name: &str, bytes: &[u8]) -> Result<Vec<(u64, Vec<u8>)>> {
    let damaged = |what: &str| anyhow::anyhow!("{name}: damaged ({what})");
    if bytes.len() < 38 || bytes[..8] != LOG_MAGIC {
        return Err(damaged("not a Paddock backup log file"));
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    if crc32c::crc32c(body).to_le_bytes() != crc {
        return Err(damaged("checksum mismatch: truncated or altered"));
    }
    let u64_at = |at: usize| u64::from_le_bytes(body[at..at + 8].try_into().expect("8 bytes"));
    let version = u16::from_le_bytes([body[8], body[9]]);
    if version != LOG_VERSION {
        bail!("{name}: log file version {version} (this build reads {LOG_VERSION})");
    }
    let (first, last, count) = (u64_at(10), u64_at(18), u64_at(26));
    let entries = decode_entries(&body[34..]).ok_or_else(|| damaged("an entry is cut short"))?;
    if entries.len() as u64 != count
        || entries.first().map(|e| e.0) != Some(first)
        || entries.last().map(|e| e.0) != Some(last)
        || entries.windows(2).any(|w| w[1].0 != w[0].0 + 1)
    {
        return Err(damaged("its entries are not the consecutive range its header names"));
    }
    Ok(entries)
}

/// Where a restore stops.
#[derive(Clone, Copy, Debug)]
pub enum Point {
    /// The end of the chain.
    End,
    /// After log index N (inclusive).
    Index(u64),
    /// After the last entry stamped at or before this UTC ms.
    Time(u64),
}

/// A chain replayed: the state and the last entry applied.
pub struct Replayed {
    /// The state after the last entry applied.
    pub state: State,
    /// That entry's id (the snapshot's last entry if none was applied).
    pub last: LogIdRecord,
    /// The chain's files it holds the state after (each checked, when the chain was replayed).
    pub files: usize,
}

/// Reads the chain in `dir`, checks every file (SHA-256, its own checksum, the index ranges,
/// and the state hash the manifest recorded after it), and replays it up to `point`. Every
/// problem is reported with the file's name.
pub fn replay_chain(dir: &Path, manifest: &Manifest, point: Point, key: Option<&Key>) -> Result<Replayed> {
    replay_chain_with(dir, manifest, point, key, &mut |state, entry| replay(state, entry))
}

/// [`replay_chain`], with each log entry applied by `apply_entry` (which must apply it, as
/// [`replay`] does, and may look at the state before and after: a regulator export does).
pub fn replay_chain_with(
    dir: &Path,
    manifest: &Manifest,
    point: Point,
    key: Option<&Key>,
    apply_entry: &mut dyn FnMut(&mut State, &DecodedEntry),
) -> Result<Replayed> {
    check_key(manifest, key)?;
    let Some(first) = manifest.files.first() else { bail!("{}: the chain is empty", dir.display()) };
    if first.kind != "snapshot" {
        bail!("{}: the chain does not start with a snapshot", first.name);
    }
    check_order(manifest)?;
    let mut replayed: Option<Replayed> = None;
    for file in &manifest.files {
        let mut hash = None;
        let path = dir.join(&file.name);
        let bytes = read_chain_file(dir, file)?;
        let bytes = if manifest.sealed { seal::open(&file.name, &bytes, key)? } else { bytes };
        match (file.kind.as_str(), &mut replayed) {
            ("snapshot", None) => {
                // The state hash of a snapshot is the SHA-256 of its payload as it lies there:
                // read from the bytes, not by encoding the decoded book again.
                let summary = summarize_snapshot(&path, &bytes).with_context(|| format!("{}: damaged", file.name))?;
                hash = Some(summary.summary.state_hash.to_string());
                let snapshot = decode_snapshot(&path, &bytes).with_context(|| format!("{}: damaged", file.name))?;
                if snapshot.last.index != file.last_index {
                    bail!("{}: holds index {}, the manifest says {}", file.name, snapshot.last.index, file.last_index);
                }
                if let Point::Index(n) = point {
                    if n < snapshot.last.index {
                        bail!(
                            "index {n} is before this chain's snapshot (index {}): use an older chain",
                            snapshot.last.index
                        );
                    }
                }
                if let Point::Time(t) = point {
                    if t < snapshot.state.clock().0 {
                        bail!(
                            "time {t} is before this chain's snapshot (book clock {} ms): use an older chain",
                            snapshot.state.clock().0
                        );
                    }
                }
                replayed = Some(Replayed { state: snapshot.state, last: snapshot.last, files: 1 });
            }
            ("log", Some(r)) => {
                let entries = decode_log(&file.name, &bytes)?;
                if entries.first().map(|e| e.0) != Some(file.first_index)
                    || entries.last().map(|e| e.0) != Some(file.last_index)
                {
                    bail!("{}: its entries are not the range the manifest names", file.name);
                }
                let mut stopped = false;
                for (index, record) in &entries {
                    let entry: DecodedEntry =
                        decode_entry(record).with_context(|| format!("{}: entry {index} is damaged", file.name))?;
                    let past = match point {
                        Point::End => false,
                        Point::Index(n) => *index > n,
                        Point::Time(t) => entry.command.as_ref().is_some_and(|(time, _)| time.0 > t),
                    };
                    if past {
                        stopped = true;
                        break;
                    }
                    apply_entry(&mut r.state, &entry);
                    r.last = entry.id;
                }
                r.files += 1;
                if stopped {
                    return Ok(replayed.expect("a snapshot came first"));
                }
            }
            (kind, _) => bail!("{}: unexpected {kind} file at this place in the chain", file.name),
        }
        let r = replayed.as_ref().expect("set above");
        let hash = hash.unwrap_or_else(|| r.state.state_hash().to_string());
        if hash != file.state_hash {
            bail!(
                "{}: replaying the chain up to it gives state hash {hash}, the manifest recorded {}",
                file.name,
                file.state_hash
            );
        }
    }
    let r = replayed.expect("a snapshot came first");
    if let Point::Index(n) = point {
        if n > r.last.index {
            bail!("index {n} is after the end of this chain (index {})", r.last.index);
        }
    }
    Ok(r)
}

/// Why a source could not give the log asked for.
#[derive(Debug)]
pub enum LogFetchError {
    /// The source has purged that part of its log behind a snapshot: the chain cannot go on,
    /// a new one must start.
    Purged(String),
    /// Anything else.
    Other(anyhow::Error),
}

/// Where a chain's bytes come from: a node's latest snapshot file and its committed log.
pub trait Source {
    /// The cluster the source belongs to.
    fn cluster_id(&self) -> impl std::future::Future<Output = Result<String>> + Send;
    /// The latest snapshot file's bytes (the source takes one if it has none).
    fn snapshot(&self) -> impl std::future::Future<Output = Result<Vec<u8>>> + Send;
    /// Committed entries from `from` on, at most `limit`, consecutive: (index, record bytes).
    fn log(
        &self,
        from: u64,
        limit: usize,
    ) -> impl std::future::Future<Output = std::result::Result<Vec<(u64, Vec<u8>)>, LogFetchError>> + Send;
}

/// What a run of [`take`] did.
#[derive(Clone, Debug, Serialize)]
pub struct Taken {
    /// The chain's directory.
    pub dir: PathBuf,
    /// Its cluster.
    pub cluster_id: String,
    /// The file this run added, if any (none: nothing new since the last run).
    pub added: Option<String>,
    /// Entries this run added.
    pub entries_added: usize,
    /// Files in the chain now.
    pub files: usize,
    /// The chain's last index.
    pub last_index: u64,
    /// The state hash there.
    pub state_hash: String,
    /// The book's clock there (UTC ms).
    pub book_clock_ms: u64,
    /// The chain's size on disk, bytes.
    pub chain_bytes: u64,
    /// What the run added to.
    pub started_from: StartedFrom,
    /// Why the chain's tip was not used, when the chain was replayed instead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tip_unused: Option<String>,
    /// How long the run took, s.
    pub seconds: f64,
}

/// A full backup into an empty (or new) directory, or the next increment of the chain already
/// there. Every run checks each file of the chain against the manifest before adding to it, so
/// a damaged chain is never extended; it adds to the [`TIP`] the last run left when that is the
/// chain's end (its cost is the book's size, not the chain's length), and replays the whole
/// chain only when there is none (`paddock backup verify` always replays it).
/// [`TakeError::Purged`] when the source no longer has the log the chain needs: start a new
/// chain.
pub async fn take(source: &impl Source, dir: &Path, key: Option<&Key>) -> std::result::Result<Taken, TakeError> {
    take_with(source, dir, key, Tip::Keep).await
}

/// Whether a run leaves the chain's [`TIP`] for the next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tip {
    /// Write it: the next run adds to it instead of replaying the chain.
    Keep,
    /// Do not: the directory is a scratch copy that does not outlive the run (a chain in a
    /// bucket, whose tip is never uploaded), so encoding and sealing the book again is waste.
    Skip,
}

/// What an increment added to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StartedFrom {
    /// Nothing: a full backup into an empty directory.
    New,
    /// The state the run before left as the chain's [`TIP`].
    Tip,
    /// The whole chain replayed: no tip, or one that is not the chain's end.
    Chain,
}

/// [`take`], saying whether to leave the chain's tip.
pub async fn take_with(
    source: &impl Source,
    dir: &Path,
    key: Option<&Key>,
    tip_policy: Tip,
) -> std::result::Result<Taken, TakeError> {
    let cluster_id = source.cluster_id().await.context("cannot read the source's cluster id")?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let started = std::time::Instant::now();
    let mut tip_unused = None;
    let (mut manifest, base) = match read_manifest(dir)? {
        Some(manifest) => {
            if manifest.cluster_id != cluster_id {
                return Err(anyhow::anyhow!(
                    "{} holds a chain of cluster {}, and this node belongs to cluster {cluster_id}: back it up into another directory",
                    dir.display(),
                    manifest.cluster_id,
                )
                .into());
            }
            if manifest.key_id.is_none() && key.is_some() {
                return Err(anyhow::anyhow!(
                    "the chain in {} is not encrypted: start a new chain in a new, empty directory to encrypt backups",
                    dir.display()
                )
                .into());
            }
            // From the tip the last increment left, if it is the chain's end; else the whole
            // chain replayed. Either way the key, the manifest's order and every file are
            // checked first, so a damaged chain is never extended.
            check_key(&manifest, key)?;
            check_order(&manifest)?;
            let base = match read_tip(dir, &manifest, key) {
                Ok(tip) => {
                    for file in &manifest.files {
                        read_chain_file(dir, file)?;
                    }
                    Base::Snapshot { plain: tip, from: StartedFrom::Tip }
                }
                Err(why) => {
                    tip_unused = Some(why);
                    Base::Replayed(Box::new(replay_chain(dir, &manifest, Point::End, key)?))
                }
            };
            (manifest, base)
        }
        None => {
            if std::fs::read_dir(dir).context("cannot list the backup directory")?.next().is_some() {
                return Err(anyhow::anyhow!(
                    "{} is not empty and holds no backup chain: start a chain in a new, empty directory",
                    dir.display()
                )
                .into());
            }
            let plain = source.snapshot().await.context("cannot fetch the node's snapshot")?;
            let name = PathBuf::from("snapshot");
            // The state hash and clock come from the bytes (the book is decoded only if log
            // entries follow in this run and must be replayed onto it), on a thread of their
            // own while the file is sealed and written: hashing and compressing the book are
            // most of a full backup's work. A snapshot that does not check out leaves nothing.
            // Written under a provisional name: the file's name is its index, which the
            // summary reads.
            let (snapshot, written) = std::thread::scope(|scope| {
                let summary = scope.spawn(|| summarize_snapshot(&name, &plain));
                let written = write_chain_file_synced(dir, "snapshot", &plain, true, key);
                (summary.join().expect("summarizing a snapshot does not panic"), written)
            });
            let (tmp, written) = written?;
            let snapshot = match snapshot {
                Ok(snapshot) => snapshot,
                Err(e) => {
                    let _ = std::fs::remove_file(&tmp);
                    return Err(anyhow::Error::from(e).context("the node sent a snapshot that does not decode").into());
                }
            };
            let file_name = format!("snap-{}.pds", snapshot.last.index);
            publish(dir, &tmp, &file_name)?;
            let mut manifest = Manifest {
                format: MANIFEST_FORMAT.into(),
                version: MANIFEST_VERSION,
                cluster_id: cluster_id.clone(),
                files: vec![ChainFile {
                    name: file_name,
                    kind: "snapshot".into(),
                    first_index: snapshot.last.index,
                    last_index: snapshot.last.index,
                    bytes: written.bytes,
                    sha256: written.sha256,
                    state_hash: snapshot.summary.state_hash.to_string(),
                    book_clock_ms: snapshot.summary.clock.0,
                }],
                sealed: true,
                key_id: key.map(Key::id),
                sha256: String::new(),
            };
            write_manifest(dir, &mut manifest)?;
            (manifest, Base::Snapshot { plain, from: StartedFrom::New })
        }
    };
    // The committed log since the end of the chain, up to the source's commit index now.
    let mut entries: Vec<(u64, Vec<u8>)> = Vec::new();
    loop {
        let from = manifest.last_index() + 1 + entries.len() as u64;
        let got = match source.log(from, PAGE).await {
            Ok(got) => got,
            Err(LogFetchError::Purged(why)) => {
                return Err(TakeError::Purged(format!(
                    "{why}. The chain in {} ends at index {}: start a new chain (a full backup) in a new, empty directory, \
                     and take increments more often than the nodes purge their log",
                    dir.display(),
                    manifest.last_index()
                )))
            }
            Err(LogFetchError::Other(e)) => return Err(e.context("cannot fetch the node's log").into()),
        };
        if got.first().is_some_and(|e| e.0 != from) {
            return Err(anyhow::anyhow!("the node answered from index {} when asked from {from}", got[0].0).into());
        }
        let done = got.len() < PAGE;
        entries.extend(got);
        if done {
            break;
        }
    }
    let mut added = None;
    let started_from = match &base {
        Base::Replayed(_) => StartedFrom::Chain,
        Base::Snapshot { from, .. } => *from,
    };
    if !entries.is_empty() {
        let mut replayed = match base {
            Base::Replayed(replayed) => *replayed,
            Base::Snapshot { plain, from } => {
                let name = if from == StartedFrom::Tip { TIP } else { "the node's snapshot" };
                let snapshot =
                    decode_snapshot(Path::new(name), &plain).with_context(|| format!("{name} does not decode"))?;
                drop(plain);
                Replayed { state: snapshot.state, last: snapshot.last, files: manifest.files.len() }
            }
        };
        for (index, record) in &entries {
            let entry = decode_entry(record).with_context(|| format!("entry {index} from the node does not decode"))?;
            replay(&mut replayed.state, &entry);
            replayed.last = entry.id;
        }
        let (first, last) = (entries[0].0, entries[entries.len() - 1].0);
        // The state after the new entries: its hash for the manifest and, when the tip is
        // kept, its bytes for the next run (one encoding for both).
        let (tip, state_hash) = match tip_policy {
            Tip::Keep => {
                let (tip, hash) = encode_snapshot_file(&replayed.state, replayed.last)
                    .context("cannot encode the state at the chain's new end")?;
                (Some(tip), hash)
            }
            Tip::Skip => (None, replayed.state.state_hash()),
        };
        let name = format!("log-{first}-{last}.pdl");
        let written = write_chain_file(dir, &name, &encode_log(&entries), manifest.sealed, key)?;
        manifest.files.push(ChainFile {
            name: name.clone(),
            kind: "log".into(),
            first_index: first,
            last_index: last,
            bytes: written.bytes,
            sha256: written.sha256,
            state_hash: state_hash.to_string(),
            book_clock_ms: replayed.state.clock().0,
        });
        drop(replayed);
        // The tip before the manifest: a tip ahead of the manifest is never used. It only
        // saves the next run time, so failing to write it fails nothing; the old one goes.
        if let Some(tip) = tip {
            if write_chain_file(dir, TIP, &tip, manifest.sealed, key).is_err() {
                let _ = std::fs::remove_file(dir.join(TIP));
            }
        }
        write_manifest(dir, &mut manifest)?;
        added = Some(name);
    }
    let last = manifest.files.last().expect("a chain has its snapshot");
    Ok(Taken {
        dir: dir.to_path_buf(),
        cluster_id: manifest.cluster_id.clone(),
        added,
        entries_added: entries.len(),
        files: manifest.files.len(),
        last_index: last.last_index,
        state_hash: last.state_hash.clone(),
        book_clock_ms: last.book_clock_ms,
        chain_bytes: manifest.files.iter().map(|f| f.bytes).sum(),
        started_from,
        tip_unused,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The order of a chain's files as its manifest lists them: one snapshot, then logs, each
/// starting right after the one before. Checked before a chain is replayed or extended, so a
/// manifest rewritten with files dropped, repeated or reordered is refused by name.
fn check_order(manifest: &Manifest) -> Result<()> {
    let mut expected_next = None;
    for (i, file) in manifest.files.iter().enumerate() {
        match (i, file.kind.as_str()) {
            (0, "snapshot") | (1.., "log") => {}
            (_, kind) => bail!("{}: unexpected {kind} file at this place in the chain", file.name),
        }
        if let Some(next) = expected_next {
            if file.first_index != next {
                let what = if file.first_index > next { "a gap" } else { "an overlap" };
                bail!(
                    "{}: {what} in the chain: it starts at index {}, the chain before it ends at {}",
                    file.name,
                    file.first_index,
                    next - 1
                );
            }
        }
        expected_next = Some(file.last_index + 1);
    }
    Ok(())
}

/// The chain's tip (see [`TIP`]), unsealed, if it is there and is the state after the chain's
/// last file: its index and its state hash (the SHA-256 of its payload, read without decoding
/// it) are the manifest's last. Anything else — absent, damaged, older, of another key — is
/// not used, and the chain is replayed instead.
fn read_tip(dir: &Path, manifest: &Manifest, key: Option<&Key>) -> std::result::Result<Vec<u8>, String> {
    let last = manifest.files.last().ok_or("the chain is empty")?;
    let bytes = match std::fs::read(dir.join(TIP)) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(format!("no {TIP}")),
        Err(e) => return Err(format!("{TIP} cannot be read: {e}")),
    };
    let plain = if manifest.sealed {
        // A tip must be sealed as the chain is: a plain one in an encrypted chain is not its.
        let needs = seal::needs_key(TIP, &bytes).map_err(|e| format!("{e:#}"))?;
        if needs != manifest.key_id {
            return Err(format!("{TIP} is not sealed with the chain's key"));
        }
        seal::open(TIP, &bytes, key).map_err(|e| format!("{e:#}"))?
    } else {
        bytes
    };
    let summary = summarize_snapshot(Path::new(TIP), &plain).map_err(|e| e.to_string())?;
    if summary.last.index != last.last_index || summary.summary.state_hash.to_string() != last.state_hash {
        return Err(format!(
            "{TIP} holds index {} and another state than the chain's end (index {})",
            summary.last.index, last.last_index
        ));
    }
    Ok(plain)
}

/// A chain file's bytes as they lie, checked against the manifest: present, and of the size
/// and SHA-256 it recorded.
fn read_chain_file(dir: &Path, file: &ChainFile) -> Result<Vec<u8>> {
    let bytes = std::fs::read(dir.join(&file.name)).with_context(|| format!("{}: missing or unreadable", file.name))?;
    if bytes.len() as u64 != file.bytes || hex(&Sha256::digest(&bytes)) != file.sha256 {
        bail!("{}: damaged or replaced (its size or SHA-256 is not the one the manifest recorded)", file.name);
    }
    Ok(bytes)
}

/// What [`take`] replays the new log entries onto: the chain already replayed, or the
/// snapshot just fetched, decoded only when entries follow it.
enum Base {
    Replayed(Box<Replayed>),
    /// A node snapshot file's bytes, unsealed: the node's (a new chain) or the tip's.
    Snapshot {
        plain: Vec<u8>,
        from: StartedFrom,
    },
}

/// Why [`take`] failed.
#[derive(Debug)]
pub enum TakeError {
    /// The source has purged the log the chain needs: start a new chain.
    Purged(String),
    /// Anything else, with what to do where it is known.
    Other(anyhow::Error),
}

impl From<anyhow::Error> for TakeError {
    fn from(e: anyhow::Error) -> TakeError {
        TakeError::Other(e)
    }
}

impl std::fmt::Display for TakeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TakeError::Purged(why) => f.write_str(why),
            TakeError::Other(e) => write!(f, "{e:#}"),
        }
    }
}

impl std::error::Error for TakeError {}

/// `paddock backup verify`: every file re-read and checked, the chain replayed.
pub fn verify(dir: &Path, key: Option<&Key>) -> Result<serde_json::Value> {
    let manifest = read_manifest(dir)?
        .with_context(|| format!("{} holds no backup chain ({MANIFEST} is missing)", dir.display()))?;
    let replayed = replay_chain(dir, &manifest, Point::End, key)?;
    let listed: std::collections::BTreeSet<&str> = manifest.files.iter().map(|f| f.name.as_str()).collect();
    let mut unlisted = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name != MANIFEST && name != TIP && !listed.contains(name.as_str()) {
            unlisted.push(name);
        }
    }
    unlisted.sort();
    Ok(serde_json::json!({
        "verified": true,
        "cluster_id": manifest.cluster_id,
        "files": replayed.files,
        "first_index": manifest.files[0].first_index,
        "last_index": replayed.last.index,
        // Replaying checked the state after every file against the manifest's hash.
        "state_hash": manifest.files.last().map(|f| f.state_hash.clone()),
        "not_in_the_chain": unlisted,
        "sealed": manifest.sealed,
        "key_id": manifest.key_id,
    }))
}

/// What `paddock restore` is asked to do.
pub struct RestoreRequest<'a> {
    /// The chain's directory.
    pub from: &'a Path,
    /// Where to stop.
    pub point: Point,
    /// The new cluster's id.
    pub cluster_id: &'a str,
    /// This node's id in it.
    pub node_id: u64,
    /// Every member: id → peer address.
    pub members: &'a BTreeMap<u64, String>,
    /// The new node's data directory.
    pub data_dir: &'a Path,
    /// Replace what the data directory holds (never while a node runs on it).
    pub force: bool,
    /// Restore even though a member answers at its peer address (seeding one node of a new
    /// cluster whose other members already run); otherwise that is refused as a live cluster.
    pub allow_live_peers: bool,
    /// The chain's key, if it is encrypted.
    pub key: Option<&'a Key>,
}

/// `paddock restore`: one node's data directory of a new cluster, from the chain at a point.
pub fn restore(req: &RestoreRequest<'_>) -> Result<serde_json::Value> {
    let manifest = read_manifest(req.from)?
        .with_context(|| format!("{} holds no backup chain ({MANIFEST} is missing)", req.from.display()))?;
    if !req.members.contains_key(&req.node_id) {
        bail!("node {} is not in --bootstrap: list every member of the new cluster, this node included", req.node_id);
    }
    if !req.allow_live_peers {
        let live = live_members(req.members);
        if !live.is_empty() {
            bail!(
                "a node answers at {}: never restore into a live cluster. Stop every node of the cluster being \
                 replaced first; to seed one node of a new cluster whose other members already run, pass \
                 --allow-live-peers",
                live.join(", ")
            );
        }
    }
    // The target is checked first and cleared only once the chain has replayed: a wrong key or
    // a damaged chain must leave a directory given with --force as it was.
    let clear = check_target(req.data_dir, req.force)?;
    let replayed = replay_chain(req.from, &manifest, req.point, req.key)?;
    if clear {
        clear_target(req.data_dir)?;
    }
    let state_hash =
        seed_data_dir(req.data_dir, req.cluster_id, req.node_id, req.members, &replayed.state, replayed.last)
            .with_context(|| format!("cannot seed {}", req.data_dir.display()))?;
    Ok(serde_json::json!({
        "node_id": req.node_id,
        "data_dir": req.data_dir,
        "cluster_id": req.cluster_id,
        "restored_to_index": replayed.last.index,
        "book_clock_ms": replayed.state.clock().0,
        "state_hash": state_hash.to_string(),
    }))
}

/// The members (`id=address`) that accept a connection at their peer address: a node runs
/// there. Each is given 300 ms.
fn live_members(members: &BTreeMap<u64, String>) -> Vec<String> {
    use std::net::ToSocketAddrs;
    let answers = |address: &str| {
        address.to_socket_addrs().is_ok_and(|mut resolved| {
            resolved.any(|at| std::net::TcpStream::connect_timeout(&at, std::time::Duration::from_millis(300)).is_ok())
        })
    };
    members.iter().filter(|(_, address)| answers(address)).map(|(id, address)| format!("{id}={address}")).collect()
}

/// Readies a new node's data directory: it must be empty or absent; with `force`, what it
/// holds is removed first — never while a node runs on it.
pub(crate) fn prepare_target(data_dir: &Path, force: bool) -> Result<()> {
    if check_target(data_dir, force)? {
        clear_target(data_dir)?;
    }
    Ok(())
}

fn clear_target(data_dir: &Path) -> Result<()> {
    std::fs::remove_dir_all(data_dir).with_context(|| format!("cannot clear {}", data_dir.display()))
}

/// Whether seeding `data_dir` must first clear what is there (only with `force`); refused if it
/// holds something and `force` is not given, or if a node runs on it. Changes nothing: a seed
/// checks its target before the work that may still fail (a wrong key, a damaged chain), and
/// clears it only after.
fn check_target(data_dir: &Path, force: bool) -> Result<bool> {
    if !(data_dir.exists() && std::fs::read_dir(data_dir)?.next().is_some()) {
        return Ok(false);
    }
    if !force {
        bail!(
            "{} is not empty: seed only a new, empty data directory, or pass --force to replace what is there",
            data_dir.display()
        );
    }
    // Replacing a directory a running node holds would pull the state from under it.
    paddock_consensus::backup::ensure_not_in_use(data_dir)
        .context("a node is running on it: stop it first, and never restore into a live cluster")?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use paddock_golden::{Format, Golden};

    const LOG_FILE: Format =
        Format { dir: "backup_log", version: LOG_VERSION as u32, bump: "LOG_VERSION (crates/backup/src/lib.rs)" };
    const MANIFEST_FILE: Format = Format {
        dir: "backup_manifest",
        version: MANIFEST_VERSION,
        bump: "MANIFEST_VERSION (crates/backup/src/lib.rs)",
    };

    /// Two consecutive entries, their record bytes opaque here (the consensus crate pins them).
    fn entries() -> Vec<(u64, Vec<u8>)> {
        vec![(41, vec![0x03, 0x01, 0x29, 0x00]), (42, vec![0x03, 0x01, 0x2a, 0x00])]
    }

    fn manifest() -> Manifest {
        let mut manifest = Manifest {
            format: MANIFEST_FORMAT.into(),
            version: MANIFEST_VERSION,
            cluster_id: "paddock-prod".into(),
            files: vec![
                ChainFile {
                    name: "snap-40.pds".into(),
                    kind: "snapshot".into(),
                    first_index: 40,
                    last_index: 40,
                    bytes: 1234,
                    sha256: "ab".repeat(32),
                    state_hash: "cd".repeat(32),
                    book_clock_ms: 1_700_000_000_000,
                },
                ChainFile {
                    name: "log-41-42.pdl".into(),
                    kind: "log".into(),
                    first_index: 41,
                    last_index: 42,
                    bytes: 66,
                    sha256: "ef".repeat(32),
                    state_hash: "01".repeat(32),
                    book_clock_ms: 1_700_000_000_500,
                },
            ],
            sealed: false,
            key_id: None,
            sha256: String::new(),
        };
        manifest.sha256 = manifest.digest();
        manifest
    }

    #[test]
    fn the_backup_log_file_format_is_pinned() {
        let mut golden = Golden::new(env!("CARGO_MANIFEST_DIR"), env!("CARGO_PKG_NAME"), LOG_FILE);
        golden.check(
            "log_41_42",
            "a backup log file of entries 41 and 42",
            &entries(),
            |e| encode_log(e),
            |bytes| decode_log("fixture", bytes).map_err(|e| e.to_string()),
        );
        golden.finish();
    }

    #[test]
    fn the_manifest_format_is_pinned() {
        let mut golden = Golden::new(env!("CARGO_MANIFEST_DIR"), env!("CARGO_PKG_NAME"), MANIFEST_FILE);
        golden.check(
            "chain_40_42",
            "a chain of a snapshot at 40 and the log 41-42",
            &manifest(),
            |m| serde_json::to_vec_pretty(m).expect("serialises"),
            |bytes| {
                let m: Manifest = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
                if m.digest() == m.sha256 {
                    Ok(m)
                } else {
                    Err("checksum mismatch".to_string())
                }
            },
        );
        golden.finish();
    }

    #[test]
    fn a_log_file_cut_short_altered_or_of_another_version_is_refused_by_name() {
        let good = encode_log(&entries());
        assert_eq!(decode_log("log-41-42.pdl", &good).expect("decodes"), entries());
        let cut = &good[..good.len() - 9];
        let error = decode_log("log-41-42.pdl", cut).expect_err("cut short").to_string();
        assert!(error.starts_with("log-41-42.pdl: damaged"), "{error}");
        let mut altered = good.clone();
        altered[40] ^= 1;
        assert!(decode_log("log-41-42.pdl", &altered).expect_err("altered").to_string().contains("checksum mismatch"));
        let mut newer = good.clone();
        newer[8..10].copy_from_slice(&2u16.to_le_bytes());
        let end = newer.len() - 4;
        let crc = crc32c::crc32c(&newer[..end]);
        newer[end..].copy_from_slice(&crc.to_le_bytes());
        let error = decode_log("log-41-42.pdl", &newer).expect_err("another version").to_string();
        assert!(error.contains("version 2"), "{error}");
    }

    /// A node as a backup sees it: a snapshot of an empty book at index 10 and the committed
    /// log after it, which grows as the test appends to it.
    struct FakeNode {
        cluster_id: &'static str,
        /// What each deposit pays in: two nodes that differ here write different logs.
        deposit: i64,
        snapshot: Vec<u8>,
        log: std::sync::Mutex<Vec<(u64, Vec<u8>)>>,
    }

    const SNAPSHOT_INDEX: u64 = 10;
    const T0: u64 = 1_700_000_000_000;

    impl FakeNode {
        fn new(cluster_id: &'static str) -> FakeNode {
            let last = LogIdRecord { term: 1, node: 1, index: SNAPSHOT_INDEX };
            let (snapshot, _) = encode_snapshot_file(&State::new(), last).expect("encodes");
            FakeNode { cluster_id, deposit: 500, snapshot, log: std::sync::Mutex::new(Vec::new()) }
        }

        /// Commits `count` more entries: an account opened and a deposit into it, by turns.
        fn commit(&self, count: u64) {
            let mut log = self.log.lock().expect("log lock");
            for _ in 0..count {
                let index = SNAPSHOT_INDEX + 1 + log.len() as u64;
                let account = paddock_ledger::AccountId(index / 2);
                let command = if index % 2 == 1 {
                    paddock_ledger::Command::OpenAccount {
                        account,
                        currency: paddock_ledger::Currency::parse("GBP").expect("a currency"),
                        key: paddock_ledger::IdempotencyKey(format!("open-{index}")),
                    }
                } else {
                    paddock_ledger::Command::Deposit {
                        account,
                        amount: paddock_ledger::Money(self.deposit),
                        key: paddock_ledger::IdempotencyKey(format!("deposit-{index}")),
                    }
                };
                let record = paddock_consensus::records::EntryRecord {
                    log_id: LogIdRecord { term: 1, node: 1, index },
                    payload: paddock_consensus::records::PayloadRecord::Normal(paddock_consensus::types::Request {
                        time: paddock_ledger::TimestampMs(T0 + index),
                        command,
                    }),
                };
                log.push((index, paddock_consensus::records::encode(&record)));
            }
        }

        /// The state hash of the book after every entry committed so far, replayed here.
        fn state_hash(&self) -> String {
            let mut state = State::new();
            for (_, record) in self.log.lock().expect("log lock").iter() {
                replay(&mut state, &decode_entry(record).expect("decodes"));
            }
            state.state_hash().to_string()
        }
    }

    impl Source for FakeNode {
        async fn cluster_id(&self) -> Result<String> {
            Ok(self.cluster_id.to_string())
        }
        async fn snapshot(&self) -> Result<Vec<u8>> {
            Ok(self.snapshot.clone())
        }
        async fn log(&self, from: u64, limit: usize) -> std::result::Result<Vec<(u64, Vec<u8>)>, LogFetchError> {
            let log = self.log.lock().expect("log lock");
            Ok(log.iter().filter(|(index, _)| *index >= from).take(limit).cloned().collect())
        }
    }

    fn take_now(node: &FakeNode, dir: &Path) -> std::result::Result<Taken, TakeError> {
        futures::executor::block_on(take(node, dir, None))
    }

    #[test]
    fn a_damaged_snapshot_from_the_node_is_refused_and_leaves_the_directory_empty() {
        let mut node = FakeNode::new("paddock-prod");
        let middle = node.snapshot.len() / 2;
        node.snapshot[middle] ^= 0x40;
        let dir = tempfile::tempdir().expect("temp dir");
        // Sealed and written while its bytes are checked: what was written goes again.
        let error = take_now(&node, dir.path()).expect_err("a damaged snapshot").to_string();
        assert!(error.contains("the node sent a snapshot that does not decode"), "{error}");
        let left: Vec<_> = std::fs::read_dir(dir.path()).expect("listed").collect();
        assert!(left.is_empty(), "nothing is left behind: {left:?}");
        // So the next run starts a chain there.
        let healthy = FakeNode::new("paddock-prod");
        assert_eq!(take_now(&healthy, dir.path()).expect("a full backup").started_from, StartedFrom::New);
    }

    #[test]
    fn an_increment_adds_to_the_tip_the_last_one_left_and_replays_the_chain_only_without_a_usable_tip() {
        let node = FakeNode::new("paddock-prod");
        let dir = tempfile::tempdir().expect("temp dir");
        let chain = dir.path();
        node.commit(5);
        let first = take_now(&node, chain).expect("a full backup with the log after it");
        assert_eq!(
            (first.started_from, first.last_index, first.state_hash.clone()),
            (StartedFrom::New, 15, node.state_hash())
        );
        assert!(chain.join(TIP).exists(), "the run leaves the chain's end as its tip");

        node.commit(4);
        let second = take_now(&node, chain).expect("an increment");
        assert_eq!(
            (second.started_from, second.last_index, second.state_hash.clone()),
            (StartedFrom::Tip, 19, node.state_hash())
        );

        // A tip that is not the chain's end is never used: damaged, then missing.
        let mut tip = std::fs::read(chain.join(TIP)).expect("the tip");
        let middle = tip.len() / 2;
        tip[middle] ^= 1;
        std::fs::write(chain.join(TIP), &tip).expect("write");
        node.commit(3);
        let third = take_now(&node, chain).expect("an increment over a damaged tip");
        assert_eq!(
            (third.started_from, third.last_index, third.state_hash.clone()),
            (StartedFrom::Chain, 22, node.state_hash())
        );
        std::fs::remove_file(chain.join(TIP)).expect("remove the tip");
        node.commit(2);
        let fourth = take_now(&node, chain).expect("an increment without a tip");
        assert_eq!(
            (fourth.started_from, fourth.last_index, fourth.state_hash.clone()),
            (StartedFrom::Chain, 24, node.state_hash())
        );

        // An old tip (the chain moved on without it) is not used either.
        let stale = std::fs::read(chain.join(TIP)).expect("the tip at 24");
        node.commit(1);
        take_now(&node, chain).expect("an increment");
        std::fs::write(chain.join(TIP), stale).expect("put the tip at 24 back");
        node.commit(1);
        let sixth = take_now(&node, chain).expect("an increment over a stale tip");
        assert_eq!(
            (sixth.started_from, sixth.last_index, sixth.state_hash.clone()),
            (StartedFrom::Chain, 26, node.state_hash())
        );

        let verified = verify(chain, None).expect("the chain verifies");
        assert_eq!(verified["state_hash"], node.state_hash().as_str());
        assert_eq!(verified["not_in_the_chain"], serde_json::json!([]), "the tip is not a stranger in the chain");
    }

    #[test]
    fn a_tip_is_used_only_if_sealed_with_the_chains_key_and_never_to_extend_a_reordered_manifest() {
        let key = Key::parse("5a".repeat(32).as_bytes()).expect("a key");
        let node = FakeNode::new("paddock-prod");
        let dir = tempfile::tempdir().expect("temp dir");
        let chain = dir.path();
        let take_sealed = |chain: &Path| futures::executor::block_on(take(&node, chain, Some(&key)));
        node.commit(2);
        take_sealed(chain).expect("an encrypted chain");
        node.commit(3);
        assert_eq!(take_sealed(chain).expect("an increment").started_from, StartedFrom::Tip);

        // A tip of the right state sealed without the key (zstd only, which opens with any key
        // given) in an encrypted chain is not the chain's.
        let manifest = read_manifest(chain).expect("reads").expect("a manifest");
        let replayed = replay_chain(chain, &manifest, Point::End, Some(&key)).expect("replays");
        let (plain_tip, _) = encode_snapshot_file(&replayed.state, replayed.last).expect("encodes");
        std::fs::write(chain.join(TIP), seal::seal(&plain_tip, None).expect("sealed")).expect("an unencrypted tip");
        node.commit(1);
        let taken = take_sealed(chain).expect("an increment over a plain tip");
        assert_eq!(taken.started_from, StartedFrom::Chain);
        assert_eq!(taken.tip_unused.as_deref(), Some("tip.pds is not sealed with the chain's key"));

        // A manifest rewritten in another order, with a good checksum and a good tip, is not
        // extended.
        node.commit(1);
        take_sealed(chain).expect("an increment");
        let manifest = read_manifest(chain).expect("reads").expect("a manifest");
        edited(chain, &manifest, |files| files.swap(1, 2));
        node.commit(1);
        let error = take_sealed(chain).expect_err("a reordered chain").to_string();
        assert!(error.contains("a gap in the chain"), "{error}");
    }

    #[test]
    fn a_run_on_a_scratch_copy_leaves_no_tip() {
        let node = FakeNode::new("paddock-prod");
        let dir = tempfile::tempdir().expect("temp dir");
        node.commit(4);
        let taken = futures::executor::block_on(take_with(&node, dir.path(), None, Tip::Skip)).expect("a backup");
        assert_eq!((taken.last_index, taken.state_hash), (14, node.state_hash()));
        assert!(!dir.path().join(TIP).exists());
    }

    #[test]
    fn a_chain_with_a_damaged_file_is_not_extended_even_from_a_good_tip() {
        let node = FakeNode::new("paddock-prod");
        let dir = tempfile::tempdir().expect("temp dir");
        node.commit(5);
        take_now(&node, dir.path()).expect("a full backup");
        node.commit(5);
        let increment = take_now(&node, dir.path()).expect("an increment");
        assert_eq!(increment.started_from, StartedFrom::Tip, "the tip is there to be used");
        let log = dir.path().join("log-11-15.pdl");
        let mut bytes = std::fs::read(&log).expect("the first log file");
        bytes[40] ^= 1;
        std::fs::write(&log, bytes).expect("write");
        node.commit(1);
        let error = take_now(&node, dir.path()).expect_err("refused").to_string();
        assert!(error.contains("log-11-15.pdl: damaged or replaced"), "{error}");
        assert_eq!(
            read_manifest(dir.path()).expect("reads").expect("a manifest").last_index(),
            20,
            "nothing was added"
        );
    }

    #[test]
    fn a_chain_from_another_cluster_is_never_extended() {
        let dir = tempfile::tempdir().expect("temp dir");
        let ours = FakeNode::new("paddock-prod");
        ours.commit(2);
        take_now(&ours, dir.path()).expect("a full backup");
        let theirs = FakeNode::new("paddock-staging");
        theirs.commit(4);
        let error = take_now(&theirs, dir.path()).expect_err("refused").to_string();
        assert!(error.contains("holds a chain of cluster paddock-prod"), "{error}");
        assert!(error.contains("back it up into another directory"), "{error}");
    }

    /// A chain of a snapshot and three increments, and its manifest.
    fn chain_of_three_increments(dir: &Path) -> Manifest {
        let node = FakeNode::new("paddock-prod");
        for count in [2, 3, 4, 5] {
            node.commit(count);
            take_now(&node, dir).expect("a backup run");
        }
        read_manifest(dir).expect("reads").expect("a manifest")
    }

    fn edited(dir: &Path, manifest: &Manifest, edit: impl FnOnce(&mut Vec<ChainFile>)) {
        let mut manifest = manifest.clone();
        edit(&mut manifest.files);
        write_manifest(dir, &mut manifest).expect("a manifest rewritten with its checksum");
    }

    #[test]
    fn verify_names_a_missing_file_a_gap_an_overlap_a_reordered_chain_and_a_foreign_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let chain = dir.path();
        let manifest = chain_of_three_increments(chain);
        let names: Vec<String> = manifest.files.iter().map(|f| f.name.clone()).collect();
        assert_eq!(names, ["snap-10.pds", "log-11-12.pdl", "log-13-15.pdl", "log-16-19.pdl", "log-20-24.pdl"]);
        verify(chain, None).expect("the chain verifies");
        let refused = |why: &str| verify(chain, None).expect_err(why).to_string();

        let kept = std::fs::read(chain.join("log-13-15.pdl")).expect("a log file");
        std::fs::remove_file(chain.join("log-13-15.pdl")).expect("remove");
        assert_eq!(refused("missing"), "log-13-15.pdl: missing or unreadable");
        std::fs::write(chain.join("log-13-15.pdl"), &kept).expect("put back");

        // The manifest rewritten with a valid checksum, as a careless tool or a hand would.
        edited(chain, &manifest, |files| {
            files.remove(2);
        });
        let error = refused("a gap");
        assert!(
            error.starts_with(
                "log-16-19.pdl: a gap in the chain: it starts at index 16, the chain before it ends at 12"
            ),
            "{error}"
        );

        edited(chain, &manifest, |files| files.swap(2, 3));
        let error = refused("reordered");
        assert!(error.starts_with("log-16-19.pdl: a gap in the chain"), "{error}");

        edited(chain, &manifest, |files| {
            let mut again = files[2].clone();
            again.name = "log-13-15-again.pdl".into();
            files.insert(3, again);
        });
        std::fs::write(chain.join("log-13-15-again.pdl"), &kept).expect("a second copy");
        let error = refused("an overlap");
        assert!(
            error.starts_with(
                "log-13-15-again.pdl: an overlap in the chain: it starts at index 13, the chain before it ends at 15"
            ),
            "{error}"
        );
        std::fs::remove_file(chain.join("log-13-15-again.pdl")).expect("remove");

        // Another chain's file of the same range under this chain's name.
        edited(chain, &manifest, |_| {});
        let other = tempfile::tempdir().expect("temp dir");
        let node = FakeNode { deposit: 700, ..FakeNode::new("paddock-prod") };
        for count in [2, 3] {
            node.commit(count);
            take_now(&node, other.path()).expect("another chain's run");
        }
        let foreign = std::fs::read(other.path().join("log-13-15.pdl")).expect("their log file");
        assert_ne!(foreign, kept);
        std::fs::write(chain.join("log-13-15.pdl"), &foreign).expect("a foreign file");
        assert_eq!(
            refused("foreign"),
            "log-13-15.pdl: damaged or replaced (its size or SHA-256 is not the one the manifest recorded)"
        );
        std::fs::write(chain.join("log-13-15.pdl"), &kept).expect("put back");
        verify(chain, None).expect("the chain verifies again");
    }

    /// A restore of `chain` to `point` as node 1 of `members` into `data_dir`: no force, no
    /// live peers allowed, no key.
    fn restore_of<'a>(
        chain: &'a Path,
        point: Point,
        members: &'a BTreeMap<u64, String>,
        data_dir: &'a Path,
    ) -> RestoreRequest<'a> {
        RestoreRequest {
            from: chain,
            point,
            cluster_id: "paddock-restored",
            node_id: 1,
            members,
            data_dir,
            force: false,
            allow_live_peers: false,
            key: None,
        }
    }

    #[test]
    fn a_restore_to_a_time_stops_after_the_last_entry_stamped_at_or_before_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let chain = dir.path().join("chain");
        let node = FakeNode::new("paddock-prod");
        node.commit(4);
        take_now(&node, &chain).expect("a full backup");
        node.commit(4);
        take_now(&node, &chain).expect("an increment");
        let members = BTreeMap::from([(1, "127.0.0.1:1".to_string())]);
        // Entry i is stamped T0 + i (FakeNode::commit); entries 11 to 18 follow the snapshot at 10.
        for (time, index) in [(T0 + 13, 13), (T0 + 16, 16), (T0 + 99, 18)] {
            let data_dir = dir.path().join(format!("node-at-{time}"));
            let restored = restore(&RestoreRequest {
                allow_live_peers: true,
                ..restore_of(&chain, Point::Time(time), &members, &data_dir)
            })
            .expect("restored");
            assert_eq!(restored["restored_to_index"], index, "to {time}");
            let clock = restored["book_clock_ms"].as_u64().expect("the book's clock");
            assert!(clock <= time, "the restored book's clock {clock} is not past {time}");
        }
    }

    #[test]
    fn a_forced_restore_that_fails_on_the_chain_or_the_key_leaves_the_target_as_it_was() {
        let dir = tempfile::tempdir().expect("temp dir");
        let chain = dir.path().join("chain");
        let node = FakeNode::new("paddock-prod");
        node.commit(3);
        futures::executor::block_on(take(&node, &chain, Some(&Key::parse(&[5u8; 32]).expect("a key"))))
            .expect("an encrypted full backup");
        let members = BTreeMap::from([(1, "127.0.0.1:1".to_string())]);
        let data_dir = dir.path().join("node-1");
        std::fs::create_dir_all(&data_dir).expect("a target");
        std::fs::write(data_dir.join("evidence"), b"what was there").expect("a file in it");
        let wrong = Key::parse(&[6u8; 32]).expect("a key");
        for key in [None, Some(&wrong)] {
            let error = restore(&RestoreRequest {
                force: true,
                allow_live_peers: true,
                key,
                ..restore_of(&chain, Point::End, &members, &data_dir)
            })
            .expect_err("the chain needs its key")
            .to_string();
            assert!(error.contains("encrypted with key"), "{error}");
            assert_eq!(std::fs::read(data_dir.join("evidence")).expect("still there"), b"what was there");
        }
    }

    #[test]
    fn a_restore_is_refused_while_a_member_of_the_cluster_answers_at_its_address() {
        let dir = tempfile::tempdir().expect("temp dir");
        let chain = dir.path().join("chain");
        let node = FakeNode::new("paddock-prod");
        node.commit(3);
        take_now(&node, &chain).expect("a full backup");
        let live = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let live_address = live.local_addr().expect("its address").to_string();
        let gone = {
            let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
            closed.local_addr().expect("its address").to_string()
        };
        let members = BTreeMap::from([(1, gone.clone()), (2, live_address.clone())]);
        let data_dir = dir.path().join("node-1");
        let mut request = restore_of(&chain, Point::End, &members, &data_dir);
        let error = restore(&request).expect_err("refused").to_string();
        assert!(
            error.starts_with(&format!("a node answers at 2={live_address}: never restore into a live cluster")),
            "{error}"
        );
        assert!(!error.contains(&gone), "{error}");
        assert!(!data_dir.exists(), "nothing written");
        request.allow_live_peers = true;
        let restored = restore(&request).expect("seeded beside a running member");
        assert_eq!(restored["state_hash"], node.state_hash().as_str());
    }

    #[test]
    fn a_schedules_chains_are_mirrored_to_a_bucket_new_files_only_and_retention_holds_there_too() {
        use object_store::ObjectStore;
        let node = FakeNode::new("paddock-prod");
        let local = tempfile::tempdir().expect("temp dir");
        let (older, newer) = (local.path().join("chain-1000"), local.path().join("chain-2000"));
        node.commit(2);
        take_now(&node, &older).expect("a chain");
        node.commit(2);
        take_now(&node, &older).expect("its increment");
        take_now(&node, &newer).expect("a newer chain");
        let kept = |names: &[&str]| -> Vec<(String, PathBuf)> {
            names.iter().map(|n| (n.to_string(), local.path().join(n))).collect()
        };
        let store: std::sync::Arc<dyn ObjectStore> = std::sync::Arc::new(object_store::memory::InMemory::new());
        let root = remote::Remote::with_store(store.clone(), "prod", "memory://prod");
        // Objects under the root that are not a schedule's chains are never touched.
        for other in ["prod/notes.txt", "prod/chain-x/file"] {
            futures::executor::block_on(store.put(&other.into(), b"not a chain".to_vec().into())).expect("put");
        }
        let mirror =
            |names: &[&str]| futures::executor::block_on(remote::mirror(&root, &kept(names))).expect("mirrored");

        let first = mirror(&["chain-1000", "chain-2000"]);
        assert_eq!(first.copied, ["chain-1000", "chain-2000"]);
        assert!(first.deleted.is_empty());
        assert_eq!(mirror(&["chain-1000", "chain-2000"]), remote::Mirrored::default(), "nothing new, nothing sent");

        // The copy in the bucket is a chain that verifies on its own, without the tip.
        let copy = tempfile::tempdir().expect("temp dir");
        futures::executor::block_on(root.child("chain-1000").pull(copy.path())).expect("pulled");
        assert!(!copy.path().join(TIP).exists(), "the tip stays local");
        let verified = verify(copy.path(), None).expect("the bucket's copy verifies");
        assert_eq!(verified["last_index"], 14);

        node.commit(3);
        take_now(&node, &newer).expect("an increment of the newer chain");
        assert_eq!(mirror(&["chain-1000", "chain-2000"]).copied, ["chain-2000"], "only the chain that grew");

        // Retention deleted the older chain locally: it goes from the bucket too.
        std::fs::remove_dir_all(&older).expect("retention");
        let after = mirror(&["chain-2000"]);
        assert_eq!(after.deleted, ["chain-1000"]);
        let mut left = futures::executor::block_on(root.children()).expect("listed");
        left.sort();
        assert_eq!(left, ["chain-2000", "chain-x"]);
        assert!(futures::executor::block_on(store.head(&"prod/notes.txt".into())).is_ok());
    }

    #[test]
    fn a_manifest_edited_by_hand_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut edited = manifest();
        edited.files[1].last_index = 43;
        std::fs::write(dir.path().join(MANIFEST), serde_json::to_vec_pretty(&edited).expect("json")).expect("write");
        let error = read_manifest(dir.path()).expect_err("refused").to_string();
        assert!(error.contains("damaged"), "{error}");
    }
}
