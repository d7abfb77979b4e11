//! The ledger snapshot cannot drift: a small but non-trivial book — accounts with a limit and a
//! time-out, two events, a settled market, an open each-way market with a non-runner, bets,
//! a pending in-play bet, idempotency records and an audit trail — is rebuilt here from a fixed
//! command list with fixed log indexes and timestamps, and `State::encode_snapshot` of it must
//! be the checked-in `tests/fixtures/snapshot/book.v4.hex`, which must decode to the same
//! state and state hash. The version-3 fixture (the same book without its incidents) and the
//! version-2 one (without its principals and keys either) still decode, to those books with no
//! incidents and an empty registry. A snapshot of another format version is refused, not
//! misread. The
//! tags of the enums only snapshots hold (market and bet status, pending items, audit events,
//! key scopes) are pinned too.
//!
//! Why it matters: a node restarts from its snapshot file, and a lagging follower installs the
//! leader's; replicas compare state hashes. See `tests/golden/mod.rs` for the fixture rules.

use paddock_golden as golden;

use golden::{check_tags, postcard_encode, Format, Golden};
use paddock_ledger::audit::AuditEvent;
use paddock_ledger::auth::{key_hash, KeyId, Role};
use paddock_ledger::snapshot::{SNAPSHOT_FORMAT_VERSION, SNAPSHOT_MAGIC};
use paddock_ledger::state::PendingItem;
use paddock_ledger::{
    apply, AccountId, Actor, ApplyCtx, BetId, BetKind, BetStatus, Command, Currency, EachWayTerms, EventId,
    ExclusionKind, IdempotencyKey, IncidentId, IncidentKind, KeyScope, LegRequest, LegResult, LimitKind, LimitWindow,
    MarketId, MarketRules, MarketStatus, Money, NewSelection, Odds, OddsPolicy, Outcome, PlaceBet, ResultCode,
    SelectionId, SelectionResult, State, StateHash, TimestampMs,
};
use sha2::{Digest, Sha256};

const SNAPSHOT: Format = Format {
    dir: "snapshot",
    version: SNAPSHOT_FORMAT_VERSION as u32,
    bump: "SNAPSHOT_FORMAT_VERSION (crates/ledger/src/snapshot.rs); if only the rebuilt state differs, applying the \
           fixed command list changed behaviour, and replicas of two builds would diverge mid-upgrade",
};

/// The first entry's leader timestamp (2023-11-14T22:13:20Z); each later entry is a second on.
const T0_MS: u64 = 1_700_000_000_000;

fn gbp() -> Currency {
    Currency::parse("GBP").expect("GBP is a currency code")
}

fn key(text: &str) -> IdempotencyKey {
    IdempotencyKey(text.to_string())
}

fn trader() -> Actor {
    Actor("trader:alice".to_string())
}

fn odds(num: u64, den: u64) -> Odds {
    Odds::new(num, den).expect("a price the book offers")
}

fn selection(id: u64, name: &str, price: Odds) -> NewSelection {
    NewSelection { selection: SelectionId(id), name: name.to_string(), odds: price }
}

fn rules(bet_delay_ms: u64, each_way: Option<EachWayTerms>) -> MarketRules {
    MarketRules {
        stake_min: Money(10),
        stake_max: Money(100_000),
        payout_max: Money(10_000_000),
        liability_max: Money(50_000_000),
        bet_delay_ms,
        closes_at: None,
        each_way,
    }
}

fn single(
    account: u64,
    market: u64,
    selection: u64,
    price: Odds,
    stake: i64,
    each_way: bool,
    key_text: &str,
) -> Command {
    Command::PlaceBet(PlaceBet {
        account: AccountId(account),
        legs: vec![LegRequest { market: MarketId(market), selection: SelectionId(selection), odds: price }],
        kind: BetKind::Single,
        stake_per_line: Money(stake),
        each_way,
        odds_policy: OddsPolicy::Higher,
        key: key(key_text),
    })
}

