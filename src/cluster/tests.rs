//! The layer against a real `redis-server`: each test starts its own on a free
//! loopback port with a temporary directory, killed on drop. Without
//! `redis-server` on PATH the tests pass with a notice, unless `CI=true`, where
//! they fail.
//!
//! Timing: bounds are deadlines for waiting, never assertions that something was
//! fast.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use tokio::time::Instant;

use super::*;

// ---- the server

struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    args: Vec<String>,
}

static NEXT_DIR: AtomicU32 = AtomicU32::new(0);

impl RedisServer {
    /// A fresh plain-TCP server, or `None` (with a notice) when `redis-server` is
    /// missing outside CI.
    fn start() -> Option<RedisServer> {
        RedisServer::start_with(|port, _| vec!["--port".into(), port.to_string()])
    }

    /// `listen(port, dir)` gives the listening arguments (`--port`, or TLS ones).
    fn start_with(
        listen: impl FnOnce(u16, &std::path::Path) -> Vec<String>,
    ) -> Option<RedisServer> {
        if !redis_available() {
            return None;
        }
        let port = free_port();
        let dir = std::env::temp_dir().join(format!(
            "vcproxy-redis-{}-{}",
            std::process::id(),
            NEXT_DIR.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let mut args = listen(port, &dir);
        args.extend(
            [
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
            ]
            .map(String::from),
        );
        args.push(dir.display().to_string());
        let mut server = RedisServer {
            child: None,
            port,
            dir,
            args,
        };
        server.spawn();
        Some(server)
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        // Ready when the port accepts connections.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server did not listen on {} within 10 s",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn pid(&self) -> String {
        self.child.as_ref().expect("running").id().to_string()
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.pid()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill {signal} failed");
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the server and starts another on the same port (empty: no persistence).
    fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// A plain admin connection (no ACL user), for what the tests inspect.
    async fn admin(&self) -> MultiplexedConnection {
        redis::Client::open(self.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(child) = &self.child {
            // A stopped process still dies of SIGKILL; continue it anyway.
            let _ = Command::new("kill")
                .args(["-CONT", &child.id().to_string()])
                .status();
        }
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn redis_available() -> bool {
    let found = Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!(
                "redis-server is not on PATH and CI=true: install it (Debian: apt-get install \
                 redis-server; .ci/run does) to run the cluster tests"
            );
        }
        eprintln!("notice: redis-server not on PATH; skipping this cluster test");
    }
    found
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

// ---- the layer

const SECRET: &str = "0123456789abcdef0123456789abcdef-test-secret";

fn settings(url: String) -> ClusterSettings {
    ClusterSettings {
        url,
        username: None,
        password: None,
        ca_certs: Vec::new(),
        secret: Secret::new(SECRET),
        key_prefix: "vcproxy:".to_owned(),
        command_timeout: Duration::from_millis(250),
        connect_timeout: Duration::from_millis(500),
        breaker_failures: 3,
        breaker_probe: Duration::from_millis(300),
    }
}

fn start(server: &RedisServer) -> (Arc<Cluster>, ClusterMetrics) {
    start_settings(settings(server.url()), true)
}

fn start_settings(settings: ClusterSettings, subscriber: bool) -> (Arc<Cluster>, ClusterMetrics) {
    let metrics = ClusterMetrics::new();
    let cluster = Cluster::start_with(settings, metrics.clone(), Options { subscriber }).unwrap();
    (cluster, metrics)
}

/// Polls `f` every 20 ms until it holds; panics after `within`.
async fn eventually(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn up(cluster: &Cluster) {
    eventually("Redis up", Duration::from_secs(10), || cluster.is_up()).await;
}

async fn subscribed(cluster: &Cluster) {
    let mut rx = cluster.inner().subscribed.subscribe();
    tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|s| *s))
        .await
        .expect("the subscriber subscribes within 10 s")
        .unwrap();
}

/// Every key and its `DUMP`, through the admin connection (tests may SCAN).
async fn dump_all(server: &RedisServer) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut admin = server.admin().await;
    let mut cursor = 0u64;
    let mut out = Vec::new();
    loop {
        let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut admin)
            .await
            .unwrap();
        for key in keys {
            let dump: Vec<u8> = redis::cmd("DUMP")
                .arg(&key)
                .query_async(&mut admin)
                .await
                .unwrap();
            out.push((key, dump));
        }
        if next == 0 {
            return out;
        }
        cursor = next;
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn answer_name(cluster: &Cluster, generation: u64, material: &[u8]) -> String {
    let inner = cluster.inner();
    inner.answer_key(&inner.keys.answer_mac(generation, material), generation)
}

const TTL: Duration = Duration::from_secs(60);

// ---- answers

#[tokio::test]
async fn answer_round_trip() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (cluster, metrics) = start(&server);
    up(&cluster).await;
    assert_eq!(cluster.get_answer(b"alice|tasks?status=FAILED").await, None);
    cluster
        .put_answer(b"alice|tasks?status=FAILED", b"[1,2,3]", TTL)
        .await;
    assert_eq!(
        cluster
            .get_answer(b"alice|tasks?status=FAILED")
            .await
            .as_deref(),
        Some(&b"[1,2,3]"[..])
    );
    assert_eq!(cluster.get_answer(b"bob|tasks?status=FAILED").await, None);
    assert_eq!(metrics.l2_count("hit"), 1);
    assert_eq!(metrics.l2_count("miss"), 2);

    // Another replica with the same secret reads it; one with another secret does not.
    let (other, _) = start(&server);
    up(&other).await;
    assert_eq!(
        other
            .get_answer(b"alice|tasks?status=FAILED")
            .await
            .as_deref(),
        Some(&b"[1,2,3]"[..])
    );
    let mut foreign = settings(server.url());
    foreign.secret = Secret::new("another-secret-another-secret-another-secret");
    let (foreign, _) = start_settings(foreign, false);
    up(&foreign).await;
    assert_eq!(foreign.get_answer(b"alice|tasks?status=FAILED").await, None);

    // The TTL reaches Redis.
    let name = answer_name(&cluster, 0, b"alice|tasks?status=FAILED");
    let pttl: i64 = redis::cmd("PTTL")
        .arg(&name)
        .query_async(&mut server.admin().await)
        .await
        .unwrap();
    assert!(pttl > 0 && pttl <= 60_000, "pttl {pttl}");
}

#[tokio::test]
async fn a_value_moved_to_another_key_fails_authentication() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (cluster, metrics) = start(&server);
    up(&cluster).await;
    cluster.put_answer(b"alice|q1", b"alice's tasks", TTL).await;
    cluster
        .put_answer(b"mallory|q1", b"mallory's tasks", TTL)
        .await;
    let mut admin = server.admin().await;
    let alice: Vec<u8> = redis::cmd("GET")
        .arg(answer_name(&cluster, 0, b"alice|q1"))
        .query_async(&mut admin)
        .await
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg(answer_name(&cluster, 0, b"mallory|q1"))
        .arg(&alice)
        .query_async(&mut admin)
        .await
        .unwrap();
    assert_eq!(cluster.get_answer(b"mallory|q1").await, None);
    assert_eq!(metrics.error_count("decrypt"), 1);
    // A flipped bit fails too.
    let mut flipped = alice.clone();
    *flipped.last_mut().unwrap() ^= 1;
    let _: () = redis::cmd("SET")
        .arg(answer_name(&cluster, 0, b"alice|q1"))
        .arg(&flipped)
        .query_async(&mut admin)
        .await
        .unwrap();
    assert_eq!(cluster.get_answer(b"alice|q1").await, None);
    assert_eq!(metrics.error_count("decrypt"), 2);
}

#[tokio::test]
async fn a_dump_shows_no_key_material_value_session_id_or_record() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (cluster, _) = start(&server);
    up(&cluster).await;
    let material = b"alice@vsphere.local|/api/cis/tasks?status=RUNNING";
    let value = b"{\"task-4711\":{\"status\":\"RUNNING\",\"user\":\"alice\"}}";
    let id = "3f9c2e0b8d7a41f6b5e4c3d2a1908f7e";
    let record = b"alice@vsphere.local password=hunter2";
    cluster.put_answer(material, value, TTL).await;
    cluster.put_session(id, record, TTL).await;
    let FetchLock::Acquired(guard) = cluster.lock_fetch(material, Duration::from_secs(10)).await
    else {
        panic!("lock not acquired");
    };
    let dump = dump_all(&server).await;
    assert!(
        dump.len() >= 3,
        "answer, session and lock are stored: {}",
        dump.len()
    );
    for (key, bytes) in &dump {
        assert!(
            key.starts_with(b"vcproxy:"),
            "{}",
            String::from_utf8_lossy(key)
        );
        for secret in [
            &material[..],
            b"alice",
            &value[..],
            b"task-4711",
            id.as_bytes(),
            b"hunter2",
            &record[..],
            SECRET.as_bytes(),
        ] {
            assert!(
                !contains(key, secret),
                "a key name shows {:?}",
                String::from_utf8_lossy(secret)
            );
            assert!(
                !contains(bytes, secret),
                "a value shows {:?}",
                String::from_utf8_lossy(secret)
            );
        }
    }
    guard.release(&cluster).await;
}

#[tokio::test]
async fn purge_makes_old_answers_unreadable_here_and_on_other_replicas() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (cluster, _) = start(&server);
    let (other, _) = start(&server);
    up(&cluster).await;
    up(&other).await;
    cluster.put_answer(b"k", b"v", TTL).await;
    assert!(other.get_answer(b"k").await.is_some());
    cluster.purge_answers().await;
    assert_eq!(
        cluster.get_answer(b"k").await,
        None,
        "at once on the purging replica"
    );
    let deadline = GENERATION_REFRESH + Duration::from_secs(5);
    let start = Instant::now();
    while other.get_answer(b"k").await.is_some() {
        assert!(
            start.elapsed() < deadline,
            "the purge did not reach the other replica"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // New answers work in the new generation.
    cluster.put_answer(b"k", b"v2", TTL).await;
    assert_eq!(other.get_answer(b"k").await.as_deref(), Some(&b"v2"[..]));
}

// ---- one fetch across the cluster

/// N concurrent lock_fetch calls from `replicas`: one acquires; the others wait,
/// and all see the fetch done after the release. Returns the replicas' metrics.
async fn one_fetch(replicas: &[(Arc<Cluster>, ClusterMetrics)]) {
    let material = b"carol|tasks";
    let hold = Duration::from_secs(10);
    let attempts = replicas.iter().cycle().take(12).map(|(c, _)| {
        let c = c.clone();
        async move { (c.clone(), c.lock_fetch(material, hold).await) }
    });
    let results = futures_util::future::join_all(attempts).await;
    let mut guards = Vec::new();
    let mut waiters = Vec::new();
    for (cluster, result) in results {
        match result {
            FetchLock::Acquired(guard) => guards.push((cluster, guard)),
            FetchLock::HeldElsewhere => waiters.push(tokio::spawn(async move {
                let done = cluster
                    .wait_fetched(material, Duration::from_secs(10))
                    .await;
                (done, cluster.get_answer(material).await)
            })),
            FetchLock::Unavailable => panic!("Redis is up"),
        }
    }
    assert_eq!(guards.len(), 1, "exactly one acquires");
    assert_eq!(waiters.len(), 11);
    let (holder, guard) = guards.pop().unwrap();
    // Once the waiters listen (and have had time for their first poll), the holder
    // fetches, stores, releases.
    eventually("waiters listen", Duration::from_secs(10), || {
        replicas
            .iter()
            .map(|(c, _)| c.inner().done.receiver_count())
            .sum::<usize>()
            == 11
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    holder.put_answer(material, b"fetched once", TTL).await;
    guard.release(&holder).await;
    for waiter in waiters {
        let (done, answer) = tokio::time::timeout(Duration::from_secs(15), waiter)
            .await
            .expect("waiters finish within their bound")
            .unwrap();
        assert!(done);
        assert_eq!(answer.as_deref(), Some(&b"fetched once"[..]));
    }
    // Released: the next fetch can lock again.
    assert!(matches!(
        replicas[0].0.lock_fetch(material, hold).await,
        FetchLock::Acquired(_)
    ));
}

#[tokio::test]
async fn one_of_many_concurrent_fetchers_locks_the_others_are_notified() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let replicas: Vec<_> = (0..3).map(|_| start(&server)).collect();
    for (cluster, _) in &replicas {
        up(cluster).await;
        subscribed(cluster).await;
    }
    one_fetch(&replicas).await;
    let notified: u64 = replicas
        .iter()
        .map(|(_, m)| m.lock_wait_count("notified"))
        .sum();
    assert_eq!(notified, 11, "every waiter heard the done message");
}

#[tokio::test]
async fn without_pub_sub_waiters_see_the_release_by_polling() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let replicas: Vec<_> = (0..3)
        .map(|_| start_settings(settings(server.url()), false))
        .collect();
    for (cluster, _) in &replicas {
        up(cluster).await;
    }
    one_fetch(&replicas).await;
    let polled: u64 = replicas
        .iter()
        .map(|(_, m)| m.lock_wait_count("polled"))
        .sum();
    assert_eq!(polled, 11, "every waiter saw the release by polling");
}

#[tokio::test]
async fn a_dead_holder_lets_waiters_give_up_within_the_bound() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (holder, _) = start(&server);
    let (waiter, metrics) = start(&server);
    up(&holder).await;
    up(&waiter).await;
    subscribed(&waiter).await;
    // The holder "dies": its guard is leaked, the lock only expires.
    let FetchLock::Acquired(guard) = holder.lock_fetch(b"q", Duration::from_millis(400)).await
    else {
        panic!("lock not acquired");
    };
    std::mem::forget(guard);
    assert!(matches!(
        waiter.lock_fetch(b"q", Duration::from_secs(1)).await,
        FetchLock::HeldElsewhere
    ));
    let within = Duration::from_secs(3);
    let done = tokio::time::timeout(
        within + Duration::from_secs(5),
        waiter.wait_fetched(b"q", within),
    )
    .await
    .expect("wait_fetched returns within its bound");
    assert!(!done, "a holder that died is not a finished fetch");
    assert_eq!(metrics.lock_wait_count("timeout"), 1);

    // A waiter whose holder never finishes at all times out.
    let FetchLock::Acquired(guard) = holder.lock_fetch(b"q2", Duration::from_secs(60)).await else {
        panic!("lock not acquired");
    };
    let within = Duration::from_millis(500);
    let done = tokio::time::timeout(
        within + Duration::from_secs(5),
        waiter.wait_fetched(b"q2", within),
    )
    .await
    .expect("wait_fetched returns within its bound");
    assert!(!done);
    std::mem::forget(guard);
}

#[tokio::test]
async fn a_guard_dropped_without_release_frees_the_lock() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (cluster, _) = start(&server);
    up(&cluster).await;
    let FetchLock::Acquired(guard) = cluster.lock_fetch(b"q", Duration::from_secs(60)).await else {
        panic!("lock not acquired");
    };
    drop(guard);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match cluster.lock_fetch(b"q", Duration::from_secs(60)).await {
            FetchLock::Acquired(guard) => {
                guard.release(&cluster).await;
                break;
            }
            FetchLock::HeldElsewhere => {
                assert!(Instant::now() < deadline, "the dropped guard's lock stays");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            FetchLock::Unavailable => panic!("Redis is up"),
        }
    }
}

