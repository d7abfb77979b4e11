//! The big-state backup and restore figure (issue 12: "restore of 1M accounts and 10M settled
//! bets in < 60 s"; "backup throughput within 2× of the disk's sequential write speed measured in
//! the same run"). On demand, not in CI:
//!
//! ```sh
//! cargo run --release -p paddock-backup --example big_restore -- 1000000 10000000 /var/tmp
//! ```
//!
//! Arguments: accounts, settled bets, and a scratch directory on the disk to measure (default
//! the system's temporary directory). It builds the book with the ledger's own `apply` (10k
//! markets, every account funded, the bets placed across the markets and every market
//! settled), then times, on that disk:
//!
//! 1. the snapshot a node would write (`seed_data_dir`: encode, write, fsync), and the load a
//!    node does at start or after receiving it (read, decode, check the invariants);
//! 2. a full backup of it (`paddock_backup::take`: copy, checksum, decode to record the state
//!    hash) and the disk's sequential write speed for a file of the same size (write + fsync);
//! 3. a restore from the chain into a new data directory (`paddock_backup::restore`: verify the
//!    chain, decode, seed) — the data part of a restore's RTO;
//!
//! and prints the memory the book takes (the process's resident set before and after building
//! it) and the snapshot's size.
//!
//! With a fourth argument `archive` it measures settled-history archiving instead (issue 12:
//! "memory and snapshot size for 1M accounts and 10M settled bets before and after
//! compaction"): it builds the same book, lets the book's clock run past the idempotency keys'
//! lifetime (as 7 days of retention would), then reports the heap the book holds (counted by
//! this example's allocator) and its snapshot size, archives every market with the ledger's
//! `ArchiveSettled` (each segment encoded and written durably, as a node does before applying
//! it), and reports both again:
//!
//! ```sh
//! cargo run --release -p paddock-backup --example big_restore -- 1000000 10000000 /var/tmp archive
//! ```
//!
//! With `transfer` it measures a snapshot sent to a follower between real processes (issue 12:
//! "snapshot build, transfer and install times"): it builds the book and lets its clock run past
//! the idempotency keys' lifetime (as `archive` does), seeds two nodes' data directories with it
//! (a snapshot, the log purged behind it: the build figure), starts them and a third node
//! with an empty data directory as `paddock start` processes on loopback (the binary named by
//! `PADDOCK_BIN`, default `target/release/paddock`), and times the third node from its start
//! to the whole snapshot file received (its `paddock_snapshot_received_bytes_total`) and to the
//! snapshot installed (its log's `installed snapshot from leader`). The nodes are stopped by
//! PID at the end:
//!
//! ```sh
//! cargo build --release -p paddock-cli
//! cargo run --release -p paddock-backup --example big_restore -- 1000000 10000000 /var/tmp transfer
//! ```

use paddock_backup::{LogFetchError, Point, RestoreRequest, Source};
use paddock_consensus::backup::seed_data_dir;
use paddock_consensus::records::LogIdRecord;
use paddock_ledger::{
    apply, AccountId, Actor, ApplyCtx, BetKind, Command, Currency, EventId, IdempotencyKey, LegRequest, LegResult,
    MarketId, MarketRules, Money, NewSelection, Odds, OddsPolicy, PlaceBet, SelectionId, SelectionResult, State,
    TimestampMs,
};
use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// Counts the bytes allocated and not yet freed: the heap the book holds, exactly, where the
/// resident set also keeps what the allocator has not returned to the system.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed to the system allocator unchanged; only a counter is added.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live_mb() -> f64 {
    LIVE.load(Ordering::Relaxed) as f64 / 1e6
}

const MARKETS: u64 = 10_000;

/// The log index and leader timestamp of each command, as a leader would stamp them.
struct Clock(u64);

impl Clock {
    fn ctx(&mut self) -> ApplyCtx {
        self.0 += 1;
        ApplyCtx { log_index: self.0, time: TimestampMs(1_700_000_000_000 + self.0 / 1000) }
    }
}

fn must(state: &mut State, clock: &mut Clock, cmd: &Command) {
    let outcome = apply(state, cmd, clock.ctx());
    assert!(outcome.is_done(), "a command of the build was refused");
}

fn gbp() -> Currency {
    Currency::parse("GBP").expect("a currency")
}

fn actor() -> Actor {
    Actor("big-restore".into())
}

