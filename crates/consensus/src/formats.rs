//! Log-entry formats in a mixed-version cluster.
//!
//! During a rolling upgrade old and new builds run side by side. A leader of the new build must
//! never replicate an entry an old follower cannot decode: the follower would refuse every
//! append from that entry on and stay behind, and if old builds made up a majority nothing
//! would commit. So every member announces the newest entry format it reads (and its build
//! version) in a trailer of each append answer (`transport::encode_append_answer`); the leader
//! keeps what each member last announced, and the cluster's format is the oldest of them. A
//! command whose format is newer is refused before it is proposed (`WriteError::FormatNotActive`).
//! A member that has announced nothing yet (just restarted, or a build older than the
//! announcement) counts as the first format, so the cluster's format only rises once every
//! member has answered.
//!
//! The other half is on disk: each entry is framed at its own format (`log_store.rs`), and a
//! node refuses to start on a log holding an entry newer than it reads
//! (`StartError::NewerFormat`) rather than taking it for damage.

use crate::types::Entry;
use openraft::EntryPayload;
use paddock_ledger::{ENTRY_FORMAT, ENTRY_FORMAT_FIRST};
use std::collections::BTreeMap;
use std::sync::Mutex;

/// This build's version, as peers announce it to the leader and `paddock --version` prints it.
pub const BUILD_VERSION: &str = if cfg!(feature = "next-format") {
    concat!(env!("CARGO_PKG_VERSION"), "+next-format")
} else {
    env!("CARGO_PKG_VERSION")
};

/// The format an entry is written in: its command's, or the first for blank and membership
/// entries (whose encoding has not changed).
pub(crate) fn entry_format(entry: &Entry) -> u8 {
    match &entry.payload {
        EntryPayload::Normal(request) => request.command.format(),
        EntryPayload::Blank | EntryPayload::Membership(_) => ENTRY_FORMAT_FIRST,
    }
}

/// What a member announced in its last append answer.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Announced {
    /// The newest entry format it reads.
    pub format: u8,
    /// Its build version.
    pub version: String,
    /// When its process started (wall clock, ms since the Unix epoch): a replaced or restarted
    /// node announces a new one, which is how `paddock upgrade` knows the new process answers.
    pub started_ms: u64,
}

impl Announced {
    /// What this build announces for a process started at `started_ms`.
    pub fn this_build(started_ms: u64) -> Announced {
        Announced { format: ENTRY_FORMAT, version: BUILD_VERSION.to_string(), started_ms }
    }
}

/// What the members announced to this node while it led, each with the term it led in: only
/// the current term's count, so that a member replaced while this node did not lead is not
/// taken at its word from before.
pub(crate) struct PeerFormats {
    announced: Mutex<BTreeMap<u64, (u64, Announced)>>,
    /// What this node itself announces in its append answers.
    own: Announced,
}

impl PeerFormats {
    /// An empty record for a node whose process started at `started_ms`.
    pub(crate) fn new(started_ms: u64) -> PeerFormats {
        PeerFormats { announced: Mutex::default(), own: Announced::this_build(started_ms) }
    }

    /// What this node announces (`transport::encode_append_answer` writes it).
    pub(crate) fn own(&self) -> &Announced {
        &self.own
    }

    /// Records `node`'s announcement in an answer to an append of `term`; `None` (an answer
    /// without one: an older build) forgets what it said before, so a member replaced by an
    /// older build counts as the first format. A late answer from an older term changes
    /// nothing.
    pub(crate) fn record(&self, node: u64, term: u64, announced: Option<Announced>) {
        let mut map = self.announced.lock().expect("peer formats lock");
        if map.get(&node).is_some_and(|(t, _)| *t > term) {
            return;
        }
        match announced {
            Some(a) => {
                if map.get(&node).is_none_or(|(t, known)| *t != term || *known != a) {
                    map.insert(node, (term, a));
                }
            }
            None => {
                map.remove(&node);
            }
        }
    }

    /// Forgets what `node` announced: an append to it failed, and the process that answers
    /// next may be another build (it was stopped and replaced), so until it answers it counts
    /// as reading the first format.
    pub(crate) fn forget(&self, node: u64) {
        self.announced.lock().expect("peer formats lock").remove(&node);
    }

    /// What `node` announced in `term`, if anything; this node's own for `me`.
    pub(crate) fn of(&self, node: u64, me: u64, term: u64) -> Option<Announced> {
        if node == me {
            return Some(self.own.clone());
        }
        let map = self.announced.lock().expect("peer formats lock");
        map.get(&node).filter(|(t, _)| *t == term).map(|(_, a)| a.clone())
    }

