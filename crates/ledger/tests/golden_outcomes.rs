//! Outcomes, result codes and book settings cannot drift: golden bytes of every `Outcome` and
//! `Done` variant and of `BookConfig` (`tests/fixtures/outcome/`, `tests/fixtures/book_config/`),
//! and every `ResultCode` pinned to its postcard tag and its wire name.
//!
//! Why it matters: outcomes are kept in the idempotency records of every snapshot (a retry
//! answers the stored outcome) and relayed between nodes (`ForwardReply::Written`); result
//! codes are in those outcomes, in rejected bets and, by name, in the HTTP API; the book's
//! configuration is in every snapshot and in `SetConfig` commands. See `tests/golden/mod.rs`.

use paddock_golden as golden;

use golden::{check_tags, postcard_decode, postcard_encode, postcard_tag, variant_names, variant_of, Format, Golden};
use paddock_ledger::{
    AccountId, BatchItem, BetId, BookConfig, Done, MarketId, Money, Odds, Outcome, ResultCode, RoundingRule,
    TimestampMs, DAY_MS,
};

const BUMP: &str = "SNAPSHOT_FORMAT_VERSION (crates/ledger/src/snapshot.rs: snapshots hold them) and the peer \
                    protocol version (proto package paddock.peer.v1: replies carry them)";

/// The snapshot format version in which today's encodings of outcomes and book settings
/// appeared (versions 3 and 4 only appended variants, the registry and the incidents, which left
/// these bytes alone).
const SINCE_SNAPSHOT_VERSION: u32 = 2;

/// Outcomes are stored in snapshots: their fixtures carry the snapshot format's version.
const OUTCOME: Format = Format { dir: "outcome", version: SINCE_SNAPSHOT_VERSION, bump: BUMP };

/// The book's settings are stored in snapshots and carried by `SetConfig` commands.
const BOOK_CONFIG: Format = Format {
    dir: "book_config",
    version: SINCE_SNAPSHOT_VERSION,
    bump: "SNAPSHOT_FORMAT_VERSION (crates/ledger/src/snapshot.rs) and the log record version (FORMAT_VERSION in \
           crates/storage/src/log.rs: SetConfig commands carry it)",
};

fn odds(num: u64, den: u64) -> Odds {
    Odds::new(num, den).expect("a price the book offers")
}

/// One outcome of every `Done` variant and a refusal, named by fixture file, in declaration order.
fn outcomes() -> Vec<(&'static str, Outcome)> {
    vec![
        ("done_ok", Outcome::Done(Done::Ok)),
        ("done_account_opened", Outcome::Done(Done::AccountOpened { account: AccountId(1001) })),
        ("done_transferred", Outcome::Done(Done::Transferred { account: AccountId(1001), balance: Money(17_450) })),
        (
            "done_bet_accepted",
            Outcome::Done(Done::BetAccepted {
                bet: BetId(42),
                odds: vec![odds(31, 10), odds(11, 2)],
                stake: Money(1_000),
                balance: Money(16_450),
            }),
        ),
        (
            "done_bet_pending",
            Outcome::Done(Done::BetPending { bet: BetId(43), stake: Money(200), balance: Money(16_250) }),
        ),
        ("done_cash_out", Outcome::Done(Done::CashOut { bet: BetId(42), pending: true, balance: Money(16_250) })),
        ("done_resolved", Outcome::Done(Done::Resolved { accepted: 3, rejected: 1 })),
        ("done_settled", Outcome::Done(Done::Settled { market: MarketId(501), result_version: 2, bets_settled: 118 })),
        (
            "done_key_issued",
            Outcome::Done(Done::KeyIssued {
                key: paddock_ledger::KeyId(0x0123_4567_89ab_cdef),
                expires_at: Some(TimestampMs(1_700_043_200_000)),
            }),
        ),
        (
            "done_incident_opened",
            Outcome::Done(Done::IncidentOpened { incident: paddock_ledger::IncidentId(7), already_open: false }),
        ),
        (
            "done_bets_placed",
            Outcome::Done(Done::BetsPlaced(vec![
                BatchItem {
                    outcome: Outcome::Done(Done::BetAccepted {
                        bet: BetId(44),
                        odds: vec![odds(31, 10)],
                        stake: Money(500),
                        balance: Money(15_750),
                    }),
                    replayed: false,
                },
                BatchItem { outcome: Outcome::Rejected(ResultCode::InsufficientFunds), replayed: true },
            ])),
        ),
        ("rejected_odds_changed", Outcome::Rejected(ResultCode::OddsChanged)),
    ]
}

