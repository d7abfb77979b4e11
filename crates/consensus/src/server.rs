//! The peer network, server side: the gRPC service other nodes call.
//!
//! Raft RPCs go straight to openraft. `Forward` runs a client write (or a membership change)
//! that a follower received; `ReadIndex` gives a follower the index it must apply before a
//! linearizable read. Frames from another cluster are refused.

use crate::proto::peer_server::Peer;
use crate::proto::Frame;
use crate::types::{Raft, SnapshotMeta, TypeConfig, Vote};
use crate::{ForwardOp, ForwardReply, Inner};
use openraft::raft::{AppendEntriesRequest, TransferLeaderRequest, VoteRequest};
use serde::{de::DeserializeOwned, Serialize};
use std::sync::{Arc, Weak};
use tonic::{Request, Response, Status};

pub(crate) struct PeerService {
    pub(crate) cluster_id: String,
    pub(crate) raft: Raft,
    /// Weak: the service lives inside the server task that `Inner` owns.
    pub(crate) inner: Weak<Inner>,
}

impl PeerService {
    fn open<T: DeserializeOwned>(&self, request: Request<Frame>) -> Result<T, Status> {
        let frame = request.into_inner();
        if frame.cluster_id != self.cluster_id {
            return Err(Status::permission_denied(format!(
                "this node belongs to cluster {:?}, the caller to {:?}",
                self.cluster_id, frame.cluster_id
            )));
        }
        postcard::from_bytes(&frame.payload).map_err(|e| Status::invalid_argument(format!("undecodable frame: {e}")))
    }

    fn seal<T: Serialize>(&self, value: &T) -> Result<Response<Frame>, Status> {
        let payload = postcard::to_stdvec(value).map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(Frame { cluster_id: self.cluster_id.clone(), payload }))
    }

    fn inner(&self) -> Result<Arc<Inner>, Status> {
        self.inner.upgrade().ok_or_else(|| Status::unavailable("node is shutting down"))
    }
}

#[tonic::async_trait]
impl Peer for PeerService {
    async fn append_entries(&self, request: Request<Frame>) -> Result<Response<Frame>, Status> {
        let req: AppendEntriesRequest<TypeConfig> = self.open(request)?;
        let resp = self.raft.append_entries(req).await.map_err(|e| Status::unavailable(e.to_string()))?;
        self.seal(&resp)
    }

    async fn vote(&self, request: Request<Frame>) -> Result<Response<Frame>, Status> {
        let req: VoteRequest<TypeConfig> = self.open(request)?;
        let resp = self.raft.vote(req).await.map_err(|e| Status::unavailable(e.to_string()))?;
        self.seal(&resp)
    }

    async fn install_snapshot(&self, request: Request<Frame>) -> Result<Response<Frame>, Status> {
        let (vote, meta, data): (Vote, SnapshotMeta, Vec<u8>) = self.open(request)?;
        let snapshot = crate::types::Snapshot { meta, snapshot: data };
        let resp =
            self.raft.install_full_snapshot(vote, snapshot).await.map_err(|e| Status::unavailable(e.to_string()))?;
        self.seal(&resp)
    }

    async fn transfer_leader(&self, request: Request<Frame>) -> Result<Response<Frame>, Status> {
        let req: TransferLeaderRequest<TypeConfig> = self.open(request)?;
        let resp = self.raft.handle_transfer_leader(req).await.map_err(|e| Status::unavailable(e.to_string()))?;
        self.seal(&resp)
    }

    async fn forward(&self, request: Request<Frame>) -> Result<Response<Frame>, Status> {
        let op: ForwardOp = self.open(request)?;
        let inner = self.inner()?;
        let reply: ForwardReply = inner.run_as_leader(op).await;
        self.seal(&reply)
    }

    async fn read_index(&self, request: Request<Frame>) -> Result<Response<Frame>, Status> {
        let (): () = self.open(request)?;
        let inner = self.inner()?;
        let reply: Result<u64, String> = inner.leader_read_index().await.map_err(|e| e.to_string());
        self.seal(&reply)
    }
}
