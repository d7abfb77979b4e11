//! Settled history leaves memory by itself and stays queryable, on a real three-node cluster
//! with a retention of a few seconds (`--history-retention-s`):
//! - the leader archives the settled market (audited as `history_archived`), every replica
//!   writes the same segment file and converges on one state hash, and the open market's bet
//!   stays in memory;
//! - an account's bets page in one id order across archived and live bets, an archived bet is
//!   still found by id, and a restarted node still serves them from its own disk;
//! - balances do not move;
//! - `paddock export` reads a backup chain into a regulator export for a time range — every
//!   bet placed (archived ones included), money movements that add up to every balance, and
//!   an audit trail that verifies — and refuses a range the chain does not hold.

mod support;

use paddock_api::wire::{BetBody, SelectionResultBody, SettleRequest};
use paddock_client::{fresh_key, Client};
use reqwest::Method;
use std::time::Duration;
use support::*;

async fn page(client: &Client, account: u64, after: Option<u64>, limit: usize) -> Vec<BetBody> {
    let after = after.map(|a| format!("&after={a}")).unwrap_or_default();
    let path = format!("/v1/accounts/{account}/bets?limit={limit}{after}");
    client.call(Method::GET, &path, None::<&()>, None).await.expect("a page of bets")
}

/// Every bet of `account`, following the cursor two at a time.
async fn all_in_pages_of_two(client: &Client, account: u64) -> Vec<u64> {
    let mut ids = Vec::new();
    loop {
        let next = page(client, account, ids.last().copied(), 2).await;
        let done = next.len() < 2;
        ids.extend(next.iter().map(|b| b.bet_id));
        if done {
            return ids;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settled_history_leaves_memory_after_the_retention_and_still_pages_with_live_bets() {
    let mut cluster =
        Cluster::start(3, &["--history-retention-s", "2", "--history-interval-s", "1", "--snapshot-logs", "20"]).await;
    let client = cluster.client();
    seed_market(&client, 1, 1).await;
    seed_market(&client, 2, 2).await;
    client.open_account(7, "GBP", &fresh_key()).await.expect("account opens");
    client.deposit(7, 100_000, "deposit-7").await.expect("deposit");
    let mut on_1 = Vec::new();
    for n in 0..5 {
        on_1.push(client.place_bet(&single(7, 1, 100 + n), &format!("bet-1-{n}")).await.expect("bet").bet_id);
    }
    let on_2 = client.place_bet(&single(7, 2, 300), "bet-2").await.expect("bet").bet_id;
    let last_on_1 = client.place_bet(&single(7, 1, 200), "bet-1-last").await.expect("bet").bet_id;
    on_1.push(last_on_1);
    client.market_action(1, "close", "", "close-1").await.expect("closed");
    let settle = SettleRequest {
        results: vec![SelectionResultBody { selection_id: 11, win: "win".into(), place: None }],
        reason: String::new(),
    };
    client.settle(1, &settle, false, "settle-1").await.expect("settled");
    let balance = client.account(7).await.expect("account 7").balance_minor;

    poll_until("market 1 to leave memory", Duration::from_secs(30), Duration::from_millis(200), async || {
        client.market(1).await.is_err().then_some(())
    })
    .await;
    let converged = cluster.wait_converged(&cluster.ids(), Duration::from_secs(15)).await;
    assert_eq!(converged.bets, 1, "only the open market's bet is still in memory");
    assert!(client.market(2).await.is_ok(), "the open market stays");
    assert_eq!(client.account(7).await.expect("account 7").balance_minor, balance, "archiving moves no money");
    let audit = cluster.audit_events(1).await;
    let archived = audit.iter().filter(|e| e.contains(r#""type":"history_archived""#)).count();
    assert_eq!(archived, 1, "one history_archived record: {audit:?}");
    assert!(audit.last().is_some_and(|e| e.contains(r#""bets":6"#) && e.contains(r#""markets":1"#)), "{audit:?}");

    // Every node wrote the same segment.
    let segments: Vec<Vec<u8>> = cluster
        .ids()
        .iter()
        .map(|id| {
            let dir = cluster.node(*id).data_dir.join("archive");
            let file = std::fs::read_dir(&dir)
                .expect("an archive directory")
                .filter_map(|e| e.ok().map(|e| e.path()))
                .find(|p| p.extension().is_some_and(|x| x == "pda"))
                .unwrap_or_else(|| panic!("node {id} has no segment in {}", dir.display()));
            std::fs::read(file).expect("segment readable")
        })
        .collect();
    assert!(segments.windows(2).all(|w| w[0] == w[1]), "the replicas' segments differ");

    // One id order across archived and live bets, page by page, on every node.
    let mut expected = on_1.clone();
    expected.push(on_2);
    expected.sort_unstable();
    for id in cluster.ids() {
        let node = cluster.client_for(id);
        poll_until(
            &format!("node {id} to index its archive"),
            Duration::from_secs(10),
            Duration::from_millis(200),
            async || (all_in_pages_of_two(&node, 7).await == expected).then_some(()),
        )
        .await;
    }
    let archived = client.bet(on_1[0]).await.expect("an archived bet is found by id");
    assert_eq!((archived.status.as_str(), archived.stake_minor), ("settled", 100));
    assert_eq!(client.bet(on_2).await.expect("the live bet").status, "open");

    // A restarted node serves its archive from its own disk.
    assert!(cluster.terminate(2).await, "node 2 stops");
    cluster.restart(2);
    cluster.wait_ready(&[2], READY_WITHIN).await;
    let node_2 = cluster.client_for(2);
    assert_eq!(all_in_pages_of_two(&node_2, 7).await, expected);
    assert_eq!(node_2.bet(last_on_1).await.expect("archived bet after restart").bet_id, last_on_1);

    // A node whose segment is gone (a lost file, a restored disk) fetches it from a peer,
    // checked against its audit trail's digest, and answers `unavailable` until it has. More
    // entries first, so that every node's snapshot lies past the archiving and a restart does
    // not simply apply it again.
    for n in 0..30 {
        client.deposit(7, 1, &format!("later-{n}")).await.expect("deposit");
    }
    cluster.wait_converged(&cluster.ids(), Duration::from_secs(15)).await;
    let archive_3 = cluster.node(3).data_dir.join("archive");
    let segment_3 = std::fs::read_dir(&archive_3)
        .expect("node 3's archive")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "pda"))
        .expect("node 3's segment");
    assert!(cluster.terminate(3).await, "node 3 stops");
    std::fs::remove_file(&segment_3).expect("the segment is lost");
    std::fs::remove_file(archive_3.join("index.redb")).expect("and its index");
    cluster.restart(3);
    cluster.wait_ready(&[3], READY_WITHIN).await;
    let node_3 = cluster.client_for(3);
    poll_until("node 3 to fetch its lost segment", Duration::from_secs(15), Duration::from_millis(200), async || {
        std::fs::read(&segment_3).ok()
    })
    .await;
    assert_eq!(std::fs::read(&segment_3).expect("fetched segment"), segments[0], "the same bytes as the others'");
    poll_until("node 3 to page its archive again", Duration::from_secs(10), Duration::from_millis(200), async || {
        (all_in_pages_of_two(&node_3, 7).await == expected).then_some(())
    })
    .await;
    assert!(cluster.log_text(3).contains("fetched a missing archive segment from a peer"));
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock after 1970").as_millis() as u64
}

fn jsonl(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .expect("export file")
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object a line"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_regulator_export_from_the_backup_chain_holds_archived_bets_every_money_movement_and_a_verified_trail() {
    let cluster = Cluster::start(3, &["--history-retention-s", "2", "--history-interval-s", "1"]).await;
    let client = cluster.client();
    let work = tempfile::tempdir().expect("scratch");
    let chain = work.path().join("chain");
    let chain_text = chain.to_str().expect("utf-8 path");
    let node = cluster.url(1);
    let since = now_ms();
    paddock_as_operator(&cluster, &["backup", "--node", &node, "--to", chain_text], &[]).expect("a full backup");

    seed_market(&client, 1, 1).await;
    seed_market(&client, 2, 2).await;
    let mut placed = Vec::new();
    for account in [7, 8] {
        client.open_account(account, "GBP", &fresh_key()).await.expect("account opens");
        client.deposit(account, 50_000, &format!("deposit-{account}")).await.expect("deposit");
        placed
            .push(client.place_bet(&single(account, 1, 1_000), &format!("bet-1-{account}")).await.expect("bet").bet_id);
        placed.push(client.place_bet(&single(account, 2, 500), &format!("bet-2-{account}")).await.expect("bet").bet_id);
    }
    client.withdraw(8, 2_000, "withdraw-8").await.expect("withdrawal");
    client.market_action(1, "close", "", "close-1").await.expect("closed");
    let settle = SettleRequest {
        results: vec![SelectionResultBody { selection_id: 11, win: "win".into(), place: None }],
        reason: String::new(),
    };
    client.settle(1, &settle, false, "settle-1").await.expect("settled");
    poll_until("market 1 to leave memory", Duration::from_secs(30), Duration::from_millis(200), async || {
        client.market(1).await.is_err().then_some(())
    })
    .await;
    paddock_as_operator(&cluster, &["backup", "--node", &node, "--to", chain_text], &[]).expect("an increment");
    let until = now_ms() + 1;

    let out = work.path().join("export");
    let args = ["export", "--from", chain_text, "--since-ms", &since.to_string(), "--until-ms", &until.to_string()];
    let out_text = out.to_str().expect("utf-8 path");
    let manifest = paddock_as_operator(&cluster, &[&args[..], &["--out", out_text]].concat(), &[]).expect("an export");

    let bets = jsonl(&out.join("bets.jsonl"));
    let ids: Vec<u64> = bets.iter().map(|b| b["bet_id"].as_u64().expect("an id")).collect();
    assert_eq!(ids, placed, "every bet placed in the range, archived or not");
    let settled = bets.iter().filter(|b| b["status"] == "settled").count();
    assert_eq!(settled, 2, "the bets on market 1 as they ended: {bets:?}");

    // The movements add up to every account's balances, from zero when it opened.
    let money = jsonl(&out.join("money.jsonl"));
    for account in [7u64, 8] {
        let mine: Vec<&serde_json::Value> = money.iter().filter(|m| m["account_id"] == account).collect();
        let sum = |field: &str| mine.iter().map(|m| m[field].as_i64().expect("minor units")).sum::<i64>();
        let now = client.account(account).await.expect("account");
        assert_eq!((sum("wallet_minor"), sum("reserved_minor")), (now.balance_minor, now.exposure_minor), "{mine:?}");
        assert!(mine.iter().any(|m| m["cause"] == "deposit") && mine.iter().any(|m| m["cause"] == "settle_market"));
    }
    assert!(money.iter().any(|m| m["cause"] == "withdrawal" && m["wallet_minor"] == -2_000));

    // The trail verifies from its first record, and every file is the one the manifest names.
    let verified =
        paddock_as_operator(&cluster, &["audit", "verify", "--file", &format!("{out_text}/audit.json")], &[])
            .expect("the exported trail verifies");
    assert_eq!(verified["head"], manifest["audit_head"]);
    let trail = std::fs::read_to_string(out.join("audit.json")).expect("audit.json");
    assert!(trail.contains("history_archived"), "the archive is in the exported trail");
    for name in ["bets.jsonl", "money.jsonl", "audit.json"] {
        let bytes = std::fs::read(out.join(name)).expect("export file");
        assert_eq!(manifest["files"][name], paddock_backup::export::sha256_hex(&bytes), "{name}");
    }

    // Refused, changing nothing: a directory that is not empty, a range the chain does not hold.
    let (code, message) = paddock_as_operator(&cluster, &[&args[..], &["--out", out_text]].concat(), &[])
        .expect_err("an export over an existing one");
    assert!(code != 0 && message.contains("not empty"), "{message}");
    let elsewhere = work.path().join("too-early");
    let early = ["export", "--from", chain_text, "--since-ms", "1000", "--until-ms", &until.to_string()];
    let (_, message) =
        paddock_as_operator(&cluster, &[&early[..], &["--out", elsewhere.to_str().expect("utf-8")]].concat(), &[])
            .expect_err("a range before the chain");
    assert!(message.contains("older chain"), "{message}");
}
