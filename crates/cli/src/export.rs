//! `paddock export`: a regulator export (DOMAIN.md R6) for a time range, from a backup chain
//! (a directory or `s3://bucket/prefix`), into a new directory:
//!
//! - `bets.jsonl`: every bet placed in the range, one JSON object a line, as `GET /v1/bets/{id}`
//!   shows it, as it stood at the end of the range;
//! - `money.jsonl`: every money movement, one a line — per command and account, the change of
//!   the wallet, the stakes held and the debt, with the command's log index and time;
//! - `audit.json`: the audit trail from its first record to the end of the range, as `paddock
//!   audit export` writes it, so `paddock audit verify --file` checks its hash chain;
//! - `manifest.json`: the range, the chain, the last log index and state hash reached, the
//!   audit head, the counts and the SHA-256 of each file.
//!
//! The chain is checked file by file and by state hash as it is replayed, as `paddock backup
//! verify` does; a damaged chain is refused, naming the file.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// What `paddock export` was asked.
pub struct Args {
    pub from: String,
    pub since_ms: u64,
    pub until_ms: u64,
    pub out: PathBuf,
    pub backup_key_file: Option<PathBuf>,
}

fn write(dir: &Path, name: &str, bytes: &[u8], digests: &mut serde_json::Map<String, serde_json::Value>) -> Result<()> {
    let path = dir.join(name);
    std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    digests.insert(name.to_string(), paddock_backup::export::sha256_hex(bytes).into());
    Ok(())
}

/// Runs the export and returns its manifest.
pub fn run(args: Args) -> Result<serde_json::Value> {
    if args.out.exists() && std::fs::read_dir(&args.out)?.next().is_some() {
        bail!("{} is not empty: an export goes into a new, empty directory", args.out.display());
    }
    let key = crate::backup::key(args.backup_key_file.as_deref())?;
    let chain = crate::backup::open_blocking(&args.from)?;
    let export = paddock_backup::export::export(chain.dir(), key.as_ref(), args.since_ms, args.until_ms)?;
    std::fs::create_dir_all(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
    let mut digests = serde_json::Map::new();

    let mut bets = Vec::new();
    for bet in &export.bets {
        serde_json::to_writer(&mut bets, &paddock_api::convert::bet_body(bet))?;
        bets.push(b'\n');
    }
    write(&args.out, "bets.jsonl", &bets, &mut digests)?;

    let mut money = Vec::new();
    for m in &export.movements {
        serde_json::to_writer(
            &mut money,
            &serde_json::json!({
                "log_index": m.log_index,
                "at_ms": m.at.0,
                "account_id": m.account.0,
                "currency": m.currency.as_str(),
                "cause": m.cause,
                "wallet_minor": m.wallet,
                "reserved_minor": m.reserved,
                "debt_minor": m.debt,
            }),
        )?;
        money.push(b'\n');
    }
    write(&args.out, "money.jsonl", &money, &mut digests)?;

    let trail: Vec<paddock_api::wire::AuditRecordBody> =
        export.audit.iter().map(paddock_api::convert::audit_body).collect();
    let verified = paddock_api::convert::verify_audit_export(&trail)
        .map_err(|e| anyhow::anyhow!("the chain's audit trail does not verify: {e}"))?;
    write(&args.out, "audit.json", &serde_json::to_vec_pretty(&trail)?, &mut digests)?;

    let manifest = serde_json::json!({
        "format": "paddock-regulator-export",
        "version": 1,
        "since_ms": args.since_ms,
        "until_ms": args.until_ms,
        "chain": args.from,
        "chain_starts_at_ms": export.chain_starts_at.0,
        "entries_in_range": export.entries,
        "last_log_index": export.last_index,
        "state_hash": export.state_hash.to_string(),
        "bets": export.bets.len(),
        "money_movements": export.movements.len(),
        "audit_records": verified.records,
        "audit_records_in_range": export.audit_in_range,
        "audit_head": verified.head,
        "files": digests,
    });
    let path = args.out.join("manifest.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&manifest)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(manifest)
}