fn build(accounts: u64, bets: u64) -> (State, Clock) {
    let mut state = State::new();
    let mut clock = Clock(0);
    let rules = MarketRules {
        stake_min: Money(10),
        stake_max: Money(1_000_000),
        payout_max: Money(100_000_000),
        liability_max: Money(i64::MAX / 4),
        bet_delay_ms: 0,
        closes_at: None,
        each_way: None,
    };
    for m in 0..MARKETS {
        let event = Command::CreateEvent {
            event: EventId(m),
            name: format!("event {m}"),
            sport: "football".into(),
            competition: "big-restore".into(),
            starts_at: TimestampMs(0),
            actor: actor(),
            key: IdempotencyKey(format!("e{m}")),
        };
        must(&mut state, &mut clock, &event);
        let market = Command::CreateMarket {
            market: MarketId(m),
            event: EventId(m),
            name: "match result".into(),
            currency: gbp(),
            selections: (0..3)
                .map(|s| NewSelection {
                    selection: SelectionId(m * 3 + s),
                    name: format!("s{s}"),
                    odds: Odds::parse("2.5").expect("odds"),
                })
                .collect(),
            rules: rules.clone(),
            actor: actor(),
            key: IdempotencyKey(format!("m{m}")),
        };
        must(&mut state, &mut clock, &market);
    }
    for a in 0..accounts {
        must(
            &mut state,
            &mut clock,
            &Command::OpenAccount { account: AccountId(a), currency: gbp(), key: IdempotencyKey(format!("o{a}")) },
        );
        let deposit = Command::Deposit {
            account: AccountId(a),
            amount: Money(1_000_000_000),
            key: IdempotencyKey(format!("d{a}")),
        };
        must(&mut state, &mut clock, &deposit);
    }
    for n in 0..bets {
        let market = n % MARKETS;
        let bet = Command::PlaceBet(PlaceBet {
            account: AccountId(n.wrapping_mul(2_654_435_761) % accounts),
            legs: vec![LegRequest {
                market: MarketId(market),
                selection: SelectionId(market * 3 + n % 3),
                odds: Odds::parse("2.5").expect("odds"),
            }],
            kind: BetKind::Single,
            stake_per_line: Money(100),
            each_way: false,
            odds_policy: OddsPolicy::Any,
            key: IdempotencyKey(format!("b{n}")),
        });
        must(&mut state, &mut clock, &bet);
    }
    for m in 0..MARKETS {
        let settle = Command::SettleMarket {
            market: MarketId(m),
            results: vec![SelectionResult { selection: SelectionId(m * 3), win: LegResult::Win, place: None }],
            actor: actor(),
            key: IdempotencyKey(format!("s{m}")),
        };
        must(&mut state, &mut clock, &settle);
    }
    (state, clock)
}

/// The process's resident set, bytes (Linux).
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// A node's snapshot file served as a backup source (a full backup: no log after it), read
/// from disk as a node's own source reads it.
struct SnapshotOnly(std::path::PathBuf);

impl Source for SnapshotOnly {
    async fn cluster_id(&self) -> anyhow::Result<String> {
        Ok("big".into())
    }
    async fn snapshot(&self) -> anyhow::Result<Vec<u8>> {
        Ok(std::fs::read(&self.0)?)
    }
    async fn log(&self, _from: u64, _limit: usize) -> Result<Vec<(u64, Vec<u8>)>, LogFetchError> {
        Ok(Vec::new())
    }
}

/// Sequential write of `bytes` bytes in 8 MiB blocks, then fsync: MB/s.
fn disk_write_mb_s(dir: &Path, bytes: u64) -> f64 {
    let path = dir.join("disk-speed");
    let block = vec![0x5au8; 8 << 20];
    let started = Instant::now();
    let mut file = std::fs::File::create(&path).expect("a scratch file");
    let mut left = bytes;
    while left > 0 {
        let n = left.min(block.len() as u64) as usize;
        file.write_all(&block[..n]).expect("write");
        left -= n as u64;
    }
    file.sync_all().expect("fsync");
    let seconds = started.elapsed().as_secs_f64();
    std::fs::remove_file(&path).expect("remove the scratch file");
    bytes as f64 / 1e6 / seconds
}

