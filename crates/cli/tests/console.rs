//! The live console in a real browser: headless Chromium (the Debian package) opens the
//! console of a running `paddock demo`, the page shows three nodes and a leader, the test
//! presses the leader's Kill button on the page, and the page shows the newly elected leader
//! without being reloaded. A screenshot of the page after the failover is kept in
//! `target/tmp/console-after-failover.png`.
//!
//! Chromium is driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`: JSON
//! messages ending in a NUL byte on file descriptors 3 and 4), so no port is opened and no
//! WebSocket library is needed.

mod support;

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// The console's address as the demo prints it: its key and node controls in the fragment.
fn console_url(demo: &support::demo::Demo) -> String {
    let url = demo.banner.iter().find_map(|l| l.trim().strip_prefix("console:")).map(str::trim).unwrap_or_default();
    assert!(
        url.contains("/console#key=") && url.contains("&control="),
        "the demo prints the console's address with its key and node controls, got: {url}"
    );
    url.to_string()
}

/// Headless Chromium on the DevTools pipe.
struct Browser {
    child: Child,
    commands: ChildStdin,
    messages: Receiver<Value>,
    next_id: u64,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn launch() -> Browser {
        let chromium = support::tool("chromium", "chromium");
        let profile = tempfile::tempdir().expect("profile directory");
        // fd 3 is what Chromium reads commands from, fd 4 where it writes answers: the shell
        // points them at the pipes of stdin and stdout, then gives Chromium's own stdin and
        // stdout away so that nothing else is read from or written to them.
        let script = r#"exec "$0" "$@" 3<&0 4>&1 0</dev/null 1>&2"#;
        let mut child = Command::new("bash")
            .arg("-c")
            .arg(script)
            .arg(&chromium)
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--ignore-certificate-errors",
                "--remote-debugging-pipe",
                "--window-size=1280,1000",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromium.display()));
        let commands = child.stdin.take().expect("piped stdin");
        let mut answers = BufReader::new(child.stdout.take().expect("piped stdout"));
        let (tx, messages) = std::sync::mpsc::channel();
        std::thread::spawn(move || loop {
            let mut message = Vec::new();
            match answers.read_until(0, &mut message) {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    message.pop();
                    if let Ok(value) = serde_json::from_slice::<Value>(&message) {
                        if tx.send(value).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        Browser { child, commands, messages, next_id: 0, _profile: profile }
    }

    /// Sends one DevTools command (to the page's session if given) and waits for its answer.
    fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({ "id": id, "method": method, "params": params });
        if let Some(session) = session {
            message["sessionId"] = session.into();
        }
        let mut bytes = serde_json::to_vec(&message).expect("a command encodes");
        bytes.push(0);
        self.commands.write_all(&bytes).expect("Chromium reads the DevTools pipe");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match self.messages.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(answer) if answer["id"] == id => {
                    assert!(answer.get("error").is_none(), "DevTools {method} failed: {answer}");
                    return answer["result"].clone();
                }
                Ok(_) => {} // an event, or another command's answer
                Err(RecvTimeoutError::Timeout) => panic!("DevTools {method} had no answer within 30 s"),
                Err(RecvTimeoutError::Disconnected) => panic!("Chromium closed the DevTools pipe during {method}"),
            }
        }
    }

    /// Evaluates `expression` in the page; its value (JSON-serialisable).
    fn eval(&mut self, session: &str, expression: &str) -> Value {
        let result =
            self.call(Some(session), "Runtime.evaluate", json!({ "expression": expression, "returnByValue": true }));
        assert!(result.get("exceptionDetails").is_none(), "the page threw on {expression}: {result}");
        result["result"]["value"].clone()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the page shows: the leader's id, the term and each node card's role.
const VIEW: &str = r#"JSON.stringify({
    leader: (document.getElementById('leader') || {}).textContent || '',
    term: (document.getElementById('term') || {}).textContent || '',
    cards: [...document.querySelectorAll('[data-node-id]')].map(e => [e.dataset.nodeId, e.dataset.role]),
})"#;

fn view(browser: &mut Browser, session: &str) -> Value {
    let text = browser.eval(session, VIEW);
    serde_json::from_str(text.as_str().unwrap_or("{}")).unwrap_or(Value::Null)
}

/// Polls the page until `accept` takes what it shows, for at most `within`.
fn wait_for(
    browser: &mut Browser,
    session: &str,
    what: &str,
    within: Duration,
    accept: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let shown = view(browser, session);
        if accept(&shown) {
            return shown;
        }
        assert!(
            Instant::now() < deadline,
            "the console did not show {what} within {} s; it shows {shown}",
            within.as_secs()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn leaders(shown: &Value) -> Vec<String> {
    shown["cards"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|card| card[1] == "leader")
        .map(|card| card[0].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn the_console_shows_the_cluster_and_a_failover_started_from_its_own_kill_button() {
    let demo = support::demo::start(5);
    let mut browser = Browser::launch();
    let target = browser.call(None, "Target.createTarget", json!({ "url": console_url(&demo) }));
    let target_id = target["targetId"].as_str().expect("a target id").to_string();
    let attached = browser.call(None, "Target.attachToTarget", json!({ "targetId": target_id, "flatten": true }));
    let session = attached["sessionId"].as_str().expect("a session id").to_string();

    let before = wait_for(&mut browser, &session, "three nodes and a leader", Duration::from_secs(30), |v| {
        v["cards"].as_array().is_some_and(|c| c.len() == 3) && !v["leader"].as_str().unwrap_or_default().is_empty()
    });
    let leader = before["leader"].as_str().expect("a leader id").to_string();
    assert_eq!(leaders(&before), vec![leader.clone()], "exactly the leader's card is marked leader: {before}");
    assert!(
        !browser.eval(&session, "location.hash.includes('key=')").as_bool().unwrap_or(true),
        "the key leaves the address bar"
    );

    // The Kill button on the leader's card: the demo kills that process (kill -9).
    let pressed = browser.eval(
        &session,
        &format!(
            "(() => {{ const b = document.querySelector('[data-node-id=\"{leader}\"] button[data-action=\"kill\"]'); \
             if (!b) return false; b.click(); return true; }})()"
        ),
    );
    assert_eq!(pressed, json!(true), "the leader's card has a Kill button");

    let after = wait_for(&mut browser, &session, "a new leader", Duration::from_secs(30), |v| {
        let shown = v["leader"].as_str().unwrap_or_default();
        !shown.is_empty() && shown != leader
    });
    let new_leader = after["leader"].as_str().expect("the new leader").to_string();
    assert_eq!(leaders(&after), vec![new_leader.clone()], "the new leader's card is marked leader: {after}");
    let history =
        browser.eval(&session, "[...document.querySelectorAll('#leader-history li')].map(li => li.dataset.leader)");
    assert!(
        history.as_array().is_some_and(|h| h.iter().any(|l| l.as_str() == Some(new_leader.as_str()))),
        "the leader history lists the change to node {new_leader}: {history}"
    );

    let shot = browser.call(Some(&session), "Page.captureScreenshot", json!({ "format": "png" }));
    use base64::Engine as _;
    let png = base64::engine::general_purpose::STANDARD
        .decode(shot["data"].as_str().expect("screenshot data"))
        .expect("the screenshot is base64");
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-after-failover.png");
    std::fs::write(&path, &png).expect("the screenshot is saved");
    assert!(png.starts_with(b"\x89PNG"), "the screenshot is a PNG");
    println!(
        "console: node {leader} killed from the page, node {new_leader} shown as leader; screenshot {}",
        path.display()
    );
    drop(browser);
    drop(demo);
}
