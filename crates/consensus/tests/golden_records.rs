//! The on-disk Raft records cannot drift: golden bytes of `EntryRecord` (blank, a stamped ledger
//! command, a joint membership), `VoteRecord`, `LogIdRecord`, `RepairRecord`, `StoredMembershipRecord` and
//! `SnapshotMetaRecord` (`tests/fixtures/records/`), each converted to openraft's type and back
//! unchanged; and a whole snapshot file as the state machine writes it
//! (`tests/fixtures/snapshot_file/`), which must load into the state machine with the state,
//! log position and membership it was written with. The `PayloadRecord` tags are pinned.
//!
//! Why it matters: these bytes are a node's redb log, its vote and its snapshots; a node must
//! restart on what an older build of itself wrote. See `tests/golden/mod.rs` for the rules.

use paddock_golden as golden;

use golden::{check_tags, postcard_decode, postcard_encode, variant_of, Format, Golden};
use paddock_consensus::records::{
    EntryRecord, LogIdRecord, MembershipRecord, PayloadRecord, RepairRecord, SnapshotMetaRecord,
    StoredMembershipRecord, VoteRecord,
};
use paddock_consensus::state_machine::StateMachine;
use paddock_consensus::types::{LogId, Request, Vote};
use paddock_ledger::{
    apply, AccountId, ApplyCtx, BetKind, Command, Currency, EventId, IdempotencyKey, LegRequest, MarketId, MarketRules,
    Money, NewSelection, Odds, OddsPolicy, PlaceBet, SelectionId, State, TimestampMs,
};
use paddock_storage::snapshot_file::SNAPSHOT_FILE_VERSION;
use paddock_storage::{SnapshotFile, SnapshotFiles};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Records are framed into the redb log and meta tables at the log record version.
const RECORDS: Format = Format {
    dir: "records",
    version: 1,
    bump: "the log record version (FORMAT_VERSION in crates/storage/src/log.rs; and SNAPSHOT_FILE_VERSION in \
           crates/storage/src/snapshot_file.rs for SnapshotMetaRecord)",
};

/// A snapshot file: the storage layout around the consensus meta and the ledger snapshot.
const SNAPSHOT_FILE: Format = Format {
    dir: "snapshot_file",
    version: SNAPSHOT_FILE_VERSION as u32,
    bump: "SNAPSHOT_FILE_VERSION (crates/storage/src/snapshot_file.rs), or the version of whichever part changed \
           (SnapshotMetaRecord: the records fixtures; the ledger snapshot: SNAPSHOT_FORMAT_VERSION)",
};

/// The first entry's leader timestamp (2023-11-14T22:13:20Z).
const T0_MS: u64 = 1_700_000_000_000;

fn log_id(term: u64, node: u64, index: u64) -> LogIdRecord {
    LogIdRecord { term, node, index }
}

fn addr(node: u64) -> String {
    format!("10.0.0.{node}:7001")
}

/// Voters {1, 2, 3}, all three with their peer addresses.
fn three_voters() -> MembershipRecord {
    MembershipRecord { configs: vec![BTreeSet::from([1, 2, 3])], nodes: (1..=3).map(|n| (n, addr(n))).collect() }
}

/// Mid-change: {1, 2, 3} joint with {1, 2, 4}; node 5 a learner.
fn joint_with_learner() -> MembershipRecord {
    MembershipRecord {
        configs: vec![BTreeSet::from([1, 2, 3]), BTreeSet::from([1, 2, 4])],
        nodes: (1..=5).map(|n| (n, addr(n))).collect::<BTreeMap<_, _>>(),
    }
}

fn gbp() -> Currency {
    Currency::parse("GBP").expect("GBP is a currency code")
}

fn key(text: &str) -> IdempotencyKey {
    IdempotencyKey(text.to_string())
}

fn odds(num: u64, den: u64) -> Odds {
    Odds::new(num, den).expect("a price the book offers")
}

