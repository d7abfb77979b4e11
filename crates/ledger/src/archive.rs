//! Settled history leaves the hot state: [`Command::ArchiveSettled`](crate::Command) moves
//! markets resulted before a cut-off, with their events and bets, into an archive segment.
//!
//! Why: every node holds the whole book in memory and every snapshot carries it, so without
//! this the state grows with all time rather than with open business. A betting book must
//! still keep those records for years (DOMAIN.md R6), so nothing is thrown away: the segment
//! is handed to the node, which keeps it on disk ([`ArchiveSegment::encode`]), and the audit
//! trail records the segment's SHA-256 (`AuditEvent::HistoryArchived`), so any copy of a
//! segment can be checked against the hash chain.
//!
//! What may leave: a market whose latest result (settlement, resettlement or void) is older
//! than the cut-off, together with every bet on it — but only when all of those bets are
//! final (settled, cashed out, rejected), every leg of every one of them is on a market
//! leaving too, and no bet or cash-out waiting for its in-play delay names it (deciding one
//! reads its markets). A multiple with one leg on a live market keeps all its markets in the hot
//! state until that market is resulted and old enough. An event leaves with its last market.
//!
//! The selection is a pure function of the state, so every replica archives the same markets
//! and bets at the same log index and computes the same digest.
//!
//! Layout of an encoded segment (integers little-endian), like a snapshot's:
//!
//! ```text
//! offset  size  field
//! 0       8     magic  "PDKARCH\0"
//! 8       2     format version (1)
//! 10      8     payload length n
//! 18      n     payload: the ArchiveSegment, postcard-encoded
//! 18+n    4     CRC-32C of bytes 0 .. 18+n
//! ```
//!
//! The digest the audit trail records is SHA-256 of the payload.

use crate::audit::AuditEvent;
use crate::ids::{BetId, EventId, MarketId, TimestampMs};
use crate::state::{BetStatus, BetView, EventView, MarketView, State};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};

/// First bytes of every archive segment.
pub const ARCHIVE_MAGIC: [u8; 8] = *b"PDKARCH\0";
/// The segment format this build writes and reads.
pub const ARCHIVE_FORMAT_VERSION: u16 = 1;
/// The most markets one `ArchiveSettled` may move: one apply must stay short, because every
/// write waits behind it.
pub const ARCHIVE_MARKETS_MAX: u32 = 1_000;
const HEADER_LEN: usize = 18;

/// What one `ArchiveSettled` moved out of the hot state, complete enough to answer for every
/// archived bet and market for as long as records must be kept.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveSegment {
    /// The log index of the command that archived it: the segment's name.
    pub log_index: u64,
    /// The cut-off: every market here was resulted before it.
    pub before: TimestampMs,
    /// Events whose last market left, ascending by id.
    pub events: Vec<EventView>,
    /// Markets, ascending by id, each with the time of its latest result.
    pub markets: Vec<(MarketView, TimestampMs)>,
    /// Bets, ascending by id.
    pub bets: Vec<BetView>,
}

/// Why segment bytes could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// Fewer bytes than the header and trailer need, or than the header announces.
    #[error("archive segment truncated: {0} bytes")]
    Truncated(usize),
    /// Not a Paddock archive segment.
    #[error("not a paddock archive segment (bad magic)")]
    BadMagic,
    /// Written by a format this build does not know.
    #[error("archive segment format version {0} is not supported (this build reads {ARCHIVE_FORMAT_VERSION})")]
    UnsupportedVersion(u16),
    /// The checksum does not match: the bytes were damaged.
    #[error("archive segment checksum mismatch")]
    Checksum,
    /// The checksum matched but the payload did not decode.
    #[error("archive segment payload does not decode: {0}")]
    Decode(#[from] postcard::Error),
}

impl ArchiveSegment {
    fn payload(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("segment encodes: plain data")
    }

    /// SHA-256 of the payload: what `AuditEvent::HistoryArchived` records.
    pub fn digest(&self) -> [u8; 32] {
        Sha256::digest(self.payload()).into()
    }

