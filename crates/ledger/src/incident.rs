//! Incident records (R3 of the domain brief): every failure an operator must account for gets
//! a record with when it started, when it ended, what caused it and which node it touched.
//!
//! They live in the replicated state, like the audit trail, so any node lists them, they
//! survive the loss of the node that saw the failure, and opening or closing one is itself
//! audited. A node opens one for what it detects about itself (a failed R8 self-check) and
//! closes it when the cause is gone; an operator can open one for what no node can see (a data
//! centre lost power) and close any with a resolution.
//!
//! At most one incident of a kind is open per node: a node that finds the same fault again
//! (every scheduled check, every restart) gets the open incident back instead of a new one.
//! Closed incidents beyond [`INCIDENTS_KEPT`] are dropped oldest first; the audit trail keeps
//! their history.

use crate::apply::ApplyCtx;
use crate::audit::AuditEvent;
use crate::code::ResultCode;
use crate::ids::{text_is_valid, Actor, TimestampMs};
use crate::outcome::Done;
use crate::state::State;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// An incident's number: 1, 2, 3, ... in the order they were opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct IncidentId(pub u64);

impl std::fmt::Display for IncidentId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What kind of failure. New kinds are added at the end (the tags are pinned).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum IncidentKind {
    /// R8: a node's binary or effective configuration is not the one it was told to expect.
    SelfCheckFailed,
    /// Opened by an operator for a failure no node detects by itself.
    Reported,
    /// A new leader was elected; opened and closed by the new leader, the cause naming the
    /// previous leader and how long this node saw no leader.
    LeaderChanged,
    /// The leader has not heard from a member for longer than the configured time (the node
    /// is down, frozen, cut off, or its Raft stopped on a storage failure); closed when it
    /// answers again.
    NodeUnreachable,
    /// A node refused requests with 503 because it was at its concurrency limit; closed after
    /// a quiet spell, with the number of requests refused.
    LoadShedding,
    /// A node's clock disagreed with a majority of the voters' beyond the bound; closed when
    /// it agrees again.
    ClockUnsynchronized,
    /// The leader replaced a voter it had not heard from for the configured time by a
    /// caught-up standby learner (self-healing); opened before the membership change, closed
    /// with its result. The node is the voter replaced.
    VoterReplaced,
}

impl IncidentKind {
    /// Every kind, in declaration order.
    pub const ALL: &'static [IncidentKind] = &[
        IncidentKind::SelfCheckFailed,
        IncidentKind::Reported,
        IncidentKind::LeaderChanged,
        IncidentKind::NodeUnreachable,
        IncidentKind::LoadShedding,
        IncidentKind::ClockUnsynchronized,
        IncidentKind::VoterReplaced,
    ];

    /// The stable wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentKind::SelfCheckFailed => "self_check_failed",
            IncidentKind::Reported => "reported",
            IncidentKind::LeaderChanged => "leader_changed",
            IncidentKind::NodeUnreachable => "node_unreachable",
            IncidentKind::LoadShedding => "load_shedding",
            IncidentKind::ClockUnsynchronized => "clock_unsynchronized",
            IncidentKind::VoterReplaced => "voter_replaced",
        }
    }

    /// From the wire name.
    pub fn parse(text: &str) -> Option<IncidentKind> {
        IncidentKind::ALL.iter().copied().find(|k| k.as_str() == text)
    }
}

/// Closed incidents kept at most (open ones are bounded by kinds × nodes, so always kept).
pub const INCIDENTS_KEPT: usize = 10_000;

/// Longest cause or resolution text, in characters.
pub const INCIDENT_TEXT_MAX: usize = 2_000;

/// One incident.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incident {
    pub(crate) kind: IncidentKind,
    /// The node it touched (0: the whole cluster, or not one node).
    pub(crate) node: u64,
    pub(crate) opened_at: TimestampMs,
    pub(crate) opened_by: Actor,
    pub(crate) cause: String,
    pub(crate) closed: Option<Closing>,
}

/// How an incident ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Closing {
    pub(crate) at: TimestampMs,
    pub(crate) by: Actor,
    pub(crate) resolution: String,
}

/// Every incident kept, by id.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incidents {
    pub(crate) records: BTreeMap<IncidentId, Incident>,
    /// The id the next incident gets (ids are never reused, even after a record is dropped).
    pub(crate) next: u64,
}

/// An incident as clients see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IncidentView {
    /// Its number.
    pub id: IncidentId,
    /// What kind of failure.
    pub kind: IncidentKind,
    /// The node it touched (0: not one node).
    pub node: u64,
    /// When it was opened (leader time).
    pub opened_at: TimestampMs,
    /// Who opened it (a node: `node-<id>`).
    pub opened_by: String,
    /// What caused it, in words.
    pub cause: String,
    /// When it was closed, if it was.
    pub closed_at: Option<TimestampMs>,
    /// Who closed it.
    pub closed_by: Option<String>,
    /// How it ended.
    pub resolution: Option<String>,
}

