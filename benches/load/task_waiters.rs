//! Task waiters: 100 clients each polling Get Task for one task once a second (what
//! govmomi's and the SDKs' task waiters do), Get requests per vCenter through the
//! proxy against the same waiters asking the task's vCenter directly.

use crate::shared::{
    delta, direct_cells, lossy, per_vcenter, realistic_faults, run_pollers, sim_config, start_env,
    stop_env,
};
use crate::table::Row;
use crate::Settings;
use std::sync::Arc;
use vcproxy::sim::{self, Endpoint};
use vcproxy::Family;
use vcproxy_testkit::{Env, Http};

const WAITERS: usize = 100;

/// Get Task requests each simulator has received in `/api`.
fn gets(env: &Env) -> Vec<u64> {
    env.sims
        .iter()
        .map(|s| s.stats().requests(Endpoint::TasksGet, Family::Api))
        .collect()
}

pub async fn task_waiters(s: &Settings) -> Vec<Row> {
    const NAME: &str = "task waiters: Get Task per vCenter";
    let ttl = 5u64;
    let polls = s.poll_secs;
    let target = format!("<= {polls} / {ttl} s TTL per vCenter");
    let env = start_env(
        (1..=3)
            .map(|seed| sim_config(1000, seed, realistic_faults()))
            .collect(),
        &format!("[cache]\nttl = \"{ttl}s\""),
    )
    .await;
    let result = async {
        // One task, on the second vCenter: the proxy has to find it.
        let task = env.sims[1].task_ids()[17].clone();
        let path = Arc::new(format!("/api/cis/tasks/{task}"));
        let front = env.http.clone();
        let sid = Arc::new(
            front
                .try_session(Family::Api, sim::DEFAULT_USER, sim::DEFAULT_PASSWORD)
                .await?,
        );
        let before = gets(&env);
        let poll = {
            let (front, path, sid) = (front.clone(), path.clone(), sid.clone());
            move |_c: usize, _n: u64| {
                let (front, path, sid) = (front.clone(), path.clone(), sid.clone());
                async move {
                    let r = front
                        .try_call(
                            http::Method::GET,
                            &path,
                            &[(vcproxy_testkit::SESSION, &sid)],
                            None,
                        )
                        .await?;
                    if r.status == 200 {
                        Ok(())
                    } else {
                        Err(format!("proxy {}: {}", r.status, lossy(&r.body)))
                    }
                }
            }
        };
        let (proxy_stats, proxy_elapsed) = run_pollers(WAITERS, polls, poll).await;
        let via_proxy = delta(&gets(&env), &before);

        // Directly: each waiter knows its task's vCenter and asks it.
        let owner = Http::for_sim(&env.sims[1]);
        let dsid = Arc::new(
            owner
                .try_session(Family::Api, sim::DEFAULT_USER, sim::DEFAULT_PASSWORD)
                .await?,
        );
        let before = gets(&env);
        let poll = move |_c: usize, _n: u64| {
            let (owner, path, sid) = (owner.clone(), path.clone(), dsid.clone());
            async move {
                let r = owner
                    .try_call(
                        http::Method::GET,
                        &path,
                        &[(vcproxy_testkit::SESSION, &sid)],
                        None,
                    )
                    .await?;
                if r.status == 200 {
                    Ok(())
                } else {
                    Err(format!("direct {}: {}", r.status, lossy(&r.body)))
                }
            }
        };
        let (direct_stats, direct_elapsed) = run_pollers(WAITERS, polls, poll).await;
        let direct = delta(&gets(&env), &before);

        let bound = polls.div_ceil(ttl);
        let worst = via_proxy.iter().copied().max().unwrap_or(0);
        proxy_stats.report("task waiters", "proxy");
        direct_stats.report("task waiters", "direct");
        eprintln!(
            "task waiters: proxy {} in {:.1} s, direct {} in {:.1} s, bound {bound}",
            per_vcenter(&via_proxy),
            proxy_elapsed.as_secs_f64(),
            per_vcenter(&direct),
            direct_elapsed.as_secs_f64()
        );
        let (alternative, ratio) = direct_cells(&via_proxy, &direct[1..2], &direct_stats);
        Ok::<_, String>(Row::new(
            format!("{NAME} ({WAITERS} waiters x {polls} polls of one task)"),
            format!(
                "{} (vc1/vc2/vc3; {} client errors)",
                per_vcenter(&via_proxy),
                proxy_stats.failed
            ),
            alternative.replacen("direct:", "direct (its vCenter):", 1),
            ratio,
            format!(
                "{target}: <= {bound} in {:.0} s",
                proxy_elapsed.as_secs_f64()
            ),
            Some(worst <= bound && proxy_stats.failed == 0 && via_proxy[1] > 0),
        ))
    }
    .await;
    stop_env(env).await;
    vec![result.unwrap_or_else(|e| Row::failed(NAME, e, &target))]
}
