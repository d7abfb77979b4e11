//! Request and response bodies.
//!
//! Request bodies refuse unknown fields (a typo such as `stake_minr` must not silently place a
//! bet with a default). Names end in their unit: `_minor` for money, `_ms` for instants and
//! durations in milliseconds.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Open an account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenAccountRequest {
    /// Id chosen by the caller.
    pub account_id: u64,
    /// ISO 4217 code, e.g. "GBP".
    #[schema(pattern = r"^[A-Z]{3}$", example = "GBP")]
    pub currency: String,
}

/// An account's balances.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AccountBody {
    /// Account id.
    pub account_id: u64,
    /// Currency.
    pub currency: String,
    /// Available balance.
    pub balance_minor: i64,
    /// Stakes held on open and pending bets.
    pub exposure_minor: i64,
    /// Owed after a resettlement (zero or negative).
    pub debt_minor: i64,
    /// End of a self-exclusion or time-out, if any.
    pub excluded_until_ms: Option<u64>,
    /// `self_exclusion` or `time_out`, with `excluded_until_ms`.
    pub exclusion: Option<String>,
    /// Deposit and loss limits set on the account.
    pub limits: Vec<LimitBody>,
}

/// The books of every currency: money held by players against the house and the clearing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BookBalancesBody {
    /// The applied log index these figures are at.
    pub applied_index: u64,
    /// One entry per currency.
    pub currencies: Vec<CurrencyBalancesBody>,
}

/// One currency's books, in minor units. `total_minor` is their sum: 0 while money is conserved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CurrencyBalancesBody {
    /// ISO 4217 code.
    #[schema(pattern = r"^[A-Z]{3}$", example = "GBP")]
    pub currency: String,
    /// Every player's available balance, summed.
    pub wallets_minor: i64,
    /// Stakes held on open and pending bets, summed.
    pub reserved_minor: i64,
    /// Debts after resettlements, summed (zero or negative).
    pub debt_minor: i64,
    /// The house's result: stakes lost by players minus winnings paid.
    pub house_book_minor: i64,
    /// Deposits minus withdrawals, as the counter-entry of the wallets (zero or negative).
    pub clearing_minor: i64,
    /// Rounding kept (positive) or given away, in millionths of a minor unit: a memorandum.
    pub rounding_micro: i64,
    /// The sum of the five books above: 0 while money is conserved.
    pub total_minor: i64,
}

/// An event and its markets.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EventBody {
    /// Event id.
    pub event_id: u64,
    /// Name.
    pub name: String,
    /// Sport.
    pub sport: String,
    /// Competition.
    pub competition: String,
    /// Scheduled start (UTC ms).
    pub starts_at_ms: u64,
    /// Its markets' ids, in creation order.
    pub market_ids: Vec<u64>,
}

/// The book's settings (`SetConfig`): read by operators and auditors, set by operators.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BookConfigBody {
    /// How returns are rounded to the minor unit: `down` (truncate: the UK bookmaker norm) or
    /// `half_up` (Betfair, Pinnacle).
    #[schema(pattern = r"^(down|half_up)$", example = "down")]
    pub rounding: String,
    /// The least margin a cash-out quote keeps, basis points of fair value (0 to 5000).
    #[schema(maximum = 5000)]
    pub cash_out_margin_bps: u32,
    /// How long a limit raise or removal waits before it applies (at most 30 days).
    #[schema(maximum = 2_592_000_000_u64)]
    pub limit_cooling_off_ms: u64,
    /// How long an idempotency key is remembered (1 to 400 days).
    #[schema(minimum = 86_400_000_u64, maximum = 34_560_000_000_u64)]
    pub idempotency_ttl_ms: u64,
    /// The most one log entry may move the book's clock forward (10 s to 1 day).
    #[schema(minimum = 10_000_u64, maximum = 86_400_000_u64)]
    pub clock_step_max_ms: u64,
}

/// An account's stake factor: a trader's limit on what one player may stake.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StakeFactorRequest {
    /// Thousandths of the market's stake limits this player may stake (1 to 10000; 1000 = as
    /// anyone, 250 = a quarter).
    #[schema(minimum = 1, maximum = 10000)]
    pub factor_permille: u32,
}

/// A deposit or loss limit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LimitBody {
    /// `deposit` or `loss`.
    pub kind: String,
    /// `day`, `week` or `month`.
    pub window: String,
    /// In force now; null: none.
    pub amount_minor: Option<i64>,
    /// A raise or removal waiting out the cooling-off period, if any.
    pub pending: Option<PendingLimitBody>,
}

