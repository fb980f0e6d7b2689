//! The hit path with `Accept-Encoding: gzip` (issue 13): vcproxy's stored gzip copy
//! against Varnish storing gzip (`beresp.do_gzip`) and nginx gzipping each hit
//! (`gzip on`), all three serving the same cached 100-task answer on one core, wrk
//! on the other; and the JSON-RPC answer of the same tasks, gzipped as three
//! members, against the `/rest` one.

use crate::hit_path::{hit_path_query, hit_sim_config, jsonrpc_setup, spawn_hit_child};
use crate::shared::lossy;
use crate::stats::median;
use crate::table::Row;
use crate::wrk_nginx::{
    find_nginx, find_varnishd, have, run_wrk_with, start_nginx, start_varnish, WrkResult,
};
use crate::Settings;
use http::Method;
use std::io::Read;
use vcproxy::sim;
use vcproxy::Family;
use vcproxy_testkit::{start_sims, Http, SESSION};

const GZIP: &str = "Accept-Encoding: gzip";

/// What one server sends for the hit path's question with `accept`: status, the
/// answer's bytes on the wire, its `Content-Encoding`, and the body decoded.
struct Seen {
    status: u16,
    wire: usize,
    coding: Option<String>,
    decoded: Vec<u8>,
    cache: String,
}

async fn ask(
    http: &Http,
    path: &str,
    sid: &str,
    accept: &str,
    body: Option<&[u8]>,
) -> Result<Seen, String> {
    let method = if body.is_some() {
        Method::POST
    } else {
        Method::GET
    };
    let r = http
        .try_call(
            method,
            path,
            &[
                (SESSION, sid),
                ("accept-encoding", accept),
                ("content-type", "application/json"),
            ],
            body,
        )
        .await?;
    let coding = r.header("content-encoding").map(str::to_owned);
    let decoded = match coding.as_deref() {
        Some("gzip") => {
            let mut out = Vec::new();
            flate2::read::MultiGzDecoder::new(&r.body[..])
                .read_to_end(&mut out)
                .map_err(|e| format!("gunzip: {e}"))?;
            out
        }
        Some("zstd") => {
            zstd::stream::decode_all(&r.body[..]).map_err(|e| format!("unzstd: {e}"))?
        }
        _ => r.body.to_vec(),
    };
    let cache = r
        .header("vcproxy-cache")
        .or(r.header("x-cache-status"))
        .unwrap_or("")
        .to_owned();
    Ok(Seen {
        status: r.status.as_u16(),
        wire: r.body.len(),
        coding,
        decoded,
        cache,
    })
}

