//! A forwarded write whose connection breaks after the leader received it is reported as an
//! unknown outcome and never sent again by the node: only the client, with the same
//! idempotency key, may retry it.
//!
//! The leader's peer address is a proxy run by this test. Once armed, the proxy passes each
//! new connection's request bytes through to the leader but withholds every answer, then
//! resets the connection (RST) after the leader has had time to commit. A follower that took
//! "connection reset" for "never sent" would forward the same write again on a new
//! connection, and the leader would append it again (answering from the idempotency record):
//! the test counts the leader's log entries.
//!
//! With tonic 0.14 such a reset reaches the follower as an `Unknown` status saying "transport
//! error", so this test guards the whole path; the classification itself (by the failure's
//! type, never its text) has its teeth in `paddock_consensus::network`'s unit tests, which a
//! match on the word "connect" fails.

mod support;

use paddock_client::{Client, RetryPolicy};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// How long an armed connection is held before its reset: far more than a commit on loopback
/// takes, far less than the node's write timeout.
const HOLD: Duration = Duration::from_millis(1_500);

/// A TCP proxy in front of one node's peer port.
struct ResettingProxy {
    armed: Arc<AtomicBool>,
    /// Armed connections that carried request bytes to the node (clock samples included).
    delivered_then_reset: Arc<AtomicU64>,
    tasks: JoinSet<()>,
}

impl ResettingProxy {
    /// Binds the proxy's loopback address (known before the cluster starts, which must
    /// advertise it).
    async fn bind() -> TcpListener {
        let port = free_ports(1)[0];
        TcpListener::bind(("127.0.0.1", port)).await.expect("the proxy binds on loopback")
    }

    /// Forwards what `listener` accepts to `upstream`.
    fn start(listener: TcpListener, upstream: SocketAddr) -> ResettingProxy {
        let armed = Arc::new(AtomicBool::new(false));
        let delivered_then_reset = Arc::new(AtomicU64::new(0));
        let mut tasks = JoinSet::new();
        let (a, d) = (armed.clone(), delivered_then_reset.clone());
        tasks.spawn(async move {
            let mut conns = JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(upstream).await else { continue };
                let _ = (client.set_nodelay(true), server.set_nodelay(true));
                if a.load(Ordering::SeqCst) {
                    conns.spawn(deliver_then_reset(client, server, d.clone()));
                } else {
                    conns.spawn(pass(client, server, a.clone()));
                }
            }
        });
        ResettingProxy { armed, delivered_then_reset, tasks }
    }

    /// From now on every connection delivers its requests and is then reset; connections
    /// already open are cut so that the next call dials anew.
    fn arm(&self) {
        self.armed.store(true, Ordering::SeqCst);
    }

    fn disarm(&self) {
        self.armed.store(false, Ordering::SeqCst);
    }
}

impl Drop for ResettingProxy {
    fn drop(&mut self) {
        self.tasks.abort_all();
    }
}

/// Passes bytes both ways until either side closes, or until the proxy is armed (then the
/// connection is cut, as an armed proxy would have).
async fn pass(mut client: TcpStream, mut server: TcpStream, armed: Arc<AtomicBool>) {
    let copy = tokio::io::copy_bidirectional(&mut client, &mut server);
    let watch = async {
        while !armed.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::select! {
        _ = copy => {}
        () = watch => { let _ = client.set_zero_linger(); }
    }
}

/// Copies the client's bytes to the node and drops the node's answers; after [`HOLD`] resets
/// the client's connection.
async fn deliver_then_reset(client: TcpStream, server: TcpStream, delivered: Arc<AtomicU64>) {
    let (mut client_rx, client_tx) = client.into_split();
    let (mut server_rx, mut server_tx) = server.into_split();
    let forward = async {
        let mut buf = vec![0u8; 64 * 1024];
        let mut counted = false;
        while let Ok(n) = client_rx.read(&mut buf).await {
            if n == 0 || server_tx.write_all(&buf[..n]).await.is_err() {
                break;
            }
            if !counted {
                counted = true;
                delivered.fetch_add(1, Ordering::SeqCst);
            }
        }
        std::future::pending::<()>().await;
    };
    let swallow = async {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = server_rx.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
        std::future::pending::<()>().await;
    };
    tokio::select! {
        () = forward => {}
        () = swallow => {}
        () = tokio::time::sleep(HOLD) => {}
    }
    let client = client_rx.reunite(client_tx).expect("halves of one stream");
    let _ = client.set_zero_linger();
    drop(client);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarded_write_whose_connection_resets_after_delivery_is_unknown_and_not_resent() {
    // Node 1 is reached by the others only through the proxy, and leads.
    let listener = ResettingProxy::bind().await;
    let proxy_addr = listener.local_addr().expect("bound");
    let mut cluster = Cluster::launch_advertising(3, &[], &[(1, proxy_addr)]);
    let proxy = ResettingProxy::start(listener, cluster.node(1).peer);
    cluster.wait_ready(&cluster.ids(), READY_WITHIN).await;
    if cluster.leader().await != 1 {
        cluster.client().transfer_leader(1).await.expect("leadership moves to node 1");
        poll_until("node 1 to lead", Duration::from_secs(15), Duration::from_millis(50), async || {
            (cluster.wait_leader_among(&[1, 2, 3], Duration::from_secs(5)).await == 1).then_some(())
        })
        .await;
    }
    let leader = cluster.client_for(1);
    seed_market(&leader, 1, 1).await;
    leader.open_account(7, "GBP", &paddock_client::fresh_key()).await.expect("the account opens on the leader");

    // A follower that gives up at the first failure, so the node's own behaviour is seen.
    let once = RetryPolicy { attempts: 1, backoff: Duration::from_millis(1), backoff_max: Duration::from_millis(1) };
    let follower =
        Client::new(vec![cluster.url(2)], Duration::from_secs(20)).with_keys(&cluster.keys().ring()).with_retry(once);
    proxy.arm();
    // Connections already open through the proxy (the followers sample the leader's clock)
    // are cut within 10 ms; give that time so the write takes an armed connection.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let entries_before = cluster.cluster_view(1).await.expect("the leader answers").last_log_index;
    let first = follower.deposit(7, 2_500, "deposit-7-reset").await;
    let error = first.expect_err("the follower cannot have the leader's answer: the proxy withheld it");
    assert_eq!(
        error.code(),
        Some("outcome_unknown"),
        "a write that reached the leader before the connection reset is of unknown outcome, not {error}"
    );
    assert!(proxy.delivered_then_reset.load(Ordering::SeqCst) >= 1, "the proxy delivered the write and reset");
    let entries_after = cluster.cluster_view(1).await.expect("the leader answers").last_log_index;
    assert_eq!(
        entries_after - entries_before,
        1,
        "the leader appended the write once: the follower must not resend a write that may have arrived"
    );

    // The leader did commit it: the client's retry with the same key learns the first outcome
    // and moves no more money.
    proxy.disarm();
    let retried = cluster.client().deposit(7, 2_500, "deposit-7-reset").await.expect("the retry answers");
    assert_eq!(retried.balance_minor, 2_500, "the deposit was applied exactly once");
    let account = cluster.client_for(3).account(7).await.expect("the account reads on another node");
    assert_eq!(account.balance_minor, 2_500);
}