/// A limit change that takes effect later (raises and removals wait; cuts apply at once).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PendingLimitBody {
    /// The new limit; null: removed.
    pub amount_minor: Option<i64>,
    /// When it takes effect (UTC ms).
    pub effective_at_ms: u64,
}

/// A deposit or withdrawal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AmountRequest {
    /// Amount in minor units, positive.
    #[schema(minimum = 1, maximum = 9_223_372_036_854_775_807_i64)]
    pub amount_minor: i64,
}

/// A balance after a deposit or withdrawal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BalanceBody {
    /// Account id.
    pub account_id: u64,
    /// Available balance afterwards.
    pub balance_minor: i64,
    /// The Raft log index of this request's entry: read-your-writes from any node by waiting
    /// until it has applied this index. (A retry with the same key is an entry of its own; its
    /// other fields are the first attempt's answer.)
    pub log_index: u64,
}

/// Set a responsible-gambling limit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitRequest {
    /// "deposit" or "loss".
    #[schema(pattern = r"^(deposit|loss)$", example = "deposit")]
    pub kind: String,
    /// "day", "week" or "month".
    #[schema(pattern = r"^(day|week|month)$", example = "week")]
    pub window: String,
    /// The limit; absent or null removes it (after the cooling-off period).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 9_223_372_036_854_775_807_i64)]
    pub amount_minor: Option<i64>,
}

/// Self-exclusion or time-out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExclusionRequest {
    /// "self_exclusion" (182 days or more) or "time_out" (1 to 42 days).
    #[schema(pattern = r"^(self_exclusion|time_out)$", example = "time_out")]
    pub kind: String,
    /// Length in days.
    #[schema(minimum = 1, maximum = 3650)]
    pub duration_days: u32,
}

/// Create an event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEventRequest {
    /// Id chosen by the caller.
    pub event_id: u64,
    /// e.g. "Arsenal v Spurs".
    #[schema(min_length = 1, max_length = 200, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$")]
    pub name: String,
    /// e.g. "football".
    #[schema(min_length = 1, max_length = 200, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$")]
    pub sport: String,
    /// e.g. "Premier League".
    #[schema(min_length = 1, max_length = 200, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$")]
    pub competition: String,
    /// Scheduled start, UTC ms.
    pub starts_at_ms: u64,
}

/// A selection of a new market.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSelectionBody {
    /// Id chosen by the caller, unique in the book.
    pub selection_id: u64,
    /// Name.
    #[schema(min_length = 1, max_length = 200, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$")]
    pub name: String,
    /// Opening price: "5/2", "3.5" or "+250".
    #[schema(
        pattern = r"^(evens|evs|[0-9]{1,6}/[1-9][0-9]{0,5}|[1-9][0-9]{0,4}(\.[0-9]{1,4})?|[+-][1-9][0-9]{2,5})$",
        example = "5/2"
    )]
    pub odds: String,
}

/// Each-way terms.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EachWayBody {
    /// Fraction of the odds paid for a place, e.g. "1/4".
    #[schema(pattern = r"^[1-9][0-9]{0,2}/[1-9][0-9]{0,2}$", example = "1/4")]
    pub fraction: String,
    /// Places paid.
    #[schema(minimum = 1, maximum = 10)]
    pub places: u32,
}

/// Market limits and terms.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MarketRulesBody {
    /// Smallest total stake.
    #[schema(minimum = 1, maximum = 9_223_372_036_854_775_807_i64)]
    pub stake_min_minor: i64,
    /// Largest total stake.
    #[schema(minimum = 1, maximum = 9_223_372_036_854_775_807_i64)]
    pub stake_max_minor: i64,
    /// Largest return of one bet.
    #[schema(minimum = 1, maximum = 9_223_372_036_854_775_807_i64)]
    pub payout_max_minor: i64,
    /// Largest book loss on one selection.
    #[schema(minimum = 0, maximum = 9_223_372_036_854_775_807_i64)]
    pub liability_max_minor: i64,
    /// In-play delay; 0 for none.
    #[serde(default)]
    #[schema(maximum = 60_000_u64)]
    pub bet_delay_ms: u64,
    /// No bet accepted from this instant on.
    #[serde(default)]
    pub closes_at_ms: Option<u64>,
    /// Each-way terms, if offered.
    #[serde(default)]
    pub each_way: Option<EachWayBody>,
}

