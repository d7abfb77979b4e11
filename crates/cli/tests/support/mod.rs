//! Test harness: a local Paddock cluster made of real `paddock` processes.
//!
//! - Every node listens on loopback only, on ports picked below the kernel's ephemeral range
//!   (so an outgoing connection cannot take a killed node's port before it restarts) and
//!   checked free before use.
//! - Each node writes its stdout and stderr to `node-N.log` in the cluster's temporary
//!   directory; a restart appends to the same file.
//! - A node is stopped by its PID only: SIGKILL (`kill`) or SIGTERM then, if it lingers,
//!   SIGKILL (`terminate`). Dropping the [`Cluster`] SIGKILLs and reaps every child it started,
//!   so no process outlives a test, passing or failing; a failing test also prints the end of
//!   each node's log.
//! - Every wait is bounded in time and in iterations and panics with what it was waiting for.
//!
//! Not here: expectations. Each test states what it checks.
#![allow(dead_code)]

pub mod compose;
pub mod demo;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use paddock_api::wire::*;
use paddock_client::{Client, RetryPolicy, StaticKeys};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a node (or a whole cluster) may take to become ready.
pub const READY_WITHIN: Duration = Duration::from_secs(30);

/// The operator principal the harness acts as (a static key of every node).
pub const OPERATOR: &str = "root";

/// Ports come from here: below the ephemeral range (32768+) and above well-known services.
const PORT_LOW: u16 = 20_000;
const PORT_HIGH: u16 = 32_000;

/// Next port to try in this test process (all tests of one binary share the process).
static NEXT_PORT: Mutex<Option<u16>> = Mutex::new(None);

/// `count` distinct loopback ports that were free a moment ago. The start depends on the
/// process id so that test binaries running side by side tend to use different ports; each
/// candidate is bound (and held until all are found) to make sure it is free.
pub fn free_ports(count: usize) -> Vec<u16> {
    let span = PORT_HIGH - PORT_LOW;
    let mut next = NEXT_PORT.lock().unwrap_or_else(|e| e.into_inner());
    let mut port = next.unwrap_or_else(|| PORT_LOW + ((std::process::id() % 400) as u16) * 25);
    let mut held = Vec::with_capacity(count);
    for _ in 0..span {
        if held.len() == count {
            break;
        }
        let candidate = port;
        port = if port + 1 >= PORT_HIGH { PORT_LOW } else { port + 1 };
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", candidate)) {
            held.push(listener);
        }
    }
    assert_eq!(held.len(), count, "could not find {count} free loopback ports");
    *next = Some(port);
    held.iter().map(|l| l.local_addr().expect("bound listener has an address").port()).collect()
}

/// Polls `probe` every `every` until it returns `Some`, at most for `within`; panics naming
/// `what` otherwise.
pub async fn poll_until<T>(
    what: &str,
    within: Duration,
    every: Duration,
    mut probe: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + within;
    let max_rounds = (within.as_millis() / every.as_millis().max(1)) as u64 + 2;
    for _ in 0..max_rounds {
        if let Some(v) = probe().await {
            return v;
        }
        if Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(every).await;
    }
    panic!("timed out after {within:?} waiting for {what}");
}

/// A program a test drives as a real component (HAProxy, Prometheus, Alertmanager):
/// `target/tools/<package>/usr/bin/<binary>` as `xtask/packages.sh` unpacks it, else on the
/// PATH, else in /usr/sbin. Panics saying how to get it.
pub fn tool(package: &str, binary: &str) -> PathBuf {
    let unpacked = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/tools")
        .join(package)
        .join("usr/bin")
        .join(binary);
    let path_dirs = std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect::<Vec<_>>()).unwrap_or_default();
    std::iter::once(unpacked)
        .chain(path_dirs.into_iter().chain([PathBuf::from("/usr/sbin")]).map(|dir| dir.join(binary)))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{binary} not found: `cargo xtask ci` provides the Debian package {package} (bash xtask/packages.sh)"
            )
        })
}

/// A component a test started (the nodes belong to [`Cluster`]), its stdout and stderr in a
/// log file; stopped by its PID when dropped, passing or failing.
pub struct Running(Child);

