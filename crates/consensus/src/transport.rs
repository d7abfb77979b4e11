//! The peer transport seam: how one node's RPC reaches another.
//!
//! Production carries these calls over tonic gRPC ([`crate::network::GrpcTransport`]); the
//! deterministic simulator carries them over turmoil's simulated TCP. Either way a call is
//! `(rpc, postcard payload)` one way and postcard bytes back, and the receiving side hands
//! it to the same [`Handler`].

use crate::formats::Announced;
use crate::state_machine::StateMachine;
use crate::types::{LogId, Raft, SnapshotMeta, TypeConfig, Vote};
use crate::{ForwardOp, ForwardReply, Inner};
use futures::future::BoxFuture;
use openraft::async_runtime::WatchReceiver;
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, TransferLeaderRequest, VoteRequest};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// The RPCs between nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Rpc {
    /// Raft log replication and heartbeats.
    AppendEntries,
    /// Raft election.
    Vote,
    /// A whole snapshot in one message: what nodes before chunked transfer sent. Still served,
    /// for a rolling upgrade; no longer sent.
    InstallSnapshot,
    /// Leadership hand-over.
    TransferLeader,
    /// A follower runs an operation on the leader.
    Forward,
    /// A follower asks the leader for a read index.
    ReadIndex,
    /// A client write through any node (forwarded if need be); used by the simulator's
    /// clients, which speak the peer protocol instead of HTTP.
    ClientWrite,
    /// A linearizable read of one account through any node (simulator clients).
    ClientRead,
    /// One piece of a snapshot for a follower too far behind ([`SnapshotChunk`]).
    SnapshotChunk,
    /// The end of a chunked snapshot transfer: install what the chunks carried
    /// ([`SnapshotInstall`]).
    SnapshotInstall,
    /// Raft's pre-vote: would the peer vote for the sender in the next term? Asked before an
    /// election so that a node that was cut off or frozen, and now wakes, does not raise the
    /// term and depose a leader the others still hear.
    PreVote,
}

impl Rpc {
    /// Wire tag.
    pub fn tag(self) -> u8 {
        self as u8
    }

    /// Its name in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Rpc::AppendEntries => "append_entries",
            Rpc::Vote => "vote",
            Rpc::InstallSnapshot => "install_snapshot",
            Rpc::TransferLeader => "transfer_leader",
            Rpc::Forward => "forward",
            Rpc::ReadIndex => "read_index",
            Rpc::ClientWrite => "client_write",
            Rpc::ClientRead => "client_read",
            Rpc::SnapshotChunk => "snapshot_chunk",
            Rpc::SnapshotInstall => "snapshot_install",
            Rpc::PreVote => "pre_vote",
        }
    }

    /// From a wire tag.
    pub fn from_tag(tag: u8) -> Option<Rpc> {
        use Rpc::*;
        [
            AppendEntries,
            Vote,
            InstallSnapshot,
            TransferLeader,
            Forward,
            ReadIndex,
            ClientWrite,
            ClientRead,
            SnapshotChunk,
            SnapshotInstall,
            PreVote,
        ]
        .into_iter()
        .find(|r| r.tag() == tag)
    }
}

/// One piece of a snapshot on its way to a follower. A snapshot travels as a run of these, in
/// order, then a [`SnapshotInstall`]; no message is larger than a chunk, so the peer message
/// limit does not bound the size of the state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotChunk {
    /// The last log id the snapshot includes: it names the snapshot (the state machine is
    /// deterministic, so two snapshots up to one log id are the same bytes). A chunk at offset
    /// 0 starts a new transfer and drops the one under way.
    pub last_log_id: Option<LogId>,
    /// Where `data` starts in the snapshot: 0 first, then each chunk right after the last.
    pub offset: u64,
    /// The whole snapshot's length.
    pub total_bytes: u64,
    /// The bytes.
    pub data: Vec<u8>,
}

