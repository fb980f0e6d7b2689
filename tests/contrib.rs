//! The operator's files in `contrib/`: the Grafana dashboard
//! (`contrib/grafana/vcproxy.json`) and the Prometheus alerting rules
//! (`contrib/prometheus/alerts.yml`, unit-tested by `alerts_test.yml`).
//!
//! * Every metric a dashboard query or a rule names exists in a live `/metrics`: the
//!   proxy runs in-process in front of two simulators, answers a log-in, a List
//!   Tasks miss and hit, a Get Task and a List Tasks a vCenter cuts short (so that
//!   the errors family has a series), and its exposition must carry each name as
//!   a sample or as the `# TYPE` of the series it stands for (`_total` of a counter;
//!   `_bucket`, `_sum`, `_count` of a histogram). A renamed metric breaks this test,
//!   not a dashboard in production.
//! * The dashboard is an importable one (a `DS_PROMETHEUS` input, a `vcenter`
//!   variable, known panel types, units, `$__rate_interval`) and has a panel for
//!   each thing an operator asked for (hit ratio, routes and statuses, vCenter
//!   requests, errors and latency, sessions, cache size against its cap, stale
//!   answers).
//! * `promtool check rules` and `promtool test rules` pass. Without `promtool` on
//!   PATH (Debian's `prometheus` package; `.ci/run` installs it) that part is
//!   skipped with a notice, except on CI (`CI` set, and not to `false` or `0`), where
//!   it fails.
//!
//! No YAML parser: alerts.yml keeps every `expr:` on one line (its header says so),
//! and the rules are read line by line; a multi-line or quoted `expr:` fails here.

use http::Method;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use vcproxy::sim::{self, Endpoint, Faults};
use vcproxy::Family;
use vcproxy_testkit::{every_service_query, sim_config, Env, ADMIN};

const DASHBOARD: &str = "contrib/grafana/vcproxy.json";
const ALERTS: &str = "contrib/prometheus/alerts.yml";
const ALERTS_TEST: &str = "contrib/prometheus/alerts_test.yml";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn dashboard() -> Value {
    serde_json::from_str(&read(DASHBOARD)).unwrap_or_else(|e| panic!("{DASHBOARD}: {e}"))
}

// ---- PromQL: the metric names an expression uses ----

/// The `vcproxy_…` metric names in a PromQL expression (or a Grafana variable query
/// such as `label_values(vcproxy_x{…}, vcenter)`). A small tokenizer, not a parser:
/// string literals (label values, `"5.."`) and `#` comments are skipped, numbers and
/// durations are read whole, and every identifier that starts with `vcproxy_` is
/// taken as a name. Label names never start with `vcproxy_` here, so identifiers
/// in selectors and `by (…)` are not mistaken for metrics.
fn metric_names(promql: &str) -> BTreeSet<String> {
    let b = promql.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b':';
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            quote @ (b'"' | b'\'' | b'`') => {
                i += 1;
                while i < b.len() && b[i] != quote {
                    // Backslash escapes, except in raw (backtick) strings.
                    i += if b[i] == b'\\' && quote != b'`' { 2 } else { 1 };
                }
                i += 1;
            }
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            c if c.is_ascii_digit() => {
                // 0.99, 5m, 1e3, 0x1f: a number or a duration, not a name.
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.') {
                    i += 1;
                }
            }
            c if ident(c) => {
                let start = i;
                while i < b.len() && ident(b[i]) {
                    i += 1;
                }
                let word = &promql[start..i];
                if word.starts_with("vcproxy_") {
                    names.insert(word.to_owned());
                }
            }
            _ => i += 1,
        }
    }
    names
}

/// Whether `name` is a vcproxy metric name as the exposition spells them.
fn well_formed(name: &str) -> bool {
    name.strip_prefix("vcproxy_").is_some_and(|rest| {
        !rest.is_empty()
            && rest
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
    })
}

