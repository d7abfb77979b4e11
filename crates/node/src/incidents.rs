//! Incidents a node records by itself (R3 of DOMAIN.md: a record of every failure).
//!
//! Every [`PERIOD`] each node looks at what it can see and keeps the replicated incident
//! records in step with it, through the same `OpenIncident` / `CloseIncident` commands an
//! operator uses (so each is also in the audit trail):
//!
//! - `leader_changed` — recorded by the new leader once it leads a new term: the previous
//!   leader it knew, and how long it saw no leader; opened and closed at once.
//! - `node_unreachable` — the leader has had no answer from a member for
//!   [`UNREACHABLE_AFTER`] (down, frozen, cut off, or its Raft stopped on a storage failure);
//!   closed once the member answers again. A new leader takes over the records it finds open.
//! - `load_shedding` — this node refused requests at its concurrency limit; closed after
//!   [`QUIET_FOR`] without a refusal, with the number refused.
//! - `clock_unsynchronized` — this node's clock disagrees with a majority of the voters';
//!   closed when it agrees again.
//!
//! The ledger keeps at most one open incident per kind and node, so a record written twice (a
//! retry, two leaders in quick succession) is the same record. A write that fails (no leader
//! yet) is simply tried again at the next look. A node whose own Raft has stopped cannot write;
//! the leader's `node_unreachable` record stands for it.

use crate::App;
use paddock_consensus::{ClusterStatus, Member, Role};
use paddock_ledger::{Actor, Command, IdempotencyKey, IncidentKind, Outcome};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// How often a node looks.
pub const PERIOD: Duration = Duration::from_millis(500);
/// How long the leader waits for a member's answer before recording it unreachable.
pub const UNREACHABLE_AFTER: Duration = Duration::from_secs(2);
/// How long without a shed request ends a load-shedding incident.
pub const QUIET_FOR: Duration = Duration::from_secs(10);
/// How long a clock must stay out of bound before it is an incident (one bad sample is not).
pub const CLOCK_OUT_FOR: Duration = Duration::from_secs(2);
/// How long one record's write may take before the next look tries again.
const WRITE_WITHIN: Duration = Duration::from_secs(2);

/// What a node remembers between looks.
#[derive(Default)]
struct Seen {
    /// The last leader this node knew, with its term.
    leader: Option<(u64, u64)>,
    /// Since when this node has known no leader (or a leader other than the last one).
    leaderless_since: Option<Instant>,
    /// A leader change seen and not yet recorded: the leader before it, with its term.
    change_from: Option<(u64, u64)>,
    /// The last term this node recorded a leader change for (as its leader).
    recorded_term: u64,
    /// Since when this node has led, to judge members that never answered it.
    leading: Leading,
    /// Requests shed so far and since when none has been shed.
    shed_total: u64,
    shedding: Option<Shedding>,
    clock_out_since: Option<Instant>,
}

struct Shedding {
    started: Instant,
    first_total: u64,
    last_shed: Instant,
}

/// Since when this node has led its current term: a member that has not answered this leader
/// yet (openraft reports no acknowledgement before the first) has been silent at least that
/// long.
#[derive(Default, Debug)]
pub(crate) struct Leading(Option<(u64, Instant)>);

impl Leading {
    /// How long this node has led, `None` if it does not lead now; a new term starts the count
    /// again (at zero).
    pub(crate) fn observe(&mut self, status: &ClusterStatus, now: Instant) -> Option<Duration> {
        if status.role != Role::Leader {
            self.0 = None;
            return None;
        }
        let since = match self.0 {
            Some((term, since)) if term == status.term => since,
            _ => self.0.insert((status.term, now)).1,
        };
        Some(now.duration_since(since))
    }
}

/// How long `member` has not answered this leader, which has led for `leading_for`.
pub(crate) fn silent_for(member: &Member, leading_for: Duration) -> Duration {
    member.ack_age_ms.map_or(leading_for, Duration::from_millis)
}

/// Runs until the node stops.
pub(crate) async fn run(app: App, stop: tokio::sync::watch::Receiver<bool>) {
    let mut seen = Seen { shed_total: crate::shed_requests(), ..Seen::default() };
    let mut ticks = crate::jobs::Ticks::new(PERIOD, stop);
    while ticks.next().await {
        look(&app, &mut seen).await;
    }
}

async fn look(app: &App, seen: &mut Seen) {
    let status = app.consensus.status();
    let me = app.config.node_id;
    let now = Instant::now();
    leader_change(app, seen, &status, me, now).await;
    if let Some(leading_for) = seen.leading.observe(&status, now) {
        reachability(app, &status, me, leading_for).await;
    }
    load_shedding(app, seen, me, now).await;
    clock(app, seen, &status, me, now).await;
}

