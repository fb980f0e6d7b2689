//! VMware's official Python SDK (the vSphere Automation SDK, pinned in
//! `tests/sdk/requirements.txt`) against the proxy, over verified TLS.
//!
//! Three simulated vCenters of 600 tasks each, and the proxy in front of them serving
//! HTTPS with a certificate from a CA made for this run. The test asks the simulators
//! directly what each List Tasks filter and Get Task must answer, writes that to a
//! spec file, and runs `tests/sdk/scenarios.py` with the venv's Python: the SDK logs
//! in, lists, gets and logs out through the proxy, in JSON-RPC (`POST /api`, the SDK's
//! default) and in the runtime's REST mode (`/rest`), and the script prints one line
//! per scenario. Each scenario is asserted here; a failure shows its detail (the
//! exception the SDK raised) and the script's stderr.
//!
//! The SDK lives in `.venv-sdk/` at the top of the repository (`bash tests/sdk/venv.sh`
//! makes it; `.ci/run` does so before `cargo test`), or wherever `VCPROXY_SDK_PYTHON`
//! points. Without it the test is skipped with a message, except under `CI=true`,
//! where it fails. `VCPROXY_SDK_SCENARIOS=name,prefix,...` runs only the scenarios
//! whose names start with one of those (for work on one of them; ignored under CI).
//!
//! Nothing leaves loopback: the Python process talks to the proxies only, trusts the
//! run's CA through `requests.Session().verify` alone (`REQUESTS_CA_BUNDLE` and
//! `CURL_CA_BUNDLE`, which would override it, and proxy variables are removed from
//! its environment), and is killed if it runs past a generous deadline.

use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use vcproxy::sim::{self, Faults, SimHandle};
use vcproxy_testkit::{config, sim_config, start_sims, temp_dir, Env, Http, Pki, ADMIN};

/// Where the venv's Python is when `VCPROXY_SDK_PYTHON` does not say.
const VENV_PYTHON: &str = ".venv-sdk/bin/python";

/// How long the whole Python run may take (it needs a few seconds): past this it is
/// killed and the test fails, rather than hanging.
const PYTHON_DEADLINE: Duration = Duration::from_secs(300);

/// Tasks per simulator: three of them hold more than the 1000 a List Tasks may
/// answer, each alone fewer.
const TASKS_PER_SIM: usize = 600;

/// An id no simulator generates (theirs are random UUIDs from their seed).
const UNKNOWN_TASK: &str = "00000000-0000-4000-8000-000000000000:com.vmware.vcenter.vm";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_python_sdk_through_the_proxy() {
    let Some(python) = sdk_python() else {
        return;
    };
    let dir = temp_dir("sdk");
    let pki = Pki::new(&["127.0.0.1", "localhost"]);
    let files = pki.write(&dir);

    // The proxy in front of three simulators, serving HTTPS.
    let sims = start_sims(
        (1..=3)
            .map(|seed| sim_config(TASKS_PER_SIM, seed))
            .collect(),
    )
    .await;
    let urls: Vec<String> = sims.iter().map(SimHandle::base_url).collect();
    let env = Env::start_with_config(
        sims,
        &config(&files.listen_toml(), &urls, |_| String::new()),
    )
    .await;
    // A second one, one of whose two vCenters answers every List Tasks with 503
    // `service_unavailable` (log-ins work).
    let mut failing = sim_config(50, 5);
    failing.faults = Faults {
        error_rate: 1.0,
        endpoints: vec![sim::Endpoint::TasksList],
        ..Faults::default()
    };
    let down_sims = start_sims(vec![sim_config(50, 4), failing]).await;
    let down_urls: Vec<String> = down_sims.iter().map(SimHandle::base_url).collect();
    let down = Env::start_with_config(
        down_sims,
        &config(&files.listen_toml(), &down_urls, |_| String::new()),
    )
    .await;

    // The proxy's certificate chains to the CA for 127.0.0.1 (rustls, trusting the CA
    // alone, logs in), so a failure on the Python side is the SDK's, not the setup's.
    let server = format!("127.0.0.1:{}", env.addr.port());
    let https = Http::tls(format!("https://{server}"), pki.roots());
    https.admin().await;

    let expected = Expected::ask(&env.sims).await;
    let names = scenario_names(&expected.lists);
    let spec = json!({
        "server": server,
        "server_down": format!("127.0.0.1:{}", down.addr.port()),
        "ca": files.ca,
        "user": ADMIN.0,
        "password": ADMIN.1,
        "lists": expected.lists,
        "over_1000": expected.over_1000,
        "gets": expected.gets,
        "unknown_task": UNKNOWN_TASK,
        "scenarios": names,
    });
    let spec_path = dir.join("spec.json");
    std::fs::write(&spec_path, serde_json::to_vec_pretty(&spec).unwrap()).unwrap();

    let run = run_scenarios(&python, &spec_path, &dir).await;
    down.stop().await;
    env.stop().await;
    run.assert_every_scenario(&names);
}

