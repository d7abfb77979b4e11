//! The public listener: plain HTTP or TLS (rustls), with the limits a server on an untrusted
//! network needs, and a graceful drain.
//!
//! One accept loop for both, so the limits are the same: a TLS handshake must finish within
//! [`HANDSHAKE_TIMEOUT`] and a request's headers arrive within [`HEADER_READ_TIMEOUT`] (a
//! slow-loris client holds a connection for seconds, not forever); request heads are at most
//! [`HEADER_BYTES_MAX`]; bodies are limited by the router (`body_limit_bytes`), URIs by
//! [`URI_BYTES_MAX`]. A connection's first byte must arrive within [`FIRST_BYTE_TIMEOUT`] (and
//! an idle HTTP/1 keep-alive connection is closed by the header timeout), and at most
//! `connections_max` are open at once. Each connection is served on its own task; at shutdown the listener
//! closes, open connections finish their requests and get [`DRAIN_TIMEOUT`] to do so (an SSE
//! stream never finishes by itself).

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tower::ServiceExt;

/// A TLS client must finish its handshake within this.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A request's head (line and headers) must arrive within this once its first byte has.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request head, HTTP/1 and HTTP/2 alike.
pub const HEADER_BYTES_MAX: usize = 16 * 1024;
/// Longest request target (path and query).
pub const URI_BYTES_MAX: usize = 4 * 1024;
/// How long open connections may take to finish at shutdown.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection's first byte (after its TLS handshake) must arrive within this. hyper reads
/// that byte to tell HTTP/1 from HTTP/2 before any of its own timers runs, so without this a
/// client could hold a connection open by sending nothing at all.
pub const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(10);

/// A stream whose first read must bring data within a deadline; after that it is the stream
/// itself (hyper's header timeout and HTTP/2 keep-alive take over).
struct FirstByteWithin<S> {
    inner: S,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S> FirstByteWithin<S> {
    fn new(inner: S, within: Duration) -> Self {
        FirstByteWithin { inner, deadline: Some(Box::pin(tokio::time::sleep(within))) }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for FirstByteWithin<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if polled.is_ready() {
            if buf.filled().len() > before {
                this.deadline = None;
            }
            return polled;
        }
        if let Some(deadline) = this.deadline.as_mut() {
            if deadline.as_mut().poll(cx).is_ready() {
                ::metrics::counter!("paddock_http_idle_connections_closed_total").increment(1);
                return Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "no request within the first-byte timeout",
                )));
            }
        }
        Poll::Pending
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for FirstByteWithin<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, data)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

fn builder() -> Builder<TokioExecutor> {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(HEADER_BYTES_MAX.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(HEADER_BYTES_MAX as u32)
        .max_concurrent_streams(256)
        .keep_alive_interval(Duration::from_secs(20))
        .keep_alive_timeout(Duration::from_secs(20));
    builder
}

/// Serves `router` on `listener` until `shutdown` resolves, then drains. At most
/// `connections_max` connections are open at once; one more is closed when accepted.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    router: Router,
    connections_max: usize,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(connections_max));
    let graceful = GracefulShutdown::new();
    let builder = builder();
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    tokio::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: say so, and do not spin.
                    tracing::warn!(error = %e, "cannot accept an HTTP connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            // Closing at once costs the client nothing to retry and keeps the backlog moving.
            ::metrics::counter!("paddock_http_connections_refused_total").increment(1);
            drop(stream);
            continue;
        };
        ::metrics::gauge!("paddock_http_connections_open").increment(1.0);
        let _ = stream.set_nodelay(true);
        let service = router.clone().map_request(move |mut request: axum::http::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(remote));
            request
        });
        let service = TowerToHyperService::new(service);
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let _slot = OpenConnection(slot);
            let result = match acceptor {
                None => {
                    let stream = FirstByteWithin::new(stream, FIRST_BYTE_TIMEOUT);
                    watcher
                        .watch(builder.serve_connection_with_upgrades(TokioIo::new(stream), service).into_owned())
                        .await
                }
                Some(acceptor) => {
                    let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(e)) => {
                            ::metrics::counter!("paddock_http_tls_handshake_failures_total").increment(1);
                            tracing::debug!(peer = %remote, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            ::metrics::counter!("paddock_http_tls_handshake_failures_total").increment(1);
                            return;
                        }
                    };
                    let stream = FirstByteWithin::new(stream, FIRST_BYTE_TIMEOUT);
                    watcher
                        .watch(builder.serve_connection_with_upgrades(TokioIo::new(stream), service).into_owned())
                        .await
                }
            };
            if let Err(e) = result {
                tracing::debug!(peer = %remote, error = %e, "HTTP connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await.is_err() {
        tracing::warn!(after_s = DRAIN_TIMEOUT.as_secs(), "connections still open at shutdown were closed");
    }
}

/// One open connection: its slot and its count in `paddock_http_connections_open`, both given
/// back when the connection's task ends, however it ends.
struct OpenConnection(#[allow(dead_code)] tokio::sync::OwnedSemaphorePermit);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        ::metrics::gauge!("paddock_http_connections_open").decrement(1.0);
    }
}

/// Middleware: refuses a request target longer than [`URI_BYTES_MAX`] with 414, and headers
/// that add up to more than [`HEADER_BYTES_MAX`] with 431 (hyper's buffer limit is only
/// approximate: a head that arrives in one read is parsed whole).
pub(crate) async fn limit_request_head(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let header_bytes: usize = request.headers().iter().map(|(n, v)| n.as_str().len() + v.len() + 4).sum();
    if header_bytes > HEADER_BYTES_MAX {
        return crate::extract::Failure(paddock_api::ApiError::new(
            paddock_api::ErrorCode::HeadersTooLarge,
            format!("the request headers are {header_bytes} bytes; at most {HEADER_BYTES_MAX} are accepted"),
        ))
        .into_response();
    }
    let length = request.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if length > URI_BYTES_MAX {
        return crate::extract::Failure(paddock_api::ApiError::new(
            paddock_api::ErrorCode::UriTooLong,
            format!("the request target is {length} bytes; at most {URI_BYTES_MAX} are accepted"),
        ))
        .into_response();
    }
    next.run(request).await
}
