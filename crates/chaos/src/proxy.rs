//! A fault-injecting TCP proxy between the nodes.
//!
//! One listener per node at its advertised address (`127.0.2.i:peer_port`) forwards to the
//! node's real peer address (`127.0.1.i:peer_port`). The source node of a connection is read
//! from its peer IP (`127.0.1.j` → node `j`, set by `--peer-source-ip`), so each connection
//! belongs to a directed link `(from, to)`: `from` dialled `to`.
//!
//! A shared [`Partition`] holds the blocked directed links and per-link delays:
//! - when a link becomes blocked, its open connections are aborted at once and new ones are
//!   accepted and dropped straight away (the dialler sees a reset connection);
//! - a delay on `(from, to)` holds every chunk flowing from `from` to `to` for that long
//!   (requests on connections `from` dialled, answers on connections `to` dialled).
//!
//! Blocking is per dialling direction: blocking `(a, b)` stops `a` from reaching `b` while
//! `b` may still call `a` (and get answers). [`Partition::isolate`], [`Partition::split`]
//! block both directions. Connections from an unknown source are never blocked.
//!
//! The proxy's tasks live as long as the [`Proxy`]: dropping it aborts every listener and
//! connection.

use crate::cluster::node_of_ip;
use anyhow::{Context, Result};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{AbortHandle, JoinHandle};

/// Counters of what the proxy did.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct ProxyStats {
    /// Connections forwarded.
    pub forwarded: u64,
    /// Connections accepted and dropped because their link was blocked.
    pub refused: u64,
    /// Open connections aborted when their link became blocked.
    pub aborted: u64,
    /// Connections whose upstream (the real node) could not be reached.
    pub upstream_failed: u64,
}

#[derive(Default)]
struct State {
    blocked: BTreeSet<(u64, u64)>,
    delays: BTreeMap<(u64, u64), Duration>,
    conns: HashMap<u64, (u64, u64, AbortHandle)>,
    next_conn: u64,
    stats: ProxyStats,
}

impl State {
    fn abort_blocked(&mut self) {
        let blocked = &self.blocked;
        let mut aborted = 0;
        self.conns.retain(|_, (from, to, handle)| {
            if handle.is_finished() {
                return false;
            }
            if blocked.contains(&(*from, *to)) {
                handle.abort();
                aborted += 1;
                return false;
            }
            true
        });
        self.stats.aborted += aborted;
    }
}

/// Which links are cut or slowed. Cheap to clone; all clones share the state.
#[derive(Clone)]
pub struct Partition {
    nodes: Vec<u64>,
    state: Arc<Mutex<State>>,
}

