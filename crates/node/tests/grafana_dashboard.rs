//! The Grafana dashboard, `deploy/grafana/paddock.json`, charts only series that exist.
//!
//! A dashboard query naming a metric that was renamed, misspelt or never exported does not
//! fail anywhere: its panel shows "No data", which in an incident reads as "all quiet". These
//! tests fail instead. Every query must name a metric of `METRICS` (crates/node/src/metrics.rs)
//! or a recording rule of deploy/prometheus/paddock-alerts.yml; every panel must say what good
//! looks like; every query must read the data source chosen in the `${datasource}` variable, so
//! that the file imports into any Grafana; and the areas an operator needs (leadership, bets,
//! latency, replication, storage, snapshots, load shedding) must each have a panel. `cargo xtask
//! ci` runs them with the other tests.
//!
//! `METRICS` is private to paddock-node (`mod metrics`), so its table is read from the source,
//! as `cargo xtask tidy` and xtask/promtool.sh read it: one `("paddock_…", Kind, labelled,
//! "help")` entry per line.

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;

/// A file of the repository, by its path from the root.
fn repository_file(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("reading {}: {e}", full.display()))
}

fn dashboard() -> Value {
    serde_json::from_str(&repository_file("deploy/grafana/paddock.json"))
        .unwrap_or_else(|e| panic!("deploy/grafana/paddock.json is not valid JSON: {e}"))
}

/// Every panel, rows included, and the panels nested in (collapsed) rows.
fn all_panels(dashboard: &Value) -> Vec<&Value> {
    fn walk<'a>(list: &'a Value, out: &mut Vec<&'a Value>) {
        for panel in list.as_array().into_iter().flatten() {
            out.push(panel);
            walk(&panel["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

fn is_row(panel: &Value) -> bool {
    panel["type"].as_str() == Some("row")
}

/// The panels that chart something: every panel but the rows.
fn charts(dashboard: &Value) -> Vec<&Value> {
    all_panels(dashboard).into_iter().filter(|p| !is_row(p)).collect()
}

fn title(panel: &Value) -> &str {
    panel["title"].as_str().unwrap_or("")
}

fn targets(panel: &Value) -> Vec<&Value> {
    panel["targets"].as_array().map(|t| t.iter().collect()).unwrap_or_default()
}

/// A query of the dashboard: where it is, and its PromQL.
struct Query {
    place: String,
    expr: String,
}

/// Every query: each panel target's `expr`, and each query variable's query.
fn queries(dashboard: &Value) -> Vec<Query> {
    let mut out = Vec::new();
    for panel in charts(dashboard) {
        for target in targets(panel) {
            let expr = target["expr"].as_str().unwrap_or("").to_string();
            out.push(Query { place: format!("panel \"{}\"", title(panel)), expr });
        }
    }
    for v in variables(dashboard) {
        if v["type"].as_str() == Some("query") {
            let query = &v["query"];
            let expr = query.as_str().or_else(|| query["query"].as_str()).unwrap_or("").to_string();
            out.push(Query { place: format!("variable ${}", v["name"].as_str().unwrap_or("")), expr });
        }
    }
    out
}

fn variables(dashboard: &Value) -> Vec<&Value> {
    dashboard["templating"]["list"].as_array().map(|l| l.iter().collect()).unwrap_or_default()
}

fn variable<'a>(dashboard: &'a Value, name: &str) -> Option<&'a Value> {
    variables(dashboard).into_iter().find(|v| v["name"].as_str() == Some(name))
}

/// The metric-like names a PromQL expression uses: identifiers (`[a-zA-Z_:][a-zA-Z0-9_:]*`)
/// that start with `paddock_` or hold a `:`, as recording rules do. Quoted text (label values
/// such as `route="/v1/bets"`) is skipped, and so is a run that starts with a digit (the
/// `5m:1m` of a subquery's range).
fn metric_names(expr: &str) -> Vec<String> {
    let mut code = String::with_capacity(expr.len());
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in expr.chars() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' && q != '`' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
                code.push(' ');
            }
            None if matches!(c, '"' | '\'' | '`') => {
                quote = Some(c);
                code.push(' ');
            }
            None => code.push(c),
        }
    }
    code.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|word| word.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_' || c == ':'))
        .filter(|word| word.starts_with("paddock_") || word.contains(':'))
        .map(str::to_string)
        .collect()
}

