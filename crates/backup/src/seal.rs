//! Sealed chain files: compressed with zstd and, with a key, encrypted with XChaCha20-Poly1305.
//!
//! ```text
//! magic "PDKBSEAL" | version u16 (1) | flags u8 (bit 0: zstd, bit 1: encrypted)
//! | key id [8] (first 8 bytes of the key's SHA-256; zeros unencrypted)
//! | nonce [24] (random per file; zeros unencrypted)
//! | payload (the file's bytes, compressed, then encrypted with the 43 bytes above as
//!   associated data, so a header cannot be swapped) | CRC-32C u32 of all before
//! ```
//!
//! The key is 32 bytes from a file or the environment, never written with the backup: the key
//! id lets `verify` and `restore` say "this chain needs key <id>" instead of failing opaquely.
//! The CRC lets `verify` check a file's integrity without the key; the AEAD tag proves with it
//! that the content is the one written.

use anyhow::{bail, Context, Result};
use chacha20poly1305::aead::{Aead, AeadInPlace, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};
use std::io::Write;

/// Sealed file magic.
pub const SEAL_MAGIC: [u8; 8] = *b"PDKBSEAL";
/// Sealed file version this build writes and reads.
pub const SEAL_VERSION: u16 = 1;
const HEADER: usize = 8 + 2 + 1 + 8 + 24;
const FLAG_ZSTD: u8 = 1;
const FLAG_ENCRYPTED: u8 = 2;
/// zstd level: the fastest of the normal ones, as backups run under load and compression is
/// most of their time (level 3 took a full backup 1.6× as long for a few per cent of size).
const ZSTD_LEVEL: i32 = 1;
/// Files from this size on are compressed on worker threads.
const ZSTD_PARALLEL_MIN_BYTES: usize = 8 << 20;
/// At most this many compression threads.
const ZSTD_WORKERS_MAX: usize = 4;

const WRITE: &str = "cannot write a sealed file (is the disk full?)";

/// A backup encryption key.
#[derive(Clone)]
pub struct Key([u8; 32]);

impl Key {
    /// From 64 hex digits, or 32 raw bytes (a key file may hold either; surrounding
    /// whitespace ignored).
    pub fn parse(bytes: &[u8]) -> Result<Key> {
        let text = std::str::from_utf8(bytes).ok().map(str::trim);
        if let Some(hex) = text.filter(|t| t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit())) {
            let mut key = [0u8; 32];
            for (i, byte) in key.iter_mut().enumerate() {
                *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex digits checked");
            }
            return Ok(Key(key));
        }
        match <[u8; 32]>::try_from(bytes) {
            Ok(key) => Ok(Key(key)),
            Err(_) => bail!("a backup key is 32 bytes, or 64 hex digits (e.g. from `openssl rand -hex 32`)"),
        }
    }

    /// Reads a key file.
    pub fn from_file(path: &std::path::Path) -> Result<Key> {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read the backup key file {}", path.display()))?;
        Key::parse(&bytes).with_context(|| format!("{}", path.display()))
    }

    /// The key's id: the first 8 bytes of its SHA-256, in hex (safe to print and to store).
    pub fn id(&self) -> String {
        crate::hex(&Sha256::digest(self.0)[..8])
    }

    fn id_bytes(&self) -> [u8; 8] {
        Sha256::digest(self.0)[..8].try_into().expect("8 bytes")
    }
}

/// zstd at [`ZSTD_LEVEL`] into `out` as the compressed bytes come, on as many worker threads
/// as the machine has cores (up to [`ZSTD_WORKERS_MAX`]) for a large file: a backup's time is
/// mostly compression.
fn compress_into<W: Write>(plain: &[u8], out: W) -> Result<W> {
    let mut encoder = zstd::stream::write::Encoder::new(out, ZSTD_LEVEL).context("zstd compression failed")?;
    if plain.len() >= ZSTD_PARALLEL_MIN_BYTES {
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).min(ZSTD_WORKERS_MAX) as u32;
        encoder.multithread(workers).context("zstd compression failed (worker threads)")?;
    }
    // The size in the frame's header, as a one-shot compression puts it.
    encoder.set_pledged_src_size(Some(plain.len() as u64)).context("zstd compression failed")?;
    encoder.write_all(plain).context(WRITE)?;
    encoder.finish().context(WRITE)
}

/// Compresses and, with a key, encrypts a file's bytes.
pub fn seal(plain: &[u8], key: Option<&Key>) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    seal_into(plain, key, &mut out)?;
    Ok(out)
}