/// Lets the book's clock run `ms` on with the leader's ticks (each at most a clock step), until
/// every idempotency key has expired: what the days of a retention period do.
fn let_time_pass(state: &mut State, clock: &mut Clock, ms: u64) {
    let step = state.config().clock_step_max_ms;
    let target = state.clock().0 + ms;
    let mut at = state.clock().0;
    while at < target || state.idempotency_key_count() > 0 {
        at = (at + step).min(target.max(at + 1));
        clock.0 += 1;
        let outcome = apply(state, &Command::ResolvePending, ApplyCtx { log_index: clock.0, time: TimestampMs(at) });
        assert!(outcome.is_done(), "a tick is never refused");
    }
}

/// Archives every settled market, a share at a time, writing each segment durably first.
fn archive_all(state: &mut State, clock: &mut Clock, dir: &Path) -> (u64, u64) {
    use paddock_ledger::archive::ARCHIVE_MARKETS_MAX;
    std::fs::create_dir_all(dir).expect("an archive directory");
    let before = TimestampMs(state.clock().0);
    let (mut segments, mut bytes) = (0, 0);
    loop {
        let index = clock.0 + 1;
        let segment = state.archive_segment(before, ARCHIVE_MARKETS_MAX, index);
        if segment.markets.is_empty() {
            return (segments, bytes);
        }
        let encoded = segment.encode();
        drop(segment);
        let mut file = std::fs::File::create(dir.join(format!("seg-{index:020}.pda"))).expect("a segment file");
        file.write_all(&encoded).expect("write");
        file.sync_all().expect("fsync");
        bytes += encoded.len() as u64;
        segments += 1;
        let key = IdempotencyKey(format!("archive-{index}"));
        let command = Command::ArchiveSettled { before, markets_max: ARCHIVE_MARKETS_MAX, actor: actor(), key };
        must(state, clock, &command);
    }
}

