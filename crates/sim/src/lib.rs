//! Deterministic simulation of whole Paddock clusters.
//!
//! The production consensus, storage and ledger code runs under turmoil: simulated time,
//! simulated TCP between nodes, a simulated disk that loses unsynced writes on a crash, and
//! openraft's seeded RNG. Everything random — the workload, the faults, message timing,
//! election timeouts — is drawn from one seed, so a failing seed replays exactly.
//!
//! # Layout
//! - [`disk`]: the storage crate's `Disk` over turmoil's file system, with switchable EIO,
//!   ENOSPC and read corruption.
//! - [`net`]: the consensus crate's `Transport` over turmoil TCP, and the peer server.
//! - [`rng`]: the seeded generator everything draws from.
//! - [`oracle`]: what clients sent and what they were told.
//! - [`run`]: one run: cluster, workload, nemesis, checkers, trace hash.
//!
//! # Architecture invariants
//! - Nothing here reads the wall clock or the OS RNG, and no container iterated into the
//!   trace is a `HashMap`: the trace hash is a function of the seed.
//! - A run's verdict comes from the checkers, never from the absence of a panic alone.

pub mod disk;
pub mod net;
pub mod oracle;
pub mod rng;
pub mod run;

pub use run::{run, RunConfig, RunReport, Teeth};
