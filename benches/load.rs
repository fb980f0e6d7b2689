//! The load benchmark: simulated vCenters with realistic latency, vcproxy in front,
//! load driven at it, and one table of results (issue 5).
//!
//! Run: `cargo bench --bench load` (about 4 minutes on 2 cores).
//! Quick run (shorter durations, fewer samples; not the issue's numbers):
//! `VCPROXY_BENCH_QUICK=1 cargo bench --bench load`.
//!
//! Scenarios, each compared with its alternative in the same run:
//!
//! * **Hit path**: one cached `/rest` list of 100 tasks, 64 keep-alive connections,
//!   driven by `wrk` against vcproxy and against nginx's `proxy_cache` serving the
//!   same answer from the same simulator set-up. Both servers get one core
//!   (`taskset -c 0`, vcproxy as a child process of this bench on a one-worker tokio
//!   runtime, nginx with one worker) and wrk the other (`taskset -c 1`, one thread).
//!   Runs alternate between the two; medians of the runs. Then the same, paced (a
//!   wrk Lua `delay()` of 2 ms per connection): latency at equal, unsaturated load.
//!   Needs `wrk` and `nginx` (`benches/nginx/setup.sh`); a missing one is reported in
//!   its row.
//! * **Miss path**: 3 vCenters × 1000 tasks at 50 ms + up to 5 ms jitter; each sample
//!   asks the proxy with `Cache-Control: no-cache` (a cold answer) and the three
//!   simulators directly (concurrently, like the proxy's fan-out) for the same
//!   question, and reports proxy latency − the slowest direct latency, and proxy
//!   latency − the same request's slowest vCenter (from its `Server-Timing`). The
//!   simulators, the proxy and the client run in three processes, as deployed;
//!   a second row times the same answer served from the cache: the extra hop
//!   alone, the floor under the overhead.
//! * **Load reduction**: 1000 clients polling once a second for 30 s, 5 filters in 10
//!   encodings each, TTL 5 s: List Tasks requests per vCenter through the proxy
//!   versus the same clients going to every simulator directly.
//! * **Session churn**: 200 clients (2 users) logging in, listing and logging out on
//!   every poll: vCenter sessions opened per vCenter, proxy versus direct.
//! * **Memory**: 10,000 distinct cached queries of 100 tasks each under a 256 MiB
//!   cache cap, in a fresh child process: RSS growth and the cache's weighed bytes.
//!
//! The small HTTP client used for the in-process scenarios is hyper-util's pooled
//! client (already a dependency of vcproxy): wrk is the well-kept generator for the
//! throughput row, where generator efficiency matters; the other rows count
//! requests or measure one request at a time, where a client inside the bench is
//! simpler and exact.

use bytes::Bytes;
use futures_util::future::join_all;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, Semaphore};
use vcproxy::config::Config;
use vcproxy::sim::{self, Endpoint, Faults, SimConfig, SimHandle};
use vcproxy::Proxy;

const HIT_CHILD: &str = "--vcproxy-bench-hit-child";
const PROXY_CHILD: &str = "--vcproxy-bench-proxy-child";
const SIMS_CHILD: &str = "--vcproxy-bench-sims-child";
/// The proxy child's configuration (TOML), passed in the environment.
const CHILD_CONFIG_ENV: &str = "VCPROXY_BENCH_CHILD_CONFIG";
const SESSION: &str = "vmware-api-session-id";
const OPERATOR: (&str, &str) = ("operator@vsphere.local", "Operator1!");
/// The cache cap of the memory row.
const MEMORY_CAP_MIB: u64 = 256;

// ---------------------------------------------------------------- settings

/// Durations and counts: the issue's numbers, or a quick run.
#[derive(Debug, Clone, Copy)]
struct Settings {
    quick: bool,
    hit_runs: usize,
    hit_secs: u64,
    miss_samples: usize,
    poll_clients: usize,
    poll_secs: u64,
    churn_clients: usize,
    churn_polls: u64,
    memory_queries: usize,
}

