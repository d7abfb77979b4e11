//! How far behind the leader a follower or learner is, as it can tell by itself — the lag of a
//! standby (DR) site, which is the data a site failover would lose.
//!
//! Every append from the leader carries the leader's commit index. The replica notes when each
//! append arrived and that index; once it has applied up to an index, it was *in step* with
//! the leader as of the latest append that announced no more than that. The lag is then:
//!
//! - in seconds: how long ago the replica was last in step. It grows while the replica falls
//!   behind and, above all, while it hears nothing: a cut link to the primary site shows as a
//!   lag that rises second by second, although the replica cannot know what it is missing;
//! - in entries: the leader's commit index as last announced minus the applied index.
//!
//! Notes are kept per 5 ms of arrivals (a later index in the same slot is folded into it, which
//! can only overstate the lag by that much) and at most [`NOTES_MAX`] of them, dropping the
//! oldest: again an overstatement, never an understatement.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// Arrivals closer than this share one note.
const SLOT: Duration = Duration::from_millis(5);
/// Most notes kept (20 s of arrivals at one per slot).
const NOTES_MAX: usize = 4096;

/// The replica's lag behind the leader.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ReplicaLag {
    /// Seconds since this node was last known to have applied all the leader had committed.
    pub seconds: f64,
    /// The leader's commit index as last announced, minus the applied index.
    pub entries: u64,
}

struct Tracking {
    /// (arrival, leader's commit index announced), oldest first.
    notes: VecDeque<(Instant, u64)>,
    /// The highest commit index announced.
    announced: u64,
    /// When this node was last in step.
    in_step: Instant,
}

/// Kept by every node; meaningful on followers and learners.
pub(crate) struct LagTracker(Mutex<Tracking>);

impl LagTracker {
    /// A node that starts counts as in step at its start: before the first append, its lag is
    /// the time since.
    pub(crate) fn new(now: Instant) -> LagTracker {
        LagTracker(Mutex::new(Tracking { notes: VecDeque::new(), announced: 0, in_step: now }))
    }

    /// An append from the leader arrived at `now`, announcing `leader_commit`.
    pub(crate) fn heard(&self, now: Instant, leader_commit: Option<u64>) {
        let mut t = self.0.lock().expect("lag lock");
        let commit = leader_commit.unwrap_or(0).max(t.announced);
        t.announced = commit;
        match t.notes.back_mut() {
            Some((at, c)) if now.duration_since(*at) < SLOT => *c = commit,
            _ => {
                if t.notes.len() == NOTES_MAX {
                    t.notes.pop_front();
                }
                t.notes.push_back((now, commit));
            }
        }
    }

    /// The lag at `now`, with `applied` the applied index; a leader is never behind.
    pub(crate) fn sample(&self, now: Instant, applied: u64, leading: bool) -> ReplicaLag {
        let mut t = self.0.lock().expect("lag lock");
        if leading {
            t.notes.clear();
            t.in_step = now;
            t.announced = t.announced.max(applied);
            return ReplicaLag { seconds: 0.0, entries: 0 };
        }
        while let Some(&(at, commit)) = t.notes.front() {
            if commit > applied {
                break;
            }
            t.in_step = t.in_step.max(at);
            t.notes.pop_front();
        }
        ReplicaLag {
            seconds: now.saturating_duration_since(t.in_step).as_secs_f64(),
            entries: t.announced.saturating_sub(applied),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(base: Instant, ms: u64) -> Instant {
        base + Duration::from_millis(ms)
    }

    #[test]
    fn a_replica_that_applies_what_each_append_announced_is_in_step_as_of_that_append() {
        let t0 = Instant::now();
        let lag = LagTracker::new(t0);
        lag.heard(at(t0, 100), Some(10));
        lag.heard(at(t0, 200), Some(20));
        let now = at(t0, 250);
        assert_eq!(lag.sample(now, 10, false), ReplicaLag { seconds: 0.15, entries: 10 });
        assert_eq!(lag.sample(now, 20, false), ReplicaLag { seconds: 0.05, entries: 0 });
    }

    #[test]
    fn when_the_leader_falls_silent_the_lag_grows_with_time_although_nothing_is_known_to_be_missing() {
        let t0 = Instant::now();
        let lag = LagTracker::new(t0);
        lag.heard(at(t0, 100), Some(10));
        assert_eq!(lag.sample(at(t0, 110), 10, false).seconds, 0.01);
        let later = lag.sample(at(t0, 30_100), 10, false);
        assert_eq!(later, ReplicaLag { seconds: 30.0, entries: 0 });
    }

    #[test]
    fn a_replica_that_never_heard_from_a_leader_lags_by_its_time_since_start() {
        let t0 = Instant::now();
        assert_eq!(LagTracker::new(t0).sample(at(t0, 2_000), 0, false).seconds, 2.0);
    }

    #[test]
    fn arrivals_within_one_slot_are_folded_so_the_lag_is_overstated_never_understated() {
        let t0 = Instant::now();
        let lag = LagTracker::new(t0);
        lag.heard(at(t0, 100), Some(10));
        lag.heard(at(t0, 103), Some(11));
        // Applied 11: in step as of the slot's first arrival (100), not 103.
        assert_eq!(lag.sample(at(t0, 110), 11, false).seconds, 0.01);
    }

    #[test]
    fn a_leader_is_never_behind() {
        let t0 = Instant::now();
        let lag = LagTracker::new(t0);
        lag.heard(at(t0, 100), Some(10));
        assert_eq!(lag.sample(at(t0, 5_000), 3, true), ReplicaLag { seconds: 0.0, entries: 0 });
    }
}
