//! Invariant 4, as clients see it: a retry returns the first answer.
//!
//! Every definitive answer a client receives for a key is compared with the first answer it
//! received for that key (a client whose answer was lost retries the same command, hence the
//! same key, through a random node).
//!
//! Cannot see: a retry whose *first* answer was lost — the client then has only one answer
//! to compare. A command that took effect twice behind such a lost answer is the `idempotency`
//! checker's, which reads the committed log instead.

use crate::check::Checker;
use crate::oracle::Acked;
use crate::world::World;

/// Compares a retry's answer with the first.
pub(crate) fn compare(world: &World, key: &str, first: &Acked, retry: &Acked) {
    if first.outcome != retry.outcome {
        world.violation(
            Checker::Retries,
            format!("key {key}: retry answered {:?}, first answer was {:?}", retry.outcome, first.outcome),
        );
    }
}
