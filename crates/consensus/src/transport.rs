//! The peer transport seam: how one node's RPC reaches another.
//!
//! Production carries these calls over tonic gRPC ([`crate::network::GrpcTransport`]); the
//! deterministic simulator carries them over turmoil's simulated TCP. Either way a call is
//! `(rpc, postcard payload)` one way and postcard bytes back, and the receiving side hands
//! it to the same [`Handler`].

use crate::types::{Raft, SnapshotMeta, TypeConfig, Vote};
use crate::{ForwardOp, ForwardReply, Inner};
use futures::future::BoxFuture;
use openraft::async_runtime::WatchReceiver;
use openraft::raft::{AppendEntriesRequest, TransferLeaderRequest, VoteRequest};
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
    /// A whole snapshot for a follower too far behind.
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
}

impl Rpc {
    /// Wire tag.
    pub fn tag(self) -> u8 {
        self as u8
    }

    /// From a wire tag.
    pub fn from_tag(tag: u8) -> Option<Rpc> {
        use Rpc::*;
        [AppendEntries, Vote, InstallSnapshot, TransferLeader, Forward, ReadIndex, ClientWrite, ClientRead]
            .into_iter()
            .find(|r| r.tag() == tag)
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
    let bytes = transport.call(addr.to_string(), rpc, payload, timeout).await?;
    postcard::from_bytes(&bytes)
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
                seal(&self.raft.append_entries(req).await.map_err(|e| unavailable(&e))?)
            }
            Rpc::Vote => {
                let req: VoteRequest<TypeConfig> = open(payload)?;
                seal(&self.raft.vote(req).await.map_err(|e| unavailable(&e))?)
            }
            Rpc::InstallSnapshot => {
                let (vote, meta, data): (Vote, SnapshotMeta, Vec<u8>) = open(payload)?;
                let snapshot = crate::types::Snapshot { meta, snapshot: data };
                seal(&self.raft.install_full_snapshot(vote, snapshot).await.map_err(|e| unavailable(&e))?)
            }
            Rpc::TransferLeader => {
                let req: TransferLeaderRequest<TypeConfig> = open(payload)?;
                seal(&self.raft.handle_transfer_leader(req).await.map_err(|e| unavailable(&e))?)
            }
            Rpc::Forward => {
                let op: ForwardOp = open(payload)?;
                let inner =
                    self.inner.upgrade().ok_or_else(|| HandlerError::Unavailable("node is shutting down".into()))?;
                let reply: ForwardReply = inner.run_as_leader(op).await;
                seal(&reply)
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
