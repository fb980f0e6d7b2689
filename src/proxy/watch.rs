//! Watch streams (`GET /vcproxy/v1/tasks/watch`): a snapshot, then an event
//! whenever a task appears, changes or goes, and whenever a vCenter fails or
//! recovers, as Server-Sent Events.
//!
//! vCenter has no change notification for tasks; the proxy already polls for
//! everyone, so it notices changes itself. One [`Hub`] per question (user, filter,
//! vCenters) asks the cache for the native answer once per TTL, the same cache
//! entry `GET /vcproxy/v1/tasks` uses, so any number of watchers and pollers of one
//! question cost each vCenter one request per TTL. When the answer changes, the hub
//! compares it with the last one and broadcasts the differences; watchers only
//! copy frames. A hub ends [`LINGER`] after its last watcher left.
//!
//! Event ids are `<hub>-<sequence>`. A reconnecting client sends the last one as
//! `Last-Event-ID`: while its hub lives and still holds the events after it (the
//! last [`HISTORY`]), it gets those and no second snapshot; otherwise a fresh
//! snapshot. A watcher that falls behind the broadcast gets a fresh snapshot too.
//! What each watcher holds is bounded: a receiver on the hub's broadcast and a
//! small queue of frames.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, watch};

use super::answer::Answer;

/// Events kept for resuming.
pub const HISTORY: usize = 4096;
/// Events a watcher may fall behind the hub before it is sent a new snapshot.
const BROADCAST: usize = 1024;
/// Frames queued for one watcher's connection.
const QUEUE: usize = 16;
/// A comment line this often keeps idle connections (and proxies) open.
const HEARTBEAT: Duration = Duration::from_secs(15);
/// The shortest pause between two refreshes of one hub (against a busy loop when
/// an answer comes back already stale).
const MIN_REFRESH: Duration = Duration::from_millis(5);
/// How long a hub outlives its last watcher, so that a client reconnecting (an
/// `EventSource` retries after a few seconds) resumes instead of starting over.
const LINGER: Duration = Duration::from_secs(30);

/// How watch streams pace and bound themselves. [`Default`] is what the proxy
/// runs with (none of it is configurable); tests shorten the heartbeat and shrink
/// the queues to see them work without waiting or flooding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchSettings {
    /// How often an idle stream sends a heartbeat comment (`HEARTBEAT`).
    pub heartbeat: Duration,
    /// Refreshes a watcher may fall behind its hub before it is sent a new
    /// snapshot (`BROADCAST`; at least 1).
    pub broadcast: usize,
    /// Frames queued for one watcher's connection (`QUEUE`; at least 1).
    pub queue: usize,
}

impl Default for WatchSettings {
    fn default() -> WatchSettings {
        WatchSettings {
            heartbeat: HEARTBEAT,
            broadcast: BROADCAST,
            queue: QUEUE,
        }
    }
}

/// The hubs by question.
pub struct Watches {
    hubs: Mutex<HashMap<Vec<u8>, Weak<Hub>>>,
    /// Set at shutdown: every stream ends, so connections can drain.
    closing: watch::Sender<bool>,
    settings: WatchSettings,
}

/// One question watched: its latest answer, its recent events, its watchers.
pub struct Hub {
    epoch: u64,
    settings: WatchSettings,
    events: broadcast::Sender<Arc<Frame>>,
    history: Mutex<VecDeque<Arc<Frame>>>,
    /// The latest snapshot and the sequence number of the last event before it.
    latest: watch::Sender<Option<(u64, Arc<Answer>)>>,
}

/// SSE frames ready to send: one event (in the history), or every event of one
/// refresh written together (what is broadcast: one write per watcher per refresh,
/// however many tasks changed).
pub struct Frame {
    /// The sequence numbers of the first and last event in `bytes`.
    first: u64,
    seq: u64,
    bytes: Bytes,
}

impl Watches {
    /// Hubs whose streams follow `settings`.
    pub fn new(settings: WatchSettings) -> Watches {
        Watches {
            hubs: Mutex::default(),
            closing: watch::channel(false).0,
            settings,
        }
    }

    /// Ends every watch stream (graceful shutdown: they would never end).
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// What [`Hub::watch`] watches to end its stream.
    pub fn closing(&self) -> watch::Receiver<bool> {
        self.closing.subscribe()
    }

