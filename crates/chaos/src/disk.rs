//! A full data disk: each node's data directory on its own size-limited tmpfs.
//!
//! - Only as root: [`Disks::mount`] runs `mount -t tmpfs -o size=<N>m tmpfs DIR` on every
//!   node's (still empty) data directory before the nodes start. Without root, or if a mount
//!   fails, the disk fault is *skipped* and the reason is reported; it is never silently left
//!   out.
//! - [`fill`] writes a filler file into the directory until the file system answers ENOSPC;
//!   [`free`] deletes it.
//! - Every mount is undone by [`Disks::unmount_all`] (which the harness calls at the end, on
//!   success and on error) and again by `Drop`; the processes using the directory must be
//!   stopped first. A busy mount falls back to a lazy unmount (`umount -l`).

use anyhow::{bail, Context, Result};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Name of the filler file written into a data directory.
pub const FILLER: &str = "chaos-filler";

/// Whether the process runs with effective uid 0 (read from `/proc/self/status`).
pub fn is_root() -> bool {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else { return false };
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|rest| rest.split_whitespace().nth(1).map(|euid| euid == "0"))
        .unwrap_or(false)
}

/// The tmpfs mounts the harness made.
#[derive(Debug, Default)]
pub struct Disks {
    mounted: Vec<PathBuf>,
}

impl Disks {
    /// Mounts a `size_mb` tmpfs on each directory (creating it). On any failure, unmounts what
    /// was mounted and returns why.
    pub fn mount(dirs: &[PathBuf], size_mb: u64) -> Result<Disks> {
        if !is_root() {
            bail!("not running as root: cannot mount a size-limited tmpfs");
        }
        let mut disks = Disks::default();
        for dir in dirs {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
            let out = Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={size_mb}m,mode=0700"), "tmpfs"])
                .arg(dir)
                .output()
                .context("cannot run mount")?;
            if !out.status.success() {
                let why = String::from_utf8_lossy(&out.stderr).trim().to_string();
                disks.unmount_all();
                bail!("mount -t tmpfs on {} failed: {why}", dir.display());
            }
            tracing::info!(dir = %dir.display(), size_mb, "mounted tmpfs");
            disks.mounted.push(dir.clone());
        }
        Ok(disks)
    }

    /// Whether `dir` is one of the mounts.
    pub fn is_mounted(&self, dir: &Path) -> bool {
        self.mounted.iter().any(|d| d == dir)
    }

    /// Unmounts everything; returns what could not be unmounted even lazily.
    pub fn unmount_all(&mut self) -> Vec<String> {
        let mut failures = Vec::new();
        for dir in self.mounted.drain(..).rev() {
            let ok = Command::new("umount").arg(&dir).status().is_ok_and(|s| s.success());
            if ok {
                tracing::info!(dir = %dir.display(), "unmounted tmpfs");
                continue;
            }
            let lazy = Command::new("umount").arg("-l").arg(&dir).status().is_ok_and(|s| s.success());
            if lazy {
                tracing::warn!(dir = %dir.display(), "tmpfs was busy: unmounted lazily");
            } else {
                failures.push(dir.display().to_string());
            }
        }
        failures
    }
}

impl Drop for Disks {
    fn drop(&mut self) {
        for dir in self.unmount_all() {
            eprintln!("chaos: could not unmount the tmpfs on {dir}; run `umount -l {dir}`");
        }
    }
}

/// Writes `DIR/chaos-filler` until the file system is full (ENOSPC); returns the bytes written.
/// Bounded: at most `limit_bytes` are written (an error if the disk is still not full then).
pub fn fill(dir: &Path, limit_bytes: u64) -> Result<u64> {
    let path = dir.join(FILLER);
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    let big = vec![0x5Au8; 1 << 20];
    let mut written = 0u64;
    // Large chunks first, then small ones to take the last free pages.
    for chunk in [&big[..], &big[..4096]] {
        let rounds = limit_bytes / chunk.len() as u64 + 2;
        for _ in 0..rounds {
            match file.write(chunk) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(e) if e.raw_os_error() == Some(nix::libc::ENOSPC) => break,
                Err(e) => return Err(e).with_context(|| format!("writing {}", path.display())),
            }
            if written > limit_bytes {
                bail!("{} is not full after {written} bytes", dir.display());
            }
        }
    }
    let _ = file.flush();
    Ok(written)
}

