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

/// What kind of series a metric is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
    /// A distribution.
    Histogram,
}

use Kind::{Counter, Gauge, Histogram};

/// Every metric any crate of the node emits: name, kind, whether it has labels, and its
/// `# HELP` text. Each is described when the recorder is installed, and each label-less counter
/// and gauge is present (at zero) from the start, so a dashboard or an alert never meets a
/// missing series. `cargo xtask tidy` checks that every `paddock_*` name emitted in
/// `crates/*/src` is listed here and in the metrics table of docs/operations.md.
#[rustfmt::skip]
pub const METRICS: &[(&str, Kind, bool, &str)] = &[
    ("paddock_clock_synchronized", Gauge, false, "1 while this node's clock agrees with a majority of the voters' (cluster time); a leader at 0 stamps no command and hands leadership over."),
    ("paddock_clock_offset_ms", Gauge, true, "The other voter's clock minus this node's, from the latest sample."),
    ("paddock_http_requests_total", Counter, true, "Requests answered."),
    ("paddock_http_errors_total", Counter, true, "4xx and 5xx answers."),
    ("paddock_http_request_duration_seconds", Histogram, true, "Request latency."),
    ("paddock_http_shed_total", Counter, false, "Refused at the concurrency limit."),
    ("paddock_http_timeouts_total", Counter, false, "Admitted but out of time (answered 503 outcome_unknown)."),
    ("paddock_http_rate_limited_total", Counter, true, "Answered 429: a principal or an address over its rate, an address over its failed-authentication rate, a principal at its maximum of streams."),
    ("paddock_auth_failures_total", Counter, true, "Answered 401 unauthenticated: no key, a key that does not parse, a key unknown, wrong, expired or revoked."),
    ("paddock_auth_denied_total", Counter, true, "Answered 403 forbidden by the authorization layer: the role may not call the route, or a bettor does not own the account or bet in the path (a bet placed on another's account is refused by the handler and not counted here)."),
    ("paddock_http_tls_handshake_failures_total", Counter, false, "Public API: TLS handshakes that failed or took over 10 s."),
    ("paddock_http_connections_open", Gauge, false, "Public API connections open."),
    ("paddock_http_connections_refused_total", Counter, false, "Connections closed at accept: connections_max reached."),
    ("paddock_http_idle_connections_closed_total", Counter, false, "Connections closed for sending no byte within 10 s."),
    ("paddock_peer_tls_handshake_failures_total", Counter, false, "Peer port: TLS handshakes that failed (no certificate, another CA, …) or took over 5 s."),
    ("paddock_peer_refused_total", Counter, true, "Peer calls refused (label reason: not_member, the caller's certificate names no member; repairing, a vote or leadership transfer asked of a node repairing damaged storage)."),
    ("paddock_tls_certificate_reloads_total", Counter, true, "Reloads of this node's certificate and key after their files changed."),
    ("paddock_sse_streams_open", Gauge, false, "SSE streams open on this node."),
    ("paddock_self_check_ok", Gauge, false, "1 when the last self-check passed, 0 when it found a mismatch."),
    ("paddock_self_check_failures_total", Counter, false, "Self-checks that found a mismatch."),
    ("paddock_self_check_last_run_timestamp_seconds", Gauge, false, "UTC time of the last self-check (scheduled or GET /v1/self-check)."),
    ("paddock_bets_total", Counter, true, "Placements answered by the ledger."),
    ("paddock_raft_term", Gauge, false, "Current term."),
    ("paddock_raft_commit_index", Gauge, false, "Commit index known here."),
    ("paddock_raft_applied_index", Gauge, false, "Applied index."),
    ("paddock_raft_last_log_index", Gauge, false, "Last log index."),
    ("paddock_raft_snapshot_index", Gauge, false, "Last snapshot's index."),
    ("paddock_raft_is_leader", Gauge, false, "1 on the leader."),
    ("paddock_raft_has_leader", Gauge, false, "1 when a leader is known."),
    ("paddock_ready", Gauge, false, "1 when GET /health/ready would answer 200 (sampled every 250 ms and at each scrape); a leader that has lost its quorum is not ready."),
    ("paddock_raft_members", Gauge, false, "Voters and learners."),
    ("paddock_raft_replication_lag_entries", Gauge, true, "Entries behind (leader only)."),
    ("paddock_replica_lag_seconds", Gauge, false, "Seconds since this follower or learner last had applied all the leader had committed (0 on the leader; grows while it hears nothing): a standby site's RPO in time."),
    ("paddock_replica_lag_entries", Gauge, false, "The leader's commit index as last announced here minus the applied index (0 on the leader)."),
    ("paddock_raft_leader_changes_total", Counter, false, "Leader changes seen (sampled every 250 ms)."),
    ("paddock_forward_rerouted_total", Counter, false, "Keyed writes resent to a new leader (the old one froze)."),
    ("paddock_bets_coalesced_total", Counter, false, "Single bets that left in a group of several (one entry)."),
    ("paddock_raft_log_fsync_duration_seconds", Histogram, false, "One group-commit transaction, fsync included."),
    ("paddock_raft_log_batch_ops", Histogram, false, "Operations per transaction."),
    ("paddock_raft_log_purges_total", Counter, false, "Log purges behind a snapshot (durable)."),
    ("paddock_snapshot_build_duration_seconds", Histogram, false, "Building a snapshot."),
    ("paddock_archive_bets_total", Counter, false, "Bets moved out of memory into archive segments by this node."),
    ("paddock_archive_write_seconds", Histogram, false, "Writing one archive segment (fsync included), before the ArchiveSettled that moves it applies."),
    ("paddock_archive_segments_missing", Gauge, false, "Archive segments the audit trail records that this node's disk lacks (it installed a snapshot taken after them)."),
    ("paddock_archive_segments_fetched_total", Counter, false, "Missing archive segments fetched from a peer and checked against the audit trail's digest."),
    ("paddock_state_bets", Gauge, false, "Bets held in memory (open, pending and settled ones not yet archived)."),
    ("paddock_snapshot_apply_pause_seconds", Histogram, false, "Apply held back while a snapshot copied the state (the only part of a build under the state lock)."),
    ("paddock_snapshot_write_duration_seconds", Histogram, false, "Writing a snapshot file durably."),
    ("paddock_snapshot_size_bytes", Gauge, false, "Last snapshot file size."),
    ("paddock_snapshot_sent_bytes_total", Counter, false, "Snapshot bytes sent to followers in chunks (a leader)."),
    ("paddock_snapshot_received_bytes_total", Counter, false, "Snapshot bytes received from a leader and written to the incoming file."),
    ("paddock_snapshot_transfers_restarted_total", Counter, false, "Snapshot transfers to this node cut part-way and started again by the leader."),
    ("paddock_snapshot_failures_total", Counter, true, "Snapshots that could not be built, installed or sent (label op: build, install, send)."),
    ("paddock_storage_failed", Gauge, false, "1 when a write to this node's Raft log failed (a full or failing disk): Raft has stopped on this node until it restarts on working storage."),
    ("paddock_storage_repairing", Gauge, false, "1 while this node repairs damaged storage: it discarded damaged log entries (or a log no intact snapshot precedes) and fetches them again from the leader; it does not vote meanwhile."),
    ("paddock_storage_repairs_total", Counter, true, "Storage repairs on this node (label stage: found at start-up, repaired once the log was whole again)."),
    ("paddock_storage_damage_found_time_seconds", Gauge, false, "When this node last found damaged data in its log or snapshots at start (Unix time; 0: never since it started)."),
    ("paddock_storage_repair_seconds", Histogram, false, "From damage found to the log whole again (fetched from the leader)."),
    ("paddock_replica_reverts_allowed_total", Counter, false, "Times this node, as leader, restarted replication to a follower that had discarded damaged entries."),
    ("paddock_disk_free_bytes", Gauge, false, "Space left for the node on its data directory's filesystem (sampled every 250 ms)."),
    ("paddock_disk_size_bytes", Gauge, false, "Size of the data directory's filesystem."),
    ("paddock_bets_after_close_total", Counter, false, "Bets the independent R4 monitor found accepted after their market closed or while it was not open; must stay 0."),
    ("paddock_close_monitor_bets_checked_total", Counter, false, "Accepted bets the R4 monitor judged."),
    ("paddock_close_monitor_skipped_total", Counter, false, "Accepted bets or commands the R4 monitor could not judge (it fell behind, or a delayed bet's acceptance could not be placed)."),
    ("paddock_incidents_recorded_total", Counter, true, "Incidents this node opened or closed by itself (labels kind, action)."),
    ("paddock_leader_handoffs_total", Counter, true, "Leadership this node handed off by itself as leader (label reason: slow_disk)."),
    ("paddock_raft_log_fsync_recent_seconds", Gauge, false, "Moving average of this node's Raft log group commits (fsync included): what a leader compares with its followers' to find a slow disk."),
    ("paddock_voter_replacements_total", Counter, false, "Voters this node, as leader, replaced by a caught-up standby learner (self-healing)."),
    ("paddock_voter_replacements_refused_total", Counter, true, "Dead voters this node, as leader, could not replace, once per finding (label reason: change_under_way, no_majority, too_soon, no_standby, change_failed)."),
    ("paddock_backup_configured", Gauge, false, "1 when this node takes scheduled backups (backup_dir is set)."),
    ("paddock_backup_last_success_timestamp_seconds", Gauge, false, "UTC time of the last scheduled backup that completed (0: none since start)."),
    ("paddock_backup_duration_seconds", Histogram, false, "One scheduled backup run (an increment, or a full backup when a chain starts)."),
    ("paddock_backup_chain_bytes", Gauge, false, "Size of the backup chain in use, bytes."),
    ("paddock_backup_failures_total", Counter, false, "Scheduled backups that failed (the node's log says why)."),
    ("paddock_backup_offsite_configured", Gauge, false, "1 when this node copies its backup chains to a bucket (backup_s3 is set)."),
    ("paddock_backup_offsite_last_success_timestamp_seconds", Gauge, false, "UTC time the backup chains were last copied to the bucket in full (0: not since start)."),
    ("paddock_backup_offsite_failures_total", Counter, false, "Copies of the backup chains to the bucket that failed (the node's log says why; the next run retries)."),
];

