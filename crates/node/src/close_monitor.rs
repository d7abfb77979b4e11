//! The independent monitor of R4 (DOMAIN.md): no bet is accepted after its market closed.
//!
//! The ledger refuses such a bet itself; this monitor checks that it did, without using the
//! ledger's rules. It follows the stream of applied commands on every node and keeps its own
//! view of each market: open or not (from the create, suspend, resume, close, settle and void
//! commands that took effect) and its scheduled close (`closes_at`). Every bet the ledger
//! accepts is checked against that view at the leader timestamp of the accepting command:
//! each leg's market must be open and the time before its close. A bet that fails counts in
//! `paddock_bets_after_close_total` (the alert `PaddockBetAfterClose` pages on the first one)
//! and is logged with its id — a bug in the ledger, or in this monitor, for a person to read.
//!
//! A delayed (in-play) bet is accepted later, by a `ResolvePending` whose outcome gives counts,
//! not ids: the monitor learns which of its pending bets were accepted by reading their status,
//! which is exact only while the node's state is still at that command. When the state has
//! already moved on, those bets are not judged and are counted in
//! `paddock_close_monitor_skipped_total`, as are commands the monitor missed because it fell
//! behind the stream (it then starts again from the state).

use paddock_consensus::AppliedEvent;
use paddock_ledger::{BetId, BetStatus, Command, Done, MarketId, MarketStatus, Outcome, State, TimestampMs};
use std::collections::{BTreeMap, HashMap};

/// One market as the monitor sees it.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Market {
    open: bool,
    closes_at: Option<TimestampMs>,
}

/// A bet accepted where the monitor says it must not have been.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Violation {
    pub bet: BetId,
    pub market: MarketId,
    pub at: TimestampMs,
    pub log_index: u64,
    /// Why, in words: "the market was not open" or "the market closes at ...".
    pub why: String,
}

/// The monitor's own view of the book.
pub(crate) struct CloseMonitor {
    markets: HashMap<MarketId, Market>,
    /// Bets placed before this id are known; an accepted bet below it is a replay.
    next_bet: BetId,
    /// Delayed bets waiting for their in-play delay, with their markets.
    pending: BTreeMap<BetId, Vec<MarketId>>,
    /// The book's clock as the ledger keeps it: the latest leader timestamp.
    clock: TimestampMs,
    /// Log index the view is at.
    pub index: u64,
    /// Bets judged.
    pub checked: u64,
    /// Bets or commands that could not be judged.
    pub skipped: u64,
}

impl CloseMonitor {
    /// A view of the book as `state` holds it after log index `index`.
    pub(crate) fn seeded(state: &State, index: u64) -> CloseMonitor {
        let markets = state
            .market_ids()
            .into_iter()
            .filter_map(|id| state.market(id))
            .map(|m| (m.market, Market { open: m.status == MarketStatus::Open, closes_at: m.rules.closes_at }))
            .collect();
        CloseMonitor {
            markets,
            next_bet: state.next_bet_id(),
            pending: BTreeMap::new(),
            clock: state.clock(),
            index,
            checked: 0,
            skipped: 0,
        }
    }

    /// Follows one applied command. `statuses` is asked only for a `ResolvePending` that decided
    /// bets this monitor holds as pending: the status of each, read from the node's state while
    /// it is still at this event, or `None` if it has moved on. (Only then is the state lock
    /// taken: the monitor must not contend with apply for every entry.)
    pub(crate) fn observe(
        &mut self,
        event: &AppliedEvent,
        statuses: impl FnOnce(&[BetId]) -> Option<Vec<Option<BetStatus>>>,
    ) -> Vec<Violation> {
        if event.index <= self.index {
            return Vec::new(); // already in the seeded view
        }
        self.index = event.index;
        self.clock = self.clock.max(event.time);
        let at = self.clock;
        let mut violations = Vec::new();
        let took_effect = matches!(event.outcome, Outcome::Done(_)) && !event.replayed;
        match (&event.command, &event.outcome) {
            (Command::CreateMarket { market, rules, .. }, _) if took_effect => {
                self.markets.insert(*market, Market { open: true, closes_at: rules.closes_at });
            }
            (Command::SuspendMarket { market, .. }, _)
            | (Command::CloseMarket { market, .. }, _)
            | (Command::SettleMarket { market, .. }, _)
            | (Command::ResettleMarket { market, .. }, _)
            | (Command::VoidMarket { market, .. }, _)
                if took_effect =>
            {
                self.markets.entry(*market).and_modify(|m| m.open = false);
            }
            (Command::ResumeMarket { market, .. }, _) if took_effect => {
                self.markets.entry(*market).and_modify(|m| m.open = true);
            }
            (Command::PlaceBet(bet), outcome) => self.placed(bet, outcome, event.index, at, &mut violations),
            (Command::PlaceBets(bets), Outcome::Done(Done::BetsPlaced(items))) => {
                for (bet, item) in bets.iter().zip(items) {
                    self.placed(bet, &item.outcome, event.index, at, &mut violations);
                }
            }
            (Command::ResolvePending, Outcome::Done(Done::Resolved { accepted, rejected })) => {
                if (*accepted == 0 && *rejected == 0) || self.pending.is_empty() {
                    return violations;
                }
                let bets: Vec<BetId> = self.pending.keys().copied().collect();
                let Some(statuses) = statuses(&bets) else {
                    // The state has moved on: a bet accepted now may have been accepted by a
                    // later ResolvePending, at another time. Not judged rather than misjudged.
                    self.skipped += self.pending.len() as u64;
                    self.pending.clear();
                    return violations;
                };
                for (bet, status) in bets.into_iter().zip(statuses) {
                    let Some(status) = status.filter(|s| *s != BetStatus::Pending) else { continue };
                    let markets = self.pending.remove(&bet).expect("listed from pending");
                    if !matches!(status, BetStatus::Rejected(_)) {
                        self.judge(bet, &markets, event.index, at, &mut violations);
                    }
                }
            }
            _ => {}
        }
        violations
    }

