//! A cluster of real `paddock` processes, each on its own loopback address.
//!
//! # Addresses
//! Node `i` (1-based) listens for HTTP on `127.0.1.i:(http_base+i)` and for peers on
//! `127.0.1.i:peer_port`, dials its peers from source address `127.0.1.i`
//! (`--peer-source-ip`), and *advertises* `127.0.2.i:peer_port` (`--peer-advertise`): the
//! address of its fault-injecting proxy ([`crate::proxy`]). The bootstrap list names the proxy
//! addresses, so every peer connection goes through a proxy, and the proxy tells the source
//! node of a connection from its peer IP.
//!
//! # Processes
//! - Each node's stdout and stderr go to `node-N.log` in the run directory; a restart appends.
//! - A node is signalled by its PID only: SIGKILL ([`Cluster::kill`]), SIGSTOP/SIGCONT
//!   ([`Cluster::pause`], [`Cluster::resume`]), SIGTERM with a bounded wait and a SIGKILL
//!   fallback ([`Cluster::terminate`]). Dropping the cluster SIGKILLs and reaps every child.
//! - Every wait is bounded in time and in rounds and returns an error naming what it waited for.

use anyhow::{bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use paddock_api::wire::{ClusterBody, StateHashBody};
use paddock_client::{Client, RetryPolicy};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The address node `id` listens on (HTTP and peers) and dials from.
pub fn node_ip(id: u64) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 1, id as u8)
}

/// The address of node `id`'s proxy (what the node advertises to its peers).
pub fn proxy_ip(id: u64) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 2, id as u8)
}

/// The node a connection comes from, by its source address (`127.0.1.j` → `j`).
pub fn node_of_ip(ip: IpAddr) -> Option<u64> {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            (o[0] == 127 && o[1] == 0 && o[2] == 1 && o[3] != 0).then_some(u64::from(o[3]))
        }
        IpAddr::V6(_) => None,
    }
}

/// Where one node lives.
#[derive(Clone, Debug)]
pub struct NodeSpec {
    /// Node id (1-based).
    pub id: u64,
    /// HTTP API address.
    pub http: SocketAddr,
    /// Real peer (gRPC) listen address.
    pub peer: SocketAddr,
    /// The address this node advertises: its proxy's (or its own peer address, unproxied).
    pub advertise: SocketAddr,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Log file (stdout and stderr).
    pub log_path: PathBuf,
    /// Milliseconds added to the node's wall clock, re-read while it runs (a clock fault).
    pub clock_offset_path: PathBuf,
    /// Milliseconds added to every fsync of the node's Raft log, re-read while it runs (a slow
    /// disk).
    pub fsync_delay_path: PathBuf,
}

/// Ports of a cluster: HTTP `http_base + i`, peers and proxies `peer_port` on each node's IP.
#[derive(Clone, Copy, Debug)]
pub struct Ports {
    /// HTTP port of node i is `http_base + i`.
    pub http_base: u16,
    /// Peer port (same number on every node's own address and on every proxy address).
    pub peer_port: u16,
}

impl Ports {
    /// Finds ports free on every address the cluster will use, starting from a base derived
    /// from the process id, below the kernel's ephemeral range (so an outgoing connection
    /// cannot take a killed node's port before it restarts).
    pub fn find(nodes: usize, preferred: Option<u16>) -> Result<Ports> {
        let start = preferred.unwrap_or(20_000 + ((std::process::id() % 900) as u16) * 10);
        for round in 0..400u16 {
            let base = start.wrapping_add(round * 10);
            if !(1024..31_000).contains(&base) {
                continue;
            }
            let ports = Ports { http_base: base, peer_port: base + 9 };
            if ports.all_free(nodes) {
                return Ok(ports);
            }
            if preferred.is_some() {
                bail!("ports from {base} are not free on 127.0.1.x/127.0.2.x");
            }
        }
        bail!("found no free ports for {nodes} nodes on 127.0.1.x/127.0.2.x")
    }

    fn all_free(&self, nodes: usize) -> bool {
        let mut held = Vec::new();
        for i in 1..=nodes as u64 {
            for addr in [
                SocketAddr::from((node_ip(i), self.http_base + i as u16)),
                SocketAddr::from((node_ip(i), self.peer_port)),
                SocketAddr::from((proxy_ip(i), self.peer_port)),
            ] {
                match std::net::TcpListener::bind(addr) {
                    Ok(l) => held.push(l),
                    Err(_) => return false,
                }
            }
        }
        true
    }
}