fn place_bet() -> Command {
    Command::PlaceBet(PlaceBet {
        account: AccountId(1001),
        legs: vec![LegRequest { market: MarketId(501), selection: SelectionId(5011), odds: odds(31, 10) }],
        kind: BetKind::Single,
        stake_per_line: Money(1_000),
        each_way: false,
        odds_policy: OddsPolicy::Exact,
        key: key("bet-5c0ffee0"),
    })
}

fn entries() -> Vec<(&'static str, EntryRecord)> {
    vec![
        ("entry_blank", EntryRecord { log_id: log_id(3, 1, 1041), payload: PayloadRecord::Blank }),
        (
            "entry_normal_place_bet",
            EntryRecord {
                log_id: log_id(3, 1, 1042),
                payload: PayloadRecord::Normal(Request { time: TimestampMs(T0_MS + 123), command: place_bet() }),
            },
        ),
        (
            "entry_membership_joint",
            EntryRecord { log_id: log_id(3, 1, 1043), payload: PayloadRecord::Membership(joint_with_learner()) },
        ),
    ]
}

fn stored_membership() -> StoredMembershipRecord {
    StoredMembershipRecord { log_id: Some(log_id(1, 1, 2)), membership: three_voters() }
}

fn snapshot_meta() -> SnapshotMetaRecord {
    SnapshotMetaRecord { last_log_id: Some(log_id(1, 1, 7)), membership: stored_membership() }
}

#[test]
fn every_raft_record_encodes_to_its_fixture_and_decodes_from_it() {
    let mut golden = Golden::new(env!("CARGO_MANIFEST_DIR"), env!("CARGO_PKG_NAME"), RECORDS);
    for (name, entry) in entries() {
        let label = format!("EntryRecord with PayloadRecord::{}", variant_of(&entry.payload));
        golden.check(name, &label, &entry, postcard_encode, postcard_decode::<EntryRecord>);
    }
    let vote = VoteRecord { term: 3, node: 1, committed: true };
    golden.check("vote_committed", "VoteRecord", &vote, postcard_encode, postcard_decode::<VoteRecord>);
    let vote = VoteRecord { term: 4, node: 2, committed: false };
    golden.check("vote_candidate", "VoteRecord", &vote, postcard_encode, postcard_decode::<VoteRecord>);
    let committed = log_id(3, 1, 1042);
    golden.check("log_id", "LogIdRecord", &committed, postcard_encode, postcard_decode::<LogIdRecord>);
    let repair = RepairRecord { up_to: 1042, found_ms: T0_MS };
    golden.check("repair_marker", "RepairRecord", &repair, postcard_encode, postcard_decode::<RepairRecord>);
    golden.check(
        "stored_membership",
        "StoredMembershipRecord",
        &stored_membership(),
        postcard_encode,
        postcard_decode::<StoredMembershipRecord>,
    );
    golden.check(
        "snapshot_meta",
        "SnapshotMetaRecord",
        &snapshot_meta(),
        postcard_encode,
        postcard_decode::<SnapshotMetaRecord>,
    );
    golden.finish();
}

#[test]
fn every_record_converts_to_openraft_s_type_and_back_unchanged() {
    for (name, entry) in entries() {
        let raft = entry.clone().into_entry().unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(EntryRecord::from(&raft), entry, "{name}");
    }
    for vote in [VoteRecord { term: 3, node: 1, committed: true }, VoteRecord { term: 4, node: 2, committed: false }] {
        assert_eq!(VoteRecord::from(&Vote::from(vote)), vote);
    }
    let id = log_id(3, 1, 1042);
    assert_eq!(LogIdRecord::from(&LogId::from(id)), id);
    let stored = stored_membership().into_stored().expect("a valid membership");
    assert_eq!(StoredMembershipRecord::from(&stored), stored_membership());
    let meta = snapshot_meta().into_meta().expect("valid metadata");
    assert_eq!(SnapshotMetaRecord::from(&meta), snapshot_meta());
}

#[test]
fn payload_record_tags_are_pinned_so_a_variant_can_only_be_added_at_the_end() {
    let samples: Vec<PayloadRecord> = entries().into_iter().map(|(_, e)| e.payload).collect();
    check_tags("PayloadRecord", RECORDS.bump, &[("Blank", 0), ("Normal", 1), ("Membership", 2)], &samples);
}

