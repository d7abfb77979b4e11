//! Self-healing membership: the leader replaces a voter that is gone by a caught-up standby.
//!
//! A dead voter left in the membership is a majority one failure closer to lost: with three
//! voters and one dead, the next failure stops the cluster. Every [`PERIOD`] the leader looks at
//! its replication progress, and when a voter has not answered it for `replace_voter_after_s`
//! while a standby learner (a learner named in `replace_voter_pool`) has been caught up for as
//! long, it makes the standby a voter in the dead voter's place, in one joint-consensus change
//! (`Consensus::replace_voter`), and keeps the dead voter as a learner: when it comes back it
//! follows as a standby, never votes with its stale view, and can replace the next dead voter.
//!
//! What keeps this from doing harm:
//!
//! - **One change at a time.** Nothing is planned while a membership change is under way, and
//!   two automatic replacements are at least `replace_voter_after_s` apart; a second dead voter
//!   waits for the first replacement to finish.
//! - **Never below a majority.** The number of voters never changes, and a replacement is
//!   proposed only while a majority of the voters answers the leader now (the joint change
//!   needs it, and a leader without one should not be changing anything).
//! - **Hysteresis.** A voter counts as dead only after `replace_voter_after_s` without a single
//!   answer (openraft's per-follower heartbeat acknowledgements; a new leader counts from when
//!   it took over), and a standby must have been caught up that long: a node that comes and
//!   goes more often never changes the membership.
//! - **Only named standbys.** A learner outside the pool (a DR site's replica, which follows
//!   from afar and asynchronously) is never promoted; a node of another cluster cannot even be
//!   added as a learner (peers refuse another cluster's calls).
//!
//! Each replacement is an incident (`voter_replaced`, in the audit trail like every incident
//! record): opened before the change with the reason, closed after it with the result. A
//! refusal — a dead voter that cannot be replaced now — is logged once per finding, with what
//! to do, and counted in `paddock_voter_replacements_refused_total{reason}`.

use crate::incidents::{close, open, silent_for, Leading};
use crate::App;
use paddock_consensus::ClusterStatus;
use paddock_ledger::IncidentKind;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// How often the leader looks.
pub const PERIOD: Duration = Duration::from_millis(500);
/// A member whose last answer is younger than this answers the leader now.
pub const ANSWERS_WITHIN: Duration = crate::incidents::UNREACHABLE_AFTER;

/// What the operator configured.
#[derive(Clone, Debug)]
pub(crate) struct Policy {
    /// Nodes that may be made voters automatically.
    pub pool: BTreeSet<u64>,
    /// How long a voter must be silent, a standby caught up, and two replacements apart.
    pub after: Duration,
    /// Entries a standby may be behind the leader and still count as caught up.
    pub lag_max: u64,
}

/// One member as the plan needs it.
#[derive(Clone, Debug)]
pub(crate) struct MemberView {
    pub id: u64,
    pub voter: bool,
    /// Time since its last answer to this leader (since the leader took over if none yet).
    pub silent_for: Duration,
    /// Entries behind the leader's last log index; `None` before it matched anything.
    pub lag: Option<u64>,
}

/// The cluster as the plan needs it (from the leader's [`ClusterStatus`]).
#[derive(Clone, Debug)]
pub(crate) struct View {
    pub me: u64,
    pub changing: bool,
    pub members: Vec<MemberView>,
}

impl View {
    fn from_status(status: &ClusterStatus, leading_for: Duration) -> View {
        View {
            me: status.node_id,
            changing: status.membership_changing,
            members: status
                .members
                .iter()
                .map(|m| MemberView {
                    id: m.id,
                    voter: m.voter,
                    silent_for: if m.id == status.node_id { Duration::ZERO } else { silent_for(m, leading_for) },
                    lag: if m.id == status.node_id { Some(0) } else { m.lag },
                })
                .collect(),
        }
    }
}

