//! The connections themselves: TLS towards vCenters and clients, HTTP/2, large
//! answers, the client listener's limits.

use crate::common::{self, every_service_query, rest_keys, start_sims, Env, Http};
use crate::{direct_raw, svc_body, three_static, ADMIN, SVC};
use std::time::Duration;
use vcproxy::Family;

fn tls_sims() -> Vec<vcproxy::sim::SimConfig> {
    three_static()
        .into_iter()
        .map(|mut c| {
            c.tls = true;
            c
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_vcenters_are_verified_by_ca_file_or_pinned_fingerprint() {
    let sims = start_sims(tls_sims()).await;
    let dir = common::temp_dir("ca");
    let urls: Vec<String> = sims.iter().map(|s| s.base_url()).collect();
    assert!(urls.iter().all(|u| u.starts_with("https://")));
    // vc1 and vc2 by CA file, vc3 by pin: per-vCenter settings, so write one
    // config by hand.
    let config = common::config(common::LISTEN, &urls, |i| {
        if i < 2 {
            let path = dir.join(format!("vc{i}.pem"));
            std::fs::write(&path, sims[i].cert_pem().unwrap()).unwrap();
            format!("ca_file = {:?}", path.display().to_string())
        } else {
            format!("pin_sha256 = \"{}\"", sims[i].cert_fingerprint().unwrap())
        }
    });
    let env = Env::start_with_config(sims, &config).await;
    let sid = env.http.session(Family::Api, ADMIN.0, ADMIN.1).await;
    let r = env.http.api_list(&sid, &svc_body()).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(env.upstream_lists(), vec![1, 1, 1]);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_or_wrongly_pinned_vcenter_is_refused() {
    // Trust comes only from configuration: a self-signed vCenter with neither a CA
    // file nor a pin fails verification (system roots do not hold it).
    let sims = start_sims(vec![tls_sims().remove(0), tls_sims().remove(1)]).await;
    let urls: Vec<String> = sims.iter().map(|s| s.base_url()).collect();
    let wrong_pin = sims[0].cert_fingerprint().unwrap();
    let config = common::config(common::LISTEN, &urls, |_| {
        format!("pin_sha256 = \"{wrong_pin}\"")
    });
    let env = Env::start_with_config(sims, &config).await;
    // vc1 is pinned right; vc2 is pinned to vc1's certificate: refused.
    let r = env.http.login(Family::Rest, ADMIN.0, ADMIN.1).await;
    assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("vcproxy-upstream"), Some("vc2"));
    let msg = r.json()["value"]["messages"][0]["default_message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(msg.contains("vc2"), "{msg}");
    assert_eq!(
        env.sims[1].stats().sessions_opened,
        0,
        "no credentials sent to vc2"
    );
    // And the login opened on vc1 was closed again.
    assert_eq!(env.sims[0].stats().sessions_open, 0);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_front_end_serves_tls_and_http2() {
    let cert = vcproxy::net::tls::self_signed(&["127.0.0.1", "localhost"]).unwrap();
    let dir = common::temp_dir("front-tls");
    std::fs::write(dir.join("cert.pem"), &cert.cert_pem).unwrap();
    std::fs::write(dir.join("key.pem"), &cert.key_pem).unwrap();
    let sims = start_sims(three_static()).await;
    let head = format!(
        "[listen]\naddr = \"127.0.0.1:0\"\ntls_cert = {:?}\ntls_key = {:?}\n[admin]\naddr = \"127.0.0.2:0\"\n",
        dir.join("cert.pem").display().to_string(),
        dir.join("key.pem").display().to_string()
    );
    let urls: Vec<String> = sims.iter().map(|s| s.base_url()).collect();
    let config = common::config(&head, &urls, |_| String::new());
    let env = Env::start_with_config(sims, &config).await;
    let base = format!("https://127.0.0.1:{}", env.addr.port());
    for client in [
        Http::tls(base.clone(), common::roots(&cert.cert_pem)),
        Http::h2(base.clone(), common::roots(&cert.cert_pem)),
    ] {
        let sid = client.session(Family::Rest, ADMIN.0, ADMIN.1).await;
        let r = client
            .rest_list(&sid, &format!("filter_spec.services={SVC}"))
            .await;
        assert_eq!(r.status, 200);
        assert!(!rest_keys(&r.json()).is_empty());
    }
    // Plain HTTP/2 (prior knowledge) on a clear-text listener too.
    let plain = Env::start(three_static(), "", "").await;
    let h2 = Http::h2(plain.http.base.clone(), rustls::RootCertStore::empty());
    let sid = h2.session(Family::Api, ADMIN.0, ADMIN.1).await;
    assert_eq!(h2.api_list(&sid, &svc_body()).await.status, 200);
    plain.stop().await;
    env.stop().await;
}

/// Large answers leave the proxy with their head written ahead of the body
/// (src/head_first.rs). Whatever the writes, every client must get the whole answer,
/// byte for byte: HTTP/1.1 and HTTP/2 in clear text, fetched and cached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_answers_arrive_whole_over_http1_and_http2() {
    let env = Env::start(three_static(), "", "").await;
    let all = every_service_query();
    let mut expected = std::collections::BTreeSet::new();
    for s in &env.sims {
        let d = direct_raw(s, Family::Rest, &all, "").await;
        assert_eq!(d.status, 200);
        expected.extend(rest_keys(&d.json()));
    }
    let h2 = Http::h2(env.http.base.clone(), rustls::RootCertStore::empty());
    let sid = env.http.session(Family::Rest, ADMIN.0, ADMIN.1).await;
    let fetched = env.http.rest_list(&sid, &all).await;
    assert_eq!((fetched.status.as_u16(), fetched.cache()), (200, "miss"));
    assert!(
        fetched.body.len() > 4 * vcproxy::net::head_first::MIN_BODY,
        "{} bytes",
        fetched.body.len()
    );
    let keys = rest_keys(&fetched.json());
    assert_eq!(keys.len(), expected.len());
    assert_eq!(
        keys.into_iter().collect::<std::collections::BTreeSet<_>>(),
        expected
    );
    for client in [&env.http, &h2] {
        let r = client.rest_list(&sid, &all).await;
        assert_eq!((r.status.as_u16(), r.cache()), (200, "hit"));
        assert_eq!(
            r.header("content-length"),
            Some(&*fetched.body.len().to_string())
        );
        assert!(
            r.body == fetched.body,
            "the cached answer differs from the fetched one"
        );
    }
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_and_header_limits_hold() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let sims = start_sims(three_static()).await;
    let urls: Vec<String> = sims.iter().map(|s| s.base_url()).collect();
    let head =
        "[listen]\naddr = \"127.0.0.1:0\"\nmax_connections = 2\nmax_header_bytes = \"16KiB\"\n";
    let config = common::config(head, &urls, |_| String::new());
    let env = Env::start_with_config(sims, &config).await;
    // Two clients hold both connection slots.
    let hold1 = tokio::net::TcpStream::connect(env.addr).await.unwrap();
    let hold2 = tokio::net::TcpStream::connect(env.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // A third is not served while they hold them...
    let third = tokio::time::timeout(
        Duration::from_millis(500),
        env.http.login(Family::Rest, ADMIN.0, ADMIN.1),
    )
    .await;
    assert!(
        third.is_err(),
        "a third connection was served past max_connections = 2"
    );
    // ...and is once one of them leaves.
    drop(hold1);
    let r = env.http.login(Family::Rest, ADMIN.0, ADMIN.1).await;
    assert_eq!(r.status, 200);
    drop(hold2);

    // A request head over max_header_bytes is refused with 431.
    let mut s = tokio::net::TcpStream::connect(env.addr).await.unwrap();
    let big = "a".repeat(20 * 1024);
    s.write_all(
        format!("GET /rest/cis/tasks HTTP/1.1\r\nhost: x\r\nx-big: {big}\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut buf = vec![0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 431"), "{head}");
    env.stop().await;
}