impl Running {
    /// Starts `command` with its output going to `log`.
    pub fn spawn(command: &mut Command, log: &std::path::Path) -> Running {
        let out = std::fs::File::create(log).unwrap_or_else(|e| panic!("cannot create {}: {e}", log.display()));
        let err = out.try_clone().expect("log file handle");
        let child = command
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", command.get_program().to_string_lossy()));
        Running(child)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One node of the cluster.
pub struct Node {
    /// Node id (1-based; node N is `nodes[N-1]`).
    pub id: u64,
    /// HTTP API address.
    pub http: SocketAddr,
    /// Peer (gRPC) address.
    pub peer: SocketAddr,
    /// The peer address other nodes dial (`--peer-advertise`): `peer` unless a test puts a
    /// proxy in front of the node.
    pub advertised: SocketAddr,
    /// Arguments for this node only, after the cluster's own.
    pub own_args: Vec<String>,
    /// Environment variables for this node only (credentials a flag must not carry).
    pub own_env: Vec<(String, String)>,
    /// This node's `--bootstrap`, when a test gives it another list than the cluster's.
    pub bootstrap: Option<String>,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Where stdout and stderr go.
    pub log_path: PathBuf,
    /// The `paddock` binary it runs, when a test gives it another build than the tests' own.
    pub binary: Option<PathBuf>,
    child: Option<Child>,
    starts: u32,
}

/// The test build of the next log-entry format (`paddock-cli` with the `next-format` feature,
/// version `<version>+next-format`), which `cargo xtask next-build` puts beside the tests' own
/// binary; `cargo xtask ci` makes it before the tests run.
pub fn next_build() -> PathBuf {
    let ours = std::path::Path::new(env!("CARGO_BIN_EXE_paddock"));
    let next =
        ours.parent().and_then(|debug| debug.parent()).expect("target/debug/paddock").join("next-format/paddock");
    assert!(
        next.exists(),
        "{} is missing: build it with `cargo xtask next-build` (cargo xtask ci does)",
        next.display()
    );
    next
}

/// Runs the `paddock` binary with `args` and then `path`, and panics with its output if it fails.
pub fn run_paddock(args: &[&str], path: &std::path::Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_paddock")).args(args).arg(path).output().expect("paddock runs");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "paddock {args:?} failed: {text}{}", String::from_utf8_lossy(&out.stderr));
    text
}

/// Runs `paddock` with the cluster's operator key and `env`: its JSON answer, or its exit code
/// and stderr.
pub fn paddock_as_operator(
    cluster: &Cluster,
    args: &[&str],
    env: &[(&str, &str)],
) -> Result<serde_json::Value, (i32, String)> {
    let output = Command::new(env!("CARGO_BIN_EXE_paddock"))
        .args(args)
        .env("PADDOCK_KEY", cluster.keys().operator.expose())
        .envs(env.iter().copied())
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("paddock runs");
    if output.status.success() {
        Ok(serde_json::from_slice(&output.stdout).expect("paddock prints JSON"))
    } else {
        Err((output.status.code().unwrap_or(-1), String::from_utf8_lossy(&output.stderr).into_owned()))
    }
}

/// A local cluster of `paddock start` processes.
pub struct Cluster {
    dir: tempfile::TempDir,
    nodes: Vec<Node>,
    bootstrap: String,
    extra_args: Vec<String>,
    keys: StaticKeys,
    /// With TLS: the directory `paddock certs` wrote the CA and node certificates to.
    tls: Option<PathBuf>,
}

impl Cluster {
    /// Starts `n` nodes bootstrapped together (with `extra_args` appended to each command
    /// line) and waits until every one is ready.
    pub async fn start(n: usize, extra_args: &[&str]) -> Cluster {
        let cluster = Cluster::launch(n, extra_args);
        let ids = cluster.ids();
        cluster.wait_ready(&ids, READY_WITHIN).await;
        cluster
    }

    /// Starts `n` nodes without waiting for them.
    pub fn launch(n: usize, extra_args: &[&str]) -> Cluster {
        Cluster::launch_advertising(n, extra_args, &[])
    }

    /// Starts `n` nodes without waiting for them; node `id` of each `(id, addr)` in
    /// `advertised` tells the others to reach it at `addr` (a proxy the test runs) instead of
    /// its own peer address.
    pub fn launch_advertising(n: usize, extra_args: &[&str], advertised: &[(u64, SocketAddr)]) -> Cluster {
        let mut cluster = Cluster::launch_advertising_unstarted(n, extra_args, advertised);
        for id in cluster.ids() {
            cluster.spawn(id);
        }
        cluster
    }

    fn launch_advertising_unstarted(n: usize, extra_args: &[&str], advertised: &[(u64, SocketAddr)]) -> Cluster {
        assert!(n >= 1);
        let dir = tempfile::Builder::new().prefix("paddock-it-").tempdir().expect("temporary directory");
        let ports = free_ports(2 * n);
        let nodes: Vec<Node> = (0..n)
            .map(|i| {
                let id = i as u64 + 1;
                let peer = SocketAddr::from(([127, 0, 0, 1], ports[2 * i + 1]));
                Node {
                    id,
                    http: SocketAddr::from(([127, 0, 0, 1], ports[2 * i])),
                    peer,
                    advertised: advertised.iter().find(|(a, _)| *a == id).map_or(peer, |(_, addr)| *addr),
                    own_args: Vec::new(),
                    own_env: Vec::new(),
                    bootstrap: None,
                    data_dir: dir.path().join(format!("node-{id}")),
                    log_path: dir.path().join(format!("node-{id}.log")),
                    binary: None,
                    child: None,
                    starts: 0,
                }
            })
            .collect();
        let bootstrap = nodes.iter().map(|n| format!("{}={}", n.id, n.advertised)).collect::<Vec<_>>().join(",");
        let keys = StaticKeys::generate("root", "harness");
        let keys_file = dir.path().join("static-keys");
        std::fs::write(&keys_file, keys.file_text()).expect("static keys file writes");
        let mut extra: Vec<String> = extra_args.iter().map(|s| s.to_string()).collect();
        extra.extend(["--static-keys".to_string(), keys_file.display().to_string()]);
        Cluster { dir, nodes, bootstrap, extra_args: extra, keys, tls: None }
    }

    /// Starts `n` nodes with TLS on the API and mutual TLS between peers, certificates made by
    /// `paddock certs` (cluster id `paddock`), and waits until every one is ready.
    pub async fn start_tls(n: usize, extra_args: &[&str]) -> Cluster {
        let mut cluster = Cluster::launch_advertising_unstarted(n, extra_args, &[]);
        let certs = cluster.dir.path().join("certs");
        let nodes = cluster.ids().iter().map(u64::to_string).collect::<Vec<_>>().join(",");
        run_paddock(&["certs", "--cluster-id", "paddock", "--nodes", &nodes, "--host", "127.0.0.1", "--out"], &certs);
        cluster.tls = Some(certs);
        for id in cluster.ids() {
            cluster.spawn(id);
        }
        let ids = cluster.ids();
        cluster.wait_ready(&ids, READY_WITHIN).await;
        cluster
    }

    /// Starts `n` nodes, node `id` of each `(id, args)` with `args` of its own on top of
    /// `extra_args`, and waits until every one is ready.
    pub async fn start_with_own_args(n: usize, extra_args: &[&str], own: &[(u64, &[&str])]) -> Cluster {
        Cluster::start_with_own_args_and_env(n, extra_args, own, &[]).await
    }

    /// [`Cluster::start_with_own_args`], with environment variables for some nodes.
    pub async fn start_with_own_args_and_env(
        n: usize,
        extra_args: &[&str],
        own: &[(u64, &[&str])],
        env: &[(u64, &[(&str, &str)])],
    ) -> Cluster {
        let mut cluster = Cluster::launch_advertising_unstarted(n, extra_args, &[]);
        for (id, args) in own {
            cluster.node_mut(*id).own_args = args.iter().map(|a| a.to_string()).collect();
        }
        for (id, vars) in env {
            cluster.node_mut(*id).own_env = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        }
        for id in cluster.ids() {
            cluster.spawn(id);
        }
        let ids = cluster.ids();
        cluster.wait_ready(&ids, READY_WITHIN).await;
        cluster
    }

    /// Runs node `id` on `binary` from its next start (another build of `paddock`).
    pub fn set_binary(&mut self, id: u64, binary: &std::path::Path) {
        self.node_mut(id).binary = Some(binary.to_path_buf());
    }

    /// Replaces the arguments of node `id`'s own (used from its next start).
    pub fn set_own_args(&mut self, id: u64, args: &[&str]) {
        self.node_mut(id).own_args = args.iter().map(|a| a.to_string()).collect();
    }

    /// GETs `path` from node `id` with the operator's key: the JSON of a 200 answer (panics on
    /// any other).
    pub async fn get_as_operator(&self, id: u64, path: &str) -> serde_json::Value {
        let response = self.operator_get(id, path).await;
        assert_eq!(response.status(), 200, "GET {path} on node {id}");
        response.json().await.unwrap_or_else(|e| panic!("GET {path} on node {id}: not JSON: {e}"))
    }

    /// A GET as an operator that is expected to be refused: its status and body.
    pub async fn get_as_operator_refused(&self, id: u64, path: &str) -> (u16, String) {
        let response = self.operator_get(id, path).await;
        let status = response.status().as_u16();
        (status, response.text().await.unwrap_or_default())
    }

    async fn operator_get(&self, id: u64, path: &str) -> reqwest::Response {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("http client");
        http.get(format!("{}{path}", self.url(id)))
            .bearer_auth(self.keys().operator.expose())
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path} on node {id}: no answer: {e}"))
    }

    /// The book as money and bets: every book's balance (`GET /v1/book/balances`) and the
    /// number of accounts and bets. What a restart or a failover must not change — unlike the
    /// state hash, which also covers the incident records the cluster writes about the failure.
    pub async fn book(&self, id: u64) -> (serde_json::Value, u64, u64) {
        let mut balances = self.get_as_operator(id, "/v1/book/balances").await;
        // Where in the log the figures were read, not part of them.
        balances.as_object_mut().map(|b| b.remove("applied_index"));
        let hash = self.state_hash(id).await.unwrap_or_else(|| panic!("node {id} answers its state hash"));
        (balances, hash.accounts, hash.bets)
    }

    pub async fn audit_events(&self, id: u64) -> Vec<String> {
        let trail = self.get_as_operator(id, "/v1/audit?limit=1000").await;
        trail.as_array().expect("an array of records").iter().map(|r| r["event"].to_string()).collect()
    }

    /// The directory of the CA and node certificates, for a TLS cluster.
    pub fn certs_dir(&self) -> Option<&std::path::Path> {
        self.tls.as_deref()
    }

    /// The CA certificate (PEM) of a TLS cluster.
    pub fn ca_pem(&self) -> Option<Vec<u8>> {
        self.tls.as_ref().map(|d| std::fs::read(d.join("ca.pem")).expect("ca.pem reads"))
    }

    /// A plain client of this cluster's nodes (trusting its CA if it has one), without keys.
    fn base_client(&self, urls: Vec<String>, timeout: Duration) -> Client {
        let client = Client::new(urls, timeout);
        match self.ca_pem() {
            Some(pem) => client.with_ca_pem(&pem).expect("the CA file is usable"),
            None => client,
        }
    }

    /// Starts `n` nodes without waiting for them; node `id` of each `(id, args)` in
    /// `node_args` gets `args` after the cluster's own (e.g. a clock fault).
    pub fn launch_with_node_args(n: usize, extra_args: &[&str], node_args: &[(u64, &[&str])]) -> Cluster {
        let mut cluster = Cluster::launch_advertising_unstarted(n, extra_args, &[]);
        for (id, args) in node_args {
            cluster.node_mut(*id).own_args = args.iter().map(|s| s.to_string()).collect();
        }
        for id in cluster.ids() {
            cluster.spawn(id);
        }
        cluster
    }

    /// Node ids, ascending.
    pub fn ids(&self) -> Vec<u64> {
        self.nodes.iter().map(|n| n.id).collect()
    }

    /// A node.
    pub fn node(&self, id: u64) -> &Node {
        &self.nodes[id as usize - 1]
    }

    fn node_mut(&mut self, id: u64) -> &mut Node {
        &mut self.nodes[id as usize - 1]
    }

    /// The `--bootstrap` value every node was started with.
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    /// A node's base URL.
    pub fn url(&self, id: u64) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.node(id).http)
    }

    /// Every node's base URL, in id order.
    pub fn urls(&self) -> Vec<String> {
        self.ids().into_iter().map(|id| self.url(id)).collect()
    }

    /// A client that knows every node and holds the harness's operator and service keys.
    pub fn client(&self) -> Client {
        self.base_client(self.urls(), Duration::from_secs(10)).with_keys(&self.keys.ring())
    }

    /// A client that talks to one node only.
    pub fn client_for(&self, id: u64) -> Client {
        self.base_client(vec![self.url(id)], Duration::from_secs(10)).with_keys(&self.keys.ring())
    }

    /// The static keys every node was started with.
    pub fn keys(&self) -> &StaticKeys {
        &self.keys
    }

    /// A client for one node that does not retry: for polling.
    fn probe(&self, id: u64) -> Client {
        self.base_client(vec![self.url(id)], Duration::from_secs(2)).with_keys(&self.keys.ring()).with_retry(
            RetryPolicy { attempts: 1, backoff: Duration::from_millis(1), backoff_max: Duration::from_millis(1) },
        )
    }

    /// Whether the node's process is running (as far as this harness knows).
    pub fn is_running(&mut self, id: u64) -> bool {
        match self.node_mut(id).child.as_mut() {
            None => false,
            Some(child) => matches!(child.try_wait(), Ok(None)),
        }
    }

    /// Ids of the nodes whose process is running.
    pub fn running(&mut self) -> Vec<u64> {
        self.ids().into_iter().filter(|id| self.is_running(*id)).collect()
    }

    /// Starts a node's process (again) with its arguments (it must not be running).
    pub fn restart(&mut self, id: u64) {
        assert!(!self.is_running(id), "node {id} is still running");
        self.spawn(id);
    }

    /// A cluster of `n` nodes, none started yet: a test changes a node's settings first, then
    /// [`Cluster::spawn_all`]. Nothing waits for readiness.
    pub fn unstarted(n: usize, extra_args: &[&str]) -> Cluster {
        Cluster::launch_advertising_unstarted(n, extra_args, &[])
    }

    /// Starts every node not running, without waiting for readiness.
    pub fn spawn_all(&mut self) {
        for id in self.ids() {
            if !self.is_running(id) {
                self.spawn(id);
            }
        }
    }

    /// Gives node `id` its own `--bootstrap` list from its next start on.
    pub fn set_bootstrap(&mut self, id: u64, list: &str) {
        self.node_mut(id).bootstrap = Some(list.to_string());
    }

    fn spawn(&mut self, id: u64) {
        let bootstrap = self.node(id).bootstrap.clone().unwrap_or_else(|| self.bootstrap.clone());
        let mut extra = self.extra_args.clone();
        if let Some(certs) = &self.tls {
            for (flag, file) in [
                ("--tls-ca", "ca.pem".to_string()),
                ("--tls-cert", format!("node-{id}.pem")),
                ("--tls-key", format!("node-{id}.key")),
            ] {
                extra.extend([flag.to_string(), certs.join(file).display().to_string()]);
            }
        }
        extra.extend(self.node(id).own_args.iter().cloned());
        let own_env = self.node(id).own_env.clone();
        let node = self.node_mut(id);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log_path)
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", node.log_path.display()));
        node.starts += 1;
        use std::io::Write;
        let mut header = log.try_clone().expect("log file handle clones");
        let _ = writeln!(header, "==== harness: start #{} of node {id} ====", node.starts);
        let binary = node.binary.clone().unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_paddock")));
        let _ = writeln!(header, "==== harness: binary {} ====", binary.display());
        let child = Command::new(binary)
            .arg("start")
            .args(["--node-id", &id.to_string()])
            .arg("--data-dir")
            .arg(&node.data_dir)
            .args(["--http", &node.http.to_string()])
            .args(["--peer", &node.peer.to_string()])
            .args(["--peer-advertise", &node.advertised.to_string()])
            .args(["--bootstrap", &bootstrap])
            .args(&extra)
            .env("RUST_LOG", "info,openraft=warn,h2=warn,tower=warn,hyper=warn")
            .env("NO_COLOR", "1")
            .envs(own_env)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file handle clones"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start node {id}: {e}"));
        node.child = Some(child);
    }

    /// SIGKILLs a node by its PID and reaps it.
    pub fn kill(&mut self, id: u64) {
        let node = self.node_mut(id);
        let mut child = node.child.take().unwrap_or_else(|| panic!("node {id} is not running"));
        let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
        let _ = child.wait();
    }

    /// SIGSTOPs a node by its PID: it keeps its sockets open and answers nothing, as a frozen
    /// VM or a long GC pause would, until [`Cluster::resume`].
    pub fn pause(&mut self, id: u64) {
        let child = self.node_mut(id).child.as_ref().unwrap_or_else(|| panic!("node {id} is not running"));
        let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGSTOP);
    }

    /// The process id of a running node (its supervisor's, under `--supervise`).
    pub fn pid(&self, id: u64) -> u32 {
        self.node(id).child.as_ref().unwrap_or_else(|| panic!("node {id} is not running")).id()
    }

    /// SIGCONTs a node [`Cluster::pause`] froze.
    pub fn resume(&mut self, id: u64) {
        let child = self.node_mut(id).child.as_ref().unwrap_or_else(|| panic!("node {id} is not running"));
        let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGCONT);
    }

    /// SIGTERMs a node by its PID and waits (at most 10 s) for it to exit, then SIGKILLs it.
    /// Returns whether it exited by itself.
    pub async fn terminate(&mut self, id: u64) -> bool {
        let node = self.node_mut(id);
        let mut child = node.child.take().unwrap_or_else(|| panic!("node {id} is not running"));
        let pid = Pid::from_raw(child.id() as i32);
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        for _ in 0..500 {
            if let Ok(Some(_)) = child.try_wait() {
                return true;
            }
            if Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = kill(pid, Signal::SIGKILL);
        let _ = child.wait();
        false
    }

    /// Deletes a stopped node's data directory.
    pub fn wipe(&mut self, id: u64) {
        assert!(!self.is_running(id), "node {id} is still running");
        let dir = self.node(id).data_dir.clone();
        if dir.exists() {
            std::fs::remove_dir_all(&dir).unwrap_or_else(|e| panic!("cannot wipe {}: {e}", dir.display()));
        }
    }

    /// A node's log so far.
    pub fn log_text(&self, id: u64) -> String {
        std::fs::read_to_string(&self.node(id).log_path).unwrap_or_default()
    }

    /// Waits until every node in `ids` answers `/health/ready` with 200.
    pub async fn wait_ready(&self, ids: &[u64], within: Duration) {
        let probes: Vec<(u64, Client)> = ids.iter().map(|id| (*id, self.probe(*id))).collect();
        poll_until(&format!("nodes {ids:?} to be ready"), within, Duration::from_millis(100), async || {
            for (_, p) in &probes {
                if !p.is_ready(0).await {
                    return None;
                }
            }
            Some(())
        })
        .await;
    }

    /// A node's view of the cluster, if it answers.
    pub async fn cluster_view(&self, id: u64) -> Option<ClusterBody> {
        self.probe(id).cluster().await.ok()
    }

    /// A node's state hash, if it answers.
    pub async fn state_hash(&self, id: u64) -> Option<StateHashBody> {
        self.probe(id).state_hash().await.ok()
    }

    /// Waits until every node in `ids` names the same leader, that leader is one of `ids` and
    /// calls itself leader; returns it.
    pub async fn wait_leader_among(&self, ids: &[u64], within: Duration) -> u64 {
        poll_until(
            &format!("nodes {ids:?} to agree on a leader among them"),
            within,
            Duration::from_millis(50),
            async || {
                let mut leader = None;
                for id in ids {
                    let view = self.cluster_view(*id).await?;
                    let l = view.leader_id?;
                    if leader.is_some_and(|x| x != l) {
                        return None;
                    }
                    leader = Some(l);
                }
                let l = leader?;
                if !ids.contains(&l) {
                    return None;
                }
                (self.cluster_view(l).await?.role == "leader").then_some(l)
            },
        )
        .await
    }

    /// The current leader as the running nodes agree on it.
    pub async fn leader(&mut self) -> u64 {
        let running = self.running();
        self.wait_leader_among(&running, Duration::from_secs(15)).await
    }

    /// Waits until every node in `ids` has applied everything the leader (one of `ids`) had
    /// committed when asked, and all report the same state hash at the same applied index.
    /// Meant for a quiet cluster (no writes in flight). Returns the common hash.
    pub async fn wait_converged(&self, ids: &[u64], within: Duration) -> StateHashBody {
        let leader = self.wait_leader_among(ids, within).await;
        let hashes = poll_until(
            &format!("nodes {ids:?} to converge on one state hash"),
            within,
            Duration::from_millis(100),
            async || {
                let commit = self.cluster_view(leader).await?.commit_index;
                let mut hashes = Vec::new();
                for id in ids {
                    hashes.push((*id, self.state_hash(*id).await?));
                }
                let first = &hashes[0].1;
                let same =
                    hashes.iter().all(|(_, h)| h.applied_index == first.applied_index) && first.applied_index >= commit;
                same.then_some(hashes)
            },
        )
        .await;
        let first = hashes[0].1.clone();
        for (id, h) in &hashes {
            assert_eq!(
                h, &first,
                "node {id} and node {} disagree at applied index {}",
                hashes[0].0, first.applied_index
            );
        }
        first
    }

    fn log_tail(&self, id: u64, lines: usize) -> String {
        let text = self.log_text(id);
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
                let _ = child.wait();
            }
        }
        if std::thread::panicking() {
            for id in self.ids() {
                eprintln!("---- last lines of node {id}'s log ({}) ----", self.node(id).log_path.display());
                eprintln!("{}", self.log_tail(id, 40));
            }
        }
    }
}

