//! `cargo xtask tidy`: the rules of ARCHITECTURE.md that a tool can check from the source tree
//! alone, in well under a second and without compiling the workspace. `cargo xtask ci` runs it
//! first.
//!
//! - Every module opens with a `//!` doc comment (`crates/*/{src,tests,benches}`, `xtask/src`).
//! - The dependency graph under "## Code map" in ARCHITECTURE.md lists every crate of `crates/`
//!   with exactly the internal crates its manifest's `[dependencies]` name.
//! - Only `consensus` (and the dev-only `sim`) depend on openraft.
//! - Every crate-level `clippy.toml` repeats the root one's settings and gives each disallowed
//!   method or type a reason.
//! - Every `paddock_*` metric emitted in `crates/*/src` is in `METRICS` (crates/node/src/metrics.rs,
//!   its `# HELP` text) and in the metrics table of docs/operations.md, and neither lists a
//!   metric no code emits.
//! - The Raft log's `discard` is called only from `crates/consensus/src/repair.rs`, which pairs
//!   it with the repair marker that makes the node abstain from votes.
//!
//! The per-crate purity rules themselves (no `HashMap`, clock or I/O in the ledger; blocking
//! I/O only through consensus's `IoMode` seam) are `disallowed-types`/`disallowed-methods` in
//! `crates/{ledger,consensus}/clippy.toml`, enforced by ci's clippy step.
//!
//! Every failure prints the rule, why it exists and what to do about it.