impl Settings {
    fn from_env() -> Settings {
        let quick = std::env::var("VCPROXY_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
        if quick {
            Settings {
                quick,
                hit_runs: 1,
                hit_secs: 2,
                miss_samples: 10,
                poll_clients: 200,
                poll_secs: 6,
                churn_clients: 50,
                churn_polls: 3,
                memory_queries: 2_000,
            }
        } else {
            Settings {
                quick,
                hit_runs: 5,
                hit_secs: 6,
                miss_samples: 40,
                poll_clients: 1000,
                poll_secs: 30,
                churn_clients: 200,
                churn_polls: 10,
                memory_queries: 10_000,
            }
        }
    }
}

// ---------------------------------------------------------------- HTTP client

struct Resp {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Resp {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

/// hyper-util's pooled HTTP/1 client against one base URL.
#[derive(Clone)]
struct Http {
    base: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Http {
    fn new(base: impl Into<String>) -> Http {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        Http {
            base: base.into(),
            client: Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(90))
                .build(connector),
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Bytes>,
    ) -> Result<Resp, String> {
        let mut b = Request::builder()
            .method(method)
            .uri(format!("{}{}", self.base, path));
        for (k, v) in headers {
            b = b.header(
                HeaderName::from_bytes(k.as_bytes()).map_err(|e| e.to_string())?,
                HeaderValue::from_str(v).map_err(|e| e.to_string())?,
            );
        }
        let req = b
            .body(Full::new(body.unwrap_or_default()))
            .map_err(|e| e.to_string())?;
        let work = async {
            let resp = self.client.request(req).await.map_err(|e| e.to_string())?;
            let (parts, body) = resp.into_parts();
            let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
            Ok(Resp {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(Duration::from_secs(30), work)
            .await
            .map_err(|_| "no answer within 30 s".to_owned())?
    }

    /// `/rest` login; the session id.
    async fn login(&self, user: &str, password: &str) -> Result<String, String> {
        let auth = basic(user, password);
        let r = self
            .call(
                Method::POST,
                "/rest/com/vmware/cis/session",
                &[("authorization", &auth)],
                None,
            )
            .await?;
        if !r.status.is_success() {
            return Err(format!("login: {} {}", r.status, lossy(&r.body)));
        }
        let v: serde_json::Value = serde_json::from_slice(&r.body).map_err(|e| e.to_string())?;
        v["value"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| "login: no session id".to_owned())
    }

    async fn logout(&self, sid: &str) -> Result<(), String> {
        let r = self
            .call(
                Method::DELETE,
                "/rest/com/vmware/cis/session",
                &[(SESSION, sid)],
                None,
            )
            .await?;
        if r.status.is_success() {
            Ok(())
        } else {
            Err(format!("logout: {}", r.status))
        }
    }

    /// A `/rest` List Tasks request: a query string and/or a JSON body.
    async fn rest_list(
        &self,
        sid: &str,
        query: &RestQuery,
        extra: &[(&str, &str)],
    ) -> Result<Resp, String> {
        let path = match &query.query {
            Some(q) => format!("/rest/cis/tasks?{q}"),
            None => "/rest/cis/tasks".to_owned(),
        };
        let mut headers = vec![(SESSION, sid)];
        if query.body.is_some() {
            headers.push(("content-type", "application/json"));
        }
        headers.extend_from_slice(extra);
        self.call(Method::GET, &path, &headers, query.body.clone())
            .await
    }
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(&b[..b.len().min(300)]).into_owned()
}

/// One spelling of a `/rest` List Tasks question.
#[derive(Debug, Clone)]
struct RestQuery {
    query: Option<String>,
    body: Option<Bytes>,
}

impl RestQuery {
    fn query(q: String) -> RestQuery {
        RestQuery {
            query: Some(q),
            body: None,
        }
    }

    fn body(b: String) -> RestQuery {
        RestQuery {
            query: None,
            body: Some(Bytes::from(b)),
        }
    }
}

fn all_services_query() -> String {
    sim::service_ids()
        .iter()
        .map(|s| format!("filter_spec.services={s}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Ten spellings of "tasks of service `svc` that are RUNNING or FAILED" (the same
/// ten as the proxy's integration test).
fn ten_encodings(svc: &str) -> Vec<RestQuery> {
    vec![
        RestQuery::query(format!("filter_spec.services={svc}&filter_spec.status=RUNNING&filter_spec.status=FAILED")),
        RestQuery::query(format!("filter_spec.status=FAILED&filter_spec.status=RUNNING&filter_spec.services={svc}")),
        RestQuery::query(format!("filter_spec.services.1={svc}&filter_spec.status.1=RUNNING&filter_spec.status.2=FAILED")),
        RestQuery::query(format!("filter_spec.status.2=RUNNING&filter_spec.status.1=FAILED&filter_spec.services.1={svc}")),
        RestQuery::query(format!(
            "filter_spec.services={}&filter_spec.status=RUNNING&filter_spec.status=FAILED",
            svc.replace('.', "%2E")
        )),
        RestQuery::query(format!(
            "filter_spec.services={svc}&filter_spec.services={svc}&filter_spec.status=RUNNING&filter_spec.status=FAILED&filter_spec.status=RUNNING"
        )),
        RestQuery::query(format!(
            "filter_spec.services={svc}&filter_spec.status=RUNNING&filter_spec.status=FAILED&result_spec.return_all=false&filter_spec.users="
        )),
        RestQuery::query(format!(
            "filter_spec.services={svc}&filter_spec.status=RUNNING&filter_spec.status=FAILED&result_spec.exclude_result=FALSE"
        )),
        RestQuery::body(format!(r#"{{"filter_spec":{{"services":["{svc}"],"status":["RUNNING","FAILED"]}}}}"#)),
        RestQuery::body(format!(
            r#"{{ "result_spec": {{"return_all": false}}, "filter_spec": {{"status": ["FAILED", "RUNNING", "FAILED"], "tasks": [], "services": ["{svc}"]}} }}"#
        )),
    ]
}

/// The largest `vcenter` duration in a `Server-Timing` value, in milliseconds.
fn slowest_vcenter_ms(timing: &str) -> Option<f64> {
    timing_durations(timing, "vcenter;").reduce(f64::max)
}

/// The merge's time in a proxy answer's `Server-Timing`.
fn merge_ms(timing: &str) -> Option<f64> {
    timing_durations(timing, "merge;").next()
}

/// The `dur` of each `Server-Timing` metric whose text starts with `prefix`.
fn timing_durations<'a>(timing: &'a str, prefix: &'a str) -> impl Iterator<Item = f64> + 'a {
    timing
        .split(", ")
        .filter(move |m| m.starts_with(prefix))
        .filter_map(|m| m.rsplit_once(";dur=")?.1.parse::<f64>().ok())
}

/// Tasks in a `/rest` list answer (counted without building a JSON tree: the bench
/// must stay cheap next to what it measures).
fn rest_count(body: &[u8]) -> Option<usize> {
    #[derive(serde::Deserialize)]
    struct List {
        value: Vec<serde::de::IgnoredAny>,
    }
    serde_json::from_slice::<List>(body)
        .ok()
        .map(|l| l.value.len())
}

// ---------------------------------------------------------------- environment

/// vCenter-like latency: 50 ms plus up to 5 ms of jitter. (Small jitter keeps the
/// miss-path difference measurable: the proxy waits for the slowest of its three
/// draws, the direct comparison for the slowest of three other draws.)
fn realistic_faults() -> Faults {
    Faults {
        latency: Duration::from_millis(50),
        jitter: Duration::from_millis(5),
        ..Faults::default()
    }
}

fn sim_config(tasks: usize, seed: u64, faults: Faults) -> SimConfig {
    SimConfig {
        users: vec![
            sim::UserSpec::default_admin(),
            sim::UserSpec::restricted(
                OPERATOR.0,
                OPERATOR.1,
                sim::service_ids().into_iter().take(2),
            ),
        ],
        tasks,
        seed,
        static_tasks: true,
        faults,
        ..SimConfig::default()
    }
}

async fn start_sims(configs: Vec<SimConfig>) -> Vec<SimHandle> {
    let mut sims = Vec::new();
    for c in configs {
        sims.push(
            sim::start("127.0.0.1:0".parse().unwrap(), c)
                .await
                .expect("simulator"),
        );
    }
    sims
}

/// A proxy configuration: loopback listeners on free ports, `extra` (whole TOML
/// sections), and one `[[vcenter]]` per URL, named vc1, vc2, ...
fn proxy_toml(vcenters: &[String], extra: &str) -> String {
    let mut toml =
        String::from("[listen]\naddr = \"127.0.0.1:0\"\n[admin]\naddr = \"127.0.0.1:0\"\n");
    toml.push_str(extra);
    toml.push('\n');
    for (i, url) in vcenters.iter().enumerate() {
        toml.push_str(&format!(
            "[[vcenter]]\nname = \"vc{}\"\nurl = \"{url}\"\nmax_idle_connections = 256\n",
            i + 1
        ));
    }
    toml
}

/// The proxy in this process, in front of `sims`.
struct ProxyEnv {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl ProxyEnv {
    async fn start(sims: &[SimHandle], extra: &str) -> ProxyEnv {
        let urls: Vec<String> = sims.iter().map(SimHandle::base_url).collect();
        let toml = proxy_toml(&urls, extra);
        let config = Config::from_toml_str(&toml).unwrap_or_else(|e| panic!("{e}\n{toml}"));
        let proxy = Proxy::new(&config).expect("proxy");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(vcproxy::run(proxy, listener, admin, async move {
            let _ = rx.await;
        }));
        ProxyEnv {
            addr,
            stop: Some(tx),
            task,
        }
    }

    fn http(&self) -> Http {
        Http::new(format!("http://{}", self.addr))
    }

    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
    }
}

async fn shutdown_sims(sims: Vec<SimHandle>) {
    for s in sims {
        let _ = tokio::time::timeout(Duration::from_secs(10), s.shutdown()).await;
    }
}

fn lists(sims: &[SimHandle]) -> Vec<u64> {
    sims.iter()
        .map(|s| s.stats().endpoint_total(Endpoint::TasksList))
        .collect()
}

fn sessions_opened(sims: &[SimHandle]) -> Vec<u64> {
    sims.iter().map(|s| s.stats().sessions_opened).collect()
}

fn delta(after: &[u64], before: &[u64]) -> Vec<u64> {
    after.iter().zip(before).map(|(a, b)| a - b).collect()
}

fn runtime(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

// ---------------------------------------------------------------- statistics

fn median(v: &[f64]) -> f64 {
    percentile(v, 0.5)
}

fn percentile(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let rank = p * (s.len() - 1) as f64;
    let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
    s[lo] + (s[hi] - s[lo]) * (rank - lo as f64)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

// ---------------------------------------------------------------- the table

struct Row {
    scenario: String,
    vcproxy: String,
    alternative: String,
    ratio: String,
    target: String,
    met: Option<bool>,
}

impl Row {
    fn new(
        scenario: impl Into<String>,
        vcproxy: impl Into<String>,
        alternative: impl Into<String>,
        ratio: impl Into<String>,
        target: impl Into<String>,
        met: Option<bool>,
    ) -> Row {
        Row {
            scenario: scenario.into(),
            vcproxy: vcproxy.into(),
            alternative: alternative.into(),
            ratio: ratio.into(),
            target: target.into(),
            met,
        }
    }

    fn failed(scenario: &str, why: impl Into<String>, target: &str) -> Row {
        Row::new(scenario, why, "", "", target, Some(false))
    }
}

fn print_table(rows: &[Row]) {
    let header = [
        "scenario",
        "vcproxy",
        "alternative",
        "ratio",
        "target",
        "met?",
    ];
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            [
                r.scenario.clone(),
                r.vcproxy.clone(),
                r.alternative.clone(),
                r.ratio.clone(),
                r.target.clone(),
                match r.met {
                    Some(true) => "yes".into(),
                    Some(false) => "NO".into(),
                    None => "n/a".into(),
                },
            ]
        })
        .collect();
    let mut width = header.map(str::len);
    for c in &cells {
        for (w, s) in width.iter_mut().zip(c) {
            *w = (*w).max(s.chars().count());
        }
    }
    let line = |c: &[String]| {
        let parts: Vec<String> = c
            .iter()
            .zip(width)
            .map(|(s, w)| format!("{s:<w$}"))
            .collect();
        println!("| {} |", parts.join(" | "));
    };
    line(&header.map(String::from));
    println!(
        "|{}|",
        width
            .iter()
            .map(|w| "-".repeat(w + 2))
            .collect::<Vec<_>>()
            .join("|")
    );
    for c in &cells {
        line(c);
    }
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|r| r.trim_start_matches([' ', '\t', ':']))
        })
        .unwrap_or("unknown CPU")
        .to_owned();
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:").map(|r| r.trim().to_owned()))
        })
        .unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    format!(
        "nproc {nproc}, {model}, MemTotal {mem}, loadavg {}",
        load.join(" ")
    )
}

// ---------------------------------------------------------------- hit path

#[derive(Debug, Clone, Copy, Default)]
struct WrkResult {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
}

fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd} >/dev/null 2>&1")])
        .status()
        .is_ok_and(|s| s.success())
}

fn find_nginx() -> Option<String> {
    [
        "/usr/sbin/nginx",
        "/usr/local/sbin/nginx",
        "/usr/local/nginx/sbin/nginx",
    ]
    .iter()
    .find(|p| std::path::Path::new(p).exists())
    .map(|p| (*p).to_owned())
    .or_else(|| have("nginx").then(|| "nginx".to_owned()))
}

/// Parses "1.23ms", "850.00us", "1.02s".
fn wrk_duration_ms(s: &str) -> Option<f64> {
    let s = s.trim();
    let (num, factor) = if let Some(n) = s.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60_000.0)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1000.0)
    } else {
        (s, 1.0)
    };
    num.trim().parse::<f64>().ok().map(|v| v * factor)
}

fn parse_wrk(out: &str) -> Option<WrkResult> {
    let mut r = WrkResult::default();
    let mut have_rps = false;
    for line in out.lines() {
        let t = line.trim();
        let mut words = t.split_whitespace();
        match (words.next(), words.next()) {
            (Some("Requests/sec:"), Some(v)) => {
                r.rps = v.parse().ok()?;
                have_rps = true;
            }
            (Some("50%"), Some(v)) => r.p50_ms = wrk_duration_ms(v)?,
            (Some("99%"), Some(v)) => r.p99_ms = wrk_duration_ms(v)?,
            (Some("Non-2xx"), _) => {
                r.errors += t.rsplit(' ').next()?.parse::<u64>().ok()?;
            }
            (Some("Socket"), Some("errors:")) => {
                // "Socket errors: connect 0, read 0, write 0, timeout 0"
                for part in t.trim_start_matches("Socket errors:").split(',') {
                    r.errors += part.split_whitespace().nth(1)?.parse::<u64>().ok()?;
                }
            }
            _ => {}
        }
    }
    have_rps.then_some(r)
}

/// wrk against `url` on core 1: 64 connections for `secs`. With `script`, a wrk Lua
/// script (the paced runs' pause between requests).
fn run_wrk(
    url: &str,
    sid: &str,
    secs: u64,
    script: Option<&std::path::Path>,
) -> Result<WrkResult, String> {
    let mut wrk = Command::new("taskset");
    wrk.args(["-c", "1", "wrk", "-t1", "-c64"])
        .arg(format!("-d{secs}s"))
        .args(["--latency", "--timeout", "5s", "-H"])
        .arg(format!("{SESSION}: {sid}"));
    if let Some(script) = script {
        wrk.arg("-s").arg(script);
    }
    let out = wrk.arg(url).output().map_err(|e| format!("wrk: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "wrk failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    parse_wrk(&text).ok_or_else(|| format!("cannot read wrk's output:\n{text}"))
}

/// The simulator behind both servers of the hit path: 100 tasks, so that a list of
/// every service is the 100-task answer.
fn hit_sim_config() -> SimConfig {
    sim_config(100, 7, realistic_faults())
}

fn hit_path_query() -> String {
    format!("/rest/cis/tasks?{}", all_services_query())
}

/// Child process: a simulator and vcproxy on a one-worker runtime (the parent pins
/// this process to one core). Prints `READY <addr> <session> <body bytes>`, serves
/// until its stdin closes.
fn hit_child() {
    let rt = runtime(1);
    rt.block_on(async {
        let sims = start_sims(vec![hit_sim_config()]).await;
        let proxy = ProxyEnv::start(
            &sims,
            "[cache]\nttl = \"1h\"\nstale_while_revalidate = \"0s\"",
        )
        .await;
        let http = proxy.http();
        let sid = http
            .login(sim::DEFAULT_USER, sim::DEFAULT_PASSWORD)
            .await
            .expect("login");
        let path = hit_path_query();
        let mut body_len = 0;
        for expect in ["miss", "hit"] {
            let r = http
                .call(Method::GET, &path, &[(SESSION, &sid)], None)
                .await
                .expect("warm-up");
            assert_eq!(r.status, 200, "{}", lossy(&r.body));
            assert_eq!(r.header("vcproxy-cache"), expect);
            assert_eq!(rest_count(&r.body), Some(100));
            body_len = r.body.len();
        }
        println!("READY {} {sid} {body_len}", proxy.addr);
        std::io::stdout().flush().unwrap();
        stdin_closed().await;
        proxy.stop().await;
        shutdown_sims(sims).await;
    });
}

/// A child process that is killed when dropped.
struct Kid(Child);

impl Drop for Kid {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_hit_child() -> Result<(Kid, String, String, usize), String> {
    let (kid, words) = spawn_child(Some("0"), &[HIT_CHILD], &[])?;
    match words.as_slice() {
        [addr, sid, len] => Ok((kid, addr.clone(), sid.clone(), len.parse().unwrap_or(0))),
        _ => Err(format!("vcproxy child did not start: {words:?}")),
    }
}

/// nginx in front of a simulator in this process; stopped when dropped.
struct Nginx {
    kid: Kid,
    dir: PathBuf,
    addr: SocketAddr,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM to the master stops its workers too (SIGKILL would orphan them).
        let _ = Command::new("kill")
            .args(["-TERM", &self.kid.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.kid.0.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn start_nginx(nginx: &str, upstream: SocketAddr) -> Result<Nginx, String> {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("vcproxy-bench-nginx-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for sub in ["", "cache", "proxy_temp", "client_body"] {
        let d = dir.join(sub);
        std::fs::create_dir_all(&d).map_err(|e| e.to_string())?;
        // Workers run as nobody when the master is root.
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777))
            .map_err(|e| e.to_string())?;
    }
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let conf = include_str!("nginx/nginx.conf.template")
        .replace("@DIR@", &dir.display().to_string())
        .replace("@LISTEN@", &addr.to_string())
        .replace("@UPSTREAM@", &upstream.to_string());
    let conf_path = dir.join("nginx.conf");
    std::fs::write(&conf_path, conf).map_err(|e| e.to_string())?;
    let child = Command::new("taskset")
        .args(["-c", "0", nginx, "-p"])
        .arg(&dir)
        .arg("-c")
        .arg(&conf_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("nginx: {e}"))?;
    let mut n = Nginx {
        kid: Kid(child),
        dir,
        addr,
    };
    // Wait until it accepts connections.
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(addr).is_err() {
        if let Ok(Some(status)) = n.kid.0.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = n.kid.0.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            let log = std::fs::read_to_string(n.dir.join("error.log")).unwrap_or_default();
            return Err(format!("nginx exited ({status}): {err}{log}"));
        }
        if Instant::now() > deadline {
            return Err("nginx did not start listening within 10 s".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    n.addr = addr;
    Ok(n)
}

fn hit_path(s: &Settings, rt: &tokio::runtime::Runtime) -> Vec<Row> {
    const NAME: &str = "hit path: rps (64 conns, 100-task /rest, 1 core)";
    const NAME_P50: &str = "hit path: p50 latency";
    const NAME_P99: &str = "hit path: p99 latency";
    const NAME_PACED: &str = "hit path, paced (2 ms pause per connection): latency";
    const TARGET_RPS: &str = ">= nginx";
    const TARGET_P99: &str = "<= nginx";
    if !have("wrk") || !have("taskset") {
        return vec![Row::new(
            NAME,
            "wrk/taskset not installed: run benches/nginx/setup.sh",
            "",
            "",
            TARGET_RPS,
            None,
        )];
    }
    let (_child, addr, sid, body_len) = match spawn_hit_child() {
        Ok(c) => c,
        Err(e) => return vec![Row::failed(NAME, e, TARGET_RPS)],
    };
    let vc_url = format!("http://{addr}{}", hit_path_query());

    // nginx in front of an identical simulator in this process.
    let nginx_bin = find_nginx();
    let nginx_sim = rt.block_on(start_sims(vec![hit_sim_config()]));
    let nginx = match &nginx_bin {
        None => Err("nginx not installed: run benches/nginx/setup.sh".to_owned()),
        Some(bin) => start_nginx(bin, nginx_sim[0].addr()),
    };
    let nginx = nginx.and_then(|n| {
        let sim = Http::new(nginx_sim[0].base_url());
        let front = Http::new(format!("http://{}", n.addr));
        rt.block_on(async {
            let sid = sim.login(sim::DEFAULT_USER, sim::DEFAULT_PASSWORD).await?;
            let mut len = 0;
            for expect in ["MISS", "HIT"] {
                let r = front
                    .call(Method::GET, &hit_path_query(), &[(SESSION, &sid)], None)
                    .await?;
                if r.status != 200 || rest_count(&r.body) != Some(100) {
                    return Err(format!("nginx answered {}: {}", r.status, lossy(&r.body)));
                }
                if r.header("x-cache-status") != expect {
                    return Err(format!(
                        "nginx cache status {:?}, expected {expect}",
                        r.header("x-cache-status")
                    ));
                }
                len = r.body.len();
            }
            Ok((n, sid, len))
        })
    });

    // Saturated runs (the issue's): wrk as fast as it can. Then paced runs: each
    // connection pauses 2 ms between requests, so both servers carry the same load
    // and neither wrk nor the server's core is saturated (saturated, wrk itself uses
    // ~98% of its core, and its latency figures include its own queueing).
    let pace = std::env::temp_dir().join(format!("vcproxy-bench-pace-{}.lua", std::process::id()));
    let paced = std::fs::write(&pace, "function delay()\n  return 2\nend\n").is_ok();
    let mut vc_runs = Vec::new();
    let mut ng_runs = Vec::new();
    let mut vc_paced = Vec::new();
    let mut ng_paced = Vec::new();
    let mut errors = Vec::new();
    let nginx_url = nginx.as_ref().ok().map(|(n, nsid, _)| {
        (
            format!("http://{}{}", n.addr, hit_path_query()),
            nsid.clone(),
        )
    });
    let runs = [
        (None, &mut vc_runs, &mut ng_runs),
        (Some(pace.as_path()), &mut vc_paced, &mut ng_paced),
    ];
    for (script, vc_out, ng_out) in runs {
        if script.is_some() && !paced {
            continue;
        }
        for _ in 0..s.hit_runs {
            match run_wrk(&vc_url, &sid, s.hit_secs, script) {
                Ok(r) => vc_out.push(r),
                Err(e) => errors.push(e),
            }
            if let Some((url, nsid)) = &nginx_url {
                match run_wrk(url, nsid, s.hit_secs, script) {
                    Ok(r) => ng_out.push(r),
                    Err(e) => errors.push(e),
                }
            }
        }
    }
    let _ = std::fs::remove_file(&pace);
    for e in &errors {
        eprintln!("hit path: {e}");
    }
    for (who, runs) in [
        ("vcproxy", &vc_runs),
        ("nginx", &ng_runs),
        ("vcproxy paced", &vc_paced),
        ("nginx paced", &ng_paced),
    ] {
        for r in runs.iter() {
            eprintln!(
                "hit path run: {who:<13} {:>9.0} rps  p50 {:.3} ms  p99 {:.3} ms  errors {}",
                r.rps, r.p50_ms, r.p99_ms, r.errors
            );
        }
    }
    let med = |runs: &[WrkResult], f: fn(&WrkResult) -> f64| {
        median(&runs.iter().map(f).collect::<Vec<_>>())
    };
    if vc_runs.is_empty() {
        return vec![Row::failed(NAME, errors.join("; "), TARGET_RPS)];
    }
    let vc_err: u64 = vc_runs.iter().map(|r| r.errors).sum();
    let (vc_rps, vc_p50, vc_p99) = (
        med(&vc_runs, |r| r.rps),
        med(&vc_runs, |r| r.p50_ms),
        med(&vc_runs, |r| r.p99_ms),
    );
    let n = vc_runs.len();
    let vc_rps_s = format!("{vc_rps:.0} rps ({body_len} B body, median of {n}, {vc_err} errors)");
    match (&nginx, ng_runs.is_empty()) {
        (Ok((_, _, ng_len)), false) => {
            let ng_err: u64 = ng_runs.iter().map(|r| r.errors).sum();
            let (ng_rps, ng_p50, ng_p99) = (
                med(&ng_runs, |r| r.rps),
                med(&ng_runs, |r| r.p50_ms),
                med(&ng_runs, |r| r.p99_ms),
            );
            let mut rows = vec![
                Row::new(
                    NAME,
                    vc_rps_s,
                    format!(
                        "nginx proxy_cache: {ng_rps:.0} rps ({ng_len} B body, {ng_err} errors)"
                    ),
                    format!("{:.2}", vc_rps / ng_rps),
                    TARGET_RPS,
                    Some(vc_rps >= ng_rps && vc_err == 0),
                ),
                Row::new(
                    NAME_P50,
                    format!("{vc_p50:.3} ms"),
                    format!("{ng_p50:.3} ms"),
                    format!("{:.2}", vc_p50 / ng_p50),
                    "(info)",
                    None,
                ),
                Row::new(
                    NAME_P99,
                    format!("{vc_p99:.3} ms"),
                    format!("{ng_p99:.3} ms"),
                    format!("{:.2}", vc_p99 / ng_p99),
                    TARGET_P99,
                    Some(vc_p99 <= ng_p99),
                ),
            ];
            if !vc_paced.is_empty() && !ng_paced.is_empty() {
                let (vr, vp50, vp99) = (
                    med(&vc_paced, |r| r.rps),
                    med(&vc_paced, |r| r.p50_ms),
                    med(&vc_paced, |r| r.p99_ms),
                );
                let (nr, np50, np99) = (
                    med(&ng_paced, |r| r.rps),
                    med(&ng_paced, |r| r.p50_ms),
                    med(&ng_paced, |r| r.p99_ms),
                );
                rows.push(Row::new(
                    NAME_PACED,
                    format!("p50 {vp50:.3} ms, p99 {vp99:.3} ms at {vr:.0} rps"),
                    format!("p50 {np50:.3} ms, p99 {np99:.3} ms at {nr:.0} rps"),
                    format!("{:.2}", vp99 / np99),
                    "(info: p99 at equal load)",
                    None,
                ));
            }
            rows
        }
        (Err(e), _) => vec![
            Row::new(NAME, vc_rps_s, e.clone(), "", TARGET_RPS, None),
            Row::new(
                NAME_P99,
                format!("{vc_p99:.3} ms (p50 {vc_p50:.3} ms)"),
                e.clone(),
                "",
                TARGET_P99,
                None,
            ),
        ],
        (Ok(_), true) => vec![Row::new(
            NAME,
            vc_rps_s,
            format!("nginx runs failed: {}", errors.join("; ")),
            "",
            TARGET_RPS,
            None,
        )],
    }
}

// ---------------------------------------------------------------- miss path

async fn miss_path(s: &Settings) -> Vec<Row> {
    // Three processes, as in a deployment: the vCenters, the proxy, and the client
    // (this one). In one process they would share one tokio runtime, and the
    // proxy's merge would hold up the client's and the simulators' tasks.
    let children = spawn_child(None, &[SIMS_CHILD, "3", "1000"], &[]).and_then(|(sims, urls)| {
        let toml = proxy_toml(&urls, "[merge]\non_too_many = \"return_all\"");
        let (proxy, addr, _) = spawn_proxy_child(&toml)?;
        Ok((sims, urls, proxy, addr))
    });
    let (_sims, urls, _proxy, addr) = match children {
        Ok(c) => c,
        Err(e) => return vec![Row::failed("miss path", e, "overhead <= 2 ms")],
    };
    let front = Http::new(format!("http://{addr}"));
    let direct: Vec<Http> = urls.iter().map(|u| Http::new(u.clone())).collect();
    let mut rows = Vec::new();
    let result = async {
        let sid = front
            .login(sim::DEFAULT_USER, sim::DEFAULT_PASSWORD)
            .await?;
        let mut direct_sids = Vec::new();
        for d in &direct {
            direct_sids.push(d.login(sim::DEFAULT_USER, sim::DEFAULT_PASSWORD).await?);
        }
        let svc = sim::service_ids()[0].to_string();
        let cases = [
            (
                "miss path: every task (3 x 1000 merged)",
                RestQuery::query(all_services_query()),
            ),
            (
                "miss path: 1 service, 2 statuses",
                ten_encodings(&svc).swap_remove(0),
            ),
        ];
        for (name, q) in cases {
            let mut diffs = Vec::new();
            let mut proxy_ms = Vec::new();
            let mut direct_ms = Vec::new();
            let mut tasks = 0;
            let mut coalesced = 0u32;
            // The same request's slowest vCenter, as the proxy timed it (request sent
            // to last byte read; its `Server-Timing`), and the proxy's answer after it.
            let mut own_ms = Vec::new();
            let mut own_diffs = Vec::new();
            let mut merge_took = Vec::new();
            let warm = 3;
            for i in 0..warm + s.miss_samples {
                let ask_proxy = async {
                    // A request that arrives just after the previous fetch answered,
                    // before its flight is cleared, joins it ("coalesced": see
                    // RESULTS.md); such a sample is not a cold answer: ask again.
                    for _ in 0..5 {
                        let t = Instant::now();
                        let r = front
                            .rest_list(&sid, &q, &[("cache-control", "no-cache")])
                            .await?;
                        let took = t.elapsed();
                        match (r.status, r.header("vcproxy-cache")) {
                            (StatusCode::OK, "miss") => return Ok::<_, String>((took, r)),
                            (StatusCode::OK, "coalesced") => {
                                coalesced += 1;
                                tokio::time::sleep(Duration::from_millis(5)).await;
                            }
                            (status, outcome) => {
                                return Err(format!("proxy: {status} {outcome:?} {}", lossy(&r.body)))
                            }
                        }
                    }
                    Err("proxy: no cold answer in 5 tries".to_owned())
                };
                let ask_direct = async {
                    let each = direct.iter().zip(&direct_sids).map(|(d, sid)| {
                        let q = q.clone();
                        async move {
                            let t = Instant::now();
                            let r = d.rest_list(sid, &q, &[]).await?;
                            if r.status != 200 {
                                return Err(format!("direct: {} {}", r.status, lossy(&r.body)));
                            }
                            // Parsed after all three have answered, so that one
                            // parse does not delay reading the others.
                            Ok::<_, String>((t.elapsed(), r.body))
                        }
                    });
                    let res: Result<Vec<_>, String> = join_all(each).await.into_iter().collect();
                    let res = res?;
                    let slowest = res.iter().map(|r| r.0).max().unwrap_or_default();
                    let tasks = res.iter().map(|r| rest_count(&r.1).unwrap_or(0)).sum::<usize>();
                    Ok::<_, String>((slowest, tasks))
                };
                let ((p, r), (d, n)) = if i % 2 == 0 {
                    let p = ask_proxy.await?;
                    (p, ask_direct.await?)
                } else {
                    let d = ask_direct.await?;
                    (ask_proxy.await?, d)
                };
                if i < warm {
                    continue;
                }
                let merged = rest_count(&r.body).unwrap_or(usize::MAX);
                if merged != n {
                    return Err(format!("proxy merged {merged} tasks, vCenters hold {n}"));
                }
                tasks = n;
                proxy_ms.push(ms(p));
                direct_ms.push(ms(d));
                diffs.push(ms(p) - ms(d));
                let timing = r.header("server-timing");
                let (own, merge) = slowest_vcenter_ms(timing)
                    .zip(merge_ms(timing))
                    .ok_or_else(|| format!("no vCenter timings: {timing:?}"))?;
                own_ms.push(own);
                own_diffs.push(ms(p) - own);
                merge_took.push(merge);
            }
            let (med, p90) = (median(&diffs), percentile(&diffs, 0.9));
            eprintln!(
                "{name}: proxy {:.2} ms, slowest direct {:.2} ms (medians), diff median {med:.2} p90 {p90:.2} ms, {tasks} tasks, {coalesced} coalesced retries",
                median(&proxy_ms),
                median(&direct_ms)
            );
            // The floor under the overhead: the same answer from the cache, so the
            // proxy does no fan-out, parse or merge, and only the extra hop (the
            // merged answer crossing loopback once more) is left.
            let mut hit_ms = Vec::new();
            for _ in 0..warm + s.miss_samples {
                let t = Instant::now();
                let r = front.rest_list(&sid, &q, &[]).await?;
                let took = ms(t.elapsed());
                if r.status != StatusCode::OK || r.header("vcproxy-cache") != "hit" {
                    return Err(format!("floor: {} {:?}", r.status, r.header("vcproxy-cache")));
                }
                hit_ms.push(took);
            }
            let floor = median(&hit_ms[warm..]);
            let (own_med, own_p90) = (median(&own_diffs), percentile(&own_diffs, 0.9));
            eprintln!(
                "{name}: slowest vCenter of the same request {:.2} ms (median), answer after it: median {own_med:.2} p90 {own_p90:.2} ms",
                median(&own_ms)
            );
            // The overhead against direct, split in two: the slowest answer reaching
            // the proxy later than it reaches a direct client (the same machine's
            // cores read, parse and send for both), and what follows its last byte.
            eprintln!(
                "{name}: slowest vCenter as timed by the proxy minus slowest direct: {:+.2} ms (medians); merge (Server-Timing) median {:.2} ms",
                median(&own_ms) - median(&direct_ms),
                median(&merge_took)
            );
            eprintln!("{name}: the same answer from the cache: median {floor:.2} ms");
            // proxy latency − a baseline, per sample: one row per baseline.
            let overhead_row = |scenario: String, diffs: &[f64], base: String, base_ms: f64| {
                let (med, p90) = (median(diffs), percentile(diffs, 0.9));
                Row::new(
                    scenario,
                    format!(
                        "{:.2} ms (overhead median {med:+.2} ms, p90 {p90:+.2} ms, n={})",
                        median(&proxy_ms),
                        diffs.len()
                    ),
                    format!("{base} {base_ms:.2} ms"),
                    format!("{:.3}", median(&proxy_ms) / base_ms),
                    "overhead <= 2 ms",
                    Some(med <= 2.0),
                )
            };
            rows.push(overhead_row(
                format!("{name}, {tasks} tasks"),
                &diffs,
                "slowest vCenter direct".to_owned(),
                median(&direct_ms),
            ));
            rows.push(overhead_row(
                format!("{name}: after the same request's slowest vCenter (Server-Timing)"),
                &own_diffs,
                "slowest vCenter as timed by the proxy".to_owned(),
                median(&own_ms),
            ));
            rows.push(Row::new(
                format!("{name}: the same answer from the cache (the extra hop alone)"),
                format!("{floor:.2} ms (median, n={})", hit_ms.len() - warm),
                "",
                "",
                "(info: floor of the overhead)",
                None,
            ));
        }
        Ok::<_, String>(())
    }
    .await;
    if let Err(e) = result {
        rows.push(Row::failed("miss path", e, "overhead <= 2 ms"));
    }
    rows
}

// ---------------------------------------------------------------- load reduction

/// Per-client poll loop: `polls` requests a second apart starting at `first`.
#[derive(Default)]
struct PollStats {
    ok: u64,
    failed: u64,
    first_error: Option<String>,
}

impl PollStats {
    fn add(&mut self, r: Result<(), String>) {
        match r {
            Ok(()) => self.ok += 1,
            Err(e) => {
                self.failed += 1;
                self.first_error.get_or_insert(e);
            }
        }
    }

    fn merge(&mut self, o: PollStats) {
        self.ok += o.ok;
        self.failed += o.failed;
        if self.first_error.is_none() {
            self.first_error = o.first_error;
        }
    }
}

/// Runs `clients` pollers, each polling `polls` times a second apart, offsets spread
/// evenly over the first second. `poll(client, n)` does one poll.
async fn run_pollers<F, Fut>(clients: usize, polls: u64, poll: F) -> (PollStats, Duration)
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + Send + 'static,
{
    let poll = Arc::new(poll);
    let start = tokio::time::Instant::now() + Duration::from_millis(100);
    let mut handles = Vec::new();
    for c in 0..clients {
        let poll = poll.clone();
        let offset = Duration::from_micros(1_000_000 * c as u64 / clients as u64);
        handles.push(tokio::spawn(async move {
            let mut stats = PollStats::default();
            for n in 0..polls {
                tokio::time::sleep_until(start + offset + Duration::from_secs(n)).await;
                stats.add(poll(c, n).await);
            }
            stats
        }));
    }
    let mut total = PollStats::default();
    for h in handles {
        match h.await {
            Ok(s) => total.merge(s),
            Err(e) => total.add(Err(e.to_string())),
        }
    }
    (total, start.elapsed())
}

async fn login_all(
    http: &[Http],
    clients: usize,
    user: (&str, &str),
) -> Result<Vec<Vec<String>>, String> {
    let limit = Arc::new(Semaphore::new(32));
    let mut handles = Vec::new();
    for _ in 0..clients {
        let http = http.to_vec();
        let limit = limit.clone();
        let (u, p) = (user.0.to_owned(), user.1.to_owned());
        handles.push(tokio::spawn(async move {
            let _permit = limit.acquire().await.unwrap();
            let mut sids = Vec::new();
            for h in &http {
                sids.push(h.login(&u, &p).await?);
            }
            Ok::<_, String>(sids)
        }));
    }
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.map_err(|e| e.to_string())??);
    }
    Ok(out)
}

async fn load_reduction(s: &Settings) -> Vec<Row> {
    const NAME: &str = "load reduction: List Tasks per vCenter";
    let ttl = 5u64;
    let target = format!("<= 1 per filter per {ttl} s TTL window per vCenter");
    let sims = start_sims(
        (1..=3)
            .map(|seed| sim_config(1000, seed, realistic_faults()))
            .collect(),
    )
    .await;
    let proxy = ProxyEnv::start(&sims, &format!("[cache]\nttl = \"{ttl}s\"")).await;
    let filters: Vec<Vec<RestQuery>> = sim::service_ids()
        .iter()
        .take(5)
        .map(|svc| ten_encodings(svc))
        .collect();
    let filters = Arc::new(filters);
    let query_of = {
        let filters = filters.clone();
        move |c: usize| filters[c % 5][(c / 5) % 10].clone()
    };
    let (clients, polls) = (s.poll_clients, s.poll_secs);

    let result = async {
        // Through the proxy: each client has its own proxy session.
        let front = proxy.http();
        let sids = login_all(
            std::slice::from_ref(&front),
            clients,
            (sim::DEFAULT_USER, sim::DEFAULT_PASSWORD),
        )
        .await?;
        let sids: Arc<Vec<String>> = Arc::new(sids.into_iter().map(|mut v| v.remove(0)).collect());
        let before = lists(&sims);
        let q = query_of.clone();
        let (proxy_stats, proxy_elapsed) = run_pollers(clients, polls, move |c, _| {
            let (front, sids, query) = (front.clone(), sids.clone(), q(c));
            async move {
                let r = front.rest_list(&sids[c], &query, &[]).await?;
                if r.status == 200 {
                    Ok(())
                } else {
                    Err(format!("proxy {}: {}", r.status, lossy(&r.body)))
                }
            }
        })
        .await;
        let via_proxy = delta(&lists(&sims), &before);

        // Directly: each client has a session on every simulator and asks each.
        let direct: Vec<Http> = sims.iter().map(|s| Http::new(s.base_url())).collect();
        let sids = Arc::new(
            login_all(&direct, clients, (sim::DEFAULT_USER, sim::DEFAULT_PASSWORD)).await?,
        );
        let before = lists(&sims);
        let q = query_of.clone();
        let direct = Arc::new(direct);
        let (direct_stats, direct_elapsed) = run_pollers(clients, polls, move |c, _| {
            let (direct, sids, query) = (direct.clone(), sids.clone(), q(c));
            async move {
                let each = direct.iter().zip(&sids[c]).map(|(d, sid)| {
                    let query = query.clone();
                    async move {
                        let r = d.rest_list(sid, &query, &[]).await?;
                        if r.status == 200 {
                            Ok(())
                        } else {
                            Err(format!("direct {}: {}", r.status, lossy(&r.body)))
                        }
                    }
                });
                join_all(each)
                    .await
                    .into_iter()
                    .collect::<Result<Vec<()>, String>>()?;
                Ok(())
            }
        })
        .await;
        let direct_counts = delta(&lists(&sims), &before);

        let windows = proxy_elapsed.as_secs() / ttl + 1;
        let bound = 5 * windows;
        let worst = via_proxy.iter().copied().max().unwrap_or(0);
        let fmt = |v: &[u64]| v.iter().map(u64::to_string).collect::<Vec<_>>().join("/");
        for (who, st) in [("proxy", &proxy_stats), ("direct", &direct_stats)] {
            eprintln!(
                "load reduction {who}: {} ok, {} failed{}",
                st.ok,
                st.failed,
                st.first_error
                    .as_deref()
                    .map(|e| format!(" (first: {e})"))
                    .unwrap_or_default()
            );
        }
        eprintln!(
            "load reduction: proxy {} in {:.1} s, direct {} in {:.1} s, bound {bound}",
            fmt(&via_proxy),
            proxy_elapsed.as_secs_f64(),
            fmt(&direct_counts),
            direct_elapsed.as_secs_f64()
        );
        let direct_worst = direct_counts.iter().copied().min().unwrap_or(0);
        Ok::<_, String>(Row::new(
            format!("{NAME} ({clients} clients x {polls} polls, 5 filters x 10 encodings)"),
            format!(
                "{} (vc1/vc2/vc3; {} client errors)",
                fmt(&via_proxy),
                proxy_stats.failed
            ),
            format!(
                "direct: {} ({} client errors)",
                fmt(&direct_counts),
                direct_stats.failed
            ),
            format!("1/{:.0}", direct_worst as f64 / worst.max(1) as f64),
            format!(
                "{target}: <= {bound} in {:.0} s",
                proxy_elapsed.as_secs_f64()
            ),
            Some(worst <= bound && proxy_stats.failed == 0 && worst > 0),
        ))
    }
    .await;
    proxy.stop().await;
    shutdown_sims(sims).await;
    vec![result.unwrap_or_else(|e| Row::failed(NAME, e, &target))]
}

// ---------------------------------------------------------------- session churn

async fn session_churn(s: &Settings) -> Vec<Row> {
    const NAME: &str = "session churn: vCenter sessions opened per vCenter";
    let target = "<= 1 per user per vCenter (2 users)";
    let sims = start_sims(
        (1..=3)
            .map(|seed| sim_config(1000, seed, realistic_faults()))
            .collect(),
    )
    .await;
    let proxy = ProxyEnv::start(&sims, "").await;
    let svc = sim::service_ids()[0].to_string();
    let query = Arc::new(ten_encodings(&svc).swap_remove(0));
    let (clients, polls) = (s.churn_clients, s.churn_polls);
    let user = |c: usize| {
        if c % 2 == 0 {
            (sim::DEFAULT_USER, sim::DEFAULT_PASSWORD)
        } else {
            OPERATOR
        }
    };

    // One churning poll against one server: log in, list, log out.
    async fn churn(http: &Http, user: (&str, &str), query: &RestQuery) -> Result<(), String> {
        let sid = http.login(user.0, user.1).await?;
        let r = http.rest_list(&sid, query, &[]).await?;
        if r.status != 200 {
            return Err(format!("list {}: {}", r.status, lossy(&r.body)));
        }
        http.logout(&sid).await
    }

    let front = proxy.http();
    let before = sessions_opened(&sims);
    let q = query.clone();
    let (proxy_stats, _) = run_pollers(clients, polls, move |c, _| {
        let (front, q) = (front.clone(), q.clone());
        async move { churn(&front, user(c), &q).await }
    })
    .await;
    let via_proxy = delta(&sessions_opened(&sims), &before);

    let direct: Arc<Vec<Http>> = Arc::new(sims.iter().map(|s| Http::new(s.base_url())).collect());
    let before = sessions_opened(&sims);
    let q = query.clone();
    let (direct_stats, _) = run_pollers(clients, polls, move |c, _| {
        let (direct, q) = (direct.clone(), q.clone());
        async move {
            let each = direct.iter().map(|d| churn(d, user(c), &q));
            join_all(each)
                .await
                .into_iter()
                .collect::<Result<Vec<()>, String>>()?;
            Ok(())
        }
    })
    .await;
    let direct_counts = delta(&sessions_opened(&sims), &before);
    for (who, st) in [("proxy", &proxy_stats), ("direct", &direct_stats)] {
        eprintln!(
            "session churn {who}: {} ok, {} failed{}",
            st.ok,
            st.failed,
            st.first_error
                .as_deref()
                .map(|e| format!(" (first: {e})"))
                .unwrap_or_default()
        );
    }
    let fmt = |v: &[u64]| v.iter().map(u64::to_string).collect::<Vec<_>>().join("/");
    let worst = via_proxy.iter().copied().max().unwrap_or(0);
    let direct_worst = direct_counts.iter().copied().min().unwrap_or(0);
    proxy.stop().await;
    shutdown_sims(sims).await;
    vec![Row::new(
        format!("{NAME} ({clients} clients x {polls} polls)"),
        format!("{} ({} client errors)", fmt(&via_proxy), proxy_stats.failed),
        format!(
            "direct: {} ({} client errors)",
            fmt(&direct_counts),
            direct_stats.failed
        ),
        format!("1/{:.0}", direct_worst as f64 / worst.max(1) as f64),
        target,
        Some(worst <= 2 && proxy_stats.failed == 0),
    )]
}

// ---------------------------------------------------------------- memory

/// A tiny deterministic PRNG (SplitMix64) for choosing task ids.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Filter `n`: 100 distinct task ids out of `ids`, as a `/rest` JSON body.
fn memory_filter(ids: &[String], n: usize) -> RestQuery {
    let mut rng = Rng(n as u64 ^ 0x5eed);
    let mut idx: Vec<usize> = (0..ids.len()).collect();
    for i in 0..100 {
        let j = i + (rng.next() % (idx.len() - i) as u64) as usize;
        idx.swap(i, j);
    }
    let chosen: Vec<String> = idx[..100]
        .iter()
        .map(|&i| format!("\"{}\"", ids[i]))
        .collect();
    RestQuery::body(format!(
        r#"{{"filter_spec":{{"tasks":[{}]}}}}"#,
        chosen.join(",")
    ))
}

/// Child process: vcproxy alone, configured by the TOML in `CHILD_CONFIG_ENV`, on the
/// default two-worker runtime, so that its CPU time and RSS are its own and the OS,
/// not one shared tokio runtime, schedules it beside the client and the vCenters.
/// Prints `READY <addr> <admin addr>`, serves until its stdin closes.
fn proxy_child() {
    let toml = std::env::var(CHILD_CONFIG_ENV).expect("proxy child: no configuration");
    let rt = runtime(2);
    rt.block_on(async {
        let config = Config::from_toml_str(&toml).unwrap_or_else(|e| panic!("{e}\n{toml}"));
        let proxy = Proxy::new(&config).expect("proxy");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!(
            "READY {} {}",
            listener.local_addr().unwrap(),
            admin.local_addr().unwrap()
        );
        std::io::stdout().flush().unwrap();
        vcproxy::run(proxy, listener, admin, stdin_closed()).await;
    });
}

/// Child process: `count` simulators of `tasks` tasks each with realistic latency
/// (seeds 1, 2, ...), standing in for vCenters on other machines. Prints
/// `READY <url> <url> ...`, serves until its stdin closes.
fn sims_child(count: usize, tasks: usize) {
    let rt = runtime(2);
    rt.block_on(async {
        let sims = start_sims(
            (1..=count as u64)
                .map(|seed| sim_config(tasks, seed, realistic_faults()))
                .collect(),
        )
        .await;
        let urls: Vec<String> = sims.iter().map(SimHandle::base_url).collect();
        println!("READY {}", urls.join(" "));
        std::io::stdout().flush().unwrap();
        stdin_closed().await;
        shutdown_sims(sims).await;
    });
}

/// Resolves when this process's stdin closes: a child's parent has gone.
async fn stdin_closed() {
    let _ = tokio::task::spawn_blocking(|| {
        let mut s = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut s);
    })
    .await;
}

/// Starts this bench binary as a child with `args` (and `env`), pinned to `pin`'s
/// cores if given, and reads its
/// `READY ...` line: the words after READY.
fn spawn_child(
    pin: Option<&str>,
    args: &[&str],
    env: &[(&str, &str)],
) -> Result<(Kid, Vec<String>), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut command = match pin {
        Some(cores) => {
            let mut c = Command::new("taskset");
            c.args(["-c", cores]).arg(exe);
            c
        }
        None => Command::new(exe),
    };
    let mut child = command
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let stdout = child.stdout.take().unwrap();
    let kid = Kid(child);
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    match line.strip_prefix("READY ") {
        Some(rest) => Ok((kid, rest.split_whitespace().map(str::to_owned).collect())),
        None => Err(format!("{} child did not start: {line:?}", args[0])),
    }
}

/// vcproxy in a child process with configuration `toml`: the child, the client
/// address and the admin address.
fn spawn_proxy_child(toml: &str) -> Result<(Kid, String, String), String> {
    let (kid, words) = spawn_child(None, &[PROXY_CHILD], &[(CHILD_CONFIG_ENV, toml)])?;
    match words.as_slice() {
        [addr, admin] => Ok((kid, addr.clone(), admin.clone())),
        _ => Err(format!("proxy child said {words:?}")),
    }
}

/// VmRSS and VmHWM of process `pid`, in KiB.
fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|r| r.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

struct MemoryResult {
    rss_before: u64,
    rss_after: u64,
    hwm: u64,
    weighed: u64,
    entries: u64,
    bytes: u64,
    ok: u64,
}

/// One simulator (no latency, so that filling the cache is quick) in this process,
/// vcproxy in a child, `queries` distinct 100-task queries sent 8 at a time.
async fn memory_run(queries: usize) -> Result<MemoryResult, String> {
    let sims = start_sims(vec![sim_config(1000, 11, Faults::default())]).await;
    let ids = Arc::new(sims[0].task_ids());
    let toml = proxy_toml(
        &[sims[0].base_url()],
        &format!("[cache]\nttl = \"1h\"\nmax_memory = \"{MEMORY_CAP_MIB}MiB\""),
    );
    let (kid, addr, admin_addr) = spawn_proxy_child(&toml)?;
    let pid = kid.0.id();
    let http = Http::new(format!("http://{addr}"));
    let admin = Http::new(format!("http://{admin_addr}"));
    let sid = http.login(sim::DEFAULT_USER, sim::DEFAULT_PASSWORD).await?;
    // Warm up connections and the allocator with a few queries outside the set.
    for n in 0..32 {
        let r = http
            .rest_list(&sid, &memory_filter(&ids, 1_000_000 + n), &[])
            .await?;
        if rest_count(&r.body) != Some(100) {
            return Err(format!("warm-up: {} {}", r.status, lossy(&r.body)));
        }
    }
    let _ = admin.call(Method::GET, "/metrics", &[], None).await;
    let (rss_before, _) = rss_kib(pid);

    let limit = Arc::new(Semaphore::new(8));
    let mut handles = Vec::new();
    for n in 0..queries {
        let (http, sid, ids, limit) = (http.clone(), sid.clone(), ids.clone(), limit.clone());
        handles.push(tokio::spawn(async move {
            let _permit = limit.acquire().await.unwrap();
            let r = http.rest_list(&sid, &memory_filter(&ids, n), &[]).await?;
            if r.status != 200 || r.header("vcproxy-cache") != "miss" {
                return Err(format!("{} {:?}", r.status, r.header("vcproxy-cache")));
            }
            // Check the count on a sample (parsing every body would dominate).
            if n % 97 == 0 && rest_count(&r.body) != Some(100) {
                return Err("not 100 tasks".into());
            }
            Ok::<_, String>(r.body.len())
        }));
    }
    let (mut ok, mut bytes) = (0u64, 0u64);
    for h in handles {
        if let Ok(Ok(len)) = h.await {
            ok += 1;
            bytes += len as u64;
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let metrics = admin
        .call(Method::GET, "/metrics", &[], None)
        .await
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())?;
    let gauge = |name: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| {
                l.strip_prefix(name)
                    .and_then(|r| r.trim().parse::<f64>().ok())
            })
            .map_or(0, |v| v as u64)
    };
    let (rss_after, hwm) = rss_kib(pid);
    let result = MemoryResult {
        rss_before,
        rss_after,
        hwm,
        weighed: gauge("vcproxy_cache_size_bytes "),
        entries: gauge("vcproxy_cache_entries "),
        bytes,
        ok,
    };
    drop(kid);
    shutdown_sims(sims).await;
    Ok(result)
}

fn memory(s: &Settings, rt: &tokio::runtime::Runtime) -> Vec<Row> {
    const NAME: &str = "memory: RSS growth, cache cap 256 MiB";
    let target = "RSS growth <= cap + 50 MB; weighed <= cap";
    let m = match rt.block_on(memory_run(s.memory_queries)) {
        Ok(m) => m,
        Err(e) => return vec![Row::failed(NAME, e, target)],
    };
    let cap = MEMORY_CAP_MIB << 20;
    let growth = (m.rss_after.saturating_sub(m.rss_before)) << 10;
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    eprintln!(
        "memory: proxy RSS {:.1} -> {:.1} MiB (peak {:.1} MiB), weighed {:.1} MiB in {} entries, {} answers of {:.1} MiB in all",
        mib(m.rss_before << 10),
        mib(m.rss_after << 10),
        mib(m.hwm << 10),
        mib(m.weighed),
        m.entries,
        m.ok,
        mib(m.bytes)
    );
    let limit = cap + 50_000_000;
    vec![Row::new(
        format!("{NAME} ({} distinct 100-task queries)", m.ok),
        format!(
            "RSS +{:.1} MiB (peak {:.1} MiB), weighed {:.1} MiB in {} entries",
            mib(growth),
            mib(m.hwm << 10),
            mib(m.weighed),
            m.entries
        ),
        format!("uncapped: {:.1} MiB of answers", mib(m.bytes)),
        format!("{:.2} of cap+50MB", growth as f64 / limit as f64),
        target,
        Some(growth <= limit && m.weighed <= cap && m.ok as usize == s.memory_queries),
    )]
}

// ---------------------------------------------------------------- main

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == HIT_CHILD) {
        hit_child();
        return;
    }
    if args.iter().any(|a| a == PROXY_CHILD) {
        proxy_child();
        return;
    }
    if let Some(i) = args.iter().position(|a| a == SIMS_CHILD) {
        let n = |k: usize| args.get(i + k).and_then(|v| v.parse().ok()).unwrap_or(1);
        sims_child(n(1), n(2));
        return;
    }
    // `cargo bench` passes --bench; `cargo test --benches` does not: run only then.
    if !args.iter().any(|a| a == "--bench") {
        println!("load benchmark: run with `cargo bench --bench load`");
        return;
    }
    let settings = Settings::from_env();
    let started = Instant::now();
    let only: Option<String> = std::env::var("VCPROXY_BENCH_ONLY").ok();
    let wanted = |name: &str| {
        only.as_deref()
            .map_or(true, |o| o.split(',').any(|x| x == name))
    };
    eprintln!(
        "vcproxy load benchmark ({})",
        if settings.quick {
            "QUICK run"
        } else {
            "full run"
        }
    );
    eprintln!("machine: {}", machine());

    let rt = runtime(2);
    let mut rows = Vec::new();
    if wanted("hit") {
        eprintln!("== hit path");
        rows.extend(hit_path(&settings, &rt));
    }
    if wanted("miss") {
        eprintln!("== miss path");
        rows.extend(rt.block_on(miss_path(&settings)));
    }
    if wanted("load") {
        eprintln!("== load reduction");
        rows.extend(rt.block_on(load_reduction(&settings)));
    }
    if wanted("churn") {
        eprintln!("== session churn");
        rows.extend(rt.block_on(session_churn(&settings)));
    }
    if wanted("memory") {
        eprintln!("== memory");
        rows.extend(memory(&settings, &rt));
    }
    drop(rt);

    println!();
    println!(
        "vcproxy load benchmark{}: {}",
        if settings.quick { " (QUICK)" } else { "" },
        machine()
    );
    println!("total time {:.0} s", started.elapsed().as_secs_f64());
    print_table(&rows);
}
