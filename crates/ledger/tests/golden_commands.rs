//! Commands cannot drift: every `Command` variant, with realistic field values, has golden bytes
//! checked in (`tests/fixtures/command/`), and the postcard tag of every variant of `Command`
//! and of the enums it carries is pinned to a number written here.
//!
//! Why it matters: commands are stored in the Raft log of every replica (log record format
//! version 1, `FORMAT_VERSION` in `crates/storage/src/log.rs`), travel between nodes, and
//! their encoding is hashed into the idempotency records a snapshot holds (`body_digest`): a
//! change of encoding would misread yesterday's log and turn a genuine retry into
//! `idempotency_key_reused`. See `tests/golden/mod.rs` for the fixture rules.

use paddock_golden as golden;

use paddock_ledger::auth::{key_hash, KeyId, Role};

use golden::{check_tags, postcard_decode, postcard_encode, variant_names, variant_of, Format, Golden};
use paddock_ledger::{
    AccountId, Actor, BetId, BetKind, BookConfig, Command, Currency, EachWayTerms, EventId, ExclusionKind,
    IdempotencyKey, IncidentId, IncidentKind, LegRequest, LegResult, LimitKind, LimitWindow, MarketId, MarketRules,
    Money, NewSelection, Odds, OddsPolicy, PlaceBet, RoundingRule, SelectionId, SelectionResult, TimestampMs, DAY_MS,
};

/// Where command fixtures live and what their version is: a command's bytes are the log's.
const COMMAND: Format = Format {
    dir: "command",
    version: 1,
    bump: "the log record version (FORMAT_VERSION in crates/storage/src/log.rs) and SNAPSHOT_FORMAT_VERSION \
           (crates/ledger/src/snapshot.rs; idempotency records hold digests of encoded commands)",
};

fn gbp() -> Currency {
    Currency::parse("GBP").expect("GBP is a currency code")
}

fn key(text: &str) -> IdempotencyKey {
    IdempotencyKey(text.to_string())
}

fn trader() -> Actor {
    Actor("trader:alice".to_string())
}

fn settler() -> Actor {
    Actor("settler:bob".to_string())
}

/// A decimal price from its reduced fraction.
fn odds(num: u64, den: u64) -> Odds {
    Odds::new(num, den).expect("a price the book offers")
}