/// The book in the fixture snapshot: ledger commands applied at log indexes 3..=7 (1 and 2
/// being the initial membership and the leader's blank entry).
fn book() -> State {
    let commands = [
        Command::OpenAccount { account: AccountId(1001), currency: gbp(), key: key("open-1001") },
        Command::Deposit { account: AccountId(1001), amount: Money(10_000), key: key("dep-1001-1") },
        Command::CreateEvent {
            event: EventId(77),
            name: "Arsenal v Spurs".to_string(),
            sport: "football".to_string(),
            competition: "Premier League".to_string(),
            starts_at: TimestampMs(T0_MS + 7_200_000),
            actor: paddock_ledger::Actor("trader:alice".to_string()),
            key: key("event-77"),
        },
        Command::CreateMarket {
            market: MarketId(501),
            event: EventId(77),
            name: "Match result".to_string(),
            currency: gbp(),
            selections: vec![
                NewSelection { selection: SelectionId(5011), name: "Arsenal".to_string(), odds: odds(31, 10) },
                NewSelection { selection: SelectionId(5012), name: "Draw".to_string(), odds: odds(17, 4) },
            ],
            rules: MarketRules {
                stake_min: Money(10),
                stake_max: Money(100_000),
                payout_max: Money(10_000_000),
                liability_max: Money(50_000_000),
                bet_delay_ms: 0,
                closes_at: None,
                each_way: None,
            },
            actor: paddock_ledger::Actor("trader:alice".to_string()),
            key: key("market-501"),
        },
        place_bet(),
    ];
    let mut state = State::new();
    for (i, command) in commands.iter().enumerate() {
        let ctx = ApplyCtx { log_index: i as u64 + 3, time: TimestampMs(T0_MS + i as u64 * 1_000) };
        let outcome = apply(&mut state, command, ctx);
        assert!(outcome.is_done(), "{command:?}: {outcome:?}");
    }
    state
}

/// What `StateMachine` persists for a snapshot at `snapshot_meta()` of `book()`.
fn snapshot_file() -> SnapshotFile {
    SnapshotFile { index: 7, meta: postcard_encode(&snapshot_meta()), data: book().encode_snapshot() }
}

#[test]
fn a_snapshot_file_encodes_to_its_fixture_and_the_fixture_loads_into_the_state_machine() {
    let mut golden = Golden::new(env!("CARGO_MANIFEST_DIR"), env!("CARGO_PKG_NAME"), SNAPSHOT_FILE);
    let name = Path::new("snap-00000000000000000007.pds");
    golden.check(
        "snap_7_ledger4",
        "a snapshot file (meta: SnapshotMetaRecord, data: the ledger snapshot)",
        &snapshot_file(),
        SnapshotFiles::encode,
        |bytes| SnapshotFiles::decode(name, bytes).map_err(|e| e.to_string()),
    );
    // Every fixture loads: `snap_7_ledger3` holds the same book as a version-3 ledger snapshot
    // (before incidents existed) and `snap_7` as a version-2 one (before principals), which
    // read as that book with no incidents and an empty registry, so the same hash.
    for fixture_name in ["snap_7_ledger4", "snap_7_ledger3", "snap_7"] {
        let Some(fixture) = golden.bytes(fixture_name) else { continue };
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join(name), &fixture).expect("write the fixture as a snapshot file");
        let machine = StateMachine::open(dir.path()).expect("the fixture snapshot loads");
        let (hash, last_applied, voters) = machine.read(|d| {
            let voters: Vec<u64> = d.membership.membership().voter_ids().collect();
            (d.state.state_hash(), d.last_applied.map(|l| l.index), voters)
        });
        assert_eq!(hash, book().state_hash(), "{fixture_name}: the loaded book is the rebuilt one");
        assert_eq!(last_applied, Some(7));
        assert_eq!(voters, vec![1, 2, 3]);
        assert_eq!(machine.applied_index(), 7);
    }
    golden.finish();
}
