//! `paddock-sim`: run seeds of the deterministic simulation.
//!
//! ```text
//! paddock-sim --seed N [--teeth ack-before-fsync|skip-funds-check] [--long]
//! paddock-sim --seeds A..B [--jobs J] [--teeth ...] [--expect-failure]
//! paddock-sim --determinism N        run seed N twice and compare trace hashes
//! ```
//! Use it through `cargo xtask sim`, which builds it the way it must be built.

use paddock_sim::{run, RunConfig, RunReport, Teeth};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

fn usage() -> ! {
    eprintln!("usage: paddock-sim (--seed N | --seeds A..B | --determinism N) [--jobs J] [--teeth ack-before-fsync|skip-funds-check] [--long] [--expect-failure]");
    std::process::exit(2);
}

fn print(r: &RunReport, wall_ms: u128, verbose: bool) {
    // The whole trace hash: a determinism check compares it between processes.
    let verdict = if r.passed() { "PASS" } else { "FAIL" };
    println!(
        "seed {}: {verdict} trace={} answers={} bets={} log={} reads={} faults={} sim={:.1}s wall={}ms",
        r.seed,
        r.trace_hash,
        r.answers,
        r.acked_bets,
        r.log_entries,
        r.reads_checked,
        r.faults.len(),
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
                teeth = match value().as_str() {
                    "ack-before-fsync" => Teeth::AckBeforeFsync,
                    "skip-funds-check" => Teeth::SkipFundsCheck,
                    _ => usage(),
                };
                i += 1;
            }
            "--long" => long = true,
            "--expect-failure" => expect_failure = true,
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
    match teeth {
        Teeth::None => {}
        Teeth::AckBeforeFsync => flags.extend(["--teeth".into(), "ack-before-fsync".into()]),
        Teeth::SkipFundsCheck => flags.extend(["--teeth".into(), "skip-funds-check".into()]),
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
    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(from));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let answers = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..jobs.max(1))
        .map(|_| {
            let (next, failures, answers, done, flags) =
                (next.clone(), failures.clone(), answers.clone(), done.clone(), flags.clone());
            std::thread::spawn(move || loop {
                let seed = next.fetch_add(1, Ordering::SeqCst);
                if seed >= to {
                    return;
                }
                if expect_failure && !failures.lock().expect("failures lock").is_empty() {
                    return;
                }
                let result = child(seed, &flags);
                print!("{}", result.output);
                answers.fetch_add(result.answers, Ordering::Relaxed);
                done.fetch_add(1, Ordering::Relaxed);
                if !result.passed {
                    failures.lock().expect("failures lock").push(seed);
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
    let extra = if flags.is_empty() { String::new() } else { format!(" {}", flags.join(" ")) };
    for seed in &failed {
        println!("failed seed {seed}: reproduce with `cargo xtask sim --seed {seed}{extra}`");
    }
    match (expect_failure, failed.is_empty()) {
        (false, true) => println!("all seeds passed"),
        (false, false) => std::process::exit(1),
        (true, false) => println!("the deliberate bug was caught (seed {})", failed[0]),
        (true, true) => {
            println!("the deliberate bug was NOT caught by any seed: the checkers have no teeth");
            std::process::exit(1);
        }
    }
}

/// What a child run printed.
struct ChildResult {
    output: String,
    passed: bool,
    trace: String,
    answers: u64,
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
    ChildResult { output, passed, trace: field("trace="), answers: field("answers=").parse().unwrap_or(0) }
}
