//! The peer protocol cannot drift: golden bytes of every `ForwardOp` and `ForwardReply`
//! variant, of every `WriteError` and of `Written` (postcard payloads), and of the protobuf
//! `Frame` that carries them (`tests/fixtures/peer/`); the postcard tags of those enums and the
//! `Rpc` wire tags are pinned, and each `Rpc` is a method of the `paddock.peer.v1.Peer` service.
//!
//! Why it matters: during a rolling upgrade nodes of two builds talk to each other; a follower
//! of the new build forwards writes to a leader of the old one and relays its answer. The peer
//! protocol's version is its protobuf package, `paddock.peer.v1`. See `tests/golden/mod.rs`.

use paddock_golden as golden;

use golden::{check_tags, postcard_decode, postcard_encode, variant_of, Format, Golden};
use paddock_consensus::proto::Frame;
use paddock_consensus::transport::{self, Rpc};
use paddock_consensus::{ForwardOp, ForwardReply, WriteError, Written};
use paddock_ledger::{
    AccountId, BetId, BetKind, Command, Done, IdempotencyKey, LegRequest, MarketId, Money, Odds, OddsPolicy, Outcome,
    PlaceBet, SelectionId, TimestampMs,
};
use prost::Message;

const PEER: Format = Format {
    dir: "peer",
    version: 1,
    bump: "the peer protocol version (the protobuf package paddock.peer.v1 in crates/consensus/proto/peer.proto)",
};

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
        key: IdempotencyKey("bet-5c0ffee0".to_string()),
    })
}

fn accepted() -> Outcome {
    Outcome::Done(Done::BetAccepted {
        bet: BetId(42),
        odds: vec![odds(31, 10)],
        stake: Money(1_000),
        balance: Money(9_000),
    })
}

/// One operation of every variant, in declaration order.
fn forward_ops() -> Vec<(&'static str, ForwardOp)> {
    vec![
        ("forward_op_write", ForwardOp::Write(place_bet())),
        ("forward_op_add_learner", ForwardOp::AddLearner { id: 4, addr: "10.0.0.4:7001".to_string() }),
        ("forward_op_promote", ForwardOp::Promote { id: 4 }),
        ("forward_op_remove", ForwardOp::Remove { id: 2 }),
        ("forward_op_transfer_leader", ForwardOp::TransferLeader { to: 3 }),
        ("forward_op_membership", ForwardOp::Membership),
        ("forward_op_clock_sample", ForwardOp::ClockSample),
        ("forward_op_demote", ForwardOp::Demote { id: 4 }),
        ("forward_op_archive_segment", ForwardOp::ArchiveSegment { index: 120_431 }),
        ("forward_op_disk_health", ForwardOp::DiskHealth),
    ]
}

/// One reply of every variant (and both shapes of a leader hint), in declaration order.
fn forward_replies() -> Vec<(&'static str, ForwardReply)> {
    vec![
        ("forward_reply_written", written_reply(false)),
        ("forward_reply_done", ForwardReply::Done),
        ("forward_reply_not_leader_hint", ForwardReply::NotLeader { leader: Some(2) }),
        ("forward_reply_not_leader_unknown", ForwardReply::NotLeader { leader: None }),
        (
            "forward_reply_failed",
            ForwardReply::Failed(WriteError::Refused("node 9 is not a learner of this cluster".to_string())),
        ),
        ("forward_reply_membership", ForwardReply::Membership { voters: vec![1, 2, 3], replicated: vec![2, 3] }),
        ("forward_reply_clock", ForwardReply::Clock { now: TimestampMs(1_700_000_000_123) }),
        ("forward_reply_archive_segment", ForwardReply::ArchiveSegment(Some(b"PDKARCH\0...".to_vec()))),
        ("forward_reply_disk_health", ForwardReply::DiskHealth { commit_recent_us: 2_750 }),
    ]
}

/// A forwarded write's answer, first try or replay.
fn written_reply(replayed: bool) -> ForwardReply {
    ForwardReply::Written { outcome: accepted(), log_index: 1042, replayed }
}

