//! The state shared by the driver, the simulated hosts and the clients (all on one thread):
//! the running nodes, the oracle and the log record, violations, coverage and the trace.

use crate::check::{log_matching, Checker, Violation};
use crate::config::RunConfig;
use crate::oracle::{Clients, Committed};
use crate::paths::{NodeProbe, Path, Paths};
use crate::workload::EVENTS;
use paddock_consensus::transport::{Rpc, Transport};
use paddock_consensus::{AppliedEvent, Consensus};
use paddock_ledger::IdempotencyKey;
use serde::{de::DeserializeOwned, Serialize};
use sha2::{Digest, Sha256};
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

/// The simulated cluster's name.
pub(crate) const CLUSTER: &str = "sim";
/// Simulated time zero as a UTC timestamp (ms).
pub(crate) const EPOCH_MS: u64 = 1_800_000_000_000;
/// How long a client waits for one call: longer than a node's write timeout (1.5 s, in
/// `cluster.rs`) plus a forward, so that a node never still retries an attempt the client has
/// given up on. With a shorter client timeout a refusal is not a final answer: the client
/// abandons attempt 1 while the node that took it keeps retrying it (no leader known yet),
/// attempt 2 is refused, then attempt 1 lands and took effect while refusals were not
/// remembered — the client was told "refused" of a bet that stands (`acknowledged` caught it;
/// seeds 2 and 13 with 2 s). Refusals are remembered under their key now.
const CALL_TIMEOUT: Duration = Duration::from_millis(2_500);
/// Violations kept per checker: a broken invariant usually stays broken, and every later
/// sample would report it again.
const VIOLATIONS_PER_CHECKER_MAX: usize = 20;

/// A node's host name.
pub(crate) fn node_name(id: u64) -> String {
    format!("n{id}")
}

/// Everything shared during one run.
pub(crate) struct World {
    /// The run's configuration.
    pub(crate) config: RunConfig,
    /// Running nodes (removed when crashed, added when started).
    pub(crate) nodes: RefCell<BTreeMap<u64, Consensus>>,
    /// Per node, whether its current incarnation is alive (see `disk::Incarnation`).
    pub(crate) incarnations: RefCell<BTreeMap<u64, Arc<AtomicBool>>>,
    /// Applied-entry channels of every incarnation, drained by the driver after each step.
    pub(crate) feeds: RefCell<Vec<(u64, broadcast::Receiver<Arc<AppliedEvent>>)>>,
    /// Snapshot files the nodes served as backups (node, index, bytes), read inside each node
    /// (a simulated disk can be read only there); the restore checker takes them from here.
    pub(crate) served_snapshots: RefCell<Vec<(u64, u64, Vec<u8>)>>,
    /// What clients sent and were told.
    pub(crate) clients: RefCell<Clients>,
    /// The committed log as applied.
    pub(crate) committed: RefCell<Committed>,
    violations: RefCell<Vec<Violation>>,
    /// Dangerous paths reached so far.
    pub(crate) paths: RefCell<Paths>,
    trace: RefCell<Sha256>,
    /// Set at the end of the safety phase: clients stop starting new work.
    pub(crate) stop_new_work: Cell<bool>,
    /// Clients give up on requests after this much simulated time.
    pub(crate) deadline: Cell<Duration>,
    /// Every node id, voters first.
    pub(crate) node_ids: Vec<u64>,
    /// The learner's id, if this run has one.
    pub(crate) learner: Option<u64>,
    /// Per node, what the simulator's disk and peer server saw.
    pub(crate) probes: BTreeMap<u64, Arc<NodeProbe>>,
    /// The operator's current market generation per event, for bettors to aim at.
    pub(crate) generation: RefCell<[u64; EVENTS as usize]>,
    /// Per node, its wall clock's offset from the true (simulated) time in ms: a property of
    /// the host, kept across crashes; the nemesis makes clocks jump and drift with it.
    pub(crate) clock_offsets: BTreeMap<u64, Arc<std::sync::atomic::AtomicI64>>,
    /// The simulated time at the driver's latest step (the driver runs outside the simulated
    /// hosts, where `turmoil::sim_elapsed` has no answer).
    pub(crate) now: Cell<Duration>,
    /// Rot at rest to apply to a node's disk when it next starts (the nemesis's `DiskRot`):
    /// node → the draw that picks what is flipped.
    pub(crate) rot_orders: RefCell<BTreeMap<u64, u64>>,
    /// The operator's next idempotency key number: each operator command has its own key,
    /// sent again with every retry of that command.
    op_keys: Cell<u64>,
}

