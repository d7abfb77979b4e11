//! Settled history leaves the hot state (`Command::ArchiveSettled`), and only settled history:
//! markets resulted before the cut-off go with their bets and emptied events into an archive
//! segment whose digest the audit trail records; money, open business and anything a multiple
//! still ties to a live market stay. The segment's file format has a golden fixture.

mod support;

use paddock_golden::{Format, Golden};
use paddock_ledger::archive::{ArchiveError, ArchiveSegment, ARCHIVE_FORMAT_VERSION, ARCHIVE_MARKETS_MAX};
use paddock_ledger::audit::AuditEvent;
use paddock_ledger::{
    AccountId, Actor, BetId, Command, Done, EventId, MarketId, Money, Outcome, ResultCode, TimestampMs,
};
use support::*;

const ARCHIVE: Format = Format {
    dir: "archive",
    version: ARCHIVE_FORMAT_VERSION as u32,
    bump: "ARCHIVE_FORMAT_VERSION (crates/ledger/src/archive.rs); if only the rebuilt segment differs, archiving \
           the fixed book changed behaviour, and replicas of two builds would record different digests",
};

const HOUR_MS: u64 = 3_600_000;

fn archive(book: &mut Book, before: TimestampMs, markets_max: u32) -> Outcome {
    let key = book.key();
    book.run(Command::ArchiveSettled { before, markets_max, actor: Actor("node-1".to_string()), key })
}

fn close_and_settle(book: &mut Book, market: u64, winner: u64) {
    let key = book.key();
    book.ok(Command::CloseMarket { market: MarketId(market), actor: trader(), key });
    assert!(book.settle(market, &[res(winner, paddock_ledger::LegResult::Win)]).is_done());
}

/// Two accounts; market 10 (event 10) settled an hour in, market 20 (event 20) settled two
/// hours in, market 30 (event 30) still open. Account 1 has a single on each of 10 and 20 and
/// one on 30; account 2 a single on 10.
fn book_with_history() -> (Book, [BetId; 4]) {
    let mut book = Book::new();
    book.open_funded(1, 100_000);
    book.open_funded(2, 100_000);
    book.market(10, &[(101, "2/1"), (102, "3/1")]);
    book.market(20, &[(201, "2/1"), (202, "3/1")]);
    book.market(30, &[(301, "2/1"), (302, "3/1")]);
    let on_10 = book.single(1, 101, 1_000);
    let on_10_b = book.single(2, 102, 500);
    let on_20 = book.single(1, 202, 1_000);
    let on_30 = book.single(1, 301, 1_000);
    book.set_time(TimestampMs(T0_MS + HOUR_MS));
    close_and_settle(&mut book, 10, 101);
    book.set_time(TimestampMs(T0_MS + 2 * HOUR_MS));
    close_and_settle(&mut book, 20, 201);
    book.set_time(TimestampMs(T0_MS + 10 * HOUR_MS));
    (book, [on_10, on_10_b, on_20, on_30])
}

#[test]
fn a_market_settled_before_the_cut_off_leaves_with_its_bets_and_event_and_no_money_moves() {
    let (mut book, [on_10, on_10_b, on_20, on_30]) = book_with_history();
    let balances_before = book.state.book_balances();
    let segment = book.state.archive_segment(TimestampMs(T0_MS + 90 * 60_000), 100, 99);
    assert_eq!(archive(&mut book, TimestampMs(T0_MS + 90 * 60_000), 100), Outcome::Done(Done::Ok));

    assert!(book.state.market(MarketId(10)).is_none(), "market 10 was settled at 1 h, before the 1.5 h cut-off");
    assert!(book.state.event(EventId(10)).is_none(), "its event had no other market");
    assert!(book.state.bet(on_10).is_none() && book.state.bet(on_10_b).is_none());
    assert!(book.state.market(MarketId(20)).is_some(), "market 20 was settled at 2 h, after the cut-off");
    assert!(book.state.bet(on_20).is_some() && book.state.bet(on_30).is_some());
    let listed: Vec<BetId> = book.state.bets_of(AccountId(1)).iter().map(|b| b.bet).collect();
    assert_eq!(listed, vec![on_20, on_30], "the account's own list no longer holds the archived bet");
    assert!(book.state.bets_of(AccountId(2)).is_empty());
    assert_eq!(book.state.book_balances(), balances_before, "archiving moves no money");

    let segment = ArchiveSegment { log_index: book.state.audit().records().last().unwrap().log_index, ..segment };
    let ids: Vec<BetId> = segment.bets.iter().map(|b| b.bet).collect();
    assert_eq!(ids, vec![on_10, on_10_b], "the segment holds exactly what left");
    assert_eq!(segment.markets.len(), 1);
    assert_eq!(segment.markets[0].1, TimestampMs(T0_MS + HOUR_MS + 1), "with the time of its result");
    assert_eq!(segment.events.len(), 1);
    let last = book.state.audit().records().last().expect("an audit record");
    let AuditEvent::HistoryArchived { markets, bets, digest, .. } = last.event else {
        panic!("the audit trail records the archive, not {:?}", last.event)
    };
    assert_eq!((markets, bets), (1, 2));
    let rebuilt = segment.digest();
    assert_eq!(digest, rebuilt, "the recorded digest is the segment's SHA-256");
    assert_eq!(book.state.archive_segments().len(), 1);
    assert_eq!(book.state.archive_segments()[0].digest, rebuilt);
}

