//! The gRPC server: each method hands its frame to the transport-neutral [`Handler`].

use crate::proto::peer_server::Peer;
use crate::proto::Frame;
use crate::transport::{Handler, HandlerError, Rpc};
use tonic::{Request, Response, Status};

pub(crate) struct PeerService {
    pub(crate) handler: Handler,
}

impl PeerService {
    async fn serve(&self, rpc: Rpc, request: Request<Frame>) -> Result<Response<Frame>, Status> {
        let frame = request.into_inner();
        match self.handler.handle(&frame.cluster_id, rpc, &frame.payload).await {
            Ok(payload) => Ok(Response::new(Frame { cluster_id: self.handler.cluster_id().to_string(), payload })),
            Err(HandlerError::WrongCluster(m)) => Err(Status::permission_denied(m)),
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
}