/// Asks until the answer comes in `coding` (vcproxy makes its copies just after the
/// fetch; the others compress on their first hit or miss), checking that it decodes
/// to `identity`: the bytes on the wire.
async fn warm(
    http: &Http,
    path: &str,
    sid: &str,
    coding: &str,
    body: Option<&[u8]>,
    identity: &[u8],
) -> Result<usize, String> {
    for _ in 0..200 {
        let seen = ask(http, path, sid, coding, body).await?;
        if seen.status != 200 {
            return Err(format!("{path}: {} {}", seen.status, lossy(&seen.decoded)));
        }
        if seen.coding.as_deref() == Some(coding) {
            if seen.decoded != identity {
                return Err(format!(
                    "{path}: the {coding} answer does not decode to the identity bytes"
                ));
            }
            return Ok(seen.wire);
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    Err(format!("{path}: never answered in {coding}"))
}

pub fn hit_gzip(s: &Settings, rt: &tokio::runtime::Runtime) -> Vec<Row> {
    const NAME_V: &str = "hit path, gzip (Accept-Encoding: gzip, 100-task /rest): rps vs Varnish";
    const NAME_N: &str = "hit path, gzip: rps vs nginx gzip on";
    const NAME_P99: &str = "hit path, gzip: p99 latency";
    const NAME_BYTES: &str = "hit path, gzip: bytes per answer";
    const NAME_RPC: &str = "hit path, gzip, JSON-RPC (same 100 tasks): rps vs /rest gzip";
    const TARGET_V: &str = ">= 1.3 x Varnish";
    const TARGET_N: &str = "> nginx gzip";
    if !have("wrk") || !have("taskset") {
        return vec![Row::failed(
            NAME_V,
            "wrk/taskset not installed: run benches/nginx/setup.sh",
            TARGET_V,
        )];
    }
    let (_child, addr, sid, identity_len) = match spawn_hit_child() {
        Ok(c) => c,
        Err(e) => return vec![Row::failed(NAME_V, e, TARGET_V)],
    };
    let path = hit_path_query();
    let vc = Http::new(format!("http://{addr}"));

    // vcproxy: the identity answer, then its stored copies.
    let sizes = rt.block_on(async {
        let identity = ask(&vc, &path, &sid, "identity", None).await?;
        if identity.wire != identity_len {
            return Err(format!("identity answer of {} bytes", identity.wire));
        }
        let gz = warm(&vc, &path, &sid, "gzip", None, &identity.decoded).await?;
        let zs = warm(&vc, &path, &sid, "zstd", None, &identity.decoded).await?;
        Ok::<_, String>((identity.decoded, gz, zs))
    });
    let (identity, vc_gz_len, vc_zstd_len) = match sizes {
        Ok(v) => v,
        Err(e) => return vec![Row::failed(NAME_V, e, TARGET_V)],
    };

    // The JSON-RPC answer of the same tasks, gzipped.
    let every = serde_json::json!({"filter_spec": {"services": sim::service_ids()}});
    let rpc = jsonrpc_setup(rt, &addr, &sid, &every, 100, "gzip").and_then(|(script, _)| {
        let call = std::fs::read_to_string(&script).map_err(|e| e.to_string())?;
        let body = call
            .split("[==[")
            .nth(1)
            .and_then(|b| b.split("]==]").next())
            .ok_or("cannot read the call back from the wrk script")?
            .to_owned();
        let plain = rt.block_on(ask(&vc, "/api", &sid, "identity", Some(body.as_bytes())))?;
        let gz = rt.block_on(warm(
            &vc,
            "/api",
            &sid,
            "gzip",
            Some(body.as_bytes()),
            &plain.decoded,
        ))?;
        Ok((script, plain.wire, gz))
    });

    // nginx and Varnish in front of one identical simulator in this process.
    let sims = rt.block_on(start_sims(vec![hit_sim_config()]));
    let upstream = sims[0].addr();
    let alt_sid = rt.block_on(Http::new(sims[0].base_url()).try_session(
        Family::Rest,
        sim::DEFAULT_USER,
        sim::DEFAULT_PASSWORD,
    ));
    let alt_sid = match alt_sid {
        Ok(s) => s,
        Err(e) => return vec![Row::failed(NAME_V, e, TARGET_V)],
    };
    let nginx = find_nginx()
        .ok_or_else(|| "nginx not installed: run benches/nginx/setup.sh".to_owned())
        .and_then(|bin| start_nginx(&bin, upstream));
    let varnish = find_varnishd()
        .ok_or_else(|| "varnish not installed: run benches/nginx/setup.sh".to_owned())
        .and_then(|bin| start_varnish(&bin, upstream));
    let warm_alt = |base: String, what: &str| -> Result<usize, String> {
        let http = Http::new(base);
        rt.block_on(async {
            // A miss fills the cache (identity for nginx, gzip for Varnish), then the
            // gzip answer must be a hit.
            let _ = ask(&http, &path, &alt_sid, "gzip", None).await?;
            // Its own identity answer is the reference (the same simulator set-up
            // as the hit child's, asked directly rather than through vcproxy).
            let own = ask(&http, &path, &alt_sid, "identity", None).await?;
            if own.coding.is_some() || own.decoded.len() != identity.len() {
                return Err(format!(
                    "{what}: identity answer of {} bytes ({:?}), vcproxy's is {}",
                    own.decoded.len(),
                    own.coding,
                    identity.len()
                ));
            }
            let len = warm(&http, &path, &alt_sid, "gzip", None, &own.decoded).await?;
            let seen = ask(&http, &path, &alt_sid, "gzip", None).await?;
            if seen.cache != "HIT" {
                return Err(format!(
                    "{what}: cache status {:?} after warming",
                    seen.cache
                ));
            }
            Ok(len)
        })
    };
    let nginx_gz = nginx.as_ref().map_err(Clone::clone).and_then(|n| {
        warm_alt(format!("http://{}", n.gzip_addr), "nginx").map(|len| (n.gzip_addr, len))
    });
    let varnish_gz = varnish
        .as_ref()
        .map_err(Clone::clone)
        .and_then(|v| warm_alt(format!("http://{}", v.addr), "varnish").map(|len| (v.addr, len)));

    // Rounds: each server in turn, medians over the rounds.
    let vc_url = format!("http://{addr}{path}");
    let mut runs: [Vec<WrkResult>; 4] = Default::default();
    let mut errors = Vec::new();
    for _ in 0..s.hit_runs {
        let mut run =
            |i: usize, url: &str, sid: &str, script: Option<&std::path::Path>| match run_wrk_with(
                url,
                sid,
                s.hit_secs,
                script,
                &[GZIP],
            ) {
                Ok(r) => runs[i].push(r),
                Err(e) => errors.push(e),
            };
        run(0, &vc_url, &sid, None);
        if let Ok((a, _)) = &varnish_gz {
            run(1, &format!("http://{a}{path}"), &alt_sid, None);
        }
        if let Ok((a, _)) = &nginx_gz {
            run(2, &format!("http://{a}{path}"), &alt_sid, None);
        }
        if let Ok((script, _, _)) = &rpc {
            run(3, &format!("http://{addr}/api"), &sid, Some(script));
        }
    }
    if let Ok((script, _, _)) = &rpc {
        let _ = std::fs::remove_file(script);
    }
    for e in &errors {
        eprintln!("hit gzip: {e}");
    }
    for (who, r) in ["vcproxy gzip", "varnish gzip", "nginx gzip", "rpc gzip"]
        .iter()
        .zip(&runs)
    {
        for r in r {
            eprintln!(
                "hit gzip run: {who:<13} {:>9.0} rps  p50 {:.3} ms  p99 {:.3} ms  errors {}",
                r.rps, r.p50_ms, r.p99_ms, r.errors
            );
        }
    }
    let med = |runs: &[WrkResult], f: fn(&WrkResult) -> f64| {
        median(&runs.iter().map(f).collect::<Vec<_>>())
    };
    let errs = |runs: &[WrkResult]| runs.iter().map(|r| r.errors).sum::<u64>();
    if runs[0].is_empty() {
        return vec![Row::failed(NAME_V, errors.join("; "), TARGET_V)];
    }
    let (rps, p99) = (med(&runs[0], |r| r.rps), med(&runs[0], |r| r.p99_ms));
    let ours = format!(
        "{rps:.0} rps ({vc_gz_len} B gzip, p99 {p99:.2} ms, median of {}, {} errors)",
        runs[0].len(),
        errs(&runs[0])
    );
    let mut rows = Vec::new();
    let mut p99s = Vec::new();
    for (i, name, target, alt, factor) in [
        (1, NAME_V, TARGET_V, &varnish_gz, 1.3),
        (2, NAME_N, TARGET_N, &nginx_gz, 1.0),
    ] {
        match (alt, runs[i].is_empty()) {
            (Err(e), _) => rows.push(Row::failed(name, e.clone(), target)),
            (Ok(_), true) => rows.push(Row::failed(name, errors.join("; "), target)),
            (Ok((_, len)), false) => {
                let (a_rps, a_p99) = (med(&runs[i], |r| r.rps), med(&runs[i], |r| r.p99_ms));
                let who = if i == 1 {
                    "Varnish do_gzip"
                } else {
                    "nginx gzip on (level 1)"
                };
                p99s.push((who, a_p99));
                let met = if factor > 1.0 {
                    rps >= factor * a_rps
                } else {
                    rps > a_rps
                };
                rows.push(Row::new(
                    name,
                    ours.clone(),
                    format!(
                        "{who}: {a_rps:.0} rps ({len} B, p99 {a_p99:.2} ms, {} errors)",
                        errs(&runs[i])
                    ),
                    format!("{:.2}", rps / a_rps),
                    target,
                    Some(met && errs(&runs[0]) == 0),
                ));
            }
        }
    }
    if !p99s.is_empty() {
        let best_alt = p99s.iter().map(|(_, p)| *p).fold(f64::INFINITY, f64::min);
        rows.push(Row::new(
            NAME_P99,
            format!("{p99:.3} ms"),
            p99s.iter()
                .map(|(w, p)| format!("{w}: {p:.3} ms"))
                .collect::<Vec<_>>()
                .join("; "),
            format!("{:.2}", p99 / best_alt),
            "<= Varnish and <= nginx",
            Some(p99 <= best_alt),
        ));
    }
    rows.push(Row::new(
        NAME_BYTES,
        format!("identity {identity_len} B; gzip-6 {vc_gz_len} B; zstd-3 {vc_zstd_len} B"),
        format!(
            "Varnish gzip {}; nginx gzip {}",
            varnish_gz
                .as_ref()
                .map_or("n/a".into(), |(_, l)| format!("{l} B")),
            nginx_gz
                .as_ref()
                .map_or("n/a".into(), |(_, l)| format!("{l} B")),
        ),
        format!("{:.1}x", identity_len as f64 / vc_gz_len as f64),
        "(info)",
        None,
    ));
    match (&rpc, runs[3].is_empty()) {
        (Err(e), _) => rows.push(Row::failed(NAME_RPC, e.clone(), ">= 0.90 x /rest gzip")),
        (Ok(_), true) => rows.push(Row::failed(
            NAME_RPC,
            errors.join("; "),
            ">= 0.90 x /rest gzip",
        )),
        (Ok((_, plain_len, gz_len)), false) => {
            let r_rps = med(&runs[3], |r| r.rps);
            rows.push(Row::new(
                NAME_RPC,
                format!(
                    "{r_rps:.0} rps ({gz_len} B gzip of {plain_len} B, p99 {:.2} ms, {} errors)",
                    med(&runs[3], |r| r.p99_ms),
                    errs(&runs[3])
                ),
                format!("/rest gzip: {rps:.0} rps ({vc_gz_len} B)"),
                format!("{:.2}", r_rps / rps),
                ">= 0.90 x /rest gzip",
                Some(r_rps >= 0.9 * rps && errs(&runs[3]) == 0),
            ));
        }
    }
    drop(nginx);
    drop(varnish);
    rows
}