#[test]
fn nothing_old_enough_changes_nothing_and_records_nothing() {
    let (mut book, _) = book_with_history();
    let audit_len = book.state.audit().records().len();
    let (bets, markets) = (book.state.bet_count(), book.state.market_ids());
    assert_eq!(archive(&mut book, TimestampMs(T0_MS + 30 * 60_000), 100), Outcome::Done(Done::Ok));
    assert_eq!((book.state.bet_count(), book.state.market_ids()), (bets, markets));
    assert_eq!(book.state.audit().records().len(), audit_len);
    assert_eq!(book.state.archive_share_size(TimestampMs(T0_MS + 30 * 60_000), 100).0, 0);
}

#[test]
fn open_business_never_leaves_however_late_the_cut_off() {
    let (mut book, [_, _, _, on_30]) = book_with_history();
    assert_eq!(book.state.archive_share_size(TimestampMs(u64::MAX), 100).0, 2);
    archive(&mut book, TimestampMs(u64::MAX), 100);
    assert!(book.state.market(MarketId(30)).is_some() && book.state.bet(on_30).is_some());
    assert_eq!(book.state.account(AccountId(1)).expect("account 1").exposure, Money(1_000));
    assert_eq!(book.state.archive_segments()[0].markets, 2);
}

#[test]
fn a_multiple_with_a_leg_on_a_live_market_keeps_its_settled_markets_until_that_one_is_old_enough() {
    let mut book = Book::new();
    book.open_funded(1, 100_000);
    book.market(10, &[(101, "2/1"), (102, "3/1")]);
    book.market(20, &[(201, "2/1"), (202, "3/1")]);
    let double = book.accumulator(1, &[101, 201], 100);
    book.set_time(TimestampMs(T0_MS + HOUR_MS));
    close_and_settle(&mut book, 10, 101);
    book.set_time(TimestampMs(T0_MS + 10 * HOUR_MS));
    assert_eq!(book.state.archive_share_size(TimestampMs(T0_MS + 5 * HOUR_MS), 100).0, 0, "market 20 is still open");
    archive(&mut book, TimestampMs(T0_MS + 5 * HOUR_MS), 100);
    assert!(book.state.market(MarketId(10)).is_some() && book.state.bet(double).is_some());

    close_and_settle(&mut book, 20, 201);
    book.set_time(TimestampMs(T0_MS + 20 * HOUR_MS));
    archive(&mut book, TimestampMs(T0_MS + 5 * HOUR_MS), 100);
    assert!(book.state.market(MarketId(10)).is_some(), "market 20's result is after the cut-off: both stay");
    archive(&mut book, TimestampMs(T0_MS + 15 * HOUR_MS), 1);
    assert!(
        book.state.market(MarketId(10)).is_none() && book.state.market(MarketId(20)).is_none(),
        "a share of one market still takes both markets the double ties together"
    );
    assert!(book.state.bet(double).is_none());
}

#[test]
fn markets_max_bounds_one_command_and_the_next_command_takes_the_rest() {
    let (mut book, _) = book_with_history();
    assert_eq!(book.state.archive_share_size(TimestampMs(u64::MAX), 1), (1, 2), "market 10 and its two bets");
    assert_eq!(book.state.archive_share_size(TimestampMs(u64::MAX), 100), (2, 3));
    archive(&mut book, TimestampMs(u64::MAX), 1);
    assert!(book.state.market(MarketId(10)).is_none() && book.state.market(MarketId(20)).is_some());
    archive(&mut book, TimestampMs(u64::MAX), 1);
    assert!(book.state.market(MarketId(20)).is_none());
    assert_eq!(book.state.archive_segments().len(), 2);
}

