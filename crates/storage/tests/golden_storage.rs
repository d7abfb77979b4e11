//! Storage formats cannot drift: golden bytes (`tests/fixtures/`) of the record frame of each
//! kind (log entry, meta, identity), of the `IDENTITY` file as a data directory writes it, and
//! of a snapshot file; and the log store keeps exactly those frames in redb, under the table
//! names and keys it always used, and reads frames put there by hand.
//!
//! Why it matters: this is what a node finds on its disk after an upgrade. The payloads are
//! opaque here (the consensus crate pins its records, the ledger its snapshot); what is pinned
//! is the layout around them. See `tests/golden/mod.rs` for the fixture rules.

use paddock_golden as golden;

use golden::{Format, Golden};
use paddock_storage::frame::{self, FRAME_MAGIC};
use paddock_storage::log::{KIND_LOG_ENTRY, KIND_META};
use paddock_storage::snapshot_file::{SNAPSHOT_FILE_MAGIC, SNAPSHOT_FILE_VERSION};
use paddock_storage::{DataDir, Identity, LogStore, MetaKey, SnapshotFile, SnapshotFiles};
use redb::{Database, ReadableDatabase, TableDefinition};
use std::path::Path;
use std::sync::mpsc;

/// The log and meta records' version: what `LogStore` writes today.
const LOG_RECORD_VERSION: u8 = 1;
/// The `IDENTITY` file's frame kind and version.
const KIND_IDENTITY: u8 = 3;
const IDENTITY_VERSION: u8 = 1;

const FRAME: Format = Format {
    dir: "frame",
    version: 1,
    bump: "the version of the record's kind (FORMAT_VERSION in crates/storage/src/log.rs for log entries and meta, \
           IDENTITY_VERSION in crates/storage/src/data_dir.rs for the identity)",
};

const IDENTITY: Format =
    Format { dir: "identity", version: 1, bump: "IDENTITY_VERSION (crates/storage/src/data_dir.rs)" };

const SNAPSHOT_FILE: Format = Format {
    dir: "snapshot_file",
    version: SNAPSHOT_FILE_VERSION as u32,
    bump: "SNAPSHOT_FILE_VERSION (crates/storage/src/snapshot_file.rs)",
};

/// The redb tables, as the log store names them: renaming one loses every node's log.
const LOG_TABLE: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
const META_TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

/// An entry payload as consensus writes it: postcard of `EntryRecord { log_id: (term 3, node 1,
/// index 1041), payload: Blank }` (opaque to storage).
const ENTRY_PAYLOAD: &[u8] = &[0x03, 0x01, 0x91, 0x08, 0x00];
/// A vote payload: postcard of `VoteRecord { term: 3, node: 1, committed: true }`.
const VOTE_PAYLOAD: &[u8] = &[0x03, 0x01, 0x01];
/// A log id payload: postcard of `LogIdRecord { term: 3, node: 1, index: 1042 }`.
const LOG_ID_PAYLOAD: &[u8] = &[0x03, 0x01, 0x92, 0x08];

fn identity() -> Identity {
    Identity { cluster_id: "paddock-prod".to_string(), node_id: 2 }
}

fn identity_payload(id: &Identity) -> Vec<u8> {
    let mut payload = id.node_id.to_le_bytes().to_vec();
    payload.extend_from_slice(id.cluster_id.as_bytes());
    payload
}

/// A frame's version and payload: what `frame::decode` gives back for a known kind.
type Framed = (u8, Vec<u8>);

/// Checks the fixture of a frame of `kind` around `framed`.
fn check_frame(golden: &mut Golden, name: &str, label: &str, kind: u8, framed: Framed) {
    golden.check(
        name,
        label,
        &framed,
        |(version, payload)| frame::encode(kind, *version, payload),
        |bytes| {
            frame::decode(kind, LOG_RECORD_VERSION.max(IDENTITY_VERSION), bytes)
                .map(|(version, payload)| (version, payload.to_vec()))
                .map_err(|e| e.to_string())
        },
    );
}