/// One command of every variant, named by its fixture file, in declaration order.
fn commands() -> Vec<(&'static str, Command)> {
    vec![
        ("open_account", Command::OpenAccount { account: AccountId(1001), currency: gbp(), key: key("open-1001") }),
        (
            "deposit",
            Command::Deposit {
                account: AccountId(1001),
                amount: Money(25_000),
                key: key("dep-9f0c2a7e-3b1d-4c8e-a6f5-1e2d3c4b5a69"),
            },
        ),
        (
            "withdraw",
            Command::Withdraw { account: AccountId(1001), amount: Money(7_550), key: key("wd-2023-11-14-01") },
        ),
        (
            "set_limit",
            Command::SetLimit {
                account: AccountId(1001),
                kind: LimitKind::Deposit,
                window: LimitWindow::Week,
                amount: Some(Money(50_000)),
                key: key("limit-dep-week"),
            },
        ),
        (
            "exclude",
            Command::Exclude {
                account: AccountId(1001),
                kind: ExclusionKind::TimeOut,
                duration_days: 7,
                key: key("timeout-7d"),
            },
        ),
        (
            "set_stake_factor",
            Command::SetStakeFactor {
                account: AccountId(1001),
                factor_permille: 250,
                actor: trader(),
                key: key("factor-1001-250"),
            },
        ),
        (
            "create_event",
            Command::CreateEvent {
                event: EventId(77),
                name: "Arsenal v Spurs".to_string(),
                sport: "football".to_string(),
                competition: "Premier League".to_string(),
                starts_at: TimestampMs(1_700_064_000_000),
                actor: trader(),
                key: key("event-77"),
            },
        ),
        (
            "create_market",
            Command::CreateMarket {
                market: MarketId(501),
                event: EventId(77),
                name: "Match result".to_string(),
                currency: gbp(),
                selections: vec![
                    NewSelection { selection: SelectionId(5011), name: "Arsenal".to_string(), odds: odds(31, 10) },
                    NewSelection { selection: SelectionId(5012), name: "Draw".to_string(), odds: odds(17, 4) },
                    NewSelection { selection: SelectionId(5013), name: "Spurs".to_string(), odds: odds(3, 1) },
                ],
                rules: MarketRules {
                    stake_min: Money(10),
                    stake_max: Money(100_000),
                    payout_max: Money(10_000_000),
                    liability_max: Money(50_000_000),
                    bet_delay_ms: 5_000,
                    closes_at: Some(TimestampMs(1_700_064_000_000)),
                    each_way: Some(EachWayTerms { fraction_num: 1, fraction_den: 4, places: 3 }),
                },
                actor: trader(),
                key: key("market-501"),
            },
        ),
        (
            "set_price",
            Command::SetPrice {
                market: MarketId(501),
                selection: SelectionId(5011),
                odds: odds(7, 2),
                key: key("price-5011-v2"),
            },
        ),
        (
            "suspend_market",
            Command::SuspendMarket {
                market: MarketId(501),
                reason: "VAR check: possible penalty".to_string(),
                actor: trader(),
                key: key("suspend-501-1"),
            },
        ),
        ("resume_market", Command::ResumeMarket { market: MarketId(501), actor: trader(), key: key("resume-501-1") }),
        ("close_market", Command::CloseMarket { market: MarketId(501), actor: trader(), key: key("close-501") }),
        (
            "withdraw_selection",
            Command::WithdrawSelection {
                market: MarketId(601),
                selection: SelectionId(6013),
                deduction_pence: 15,
                actor: trader(),
                key: key("nr-6013"),
            },
        ),
        (
            "settle_market",
            Command::SettleMarket {
                market: MarketId(601),
                results: vec![
                    SelectionResult {
                        selection: SelectionId(6011),
                        win: LegResult::DeadHeat { paid_places: 1, tied: 2 },
                        place: None,
                    },
                    SelectionResult { selection: SelectionId(6012), win: LegResult::Lose, place: Some(LegResult::Win) },
                ],
                actor: settler(),
                key: key("settle-601"),
            },
        ),
        (
            "resettle_market",
            Command::ResettleMarket {
                market: MarketId(501),
                results: vec![SelectionResult { selection: SelectionId(5013), win: LegResult::Win, place: None }],
                reason: "wrong result entered: Spurs won 2-1".to_string(),
                actor: settler(),
                key: key("resettle-501-2"),
            },
        ),
        (
            "void_market",
            Command::VoidMarket {
                market: MarketId(701),
                reason: "match abandoned: waterlogged pitch".to_string(),
                actor: settler(),
                key: key("void-701"),
            },
        ),
        (
            "place_bet",
            Command::PlaceBet(PlaceBet {
                account: AccountId(1001),
                legs: vec![
                    LegRequest { market: MarketId(501), selection: SelectionId(5011), odds: odds(31, 10) },
                    LegRequest { market: MarketId(601), selection: SelectionId(6012), odds: odds(11, 2) },
                ],
                kind: BetKind::Accumulator,
                stake_per_line: Money(500),
                each_way: true,
                odds_policy: OddsPolicy::Higher,
                key: key("bet-5c0ffee0"),
            }),
        ),
        ("resolve_pending", Command::ResolvePending),
        (
            "cash_out",
            Command::CashOut {
                account: AccountId(1001),
                bet: BetId(42),
                value: Money(1_230),
                quoted_versions: vec![(SelectionId(5011), 3), (SelectionId(6012), 1)],
                key: key("cashout-42"),
            },
        ),
        (
            "set_config",
            Command::SetConfig {
                config: BookConfig {
                    rounding: RoundingRule::HalfUp,
                    cash_out_margin_bps: 400,
                    limit_cooling_off_ms: DAY_MS,
                    idempotency_ttl_ms: 7 * DAY_MS,
                    clock_step_max_ms: 60_000,
                },
                actor: trader(),
                key: key("config-2023-11"),
            },
        ),
        (
            "create_principal",
            Command::CreatePrincipal {
                name: "ann@example.com".to_string(),
                role: Role::Bettor,
                accounts: vec![AccountId(1001), AccountId(1002)],
                actor: settler(),
                key: key("principal-ann"),
            },
        ),
        (
            "bind_account",
            Command::BindAccount {
                principal: "ann@example.com".to_string(),
                account: AccountId(1003),
                actor: settler(),
                key: key("bind-ann-1003"),
            },
        ),
        (
            "issue_key",
            Command::IssueKey {
                id: KeyId(0x0123_4567_89ab_cdef),
                principal: "ann@example.com".to_string(),
                hash: key_hash(KeyId(0x0123_4567_89ab_cdef), &[0x5a; 32]),
                ttl_ms: Some(12 * 3_600_000),
                actor: settler(),
                key: key("key-ann-1"),
            },
        ),
        (
            "revoke_key",
            Command::RevokeKey { id: KeyId(0x0123_4567_89ab_cdef), actor: settler(), key: key("revoke-ann-1") },
        ),
        (
            "open_incident",
            Command::OpenIncident {
                kind: IncidentKind::SelfCheckFailed,
                node: 2,
                cause: "the running binary's SHA-256 is not the expected one".to_string(),
                actor: Actor("node-2".to_string()),
                key: key("incident-node-2-1"),
            },
        ),
        (
            "close_incident",
            Command::CloseIncident {
                incident: IncidentId(7),
                resolution: "the expected binary is running again".to_string(),
                actor: settler(),
                key: key("close-incident-7"),
            },
        ),
        (
            "place_bets",
            Command::PlaceBets(vec![
                PlaceBet {
                    account: AccountId(1001),
                    legs: vec![LegRequest { market: MarketId(501), selection: SelectionId(5011), odds: odds(31, 10) }],
                    kind: BetKind::Single,
                    stake_per_line: Money(500),
                    each_way: false,
                    odds_policy: OddsPolicy::Exact,
                    key: key("gw-7-000001"),
                },
                PlaceBet {
                    account: AccountId(1002),
                    legs: vec![LegRequest { market: MarketId(501), selection: SelectionId(5012), odds: odds(11, 2) }],
                    kind: BetKind::Single,
                    stake_per_line: Money(1_000),
                    each_way: true,
                    odds_policy: OddsPolicy::Any,
                    key: key("gw-7-000002"),
                },
            ]),
        ),
        (
            "reserve_bet_ids",
            Command::ReserveBetIds {
                from: BetId(1_000_000_041),
                reason: "promoted from cluster paddock at index 900".to_string(),
                actor: settler(),
                key: key("dr-promote-900"),
            },
        ),
        (
            "archive_settled",
            Command::ArchiveSettled {
                before: TimestampMs(1_700_000_000_000),
                markets_max: 500,
                actor: Actor("node-1".to_string()),
                key: key("archive-1700000000000"),
            },
        ),
    ]
}

