//! Result codes: every way a command can be refused, as one exhaustive enum.
//!
//! In the manner of TigerBeetle's `CreateTransferResult`: a client (and the HTTP layer) can
//! match on the code, and each has a stable snake_case name that never changes once shipped.
//! A refused command changes nothing in the state.

use serde::{Deserialize, Serialize};

macro_rules! result_codes {
    ($($(#[$doc:meta])* $variant:ident => $name:literal,)*) => {
        /// Why a command was refused.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum ResultCode {
            $($(#[$doc])* $variant,)*
        }

        impl ResultCode {
            /// Every code, in declaration order.
            pub const ALL: &'static [ResultCode] = &[$(ResultCode::$variant,)*];

            /// The stable wire name, e.g. `insufficient_funds`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ResultCode::$variant => $name,)*
                }
            }
        }
    };
}

result_codes! {
    /// An account with this id already exists.
    AccountExists => "account_exists",
    /// No account has this id.
    AccountNotFound => "account_not_found",
    /// The currency code is not three upper-case letters.
    CurrencyInvalid => "currency_invalid",
    /// The account's currency differs from the market's.
    CurrencyMismatch => "currency_mismatch",
    /// An amount or stake must be greater than zero.
    AmountMustBePositive => "amount_must_be_positive",
    /// An amount would overflow a balance or a total.
    AmountOverflow => "amount_overflow",
    /// The wallet does not hold enough for the stake or withdrawal.
    InsufficientFunds => "insufficient_funds",
    /// The idempotency key is empty, too long or not printable ASCII.
    IdempotencyKeyInvalid => "idempotency_key_invalid",
    /// The key was already used for a different command body.
    IdempotencyKeyReused => "idempotency_key_reused",
    /// A name, reason or actor is empty where required, too long or has control characters.
    TextInvalid => "text_invalid",
    /// An event with this id already exists.
    EventExists => "event_exists",
    /// No event has this id.
    EventNotFound => "event_not_found",
    /// A market with this id already exists.
    MarketExists => "market_exists",
    /// No market has this id.
    MarketNotFound => "market_not_found",
    /// No selection with this id in that market.
    SelectionNotFound => "selection_not_found",
    /// A selection id appears twice, or is already used in another market.
    SelectionExists => "selection_exists",
    /// A market needs between one and the maximum number of selections.
    SelectionCountInvalid => "selection_count_invalid",
    /// Market rules are inconsistent (minimum above maximum, a bad each-way fraction, ...).
    MarketRulesInvalid => "market_rules_invalid",
    /// The market is not open for bets.
    MarketNotOpen => "market_not_open",
    /// The market is suspended.
    MarketSuspended => "market_suspended",
    /// The market is closed (by command or because its close time has passed).
    MarketClosed => "market_closed",
    /// The market's state does not allow this transition.
    MarketStateInvalid => "market_state_invalid",
    /// The market was already settled; use resettle to correct a result.
    MarketAlreadySettled => "market_already_settled",
    /// The market has not been settled, so it cannot be resettled.
    MarketNotSettled => "market_not_settled",
    /// The market was voided.
    MarketVoided => "market_voided",
    /// The selection was withdrawn (a non-runner).
    SelectionWithdrawn => "selection_withdrawn",
    /// A Rule 4 deduction must be between 0 and 90 pence in the pound.
    DeductionInvalid => "deduction_invalid",
    /// Results name an unknown selection, name one twice, or are impossible.
    ResultsInvalid => "results_invalid",
    /// Odds outside 1.01 ..= 1001, or not reduced.
    OddsInvalid => "odds_invalid",
    /// The price moved and the odds policy does not accept the new one.
    OddsChanged => "odds_changed",
    /// The stake is below the market minimum.
    StakeBelowMinimum => "stake_below_minimum",
    /// The stake is above the market maximum (after the account's stake factor).
    StakeAboveMaximum => "stake_above_maximum",
    /// The bet could pay more than the market's maximum payout.
    MaxPayoutExceeded => "max_payout_exceeded",
    /// Accepting the bet would take the book's liability on a selection over its limit.
    LiabilityLimitExceeded => "liability_limit_exceeded",
    /// A bet needs at least one leg.
    LegsEmpty => "legs_empty",
    /// More legs than a bet may have.
    TooManyLegs => "too_many_legs",
    /// Two legs on the same event cannot be combined.
    LegsSameEvent => "legs_same_event",
    /// The bet type does not fit the legs (a Yankee needs four, k must not exceed n, ...).
    BetTypeInvalid => "bet_type_invalid",
    /// The market does not offer each-way terms.
    EachWayNotOffered => "each_way_not_offered",
    /// The account is self-excluded.
    SelfExcluded => "self_excluded",
    /// The account is in a time-out.
    TimedOut => "timed_out",
    /// The deposit would exceed a deposit limit.
    DepositLimitExceeded => "deposit_limit_exceeded",
    /// The stake could take losses over a loss limit.
    LossLimitReached => "loss_limit_reached",
    /// A limit, exclusion or time-out request is out of range.
    LimitInvalid => "limit_invalid",
    /// No bet has this id.
    BetNotFound => "bet_not_found",
    /// The bet is not open (pending, settled, cashed out or rejected).
    BetNotOpen => "bet_not_open",
    /// The bet belongs to another account.
    BetAccountMismatch => "bet_account_mismatch",
    /// The cash-out quote was made against prices that have since changed.
    CashOutQuoteStale => "cash_out_quote_stale",
    /// The cash-out value is above what current prices and the margin allow.
    CashOutValueTooHigh => "cash_out_value_too_high",
    /// Cash-out is not offered for this bet now (a leg is resolved or its market not open).
    CashOutUnavailable => "cash_out_unavailable",
    /// A configuration value is out of range.
    ConfigInvalid => "config_invalid",
    /// The command's timestamp is more than the configured maximum step ahead of the book's
    /// clock: one entry from a leader with a bad clock must not expire every idempotency key,
    /// end exclusions or pass every `closes_at`. Transient: the leader's `ResolvePending`
    /// ticks move the clock forward a step at a time; retry.
    ClockStepTooLarge => "clock_step_too_large",
    /// A principal name is not 1-64 of a-z, 0-9, '.', '_', '@', '-' (or the actor is invalid).
    PrincipalNameInvalid => "principal_name_invalid",
    /// A principal with this name already exists.
    PrincipalExists => "principal_exists",
    /// No principal has this name.
    PrincipalNotFound => "principal_not_found",
    /// Only bettors own accounts.
    AccountsOnlyForBettors => "accounts_only_for_bettors",
    /// The account already belongs to a principal (or is listed twice).
    AccountAlreadyBound => "account_already_bound",
    /// A principal may own at most 64 accounts.
    TooManyAccounts => "too_many_accounts",
    /// A key with this id already exists.
    KeyExists => "key_exists",
    /// No key has this id.
    KeyNotFound => "key_not_found",
    /// The key was already revoked.
    KeyRevoked => "key_revoked",
    /// A key's lifetime is out of range (zero, or over the cap for a person's key).
    KeyTtlInvalid => "key_ttl_invalid",
    /// A principal may hold at most 16 live keys; revoke one.
    TooManyKeys => "too_many_keys",
    /// No incident has this number.
    IncidentNotFound => "incident_not_found",
    /// The incident was already closed.
    IncidentClosed => "incident_closed",
    /// A batch of bets holds none, or more than `BETS_PER_BATCH_MAX`.
    BatchSizeInvalid => "batch_size_invalid",
}
