//! The checkers must have teeth: each deliberate bug is caught within the CI batch of seeds,
//! and the same seed always replays the same run.

use paddock_sim::{run, RunConfig, Teeth};

/// The first seed in 1..=200 that fails with `teeth` on, if any.
fn first_failing_seed(teeth: Teeth) -> Option<(u64, Vec<String>)> {
    (1..=200).map(|seed| run(&RunConfig::for_seed(seed, teeth))).find(|r| !r.passed()).map(|r| (r.seed, r.violations))
}

#[test]
fn acknowledging_an_append_before_its_fsync_is_caught_within_the_ci_batch() {
    let (seed, violations) =
        first_failing_seed(Teeth::AckBeforeFsync).expect("a lost acknowledged write went unnoticed in 200 seeds");
    println!("caught at seed {seed}: {violations:?}");
}

#[test]
fn skipping_the_funds_check_is_caught_within_the_ci_batch() {
    let (seed, violations) =
        first_failing_seed(Teeth::SkipFundsCheck).expect("an unfunded bet went unnoticed in 200 seeds");
    println!("caught at seed {seed}: {violations:?}");
}

/// Runs one seed in a fresh process, as `cargo xtask sim --seed N` does, and returns what it
/// printed about the run.
fn seed_in_a_process(seed: u64) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_paddock-sim"))
        .args(["--seed", &seed.to_string()])
        .output()
        .expect("run the simulator");
    String::from_utf8_lossy(&out.stdout).lines().next().unwrap_or_default().to_string()
}

#[test]
fn the_same_seed_replays_the_same_run() {
    for seed in [3, 17] {
        let (a, b) = (seed_in_a_process(seed), seed_in_a_process(seed));
        assert!(a.contains(": PASS"), "seed {seed}: {a}");
        assert!(a.contains("trace="), "{a}");
        assert_eq!(a.split(" wall=").next(), b.split(" wall=").next(), "seed {seed} is not deterministic");
    }
}
