//! Prometheus metrics: the recorder, HTTP request metrics, and Raft gauges.
//!
//! Names follow Prometheus conventions: base units (`_seconds`, `_bytes`), `_total` for
//! counters, and no label with unbounded values (routes are the matched templates, never raw
//! paths; result codes are a closed set).

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use paddock_consensus::{ClusterStatus, Role};
use std::sync::OnceLock;
use std::time::Instant;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Latency buckets from 100 µs to 10 s: fsyncs sit at the bottom, failover-length waits at the top.
const BUCKETS_SECONDS: &[f64] =
    &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Installs the process-wide recorder once and returns its handle.
pub fn handle() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new().set_buckets(BUCKETS_SECONDS).expect("static non-empty buckets");
            match builder.install_recorder() {
                Ok(h) => h,
                // Another recorder is installed (a test harness): render our own, unregistered.
                Err(_) => PrometheusBuilder::new().build_recorder().handle(),
            }
        })
        .clone()
}

/// Middleware: request count and duration per route template, method and status.
pub async fn track(request: Request, next: Next) -> Response {
    let route =
        request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string()).unwrap_or_else(|| "unmatched".into());
    // A closed set: a client inventing methods must not invent series.
    let method = match request.method().as_str() {
        m @ ("GET" | "POST" | "PUT" | "DELETE" | "HEAD" | "OPTIONS" | "PATCH") => m,
        _ => "other",
    }
    .to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    let elapsed = started.elapsed().as_secs_f64();
    metrics::counter!("paddock_http_requests_total", "route" => route.clone(), "method" => method.clone(), "status" => status.clone()).increment(1);
    if response.status().is_client_error() || response.status().is_server_error() {
        metrics::counter!("paddock_http_errors_total", "route" => route.clone(), "method" => method.clone(), "status" => status).increment(1);
    }
    metrics::histogram!("paddock_http_request_duration_seconds", "route" => route, "method" => method).record(elapsed);
    response
}

/// Publishes the Raft view as gauges; counts leader changes since the last call.
pub fn publish_raft(status: &ClusterStatus, previous_leader: &mut Option<Option<u64>>) {
    metrics::gauge!("paddock_raft_term").set(status.term as f64);
    metrics::gauge!("paddock_raft_commit_index").set(status.commit_index as f64);
    metrics::gauge!("paddock_raft_applied_index").set(status.applied_index as f64);
    metrics::gauge!("paddock_raft_last_log_index").set(status.last_log_index as f64);
    metrics::gauge!("paddock_raft_snapshot_index").set(status.snapshot_index as f64);
    metrics::gauge!("paddock_raft_is_leader").set(if status.role == Role::Leader { 1.0 } else { 0.0 });
    metrics::gauge!("paddock_raft_has_leader").set(if status.leader.is_some() { 1.0 } else { 0.0 });
    metrics::gauge!("paddock_raft_members").set(status.members.len() as f64);
    for member in &status.members {
        if let Some(lag) = member.lag {
            metrics::gauge!("paddock_raft_replication_lag_entries", "follower" => member.id.to_string())
                .set(lag as f64);
        }
    }
    if previous_leader.is_some_and(|p| p != status.leader) {
        metrics::counter!("paddock_raft_leader_changes_total").increment(1);
    }
    *previous_leader = Some(status.leader);
}
