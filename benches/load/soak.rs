//! Soak (issue 16): minutes of mixed load against vcproxy in a child process while
//! the simulators inject faults (latency, 503s, 500s, hangs, truncated answers,
//! sessions expiring) and floods of silent sockets arrive; every answer is
//! classified, and the proxy's RSS and open file descriptors are sampled.
//!
//! An answer "that should have succeeded" and did not is a failure: anything but a
//! success, a vCenter's own error passed through (named in `vcproxy-upstream`), or
//! the proxy's 503 naming the vCenter that failed. Transport errors and timeouts at
//! the client are failures too.

use crate::process::spawn_proxy_child;
use crate::shared::shutdown_sims;
use crate::table::Row;
use crate::Settings;
use http::Method;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use vcproxy::sim::{self, Faults};
use vcproxy::Family;
use vcproxy_testkit::{config_toml, start_sims, Http, SESSION};

/// The simulators' faults: every kind, at rates that make each happen hundreds of
/// times in five minutes.
fn faults() -> Faults {
    Faults {
        latency: Duration::from_millis(20),
        jitter: Duration::from_millis(20),
        error_rate: 0.02,
        http500_rate: 0.01,
        hang_rate: 0.005,
        truncate_rate: 0.01,
        ..Faults::default()
    }
}

#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    /// vCenter failures passed on as they should be.
    faults: AtomicU64,
    /// Anything else.
    failed: AtomicU64,
    /// The first few failures, for the report.
    examples: std::sync::Mutex<Vec<String>>,
}

impl Tally {
    fn record(&self, what: &str, r: Result<vcproxy_testkit::Resp, String>) {
        match r {
            Ok(r) if r.status.is_success() || r.status == 304 => {
                self.ok.fetch_add(1, Ordering::Relaxed);
            }
            Ok(r)
                if r.header("vcproxy-upstream").is_some()
                    || (r.status == 503 && r.text().contains("vc")) =>
            {
                self.faults.fetch_add(1, Ordering::Relaxed);
            }
            Ok(r) => self.fail(format!("{what}: {} {}", r.status, r.text())),
            Err(e) => self.fail(format!("{what}: {e}")),
        }
    }

    fn fail(&self, e: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let mut ex = self.examples.lock().unwrap();
        if ex.len() < 5 {
            ex.push(e.chars().take(300).collect());
        }
    }
}

/// The proxy child's resident memory (KiB) and open file descriptors.
fn sample(pid: u32) -> (u64, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|r| r.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
    (rss, fds)
}

