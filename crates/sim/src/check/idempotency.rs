//! Invariant 11 (and 4 from the log's side): every write takes effect at most once per
//! idempotency key, whatever the retries, forwards and failovers in between.
//!
//! Reads the committed log: every successful entry of one `(scope, key)` must carry the same
//! command and the same outcome. A retry answered from the key's record repeats the first
//! outcome exactly (same bet id, same balance); a retry that took effect a second time
//! answers anew (another bet id, another balance). Unlike `retries`, this sees retries whose
//! first answer was lost — the case idempotency exists for.
//!
//! Cannot see: a second application whose outcome happens to equal the first (`Done::Ok` of
//! an operator command applied twice: the `money` model, which applies a key once, sees it
//! only where money moves); keys refused the first time (a refusal is not remembered, by
//! design, and a retry may succeed); `ResolvePending`, which has no key.

use crate::check::Checker;
use crate::oracle::Committed;
use crate::paths::Path;
use crate::world::World;
use paddock_ledger::{Command, KeyScope, Outcome};
use std::collections::BTreeMap;

/// Checks the whole log record.
pub(crate) fn check(world: &World, log: &Committed) {
    let mut first: BTreeMap<(KeyScope, String), (u64, &Command, &Outcome)> = BTreeMap::new();
    for (index, e) in &log.entries {
        if !e.outcome.is_done() {
            continue;
        }
        let Some((scope, key)) = e.command.idempotency() else { continue };
        match first.get(&(scope, key.0.clone())) {
            None => {
                first.insert((scope, key.0.clone()), (*index, &e.command, &e.outcome));
            }
            Some((at, command, outcome)) => {
                if *command != &e.command {
                    world.violation(
                        Checker::Idempotency,
                        format!("key {:?} took effect at index {at} and, with another body, at index {index}", key.0),
                    );
                } else if *outcome != &e.outcome {
                    world.violation(
                        Checker::Idempotency,
                        format!(
                            "key {:?} took effect twice: index {at} answered {outcome:?}, index {index} answered {:?}",
                            key.0, e.outcome
                        ),
                    );
                } else {
                    world.reached(Path::RetryAnsweredFromRecord);
                }
            }
        }
    }
}