/// Create a market.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateMarketRequest {
    /// Id chosen by the caller.
    pub market_id: u64,
    /// Event it belongs to.
    pub event_id: u64,
    /// Name.
    #[schema(min_length = 1, max_length = 200, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$")]
    pub name: String,
    /// Currency of stakes and limits.
    #[schema(pattern = r"^[A-Z]{3}$", example = "GBP")]
    pub currency: String,
    /// Selections with opening prices.
    #[schema(min_items = 1, max_items = 200)]
    pub selections: Vec<NewSelectionBody>,
    /// Limits and terms.
    pub rules: MarketRulesBody,
}

/// Odds in every form: exact and for display.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OddsBody {
    /// Numerator of the exact decimal price.
    pub num: u32,
    /// Denominator of the exact decimal price.
    pub den: u32,
    /// Decimal to 2 places, for display.
    pub decimal: String,
    /// Fractional, e.g. "5/2".
    pub fractional: String,
    /// American, e.g. "+250".
    pub american: String,
}

/// A selection as it stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SelectionBody {
    /// Selection id.
    pub selection_id: u64,
    /// Name.
    pub name: String,
    /// Current price.
    pub odds: OddsBody,
    /// Bumped on every price change; cash-out quotes name it.
    pub price_version: u64,
    /// Non-runner.
    pub withdrawn: bool,
    /// The book's net loss if it wins.
    pub liability_minor: i64,
    /// A non-runner's Rule 4 deduction, pence in the pound (absent unless withdrawn).
    pub rule4_deduction_pence: Option<u32>,
    /// Its result once the market is settled, in the form settlement takes (absent: it lost,
    /// or the market is not settled).
    pub result: Option<SelectionResultBody>,
}

/// A market as it stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MarketBody {
    /// Market id.
    pub market_id: u64,
    /// Event id.
    pub event_id: u64,
    /// Name.
    pub name: String,
    /// Currency.
    pub currency: String,
    /// open, suspended, closed, settled, resettled, voided.
    pub status: String,
    /// 0 before settlement, 1 after, more after corrections.
    pub result_version: u32,
    /// Limits and terms: stake, payout and liability limits, in-play delay, `closes_at_ms`,
    /// each-way terms.
    pub rules: MarketRulesBody,
    /// Selections.
    pub selections: Vec<SelectionBody>,
}

/// Set a price.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PriceRequest {
    /// New price.
    #[schema(
        pattern = r"^(evens|evs|[0-9]{1,6}/[1-9][0-9]{0,5}|[1-9][0-9]{0,4}(\.[0-9]{1,4})?|[+-][1-9][0-9]{2,5})$",
        example = "11/4"
    )]
    pub odds: String,
}

/// A reason for a suspension, resettlement or void.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ReasonRequest {
    /// Why.
    #[serde(default)]
    #[schema(max_length = 200, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$")]
    pub reason: String,
}

/// Withdraw a runner (Rule 4).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WithdrawSelectionRequest {
    /// The non-runner.
    pub selection_id: u64,
    /// Deduction in pence in the pound, 0 to 90.
    #[schema(maximum = 90)]
    pub deduction_pence: u32,
}

/// One selection's result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SelectionResultBody {
    /// Selection.
    pub selection_id: u64,
    /// "win", "lose", "void", "half_win", "half_lose", or "dead_heat:P/T" (P places shared by T runners).
    #[schema(
        pattern = r"^(win|lose|void|half_win|half_lose|dead_heat:[1-9][0-9]{0,2}/[1-9][0-9]{0,2})$",
        example = "win"
    )]
    pub win: String,
    /// Place result for each-way bets, same forms; absent = placed if it won.
    #[serde(default)]
    #[schema(pattern = r"^(win|lose|void|half_win|half_lose|dead_heat:[1-9][0-9]{0,2}/[1-9][0-9]{0,2})$")]
    pub place: Option<String>,
}

/// Settle or resettle a market.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettleRequest {
    /// Results of selections that did not simply lose.
    pub results: Vec<SelectionResultBody>,
    /// Why (required in spirit for a resettlement).
    #[serde(default)]
    #[schema(max_length = 200, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$")]
    pub reason: String,
}