/// What the leader remembers between looks (forgotten when it stops leading).
#[derive(Default, Debug)]
pub(crate) struct Seen {
    /// Since when each learner has been caught up without a break.
    caught_up_since: BTreeMap<u64, Instant>,
    /// When this leader last changed the membership by itself.
    last_change: Option<Instant>,
}

/// Why a dead voter is not replaced now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Another membership change is under way.
    ChangeUnderWay,
    /// Fewer than a majority of the voters answer the leader.
    NoMajority,
    /// The last automatic replacement was too recent.
    TooSoon,
    /// No learner of the pool has been caught up long enough.
    NoStandby,
    /// The change was proposed and refused or failed.
    ChangeFailed,
}

impl Refusal {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::ChangeUnderWay => "change_under_way",
            Refusal::NoMajority => "no_majority",
            Refusal::TooSoon => "too_soon",
            Refusal::NoStandby => "no_standby",
            Refusal::ChangeFailed => "change_failed",
        }
    }

    fn explain(self, after: Duration) -> String {
        match self {
            Refusal::ChangeUnderWay => {
                "another membership change is under way; one change at a time, the next look tries again".into()
            }
            Refusal::NoMajority => "fewer than a majority of the voters answer the leader: a membership change \
                                    could not commit, and would not be safe to start; bring voters back"
                .into(),
            Refusal::TooSoon => format!(
                "the last automatic replacement was less than {} s ago; replacements are spaced by \
                 replace_voter_after_s",
                after.as_secs()
            ),
            Refusal::NoStandby => format!(
                "no learner of replace_voter_pool has been caught up for {} s: start a standby (`paddock start` \
                 with its own --node-id), add it with `paddock members add`, and name it in --replace-voter-pool \
                 on every voter",
                after.as_secs()
            ),
            Refusal::ChangeFailed => "the leader proposed the change and it was not made".into(),
        }
    }
}

/// The leader's decision for one look.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Every voter answers (or none has been silent long enough).
    Nothing,
    /// Make `standby` a voter in `dead`'s place.
    Replace { dead: u64, standby: u64, silent_for: Duration },
    /// `dead` should be replaced and cannot be now.
    Refused { dead: u64, silent_for: Duration, why: Refusal },
}

/// Decides one look; updates what `seen` remembers of the learners.
pub(crate) fn plan(policy: &Policy, view: &View, seen: &mut Seen, now: Instant) -> Plan {
    let caught_up = |m: &MemberView| m.silent_for < ANSWERS_WITHIN && m.lag.is_some_and(|l| l <= policy.lag_max);
    for m in &view.members {
        if !m.voter && caught_up(m) {
            seen.caught_up_since.entry(m.id).or_insert(now);
        } else {
            seen.caught_up_since.remove(&m.id);
        }
    }
    let voters: Vec<&MemberView> = view.members.iter().filter(|m| m.voter).collect();
    // The voter silent longest, the smaller id on a tie.
    let Some(dead) = voters
        .iter()
        .filter(|m| m.id != view.me && m.silent_for >= policy.after)
        .max_by_key(|m| (m.silent_for, std::cmp::Reverse(m.id)))
    else {
        return Plan::Nothing;
    };
    let refused = |why| Plan::Refused { dead: dead.id, silent_for: dead.silent_for, why };
    if view.changing {
        return refused(Refusal::ChangeUnderWay);
    }
    let answering = voters.iter().filter(|m| m.id == view.me || m.silent_for < ANSWERS_WITHIN).count();
    if answering < voters.len() / 2 + 1 {
        return refused(Refusal::NoMajority);
    }
    if seen.last_change.is_some_and(|at| now.duration_since(at) < policy.after) {
        return refused(Refusal::TooSoon);
    }
    let standby = view
        .members
        .iter()
        .filter(|m| !m.voter && policy.pool.contains(&m.id))
        .filter(|m| seen.caught_up_since.get(&m.id).is_some_and(|since| now.duration_since(*since) >= policy.after))
        .min_by_key(|m| (m.lag, m.id));
    match standby {
        Some(standby) => Plan::Replace { dead: dead.id, standby: standby.id, silent_for: dead.silent_for },
        None => refused(Refusal::NoStandby),
    }
}

