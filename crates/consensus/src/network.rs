//! The peer network, client side: openraft's network traits over any [`Transport`], and the
//! production transport, tonic gRPC.
//!
//! One lazily connected HTTP/2 channel per peer address, shared by every Raft replication
//! stream and by write forwarding. Payloads are postcard-encoded openraft wire types inside a
//! protobuf `Frame` that also carries the cluster id.

use crate::proto::peer_client::PeerClient;
use crate::proto::Frame;
use crate::transport::{call, decode_append_answer, PeerError, Rpc, SnapshotChunk, SnapshotInstall, Transport};
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

/// Largest peer message, sent or received: the largest legitimate one is an append of at most
/// [`APPEND_BYTES_MAX`] (or one entry of at most [`ENTRY_BYTES_MAX`]) or a snapshot chunk of
/// at most [`SNAPSHOT_CHUNK_BYTES_MAX`], plus framing. Snapshots stream in chunks, so no
/// message grows with the state.
pub const MESSAGE_BYTES_MAX: usize = 32 << 20;

/// An append is cut to at most this many bytes of entries; openraft sends the rest next
/// (a `PartialSuccess` answer tells it how far the follower got).
pub const APPEND_BYTES_MAX: usize = 16 << 20;

/// Largest single log entry: a command larger than this could never be replicated, so the
/// node's request body limit (a command is never larger than the JSON it came from) must not
/// exceed it.
pub const ENTRY_BYTES_MAX: usize = 8 << 20;

/// Default size of a snapshot chunk.
pub const SNAPSHOT_CHUNK_BYTES_DEFAULT: usize = 4 << 20;

/// Largest configurable snapshot chunk.
pub const SNAPSHOT_CHUNK_BYTES_MAX: usize = 16 << 20;

/// How long one chunk may take to arrive and be acknowledged.
const CHUNK_TIMEOUT_MIN: Duration = Duration::from_secs(10);

/// How long the final install may take: the follower decodes the snapshot and checks every
/// invariant of the state before answering.
const INSTALL_TIMEOUT_MIN: Duration = Duration::from_secs(60);

