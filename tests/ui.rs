//! The web view (`/ui/`) in a real browser: headless Chromium (Debian's `chromium`),
//! driven by `tests/ui/run.mjs` through playwright-core, against the proxy in front
//! of three static simulators.
//!
//! The script logs in (a wrong password first), applies a filter through the form
//! (six of the seven services, every status, vc1 and vc2), and reports what the table
//! and the counts show; this test compares that, cell by cell, with what the
//! simulators hold. Two tasks' descriptions are hostile HTML (the simulator's
//! `SimConfig::descriptions`): a finished one of vc2, shown from the snapshot, and
//! the active one of vc1 that finishes first as simulated time moves on (found
//! beforehand on a scratch simulator of the same seed), shown again from a
//! `changed` event. The test moves the simulators' time on until that task has
//! finished and tells the script, which waits for the row to change and reports
//! again: the new status, the hostile text shown as text (no `img` element, no
//! dialog, no CSP violation), and the whole table equal to the simulators' new
//! state. Then a reload (the cookie keeps the session), a forged log-out (no CSRF
//! token: refused), and the real log-out.
//!
//! The two processes speak line-delimited JSON (see run.mjs's header): the script
//! prints one line per step and waits at `filled` for the test's `go` line. Its
//! stderr goes to a file, shown when the test fails.
//!
//! The screenshot of the changed view is written to the test's temp directory each
//! run; with `VCPROXY_UPDATE_SCREENSHOT=1` it is also copied to `docs/ui.png`, which
//! the README shows.
//!
//! Needs `node`, `/usr/bin/chromium` (or `VCPROXY_CHROMIUM`) and
//! `tests/ui/node_modules` (`npm ci --prefix tests/ui`); `.ci/run` installs them.
//! Without them the test is skipped with a notice, except under CI (`CI` set, and
//! not to `false` or `0`), where it fails.

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use vcproxy::sim::{self, SimHandle};
use vcproxy_testkit::{sim_config, start_sim, temp_dir, Env, ADMIN};

/// Tasks per simulator: enough for every status, few enough that the whole table is
/// one screenshot.
const TASKS_PER_SIM: usize = 14;

/// What no task field may ever become: markup.
const HOSTILE: &str = "<img src=x onerror=alert(1)>";

/// The index (in generation order) of the vc2 task whose description is [`HOSTILE`]
/// from the start.
const HOSTILE_AT_START: usize = 0;

/// The service the filter leaves out (so the table shows the filter applied).
const LEFT_OUT: &str = "com.vmware.appliance.update";

/// How long one step of the script may take before the test gives up.
const STEP_TIMEOUT: Duration = Duration::from_secs(120);

/// The script's own timeout for each wait in the page.
const PAGE_TIMEOUT_MS: u64 = 60_000;

/// How far simulated time moves per step while looking for a task that finishes.
const ADVANCE_STEP: Duration = Duration::from_secs(10);

