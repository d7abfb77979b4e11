//! Snapshot encoding and the state hash.
//!
//! Layout of an encoded snapshot (all integers little-endian):
//!
//! ```text
//! offset  size  field
//! 0       8     magic  "PDKSNAP\0"
//! 8       2     format version (4; 3 and 2 are read too)
//! 10      8     payload length n
//! 18      n     payload: the State, postcard-encoded
//! 18+n    4     CRC-32C of bytes 0 .. 18+n
//! ```
//!
//! The state hash is SHA-256 of the payload: every replica that applied the same commands
//! encodes the same bytes, because every container in `State` iterates in a fixed order.

use crate::state::State;
use sha2::{Digest, Sha256};

/// First bytes of every snapshot.
pub const SNAPSHOT_MAGIC: [u8; 8] = *b"PDKSNAP\0";
/// The format this build writes. 4: the state ends with the incident records. 3 (ending with
/// the registry of principals and API keys) is still read: its payload is a version-4 payload
/// without the incidents at its end, so it decodes as the same state with no incidents; and 2
/// (idempotency records scoped by `KeyScope`) lacks the registry as well. Version 1 was
/// pre-release and is refused, not misread.
pub const SNAPSHOT_FORMAT_VERSION: u16 = 4;
/// The oldest format this build reads.
pub const SNAPSHOT_FORMAT_VERSION_MIN: u16 = 2;
const HEADER_LEN: usize = 18;

/// Why a snapshot could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// Fewer bytes than the header and trailer need, or than the header announces.
    #[error("snapshot truncated: {0} bytes")]
    Truncated(usize),
    /// Not a Paddock snapshot.
    #[error("not a paddock snapshot (bad magic)")]
    BadMagic,
    /// Written by a format this build does not know.
    #[error(
        "snapshot format version {0} is not supported (this build reads {SNAPSHOT_FORMAT_VERSION_MIN} to {SNAPSHOT_FORMAT_VERSION})"
    )]
    UnsupportedVersion(u16),
    /// The checksum does not match: the bytes were damaged.
    #[error("snapshot checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    Checksum {
        /// CRC in the file.
        stored: u32,
        /// CRC of the bytes read.
        computed: u32,
    },
    /// The checksum matched but the payload did not decode.
    #[error("snapshot payload does not decode: {0}")]
    Decode(#[from] postcard::Error),
}

/// A snapshot's state hash and the book's clock at it, read without decoding the book
/// ([`State::summarize_snapshot`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotSummary {
    /// [`State::state_hash`] of the state the snapshot holds.
    pub state_hash: StateHash,
    /// [`State::clock`] of that state.
    pub clock: crate::ids::TimestampMs,
}

/// A snapshot's format version and payload, after its magic, version, length and CRC-32C are
/// checked.
fn checked_payload(bytes: &[u8]) -> Result<(u16, &[u8]), SnapshotError> {
    if bytes.len() < HEADER_LEN + 4 {
        return Err(SnapshotError::Truncated(bytes.len()));
    }
    if bytes[0..8] != SNAPSHOT_MAGIC {
        return Err(SnapshotError::BadMagic);
    }
    let version = u16::from_le_bytes([bytes[8], bytes[9]]);
    if !(SNAPSHOT_FORMAT_VERSION_MIN..=SNAPSHOT_FORMAT_VERSION).contains(&version) {
        return Err(SnapshotError::UnsupportedVersion(version));
    }
    let mut len_bytes = [0u8; 8];
    len_bytes.copy_from_slice(&bytes[10..18]);
    let len = u64::from_le_bytes(len_bytes);
    let end = usize::try_from(len)
        .ok()
        .and_then(|l| l.checked_add(HEADER_LEN))
        .filter(|end| end.checked_add(4) == Some(bytes.len()))
        .ok_or(SnapshotError::Truncated(bytes.len()))?;
    let mut crc_bytes = [0u8; 4];
    crc_bytes.copy_from_slice(&bytes[end..end + 4]);
    let stored = u32::from_le_bytes(crc_bytes);
    let computed = crc32c::crc32c(&bytes[..end]);
    if stored != computed {
        return Err(SnapshotError::Checksum { stored, computed });
    }
    Ok((version, &bytes[HEADER_LEN..end]))
}

/// A 32-byte digest of the whole state.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StateHash(pub [u8; 32]);

