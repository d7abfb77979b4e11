//! One simulation run: the driver that steps the simulation and ties the other modules
//! together.
//!
//! A run has two phases. In the *safety* phase clients work (`workload.rs`) while the nemesis
//! injects faults drawn from the seed (`nemesis.rs`); checkers watch every replica
//! continuously (`check/`). In the *liveness* phase every fault is healed and every node
//! restarted; every request still outstanding must then complete, all replicas must converge
//! on one state hash, and the client oracle and the reference model are checked against the
//! committed log and the final state. Coverage of the dangerous paths is gathered on the way
//! (`paths.rs`).

use crate::check::{
    self, acknowledged, closed_market, idempotency, liveness, money, replicas, restore, Checker, Violation,
};
use crate::config::{RunConfig, RunReport, Teeth};
use crate::disk::{DiskFaults, FaultHandle};
use crate::nemesis::Nemesis;
use crate::paths::{MetricCounts, Path};
use crate::rng::Rng;
use crate::world::World;
use crate::{cluster, workload};
use paddock_ledger::StateHash;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Steps between two samples of the continuous checks (a step is 1 ms of simulated time).
const SAMPLE_EVERY_STEPS: u64 = 100;
/// Steps the healed cluster gets to converge once the clients are done.
const CONVERGE_STEPS_MAX: u64 = 20_000;

thread_local! {
    /// The message and place of the first panic on this thread, for the report.
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Replaces the printing panic hook, once per process, by one that records the panic for the
/// run's report: a node panicking (a broken invariant, a failed assertion) is a finding, and
/// the report says where.
fn record_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !turmoil::in_simulation() {
                // The driver's or a test's own panic: report it as usual.
                default_hook(info);
                return;
            }
            let message = info
                .payload()
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| info.payload().downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            let place = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
            if std::env::var_os("PADDOCK_SIM_PANICS").is_some() {
                eprintln!("panic: {message}{place}\n{}", std::backtrace::Backtrace::force_capture());
            }
            // `try_with`: a panic while thread-locals are torn down must not panic again here.
            let _ = LAST_PANIC.try_with(|p| {
                if let Ok(mut p) = p.try_borrow_mut() {
                    // Keep the first: later panics are usually consequences of it.
                    if p.is_none() {
                        *p = Some(format!("{message}{place}"));
                    }
                }
            });
        }));
    });
}

/// Switches the deliberate bug `teeth` on for this thread (and every other one off). The
/// skipped-entry bug is armed per node incarnation, in `cluster.rs`.
fn arm(teeth: Teeth) {
    paddock_ledger::faults::set_skip_funds_check(teeth == Teeth::SkipFundsCheck);
    paddock_ledger::faults::set_pay_winner_twice(teeth == Teeth::PayWinnerTwice);
    paddock_ledger::faults::set_accept_bets_after_close(teeth == Teeth::BetAfterClose);
    paddock_ledger::faults::set_forget_idempotency_records(teeth == Teeth::LoseIdempotencyRecord);
    paddock_consensus::faults::set_serve_stale_reads(teeth == Teeth::StaleRead);
    paddock_consensus::faults::set_no_clock_gate(teeth == Teeth::NoClockGate);
    paddock_consensus::faults::set_restore_skips_deposits(teeth == Teeth::RestoreSkipsDeposits);
    paddock_consensus::faults::set_skip_entry(None);
}

