//! Auto-batching of single bets on the client side: a gateway's many concurrent `place` calls
//! leave as `POST /v1/bets/batch` requests, each bet still answered on its own.
//!
//! Why: a request costs the nodes about the same whether it carries one bet or two hundred
//! (HTTP, authorization, forwarding, one log entry; BENCHMARKS.md measures 466 µs of cluster
//! CPU for a lone bet against 30 µs per bet in a batch of 200). A gateway that sends every
//! player's bet as its own request pays the first figure.
//!
//! How, the same rule as the node's coalescer (`crates/node/src/coalesce.rs`): up to
//! `in_flight` requests are under way at once. A bet that finds a free slot leaves at once —
//! alone, as a plain `POST /v1/bets`, so an idle gateway adds no delay and no batching wait;
//! bets that arrive while every slot is taken wait and leave together (up to 200) when one
//! frees. Each bet keeps the idempotency key its caller gave, so a batch resent after a lost
//! answer is safe ([`Client::place_bets`] retries it whole; each bet answers from its record).
//!
//! A batch that the API refuses as a whole with 400 (one bet that does not read refuses every
//! bet with it, and a refused batch applies nothing) is split in two and each half sent again,
//! down to the bad bet alone, so one caller's malformed bet fails no one else's and costs a
//! few requests (about two per halving), not one per bet. Every other failure of the batch (no
//! node answered, 503, 429, 401) is every bet's answer, as it would have been for each bet sent
//! alone at that moment.

use crate::{Client, ClientError};
use paddock_api::wire::{BatchBetBody, BatchResultBody, PlaceBetRequest, PlaceBetsRequest, PlacedBody};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, Semaphore};

/// Bets in one `POST /v1/bets/batch`, at most (the API's limit).
pub const BATCH_BETS_MAX: usize = 200;

struct Waiting {
    bet: BatchBetBody,
    answer: oneshot::Sender<Result<PlacedBody, ClientError>>,
}

/// Places bets from many tasks, grouping those that arrive while the client is busy. Cheap to
/// clone; the grouping task ends when the last clone is dropped.
#[derive(Clone)]
pub struct BetBatcher {
    queue: mpsc::Sender<Waiting>,
}

impl Client {
    /// A batcher that sends this client's bets with at most `in_flight` requests under way
    /// (at least 1); bets beyond wait and leave together. Must be called within a tokio
    /// runtime.
    pub fn bet_batcher(&self, in_flight: usize) -> BetBatcher {
        let (queue, waiting) = mpsc::channel(4 * BATCH_BETS_MAX);
        tokio::spawn(run(self.clone(), in_flight.max(1), waiting));
        BetBatcher { queue }
    }
}

impl BetBatcher {
    /// Places one bet, with the caller's idempotency key: the answer `Client::place_bet` would
    /// give for it, whether it left alone or in a batch.
    pub async fn place(&self, bet: PlaceBetRequest, key: &str) -> Result<PlacedBody, ClientError> {
        let (answer, answered) = oneshot::channel();
        let waiting = Waiting { bet: BatchBetBody { idempotency_key: key.to_string(), bet }, answer };
        if self.queue.send(waiting).await.is_err() {
            return Err(ClientError::Config("the bet batcher has stopped".into()));
        }
        answered.await.unwrap_or_else(|_| Err(ClientError::Config("the bet batcher has stopped".into())))
    }
}

async fn run(client: Client, in_flight: usize, mut waiting: mpsc::Receiver<Waiting>) {
    let slots = Arc::new(Semaphore::new(in_flight));
    while let Some(first) = waiting.recv().await {
        // Wait for a free slot first: whatever queues meanwhile leaves with this bet.
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let mut group = vec![first];
        while group.len() < BATCH_BETS_MAX {
            match waiting.try_recv() {
                Ok(next) => group.push(next),
                Err(_) => break,
            }
        }
        let client = client.clone();
        tokio::spawn(async move {
            send_group(client, group).await;
            drop(slot);
        });
    }
}

/// Sends `group` (one bet alone, more as a batch) and answers each of its bets; a group
/// refused whole is halved and each half sent the same way (hence the boxed future).
fn send_group(client: Client, mut group: Vec<Waiting>) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(async move {
        if group.len() == 1 {
            let Waiting { bet, answer } = group.pop().expect("a group of one");
            let _ = answer.send(client.place_bet(&bet.bet, &bet.idempotency_key).await);
            return;
        }
        send_batch(client, group).await;
    })
}

async fn send_batch(client: Client, group: Vec<Waiting>) {
    let (bets, answers): (Vec<BatchBetBody>, Vec<_>) = group.into_iter().map(|w| (w.bet, w.answer)).unzip();
    let request = PlaceBetsRequest { bets };
    match client.place_bets(&request).await {
        Ok(placed) if placed.results.len() == answers.len() => {
            for (answer, result) in answers.into_iter().zip(placed.results) {
                let _ = answer.send(item_answer(result));
            }
        }
        Ok(placed) => {
            let e = ClientError::Decode(format!(
                "a batch of {} bets was answered with {} results",
                answers.len(),
                placed.results.len()
            ));
            for answer in answers {
                let _ = answer.send(Err(e.clone()));
            }
        }
        Err(ClientError::Api { status: 400, .. }) => {
            // Refused whole, nothing applied: some bet does not read. Halve and send again.
            let mut first: Vec<Waiting> =
                request.bets.into_iter().zip(answers).map(|(bet, answer)| Waiting { bet, answer }).collect();
            let second = first.split_off(first.len() / 2);
            send_group(client.clone(), first).await;
            send_group(client, second).await;
        }
        Err(e) => {
            for answer in answers {
                let _ = answer.send(Err(e.clone()));
            }
        }
    }
}

/// One bet's result in a batch, as `POST /v1/bets` would have answered it.
fn item_answer(result: BatchResultBody) -> Result<PlacedBody, ClientError> {
    match (result.placed, result.error) {
        (Some(placed), _) if result.status == 201 => Ok(placed),
        (_, Some(error)) => Err(ClientError::Api { status: result.status, code: error.code, message: error.message }),
        _ => Err(ClientError::Decode(format!(
            "the batch result for key {} has status {} and neither a bet nor an error",
            result.idempotency_key, result.status
        ))),
    }
}
