//! Operating vcproxy as a service: the systemd unit in `contrib/systemd/`, the
//! readiness protocol it relies on (`Type=notify`), and the shell completions and
//! man page generated from the command line's definitions.
//!
//! These run the real binary (`CARGO_BIN_EXE_vcproxy`) as a child process: what
//! systemd sees is a process, its environment and a datagram socket.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use http::Method;
use vcproxy_testkit::{config_toml, free_port, sim_config, start_sims, temp_dir, Http};

const BIN: &str = env!("CARGO_BIN_EXE_vcproxy");

/// The unit as shipped.
fn unit_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/systemd/vcproxy.service")
}

/// Runs the binary with `args` to completion, its output captured.
fn vcproxy(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {BIN}: {e}"))
}

/// `systemd-analyze verify` accepts the unit: every key known, every value valid,
/// the executables present. Without `systemd-analyze` the test is skipped, except
/// under CI (CI=true), where that is a failure: `.ci/run` installs it.
#[test]
fn systemd_analyze_accepts_the_unit() {
    match Command::new("systemd-analyze").arg("--version").output() {
        Ok(o) if o.status.success() => {}
        other => {
            let why = match other {
                Ok(o) => format!("`systemd-analyze --version` exited {}", o.status),
                Err(e) => format!("cannot run systemd-analyze: {e}"),
            };
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("{why}: under CI it must be installed (Debian's `systemd` package; .ci/run installs it)");
            }
            eprintln!(
                "NOTICE: systemd_analyze_accepts_the_unit skipped: {why} (apt-get install systemd)"
            );
            return;
        }
    }
    let dir = temp_dir("ops-unit");
    // `verify` checks that ExecStart's binary exists, and /usr/local/bin/vcproxy is
    // not installed here: a copy of the unit runs this build's binary instead. Its
    // file name stays vcproxy.service (verify derives the unit name from it).
    let shipped = std::fs::read_to_string(unit_path()).expect("contrib/systemd/vcproxy.service");
    let exec_start = "ExecStart=/usr/local/bin/vcproxy ";
    assert_eq!(
        shipped
            .lines()
            .filter(|l| l.starts_with(exec_start))
            .count(),
        1,
        "the unit has one `{exec_start}...` line"
    );
    let unit: String = shipped
        .lines()
        .map(|l| match l.strip_prefix(exec_start) {
            Some(args) => format!("ExecStart={BIN} {args}\n"),
            None => format!("{l}\n"),
        })
        .collect();
    let unit_copy = dir.join("vcproxy.service");
    std::fs::write(&unit_copy, unit).unwrap();
    // `verify` also runs `man` for Documentation=man:vcproxy(1): the page comes from
    // `vcproxy man`, found through MANPATH as an installed one would be.
    let man1 = dir.join("man/man1");
    std::fs::create_dir_all(&man1).unwrap();
    let man = vcproxy(&["man"]);
    assert!(man.status.success(), "vcproxy man: {}", man.status);
    std::fs::write(man1.join("vcproxy.1"), &man.stdout).unwrap();

    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit_copy)
        .env("MANPATH", dir.join("man"))
        .output()
        .expect("systemd-analyze verify");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "systemd-analyze verify exited {}:\n{stderr}",
        out.status
    );
    for bad in [
        "Unknown key",
        "Unknown",
        "Failed",
        "ignoring",
        "Invalid",
        "not found",
    ] {
        assert!(
            !stderr.contains(bad),
            "systemd-analyze verify said {bad:?}:\n{stderr}"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// The `serve` child, killed if the test ends before it exits.
struct Served {
    child: Child,
    log: PathBuf,
}

impl Served {
    /// `vcproxy serve --config config`, systemd's socket in NOTIFY_SOCKET, its
    /// output into `dir/vcproxy.log`.
    fn start(config: &Path, notify_socket: &Path, dir: &Path) -> Served {
        let log = dir.join("vcproxy.log");
        let log_file = File::create(&log).unwrap();
        let child = Command::new(BIN)
            .args(["serve", "--config"])
            .arg(config)
            .env("NOTIFY_SOCKET", notify_socket)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .expect("start vcproxy serve");
        Served { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for the child to exit, at most `within`.
    async fn exit(&mut self, within: Duration) -> ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for vcproxy") {
                return status;
            }
            assert!(
                started.elapsed() < within,
                "vcproxy still running {within:?} after SIGTERM; its log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Receives datagrams until one contains `wanted`, at most `within`; returns every
/// datagram received, that one last.
async fn until(
    socket: &tokio::net::UnixDatagram,
    wanted: &str,
    within: Duration,
    served: &Served,
) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + within;
    let mut got = Vec::new();
    let mut buf = vec![0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, socket.recv(&mut buf)).await {
            Ok(Ok(n)) => {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                let done = text.lines().any(|l| l == wanted);
                got.push(text);
                if done {
                    return got;
                }
            }
            Ok(Err(e)) => panic!("NOTIFY_SOCKET recv: {e}"),
            Err(_) => panic!(
                "no {wanted} on NOTIFY_SOCKET within {within:?}; received {got:?}; vcproxy's log:\n{}",
                served.log()
            ),
        }
    }
}

/// `serve` tells systemd READY=1 on NOTIFY_SOCKET once its listeners answer and the
/// vCenters were tried (a STATUS= line before it counts them), and STOPPING=1 when
/// SIGTERM starts the graceful shutdown; then it exits 0.
#[tokio::test(flavor = "current_thread")]
async fn readiness_reaches_notify_socket() {
    let dir = temp_dir("ops-notify");
    let sims = start_sims(vec![sim_config(10, 1), sim_config(10, 2)]).await;
    let urls: Vec<String> = sims.iter().map(|s| s.base_url()).collect();
    let (port, admin_port) = (free_port(), free_port());
    let head = format!(
        "[listen]\naddr = \"127.0.0.1:{port}\"\nshutdown_grace = \"5s\"\n\
         [admin]\naddr = \"127.0.0.1:{admin_port}\"\n\
         [log]\nformat = \"json\"\n"
    );
    let config = dir.join("proxy.toml");
    std::fs::write(&config, config_toml(&head, &urls, |_| String::new())).unwrap();

    // systemd's side: a datagram socket, named to the service in NOTIFY_SOCKET.
    let socket_path = dir.join("notify.sock");
    let _ = std::fs::remove_file(&socket_path);
    let socket = tokio::net::UnixDatagram::bind(&socket_path).expect("bind NOTIFY_SOCKET");
    let mut served = Served::start(&config, &socket_path, &dir);

    let before_ready = until(&socket, "READY=1", Duration::from_secs(20), &served).await;
    assert!(
        before_ready.iter().any(|d| d
            .lines()
            .any(|l| l == "STATUS=serving 2 vCenters (2 reachable at start)")),
        "a STATUS= line counting the vCenters before READY=1: {before_ready:?}"
    );
    // Ready means serving: the listeners answer at once.
    let admin = Http::new(format!("http://127.0.0.1:{admin_port}"));
    let r = admin.call(Method::GET, "/readyz", &[], None).await;
    assert_eq!(r.status, 200, "/readyz after READY=1: {}", r.text());
    drop(admin);
    // And both vCenters were tried, each outcome logged under its name.
    let log_text = served.log();
    for vc in ["vc1", "vc2"] {
        assert!(
            log_text.lines().any(|l| {
                serde_json::from_str::<serde_json::Value>(l).is_ok_and(|v| {
                    v["fields"]["message"] == "vCenter reachable" && v["fields"]["vcenter"] == vc
                })
            }),
            "no \"vCenter reachable\" line for {vc} in the log:\n{log_text}"
        );
    }

    let pid = served.child.id().to_string();
    let kill = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("run kill");
    assert!(kill.success(), "kill -TERM {pid}: {kill}");
    let status = served.exit(Duration::from_secs(20)).await;
    assert!(
        status.success(),
        "vcproxy exited {status} after SIGTERM; its log:\n{}",
        served.log()
    );
    // Sent before the process exited, so it is already queued on the socket.
    until(&socket, "STOPPING=1", Duration::from_secs(2), &served).await;

    for s in sims {
        s.shutdown().await;
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// `vcproxy completions SHELL` and `vcproxy man` print scripts and a page that know
/// the subcommands; the bash script parses.
#[test]
fn completions_and_man() {
    let subcommands = ["serve", "check", "demo"];
    let dir = temp_dir("ops-completions");
    for (args, name) in [
        (&["completions", "bash"][..], "bash"),
        (&["completions", "zsh"][..], "zsh"),
        (&["completions", "fish"][..], "fish"),
        (&["man"][..], "man"),
    ] {
        let out = vcproxy(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "vcproxy {args:?}: {}\n{stderr}",
            out.status
        );
        let text = String::from_utf8(out.stdout).expect("UTF-8 output");
        for sub in subcommands {
            assert!(
                text.contains(sub),
                "vcproxy {args:?} does not mention {sub}:\n{text}"
            );
        }
        match name {
            "man" => assert!(
                text.lines().any(|l| l.starts_with(".TH ")),
                "no .TH header in the man page:\n{text}"
            ),
            "bash" => {
                let script = dir.join("vcproxy.bash");
                std::fs::write(&script, &text).unwrap();
                let check = Command::new("bash")
                    .arg("-n")
                    .arg(&script)
                    .output()
                    .expect("run bash -n");
                assert!(
                    check.status.success(),
                    "bash -n rejects the completion script: {}",
                    String::from_utf8_lossy(&check.stderr)
                );
            }
            _ => {}
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// SIGHUP reloads in place, as `ExecReload=/bin/kill -HUP $MAINPID` asks: systemd
/// hears RELOADING=1 then READY=1; a client session made before carries on over
/// the new vCenter set; `[log]` changes (JSON to text, access log on) apply; an
/// invalid file is logged, naming the key, and the process serves on unchanged.
#[tokio::test(flavor = "current_thread")]
async fn sighup_reloads_in_place() {
    let dir = temp_dir("ops-sighup");
    let sims = start_sims(vec![sim_config(10, 1), sim_config(12, 2)]).await;
    let urls: Vec<String> = sims.iter().map(|s| s.base_url()).collect();
    let (port, admin_port) = (free_port(), free_port());
    let head = |log: &str| {
        format!(
            "[listen]\naddr = \"127.0.0.1:{port}\"\nshutdown_grace = \"5s\"\n\
             [admin]\naddr = \"127.0.0.1:{admin_port}\"\n{log}"
        )
    };
    let config = dir.join("proxy.toml");
    let json_log = head("[log]\nformat = \"json\"\n");
    std::fs::write(
        &config,
        config_toml(&json_log, &urls[..1], |_| String::new()),
    )
    .unwrap();
    let socket_path = dir.join("notify.sock");
    let _ = std::fs::remove_file(&socket_path);
    let socket = tokio::net::UnixDatagram::bind(&socket_path).expect("bind NOTIFY_SOCKET");
    let mut served = Served::start(&config, &socket_path, &dir);
    until(&socket, "READY=1", Duration::from_secs(20), &served).await;
    let pid = served.child.id().to_string();
    let hup = || {
        let status = Command::new("kill").args(["-HUP", &pid]).status().unwrap();
        assert!(status.success());
    };

    let http = Http::new(format!("http://127.0.0.1:{port}"));
    let sid = http
        .session(
            vcproxy::Family::Rest,
            vcproxy::sim::DEFAULT_USER,
            vcproxy::sim::DEFAULT_PASSWORD,
        )
        .await;
    let count = |r: vcproxy_testkit::Resp| {
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["value"].as_array().unwrap().len()
    };
    let query = vcproxy_testkit::every_service_query();
    assert_eq!(count(http.rest_list(&sid, &query).await), 10);

    // vc2 added; the log becomes text with the access log on, and the session
    // pool's info lines are filtered out.
    let text_log = head(
        "[log]\nformat = \"text\"\naccess = true\n\
         level = \"info,vcproxy::proxy::sessions=warn\"\n",
    );
    std::fs::write(&config, config_toml(&text_log, &urls, |_| String::new())).unwrap();
    hup();
    let got = until(&socket, "READY=1", Duration::from_secs(20), &served).await;
    assert!(
        got.iter().any(|d| d.lines().any(|l| l == "RELOADING=1")),
        "RELOADING=1 before READY=1: {got:?}"
    );
    assert!(got
        .iter()
        .any(|d| d.lines().any(|l| l.starts_with("MONOTONIC_USEC="))));
    assert_eq!(count(http.rest_list(&sid, &query).await), 22);
    assert_eq!(sims[1].stats().sessions_opened, 1, "vc2 logged in lazily");

    // An invalid file: logged with its key; nothing changes.
    std::fs::write(
        &config,
        config_toml(&text_log, &urls, |_| "connect_timeout = \"soon\"".into()),
    )
    .unwrap();
    hup();
    until(&socket, "READY=1", Duration::from_secs(20), &served).await;
    assert_eq!(count(http.rest_list(&sid, &query).await), 22);

    let kill = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(kill.success());
    let status = served.exit(Duration::from_secs(20)).await;
    let text = served.log();
    assert!(status.success(), "{status}: {text}");
    let (before, after) = text
        .split_once("configuration reloaded")
        .unwrap_or_else(|| panic!("no reload logged:\n{text}"));
    assert!(before.trim_start().starts_with('{'), "JSON before: {text}");
    let after_lines: Vec<&str> = after.lines().skip(1).collect();
    assert!(
        after_lines.iter().all(|l| !l.starts_with('{')),
        "text lines after the reload:\n{text}"
    );
    assert!(
        after_lines.iter().any(
            |l| l.contains(" access ") && l.contains("route=\"list_tasks\"")
                || l.contains(" access ") && l.contains("route=list_tasks")
        ),
        "an access line after the reload:\n{text}"
    );
    assert!(
        before.contains("opened vCenter session") && !after.contains("opened vCenter session"),
        "log.level applied: the pool's info lines stop after the reload:\n{text}"
    );
    assert!(
        after_lines
            .iter()
            .any(|l| l.contains("configuration not reloaded")
                && l.contains("TOML parse error at line")
                && l.contains("connect_timeout = \"soon\"")),
        "the refused reload names the key:\n{text}"
    );
    assert!(!text.contains(&sid), "the session id reached the log");
    for s in sims {
        s.shutdown().await;
    }
    std::fs::remove_dir_all(&dir).ok();
}