/// Runs one seed.
pub fn run(config: &RunConfig) -> RunReport {
    record_panics();
    LAST_PANIC.with(|p| p.borrow_mut().take());
    arm(config.teeth);
    let metrics = MetricCounts::default();
    let world = Rc::new(World::new(config.clone()));
    let mut checks = check::Continuous::new();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        metrics::with_local_recorder(&metrics, || run_inner(config, &metrics, &world, &mut checks))
    }));
    arm(Teeth::None);
    let first_panic = LAST_PANIC.with(|p| p.borrow_mut().take());
    match result {
        Ok(mut report) => {
            if let Some(p) = first_panic {
                report.violations.push(Violation { checker: Checker::Panic, message: format!("a node panicked: {p}") });
            }
            report
        }
        Err(panic) => {
            // A panic that escaped the simulation (one outside openraft's contained tasks)
            // ended the run. What the checkers found so far stands, and the model still reads
            // the log recorded up to the panic: a bug that made a node panic should still be
            // named by the checker that sees it.
            let recorded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                world.drain_applied();
                let last = world.committed.borrow().entries.keys().next_back().copied().unwrap_or(0);
                money::advance(&world, &mut checks.model, last);
            }));
            let message = first_panic
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()));
            let mut violations = world.violations();
            violations.push(Violation {
                checker: Checker::Panic,
                message: format!("a node panicked: {}", message.unwrap_or_else(|| "(no message)".into())),
            });
            if recorded.is_err() {
                violations
                    .push(Violation { checker: Checker::Panic, message: "the log record could not be read".into() });
            }
            // The nodes' handles belong to a simulation that no longer exists: let them go
            // without running their destructors outside it.
            for alive in world.incarnations.borrow().values() {
                alive.store(false, Ordering::SeqCst);
            }
            std::mem::forget(std::mem::take(&mut *world.nodes.borrow_mut()));
            std::mem::forget(std::mem::take(&mut *world.feeds.borrow_mut()));
            RunReport {
                seed: config.seed,
                trace_hash: "panicked".into(),
                violations,
                answers: 0,
                acked_bets: 0,
                log_entries: world.committed.borrow().entries.len() as u64,
                sim_ms: 0,
                faults: Vec::new(),
                reads_checked: 0,
                codes: BTreeMap::new(),
                paths: BTreeSet::new(),
            }
        }
    }
}