impl Partition {
    /// No link blocked among `nodes`.
    pub fn new(nodes: Vec<u64>) -> Partition {
        Partition { nodes, state: Arc::default() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Blocks the directed links given (in addition to those already blocked) and aborts
    /// their open connections.
    pub fn block(&self, links: &[(u64, u64)]) {
        let mut s = self.lock();
        s.blocked.extend(links.iter().copied());
        s.abort_blocked();
        tracing::info!(blocked = ?s.blocked, "proxy: links blocked");
    }

    /// Cuts every link to and from `node`.
    pub fn isolate(&self, node: u64) {
        let links: Vec<(u64, u64)> =
            self.nodes.iter().filter(|n| **n != node).flat_map(|n| [(node, *n), (*n, node)]).collect();
        self.block(&links);
    }

    /// Cuts every link between the two sides (both directions).
    pub fn split(&self, majority: &[u64], minority: &[u64]) {
        let links: Vec<(u64, u64)> =
            majority.iter().flat_map(|a| minority.iter().flat_map(move |b| [(*a, *b), (*b, *a)])).collect();
        self.block(&links);
    }

    /// Unblocks every link and removes every delay.
    pub fn heal(&self) {
        let mut s = self.lock();
        s.blocked.clear();
        s.delays.clear();
        tracing::info!("proxy: healed");
    }

    /// Delays data flowing from `from` to `to` (zero removes the delay).
    pub fn set_delay(&self, from: u64, to: u64, delay: Duration) {
        let mut s = self.lock();
        if delay.is_zero() {
            s.delays.remove(&(from, to));
        } else {
            s.delays.insert((from, to), delay);
        }
    }

    /// Whether `from` may not dial `to` now.
    pub fn is_blocked(&self, from: u64, to: u64) -> bool {
        self.lock().blocked.contains(&(from, to))
    }

    /// The blocked links.
    pub fn blocked(&self) -> Vec<(u64, u64)> {
        self.lock().blocked.iter().copied().collect()
    }

    fn delay(&self, from: u64, to: u64) -> Duration {
        self.lock().delays.get(&(from, to)).copied().unwrap_or_default()
    }

    /// Counters so far.
    pub fn stats(&self) -> ProxyStats {
        self.lock().stats.clone()
    }

    /// Registers a forwarding task, unless its link became blocked meanwhile (then aborts it).
    fn register(&self, from: u64, to: u64, handle: AbortHandle) -> Option<u64> {
        let mut s = self.lock();
        if s.blocked.contains(&(from, to)) {
            handle.abort();
            s.stats.aborted += 1;
            return None;
        }
        s.stats.forwarded += 1;
        if handle.is_finished() {
            return None;
        }
        let id = s.next_conn;
        s.next_conn += 1;
        s.conns.insert(id, (from, to, handle));
        Some(id)
    }

    fn forget(&self, id: u64) {
        self.lock().conns.remove(&id);
    }

    fn count_refused(&self) {
        self.lock().stats.refused += 1;
    }

    fn count_upstream_failed(&self) {
        self.lock().stats.upstream_failed += 1;
    }

    /// Aborts every open connection (used on drop).
    fn abort_all(&self) {
        let mut s = self.lock();
        for (_, (_, _, handle)) in s.conns.drain() {
            handle.abort();
        }
    }
}

/// One proxied node: where to listen and where to forward.
#[derive(Clone, Copy, Debug)]
pub struct Route {
    /// The node behind this listener.
    pub node: u64,
    /// Listen here (the node's advertised address).
    pub listen: SocketAddr,
    /// Forward to here (the node's real peer address).
    pub upstream: SocketAddr,
}

/// The running proxy.
pub struct Proxy {
    partition: Partition,
    listeners: Vec<JoinHandle<()>>,
}

impl Proxy {
    /// Binds every route's listener and starts forwarding.
    pub async fn start(routes: &[Route], partition: Partition) -> Result<Proxy> {
        let mut listeners = Vec::new();
        for route in routes {
            let listener = TcpListener::bind(route.listen)
                .await
                .with_context(|| format!("proxy cannot listen on {}", route.listen))?;
            listeners.push(tokio::spawn(accept_loop(listener, *route, partition.clone())));
        }
        Ok(Proxy { partition, listeners })
    }

    /// The shared partition state.
    pub fn partition(&self) -> &Partition {
        &self.partition
    }

    /// Stops listening and aborts every connection.
    pub fn stop(&mut self) {
        for l in self.listeners.drain(..) {
            l.abort();
        }
        self.partition.abort_all();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Accepts until the proxy is dropped (the task is aborted then).
async fn accept_loop(listener: TcpListener, route: Route, partition: Partition) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "proxy accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let from = node_of_ip(peer.ip()).unwrap_or(0);
        if partition.is_blocked(from, route.node) {
            partition.count_refused();
            drop(stream);
            continue;
        }
        let p = partition.clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<u64>();
        let task = tokio::spawn(async move {
            forward(stream, route.upstream, from, route.node, &p).await;
            if let Ok(id) = rx.await {
                p.forget(id);
            }
        });
        if let Some(id) = partition.register(from, route.node, task.abort_handle()) {
            let _ = tx.send(id);
        }
    }
}

async fn forward(client: TcpStream, upstream: SocketAddr, from: u64, to: u64, partition: &Partition) {
    let server = match tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(upstream)).await {
        Ok(Ok(s)) => s,
        _ => {
            partition.count_upstream_failed();
            return;
        }
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    // Either direction ending ends the connection.
    tokio::select! {
        _ = pump(cr, sw, from, to, partition) => {}
        _ = pump(sr, cw, to, from, partition) => {}
    }
}

/// Copies one direction until end of stream or an error.
async fn pump(
    mut r: tokio::net::tcp::OwnedReadHalf,
    mut w: tokio::net::tcp::OwnedWriteHalf,
    from: u64,
    to: u64,
    partition: &Partition,
) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let delay = partition.delay(from, to);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if w.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = w.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{node_ip, proxy_ip};

    #[test]
    fn isolate_and_split_block_both_directions_and_heal_clears() {
        let p = Partition::new(vec![1, 2, 3, 4, 5]);
        p.isolate(2);
        assert!(p.is_blocked(2, 1) && p.is_blocked(1, 2) && !p.is_blocked(1, 3));
        p.heal();
        assert!(p.blocked().is_empty());
        p.split(&[1, 2, 3], &[4, 5]);
        assert!(p.is_blocked(1, 4) && p.is_blocked(5, 3) && !p.is_blocked(4, 5) && !p.is_blocked(1, 2));
        assert_eq!(p.blocked().len(), 12);
    }

    /// A listener on node 1's address echoes; node 2 dials it through node 1's proxy from its
    /// own source address; blocking (2, 1) cuts the open connection and refuses new ones.
    #[tokio::test]
    async fn a_blocked_link_loses_its_connections_and_cannot_reconnect() {
        let echo = TcpListener::bind((node_ip(1), 0)).await.unwrap();
        let upstream = echo.local_addr().unwrap();
        tokio::spawn(async move {
            for _ in 0..16 {
                let Ok((mut s, _)) = echo.accept().await else { return };
                tokio::spawn(async move {
                    let mut buf = [0u8; 64];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        let probe = std::net::TcpListener::bind((proxy_ip(1), 0)).unwrap();
        let listen = probe.local_addr().unwrap();
        drop(probe);
        let partition = Partition::new(vec![1, 2]);
        let _proxy = Proxy::start(&[Route { node: 1, listen, upstream }], partition.clone()).await.unwrap();
        let dial = || async {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.bind(SocketAddr::from((node_ip(2), 0))).unwrap();
            socket.connect(listen).await.unwrap()
        };
        let mut conn = dial().await;
        conn.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        conn.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        partition.block(&[(2, 1)]);
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(2), conn.read_to_end(&mut rest)).await;
        assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "the open connection is cut: {read:?}");
        let mut again = dial().await;
        let _ = again.write_all(b"ping").await;
        let read = tokio::time::timeout(Duration::from_secs(2), again.read(&mut buf)).await;
        assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "a new connection is dropped: {read:?}");
        assert!(partition.stats().refused >= 1 && partition.stats().aborted >= 1);
        partition.heal();
        let mut healed = dial().await;
        healed.write_all(b"pong").await.unwrap();
        healed.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"pong");
    }
}
