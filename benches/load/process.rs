//! Process control: this bench binary started again as a child (vcproxy alone, the
//! simulators, or the hit path's vcproxy), each reporting `READY ...` on stdout and
//! serving until its stdin closes, so that a parent that dies takes its children
//! along.

use crate::shared::{realistic_faults, shutdown_sims, sim_config};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use vcproxy::sim::SimHandle;
use vcproxy_testkit::{bind_proxy, parse_config, start_sims};

/// The flags that make this binary one of its children.
pub const HIT_CHILD: &str = "--vcproxy-bench-hit-child";
pub const PROXY_CHILD: &str = "--vcproxy-bench-proxy-child";
pub const SIMS_CHILD: &str = "--vcproxy-bench-sims-child";
/// The proxy child's configuration (TOML), passed in the environment.
const CHILD_CONFIG_ENV: &str = "VCPROXY_BENCH_CHILD_CONFIG";

/// A multi-threaded tokio runtime of `workers` threads.
pub fn runtime(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// A child process that is killed when dropped.
pub struct Kid(pub Child);

impl Drop for Kid {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Child process: vcproxy alone, configured by the TOML in `CHILD_CONFIG_ENV`, on the
/// default two-worker runtime, so that its CPU time and RSS are its own and the OS,
/// not one shared tokio runtime, schedules it beside the client and the vCenters.
/// Prints `READY <addr> <admin addr>`, serves until its stdin closes.
pub fn proxy_child() {
    let toml = std::env::var(CHILD_CONFIG_ENV).expect("proxy child: no configuration");
    let rt = runtime(2);
    rt.block_on(async {
        let proxy = bind_proxy(&parse_config(&toml)).await;
        println!("READY {} {}", proxy.addr, proxy.admin_addr);
        std::io::stdout().flush().unwrap();
        proxy.serve(stdin_closed()).await;
    });
}

/// Child process: `count` simulators of `tasks` tasks each with realistic latency
/// (seeds 1, 2, ...), standing in for vCenters on other machines. Prints
/// `READY <url> <url> ...`, serves until its stdin closes.
pub fn sims_child(count: usize, tasks: usize) {
    let rt = runtime(2);
    rt.block_on(async {
        let sims = start_sims(
            (1..=count as u64)
                .map(|seed| sim_config(tasks, seed, realistic_faults()))
                .collect(),
        )
        .await;
        let urls: Vec<String> = sims.iter().map(SimHandle::base_url).collect();
        println!("READY {}", urls.join(" "));
        std::io::stdout().flush().unwrap();
        stdin_closed().await;
        shutdown_sims(sims).await;
    });
}

/// Resolves when this process's stdin closes: a child's parent has gone.
pub async fn stdin_closed() {
    let _ = tokio::task::spawn_blocking(|| {
        let mut s = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut s);
    })
    .await;
}

/// Starts this bench binary as a child with `args` (and `env`), pinned to `pin`'s
/// cores if given, and reads its
/// `READY ...` line: the words after READY.
pub fn spawn_child(
    pin: Option<&str>,
    args: &[&str],
    env: &[(&str, &str)],
) -> Result<(Kid, Vec<String>), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut command = match pin {
        Some(cores) => {
            let mut c = Command::new("taskset");
            c.args(["-c", cores]).arg(exe);
            c
        }
        None => Command::new(exe),
    };
    let mut child = command
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let stdout = child.stdout.take().unwrap();
    let kid = Kid(child);
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    match line.strip_prefix("READY ") {
        Some(rest) => Ok((kid, rest.split_whitespace().map(str::to_owned).collect())),
        None => Err(format!("{} child did not start: {line:?}", args[0])),
    }
}

/// vcproxy in a child process with configuration `toml`: the child, the client
/// address and the admin address.
pub fn spawn_proxy_child(toml: &str) -> Result<(Kid, String, String), String> {
    let (kid, words) = spawn_child(None, &[PROXY_CHILD], &[(CHILD_CONFIG_ENV, toml)])?;
    match words.as_slice() {
        [addr, admin] => Ok((kid, addr.clone(), admin.clone())),
        _ => Err(format!("proxy child said {words:?}")),
    }
}
