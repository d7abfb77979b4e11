//! Versioned on-disk records of Raft data.
//!
//! openraft's serde types may change between alphas; what we persist must not. Every type
//! written to disk is converted into one of these records first, encoded with postcard, and
//! framed by the storage crate (magic, version, CRC). Changing a record means a new variant or
//! a new frame version, with the old one still readable.

use crate::types::{Entry, LogId, SnapshotMeta, StoredMembership, Vote};
use openraft::entry::RaftEntry;
use openraft::{BasicNode, EntryPayload, Membership};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::io;

/// A log id: the term and node of the leader that proposed it, and its index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogIdRecord {
    /// Leader term.
    pub term: u64,
    /// Leader node.
    pub node: u64,
    /// Log index.
    pub index: u64,
}

impl From<&LogId> for LogIdRecord {
    fn from(id: &LogId) -> Self {
        LogIdRecord { term: id.leader_id.term, node: id.leader_id.node_id, index: id.index }
    }
}

impl From<LogIdRecord> for LogId {
    fn from(r: LogIdRecord) -> Self {
        LogId::new(openraft::impls::leader_id_adv::LeaderId { term: r.term, node_id: r.node }, r.index)
    }
}

/// A membership: joint configurations of voter ids and every node's peer address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipRecord {
    /// Voter sets (two during a joint change).
    pub configs: Vec<BTreeSet<u64>>,
    /// Every node (voters and learners) with its peer address.
    pub nodes: BTreeMap<u64, String>,
}

impl From<&Membership<u64, BasicNode>> for MembershipRecord {
    fn from(m: &Membership<u64, BasicNode>) -> Self {
        MembershipRecord {
            configs: m.get_joint_config().clone(),
            nodes: m.nodes().map(|(id, n)| (*id, n.addr.clone())).collect(),
        }
    }
}

impl MembershipRecord {
    /// Back to openraft's type.
    pub fn into_membership(self) -> io::Result<Membership<u64, BasicNode>> {
        let nodes: BTreeMap<u64, BasicNode> =
            self.nodes.into_iter().map(|(id, addr)| (id, BasicNode::new(addr))).collect();
        Membership::new(self.configs, nodes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
    }
}

/// A stored membership: the membership and the log id that introduced it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredMembershipRecord {
    /// Entry that introduced it.
    pub log_id: Option<LogIdRecord>,
    /// The membership.
    pub membership: MembershipRecord,
}

impl From<&StoredMembership> for StoredMembershipRecord {
    fn from(m: &StoredMembership) -> Self {
        StoredMembershipRecord { log_id: m.log_id().as_ref().map(LogIdRecord::from), membership: m.membership().into() }
    }
}

impl StoredMembershipRecord {
    /// Back to openraft's type.
    pub fn into_stored(self) -> io::Result<StoredMembership> {
        Ok(StoredMembership::new(self.log_id.map(LogId::from), self.membership.into_membership()?))
    }
}

/// A log entry's payload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PayloadRecord {
    /// A leader's no-op.
    Blank,
    /// A ledger command.
    Normal(crate::types::Request),
    /// A membership change.
    Membership(MembershipRecord),
}

/// A log entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryRecord {
    /// Its id.
    pub log_id: LogIdRecord,
    /// Its payload.
    pub payload: PayloadRecord,
}

impl From<&Entry> for EntryRecord {
    fn from(e: &Entry) -> Self {
        let payload = match &e.payload {
            EntryPayload::Blank => PayloadRecord::Blank,
            EntryPayload::Normal(r) => PayloadRecord::Normal(r.clone()),
            EntryPayload::Membership(m) => PayloadRecord::Membership(m.into()),
        };
        EntryRecord { log_id: (&e.log_id()).into(), payload }
    }
}

impl EntryRecord {
    /// Back to openraft's type.
    pub fn into_entry(self) -> io::Result<Entry> {
        let payload = match self.payload {
            PayloadRecord::Blank => EntryPayload::Blank,
            PayloadRecord::Normal(req) => EntryPayload::Normal(req),
            PayloadRecord::Membership(m) => EntryPayload::Membership(m.into_membership()?),
        };
        Ok(Entry { log_id: self.log_id.into(), payload })
    }
}

/// A vote.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoteRecord {
    /// Term.
    pub term: u64,
    /// Candidate or leader.
    pub node: u64,
    /// Granted by a quorum.
    pub committed: bool,
}

impl From<&Vote> for VoteRecord {
    fn from(v: &Vote) -> Self {
        VoteRecord { term: v.leader_id.term, node: v.leader_id.node_id, committed: v.committed }
    }
}

impl From<VoteRecord> for Vote {
    fn from(r: VoteRecord) -> Self {
        if r.committed {
            Vote::new_committed(r.term, r.node)
        } else {
            Vote::new(r.term, r.node)
        }
    }
}

/// A snapshot's metadata.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotMetaRecord {
    /// Last log id included.
    pub last_log_id: Option<LogIdRecord>,
    /// Membership as of that log id.
    pub membership: StoredMembershipRecord,
}

impl From<&SnapshotMeta> for SnapshotMetaRecord {
    fn from(m: &SnapshotMeta) -> Self {
        SnapshotMetaRecord {
            last_log_id: m.last_log_id.as_ref().map(LogIdRecord::from),
            membership: (&m.last_membership).into(),
        }
    }
}

impl SnapshotMetaRecord {
    /// Back to openraft's type.
    pub fn into_meta(self) -> io::Result<SnapshotMeta> {
        Ok(SnapshotMeta {
            last_log_id: self.last_log_id.map(LogId::from),
            last_membership: self.membership.into_stored()?,
        })
    }
}

/// The storage-repair marker (meta key `repair`): this node discarded damaged log entries
/// (or a log that no intact snapshot precedes) and must not vote until its log reaches
/// `up_to` again with entries fetched from the leader.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepairRecord {
    /// The highest index the log held before the discard: entries up to it may have been
    /// acknowledged to a leader and counted towards a commit.
    pub up_to: u64,
    /// When the damage was found (wall clock, ms since the Unix epoch).
    pub found_ms: u64,
}

/// Encodes a record.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_stdvec(value).expect("records encode: plain data")
}

/// Decodes a record, mapping failure to `InvalidData`.
pub fn decode<T: for<'a> Deserialize<'a>>(bytes: &[u8]) -> io::Result<T> {
    postcard::from_bytes(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
}