#[test]
fn a_record_frame_of_each_kind_encodes_to_its_fixture_and_decodes_from_it() {
    assert_eq!(FRAME_MAGIC, *b"PD");
    assert_eq!((KIND_LOG_ENTRY, KIND_META), (1, 2), "frame kinds are stored: never renumber them");
    let mut golden = Golden::new(env!("CARGO_MANIFEST_DIR"), env!("CARGO_PKG_NAME"), FRAME);
    let entry = (LOG_RECORD_VERSION, ENTRY_PAYLOAD.to_vec());
    check_frame(&mut golden, "log_entry", "the record frame of a log entry (kind 1)", KIND_LOG_ENTRY, entry);
    let vote = (LOG_RECORD_VERSION, VOTE_PAYLOAD.to_vec());
    check_frame(&mut golden, "meta_vote", "the record frame of a meta value (kind 2)", KIND_META, vote);
    let id = (IDENTITY_VERSION, identity_payload(&identity()));
    check_frame(&mut golden, "identity", "the record frame of the identity (kind 3)", KIND_IDENTITY, id);
    // Kind 4: an archived bet in the archive index (its payload is the ledger's postcard
    // `BetView`, pinned with the archive segment's fixture).
    assert_eq!(
        paddock_storage::archive_index::FRAME_KIND_ARCHIVED_BET,
        4,
        "frame kinds are stored: never renumber them"
    );
    let bet = (1, b"a postcard BetView".to_vec());
    check_frame(&mut golden, "archived_bet", "the record frame of an archived bet (kind 4)", 4, bet);
    golden.finish();
}

fn append(log: &LogStore, index: u64, payload: &[u8]) {
    let (tx, rx) = mpsc::channel();
    log.append(vec![(index, payload.to_vec())], Box::new(move |r| tx.send(r).expect("receiver waits")));
    rx.recv().expect("append completes").expect("append is durable");
}

#[test]
fn the_log_store_keeps_today_s_frames_in_redb_under_its_table_names_and_keys() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("raft-log.redb");
    {
        let log = LogStore::open(&path).expect("open the log");
        append(&log, 1041, ENTRY_PAYLOAD);
        log.save_meta_durable(MetaKey::Vote, VOTE_PAYLOAD).expect("save the vote");
        log.save_meta(MetaKey::Committed, LOG_ID_PAYLOAD);
        log.purge(1040, LOG_ID_PAYLOAD).expect("purge below the entry");
    }
    let db = Database::open(&path).expect("the log store closed its database");
    let tx = db.begin_read().expect("read transaction");
    let log = tx.open_table(LOG_TABLE).expect("a table `log` keyed by u64 index");
    let meta = tx.open_table(META_TABLE).expect("a table `meta` keyed by name");
    // Compared with the frames the `frame` fixtures pin, at the version written today.
    let stored_entry = log.get(1041).expect("read").map(|v| v.value().to_vec());
    assert_eq!(
        stored_entry,
        Some(frame::encode(KIND_LOG_ENTRY, LOG_RECORD_VERSION, ENTRY_PAYLOAD)),
        "encoding of a log entry as stored in redb changed: bump {} and add new fixtures; keep the old ones decodable",
        FRAME.bump
    );
    for (key, payload) in [("vote", VOTE_PAYLOAD), ("committed", LOG_ID_PAYLOAD), ("purged", LOG_ID_PAYLOAD)] {
        let stored = meta.get(key).expect("read").map(|v| v.value().to_vec());
        assert_eq!(
            stored,
            Some(frame::encode(KIND_META, LOG_RECORD_VERSION, payload)),
            "encoding of meta `{key}` as stored in redb changed: bump {} and add new fixtures; keep the old ones \
             decodable",
            FRAME.bump
        );
    }
}