#[tokio::test]
async fn release_works_when_the_script_cache_was_flushed() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (cluster, _) = start(&server);
    up(&cluster).await;
    for round in 0..2 {
        let FetchLock::Acquired(guard) = cluster.lock_fetch(b"q", Duration::from_secs(60)).await
        else {
            panic!("round {round}: lock not acquired");
        };
        // EVALSHA meets NOSCRIPT; the layer falls back to EVAL.
        let _: () = redis::cmd("SCRIPT")
            .arg("FLUSH")
            .query_async(&mut server.admin().await)
            .await
            .unwrap();
        guard.release(&cluster).await;
    }
}

// ---- sessions

#[tokio::test]
async fn sessions_round_trip_under_a_handle_and_sealed_by_the_id() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (cluster, _) = start(&server);
    let (other, _) = start(&server);
    up(&cluster).await;
    up(&other).await;
    let id = "b1946ac92492d2347c6235b4d2611184";
    assert_eq!(cluster.session_state(id).await, Some(SessionState::Absent));
    cluster.put_session(id, b"user=alice", TTL).await;
    assert_eq!(
        other.get_session(id).await.as_deref(),
        Some(&b"user=alice"[..])
    );
    assert_eq!(other.session_state(id).await, Some(SessionState::Live));

    let handle = cluster.session_handle(id);
    assert!(!contains(&handle, id.as_bytes()));
    assert_eq!(handle, other.session_handle(id));
    assert_ne!(handle, cluster.session_handle("another-session-id"));

    // The record opens only with its own id: copied under another session's
    // handle, it fails; and the keys another id derives cannot open it.
    let inner = cluster.inner();
    let name = inner.session_key(id);
    let sealed: Vec<u8> = redis::cmd("GET")
        .arg(&name)
        .query_async(&mut server.admin().await)
        .await
        .unwrap();
    assert_eq!(
        inner
            .keys
            .open_session(id, name.as_bytes(), &sealed)
            .as_deref(),
        Some(&b"user=alice"[..])
    );
    assert_eq!(
        inner
            .keys
            .open_session("another-session-id", name.as_bytes(), &sealed),
        None
    );
    let _: () = redis::cmd("SET")
        .arg(inner.session_key("another-session-id"))
        .arg(&sealed)
        .query_async(&mut server.admin().await)
        .await
        .unwrap();
    assert_eq!(cluster.get_session("another-session-id").await, None);

    // touch extends the TTL.
    assert_eq!(
        cluster.touch_session(id, Duration::from_secs(3600)).await,
        Some(true)
    );
    let pttl: i64 = redis::cmd("PTTL")
        .arg(&name)
        .query_async(&mut server.admin().await)
        .await
        .unwrap();
    assert!(pttl > 60_000, "pttl {pttl}");

    cluster.delete_session(id, TTL).await;
    // A log-out leaves its mark, which reads as no record (and no warning of a
    // record that does not open), but is told apart from a record Redis lost.
    assert_eq!(other.get_session(id).await, None);
    assert_eq!(other.session_state(id).await, Some(SessionState::Revoked));
    assert!(!other.inner().warned_session.load(Ordering::Relaxed));
    // Storing a record never overwrites the mark (a replica that still held the
    // session races the log-out).
    other.put_session(id, b"user=alice", TTL).await;
    assert_eq!(other.session_state(id).await, Some(SessionState::Revoked));

    // A record Redis lost: touch says so, and it can be stored again.
    let lost = "e4da3b7fbbce2345d7772b0674a318d5";
    assert_eq!(cluster.touch_session(lost, TTL).await, Some(false));
    cluster.put_session(lost, b"user=carol", TTL).await;
    assert_eq!(
        other.get_session(lost).await.as_deref(),
        Some(&b"user=carol"[..])
    );
    assert_eq!(cluster.touch_session(lost, TTL).await, Some(true));
}

