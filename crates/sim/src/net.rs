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
//!
//! An append stream (`Rpc::AppendStream`) is one connection too: the same header, then any
//! number of `payload length u32 | payload` requests one way and responses as above the other,
//! each side at its own pace. The nemesis can cut one mid-window ([`StreamCuts`]): the
//! connection is dropped after some answers while appends still wait for theirs.

use crate::paths::NodeProbe;
use futures::future::BoxFuture;
use futures::stream::StreamExt;
use paddock_consensus::transport::{
    AnswerStream, Caller, Handler, HandlerError, PayloadStream, PeerError, Rpc, Transport,
};
use std::io;
use std::sync::atomic::Ordering;
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

async fn read_frame<R: AsyncReadExt + Unpin>(stream: &mut R) -> io::Result<Vec<u8>> {
    let len = stream.read_u32().await?;
    if len > FRAME_BYTES_MAX {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "frame too large"));
    }
    let mut buf = vec![0; len as usize];
    stream.read_exact(&mut buf).await?;
    Ok(buf)
}

fn header(rpc: Rpc, cluster_id: &str) -> Vec<u8> {
    let mut h = Vec::with_capacity(cluster_id.len() + 3);
    h.push(rpc.tag());
    h.extend_from_slice(&(cluster_id.len() as u16).to_be_bytes());
    h.extend_from_slice(cluster_id.as_bytes());
    h
}

fn push_frame(out: &mut Vec<u8>, payload: &[u8]) {
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
}

/// Reads one answer: its status byte and frame.
async fn read_answer<R: AsyncReadExt + Unpin>(stream: &mut R, addr: &str) -> Result<Vec<u8>, PeerError> {
    let status = stream.read_u8().await.map_err(|e| PeerError::Unreachable {
        addr: addr.to_string(),
        message: e.to_string(),
        never_sent: false,
    })?;
    read_body(status, stream, addr).await
}

/// Reads the frame of an answer whose status byte was `status`.
async fn read_body<R: AsyncReadExt + Unpin>(status: u8, stream: &mut R, addr: &str) -> Result<Vec<u8>, PeerError> {
    let unreachable = |message: String| PeerError::Unreachable { addr: addr.to_string(), message, never_sent: false };
    let len = stream.read_u32().await.map_err(|e| unreachable(e.to_string()))?;
    if len > FRAME_BYTES_MAX {
        return Err(unreachable("frame too large".into()));
    }
    let mut body = vec![0; len as usize];
    stream.read_exact(&mut body).await.map_err(|e| unreachable(e.to_string()))?;
    match status {
        0 => Ok(body),
        1 => Err(PeerError::Refused { addr: addr.to_string(), message: String::from_utf8_lossy(&body).into() }),
        _ => Err(unreachable(String::from_utf8_lossy(&body).into())),
    }
}

