//! The betting ledger: wallets, markets, bets and settlement as a pure, deterministic state
//! machine. Every replica runs it over the same log and reaches the same state.
//!
//! # Layout
//! - [`ids`]: typed identifiers, currencies, timestamps.
//! - [`money`]: `Money` (i64 minor units), `Odds` (exact rationals), rounding.
//! - [`command`]: everything that can change the state.
//! - [`apply()`]: the one entry point; accounts, limits and catalogue handlers live beside it.
//! - `betting`: placement, in-play delays, cash-out.
//! - `settlement`: results, Rule 4, each-way, dead heats, resettlement, void.
//! - [`code`]: the exhaustive result codes; [`outcome`]: what a command answers.
//! - [`audit`]: the hash-chained audit trail.
//! - [`auth`]: principals, roles and API keys (digests only).
//! - [`snapshot`]: snapshot encoding and the state hash.
//! - [`archive`]: settled history leaving the hot state, and the archive segment format.
//! - `dense`: the chunked hash table of accounts, bets and idempotency records, and the chunked
//!   expiry queue; neither copies its items as it grows, and neither shows a hash order.
//!
//! # Architecture invariants
//! No I/O, no clock, no randomness: time arrives in [`ApplyCtx`]. No hash order reaches the
//! state: the hashed table, `dense::DenseMap`, shows only its keys' order. A refused command
//! changes nothing. A broken invariant panics: a replica that computed a wrong book must stop,
//! not serve it.

pub mod apply;
pub mod archive;
pub mod audit;
pub mod auth;
mod betting;
pub mod code;
pub mod command;
mod dense;
pub mod faults;
pub mod ids;
pub mod incident;
mod invariants;
pub mod money;
pub mod outcome;
mod settlement;
pub mod snapshot;
pub mod state;

pub use apply::{
    apply, apply_noting_replay, Applied, ApplyCtx, BET_DELAY_MS_MAX, MARKET_SELECTIONS_MAX, SELF_EXCLUSION_DAYS_MIN,
};
pub use auth::{Authenticated, KeyHash, KeyId, KeyText, KeyView, PrincipalView, Role};
pub use betting::{LEGS_MAX, LINES_MAX};
pub use code::ResultCode;
pub use command::*;
pub use ids::*;
pub use incident::{IncidentId, IncidentKind, IncidentView};
pub use money::{Money, Odds, OddsError, RoundingRule};
pub use outcome::{BatchItem, Done, Outcome};
pub use settlement::RULE4_DEDUCTION_MAX_PENCE;
pub use snapshot::{Sink, SnapshotError, SnapshotSummary, StateHash};
pub use state::{
    AccountLimitsView, AccountView, BetStatus, BetView, BookBalances, EventView, LimitView, MarketStatus, MarketView,
    SelectionView, State,
};
