//! The nemesis: a schedule of faults, deterministic from the seed, run against the cluster
//! while the workload runs.
//!
//! Faults ([`FaultKind`]):
//! - `kill-leader`: SIGKILL the leader, restart it after `kill_down`.
//! - `kill-follower`: SIGKILL a follower, restart it after `kill_down`.
//! - `pause-leader`: SIGSTOP the leader for `pause`, then SIGCONT.
//! - `isolate-leader`: the proxy cuts every link to and from the leader for `isolate`.
//! - `split`: a majority/minority split for `split` (the minority holds the leader on a coin
//!   flip of the seed), then heal.
//! - `disk-full`: fill a follower's tmpfs data disk, hold for `disk_full`, free it, restart
//!   the node (skipped, and reported so, when the data disks could not be mounted).
//! - `replace-voter`: SIGKILL a voting follower and keep it down until the leader has replaced
//!   it by the harness's standby learner (self-healing, `--replace-voter-pool`), at most
//!   `replace_wait`; then restart it: it rejoins as a learner, the standby for the next time.
//!   The time from the kill to a full set of voters again is the fault's figure.
//! - `slow-disk-leader`: every fsync of the leader's Raft log 60 ms longer (its
//!   `--fsync-delay-file`) until it hands leadership off (`--slow-disk-ratio`), at most
//!   `slow_disk`; then its disk is fast again. The time to the hand-off is the fault's figure.
//! - `rot-follower`: SIGTERM a follower, flip one byte in each of its five newest stored log
//!   records in its Raft log file on disk (rot at rest), start it again: it must discard the
//!   damaged entries and fetch them from the leader (storage repair). The time from the damage found
//!   to repaired, from the node's log, is the fault's figure.
//!
//! The plan (fault order, quiet periods, which follower, which side) comes from the seed; the
//! leader is whoever leads when the fault starts. A quiet period precedes every fault. The
//! plan fits the run's duration; a fault that would still not end before the (grace-extended)
//! deadline at run time is not started and is reported as not run. After
//! each fault that stopped or cut a node, its recovery is measured: time from the restart (or
//! resume, or heal) to ready, and to having applied the leader's commit index.

use crate::cluster::Cluster;
use crate::disk;
use crate::proxy::Partition;
use crate::rng::Rng;
use anyhow::{bail, Result};
use serde::Serialize;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A kind of fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// SIGKILL the leader, restart it later.
    KillLeader,
    /// SIGKILL a follower, restart it later.
    KillFollower,
    /// SIGSTOP the leader, SIGCONT it later.
    PauseLeader,
    /// Cut every link of the leader, heal later.
    IsolateLeader,
    /// Majority/minority split, heal later.
    Split,
    /// Fill a follower's data disk, free it, restart the node.
    DiskFull,
    /// Make the leader's wall clock jump an hour ahead or behind, restore it later.
    ClockJumpLeader,
    /// Kill a voting follower until the leader replaces it by a standby, then restart it.
    ReplaceVoter,
    /// Slow the leader's fsyncs until it hands leadership off, then restore them.
    SlowDiskLeader,
    /// Stop a follower, damage records of its Raft log on disk, start it again.
    RotFollower,
}

impl FaultKind {
    /// Every fault, in a fixed order.
    pub const ALL: [FaultKind; 10] = [
        FaultKind::KillLeader,
        FaultKind::KillFollower,
        FaultKind::PauseLeader,
        FaultKind::IsolateLeader,
        FaultKind::Split,
        FaultKind::DiskFull,
        FaultKind::ClockJumpLeader,
        FaultKind::ReplaceVoter,
        FaultKind::SlowDiskLeader,
        FaultKind::RotFollower,
    ];