/// The fixed command list the fixture book is built from: the version-3 book, then incidents.
fn commands() -> Vec<Command> {
    let mut list = commands_v3();
    list.extend([
        Command::OpenIncident {
            kind: IncidentKind::SelfCheckFailed,
            node: 2,
            cause: "the running binary's SHA-256 is not the expected one".to_string(),
            actor: Actor("node-2".to_string()),
            key: key("incident-node-2-1"),
        },
        Command::CloseIncident {
            incident: IncidentId(1),
            resolution: "the expected binary is running again".to_string(),
            actor: Actor("root".to_string()),
            key: key("close-incident-1"),
        },
        Command::OpenIncident {
            kind: IncidentKind::Reported,
            node: 0,
            cause: "data centre A lost power".to_string(),
            actor: Actor("root".to_string()),
            key: key("incident-dc-a"),
        },
    ]);
    list
}

/// The commands of the version-3 fixture book: the version-2 book, then principals and keys.
fn commands_v3() -> Vec<Command> {
    let mut list = commands_v2();
    list.extend([
        Command::CreatePrincipal {
            name: "ann@example.com".to_string(),
            role: Role::Bettor,
            accounts: vec![AccountId(1001)],
            actor: Actor("root".to_string()),
            key: key("principal-ann"),
        },
        Command::BindAccount {
            principal: "ann@example.com".to_string(),
            account: AccountId(1003),
            actor: Actor("root".to_string()),
            key: key("bind-ann-1003"),
        },
        Command::CreatePrincipal {
            name: "alice".to_string(),
            role: Role::Trader,
            accounts: vec![],
            actor: Actor("root".to_string()),
            key: key("principal-alice"),
        },
        Command::IssueKey {
            id: KeyId(0x0123_4567_89ab_cdef),
            principal: "ann@example.com".to_string(),
            hash: key_hash(KeyId(0x0123_4567_89ab_cdef), &[0x5a; 32]),
            ttl_ms: Some(12 * 3_600_000),
            actor: Actor("root".to_string()),
            key: key("key-ann-1"),
        },
        Command::IssueKey {
            id: KeyId(0xfedc_ba98_7654_3210),
            principal: "alice".to_string(),
            hash: key_hash(KeyId(0xfedc_ba98_7654_3210), &[0xa5; 32]),
            ttl_ms: None,
            actor: Actor("root".to_string()),
            key: key("key-alice-1"),
        },
        Command::RevokeKey {
            id: KeyId(0xfedc_ba98_7654_3210),
            actor: Actor("root".to_string()),
            key: key("revoke-alice-1"),
        },
    ]);
    list
}