fn run_inner(
    config: &RunConfig,
    metrics: &MetricCounts,
    world: &Rc<World>,
    checks: &mut check::Continuous,
) -> RunReport {
    let mut rng = Rng::new(config.seed);
    let total = config.safety + config.liveness;
    let mut builder = turmoil::Builder::new();
    builder
        .simulation_duration(total + Duration::from_secs(30))
        .tick_duration(Duration::from_millis(1))
        .rng_seed(config.seed)
        .min_message_latency(Duration::from_micros(200))
        .max_message_latency(Duration::from_millis(2 + rng.below(5)))
        .tcp_capacity(1 << 16);
    // Torn writes at crash in some runs: a write larger than a block may be cut at a block edge.
    if rng.chance(500) {
        builder.fs().block_size(512);
    }
    let mut sim = builder.build();
    let disk_faults: BTreeMap<u64, FaultHandle> = world
        .node_ids
        .iter()
        .map(|i| {
            (*i, Arc::new(Mutex::new(DiskFaults { rng: Some(Rng::new(config.seed ^ i)), ..DiskFaults::default() })))
        })
        .collect();
    cluster::add_hosts(&mut sim, world, &disk_faults);
    workload::spawn(&mut sim, world, rng.next_u64());
    let mut nemesis = Nemesis::new(&mut rng, world, disk_faults);

    let mut step_n: u64 = 0;
    loop {
        let done = match sim.step() {
            Ok(done) => done,
            Err(e) => {
                liveness::failed(world, format!("simulation error: {e}"));
                break;
            }
        };
        world.drain_applied();
        step_n += 1;
        let now = sim.elapsed();
        world.now.set(now);
        if done {
            break;
        }
        if now >= total + Duration::from_secs(25) {
            liveness::failed(world, "clients still had requests outstanding when the run ended".into());
            break;
        }
        let was_healed = nemesis.healed();
        nemesis.step(&mut sim, world, &mut rng, now);
        if nemesis.healed() && !was_healed && checks.leaders.len() > 1 {
            // Counted before the heal, whose restarts always bring a new election.
            world.reached(Path::LeaderChange);
        }
        if step_n.is_multiple_of(SAMPLE_EVERY_STEPS) {
            check::sample(world, checks);
        }
    }

    // Convergence: every member reaches the same applied index and the same state.
    let mut converged = None;
    for _ in 0..CONVERGE_STEPS_MAX {
        if sim.step().is_err() {
            break;
        }
        world.drain_applied();
        world.now.set(sim.elapsed());
        let views = member_views(world);
        if !views.is_empty() && views.windows(2).all(|w| w[0].1 == w[1].1) {
            converged = Some(views);
            break;
        }
    }
    world.drain_applied();
    check::sample(world, checks);
    match &converged {
        Some(views) => {
            world.trace(format!("converged at {} with {}", views[0].1, views[0].2));
            replicas::check_converged(world, views);
            restore::check(world, &checks.backups, &checks.hashes, &views[0]);
        }
        None => liveness::failed(world, "members did not reach one applied index after healing".into()),
    }

    // The committed log and the final state against the oracle and the model.
    {
        let log = world.committed.borrow();
        if std::env::var_os("PADDOCK_SIM_DUMP_LOG").is_some() {
            for (index, e) in &log.entries {
                eprintln!("{index} t={} {:?} -> {:?}", e.time.0, e.command, e.outcome);
            }
        }
        closed_market::check(world, &log);
        idempotency::check(world, &log);
    }
    let outstanding = world.clients.borrow().outstanding.len();
    if outstanding > 0 {
        liveness::failed(world, format!("{outstanding} requests never got an answer"));
    }
    let furthest =
        world.nodes.borrow().values().max_by_key(|c| c.read(|d| d.last_applied.map_or(0, |l| l.index))).cloned();
    match furthest {
        Some(node) => {
            let nodes: Vec<_> = world.nodes.borrow().iter().map(|(i, n)| (*i, n.clone())).collect();
            let applied = node.read(|d| d.last_applied.map_or(0, |l| l.index));
            checks.archive.advance(world, applied);
            let archived = &checks.archive.bets;
            node.read(|d| acknowledged::check(world, &d.state, archived, &workload::bettor_accounts()));
            money::compare_leading(world, &mut checks.model, &mut checks.archive, &nodes);
        }
        None => liveness::failed(world, "no node running at the end".into()),
    }

    // Coverage.
    if metrics.get("paddock_raft_log_purges_total") > 0 {
        world.reached(Path::LogPurged);
    }
    if metrics.get("paddock_storage_repair_seconds") > 0 {
        world.reached(Path::StorageRepaired);
    }
    if metrics.get("paddock_archive_segments_fetched_total") > 0 {
        world.reached(Path::ArchiveFetched);
    }
    if metrics.get("paddock_snapshot_transfers_restarted_total") > 0 {
        world.reached(Path::SnapshotTransferRestarted);
    }
    if metrics.get("paddock_snapshot_build_duration_seconds") > 0 {
        world.reached(Path::SnapshotBuilt);
    }
    for (id, probe) in &world.probes {
        if probe.installs_done.load(Ordering::SeqCst) > 0 {
            world.reached(if Some(*id) == world.learner { Path::SnapshotToLearner } else { Path::SnapshotToFollower });
        }
    }
    if nemesis.corrupted_any() {
        world.reached(Path::CorruptRead);
    }
    world.paths.borrow_mut().extend(checks.model.paths.iter().copied());

    let violations = world.violations();
    let trace_hash = world.trace_hash(&format!("{violations:?}"));
    let clients = world.clients.borrow();
    let report = RunReport {
        seed: config.seed,
        trace_hash,
        violations,
        answers: clients.answers.len() as u64,
        acked_bets: clients.bets.len() as u64,
        log_entries: world.committed.borrow().entries.len() as u64,
        sim_ms: sim.elapsed().as_millis() as u64,
        faults: std::mem::take(&mut nemesis.log),
        reads_checked: clients.reads_checked,
        codes: clients.codes(),
        paths: world.paths.borrow().clone(),
    };
    drop(clients);
    // The simulation is over: what the dropped nodes flush on close goes nowhere.
    for alive in world.incarnations.borrow().values() {
        alive.store(false, Ordering::SeqCst);
    }
    world.nodes.borrow_mut().clear();
    drop(sim);
    report
}

/// (node, applied index, state hash) of every running member, by the first node's membership.
fn member_views(world: &World) -> Vec<(u64, u64, StateHash)> {
    let nodes = world.nodes.borrow();
    let members: BTreeSet<u64> =
        nodes.values().next().map(|c| c.status().members.iter().map(|m| m.id).collect()).unwrap_or_default();
    let views: Vec<(u64, u64, StateHash)> = nodes
        .iter()
        .filter(|(id, _)| members.contains(id))
        .map(|(id, c)| c.read(|d| (*id, d.last_applied.map_or(0, |l| l.index), d.state.state_hash())))
        .collect();
    if views.len() == members.len() {
        views
    } else {
        Vec::new()
    }
}
