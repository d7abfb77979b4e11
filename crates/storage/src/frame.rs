//! The frame around every persistent value: magic, format version and checksum.
//!
//! ```text
//! offset  size  field
//! 0       2     magic 0x50 0x44 ("PD")
//! 2       1     kind  (what the payload is: log entry, vote, identity, ...)
//! 3       1     format version of that kind
//! 4       4     CRC-32C of bytes 0..4 and of the payload
//! 8       n     payload
//! ```

/// Frame magic.
pub const FRAME_MAGIC: [u8; 2] = *b"PD";
const HEADER_LEN: usize = 8;

/// Why framed bytes were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Shorter than a header.
    #[error("record truncated ({0} bytes)")]
    Truncated(usize),
    /// Not a Paddock record.
    #[error("bad record magic")]
    BadMagic,
    /// Another kind of record than expected.
    #[error("record kind {found} where {expected} was expected")]
    WrongKind {
        /// Expected kind.
        expected: u8,
        /// Kind found.
        found: u8,
    },
    /// A format version this build cannot read.
    #[error("record format version {found} is not supported (max {supported})")]
    UnsupportedVersion {
        /// Version found.
        found: u8,
        /// Highest this build reads.
        supported: u8,
    },
    /// Checksum mismatch: the bytes were damaged.
    #[error("record checksum mismatch")]
    Checksum,
}

impl From<FrameError> for std::io::Error {
    fn from(e: FrameError) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::InvalidData, e)
    }
}

/// Wraps `payload` in a frame of `kind` at `version`.
pub fn encode(kind: u8, version: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&FRAME_MAGIC);
    out.push(kind);
    out.push(version);
    let crc = crc32c::crc32c_append(crc32c::crc32c(&out), payload);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// Checks a frame and returns its version and payload.
pub fn decode(kind: u8, version_max: u8, bytes: &[u8]) -> Result<(u8, &[u8]), FrameError> {
    if bytes.len() < HEADER_LEN {
        return Err(FrameError::Truncated(bytes.len()));
    }
    if bytes[0..2] != FRAME_MAGIC {
        return Err(FrameError::BadMagic);
    }
    // The checksum before the kind and version: a flipped bit in either is damage, to be
    // repaired, not a record another build wrote, to be refused.
    let stored = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    let payload = &bytes[HEADER_LEN..];
    if crc32c::crc32c_append(crc32c::crc32c(&bytes[0..4]), payload) != stored {
        return Err(FrameError::Checksum);
    }
    if bytes[2] != kind {
        return Err(FrameError::WrongKind { expected: kind, found: bytes[2] });
    }
    let version = bytes[3];
    if version == 0 || version > version_max {
        return Err(FrameError::UnsupportedVersion { found: version, supported: version_max });
    }
    Ok((version, payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_round_trips_and_any_flipped_bit_is_detected() {
        let framed = encode(7, 1, b"hello paddock");
        assert_eq!(decode(7, 1, &framed), Ok((1, &b"hello paddock"[..])));
        for byte in 0..framed.len() {
            for bit in 0..8 {
                let mut damaged = framed.clone();
                damaged[byte] ^= 1 << bit;
                assert!(decode(7, 1, &damaged).is_err(), "flip at byte {byte} bit {bit} went unnoticed");
            }
        }
    }

    #[test]
    fn a_flipped_bit_in_the_kind_or_version_is_damage_not_another_format() {
        let mut framed = encode(7, 1, b"x");
        framed[3] ^= 0x20;
        assert_eq!(decode(7, 1, &framed), Err(FrameError::Checksum));
        let mut framed = encode(7, 1, b"x");
        framed[2] ^= 0x01;
        assert_eq!(decode(7, 1, &framed), Err(FrameError::Checksum));
    }

    #[test]
    fn a_newer_version_or_other_kind_is_refused() {
        assert_eq!(decode(7, 1, &encode(7, 2, b"x")), Err(FrameError::UnsupportedVersion { found: 2, supported: 1 }));
        assert_eq!(decode(8, 1, &encode(7, 1, b"x")), Err(FrameError::WrongKind { expected: 8, found: 7 }));
        assert_eq!(decode(7, 1, b"PD"), Err(FrameError::Truncated(2)));
    }
}