/// Runs until the node stops; does nothing unless `replace_voter_pool` names a node.
pub(crate) async fn run(app: App, stop: tokio::sync::watch::Receiver<bool>) {
    if app.config.replace_voter_pool.is_empty() {
        return;
    }
    let policy = Policy {
        pool: app.config.replace_voter_pool.iter().copied().collect(),
        after: Duration::from_secs(app.config.replace_voter_after_s),
        lag_max: paddock_consensus::PROMOTE_LAG_MAX,
    };
    let mut seen = Seen::default();
    let mut leading = Leading::default();
    let mut said: Option<(u64, Refusal)> = None;
    let mut ticks = crate::jobs::Ticks::new(PERIOD, stop);
    while ticks.next().await {
        let status = app.consensus.status();
        let now = Instant::now();
        let Some(leading_for) = leading.observe(&status, now) else {
            seen = Seen::default();
            said = None;
            continue;
        };
        if leading_for.is_zero() {
            // A new term: what this node saw as leader before no longer holds.
            seen = Seen::default();
        }
        let view = View::from_status(&status, leading_for);
        match plan(&policy, &view, &mut seen, now) {
            Plan::Nothing => said = None,
            Plan::Refused { dead, silent_for, why } => {
                if said != Some((dead, why)) {
                    refuse(dead, silent_for, why, &policy);
                    said = Some((dead, why));
                }
            }
            Plan::Replace { dead, standby, silent_for } => {
                said = None;
                if replace(&app, &status, dead, standby, silent_for).await {
                    seen.last_change = Some(Instant::now());
                }
            }
        }
    }
}

fn refuse(dead: u64, silent_for: Duration, why: Refusal, policy: &Policy) {
    metrics::counter!("paddock_voter_replacements_refused_total", "reason" => why.as_str()).increment(1);
    tracing::warn!(
        node = dead,
        silent_ms = silent_for.as_millis() as u64,
        reason = why.as_str(),
        "voter {dead} has not answered the leader for {} s and is not replaced: {}",
        silent_for.as_secs(),
        why.explain(policy.after)
    );
}

