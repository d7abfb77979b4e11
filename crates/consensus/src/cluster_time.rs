//! Cluster time, in the manner of TigerBeetle's: the leader stamps every command with its own
//! wall clock, so a leader whose clock is far ahead or behind would move the book's clock —
//! expiring idempotency keys, ending exclusions, passing every `closes_at`.
//!
//! Every node samples the clock of every other voter a few times a second
//! (`ForwardOp::ClockSample`), and estimates each offset from the midpoint of the round trip,
//! with half the round trip as its error. A node *agrees* with a peer whose offset is within
//! `clock_offset_max_ms` plus that error. The leader stamps commands only while it agrees with a
//! majority of the voters (itself included) on fresh samples; otherwise it refuses writes
//! (`WriteError::ClockUnsynchronized`, HTTP 503 `clock_unsynchronized`), says why in
//! `paddock_clock_synchronized` and a log line, and hands leadership to the follower that
//! agrees with the most other voters — and it refuses to hand leadership *to* a node whose clock
//! it disagrees with.
//!
//! What this cannot see: a majority of clocks wrong by the same amount (then the majority's
//! time is the cluster's time, as in any quorum clock); an offset smaller than the bound plus
//! half a round trip. The ledger's maximum clock step per entry is the second line of defence.

use crate::transport::{call, Rpc, Transport};
use crate::{Clock, ForwardOp, ForwardReply};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// How often every node samples its peers' clocks.
pub(crate) const SAMPLE_PERIOD: Duration = Duration::from_millis(250);
/// How long one sample may take; a slower answer is no sample (its error would be too large).
const SAMPLE_TIMEOUT: Duration = Duration::from_millis(500);
/// A peer's sample older than this no longer counts.
const SAMPLE_FRESH_FOR: Duration = Duration::from_millis(1_500);
/// The least time between two leadership hand-overs for a clock fault.
const HANDOVER_EVERY: Duration = Duration::from_secs(2);

/// One clock sample of a peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Sample {
    /// The peer's clock minus ours, ms (positive: the peer is ahead).
    pub offset_ms: i64,
    /// Half the round trip: the offset is known to within this, ms.
    pub error_ms: i64,
}

/// What this node knows of the voters' clocks.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClockView {
    /// Whether this node agrees with a majority of the voters on fresh samples.
    pub synchronized: bool,
    /// Each other voter's latest fresh sample.
    pub offsets: BTreeMap<u64, Sample>,
}

/// A voter's verdict from the samples.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Verdict {
    pub(crate) synchronized: bool,
    /// The follower that agrees with the most other voters, if it agrees with a majority.
    pub(crate) handover_to: Option<u64>,
}

/// Judges the samples of a voter that has `others` as fellow voters (`samples` holds those
/// that answered recently) with the offset bound `max_ms`.
pub(crate) fn judge(others: &[u64], samples: &BTreeMap<u64, Sample>, max_ms: u64) -> Verdict {
    let voters = others.len() + 1;
    let majority = voters / 2 + 1;
    let max = i64::try_from(max_ms).unwrap_or(i64::MAX);
    let agree = |s: &Sample| s.offset_ms.abs() <= max.saturating_add(s.error_ms);
    let agreeing = 1 + others.iter().filter(|id| samples.get(id).is_some_and(agree)).count();
    // From this node's samples, follower j's clock relative to follower k's is
    // offset_j - offset_k, known to within both errors; j also counts itself.
    let handover_to = others
        .iter()
        .filter_map(|j| samples.get(j).map(|sj| (*j, sj)))
        .map(|(j, sj)| {
            let with_others = others
                .iter()
                .filter(|k| **k != j)
                .filter_map(|k| samples.get(k))
                .filter(|sk| (sj.offset_ms - sk.offset_ms).abs() <= max.saturating_add(sj.error_ms + sk.error_ms))
                .count();
            // Agreeing with this node too counts when this node's own clock agrees with j's.
            let with_me = usize::from(agree(sj));
            (j, 1 + with_others + with_me, sj.error_ms)
        })
        .filter(|(_, count, _)| *count >= majority)
        .max_by(|a, b| a.1.cmp(&b.1).then(b.2.cmp(&a.2)).then(b.0.cmp(&a.0)))
        .map(|(j, _, _)| j);
    Verdict { synchronized: agreeing >= majority, handover_to }
}

