//! A short chaos run for CI: a 3-node cluster of the real binary behind the fault-injecting
//! proxy, with a standby learner, a bank workload for about 76 s while the leader is killed,
//! paused and isolated, its wall clock jumps an hour, a follower is killed, the cluster is split
//! a voter is killed until the leader replaces it by the standby, the leader's disk is
//! slowed until it hands leadership off, and records of a stopped follower's log are damaged on
//! disk; every invariant check must pass, no acknowledged bet may be lost, the dead voter must
//! have been replaced, the slow leader must have handed off and the damaged follower must have
//! repaired its log from the leader. The long run is
//! `paddock drill chaos --nodes 5 --duration-s 600` (docs/chaos.md).

use paddock_chaos::{ChaosConfig, FaultKind, Timings};
use std::time::Duration;

#[test]
fn a_short_chaos_run_keeps_every_invariant() {
    let config = ChaosConfig {
        binary: env!("CARGO_BIN_EXE_paddock").into(),
        nodes: 3,
        duration: Duration::from_secs(76),
        seed: 20_261_127,
        faults: vec![
            FaultKind::KillLeader,
            FaultKind::PauseLeader,
            FaultKind::IsolateLeader,
            FaultKind::KillFollower,
            FaultKind::Split,
            FaultKind::ClockJumpLeader,
            FaultKind::ReplaceVoter,
            FaultKind::SlowDiskLeader,
            FaultKind::RotFollower,
        ],
        timings: Timings {
            warmup: Duration::from_secs(2),
            quiet: Duration::from_millis(2_500),
            kill_down: Duration::from_secs(2),
            pause: Duration::from_secs(3),
            isolate: Duration::from_secs(3),
            split: Duration::from_secs(3),
            clock_jump: Duration::from_secs(3),
            ..Timings::default()
        },
        ..ChaosConfig::default()
    };
    let report = paddock_chaos::run(&config).expect("the chaos harness ran");
    let text = report.text();
    println!("{text}");
    for f in &report.faults {
        assert!(f.skipped.is_none(), "fault {} did not run: {:?}\n{text}", f.name, f.skipped);
    }
    for kind in &config.faults {
        assert!(report.faults.iter().any(|f| f.name == kind.name()), "fault {kind} was not planned\n{text}");
    }
    let replaced = report.faults.iter().filter(|f| f.name == "replace-voter").flat_map(|f| &f.notes);
    assert!(
        replaced.clone().any(|n| n.contains("full redundancy again")),
        "the killed voter was not replaced by the standby: {:?}\n{text}",
        replaced.collect::<Vec<_>>()
    );
    let slow = report.faults.iter().filter(|f| f.name == "slow-disk-leader").flat_map(|f| &f.notes);
    assert!(
        slow.clone().any(|n| n.contains("handed leadership")),
        "the leader on a slow disk did not hand off: {:?}\n{text}",
        slow.collect::<Vec<_>>()
    );
    let rot = report.faults.iter().filter(|f| f.name == "rot-follower").flat_map(|f| &f.notes);
    assert!(
        rot.clone().any(|n| n.contains("repaired from the leader")),
        "the follower with a damaged log did not repair it: {:?}\n{text}",
        rot.collect::<Vec<_>>()
    );
    assert!(report.totals.bets_acknowledged > 0, "the workload placed no bet\n{text}");
    assert_eq!(report.totals.acknowledged_but_lost, 0, "acknowledged bets were lost\n{text}");
    for check in &report.checks {
        assert!(check.passed, "check {} failed: {}\n{text}", check.name, check.summary);
    }
    assert!(report.passed(), "{text}");
}
