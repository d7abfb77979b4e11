//! The index of archived bets: which bets of an account left the replicated state, and their
//! records, on disk (redb), so that an account's old bets can be paged through without
//! holding them in memory or decoding whole segments per request.
//!
//! The archive segment files are the record; this index is derived from them and can be
//! deleted and rebuilt at any time (a node re-indexes every segment the index does not list).
//! Each stored record is framed (kind 4, with its own CRC-32C), so damage on disk is found on
//! read rather than served.

use crate::disk::{BoxedBackend, Disk};
use crate::frame;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::io;
use std::path::Path;

/// (account, bet) → the framed bet record.
const BETS: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("bets");
/// bet → account, to find one archived bet by its id.
const OWNERS: TableDefinition<u64, u64> = TableDefinition::new("owners");
/// Segment log index → number of bets it indexed.
const SEGMENTS: TableDefinition<u64, u64> = TableDefinition::new("segments");
/// Frame kind of an archived bet record.
pub const FRAME_KIND_ARCHIVED_BET: u8 = 4;
const FRAME_VERSION: u8 = 1;

fn other(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

/// The archived-bet index of one node.
pub struct ArchiveIndex {
    db: Database,
}

impl std::fmt::Debug for ArchiveIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ArchiveIndex")
    }
}

impl ArchiveIndex {
    /// Opens (or creates) the index at `path` on `disk`.
    pub fn open_with(disk: &dyn Disk, path: &Path) -> io::Result<ArchiveIndex> {
        let db = Database::builder().create_with_backend(BoxedBackend(disk.db_backend(path)?)).map_err(other)?;
        let tx = db.begin_write().map_err(other)?;
        tx.open_table(BETS).map_err(other)?;
        tx.open_table(OWNERS).map_err(other)?;
        tx.open_table(SEGMENTS).map_err(other)?;
        tx.commit().map_err(other)?;
        Ok(ArchiveIndex { db })
    }

    /// The segments already indexed, ascending.
    pub fn segments(&self) -> io::Result<Vec<u64>> {
        let tx = self.db.begin_read().map_err(other)?;
        let table = tx.open_table(SEGMENTS).map_err(other)?;
        table.iter().map_err(other)?.map(|row| row.map(|(k, _)| k.value()).map_err(other)).collect()
    }

    /// Indexes one segment's bets, `(account, bet, record bytes)`, in one transaction: either
    /// the whole segment is indexed or none of it.
    pub fn insert_segment(&self, segment: u64, bets: impl IntoIterator<Item = (u64, u64, Vec<u8>)>) -> io::Result<u64> {
        let tx = self.db.begin_write().map_err(other)?;
        let mut count = 0u64;
        {
            let mut table = tx.open_table(BETS).map_err(other)?;
            let mut owners = tx.open_table(OWNERS).map_err(other)?;
            for (account, bet, record) in bets {
                table
                    .insert((account, bet), frame::encode(FRAME_KIND_ARCHIVED_BET, FRAME_VERSION, &record).as_slice())
                    .map_err(other)?;
                owners.insert(bet, account).map_err(other)?;
                count += 1;
            }
            tx.open_table(SEGMENTS).map_err(other)?.insert(segment, count).map_err(other)?;
        }
        tx.commit().map_err(other)?;
        Ok(count)
    }

    /// Up to `limit` archived bets of `account` with ids above `after`, ascending: `(bet,
    /// record bytes)`.
    pub fn account_bets(&self, account: u64, after: u64, limit: usize) -> io::Result<Vec<(u64, Vec<u8>)>> {
        let tx = self.db.begin_read().map_err(other)?;
        let table = tx.open_table(BETS).map_err(other)?;
        let mut out = Vec::new();
        for row in table.range((account, after.saturating_add(1))..=(account, u64::MAX)).map_err(other)?.take(limit) {
            let (key, value) = row.map_err(other)?;
            let (_, payload) = frame::decode(FRAME_KIND_ARCHIVED_BET, FRAME_VERSION, value.value())?;
            out.push((key.value().1, payload.to_vec()));
        }
        Ok(out)
    }

    /// One archived bet's record, if indexed.
    pub fn bet(&self, bet: u64) -> io::Result<Option<Vec<u8>>> {
        let tx = self.db.begin_read().map_err(other)?;
        let Some(account) = tx.open_table(OWNERS).map_err(other)?.get(bet).map_err(other)?.map(|a| a.value()) else {
            return Ok(None);
        };
        let table = tx.open_table(BETS).map_err(other)?;
        let Some(value) = table.get((account, bet)).map_err(other)? else { return Ok(None) };
        let (_, payload) = frame::decode(FRAME_KIND_ARCHIVED_BET, FRAME_VERSION, value.value())?;
        Ok(Some(payload.to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StdDisk;

    #[test]
    fn an_accounts_archived_bets_page_in_id_order_and_survive_a_reopen() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("index.redb");
        {
            let index = ArchiveIndex::open_with(&StdDisk, &path).expect("open");
            let rows = [(7, 12, b"b12".to_vec()), (7, 3, b"b3".to_vec()), (8, 5, b"b5".to_vec())];
            assert_eq!(index.insert_segment(100, rows).expect("index"), 3);
        }
        let index = ArchiveIndex::open_with(&StdDisk, &path).expect("reopen");
        assert_eq!(index.segments().expect("segments"), vec![100]);
        let page = index.account_bets(7, 0, 1).expect("page");
        assert_eq!(page, vec![(3, b"b3".to_vec())]);
        let next = index.account_bets(7, 3, 10).expect("next page");
        assert_eq!(next, vec![(12, b"b12".to_vec())], "account 8's bet is not account 7's");
        assert_eq!(index.bet(5).expect("bet"), Some(b"b5".to_vec()));
        assert_eq!(index.bet(6).expect("bet"), None);
    }
}