/// A settlement's summary.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SettledBody {
    /// Market.
    pub market_id: u64,
    /// Result version afterwards.
    pub result_version: u32,
    /// Bets settled or changed.
    pub bets_settled: u32,
    /// The Raft log index of this request's entry: read-your-writes from any node by waiting
    /// until it has applied this index. (A retry with the same key is an entry of its own; its
    /// other fields are the first attempt's answer.)
    pub log_index: u64,
}

/// One leg of a bet request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LegBody {
    /// Market.
    pub market_id: u64,
    /// Selection.
    pub selection_id: u64,
    /// The price the player saw.
    #[schema(
        pattern = r"^(evens|evs|[0-9]{1,6}/[1-9][0-9]{0,5}|[1-9][0-9]{0,4}(\.[0-9]{1,4})?|[+-][1-9][0-9]{2,5})$",
        example = "2/1"
    )]
    pub odds: String,
}

/// Place a bet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlaceBetRequest {
    /// Who bets.
    pub account_id: u64,
    /// "single", "accumulator", "k_of_n", "trixie", "patent", "yankee", "lucky15".
    #[serde(rename = "type")]
    #[schema(pattern = r"^(single|accumulator|k_of_n|trixie|patent|yankee|lucky15)$", example = "single")]
    pub bet_type: String,
    /// For "k_of_n": legs per line.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 20)]
    pub k: Option<u32>,
    /// Legs.
    #[schema(min_items = 1, max_items = 20)]
    pub legs: Vec<LegBody>,
    /// Stake per line (per part if each-way).
    #[schema(minimum = 1, maximum = 9_223_372_036_854_775_807_i64)]
    pub stake_per_line_minor: i64,
    /// Each-way.
    #[serde(default)]
    pub each_way: bool,
    /// "exact", "higher" or "any".
    #[serde(default = "default_policy")]
    #[schema(pattern = r"^(exact|higher|any)$", example = "exact")]
    pub odds_policy: String,
}

fn default_policy() -> String {
    "exact".into()
}

/// Place up to 200 bets in one request, as a gateway collects them: each with its own
/// idempotency key (its client's), each answered on its own; one log entry for all.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlaceBetsRequest {
    /// The bets, applied in this order (a later bet sees the balance an earlier one left).
    #[schema(min_items = 1, max_items = 200)]
    pub bets: Vec<BatchBetBody>,
}

/// One bet of a batch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchBetBody {
    /// Makes this bet's retry safe, as the `Idempotency-Key` header does for `POST /v1/bets`:
    /// the same key and bet answer with the first answer (`replayed: true`). Unique within the
    /// account, not only within the batch.
    #[schema(pattern = r"^[!-~]{1,64}$", min_length = 1, max_length = 64)]
    pub idempotency_key: String,
    /// The bet, as `POST /v1/bets` takes it.
    pub bet: PlaceBetRequest,
}

/// The answer to a batch: one result per bet, in the request's order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PlacedBatchBody {
    /// One per bet, in order.
    pub results: Vec<BatchResultBody>,
    /// Log index of the batch: a read at or after it sees every bet it placed.
    pub log_index: u64,
}

/// One bet's answer in a batch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BatchResultBody {
    /// The bet's idempotency key, as sent.
    pub idempotency_key: String,
    /// The status `POST /v1/bets` would have answered: 201 placed, or the refusal's 4xx.
    pub status: u16,
    /// The answer is the first answer to an earlier attempt with this key and bet.
    pub replayed: bool,
    /// The placed bet, when `status` is 201.
    pub placed: Option<PlacedBody>,
    /// The refusal, otherwise.
    pub error: Option<crate::error::ErrorDetail>,
}

/// A bet as it stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BetBody {
    /// Bet id.
    pub bet_id: u64,
    /// Owner.
    pub account_id: u64,
    /// pending, open, settled, cashed_out, rejected.
    pub status: String,
    /// The refusal code of a delayed bet that was rejected.
    pub rejection: Option<String>,
    /// Bet type.
    #[serde(rename = "type")]
    pub bet_type: String,
    /// Each-way.
    pub each_way: bool,
    /// Legs with accepted odds.
    pub legs: Vec<BetLegBody>,
    /// Total stake.
    pub stake_minor: i64,
    /// Lines struck.
    pub lines: u32,
    /// Paid by settlement or cash-out so far.
    pub paid_minor: i64,
    /// Placement (or acceptance) time, UTC ms.
    pub placed_at_ms: u64,
}

/// A leg of a bet, as struck.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BetLegBody {
    /// Market.
    pub market_id: u64,
    /// Selection.
    pub selection_id: u64,
    /// Accepted odds.
    pub odds: OddsBody,
}