#[test]
fn every_command_variant_encodes_to_its_fixture_and_its_fixture_decodes_to_it() {
    let mut golden = Golden::new(env!("CARGO_MANIFEST_DIR"), env!("CARGO_PKG_NAME"), COMMAND);
    for (name, command) in commands() {
        let label = format!("Command::{}", variant_of(&command));
        golden.check(name, &label, &command, postcard_encode, postcard_decode::<Command>);
    }
    golden.finish();
}

#[test]
fn every_command_variant_has_a_fixture_and_all_but_resolve_pending_and_batches_carry_a_key() {
    let cases = commands();
    let sampled: Vec<String> = cases.iter().map(|(_, c)| variant_of(c)).collect();
    assert_eq!(sampled, variant_names::<Command>(), "one fixture per variant, in declaration order");
    for (name, command) in &cases {
        let keyed = command.idempotency().is_some();
        match command {
            Command::ResolvePending => assert!(!keyed, "{name}: ResolvePending has no key"),
            Command::PlaceBets(bets) => {
                assert!(!keyed, "{name}: a batch has no key of its own");
                assert!(bets.iter().all(|b| b.key.is_valid()), "{name}: each of its bets carries one");
            }
            _ => assert!(keyed, "{name}: carries a key"),
        }
        let replayed = !matches!(command, Command::ResolvePending);
        assert_eq!(command.repeat_is_replay(), replayed, "{name}: a repeat is answered from the records");
    }
}