/// Shortest wait for an append (or heartbeat) answer. openraft asks for the heartbeat period
/// (40 ms, so 30 ms soft): an append carrying a large batch to a follower that must fsync it
/// on a busy 2-core machine can take longer, and giving up then only resends the same batch.
/// 120 ms stays under the shortest election timeout (150 ms).
const APPEND_TIMEOUT_MIN: Duration = Duration::from_millis(120);

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
        // Read here, in the caller's task: the request a forwarded write or read belongs to.
        let request_id = matches!(rpc, Rpc::Forward | Rpc::ReadIndex).then(crate::request_id::current).flatten();
        Box::pin(async move {
            let mut c = client?;
            let mut request = tonic::Request::new(Frame { cluster_id, payload });
            request.set_timeout(timeout);
            if let Some(id) = request_id.and_then(|id| id.parse().ok()) {
                request.metadata_mut().insert(crate::request_id::METADATA_KEY, id);
            }
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
                    Rpc::SnapshotChunk => c.snapshot_chunk(request).await,
                    Rpc::SnapshotInstall => c.snapshot_install(request).await,
                    Rpc::PreVote => c.pre_vote(request).await,
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
                        tonic::Code::Unimplemented => Err(PeerError::Unsupported { addr, message }),
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

/// The way from the network to openraft's `allow_next_revert`: a follower repairing damaged
/// storage answers appends with a flag, and before its conflict answer reaches openraft the
/// leader must allow that follower's log to go backwards (otherwise openraft takes the
/// shorter log for a bug). Each request is acknowledged once openraft has taken it.
#[derive(Clone)]
pub struct Reverts(pub(crate) tokio::sync::mpsc::UnboundedSender<(u64, tokio::sync::oneshot::Sender<()>)>);

/// How long an append's answer waits for openraft to take a revert.
const REVERT_WAIT: Duration = Duration::from_secs(2);

impl Reverts {
    /// Whether openraft took the revert for `target` in time.
    async fn allow(&self, target: u64) -> bool {
        let (done, taken) = tokio::sync::oneshot::channel();
        if self.0.send((target, done)).is_err() {
            return false;
        }
        matches!(tokio::time::timeout(REVERT_WAIT, taken).await, Ok(Ok(())))
    }
}

/// Creates per-peer network handles for openraft.
#[derive(Clone)]
pub struct NetworkFactory {
    pub(crate) transport: Arc<dyn Transport>,
    /// Bytes per snapshot chunk.
    pub(crate) snapshot_chunk_bytes: usize,
    pub(crate) reverts: Reverts,
    /// What each peer announced in its append answers (`formats.rs`).
    pub(crate) formats: Arc<crate::formats::PeerFormats>,
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerNetwork;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> PeerNetwork {
        PeerNetwork {
            transport: self.transport.clone(),
            addr: node.addr.clone(),
            snapshot_chunk_bytes: self.snapshot_chunk_bytes,
            target,
            reverts: self.reverts.clone(),
            formats: self.formats.clone(),
        }
    }
}

/// openraft's view of one peer.
pub struct PeerNetwork {
    transport: Arc<dyn Transport>,
    addr: String,
    snapshot_chunk_bytes: usize,
    target: u64,
    reverts: Reverts,
    formats: Arc<crate::formats::PeerFormats>,
}

/// Cuts an append whose entries exceed `bytes_max` once encoded to the longest prefix that
/// fits (one entry at least), so no message outgrows the peer limit; `None` if it fits whole.
/// Sending a prefix is allowed by openraft: the answer becomes `PartialSuccess` at the last
/// entry sent, and the rest goes in the next append.
fn cut_to_fit(rpc: &AppendEntriesRequest<TypeConfig>, bytes_max: usize) -> Option<AppendEntriesRequest<TypeConfig>> {
    let mut total = 0usize;
    let mut fit = 0usize;
    for entry in &rpc.entries {
        let size = postcard::experimental::serialized_size(entry).unwrap_or(usize::MAX);
        total = total.saturating_add(size);
        if total > bytes_max {
            break;
        }
        fit += 1;
    }
    if fit == rpc.entries.len() {
        return None;
    }
    let mut cut = rpc.clone();
    cut.entries.truncate(fit.max(1));
    Some(cut)
}

/// Sends an append, cut to at most `bytes_max` of entries (see [`cut_to_fit`]): a cut one's
/// `Success` is reported as `PartialSuccess` at its last entry, so openraft sends the rest.
/// Returns the answer, whether the follower is repairing damaged storage, and what it announced.
async fn append_within(
    transport: &dyn Transport,
    addr: &str,
    rpc: AppendEntriesRequest<TypeConfig>,
    timeout: Duration,
    bytes_max: usize,
) -> Result<(AppendEntriesResponse<TypeConfig>, bool, Option<crate::formats::Announced>), PeerError> {
    // Encoded once on the common path; measured entry by entry only when it is too large.
    let payload = postcard::to_stdvec(&rpc).expect("peer requests encode");
    let (payload, last_sent) = if payload.len() <= bytes_max {
        (payload, None)
    } else {
        let cut = cut_to_fit(&rpc, bytes_max).unwrap_or(rpc);
        let last_sent = cut.entries.last().map(|e| e.log_id);
        (postcard::to_stdvec(&cut).expect("peer requests encode"), Some(last_sent))
    };
    let bytes = transport.call(addr.to_string(), Rpc::AppendEntries, payload, timeout).await?;
    let (answer, repairing, announced) = decode_append_answer(&bytes)
        .map_err(|e| PeerError::Refused { addr: addr.to_string(), message: format!("undecodable answer: {e}") })?;
    let answer = match (answer, last_sent) {
        (AppendEntriesResponse::Success, Some(last_sent)) => AppendEntriesResponse::PartialSuccess(last_sent),
        (other, _) => other,
    };
    Ok((answer, repairing, announced))
}

/// Sends a snapshot file as chunks of `chunk_bytes`, read from disk one at a time, in order,
/// then the install request; any failure makes openraft start the transfer again (at offset
/// 0). The file's own CRC-32C is checked as it is read, before the install goes out: a damaged
/// file on this node's disk is never offered to a follower.
async fn send_snapshot(
    transport: &dyn Transport,
    addr: &str,
    chunk_bytes: usize,
    vote: Vote,
    snapshot: Snapshot,
    option: &RPCOption,
) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
    let body = snapshot.snapshot;
    let total_bytes = body.len();
    let chunk_timeout = option.hard_ttl().max(CHUNK_TIMEOUT_MIN);
    let peer = |e: PeerError| StreamingError::from(rpc_error(e));
    let mut file = FileCheck::new(total_bytes);
    let mut offset = 0u64;
    // An empty file still needs its first chunk: it starts the transfer on the far side.
    loop {
        let want = (total_bytes - offset).min(chunk_bytes.max(1) as u64) as usize;
        let data = body.read(offset, want).await.map_err(|e| local_failure(format!("cannot read it: {e}")))?;
        if data.len() != want {
            return Err(local_failure(format!("it ends at byte {}, not {total_bytes}", offset + data.len() as u64)));
        }
        file.add(offset, &data);
        let chunk = SnapshotChunk { last_log_id: snapshot.meta.last_log_id, offset, total_bytes, data };
        let () = call(transport, addr, Rpc::SnapshotChunk, &chunk, chunk_timeout).await.map_err(peer)?;
        offset += want as u64;
        metrics::counter!("paddock_snapshot_sent_bytes_total").increment(want as u64);
        if offset >= total_bytes {
            break;
        }
    }
    let crc32c = file.finish().map_err(local_failure)?;
    let install = SnapshotInstall { vote, meta: snapshot.meta, total_bytes, crc32c };
    call(transport, addr, Rpc::SnapshotInstall, &install, option.hard_ttl().max(INSTALL_TIMEOUT_MIN))
        .await
        .map_err(peer)
}

/// This node's own snapshot file could not be sent (unreadable or damaged): logged and counted
/// here, and reported to openraft as a failed transfer, which it retries.
fn local_failure(why: String) -> StreamingError<TypeConfig> {
    metrics::counter!("paddock_snapshot_failures_total", "op" => "send").increment(1);
    tracing::error!(why = %why, "cannot send this node's snapshot file");
    let e = std::io::Error::other(format!("this node's snapshot file: {why}"));
    StreamingError::Network(NetworkError::new(&e))
}

/// Checks a snapshot file read in pieces: the CRC-32C of all its bytes (what the follower
/// checks the transfer against) and of all but its last four, which must equal those four
/// (the file's own checksum, see `paddock_storage::SnapshotFiles`).
struct FileCheck {
    len: u64,
    all: u32,
    body: u32,
    trailer: Vec<u8>,
}

impl FileCheck {
    fn new(len: u64) -> FileCheck {
        FileCheck { len, all: 0, body: 0, trailer: Vec::with_capacity(4) }
    }

    fn add(&mut self, offset: u64, data: &[u8]) {
        self.all = crc32c::crc32c_append(self.all, data);
        let body_end = self.len.saturating_sub(4);
        let in_body = body_end.saturating_sub(offset).min(data.len() as u64) as usize;
        self.body = crc32c::crc32c_append(self.body, &data[..in_body]);
        self.trailer.extend_from_slice(&data[in_body..]);
    }

    /// The CRC-32C of the whole file, if its own checksum holds.
    fn finish(self) -> Result<u32, String> {
        let stored: [u8; 4] = self
            .trailer
            .as_slice()
            .try_into()
            .map_err(|_| format!("{} bytes is too short for a snapshot file", self.len))?;
        if u32::from_le_bytes(stored) != self.body {
            return Err("checksum mismatch: the file is damaged on this node's disk".to_string());
        }
        Ok(self.all)
    }
}

fn rpc_error(e: PeerError) -> RPCError<TypeConfig> {
    match e {
        PeerError::Unreachable { .. } => RPCError::Unreachable(Unreachable::new(&e)),
        PeerError::Refused { .. } | PeerError::Unsupported { .. } => RPCError::Network(NetworkError::new(&e)),
    }
}

impl RaftNetworkV2<TypeConfig> for PeerNetwork {
    type SnapshotData = crate::state_machine::SnapshotBody;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        let timeout = option.soft_ttl().max(APPEND_TIMEOUT_MIN);
        let term = rpc.vote.leader_id.term;
        let sent = append_within(&*self.transport, &self.addr, rpc, timeout, APPEND_BYTES_MAX).await;
        let (answer, repairing, announced) =
            sent.inspect_err(|_| self.formats.forget(self.target)).map_err(rpc_error)?;
        self.formats.record(self.target, term, announced);
        if repairing && answer == AppendEntriesResponse::Conflict && !self.reverts.allow(self.target).await {
            // The follower discarded damaged entries it may have acknowledged: its log is
            // shorter than what this leader recorded as matching, and openraft must let it go
            // backwards before it sees the conflict (see `repair.rs`). Not allowed in time: the
            // answer is dropped as if lost, and openraft asks again.
            return Err(rpc_error(PeerError::Unreachable {
                addr: self.addr.clone(),
                message: format!("node {} is repairing and its revert was not taken in time", self.target),
                never_sent: false,
            }));
        }
        Ok(answer)
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        call(&*self.transport, &self.addr, Rpc::Vote, &rpc, option.soft_ttl()).await.map_err(rpc_error)
    }

    /// A peer of an older build, which has no pre-vote, counts as granting it (openraft's rule
    /// for a network without one), so a cluster mid-upgrade still elects; a peer that cannot be
    /// reached does not, so a node cut off from the others never raises its term.
    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        match call(&*self.transport, &self.addr, Rpc::PreVote, &rpc, option.soft_ttl()).await {
            Err(PeerError::Unsupported { .. }) => Ok(VoteResponse::new(rpc.vote, None, true)),
            answer => answer.map_err(rpc_error),
        }
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let send = send_snapshot(&*self.transport, &self.addr, self.snapshot_chunk_bytes, vote, snapshot, &option);
        tokio::select! {
            closed = cancel => Err(StreamingError::Closed(closed)),
            result = send => result,
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
    use super::{append_within, never_sent, send_snapshot};
    use crate::records::{LogIdRecord, VoteRecord};
    use crate::state_machine::SnapshotBody;
    use crate::transport::{PeerError, Rpc, SnapshotChunk, SnapshotInstall, SnapshotStaging, Transport};
    use crate::types::{Entry, LogId, Snapshot, TypeConfig, Vote};
    use futures::future::BoxFuture;
    use openraft::entry::RaftEntry;
    use openraft::network::RPCOption;
    use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse};
    use std::io::{Error, ErrorKind};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    /// A peer in memory: records every call, answers appends with `Success` and assembles
    /// snapshot chunks as a real follower's handler does.
    #[derive(Default)]
    struct Recorder {
        calls: Mutex<Vec<(Rpc, Vec<u8>)>>,
        staging: Mutex<SnapshotStaging>,
        incoming: Mutex<Vec<u8>>,
        installed: Mutex<Option<Vec<u8>>>,
    }

    impl Transport for Arc<Recorder> {
        fn call(
            &self,
            addr: String,
            rpc: Rpc,
            payload: Vec<u8>,
            _timeout: Duration,
        ) -> BoxFuture<'static, Result<Vec<u8>, PeerError>> {
            self.calls.lock().unwrap().push((rpc, payload.clone()));
            let refused = |message: String| PeerError::Refused { addr: addr.clone(), message };
            let answer = match rpc {
                Rpc::AppendEntries => Ok(postcard::to_stdvec(&AppendEntriesResponse::<TypeConfig>::Success).unwrap()),
                Rpc::SnapshotChunk => {
                    let chunk: SnapshotChunk = postcard::from_bytes(&payload).unwrap();
                    let mut staging = self.staging.lock().unwrap();
                    staging
                        .accept(&chunk)
                        .map(|first| {
                            let mut incoming = self.incoming.lock().unwrap();
                            if first {
                                incoming.clear();
                            }
                            incoming.extend_from_slice(&chunk.data);
                            staging.advance(&chunk.data);
                            postcard::to_stdvec(&()).unwrap()
                        })
                        .map_err(refused)
                }
                Rpc::SnapshotInstall => {
                    let install: SnapshotInstall = postcard::from_bytes(&payload).unwrap();
                    self.staging.lock().unwrap().finish(&install).map_err(refused).map(|_| {
                        *self.installed.lock().unwrap() = Some(self.incoming.lock().unwrap().clone());
                        postcard::to_stdvec(&SnapshotResponse::<TypeConfig>::new(install.vote)).unwrap()
                    })
                }
                other => Err(refused(format!("unexpected rpc tag {}", other.tag()))),
            };
            Box::pin(async move { answer })
        }
    }

    fn log_id(index: u64) -> LogId {
        LogId::from(LogIdRecord { term: 2, node: 1, index })
    }

    fn vote() -> Vote {
        Vote::from(VoteRecord { term: 2, node: 1, committed: true })
    }

    fn append_of(entries: u64) -> AppendEntriesRequest<TypeConfig> {
        AppendEntriesRequest {
            vote: vote(),
            prev_log_id: Some(log_id(10)),
            entries: (11..11 + entries).map(|i| Entry::new_blank(log_id(i))).collect(),
            leader_commit: Some(log_id(10)),
        }
    }

    fn entry_bytes() -> usize {
        postcard::to_stdvec(&Entry::new_blank(log_id(11))).unwrap().len()
    }

    fn sent_appends(peer: &Recorder) -> Vec<AppendEntriesRequest<TypeConfig>> {
        let calls = peer.calls.lock().unwrap();
        calls
            .iter()
            .filter(|(rpc, _)| *rpc == Rpc::AppendEntries)
            .map(|(_, p)| postcard::from_bytes(p).unwrap())
            .collect()
    }

    #[tokio::test]
    async fn an_append_that_fits_is_sent_whole_and_its_success_reported_as_such() {
        let peer = Arc::new(Recorder::default());
        let answer = append_within(&peer, "peer", append_of(10), Duration::from_secs(1), 1 << 20).await.unwrap().0;
        assert_eq!(answer, AppendEntriesResponse::Success);
        assert_eq!(sent_appends(&peer)[0].entries.len(), 10);
    }

    #[tokio::test]
    async fn an_append_larger_than_the_limit_sends_the_entries_that_fit_and_reports_how_far_it_got() {
        let peer = Arc::new(Recorder::default());
        let limit = entry_bytes() * 3;
        let answer = append_within(&peer, "peer", append_of(10), Duration::from_secs(1), limit).await.unwrap().0;
        let sent = sent_appends(&peer);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].entries.len(), 3, "the longest prefix within the limit");
        assert_eq!(sent[0].prev_log_id, Some(log_id(10)), "a prefix keeps the request's start");
        assert_eq!(answer, AppendEntriesResponse::PartialSuccess(Some(log_id(13))));
    }

    #[tokio::test]
    async fn an_entry_alone_larger_than_the_limit_still_goes_so_replication_moves_on() {
        let peer = Arc::new(Recorder::default());
        let answer = append_within(&peer, "peer", append_of(4), Duration::from_secs(1), 1).await.unwrap().0;
        assert_eq!(sent_appends(&peer)[0].entries.len(), 1);
        assert_eq!(answer, AppendEntriesResponse::PartialSuccess(Some(log_id(11))));
    }

    /// A snapshot file of `data` on a disk of its own, as the node's newest snapshot.
    fn snapshot(data: &[u8]) -> (tempfile::TempDir, Snapshot, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let files = paddock_storage::SnapshotFiles::open(dir.path()).unwrap();
        let path = files.write_parts(40, b"meta", data).unwrap();
        let body = SnapshotBody::stored(files, crate::IoMode::Inline, 40).unwrap();
        let bytes = std::fs::read(path).unwrap();
        (dir, Snapshot { meta: crate::transport::tests::meta(40), snapshot: body }, bytes)
    }

    fn chunk_sizes(peer: &Recorder) -> Vec<usize> {
        let calls = peer.calls.lock().unwrap();
        calls
            .iter()
            .filter(|(rpc, _)| *rpc == Rpc::SnapshotChunk)
            .map(|(_, p)| postcard::from_bytes::<SnapshotChunk>(p).unwrap().data.len())
            .collect()
    }

    #[tokio::test]
    async fn a_snapshot_file_travels_as_chunks_no_larger_than_configured_and_arrives_whole() {
        let peer = Arc::new(Recorder::default());
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let (_dir, snapshot, file) = snapshot(&data);
        assert_eq!(file.len(), 10_038, "34 bytes of header and trailer, 4 of metadata");
        let option = RPCOption::new(Duration::from_secs(1));
        let answer = send_snapshot(&peer, "peer", 4096, vote(), snapshot, &option).await.unwrap();
        assert_eq!(answer.vote, vote());
        assert_eq!(chunk_sizes(&peer), vec![4096, 4096, 1846]);
        assert_eq!(peer.installed.lock().unwrap().as_deref(), Some(&file[..]));
        let last = peer.calls.lock().unwrap().last().unwrap().0;
        assert_eq!(last, Rpc::SnapshotInstall, "the install comes after every chunk");
    }

    #[tokio::test]
    async fn a_chunk_may_end_inside_the_file_checksum() {
        let peer = Arc::new(Recorder::default());
        let (_dir, snapshot, file) = snapshot(&[7; 64]);
        let option = RPCOption::new(Duration::from_secs(1));
        send_snapshot(&peer, "peer", file.len() - 2, vote(), snapshot, &option).await.unwrap();
        assert_eq!(chunk_sizes(&peer), vec![file.len() - 2, 2]);
        assert_eq!(peer.installed.lock().unwrap().as_deref(), Some(&file[..]));
    }

    #[tokio::test]
    async fn a_snapshot_file_damaged_on_the_senders_disk_is_never_installed() {
        let peer = Arc::new(Recorder::default());
        let (dir, snapshot, mut file) = snapshot(&[7; 10_000]);
        file[5_000] ^= 0x10;
        std::fs::write(dir.path().join("snap-00000000000000000040.pds"), &file).unwrap();
        let option = RPCOption::new(Duration::from_secs(1));
        let refused = send_snapshot(&peer, "peer", 4096, vote(), snapshot, &option).await.unwrap_err();
        assert!(refused.to_string().contains("damaged on this node's disk"), "{refused}");
        assert!(peer.calls.lock().unwrap().iter().all(|(rpc, _)| *rpc == Rpc::SnapshotChunk), "no install sent");
        assert_eq!(*peer.installed.lock().unwrap(), None);
    }

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