fn view(id: IncidentId, i: &Incident) -> IncidentView {
    IncidentView {
        id,
        kind: i.kind,
        node: i.node,
        opened_at: i.opened_at,
        opened_by: i.opened_by.0.clone(),
        cause: i.cause.clone(),
        closed_at: i.closed.as_ref().map(|c| c.at),
        closed_by: i.closed.as_ref().map(|c| c.by.0.clone()),
        resolution: i.closed.as_ref().map(|c| c.resolution.clone()),
    }
}

fn text_ok(text: &str) -> bool {
    !text.is_empty() && crate::ids::text_within(text, INCIDENT_TEXT_MAX)
}

pub(crate) fn open_incident(
    state: &mut State,
    kind: IncidentKind,
    node: u64,
    cause: &str,
    actor: &Actor,
    ctx: ApplyCtx,
    now: TimestampMs,
) -> Result<Done, ResultCode> {
    if !text_ok(cause) || actor.0.is_empty() || !text_is_valid(&actor.0) {
        return Err(ResultCode::TextInvalid);
    }
    let incidents = &mut state.incidents;
    if let Some((&id, _)) =
        incidents.records.iter().find(|(_, i)| i.kind == kind && i.node == node && i.closed.is_none())
    {
        // The same fault seen again: the incident already open stands for it.
        return Ok(Done::IncidentOpened { incident: id, already_open: true });
    }
    incidents.next += 1;
    let id = IncidentId(incidents.next);
    incidents.records.insert(
        id,
        Incident { kind, node, opened_at: now, opened_by: actor.clone(), cause: cause.to_string(), closed: None },
    );
    let mut closed = incidents.records.values().filter(|i| i.closed.is_some()).count();
    while closed > INCIDENTS_KEPT {
        let oldest = incidents.records.iter().find(|(_, i)| i.closed.is_some()).map(|(&id, _)| id);
        let Some(oldest) = oldest else { break };
        incidents.records.remove(&oldest);
        closed -= 1;
    }
    state.audit.push(ctx.log_index, now, actor.clone(), AuditEvent::IncidentOpened { incident: id, kind, node });
    Ok(Done::IncidentOpened { incident: id, already_open: false })
}

pub(crate) fn close_incident(
    state: &mut State,
    id: IncidentId,
    resolution: &str,
    actor: &Actor,
    ctx: ApplyCtx,
    now: TimestampMs,
) -> Result<Done, ResultCode> {
    if !text_ok(resolution) || actor.0.is_empty() || !text_is_valid(&actor.0) {
        return Err(ResultCode::TextInvalid);
    }
    let incident = state.incidents.records.get_mut(&id).ok_or(ResultCode::IncidentNotFound)?;
    if incident.closed.is_some() {
        return Err(ResultCode::IncidentClosed);
    }
    incident.closed = Some(Closing { at: now, by: actor.clone(), resolution: resolution.to_string() });
    state.audit.push(ctx.log_index, now, actor.clone(), AuditEvent::IncidentClosed { incident: id });
    Ok(Done::Ok)
}

impl State {
    /// One incident.
    pub fn incident(&self, id: IncidentId) -> Option<IncidentView> {
        self.incidents.records.get(&id).map(|i| view(id, i))
    }

    /// Up to `limit` incidents after `after` (by id), oldest first.
    pub fn incidents(&self, after: Option<IncidentId>, limit: usize) -> Vec<IncidentView> {
        let from = after.map_or(IncidentId(0), |a| IncidentId(a.0.saturating_add(1)));
        self.incidents.records.range(from..).take(limit).map(|(&id, i)| view(id, i)).collect()
    }