/// The end of a chunked transfer: the leader's vote and the snapshot's metadata, with the
/// length and CRC-32C of the whole, which the receiver checks against what it assembled
/// before handing the snapshot to Raft. Answered with openraft's `SnapshotResponse`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotInstall {
    /// The sending leader's vote.
    pub vote: Vote,
    /// The snapshot's metadata (last log id, membership, id).
    pub meta: SnapshotMeta,
    /// The whole snapshot's length.
    pub total_bytes: u64,
    /// CRC-32C of the whole snapshot.
    pub crc32c: u32,
}

/// Largest snapshot a node accepts from a peer: a sanity bound on the declared length (the
/// snapshot goes to disk as it arrives; the state it holds must still fit in memory).
pub const SNAPSHOT_BYTES_MAX: u64 = 1 << 40;

/// The snapshot being received: where the transfer under way stands. The bytes themselves go
/// to the snapshot directory's incoming file as they arrive (see
/// [`crate::state_machine::SnapshotBody`]); this keeps only what checks them: at most one
/// transfer at a time per node (only a leader sends them).
#[derive(Debug, Default)]
pub(crate) struct SnapshotStaging {
    last_log_id: Option<LogId>,
    total_bytes: u64,
    received: u64,
    crc32c: u32,
}

impl SnapshotStaging {
    /// Checks one chunk before its bytes are written; `Ok(true)` if it starts a transfer (the
    /// incoming file is emptied first). A chunk at offset 0 starts over (a new transfer, or
    /// the same one resent after a failure); any other must follow the last byte received.
    pub(crate) fn accept(&mut self, chunk: &SnapshotChunk) -> Result<bool, String> {
        if chunk.total_bytes > SNAPSHOT_BYTES_MAX {
            return Err(format!(
                "a snapshot of {} bytes is beyond the {SNAPSHOT_BYTES_MAX}-byte bound",
                chunk.total_bytes
            ));
        }
        let first = chunk.offset == 0;
        if first {
            if self.received > 0 {
                // The leader gave up on a transfer part-way (a cut connection, a timeout, a
                // newer snapshot) and starts again.
                metrics::counter!("paddock_snapshot_transfers_restarted_total").increment(1);
            }
            *self = SnapshotStaging {
                last_log_id: chunk.last_log_id,
                total_bytes: chunk.total_bytes,
                ..Default::default()
            };
        } else if chunk.last_log_id != self.last_log_id || chunk.total_bytes != self.total_bytes {
            return Err(format!(
                "chunk of the snapshot up to {} at offset {}, but the transfer under way is of the one up to {}: \
                 start again at offset 0",
                log_id_text(&chunk.last_log_id),
                chunk.offset,
                log_id_text(&self.last_log_id)
            ));
        } else if chunk.offset != self.received {
            return Err(format!(
                "chunk at offset {}, but {} bytes have arrived: start again at offset 0",
                chunk.offset, self.received
            ));
        }
        let end = chunk.offset.saturating_add(chunk.data.len() as u64);
        if end > self.total_bytes {
            let total = self.total_bytes;
            *self = SnapshotStaging::default();
            return Err(format!("chunk ends at byte {end}, past the snapshot's {total} bytes"));
        }
        Ok(first)
    }

    /// Counts an accepted chunk's bytes as written.
    pub(crate) fn advance(&mut self, data: &[u8]) {
        self.received += data.len() as u64;
        self.crc32c = crc32c::crc32c_append(self.crc32c, data);
    }

    /// Drops the transfer under way (its bytes could not be written): the next chunk must
    /// start again at offset 0.
    pub(crate) fn abandon(&mut self) {
        *self = SnapshotStaging::default();
    }

    /// Ends the transfer: the length of the whole snapshot received if it matches the install
    /// request; on any mismatch the transfer under way is dropped (the leader starts again).
    pub(crate) fn finish(&mut self, install: &SnapshotInstall) -> Result<u64, String> {
        let staged = std::mem::take(self);
        if staged.last_log_id != install.meta.last_log_id {
            return Err(format!(
                "install of the snapshot up to {}, but the chunks received are of the one up to {}",
                log_id_text(&install.meta.last_log_id),
                log_id_text(&staged.last_log_id)
            ));
        }
        if staged.received != install.total_bytes || staged.total_bytes != install.total_bytes {
            return Err(format!(
                "install of a {}-byte snapshot, but {} bytes arrived",
                install.total_bytes, staged.received
            ));
        }
        if staged.crc32c != install.crc32c {
            return Err(format!(
                "the assembled snapshot's CRC-32C is {:08x}, the leader's {:08x}: damaged in transit",
                staged.crc32c, install.crc32c
            ));
        }
        Ok(staged.received)
    }
}