/// Deletes the filler file (no error if it is not there).
pub fn free(dir: &Path) -> Result<()> {
    match std::fs::remove_file(dir.join(FILLER)) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot delete the filler in {}", dir.display())),
    }
}

/// Rot at rest in a stopped node's Raft log file: flips one payload byte of the `count` stored
/// log-entry records (frames opening with `PD`, kind 1, version 1) with the highest indexes —
/// the newest entries, after any snapshot, the ones the node must fetch again — in every copy
/// of each that the file holds (redb keeps superseded copies of a page until it reuses it;
/// flipping them all makes sure the live one is hit). `pick` breaks ties. Returns how many
/// records it damaged. Each record's CRC-32C then fails; redb's own checks do not look inside
/// values, so only the node's frame check can find it.
pub fn rot_log_records(path: &Path, pick: u64, count: usize) -> Result<usize> {
    const HEADER: [u8; 4] = *b"PD\x01\x01";
    /// Frame header (8 bytes, its CRC makes it all but unique) and the payload's first bytes
    /// (an entry record is never shorter than 4: its log id and payload tag).
    const NEEDLE_LEN: usize = 12;
    /// The payload starts after the 8-byte frame header.
    const PAYLOAD_AT: usize = 8;
    let mut bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    // (log index, needle) of every record found: the payload opens with the entry's log id,
    // postcard varints term, node, index.
    let mut records: Vec<(u64, Vec<u8>)> = bytes
        .windows(HEADER.len())
        .enumerate()
        .filter(|(at, w)| *w == HEADER && at + NEEDLE_LEN + 30 <= bytes.len())
        .filter_map(|(at, _)| {
            let mut rest = &bytes[at + PAYLOAD_AT..];
            let _term = varint(&mut rest)?;
            let _node = varint(&mut rest)?;
            let index = varint(&mut rest)?;
            Some((index, bytes[at..at + NEEDLE_LEN].to_vec()))
        })
        .collect();
    if records.is_empty() {
        bail!("no log record found in {}", path.display());
    }
    records.sort_by_key(|(index, needle)| {
        (std::cmp::Reverse(*index), needle.iter().map(|b| *b as u64).sum::<u64>() ^ pick)
    });
    records.dedup_by(|a, b| a.0 == b.0);
    records.truncate(count);
    for (_, needle) in &records {
        let copies: Vec<usize> =
            bytes.windows(NEEDLE_LEN).enumerate().filter(|(_, w)| w == needle).map(|(at, _)| at).collect();
        for at in copies {
            bytes[at + PAYLOAD_AT] ^= 0x40;
        }
    }
    std::fs::write(path, &bytes).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(records.len())
}

/// A postcard (LEB128) unsigned varint, advancing `rest`.
fn varint(rest: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, tail) = rest.split_first()?;
        *rest = tail;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As root: a 2 MiB tmpfs fills up, frees, and unmounts; otherwise mounting refuses with a
    /// reason.
    #[test]
    fn a_tmpfs_fills_to_enospc_and_frees() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        match Disks::mount(std::slice::from_ref(&data), 2) {
            Err(e) => {
                assert!(!e.to_string().is_empty());
            }
            Ok(mut disks) => {
                let n = fill(&data, 16 << 20).unwrap();
                assert!(n > (1 << 20) && n <= (2 << 20), "wrote {n} bytes into a 2 MiB tmpfs");
                assert!(std::fs::write(data.join("x"), b"more").is_err(), "the disk is full");
                free(&data).unwrap();
                std::fs::write(data.join("x"), b"more").unwrap();
                assert!(disks.unmount_all().is_empty());
            }
        }
    }
}
