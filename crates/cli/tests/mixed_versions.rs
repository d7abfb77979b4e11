//! A cluster half-way through a rolling upgrade (issue 15), on real processes of two builds
//! that differ in one log-entry format: the tests' own `paddock` (entry format 1) and the test
//! build of the next format (`cargo xtask next-build`: entry format 2, version `+next-format`),
//! whose leader proposes a format-2 entry as soon as the write path lets it.
//!
//! While one member runs the older build, the newer leader's format-2 entry is refused before
//! it is proposed, and the older member keeps applying everything; once every member runs the
//! newer build the entry is written; and the older build then refuses to start on that data,
//! saying what to do, while the newer build starts on it again.

mod support;

use paddock_api::wire::ClusterBody;
use std::time::Duration;
use support::*;

/// The view of `id` once it leads and every member has announced a format to it.
async fn leader_view(cluster: &Cluster, id: u64) -> ClusterBody {
    poll_until(
        &format!("node {id} to lead and hear every member"),
        Duration::from_secs(30),
        Duration::from_millis(100),
        async || {
            cluster
                .cluster_view(id)
                .await
                .filter(|v| v.role == "leader" && v.members.iter().all(|m| m.entry_format.is_some()))
        },
    )
    .await
}

async fn open_accounts(cluster: &Cluster, ids: std::ops::RangeInclusive<u64>) {
    let client = cluster.client();
    for id in ids {
        client.open_account(id, "GBP", &format!("open-{id}")).await.unwrap_or_else(|e| panic!("account {id}: {e}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_never_replicates_an_entry_an_older_member_cannot_decode_and_an_older_build_refuses_newer_data() {
    let next = next_build();
    let mut cluster = Cluster::start(3, &["--drain-ms", "200"]).await;
    open_accounts(&cluster, 1..=10).await;

    // Followers first: both run the newer build, then one of them leads.
    let old = cluster.leader().await;
    let upgraded: Vec<u64> = cluster.ids().into_iter().filter(|id| *id != old).collect();
    for id in &upgraded {
        assert!(cluster.terminate(*id).await, "node {id} stops cleanly");
        cluster.set_binary(*id, &next);
        cluster.restart(*id);
        cluster.wait_ready(&[*id], Duration::from_secs(30)).await;
    }
    let new_leader = upgraded[0];
    cluster.client_for(old).transfer_leader(new_leader).await.expect("leadership moves to an upgraded node");
    let view = leader_view(&cluster, new_leader).await;

    // The newer leader sees the older member for what it is and holds the cluster to format 1.
    let member = |v: &ClusterBody, id: u64| v.members.iter().find(|m| m.node_id == id).cloned().unwrap();
    assert_eq!(view.entry_format, Some(1), "one member reads only format 1");
    assert_eq!(member(&view, old).entry_format, Some(1));
    assert_eq!(member(&view, old).version.as_deref(), Some(env!("CARGO_PKG_VERSION")));
    for id in &upgraded {
        assert_eq!(member(&view, *id).entry_format, Some(2));
        assert_eq!(member(&view, *id).version, Some(format!("{}+next-format", env!("CARGO_PKG_VERSION"))));
    }
    // Its format-2 entry was refused by the write path, and the older member applies every
    // entry the newer leader writes: one state on all three.
    open_accounts(&cluster, 11..=20).await;
    cluster.wait_converged(&cluster.ids(), Duration::from_secs(30)).await;
    let waits = format!("member {old} read only format 1");
    let leader_log = poll_until(
        "the leader to say why format 2 waits",
        Duration::from_secs(10),
        Duration::from_millis(100),
        async || {
            let log = cluster.log_text(new_leader);
            (log.contains("the new log entry format waits") && log.contains(&waits)).then_some(log)
        },
    )
    .await;
    assert!(
        !leader_log.contains("every member reads the new log entry format"),
        "no format-2 entry while node {old} runs the older build"
    );

    // The last member is upgraded: the format-2 entry is written and replicated.
    assert!(cluster.terminate(old).await);
    cluster.set_binary(old, &next);
    cluster.restart(old);
    cluster.wait_ready(&[old], Duration::from_secs(30)).await;
    poll_until("the format-2 entry", Duration::from_secs(30), Duration::from_millis(200), async || {
        let view = cluster.cluster_view(new_leader).await?;
        let written = cluster.log_text(new_leader).contains("every member reads the new log entry format");
        (view.entry_format == Some(2) && written).then_some(())
    })
    .await;
    open_accounts(&cluster, 21..=25).await;
    cluster.wait_converged(&cluster.ids(), Duration::from_secs(30)).await;

    // Going back to the older build on that data is refused, with what to do.
    assert!(cluster.terminate(old).await);
    cluster.set_binary(old, std::path::Path::new(env!("CARGO_BIN_EXE_paddock")));
    cluster.restart(old);
    poll_until("the older build to refuse and exit", Duration::from_secs(30), Duration::from_millis(100), async || {
        (!cluster.is_running(old)).then_some(())
    })
    .await;
    let refusal = cluster.log_text(old);
    assert!(
        refusal.contains("was written by a newer Paddock build")
            && refusal.contains("record format version 2 is not supported (max 1)")
            && refusal.contains("Start the newer build on it again"),
        "the older build says why it refuses and what to do:\n{refusal}"
    );

    // The newer build starts on it again and catches up.
    cluster.set_binary(old, &next);
    cluster.restart(old);
    cluster.wait_ready(&[old], Duration::from_secs(30)).await;
    open_accounts(&cluster, 26..=30).await;
    let hash = cluster.wait_converged(&cluster.ids(), Duration::from_secs(30)).await;
    assert!(hash.accounts >= 30);
}