/// Steps after which every active task has finished (they run for at most ten
/// minutes, blocked for at most two, and start within five).
const MAX_STEPS: u32 = 120;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_view_in_headless_chromium() {
    let Some(tools) = Tools::find() else {
        return;
    };
    let dir = temp_dir("ui");
    let screenshot = dir.join("ui.png");

    let services: Vec<&str> = sim::service_ids()
        .into_iter()
        .filter(|s| *s != LEFT_OUT)
        .collect();
    assert_eq!(services.len(), 6);

    let mut configs: Vec<_> = (1..=3)
        .map(|seed| sim_config(TASKS_PER_SIM, seed))
        .collect();
    let (finishing, steps) = first_to_finish(configs[0].clone(), &services).await;
    configs[0].descriptions = vec![(finishing, HOSTILE.to_owned())];
    configs[1].descriptions = vec![(HOSTILE_AT_START, HOSTILE.to_owned())];
    let env = Env::start(configs, "[cache]\nttl = \"200ms\"\n", "").await;
    let url = format!("http://{}", env.addr);
    let vcenters = ["vc1", "vc2"];
    let statuses = ["PENDING", "RUNNING", "BLOCKED", "SUCCEEDED", "FAILED"];

    let mut node = Script::start(&tools, &dir);
    node.send(&json!({
        "url": url,
        "user": ADMIN.0,
        "password": ADMIN.1,
        "filter": {"services": services, "status": statuses, "vcenters": vcenters},
        "screenshot": screenshot,
        "timeout_ms": PAGE_TIMEOUT_MS,
    }));

    // The page, with its CSP; the log-in form refuses a wrong password.
    let opened = node.step("opened").await;
    assert_eq!(opened["status"], 200, "{opened}");
    let csp = opened["csp"].as_str().unwrap_or_default();
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
    ] {
        assert!(csp.contains(directive), "CSP {csp:?} lacks {directive:?}");
    }
    assert!(!csp.contains("unsafe"), "CSP {csp:?}");
    let refused = node.step("login_refused").await;
    assert!(
        refused["error"]
            .as_str()
            .is_some_and(|e| !e.trim().is_empty()),
        "a refused log-in shows why: {refused}"
    );
    assert_eq!(refused["app_visible"], false, "{refused}");

    // The table: exactly the simulators' tasks of the filter, every cell.
    let expected = Expected::of(&env.sims, &vcenters, &services);
    assert!(
        expected.rows.len() > 10,
        "too few tasks: {}",
        expected.rows.len()
    );
    assert!(
        expected.has_status("FAILED") && expected.has_status("RUNNING"),
        "pick seeds with FAILED and RUNNING tasks in the filter"
    );
    assert!(
        !Expected::of(&env.sims, &vcenters, &[LEFT_OUT])
            .rows
            .is_empty(),
        "pick seeds with tasks the filter leaves out"
    );
    let filled = node.step("filled").await;
    assert_eq!(filled["conn"], "live", "{filled}");
    assert_eq!(filled["vcenter_boxes"], json!(["vc1", "vc2", "vc3"]));
    assert_eq!(
        filled["rows"].as_u64(),
        Some(expected.rows.len() as u64),
        "rows in the table"
    );
    expected.assert_table(&filled, "after the snapshot");
    let hostile_row = &expected.rows[&(
        "vc2".to_owned(),
        env.sims[1].task_ids()[HOSTILE_AT_START].clone(),
    )];
    assert_eq!(hostile_row["description"], HOSTILE, "{hostile_row}");
    let (vcenter, task) = ("vc1".to_owned(), env.sims[0].task_ids()[finishing].clone());
    let was = &expected.rows[&(vcenter.clone(), task.clone())];
    assert_eq!(was["description"], HOSTILE, "{was}");
    assert!(
        matches!(
            was["status"].as_str(),
            Some("PENDING" | "RUNNING" | "BLOCKED")
        ),
        "{was}"
    );

    // The session cookie: HttpOnly, SameSite=Strict, out of script's reach and of
    // every URL the page asked for.
    assert_eq!(filled["cookie"]["http_only"], true, "{}", filled["cookie"]);
    assert_eq!(
        filled["cookie"]["same_site"], "Strict",
        "{}",
        filled["cookie"]
    );
    assert_eq!(filled["cookie_in_js"], false);
    assert_eq!(filled["session_in_url"], false, "{}", filled["watch_urls"]);

    // Simulated time moves on until that task has finished.
    for s in &env.sims {
        s.advance(ADVANCE_STEP * steps);
    }
    let expected = Expected::of(&env.sims, &vcenters, &services);
    let now = &expected.rows[&(vcenter.clone(), task.clone())];
    let status = now["status"].clone();
    assert!(
        matches!(status.as_str(), Some("SUCCEEDED" | "FAILED")),
        "{now}"
    );
    node.send(&json!({
        "go": true,
        "vcenter": vcenter,
        "task": task,
        "status": status,
        "message": HOSTILE,
        "expect_rows": expected.rows.values().collect::<Vec<_>>(),
    }));

    // The row changed, and both hostile descriptions are text.
    let changed = node.step("changed").await;
    let row = &changed["row"];
    assert_eq!(row["status"], status, "{row}");
    assert_eq!(row["status_text"], status, "{row}");
    assert_eq!(row["description"], HOSTILE, "{row}");
    assert_eq!(row["description_children"], 0, "{row}");
    assert!(
        row["description_html"]
            .as_str()
            .is_some_and(|h| h.contains("&lt;img")),
        "{row}"
    );
    assert_eq!(changed["img_in_table"], 0, "{changed}");
    assert_eq!(changed["img_in_page"], 0, "{changed}");
    assert_eq!(changed["alerts"], json!([]), "{changed}");
    assert_eq!(changed["violations"], json!([]), "{changed}");
    assert_eq!(changed["errors"], json!([]), "{changed}");
    expected.assert_table(&changed, "after the simulators moved on");

    let shot = node.step("screenshot").await;
    assert_eq!(shot["path"], json!(screenshot));
    let png = std::fs::read(&screenshot).expect("the screenshot");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
    if std::env::var("VCPROXY_UPDATE_SCREENSHOT").as_deref() == Ok("1") {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
        std::fs::create_dir_all(&docs).unwrap();
        std::fs::copy(&screenshot, docs.join("ui.png")).unwrap();
    }

    // A reload keeps the session; a log-out without the CSRF token is refused; the
    // button logs out.
    let reloaded = node.step("reloaded").await;
    assert_eq!(reloaded["login_visible"], false, "{reloaded}");
    assert_eq!(reloaded["rows"].as_u64(), Some(expected.rows.len() as u64));
    let csrf = node.step("csrf").await;
    assert_eq!(csrf["logout_without_token"], 403, "{csrf}");
    assert_eq!(csrf["session_after"], 200, "{csrf}");
    let out = node.step("logged_out").await;
    assert_eq!(out["session_status"], 401, "{out}");
    assert_eq!(out["tasks_status"], 401, "{out}");
    assert_eq!(out["rows"], 0, "{out}");
    assert_eq!(out["alerts"], json!([]), "{out}");
    assert_eq!(out["violations"], json!([]), "{out}");
    assert_eq!(out["errors"], json!([]), "{out}");
    node.step("done").await;
    node.finish();
    env.stop().await;
}

