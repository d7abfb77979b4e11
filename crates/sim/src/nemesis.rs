//! The nemesis: a schedule of faults drawn from the seed over the safety phase, started and
//! ended by the driver between simulation steps, and the heal that ends the phase.
//!
//! Faults: crash of any node, crash of a majority at once, isolating the leader, a random
//! split, a one-way partition, message loss, latency, a pause (messages held), and per-node
//! disk faults — EIO, ENOSPC, silent read corruption, and rot at rest on one replica at a time
//! (a flipped bit in one stored log entry or in every snapshot file, found at the restart). A node whose disk failed is crashed and
//! restarted when the fault ends (a failed write poisons its log, as an operator would
//! restart it). Clock faults: a node's wall clock (often the leader's) jumps ahead or behind —
//! by less than the cluster-time bound, or by one to sixty minutes — or drifts 50 % fast or
//! slow, and is stepped back to the truth when the fault ends.

use crate::disk::FaultHandle;
use crate::paths::Path;
use crate::rng::Rng;
use crate::world::{node_name, World};
use paddock_consensus::Role;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// One kind of fault.
#[derive(Clone, Copy, Debug)]
enum Fault {
    Crash(u64),
    CrashMajority,
    IsolateLeader,
    Split,
    OneWay,
    Loss,
    Latency,
    Pause(u64),
    DiskEio(u64),
    DiskFull(u64),
    DiskCorrupt(u64),
    /// Rot at rest on one replica at a time: the node is crashed, one bit of its log (one
    /// entry's stored frame) or of every snapshot file is flipped on its disk, and it is
    /// restarted; it must repair from its peers (`crates/consensus/src/repair.rs`).
    DiskRot(u64),
    /// The wall clock of `node` (the leader at the time if `None`) reads `ms` off the truth.
    ClockJump {
        node: Option<u64>,
        ms: i64,
    },
    /// The wall clock of `node` (the leader if `None`) runs 50 % fast (`sign` 1) or slow (-1).
    ClockDrift {
        node: Option<u64>,
        sign: i64,
    },
}

/// The fault schedule and what is currently broken.
pub(crate) struct Nemesis {
    /// (start, fault, length), in start order.
    schedule: Vec<(Duration, Fault, Duration)>,
    next: usize,
    /// (end, fault, nodes it touched).
    active: Vec<(Duration, Fault, Vec<u64>)>,
    crashed: BTreeSet<u64>,
    names: Vec<String>,
    disk_faults: BTreeMap<u64, FaultHandle>,
    /// Drifting clocks: (node, since, sign).
    drifting: Vec<(u64, Duration, i64)>,
    safety: Duration,
    healed: bool,
    /// The node whose storage rotted last, until it has repaired: rot strikes one replica at
    /// a time (two replicas that lost the same committed entry could not elect anyone who has it).
    rotted: Option<u64>,
    /// Faults injected, for the report.
    pub(crate) log: Vec<String>,
}

impl Nemesis {
    /// Draws the schedule for the safety phase.
    pub(crate) fn new(rng: &mut Rng, world: &World, disk_faults: BTreeMap<u64, FaultHandle>) -> Nemesis {
        let node_ids = &world.node_ids;
        let mut schedule = Vec::new();
        let mut t = Duration::from_millis(1_500);
        while t < world.config.safety {
            let pick = |rng: &mut Rng| node_ids[rng.below(node_ids.len() as u64) as usize];
            let fault = match rng.below(14) {
                0 => Fault::Crash(pick(rng)),
                1 => Fault::CrashMajority,
                2 => Fault::IsolateLeader,
                3 => Fault::Split,
                4 => Fault::OneWay,
                5 => Fault::Loss,
                6 => Fault::Latency,
                7 => Fault::Pause(pick(rng)),
                8 => Fault::DiskEio(pick(rng)),
                9 => Fault::DiskFull(pick(rng)),
                10 => Fault::DiskCorrupt(pick(rng)),
                13 => Fault::DiskRot(pick(rng)),
                11 => {
                    let node = if rng.chance(700) { None } else { Some(pick(rng)) };
                    let magnitude = if rng.chance(300) { 50 + rng.below(350) } else { 60_000 * (1 + rng.below(60)) };
                    let ms = magnitude as i64 * if rng.chance(500) { 1 } else { -1 };
                    Fault::ClockJump { node, ms }
                }
                _ => {
                    let node = if rng.chance(700) { None } else { Some(pick(rng)) };
                    Fault::ClockDrift { node, sign: if rng.chance(500) { 1 } else { -1 } }
                }
            };
            let length = Duration::from_millis(300 + rng.below(2_000));
            schedule.push((t, fault, length));
            t += length + Duration::from_millis(200 + rng.below(1_200));
        }
        Nemesis {
            schedule,
            next: 0,
            active: Vec::new(),
            crashed: BTreeSet::new(),
            names: node_ids.iter().map(|i| node_name(*i)).collect(),
            disk_faults,
            drifting: Vec::new(),
            safety: world.config.safety,
            healed: false,
            rotted: None,
            log: Vec::new(),
        }
    }

