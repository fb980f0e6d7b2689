//! The hit path: one cached answer, vcproxy against nginx's `proxy_cache` under wrk,
//! saturated and paced.

use crate::process::{runtime, spawn_child, stdin_closed, Kid, HIT_CHILD};
use crate::shared::{lossy, realistic_faults, rest_count, sim_config, start_env, stop_env};
use crate::stats::median;
use crate::table::Row;
use crate::wrk_nginx::{find_nginx, have, run_wrk, start_nginx, WrkResult};
use crate::Settings;
use http::Method;
use std::io::Write;
use vcproxy::sim::{self, SimConfig};
use vcproxy::Family;
use vcproxy_testkit::{every_service_query, start_sims, Http, SESSION};

/// The simulator behind both servers of the hit path: 100 tasks, so that a list of
/// every service is the 100-task answer.
pub(crate) fn hit_sim_config() -> SimConfig {
    sim_config(100, 7, realistic_faults())
}

/// The hit path's question: every service, so every task of the simulator.
pub(crate) fn hit_path_query() -> String {
    format!("/rest/cis/tasks?{}", every_service_query())
}

/// A question as the official SDK asks it: a JSON-RPC `list` call on `POST /api`
/// with the session in the body; `filter` is the `/api` body.
fn jsonrpc_call(sid: &str, filter: &serde_json::Value) -> String {
    serde_json::json!({"jsonrpc":"2.0","method":"invoke","params":{
        "serviceId":"com.vmware.cis.tasks","operationId":"list",
        "input":vcproxy_testkit::typed::list_input(filter),
        "ctx":{"appCtx":{"opId":"e8b793bf-4eff-4848-8a5d-cede35a5cc2d"},
               "securityCtx":{"schemeId":"com.vmware.vapi.std.security.session_id","sessionId":sid}}},
        "id":"0"})
    .to_string()
}

/// Warms a JSON-RPC entry on the hit child (a miss, then a hit: `tasks` tasks) and
/// writes the wrk script that sends the call: the script's path and the answer's
/// size.
pub(crate) fn jsonrpc_setup(
    rt: &tokio::runtime::Runtime,
    addr: &str,
    sid: &str,
    filter: &serde_json::Value,
    want: usize,
    tag: &str,
) -> Result<(std::path::PathBuf, usize), String> {
    let call = jsonrpc_call(sid, filter);
    let http = Http::new(format!("http://{addr}"));
    let mut len = 0;
    for expect in ["miss", "hit"] {
        let r = rt.block_on(http.try_call(
            Method::POST,
            "/api",
            &[("content-type", "application/json")],
            Some(call.as_bytes()),
        ))?;
        let v: serde_json::Value =
            serde_json::from_slice(&r.body).map_err(|e| format!("JSON-RPC answer: {e}"))?;
        let tasks = v["result"]["output"].as_array().map_or(0, Vec::len);
        if r.status != 200 || tasks != want || r.cache() != expect {
            return Err(format!(
                "JSON-RPC warm-up: {} {} {tasks} tasks: {}",
                r.status,
                r.cache(),
                lossy(&r.body[..r.body.len().min(300)])
            ));
        }
        len = r.body.len();
    }
    let script = std::env::temp_dir().join(format!(
        "vcproxy-bench-rpc-{tag}-{}.lua",
        std::process::id()
    ));
    let lua = format!(
        "wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.body = [==[{call}]==]\n"
    );
    std::fs::write(&script, lua).map_err(|e| format!("wrk script: {e}"))?;
    Ok((script, len))
}

/// A one-task question on the hit child in `/rest`, warmed: its path, the task, and
/// the answer's size. The per-request cost of a protocol shows on a small answer,
/// where copying the body does not dominate.
fn one_task_setup(
    rt: &tokio::runtime::Runtime,
    addr: &str,
    sid: &str,
) -> Result<(String, String, usize), String> {
    let http = Http::new(format!("http://{addr}"));
    rt.block_on(async {
        let all = http
            .try_call(Method::GET, &hit_path_query(), &[(SESSION, sid)], None)
            .await?;
        let v: serde_json::Value = serde_json::from_slice(&all.body).map_err(|e| e.to_string())?;
        let task = v["value"][0]["key"]
            .as_str()
            .ok_or("no task in the hit answer")?
            .to_owned();
        let path = format!("/rest/cis/tasks?filter_spec.tasks={task}");
        let mut len = 0;
        for expect in ["miss", "hit"] {
            let r = http
                .try_call(Method::GET, &path, &[(SESSION, sid)], None)
                .await?;
            if r.status != 200 || rest_count(&r.body) != Some(1) || r.cache() != expect {
                return Err(format!("one-task warm-up: {} {}", r.status, lossy(&r.body)));
            }
            len = r.body.len();
        }
        Ok((path, task, len))
    })
}