pub async fn soak(s: &Settings) -> Vec<Row> {
    const NAME: &str = "soak: mixed load, vCenter faults, silent-socket floods";
    const TARGET: &str = "0 failures; RSS and fds flat after warm-up";
    let secs: u64 = std::env::var("VCPROXY_SOAK_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if s.quick { 30 } else { 300 });
    let sims = start_sims(
        (1..=3)
            .map(|seed| sim::SimConfig {
                faults: faults(),
                ..crate::shared::sim_config(300, seed, Faults::default())
            })
            .collect(),
    )
    .await;
    let urls: Vec<String> = sims.iter().map(|s| s.base_url()).collect();
    let toml = config_toml(
        &format!(
            "{}[cache]\nttl = \"2s\"\nerror_ttl = \"0s\"\n",
            vcproxy_testkit::LISTEN
        ),
        &urls,
        |_| "max_idle_connections = 64\nrequest_timeout = \"2s\"".to_owned(),
    );
    let (kid, addr, _admin) = match spawn_proxy_child(&toml) {
        Ok(c) => c,
        Err(e) => return vec![Row::failed(NAME, e, TARGET)],
    };
    let pid = kid.0.id();
    let base = format!("http://{addr}");
    let tally = Arc::new(Tally::default());
    let deadline = Instant::now() + Duration::from_secs(secs);
    let task_ids: Arc<Vec<String>> = Arc::new(sims.iter().flat_map(|s| s.task_ids()).collect());
    let services: Vec<&'static str> = sim::service_ids().into_iter().take(5).collect();

    // 40 clients, half of each user, each in its own loop.
    let mut clients = Vec::new();
    for c in 0..40usize {
        let (tally, ids, services) = (tally.clone(), task_ids.clone(), services.clone());
        let http = Http::new(base.clone());
        clients.push(tokio::spawn(async move {
            let user = if c % 2 == 0 {
                (sim::DEFAULT_USER, sim::DEFAULT_PASSWORD)
            } else {
                vcproxy_testkit::OPERATOR
            };
            let family = if c % 3 == 0 { Family::Api } else { Family::Rest };
            let mut sid = None;
            let mut i = c;
            while Instant::now() < deadline {
                i += 1;
                let Some(s) = sid.clone() else {
                    match http.try_session(family, user.0, user.1).await {
                        Ok(s) => sid = Some(s),
                        Err(e) if e.contains("503") || e.contains("500") => {
                            tally.faults.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        Err(e) => tally.fail(format!("log-in: {e}")),
                    }
                    continue;
                };
                let svc = services[i % services.len()];
                let r = match i % 10 {
                    0 => {
                        // Log out and in again next round.
                        let path = match family {
                            Family::Rest => "/rest/com/vmware/cis/session",
                            _ => "/api/session",
                        };
                        sid = None;
                        http.try_call(Method::DELETE, path, &[(SESSION, &s)], None)
                            .await
                    }
                    1..=3 => {
                        let id = &ids[i % ids.len()];
                        http.try_call(
                            Method::GET,
                            &format!("/api/cis/tasks/{id}"),
                            &[(SESSION, &s)],
                            None,
                        )
                        .await
                        // A task the user may not see: vCenter's own 404 (or 403).
                        .map(|r| {
                            if r.status == 404 || r.status == 403 {
                                vcproxy_testkit::Resp {
                                    status: http::StatusCode::OK,
                                    ..r
                                }
                            } else {
                                r
                            }
                        })
                    }
                    4 => {
                        let body = serde_json::json!({"filter_spec": {"services": [svc]}});
                        http.try_call(
                            Method::POST,
                            "/api",
                            &[("content-type", "application/json")],
                            Some(
                                serde_json::json!({"jsonrpc":"2.0","method":"invoke","id":"1",
                                    "params":{"serviceId":"com.vmware.cis.tasks","operationId":"list",
                                      "input":vcproxy_testkit::typed::list_input(&body),
                                      "ctx":{"securityCtx":Http::rpc_session(&s)}}})
                                .to_string()
                                .as_bytes(),
                            ),
                        )
                        .await
                        // JSON-RPC errors ride on 200: a vCenter's failure names it.
                        .map(|r| {
                            let t = r.text();
                            if t.contains("\"error\"") && !t.contains("vc") {
                                vcproxy_testkit::Resp {
                                    status: http::StatusCode::BAD_GATEWAY,
                                    ..r
                                }
                            } else {
                                r
                            }
                        })
                    }
                    _ => {
                        let gz = [(SESSION, s.as_str()), ("accept-encoding", "gzip")];
                        match family {
                            Family::Rest => {
                                http.try_call(
                                    Method::GET,
                                    &format!("/rest/cis/tasks?filter_spec.services={svc}"),
                                    &gz,
                                    None,
                                )
                                .await
                            }
                            _ => {
                                let body = format!(r#"{{"filter_spec":{{"services":["{svc}"]}}}}"#);
                                http.try_call(
                                    Method::POST,
                                    "/api/cis/tasks?action=list",
                                    &[gz[0], gz[1], ("content-type", "application/json")],
                                    Some(body.as_bytes()),
                                )
                                .await
                            }
                        }
                    }
                };
                tally.record("request", r);
            }
        }));
    }

    // Silent sockets: 300 every 10 s, each held 15 s without a byte.
    let flood = {
        let addr = addr.clone();
        tokio::spawn(async move {
            let mut opened = 0u64;
            while Instant::now() < deadline {
                let mut held = Vec::new();
                for _ in 0..300 {
                    if let Ok(c) = tokio::net::TcpStream::connect(&addr).await {
                        held.push(c);
                        opened += 1;
                    }
                }
                tokio::time::sleep(Duration::from_secs(10)).await;
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    drop(held);
                });
            }
            opened
        })
    };

    // Sampling; and every 20 s the vCenters expire every session, so the proxy must
    // log in again under load.
    let warm = Duration::from_secs(secs / 5);
    let started = Instant::now();
    let mut samples = Vec::new();
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(5).min(deadline - Instant::now())).await;
        samples.push((started.elapsed(), sample(pid)));
        if samples.len() % 4 == 0 {
            for s in &sims {
                s.expire_sessions();
            }
        }
    }
    for c in clients {
        let _ = c.await;
    }
    let opened = flood.await.unwrap_or(0);
    // After the flood's last sockets are gone and the proxy's deadlines have passed.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let end = sample(pid);
    drop(kid);
    shutdown_sims(sims).await;

    let after_warm: Vec<(u64, usize)> = samples
        .iter()
        .filter(|(t, _)| *t >= warm)
        .map(|(_, v)| *v)
        .collect();
    let (rss_warm, fds_warm) = after_warm.first().copied().unwrap_or(end);
    let rss_max = after_warm.iter().map(|v| v.0).max().unwrap_or(end.0);
    let (ok, faults, failed) = (
        tally.ok.load(Ordering::Relaxed),
        tally.faults.load(Ordering::Relaxed),
        tally.failed.load(Ordering::Relaxed),
    );
    for e in tally.examples.lock().unwrap().iter() {
        eprintln!("soak failure: {e}");
    }
    eprintln!(
        "soak: {secs} s, {ok} ok, {faults} vCenter faults passed on, {failed} failed, {opened} silent sockets; RSS {} -> {} KiB (max {rss_max}), fds {fds_warm} -> {}",
        rss_warm, end.0, end.1
    );
    let rss_growth = end.0 as i64 - rss_warm as i64;
    let flat = rss_growth < 32 * 1024 && end.1 <= fds_warm + 16;
    vec![Row::new(
        NAME,
        format!(
            "{secs} s: {ok} ok, {faults} vCenter faults passed on, {failed} failed; {opened} silent sockets"
        ),
        format!(
            "RSS {:.1} -> {:.1} MiB after warm-up (max {:.1}); fds {fds_warm} -> {}",
            rss_warm as f64 / 1024.0,
            end.0 as f64 / 1024.0,
            rss_max as f64 / 1024.0,
            end.1
        ),
        "",
        TARGET,
        Some(failed == 0 && flat && ok > 0),
    )]
}