#[tokio::test]
async fn a_logout_reaches_another_replica_within_a_second() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (a, _) = start(&server);
    let (b, _) = start(&server);
    up(&a).await;
    subscribed(&b).await;
    let id = "5d41402abc4b2a76b9719d911017c592";
    a.put_session(id, b"user=bob", TTL).await;
    let mut revocations = b.revocations();
    a.delete_session(id, TTL).await;
    let got = tokio::time::timeout(Duration::from_secs(1), revocations.recv())
        .await
        .expect("the revocation arrives within 1 s")
        .unwrap();
    assert_eq!(got, Revocation::Handle(b.session_handle(id)));
}

#[tokio::test]
async fn the_subscriber_resyncs_after_redis_restarts() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let (cluster, _) = start(&server);
    subscribed(&cluster).await;
    let mut revocations = cluster.revocations();
    server.restart();
    let got = tokio::time::timeout(Duration::from_secs(15), revocations.recv())
        .await
        .expect("a resync after the reconnection")
        .unwrap();
    assert_eq!(got, Revocation::Resync);
    // And the command connection is back too (the first call on the dropped
    // connection may fail: redis-rs reconnects after it).
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        cluster.put_answer(b"k", b"v", TTL).await;
        if cluster.get_answer(b"k").await.as_deref() == Some(&b"v"[..]) {
            break;
        }
        assert!(Instant::now() < deadline, "commands did not come back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_subscriber_pings_an_idle_connection_and_resyncs_after_a_freeze() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (a, _) = start(&server);
    let (b, _) = start(&server);
    up(&a).await;
    subscribed(&b).await;
    let mut revocations = b.revocations();
    // Idle for more than two ping periods (1 s here): the pings are answered, the
    // subscription stays.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(*b.inner().subscribed.borrow());
    a.delete_session("sid", TTL).await;
    let got = tokio::time::timeout(Duration::from_secs(5), revocations.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        got,
        Revocation::Handle(b.session_handle("sid")),
        "no resync: nothing was missed"
    );

    // Frozen past a ping's timeout: the subscriber reconnects and asks for a resync.
    server.signal("-STOP");
    let mut state = b.inner().subscribed.subscribe();
    tokio::time::timeout(Duration::from_secs(15), state.wait_for(|s| !*s))
        .await
        .expect("the subscriber notices the frozen server")
        .unwrap();
    server.signal("-CONT");
    let got = tokio::time::timeout(Duration::from_secs(15), revocations.recv())
        .await
        .expect("a resync after the reconnection")
        .unwrap();
    assert_eq!(got, Revocation::Resync);
}

