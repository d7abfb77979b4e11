//! `paddock dr promote`: a standby site's replica becomes a new cluster when the primary site
//! is gone.
//!
//! The standby is a learner of the primary cluster in another site: it follows the log
//! asynchronously and never votes, so losing it costs the primary nothing and losing the
//! primary leaves it with everything committed up to its lag. Promotion is offline, like a
//! restore: with the standby's node stopped, its data directory is read (its latest intact
//! snapshot plus the log entries it knew to be committed, replayed with the ledger's own
//! `apply`) and a fresh data directory is seeded from that book for a **new** cluster id. The
//! new id is the fence: nodes of the old site, if they come back, belong to the old cluster
//! and cannot exchange a single message with the new one (peers refuse another cluster's
//! calls), so the two sites can never both take bets into one book.
//!
//! The source directory is only read; entries it holds past its committed index are left out
//! (they may never have been acknowledged) and counted in the answer, as is the index the book
//! reaches — the exact point from which the old site's acknowledged work is lost (the RPO).
//!
//! Bet ids follow the log, so the lost site may have given ids beyond the promoted point to
//! bets it acknowledged. The promoted book therefore numbers its bets from a gap above
//! (`bet_id_gap`), through the ledger's own `ReserveBetIds` command, applied at the promoted
//! index and recorded in the audit trail: no id is ever issued twice for two different bets.

use anyhow::{bail, Context, Result};
use paddock_consensus::backup::{read_data_dir, seed_data_dir};
use paddock_ledger::{Actor, ApplyCtx, BetId, Command, IdempotencyKey};
use std::collections::BTreeMap;
use std::path::Path;

/// What `paddock dr promote` is asked to do.
pub struct PromoteRequest<'a> {
    /// The standby's data directory (its node stopped); only read.
    pub from: &'a Path,
    /// The new cluster's id: must differ from the old one.
    pub cluster_id: &'a str,
    /// This node's id in the new cluster.
    pub node_id: u64,
    /// Every voter of the new cluster: id → peer address.
    pub members: &'a BTreeMap<u64, String>,
    /// The new node's data directory: empty or absent, unless `force`.
    pub data_dir: &'a Path,
    /// Replace what the data directory holds (never while a node runs on it).
    pub force: bool,
    /// Bets of the promoted site are numbered from the book's next id plus this (0: no gap).
    pub bet_id_gap: u64,
}

/// The default [`PromoteRequest::bet_id_gap`]: far more bets than a site could acknowledge
/// beyond what its standby had received.
pub const BET_ID_GAP_DEFAULT: u64 = 1_000_000_000;