async fn exchange(addr: &str, cluster_id: &str, rpc: Rpc, payload: &[u8]) -> Result<Vec<u8>, PeerError> {
    let mut stream = TcpStream::connect(addr).await.map_err(|e| PeerError::Unreachable {
        addr: addr.to_string(),
        message: e.to_string(),
        never_sent: true,
    })?;
    let mut req = header(rpc, cluster_id);
    push_frame(&mut req, payload);
    stream.write_all(&req).await.map_err(|e| PeerError::Unreachable {
        addr: addr.to_string(),
        message: e.to_string(),
        never_sent: false,
    })?;
    read_answer(&mut stream, addr).await
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

    fn append_stream(
        &self,
        addr: String,
        mut requests: PayloadStream,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<AnswerStream, PeerError>> {
        let head = header(Rpc::AppendStream, &self.cluster_id);
        Box::pin(async move {
            let connect = TcpStream::connect(addr.as_str());
            let stream = match tokio::time::timeout(timeout, connect).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => return Err(PeerError::Unreachable { addr, message: e.to_string(), never_sent: true }),
                Err(_) => {
                    return Err(PeerError::Unreachable {
                        addr,
                        message: format!("no connection within {timeout:?}"),
                        never_sent: true,
                    })
                }
            };
            let (read, mut write) = stream.into_split();
            // The sender: the header, then each request as it comes. It ends with the requests
            // (the caller ends them when it drops the answers) or a broken connection.
            tokio::spawn(async move {
                if write.write_all(&head).await.is_err() {
                    return;
                }
                while let Some(payload) = requests.next().await {
                    let mut frame = Vec::with_capacity(payload.len() + 4);
                    push_frame(&mut frame, &payload);
                    if write.write_all(&frame).await.is_err() {
                        return;
                    }
                }
            });
            // The answers, until the connection closes between two of them.
            Ok(futures::stream::unfold(Some((read, addr)), |state| async move {
                let (mut read, addr) = state?;
                let mut status = [0u8; 1];
                match read.read(&mut status).await {
                    Ok(0) => None,
                    Err(e) => {
                        Some((Err(PeerError::Unreachable { addr, message: e.to_string(), never_sent: false }), None))
                    }
                    Ok(_) => match read_body(status[0], &mut read, &addr).await {
                        Ok(body) => Some((Ok(body), Some((read, addr)))),
                        Err(e) => Some((Err(e), None)),
                    },
                }
            })
            .boxed())
        })
    }
}

fn answer_bytes(answer: Result<Vec<u8>, HandlerError>) -> Vec<u8> {
    let (status, body) = match answer {
        Ok(body) => (0u8, body),
        Err(HandlerError::Unavailable(m)) => (2, m.into_bytes()),
        Err(e) => (1, e.to_string().into_bytes()),
    };
    let mut out = Vec::with_capacity(body.len() + 5);
    out.push(status);
    push_frame(&mut out, &body);
    out
}

async fn serve_one(handler: Handler, probe: Arc<NodeProbe>, mut stream: TcpStream) -> io::Result<()> {
    let tag = stream.read_u8().await?;
    let cid_len = stream.read_u16().await?;
    let mut cid = vec![0; cid_len as usize];
    stream.read_exact(&mut cid).await?;
    let cluster_id = String::from_utf8_lossy(&cid).to_string();
    if Rpc::from_tag(tag) == Some(Rpc::AppendStream) {
        return serve_stream(handler, probe, cluster_id, stream).await;
    }
    let payload = read_frame(&mut stream).await?;
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
    stream.write_all(&answer_bytes(answer)).await
}

/// Serves an append stream: requests as they arrive, answers as openraft gives them. While the
/// nemesis cuts this node's streams ([`NodeProbe::stream_cut_after`]), the connection is dropped
/// when the answer after that many is ready, so at least one append the follower has taken
/// (and flushed) never has its answer delivered.
async fn serve_stream(
    handler: Handler,
    probe: Arc<NodeProbe>,
    cluster_id: String,
    stream: TcpStream,
) -> io::Result<()> {
    let (read, mut write) = stream.into_split();
    let inbound = futures::stream::unfold(Some(read), move |state| {
        let cluster_id = cluster_id.clone();
        async move {
            let mut read = state?;
            match read_frame(&mut read).await {
                Ok(payload) => Some((Ok((cluster_id, payload)), Some(read))),
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => None,
                Err(e) => Some((Err(HandlerError::Unavailable(e.to_string())), None)),
            }
        }
    })
    .boxed();
    let mut answers = match handler.append_stream(Caller::Unchecked, inbound) {
        Ok(answers) => answers,
        Err(e) => return write.write_all(&answer_bytes(Err(e))).await,
    };
    let mut answered = 0u64;
    while let Some(answer) = answers.next().await {
        let cut_after = probe.stream_cut_after.load(Ordering::SeqCst);
        if cut_after > 0 && answered >= cut_after {
            probe.streams_cut.fetch_add(1, Ordering::SeqCst);
            return Ok(());
        }
        write.write_all(&answer_bytes(answer)).await?;
        answered += 1;
    }
    Ok(())
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
