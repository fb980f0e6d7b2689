//! What several scenarios share: the simulators' set-up, the proxy's configuration,
//! reading answers cheaply, counting, and the poll loop of the load-reduction and
//! session-churn rows. (The HTTP client and the in-process proxy are the test kit's.)

use futures_util::future::join_all;
use std::sync::Arc;
use std::time::Duration;
use vcproxy::sim::{Faults, SimConfig, SimHandle};
use vcproxy_testkit::{config_toml, Env, LISTEN};

/// Every `[[vcenter]]` of the bench's proxies: room in the pool for every client.
const VCENTER_EXTRA: &str = "max_idle_connections = 256";

/// The start of a body, as text, for an error message.
pub fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(&b[..b.len().min(300)]).into_owned()
}

/// Tasks in a `/rest` list answer (counted without building a JSON tree: the bench
/// must stay cheap next to what it measures).
pub fn rest_count(body: &[u8]) -> Option<usize> {
    #[derive(serde::Deserialize)]
    struct List {
        value: Vec<serde::de::IgnoredAny>,
    }
    serde_json::from_slice::<List>(body)
        .ok()
        .map(|l| l.value.len())
}

/// vCenter-like latency: 50 ms plus up to 5 ms of jitter. (Small jitter keeps the
/// miss-path difference measurable: the proxy waits for the slowest of its three
/// draws, the direct comparison for the slowest of three other draws.)
pub fn realistic_faults() -> Faults {
    Faults {
        latency: Duration::from_millis(50),
        jitter: Duration::from_millis(5),
        ..Faults::default()
    }
}

/// The test kit's simulator (the administrator and the operator, static tasks) with
/// `faults`.
pub fn sim_config(tasks: usize, seed: u64, faults: Faults) -> SimConfig {
    SimConfig {
        faults,
        ..vcproxy_testkit::sim_config(tasks, seed)
    }
}

/// A proxy configuration: loopback listeners on free ports, `extra` (whole TOML
/// sections), and one `[[vcenter]]` per URL, named vc1, vc2, ...
pub fn proxy_toml(vcenters: &[String], extra: &str) -> String {
    config_toml(&format!("{LISTEN}{extra}\n"), vcenters, |_| {
        VCENTER_EXTRA.to_owned()
    })
}

/// Simulators of `configs` and the proxy in this process in front of them,
/// configured with `extra` ([`proxy_toml`]).
pub async fn start_env(configs: Vec<SimConfig>, extra: &str) -> Env {
    Env::start(configs, extra, VCENTER_EXTRA).await
}

/// Stops the proxy and the simulators of `env`, giving up after 20 s (a benchmark
/// reports; it does not hang).
pub async fn stop_env(env: Env) {
    let _ = tokio::time::timeout(Duration::from_secs(20), env.stop()).await;
}

/// Stops simulators, giving each up to 10 s.
pub async fn shutdown_sims(sims: Vec<SimHandle>) {
    for s in sims {
        let _ = tokio::time::timeout(Duration::from_secs(10), s.shutdown()).await;
    }
}

/// Counters per vCenter as `1/2/3`.
pub fn per_vcenter(v: &[u64]) -> String {
    v.iter().map(u64::to_string).collect::<Vec<_>>().join("/")
}

/// The "alternative" and "ratio" cells of a row that counts per vCenter through the
/// proxy and directly: the direct counts with their client errors, and the
/// reduction, 1/(fewest direct / most through the proxy).
pub fn direct_cells(
    via_proxy: &[u64],
    direct: &[u64],
    direct_stats: &PollStats,
) -> (String, String) {
    let worst = via_proxy.iter().copied().max().unwrap_or(0);
    let direct_worst = direct.iter().copied().min().unwrap_or(0);
    (
        format!(
            "direct: {} ({} client errors)",
            per_vcenter(direct),
            direct_stats.failed
        ),
        format!("1/{:.0}", direct_worst as f64 / worst.max(1) as f64),
    )
}

/// Waits for every one of `each` (concurrently); the first error, if any.
pub async fn all_ok<F>(each: impl IntoIterator<Item = F>) -> Result<(), String>
where
    F: std::future::Future<Output = Result<(), String>>,
{
    join_all(each)
        .await
        .into_iter()
        .collect::<Result<Vec<()>, String>>()?;
    Ok(())
}

/// Per-position differences: counters after minus before.
pub fn delta(after: &[u64], before: &[u64]) -> Vec<u64> {
    after.iter().zip(before).map(|(a, b)| a - b).collect()
}

/// Per-client poll loop: `polls` requests a second apart starting at `first`.
#[derive(Default)]
pub struct PollStats {
    pub ok: u64,
    pub failed: u64,
    pub first_error: Option<String>,
}

impl PollStats {
    fn add(&mut self, r: Result<(), String>) {
        match r {
            Ok(()) => self.ok += 1,
            Err(e) => {
                self.failed += 1;
                self.first_error.get_or_insert(e);
            }
        }
    }

    fn merge(&mut self, o: PollStats) {
        self.ok += o.ok;
        self.failed += o.failed;
        if self.first_error.is_none() {
            self.first_error = o.first_error;
        }
    }

    /// Prints `{scenario} {who}: N ok, M failed (first: ...)` on stderr.
    pub fn report(&self, scenario: &str, who: &str) {
        eprintln!(
            "{scenario} {who}: {} ok, {} failed{}",
            self.ok,
            self.failed,
            self.first_error
                .as_deref()
                .map(|e| format!(" (first: {e})"))
                .unwrap_or_default()
        );
    }
}

/// Runs `clients` pollers, each polling `polls` times a second apart, offsets spread
/// evenly over the first second. `poll(client, n)` does one poll.
pub async fn run_pollers<F, Fut>(clients: usize, polls: u64, poll: F) -> (PollStats, Duration)
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + Send + 'static,
{
    let poll = Arc::new(poll);
    let start = tokio::time::Instant::now() + Duration::from_millis(100);
    let mut handles = Vec::new();
    for c in 0..clients {
        let poll = poll.clone();
        let offset = Duration::from_micros(1_000_000 * c as u64 / clients as u64);
        handles.push(tokio::spawn(async move {
            let mut stats = PollStats::default();
            for n in 0..polls {
                tokio::time::sleep_until(start + offset + Duration::from_secs(n)).await;
                stats.add(poll(c, n).await);
            }
            stats
        }));
    }
    let mut total = PollStats::default();
    for h in handles {
        match h.await {
            Ok(s) => total.merge(s),
            Err(e) => total.add(Err(e.to_string())),
        }
    }
    (total, start.elapsed())
}