    /// Starts again from `state` after missing commands.
    pub(crate) fn resync(&mut self, state: &State, index: u64, missed: u64) {
        let (checked, skipped) = (self.checked, self.skipped);
        *self = CloseMonitor::seeded(state, index);
        self.checked = checked;
        self.skipped = skipped + missed;
    }

    fn placed(
        &mut self,
        bet: &paddock_ledger::PlaceBet,
        outcome: &Outcome,
        index: u64,
        at: TimestampMs,
        violations: &mut Vec<Violation>,
    ) {
        let markets: Vec<MarketId> = bet.legs.iter().map(|l| l.market).collect();
        match outcome {
            Outcome::Done(Done::BetAccepted { bet: id, .. }) if *id >= self.next_bet => {
                self.next_bet = BetId(id.0 + 1);
                self.judge(*id, &markets, index, at, violations);
            }
            Outcome::Done(Done::BetPending { bet: id, .. }) if *id >= self.next_bet => {
                self.next_bet = BetId(id.0 + 1);
                self.pending.insert(*id, markets);
            }
            _ => {} // refused, or the answer remembered for a retried key
        }
    }

    fn judge(&mut self, bet: BetId, markets: &[MarketId], log_index: u64, at: TimestampMs, out: &mut Vec<Violation>) {
        self.checked += 1;
        for market in markets {
            let why = match self.markets.get(market) {
                None => Some("the market was unknown to the monitor".to_string()),
                Some(m) if !m.open => Some("the market was not open".to_string()),
                Some(Market { closes_at: Some(close), .. }) if at >= *close => {
                    Some(format!("the market closed at {} ms", close.0))
                }
                Some(_) => None,
            };
            if let Some(why) = why {
                out.push(Violation { bet, market: *market, at, log_index, why });
            }
        }
    }
}

