//! The demo's node processes and the small control API that lets the console kill, pause,
//! resume and restart them, so a newcomer can watch a failover happen from the browser.
//!
//! The control API listens on the loopback address only (the demo's base port, plain HTTP) and
//! needs the run's control token, printed with the console's address; it exists only in
//! `paddock demo`, never in a node. Processes are signalled by their own PID, never by name.

use anyhow::{Context, Result};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One node process of the demo.
pub(crate) struct NodeProc {
    pub id: u64,
    /// Its public API, `https://127.0.0.1:<port>`.
    pub url: String,
    exe: PathBuf,
    args: Vec<OsString>,
    log: PathBuf,
    child: Option<Child>,
    paused: bool,
}

impl NodeProc {
    pub(crate) fn new(id: u64, url: String, exe: PathBuf, args: Vec<OsString>, log: PathBuf) -> NodeProc {
        NodeProc { id, url, exe, args, log, child: None, paused: false }
    }

    /// Starts the process (appending to its log); its PID.
    pub(crate) fn start(&mut self) -> Result<u32> {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log)?;
        let child = Command::new(&self.exe)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start node {}", self.id))?;
        let pid = child.id();
        self.child = Some(child);
        self.paused = false;
        Ok(pid)
    }

    /// `running`, `paused` or `stopped`.
    fn state(&mut self) -> &'static str {
        let running = self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)));
        match (running, self.paused) {
            (false, _) => "stopped",
            (true, true) => "paused",
            (true, false) => "running",
        }
    }

    fn signal(&self, signal: Signal) {
        if let Some(child) = &self.child {
            let _ = kill(Pid::from_raw(child.id() as i32), signal);
        }
    }

    /// kill -9 and reap.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.paused = false;
    }

    /// Waits until `deadline` for the process to exit after SIGTERM, then kills it (-9).
    fn reap_by(&mut self, deadline: Instant) {
        let Some(mut child) = self.child.take() else { return };
        loop {
            match child.try_wait() {
                Ok(Some(status)) => {
                    println!("node {} stopped ({status})", self.id);
                    return;
                }
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
                _ => {
                    println!("node {} did not stop in time; killing it", self.id);
                    let _ = child.kill();
                    let _ = child.wait();
                    return;
                }
            }
        }
    }
}

/// The demo's nodes, shared by the demo and its control API.
#[derive(Clone, Default)]
pub(crate) struct Nodes(Arc<Mutex<Vec<NodeProc>>>);

impl Nodes {
    pub(crate) fn push(&self, node: NodeProc) {
        self.0.lock().expect("nodes lock").push(node);
    }

    /// Stops every node: SIGTERM to all, then up to 10 s for them to drain and exit.
    pub(crate) fn stop_all(&self) {
        let mut nodes = self.0.lock().expect("nodes lock");
        // SIGCONT first, so that a paused node can drain.
        for node in nodes.iter() {
            node.signal(Signal::SIGCONT);
            node.signal(Signal::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for node in nodes.iter_mut() {
            node.reap_by(deadline);
        }
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        // The last handle stops the processes: they never outlive the demo.
        if Arc::strong_count(&self.0) == 1 {
            self.stop_all();
        }
    }
}

#[derive(Clone)]
struct Control {
    nodes: Nodes,
    token: Arc<str>,
}

#[derive(serde::Serialize)]
struct NodeState {
    node_id: u64,
    url: String,
    state: &'static str,
}

/// Serves the control API on `listener` until the demo ends.
pub(crate) async fn serve(listener: tokio::net::TcpListener, nodes: Nodes, token: String) -> Result<()> {
    let control = Control { nodes, token: token.into() };
    let app = Router::new()
        .route("/nodes", get(list))
        .route("/nodes/{node_id}/{action}", post(act))
        .layer(
            // The console is served by the nodes (another origin) and calls this API.
            tower_http::cors::CorsLayer::new()
                .allow_origin(tower_http::cors::Any)
                .allow_methods([axum::http::Method::GET, axum::http::Method::POST])
                .allow_headers([axum::http::header::AUTHORIZATION]),
        )
        .with_state(control);
    axum::serve(listener, app).await.context("the demo's control API stopped")
}

fn authorized(control: &Control, headers: &HeaderMap) -> bool {
    let given = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    given == Some(&*control.token)
}

fn refused() -> Response {
    (StatusCode::UNAUTHORIZED, Json(serde_json::json!({ "error": "the demo's control token is needed" })))
        .into_response()
}

async fn list(State(control): State<Control>, headers: HeaderMap) -> Response {
    if !authorized(&control, &headers) {
        return refused();
    }
    let mut nodes = control.nodes.0.lock().expect("nodes lock");
    let states: Vec<NodeState> =
        nodes.iter_mut().map(|n| NodeState { node_id: n.id, url: n.url.clone(), state: n.state() }).collect();
    Json(states).into_response()
}

async fn act(
    State(control): State<Control>,
    headers: HeaderMap,
    Path((node_id, action)): Path<(u64, String)>,
) -> Response {
    if !authorized(&control, &headers) {
        return refused();
    }
    let nodes = control.nodes.clone();
    // Stopping and starting processes blocks (a wait, a fork): off the async workers.
    let answer = tokio::task::spawn_blocking(move || {
        let mut nodes = nodes.0.lock().expect("nodes lock");
        let Some(node) = nodes.iter_mut().find(|n| n.id == node_id) else {
            return Err((StatusCode::NOT_FOUND, format!("the demo has no node {node_id}")));
        };
        match action.as_str() {
            "kill" => node.kill(),
            "pause" => {
                node.signal(Signal::SIGSTOP);
                node.paused = node.child.is_some();
            }
            "resume" => {
                node.signal(Signal::SIGCONT);
                node.paused = false;
            }
            "restart" => {
                node.kill();
                node.start().map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")))?;
            }
            other => {
                return Err((
                    StatusCode::BAD_REQUEST,
                    format!("unknown action {other}: use kill, pause, resume or restart"),
                ))
            }
        }
        println!("console: node {node_id} {action} -> {}", node.state());
        Ok(NodeState { node_id, url: node.url.clone(), state: node.state() })
    })
    .await;
    match answer {
        Ok(Ok(state)) => Json(state).into_response(),
        Ok(Err((status, message))) => (status, Json(serde_json::json!({ "error": message }))).into_response(),
        Err(e) => {
            (StatusCode::INTERNAL_SERVER_ERROR, Json(serde_json::json!({ "error": e.to_string() }))).into_response()
        }
    }
}
