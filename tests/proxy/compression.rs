//! Compressed answers stored once (issue 13): every copy decodes to the identity
//! bytes, `Accept-Encoding` picks the copy, `If-None-Match` gets `304` without an
//! upstream request, sessions and errors stay uncompressed, the memory cap counts
//! the copies, and JSON-RPC's gzip answer is one stream of three members.

use super::*;
use common::Resp;
use http::Method;
use std::io::Read;
use std::time::Duration;

/// Every cached answer of this test's filters is over 1 KiB.
const TTL: &str = "[cache]\nttl = \"1h\"\nstale_while_revalidate = \"0s\"";

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    // Multi-member, as Go's gzip.Reader and urllib3 read it.
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("a valid gzip stream");
    out
}

fn unzstd(bytes: &[u8]) -> Vec<u8> {
    zstd::stream::decode_all(bytes).expect("a valid zstd stream")
}

/// A List Tasks or Get Task request in `family` with extra headers.
#[derive(Clone)]
struct Ask {
    method: Method,
    path: String,
    body: Option<Vec<u8>>,
}

impl Ask {
    fn list(family: Family) -> Ask {
        match family {
            Family::Rest => Ask {
                method: Method::GET,
                path: format!("/rest/cis/tasks?{}", svc_query()),
                body: None,
            },
            _ => Ask {
                method: Method::POST,
                path: "/api/cis/tasks?action=list".into(),
                body: Some(svc_body().into_bytes()),
            },
        }
    }

    async fn send(&self, env: &Env, sid: &str, headers: &[(&str, &str)]) -> Resp {
        self.send_via(&env.http, sid, headers).await
    }

    async fn send_via(&self, http: &Http, sid: &str, headers: &[(&str, &str)]) -> Resp {
        let mut h = vec![(common::SESSION, sid), ("content-type", "application/json")];
        h.extend_from_slice(headers);
        http.call(self.method.clone(), &self.path, &h, self.body.as_deref())
            .await
    }
}