/// The series names the node exports: each name of `METRICS`, and for a histogram its
/// `_bucket`, `_sum` and `_count` series (the exporter writes no series under the bare name).
fn exported_series() -> BTreeSet<String> {
    let source = repository_file("crates/node/src/metrics.rs");
    let mut out = BTreeSet::new();
    let mut rows = 0;
    for line in source.lines() {
        let Some(rest) = line.trim_start().strip_prefix("(\"paddock_") else { continue };
        let Some((name, after)) = rest.split_once('"') else { continue };
        let name = format!("paddock_{name}");
        let kind = after.trim_start_matches(',').split(',').next().unwrap_or("").trim();
        rows += 1;
        if kind.ends_with("Histogram") {
            for suffix in ["_bucket", "_sum", "_count"] {
                out.insert(format!("{name}{suffix}"));
            }
        } else {
            out.insert(name);
        }
    }
    assert!(
        rows >= 30 && out.contains("paddock_raft_term") && out.contains("paddock_http_request_duration_seconds_bucket"),
        "read only {rows} rows of METRICS from crates/node/src/metrics.rs: its layout changed \
         (one `(\"paddock_…\", Kind, labelled, \"help\")` per line); update exported_series()"
    );
    out
}

/// The names recorded by deploy/prometheus/paddock-alerts.yml (its `record:` lines).
fn recording_rules() -> BTreeSet<String> {
    let rules: BTreeSet<String> = repository_file("deploy/prometheus/paddock-alerts.yml")
        .lines()
        .filter_map(|l| l.trim_start().trim_start_matches("- ").strip_prefix("record:"))
        .map(|name| name.trim().trim_matches(|c: char| c == '"' || c == '\'').to_string())
        .filter(|name| !name.is_empty())
        .collect();
    assert!(
        !rules.is_empty(),
        "deploy/prometheus/paddock-alerts.yml defines no `record:` rule; the parser is out of date"
    );
    rules
}

#[test]
fn every_query_names_a_metric_the_node_exports_or_a_recording_rule() {
    let dashboard = dashboard();
    let exported = exported_series();
    let recorded = recording_rules();
    let mut offences = Vec::new();
    for query in queries(&dashboard) {
        let names = metric_names(&query.expr);
        if names.is_empty() {
            offences.push(format!("{}: names no Paddock metric: {}", query.place, query.expr));
        }
        for name in names {
            if !exported.contains(&name) && !recorded.contains(&name) {
                offences.push(format!("{}: {name} in {}", query.place, query.expr));
            }
        }
    }
    assert!(
        offences.is_empty(),
        "queries of deploy/grafana/paddock.json that name a series neither exported by the node (METRICS in \
         crates/node/src/metrics.rs; a histogram h as h_bucket, h_sum, h_count) nor recorded by \
         deploy/prometheus/paddock-alerts.yml:\n  {}",
        offences.join("\n  ")
    );
}

#[test]
fn every_panel_has_a_title_a_description_saying_what_good_looks_like_and_a_query() {
    let dashboard = dashboard();
    let mut offences = Vec::new();
    for panel in all_panels(&dashboard) {
        let name = title(panel);
        if name.trim().is_empty() {
            offences.push(format!("a {} panel has no title", panel["type"].as_str().unwrap_or("untyped")));
        }
        if is_row(panel) {
            continue;
        }
        if panel["description"].as_str().unwrap_or("").trim().is_empty() {
            offences.push(format!("panel \"{name}\" has no description"));
        }
        let panel_targets = targets(panel);
        if panel_targets.is_empty() {
            offences.push(format!("panel \"{name}\" has no query"));
        }
        if panel_targets.iter().any(|t| t["expr"].as_str().unwrap_or("").trim().is_empty()) {
            offences.push(format!("panel \"{name}\" has a query with an empty expr"));
        }
    }
    assert!(offences.is_empty(), "panels of deploy/grafana/paddock.json:\n  {}", offences.join("\n  "));
}