    /// The segment as file bytes: magic, version, length, payload, CRC-32C.
    pub fn encode(&self) -> Vec<u8> {
        let body = self.payload();
        let mut out = Vec::with_capacity(HEADER_LEN + body.len() + 4);
        out.extend_from_slice(&ARCHIVE_MAGIC);
        out.extend_from_slice(&ARCHIVE_FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&(body.len() as u64).to_le_bytes());
        out.extend_from_slice(&body);
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Reads segment bytes, checking magic, version, length and checksum before decoding.
    pub fn decode(bytes: &[u8]) -> Result<ArchiveSegment, ArchiveError> {
        if bytes.len() < HEADER_LEN + 4 {
            return Err(ArchiveError::Truncated(bytes.len()));
        }
        if bytes[0..8] != ARCHIVE_MAGIC {
            return Err(ArchiveError::BadMagic);
        }
        let version = u16::from_le_bytes([bytes[8], bytes[9]]);
        if version != ARCHIVE_FORMAT_VERSION {
            return Err(ArchiveError::UnsupportedVersion(version));
        }
        let mut len_bytes = [0u8; 8];
        len_bytes.copy_from_slice(&bytes[10..18]);
        let end = usize::try_from(u64::from_le_bytes(len_bytes))
            .ok()
            .and_then(|l| l.checked_add(HEADER_LEN))
            .filter(|end| end.checked_add(4) == Some(bytes.len()))
            .ok_or(ArchiveError::Truncated(bytes.len()))?;
        let stored = u32::from_le_bytes([bytes[end], bytes[end + 1], bytes[end + 2], bytes[end + 3]]);
        if stored != crc32c::crc32c(&bytes[..end]) {
            return Err(ArchiveError::Checksum);
        }
        Ok(postcard::from_bytes(&bytes[HEADER_LEN..end])?)
    }
}

/// One archive segment as the audit trail records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentRecord {
    /// The log index that archived it (the segment's name).
    pub log_index: u64,
    /// When.
    pub at: TimestampMs,
    /// Markets moved.
    pub markets: u32,
    /// Bets moved.
    pub bets: u64,
    /// SHA-256 of the segment's payload.
    pub digest: [u8; 32],
}

impl State {
    /// Every archive segment so far, oldest first, as the audit trail records them: what a
    /// node's archive must hold, and what each copy must hash to.
    pub fn archive_segments(&self) -> Vec<SegmentRecord> {
        self.audit
            .records()
            .iter()
            .filter_map(|r| match r.event {
                AuditEvent::HistoryArchived { markets, bets, digest, .. } => {
                    Some(SegmentRecord { log_index: r.log_index, at: r.at, markets, bets, digest })
                }
                _ => None,
            })
            .collect()
    }

    /// When each resulted market got its latest result, from the audit trail (which records
    /// every settlement, resettlement, void and status change).
    fn resulted_at(&self) -> BTreeMap<MarketId, TimestampMs> {
        let mut at = BTreeMap::new();
        for r in self.audit.records() {
            match &r.event {
                AuditEvent::MarketSettled { market, .. } => {
                    at.insert(*market, r.at);
                }
                AuditEvent::MarketStatusChanged { market, to, .. } if to.is_resulted() => {
                    at.insert(*market, r.at);
                }
                _ => {}
            }
        }
        at
    }

    /// Drops from `markets` every market that has a bet that may not leave with it (not final,
    /// or with a leg on a market outside the set), until none is left to drop.
    fn close_over_bets(&self, markets: &mut BTreeSet<MarketId>) {
        loop {
            let blocked: Vec<MarketId> = markets
                .iter()
                .copied()
                .filter(|m| {
                    self.markets[m].bets.iter().any(|b| {
                        let bet = &self.bets[b];
                        matches!(bet.status, BetStatus::Pending | BetStatus::Open)
                            || bet.legs.iter().any(|leg| !markets.contains(&leg.market))
                    })
                })
                .collect();
            if blocked.is_empty() {
                return;
            }
            for m in blocked {
                markets.remove(&m);
            }
        }
    }

    /// The markets and bets [`Command::ArchiveSettled`](crate::Command) with this cut-off and
    /// share would move now: what a node sizes its next share by.
    pub fn archive_share_size(&self, before: TimestampMs, markets_max: u32) -> (usize, usize) {
        let share = self.share(before, markets_max);
        let bets: BTreeSet<BetId> = share.iter().flat_map(|m| self.markets[m].bets.iter().copied()).collect();
        (share.len(), bets.len())
    }