fn encode_answer(reply: &ForwardReply) -> Vec<u8> {
    transport::encode_forward_reply(reply)
}

fn decode_answer(bytes: &[u8]) -> Result<ForwardReply, String> {
    transport::decode_forward_reply(bytes).map_err(|e| e.to_string())
}

/// Every write error, in declaration order.
fn write_errors() -> Vec<(&'static str, WriteError)> {
    vec![
        ("write_error_no_leader", WriteError::NoLeader),
        ("write_error_unknown", WriteError::Unknown("no answer within 5s".to_string())),
        ("write_error_stopped", WriteError::Stopped("raft log is poisoned by an earlier write error".to_string())),
        ("write_error_refused", WriteError::Refused("node 4 is already a voter".to_string())),
        (
            "write_error_clock_unsynchronized",
            WriteError::ClockUnsynchronized("this node's clock is 3600000 ms ahead of 2 of 3 voters".to_string()),
        ),
        (
            "write_error_format_not_active",
            WriteError::FormatNotActive(
                "this command needs log entry format 2, and member 3 read only format 1".into(),
            ),
        ),
    ]
}

#[test]
fn every_forward_op_and_reply_variant_encodes_to_its_fixture_and_decodes_from_it() {
    let mut golden = Golden::new(env!("CARGO_MANIFEST_DIR"), env!("CARGO_PKG_NAME"), PEER);
    for (name, op) in forward_ops() {
        let label = format!("ForwardOp::{}", variant_of(&op));
        golden.check_debug(name, &label, &op, postcard_encode, postcard_decode::<ForwardOp>);
    }
    for (name, reply) in forward_replies() {
        let label = format!("ForwardReply::{}", variant_of(&reply));
        golden.check_debug(name, &label, &reply, postcard_encode, postcard_decode::<ForwardReply>);
    }
    for (name, error) in write_errors() {
        let label = format!("WriteError::{}", variant_of(&error));
        golden.check(name, &label, &error, postcard_encode, postcard_decode::<WriteError>);
    }
    // What the Forward RPC carries: the reply and, after a write's answer, its flags byte.
    for (name, replayed) in [("forward_answer_written", false), ("forward_answer_written_replayed", true)] {
        golden.check_debug(
            name,
            "a Forward answer with its flags",
            &written_reply(replayed),
            encode_answer,
            decode_answer,
        );
    }
    let written = Written { outcome: accepted(), log_index: 1042, replayed: false };
    golden.check("written", "Written", &written, postcard_encode, postcard_decode::<Written>);
    // The `ClientWrite` answer is a `Result`: serde's Ok = 0, Err = 1 around the two above.
    let answer: Result<Written, WriteError> = Ok(written);
    golden.check("client_write_ok", "Result<Written, WriteError>", &answer, postcard_encode, postcard_decode);
    let answer: Result<Written, WriteError> = Err(WriteError::NoLeader);
    golden.check("client_write_err", "Result<Written, WriteError>", &answer, postcard_encode, postcard_decode);
    // The protobuf envelope of every peer message, here around a forwarded write.
    let frame =
        Frame { cluster_id: "paddock-prod".to_string(), payload: postcard_encode(&ForwardOp::Write(place_bet())) };
    golden.check(
        "frame_forward_write",
        "the protobuf Frame",
        &frame,
        |f| f.encode_to_vec(),
        |bytes| Frame::decode(bytes).map_err(|e| e.to_string()),
    );
    golden.finish();
}

