//! `cargo xtask`: the project's automation, so that one command runs every check locally
//! exactly as CI does.
//!
//! - `cargo xtask ci`: tidy, format check, clippy with warnings denied (which enforces the
//!   per-crate `clippy.toml` rules: no `HashMap`, clock or I/O in the ledger, blocking I/O in
//!   consensus only through its `IoMode` seam), every test, schemathesis and promtool against
//!   a real node (`schemathesis.sh`, `promtool.sh`), the next-format test build first
//!   (`next-build`, and its clippy), the Kubernetes manifests against the
//!   Kubernetes schemas (`kubernetes.sh`), then the deterministic simulator:
//!   its teeth and determinism tests and a batch of 200 seeds that must reach every
//!   dangerous path it counts.
//! - `cargo xtask tidy`: the architecture rules checked from the source tree alone, without
//!   compiling the workspace: module docs, ARCHITECTURE.md's dependency graph against the
//!   manifests, openraft confined to consensus, per-crate `clippy.toml` files (see `tidy.rs`).
//! - `cargo xtask image [--binary PATH] [--tag TAG]`: the node's container image from local
//!   files only (`xtask/image.sh`, `deploy/docker/Dockerfile`; `paddock:local` by default).
//! - `cargo xtask next-build`: the test build of the next log-entry format (`paddock-cli`
//!   with its `next-format` feature) at `target/next-format/paddock`, for the mixed-version
//!   and rolling-upgrade tests (`crates/cli/tests/mixed_versions.rs`, `compose_upgrade.rs`).
//! - `cargo xtask sim ARGS`: builds and runs the simulator (`--seed N`, `--seeds A..B`,
//!   `--determinism N`, `--long`, `--teeth ...`, `--require-paths`, `--json`; see
//!   `crates/sim/src/main.rs`).
//!
//! The simulator is built apart, in its own target directory with `--cfg tokio_unstable`
//! (seeded tokio scheduling); its features — openraft's seeded RNG runtime, the fault
//! switches — must never unify into the production build. Hence `--exclude paddock-sim` on
//! the workspace steps.

mod tidy;

use anyhow::{bail, Context, Result};
use std::process::Command;
use std::time::Instant;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("tidy") => tidy::run(&workspace_root()),
        Some("sim") => sim(&args[1..].iter().map(String::as_str).collect::<Vec<_>>()),
        Some("next-build") => next_build(),
        Some("image") => {
            let mut all = vec!["xtask/image.sh"];
            all.extend(args[1..].iter().map(String::as_str));
            run("bash", &all, &[])
        }
        _ => {
            eprintln!("usage: cargo xtask ci | cargo xtask tidy | cargo xtask next-build | cargo xtask image [--binary PATH] [--tag TAG] [--all] [--suffix S] | cargo xtask sim (--seed N | --seeds A..B | --determinism N) [--jobs J] [--long] [--teeth ...] [--require-paths] [--json]");
            std::process::exit(2);
        }
    }
}

fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace root").to_path_buf()
}

/// Runs a command from the workspace root, echoing it; fails if it fails.
fn run(program: &str, args: &[&str], env: &[(&str, &str)]) -> Result<()> {
    println!("\n==> {}{program} {}", env.iter().map(|(k, v)| format!("{k}={v} ")).collect::<String>(), args.join(" "));
    let start = Instant::now();
    let status = Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .current_dir(workspace_root())
        .status()
        .with_context(|| format!("could not start {program}"))?;
    println!("<== {program} {} ({:.1} s)", args.first().copied().unwrap_or(""), start.elapsed().as_secs_f64());
    if !status.success() {
        bail!("`{program} {}` failed with {status}", args.join(" "));
    }
    Ok(())
}

/// The simulator's build: its own target directory (its features and flags would otherwise
/// rebuild the shared crates back and forth with the main build's) and `--cfg tokio_unstable`,
/// which lets turmoil seed tokio's scheduler RNG: without it `select!` and task order vary
/// between processes and a seed does not replay.
const SIM_ENV: &[(&str, &str)] = &[("RUSTFLAGS", "--cfg tokio_unstable"), ("CARGO_TARGET_DIR", "target/sim")];

fn sim(args: &[&str]) -> Result<()> {
    let mut all = vec!["run", "--quiet", "--profile", "sim", "-p", "paddock-sim", "--"];
    all.extend_from_slice(args);
    run("cargo", &all, SIM_ENV)
}

/// Builds `paddock` with the `next-format` feature and keeps it at
/// `target/next-format/paddock`: the same `target/` (only the crates the feature touches are
/// built twice), copied out because the next plain build overwrites `target/debug/paddock`.
fn next_build() -> Result<()> {
    run("cargo", &["build", "-p", "paddock-cli", "--features", "next-format", "--locked"], &[])?;
    let target = workspace_root().join("target");
    std::fs::create_dir_all(target.join("next-format"))?;
    let to = target.join("next-format").join("paddock");
    // Copied beside, then renamed: a test running the old copy is not disturbed.
    let tmp = target.join("next-format").join("paddock.tmp");
    std::fs::copy(target.join("debug").join("paddock"), &tmp).context("copying the next-format build")?;
    std::fs::rename(&tmp, &to)?;
    println!("the next-format build is at {}", to.display());
    Ok(())
}

fn ci() -> Result<()> {
    let start = Instant::now();
    println!("\n==> tidy");
    tidy::run(&workspace_root())?;
    run("cargo", &["fmt", "--all", "--", "--check"], &[])?;
    run(
        "cargo",
        &["clippy", "--workspace", "--exclude", "paddock-sim", "--all-targets", "--locked", "--", "-D", "warnings"],
        &[],
    )?;
    // The code only the next-format test build compiles is linted too; then that build is
    // made for the mixed-version tests.
    run(
        "cargo",
        &[
            "clippy",
            "-p",
            "paddock-cli",
            "--features",
            "next-format",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ],
        &[],
    )?;
    next_build()?;
    // Real components the tests start (HAProxy), installed from Debian packages when missing.
    run("bash", &["xtask/packages.sh"], &[])?;
    run("cargo", &["test", "--workspace", "--exclude", "paddock-sim", "--locked"], &[])?;
    // Schemathesis drives a real node (the binary the tests just built) from its OpenAPI
    // document, with an operator's key: no 5xx, no response outside the schema.
    let paddock = workspace_root().join("target").join("debug").join("paddock");
    run("bash", &["xtask/schemathesis.sh", &paddock.display().to_string()], &[])?;
    // promtool lints a real node's /metrics: # HELP on every metric, Prometheus naming.
    run("bash", &["xtask/promtool.sh", &paddock.display().to_string()], &[])?;
    // The Kubernetes manifests against the Kubernetes schemas, offline (kubernetes-validate).
    run("bash", &["xtask/kubernetes.sh"], &[])?;
    run(
        "cargo",
        &["clippy", "-p", "paddock-sim", "--all-targets", "--profile", "sim", "--locked", "--", "-D", "warnings"],
        SIM_ENV,
    )?;
    run("cargo", &["test", "-p", "paddock-sim", "--profile", "sim", "--locked"], SIM_ENV)?;
    // `--require-paths`: a batch that no longer reaches a dangerous path (a snapshot install,
    // a purge, a delayed bet, ...) fails, since no checker can catch a bug there.
    sim(&["--seeds", "1..201", "--jobs", "2", "--require-paths"])?;
    println!("\nxtask ci: all checks passed in {:.0} s", start.elapsed().as_secs_f64());
    Ok(())
}