    /// The flag name.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::KillLeader => "kill-leader",
            FaultKind::KillFollower => "kill-follower",
            FaultKind::PauseLeader => "pause-leader",
            FaultKind::IsolateLeader => "isolate-leader",
            FaultKind::Split => "split",
            FaultKind::DiskFull => "disk-full",
            FaultKind::ClockJumpLeader => "clock-jump-leader",
            FaultKind::ReplaceVoter => "replace-voter",
            FaultKind::SlowDiskLeader => "slow-disk-leader",
            FaultKind::RotFollower => "rot-follower",
        }
    }

    /// Parses a comma-separated list ("all" for every fault, "none" for none).
    pub fn parse_list(text: &str) -> Result<Vec<FaultKind>> {
        let mut out = Vec::new();
        for part in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if part == "all" {
                out.extend(FaultKind::ALL);
                continue;
            }
            if part == "none" {
                continue;
            }
            match FaultKind::ALL.iter().find(|k| k.name() == part) {
                Some(k) => out.push(*k),
                None => bail!(
                    "unknown fault {part:?}; known: {}",
                    FaultKind::ALL.iter().map(|k| k.name()).collect::<Vec<_>>().join(", ")
                ),
            }
        }
        out.dedup();
        Ok(out)
    }
}

impl std::fmt::Display for FaultKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How long each fault lasts and how quiet it is between them.
#[derive(Clone, Debug)]
pub struct Timings {
    /// Before the first fault.
    pub warmup: Duration,
    /// Between faults (±25 % from the seed).
    pub quiet: Duration,
    /// A killed node stays down this long.
    pub kill_down: Duration,
    /// A paused leader stays stopped this long.
    pub pause: Duration,
    /// An isolated leader stays cut off this long.
    pub isolate: Duration,
    /// A split lasts this long.
    pub split: Duration,
    /// A full disk stays full this long.
    pub disk_full: Duration,
    /// A jumped clock stays wrong this long.
    pub clock_jump: Duration,
    /// The nodes' `--replace-voter-after-s` when `replace-voter` runs.
    pub replace_after: Duration,
    /// Longest wait for the leader to replace a killed voter.
    pub replace_wait: Duration,
    /// The nodes' `--slow-disk-for-s` when `slow-disk-leader` runs.
    pub slow_disk_for: Duration,
    /// Longest a leader's disk stays slow waiting for it to hand off.
    pub slow_disk: Duration,
    /// Bound on a node's recovery (ready and caught up).
    pub recovery_max: Duration,
}

impl Default for Timings {
    fn default() -> Timings {
        Timings {
            warmup: Duration::from_secs(3),
            quiet: Duration::from_secs(4),
            kill_down: Duration::from_secs(3),
            pause: Duration::from_secs(3),
            isolate: Duration::from_secs(5),
            split: Duration::from_secs(5),
            disk_full: Duration::from_secs(4),
            clock_jump: Duration::from_secs(4),
            replace_after: Duration::from_secs(3),
            replace_wait: Duration::from_secs(20),
            slow_disk_for: Duration::from_secs(3),
            slow_disk: Duration::from_secs(10),
            recovery_max: Duration::from_secs(30),
        }
    }
}

impl Timings {
    fn hold(&self, kind: FaultKind) -> Duration {
        match kind {
            FaultKind::KillLeader | FaultKind::KillFollower | FaultKind::RotFollower => self.kill_down,
            FaultKind::PauseLeader => self.pause,
            FaultKind::IsolateLeader => self.isolate,
            FaultKind::Split => self.split,
            FaultKind::DiskFull => self.disk_full,
            FaultKind::ClockJumpLeader => self.clock_jump,
            // The limit, an election if need be, a look of the leader, and the change.
            FaultKind::ReplaceVoter => self.replace_after + Duration::from_secs(2),
            FaultKind::SlowDiskLeader => self.slow_disk,
        }
    }
}

/// One planned fault.
#[derive(Clone, Debug, Serialize)]
pub struct Step {
    /// The fault.
    pub kind: FaultKind,
    /// Quiet time before it.
    pub quiet_before: Duration,
    /// How long the fault holds.
    pub hold: Duration,
    /// Picks the follower (index into the followers, modulo their count).
    pub pick: u64,
    /// For a split: whether the minority holds the leader.
    pub leader_in_minority: bool,
}

/// Log records `rot-follower` flips: the five newest (every copy of each in the file).
const ROT_RECORDS: usize = 5;