async fn leader_change(app: &App, seen: &mut Seen, status: &paddock_consensus::ClusterStatus, me: u64, now: Instant) {
    let Some(leader) = status.leader else {
        seen.leaderless_since.get_or_insert(now);
        return;
    };
    let Some(previous) = seen.leader else {
        // A node that just started knows no previous leader to name: nothing changed for it.
        seen.leader = Some((leader, status.term));
        seen.leaderless_since = None;
        return;
    };
    if previous != (leader, status.term) {
        seen.leaderless_since.get_or_insert(now);
        seen.change_from = Some(previous);
        seen.leader = Some((leader, status.term));
    }
    // Only the new leader records the change, once per term.
    let Some((old, old_term)) = seen.change_from else { return };
    if leader != me {
        seen.change_from = None;
        seen.leaderless_since = None;
        return;
    }
    if status.role != Role::Leader || seen.recorded_term >= status.term {
        return;
    }
    let gap = seen.leaderless_since.map_or(0, |since| now.duration_since(since).as_millis());
    let term = status.term;
    let cause = if old == me {
        format!("node {me} (leader in term {old_term}) was elected again in term {term}; {gap} ms without a leader seen here")
    } else {
        format!(
            "node {old} (leader in term {old_term}) lost the leadership; node {me} was elected in term {term}; \
             {gap} ms without a leader seen here"
        )
    };
    let key = format!("leader-changed-term-{term}");
    let Some(incident) = open(app, IncidentKind::LeaderChanged, old, cause, &key).await else { return };
    let resolution = format!("node {me} leads term {term}");
    if close(app, incident, IncidentKind::LeaderChanged, resolution, &format!("{key}-closed")).await {
        seen.recorded_term = term;
        seen.change_from = None;
        seen.leaderless_since = None;
    }
}

async fn reachability(app: &App, status: &paddock_consensus::ClusterStatus, me: u64, leading_for: Duration) {
    let open_now: BTreeMap<u64, paddock_ledger::IncidentId> = app.consensus.read(|d| {
        status
            .members
            .iter()
            .filter_map(|m| d.state.open_incident(IncidentKind::NodeUnreachable, m.id).map(|i| (m.id, i.id)))
            .collect()
    });
    for member in status.members.iter().filter(|m| m.id != me) {
        let silent_for = silent_for(member, leading_for);
        let open_incident = open_now.get(&member.id).copied();
        if silent_for >= UNREACHABLE_AFTER && open_incident.is_none() {
            let cause = format!(
                "the leader (node {me}) has had no answer from node {} ({}) for {} ms",
                member.id,
                member.addr,
                silent_for.as_millis()
            );
            let key = format!("node-unreachable-{}-term-{}-after-{}", member.id, status.term, status.last_log_index);
            open(app, IncidentKind::NodeUnreachable, member.id, cause, &key).await;
        } else if let (Some(incident), true) = (open_incident, member.ack_age_ms.is_some_and(|a| a < 1_000)) {
            let resolution = format!("node {} answers the leader (node {me}) again", member.id);
            let key = format!("node-reachable-{}-incident-{}", member.id, incident.0);
            close(app, incident, IncidentKind::NodeUnreachable, resolution, &key).await;
        }
    }
}

async fn load_shedding(app: &App, seen: &mut Seen, me: u64, now: Instant) {
    let total = crate::shed_requests();
    let new = total.saturating_sub(seen.shed_total);
    seen.shed_total = total;
    if new > 0 {
        match &mut seen.shedding {
            Some(s) => s.last_shed = now,
            None => {
                let first_total = total - new;
                seen.shedding = Some(Shedding { started: now, first_total, last_shed: now });
                let cause = format!(
                    "node {me} refused requests with 503 overloaded: at its limit of {} requests at once",
                    app.config.concurrency_limit
                );
                let key = format!("load-shedding-{me}-from-{first_total}");
                open(app, IncidentKind::LoadShedding, me, cause, &key).await;
            }
        }
        return;
    }
    let Some(s) = &seen.shedding else { return };
    if now.duration_since(s.last_shed) < QUIET_FOR {
        return;
    }
    let Some(incident) = app.consensus.read(|d| d.state.open_incident(IncidentKind::LoadShedding, me)) else {
        seen.shedding = None;
        return;
    };
    let resolution = format!(
        "{} requests refused over {} s; none for {} s",
        total - s.first_total,
        s.last_shed.duration_since(s.started).as_secs(),
        QUIET_FOR.as_secs()
    );
    let key = format!("load-shedding-{me}-from-{}-closed", s.first_total);
    if close(app, incident.id, IncidentKind::LoadShedding, resolution, &key).await {
        seen.shedding = None;
    }
}