/// Seeds the new cluster's data directory from the standby's book; answers what was promoted.
pub fn promote(req: &PromoteRequest<'_>) -> Result<serde_json::Value> {
    if same_dir(req.from, req.data_dir) {
        bail!(
            "--from and --data-dir are the same directory: promote into a new directory and keep the standby's \
             own as it is (it is the evidence of what the standby had)"
        );
    }
    if !req.members.contains_key(&req.node_id) {
        bail!("node {} is not in --bootstrap: list every voter of the new cluster, this node included", req.node_id);
    }
    let book = read_data_dir(req.from)
        .with_context(|| format!("cannot read the standby's book from {} (stop its node first)", req.from.display()))?;
    if book.identity.cluster_id == req.cluster_id {
        bail!(
            "the standby belongs to cluster '{}': the promoted site must be a new cluster, so give it another \
             --cluster-id (the old site's nodes, if they come back, then cannot mix with it)",
            req.cluster_id
        );
    }
    let Some(last) = book.last else {
        bail!("{} holds no committed entry: there is nothing to promote", req.from.display());
    };
    let mut state = book.state;
    let next_bet_id = state.next_bet_id().0;
    let bet_ids_from = next_bet_id.checked_add(req.bet_id_gap).context("--bet-id-gap is too large")?;
    if req.bet_id_gap > 0 {
        let reserve = Command::ReserveBetIds {
            from: BetId(bet_ids_from),
            reason: format!(
                "promoted from cluster '{}' (node {}) at index {}",
                book.identity.cluster_id, book.identity.node_id, last.index
            ),
            actor: Actor("dr-promote".into()),
            key: IdempotencyKey(format!("dr-promote-{}", last.index)),
        };
        let ctx = ApplyCtx { log_index: last.index, time: state.clock() };
        if !paddock_ledger::apply(&mut state, &reserve, ctx).is_done() {
            bail!("the book refused to reserve bet ids from {bet_ids_from}");
        }
    }
    crate::prepare_target(req.data_dir, req.force)?;
    let state_hash = seed_data_dir(req.data_dir, req.cluster_id, req.node_id, req.members, &state, last)
        .with_context(|| format!("cannot seed {}", req.data_dir.display()))?;
    Ok(serde_json::json!({
        "promoted_from_cluster": book.identity.cluster_id,
        "promoted_from_node": book.identity.node_id,
        "promoted_to_index": last.index,
        "left_out_uncommitted": book.left_out,
        "next_bet_id_at_point": next_bet_id,
        "bet_ids_from": bet_ids_from,
        "book_clock_ms": state.clock().0,
        "state_hash": state_hash.to_string(),
        "cluster_id": req.cluster_id,
        "node_id": req.node_id,
        "data_dir": req.data_dir,
    }))
}

/// The last committed index a stopped node's data directory holds (0: none): what a lost
/// site had committed, for the RPO of a promotion.
pub fn committed_index(dir: &Path) -> Result<u64> {
    let book = read_data_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    Ok(book.last.map_or(0, |l| l.index))
}