/// The book, its clock then run past the idempotency keys' lifetime (as 7 days of retention
/// would): what a node holds before it archives the settled history.
fn build_and_age(accounts: u64, bets: u64) -> (State, Clock) {
    let started = Instant::now();
    let (mut state, mut clock) = build(accounts, bets);
    println!(
        "built {accounts} accounts and {bets} settled bets over {MARKETS} markets in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let_time_pass(&mut state, &mut clock, 31 * paddock_ledger::DAY_MS);
    (state, clock)
}

fn archive_figures(accounts: u64, bets: u64, scratch: &Path) {
    let base = live_mb();
    let (mut state, mut clock) = build_and_age(accounts, bets);
    let before_mb = live_mb() - base;
    let snapshot_before = state.encode_snapshot().len() as f64 / 1e6;
    println!(
        "before archiving: the book holds {before_mb:.0} MB of heap ({:.0} bytes per settled bet and account), its snapshot {snapshot_before:.0} MB",
        before_mb * 1e6 / (accounts + bets) as f64
    );
    let started = Instant::now();
    let (segments, bytes) = archive_all(&mut state, &mut clock, &scratch.join("archive"));
    let archive_s = started.elapsed().as_secs_f64();
    let after_mb = live_mb() - base;
    let snapshot_after = state.encode_snapshot().len() as f64 / 1e6;
    println!(
        "archived {} markets and {bets} bets into {segments} segments ({:.0} MB on disk) in {archive_s:.1} s ({:.0} ms per segment)",
        MARKETS,
        bytes as f64 / 1e6,
        archive_s * 1e3 / segments.max(1) as f64
    );
    println!(
        "after archiving: the book holds {after_mb:.0} MB of heap ({:.0} bytes per account), its snapshot {snapshot_after:.0} MB ({:.1}× and {:.1}× smaller)",
        after_mb * 1e6 / accounts as f64,
        before_mb / after_mb,
        snapshot_before / snapshot_after
    );
    state.check_invariants().expect("the archived book keeps every invariant");
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let accounts: u64 = args.first().map_or(1_000_000, |a| a.parse().expect("accounts: a number"));
    let bets: u64 = args.get(1).map_or(10_000_000, |a| a.parse().expect("settled bets: a number"));
    let scratch = tempfile::Builder::new()
        .prefix("paddock-big-restore-")
        .tempdir_in(args.get(2).map_or_else(std::env::temp_dir, Into::into))
        .expect("a scratch directory");
    if args.get(3).is_some_and(|mode| mode == "archive") {
        archive_figures(accounts, bets, scratch.path());
        return;
    }
    if args.get(3).is_some_and(|mode| mode == "transfer") {
        transfer_figures(accounts, bets, scratch.path());
        return;
    }
    let rss_before = rss_bytes();
    let started = Instant::now();
    let (state, clock) = build(accounts, bets);
    let build_s = started.elapsed().as_secs_f64();
    let rss_book = rss_bytes().saturating_sub(rss_before);
    println!("built {accounts} accounts and {bets} settled bets over {MARKETS} markets in {build_s:.1} s; the book takes {:.0} MB resident", rss_book as f64 / 1e6);

    // The snapshot a node would write.
    let members = BTreeMap::from([(1, "127.0.0.1:7101".to_string())]);
    let last = LogIdRecord { term: 1, node: 1, index: clock.0 };
    let node = scratch.path().join("node");
    let started = Instant::now();
    seed_data_dir(&node, "big", 1, &members, &state, last).expect("the snapshot is written");
    let snapshot_s = started.elapsed().as_secs_f64();
    let file = std::fs::read_dir(node.join("snapshots"))
        .expect("snapshots")
        .next()
        .expect("a snapshot")
        .expect("entry")
        .path();
    let size = std::fs::metadata(&file).expect("the snapshot file").len();
    println!("snapshot: {:.0} MB, encoded and written durably in {snapshot_s:.1} s", size as f64 / 1e6);
    let expected_hash = state.state_hash().to_string();
    drop(state);

    // What a node does with that file at start or after receiving it: read it, take the
    // state out of it, decode the book, check its invariants.
    let started = Instant::now();
    let file_bytes = std::fs::read(&file).expect("the snapshot file");
    let parsed = paddock_storage::SnapshotFiles::decode_owned(&file, file_bytes).expect("the file checks out");
    let read_s = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let loaded = paddock_ledger::State::decode_snapshot(&parsed.data).expect("the book decodes");
    drop(parsed);
    let decode_s = started.elapsed().as_secs_f64();
    let started = Instant::now();
    loaded.check_invariants().expect("the book keeps its invariants");
    let check_s = started.elapsed().as_secs_f64();
    drop(loaded);
    println!(
        "loading it as a node does: read and check the file {read_s:.1} s, decode {decode_s:.1} s, invariants {check_s:.1} s"
    );

    // A full backup of it, and the disk's own speed for the same bytes.
    let chain = scratch.path().join("chain");
    let started = Instant::now();
    let taken = futures::executor::block_on(paddock_backup::take(&SnapshotOnly(file.clone()), &chain, None))
        .expect("the backup");
    let backup_s = started.elapsed().as_secs_f64();
    assert_eq!(taken.state_hash, expected_hash, "the chain records the book's state hash");
    let disk = disk_write_mb_s(scratch.path(), size);
    let backup_mb_s = size as f64 / 1e6 / backup_s;
    println!(
        "full backup: {backup_s:.1} s, {backup_mb_s:.0} MB/s; the disk writes {disk:.0} MB/s sequentially (write + fsync): \
         the backup is {:.2}× slower than the disk",
        disk / backup_mb_s
    );

    // The restore: verify the chain, decode, seed a new data directory.
    let started = Instant::now();
    let restored = paddock_backup::restore(&RestoreRequest {
        from: &chain,
        point: Point::End,
        cluster_id: "big-r",
        node_id: 1,
        members: &members,
        data_dir: &scratch.path().join("restored"),
        force: false,
        // Its members' addresses are names only: no node is started on them.
        allow_live_peers: true,
        key: None,
    })
    .expect("the restore");
    let restore_s = started.elapsed().as_secs_f64();
    assert_eq!(restored["state_hash"], expected_hash.as_str(), "the restored book is the one backed up");
    println!("restore (verify, decode, seed a data directory): {restore_s:.1} s; state hash matches");
}

/// A free loopback port (bound, then released for the node to take).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port").local_addr().expect("its address").port()
}