// ---- Redis down or slow

#[tokio::test]
async fn a_frozen_redis_opens_the_breaker_and_the_layer_recovers_by_itself() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let mut s = settings(server.url());
    s.breaker_probe = Duration::from_millis(500);
    let (cluster, metrics) = start_settings(s.clone(), true);
    up(&cluster).await;
    cluster.put_answer(b"k", b"v", TTL).await;
    assert!(cluster.get_answer(b"k").await.is_some());

    server.signal("-STOP");
    // Calls fail by timeout, each within a deadline, until the breaker opens.
    let bound = s.command_timeout + Duration::from_secs(2);
    let mut calls = 0;
    while !cluster.inner().store.breaker.is_open() {
        calls += 1;
        assert!(calls <= 10, "the breaker did not open");
        let got = tokio::time::timeout(bound, cluster.get_answer(b"k"))
            .await
            .expect("a call to a frozen Redis returns by its timeout");
        assert_eq!(got, None);
    }
    assert!(!cluster.is_up());
    assert!(metrics.error_count("timeout") >= 1);
    assert_eq!(metrics.up.get(), 0);

    // Open: calls return without reaching Redis; at most one probe per period.
    let store = &cluster.inner().store;
    let before = store.attempts();
    let started = Instant::now();
    for _ in 0..200 {
        let got = tokio::time::timeout(bound, cluster.get_answer(b"k"))
            .await
            .expect("returns");
        assert_eq!(got, None);
        assert!(matches!(
            tokio::time::timeout(bound, cluster.lock_fetch(b"k", TTL))
                .await
                .expect("returns"),
            FetchLock::Unavailable
        ));
    }
    let attempts = store.attempts() - before;
    let periods = (started.elapsed().as_millis() / s.breaker_probe.as_millis()) as u64;
    assert!(
        attempts <= periods + 2,
        "{attempts} calls reached Redis in {periods} probe periods (400 calls made)"
    );
    assert!(metrics.error_count("breaker_open") >= 350);

    server.signal("-CONT");
    eventually("the layer rejoins", s.breaker_probe * 20, || {
        cluster.is_up()
    })
    .await;
    assert_eq!(cluster.get_answer(b"k").await.as_deref(), Some(&b"v"[..]));
    assert_eq!(metrics.up.get(), 1);
}

