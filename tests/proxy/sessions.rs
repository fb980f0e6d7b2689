//! Sessions: client logins over pooled vCenter sessions, renewal, idle expiry,
//! service-account mode, and secrets kept out of the logs.

use crate::common::{self, Env, LogBuffer, ADMIN};
use crate::{logged_in, svc_query, three_static, SVC};
use http::Method;
use std::time::Duration;
use vcproxy::Family;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_logins_by_one_user_open_one_backend_session_per_vcenter() {
    let env = Env::start(three_static(), "", "").await;
    let mut logins = Vec::new();
    for i in 0..50 {
        let http = env.http.clone();
        let family = if i % 2 == 0 {
            Family::Rest
        } else {
            Family::Api
        };
        logins.push(tokio::spawn(async move {
            http.session(family, ADMIN.0, ADMIN.1).await
        }));
    }
    let mut ids = std::collections::HashSet::new();
    for l in logins {
        ids.insert(l.await.unwrap());
    }
    assert_eq!(ids.len(), 50, "each client gets its own proxy session");
    for s in &env.sims {
        let st = s.stats();
        assert_eq!(st.sessions_opened, 1, "one backend session per vCenter");
        assert_eq!(st.sessions_open, 1);
    }
    // A wrong password does not ride on the pool: vCenter refuses it, and its 401
    // passes through in the client's family.
    let r = env.http.login(Family::Rest, ADMIN.0, "wrong").await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.json()["type"],
        "com.vmware.vapi.std.errors.unauthenticated"
    );
    assert!(r.header("vcproxy-upstream").is_some());
    for s in &env.sims {
        assert_eq!(
            s.stats().sessions_open,
            1,
            "no session left open by the refused login"
        );
    }
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn who_am_i_log_out_and_missing_sessions() {
    let (env, sid) = logged_in("", Family::Rest).await;
    let me = env
        .http
        .call(
            Method::POST,
            "/rest/com/vmware/cis/session?~action=get",
            &[("vmware-api-session-id", &sid)],
            None,
        )
        .await;
    assert_eq!(me.status, 200);
    assert_eq!(me.json()["value"]["user"], ADMIN.0);
    let me = env
        .http
        .call(
            Method::GET,
            "/api/session",
            &[("vmware-api-session-id", &sid)],
            None,
        )
        .await;
    assert_eq!(me.json()["user"], ADMIN.0);

    let out = env
        .http
        .call(
            Method::DELETE,
            "/api/session",
            &[("vmware-api-session-id", &sid)],
            None,
        )
        .await;
    assert_eq!(out.status, 204);
    let r = env
        .http
        .rest_list(&sid, &format!("filter_spec.services={SVC}"))
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.body,
        vcproxy::VapiError::unauthenticated().render(Family::Rest)
    );
    let r = env.http.api_list("not-a-session", "{}").await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error_type"], "UNAUTHENTICATED");
    let r = env.http.login(Family::Api, "", "").await;
    assert_eq!(r.status, 401);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_backend_sessions_are_renewed_once_transparently() {
    let (env, sid) = logged_in(
        "[cache]\nttl = \"1ms\"\nstale_while_revalidate = \"0s\"",
        Family::Rest,
    )
    .await;
    let q = svc_query();
    assert_eq!(env.http.rest_list(&sid, &q).await.status, 200);
    for s in &env.sims {
        assert_eq!(s.expire_sessions(), 1);
    }
    tokio::time::sleep(Duration::from_millis(5)).await;
    let r = env.http.rest_list(&sid, &q).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    for s in &env.sims {
        assert_eq!(s.stats().sessions_opened, 2, "one re-login per vCenter");
    }
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_account_mode_logs_clients_in_locally_and_shares_one_backend_session() {
    let dir = common::temp_dir("service-account");
    let users = format!(
        "[users]\nalice = \"{}\"\nbob = \"{}\"\n",
        vcproxy::auth::users::hash_password_with_iterations(
            "alice-pw",
            std::num::NonZeroU32::new(10).unwrap()
        ),
        vcproxy::auth::users::hash_password_with_iterations(
            "bob-pw",
            std::num::NonZeroU32::new(10).unwrap()
        ),
    );
    std::fs::write(dir.join("users.toml"), users).unwrap();
    std::fs::write(dir.join("sa-password"), format!("{}\n", ADMIN.1)).unwrap();
    let auth = format!(
        "[auth]\nmode = \"service_account\"\nusername = \"{}\"\npassword_file = {:?}\nusers_file = {:?}\n",
        ADMIN.0,
        dir.join("sa-password").display().to_string(),
        dir.join("users.toml").display().to_string()
    );
    let env = Env::start(three_static(), &auth, "").await;
    let alice = env.http.session(Family::Rest, "alice", "alice-pw").await;
    let bob = env.http.session(Family::Api, "bob", "bob-pw").await;
    assert_eq!(
        env.http.login(Family::Rest, "alice", "bob-pw").await.status,
        401
    );
    assert_eq!(
        env.http.login(Family::Rest, "mallory", "x").await.status,
        401
    );
    for s in &env.sims {
        assert_eq!(
            s.stats().sessions_opened,
            1,
            "one service-account session per vCenter"
        );
    }
    let q = svc_query();
    let a = env.http.rest_list(&alice, &q).await;
    let b = env.http.rest_list(&bob, &q).await;
    assert_eq!((a.status.as_u16(), b.status.as_u16()), (200, 200));
    assert_eq!(a.body, b.body, "both see the service account's view");
    assert_eq!(
        b.cache(),
        "miss",
        "but cache entries are still per client user"
    );
    let me = env
        .http
        .call(
            Method::GET,
            "/api/session",
            &[("vmware-api-session-id", &bob)],
            None,
        )
        .await;
    assert_eq!(me.json()["user"], "bob");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_backend_sessions_close_after_the_timeout() {
    let (env, sid) = logged_in(
        "[auth]\nclient_session_idle = \"300ms\"\nbackend_idle_timeout = \"300ms\"",
        Family::Rest,
    )
    .await;
    assert!(env.sims.iter().all(|s| s.stats().sessions_open == 1));
    let mut closed = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if env.sims.iter().all(|s| s.stats().sessions_open == 0) {
            closed = true;
            break;
        }
    }
    assert!(closed, "idle vCenter sessions were logged out");
    let r = env
        .http
        .rest_list(&sid, &format!("filter_spec.services={SVC}"))
        .await;
    assert_eq!(r.status, 401, "the idle client session is gone too");
    // A new login opens new sessions.
    env.http.session(Family::Rest, ADMIN.0, ADMIN.1).await;
    assert!(env.sims.iter().all(|s| s.stats().sessions_opened == 2));
    env.stop().await;
}

/// One thread, so the test's subscriber sees every task's events.
#[tokio::test(flavor = "current_thread")]
async fn session_ids_and_passwords_never_reach_the_logs() {
    let logs = LogBuffer::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(logs.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let (env, sid) = logged_in("", Family::Rest).await;
    let q = svc_query();
    assert_eq!(env.http.rest_list(&sid, &q).await.status, 200);
    assert_eq!(env.http.rest_list(&sid, &q).await.cache(), "hit");
    for s in &env.sims {
        s.expire_sessions();
    }
    assert_eq!(
        env.http
            .call(
                Method::GET,
                &format!("/rest/cis/tasks?{q}"),
                &[
                    ("vmware-api-session-id", &sid),
                    ("cache-control", "no-cache")
                ],
                None
            )
            .await
            .status,
        200
    );
    assert_eq!(
        env.http
            .login(Family::Api, ADMIN.0, "Wrong-Secret-42")
            .await
            .status,
        401
    );
    env.stop().await;

    let text = logs.text();
    assert!(
        text.contains("opened vCenter session"),
        "logs were captured: {text}"
    );
    assert!(
        text.contains("list_tasks"),
        "requests are logged with their route"
    );
    for secret in [
        ADMIN.1,
        "Wrong-Secret-42",
        sid.as_str(),
        &common::basic(ADMIN.0, ADMIN.1)[6..],
    ] {
        assert!(!text.contains(secret), "{secret:?} appears in the logs");
    }
}

/// `[auth] verify_interval = "0s"`: every log-in asks vCenter again, swapping the
/// new session for the pooled one (no session added); once vCenter refuses the
/// password, the user's pool and client sessions end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_password_ends_the_users_pool_and_client_sessions() {
    let (env, sid) = logged_in("[auth]\nverify_interval = \"0s\"", Family::Rest).await;
    let q = svc_query();
    assert_eq!(env.http.rest_list(&sid, &q).await.status, 200);
    for _ in 0..5 {
        env.http.session(Family::Api, ADMIN.0, ADMIN.1).await;
    }
    let opened: Vec<u64> = env.sims.iter().map(|s| s.stats().sessions_opened).collect();
    assert_eq!(
        opened,
        [6, 1, 1],
        "each log-in asked the first vCenter again"
    );
    assert!(
        env.sims.iter().all(|s| s.stats().sessions_open == 1),
        "no session added by the checks"
    );
    // The password changes on vCenter.
    for s in &env.sims {
        s.refuse_logins(ADMIN.0, true);
    }
    let r = env.http.login(Family::Api, ADMIN.0, ADMIN.1).await;
    assert_eq!(r.status, 401, "{}", r.text());
    // The earlier client session is over, and so is the pool.
    assert_eq!(env.http.rest_list(&sid, &q).await.status, 401);
    assert!(
        env.sims.iter().all(|s| s.stats().sessions_open == 0),
        "the refused user's vCenter sessions are logged out"
    );
    env.stop().await;
}

/// Within `verify_interval` (5 minutes by default) the remembered check is
/// trusted: a log-in with the pooled password reuses the pool without asking.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remembered_check_is_trusted_within_verify_interval() {
    let (env, _sid) = logged_in("", Family::Rest).await;
    for s in &env.sims {
        s.refuse_logins(ADMIN.0, true);
    }
    let r = env.http.login(Family::Api, ADMIN.0, ADMIN.1).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert!(env.sims.iter().all(|s| s.stats().sessions_opened == 1));
    env.stop().await;
}

/// A vCenter session expires and the log-in again with the held password is
/// refused: the user's client sessions and pool end rather than keep failing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_login_again_ends_the_users_sessions() {
    let (env, sid) = logged_in("", Family::Rest).await;
    let q = svc_query();
    assert_eq!(env.http.rest_list(&sid, &q).await.status, 200);
    for s in &env.sims {
        s.refuse_logins(ADMIN.0, true);
        s.expire_sessions();
    }
    let r = env
        .http
        .call(
            Method::GET,
            &format!("/rest/cis/tasks?{q}"),
            &[
                ("vmware-api-session-id", &sid),
                ("cache-control", "no-cache"),
            ],
            None,
        )
        .await;
    assert_eq!(r.status, 401, "{}", r.text());
    let again = env.http.rest_list(&sid, &q).await;
    assert_eq!(again.status, 401, "the client session was ended");
    assert_eq!(env.http.whoami(Family::Api, &sid).await.status, 401);
    env.stop().await;
}
