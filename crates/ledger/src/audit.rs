//! The audit trail: significant events, hash-chained so that any edit, insertion or removal
//! shows (DOMAIN.md R5).
//!
//! Each record's hash is SHA-256 over the previous hash and the record's encoded body, so a
//! verifier needs only the records themselves. Bets and price changes are not audited here:
//! they are in the bet records and the replicated log; the trail holds operator decisions.

use crate::command::{ExclusionKind, LimitKind, LimitWindow};
use crate::ids::{AccountId, Actor, BetId, EventId, MarketId, SelectionId, TimestampMs};
use crate::money::Money;
use crate::state::MarketStatus;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What happened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuditEvent {
    /// An event was created.
    EventCreated {
        /// The event.
        event: EventId,
    },
    /// A market was created (and opened).
    MarketCreated {
        /// The market.
        market: MarketId,
    },
    /// A market changed state.
    MarketStatusChanged {
        /// The market.
        market: MarketId,
        /// Before.
        from: MarketStatus,
        /// After.
        to: MarketStatus,
        /// Operator's reason, if given.
        reason: String,
    },
    /// A runner was withdrawn with a Rule 4 deduction.
    SelectionWithdrawn {
        /// The market.
        market: MarketId,
        /// The runner.
        selection: SelectionId,
        /// Pence in the pound.
        deduction_pence: u32,
    },
    /// Results were applied.
    MarketSettled {
        /// The market.
        market: MarketId,
        /// 1 for the first settlement, more for each correction.
        result_version: u32,
        /// Bets settled or changed.
        bets_settled: u32,
        /// Net amount moved from the house to players by this settlement (negative if back).
        paid_net: Money,
        /// Why, for a resettlement or void.
        reason: String,
    },
    /// A responsible-gambling limit was set or scheduled.
    LimitChanged {
        /// Account.
        account: AccountId,
        /// Deposit or loss.
        kind: LimitKind,
        /// Window.
        window: LimitWindow,
        /// The new amount (`None` = no limit).
        amount: Option<Money>,
        /// When it applies (later than now for an increase).
        effective_at: TimestampMs,
    },
    /// Self-exclusion or time-out.
    Excluded {
        /// Account.
        account: AccountId,
        /// Kind of break.
        kind: ExclusionKind,
        /// Until when.
        until: TimestampMs,
    },
    /// An account's stake factor changed.
    StakeFactorChanged {
        /// Account.
        account: AccountId,
        /// New factor.
        factor_permille: u32,
    },
    /// Book configuration changed.
    ConfigChanged,
    /// A principal was created.
    PrincipalCreated {
        /// Its name.
        principal: String,
        /// Its role.
        role: crate::auth::Role,
        /// Accounts bound to it.
        accounts: Vec<AccountId>,
    },
    /// A bettor was given an account.
    AccountBound {
        /// The bettor.
        principal: String,
        /// The account.
        account: AccountId,
    },
    /// An API key was issued (its digest is not recorded here).
    KeyIssued {
        /// Owner.
        principal: String,
        /// Public id.
        key: crate::auth::KeyId,
        /// When it stops working, if ever.
        expires_at: Option<TimestampMs>,
    },
    /// An API key was revoked.
    KeyRevoked {
        /// Owner.
        principal: String,
        /// Public id.
        key: crate::auth::KeyId,
    },
    /// An incident was opened.
    IncidentOpened {
        /// Its number.
        incident: crate::incident::IncidentId,
        /// What kind of failure.
        kind: crate::incident::IncidentKind,
        /// The node it touched (0: not one node).
        node: u64,
    },
    /// An incident was closed.
    IncidentClosed {
        /// Its number.
        incident: crate::incident::IncidentId,
    },
    /// Bet ids were reserved after a disaster-recovery promotion: the next bet gets `to`
    /// instead of `from`.
    BetIdsReserved {
        /// The id the next bet would have got.
        from: BetId,
        /// The id it gets now.
        to: BetId,
        /// Why, in words.
        reason: String,
    },
    /// Settled history left the hot state for an archive segment (named by this record's log
    /// index); `digest` is what every copy of the segment must hash to.
    HistoryArchived {
        /// The cut-off asked for.
        before: TimestampMs,
        /// Markets moved.
        markets: u32,
        /// Bets moved.
        bets: u64,
        /// SHA-256 of the segment's payload.
        digest: [u8; 32],
    },
}

/// One link of the chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// 0, 1, 2, ...
    pub seq: u64,
    /// The Raft log index of the command that caused it.
    pub log_index: u64,
    /// Leader timestamp of that command.
    pub at: TimestampMs,
    /// Who did it ("system" for the ledger's own actions).
    pub actor: Actor,
    /// What happened.
    pub event: AuditEvent,
    /// Hash of the previous record (zeros for the first).
    pub prev_hash: [u8; 32],
    /// SHA-256 of `prev_hash` and this record's other fields.
    pub hash: [u8; 32],
}

impl AuditRecord {
    /// The record's bytes as snapshots hold them (postcard): what an export carries so that
    /// anyone can decode the record and re-check its link without trusting the node's JSON.
    pub fn to_bytes(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("audit record encodes: plain data")
    }

    /// Decodes [`AuditRecord::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<AuditRecord, String> {
        postcard::from_bytes(bytes).map_err(|e| format!("not an audit record: {e}"))
    }
}

/// The chain: records in order and the hash at its head.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditChain {
    records: Vec<AuditRecord>,
}

fn link_hash(
    seq: u64,
    log_index: u64,
    at: TimestampMs,
    actor: &Actor,
    event: &AuditEvent,
    prev: &[u8; 32],
) -> [u8; 32] {
    let body = postcard::to_stdvec(&(seq, log_index, at, actor, event))
        .expect("audit record encodes: plain data with no map keys that can fail");
    let mut h = Sha256::new();
    h.update(prev);
    h.update(&body);
    h.finalize().into()
}

impl AuditChain {
    /// Appends a record.
    pub(crate) fn push(&mut self, log_index: u64, at: TimestampMs, actor: Actor, event: AuditEvent) {
        let seq = self.records.len() as u64;
        let prev_hash = self.head();
        let hash = link_hash(seq, log_index, at, &actor, &event, &prev_hash);
        self.records.push(AuditRecord { seq, log_index, at, actor, event, prev_hash, hash });
    }

    /// The hash of the newest record (zeros when empty).
    pub fn head(&self) -> [u8; 32] {
        self.records.last().map(|r| r.hash).unwrap_or([0; 32])
    }

    /// All records, oldest first.
    pub fn records(&self) -> &[AuditRecord] {
        &self.records
    }

    /// Checks every link; returns the sequence number of the first bad record.
    pub fn verify(&self) -> Result<(), u64> {
        verify_records(&self.records)
    }
}

/// Checks a run of records exported from a chain, starting from the first record.
pub fn verify_records(records: &[AuditRecord]) -> Result<(), u64> {
    let mut prev = [0u8; 32];
    for (i, r) in records.iter().enumerate() {
        let expect = link_hash(r.seq, r.log_index, r.at, &r.actor, &r.event, &prev);
        if r.seq != i as u64 || r.prev_hash != prev || r.hash != expect {
            return Err(i as u64);
        }
        prev = r.hash;
    }
    Ok(())
}