struct Slot {
    spec: NodeSpec,
    child: Option<Child>,
    starts: u32,
    paused: bool,
    /// `--bootstrap` of its next start; `None`: none (a node that waits to be added, or one
    /// whose data directory already holds its membership).
    bootstrap: Option<String>,
    /// `--cluster-id` of its next start; `None`: the default.
    cluster_id: Option<String>,
}

/// The cluster's processes.
pub struct Cluster {
    binary: PathBuf,
    slots: Vec<Slot>,
    bootstrap: String,
    extra_args: Vec<String>,
    keys: Vec<(paddock_api::Role, String)>,
}

/// A client that asks one node once, with a short timeout: for probing.
fn probe_client(url: &str, timeout: Duration, keys: &[(paddock_api::Role, String)]) -> Client {
    Client::new(vec![url.to_string()], timeout).with_keys(keys).with_retry(RetryPolicy {
        attempts: 1,
        backoff: Duration::from_millis(1),
        backoff_max: Duration::from_millis(1),
    })
}

impl Cluster {
    /// Lays out `nodes` nodes in `run_dir` (nothing is started). With `proxied` false the
    /// nodes advertise their real peer addresses (no proxy: a baseline without link faults).
    pub fn new(
        binary: &Path,
        run_dir: &Path,
        nodes: usize,
        ports: Ports,
        proxied: bool,
        extra_args: &[String],
    ) -> Cluster {
        let mut slots: Vec<Slot> = (1..=nodes as u64)
            .map(|id| Slot {
                spec: NodeSpec {
                    id,
                    http: SocketAddr::from((node_ip(id), ports.http_base + id as u16)),
                    peer: SocketAddr::from((node_ip(id), ports.peer_port)),
                    advertise: if proxied {
                        SocketAddr::from((proxy_ip(id), ports.peer_port))
                    } else {
                        SocketAddr::from((node_ip(id), ports.peer_port))
                    },
                    data_dir: run_dir.join(format!("node-{id}")),
                    log_path: run_dir.join(format!("node-{id}.log")),
                    clock_offset_path: run_dir.join(format!("node-{id}.clock-offset-ms")),
                    fsync_delay_path: run_dir.join(format!("node-{id}.fsync-delay-ms")),
                },
                child: None,
                starts: 0,
                paused: false,
                bootstrap: None,
                cluster_id: None,
            })
            .collect();
        let bootstrap =
            slots.iter().map(|s| format!("{}={}", s.spec.id, s.spec.advertise)).collect::<Vec<_>>().join(",");
        for slot in &mut slots {
            slot.bootstrap = Some(bootstrap.clone());
        }
        // The harness's own principals: an operator (settles, voids, reads the state hash) and a
        // service (acts for the players), as static keys of every node.
        let keys = paddock_client::StaticKeys::generate("chaos-operator", "chaos-service");
        let keys_file = run_dir.join("static-keys");
        let _ = std::fs::create_dir_all(run_dir);
        std::fs::write(&keys_file, keys.file_text())
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", keys_file.display()));
        let mut extra_args = extra_args.to_vec();
        extra_args.extend(["--static-keys".to_string(), keys_file.display().to_string()]);
        Cluster { binary: binary.to_path_buf(), slots, bootstrap, extra_args, keys: keys.ring() }
    }

    /// Only `members` bootstrap the cluster; the other nodes start without `--bootstrap` and
    /// wait to be added (as learners: a standby site).
    pub fn with_bootstrap_members(mut self, members: &[u64]) -> Cluster {
        self.bootstrap = self
            .slots
            .iter()
            .filter(|s| members.contains(&s.spec.id))
            .map(|s| format!("{}={}", s.spec.id, s.spec.advertise))
            .collect::<Vec<_>>()
            .join(",");
        for slot in &mut self.slots {
            slot.bootstrap = members.contains(&slot.spec.id).then(|| self.bootstrap.clone());
        }
        self
    }

    /// The `--bootstrap` of a node's next start (`None`: none).
    pub fn set_bootstrap(&mut self, id: u64, bootstrap: Option<&str>) {
        self.slot_mut(id).bootstrap = bootstrap.map(str::to_string);
    }

    /// The `--cluster-id` of a node's next start (`None`: the default).
    pub fn set_cluster_id(&mut self, id: u64, cluster_id: Option<&str>) {
        self.slot_mut(id).cluster_id = cluster_id.map(str::to_string);
    }

