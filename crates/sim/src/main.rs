//! `paddock-sim`: run seeds of the deterministic simulation.
//!
//! ```text
//! paddock-sim --seed N [--teeth NAME] [--long]
//! paddock-sim --seeds A..B [--jobs J] [--teeth NAME --expect-failure] [--require-paths] [--json]
//! paddock-sim --determinism N        run seed N twice and compare trace hashes
//! ```
//!
//! A batch prints, per dangerous path, how many seeds reached it; `--require-paths` fails the
//! batch if one was reached by none, `--json` prints the same table as one JSON object. With
//! `--teeth NAME --expect-failure` a batch stops at the first seed where the checker expected
//! to catch that bug fired, and fails if none did.
//!
//! Use it through `cargo xtask sim`, which builds it the way it must be built.

use paddock_sim::{run, Checker, Path, RunConfig, RunReport, Teeth};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

fn usage() -> ! {
    let teeth: Vec<&str> = Teeth::BUGS.iter().map(|t| t.name()).collect();
    eprintln!(
        "usage: paddock-sim (--seed N | --seeds A..B | --determinism N) [--jobs J] [--teeth {}] [--long] \
         [--expect-failure] [--require-paths] [--json]",
        teeth.join("|")
    );
    std::process::exit(2);
}

fn names<T>(items: impl IntoIterator<Item = T>, name: impl Fn(T) -> &'static str) -> String {
    let v: Vec<&str> = items.into_iter().map(name).collect();
    if v.is_empty() {
        "-".into()
    } else {
        v.join(",")
    }
}