/// A log id as an operator reads it: `term-node-index`, or `none`.
fn log_id_text(id: &Option<LogId>) -> String {
    match id {
        Some(id) => format!("{}-{}-{}", id.leader_id.term, id.leader_id.node_id, id.index),
        None => "none".to_string(),
    }
}

/// Why a peer call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerError {
    /// Could not connect, or the connection broke before an answer.
    #[error("peer {addr} unreachable: {message}")]
    Unreachable {
        /// Peer address.
        addr: String,
        /// Transport detail.
        message: String,
        /// True if the request certainly never reached the peer (connection refused).
        never_sent: bool,
    },
    /// The peer answered with an error.
    #[error("peer {addr} refused: {message}")]
    Refused {
        /// Peer address.
        addr: String,
        /// Detail.
        message: String,
    },
    /// The peer's build does not serve this RPC (an older version, during a rolling upgrade).
    #[error("peer {addr} does not serve this call (an older version?): {message}")]
    Unsupported {
        /// Peer address.
        addr: String,
        /// Detail.
        message: String,
    },
}

/// Carries one RPC to a peer and brings back its answer.
pub trait Transport: Send + Sync + 'static {
    /// Sends `payload` as `rpc` to the node at `addr`, waiting at most `timeout`.
    fn call(
        &self,
        addr: String,
        rpc: Rpc,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<Vec<u8>, PeerError>>;
}

/// Calls `rpc` with a typed request and decodes the typed answer.
pub async fn call<Req: Serialize, Resp: DeserializeOwned>(
    transport: &dyn Transport,
    addr: &str,
    rpc: Rpc,
    req: &Req,
    timeout: Duration,
) -> Result<Resp, PeerError> {
    let payload = postcard::to_stdvec(req).expect("peer requests encode");
    call_encoded(transport, addr, rpc, payload, timeout).await
}

/// [`call`] with a request already encoded.
pub async fn call_encoded<Resp: DeserializeOwned>(
    transport: &dyn Transport,
    addr: &str,
    rpc: Rpc,
    payload: Vec<u8>,
    timeout: Duration,
) -> Result<Resp, PeerError> {
    let bytes = transport.call(addr.to_string(), rpc, payload, timeout).await?;
    postcard::from_bytes(&bytes)
        .map_err(|e| PeerError::Refused { addr: addr.to_string(), message: format!("undecodable answer: {e}") })
}

/// The trailing flags byte of a forwarded write's answer: the answer was a replay.
pub const FLAG_REPLAYED: u8 = 1;

/// Encodes a [`ForwardReply`]: its postcard bytes, then for a write's answer one flags byte
/// ([`FLAG_REPLAYED`]). The flags trail the enum so that the enum's layout stays what older
/// builds decode: postcard ignores trailing bytes, so an older build reads the answer and
/// drops the flag, and an answer from an older build has no flags and reads as a first answer.
pub fn encode_forward_reply(reply: &ForwardReply) -> Vec<u8> {
    let mut bytes = postcard::to_stdvec(reply).expect("forward replies encode: plain data");
    if let ForwardReply::Written { replayed, .. } = reply {
        bytes.push(if *replayed { FLAG_REPLAYED } else { 0 });
    }
    bytes
}

/// Decodes what [`encode_forward_reply`] wrote, or an older build's answer without flags.
pub fn decode_forward_reply(bytes: &[u8]) -> Result<ForwardReply, postcard::Error> {
    let (mut reply, rest) = postcard::take_from_bytes::<ForwardReply>(bytes)?;
    if let ForwardReply::Written { replayed, .. } = &mut reply {
        *replayed = rest.first().is_some_and(|flags| flags & FLAG_REPLAYED != 0);
    }
    Ok(reply)
}

