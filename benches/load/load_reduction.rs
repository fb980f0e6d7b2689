//! Load reduction: many clients polling a few filters in many spellings, List Tasks
//! requests per vCenter through the proxy against the same clients asking directly.

use crate::shared::{
    all_ok, delta, direct_cells, lossy, per_vcenter, realistic_faults, run_pollers, sim_config,
    start_env, stop_env,
};
use crate::table::Row;
use crate::Settings;
use std::sync::Arc;
use tokio::sync::Semaphore;
use vcproxy::sim;
use vcproxy::Family;
use vcproxy_testkit::{ten_encodings, Http, RestQuery};

/// `clients` logins as `user` on each of `http` (32 at a time): per client, its
/// session ids in the order of `http`.
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
                sids.push(h.try_session(Family::Rest, &u, &p).await?);
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

pub async fn load_reduction(s: &Settings) -> Vec<Row> {
    const NAME: &str = "load reduction: List Tasks per vCenter";
    let ttl = 5u64;
    let target = format!("<= 1 per filter per {ttl} s TTL window per vCenter");
    let env = start_env(
        (1..=3)
            .map(|seed| sim_config(1000, seed, realistic_faults()))
            .collect(),
        &format!("[cache]\nttl = \"{ttl}s\""),
    )
    .await;
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
        let front = env.http.clone();
        let sids = login_all(
            std::slice::from_ref(&front),
            clients,
            (sim::DEFAULT_USER, sim::DEFAULT_PASSWORD),
        )
        .await?;
        let sids: Arc<Vec<String>> = Arc::new(sids.into_iter().map(|mut v| v.remove(0)).collect());
        let before = env.upstream_lists();
        let q = query_of.clone();
        let (proxy_stats, proxy_elapsed) = run_pollers(clients, polls, move |c, _| {
            let (front, sids, query) = (front.clone(), sids.clone(), q(c));
            async move {
                let r = front.try_rest_query(&sids[c], &query, &[]).await?;
                if r.status == 200 {
                    Ok(())
                } else {
                    Err(format!("proxy {}: {}", r.status, lossy(&r.body)))
                }
            }
        })
        .await;
        let via_proxy = delta(&env.upstream_lists(), &before);

        // Directly: each client has a session on every simulator and asks each.
        let direct: Vec<Http> = env.sims.iter().map(Http::for_sim).collect();
        let sids = Arc::new(
            login_all(&direct, clients, (sim::DEFAULT_USER, sim::DEFAULT_PASSWORD)).await?,
        );
        let before = env.upstream_lists();
        let q = query_of.clone();
        let direct = Arc::new(direct);
        let (direct_stats, direct_elapsed) = run_pollers(clients, polls, move |c, _| {
            let (direct, sids, query) = (direct.clone(), sids.clone(), q(c));
            async move {
                let each = direct.iter().zip(&sids[c]).map(|(d, sid)| {
                    let query = query.clone();
                    async move {
                        let r = d.try_rest_query(sid, &query, &[]).await?;
                        if r.status == 200 {
                            Ok(())
                        } else {
                            Err(format!("direct {}: {}", r.status, lossy(&r.body)))
                        }
                    }
                });
                all_ok(each).await
            }
        })
        .await;
        let direct_counts = delta(&env.upstream_lists(), &before);

        let windows = proxy_elapsed.as_secs() / ttl + 1;
        let bound = 5 * windows;
        let worst = via_proxy.iter().copied().max().unwrap_or(0);
        proxy_stats.report("load reduction", "proxy");
        direct_stats.report("load reduction", "direct");
        eprintln!(
            "load reduction: proxy {} in {:.1} s, direct {} in {:.1} s, bound {bound}",
            per_vcenter(&via_proxy),
            proxy_elapsed.as_secs_f64(),
            per_vcenter(&direct_counts),
            direct_elapsed.as_secs_f64()
        );
        let (alternative, ratio) = direct_cells(&via_proxy, &direct_counts, &direct_stats);
        Ok::<_, String>(Row::new(
            format!("{NAME} ({clients} clients x {polls} polls, 5 filters x 10 encodings)"),
            format!(
                "{} (vc1/vc2/vc3; {} client errors)",
                per_vcenter(&via_proxy),
                proxy_stats.failed
            ),
            alternative,
            ratio,
            format!(
                "{target}: <= {bound} in {:.0} s",
                proxy_elapsed.as_secs_f64()
            ),
            Some(worst <= bound && proxy_stats.failed == 0 && worst > 0),
        ))
    }
    .await;
    stop_env(env).await;
    vec![result.unwrap_or_else(|e| Row::failed(NAME, e, &target))]
}