#[test]
fn every_outcome_and_done_variant_encodes_to_its_fixture_and_decodes_from_it() {
    let mut golden = Golden::new(env!("CARGO_MANIFEST_DIR"), env!("CARGO_PKG_NAME"), OUTCOME);
    for (name, outcome) in outcomes() {
        let label = match &outcome {
            Outcome::Done(done) => format!("Outcome::Done(Done::{})", variant_of(done)),
            Outcome::Rejected(code) => format!("Outcome::Rejected({code:?})"),
        };
        golden.check(name, &label, &outcome, postcard_encode, postcard_decode::<Outcome>);
    }
    golden.finish();
}

#[test]
fn outcome_and_done_tags_are_pinned_so_a_variant_can_only_be_added_at_the_end() {
    check_tags(
        "Outcome",
        BUMP,
        &[("Done", 0), ("Rejected", 1)],
        &[Outcome::Done(Done::Ok), Outcome::Rejected(ResultCode::BetNotFound)],
    );
    let pinned = [
        ("Ok", 0),
        ("AccountOpened", 1),
        ("Transferred", 2),
        ("BetAccepted", 3),
        ("BetPending", 4),
        ("CashOut", 5),
        ("Resolved", 6),
        ("Settled", 7),
        ("KeyIssued", 8),
        ("IncidentOpened", 9),
        ("BetsPlaced", 10),
    ];
    let samples: Vec<Done> = outcomes()
        .into_iter()
        .filter_map(|(_, o)| match o {
            Outcome::Done(done) => Some(done),
            Outcome::Rejected(_) => None,
        })
        .collect();
    check_tags("Done", BUMP, &pinned, &samples);
}

/// Every result code: its postcard tag and its stable wire name, written out.
const RESULT_CODES: &[(ResultCode, u32, &str)] = &[
    (ResultCode::AccountExists, 0, "account_exists"),
    (ResultCode::AccountNotFound, 1, "account_not_found"),
    (ResultCode::CurrencyInvalid, 2, "currency_invalid"),
    (ResultCode::CurrencyMismatch, 3, "currency_mismatch"),
    (ResultCode::AmountMustBePositive, 4, "amount_must_be_positive"),
    (ResultCode::AmountOverflow, 5, "amount_overflow"),
    (ResultCode::InsufficientFunds, 6, "insufficient_funds"),
    (ResultCode::IdempotencyKeyInvalid, 7, "idempotency_key_invalid"),
    (ResultCode::IdempotencyKeyReused, 8, "idempotency_key_reused"),
    (ResultCode::TextInvalid, 9, "text_invalid"),
    (ResultCode::EventExists, 10, "event_exists"),
    (ResultCode::EventNotFound, 11, "event_not_found"),
    (ResultCode::MarketExists, 12, "market_exists"),
    (ResultCode::MarketNotFound, 13, "market_not_found"),
    (ResultCode::SelectionNotFound, 14, "selection_not_found"),
    (ResultCode::SelectionExists, 15, "selection_exists"),
    (ResultCode::SelectionCountInvalid, 16, "selection_count_invalid"),
    (ResultCode::MarketRulesInvalid, 17, "market_rules_invalid"),
    (ResultCode::MarketNotOpen, 18, "market_not_open"),
    (ResultCode::MarketSuspended, 19, "market_suspended"),
    (ResultCode::MarketClosed, 20, "market_closed"),
    (ResultCode::MarketStateInvalid, 21, "market_state_invalid"),
    (ResultCode::MarketAlreadySettled, 22, "market_already_settled"),
    (ResultCode::MarketNotSettled, 23, "market_not_settled"),
    (ResultCode::MarketVoided, 24, "market_voided"),
    (ResultCode::SelectionWithdrawn, 25, "selection_withdrawn"),
    (ResultCode::DeductionInvalid, 26, "deduction_invalid"),
    (ResultCode::ResultsInvalid, 27, "results_invalid"),
    (ResultCode::OddsInvalid, 28, "odds_invalid"),
    (ResultCode::OddsChanged, 29, "odds_changed"),
    (ResultCode::StakeBelowMinimum, 30, "stake_below_minimum"),
    (ResultCode::StakeAboveMaximum, 31, "stake_above_maximum"),
    (ResultCode::MaxPayoutExceeded, 32, "max_payout_exceeded"),
    (ResultCode::LiabilityLimitExceeded, 33, "liability_limit_exceeded"),
    (ResultCode::LegsEmpty, 34, "legs_empty"),
    (ResultCode::TooManyLegs, 35, "too_many_legs"),
    (ResultCode::LegsSameEvent, 36, "legs_same_event"),
    (ResultCode::BetTypeInvalid, 37, "bet_type_invalid"),
    (ResultCode::EachWayNotOffered, 38, "each_way_not_offered"),
    (ResultCode::SelfExcluded, 39, "self_excluded"),
    (ResultCode::TimedOut, 40, "timed_out"),
    (ResultCode::DepositLimitExceeded, 41, "deposit_limit_exceeded"),
    (ResultCode::LossLimitReached, 42, "loss_limit_reached"),
    (ResultCode::LimitInvalid, 43, "limit_invalid"),
    (ResultCode::BetNotFound, 44, "bet_not_found"),
    (ResultCode::BetNotOpen, 45, "bet_not_open"),
    (ResultCode::BetAccountMismatch, 46, "bet_account_mismatch"),
    (ResultCode::CashOutQuoteStale, 47, "cash_out_quote_stale"),
    (ResultCode::CashOutValueTooHigh, 48, "cash_out_value_too_high"),
    (ResultCode::CashOutUnavailable, 49, "cash_out_unavailable"),
    (ResultCode::ConfigInvalid, 50, "config_invalid"),
    (ResultCode::ClockStepTooLarge, 51, "clock_step_too_large"),
    (ResultCode::PrincipalNameInvalid, 52, "principal_name_invalid"),
    (ResultCode::PrincipalExists, 53, "principal_exists"),
    (ResultCode::PrincipalNotFound, 54, "principal_not_found"),
    (ResultCode::AccountsOnlyForBettors, 55, "accounts_only_for_bettors"),
    (ResultCode::AccountAlreadyBound, 56, "account_already_bound"),
    (ResultCode::TooManyAccounts, 57, "too_many_accounts"),
    (ResultCode::KeyExists, 58, "key_exists"),
    (ResultCode::KeyNotFound, 59, "key_not_found"),
    (ResultCode::KeyRevoked, 60, "key_revoked"),
    (ResultCode::KeyTtlInvalid, 61, "key_ttl_invalid"),
    (ResultCode::TooManyKeys, 62, "too_many_keys"),
    (ResultCode::IncidentNotFound, 63, "incident_not_found"),
    (ResultCode::IncidentClosed, 64, "incident_closed"),
    (ResultCode::BatchSizeInvalid, 65, "batch_size_invalid"),
];

