//! The hit path's external tools: wrk (run pinned to core 1, its output read),
//! nginx (configured from `benches/nginx/nginx.conf.template`: a plain server and a
//! `gzip on` one) and Varnish (`benches/nginx/varnish.vcl.template`, storing gzip),
//! both pinned to core 0 and stopped when dropped.

use crate::process::Kid;
use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use vcproxy_testkit::{free_port, SESSION};

/// What one wrk run measured.
#[derive(Debug, Clone, Copy, Default)]
pub struct WrkResult {
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub errors: u64,
}

/// Whether `cmd` is on the PATH.
pub fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd} >/dev/null 2>&1")])
        .status()
        .is_ok_and(|s| s.success())
}

/// The nginx binary: a usual location, else the PATH.
pub fn find_nginx() -> Option<String> {
    [
        "/usr/sbin/nginx",
        "/usr/local/sbin/nginx",
        "/usr/local/nginx/sbin/nginx",
    ]
    .iter()
    .find(|p| std::path::Path::new(p).exists())
    .map(|p| (*p).to_owned())
    .or_else(|| have("nginx").then(|| "nginx".to_owned()))
}

/// Parses "1.23ms", "850.00us", "1.02s".
pub fn wrk_duration_ms(s: &str) -> Option<f64> {
    let s = s.trim();
    let (num, factor) = if let Some(n) = s.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60_000.0)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1000.0)
    } else {
        (s, 1.0)
    };
    num.trim().parse::<f64>().ok().map(|v| v * factor)
}

/// The figures of wrk's `--latency` output; None when it has no Requests/sec line.
pub fn parse_wrk(out: &str) -> Option<WrkResult> {
    let mut r = WrkResult::default();
    let mut have_rps = false;
    for line in out.lines() {
        let t = line.trim();
        let mut words = t.split_whitespace();
        match (words.next(), words.next()) {
            (Some("Requests/sec:"), Some(v)) => {
                r.rps = v.parse().ok()?;
                have_rps = true;
            }
            (Some("50%"), Some(v)) => r.p50_ms = wrk_duration_ms(v)?,
            (Some("99%"), Some(v)) => r.p99_ms = wrk_duration_ms(v)?,
            (Some("Non-2xx"), _) => {
                r.errors += t.rsplit(' ').next()?.parse::<u64>().ok()?;
            }
            (Some("Socket"), Some("errors:")) => {
                // "Socket errors: connect 0, read 0, write 0, timeout 0"
                for part in t.trim_start_matches("Socket errors:").split(',') {
                    r.errors += part.split_whitespace().nth(1)?.parse::<u64>().ok()?;
                }
            }
            _ => {}
        }
    }
    have_rps.then_some(r)
}

/// wrk against `url` on core 1: 64 connections for `secs`. With `script`, a wrk Lua
/// script (the paced runs' pause between requests).
pub fn run_wrk(
    url: &str,
    sid: &str,
    secs: u64,
    script: Option<&std::path::Path>,
) -> Result<WrkResult, String> {
    run_wrk_with(url, sid, secs, script, &[])
}