impl std::fmt::Debug for StateHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self}")
    }
}

impl std::fmt::Display for StateHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Where an encoding goes, a piece at a time: a digest, a checksum, a file. An error stops the
/// encoding and is returned by it.
pub type Sink<'a> = dyn FnMut(&[u8]) -> std::io::Result<()> + 'a;

/// How much of an encoding is gathered before it goes to the sink: large enough that a file
/// sink writes in big pieces, small enough to stay in cache.
const PIECE: usize = 256 * 1024;

/// A postcard flavor that hands the encoding to a [`Sink`] a piece at a time, so a state of
/// any size is hashed, checksummed or written without its encoding ever being held whole (a
/// `Vec` grown to gigabytes was most of a large snapshot's build time: copies as it doubled,
/// and page faults).
struct Pieces<'s, 'a> {
    piece: Vec<u8>,
    sink: &'s mut Sink<'a>,
    /// The sink's error, kept here because postcard's error type cannot carry it.
    failed: &'s mut Option<std::io::Error>,
}

impl Pieces<'_, '_> {
    fn flush(&mut self) -> postcard::Result<()> {
        if self.piece.is_empty() {
            return Ok(());
        }
        let result = (self.sink)(&self.piece);
        self.piece.clear();
        result.map_err(|e| {
            *self.failed = Some(e);
            postcard::Error::SerializeBufferFull
        })
    }
}

impl postcard::ser_flavors::Flavor for Pieces<'_, '_> {
    type Output = ();

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        if self.piece.len() + data.len() > PIECE {
            self.flush()?;
        }
        // Most pieces postcard hands over are a varint's few bytes, for which a call to
        // memcpy costs more than the copy.
        if data.len() <= 16 {
            for &byte in data {
                self.piece.push(byte);
            }
        } else {
            self.piece.extend_from_slice(data);
        }
        Ok(())
    }

    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        if self.piece.len() >= PIECE {
            self.flush()?;
        }
        self.piece.push(data);
        Ok(())
    }

    fn finalize(mut self) -> postcard::Result<()> {
        self.flush()
    }
}

/// Encodes the state's payload into `sink`, a piece at a time.
fn payload_into(state: &State, sink: &mut Sink<'_>) -> std::io::Result<()> {
    let mut failed = None;
    let flavor = Pieces { piece: Vec::with_capacity(PIECE), sink, failed: &mut failed };
    match postcard::serialize_with_flavor::<State, _, ()>(state, flavor) {
        Ok(()) => Ok(()),
        Err(e) => {
            Err(failed.take().unwrap_or_else(|| std::io::Error::other(format!("the state does not encode: {e}"))))
        }
    }
}

/// A postcard flavor that only counts what would be written.
struct Counting(u64);

impl postcard::ser_flavors::Flavor for Counting {
    type Output = u64;

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.0 += data.len() as u64;
        Ok(())
    }

    fn try_push(&mut self, _: u8) -> postcard::Result<()> {
        self.0 += 1;
        Ok(())
    }

    fn finalize(self) -> postcard::Result<u64> {
        Ok(self.0)
    }
}

/// The length of the state's payload, counted by encoding it into nothing.
fn payload_len(state: &State) -> u64 {
    postcard::serialize_with_flavor::<State, _, u64>(state, Counting(0))
        .expect("counting cannot fail: plain data, and a flavor that never refuses")
}

impl State {
    /// Digest of the whole state.
    pub fn state_hash(&self) -> StateHash {
        let mut sha = Sha256::new();
        payload_into(self, &mut |piece| {
            sha.update(piece);
            Ok(())
        })
        .expect("hashing cannot fail: plain data, and a sink that never refuses");
        StateHash(sha.finalize().into())
    }

    /// The length of [`State::encode_snapshot`]'s bytes, without building them (one pass of
    /// the encoder that writes nothing): what a file's header announces before the state is
    /// streamed into it.
    pub fn snapshot_len(&self) -> u64 {
        HEADER_LEN as u64 + payload_len(self) + 4
    }