#[test]
fn the_tokenizer_takes_names_and_nothing_else() {
    let expr = r#"histogram_quantile(0.99, sum by (vcenter, le) (rate(vcproxy_upstream_latency_seconds_bucket{instance=~"$instance", vcenter=~"vcproxy_not_a_name"}[$__rate_interval]))) / on() vcproxy_cache_max_bytes # vcproxy_comment
    + vcproxy_a:b 5m"#;
    let got: Vec<String> = metric_names(expr).into_iter().collect();
    assert_eq!(
        got,
        [
            "vcproxy_a:b",
            "vcproxy_cache_max_bytes",
            "vcproxy_upstream_latency_seconds_bucket"
        ]
    );
    assert!(!well_formed("vcproxy_a:b"));
    assert!(!well_formed("vcproxy_"));
    assert!(well_formed("vcproxy_requests_total"));
    assert!(metric_names(r#"label_values(up{job='vcproxy_x'}, vcenter)"#).is_empty());
}

// ---- The dashboard ----

/// Every panel, rows' nested panels (a collapsed row holds its own) included.
fn all_panels(v: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in v["panels"].as_array().into_iter().flatten() {
        out.push(p);
        out.extend(all_panels(p));
    }
    out
}

/// The expressions of one panel's targets.
fn panel_exprs(panel: &Value) -> Vec<&str> {
    panel["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["expr"].as_str())
        .collect()
}

/// Each template variable's name and query (a string, or an object with `query`).
fn variable_queries(dash: &Value) -> Vec<(&str, &str)> {
    dash["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| {
            let q = v["query"]
                .as_str()
                .or_else(|| v["query"]["query"].as_str())?;
            Some((v["name"].as_str().unwrap_or("?"), q))
        })
        .collect()
}

/// (where, expression) for every query in the dashboard: panel targets and
/// template variables.
fn dashboard_queries(dash: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in all_panels(dash) {
        let title = p["title"].as_str().unwrap_or("?");
        for e in panel_exprs(p) {
            out.push((format!("panel {title:?}"), e.to_owned()));
        }
    }
    for (name, q) in variable_queries(dash) {
        out.push((format!("variable ${name}"), q.to_owned()));
    }
    out
}

#[test]
fn the_dashboard_is_importable_and_covers_every_topic() {
    let dash = dashboard();
    let ds = "${DS_PROMETHEUS}";
    let inputs = dash["__inputs"].as_array().expect("__inputs");
    assert!(
        inputs
            .iter()
            .any(|i| i["name"] == "DS_PROMETHEUS" && i["pluginId"] == "prometheus"),
        "{inputs:?}"
    );
    assert!(dash["uid"].is_string() && dash["title"].is_string());
    let vars = variable_queries(&dash);
    assert!(
        vars.iter()
            .any(|(n, q)| *n == "vcenter" && q.starts_with("label_values(")),
        "a vcenter variable from label_values: {vars:?}"
    );
    for v in dash["templating"]["list"].as_array().unwrap() {
        assert_eq!(v["datasource"]["uid"], ds, "{v}");
    }

    let panels = all_panels(&dash);
    let mut ids = BTreeSet::new();
    for p in &panels {
        let title = p["title"].as_str().unwrap_or("?");
        let kind = p["type"].as_str().unwrap_or("?");
        assert!(
            ["row", "timeseries", "stat", "gauge"].contains(&kind),
            "{title}: type {kind}"
        );
        assert!(
            ids.insert(p["id"].as_u64().expect("a numeric id")),
            "{title}: id again"
        );
        assert!(
            p["gridPos"]["w"].is_u64() && p["gridPos"]["h"].is_u64(),
            "{title}"
        );
        if kind == "row" {
            continue;
        }
        assert_eq!(p["datasource"]["uid"], ds, "{title}");
        let unit = p["fieldConfig"]["defaults"]["unit"].as_str().unwrap_or("");
        assert!(!unit.is_empty(), "{title}: no unit");
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title}: no query");
        for t in targets {
            assert_eq!(t["datasource"]["uid"], ds, "{title}");
            let expr = t["expr"].as_str().expect("expr");
            // Every range is Grafana's rate interval: never shorter than four
            // scrapes, whatever the zoom.
            assert_eq!(
                expr.matches('[').count(),
                expr.matches("[$__rate_interval]").count(),
                "{title}: {expr}"
            );
            if expr.contains("histogram_quantile") {
                assert!(
                    metric_names(expr).iter().any(|n| n.ends_with("_bucket")),
                    "{title}: a quantile from the _bucket series: {expr}"
                );
            }
        }
    }

    // A panel for each topic: (topic, metrics the panel uses, text its queries hold).
    let topics: [(&str, &[&str], &[&str]); 8] = [
        ("hit ratio", &["vcproxy_cache_requests_total"], &[" / "]),
        (
            "requests by route and status",
            &["vcproxy_requests_total"],
            &["route", "status"],
        ),
        (
            "vCenter requests per vCenter",
            &["vcproxy_upstream_requests_total"],
            &["vcenter"],
        ),
        (
            "vCenter errors per vCenter",
            &["vcproxy_upstream_errors_total"],
            &["vcenter"],
        ),
        (
            "p50 and p99 latency per vCenter",
            &["vcproxy_upstream_latency_seconds_bucket"],
            &[
                "histogram_quantile(0.5,",
                "histogram_quantile(0.99,",
                "vcenter",
            ],
        ),
        (
            "sessions open per vCenter",
            &["vcproxy_backend_sessions_open"],
            &["by (vcenter)"],
        ),
        (
            "cache size against its cap",
            &["vcproxy_cache_size_bytes", "vcproxy_cache_max_bytes"],
            &[],
        ),
        (
            "stale answers served",
            &["vcproxy_cache_requests_total"],
            &[r#"outcome="stale""#],
        ),
    ];
    for (topic, metrics, texts) in topics {
        let covered = panels.iter().any(|p| {
            let exprs = panel_exprs(p).join("\n");
            let names = metric_names(&exprs);
            metrics.iter().all(|m| names.contains(*m)) && texts.iter().all(|t| exprs.contains(t))
        });
        assert!(covered, "no dashboard panel shows {topic}");
    }
}

// ---- The alerting rules ----

/// One rule of alerts.yml, read line by line.
#[derive(Debug, Default)]
struct Rule {
    name: String,
    expr: String,
    /// The rule's other lines (`for:`, labels, annotations).
    body: String,
}

/// The rules of alerts.yml, read line by line (every `expr:` on one line, a plain
/// YAML scalar: the file's header says so, and this fails on anything else).
fn rules(yaml: &str) -> Vec<Rule> {
    let mut rules: Vec<Rule> = Vec::new();
    for (n, line) in yaml.lines().enumerate() {
        let t = line.trim_start();
        if t.starts_with('#') {
            continue;
        }
        let t = t.strip_prefix("- ").unwrap_or(t);
        if let Some(name) = t
            .strip_prefix("alert:")
            .or_else(|| t.strip_prefix("record:"))
        {
            rules.push(Rule {
                name: name.trim().to_owned(),
                ..Rule::default()
            });
        } else if let Some(expr) = t.strip_prefix("expr:") {
            let expr = expr.trim();
            assert!(
                !expr.is_empty()
                    && !expr.starts_with(['|', '>', '"', '\''])
                    && !expr.contains(" #")
                    && !expr.contains(": "),
                "{ALERTS}:{}: write every expr on one line, as a plain YAML scalar: {line}",
                n + 1
            );
            let rule = rules
                .last_mut()
                .unwrap_or_else(|| panic!("{ALERTS}:{}: an expr before any rule", n + 1));
            assert!(rule.expr.is_empty(), "{ALERTS}:{}: a second expr", n + 1);
            rule.expr = expr.to_owned();
        } else if let Some(rule) = rules.last_mut() {
            rule.body.push_str(t);
            rule.body.push('\n');
        }
    }
    for r in &rules {
        assert!(
            !r.expr.is_empty(),
            "{ALERTS}: {} has no one-line expr",
            r.name
        );
    }
    rules
}

#[test]
fn the_rules_alert_on_each_topic() {
    let rules = rules(&read(ALERTS));
    assert!(!rules.is_empty());
    for r in &rules {
        for key in ["for:", "severity:", "summary:", "description:"] {
            assert!(r.body.contains(key), "{}: no {key}\n{}", r.name, r.body);
        }
        // A rule that keeps the vcenter label names the vCenter in its summary.
        if r.expr.contains("vcenter)") {
            assert!(
                r.body
                    .lines()
                    .any(|l| l.starts_with("summary:") && l.contains("{{ $labels.vcenter }}")),
                "{}: the summary names the vCenter",
                r.name
            );
        }
    }
    let topics: [(&str, &str, &str); 6] = [
        (
            "a vCenter failing",
            "vcproxy_upstream_errors_total",
            "vcenter",
        ),
        (
            "hit ratio collapsing",
            "vcproxy_cache_requests_total",
            "miss",
        ),
        (
            "cache at its cap",
            "vcproxy_cache_max_bytes",
            "vcproxy_cache_size_bytes",
        ),
        (
            "sessions near the cap",
            "vcproxy_backend_sessions_open",
            "vcenter",
        ),
        (
            "failed configuration reloads",
            "vcproxy_config_reloads_total",
            r#"result="failed""#,
        ),
        (
            "a vCenter slow",
            "vcproxy_upstream_latency_seconds_bucket",
            "0.99",
        ),
    ];
    for (topic, metric, text) in topics {
        assert!(
            rules
                .iter()
                .any(|r| metric_names(&r.expr).contains(metric) && r.expr.contains(text)),
            "no rule alerts on {topic}"
        );
    }
}

// ---- Every name, in a live /metrics ----

/// A Prometheus text exposition: the `# TYPE` of each metric, and the names of its
/// samples.
struct Exposition {
    types: BTreeMap<String, String>,
    samples: BTreeSet<String>,
}

impl Exposition {
    fn parse(text: &str) -> Exposition {
        let mut types = BTreeMap::new();
        let mut samples = BTreeSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut words = rest.split_whitespace();
                if let (Some(name), Some(kind)) = (words.next(), words.next()) {
                    types.insert(name.to_owned(), kind.to_owned());
                }
            } else if !line.starts_with('#') && !line.trim().is_empty() {
                let name = line.split(['{', ' ']).next().unwrap_or("");
                samples.insert(name.to_owned());
            }
        }
        Exposition { types, samples }
    }

    fn kind(&self, name: &str) -> Option<&str> {
        self.types.get(name).map(String::as_str)
    }

    /// Whether a query naming `name` selects series of this exposition: a sample of
    /// that name, or the series a `# TYPE` stands for (an exporter that types a
    /// family before its first sample; prometheus-client leaves such a family out).
    fn has(&self, name: &str) -> bool {
        let base_is = |suffixes: &[&str], kinds: &[&str]| {
            suffixes.iter().any(|s| {
                name.strip_suffix(s)
                    .and_then(|base| self.kind(base))
                    .is_some_and(|k| kinds.contains(&k))
            })
        };
        self.samples.contains(name)
            // A gauge's samples carry its own name.
            || matches!(self.kind(name), Some("gauge" | "unknown" | "untyped"))
            // OpenMetrics: `# TYPE x counter`, samples `x_total`; the older text
            // format types the sample name itself.
            || (name.ends_with("_total") && self.kind(name) == Some("counter"))
            || base_is(&["_total"], &["counter"])
            || base_is(&["_bucket", "_sum", "_count"], &["histogram"])
            || base_is(&["_sum", "_count"], &["summary"])
    }
}

