//! `cargo xtask`: the project's automation, so that one command runs every check locally
//! exactly as CI does.
//!
//! - `cargo xtask ci`: format check, clippy with warnings denied, every test.
//!
//! Each step prints what it runs; the first failure stops the run with a non-zero exit.

use anyhow::{bail, Context, Result};
use std::process::Command;
use std::time::Instant;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("ci") => ci(),
        _ => {
            eprintln!("usage: cargo xtask ci");
            std::process::exit(2);
        }
    }
}

/// Runs a command from the workspace root, echoing it; fails if it fails.
fn run(program: &str, args: &[&str]) -> Result<()> {
    let root = workspace_root();
    println!("\n==> {program} {}", args.join(" "));
    let start = Instant::now();
    let status = Command::new(program)
        .args(args)
        .current_dir(&root)
        .status()
        .with_context(|| format!("could not start {program}"))?;
    println!("<== {program} {} ({:.1} s)", args.first().copied().unwrap_or(""), start.elapsed().as_secs_f64());
    if !status.success() {
        bail!("`{program} {}` failed with {status}", args.join(" "));
    }
    Ok(())
}

fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace root").to_path_buf()
}

fn ci() -> Result<()> {
    let start = Instant::now();
    run("cargo", &["fmt", "--all", "--", "--check"])?;
    run("cargo", &["clippy", "--workspace", "--all-targets", "--locked", "--", "-D", "warnings"])?;
    run("cargo", &["test", "--workspace", "--locked"])?;
    println!("\nxtask ci: all checks passed in {:.0} s", start.elapsed().as_secs_f64());
    Ok(())
}