use anyhow::{bail, Context, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// A rule tidy enforces: what it says, why it exists, and what to do about a breach.
struct Rule {
    rule: &'static str,
    why: &'static str,
    fix: &'static str,
}

const MODULE_DOCS: Rule = Rule {
    rule: "every module opens with a `//!` doc comment saying what it is for (files under crates/*/src, \
           crates/*/tests, crates/*/benches and xtask/src; only blank lines and plain `//` comments may come \
           before it)",
    why: "the module docs are the second level of the code map: ARCHITECTURE.md names files and trusts each to \
          explain itself, and a reader lands in a file from a stack trace or a grep, not from the map",
    fix: "add a short, true `//!` line at the top of each file listed (what it holds and why it exists)",
};

const DEPENDENCY_GRAPH: Rule = Rule {
    rule: "the graph in the fenced block under \"## Code map\" in ARCHITECTURE.md lists every crate of crates/, \
           each with exactly the internal crates its Cargo.toml names in [dependencies] (dev- and build-dependencies \
           excluded); lines read `a, b  →  c, d` or `a, b  no internal dependencies`",
    why: "the graph is how a newcomer learns which way dependencies point and where a change belongs; a graph \
          that has drifted from the manifests teaches the wrong layering",
    fix: "if the manifest is right, correct the graph (and the prose around it); if the new dependency breaks the \
          layering, remove it from the manifest instead",
};

const OPENRAFT_CONFINED: Rule = Rule {
    rule: "only crates/consensus (and the dev-only simulator, crates/sim) list openraft in any dependency section",
    why: "openraft's types stay behind one crate so that an openraft upgrade (it is a pinned alpha) touches one \
          crate, and so that its serde types can never reach a persisted format by accident",
    fix: "use the consensus crate's API (`Consensus`, `ClusterStatus`, `*Record` types) instead of openraft; if \
          something is missing, add it there",
};

const CLIPPY_CONFIG: Rule = Rule {
    rule: "every crate-level clippy.toml repeats each setting of the root clippy.toml, and gives every \
           disallowed-methods/-types/-macros entry a `reason`",
    why: "clippy reads the nearest clippy.toml only, so a crate-level one silently drops the root's settings; \
          and a disallowed call reported without its reason teaches nothing (the reason is what clippy prints)",
    fix: "copy the missing root settings into the crate's clippy.toml; write entries as \
          `{ path = \"...\", reason = \"why this crate must not use it\" }`",
};

const METRICS_DESCRIBED: Rule = Rule {
    rule: "every `paddock_*` metric emitted with counter!/gauge!/histogram! in crates/*/src is listed in METRICS \
           (crates/node/src/metrics.rs) and in the table under \"## Metrics\" in docs/operations.md, and neither \
           lists a metric that no code emits",
    why: "METRICS gives each metric its # HELP text and its zero series from the start (promtool, dashboards and \
          alerts need both); the operations table is what an on-call engineer reads at 3 a.m.; a metric missing \
          from either is unexplained, and one listed but never emitted is an alert that can never fire",
    fix: "add the metric to METRICS (name, kind, labelled, help) and a row to the metrics table of \
          docs/operations.md, or remove the stale entry",
};

const DISCARD_CONFINED: Rule = Rule {
    rule: "`LogStore::discard` (a call `.discard(` on the Raft log) appears in crates/*/src only in \
           crates/consensus/src/repair.rs and in the storage crate that defines it",
    why: "discarding log entries a node may have acknowledged is safe only together with the repair marker that \
          makes the node abstain from votes until it has them back (ARCHITECTURE.md, the consensus crate's \
          invariant); repair.rs is where that pairing is written and tested",
    fix: "go through `repair::at_start` (or extend it), never call `discard` elsewhere",
};

/// Runs every check on the workspace at `root`; fails, after printing each breach with its rule, if any fails.
pub fn run(root: &Path) -> Result<()> {
    let manifests = read_manifests(root)?;
    let results: [(&Rule, Vec<String>); 6] = [
        (
            &MODULE_DOCS,
            module_doc_offenders(root)?.iter().map(|p| format!("{} has no `//!` module doc", p.display())).collect(),
        ),
        (&DEPENDENCY_GRAPH, dependency_graph_drift(root, &manifests)?),
        (&OPENRAFT_CONFINED, openraft_outside_consensus(&manifests)),
        (&CLIPPY_CONFIG, clippy_config_breaches(root)?),
        (&METRICS_DESCRIBED, metric_drift(root)?),
        (&DISCARD_CONFINED, discard_outside_repair(root)?),
    ];
    let broken: Vec<_> = results.iter().filter(|(_, breaches)| !breaches.is_empty()).collect();
    if broken.is_empty() {
        println!(
            "tidy: module docs, dependency graph, openraft confinement, clippy configuration, metric \
             descriptions and log-discard confinement all hold"
        );
        return Ok(());
    }
    for (rule, breaches) in &broken {
        eprintln!("\ntidy: rule: {}", rule.rule);
        for breach in breaches {
            eprintln!("  - {breach}");
        }
        eprintln!("  why: {}", rule.why);
        eprintln!("  fix: {}", rule.fix);
    }
    let count: usize = broken.iter().map(|(_, breaches)| breaches.len()).sum();
    bail!("tidy: {count} breach(es) of {} rule(s); see above", broken.len())
}

// ---------------------------------------------------------------------------------------------
// Log discards

/// Source files outside repair.rs and the storage crate that call `.discard(`, with the line.
fn discard_outside_repair(root: &Path) -> Result<Vec<String>> {
    let allowed = [root.join("crates/consensus/src/repair.rs")];
    let mut files = Vec::new();
    for krate in crate_dirs(root)? {
        if krate.ends_with("storage") {
            continue;
        }
        rust_files(&krate.join("src"), &mut files)?;
    }
    let mut out = Vec::new();
    for file in files.into_iter().filter(|f| !allowed.contains(f)) {
        let source = fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
        for (n, line) in source.lines().enumerate() {
            if line.contains(".discard(") {
                out.push(format!("{}:{}: {}", file.strip_prefix(root).unwrap_or(&file).display(), n + 1, line.trim()));
            }
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Module docs

/// The files whose module doc is missing, relative to `root`, in path order.
fn module_doc_offenders(root: &Path) -> Result<Vec<PathBuf>> {
    let mut dirs = Vec::new();
    for krate in crate_dirs(root)? {
        for sub in ["src", "tests", "benches"] {
            dirs.push(krate.join(sub));
        }
    }
    dirs.push(root.join("xtask").join("src"));
    let mut files = Vec::new();
    for dir in dirs {
        rust_files(&dir, &mut files)?;
    }
    let mut offenders = Vec::new();
    for file in files {
        let source = fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
        if !is_generated(&source) && !has_module_doc(&source) {
            offenders.push(file.strip_prefix(root).unwrap_or(&file).to_path_buf());
        }
    }
    Ok(offenders)
}

/// Every `.rs` file under `dir` (none if it does not exist), sorted.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    if !dir.is_dir() {
        return Ok(());
    }
    let mut entries = fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<Vec<_>>>()?;
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// Whether a file says it is generated (the `@generated` marker on its first non-blank line).
fn is_generated(source: &str) -> bool {
    source.lines().find(|l| !l.trim().is_empty()).is_some_and(|l| l.contains("@generated"))
}

/// Whether `source` opens with an inner doc comment (`//!` or `/*!`): the first line that is
/// neither blank nor a plain `//` comment (a licence header, say) must be one.
fn has_module_doc(source: &str) -> bool {
    for line in source.lines().map(str::trim_start) {
        if line.starts_with("//!") || line.starts_with("/*!") {
            return true;
        }
        let plain_comment = line.starts_with("//") && !line.starts_with("///");
        if !(line.is_empty() || plain_comment) {
            return false;
        }
    }
    false
}

// ---------------------------------------------------------------------------------------------
// Manifests

/// Crate (by its directory name under `crates/`) → the internal crates it depends on.
type Graph = BTreeMap<String, BTreeSet<String>>;

/// Which table of a manifest a dependency sits in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Normal,
    Dev,
    Build,
}

/// One dependency as a manifest lists it.
#[derive(Debug)]
struct Dependency {
    /// The package depended on (the `package = ...` of a renamed dependency, else the key).
    package: String,
    kind: Kind,
    /// Where it is listed, for messages: `[dependencies]`, `[target.'cfg(unix)'.dev-dependencies]`.
    section: String,
}

/// The parts of one crate's `Cargo.toml` that tidy reads.
#[derive(Debug)]
struct Manifest {
    /// The crate's directory name under `crates/`, the name the graph uses.
    dir: String,
    /// Its package name.
    package: String,
    dependencies: Vec<Dependency>,
}

// ---------------------------------------------------------------------------------------------
// Metrics

/// Emitted, listed and documented metric names that do not agree.
fn metric_drift(root: &Path) -> Result<Vec<String>> {
    let mut files = Vec::new();
    for krate in crate_dirs(root)? {
        rust_files(&krate.join("src"), &mut files)?;
    }
    let mut emitted = BTreeSet::new();
    for file in &files {
        let source = fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        emitted.extend(emitted_metrics(&source));
    }
    let table = root.join("crates/node/src/metrics.rs");
    let listed = listed_metrics(&fs::read_to_string(&table).with_context(|| format!("reading {}", table.display()))?);
    let docs = root.join("docs/operations.md");
    let documented =
        documented_metrics(&fs::read_to_string(&docs).with_context(|| format!("reading {}", docs.display()))?);
    Ok(metric_set_drift(&emitted, &listed, &documented))
}

fn metric_set_drift(
    emitted: &BTreeSet<String>,
    listed: &BTreeSet<String>,
    documented: &BTreeSet<String>,
) -> Vec<String> {
    let mut out = Vec::new();
    for name in emitted.difference(listed) {
        out.push(format!("{name} is emitted but not in METRICS (crates/node/src/metrics.rs)"));
    }
    for name in emitted.difference(documented) {
        out.push(format!("{name} is emitted but not in the metrics table of docs/operations.md"));
    }
    for name in listed.union(documented).filter(|n| !emitted.contains(*n)) {
        out.push(format!("{name} is listed but no code emits it"));
    }
    out
}

/// Names passed as a string literal to `counter!`, `gauge!` or `histogram!`.
fn emitted_metrics(source: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for macro_name in ["counter!(", "gauge!(", "histogram!("] {
        for (at, _) in source.match_indices(macro_name) {
            let rest = source[at + macro_name.len()..].trim_start();
            if let Some(name) = rest.strip_prefix("\"paddock_").and_then(|r| r.split('"').next()) {
                out.insert(format!("paddock_{name}"));
            }
        }
    }
    out
}

/// The names of the `METRICS` table: lines that open with `("paddock_`.
fn listed_metrics(source: &str) -> BTreeSet<String> {
    source
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("(\"paddock_"))
        .filter_map(|r| r.split('"').next())
        .map(|n| format!("paddock_{n}"))
        .collect()
}

/// The names of the metrics table: rows that open with `` | `paddock_ ``.
fn documented_metrics(markdown: &str) -> BTreeSet<String> {
    markdown
        .lines()
        .filter_map(|l| l.strip_prefix("| `paddock_"))
        .filter_map(|r| r.split('`').next())
        .map(|n| format!("paddock_{n}"))
        .collect()
}

/// The directories of `crates/` that hold a `Cargo.toml`, sorted.
fn crate_dirs(root: &Path) -> Result<Vec<PathBuf>> {
    let crates = root.join("crates");
    let mut dirs = Vec::new();
    for entry in fs::read_dir(&crates).with_context(|| format!("listing {}", crates.display()))? {
        let path = entry?.path();
        if path.join("Cargo.toml").is_file() {
            dirs.push(path);
        }
    }
    dirs.sort();
    Ok(dirs)
}

fn read_manifests(root: &Path) -> Result<Vec<Manifest>> {
    let mut manifests = Vec::new();
    for dir in crate_dirs(root)? {
        let path = dir.join("Cargo.toml");
        let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let name = dir.file_name().and_then(|n| n.to_str()).context("a crate directory's name is not UTF-8")?;
        manifests.push(parse_manifest(name, &text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?);
    }
    Ok(manifests)
}

/// Reads the package name and every dependency (plain, dev, build; target-specific too).
fn parse_manifest(dir: &str, text: &str) -> Result<Manifest, String> {
    let table: toml::Table = text.parse().map_err(|e| format!("not valid TOML: {e}"))?;
    let package = table
        .get("package")
        .and_then(|p| p.get("name"))
        .and_then(toml::Value::as_str)
        .ok_or("no [package] name")?
        .to_string();
    let mut dependencies = Vec::new();
    let mut read_tables = |holder: &toml::Table, prefix: &str| {
        for (key, kind) in
            [("dependencies", Kind::Normal), ("dev-dependencies", Kind::Dev), ("build-dependencies", Kind::Build)]
        {
            let Some(deps) = holder.get(key).and_then(toml::Value::as_table) else { continue };
            for (name, spec) in deps {
                let package = spec.get("package").and_then(toml::Value::as_str).unwrap_or(name).to_string();
                dependencies.push(Dependency { package, kind, section: format!("[{prefix}{key}]") });
            }
        }
    };
    read_tables(&table, "");
    if let Some(targets) = table.get("target").and_then(toml::Value::as_table) {
        for (cfg, holder) in targets {
            if let Some(holder) = holder.as_table() {
                read_tables(holder, &format!("target.'{cfg}'."));
            }
        }
    }
    Ok(Manifest { dir: dir.to_string(), package, dependencies })
}

/// Each crate → the crates of the workspace it names in its normal (not dev, not build) dependencies.
fn internal_graph(manifests: &[Manifest]) -> Graph {
    let dir_of: BTreeMap<&str, &str> = manifests.iter().map(|m| (m.package.as_str(), m.dir.as_str())).collect();
    manifests
        .iter()
        .map(|m| {
            let deps = m
                .dependencies
                .iter()
                .filter(|d| d.kind == Kind::Normal)
                .filter_map(|d| dir_of.get(d.package.as_str()).map(|dir| dir.to_string()))
                .collect();
            (m.dir.clone(), deps)
        })
        .collect()
}

/// The crates that may depend on openraft.
const OPENRAFT_ALLOWED: &[&str] = &["consensus", "sim"];

/// Every listing of openraft outside the crates allowed it, in any dependency section.
fn openraft_outside_consensus(manifests: &[Manifest]) -> Vec<String> {
    manifests
        .iter()
        .filter(|m| !OPENRAFT_ALLOWED.contains(&m.dir.as_str()))
        .flat_map(|m| {
            m.dependencies
                .iter()
                .filter(|d| d.package == "openraft")
                .map(move |d| format!("crates/{}/Cargo.toml lists openraft in {}", m.dir, d.section))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The code map

/// ARCHITECTURE.md's graph against the manifests: each difference, or the reason the graph cannot be read.
fn dependency_graph_drift(root: &Path, manifests: &[Manifest]) -> Result<Vec<String>> {
    let architecture = fs::read_to_string(root.join("ARCHITECTURE.md")).context("reading ARCHITECTURE.md")?;
    Ok(match parse_code_map(&architecture) {
        Ok(documented) => graph_drift(&documented, &internal_graph(manifests)),
        Err(e) => vec![format!("ARCHITECTURE.md: {e}")],
    })
}

/// Parses the dependency graph: the first fenced block after the "## Code map" heading (and
/// before the next `## ` heading). Each line is `a, b  →  c, d` or `a, b  no internal dependencies`.
fn parse_code_map(markdown: &str) -> Result<Graph, String> {
    let mut lines = markdown.lines().enumerate().skip_while(|(_, l)| l.trim() != "## Code map");
    if lines.next().is_none() {
        return Err("no \"## Code map\" heading".into());
    }
    let mut lines = lines.take_while(|(_, l)| !l.starts_with("## "));
    if !lines.any(|(_, l)| l.trim_start().starts_with("```")) {
        return Err("no fenced block under \"## Code map\"".into());
    }
    let mut graph = Graph::new();
    for (n, line) in lines.take_while(|(_, l)| !l.trim_start().starts_with("```")) {
        let line_no = n + 1;
        if line.trim().is_empty() {
            continue;
        }
        let (from, to) = if let Some((from, to)) = line.split_once('→') {
            (from, names(to).map_err(|e| format!("line {line_no}: {e} in `{line}`"))?)
        } else if let Some(from) = line.trim_end().strip_suffix("no internal dependencies") {
            (from, Vec::new())
        } else {
            return Err(format!(
                "line {line_no}: `{line}` is neither `a, b → c, d` nor `a, b   no internal dependencies`"
            ));
        };
        for name in names(from).map_err(|e| format!("line {line_no}: {e} in `{line}`"))? {
            if graph.contains_key(&name) {
                return Err(format!("line {line_no}: `{name}` is on the left of the graph twice"));
            }
            graph.insert(name, to.iter().cloned().collect());
        }
    }
    Ok(graph)
}

/// A comma-separated list of crate names (lowercase letters, digits and `-`), at least one.
fn names(list: &str) -> Result<Vec<String>, String> {
    let names: Vec<String> = list.split(',').map(|n| n.trim().to_string()).collect();
    for name in &names {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
            return Err(format!("`{name}` is not a crate name"));
        }
    }
    Ok(names)
}

/// Every difference between the documented graph and the manifests' one, as a sentence.
fn graph_drift(documented: &Graph, actual: &Graph) -> Vec<String> {
    let list = |deps: &BTreeSet<String>| {
        if deps.is_empty() {
            "no internal dependencies".to_string()
        } else {
            format!("→ {}", deps.iter().map(String::as_str).collect::<Vec<_>>().join(", "))
        }
    };
    let mut drift = Vec::new();
    for (krate, deps) in actual {
        let Some(said) = documented.get(krate) else {
            drift.push(format!("crates/{krate} is missing from the graph (its manifest says: {krate} {})", list(deps)));
            continue;
        };
        for dep in deps.difference(said) {
            drift.push(format!(
                "crates/{krate}/Cargo.toml depends on {dep} in [dependencies], but the graph has no `{krate} → {dep}`"
            ));
        }
        for dep in said.difference(deps) {
            drift.push(format!(
                "the graph says `{krate} → {dep}`, but crates/{krate}/Cargo.toml has no such [dependencies] entry"
            ));
        }
    }
    for krate in documented.keys().filter(|k| !actual.contains_key(*k)) {
        drift.push(format!("the graph lists `{krate}`, but there is no crates/{krate}"));
    }
    drift
}

// ---------------------------------------------------------------------------------------------
// clippy.toml

/// The tables of clippy.toml whose entries must each carry a reason.
const DISALLOWED_LISTS: &[&str] = &["disallowed-methods", "disallowed-types", "disallowed-macros"];

fn clippy_config_breaches(root: &Path) -> Result<Vec<String>> {
    let root_config = read_toml(&root.join("clippy.toml"))?.unwrap_or_default();
    let mut breaches = Vec::new();
    let mut dirs = crate_dirs(root)?;
    dirs.push(root.join("xtask"));
    for dir in dirs {
        let path = dir.join("clippy.toml");
        if let Some(config) = read_toml(&path)? {
            let shown = path.strip_prefix(root).unwrap_or(&path).display().to_string();
            breaches.extend(clippy_config_drift(&shown, &root_config, &config));
        }
    }
    Ok(breaches)
}

fn read_toml(path: &Path) -> Result<Option<toml::Table>> {
    if !path.is_file() {
        return Ok(None);
    }
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(Some(text.parse().with_context(|| format!("{} is not valid TOML", path.display()))?))
}

/// What a crate-level clippy.toml (shown as `shown`) lacks: the root's settings, and reasons.
fn clippy_config_drift(shown: &str, root_config: &toml::Table, config: &toml::Table) -> Vec<String> {
    let mut drift = Vec::new();
    for (key, value) in root_config {
        if config.get(key) != Some(value) {
            drift.push(format!("{shown} does not repeat the root's `{key} = {value}`"));
        }
    }
    for list in DISALLOWED_LISTS {
        let Some(entries) = config.get(*list).and_then(toml::Value::as_array) else { continue };
        for entry in entries {
            let reason = entry.get("reason").and_then(toml::Value::as_str).unwrap_or("");
            if reason.trim().is_empty() {
                let path = entry.get("path").and_then(toml::Value::as_str).or(entry.as_str()).unwrap_or("?");
                drift.push(format!("{shown}: the {list} entry `{path}` has no reason"));
            }
        }
    }
    drift
}

#[cfg(test)]
mod metric_tests {
    use super::*;

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn emitted_metrics_are_the_literal_names_given_to_the_macros() {
        let source = r#"
            metrics::counter!("paddock_a_total", "reason" => r).increment(1);
            ::metrics::gauge!(
                "paddock_b").set(1.0);
            metrics::histogram!(name).record(1.0);
            counter!("other_total").increment(1);
        "#;
        assert_eq!(emitted_metrics(source), set(&["paddock_a_total", "paddock_b"]));
    }

    #[test]
    fn the_table_and_the_docs_are_read_by_their_row_openings() {
        let table = "pub const METRICS = &[\n    (\"paddock_a_total\", Counter, false, \"A.\"),\n];\n";
        assert_eq!(listed_metrics(table), set(&["paddock_a_total"]));
        let docs = "| metric | type |\n|---|---|\n| `paddock_a_total` | counter | | a |\n`paddock_b` in prose\n";
        assert_eq!(documented_metrics(docs), set(&["paddock_a_total"]));
    }

    #[test]
    fn a_metric_missing_from_either_list_or_listed_but_never_emitted_is_a_breach() {
        let emitted = set(&["paddock_a", "paddock_b"]);
        let drift = metric_set_drift(&emitted, &set(&["paddock_a", "paddock_c"]), &set(&["paddock_a", "paddock_b"]));
        assert_eq!(
            drift,
            vec![
                "paddock_b is emitted but not in METRICS (crates/node/src/metrics.rs)".to_string(),
                "paddock_c is listed but no code emits it".to_string(),
            ]
        );
        assert!(metric_set_drift(&emitted, &emitted, &emitted).is_empty());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(edges: &[(&str, &[&str])]) -> Graph {
        edges.iter().map(|(k, deps)| (k.to_string(), deps.iter().map(|d| d.to_string()).collect())).collect()
    }

    // Module docs

    #[test]
    fn a_file_that_opens_with_an_inner_doc_comment_has_a_module_doc() {
        assert!(has_module_doc("//! The ledger's money type.\n\nuse std::fmt;\n"));
        assert!(has_module_doc("/*! The ledger's money type. */\nuse std::fmt;\n"));
    }

    #[test]
    fn blank_lines_and_plain_comments_may_precede_the_module_doc() {
        assert!(has_module_doc("\n\n// Copyright the Paddock authors.\n\n//! The ledger's money type.\n"));
    }

    #[test]
    fn an_outer_doc_comment_documents_the_next_item_not_the_module() {
        assert!(!has_module_doc("/// Money in minor units.\npub struct Money(i64);\n"));
    }

    #[test]
    fn a_module_doc_after_code_or_attributes_does_not_count() {
        assert!(!has_module_doc("use std::fmt;\n//! Too late.\n"));
        assert!(!has_module_doc("#![allow(missing_docs)]\n//! Doc first, then attributes.\n"));
    }

    #[test]
    fn an_empty_file_has_no_module_doc() {
        assert!(!has_module_doc(""));
        assert!(!has_module_doc("\n  \n"));
    }

    #[test]
    fn a_generated_file_is_exempt() {
        assert!(is_generated("// @generated by prost-build\npub struct Frame {}\n"));
        assert!(!is_generated("//! Hand-written.\n// @generated appears later, which does not count\n"));
    }

    // The code map

    const ARCHITECTURE: &str = r#"# Architecture

## Bird's-eye view

```
client ──► node → a block before the code map, not the graph
```

## Code map

Internal dependencies point one way:

```
ledger, storage      no internal dependencies
consensus         →  ledger, storage
cli               →  consensus, ledger
```

### `crates/ledger`

## Cross-cutting concerns
"#;

    #[test]
    fn the_graph_is_the_fenced_block_under_the_code_map_heading() {
        let expected = graph(&[
            ("ledger", &[]),
            ("storage", &[]),
            ("consensus", &["ledger", "storage"]),
            ("cli", &["consensus", "ledger"]),
        ]);
        assert_eq!(parse_code_map(ARCHITECTURE), Ok(expected));
    }

    #[test]
    fn a_graph_line_of_another_shape_is_an_error_naming_the_line() {
        let doc = "## Code map\n\n```\nledger depends on nothing\n```\n";
        let err = parse_code_map(doc).unwrap_err();
        assert!(err.contains("line 4") && err.contains("ledger depends on nothing"), "{err}");
    }

    #[test]
    fn a_crate_on_the_left_twice_is_an_error() {
        let doc = "## Code map\n```\nledger  no internal dependencies\nledger  →  storage\n```\n";
        assert!(parse_code_map(doc).unwrap_err().contains("`ledger` is on the left of the graph twice"));
    }

    #[test]
    fn a_missing_heading_or_block_is_an_error() {
        assert!(parse_code_map("# Architecture\n").is_err());
        assert!(parse_code_map("## Code map\n\nProse only.\n\n## Next\n```\na → b\n```\n").is_err());
    }

    #[test]
    fn a_graph_that_matches_the_manifests_has_no_drift() {
        let g = graph(&[("ledger", &[]), ("api", &["ledger"])]);
        assert!(graph_drift(&g, &g).is_empty());
    }

    #[test]
    fn every_difference_from_the_manifests_is_reported() {
        let documented = graph(&[("ledger", &[]), ("cli", &["node", "api"]), ("gone", &[])]);
        let actual = graph(&[("ledger", &[]), ("cli", &["node", "chaos"]), ("chaos", &["api"])]);
        let drift = graph_drift(&documented, &actual);
        let expected = [
            "crates/chaos is missing from the graph (its manifest says: chaos → api)",
            "crates/cli/Cargo.toml depends on chaos in [dependencies], but the graph has no `cli → chaos`",
            "the graph says `cli → api`, but crates/cli/Cargo.toml has no such [dependencies] entry",
            "the graph lists `gone`, but there is no crates/gone",
        ];
        assert_eq!(drift, expected);
    }

    // Manifests

    const CLI_MANIFEST: &str = r#"
[package]
name = "paddock-cli"

[dependencies]
paddock-node.workspace = true
engine = { package = "paddock-consensus", path = "../consensus" }
tokio.workspace = true

[dev-dependencies]
paddock-ledger.workspace = true
openraft.workspace = true

[target.'cfg(unix)'.dependencies]
paddock-api = { workspace = true }
"#;

    fn manifest(dir: &str, package: &str) -> Manifest {
        parse_manifest(dir, &format!("[package]\nname = \"{package}\"\n")).unwrap()
    }

    #[test]
    fn internal_dependencies_are_the_normal_dependencies_on_workspace_crates() {
        let workspace = vec![
            parse_manifest("cli", CLI_MANIFEST).unwrap(),
            manifest("node", "paddock-node"),
            manifest("consensus", "paddock-consensus"),
            manifest("ledger", "paddock-ledger"),
            manifest("api", "paddock-api"),
        ];
        let graph = internal_graph(&workspace);
        // Renamed and target-specific dependencies count; dev-dependencies and tokio do not.
        assert_eq!(graph["cli"], ["api", "consensus", "node"].iter().map(|s| s.to_string()).collect());
        assert!(graph["ledger"].is_empty());
    }

    #[test]
    fn openraft_anywhere_but_consensus_and_sim_is_reported_with_its_section() {
        let sim = parse_manifest("sim", "[package]\nname = \"paddock-sim\"\n[dependencies]\nopenraft = \"0\"\n");
        let workspace = vec![parse_manifest("cli", CLI_MANIFEST).unwrap(), sim.unwrap()];
        assert_eq!(
            openraft_outside_consensus(&workspace),
            ["crates/cli/Cargo.toml lists openraft in [dev-dependencies]"]
        );
    }

    // clippy.toml

    #[test]
    fn a_crate_clippy_toml_must_repeat_the_root_settings_and_give_reasons() {
        let root: toml::Table = "too-many-arguments-threshold = 9\n".parse().unwrap();
        let good: toml::Table = r#"
            too-many-arguments-threshold = 9
            disallowed-types = [{ path = "std::collections::HashMap", reason = "iteration order varies" }]
        "#
        .parse()
        .unwrap();
        assert!(clippy_config_drift("crates/ledger/clippy.toml", &root, &good).is_empty());

        let bad: toml::Table = r#"
            disallowed-methods = ["std::time::Instant::now", { path = "std::env::var", reason = " " }]
        "#
        .parse()
        .unwrap();
        assert_eq!(
            clippy_config_drift("crates/ledger/clippy.toml", &root, &bad),
            [
                "crates/ledger/clippy.toml does not repeat the root's `too-many-arguments-threshold = 9`",
                "crates/ledger/clippy.toml: the disallowed-methods entry `std::time::Instant::now` has no reason",
                "crates/ledger/clippy.toml: the disallowed-methods entry `std::env::var` has no reason",
            ]
        );
    }
}