/// The trailing flags byte of an append's answer: the follower is repairing damaged storage
/// (it discarded log entries it may have acknowledged before; see `repair.rs`), so the leader
/// lets its log go backwards instead of taking the shorter log for a bug. Trailing, like
/// [`FLAG_REPLAYED`], so that an older leader reads the answer and ignores the flag.
pub const FLAG_REPAIRING: u8 = 1;

/// Encodes an append's answer: its postcard bytes, then the trailer: a flags byte
/// ([`FLAG_REPAIRING`] if `repairing`), then what this node announces (`own`): the newest
/// log-entry format it reads, its build version (a length byte and UTF-8) and when its process
/// started (8 bytes little-endian), which the leader keeps to gate newer formats
/// (`formats.rs`) and to tell a replaced process from the one before. An older leader reads the
/// flags byte only.
pub fn encode_append_answer(answer: &AppendEntriesResponse<TypeConfig>, repairing: bool, own: &Announced) -> Vec<u8> {
    let mut bytes = postcard::to_stdvec(answer).expect("append answers encode: plain data");
    bytes.push(if repairing { FLAG_REPAIRING } else { 0 });
    bytes.push(own.format);
    let version = own.version.as_bytes();
    let version = &version[..version.len().min(u8::MAX as usize)];
    bytes.push(version.len() as u8);
    bytes.extend_from_slice(version);
    bytes.extend_from_slice(&own.started_ms.to_le_bytes());
    bytes
}

/// Decodes what [`encode_append_answer`] wrote, or an older build's answer (flags only when
/// repairing, no announcement): the answer, whether the follower is repairing, and what it
/// announced (nothing from a trailer cut short).
pub fn decode_append_answer(
    bytes: &[u8],
) -> Result<(AppendEntriesResponse<TypeConfig>, bool, Option<Announced>), postcard::Error> {
    let (answer, rest) = postcard::take_from_bytes::<AppendEntriesResponse<TypeConfig>>(bytes)?;
    let repairing = rest.first().is_some_and(|flags| flags & FLAG_REPAIRING != 0);
    let announced = match rest {
        [_flags, format, len, tail @ ..] if tail.len() >= *len as usize + 8 => {
            let (version, started) = tail.split_at(*len as usize);
            let started: [u8; 8] = started[..8].try_into().expect("eight bytes");
            Some(Announced {
                format: *format,
                version: String::from_utf8_lossy(version).into_owned(),
                started_ms: u64::from_le_bytes(started),
            })
        }
        _ => None,
    };
    Ok((answer, repairing, announced))
}

/// Forwards `op` to the node at `addr` and decodes its answer with its flags.
pub async fn call_forward(
    transport: &dyn Transport,
    addr: &str,
    op: &ForwardOp,
    timeout: Duration,
) -> Result<ForwardReply, PeerError> {
    let payload = postcard::to_stdvec(op).expect("peer requests encode");
    let bytes = transport.call(addr.to_string(), Rpc::Forward, payload, timeout).await?;
    decode_forward_reply(&bytes)
        .map_err(|e| PeerError::Refused { addr: addr.to_string(), message: format!("undecodable answer: {e}") })
}

/// Why the receiving side refused a call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandlerError {
    /// The caller belongs to another cluster.
    #[error("{0}")]
    WrongCluster(String),
    /// The payload did not decode.
    #[error("{0}")]
    BadRequest(String),
    /// Raft is not running.
    #[error("{0}")]
    Unavailable(String),
    /// The caller's certificate names no member of this cluster.
    #[error("{0}")]
    NotMember(String),
}

/// Who sent a peer call, as the transport knows it.
#[derive(Clone, Copy, Debug)]
pub enum Caller<'a> {
    /// A transport without identities: plain TCP on a trusted network, or the simulator.
    Unchecked,
    /// Mutual TLS: the caller's leaf certificate, already verified against the cluster CA.
    Certificate(&'a rustls::pki_types::CertificateDer<'static>),
}