    /// The hub for `question`, started with `refresh` (called once per refresh,
    /// returning the current answer and how long it stays fresh) when none runs.
    pub fn hub<F, Fut>(&self, question: Vec<u8>, refresh: F) -> Arc<Hub>
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = (Arc<Answer>, Duration)> + Send + 'static,
    {
        let mut hubs = self.hubs.lock().unwrap_or_else(|p| p.into_inner());
        hubs.retain(|_, h| h.strong_count() > 0);
        if let Some(hub) = hubs.get(&question).and_then(Weak::upgrade) {
            return hub;
        }
        static EPOCHS: AtomicU64 = AtomicU64::new(1);
        let hub = Arc::new(Hub {
            epoch: EPOCHS.fetch_add(1, Ordering::Relaxed) ^ start_nanos(),
            settings: self.settings,
            events: broadcast::channel(self.settings.broadcast.max(1)).0,
            history: Mutex::new(VecDeque::new()),
            latest: watch::channel(None).0,
        });
        hubs.insert(question, Arc::downgrade(&hub));
        tokio::spawn(run(hub.clone(), refresh));
        hub
    }
}

/// The process's start in nanoseconds: epochs differ across restarts.
fn start_nanos() -> u64 {
    static START: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *START.get_or_init(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            << 16
    })
}

