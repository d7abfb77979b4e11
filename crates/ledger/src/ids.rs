//! Typed identifiers, currencies, timestamps and the small validated strings that commands carry.
//!
//! Every id is a newtype so that an `AccountId` can never be passed where a `MarketId` is
//! expected; ids are plain `u64`s on the wire so clients can choose them (accounts, events,
//! markets, selections) or read them back (bets, which the ledger numbers itself).

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub u64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

typed_id!(
    /// A player account (one wallet in one currency).
    AccountId
);
typed_id!(
    /// A sporting event: a match, a race.
    EventId
);
typed_id!(
    /// A market on an event: match result, a total with a line, a race's win market.
    MarketId
);
typed_id!(
    /// A selection (runner, team, outcome) within one market. Unique across the whole book.
    SelectionId
);
typed_id!(
    /// A bet, numbered by the ledger in acceptance order, starting at 1.
    BetId
);

/// Milliseconds since the Unix epoch, UTC. Assigned by the Raft leader and carried in the log
/// entry: replicas never read their own clock to decide anything (DOMAIN.md, R7).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TimestampMs(pub u64);

impl TimestampMs {
    /// This instant moved `duration_ms` later, saturating at the end of time.
    pub fn plus_ms(self, duration_ms: u64) -> TimestampMs {
        TimestampMs(self.0.saturating_add(duration_ms))
    }
}

/// One day in milliseconds.
pub const DAY_MS: u64 = 24 * 60 * 60 * 1000;

/// An ISO 4217 currency code: three upper-case ASCII letters, stored inline.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Currency(pub [u8; 3]);

impl Currency {
    /// Parses "GBP"; `None` unless exactly three upper-case ASCII letters.
    pub fn parse(code: &str) -> Option<Currency> {
        let bytes = code.as_bytes();
        if bytes.len() == 3 && bytes.iter().all(u8::is_ascii_uppercase) {
            Some(Currency([bytes[0], bytes[1], bytes[2]]))
        } else {
            None
        }
    }

    /// Whether the bytes form a valid code (a deserialised value may not).
    pub fn is_valid(&self) -> bool {
        self.0.iter().all(u8::is_ascii_uppercase)
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("???")
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Longest idempotency key accepted, in bytes. Stripe allows 255; 64 covers a UUID with room.
pub const IDEMPOTENCY_KEY_LEN_MAX: usize = 64;
/// Longest name, reason or actor string accepted, in characters (Unicode scalar values, as
/// JSON Schema's `maxLength` counts them, so that the API document can state the rule exactly).
pub const TEXT_LEN_MAX: usize = 200;

/// A client-chosen key that makes a money-moving command safe to retry.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct IdempotencyKey(pub String);

impl IdempotencyKey {
    /// Non-empty, at most [`IDEMPOTENCY_KEY_LEN_MAX`] bytes of printable ASCII.
    pub fn is_valid(&self) -> bool {
        !self.0.is_empty() && self.0.len() <= IDEMPOTENCY_KEY_LEN_MAX && self.0.bytes().all(|b| b.is_ascii_graphic())
    }

    /// The first 128 bits of the key's SHA-256: how the ledger stores it. Two keys of one
    /// account colliding would need a 2^-64 birthday coincidence among that account's keys.
    pub fn digest(&self) -> u128 {
        use sha2::{Digest, Sha256};
        let full: [u8; 32] = Sha256::digest(self.0.as_bytes()).into();
        u128::from_le_bytes(full[..16].try_into().expect("16 bytes"))
    }
}

/// The person or system on whose authority an operator command runs, recorded in the audit
/// trail (DOMAIN.md R5: "admin actions with the acting identity").
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Actor(pub String);

/// Whether a free-text field (name, reason, actor) is acceptable.
pub(crate) fn text_is_valid(text: &str) -> bool {
    text_within(text, TEXT_LEN_MAX)
}

/// At most `max` characters, none of them a control character: the one rule for every free
/// text the ledger keeps.
pub(crate) fn text_within(text: &str, max: usize) -> bool {
    // Four bytes a character at most: the byte test first spares counting short text.
    (text.len() <= max || text.chars().count() <= max) && !text.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::{text_is_valid, TEXT_LEN_MAX};

    #[test]
    fn text_is_measured_in_characters_and_refuses_control_characters() {
        assert!(text_is_valid(""), "a reason may be left empty");
        assert!(text_is_valid(&"é".repeat(TEXT_LEN_MAX)), "200 two-byte characters");
        assert!(text_is_valid(&"🏇".repeat(TEXT_LEN_MAX)), "200 four-byte characters");
        assert!(!text_is_valid(&"é".repeat(TEXT_LEN_MAX + 1)), "one character too many");
        assert!(!text_is_valid(&"x".repeat(TEXT_LEN_MAX + 1)));
        for control in ["line\nbreak", "tab\t", "nul\0", "c1\u{85}", "del\u{7f}"] {
            assert!(!text_is_valid(control), "{control:?}");
        }
    }
}
