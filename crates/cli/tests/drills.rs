//! The disaster-recovery drills end to end on real processes, each failing on any of its own
//! checks:
//!
//! - `paddock drill restore`: a 3-node cluster under betting load is backed up (a full backup,
//!   then increments on a schedule), lost (kill -9, data directories deleted) and restored from
//!   the chain; the restored state hash must be the chain's, every bet acknowledged before the
//!   last increment must be there, the audit trail must verify, and the report gives the RTO and
//!   RPO.
//! - `paddock drill dr`: loses the primary site under load, promotes the standby learner into a
//!   new cluster, fails back to the rebuilt primary site, and checks that the promoted book lost
//!   only what the standby had not yet received and that nothing acknowledged after the
//!   promotion is lost.
//!
//! Also a mistake `paddock dr promote` refuses from the command line; the others (the old
//! cluster id, a target that is not empty, a source a node runs on) are unit tests of
//! `paddock_backup::dr`.

use std::process::Command;

fn paddock(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_paddock")).args(args).output().expect("paddock runs")
}

/// Runs `paddock drill <args> --report …`, which must pass its own checks, and returns its JSON
/// report.
fn drill(args: &[&str]) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let report_path = dir.path().join("report.json");
    let out = Command::new(env!("CARGO_BIN_EXE_paddock"))
        .arg("drill")
        .args(args)
        .arg("--report")
        .arg(&report_path)
        .output()
        .expect("paddock runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("{text}");
    assert!(out.status.success(), "the drill failed:\n{text}");
    serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap()
}

/// A whole number from a drill's report.
fn number(report: &serde_json::Value, key: &str) -> u64 {
    report[key].as_u64().unwrap_or_else(|| panic!("report has {key}: {report}"))
}

#[test]
fn the_restore_drill_loses_the_site_under_load_and_restores_every_bet_up_to_the_last_increment() {
    let report = drill(&["restore", "--load-s", "6", "--increment-every-s", "2", "--workers", "4"]);
    let number = |key: &str| number(&report, key);
    assert!(number("acknowledged") > 0, "the site took bets: {report}");
    // A full backup and at least one increment from the schedule.
    assert!(number("chain_files") >= 2, "{report}");
    assert!(report["increment_ms"].as_array().is_some_and(|i| !i.is_empty()), "{report}");
    assert!(number("chain_last_index") > 0, "{report}");
    // The RTO includes the restore, and the RPO is reported in time as well as in bets.
    assert!(number("rto_ms") >= number("restore_ms"), "{report}");
    number("rpo_ms");
    number("rpo_bets");
    for check in ["state_hash_matches", "acknowledged_before_point_present", "audit_verifies"] {
        assert_eq!(report[check], true, "check {check}: {report}");
    }
}

#[test]
fn the_standby_site_takes_over_when_the_primary_is_lost_and_hands_back_without_losing_a_bet() {
    let report = drill(&["dr", "--load-s", "6", "--workers", "4"]);
    let number = |key: &str| number(&report, key);
    assert!(number("acknowledged_before_loss") > 0, "the primary took bets: {report}");
    assert!(number("rto_ms") >= number("promote_ms"), "the RTO includes the promotion: {report}");
    assert!(number("acknowledged_after_promotion") > 0, "the DR site took bets during failback: {report}");
    assert!(number("promoted_index") > 0 && number("promoted_index") <= number("primary_committed_index"));
    assert!(number("rpo_bets") == 0 || number("rpo_entries") > 0, "bets lost only with entries: {report}");
    assert_eq!(number("lost_after_failback"), 0, "{report}");
    assert!(report["standby_lag_seconds"].as_f64().is_some(), "the standby exported its lag: {report}");
    for check in ["missing_within_rpo", "promoted_bets_intact", "lost_ids_not_reissued", "audit_verifies"] {
        assert_eq!(report[check], true, "check {check}: {report}");
    }
}

#[test]
fn promote_from_a_directory_that_is_not_a_node_s_is_refused_by_name_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let out = paddock(&[
        "dr",
        "promote",
        "--from",
        empty.to_str().unwrap(),
        "--data-dir",
        dir.path().join("new").to_str().unwrap(),
        "--cluster-id",
        "paddock-dr",
        "--node-id",
        "4",
        "--bootstrap",
        "4=127.0.0.1:7101",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("is not a paddock data directory"), "{err}");
    assert!(!dir.path().join("new").exists(), "nothing was created");
}