/// [`seal`] into `out`, a piece at a time. Unencrypted, the compressed bytes go out as zstd
/// produces them, so no copy of the file is made; encrypted, the compressed payload is gathered
/// once and encrypted in place (the AEAD tag covers it whole).
pub fn seal_into<W: Write + ?Sized>(plain: &[u8], key: Option<&Key>, out: &mut W) -> Result<()> {
    let key = match key {
        None => None,
        Some(key) => {
            let mut nonce = [0u8; 24];
            getrandom::fill(&mut nonce).map_err(|e| anyhow::anyhow!("no randomness for a nonce: {e}"))?;
            Some((key, nonce))
        }
    };
    seal_with_nonce(plain, key, out)
}

/// [`seal_into`] with the nonce given: a random one for every file in use, a fixed one for the
/// format's golden fixture.
fn seal_with_nonce<W: Write + ?Sized>(plain: &[u8], key: Option<(&Key, [u8; 24])>, out: &mut W) -> Result<()> {
    let mut crc = 0u32;
    let mut out = crate::Tap::new(out, |piece: &[u8]| crc = crc32c::crc32c_append(crc, piece));
    let mut header = Vec::with_capacity(HEADER);
    header.extend_from_slice(&SEAL_MAGIC);
    header.extend_from_slice(&SEAL_VERSION.to_le_bytes());
    match key {
        None => {
            header.push(FLAG_ZSTD);
            header.extend_from_slice(&[0u8; 8 + 24]);
            out.write_all(&header).context(WRITE)?;
            compress_into(plain, &mut out)?;
        }
        Some((key, nonce)) => {
            header.push(FLAG_ZSTD | FLAG_ENCRYPTED);
            header.extend_from_slice(&key.id_bytes());
            header.extend_from_slice(&nonce);
            // Room for the whole payload at once: growing it by doubling copies it over.
            let bound = zstd::zstd_safe::compress_bound(plain.len());
            let mut payload = compress_into(plain, Vec::with_capacity(bound))?;
            let tag = XChaCha20Poly1305::new((&key.0).into())
                .encrypt_in_place_detached(XNonce::from_slice(&nonce), &header, &mut payload)
                .map_err(|_| anyhow::anyhow!("encryption failed"))?;
            out.write_all(&header).context(WRITE)?;
            out.write_all(&payload).context(WRITE)?;
            out.write_all(&tag).context(WRITE)?;
        }
    }
    out.into_inner().write_all(&crc.to_le_bytes()).context(WRITE)
}

/// The key id a sealed file needs, if it is encrypted; checks the frame and its CRC.
pub fn needs_key(name: &str, sealed: &[u8]) -> Result<Option<String>> {
    let body = frame(name, sealed)?;
    Ok((body[10] & FLAG_ENCRYPTED != 0).then(|| crate::hex(&body[11..19])))
}

fn frame<'a>(name: &str, sealed: &'a [u8]) -> Result<&'a [u8]> {
    if sealed.len() < HEADER + 4 || sealed[..8] != SEAL_MAGIC {
        bail!("{name}: damaged (not a sealed Paddock backup file)");
    }
    let (body, crc) = sealed.split_at(sealed.len() - 4);
    if crc32c::crc32c(body).to_le_bytes() != crc {
        bail!("{name}: damaged (checksum mismatch: truncated or altered)");
    }
    let version = u16::from_le_bytes([body[8], body[9]]);
    if version != SEAL_VERSION {
        bail!("{name}: sealed file version {version} (this build reads {SEAL_VERSION})");
    }
    Ok(body)
}