#[test]
fn command_tags_are_pinned_so_a_variant_can_only_be_added_at_the_end() {
    let pinned = [
        ("OpenAccount", 0),
        ("Deposit", 1),
        ("Withdraw", 2),
        ("SetLimit", 3),
        ("Exclude", 4),
        ("SetStakeFactor", 5),
        ("CreateEvent", 6),
        ("CreateMarket", 7),
        ("SetPrice", 8),
        ("SuspendMarket", 9),
        ("ResumeMarket", 10),
        ("CloseMarket", 11),
        ("WithdrawSelection", 12),
        ("SettleMarket", 13),
        ("ResettleMarket", 14),
        ("VoidMarket", 15),
        ("PlaceBet", 16),
        ("ResolvePending", 17),
        ("CashOut", 18),
        ("SetConfig", 19),
        ("CreatePrincipal", 20),
        ("BindAccount", 21),
        ("IssueKey", 22),
        ("RevokeKey", 23),
        ("OpenIncident", 24),
        ("CloseIncident", 25),
        ("PlaceBets", 26),
        ("ReserveBetIds", 27),
        ("ArchiveSettled", 28),
    ];
    let samples: Vec<Command> = commands().into_iter().map(|(_, c)| c).collect();
    check_tags("Command", COMMAND.bump, &pinned, &samples);
}

#[test]
fn leg_result_tags_are_pinned() {
    let pinned = [("Win", 0), ("Lose", 1), ("Void", 2), ("DeadHeat", 3), ("HalfWin", 4), ("HalfLose", 5)];
    let samples = [
        LegResult::Win,
        LegResult::Lose,
        LegResult::Void,
        LegResult::DeadHeat { paid_places: 3, tied: 4 },
        LegResult::HalfWin,
        LegResult::HalfLose,
    ];
    check_tags("LegResult", COMMAND.bump, &pinned, &samples);
}

#[test]
fn bet_kind_tags_are_pinned() {
    let pinned =
        [("Single", 0), ("Accumulator", 1), ("KOfN", 2), ("Trixie", 3), ("Patent", 4), ("Yankee", 5), ("Lucky15", 6)];
    let samples = [
        BetKind::Single,
        BetKind::Accumulator,
        BetKind::KOfN { k: 2 },
        BetKind::Trixie,
        BetKind::Patent,
        BetKind::Yankee,
        BetKind::Lucky15,
    ];
    check_tags("BetKind", COMMAND.bump, &pinned, &samples);
}

#[test]
fn odds_policy_tags_are_pinned() {
    let pinned = [("Exact", 0), ("Higher", 1), ("Any", 2)];
    check_tags("OddsPolicy", COMMAND.bump, &pinned, &[OddsPolicy::Exact, OddsPolicy::Higher, OddsPolicy::Any]);
}

#[test]
fn limit_kind_and_window_tags_are_pinned() {
    check_tags("LimitKind", COMMAND.bump, &[("Deposit", 0), ("Loss", 1)], &[LimitKind::Deposit, LimitKind::Loss]);
    check_tags(
        "LimitWindow",
        COMMAND.bump,
        &[("Day", 0), ("Week", 1), ("Month", 2)],
        &[LimitWindow::Day, LimitWindow::Week, LimitWindow::Month],
    );
}

#[test]
fn exclusion_kind_tags_are_pinned() {
    check_tags(
        "ExclusionKind",
        COMMAND.bump,
        &[("SelfExclusion", 0), ("TimeOut", 1)],
        &[ExclusionKind::SelfExclusion, ExclusionKind::TimeOut],
    );
}

#[test]
fn rounding_rule_tags_are_pinned() {
    check_tags(
        "RoundingRule",
        COMMAND.bump,
        &[("Down", 0), ("HalfUp", 1)],
        &[RoundingRule::Down, RoundingRule::HalfUp],
    );
}