fn print(r: &RunReport, wall_ms: u128, verbose: bool) {
    // The whole trace hash: a determinism check compares it between processes. `wall=` stays
    // last: everything before it is a function of the seed.
    let verdict = if r.passed() { "PASS" } else { "FAIL" };
    println!(
        "seed {}: {verdict} trace={} answers={} bets={} log={} reads={} faults={} paths={} fired={} sim={:.1}s wall={}ms",
        r.seed,
        r.trace_hash,
        r.answers,
        r.acked_bets,
        r.log_entries,
        r.reads_checked,
        r.faults.len(),
        names(r.paths.iter().copied(), Path::name),
        names(r.fired(), Checker::name),
        r.sim_ms as f64 / 1000.0,
        wall_ms
    );
    if verbose {
        println!("  answers: {}", r.codes.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" "));
        for f in &r.faults {
            println!("  fault {f}");
        }
    }
    for v in r.violations.iter().take(10) {
        println!("  violation: {v}");
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut seeds: Option<(u64, u64)> = None;
    let mut determinism = None;
    let mut jobs = 1usize;
    let mut teeth = Teeth::None;
    let mut long = false;
    let mut expect_failure = false;
    let mut require_paths = false;
    let mut json = false;
    let mut i = 0;
    while i < args.len() {
        let value = || args.get(i + 1).cloned().unwrap_or_else(|| usage());
        match args[i].as_str() {
            "--seed" => {
                let s: u64 = value().parse().unwrap_or_else(|_| usage());
                seeds = Some((s, s + 1));
                i += 1;
            }
            "--seeds" => {
                let v = value();
                let (a, b) = v.split_once("..").unwrap_or_else(|| usage());
                seeds = Some((a.parse().unwrap_or_else(|_| usage()), b.parse().unwrap_or_else(|_| usage())));
                i += 1;
            }
            "--determinism" => {
                determinism = Some(value().parse::<u64>().unwrap_or_else(|_| usage()));
                i += 1;
            }
            "--jobs" => {
                jobs = value().parse().unwrap_or_else(|_| usage());
                i += 1;
            }
            "--teeth" => {
                teeth = Teeth::parse(&value()).unwrap_or_else(|| usage());
                i += 1;
            }
            "--long" => long = true,
            "--expect-failure" => expect_failure = true,
            "--require-paths" => require_paths = true,
            "--json" => json = true,
            _ => usage(),
        }
        i += 1;
    }
    let config = move |seed: u64| {
        if long {
            RunConfig { teeth, ..RunConfig::long(seed) }
        } else {
            RunConfig::for_seed(seed, teeth)
        }
    };
    let Some((from, to)) = seeds.or(determinism.map(|d| (d, d + 1))) else { usage() };
    if determinism.is_none() && to - from == 1 {
        // One seed: run here.
        let t = Instant::now();
        let report = run(&config(from));
        print(&report, t.elapsed().as_millis(), true);
        if report.passed() == expect_failure {
            std::process::exit(1);
        }
        return;
    }
    // Several seeds (or a determinism check): each in its own process, so that no state a
    // library keeps per thread or per process can carry from one run into the next, and
    // `--seed N` reproduces exactly what the batch saw.
    let mut flags: Vec<String> = Vec::new();
    if teeth != Teeth::None {
        flags.extend(["--teeth".into(), teeth.name().into()]);
    }
    if long {
        flags.push("--long".into());
    }
    if let Some(seed) = determinism {
        let a = child(seed, &flags);
        let b = child(seed, &flags);
        println!("seed {seed}: trace {} then {}", a.trace, b.trace);
        if a.trace != b.trace || a.trace.is_empty() {
            println!("determinism: FAILED (same seed, different traces)");
            std::process::exit(1);
        }
        println!("determinism: ok");
        return;
    }
    // With a deliberate bug, a seed counts as catching it only if the checker meant to catch
    // it fired (a panic or another checker alone is not enough).
    let catcher = teeth.caught_by().map(Checker::name);
    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(from));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let caught = Arc::new(Mutex::new(Vec::new()));
    let reached: Arc<Mutex<BTreeMap<Path, u64>>> = Arc::new(Mutex::new(Path::ALL.iter().map(|p| (*p, 0)).collect()));
    let answers = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..jobs.max(1))
        .map(|_| {
            let (next, failures, caught, reached, answers, done, flags) = (
                next.clone(),
                failures.clone(),
                caught.clone(),
                reached.clone(),
                answers.clone(),
                done.clone(),
                flags.clone(),
            );
            std::thread::spawn(move || loop {
                let seed = next.fetch_add(1, Ordering::SeqCst);
                if seed >= to {
                    return;
                }
                if expect_failure && !caught.lock().expect("caught lock").is_empty() {
                    return;
                }
                let result = child(seed, &flags);
                print!("{}", result.output);
                answers.fetch_add(result.answers, Ordering::Relaxed);
                done.fetch_add(1, Ordering::Relaxed);
                let mut r = reached.lock().expect("paths lock");
                for p in &result.paths {
                    *r.entry(*p).or_default() += 1;
                }
                drop(r);
                if !result.passed {
                    failures.lock().expect("failures lock").push(seed);
                    if catcher.is_some_and(|c| result.fired.iter().any(|f| f == c)) {
                        caught.lock().expect("caught lock").push(seed);
                    }
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mut failed = failures.lock().expect("failures lock").clone();
    failed.sort_unstable();
    let ran = done.load(Ordering::SeqCst);
    println!(
        "{ran} seeds in {elapsed:.1}s: {:.0} seeds/min, {:.0} client operations per wall-clock second",
        ran as f64 * 60.0 / elapsed,
        answers.load(Ordering::Relaxed) as f64 / elapsed
    );
    let reached = reached.lock().expect("paths lock").clone();
    println!("paths reached (seeds of {ran}):");
    for (p, n) in &reached {
        let note = match (*n, p.required()) {
            (0, true) => "   NEVER REACHED",
            (_, false) => "   (informational)",
            _ => "",
        };
        println!("  {:<28} {n:>6}{note}", p.name());
    }
    if json {
        let body: Vec<String> = reached.iter().map(|(p, n)| format!("\"{}\":{n}", p.name())).collect();
        println!("{{\"seeds\":{ran},\"failed\":{},\"paths\":{{{}}}}}", failed.len(), body.join(","));
    }
    let extra = if flags.is_empty() { String::new() } else { format!(" {}", flags.join(" ")) };
    for seed in &failed {
        println!("failed seed {seed}: reproduce with `cargo xtask sim --seed {seed}{extra}`");
    }
    let unreached: Vec<&str> =
        reached.iter().filter(|(p, n)| **n == 0 && p.required()).map(|(p, _)| p.name()).collect();
    if expect_failure {
        let mut caught = caught.lock().expect("caught lock").clone();
        caught.sort_unstable();
        match (caught.first(), catcher) {
            (Some(seed), Some(c)) => println!("the deliberate bug was caught by the {c} checker (seed {seed})"),
            _ => {
                println!(
                    "the deliberate bug was NOT caught by the {} checker in any seed: the checkers have no teeth",
                    catcher.unwrap_or("expected")
                );
                std::process::exit(1);
            }
        }
        return;
    }
    if !failed.is_empty() {
        std::process::exit(1);
    }
    if require_paths && !unreached.is_empty() {
        println!(
            "paths never reached in seeds {from}..{to}: {} — the simulator no longer exercises them, so no checker \
             can catch a bug there; change the workload, faults or configuration until it does",
            unreached.join(", ")
        );
        std::process::exit(1);
    }
    println!("all seeds passed");
}

/// What a child run printed.
struct ChildResult {
    output: String,
    passed: bool,
    trace: String,
    answers: u64,
    paths: Vec<Path>,
    fired: Vec<String>,
}

/// Runs one seed in a fresh process of this binary.
fn child(seed: u64, flags: &[String]) -> ChildResult {
    let exe = std::env::current_exe().expect("own executable");
    let out = std::process::Command::new(exe)
        .arg("--seed")
        .arg(seed.to_string())
        .args(flags)
        .output()
        .expect("start a simulation process");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let head = text.lines().find(|l| l.starts_with(&format!("seed {seed}:"))).unwrap_or("").to_string();
    let field = |name: &str| head.split_whitespace().find_map(|w| w.strip_prefix(name)).unwrap_or("").to_string();
    let passed = head.contains(": PASS");
    let output = if head.is_empty() {
        format!(
            "seed {seed}: FAIL (the simulation process died: {})\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    } else if passed {
        format!("{head}\n")
    } else {
        text.lines()
            .filter(|l| !l.starts_with("  fault") && !l.starts_with("  answers"))
            .map(|l| format!("{l}\n"))
            .collect()
    };
    let list = |name: &str| -> Vec<String> {
        field(name).split(',').filter(|s| !s.is_empty() && *s != "-").map(str::to_string).collect()
    };
    ChildResult {
        output,
        passed,
        trace: field("trace="),
        answers: field("answers=").parse().unwrap_or(0),
        paths: list("paths=").iter().filter_map(|p| Path::parse(p)).collect(),
        fired: list("fired="),
    }
}
