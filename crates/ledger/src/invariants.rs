//! Whole-state invariant checks (RELIABILITY.md invariants 1, 2 and 6, and the ledger's own
//! bookkeeping). Tests run them after every command; nodes run them after loading a snapshot.

use crate::ids::{AccountId, BetId};
use crate::state::{Bet, BetStatus, State};
use std::collections::BTreeMap;

impl State {
    /// Checks every invariant; the error names the first one broken.
    pub fn check_invariants(&self) -> Result<(), String> {
        for (currency, total) in self.currency_totals() {
            if total != 0 {
                return Err(format!("money not conserved in {currency}: accounts sum to {total}"));
            }
        }
        let mut reserved: BTreeMap<_, i128> = BTreeMap::new();
        let mut liability: BTreeMap<_, i128> = BTreeMap::new();
        let bets = self.bets.sorted();
        for &(id, bet) in &bets {
            let net = i64::from(bet.settle_count) - i64::from(bet.reverse_count);
            let settled = bet.status == BetStatus::Settled;
            if net != i64::from(settled) {
                return Err(format!(
                    "bet {id} settled {} reversed {} but status {}",
                    bet.settle_count,
                    bet.reverse_count,
                    bet.status.as_str()
                ));
            }
            if matches!(bet.status, BetStatus::Pending | BetStatus::Open) {
                *reserved.entry(bet.account).or_default() += i128::from(bet.stake.0);
            }
            if bet.status == BetStatus::Open {
                for leg in &bet.legs {
                    *liability.entry(leg.selection).or_default() += i128::from(bet.potential_win.0);
                }
            }
        }
        self.check_bet_index(&bets)?;
        for (id, acc) in self.accounts.sorted() {
            if acc.wallet.0 < 0 || acc.reserved.0 < 0 {
                return Err(format!("account {id} negative: wallet {} reserved {}", acc.wallet, acc.reserved));
            }
            if acc.debt.0 > 0 {
                return Err(format!("account {id} debt positive: {}", acc.debt));
            }
            if acc.debt.0 < 0 && acc.wallet.0 > 0 {
                return Err(format!("account {id} holds {} while owing {}", acc.wallet, acc.debt));
            }
            let expect = reserved.get(&id).copied().unwrap_or(0);
            if i128::from(acc.reserved.0) != expect {
                return Err(format!("account {id} reserved {} but open stakes {expect}", acc.reserved));
            }
        }
        for (mid, m) in &self.markets {
            for (sid, s) in &m.selections {
                let expect = liability.get(sid).copied().unwrap_or(0);
                if i128::from(s.liability.0) != expect {
                    return Err(format!(
                        "market {mid} selection {sid} liability {} but open bets {expect}",
                        s.liability
                    ));
                }
            }
        }
        if let Err(seq) = self.audit.verify() {
            return Err(format!("audit chain broken at record {seq}"));
        }
        let mut open = std::collections::BTreeSet::new();
        for (id, incident) in &self.incidents.records {
            if id.0 == 0 || id.0 > self.incidents.next {
                return Err(format!("incident {id} is outside 1..={}", self.incidents.next));
            }
            if incident.closed.is_none() && !open.insert((incident.kind, incident.node)) {
                return Err(format!("two open incidents of kind {} on node {}", incident.kind.as_str(), incident.node));
            }
        }
        Ok(())
    }