/// The commands of the version-2 fixture book.
fn commands_v2() -> Vec<Command> {
    vec![
        Command::OpenAccount { account: AccountId(1001), currency: gbp(), key: key("open-1001") },
        Command::OpenAccount { account: AccountId(1002), currency: gbp(), key: key("open-1002") },
        Command::Deposit { account: AccountId(1001), amount: Money(10_000), key: key("dep-1001-1") },
        Command::Deposit { account: AccountId(1002), amount: Money(5_000), key: key("dep-1002-1") },
        Command::SetLimit {
            account: AccountId(1002),
            kind: LimitKind::Deposit,
            window: LimitWindow::Week,
            amount: Some(Money(20_000)),
            key: key("limit-1002-dep-week"),
        },
        Command::CreateEvent {
            event: EventId(77),
            name: "Arsenal v Spurs".to_string(),
            sport: "football".to_string(),
            competition: "Premier League".to_string(),
            starts_at: TimestampMs(T0_MS + 2 * 3_600_000),
            actor: trader(),
            key: key("event-77"),
        },
        Command::CreateMarket {
            market: MarketId(501),
            event: EventId(77),
            name: "Match result".to_string(),
            currency: gbp(),
            selections: vec![
                selection(5011, "Arsenal", odds(31, 10)),
                selection(5012, "Draw", odds(17, 4)),
                selection(5013, "Spurs", odds(3, 1)),
            ],
            rules: rules(0, None),
            actor: trader(),
            key: key("market-501"),
        },
        Command::CreateEvent {
            event: EventId(78),
            name: "Cheltenham 14:30".to_string(),
            sport: "horse_racing".to_string(),
            competition: "Cheltenham Festival".to_string(),
            starts_at: TimestampMs(T0_MS + 3 * 3_600_000),
            actor: trader(),
            key: key("event-78"),
        },
        Command::CreateMarket {
            market: MarketId(601),
            event: EventId(78),
            name: "Win".to_string(),
            currency: gbp(),
            selections: vec![
                selection(6011, "Red Rum", odds(6, 1)),
                selection(6012, "Arkle", odds(11, 2)),
                selection(6013, "Desert Orchid", odds(4, 1)),
            ],
            rules: rules(5_000, Some(EachWayTerms { fraction_num: 1, fraction_den: 4, places: 3 })),
            actor: trader(),
            key: key("market-601"),
        },
        single(1001, 501, 5011, odds(31, 10), 1_000, false, "bet-1001-1"),
        single(1002, 501, 5013, odds(3, 1), 500, false, "bet-1002-1"),
        Command::SetPrice {
            market: MarketId(501),
            selection: SelectionId(5011),
            odds: odds(3, 1),
            key: key("price-5011-2"),
        },
        Command::SuspendMarket {
            market: MarketId(501),
            reason: "kick-off".to_string(),
            actor: trader(),
            key: key("suspend-501"),
        },
        Command::CloseMarket { market: MarketId(501), actor: trader(), key: key("close-501") },
        Command::SettleMarket {
            market: MarketId(501),
            results: vec![SelectionResult { selection: SelectionId(5011), win: LegResult::Win, place: None }],
            actor: Actor("settler:bob".to_string()),
            key: key("settle-501"),
        },
        Command::WithdrawSelection {
            market: MarketId(601),
            selection: SelectionId(6013),
            deduction_pence: 20,
            actor: trader(),
            key: key("nr-6013"),
        },
        single(1001, 601, 6011, odds(6, 1), 200, true, "bet-1001-2"),
        Command::OpenAccount { account: AccountId(1003), currency: gbp(), key: key("open-1003") },
        Command::Exclude {
            account: AccountId(1003),
            kind: ExclusionKind::TimeOut,
            duration_days: 2,
            key: key("timeout-1003"),
        },
    ]
}

/// The fixture book: the command list applied as log entries 1, 2, ... one second apart.
fn book() -> State {
    build(commands())
}

fn build(commands: Vec<Command>) -> State {
    let mut state = State::new();
    for (i, command) in commands.iter().enumerate() {
        let ctx = ApplyCtx { log_index: i as u64 + 1, time: TimestampMs(T0_MS + i as u64 * 1_000) };
        match apply(&mut state, command, ctx) {
            Outcome::Done(_) => {}
            Outcome::Rejected(code) => panic!("entry {}: {command:?} was refused: {}", i + 1, code.as_str()),
        }
    }
    state.check_invariants().expect("the fixture book keeps every invariant");
    state
}

fn decode(bytes: &[u8]) -> Result<State, String> {
    State::decode_snapshot(bytes).map_err(|e| e.to_string())
}