#[test]
fn an_archived_market_cannot_be_resettled_nor_its_bets_cashed_out() {
    let (mut book, [on_10, ..]) = book_with_history();
    archive(&mut book, TimestampMs(u64::MAX), 100);
    let key = book.key();
    book.refuse(
        Command::ResettleMarket {
            market: MarketId(10),
            results: vec![res(102, paddock_ledger::LegResult::Win)],
            reason: "wrong result".to_string(),
            actor: settler(),
            key,
        },
        ResultCode::MarketNotFound,
    );
    let key = book.key();
    book.refuse(
        Command::CashOut { account: AccountId(1), bet: on_10, value: Money(1), quoted_versions: vec![], key },
        ResultCode::BetNotFound,
    );
}

#[test]
fn a_share_of_none_or_above_the_maximum_is_refused_and_changes_nothing() {
    let (mut book, _) = book_with_history();
    for markets_max in [0, ARCHIVE_MARKETS_MAX + 1] {
        let key = book.key();
        let cmd = Command::ArchiveSettled {
            before: TimestampMs(u64::MAX),
            markets_max,
            actor: Actor("node-1".to_string()),
            key,
        };
        book.refuse(cmd, ResultCode::ConfigInvalid);
    }
}

#[test]
fn a_segment_file_has_a_golden_fixture_and_damage_is_named_not_misread() {
    let (mut book, _) = book_with_history();
    let segment = book.state.archive_segment(TimestampMs(u64::MAX), 100, 42);
    archive(&mut book, TimestampMs(u64::MAX), 100);
    let mut golden = Golden::new(env!("CARGO_MANIFEST_DIR"), env!("CARGO_PKG_NAME"), ARCHIVE);
    golden.check("segment", "an archive segment (ArchiveSegment::encode)", &segment, ArchiveSegment::encode, |b| {
        ArchiveSegment::decode(b).map_err(|e| e.to_string())
    });
    golden.finish();

    let bytes = segment.encode();
    assert_eq!(&bytes[..8], b"PDKARCH\0");
    let mut flipped = bytes.clone();
    flipped[40] ^= 0x01;
    assert!(matches!(ArchiveSegment::decode(&flipped), Err(ArchiveError::Checksum)));
    assert!(matches!(ArchiveSegment::decode(&bytes[..bytes.len() - 1]), Err(ArchiveError::Truncated(_))));
    let mut foreign = bytes.clone();
    foreign[0] = b'X';
    assert!(matches!(ArchiveSegment::decode(&foreign), Err(ArchiveError::BadMagic)));
    let mut newer = bytes;
    newer[8] = 2;
    let message = ArchiveSegment::decode(&newer).expect_err("a later version").to_string();
    assert!(message.contains("version 2") && message.contains("reads 1"), "{message}");
}

#[test]
fn a_market_a_delayed_bet_still_waits_on_stays_until_the_bet_is_decided() {
    let mut book = Book::new();
    book.open_funded(1, 100_000);
    let mut in_play = rules();
    in_play.bet_delay_ms = 5_000;
    book.market_with(10, 10, &[(101, "2/1"), (102, "3/1")], in_play);
    let waiting = book.single(1, 101, 1_000);
    assert_eq!(book.state.bet(waiting).expect("the bet").status, paddock_ledger::BetStatus::Pending);
    close_and_settle(&mut book, 10, 101);
    assert_eq!(book.state.archive_share_size(TimestampMs(u64::MAX), 100).0, 0, "a delayed bet names market 10");
    archive(&mut book, TimestampMs(u64::MAX), 100);
    assert!(book.state.market(MarketId(10)).is_some());
    // Its delay ends: refused (the market is settled), and then nothing holds the market back.
    book.advance_ms(6_000);
    book.ok(Command::ResolvePending);
    assert!(matches!(book.state.bet(waiting).expect("the bet").status, paddock_ledger::BetStatus::Rejected(_)));
    archive(&mut book, TimestampMs(u64::MAX), 100);
    assert!(book.state.market(MarketId(10)).is_none());
}
