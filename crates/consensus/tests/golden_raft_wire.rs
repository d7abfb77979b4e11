//! The Raft RPC payloads cannot drift unnoticed: golden bytes of the postcard payload of each
//! `Rpc`'s request and answer that openraft's own serde types make (append entries with every
//! payload kind, vote, install snapshot whole and in chunks, transfer leader) and of the small read RPCs
//! (`tests/fixtures/raft_wire/`); the tags of openraft's enums on the wire are pinned.
//!
//! Why it matters: on disk openraft's types are converted to our records first, but on the
//! wire they travel as openraft serializes them. An openraft upgrade that changes one would
//! split a cluster of mixed builds during a rolling upgrade; this is where it shows. The
//! remedy is to send our own records for that RPC, or bump the peer protocol.

use paddock_golden as golden;

use golden::{check_tags, check_tags_by, postcard_decode, postcard_encode, Format, Golden};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderError, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use openraft::EntryPayload;
use paddock_consensus::records::{
    EntryRecord, LogIdRecord, MembershipRecord, PayloadRecord, SnapshotMetaRecord, StoredMembershipRecord, VoteRecord,
};
use paddock_consensus::transport::{SnapshotChunk, SnapshotInstall};
use paddock_consensus::types::{Entry, LogId, Request, SnapshotMeta, TypeConfig, Vote};
use paddock_ledger::{
    AccountId, AccountView, BetKind, Command, Currency, IdempotencyKey, LegRequest, MarketId, Money, Odds, OddsPolicy,
    PlaceBet, SelectionId, TimestampMs,
};
use std::collections::BTreeSet;

const RAFT_WIRE: Format = Format {
    dir: "raft_wire",
    version: 1,
    bump: "the peer protocol version (the protobuf package paddock.peer.v1 in crates/consensus/proto/peer.proto); \
           these are openraft's serde types: an openraft upgrade that changes them must convert to records of ours \
           for the wire, as records.rs does for the disk",
};

fn log_id(term: u64, node: u64, index: u64) -> LogId {
    LogIdRecord { term, node, index }.into()
}

fn vote(term: u64, node: u64, committed: bool) -> Vote {
    VoteRecord { term, node, committed }.into()
}

fn membership() -> MembershipRecord {
    MembershipRecord {
        configs: vec![BTreeSet::from([1, 2, 3])],
        nodes: (1..=3).map(|n| (n, format!("10.0.0.{n}:7001"))).collect(),
    }
}

fn place_bet() -> Command {
    Command::PlaceBet(PlaceBet {
        account: AccountId(1001),
        legs: vec![LegRequest {
            market: MarketId(501),
            selection: SelectionId(5011),
            odds: Odds::new(31, 10).expect("a price"),
        }],
        kind: BetKind::Single,
        stake_per_line: Money(1_000),
        each_way: false,
        odds_policy: OddsPolicy::Exact,
        key: IdempotencyKey("bet-5c0ffee0".to_string()),
    })
}

/// A blank, a command and a membership entry, as openraft holds them.
fn entries() -> Vec<Entry> {
    let records = [
        EntryRecord { log_id: LogIdRecord { term: 3, node: 1, index: 1041 }, payload: PayloadRecord::Blank },
        EntryRecord {
            log_id: LogIdRecord { term: 3, node: 1, index: 1042 },
            payload: PayloadRecord::Normal(Request { time: TimestampMs(1_700_000_000_123), command: place_bet() }),
        },
        EntryRecord {
            log_id: LogIdRecord { term: 3, node: 1, index: 1043 },
            payload: PayloadRecord::Membership(membership()),
        },
    ];
    records.into_iter().map(|r| r.into_entry().expect("valid entry")).collect()
}

fn snapshot_meta() -> SnapshotMeta {
    SnapshotMetaRecord {
        last_log_id: Some(LogIdRecord { term: 1, node: 1, index: 7 }),
        membership: StoredMembershipRecord {
            log_id: Some(LogIdRecord { term: 1, node: 1, index: 2 }),
            membership: membership(),
        },
    }
    .into_meta()
    .expect("valid metadata")
}

fn append_entries_responses() -> Vec<(&'static str, AppendEntriesResponse<TypeConfig>)> {
    vec![
        ("append_entries_response_success", AppendEntriesResponse::Success),
        ("append_entries_response_partial_success", AppendEntriesResponse::PartialSuccess(Some(log_id(3, 1, 1042)))),
        ("append_entries_response_conflict", AppendEntriesResponse::Conflict),
        ("append_entries_response_higher_vote", AppendEntriesResponse::HigherVote(vote(4, 2, false))),
    ]
}

