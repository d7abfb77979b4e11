//! Deliberate consensus bugs for the simulator's teeth tests: each switch breaks one rule so
//! that a test can prove the simulator's checkers notice. Without the `sim` feature every
//! switch is a constant `false` and compiles away; the setters exist only with it.
//!
//! The switches are thread-local: the simulator runs a whole cluster on one thread, and test
//! threads run their own simulations side by side.

use crate::state_machine::AppliedEvent;
use paddock_ledger::Command;
use std::sync::Arc;
use tokio::sync::broadcast;

/// The replica that skips an entry, named by the channel it announces applied entries on (the
/// one handle the simulator gives each node's state machine), and the index from which it
/// skips the first deposit it sees.
#[cfg(feature = "sim")]
type SkipTarget = (broadcast::Sender<Arc<AppliedEvent>>, u64);

#[cfg(feature = "sim")]
thread_local! {
    static STALE_READS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    static SKIP_ENTRY: std::cell::RefCell<Option<SkipTarget>> = const { std::cell::RefCell::new(None) };
    static SKIPPED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    static NO_CLOCK_GATE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    static RESTORE_SKIPS_DEPOSITS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether a restore's replay of the log after a backup's snapshot leaves deposits out
/// ([`crate::backup::replay`], which `paddock restore` and `paddock backup verify` use).
#[inline]
pub(crate) fn restore_skips_deposits(command: &Command) -> bool {
    #[cfg(feature = "sim")]
    {
        RESTORE_SKIPS_DEPOSITS.with(|c| c.get()) && matches!(command, Command::Deposit { .. })
    }
    #[cfg(not(feature = "sim"))]
    {
        let _ = command;
        false
    }
}

/// Turns the restore-skips-deposits bug on or off for this thread.
#[cfg(feature = "sim")]
pub fn set_restore_skips_deposits(on: bool) {
    RESTORE_SKIPS_DEPOSITS.with(|c| c.set(on));
}

/// Whether a leader stamps commands whatever its clock reads (cluster time's gate is off).
#[inline]
pub fn no_clock_gate() -> bool {
    #[cfg(feature = "sim")]
    {
        NO_CLOCK_GATE.with(|c| c.get())
    }
    #[cfg(not(feature = "sim"))]
    {
        false
    }
}

/// Turns the missing-clock-gate bug on or off for this thread.
#[cfg(feature = "sim")]
pub fn set_no_clock_gate(on: bool) {
    NO_CLOCK_GATE.with(|c| c.set(on));
}

/// Whether a "linearizable" client read skips the read index and serves whatever this node
/// has applied (a stale read passed off as linearizable).
#[inline]
pub fn serve_stale_reads() -> bool {
    #[cfg(feature = "sim")]
    {
        STALE_READS.with(|c| c.get())
    }
    #[cfg(not(feature = "sim"))]
    {
        false
    }
}

/// Turns the stale-read bug on or off for this thread.
#[cfg(feature = "sim")]
pub fn set_serve_stale_reads(on: bool) {
    STALE_READS.with(|c| c.set(on));
}

/// Arms the skipped-entry bug: the state machine announcing on `events` does not apply the
/// first deposit at or after `from_index` (it still counts the entry as applied), once per
/// thread. `None` disarms it and forgets that it fired.
#[cfg(feature = "sim")]
pub fn set_skip_entry(target: Option<(broadcast::Sender<Arc<AppliedEvent>>, u64)>) {
    if target.is_none() {
        SKIPPED.with(|c| c.set(false));
    }
    SKIP_ENTRY.with(|c| *c.borrow_mut() = target);
}

/// Whether the skipped-entry bug has fired on this thread.
#[cfg(feature = "sim")]
pub fn entry_skipped() -> bool {
    SKIPPED.with(|c| c.get())
}

/// Whether the replica announcing on `events` must skip the entry at `index` (and, if so, the
/// bug has now fired and is disarmed).
#[inline]
pub(crate) fn skip_entry(events: &broadcast::Sender<Arc<AppliedEvent>>, index: u64, command: &Command) -> bool {
    #[cfg(feature = "sim")]
    {
        let hit = SKIP_ENTRY.with(|c| {
            c.borrow().as_ref().is_some_and(|(target, from)| {
                target.same_channel(events) && index >= *from && matches!(command, Command::Deposit { .. })
            })
        });
        if hit {
            SKIP_ENTRY.with(|c| *c.borrow_mut() = None);
            SKIPPED.with(|c| c.set(true));
        }
        hit
    }
    #[cfg(not(feature = "sim"))]
    {
        let _ = (events, index, command);
        false
    }
}
