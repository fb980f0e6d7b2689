//! The admin listener, graceful shutdown (in-process, and `serve` on SIGTERM), and
//! the commands around the proxy (`check`, `demo`).

use crate::common::{self, every_service_query, free_port, rest_keys, start_sims, Env, Http};
use crate::{logged_in, on_lists, svc_query, three_static, ADMIN};
use http::Method;
use std::time::Duration;
use vcproxy::sim::Faults;
use vcproxy::Family;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_endpoints_metrics_health_and_purge() {
    let (env, sid) = logged_in("", Family::Rest).await;
    let q = svc_query();
    env.http.rest_list(&sid, &q).await;
    env.http.rest_list(&sid, &q).await;
    assert_eq!(
        env.admin
            .call(Method::GET, "/healthz", &[], None)
            .await
            .status,
        200
    );
    assert_eq!(
        env.admin
            .call(Method::GET, "/readyz", &[], None)
            .await
            .status,
        200
    );
    let m = env.admin.call(Method::GET, "/metrics", &[], None).await;
    let text = String::from_utf8_lossy(&m.body);
    assert!(
        text.contains(r#"vcproxy_cache_requests_total{outcome="hit"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"vcproxy_cache_requests_total{outcome="miss"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"vcproxy_backend_sessions_open{vcenter="vc2"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"vcproxy_requests_total{route="list_tasks",status="200"} 2"#),
        "{text}"
    );
    assert!(
        text.contains(r#"vcproxy_upstream_latency_seconds_count{vcenter="vc3"}"#),
        "{text}"
    );
    assert!(!text.contains(&sid), "no session id in metrics");
    assert_eq!(
        env.admin
            .call(Method::POST, "/cache/purge", &[], None)
            .await
            .status,
        200
    );
    assert_eq!(env.http.rest_list(&sid, &q).await.cache(), "miss");
    // The admin API is not on the client listener.
    assert_eq!(
        env.http
            .call(Method::POST, "/cache/purge", &[], None)
            .await
            .status,
        404
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_logs_out_of_every_vcenter() {
    let env = Env::start(three_static(), "", "").await;
    env.http.session(Family::Rest, ADMIN.0, ADMIN.1).await;
    env.http
        .session(Family::Api, "operator@vsphere.local", "Operator1!")
        .await;
    for s in &env.sims {
        assert_eq!(s.stats().sessions_open, 2);
    }
    let mut env = env;
    env.stop_proxy().await;
    for s in &env.sims {
        assert_eq!(s.stats().sessions_open, 0, "sessions closed at shutdown");
    }
    env.stop().await;
}

/// A connection that never finishes its request (a body dripping slower than any
/// limit) does not hold shutdown past `shutdown_grace`: the drain ends, the vCenter
/// sessions are logged out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_grace_bounds_the_drain() {
    use tokio::io::AsyncWriteExt;
    let sims = start_sims(three_static()).await;
    let urls: Vec<String> = sims.iter().map(|s| s.base_url()).collect();
    let head =
        "[listen]\naddr = \"127.0.0.1:0\"\nbody_read_timeout = \"1h\"\nshutdown_grace = \"1s\"\n\
                [admin]\naddr = \"127.0.0.2:0\"\n";
    let mut env =
        Env::start_with_config(sims, &common::config(head, &urls, |_| String::new())).await;
    env.http.session(Family::Rest, ADMIN.0, ADMIN.1).await;
    assert!(env.sims.iter().all(|s| s.stats().sessions_open == 1));
    let mut stuck = tokio::net::TcpStream::connect(env.addr).await.unwrap();
    stuck
        .write_all(b"POST /api/session HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{")
        .await
        .unwrap();
    // The request is in the proxy, waiting for the rest of its body.
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Bounded here only so that a regression fails instead of hanging the suite.
    tokio::time::timeout(Duration::from_secs(60), env.stop_proxy())
        .await
        .expect("the drain ended after shutdown_grace");
    for s in &env.sims {
        assert_eq!(s.stats().sessions_open, 0, "sessions closed at shutdown");
    }
    // The stuck connection was closed by the proxy.
    let mut rest = Vec::new();
    let read = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::io::AsyncReadExt::read_to_end(&mut stuck, &mut rest),
    )
    .await;
    assert!(matches!(read, Ok(Ok(_))), "closed by the proxy: {read:?}");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reports_each_vcenter() {
    let mut sims = start_sims(three_static()).await;
    let dead = sims.pop().unwrap();
    let dead_url = dead.base_url();
    dead.shutdown().await;
    let urls: Vec<String> = sims
        .iter()
        .map(|s| s.base_url())
        .chain([dead_url])
        .collect();
    let config = common::config(common::LISTEN, &urls, |_| "connect_timeout = \"1s\"".into());
    let creds = Some((ADMIN.0.to_owned(), vcproxy::auth::Secret::new(ADMIN.1)));
    let reports = vcproxy::cmd::check::check(&config, creds).await;
    let summary: Vec<(String, bool)> = reports.iter().map(|r| (r.vcenter.clone(), r.ok)).collect();
    assert_eq!(
        summary,
        vec![
            ("vc1".into(), true),
            ("vc2".into(), true),
            ("vc3".into(), false)
        ],
        "{reports:?}"
    );
    assert!(reports[0].detail.contains("login"), "{reports:?}");
    assert!(reports[2].detail.contains("unreachable"), "{reports:?}");
    let bad = Some((ADMIN.0.to_owned(), vcproxy::auth::Secret::new("nope")));
    let reports = vcproxy::cmd::check::check(&config, bad).await;
    assert!(
        !reports[0].ok && reports[0].detail.contains("refused"),
        "{reports:?}"
    );
    for s in &sims {
        assert_eq!(s.stats().sessions_open, 0, "check logs out again");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_puts_three_simulators_behind_the_proxy() {
    let demo = vcproxy::cmd::demo::start(vcproxy::cmd::demo::DemoAddrs {
        proxy: "127.0.0.1:0".parse().unwrap(),
        admin: "127.0.0.2:0".parse().unwrap(),
        first_sim_port: 0,
    })
    .await
    .unwrap();
    assert_eq!(demo.sims.len(), 3);
    assert_eq!(demo.config.vcenters.len(), 3);
    let text = vcproxy::cmd::demo::instructions(
        "127.0.0.1:8080".parse().unwrap(),
        "127.0.0.1:9090".parse().unwrap(),
        &demo.sims,
    );
    assert!(
        text.contains("/rest/com/vmware/cis/session")
            && text.contains("/api/cis/tasks?action=list")
    );
    let config = demo.config.clone();
    let env = Env::start_with_config(demo.sims, &config).await;
    let admin = env.http.session(Family::Rest, ADMIN.0, ADMIN.1).await;
    let operator = env
        .http
        .session(
            Family::Rest,
            vcproxy::cmd::demo::OPERATOR.0,
            vcproxy::cmd::demo::OPERATOR.1,
        )
        .await;
    let all = every_service_query();
    let a = rest_keys(&env.http.rest_list(&admin, &all).await.json());
    let o = rest_keys(&env.http.rest_list(&operator, &all).await.json());
    assert_eq!(a.len(), 450, "200 + 150 + 100 tasks");
    assert!(!o.is_empty() && o.len() < a.len());
    env.stop().await;
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_finishes_requests_in_flight_and_logs_out_on_sigterm() {
    let mut configs = three_static();
    for c in &mut configs {
        c.faults = on_lists(Faults {
            latency: Duration::from_millis(1500),
            ..Faults::default()
        });
    }
    let sims = start_sims(configs).await;
    let (port, admin_port) = (free_port(), free_port());
    let head = format!(
        "[listen]\naddr = \"127.0.0.1:{port}\"\n[admin]\naddr = \"127.0.0.1:{admin_port}\"\n\
         [log]\nformat = \"json\"\n"
    );
    let urls: Vec<String> = sims.iter().map(|s| s.base_url()).collect();
    let mut toml = head;
    for (i, url) in urls.iter().enumerate() {
        toml.push_str(&format!(
            "[[vcenter]]\nname = \"vc{}\"\nurl = \"{url}\"\n",
            i + 1
        ));
    }
    let dir = common::temp_dir("sigterm");
    let path = dir.join("proxy.toml");
    std::fs::write(&path, toml).unwrap();
    let log_path = dir.join("serve.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_vcproxy"))
        .args(["serve", "--config"])
        .arg(&path)
        .env_remove("RUST_LOG")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let http = Http::new(format!("http://127.0.0.1:{port}"));
    wait_listening(port).await;
    let sid = http.session(Family::Rest, ADMIN.0, ADMIN.1).await;
    assert!(sims.iter().all(|s| s.stats().sessions_open == 1));

    // A slow List Tasks is in flight when SIGTERM arrives...
    let q = svc_query();
    let in_flight = {
        let http = http.clone();
        let sid = sid.clone();
        tokio::spawn(async move { http.rest_list(&sid, &q).await })
    };
    let mut started = false;
    for _ in 0..200 {
        if sims.iter().all(|s| s.stats().in_flight == 1) {
            started = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(started, "the request reached every vCenter");
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());

    // ...and still gets its answer; then the process exits cleanly, having logged
    // out of every vCenter, and takes no new connections.
    let r = in_flight.await.unwrap();
    assert_eq!(r.status, 200);
    assert!(!rest_keys(&r.json()).is_empty());
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status}");
    assert!(
        sims.iter().all(|s| s.stats().sessions_open == 0),
        "sessions closed"
    );
    assert!(tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err());
    for s in sims {
        s.shutdown().await;
    }
}

/// `serve` on SIGTERM with a client dripping its body: the process still exits 0
/// after `shutdown_grace`, having logged out of every vCenter.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_exits_after_shutdown_grace_on_sigterm_despite_a_dripping_client() {
    use tokio::io::AsyncWriteExt;
    let sims = start_sims(three_static()).await;
    let (port, admin_port) = (free_port(), free_port());
    let mut toml = format!(
        "[listen]\naddr = \"127.0.0.1:{port}\"\nbody_read_timeout = \"1h\"\nshutdown_grace = \"1s\"\n\
         [admin]\naddr = \"127.0.0.1:{admin_port}\"\n"
    );
    for (i, s) in sims.iter().enumerate() {
        toml.push_str(&format!(
            "[[vcenter]]\nname = \"vc{}\"\nurl = \"{}\"\n",
            i + 1,
            s.base_url()
        ));
    }
    let dir = common::temp_dir("sigterm-grace");
    let path = dir.join("proxy.toml");
    std::fs::write(&path, toml).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_vcproxy"))
        .args(["serve", "--config"])
        .arg(&path)
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let http = Http::new(format!("http://127.0.0.1:{port}"));
    wait_listening(port).await;
    http.session(Family::Rest, ADMIN.0, ADMIN.1).await;
    assert!(sims.iter().all(|s| s.stats().sessions_open == 1));
    let mut drip = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    drip.write_all(b"POST /api/session HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    // Bounded only so that a regression fails instead of hanging the suite.
    let mut status = None;
    for _ in 0..600 {
        if let Some(s) = child.try_wait().unwrap() {
            status = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let Some(status) = status else {
        let _ = child.kill();
        panic!("still running 30 s after SIGTERM with shutdown_grace = 1s");
    };
    assert!(status.success(), "{status}");
    assert!(
        sims.iter().all(|s| s.stats().sessions_open == 0),
        "sessions closed"
    );
    for s in sims {
        s.shutdown().await;
    }
}

/// Waits (up to 5 s) until `vcproxy serve` listens on `port`.
async fn wait_listening(port: u16) {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("vcproxy serve did not start listening");
}