#[test]
fn the_log_store_reads_frames_written_into_redb_by_hand() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("raft-log.redb");
    {
        let db = Database::create(&path).expect("create a redb file");
        let tx = db.begin_write().expect("write transaction");
        {
            let mut log = tx.open_table(LOG_TABLE).expect("log table");
            let framed = frame::encode(KIND_LOG_ENTRY, LOG_RECORD_VERSION, ENTRY_PAYLOAD);
            log.insert(1041, framed.as_slice()).expect("insert the entry");
            let mut meta = tx.open_table(META_TABLE).expect("meta table");
            let framed = frame::encode(KIND_META, LOG_RECORD_VERSION, VOTE_PAYLOAD);
            meta.insert("vote", framed.as_slice()).expect("insert the vote");
        }
        tx.commit().expect("commit");
    }
    let log = LogStore::open(&path).expect("open a log written by hand");
    assert_eq!(log.read_range(1041, 1042).expect("read the entry"), vec![(1041, ENTRY_PAYLOAD.to_vec())]);
    assert_eq!(log.read_meta(MetaKey::Vote).expect("read the vote"), Some(VOTE_PAYLOAD.to_vec()));
}

/// The `IDENTITY` file a data directory writes for `id`.
fn identity_file(id: &Identity) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("temp dir");
    DataDir::open(dir.path()).expect("open").claim(id).expect("claim");
    std::fs::read(dir.path().join("IDENTITY")).expect("IDENTITY written")
}

/// The identity a data directory reads from an `IDENTITY` file holding `bytes`.
fn read_identity(bytes: &[u8]) -> Result<Identity, String> {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("IDENTITY"), bytes).expect("write IDENTITY");
    let data_dir = DataDir::open(dir.path()).map_err(|e| e.to_string())?;
    data_dir.identity().map_err(|e| e.to_string())?.ok_or_else(|| "no identity".to_string())
}

#[test]
fn the_identity_file_is_its_fixture_and_the_fixture_reads_back_as_the_identity() {
    let mut golden = Golden::new(env!("CARGO_MANIFEST_DIR"), env!("CARGO_PKG_NAME"), IDENTITY);
    golden.check("node_2_of_paddock_prod", "the IDENTITY file", &identity(), identity_file, read_identity);
    golden.finish();
    assert_eq!(
        identity_file(&identity()),
        frame::encode(KIND_IDENTITY, IDENTITY_VERSION, &identity_payload(&identity())),
        "IDENTITY is a record frame of kind 3: node id (u64, little-endian), then the cluster id as UTF-8"
    );
}

fn snapshot() -> SnapshotFile {
    // Opaque parts: the consensus crate pins its meta and the ledger its snapshot encoding.
    SnapshotFile { index: 7, meta: b"snapshot meta (consensus)".to_vec(), data: b"ledger snapshot bytes".to_vec() }
}

#[test]
fn a_snapshot_file_is_its_fixture_under_its_name_and_the_fixture_decodes_to_it() {
    assert_eq!((SNAPSHOT_FILE_MAGIC, SNAPSHOT_FILE_VERSION), (*b"PDKSNAPF", 1));
    let name = Path::new("snap-00000000000000000007.pds");
    let mut golden = Golden::new(env!("CARGO_MANIFEST_DIR"), env!("CARGO_PKG_NAME"), SNAPSHOT_FILE);
    golden.check("snap_7", "a snapshot file", &snapshot(), SnapshotFiles::encode, |bytes| {
        SnapshotFiles::decode(name, bytes).map_err(|e| e.to_string())
    });
    golden.finish();
    let dir = tempfile::tempdir().expect("temp dir");
    let written = SnapshotFiles::open(dir.path()).expect("open").write(&snapshot()).expect("write");
    assert_eq!(written, dir.path().join(name), "snapshots/snap-<index, 20 digits>.pds");
    assert_eq!(std::fs::read(&written).expect("read"), SnapshotFiles::encode(&snapshot()));
}

#[test]
fn a_snapshot_file_of_another_version_is_refused_not_misread() {
    let mut bytes = SnapshotFiles::encode(&snapshot());
    bytes[8..10].copy_from_slice(&2u16.to_le_bytes());
    let body_end = bytes.len() - 4;
    let crc = crc32c::crc32c(&bytes[..body_end]);
    bytes[body_end..].copy_from_slice(&crc.to_le_bytes());
    let err = SnapshotFiles::decode(Path::new("snap-00000000000000000007.pds"), &bytes).expect_err("refused");
    assert!(err.to_string().contains("format version 2 not supported"), "{err}");
}
