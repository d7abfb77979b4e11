//! Coalescing of single-bet requests: bets that arrive while the node already has
//! [`IN_FLIGHT_MAX`] bet writes under way wait, and leave together as one `PlaceBets` entry.
//!
//! Why: each log entry costs the whole path once (a forward to the leader, an append, a
//! replication round, an apply under the state lock, the answer), whatever it carries; under
//! load, most of a single bet's CPU is that per-entry cost. When the node is not busy a bet
//! leaves at once, alone, as `PlaceBet` (no waiting, no batching delay); only bets that would
//! otherwise queue behind the writes in flight are grouped, so latency never grows by more
//! than one round. Each bet keeps its own idempotency key and its own answer: the ledger
//! applies a batch bet by bet, exactly as it applies the bets one by one
//! (`crates/ledger/tests/batch.rs`).

use paddock_consensus::{Consensus, WriteError, Written};
use paddock_ledger::{BatchItem, Command, Done, Outcome, PlaceBet, BETS_PER_BATCH_MAX};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, Semaphore};

/// Bet writes (single or coalesced) a node keeps under way at once; bets beyond wait and are
/// grouped. Four keeps the replication pipeline full on a 3-node cluster without letting a
/// burst become hundreds of one-bet entries.
pub(crate) const IN_FLIGHT_MAX: usize = 4;

/// Bets waiting for a write slot, at most; beyond, a bet waits to be queued (backpressure).
const QUEUE_MAX: usize = 4 * BETS_PER_BATCH_MAX;

/// One bet's answer: as `Consensus::write` would have given it for the bet alone.
pub(crate) type BetAnswer = Result<Written, WriteError>;

struct Waiting {
    bet: PlaceBet,
    answer: oneshot::Sender<BetAnswer>,
}

/// The node's bet coalescer: cheap to clone, one task behind it.
#[derive(Clone)]
pub(crate) struct Coalescer {
    queue: mpsc::Sender<Waiting>,
}

impl Coalescer {
    /// Starts the coalescing task; it ends when every handle is dropped.
    pub(crate) fn start(consensus: Consensus) -> Coalescer {
        let (queue, waiting) = mpsc::channel(QUEUE_MAX);
        tokio::spawn(run(consensus, waiting));
        Coalescer { queue }
    }

    /// Places one bet, alone or with others waiting at the same time.
    pub(crate) async fn place(&self, bet: PlaceBet) -> BetAnswer {
        let (answer, answered) = oneshot::channel();
        if self.queue.send(Waiting { bet, answer }).await.is_err() {
            return Err(WriteError::Stopped("the node is shutting down".into()));
        }
        answered.await.unwrap_or_else(|_| Err(WriteError::Stopped("the node is shutting down".into())))
    }
}

async fn run(consensus: Consensus, mut waiting: mpsc::Receiver<Waiting>) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT_MAX));
    while let Some(first) = waiting.recv().await {
        // Wait for a free slot first: what queues meanwhile leaves with this bet.
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let mut group = vec![first];
        while group.len() < BETS_PER_BATCH_MAX {
            match waiting.try_recv() {
                Ok(next) => group.push(next),
                Err(_) => break,
            }
        }
        let consensus = consensus.clone();
        tokio::spawn(async move {
            write_group(&consensus, group).await;
            drop(slot);
        });
    }
}

/// Writes `group` as one entry and hands each bet its answer.
async fn write_group(consensus: &Consensus, mut group: Vec<Waiting>) {
    if group.len() == 1 {
        // Alone: a plain PlaceBet, as if there were no coalescing.
        let Waiting { bet, answer } = group.pop().expect("a group of one");
        let _ = answer.send(consensus.write(Command::PlaceBet(bet)).await);
        return;
    }
    metrics::counter!("paddock_bets_coalesced_total").increment(group.len() as u64);
    let (bets, answers): (Vec<PlaceBet>, Vec<oneshot::Sender<BetAnswer>>) =
        group.into_iter().map(|w| (w.bet, w.answer)).unzip();
    match consensus.write(Command::PlaceBets(bets)).await {
        Ok(Written { outcome: Outcome::Done(Done::BetsPlaced(items)), log_index, .. })
            if items.len() == answers.len() =>
        {
            for (sender, BatchItem { outcome, replayed }) in answers.into_iter().zip(items) {
                let _ = sender.send(Ok(Written { outcome, log_index, replayed }));
            }
        }
        Ok(_) => {
            // The ledger answered a batch with something else: a bug; no bet is told it stands.
            tracing::error!("unexpected ledger answer to a coalesced batch: not one answer per bet");
            for sender in answers {
                let _ = sender.send(Err(WriteError::Unknown("unexpected answer from the ledger".into())));
            }
        }
        Err(e) => {
            for sender in answers {
                let _ = sender.send(Err(e.clone()));
            }
        }
    }
}
