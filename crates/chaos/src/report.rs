//! The report: per fault and in total, as text and as JSON.
//!
//! Per fault:
//! - start and end (seconds since the run started; the end is when the fault was removed);
//! - **write unavailability** as a client saw it: from the start of the first failed write
//!   attempt at or after the fault's start (within the fault's window, which runs to the next
//!   fault's start) to the end of the first served write attempt (acknowledged or definitively
//!   refused) that started after it; 0 if no write failed in the window;
//! - failed write attempts by kind in the window, and refusals by code;
//! - recovery of each node it stopped or cut: time from restart/resume/heal to ready and to
//!   having applied the leader's commit index.
//!
//! Totals: operations acknowledged, refused, unknown then resolved, still unknown, and
//! acknowledged but lost (must be 0).

use crate::checker::CheckResult;
use crate::nemesis::{FaultRecord, Recovery};
use crate::oracle::{AttemptEvent, AttemptResult, History, OpOutcome};
use crate::proxy::ProxyStats;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write;

/// One fault in the report.
#[derive(Clone, Debug, Serialize)]
pub struct FaultReport {
    /// Fault name.
    pub name: String,
    /// Nodes hit.
    pub targets: Vec<u64>,
    /// Seconds since the run started.
    pub start_s: f64,
    /// Seconds since the run started.
    pub end_s: f64,
    /// Client-visible write unavailability, seconds.
    pub write_unavailable_s: f64,
    /// Failed write attempts in the window, by kind.
    pub errors: BTreeMap<String, u64>,
    /// Refused writes in the window, by code.
    pub refusals: BTreeMap<String, u64>,
    /// Writes served in the window.
    pub served: u64,
    /// Recovery of the nodes hit.
    pub recovery: Vec<Recovery>,
    /// Why it did not run.
    pub skipped: Option<String>,
    /// Notes.
    pub notes: Vec<String>,
}

/// Counts over all operations.
#[derive(Clone, Debug, Serialize, Default)]
pub struct Totals {
    /// Operations recorded (including setup deposits).
    pub operations: u64,
    /// Acknowledged in the end.
    pub acknowledged: u64,
    /// Refused in the end.
    pub refused: u64,
    /// Unknown when the workload gave up, then resolved.
    pub unknown_then_resolved: u64,
    /// Still unknown after resolution.
    pub unresolved: u64,
    /// Acknowledged bets missing or different at the end (must be 0).
    pub acknowledged_but_lost: u64,
    /// Acknowledged bets.
    pub bets_acknowledged: u64,
    /// HTTP attempts by the workload.
    pub write_attempts: u64,
    /// Refusals by code.
    pub refused_by_code: BTreeMap<String, u64>,
    /// Markets created, settled.
    pub markets_created: u64,
    /// Markets the operator settled (acknowledged or found settled).
    pub markets_settled: u64,
}

/// The whole report.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Seed.
    pub seed: u64,
    /// Nodes.
    pub nodes: usize,
    /// Workload duration, seconds.
    pub duration_s: f64,
    /// Wall time of the whole run (setup to checks), seconds.
    pub run_time_s: f64,
    /// Faults asked for.
    pub faults_selected: Vec<String>,
    /// Run directory (node logs, history).
    pub work_dir: String,
    /// Per fault.
    pub faults: Vec<FaultReport>,
    /// Totals.
    pub totals: Totals,
    /// Checks.
    pub checks: Vec<CheckResult>,
    /// What was skipped, and why.
    pub skipped: Vec<String>,
    /// Proxy counters.
    pub proxy: ProxyStats,
    /// Harness problems (setup, cleanup) that are not invariant violations.
    pub harness_errors: Vec<String>,
}