/// Child process: a simulator and vcproxy on a one-worker runtime (the parent pins
/// this process to one core). Prints `READY <addr> <session> <body bytes>`, serves
/// until its stdin closes.
pub fn hit_child() {
    let rt = runtime(1);
    rt.block_on(async {
        let env = start_env(
            vec![hit_sim_config()],
            "[cache]\nttl = \"1h\"\nstale_while_revalidate = \"0s\"",
        )
        .await;
        let http = env.http.clone();
        let sid = http
            .try_session(Family::Rest, sim::DEFAULT_USER, sim::DEFAULT_PASSWORD)
            .await
            .expect("login");
        let path = hit_path_query();
        let mut body_len = 0;
        for expect in ["miss", "hit"] {
            let r = http
                .try_call(Method::GET, &path, &[(SESSION, &sid)], None)
                .await
                .expect("warm-up");
            assert_eq!(r.status, 200, "{}", lossy(&r.body));
            assert_eq!(r.cache(), expect);
            assert_eq!(rest_count(&r.body), Some(100));
            body_len = r.body.len();
        }
        println!("READY {} {sid} {body_len}", env.addr);
        std::io::stdout().flush().unwrap();
        stdin_closed().await;
        stop_env(env).await;
    });
}

/// Starts the hit child pinned to core 0: the child, its address, an administrator's
/// session id on it, and the cached answer's size.
pub(crate) fn spawn_hit_child() -> Result<(Kid, String, String, usize), String> {
    let (kid, words) = spawn_child(Some("0"), &[HIT_CHILD], &[])?;
    match words.as_slice() {
        [addr, sid, len] => Ok((kid, addr.clone(), sid.clone(), len.parse().unwrap_or(0))),
        _ => Err(format!("vcproxy child did not start: {words:?}")),
    }
}