/// Describes every metric of [`METRICS`] and makes its label-less series present.
fn describe_all() {
    for &(name, kind, labelled, help) in METRICS {
        match kind {
            Counter => {
                metrics::describe_counter!(name, help);
                if !labelled {
                    metrics::counter!(name).increment(0);
                }
            }
            Gauge => {
                metrics::describe_gauge!(name, help);
                if !labelled {
                    metrics::gauge!(name).increment(0.0);
                }
            }
            Histogram => metrics::describe_histogram!(name, help),
        }
    }
}

/// Latency buckets from 100 µs to 10 s: fsyncs sit at the bottom, failover-length waits at the top.
const BUCKETS_SECONDS: &[f64] =
    &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Installs the process-wide recorder once and returns its handle.
pub fn handle() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new().set_buckets(BUCKETS_SECONDS).expect("static non-empty buckets");
            match builder.install_recorder() {
                Ok(h) => {
                    describe_all();
                    h
                }
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

/// Publishes `paddock_storage_failed` and the space on the data directory's filesystem.
pub fn publish_storage(storage_failed: bool, data_dir: &std::path::Path) {
    metrics::gauge!("paddock_storage_failed").set(if storage_failed { 1.0 } else { 0.0 });
    // A failed statvfs (the directory gone) leaves the last values: the storage gauge and
    // readiness say what matters then.
    if let Ok(fs) = nix::sys::statvfs::statvfs(data_dir) {
        let unit = fs.fragment_size() as f64;
        metrics::gauge!("paddock_disk_size_bytes").set(fs.blocks() as f64 * unit);
        metrics::gauge!("paddock_disk_free_bytes").set(fs.blocks_available() as f64 * unit);
    }
}

/// Publishes this node's own view of its lag behind the leader.
pub fn publish_replica_lag(lag: paddock_consensus::ReplicaLag) {
    metrics::gauge!("paddock_replica_lag_seconds").set(lag.seconds);
    metrics::gauge!("paddock_replica_lag_entries").set(lag.entries as f64);
}

/// Publishes `paddock_ready`.
pub fn publish_ready(ready: bool) {
    metrics::gauge!("paddock_ready").set(if ready { 1.0 } else { 0.0 });
}

/// Publishes the Raft view as gauges; counts leader changes since the last call.
pub fn publish_raft(status: &ClusterStatus, previous_leader: &mut Option<Option<u64>>) {
    metrics::gauge!("paddock_raft_term").set(status.term as f64);
    metrics::gauge!("paddock_raft_commit_index").set(status.commit_index as f64);
    metrics::gauge!("paddock_raft_applied_index").set(status.applied_index as f64);
    metrics::gauge!("paddock_raft_last_log_index").set(status.last_log_index as f64);
    metrics::gauge!("paddock_raft_snapshot_index").set(status.snapshot_index as f64);
    metrics::gauge!("paddock_storage_repairing").set(if status.repairing_up_to.is_some() { 1.0 } else { 0.0 });
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
