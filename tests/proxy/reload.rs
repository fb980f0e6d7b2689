//! Reloading the configuration in place (`POST /reload`; SIGHUP does the same, see
//! `tests/ops.rs`): vCenters added, removed and changed under live client sessions,
//! a vCenter's trust (pin, CA file) changed at the same URL, an invalid file refused, the service account's pool following at once, the
//! listener's certificate rotated, limits applied, and no request lost to a reload
//! under load.

use http::Method;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use super::common::{self, every_service_query, rest_keys, sim_config, start_sims, Env, Http};
use super::ADMIN;
use vcproxy::sim::SimHandle;
use vcproxy::Family;

/// A configuration file naming each simulator by the given name, with `head`
/// (sections other than `[[vcenter]]`) first.
fn write_config(path: &Path, head: &str, vcenters: &[(&str, &SimHandle)]) {
    let mut toml = format!("{}{head}\n", common::LISTEN);
    for (name, sim) in vcenters {
        toml.push_str(&format!(
            "\n[[vcenter]]\nname = \"{name}\"\nurl = \"{}\"\n",
            sim.base_url()
        ));
    }
    std::fs::write(path, toml).unwrap();
}

/// The ids every simulator in `sims` holds.
fn union(sims: &[&SimHandle]) -> BTreeSet<String> {
    sims.iter().flat_map(|s| s.task_ids()).collect()
}