/// Records the incident, makes the change, closes the incident with its result. Whether the
/// membership was changed or the change was tried (either way the next one waits).
async fn replace(app: &App, status: &ClusterStatus, dead: u64, standby: u64, silent_for: Duration) -> bool {
    let me = status.node_id;
    let addr = |id: u64| status.members.iter().find(|m| m.id == id).map_or_else(String::new, |m| m.addr.clone());
    let lag = status.members.iter().find(|m| m.id == standby).and_then(|m| m.lag).unwrap_or(0);
    let cause = format!(
        "the leader (node {me}) has had no answer from voter {dead} ({}) for {} s; standby node {standby} ({}, {lag} \
         entries behind) takes its vote, and node {dead} stays a learner",
        addr(dead),
        silent_for.as_secs(),
        addr(standby)
    );
    let key = format!("voter-replaced-{dead}-by-{standby}-term-{}-after-{}", status.term, status.last_log_index);
    let Some(incident) = open(app, IncidentKind::VoterReplaced, dead, cause, &key).await else {
        // Not recorded (the write did not commit in time): nothing changed; try again later.
        return false;
    };
    let started = Instant::now();
    let result = app.consensus.replace_voter(dead, standby).await;
    let took = started.elapsed();
    let resolution = match &result {
        Ok(()) => {
            metrics::counter!("paddock_voter_replacements_total").increment(1);
            tracing::warn!(
                dead,
                standby,
                took_ms = took.as_millis() as u64,
                "voter {dead} replaced by standby {standby}: the cluster has its full number of voters again"
            );
            format!("node {standby} votes in place of node {dead} (membership change took {} ms)", took.as_millis())
        }
        Err(e) => {
            metrics::counter!("paddock_voter_replacements_refused_total", "reason" => Refusal::ChangeFailed.as_str())
                .increment(1);
            tracing::error!(dead, standby, error = %e, "the replacement of voter {dead} by {standby} was not made");
            format!("not replaced: {e}")
        }
    };
    close(app, incident, IncidentKind::VoterReplaced, resolution, &format!("{key}-closed")).await;
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    const AFTER: Duration = Duration::from_secs(30);

    fn policy() -> Policy {
        Policy { pool: BTreeSet::from([1, 2, 3, 4, 5]), after: AFTER, lag_max: 1_000 }
    }

    fn voter(id: u64, silent_s: u64) -> MemberView {
        MemberView { id, voter: true, silent_for: Duration::from_secs(silent_s), lag: Some(0) }
    }

    fn learner(id: u64, silent_s: u64, lag: u64) -> MemberView {
        MemberView { id, voter: false, silent_for: Duration::from_secs(silent_s), lag: Some(lag) }
    }

    fn view(members: Vec<MemberView>) -> View {
        View { me: 1, changing: false, members }
    }

    /// Looks every second for `secs` seconds at the same view; the last plan.
    fn look_for(secs: u64, policy: &Policy, view: &View, seen: &mut Seen, start: Instant) -> Plan {
        let mut last = Plan::Nothing;
        for s in 0..=secs {
            last = plan(policy, view, seen, start + Duration::from_secs(s));
        }
        last
    }

    #[test]
    fn a_voter_silent_past_the_limit_is_replaced_by_the_standby_caught_up_longest_enough() {
        let v = view(vec![voter(1, 0), voter(2, 0), voter(3, 31), learner(4, 0, 3), learner(5, 0, 0)]);
        let mut seen = Seen::default();
        let plan = look_for(30, &policy(), &v, &mut seen, Instant::now());
        // Both standbys are steady; the one closer to the leader wins.
        assert_eq!(plan, Plan::Replace { dead: 3, standby: 5, silent_for: Duration::from_secs(31) });
    }

    #[test]
    fn a_voter_silent_for_less_than_the_limit_is_left_alone() {
        let v = view(vec![voter(1, 0), voter(2, 0), voter(3, 29), learner(4, 0, 0)]);
        assert_eq!(look_for(60, &policy(), &v, &mut Seen::default(), Instant::now()), Plan::Nothing);
    }

    #[test]
    fn a_flapping_voter_never_changes_the_membership() {
        // Down 20 s, up 2 s, down 20 s, ...: each answer starts its silence again.
        let p = policy();
        let mut seen = Seen::default();
        let start = Instant::now();
        for round in 0..10u64 {
            for s in 0..22u64 {
                let silent = if s < 20 { s } else { 0 };
                let v = view(vec![voter(1, 0), voter(2, 0), voter(3, silent), learner(4, 0, 0)]);
                let at = start + Duration::from_secs(round * 22 + s);
                assert_eq!(plan(&p, &v, &mut seen, at), Plan::Nothing, "round {round}, second {s}");
            }
        }
    }

    #[test]
    fn a_standby_must_have_been_caught_up_for_the_whole_limit() {
        let p = policy();
        let mut seen = Seen::default();
        let start = Instant::now();
        let behind = view(vec![voter(1, 0), voter(2, 0), voter(3, 40), learner(4, 0, 5_000)]);
        let refused = plan(&p, &behind, &mut seen, start);
        assert!(matches!(refused, Plan::Refused { dead: 3, why: Refusal::NoStandby, .. }), "{refused:?}");
        // It catches up; only after the limit does it count.
        let caught_up = view(vec![voter(1, 0), voter(2, 0), voter(3, 40), learner(4, 0, 10)]);
        let early = look_for(29, &p, &caught_up, &mut seen, start + Duration::from_secs(1));
        assert!(matches!(early, Plan::Refused { why: Refusal::NoStandby, .. }), "{early:?}");
        let later = plan(&p, &caught_up, &mut seen, start + Duration::from_secs(31));
        assert!(matches!(later, Plan::Replace { dead: 3, standby: 4, .. }), "{later:?}");
        // A standby that stops answering starts over.
        let silent = view(vec![voter(1, 0), voter(2, 0), voter(3, 40), learner(4, 3, 10)]);
        plan(&p, &silent, &mut seen, start + Duration::from_secs(32));
        let again = plan(&p, &caught_up, &mut seen, start + Duration::from_secs(33));
        assert!(matches!(again, Plan::Refused { why: Refusal::NoStandby, .. }), "{again:?}");
    }

    #[test]
    fn a_learner_outside_the_pool_is_never_promoted() {
        let p = Policy { pool: BTreeSet::from([1, 2, 3]), ..policy() };
        // Node 9: a DR site's learner, caught up.
        let v = view(vec![voter(1, 0), voter(2, 0), voter(3, 40), learner(9, 0, 0)]);
        let refused = look_for(60, &p, &v, &mut Seen::default(), Instant::now());
        assert!(matches!(refused, Plan::Refused { dead: 3, why: Refusal::NoStandby, .. }), "{refused:?}");
    }

    #[test]
    fn nothing_is_planned_while_a_membership_change_is_under_way() {
        let mut v = view(vec![voter(1, 0), voter(2, 0), voter(3, 40), learner(4, 0, 0)]);
        v.changing = true;
        let refused = look_for(60, &policy(), &v, &mut Seen::default(), Instant::now());
        assert!(matches!(refused, Plan::Refused { why: Refusal::ChangeUnderWay, .. }), "{refused:?}");
    }

    #[test]
    fn without_a_majority_answering_nothing_is_changed() {
        // Five voters, three silent: the leader has no majority behind it.
        let v = view(vec![voter(1, 0), voter(2, 0), voter(3, 40), voter(4, 35), voter(5, 3), learner(6, 0, 0)]);
        let refused = look_for(60, &policy(), &v, &mut Seen::default(), Instant::now());
        assert!(matches!(refused, Plan::Refused { dead: 3, why: Refusal::NoMajority, .. }), "{refused:?}");
    }

    #[test]
    fn two_dead_voters_are_replaced_one_at_a_time_spaced_by_the_limit() {
        let p = Policy { pool: BTreeSet::from([6, 7]), ..policy() };
        let mut seen = Seen::default();
        let start = Instant::now();
        let v = view(vec![
            voter(1, 0),
            voter(2, 0),
            voter(3, 0),
            voter(4, 40),
            voter(5, 50),
            learner(6, 0, 0),
            learner(7, 0, 1),
        ]);
        // The voter silent longest goes first.
        let first = look_for(30, &p, &v, &mut seen, start);
        assert_eq!(first, Plan::Replace { dead: 5, standby: 6, silent_for: Duration::from_secs(50) });
        seen.last_change = Some(start + Duration::from_secs(30));
        let after_first = view(vec![
            voter(1, 0),
            voter(2, 0),
            voter(3, 0),
            voter(4, 41),
            learner(5, 51, 0),
            voter(6, 0),
            learner(7, 0, 1),
        ]);
        let soon = plan(&p, &after_first, &mut seen, start + Duration::from_secs(31));
        assert!(matches!(soon, Plan::Refused { dead: 4, why: Refusal::TooSoon, .. }), "{soon:?}");
        let later = plan(&p, &after_first, &mut seen, start + Duration::from_secs(60));
        assert_eq!(later, Plan::Replace { dead: 4, standby: 7, silent_for: Duration::from_secs(41) });
    }
}
