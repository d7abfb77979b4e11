//! docs/api.md's examples run as written against `paddock demo`: every `sh` block of the
//! document, in order, in one shell (so the variables the first block sets serve the rest),
//! with `curl` bounded to 5 s per call. A newcomer copies these commands; one that no longer
//! works is a bug of the docs or of the binary, and this test says which command and why.
//!
//! What each command must do:
//! - every HTTP answer is 2xx, unless the command's note (its trailing `# ...`) names the
//!   status (`# 403: not an operator`, `# 404 market_not_found`), or the note or the sample
//!   answer names the error code (`# {"error":{"code":"forbidden",...}}`): then exactly that;
//! - a sample answer's field names are in the real answer (values vary from run to run), and a
//!   sample header line (`# x-next-cursor: 2`) is in the output as written;
//! - the shell command itself succeeds (a `curl -N` stream ends by the time bound, which is how
//!   a stream example ends here);
//! - a command started in the background (`( sleep 1; curl ... ) &`, to make a stream say
//!   something) is judged with the command after it, while which its answer arrives.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use support::demo::start as start_demo_with;

/// The path the document uses for the demo's key file; the test puts the real one in.
const PLACEHOLDER_ENV: &str = "/tmp/paddock-demo-XXXXXX/demo-keys.env";

/// One command of an example block, with what the document says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Example {
    /// The line of docs/api.md it starts on.
    line: usize,
    /// The command as the shell gets it (continuation lines included).
    command: String,
    /// Its trailing comment, if any (`# 403: not an operator`).
    note: Option<String>,
    /// The comment lines that follow it: a sample of its output.
    sample: Vec<String>,
}

impl Example {
    fn is_http(&self) -> bool {
        self.command.contains("curl ")
    }

    /// Started in the background (`... &`): what it prints and answers arrives while the next
    /// command runs, and is judged with that one.
    fn is_background(&self) -> bool {
        self.command.trim_end().ends_with('&')
    }

    fn is_stream(&self) -> bool {
        self.command.contains("curl -N ") || self.command.contains(" -N ")
    }

    /// The status the command's note promises, if it names one (else any 2xx).
    fn promised_status(&self) -> Option<u16> {
        let text = self.note.as_deref()?;
        text.split(|c: char| !c.is_ascii_digit()).find_map(|word| {
            let status: u16 = word.parse().ok()?;
            (word.len() == 3 && (400..600).contains(&status)).then_some(status)
        })
    }

    /// The error code the document promises, if it names one.
    fn promised_code(&self) -> Option<String> {
        let text = [self.note.clone().unwrap_or_default(), self.sample.join(" ")].join(" ");
        if let Some(at) = text.find("\"code\":\"") {
            let rest = &text[at + 8..];
            return rest.find('"').map(|end| rest[..end].to_string());
        }
        // A note such as `# 404 market_not_found`: a snake_case word after the status.
        let note = self.note.as_deref()?;
        note.split_whitespace()
            .skip_while(|w| !w.trim_end_matches(':').chars().all(|c| c.is_ascii_digit()))
            .nth(1)
            .filter(|w| w.contains('_') && w.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
            .map(str::to_string)
    }

    /// JSON field names of the sample answer.
    fn sample_fields(&self) -> Vec<String> {
        let text = self.sample.join(" ");
        let mut fields = Vec::new();
        let mut rest = text.as_str();
        while let Some(start) = rest.find('"') {
            let after = &rest[start + 1..];
            let Some(end) = after.find('"') else { break };
            let word = &after[..end];
            let tail = &after[end + 1..];
            if tail.starts_with(':') && !word.is_empty() && word.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                fields.push(word.to_string());
            }
            rest = &after[end + 1..];
        }
        fields.sort();
        fields.dedup();
        fields
    }

    /// Sample lines that are a header or an SSE field (`name: value`), to be found as written.
    fn sample_lines(&self) -> Vec<String> {
        self.sample
            .iter()
            .filter(|l| {
                let name = l.split(": ").next().unwrap_or("");
                l.contains(": ")
                    && !name.is_empty()
                    && name.chars().all(|c| c.is_ascii_lowercase() || c == '-')
                    && !l.starts_with('{')
            })
            .map(|l| if l.starts_with("data: ") { "data: ".to_string() } else { l.clone() })
            .collect()
    }
}

