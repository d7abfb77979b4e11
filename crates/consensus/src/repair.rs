//! Storage repair: a node whose Raft log or snapshot is damaged discards what is damaged and
//! fetches it again from its peers, instead of crash-looping on it or serving it.
//!
//! At start, before Raft runs, [`at_start`] reads every log entry's frame (magic, version,
//! CRC-32C) and the meta records, and looks at the snapshot the state machine loaded (the
//! storage crate already skips a damaged newest snapshot file for the previous one). What it
//! does, in one durable transaction of the log:
//!
//! - a damaged entry at index `d` after the snapshot: every entry from `d` on is discarded
//!   (a log must be contiguous, so the intact entries after `d` go too);
//! - a damaged entry the snapshot covers: the log is purged up to the snapshot, as openraft
//!   would have done;
//! - a log that no intact snapshot precedes (the snapshot it needs is damaged, or its purge
//!   marker is): the whole log is discarded and the node starts from its newest intact
//!   snapshot, or from nothing, and the leader sends it a snapshot;
//! - a damaged committed-index record: dropped (it is a hint; the leader supplies it again).
//!
//! # Why it is safe: never discard the only copy of a committed entry
//!
//! An entry is committed once a majority has it on disk. A node that discards entries it had
//! acknowledged may have been part of that majority: while it lacks them, its vote could help
//! elect a leader without them, and a committed bet would be lost. So the discard writes a
//! repair marker ([`RepairRecord`]) holding the highest index the log reached, in the same
//! transaction; while it stands the node:
//!
//! - grants no vote and no pre-vote, and starts no election (openraft's `elect` switch),
//!   and refuses a leadership transfer to itself;
//! - still acknowledges appends — it really has what it acknowledges;
//! - tags its append answers so the leader, instead of treating the shortened log as a bug,
//!   restarts replication to it from where its log now ends (`allow_next_revert`, one
//!   conflict at a time).
//!
//! With one damaged replica at a time, every committed entry is on at least one other member
//! of any majority that can still elect (a majority without this node overlaps the entry's
//! majority in a node other than this one), so the leader has it and sends it back. The
//! marker is removed once the log is durable up to the marked index again (or a snapshot
//! from the leader covers it): the node then holds every committed entry it ever
//! acknowledged, and votes again. A node that is the only voter holds the only copy: it
//! refuses to start instead ([`StartError::OnlyCopyDamaged`]).
//!
//! Not repaired here: a damaged vote record (the node cannot know whom it voted for, and
//! voting twice in one term could elect two leaders) and a database redb itself cannot open
//! ([`StartError::Unrepairable`]): both say how to re-add the node. A damaged entry found by a
//! read while running stops Raft on this node (openraft treats storage errors as fatal); the
//! restart repairs it.

use crate::records::{self, EntryRecord, LogIdRecord, PayloadRecord, RepairRecord, VoteRecord};
use crate::state_machine::StateMachine;
use crate::StartError;
use paddock_storage::{Discard, LogStore, MetaKey};
use std::collections::BTreeSet;
use std::io;
use std::path::Path;

/// What [`at_start`] found and did.
#[derive(Debug, Default)]
pub(crate) struct Found {
    /// The repair marker in force after the start-up checks: the node abstains until its log
    /// is durable up to `up_to`.
    pub(crate) marker: Option<RepairRecord>,
    /// What was damaged and what was done, one line each (logged).
    pub(crate) notes: Vec<String>,
}

fn damaged(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::InvalidData
}

/// A meta record, `Err(reason)` if it is damaged.
fn meta<T: for<'a> serde::Deserialize<'a>>(log: &LogStore, key: MetaKey) -> io::Result<Result<Option<T>, String>> {
    match log.read_meta(key) {
        Ok(None) => Ok(Ok(None)),
        Ok(Some(bytes)) => match records::decode::<T>(&bytes) {
            Ok(v) => Ok(Ok(Some(v))),
            Err(e) => Ok(Err(e.to_string())),
        },
        Err(e) if damaged(&e) => Ok(Err(e.to_string())),
        Err(e) => Err(e),
    }
}