    /// Writes the snapshot into `sink` a piece at a time, never holding its encoding whole:
    /// the same bytes as [`State::encode_snapshot`]. `snapshot_len` is [`State::snapshot_len`],
    /// taken first by the caller because the header names it (and a file's header too), so the
    /// state is walked twice; a length that is not the state's fails the write. Returns the
    /// state hash, for the price of hashing what is written.
    pub fn write_snapshot(&self, snapshot_len: u64, sink: &mut Sink<'_>) -> std::io::Result<StateHash> {
        let payload = snapshot_len
            .checked_sub(HEADER_LEN as u64 + 4)
            .ok_or_else(|| std::io::Error::other(format!("{snapshot_len} bytes is shorter than any snapshot")))?;
        let mut header = Vec::with_capacity(HEADER_LEN);
        header.extend_from_slice(&SNAPSHOT_MAGIC);
        header.extend_from_slice(&SNAPSHOT_FORMAT_VERSION.to_le_bytes());
        header.extend_from_slice(&payload.to_le_bytes());
        sink(&header)?;
        let mut crc = crc32c::crc32c(&header);
        let mut sha = Sha256::new();
        let mut written = 0u64;
        payload_into(self, &mut |piece| {
            crc = crc32c::crc32c_append(crc, piece);
            sha.update(piece);
            written += piece.len() as u64;
            sink(piece)
        })?;
        if written != payload {
            // Two encodings of one unchanged state differ: a bug, and the file would lie.
            return Err(std::io::Error::other(format!(
                "the state encoded to {written} bytes after counting {payload}: the snapshot is not written"
            )));
        }
        sink(&crc.to_le_bytes())?;
        Ok(StateHash(sha.finalize().into()))
    }

    /// The state hash leaving out the idempotency records: what a refused command must leave
    /// unchanged (a refusal changes nothing but the record of its key).
    pub fn book_hash(&self) -> StateHash {
        self.clone().into_book().state_hash()
    }

    /// The state hash and the book hash of a state the caller owns, such as a copy taken
    /// under a lock and hashed off it: the book hash reuses the copy instead of making another.
    pub fn into_hashes(self) -> (StateHash, StateHash) {
        let state = self.state_hash();
        (state, self.into_book().state_hash())
    }

    fn into_book(mut self) -> State {
        self.idempotency.clear();
        self.idempotency_expiry.clear();
        self
    }

    /// What a backup records of a snapshot — its state hash and the book's clock — read from
    /// the bytes without decoding the book: the state hash is the SHA-256 of the payload as it
    /// lies there, and the clock is the state's second field, after the config (a test pins
    /// both against a decoded state). A snapshot of an older format version is decoded: its
    /// payload lacks the fields added since, so its bytes are not the current encoding.
    pub fn summarize_snapshot(bytes: &[u8]) -> Result<SnapshotSummary, SnapshotError> {
        let (version, payload) = checked_payload(bytes)?;
        if version < SNAPSHOT_FORMAT_VERSION {
            let state = State::decode_snapshot(bytes)?;
            return Ok(SnapshotSummary { state_hash: state.state_hash(), clock: state.clock });
        }
        #[derive(serde::Deserialize)]
        struct Head {
            _config: crate::command::BookConfig,
            clock: crate::ids::TimestampMs,
        }
        let (head, _) = postcard::take_from_bytes::<Head>(payload)?;
        Ok(SnapshotSummary { state_hash: StateHash(Sha256::digest(payload).into()), clock: head.clock })
    }

    /// The state as snapshot bytes.
    pub fn encode_snapshot(&self) -> Vec<u8> {
        let len = self.snapshot_len();
        let mut out = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
        self.write_snapshot(len, &mut |piece| {
            out.extend_from_slice(piece);
            Ok(())
        })
        .expect("encoding into memory cannot fail: plain data, and a sink that never refuses");
        out
    }

    /// Reads snapshot bytes, checking magic, version, length and checksum before decoding.
    pub fn decode_snapshot(bytes: &[u8]) -> Result<State, SnapshotError> {
        let (version, payload) = checked_payload(bytes)?;
        // Older versions lack fields added since at the end of the state: their bytes plus
        // the encoding of those fields' empty values are the current encoding.
        if version < SNAPSHOT_FORMAT_VERSION {
            let mut upgraded = payload.to_vec();
            if version == 2 {
                upgraded.extend(postcard::to_stdvec(&crate::auth::Registry::default())?);
            }
            upgraded.extend(postcard::to_stdvec(&crate::incident::Incidents::default())?);
            return Ok(postcard::from_bytes(&upgraded)?);
        }
        Ok(postcard::from_bytes(payload)?)
    }
}
