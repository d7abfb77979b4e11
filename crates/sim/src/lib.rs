//! Deterministic simulation of whole Paddock clusters.
//!
//! The production consensus, storage and ledger code runs under turmoil: simulated time,
//! simulated TCP between nodes, a simulated disk that loses unsynced writes on a crash, and
//! openraft's seeded RNG. Everything random — the workload, the faults, message timing,
//! election timeouts — is drawn from one seed, so a failing seed replays exactly.
//!
//! # Layout
//! - [`config`]: what to simulate ([`RunConfig`], the deliberate bugs [`Teeth`]) and what a
//!   run found ([`RunReport`]).
//! - [`run()`]: the driver: steps the simulation, runs the nemesis and the checks, reports.
//! - `world`: the state shared by the driver, the hosts and the clients.
//! - `cluster`: one simulated host per node, running the production code.
//! - `workload`: the clients — operator, admin, bettors, reader, resolver.
//! - `nemesis`: the fault schedule and the heal.
//! - [`check`]: the invariant checkers, one module per invariant, each saying what it cannot
//!   see.
//! - `model`: the reference settlement model the `money` checker compares wallets with.
//! - [`paths`]: coverage of the dangerous paths (snapshots, purges, delayed bets, ...).
//! - [`disk`]: the storage crate's `Disk` over turmoil's file system, with switchable EIO,
//!   ENOSPC and read corruption.
//! - [`net`]: the consensus crate's `Transport` over turmoil TCP, and the peer server.
//! - [`rng`]: the seeded generator everything draws from.
//! - [`oracle`]: what clients sent and were told, and the committed log as applied.
//!
//! # Architecture invariants
//! - Nothing here reads the wall clock or the OS RNG, and no container iterated into the
//!   trace is a `HashMap`: the trace hash is a function of the seed.
//! - A run's verdict comes from the checkers, never from the absence of a panic alone; every
//!   violation names the checker that found it.

pub mod check;
mod cluster;
pub mod config;
pub mod disk;
mod model;
mod nemesis;
pub mod net;
pub mod oracle;
pub mod paths;
pub mod rng;
pub mod run;
mod workload;
mod world;

pub use check::{Checker, Violation};
pub use config::{RunConfig, RunReport, Teeth};
pub use paths::Path;
pub use run::run;