    /// The harness's operator and service keys.
    pub fn keys(&self) -> &[(paddock_api::Role, String)] {
        &self.keys
    }

    /// Node ids, ascending.
    pub fn ids(&self) -> Vec<u64> {
        self.slots.iter().map(|s| s.spec.id).collect()
    }

    /// A node's layout.
    pub fn spec(&self, id: u64) -> &NodeSpec {
        &self.slots[id as usize - 1].spec
    }

    fn slot_mut(&mut self, id: u64) -> &mut Slot {
        &mut self.slots[id as usize - 1]
    }

    /// A node's base URL.
    pub fn url(&self, id: u64) -> String {
        format!("http://{}", self.spec(id).http)
    }

    /// Every node's base URL, in id order.
    pub fn urls(&self) -> Vec<String> {
        self.ids().into_iter().map(|id| self.url(id)).collect()
    }

    /// The proxy's routes: each node's advertised address forwarded to its real peer address
    /// (for [`crate::proxy::Proxy::start`]).
    pub fn proxy_routes(&self) -> Vec<crate::proxy::Route> {
        self.slots
            .iter()
            .map(|s| crate::proxy::Route { node: s.spec.id, listen: s.spec.advertise, upstream: s.spec.peer })
            .collect()
    }

    /// The `--bootstrap` value (proxy addresses).
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    /// Starts every node.
    pub fn start_all(&mut self) -> Result<()> {
        for id in self.ids() {
            self.start(id)?;
        }
        Ok(())
    }

    /// Starts a node's process (it must not be running). A restart uses the same arguments.
    pub fn start(&mut self, id: u64) -> Result<()> {
        if self.is_running(id) {
            bail!("node {id} is already running");
        }
        let binary = self.binary.clone();
        let extra = self.extra_args.clone();
        let slot = self.slot_mut(id);
        std::fs::create_dir_all(&slot.spec.data_dir)
            .with_context(|| format!("cannot create {}", slot.spec.data_dir.display()))?;
        for hook in [&slot.spec.clock_offset_path, &slot.spec.fsync_delay_path] {
            if !hook.exists() {
                std::fs::write(hook, "0").with_context(|| format!("cannot write {}", hook.display()))?;
            }
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&slot.spec.log_path)
            .with_context(|| format!("cannot open {}", slot.spec.log_path.display()))?;
        slot.starts += 1;
        {
            use std::io::Write;
            let mut header = log.try_clone()?;
            let _ = writeln!(header, "==== chaos harness: start #{} of node {id} ====", slot.starts);
        }
        let spec = &slot.spec;
        let mut identity = Vec::new();
        if let Some(bootstrap) = &slot.bootstrap {
            identity.extend(["--bootstrap".to_string(), bootstrap.clone()]);
        }
        if let Some(cluster_id) = &slot.cluster_id {
            identity.extend(["--cluster-id".to_string(), cluster_id.clone()]);
        }
        let child = Command::new(&binary)
            .arg("start")
            .args(["--node-id", &id.to_string()])
            .arg("--data-dir")
            .arg(&spec.data_dir)
            .args(["--http", &spec.http.to_string()])
            .args(["--peer", &spec.peer.to_string()])
            .args(["--peer-advertise", &spec.advertise.to_string()])
            .args(["--peer-source-ip", &node_ip(id).to_string()])
            .args(&identity)
            .arg("--clock-offset-file")
            .arg(&spec.clock_offset_path)
            .arg("--fsync-delay-file")
            .arg(&spec.fsync_delay_path)
            .args(&extra)
            .env("RUST_LOG", "info,openraft=warn,h2=warn,tower=warn,hyper=warn")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start node {id} from {}", binary.display()))?;
        tracing::info!(node = id, pid = child.id(), "started node");
        slot.child = Some(child);
        slot.paused = false;
        Ok(())
    }

    /// Makes a node's wall clock read `offset_ms` away from the true time from now on (the node
    /// re-reads its offset file every 50 ms); 0 restores it.
    pub fn set_clock_offset(&self, id: u64, offset_ms: i64) -> Result<()> {
        replace_file(&self.spec(id).clock_offset_path, &offset_ms.to_string())
    }

