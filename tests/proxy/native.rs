//! vcproxy's own API (`/vcproxy/v1/`): every task with its vCenter named, the
//! vCenters chosen by name, each vCenter's failure reported on its own; and the
//! watch stream: a snapshot, changes as simulated time advances, resuming with
//! `Last-Event-ID`, and one upstream request per vCenter per TTL however many
//! watch.

use http::Method;
use http_body_util::BodyExt;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::common::{every_service_query, BoundProxy, Env, Http};
use super::{on_lists, three_static, ADMIN};
use vcproxy::sim::Faults;
use vcproxy::{Family, WatchSettings};

fn tasks_path(extra: &str) -> String {
    format!("/vcproxy/v1/tasks?{}{extra}", every_service_query())
}

/// (vcenter, task) pairs of a native answer.
fn pairs(v: &Value) -> BTreeSet<(String, String)> {
    v["tasks"]
        .as_array()
        .unwrap_or_else(|| panic!("no tasks in {v}"))
        .iter()
        .map(|t| {
            (
                t["vcenter"].as_str().unwrap().to_owned(),
                t["task"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn expected(env: &Env, vcenters: &[usize]) -> BTreeSet<(String, String)> {
    vcenters
        .iter()
        .flat_map(|&i| {
            env.sims[i]
                .task_ids()
                .into_iter()
                .map(move |t| (format!("vc{}", i + 1), t))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_task_names_its_vcenter_and_failures_stay_per_vcenter() {
    let env = Env::start(three_static(), "", "").await;
    let sid = env.http.session(Family::Api, ADMIN.0, ADMIN.1).await;
    let h = [("vmware-api-session-id", sid.as_str())];

    let r = env.http.call(Method::GET, &tasks_path(""), &h, None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(pairs(&v), expected(&env, &[0, 1, 2]));
    for (i, vc) in v["vcenters"].as_array().unwrap().iter().enumerate() {
        assert_eq!(vc["name"], format!("vc{}", i + 1));
        assert_eq!(vc["ok"], true);
        assert_eq!(vc["tasks"], env.sims[i].task_ids().len());
    }
    let again = env.http.call(Method::GET, &tasks_path(""), &h, None).await;
    assert_eq!(again.cache(), "hit");
    assert_eq!(env.upstream_lists(), vec![1, 1, 1]);

    // Some vCenters, by name.
    let some = env
        .http
        .call(
            Method::GET,
            &tasks_path("&vcenter=vc3&vcenter=vc1"),
            &h,
            None,
        )
        .await;
    assert_eq!(pairs(&some.json()), expected(&env, &[0, 2]));
    assert_eq!(env.upstream_lists(), vec![2, 1, 2]);
    let unknown = env
        .http
        .call(Method::GET, &tasks_path("&vcenter=vc9"), &h, None)
        .await;
    assert_eq!(unknown.status, 400);
    assert!(
        unknown
            .text()
            .contains("vcenter: there is no vCenter named"),
        "{}",
        unknown.text()
    );

    // A failing vCenter is reported, not fatal.
    env.sims[1]
        .set_faults(on_lists(Faults {
            error_rate: 1.0,
            ..Faults::default()
        }))
        .unwrap();
    let r = env
        .http
        .call(
            Method::GET,
            &tasks_path(""),
            &[
                ("vmware-api-session-id", &sid),
                ("cache-control", "no-cache"),
            ],
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(pairs(&v), expected(&env, &[0, 2]));
    let vc2 = &v["vcenters"][1];
    assert_eq!(
        (vc2["name"].as_str(), vc2["ok"].as_bool()),
        (Some("vc2"), Some(false))
    );
    assert_eq!(vc2["status"], 503);
    assert!(vc2["error"].is_object(), "{vc2}");

    // The web view's cookie authenticates too; nothing does without a session.
    let by_cookie = env
        .http
        .call(
            Method::GET,
            "/vcproxy/v1/vcenters",
            &[("cookie", &format!("theme=dark; vcproxy_ui={sid}"))],
            None,
        )
        .await;
    assert_eq!(
        by_cookie.json()["vcenters"],
        serde_json::json!(["vc1", "vc2", "vc3"])
    );
    let none = env.http.call(Method::GET, &tasks_path(""), &[], None).await;
    assert_eq!(none.status, 401);
    assert_eq!(none.json()["error_type"], "UNAUTHENTICATED");
    env.stop().await;
}

/// One Server-Sent Events stream, read frame by frame.
struct Stream {
    body: hyper::body::Incoming,
    buffer: Vec<u8>,
}

#[derive(Debug)]
struct Event {
    id: String,
    event: String,
    data: Value,
}

impl Stream {
    async fn open(http: &Http, path: &str, headers: &[(&str, &str)]) -> Stream {
        let r = http
            .send(http.request(Method::GET, path, headers, None))
            .await
            .unwrap();
        Stream::of(r)
    }

    /// The stream an answer carries.
    fn of(r: http::Response<hyper::body::Incoming>) -> Stream {
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "text/event-stream");
        Stream {
            body: r.into_body(),
            buffer: Vec::new(),
        }
    }

    /// The next frame as sent (up to and with its blank line), heartbeats
    /// included, within 10 s.
    async fn next_frame(&mut self) -> String {
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if let Some(end) = self.buffer.windows(2).position(|w| w == b"\n\n") {
                    let frame: Vec<u8> = self.buffer.drain(..end + 2).collect();
                    return String::from_utf8(frame).unwrap();
                }
                let frame = self.body.frame().await.expect("the stream ended").unwrap();
                if let Ok(bytes) = frame.into_data() {
                    self.buffer.extend_from_slice(&bytes);
                }
            }
        })
        .await
        .expect("no frame within 10 s")
    }

    /// The next event (heartbeats skipped).
    async fn next(&mut self) -> Event {
        loop {
            let text = self.next_frame().await;
            let (mut id, mut event, mut data) = (String::new(), String::new(), String::new());
            for line in text.lines() {
                if let Some(v) = line.strip_prefix("id: ") {
                    id = v.into();
                } else if let Some(v) = line.strip_prefix("event: ") {
                    event = v.into();
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data.push_str(v);
                    data.push('\n');
                }
            }
            if event.is_empty() {
                continue; // a heartbeat
            }
            return Event {
                id,
                event,
                data: serde_json::from_str(&data).unwrap(),
            };
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watch_stream_sends_a_snapshot_then_changes_and_resumes() {
    let env = Env::start(three_static(), "[cache]\nttl = \"200ms\"", "").await;
    let sid = env.http.session(Family::Api, ADMIN.0, ADMIN.1).await;
    let path = format!(
        "/vcproxy/v1/tasks/watch?{}&vcenter=vc1",
        every_service_query()
    );
    let mut s = Stream::open(&env.http, &path, &[("vmware-api-session-id", &sid)]).await;
    let snapshot = s.next().await;
    assert_eq!(snapshot.event, "snapshot");
    assert_eq!(pairs(&snapshot.data), expected(&env, &[0]));
    let status_of = |v: &Value| -> BTreeMap<String, String> {
        v["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["task"].as_str().unwrap().to_owned(),
                    t["info"]["status"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let before = status_of(&snapshot.data);
    let unfinished = before
        .values()
        .filter(|s| *s == "RUNNING" || *s == "PENDING" || *s == "BLOCKED")
        .count();
    assert!(unfinished > 0, "the simulator has tasks still to finish");

    // Simulated days pass on vc1: every unfinished task changes.
    env.sims[0].advance(Duration::from_secs(7 * 24 * 3600));
    let mut changed = BTreeMap::new();
    let mut last_id = String::new();
    while changed.len() < unfinished {
        let e = s.next().await;
        assert_eq!(e.event, "task", "{e:?}");
        assert_eq!(e.data["vcenter"], "vc1");
        assert_eq!(e.data["change"], "changed");
        let task = e.data["task"].as_str().unwrap().to_owned();
        assert!(before.contains_key(&task));
        changed.insert(task, e.data["info"]["status"].as_str().unwrap().to_owned());
        last_id = e.id;
    }
    assert!(
        changed.values().all(|s| s == "SUCCEEDED" || s == "FAILED"),
        "{changed:?}"
    );
    drop(s);

    // Reconnecting with Last-Event-ID resumes: no second snapshot.
    let mut resumed = Stream::open(
        &env.http,
        &path,
        &[("vmware-api-session-id", &sid), ("last-event-id", &last_id)],
    )
    .await;
    let sims_before = env.upstream_lists();
    // An unknown id (another hub's) gets a snapshot instead.
    let mut fresh = Stream::open(
        &env.http,
        &path,
        &[("vmware-api-session-id", &sid), ("last-event-id", "abc-1")],
    )
    .await;
    assert_eq!(fresh.next().await.event, "snapshot");
    // vc1's failure is an event too, on both streams.
    env.sims[0]
        .set_faults(on_lists(Faults {
            error_rate: 1.0,
            ..Faults::default()
        }))
        .unwrap();
    let e = resumed.next().await;
    assert_eq!(e.event, "vcenter", "{e:?}");
    assert_eq!(
        (e.data["name"].as_str(), e.data["ok"].as_bool()),
        (Some("vc1"), Some(false))
    );
    assert_eq!(fresh.next().await.event, "vcenter");
    assert!(env.upstream_lists()[0] > sims_before[0]);
    assert_eq!(env.upstream_lists()[1..], [0, 0], "only vc1 was asked");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_watchers_cost_one_request_per_vcenter_per_ttl() {
    let ttl = Duration::from_millis(500);
    // Small answers: this is about requests upstream, not about bytes to clients.
    let sims = (1..=3)
        .map(|seed| super::common::sim_config(4, seed))
        .collect();
    let env = Env::start(
        sims,
        "[cache]\nttl = \"500ms\"\nstale_while_revalidate = \"0s\"",
        "",
    )
    .await;
    let sid = env.http.session(Family::Api, ADMIN.0, ADMIN.1).await;
    let path = format!("/vcproxy/v1/tasks/watch?{}", every_service_query());
    let started = std::time::Instant::now();
    let rss_before = rss_kib();
    let mut streams = Vec::new();
    for _ in 0..1000 {
        let (http, path, sid) = (env.http.clone(), path.clone(), sid.clone());
        streams.push(tokio::spawn(async move {
            let mut s = Stream::open(&http, &path, &[("vmware-api-session-id", &sid)]).await;
            let e = s.next().await;
            assert_eq!(e.event, "snapshot");
            s
        }));
    }
    let mut open = Vec::new();
    for s in streams {
        open.push(s.await.unwrap());
    }
    // What a watcher holds is bounded (a receiver, a short queue, its connection):
    // both ends of 1000 streams, in this process, stay far below a MiB each.
    let per_watcher = rss_kib().saturating_sub(rss_before) / 1000;
    assert!(per_watcher < 1024, "{per_watcher} KiB per watcher");
    tokio::time::sleep(3 * ttl).await;
    let elapsed = started.elapsed();
    let most = (elapsed.as_millis() / ttl.as_millis()) as u64 + 2;
    for (i, n) in env.upstream_lists().into_iter().enumerate() {
        assert!(
            (1..=most).contains(&n),
            "vc{}: {n} List Tasks requests for 1000 watchers over {elapsed:?} (TTL {ttl:?}, at most {most})",
            i + 1
        );
    }
    drop(open);
    env.stop().await;
}

/// This process's resident memory, in KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// One simulator (vc1: 120 tasks, its clock still), the proxy in front with a short
/// TTL and watch streams paced and bounded by `watch`.
async fn watch_env(watch: WatchSettings) -> Env {
    let sims = super::common::start_sims(vec![super::common::sim_config(120, 1)]).await;
    let urls: Vec<String> = sims.iter().map(|s| s.base_url()).collect();
    let head = format!(
        "{}[cache]\nttl = \"100ms\"\nstale_while_revalidate = \"0s\"\n",
        super::common::LISTEN
    );
    let config = super::common::config(&head, &urls, |_| String::new());
    Env::start_bound(sims, BoundProxy::bind(&config, watch).await)
}

fn watch_path() -> String {
    format!(
        "/vcproxy/v1/tasks/watch?{}&vcenter=vc1",
        every_service_query()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_watch_stream_sends_heartbeat_comments() {
    let env = watch_env(WatchSettings {
        heartbeat: Duration::from_millis(100),
        ..WatchSettings::default()
    })
    .await;
    let sid = env.http.session(Family::Api, ADMIN.0, ADMIN.1).await;
    let mut s = Stream::open(&env.http, &watch_path(), &[("vmware-api-session-id", &sid)]).await;
    assert_eq!(s.next().await.event, "snapshot");
    // Nothing changes (the simulator's clock stands still): what comes is
    // heartbeats, comment lines an EventSource ignores, never an event.
    for _ in 0..3 {
        let frame = s.next_frame().await;
        assert_eq!(frame, ": heartbeat\n\n", "not a heartbeat comment");
        assert!(
            !frame
                .lines()
                .any(|l| l.starts_with("data:") || l.starts_with("event:")),
            "{frame:?}"
        );
    }
    drop(s);
    env.stop().await;
}

/// What time changes in a task's Info: its status, progress and times. (The
/// native answer's Info is in `/rest`'s shape, the simulator's map in `/api`'s; these
/// fields read the same in both.)
fn progress(info: &Value) -> Value {
    serde_json::json!([
        info["status"],
        info["progress"]["completed"],
        info["start_time"],
        info["end_time"],
    ])
}

/// Each task's [`progress`] by id, from a native answer (one vCenter's tasks).
fn states(v: &Value) -> BTreeMap<String, Value> {
    v["tasks"]
        .as_array()
        .unwrap_or_else(|| panic!("no tasks in {v}"))
        .iter()
        .map(|t| (t["task"].as_str().unwrap().to_owned(), progress(&t["info"])))
        .collect()
}

/// Each task's [`progress`] by id, as the simulator has them now.
fn sim_states(sim: &vcproxy::sim::SimHandle) -> BTreeMap<String, Value> {
    let tasks: BTreeMap<String, Value> = serde_json::from_slice(&sim.tasks_api_json()).unwrap();
    tasks
        .into_iter()
        .map(|(id, info)| (id, progress(&info)))
        .collect()
}

/// The sequence number of an event id (`<hub>-<sequence>`).
fn seq(id: &str) -> u64 {
    id.rsplit_once('-').unwrap().1.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_that_falls_behind_gets_a_fresh_snapshot() {
    // Two refreshes' frames in the broadcast, two in a watcher's queue (one
    // frame: one refresh's events).
    let env = watch_env(WatchSettings {
        broadcast: 2,
        queue: 2,
        ..WatchSettings::default()
    })
    .await;
    let sid = env.http.session(Family::Api, ADMIN.0, ADMIN.1).await;
    let path = watch_path();
    let h = [("vmware-api-session-id", sid.as_str())];

    // The laggard: HTTP/2 with a 4 KiB stream window. Once it stops reading, the
    // proxy may send it 4 KiB more, however much the sockets would buffer; then
    // hyper holds a frame or two for it, its queue fills, and its watcher stops
    // taking frames from the broadcast. Here, with the broadcast's two, that is
    // seven frames (the refreshes below change some thirty tasks each, more than
    // 4 KiB): the eighth refresh leaves it behind; thirty are far past that.
    let tcp = tokio::net::TcpStream::connect(env.addr).await.unwrap();
    let (mut h2, conn) =
        hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .initial_stream_window_size(4096)
            .handshake(hyper_util::rt::TokioIo::new(tcp))
            .await
            .unwrap();
    let conn = tokio::spawn(conn);
    let r = h2
        .send_request(env.http.request(Method::GET, &path, &h, None))
        .await
        .unwrap();
    let mut laggard = Stream::of(r);
    let first = laggard.next().await;
    assert_eq!(first.event, "snapshot");
    assert_eq!(states(&first.data), sim_states(&env.sims[0]));

    // A reader of the same question (the same hub) sees every refresh's changes:
    // each step of simulated time, waited for there, is at least one more frame
    // broadcast.
    let mut reader = Stream::open(&env.http, &path, &h).await;
    let snapshot = reader.next().await;
    assert_eq!(snapshot.event, "snapshot");
    let mut seen = states(&snapshot.data);
    let mut last_seq = seq(&snapshot.id);
    for step in 1..=30 {
        env.sims[0].advance(Duration::from_secs(10));
        let now = sim_states(&env.sims[0]);
        assert_ne!(seen, now, "step {step} changed no task");
        while seen != now {
            let e = reader.next().await;
            assert_eq!(e.event, "task", "the reader keeps up: {e:?}");
            assert!(seq(&e.id) > last_seq, "{e:?}");
            last_seq = seq(&e.id);
            let task = e.data["task"].as_str().unwrap().to_owned();
            match e.data["change"].as_str() {
                Some("removed") => seen.remove(&task),
                _ => seen.insert(task, progress(&e.data["info"])),
            };
        }
    }

    // Read at last, the laggard gets what was queued for it, then a new snapshot:
    // the tasks as they are now.
    let fresh = loop {
        let e = laggard.next().await;
        if e.event == "snapshot" {
            break e;
        }
        assert_eq!(e.event, "task", "{e:?}");
    };
    assert_eq!(states(&fresh.data), sim_states(&env.sims[0]));
    assert_ne!(states(&fresh.data), states(&first.data));
    assert_eq!(
        seq(&fresh.id),
        last_seq,
        "the snapshot stands at the last event"
    );
    drop((laggard, reader, h2));
    conn.await.unwrap().unwrap();
    env.stop().await;
}