/// The answer to a placement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PlacedBody {
    /// Bet id.
    pub bet_id: u64,
    /// "accepted" or "pending" (in-play delay).
    pub status: String,
    /// Accepted odds per leg (empty while pending).
    pub odds: Vec<OddsBody>,
    /// Total stake taken.
    pub stake_minor: i64,
    /// Wallet balance afterwards.
    pub balance_minor: i64,
    /// Log index of the acceptance: a read at or after it sees the bet.
    pub log_index: u64,
}

/// Cash out a bet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CashOutRequest {
    /// Owner.
    pub account_id: u64,
    /// Value offered.
    pub value_minor: i64,
    /// The price version of each leg's selection the quote used.
    pub quoted_versions: Vec<QuotedVersion>,
}

/// A selection's price version in a quote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuotedVersion {
    /// Selection.
    pub selection_id: u64,
    /// Its price version.
    pub price_version: u64,
}

/// What a cash-out of a bet is accepted for now: send `value_minor` and `quoted_versions` back
/// in a `CashOutRequest` (a price change in between makes it `cash_out_quote_stale`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CashOutQuoteBody {
    /// Bet id.
    pub bet_id: u64,
    /// The owner's account (the `account_id` of the request).
    pub account_id: u64,
    /// The most the book pays now: fair value at current prices less the cash-out margin.
    pub value_minor: i64,
    /// The price version of each leg's selection this value rests on.
    pub quoted_versions: Vec<QuotedVersion>,
}

/// The answer to a cash-out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CashedOutBody {
    /// Bet id.
    pub bet_id: u64,
    /// True if it waits for the in-play delay.
    pub pending: bool,
    /// Wallet balance afterwards.
    pub balance_minor: i64,
    /// The Raft log index of this request's entry: read-your-writes from any node by waiting
    /// until it has applied this index. (A retry with the same key is an entry of its own; its
    /// other fields are the first attempt's answer.)
    pub log_index: u64,
}

/// A generic success with the log index of the change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AckBody {
    /// Log index of the applied command.
    pub log_index: u64,
}

/// The node's view of the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ClusterBody {
    /// This node.
    pub node_id: u64,
    /// Cluster name.
    pub cluster_id: String,
    /// leader, follower, candidate, learner, shutdown.
    pub role: String,
    /// Current term.
    pub term: u64,
    /// Known leader.
    pub leader_id: Option<u64>,
    /// Last log index.
    pub last_log_index: u64,
    /// Commit index known here.
    pub commit_index: u64,
    /// Applied index.
    pub applied_index: u64,
    /// Last snapshot index.
    pub snapshot_index: u64,
    /// Members; matched index and lag are known on the leader only.
    pub members: Vec<MemberBody>,
    /// Whether this node's clock agrees with a majority of the voters' (cluster time); a
    /// leader whose clock does not stamps no command.
    pub clock_synchronized: bool,
    /// The other voters' clocks relative to this node's, from its latest samples.
    pub clock_offsets: Vec<ClockOffsetBody>,
    /// The book's clock: the latest leader timestamp applied here (UTC ms).
    pub book_clock_ms: u64,
    /// Set while this node repairs damaged storage: it discarded damaged log entries and
    /// does not vote until its log holds every entry up to this index again, fetched from
    /// the leader. Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repairing_up_to: Option<u64>,
    /// The newest log-entry format every member reads (leader only): a command that needs a
    /// newer one is refused (409 `format_not_active`) until every member is upgraded.
    #[serde(default)]
    pub entry_format: Option<u32>,
}

/// One voter's clock relative to the answering node's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ClockOffsetBody {
    /// Node id.
    pub node_id: u64,
    /// Its clock minus this node's, ms (positive: ahead).
    pub offset_ms: i64,
    /// The sample's uncertainty (half its round trip), ms.
    pub error_ms: i64,
}