impl World {
    pub(crate) fn new(config: RunConfig) -> World {
        let voters: Vec<u64> = (1..=config.voters).collect();
        let learner = config.learner.then_some(config.voters + 1);
        let node_ids: Vec<u64> = voters.iter().copied().chain(learner).collect();
        World {
            nodes: RefCell::default(),
            incarnations: RefCell::default(),
            feeds: RefCell::default(),
            served_snapshots: RefCell::default(),
            clients: RefCell::default(),
            committed: RefCell::default(),
            violations: RefCell::default(),
            paths: RefCell::default(),
            trace: RefCell::new(Sha256::new()),
            stop_new_work: Cell::new(false),
            deadline: Cell::new(config.safety + config.liveness),
            probes: node_ids.iter().map(|i| (*i, Arc::default())).collect(),
            clock_offsets: node_ids.iter().map(|i| (*i, Arc::default())).collect(),
            node_ids,
            learner,
            generation: RefCell::new([0; EVENTS as usize]),
            op_keys: Cell::new(0),
            rot_orders: RefCell::default(),
            now: Cell::new(Duration::ZERO),
            config,
        }
    }

    /// The voters at bootstrap.
    pub(crate) fn voters(&self) -> &[u64] {
        &self.node_ids[..self.config.voters as usize]
    }

    /// A fresh operator idempotency key.
    pub(crate) fn op_key(&self) -> IdempotencyKey {
        let n = self.op_keys.get() + 1;
        self.op_keys.set(n);
        IdempotencyKey(format!("op-{n}"))
    }

    /// Adds an event to the trace hash (and prints it with `PADDOCK_SIM_TRACE` set).
    pub(crate) fn trace(&self, event: impl AsRef<str>) {
        let t = turmoil::sim_elapsed().unwrap_or_default().as_millis() as u64;
        if std::env::var_os("PADDOCK_SIM_TRACE").is_some() {
            eprintln!("{t} {}", event.as_ref());
        }
        let mut h = self.trace.borrow_mut();
        h.update(t.to_le_bytes());
        h.update(event.as_ref().as_bytes());
        h.update([0]);
    }

    /// The trace hash so far, extended with `tail`.
    pub(crate) fn trace_hash(&self, tail: &str) -> String {
        let mut h = self.trace.borrow().clone();
        h.update(tail);
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Records a broken invariant.
    pub(crate) fn violation(&self, checker: Checker, message: String) {
        self.trace(format!("violation [{checker}] {message}"));
        let mut v = self.violations.borrow_mut();
        if v.iter().filter(|x| x.checker == checker).count() < VIOLATIONS_PER_CHECKER_MAX {
            v.push(Violation { checker, message });
        }
    }

    /// The violations found so far.
    pub(crate) fn violations(&self) -> Vec<Violation> {
        self.violations.borrow().clone()
    }

    /// Marks a path as reached.
    pub(crate) fn reached(&self, path: Path) {
        self.paths.borrow_mut().insert(path);
    }

    /// Whether the safety phase's deadline for clients has passed.
    pub(crate) fn past_deadline(&self) -> bool {
        turmoil::sim_elapsed().unwrap_or_default() >= self.deadline.get()
    }

    /// Moves every entry the nodes applied since the last call into the log record, checking
    /// log matching on the way.
    pub(crate) fn drain_applied(&self) {
        let mut feeds = self.feeds.borrow_mut();
        feeds.retain_mut(|(node, rx)| loop {
            match rx.try_recv() {
                Ok(e) => log_matching::record(self, *node, &e),
                Err(broadcast::error::TryRecvError::Empty) => return true,
                Err(broadcast::error::TryRecvError::Closed) => return false,
                Err(broadcast::error::TryRecvError::Lagged(n)) => {
                    // Cannot happen while the channel is drained after every step; if it did,
                    // the record would have a hole the model cannot see.
                    self.violation(Checker::LogMatching, format!("the log record lost {n} entries of node {node}"));
                }
            }
        });
    }
}

/// Calls `rpc` on `node` over the simulated network, as a client outside the cluster would.
pub(crate) async fn call<Req: Serialize, Resp: DeserializeOwned>(node: u64, rpc: Rpc, req: &Req) -> Option<Resp> {
    let transport = crate::net::SimTransport::new(CLUSTER);
    let payload = postcard::to_stdvec(req).expect("requests encode");
    let bytes = transport
        .call(format!("{}:{}", node_name(node), crate::net::PEER_PORT), rpc, payload, CALL_TIMEOUT)
        .await
        .ok()?;
    postcard::from_bytes(&bytes).ok()
}