/// The file's original bytes.
pub fn open(name: &str, sealed: &[u8], key: Option<&Key>) -> Result<Vec<u8>> {
    let body = frame(name, sealed)?;
    let flags = body[10];
    let payload = &body[HEADER..];
    let compressed = if flags & FLAG_ENCRYPTED != 0 {
        let wanted = crate::hex(&body[11..19]);
        let Some(key) = key else {
            bail!("{name}: encrypted with key {wanted}: give that key (--key-file or PADDOCK_BACKUP_KEY)");
        };
        if key.id() != wanted {
            bail!("{name}: encrypted with key {wanted}, and the key given is {}: give the chain's key", key.id());
        }
        XChaCha20Poly1305::new((&key.0).into())
            .decrypt(XNonce::from_slice(&body[19..43]), Payload { msg: payload, aad: &body[..HEADER] })
            .map_err(|_| anyhow::anyhow!("{name}: damaged (its content does not authenticate with the chain's key)"))?
    } else {
        payload.to_vec()
    };
    if flags & FLAG_ZSTD == 0 {
        return Ok(compressed);
    }
    // A bound on what a file may expand to, so a forged header cannot exhaust memory.
    zstd::bulk::decompress(&compressed, 1 << 34).with_context(|| format!("{name}: damaged (zstd data does not decode)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> Key {
        Key([byte; 32])
    }

    #[test]
    fn a_sealed_file_opens_to_its_bytes_with_the_key_and_only_with_it() {
        let plain = b"the same bytes, again and again, compress well; ".repeat(100);
        let compressed = seal(&plain, None).expect("sealed");
        assert!(compressed.len() < plain.len() / 4, "zstd shrinks repetitive data");
        assert_eq!(open("f", &compressed, None).expect("opens"), plain);
        assert_eq!(needs_key("f", &compressed).expect("frame"), None);

        let encrypted = seal(&plain, Some(&key(7))).expect("sealed");
        assert_eq!(needs_key("f", &encrypted).expect("frame"), Some(key(7).id()));
        assert_eq!(open("f", &encrypted, Some(&key(7))).expect("opens"), plain);
        let no_key = open("f", &encrypted, None).expect_err("needs the key").to_string();
        assert!(no_key.contains(&key(7).id()), "{no_key}");
        let wrong = open("f", &encrypted, Some(&key(8))).expect_err("wrong key").to_string();
        assert!(wrong.contains("give the chain's key"), "{wrong}");
    }

    #[test]
    fn a_file_large_enough_for_worker_threads_is_streamed_out_and_opens_to_its_bytes() {
        // Above the size compressed on worker threads, varied enough that zstd emits output
        // before the end.
        let plain: Vec<u8> =
            (0..(ZSTD_PARALLEL_MIN_BYTES as u64 + 4096)).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        for key in [None, Some(key(9))] {
            let mut writes = Counting { writes: 0, bytes: Vec::new() };
            seal_into(&plain, key.as_ref(), &mut writes).expect("sealed");
            if key.is_none() {
                assert!(writes.writes > 2, "unencrypted, the output goes out as it is made");
            }
            // Opening checks the CRC-32C taken on the way, then the tag, then the bytes.
            assert_eq!(open("big", &writes.bytes, key.as_ref()).expect("opens"), plain);
        }
    }

    /// A writer that counts the writes it gets.
    struct Counting {
        writes: usize,
        bytes: Vec<u8>,
    }

    impl Write for Counting {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.writes += 1;
            self.bytes.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_sealed_file_altered_anywhere_is_refused() {
        let encrypted = seal(b"bets and balances", Some(&key(1))).expect("sealed");
        for at in [0, 10, 20, HEADER, encrypted.len() - 6] {
            let mut altered = encrypted.clone();
            altered[at] ^= 0x10;
            assert!(open("f", &altered, Some(&key(1))).is_err(), "a change at byte {at} is caught");
        }
        // Altered and its CRC recomputed: the authentication tag still catches it.
        let mut forged = encrypted.clone();
        forged[HEADER + 1] ^= 1;
        let end = forged.len() - 4;
        let crc = crc32c::crc32c(&forged[..end]);
        forged[end..].copy_from_slice(&crc.to_le_bytes());
        let error = open("f", &forged, Some(&key(1))).expect_err("forged").to_string();
        assert!(error.contains("does not authenticate"), "{error}");
    }

    #[test]
    fn the_sealed_file_format_is_pinned() {
        use paddock_golden::{Format, Golden};
        const SEALED_FILE: Format = Format { dir: "sealed_file", version: SEAL_VERSION as u32, bump: "SEAL_VERSION" };
        let mut golden = Golden::new(env!("CARGO_MANIFEST_DIR"), env!("CARGO_PKG_NAME"), SEALED_FILE);
        // zstd's own output for this input is part of the pinned bytes, so an upgrade of zstd
        // that compresses it differently shows here too; what must never change is that the
        // fixtures open.
        let plain = b"a log of bets, a log of bets, a log of bets: sealed".to_vec();
        let seal_fixed = |key: Option<&Key>| {
            let mut out = Vec::new();
            seal_with_nonce(&plain, key.map(|k| (k, [0x24; 24])), &mut out).expect("sealed");
            out
        };
        golden.check(
            "zstd",
            "a sealed file, compressed only",
            &plain,
            |_| seal_fixed(None),
            |bytes| open("fixture", bytes, None).map_err(|e| e.to_string()),
        );
        golden.check(
            "zstd_encrypted",
            "a sealed file, compressed and encrypted with key 0x07 × 32 and nonce 0x24 × 24",
            &plain,
            |_| seal_fixed(Some(&key(7))),
            |bytes| open("fixture", bytes, Some(&key(7))).map_err(|e| e.to_string()),
        );
        golden.finish();
    }

    #[test]
    fn a_key_is_32_bytes_or_64_hex_digits() {
        assert_eq!(Key::parse(&[3u8; 32]).expect("raw").id(), key(3).id());
        assert_eq!(Key::parse(format!("{}\n", "03".repeat(32)).as_bytes()).expect("hex").id(), key(3).id());
        assert!(Key::parse(b"short").is_err());
    }
}