/// The `sh` blocks of a Markdown document, split into commands.
fn examples(markdown: &str) -> Vec<Example> {
    let mut out = Vec::new();
    let mut lines = markdown.lines().enumerate().peekable();
    while let Some((_, line)) = lines.next() {
        if line.trim_start() != "```sh" {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        let mut current: Option<Example> = None;
        let mut open = String::new();
        for (number, raw) in lines.by_ref() {
            let text = raw.get(indent..).unwrap_or(raw.trim_start());
            if text.trim_start().starts_with("```") {
                break;
            }
            if !open.is_empty() {
                open.push('\n');
                open.push_str(text);
            } else if let Some(comment) = text.trim_start().strip_prefix('#') {
                if let Some(example) = current.as_mut() {
                    example.sample.push(comment.trim().to_string());
                }
                continue;
            } else if text.trim().is_empty() {
                continue;
            } else {
                if let Some(done) = current.take() {
                    out.push(done);
                }
                current = Some(Example { line: number + 1, command: String::new(), note: None, sample: Vec::new() });
                open.push_str(text);
            }
            let continued = open.ends_with('\\') || open.matches('\'').count() % 2 == 1;
            if !continued {
                let example = current.as_mut().expect("a command is being read");
                let (command, note) = split_note(&open);
                example.command = command;
                example.note = note;
                open.clear();
            }
        }
        if let Some(done) = current.take() {
            out.push(done);
        }
    }
    out
}

/// Splits a trailing `# note` off the last line of a command (outside quotes).
fn split_note(command: &str) -> (String, Option<String>) {
    let (mut single, mut double) = (false, false);
    let bytes = command.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        match b {
            b'\'' if !double => single = !single,
            b'"' if !single => double = !double,
            b'#' if !single && !double && i > 0 && bytes[i - 1] == b' ' => {
                return (command[..i].trim_end().to_string(), Some(command[i + 1..].trim().to_string()));
            }
            _ => {}
        }
    }
    (command.trim_end().to_string(), None)
}

#[test]
fn the_parser_reads_commands_notes_and_samples() {
    let doc = "text\n\n```sh\nP=$X   # a note\ncurl -s $P/a \\\n  -d '{\"a\":\n  1}'   # 404 market_not_found\n# {\"error\":{\"code\":\"market_not_found\"}}\n```\n\n  ```sh\n  curl -si $P/b | grep -i '^x-next'\n  # x-next-cursor: 2\n  ```\n";
    let found = examples(doc);
    assert_eq!(found.len(), 3, "{found:#?}");
    assert_eq!(found[0].command, "P=$X");
    assert_eq!(found[0].note.as_deref(), Some("a note"));
    assert_eq!(found[1].command, "curl -s $P/a \\\n  -d '{\"a\":\n  1}'");
    assert_eq!(found[1].line, 5);
    assert_eq!(found[1].promised_status(), Some(404));
    assert_eq!(found[1].promised_code().as_deref(), Some("market_not_found"));
    assert_eq!(found[1].sample_fields(), vec!["code".to_string(), "error".to_string()]);
    assert_eq!(found[2].sample_lines(), vec!["x-next-cursor: 2".to_string()]);
    assert_eq!(found[2].promised_status(), None, "a 2 in a sample is no status");
}

/// The shell script that runs every example with markers between them.
fn script(examples: &[Example], env_file: &Path) -> String {
    let mut s = String::from(
        "paddock() { \"$PADDOCK_BIN\" \"$@\"; }\n\
         curl() { command curl --max-time 5 --write-out '%{stderr}@@status %{http_code}\\n' \"$@\"; rc=$?; \
           if [ $rc = 92 ]; then echo '@@retry' >&2; \
             command curl --max-time 5 --write-out '%{stderr}@@status %{http_code}\\n' \"$@\"; rc=$?; fi; \
           return $rc; }\n",
    );
    for (i, example) in examples.iter().enumerate() {
        let command = example.command.replace(PLACEHOLDER_ENV, &env_file.display().to_string());
        // The markers start on a line of their own: an answer need not end with a newline.
        s.push_str(&format!(
            "printf '\\n@@begin {i}\\n'; printf '\\n@@begin {i}\\n' >&2\n{command}\nprintf '\\n@@rc {i} %s\\n' $? >&2\n"
        ));
    }
    s
}

/// Splits the script's output at the markers: one text per example.
fn sections(output: &str, count: usize) -> Vec<String> {
    let mut out = vec![String::new(); count];
    let mut at: Option<usize> = None;
    for line in output.lines() {
        if let Some(i) = line.strip_prefix("@@begin ").and_then(|n| n.trim().parse::<usize>().ok()) {
            at = Some(i);
            continue;
        }
        if let Some(i) = at {
            out[i].push_str(line);
            out[i].push('\n');
        }
    }
    out
}