async fn listed(http: &Http, sid: &str) -> (BTreeSet<String>, String) {
    let r = http.rest_list(sid, &every_service_query()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    (rest_keys(&r.json()).into_iter().collect(), r.cache().into())
}

fn changed(report: &Value) -> Vec<String> {
    report["changed"]
        .as_array()
        .unwrap_or_else(|| panic!("no 'changed' in {report}"))
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect()
}

fn config_path(name: &str) -> PathBuf {
    common::temp_dir(name).join("proxy.toml")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vcenters_change_under_live_client_sessions() {
    let sims = start_sims(vec![
        sim_config(40, 1),
        sim_config(30, 2),
        sim_config(20, 3),
    ])
    .await;
    let path = config_path("reload-vcenters");
    write_config(&path, "", &[("a", &sims[0]), ("b", &sims[1])]);
    let env = Env::start_from_file(sims, &path).await;
    let [a, b, c] = [&env.sims[0], &env.sims[1], &env.sims[2]];
    let sid = env.http.session(Family::Rest, ADMIN.0, ADMIN.1).await;
    assert_eq!(listed(&env.http, &sid).await.0, union(&[a, b]));
    assert_eq!(listed(&env.http, &sid).await.1, "hit");

    // b removed, c added.
    write_config(&path, "", &[("a", a), ("c", c)]);
    let r = env.reload().await;
    assert_eq!(r.status, 200, "{}", r.text());
    let report = r.json();
    assert_eq!(report["reloaded"], true);
    let changed = changed(&report);
    for expected in ["vcenter c: added", "vcenter b: removed"] {
        assert!(changed.iter().any(|c| c == expected), "{changed:?}");
    }
    assert!(changed.iter().any(|c| c.starts_with("cache: emptied")));
    assert_eq!(b.stats().sessions_open, 0, "b's pooled session logged out");
    assert_eq!(c.stats().sessions_opened, 0, "passthrough logs in lazily");

    // The same client session, now over a and c: c is logged in to on first use.
    let (ids, outcome) = listed(&env.http, &sid).await;
    assert_eq!(ids, union(&[a, c]));
    assert_eq!(outcome, "miss", "the old vCenter set's answer was dropped");
    assert_eq!(c.stats().sessions_opened, 1);
    assert_eq!(a.stats().sessions_opened, 1, "a's session was kept");
    assert_eq!(env.http.whoami(Family::Rest, &sid).await.status, 200);

    // c changed (another URL: b's simulator under c's name): a new session there,
    // c's old one logged out.
    write_config(&path, "", &[("a", a), ("c", b)]);
    let again = self::changed(&env.reload().await.json());
    assert!(again.iter().any(|x| x == "vcenter c: changed"), "{again:?}");
    assert_eq!(c.stats().sessions_open, 0);
    assert_eq!(listed(&env.http, &sid).await.0, union(&[a, b]));

    // Nothing changed: nothing dropped. The admin address cannot move in place:
    // kept, and said so.
    let moved = common::LISTEN.replace("127.0.0.2:0", "127.0.0.3:0");
    let toml = std::fs::read_to_string(&path)
        .unwrap()
        .replace(common::LISTEN, &moved);
    std::fs::write(&path, toml).unwrap();
    let r = env.reload().await.json();
    assert_eq!(changed_len(&r), 0, "{r}");
    assert_eq!(
        r["kept"],
        serde_json::json!(["admin.addr stays 127.0.0.2:0 until a restart"])
    );
    assert_eq!(listed(&env.http, &sid).await.1, "hit");
    let metrics = env.admin.call(Method::GET, "/metrics", &[], None).await;
    assert!(
        metrics
            .text()
            .contains("vcproxy_config_reloads_total{result=\"ok\"} 3"),
        "{}",
        metrics.text()
    );
    env.stop().await;
}

/// A vCenter whose trust changes (pin to CA file, to a wrong pin, back) at the same
/// URL: each reload rebuilds it, and the new trust decides its next connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vcenters_trust_changes_at_a_reload() {
    let tls = |seed| {
        let mut c = sim_config(10, seed);
        c.tls = true;
        c
    };
    let sims = start_sims(vec![tls(1), tls(2)]).await;
    let dir = common::temp_dir("reload-trust");
    let path = dir.join("proxy.toml");
    let pem = dir.join("vc.pem");
    std::fs::write(&pem, sims[0].cert_pem().unwrap()).unwrap();
    let url = sims[0].base_url();
    let trust_as = |trust: &str| {
        let toml = format!(
            "{}\n[[vcenter]]\nname = \"vc\"\nurl = \"{url}\"\n{trust}\n",
            common::LISTEN
        );
        std::fs::write(&path, toml).unwrap();
    };
    let right_pin = format!("pin_sha256 = \"{}\"", sims[0].cert_fingerprint().unwrap());
    // The other simulator's certificate: not the one vc presents.
    let wrong_pin = format!("pin_sha256 = \"{}\"", sims[1].cert_fingerprint().unwrap());
    let ca_file = format!("ca_file = {:?}", pem.display().to_string());
    trust_as(&right_pin);
    let env = Env::start_from_file(sims, &path).await;
    let vc = &env.sims[0];
    let sid = env.http.session(Family::Rest, ADMIN.0, ADMIN.1).await;
    let query = every_service_query();
    let fetch = || async {
        let path = format!("/rest/cis/tasks?{query}");
        let headers = [
            ("vmware-api-session-id", sid.as_str()),
            ("cache-control", "no-cache"),
        ];
        env.http.call(Method::GET, &path, &headers, None).await
    };
    assert_eq!(fetch().await.status, 200);

    for (trust, works) in [(&ca_file, true), (&wrong_pin, false), (&right_pin, true)] {
        trust_as(trust);
        let report = env.reload().await.json();
        let changed = changed(&report);
        assert!(
            changed.iter().any(|c| c == "vcenter vc: changed"),
            "{trust}: {changed:?}"
        );
        // The rebuilt vCenter's old session was logged out.
        assert_eq!(vc.stats().sessions_open, 0, "{trust}");
        let r = fetch().await;
        if works {
            assert_eq!(r.status, 200, "{trust}: {}", r.text());
            assert_eq!(vc.stats().sessions_open, 1, "{trust}: logged in again");
        } else {
            assert_eq!(r.status, 503, "{trust}: {}", r.text());
            assert_eq!(r.header("vcproxy-upstream"), Some("vc"));
            assert_eq!(vc.stats().sessions_open, 0, "{trust}: no credentials sent");
        }
    }
    env.stop().await;
}

fn changed_len(report: &Value) -> usize {
    report["changed"].as_array().map_or(usize::MAX, Vec::len)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_file_changes_nothing_and_names_the_key() {
    let sims = start_sims(vec![sim_config(20, 1), sim_config(20, 2)]).await;
    let path = config_path("reload-invalid");
    write_config(&path, "", &[("a", &sims[0])]);
    let env = Env::start_from_file(sims, &path).await;
    let sid = env.http.session(Family::Rest, ADMIN.0, ADMIN.1).await;
    let before = listed(&env.http, &sid).await.0;

    std::fs::write(
        &path,
        format!(
            "{}\n[[vcenter]]\nname = \"a\"\nurl = \"ftp://{}\"\n",
            common::LISTEN,
            env.sims[1].addr()
        ),
    )
    .unwrap();
    let r = env.reload().await;
    assert_eq!(r.status, 422);
    let report = r.json();
    assert_eq!(report["reloaded"], false);
    let error = report["error"].as_str().unwrap();
    assert!(
        error.contains("vcenter[0]") && error.contains(".url"),
        "{error}"
    );

    std::fs::remove_file(&path).unwrap();
    let r = env.reload().await;
    assert_eq!(r.status, 422);
    assert!(
        r.text().contains("cannot read configuration file"),
        "{}",
        r.text()
    );

    // Still the old configuration, cache included.
    let (ids, outcome) = listed(&env.http, &sid).await;
    assert_eq!((ids, outcome.as_str()), (before, "hit"));
    assert_eq!(env.sims[1].stats().total_requests(), 0);
    let metrics = env
        .admin
        .call(Method::GET, "/metrics", &[], None)
        .await
        .text();
    assert!(metrics.contains("vcproxy_config_reloads_total{result=\"failed\"} 2"));
    assert!(metrics.contains("vcproxy_config_last_reload_successful 0"));
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_account_logs_in_to_added_vcenters_at_once() {
    let dir = common::temp_dir("reload-service-account");
    let hash = |pw: &str| {
        vcproxy::auth::users::hash_password_with_iterations(
            pw,
            std::num::NonZeroU32::new(10).unwrap(),
        )
    };
    std::fs::write(
        dir.join("users.toml"),
        format!("[users]\nalice = \"{}\"\n", hash("alice-pw")),
    )
    .unwrap();
    std::fs::write(dir.join("sa-password"), format!("{}\n", ADMIN.1)).unwrap();
    let auth = format!(
        "[auth]\nmode = \"service_account\"\nusername = \"{}\"\npassword_file = \"sa-password\"\nusers_file = \"users.toml\"\n",
        ADMIN.0
    );
    let sims = start_sims(vec![sim_config(20, 1), sim_config(20, 2)]).await;
    let path = dir.join("proxy.toml");
    write_config(&path, &auth, &[("a", &sims[0])]);
    let env = Env::start_from_file(sims, &path).await;
    let alice = env.http.session(Family::Api, "alice", "alice-pw").await;
    assert_eq!(
        env.http.login(Family::Api, "bob", "bob-pw").await.status,
        401
    );

    // b added, bob added to the users file.
    std::fs::write(
        dir.join("users.toml"),
        format!(
            "[users]\nalice = \"{}\"\nbob = \"{}\"\n",
            hash("alice-pw"),
            hash("bob-pw")
        ),
    )
    .unwrap();
    write_config(&path, &auth, &[("a", &env.sims[0]), ("b", &env.sims[1])]);
    let report = env.reload().await.json();
    let changed = changed(&report);
    assert!(
        changed
            .iter()
            .any(|c| c == "service account logged in to added vCenters: 1"),
        "{changed:?}"
    );
    assert!(
        changed.iter().any(|c| c == "auth: users list"),
        "{changed:?}"
    );
    assert_eq!(
        env.sims[1].stats().sessions_opened,
        1,
        "logged in before any request"
    );
    let (ids, _) = listed(&env.http, &alice).await;
    assert_eq!(ids, union(&[&env.sims[0], &env.sims[1]]));
    assert_eq!(env.sims[1].stats().sessions_opened, 1, "and used as is");
    env.http.session(Family::Api, "bob", "bob-pw").await;

    // The mode cannot change in place: kept, and said so.
    write_config(&path, "", &[("a", &env.sims[0]), ("b", &env.sims[1])]);
    let report = env.reload().await.json();
    let kept = report["kept"].as_array().unwrap();
    assert!(
        kept.iter().any(|k| k
            .as_str()
            .unwrap()
            .starts_with("auth.mode stays service_account")),
        "{report}"
    );
    assert_eq!(
        env.http.login(Family::Api, ADMIN.0, ADMIN.1).await.status,
        401,
        "still service-account mode: vCenter users are not proxy users"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_certificate_rotates_for_new_connections() {
    let dir = common::temp_dir("reload-cert");
    let first = vcproxy::net::tls::self_signed(&["127.0.0.1"]).unwrap();
    let second = vcproxy::net::tls::self_signed(&["127.0.0.1"]).unwrap();
    let install = |c: &vcproxy::net::tls::SelfSigned| {
        std::fs::write(dir.join("cert.pem"), &c.cert_pem).unwrap();
        std::fs::write(dir.join("key.pem"), &c.key_pem).unwrap();
    };
    install(&first);
    let sims = start_sims(vec![sim_config(20, 1)]).await;
    let head = "[listen]\naddr = \"127.0.0.1:0\"\ntls_cert = \"cert.pem\"\ntls_key = \"key.pem\"\n[admin]\naddr = \"127.0.0.2:0\"\n";
    let path = dir.join("proxy.toml");
    std::fs::write(
        &path,
        format!(
            "{head}\n[[vcenter]]\nname = \"a\"\nurl = \"{}\"\n",
            sims[0].base_url()
        ),
    )
    .unwrap();
    let env = Env::start_from_file(sims, &path).await;
    let base = format!("https://127.0.0.1:{}", env.addr.port());
    let old_client = Http::tls(base.clone(), common::roots(&first.cert_pem));
    let sid = old_client.session(Family::Api, ADMIN.0, ADMIN.1).await;

    install(&second);
    let report = env.reload().await.json();
    assert!(
        changed(&report)
            .iter()
            .any(|c| c.starts_with("listen.tls_cert: new certificate")),
        "{report}"
    );
    // The pooled connection made before the rotation carries on with the old pair.
    assert_eq!(old_client.whoami(Family::Api, &sid).await.status, 200);
    // New connections get the new certificate: a client trusting only the old one
    // now fails its handshake, one trusting the new one gets in.
    let stale = Http::tls(base.clone(), common::roots(&first.cert_pem));
    let refused = stale.try_call(Method::GET, "/api/session", &[], None).await;
    assert!(refused.is_err(), "{refused:?}");
    let fresh = Http::tls(base.clone(), common::roots(&second.cert_pem));
    assert_eq!(fresh.whoami(Family::Api, &sid).await.status, 200);

    // A key that is not the certificate's is refused; the new pair stays.
    std::fs::write(dir.join("key.pem"), &first.key_pem).unwrap();
    let r = env.reload().await;
    assert_eq!(r.status, 422, "{}", r.text());
    let again = Http::tls(base, common::roots(&second.cert_pem));
    assert_eq!(again.whoami(Family::Api, &sid).await.status, 200);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_limits_apply_from_the_reload_on() {
    let sims = start_sims(vec![sim_config(20, 1)]).await;
    let path = config_path("reload-limits");
    write_config(&path, "", &[("a", &sims[0])]);
    let env = Env::start_from_file(sims, &path).await;
    let sid = env.http.session(Family::Api, ADMIN.0, ADMIN.1).await;
    // A filter of ~3 KB: fine under the default 64 KiB body limit.
    let services: Vec<String> = (0..100).map(|i| format!("\"svc.number.{i}\"")).collect();
    let body = format!(
        r#"{{"filter_spec":{{"services":[{}]}}}}"#,
        services.join(",")
    );
    assert_eq!(env.http.api_list(&sid, &body).await.status, 200);

    let head = "[listen]\naddr = \"127.0.0.1:0\"\nmax_body_bytes = \"1KiB\"\nmax_connections = 1\n\
                [admin]\naddr = \"127.0.0.2:0\"\n";
    std::fs::write(
        &path,
        format!(
            "{head}\n[[vcenter]]\nname = \"a\"\nurl = \"{}\"\n",
            env.sims[0].base_url()
        ),
    )
    .unwrap();
    let report = env.reload().await.json();
    assert!(
        changed(&report)
            .iter()
            .any(|c| c == "listen: request limits"),
        "{report}"
    );
    assert!(
        changed(&report)
            .iter()
            .any(|c| c == "listen: connection limits and timeouts for new connections"),
        "{report}"
    );
    let r = env.http.api_list(&sid, &body).await;
    assert_eq!(r.status, 400);
    assert!(r.text().contains("1024 bytes"), "{}", r.text());
    // One connection open (this client's, kept alive) is now every slot there is.
    assert_eq!(env.http.whoami(Family::Api, &sid).await.status, 200);
    let ready = env.admin.call(Method::GET, "/readyz", &[], None).await;
    assert_eq!(ready.status, 503, "{}", ready.text());
    assert!(
        ready.text().contains("all 1 client connections"),
        "{}",
        ready.text()
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_under_load_loses_no_request() {
    let sims = start_sims(vec![
        sim_config(30, 1),
        sim_config(30, 2),
        sim_config(30, 3),
    ])
    .await;
    let path = config_path("reload-load");
    let two = |env_sims: &[SimHandle]| {
        let mut toml = format!("{}[cache]\nttl = \"200ms\"\n", common::LISTEN);
        for (name, s) in [("a", &env_sims[0]), ("b", &env_sims[1])] {
            toml.push_str(&format!(
                "\n[[vcenter]]\nname = \"{name}\"\nurl = \"{}\"\n",
                s.base_url()
            ));
        }
        toml
    };
    std::fs::write(&path, two(&sims)).unwrap();
    let env = Env::start_from_file(sims, &path).await;
    let sid = env.http.session(Family::Rest, ADMIN.0, ADMIN.1).await;
    let ab = union(&[&env.sims[0], &env.sims[1]]);
    let ac = union(&[&env.sims[0], &env.sims[2]]);

    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for n in 0..6 {
        let (http, sid, stop, answered) = (
            env.http.clone(),
            sid.clone(),
            stop.clone(),
            answered.clone(),
        );
        let (ab, ac) = (ab.clone(), ac.clone());
        clients.push(tokio::spawn(async move {
            let query = every_service_query();
            let path = format!("/rest/cis/tasks?{query}");
            while !stop.load(Ordering::Relaxed) {
                // Every third request refetches: fan-outs cross the reloads too.
                let headers: &[(&str, &str)] = if n % 3 == 0 {
                    &[
                        ("vmware-api-session-id", &sid),
                        ("cache-control", "no-cache"),
                    ]
                } else {
                    &[("vmware-api-session-id", &sid)]
                };
                let r = http
                    .try_call(Method::GET, &path, headers, None)
                    .await
                    .unwrap_or_else(|e| panic!("lost to a reload: {e}"));
                assert_eq!(r.status, 200, "{}", r.text());
                let ids: BTreeSet<String> = rest_keys(&r.json()).into_iter().collect();
                assert!(
                    ids == ab || ids == ac,
                    "a mixed answer: {} tasks",
                    ids.len()
                );
                answered.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let three = |with_c: bool| {
        let mut toml = format!(
            "{}[cache]\nttl = \"{}\"\n",
            common::LISTEN,
            if with_c { "300ms" } else { "200ms" }
        );
        let second = if with_c { &env.sims[2] } else { &env.sims[1] };
        let name = if with_c { "c" } else { "b" };
        for (name, s) in [("a", &env.sims[0]), (name, second)] {
            toml.push_str(&format!(
                "\n[[vcenter]]\nname = \"{name}\"\nurl = \"{}\"\n",
                s.base_url()
            ));
        }
        toml
    };
    let mut reloads = 0;
    for round in 0..12 {
        tokio::time::sleep(std::time::Duration::from_millis(60)).await;
        std::fs::write(&path, three(round % 2 == 0)).unwrap();
        let r = env.reload().await;
        assert_eq!(r.status, 200, "{}", r.text());
        reloads += 1;
    }
    tokio::time::sleep(std::time::Duration::from_millis(60)).await;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    let answered = answered.load(Ordering::Relaxed);
    assert!(
        answered > reloads,
        "{answered} answers over {reloads} reloads"
    );
    // Every removed vCenter's sessions are logged out (the last reload left a and
    // b), including any a request in flight across a reload opened: once the last
    // such request is over.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while env.sims[2].stats().sessions_open != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "c still has {} sessions open",
            env.sims[2].stats().sessions_open
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    env.stop().await;
}
