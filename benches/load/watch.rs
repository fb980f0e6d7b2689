//! Watch streams: 1000 watchers of one question, simulated time advanced ten times
//! a second; for each advance, the time until every watcher has received an event
//! of it, from the advance (which includes the wait for the hub's next refresh, at
//! most one `cache.ttl`, 20 ms here) and from the refresh that found it: the moment
//! the first simulator counted that refresh's List Tasks request (so the fetch
//! itself is counted too).

use crate::table::Row;
use crate::Settings;
use http::Method;
use http_body_util::BodyExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use vcproxy::Family;
use vcproxy_testkit::{every_service_query, sim_config, Env};

const WATCHERS: usize = 1000;

pub async fn watch(s: &Settings) -> Vec<Row> {
    const NAME: &str = "watch: advance -> event at all 1000 watchers (TTL 20 ms)";
    const TARGET: &str = "<= 50 ms after the refresh";
    let rounds = if s.quick { 20 } else { 100 };
    let env = Env::start(
        vec![sim_config(60, 11), sim_config(60, 12)],
        "[cache]\nttl = \"20ms\"\nstale_while_revalidate = \"0s\"",
        "",
    )
    .await;
    let result = async {
        let sid = env
            .http
            .try_session(
                Family::Api,
                vcproxy::sim::DEFAULT_USER,
                vcproxy::sim::DEFAULT_PASSWORD,
            )
            .await?;
        let path = format!("/vcproxy/v1/tasks/watch?{}", every_service_query());
        let rss_before = crate::memory::rss_kib(std::process::id()).0;
        let counters: Arc<Vec<AtomicU64>> =
            Arc::new((0..WATCHERS).map(|_| AtomicU64::new(0)).collect());
        let mut ready = Vec::new();
        for i in 0..WATCHERS {
            let (http, path, sid, counters) = (
                env.http.clone(),
                path.clone(),
                sid.clone(),
                counters.clone(),
            );
            let (tx, rx) = tokio::sync::oneshot::channel();
            ready.push(rx);
            tokio::spawn(async move {
                let req =
                    http.request(Method::GET, &path, &[("vmware-api-session-id", &sid)], None);
                let Ok(r) = http.send(req).await else { return };
                let mut body = r.into_body();
                let mut tx = Some(tx);
                let mut pending = Vec::new();
                while let Some(Ok(frame)) = body.frame().await {
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    pending.extend_from_slice(&data);
                    while let Some(end) = pending.windows(2).position(|w| w == b"\n\n") {
                        let f: Vec<u8> = pending.drain(..end + 2).collect();
                        if f.windows(16).any(|w| w == b"event: snapshot\n") {
                            if let Some(tx) = tx.take() {
                                let _ = tx.send(());
                            }
                        } else if f.starts_with(b"id: ") {
                            counters[i].fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            });
        }
        for r in ready {
            r.await
                .map_err(|_| "a watcher did not get its snapshot".to_owned())?;
        }
        let rss_after = crate::memory::rss_kib(std::process::id()).0;
        let per_watcher = rss_after.saturating_sub(rss_before) as f64 / WATCHERS as f64;
        let mut latencies = Vec::new();
        let mut spreads = Vec::new();
        let lists_of = |env: &Env| -> u64 {
            env.sims[0]
                .stats()
                .endpoint_total(vcproxy::sim::Endpoint::TasksList)
        };
        let mut quiet = 0;
        for _ in 0..rounds {
            let before: Vec<u64> = counters.iter().map(|c| c.load(Ordering::Relaxed)).collect();
            let lists_before = lists_of(&env);
            let t0 = Instant::now();
            for sim in &env.sims {
                sim.advance(Duration::from_secs(3));
            }
            let mut refresh = None;
            loop {
                if refresh.is_none() && lists_of(&env) > lists_before {
                    refresh = Some(t0.elapsed());
                }
                let got = counters
                    .iter()
                    .zip(&before)
                    .filter(|(c, b)| c.load(Ordering::Relaxed) > **b)
                    .count();
                if got == WATCHERS {
                    let all = t0.elapsed();
                    latencies.push(all);
                    spreads.push(all.saturating_sub(refresh.unwrap_or_default()));
                    break;
                }
                if t0.elapsed() > Duration::from_secs(1) {
                    quiet += 1;
                    break;
                }
                tokio::time::sleep(Duration::from_micros(250)).await;
            }
            let rest = Duration::from_millis(100).saturating_sub(t0.elapsed());
            tokio::time::sleep(rest).await;
        }
        Ok::<_, String>((latencies, spreads, quiet, per_watcher))
    }
    .await;
    let lists = env.upstream_lists();
    crate::shared::stop_env(env).await;
    let at = |v: &[Duration], q: f64| v[((v.len() - 1) as f64 * q) as usize].as_secs_f64() * 1000.0;
    match result {
        Err(e) => vec![Row::failed(NAME, e, TARGET)],
        Ok((mut l, mut spread, quiet, per_watcher)) if !l.is_empty() => {
            l.sort();
            spread.sort();
            let (p50, p99, max) = (at(&l, 0.5), at(&l, 0.99), at(&l, 1.0));
            let (s50, s99) = (at(&spread, 0.5), at(&spread, 0.99));
            vec![
                Row::new(
                    NAME,
                    format!(
                        "p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms over {} advances ({quiet} without a change); List Tasks per vCenter {lists:?}",
                        l.len()
                    ),
                    "",
                    "",
                    "(includes up to one TTL before the refresh)",
                    None,
                ),
                Row::new(
                    "watch: refresh (its List Tasks at vc1) -> event at all 1000 watchers",
                    format!("p50 {s50:.1} ms, p99 {s99:.1} ms"),
                    "",
                    "",
                    TARGET,
                    Some(s99 <= 50.0),
                ),
                Row::new(
                    "watch: memory per watcher (client and server side, one process)",
                    format!("{per_watcher:.1} KiB (RSS growth over 1000 open streams)"),
                    "",
                    "",
                    "bounded",
                    None,
                ),
            ]
        }
        Ok(_) => vec![Row::failed(NAME, "no advance produced an event", TARGET)],
    }
}
