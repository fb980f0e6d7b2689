//! Memory: many distinct cached queries under a cache cap, in a fresh vcproxy child
//! process: its RSS growth and the cache's weighed bytes.

use crate::process::spawn_proxy_child;
use crate::shared::{lossy, proxy_toml, rest_count, shutdown_sims, sim_config};
use crate::table::Row;
use crate::Settings;
use http::Method;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use vcproxy::sim::{self, Faults};
use vcproxy::Family;
use vcproxy_testkit::{start_sims, Http, RestQuery};

/// The cache cap of the memory row.
const MEMORY_CAP_MIB: u64 = 256;

/// A tiny deterministic PRNG (SplitMix64) for choosing task ids.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Filter `n`: 100 distinct task ids out of `ids`, as a `/rest` JSON body.
fn memory_filter(ids: &[String], n: usize) -> RestQuery {
    let mut rng = Rng(n as u64 ^ 0x5eed);
    let mut idx: Vec<usize> = (0..ids.len()).collect();
    for i in 0..100 {
        let j = i + (rng.next() % (idx.len() - i) as u64) as usize;
        idx.swap(i, j);
    }
    let chosen: Vec<String> = idx[..100]
        .iter()
        .map(|&i| format!("\"{}\"", ids[i]))
        .collect();
    RestQuery::body(format!(
        r#"{{"filter_spec":{{"tasks":[{}]}}}}"#,
        chosen.join(",")
    ))
}

/// VmRSS and VmHWM of process `pid`, in KiB.
pub(crate) fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|r| r.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

struct MemoryResult {
    rss_before: u64,
    rss_after: u64,
    hwm: u64,
    weighed: u64,
    entries: u64,
    bytes: u64,
    ok: u64,
}

/// One simulator (no latency, so that filling the cache is quick) in this process,
/// vcproxy in a child, `queries` distinct 100-task queries sent 8 at a time.
async fn memory_run(queries: usize) -> Result<MemoryResult, String> {
    let sims = start_sims(vec![sim_config(1000, 11, Faults::default())]).await;
    let ids = Arc::new(sims[0].task_ids());
    let toml = proxy_toml(
        &[sims[0].base_url()],
        &format!("[cache]\nttl = \"1h\"\nmax_memory = \"{MEMORY_CAP_MIB}MiB\""),
    );
    let (kid, addr, admin_addr) = spawn_proxy_child(&toml)?;
    let pid = kid.0.id();
    let http = Http::new(format!("http://{addr}"));
    let admin = Http::new(format!("http://{admin_addr}"));
    let sid = http
        .try_session(Family::Rest, sim::DEFAULT_USER, sim::DEFAULT_PASSWORD)
        .await?;
    // Warm up connections and the allocator with a few queries outside the set.
    for n in 0..32 {
        let r = http
            .try_rest_query(&sid, &memory_filter(&ids, 1_000_000 + n), &[])
            .await?;
        if rest_count(&r.body) != Some(100) {
            return Err(format!("warm-up: {} {}", r.status, lossy(&r.body)));
        }
    }
    let _ = admin.try_call(Method::GET, "/metrics", &[], None).await;
    let (rss_before, _) = rss_kib(pid);

    let limit = Arc::new(Semaphore::new(8));
    let mut handles = Vec::new();
    for n in 0..queries {
        let (http, sid, ids, limit) = (http.clone(), sid.clone(), ids.clone(), limit.clone());
        handles.push(tokio::spawn(async move {
            let _permit = limit.acquire().await.unwrap();
            let r = http
                .try_rest_query(&sid, &memory_filter(&ids, n), &[])
                .await?;
            if r.status != 200 || r.cache() != "miss" {
                return Err(format!("{} {:?}", r.status, r.cache()));
            }
            // Check the count on a sample (parsing every body would dominate).
            if n % 97 == 0 && rest_count(&r.body) != Some(100) {
                return Err("not 100 tasks".into());
            }
            Ok::<_, String>(r.body.len())
        }));
    }
    let (mut ok, mut bytes) = (0u64, 0u64);
    for h in handles {
        if let Ok(Ok(len)) = h.await {
            ok += 1;
            bytes += len as u64;
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let metrics = admin
        .try_call(Method::GET, "/metrics", &[], None)
        .await
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())?;
    let gauge = |name: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| {
                l.strip_prefix(name)
                    .and_then(|r| r.trim().parse::<f64>().ok())
            })
            .map_or(0, |v| v as u64)
    };
    let (rss_after, hwm) = rss_kib(pid);
    let result = MemoryResult {
        rss_before,
        rss_after,
        hwm,
        weighed: gauge("vcproxy_cache_size_bytes "),
        entries: gauge("vcproxy_cache_entries "),
        bytes,
        ok,
    };
    drop(kid);
    shutdown_sims(sims).await;
    Ok(result)
}

pub fn memory(s: &Settings, rt: &tokio::runtime::Runtime) -> Vec<Row> {
    const NAME: &str = "memory: RSS growth, cache cap 256 MiB";
    let target = "RSS growth <= cap + 50 MB; weighed <= cap";
    let m = match rt.block_on(memory_run(s.memory_queries)) {
        Ok(m) => m,
        Err(e) => return vec![Row::failed(NAME, e, target)],
    };
    let cap = MEMORY_CAP_MIB << 20;
    let growth = (m.rss_after.saturating_sub(m.rss_before)) << 10;
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    eprintln!(
        "memory: proxy RSS {:.1} -> {:.1} MiB (peak {:.1} MiB), weighed {:.1} MiB in {} entries, {} answers of {:.1} MiB in all",
        mib(m.rss_before << 10),
        mib(m.rss_after << 10),
        mib(m.hwm << 10),
        mib(m.weighed),
        m.entries,
        m.ok,
        mib(m.bytes)
    );
    let limit = cap + 50_000_000;
    vec![Row::new(
        format!("{NAME} ({} distinct 100-task queries)", m.ok),
        format!(
            "RSS +{:.1} MiB (peak {:.1} MiB), weighed {:.1} MiB in {} entries",
            mib(growth),
            mib(m.hwm << 10),
            mib(m.weighed),
            m.entries
        ),
        format!("uncapped: {:.1} MiB of answers", mib(m.bytes)),
        format!("{:.2} of cap+50MB", growth as f64 / limit as f64),
        target,
        Some(growth <= limit && m.weighed <= cap && m.ok as usize == s.memory_queries),
    )]
}