/// Asks until the cached answer carries its copies (they are made just after the
/// fetch, off the request's path): the answer with `accept`.
async fn once_encoded(env: &Env, sid: &str, ask: &Ask, accept: &str) -> Resp {
    for _ in 0..500 {
        let r = ask.send(env, sid, &[("accept-encoding", accept)]).await;
        assert_eq!(r.status, 200, "{}", r.text());
        if r.header("etag").is_some() {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{} never got its copies", ask.path);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_coding_decodes_to_exactly_the_identity_body() {
    for family in [Family::Rest, Family::Api] {
        let (env, sid) = logged_in(TTL, family).await;
        // Get Task answers are around 1 KiB: some tasks' are compressed, some not.
        let ids = env.sims[0].task_ids();
        let gets = ids[..8].iter().map(|id| Ask {
            method: Method::GET,
            path: match family {
                Family::Rest => format!("/rest/cis/tasks/{id}"),
                _ => format!("/api/cis/tasks/{id}"),
            },
            body: None,
        });
        let (mut compressed, mut small) = (0, 0);
        for ask in std::iter::once(Ask::list(family)).chain(gets) {
            // The miss itself goes out as it is: the copies are made after it.
            let first = ask.send(&env, &sid, &[("accept-encoding", "gzip")]).await;
            assert_eq!(first.status, 200, "{}", first.text());
            assert_eq!(first.cache(), "miss");
            assert_eq!(first.header("content-encoding"), None);
            let identity = once_encoded(&env, &sid, &ask, "identity").await;
            assert_eq!(identity.header("content-encoding"), None);
            assert_eq!(identity.body, first.body, "{family} {}", ask.path);
            let tag = identity.header("etag").unwrap().to_owned();
            assert!(tag.starts_with("W/\""), "{tag}");
            if identity.body.len() < 1024 {
                // Too small to be worth a copy: identity whatever is accepted.
                let r = ask
                    .send(&env, &sid, &[("accept-encoding", "gzip, zstd")])
                    .await;
                assert_eq!(r.header("content-encoding"), None);
                assert_eq!(r.header("vary"), None);
                assert_eq!(r.body, identity.body);
                small += 1;
                continue;
            }
            compressed += 1;
            for (accept, coding) in [("gzip", "gzip"), ("zstd", "zstd")] {
                let r = ask.send(&env, &sid, &[("accept-encoding", accept)]).await;
                assert_eq!(r.status, 200);
                assert_eq!(r.cache(), "hit");
                assert_eq!(r.header("content-encoding"), Some(coding), "{accept}");
                assert_eq!(r.header("vary"), Some("accept-encoding"));
                assert_eq!(r.header("etag"), Some(&*tag), "one tag for every coding");
                assert_eq!(r.header("content-length"), Some(&*r.body.len().to_string()));
                let decoded = match coding {
                    "gzip" => gunzip(&r.body),
                    _ => unzstd(&r.body),
                };
                assert_eq!(decoded, identity.body, "{family} {} {coding}", ask.path);
                // Task JSON compresses well; a single task less so.
                let factor = if identity.body.len() > 10_000 { 3 } else { 1 };
                assert!(
                    r.body.len() * factor < identity.body.len(),
                    "{coding}: {} of {} bytes",
                    r.body.len(),
                    identity.body.len()
                );
            }
            let cc = identity.header("cache-control").unwrap();
            assert!(
                cc.starts_with("private, max-age=") && cc != "private, max-age=0",
                "{cc}"
            );
            assert!(identity.header("last-modified").unwrap().ends_with(" GMT"));
        }
        assert!(
            compressed >= 2 && small >= 1,
            "{compressed} compressed, {small} small"
        );
        // One fetch per question: the copies cost vCenter nothing.
        assert_eq!(env.upstream_lists(), vec![1, 1, 1], "{family}");
        env.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_encoding_q_values_pick_the_copy() {
    let (env, sid) = logged_in(TTL, Family::Rest).await;
    let ask = Ask::list(Family::Rest);
    let identity = once_encoded(&env, &sid, &ask, "identity").await;
    // On equal weights the smaller copy goes out.
    let size = |coding| {
        let ask = ask.clone();
        let (env, sid) = (&env, &sid);
        async move {
            let r = ask.send(env, sid, &[("accept-encoding", coding)]).await;
            assert_eq!(r.header("content-encoding"), Some(coding));
            r.body.len()
        }
    };
    let smaller = if size("zstd").await < size("gzip").await {
        "zstd"
    } else {
        "gzip"
    };
    for (accept, expected) in [
        (None, None),
        (Some("gzip, deflate"), Some("gzip")), // python-requests, the SDK
        (Some("gzip"), Some("gzip")),          // Go's net/http, govmomi
        (Some("gzip, deflate, br, zstd"), Some(smaller)), // curl, browsers
        (Some("gzip;q=0, zstd"), Some("zstd")),
        (Some("zstd;q=0.5, gzip;q=0.8"), Some("gzip")),
        (Some("gzip;q=0.5, identity"), None),
        (Some("*"), Some(smaller)),
        (Some("*;q=0, gzip;q=0.2"), Some("gzip")),
        (Some("identity;q=0"), None), // nothing acceptable that we have: identity
        (Some("*;q=0"), None),
        (Some("br"), None),
        (Some("gzip;q=7"), None), // a malformed weight refuses the coding
    ] {
        let headers: Vec<(&str, &str)> =
            accept.map(|a| ("accept-encoding", a)).into_iter().collect();
        let r = ask.send(&env, &sid, &headers).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-encoding"), expected, "{accept:?}");
        assert_eq!(r.header("vary"), Some("accept-encoding"), "{accept:?}");
        let body = match expected {
            Some("gzip") => gunzip(&r.body),
            Some(_) => unzstd(&r.body),
            None => r.body.to_vec(),
        };
        assert_eq!(body, identity.body, "{accept:?}");
    }
    // HTTP/2 (prior knowledge on the clear-text listener) negotiates the same way.
    let h2 = Http::h2(env.http.base.clone(), rustls::RootCertStore::empty());
    for (accept, expected) in [
        ("gzip", Some("gzip")),
        ("zstd;q=1, gzip;q=0.5", Some("zstd")),
        ("identity", None),
    ] {
        let r = ask
            .send_via(&h2, &sid, &[("accept-encoding", accept)])
            .await;
        assert_eq!(r.version, http::Version::HTTP_2);
        assert_eq!(r.header("content-encoding"), expected, "HTTP/2 {accept}");
        assert_eq!(r.header("vary"), Some("accept-encoding"));
        let body = match expected {
            Some("gzip") => gunzip(&r.body),
            Some(_) => unzstd(&r.body),
            None => r.body.to_vec(),
        };
        assert_eq!(body, identity.body, "HTTP/2 {accept}");
    }
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_matching_tag_is_304_without_asking_vcenter_and_a_changed_answer_is_200() {
    // Simulators whose tasks move with simulated time.
    let sims: Vec<_> = three_static()
        .into_iter()
        .map(|c| sim::SimConfig {
            static_tasks: false,
            ..c
        })
        .collect();
    let env = Env::start(sims, TTL, "").await;
    let sid = env.http.session(Family::Rest, ADMIN.0, ADMIN.1).await;
    let ask = Ask::list(Family::Rest);
    let first = once_encoded(&env, &sid, &ask, "gzip").await;
    let tag = first.header("etag").unwrap().to_owned();
    let lists = env.upstream_lists();

    for inm in [
        tag.clone(),
        tag.trim_start_matches("W/").to_owned(),
        format!("\"other\", {tag}"),
        "*".into(),
    ] {
        let r = ask
            .send(
                &env,
                &sid,
                &[("if-none-match", &inm), ("accept-encoding", "gzip")],
            )
            .await;
        assert_eq!(r.status, 304, "If-None-Match: {inm}");
        assert!(r.body.is_empty());
        assert_eq!(r.header("etag"), Some(&*tag));
        assert_eq!(r.header("content-encoding"), None);
        assert!(r
            .header("cache-control")
            .unwrap()
            .starts_with("private, max-age="));
        assert_eq!(r.header("vary"), Some("accept-encoding"));
    }
    let r = ask
        .send(&env, &sid, &[("if-none-match", "\"something-else\"")])
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(env.upstream_lists(), lists, "no upstream request for a 304");

    // The tasks move on; a refetch (no-cache) makes a new entry with a new tag.
    for s in &env.sims {
        s.advance(Duration::from_secs(600));
    }
    let fresh = ask.send(&env, &sid, &[("cache-control", "no-cache")]).await;
    assert_eq!(fresh.status, 200);
    assert_ne!(fresh.body, first.body, "the simulators' tasks changed");
    let changed = once_encoded(&env, &sid, &ask, "identity").await;
    assert_ne!(changed.header("etag"), Some(&*tag));
    let r = ask.send(&env, &sid, &[("if-none-match", &tag)]).await;
    assert_eq!(r.status, 200, "the old tag no longer matches");
    assert_eq!(r.body, changed.body);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_and_errors_are_never_compressed() {
    let env = Env::start(three_static(), TTL, "").await;
    let gz = [("accept-encoding", "gzip, zstd")];
    for family in [Family::Rest, Family::Api] {
        let login = env.http.login(family, ADMIN.0, ADMIN.1).await;
        assert!(login.status.is_success());
        let sid = env.http.session(family, ADMIN.0, ADMIN.1).await;
        let path = match family {
            Family::Rest => "/rest/com/vmware/cis/session",
            _ => "/api/session",
        };
        let mut headers = vec![(common::SESSION, sid.as_str())];
        headers.extend_from_slice(&gz);
        let method = match family {
            Family::Rest => Method::POST,
            _ => Method::GET,
        };
        let path = match family {
            Family::Rest => format!("{path}?~action=get"),
            _ => path.to_owned(),
        };
        let whoami = env.http.call(method, &path, &headers, None).await;
        assert_eq!(whoami.status, 200, "{}", whoami.text());
        assert_eq!(whoami.header("content-encoding"), None, "{family} who-am-I");
        // An error (no filter), cached for error_ttl, stays identity.
        for _ in 0..3 {
            let r = match family {
                Family::Rest => {
                    env.http
                        .call(Method::GET, "/rest/cis/tasks", &headers, None)
                        .await
                }
                _ => {
                    env.http
                        .call(
                            Method::POST,
                            "/api/cis/tasks?action=list",
                            &headers,
                            Some(b"{}"),
                        )
                        .await
                }
            };
            assert_eq!(r.status, 400, "{}", r.text());
            assert_eq!(r.header("content-encoding"), None);
            assert_eq!(r.header("etag"), None);
        }
    }
    // The log-in answer, which holds the session id.
    let r = env
        .http
        .call(
            Method::POST,
            "/api/session",
            &[("authorization", &common::basic(ADMIN.0, ADMIN.1)), gz[0]],
            None,
        )
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(r.header("content-encoding"), None);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memory_cap_weighs_the_copies() {
    let (env, sid) = logged_in(TTL, Family::Rest).await;
    let ask = Ask::list(Family::Rest);
    let identity = once_encoded(&env, &sid, &ask, "identity").await;
    let gzip = ask.send(&env, &sid, &[("accept-encoding", "gzip")]).await;
    let zstd = ask.send(&env, &sid, &[("accept-encoding", "zstd")]).await;
    let metrics = env
        .admin
        .call(Method::GET, "/metrics", &[], None)
        .await
        .text();
    let weighed: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("vcproxy_cache_size_bytes "))
        .expect("the cache size gauge")
        .parse()
        .unwrap();
    let copies = (identity.body.len() + gzip.body.len() + zstd.body.len()) as u64;
    assert!(
        weighed >= copies,
        "weighed {weighed} bytes, the three copies alone are {copies}"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jsonrpc_gzip_answer_is_one_stream_of_three_members() {
    let (env, sid) = logged_in(TTL, Family::Api).await;
    let filter: serde_json::Value = serde_json::from_str(&svc_body()).unwrap();
    // The SDK's call with request id `id`, sent with `accept`.
    let send = |id: serde_json::Value, accept: &'static str| {
        let body = serde_json::json!({"jsonrpc":"2.0","method":"invoke","params":{
            "serviceId":"com.vmware.cis.tasks","operationId":"list",
            "input": common::typed::list_input(&filter),
            "ctx":{"securityCtx": Http::rpc_session(&sid)}},"id": id});
        let http = env.http.clone();
        async move { http.rpc_body(&body, &[("accept-encoding", accept)]).await }
    };
    // Until the copies exist, the answer is identity.
    let mut gz = None;
    for _ in 0..500 {
        let r = send(serde_json::json!("0"), "gzip, deflate").await;
        assert_eq!(r.status, 200);
        if r.header("content-encoding") == Some("gzip") {
            gz = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let gz = gz.expect("a gzip JSON-RPC answer");
    let plain = send(serde_json::json!("0"), "identity").await;
    assert_eq!(plain.header("content-encoding"), None);
    assert_eq!(
        gunzip(&gz.body),
        plain.body,
        "three members decode to the answer"
    );
    assert_eq!(gz.header("vary"), Some("accept-encoding"));
    // A single-member reader stops after the head: the stream is several members.
    let mut first = Vec::new();
    flate2::read::GzDecoder::new(&gz.body[..])
        .read_to_end(&mut first)
        .unwrap();
    assert_eq!(
        first,
        b"{\"jsonrpc\":\"2.0\",\"id\":\"0\",\"result\":{\"output\":"
    );
    // The id is the request's, in every coding.
    for id in ["\"abc\"", "42"] {
        let r = send(serde_json::from_str(id).unwrap(), "gzip").await;
        assert_eq!(r.header("content-encoding"), Some("gzip"));
        let v: serde_json::Value = serde_json::from_slice(&gunzip(&r.body)).unwrap();
        assert_eq!(v["id"].to_string(), id);
        assert_eq!(
            v["result"]["output"],
            serde_json::from_slice::<serde_json::Value>(&plain.body).unwrap()["result"]["output"]
        );
    }
    // zstd is not offered in JSON-RPC (no JSON-RPC client asks for it): identity.
    let r = send(serde_json::json!("0"), "zstd").await;
    assert_eq!(r.header("content-encoding"), None);
    assert_eq!(r.body, plain.body);
    env.stop().await;
}
