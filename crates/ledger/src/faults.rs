//! Deliberate bugs for the simulator's teeth tests: each switch breaks one rule so that a
//! test can prove the checkers notice. Without the `fault-injection` feature every switch is
//! a constant `false` and compiles away.

#[cfg(feature = "fault-injection")]
thread_local! {
    static SKIP_FUNDS_CHECK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether bet placement skips the funds check (the Betfair 2011 bug). It also lifts
/// `State::post`'s assertion that no player balance goes negative: the simulator's checkers,
/// not the ledger's own last line of defence, must be the ones that notice.
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

/// Declares one more switch like the one above: a thread-local flag with a getter that is a
/// constant `false` without the feature, and a setter that exists only with it.
macro_rules! switch {
    ($(#[$doc:meta])* $cell:ident, $get:ident, $set:ident) => {
        #[cfg(feature = "fault-injection")]
        thread_local! {
            static $cell: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
        }

        $(#[$doc])*
        #[inline]
        pub fn $get() -> bool {
            #[cfg(feature = "fault-injection")]
            {
                $cell.with(|c| c.get())
            }
            #[cfg(not(feature = "fault-injection"))]
            {
                false
            }
        }

        /// Turns this bug on or off for this thread (simulations run one per thread).
        #[cfg(feature = "fault-injection")]
        pub fn $set(on: bool) {
            $cell.with(|c| c.set(on));
        }
    };
}

switch!(
    /// Whether settlement posts a winning bet's return to the wallet twice (the bet records it
    /// once, so the ledger's own bookkeeping still balances).
    PAY_WINNER_TWICE,
    pay_winner_twice,
    set_pay_winner_twice
);

switch!(
    /// Whether bet placement takes bets on a market that is closed or already settled
    /// (past-posting).
    ACCEPT_BETS_AFTER_CLOSE,
    accept_bets_after_close,
    set_accept_bets_after_close
);

switch!(
    /// Whether the ledger forgets the idempotency records of account commands (deposits,
    /// withdrawals, bets, cash-outs), so that a retry of one that took effect applies again.
    FORGET_IDEMPOTENCY_RECORDS,
    forget_idempotency_records,
    set_forget_idempotency_records
);