#[test]
fn the_dashboard_has_a_uid_a_title_and_schema_version_39() {
    let dashboard = dashboard();
    let mut offences = Vec::new();
    if dashboard["uid"].as_str().unwrap_or("").trim().is_empty() {
        offences.push("no uid (provisioning and links need a stable one)".to_string());
    }
    if dashboard["title"].as_str().unwrap_or("").trim().is_empty() {
        offences.push("no title".to_string());
    }
    if dashboard["schemaVersion"].as_u64() != Some(39) {
        offences.push(format!("schemaVersion is {}, not 39", dashboard["schemaVersion"]));
    }
    assert!(offences.is_empty(), "deploy/grafana/paddock.json: {}", offences.join("; "));
}

#[test]
fn every_query_reads_the_data_source_chosen_in_the_datasource_variable() {
    let dashboard = dashboard();
    let mut offences = Vec::new();
    match variable(&dashboard, "datasource") {
        Some(v) if v["type"].as_str() == Some("datasource") && v["query"].as_str() == Some("prometheus") => {}
        _ => offences.push("no variable `datasource` of type datasource with query prometheus".to_string()),
    }
    let reads_variable = |source: &Value| source["uid"].as_str() == Some("${datasource}");
    for panel in charts(&dashboard) {
        for target in targets(panel) {
            if !reads_variable(&target["datasource"]) {
                offences.push(format!(
                    "panel \"{}\" query {}: datasource {} is not the ${{datasource}} variable",
                    title(panel),
                    target["refId"].as_str().unwrap_or("?"),
                    target["datasource"]
                ));
            }
        }
    }
    match variable(&dashboard, "instance") {
        Some(v) => {
            if !reads_variable(&v["datasource"]) {
                offences.push(format!("variable $instance: datasource {} is not ${{datasource}}", v["datasource"]));
            }
            if v["multi"].as_bool() != Some(true) {
                offences.push("variable $instance is not multi-select".to_string());
            }
        }
        None => offences.push("no variable `instance`".to_string()),
    }
    assert!(offences.is_empty(), "deploy/grafana/paddock.json:\n  {}", offences.join("\n  "));
}

#[test]
fn the_panels_cover_leadership_bets_latency_replication_storage_snapshots_and_load_shedding() {
    let dashboard = dashboard();
    let charted: BTreeSet<String> = charts(&dashboard)
        .into_iter()
        .flat_map(targets)
        .flat_map(|t| metric_names(t["expr"].as_str().unwrap_or("")))
        .collect();
    let required = [
        "paddock_raft_is_leader",
        "paddock_bets_total",
        "paddock_http_request_duration_seconds_bucket",
        "paddock_raft_replication_lag_entries",
        "paddock_raft_log_fsync_duration_seconds_bucket",
        "paddock_snapshot_build_duration_seconds_bucket",
        "paddock_http_shed_total",
    ];
    let missing: Vec<&str> = required.into_iter().filter(|m| !charted.contains(*m)).collect();
    assert!(missing.is_empty(), "deploy/grafana/paddock.json has no panel whose query names: {}", missing.join(", "));
}

#[test]
fn metric_names_skips_label_values_ranges_and_functions() {
    let names = metric_names(
        "histogram_quantile(0.99, sum by (le) (rate(paddock_x_bucket{route=\"paddock_not_a_metric\", \
         instance=~\"$instance\"}[$__rate_interval]))) / paddock:rule:p99_5m + max_over_time(paddock_y[5m:1m])",
    );
    let found = names.join(" ");
    assert!(found == "paddock_x_bucket paddock:rule:p99_5m paddock_y", "metric_names found: {found}");
}