#[tokio::test]
async fn start_never_waits_for_redis_and_joins_when_it_appears() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    server.kill();
    let (cluster, _) = start(&server);
    assert!(!cluster.is_up());
    let bound = Duration::from_secs(5);
    assert_eq!(
        tokio::time::timeout(bound, cluster.get_answer(b"k"))
            .await
            .unwrap(),
        None
    );
    tokio::time::timeout(bound, cluster.put_answer(b"k", b"v", TTL))
        .await
        .unwrap();
    assert!(matches!(
        tokio::time::timeout(bound, cluster.lock_fetch(b"k", TTL))
            .await
            .unwrap(),
        FetchLock::Unavailable
    ));
    assert!(
        !tokio::time::timeout(bound * 2, cluster.wait_fetched(b"k", bound))
            .await
            .unwrap()
    );
    assert_eq!(
        tokio::time::timeout(bound, cluster.session_state("x"))
            .await
            .unwrap(),
        None
    );
    assert!(cluster.ping().await.is_err());

    server.spawn();
    up(&cluster).await;
    assert!(cluster.ping().await.is_ok());
    cluster.put_answer(b"k", b"v", TTL).await;
    assert_eq!(cluster.get_answer(b"k").await.as_deref(), Some(&b"v"[..]));
}

// ---- security

