//! A short chaos run for CI: a 3-node cluster of the real binary behind the fault-injecting
//! proxy, a bank workload for about 44 s while the leader is killed, paused and isolated, its
//! wall clock jumps an hour, a follower is killed and the cluster is split; every invariant
//! check must pass and no acknowledged bet may be lost. The long run is
//! `paddock drill chaos --nodes 5 --duration-s 600` (docs/chaos.md).

use paddock_chaos::{ChaosConfig, FaultKind, Timings};
use std::time::Duration;

#[test]
fn a_short_chaos_run_keeps_every_invariant() {
    let config = ChaosConfig {
        binary: env!("CARGO_BIN_EXE_paddock").into(),
        nodes: 3,
        duration: Duration::from_secs(44),
        seed: 20_261_127,
        faults: vec![
            FaultKind::KillLeader,
            FaultKind::PauseLeader,
            FaultKind::IsolateLeader,
            FaultKind::KillFollower,
            FaultKind::Split,
            FaultKind::ClockJumpLeader,
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
    assert!(report.totals.bets_acknowledged > 0, "the workload placed no bet\n{text}");
    assert_eq!(report.totals.acknowledged_but_lost, 0, "acknowledged bets were lost\n{text}");
    for check in &report.checks {
        assert!(check.passed, "check {} failed: {}\n{text}", check.name, check.summary);
    }
    assert!(report.passed(), "{text}");
}