/// The index of the task of `config`'s simulator, of one of `services`, that is
/// active (PENDING, RUNNING or BLOCKED) at the start and the first to finish as
/// simulated time moves on by [`ADVANCE_STEP`]s; and how many steps that takes. Asked
/// of a scratch simulator: the same configuration generates the same tasks.
async fn first_to_finish(config: sim::SimConfig, services: &[&str]) -> (usize, u32) {
    let sim = start_sim(config).await;
    let ids = sim.task_ids();
    let statuses = |sim: &SimHandle| -> BTreeMap<String, Value> {
        serde_json::from_slice(&sim.tasks_api_json()).unwrap()
    };
    let before = statuses(&sim);
    let active = |i: &Value| {
        matches!(
            i["status"].as_str(),
            Some("PENDING" | "RUNNING" | "BLOCKED")
        )
    };
    for step in 1..=MAX_STEPS {
        sim.advance(ADVANCE_STEP);
        let now = statuses(&sim);
        let first = ids.iter().position(|id| {
            services.contains(&before[id]["service"].as_str().unwrap())
                && active(&before[id])
                && !active(&now[id])
        });
        if let Some(index) = first {
            sim.shutdown().await;
            return (index, step);
        }
    }
    panic!("no active task of the filter finishes: pick another seed");
}

fn vcenter_index(name: &str) -> usize {
    name.strip_prefix("vc")
        .and_then(|n| n.parse::<usize>().ok())
        .map(|n| n - 1)
        .unwrap_or_else(|| panic!("not a vCenter of this test: {name}"))
}

// ---------------------------------------------------------------------------------
// What the table must show
// ---------------------------------------------------------------------------------

/// The rows the table must hold, as run.mjs reports them, by (vCenter, task).
struct Expected {
    rows: BTreeMap<(String, String), Value>,
}

impl Expected {
    /// Every task of `vcenters` whose service is one of `services`, as the simulators
    /// hold it now.
    fn of(sims: &[SimHandle], vcenters: &[&str], services: &[&str]) -> Expected {
        let mut rows = BTreeMap::new();
        for name in vcenters {
            let tasks: BTreeMap<String, Value> =
                serde_json::from_slice(&sims[vcenter_index(name)].tasks_api_json()).unwrap();
            for (id, info) in tasks {
                if services.contains(&info["service"].as_str().unwrap()) {
                    rows.insert(((*name).to_owned(), id.clone()), row(name, &id, &info));
                }
            }
        }
        Expected { rows }
    }

