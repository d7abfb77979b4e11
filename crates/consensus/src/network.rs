//! The peer network, client side: openraft's network traits over any [`Transport`], and the
//! production transport, tonic gRPC.
//!
//! One lazily connected HTTP/2 channel per peer address, shared by every Raft replication
//! stream and by write forwarding. Payloads are postcard-encoded openraft wire types inside a
//! protobuf `Frame` that also carries the cluster id.

use crate::proto::peer_client::PeerClient;
use crate::proto::Frame;
use crate::transport::{call, PeerError, Rpc, Transport};
use crate::types::{Snapshot, TypeConfig, Vote};
use futures::future::BoxFuture;
use openraft::errors::{NetworkError, RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest, TransferLeaderResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, OptionalSend, RaftNetworkV2};
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tonic::transport::{Channel, Endpoint};

/// Largest gRPC message: a whole snapshot travels in one message.
pub const MESSAGE_BYTES_MAX: usize = 1 << 30;

/// Shortest wait for an append (or heartbeat) answer. openraft asks for the heartbeat period
/// (50 ms, so 37.5 ms soft): an append carrying a large batch to a follower that must fsync it
/// on a busy 2-core machine can take longer, and giving up then only resends the same batch.
/// 150 ms stays under the shortest election timeout (200 ms).
const APPEND_TIMEOUT_MIN: Duration = Duration::from_millis(150);

/// gRPC channels to peers, keyed by address.
#[derive(Clone)]
pub struct GrpcTransport {
    cluster_id: Arc<str>,
    channels: Arc<Mutex<HashMap<String, Channel>>>,
    /// Source address for outgoing peer connections (lets a chaos proxy tell links apart).
    source_ip: Option<std::net::IpAddr>,
    /// Mutual TLS: each connection presents this node's certificate (as it is at the
    /// handshake, so a reloaded one is used by the next connection) and requires the peer's
    /// to be of the cluster CA and to name `peer.<cluster>.paddock`.
    tls: Option<TlsConnector>,
}

/// Dials a peer over TCP and runs the TLS handshake; tonic wraps any failure of either in its
/// `ConnectError`, so a refused handshake counts as never sent.
#[derive(Clone)]
struct TlsConnector {
    config: Arc<rustls::ClientConfig>,
    server_name: rustls::pki_types::ServerName<'static>,
    source_ip: Option<std::net::IpAddr>,
}

impl tower::Service<tonic::codegen::http::Uri> for TlsConnector {
    type Response = hyper_util::rt::TokioIo<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;
    type Error = std::io::Error;
    type Future = BoxFuture<'static, Result<Self::Response, std::io::Error>>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), std::io::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: tonic::codegen::http::Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let invalid = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidInput, m.to_string());
            let host = uri.host().ok_or_else(|| invalid("peer address without a host"))?.to_string();
            let port = uri.port_u16().ok_or_else(|| invalid("peer address without a port"))?;
            let addr = tokio::net::lookup_host((host.as_str(), port))
                .await?
                .next()
                .ok_or_else(|| invalid("peer host resolves to no address"))?;
            let socket =
                if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
            if let Some(ip) = this.source_ip {
                socket.bind(std::net::SocketAddr::new(ip, 0))?;
            }
            socket.set_nodelay(true)?;
            let stream = socket.connect(addr).await?;
            let tls = tokio_rustls::TlsConnector::from(this.config).connect(this.server_name, stream).await?;
            Ok(hyper_util::rt::TokioIo::new(tls))
        })
    }
}

impl GrpcTransport {
    /// A transport for one cluster; with `tls`, every connection is mutual TLS.
    pub fn new(
        cluster_id: &str,
        source_ip: Option<std::net::IpAddr>,
        tls: Option<&crate::tls::PeerTls>,
    ) -> Result<GrpcTransport, crate::tls::TlsError> {
        let tls = match tls {
            Some(peer) => Some(TlsConnector {
                config: crate::tls::client_config(peer.roots.clone(), Some(peer.cert.clone()), &[b"h2"])?,
                server_name: rustls::pki_types::ServerName::try_from(crate::tls::cluster_name(cluster_id))
                    .map_err(|e| crate::tls::TlsError::Config(e.to_string()))?,
                source_ip,
            }),
            None => None,
        };
        Ok(GrpcTransport { cluster_id: Arc::from(cluster_id), channels: Arc::default(), source_ip, tls })
    }

    fn client(&self, addr: &str) -> Result<PeerClient<Channel>, PeerError> {
        let mut channels = self.channels.lock().expect("channel cache lock");
        let channel = match channels.get(addr) {
            Some(c) => c.clone(),
            None => {
                let endpoint = Endpoint::from_shared(format!("http://{addr}"))
                    .map_err(|e| PeerError::Unreachable {
                        addr: addr.to_string(),
                        message: e.to_string(),
                        never_sent: true,
                    })?
                    .connect_timeout(Duration::from_millis(500))
                    .tcp_nodelay(true)
                    .http2_keep_alive_interval(Duration::from_secs(5))
                    .keep_alive_timeout(Duration::from_secs(5))
                    .local_address(self.source_ip);
                let c = match &self.tls {
                    Some(tls) => endpoint.connect_with_connector_lazy(tls.clone()),
                    None => endpoint.connect_lazy(),
                };
                channels.insert(addr.to_string(), c.clone());
                c
            }
        };
        Ok(PeerClient::new(channel)
            .max_decoding_message_size(MESSAGE_BYTES_MAX)
            .max_encoding_message_size(MESSAGE_BYTES_MAX))
    }
}