/// The receiving side of every peer RPC.
#[derive(Clone)]
pub struct Handler {
    pub(crate) cluster_id: Arc<str>,
    pub(crate) raft: Raft,
    /// Weak: the handler lives inside servers that `Inner` outlives.
    pub(crate) inner: Weak<Inner>,
    /// The snapshot being received in chunks, if any. An async lock: it is held while a
    /// chunk is written to disk and while a received snapshot is installed, so no other
    /// transfer's chunk lands in the incoming file meanwhile.
    pub(crate) staging: Arc<tokio::sync::Mutex<SnapshotStaging>>,
}

fn open<T: DeserializeOwned>(payload: &[u8]) -> Result<T, HandlerError> {
    postcard::from_bytes(payload).map_err(|e| HandlerError::BadRequest(format!("undecodable request: {e}")))
}

fn seal<T: Serialize>(value: &T) -> Result<Vec<u8>, HandlerError> {
    postcard::to_stdvec(value).map_err(|e| HandlerError::Unavailable(e.to_string()))
}

impl Handler {
    /// The cluster this node belongs to.
    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    /// This node's state machine (its snapshot directory receives snapshots).
    fn state_machine(&self) -> Result<StateMachine, HandlerError> {
        let inner = self.inner.upgrade().ok_or_else(|| HandlerError::Unavailable("node is shutting down".into()))?;
        Ok(inner.sm.clone())
    }

    /// While this node repairs damaged storage it may lack committed entries it once
    /// acknowledged: it must not help elect anyone, nor lead (see `repair.rs`).
    fn refuse_while_repairing(&self, what: &str) -> Result<(), HandlerError> {
        let Some(marker) = self.inner.upgrade().and_then(|inner| inner.repairing()) else { return Ok(()) };
        metrics::counter!("paddock_peer_refused_total", "reason" => "repairing").increment(1);
        Err(HandlerError::Unavailable(format!(
            "this node is repairing damaged storage and does not {what} until its log is fetched again up to index {}",
            marker.up_to
        )))
    }

    /// Serves one RPC from a caller whose identity the transport does not check.
    pub async fn handle(&self, cluster_id: &str, rpc: Rpc, payload: &[u8]) -> Result<Vec<u8>, HandlerError> {
        self.handle_from(Caller::Unchecked, cluster_id, rpc, payload).await
    }

    /// Whether `cert` names a node of this node's membership. A node not yet in any cluster
    /// (no membership: waiting to be bootstrapped or added) has nothing to protect and must
    /// hear from whichever node adds it, so any certificate of the cluster CA will do then.
    fn names_a_member(&self, cert: &rustls::pki_types::CertificateDer<'static>) -> bool {
        let membership = self.raft.metrics().borrow_watched().membership_config.clone();
        let mut members = membership.membership().nodes().map(|(id, _)| *id).peekable();
        if members.peek().is_none() {
            return true;
        }
        members.any(|id| crate::tls::cert_names_node(cert, &self.cluster_id, id))
    }