    /// Whether the safety phase is over and everything healed.
    pub(crate) fn healed(&self) -> bool {
        self.healed
    }

    fn crash(&mut self, sim: &mut turmoil::Sim, world: &World, id: u64) {
        if self.crashed.insert(id) {
            if let Some(alive) = world.incarnations.borrow().get(&id) {
                alive.store(false, Ordering::SeqCst);
            }
            world.nodes.borrow_mut().remove(&id);
            sim.crash(node_name(id));
        }
    }

    fn restart(&mut self, sim: &mut turmoil::Sim, world: &World, id: u64) {
        if self.crashed.remove(&id) {
            sim.bounce(node_name(id));
            if !self.healed {
                world.reached(Path::CrashRestart);
            }
        }
    }

    fn repair_all(&self, sim: &mut turmoil::Sim) {
        for a in &self.names {
            for b in &self.names {
                if a != b {
                    sim.repair(a.as_str(), b.as_str());
                }
            }
        }
    }

    /// Ends faults whose time is up, starts those due, and heals everything at the end of
    /// the safety phase. Called by the driver after each simulation step.
    pub(crate) fn step(&mut self, sim: &mut turmoil::Sim, world: &World, rng: &mut Rng, now: Duration) {
        for (id, since, sign) in &self.drifting {
            let drift = i64::try_from(now.saturating_sub(*since).as_millis() / 2).unwrap_or(i64::MAX);
            world.clock_offsets[id].store(sign * drift, Ordering::SeqCst);
        }
        let mut ending = Vec::new();
        self.active.retain(|(until, f, nodes)| {
            if *until <= now {
                ending.push((*f, nodes.clone()));
                false
            } else {
                true
            }
        });
        for (f, nodes) in ending {
            self.end(sim, world, f, nodes);
        }
        while self.next < self.schedule.len() && self.schedule[self.next].0 <= now && now < self.safety {
            let (_, fault, length) = self.schedule[self.next];
            self.next += 1;
            let touched = self.start(sim, world, rng, fault, now);
            let note = format!("{:.3}s {fault:?} for {:.3}s", now.as_secs_f64(), length.as_secs_f64());
            world.trace(&note);
            self.log.push(note);
            self.active.push((now + length, fault, touched));
        }
        if now >= self.safety && !self.healed {
            self.heal(sim, world);
        }
    }

    fn leader(world: &World) -> Option<u64> {
        world.nodes.borrow().values().map(|c| c.status()).find(|s| s.role == Role::Leader).map(|s| s.node_id)
    }

    fn start(&mut self, sim: &mut turmoil::Sim, world: &World, rng: &mut Rng, fault: Fault, now: Duration) -> Vec<u64> {
        let mut touched = Vec::new();
        match fault {
            Fault::Crash(id) => {
                self.crash(sim, world, id);
                touched.push(id);
            }
            Fault::CrashMajority => {
                let voters = world.voters().to_vec();
                for &id in voters.iter().take(voters.len() / 2 + 1) {
                    self.crash(sim, world, id);
                    touched.push(id);
                }
            }
            Fault::IsolateLeader => {
                let leader = world.nodes.borrow().values().map(|c| c.status()).find(|s| s.role == Role::Leader);
                if let Some(l) = leader.map(|s| s.node_id) {
                    for other in &self.names {
                        if *other != node_name(l) {
                            sim.partition(node_name(l), other.as_str());
                        }
                    }
                }
            }
            Fault::Split => {
                let cut = 1 + rng.below(self.names.len() as u64 - 1) as usize;
                for a in &self.names[..cut] {
                    for b in &self.names[cut..] {
                        sim.partition(a.as_str(), b.as_str());
                    }
                }
            }
            Fault::OneWay => {
                let a = &self.names[rng.below(self.names.len() as u64) as usize];
                let b = &self.names[rng.below(self.names.len() as u64) as usize];
                if a != b {
                    sim.partition_oneway(a.as_str(), b.as_str());
                }
            }
            Fault::Loss => {
                for a in &self.names {
                    for b in &self.names {
                        if a != b && rng.chance(500) {
                            sim.set_link_fail_rate(a.as_str(), b.as_str(), 0.05 + rng.below(250) as f64 / 1000.0);
                        }
                    }
                }
            }
            Fault::Latency => sim.set_max_message_latency(Duration::from_millis(20 + rng.below(200))),
            Fault::Pause(id) => {
                for other in &self.names {
                    if *other != node_name(id) {
                        sim.hold(node_name(id), other.as_str());
                    }
                }
            }
            Fault::DiskEio(id) => {
                self.disk_faults[&id].lock().expect("disk faults lock").eio = true;
                touched.push(id);
            }
            Fault::DiskFull(id) => {
                self.disk_faults[&id].lock().expect("disk faults lock").full = true;
                touched.push(id);
            }
            Fault::DiskCorrupt(id) => {
                self.disk_faults[&id].lock().expect("disk faults lock").corrupt_reads_per_mille = 50;
            }
            Fault::DiskRot(id) => {
                if let Some(earlier) = self.rotted {
                    let repaired =
                        world.nodes.borrow().get(&earlier).is_some_and(|c| c.status().repairing_up_to.is_none());
                    if !repaired {
                        world.trace(format!("rot on node {id} skipped: node {earlier} is still repairing"));
                        return touched;
                    }
                }
                if self.crashed.contains(&id) {
                    return touched;
                }
                self.rotted = Some(id);
                self.crash(sim, world, id);
                world.rot_orders.borrow_mut().insert(id, rng.below(u64::MAX));
                touched.push(id);
            }
            Fault::ClockJump { node, ms } => {
                let leader = Nemesis::leader(world);
                if let Some(id) = node.or(leader) {
                    world.clock_offsets[&id].store(ms, Ordering::SeqCst);
                    if Some(id) == leader {
                        world.reached(Path::ClockFaultOnLeader);
                    }
                    touched.push(id);
                }
            }
            Fault::ClockDrift { node, sign } => {
                let leader = Nemesis::leader(world);
                if let Some(id) = node.or(leader) {
                    self.drifting.push((id, now, sign));
                    if Some(id) == leader {
                        world.reached(Path::ClockFaultOnLeader);
                    }
                    touched.push(id);
                }
            }
        }
        touched
    }