/// Whether two paths name one directory (as far as both exist and resolve).
fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use paddock_consensus::backup::read_data_dir;
    use paddock_consensus::records::LogIdRecord;
    use paddock_ledger::{AccountId, ApplyCtx, Command, Currency, IdempotencyKey, Money, State, TimestampMs};

    /// A stopped node's data directory of cluster `paddock` holding one funded account at
    /// index 7, as a restore or an earlier promotion leaves one.
    fn standby(root: &Path) -> (std::path::PathBuf, String) {
        let mut state = State::new();
        let ctx = ApplyCtx { log_index: 6, time: TimestampMs(1_700_000_000_000) };
        let open = Command::OpenAccount {
            account: AccountId(1),
            currency: Currency(*b"GBP"),
            key: IdempotencyKey("open-1".into()),
        };
        paddock_ledger::apply(&mut state, &open, ctx);
        let deposit =
            Command::Deposit { account: AccountId(1), amount: Money(5_000), key: IdempotencyKey("dep-1".into()) };
        paddock_ledger::apply(&mut state, &deposit, ApplyCtx { log_index: 7, ..ctx });
        let dir = root.join("standby");
        let members = BTreeMap::from([(4, "10.1.0.4:7101".to_string())]);
        seed_data_dir(&dir, "paddock", 4, &members, &state, LogIdRecord { term: 3, node: 1, index: 7 }).unwrap();
        (dir, state.state_hash().to_string())
    }

    fn request<'a>(
        from: &'a Path,
        data_dir: &'a Path,
        cluster_id: &'a str,
        members: &'a BTreeMap<u64, String>,
    ) -> PromoteRequest<'a> {
        PromoteRequest { from, cluster_id, node_id: 4, members, data_dir, force: false, bet_id_gap: 0 }
    }

    #[test]
    fn a_promoted_node_holds_the_standby_s_book_under_the_new_cluster_id_and_the_standby_is_left_as_it_was() {
        let root = tempfile::tempdir().unwrap();
        let (from, hash) = standby(root.path());
        let before = std::fs::read_dir(&from).unwrap().count();
        let members = BTreeMap::from([(4, "10.1.0.4:7101".to_string())]);
        let to = root.path().join("promoted");
        let answer = promote(&request(&from, &to, "paddock-dr", &members)).unwrap();
        assert_eq!(answer["promoted_from_cluster"], "paddock");
        assert_eq!(answer["promoted_to_index"], 7);
        assert_eq!(answer["state_hash"], hash.as_str());
        let promoted = read_data_dir(&to).unwrap();
        assert_eq!(promoted.identity.cluster_id, "paddock-dr");
        assert_eq!(promoted.state.state_hash().to_string(), hash);
        assert_eq!(read_data_dir(&from).unwrap().identity.cluster_id, "paddock");
        assert_eq!(std::fs::read_dir(&from).unwrap().count(), before);
    }

    #[test]
    fn the_promoted_book_numbers_its_bets_beyond_a_gap_and_says_so_in_its_audit_trail() {
        let root = tempfile::tempdir().unwrap();
        let (from, _) = standby(root.path());
        let members = BTreeMap::from([(4, "10.1.0.4:7101".to_string())]);
        let to = root.path().join("promoted");
        let request = PromoteRequest { bet_id_gap: BET_ID_GAP_DEFAULT, ..request(&from, &to, "paddock-dr", &members) };
        let answer = promote(&request).unwrap();
        let next = answer["next_bet_id_at_point"].as_u64().unwrap();
        assert_eq!(answer["bet_ids_from"].as_u64(), Some(next + BET_ID_GAP_DEFAULT));
        let promoted = read_data_dir(&to).unwrap();
        assert_eq!(promoted.state.next_bet_id().0, next + BET_ID_GAP_DEFAULT);
        let last = promoted.state.audit().records().last().unwrap().clone();
        assert!(matches!(last.event, paddock_ledger::audit::AuditEvent::BetIdsReserved { .. }));
        assert_eq!(answer["state_hash"], promoted.state.state_hash().to_string().as_str());
    }

    #[test]
    fn promoting_under_the_old_cluster_id_is_refused_and_creates_nothing() {
        let root = tempfile::tempdir().unwrap();
        let (from, _) = standby(root.path());
        let members = BTreeMap::from([(4, "10.1.0.4:7101".to_string())]);
        let to = root.path().join("promoted");
        let err = promote(&request(&from, &to, "paddock", &members)).unwrap_err().to_string();
        assert!(err.contains("must be a new cluster"), "{err}");
        assert!(!to.exists());
    }

    #[test]
    fn a_target_that_is_not_empty_is_refused_and_kept() {
        let root = tempfile::tempdir().unwrap();
        let (from, _) = standby(root.path());
        let members = BTreeMap::from([(4, "10.1.0.4:7101".to_string())]);
        let to = root.path().join("promoted");
        std::fs::create_dir_all(&to).unwrap();
        std::fs::write(to.join("precious"), b"keep me").unwrap();
        let err = promote(&request(&from, &to, "paddock-dr", &members)).unwrap_err().to_string();
        assert!(err.contains("is not empty"), "{err}");
        assert_eq!(std::fs::read(to.join("precious")).unwrap(), b"keep me");
    }

    #[test]
    fn a_standby_a_node_still_runs_on_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let (from, _) = standby(root.path());
        let _running = paddock_storage::DataDir::open(&from).unwrap();
        let members = BTreeMap::from([(4, "10.1.0.4:7101".to_string())]);
        let to = root.path().join("promoted");
        let err = format!("{:#}", promote(&request(&from, &to, "paddock-dr", &members)).unwrap_err());
        assert!(err.contains("stop its node first"), "{err}");
        assert!(!to.exists());
    }

    #[test]
    fn promoting_into_the_standby_s_own_directory_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let (from, _) = standby(root.path());
        let members = BTreeMap::from([(4, "10.1.0.4:7101".to_string())]);
        let err = promote(&request(&from, &from, "paddock-dr", &members)).unwrap_err().to_string();
        assert!(err.contains("the same directory"), "{err}");
    }
}