/// Runs the monitor until the node stops.
pub(crate) async fn run(app: crate::App, mut stop: tokio::sync::watch::Receiver<bool>) {
    use tokio::sync::broadcast::error::RecvError;
    let mut events = app.consensus.subscribe();
    let mut monitor = app.consensus.read(|d| CloseMonitor::seeded(&d.state, d.last_applied.map_or(0, |l| l.index)));
    let (mut checked, mut skipped) = (0, 0);
    loop {
        let event = tokio::select! {
            e = events.recv() => e,
            _ = stop.changed() => return,
        };
        let violations = match event {
            Ok(event) => monitor.observe(&event, |bets| {
                app.consensus.read(|d| {
                    (d.last_applied.map_or(0, |l| l.index) == event.index)
                        .then(|| bets.iter().map(|b| d.state.bet(*b).map(|v| v.status)).collect())
                })
            }),
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(
                    missed,
                    "the close monitor fell behind the applied commands; it starts again from the state"
                );
                app.consensus.read(|d| monitor.resync(&d.state, d.last_applied.map_or(0, |l| l.index), missed));
                Vec::new()
            }
            Err(RecvError::Closed) => return,
        };
        for v in violations {
            metrics::counter!("paddock_bets_after_close_total").increment(1);
            tracing::error!(
                bet = v.bet.0,
                market = v.market.0,
                at_ms = v.at.0,
                log_index = v.log_index,
                why = %v.why,
                "R4 broken: a bet was accepted after its market closed"
            );
        }
        metrics::counter!("paddock_close_monitor_bets_checked_total").increment(monitor.checked - checked);
        metrics::counter!("paddock_close_monitor_skipped_total").increment(monitor.skipped - skipped);
        (checked, skipped) = (monitor.checked, monitor.skipped);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use paddock_ledger::{
        AccountId, Actor, ApplyCtx, BetKind, Currency, EventId, IdempotencyKey, LegRequest, MarketRules, Money,
        NewSelection, Odds, OddsPolicy, PlaceBet, SelectionId,
    };

    const T0: u64 = 1_700_000_000_000;

    /// A book applied the way the replicated log applies it, each command's event kept.
    struct Log {
        state: State,
        index: u64,
        events: Vec<AppliedEvent>,
    }

    impl Log {
        fn new() -> Log {
            Log { state: State::default(), index: 0, events: Vec::new() }
        }

        fn run(&mut self, command: Command, at_ms: u64) -> Outcome {
            self.index += 1;
            let ctx = ApplyCtx { log_index: self.index, time: TimestampMs(T0 + at_ms) };
            let applied = paddock_ledger::apply_noting_replay(&mut self.state, &command, ctx);
            self.events.push(AppliedEvent {
                index: self.index,
                time: ctx.time,
                command,
                outcome: applied.outcome.clone(),
                replayed: applied.replayed,
            });
            applied.outcome
        }

        /// An accepted bet the ledger did not make: what a broken ledger would have applied.
        fn forged_acceptance(&mut self, bet: PlaceBet, id: u64, at_ms: u64) {
            self.index += 1;
            self.events.push(AppliedEvent {
                index: self.index,
                time: TimestampMs(T0 + at_ms),
                command: Command::PlaceBet(bet),
                outcome: Outcome::Done(Done::BetAccepted {
                    bet: BetId(id),
                    odds: vec![odds()],
                    stake: Money(100),
                    balance: Money(0),
                }),
                replayed: false,
            });
        }

        /// Every event, through a monitor started on an empty book; the violations found.
        fn judged(&self) -> (Vec<Violation>, CloseMonitor) {
            let mut monitor = CloseMonitor::seeded(&State::default(), 0);
            // As a node whose state has moved past every event (a delayed bet is not judged).
            let violations = self.events.iter().flat_map(|e| monitor.observe(e, |_| None)).collect();
            (violations, monitor)
        }
    }

    fn key(text: &str) -> IdempotencyKey {
        IdempotencyKey(text.to_string())
    }

    fn odds() -> Odds {
        Odds::parse("2/1").expect("valid odds")
    }

    fn gbp() -> Currency {
        Currency::parse("GBP").expect("valid currency")
    }

    /// A funded account 1 and market 10 (closing at `closes_at_ms` if given), open.
    fn book(closes_at_ms: Option<u64>) -> Log {
        book_with_delay(closes_at_ms, 0)
    }

    /// As [`book`], with an in-play delay.
    fn book_with_delay(closes_at_ms: Option<u64>, bet_delay_ms: u64) -> Log {
        let mut log = Log::new();
        log.run(Command::OpenAccount { account: AccountId(1), currency: gbp(), key: key("open") }, 0);
        log.run(Command::Deposit { account: AccountId(1), amount: Money(1_000_000), key: key("deposit") }, 0);
        log.run(
            Command::CreateEvent {
                event: EventId(1),
                name: "Race".into(),
                sport: "horse racing".into(),
                competition: "Meeting".into(),
                starts_at: TimestampMs(T0 + 3_600_000),
                actor: Actor("trader".into()),
                key: key("event"),
            },
            0,
        );
        let outcome = log.run(
            Command::CreateMarket {
                market: MarketId(10),
                event: EventId(1),
                name: "Win".into(),
                currency: gbp(),
                selections: vec![NewSelection { selection: SelectionId(1), name: "Runner".into(), odds: odds() }],
                rules: MarketRules {
                    stake_min: Money(1),
                    stake_max: Money(1_000_000),
                    payout_max: Money(100_000_000),
                    liability_max: Money(100_000_000),
                    bet_delay_ms,
                    closes_at: closes_at_ms.map(|ms| TimestampMs(T0 + ms)),
                    each_way: None,
                },
                actor: Actor("trader".into()),
                key: key("market"),
            },
            0,
        );
        assert!(matches!(outcome, Outcome::Done(_)), "the market is created");
        log
    }

    fn bet(k: &str) -> PlaceBet {
        PlaceBet {
            account: AccountId(1),
            legs: vec![LegRequest { market: MarketId(10), selection: SelectionId(1), odds: odds() }],
            kind: BetKind::Single,
            stake_per_line: Money(100),
            each_way: false,
            odds_policy: OddsPolicy::Exact,
            key: key(k),
        }
    }

    #[test]
    fn bets_the_ledger_accepts_before_the_close_and_refuses_after_it_raise_nothing() {
        let mut log = book(Some(60_000));
        assert!(matches!(log.run(Command::PlaceBet(bet("a")), 1_000), Outcome::Done(Done::BetAccepted { .. })));
        log.run(
            Command::SuspendMarket {
                market: MarketId(10),
                reason: "goal".into(),
                actor: Actor("trader".into()),
                key: key("s"),
            },
            2_000,
        );
        assert!(matches!(log.run(Command::PlaceBet(bet("b")), 3_000), Outcome::Rejected(_)));
        log.run(Command::ResumeMarket { market: MarketId(10), actor: Actor("trader".into()), key: key("r") }, 4_000);
        assert!(matches!(log.run(Command::PlaceBet(bet("c")), 5_000), Outcome::Done(Done::BetAccepted { .. })));
        // A retry of the first bet's key after the close is the remembered answer, not a new bet.
        log.run(Command::CloseMarket { market: MarketId(10), actor: Actor("trader".into()), key: key("x") }, 6_000);
        log.run(Command::PlaceBet(bet("a")), 7_000);
        assert!(matches!(log.run(Command::PlaceBet(bet("d")), 8_000), Outcome::Rejected(_)));
        let (violations, monitor) = log.judged();
        assert!(
            violations.is_empty(),
            "no violation: {}",
            violations.iter().map(|v| v.why.clone()).collect::<Vec<_>>().join("; ")
        );
        assert_eq!(monitor.checked, 2, "both accepted bets were judged, the replay was not");
    }

    #[test]
    fn a_delayed_bet_is_judged_when_its_resolution_is_applied_and_skipped_if_the_state_moved_on() {
        let mut log = book_with_delay(None, 2_000);
        assert!(matches!(log.run(Command::PlaceBet(bet("delayed")), 1_000), Outcome::Done(Done::BetPending { .. })));
        let resolved = log.run(Command::ResolvePending, 4_000);
        assert_eq!(resolved, Outcome::Done(Done::Resolved { accepted: 1, rejected: 0 }));
        let state_at_resolution =
            |bets: &[BetId]| Some(bets.iter().map(|b| log.state.bet(*b).map(|v| v.status)).collect());
        let mut monitor = CloseMonitor::seeded(&State::default(), 0);
        let violations: Vec<Violation> =
            log.events.iter().flat_map(|e| monitor.observe(e, state_at_resolution)).collect();
        assert!(violations.is_empty());
        assert_eq!((monitor.checked, monitor.skipped), (1, 0), "judged at its resolution");

        let (_, moved_on) = log.judged();
        assert_eq!((moved_on.checked, moved_on.skipped), (0, 1), "not judged rather than misjudged");
    }

    #[test]
    fn a_bet_accepted_after_the_market_was_closed_is_caught() {
        let mut log = book(None);
        log.run(Command::CloseMarket { market: MarketId(10), actor: Actor("trader".into()), key: key("x") }, 1_000);
        let next = log.state.next_bet_id().0;
        log.forged_acceptance(bet("late"), next, 2_000);
        let (violations, _) = log.judged();
        assert_eq!(violations.len(), 1, "the forged acceptance is caught");
        assert_eq!((violations[0].bet, violations[0].market), (BetId(next), MarketId(10)));
        assert_eq!(violations[0].why, "the market was not open");
    }

    #[test]
    fn a_bet_accepted_at_or_after_the_scheduled_close_is_caught_even_while_the_market_is_open() {
        let mut log = book(Some(60_000));
        let next = log.state.next_bet_id().0;
        log.forged_acceptance(bet("at-close"), next, 60_000);
        let (violations, _) = log.judged();
        assert_eq!(violations.len(), 1, "a bet at the closing instant is after the close");
        assert!(violations[0].why.starts_with("the market closed at"), "{}", violations[0].why);
    }

    #[test]
    fn a_monitor_started_on_a_running_book_knows_its_markets() {
        let mut log = book(None);
        log.run(
            Command::SuspendMarket {
                market: MarketId(10),
                reason: "goal".into(),
                actor: Actor("trader".into()),
                key: key("s"),
            },
            1_000,
        );
        let mut monitor = CloseMonitor::seeded(&log.state, log.index);
        let next = log.state.next_bet_id().0;
        log.forged_acceptance(bet("while-suspended"), next, 2_000);
        let event = log.events.last().expect("an event");
        let violations = monitor.observe(event, |_| None);
        assert_eq!(violations.len(), 1, "the suspension before the monitor started is known to it");
    }
}