async fn clock(app: &App, seen: &mut Seen, status: &paddock_consensus::ClusterStatus, me: u64, now: Instant) {
    let open_incident = app.consensus.read(|d| d.state.open_incident(IncidentKind::ClockUnsynchronized, me));
    if status.clock.synchronized {
        seen.clock_out_since = None;
        if let Some(incident) = open_incident {
            let key = format!("clock-synchronized-{me}-incident-{}", incident.id);
            let resolution = format!("node {me}'s clock agrees with a majority of the voters' again");
            close(app, incident.id, IncidentKind::ClockUnsynchronized, resolution, &key).await;
        }
        return;
    }
    let since = *seen.clock_out_since.get_or_insert(now);
    if open_incident.is_some() || now.duration_since(since) < CLOCK_OUT_FOR {
        return;
    }
    let offsets: Vec<String> =
        status.clock.offsets.iter().map(|(node, s)| format!("node {node}: {} ms", s.offset_ms)).collect();
    let cause = format!(
        "node {me}'s clock disagrees with a majority of the voters' beyond the bound (offsets: {})",
        if offsets.is_empty() { "none sampled".to_string() } else { offsets.join(", ") }
    );
    let key = format!("clock-unsynchronized-{me}-term-{}-after-{}", status.term, status.last_log_index);
    open(app, IncidentKind::ClockUnsynchronized, me, cause, &key).await;
}

/// Opens an incident; its id, or `None` if it could not be written now.
pub(crate) async fn open(
    app: &App,
    kind: IncidentKind,
    node: u64,
    cause: String,
    key: &str,
) -> Option<paddock_ledger::IncidentId> {
    let command = Command::OpenIncident {
        kind,
        node,
        cause: bounded(cause),
        actor: Actor(format!("node-{}", app.config.node_id)),
        key: IdempotencyKey(key.to_string()),
    };
    match write(app, command, kind, "open").await? {
        Outcome::Done(paddock_ledger::Done::IncidentOpened { incident, already_open }) => {
            if !already_open {
                tracing::warn!(incident = incident.0, kind = kind.as_str(), node, "incident opened");
            }
            Some(incident)
        }
        _ => None,
    }
}

/// Closes an incident; whether it is closed now.
pub(crate) async fn close(
    app: &App,
    incident: paddock_ledger::IncidentId,
    kind: IncidentKind,
    resolution: String,
    key: &str,
) -> bool {
    let command = Command::CloseIncident {
        incident,
        resolution: bounded(resolution),
        actor: Actor(format!("node-{}", app.config.node_id)),
        key: IdempotencyKey(key.to_string()),
    };
    match write(app, command, kind, "close").await {
        Some(Outcome::Done(_)) => {
            tracing::info!(incident = incident.0, kind = kind.as_str(), "incident closed");
            true
        }
        // Closed already (by an operator, or by another leader's look): as it should be.
        Some(Outcome::Rejected(paddock_ledger::ResultCode::IncidentClosed)) => true,
        _ => false,
    }
}

async fn write(app: &App, command: Command, kind: IncidentKind, action: &'static str) -> Option<Outcome> {
    match tokio::time::timeout(WRITE_WITHIN, app.consensus.write(command)).await {
        Ok(Ok(written)) => {
            if let Outcome::Rejected(code) = &written.outcome {
                if *code != paddock_ledger::ResultCode::IncidentClosed {
                    tracing::error!(
                        code = code.as_str(),
                        kind = kind.as_str(),
                        action,
                        "an incident record was refused"
                    );
                }
            } else if !written.replayed {
                metrics::counter!("paddock_incidents_recorded_total", "kind" => kind.as_str(), "action" => action)
                    .increment(1);
            }
            Some(written.outcome)
        }
        Ok(Err(e)) => {
            tracing::debug!(error = %e, kind = kind.as_str(), action, "cannot record the incident yet; the next look tries again");
            None
        }
        Err(_) => None,
    }
}

/// `text` cut to the longest cause or resolution an incident takes, at a character boundary.
pub(crate) fn bounded(mut text: String) -> String {
    let max = paddock_ledger::incident::INCIDENT_TEXT_MAX;
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}
