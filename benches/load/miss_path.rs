//! The miss path: a cold answer from three vCenters, the proxy against asking them
//! directly, in three processes as deployed; and the same answer from the cache.

use crate::process::{spawn_child, spawn_proxy_child, SIMS_CHILD};
use crate::shared::{lossy, proxy_toml, rest_count};
use crate::stats::{median, ms, percentile};
use crate::table::Row;
use crate::Settings;
use futures_util::future::join_all;
use http::StatusCode;
use std::time::{Duration, Instant};
use vcproxy::sim;
use vcproxy::Family;
use vcproxy_testkit::{every_service_query, ten_encodings, Http, RestQuery};

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

/// The miss path; with `compression` false, the proxy keeps no compressed copies
/// (`[cache] compression = []`), the baseline of what making them costs a miss, and
/// every row's name says so.
pub async fn miss_path(s: &Settings, compression: bool) -> Vec<Row> {
    let label = |name: &str| {
        if compression {
            name.to_owned()
        } else {
            format!("{name} [compression off]")
        }
    };
    // Three processes, as in a deployment: the vCenters, the proxy, and the client
    // (this one). In one process they would share one tokio runtime, and the
    // proxy's merge would hold up the client's and the simulators' tasks.
    let children = spawn_child(None, &[SIMS_CHILD, "3", "1000"], &[]).and_then(|(sims, urls)| {
        let extra = if compression {
            "[merge]\non_too_many = \"return_all\""
        } else {
            "[merge]\non_too_many = \"return_all\"\n[cache]\ncompression = []"
        };
        let toml = proxy_toml(&urls, extra);
        let (proxy, addr, _) = spawn_proxy_child(&toml)?;
        Ok((sims, urls, proxy, addr))
    });
    let (_sims, urls, _proxy, addr) = match children {
        Ok(c) => c,
        Err(e) => return vec![Row::failed(&label("miss path"), e, "overhead <= 2 ms")],
    };
    let front = Http::new(format!("http://{addr}"));
    let direct: Vec<Http> = urls.iter().map(|u| Http::new(u.clone())).collect();
    let mut rows = Vec::new();
    let result = async {
        let sid = front
            .try_session(Family::Rest, sim::DEFAULT_USER, sim::DEFAULT_PASSWORD)
            .await?;
        let mut direct_sids = Vec::new();
        for d in &direct {
            direct_sids.push(
                d.try_session(Family::Rest, sim::DEFAULT_USER, sim::DEFAULT_PASSWORD)
                    .await?,
            );
        }
        let svc = sim::service_ids()[0].to_string();
        let cases = [
            (
                "miss path: every task (3 x 1000 merged)",
                RestQuery::query(every_service_query()),
            ),
            (
                "miss path: 1 service, 2 statuses",
                ten_encodings(&svc).swap_remove(0),
            ),
        ];
        for (name, q) in cases {
            let name = label(name);
            let name = name.as_str();
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
                            .try_rest_query(&sid, &q, &[("cache-control", "no-cache")])
                            .await?;
                        let took = t.elapsed();
                        match (r.status, r.cache()) {
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
                            let r = d.try_rest_query(sid, &q, &[]).await?;
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
                let timing = r.header("server-timing").unwrap_or("");
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
                let r = front.try_rest_query(&sid, &q, &[]).await?;
                let took = ms(t.elapsed());
                if r.status != StatusCode::OK || r.cache() != "hit" {
                    return Err(format!("floor: {} {:?}", r.status, r.cache()));
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
        rows.push(Row::failed(&label("miss path"), e, "overhead <= 2 ms"));
    }
    rows
}
