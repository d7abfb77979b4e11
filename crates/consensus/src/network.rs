//! The peer network, client side: openraft's network traits over any [`Transport`], and the
//! production transport, tonic gRPC.
//!
//! One lazily connected HTTP/2 channel per peer address, shared by every Raft replication
//! stream and by write forwarding. Payloads are postcard-encoded openraft wire types inside a
//! protobuf `Frame` that also carries the cluster id.

use crate::proto::peer_client::PeerClient;
use crate::proto::Frame;
use crate::transport::{
    call, call_encoded, AnswerStream, PayloadStream, PeerError, Rpc, SnapshotChunk, SnapshotInstall, Transport,
};
use crate::types::{Snapshot, TypeConfig, Vote};
use futures::future::BoxFuture;
use futures::stream::{BoxStream, Stream, StreamExt};
use openraft::errors::{NetworkError, RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{stream_append_sequential, RPCOption, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, StreamAppendResult, TransferLeaderRequest,
    TransferLeaderResponse, VoteRequest, VoteResponse,
};
use openraft::{BasicNode, OptionalSend, RaftNetworkV2};
use std::collections::{HashMap, VecDeque};
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
                    Rpc::SnapshotChunk => c.snapshot_chunk(request).await,
                    Rpc::SnapshotInstall => c.snapshot_install(request).await,
                    Rpc::AppendStream => {
                        Err(tonic::Status::invalid_argument("AppendStream is a stream: open it with append_stream"))
                    }
                }
            };
            match tokio::time::timeout(timeout, fut).await {
                Err(_) => Err(PeerError::Unreachable {
                    addr,
                    message: format!("no answer within {timeout:?}"),
                    never_sent: false,
                }),
                Ok(Err(status)) => Err(peer_error(addr, rpc, &status)),
                Ok(Ok(r)) => Ok(r.into_inner().payload),
            }
        })
    }

    fn append_stream(
        &self,
        addr: String,
        requests: PayloadStream,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<AnswerStream, PeerError>> {
        let client = self.client(&addr);
        let cluster_id = self.cluster_id.to_string();
        Box::pin(async move {
            let mut c = client?;
            // The requests reach tonic through a channel: with the boxed stream itself the
            // compiler cannot prove tonic's streaming-call future `Send` (a higher-ranked
            // lifetime error). The pump ends with the requests or when tonic drops the stream.
            let (tx, rx) = tokio::sync::mpsc::channel::<Frame>(1);
            tokio::spawn(async move {
                let mut requests = requests;
                while let Some(payload) = requests.next().await {
                    if tx.send(Frame { cluster_id: cluster_id.clone(), payload }).await.is_err() {
                        return;
                    }
                }
            });
            let frames = tokio_stream::wrappers::ReceiverStream::new(rx);
            let opened = match tokio::time::timeout(timeout, c.append_stream(frames)).await {
                Err(_) => {
                    return Err(PeerError::Unreachable {
                        addr,
                        message: format!("append stream not opened within {timeout:?}"),
                        never_sent: false,
                    })
                }
                Ok(Err(status)) => return Err(peer_error(addr, Rpc::AppendStream, &status)),
                Ok(Ok(answers)) => answers.into_inner(),
            };
            Ok(opened
                .map(move |answer| match answer {
                    Ok(frame) => Ok(frame.payload),
                    Err(status) => Err(peer_error(addr.clone(), Rpc::AppendStream, &status)),
                })
                .boxed())
        })
    }
}