    /// Serves one RPC from `caller`. With a certificate, only a member may call, except for
    /// the membership question a node starting on an empty data directory asks (it learns
    /// voter ids, nothing else).
    pub async fn handle_from(
        &self,
        caller: Caller<'_>,
        cluster_id: &str,
        rpc: Rpc,
        payload: &[u8],
    ) -> Result<Vec<u8>, HandlerError> {
        if cluster_id != &*self.cluster_id {
            return Err(HandlerError::WrongCluster(format!(
                "this node belongs to cluster {:?}, the caller to {cluster_id:?}",
                self.cluster_id
            )));
        }
        if let Caller::Certificate(cert) = caller {
            let membership_question =
                rpc == Rpc::Forward && matches!(postcard::from_bytes::<ForwardOp>(payload), Ok(ForwardOp::Membership));
            if !membership_question && !self.names_a_member(cert) {
                metrics::counter!("paddock_peer_refused_total", "reason" => "not_member").increment(1);
                return Err(HandlerError::NotMember(
                    "the caller's certificate names no member of this cluster: add the node first (paddock members add)"
                        .into(),
                ));
            }
        }
        let unavailable = |e: &dyn std::fmt::Display| HandlerError::Unavailable(e.to_string());
        match rpc {
            Rpc::AppendEntries => {
                let req: AppendEntriesRequest<TypeConfig> = open(payload)?;
                let (arrived, leader_commit) =
                    (tokio::time::Instant::now(), req.leader_commit.as_ref().map(|l| l.index));
                // Read before and after: the marker may be removed while the append runs, and a
                // conflict that arose from the discarded log must still carry the flag.
                let inner = self.inner.upgrade();
                let repairing_before = inner.as_ref().is_some_and(|inner| inner.repairing().is_some());
                let answer = self.raft.append_entries(req).await.map_err(|e| unavailable(&e))?;
                let mut repairing = repairing_before;
                if let Some(inner) = &inner {
                    inner.lag.heard(arrived, leader_commit);
                    repairing |= inner.repairing().is_some();
                }
                // Borrowed, not cloned: every append answer carries it.
                match &inner {
                    Some(inner) => Ok(encode_append_answer(&answer, repairing, inner.formats.own())),
                    None => Ok(encode_append_answer(&answer, repairing, &Announced::this_build(0))),
                }
            }
            Rpc::Vote => {
                self.refuse_while_repairing("vote")?;
                let req: VoteRequest<TypeConfig> = open(payload)?;
                seal(&self.raft.vote(req).await.map_err(|e| unavailable(&e))?)
            }
            Rpc::PreVote => {
                self.refuse_while_repairing("vote")?;
                let req: VoteRequest<TypeConfig> = open(payload)?;
                seal(&self.raft.pre_vote(req).await.map_err(|e| unavailable(&e))?)
            }
            Rpc::InstallSnapshot => {
                // A whole snapshot in one message (state bytes and metadata): written as a
                // snapshot file to the incoming file and installed like a chunked transfer.
                let (vote, meta, data): (Vote, SnapshotMeta, Vec<u8>) = open(payload)?;
                let sm = self.state_machine()?;
                let mut staging = self.staging.lock().await;
                staging.abandon();
                let index = meta.last_log_id.as_ref().map_or(0, |l| l.index);
                let file = paddock_storage::SnapshotFiles::encode_parts(
                    index,
                    &crate::records::encode(&crate::records::SnapshotMetaRecord::from(&meta)),
                    &data,
                );
                drop(data);
                let len = file.len() as u64;
                sm.append_incoming(file, true)
                    .await
                    .map_err(|e| unavailable(&format!("cannot write the snapshot to disk: {e}")))?;
                let snapshot = crate::types::Snapshot { meta, snapshot: sm.incoming_body(len) };
                let answer = self.raft.install_full_snapshot(vote, snapshot).await.map_err(|e| unavailable(&e))?;
                drop(staging);
                seal(&answer)
            }
            Rpc::SnapshotChunk => {
                let chunk: SnapshotChunk = open(payload)?;
                let sm = self.state_machine()?;
                let mut staging = self.staging.lock().await;
                let first = staging.accept(&chunk).map_err(HandlerError::BadRequest)?;
                match sm.append_incoming(chunk.data, first).await {
                    Ok(data) => {
                        staging.advance(&data);
                        metrics::counter!("paddock_snapshot_received_bytes_total").increment(data.len() as u64);
                        seal(&())
                    }
                    Err(e) => {
                        staging.abandon();
                        Err(unavailable(&format!("cannot write the snapshot chunk to disk: {e}")))
                    }
                }
            }
            Rpc::SnapshotInstall => {
                let install: SnapshotInstall = open(payload)?;
                let sm = self.state_machine()?;
                let mut staging = self.staging.lock().await;
                let len = staging.finish(&install).map_err(HandlerError::BadRequest)?;
                let snapshot = crate::types::Snapshot { meta: install.meta, snapshot: sm.incoming_body(len) };
                let answer =
                    self.raft.install_full_snapshot(install.vote, snapshot).await.map_err(|e| unavailable(&e))?;
                drop(staging);
                seal(&answer)
            }
            Rpc::TransferLeader => {
                let req: TransferLeaderRequest<TypeConfig> = open(payload)?;
                if self.inner.upgrade().is_some_and(|inner| *req.to_node_id() == inner.id) {
                    self.refuse_while_repairing("take leadership")?;
                }
                seal(&self.raft.handle_transfer_leader(req).await.map_err(|e| unavailable(&e))?)
            }
            Rpc::Forward => {
                let op: ForwardOp = open(payload)?;
                let inner =
                    self.inner.upgrade().ok_or_else(|| HandlerError::Unavailable("node is shutting down".into()))?;
                let reply: ForwardReply = inner.run_as_leader(op).await;
                Ok(encode_forward_reply(&reply))
            }
            Rpc::ReadIndex => {
                let (): () = open(payload)?;
                let inner =
                    self.inner.upgrade().ok_or_else(|| HandlerError::Unavailable("node is shutting down".into()))?;
                let reply: Result<u64, String> = inner.leader_read_index().await.map_err(|e| e.to_string());
                seal(&reply)
            }
            #[cfg(not(feature = "sim"))]
            Rpc::ClientWrite | Rpc::ClientRead => {
                Err(HandlerError::BadRequest("the simulator's client calls are not served by production builds".into()))
            }
            #[cfg(feature = "sim")]
            Rpc::ClientWrite => {
                let command: paddock_ledger::Command = open(payload)?;
                let inner =
                    self.inner.upgrade().ok_or_else(|| HandlerError::Unavailable("node is shutting down".into()))?;
                let reply: Result<crate::Written, crate::WriteError> = inner.write(command).await;
                seal(&reply)
            }
            #[cfg(feature = "sim")]
            Rpc::ClientRead => {
                let account: paddock_ledger::AccountId = open(payload)?;
                let inner =
                    self.inner.upgrade().ok_or_else(|| HandlerError::Unavailable("node is shutting down".into()))?;
                // The stale-read bug (simulator teeth only) skips the read index.
                let linearized = if crate::faults::serve_stale_reads() { Ok(()) } else { inner.linearize().await };
                let reply: Result<(u64, Option<paddock_ledger::AccountView>), String> = match linearized {
                    Ok(()) => Ok(inner.read_account(account)),
                    Err(e) => Err(e.to_string()),
                };
                seal(&reply)
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::{SnapshotChunk, SnapshotInstall, SnapshotStaging};
    use crate::records::{LogIdRecord, MembershipRecord, SnapshotMetaRecord, StoredMembershipRecord};
    use crate::types::{LogId, Vote};

    fn log_id(index: u64) -> Option<LogId> {
        Some(LogId::from(LogIdRecord { term: 2, node: 1, index }))
    }

    fn chunk(index: u64, offset: u64, total_bytes: u64, data: &[u8]) -> SnapshotChunk {
        SnapshotChunk { last_log_id: log_id(index), offset, total_bytes, data: data.to_vec() }
    }

    /// Metadata of a one-voter cluster's snapshot up to `index` (term 2, node 1): the network
    /// tests' fixture too.
    pub(crate) fn meta(index: u64) -> crate::types::SnapshotMeta {
        SnapshotMetaRecord {
            last_log_id: Some(LogIdRecord { term: 2, node: 1, index }),
            membership: StoredMembershipRecord {
                log_id: None,
                membership: MembershipRecord {
                    configs: vec![[1].into_iter().collect()],
                    nodes: [(1, "127.0.0.1:7001".to_string())].into_iter().collect(),
                },
            },
        }
        .into_meta()
        .expect("valid metadata")
    }

    fn install(index: u64, whole: &[u8]) -> SnapshotInstall {
        let meta = meta(index);
        SnapshotInstall {
            vote: Vote::from(crate::records::VoteRecord { term: 2, node: 1, committed: true }),
            meta,
            total_bytes: whole.len() as u64,
            crc32c: crc32c::crc32c(whole),
        }
    }

    /// Receives `chunk` as the handler does, with `file` standing for the incoming file.
    fn feed(staging: &mut SnapshotStaging, file: &mut Vec<u8>, chunk: SnapshotChunk) -> Result<(), String> {
        if staging.accept(&chunk)? {
            file.clear();
        }
        file.extend_from_slice(&chunk.data);
        staging.advance(&chunk.data);
        Ok(())
    }

    #[test]
    fn chunks_received_in_order_assemble_the_snapshot_the_install_names() {
        let (mut staging, mut file) = (SnapshotStaging::default(), Vec::new());
        feed(&mut staging, &mut file, chunk(40, 0, 10, b"0123")).unwrap();
        feed(&mut staging, &mut file, chunk(40, 4, 10, b"4567")).unwrap();
        feed(&mut staging, &mut file, chunk(40, 8, 10, b"89")).unwrap();
        assert_eq!(staging.finish(&install(40, b"0123456789")).unwrap(), 10);
        assert_eq!(file, b"0123456789");
        assert_eq!(staging.received, 0, "a finished transfer leaves nothing under way");
    }

    #[test]
    fn a_chunk_out_of_order_or_of_another_snapshot_is_refused_until_a_transfer_starts_again() {
        let (mut staging, mut file) = (SnapshotStaging::default(), Vec::new());
        feed(&mut staging, &mut file, chunk(40, 0, 10, b"0123")).unwrap();
        let gap = feed(&mut staging, &mut file, chunk(40, 8, 10, b"89")).unwrap_err();
        assert!(gap.contains("offset 8, but 4 bytes have arrived"), "{gap}");
        let other = feed(&mut staging, &mut file, chunk(41, 4, 10, b"4567")).unwrap_err();
        assert!(other.contains("up to 2-1-41") && other.contains("up to 2-1-40"), "{other}");
        // A resend from offset 0 (of this or another snapshot) starts over, the file emptied.
        feed(&mut staging, &mut file, chunk(41, 0, 4, b"abcd")).unwrap();
        assert_eq!(staging.finish(&install(41, b"abcd")).unwrap(), 4);
        assert_eq!(file, b"abcd");
    }

    #[test]
    fn a_chunk_that_could_not_be_written_makes_the_next_one_start_again() {
        let (mut staging, mut file) = (SnapshotStaging::default(), Vec::new());
        feed(&mut staging, &mut file, chunk(40, 0, 10, b"0123")).unwrap();
        staging.accept(&chunk(40, 4, 10, b"4567")).unwrap();
        staging.abandon();
        let lost = feed(&mut staging, &mut file, chunk(40, 4, 10, b"4567")).unwrap_err();
        assert!(lost.contains("start again at offset 0"), "{lost}");
    }

    #[test]
    fn an_install_that_does_not_match_the_chunks_is_refused_and_drops_them() {
        let (mut staging, mut file) = (SnapshotStaging::default(), Vec::new());
        feed(&mut staging, &mut file, chunk(40, 0, 10, b"0123")).unwrap();
        let short = staging.finish(&install(40, b"0123456789")).unwrap_err();
        assert!(short.contains("10-byte snapshot, but 4 bytes arrived"), "{short}");
        assert_eq!(staging.received, 0);

        feed(&mut staging, &mut file, chunk(40, 0, 4, b"0123")).unwrap();
        let other = staging.finish(&install(39, b"0123")).unwrap_err();
        assert!(other.contains("up to 2-1-39"), "{other}");

        feed(&mut staging, &mut file, chunk(40, 0, 4, b"0123")).unwrap();
        let damaged = staging.finish(&install(40, b"0124")).unwrap_err();
        assert!(damaged.contains("damaged in transit"), "{damaged}");
    }

    #[test]
    fn a_chunk_past_the_declared_length_or_a_length_beyond_the_bound_is_refused() {
        let (mut staging, mut file) = (SnapshotStaging::default(), Vec::new());
        feed(&mut staging, &mut file, chunk(40, 0, 6, b"0123")).unwrap();
        let past = feed(&mut staging, &mut file, chunk(40, 4, 6, b"4567")).unwrap_err();
        assert!(past.contains("ends at byte 8, past the snapshot's 6 bytes"), "{past}");
        let huge = staging.accept(&chunk(40, 0, super::SNAPSHOT_BYTES_MAX + 1, b"")).unwrap_err();
        assert!(huge.contains("beyond"), "{huge}");
    }
}