#[test]
fn every_raft_rpc_payload_encodes_to_its_fixture_and_decodes_from_it() {
    let mut golden = Golden::new(env!("CARGO_MANIFEST_DIR"), env!("CARGO_PKG_NAME"), RAFT_WIRE);

    let append = AppendEntriesRequest::<TypeConfig> {
        vote: vote(3, 1, true),
        prev_log_id: Some(log_id(3, 1, 1040)),
        entries: entries(),
        leader_commit: Some(log_id(3, 1, 1040)),
    };
    golden.check_debug(
        "append_entries_request",
        "AppendEntriesRequest (openraft)",
        &append,
        postcard_encode,
        postcard_decode::<AppendEntriesRequest<TypeConfig>>,
    );
    for (name, response) in append_entries_responses() {
        let label = format!("{response:?} (openraft AppendEntriesResponse)");
        golden.check(name, &label, &response, postcard_encode, postcard_decode::<AppendEntriesResponse<TypeConfig>>);
    }

    let request = VoteRequest::<TypeConfig>::new(vote(4, 2, false), Some(log_id(3, 1, 1043)));
    golden.check("vote_request", "VoteRequest (openraft)", &request, postcard_encode, postcard_decode);
    let response = VoteResponse::<TypeConfig>::new(vote(4, 2, false), Some(log_id(3, 1, 1043)), true);
    golden.check("vote_response", "VoteResponse (openraft)", &response, postcard_encode, postcard_decode);

    // InstallSnapshot sends the leader's vote, the snapshot's metadata and the ledger snapshot.
    let install: (Vote, SnapshotMeta, Vec<u8>) = (vote(3, 1, true), snapshot_meta(), b"ledger snapshot".to_vec());
    golden.check(
        "install_snapshot_request",
        "(Vote, SnapshotMeta, data) (openraft)",
        &install,
        postcard_encode,
        postcard_decode::<(Vote, SnapshotMeta, Vec<u8>)>,
    );
    let response = SnapshotResponse::<TypeConfig>::new(vote(3, 1, true));
    golden.check(
        "install_snapshot_response",
        "SnapshotResponse (openraft)",
        &response,
        postcard_encode,
        postcard_decode,
    );
    // A chunked transfer: SnapshotChunk pieces, then SnapshotInstall (answered with the
    // SnapshotResponse above; each chunk with the unit value, no bytes).
    let chunk = SnapshotChunk {
        last_log_id: Some(log_id(1, 1, 7)),
        offset: 4096,
        total_bytes: 8192,
        data: b"ledger snapshot".to_vec(),
    };
    golden.check("snapshot_chunk_request", "SnapshotChunk", &chunk, postcard_encode, postcard_decode::<SnapshotChunk>);
    let install =
        SnapshotInstall { vote: vote(3, 1, true), meta: snapshot_meta(), total_bytes: 8192, crc32c: 0x1234_5678 };
    golden.check(
        "snapshot_install_request",
        "SnapshotInstall",
        &install,
        postcard_encode,
        postcard_decode::<SnapshotInstall>,
    );
    golden.check("snapshot_chunk_response", "() (the chunk's answer)", &(), postcard_encode, postcard_decode::<()>);

    let request = TransferLeaderRequest::<TypeConfig>::new(vote(3, 1, true), 3, Some(log_id(3, 1, 1043)));
    golden.check(
        "transfer_leader_request",
        "TransferLeaderRequest (openraft)",
        &request,
        postcard_encode,
        postcard_decode,
    );
    let accepted: TransferLeaderResponse<TypeConfig> = Ok(());
    golden.check(
        "transfer_leader_response_ok",
        "TransferLeaderResponse (openraft)",
        &accepted,
        postcard_encode,
        postcard_decode::<TransferLeaderResponse<TypeConfig>>,
    );
    let refused: TransferLeaderResponse<TypeConfig> = Err(TransferLeaderError::LogNotFlushed {
        expected: Some(log_id(3, 1, 1043)),
        actual: Some(log_id(3, 1, 1040)),
    });
    golden.check(
        "transfer_leader_response_refused",
        "TransferLeaderResponse (openraft)",
        &refused,
        postcard_encode,
        postcard_decode::<TransferLeaderResponse<TypeConfig>>,
    );

    // ReadIndex: `()` asks, the leader's read index or why not answers.
    let read_index: Result<u64, String> = Ok(1043);
    golden.check("read_index_response_ok", "Result<u64, String>", &read_index, postcard_encode, postcard_decode);
    let read_index: Result<u64, String> = Err("not the leader".to_string());
    golden.check("read_index_response_err", "Result<u64, String>", &read_index, postcard_encode, postcard_decode);

    // ClientRead (the simulator's clients): an account id asks, the applied index and the
    // account answer.
    golden.check("client_read_request", "AccountId", &AccountId(1001), postcard_encode, postcard_decode);
    let account = AccountView {
        account: AccountId(1001),
        currency: Currency::parse("GBP").expect("GBP"),
        balance: Money(9_000),
        exposure: Money(1_000),
        debt: Money(0),
        excluded_until: None,
    };
    let read: Result<(u64, Option<AccountView>), String> = Ok((1043, Some(account)));
    golden.check(
        "client_read_response",
        "Result<(u64, Option<AccountView>), String>",
        &read,
        postcard_encode,
        postcard_decode::<Result<(u64, Option<AccountView>), String>>,
    );
    golden.finish();
}

#[test]
fn openraft_wire_enum_tags_are_pinned() {
    let samples: Vec<AppendEntriesResponse<TypeConfig>> =
        append_entries_responses().into_iter().map(|(_, response)| response).collect();
    check_tags(
        "AppendEntriesResponse",
        RAFT_WIRE.bump,
        &[("Success", 0), ("PartialSuccess", 1), ("Conflict", 2), ("HigherVote", 3)],
        &samples,
    );
    check_tags(
        "TransferLeaderError",
        RAFT_WIRE.bump,
        &[("VoteChanged", 0), ("LogNotFlushed", 1)],
        &[
            TransferLeaderError::<TypeConfig>::VoteChanged { expected: vote(3, 1, true), actual: vote(4, 2, false) },
            TransferLeaderError::<TypeConfig>::LogNotFlushed { expected: None, actual: None },
        ],
    );
    // openraft's `Debug` of a payload is lower-case ("blank", "normal:..."): name them here.
    let payloads: Vec<_> = entries().into_iter().map(|e| e.payload).collect();
    check_tags_by(
        "EntryPayload",
        RAFT_WIRE.bump,
        &[("Blank", 0), ("Normal", 1), ("Membership", 2)],
        &payloads,
        |payload| match payload {
            EntryPayload::Blank => "Blank".to_string(),
            EntryPayload::Normal(_) => "Normal".to_string(),
            EntryPayload::Membership(_) => "Membership".to_string(),
        },
    );
}