/// A member.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MemberBody {
    /// Node id.
    pub node_id: u64,
    /// Peer address.
    pub peer_addr: String,
    /// Voter or learner.
    pub voter: bool,
    /// Matched log index (leader only).
    pub matched_index: Option<u64>,
    /// Entries behind the leader (leader only).
    pub lag: Option<u64>,
    /// Milliseconds since the leader last heard from it (leader only; absent before its first
    /// answer in this term).
    #[serde(default)]
    pub ack_age_ms: Option<u64>,
    /// The newest log-entry format it reads, as it announces it to the leader (leader only,
    /// and for the answering node itself).
    #[serde(default)]
    pub entry_format: Option<u32>,
    /// Its build version, announced likewise: during a rolling upgrade, which members run
    /// the new build.
    #[serde(default)]
    pub version: Option<String>,
    /// When its process started (UTC ms), announced likewise: a restarted or replaced node
    /// announces a new one.
    #[serde(default)]
    pub started_at_ms: Option<u64>,
}

/// Add a member.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddMemberRequest {
    /// New node's id.
    #[schema(minimum = 1)]
    pub node_id: u64,
    /// Its peer address.
    #[schema(
        max_length = 261,
        pattern = r"^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\]):([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])$",
        example = "10.0.0.4:7101"
    )]
    pub peer_addr: String,
}

/// Transfer leadership.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferLeaderRequest {
    /// Node to lead.
    #[schema(minimum = 1)]
    pub node_id: u64,
}

/// State hash at an applied index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StateHashBody {
    /// Applied index the hash was taken at.
    pub applied_index: u64,
    /// SHA-256 of the encoded state, hex.
    pub state_hash: String,
    /// The same leaving out the idempotency records, hex: what a refused command leaves
    /// unchanged (its key's record of the refusal is kept).
    pub book_hash: String,
    /// Bets held.
    pub bets: u64,
    /// Accounts held.
    pub accounts: u64,
}

/// An audit record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditRecordBody {
    /// Sequence number.
    pub seq: u64,
    /// Log index.
    pub log_index: u64,
    /// UTC ms.
    pub at_ms: u64,
    /// Acting identity.
    pub actor: String,
    /// What happened: an object whose `type` names the kind of event, with that kind's fields
    /// (docs/api.md lists them), e.g. `{"type": "event_created", "event_id": 10}`,
    /// `{"type": "key_revoked", "principal": "ann", "key_id": "00000000000000ff"}`.
    #[schema(value_type = Object)]
    pub event: serde_json::Value,
    /// Hash of the previous record, hex.
    pub prev_hash: String,
    /// This record's hash, hex: SHA-256 of `prev_hash` and the record's other fields.
    pub hash: String,
    /// The whole record in the ledger's binary encoding (postcard), hex: `paddock audit
    /// verify` decodes it, checks it says what the fields above say, and recomputes the chain.
    pub record: String,
}

/// Create a principal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePrincipalRequest {
    /// 1-64 of a-z, 0-9, '.', '_', '@', '-'.
    #[schema(pattern = r"^[a-z0-9._@-]{1,64}$", example = "ann@example.com")]
    pub name: String,
    /// "bettor", "trader", "operator", "auditor" or "service".
    #[schema(pattern = r"^(bettor|trader|operator|auditor|service)$", example = "bettor")]
    pub role: String,
    /// For a bettor: the accounts it owns.
    #[serde(default)]
    #[schema(max_items = 64)]
    pub account_ids: Vec<u64>,
}

/// Give a bettor one more account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BindAccountRequest {
    /// An account no principal owns yet.
    pub account_id: u64,
}

/// Issue an API key. Either leave `key_id` and `key_sha256` out and the node makes the key
/// and shows it once in the answer, or make the key yourself (`paddock keys issue` does) and
/// send only its id and digest, so that the secret never leaves your machine and a retry
/// with the same Idempotency-Key is safe.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueKeyRequest {
    /// Lifetime in seconds. People's keys (every role but service) are sessions: at most the
    /// node's `interactive_key_ttl_max_s`, which is also their default. Service keys live
    /// until revoked unless this is given.
    #[serde(default)]
    #[schema(minimum = 1)]
    pub ttl_s: Option<u64>,
    /// 16 hex digits, with `key_sha256`.
    #[serde(default)]
    #[schema(pattern = r"^[0-9a-fA-F]{16}$")]
    pub key_id: Option<String>,
    /// 64 hex digits: SHA-256 of "paddock api key v1\0", the id as 8 big-endian bytes and the
    /// 32-byte secret.
    #[serde(default)]
    #[schema(pattern = r"^[0-9a-fA-F]{64}$")]
    pub key_sha256: Option<String>,
}