/// [`run_wrk`] with extra request headers (`"Name: value"`).
pub fn run_wrk_with(
    url: &str,
    sid: &str,
    secs: u64,
    script: Option<&std::path::Path>,
    headers: &[&str],
) -> Result<WrkResult, String> {
    let mut wrk = Command::new("taskset");
    wrk.args(["-c", "1", "wrk", "-t1", "-c64"])
        .arg(format!("-d{secs}s"))
        .args(["--latency", "--timeout", "5s", "-H"])
        .arg(format!("{SESSION}: {sid}"));
    for h in headers {
        wrk.arg("-H").arg(h);
    }
    if let Some(script) = script {
        wrk.arg("-s").arg(script);
    }
    let out = wrk.arg(url).output().map_err(|e| format!("wrk: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "wrk failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    parse_wrk(&text).ok_or_else(|| format!("cannot read wrk's output:\n{text}"))
}

/// nginx in front of a simulator in this process; stopped when dropped.
pub struct Nginx {
    kid: Kid,
    dir: PathBuf,
    pub addr: SocketAddr,
    /// The same cache behind `gzip on; gzip_types application/json; gzip_proxied any;`.
    pub gzip_addr: SocketAddr,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        stop(&mut self.kid, &self.dir);
    }
}

/// SIGTERM to a server's master process (it stops its workers or child too;
/// SIGKILL would orphan them), then its directory removed.
fn stop(kid: &mut Kid, dir: &std::path::Path) {
    let _ = Command::new("kill")
        .args(["-TERM", &kid.0.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = kid.0.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// Waits until `addr` accepts connections; the server's error when it exits first.
fn wait_listening(
    kid: &mut Kid,
    addr: SocketAddr,
    what: &str,
    log: &std::path::Path,
) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(addr).is_err() {
        if let Ok(Some(status)) = kid.0.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = kid.0.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            let log = std::fs::read_to_string(log).unwrap_or_default();
            return Err(format!("{what} exited ({status}): {err}{log}"));
        }
        if Instant::now() > deadline {
            return Err(format!("{what} did not start listening within 10 s"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// The varnishd binary, if installed.
pub fn find_varnishd() -> Option<String> {
    ["/usr/sbin/varnishd", "/usr/local/sbin/varnishd"]
        .iter()
        .find(|p| std::path::Path::new(p).exists())
        .map(|p| (*p).to_owned())
        .or_else(|| have("varnishd").then(|| "varnishd".to_owned()))
}

/// Varnish in front of a simulator in this process, storing answers gzipped;
/// stopped when dropped.
pub struct Varnish {
    kid: Kid,
    dir: PathBuf,
    pub addr: SocketAddr,
}

impl Drop for Varnish {
    fn drop(&mut self) {
        stop(&mut self.kid, &self.dir);
    }
}

/// varnishd on a free loopback port, pinned to core 0 (all its threads), with
/// `benches/nginx/varnish.vcl.template` in front of `upstream`, once it accepts
/// connections. `-j none`: no privilege separation (the bench may run as root
/// or not); `-s malloc`: objects in memory, as vcproxy keeps them.
pub fn start_varnish(varnishd: &str, upstream: SocketAddr) -> Result<Varnish, String> {
    let dir = std::env::temp_dir().join(format!("vcproxy-bench-varnish-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let vcl = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/benches/nginx/varnish.vcl.template"
    ))
    .replace("@UPSTREAM_HOST@", &upstream.ip().to_string())
    .replace("@UPSTREAM_PORT@", &upstream.port().to_string());
    let vcl_path = dir.join("default.vcl");
    std::fs::write(&vcl_path, vcl).map_err(|e| e.to_string())?;
    let log = dir.join("varnishd.log");
    let child = Command::new("taskset")
        .args(["-c", "0", varnishd, "-F", "-j", "none", "-n"])
        .arg(dir.join("work"))
        .arg("-a")
        .arg(addr.to_string())
        .arg("-f")
        .arg(&vcl_path)
        .args(["-s", "malloc,256m"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("varnishd: {e}"))?;
    let mut v = Varnish {
        kid: Kid(child),
        dir,
        addr,
    };
    wait_listening(&mut v.kid, addr, "varnishd", &log)?;
    Ok(v)
}

/// nginx (binary `nginx`) on a free loopback port with `proxy_cache` in front of
/// `upstream`, once it accepts connections.
pub fn start_nginx(nginx: &str, upstream: SocketAddr) -> Result<Nginx, String> {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("vcproxy-bench-nginx-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for sub in ["", "cache", "proxy_temp", "client_body"] {
        let d = dir.join(sub);
        std::fs::create_dir_all(&d).map_err(|e| e.to_string())?;
        // Workers run as nobody when the master is root.
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777))
            .map_err(|e| e.to_string())?;
    }
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let gzip_addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let conf = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/benches/nginx/nginx.conf.template"
    ))
    .replace("@DIR@", &dir.display().to_string())
    .replace("@LISTEN_GZIP@", &gzip_addr.to_string())
    .replace("@LISTEN@", &addr.to_string())
    .replace("@UPSTREAM@", &upstream.to_string());
    let conf_path = dir.join("nginx.conf");
    std::fs::write(&conf_path, conf).map_err(|e| e.to_string())?;
    let child = Command::new("taskset")
        .args(["-c", "0", nginx, "-p"])
        .arg(&dir)
        .arg("-c")
        .arg(&conf_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("nginx: {e}"))?;
    let log = dir.join("error.log");
    let mut n = Nginx {
        kid: Kid(child),
        dir,
        addr,
        gzip_addr,
    };
    wait_listening(&mut n.kid, addr, "nginx", &log)?;
    wait_listening(&mut n.kid, gzip_addr, "nginx", &log)?;
    Ok(n)
}
