//! The consensus crate's [`Transport`] over turmoil's simulated TCP.
//!
//! One connection per call, so a crash or partition that breaks a connection affects only
//! the calls on it. The server side reports `InstallSnapshot` RPCs to the node's probe (the
//! coverage report, `paths.rs`). Frames:
//!
//! ```text
//! request:  tag u8 | cluster id length u16 | cluster id | payload length u32 | payload
//! response: status u8 (0 ok, 1 refused, 2 unavailable) | length u32 | payload or message
//! ```

use crate::paths::NodeProbe;
use futures::future::BoxFuture;
use paddock_consensus::transport::{Handler, HandlerError, PeerError, Rpc, Transport};
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use turmoil::net::{TcpListener, TcpStream};

/// The peer port every simulated node listens on.
pub const PEER_PORT: u16 = 9000;
const FRAME_BYTES_MAX: u32 = 256 << 20;

/// Calls over simulated TCP.
#[derive(Clone, Debug)]
pub struct SimTransport {
    cluster_id: String,
}

impl SimTransport {
    /// A transport for one cluster.
    pub fn new(cluster_id: &str) -> SimTransport {
        SimTransport { cluster_id: cluster_id.to_string() }
    }
}

async fn read_frame(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    let len = stream.read_u32().await?;
    if len > FRAME_BYTES_MAX {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "frame too large"));
    }
    let mut buf = vec![0; len as usize];
    stream.read_exact(&mut buf).await?;
    Ok(buf)
}

async fn exchange(addr: &str, cluster_id: &str, rpc: Rpc, payload: &[u8]) -> Result<Vec<u8>, PeerError> {
    let unreachable =
        |message: String, never_sent: bool| PeerError::Unreachable { addr: addr.to_string(), message, never_sent };
    let mut stream = TcpStream::connect(addr).await.map_err(|e| unreachable(e.to_string(), true))?;
    let mut req = Vec::with_capacity(payload.len() + 64);
    req.push(rpc.tag());
    req.extend_from_slice(&(cluster_id.len() as u16).to_be_bytes());
    req.extend_from_slice(cluster_id.as_bytes());
    req.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    req.extend_from_slice(payload);
    stream.write_all(&req).await.map_err(|e| unreachable(e.to_string(), false))?;
    let status = stream.read_u8().await.map_err(|e| unreachable(e.to_string(), false))?;
    let body = read_frame(&mut stream).await.map_err(|e| unreachable(e.to_string(), false))?;
    match status {
        0 => Ok(body),
        1 => Err(PeerError::Refused { addr: addr.to_string(), message: String::from_utf8_lossy(&body).into() }),
        _ => Err(unreachable(String::from_utf8_lossy(&body).into(), false)),
    }
}

impl Transport for SimTransport {
    fn call(
        &self,
        addr: String,
        rpc: Rpc,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<Vec<u8>, PeerError>> {
        let cluster_id = self.cluster_id.clone();
        Box::pin(async move {
            match tokio::time::timeout(timeout, exchange(&addr, &cluster_id, rpc, &payload)).await {
                Ok(r) => r,
                Err(_) => Err(PeerError::Unreachable {
                    addr,
                    message: format!("no answer within {timeout:?}"),
                    never_sent: false,
                }),
            }
        })
    }
}

async fn serve_one(handler: Handler, probe: Arc<NodeProbe>, mut stream: TcpStream) -> io::Result<()> {
    let tag = stream.read_u8().await?;
    let cid_len = stream.read_u16().await?;
    let mut cid = vec![0; cid_len as usize];
    stream.read_exact(&mut cid).await?;
    let payload = read_frame(&mut stream).await?;
    let cluster_id = String::from_utf8_lossy(&cid).to_string();
    let answer = match Rpc::from_tag(tag) {
        None => Err(HandlerError::BadRequest(format!("unknown rpc tag {tag}"))),
        Some(rpc @ (Rpc::InstallSnapshot | Rpc::SnapshotInstall)) => {
            let mut install = probe.install();
            let answer = handler.handle(&cluster_id, rpc, &payload).await;
            install.answered_ok = answer.is_ok();
            answer
        }
        Some(rpc) => handler.handle(&cluster_id, rpc, &payload).await,
    };
    let (status, body) = match answer {
        Ok(body) => (0u8, body),
        Err(HandlerError::Unavailable(m)) => (2, m.into_bytes()),
        Err(e) => (1, e.to_string().into_bytes()),
    };
    let mut out = Vec::with_capacity(body.len() + 5);
    out.push(status);
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    stream.write_all(&out).await
}

/// Serves `handler` on the node's peer port until the host stops.
pub async fn serve(handler: Handler, probe: Arc<NodeProbe>) -> io::Result<()> {
    let listener = TcpListener::bind(("0.0.0.0", PEER_PORT)).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        let (handler, probe) = (handler.clone(), probe.clone());
        tokio::spawn(async move {
            let _ = serve_one(handler, probe, stream).await;
        });
    }
}
