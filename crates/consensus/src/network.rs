//! The peer network, client side: openraft's RPCs over tonic gRPC.
//!
//! One lazily connected HTTP/2 channel per peer address, shared by every Raft replication
//! stream and by write forwarding. Payloads are postcard-encoded openraft wire types inside
//! a protobuf `Frame` that also carries the cluster id.

use crate::proto::peer_client::PeerClient;
use crate::proto::Frame;
use crate::types::{Snapshot, TypeConfig, Vote};
use openraft::errors::{NetworkError, RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest, TransferLeaderResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, OptionalSend, RaftNetworkV2};
use serde::{de::DeserializeOwned, Serialize};
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tonic::transport::{Channel, Endpoint};

/// Largest gRPC message: a whole snapshot travels in one message.
pub const MESSAGE_BYTES_MAX: usize = 1 << 30;

/// Shared gRPC channels to peers, keyed by address.
#[derive(Clone)]
pub struct PeerPool {
    cluster_id: Arc<str>,
    channels: Arc<Mutex<HashMap<String, Channel>>>,
}

/// Why a peer call failed.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// Could not connect, or the connection broke before an answer.
    #[error("peer {addr} unreachable: {message}")]
    Unreachable {
        /// Peer address.
        addr: String,
        /// Transport detail.
        message: String,
    },
    /// The peer answered with an error.
    #[error("peer {addr} refused: {message}")]
    Refused {
        /// Peer address.
        addr: String,
        /// Status detail.
        message: String,
    },
}

impl PeerPool {
    /// A pool for one cluster.
    pub fn new(cluster_id: &str) -> PeerPool {
        PeerPool { cluster_id: Arc::from(cluster_id), channels: Arc::default() }
    }

    /// The cluster id sent with every frame.
    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    fn client(&self, addr: &str) -> Result<PeerClient<Channel>, PeerError> {
        let mut channels = self.channels.lock().expect("channel cache lock");
        let channel = match channels.get(addr) {
            Some(c) => c.clone(),
            None => {
                let endpoint = Endpoint::from_shared(format!("http://{addr}"))
                    .map_err(|e| PeerError::Unreachable { addr: addr.to_string(), message: e.to_string() })?
                    .connect_timeout(Duration::from_millis(500))
                    .tcp_nodelay(true)
                    .http2_keep_alive_interval(Duration::from_secs(5))
                    .keep_alive_timeout(Duration::from_secs(5));
                let c = endpoint.connect_lazy();
                channels.insert(addr.to_string(), c.clone());
                c
            }
        };
        Ok(PeerClient::new(channel)
            .max_decoding_message_size(MESSAGE_BYTES_MAX)
            .max_encoding_message_size(MESSAGE_BYTES_MAX))
    }

    /// Calls one RPC: encodes `req`, sends it with a timeout, decodes the answer.
    pub async fn call<Req, Resp, F, Fut>(
        &self,
        addr: &str,
        timeout: Duration,
        req: &Req,
        rpc: F,
    ) -> Result<Resp, PeerError>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        F: FnOnce(PeerClient<Channel>, tonic::Request<Frame>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<Frame>, tonic::Status>>,
    {
        let payload = postcard::to_stdvec(req).expect("peer requests encode");
        let mut request = tonic::Request::new(Frame { cluster_id: self.cluster_id.to_string(), payload });
        request.set_timeout(timeout);
        let client = self.client(addr)?;
        let unreachable = |message: String| PeerError::Unreachable { addr: addr.to_string(), message };
        let response = match tokio::time::timeout(timeout, rpc(client, request)).await {
            Err(_) => return Err(unreachable(format!("no answer within {timeout:?}"))),
            Ok(Err(status))
                if matches!(
                    status.code(),
                    tonic::Code::Unavailable
                        | tonic::Code::DeadlineExceeded
                        | tonic::Code::Cancelled
                        | tonic::Code::Unknown
                ) =>
            {
                return Err(unreachable(status.message().to_string()))
            }
            Ok(Err(status)) => {
                return Err(PeerError::Refused { addr: addr.to_string(), message: status.message().to_string() })
            }
            Ok(Ok(r)) => r.into_inner(),
        };
        postcard::from_bytes(&response.payload)
            .map_err(|e| PeerError::Refused { addr: addr.to_string(), message: format!("undecodable answer: {e}") })
    }
}

/// Creates per-peer network handles for openraft.
#[derive(Clone)]
pub struct NetworkFactory {
    pub(crate) pool: PeerPool,
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerNetwork;

    async fn new_client(&mut self, _target: u64, node: &BasicNode) -> PeerNetwork {
        PeerNetwork { pool: self.pool.clone(), addr: node.addr.clone() }
    }
}

/// openraft's view of one peer.
pub struct PeerNetwork {
    pool: PeerPool,
    addr: String,
}

fn rpc_error(e: PeerError) -> RPCError<TypeConfig> {
    match e {
        PeerError::Unreachable { .. } => RPCError::Unreachable(Unreachable::new(&e)),
        PeerError::Refused { .. } => RPCError::Network(NetworkError::new(&e)),
    }
}

impl RaftNetworkV2<TypeConfig> for PeerNetwork {
    type SnapshotData = Vec<u8>;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.pool
            .call(&self.addr, option.soft_ttl(), &rpc, |mut c, r| async move { c.append_entries(r).await })
            .await
            .map_err(rpc_error)
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.pool
            .call(&self.addr, option.soft_ttl(), &rpc, |mut c, r| async move { c.vote(r).await })
            .await
            .map_err(rpc_error)
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let request = (vote, snapshot.meta, snapshot.snapshot);
        // A snapshot can be large: allow it far longer than a heartbeat-sized RPC.
        let timeout = option.hard_ttl().max(Duration::from_secs(60));
        let send = self.pool.call(&self.addr, timeout, &request, |mut c, r| async move { c.install_snapshot(r).await });
        tokio::select! {
            closed = cancel => Err(StreamingError::Closed(closed)),
            result = send => result.map_err(|e| StreamingError::from(rpc_error(e))),
        }
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.pool
            .call(&self.addr, option.soft_ttl(), &req, |mut c, r| async move { c.transfer_leader(r).await })
            .await
            .map_err(rpc_error)
    }
}
