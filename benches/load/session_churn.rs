//! Session churn: clients that log in, list and log out on every poll; vCenter
//! sessions opened per vCenter through the proxy against the same clients directly.

use crate::shared::{
    all_ok, delta, direct_cells, lossy, per_vcenter, realistic_faults, run_pollers, sim_config,
    start_env, stop_env,
};
use crate::table::Row;
use crate::Settings;
use std::sync::Arc;
use vcproxy::sim;
use vcproxy::Family;
use vcproxy_testkit::{ten_encodings, Http, RestQuery, OPERATOR};

pub async fn session_churn(s: &Settings) -> Vec<Row> {
    const NAME: &str = "session churn: vCenter sessions opened per vCenter";
    let target = "<= 1 per user per vCenter (2 users)";
    let env = start_env(
        (1..=3)
            .map(|seed| sim_config(1000, seed, realistic_faults()))
            .collect(),
        "",
    )
    .await;
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
        let sid = http.try_session(Family::Rest, user.0, user.1).await?;
        let r = http.try_rest_query(&sid, query, &[]).await?;
        if r.status != 200 {
            return Err(format!("list {}: {}", r.status, lossy(&r.body)));
        }
        http.try_logout(Family::Rest, &sid).await
    }

    let front = env.http.clone();
    let before = env.upstream_sessions_opened();
    let q = query.clone();
    let (proxy_stats, _) = run_pollers(clients, polls, move |c, _| {
        let (front, q) = (front.clone(), q.clone());
        async move { churn(&front, user(c), &q).await }
    })
    .await;
    let via_proxy = delta(&env.upstream_sessions_opened(), &before);

    let direct: Arc<Vec<Http>> = Arc::new(env.sims.iter().map(Http::for_sim).collect());
    let before = env.upstream_sessions_opened();
    let q = query.clone();
    let (direct_stats, _) = run_pollers(clients, polls, move |c, _| {
        let (direct, q) = (direct.clone(), q.clone());
        async move {
            let each = direct.iter().map(|d| churn(d, user(c), &q));
            all_ok(each).await
        }
    })
    .await;
    let direct_counts = delta(&env.upstream_sessions_opened(), &before);
    proxy_stats.report("session churn", "proxy");
    direct_stats.report("session churn", "direct");
    let worst = via_proxy.iter().copied().max().unwrap_or(0);
    let (alternative, ratio) = direct_cells(&via_proxy, &direct_counts, &direct_stats);
    stop_env(env).await;
    vec![Row::new(
        format!("{NAME} ({clients} clients x {polls} polls)"),
        format!(
            "{} ({} client errors)",
            per_vcenter(&via_proxy),
            proxy_stats.failed
        ),
        alternative,
        ratio,
        target,
        Some(worst <= 2 && proxy_stats.failed == 0),
    )]
}
