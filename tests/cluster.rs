//! Several replicas sharing one Redis (`[cluster]`): one fetch across the cluster,
//! sessions valid on every replica and logged out on all, nothing readable in
//! Redis, and every replica serving on when Redis freezes.
//!
//! Each test starts its own `redis-server` (the test kit's [`Redis`]; `.ci/run`
//! installs it), three simulated vCenters and three proxies in this process.

use http::Method;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use vcproxy::sim::SimHandle;
use vcproxy::Family;
use vcproxy_testkit::{
    config, every_service_query, rest_keys, sim_config, start_sims, temp_dir, Env, Redis, ADMIN,
    LISTEN,
};

/// Three replicas in front of `sims` (the first replica owns them), sharing
/// `redis`; `extra` goes into `[cluster]`.
async fn replicas(redis: &Redis, sims: Vec<SimHandle>, name: &str, extra: &str) -> Vec<Env> {
    let dir = temp_dir(name);
    std::fs::write(dir.join("cluster.key"), [0x5au8; 32]).unwrap();
    let head = format!(
        "{LISTEN}[cluster]\nredis = \"{}\"\nsecret_file = {:?}\ncommand_timeout = \"200ms\"\n\
         lock_timeout = \"5s\"\n{extra}\n",
        redis.url(),
        dir.join("cluster.key").display().to_string()
    );
    let urls: Vec<String> = sims.iter().map(|s| s.base_url()).collect();
    let config = config(&head, &urls, |_| String::new());
    let mut envs = vec![Env::start_with_config(sims, &config).await];
    for _ in 0..2 {
        envs.push(Env::start_with_config(Vec::new(), &config).await);
    }
    // Each replica connects in the background: wait until all three are linked.
    for env in &envs {
        wait_until("the replica reaches Redis", || async {
            metric(env, "vcproxy_redis_up").await == Some(1.0)
        })
        .await;
    }
    envs
}

async fn metric(env: &Env, name: &str) -> Option<f64> {
    let text = env
        .admin
        .call(Method::GET, "/metrics", &[], None)
        .await
        .text();
    text.lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
}