#[test]
fn every_result_code_keeps_its_postcard_tag_and_its_wire_name() {
    let declared = variant_names::<ResultCode>();
    let mut failures = Vec::new();
    for (i, &(code, tag, name)) in RESULT_CODES.iter().enumerate() {
        let bytes = postcard_encode(&code);
        if postcard_tag(&bytes) != Some(tag) || bytes.len() != 1 {
            failures.push(format!(
                "ResultCode::{code:?} encodes as {bytes:02x?}, pinned at tag {tag}: a code was inserted before it or \
                 the codes were reordered; new codes go at the end only (if a tag must change, bump {BUMP})"
            ));
        }
        if code.as_str() != name {
            failures.push(format!(
                "ResultCode::{code:?} is called {:?} on the wire, pinned as {name:?}: a shipped name never changes",
                code.as_str()
            ));
        }
        if declared.get(tag as usize) != Some(&name) {
            failures.push(format!(
                "serde names tag {tag} {:?}, not {name:?}: the serde name must equal the wire name",
                declared.get(tag as usize)
            ));
        }
        if ResultCode::ALL.get(i) != Some(&code) {
            failures.push(format!("ResultCode::ALL[{i}] is {:?}, not {code:?}", ResultCode::ALL.get(i)));
        }
    }
    if ResultCode::ALL.len() != RESULT_CODES.len() {
        let pinned: Vec<ResultCode> = RESULT_CODES.iter().map(|r| r.0).collect();
        let unpinned: Vec<&ResultCode> = ResultCode::ALL.iter().filter(|c| !pinned.contains(c)).collect();
        failures.push(format!(
            "{} result codes exist and {} are pinned; pin {unpinned:?} with the next tags, at the end",
            ResultCode::ALL.len(),
            RESULT_CODES.len()
        ));
    }
    assert!(failures.is_empty(), "{} result code failure(s):\n\n{}", failures.len(), failures.join("\n\n"));
}

#[test]
fn book_config_encodes_to_its_fixtures_and_decodes_from_them() {
    let custom = BookConfig {
        rounding: RoundingRule::HalfUp,
        cash_out_margin_bps: 400,
        limit_cooling_off_ms: 2 * DAY_MS,
        idempotency_ttl_ms: 7 * DAY_MS,
        clock_step_max_ms: 60_000,
    };
    let mut golden = Golden::new(env!("CARGO_MANIFEST_DIR"), env!("CARGO_PKG_NAME"), BOOK_CONFIG);
    golden.check(
        "default",
        "BookConfig::default()",
        &BookConfig::default(),
        postcard_encode,
        postcard_decode::<BookConfig>,
    );
    golden.check("half_up_two_day_cooling_off", "BookConfig", &custom, postcard_encode, postcard_decode::<BookConfig>);
    golden.finish();
}