/// The `took_ms` of the "storage repair finished" line in a node's log, if any.
fn repair_took_ms(log: &str) -> Option<u64> {
    let line = log.lines().find(|l| l.contains("storage repair finished"))?;
    line.split("took_ms=").nth(1)?.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

/// Plans faults cycling through `kinds` (shuffled per cycle by the seed) until the next one
/// would not fit in `duration` (allowing a few seconds for recovery after each).
pub fn plan(seed: u64, kinds: &[FaultKind], duration: Duration, timings: &Timings) -> Vec<Step> {
    let mut rng = Rng::fork(seed, 3);
    let mut steps = Vec::new();
    if kinds.is_empty() {
        return steps;
    }
    let recovery_allowance = Duration::from_secs(2);
    let mut used = timings.warmup.saturating_sub(timings.quiet);
    for _cycle in 0..1_000 {
        let mut order = kinds.to_vec();
        rng.shuffle(&mut order);
        for kind in order {
            let quarter = timings.quiet.as_millis() as u64 / 4;
            let quiet =
                Duration::from_millis((timings.quiet.as_millis() as u64 - quarter) + rng.below(2 * quarter + 1));
            let hold = timings.hold(kind);
            if used + quiet + hold + recovery_allowance > duration {
                return steps;
            }
            used += quiet + hold + recovery_allowance;
            steps.push(Step {
                kind,
                quiet_before: if steps.is_empty() { timings.warmup } else { quiet },
                hold,
                pick: rng.next_u64(),
                leader_in_minority: rng.chance(50),
            });
        }
    }
    steps
}

/// A node's recovery after a fault.
#[derive(Clone, Debug, Serialize)]
pub struct Recovery {
    /// Node.
    pub node: u64,
    /// "restart", "resume" or "heal".
    pub after: String,
    /// From restart/resume/heal to `/health/ready` answering 200, seconds.
    pub ready_s: Option<f64>,
    /// From restart/resume/heal to having applied the leader's commit index, seconds.
    pub caught_up_s: Option<f64>,
    /// Why a figure is missing.
    pub error: Option<String>,
}

/// What happened to one fault.
#[derive(Clone, Debug, Serialize)]
pub struct FaultRecord {
    /// The fault.
    pub kind: FaultKind,
    /// Nodes it hit.
    pub targets: Vec<u64>,
    /// Seconds since the run started.
    pub start_s: f64,
    /// When the fault was removed (restart, resume, heal), seconds since the run started.
    pub end_s: f64,
    /// Recovery of the nodes it hit.
    pub recovery: Vec<Recovery>,
    /// Why it was not run.
    pub skipped: Option<String>,
    /// Anything worth knowing (e.g. the node crashed on a full disk).
    pub notes: Vec<String>,
}

/// What the nemesis acts on.
pub struct Env<'a> {
    /// The processes.
    pub cluster: &'a mut Cluster,
    /// The proxy's links.
    pub partition: &'a Partition,
    /// Data directories on a tmpfs, or why there are none.
    pub disks: Result<Vec<PathBuf>, String>,
    /// The run's clock.
    pub t0: Instant,
    /// No fault starts that would not end before this.
    pub deadline: Instant,
    /// Fault lengths.
    pub timings: Timings,
}

impl Env<'_> {
    fn now_s(&self) -> f64 {
        self.t0.elapsed().as_secs_f64()
    }

    async fn followers(&mut self) -> Result<(u64, Vec<u64>)> {
        let leader = self.cluster.leader(Duration::from_secs(15)).await?;
        let followers = self.cluster.ids().into_iter().filter(|id| *id != leader).collect();
        Ok((leader, followers))
    }

    async fn recover(&mut self, node: u64, after: &str) -> Recovery {
        let t = Instant::now();
        let within = self.timings.recovery_max;
        let ready = self.cluster.wait_ready(&[node], within).await;
        let ready_s = ready.as_ref().ok().map(|_| t.elapsed().as_secs_f64());
        let caught = match &ready {
            Ok(_) => self.cluster.wait_caught_up(node, within.saturating_sub(t.elapsed())).await,
            Err(e) => Err(anyhow::anyhow!("{e}")),
        };
        let caught_up_s = caught.as_ref().ok().map(|_| t.elapsed().as_secs_f64());
        let error = match (&ready, &caught) {
            (Err(e), _) | (_, Err(e)) => Some(e.to_string()),
            _ => None,
        };
        Recovery { node, after: after.into(), ready_s, caught_up_s, error }
    }
}