    fn has_status(&self, status: &str) -> bool {
        self.rows.values().any(|r| r["status"] == status)
    }

    /// The table and the counts in `report` (one of run.mjs's steps) are these rows.
    fn assert_table(&self, report: &Value, when: &str) {
        let shown: BTreeMap<(String, String), &Value> = report["table"]
            .as_array()
            .unwrap_or_else(|| panic!("no table in {report}"))
            .iter()
            .map(|r| {
                let key = (
                    r["vcenter"].as_str().unwrap().to_owned(),
                    r["task"].as_str().unwrap().to_owned(),
                );
                (key, r)
            })
            .collect();
        assert_eq!(
            report["rows"].as_u64(),
            Some(shown.len() as u64),
            "{when}: a task shown twice"
        );
        let missing: Vec<_> = self
            .rows
            .keys()
            .filter(|k| !shown.contains_key(*k))
            .collect();
        let extra: Vec<_> = shown
            .keys()
            .filter(|k| !self.rows.contains_key(*k))
            .collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{when}: rows missing {missing:?}, rows not of the filter {extra:?}"
        );
        for (key, want) in &self.rows {
            assert_eq!(shown[key], want, "{when}: the row of {key:?}");
        }

        let mut per_vcenter: BTreeMap<String, u64> = BTreeMap::new();
        let mut per_status: BTreeMap<String, u64> =
            ["PENDING", "RUNNING", "BLOCKED", "SUCCEEDED", "FAILED"]
                .iter()
                .map(|s| ((*s).to_owned(), 0))
                .collect();
        for ((vc, _), row) in &self.rows {
            *per_vcenter.entry(vc.clone()).or_default() += 1;
            *per_status.get_mut(row["status"].as_str().unwrap()).unwrap() += 1;
        }
        assert_eq!(
            report["chips_per_vcenter"],
            json!(per_vcenter),
            "{when}: the counts per vCenter"
        );
        per_status.insert("ALL".to_owned(), self.rows.len() as u64);
        assert_eq!(
            report["chips_per_status"],
            json!(per_status),
            "{when}: the counts per status"
        );
    }
}

/// One row as run.mjs reads it from the table: each cell's text.
fn row(vcenter: &str, task: &str, info: &Value) -> Value {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    // `2025-01-15T09:00:00.000Z` as the page shows it in the browser's time zone
    // (run.mjs sets UTC).
    let time = |v: &Value| {
        v.as_str()
            .map(|t| format!("{} {}", &t[..10], &t[11..19]))
            .unwrap_or_default()
    };
    let target = match &info["target"] {
        Value::Object(t) => format!("{} {}", text(&t["type"]), text(&t["id"])),
        _ => String::new(),
    };
    let progress = match &info["progress"] {
        Value::Object(p) if p["total"].as_i64().unwrap_or(0) > 0 => {
            format!("{}/{}", p["completed"], p["total"])
        }
        _ => String::new(),
    };
    let status = text(&info["status"]);
    let error = if status == "FAILED" {
        // `/api` {error_type, messages} or `/rest` {type, value: {messages}}.
        let e = &info["error"];
        let messages = e["messages"]
            .as_array()
            .or_else(|| e["value"]["messages"].as_array())
            .unwrap_or_else(|| panic!("a FAILED task without error messages: {info}"));
        let joined: Vec<String> = messages
            .iter()
            .map(|m| text(&m["default_message"]))
            .collect();
        assert!(!joined.concat().is_empty(), "{info}");
        joined.join(" ")
    } else {
        String::new()
    };
    json!({
        "vcenter": vcenter,
        "task": task,
        "status": status,
        "operation": text(&info["operation"]),
        "target": target,
        "user": text(&info["user"]),
        "progress": progress,
        "start": time(&info["start_time"]),
        "end": time(&info["end_time"]),
        "description": text(&info["description"]["default_message"]),
        "error": error,
    })
}

// ---------------------------------------------------------------------------------
// The tools, and the script as a child process
// ---------------------------------------------------------------------------------

struct Tools {
    node: PathBuf,
    chromium: PathBuf,
    script: PathBuf,
}

