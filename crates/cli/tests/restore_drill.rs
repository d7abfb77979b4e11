//! `paddock drill restore` end to end on real processes: a 3-node cluster under betting load is
//! backed up (a full backup, then increments on a schedule), lost (kill -9, data directories
//! deleted) and restored from the chain; the drill's own checks — the restored state hash is the
//! chain's, every bet acknowledged before the last increment is there, the audit trail verifies —
//! must pass, and its report must give the RTO and RPO.

use std::process::Command;

#[test]
fn the_restore_drill_loses_the_site_under_load_and_restores_every_bet_up_to_the_last_increment() {
    let dir = tempfile::tempdir().unwrap();
    let report_path = dir.path().join("restore.json");
    let out = Command::new(env!("CARGO_BIN_EXE_paddock"))
        .args(["drill", "restore", "--load-s", "6", "--increment-every-s", "2", "--workers", "4", "--report"])
        .arg(&report_path)
        .output()
        .expect("paddock runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("{text}");
    assert!(out.status.success(), "the restore drill failed:\n{text}");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap();
    let number = |key: &str| report[key].as_u64().unwrap_or_else(|| panic!("report has {key}: {report}"));
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
