//! Liveness after healing: once every fault is healed and every node restarted, every
//! outstanding client request must get a definitive answer, and every member must reach one
//! applied index (with one state hash, which `replicas` judges).
//!
//! Cannot see: slowness within the bound (a request that takes the whole liveness phase
//! passes); liveness *during* faults (a minority is allowed to stall); the learner, if it is
//! not a member at the end.

use crate::check::Checker;
use crate::world::World;

/// The healed cluster did not finish: `why`.
pub(crate) fn failed(world: &World, why: String) {
    world.violation(Checker::Liveness, why);
}