/// A snapshot of `version` around `payload`, with a correct length and checksum.
fn hand_made_snapshot(version: u16, payload: &[u8]) -> Vec<u8> {
    let mut bytes = SNAPSHOT_MAGIC.to_vec();
    bytes.extend_from_slice(&version.to_le_bytes());
    bytes.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    bytes.extend_from_slice(payload);
    let crc = crc32c::crc32c(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    bytes
}

#[test]
fn the_fixture_book_is_what_the_test_says_it_is() {
    let state = book();
    assert_eq!(state.account_count(), 3);
    assert_eq!(state.bet_count(), 3);
    assert_eq!(state.pending_count(), 1, "the each-way bet waits for the in-play delay");
    assert_eq!(state.market(MarketId(501)).expect("market 501").status, MarketStatus::Settled);
    assert_eq!(state.idempotency_key_count(), commands().len(), "every command was keyed and succeeded");
    assert!(state.audit().records().len() >= 5, "events, markets, status changes, settlement, non-runner, limit");
    assert_eq!(state.principals().len(), 2);
    assert_eq!(state.account_owner(AccountId(1003)), Some("ann@example.com"));
    assert!(state.api_key(KeyId(0xfedc_ba98_7654_3210)).expect("alice's key").revoked_at.is_some());
    assert_eq!(state.incidents(None, 10).len(), 2);
    assert!(state.incident(IncidentId(1)).expect("incident 1").closed_at.is_some());
    assert!(state.open_incident(IncidentKind::Reported, 0).is_some());
}

#[test]
fn the_snapshot_of_the_fixture_book_encodes_to_its_fixture_and_decodes_to_the_same_state_and_hash() {
    let state = book();
    let mut golden = Golden::new(env!("CARGO_MANIFEST_DIR"), env!("CARGO_PKG_NAME"), SNAPSHOT);
    golden.check("book", "the ledger snapshot (State::encode_snapshot)", &state, State::encode_snapshot, decode);
    // The state hash is compared across replicas and shown at /v1/cluster/state-hash: it is a
    // format too, and a function of the snapshot payload only.
    golden.check(
        "book_state_hash",
        "the state hash (SHA-256 of the snapshot payload)",
        &state.state_hash(),
        |hash| hash.0.to_vec(),
        |bytes| bytes.try_into().map(StateHash).map_err(|_| format!("{} bytes, not 32", bytes.len())),
    );
    if let Some(fixture) = golden.bytes("book") {
        let decoded = decode(&fixture).expect("checked above");
        assert_eq!(decoded.state_hash(), state.state_hash(), "decoding the fixture gives the rebuilt book's hash");
        assert!(decoded.check_invariants().is_ok() && decoded.audit().verify().is_ok());
    }
    // Version 3: the same book before incidents existed; it decodes with none.
    let v3 = build(commands_v3());
    golden.old_decodes(3, "book", "the version-3 ledger snapshot", &v3, decode);
    if let Some(old) = golden.bytes_of_version(3, "book") {
        let payload_hash = StateHash(Sha256::digest(&old[18..old.len() - 4]).into());
        golden.old_decodes(3, "book_state_hash", "the version-3 state hash", &payload_hash, |bytes| {
            bytes.try_into().map(StateHash).map_err(|_| format!("{} bytes, not 32", bytes.len()))
        });
    }
    // Version 2: the same book before principals existed. It decodes to that book with an
    // empty registry, and its hash fixture is the SHA-256 of its own payload.
    let v2 = build(commands_v2());
    golden.old_decodes(2, "book", "the version-2 ledger snapshot", &v2, decode);
    if let Some(old) = golden.bytes_of_version(2, "book") {
        let payload_hash = StateHash(Sha256::digest(&old[18..old.len() - 4]).into());
        golden.old_decodes(2, "book_state_hash", "the version-2 state hash", &payload_hash, |bytes| {
            bytes.try_into().map(StateHash).map_err(|_| format!("{} bytes, not 32", bytes.len()))
        });
    }
    golden.finish();
}

#[test]
fn the_hashes_of_an_owned_copy_are_the_state_hash_and_the_book_hash_of_the_original() {
    // `GET /v1/cluster/state-hash` hashes a copy off the state lock, taking both hashes from one copy.
    let state = book();
    assert!(state.idempotency_key_count() > 0, "the fixture book remembers keys: the two hashes must differ");
    let (state_hash, book_hash) = state.clone().into_hashes();
    assert_eq!(state_hash, state.state_hash());
    assert_eq!(book_hash, state.book_hash());
    assert_ne!(state_hash, book_hash, "the book hash leaves the idempotency records out");
}

#[test]
fn a_backup_reads_a_snapshots_state_hash_and_clock_without_decoding_the_book() {
    let state = book();
    let summary = State::summarize_snapshot(&state.encode_snapshot()).expect("a snapshot of this build");
    assert_eq!(summary.state_hash, state.state_hash());
    assert_eq!(summary.clock, state.clock());
    assert!(summary.clock.0 > T0_MS, "the fixture book's clock has moved: the test would see a wrong field");
    // An older version's payload is not the current encoding: its summary is that of the book
    // it decodes to, as a node loading it would hold.
    for version in [2, 3] {
        let path = format!("{}/tests/fixtures/snapshot/book.v{version}.hex", env!("CARGO_MANIFEST_DIR"));
        // The fixture as golden_snapshot's main test reads it (that test owns the files'
        // bookkeeping); the ledger's own code does no I/O, its tests may read a fixture.
        #[allow(clippy::disallowed_methods)]
        let text = std::fs::read_to_string(&path).expect("the old fixture");
        let old = golden::parse_hex(&text).expect("hex");
        let decoded = decode(&old).expect("an old fixture decodes");
        let summary = State::summarize_snapshot(&old).expect("an old fixture is summarized");
        assert_eq!((summary.state_hash, summary.clock), (decoded.state_hash(), decoded.clock()), "version {version}");
    }
    let mut damaged = state.encode_snapshot();
    damaged[30] ^= 1;
    assert!(State::summarize_snapshot(&damaged).is_err(), "a damaged snapshot is refused, not summarized");
}

#[test]
fn a_snapshot_opens_with_magic_format_version_4_and_its_length_and_ends_with_a_checksum() {
    // Today's encoding of the fixture book; the test above holds it equal to the fixture.
    let bytes = book().encode_snapshot();
    assert_eq!(SNAPSHOT_FORMAT_VERSION, 4, "a new version means new fixtures beside book.v4.hex");
    assert_eq!(&bytes[0..8], b"PDKSNAP\0", "magic");
    assert_eq!(u16::from_le_bytes([bytes[8], bytes[9]]), 4, "format version, little-endian");
    let length = u64::from_le_bytes(bytes[10..18].try_into().expect("8 bytes"));
    assert_eq!(length as usize, bytes.len() - 18 - 4, "payload length");
    let body_end = bytes.len() - 4;
    let crc = u32::from_le_bytes(bytes[body_end..].try_into().expect("4 bytes"));
    assert_eq!(crc, crc32c::crc32c(&bytes[..body_end]), "CRC-32C of everything before it");
}

#[test]
fn a_version_1_snapshot_is_refused_with_a_message_naming_both_versions() {
    // Version 1 predates scoped idempotency keys; its payload would misread, so it is refused
    // before the payload is looked at (here: today's payload under a version-1 header).
    let v1 = hand_made_snapshot(1, &postcard_encode(&book()));
    let err = State::decode_snapshot(&v1).expect_err("version 1 is refused");
    assert_eq!(err.to_string(), "snapshot format version 1 is not supported (this build reads 2 to 4)");
}

#[test]
fn a_snapshot_of_a_later_version_is_refused_not_misread() {
    let v5 = hand_made_snapshot(5, &postcard_encode(&book()));
    let err = State::decode_snapshot(&v5).expect_err("version 5 is refused");
    assert_eq!(err.to_string(), "snapshot format version 5 is not supported (this build reads 2 to 4)");
}

#[test]
fn market_and_bet_status_tags_are_pinned() {
    check_tags(
        "MarketStatus",
        SNAPSHOT.bump,
        &[("Open", 0), ("Suspended", 1), ("Closed", 2), ("Settled", 3), ("Resettled", 4), ("Voided", 5)],
        &[
            MarketStatus::Open,
            MarketStatus::Suspended,
            MarketStatus::Closed,
            MarketStatus::Settled,
            MarketStatus::Resettled,
            MarketStatus::Voided,
        ],
    );
    check_tags(
        "BetStatus",
        SNAPSHOT.bump,
        &[("Pending", 0), ("Open", 1), ("Settled", 2), ("CashedOut", 3), ("Rejected", 4)],
        &[
            BetStatus::Pending,
            BetStatus::Open,
            BetStatus::Settled,
            BetStatus::CashedOut,
            BetStatus::Rejected(ResultCode::OddsChanged),
        ],
    );
}

#[test]
fn pending_item_and_key_scope_tags_are_pinned() {
    check_tags(
        "PendingItem",
        SNAPSHOT.bump,
        &[("Bet", 0), ("CashOut", 1)],
        &[
            PendingItem::Bet { bet: BetId(3), due: TimestampMs(T0_MS + 21_000) },
            PendingItem::CashOut {
                bet: BetId(1),
                value: Money(950),
                quoted_versions: vec![(SelectionId(5011), 2)],
                due: TimestampMs(T0_MS + 9_000),
            },
        ],
    );
    check_tags(
        "KeyScope",
        SNAPSHOT.bump,
        &[("Account", 0), ("Book", 1)],
        &[KeyScope::Account(AccountId(1001)), KeyScope::Book],
    );
}

#[test]
fn audit_event_tags_are_pinned() {
    let pinned = [
        ("EventCreated", 0),
        ("MarketCreated", 1),
        ("MarketStatusChanged", 2),
        ("SelectionWithdrawn", 3),
        ("MarketSettled", 4),
        ("LimitChanged", 5),
        ("Excluded", 6),
        ("StakeFactorChanged", 7),
        ("ConfigChanged", 8),
        ("PrincipalCreated", 9),
        ("AccountBound", 10),
        ("KeyIssued", 11),
        ("KeyRevoked", 12),
        ("IncidentOpened", 13),
        ("IncidentClosed", 14),
        ("BetIdsReserved", 15),
        ("HistoryArchived", 16),
    ];
    let samples = [
        AuditEvent::EventCreated { event: EventId(77) },
        AuditEvent::MarketCreated { market: MarketId(501) },
        AuditEvent::MarketStatusChanged {
            market: MarketId(501),
            from: MarketStatus::Open,
            to: MarketStatus::Suspended,
            reason: "kick-off".to_string(),
        },
        AuditEvent::SelectionWithdrawn { market: MarketId(601), selection: SelectionId(6013), deduction_pence: 20 },
        AuditEvent::MarketSettled {
            market: MarketId(501),
            result_version: 1,
            bets_settled: 2,
            paid_net: Money(2_100),
            reason: String::new(),
        },
        AuditEvent::LimitChanged {
            account: AccountId(1002),
            kind: LimitKind::Deposit,
            window: LimitWindow::Week,
            amount: Some(Money(20_000)),
            effective_at: TimestampMs(T0_MS + 4_000),
        },
        AuditEvent::Excluded {
            account: AccountId(1003),
            kind: ExclusionKind::TimeOut,
            until: TimestampMs(T0_MS + 2 * 86_400_000),
        },
        AuditEvent::StakeFactorChanged { account: AccountId(1001), factor_permille: 250 },
        AuditEvent::ConfigChanged,
        AuditEvent::PrincipalCreated {
            principal: "ann".to_string(),
            role: Role::Bettor,
            accounts: vec![AccountId(1001)],
        },
        AuditEvent::AccountBound { principal: "ann".to_string(), account: AccountId(1003) },
        AuditEvent::KeyIssued { principal: "ann".to_string(), key: KeyId(7), expires_at: None },
        AuditEvent::KeyRevoked { principal: "ann".to_string(), key: KeyId(7) },
        AuditEvent::IncidentOpened { incident: IncidentId(1), kind: IncidentKind::SelfCheckFailed, node: 2 },
        AuditEvent::IncidentClosed { incident: IncidentId(1) },
        AuditEvent::BetIdsReserved {
            from: BetId(41),
            to: BetId(1_000_000_041),
            reason: "promoted from cluster paddock at index 900".to_string(),
        },
        AuditEvent::HistoryArchived { before: TimestampMs(T0_MS), markets: 2, bets: 40, digest: [7; 32] },
    ];
    check_tags("AuditEvent", SNAPSHOT.bump, &pinned, &samples);
}

#[test]
fn incident_kind_tags_are_pinned() {
    check_tags(
        "IncidentKind",
        SNAPSHOT.bump,
        &[
            ("SelfCheckFailed", 0),
            ("Reported", 1),
            ("LeaderChanged", 2),
            ("NodeUnreachable", 3),
            ("LoadShedding", 4),
            ("ClockUnsynchronized", 5),
            ("VoterReplaced", 6),
        ],
        IncidentKind::ALL,
    );
}

#[test]
fn role_tags_are_pinned() {
    check_tags(
        "Role",
        SNAPSHOT.bump,
        &[("Bettor", 0), ("Trader", 1), ("Operator", 2), ("Auditor", 3), ("Service", 4)],
        &Role::ALL,
    );
}

#[test]
fn a_snapshot_streamed_in_pieces_is_the_snapshot_encoded_whole_and_carries_the_state_hash() {
    // Large enough that the encoder hands its payload over in several pieces.
    let mut state = book();
    for n in 0..20_000u64 {
        let open =
            Command::OpenAccount { account: AccountId(100_000 + n), currency: gbp(), key: key(&format!("big-{n}")) };
        let ctx = ApplyCtx { log_index: 100_000 + n, time: state.clock() };
        assert!(paddock_ledger::apply(&mut state, &open, ctx).is_done());
    }
    // The format written out by hand: header, the postcard payload, CRC-32C.
    let payload = postcard::to_stdvec(&state).expect("encodes");
    let mut whole = SNAPSHOT_MAGIC.to_vec();
    whole.extend_from_slice(&SNAPSHOT_FORMAT_VERSION.to_le_bytes());
    whole.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    whole.extend_from_slice(&payload);
    let crc = crc32c::crc32c(&whole);
    whole.extend_from_slice(&crc.to_le_bytes());
    assert_eq!(state.snapshot_len(), whole.len() as u64, "the length announced before streaming");
    assert_eq!(state.encode_snapshot(), whole);
    let mut streamed = Vec::new();
    let mut pieces = 0;
    let hash = state
        .write_snapshot(state.snapshot_len(), &mut |piece| {
            pieces += 1;
            streamed.extend_from_slice(piece);
            Ok(())
        })
        .expect("a sink that never refuses");
    assert_eq!(streamed, whole);
    assert!(pieces >= 4, "the header, the payload in pieces, and the checksum: {pieces} pieces");
    assert_eq!(streamed.len() as u64, state.snapshot_len(), "as many bytes as announced");
    assert_eq!(hash, StateHash(Sha256::digest(&payload).into()));
    assert_eq!(hash, state.state_hash());

    // A sink that fails on the payload's second piece stops the encoding with its own error.
    let mut calls = 0;
    let error = state
        .write_snapshot(state.snapshot_len(), &mut |_| {
            calls += 1;
            if calls == 3 {
                return Err(std::io::Error::new(std::io::ErrorKind::StorageFull, "disk full"));
            }
            Ok(())
        })
        .expect_err("the sink's error");
    assert_eq!(calls, 3, "nothing more is written after the failure");
    assert_eq!((error.kind(), error.to_string()), (std::io::ErrorKind::StorageFull, "disk full".to_string()));

    // A length that is not the state's is refused rather than written.
    let short = state.write_snapshot(whole.len() as u64 - 1, &mut |_| Ok(())).expect_err("the wrong length");
    assert!(short.to_string().contains("after counting"), "{short}");
}
