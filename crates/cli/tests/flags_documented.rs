//! The docs match the binary: every flag that `paddock start`, `paddock load`, the drills,
//! `paddock backup` (and `backup verify`) and `paddock restore` print in their `--help` is named
//! in docs/operations.md, and every subcommand's `--help` shows an example or points to one.

use std::process::Command;

fn help(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_paddock")).args(args).arg("--help").output().expect("paddock runs");
    assert!(out.status.success(), "paddock {args:?} --help failed");
    String::from_utf8(out.stdout).expect("help is UTF-8")
}

/// The long flags an option list declares: lines that start (after spaces) with `--name` or
/// `-x, --name`.
fn flags(help: &str) -> Vec<String> {
    help.lines()
        .map(str::trim_start)
        .filter_map(|l| l.strip_prefix("-").map(|_| l))
        .filter_map(|l| l.split_whitespace().find(|w| w.starts_with("--")))
        .map(|w| w.trim_end_matches(',').to_string())
        .filter(|f| f != "--help" && f != "--version")
        .collect()
}

/// The subcommands a help text lists under `Commands:` (without `help`).
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .filter(|c| c != "help")
        .collect()
}

fn operations_md() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/operations.md"))
        .expect("docs/operations.md is readable")
}

#[test]
fn every_flag_of_start_load_and_the_drills_is_documented_in_operations_md() {
    let docs = operations_md();
    let mut missing = Vec::new();
    for command in [
        &["start"][..],
        &["load"],
        &["drill", "failover"],
        &["drill", "chaos"],
        &["drill", "restore"],
        &["drill", "dr"],
        &["dr", "promote"],
        &["dr", "failback"],
        &["backup"],
        &["backup", "verify"],
        &["restore"],
    ] {
        let flags = flags(&help(command));
        assert!(!flags.is_empty(), "paddock {} --help lists its flags", command.join(" "));
        for flag in flags {
            // Named as a flag: followed by a space, a backtick or the end of a word.
            let named = docs
                .match_indices(&flag)
                .any(|(at, _)| !docs[at + flag.len()..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '-'));
            if !named {
                missing.push(format!("paddock {} {flag}", command.join(" ")));
            }
        }
    }
    assert!(missing.is_empty(), "flags docs/operations.md does not document: {missing:?}");
}

#[test]
fn every_subcommand_help_shows_an_example() {
    let top = help(&[]);
    let commands = subcommands(&top);
    assert!(commands.len() >= 10, "the top-level help lists the subcommands: {commands:?}");
    let mut without = Vec::new();
    for command in &commands {
        let text = help(&[command]);
        let nested = subcommands(&text);
        if !text.contains("Example") {
            without.push(command.clone());
        }
        for sub in nested {
            if !help(&[command, &sub]).contains("Example") {
                without.push(format!("{command} {sub}"));
            }
        }
    }
    assert!(without.is_empty(), "subcommands whose --help has no example: {without:?}");
}