    /// Every bet is in its own account's index, once, and the indexes hold nothing else. Done
    /// as one sort of the indexes and one walk beside `bets` (the book's bets in id order)
    /// rather than a lookup of each bet's account: 0.1 s instead of 0.4 s for 1M bets
    /// (BENCHMARKS.md).
    fn check_bet_index(&self, bets: &[(BetId, &Bet)]) -> Result<(), String> {
        let mut indexed: Vec<(BetId, AccountId)> = Vec::with_capacity(self.bets.len());
        for (account, acc) in self.accounts.sorted() {
            if acc.bets.windows(2).any(|w| w[0] >= w[1]) {
                return Err(format!("the bet index of account {account} is not in placement order"));
            }
            indexed.extend(acc.bets.iter().map(|bet| (*bet, account)));
        }
        if indexed.len() != self.bets.len() {
            return Err(format!("account bet index holds {} bets, the book {}", indexed.len(), self.bets.len()));
        }
        indexed.sort_unstable();
        for (&(id, bet), &(indexed_id, account)) in bets.iter().zip(&indexed) {
            if indexed_id < id {
                return Err(format!(
                    "the bet index of account {account} holds bet {indexed_id} where the book has bet {id}: \
                     a bet indexed twice or not in the book"
                ));
            }
            if indexed_id > id || bet.account != account {
                return Err(format!("bet {id} missing from the index of account {}", bet.account));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::command::{BetKind, Command, LegRequest, MarketRules, NewSelection, OddsPolicy, PlaceBet};
    use crate::ids::{AccountId, Actor, Currency, EventId, IdempotencyKey, MarketId, SelectionId, TimestampMs};
    use crate::money::{Money, Odds};
    use crate::{apply, ApplyCtx, State};

    /// A book with two accounts holding two open bets each: bets 1 and 3 on account 1, 2 and 4
    /// on account 2.
    fn book_with_bets() -> State {
        let mut state = State::new();
        let mut index = 0;
        let mut run = |state: &mut State, command: Command| {
            index += 1;
            let outcome = apply(state, &command, ApplyCtx { log_index: index, time: TimestampMs(1_700_000_000_000) });
            assert!(outcome.is_done(), "command {index} is refused");
        };
        let key = |text: &str| IdempotencyKey(text.to_string());
        let gbp = Currency::parse("GBP").expect("a currency");
        let operator = Actor("trader".into());
        run(
            &mut state,
            Command::CreateEvent {
                event: EventId(1),
                name: "Arsenal v Spurs".into(),
                sport: "football".into(),
                competition: "league".into(),
                starts_at: TimestampMs(0),
                actor: operator.clone(),
                key: key("event"),
            },
        );
        let rules = MarketRules {
            stake_min: Money(10),
            stake_max: Money(1_000_000),
            payout_max: Money(100_000_000),
            liability_max: Money(i64::MAX / 4),
            bet_delay_ms: 0,
            closes_at: None,
            each_way: None,
        };
        let odds = Odds::parse("2.5").expect("odds");
        let selections =
            (1..=2).map(|s| NewSelection { selection: SelectionId(s), name: format!("s{s}"), odds }).collect();
        run(
            &mut state,
            Command::CreateMarket {
                market: MarketId(1),
                event: EventId(1),
                name: "match result".into(),
                currency: gbp,
                selections,
                rules,
                actor: operator,
                key: key("market"),
            },
        );
        for account in 1..=2 {
            run(
                &mut state,
                Command::OpenAccount {
                    account: AccountId(account),
                    currency: gbp,
                    key: key(&format!("open-{account}")),
                },
            );
            run(
                &mut state,
                Command::Deposit {
                    account: AccountId(account),
                    amount: Money(10_000),
                    key: key(&format!("deposit-{account}")),
                },
            );
        }
        for bet in 1..=4u64 {
            let place = PlaceBet {
                account: AccountId(2 - bet % 2),
                legs: vec![LegRequest { market: MarketId(1), selection: SelectionId(1), odds }],
                kind: BetKind::Single,
                stake_per_line: Money(100),
                each_way: false,
                odds_policy: OddsPolicy::Any,
                key: key(&format!("bet-{bet}")),
            };
            run(&mut state, Command::PlaceBet(place));
        }
        state
    }

    #[test]
    fn a_bet_index_that_is_not_the_books_is_named() {
        let good = book_with_bets();
        assert_eq!(good.check_invariants(), Ok(()));
        assert_eq!(good.accounts[&AccountId(1)].bets.len(), 2);

        let mut missing = good.clone();
        missing.accounts.get_mut(&AccountId(1)).expect("account 1").bets.retain(|b| b.0 != 3);
        assert_eq!(missing.check_invariants(), Err("account bet index holds 3 bets, the book 4".into()));

        let mut moved = good.clone();
        moved.accounts.get_mut(&AccountId(1)).expect("account 1").bets.retain(|b| b.0 != 3);
        moved.accounts.get_mut(&AccountId(2)).expect("account 2").bets.push(crate::ids::BetId(3));
        moved.accounts.get_mut(&AccountId(2)).expect("account 2").bets.sort();
        assert_eq!(moved.check_invariants(), Err("bet 3 missing from the index of account 1".into()));

        let mut twice = good.clone();
        let account_1 = twice.accounts.get_mut(&AccountId(1)).expect("account 1");
        account_1.bets = vec![crate::ids::BetId(1), crate::ids::BetId(1)];
        let account_2 = twice.accounts.get_mut(&AccountId(2)).expect("account 2");
        account_2.bets.push(crate::ids::BetId(9));
        assert_eq!(
            twice.check_invariants(),
            Err("the bet index of account 1 is not in placement order".into()),
            "an account's index repeating a bet is out of order"
        );

        let mut stray = good.clone();
        let account_1 = stray.accounts.get_mut(&AccountId(1)).expect("account 1");
        account_1.bets = vec![crate::ids::BetId(1)];
        let account_2 = stray.accounts.get_mut(&AccountId(2)).expect("account 2");
        account_2.bets = vec![crate::ids::BetId(0), crate::ids::BetId(2), crate::ids::BetId(4)];
        assert_eq!(
            stray.check_invariants(),
            Err("the bet index of account 2 holds bet 0 where the book has bet 1: a bet indexed twice or not in the book"
                .into())
        );
    }
}