/// The venv's Python, or `None` (the test is skipped) when there is none and this is
/// not CI. Under `CI=true` a missing venv fails: CI must run these tests.
fn sdk_python() -> Option<PathBuf> {
    let path = match std::env::var_os("VCPROXY_SDK_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join(VENV_PYTHON),
    };
    if path.is_file() {
        return Some(path);
    }
    let how = "make it with `bash tests/sdk/venv.sh` (or run `bash .ci/run`), or point \
               VCPROXY_SDK_PYTHON at a Python that has tests/sdk/requirements.txt installed";
    assert!(
        !ci(),
        "the Python SDK is missing ({}): {how}",
        path.display()
    );
    // Straight to the terminal: the test harness captures `eprintln!` of tests that
    // pass, and a skip must be seen.
    let _ = writeln!(
        std::io::stderr(),
        "\nSKIPPED the Python SDK tests (tests/sdk.rs): no {}\n  {how}\n",
        path.display()
    );
    None
}

/// Whether this is CI (`CI` set, and not to `false` or `0`).
fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.as_str(), "" | "0" | "false"))
}

/// What the proxy must answer, asked of each simulator directly over `/api`.
struct Expected {
    /// `{name, filter_spec, result_spec, expected: {id: info}}` per filter.
    lists: Vec<Value>,
    /// `{filter_spec, matching}`: a filter more than 1000 tasks match.
    over_1000: Value,
    /// `{id, info}`: one task of each simulator, with a result.
    gets: Vec<Value>,
}