    /// Makes every fsync of a node's Raft log `delay_ms` longer from now on (the node re-reads
    /// its delay file every 200 ms); 0 restores it.
    pub fn set_fsync_delay(&self, id: u64, delay_ms: u64) -> Result<()> {
        replace_file(&self.spec(id).fsync_delay_path, &delay_ms.to_string())
    }

    /// Starts a stopped node again with the same arguments.
    pub fn restart(&mut self, id: u64) -> Result<()> {
        self.start(id)
    }

    /// The PID of a running node.
    pub fn pid(&self, id: u64) -> Option<u32> {
        self.slots[id as usize - 1].child.as_ref().map(Child::id)
    }

    /// Whether the node's process is alive (paused counts as alive).
    pub fn is_running(&mut self, id: u64) -> bool {
        let slot = self.slot_mut(id);
        match slot.child.as_mut() {
            None => false,
            Some(child) => match child.try_wait() {
                Ok(None) => true,
                _ => {
                    slot.child = None;
                    slot.paused = false;
                    false
                }
            },
        }
    }

    /// Whether the node is SIGSTOPped by the harness.
    pub fn is_paused(&self, id: u64) -> bool {
        self.slots[id as usize - 1].paused
    }

    /// Nodes whose process runs and is not paused.
    pub fn up(&mut self) -> Vec<u64> {
        self.ids().into_iter().filter(|id| self.is_running(*id) && !self.is_paused(*id)).collect()
    }

    fn signal(&self, id: u64, signal: Signal) -> Result<()> {
        let pid = self.pid(id).with_context(|| format!("node {id} is not running"))?;
        kill(Pid::from_raw(pid as i32), signal)
            .with_context(|| format!("cannot send {signal} to node {id} (pid {pid})"))
    }

    /// SIGKILLs a node by PID and reaps it.
    pub fn kill(&mut self, id: u64) -> Result<()> {
        self.signal(id, Signal::SIGKILL)?;
        let slot = self.slot_mut(id);
        if let Some(mut child) = slot.child.take() {
            let _ = child.wait();
        }
        slot.paused = false;
        tracing::info!(node = id, "killed node (SIGKILL)");
        Ok(())
    }

    /// SIGSTOPs a node.
    pub fn pause(&mut self, id: u64) -> Result<()> {
        self.signal(id, Signal::SIGSTOP)?;
        self.slot_mut(id).paused = true;
        tracing::info!(node = id, "paused node (SIGSTOP)");
        Ok(())
    }

    /// SIGCONTs a paused node.
    pub fn resume(&mut self, id: u64) -> Result<()> {
        self.signal(id, Signal::SIGCONT)?;
        self.slot_mut(id).paused = false;
        tracing::info!(node = id, "resumed node (SIGCONT)");
        Ok(())
    }