    /// The markets resulted before `before`, ascending — except those a bet or cash-out waiting
    /// for its in-play delay names: deciding it reads its markets, which must still be here.
    fn eligible(&self, before: TimestampMs) -> Vec<MarketId> {
        let resulted_at = self.resulted_at();
        let waiting: BTreeSet<MarketId> = self
            .pending
            .iter()
            .filter_map(|p| match p {
                crate::state::PendingItem::Bet { bet, .. } | crate::state::PendingItem::CashOut { bet, .. } => {
                    self.bets.get(bet)
                }
            })
            .flat_map(|b| b.legs.iter().map(|l| l.market))
            .collect();
        self.markets
            .iter()
            .filter(|(id, m)| m.status.is_resulted() && resulted_at.get(id).is_some_and(|at| *at < before))
            .filter(|(id, _)| !waiting.contains(id))
            .map(|(id, _)| *id)
            .collect()
    }

    /// The markets one command moves: the lowest-numbered eligible markets that may leave
    /// together. Candidates are taken `markets_max` at a time, in id order, until the set closed
    /// over their bets is not empty, so the work is bounded by the markets looked at, not by
    /// the whole book — unless a chain of multiples ties many markets together, or many of the
    /// oldest markets wait for a live one.
    fn share(&self, before: TimestampMs, markets_max: u32) -> BTreeSet<MarketId> {
        let step = (markets_max as usize).max(1);
        let eligible = self.eligible(before);
        let mut candidates = BTreeSet::new();
        for batch in eligible.chunks(step) {
            candidates.extend(batch.iter().copied());
            let mut closed = candidates.clone();
            self.close_over_bets(&mut closed);
            if !closed.is_empty() {
                // At most a share, still closed: the first `step` of them, closed again.
                let mut share: BTreeSet<MarketId> = closed.iter().copied().take(step).collect();
                self.close_over_bets(&mut share);
                return if share.is_empty() { closed } else { share };
            }
        }
        BTreeSet::new()
    }

    /// The segment `ArchiveSettled { before, markets_max }` applied at `log_index` moves: the
    /// lowest-numbered markets that may leave, at most `markets_max` of them unless a chain of
    /// multiples ties more together, with their bets and the events they empty.
    pub fn archive_segment(&self, before: TimestampMs, markets_max: u32, log_index: u64) -> ArchiveSegment {
        let chosen = self.share(before, markets_max);
        let bets: BTreeSet<BetId> = chosen.iter().flat_map(|m| self.markets[m].bets.iter().copied()).collect();
        let event_ids: BTreeSet<EventId> = chosen.iter().map(|m| self.markets[m].event).collect();
        let resulted_at = if chosen.is_empty() { BTreeMap::new() } else { self.resulted_at() };
        ArchiveSegment {
            log_index,
            before,
            events: event_ids
                .into_iter()
                .filter(|e| self.events[e].markets.iter().all(|m| chosen.contains(m)))
                .filter_map(|e| self.event(e))
                .collect(),
            markets: chosen.iter().filter_map(|m| Some((self.market(*m)?, resulted_at[m]))).collect(),
            bets: bets.iter().filter_map(|b| self.bet(*b)).collect(),
        }
    }

    /// Removes what `segment` holds from the hot state. The accounts it touches also drop the
    /// limit activity no window can see any more and give back the memory their bet lists no
    /// longer need: what archiving is for.
    pub(crate) fn remove_archived(&mut self, segment: &ArchiveSegment, now: TimestampMs) {
        let mut by_account: BTreeMap<_, BTreeSet<BetId>> = BTreeMap::new();
        for bet in &segment.bets {
            self.bets.remove(&bet.bet);
            by_account.entry(bet.account).or_default().insert(bet.bet);
        }
        for (account, gone) in by_account {
            if let Some(acc) = self.accounts.get_mut(&account) {
                acc.bets.retain(|b| !gone.contains(b));
                if acc.bets.capacity() > 2 * acc.bets.len() + 4 {
                    acc.bets.shrink_to_fit();
                }
                acc.forget_old_activity(now);
                if acc.activity.capacity() > 2 * acc.activity.len() + 4 {
                    acc.activity.shrink_to_fit();
                }
            }
        }
        let markets: BTreeSet<MarketId> = segment.markets.iter().map(|(m, _)| m.market).collect();
        for market in &markets {
            if let Some(m) = self.markets.remove(market) {
                for selection in m.selections.keys() {
                    self.selection_market.remove(selection);
                }
                if let Some(event) = self.events.get_mut(&m.event) {
                    event.markets.retain(|x| !markets.contains(x));
                }
            }
        }
        for event in &segment.events {
            self.events.remove(&event.event);
        }
    }
}
