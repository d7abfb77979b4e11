//! `X-Request-Id`: every request gets an id — the client's, if it sent a usable one, else a
//! fresh one — answered in the `X-Request-Id` header, attached to every log line written
//! while the request is served (the `request` span), and carried to the leader when the
//! request is forwarded ([`paddock_consensus::request_id`]), whose log lines about it carry
//! the same id.
//!
//! With `access_log` on, each request also gets one line under the log target
//! `paddock::access` (method, route template, status, duration), and the leader one for each
//! request it serves for a follower. Off by default: at tens of thousands of requests a
//! second, a line each is a cost an operator should choose.

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use paddock_consensus::request_id;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;
use tracing::Instrument;

/// The request and answer header.
pub const HEADER: &str = "x-request-id";

/// Middleware: gives the request its id, serves it under that id, answers with it.
pub(crate) async fn tag(request: Request, next: Next) -> Response {
    let id: Arc<str> = request
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(request_id::valid)
        .map(Arc::from)
        .unwrap_or_else(fresh);
    // What the access line needs is gathered only when it is on: this runs for every bet.
    let access = tracing::enabled!(target: "paddock::access", tracing::Level::INFO).then(|| {
        let route = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string());
        (request.method().clone(), route, Instant::now())
    });
    let span = tracing::info_span!("request", request_id = %id);
    let mut response = request_id::scope(id.clone(), next.run(request).instrument(span)).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(HEADER, value);
    }
    if let Some((method, route, started)) = access {
        tracing::info!(
            target: "paddock::access",
            request_id = %id,
            method = %method,
            route = route.as_deref().unwrap_or("unmatched"),
            status = response.status().as_u16(),
            duration_us = started.elapsed().as_micros() as u64,
            "request"
        );
    }
    response
}

/// A fresh id: this process's random prefix and a counter (unique without a syscall per
/// request; the prefix keeps two nodes, or two runs of one, apart).
fn fresh() -> Arc<str> {
    static PREFIX: OnceLock<String> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let prefix = PREFIX.get_or_init(|| {
        let mut bytes = [0u8; 6];
        // Without randomness the ids are still unique within this process.
        let _ = getrandom::fill(&mut bytes);
        paddock_api::convert::hex(&bytes)
    });
    Arc::from(format!("{prefix}-{}", NEXT.fetch_add(1, Ordering::Relaxed)))
}
