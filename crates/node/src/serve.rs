//! The public listener: plain HTTP or TLS (rustls), with the limits a server on an untrusted
//! network needs, and a graceful drain.
//!
//! One accept loop for both, so the limits are the same: a TLS handshake must finish within
//! [`HANDSHAKE_TIMEOUT`] and a request's headers arrive within [`HEADER_READ_TIMEOUT`] (a
//! slow-loris client holds a connection for seconds, not forever); request heads are at most
//! [`HEADER_BYTES_MAX`]; bodies are limited by the router (`body_limit_bytes`), URIs by
//! [`URI_BYTES_MAX`]. Each connection is served on its own task; at shutdown the listener
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
use std::sync::Arc;
use std::time::Duration;
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

/// Serves `router` on `listener` until `shutdown` resolves, then drains.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
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
            let result = match acceptor {
                None => {
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