    /// The newest format every one of `members` reads (this node included as `me`), and the
    /// members that hold it back below this build's own.
    pub(crate) fn cluster_format(&self, members: impl IntoIterator<Item = u64>, me: u64, term: u64) -> (u8, Vec<u64>) {
        let reads: Vec<(u64, u8)> = members
            .into_iter()
            .map(|id| (id, self.of(id, me, term).map_or(ENTRY_FORMAT_FIRST, |a| a.format)))
            .collect();
        let format = reads.iter().map(|(_, f)| *f).fold(ENTRY_FORMAT, u8::min);
        let behind = reads.iter().filter(|(_, f)| *f < ENTRY_FORMAT).map(|(id, _)| *id).collect();
        (format, behind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn announced(format: u8) -> Option<Announced> {
        Some(Announced { format, version: format!("test-{format}"), started_ms: 1_000 })
    }

    #[test]
    fn the_cluster_reads_what_its_oldest_member_announced_and_a_silent_member_counts_as_the_first_format() {
        let formats = PeerFormats::new(1_000);
        let (format, behind) = formats.cluster_format([1, 2, 3], 1, 5);
        assert_eq!(format, ENTRY_FORMAT_FIRST, "members 2 and 3 have announced nothing yet");
        assert_eq!(behind, if ENTRY_FORMAT > ENTRY_FORMAT_FIRST { vec![2, 3] } else { vec![] });

        formats.record(2, 5, announced(ENTRY_FORMAT));
        formats.record(3, 5, announced(ENTRY_FORMAT));
        assert_eq!(formats.cluster_format([1, 2, 3], 1, 5), (ENTRY_FORMAT, vec![]));

        // Member 3 is replaced by a build older than the announcement: it answers without one.
        formats.record(3, 5, None);
        assert_eq!(formats.cluster_format([1, 2, 3], 1, 5).0, ENTRY_FORMAT_FIRST);
    }

    #[test]
    fn a_member_that_reads_an_older_format_holds_the_cluster_to_it() {
        let formats = PeerFormats::new(1_000);
        formats.record(2, 5, announced(ENTRY_FORMAT));
        formats.record(3, 5, announced(ENTRY_FORMAT_FIRST));
        let (format, behind) = formats.cluster_format([1, 2, 3], 1, 5);
        assert_eq!(format, ENTRY_FORMAT_FIRST);
        if ENTRY_FORMAT > ENTRY_FORMAT_FIRST {
            assert_eq!(behind, vec![3]);
        }
        // A member no longer in the membership holds nothing back.
        assert_eq!(formats.cluster_format([1, 2], 1, 5), (ENTRY_FORMAT, vec![]));
    }

    #[test]
    fn only_what_members_announced_in_the_current_term_counts() {
        let formats = PeerFormats::new(1_000);
        formats.record(2, 5, announced(ENTRY_FORMAT));
        formats.record(3, 5, announced(ENTRY_FORMAT));
        assert_eq!(formats.cluster_format([1, 2, 3], 1, 5).0, ENTRY_FORMAT);
        // This node leads again in term 7: members may have been replaced meanwhile.
        assert_eq!(formats.cluster_format([1, 2, 3], 1, 7).0, ENTRY_FORMAT_FIRST);
        assert_eq!(formats.of(2, 1, 7), None);
        formats.record(2, 7, announced(ENTRY_FORMAT));
        formats.record(3, 7, announced(ENTRY_FORMAT));
        assert_eq!(formats.cluster_format([1, 2, 3], 1, 7).0, ENTRY_FORMAT);
        // A late answer to an append of term 5 changes nothing.
        formats.record(3, 5, announced(ENTRY_FORMAT_FIRST));
        assert_eq!(formats.cluster_format([1, 2, 3], 1, 7).0, ENTRY_FORMAT);
    }

    #[test]
    fn a_member_whose_append_failed_counts_as_the_first_format_until_it_answers_again() {
        // Node 3 announced the newest format, then was stopped to be replaced (maybe by an
        // older build): until the process that answers next says otherwise, it holds the
        // cluster to the first format.
        let formats = PeerFormats::new(1_000);
        formats.record(2, 5, announced(ENTRY_FORMAT));
        formats.record(3, 5, announced(ENTRY_FORMAT));
        formats.forget(3);
        assert_eq!(formats.cluster_format([1, 2, 3], 1, 5).0, ENTRY_FORMAT_FIRST);
        assert_eq!(formats.of(3, 1, 5), None);
        formats.record(3, 5, announced(ENTRY_FORMAT));
        assert_eq!(formats.cluster_format([1, 2, 3], 1, 5).0, ENTRY_FORMAT);
    }

    #[test]
    fn this_node_announces_its_own_format_and_build_version() {
        let me = PeerFormats::new(1_000).of(7, 7, 1).unwrap();
        assert_eq!(me.format, ENTRY_FORMAT);
        assert_eq!(me.version, BUILD_VERSION);
        assert_eq!(me.started_ms, 1_000);
        assert!(BUILD_VERSION.starts_with(env!("CARGO_PKG_VERSION")));
    }
}