/// What is wrong with one example's run, if anything.
fn judge(example: &Example, stdout: &str, stderr: &str) -> Vec<String> {
    let mut wrong = Vec::new();
    let rc: Option<i32> = stderr.lines().find_map(|l| l.strip_prefix("@@rc ")?.split(' ').nth(1)?.parse().ok());
    // curl 7.88 (Debian 12) now and then gives up on an HTTP/2 answer with exit 92 when the
    // node answers a refusal before reading the body and resets the stream, as HTTP/2 allows;
    // the wrapper then sends the command once more (every write here carries its idempotency
    // key) after an `@@retry` line, and only what follows that line is judged.
    let judged = stderr.rsplit_once("@@retry\n").map_or(stderr, |(_, after)| after);
    let statuses: Vec<u16> = judged.lines().filter_map(|l| l.strip_prefix("@@status ")?.trim().parse().ok()).collect();
    let timed_out_stream = example.is_stream() && rc == Some(28) && statuses.iter().all(|s| (200..300).contains(s));
    if rc != Some(0) && !timed_out_stream {
        wrong.push(format!("the command exited {rc:?}"));
    }
    if example.is_http() && !example.is_background() {
        if statuses.is_empty() {
            wrong.push("no HTTP answer".to_string());
        }
        match example.promised_status() {
            Some(promised) => {
                if statuses.iter().any(|s| *s != promised) {
                    wrong.push(format!("the docs promise {promised}, the answer was {statuses:?}"));
                }
            }
            None if example.promised_code().is_none() => {
                if statuses.iter().any(|s| !(200..300).contains(s)) {
                    wrong.push(format!("answered {statuses:?} where the docs promise success"));
                }
            }
            None => {
                if statuses.iter().any(|s| *s < 400) {
                    wrong.push(format!("answered {statuses:?} where the docs promise a refusal"));
                }
            }
        }
        if let Some(code) = example.promised_code() {
            if !stdout.contains(&format!("\"code\":\"{code}\"")) {
                wrong.push(format!("the docs promise error code {code}"));
            }
        }
    }
    for field in example.sample_fields() {
        if !stdout.contains(&format!("\"{field}\":")) {
            wrong.push(format!("the sample answer has \"{field}\", the answer does not"));
        }
    }
    let lower = stdout.to_ascii_lowercase();
    for line in example.sample_lines() {
        if !lower.lines().any(|l| l.trim_end().starts_with(&line.to_ascii_lowercase())) {
            wrong.push(format!("the sample line `{line}` is not in the output"));
        }
    }
    wrong
}

#[test]
fn every_example_of_the_api_guide_runs_against_the_demo_as_written() {
    let guide = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/api.md");
    let text = std::fs::read_to_string(&guide).expect("docs/api.md");
    let examples = examples(&text);
    let http = examples.iter().filter(|e| e.is_http()).count();
    assert!(http >= 50, "the guide's curl examples were found ({http})");
    assert!(
        examples.first().is_some_and(|e| e.command.contains(PLACEHOLDER_ENV)),
        "the guide starts by loading the demo's keys from {PLACEHOLDER_ENV}"
    );

    let demo = start_demo_with(0);
    let dir = tempfile::tempdir().expect("temporary directory");
    let script_file = dir.path().join("examples.sh");
    std::fs::write(&script_file, script(&examples, &demo.env_file)).expect("script written");
    let output = Command::new("bash")
        .arg(&script_file)
        .current_dir(dir.path())
        .env("PADDOCK_BIN", env!("CARGO_BIN_EXE_paddock"))
        .output()
        .expect("bash runs the examples");
    let stdout = sections(&String::from_utf8_lossy(&output.stdout), examples.len());
    let stderr = sections(&String::from_utf8_lossy(&output.stderr), examples.len());

    let mut report = Vec::new();
    for (i, example) in examples.iter().enumerate() {
        let wrong = judge(example, &stdout[i], &stderr[i]);
        if !wrong.is_empty() {
            let shown: String = stdout[i].chars().take(400).collect();
            report.push(format!(
                "docs/api.md:{}: {}\n  $ {}\n  output: {}",
                example.line,
                wrong.join("; "),
                example.command.replace('\n', "\n    "),
                shown.trim()
            ));
        }
    }
    drop(demo);
    assert!(
        report.is_empty(),
        "{} of {} examples do not work as written:\n\n{}",
        report.len(),
        examples.len(),
        report.join("\n\n")
    );
}

#[test]
fn the_demo_stopped_with_sigterm_stops_its_nodes_too() {
    let mut demo = start_demo_with(0);
    assert_eq!(demo.node_pids.len(), 3, "the demo names its three nodes' PIDs");
    let pid = nix::unistd::Pid::from_raw(demo.child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM to the demo");
    let deadline = Instant::now() + Duration::from_secs(30);
    let alive = |node: &i32| nix::sys::signal::kill(nix::unistd::Pid::from_raw(*node), None).is_ok();
    loop {
        let exited = matches!(demo.child.try_wait(), Ok(Some(_)));
        let nodes: Vec<i32> = demo.node_pids.iter().copied().filter(alive).collect();
        if exited && nodes.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "30 s after SIGTERM: demo exited {exited}, nodes still running {nodes:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