impl Expected {
    async fn ask(sims: &[SimHandle]) -> Expected {
        let mut vcenters = Vec::new();
        for s in sims {
            let http = Http::for_sim(s);
            let sid = http.admin().await;
            let tasks = http.all_tasks().await;
            assert!(!tasks.contains_key(UNKNOWN_TASK));
            vcenters.push((http, sid, tasks));
        }
        let services = sim::service_ids();
        // Filter values taken from the data, so that every filter matches tasks.
        let users: BTreeSet<&str> = vcenters
            .iter()
            .flat_map(|(_, _, t)| t.values())
            .filter_map(|i| i["user"].as_str())
            .collect();
        let users: Vec<&str> = users.into_iter().take(2).collect();
        assert_eq!(users.len(), 2, "the simulators' tasks name too few users");
        let targeted: Vec<&Value> = vcenters
            .iter()
            .skip(1)
            .map(|(_, _, t)| {
                t.values()
                    .find(|i| i.get("target").is_some())
                    .expect("a task with a target")
            })
            .collect();
        let task_ids: Vec<&String> = vcenters
            .iter()
            .flat_map(|(_, _, t)| t.keys().take(2))
            .collect();
        let cases = [
            (
                "services_status",
                json!({"services": [services[0]], "status": ["RUNNING", "FAILED"]}),
                None,
            ),
            // The same set in the other order: the same answer (a cache hit, or not).
            (
                "services_status_reordered",
                json!({"services": [services[0]], "status": ["FAILED", "RUNNING"]}),
                None,
            ),
            (
                "services_users",
                json!({"services": [services[1], services[2]], "users": users}),
                None,
            ),
            ("tasks", json!({ "tasks": task_ids }), None),
            (
                "services_targets",
                json!({
                    "services": targeted.iter().map(|i| &i["service"]).collect::<Vec<_>>(),
                    "targets": targeted.iter().map(|i| &i["target"]).collect::<Vec<_>>(),
                }),
                None,
            ),
            (
                "services_operations",
                json!({"services": [services[0]], "operations": ["apply", "scan"]}),
                None,
            ),
            (
                "return_all_exclude_result",
                json!({"services": [services[3]]}),
                Some(json!({"return_all": true, "exclude_result": true})),
            ),
            (
                "status_return_all",
                json!({"services": [services[4]], "status": ["SUCCEEDED"]}),
                Some(json!({"return_all": true, "exclude_result": false})),
            ),
        ];
        let mut lists = Vec::new();
        for (name, filter, result_spec) in cases {
            let mut body = json!({ "filter_spec": filter });
            if let Some(r) = &result_spec {
                body["result_spec"] = r.clone();
            }
            let answers = list_each(&vcenters, &body).await;
            let contributing = answers.iter().filter(|a| !a.is_empty()).count();
            assert!(
                contributing >= 2,
                "{name}: {contributing} simulator(s) have matching tasks; a merge needs two: {body}"
            );
            let union = union(answers);
            assert!(union.len() <= 1000, "{name}: {} tasks", union.len());
            lists.push(json!({
                "name": name,
                "filter_spec": filter,
                "result_spec": result_spec,
                "expected": union,
            }));
        }

        let all = json!({ "filter_spec": { "services": services } });
        let matching: usize = list_each(&vcenters, &all).await.iter().map(Map::len).sum();
        assert!(matching > 1000, "only {matching} tasks in all");
        let over_1000 = json!({ "filter_spec": all["filter_spec"], "matching": matching });

        let mut gets = Vec::new();
        for (http, sid, tasks) in &vcenters {
            let id = tasks
                .iter()
                .find(|(_, i)| i.get("result").is_some())
                .map(|(id, _)| id)
                .expect("a task with a result");
            let r = http.get(&format!("/api/cis/tasks/{id}"), sid).await;
            assert_eq!(r.status, 200, "{}", r.text());
            gets.push(json!({ "id": id, "info": r.json() }));
        }
        Expected {
            lists,
            over_1000,
            gets,
        }
    }
}

/// Each simulator's `/api` List Tasks answer to `body`.
async fn list_each(
    vcenters: &[(Http, String, BTreeMap<String, Value>)],
    body: &Value,
) -> Vec<Map<String, Value>> {
    let mut answers = Vec::new();
    for (http, sid, _) in vcenters {
        let r = http.api_list(sid, &body.to_string()).await;
        assert_eq!(r.status, 200, "{body}: {}", r.text());
        match r.json() {
            Value::Object(m) => answers.push(m),
            other => panic!("{body}: not an /api task map: {other}"),
        }
    }
    answers
}

/// The answers merged; the simulators' task ids never collide.
fn union(answers: Vec<Map<String, Value>>) -> Map<String, Value> {
    let mut all = Map::new();
    for a in answers {
        for (id, info) in a {
            assert!(all.insert(id.clone(), info).is_none(), "{id} twice");
        }
    }
    all
}

/// Every scenario, in the order the script runs them (log-out last: it must not
/// take a session another scenario uses), less those `VCPROXY_SDK_SCENARIOS`
/// leaves out (outside CI: CI runs them all).
fn scenario_names(lists: &[Value]) -> Vec<String> {
    let cases: Vec<&str> = lists.iter().map(|c| c["name"].as_str().unwrap()).collect();
    let mut names: Vec<String> = [
        "sdk_versions",
        "tls_trust",
        "jsonrpc_login",
        "jsonrpc_whoami",
    ]
    .map(String::from)
    .into();
    names.extend(cases.iter().map(|c| format!("jsonrpc_list:{c}")));
    names.extend(
        [
            "jsonrpc_list_over_1000",
            "jsonrpc_list_no_filter",
            "jsonrpc_get",
            "jsonrpc_get_unknown",
            "jsonrpc_bad_password",
            "jsonrpc_vcenter_down",
            "jsonrpc_session_from_api",
            "jsonrpc_logout",
            "rest_session",
        ]
        .map(String::from),
    );
    names.extend(cases.iter().map(|c| format!("rest_list:{c}")));
    names.push("rest_get".into());
    names.extend(["jsonrpc_gzip", "rest_gzip"].map(String::from));
    if let (Ok(only), false) = (std::env::var("VCPROXY_SDK_SCENARIOS"), ci()) {
        let only: Vec<&str> = only
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        names.retain(|n| only.iter().any(|o| n.starts_with(o)));
        assert!(
            !names.is_empty(),
            "VCPROXY_SDK_SCENARIOS selects no scenario"
        );
    }
    names
}