#[test]
fn the_exposition_reader_maps_suffixes_to_their_type() {
    let e = Exposition::parse(
        "# TYPE vcproxy_requests counter\n\
         # TYPE vcproxy_latency_seconds histogram\n\
         # TYPE vcproxy_open gauge\n\
         vcproxy_open 0\n\
         # TYPE vcproxy_errors counter\n\
         vcproxy_requests_total{route=\"x\"} 1\n\
         # EOF\n",
    );
    for yes in [
        "vcproxy_requests_total",
        "vcproxy_errors_total",
        "vcproxy_latency_seconds_bucket",
        "vcproxy_latency_seconds_count",
        "vcproxy_open",
    ] {
        assert!(e.has(yes), "{yes}");
    }
    // A counter's or histogram's bare name is no series; nor is a misspelling.
    for no in [
        "vcproxy_requests",
        "vcproxy_errors",
        "vcproxy_latency_seconds",
        "vcproxy_open_total",
        "vcproxy_latency_seconds_total",
    ] {
        assert!(!e.has(no), "{no}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_dashboard_and_rules_query_is_exported() {
    // Which query names each metric, for the failure message.
    let mut used: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (place, expr) in dashboard_queries(&dashboard()) {
        for name in metric_names(&expr) {
            used.entry(name)
                .or_default()
                .insert(format!("{DASHBOARD}: {place}"));
        }
    }
    assert!(!used.is_empty(), "no metric found in the dashboard");
    let mut in_rules = 0;
    for rule in rules(&read(ALERTS)) {
        for name in metric_names(&rule.expr) {
            in_rules += 1;
            used.entry(name)
                .or_default()
                .insert(format!("{ALERTS}: {}", rule.name));
        }
    }
    assert!(in_rules > 0, "no metric found in the rules");
    for name in used.keys() {
        assert!(
            well_formed(name),
            "not a metric name: {name} ({:?})",
            used[name]
        );
    }

    // Some of everything: a log-in, a List Tasks miss and hit, a Get Task, and a
    // vCenter failing (a family with no series yet is not in the exposition at all:
    // prometheus-client writes no `# TYPE` for it).
    let env = Env::start(vec![sim_config(40, 1), sim_config(40, 2)], "", "").await;
    let sid = env.http.session(Family::Rest, ADMIN.0, ADMIN.1).await;
    let every = every_service_query();
    for outcome in ["miss", "hit"] {
        let r = env.http.rest_list(&sid, &every).await;
        assert_eq!(
            (r.status.as_u16(), r.cache()),
            (200, outcome),
            "{}",
            r.text()
        );
    }
    let task = env.sims[1].task_ids()[0].clone();
    let got = env.http.get(&format!("/rest/cis/tasks/{task}"), &sid).await;
    assert_eq!(got.status, 200, "{}", got.text());
    env.sims[1]
        .set_faults(Faults {
            truncate_rate: 1.0,
            endpoints: vec![Endpoint::TasksList],
            ..Faults::default()
        })
        .unwrap();
    let one = format!("filter_spec.services={}", sim::service_ids()[0]);
    let failed = env.http.rest_list(&sid, &one).await;
    assert_eq!(failed.status, 503, "{}", failed.text());
    let metrics = env.admin.call(Method::GET, "/metrics", &[], None).await;
    assert_eq!(metrics.status, 200);
    let text = metrics.text();
    env.stop().await;

    let exposition = Exposition::parse(&text);
    let missing: Vec<String> = used
        .iter()
        .filter(|(name, _)| !exposition.has(name))
        .map(|(name, places)| format!("{name}, used by {places:?}"))
        .collect();
    assert!(
        missing.is_empty(),
        "metrics queried but not exported:\n  {}\n\n/metrics:\n{text}",
        missing.join("\n  ")
    );
    // The traffic made samples, not only types, of the main series.
    for name in [
        "vcproxy_requests_total",
        "vcproxy_cache_requests_total",
        "vcproxy_upstream_requests_total",
        "vcproxy_upstream_errors_total",
        "vcproxy_upstream_latency_seconds_bucket",
        "vcproxy_backend_sessions_open",
        "vcproxy_cache_max_bytes",
        "vcproxy_config_reloads_total",
    ] {
        assert!(exposition.samples.contains(name), "{name}\n{text}");
    }
}

// ---- promtool ----

/// Whether this is CI (`CI` set, and not to `false` or `0`; as tests/sdk.rs).
fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.as_str(), "" | "0" | "false"))
}