impl Tools {
    /// node, Chromium and the script's npm packages; `None` (the test is skipped)
    /// when one is missing and this is not CI. Under CI a missing one fails.
    fn find() -> Option<Tools> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let node = PathBuf::from(std::env::var_os("VCPROXY_NODE").unwrap_or_else(|| "node".into()));
        let chromium = PathBuf::from(
            std::env::var_os("VCPROXY_CHROMIUM").unwrap_or_else(|| "/usr/bin/chromium".into()),
        );
        let script = root.join("tests/ui/run.mjs");
        let mut missing = Vec::new();
        let node_runs = Command::new(&node)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !node_runs {
            missing.push(format!("{} (Node.js; Debian's `nodejs`)", node.display()));
        }
        if !chromium.is_file() {
            missing.push(format!(
                "{} (Debian's `chromium`: apt-get install chromium)",
                chromium.display()
            ));
        }
        let modules = root.join("tests/ui/node_modules/playwright-core");
        if !modules.is_dir() {
            missing.push(format!("{} (npm ci --prefix tests/ui)", modules.display()));
        }
        if missing.is_empty() {
            return Some(Tools {
                node,
                chromium,
                script,
            });
        }
        let what = missing.join(", ");
        assert!(
            !ci(),
            "the browser test (tests/ui.rs) cannot run: missing {what}; .ci/run installs them"
        );
        // Straight to the terminal: the harness captures the output of passing tests,
        // and a skip must be seen.
        let _ = writeln!(
            std::io::stderr(),
            "\nSKIPPED the web view test (tests/ui.rs): missing {what}\n"
        );
        None
    }
}

/// Whether this is CI (`CI` set, and not to `false` or `0`; as tests/sdk.rs).
fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.as_str(), "" | "0" | "false"))
}

/// `node tests/ui/run.mjs`, its stdout read line by line on a thread of its own.
/// Dropping it kills the process.
struct Script {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::UnboundedReceiver<String>,
    stderr: PathBuf,
    /// Every line the script printed, for failure messages.
    seen: Vec<String>,
}

impl Script {
    fn start(tools: &Tools, dir: &Path) -> Script {
        let stderr = dir.join("run.mjs.stderr");
        let mut child = Command::new(&tools.node)
            .arg(&tools.script)
            .current_dir(dir)
            .env("VCPROXY_CHROMIUM", &tools.chromium)
            // Nothing leaves loopback.
            .env_remove("HTTP_PROXY")
            .env_remove("HTTPS_PROXY")
            .env_remove("http_proxy")
            .env_remove("https_proxy")
            .env_remove("ALL_PROXY")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", tools.node.display()));
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Script {
            stdin: child.stdin.take(),
            child,
            lines,
            stderr,
            seen: Vec::new(),
        }
    }

    fn send(&mut self, value: &Value) {
        let stdin = self.stdin.as_mut().expect("stdin");
        writeln!(stdin, "{value}")
            .and_then(|()| stdin.flush())
            .unwrap_or_else(|e| self.fail(&format!("writing to the script: {e}")));
    }

    /// The script's next line, which must be step `name`.
    async fn step(&mut self, name: &str) -> Value {
        let line = match tokio::time::timeout(STEP_TIMEOUT, self.lines.recv()).await {
            Ok(Some(line)) => line,
            Ok(None) => self.fail(&format!("the script ended before step {name}")),
            Err(_) => self.fail(&format!("no step {name} within {STEP_TIMEOUT:?}")),
        };
        self.seen.push(line.clone());
        let value: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| self.fail(&format!("not JSON ({e}): {line}")));
        if value["step"] != name {
            self.fail(&format!("expected step {name}, got {line}"));
        }
        value
    }

    /// Waits for the script to exit; it must exit 0.
    fn finish(mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) if status.success() => return,
                Ok(Some(status)) => self.fail(&format!("the script exited with {status}")),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                Ok(None) => self.fail("the script did not exit"),
                Err(e) => self.fail(&format!("waiting for the script: {e}")),
            }
        }
    }

    fn fail(&mut self, why: &str) -> ! {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let stderr = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        panic!(
            "tests/ui/run.mjs: {why}\n--- its steps:\n{}\n--- its stderr:\n{stderr}",
            self.seen.join("\n")
        );
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
