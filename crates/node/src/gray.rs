//! Gray failure: a leader on a slow disk hands leadership to a follower whose disk keeps up.
//!
//! An entry commits once a majority holds it on disk, the leader counting as one. A leader
//! whose disk has gone slow — a failing drive retrying reads, a noisy neighbour, a degraded
//! RAID — leaves the cluster looking healthy (nothing is down, so nothing fails over) while
//! it has lost its margin: both followers must now carry every commit, and with one of them
//! down or slow every bet waits for the slow disk. Every [`PERIOD`] the leader asks each other voter for its recent fsync latency (the
//! log's moving average, `ForwardOp::DiskHealth`) and compares its own with the followers'
//! median. When its own has stayed above `slow_disk_ratio` times theirs, and above
//! [`FLOOR`], for `slow_disk_for_s` without a break, it hands leadership to the follower with
//! the fastest disk, logs why at WARN and counts it in
//! `paddock_leader_handoffs_total{reason="slow_disk"}` (the new leader records the change as
//! a `leader_changed` incident). The next hand-off waits [`COOLDOWN`]: a cluster whose disks
//! are all slow does not pass leadership round in circles.
//!
//! A follower's slow disk needs nothing: commits wait for a majority, not for it. A disk that
//! fails outright poisons the log and stops Raft on that node, which makes it not ready and
//! costs it the leadership at once (see Durability in ARCHITECTURE.md).

use crate::App;
use paddock_consensus::Role;
use std::time::{Duration, Instant};

/// How often the leader compares.
pub const PERIOD: Duration = Duration::from_secs(1);
/// Below this the leader's disk is fast enough, whatever the ratio (sub-millisecond fsyncs
/// vary by large ratios and cost a bet nothing).
pub const FLOOR: Duration = Duration::from_millis(10);
/// The least time between two hand-offs for a slow disk.
pub const COOLDOWN: Duration = Duration::from_secs(30);

/// What the operator configured.
#[derive(Clone, Debug)]
pub(crate) struct Policy {
    /// How many times the followers' median the leader's fsync must be.
    pub ratio: f64,
    /// How long it must stay so.
    pub sustained: Duration,
}

/// What the leader remembers between looks.
#[derive(Default, Debug)]
pub(crate) struct Seen {
    slow_since: Option<Instant>,
    last_handoff: Option<Instant>,
}

/// One look's decision.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Decision {
    /// The leader's disk keeps up (or there is nobody to compare with or hand to).
    Stay,
    /// Slow, not yet for long enough (or too soon after the last hand-off).
    Watch { slow_for: Duration },
    /// Hand leadership to `to`.
    HandOff { to: u64, mine: Duration, median: Duration },
}

/// Decides from the leader's recent fsync and each other voter's that answered.
pub(crate) fn decide(
    policy: &Policy,
    mine: Duration,
    followers: &[(u64, Duration)],
    seen: &mut Seen,
    now: Instant,
) -> Decision {
    if followers.is_empty() {
        seen.slow_since = None;
        return Decision::Stay;
    }
    let mut sorted: Vec<Duration> = followers.iter().map(|(_, d)| *d).collect();
    sorted.sort();
    let median = sorted[(sorted.len() - 1) / 2];
    let slow = mine > FLOOR && mine.as_secs_f64() > policy.ratio * median.as_secs_f64();
    if !slow {
        seen.slow_since = None;
        return Decision::Stay;
    }
    let since = *seen.slow_since.get_or_insert(now);
    let slow_for = now.duration_since(since);
    let cooling = seen.last_handoff.is_some_and(|at| now.duration_since(at) < COOLDOWN);
    if slow_for < policy.sustained || cooling {
        return Decision::Watch { slow_for };
    }
    let (to, _) = followers.iter().min_by_key(|(id, d)| (*d, *id)).expect("not empty");
    Decision::HandOff { to: *to, mine, median }
}

/// Runs until the node stops; does nothing with `slow_disk_ratio` 0.
pub(crate) async fn run(app: App, stop: tokio::sync::watch::Receiver<bool>) {
    if app.config.slow_disk_ratio == 0 {
        return;
    }
    let policy = Policy {
        ratio: f64::from(app.config.slow_disk_ratio),
        sustained: Duration::from_secs(app.config.slow_disk_for_s),
    };
    let mut seen = Seen::default();
    let mut ticks = crate::jobs::Ticks::new(PERIOD, stop);
    while ticks.next().await {
        let status = app.consensus.status();
        if status.role != Role::Leader {
            seen.slow_since = None;
            continue;
        }
        let mine = app.consensus.fsync_recent();
        let mut followers = Vec::new();
        for member in status.members.iter().filter(|m| m.voter && m.id != status.node_id) {
            if let Ok(theirs) = app.consensus.peer_fsync_recent(member.id).await {
                followers.push((member.id, theirs));
            }
        }
        let now = Instant::now();
        if let Decision::HandOff { to, mine, median } = decide(&policy, mine, &followers, &mut seen, now) {
            tracing::warn!(
                to,
                mine_ms = mine.as_secs_f64() * 1e3,
                followers_median_ms = median.as_secs_f64() * 1e3,
                "this leader's disk is slow: fsync {:.1} ms against the followers' {:.1} ms for {} s; handing \
                 leadership to node {to}",
                mine.as_secs_f64() * 1e3,
                median.as_secs_f64() * 1e3,
                policy.sustained.as_secs()
            );
            seen.last_handoff = Some(now);
            seen.slow_since = None;
            metrics::counter!("paddock_leader_handoffs_total", "reason" => "slow_disk").increment(1);
            if let Err(e) = app.consensus.transfer_leader(to).await {
                tracing::warn!(to, error = %e, "the hand-off for a slow disk did not complete");
            }
        }
    }
}