/// The `error.code` of an error answer's body (empty if it is not one).
pub fn code_of(text: &str) -> String {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| v["error"]["code"].as_str().map(str::to_string))
        .unwrap_or_default()
}

// ---- a sample book ----

/// Generous market rules: no limit gets in the way of the tests' bets.
pub fn open_rules() -> MarketRulesBody {
    MarketRulesBody {
        stake_min_minor: 1,
        stake_max_minor: 1_000_000_000,
        payout_max_minor: 1_000_000_000_000,
        liability_max_minor: 1_000_000_000_000_000,
        bet_delay_ms: 0,
        closes_at_ms: None,
        each_way: None,
    }
}

/// An event starting in a day.
pub fn event_request(event_id: u64) -> CreateEventRequest {
    let now_ms =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock after 1970").as_millis();
    CreateEventRequest {
        event_id,
        name: format!("Test event {event_id}"),
        sport: "football".into(),
        competition: "Integration".into(),
        starts_at_ms: now_ms as u64 + 86_400_000,
    }
}

/// A two-way market: selection `market_id*10+1` at 2/1 and `market_id*10+2` at 3/1.
pub fn market_request(event_id: u64, market_id: u64) -> CreateMarketRequest {
    CreateMarketRequest {
        market_id,
        event_id,
        name: format!("Winner {market_id}"),
        currency: "GBP".into(),
        selections: vec![
            NewSelectionBody { selection_id: market_id * 10 + 1, name: "Home".into(), odds: "2/1".into() },
            NewSelectionBody { selection_id: market_id * 10 + 2, name: "Away".into(), odds: "3/1".into() },
        ],
        rules: open_rules(),
    }
}