    /// SIGTERMs a node and waits up to `within` for it to exit, then SIGKILLs it. Returns
    /// whether it exited by itself.
    pub async fn terminate(&mut self, id: u64, within: Duration) -> Result<bool> {
        if self.is_paused(id) {
            self.resume(id)?;
        }
        self.signal(id, Signal::SIGTERM)?;
        let deadline = Instant::now() + within;
        let rounds = within.as_millis() / 20 + 2;
        for _ in 0..rounds {
            if !self.is_running(id) {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.kill(id)?;
        Ok(false)
    }

    /// Whether a node answers `/health/ready` with 200.
    pub async fn is_ready(&self, id: u64) -> bool {
        probe_client(&self.url(id), Duration::from_secs(1), &self.keys).is_ready(0).await
    }

    /// Waits until every node of `ids` is ready; returns how long it took.
    pub async fn wait_ready(&self, ids: &[u64], within: Duration) -> Result<Duration> {
        let t0 = Instant::now();
        let rounds = within.as_millis() / 100 + 2;
        for _ in 0..rounds {
            let mut all = true;
            for id in ids {
                if !self.is_ready(*id).await {
                    all = false;
                    break;
                }
            }
            if all {
                return Ok(t0.elapsed());
            }
            if t0.elapsed() >= within {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("nodes {ids:?} were not all ready within {within:?}")
    }

    /// A node's view of the cluster, if it answers within a second.
    pub async fn view(&self, id: u64) -> Option<ClusterBody> {
        probe_client(&self.url(id), Duration::from_secs(1), &self.keys).cluster().await.ok()
    }

    /// A node's state hash, if it answers within two seconds.
    pub async fn state_hash(&self, id: u64) -> Option<StateHashBody> {
        probe_client(&self.url(id), Duration::from_secs(2), &self.keys).state_hash().await.ok()
    }

    /// The leader once a majority of the cluster's nodes that are up name the same node and
    /// that node calls itself leader.
    pub async fn leader(&mut self, within: Duration) -> Result<u64> {
        let t0 = Instant::now();
        let majority = self.slots.len() / 2 + 1;
        let rounds = within.as_millis() / 50 + 2;
        for _ in 0..rounds {
            let up = self.up();
            let mut votes: std::collections::BTreeMap<u64, usize> = std::collections::BTreeMap::new();
            for id in &up {
                if let Some(l) = self.view(*id).await.and_then(|v| v.leader_id) {
                    *votes.entry(l).or_default() += 1;
                }
            }
            if let Some((&l, &n)) = votes.iter().max_by_key(|(_, n)| **n) {
                if n >= majority && up.contains(&l) && self.view(l).await.is_some_and(|v| v.role == "leader") {
                    return Ok(l);
                }
            }
            if t0.elapsed() >= within {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("no leader agreed by a majority within {within:?}")
    }

    /// Waits until node `id` has applied at least the commit index the leader reports in the
    /// same round; returns how long it took.
    pub async fn wait_caught_up(&mut self, id: u64, within: Duration) -> Result<Duration> {
        let t0 = Instant::now();
        let rounds = within.as_millis() / 100 + 2;
        for _ in 0..rounds {
            let remaining = within.saturating_sub(t0.elapsed()).max(Duration::from_millis(100));
            if let Ok(leader) = self.leader(remaining.min(Duration::from_secs(2))).await {
                if let Some(commit) = self.view(leader).await.map(|v| v.commit_index) {
                    if self.view(id).await.is_some_and(|v| v.applied_index >= commit) {
                        return Ok(t0.elapsed());
                    }
                }
            }
            if t0.elapsed() >= within {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("node {id} did not catch up with the leader's commit index within {within:?}")
    }

    /// Adds node `id` (started, without a bootstrap list, waiting to be added) as a learner
    /// through the members `through`, asking again while the leader cannot reach it yet, then
    /// waits until it has applied the leader's commit index; bounded by `within` for each.
    pub async fn add_learner(&mut self, id: u64, through: &[u64], within: Duration) -> Result<()> {
        let urls = through.iter().map(|t| self.url(*t)).collect();
        let client = Client::new(urls, Duration::from_secs(5)).with_keys(&self.keys);
        let peer = self.spec(id).advertise.to_string();
        let deadline = Instant::now() + within;
        while let Err(e) = client.add_member(id, &peer).await {
            if Instant::now() >= deadline {
                bail!("node {id} could not be added as a learner within {:.1} s: {e}", within.as_secs_f64());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        self.wait_caught_up(id, within).await?;
        Ok(())
    }

    /// A node's whole log so far (empty if it cannot be read).
    pub fn log_text(&self, id: u64) -> String {
        std::fs::read_to_string(&self.spec(id).log_path).unwrap_or_default()
    }

    /// The last `lines` lines of a node's log.
    pub fn log_tail(&self, id: u64, lines: usize) -> String {
        let text = self.log_text(id);
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// SIGKILLs and reaps every child (also done on drop).
    pub fn kill_all(&mut self) {
        for slot in &mut self.slots {
            if let Some(mut child) = slot.child.take() {
                let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
                let _ = child.wait();
            }
            slot.paused = false;
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.kill_all();
    }
}

/// Replaces a hook file's text in one rename, so the node never reads half of it.
fn replace_file(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_map_back_to_node_ids() {
        assert_eq!(node_of_ip(IpAddr::V4(node_ip(3))), Some(3));
        assert_eq!(node_of_ip(IpAddr::V4(proxy_ip(3))), None);
        assert_eq!(node_of_ip("127.0.0.1".parse().unwrap()), None);
    }

    #[test]
    fn the_bootstrap_list_names_the_proxies() {
        let dir = tempfile::tempdir().unwrap();
        let c = Cluster::new(
            Path::new("/bin/false"),
            dir.path(),
            3,
            Ports { http_base: 25_000, peer_port: 25_009 },
            true,
            &[],
        );
        assert_eq!(c.bootstrap(), "1=127.0.2.1:25009,2=127.0.2.2:25009,3=127.0.2.3:25009");
        assert_eq!(c.url(2), "http://127.0.1.2:25002");
    }
}
