//! Background jobs: deciding delayed bets, publishing Raft gauges, metric upkeep.
//!
//! Each job is a loop that ends when the shutdown signal fires. Only the leader submits
//! `ResolvePending`; the ledger decides each delayed bet by the timestamp the leader stamps
//! on that command, so a slow timer delays decisions but can never accept a bet that the
//! market state at that timestamp refuses.

use crate::App;
use paddock_consensus::Role;
use paddock_ledger::Command;
use std::time::Duration;
use tokio::sync::watch;

/// Starts every job; they stop when `stop` turns true.
pub(crate) fn spawn_all(app: App, stop: watch::Receiver<bool>) {
    tokio::spawn(resolve_pending(app.clone(), stop.clone()));
    tokio::spawn(gauges(app.clone(), stop.clone()));
    tokio::spawn(crate::incidents::run(app.clone(), stop.clone()));
    tokio::spawn(crate::heal::run(app.clone(), stop.clone()));
    tokio::spawn(crate::gray::run(app.clone(), stop.clone()));
    if let Some(file) = app.config.fsync_delay_file.clone() {
        tokio::spawn(crate::gray::follow_fsync_delay_file(app.clone(), file, stop.clone()));
    }
    tokio::spawn(crate::close_monitor::run(app.clone(), stop.clone()));
    tokio::spawn(upkeep(app, stop));
}

pub(crate) async fn every(
    period: Duration,
    stop: watch::Receiver<bool>,
    mut tick: impl FnMut() -> futures::future::BoxFuture<'static, ()>,
) {
    let mut ticks = Ticks::new(period, stop);
    while ticks.next().await {
        tick().await;
    }
}

/// A job's clock: a tick every period (a late tick delays the next rather than bunching
/// them) until the shutdown signal fires.
pub(crate) struct Ticks {
    interval: tokio::time::Interval,
    stop: watch::Receiver<bool>,
}

impl Ticks {
    pub(crate) fn new(period: Duration, stop: watch::Receiver<bool>) -> Ticks {
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Ticks { interval, stop }
    }

    /// Waits for the next tick: true, or false once the node is stopping.
    pub(crate) async fn next(&mut self) -> bool {
        if *self.stop.borrow() {
            return false;
        }
        tokio::select! {
            _ = self.interval.tick() => !*self.stop.borrow(),
            _ = self.stop.changed() => false,
        }
    }
}

async fn resolve_pending(app: App, stop: watch::Receiver<bool>) {
    every(Duration::from_millis(100), stop, move || {
        let app = app.clone();
        Box::pin(async move {
            if app.consensus.status().role != Role::Leader {
                return;
            }
            let now = (app.clock)();
            let (due, book_clock, step) = app
                .consensus
                .read(|d| (d.state.pending_due_first(), d.state.clock(), d.state.config().clock_step_max_ms));
            // A tick also keeps the book's clock within a step of the leader's in a quiet
            // spell: the ledger refuses a command stamped more than a step ahead of it.
            let quiet = now.0.saturating_sub(book_clock.0) > step / 4;
            if due.is_some_and(|due| due <= now) || quiet {
                if let Err(e) = app.consensus.write(Command::ResolvePending).await {
                    tracing::warn!(error = %e, "could not resolve delayed bets");
                }
            }
        })
    })
    .await
}

async fn gauges(app: App, stop: watch::Receiver<bool>) {
    // The leader seen at the previous tick, to count leader changes.
    let state = std::sync::Arc::new(std::sync::Mutex::new(None::<Option<u64>>));
    every(Duration::from_millis(250), stop, move || {
        let app = app.clone();
        let state = state.clone();
        Box::pin(async move {
            let status = app.consensus.status();
            let mut prev = state.lock().expect("gauge state lock");
            crate::metrics::publish_raft(&status, &mut prev);
            crate::metrics::publish_ready(crate::routes::not_ready_reason(&app, &status).is_none());
            crate::metrics::publish_storage(app.consensus.storage_failed(), &app.config.data_dir);
            crate::metrics::publish_replica_lag(app.consensus.replica_lag());
            metrics::gauge!("paddock_raft_log_fsync_recent_seconds").set(app.consensus.fsync_recent().as_secs_f64());
        })
    })
    .await
}

