//! The gRPC server: each method hands its frame to the transport-neutral [`Handler`].

use crate::proto::peer_server::Peer;
use crate::proto::Frame;
use crate::transport::{Caller, Handler, HandlerError, Rpc};
use tonic::{Request, Response, Status};

pub(crate) struct PeerService {
    pub(crate) handler: Handler,
    /// Mutual TLS: every connection carries the caller's certificate, which must name a member.
    pub(crate) tls: bool,
}

/// How long a peer may take over its TLS handshake.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The TLS connections of `listener`: each handshake runs on its own task (a slow or silent
/// client holds up no other), and a failed one is dropped and counted.
pub(crate) fn tls_incoming(
    listener: tokio::net::TcpListener,
    config: std::sync::Arc<rustls::ServerConfig>,
) -> tokio_stream::wrappers::ReceiverStream<
    Result<tokio_rustls::server::TlsStream<tokio::net::TcpStream>, std::io::Error>,
> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = tx.closed() => return,
            };
            let (stream, remote) = match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot accept a peer connection");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => {
                        let _ = tx.send(Ok(stream)).await;
                    }
                    Ok(Err(e)) => {
                        metrics::counter!("paddock_peer_tls_handshake_failures_total").increment(1);
                        tracing::warn!(peer = %remote, error = %e, "peer TLS handshake refused");
                    }
                    Err(_) => {
                        metrics::counter!("paddock_peer_tls_handshake_failures_total").increment(1);
                        tracing::warn!(peer = %remote, "peer TLS handshake timed out");
                    }
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

impl PeerService {
    async fn serve(&self, rpc: Rpc, request: Request<Frame>) -> Result<Response<Frame>, Status> {
        let certs = request.peer_certs();
        let caller = match (&certs, self.tls) {
            (_, false) => Caller::Unchecked,
            (Some(certs), true) if !certs.is_empty() => Caller::Certificate(&certs[0]),
            (_, true) => return Err(Status::unauthenticated("peer connections need a client certificate")),
        };
        let request_id: Option<std::sync::Arc<str>> = request
            .metadata()
            .get(crate::request_id::METADATA_KEY)
            .and_then(|v| v.to_str().ok())
            .and_then(crate::request_id::valid)
            .map(std::sync::Arc::from);
        let frame = request.into_inner();
        let handled = self.handler.handle_from(caller, &frame.cluster_id, rpc, &frame.payload);
        let handled = match request_id {
            // A follower's client request, served here: logged under the client's request id,
            // as the follower logged it.
            Some(id) => {
                let started = std::time::Instant::now();
                let span = tracing::info_span!("forwarded", request_id = %id);
                let result = crate::request_id::scope(id.clone(), tracing::Instrument::instrument(handled, span)).await;
                tracing::info!(
                    target: "paddock::access",
                    request_id = %id,
                    rpc = rpc.as_str(),
                    ok = result.is_ok(),
                    duration_us = started.elapsed().as_micros() as u64,
                    "served a request forwarded by a peer"
                );
                result
            }
            None => handled.await,
        };
        match handled {
            Ok(payload) => Ok(Response::new(Frame { cluster_id: self.handler.cluster_id().to_string(), payload })),
            Err(HandlerError::WrongCluster(m)) | Err(HandlerError::NotMember(m)) => Err(Status::permission_denied(m)),
            Err(HandlerError::BadRequest(m)) => Err(Status::invalid_argument(m)),
            Err(HandlerError::Unavailable(m)) => Err(Status::unavailable(m)),
        }
    }
}

#[tonic::async_trait]
impl Peer for PeerService {
    async fn append_entries(&self, request: Request<Frame>) -> Result<Response<Frame>, Status> {
        self.serve(Rpc::AppendEntries, request).await
    }

    async fn vote(&self, request: Request<Frame>) -> Result<Response<Frame>, Status> {
        self.serve(Rpc::Vote, request).await
    }

    async fn pre_vote(&self, request: Request<Frame>) -> Result<Response<Frame>, Status> {
        self.serve(Rpc::PreVote, request).await
    }

    async fn install_snapshot(&self, request: Request<Frame>) -> Result<Response<Frame>, Status> {
        self.serve(Rpc::InstallSnapshot, request).await
    }

    async fn transfer_leader(&self, request: Request<Frame>) -> Result<Response<Frame>, Status> {
        self.serve(Rpc::TransferLeader, request).await
    }

    async fn forward(&self, request: Request<Frame>) -> Result<Response<Frame>, Status> {
        self.serve(Rpc::Forward, request).await
    }

    async fn read_index(&self, request: Request<Frame>) -> Result<Response<Frame>, Status> {
        self.serve(Rpc::ReadIndex, request).await
    }

    async fn client_write(&self, request: Request<Frame>) -> Result<Response<Frame>, Status> {
        self.serve(Rpc::ClientWrite, request).await
    }

    async fn client_read(&self, request: Request<Frame>) -> Result<Response<Frame>, Status> {
        self.serve(Rpc::ClientRead, request).await
    }

    async fn snapshot_chunk(&self, request: Request<Frame>) -> Result<Response<Frame>, Status> {
        self.serve(Rpc::SnapshotChunk, request).await
    }

    async fn snapshot_install(&self, request: Request<Frame>) -> Result<Response<Frame>, Status> {
        self.serve(Rpc::SnapshotInstall, request).await
    }
}