/// Test only (`fsync_delay_file`): keeps the delay added to every fsync of the Raft log at the
/// milliseconds the file holds, re-read every 200 ms (0 when it is missing or unreadable).
pub(crate) async fn follow_fsync_delay_file(
    app: App,
    file: std::path::PathBuf,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    tracing::warn!(file = %file.display(), "test hook: every fsync of the Raft log is slowed by the milliseconds in this file");
    crate::jobs::every(Duration::from_millis(200), stop, move || {
        let app = app.clone();
        let file = file.clone();
        Box::pin(async move {
            let ms = std::fs::read_to_string(&file).ok().and_then(|t| t.trim().parse::<u64>().ok()).unwrap_or(0);
            app.consensus.set_injected_fsync_delay(Duration::from_millis(ms));
        })
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn policy() -> Policy {
        Policy { ratio: 5.0, sustained: Duration::from_secs(5) }
    }

    /// Looks once a second for `secs` seconds with the same figures; the last decision.
    fn look_for(secs: u64, mine: Duration, followers: &[(u64, Duration)], seen: &mut Seen, start: Instant) -> Decision {
        let mut last = Decision::Stay;
        for s in 0..=secs {
            last = decide(&policy(), mine, followers, seen, start + Duration::from_secs(s));
        }
        last
    }

    #[test]
    fn a_leader_slow_for_the_whole_period_hands_off_to_the_fastest_follower() {
        let decision = look_for(5, ms(60), &[(2, ms(3)), (3, ms(2))], &mut Seen::default(), Instant::now());
        assert_eq!(decision, Decision::HandOff { to: 3, mine: ms(60), median: ms(2) });
    }

    #[test]
    fn a_short_slow_spell_is_only_watched() {
        let mut seen = Seen::default();
        let start = Instant::now();
        assert_eq!(
            look_for(3, ms(60), &[(2, ms(3)), (3, ms(2))], &mut seen, start),
            Decision::Watch { slow_for: ms(3_000) }
        );
        // Back to normal: the count starts again.
        assert_eq!(decide(&policy(), ms(2), &[(2, ms(3)), (3, ms(2))], &mut seen, start + ms(4_000)), Decision::Stay);
        let again = decide(&policy(), ms(60), &[(2, ms(3)), (3, ms(2))], &mut seen, start + ms(5_000));
        assert_eq!(again, Decision::Watch { slow_for: Duration::ZERO });
    }

    #[test]
    fn fast_disks_never_hand_off_whatever_the_ratio() {
        // 8 ms against 0.1 ms is 80 times slower and still costs a bet nothing.
        assert_eq!(
            look_for(60, ms(8), &[(2, Duration::from_micros(100))], &mut Seen::default(), Instant::now()),
            Decision::Stay
        );
    }

    #[test]
    fn when_every_disk_is_slow_nobody_hands_off() {
        assert_eq!(
            look_for(60, ms(80), &[(2, ms(70)), (3, ms(90))], &mut Seen::default(), Instant::now()),
            Decision::Stay
        );
    }

    #[test]
    fn one_slow_follower_does_not_make_the_leader_look_fast_or_slow() {
        // The median: with follower 3 as slow as the leader, the leader is not the outlier.
        assert_eq!(
            look_for(60, ms(60), &[(2, ms(2)), (3, ms(70)), (4, ms(65))], &mut Seen::default(), Instant::now()),
            Decision::Stay
        );
    }

    #[test]
    fn hand_offs_are_spaced_by_the_cooldown() {
        let mut seen = Seen::default();
        let start = Instant::now();
        let followers = [(2, ms(3)), (3, ms(2))];
        assert!(matches!(look_for(5, ms(60), &followers, &mut seen, start), Decision::HandOff { .. }));
        seen.last_handoff = Some(start + ms(5_000));
        seen.slow_since = None;
        // Leadership came back to a slow node (say the others failed): it waits the cooldown.
        let soon = look_for(10, ms(60), &followers, &mut seen, start + ms(6_000));
        assert!(matches!(soon, Decision::Watch { .. }), "{soon:?}");
        let later = decide(&policy(), ms(60), &followers, &mut seen, start + ms(5_000) + COOLDOWN);
        assert!(matches!(later, Decision::HandOff { to: 3, .. }), "{later:?}");
    }

    #[test]
    fn with_nobody_to_compare_with_the_leader_stays() {
        assert_eq!(look_for(60, ms(500), &[], &mut Seen::default(), Instant::now()), Decision::Stay);
    }
}
