//! Whole-state invariant checks (RELIABILITY.md invariants 1, 2 and 6, and the ledger's own
//! bookkeeping). Tests run them after every command; nodes run them after loading a snapshot.

use crate::ids::{AccountId, BetId};
use crate::state::{BetStatus, State};
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
        for (id, bet) in &self.bets {
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
        self.check_bet_index()?;
        for (id, acc) in &self.accounts {
            if acc.wallet.0 < 0 || acc.reserved.0 < 0 {
                return Err(format!("account {id} negative: wallet {} reserved {}", acc.wallet, acc.reserved));
            }
            if acc.debt.0 > 0 {
                return Err(format!("account {id} debt positive: {}", acc.debt));
            }
            if acc.debt.0 < 0 && acc.wallet.0 > 0 {
                return Err(format!("account {id} holds {} while owing {}", acc.wallet, acc.debt));
            }
            let expect = reserved.get(id).copied().unwrap_or(0);
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
    /// as one sort and one walk rather than a lookup of each bet's account: on a book of 10M
    /// bets the lookups were most of the time a node took to load a snapshot.
    fn check_bet_index(&self) -> Result<(), String> {
        let mut indexed: Vec<(BetId, AccountId)> = Vec::with_capacity(self.bets.len());
        for (account, acc) in &self.accounts {
            if acc.bets.windows(2).any(|w| w[0] >= w[1]) {
                return Err(format!("the bet index of account {account} is not in placement order"));
            }
            indexed.extend(acc.bets.iter().map(|bet| (*bet, *account)));
        }
        if indexed.len() != self.bets.len() {
            return Err(format!("account bet index holds {} bets, the book {}", indexed.len(), self.bets.len()));
        }
        indexed.sort_unstable();
        for ((id, bet), (indexed_id, account)) in self.bets.iter().zip(&indexed) {
            if id != indexed_id || bet.account != *account {
                return Err(format!("bet {id} missing from the index of account {}", bet.account));
            }
        }
        Ok(())
    }
}
