//! Invariant 8, second half: committed entries never change — no two nodes apply different
//! entries at one log index.
//!
//! Every entry a node applies is compared, by a digest of its command and its outcome, with
//! the first entry recorded at that index by any node. A different outcome for the same
//! command counts as a different entry too: replicas must compute the same answer.
//!
//! Cannot see: blank and membership entries (they are not announced on the applied-entry
//! channel); an entry that no node applied (a node that lost an entry *and* never applied
//! it is invisible here; the `replicas` and `acknowledged` checkers see the damage instead); a
//! divergence in state that does not show in an entry's outcome (`replicas` compares hashes).

use crate::check::Checker;
use crate::world::World;
use paddock_consensus::AppliedEvent;

/// Records one applied entry, reporting a mismatch with what another node applied there.
pub(crate) fn record(world: &World, node: u64, event: &AppliedEvent) {
    let differs = world
        .committed
        .borrow_mut()
        .record(event.index, event.time, &event.command, &event.outcome)
        .map(|first| format!("{:?} -> {:?}", first.command, first.outcome));
    if let Some(first) = differs {
        world.violation(
            Checker::LogMatching,
            format!(
                "node {node} applied {:?} -> {:?} at index {}, another node applied {first}",
                event.command, event.outcome, event.index
            ),
        );
    }
}