/// `promtool`, when it is on PATH. Missing: a failure on CI, else a notice.
fn promtool() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .map(|dir| dir.join("promtool"))
        .find(|p| p.is_file());
    if found.is_none() {
        let how = "install Debian's `prometheus` package (apt-get install prometheus), \
                   which `bash .ci/run` does";
        assert!(!ci(), "promtool is not on PATH: {how}");
        // Straight to the terminal: the harness captures the output of passing tests,
        // and a skip must be seen.
        let _ = writeln!(
            std::io::stderr(),
            "\nSKIPPED promtool check/test rules (tests/contrib.rs): no promtool on PATH\n  {how}\n"
        );
    }
    found
}

fn run_promtool(promtool: &Path, args: &[&str]) {
    let out = Command::new(promtool)
        .args(args)
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", promtool.display()));
    assert!(
        out.status.success(),
        "promtool {} failed ({}):\n{}{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn promtool_checks_and_unit_tests_the_rules() {
    let Some(promtool) = promtool() else {
        return;
    };
    run_promtool(&promtool, &["check", "rules", ALERTS]);
    // alerts_test.yml: the vCenter-failing, hit-ratio, cache-at-cap, session and
    // reload alerts fire on failing synthetic series, and not on healthy ones.
    run_promtool(&promtool, &["test", "rules", ALERTS_TEST]);
}
