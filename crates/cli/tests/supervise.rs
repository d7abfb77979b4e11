//! `paddock start --supervise` restarts a node that dies and gives up on a crash loop
//! (docs/operations.md, "Supervision"):
//! - a supervised node killed with kill -9 is started again after the pause, catches up and
//!   takes writes; SIGTERM to the supervisor drains the node and both exit;
//! - a node that cannot start (its HTTP port is taken) dies at once each time: after
//!   `--supervise-restarts-max` restarts the supervisor gives up with exit code 70 and says why;
//! - `deploy/systemd/paddock.service` states the same policy as the supervisor's defaults.

mod support;

use paddock_client::fresh_key;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

/// The first child process of `pid`, if any.
fn child_of(pid: u32) -> Option<u32> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
    text.split_whitespace().next()?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervised_node_killed_with_kill_9_is_started_again_and_sigterm_stops_both() {
    let mut cluster = Cluster::start(3, &["--supervise", "--supervise-backoff-ms", "200"]).await;
    let client = cluster.client();
    client.open_account(7, "GBP", &fresh_key()).await.expect("account opens");
    client.deposit(7, 1_000, "before").await.expect("deposit");
    let supervisor = cluster.pid(2);
    let node = child_of(supervisor).expect("the supervisor runs the node as its child");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(node as i32), nix::sys::signal::Signal::SIGKILL)
        .expect("kill -9 the node");
    let restarted = poll_until(
        "the supervisor to start the node again",
        Duration::from_secs(15),
        Duration::from_millis(50),
        async || child_of(supervisor).filter(|pid| *pid != node),
    )
    .await;
    cluster.wait_ready(&[2], READY_WITHIN).await;
    client.deposit(7, 1_000, "after").await.expect("the cluster takes writes");
    let converged = cluster.wait_converged(&cluster.ids(), Duration::from_secs(20)).await;
    assert_eq!(converged.accounts, 1);
    let log = cluster.log_text(2);
    assert!(log.contains("the node died (signal SIGKILL)") && log.contains("restarting in 200 ms"), "{log}");

    assert!(cluster.terminate(2).await, "SIGTERM stops the supervisor within 10 s");
    assert!(!std::path::Path::new(&format!("/proc/{restarted}")).exists(), "and the node it ran");
    // The other supervisors the same way: the harness's SIGKILL at the end would stop a
    // supervisor and leave its node running with no parent.
    for id in [1, 3] {
        let node = child_of(cluster.pid(id)).expect("the supervisor runs its node");
        assert!(cluster.terminate(id).await, "SIGTERM stops supervisor {id} within 10 s");
        assert!(!std::path::Path::new(&format!("/proc/{node}")).exists(), "and the node it ran");
    }
}

#[test]
fn a_node_that_cannot_start_is_a_crash_loop_and_the_supervisor_gives_up_with_exit_code_70() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let holder = TcpListener::bind("127.0.0.1:0").expect("the test holds a port");
    let http = holder.local_addr().expect("an address").to_string();
    let peer = format!("127.0.0.1:{}", free_ports(1)[0]);
    let data = dir.path().join("node-1");
    let mut child = Command::new(env!("CARGO_BIN_EXE_paddock"))
        .args(["start", "--supervise", "--supervise-backoff-ms", "50", "--supervise-restarts-max", "2"])
        .args(["--node-id", "1", "--http", &http, "--peer", &peer, "--bootstrap", &format!("1={peer}")])
        .arg("--data-dir")
        .arg(&data)
        .env_remove("RUST_BACKTRACE")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("paddock runs");
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().expect("wait").is_none() {
        assert!(Instant::now() < deadline, "the supervisor did not give up within 30 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(70), "{stderr}");
    assert_eq!(
        stderr.matches("paddock supervisor: node started").count(),
        3,
        "the first start and 2 restarts: {stderr}"
    );
    assert!(stderr.contains("crash loop: the node died 3 times within 300 s"), "{stderr}");
    assert!(stderr.contains("already in use"), "the node's own reason is there to read: {stderr}");
}

#[test]
fn the_systemd_unit_states_the_supervisors_default_policy() {
    let unit = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/systemd/paddock.service"))
        .expect("deploy/systemd/paddock.service");
    let help = Command::new(env!("CARGO_BIN_EXE_paddock")).args(["start", "--help"]).output().expect("help");
    let help = String::from_utf8_lossy(&help.stdout);
    for (directive, flag, value) in [
        ("StartLimitBurst=", "--supervise-restarts-max", "5"),
        ("StartLimitIntervalSec=", "--supervise-window-s", "300"),
    ] {
        assert!(unit.contains(&format!("{directive}{value}")), "{directive}{value} in the unit");
        // The flag's entry: its line and the description lines under it, up to the next flag.
        let mut lines = help.lines().skip_while(|l| !l.trim_start().starts_with(flag));
        let first = lines.next().expect("the flag is in --help");
        let entry: Vec<&str> =
            std::iter::once(first).chain(lines.take_while(|l| !l.trim_start().starts_with('-'))).collect();
        assert!(entry.join(" ").contains(&format!("default: {value}")), "{flag} defaults to {value}: {entry:?}");
    }
    assert!(unit.contains("Restart=on-failure") && unit.contains("KillSignal=SIGTERM"));
}