async fn upkeep(app: App, stop: watch::Receiver<bool>) {
    every(Duration::from_secs(5), stop, move || {
        let app = app.clone();
        Box::pin(async move {
            app.metrics.run_upkeep();
            // Forget keys idle long enough to be back at a full quota: the maps stay as small
            // as the set of recent callers.
            if let Some(limiter) = &app.principal_limiter {
                limiter.retain_recent();
            }
            for limiter in [&app.ip_limiter, &app.auth_failure_limiter].into_iter().flatten() {
                limiter.retain_recent();
            }
        })
    })
    .await
}

/// How often the certificate files are checked for a change.
pub const CERTIFICATE_RELOAD_PERIOD: Duration = Duration::from_secs(5);

/// Re-reads this node's certificate and key when their files change: the public listener and
/// the peer connections use the new pair from their next handshake on.
pub(crate) fn spawn_certificate_reload(
    cert: std::sync::Arc<paddock_consensus::tls::ReloadingCert>,
    stop: watch::Receiver<bool>,
) {
    tokio::spawn(every(CERTIFICATE_RELOAD_PERIOD, stop, move || {
        let cert = cert.clone();
        Box::pin(async move {
            match cert.reload_if_changed() {
                Ok(true) => {
                    metrics::counter!("paddock_tls_certificate_reloads_total", "result" => "ok").increment(1);
                    tracing::info!("TLS certificate reloaded");
                }
                Ok(false) => {}
                Err(e) => {
                    metrics::counter!("paddock_tls_certificate_reloads_total", "result" => "error").increment(1);
                    tracing::error!(error = %e, "cannot reload the TLS certificate; the previous one stays in use");
                }
            }
        })
    }));
}

/// R8: a self-check at start and then every `self_check_interval_s`.
pub(crate) fn spawn_self_check(app: App, stop: watch::Receiver<bool>) {
    let period = Duration::from_secs(app.config.self_check_interval_s);
    tokio::spawn(every(period, stop, move || {
        let app = app.clone();
        Box::pin(async move {
            let now = (app.clock)().0;
            let result = crate::self_check::check(&app.config, &app.self_check, now);
            record_self_check(app, result);
        })
    }));
}

/// How long a node keeps trying to record a self-check's incident (no leader yet at start, an
/// election): past this the next scheduled check tries again.
const INCIDENT_RECORD_WITHIN: Duration = Duration::from_secs(600);

/// Keeps the incident record in step with a self-check: a failed check opens a
/// `self_check_failed` incident for this node (or finds it open), a passing one closes it.
/// Runs in the background, retrying while there is no leader.
pub(crate) fn record_self_check(app: App, result: paddock_api::wire::SelfCheckBody) {
    use paddock_ledger::{Actor, IdempotencyKey, IncidentKind};
    tokio::spawn(async move {
        let node = app.config.node_id;
        let actor = Actor(format!("node-{node}"));
        let deadline = tokio::time::Instant::now() + INCIDENT_RECORD_WITHIN;
        loop {
            let open = app.consensus.read(|d| d.state.open_incident(IncidentKind::SelfCheckFailed, node));
            let command = match (&open, result.ok) {
                (None, true) | (Some(_), false) => return, // already as it should be
                (None, false) => {
                    let cause =
                        crate::incidents::bounded(format!("self-check failed: {}", result.mismatches.join("; ")));
                    Command::OpenIncident {
                        kind: IncidentKind::SelfCheckFailed,
                        node,
                        cause,
                        actor: actor.clone(),
                        key: IdempotencyKey(format!("self-check-{node}-{}", result.checked_at_ms)),
                    }
                }
                (Some(incident), true) => Command::CloseIncident {
                    incident: incident.id,
                    resolution: "the self-check passed: the binary and configuration are the expected ones".into(),
                    actor: actor.clone(),
                    key: IdempotencyKey(format!("self-check-{node}-{}", result.checked_at_ms)),
                },
            };
            match app.consensus.write(command).await {
                Ok(written) => {
                    if let paddock_ledger::Outcome::Rejected(code) = written.outcome {
                        tracing::error!(code = code.as_str(), "the self-check's incident was refused");
                    }
                    return;
                }
                Err(e) if tokio::time::Instant::now() < deadline => {
                    tracing::debug!(error = %e, "cannot record the self-check's incident yet; trying again");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(e) => {
                    tracing::error!(error = %e, "could not record the self-check's incident; the next check tries again");
                    return;
                }
            }
        }
    });
}