/// The hub's loop: refresh, compare, broadcast; until it has had no watcher for
/// [`LINGER`].
async fn run<F, Fut>(h: Arc<Hub>, refresh: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = (Arc<Answer>, Duration)>,
{
    let mut seen = Seen::default();
    let mut last: Option<Arc<Answer>> = None;
    let mut seq = 0u64;
    let mut unwatched_since: Option<std::time::Instant> = None;
    loop {
        if h.events.receiver_count() > 0 {
            unwatched_since = None;
        } else if unwatched_since
            .get_or_insert_with(std::time::Instant::now)
            .elapsed()
            > LINGER
        {
            return;
        }
        let (answer, fresh_for) = refresh().await;
        if !last.as_ref().is_some_and(|l| Arc::ptr_eq(l, &answer)) {
            if let Some(now) = Seen::of(&answer) {
                // The first answer is every watcher's snapshot, not a change.
                if last.is_some() {
                    seq = h.publish(seq, seen.changes(&now));
                }
                seen = now;
            }
            h.latest.send_replace(Some((seq, answer.clone())));
            last = Some(answer);
        }
        tokio::time::sleep(fresh_for.max(MIN_REFRESH)).await;
    }
}

impl Hub {
    /// Numbers `changes` after `seq`, keeps each in the history and broadcasts
    /// them as one frame; returns the last sequence number.
    fn publish(&self, mut seq: u64, changes: Vec<(&'static str, Vec<u8>)>) -> u64 {
        if changes.is_empty() {
            return seq;
        }
        let first = seq + 1;
        let mut all = Vec::new();
        let mut history = self.history.lock().unwrap_or_else(|p| p.into_inner());
        for (event, data) in changes {
            seq += 1;
            let bytes = frame(&self.id(seq), event, &data);
            all.extend_from_slice(&bytes);
            if history.len() == HISTORY {
                history.pop_front();
            }
            history.push_back(Arc::new(Frame {
                first: seq,
                seq,
                bytes,
            }));
        }
        drop(history);
        let _ = self.events.send(Arc::new(Frame {
            first,
            seq,
            bytes: Bytes::from(all),
        }));
        seq
    }

    /// The events after `after` still in the history, as one write.
    fn since(&self, after: u64) -> Bytes {
        let history = self.history.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::new();
        for f in history.iter().filter(|f| f.seq > after) {
            out.extend_from_slice(&f.bytes);
        }
        Bytes::from(out)
    }

    fn id(&self, seq: u64) -> String {
        format!("{:x}-{seq}", self.epoch)
    }

    /// A new watcher: its frames through the returned receiver, starting after
    /// `last_event_id` when the hub can resume from it, with a snapshot otherwise.
    pub fn watch(
        self: &Arc<Self>,
        last_event_id: Option<&str>,
        mut closing: watch::Receiver<bool>,
    ) -> mpsc::Receiver<Bytes> {
        let (tx, rx) = mpsc::channel(self.settings.queue.max(1));
        let mut events = self.events.subscribe();
        let resume = last_event_id.and_then(|id| self.resume_from(id));
        let hub = self.clone();
        tokio::spawn(async move {
            let mut after = match resume {
                Some((after, missed)) => {
                    for f in missed {
                        if tx.send(f.bytes.clone()).await.is_err() {
                            return;
                        }
                    }
                    after
                }
                None => match hub.snapshot(&tx).await {
                    Some(after) => after,
                    None => return,
                },
            };
            let mut heartbeat = tokio::time::interval(hub.settings.heartbeat);
            heartbeat.tick().await;
            loop {
                let sent = tokio::select! {
                    e = events.recv() => match e {
                        Ok(f) if f.seq <= after => Ok(()),
                        Ok(f) if f.first > after => {
                            after = f.seq;
                            tx.send(f.bytes.clone()).await
                        }
                        // Part of it was sent already (a resume raced it).
                        Ok(f) => {
                            let rest = hub.since(after);
                            after = f.seq;
                            tx.send(rest).await
                        }
                        Err(broadcast::error::RecvError::Lagged(_)) => {
                            events = hub.events.subscribe();
                            match hub.snapshot(&tx).await {
                                Some(a) => { after = a; Ok(()) }
                                None => return,
                            }
                        }
                        Err(broadcast::error::RecvError::Closed) => return,
                    },
                    _ = heartbeat.tick() => tx.send(Bytes::from_static(b": heartbeat\n\n")).await,
                    () = tx.closed() => return,
                    () = async { let _ = closing.wait_for(|c| *c).await; } => return,
                };
                if sent.is_err() {
                    return;
                }
            }
        });
        rx
    }

    /// Sends the latest snapshot (waiting for the hub's first answer); the
    /// sequence number it stands at, or `None` when the watcher is gone.
    async fn snapshot(&self, tx: &mpsc::Sender<Bytes>) -> Option<u64> {
        let mut latest = self.latest.subscribe();
        let state = {
            let current = latest.wait_for(Option::is_some).await.ok()?;
            current.clone()
        };
        let (seq, answer) = state?;
        let bytes = frame(&self.id(seq), "snapshot", &answer.body);
        tx.send(bytes).await.ok()?;
        Some(seq)
    }

    /// The events after `id`, when this hub issued it and still holds them all.
    fn resume_from(&self, id: &str) -> Option<(u64, Vec<Arc<Frame>>)> {
        let (epoch, seq) = id.split_once('-')?;
        if u64::from_str_radix(epoch, 16).ok()? != self.epoch {
            return None;
        }
        let after: u64 = seq.parse().ok()?;
        let history = self.history.lock().unwrap_or_else(|p| p.into_inner());
        let oldest = history.front().map_or(u64::MAX, |f| f.seq);
        let newest = history.back().map_or(0, |f| f.seq);
        // Every event after `after` must still be here (or there are none yet).
        if after > newest.max(self.latest.borrow().as_ref().map_or(0, |(s, _)| *s)) {
            return None;
        }
        if !history.is_empty() && after + 1 < oldest {
            return None;
        }
        let missed = history.iter().filter(|f| f.seq > after).cloned().collect();
        Some((after, missed))
    }
}

/// An SSE frame: `id`, `event`, and `data` one line per line of it.
fn frame(id: &str, event: &str, data: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(data.len() + id.len() + event.len() + 24);
    out.extend_from_slice(b"id: ");
    out.extend_from_slice(id.as_bytes());
    out.extend_from_slice(b"\nevent: ");
    out.extend_from_slice(event.as_bytes());
    out.push(b'\n');
    for line in data.split(|&b| b == b'\n') {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line.strip_suffix(b"\r").unwrap_or(line));
        out.push(b'\n');
    }
    out.push(b'\n');
    Bytes::from(out)
}

/// What one native answer showed: each task's Info (by a hash, and as sent) and
/// each vCenter's outcome.
#[derive(Default)]
struct Seen {
    tasks: HashMap<(String, String), (u64, Box<RawValue>)>,
    vcenters: HashMap<String, (bool, Box<RawValue>)>,
}

#[derive(Deserialize)]
struct NativeAnswer {
    tasks: Vec<NativeTask>,
    vcenters: Vec<Box<RawValue>>,
}

#[derive(Deserialize)]
struct NativeTask {
    vcenter: String,
    task: String,
    info: Box<RawValue>,
}

#[derive(Deserialize)]
struct VcenterState {
    name: String,
    ok: bool,
}

impl Seen {
    /// The tasks and vCenters of a native answer; `None` for an error answer.
    fn of(answer: &Answer) -> Option<Seen> {
        if !answer.is_success() {
            return None;
        }
        let parsed: NativeAnswer = serde_json::from_slice(&answer.body).ok()?;
        let mut seen = Seen::default();
        for t in parsed.tasks {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            t.info.get().hash(&mut h);
            seen.tasks.insert((t.vcenter, t.task), (h.finish(), t.info));
        }
        for v in parsed.vcenters {
            let state: VcenterState = serde_json::from_str(v.get()).ok()?;
            seen.vcenters.insert(state.name, (state.ok, v));
        }
        Some(seen)
    }

    /// The events from `self` to `now`: `(event name, data)`.
    fn changes(&self, now: &Seen) -> Vec<(&'static str, Vec<u8>)> {
        let mut out = Vec::new();
        for (name, (ok, raw)) in &now.vcenters {
            let before = self.vcenters.get(name).map(|(o, _)| *o);
            if before != Some(*ok) {
                out.push(("vcenter", raw.get().as_bytes().to_vec()));
            }
        }
        let event = |vcenter: &str, task: &str, change: &str, info: Option<&RawValue>| {
            serde_json::to_vec(&serde_json::json!({
                "vcenter": vcenter,
                "task": task,
                "change": change,
                "info": info,
            }))
            .expect("JSON from JSON")
        };
        for ((vcenter, task), (hash, info)) in &now.tasks {
            match self.tasks.get(&(vcenter.clone(), task.clone())) {
                None => out.push(("task", event(vcenter, task, "added", Some(info)))),
                Some((h, _)) if h != hash => {
                    out.push(("task", event(vcenter, task, "changed", Some(info))))
                }
                Some(_) => {}
            }
        }
        for (vcenter, task) in self.tasks.keys() {
            // A task of a vCenter that failed this time is not gone: its vCenter
            // could not say (the `vcenter` event says so).
            let vcenter_ok = now.vcenters.get(vcenter).is_none_or(|(ok, _)| *ok);
            if vcenter_ok && !now.tasks.contains_key(&(vcenter.clone(), task.clone())) {
                out.push(("task", event(vcenter, task, "removed", None)));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;

    fn answer(json: serde_json::Value) -> Arc<Answer> {
        Arc::new(Answer::json(
            StatusCode::OK,
            Bytes::from(serde_json::to_vec(&json).unwrap()),
        ))
    }

    #[test]
    fn changes_name_what_appeared_changed_and_went() {
        let before = Seen::of(&answer(serde_json::json!({
            "tasks": [{"vcenter":"vc1","task":"a","info":{"status":"RUNNING"}},
                      {"vcenter":"vc1","task":"b","info":{"status":"RUNNING"}},
                      {"vcenter":"vc2","task":"c","info":{"status":"RUNNING"}}],
            "vcenters": [{"name":"vc1","ok":true,"tasks":2},{"name":"vc2","ok":true,"tasks":1}]})))
        .unwrap();
        let after = Seen::of(&answer(serde_json::json!({
            "tasks": [{"vcenter":"vc1","task":"a","info":{"status":"SUCCEEDED"}},
                      {"vcenter":"vc1","task":"d","info":{"status":"PENDING"}}],
            "vcenters": [{"name":"vc1","ok":true,"tasks":2},{"name":"vc2","ok":false,"status":503,"error":{}}]})))
        .unwrap();
        let mut got: Vec<String> = before
            .changes(&after)
            .into_iter()
            .map(|(e, d)| format!("{e} {}", String::from_utf8(d).unwrap()))
            .collect();
        got.sort();
        assert_eq!(
            got,
            vec![
                r#"task {"change":"added","info":{"status":"PENDING"},"task":"d","vcenter":"vc1"}"#,
                r#"task {"change":"changed","info":{"status":"SUCCEEDED"},"task":"a","vcenter":"vc1"}"#,
                r#"task {"change":"removed","info":null,"task":"b","vcenter":"vc1"}"#,
                r#"vcenter {"error":{},"name":"vc2","ok":false,"status":503}"#,
            ],
            "c is not reported removed: vc2 could not say"
        );
    }

    #[test]
    fn frames_carry_every_line_as_data() {
        let f = frame("1-2", "task", b"{\"a\":\n1}");
        assert_eq!(&f[..], b"id: 1-2\nevent: task\ndata: {\"a\":\ndata: 1}\n\n");
    }
}