    fn end(&mut self, sim: &mut turmoil::Sim, world: &World, f: Fault, nodes: Vec<u64>) {
        match f {
            Fault::Crash(_) | Fault::CrashMajority | Fault::DiskEio(_) | Fault::DiskFull(_) => {
                for id in nodes {
                    let mut d = self.disk_faults[&id].lock().expect("disk faults lock");
                    d.eio = false;
                    d.full = false;
                    drop(d);
                    // A disk error poisons the node's log: like an operator would, restart it.
                    self.crash(sim, world, id);
                    self.restart(sim, world, id);
                }
            }
            Fault::DiskCorrupt(id) => {
                self.disk_faults[&id].lock().expect("disk faults lock").corrupt_reads_per_mille = 0;
                self.crash(sim, world, id);
                self.restart(sim, world, id);
            }
            Fault::DiskRot(_) => {
                for id in nodes {
                    self.restart(sim, world, id);
                }
            }
            Fault::Pause(id) => {
                for other in &self.names {
                    sim.release(node_name(id), other.as_str());
                }
            }
            Fault::IsolateLeader | Fault::Split | Fault::OneWay => self.repair_all(sim),
            Fault::Loss => {
                for a in &self.names {
                    for b in &self.names {
                        if a != b {
                            sim.set_link_fail_rate(a.as_str(), b.as_str(), 0.0);
                        }
                    }
                }
            }
            Fault::Latency => sim.set_max_message_latency(Duration::from_millis(5)),
            Fault::ClockJump { .. } | Fault::ClockDrift { .. } => {
                // Stepped back to the truth, as NTP would.
                self.drifting.retain(|(id, _, _)| !nodes.contains(id));
                for id in nodes {
                    world.clock_offsets[&id].store(0, Ordering::SeqCst);
                }
            }
        }
        world.trace(format!("end {f:?}"));
    }

    /// Heals every fault and restarts every node (crashed ones, and those whose disk fault
    /// poisoned their log); clients stop starting new work.
    fn heal(&mut self, sim: &mut turmoil::Sim, world: &World) {
        self.healed = true;
        world.stop_new_work.set(true);
        for (_, f, nodes) in std::mem::take(&mut self.active) {
            if let Fault::Pause(id) = f {
                for other in &self.names {
                    sim.release(node_name(id), other.as_str());
                }
            }
            for id in nodes {
                let mut d = self.disk_faults[&id].lock().expect("disk faults lock");
                d.eio = false;
                d.full = false;
            }
        }
        self.drifting.clear();
        for offset in world.clock_offsets.values() {
            offset.store(0, Ordering::SeqCst);
        }
        for d in self.disk_faults.values() {
            let mut d = d.lock().expect("disk faults lock");
            d.eio = false;
            d.full = false;
            d.corrupt_reads_per_mille = 0;
        }
        self.repair_all(sim);
        for a in &self.names {
            for b in &self.names {
                if a != b {
                    sim.set_link_fail_rate(a.as_str(), b.as_str(), 0.0);
                }
            }
        }
        sim.set_max_message_latency(Duration::from_millis(5));
        for id in world.node_ids.clone() {
            self.crash(sim, world, id);
            self.restart(sim, world, id);
        }
        world.trace("healed");
    }

    /// Whether any disk served a corrupted read.
    pub(crate) fn corrupted_any(&self) -> bool {
        self.disk_faults.values().any(|d| d.lock().expect("disk faults lock").corrupted > 0)
    }
}