    /// The open incident of `kind` on `node`, if any.
    pub fn open_incident(&self, kind: IncidentKind, node: u64) -> Option<IncidentView> {
        self.incidents
            .records
            .iter()
            .find(|(_, i)| i.kind == kind && i.node == node && i.closed.is_none())
            .map(|(&id, i)| view(id, i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::Command;
    use crate::ids::IdempotencyKey;
    use crate::outcome::Outcome;

    fn apply(state: &mut State, command: Command, at: u64) -> Outcome {
        crate::apply(state, &command, ApplyCtx { log_index: at, time: TimestampMs(1_000 + at) })
    }

    fn open(kind: IncidentKind, node: u64, cause: &str, key: &str) -> Command {
        Command::OpenIncident {
            kind,
            node,
            cause: cause.to_string(),
            actor: Actor(format!("node-{node}")),
            key: IdempotencyKey(key.to_string()),
        }
    }

    fn close(id: u64, resolution: &str, key: &str) -> Command {
        Command::CloseIncident {
            incident: IncidentId(id),
            resolution: resolution.to_string(),
            actor: Actor("ops.ann".to_string()),
            key: IdempotencyKey(key.to_string()),
        }
    }

    #[test]
    fn a_fault_found_again_on_the_same_node_is_the_incident_already_open() {
        let mut state = State::default();
        let first = apply(&mut state, open(IncidentKind::SelfCheckFailed, 2, "binary differs", "a"), 1);
        assert_eq!(first, Outcome::Done(Done::IncidentOpened { incident: IncidentId(1), already_open: false }));
        let again = apply(&mut state, open(IncidentKind::SelfCheckFailed, 2, "binary differs", "b"), 2);
        assert_eq!(again, Outcome::Done(Done::IncidentOpened { incident: IncidentId(1), already_open: true }));
        let other_node = apply(&mut state, open(IncidentKind::SelfCheckFailed, 3, "binary differs", "c"), 3);
        assert_eq!(other_node, Outcome::Done(Done::IncidentOpened { incident: IncidentId(2), already_open: false }));
        assert_eq!(state.incidents(None, 10).len(), 2);
        assert_eq!(state.open_incident(IncidentKind::SelfCheckFailed, 2).map(|i| i.id), Some(IncidentId(1)));
    }

    #[test]
    fn a_closed_incident_keeps_its_start_end_and_resolution_and_the_next_fault_opens_a_new_one() {
        let mut state = State::default();
        apply(&mut state, open(IncidentKind::SelfCheckFailed, 2, "configuration differs", "a"), 1);
        assert_eq!(apply(&mut state, close(1, "configuration restored", "b"), 2), Outcome::Done(Done::Ok));
        let closed = state.incident(IncidentId(1)).unwrap();
        assert_eq!((closed.opened_at, closed.closed_at), (TimestampMs(1_001), Some(TimestampMs(1_002))));
        assert_eq!(closed.resolution.as_deref(), Some("configuration restored"));
        assert_eq!(closed.closed_by.as_deref(), Some("ops.ann"));
        assert_eq!(state.open_incident(IncidentKind::SelfCheckFailed, 2), None);
        let next = apply(&mut state, open(IncidentKind::SelfCheckFailed, 2, "configuration differs", "c"), 3);
        assert_eq!(next, Outcome::Done(Done::IncidentOpened { incident: IncidentId(2), already_open: false }));
    }

    #[test]
    fn closing_an_unknown_or_closed_incident_or_with_bad_text_is_refused_and_changes_nothing() {
        let mut state = State::default();
        apply(&mut state, open(IncidentKind::Reported, 0, "data centre A lost power", "a"), 1);
        apply(&mut state, close(1, "power back", "b"), 2);
        let hash = state.book_hash();
        assert_eq!(apply(&mut state, close(9, "x", "c"), 3), Outcome::Rejected(ResultCode::IncidentNotFound));
        assert_eq!(apply(&mut state, close(1, "again", "d"), 4), Outcome::Rejected(ResultCode::IncidentClosed));
        assert_eq!(apply(&mut state, close(1, "", "e"), 5), Outcome::Rejected(ResultCode::TextInvalid));
        let long = "x".repeat(INCIDENT_TEXT_MAX + 1);
        assert_eq!(
            apply(&mut state, open(IncidentKind::Reported, 0, &long, "f"), 6),
            Outcome::Rejected(ResultCode::TextInvalid)
        );
        assert_eq!(
            apply(&mut state, open(IncidentKind::Reported, 0, "line\nbreak", "g"), 7),
            Outcome::Rejected(ResultCode::TextInvalid)
        );
        assert_eq!(state.book_hash(), hash);
    }

    #[test]
    fn opening_and_closing_are_in_the_audit_trail() {
        let mut state = State::default();
        apply(&mut state, open(IncidentKind::SelfCheckFailed, 2, "binary differs", "a"), 1);
        apply(&mut state, close(1, "redeployed", "b"), 2);
        let events: Vec<AuditEvent> = state.audit().records().iter().map(|r| r.event.clone()).collect();
        assert_eq!(
            events,
            vec![
                AuditEvent::IncidentOpened { incident: IncidentId(1), kind: IncidentKind::SelfCheckFailed, node: 2 },
                AuditEvent::IncidentClosed { incident: IncidentId(1) },
            ]
        );
    }

    #[test]
    fn closed_incidents_beyond_the_bound_are_dropped_oldest_first_and_ids_are_never_reused() {
        let mut state = State::default();
        for n in 0..(INCIDENTS_KEPT as u64 + 2) {
            state.incidents.next += 1;
            let closing = Closing { at: TimestampMs(n), by: Actor("ops".into()), resolution: "done".into() };
            let incident = Incident {
                kind: IncidentKind::Reported,
                node: 0,
                opened_at: TimestampMs(n),
                opened_by: Actor("ops".into()),
                cause: "drill".into(),
                closed: Some(closing),
            };
            state.incidents.records.insert(IncidentId(state.incidents.next), incident);
        }
        apply(&mut state, open(IncidentKind::Reported, 0, "one more", "a"), 1);
        assert_eq!(state.incident(IncidentId(1)), None, "the oldest closed ones are gone");
        assert_eq!(state.incident(IncidentId(2)), None);
        assert!(state.incident(IncidentId(3)).is_some(), "down to the bound, no further");
        assert_eq!(
            state.open_incident(IncidentKind::Reported, 0).map(|i| i.id),
            Some(IncidentId(INCIDENTS_KEPT as u64 + 3))
        );
    }
}