impl Transport for GrpcTransport {
    fn call(
        &self,
        addr: String,
        rpc: Rpc,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<Vec<u8>, PeerError>> {
        let client = self.client(&addr);
        let cluster_id = self.cluster_id.to_string();
        Box::pin(async move {
            let mut c = client?;
            let mut request = tonic::Request::new(Frame { cluster_id, payload });
            request.set_timeout(timeout);
            let fut = async move {
                match rpc {
                    Rpc::AppendEntries => c.append_entries(request).await,
                    Rpc::Vote => c.vote(request).await,
                    Rpc::InstallSnapshot => c.install_snapshot(request).await,
                    Rpc::TransferLeader => c.transfer_leader(request).await,
                    Rpc::Forward => c.forward(request).await,
                    Rpc::ReadIndex => c.read_index(request).await,
                    Rpc::ClientWrite => c.client_write(request).await,
                    Rpc::ClientRead => c.client_read(request).await,
                }
            };
            match tokio::time::timeout(timeout, fut).await {
                Err(_) => Err(PeerError::Unreachable {
                    addr,
                    message: format!("no answer within {timeout:?}"),
                    never_sent: false,
                }),
                Ok(Err(status)) => {
                    let message = status.message().to_string();
                    let never_sent = never_sent(&status);
                    match status.code() {
                        tonic::Code::Unavailable
                        | tonic::Code::DeadlineExceeded
                        | tonic::Code::Cancelled
                        | tonic::Code::Unknown => Err(PeerError::Unreachable { addr, message, never_sent }),
                        _ => Err(PeerError::Refused { addr, message }),
                    }
                }
                Ok(Ok(r)) => Ok(r.into_inner().payload),
            }
        })
    }
}

/// Whether a failed call certainly never left this node, judged from the *type* of the
/// failure, never from its text: tonic wraps every failure to establish the connection
/// (refused, unreachable, connect timeout, TLS handshake) in [`tonic::ConnectError`], found in
/// the status's source chain. A connection that was up and then reset or closed is a hyper or
/// h2 error instead: the request may have reached the peer and been acted on, so resending it
/// could apply a write twice.
pub fn never_sent(status: &tonic::Status) -> bool {
    let mut source = std::error::Error::source(status);
    while let Some(e) = source {
        if e.is::<tonic::ConnectError>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// Creates per-peer network handles for openraft.
#[derive(Clone)]
pub struct NetworkFactory {
    pub(crate) transport: Arc<dyn Transport>,
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerNetwork;

    async fn new_client(&mut self, _target: u64, node: &BasicNode) -> PeerNetwork {
        PeerNetwork { transport: self.transport.clone(), addr: node.addr.clone() }
    }
}

/// openraft's view of one peer.
pub struct PeerNetwork {
    transport: Arc<dyn Transport>,
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
        let timeout = option.soft_ttl().max(APPEND_TIMEOUT_MIN);
        call(&*self.transport, &self.addr, Rpc::AppendEntries, &rpc, timeout).await.map_err(rpc_error)
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        call(&*self.transport, &self.addr, Rpc::Vote, &rpc, option.soft_ttl()).await.map_err(rpc_error)
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
        let send = call(&*self.transport, &self.addr, Rpc::InstallSnapshot, &request, timeout);
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
        call(&*self.transport, &self.addr, Rpc::TransferLeader, &req, option.soft_ttl()).await.map_err(rpc_error)
    }
}

#[cfg(test)]
mod tests {
    use super::never_sent;
    use std::io::{Error, ErrorKind};

    fn status_from(e: Box<dyn std::error::Error + Send + Sync>) -> tonic::Status {
        tonic::Status::from_error(e)
    }

    #[test]
    fn a_refused_connection_was_never_sent() {
        let refused = Error::new(ErrorKind::ConnectionRefused, "tcp connect error: Connection refused (os error 111)");
        let status = status_from(Box::new(tonic::ConnectError(Box::new(refused))));
        assert_eq!(status.code(), tonic::Code::Unavailable);
        assert!(never_sent(&status));
    }

    #[test]
    fn a_reset_or_closed_connection_may_have_delivered_the_request() {
        // The texts that a substring match on "connect" used to take for "never sent".
        for text in ["connection reset by peer", "connection closed before message completed", "connect"] {
            let kind = if text.contains("reset") { ErrorKind::ConnectionReset } else { ErrorKind::UnexpectedEof };
            let status = status_from(Box::new(Error::new(kind, text)));
            assert!(!never_sent(&status), "{text:?} must count as possibly delivered");
            let status = tonic::Status::unavailable(text);
            assert!(!never_sent(&status), "a bare status saying {text:?} must count as possibly delivered");
        }
    }
}
