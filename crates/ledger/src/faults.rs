//! Deliberate bugs for the simulator's teeth tests: each switch breaks one rule so that a
//! test can prove the checkers notice. Without the `fault-injection` feature every switch is
//! a constant `false` and compiles away.

#[cfg(feature = "fault-injection")]
thread_local! {
    static SKIP_FUNDS_CHECK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether bet placement skips the funds check (the Betfair 2011 bug).
#[inline]
pub fn skip_funds_check() -> bool {
    #[cfg(feature = "fault-injection")]
    {
        SKIP_FUNDS_CHECK.with(|c| c.get())
    }
    #[cfg(not(feature = "fault-injection"))]
    {
        false
    }
}

/// Turns the funds-check bug on or off for this thread (simulations run one per thread).
#[cfg(feature = "fault-injection")]
pub fn set_skip_funds_check(on: bool) {
    SKIP_FUNDS_CHECK.with(|c| c.set(on));
}