/// The voters of the newest membership this node can still read: the newest intact
/// membership entry anywhere in the log (the part about to be discarded included), else the
/// snapshot's. Empty if neither has one.
fn voters(log: &LogStore, sm: &StateMachine) -> io::Result<BTreeSet<u64>> {
    let mut latest = sm.read(|d| d.membership.membership().voter_ids().collect::<BTreeSet<u64>>());
    log.visit_intact(&mut |_, bytes| {
        if let Ok(EntryRecord { payload: PayloadRecord::Membership(m), .. }) = records::decode(bytes) {
            latest = m.configs.iter().flatten().copied().collect();
        }
    })?;
    Ok(latest)
}

/// Checks the log and the loaded snapshot before Raft starts and repairs what it can (see
/// the module documentation). `now_ms` stamps a new marker.
pub(crate) fn at_start(
    log: &LogStore,
    sm: &StateMachine,
    node: u64,
    data_dir: &Path,
    now_ms: u64,
) -> Result<Found, StartError> {
    let unrepairable = |what: String| StartError::Unrepairable { dir: data_dir.to_path_buf(), node, what };
    if let Err(why) = meta::<VoteRecord>(log, MetaKey::Vote)? {
        return Err(unrepairable(format!(
            "its vote record is damaged ({why}): a node that forgot its vote could vote twice in one term and help \
             elect two leaders"
        )));
    }
    let marker = meta::<RepairRecord>(log, MetaKey::Repair)?.map_err(|why| {
        unrepairable(format!(
            "its storage-repair marker is damaged ({why}): it no longer knows how far the log it discarded had \
             reached, so it cannot tell when it may vote again"
        ))
    })?;
    let mut found = Found { marker, notes: Vec::new() };
    let mut discard = Discard::default();
    let committed = match meta::<LogIdRecord>(log, MetaKey::Committed)? {
        Ok(c) => c.map(|c| c.index),
        Err(why) => {
            found
                .notes
                .push(format!("the committed-index record was damaged ({why}); dropped, the leader supplies it"));
            discard.remove.push(MetaKey::Committed);
            None
        }
    };
    let (purged, purged_damaged) = match meta::<LogIdRecord>(log, MetaKey::Purged)? {
        Ok(p) => (p, None),
        Err(why) => (None, Some(why)),
    };
    let snapshot = sm.read(|d| d.last_applied);
    let snapshot_index = snapshot.as_ref().map(|s| s.index);
    let whole = log.scan(0)?;
    // The highest index this log may have acknowledged, damaged entries included.
    let reached = [whole.last, purged.map(|p| p.index), committed, snapshot_index, found.marker.map(|m| m.up_to)]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(0);

    let follows = purged_damaged.is_none() && sm.check_log_follows(log, node, data_dir).is_ok();
    // Whether entries this node may have acknowledged are discarded (to be fetched again).
    let mut discards_entries = false;
    if !follows {
        let why = match &purged_damaged {
            Some(why) => format!("its purge marker is damaged ({why})"),
            None => format!(
                "its log is purged up to index {}, but {}",
                purged.map_or(0, |p| p.index),
                crate::state_machine::describe_snapshots(snapshot_index, &sm.damaged_snapshots())
            ),
        };
        found.notes.push(format!(
            "the log does not follow an intact snapshot: {why}; the whole log is discarded, to be fetched again"
        ));
        discard.entries_from = Some(0);
        match &snapshot {
            Some(s) => discard.write.push((MetaKey::Purged, records::encode(&LogIdRecord::from(s)))),
            None => discard.remove.push(MetaKey::Purged),
        }
        discards_entries = true;
    } else if let Some((index, why)) = whole.damaged.clone() {
        let mut first_bad = Some((index, why.clone()));
        if let Some(s) = snapshot.as_ref().filter(|s| index <= s.index) {
            // The snapshot covers the damage: purge up to it, as openraft would have, and look
            // for damage after it.
            found.notes.push(format!(
                "log entry {index} is damaged ({why}) but the snapshot at index {} covers it: the log is purged up to it",
                s.index
            ));
            discard.entries_upto = Some(s.index);
            discard.write.push((MetaKey::Purged, records::encode(&LogIdRecord::from(s))));
            first_bad = log.scan(s.index + 1)?.damaged;
        }
        if let Some((index, why)) = first_bad {
            found.notes.push(format!(
                "log entry {index} is damaged ({why}); it and the {} entries after it are discarded, to be fetched again",
                whole.last.unwrap_or(index).saturating_sub(index)
            ));
            discard.entries_from = Some(index);
            discards_entries = true;
        }
    }
    if discards_entries {
        // Unknown (no intact membership anywhere) only when the whole log goes because no
        // intact snapshot precedes it: then it could not rebuild the state here anyway.
        let voters = voters(log, sm)?;
        if voters.len() == 1 && voters.contains(&node) {
            return Err(StartError::OnlyCopyDamaged {
                dir: data_dir.to_path_buf(),
                node,
                what: found.notes.join("; "),
            });
        }
        // The committed hint may point into what is discarded.
        if committed.is_some() && !discard.remove.contains(&MetaKey::Committed) {
            discard.remove.push(MetaKey::Committed);
        }
        // `reached` counts an earlier marker's index: a repair interrupted by a restart keeps it.
        let record = RepairRecord { up_to: reached, found_ms: found.marker.map_or(now_ms, |m| m.found_ms) };
        discard.write.push((MetaKey::Repair, records::encode(&record)));
        found.marker = Some(record);
    }
    if discard != Discard::default() {
        log.discard(discard)?;
        for note in &found.notes {
            tracing::error!(node, "storage repair: {note}");
        }
        metrics::counter!("paddock_storage_repairs_total", "stage" => "found").increment(1);
        // A gauge, not only the counter: the damage is found before the first scrape, so the
        // counter's series is born at 1 and `increase()` would never see it rise.
        metrics::gauge!("paddock_storage_damage_found_time_seconds").set(now_ms as f64 / 1000.0);
    }
    Ok(found)
}