/// Polls `done` until it holds, for at most 10 s (a deadline, not a speed claim).
async fn wait_until<F, Fut>(what: &str, done: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done().await {
        assert!(Instant::now() < deadline, "{what}: not within 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A `/rest` List Tasks with `Cache-Control: no-cache`: fetched now.
async fn refetch(env: &Env, sid: &str, query: &str) -> vcproxy_testkit::Resp {
    let path = format!("/rest/cis/tasks?{query}");
    let headers = [
        ("vmware-api-session-id", sid),
        ("cache-control", "no-cache"),
    ];
    env.http.call(Method::GET, &path, &headers, None).await
}

async fn stop_all(envs: Vec<Env>) {
    for env in envs.into_iter().rev() {
        env.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_ask_each_vcenter_once() {
    let Some(redis) = Redis::start() else { return };
    let sims = start_sims(vec![
        sim_config(40, 1),
        sim_config(30, 2),
        sim_config(20, 3),
    ])
    .await;
    let expected: BTreeSet<String> = sims.iter().flat_map(|s| s.task_ids()).collect();
    let envs = replicas(&redis, sims, "cluster-once", "").await;
    // One session, made on the first replica, used on all three.
    let sid = envs[0].http.session(Family::Rest, ADMIN.0, ADMIN.1).await;
    let path = format!("/rest/cis/tasks?{}", every_service_query());
    let mut asks = Vec::new();
    for i in 0..300 {
        let (http, path, sid) = (envs[i % 3].http.clone(), path.clone(), sid.clone());
        asks.push(tokio::spawn(async move {
            http.call(Method::GET, &path, &[("vmware-api-session-id", &sid)], None)
                .await
        }));
    }
    for a in asks {
        let r = a.await.unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        let ids: BTreeSet<String> = rest_keys(&r.json()).into_iter().collect();
        assert_eq!(ids, expected);
    }
    assert_eq!(
        envs[0].upstream_lists(),
        vec![1, 1, 1],
        "300 equivalent requests over three replicas: one List Tasks per vCenter"
    );
    let l2_hits: f64 = {
        let mut sum = 0.0;
        for env in &envs {
            sum += metric(env, "vcproxy_l2_requests_total{outcome=\"hit\"}")
                .await
                .unwrap_or(0.0);
        }
        sum
    };
    assert!(
        l2_hits >= 2.0,
        "the other replicas read the stored answer: {l2_hits}"
    );
    stop_all(envs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_work_everywhere_and_end_everywhere() {
    let Some(redis) = Redis::start() else { return };
    let sims = start_sims(vec![sim_config(10, 1), sim_config(10, 2)]).await;
    let envs = replicas(&redis, sims, "cluster-sessions", "").await;
    let sid = envs[0].http.session(Family::Api, ADMIN.0, ADMIN.1).await;
    for env in &envs {
        let r = env.http.whoami(Family::Api, &sid).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["user"], ADMIN.0);
    }
    // JSON-RPC on the third replica too (one namespace of session ids).
    let r = envs[2]
        .http
        .rpc(
            "com.vmware.cis.session",
            "get",
            serde_json::json!({}),
            vcproxy_testkit::Http::rpc_session(&sid),
            "1",
        )
        .await;
    assert!(r.text().contains(ADMIN.0), "{}", r.text());

    // The second replica adopted the session with its own vCenter sessions; when
    // vCenter expires them, it logs in again with the shared record's password.
    let query = every_service_query();
    assert_eq!(envs[1].http.rest_list(&sid, &query).await.status, 200);
    let opened = envs[0].upstream_sessions_opened();
    for s in &envs[0].sims {
        s.expire_sessions();
    }
    // A no-cache request that lands while the previous fetch is still releasing
    // its lock joins that fetch; the next one fetches, with a new vCenter session.
    let mut reopened = Vec::new();
    for _ in 0..3 {
        let r = refetch(&envs[1], &sid, &query).await;
        assert_eq!(r.status, 200, "{}", r.text());
        reopened = envs[0]
            .upstream_sessions_opened()
            .iter()
            .zip(&opened)
            .map(|(now, before)| now - before)
            .collect();
        if reopened != [0, 0] {
            break;
        }
    }
    assert_eq!(
        reopened,
        vec![1, 1],
        "one new vCenter session each, from the record"
    );

    // Log out on the second: the first and third refuse it soon after.
    envs[1].http.try_logout(Family::Api, &sid).await.unwrap();
    let started = Instant::now();
    for env in [&envs[0], &envs[2]] {
        wait_until("the log-out reaches every replica", || async {
            env.http.whoami(Family::Api, &sid).await.status == 401
        })
        .await;
    }
    eprintln!("log-out seen everywhere after {:?}", started.elapsed());
    // An unknown id is refused everywhere.
    for env in &envs {
        assert_eq!(
            env.http
                .whoami(Family::Api, "0123456789abcdef0123456789abcdef")
                .await
                .status,
            401
        );
    }
    stop_all(envs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_holds_nothing_readable() {
    let Some(redis) = Redis::start() else { return };
    let sims = start_sims(vec![sim_config(10, 1), sim_config(10, 2)]).await;
    let task_ids: Vec<String> = sims.iter().flat_map(|s| s.task_ids()).collect();
    let envs = replicas(&redis, sims, "cluster-dump", "").await;
    let sid = envs[0].http.session(Family::Rest, ADMIN.0, ADMIN.1).await;
    let r = envs[1].http.rest_list(&sid, &every_service_query()).await;
    assert_eq!(r.status, 200);
    let dump = redis.dump().await;
    assert!(
        dump.len() >= 2,
        "a session and an answer are stored: {}",
        dump.len()
    );
    let secrets = [
        sid.as_bytes(),
        ADMIN.0.as_bytes(),
        ADMIN.1.as_bytes(),
        b"administrator",
        b"com.vmware",
        b"filter_spec",
    ];
    for (key, value) in &dump {
        assert!(
            key.starts_with(b"vcproxy:"),
            "{}",
            String::from_utf8_lossy(key)
        );
        for s in secrets
            .iter()
            .copied()
            .chain(task_ids.iter().map(|t| t.as_bytes()))
        {
            for (what, bytes) in [("key", key), ("value", value)] {
                assert!(
                    !bytes.windows(s.len()).any(|w| w == s),
                    "a {what} in Redis shows {:?}",
                    String::from_utf8_lossy(s)
                );
            }
        }
    }
    stop_all(envs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_redis_leaves_every_replica_serving() {
    let Some(redis) = Redis::start() else { return };
    let sims = start_sims(vec![sim_config(10, 1), sim_config(10, 2)]).await;
    let envs = replicas(&redis, sims, "cluster-frozen", "").await;
    let sid = envs[0].http.session(Family::Rest, ADMIN.0, ADMIN.1).await;
    // The second replica has seen the session before Redis freezes.
    assert_eq!(envs[1].http.whoami(Family::Rest, &sid).await.status, 200);
    let query = every_service_query();
    assert_eq!(envs[0].http.rest_list(&sid, &query).await.status, 200);

    redis.freeze();
    for env in &envs[..2] {
        // Cached, and fetched again (no-cache): answers, each Redis call bounded.
        assert_eq!(env.http.rest_list(&sid, &query).await.status, 200);
        let r = refetch(env, &sid, &query).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    // A new log-in works on the replica it was made on.
    let local = envs[2].http.session(Family::Rest, ADMIN.0, ADMIN.1).await;
    assert_eq!(envs[2].http.rest_list(&local, &query).await.status, 200);
    // Not required: still ready.
    let ready = envs[0].admin.call(Method::GET, "/readyz", &[], None).await;
    assert_eq!(ready.status, 200, "{}", ready.text());
    wait_until("the breaker opens", || async {
        metric(&envs[0], "vcproxy_redis_up").await == Some(0.0)
    })
    .await;

    redis.thaw();
    for env in &envs {
        wait_until("the replica rejoins", || async {
            metric(env, "vcproxy_redis_up").await == Some(1.0)
        })
        .await;
    }
    stop_all(envs).await;
}

/// Redis restarted empty (killed, not frozen): no replica ends its sessions for
/// want of their records; the replicas holding a session store its record again,
/// so a replica that never saw it adopts it, and a log-out still ends it everywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_redis_ends_no_session() {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    let sims = start_sims(vec![sim_config(10, 1), sim_config(10, 2)]).await;
    let envs = replicas(&redis, sims, "cluster-restart", "").await;
    let sid = envs[0].http.session(Family::Rest, ADMIN.0, ADMIN.1).await;
    assert_eq!(envs[1].http.whoami(Family::Rest, &sid).await.status, 200);

    redis.restart();
    assert!(redis.dump().await.is_empty(), "the new server starts empty");
    // The third replica never saw the session: it can adopt it only once a replica
    // holding it has stored its record again (after its subscriber reconnected).
    wait_until("the session is adopted after the restart", || async {
        envs[2].http.whoami(Family::Rest, &sid).await.status == 200
    })
    .await;
    for env in &envs[..2] {
        let r = env.http.whoami(Family::Rest, &sid).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let query = every_service_query();
    assert_eq!(envs[1].http.rest_list(&sid, &query).await.status, 200);

    // A log-out after the restart ends it on every replica.
    let out = envs[2]
        .http
        .call(
            Method::DELETE,
            "/rest/com/vmware/cis/session",
            &[("vmware-api-session-id", &sid)],
            None,
        )
        .await;
    assert_eq!(out.status, 200, "{}", out.text());
    for env in &envs[..2] {
        wait_until("the log-out reaches the replica", || async {
            env.http.whoami(Family::Rest, &sid).await.status == 401
        })
        .await;
    }
    stop_all(envs).await;
}

/// A session's record lost from Redis while every replica stayed connected (an
/// eviction, a flush): the replica holding the session stores it again when the
/// session is next used past its keep-alive period, and a replica that never saw
/// the session adopts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_session_record_is_stored_again_on_use() {
    let Some(redis) = Redis::start() else { return };
    let sims = start_sims(vec![sim_config(10, 1)]).await;
    // A keep-alive every 250 ms (an eighth of the idle timeout).
    let envs = replicas(
        &redis,
        sims,
        "cluster-lost-record",
        "[auth]\nclient_session_idle = \"2s\"",
    )
    .await;
    let sid = envs[0].http.session(Family::Rest, ADMIN.0, ADMIN.1).await;
    let client = redis::Client::open(redis.url()).unwrap();
    let mut admin = client.get_multiplexed_async_connection().await.unwrap();
    let () = redis::cmd("FLUSHALL")
        .query_async(&mut admin)
        .await
        .unwrap();
    assert!(redis.dump().await.is_empty());
    assert_eq!(envs[1].http.whoami(Family::Rest, &sid).await.status, 401);

    wait_until(
        "the replica that never saw it adopts the session",
        || async {
            // Use on the first replica (which stores the record again once its
            // keep-alive period has passed), then ask the second.
            assert_eq!(envs[0].http.whoami(Family::Rest, &sid).await.status, 200);
            envs[1].http.whoami(Family::Rest, &sid).await.status == 200
        },
    )
    .await;
    stop_all(envs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_redis_makes_readyz_follow_it() {
    let Some(redis) = Redis::start() else { return };
    let sims = start_sims(vec![sim_config(10, 1)]).await;
    let envs = replicas(&redis, sims, "cluster-required", "required = true").await;
    let ready = |env: &Env| {
        let admin = env.admin.clone();
        async move {
            admin
                .call(Method::GET, "/readyz", &[], None)
                .await
                .status
                .as_u16()
        }
    };
    assert_eq!(ready(&envs[0]).await, 200);
    redis.freeze();
    wait_until("/readyz fails while Redis is frozen", || async {
        ready(&envs[0]).await == 503
    })
    .await;
    redis.thaw();
    wait_until("/readyz recovers with Redis", || async {
        ready(&envs[0]).await == 200
    })
    .await;
    stop_all(envs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reaches_redis_too() {
    let Some(redis) = Redis::start() else { return };
    let sims = start_sims(vec![sim_config(5, 1)]).await;
    let dir = temp_dir("cluster-check");
    std::fs::write(dir.join("cluster.key"), [7u8; 40]).unwrap();
    let head = |url: &str| {
        format!(
            "{LISTEN}[cluster]\nredis = \"{url}\"\nsecret_file = {:?}\n\
             connect_timeout = \"300ms\"\ncommand_timeout = \"200ms\"\n",
            dir.join("cluster.key").display().to_string()
        )
    };
    let urls = vec![sims[0].base_url()];
    let up = config(&head(&redis.url()), &urls, |_| String::new());
    let reports = vcproxy::cmd::check::check(&up, None).await;
    let last = reports.last().unwrap();
    assert_eq!(
        (last.vcenter.as_str(), last.ok),
        ("redis", true),
        "{last:?}"
    );
    assert!(last.detail.contains("answered PING"), "{last:?}");

    let nobody = format!("redis://127.0.0.1:{}/0", vcproxy_testkit::free_port());
    let down = config(&head(&nobody), &urls, |_| String::new());
    let reports = vcproxy::cmd::check::check(&down, None).await;
    let last = reports.last().unwrap();
    assert_eq!(
        (last.vcenter.as_str(), last.ok),
        ("redis", false),
        "{last:?}"
    );
    for s in sims {
        s.shutdown().await;
    }
}