/// A principal and its keys (never their secrets or digests).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PrincipalBody {
    /// Name.
    pub name: String,
    /// Role.
    pub role: String,
    /// Accounts it owns (bettors).
    pub account_ids: Vec<u64>,
    /// When it was created (UTC ms).
    pub created_at_ms: u64,
    /// Who created it.
    pub created_by: String,
    /// Its keys.
    pub keys: Vec<KeyBody>,
}

/// Open an incident by hand: a failure no node detects by itself (a site lost power, a
/// provider's outage). Nodes open their own for what they see about themselves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenIncidentRequest {
    /// What happened, in words (1-2000 characters, no control characters).
    #[schema(
        min_length = 1,
        max_length = 2000,
        example = "data centre A lost power",
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub cause: String,
    /// The node it touched; absent or 0: the cluster, or not one node.
    #[serde(default)]
    pub node_id: u64,
}

/// Close an incident.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CloseIncidentRequest {
    /// How it ended, in words (1-2000 characters, no control characters).
    #[schema(
        min_length = 1,
        max_length = 2000,
        example = "power restored; the node rejoined and caught up",
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub resolution: String,
}

/// An incident record (R3): what failed, when it began and ended, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct IncidentBody {
    /// Its number (1, 2, ...).
    pub incident_id: u64,
    /// `self_check_failed` (a node's binary or configuration is not the expected one),
    /// `reported` (opened by an operator), or one a node records by itself: `leader_changed`,
    /// `node_unreachable`, `load_shedding`, `clock_unsynchronized`, `voter_replaced`.
    pub kind: String,
    /// The node it touched (0: not one node).
    pub node_id: u64,
    /// When it began (UTC ms, leader time).
    pub opened_at_ms: u64,
    /// Who opened it: `node-<id>` for a node, else the operator.
    pub opened_by: String,
    /// What caused it.
    pub cause: String,
    /// When it ended (UTC ms), if it has.
    pub closed_at_ms: Option<u64>,
    /// Who closed it.
    pub closed_by: Option<String>,
    /// How it ended.
    pub resolution: Option<String>,
}

/// An incident opened (or found already open).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct IncidentOpenedBody {
    /// Its number.
    pub incident_id: u64,
    /// True if an incident of this kind on this node was already open: it stands for this
    /// one too, and nothing changed.
    pub already_open: bool,
    /// The Raft log index of the command.
    pub log_index: u64,
}

/// An API key's public facts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct KeyBody {
    /// 16 hex digits.
    pub key_id: String,
    /// When issued (UTC ms).
    pub created_at_ms: u64,
    /// When it stops working (UTC ms), if ever.
    pub expires_at_ms: Option<u64>,
    /// When it was revoked (UTC ms), if it was.
    pub revoked_at_ms: Option<u64>,
}

/// A newly issued key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct IssuedKeyBody {
    /// 16 hex digits.
    pub key_id: String,
    /// The key to send as `Authorization: Bearer <key>`: shown this once, stored nowhere.
    /// Absent when you sent the digest yourself, or on a retry.
    pub key: Option<String>,
    /// When it stops working (UTC ms), if ever.
    pub expires_at_ms: Option<u64>,
    /// Log index of the change.
    pub log_index: u64,
}

/// Who the caller is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WhoAmIBody {
    /// Principal name.
    pub principal: String,
    /// Role.
    pub role: String,
    /// The key used.
    pub key_id: String,
    /// When that key expires (UTC ms), if ever.
    pub expires_at_ms: Option<u64>,
    /// Accounts it owns (bettors).
    pub account_ids: Vec<u64>,
}

/// A self-check (R8): digests of the running binary and the effective configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SelfCheckBody {
    /// SHA-256 of the running binary (`/proc/self/exe`), hex.
    pub binary_sha256: String,
    /// SHA-256 of the binary when this process started: differs from `binary_sha256` if the
    /// file was replaced or changed since.
    pub binary_sha256_at_start: String,
    /// SHA-256 of the effective configuration (the node's settings as canonical JSON, then the
    /// static keys file's bytes), hex.
    pub config_sha256: String,
    /// The configured `expected_binary_sha256`, if any.
    pub expected_binary_sha256: Option<String>,
    /// The configured `expected_config_sha256`, if any.
    pub expected_config_sha256: Option<String>,
    /// No expected digest differs from the computed one, and the binary has not changed since
    /// start.
    pub ok: bool,
    /// What does not match, in words (empty when `ok`).
    pub mismatches: Vec<String>,
    /// When this check ran (UTC ms).
    pub checked_at_ms: u64,
}