/// Runs the plan; returns one record per step (run or not).
pub async fn run(plan: &[Step], env: &mut Env<'_>) -> Vec<FaultRecord> {
    let mut records = Vec::new();
    for step in plan {
        let quiet_end = Instant::now() + step.quiet_before;
        if quiet_end + step.hold > env.deadline {
            records.push(not_run(step, env.now_s(), "the run ended before its turn".into()));
            continue;
        }
        tokio::time::sleep_until(quiet_end.into()).await;
        let record = match run_one(step, env).await {
            Ok(r) => r,
            Err(e) => not_run(step, env.now_s(), format!("could not run: {e:#}")),
        };
        tracing::info!(fault = %step.kind, targets = ?record.targets, skipped = ?record.skipped, "fault done");
        records.push(record);
    }
    records
}

fn not_run(step: &Step, at: f64, why: String) -> FaultRecord {
    FaultRecord {
        kind: step.kind,
        targets: Vec::new(),
        start_s: at,
        end_s: at,
        recovery: Vec::new(),
        skipped: Some(why),
        notes: Vec::new(),
    }
}

async fn run_one(step: &Step, env: &mut Env<'_>) -> Result<FaultRecord> {
    let (leader, followers) = env.followers().await?;
    let follower = followers[(step.pick % followers.len() as u64) as usize];
    let mut record = FaultRecord {
        kind: step.kind,
        targets: Vec::new(),
        start_s: 0.0,
        end_s: 0.0,
        recovery: Vec::new(),
        skipped: None,
        notes: Vec::new(),
    };
    match step.kind {
        FaultKind::KillLeader | FaultKind::KillFollower => {
            let node = if step.kind == FaultKind::KillLeader { leader } else { follower };
            record.targets = vec![node];
            record.start_s = env.now_s();
            env.cluster.kill(node)?;
            tokio::time::sleep(step.hold).await;
            env.cluster.restart(node)?;
            record.end_s = env.now_s();
            record.recovery.push(env.recover(node, "restart").await);
        }
        FaultKind::ReplaceVoter => {
            let voters: Vec<u64> = match env.cluster.view(leader).await {
                Some(view) => view.members.iter().filter(|m| m.voter).map(|m| m.node_id).collect(),
                None => bail!("the leader (node {leader}) does not answer"),
            };
            let candidates: Vec<u64> = followers.iter().copied().filter(|f| voters.contains(f)).collect();
            if candidates.is_empty() {
                bail!("no voting follower to kill");
            }
            let node = candidates[(step.pick % candidates.len() as u64) as usize];
            record.targets = vec![node];
            record.start_s = env.now_s();
            let killed = Instant::now();
            env.cluster.kill(node)?;
            let deadline = killed + env.timings.replace_wait;
            let replaced = loop {
                if let Ok(now_leader) = env.cluster.leader(Duration::from_secs(2)).await {
                    if let Some(view) = env.cluster.view(now_leader).await {
                        let now_voters: Vec<u64> = view.members.iter().filter(|m| m.voter).map(|m| m.node_id).collect();
                        if !now_voters.contains(&node) && now_voters.len() == voters.len() {
                            let by: Vec<u64> = now_voters.iter().copied().filter(|v| !voters.contains(v)).collect();
                            break Some((killed.elapsed(), by));
                        }
                    }
                }
                if Instant::now() >= deadline {
                    break None;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            };
            record.notes.push(match replaced {
                Some((after, by)) => format!(
                    "node {node} replaced by standby {} {:.2} s after it was killed (limit {} s): full redundancy \
                     again",
                    by.iter().map(u64::to_string).collect::<Vec<_>>().join(", "),
                    after.as_secs_f64(),
                    env.timings.replace_after.as_secs()
                ),
                None => format!(
                    "node {node} not replaced within {} s of its death (no standby caught up?)",
                    env.timings.replace_wait.as_secs()
                ),
            });
            env.cluster.restart(node)?;
            record.end_s = env.now_s();
            record.recovery.push(env.recover(node, "restart").await);
        }
        FaultKind::RotFollower => {
            record.targets = vec![follower];
            record.start_s = env.now_s();
            if !env.cluster.terminate(follower, Duration::from_secs(10)).await? {
                record.notes.push(format!("node {follower} did not exit on SIGTERM and was killed"));
            }
            let log_file = env.cluster.spec(follower).data_dir.join("raft-log.redb");
            let flipped = disk::rot_log_records(&log_file, step.pick, ROT_RECORDS)?;
            let log_before = env.cluster.log_text(follower).len();
            tokio::time::sleep(step.hold).await;
            env.cluster.restart(follower)?;
            record.end_s = env.now_s();
            record.recovery.push(env.recover(follower, "restart").await);
            // Caught up with the leader's commit is not yet repaired: the node looks every
            // 100 ms whether its log is durable up to its marker.
            let waited = Instant::now();
            let since = loop {
                let since = env.cluster.log_text(follower).get(log_before..).unwrap_or_default().to_string();
                if repair_took_ms(&since).is_some()
                    || !since.contains("not voting until")
                    || waited.elapsed() >= env.timings.recovery_max
                {
                    break since;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            };
            record.notes.push(match repair_took_ms(&since) {
                Some(ms) => format!(
                    "node {follower}: {flipped} stored log records flipped on disk; repaired from the leader \
                     {:.2} s after the damage was found",
                    ms as f64 / 1e3
                ),
                None if since.contains("not voting until") => format!(
                    "node {follower}: {flipped} stored log records flipped; repair not finished within {} s",
                    env.timings.recovery_max.as_secs()
                ),
                None if since.contains("storage repair:") => format!(
                    "node {follower}: {flipped} stored log records flipped, all under its snapshot: the log purged up \
                     to it, nothing to fetch"
                ),
                None => format!(
                    "node {follower}: {flipped} stored log records flipped; no damage found at the start (only \
                     stale copies were hit)"
                ),
            });
        }
        FaultKind::SlowDiskLeader => {
            const DELAY_MS: u64 = 60;
            record.targets = vec![leader];
            record.start_s = env.now_s();
            let slowed = Instant::now();
            env.cluster.set_fsync_delay(leader, DELAY_MS)?;
            let deadline = slowed + env.timings.slow_disk;
            let handed = loop {
                if let Some(now_leader) = env.cluster.view(leader).await.and_then(|v| v.leader_id) {
                    if now_leader != leader {
                        break Some((now_leader, slowed.elapsed()));
                    }
                }
                if Instant::now() >= deadline {
                    break None;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            };
            env.cluster.set_fsync_delay(leader, 0)?;
            record.end_s = env.now_s();
            record.notes.push(match handed {
                Some((to, after)) => format!(
                    "node {leader}'s fsyncs {DELAY_MS} ms slower: it handed leadership to node {to} {:.2} s later \
                     (limit {} s)",
                    after.as_secs_f64(),
                    env.timings.slow_disk_for.as_secs()
                ),
                None => format!(
                    "node {leader}'s fsyncs {DELAY_MS} ms slower: it still led {} s later",
                    env.timings.slow_disk.as_secs()
                ),
            });
            record.recovery.push(env.recover(leader, "disk restored").await);
        }
        FaultKind::ClockJumpLeader => {
            // Ahead or behind, by the seed's coin.
            let jump: i64 = if step.leader_in_minority { -3_600_000 } else { 3_600_000 };
            record.targets = vec![leader];
            record.notes.push(format!("node {leader}'s wall clock jumps {jump:+} ms"));
            record.start_s = env.now_s();
            env.cluster.set_clock_offset(leader, jump)?;
            tokio::time::sleep(step.hold).await;
            env.cluster.set_clock_offset(leader, 0)?;
            record.end_s = env.now_s();
            record.recovery.push(env.recover(leader, "clock restored").await);
        }
        FaultKind::PauseLeader => {
            record.targets = vec![leader];
            record.start_s = env.now_s();
            env.cluster.pause(leader)?;
            tokio::time::sleep(step.hold).await;
            env.cluster.resume(leader)?;
            record.end_s = env.now_s();
            record.recovery.push(env.recover(leader, "resume").await);
        }
        FaultKind::IsolateLeader => {
            record.targets = vec![leader];
            record.start_s = env.now_s();
            env.partition.isolate(leader);
            tokio::time::sleep(step.hold).await;
            env.partition.heal();
            record.end_s = env.now_s();
            record.recovery.push(env.recover(leader, "heal").await);
        }
        FaultKind::Split => {
            let n = env.cluster.ids().len();
            let minority_size = (n - 1) / 2;
            let mut rotated = followers.clone();
            rotated.rotate_left((step.pick % followers.len() as u64) as usize);
            let minority: Vec<u64> = if step.leader_in_minority {
                std::iter::once(leader).chain(rotated.iter().copied().take(minority_size - 1)).collect()
            } else {
                rotated.iter().copied().take(minority_size).collect()
            };
            let majority: Vec<u64> = env.cluster.ids().into_iter().filter(|id| !minority.contains(id)).collect();
            record.targets = minority.clone();
            record.notes.push(format!("majority {majority:?}, minority {minority:?} (leader was {leader})"));
            record.start_s = env.now_s();
            env.partition.split(&majority, &minority);
            tokio::time::sleep(step.hold).await;
            env.partition.heal();
            record.end_s = env.now_s();
            for node in minority {
                let r = env.recover(node, "heal").await;
                record.recovery.push(r);
            }
        }
        FaultKind::DiskFull => {
            let dirs = match &env.disks {
                Ok(dirs) => dirs.clone(),
                Err(why) => {
                    record.skipped = Some(format!("skipped: {why}"));
                    record.start_s = env.now_s();
                    record.end_s = record.start_s;
                    return Ok(record);
                }
            };
            let dir = env.cluster.spec(follower).data_dir.clone();
            if !dirs.contains(&dir) {
                bail!("node {follower}'s data directory is not on a tmpfs");
            }
            record.targets = vec![follower];
            let log_len = std::fs::metadata(&env.cluster.spec(follower).log_path).map_or(0, |m| m.len() as usize);
            record.start_s = env.now_s();
            let fill_dir = dir.clone();
            let written = tokio::task::spawn_blocking(move || disk::fill(&fill_dir, 4 << 30))
                .await
                .map_err(anyhow::Error::msg)?;
            match written {
                Ok(n) => record.notes.push(format!("filled node {follower}'s disk with {} MiB", n >> 20)),
                Err(e) => record.notes.push(format!("filling node {follower}'s disk failed: {e:#}")),
            }
            tokio::time::sleep(step.hold).await;
            let alive = env.cluster.is_running(follower);
            let ready = alive && env.cluster.is_ready(follower).await;
            record.notes.push(match (alive, ready) {
                (true, true) => format!("node {follower} kept running on a full disk and still answered ready"),
                (true, false) => format!("node {follower} kept running on a full disk, not ready"),
                _ => format!("node {follower} exited on a full disk"),
            });
            let log = std::fs::read_to_string(&env.cluster.spec(follower).log_path).unwrap_or_default();
            let enospc = log.get(log_len..).unwrap_or("").matches("No space left on device").count();
            record.notes.push(format!("node {follower} logged {enospc} ENOSPC error line(s) while full"));
            disk::free(&dir)?;
            if alive {
                let clean = env.cluster.terminate(follower, Duration::from_secs(10)).await?;
                if !clean {
                    record.notes.push(format!("node {follower} ignored SIGTERM for 10 s and was killed"));
                }
            }
            env.cluster.restart(follower)?;
            record.end_s = env.now_s();
            record.recovery.push(env.recover(follower, "restart").await);
        }
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_depends_only_on_the_seed_and_fits_the_duration() {
        let t = Timings::default();
        let a = plan(42, &FaultKind::ALL, Duration::from_secs(120), &t);
        let b = plan(42, &FaultKind::ALL, Duration::from_secs(120), &t);
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
        assert!(!a.is_empty());
        let total: Duration = a.iter().map(|s| s.quiet_before + s.hold).sum();
        assert!(total <= Duration::from_secs(120));
        let short = plan(42, &[FaultKind::KillLeader], Duration::from_secs(1), &t);
        assert!(short.is_empty());
    }

    #[test]
    fn fault_lists_parse_and_unknown_names_are_refused() {
        assert_eq!(FaultKind::parse_list("kill-leader, split").unwrap(), vec![FaultKind::KillLeader, FaultKind::Split]);
        assert_eq!(FaultKind::parse_list("all").unwrap(), FaultKind::ALL.to_vec());
        assert!(FaultKind::parse_list("kill-everything").is_err());
        assert!(FaultKind::parse_list("none").unwrap().is_empty());
    }
}
