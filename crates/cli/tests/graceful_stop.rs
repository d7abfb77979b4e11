//! A node asked to stop (SIGTERM) leaves without failing a request (issue 15): it first says it
//! is not ready while it goes on serving for `drain_ms`, so that a load balancer stops sending
//! it requests; a leader hands its leadership to the voter most in step meanwhile, so the
//! cluster waits for no election; then the requests in flight finish.

mod support;

use paddock_client::RetryPolicy;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_leader_drains_hands_over_its_leadership_and_fails_no_write() {
    let mut cluster = Cluster::start(3, &["--drain-ms", "1500"]).await;
    let leader = cluster.leader().await;
    let follower = cluster.ids().into_iter().find(|id| *id != leader).unwrap();

    // Writes through a follower (forwarded to whoever leads), with no retry of the client's own.
    let no_retry =
        RetryPolicy { attempts: 1, backoff: Duration::from_millis(1), backoff_max: Duration::from_millis(1) };
    let client = cluster.client_for(follower).with_retry(no_retry);
    let stop = Arc::new(AtomicBool::new(false));
    let failures: Arc<Mutex<Vec<String>>> = Arc::default();
    let writer = {
        let (stop, failures) = (stop.clone(), failures.clone());
        tokio::spawn(async move {
            let (mut id, deadline) = (0u64, Instant::now() + Duration::from_secs(60));
            while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                id += 1;
                if let Err(e) = client.open_account(id, "GBP", &format!("stop-{id}")).await {
                    failures.lock().unwrap().push(format!("account {id}: {e}"));
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            id
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;

    // SIGTERM the leader; while it drains it answers, but says it is not ready.
    let pid = nix::unistd::Pid::from_raw(cluster.pid(leader) as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let ready = format!("{}/health/ready", cluster.url(leader));
    poll_until(
        "the stopping leader to report not ready",
        Duration::from_secs(2),
        Duration::from_millis(20),
        async || {
            let status = reqwest::get(&ready).await.ok()?.status().as_u16();
            (status == 503).then_some(())
        },
    )
    .await;
    assert!(cluster.cluster_view(leader).await.is_some(), "while it drains it still answers requests");
    assert!(cluster.terminate(leader).await, "the leader exits by itself");

    stop.store(true, Ordering::SeqCst);
    let written = writer.await.unwrap();
    let failures = failures.lock().unwrap().clone();
    assert!(failures.is_empty(), "writes failed while the leader stopped:\n{}", failures.join("\n"));
    assert!(written > 20, "the writer barely ran: {written}");

    let log = cluster.log_text(leader);
    assert!(log.contains("leadership handed over"), "the leader handed over before it stopped:\n{log}");
    let others: Vec<u64> = cluster.ids().into_iter().filter(|id| *id != leader).collect();
    cluster.wait_leader_among(&others, Duration::from_secs(10)).await;
}