/// A failed call as a [`PeerError`], judged from the status's code and type: a broken or
/// timed-out connection is `Unreachable`, a method the peer lacks `Unsupported`, any other
/// answer `Refused`.
fn peer_error(addr: String, rpc: Rpc, status: &tonic::Status) -> PeerError {
    let message = status.message().to_string();
    match status.code() {
        tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Cancelled | tonic::Code::Unknown => {
            PeerError::Unreachable { addr, message, never_sent: never_sent(status) }
        }
        tonic::Code::Unimplemented => PeerError::Unsupported { addr, rpc },
        _ => PeerError::Refused { addr, message },
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
    /// Bytes per snapshot chunk.
    pub(crate) snapshot_chunk_bytes: usize,
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerNetwork;

    async fn new_client(&mut self, _target: u64, node: &BasicNode) -> PeerNetwork {
        PeerNetwork {
            transport: self.transport.clone(),
            addr: node.addr.clone(),
            snapshot_chunk_bytes: self.snapshot_chunk_bytes,
            unary_only: false,
        }
    }
}

/// openraft's view of one peer.
pub struct PeerNetwork {
    transport: Arc<dyn Transport>,
    addr: String,
    snapshot_chunk_bytes: usize,
    /// The peer runs a build without [`Rpc::AppendStream`]: appends go one at a time.
    unary_only: bool,
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
async fn append_within(
    transport: &dyn Transport,
    addr: &str,
    rpc: AppendEntriesRequest<TypeConfig>,
    timeout: Duration,
    bytes_max: usize,
) -> Result<AppendEntriesResponse<TypeConfig>, PeerError> {
    // Encoded once on the common path; measured entry by entry only when it is too large.
    let payload = postcard::to_stdvec(&rpc).expect("peer requests encode");
    if payload.len() <= bytes_max {
        return call_encoded(transport, addr, Rpc::AppendEntries, payload, timeout).await;
    }
    let cut = cut_to_fit(&rpc, bytes_max).unwrap_or(rpc);
    let last_sent = cut.entries.last().map(|e| e.log_id);
    let answer: AppendEntriesResponse<TypeConfig> = call(transport, addr, Rpc::AppendEntries, &cut, timeout).await?;
    Ok(match answer {
        AppendEntriesResponse::Success => AppendEntriesResponse::PartialSuccess(last_sent),
        other => other,
    })
}

/// Sends a snapshot as chunks of `chunk_bytes`, in order, then the install request; any
/// failure makes openraft start the transfer again (at offset 0).
async fn send_snapshot(
    transport: &dyn Transport,
    addr: &str,
    chunk_bytes: usize,
    vote: Vote,
    snapshot: Snapshot,
    option: &RPCOption,
) -> Result<SnapshotResponse<TypeConfig>, PeerError> {
    let data = snapshot.snapshot;
    let total_bytes = data.len() as u64;
    let chunk_timeout = option.hard_ttl().max(CHUNK_TIMEOUT_MIN);
    // An empty snapshot still needs its first chunk: it starts the transfer on the far side.
    let pieces: Vec<&[u8]> = if data.is_empty() { vec![&[]] } else { data.chunks(chunk_bytes.max(1)).collect() };
    let mut offset = 0u64;
    for piece in pieces {
        let chunk = SnapshotChunk { last_log_id: snapshot.meta.last_log_id, offset, total_bytes, data: piece.to_vec() };
        let () = call(transport, addr, Rpc::SnapshotChunk, &chunk, chunk_timeout).await?;
        offset += piece.len() as u64;
        metrics::counter!("paddock_snapshot_sent_bytes_total").increment(piece.len() as u64);
    }
    let install = SnapshotInstall { vote, meta: snapshot.meta, total_bytes, crc32c: crc32c::crc32c(&data) };
    call(transport, addr, Rpc::SnapshotInstall, &install, option.hard_ttl().max(INSTALL_TIMEOUT_MIN)).await
}

/// Most appends one stream keeps waiting for an answer: the sender waits for an answer before
/// sending more, so a slow follower holds the leader to this many requests (each at most
/// [`APPEND_BYTES_MAX`]) in flight, and a lost stream costs at most this many resends.
pub const APPEND_WINDOW: usize = 32;

/// One append on a stream, waiting for its answer.
struct InFlight {
    sent_at: std::time::Instant,
}

type StreamAnswer = Result<StreamAppendResult<TypeConfig>, RPCError<TypeConfig>>;

/// Replicates `input` to `addr` over one [`Rpc::AppendStream`]: each append goes out as soon
/// as openraft makes it, with at most `window` unanswered, and the answers come back in
/// order. An append larger than `bytes_max` is cut (see [`cut_to_fit`]) and ends the stream
/// after it, so openraft, seeing its answer short of what it asked, opens the next stream from
/// there. No answer for `timeout` while an append waits ends the stream with `Unreachable`, as
/// does a stream that closes with appends unanswered.
async fn pipelined_append<S>(
    transport: Arc<dyn Transport>,
    addr: String,
    input: S,
    timeout: Duration,
    bytes_max: usize,
    window: usize,
) -> Result<BoxStream<'static, StreamAnswer>, PeerError>
where
    S: Stream<Item = AppendEntriesRequest<TypeConfig>> + Send + Unpin + 'static,
{
    let permits = Arc::new(tokio::sync::Semaphore::new(window.max(1)));
    let in_flight: Arc<Mutex<VecDeque<InFlight>>> = Arc::default();
    // Dropping the answers (openraft ends the session) ends the requests too, even while they
    // wait for a permit or for new entries.
    let (answers_dropped, closed) = tokio::sync::oneshot::channel::<()>();
    let requests = futures::stream::unfold(
        (input, permits.clone(), in_flight.clone(), false),
        move |(mut input, permits, in_flight, ended)| async move {
            if ended {
                return None;
            }
            let permit = permits.clone().acquire_owned().await.ok()?;
            let request = input.next().await?;
            // Given back when the answer arrives.
            permit.forget();
            let payload = postcard::to_stdvec(&request).expect("peer requests encode");
            let (payload, cut) = if payload.len() <= bytes_max {
                (payload, false)
            } else {
                match cut_to_fit(&request, bytes_max) {
                    Some(cut) => (postcard::to_stdvec(&cut).expect("peer requests encode"), true),
                    None => (payload, false),
                }
            };
            in_flight.lock().expect("in-flight lock").push_back(InFlight { sent_at: std::time::Instant::now() });
            Some((payload, (input, permits, in_flight, cut)))
        },
    )
    .take_until(closed)
    .boxed();
    let answers = transport.append_stream(addr.clone(), requests, timeout).await?;
    let state = (answers, permits, in_flight, addr, answers_dropped);
    Ok(futures::stream::unfold(Some(state), move |state| async move {
        let (mut answers, permits, in_flight, addr, answers_dropped) = state?;
        let unreachable = |message: String| {
            let e = PeerError::Unreachable { addr: addr.clone(), message, never_sent: false };
            Some((Err(rpc_error(e)), None))
        };
        let bytes = loop {
            match tokio::time::timeout(timeout, answers.next()).await {
                Ok(Some(Ok(bytes))) => break bytes,
                Ok(Some(Err(e))) => return Some((Err(rpc_error(e)), None)),
                Ok(None) => {
                    let waiting = in_flight.lock().expect("in-flight lock").len();
                    if waiting == 0 {
                        return None;
                    }
                    return unreachable(format!("append stream closed with {waiting} appends unanswered"));
                }
                Err(_) => {
                    let oldest = in_flight.lock().expect("in-flight lock").front().map(|f| f.sent_at);
                    if oldest.is_some_and(|sent_at| sent_at.elapsed() >= timeout) {
                        return unreachable(format!("no answer to an append within {timeout:?}"));
                    }
                }
            }
        };
        if in_flight.lock().expect("in-flight lock").pop_front().is_none() {
            let e = PeerError::Refused { addr: addr.clone(), message: "an append answer with no append sent".into() };
            return Some((Err(rpc_error(e)), None));
        }
        permits.add_permits(1);
        match postcard::from_bytes::<StreamAppendResult<TypeConfig>>(&bytes) {
            Ok(Ok(matching)) => Some((Ok(Ok(matching)), Some((answers, permits, in_flight, addr, answers_dropped)))),
            // A refusal ends the stream: openraft decides what to send next.
            Ok(Err(refused)) => Some((Ok(Err(refused)), None)),
            Err(e) => {
                let e = PeerError::Refused { addr: addr.clone(), message: format!("undecodable append answer: {e}") };
                Some((Err(rpc_error(e)), None))
            }
        }
    })
    .boxed())
}

fn rpc_error(e: PeerError) -> RPCError<TypeConfig> {
    match e {
        PeerError::Unreachable { .. } => RPCError::Unreachable(Unreachable::new(&e)),
        PeerError::Refused { .. } | PeerError::Unsupported { .. } => RPCError::Network(NetworkError::new(&e)),
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
        append_within(&*self.transport, &self.addr, rpc, timeout, APPEND_BYTES_MAX).await.map_err(rpc_error)
    }

    fn stream_append<'s, S>(
        &'s mut self,
        input: S,
        option: RPCOption,
    ) -> BoxFuture<'s, Result<BoxStream<'s, StreamAnswer>, RPCError<TypeConfig>>>
    where
        S: Stream<Item = AppendEntriesRequest<TypeConfig>> + OptionalSend + Unpin + 'static,
    {
        if self.unary_only {
            return stream_append_sequential(self, input, option);
        }
        let timeout = option.soft_ttl().max(APPEND_TIMEOUT_MIN);
        let (transport, addr) = (self.transport.clone(), self.addr.clone());
        Box::pin(async move {
            match pipelined_append(transport, addr, input, timeout, APPEND_BYTES_MAX, APPEND_WINDOW).await {
                Ok(answers) => Ok(answers),
                Err(e @ PeerError::Unsupported { .. }) => {
                    // A peer of an older build (a rolling upgrade): one append at a time from
                    // the next session on; openraft resends what this one may have taken.
                    tracing::info!(peer = %self.addr, "peer serves no append stream; replicating one append at a time");
                    self.unary_only = true;
                    Err(rpc_error(e))
                }
                Err(e) => Err(rpc_error(e)),
            }
        })
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
        let send = send_snapshot(&*self.transport, &self.addr, self.snapshot_chunk_bytes, vote, snapshot, &option);
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
    use super::{append_within, never_sent, pipelined_append, send_snapshot, StreamAnswer};
    use crate::records::{LogIdRecord, VoteRecord};
    use crate::transport::{PeerError, Rpc, SnapshotChunk, SnapshotInstall, SnapshotStaging, Transport};
    use crate::types::{Entry, LogId, Snapshot, TypeConfig, Vote};
    use futures::future::BoxFuture;
    use futures::StreamExt;
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
                    self.staging
                        .lock()
                        .unwrap()
                        .receive(chunk)
                        .map(|()| postcard::to_stdvec(&()).unwrap())
                        .map_err(refused)
                }
                Rpc::SnapshotInstall => {
                    let install: SnapshotInstall = postcard::from_bytes(&payload).unwrap();
                    self.staging.lock().unwrap().finish(&install).map_err(refused).map(|data| {
                        *self.installed.lock().unwrap() = Some(data);
                        postcard::to_stdvec(&SnapshotResponse::<TypeConfig>::new(install.vote)).unwrap()
                    })
                }
                other => Err(refused(format!("unexpected rpc tag {}", other.tag()))),
            };
            Box::pin(async move { answer })
        }

        fn append_stream(
            &self,
            addr: String,
            _requests: crate::transport::PayloadStream,
            _timeout: Duration,
        ) -> BoxFuture<'static, Result<crate::transport::AnswerStream, PeerError>> {
            Box::pin(async move { Err(PeerError::Unsupported { addr, rpc: Rpc::AppendStream }) })
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
        let answer = append_within(&peer, "peer", append_of(10), Duration::from_secs(1), 1 << 20).await.unwrap();
        assert_eq!(answer, AppendEntriesResponse::Success);
        assert_eq!(sent_appends(&peer)[0].entries.len(), 10);
    }

    #[tokio::test]
    async fn an_append_larger_than_the_limit_sends_the_entries_that_fit_and_reports_how_far_it_got() {
        let peer = Arc::new(Recorder::default());
        let limit = entry_bytes() * 3;
        let answer = append_within(&peer, "peer", append_of(10), Duration::from_secs(1), limit).await.unwrap();
        let sent = sent_appends(&peer);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].entries.len(), 3, "the longest prefix within the limit");
        assert_eq!(sent[0].prev_log_id, Some(log_id(10)), "a prefix keeps the request's start");
        assert_eq!(answer, AppendEntriesResponse::PartialSuccess(Some(log_id(13))));
    }

    #[tokio::test]
    async fn an_entry_alone_larger_than_the_limit_still_goes_so_replication_moves_on() {
        let peer = Arc::new(Recorder::default());
        let answer = append_within(&peer, "peer", append_of(4), Duration::from_secs(1), 1).await.unwrap();
        assert_eq!(sent_appends(&peer)[0].entries.len(), 1);
        assert_eq!(answer, AppendEntriesResponse::PartialSuccess(Some(log_id(11))));
    }

    fn snapshot(data: Vec<u8>) -> Snapshot {
        Snapshot { meta: crate::transport::tests::meta(40), snapshot: data }
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
    async fn a_snapshot_travels_as_chunks_no_larger_than_configured_and_arrives_whole() {
        let peer = Arc::new(Recorder::default());
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let option = RPCOption::new(Duration::from_secs(1));
        let answer = send_snapshot(&peer, "peer", 4096, vote(), snapshot(data.clone()), &option).await.unwrap();
        assert_eq!(answer.vote, vote());
        assert_eq!(chunk_sizes(&peer), vec![4096, 4096, 1808]);
        assert_eq!(peer.installed.lock().unwrap().as_deref(), Some(&data[..]));
        let last = peer.calls.lock().unwrap().last().unwrap().0;
        assert_eq!(last, Rpc::SnapshotInstall, "the install comes after every chunk");
    }

    #[tokio::test]
    async fn an_empty_snapshot_is_one_empty_chunk_and_an_install() {
        let peer = Arc::new(Recorder::default());
        let option = RPCOption::new(Duration::from_secs(1));
        send_snapshot(&peer, "peer", 4096, vote(), snapshot(Vec::new()), &option).await.unwrap();
        assert_eq!(chunk_sizes(&peer), vec![0]);
        assert_eq!(peer.installed.lock().unwrap().as_deref(), Some(&[][..]));
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

    /// A follower in memory at the far end of an append stream: records every append it
    /// takes and answers each with the last log id it carried, once `answers` lets it (each
    /// answer takes one permit); it closes the stream after `close_after` answers, and
    /// answers the append at `conflict_at` (0-based) with a log conflict.
    struct StreamPeer {
        taken: Mutex<Vec<AppendEntriesRequest<TypeConfig>>>,
        answers: tokio::sync::Semaphore,
        close_after: Option<usize>,
        conflict_at: Option<usize>,
    }

    impl StreamPeer {
        fn new(permits: usize) -> Arc<StreamPeer> {
            Arc::new(StreamPeer {
                taken: Mutex::default(),
                answers: tokio::sync::Semaphore::new(permits),
                close_after: None,
                conflict_at: None,
            })
        }

        fn taken(&self) -> Vec<AppendEntriesRequest<TypeConfig>> {
            self.taken.lock().unwrap().clone()
        }
    }

    impl Transport for Arc<StreamPeer> {
        fn call(
            &self,
            addr: String,
            _rpc: Rpc,
            _payload: Vec<u8>,
            _timeout: Duration,
        ) -> BoxFuture<'static, Result<Vec<u8>, PeerError>> {
            Box::pin(async move { Err(PeerError::Refused { addr, message: "streams only".into() }) })
        }

        fn append_stream(
            &self,
            _addr: String,
            mut requests: crate::transport::PayloadStream,
            _timeout: Duration,
        ) -> BoxFuture<'static, Result<crate::transport::AnswerStream, PeerError>> {
            let peer = self.clone();
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Result<Vec<u8>, PeerError>>();
            let (taken_tx, mut taken_rx) = tokio::sync::mpsc::unbounded_channel();
            let recorder = peer.clone();
            tokio::spawn(async move {
                while let Some(payload) = requests.next().await {
                    let request: AppendEntriesRequest<TypeConfig> = postcard::from_bytes(&payload).unwrap();
                    recorder.taken.lock().unwrap().push(request.clone());
                    if taken_tx.send(request).is_err() {
                        return;
                    }
                }
            });
            tokio::spawn(async move {
                let mut answered = 0;
                while let Some(request) = taken_rx.recv().await {
                    if peer.close_after == Some(answered) {
                        return;
                    }
                    peer.answers.acquire().await.unwrap().forget();
                    let result: openraft::raft::StreamAppendResult<TypeConfig> = if peer.conflict_at == Some(answered) {
                        Err(openraft::raft::StreamAppendError::Conflict(request.prev_log_id.unwrap()))
                    } else {
                        Ok(request.entries.last().map(|e| e.log_id).or(request.prev_log_id))
                    };
                    if tx.send(Ok(postcard::to_stdvec(&result).unwrap())).is_err() {
                        return;
                    }
                    answered += 1;
                }
            });
            Box::pin(async move { Ok(tokio_stream::wrappers::UnboundedReceiverStream::new(rx).boxed()) })
        }
    }

    /// `n` appends of one blank entry each, following on from index 10.
    fn appends(n: u64) -> Vec<AppendEntriesRequest<TypeConfig>> {
        (0..n)
            .map(|i| AppendEntriesRequest {
                vote: vote(),
                prev_log_id: Some(log_id(10 + i)),
                entries: vec![Entry::new_blank(log_id(11 + i))],
                leader_commit: Some(log_id(10)),
            })
            .collect()
    }

    async fn open(
        peer: &Arc<StreamPeer>,
        input: Vec<AppendEntriesRequest<TypeConfig>>,
        bytes_max: usize,
        window: usize,
    ) -> futures::stream::BoxStream<'static, StreamAnswer> {
        let transport: Arc<dyn Transport> = Arc::new(peer.clone());
        let input = futures::stream::iter(input).chain(futures::stream::pending());
        pipelined_append(transport, "peer".into(), Box::pin(input), Duration::from_millis(300), bytes_max, window)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn appends_go_out_without_waiting_for_answers_up_to_the_window_and_answers_come_back_in_order() {
        let peer = StreamPeer::new(0);
        let mut answers = open(&peer, appends(10), 1 << 20, 4).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(peer.taken().len(), 4, "four appends in flight before any answer: the window, no more");
        peer.answers.add_permits(10);
        for i in 0..10 {
            let answer = answers.next().await.expect("an answer per append").expect("no transport error");
            assert_eq!(answer, Ok(Some(log_id(11 + i))), "answer {i} in the order sent");
        }
        assert_eq!(peer.taken().len(), 10);
    }

    #[tokio::test]
    async fn an_append_larger_than_the_limit_is_cut_and_ends_the_stream_so_the_next_starts_where_it_stopped() {
        let peer = StreamPeer::new(100);
        let limit = entry_bytes() * 3;
        let mut answers = open(&peer, vec![append_of(10), append_of(1)], limit, 8).await;
        assert_eq!(answers.next().await.unwrap().unwrap(), Ok(Some(log_id(13))), "acknowledged up to the cut");
        assert!(answers.next().await.is_none(), "the stream ends after the cut append");
        let taken = peer.taken();
        assert_eq!(taken.len(), 1, "nothing is sent after a cut append");
        assert_eq!(taken[0].entries.len(), 3);
    }

    #[tokio::test]
    async fn a_stream_closed_with_appends_unanswered_ends_unreachable() {
        let peer = Arc::new(StreamPeer {
            taken: Mutex::default(),
            answers: tokio::sync::Semaphore::new(100),
            close_after: Some(1),
            conflict_at: None,
        });
        let mut answers = open(&peer, appends(3), 1 << 20, 8).await;
        assert_eq!(answers.next().await.unwrap().unwrap(), Ok(Some(log_id(11))));
        let broken = answers.next().await.unwrap().unwrap_err();
        assert!(matches!(broken, openraft::errors::RPCError::Unreachable(_)), "{broken}");
        assert!(broken.to_string().contains("unanswered"), "{broken}");
        assert!(answers.next().await.is_none());
    }

    #[tokio::test]
    async fn an_append_left_unanswered_past_the_timeout_ends_the_stream_unreachable() {
        let peer = StreamPeer::new(0);
        let mut answers = open(&peer, appends(2), 1 << 20, 8).await;
        let silent = answers.next().await.unwrap().unwrap_err();
        assert!(silent.to_string().contains("no answer to an append within"), "{silent}");
    }

    #[tokio::test]
    async fn a_refusal_is_passed_to_openraft_and_ends_the_stream() {
        let peer = Arc::new(StreamPeer {
            taken: Mutex::default(),
            answers: tokio::sync::Semaphore::new(100),
            close_after: None,
            conflict_at: Some(1),
        });
        let mut answers = open(&peer, appends(4), 1 << 20, 8).await;
        assert_eq!(answers.next().await.unwrap().unwrap(), Ok(Some(log_id(11))));
        assert_eq!(
            answers.next().await.unwrap().unwrap(),
            Err(openraft::raft::StreamAppendError::Conflict(log_id(11))),
            "the conflict, as the follower reported it"
        );
        assert!(answers.next().await.is_none(), "nothing after a refusal");
    }

    #[tokio::test]
    async fn dropping_the_answers_stops_the_requests() {
        let peer = StreamPeer::new(0);
        let answers = open(&peer, appends(10), 1 << 20, 2).await;
        tokio::time::sleep(Duration::from_millis(30)).await;
        drop(answers);
        peer.answers.add_permits(100);
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(peer.taken().len(), 2, "no append is sent once openraft has dropped the stream");
    }
}
