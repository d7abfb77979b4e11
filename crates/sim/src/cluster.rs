//! The simulated cluster: one turmoil host per node, each running the production consensus,
//! storage and ledger over `SimDisk` and `SimTransport`, restarted by turmoil's `bounce`.

use crate::config::Teeth;
use crate::disk::{FaultHandle, Incarnation, SimDisk};
use crate::net::{self, SimTransport, PEER_PORT};
use crate::world::{node_name, World, CLUSTER, EPOCH_MS};
use openraft::impls::TokioRuntime;
use openraft::rt::deterministic_rng::DeterministicRng;
use paddock_consensus::{Consensus, CoreConfig, IoMode, Timing};
use paddock_ledger::TimestampMs;
use paddock_storage::FaultSwitches;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

/// Applied entries one node may announce between two simulation steps before the record
/// would lag (it never comes close: the driver drains after every step).
const APPLIED_FEED_CAPACITY: usize = 1 << 16;
/// The skipped-entry tooth skips the first deposit at or after this index on node 2: late
/// enough that the cluster is busy, early enough for every run.
const SKIP_ENTRY_FROM_INDEX: u64 = 40;
/// How long a node waits for a write to commit, or keeps looking for a leader to forward it
/// to, before answering "unknown" or "no leader". Shorter than the clients' call timeout
/// (`world.rs`), so no node still works on an attempt its client has given up on.
const WRITE_TIMEOUT: Duration = Duration::from_millis(1_500);

/// Every node's data directory, on its own simulated disk.
const DATA_DIR: &str = "/data";

/// Adds one host per node. Each incarnation of a node opens its data directory on its own
/// simulated disk, starts consensus, and serves peers until it is crashed.
pub(crate) fn add_hosts(sim: &mut turmoil::Sim, world: &Rc<World>, disk_faults: &BTreeMap<u64, FaultHandle>) {
    let config = &world.config;
    let log_faults = FaultSwitches { ack_before_fsync: config.teeth == Teeth::AckBeforeFsync };
    let bootstrap: BTreeMap<u64, String> =
        world.voters().iter().map(|i| (*i, format!("{}:{PEER_PORT}", node_name(*i)))).collect();
    for &id in &world.node_ids {
        let world = world.clone();
        let faults = disk_faults[&id].clone();
        let bootstrap = bootstrap.clone();
        let node_seed = world.config.seed.wrapping_mul(31).wrapping_add(id);
        sim.host(node_name(id), move || {
            let world = world.clone();
            let faults = faults.clone();
            let bootstrap = bootstrap.clone();
            async move {
                let alive = Arc::new(AtomicBool::new(true));
                world.incarnations.borrow_mut().insert(id, alive.clone());
                let probe = world.probes[&id].clone();
                let disk = SimDisk::new(Incarnation { faults, alive }, probe.clone());
                let rot = world.rot_orders.borrow_mut().remove(&id);
                if let Some(pick) = rot {
                    let what = crate::disk::rot(&disk, std::path::Path::new(DATA_DIR), pick);
                    world.trace(format!("node {id}: rot at rest: {what}"));
                }
                // Subscribed before the node opens, so that entries it replays at start-up
                // reach the log record too; the driver drains the receiver.
                let (events, applied) = tokio::sync::broadcast::channel(APPLIED_FEED_CAPACITY);
                world.feeds.borrow_mut().push((id, applied));
                if world.config.teeth == Teeth::SkipLogEntry && id == 2 && !paddock_consensus::faults::entry_skipped() {
                    paddock_consensus::faults::set_skip_entry(Some((events.clone(), SKIP_ENTRY_FROM_INDEX)));
                }
                let core = CoreConfig {
                    node_id: id,
                    cluster_id: CLUSTER.into(),
                    data_dir: DATA_DIR.into(),
                    timing: Timing::default(),
                    snapshot_logs_since_last: world.config.snapshot_interval,
                    snapshot_log_keep: world.config.snapshot_keep,
                    clock_offset_max_ms: 500,
                    write_timeout: WRITE_TIMEOUT,
                    log_faults,
                    applied_events: Some(events),
                    // The admin client promotes a learner mid-install on purpose: a dangerous
                    // path the simulator must reach, which production refuses.
                    promote_lag_max: None,
                    snapshot_chunk_bytes: world.config.snapshot_chunk_bytes,
                };
                // The host's wall clock: true simulated time plus the offset the nemesis sets.
                let offset = world.clock_offsets[&id].clone();
                let clock: paddock_consensus::Clock = Arc::new(move || {
                    let truth = EPOCH_MS + turmoil::sim_elapsed().unwrap_or_default().as_millis() as u64;
                    TimestampMs(truth.saturating_add_signed(offset.load(std::sync::atomic::Ordering::SeqCst)))
                });
                let inner_world = world.clone();
                let node = DeterministicRng::<TokioRuntime>::scope(node_seed, async move {
                    let world = inner_world;
                    let started = Consensus::start_core(
                        core,
                        clock,
                        Arc::new(disk),
                        Arc::new(SimTransport::new(CLUSTER)),
                        IoMode::Inline,
                    )
                    .await;
                    let (consensus, handler) = match started {
                        Ok(parts) => parts,
                        Err(e) => {
                            world.trace(format!("node {id} could not start: {e}"));
                            return Ok(());
                        }
                    };
                    if id == 1 {
                        let _ = consensus.bootstrap(bootstrap).await;
                    }
                    world.nodes.borrow_mut().insert(id, consensus.clone());
                    // Every second, inside the node: what a node's history job does (fetch the
                    // archive segments it lacks after installing a snapshot taken after them),
                    // and what a backup reads (the latest snapshot file) for the restore checker.
                    let chores = async {
                        let mut seen = 0;
                        loop {
                            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                            for index in consensus.archive_missing() {
                                let _ = consensus.fetch_archive_segment(index).await;
                            }
                            // The file is read only when a newer snapshot has replaced it.
                            if consensus.snapshot_index().is_some_and(|i| i != seen) {
                                if let Some((index, bytes)) = consensus.backup_snapshot() {
                                    seen = index;
                                    world.served_snapshots.borrow_mut().push((id, index, bytes));
                                }
                            }
                        }
                    };
                    tokio::select! {
                        served = net::serve(handler, probe) => served?,
                        () = chores => {}
                    }
                    Ok(())
                });
                // A panic in the node's own future (openraft's tasks catch theirs) freezes the
                // node instead of shutting the runtime down: see `sim_runtime` in consensus.
                match futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(node)).await {
                    Ok(result) => result,
                    Err(_) => std::future::pending().await,
                }
            }
        });
    }
}
