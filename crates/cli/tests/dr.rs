//! Disaster recovery with a standby site, on real processes: `paddock drill dr` loses the
//! primary site under load, promotes the standby learner into a new cluster, fails back to the
//! rebuilt primary site, and checks that the promoted book lost only what the standby had not
//! yet received and that nothing acknowledged after the promotion is lost.
//!
//! Also a mistake `paddock dr promote` refuses from the command line; the others (the old
//! cluster id, a target that is not empty, a source a node runs on) are unit tests of
//! `paddock_backup::dr`.

use std::process::Command;

fn paddock(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_paddock")).args(args).output().expect("paddock runs")
}

#[test]
fn the_standby_site_takes_over_when_the_primary_is_lost_and_hands_back_without_losing_a_bet() {
    let dir = tempfile::tempdir().unwrap();
    let report_path = dir.path().join("dr.json");
    let out = paddock(&["drill", "dr", "--load-s", "6", "--workers", "4", "--report", report_path.to_str().unwrap()]);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("{text}");
    assert!(out.status.success(), "the DR drill failed:\n{text}");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap();
    let number = |key: &str| report[key].as_u64().unwrap_or_else(|| panic!("report has {key}: {report}"));
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
