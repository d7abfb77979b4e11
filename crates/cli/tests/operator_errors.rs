//! Operator mistakes at the command line are answered in words that say what to do: a node
//! whose HTTP or peer port another process holds exits naming the address and the flag; a
//! command pointed at an address where no node listens names the address, the reason and the
//! setting to check. Real `paddock` processes on loopback.

mod support;

use std::net::TcpListener;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use support::free_ports;

/// Runs `paddock` with `args` and waits (bounded) for it to exit by itself.
fn run_to_exit(args: &[&str]) -> Output {
    let child = Command::new(env!("CARGO_BIN_EXE_paddock"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .env_remove("PADDOCK_NODE")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("paddock runs");
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut child = child;
    loop {
        if child.try_wait().expect("wait on paddock").is_some() {
            return child.wait_with_output().expect("paddock output");
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("paddock {args:?} (pid {pid}) did not exit within 30 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn start_args(data_dir: &str, http: &str, peer: &str) -> Vec<String> {
    ["start", "--node-id", "1", "--data-dir", data_dir, "--http", http, "--peer", peer, "--bootstrap"]
        .iter()
        .map(|s| s.to_string())
        .chain([format!("1={peer}")])
        .collect()
}

/// Starts a node whose HTTP (`which` = 0) or peer (`which` = 1) port another process holds,
/// and checks that it exits naming the address and `flag`, in words.
fn a_taken_port_is_refused_in_words(which: usize, flag: &str) {
    let dir = tempfile::tempdir().expect("temporary directory");
    // The held port is the one the system gives the holder: taken from the first moment, so
    // no other test can take it between a free-port probe and the holder's bind.
    let holder = TcpListener::bind("127.0.0.1:0").expect("the test holds a port");
    let held = holder.local_addr().expect("a bound listener has an address").to_string();
    let other = format!("127.0.0.1:{}", free_ports(1)[0]);
    let addrs = if which == 0 { [held, other] } else { [other, held] };
    let taken = &addrs[which];
    let data = dir.path().join("node-1").display().to_string();
    let args = start_args(&data, &addrs[0], &addrs[1]);
    let out = run_to_exit(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a node without its port must not run: {stderr}");
    assert!(stderr.contains(taken.as_str()), "names the address: {stderr}");
    assert!(stderr.contains(flag), "names the flag: {stderr}");
    assert!(stderr.contains("already in use"), "says why in words: {stderr}");
    assert!(!stderr.contains("os error"), "no OS error numbers: {stderr}");
    assert!(!stderr.contains("storage"), "a port is not a storage failure: {stderr}");
}

#[test]
fn a_node_whose_http_port_is_taken_exits_naming_the_address_and_the_flag() {
    a_taken_port_is_refused_in_words(0, "--http");
}

#[test]
fn a_node_whose_peer_port_is_taken_exits_naming_the_address_and_the_flag() {
    a_taken_port_is_refused_in_words(1, "--peer");
}

#[test]
fn a_command_aimed_where_no_node_listens_names_the_address_the_reason_and_the_setting() {
    // A port that was free a moment ago and that nobody listens on now.
    let port = free_ports(1)[0];
    let node = format!("127.0.0.1:{port}");
    let out = run_to_exit(&["status", "--node", &node, "--key", "pdk_0000000000000000_00"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains(&format!("http://{node}")), "names the node it tried: {stderr}");
    assert!(stderr.contains("connection refused"), "says why in words: {stderr}");
    assert!(stderr.contains("--node") && stderr.contains("PADDOCK_NODE"), "names the setting: {stderr}");
    assert!(!stderr.contains("error sending request"), "not the HTTP library's wrapper text: {stderr}");
}