#[test]
fn a_replayed_answer_reads_as_written_on_an_older_build_and_an_older_answer_is_not_a_replay() {
    let replayed = encode_answer(&written_reply(true));
    // An older build decodes with plain postcard, which ignores the trailing flags byte.
    let on_older: ForwardReply = postcard::from_bytes(&replayed).expect("an older build reads the answer");
    assert_eq!(format!("{on_older:?}"), format!("{:?}", written_reply(false)), "the same answer, the flag dropped");
    // An older build's answer has no flags byte: a newer build reads it as a first answer.
    let from_older = postcard_encode(&written_reply(true));
    let read = decode_answer(&from_older).expect("a newer build reads an older answer");
    assert_eq!(format!("{read:?}"), format!("{:?}", written_reply(false)));
    // And the flag survives between two newer builds.
    let read = decode_answer(&replayed).expect("decodes");
    assert!(matches!(read, ForwardReply::Written { replayed: true, .. }), "{read:?}");
}

#[test]
fn an_append_answer_is_the_answer_plus_a_trailer_of_flags_format_version_and_start_that_older_leaders_ignore() {
    use openraft::raft::AppendEntriesResponse;
    use paddock_consensus::formats::{Announced, BUILD_VERSION};
    type Answer = AppendEntriesResponse<paddock_consensus::types::TypeConfig>;
    let started_ms = 1_796_412_163_870u64;
    let me = Announced::this_build(started_ms);
    let plain = transport::encode_append_answer(&Answer::Conflict, false, &me);
    let repairing = transport::encode_append_answer(&Answer::Conflict, true, &me);
    let trailer = |flags: u8| {
        [
            vec![flags, paddock_ledger::ENTRY_FORMAT, BUILD_VERSION.len() as u8],
            BUILD_VERSION.as_bytes().to_vec(),
            started_ms.to_le_bytes().to_vec(),
        ]
        .concat()
    };
    assert_eq!(plain, [postcard_encode(&Answer::Conflict), trailer(0)].concat());
    assert_eq!(repairing, [postcard_encode(&Answer::Conflict), trailer(transport::FLAG_REPAIRING)].concat());
    // An older leader decodes with plain postcard, which ignores the trailer, and reads the
    // flags byte first, as it always has.
    let on_older: Answer = postcard::from_bytes(&repairing).expect("an older leader reads the answer");
    assert_eq!(on_older, Answer::Conflict);
    assert_eq!((me.format, me.version.as_str()), (paddock_ledger::ENTRY_FORMAT, BUILD_VERSION));
    let me = Some(me);
    assert_eq!(transport::decode_append_answer(&repairing).unwrap(), (Answer::Conflict, true, me.clone()));
    assert_eq!(transport::decode_append_answer(&plain).unwrap(), (Answer::Conflict, false, me));
    // An older follower's answers: nothing after the answer, or the repairing flag alone. It
    // announced no format, and the leader counts it as reading the first.
    let older = postcard_encode(&Answer::Conflict);
    assert_eq!(transport::decode_append_answer(&older).unwrap(), (Answer::Conflict, false, None));
    let older_repairing = [older, vec![transport::FLAG_REPAIRING]].concat();
    assert_eq!(transport::decode_append_answer(&older_repairing).unwrap(), (Answer::Conflict, true, None));
    // A trailer cut short announces nothing.
    let cut = &plain[..plain.len() - 3];
    assert_eq!(transport::decode_append_answer(cut).unwrap(), (Answer::Conflict, false, None));
}

#[test]
fn forward_op_tags_are_pinned_so_a_variant_can_only_be_added_at_the_end() {
    let pinned = [
        ("Write", 0),
        ("AddLearner", 1),
        ("Promote", 2),
        ("Remove", 3),
        ("TransferLeader", 4),
        ("Membership", 5),
        ("ClockSample", 6),
        ("Demote", 7),
        ("ArchiveSegment", 8),
        ("DiskHealth", 9),
    ];
    let samples: Vec<ForwardOp> = forward_ops().into_iter().map(|(_, op)| op).collect();
    check_tags("ForwardOp", PEER.bump, &pinned, &samples);
}

#[test]
fn forward_reply_tags_are_pinned_so_a_variant_can_only_be_added_at_the_end() {
    let pinned = [
        ("Written", 0),
        ("Done", 1),
        ("NotLeader", 2),
        ("Failed", 3),
        ("Membership", 4),
        ("Clock", 5),
        ("ArchiveSegment", 6),
        ("DiskHealth", 7),
    ];
    let samples: Vec<ForwardReply> = forward_replies().into_iter().map(|(_, reply)| reply).collect();
    check_tags("ForwardReply", PEER.bump, &pinned, &samples);
}