/// Builds one fault's report from its record and the attempt timeline. `window_end` is the
/// next fault's start (or the end of the workload).
pub fn fault_report(record: &FaultRecord, window_end: f64, attempts: &[AttemptEvent]) -> FaultReport {
    let mut errors = BTreeMap::new();
    let mut refusals = BTreeMap::new();
    let mut served = 0;
    let mut first_fail: Option<f64> = None;
    let writes: Vec<&AttemptEvent> = attempts.iter().filter(|a| a.is_workload_write()).collect();
    if record.skipped.is_none() {
        for a in &writes {
            if a.end_s < record.start_s || a.end_s >= window_end {
                continue;
            }
            match &a.result {
                AttemptResult::Failed { kind } => {
                    *errors.entry(kind.clone()).or_insert(0) += 1;
                    let t = a.start_s.max(record.start_s);
                    first_fail = Some(first_fail.map_or(t, |f: f64| f.min(t)));
                }
                AttemptResult::Refused { code } => {
                    *refusals.entry(code.clone()).or_insert(0) += 1;
                    served += 1;
                }
                AttemptResult::Served => served += 1,
            }
        }
    }
    let write_unavailable_s = match first_fail {
        None => 0.0,
        Some(t) => writes
            .iter()
            .filter(|a| a.start_s >= t && !matches!(a.result, AttemptResult::Failed { .. }))
            .map(|a| a.end_s)
            .fold(None, |m: Option<f64>, e| Some(m.map_or(e, |m| m.min(e))))
            .map_or(window_end - t, |ok| ok - t),
    };
    FaultReport {
        name: record.kind.name().into(),
        targets: record.targets.clone(),
        start_s: record.start_s,
        end_s: record.end_s,
        write_unavailable_s,
        errors,
        refusals,
        served,
        recovery: record.recovery.clone(),
        skipped: record.skipped.clone(),
        notes: record.notes.clone(),
    }
}

/// Totals from the history.
pub fn totals(history: &History, acknowledged_but_lost: u64) -> Totals {
    let mut t = Totals { acknowledged_but_lost, ..Totals::default() };
    for op in &history.ops {
        t.operations += 1;
        match &op.outcome {
            OpOutcome::Acknowledged { .. } => {
                t.acknowledged += 1;
                if op.body.kind() == "bet" {
                    t.bets_acknowledged += 1;
                }
            }
            OpOutcome::Refused { code } => {
                t.refused += 1;
                *t.refused_by_code.entry(code.clone()).or_insert(0) += 1;
            }
            OpOutcome::Unknown { .. } => t.unresolved += 1,
        }
        if op.was_unknown && !matches!(op.outcome, OpOutcome::Unknown { .. }) {
            t.unknown_then_resolved += 1;
        }
    }
    t.write_attempts = history.attempts.iter().filter(|a| a.is_workload_write()).count() as u64;
    for m in history.markets.values() {
        if m.created.acknowledged() {
            t.markets_created += 1;
        }
        if m.settle.acknowledged() {
            t.markets_settled += 1;
        }
    }
    t
}

fn secs(v: Option<f64>) -> String {
    v.map_or("-".into(), |s| format!("{s:.2}s"))
}