/// The samples and the verdict, shared by the sampler and the write path.
pub(crate) struct ClusterTime {
    max_ms: u64,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Latest sample of each peer, with this node's monotonic and wall clocks when it was taken.
    samples: BTreeMap<u64, (Sample, Instant, i128)>,
    /// The fresh samples as they stand now: each offset corrected by how far this node's own
    /// wall clock has moved against its monotonic clock since the sample was taken (a sample
    /// from before this node's clock drifted or jumped would otherwise still look agreeing).
    adjusted: BTreeMap<u64, Sample>,
    /// The fellow voters at the latest round.
    others: Vec<u64>,
    /// Whether a round has completed since start (or since this node became a voter).
    judged: bool,
    verdict: Option<Verdict>,
    last_handover: Option<Instant>,
    /// This node's wall clock and monotonic clock read together at the end of the latest
    /// round that agreed: a wall clock that has since moved away from the monotonic one has
    /// jumped, and must not stamp until a new round agrees with it.
    anchor: Option<(i128, Instant)>,
    /// Whether the last verdict was logged as unsynchronized (log on changes only).
    logged_unsynchronized: bool,
}

impl ClusterTime {
    pub(crate) fn new(max_ms: u64) -> ClusterTime {
        ClusterTime { max_ms, state: Mutex::default() }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Samples every other voter once, concurrently, and judges. Returns the verdict.
    pub(crate) async fn round(&self, transport: &dyn Transport, clock: &Clock, others: Vec<(u64, String)>) -> Verdict {
        let asks = others.iter().map(|(id, addr)| async move {
            let (t0, i0) = (clock(), Instant::now());
            let reply = call(transport, addr, Rpc::Forward, &ForwardOp::ClockSample, SAMPLE_TIMEOUT).await;
            let (t1, rtt) = (clock(), i0.elapsed());
            // This node's clocks at the answer: the sample's offset holds for them, and any
            // movement of this node's own wall clock after that is corrected for when judging.
            let at = (Instant::now(), i128::from(t1.0));
            match reply {
                Ok(ForwardReply::Clock { now }) => {
                    let midpoint = i128::from(t0.0) + (i128::from(t1.0) - i128::from(t0.0)) / 2;
                    let offset = i128::from(now.0) - midpoint;
                    let offset_ms = i64::try_from(offset).unwrap_or(if offset < 0 { i64::MIN } else { i64::MAX });
                    let error_ms = i64::try_from(rtt.as_millis() / 2 + 1).unwrap_or(i64::MAX);
                    Some((*id, Sample { offset_ms, error_ms }, at))
                }
                _ => None,
            }
        });
        let answers = futures::future::join_all(asks).await;
        let (now, wall) = (Instant::now(), i128::from(clock().0));
        let mut state = self.state();
        for (id, sample, (mono_at, wall_at)) in answers.into_iter().flatten() {
            state.samples.insert(id, (sample, mono_at, wall_at));
        }
        let ids: Vec<u64> = others.iter().map(|(id, _)| *id).collect();
        state.samples.retain(|id, (_, at, _)| ids.contains(id) && now.duration_since(*at) <= SAMPLE_FRESH_FOR);
        let fresh: BTreeMap<u64, Sample> = state
            .samples
            .iter()
            .map(|(id, (s, at, wall_at))| {
                let moved = (wall - wall_at) - i128::try_from(now.duration_since(*at).as_millis()).unwrap_or(0);
                let offset = i128::from(s.offset_ms) - moved;
                let offset_ms = i64::try_from(offset).unwrap_or(if offset < 0 { i64::MIN } else { i64::MAX });
                (*id, Sample { offset_ms, error_ms: s.error_ms })
            })
            .collect();
        state.adjusted = fresh.clone();
        let verdict = judge(&ids, &fresh, self.max_ms);
        state.others = ids;
        state.judged = true;
        state.anchor = verdict.synchronized.then_some((wall, now));
        state.verdict = Some(verdict.clone());
        metrics::gauge!("paddock_clock_synchronized").set(if verdict.synchronized { 1.0 } else { 0.0 });
        for (id, sample) in &fresh {
            metrics::gauge!("paddock_clock_offset_ms", "peer" => id.to_string()).set(sample.offset_ms as f64);
        }
        verdict
    }

    /// Whether this node, as leader, may stamp a command with `clock` now; if not, why.
    pub(crate) fn may_stamp(&self, clock: &Clock) -> Result<(), String> {
        if crate::faults::no_clock_gate() {
            return Ok(());
        }
        let state = self.state();
        match &state.verdict {
            Some(v) if v.synchronized => {
                // Between rounds, a jump of this node's own wall clock is seen against the
                // monotonic clock at once, before any peer could tell.
                if let Some((wall, mono)) = state.anchor {
                    let predicted = wall + i128::try_from(mono.elapsed().as_millis()).unwrap_or(i128::MAX / 2);
                    let drift = i128::from(clock().0) - predicted;
                    if drift.unsigned_abs() > u128::from(self.max_ms) {
                        return Err(format!(
                            "this node's wall clock jumped {drift:+} ms since it last agreed with the voters (bound {} \
                             ms); it stamps no command until they agree again",
                            self.max_ms
                        ));
                    }
                }
                Ok(())
            }
            Some(_) => Err(format!(
                "this leader's clock disagrees with a majority of the voters by more than {} ms ({}); it does not \
                 stamp commands and is handing leadership over",
                self.max_ms,
                describe(&state.adjusted)
            )),
            None if !state.judged => Err("this leader has not yet compared its clock with the voters'".into()),
            None => Err("no clock verdict".into()),
        }
    }

    /// Whether `peer`'s clock agrees with this node's (for leadership hand-over); `None` if
    /// there is no fresh sample of it.
    pub(crate) fn agrees_with(&self, peer: u64) -> Option<Result<(), String>> {
        let state = self.state();
        let sample = state.adjusted.get(&peer)?;
        let max = i64::try_from(self.max_ms).unwrap_or(i64::MAX);
        Some(if sample.offset_ms.abs() <= max.saturating_add(sample.error_ms) {
            Ok(())
        } else {
            Err(format!(
                "node {peer}'s clock is {} ms {} this leader's (bound {} ms): it could not stamp commands",
                sample.offset_ms.abs(),
                if sample.offset_ms > 0 { "ahead of" } else { "behind" },
                self.max_ms
            ))
        })
    }

    /// After a round as leader: logs a change of verdict, and says whom to hand leadership to
    /// if this leader's clock is out (at most once per [`HANDOVER_EVERY`]).
    pub(crate) fn leader_action(&self, verdict: &Verdict) -> Option<u64> {
        let mut state = self.state();
        if verdict.synchronized {
            if state.logged_unsynchronized {
                tracing::info!("this leader's clock agrees with a majority of the voters again");
                state.logged_unsynchronized = false;
            }
            return None;
        }
        if !state.logged_unsynchronized {
            tracing::warn!(
                bound_ms = self.max_ms,
                offsets = %describe(&state.adjusted),
                "this leader's clock disagrees with a majority of the voters: refusing to stamp commands, handing leadership over"
            );
            state.logged_unsynchronized = true;
        }
        let now = Instant::now();
        if state.last_handover.is_some_and(|at| now.duration_since(at) < HANDOVER_EVERY) {
            return None;
        }
        let to = verdict.handover_to?;
        state.last_handover = Some(now);
        Some(to)
    }

    /// The view for status pages.
    pub(crate) fn view(&self) -> ClockView {
        let state = self.state();
        ClockView {
            synchronized: state.verdict.as_ref().is_some_and(|v| v.synchronized),
            offsets: state.adjusted.clone(),
        }
    }
}

/// "node 2 +3600012±1 ms, node 3 +3600010±1 ms" (offsets relative to this node).
fn describe(samples: &BTreeMap<u64, Sample>) -> String {
    if samples.is_empty() {
        return "no peer answered".into();
    }
    samples
        .iter()
        .map(|(id, s)| format!("node {id} {:+}±{} ms", s.offset_ms, s.error_ms))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(list: &[(u64, i64)]) -> BTreeMap<u64, Sample> {
        list.iter().map(|(id, off)| (*id, Sample { offset_ms: *off, error_ms: 1 })).collect()
    }

    #[test]
    fn a_leader_agreeing_with_one_of_two_followers_has_a_majority() {
        let v = judge(&[2, 3], &samples(&[(2, 10), (3, 3_600_000)]), 500);
        assert!(v.synchronized);
    }

    #[test]
    fn a_leader_an_hour_ahead_of_both_followers_is_out_and_hands_over_to_one_of_them() {
        let v = judge(&[2, 3], &samples(&[(2, -3_600_000), (3, -3_600_020)]), 500);
        assert!(!v.synchronized);
        assert!(matches!(v.handover_to, Some(2 | 3)), "{v:?}");
    }

    #[test]
    fn a_follower_that_disagrees_with_everyone_is_never_the_hand_over_target() {
        // This leader is out; follower 2 agrees with 3 and 4, follower 5 with nobody.
        let v = judge(&[2, 3, 4, 5], &samples(&[(2, -60_000), (3, -60_100), (4, -59_900), (5, 120_000)]), 500);
        assert!(!v.synchronized);
        assert!(matches!(v.handover_to, Some(2..=4)), "{v:?}");
    }

    #[test]
    fn with_no_answers_a_three_node_leader_is_not_synchronized_and_a_single_node_is() {
        assert!(!judge(&[2, 3], &BTreeMap::new(), 500).synchronized);
        assert!(judge(&[], &BTreeMap::new(), 500).synchronized);
    }

    #[test]
    fn the_round_trip_error_widens_the_bound() {
        let s = BTreeMap::from([(2, Sample { offset_ms: 700, error_ms: 250 })]);
        assert!(judge(&[2], &s, 500).synchronized, "700 ms is within 500 + 250");
        let s = BTreeMap::from([(2, Sample { offset_ms: 800, error_ms: 250 })]);
        assert!(!judge(&[2], &s, 500).synchronized);
    }

    #[test]
    fn no_majority_anywhere_means_nobody_to_hand_over_to() {
        let v = judge(&[2, 3], &samples(&[(2, -3_600_000), (3, 3_600_000)]), 500);
        assert!(!v.synchronized);
        assert_eq!(v.handover_to, None);
    }

    #[test]
    fn a_leader_whose_own_clock_jumps_stops_stamping_before_any_peer_could_tell() {
        let time = ClusterTime::new(500);
        let offset = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(0));
        let o = offset.clone();
        let clock: Clock = std::sync::Arc::new(move || {
            paddock_ledger::TimestampMs(
                1_800_000_000_000u64.saturating_add_signed(o.load(std::sync::atomic::Ordering::SeqCst)),
            )
        });
        {
            let mut state = time.state();
            state.judged = true;
            state.verdict = Some(Verdict { synchronized: true, handover_to: None });
            state.anchor = Some((i128::from(clock().0), Instant::now()));
        }
        assert_eq!(time.may_stamp(&clock), Ok(()));
        offset.store(3_600_000, std::sync::atomic::Ordering::SeqCst);
        let refused = time.may_stamp(&clock).expect_err("a jump of an hour is seen at once");
        assert!(refused.contains("jumped +3600000"), "{refused}");
        offset.store(-3_600_000, std::sync::atomic::Ordering::SeqCst);
        assert!(time.may_stamp(&clock).is_err(), "backwards too");
    }
}