/// Opens a GBP account and deposits `amount_minor` into it.
pub async fn open_funded(client: &Client, account_id: u64, amount_minor: i64) {
    client.open_account(account_id, "GBP", &paddock_client::fresh_key()).await.expect("account opens");
    client.deposit(account_id, amount_minor, &paddock_client::fresh_key()).await.expect("deposit");
}

/// Creates an event and its two-way market.
pub async fn seed_market(client: &Client, event_id: u64, market_id: u64) {
    client.create_event(&event_request(event_id), &paddock_client::fresh_key()).await.expect("event is created");
    client
        .create_market(&market_request(event_id, market_id), &paddock_client::fresh_key())
        .await
        .expect("market is created");
}

/// A single on the first selection of `market_id`, at any price.
pub fn single(account_id: u64, market_id: u64, stake_minor: i64) -> PlaceBetRequest {
    PlaceBetRequest {
        account_id,
        bet_type: "single".into(),
        k: None,
        legs: vec![LegBody { market_id, selection_id: market_id * 10 + 1, odds: "2/1".into() }],
        stake_per_line_minor: stake_minor,
        each_way: false,
        odds_policy: "any".into(),
    }
}

/// The result vector of an instant PromQL `query` against the Prometheus at `base`
/// (`http://127.0.0.1:PORT`), or `None` if it does not answer (yet).
pub async fn prometheus_query(base: &str, query: &str) -> Option<Vec<serde_json::Value>> {
    let answer: serde_json::Value = reqwest::Client::new()
        .get(format!("{base}/api/v1/query"))
        .query(&[("query", query)])
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    answer["data"]["result"].as_array().cloned()
}