/// The ACL line of the module doc, for prefix `vcproxy:`.
const ACL: &str = "on >s3cret-pw resetkeys ~vcproxy:* resetchannels &vcproxy:* -@all +get +set +mget +del +exists +pexpire +incr +publish +subscribe +ping +evalsha +eval";

#[tokio::test]
async fn the_documented_acl_is_enough_and_confines_the_prefix() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let mut admin = server.admin().await;
    let mut setuser = redis::cmd("ACL");
    setuser.arg("SETUSER").arg("vcproxy");
    for word in ACL.split(' ') {
        setuser.arg(word);
    }
    let _: () = setuser.query_async(&mut admin).await.unwrap();

    let mut s = settings(server.url());
    s.username = Some("vcproxy".to_owned());
    s.password = Some(Secret::new("s3cret-pw"));
    let (a, metrics) = start_settings(s.clone(), true);
    let (b, _) = start_settings(s.clone(), true);
    up(&a).await;
    subscribed(&a).await;
    subscribed(&b).await;

    a.put_answer(b"k", b"v", TTL).await;
    assert_eq!(b.get_answer(b"k").await.as_deref(), Some(&b"v"[..]));
    let FetchLock::Acquired(guard) = a.lock_fetch(b"k", TTL).await else {
        panic!("no lock")
    };
    assert!(matches!(
        b.lock_fetch(b"k", TTL).await,
        FetchLock::HeldElsewhere
    ));
    let wait = tokio::spawn({
        let b = b.clone();
        async move { b.wait_fetched(b"k", Duration::from_secs(10)).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    guard.release(&a).await;
    assert!(wait.await.unwrap());
    a.purge_answers().await;
    assert_eq!(a.get_answer(b"k").await, None);
    let mut revocations = b.revocations();
    a.put_session("sid", b"r", TTL).await;
    a.touch_session("sid", TTL).await;
    assert_eq!(b.get_session("sid").await.as_deref(), Some(&b"r"[..]));
    assert_eq!(b.session_state("sid").await, Some(SessionState::Live));
    a.delete_session("sid", TTL).await;
    let got = tokio::time::timeout(Duration::from_secs(5), revocations.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, Revocation::Handle(a.session_handle("sid")));
    assert!(a.ping().await.is_ok());
    assert_eq!(metrics.error_count("auth"), 0);
    assert_eq!(metrics.error_count("other"), 0);

    // The same user under another prefix is refused (NOPERM).
    let mut outside = s.clone();
    outside.key_prefix = "other:".to_owned();
    let (outside, metrics) = start_settings(outside, false);
    assert_eq!(outside.get_answer(b"k").await, None);
    eventually("NOPERM counted", Duration::from_secs(10), || {
        metrics.error_count("auth") > 0
    })
    .await;

    // A wrong password never gets in.
    let mut wrong = s;
    wrong.password = Some(Secret::new("wrong"));
    let (wrong, _) = start_settings(wrong, false);
    assert!(wrong.ping().await.is_err());
    assert!(!wrong.is_up());
}

#[tokio::test]
async fn tls_trusts_the_given_roots_and_verifies() {
    let cert = crate::net::tls::self_signed(&["localhost"]).unwrap();
    let Some(server) = RedisServer::start_with(|port, dir| {
        std::fs::write(dir.join("cert.pem"), &cert.cert_pem).unwrap();
        std::fs::write(dir.join("key.pem"), &cert.key_pem).unwrap();
        [
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--tls-cert-file",
            &dir.join("cert.pem").display().to_string(),
            "--tls-key-file",
            &dir.join("key.pem").display().to_string(),
            "--tls-ca-cert-file",
            &dir.join("cert.pem").display().to_string(),
            "--tls-auth-clients",
            "no",
        ]
        .map(String::from)
        .to_vec()
    }) else {
        return;
    };
    let url = format!("rediss://localhost:{}/", server.port);
    let mut s = settings(url.clone());
    s.ca_certs = vec![cert.cert_der.clone()];
    let (cluster, _) = start_settings(s.clone(), true);
    up(&cluster).await;
    subscribed(&cluster).await;
    cluster.put_answer(b"k", b"v", TTL).await;
    assert_eq!(cluster.get_answer(b"k").await.as_deref(), Some(&b"v"[..]));

    // Another root: the handshake fails, the layer stays down.
    let other = crate::net::tls::self_signed(&["localhost"]).unwrap();
    let mut untrusted = s.clone();
    untrusted.ca_certs = vec![other.cert_der];
    let (untrusted, _) = start_settings(untrusted, false);
    assert!(untrusted.ping().await.is_err());
    assert!(!untrusted.is_up());

    // The name is verified: the certificate is for localhost, not 127.0.0.1.
    let mut by_ip = s.clone();
    by_ip.url = format!("rediss://127.0.0.1:{}/", server.port);
    let (by_ip, _) = start_settings(by_ip, false);
    assert!(by_ip.ping().await.is_err());

    // Verification cannot be turned off.
    let mut insecure = s;
    insecure.url = format!("{url}#insecure");
    assert!(matches!(
        Cluster::start(insecure, ClusterMetrics::new()),
        Err(ClusterError::Url(_))
    ));
}

#[tokio::test]
async fn settings_that_cannot_work_fail_at_start() {
    let bad = settings("http://127.0.0.1:6379".to_owned());
    assert!(matches!(
        Cluster::start(bad, ClusterMetrics::new()),
        Err(ClusterError::Url(_))
    ));
    let mut ca_without_tls = settings("redis://127.0.0.1:6379".to_owned());
    ca_without_tls.ca_certs = vec![
        crate::net::tls::self_signed(&["localhost"])
            .unwrap()
            .cert_der,
    ];
    assert!(matches!(
        Cluster::start(ca_without_tls, ClusterMetrics::new()),
        Err(ClusterError::Tls(_))
    ));
    // A password in the URL never reaches an error message.
    let err = Cluster::start(
        settings("redis://:hunter2@127.0.0.1:notaport".to_owned()),
        ClusterMetrics::new(),
    )
    .unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

#[test]
fn settings_debug_shows_no_credentials() {
    let mut s = settings("redis://vcproxy:hunter2@redis.example:6379/2".to_owned());
    s.password = Some(Secret::new("hunter3"));
    let shown = format!("{s:?}");
    for secret in ["hunter2", "hunter3", SECRET] {
        assert!(!shown.contains(secret), "{shown}");
    }
    assert!(
        shown.contains("redis://<redacted>@redis.example:6379/2"),
        "{shown}"
    );
    assert_eq!(redact_url("rediss://h:1/0"), "rediss://h:1/0");
}

#[tokio::test]
async fn the_cluster_and_its_futures_are_send_and_sync() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    fn send<T: Send>(_: T) {}
    let cluster = Cluster::start(
        settings("redis://127.0.0.1:1/".to_owned()),
        ClusterMetrics::new(),
    )
    .unwrap();
    send_sync(&cluster);
    send(cluster.ping());
    send(cluster.get_answer(b"k"));
    send(cluster.put_answer(b"k", b"v", TTL));
    send(cluster.purge_answers());
    send(cluster.lock_fetch(b"k", TTL));
    send(cluster.wait_fetched(b"k", TTL));
    send(cluster.put_session("id", b"r", TTL));
    send(cluster.get_session("id"));
    send(cluster.touch_session("id", TTL));
    send(cluster.put_session("id", b"r", TTL));
    send(cluster.delete_session("id", TTL));
    send(cluster.session_state("id"));
    let guard: Option<LockGuard> = None;
    if let Some(guard) = guard {
        send(guard.release(&cluster));
    }
}

#[test]
fn start_outside_a_runtime_is_an_error_not_a_panic() {
    assert!(matches!(
        Cluster::start(
            settings("redis://127.0.0.1:6379".to_owned()),
            ClusterMetrics::new()
        ),
        Err(ClusterError::NoRuntime)
    ));
}
