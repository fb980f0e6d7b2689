//! The load benchmark: simulated vCenters with realistic latency, vcproxy in front,
//! load driven at it, and one table of results (issue 5).
//!
//! Run: `cargo bench --bench load` (about 10 minutes on 2 cores).
//! Quick run (shorter durations, fewer samples; not the numbers):
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
//! * **Hit path, JSON-RPC** (issue 12): the same 100-task answer asked as the
//!   official SDK asks it (`POST /api`, a JSON-RPC `list` call with the session in
//!   the body), alternated with the `/rest` runs; and a 1-task answer in both
//!   protocols, where the per-request cost of the protocol shows rather than the
//!   copying of the body.
//! * **Hit path, gzip** (issue 13, `gzip`): the same 100-task answer with
//!   `Accept-Encoding: gzip` from vcproxy (its stored gzip copy), Varnish storing
//!   gzip (`beresp.do_gzip`) and nginx gzipping each hit (`gzip on`), each on core 0
//!   with wrk on core 1, rounds alternating; the bytes per answer in each coding;
//!   and the JSON-RPC answer of the same tasks gzipped (three members) against it.
//!   Needs `varnish` too (`benches/nginx/setup.sh`).
//! * **Miss path**: 3 vCenters × 1000 tasks at 50 ms + up to 5 ms jitter; each sample
//!   asks the proxy with `Cache-Control: no-cache` (a cold answer) and the three
//!   simulators directly (concurrently, like the proxy's fan-out) for the same
//!   question, and reports proxy latency − the slowest direct latency, and proxy
//!   latency − the same request's slowest vCenter (from its `Server-Timing`). The
//!   simulators, the proxy and the client run in three processes, as deployed;
//!   a second row times the same answer served from the cache: the extra hop
//!   alone, the floor under the overhead.
//!   `miss_plain` runs the same with `[cache] compression = []`: the baseline for
//!   what making the compressed copies (after the answer, on a blocking thread)
//!   costs a miss.
//! * **Load reduction**: 1000 clients polling once a second for 30 s, 5 filters in 10
//!   encodings each, TTL 5 s: List Tasks requests per vCenter through the proxy
//!   versus the same clients going to every simulator directly.
//! * **Task waiters** (issue 12): 100 clients each polling Get Task for one task
//!   once a second for 30 s, TTL 5 s: Get requests per vCenter through the proxy
//!   versus the same waiters asking the task's vCenter directly.
//! * **Session churn**: 200 clients (2 users) logging in, listing and logging out on
//!   every poll: vCenter sessions opened per vCenter, proxy versus direct.
//! * **Watch streams** (issue 17, `watch`): 1000 watchers of one question; how
//!   long after simulated time advances every watcher has an event of it.
//! * **Soak** (issue 16; only with `VCPROXY_BENCH_ONLY=soak`): 5 minutes
//!   (`VCPROXY_SOAK_SECS`) of 40 clients in both users and all three protocols
//!   against vcproxy in a child process, the simulators injecting every fault and
//!   expiring sessions every 20 s, 300 silent sockets every 10 s: no answer that
//!   should have succeeded fails, RSS and file descriptors flat after warm-up.
//! * **Memory**: 10,000 distinct cached queries of 100 tasks each under a 256 MiB
//!   cache cap, in a fresh child process: RSS growth and the cache's weighed bytes.
//!
//! The small HTTP client used for the in-process scenarios is hyper-util's pooled
//! client (already a dependency of vcproxy; the test kit's `Http`, shared with the
//! integration tests): wrk is the well-kept generator for the throughput row, where
//! generator efficiency matters; the other rows count requests or measure one
//! request at a time, where a client inside the bench is simpler and exact.
//!
//! Here: the settings, the runner and the final table. A file per scenario
//! (`hit_path`, `hit_gzip`, `miss_path`, `load_reduction`, `task_waiters`,
//! `session_churn`, `memory`), and what
//! they use: `shared` (simulator set-up, counting, the poll loop), `stats`, `table`,
//! `process` (this binary's child processes) and `wrk_nginx` (the external tools of
//! the hit path).

mod hit_gzip;
mod hit_path;
mod load_reduction;
mod memory;
mod miss_path;
mod process;
mod session_churn;
mod shared;
mod soak;
mod stats;
mod table;
mod task_waiters;
mod watch;
mod wrk_nginx;

use process::{proxy_child, runtime, sims_child, HIT_CHILD, PROXY_CHILD, SIMS_CHILD};
use std::time::Instant;
use table::{machine, print_table};

// ---------------------------------------------------------------- settings

/// Durations and counts: the numbers, or a quick run.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub quick: bool,
    pub hit_runs: usize,
    pub hit_secs: u64,
    pub miss_samples: usize,
    pub poll_clients: usize,
    pub poll_secs: u64,
    pub churn_clients: usize,
    pub churn_polls: u64,
    pub memory_queries: usize,
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

// ---------------------------------------------------------------- main

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == HIT_CHILD) {
        hit_path::hit_child();
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
            .is_none_or(|o| o.split(',').any(|x| x == name))
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
        rows.extend(hit_path::hit_path(&settings, &rt));
    }
    if wanted("gzip") {
        eprintln!("== hit path, gzip");
        rows.extend(hit_gzip::hit_gzip(&settings, &rt));
    }
    if wanted("miss") {
        eprintln!("== miss path");
        rows.extend(rt.block_on(miss_path::miss_path(&settings, true)));
    }
    if wanted("miss_plain") {
        eprintln!("== miss path, compression off");
        rows.extend(rt.block_on(miss_path::miss_path(&settings, false)));
    }
    if wanted("load") {
        eprintln!("== load reduction");
        rows.extend(rt.block_on(load_reduction::load_reduction(&settings)));
    }
    if wanted("waiters") {
        eprintln!("== task waiters");
        rows.extend(rt.block_on(task_waiters::task_waiters(&settings)));
    }
    if wanted("watch") {
        eprintln!("== watch streams");
        rows.extend(rt.block_on(watch::watch(&settings)));
    }
    if wanted("churn") {
        eprintln!("== session churn");
        rows.extend(rt.block_on(session_churn::session_churn(&settings)));
    }
    // Only when asked for by name: it runs for minutes.
    if only
        .as_deref()
        .is_some_and(|o| o.split(',').any(|x| x == "soak"))
    {
        eprintln!("== soak");
        rows.extend(rt.block_on(soak::soak(&settings)));
    }
    if wanted("memory") {
        eprintln!("== memory");
        rows.extend(memory::memory(&settings, &rt));
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