/// The value of a metric in a node's `/metrics` (plain HTTP on loopback), if it answers.
fn scrape(http: u16, name: &str) -> Option<f64> {
    use std::io::Read;
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", http)).ok()?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(2))).ok()?;
    write!(stream, "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    let prefix = format!("{name} ");
    text.lines().find_map(|l| l.strip_prefix(&prefix)).and_then(|v| v.trim().parse().ok())
}

/// Nodes started by this example, stopped by PID when dropped.
struct Nodes(Vec<std::process::Child>);

impl Drop for Nodes {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn transfer_figures(accounts: u64, bets: u64, scratch: &Path) {
    let binary = std::env::var("PADDOCK_BIN").unwrap_or_else(|_| "target/release/paddock".to_string());
    assert!(
        Path::new(&binary).exists(),
        "{binary} is missing: build it (cargo build --release -p paddock-cli) or set PADDOCK_BIN"
    );
    // The largest state a retention period leaves (three such nodes with the keys besides do
    // not fit this machine's 24 GiB).
    let (state, clock) = build_and_age(accounts, bets);
    let ports: BTreeMap<u64, (u16, u16)> = (1..=3).map(|id| (id, (free_port(), free_port()))).collect();
    let members: BTreeMap<u64, String> =
        ports.iter().map(|(id, (_, peer))| (*id, format!("127.0.0.1:{peer}"))).collect();
    let last = LogIdRecord { term: 1, node: 1, index: clock.0 };
    let started = Instant::now();
    seed_data_dir(&scratch.join("node-1"), "big", 1, &members, &state, last).expect("node 1 is seeded");
    let build_s = started.elapsed().as_secs_f64();
    seed_data_dir(&scratch.join("node-2"), "big", 2, &members, &state, last).expect("node 2 is seeded");
    drop(state);
    let snapshots = scratch.join("node-1").join("snapshots");
    let file = std::fs::read_dir(&snapshots).expect("snapshots").next().expect("a snapshot").expect("entry").path();
    let size = std::fs::metadata(&file).expect("the snapshot file").len();
    println!("snapshot build (encode, write, fsync): {:.0} MB in {build_s:.1} s", size as f64 / 1e6);

    let bootstrap = members.iter().map(|(id, addr)| format!("{id}={addr}")).collect::<Vec<_>>().join(",");
    let spawn = |id: u64| {
        let (http, peer) = ports[&id];
        let log = std::fs::File::create(scratch.join(format!("node-{id}.log"))).expect("a log file");
        std::process::Command::new(&binary)
            .arg("start")
            .args(["--node-id", &id.to_string(), "--cluster-id", "big"])
            .arg("--data-dir")
            .arg(scratch.join(format!("node-{id}")))
            .args(["--http", &format!("127.0.0.1:{http}")])
            .args(["--peer", &format!("127.0.0.1:{peer}")])
            .args(["--bootstrap", &bootstrap])
            .env("RUST_LOG", "info,openraft=warn")
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().expect("a log handle"))
            .stderr(log)
            .spawn()
            .expect("a node starts")
    };
    let mut nodes = Nodes(vec![spawn(1), spawn(2)]);
    let deadline = Instant::now() + std::time::Duration::from_secs(600);
    let wait = |nodes: &mut Nodes, what: &str, done: &mut dyn FnMut() -> bool| {
        while !done() {
            assert!(Instant::now() < deadline, "gave up waiting for {what}");
            for (i, child) in nodes.0.iter_mut().enumerate() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("node {} exited ({status}) while waiting for {what}: see node-{}.log", i + 1, i + 1);
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    };
    let started = Instant::now();
    wait(&mut nodes, "nodes 1 and 2 to load the snapshot and elect a leader", &mut || {
        [1, 2].iter().any(|id| scrape(ports[id].0, "paddock_raft_is_leader") == Some(1.0))
    });
    println!("nodes 1 and 2 loaded the snapshot and elected a leader in {:.1} s", started.elapsed().as_secs_f64());

    std::fs::create_dir_all(scratch.join("node-3")).expect("node 3's empty data directory");
    let started = Instant::now();
    nodes.0.push(spawn(3));
    let http3 = ports[&3].0;
    wait(&mut nodes, "node 3 to receive the whole snapshot", &mut || {
        scrape(http3, "paddock_snapshot_received_bytes_total").is_some_and(|b| b >= size as f64)
    });
    let transfer_s = started.elapsed().as_secs_f64();
    let log3 = scratch.join("node-3.log");
    wait(&mut nodes, "node 3 to install it", &mut || {
        std::fs::read_to_string(&log3).is_ok_and(|t| t.contains("installed snapshot from leader"))
    });
    let install_s = started.elapsed().as_secs_f64();
    let rss_kb = std::fs::read_to_string(format!("/proc/{}/status", nodes.0[2].id()))
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("VmHWM:").map(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().unwrap_or(0))
        })
        .unwrap_or(0);
    println!(
        "node 3 (empty) received the {:.0} MB snapshot file {transfer_s:.1} s after its start ({:.0} MB/s, start-up included) \
         and had installed it (decoded, checked, renamed into place) at {install_s:.1} s; its peak resident set {:.0} MB",
        size as f64 / 1e6,
        size as f64 / 1e6 / transfer_s,
        rss_kb as f64 / 1e3
    );
}
