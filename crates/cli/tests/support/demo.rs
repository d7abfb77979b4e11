//! `paddock demo` as the tests that read its banner, run its examples and open its console
//! start it: one at a time per test process (each takes its own range of ports), stopped with
//! SIGINT (as Ctrl-C would) and, failing that, killed by PID with its nodes.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `paddock demo`, stopped with SIGINT (as Ctrl-C would) and, failing that, killed
/// by PID with its nodes.
pub struct Demo {
    pub child: Child,
    /// One demo at a time in this process: each takes the same range of ports.
    _one_at_a_time: std::sync::MutexGuard<'static, ()>,
    /// Its nodes' PIDs, from its banner.
    pub node_pids: Vec<i32>,
    /// The file of its keys, CA and URL (`set -a; . FILE`).
    pub env_file: std::path::PathBuf,
    /// What it printed up to its banner's last line.
    pub banner: Vec<String>,
    _dir: tempfile::TempDir,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        for node in &self.node_pids {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(*node), nix::sys::signal::Signal::SIGKILL);
        }
    }
}

/// A base port whose demo ports (base for the node controls, base+1..=3, base+101..=103) are
/// free on loopback.
fn free_base_port() -> u16 {
    let start = 40_000 + (std::process::id() % 2_000) as u16 * 10;
    for step in 0..2_000u16 {
        let base = 40_000 + (start - 40_000 + step * 10) % 20_000;
        let ports = [0, 1, 2, 3, 101, 102, 103].map(|d| base + d);
        let held: Vec<_> = ports.iter().filter_map(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).ok()).collect();
        if held.len() == ports.len() {
            return base;
        }
    }
    panic!("no free range of demo ports on loopback");
}

static DEMO_PORTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Starts `paddock demo` with `bets_per_s` of simulated betting (0: a quiet book) and returns
/// once it has printed its banner.
pub fn start(bets_per_s: u32) -> Demo {
    let one_at_a_time = DEMO_PORTS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let dir = tempfile::tempdir().expect("temporary directory");
    let base = free_base_port().to_string();
    let rate = bets_per_s.to_string();
    let mut child = Command::new(env!("CARGO_BIN_EXE_paddock"))
        .args(["demo", "--base-port", &base, "--bets-per-s", &rate, "--duration-s", "600", "--data-dir"])
        .arg(dir.path().join("demo"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("paddock demo starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let (lines, seen) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let mut demo = Demo {
        child,
        _one_at_a_time: one_at_a_time,
        node_pids: Vec::new(),
        env_file: dir.path().join("demo/demo-keys.env"),
        banner: Vec::new(),
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match seen.recv_timeout(left) {
            Ok(line) => {
                if let Some(pid) = line.split("(pid ").nth(1).and_then(|r| r.split(')').next()) {
                    demo.node_pids.extend(pid.parse::<i32>().ok());
                }
                let ready = line.starts_with("Ctrl-C stops the demo");
                demo.banner.push(line);
                if ready {
                    break;
                }
            }
            Err(_) => panic!("the demo did not come up within 90 s; it printed:\n{}", demo.banner.join("\n")),
        }
    }
    // Keep draining its output so that it never blocks on a full pipe.
    std::thread::spawn(move || while seen.recv().is_ok() {});
    demo
}
