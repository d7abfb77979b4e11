//! `paddock start --supervise`: this process runs the node as its child and starts it again
//! when it dies — a crash, an abort on a broken invariant (the node panics on purpose rather
//! than serve a wrong book), the kernel's OOM killer — after a pause that doubles with each
//! death in a row (`--supervise-backoff-ms`, at most `--supervise-backoff-max-ms`) and falls
//! back to the first once the node has stayed up a whole window. More than
//! `--supervise-restarts-max` deaths within `--supervise-window-s` is a crash loop: restarting
//! again would only hide it, so the supervisor stops, says so on stderr and exits with
//! [`EXIT_CRASH_LOOP`] for the service manager above it to see (the other nodes record the
//! node as unreachable in their incidents).
//!
//! SIGTERM or Ctrl-C to the supervisor goes to the node, which drains and exits; the supervisor
//! then exits with the node's code. A node that exits with code 0 (stopped on purpose by
//! someone else's signal) is not restarted. A configuration the node would refuse is refused
//! before anything starts, so a typo never becomes a crash loop.
//!
//! The same policy for systemd is `deploy/systemd/paddock.service` (`Restart=on-failure`,
//! `RestartSec`, `StartLimitIntervalSec`/`StartLimitBurst`), and for Kubernetes the pod's
//! `restartPolicy: Always` with its exponential back-off (docs/operations.md).

use anyhow::{Context, Result};
use std::collections::VecDeque;
use std::ffi::OsString;
use std::time::{Duration, Instant};

/// The supervisor's exit code when it gives up on a crash loop (EX_SOFTWARE).
pub const EXIT_CRASH_LOOP: i32 = 70;

/// When to restart, and when to give up.
#[derive(Clone, Copy, Debug)]
pub struct Policy {
    /// Deaths allowed within `window`; one more is a crash loop.
    pub restarts_max: u32,
    /// The window deaths are counted in; a node up this long resets the pause.
    pub window: Duration,
    /// The first pause before a restart.
    pub backoff_first: Duration,
    /// The longest pause.
    pub backoff_max: Duration,
}

/// The flags that configure the supervisor, not the node: left out of the child's arguments.
const OWN_FLAGS: [&str; 5] = [
    "--supervise",
    "--supervise-restarts-max",
    "--supervise-window-s",
    "--supervise-backoff-ms",
    "--supervise-backoff-max-ms",
];

/// The node's own arguments: this process's, without the supervisor's flags (and their values).
pub fn child_args(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut out = Vec::new();
    let mut skip_value = false;
    for arg in args {
        if skip_value {
            skip_value = false;
            continue;
        }
        let text = arg.to_string_lossy();
        let name = text.split('=').next().unwrap_or("");
        if OWN_FLAGS.contains(&name) {
            // `--supervise` takes no value; the others take one, inline or next.
            skip_value = name != "--supervise" && !text.contains('=');
            continue;
        }
        out.push(arg);
    }
    out
}

fn describe(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(signal)) => match nix::sys::signal::Signal::try_from(signal) {
            Ok(s) => format!("signal {}", s.as_str()),
            Err(_) => format!("signal {signal}"),
        },
        _ => "an unknown end".to_string(),
    }
}

/// Runs the node (this binary with `args`) under `policy` until it stops cleanly, the
/// supervisor is told to stop, or it crash-loops; returns the exit code to end with.
pub fn run(policy: Policy, args: Vec<OsString>) -> Result<i32> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(supervise(policy, args))
}

async fn supervise(policy: Policy, args: Vec<OsString>) -> Result<i32> {
    use tokio::signal::unix::{signal, SignalKind};
    let exe = std::env::current_exe().context("cannot find this program's own path")?;
    let mut term = signal(SignalKind::terminate()).context("cannot install the SIGTERM handler")?;
    let mut deaths: VecDeque<Instant> = VecDeque::new();
    let mut pause = policy.backoff_first;
    let mut starts = 0u64;
    loop {
        starts += 1;
        let started = Instant::now();
        let mut child = tokio::process::Command::new(&exe)
            .args(&args)
            .env("PADDOCK_SUPERVISED_START", starts.to_string())
            .spawn()
            .with_context(|| format!("cannot start the node ({})", exe.display()))?;
        let pid = child.id().map_or(-1, |p| p as i32);
        eprintln!("paddock supervisor: node started (pid {pid}, start {starts})");
        let status = tokio::select! {
            status = child.wait() => status.context("cannot wait for the node")?,
            _ = term.recv() => return stop(&mut child, pid, "SIGTERM").await,
            _ = tokio::signal::ctrl_c() => return stop(&mut child, pid, "Ctrl-C").await,
        };
        if status.success() {
            eprintln!("paddock supervisor: the node stopped cleanly (exit code 0); not restarting");
            return Ok(0);
        }
        let now = Instant::now();
        if now.duration_since(started) >= policy.window {
            pause = policy.backoff_first;
        }
        deaths.push_back(now);
        while deaths.front().is_some_and(|d| now.duration_since(*d) > policy.window) {
            deaths.pop_front();
        }
        let cause = describe(status);
        if deaths.len() > policy.restarts_max as usize {
            eprintln!(
                "paddock supervisor: crash loop: the node died {} times within {} s (last: {cause}); giving up \
                 (exit code {EXIT_CRASH_LOOP}). Read the node's log above for the cause, fix it, and start it again.",
                deaths.len(),
                policy.window.as_secs()
            );
            return Ok(EXIT_CRASH_LOOP);
        }
        eprintln!(
            "paddock supervisor: the node died ({cause}) after {:.1} s; restarting in {} ms",
            now.duration_since(started).as_secs_f64(),
            pause.as_millis()
        );
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            _ = term.recv() => return Ok(0),
            _ = tokio::signal::ctrl_c() => return Ok(0),
        }
        pause = (pause * 2).min(policy.backoff_max);
    }
}

/// Passes the stop on to the node and waits for it to drain and exit.
async fn stop(child: &mut tokio::process::Child, pid: i32, why: &str) -> Result<i32> {
    eprintln!("paddock supervisor: {why}: stopping the node (pid {pid})");
    if pid > 0 {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM);
    }
    let status = child.wait().await.context("cannot wait for the node")?;
    Ok(status.code().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &[&str]) -> Vec<OsString> {
        text.iter().map(OsString::from).collect()
    }

    #[test]
    fn the_node_gets_every_argument_but_the_supervisors_own() {
        let given = args(&[
            "start",
            "--supervise",
            "--node-id",
            "1",
            "--supervise-restarts-max",
            "3",
            "--supervise-window-s=60",
            "--data-dir",
            "/d",
            "--supervise-backoff-ms",
            "100",
            "--supervise-backoff-max-ms=2000",
        ]);
        assert_eq!(child_args(given), args(&["start", "--node-id", "1", "--data-dir", "/d"]));
    }
}
