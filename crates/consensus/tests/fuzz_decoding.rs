//! Fuzzing every decoder of bytes that come from a disk or a peer: the storage frame, the
//! snapshot file, the ledger snapshot, the log records, the protobuf frame and every peer
//! payload. Whatever the bytes, decoding answers an error or a value; it never panics and
//! never allocates without bound (a counting allocator watches the largest single request).
//!
//! The inputs are the golden fixtures (real encodings of every format) mutated at random —
//! bytes flipped, inserted, removed, truncated — and plain random bytes. CI runs 512 cases per
//! property; a long run on demand: `PROPTEST_CASES=200000 cargo test -p paddock-consensus
//! --test fuzz_decoding --release`.

#![allow(unsafe_code)] // the counting allocator below: a GlobalAlloc impl is unsafe by definition

use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, TransferLeaderRequest, VoteRequest, VoteResponse};
use paddock_consensus::records::{EntryRecord, LogIdRecord, SnapshotMetaRecord, StoredMembershipRecord, VoteRecord};
use paddock_consensus::types::{SnapshotMeta, TypeConfig, Vote};
use paddock_consensus::{ForwardOp, ForwardReply, WriteError, Written};
use paddock_ledger::{Command, Outcome, State};
use proptest::prelude::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// Largest single allocation seen since the last reset.
static LARGEST: AtomicUsize = AtomicUsize::new(0);

struct Counting;

// SAFETY: forwards every call to the system allocator unchanged; only records the size.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract is passed through.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is passed through.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        // SAFETY: the caller's contract is passed through.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// No decoder may ask for more than this for inputs of a few KiB.
const ALLOCATION_MAX: usize = 16 << 20;

/// Every golden fixture of the storage, consensus and ledger crates: real bytes of every format.
fn corpus() -> &'static [Vec<u8>] {
    static CORPUS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    CORPUS.get_or_init(|| {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut out = Vec::new();
        for krate in ["consensus", "storage", "ledger"] {
            let fixtures = root.join(krate).join("tests").join("fixtures");
            for dir in std::fs::read_dir(&fixtures).expect("fixtures folder").flatten() {
                for file in std::fs::read_dir(dir.path()).expect("format folder").flatten() {
                    let text = std::fs::read_to_string(file.path()).expect("fixture reads");
                    out.push(paddock_golden::parse_hex(&text).expect("fixture parses"));
                }
            }
        }
        assert!(out.len() > 50, "the corpus holds the fixtures: {}", out.len());
        out
    })
}

/// Tries every decoder on `bytes`; each may fail, none may panic.
fn decode_everything(bytes: &[u8]) {
    for kind in 1..=3 {
        let _ = paddock_storage::frame::decode(kind, 1, bytes);
    }
    let _ = paddock_storage::SnapshotFiles::decode(std::path::Path::new("snap-00000000000000000001.pds"), bytes);
    if let Ok(state) = State::decode_snapshot(bytes) {
        let _ = state.check_invariants();
    }
    let _ = prost::Message::decode(bytes).map(|f: paddock_consensus::proto::Frame| f.payload.len());
    if let Ok(r) = postcard::from_bytes::<EntryRecord>(bytes) {
        let _ = r.into_entry();
    }
    if let Ok(r) = postcard::from_bytes::<SnapshotMetaRecord>(bytes) {
        let _ = r.into_meta();
    }
    if let Ok(r) = postcard::from_bytes::<StoredMembershipRecord>(bytes) {
        let _ = r.into_stored();
    }
    let _ = postcard::from_bytes::<VoteRecord>(bytes);
    let _ = postcard::from_bytes::<LogIdRecord>(bytes);
    let _ = postcard::from_bytes::<AppendEntriesRequest<TypeConfig>>(bytes);
    let _ = postcard::from_bytes::<AppendEntriesResponse<TypeConfig>>(bytes);
    let _ = postcard::from_bytes::<VoteRequest<TypeConfig>>(bytes);
    let _ = postcard::from_bytes::<VoteResponse<TypeConfig>>(bytes);
    let _ = postcard::from_bytes::<TransferLeaderRequest<TypeConfig>>(bytes);
    let _ = postcard::from_bytes::<(Vote, SnapshotMeta, Vec<u8>)>(bytes);
    let _ = postcard::from_bytes::<paddock_consensus::transport::SnapshotChunk>(bytes);
    let _ = postcard::from_bytes::<paddock_consensus::transport::SnapshotInstall>(bytes);
    let _ = postcard::from_bytes::<ForwardOp>(bytes);
    let _ = postcard::from_bytes::<ForwardReply>(bytes);
    let _ = postcard::from_bytes::<Result<Written, WriteError>>(bytes);
    let _ = postcard::from_bytes::<Command>(bytes);
    let _ = postcard::from_bytes::<Outcome>(bytes);
}

fn check(bytes: &[u8]) -> Result<(), TestCaseError> {
    LARGEST.store(0, Ordering::Relaxed);
    decode_everything(bytes);
    let largest = LARGEST.load(Ordering::Relaxed);
    prop_assert!(
        largest <= ALLOCATION_MAX,
        "{} input bytes made a decoder ask for {largest} bytes at once",
        bytes.len()
    );
    Ok(())
}

/// One mutation of a byte string.
#[derive(Clone, Debug)]
enum Mutation {
    Flip(usize, u8),
    Insert(usize, u8),
    Remove(usize),
    Truncate(usize),
    /// A run of 0xff: a huge length prefix.
    Huge(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1..=255u8).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<usize>().prop_map(Mutation::Remove),
        any::<usize>().prop_map(Mutation::Truncate),
        any::<usize>().prop_map(Mutation::Huge),
    ]
}

fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let at = |i: usize, len: usize| if len == 0 { 0 } else { i % len };
        match *m {
            Mutation::Flip(i, b) if !bytes.is_empty() => {
                let i = at(i, bytes.len());
                bytes[i] ^= b;
            }
            Mutation::Insert(i, b) => bytes.insert(at(i, bytes.len() + 1), b),
            Mutation::Remove(i) if !bytes.is_empty() => {
                bytes.remove(at(i, bytes.len()));
            }
            Mutation::Truncate(i) => bytes.truncate(at(i, bytes.len() + 1)),
            Mutation::Huge(i) => {
                let i = at(i, bytes.len() + 1);
                bytes.splice(i..i, [0xff; 9]);
            }
            _ => {}
        }
    }
    bytes
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(512)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn mutated_real_encodings_decode_or_fail_cleanly(
        pick in any::<usize>(),
        mutations in proptest::collection::vec(mutation(), 1..6),
    ) {
        let corpus = corpus();
        let original = corpus[pick % corpus.len()].clone();
        check(&mutate(original, &mutations))?;
    }

    #[test]
    fn random_bytes_decode_or_fail_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        check(&bytes)?;
    }
}

#[test]
fn the_unmutated_corpus_decodes_within_the_allocation_bound() {
    for bytes in corpus() {
        check(bytes).expect("a real encoding");
    }
}