#[test]
fn write_error_tags_are_pinned_so_a_variant_can_only_be_added_at_the_end() {
    let pinned = [
        ("NoLeader", 0),
        ("Unknown", 1),
        ("Stopped", 2),
        ("Refused", 3),
        ("ClockUnsynchronized", 4),
        ("FormatNotActive", 5),
    ];
    let samples: Vec<WriteError> = write_errors().into_iter().map(|(_, e)| e).collect();
    check_tags("WriteError", PEER.bump, &pinned, &samples);
}

/// Every RPC: its wire tag (the simulator's transport sends it as one byte) and its gRPC method.
const RPCS: &[(Rpc, u8, &str)] = &[
    (Rpc::AppendEntries, 0, "AppendEntries"),
    (Rpc::Vote, 1, "Vote"),
    (Rpc::InstallSnapshot, 2, "InstallSnapshot"),
    (Rpc::TransferLeader, 3, "TransferLeader"),
    (Rpc::Forward, 4, "Forward"),
    (Rpc::ReadIndex, 5, "ReadIndex"),
    (Rpc::ClientWrite, 6, "ClientWrite"),
    (Rpc::ClientRead, 7, "ClientRead"),
    (Rpc::SnapshotChunk, 8, "SnapshotChunk"),
    (Rpc::SnapshotInstall, 9, "SnapshotInstall"),
    (Rpc::PreVote, 10, "PreVote"),
];

#[test]
fn rpc_wire_tags_are_pinned_and_every_tag_reads_back() {
    let mut failures = Vec::new();
    for &(rpc, tag, _) in RPCS {
        if rpc.tag() != tag {
            failures.push(format!(
                "Rpc::{rpc:?} has wire tag {}, pinned at {tag}: a variant was inserted before it or the variants \
                 were reordered; new RPCs go at the end only (else bump {})",
                rpc.tag(),
                PEER.bump
            ));
        }
        if Rpc::from_tag(tag) != Some(rpc) {
            failures.push(format!("Rpc::from_tag({tag}) is {:?}, not Rpc::{rpc:?}", Rpc::from_tag(tag)));
        }
    }
    if Rpc::from_tag(RPCS.len() as u8).is_some() {
        failures.push(format!("tag {} reads as an RPC: pin it in RPCS", RPCS.len()));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    let pinned: Vec<(&str, u32)> = RPCS.iter().map(|&(_, tag, name)| (name, u32::from(tag))).collect();
    let samples: Vec<Rpc> = RPCS.iter().map(|&(rpc, _, _)| rpc).collect();
    check_tags("Rpc", PEER.bump, &pinned, &samples);
}

#[test]
fn every_rpc_is_a_method_of_the_paddock_peer_v1_service_taking_and_returning_a_frame() {
    assert_eq!(paddock_consensus::proto::peer_server::SERVICE_NAME, "paddock.peer.v1.Peer");
    let proto = include_str!("../proto/peer.proto");
    assert!(proto.contains("package paddock.peer.v1;"), "the protocol version is the package name");
    assert!(proto.contains("message Frame {\n  string cluster_id = 1;\n  bytes payload = 2;\n}"), "Frame's fields");
    let methods: Vec<&str> = proto
        .lines()
        .filter_map(|l| l.trim().strip_prefix("rpc "))
        .map(|l| l.split('(').next().unwrap_or(""))
        .collect();
    let expected: Vec<&str> = RPCS.iter().map(|&(_, _, name)| name).collect();
    assert_eq!(methods, expected, "one gRPC method per Rpc, same names");
    for name in expected {
        assert!(proto.contains(&format!("rpc {name}(Frame) returns (Frame);")), "{name} takes and returns a Frame");
    }
}