/// What the Python run printed, and how it ended.
struct Run {
    /// `None`: killed at the deadline.
    status: Option<ExitStatus>,
    stdout: String,
    stderr: String,
}

/// Runs the scenarios script on `spec` with `python`, off the runtime's worker
/// threads (the proxy and simulators it talks to run on them), killing it at
/// [`PYTHON_DEADLINE`]. Its output goes to files in `dir`, read when it is done.
async fn run_scenarios(python: &Path, spec: &Path, dir: &Path) -> Run {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/scenarios.py");
    let (out_path, err_path) = (dir.join("stdout.txt"), dir.join("stderr.txt"));
    let mut cmd = Command::new(python);
    cmd.arg("-B")
        .arg(&script)
        .arg(spec)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap());
    // Trust and routing come from the spec alone.
    for var in [
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "PYTHONPATH",
        "PYTHONHOME",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("PYTHONNOUSERSITE", "1");
    let status = tokio::task::spawn_blocking(move || {
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {:?}: {e}", cmd.get_program()));
        let deadline = Instant::now() + PYTHON_DEADLINE;
        loop {
            if let Some(status) = child.try_wait().expect("waiting for Python") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .await
    .unwrap();
    Run {
        status,
        stdout: std::fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: std::fs::read_to_string(&err_path).unwrap_or_default(),
    }
}

impl Run {
    /// Each of `names` was reported once and passed; otherwise a panic listing every
    /// scenario's outcome, then the script's stderr.
    fn assert_every_scenario(&self, names: &[String]) {
        let mut reported: BTreeMap<String, Vec<(bool, String)>> = BTreeMap::new();
        let mut stray = Vec::new();
        for line in self.stdout.lines() {
            let v: Value = match serde_json::from_str(line) {
                Ok(v) => v,
                Err(_) => {
                    stray.push(line);
                    continue;
                }
            };
            match (v["scenario"].as_str(), v["ok"].as_bool()) {
                (Some(name), Some(ok)) => reported
                    .entry(name.to_owned())
                    .or_default()
                    .push((ok, v["detail"].as_str().unwrap_or_default().to_owned())),
                _ => stray.push(line),
            }
        }
        let mut report = String::new();
        let mut failed = 0;
        for name in names {
            let (ok, detail) = match reported.remove(name).as_deref() {
                Some([(ok, detail)]) => (*ok, detail.clone()),
                Some(many) => (false, format!("reported {} times", many.len())),
                None => (
                    false,
                    "not reported (the script stopped before it?)".to_owned(),
                ),
            };
            failed += usize::from(!ok);
            report.push_str(&format!(
                "  {} {name}: {detail}\n",
                if ok { "ok  " } else { "FAIL" }
            ));
        }
        for name in reported.keys() {
            failed += 1;
            report.push_str(&format!("  FAIL {name}: reported, but not asked for\n"));
        }
        let ended = match self.status {
            Some(s) if s.success() => None,
            Some(s) => Some(format!("the script exited with {s}")),
            None => Some(format!(
                "the script was killed after {} s",
                PYTHON_DEADLINE.as_secs()
            )),
        };
        if failed == 0 && ended.is_none() && stray.is_empty() {
            eprintln!("Python SDK scenarios:\n{report}");
        } else {
            panic!(
                "{failed} of {} SDK scenarios failed{}{}\n{report}\n--- stray stdout:\n{}\n--- stderr:\n{}",
                names.len(),
                ended.map(|e| format!("; {e}")).unwrap_or_default(),
                if stray.is_empty() { "" } else { "; stray lines on stdout" },
                stray.join("\n"),
                self.stderr
            );
        }
    }
}