pub fn hit_path(s: &Settings, rt: &tokio::runtime::Runtime) -> Vec<Row> {
    const NAME: &str = "hit path: rps (64 conns, 100-task /rest, 1 core)";
    const NAME_P50: &str = "hit path: p50 latency";
    const NAME_P99: &str = "hit path: p99 latency";
    const NAME_PACED: &str = "hit path, paced (2 ms pause per connection): latency";
    const NAME_RPC: &str = "hit path, JSON-RPC (POST /api, same 100 tasks): rps";
    const NAME_RPC1: &str = "hit path, 1-task answer: JSON-RPC rps vs /rest rps";
    const TARGET_RPC: &str = ">= 0.90 x /rest hit";
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
            let sid = sim
                .try_session(Family::Rest, sim::DEFAULT_USER, sim::DEFAULT_PASSWORD)
                .await?;
            let mut len = 0;
            for expect in ["MISS", "HIT"] {
                let r = front
                    .try_call(Method::GET, &hit_path_query(), &[(SESSION, &sid)], None)
                    .await?;
                if r.status != 200 || rest_count(&r.body) != Some(100) {
                    return Err(format!("nginx answered {}: {}", r.status, lossy(&r.body)));
                }
                let status = r.header("x-cache-status").unwrap_or("");
                if status != expect {
                    return Err(format!("nginx cache status {status:?}, expected {expect}"));
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
    let every = serde_json::json!({"filter_spec": {"services": sim::service_ids()}});
    let rpc = jsonrpc_setup(rt, &addr, &sid, &every, 100, "all");
    let one = one_task_setup(rt, &addr, &sid).and_then(|(path, task, len)| {
        let filter = serde_json::json!({"filter_spec": {"tasks": [task]}});
        let (script, rpc_len) = jsonrpc_setup(rt, &addr, &sid, &filter, 1, "one")?;
        Ok((format!("http://{addr}{path}"), len, script, rpc_len))
    });
    let mut rpc_runs = Vec::new();
    let mut one_rest_runs = Vec::new();
    let mut one_rpc_runs = Vec::new();
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
            // The same answer in JSON-RPC, alternated with the /rest runs.
            if let (None, Ok((rpc_script, _))) = (script, &rpc) {
                let url = format!("http://{addr}/api");
                match run_wrk(&url, &sid, s.hit_secs, Some(rpc_script)) {
                    Ok(r) => rpc_runs.push(r),
                    Err(e) => errors.push(e),
                }
            }
            // A one-task answer in both protocols, alternated.
            if let (None, Ok((rest_url, _, rpc_script, _))) = (script, &one) {
                match run_wrk(rest_url, &sid, s.hit_secs, None) {
                    Ok(r) => one_rest_runs.push(r),
                    Err(e) => errors.push(e),
                }
                let url = format!("http://{addr}/api");
                match run_wrk(&url, &sid, s.hit_secs, Some(rpc_script)) {
                    Ok(r) => one_rpc_runs.push(r),
                    Err(e) => errors.push(e),
                }
            }
        }
    }
    if let Ok((rpc_script, _)) = &rpc {
        let _ = std::fs::remove_file(rpc_script);
    }
    if let Ok((_, _, rpc_script, _)) = &one {
        let _ = std::fs::remove_file(rpc_script);
    }
    let _ = std::fs::remove_file(&pace);
    for e in &errors {
        eprintln!("hit path: {e}");
    }
    for (who, runs) in [
        ("vcproxy", &vc_runs),
        ("vcproxy rpc", &rpc_runs),
        ("1-task rest", &one_rest_runs),
        ("1-task rpc", &one_rpc_runs),
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
    let rpc_row = match (&rpc, rpc_runs.is_empty()) {
        (Err(e), _) => Row::failed(NAME_RPC, e.clone(), TARGET_RPC),
        (Ok(_), true) => Row::failed(NAME_RPC, errors.join("; "), TARGET_RPC),
        (Ok((_, rpc_len)), false) => {
            let rpc_err: u64 = rpc_runs.iter().map(|r| r.errors).sum();
            let rpc_rps = med(&rpc_runs, |r| r.rps);
            Row::new(
                NAME_RPC,
                // The typed answer is about twice the /rest one's bytes, and the hit
                // path is bound by copying them: bytes per second say whether the
                // protocol itself costs more.
                format!(
                    "{rpc_rps:.0} rps ({rpc_len} B body, {:.0} MB/s, p99 {:.3} ms, median of {}, {rpc_err} errors)",
                    rpc_rps * *rpc_len as f64 / 1e6,
                    med(&rpc_runs, |r| r.p99_ms),
                    rpc_runs.len()
                ),
                format!(
                    "/rest hit path: {vc_rps:.0} rps ({body_len} B body, {:.0} MB/s)",
                    vc_rps * body_len as f64 / 1e6
                ),
                format!("{:.2}", rpc_rps / vc_rps),
                TARGET_RPC,
                Some(rpc_rps >= 0.9 * vc_rps && rpc_err == 0),
            )
        }
    };
    let one_row = match (&one, one_rest_runs.is_empty() || one_rpc_runs.is_empty()) {
        (Err(e), _) => Row::failed(NAME_RPC1, e.clone(), TARGET_RPC),
        (Ok(_), true) => Row::failed(NAME_RPC1, errors.join("; "), TARGET_RPC),
        (Ok((_, rest_len, _, rpc_len)), false) => {
            let errs: u64 = one_rest_runs
                .iter()
                .chain(&one_rpc_runs)
                .map(|r| r.errors)
                .sum();
            let (rest_rps, rpc_rps) = (
                med(&one_rest_runs, |r| r.rps),
                med(&one_rpc_runs, |r| r.rps),
            );
            Row::new(
                NAME_RPC1,
                format!(
                    "JSON-RPC {rpc_rps:.0} rps ({rpc_len} B body, median of {}, {errs} errors)",
                    one_rpc_runs.len()
                ),
                format!("/rest {rest_rps:.0} rps ({rest_len} B body)"),
                format!("{:.2}", rpc_rps / rest_rps),
                TARGET_RPC,
                Some(rpc_rps >= 0.9 * rest_rps && errs == 0),
            )
        }
    };
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
            rows.push(rpc_row);
            rows.push(one_row);
            rows
        }
        (Err(e), _) => vec![
            rpc_row,
            one_row,
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
        (Ok(_), true) => vec![
            Row::new(
                NAME,
                vc_rps_s,
                format!("nginx runs failed: {}", errors.join("; ")),
                "",
                TARGET_RPS,
                None,
            ),
            rpc_row,
            one_row,
        ],
    }
}