/// Whether a repairing node's log is whole again: durable up to the marker's index, or
/// covered by a snapshot that reaches it (installed from the leader).
pub(crate) fn caught_up(log: &LogStore, sm: &StateMachine, marker: &RepairRecord) -> io::Result<bool> {
    let durable = log.durable_last()?.unwrap_or(0);
    let snapshot = sm.snapshot_index().unwrap_or(0);
    Ok(durable.max(snapshot) >= marker.up_to)
}

/// Removes the marker, durably: the node may vote again.
pub(crate) fn finish(log: &LogStore) -> io::Result<()> {
    log.discard(Discard { remove: vec![MetaKey::Repair], ..Discard::default() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::MembershipRecord;
    use paddock_storage::SnapshotFiles;
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    const LOG_FILE: &str = "raft-log.redb";
    const NOW_MS: u64 = 1_800_000_000_000;

    fn entry(index: u64, payload: PayloadRecord) -> (u64, Vec<u8>) {
        (index, records::encode(&EntryRecord { log_id: LogIdRecord { term: 1, node: 1, index }, payload }))
    }

    fn voters(ids: &[u64]) -> PayloadRecord {
        PayloadRecord::Membership(MembershipRecord {
            configs: vec![ids.iter().copied().collect()],
            nodes: ids.iter().map(|id| (*id, format!("127.0.0.{id}:7001"))).collect::<BTreeMap<_, _>>(),
        })
    }

    /// Appends `entries` and waits for their fsync.
    fn append_durably(log: &LogStore, entries: Vec<(u64, Vec<u8>)>) {
        let (tx, rx) = std::sync::mpsc::channel();
        log.append(entries, Box::new(move |r| tx.send(r).unwrap()));
        rx.recv().unwrap().unwrap();
    }

    /// A log of `1..=last` (a membership of `members` first, then blanks), voted and committed.
    fn write_log(dir: &Path, members: &[u64], last: u64) {
        let log = LogStore::open(&dir.join(LOG_FILE)).unwrap();
        let mut entries = vec![entry(1, voters(members))];
        entries.extend((2..=last).map(|i| entry(i, PayloadRecord::Blank)));
        append_durably(&log, entries);
        log.save_meta_durable(MetaKey::Vote, &records::encode(&VoteRecord { term: 1, node: 1, committed: true }))
            .unwrap();
        log.save_meta_durable(MetaKey::Committed, &records::encode(&LogIdRecord { term: 1, node: 1, index: last }))
            .unwrap();
    }

    /// Flips the last byte of every copy of `framed` in the file: rot a checksum must catch.
    fn rot(path: &Path, framed: &[u8]) {
        let mut bytes = std::fs::read(path).unwrap();
        let mut hits = 0;
        let mut at = 0;
        while let Some(pos) = bytes[at..].windows(framed.len()).position(|w| w == framed) {
            let end = at + pos + framed.len() - 1;
            bytes[end] ^= 0x40;
            hits += 1;
            at = end + 1;
        }
        assert!(hits > 0, "the record is not in the file");
        std::fs::write(path, bytes).unwrap();
    }

    fn rot_entry(dir: &Path, index: u64) {
        let (_, payload) = entry(index, PayloadRecord::Blank);
        rot(&dir.join(LOG_FILE), &paddock_storage::frame::encode(paddock_storage::log::KIND_LOG_ENTRY, 1, &payload));
    }

    fn write_snapshot(dir: &Path, index: u64) -> PathBuf {
        crate::state_machine::tests::write_snapshot(&SnapshotFiles::open(&dir.join("snapshots")).unwrap(), index)
    }

    fn open(dir: &Path) -> (LogStore, StateMachine) {
        (LogStore::open(&dir.join(LOG_FILE)).unwrap(), StateMachine::open(&dir.join("snapshots")).unwrap())
    }

    fn indexes(log: &LogStore) -> (Option<u64>, Option<u64>) {
        let scan = log.scan(0).unwrap();
        (scan.first, scan.last)
    }

    #[test]
    fn a_damaged_entry_is_discarded_with_the_rest_of_the_log_and_the_node_abstains_until_it_is_fetched_again() {
        let dir = tempfile::tempdir().unwrap();
        write_log(dir.path(), &[1, 2, 3], 20);
        rot_entry(dir.path(), 12);
        let (log, sm) = open(dir.path());

        let found = at_start(&log, &sm, 2, dir.path(), NOW_MS).unwrap();

        assert_eq!(found.marker, Some(RepairRecord { up_to: 20, found_ms: NOW_MS }));
        assert_eq!(indexes(&log), (Some(1), Some(11)), "entries 12..=20 are gone");
        assert!(found.notes.iter().any(|n| n.contains("log entry 12 is damaged")), "{:?}", found.notes);
        assert_eq!(log.read_meta(MetaKey::Committed).unwrap(), None, "the committed hint pointed into the discard");
        assert!(log.read_meta(MetaKey::Vote).unwrap().is_some(), "the vote is kept");
        assert!(!caught_up(&log, &sm, found.marker.as_ref().unwrap()).unwrap());

        // The leader sends 12..=19: not yet whole, since 20 may have been acknowledged.
        append_durably(&log, (12..=19).map(|i| entry(i, PayloadRecord::Blank)).collect());
        assert!(!caught_up(&log, &sm, found.marker.as_ref().unwrap()).unwrap());
        append_durably(&log, vec![entry(20, PayloadRecord::Blank)]);
        assert!(caught_up(&log, &sm, found.marker.as_ref().unwrap()).unwrap());
        finish(&log).unwrap();
        drop((log, sm));

        let (log, sm) = open(dir.path());
        let again = at_start(&log, &sm, 2, dir.path(), NOW_MS + 1).unwrap();
        assert_eq!(again.marker, None, "a whole log starts normally");
        assert!(again.notes.is_empty(), "{:?}", again.notes);
    }

    #[test]
    fn a_restart_in_the_middle_of_a_repair_keeps_abstaining_with_the_first_marker() {
        let dir = tempfile::tempdir().unwrap();
        write_log(dir.path(), &[1, 2, 3], 20);
        rot_entry(dir.path(), 15);
        let (log, sm) = open(dir.path());
        let first = at_start(&log, &sm, 2, dir.path(), NOW_MS).unwrap().marker;
        drop((log, sm));
        let (log, sm) = open(dir.path());
        let found = at_start(&log, &sm, 2, dir.path(), NOW_MS + 5_000).unwrap();
        assert_eq!(found.marker, first, "the marker (and when the damage was found) survives the restart");
        assert_eq!(indexes(&log), (Some(1), Some(14)));
    }

    #[test]
    fn the_only_voter_keeps_its_damaged_log_and_refuses_to_start() {
        let dir = tempfile::tempdir().unwrap();
        write_log(dir.path(), &[2], 20);
        rot_entry(dir.path(), 12);
        let (log, sm) = open(dir.path());
        let refused = at_start(&log, &sm, 2, dir.path(), NOW_MS).unwrap_err();
        assert!(matches!(refused, StartError::OnlyCopyDamaged { node: 2, .. }), "{refused:?}");
        let text = refused.to_string();
        assert!(text.contains("log entry 12 is damaged") && text.contains("only voter"), "{text}");
        assert!(text.contains("Nothing was changed") && text.contains("paddock restore"), "{text}");
        assert_eq!(indexes(&log), (Some(1), Some(20)), "nothing was discarded");
        assert_eq!(log.read_meta(MetaKey::Repair).unwrap(), None);
    }

    #[test]
    fn a_later_membership_of_this_node_alone_is_seen_even_in_the_part_to_be_discarded() {
        let dir = tempfile::tempdir().unwrap();
        write_log(dir.path(), &[1, 2, 3], 20);
        {
            // The cluster shrank to node 2 at index 15 (before the log was damaged at 12).
            let log = LogStore::open(&dir.path().join(LOG_FILE)).unwrap();
            append_durably(&log, vec![entry(15, voters(&[2]))]);
        }
        rot_entry(dir.path(), 12);
        let (log, sm) = open(dir.path());
        let refused = at_start(&log, &sm, 2, dir.path(), NOW_MS).unwrap_err();
        assert!(matches!(refused, StartError::OnlyCopyDamaged { node: 2, .. }), "{refused:?}");
        assert_eq!(indexes(&log), (Some(1), Some(20)), "nothing was discarded");
    }

    #[test]
    fn a_damaged_vote_is_refused_with_the_way_to_re_add_the_node() {
        let dir = tempfile::tempdir().unwrap();
        write_log(dir.path(), &[1, 2, 3], 5);
        let vote = records::encode(&VoteRecord { term: 1, node: 1, committed: true });
        rot(&dir.path().join(LOG_FILE), &paddock_storage::frame::encode(paddock_storage::log::KIND_META, 1, &vote));
        let (log, sm) = open(dir.path());
        let refused = at_start(&log, &sm, 2, dir.path(), NOW_MS).unwrap_err();
        let text = refused.to_string();
        assert!(matches!(refused, StartError::Unrepairable { node: 2, .. }), "{text}");
        assert!(text.contains("its vote record is damaged") && text.contains("vote twice"), "{text}");
        assert!(text.contains("does not repair this by itself"), "{text}");
        assert!(text.contains("paddock members remove --id 2") && text.contains("members promote --id 2"), "{text}");
    }

    #[test]
    fn damage_the_snapshot_covers_is_purged_and_needs_no_repair() {
        let dir = tempfile::tempdir().unwrap();
        write_log(dir.path(), &[1, 2, 3], 20);
        write_snapshot(dir.path(), 10);
        rot_entry(dir.path(), 7);
        let (log, sm) = open(dir.path());
        let found = at_start(&log, &sm, 2, dir.path(), NOW_MS).unwrap();
        assert_eq!(found.marker, None, "nothing after the snapshot was lost");
        assert_eq!(indexes(&log), (Some(11), Some(20)));
        let purged: LogIdRecord = records::decode(&log.read_meta(MetaKey::Purged).unwrap().unwrap()).unwrap();
        assert_eq!(purged.index, 10);
    }

    #[test]
    fn a_log_no_intact_snapshot_precedes_is_discarded_whole_and_the_node_starts_from_its_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        write_snapshot(dir.path(), 100);
        let newest = write_snapshot(dir.path(), 200);
        let mut bytes = std::fs::read(&newest).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x40;
        std::fs::write(&newest, bytes).unwrap();
        {
            let log = LogStore::open(&dir.path().join(LOG_FILE)).unwrap();
            append_durably(&log, (151..=230).map(|i| entry(i, PayloadRecord::Blank)).collect());
            log.purge(150, &records::encode(&LogIdRecord { term: 1, node: 1, index: 150 })).unwrap();
        }
        let (log, sm) = open(dir.path());
        assert_eq!(sm.applied_index(), 100, "the previous snapshot loaded");

        let found = at_start(&log, &sm, 2, dir.path(), NOW_MS).unwrap();

        assert_eq!(found.marker.map(|m| m.up_to), Some(230));
        assert_eq!(indexes(&log), (None, None), "the whole log is discarded");
        let purged: LogIdRecord = records::decode(&log.read_meta(MetaKey::Purged).unwrap().unwrap()).unwrap();
        assert_eq!(purged.index, 100, "the log now follows the snapshot that loaded");
        assert!(found.notes[0].contains("purged up to index 150"), "{:?}", found.notes);
        assert!(sm.check_log_follows(&log, 2, dir.path()).is_ok());
    }
}