impl Report {
    /// Whether every check passed, nothing acknowledged was lost and the harness had no error.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed) && self.totals.acknowledged_but_lost == 0 && self.harness_errors.is_empty()
    }

    /// The report as text.
    pub fn text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "paddock chaos: {} nodes, seed {}, workload {:.0}s, run time {:.1}s — {}",
            self.nodes,
            self.seed,
            self.duration_s,
            self.run_time_s,
            if self.passed() { "PASS" } else { "FAIL" }
        );
        let _ = writeln!(s, "run directory: {}", self.work_dir);
        let _ = writeln!(s, "faults selected: {}", self.faults_selected.join(", "));
        let _ = writeln!(s);
        let _ = writeln!(s, "faults:");
        for f in &self.faults {
            if let Some(why) = &f.skipped {
                let _ = writeln!(s, "  {:<15} at {:>6.1}s  NOT RUN: {why}", f.name, f.start_s);
                continue;
            }
            let _ = writeln!(
                s,
                "  {:<15} nodes {:?} {:>6.1}s → {:>6.1}s  write unavailability {:.2}s  served {}",
                f.name, f.targets, f.start_s, f.end_s, f.write_unavailable_s, f.served
            );
            if !f.errors.is_empty() {
                let list: Vec<String> = f.errors.iter().map(|(k, v)| format!("{k} {v}")).collect();
                let _ = writeln!(s, "      failed attempts: {}", list.join(", "));
            }
            if !f.refusals.is_empty() {
                let list: Vec<String> = f.refusals.iter().map(|(k, v)| format!("{k} {v}")).collect();
                let _ = writeln!(s, "      refusals: {}", list.join(", "));
            }
            for r in &f.recovery {
                let _ = writeln!(
                    s,
                    "      node {} after {}: ready {}, caught up {}{}",
                    r.node,
                    r.after,
                    secs(r.ready_s),
                    secs(r.caught_up_s),
                    r.error.as_ref().map(|e| format!(" ({e})")).unwrap_or_default()
                );
            }
            for n in &f.notes {
                let _ = writeln!(s, "      note: {n}");
            }
        }
        let t = &self.totals;
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "operations: {} — acknowledged {} ({} bets), refused {}, unknown then resolved {}, still unknown {}, acknowledged but lost {}",
            t.operations, t.acknowledged, t.bets_acknowledged, t.refused, t.unknown_then_resolved, t.unresolved, t.acknowledged_but_lost
        );
        if !t.refused_by_code.is_empty() {
            let list: Vec<String> = t.refused_by_code.iter().map(|(k, v)| format!("{k} {v}")).collect();
            let _ = writeln!(s, "refusals: {}", list.join(", "));
        }
        let _ = writeln!(
            s,
            "write attempts {}; markets created {}, settled {}; proxy: forwarded {}, refused {}, aborted {}",
            t.write_attempts,
            t.markets_created,
            t.markets_settled,
            self.proxy.forwarded,
            self.proxy.refused,
            self.proxy.aborted
        );
        let _ = writeln!(s);
        let _ = writeln!(s, "checks:");
        for c in &self.checks {
            let _ = writeln!(s, "  [{}] {:<20} {}", if c.passed { "pass" } else { "FAIL" }, c.name, c.summary);
            for d in &c.details {
                let _ = writeln!(s, "         - {d}");
            }
        }
        for k in &self.skipped {
            let _ = writeln!(s, "skipped: {k}");
        }
        for e in &self.harness_errors {
            let _ = writeln!(s, "harness error: {e}");
        }
        s
    }

    /// Writes the report as pretty JSON.
    pub fn write_json(&self, path: &std::path::Path) -> anyhow::Result<()> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, serde_json::to_vec_pretty(self)?)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nemesis::FaultKind;

    fn ev(start_s: f64, end_s: f64, result: AttemptResult) -> AttemptEvent {
        AttemptEvent { what: "bet", node: 0, start_s, end_s, result }
    }

    #[test]
    fn unavailability_runs_from_the_first_failure_to_the_next_served_write() {
        let record = FaultRecord {
            kind: FaultKind::KillLeader,
            targets: vec![1],
            start_s: 10.0,
            end_s: 13.0,
            recovery: Vec::new(),
            skipped: None,
            notes: Vec::new(),
        };
        let fail = || AttemptResult::Failed { kind: "timeout".into() };
        let attempts = vec![
            ev(9.0, 9.1, AttemptResult::Served),
            ev(10.2, 10.4, fail()),
            ev(10.3, 11.0, fail()),
            ev(10.1, 11.5, AttemptResult::Served), // started before the failure: does not count
            ev(11.6, 11.9, AttemptResult::Refused { code: "insufficient_funds".into() }),
            ev(12.0, 12.1, AttemptResult::Served),
        ];
        let r = fault_report(&record, 20.0, &attempts);
        assert!((r.write_unavailable_s - 1.7).abs() < 1e-9, "{}", r.write_unavailable_s);
        assert_eq!(r.errors.get("timeout"), Some(&2));
        assert_eq!(r.refusals.get("insufficient_funds"), Some(&1));
        let quiet = fault_report(&record, 20.0, &attempts[..1]);
        assert_eq!(quiet.write_unavailable_s, 0.0);
    }
}
